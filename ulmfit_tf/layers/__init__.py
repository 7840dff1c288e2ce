"""The AWD-LSTM layers."""

from ulmfit_tf.layers.activation_regularization import ActivationRegularization
from ulmfit_tf.layers.embedding_dropout import EmbeddingDropout
from ulmfit_tf.layers.locked_dropout import LockedDropout
from ulmfit_tf.layers.weight_drop_lstm import WeightDropLSTM
from ulmfit_tf.layers.cross_replica_batch_norm import CrossReplicaBatchNormalization
