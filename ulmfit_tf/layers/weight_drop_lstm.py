"""LSTM with DropConnect on its hidden-to-hidden weights."""

import keras
import tensorflow as tf

from ulmfit_tf.layers.lstm_kernels import cudnn_visible, lstm_sequence


@keras.saving.register_keras_serializable(package="ulmfit_tf")
class WeightDropLSTM(keras.layers.Layer):
    """An LSTM layer with weight drop (Merity et al. 2017, AWD-LSTM, sec. 2).

    In training, each batch draws a fresh DropConnect mask over the
    hidden-to-hidden matrix: a fraction `weight_dropout` of its entries is
    zeroed and the rest scaled by 1/(1 - p), as fastai's `WeightDropout`. The
    mask is applied to a copy: the layer's `recurrent_kernel` variable is
    never overwritten (the edrone TF port assigned into it in place).

    The sequence runs through cuDNN on a GPU and a fused loop with a
    hand-written backward pass on a CPU (`lstm_kernels.lstm_sequence`).

    Args:
        units: hidden size.
        weight_dropout: DropConnect rate on the recurrent matrix.

    Call arguments:
        inputs: [B, T, I] sequences.
        initial_state: optional (h, c), each [B, units]; zeros by default.
        mask: optional [B, T] bool, True for real tokens (right padding
            only); padded steps keep the state.
        training: apply weight drop.

    Returns:
        (outputs [B, T, units], h [B, units], c [B, units]).
    """

    def __init__(self, units, weight_dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"`units` must be an int >= 1. Received: {units!r}")
        if not 0.0 <= weight_dropout < 1.0:
            raise ValueError(f"`weight_dropout` must be in [0, 1). Received: {weight_dropout!r}")
        self.units = units
        self.weight_dropout = float(weight_dropout)
        self.seed_generator = keras.random.SeedGenerator()
        # The padding mask is taken as an argument; outputs carry none.
        self.supports_masking = True
        # XLA cannot compile cuDNN's op: with jit_compile="auto", Keras then
        # leaves XLA off (as its own LSTM does).
        self.supports_jit = not cudnn_visible()

    def compute_mask(self, inputs, mask=None):
        return [None, None, None]

    def build(self, input_shape):
        input_dim = input_shape[-1]
        # PyTorch's LSTM init, uniform(+-1/sqrt(H)), as fastai uses.
        init = keras.initializers.RandomUniform(-self.units ** -0.5, self.units ** -0.5)
        self.kernel = self.add_weight(shape=(input_dim, 4 * self.units), initializer=init,
                                      name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, 4 * self.units),
                                                initializer=init, name="recurrent_kernel")
        self.bias = self.add_weight(shape=(4 * self.units,), initializer=init, name="bias")

    def dropped_recurrent_kernel(self, training=False):
        """The recurrent matrix this batch uses (a new tensor in training)."""
        kernel = tf.convert_to_tensor(self.recurrent_kernel)
        if not training or self.weight_dropout == 0.0:
            return kernel
        return keras.random.dropout(kernel, self.weight_dropout, seed=self.seed_generator)

    def call(self, inputs, initial_state=None, mask=None, training=False):
        if initial_state is None:
            zeros = tf.zeros([tf.shape(inputs)[0], self.units], self.compute_dtype)
            initial_state = (zeros, zeros)
        h0, c0 = (tf.cast(s, self.compute_dtype) for s in initial_state)
        return lstm_sequence(
            tf.cast(inputs, self.compute_dtype), h0, c0,
            tf.cast(self.kernel, self.compute_dtype),
            tf.cast(self.dropped_recurrent_kernel(training), self.compute_dtype),
            tf.cast(self.bias, self.compute_dtype), mask=mask,
            training=False if training is False or training is None else True)

    def compute_output_spec(self, inputs, initial_state=None, mask=None, training=False):
        batch, steps = inputs.shape[0], inputs.shape[1]
        return (keras.KerasTensor((batch, steps, self.units), self.compute_dtype),
                keras.KerasTensor((batch, self.units), self.compute_dtype),
                keras.KerasTensor((batch, self.units), self.compute_dtype))

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "weight_dropout": self.weight_dropout}
