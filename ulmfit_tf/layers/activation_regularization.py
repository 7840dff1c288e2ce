"""AR and TAR, the activation regularisers of AWD-LSTM."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="ulmfit_tf")
class ActivationRegularization(keras.layers.Layer):
    """Activation (AR) and temporal activation (TAR) regularisation.

    Merity et al. (2017b), "Revisiting Activation Regularization for Language
    RNNs": adds ``alpha * mean(dropped ** 2)`` (AR, on the last layer's output
    after dropout) and ``beta * mean((raw[:, 1:] - raw[:, :-1]) ** 2)`` (TAR,
    on the output before dropout) to the loss, in training only. Both are
    computed in float32: fastai's fp16 LM training diverged until they were.

    Call arguments:
        inputs: (raw, dropped), each [B, T, F].

    Returns:
        `dropped`, unchanged.
    """

    def __init__(self, alpha=2.0, beta=1.0, **kwargs):
        super().__init__(**kwargs)
        if alpha < 0 or beta < 0:
            raise ValueError(f"`alpha` and `beta` must be >= 0. Received: {alpha!r}, {beta!r}")
        self.alpha, self.beta = float(alpha), float(beta)

    def penalty(self, raw, dropped):
        raw, dropped = tf.cast(raw, "float32"), tf.cast(dropped, "float32")
        loss = tf.constant(0.0)
        if self.alpha:
            loss += self.alpha * tf.reduce_mean(tf.square(dropped))
        if self.beta:
            loss += self.beta * tf.reduce_mean(tf.square(raw[:, 1:] - raw[:, :-1]))
        return loss

    def call(self, inputs, training=False):
        raw, dropped = inputs
        if training and (self.alpha or self.beta):
            self.add_loss(self.penalty(raw, dropped))
        return dropped

    def compute_output_spec(self, inputs, training=False):
        return keras.KerasTensor(inputs[1].shape, inputs[1].dtype)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta}
