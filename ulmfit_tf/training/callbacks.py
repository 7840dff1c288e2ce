"""Callbacks for ULMFiT training."""

import json
import os

import keras
import numpy as np


class GradualUnfreezing(keras.callbacks.Callback):
    """Unfreezes one more layer group per epoch, from the top (ULMFiT sec. 3.3).

    Epoch 0 trains the top group only, epoch 1 the top two, and so on until
    all groups train. All within one `model.fit`: after toggling
    `layer.trainable`, the compiled train function is rebuilt, since the one
    Keras traced keeps the variable set it was traced with.

    The optimizer must know every variable before anything is frozen; this
    callback builds it on all of them when training begins (or checks that
    an already built one knows them all).

    Args:
        layer_groups: list of lists of layers, bottom first.
        unfrozen_per_epoch: how many groups (from the top) train in epoch e;
            default ``[1, 2, ..., n]`` (then all).
    """

    def __init__(self, layer_groups, unfrozen_per_epoch=None):
        super().__init__()
        self.layer_groups = layer_groups
        n = len(layer_groups)
        self.unfrozen_per_epoch = list(unfrozen_per_epoch or range(1, n + 1))
        for count in self.unfrozen_per_epoch:
            if not 1 <= count <= n:
                raise ValueError(f"`unfrozen_per_epoch` values must be in [1, {n}]. "
                                 f"Received: {self.unfrozen_per_epoch}")
        self._current = None

    def unfrozen_groups(self, epoch):
        if epoch < len(self.unfrozen_per_epoch):
            return self.unfrozen_per_epoch[epoch]
        return len(self.layer_groups)

    def on_train_begin(self, logs=None):
        # Build the optimizer on every variable now, before anything is
        # frozen: Keras builds it lazily at the first step, which would leave
        # out the groups frozen in epoch 0.
        for group in self.layer_groups:
            for layer in group:
                layer.trainable = True
        optimizer = self.model.optimizer
        everything = self.model.trainable_variables
        if not optimizer.built:
            optimizer.build(everything)
        else:
            known = {id(v) for v in optimizer._trainable_variables}
            missing = [v.path for v in everything if id(v) not in known]
            if missing:
                raise ValueError(
                    "GradualUnfreezing: the optimizer was built without some variables "
                    f"({missing[:3]}...); let fit build it, or build it on "
                    "`model.trainable_variables` with every group trainable.")
        self._current = None

    def on_epoch_begin(self, epoch, logs=None):
        count = self.unfrozen_groups(epoch)
        if count == self._current:
            return
        first_trainable = len(self.layer_groups) - count
        for g, group in enumerate(self.layer_groups):
            for layer in group:
                layer.trainable = g >= first_trainable
        self._current = count
        self.model.make_train_function(force=True)

    def on_train_end(self, logs=None):
        for group in self.layer_groups:
            for layer in group:
                layer.trainable = True
        self.model.make_train_function(force=True)


class DataEpoch(keras.callbacks.Callback):
    """Keeps the training batches on the epoch fit is at (and validation on
    epoch 0), so a resumed run reads the same batches as an uninterrupted one."""

    def __init__(self, train, valid=None):
        super().__init__()
        self.train, self.valid = train, valid

    def on_epoch_begin(self, epoch, logs=None):
        self.train.epoch = epoch
        if self.valid is not None:
            self.valid.epoch = 0


class StopAfterEpoch(keras.callbacks.Callback):
    """Kills the process after an epoch (after checkpoints are written):
    how the tests interrupt a run to check that resuming loses nothing."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            os._exit(17)


class ReseedEachEpoch(keras.callbacks.Callback):
    """Sets every dropout random stream to a state derived from (seed, epoch).

    Keras saves weights and optimizer state in checkpoints but not the state
    of its random seed generators, so a run resumed from a checkpoint would
    draw other dropout masks than the uninterrupted run. Reseeding at each
    epoch start makes the masks depend on (seed, generator, epoch, step)
    only: a resumed run then reproduces the uninterrupted one exactly.

    The epoch goes into the generator's key, not its counter: Keras adds one
    to the counter per draw, so a counter of `epoch` would replay the last
    epoch's masks shifted by one step. Generators are taken in the model's
    order of variables, which its structure fixes (their auto-generated
    names depend on what else the process built first).
    """

    def __init__(self, seed=0):
        super().__init__()
        self.seed = int(seed)

    def on_epoch_begin(self, epoch, logs=None):
        states = [v for v in self.model.variables if v.path.endswith("seed_generator_state")]
        for i, state in enumerate(states):
            key = np.random.SeedSequence([self.seed, i, epoch]).generate_state(1)[0]
            state.assign(np.array([key & 0x7FFFFFFF, 0], state.dtype))


class ProgressLog(keras.callbacks.Callback):
    """Progress lines for logs (no terminal, so no progress bar): every
    `every` of an epoch's steps, the step, the loss and the elapsed time.
    `name` replaces "epoch N" at the start of each line."""

    def __init__(self, every=0.1, stream=None, name=None):
        super().__init__()
        self.every, self.stream, self.name = every, stream, name

    def on_epoch_begin(self, epoch, logs=None):
        import time

        self._epoch, self._start, self._next = epoch, time.perf_counter(), self.every

    def on_train_batch_end(self, batch, logs=None):
        import sys
        import time

        steps = self.params.get("steps") or 0
        if steps and (batch + 1) / steps >= self._next:
            self._next += self.every
            loss = (logs or {}).get("loss")
            print(f"{self.name or f'epoch {self._epoch + 1}'}: step {batch + 1}/{steps}"
                  + (f", loss {float(loss):.4f}" if loss is not None else "")
                  + f", {time.perf_counter() - self._start:.0f} s",
                  file=self.stream or sys.stdout, flush=True)


class KeepBestEpoch(keras.callbacks.Callback):
    """Early stopping that ends with the best epoch's weights, and survives
    an interrupted run.

    After each epoch, compares `monitor` (validation loss by default) with
    the best so far; stops training once `patience` epochs in a row did not
    improve on it, and at the end of training restores the weights of the
    best epoch. Keras' `EarlyStopping(restore_best_weights=True)` does the
    same in memory only: a run resumed by `BackupAndRestore` would forget
    the best epoch before the interruption and end with other weights than
    the uninterrupted run. This one keeps its state and the best weights in
    `state_dir` (the run's backup folder, which `BackupAndRestore` deletes
    when training ends). Put it before `BackupAndRestore` among the
    callbacks: an epoch is then recorded here before the backup of it is
    written, and an epoch replayed after an interruption between the two
    (bit-identical on resume) is recognised and not counted twice.

    Args:
        state_dir: folder for the state (``best.json``, ``best-E.weights.h5``);
            None keeps it in memory only (a run that is not resumable).
        monitor: a key of the epoch logs.
        patience: epochs without improvement before stopping; None never stops.
        restore_best: end with the best epoch's weights (else the last's).
        mode: "min" (lower `monitor` is better) or "max".
        tie_breaker: a key of the epoch logs, lower better, that decides
            between epochs of equal `monitor` (an accuracy on a small
            validation split ties often); None: the earlier epoch stays.
    """

    def __init__(self, state_dir, monitor="val_loss", patience=2, restore_best=True,
                 mode="min", tie_breaker=None):
        super().__init__()
        if patience is not None and (not isinstance(patience, int) or patience < 1):
            raise ValueError(f"`patience` must be None or an int >= 1. Received: {patience!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"`mode` must be 'min' or 'max'. Received: {mode!r}")
        self.state_dir, self.monitor, self.patience = state_dir, monitor, patience
        self.restore_best, self.mode, self.tie_breaker = restore_best, mode, tie_breaker
        self.best_epoch = None
        self.stopped_epoch = None

    @property
    def _state_path(self):
        return os.path.join(self.state_dir, "best.json")

    def _weights_path(self, epoch):
        return os.path.join(self.state_dir, f"best-{epoch}.weights.h5")

    def on_train_begin(self, logs=None):
        self.best, self.best_epoch, self.wait, self._weights = [np.inf, np.inf], None, 0, None
        self.stopped_epoch, self._last_epoch = None, -1
        # A resumed run: what it had found before the interruption.
        if self.state_dir is not None and os.path.isfile(self._state_path):
            with open(self._state_path) as f:
                state = json.load(f)
            self.best, self.best_epoch, self.wait = state["best"], state["epoch"], state["wait"]
            if not isinstance(self.best, list):  # a state written before tie-breaking
                self.best = [self.best, 0.0]
            self._last_epoch = state["last_epoch"]
            # Read the best weights through the model, then put back what it
            # held (BackupAndRestore restores the last epoch's after this).
            current = self.model.get_weights()
            self.model.load_weights(self._weights_path(self.best_epoch))
            self._weights = [np.array(w) for w in self.model.get_weights()]
            self.model.set_weights(current)

    def on_epoch_end(self, epoch, logs=None):
        if epoch <= self._last_epoch:  # replayed after an interruption: already counted
            return
        value = [self._read(logs, self.monitor) * (1 if self.mode == "min" else -1),
                 self._read(logs, self.tie_breaker) if self.tie_breaker else 0.0]
        if value < self.best:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            self._weights = [np.array(w) for w in self.model.get_weights()]
        else:
            self.wait += 1
        self._last_epoch = epoch
        if self.state_dir is not None:
            self._write_state(epoch)
        if self.patience is not None and self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    @staticmethod
    def _read(logs, key):
        value = (logs or {}).get(key)
        if value is None:
            raise ValueError(f"KeepBestEpoch: {key!r} is not in the epoch logs "
                             f"{sorted(logs or {})}; is there validation data?")
        return float(value)

    def _write_state(self, epoch):
        from ulmfit_tf.utils import atomic_write

        os.makedirs(self.state_dir, exist_ok=True)
        if self.best_epoch == epoch:
            path = self._weights_path(epoch)
            tmp = os.path.join(self.state_dir, ".tmp-" + os.path.basename(path))
            self.model.save_weights(tmp)
            os.replace(tmp, path)
        with atomic_write(self._state_path, "w") as f:
            json.dump({"best": self.best, "epoch": self.best_epoch, "wait": self.wait,
                       "last_epoch": epoch}, f)
        keep = os.path.basename(self._weights_path(self.best_epoch))
        for old in os.listdir(self.state_dir):  # earlier bests, now superseded
            if old.startswith("best-") and old != keep:
                os.remove(os.path.join(self.state_dir, old))

    def on_train_end(self, logs=None):
        if self.restore_best and self._weights is not None:
            self.model.set_weights(self._weights)
