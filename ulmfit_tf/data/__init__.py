"""Datasets and tf.data pipelines."""

from ulmfit_tf.data.classification import ClassificationBatches
from ulmfit_tf.data.datasets import (TextDataset, load_20news, load_corpus, load_csv,
                                     load_folder, load_imdb, load_sms, load_trec)
from ulmfit_tf.data.lm_stream import LMStream, TokenFile
