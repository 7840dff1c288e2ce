"""Adam with discriminative (per-layer-group) learning rates.

ULMFiT tunes each layer group with its own rate (Howard & Ruder 2018, sec.
3.2): the top group gets the base rate, each group below it the rate of the
group above divided by 2.6. We do it with one optimizer and a rate multiplier
per variable, not with `keras.optimizers.MultiOptimizer`, which (on Keras
3.15) demands a gradient for every variable it was built with (frozen groups
have none), loses its inner optimizers' state through `tf.train.Checkpoint`,
and counts steps per inner optimizer (a schedule would restart for a group
unfrozen late). Scaling gradients instead would not work either: Adam's step
does not depend on the gradient's scale.

Adam's bias correction uses each variable's own number of updates, as
PyTorch does. Keras' Adam uses the global step, so a group unfrozen after
1,000 steps would take a first step of (1 - beta_1) / sqrt(1 - beta_2) times
its rate (2x for betas 0.8/0.99) instead of 1x.

The step is fastai's: epsilon (1e-5) is added to the bias-corrected
sqrt(v), where Keras adds its 1e-7 to the uncorrected one (early in
training and for rarely updated rows, Keras' is then up to 1/sqrt(1 -
beta_2) = 10x smaller relative to the step). Weight decay follows fastai's
default (`wd_bn_bias=False`): every weight decays but BatchNorm parameters
and the biases of linear layers; LSTM biases decay.
"""

import keras
import tensorflow as tf
from keras import ops

from ulmfit_tf.training.layer_group_optimizer import LayerGroupOptimizer


def discriminative_multipliers(layer_groups, factor=2.6, rates=None):
    """Rate multipliers per variable path from layer groups (bottom first).

    Group g of n gets ``factor ** -(n - 1 - g)``: the top group 1, the one
    below 1/2.6, and so on. `rates` (one per group) sets them explicitly.
    """
    if rates is not None and len(rates) != len(layer_groups):
        raise ValueError(f"`rates` must have one value per layer group "
                         f"({len(layer_groups)}). Received {len(rates)}: {rates!r}")
    if rates is None and factor <= 0:
        raise ValueError(f"`factor` must be > 0. Received: {factor!r}")
    multipliers = {}
    for g, group in enumerate(layer_groups):
        value = rates[g] if rates is not None else factor ** -(len(layer_groups) - 1 - g)
        for layer in group:
            for variable in layer.weights:
                multipliers[variable.path] = float(value)
    return multipliers


def no_decay_paths(model):
    """Paths of the variables fastai leaves out of weight decay by default:
    BatchNorm parameters and the biases of linear layers (here: every 1-D
    weight except the LSTMs' biases)."""
    from ulmfit_tf.layers import WeightDropLSTM

    lstm_weights = {id(v) for layer in model._flatten_layers()
                    if isinstance(layer, WeightDropLSTM) for v in layer.weights}
    return sorted(v.path for v in model.weights
                  if len(v.shape) <= 1 and id(v) not in lstm_weights)


@keras.saving.register_keras_serializable(package="ulmfit_tf")
class DiscriminativeAdam(keras.optimizers.Adam):
    """Adam(W) with a learning-rate multiplier per variable.

    Args:
        learning_rate: the base rate (float or schedule), used as is by the
            top group; one schedule step is shared by all groups.
        multipliers: dict of variable path (``"rnn_0/kernel"``) to rate
            multiplier; variables not named get 1.0. See
            `discriminative_multipliers`.
        weight_decay: decoupled weight decay (AdamW, Loshchilov & Hutter),
            scaled by each variable's own rate.
        no_decay: variable paths that do not decay (see `no_decay_paths`);
            None: every 1-D variable.
        epsilon: added to the bias-corrected sqrt(v) (fastai: 1e-5).
        beta_1, beta_2, global_clipnorm, ...: as `keras.optimizers.Adam`.
    """

    def __init__(self, learning_rate=1e-3, multipliers=None, weight_decay=0.01,
                 beta_1=0.8, beta_2=0.99, epsilon=1e-5, no_decay=None,
                 name="discriminative_adam", **kwargs):
        kwargs.pop("amsgrad", None)
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, name=name, **kwargs)
        if weight_decay is not None and weight_decay < 0:
            raise ValueError(f"`weight_decay` must be >= 0. Received: {weight_decay!r}")
        self.multipliers = {str(k): float(v) for k, v in (multipliers or {}).items()}
        for path, value in self.multipliers.items():
            if value < 0:
                raise ValueError(f"`multipliers` must be >= 0. Received {value} for {path!r}")
        # Applied in update_step with each variable's own rate, not by the base class.
        self.decoupled_weight_decay = weight_decay or 0.0
        self.no_decay = None if no_decay is None else sorted(str(p) for p in no_decay)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._update_counts = [
            self.add_variable(shape=(), dtype="float32", initializer="zeros",
                              name=f"update_count_{i}")
            for i, _ in enumerate(var_list)]

    def multiplier(self, variable):
        """The rate multiplier of a variable the optimizer was built with."""
        path = self._trainable_variables[self._get_variable_index(variable)].path
        return self.multipliers.get(path, 1.0)

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        lr = ops.cast(learning_rate, variable.dtype) * self.multiplier(variable)
        if isinstance(gradient, tf.IndexedSlices):
            # Sum repeated rows before squaring them (an embedding gradient
            # holds one slice per occurrence of a word).
            gradient = tf.convert_to_tensor(gradient)
        gradient = ops.cast(gradient, variable.dtype)
        count = self._update_counts[index]
        self.assign_add(count, 1.0)
        step = ops.cast(count, variable.dtype)
        if self.decoupled_weight_decay and self.decays(variable):
            self.assign_sub(variable, variable * (lr * self.decoupled_weight_decay))
        m, v = self._momentums[index], self._velocities[index]
        self.assign_add(m, (gradient - m) * (1 - self.beta_1))
        self.assign_add(v, (ops.square(gradient) - v) * (1 - self.beta_2))
        corrected_sqrt_v = ops.sqrt(v / (1 - ops.power(self.beta_2, step)))
        self.assign_sub(variable, m * (lr / (1 - ops.power(self.beta_1, step)))
                        / (corrected_sqrt_v + self.epsilon))

    def decays(self, variable):
        """Whether weight decay applies to a variable the optimizer was built with."""
        path = self._trainable_variables[self._get_variable_index(variable)].path
        if self.no_decay is None:
            return len(variable.shape) > 1
        return path not in self.no_decay

    def get_config(self):
        config = super().get_config()
        config.update(multipliers=dict(self.multipliers),
                      weight_decay=self.decoupled_weight_decay, no_decay=self.no_decay)
        config.pop("amsgrad", None)
        return config


# Optimizers the training stages (and `--optimizer`) can build; "adam" is
# DiscriminativeAdam, the rest are Keras optimizers, one per layer group,
# in a LayerGroupOptimizer.
OPTIMIZERS = ("adam", "sgd", "rmsprop", "lion", "adamw-groups")


def build_optimizer(name, model, learning_rate, factor=None, weight_decay=0.01, beta_1=0.9,
                    beta_2=0.99, global_clipnorm=None):
    """The stages' optimizer for `model`'s layer groups: rates ÷ `factor`
    per group from the top (None: one rate), decoupled weight decay except
    on `no_decay_paths`, `beta_1`/`beta_2` as each optimizer reads them
    (SGD: momentum 0.9; RMSprop: rho = beta_2; Lion: both betas)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}. Received: {name!r}")
    groups = model.layer_groups
    no_decay = no_decay_paths(model)
    if name == "adam":
        multipliers = discriminative_multipliers(groups, factor) if factor else None
        return DiscriminativeAdam(learning_rate, multipliers, weight_decay=weight_decay,
                                  beta_1=beta_1, beta_2=beta_2, global_clipnorm=global_clipnorm,
                                  no_decay=no_decay)
    optimizer_class, settings = {
        "sgd": (keras.optimizers.SGD, {"momentum": 0.9}),
        "rmsprop": (keras.optimizers.RMSprop, {"rho": beta_2}),
        "lion": (keras.optimizers.Lion, {"beta_1": beta_1, "beta_2": beta_2}),
        "adamw-groups": (keras.optimizers.AdamW, {"beta_1": beta_1, "beta_2": beta_2,
                                                  "epsilon": 1e-5}),
    }[name]
    return LayerGroupOptimizer.discriminative(
        optimizer_class, groups, learning_rate, factor=factor or 1.0, name=name.replace("-", "_"),
        global_clipnorm=global_clipnorm, no_decay=no_decay,
        weight_decay=float(weight_decay or 0.0), **settings)
