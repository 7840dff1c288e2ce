"""SentencePiece subwords on top of the ULMFiT rules (an option for training).

As fastai's `SentencePieceTokenizer`, the text first goes through the rules
(HTML fixes, ``xxrep``, ``xxmaj``, lower case, ...); SentencePiece then cuts
the rule tokens into subwords. The special tokens keep their ids 0-8.

We train with the `sentencepiece` trainer directly rather than
`keras_hub.tokenizers.compute_sentence_piece_proto`, which (keras-hub 0.32)
cannot set the special tokens' ids; in the graph, keras-hub's
`SentencePieceTokenizer` reads the same proto. **Serving:** that tokenizer is a
tensorflow-text op, so a SavedModel using subwords needs tensorflow-text in
the server; the default word-level tokenizer does not.
"""

import io
import os

import numpy as np

from ulmfit_tf.text import rules
from ulmfit_tf.text.vocab import Vocab
from ulmfit_tf.utils import atomic_write

_USER_SYMBOLS = [t for t in rules.SPECIAL_TOKENS if t not in (rules.UNK, rules.PAD, rules.BOS,
                                                              rules.EOS)]


def _rule_text(tokens):
    # xxbos is SentencePiece's BOS control symbol, which never matches text:
    # it is dropped here and its id put back by `encode`.
    if tokens and tokens[0] == rules.BOS:
        tokens = tokens[1:]
    return " ".join(tokens)


class SubwordEncoder:
    """ULMFiT rule tokens -> SentencePiece ids.

    Args:
        proto: a serialized SentencePiece model (from `train` or `load`).
    """

    def __init__(self, proto):
        import sentencepiece

        self.proto = bytes(proto)
        self.processor = sentencepiece.SentencePieceProcessor(model_proto=self.proto)
        pieces = [self.processor.id_to_piece(i) for i in range(self.processor.get_piece_size())]
        self.vocab = Vocab(pieces, sentencepiece=self.proto)
        self.vocab._subwords = self

    @classmethod
    def train(cls, token_lists, vocabulary_size=8000, model_type="unigram"):
        """Trains on tokenized documents (lists from `tokenize_corpus`)."""
        import sentencepiece

        if vocabulary_size < 16:
            raise ValueError(f"`vocabulary_size` must be >= 16. Received: {vocabulary_size!r}")
        vocabulary_size = -(-vocabulary_size // 8) * 8  # a multiple of 8, as Vocab
        lines = []
        for tokens in token_lists:
            text = _rule_text(tokens)
            # SentencePiece skips sentences longer than max_sentence_length.
            lines += [text[i:i + 4000] for i in range(0, len(text), 4000)]
        if not lines:
            raise ValueError("`token_lists` is empty: cannot train subwords on an empty corpus.")
        model = io.BytesIO()
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=model, vocab_size=vocabulary_size,
            model_type=model_type, unk_id=rules.UNK_ID, pad_id=rules.PAD_ID,
            bos_id=rules.BOS_ID, eos_id=rules.EOS_ID, unk_piece=rules.UNK,
            pad_piece=rules.PAD, bos_piece=rules.BOS, eos_piece=rules.EOS,
            user_defined_symbols=_USER_SYMBOLS, max_sentence_length=8192,
            character_coverage=0.9999, hard_vocab_limit=False,
            minloglevel=2)
        return cls(model.getvalue())

    def encode(self, tokens):
        """Rule tokens of one document -> int32 ids, starting with xxbos (2)."""
        ids = self.processor.encode(_rule_text(tokens))
        return np.array([rules.BOS_ID] + ids, np.int32)

    def keras_tokenizer(self):
        """keras-hub's in-graph tokenizer on the same proto (needs tensorflow-text)."""
        import keras_hub

        return keras_hub.tokenizers.SentencePieceTokenizer(proto=self.proto)

    def save(self, path):
        with atomic_write(path, "wb") as f:
            f.write(self.proto)

    @classmethod
    def load(cls, path):
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"SentencePiece model not found: `path`={path!r}")
        with open(path, "rb") as f:
            data = f.read()
        try:
            return cls(data)
        except RuntimeError as e:
            raise ValueError(f"Malformed SentencePiece model {path!r}: {e}") from None
