import pytest

from ulmfit_tf.text import tokenize, tokenize_corpus


@pytest.mark.parametrize("text, expected", [
    ("hello world", ["xxbos", "hello", "world"]),
    ("Hello World", ["xxbos", "xxmaj", "hello", "xxmaj", "world"]),
    ("I am OK", ["xxbos", "i", "am", "xxup", "ok"]),
    ("NASA's budget", ["xxbos", "xxup", "nasa", "'", "s", "budget"]),
    ("so gooood!!!", ["xxbos", "so", "g", "xxrep", "4", "o", "d", "xxrep", "3", "!"]),
    ("no no no no way", ["xxbos", "xxwrep", "4", "no", "way"]),
    ("no no way", ["xxbos", "no", "no", "way"]),
    ("Go go go", ["xxbos", "xxmaj", "go", "go", "go"]),  # case-sensitive, as fastai
    ("a,b.c", ["xxbos", "a", ",", "b", ".", "c"]),
    ("great<br /><br />film", ["xxbos", "great", "film"]),
    ("fish &amp; chips", ["xxbos", "fish", "&", "chips"]),
    ("an <unk> word", ["xxbos", "an", "xxunk", "word"]),
    ("New @-@ York", ["xxbos", "xxmaj", "new", "-", "xxmaj", "york"]),
    ("", ["xxbos"]),
    ("  \t\n ", ["xxbos"]),
    ("café naïve", ["xxbos", "café", "naïve"]),
    ("👍👍👍 ok", ["xxbos", "xxrep", "3", "👍", "ok"]),
])
def test_rules(text, expected):
    assert tokenize(text) == expected


def test_utf8_bytes_accepted():
    assert tokenize("Café".encode()) == ["xxbos", "xxmaj", "café"]


def test_invalid_utf8_bytes_error_names_argument():
    with pytest.raises(ValueError, match="`text`.*not valid UTF-8"):
        tokenize(b"ok \xff\xfe")


@pytest.mark.parametrize("bad", [None, 3, ["a"]])
def test_non_string_error(bad):
    with pytest.raises(TypeError, match="`text` must be a str.*Received"):
        tokenize(bad)


def test_corpus_names_bad_item():
    with pytest.raises(TypeError, match="`texts` must hold only str. Received item 1: None"):
        tokenize_corpus(["fine", None])


def test_corpus_parallel_equals_serial(trec):
    texts = trec[0].texts[:600]
    serial = tokenize_corpus(texts, num_workers=1)
    assert tokenize_corpus(texts, num_workers=2, chunk_size=100) == serial
    assert serial == [tokenize(t) for t in texts]


def test_huge_text():
    tokens = tokenize("word " * 50_000 + "x" * 100_000)
    assert tokens == ["xxbos", "xxwrep", "50000", "word", "xxrep", "100000", "x"]
