"""Token vocabulary: fastai's `make_vocab` rules, stored as a plain text file."""

import base64
import binascii
import collections
import os

import numpy as np

from ulmfit_tf.text import rules
from ulmfit_tf.utils import atomic_write


# Header lines of a vocabulary file. No token can be one: the first token is
# always xxunk.
_CONTRACTIONS_HEADER = "#split_contractions"
_SENTENCEPIECE_HEADER = "#sentencepiece "


def _check_sizes(max_vocab, min_freq):
    if not isinstance(max_vocab, int) or max_vocab <= len(rules.SPECIAL_TOKENS):
        raise ValueError(f"`max_vocab` must be an int > {len(rules.SPECIAL_TOKENS)}. "
                         f"Received: {max_vocab!r}")
    if not isinstance(min_freq, int) or min_freq < 1:
        raise ValueError(f"`min_freq` must be an int >= 1. Received: {min_freq!r}")


class Vocab:
    """Maps tokens to ids and back.

    Ids 0-8 are the special tokens in fastai's order (``xxunk`` is 0, ``xxpad``
    1, ``xxbos`` 2), then the corpus tokens from most to least frequent (ties
    in alphabetical order, so a vocabulary does not depend on the order of the
    corpus), then filler tokens ``xxfake<i>`` up to a multiple of 8 (tensor
    cores want embedding sizes that are multiples of 8).

    The vocabulary also records how texts become its ids: the tokenizer
    rules (`split_contractions`, see `ulmfit_tf.text.rules`) and, for a
    subword vocabulary, the SentencePiece model that cuts the rule tokens
    into its pieces. Every stage encodes texts with `encode_texts`, so a run
    keeps the ids it was trained on.

    Args:
        itos: the list of tokens, index = id. Must start with the special
            tokens and hold no duplicates.
        split_contractions: whether the tokens come from the contraction
            rule (``don't`` -> ``do n't``, as spaCy and fastai).
        sentencepiece: a serialized SentencePiece model whose pieces are
            `itos` (`ulmfit_tf.text.subword.SubwordEncoder`), or None for
            word tokens.
    """

    def __init__(self, itos, split_contractions=False, sentencepiece=None):
        if not isinstance(split_contractions, bool):
            raise TypeError("`split_contractions` must be a bool. "
                            f"Received: {split_contractions!r}")
        if sentencepiece is not None and not isinstance(sentencepiece, bytes):
            raise TypeError("`sentencepiece` must be None or a serialized SentencePiece "
                            f"model (bytes). Received: {type(sentencepiece).__name__}")
        self.split_contractions = split_contractions
        self.sentencepiece = sentencepiece
        self._subwords = None
        itos = list(itos)
        if tuple(itos[: len(rules.SPECIAL_TOKENS)]) != rules.SPECIAL_TOKENS:
            raise ValueError(
                "`itos` must start with the special tokens "
                f"{list(rules.SPECIAL_TOKENS)}. Received: {itos[:9]}"
            )
        for i, token in enumerate(itos):
            if not isinstance(token, str) or not token or token != token.strip():
                raise ValueError(
                    "`itos` must hold non-empty str tokens without "
                    f"surrounding whitespace. Received at index {i}: {token!r}"
                )
        self.itos = itos
        self.stoi = {t: i for i, t in enumerate(itos)}
        if len(self.stoi) != len(itos):
            dupes = [t for t, c in collections.Counter(itos).items() if c > 1]
            raise ValueError(f"`itos` holds duplicate tokens: {dupes[:10]}")

    @classmethod
    def build(cls, token_lists, max_vocab=60000, min_freq=3, split_contractions=False):
        """Builds a vocabulary from tokenized documents.

        Args:
            token_lists: iterable of token lists (from `tokenize_corpus`).
            max_vocab: most tokens kept, special tokens included (as fastai),
                before padding to a multiple of 8.
            min_freq: least count for a token to be kept.
            split_contractions: the rule `token_lists` were tokenized with.
        """
        _check_sizes(max_vocab, min_freq)
        counts = collections.Counter()
        n_docs = 0
        for tokens in token_lists:
            counts.update(tokens)
            n_docs += 1
        if n_docs == 0:
            raise ValueError("`token_lists` is empty: cannot build a vocabulary "
                             "from an empty corpus.")
        return cls.from_counts(counts, max_vocab, min_freq, split_contractions)

    @classmethod
    def from_counts(cls, counts, max_vocab=60000, min_freq=3, split_contractions=False):
        """`build` from a mapping of token -> count (special tokens ignored)."""
        _check_sizes(max_vocab, min_freq)
        special = set(rules.SPECIAL_TOKENS)
        ranked = sorted(
            (t for t, c in counts.items() if c >= min_freq and t not in special),
            key=lambda t: (-counts[t], t),
        )
        itos = list(rules.SPECIAL_TOKENS) + ranked
        itos = itos[:max_vocab]
        itos += [f"xxfake{i}" for i in range(-len(itos) % 8)]
        return cls(itos, split_contractions)

    def __len__(self):
        return len(self.itos)

    def __eq__(self, other):
        return (isinstance(other, Vocab) and self.itos == other.itos
                and self.split_contractions == other.split_contractions
                and self.sentencepiece == other.sentencepiece)

    @property
    def subwords(self):
        """The `SubwordEncoder` of a subword vocabulary (None for words)."""
        if self.sentencepiece is not None and self._subwords is None:
            from ulmfit_tf.text.subword import SubwordEncoder

            self._subwords = SubwordEncoder(self.sentencepiece)
            if self._subwords.vocab.itos != self.itos:
                raise ValueError("`sentencepiece`'s pieces are not `itos`: the model and "
                                 "the vocabulary do not belong together.")
        return self._subwords

    def tokenize(self, texts, num_workers=None, progress=False):
        """`tokenize_corpus` with this vocabulary's rules (rule tokens, before
        any subwords)."""
        from ulmfit_tf.text.tokenizer import tokenize_corpus

        return tokenize_corpus(texts, num_workers=num_workers, progress=progress,
                               split_contractions=self.split_contractions)

    def encode_texts(self, texts, num_workers=None, progress=False):
        """Raw texts -> one int32 id array each, as every stage encodes them:
        this vocabulary's rules, then its subwords if it has them."""
        tokens = self.tokenize(texts, num_workers=num_workers, progress=progress)
        encode = self.encode if self.subwords is None else self.subwords.encode
        return [encode(t) for t in tokens]

    def encode(self, tokens):
        """Token list -> int32 array; unknown tokens get ``xxunk`` (0)."""
        get = self.stoi.get
        return np.fromiter((get(t, rules.UNK_ID) for t in tokens), np.int32,
                           count=len(tokens))

    def decode(self, ids):
        """Ids -> tokens. Raises on ids outside the vocabulary."""
        out = []
        for i in np.asarray(ids).ravel().tolist():
            if not 0 <= i < len(self.itos):
                raise ValueError(
                    f"`ids` must be in [0, {len(self.itos)}). Received: {i}")
            out.append(self.itos[i])
        return out

    def save(self, path):
        """Writes one token per line (UTF-8), atomically, after header lines:
        ``#split_contractions`` when the rule is on, ``#sentencepiece``
        and the model in base64 for subwords (a file without them, as all
        those written before they existed, is word tokens without the rule)."""
        lines = [_CONTRACTIONS_HEADER] if self.split_contractions else []
        if self.sentencepiece is not None:
            lines.append(_SENTENCEPIECE_HEADER
                         + base64.b64encode(self.sentencepiece).decode("ascii"))
        lines += self.itos
        with atomic_write(path, "w") as f:
            f.write("\n".join(lines) + "\n")

    @classmethod
    def load(cls, path):
        """Reads a file written by `save`, with clear errors for bad files."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Vocabulary file not found: `path`={path!r}")
        try:
            with open(path, encoding="utf-8", newline="") as f:
                text = f.read()
        except UnicodeDecodeError as e:
            raise ValueError(
                f"Malformed vocabulary file {path!r}: not UTF-8 text ({e})"
            ) from None
        itos = text.split("\n")
        if itos and itos[-1] == "":
            itos.pop()
        split_contractions, sentencepiece = False, None
        while itos and itos[0].startswith("#"):
            header = itos.pop(0)
            if header == _CONTRACTIONS_HEADER:
                split_contractions = True
            elif header.startswith(_SENTENCEPIECE_HEADER):
                try:
                    sentencepiece = base64.b64decode(header[len(_SENTENCEPIECE_HEADER):],
                                                     validate=True)
                except binascii.Error as e:
                    raise ValueError(f"Malformed vocabulary file {path!r}: its SentencePiece "
                                     f"model is not base64 ({e})") from None
            else:
                raise ValueError(f"Malformed vocabulary file {path!r}: unknown header line "
                                 f"{header[:40]!r}")
        try:
            vocab = cls(itos, split_contractions, sentencepiece)
            vocab.subwords  # noqa: B018 (checks that the model and the pieces agree)
            return vocab
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"Malformed vocabulary file {path!r}: {e}") from None
