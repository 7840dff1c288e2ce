"""Tokenization: ULMFiT rules in Python and in the graph, and the vocabulary."""

from ulmfit_tf.text.graph_tokenizer import GraphTokenizer, graph_tokenize
from ulmfit_tf.text.rules import SPECIAL_TOKENS
from ulmfit_tf.text.tokenizer import tokenize, tokenize_corpus
from ulmfit_tf.text.vocab import Vocab
