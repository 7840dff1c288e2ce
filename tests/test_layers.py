import keras
import numpy as np
import pytest
import tensorflow as tf

from ulmfit_tf.layers import (ActivationRegularization, EmbeddingDropout, LockedDropout,
                              WeightDropLSTM)


def save_load(layer, x, tmp_path, **call_kwargs):
    """Round-trips `layer` inside a model through .keras; returns both outputs."""
    inputs = keras.Input(shape=x.shape[1:], dtype=x.dtype)
    out = layer(inputs, **call_kwargs)
    model = keras.Model(inputs, out)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    return model(x), loaded(x)


# --- WeightDropLSTM -----------------------------------------------------------

def built_lstm(units=6, input_dim=4, p=0.5):
    layer = WeightDropLSTM(units, weight_dropout=p)
    layer.build((None, None, input_dim))
    return layer


def test_lstm_matches_keras_lstm_in_inference():
    layer = built_lstm(units=6, input_dim=4)
    reference = keras.layers.LSTM(6, return_sequences=True, return_state=True)
    reference.build((None, None, 4))
    reference.set_weights([layer.kernel.numpy(), layer.recurrent_kernel.numpy(),
                           layer.bias.numpy()])
    x = np.random.default_rng(0).normal(size=(3, 9, 4)).astype(np.float32)
    h0 = np.random.default_rng(1).normal(size=(3, 6)).astype(np.float32)
    out, h, c = layer(x, initial_state=(h0, h0), training=False)
    ref_out, ref_h, ref_c = reference(x, initial_state=[h0, h0])
    np.testing.assert_allclose(out, ref_out, atol=1e-6)
    np.testing.assert_allclose(h, ref_h, atol=1e-6)
    np.testing.assert_allclose(c, ref_c, atol=1e-6)


def test_weight_drop_zeroes_about_p_and_scales_the_rest():
    layer = built_lstm(units=64, input_dim=8, p=0.3)
    raw = layer.recurrent_kernel.numpy()
    dropped = layer.dropped_recurrent_kernel(training=True).numpy()
    zero = dropped == 0
    n = zero.size
    assert abs(zero.mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / n)
    np.testing.assert_allclose(dropped[~zero], raw[~zero] / 0.7, rtol=1e-6)
    again = layer.dropped_recurrent_kernel(training=True).numpy()
    assert not np.array_equal(again == 0, zero)  # a fresh mask per batch
    np.testing.assert_array_equal(layer.dropped_recurrent_kernel(training=False), raw)


def test_raw_kernel_unchanged_and_gradients_only_where_kept():
    layer = built_lstm(units=16, input_dim=16, p=0.5)  # square, as layers 2-3
    raw_before = layer.recurrent_kernel.numpy().copy()
    used = {}
    original = layer.dropped_recurrent_kernel

    def recording(training=False):
        used["kernel"] = original(training)
        return used["kernel"]

    layer.dropped_recurrent_kernel = recording
    x = tf.random.normal([4, 7, 16])
    with tf.GradientTape() as tape:
        out, _, _ = layer(x, training=True)
        loss = tf.reduce_sum(out ** 2)
    grad = tape.gradient(loss, layer.recurrent_kernel).numpy()
    np.testing.assert_array_equal(layer.recurrent_kernel.numpy(), raw_before)
    kept = used["kernel"].numpy() != 0
    assert np.all(grad[~kept] == 0)
    assert np.mean(grad[kept] != 0) > 0.99
    keras.optimizers.SGD(0.1).apply_gradients([(grad, layer.recurrent_kernel)])
    after = layer.recurrent_kernel.numpy()
    np.testing.assert_array_equal(after[~kept], raw_before[~kept])
    assert np.mean(after[kept] != raw_before[kept]) > 0.99


def test_lstm_state_continues_a_sequence():
    layer = built_lstm(units=5, input_dim=3)
    x = tf.random.normal([2, 10, 3])
    full, h, c = layer(x)
    first, h1, c1 = layer(x[:, :4])
    second, h2, c2 = layer(x[:, 4:], initial_state=(h1, c1))
    np.testing.assert_allclose(tf.concat([first, second], 1), full, atol=1e-6)
    np.testing.assert_allclose(h2, h, atol=1e-6)


def test_lstm_config_and_save_round_trip(tmp_path):
    layer = WeightDropLSTM(5, weight_dropout=0.25, name="rnn")
    assert WeightDropLSTM.from_config(layer.get_config()).get_config() == layer.get_config()
    x = np.random.default_rng(0).normal(size=(2, 6, 3)).astype(np.float32)
    a, b = save_load(layer, x, tmp_path)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v)


def test_lstm_bad_arguments():
    with pytest.raises(ValueError, match=r"`weight_dropout` must be in \[0, 1\). Received: 1.0"):
        WeightDropLSTM(4, weight_dropout=1.0)
    with pytest.raises(ValueError, match="`units` must be an int >= 1. Received: 0"):
        WeightDropLSTM(0)


# --- EmbeddingDropout ---------------------------------------------------------

def test_embedding_dropout_drops_whole_words():
    layer = EmbeddingDropout(1000, 8, embedding_dropout=0.4)
    ids = np.tile(np.arange(1000), (3, 1))
    out = layer(ids, training=True).numpy()
    table = layer.embeddings.numpy()
    dropped = np.all(out[0] == 0, axis=-1)
    for row in out:  # the same words are dropped at every position
        np.testing.assert_array_equal(np.all(row == 0, axis=-1), dropped)
    np.testing.assert_allclose(out[0][~dropped], table[~dropped] / 0.6, rtol=1e-6)
    assert abs(dropped.mean() - 0.4) < 4 * np.sqrt(0.24 / 1000)
    np.testing.assert_array_equal(layer(ids, training=False)[0], table)


def test_tied_decoder_with_bias():
    layer = EmbeddingDropout(11, 4)
    layer.build()
    layer.output_bias.assign(np.arange(11, dtype=np.float32))
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
    logits = layer(x, reverse=True).numpy()
    np.testing.assert_allclose(logits, x @ layer.embeddings.numpy().T + np.arange(11), rtol=1e-5)
    assert logits.dtype == np.float32


def test_embedding_config_and_save_round_trip(tmp_path):
    layer = EmbeddingDropout(20, 4, embedding_dropout=0.1)
    clone = EmbeddingDropout.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    layer.build()
    layer.output_bias.assign(np.ones(20, np.float32))
    inputs = keras.Input((3, 4))
    model = keras.Model(inputs, layer(inputs, reverse=True))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    x = np.ones((1, 3, 4), np.float32)
    np.testing.assert_allclose(loaded(x), model(x))


# --- LockedDropout ------------------------------------------------------------

def test_locked_dropout_one_mask_per_sequence():
    layer = LockedDropout(0.5)
    x = np.ones((8, 20, 64), np.float32)
    out = layer(x, training=True).numpy()
    np.testing.assert_array_equal(out, np.broadcast_to(out[:, :1], out.shape))
    assert set(np.unique(out)) <= {0.0, 2.0}
    assert abs((out[:, 0] == 0).mean() - 0.5) < 0.1
    assert not np.array_equal(out[0, 0], out[1, 0])  # each sequence its own mask
    np.testing.assert_array_equal(layer(x, training=False), x)


def test_locked_dropout_config_and_save_round_trip(tmp_path):
    layer = LockedDropout(0.3)
    assert LockedDropout.from_config(layer.get_config()).get_config() == layer.get_config()
    a, b = save_load(layer, np.ones((2, 3, 4), np.float32), tmp_path)
    np.testing.assert_array_equal(a, b)


# --- AR / TAR -----------------------------------------------------------------

def test_ar_tar_values_and_training_only():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(2, 5, 3)).astype(np.float32)
    dropped = rng.normal(size=(2, 5, 3)).astype(np.float32)
    layer = ActivationRegularization(alpha=2.0, beta=1.0)
    expected = 2 * np.mean(dropped ** 2) + np.mean((raw[:, 1:] - raw[:, :-1]) ** 2)
    np.testing.assert_allclose(layer.penalty(raw, dropped), expected, rtol=1e-6)
    half = tf.cast(raw, "float16")
    assert layer.penalty(half, tf.cast(dropped, "float16")).dtype == tf.float32

    inputs = [keras.Input((5, 3)), keras.Input((5, 3))]
    model = keras.Model(inputs, ActivationRegularization(2.0, 1.0)(inputs))
    model([raw, dropped], training=True)
    np.testing.assert_allclose(sum(model.losses), expected, rtol=1e-5)
    model([raw, dropped], training=False)
    assert not model.losses


def test_ar_tar_config():
    layer = ActivationRegularization(alpha=3.0, beta=0.5)
    assert ActivationRegularization.from_config(layer.get_config()).get_config() == \
        layer.get_config()
    with pytest.raises(ValueError, match="`alpha` and `beta` must be >= 0"):
        ActivationRegularization(alpha=-1)


@pytest.mark.parametrize("training", [True, False])
def test_cpu_kernel_gradients_match_autodiff(training):
    """The hand-written backward pass against autodiff of a plain loop
    (float64); the inference loop (training=False) computes the same, and
    autodiff through it too."""
    from ulmfit_tf.layers.lstm_kernels import lstm_sequence

    rng = np.random.default_rng(0)
    B, T, I, H = 3, 7, 5, 4
    args = [tf.constant(rng.normal(size=s) * 0.5, tf.float64)
            for s in [(B, T, I), (B, H), (B, H), (I, 4 * H), (H, 4 * H), (4 * H,)]]
    weights = [tf.constant(rng.normal(size=s), tf.float64) for s in [(B, T, H), (B, H), (B, H)]]

    def reference(x, h, c, kernel, recurrent, bias):
        outs = []
        for t in range(T):
            i, f, g, o = tf.split(x[:, t] @ kernel + h @ recurrent + bias, 4, -1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            outs.append(h)
        return tf.stack(outs, 1), h, c

    def loss(fn):
        return sum(tf.reduce_sum(o * w) for o, w in zip(fn(*args), weights))

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(args)
        ours = loss(lambda *a: lstm_sequence(*a, training=training))
        theirs = loss(reference)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    for a, b in zip(tape.gradient(ours, args), tape.gradient(theirs, args)):
        np.testing.assert_allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("training", [True, False])
def test_cpu_kernel_and_decoder_take_only_2d_matmuls(training):
    """oneDNN runs the batched 3-D form of the input projection (einsum, or
    matmul on [B, T, I]) 2.3-2.7x slower than one 2-D matmul in float32, forward
    and backward (docs/PERFORMANCE.md): no traced op of the LSTM's training
    step or of the tied decoder may be a batched matmul."""
    from test_gpu_path import _op_types

    from ulmfit_tf.layers.lstm_kernels import lstm_sequence

    B, T, I, H = 2, 3, 5, 4
    args = [tf.Variable(tf.random.normal(s)) for s in
            [(B, T, I), (B, H), (B, H), (I, 4 * H), (H, 4 * H), (4 * H,)]]
    decoder = EmbeddingDropout(11, H)
    decoder.build()

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            outputs = lstm_sequence(*args, training=training)[0]
            loss = tf.reduce_sum(decoder(outputs, reverse=True))
        return tape.gradient(loss, args + [decoder.embeddings])

    # The graph and its function library: loop bodies, custom gradients.
    types = _op_types(step.get_concrete_function().graph.as_graph_def())
    assert "MatMul" in types
    assert not types & {"Einsum", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"}, types


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("lengths", [[7, 4, 1], [1, 7, 0, 4, 4], [0, 0]])
def test_masked_cpu_kernel_holds_state_and_gradients_match(training, lengths):
    """Right-padded rows: the state after each row's last real step, exact
    gradients (training and inference loops). Rows in any order, empty ones
    included: the inference loop sorts them to skip finished rows."""
    from ulmfit_tf.layers.lstm_kernels import lstm_sequence

    rng = np.random.default_rng(1)
    B, T, I, H = len(lengths), 7, 5, 4
    mask = tf.constant(np.arange(T)[None] < np.array(lengths)[:, None])
    args = [tf.constant(rng.normal(size=s) * 0.5, tf.float64)
            for s in [(B, T, I), (B, H), (B, H), (I, 4 * H), (H, 4 * H), (4 * H,)]]
    weights = [tf.constant(rng.normal(size=s), tf.float64) for s in [(B, T, H), (B, H), (B, H)]]

    def reference(x, h0, c0, kernel, recurrent, bias):
        outs, hs, cs = [], [], []
        for r in range(B):
            h, c, row = h0[r:r + 1], c0[r:r + 1], []
            for t in range(T):
                if t < lengths[r]:
                    i, f, g, o = tf.split(x[r:r + 1, t] @ kernel + h @ recurrent + bias, 4, -1)
                    c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
                    h = tf.sigmoid(o) * tf.tanh(c)
                row.append(h)
            outs.append(tf.concat(row, 0))
            hs.append(h)
            cs.append(c)
        return tf.stack(outs), tf.concat(hs, 0), tf.concat(cs, 0)

    def loss(fn):
        return sum(tf.reduce_sum(o * w) for o, w in zip(fn(*args), weights))

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(args)
        ours = loss(lambda *a: lstm_sequence(*a, mask=mask, training=training))
        theirs = loss(reference)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    for a, b, arg in zip(tape.gradient(ours, args), tape.gradient(theirs, args), args):
        # All rows empty: the reference never touches the weights (None).
        b = tf.zeros_like(arg) if b is None else b
        np.testing.assert_allclose(tf.convert_to_tensor(a), b, atol=1e-12)


def test_cross_replica_batch_norm_is_keras_batch_norm_on_one_device(tmp_path):
    from ulmfit_tf.layers import CrossReplicaBatchNormalization

    x = np.random.default_rng(0).normal(3.0, 0.01, size=(32, 5)).astype(np.float32)
    ours = CrossReplicaBatchNormalization(momentum=0.9, epsilon=1e-5)
    keras_bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    for training in (True, False):
        np.testing.assert_allclose(ours(x, training=training), keras_bn(x, training=training),
                                   atol=1e-6)
    np.testing.assert_allclose(ours.moving_mean.numpy(), keras_bn.moving_mean.numpy())
    # Under a strategy it computes two-pass statistics (the replicated case is
    # in test_discriminative.py); the one-replica path is Keras' own.
    config = ours.get_config()
    assert "synchronized" not in config and config["momentum"] == 0.9
    assert CrossReplicaBatchNormalization.from_config(config).get_config() == config
    model = keras.Sequential([keras.Input((5,)), ours])
    model.save(tmp_path / "bn.keras")
    restored = keras.saving.load_model(tmp_path / "bn.keras")
    assert isinstance(restored.layers[0], CrossReplicaBatchNormalization)
    np.testing.assert_allclose(restored(x), model(x), atol=1e-6)


@pytest.mark.parametrize("lengths", [None, [7, 4, 1]])
def test_bfloat16_matmul_precision_rounds_only_the_matmul_operands(lengths):
    """`matmul_precision("bfloat16")`: the inference loop equals a float32
    loop whose matmul operands and products are rounded to bfloat16, with
    float32 gates and state; the training loop ignores it."""
    from ulmfit_tf.layers.lstm_kernels import lstm_sequence, matmul_precision

    rng = np.random.default_rng(2)
    B, T, I, H = 3, 7, 5, 4
    x, h0, c0, kernel, recurrent, bias = [
        tf.constant(rng.normal(size=s), tf.float32)
        for s in [(B, T, I), (B, H), (B, H), (I, 4 * H), (H, 4 * H), (4 * H,)]]
    mask = None if lengths is None else tf.constant(
        np.arange(T)[None] < np.array(lengths)[:, None])

    def rounded(a):
        return tf.cast(tf.cast(a, tf.bfloat16), tf.float32)

    def reference(h, c):
        outs = []
        for t in range(T):
            z = (rounded(rounded(x[:, t]) @ rounded(kernel)) + bias
                 + rounded(rounded(h) @ rounded(recurrent)))
            i, f, g, o = tf.split(z, 4, -1)
            c_new = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h_new = tf.sigmoid(o) * tf.tanh(c_new)
            if mask is not None:
                keep = mask[:, t:t + 1]
                h_new, c_new = tf.where(keep, h_new, h), tf.where(keep, c_new, c)
            h, c = h_new, c_new
            outs.append(h)
        return tf.stack(outs, 1), h, c

    args = (x, h0, c0, kernel, recurrent, bias)
    full = lstm_sequence(*args, mask=mask, training=False)
    with matmul_precision("bfloat16"):
        reduced = lstm_sequence(*args, mask=mask, training=False)
        training = lstm_sequence(*args, mask=mask, training=True)
    for ours, want in zip(reduced, reference(h0, c0)):
        assert ours.dtype == tf.float32
        np.testing.assert_allclose(ours, want, atol=1e-5)
    # Rounding moved the outputs (the test can tell the two apart), a little.
    difference = np.abs(reduced[0] - full[0]).max()
    assert 1e-4 < difference < 5e-2
    np.testing.assert_array_equal(training[0], lstm_sequence(*args, mask=mask, training=True)[0])
    with pytest.raises(ValueError, match=r"`matmul_precision` must be one of .*'float16'"):
        with matmul_precision("float16"):
            pass
