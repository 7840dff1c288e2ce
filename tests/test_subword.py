import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from ulmfit_tf.text import GraphTokenizer, Vocab, graph_tokenize, tokenize_corpus
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


def test_vocabulary_carries_its_subword_model(encoder, trec, tmp_path):
    """The vocabulary holds the SentencePiece model, so every stage that
    loads a run's vocab.txt encodes texts into the pieces it was trained on."""
    vocab = encoder.vocab
    assert vocab.sentencepiece == encoder.proto
    path = tmp_path / "vocab.txt"
    vocab.save(path)
    assert path.read_text(encoding="utf-8").startswith("#sentencepiece ")
    loaded = Vocab.load(path)
    assert loaded == vocab and loaded != Vocab(vocab.itos)
    texts = trec[1].texts[:50] + ["", "Supercalifragilistic!!!"]
    want = [encoder.encode(t).tolist() for t in tokenize_corpus(texts, num_workers=1)]
    assert [ids.tolist() for ids in loaded.encode_texts(texts, num_workers=1)] == want
    # A model that does not spell the vocabulary, or a damaged header.
    other = SubwordEncoder.train(tokenize_corpus(trec[0].texts[:500]), vocabulary_size=200)
    lines = path.read_text(encoding="utf-8").split("\n")
    path.write_text("\n".join([lines[0]] + other.vocab.itos) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="Malformed vocabulary file.*pieces are not `itos`"):
        Vocab.load(path)
    path.write_text("#sentencepiece @@@\n" + "\n".join(vocab.itos), encoding="utf-8")
    with pytest.raises(ValueError, match="its SentencePiece model is not base64"):
        Vocab.load(path)
    path.write_text("#colour blue\n" + "\n".join(vocab.itos), encoding="utf-8")
    with pytest.raises(ValueError, match="unknown header line '#colour blue'"):
        Vocab.load(path)


def test_graph_tokenizer_with_subwords_config_and_save(encoder, trec, tmp_path):
    texts = trec[1].texts[:200] + ["", "Don't!!!! <br />x"]
    layer = GraphTokenizer(encoder.vocab)
    got = tf.function(layer.__call__)(tf.constant(texts)).to_list()
    assert got == [ids.tolist() for ids in encoder.vocab.encode_texts(texts, num_workers=1)]
    assert layer(tf.constant(texts[:3])).to_list() == got[:3]  # eager as in a graph
    clone = GraphTokenizer.from_config(layer.get_config())
    assert clone.sentencepiece == encoder.proto
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, GraphTokenizer(encoder.vocab, output_length=12)(inputs))
    model.save(str(tmp_path / "tok.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "tok.keras"))
    np.testing.assert_array_equal(loaded(tf.constant(texts[:4])), model(tf.constant(texts[:4])))


@pytest.mark.slow
def test_keras_tasks_with_subwords(encoder, trec, tmp_path):
    """LanguageModel.adapt keeps a subword vocabulary; the classifier fits on
    raw strings and survives Keras saving with its subword model."""
    from ulmfit_tf import LanguageModel, TextClassifier
    from ulmfit_tf.models import AWDLSTM, AWDLSTMLanguageModel

    texts = trec[0].texts[:96]
    labels = [trec[0].classes[i] for i in trec[0].labels[:96]]
    keras.utils.set_random_seed(0)
    model = AWDLSTMLanguageModel(AWDLSTM(len(encoder.vocab), embedding_dim=16, hidden_dim=24,
                                         num_layers=2))
    model(np.full((1, 2), 2, np.int32))
    adapted = LanguageModel(model, encoder.vocab).adapt(texts)
    assert adapted.vocab == encoder.vocab
    clf = TextClassifier.from_language_model(adapted, class_names=list(trec[0].classes),
                                             seed=0)
    clf.compile()
    clf.fit(texts, labels, epochs=1, batch_size=32, verbose=0)
    path = str(tmp_path / "clf.keras")
    clf.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.vocab == encoder.vocab
    np.testing.assert_allclose(loaded.predict(texts[:8], verbose=0),
                               clf.predict(texts[:8], verbose=0), atol=1e-6)


@pytest.mark.slow
def test_cli_every_stage_with_subwords(data_dir, tmp_path, capsys):
    """prepare --subword-vocab, pretrain, finetune-lm, train-classifier,
    evaluate, predict, generate and export, on TREC-6 with tiny models: the
    subword model travels in each run's vocab.txt, and the SavedModel (with
    tensorflow-text loaded) gives predict's probabilities."""
    import tensorflow_text  # noqa: F401  (the SentencePiece op, as a server needs it)

    from ulmfit_tf.cli import main

    prepared, lm, ft, clf = (str(tmp_path / name) for name in ("data", "lm", "ft", "clf"))
    assert main(["prepare", "trec", "--data", data_dir, "--out", prepared,
                 "--subword-vocab", "400", "--split-contractions"]) == 0
    tiny = ["--embedding-dim", "16", "--hidden-dim", "24", "--layers", "2", "--batch-size",
            "16", "--bptt", "20"]
    assert main(["pretrain", prepared, "--out", lm, "--epochs", "1", "--max-tokens", "20000",
                 *tiny]) == 0
    assert main(["finetune-lm", "trec", "--pretrained", lm, "--data", data_dir, "--out", ft,
                 "--max-docs", "400", "--epochs", "1", "--batch-size", "16"]) == 0
    assert "400 tokens, 0 new" in capsys.readouterr().out
    assert main(["train-classifier", "trec", "--lm", ft, "--data", data_dir, "--out", clf,
                 "--epochs", "1", "--batch-size", "64"]) == 0
    vocabs = [Vocab.load(os.path.join(run, "vocab.txt")) for run in (prepared, lm, ft, clf)]
    assert all(v == vocabs[0] for v in vocabs)
    assert vocabs[0].sentencepiece is not None and vocabs[0].split_contractions
    capsys.readouterr()
    assert main(["evaluate", "trec", clf, "--data", data_dir]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 <= report["error_rate"] <= 1
    texts = ["What's the capital of France ?", "Who wrote Hamlet ?"]
    assert main(["predict", clf, *texts]) == 0
    predicted = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert main(["generate", ft, "What is", "--max-new-tokens", "3", "--seed", "0"]) == 0
    assert capsys.readouterr().out.startswith("What is")
    assert main(["export", clf, "--out", str(tmp_path / "sm")]) == 0
    out = capsys.readouterr()
    assert "the server needs tensorflow-text" in out.err
    served = tf.saved_model.load(json.loads(out.out)["saved_model"]).signatures[
        "serving_default"](text=tf.constant(texts))
    classes = [c.decode() for c in served["label"].numpy()]
    assert classes == [p["label"] for p in predicted]
    for row, p in zip(served["probabilities"].numpy(), predicted):
        # predict prints 4 decimals
        assert row.max() == pytest.approx(p["probabilities"][p["label"]], abs=6e-5)


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
