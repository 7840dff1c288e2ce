"""ULMFiT (Howard & Ruder, 2018) in Keras 3 on TensorFlow."""

__version__ = "0.1.0"
