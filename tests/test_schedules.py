import math

import keras
import numpy as np
import pytest

from ulmfit_tf.training import (GradualUnfreezing, OneCycle, SlantedTriangular,
                                StagedSlantedTriangular)
from ulmfit_tf.training.classifier import ClassifierConfig, _schedule


def paper_stlr(t, T, max_lr, cut_frac=0.1, ratio=32):
    """Eq. 3 as printed (its decay length is T - cut only when T * cut_frac
    is a whole number)."""
    cut = math.floor(T * cut_frac)
    p = t / cut if t < cut else 1 - (t - cut) / (cut * (1 / cut_frac - 1))
    return max_lr * (1 + p * (ratio - 1)) / ratio


def stlr_to_the_end(t, T, max_lr, cut_frac=0.1, ratio=32):
    cut = math.floor(T * cut_frac)
    p = t / cut if t < cut else 1 - (t - cut) / (T - cut)
    return max_lr * (1 + max(p, 0) * (ratio - 1)) / ratio


@pytest.mark.parametrize("total, cut_frac, ratio", [(1000, 0.1, 32), (140, 0.2, 10), (50, 0.1, 32)])
def test_stlr_matches_equation_3(total, cut_frac, ratio):
    schedule = SlantedTriangular(0.01, total, cut_frac, ratio)
    got = np.array([float(schedule(t)) for t in range(total + 1)])
    want = np.array([paper_stlr(t, total, 0.01, cut_frac, ratio) for t in range(total + 1)])
    np.testing.assert_allclose(got, np.maximum(want, 0.01 / ratio), rtol=1e-5)
    cut = math.floor(total * cut_frac)
    assert got.argmax() == cut and math.isclose(got[cut], 0.01, rel_tol=1e-6)
    assert math.isclose(got[0], 0.01 / ratio, rel_tol=1e-6)
    assert got[-1] == pytest.approx(0.01 / ratio, rel=0.05)
    assert float(schedule(10 * total)) == pytest.approx(0.01 / ratio)


@pytest.mark.parametrize("total, cut_frac", [(15, 0.1), (37, 0.1), (137, 0.2), (23, 0.3)])
def test_stlr_of_odd_lengths_decays_until_the_last_step(total, cut_frac):
    schedule = SlantedTriangular(0.01, total, cut_frac)
    got = np.array([float(schedule(t)) for t in range(total + 1)])
    want = [stlr_to_the_end(t, total, 0.01, cut_frac) for t in range(total + 1)]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    cut = math.floor(total * cut_frac)
    assert np.all(np.diff(got[cut:]) < 0)  # no step at the floor before T
    assert got[total] == pytest.approx(0.01 / 32) and got[total - 1] > 0.01 / 32 * 1.01
    one_stage = StagedSlantedTriangular(0.01, [total], cut_frac)
    np.testing.assert_allclose([float(one_stage(t)) for t in range(total + 5)],
                               [float(schedule(t)) for t in range(total + 5)], rtol=1e-6)


def test_staged_stlr_is_equation_3_restarted_at_each_stage():
    stages = [100, 50, 200]  # cut_frac 0.1: cuts 10, 5, 20
    schedule = StagedSlantedTriangular(0.01, stages, cut_frac=0.1, ratio=32)
    got = np.array([float(schedule(t)) for t in range(sum(stages) + 10)])
    start = 0
    for length in stages:
        want = [paper_stlr(t, length, 0.01) for t in range(length)]
        np.testing.assert_allclose(got[start:start + length], want, rtol=1e-5)
        assert got[start] == pytest.approx(0.01 / 32)  # every stage warms up again
        assert got[start + length // 10] == pytest.approx(0.01)
        start += length
    np.testing.assert_allclose(got[start:], 0.01 / 32, rtol=1e-5)
    single = SlantedTriangular(0.01, 100)
    one_stage = StagedSlantedTriangular(0.01, [100])
    assert [float(one_stage(t)) for t in range(120)] == \
        pytest.approx([float(single(t)) for t in range(120)], rel=1e-6)


@pytest.mark.parametrize("epochs, unfreezing, want", [
    (8, True, [10, 10, 10, 10, 40]),  # 5 groups: a stage per new group, then the rest
    (3, True, [10, 10, 10]),
    (8, False, [80]),
])
def test_classifier_stages_follow_gradual_unfreezing(epochs, unfreezing, want):
    config = ClassifierConfig(epochs=epochs, schedule="stlr_stages",
                              gradual_unfreezing=unfreezing)
    callback = GradualUnfreezing([[]] * 5) if unfreezing else None
    assert _schedule(config, steps_per_epoch=10, unfreezing=callback).stage_steps == want
    # One step per epoch leaves no room for a warm-up per stage.
    assert _schedule(config, steps_per_epoch=1, unfreezing=callback).stage_steps == [epochs]
    with pytest.raises(ValueError, match="`schedule` must be one of"):
        ClassifierConfig(schedule="stlr_per_stage")


def test_one_cycle_shape():
    schedule = OneCycle(1e-2, 100, pct_start=0.25)
    lrs = np.array([float(schedule(t)) for t in range(101)])
    assert lrs[0] == pytest.approx(1e-2 / 25, rel=1e-5) and lrs.argmax() == 25
    assert lrs[25] == pytest.approx(1e-2, rel=1e-5)
    assert lrs[100] == pytest.approx(1e-7, rel=1e-3)
    assert np.all(np.diff(lrs[:26]) > 0) and np.all(np.diff(lrs[25:]) < 0)


@pytest.mark.parametrize("cls, steps, kwargs", [
    (SlantedTriangular, 200, dict(cut_frac=0.3, ratio=8)),
    (StagedSlantedTriangular, [60, 140], dict(cut_frac=0.3, ratio=8)),
    (OneCycle, 200, dict(pct_start=0.3))])
def test_schedule_serialisation(cls, steps, kwargs, tmp_path):
    schedule = cls(3e-3, steps, **kwargs)
    clone = cls.from_config(schedule.get_config())
    assert [float(clone(t)) for t in (0, 50, 199)] == [float(schedule(t)) for t in (0, 50, 199)]
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule))
    assert float(restored(17)) == float(schedule(17))
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    restored_optimizer = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert restored_optimizer.get_config()["learning_rate"] == \
        keras.optimizers.schedules.serialize(schedule)


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_lr=0, total_steps=10), "`max_lr` must be > 0. Received: 0"),
    (dict(max_lr=1e-3, total_steps=0), "`total_steps` must be an int >= 1. Received: 0"),
    (dict(max_lr=1e-3, total_steps=10, cut_frac=1.5), r"`cut_frac` must be in \(0, 1\]"),
    (dict(max_lr=1e-3, total_steps=10, cut_frac=0), r"`cut_frac` must be in \(0, 1\]"),
    (dict(max_lr=1e-3, total_steps=10, ratio=0.5), "`ratio` must be >= 1"),
    (dict(max_lr=1e-3, total_steps=5, cut_frac=0.1), "warm-up of at least one step"),
])
def test_stlr_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SlantedTriangular(**kwargs)


def test_stlr_of_one_or_two_steps():
    """What the stages' `cut_frac=max(0.1, 1 / total_steps)` gives a tiny fit:
    a one-step run takes its step at the peak; two steps warm up, then peak."""
    one = SlantedTriangular(1e-2, 1, cut_frac=1.0)
    assert float(one(0)) == pytest.approx(1e-2) and float(one(1)) == pytest.approx(1e-2 / 32)
    two = SlantedTriangular(1e-2, 2, cut_frac=0.5)
    assert [float(two(t)) for t in range(3)] == pytest.approx([1e-2 / 32, 1e-2, 1e-2 / 32])
    assert np.isfinite([float(one(t)) for t in range(5)]).all()


@pytest.mark.parametrize("stages, message", [
    ([], "`stage_steps` must be a non-empty list of ints >= 2"),
    ([10, 1], r"Received: \[10, 1\]"),
    ([10, 2.5], r"Received: \[10, 2.5\]"),
])
def test_staged_stlr_argument_errors(stages, message):
    with pytest.raises(ValueError, match=message):
        StagedSlantedTriangular(1e-3, stages)


def test_scaled_schedule_scales_and_round_trips():
    from ulmfit_tf.training import ScaledSchedule

    base = SlantedTriangular(1e-2, 20)
    scaled = ScaledSchedule(base, 0.25)
    for step in (0, 2, 10, 19):
        np.testing.assert_allclose(float(scaled(step)), 0.25 * float(base(step)), rtol=1e-6)
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(scaled))
    assert isinstance(restored, ScaledSchedule) and restored.get_config() == scaled.get_config()
    np.testing.assert_allclose(float(restored(7)), float(scaled(7)))
    with pytest.raises(TypeError, match="`schedule` must be a LearningRateSchedule"):
        ScaledSchedule(0.1, 2.0)
    with pytest.raises(ValueError, match="`multiplier` must be >= 0"):
        ScaledSchedule(base, -1.0)
