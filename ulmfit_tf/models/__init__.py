"""Models: the AWD-LSTM encoder and the tasks built on it."""

from ulmfit_tf.models.awd_lstm import AWDLSTM, CLASSIFIER_DROPOUTS, LM_DROPOUTS
from ulmfit_tf.models.language_model import AWDLSTMLanguageModel
from ulmfit_tf.models.classifier import AWDLSTMClassifier, build_head
