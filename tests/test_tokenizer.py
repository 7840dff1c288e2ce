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


@pytest.mark.parametrize("text, expected", [
    # As fastai (spaCy's English rules): the suffix is a token; the case
    # marker belongs to the whole word.
    ("I don't know", ["i", "do", "n't", "know"]),
    ("It's John's", ["xxmaj", "it", "'s", "xxmaj", "john", "'s"]),
    ("we'll, they're; I've I'd I'm", ["we", "'ll", ",", "they", "'re", ";", "xxmaj", "i",
                                      "'ve", "xxmaj", "i", "'d", "xxmaj", "i", "'m"]),
    ("can't won't ain't", ["ca", "n't", "wo", "n't", "ai", "n't"]),
    ("DON'T Don't IT'S", ["xxup", "do", "n't", "xxmaj", "do", "n't", "xxup", "it", "'s"]),
    ("it\u2019s don\u2019t", ["it", "\u2019s", "do", "n\u2019t"]),  # typographic
    # Other apostrophes are punctuation, as without the rule.
    ("'quoted' rock'n'roll students'", ["'", "quoted", "'", "rock", "'", "n", "'", "roll",
                                         "students", "'"]),
    ("rock'n'roll's 's n't", ["rock", "'", "n", "'", "roll", "'s", "'s", "n't"]),
    ("don't don't don't", ["do", "n't", "do", "n't", "do", "n't"]),
    ("so''' 'sup", ["so", "xxrep", "3", "'", "'", "sup"]),
])
def test_contraction_rule(text, expected):
    assert tokenize(text, split_contractions=True) == ["xxbos"] + expected


def test_contraction_rule_in_workers_and_off_by_default(trec):
    texts = [t for t in trec[0].texts if "'" in t][:400]
    assert tokenize_corpus(texts, num_workers=2, chunk_size=50, split_contractions=True) == \
        [tokenize(t, split_contractions=True) for t in texts]
    plain = tokenize_corpus(texts, num_workers=2, chunk_size=50)
    assert plain == [tokenize(t) for t in texts]
    assert not any("n't" in doc or "'s" in doc for doc in plain)


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


def _modules_in_worker(_):
    import sys

    return sorted(m for m in sys.modules if m.split(".")[0] in {"tensorflow", "keras", "torch"})


def _die(signal_number):
    import os

    os.kill(os.getpid(), signal_number)


def test_workers_import_no_tensorflow():
    from ulmfit_tf.text.tokenizer import map_in_workers

    # This process has TensorFlow loaded: a forked worker would inherit it.
    import tensorflow  # noqa: F401

    assert list(map_in_workers(_modules_in_worker, [0, 1, 2], num_workers=2)) == [[]] * 3


def test_workers_from_a_script_without_a_main_guard(tmp_path):
    # multiprocessing's "spawn" would re-run this script in each worker.
    import subprocess
    import sys

    script = tmp_path / "script.py"
    script.write_text(
        "from ulmfit_tf.text import tokenize, tokenize_corpus\n"
        "texts = [f'Text number {i} , SAID the tokenizer !!!' for i in range(3000)]\n"
        "got = tokenize_corpus(texts, num_workers=2, chunk_size=500)\n"
        "assert got == [tokenize(t) for t in texts]\n"
        "print('ran once')\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == ["ran once"]


def test_an_error_in_a_worker_is_raised_as_itself():
    texts = ["fine"] * 30 + [b"ok \xff\xfe"] + ["fine"] * 30
    with pytest.raises(ValueError, match="`text`.*not valid UTF-8"):
        tokenize_corpus(texts, num_workers=2, chunk_size=10)


@pytest.mark.parametrize("signal_name", ["SIGSEGV", "SIGKILL"])
def test_dead_worker_raises_within_seconds(signal_name):
    import signal
    import time

    from ulmfit_tf.text.tokenizer import map_in_workers

    start = time.monotonic()
    with pytest.raises(RuntimeError, match="tokenizer worker process died.*num_workers=1"):
        list(map_in_workers(_die, [getattr(signal, signal_name)] * 4, num_workers=2))
    assert time.monotonic() - start < 30
