"""Per-layer rates, shared schedule, per-variable bias correction, restore, unfreezing."""

import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from ulmfit_tf.models import AWDLSTM, AWDLSTMClassifier, AWDLSTMLanguageModel
from ulmfit_tf.training import (DiscriminativeAdam, GradualUnfreezing, ReseedEachEpoch,
                                SlantedTriangular, discriminative_multipliers)


def small_classifier(seed=0, head_hidden_dropout=0.1):
    keras.utils.set_random_seed(seed)
    lm = AWDLSTMLanguageModel(AWDLSTM(30, embedding_dim=8, hidden_dim=12, num_layers=3))
    lm(np.zeros((1, 2), np.int32))
    clf = AWDLSTMClassifier.from_language_model(lm, 3, max_len=10, bptt=5, drop_mult=0.0,
                                                head_hidden_dropout=head_hidden_dropout)
    clf(np.full((2, 3), 2, np.int32))
    return clf


def data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(9, 30, (n, 8)).astype(np.int32)
    x[:, 0] = 2
    return x, (x[:, 1] % 3).astype(np.int32)


def compile_classifier(clf, schedule=1e-2, jit=False, **kwargs):
    optimizer = DiscriminativeAdam(schedule, discriminative_multipliers(clf.layer_groups),
                                   **kwargs)
    clf.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                jit_compile=jit)
    return optimizer


def snapshot(clf):
    return {v.path: v.numpy().copy() for v in clf.weights}


def test_eager_call_equals_graph_call_on_long_texts():
    """Texts longer than max_len take the chunked (BPT3C) path in both modes."""
    clf = small_classifier()
    x = np.random.default_rng(3).integers(9, 30, (4, 23)).astype(np.int32)
    x[1, 15:] = 1  # one right-padded row
    eager = clf(x).numpy()
    np.testing.assert_allclose(eager, tf.function(clf)(x).numpy(), atol=1e-6)
    np.testing.assert_allclose(eager, clf.predict(x, verbose=0), atol=1e-6)


def test_multipliers_follow_groups():
    clf = small_classifier()
    m = discriminative_multipliers(clf.layer_groups)
    assert m["head_dense_1/kernel"] == 1.0
    assert m["rnn_2/kernel"] == pytest.approx(1 / 2.6)
    assert m["rnn_0/recurrent_kernel"] == pytest.approx(2.6 ** -3)
    assert m["embedding/embeddings"] == pytest.approx(2.6 ** -4)
    explicit = discriminative_multipliers(clf.layer_groups, rates=[1, 2, 3, 4, 5])
    assert explicit["rnn_1/bias"] == 3
    with pytest.raises(ValueError, match="one value per layer group"):
        discriminative_multipliers(clf.layer_groups, rates=[1, 2])


def test_first_step_size_is_rate_times_multiplier():
    """Adam's first step moves each weight by lr * multiplier * |g| / (|g| + eps):
    lr * multiplier wherever the gradient is not tiny."""
    clf = small_classifier()
    compile_classifier(clf, 1e-3, weight_decay=0.0)
    multipliers = clf.optimizer.multipliers
    x, y = data()
    before = snapshot(clf)
    clf.train_on_batch(x, y)
    for var in clf.trainable_weights:
        delta = np.abs(var.numpy() - before[var.path])
        moved = delta[delta > 0]
        assert len(moved) > 0, var.path
        np.testing.assert_allclose(moved.max(), 1e-3 * multipliers[var.path], rtol=1e-2)


def test_frozen_groups_then_unfrozen_share_schedule_and_start_unbiased():
    clf = small_classifier()
    schedule = SlantedTriangular(1e-2, 40, cut_frac=0.25)
    compile_classifier(clf, schedule, weight_decay=0.0)
    x, y = data()
    clf.optimizer.build(clf.trainable_variables)  # on all variables, before freezing
    for layer in clf.layer_groups[0] + clf.layer_groups[1]:
        layer.trainable = False
    clf.make_train_function(force=True)
    frozen_before = snapshot(clf)
    for _ in range(6):
        clf.train_on_batch(x, y)
    after = snapshot(clf)
    for layer in clf.layer_groups[0] + clf.layer_groups[1]:
        for v in layer.weights:
            np.testing.assert_array_equal(after[v.path], frozen_before[v.path])
    assert int(clf.optimizer.iterations) == 6
    # Unfreeze: the late group continues the common schedule (step 6, not 0)
    # and its first step is lr(6) * multiplier, not ~2x that (global-step bias).
    for layer in clf.layer_groups[0] + clf.layer_groups[1]:
        layer.trainable = True
    clf.make_train_function(force=True)
    clf.train_on_batch(x, y)
    expected = float(schedule(6)) * clf.optimizer.multipliers["rnn_0/kernel"]
    delta = np.abs(clf.encoder.get_layer("rnn_0").kernel.numpy()
                   - after["rnn_0/kernel"])
    np.testing.assert_allclose(delta.max(), expected, rtol=1e-2)


def test_keras_adam_global_step_would_overshoot():
    """Why we count updates per variable: Keras' Adam, a variable first updated
    at step 1,000, moves by (1 - beta_1) / sqrt(1 - beta_2) * lr = 2 * lr."""
    var = keras.Variable(np.zeros(4, np.float32))
    adam = keras.optimizers.Adam(1e-3, beta_1=0.8, beta_2=0.99)
    adam.build([var])
    adam.iterations.assign(1000)
    adam.apply_gradients([(np.ones(4, np.float32), var)])
    assert float(-var.numpy()[0]) == pytest.approx(2e-3, rel=1e-3)
    ours_var = keras.Variable(np.zeros(4, np.float32))
    ours = DiscriminativeAdam(1e-3, beta_1=0.8, beta_2=0.99, weight_decay=0.0)
    ours.build([ours_var])
    ours.iterations.assign(1000)
    ours.apply_gradients([(np.ones(4, np.float32), ours_var)])
    assert float(-ours_var.numpy()[0]) == pytest.approx(1e-3, rel=1e-3)


def test_repeated_embedding_rows_take_one_adam_step():
    """An embedding gradient has one slice per occurrence; Adam must see their sum."""
    emb = keras.layers.Embedding(10, 3)
    emb.build((None,))
    before = emb.embeddings.numpy().copy()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(emb(tf.constant([1, 1, 2])) * tf.constant([[1.0, 2.0, 3.0]]))
    grads = tape.gradient(loss, emb.trainable_variables)
    assert isinstance(grads[0], tf.IndexedSlices)
    DiscriminativeAdam(1e-3, weight_decay=0.0).apply_gradients(zip(grads, emb.trainable_variables))
    moved = np.abs(emb.embeddings.numpy() - before)
    np.testing.assert_allclose(moved[[1, 2]], 1e-3, rtol=1e-4)
    assert moved[[0, 3]].max() == 0


def test_decoupled_weight_decay_uses_the_group_rate():
    var = keras.Variable(np.full((2, 2), 2.0, np.float32), name="w")
    optimizer = DiscriminativeAdam(0.1, {var.path: 0.5}, weight_decay=0.01)
    optimizer.build([var])
    optimizer.apply_gradients([(np.zeros((2, 2), np.float32), var)])
    np.testing.assert_allclose(var.numpy(), 2.0 * (1 - 0.1 * 0.5 * 0.01), rtol=1e-6)


def test_adam_step_is_fastai_s_epsilon_on_the_corrected_sqrt_v():
    rng = np.random.default_rng(0)
    grads = [rng.normal(scale=1e-4, size=5).astype(np.float32) for _ in range(4)]
    var = keras.Variable(np.zeros(5, np.float32))
    ours = DiscriminativeAdam(1e-2, beta_1=0.8, beta_2=0.99, epsilon=1e-5, weight_decay=0.0)
    ours.build([var])
    want, m, v = np.zeros(5), np.zeros(5), np.zeros(5)
    for step, g in enumerate(grads, 1):
        ours.apply_gradients([(g, var)])
        # fastai's `adam_step` (and torch.optim.Adam): eps after debiasing.
        m, v = 0.8 * m + 0.2 * g, 0.99 * v + 0.01 * g * g
        want -= 1e-2 / (1 - 0.8 ** step) * m / (np.sqrt(v / (1 - 0.99 ** step)) + 1e-5)
        np.testing.assert_allclose(var.numpy(), want, rtol=1e-4)
    assert ours.get_config()["epsilon"] == 1e-5


def test_weight_decay_spares_batchnorm_and_linear_biases_only():
    from ulmfit_tf.training.optimizers import no_decay_paths

    lm = AWDLSTMLanguageModel(AWDLSTM(30, embedding_dim=8, hidden_dim=12, num_layers=2))
    lm(np.zeros((1, 2), np.int32))
    assert no_decay_paths(lm) == ["embedding/output_bias"]
    clf = small_classifier()
    spared = no_decay_paths(clf)
    assert not [p for p in spared if p.startswith("rnn_")]
    assert {"head_bn_0/gamma", "head_bn_0/beta", "head_bn_1/gamma"} <= set(spared)
    assert not [w for w in clf.head.weights if w.path.endswith("/bias")]  # LinBnDrop
    bias = clf.encoder.get_layer("rnn_0").bias
    gamma = clf.head.get_layer("head_bn_0").gamma
    before = bias.numpy().copy(), gamma.numpy().copy()
    optimizer = DiscriminativeAdam(0.1, weight_decay=0.01, no_decay=spared)
    optimizer.build([bias, gamma])
    optimizer.apply_gradients([(np.zeros(bias.shape, np.float32), bias),
                               (np.zeros(gamma.shape, np.float32), gamma)])
    np.testing.assert_allclose(bias.numpy(), before[0] * (1 - 0.1 * 0.01), rtol=1e-6)
    np.testing.assert_array_equal(gamma.numpy(), before[1])
    restored = DiscriminativeAdam.from_config(optimizer.get_config())
    assert restored.no_decay == sorted(spared)


def train_steps(clf, steps, x, y):
    for _ in range(steps):
        clf.train_on_batch(x, y)


def restored(first, route, tmp_path, build):
    """`first` (model and optimizer state) saved and read back: through a
    `.keras` file, or a `tf.train.Checkpoint` read into `build()`'s fresh
    compiled model."""
    if route == "keras":
        first.save(tmp_path / "m.keras")
        return keras.saving.load_model(tmp_path / "m.keras")
    tf.train.Checkpoint(model=first, optimizer=first.optimizer).write(str(tmp_path / "ckpt"))
    resumed = build()
    resumed.optimizer.build(resumed.trainable_variables)
    tf.train.Checkpoint(model=resumed, optimizer=resumed.optimizer).read(
        str(tmp_path / "ckpt")).assert_consumed()
    return resumed


@pytest.mark.parametrize("route", ["keras", "checkpoint"])
def test_restore_is_exact(route, tmp_path):
    x, y = data()

    def build(seed=0):
        # No dropout: this checks the optimizer state (ReseedEachEpoch covers dropout).
        clf = small_classifier(seed=seed, head_hidden_dropout=0.0)
        compile_classifier(clf, SlantedTriangular(1e-2, 20))
        return clf

    reference = build()
    train_steps(reference, 6, x, y)
    first = build()
    train_steps(first, 3, x, y)
    resumed = restored(first, route, tmp_path, lambda: build(seed=5))
    assert int(resumed.optimizer.iterations) == 3
    assert resumed.optimizer.multipliers == first.optimizer.multipliers
    train_steps(resumed, 3, x, y)
    for a, b in zip(resumed.weights, reference.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.path)


def test_backup_and_restore_resumes_exactly(tmp_path):
    """Weights, optimizer state and (with ReseedEachEpoch) dropout masks."""
    x, y = data()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    reference = small_classifier()
    compile_classifier(reference, SlantedTriangular(1e-2, 16))
    reference.fit(ds, epochs=4, verbose=0, callbacks=[ReseedEachEpoch(3)])

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("interrupted")

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    first = small_classifier()
    compile_classifier(first, SlantedTriangular(1e-2, 16))
    with pytest.raises(RuntimeError, match="interrupted"):
        first.fit(ds, epochs=4, verbose=0, callbacks=[backup, ReseedEachEpoch(3), Interrupt()])
    resumed = small_classifier(seed=9)
    compile_classifier(resumed, SlantedTriangular(1e-2, 16))
    resumed.fit(ds, epochs=4, verbose=0,
                callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
                           ReseedEachEpoch(3)])
    assert int(resumed.optimizer.iterations) == 16
    for a, b in zip(resumed.weights, reference.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.path)


def _seed_generators(model):
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _draws(model, reseed, epoch, count=4):
    """The first `count` dropout keys the weight-drop layer rnn_1 draws in `epoch`."""
    reseed.on_epoch_begin(epoch)
    generator = model.get_layer("rnn_1").seed_generator
    return [tuple(generator.next().numpy()) for _ in range(count)]


def test_reseeding_gives_each_epoch_its_own_masks():
    lm = AWDLSTMLanguageModel(AWDLSTM(30, embedding_dim=8, hidden_dim=12, num_layers=3))
    lm(np.zeros((1, 2), np.int32))
    reseed = ReseedEachEpoch(3)
    reseed.set_model(lm)
    first, second = _draws(lm.encoder, reseed, 0), _draws(lm.encoder, reseed, 1)
    # Keras adds one to a generator's counter per draw: a counter of `epoch`
    # made step k of epoch 1 draw step k + 1 of epoch 0.
    assert not set(first) & set(second)
    assert _draws(lm.encoder, reseed, 0) == first  # (seed, epoch, step) fixes the mask
    reseed.on_epoch_begin(0)
    keys = [tuple(v.numpy()) for v in _seed_generators(lm)]
    assert len(set(keys)) == len(keys)  # every layer its own stream


def test_reseeding_follows_the_model_not_the_names():
    def build():
        lm = AWDLSTMLanguageModel(AWDLSTM(30, embedding_dim=8, hidden_dim=12, num_layers=3))
        lm(np.zeros((1, 2), np.int32))
        return lm

    first = build()
    # Other generators built in between shift the process-wide auto-names
    # (seed_generator_9 -> seed_generator_19...), and so their string order.
    _ = [keras.random.SeedGenerator() for _ in range(10)]
    second = build()
    states = []
    for model in (first, second):
        reseed = ReseedEachEpoch(5)
        reseed.set_model(model)
        reseed.on_epoch_begin(2)
        states.append([v.numpy().tolist() for v in _seed_generators(model)])
    assert states[0] == states[1]


@pytest.mark.parametrize("jit", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_gradual_unfreezing_changes_exactly_the_expected_groups(jit):
    clf = small_classifier()
    compile_classifier(clf, 1e-2, jit=jit)
    groups = clf.layer_groups
    x, y = data()
    changed = []

    class Watch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.before = snapshot(clf)

        def on_epoch_end(self, epoch, logs=None):
            after = snapshot(clf)
            # Every weight, not only those Keras calls trainable (a frozen
            # layer's are not, so a failure to freeze would be invisible);
            # the dropout seed counters move in every training step.
            changed.append([g for g, group in enumerate(groups) if any(
                not np.array_equal(after[v.path], self.before[v.path])
                for layer in group for v in layer.weights
                if not v.path.endswith("seed_generator_state"))])

    # Under XLA each unfreezing compiles the step again: 3 epochs show that
    # the rebuilt functions train the new groups (without: all 6).
    epochs = 3 if jit else 6
    clf.fit(x, y, batch_size=8, epochs=epochs, verbose=0,
            callbacks=[GradualUnfreezing(groups), Watch()])
    assert changed == [[4], [3, 4], [2, 3, 4], [1, 2, 3, 4], [0, 1, 2, 3, 4],
                       [0, 1, 2, 3, 4]][:epochs]
    assert all(layer.trainable for group in groups for layer in group)


def test_unfreezing_refuses_an_optimizer_built_on_a_subset():
    clf = small_classifier()
    compile_classifier(clf)
    for layer in clf.layer_groups[0]:
        layer.trainable = False
    clf.optimizer.build(clf.trainable_variables)
    x, y = data()
    with pytest.raises(ValueError, match="optimizer was built without some variables"):
        clf.fit(x, y, epochs=1, verbose=0, callbacks=[GradualUnfreezing(clf.layer_groups)])


MIRRORED = textwrap.dedent("""
    import numpy as np, tensorflow as tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    import keras
    from ulmfit_tf.models import AWDLSTM, AWDLSTMLanguageModel
    from ulmfit_tf.training import DiscriminativeAdam, GradualUnfreezing, SlantedTriangular
    from ulmfit_tf.training import discriminative_multipliers
    from test_discriminative import small_classifier, compile_classifier, data, snapshot

    rng = np.random.default_rng(0)
    x = rng.integers(9, 30, (32, 8)).astype(np.int32)
    y = rng.integers(9, 30, (32, 8)).astype(np.int32)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)

    from ulmfit_tf.training import LayerGroupOptimizer

    def adam(groups):
        return DiscriminativeAdam(SlantedTriangular(1e-2, 12),
                                  discriminative_multipliers(groups))

    def sgd_per_group(groups):
        return LayerGroupOptimizer.discriminative(
            keras.optimizers.SGD, groups, SlantedTriangular(0.5, 12), momentum=0.9)

    def run(strategy, make_optimizer):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            lm = AWDLSTMLanguageModel(AWDLSTM(30, embedding_dim=8, hidden_dim=12,
                                              num_layers=3, drop_mult=0.0))
            lm(np.zeros((1, 2), np.int32))
            lm.compile(optimizer=make_optimizer(lm.layer_groups),
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        lm.fit(ds, epochs=3, verbose=0, callbacks=[GradualUnfreezing(lm.layer_groups)])
        return [v.numpy() for v in lm.weights], lm.optimizer

    def max_abs_diff(a, b):
        return max(float(np.abs(x - y).max()) for x, y in zip(a, b))

    # One strategy object for the whole process: a second MirroredStrategy
    # reuses collective instance keys of the first ("Shape mismatch in the
    # collective instance 100").
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    mirrored, optimizer = run(strategy, adam)
    single, _ = run(tf.distribute.get_strategy(), adam)
    print("lm_max_abs_diff", max_abs_diff(mirrored, single))
    print("steps", int(optimizer.iterations.numpy()))

    # The same with SGD per layer group (LayerGroupOptimizer).
    mirrored, optimizer = run(strategy, sgd_per_group)
    single, _ = run(tf.distribute.get_strategy(), sgd_per_group)
    print("groups_max_abs_diff", max_abs_diff(mirrored, single))
    print("groups_inner_steps", [int(o.iterations.numpy()) for o in optimizer.optimizers])

    # The classifier under the strategy: unfreezing still moves exactly the
    # expected groups (its BatchNorm uses per-replica statistics, so weights
    # do not match a single device's).
    with strategy.scope():
        clf = small_classifier()
        compile_classifier(clf, 1e-2)
    cx, cy = data()
    before = snapshot(clf)
    clf.fit(cx, cy, batch_size=8, epochs=1, verbose=0,
            callbacks=[GradualUnfreezing(clf.layer_groups)])
    after = snapshot(clf)
    moved = [g for g, group in enumerate(clf.layer_groups) if any(
        not np.array_equal(after[v.path], before[v.path])
        for layer in group for v in layer.weights if v.trainable)]
    print("classifier_groups_moved", moved)

    # The head's CrossReplicaBatchNormalization: a BN -> ReLU -> BN stack
    # takes the same SGD step on 2 replicas as on one device.
    from ulmfit_tf.layers import CrossReplicaBatchNormalization
    bx = np.random.default_rng(1).normal(size=(16, 6)).astype(np.float32) + 2
    by = np.random.default_rng(2).integers(0, 3, 16)

    def bn_step(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = keras.Sequential([
                keras.Input((6,)), CrossReplicaBatchNormalization(),
                keras.layers.Dense(20, activation="relu"), CrossReplicaBatchNormalization(),
                keras.layers.Dense(3, activation="softmax")])
            model.compile(optimizer=keras.optimizers.SGD(0.5),
                          loss="sparse_categorical_crossentropy")
        model.fit(bx, by, batch_size=16, epochs=2, verbose=0, shuffle=False)
        return [v.numpy() for v in model.weights]

    print("bn_max_abs_diff", max(float(np.abs(a - b).max()) for a, b in
                                 zip(bn_step(strategy), bn_step(tf.distribute.get_strategy()))))

    # XLA cannot compile the replicated step on CPU devices, so the stages
    # turn jit_compile off there (resolve_jit_compile).
    from ulmfit_tf.distribute import resolve_jit_compile
    print("jit_resolved", resolve_jit_compile(True, strategy))
    with strategy.scope():
        dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        dense.compile("sgd", "mse", jit_compile=True)
    try:
        dense.fit(np.ones((8, 4), np.float32), np.ones(8, np.float32), verbose=0)
        print("jit_true_fails False")
    except tf.errors.InvalidArgumentError as error:
        print("jit_true_fails", "located in device" in str(error))
""")


@pytest.mark.slow
def test_mirrored_strategy_matches_single_device(run_script):
    out = run_script(MIRRORED)
    assert float(out["lm_max_abs_diff"]) < 1e-5
    assert int(out["steps"]) == 12
    assert float(out["groups_max_abs_diff"]) < 1e-5
    assert out["groups_inner_steps"] == "[0, 4, 8, 12]"  # frozen groups skipped
    assert out["classifier_groups_moved"] == "[4]"
    assert float(out["bn_max_abs_diff"]) < 1e-5
    assert out["jit_resolved"] == "False"
    # If XLA learns to run it, resolve_jit_compile can stop turning it off.
    assert out["jit_true_fails"] == "True"


@pytest.mark.parametrize("task, loss, y", [
    ("multi_label", "binary_crossentropy", np.array([[1, 0, 1], [0, 1, 0]] * 8, np.float32)),
    ("regression", "mean_squared_error", np.linspace(0, 1, 16, dtype=np.float32)[:, None]),
])
def test_multi_label_and_regression_heads(task, loss, y):
    keras.utils.set_random_seed(0)
    encoder = AWDLSTM(30, embedding_dim=8, hidden_dim=12, num_layers=2, mask_padding=True,
                      output_bias=False)
    clf = AWDLSTMClassifier(encoder, y.shape[1], task=task, max_len=10, bptt=5)
    x = data(16)[0]
    out = clf(x)
    if task == "multi_label":  # independent sigmoids, not a softmax
        assert np.all((out.numpy() > 0) & (out.numpy() < 1))
        assert not np.allclose(out.numpy().sum(1), 1)
    clf.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
    history = clf.fit(x, y, epochs=20, batch_size=8, verbose=0).history["loss"]
    assert history[-1] < 0.8 * history[0]  # it fits the targets


def test_gradient_clipping_is_global_in_both_stages():
    from ulmfit_tf.training.classifier import ClassifierConfig
    from ulmfit_tf.training.language_model import LanguageModelConfig, compile_language_model

    lm = AWDLSTMLanguageModel(AWDLSTM(30, embedding_dim=8, hidden_dim=12, num_layers=2))
    lm(np.zeros((1, 2), np.int32))
    compile_language_model(lm, LanguageModelConfig(global_clipnorm=0.25), total_steps=10)
    assert lm.optimizer.global_clipnorm == 0.25 and lm.optimizer.clipnorm is None
    # The optimizer clips the gradients' joint norm: [3, 0] and [0, 4] (norm 5)
    # become a tenth of themselves, not each clipped to 0.25 alone.
    clipped = lm.optimizer._clip_gradients([tf.constant([3.0, 0.0]), tf.constant([0.0, 4.0])])
    np.testing.assert_allclose(clipped[0], [0.15, 0.0], rtol=1e-6)
    np.testing.assert_allclose(clipped[1], [0.0, 0.2], rtol=1e-6)
    assert ClassifierConfig(global_clipnorm=0.25).global_clipnorm == 0.25
