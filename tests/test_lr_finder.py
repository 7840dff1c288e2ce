"""The range test (fastai's lr_find) and `tune_lr`, which trains with its suggestion."""

import json
import os

import keras
import numpy as np
import pytest

from ulmfit_tf.training import lr_finder
from ulmfit_tf.training.classifier import ClassifierConfig, train_classifier
from ulmfit_tf.training.lr_finder import lr_find, steep, valley


def _curve(seed):
    """A range test's shape: flat, a descent, a minimum, then divergence,
    with noise (as smoothed losses against 100 log-spaced rates)."""
    rng = np.random.default_rng(seed)
    rates = 1e-7 * (1e8) ** (np.arange(100) / 99)
    x = np.log10(rates)
    losses = 2.0 - 1.2 / (1 + np.exp(-3 * (x + 3))) + 0.5 * np.exp(2 * (x + 0.5))
    return rates, losses + rng.normal(0, 0.01, 100)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_valley_is_fastais(seed):
    schedule = pytest.importorskip("fastai.callback.schedule")
    torch = pytest.importorskip("torch")
    rates, losses = _curve(seed)
    # fastai's lr_find drops the first tenth and the last five steps itself.
    expected, _ = schedule.valley(torch.tensor(rates[10:-5]), torch.tensor(losses[10:-5]), 100)
    assert valley(rates, losses, 100) == pytest.approx(expected, rel=1e-6)


def test_suggestions_lie_on_the_descent():
    rates, losses = _curve(0)
    low, minimum = rates[np.argmax(losses < losses[0] - 0.05)], rates[np.argmin(losses)]
    for rule in (valley, steep):
        assert low <= rule(rates, losses, 100) < minimum
    with pytest.raises(ValueError, match="too few steps"):
        valley(rates[:16], losses[:16], 100)


def test_lr_find_restores_the_model_and_validates_arguments():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0]) > 0).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-7), "sparse_categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    rates, losses, suggestion = lr_find(model, data, num_steps=60)
    assert len(rates) == len(losses) <= 60 and np.all(np.diff(rates) > 0)
    assert rates[0] <= suggestion <= rates[-1]
    for w, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, b)
    with pytest.raises(ValueError, match="suggest"):
        lr_find(model, data, suggest="minimum")
    with pytest.raises(ValueError, match="start_lr"):
        lr_find(model, data, start_lr=1.0, end_lr=0.1)


def test_lr_find_reports_progress_in_a_log(capsys):
    """A range test on long documents takes minutes: verbose=2 (a log, as
    `train-classifier` writes) gets progress lines, verbose=0 nothing."""
    import tensorflow as tf

    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, (x[:, 0] > 0).astype("int32"))).batch(8)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-7), "sparse_categorical_crossentropy")
    lr_find(model, data, end_lr=1e-3, num_steps=20)
    assert capsys.readouterr().out == ""
    lr_find(model, data, end_lr=1e-3, num_steps=20, verbose=2)  # no divergence: all 20 steps
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith("range test: step")]
    assert len(lines) == 10 and lines[-1].startswith("range test: step 20/20")


@pytest.fixture(scope="module")
def trec_ids(trec_id_split):
    return trec_id_split(600)


def test_tuned_run_is_the_run_at_the_suggested_rate(trec_ids, tmp_path, monkeypatch):
    """`tune_lr` tests the head alone (gradual unfreezing), records the test in
    the run, and then trains exactly as a run given that rate would."""
    from ulmfit_tf.training import classifier as classifier_module

    monkeypatch.setattr(classifier_module, "LR_FIND_STEPS", 40)  # test time
    vocab, tr_x, tr_y, va_x, va_y, classes = trec_ids
    sizes = {"vocabulary_size": len(vocab), "embedding_dim": 8, "hidden_dim": 12,
             "num_layers": 1}
    config = ClassifierConfig(epochs=2, max_len=12, bptt=5, bag_of_ngrams=False,
                              tune_lr=True)
    trained_in_test = []
    real_lr_find = lr_finder.lr_find

    def recording_lr_find(model, *args, **kwargs):
        trained_in_test.append({v.path for v in model.trainable_variables})
        return real_lr_find(model, *args, **kwargs)

    monkeypatch.setattr(lr_finder, "lr_find", recording_lr_find)
    tuned, _ = train_classifier(sizes, tr_x, tr_y, va_x, va_y, classes, vocab, config,
                                str(tmp_path / "tuned"), verbose=0)
    with open(tmp_path / "tuned" / "lr_find.json") as f:
        test = json.load(f)
    with open(tmp_path / "tuned" / "config.json") as f:
        written = json.load(f)
    assert written["max_lr"] == test["suggestion"] != config.max_lr
    assert written["tune_lr"] and test["untuned_max_lr"] == config.max_lr
    assert os.path.isfile(tmp_path / "tuned" / "lr_find.png")
    head = {v.path for v in tuned.head.trainable_variables}
    assert trained_in_test == [head]  # the first epoch's groups only
    assert len(tuned.trainable_variables) > len(head)  # unfrozen again

    fields = {k: v for k, v in written.items() if k in ClassifierConfig.__dataclass_fields__}
    given, _ = train_classifier(sizes, tr_x, tr_y, va_x, va_y, classes, vocab,
                                ClassifierConfig(**{**fields, "tune_lr": False}),
                                str(tmp_path / "given"), verbose=0)
    for a, b in zip(tuned.get_weights(), given.get_weights()):
        np.testing.assert_array_equal(a, b)

    # A resumed run (its backup folder still there) keeps the rate it chose.
    os.makedirs(tmp_path / "tuned" / "backup")
    monkeypatch.setattr(lr_finder, "lr_find", None)  # a second test would fail
    from ulmfit_tf.training.classifier import _tune_max_lr

    again = _tune_max_lr(tuned, None, config, str(tmp_path / "tuned"))
    assert again.max_lr == test["suggestion"]
