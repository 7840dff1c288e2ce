import collections
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
    # Apostrophes, for the contraction rule: suffixes in every case and both
    # apostrophes, quotes around words, stems that are empty or end in one.
    "I don't think it's John's; DON'T! IT'S I'M I'm Don't can't won't ain't",
    "'quoted' 'Don't' rock'n'roll's students' I'd've y’all it’s ’S N’T 90's",
    "'s n't 'S ' '' ''' ''''x' xn't n'tn't don't don't don't o'clock ’’’s",
]


def python_ids(texts, vocab):
    return [vocab.encode(t).tolist() for t in vocab.tokenize(texts, num_workers=1)]


def graph_ids(texts, vocab, batch=512):
    layer = GraphTokenizer(vocab)
    fn = tf.function(layer.__call__)
    out = []
    for i in range(0, len(texts), batch):
        out += fn(tf.constant(texts[i:i + batch])).to_list()
    return out


@pytest.fixture(scope="module", params=[False, True], ids=["rules", "split_contractions"])
def vocab(request, trec, imdb_train):
    rng = np.random.default_rng(0)
    sample = [imdb_train.texts[i] for i in rng.choice(len(imdb_train), 2000, replace=False)]
    texts = sample + trec[0].texts + trec[1].texts
    if request.param:
        # The rule only touches words with an apostrophe: the texts that have
        # one, fewer of them to keep the test short.
        texts = [t for t in sample[:250] + trec[0].texts if "'" in t]
    tokens = tokenize_corpus(texts, split_contractions=request.param)
    return Vocab.build(tokens, min_freq=1 if request.param else 2,
                       split_contractions=request.param), texts


def test_tokens_identical_on_real_and_edge_cases(vocab):
    vocab, texts = vocab
    texts = texts + EDGE_CASES
    assert len(texts) >= (1200 if vocab.split_contractions else 7500)
    graph_tokens = [[w.decode() for w in row] for row in graph_tokenize(
        texts, split_contractions=vocab.split_contractions).to_list()]
    python_tokens = vocab.tokenize(texts, num_workers=1)
    mismatches = [i for i in range(len(texts)) if graph_tokens[i] != python_tokens[i]]
    assert not mismatches, [(texts[i][:60], python_tokens[i][:20], graph_tokens[i][:20])
                            for i in mismatches[:3]]
    if vocab.split_contractions:  # the rule was exercised, not bypassed
        counts = collections.Counter(t for doc in python_tokens for t in doc)
        assert min(counts["n't"], counts["'s"], counts["'re"], counts["'m"]) > 10, counts


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


@pytest.mark.parametrize("split_contractions", [False, True])
def test_config_and_keras_save_round_trip(tmp_path, split_contractions):
    vocab = Vocab.build([["hello", "world", "do", "n't"]], min_freq=1,
                        split_contractions=split_contractions)
    layer = GraphTokenizer(vocab, max_chars=100, output_length=5)
    assert layer.split_contractions is split_contractions  # from the Vocab
    clone = GraphTokenizer.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, layer(inputs))
    path = str(tmp_path / "tok.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = tf.constant(["Hello world", "world world world world", "don't"])
    np.testing.assert_array_equal(loaded(x), model(x))
    dont = vocab.encode(["xxbos", "do", "n't"]) if split_contractions else [2, 0, 0, 0]
    np.testing.assert_array_equal(loaded(x)[2, :len(dont)], dont)


def test_config_without_the_rule_reads_as_before():
    """A layer saved before the rule existed has no `split_contractions`."""
    config = GraphTokenizer(Vocab.build([["a"]], min_freq=1)).get_config()
    del config["split_contractions"]
    assert GraphTokenizer.from_config(config).split_contractions is False
    with pytest.raises(TypeError, match="`split_contractions` must be None or a bool. "
                                        "Received: 'yes'"):
        GraphTokenizer(Vocab.build([["a"]], min_freq=1), split_contractions="yes")


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
