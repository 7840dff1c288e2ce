"""LayerGroupOptimizer: any Keras optimizer per layer group.

Under MirroredStrategy: tests/test_discriminative.py (one process for both
optimizers); the two-worker test runs stage 2 with it (test_distribute.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from test_discriminative import data, restored, small_classifier, snapshot, train_steps
from ulmfit_tf.training import (DiscriminativeAdam, GradualUnfreezing, LayerGroupOptimizer,
                                ReseedEachEpoch, ScaledSchedule, SlantedTriangular,
                                discriminative_multipliers)
from ulmfit_tf.training.optimizers import OPTIMIZERS, build_optimizer


def sgd_adam_classifier(schedule=1e-2, **kwargs):
    """Plain SGD on the embedding and the LSTMs, Adam on the head."""
    clf = small_classifier(head_hidden_dropout=0.0)
    *lower, head = clf.layer_groups
    optimizer = LayerGroupOptimizer(
        [(keras.optimizers.SGD(schedule, name="sgd"), [l for g in lower for l in g]),
         (keras.optimizers.Adam(schedule, epsilon=1e-12, name="adam"), head)], **kwargs)
    clf.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return clf, optimizer


def group_paths(clf, g):
    return [v.path for layer in clf.layer_groups[g] for v in layer.weights
            if v.path in clf.optimizer._group_of_path]


def test_each_group_applies_its_own_update_rule():
    clf, optimizer = sgd_adam_classifier(1e-2)
    x, y = data()
    before = snapshot(clf)
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(y, clf(x, training=True))
        loss = tf.reduce_mean(loss)
    variables = clf.trainable_variables
    grads = tape.gradient(loss, variables)
    optimizer.apply(grads, variables)
    for grad, variable in zip(grads, variables):
        grad = tf.convert_to_tensor(grad).numpy()
        moved = before[variable.path] - variable.numpy()
        if variable.path in group_paths(clf, 4):
            # Adam's first step: lr × the gradient's sign (Keras adds epsilon
            # to sqrt(v), so only where the gradient is not tiny).
            big = np.abs(grad) > 1e-6
            assert big.mean() > 0.5
            np.testing.assert_allclose(moved[big], 1e-2 * np.sign(grad[big]), atol=2e-6)
        else:
            np.testing.assert_allclose(moved, 1e-2 * grad, atol=1e-7, err_msg=variable.path)
    assert [int(o.iterations) for o in optimizer.optimizers] == [1, 1]


def test_discriminative_rates_divide_by_the_factor_per_group():
    clf = small_classifier()
    schedule = SlantedTriangular(1e-2, 20)
    optimizer = LayerGroupOptimizer.discriminative(keras.optimizers.SGD, clf.layer_groups,
                                                   schedule, factor=2.6, momentum=0.9)
    assert len(optimizer.optimizers) == 5
    for g, inner in enumerate(optimizer.optimizers):
        assert inner.momentum == 0.9
        np.testing.assert_allclose(float(inner.learning_rate),
                                   float(schedule(0)) * 2.6 ** -(4 - g), rtol=1e-6)
    plain = LayerGroupOptimizer.discriminative(keras.optimizers.RMSprop, clf.layer_groups,
                                               1e-3, factor=2.0)
    assert [float(o.learning_rate) for o in plain.optimizers] == pytest.approx(
        [1e-3 / 16, 1e-3 / 8, 1e-3 / 4, 1e-3 / 2, 1e-3])


@pytest.mark.parametrize("jit", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_frozen_groups_are_skipped_and_start_fresh_when_unfrozen(jit):
    clf = small_classifier(head_hidden_dropout=0.0)
    groups = clf.layer_groups
    schedule = SlantedTriangular(1e-2, 24)
    optimizer = LayerGroupOptimizer.discriminative(keras.optimizers.Adam, groups, schedule,
                                                   factor=2.0)
    clf.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", jit_compile=jit)
    x, y = data()
    moves = {}

    class Watch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.before, self.step = snapshot(clf), int(optimizer.iterations)

        def on_train_batch_end(self, batch, logs=None):
            after = snapshot(clf)
            for g in range(len(groups)):
                moved = max(np.abs(after[p] - self.before[p]).max() for p in group_paths(clf, g))
                moves.setdefault(g, []).append((self.step, moved))

    clf.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False,
            callbacks=[GradualUnfreezing(groups), Watch()])
    # Epoch e trains the top e + 1 groups; each optimizer counts its own steps.
    assert int(optimizer.iterations) == 12
    assert [int(o.iterations) for o in optimizer.optimizers] == [0, 0, 4, 8, 12]
    assert all(moved == 0 for _, moved in moves[0] + moves[1])
    # Group 2 is unfrozen at step 8: Adam's first step, bias-corrected afresh,
    # moves some weight by its rate at the shared step (Keras' global-step
    # correction would give sqrt(1 - 0.999**9) / (1 - 0.9**9) ≈ 0.16 of it).
    step, moved = moves[2][8]
    assert step == 8
    np.testing.assert_allclose(moved, float(schedule(8)) / 4, rtol=1e-3)


@pytest.mark.parametrize("route", ["keras", "checkpoint"])
def test_restore_is_exact(route, tmp_path):
    x, y = data()
    schedule = SlantedTriangular(1e-2, 20)
    reference, _ = sgd_adam_classifier(schedule)
    train_steps(reference, 6, x, y)

    first, _ = sgd_adam_classifier(schedule)
    train_steps(first, 3, x, y)
    resumed = restored(first, route, tmp_path, lambda: sgd_adam_classifier(schedule)[0])
    assert isinstance(resumed.optimizer, LayerGroupOptimizer)
    assert [int(o.iterations) for o in resumed.optimizer.optimizers] == [3, 3]
    train_steps(resumed, 3, x, y)
    for a, b in zip(resumed.weights, reference.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


@pytest.mark.slow
def test_backup_and_restore_resumes_exactly(tmp_path):
    x, y = data()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)

    def fresh():
        clf = small_classifier()
        optimizer = LayerGroupOptimizer.discriminative(
            keras.optimizers.SGD, clf.layer_groups, SlantedTriangular(5e-2, 16), momentum=0.9)
        clf.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
        return clf

    reference = fresh()
    reference.fit(ds, epochs=4, verbose=0,
                  callbacks=[GradualUnfreezing(reference.layer_groups), ReseedEachEpoch(3)])

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("interrupted")

    first = fresh()
    with pytest.raises(RuntimeError, match="interrupted"):
        first.fit(ds, epochs=4, verbose=0,
                  callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
                             GradualUnfreezing(first.layer_groups), ReseedEachEpoch(3),
                             Interrupt()])
    resumed = fresh()
    resumed.fit(ds, epochs=4, verbose=0,
                callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
                           GradualUnfreezing(resumed.layer_groups), ReseedEachEpoch(3)])
    assert [int(o.iterations) for o in resumed.optimizer.optimizers] == \
        [int(o.iterations) for o in reference.optimizer.optimizers] == [0, 4, 8, 12, 16]
    for a, b in zip(resumed.weights, reference.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_adam_groups_take_discriminative_adam_s_first_step():
    """Keras' Adam inside, groups ÷2.6: DiscriminativeAdam's step, embedding
    rows included (the wrapper sums a word's occurrences before Adam squares
    them). Only the first step: Keras adds epsilon to the uncorrected sqrt(v)
    (fastai to the corrected one), so a weight whose gradients are ~1e-12
    drifts apart in later steps."""
    x, y = data()
    schedule = SlantedTriangular(1e-2, 10)
    a = small_classifier(head_hidden_dropout=0.0)
    a.compile(optimizer=DiscriminativeAdam(schedule, discriminative_multipliers(a.layer_groups),
                                           weight_decay=0.0, beta_1=0.9, beta_2=0.99,
                                           epsilon=1e-12),
              loss="sparse_categorical_crossentropy")
    b = small_classifier(head_hidden_dropout=0.0)
    b.compile(optimizer=LayerGroupOptimizer.discriminative(
        keras.optimizers.Adam, b.layer_groups, schedule, beta_1=0.9, beta_2=0.99,
        epsilon=1e-12), loss="sparse_categorical_crossentropy")
    before = snapshot(a)
    train_steps(a, 1, x, y)
    train_steps(b, 1, x, y)
    for va, vb in zip(a.weights, b.weights):
        assert not va.trainable or np.abs(va.numpy() - before[va.path]).max() > 0
        np.testing.assert_allclose(va.numpy(), vb.numpy(), atol=1e-6, err_msg=va.path)


def test_global_clipnorm_and_no_decay():
    clf = small_classifier(head_hidden_dropout=0.0)
    head_bias = [v.path for v in clf.layer_groups[-1][-1].weights if len(v.shape) == 1]
    optimizer = LayerGroupOptimizer.discriminative(
        keras.optimizers.SGD, clf.layer_groups, 1.0, factor=1.0, weight_decay=0.5,
        global_clipnorm=1e-3, no_decay=head_bias)
    variables = clf.trainable_variables
    optimizer.build(variables)
    before = {v.path: v.numpy().copy() for v in variables}
    optimizer.apply([tf.ones_like(v) for v in variables], variables)
    total = sum(int(np.prod(v.shape)) for v in variables)
    for v in variables:
        moved = before[v.path] - v.numpy()
        decay = 0.0 if v.path in head_bias else 0.5 * before[v.path]
        np.testing.assert_allclose(moved, decay + 1e-3 / np.sqrt(total), atol=1e-6,
                                   err_msg=v.path)


def test_config_round_trip_keeps_groups_and_schedules():
    clf = small_classifier()
    schedule = SlantedTriangular(1e-2, 20)
    optimizer = LayerGroupOptimizer.discriminative(keras.optimizers.SGD, clf.layer_groups,
                                                   schedule, momentum=0.9, global_clipnorm=0.5)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, LayerGroupOptimizer)
    assert restored.global_clipnorm == 0.5
    assert restored._group_paths == optimizer._group_paths
    for mine, theirs in zip(optimizer.optimizers, restored.optimizers):
        assert type(theirs) is type(mine) and theirs.name == mine.name
        assert theirs.momentum == 0.9
        assert isinstance(restored._schedules[0], ScaledSchedule)
        np.testing.assert_allclose(float(theirs.learning_rate), float(mine.learning_rate))
    assert restored.get_config() == optimizer.get_config()


def test_bad_arguments_are_named():
    clf = small_classifier()
    *_, head = clf.layer_groups
    with pytest.raises(ValueError, match="at least one"):
        LayerGroupOptimizer([])
    with pytest.raises(ValueError, match=r"pairs\. Received item 0"):
        LayerGroupOptimizer([keras.optimizers.SGD()])
    with pytest.raises(ValueError, match="plain Keras optimizer"):
        LayerGroupOptimizer([("sgd", head)])
    with pytest.raises(ValueError, match="is in groups 0 and 1"):
        LayerGroupOptimizer([(keras.optimizers.SGD(), head), (keras.optimizers.SGD(), head)])
    with pytest.raises(TypeError, match="layers or variable paths"):
        LayerGroupOptimizer([(keras.optimizers.SGD(), [3])])
    with pytest.raises(ValueError, match="`factor` must be > 0"):
        LayerGroupOptimizer.discriminative(keras.optimizers.SGD, clf.layer_groups, 1e-2,
                                           factor=0)
    partial = LayerGroupOptimizer([(keras.optimizers.SGD(), head)])
    with pytest.raises(ValueError, match="in no group"):
        partial.build(clf.trainable_variables)
    with pytest.raises(AttributeError, match="one rate per group"):
        LayerGroupOptimizer([(keras.optimizers.SGD(), head)]).learning_rate = 0.1


def test_build_optimizer_makes_every_stage_optimizer():
    clf = small_classifier(head_hidden_dropout=0.0)
    x, y = data()
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
            y, clf(x, training=True)))
    # The embedding group frozen: the stages pass only the other variables.
    embedding = {v.path for layer in clf.layer_groups[0] for v in layer.weights}
    variables = [v for v in clf.trainable_variables if v.path not in embedding]
    grads = tape.gradient(loss, variables)
    start = {v.path: v.numpy().copy() for v in clf.trainable_variables}
    for name in OPTIMIZERS:
        for v in clf.trainable_variables:
            v.assign(start[v.path])
        optimizer = build_optimizer(name, clf, SlantedTriangular(1e-2, 10), factor=2.6)
        assert isinstance(optimizer,
                          DiscriminativeAdam if name == "adam" else LayerGroupOptimizer)
        optimizer.build(clf.trainable_variables)
        optimizer.apply(grads, variables)
        for v in clf.trainable_variables:
            moved = not np.array_equal(v.numpy(), start[v.path])
            assert moved == (v.path not in embedding), (name, v.path)
            assert np.isfinite(v.numpy()).all()
