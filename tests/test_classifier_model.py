"""AWDLSTMClassifier: AR/TAR on the pooled window, config and save round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ulmfit_tf.models import AWDLSTM, AWDLSTMClassifier, AWDLSTMLanguageModel
from ulmfit_tf.models.classifier import activation_penalty


def classifier(**kwargs):
    keras.utils.set_random_seed(0)
    lm = AWDLSTMLanguageModel(AWDLSTM(30, embedding_dim=8, hidden_dim=12, num_layers=2))
    lm(np.zeros((1, 2), np.int32))
    clf = AWDLSTMClassifier.from_language_model(lm, 3, max_len=6, bptt=4, drop_mult=0.0,
                                                **kwargs)
    clf(np.full((1, 3), 2, np.int32))
    return clf


def test_activation_penalty_numbers():
    outputs = tf.constant([[[1.0, 3.0], [2.0, 1.0], [9.0, 9.0]],
                           [[0.5, 0.5], [7.0, 7.0], [7.0, 7.0]]])
    lengths = tf.constant([2, 1])  # real: row 0 steps 0-1, row 1 step 0
    ar = (1 + 9 + 4 + 1 + 0.25 + 0.25) / (3 * 2)
    tar = ((2 - 1) ** 2 + (1 - 3) ** 2) / (1 * 2)  # one real pair, in row 0
    assert float(activation_penalty(outputs, lengths, 2.0, 0.0)) == pytest.approx(2 * ar)
    assert float(activation_penalty(outputs, lengths, 0.0, 1.0)) == pytest.approx(tar)
    assert float(activation_penalty(outputs, lengths, 2.0, 1.0)) == pytest.approx(2 * ar + tar)


def test_penalty_in_training_only_and_blind_to_padding():
    clf = classifier()
    x = np.array([[2, 9, 10, 11, 12, 13, 14, 15, 16]], np.int32)  # longer than the window
    clf(x, training=False)
    assert not clf.losses
    clf(x, training=True)
    (penalty,) = clf.losses
    assert float(penalty) > 0
    padded = np.concatenate([x, np.ones((1, 5), np.int32)], 1)
    clf(padded, training=True)
    assert float(clf.losses[0]) == pytest.approx(float(penalty), rel=1e-5)
    off = classifier(activation_alpha=0.0, temporal_beta=0.0)
    off(x, training=True)
    assert not off.losses


def test_penalty_reaches_the_encoder_gradient():
    clf = classifier(activation_alpha=50.0, temporal_beta=50.0)
    x = np.array([[2, 9, 10, 11, 12, 13]], np.int32)
    with tf.GradientTape() as tape:
        clf(x, training=True)
        loss = tf.add_n(clf.losses)
    kernel = clf.encoder.get_layer("rnn_1").kernel
    assert float(tf.norm(tape.gradient(loss, kernel))) > 0


def test_config_and_save_round_trip(tmp_path):
    clf = classifier(activation_alpha=1.5, temporal_beta=0.5)
    config = clf.get_config()
    assert config["activation_alpha"] == 1.5 and config["temporal_beta"] == 0.5
    clf.save(tmp_path / "clf.keras")
    loaded = keras.saving.load_model(tmp_path / "clf.keras")
    assert (loaded.activation_alpha, loaded.temporal_beta) == (1.5, 0.5)
    x = np.array([[2, 9, 10, 11, 12, 13, 14, 15, 16], [2, 9, 1, 1, 1, 1, 1, 1, 1]], np.int32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), clf.predict(x, verbose=0),
                               atol=1e-6)


@pytest.mark.parametrize("name", ["activation_alpha", "temporal_beta"])
def test_bad_penalty_weights(name):
    with pytest.raises(ValueError, match=f"`{name}` must be a number >= 0. Received: -1"):
        classifier(**{name: -1})


def test_bpt3c_reads_only_the_rows_with_text_in_each_chunk(monkeypatch):
    """One long text in a batch must not make the short ones read its
    length in padding (fastai's SentenceEncoder drops them the same way)."""
    clf = classifier()  # max_len 6, bptt 4
    rng = np.random.default_rng(0)
    lengths = [23, 14, 5]
    x = np.ones((3, 23), np.int32)
    for row, length in enumerate(lengths):
        x[row, :length] = rng.integers(2, 30, length)
    batch_sizes = []
    encoder_call = type(clf.encoder).call

    def counting_call(self, inputs, *args, **kwargs):
        batch_sizes.append(int(inputs["token_ids"].shape[0]))
        return encoder_call(self, inputs, *args, **kwargs)

    monkeypatch.setattr(type(clf.encoder), "call", counting_call)
    for training in (False, True):
        batch_sizes.clear()
        clf(x, training=training)
        # Tokens before each text's last 6: 17, 8 and 0, read in chunks of 4;
        # then the pooled windows of all three.
        assert batch_sizes == [2, 2, 1, 1, 1, 3]
    together = clf(x).numpy()
    for row, length in enumerate(lengths):
        alone = clf(x[row:row + 1, :length]).numpy()
        np.testing.assert_allclose(together[row], alone[0], atol=1e-6)


def xla_training_forward(clf, x):
    return tf.function(lambda ids: clf(ids, training=True), jit_compile=True)(x).numpy()


def test_xla_trains_on_texts_within_the_window():
    clf = classifier(head_hidden_dropout=0.0)  # max_len 6, bptt 4, no dropout
    x = np.random.default_rng(3).integers(2, 30, (2, 6)).astype(np.int32)
    x[1, 3:] = 1
    np.testing.assert_allclose(xla_training_forward(clf, x), clf(x, training=True).numpy(),
                               atol=1e-5)


@pytest.mark.xfail(strict=True, raises=tf.errors.InvalidArgumentError,
                   reason="XLA cannot size the chunks before the window (found in session 21; "
                          "docs/DISTRIBUTED.md, XLA)")
def test_xla_trains_on_texts_longer_than_the_window():
    clf = classifier(head_hidden_dropout=0.0)
    x = np.random.default_rng(3).integers(2, 30, (2, 15)).astype(np.int32)
    np.testing.assert_allclose(xla_training_forward(clf, x), clf(x, training=True).numpy(),
                               atol=1e-5)
