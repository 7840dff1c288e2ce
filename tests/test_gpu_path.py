"""The GPU path, checked on a CPU: Keras' cuDNN call is replaced by a stand-in
with cuDNN's contract (every row needs a real step; zeros at padding), or a
GPU is made to look visible while graphs are traced (never run)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from ulmfit_tf.export import export_classifier
from ulmfit_tf.layers import WeightDropLSTM
from ulmfit_tf.layers import lstm_kernels
from ulmfit_tf.models import AWDLSTM, AWDLSTMClassifier, AWDLSTMLanguageModel
from ulmfit_tf.text import Vocab


def small_classifier():
    keras.utils.set_random_seed(0)
    lm = AWDLSTMLanguageModel(AWDLSTM(30, embedding_dim=8, hidden_dim=12, num_layers=3))
    lm(np.zeros((1, 2), np.int32))
    clf = AWDLSTMClassifier.from_language_model(lm, 3, max_len=10, bptt=5, drop_mult=0.0)
    clf(np.full((2, 3), 2, np.int32))
    return clf


def long_and_short_texts():
    x = np.random.default_rng(3).integers(9, 30, (4, 23)).astype(np.int32)
    x[1, 15:] = 1  # all padding in the chunks before its window
    x[2, 4:] = 1  # shorter than the window: all padding in every chunk
    return x


def cudnn_stand_in(calls):
    def lstm(inputs, h0, c0, mask, kernel, recurrent_kernel, bias, activation,
             recurrent_activation, return_sequences=False):
        calls.append(mask is not None)
        with lstm_kernels.portable_lstm():
            outputs, h, c = lstm_kernels.lstm_sequence(inputs, h0, c0, kernel,
                                                       recurrent_kernel, bias, mask)
        if mask is None:
            return None, outputs, (h, c)
        # keras.src.backend.tensorflow.rnn._assert_valid_mask, in every mode.
        check = tf.debugging.Assert(tf.reduce_all(tf.reduce_any(mask, axis=1)),
                                    ["a row without a real step reached cuDNN"])
        with tf.control_dependencies([check]):
            outputs = outputs * tf.cast(mask, outputs.dtype)[:, :, tf.newaxis]
        return None, outputs, (h, c)

    return lstm


def test_bpt3c_sends_cudnn_no_row_without_real_steps(monkeypatch):
    clf = small_classifier()
    x = long_and_short_texts()
    cpu = clf(x).numpy()
    calls = []
    monkeypatch.setattr(lstm_kernels.keras_tf_rnn, "lstm", cudnn_stand_in(calls))
    np.testing.assert_allclose(clf(x).numpy(), cpu, atol=1e-6)
    np.testing.assert_allclose(tf.function(clf)(x).numpy(), cpu, atol=1e-6)
    np.testing.assert_allclose(clf.predict(x, verbose=0), cpu, atol=1e-6)
    assert calls and all(calls)  # the classifier's LSTMs all went through "cuDNN", masked


def test_a_row_without_steps_keeps_its_state(monkeypatch):
    monkeypatch.setattr(lstm_kernels.keras_tf_rnn, "lstm", cudnn_stand_in([]))
    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.normal(size=(2, 4, 3)), tf.float32)
    h0, c0 = (tf.constant(rng.normal(size=(2, 5)), tf.float32) for _ in range(2))
    kernel, recurrent, bias = (tf.constant(rng.normal(size=s), tf.float32)
                               for s in [(3, 20), (5, 20), (20,)])
    mask = tf.constant([[True, True, False, False], [False] * 4])
    outputs, h, c = lstm_kernels.lstm_sequence(inputs, h0, c0, kernel, recurrent, bias, mask)
    np.testing.assert_allclose(h[1], h0[1])
    np.testing.assert_allclose(c[1], c0[1])
    np.testing.assert_allclose(outputs[1], np.broadcast_to(h0[1], (4, 5)))
    with lstm_kernels.portable_lstm():
        _, h_cpu, c_cpu = lstm_kernels.lstm_sequence(inputs, h0, c0, kernel, recurrent, bias,
                                                     mask)
    np.testing.assert_allclose(h, h_cpu, atol=1e-6)
    np.testing.assert_allclose(c, c_cpu, atol=1e-6)


@pytest.fixture
def gpu_visible(monkeypatch):
    monkeypatch.setattr(lstm_kernels.keras_tf_rnn, "_is_gpu_available", lambda: True)


def test_xla_is_left_off_where_cudnn_runs(gpu_visible):
    assert not WeightDropLSTM(4).supports_jit
    model = AWDLSTMLanguageModel(AWDLSTM(30, embedding_dim=8, hidden_dim=12, num_layers=2))
    model(np.zeros((1, 2), np.int32))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile="auto")
    assert model.jit_compile is False


def test_xla_is_allowed_on_a_cpu_host():
    assert not lstm_kernels.cudnn_visible()
    assert WeightDropLSTM(4).supports_jit


def _op_types(graph_def):
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops |= {node.op for node in function.node_def}
    return ops


def test_export_on_a_gpu_host_holds_no_cudnn_op(gpu_visible, tmp_path):
    clf = small_classifier()
    # With a GPU in sight, a traced forward pass holds cuDNN's op...
    traced = tf.function(clf).get_concrete_function(tf.TensorSpec([None, None], tf.int32))
    assert "CudnnRNNV3" in _op_types(traced.graph.as_graph_def())
    # ...which the export leaves out, so a CPU-only server can run it.
    vocab = Vocab.build([["who", "what"]], min_freq=1)
    path = export_classifier(clf, vocab, ["a", "b", "c"], tmp_path / "export")
    saved = saved_model_pb2.SavedModel()
    with open(tmp_path / "export" / "1" / "saved_model.pb", "rb") as f:
        saved.ParseFromString(f.read())
    ops = set().union(*(_op_types(graph.graph_def) for graph in saved.meta_graphs))
    assert "While" in ops or "StatelessWhile" in ops  # the portable loop
    assert not {op for op in ops if op.startswith("Cudnn")}, path
