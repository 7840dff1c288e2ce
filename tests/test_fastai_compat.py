"""Parity with fastai's AWD_LSTM (fastai 2.8 on the CPU build of torch)."""

import hashlib
import json
import os
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
fastai_text = pytest.importorskip("fastai.text.all")

from ulmfit_tf.convert.fastai import (load_fastai_language_model, load_vocab_pkl,
                                      save_fastai_language_model)
from ulmfit_tf.text import SPECIAL_TOKENS, Vocab, tokenize_corpus

pytestmark = pytest.mark.fastai


def fastai_lm(vocab_size=48, seed=0):
    torch.manual_seed(seed)
    config = dict(fastai_text.awd_lstm_lm_config, emb_sz=16, n_hid=24, n_layers=3)
    model = fastai_text.get_language_model(fastai_text.AWD_LSTM, vocab_size, config=config)
    with torch.no_grad():  # non-zero biases, so a dropped bias would show
        model[1].decoder.bias.normal_()
        for rnn in model[0].rnns:
            rnn.module.bias_hh_l0.normal_()
    return model.eval()


def fastai_logits(model, ids):
    model.reset()
    with torch.no_grad():
        return model(torch.from_numpy(ids).long())[0].numpy()


def write_fastai_files(model, tmp_path, vocab_size=48):
    itos = list(SPECIAL_TOKENS) + [f"w{i}" for i in range(vocab_size - 9 - 3)] + ["xxfake"] * 3
    torch.save(model.state_dict(), tmp_path / "lm.pth")
    with open(tmp_path / "itos.pkl", "wb") as f:
        pickle.dump(itos, f)
    return tmp_path / "lm.pth", tmp_path / "itos.pkl"


def test_fastai_to_ulmfit_same_logits(tmp_path):
    model = fastai_lm()
    weights, vocab_pkl = write_fastai_files(model, tmp_path)
    ours, vocab = load_fastai_language_model(weights, vocab_pkl)
    assert len(vocab) == 48 and vocab.itos[-1] == "xxfake2"
    ids = np.random.default_rng(0).integers(0, 48, (3, 11)).astype(np.int32)
    ours.reset_states()
    got = ours.predict(ids, verbose=0)
    want = fastai_logits(model, ids)
    assert np.abs(got - want).max() <= 1e-4
    assert np.abs(want).max() > 0.1  # the comparison is not between near-zero numbers


def test_ulmfit_to_fastai_same_logits(tmp_path):
    source = fastai_lm(seed=1)
    weights, vocab_pkl = write_fastai_files(source, tmp_path)
    ours, vocab = load_fastai_language_model(weights, vocab_pkl)
    for var in ours.trainable_variables:  # make ours differ from the source
        var.assign(var.numpy() + np.random.default_rng(2).normal(0, 0.05, var.shape))
    save_fastai_language_model(ours, vocab, tmp_path / "back.pth", tmp_path / "back.pkl")
    target = fastai_lm(seed=3)
    target.load_state_dict(torch.load(tmp_path / "back.pth", weights_only=True))
    ids = np.random.default_rng(1).integers(0, 48, (2, 9)).astype(np.int32)
    ours.reset_states()
    assert np.abs(ours.predict(ids, verbose=0) - fastai_logits(target.eval(), ids)).max() <= 1e-4
    with open(tmp_path / "back.pkl", "rb") as f:
        assert pickle.load(f)[-3:] == ["xxfake"] * 3


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump(list(SPECIAL_TOKENS) + [_Evil()], f)
    with pytest.raises(ValueError, match="Unsafe or malformed vocabulary pickle.*refusing"):
        load_vocab_pkl(path)


def test_unknown_weights_are_an_error(tmp_path):
    model = fastai_lm()
    _, vocab_pkl = write_fastai_files(model, tmp_path)
    state = model.state_dict()
    state["0.extra.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "lm.pth")
    with pytest.raises(ValueError, match="not understood.*0.extra.weight"):
        load_fastai_language_model(tmp_path / "lm.pth", vocab_pkl)


def _published_archive(model, itos, path, name):
    """A .tgz in the layout fastai publishes: <name>/lstm_<dir>.pth and
    <name>/itos_wt103.pkl."""
    import io
    import tarfile

    weights = io.BytesIO()
    torch.save(model.state_dict(), weights)
    with tarfile.open(path, "w:gz") as tar:
        for member, data in ((f"{name}/lstm_{name[-3:]}.pth", weights.getvalue()),
                             (f"{name}/itos_wt103.pkl", pickle.dumps(itos))):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.local_download
def test_wt103_preset_downloads_converts_once_and_matches_fastai(tmp_path, monkeypatch):
    from ulmfit_tf.convert import fastai as convert
    from ulmfit_tf.presets import resolve_preset
    from ulmfit_tf.training.run_dir import load_model_file

    model = fastai_lm(seed=4)
    itos = list(SPECIAL_TOKENS) + [f"w{i}" for i in range(36)] + ["xxfake"] * 3
    upstream = _published_archive(model, itos, tmp_path / "wt103-bwd.tgz", "wt103-bwd")
    monkeypatch.setitem(convert.FASTAI_PRETRAINED, "wt103-bwd", (upstream.as_uri(), True))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "cache"))
    run = resolve_preset("wt103-bwd", "--pretrained")
    assert run == str(tmp_path / "cache" / "ulmfit_tf" / "wt103-bwd")
    with open(os.path.join(run, "config.json")) as f:
        config = json.load(f)
    assert config["backwards"] is True and config["hidden_dim"] == 24
    assert config["source_sha256"] == hashlib.sha256(upstream.read_bytes()).hexdigest()
    # fastai's vocabularies come from spaCy's rules: every stage must use them.
    assert Vocab.load(os.path.join(run, "vocab.txt")).split_contractions is True
    ours = load_model_file(os.path.join(run, "model.keras"))
    ids = np.random.default_rng(0).integers(0, 48, (3, 11)).astype(np.int32)
    ours.reset_states()
    assert np.abs(ours.predict(ids, verbose=0) - fastai_logits(model, ids)).max() <= 1e-4
    upstream.unlink()  # converted once: the cache serves it from now on
    assert resolve_preset("wt103-bwd") == run


def test_contraction_rule_splits_as_fastai_does(trec, imdb_train):
    """fastai (spaCy) makes "do n't", "it 's"; with `split_contractions` so do
    we, in nearly every text, where without it almost none agree."""
    suffixes = {"n't", "'s", "'re", "'ve", "'ll", "'m", "'d"}
    texts = [t for t in trec[0].texts if "'" in t] + imdb_train.texts[:200]
    theirs = [list(doc) for doc in fastai_text.tokenize_texts(texts, n_workers=1)]

    def agreement(split_contractions):
        ours = tokenize_corpus(texts, num_workers=1, split_contractions=split_contractions)
        count = lambda doc: sorted(t for t in doc if t in suffixes)  # noqa: E731
        return np.mean([count(a) == count(b) for a, b in zip(ours, theirs)])

    assert sum(t in suffixes for doc in theirs for t in doc) > 1500
    assert agreement(True) >= 0.97
    assert agreement(False) < 0.4


def test_fastai_archive_layout_errors(tmp_path):
    from ulmfit_tf.convert.fastai import convert_fastai_archive, fastai_pretrained

    import tarfile

    with tarfile.open(tmp_path / "empty.tgz", "w:gz"):
        pass
    with pytest.raises(ValueError, match="must hold one .pth and one .pkl"):
        convert_fastai_archive(tmp_path / "empty.tgz", tmp_path / "run")
    assert not os.path.exists(tmp_path / "run")
    with pytest.raises(ValueError, match="`name` must be one of"):
        fastai_pretrained("wt2-fwd")


@pytest.mark.slow
@pytest.mark.local_download
def test_cli_stages_from_fastai_weights(data_dir, tmp_path, monkeypatch, capsys):
    """finetune-lm from fastai's published layout (as wt103-bwd: the direction
    comes with it) and from a local .pth + .pkl, then train-classifier."""
    from ulmfit_tf.cli import main
    from ulmfit_tf.convert import fastai as convert
    from ulmfit_tf.data import load_trec
    texts = load_trec("train", source=data_dir).texts[:500]
    words = Vocab.build(tokenize_corpus(texts, split_contractions=True),
                        max_vocab=200, min_freq=2, split_contractions=True)
    assert "'s" in words.stoi
    model = fastai_lm(vocab_size=len(words), seed=5)
    itos = [t if not t.startswith("xxfake") else "xxfake" for t in words.itos]
    upstream = _published_archive(model, itos, tmp_path / "wt103-bwd.tgz", "wt103-bwd")
    monkeypatch.setitem(convert.FASTAI_PRETRAINED, "wt103-bwd", (upstream.as_uri(), True))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "cache"))
    lm = str(tmp_path / "lm")
    small = ["--data", data_dir, "--max-docs", "400", "--epochs", "1", "--batch-size", "16"]
    assert main(["finetune-lm", "trec", "--pretrained", "wt103-bwd", "--out", lm, *small]) == 0
    assert "fine-tuning it backwards" in capsys.readouterr().out
    with open(os.path.join(lm, "config.json")) as f:
        assert json.load(f)["backwards"] is True
    assert main(["train-classifier", "trec", "--lm", lm, "--data", data_dir, "--epochs", "1",
                 "--out", str(tmp_path / "clf"), "--batch-size", "64"]) == 0
    for run in (lm, tmp_path / "clf"):  # spaCy's rules, carried through the stages
        vocab = Vocab.load(os.path.join(run, "vocab.txt"))
        assert vocab.split_contractions and "'s" in vocab.stoi
    weights, vocab_pkl = tmp_path / "lm.pth", tmp_path / "itos.pkl"
    torch.save(model.state_dict(), weights)
    with open(vocab_pkl, "wb") as f:
        pickle.dump(itos, f)
    assert main(["finetune-lm", "trec", "--pretrained", str(weights), "--vocab",
                 str(vocab_pkl), "--out", str(tmp_path / "lm2"), *small]) == 0
    assert main(["finetune-lm", "trec", "--pretrained", str(weights),
                 "--out", str(tmp_path / "lm3"), *small]) == 2
    assert "pass their vocabulary with `--vocab PATH.pkl`" in capsys.readouterr().err
