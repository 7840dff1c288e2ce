"""Callbacks for ULMFiT training."""

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
            import os

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
    `every` of an epoch's steps, the step, the loss and the elapsed time."""

    def __init__(self, every=0.1, stream=None):
        super().__init__()
        self.every, self.stream = every, stream

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
            print(f"epoch {self._epoch + 1}: step {batch + 1}/{steps}"
                  + (f", loss {float(loss):.4f}" if loss is not None else "")
                  + f", {time.perf_counter() - self._start:.0f} s",
                  file=self.stream or sys.stdout, flush=True)
