"""In-graph ULMFiT tokenizer: raw strings to ids with core TensorFlow ops only.

A SavedModel holding this layer runs on a stock TF Serving binary, which has
none of the tensorflow-text ops. It gives the same ids as the Python
`Vocab.encode_texts` (tested on IMDb, TREC and crafted edge cases). The one
exception is a subword vocabulary: its SentencePiece step is keras-hub's
`SentencePieceTokenizer`, a tensorflow-text op, which the server then needs.
"""

import base64

import keras
import tensorflow as tf

from ulmfit_tf.text import rules
from ulmfit_tf.text.vocab import Vocab


def _runs(values, row_ids):
    """Run-length structure of equal neighbours within each row.

    Returns, per element: whether it starts a run, and the length of its run.
    """
    prev_values = tf.concat([tf.constant([""]), values], 0)[:-1]
    prev_rows = tf.concat([tf.constant([-1], row_ids.dtype), row_ids], 0)[:-1]
    starts = tf.logical_or(tf.not_equal(row_ids, prev_rows),
                           tf.not_equal(values, prev_values))
    run_ids = tf.cumsum(tf.cast(starts, tf.int32)) - 1
    num_runs = tf.reduce_sum(tf.cast(starts, tf.int32))
    run_lengths = tf.math.unsorted_segment_sum(
        tf.ones_like(run_ids), run_ids, num_runs)
    return starts, tf.gather(run_lengths, run_ids)


def _join_rows(pieces, row_ids, nrows):
    ragged = tf.RaggedTensor.from_value_rowids(pieces, row_ids, nrows=nrows)
    return tf.strings.reduce_join(ragged, axis=1, separator="")


def _split_words(text):
    text = tf.strings.regex_replace(text, rules.WHITESPACE_RUN, " ")
    words = tf.strings.split(text, sep=" ")
    return tf.ragged.boolean_mask(words, tf.not_equal(words, ""))


def _split_contractions(words, nrows):
    """The Python `_split_contractions` on each word: apostrophes split off,
    but for a contraction suffix, which stays on its word. RE2 has no
    look-around, so the stem and the suffix are cut apart first, each word on
    its own."""
    values, row_ids = words.flat_values, words.value_rowids()
    pattern = rules.CONTRACTION
    has_suffix = tf.strings.regex_full_match(values, pattern)
    stem = tf.where(has_suffix, tf.strings.regex_replace(values, pattern, r"\1"), values)
    suffix = tf.where(has_suffix, tf.strings.regex_replace(values, pattern, r"\2"), "")
    stem = tf.strings.regex_replace(stem, rules.APOSTROPHE, r" \1 ")
    pieces = tf.strings.join([stem, suffix, " "])
    return _split_words(_join_rows(pieces, row_ids, nrows))


def graph_tokenize(text, max_chars=None, split_contractions=False):
    """ULMFiT tokens of a batch of strings, as a `tf.RaggedTensor` [B, None].

    Invalid UTF-8 bytes become U+FFFD instead of failing, so a server never
    crashes on them. `max_chars` keeps only the first `max_chars` characters
    of each text, bounding memory per request. `split_contractions`: as the
    Python `tokenize`.
    """
    text = tf.convert_to_tensor(text, tf.string)
    nrows = tf.shape(text, out_type=tf.int64)[0]
    if max_chars is not None:
        # A UTF-8 character is at most 4 bytes: cut bytes first, so a huge
        # request costs nothing beyond this point.
        text = tf.strings.substr(text, 0, 4 * max_chars)
    text = tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
    if max_chars is not None:
        text = tf.strings.substr(text, 0, max_chars, unit="UTF8_CHAR")
    for literal, replacement in rules.HTML_REPLACEMENTS:
        text = tf.strings.regex_replace(text, rules.re2_escape(literal), replacement)

    # xxrep: RE2 has no back-references, so find runs of equal characters.
    chars = tf.strings.unicode_split(text, "UTF-8")
    values, row_ids = chars.flat_values, chars.value_rowids()
    starts, lengths = _runs(values, row_ids)
    repeated = tf.logical_and(
        lengths >= rules.MIN_REPEAT,
        tf.logical_not(tf.strings.regex_full_match(values, rules.WHITESPACE_CLASS)))
    marker = tf.strings.join(
        [f" {rules.TK_REP} ", tf.strings.as_string(lengths), " ", values, " "])
    pieces = tf.where(repeated, tf.where(starts, marker, ""), values)
    text = _join_rows(pieces, row_ids, nrows)

    if split_contractions:
        text = tf.strings.regex_replace(text, rules.PUNCTUATION_BUT_APOSTROPHES, r" \1 ")
        words = _split_contractions(_split_words(text), nrows)
    else:
        text = tf.strings.regex_replace(text, rules.PUNCTUATION, r" \1 ")
        words = _split_words(text)

    # xxwrep on words, then case markers, then lower case.
    values, row_ids = words.flat_values, words.value_rowids()
    starts, lengths = _runs(values, row_ids)
    lower = tf.strings.lower(values, encoding="utf-8")
    if split_contractions:
        lower = tf.strings.regex_replace(lower, rules.SUFFIX_AT_END, r" \1")
    cased = tf.where(
        tf.strings.regex_full_match(values, rules.ALL_CAPS),
        tf.strings.join([f"{rules.TK_UP} ", lower]),
        tf.where(tf.strings.regex_full_match(values, rules.CAPITALISED),
                 tf.strings.join([f"{rules.TK_MAJ} ", lower]), lower))
    repeated = tf.logical_and(lengths >= rules.MIN_REPEAT,
                              tf.strings.regex_full_match(values, rules.WORD))
    marker = tf.strings.join(
        [f"{rules.TK_WREP} ", tf.strings.as_string(lengths), " ", cased])
    pieces = tf.where(repeated, tf.where(starts, marker, ""), cased)
    pieces = tf.strings.join([pieces, " "])
    text = tf.strings.join([f"{rules.BOS} ", _join_rows(pieces, row_ids, nrows)])
    return _split_words(text)


@keras.saving.register_keras_serializable(package="ulmfit_tf")
class GraphTokenizer(keras.layers.Layer):
    """Raw strings -> ULMFiT token ids, in the graph, with core TF ops only.

    Args:
        vocabulary: a `Vocab`, a list of tokens, or a path to a vocab file.
        max_chars: keep only this many leading characters of each text (None:
            all).
            Set it for serving so one huge request cannot exhaust memory.
        output_length: None returns a `tf.RaggedTensor` of ids; an int returns
            a dense [B, output_length] tensor, right-padded with ``xxpad``
            (1) and truncated to the first `output_length` tokens.
        split_contractions: the contraction rule of `ulmfit_tf.text.rules`;
            default: the `Vocab`'s setting (off for a list or a path to a
            file without it).
        sentencepiece: the serialized SentencePiece model of a subword
            vocabulary; default: the `Vocab`'s (None: word tokens).

    Call arguments:
        inputs: string tensor of shape [B] (or a scalar).
    """

    def __init__(self, vocabulary, max_chars=None, output_length=None,
                 split_contractions=None, sentencepiece=None, **kwargs):
        kwargs.setdefault("trainable", False)
        kwargs.setdefault("dtype", "int32")
        super().__init__(**kwargs)
        if isinstance(vocabulary, (list, tuple)):
            vocabulary = Vocab(vocabulary)
        elif isinstance(vocabulary, str):
            vocabulary = Vocab.load(vocabulary)
        elif not isinstance(vocabulary, Vocab):
            raise TypeError(
                "`vocabulary` must be a Vocab, a list of tokens or a path. "
                f"Received: {vocabulary!r} of type {type(vocabulary).__name__}")
        for name, value in (("max_chars", max_chars), ("output_length", output_length)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"`{name}` must be None or an int >= 1. "
                                 f"Received: {value!r}")
        if split_contractions is None:
            split_contractions = vocabulary.split_contractions
        if not isinstance(split_contractions, bool):
            raise TypeError("`split_contractions` must be None or a bool. "
                            f"Received: {split_contractions!r}")
        if isinstance(sentencepiece, str):  # from get_config
            sentencepiece = base64.b64decode(sentencepiece)
        if sentencepiece is None:
            sentencepiece = vocabulary.sentencepiece
        self.itos = list(vocabulary.itos)
        self.split_contractions = split_contractions
        self.sentencepiece = sentencepiece
        self._subwords = None
        if sentencepiece is not None:
            import keras_hub

            # Checks that the model's pieces are the vocabulary.
            Vocab(self.itos, sentencepiece=sentencepiece).subwords  # noqa: B018
            self._subwords = keras_hub.tokenizers.SentencePieceTokenizer(
                proto=sentencepiece, dtype="int32", name="sentencepiece")
        self.max_chars = max_chars
        self.output_length = output_length
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(self.itos), tf.range(len(self.itos), dtype=tf.int32)),
            default_value=rules.UNK_ID)
        self.built = True

    @property
    def vocabulary_size(self):
        return len(self.itos)

    @property
    def vocab(self):
        """The `Vocab` this layer encodes with, its rules and subwords included."""
        return Vocab(self.itos, self.split_contractions, self.sentencepiece)

    def call(self, inputs):
        inputs = tf.convert_to_tensor(inputs)
        if inputs.dtype != tf.string:
            raise TypeError(f"`inputs` must be a string tensor. Received dtype "
                            f"{inputs.dtype.name}")
        scalar = inputs.shape.rank == 0
        if scalar:
            inputs = inputs[tf.newaxis]
        tokens = graph_tokenize(inputs, self.max_chars, self.split_contractions)
        if self._subwords is None:
            ids = tf.ragged.map_flat_values(self._table.lookup, tokens)
        else:
            # As `SubwordEncoder.encode`: the rule tokens after xxbos, joined
            # by spaces, cut into pieces; xxbos put back in front.
            pieces = self._subwords(tf.strings.reduce_join(tokens[:, 1:], axis=1,
                                                           separator=" "))
            if isinstance(pieces, list):  # keras-hub hands eager results back as lists
                pieces = tf.ragged.constant(pieces, tf.int32, ragged_rank=1)
            bos = tf.fill([tf.shape(inputs)[0], 1], rules.BOS_ID)
            ids = tf.concat([tf.RaggedTensor.from_tensor(bos), tf.cast(pieces, tf.int32)],
                            axis=1)
        if self.output_length is not None:
            ids = ids[:, : self.output_length].to_tensor(
                default_value=rules.PAD_ID, shape=[None, self.output_length])
        return ids[0] if scalar else ids

    def compute_output_spec(self, inputs):
        shape = (None, self.output_length)
        return keras.KerasTensor(shape if len(inputs.shape) else shape[1:],
                                 dtype="int32", ragged=self.output_length is None)

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary=self.itos, max_chars=self.max_chars,
                      output_length=self.output_length,
                      split_contractions=self.split_contractions,
                      sentencepiece=None if self.sentencepiece is None else
                      base64.b64encode(self.sentencepiece).decode("ascii"))
        return config
