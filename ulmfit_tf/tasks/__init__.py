"""Keras-native tasks on raw text: `TextClassifier` and `LanguageModel`."""

from ulmfit_tf.tasks.language_model import LanguageModel
from ulmfit_tf.tasks.text_classifier import TextClassifier
