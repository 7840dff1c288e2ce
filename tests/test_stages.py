"""ULMFiT's three stages end to end, transfer between vocabularies, resume, metrics."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from ulmfit_tf.cli import main, random_subset
from ulmfit_tf.evaluation import classification_report
from ulmfit_tf.models import AWDLSTM, AWDLSTMLanguageModel
from ulmfit_tf.text import Vocab
from ulmfit_tf.training.transfer import remap_language_model

TINY = ["--embedding-dim", "16", "--hidden-dim", "24", "--layers", "2"]


def test_remap_copies_known_rows_and_gives_new_ones_the_mean():
    old_vocab = Vocab.build([["a", "b", "c"]], min_freq=1)
    new_vocab = Vocab.build([["c", "a", "zebra", "yak"]], min_freq=1)
    lm = AWDLSTMLanguageModel(AWDLSTM(len(old_vocab), embedding_dim=4, hidden_dim=6,
                                      num_layers=2))
    lm(np.zeros((1, 2), np.int32))
    lm.embedding.output_bias.assign(np.arange(len(old_vocab), dtype=np.float32))
    new, n_new = remap_language_model(lm, old_vocab, new_vocab)
    assert n_new == 2
    old_e, new_e = lm.embedding.embeddings.numpy(), new.embedding.embeddings.numpy()
    for token in ("a", "c", "xxbos"):
        np.testing.assert_array_equal(new_e[new_vocab.stoi[token]], old_e[old_vocab.stoi[token]])
    np.testing.assert_allclose(new_e[new_vocab.stoi["zebra"]], old_e.mean(0), rtol=1e-6)
    assert new.embedding.output_bias.numpy()[new_vocab.stoi["yak"]] == \
        pytest.approx(np.arange(len(old_vocab)).mean())
    for layer in ("rnn_0", "rnn_1"):
        for a, b in zip(lm.encoder.get_layer(layer).weights,
                        new.encoder.get_layer(layer).weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    bigger = Vocab.build([[str(i) for i in range(10)]], min_freq=1)
    with pytest.raises(ValueError, match="`old_vocab` has 24 tokens, the model 16"):
        remap_language_model(lm, bigger, new_vocab)


def test_random_subset_is_a_seeded_ordered_choice():
    texts = [f"review {i}" for i in range(1000)]
    subset = random_subset(texts, 100, seed=3)
    assert len(set(subset)) == 100 and set(subset) <= set(texts)
    assert subset == sorted(subset, key=texts.index)  # original order kept
    assert subset == random_subset(texts, 100, seed=3)
    assert subset != random_subset(texts, 100, seed=4)
    assert random_subset(texts, 5000, seed=0) == texts
    # Spread over the corpus, not its head: IMDb's files are grouped by rating.
    assert np.mean([texts.index(t) for t in subset]) == pytest.approx(500, abs=100)
    with pytest.raises(ValueError, match=r"`--max-docs` must be an int >= 1. Received: 0"):
        random_subset(texts, 0, seed=0)


def test_classification_report():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    report = classification_report([0, 1, 1, 1], probabilities, ["neg", "pos"])
    assert report["accuracy"] == 0.75 and report["confusion_matrix"] == [[1, 0], [1, 2]]
    assert report["per_class"]["pos"] == {"precision": 1.0, "recall": pytest.approx(2 / 3),
                                         "f1": pytest.approx(0.8), "support": 3}
    assert report["per_class"]["neg"]["precision"] == 0.5
    with pytest.raises(ValueError, match=r"`probabilities` must be \[N, 3\]"):
        classification_report([0], probabilities[:1], ["a", "b", "c"])


@pytest.fixture(scope="module")
def three_stages(data_dir, tmp_path_factory):
    """Stage 1 on 150k tokens of general English, stage 2 on TREC, stage 3 on TREC."""
    root = tmp_path_factory.mktemp("stages")
    runs = {name: str(root / name) for name in ("pretrained", "finetuned", "classifier")}
    assert main(["pretrain", os.path.join(data_dir, "general-en", "news-2017"),
                 "--out", runs["pretrained"], "--epochs", "1", "--embedding-dim", "64",
                 "--hidden-dim", "128", "--layers", "2", "--batch-size", "32", "--bptt", "40",
                 "--lr", "1e-2", "--drop-mult", "0.3", "--max-tokens", "150000",
                 "--max-vocab", "8000"]) == 0
    assert main(["finetune-lm", "trec", "--pretrained", runs["pretrained"], "--data", data_dir,
                 "--out", runs["finetuned"], "--epochs", "2", "--lr", "1e-2",
                 "--batch-size", "32", "--bptt", "40"]) == 0
    assert main(["train-classifier", "trec", "--lm", runs["finetuned"], "--data", data_dir,
                 "--out", runs["classifier"], "--epochs", "4", "--test-split"]) == 0
    return runs


@pytest.mark.slow
def test_three_stages_on_trec_beat_the_majority_class(three_stages, trec):
    with open(os.path.join(three_stages["classifier"], "test_metrics.json")) as f:
        report = json.load(f)
    majority = np.bincount(trec[1].labels).max() / len(trec[1])
    assert report["count"] == 500
    assert report["accuracy"] > majority + 0.25, (report["accuracy"], majority)
    assert sorted(os.listdir(three_stages["classifier"])) == [
        "bag_of_ngrams.keras", "blend.json", "classes.json", "config.json",
        "confusion_test.png", "confusion_valid.png", "history.png", "metrics.json",
        "model.keras", "test_metrics.json", "vocab.txt"]
    with open(os.path.join(three_stages["finetuned"], "config.json")) as f:
        config = json.load(f)
    assert config["discriminative_factor"] == 2.6 and config["schedule"] == "stlr"
    with open(os.path.join(three_stages["classifier"], "config.json")) as f:
        config = json.load(f)
    assert config["schedule"] == "stlr_stages"
    # batch_size "auto": 4,907 training questions are not a small set.
    assert config["batch_size"] == 64 and config["train_docs"] == 4907
    assert config["total_steps"] == 4 * 77
    classifier = keras.saving.load_model(os.path.join(three_stages["classifier"], "model.keras"))
    schedule = classifier.optimizer.get_config()["learning_rate"]
    assert schedule["class_name"] == "StagedSlantedTriangular"
    stages = schedule["config"]["stage_steps"]  # 4 epochs, one more group each
    assert len(stages) == 4 and len(set(stages)) == 1


@pytest.mark.slow
def test_evaluate_predict_and_ensemble(three_stages, data_dir, capsys, tmp_path):
    run = three_stages["classifier"]
    assert main(["evaluate", "trec", run, "--data", data_dir, "--out", str(tmp_path)]) == 0
    single = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with open(os.path.join(run, "test_metrics.json")) as f:
        assert single["accuracy"] == pytest.approx(json.load(f)["accuracy"])
    # The mean of identical members is that member.
    assert main(["evaluate", "trec", run, run, "--data", data_dir]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == single
    assert main(["predict", run, "Who was the first president ?",
                 "How far is the moon from the earth ?"]) == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.strip().splitlines()[-2:]]
    assert all(abs(sum(l["probabilities"].values()) - 1) < 1e-3 for l in lines)
    # bfloat16 matmuls: the same classifier within rounding.
    assert main(["evaluate", "trec", run, "--data", data_dir,
                 "--matmul-precision", "bfloat16"]) == 0
    reduced = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert abs(reduced["accuracy"] - single["accuracy"]) <= 0.01


@pytest.mark.slow
def test_evaluate_a_sample_without_a_rare_class(three_stages, trec, tmp_path, capsys):
    import csv

    test = trec[1]
    rows = [(t, test.classes[l]) for t, l in zip(test.texts, test.labels)
            if test.classes[l] != "ABBR"]
    assert len(rows) < len(test.texts)
    path = tmp_path / "no_abbr.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    run = three_stages["classifier"]
    assert main(["evaluate", str(path), run, "--out", str(tmp_path / "eval")]) == 0
    with open(tmp_path / "eval" / "metrics.json") as f:
        report = json.load(f)
    assert report["classes"] == list(test.classes) and report["count"] == len(rows)
    assert report["per_class"]["ABBR"]["support"] == 0
    with open(path, "a", newline="") as f:
        csv.writer(f).writerow(("What is a quark ?", "PHYSICS"))
    assert main(["evaluate", str(path), run]) == 2
    assert "classes that the run" in capsys.readouterr().err


@pytest.mark.slow
def test_lr_find(three_stages, data_dir, tmp_path, capsys):
    assert main(["lr-find", "trec", "--lm", three_stages["finetuned"], "--data", data_dir,
                 "--out", str(tmp_path), "--steps", "40"]) == 0
    suggestion = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["suggested_lr"]
    assert 1e-7 <= suggestion <= 10
    assert os.path.isfile(tmp_path / "lr_find.png")


def _train_cli(out, data_dir, env=None):
    # With early stopping and the best epoch kept, whose state must survive too.
    command = [sys.executable, "-m", "ulmfit_tf.cli", "train-classifier", "trec",
               "--data", data_dir, "--out", out, "--epochs", "3", "--batch-size", "128",
               "--max-vocab", "3000", "--patience", "2", "--restore-best", *TINY]
    return subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})})


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(data_dir, tmp_path):
    """A process killed after epoch 1, run again with the same command, finishes
    with the same weights as a run that was never interrupted."""
    interrupted, clean = str(tmp_path / "interrupted"), str(tmp_path / "clean")
    killed = _train_cli(interrupted, data_dir, {"ULMFIT_TF_STOP_AFTER_EPOCH": "1"})
    assert killed.returncode == 17, killed.stderr[-2000:]
    assert not os.path.exists(os.path.join(interrupted, "model.keras"))
    assert os.path.isdir(os.path.join(interrupted, "backup"))
    resumed = _train_cli(interrupted, data_dir)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    uninterrupted = _train_cli(clean, data_dir)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    assert not os.path.exists(os.path.join(interrupted, "backup"))
    # From scratch the rate comes from a range test; the resumed run reads
    # the one it chose before being killed.
    rates = []
    for run in (interrupted, clean):
        with open(os.path.join(run, "lr_find.json")) as f, \
                open(os.path.join(run, "config.json")) as g:
            rates.append((json.load(f)["suggestion"], json.load(g)["max_lr"]))
    assert rates[0] == rates[1] and rates[0][0] == rates[0][1]

    import ulmfit_tf  # noqa: F401

    a = keras.saving.load_model(os.path.join(interrupted, "model.keras"), compile=False)
    b = keras.saving.load_model(os.path.join(clean, "model.keras"), compile=False)
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_allclose(va.numpy(), vb.numpy(), atol=1e-6, err_msg=va.path)
    with open(os.path.join(interrupted, "metrics.json")) as f, \
            open(os.path.join(clean, "metrics.json")) as g:
        interrupted_metrics, clean_metrics = json.load(f), json.load(g)
    assert interrupted_metrics["valid"]["accuracy"] == clean_metrics["valid"]["accuracy"]
    assert interrupted_metrics["best_epoch"] == clean_metrics["best_epoch"] in (1, 2, 3)


@pytest.mark.slow
def test_demo_runs_both_arms_and_both_directions(data_dir, tmp_path, capsys):
    """`ulmfit-tf demo` at toy size (it pretrains tiny LMs when none are bundled)."""
    out = str(tmp_path / "demo")
    assert main(["demo", "--out", out, "--data", data_dir, "--pretrained",
                 str(tmp_path / "none"), "--pretrained-backward", str(tmp_path / "none"),
                 "--lm-epochs", "2", "--epochs", "1"]) == 0
    with open(os.path.join(out, "demo.json")) as f:
        errors = json.load(f)
    assert set(errors) == {"ulmfit", "ulmfit_backward", "ulmfit_ensemble", "from_scratch"}
    assert all(0 <= e < 1 for e in errors.values())
    printed = capsys.readouterr().out
    assert "TREC-6 test error: ULMFiT forward" in printed and "both averaged" in printed
    with open(os.path.join(out, "finetuned-lm-backward", "config.json")) as f:
        assert json.load(f)["backwards"] is True
    # The demo's average is what `evaluate` gives for the two runs.
    assert main(["evaluate", "trec", os.path.join(out, "ulmfit"),
                 os.path.join(out, "ulmfit_backward"), "--data", data_dir]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["error_rate"] == pytest.approx(errors["ulmfit_ensemble"], abs=1e-9)


@pytest.mark.slow
def test_demo_forward_only(data_dir, tmp_path, capsys):
    out = str(tmp_path / "demo")
    assert main(["demo", "--out", out, "--data", data_dir, "--pretrained",
                 str(tmp_path / "none"), "--no-backward", "--lm-epochs", "1",
                 "--epochs", "1"]) == 0
    with open(os.path.join(out, "demo.json")) as f:
        assert set(json.load(f)) == {"ulmfit", "from_scratch"}
    assert not os.path.exists(os.path.join(out, "finetuned-lm-backward"))
    assert "TREC-6 test error: ULMFiT " in capsys.readouterr().out


def test_backwards_classifier_reads_reversed_texts(monkeypatch):
    import ulmfit_tf.training.classifier as classifier

    seen = []

    def spy(ids):  # stands for the model's traced forward pass
        seen.append(ids.numpy())
        return keras.ops.zeros((ids.shape[0], 2))

    monkeypatch.setattr(classifier, "_inference_function", lambda model, precision: spy)
    docs = [np.array([2, 10, 11, 12]), np.array([2, 13])]
    classifier.predict_probabilities(object(), docs, backwards=True)
    rows = {tuple(r[r != 1]) for batch in seen for r in batch}
    assert rows == {(12, 11, 10, 2), (13, 2)}
