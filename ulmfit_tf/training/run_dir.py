"""Run directories: resolved config, metrics, curves and the model, written safely."""

import dataclasses
import json
import os
import time

import keras

from ulmfit_tf.utils import atomic_write


def write_json(path, data):
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.write("\n")


def write_config(run_dir, config, **extra):
    """Writes the resolved `config.json` (a dataclass plus anything extra)."""
    data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    data.update(extra)
    write_json(os.path.join(run_dir, "config.json"), data)


def save_model(model, path):
    """`model.save` to a temporary name, then rename: no half-written model."""
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, ".tmp-" + name)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_model_file(path, compile=False):
    """`keras.saving.load_model` with errors that name the file and say
    what is wrong with it (Keras says "File not found" for a truncated one)."""
    import zipfile

    import ulmfit_tf

    ulmfit_tf.import_keras_classes()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No model file at {path!r}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"Could not read the model file {path!r}: it is not a .keras "
                         "archive (truncated or corrupt?)")
    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as e:  # Keras raises many kinds for a damaged archive
        raise ValueError(f"Could not read the model file {path!r} ({type(e).__name__}: "
                         f"{e})") from e


def run_kind(run_dir):
    """``"classifier"`` or ``"language_model"``: what a run directory holds."""
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"No run directory at {run_dir!r}")
    if not os.path.isfile(os.path.join(run_dir, "model.keras")):
        raise FileNotFoundError(f"No model.keras in the run directory {run_dir!r}")
    if os.path.isfile(os.path.join(run_dir, "classes.json")):
        return "classifier"
    return "language_model"


def require_run(run_dir, kind, arg_name="run"):
    """Checks that `run_dir` is a run of `kind`, with an error naming `arg_name`."""
    found = run_kind(run_dir)
    if found != kind:
        names = {"classifier": "classifier", "language_model": "language-model"}
        raise ValueError(f"`{arg_name}` must be a {names[kind]} run directory. Received: "
                         f"{run_dir!r}, which holds a {names[found]}.")


def save_figure(fig, path):
    """Writes a matplotlib figure as PNG (temporary name, then rename) and closes it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def plot_history(history, path, title, batch_losses=None):
    """Training curves as a PNG: per-epoch losses, and per-batch loss if given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if batch_losses else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
    ax = axes[0][0]
    for key, values in history.items():
        if key.endswith("loss") or "accuracy" in key or "error" in key:
            ax.plot(range(1, len(values) + 1), values, marker="o", label=key)
    ax.set_xlabel("epoch")
    ax.legend()
    ax.set_title(title)
    if batch_losses:
        ax = axes[0][1]
        smooth, beta, out = 0.0, 0.98, []
        for i, loss in enumerate(batch_losses, 1):  # fastai's debiased moving average
            smooth = beta * smooth + (1 - beta) * loss
            out.append(smooth / (1 - beta ** i))
        ax.plot(batch_losses, linewidth=0.5, alpha=0.4, label="batch")
        ax.plot(out, linewidth=1.2, label="smoothed")
        ax.set_xlabel("training step")
        ax.set_ylabel("training loss")
        ax.legend()
    save_figure(fig, path)


def best_epoch_callback(run_dir, config):
    """The `KeepBestEpoch` of a classifier run (a `ClassifierConfig`): its
    state in the run's backup folder (None: in memory only).

    ``config.monitor="val_accuracy"`` follows the task's accuracy (binary
    accuracy for multi-label tasks), ties going to the lower loss."""
    from ulmfit_tf.training.callbacks import KeepBestEpoch

    state_dir = None if run_dir is None else os.path.join(run_dir, "backup", "best")
    if config.monitor == "val_loss":
        monitor, mode, tie_breaker = "val_loss", "min", None
    else:
        monitor = "val_binary_accuracy" if config.task == "multi_label" else "val_accuracy"
        mode, tie_breaker = "max", "val_loss"
    return KeepBestEpoch(state_dir, monitor, patience=config.patience,
                         restore_best=config.restore_best, mode=mode, tie_breaker=tie_breaker)


class BatchLossRecorder(keras.callbacks.Callback):
    """Keeps each training batch's own loss, for the per-step curve.

    Keras logs the running mean of the epoch; batch k's loss is recovered
    as ``k * mean_k - (k - 1) * mean_(k-1)`` (batches of equal size)."""

    def __init__(self):
        super().__init__()
        self.losses = []

    def on_epoch_begin(self, epoch, logs=None):
        self._previous_mean = 0.0

    def on_train_batch_end(self, batch, logs=None):
        if logs and "loss" in logs:
            mean = float(logs["loss"])
            self.losses.append((batch + 1) * mean - batch * self._previous_mean)
            self._previous_mean = mean


def fit_run(model, train, valid, epochs, run_dir, seed, callbacks=(), verbose=1,
            keep_best=None, fit_kwargs=None, fit=None):
    """`model.fit` as every stage runs it: resumable from ``run_dir/backup``
    (None: not resumable), data and dropout seeded by epoch (so a resumed run
    equals an uninterrupted one), progress lines when the output is a log.

    `train` and `valid` are batch objects with `as_dataset()` (`LMStream`,
    `ClassificationBatches`), or `tf.data.Dataset`s. `keep_best`, a
    `KeepBestEpoch` (see `best_epoch_callback`), goes before the backup so
    that it can tell a replayed epoch. `fit`: the fit function to call
    (default `model.fit`; a text model passes Keras' own, under its override).

    Returns (history dict, wall seconds, per-batch training losses).
    """
    from ulmfit_tf.training.callbacks import DataEpoch, ProgressLog, ReseedEachEpoch

    batches = BatchLossRecorder()
    all_callbacks = [*([keep_best] if keep_best else [])]
    if run_dir is not None:
        all_callbacks.append(keras.callbacks.BackupAndRestore(os.path.join(run_dir, "backup")))
    if hasattr(train, "as_dataset"):
        all_callbacks.append(DataEpoch(train, valid if hasattr(valid, "as_dataset") else None))
    all_callbacks += [ReseedEachEpoch(seed), batches, *callbacks]
    if verbose == 2:  # a log, not a terminal: progress lines within each epoch
        all_callbacks.append(ProgressLog())
    start = time.perf_counter()
    history = (fit or model.fit)(
        train.as_dataset() if hasattr(train, "as_dataset") else train, epochs=epochs,
        verbose=verbose, shuffle=False, callbacks=all_callbacks,
        validation_data=valid.as_dataset() if hasattr(valid, "as_dataset") else valid,
        **(fit_kwargs or {}))
    history = {k: [float(x) for x in v] for k, v in history.history.items()}
    return history, round(time.perf_counter() - start, 1), batches.losses
