"""BatchNormalization with global-batch statistics under tf.distribute."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="ulmfit_tf")
class CrossReplicaBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose training statistics are those
    of the global batch when several replicas train (PyTorch's SyncBatchNorm).

    Keras' own `synchronized=True` computes the variance in one pass,
    E[x^2] - E[x]^2 clamped at 0; in float32 that loses small variances (a
    rarely active ReLU feature, say), and 2 replicas then train away from
    one device (one SGD step of a small classifier on 2 logical CPUs: 1.4e-4
    from one device's weights with Keras' layer, 1.3e-5 with this one). Here
    the mean is all-reduced first and then the squared deviations from it,
    as `tf.nn.moments` computes on one device.
    With one replica (or no strategy) it is the plain Keras layer.
    """

    def __init__(self, **kwargs):
        kwargs.pop("synchronized", None)  # always: that is the point of the layer
        super().__init__(**kwargs)

    def _moments(self, inputs, mask):
        context = tf.distribute.get_replica_context()
        if mask is not None or context is None or context.num_replicas_in_sync == 1:
            return super()._moments(inputs, mask)
        axes = self._reduction_axes
        x = tf.cast(inputs, tf.float32)

        def global_mean(values):
            total = context.all_reduce("sum", tf.reduce_sum(values, axis=axes, keepdims=True))
            return total / count

        count = context.all_reduce(
            "sum", tf.reduce_sum(tf.ones_like(x), axis=axes, keepdims=True))
        mean = global_mean(x)
        # As tf.nn.moments: the variance's gradient does not flow into the mean
        # (analytically zero, so only rounding would).
        variance = global_mean(tf.math.squared_difference(x, tf.stop_gradient(mean)))
        mean, variance = tf.squeeze(mean, axes), tf.squeeze(variance, axes)
        return tf.cast(mean, inputs.dtype), tf.cast(variance, inputs.dtype)

    def get_config(self):
        config = super().get_config()
        config.pop("synchronized", None)
        return config
