"""SavedModel export for TF Serving: raw strings in, probabilities out.

The exported graph holds the in-graph tokenizer (core TF ops only), the
classifier with BPT3C, and the class names, so a stock TF Serving binary
(which has no tensorflow-text ops) serves it as it is.

Layout: ``<out>/<version>/saved_model.pb`` + ``variables/``, which is what
TF Serving watches (``--model_base_path=<out>``).
"""

import os

import keras
import tensorflow as tf

from ulmfit_tf.layers.lstm_kernels import check_matmul_precision, portable_lstm
from ulmfit_tf.layers.lstm_kernels import matmul_precision as lstm_matmul_precision
from ulmfit_tf.text import GraphTokenizer
from ulmfit_tf.text.rules import PAD_ID, SPECIAL_TOKENS
from ulmfit_tf.utils import atomic_directory

# Each text is cut to its first `max_chars` characters; a request is refused
# when texts x the longest one's tokens exceed `max_request_tokens`, since
# the model runs every row for as many steps as the longest (padding is
# computed). 100,000 characters can be 100,000 tokens (punctuation), so
# characters alone do not bound the model's work. Peak memory at the limits:
# docs/SERVING.md.
DEFAULT_MAX_CHARS = 100_000
DEFAULT_MAX_REQUEST_CHARS = 2_000_000
DEFAULT_MAX_REQUEST_TOKENS = 500_000
TEXT_SPEC = tf.TensorSpec(None, tf.string, name="text")


def _pad_to_one_step(ids):
    # A batch of zero texts is [0, 0]; the model needs one time step.
    steps = tf.shape(ids)[1]
    return tf.pad(ids, [[0, 0], [0, tf.maximum(1 - steps, 0)]], constant_values=PAD_ID)


def _as_text_vector(text, max_request_chars):
    """`text` as a vector [N]: a scalar is one text, [N, 1] is N texts (what
    TF Serving's row format makes of one string per instance); any other
    shape, or a request over `max_request_chars` bytes, is refused with a
    message that says so."""
    rank = tf.rank(text)
    shape = tf.shape(text)
    # [N, 1] holds as many strings as it has rows (shape[:1]: a scalar has none).
    ok = tf.logical_or(rank <= 1, tf.logical_and(
        tf.equal(rank, 2), tf.equal(tf.size(text), tf.reduce_prod(shape[:1]))))
    checks = [tf.debugging.Assert(
        ok, ["`text` must be a vector of strings [N] (or [N, 1], or a scalar). "
             "Received shape:", shape])]
    with tf.control_dependencies(checks):
        text = tf.reshape(text, [-1])
    size = tf.reduce_sum(tf.strings.length(text, unit="BYTE"))
    checks = [tf.debugging.Assert(
        size <= max_request_chars,
        [f"The request holds more than {max_request_chars} bytes of text (the "
         "export's max_request_chars); send fewer or shorter texts per request. "
         "Received bytes:", size])]
    with tf.control_dependencies(checks):
        return tf.identity(text)


def _check_request_tokens(ids, max_request_tokens):
    """`ids` [N, T] as they are, or an error when N x T is over the limit."""
    shape = tf.shape(ids)
    work = tf.cast(shape[0], tf.int64) * tf.cast(shape[1], tf.int64)
    checks = [tf.debugging.Assert(
        work <= max_request_tokens,
        [f"The request needs more than {max_request_tokens} token steps (texts x tokens "
         "of the longest, the export's max_request_tokens); send fewer or shorter texts "
         "per request. Received texts, longest:", shape[0], shape[1]])]
    with tf.control_dependencies(checks):
        return tf.identity(ids)


def _reverse_rows(ragged):
    return tf.reverse(ragged, axis=[1])


def _check_limits(max_chars, max_request_chars, max_request_tokens):
    for name, value in (("max_chars", max_chars), ("max_request_chars", max_request_chars),
                        ("max_request_tokens", max_request_tokens)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be an int >= 1. Received: {value!r}")


def export_classifier(model, vocab, classes, out, version=None, max_chars=DEFAULT_MAX_CHARS,
                      backwards=False, max_request_chars=DEFAULT_MAX_REQUEST_CHARS,
                      max_request_tokens=DEFAULT_MAX_REQUEST_TOKENS, overwrite=False,
                      matmul_precision="float32"):
    """Writes a classifier SavedModel with two signatures.

    ``serving_default``: ``text`` (string [N], [N, 1] or a scalar) ->
    ``probabilities`` (float32 [N, C]), ``label`` (string [N]), ``label_id``
    (int32 [N]). ``predict_ids``: ``token_ids`` (int32 [None, None],
    right-padded with 1, in reading order: reversed for a backward model)
    -> the same outputs.

    Several classifiers (`model`, `vocab` and `backwards` as lists of the
    same length, e.g. a forward and a backward one) export as one model whose
    probabilities are their mean, as the paper's best results are; each
    reads the text with its own vocabulary and direction. Such an export has
    no ``predict_ids``.

    Texts are cut to their first `max_chars` characters; a request over
    `max_request_chars` bytes or `max_request_tokens` token steps (texts x
    the longest one's tokens, per model) is refused with an error that says
    so; invalid UTF-8 bytes are replaced, never an error.

    `version`: the version directory; None takes the next free number (1
    for a new `out`). An existing version is replaced only with `overwrite`
    (TF Serving does not reload a version changed in place).

    `matmul_precision="bfloat16"`: the LSTMs' matmuls in bfloat16 (gates and
    cell state stay float32; `ulmfit_tf.layers.lstm_kernels.matmul_precision`),
    faster only on servers whose CPU has AVX512-BF16 or AMX.
    """
    check_matmul_precision(matmul_precision)
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    vocabs = list(vocab) if isinstance(vocab, (list, tuple)) else [vocab] * len(models)
    directions = (list(backwards) if isinstance(backwards, (list, tuple))
                  else [backwards] * len(models))
    if not len(models) == len(vocabs) == len(directions):
        raise ValueError(f"`model`, `vocab` and `backwards` must have the same length. "
                         f"Received: {len(models)}, {len(vocabs)}, {len(directions)}")
    for m in models:
        if m.num_classes != len(classes):
            raise ValueError(f"`classes` has {len(classes)} names; a model has "
                             f"{m.num_classes} outputs.")
    _check_limits(max_chars, max_request_chars, max_request_tokens)
    path = _version_path(out, version, overwrite)
    tokenizers = [GraphTokenizer(v, max_chars=max_chars, name=f"tokenizer_{i}")
                  for i, v in enumerate(vocabs)]
    class_names = tf.constant(list(classes))

    def probabilities_of(m, token_ids):
        token_ids = _check_request_tokens(_pad_to_one_step(token_ids), max_request_tokens)
        return tf.cast(m(token_ids, training=False), tf.float32)

    def outputs(probabilities):
        label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {"probabilities": probabilities, "label_id": label_id,
                "label": tf.gather(class_names, label_id)}

    def serve_text(text):
        text = _as_text_vector(text, max_request_chars)
        total = 0.0
        for m, tokenizer, reverse in zip(models, tokenizers, directions):
            ragged = tokenizer(text)
            if reverse:
                ragged = _reverse_rows(ragged)
            total += probabilities_of(m, ragged.to_tensor(default_value=PAD_ID))
        return outputs(total / len(models))

    endpoints = [("serving_default", serve_text, TEXT_SPEC)]
    if len(models) == 1:
        endpoints.append(("predict_ids",
                          lambda token_ids: outputs(probabilities_of(models[0], token_ids)),
                          tf.TensorSpec([None, None], tf.int32, name="token_ids")))
    with lstm_matmul_precision(matmul_precision):
        return _write([*models, *tokenizers], endpoints, path)


def export_language_model(model, vocab, out, version=None, top_k=10, max_chars=DEFAULT_MAX_CHARS,
                          backwards=False, keep_special_tokens=False,
                          max_request_chars=DEFAULT_MAX_REQUEST_CHARS,
                          max_request_tokens=DEFAULT_MAX_REQUEST_TOKENS, overwrite=False):
    """Writes a language-model SavedModel: ``text`` -> the `top_k` most likely
    next tokens (``tokens`` string [N, k], ``probabilities`` [N, k]; for a
    `backwards` model, the tokens most likely to come before the text).

    Special tokens (``xxunk``, ``xxmaj``, ``xxbos``...) and vocabulary
    fillers are left out of the top k unless `keep_special_tokens`; the
    probabilities stay the model's (they do not sum to one over the k).
    Limits and `version` as in `export_classifier`.
    """
    if not isinstance(top_k, int) or not 1 <= top_k <= len(vocab):
        raise ValueError(f"`top_k` must be an int in [1, {len(vocab)}]. Received: {top_k!r}")
    _check_limits(max_chars, max_request_chars, max_request_tokens)
    path = _version_path(out, version, overwrite)
    tokenizer = GraphTokenizer(vocab, max_chars=max_chars, name="tokenizer")
    itos = tf.constant(vocab.itos)
    hidden = [not keep_special_tokens and (t in SPECIAL_TOKENS or t.startswith("xxfake"))
              for t in vocab.itos]
    hidden = tf.constant(hidden)
    encoder = model.encoder

    def next_tokens(text):
        ragged = tokenizer(_as_text_vector(text, max_request_chars))
        if backwards:
            ragged = _reverse_rows(ragged)
        ids = _check_request_tokens(_pad_to_one_step(ragged.to_tensor(default_value=PAD_ID)),
                                    max_request_tokens)
        lengths = tf.maximum(ragged.row_lengths(), 1)
        state = [tf.zeros([tf.shape(ids)[0], size], encoder.compute_dtype)
                 for size in encoder.state_sizes for _ in range(2)]
        logits, _ = model.step(ids, state)  # causal: padding after a text does not matter
        last = tf.gather(logits, tf.cast(lengths - 1, tf.int32), batch_dims=1)
        probabilities = tf.nn.softmax(tf.cast(last, tf.float32))
        top = tf.math.top_k(tf.where(hidden, -1.0, probabilities), k=top_k)
        return {"tokens": tf.gather(itos, top.indices), "probabilities": top.values}

    return _write([model, tokenizer], [("serving_default", next_tokens, TEXT_SPEC)], path)


def _version_path(out, version, overwrite):
    out = os.fspath(out)
    if version is None:
        taken = [int(d) for d in (os.listdir(out) if os.path.isdir(out) else []) if d.isdigit()]
        version = max(taken, default=0) + 1
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"`version` must be None or an int >= 1. Received: {version!r}")
    path = os.path.join(out, str(version))
    if os.path.exists(path) and not overwrite:
        raise ValueError(f"The version directory {path!r} exists; TF Serving does not reload "
                         "a version changed in place. Leave `version` out for the next free "
                         "number, or pass `overwrite=True` (CLI: --overwrite).")
    return path


def _write(tracked, endpoints, path):
    """Traces `endpoints` ((name, function, input spec)) with the portable
    LSTM loop, so that the SavedModel runs on CPU-only servers too, and
    writes them to `path` (complete, or not at all)."""
    archive = keras.export.ExportArchive()
    for layer in tracked:
        archive.track(layer)
    with portable_lstm():
        for name, function, spec in endpoints:
            archive.add_endpoint(name, function, input_signature=[spec])
        with atomic_directory(path) as tmp:
            archive.write_out(tmp, verbose=False)
    return path
