"""LSTM sequence kernels that take the recurrent weight as a tensor.

Weight drop needs an LSTM whose hidden-to-hidden matrix is a (dropped) tensor
computed each batch, not the layer's variable. On GPU, Keras' fused cuDNN
call accepts one; on CPU we run our own loop, with a hand-written backward
pass: the weight gradient of all time steps is one matmul after the loop
instead of one small matmul per step, which makes it faster than autodiff
through the loop (and than `keras.layers.LSTM` here; see docs/PERFORMANCE.md).

Gate order is Keras' and PyTorch's: input, forget, cell, output.
"""

import contextlib
import importlib
import threading

import keras
import tensorflow as tf

# The package re-exports a function named `rnn` over the module's name.
keras_tf_rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")

_tracing = threading.local()


def cudnn_visible():
    """Whether Keras will take its fused cuDNN kernel (a GPU is visible)."""
    return keras_tf_rnn.cudnn_ok(keras.activations.tanh, keras.activations.sigmoid,
                                 unroll=False, use_bias=True)


MATMUL_PRECISIONS = ("float32", "bfloat16")


def check_matmul_precision(precision):
    """Raises the error that names `matmul_precision` unless it is one of
    MATMUL_PRECISIONS (callers check before they trace or write anything)."""
    if precision not in MATMUL_PRECISIONS:
        raise ValueError(f"`matmul_precision` must be one of {MATMUL_PRECISIONS}. "
                         f"Received: {precision!r}")


@contextlib.contextmanager
def matmul_precision(precision):
    """Within it, LSTMs traced for inference on the CPU loop (`training=False`)
    multiply in `precision`: "bfloat16" rounds the matmul operands (the
    kernels once, h at each step) and products to bfloat16, while the gates,
    the cell state and the outputs stay float32. It pays only where the CPU
    multiplies bfloat16 in hardware (AVX512-BF16, AMX); elsewhere TensorFlow
    emulates it, slower than float32. Training, and cuDNN on a GPU, ignore it."""
    check_matmul_precision(precision)
    previous = getattr(_tracing, "matmul_dtype", None)
    _tracing.matmul_dtype = None if precision == "float32" else tf.dtypes.as_dtype(precision)
    try:
        yield
    finally:
        _tracing.matmul_dtype = previous


@contextlib.contextmanager
def portable_lstm():
    """Within it, LSTMs are traced as the portable loop even where a GPU is
    visible: a graph holding cuDNN's op (CudnnRNNV3) runs on GPUs only, so an
    export traced on a GPU host would fail on a CPU-only server."""
    previous = getattr(_tracing, "portable", False)
    _tracing.portable = True
    try:
        yield
    finally:
        _tracing.portable = previous


def lstm_sequence(inputs, h0, c0, kernel, recurrent_kernel, bias, mask=None, training=True):
    """Runs an LSTM over [B, T, I] inputs; returns (outputs [B, T, H], h, c).

    `mask` ([B, T] bool, True for real steps, right padding only): masked
    steps keep the state, so (h, c) is the state after each row's last real
    step, and their outputs repeat the last real output (cuDNN: zeros). A
    row without any real step keeps its initial state, and outputs it.
    `training=False` (Python False only) takes the CPU loop that keeps no
    activations for a backward pass: the same numbers, less memory traffic
    (gradients still flow through it, by autodiff).
    """
    if not getattr(_tracing, "portable", False):
        try:
            return _cudnn_sequence(inputs, h0, c0, kernel, recurrent_kernel, bias, mask)
        except NotImplementedError:  # no GPU: Keras raises this to say "no cuDNN"
            pass
    if training is False and mask is not None:
        return _skipping_forward(inputs, mask, h0, c0, kernel, recurrent_kernel, bias)
    projected = _project(inputs, kernel, bias, inference=training is False)
    if training is False:
        outputs, _, c = _forward_loop(projected, recurrent_kernel, h0, c0)
    elif mask is None:
        outputs, c = _lstm_loop(projected, tf.ones([], projected.dtype), recurrent_kernel,
                                h0, c0)
    else:
        keep = tf.cast(tf.transpose(mask)[:, :, tf.newaxis], projected.dtype)
        outputs, c = _masked_lstm_loop(projected, keep, recurrent_kernel, h0, c0)
    return tf.transpose(outputs, [1, 0, 2]), outputs[-1], c


def _cudnn_sequence(inputs, h0, c0, kernel, recurrent_kernel, bias, mask):
    if mask is None:
        _, outputs, (h, c) = keras_tf_rnn.lstm(
            inputs, h0, c0, None, kernel, recurrent_kernel, bias,
            keras.activations.tanh, keras.activations.sigmoid, return_sequences=True)
        return outputs, h, c
    # cuDNN asserts that every row has a real step; BPT3C's chunks before a
    # short text's window are all padding for it. Such rows run one step on
    # padding, and their results are replaced by the initial state.
    has_steps = tf.reduce_any(mask, axis=1)
    first = tf.logical_or(mask[:, :1], tf.logical_not(has_steps)[:, tf.newaxis])
    _, outputs, (h, c) = keras_tf_rnn.lstm(
        inputs, h0, c0, tf.concat([first, mask[:, 1:]], 1), kernel, recurrent_kernel, bias,
        keras.activations.tanh, keras.activations.sigmoid, return_sequences=True)
    keep = has_steps[:, tf.newaxis]
    outputs = tf.where(keep[:, :, tf.newaxis], outputs,
                       tf.broadcast_to(h0[:, tf.newaxis, :], tf.shape(outputs)))
    return outputs, tf.where(keep, h, h0), tf.where(keep, c, c0)


def _cell(z, c):
    i, f, g, o = tf.split(z, 4, axis=-1)
    i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
    c = f * c + i * g
    tanh_c = tf.tanh(c)
    return o * tanh_c, c, tf.concat([i, f, g, o], -1), tanh_c


def _project(inputs, kernel, bias, inference=True):
    """The input projection, time-major; for inference, in the traced
    `matmul_precision`. One 2-D matmul over all steps: oneDNN runs the
    batched 3-D form of the same product (einsum, or matmul on [B, T, I])
    2.3-2.7x slower in float32 at the paper's 1,152 inputs (docs/PERFORMANCE.md),
    and transposing the inputs costs less than transposing the 4H outputs."""
    time_major = tf.transpose(inputs, [1, 0, 2])
    shape = tf.shape(time_major)
    projected = _project_rows(tf.reshape(time_major, [-1, kernel.shape[0]]), kernel, bias,
                              inference)
    return tf.reshape(projected, [shape[0], shape[1], kernel.shape[-1]])


def _project_rows(rows, kernel, bias, inference=True):
    """[N, I] -> [N, 4H]; for inference, in the traced `matmul_precision`."""
    dtype = getattr(_tracing, "matmul_dtype", None) if inference else None
    if dtype is not None:
        rows, kernel = tf.cast(rows, dtype), tf.cast(kernel, dtype)
    return tf.cast(tf.matmul(rows, kernel), bias.dtype) + bias


def _forward_loop(projected, recurrent_kernel, h0, c0, active_rows=None):
    """Inference: only h and c cross steps, only h is stacked (the training
    loop also stacks c, the gates and tanh(c) of every step for its backward
    pass: 7H floats per row and step instead of H).

    `projected`: [T, B, 4H]. With `active_rows` ([T] int), packed instead:
    the projections of each step's first active_rows[t] rows, step after
    step, [sum(active_rows), 4H]. At step t only those rows are computed;
    the others keep their state and repeat their output."""
    steps = tf.shape(projected)[0] if active_rows is None else tf.shape(active_rows)[0]
    if active_rows is not None:
        starts = tf.cumsum(active_rows, exclusive=True)
    units = tf.shape(h0)[-1]
    outputs = tf.TensorArray(projected.dtype, size=steps, element_shape=h0.shape)
    matmul_dtype = getattr(_tracing, "matmul_dtype", None)
    if matmul_dtype is not None:  # cast once, outside the loop
        recurrent_kernel = tf.cast(recurrent_kernel, matmul_dtype)

    def body(t, h, c, outputs):
        if active_rows is None:
            h_new, c_new = _inference_cell(projected[t], h, c, recurrent_kernel, units)
        else:
            rows, start = active_rows[t], starts[t]
            h_new, c_new = _inference_cell(projected[start:start + rows], h[:rows], c[:rows],
                                           recurrent_kernel, units)
            h_new, c_new = tf.concat([h_new, h[rows:]], 0), tf.concat([c_new, c[rows:]], 0)
            h_new.set_shape(h.shape)
            c_new.set_shape(c.shape)
        return t + 1, h_new, c_new, outputs.write(t, h_new)

    _, h, c, outputs = tf.while_loop(lambda t, *_: t < steps, body, (0, h0, c0, outputs))
    return outputs.stack(), h, c


def _inference_cell(z_in, h, c, recurrent_kernel, units):
    if recurrent_kernel.dtype == h.dtype:
        z = z_in + tf.matmul(h, recurrent_kernel)
    else:  # reduced-precision operands, float32 gates (`matmul_precision`)
        z = z_in + tf.cast(tf.matmul(tf.cast(h, recurrent_kernel.dtype), recurrent_kernel),
                           z_in.dtype)
    # Input and forget gates are adjacent: one sigmoid for both.
    i_f = tf.sigmoid(z[:, :2 * units])
    c = i_f[:, units:] * c + i_f[:, :units] * tf.tanh(z[:, 2 * units:3 * units])
    return tf.sigmoid(z[:, 3 * units:]) * tf.tanh(c), c


def _skipping_forward(inputs, mask, h0, c0, kernel, recurrent_kernel, bias):
    """Inference over right-padded rows that computes, at each step, only
    the rows that still have text, as fastai's classifier does chunk by
    chunk: the rows are sorted longest first, so those are a prefix of the
    batch. Padding costs nothing in the recurrence, nor in the input
    projection, which reads the real steps only (packed, as PyTorch's
    PackedSequence); so texts of any lengths can share a batch, and the
    recurrent matmuls run on more rows. Same numbers as the masked loop:
    finished rows keep their state and repeat their last output."""
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    order = tf.argsort(lengths, direction="DESCENDING", stable=True)
    restore = tf.math.invert_permutation(order)
    # [T, B]: the real steps of the sorted rows. Each step's real rows are a
    # prefix, so row-major order packs the steps one after another.
    real = tf.range(tf.shape(inputs)[1])[:, tf.newaxis] < tf.gather(lengths, order)[tf.newaxis, :]
    active_rows = tf.reduce_sum(tf.cast(real, tf.int32), 1)
    packed = tf.boolean_mask(tf.transpose(tf.gather(inputs, order), [1, 0, 2]), real)
    projected = _project_rows(packed, kernel, bias)
    outputs, h, c = _forward_loop(projected, recurrent_kernel, tf.gather(h0, order),
                                  tf.gather(c0, order), active_rows)
    outputs = tf.gather(tf.transpose(outputs, [1, 0, 2]), restore)
    return outputs, tf.gather(h, restore), tf.gather(c, restore)


def _make_loop(masked):
    """The CPU loop, with or without a mask (chosen when traced, so the
    unmasked language-model path pays nothing for masking)."""

    @tf.custom_gradient
    def loop(projected, keep, recurrent_kernel, h0, c0):
        """Time-major: projected [T, B, 4H], keep [T, B, 1] (1.0 for a real
        step; ignored unless masked) -> (hs [T, B, H], final c). A masked
        step leaves the state unchanged."""

        def step(carry, inputs):
            h, c = carry[0], carry[1]
            z_in, k = inputs
            h_new, c_new, gates, tanh_c = _cell(z_in + tf.matmul(h, recurrent_kernel), c)
            if masked:
                h_new, c_new = h + k * (h_new - h), c + k * (c_new - c)
            return h_new, c_new, gates, tanh_c

        # Shaped like the state (whose batch size may be unknown where the
        # inputs' is known), so the loop's shapes stay the same every step.
        zeros_gates = tf.zeros_like(tf.concat([h0] * 4, -1))
        steps_keep = keep if masked else tf.zeros_like(projected[:, :, :1])
        hs, cs, gates, tanh_cs = tf.scan(step, (projected, steps_keep),
                                         initializer=(h0, c0, zeros_gates, c0))

        def grad(d_hs, d_c_final):
            h_prev = tf.concat([h0[tf.newaxis], hs[:-1]], 0)
            c_prev = tf.concat([c0[tf.newaxis], cs[:-1]], 0)
            recurrent_t = tf.transpose(recurrent_kernel)
            d_c_final = tf.zeros_like(c0) if d_c_final is None else d_c_final

            def back_step(carry, inputs):
                d_h_next, d_c_next = carry[0], carry[1]
                d_h_out, gate, tanh_c, c_before, k = inputs
                i, f, g, o = tf.split(gate, 4, axis=-1)
                d_h_total = d_h_out + d_h_next
                d_h = k * d_h_total if masked else d_h_total
                d_c = (k * d_c_next if masked else d_c_next) + d_h * o * (1 - tanh_c * tanh_c)
                d_z = tf.concat([d_c * g * i * (1 - i), d_c * c_before * f * (1 - f),
                                 d_c * i * (1 - g * g), d_h * tanh_c * o * (1 - o)], -1)
                d_h_prev, d_c_prev = tf.matmul(d_z, recurrent_t), d_c * f
                if masked:  # a masked step passes its gradients straight through
                    d_h_prev += (1 - k) * d_h_total
                    d_c_prev += (1 - k) * d_c_next
                return d_h_prev, d_c_prev, d_z

            d_h0, d_c0, d_z = tf.scan(
                back_step, (d_hs, gates, tanh_cs, c_prev, steps_keep),
                initializer=(tf.zeros_like(h0), d_c_final, zeros_gates), reverse=True)
            # The weight gradient of all steps in one matmul, after the loop.
            units, gates_width = recurrent_kernel.shape
            d_recurrent = tf.matmul(tf.reshape(h_prev, [-1, units]),
                                    tf.reshape(d_z, [-1, gates_width]), transpose_a=True)
            return d_z, tf.zeros_like(keep), d_recurrent, d_h0[0], d_c0[0]

        return (hs, cs[-1]), grad

    return loop


_lstm_loop, _masked_lstm_loop = _make_loop(masked=False), _make_loop(masked=True)
