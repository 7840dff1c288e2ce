import json
import math
import os

import numpy as np
import pytest

from ulmfit_tf.cli import main
from ulmfit_tf.data import load_corpus
from ulmfit_tf.text import Vocab, tokenize_corpus
from ulmfit_tf.training.language_model import (LanguageModelConfig, split_documents,
                                               train_language_model)


@pytest.mark.slow
def test_small_lm_learns_general_english(data_dir, tmp_path):
    """150k tokens of news, 2 epochs: held-out perplexity far below a unigram model's."""
    texts = load_corpus(os.path.join(data_dir, "general-en", "news-2017"))
    tokens, total = [], 0
    for doc in tokenize_corpus(texts):
        tokens.append(doc)
        total += len(doc)
        if total >= 165_000:
            break
    train_tokens, valid_tokens = split_documents(tokens, 0.1, seed=0)
    vocab = Vocab.build(train_tokens, min_freq=3)
    train = [vocab.encode(t) for t in train_tokens]
    valid = [vocab.encode(t) for t in valid_tokens]
    assert sum(map(len, train)) >= 140_000 and sum(map(len, valid)) >= 10_000

    # The unigram baseline, from training counts (add-one), on the same held-out ids.
    counts = np.bincount(np.concatenate(train), minlength=len(vocab)) + 1.0
    held_out = np.concatenate(valid)
    unigram_perplexity = math.exp(-np.mean(np.log(counts[held_out] / counts.sum())))

    config = LanguageModelConfig(embedding_dim=64, hidden_dim=128, num_layers=2, batch_size=32,
                                 bptt=40, epochs=2, max_lr=1e-2, drop_mult=0.3)
    model, summary = train_language_model(train, valid, vocab, config, str(tmp_path), verbose=0)
    assert summary["val_perplexity"] < 0.75 * unigram_perplexity, (
        summary["val_perplexity"], unigram_perplexity)
    assert sorted(os.listdir(tmp_path)) == ["config.json", "history.png", "metrics.json",
                                            "model.keras", "vocab.txt"]
    with open(tmp_path / "config.json") as f:
        config_json = json.load(f)
    assert config_json["hidden_dim"] == 128 and config_json["vocabulary_size"] == len(vocab)


@pytest.mark.slow
def test_cli_prepare_pretrain_generate(data_dir, tmp_path, capsys):
    prepared, run = str(tmp_path / "data"), str(tmp_path / "lm")
    assert main(["prepare", "trec", "--data", data_dir, "--out", prepared, "--min-freq", "2"]) == 0
    assert sorted(os.listdir(prepared)) == ["config.json", "metrics.json", "tokens.ids",
                                            "tokens.offsets.npy", "vocab.txt"]
    assert main(["pretrain", prepared, "--out", run, "--epochs", "1", "--embedding-dim", "16",
                 "--hidden-dim", "24", "--layers", "2", "--batch-size", "16", "--bptt", "20",
                 "--max-tokens", "20000"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["val_perplexity"] > 1 and summary["train_tokens_per_second"] > 0
    # Another pass from where it ended, in two epochs of 10k tokens: its
    # sizes, vocabulary and held-out documents, not the flags' (another
    # --seed only reorders the documents).
    continued = str(tmp_path / "lm2")
    assert main(["pretrain", prepared, "--init-from", run, "--out", continued, "--epochs", "2",
                 "--tokens-per-epoch", "10000", "--embedding-dim", "99", "--batch-size", "16",
                 "--bptt", "20", "--max-tokens", "20000", "--seed", "1"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["val_perplexity"] < summary["val_perplexity"]
    assert Vocab.load(os.path.join(continued, "vocab.txt")) == Vocab.load(
        os.path.join(run, "vocab.txt"))
    with open(os.path.join(continued, "config.json")) as f:
        config_json = json.load(f)
    assert config_json["embedding_dim"] == 16 and config_json["tokens_per_epoch"] == 10000
    with open(os.path.join(run, "config.json")) as f:
        first_config = json.load(f)
    assert (config_json["seed"], config_json["split_seed"], first_config["split_seed"]) == (1, 0, 0)
    assert ((config_json["train_tokens"], config_json["valid_tokens"])
            == (first_config["train_tokens"], first_config["valid_tokens"]))
    assert config_json["total_steps"] == pytest.approx(config_json["train_tokens"] / 16 / 20,
                                                       rel=0.1)
    with open(os.path.join(continued, "metrics.json")) as f:
        assert len(json.load(f)["history"]["val_loss"]) == 2
    assert main(["generate", run, "What is the", "--max-new-tokens", "5", "--seed", "0",
                 "--samples", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[-2:]
    assert all(line.startswith("What is the") for line in lines)
    # The contraction rule is a property of the prepared corpus and of the
    # model's vocabulary: mixing them is refused before any training.
    spacy_like = str(tmp_path / "data2")
    assert main(["prepare", "trec", "--data", data_dir, "--out", spacy_like, "--min-freq", "2",
                 "--split-contractions"]) == 0
    assert Vocab.load(os.path.join(spacy_like, "vocab.txt")).split_contractions
    assert main(["pretrain", spacy_like, "--init-from", run, "--out", str(tmp_path / "x")]) == 2
    assert "prepared with split_contractions=True" in capsys.readouterr().err
    assert main(["pretrain", prepared, "--split-contractions", "--out", str(tmp_path / "x")]) == 2
    assert "was prepared without it" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x")


def test_cli_errors(tmp_path, capsys):
    assert main(["prepare", "no-such-corpus", "--out", str(tmp_path / "x")]) == 2
    assert "A corpus must be" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x")
    assert main(["generate", str(tmp_path), "hi"]) == 2
    assert "No model.keras" in capsys.readouterr().err


def test_config_checks():
    with pytest.raises(ValueError, match="`schedule` must be"):
        LanguageModelConfig(schedule="cosine")
    with pytest.raises(ValueError, match="`epochs` must be an int >= 1. Received: 0"):
        LanguageModelConfig(epochs=0)
    with pytest.raises(ValueError, match="`tokens_per_epoch` must be None or an int >= 1. "
                       "Received: 0.5"):
        LanguageModelConfig(tokens_per_epoch=0.5)
    with pytest.raises(ValueError, match="`split_seed` must be None or an int. Received: '0'"):
        LanguageModelConfig(split_seed="0")


def test_cli_choices_match_the_library():
    """The parser lists names by hand (building it must not import TensorFlow)."""
    from ulmfit_tf.cli import build_parser
    from ulmfit_tf.distribute import STRATEGIES
    from ulmfit_tf.training.classifier import SCHEDULES

    commands = build_parser()._subparsers._group_actions[0].choices
    flags = {a.dest: a for a in commands["train-classifier"]._actions}
    assert tuple(flags["schedule"].choices) == SCHEDULES
    assert tuple(flags["strategy"].choices) == tuple(STRATEGIES)


def test_pretrain_recipes():
    """"paper" is the defaults; "general-en-base" is what the bundled backward
    twin's resolved config.json and vocabulary say it was trained with (the
    forward `general-en-base` left saved_models/ when its continuation
    became the default; the twin ran the same recipe right to left, its one
    pass cut into epochs of 1M tokens)."""
    from ulmfit_tf.data.lm_stream import split_pass
    from ulmfit_tf.presets import DEFAULT_BACKWARD_PRESET, PRESETS_DIR
    from ulmfit_tf.recipes import PRETRAIN_RECIPES, PRETRAIN_VOCAB

    assert LanguageModelConfig.recipe("paper") == LanguageModelConfig()
    with open(os.path.join(PRESETS_DIR, DEFAULT_BACKWARD_PRESET, "config.json")) as f:
        trained_with = json.load(f)
    assert trained_with["backwards"] is True
    base = LanguageModelConfig.recipe("general-en-base")
    epochs_per_pass, _ = split_pass(trained_with["train_tokens"], trained_with["batch_size"],
                                    trained_with["bptt"],
                                    tokens_per_epoch=trained_with["tokens_per_epoch"])
    assert trained_with["epochs"] / epochs_per_pass == base.epochs
    for field in set(PRETRAIN_RECIPES["general-en-base"]) - {"epochs"}:
        assert getattr(base, field) == trained_with[field], field
    assert trained_with["vocabulary_size"] == PRETRAIN_VOCAB["general-en-base"]["max_vocab"]
    assert set(PRETRAIN_VOCAB) == set(PRETRAIN_RECIPES)
    assert LanguageModelConfig.recipe("general-en-base", hidden_dim=8).hidden_dim == 8
    with pytest.raises(ValueError, match="`recipe` must be one of .*Received: 'wt103'"):
        LanguageModelConfig.recipe("wt103")


def test_cli_pretrain_takes_the_recipe_and_the_flags_over_it(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    words = np.random.default_rng(0).choice(["the", "a", "cat", "dog", "sat", "ran", "on",
                                             "mat", "."], size=6000)
    corpus.write_text("\n".join(" ".join(words[i:i + 60]) for i in range(0, 6000, 60)))
    run = tmp_path / "lm"
    assert main(["pretrain", str(corpus), "--out", str(run), "--preset", "general-en-base",
                 "--embedding-dim", "8", "--hidden-dim", "12", "--layers", "1",
                 "--batch-size", "4", "--bptt", "10", "--valid-fraction", "0.1"]) == 0
    with open(run / "config.json") as f:
        config = json.load(f)
    base = LanguageModelConfig.recipe("general-en-base")
    # The recipe's where no flag was given, the flags' where one was.
    assert (config["drop_mult"], config["max_lr"], config["num_layers"]) == (
        base.drop_mult, base.max_lr, 1)
    assert (config["embedding_dim"], config["hidden_dim"], config["valid_fraction"]) == (
        8, 12, 0.1)
    with pytest.raises(SystemExit) as error:
        main(["pretrain", str(corpus), "--out", str(tmp_path / "x"), "--recipe", "wt103"])
    assert error.value.code == 2
    assert "invalid choice: 'wt103'" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x")
