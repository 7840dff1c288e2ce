"""Learning-rate finder (Smith 2015; fastai's `lr_find`)."""

import math

import keras
import numpy as np

from ulmfit_tf.training.callbacks import ProgressLog
from ulmfit_tf.training.run_dir import save_figure


class _ExponentialRate(keras.callbacks.Callback):
    def __init__(self, start, end, steps):
        super().__init__()
        self.start, self.factor, self.steps = start, (end / start) ** (1 / max(steps - 1, 1)), steps
        self.rates, self.losses, self._best, self._smooth = [], [], math.inf, 0.0

    def _rate(self, step):
        return self.start * self.factor ** step

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate.assign(self._rate(len(self.rates)))

    def on_train_batch_end(self, batch, logs=None):
        step = len(self.rates)
        # Keras logs the epoch's running mean; recover this batch's loss.
        mean = float(logs["loss"])
        loss = (batch + 1) * mean - batch * getattr(self, "_previous_mean", 0.0)
        self._previous_mean = mean
        self._smooth = 0.98 * self._smooth + 0.02 * loss
        smooth = self._smooth / (1 - 0.98 ** (step + 1))
        self.rates.append(self._rate(step))
        self.losses.append(smooth)
        self._best = min(self._best, smooth)
        if step + 1 >= self.steps or not math.isfinite(smooth) or smooth > 4 * self._best:
            self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self._previous_mean = 0.0


def lr_find(model, dataset, start_lr=1e-7, end_lr=10.0, num_steps=100, suggest="valley",
            verbose=0):
    """Trains with an exponentially growing rate, then restores the weights.

    `model` must be compiled with an optimizer whose rate is a float (not a
    schedule). Returns (rates, smoothed losses, suggested rate), the rate
    chosen by fastai's rule `suggest`: "valley" (fastai's default since
    2.5: part way down the longest descent) or "steep" (where the smoothed
    loss falls fastest against log rate). `verbose` as `model.fit`'s; 2
    adds progress lines for a log (on long documents the test can take
    minutes).
    """

    if not 0 < start_lr < end_lr:
        raise ValueError(f"Need 0 < `start_lr` < `end_lr`. Received: {start_lr}, {end_lr}")
    if suggest not in SUGGESTIONS:
        raise ValueError(f"`suggest` must be one of {tuple(SUGGESTIONS)}. Received: {suggest!r}")
    weights = [v.numpy() for v in model.variables]
    optimizer_state = [v.numpy() for v in model.optimizer.variables] \
        if model.optimizer.built else None
    finder = _ExponentialRate(start_lr, end_lr, num_steps)
    data = dataset.repeat()
    progress = [ProgressLog(name="range test")] if verbose == 2 else []
    model.fit(data, epochs=1, steps_per_epoch=num_steps, callbacks=[finder, *progress],
              verbose=verbose, shuffle=False)
    for v, w in zip(model.variables, weights):
        v.assign(w)
    if optimizer_state is not None:
        for v, w in zip(model.optimizer.variables, optimizer_state):
            v.assign(w)
    rates, losses = np.array(finder.rates), np.array(finder.losses)
    if len(losses) < 3:
        raise ValueError("The loss diverged at once; lower `start_lr`.")
    return rates, losses, SUGGESTIONS[suggest](rates, losses, num_steps)


def steep(rates, losses, num_steps):
    """The rate where the smoothed loss falls fastest, before its minimum."""
    # Skip the first steps (noisy) and the diverging tail.
    end = int(np.argmin(losses)) + 1
    begin = min(len(losses) // 10, max(end - 2, 0))
    slopes = np.gradient(losses[begin:end], np.log(rates[begin:end])) \
        if end - begin >= 2 else np.array([0.0])
    return float(rates[begin + int(np.argmin(slopes))])


def valley(rates, losses, num_steps):
    """fastai's `valley`: the longest run of falling losses (a longest
    decreasing subsequence), and the rate a half of the way down it; as
    fastai, without the first tenth of the steps and the last five."""
    steps_run = len(losses)
    rates, losses = rates[num_steps // 10:-5], losses[num_steps // 10:-5]
    if len(losses) < 2:
        raise ValueError(f"The range test stopped after too few steps for a suggestion "
                         f"({steps_run} of {num_steps}); lower `start_lr`.")
    longest = np.ones(len(losses), int)
    start = end = 0
    for i in range(1, len(losses)):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
            if longest[end] < longest[i]:
                end, start = i, i - longest[i]
    third = (end - start) / 3
    return float(rates[start + int(third) + int(third / 2)])


SUGGESTIONS = {"valley": valley, "steep": steep}


def plot_lr_find(rates, losses, suggestion, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(rates, losses)
    ax.axvline(suggestion, color="red", linestyle="--", label=f"suggested {suggestion:.2e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("smoothed training loss")
    ax.legend()
    save_figure(fig, path)
