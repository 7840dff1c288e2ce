"""Mixed precision: a tiny LM and classifier train under each policy, with
float32 outputs, finite losses, and an LM loss within 1% of float32's."""

import keras
import numpy as np
import pytest

from ulmfit_tf.models import AWDLSTM, AWDLSTMClassifier, AWDLSTMLanguageModel
from ulmfit_tf.training import DiscriminativeAdam, discriminative_multipliers


def train_under(policy):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        x = rng.integers(9, 40, (16, 12)).astype(np.int32)
        lm = AWDLSTMLanguageModel(AWDLSTM(40, embedding_dim=8, hidden_dim=12, num_layers=2))
        lm(np.zeros((1, 2), np.int32))
        lm.compile(optimizer=DiscriminativeAdam(1e-2, discriminative_multipliers(lm.layer_groups)),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        lm_losses = lm.fit(x, np.roll(x, -1, 1), epochs=10, batch_size=8,
                           verbose=0).history["loss"]
        assert lm(x).dtype == "float32"  # logits, loss and AR/TAR in float32
        clf = AWDLSTMClassifier.from_language_model(lm, 3, max_len=6, bptt=3)
        clf.compile(optimizer=DiscriminativeAdam(1e-2), loss="sparse_categorical_crossentropy")
        clf_losses = clf.fit(x, x[:, 1] % 3, epochs=5, batch_size=8, verbose=0).history["loss"]
        assert clf(x).dtype == "float32"
        return lm, lm_losses, clf_losses
    finally:
        keras.mixed_precision.set_global_policy(previous)


@pytest.mark.parametrize("policy", ["mixed_float16",
                                    pytest.param("mixed_bfloat16", marks=pytest.mark.slow)])
def test_policy_trains_close_to_float32(policy):
    _, reference, _ = train_under("float32")
    lm, lm_losses, clf_losses = train_under(policy)
    assert lm.encoder.get_layer("rnn_0").compute_dtype == policy.split("_")[1]
    assert np.all(np.isfinite(lm_losses)) and np.all(np.isfinite(clf_losses))
    assert lm_losses[-1] < lm_losses[0]
    assert abs(lm_losses[-1] - reference[-1]) < 0.01 * reference[-1]
    if policy == "mixed_float16":
        assert isinstance(lm.optimizer, keras.optimizers.LossScaleOptimizer)
