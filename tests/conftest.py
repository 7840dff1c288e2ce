import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.abspath(os.path.join(REPO_ROOT, "..", "shared", "data"))
TESTS_DIR = os.path.join(REPO_ROOT, "tests")


@pytest.fixture(scope="session")
def data_dir():
    """The shared real corpora beside the checkout (never downloaded in tests)."""
    if not os.path.isdir(SHARED_DATA):
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _no_download(request, monkeypatch):
    """Tests read local copies: a download fails loudly, except in tests
    marked `local_download` (which serve a file:// URL)."""
    import ulmfit_tf.data.datasets as datasets

    def refuse(url, md5, cache_dir, fname=None):
        raise AssertionError(f"a test tried to download {url}")

    if request.node.get_closest_marker("local_download") is None:
        monkeypatch.setattr(datasets, "_download", refuse)
    monkeypatch.delenv("ULMFIT_TF_DATA", raising=False)


@pytest.fixture(scope="session")
def trec(data_dir):
    from ulmfit_tf.data import load_trec

    return load_trec("train", source=data_dir), load_trec("test", source=data_dir)


@pytest.fixture(scope="session")
def trec_id_split(trec):
    """`trec_id_split(count)`: the first `count` TREC-6 training questions as
    ids, 20% held out (seed 0): (vocab, train docs, labels, valid docs,
    labels, class names)."""
    from ulmfit_tf.text import Vocab, tokenize_corpus
    from ulmfit_tf.training.classifier import split_labelled

    train = trec[0]

    def split(count):
        tokens = tokenize_corpus(train.texts[:count], num_workers=1)
        vocab = Vocab.build(tokens, min_freq=2)
        docs = [vocab.encode(t) for t in tokens]
        return (vocab, *split_labelled(docs, train.labels[:count], 0.2, 0), train.classes)

    return split


@pytest.fixture(scope="session")
def imdb_train(data_dir):
    from ulmfit_tf.data import load_imdb

    return load_imdb("train", source=data_dir)


@pytest.fixture
def run_script():
    """Runs Python source in a fresh interpreter (a strategy's logical
    devices must be set before TensorFlow starts) with the tests' helpers
    importable; returns its "key value" output lines as a dict."""
    def run(source):
        result = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True,
                                cwd=TESTS_DIR, timeout=300,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                                     "PYTHONPATH": TESTS_DIR})
        assert result.returncode == 0, result.stderr[-3000:]
        return dict(line.split(" ", 1) for line in result.stdout.strip().splitlines()
                    if " " in line)
    return run
