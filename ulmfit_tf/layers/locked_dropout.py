"""Variational (locked) dropout: one mask per sequence, shared over time."""

import keras


@keras.saving.register_keras_serializable(package="ulmfit_tf")
class LockedDropout(keras.layers.Dropout):
    """Dropout with one mask per sequence, the same at every time step.

    Gal & Ghahramani (2016), as used by AWD-LSTM (Merity et al. 2017) and
    fastai's `RNNDropout`: inputs [B, T, F] get a [B, 1, F] mask scaled by
    1/(1 - rate), in training only.
    """

    def __init__(self, rate, **kwargs):
        kwargs.pop("noise_shape", None)
        super().__init__(rate, noise_shape=(None, 1, None), **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("noise_shape", None)
        return config
