import os

import numpy as np
import pytest

from ulmfit_tf.text import SPECIAL_TOKENS, Vocab


def test_build_rules():
    docs = [["b", "a", "a", "c", "c", "c", "d"], ["a", "c", "xxbos"]]
    vocab = Vocab.build(docs, min_freq=2)
    assert vocab.itos[:9] == list(SPECIAL_TOKENS)
    assert vocab.itos[9:11] == ["c", "a"]  # by count; b, d below min_freq
    assert len(vocab) % 8 == 0 and len(vocab) == 16
    assert vocab.itos.count("xxbos") == 1


def test_ties_do_not_depend_on_corpus_order():
    a = Vocab.build([["x", "y", "z"]], min_freq=1)
    b = Vocab.build([["z", "y", "x"]], min_freq=1)
    assert a == b


def test_max_vocab_counts_special_tokens():
    docs = [[str(i)] * (100 - i) for i in range(50)]
    vocab = Vocab.build(docs, max_vocab=20, min_freq=1)
    assert vocab.itos[9:20] == [str(i) for i in range(11)]
    assert len(vocab) == 24


def test_encode_decode():
    vocab = Vocab.build([["hello", "world"]], min_freq=1)
    ids = vocab.encode(["xxbos", "hello", "unseen"])
    assert ids.dtype == np.int32 and ids.tolist() == [2, vocab.stoi["hello"], 0]
    assert vocab.decode(ids) == ["xxbos", "hello", "xxunk"]
    with pytest.raises(ValueError, match=r"`ids` must be in \[0, 16\). Received: 99"):
        vocab.decode([99])


def test_save_load_round_trip(tmp_path):
    vocab = Vocab.build([["héllo", "wörld", "👍", "\u00a0x"[1:]]], min_freq=1)
    path = tmp_path / "vocab.txt"
    vocab.save(path)
    assert Vocab.load(path) == vocab
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]


def test_contraction_rule_is_saved_with_the_vocabulary(tmp_path):
    vocab = Vocab.build([["do", "n't", "#split_contractions"]], min_freq=1,
                        split_contractions=True)
    assert vocab != Vocab(vocab.itos)  # same tokens, other rules
    path = tmp_path / "vocab.txt"
    vocab.save(path)
    assert path.read_text(encoding="utf-8").splitlines()[:2] == ["#split_contractions", "xxunk"]
    loaded = Vocab.load(path)
    assert loaded == vocab and loaded.split_contractions is True
    assert "#split_contractions" in loaded.stoi  # a token of that name is still a token
    # Files written before the rule existed have no header: the rule is off.
    Vocab(vocab.itos).save(path)
    assert path.read_text(encoding="utf-8").splitlines()[0] == "xxunk"
    assert Vocab.load(path).split_contractions is False
    with pytest.raises(TypeError, match="`split_contractions` must be a bool. Received: 1"):
        Vocab(vocab.itos, split_contractions=1)


@pytest.mark.parametrize("content, message", [
    ("", "must start with the special tokens"),
    ("\n".join(SPECIAL_TOKENS) + "\na\na\n", "duplicate tokens"),
    ("\n".join(SPECIAL_TOKENS) + "\n\nb\n", "non-empty str tokens"),
    ("hello\nworld\n", "must start with the special tokens"),
])
def test_malformed_file(tmp_path, content, message):
    path = tmp_path / "vocab.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="Malformed vocabulary file.*" + message):
        Vocab.load(path)


def test_not_utf8_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="not UTF-8"):
        Vocab.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="Vocabulary file not found"):
        Vocab.load(tmp_path / "nope.txt")


def test_empty_corpus_and_bad_args():
    with pytest.raises(ValueError, match="empty corpus"):
        Vocab.build([])
    with pytest.raises(ValueError, match="`min_freq` must be an int >= 1. Received: 0"):
        Vocab.build([["a"]], min_freq=0)
    with pytest.raises(ValueError, match="`max_vocab` must be an int > 9. Received: 5"):
        Vocab.build([["a"]], max_vocab=5)


def test_failed_save_leaves_no_file(tmp_path, monkeypatch):
    vocab = Vocab.build([["a"]], min_freq=1)
    path = tmp_path / "vocab.txt"
    # A token that cannot be written makes the write fail half-way.
    monkeypatch.setattr(vocab, "itos", [*vocab.itos[:-1], object()])
    with pytest.raises(TypeError):
        vocab.save(path)
    assert os.listdir(tmp_path) == []
