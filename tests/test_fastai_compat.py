"""Parity with fastai's AWD_LSTM (fastai 2.8 on the CPU build of torch)."""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
fastai_text = pytest.importorskip("fastai.text.all")

from ulmfit_tf.convert.fastai import (load_fastai_language_model, load_vocab_pkl,
                                      save_fastai_language_model)
from ulmfit_tf.text import SPECIAL_TOKENS

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
