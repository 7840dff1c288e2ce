"""AWD-LSTM language model: encoder, output dropout, tied decoder."""

import keras
import tensorflow as tf

from ulmfit_tf.layers import ActivationRegularization, LockedDropout
from ulmfit_tf.models.awd_lstm import AWDLSTM, LM_DROPOUTS


class _StateStore:
    """Holds the carried LSTM state; a plain object, so that neither
    checkpoints nor `.keras` files save it (it is per-run data, not weights).

    The batch size held is kept in its own variable: TF 2.21's graph
    optimiser folds `tf.shape(variable.read_value())` to the shape of a later
    assignment in the same function, which gave wrong shapes here."""

    def __init__(self, sizes, dtype):
        self.rows = tf.Variable(0, trainable=False, name="carried_state_rows")
        self.variables = [
            tf.Variable(tf.zeros([0, size], dtype), shape=[None, size], trainable=False,
                        name=f"carried_state_{i}")
            for i, size in enumerate(s for s in sizes for _ in range(2))]

    def read(self, batch_size):
        """The carried state, or zeros where none of this batch size is held."""
        held = self.rows.read_value()
        keep = tf.cast(tf.equal(held, batch_size), self.variables[0].dtype)
        rows = tf.minimum(held, batch_size)
        return [tf.pad(var.read_value()[:rows], [[0, batch_size - rows], [0, 0]]) * keep
                for var in self.variables]

    def write(self, states):
        for var, value in zip(self.variables, states):
            var.assign(tf.stop_gradient(tf.cast(value, var.dtype)))
        self.rows.assign(tf.shape(states[0])[0])

    def reset(self):
        self.rows.assign(0)
        for var in self.variables:
            var.assign(tf.zeros([0, var.shape[1]], var.dtype))


class _ResetTrainingState(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.model.reset_states()


@keras.saving.register_keras_serializable(package="ulmfit_tf")
class AWDLSTMLanguageModel(keras.Model):
    """Next-token language model on an `AWDLSTM` encoder (ULMFiT stages 1-2).

    Output dropout (locked), AR/TAR regularisation, and a decoder tied to the
    embedding matrix with its own bias. Returns float32 logits [B, T, V].

    The hidden state is carried from one batch to the next, as AWD-LSTM and
    fastai train: consecutive batches of an `LMStream` continue each other
    row by row. Training and evaluation keep separate states, so validation
    never disturbs the training state; the training state is reset at the
    start of every epoch of `fit`, the evaluation state at the start of every
    `evaluate` (also the one `fit` runs for validation). A batch of another
    size starts from zeros. Call `reset_states()` between unrelated texts.

    Args:
        encoder: an `AWDLSTM`.
        output_dropout: locked dropout on the encoder output (fastai 0.1;
            multiplied by the encoder's `drop_mult`).
        ar_alpha, tar_beta: AR and TAR coefficients (AWD-LSTM: 2 and 1).
    """

    def __init__(self, encoder, output_dropout=LM_DROPOUTS["output_dropout"], ar_alpha=2.0,
                 tar_beta=1.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(encoder, AWDLSTM):
            raise TypeError(f"`encoder` must be an AWDLSTM. Received: {encoder!r}")
        self.encoder = encoder
        self.output_dropout = output_dropout
        self.ar_alpha, self.tar_beta = ar_alpha, tar_beta
        self.output_dropout_layer = LockedDropout(output_dropout * encoder.drop_mult,
                                                  dtype=encoder.dtype_policy,
                                                  name="output_dropout")
        self.regularization = ActivationRegularization(ar_alpha, tar_beta, name="ar_tar")
        self._train_state = _StateStore(encoder.state_sizes, encoder.compute_dtype)
        self._eval_state = _StateStore(encoder.state_sizes, encoder.compute_dtype)

    @property
    def embedding(self):
        return self.encoder.get_layer("embedding")

    @property
    def layer_groups(self):
        """fastai's LM split: one group per RNN, then embedding + decoder."""
        groups = self.encoder.layer_groups
        return groups[1:] + [groups[0] + [self.output_dropout_layer, self.regularization]]

    def call(self, token_ids, training=False):
        token_ids = tf.cast(token_ids, tf.int32)
        store = self._train_state if training else self._eval_state
        state = store.read(tf.shape(token_ids)[0])
        out = self.encoder({"token_ids": token_ids, "state": state}, training=training)
        store.write(out["state"])
        raw = out["sequence_output"]
        dropped = self.output_dropout_layer(raw, training=training)
        dropped = self.regularization((raw, dropped), training=training)
        return self.embedding(dropped, reverse=True)

    def step(self, token_ids, state):
        """Stateless call for generation: ([B, T] ids, state) -> (logits, state)."""
        token_ids = tf.cast(token_ids, tf.int32)
        out = self.encoder({"token_ids": token_ids, "state": list(state)}, training=False)
        return self.embedding(out["sequence_output"], reverse=True), out["state"]

    def reset_states(self):
        self._train_state.reset()
        self._eval_state.reset()

    def fit(self, *args, callbacks=None, **kwargs):
        # First, so that every other callback sees the reset state.
        callbacks = [_ResetTrainingState()] + list(callbacks or [])
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def evaluate(self, *args, **kwargs):
        self._eval_state.reset()
        return super().evaluate(*args, **kwargs)

    def predict(self, *args, **kwargs):
        self._eval_state.reset()
        return super().predict(*args, **kwargs)

    def get_config(self):
        return {**super().get_config(),
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "output_dropout": self.output_dropout, "ar_alpha": self.ar_alpha,
                "tar_beta": self.tar_beta}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)
