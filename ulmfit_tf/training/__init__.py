"""Training: schedules, optimizers, callbacks and the ULMFiT stages."""

from ulmfit_tf.training.schedules import OneCycle, SlantedTriangular
