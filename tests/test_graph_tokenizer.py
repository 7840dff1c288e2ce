import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from ulmfit_tf.text import GraphTokenizer, Vocab, graph_tokenize, tokenize, tokenize_corpus

EDGE_CASES = [
    "", " ", "\t\n", "a", "A", "I", "Hello WORLD!!!! sooooo good good good Good",
    "İstanbul ÀÉÎ ß ǅ Σίσυφος ﬁ ΑΣ", "héllo_wörld 👍🏽 x\u200dy <br />AB&amp;C",
    "a\x85b\u00a0c\u2028d\u3000e", "日本語のテキスト、句読点。", "مرحبا بالعالم", "x" * 100_000,
    "the the the the. THE THE THE", "A I OK 1000000 ... !!!", "😀😀😀😀 🇫🇷🇫🇷", "e\u0301\u0301\u0301",
    "tab\tsep\rcr", "&lt;b&gt; &quot;q&quot; &#39;s &nbsp;x", "\\n literal", "xxbos xxmaj Already",
    "word " * 20_000, "nul\x00byte \x00\x00\x00 end\x00",
]


def python_ids(texts, vocab):
    return [vocab.encode(t).tolist() for t in tokenize_corpus(texts, num_workers=1)]


def graph_ids(texts, vocab, batch=512):
    layer = GraphTokenizer(vocab)
    fn = tf.function(layer.__call__)
    out = []
    for i in range(0, len(texts), batch):
        out += fn(tf.constant(texts[i:i + batch])).to_list()
    return out


@pytest.fixture(scope="module")
def vocab(trec, imdb_train):
    rng = np.random.default_rng(0)
    sample = [imdb_train.texts[i] for i in rng.choice(len(imdb_train), 2000, replace=False)]
    texts = sample + trec[0].texts + trec[1].texts
    return Vocab.build(tokenize_corpus(texts), min_freq=2), texts


def test_tokens_identical_on_real_and_edge_cases(vocab, trec):
    vocab, texts = vocab
    texts = texts + EDGE_CASES
    assert len(texts) >= 2000 + len(trec[0]) + len(trec[1])
    graph_tokens = [[w.decode() for w in row] for row in graph_tokenize(texts).to_list()]
    python_tokens = tokenize_corpus(texts, num_workers=1)
    mismatches = [i for i in range(len(texts)) if graph_tokens[i] != python_tokens[i]]
    assert not mismatches, [(texts[i][:60], python_tokens[i][:20], graph_tokens[i][:20])
                            for i in mismatches[:3]]


def test_ids_identical(vocab):
    vocab, texts = vocab
    texts = texts + EDGE_CASES
    got, want = graph_ids(texts, vocab), python_ids(texts, vocab)
    assert got == want
    # The vocabulary really covers the text: an all-xxunk comparison proves nothing.
    flat = np.concatenate([np.array(w) for w in want])
    assert (flat == 0).mean() < 0.05


def test_invalid_utf8_replaced_not_crash():
    vocab = Vocab.build([["good"]], min_freq=1)
    ids = GraphTokenizer(vocab)(tf.constant([b"good \xff\xfe good", b"\xc3"])).to_list()
    assert ids[0] == [2, vocab.stoi["good"], 0, 0, vocab.stoi["good"]]
    assert ids[1] == [2, 0]
    # The replacement characters are punctuation: the same as the Python twin
    # on the decoded text.
    assert tokenize("good \ufffd\ufffd good") == ["xxbos", "good", "\ufffd", "\ufffd", "good"]


def test_empty_batch_and_scalar():
    layer = GraphTokenizer(Vocab.build([["a"]], min_freq=1))
    assert layer(tf.constant([], tf.string)).shape[0] == 0
    assert layer(tf.constant("a")).numpy().tolist() == [2, 9]


def test_max_chars_and_output_length():
    vocab = Vocab.build([["a", "b"]], min_freq=1)
    layer = GraphTokenizer(vocab, max_chars=3, output_length=4)
    out = layer(tf.constant(["a b a b a b", "b", "é" * 10 + "a"])).numpy()
    a, b = vocab.stoi["a"], vocab.stoi["b"]
    # "ééé" (3 characters, not bytes) -> xxrep 3 é -> [5, unk, unk].
    np.testing.assert_array_equal(out, [[2, a, b, 1], [2, b, 1, 1], [2, 5, 0, 0]])


def test_bad_arguments():
    vocab = Vocab.build([["a"]], min_freq=1)
    with pytest.raises(ValueError, match="`max_chars` must be None or an int >= 1. Received: 0"):
        GraphTokenizer(vocab, max_chars=0)
    with pytest.raises(TypeError, match="`vocabulary` must be"):
        GraphTokenizer(42)
    with pytest.raises(TypeError, match="`inputs` must be a string tensor"):
        GraphTokenizer(vocab)(tf.constant([1, 2]))


def test_config_and_keras_save_round_trip(tmp_path):
    vocab = Vocab.build([["hello", "world"]], min_freq=1)
    layer = GraphTokenizer(vocab, max_chars=100, output_length=5)
    clone = GraphTokenizer.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, layer(inputs))
    path = str(tmp_path / "tok.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = tf.constant(["Hello world", "world world world world"])
    np.testing.assert_array_equal(loaded(x), model(x))


def test_savedmodel_runs_without_tensorflow_text(tmp_path):
    """The serving graph must hold core ops only: load it where tf_text is absent."""
    vocab = Vocab.build([["hello", "world"]], min_freq=1)
    module = tf.Module()
    module.tokenizer = GraphTokenizer(vocab, output_length=6)
    module.serve = tf.function(lambda s: {"ids": module.tokenizer(s)},
                               input_signature=[tf.TensorSpec([None], tf.string)])
    path = str(tmp_path / "sm")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    script = (
        "import sys, tensorflow as tf\n"
        "assert 'tensorflow_text' not in sys.modules\n"
        f"m = tf.saved_model.load({path!r})\n"
        "out = m.signatures['serving_default'](tf.constant(['Hello WORLD', '']))['ids']\n"
        "assert 'tensorflow_text' not in sys.modules\n"
        "print(out.numpy().tolist())\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    h, w = vocab.stoi["hello"], vocab.stoi["world"]
    assert result.stdout.strip().splitlines()[-1] == str([[2, 8, h, 7, w, 1], [2, 1, 1, 1, 1, 1]])
