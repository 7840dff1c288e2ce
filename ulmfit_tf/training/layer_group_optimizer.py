"""Any Keras optimizer per layer group: fastai's parameter groups in Keras.

`DiscriminativeAdam` is one Adam with a rate per variable, the fastest way
to run ULMFiT's recipe. This wrapper gives each layer group its own inner
optimizer instead (SGD with momentum, as AWD-LSTM trained; RMSprop; Lion;
a different one per group), where Keras 3.15's `MultiOptimizer` falls short
in three ways that matter to ULMFiT:

- it demands a gradient for every variable it was built with, so a group
  frozen by `GradualUnfreezing` breaks it; here a group without gradients
  is skipped, and its inner optimizer counts only its own updates, so a
  group unfrozen late starts with fresh state and its own bias correction;
- its inner optimizers sit in a list, which `tf.train.Checkpoint` does not
  follow: here each is an attribute, tracked by both TF checkpoints and
  Keras saving (`.keras`, `.weights.h5`, `BackupAndRestore`);
- a schedule would advance with each inner optimizer's own step count; here
  every inner schedule is read at the wrapper's step, so a slanted triangle
  keeps one shape across groups however late they unfreeze.
"""

import keras
import tensorflow as tf

from ulmfit_tf.training.schedules import ScaledSchedule

_Schedule = keras.optimizers.schedules.LearningRateSchedule


class _AtSharedStep(_Schedule):
    """An inner optimizer's schedule, read at the wrapper's step (not
    serialised: `LayerGroupOptimizer.get_config` stores the schedule itself)."""

    def __init__(self, schedule, wrapper):
        self.schedule, self.wrapper = schedule, wrapper

    def __call__(self, step):
        return self.schedule(self.wrapper.iterations)

    def get_config(self):
        return self.schedule.get_config()


def _group_paths(group, argument):
    """Variable paths of a layer, a variable path, or a list of either."""
    items = group if isinstance(group, (list, tuple)) else [group]
    paths = []
    for item in items:
        if isinstance(item, str):
            paths.append(item)
        elif isinstance(item, keras.layers.Layer):
            if not item.built:
                raise ValueError(f"`{argument}`: layer {item.name!r} is not built yet; build the "
                                 "model (call it on a batch) before grouping its layers.")
            paths.extend(v.path for v in item.weights if v.trainable)
        else:
            raise TypeError(f"`{argument}` groups must hold Keras layers or variable paths. "
                            f"Received: {item!r}")
    return paths


@keras.saving.register_keras_serializable(package="ulmfit_tf")
class LayerGroupOptimizer(keras.optimizers.Optimizer):
    """One inner Keras optimizer per layer group.

    Args:
        optimizers_and_layers: list of ``(optimizer, layers)``, as TF-Addons'
            `MultiOptimizer` took: `layers` is a layer, a
            variable path, or a list of either. Every trainable variable
            the wrapper is built with must belong to exactly one group.
        global_clipnorm: clips the norm of all groups' gradients together
            before they are split (each inner optimizer may clip its own too).
        no_decay: variable paths excluded from every inner optimizer's
            weight decay (see `ulmfit_tf.training.optimizers.no_decay_paths`).
        name: the wrapper's name.

    Build it from ULMFiT layer groups with one optimizer class and rates
    ÷ `factor` per group with `LayerGroupOptimizer.discriminative`.
    """

    def __init__(self, optimizers_and_layers, global_clipnorm=None, no_decay=None,
                 name="layer_group_optimizer", **kwargs):
        kwargs.pop("learning_rate", None)
        super().__init__(learning_rate=0.0, global_clipnorm=global_clipnorm, name=name,
                         **kwargs)
        pairs = list(optimizers_and_layers or [])
        if not pairs:
            raise ValueError("`optimizers_and_layers` must list at least one "
                             f"(optimizer, layers) pair. Received: {optimizers_and_layers!r}")
        self._group_paths, self._schedules, owner = [], [], {}
        for index, pair in enumerate(pairs):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                raise ValueError("`optimizers_and_layers` items must be (optimizer, layers) "
                                 f"pairs. Received item {index}: {pair!r}")
            optimizer, group = pair
            if not isinstance(optimizer, keras.optimizers.Optimizer) or isinstance(
                    optimizer, (keras.optimizers.LossScaleOptimizer, LayerGroupOptimizer)):
                raise ValueError("`optimizers_and_layers` needs a plain Keras optimizer in each "
                                 f"pair. Received item {index}: {optimizer!r}")
            paths = _group_paths(group, "optimizers_and_layers")
            for path in paths:
                if path in owner:
                    raise ValueError(f"`optimizers_and_layers`: variable {path!r} is in groups "
                                     f"{owner[path]} and {index}")
                owner[path] = index
            self._group_paths.append(paths)
            schedule = optimizer._learning_rate
            if isinstance(schedule, _Schedule):
                optimizer._learning_rate = _AtSharedStep(schedule, self)
            self._schedules.append(schedule if isinstance(schedule, _Schedule) else None)
            # One attribute per optimizer: TF checkpoints and Keras saving both
            # follow attributes (a list would be lost by tf.train.Checkpoint).
            setattr(self, f"group_{index}", optimizer)
        self._group_of_path = owner
        self.no_decay = None if no_decay is None else sorted(str(p) for p in no_decay)

    @classmethod
    def discriminative(cls, optimizer_class, layer_groups, learning_rate, factor=2.6,
                       name="layer_group_optimizer", global_clipnorm=None, no_decay=None,
                       **optimizer_kwargs):
        """ULMFiT's discriminative rates for any optimizer class: group g of n
        (bottom first) gets `learning_rate` × ``factor ** -(n - 1 - g)``; a
        schedule is scaled, so all groups share its shape and step."""
        if factor is None or factor <= 0:
            raise ValueError(f"`factor` must be > 0. Received: {factor!r}")
        n = len(layer_groups)
        pairs = []
        for g, group in enumerate(layer_groups):
            multiplier = factor ** -(n - 1 - g)
            rate = (ScaledSchedule(learning_rate, multiplier)
                    if isinstance(learning_rate, _Schedule) else learning_rate * multiplier)
            pairs.append((optimizer_class(learning_rate=rate, name=f"{name}_group_{g}",
                                          **optimizer_kwargs), list(group)))
        return cls(pairs, global_clipnorm=global_clipnorm, no_decay=no_decay, name=name)

    @property
    def optimizers(self):
        return [getattr(self, f"group_{i}") for i in range(len(self._group_paths))]

    @property
    def variables(self):
        return [*self._variables, *(v for opt in self.optimizers for v in opt.variables)]

    @property
    def learning_rate(self):
        """The top (last) group's current rate: ULMFiT's base rate."""
        return self.optimizers[-1].learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        raise AttributeError("A LayerGroupOptimizer has one rate per group: set "
                             "`optimizer.optimizers[g].learning_rate` instead.")

    def _split(self, variables):
        groups = [[] for _ in self._group_paths]
        unassigned = []
        for variable in variables:
            group = self._group_of_path.get(variable.path)
            if group is None:
                unassigned.append(variable.path)
            else:
                groups[group].append(variable)
        if unassigned:
            raise ValueError("LayerGroupOptimizer: these variables are in no group: "
                             f"{unassigned[:5]}{'...' if len(unassigned) > 5 else ''}. "
                             "Add their layers to a group of `optimizers_and_layers`.")
        return groups

    def build(self, var_list):
        if self.built:
            return
        for optimizer, variables in zip(self.optimizers, self._split(var_list)):
            if not variables:
                continue
            if self.no_decay:
                optimizer.exclude_from_weight_decay(
                    var_list=[v for v in variables if v.path in self.no_decay])
            optimizer.build(variables)
        super().build(var_list)

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is None:
            if not self.built:
                raise ValueError("When passing `grads` without `trainable_variables`, the "
                                 "optimizer must already be built.")
            trainable_variables = self._trainable_variables
        trainable_variables = list(trainable_variables)
        if not self.built:
            self.build(trainable_variables)
            self.built = True
        self._check_variables_are_known(trainable_variables)
        pairs = [(g, v) for g, v in zip(grads, trainable_variables) if g is not None]
        if not pairs:
            return
        # Dense, as PyTorch's (and DiscriminativeAdam's): an embedding's
        # IndexedSlices hold one row per occurrence of a word, which Keras'
        # Adam would square before summing.
        grads = [tf.convert_to_tensor(g) for g, _ in pairs]
        if self.loss_scale_factor is not None:
            grads = [g / self.loss_scale_factor for g in grads]
        if self.global_clipnorm:
            grads, _ = tf.clip_by_global_norm(grads, self.global_clipnorm)
        by_variable = {id(v): g for g, (_, v) in zip(grads, pairs)}
        # A frozen group has no gradients: its optimizer neither steps nor counts.
        for optimizer, variables in zip(self.optimizers, self._split([v for _, v in pairs])):
            if variables:
                optimizer.apply([by_variable[id(v)] for v in variables], variables)
        self._iterations.assign_add(1)

    def finalize_variable_values(self, var_list):
        for optimizer, variables in zip(self.optimizers, self._split(var_list)):
            if variables:
                optimizer.finalize_variable_values(variables)

    # Keras saving visits each inner optimizer through its attribute, so the
    # wrapper stores only its own variables (else the inner ones twice).
    def save_own_variables(self, store):
        for i, variable in enumerate(self._variables):
            store[str(i)] = variable.numpy()

    def load_own_variables(self, store):
        if len(store.keys()) != len(self._variables):
            raise ValueError(f"LayerGroupOptimizer {self.name!r}: the saved state has "
                             f"{len(store.keys())} variables, this one {len(self._variables)}; "
                             "build it on the model's variables before loading.")
        for i, variable in enumerate(self._variables):
            variable.assign(store[str(i)])

    def get_config(self):
        groups = []
        for optimizer, paths, schedule in zip(self.optimizers, self._group_paths,
                                              self._schedules):
            serialized = keras.optimizers.serialize(optimizer)
            if schedule is not None:
                serialized["config"]["learning_rate"] = \
                    keras.optimizers.schedules.serialize(schedule)
            groups.append({"optimizer": serialized, "paths": list(paths)})
        return {"name": self.name, "groups": groups, "global_clipnorm": self.global_clipnorm,
                "no_decay": self.no_decay, "loss_scale_factor": self.loss_scale_factor}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        pairs = [(keras.optimizers.deserialize(group["optimizer"],
                                               custom_objects=custom_objects), group["paths"])
                 for group in config.pop("groups")]
        return cls(pairs, **config)
