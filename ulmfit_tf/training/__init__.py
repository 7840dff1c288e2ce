"""Training: schedules, optimizers, callbacks and the ULMFiT stages."""

from ulmfit_tf.training.schedules import (OneCycle, ScaledSchedule, SlantedTriangular,
                                          StagedSlantedTriangular)
from ulmfit_tf.training.callbacks import GradualUnfreezing, ReseedEachEpoch
from ulmfit_tf.training.optimizers import DiscriminativeAdam, discriminative_multipliers
from ulmfit_tf.training.layer_group_optimizer import LayerGroupOptimizer
