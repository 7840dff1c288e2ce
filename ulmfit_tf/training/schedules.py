"""Learning-rate schedules: ULMFiT's slanted triangular rate and one-cycle."""

import math

import keras
import tensorflow as tf


def _check(name, value, low, high=None, low_open=False):
    bad = value <= low if low_open else value < low
    if high is not None:
        bad = bad or value >= high
    if bad:
        interval = f"({low}, {high})" if high is not None else (
            f"> {low}" if low_open else f">= {low}")
        raise ValueError(f"`{name}` must be {interval}. Received: {value!r}")


@keras.saving.register_keras_serializable(package="ulmfit_tf")
class SlantedTriangular(keras.optimizers.schedules.LearningRateSchedule):
    """Slanted triangular learning rate (Howard & Ruder 2018, eq. 3).

    A short linear warm-up from ``max_lr / ratio`` to `max_lr` over the
    first ``cut = floor(total_steps * cut_frac)`` steps, then a long linear
    decay back to ``max_lr / ratio`` at `total_steps` (held there after):

        p = t / cut                          if t < cut
        p = 1 - (t - cut) / (T - cut)        otherwise
        lr = max_lr * (1 + p * (ratio - 1)) / ratio

    Eq. 3 writes the decay length as ``cut * (1 / cut_frac - 1)``, which is
    ``T - cut`` when ``T * cut_frac`` is a whole number and falls short of
    it otherwise (T=15: the rate would sit at its floor for the last third
    of the run). Ours always reaches the floor at T, as each stage of
    `StagedSlantedTriangular` does: the two are one formula.

    Args:
        max_lr: the peak rate (eta_max).
        total_steps: T, the number of training steps.
        cut_frac: fraction of steps spent increasing (paper: 0.1).
        ratio: how much smaller the lowest rate is than the peak (paper: 32).
    """

    def __init__(self, max_lr, total_steps, cut_frac=0.1, ratio=32.0):
        _check("max_lr", max_lr, 0, low_open=True)
        if not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"`total_steps` must be an int >= 1. Received: {total_steps!r}")
        if not 0 < cut_frac <= 1:
            raise ValueError(f"`cut_frac` must be in (0, 1]. Received: {cut_frac!r}")
        _check("ratio", ratio, 1)
        if total_steps > 1 and math.floor(total_steps * cut_frac) < 1:
            raise ValueError(
                f"`total_steps` * `cut_frac` must be >= 1 (a warm-up of at least one "
                f"step). Received: total_steps={total_steps}, cut_frac={cut_frac}")
        self.max_lr, self.total_steps = float(max_lr), total_steps
        self.cut_frac, self.ratio = float(cut_frac), float(ratio)
        # At least one decay step; a one-step run (a tiny `fit`) is all decay
        # and takes that step at the peak.
        self.cut = min(total_steps - 1, math.floor(total_steps * cut_frac))

    def __call__(self, step):
        t = tf.cast(step, tf.float32)
        cut = float(self.cut)
        p = tf.where(t < cut, t / max(cut, 1.0), 1.0 - (t - cut) / (self.total_steps - cut))
        p = tf.clip_by_value(p, 0.0, 1.0)
        return self.max_lr * (1.0 + p * (self.ratio - 1.0)) / self.ratio

    def get_config(self):
        return {"max_lr": self.max_lr, "total_steps": self.total_steps,
                "cut_frac": self.cut_frac, "ratio": self.ratio}


@keras.saving.register_keras_serializable(package="ulmfit_tf")
class StagedSlantedTriangular(keras.optimizers.schedules.LearningRateSchedule):
    """One slanted triangle per stage of training, each ending at its stage's end.

    For gradual unfreezing: every time a layer group is unfrozen, the rate
    warms up again (over `cut_frac` of the stage) and decays to
    ``max_lr / ratio`` by the stage's end, as ULMFiT's released scripts (one
    `fit` with a slanted triangle per stage) and fastai's recipe (one
    `fit_one_cycle` per stage) do. A single triangle over the whole run has
    decayed to a fraction of its peak by the time the lowest groups start
    training. Held at ``max_lr / ratio`` after the last stage.

    Args:
        max_lr: the peak rate of every stage.
        stage_steps: the number of steps of each stage, in order.
        cut_frac: fraction of each stage spent increasing (at least one step).
        ratio: how much smaller the lowest rate is than the peak.
    """

    def __init__(self, max_lr, stage_steps, cut_frac=0.1, ratio=32.0):
        _check("max_lr", max_lr, 0, low_open=True)
        stage_steps = list(stage_steps)
        if not stage_steps or not all(isinstance(n, int) and n >= 2 for n in stage_steps):
            raise ValueError("`stage_steps` must be a non-empty list of ints >= 2 (a warm-up "
                             f"and a decay step each). Received: {stage_steps!r}")
        _check("cut_frac", cut_frac, 0, 1, low_open=True)
        _check("ratio", ratio, 1)
        self.max_lr, self.stage_steps = float(max_lr), stage_steps
        self.cut_frac, self.ratio = float(cut_frac), float(ratio)
        self._starts = [sum(stage_steps[:i]) for i in range(len(stage_steps))]
        self._cuts = [min(n - 1, max(1, math.floor(n * cut_frac))) for n in stage_steps]

    def __call__(self, step):
        t = tf.cast(step, tf.float32)
        starts = tf.constant(self._starts, tf.float32)
        stage = tf.reduce_sum(tf.cast(t >= starts[1:], tf.int32))
        local = t - tf.gather(starts, stage)
        cut = tf.gather(tf.constant(self._cuts, tf.float32), stage)
        length = tf.gather(tf.constant(self.stage_steps, tf.float32), stage)
        p = tf.where(local < cut, local / cut, 1.0 - (local - cut) / (length - cut))
        p = tf.clip_by_value(p, 0.0, 1.0)
        return self.max_lr * (1.0 + p * (self.ratio - 1.0)) / self.ratio

    def get_config(self):
        return {"max_lr": self.max_lr, "stage_steps": list(self.stage_steps),
                "cut_frac": self.cut_frac, "ratio": self.ratio}


@keras.saving.register_keras_serializable(package="ulmfit_tf")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """fastai's one-cycle rate (`fit_one_cycle`), cosine in both phases.

    From ``max_lr / div`` up to `max_lr` over the first `pct_start` of the
    steps, then down to ``max_lr / div_final``. (fastai also cycles the
    momentum; Keras optimizers take a fixed beta_1, so we do not.)
    """

    def __init__(self, max_lr, total_steps, pct_start=0.25, div=25.0, div_final=1e5):
        _check("max_lr", max_lr, 0, low_open=True)
        if not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"`total_steps` must be an int >= 1. Received: {total_steps!r}")
        _check("pct_start", pct_start, 0, 1)
        _check("div", div, 1)
        _check("div_final", div_final, 1)
        self.max_lr, self.total_steps = float(max_lr), total_steps
        self.pct_start, self.div, self.div_final = float(pct_start), float(div), float(div_final)

    def __call__(self, step):
        t = tf.cast(step, tf.float32)
        warm = max(1.0, self.total_steps * self.pct_start)
        rest = max(1.0, self.total_steps - warm)

        def cosine(start, end, fraction):
            fraction = tf.clip_by_value(fraction, 0.0, 1.0)
            return end + (start - end) / 2 * (1 + tf.cos(math.pi * fraction))

        low, high, final = self.max_lr / self.div, self.max_lr, self.max_lr / self.div_final
        return tf.where(t < warm, cosine(low, high, t / warm),
                        cosine(high, final, (t - warm) / rest))

    def get_config(self):
        return {"max_lr": self.max_lr, "total_steps": self.total_steps,
                "pct_start": self.pct_start, "div": self.div, "div_final": self.div_final}


@keras.saving.register_keras_serializable(package="ulmfit_tf")
class ScaledSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule` × `multiplier`: a lower layer group's share of the rate,
    with the same shape and step as the top group's."""

    def __init__(self, schedule, multiplier):
        if isinstance(schedule, dict):
            schedule = keras.optimizers.schedules.deserialize(schedule)
        if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            raise TypeError("`schedule` must be a LearningRateSchedule. "
                            f"Received: {schedule!r}")
        _check("multiplier", multiplier, 0)
        self.schedule, self.multiplier = schedule, float(multiplier)

    def __call__(self, step):
        return self.schedule(step) * self.multiplier

    def get_config(self):
        return {"schedule": keras.optimizers.schedules.serialize(self.schedule),
                "multiplier": self.multiplier}
