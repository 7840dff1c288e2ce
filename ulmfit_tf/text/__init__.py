"""Tokenization: ULMFiT rules in Python and in the graph, and the vocabulary."""

from ulmfit_tf.text.rules import SPECIAL_TOKENS
from ulmfit_tf.text.tokenizer import tokenize, tokenize_corpus
from ulmfit_tf.text.vocab import Vocab

# The graph tokenizer imports TensorFlow; the Python tokenizer's worker
# processes import this package and must not.
_GRAPH_NAMES = ("GraphTokenizer", "graph_tokenize")


def __getattr__(name):
    if name in _GRAPH_NAMES:
        from ulmfit_tf.text import graph_tokenizer

        return getattr(graph_tokenizer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_GRAPH_NAMES])
