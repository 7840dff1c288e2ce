import numpy as np
import pytest
import tensorflow as tf

from ulmfit_tf.text import graph_tokenize, tokenize_corpus
from ulmfit_tf.text.rules import SPECIAL_TOKENS
from ulmfit_tf.text.subword import SubwordEncoder


@pytest.fixture(scope="module")
def encoder(trec):
    return SubwordEncoder.train(tokenize_corpus(trec[0].texts), vocabulary_size=500)


def test_special_tokens_keep_their_ids(encoder):
    assert encoder.vocab.itos[:9] == list(SPECIAL_TOKENS)
    assert len(encoder.vocab) % 8 == 0


def test_encode_starts_with_bos_and_uses_subwords(encoder, trec):
    tokens = tokenize_corpus(["Who invented the telephone ?"], num_workers=1)[0]
    ids = encoder.encode(tokens)
    assert ids[0] == 2 and ids.dtype == np.int32
    assert encoder.vocab.stoi["xxmaj"] in ids.tolist()
    assert 0 not in ids.tolist()  # no unknowns: subwords cover the text
    long_word = tokenize_corpus(["supercalifragilisticexpialidocious"], num_workers=1)[0]
    assert len(encoder.encode(long_word)) > 2


def test_in_graph_tokenizer_gives_the_same_ids(encoder, trec):
    texts = trec[1].texts[:200]
    python_ids = [encoder.encode(t).tolist() for t in tokenize_corpus(texts, num_workers=1)]
    tokens = graph_tokenize(texts)
    joined = tf.strings.reduce_join(tokens[:, 1:], axis=1, separator=" ")
    graph_ids = encoder.keras_tokenizer()(joined)
    if hasattr(graph_ids, "to_list"):  # eager keras-hub may hand back lists
        graph_ids = graph_ids.to_list()
    assert [[2] + [int(i) for i in row] for row in graph_ids] == python_ids


def test_save_load_and_errors(encoder, tmp_path):
    encoder.save(tmp_path / "spm.model")
    again = SubwordEncoder.load(tmp_path / "spm.model")
    assert again.vocab == encoder.vocab
    with pytest.raises(FileNotFoundError, match="SentencePiece model not found"):
        SubwordEncoder.load(tmp_path / "missing.model")
    (tmp_path / "bad.model").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="Malformed SentencePiece model"):
        SubwordEncoder.load(tmp_path / "bad.model")
    with pytest.raises(ValueError, match="empty corpus"):
        SubwordEncoder.train([], vocabulary_size=100)


def test_cli_prepare_with_subwords_then_pretrain(data_dir, tmp_path):
    from ulmfit_tf.cli import main
    from ulmfit_tf.data import TokenFile
    from ulmfit_tf.text import Vocab

    prepared = str(tmp_path / "data")
    assert main(["prepare", "trec", "--data", data_dir, "--out", prepared,
                 "--subword-vocab", "400"]) == 0
    vocab = Vocab.load(tmp_path / "data" / "vocab.txt")
    assert len(vocab) == 400 and (tmp_path / "data" / "spm.model").is_file()
    ids = TokenFile(str(tmp_path / "data" / "tokens")).ids
    assert ids.max() < 400 and (np.asarray(ids) == 0).mean() < 0.01
    assert main(["pretrain", prepared, "--out", str(tmp_path / "lm"), "--epochs", "1",
                 "--embedding-dim", "16", "--hidden-dim", "24", "--layers", "2",
                 "--batch-size", "16", "--bptt", "20", "--max-tokens", "20000"]) == 0
