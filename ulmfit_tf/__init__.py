"""ULMFiT (Howard & Ruder, 2018) in Keras 3 on TensorFlow."""

__version__ = "0.1.0"

# Importing these registers every ulmfit_tf class with Keras, so that
# `keras.saving.load_model` finds them after a plain `import ulmfit_tf`.
from ulmfit_tf import layers, models, text  # noqa: E402,F401
from ulmfit_tf.training import schedules  # noqa: E402,F401
