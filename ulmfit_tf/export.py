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

from ulmfit_tf.text import GraphTokenizer
from ulmfit_tf.text.rules import PAD_ID
from ulmfit_tf.utils import atomic_directory

DEFAULT_MAX_CHARS = 100_000  # about 20k tokens; longer requests are cut, not refused


def _pad_to_one_step(ids):
    # A batch of zero texts is [0, 0]; the model needs one time step.
    steps = tf.shape(ids)[1]
    return tf.pad(ids, [[0, 0], [0, tf.maximum(1 - steps, 0)]], constant_values=PAD_ID)


def export_classifier(model, vocab, classes, out, version=1, max_chars=DEFAULT_MAX_CHARS):
    """Writes a classifier SavedModel with two signatures.

    ``serving_default``: ``text`` (string [None]) -> ``probabilities``
    (float32 [None, C]), ``label`` (string [None]), ``label_id`` (int32 [None]).
    ``predict_ids``: ``token_ids`` (int32 [None, None], right-padded with 1)
    -> the same outputs.

    Texts are cut to their first `max_chars` characters, so that one huge
    request cannot exhaust the server's memory; invalid UTF-8 bytes are
    replaced, never an error.
    """
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"`version` must be an int >= 1. Received: {version!r}")
    tokenizer = GraphTokenizer(vocab, max_chars=max_chars, name="tokenizer")
    class_names = tf.constant(list(classes))

    def outputs(token_ids):
        probabilities = tf.cast(model(_pad_to_one_step(token_ids), training=False), tf.float32)
        label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {"probabilities": probabilities, "label_id": label_id,
                "label": tf.gather(class_names, label_id)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(tokenizer)
    archive.add_endpoint(
        "serving_default",
        lambda text: outputs(tokenizer(text).to_tensor(default_value=PAD_ID)),
        input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    archive.add_endpoint(
        "predict_ids", lambda token_ids: outputs(token_ids),
        input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids")])
    return _write(archive, out, version)


def export_language_model(model, vocab, out, version=1, top_k=10, max_chars=DEFAULT_MAX_CHARS):
    """Writes a language-model SavedModel: ``text`` -> the `top_k` most likely
    next tokens (``tokens`` string [None, k], ``probabilities`` [None, k])."""
    tokenizer = GraphTokenizer(vocab, max_chars=max_chars, name="tokenizer")
    itos = tf.constant(vocab.itos)
    encoder = model.encoder

    def next_tokens(text):
        ragged = tokenizer(text)
        ids = _pad_to_one_step(ragged.to_tensor(default_value=PAD_ID))
        lengths = tf.maximum(ragged.row_lengths(), 1)
        state = [tf.zeros([tf.shape(ids)[0], size], encoder.compute_dtype)
                 for size in encoder.state_sizes for _ in range(2)]
        logits, _ = model.step(ids, state)  # causal: padding after a text does not matter
        last = tf.gather(logits, tf.cast(lengths - 1, tf.int32), batch_dims=1)
        top = tf.math.top_k(tf.nn.softmax(last), k=top_k)
        return {"tokens": tf.gather(itos, top.indices), "probabilities": top.values}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(tokenizer)
    archive.add_endpoint("serving_default", next_tokens,
                         input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    return _write(archive, out, version)


def _write(archive, out, version):
    path = os.path.join(os.fspath(out), str(version))
    with atomic_directory(path) as tmp:
        archive.write_out(tmp, verbose=False)
    return path
