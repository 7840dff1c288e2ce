"""Running the three stages under `tf.distribute`.

`make_strategy` builds the strategy a stage runs under; create the models
and call the stages inside ``strategy.scope()``. Batch sizes in the configs
are global: each of R replicas gets ``batch_size / R`` rows of a batch.

Keras 3.15 cannot `fit` under `MultiWorkerMirroredStrategy` (TF issue
72388); `patch_keras_for_multi_worker` mends the two places that fail, and
`make_strategy("multi_worker")` applies it. One of them also breaks
`MirroredStrategy` when the first batch of a `fit`/`evaluate`/`predict`
does not split evenly between the replicas; that mend is applied when this
module is imported. tests/test_distribute.py checks that Keras still fails
without them, so the patch goes once Keras is fixed.
"""

import json
import os
import warnings

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(kind="default", devices=None):
    """The strategy a stage runs under.

    Args:
        kind: "default" (one device), "mirrored" (all GPUs of this host, or
            `devices`) or "multi_worker" (one process per host, the cluster
            described by the ``TF_CONFIG`` environment variable).
        devices: for "mirrored", the devices to use (default all GPUs, else
            the CPU).
    """
    if kind not in STRATEGIES:
        raise ValueError(f"`kind` must be one of {STRATEGIES}. Received: {kind!r}")
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    if devices is not None:
        raise ValueError("`devices` is only for kind='mirrored'; a multi-worker "
                         f"strategy uses every GPU of each worker. Received: {devices!r}")
    config = os.environ.get("TF_CONFIG")
    if not config:
        raise ValueError("kind='multi_worker' needs the TF_CONFIG environment variable "
                         "(cluster and this worker's task); it is not set.")
    try:
        json.loads(config)
    except ValueError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}). Received: {config!r}")
    patch_keras_for_multi_worker()
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy=None):
    """Whether this process writes the run directory: always, except on the
    workers of a multi-worker cluster other than the chief (worker 0)."""
    strategy = strategy or tf.distribute.get_strategy()
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    if "chief" in resolver.cluster_spec().as_dict():
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0


def worker_run_dir(run_dir, strategy=None):
    """Where this process writes: ``run_dir`` on the chief, a per-worker
    folder inside it elsewhere (their checkpoints must not collide)."""
    strategy = strategy or tf.distribute.get_strategy()
    if is_chief(strategy):
        return run_dir
    resolver = strategy.cluster_resolver
    return os.path.join(run_dir, "workers", f"{resolver.task_type}-{resolver.task_id}")


def resolve_jit_compile(jit_compile, strategy=None):
    """`jit_compile` for `model.compile` under `strategy`.

    XLA cannot compile the replicated step on CPU devices (measured: it fails
    under `MirroredStrategy` on two logical CPUs), so it is off there even
    when asked for. Elsewhere "auto" leaves the choice to Keras (XLA on GPUs,
    none on a CPU-only host).
    """
    if jit_compile not in (True, False, "auto"):
        raise ValueError(f"`jit_compile` must be True, False or 'auto'. Received: {jit_compile!r}")
    strategy = strategy or tf.distribute.get_strategy()
    if strategy.num_replicas_in_sync > 1 and jit_compile:
        devices = strategy.extended.worker_devices
        if all(tf.DeviceSpec.from_string(d).device_type == "CPU" for d in devices):
            if jit_compile is True:
                warnings.warn("jit_compile=True is off: XLA cannot compile a step "
                              "replicated over CPU devices.", stacklevel=2)
            return False
    return jit_compile


def patch_keras_for_multi_worker():
    """Lets Keras 3 `fit`/`evaluate` under `MultiWorkerMirroredStrategy`.

    Two places in keras/src/backend/tensorflow/trainer.py fail there (TF
    issue 72388); each patch below mends one, and only multi-worker runs
    take the mended paths. Idempotent.
    """
    _patch_symbolic_build()
    _patch_metric_reduction()


def _patch_symbolic_build():
    """`_maybe_symbolic_build` takes the cross-replica MEAN of a data batch
    (only to learn its shapes) with `strategy.reduce`, which cannot convert
    a worker's PerReplica batch on several workers ("Attempt to convert a
    value (PerReplica...)") and fails on one host when the replicas' parts
    differ in size (a batch of 5 on 2 replicas: "Inputs to operation AddN
    ... must have the same size and shape"). Mended: it builds from this
    worker's first replica's batch, as it does without a strategy. Keras'
    own function stays reachable as ``._ulmfit_original``."""
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as trainer_module

    trainer_class = trainer_module.TensorFlowTrainer
    if getattr(trainer_class._maybe_symbolic_build, "_ulmfit_patch", False):
        return
    original = trainer_class._maybe_symbolic_build

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is None or strategy is None:
            return original(self, iterator=iterator, data_batch=data_batch)
        for _, _, it in iterator:
            data_batch = tree.map_structure(
                lambda x: strategy.experimental_local_results(x)[0]
                if isinstance(x, tf.distribute.DistributedValues) else x, next(it))
            break
        return original(self, data_batch=data_batch)

    _maybe_symbolic_build._ulmfit_patch = True
    _maybe_symbolic_build._ulmfit_original = original
    trainer_class._maybe_symbolic_build = _maybe_symbolic_build


def _patch_metric_reduction():
    """`reduce_per_replica` averages a step's metrics over workers with
    `strategy.reduce("MEAN", v, axis=0)`, but metrics are scalars ("Invalid
    reduction dimension 0 for input with 0 dimensions"). Mended: the mean is
    over replicas only (axis None), as Keras computes it on one worker."""
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as trainer_module

    if getattr(trainer_module.reduce_per_replica, "_ulmfit_patch", False):
        return
    original = trainer_module.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and is_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica._ulmfit_patch = True
    trainer_module.reduce_per_replica = reduce_per_replica


_patch_symbolic_build()


def is_multi_worker(strategy):
    """Whether `strategy` spans several processes (hosts)."""
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode())
