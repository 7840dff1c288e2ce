"""The language models bundled in saved_models/: what saved_models/README.md
says of them."""

import json
import os

from ulmfit_tf.presets import (DEFAULT_BACKWARD_PRESET as BACKWARD_PRESET, DEFAULT_PRESET,
                               PRESETS_DIR, preset_names)
from ulmfit_tf.tasks import LanguageModel


def _run_file(preset, name):
    return os.path.join(PRESETS_DIR, preset, name)


def test_bundled_models_stay_within_40_mb():
    total = sum(os.path.getsize(os.path.join(root, name))
                for root, _, names in os.walk(PRESETS_DIR) for name in names)
    assert total <= 40_000_000, f"saved_models/ holds {total:,} bytes"


def test_backward_partner_reads_the_default_models_vocabulary_and_data():
    """The ensemble averages two directions over one vocabulary: the backward
    model must share the default's ids, size and held-out documents. The
    default was trained on for longer (its rate and seed differ)."""
    assert {DEFAULT_PRESET, BACKWARD_PRESET} <= set(preset_names())
    configs = []
    for preset in (DEFAULT_PRESET, BACKWARD_PRESET):
        with open(_run_file(preset, "config.json")) as f:
            configs.append(json.load(f))
    forward, backward = configs
    assert forward["backwards"] is False and backward["backwards"] is True
    for key in ("embedding_dim", "hidden_dim", "num_layers", "vocabulary_size", "drop_mult",
                "batch_size", "bptt", "schedule", "weight_decay", "beta_1", "beta_2",
                "valid_fraction", "train_tokens", "valid_tokens"):
        assert forward[key] == backward[key], key
    # Runs before `split_seed` existed drew their held-out documents with `seed`.
    assert forward.get("split_seed", forward["seed"]) == backward.get("split_seed",
                                                                      backward["seed"])
    with open(_run_file(DEFAULT_PRESET, "vocab.txt"), "rb") as f, \
            open(_run_file(BACKWARD_PRESET, "vocab.txt"), "rb") as g:
        assert f.read() == g.read()


def test_each_direction_predicts_best_the_way_it_was_trained(data_dir):
    """Read the way it was trained, each model finds held-out English far
    less surprising than read the other way (a backward model that was in
    fact trained forward, or a reversed stream, would fail this)."""
    with open(os.path.join(data_dir, "wikitext-2", "wiki.valid.tokens"), encoding="utf-8") as f:
        text = f.read(20_000)
    perplexities = {}
    for preset in (DEFAULT_PRESET, BACKWARD_PRESET):
        model = LanguageModel.from_preset(preset)
        flipped = LanguageModel(model.language_model, model.vocab, backwards=not model.backwards)
        perplexities[preset] = [m.evaluate([text], batch_size=8, verbose=0)["perplexity"]
                                for m in (model, flipped)]
    for preset, (own, other) in perplexities.items():
        assert own < 0.5 * other, perplexities
    # One size on one corpus, the forward model trained on 6.3 times the
    # tokens: it is the less surprised, but neither direction is far easier
    # (WikiText-2 as a whole: 79.5 against 111.9).
    forward, backward = perplexities[DEFAULT_PRESET][0], perplexities[BACKWARD_PRESET][0]
    assert 0.5 < forward / backward < 1.0, perplexities
