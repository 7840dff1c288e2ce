"""KeepBestEpoch: early stopping that ends on the best epoch, across a resume."""

import json
import os

import keras
import numpy as np
import pytest

from ulmfit_tf.training.callbacks import KeepBestEpoch


def _model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    return model


def _run(callback, model, losses, first_epoch=0, stop_at=None, accuracies=None):
    """Feeds `losses` (and `accuracies`) as epochs' validation metrics; the
    weights of epoch e are all e. Returns the epochs run (fit's loop stops
    on stop_training)."""
    model.stop_training = False
    run = []
    for epoch in range(first_epoch, len(losses)):
        for w in model.weights:
            w.assign(np.full(w.shape, float(epoch)))
        logs = {"val_loss": losses[epoch]}
        if accuracies is not None:
            logs["val_accuracy"] = accuracies[epoch]
        callback.on_epoch_end(epoch, logs)
        run.append(epoch)
        if model.stop_training or epoch == stop_at:
            break
    return run


def test_stops_after_patience_and_restores_the_best_epoch(tmp_path):
    model = _model()
    callback = KeepBestEpoch(str(tmp_path / "state"), patience=2)
    callback.set_model(model)
    callback.on_train_begin()
    run = _run(callback, model, [0.9, 0.5, 0.6, 0.55, 0.4, 0.3])
    assert run == [0, 1, 2, 3]  # epochs 2 and 3 did not beat epoch 1's 0.5
    assert callback.best_epoch == 1 and callback.stopped_epoch == 3
    callback.on_train_end()
    assert all(np.all(w.numpy() == 1.0) for w in model.weights)


def test_without_patience_runs_all_epochs_and_keeps_the_best(tmp_path):
    model = _model()
    callback = KeepBestEpoch(str(tmp_path / "state"), patience=None)
    callback.set_model(model)
    callback.on_train_begin()
    assert _run(callback, model, [0.9, 0.5, 0.6, 0.7, 0.8]) == [0, 1, 2, 3, 4]
    callback.on_train_end()
    assert all(np.all(w.numpy() == 1.0) for w in model.weights)
    # Only the best epoch's weights stay on disk.
    assert sorted(os.listdir(tmp_path / "state")) == ["best-1.weights.h5", "best.json"]


def test_restore_best_false_keeps_the_last_weights(tmp_path):
    model = _model()
    callback = KeepBestEpoch(str(tmp_path / "state"), patience=None, restore_best=False)
    callback.set_model(model)
    callback.on_train_begin()
    _run(callback, model, [0.9, 0.5, 0.6])
    callback.on_train_end()
    assert all(np.all(w.numpy() == 2.0) for w in model.weights)


@pytest.mark.parametrize("replay", [False, True])
def test_a_resumed_run_ends_like_the_uninterrupted_one(tmp_path, replay):
    """Interrupted after epoch 2 (the best so far was epoch 1), resumed by a
    fresh callback: it remembers epoch 1 and its weights. With `replay`, the
    backup had not been written for epoch 2, so fit replays it: it is not
    counted twice."""
    losses = [0.9, 0.5, 0.6, 0.7, 0.65, 0.8]
    clean_model = _model()
    clean = KeepBestEpoch(str(tmp_path / "clean"), patience=3)
    clean.set_model(clean_model)
    clean.on_train_begin()
    clean_run = _run(clean, clean_model, losses)
    clean.on_train_end()

    model = _model()
    first = KeepBestEpoch(str(tmp_path / "resumed"), patience=3)
    first.set_model(model)
    first.on_train_begin()
    _run(first, model, losses, stop_at=2)  # killed here: no on_train_end

    model = _model()  # a new process: fresh weights
    second = KeepBestEpoch(str(tmp_path / "resumed"), patience=3)
    second.set_model(model)
    second.on_train_begin()
    for w in model.weights:  # the weights it held are left alone
        assert np.all(w.numpy() != 1.0)
    resumed_run = _run(second, model, losses, first_epoch=2 if replay else 3)
    second.on_train_end()
    assert clean_run == [0, 1, 2, 3, 4]
    assert resumed_run[-1] == clean_run[-1]
    assert second.best_epoch == clean.best_epoch == 1
    for a, b in zip(model.weights, clean_model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_accuracy_with_ties_broken_by_the_loss(tmp_path):
    """mode='max' on the accuracy: epoch 3 ties epoch 1's accuracy with a
    lower loss and becomes the best; epoch 4's loss is the lowest of all but
    its accuracy is not, so it does not count (a loss-monitoring run would
    have kept it)."""
    model = _model()
    callback = KeepBestEpoch(str(tmp_path / "state"), "val_accuracy", patience=2,
                             mode="max", tie_breaker="val_loss")
    callback.set_model(model)
    callback.on_train_begin()
    run = _run(callback, model, losses=[0.9, 0.6, 0.7, 0.5, 0.3, 0.8, 0.9],
               accuracies=[0.5, 0.8, 0.7, 0.8, 0.75, 0.7, 0.9])
    assert run == [0, 1, 2, 3, 4, 5]  # no better accuracy in epochs 4 and 5
    assert callback.best_epoch == 3 and callback.stopped_epoch == 5
    callback.on_train_end()
    assert all(np.all(w.numpy() == 3.0) for w in model.weights)


def test_state_of_a_run_written_before_tie_breaking_resumes(tmp_path):
    """An older state file holds `best` as a number; the resumed run reads it."""
    model = _model()
    first = KeepBestEpoch(str(tmp_path / "state"), patience=3)
    first.set_model(model)
    first.on_train_begin()
    _run(first, model, [0.9, 0.5, 0.6], stop_at=2)
    state_path = tmp_path / "state" / "best.json"
    state = json.loads(state_path.read_text())
    state["best"] = state["best"][0]
    state_path.write_text(json.dumps(state))
    second = KeepBestEpoch(str(tmp_path / "state"), patience=3)
    second.set_model(model)
    second.on_train_begin()
    _run(second, model, [0.9, 0.5, 0.6, 0.5, 0.4], first_epoch=3)
    assert second.best_epoch == 4  # epoch 3's equal 0.5 was no improvement
    assert second.wait == 0


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="`patience` must be None or an int >= 1. Received: 0"):
        KeepBestEpoch(str(tmp_path), patience=0)
    callback = KeepBestEpoch(str(tmp_path / "state"))
    callback.set_model(_model())
    callback.on_train_begin()
    with pytest.raises(ValueError, match="'val_loss' is not in the epoch logs"):
        callback.on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(ValueError, match="`mode` must be 'min' or 'max'. Received: 'best'"):
        KeepBestEpoch(str(tmp_path), mode="best")
