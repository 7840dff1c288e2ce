"""The TF-IDF + logistic regression baseline (module, `ulmfit-tf baseline`, the bench)."""

import json

import numpy as np
import pytest

from ulmfit_tf import cli
from ulmfit_tf.baselines import predict_probabilities, tfidf_logistic_regression


def _toy(n, rng):
    words = {0: ["good", "great", "fine"], 1: ["bad", "awful", "poor"]}
    labels = rng.integers(0, 2, n)
    texts = [" ".join(rng.choice(words[l], 3).tolist() + ["movie", "the"]) for l in labels]
    return texts, labels


def test_learns_a_separable_task_and_chooses_c_on_validation():
    rng = np.random.default_rng(0)
    (x, y), (vx, vy), (tx, ty) = _toy(200, rng), _toy(50, rng), _toy(50, rng)
    pipeline, info = tfidf_logistic_regression(x, y, vx, vy, cs=(1e-4, 1.0, 10.0))
    assert set(info["valid_errors"]) == {1e-4, 1.0, 10.0}
    assert info["valid_errors"][info["C"]] == min(info["valid_errors"].values())
    assert info["C"] == 1.0  # ties go to the smaller C
    probabilities = predict_probabilities(pipeline, tx, 2)
    assert probabilities.shape == (50, 2)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-6)
    assert np.mean(probabilities.argmax(1) == ty) == 1.0


def test_class_missing_from_training_gets_zero_probability():
    x, y = ["aa bb", "cc dd", "aa aa", "cc cc"], [0, 2, 0, 2]
    pipeline, _ = tfidf_logistic_regression(x, y, x, y, cs=(1.0,))
    probabilities = predict_probabilities(pipeline, ["aa"], 3)
    assert probabilities[0, 1] == 0 and probabilities[0].argmax() == 0


def test_argument_errors():
    with pytest.raises(ValueError, match="`train_texts` and `train_labels` must have the same "
                                         "length. Received: 2 and 1"):
        tfidf_logistic_regression(["a", "b"], [0], ["a"], [0])
    with pytest.raises(ValueError, match="`valid_texts` is empty"):
        tfidf_logistic_regression(["a", "b"], [0, 1], [], [])
    with pytest.raises(ValueError, match="`cs` must name at least one C"):
        tfidf_logistic_regression(["a", "b"], [0, 1], ["a"], [0], cs=())


@pytest.mark.slow
def test_cli_baseline_on_trec(data_dir, capsys):
    """TREC-6's TF-IDF baseline through the CLI: 11-12% test error here."""
    assert cli.main(["baseline", "trec", "--data", data_dir, "--test-split"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.05 < result["valid_error"] < 0.25
    assert 0.08 < result["test_error"] < 0.16 and 0.8 < result["test_macro_f1"] < 0.95
    assert cli.main(["baseline", "trec", "--data", data_dir, "--valid-fraction", "0"]) == 2
    assert "`--valid-fraction` must be in (0, 1)" in capsys.readouterr().err


def _bench_module(name="classic_baselines"):
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "bench", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_bench_keeps_rows_of_invocations_that_ran_side_by_side(tmp_path):
    """Two `bench/classic_baselines.py` runs with one --tag (other tasks)
    each add their rows to the results file; neither drops the other's."""
    bench = _bench_module()
    results = str(tmp_path / "results-tag.json")
    bench._add_row(results, "trec", "ulmfit", 0, {"valid_error": 0.1})
    bench._add_row(results, "imdb", "ulmfit", 0, {"valid_error": 0.3})
    bench._add_row(results, "trec", "ulmfit", 1, {"valid_error": 0.2})
    with open(results) as f:
        kept = json.load(f)
    assert kept == {"trec": {"ulmfit": {"0": {"valid_error": 0.1}, "1": {"valid_error": 0.2}}},
                    "imdb": {"ulmfit": {"0": {"valid_error": 0.3}}}}


@pytest.mark.slow
@pytest.mark.parametrize("task", ["imdb", "20news", "trec1k"])
def test_bench_dev_set_is_outside_the_labelled_texts(tmp_path, data_dir, task):
    """The bench's extra validation texts come from the training archive,
    none of them among the 1,000 labelled ones, cut like the task's other
    texts, the same each time."""
    from ulmfit_tf.corpus import read_texts
    from ulmfit_tf.data import load_csv

    bench = _bench_module()
    archive = read_texts(bench.CORPUS.get(task, task), "train", source=data_dir)
    bench.write_dev(task, data_dir, str(tmp_path))
    dev = load_csv(str(tmp_path / "dev.tsv"))
    labelled = bench._labelled_indices(task, archive.labels, np.random.default_rng(0))
    assert len(labelled) == 1000
    assert len(dev.texts) == bench.DEV_TEXTS
    words = bench.FIRST_WORDS.get(task)
    if words:
        assert max(len(text.split()) for text in dev.texts) == words
    cut = bench._cut(archive.texts, words) if words else archive.texts
    assert not set(dev.texts) & {cut[i] for i in labelled}
    assert set(dev.texts) <= set(cut)
    assert len(set(dev.labels)) == len(archive.classes)
    first = (tmp_path / "dev.tsv").read_bytes()
    (tmp_path / "dev.tsv").unlink()
    bench.write_dev(task, data_dir, str(tmp_path))
    assert (tmp_path / "dev.tsv").read_bytes() == first


def test_bench_small_trec_is_a_seeded_draw_of_the_training_questions(tmp_path, data_dir, trec):
    """trec1k: 1,000 of TREC-6's training questions, the same each time,
    the LM fine-tuned on them, the full test split."""
    from ulmfit_tf.data import load_csv

    bench = _bench_module()
    bench.write_task("trec1k", data_dir, str(tmp_path / "a"))
    train, test = (load_csv(str(tmp_path / "a" / f"{n}.tsv")) for n in ("train", "test"))
    assert len(train.texts) == bench.SMALL_TREC and set(train.texts) <= set(trec[0].texts)
    assert load_csv(str(tmp_path / "a" / "lm.tsv")).texts == train.texts
    assert test.texts == list(trec[1].texts) and len(set(train.labels)) == 6
    bench.write_task("trec1k", data_dir, str(tmp_path / "b"))
    assert (tmp_path / "a" / "train.tsv").read_bytes() == (tmp_path / "b" / "train.tsv").read_bytes()


def test_bench_refuses_a_task_folder_written_under_another_definition(tmp_path):
    """A task folder records the definition it was written with; the bench
    refuses to add runs to one written under another (or before
    definitions were recorded, for a task whose definition changed)."""
    bench = _bench_module()
    folder = tmp_path / "20news"
    folder.mkdir()
    bench._check_definition("20news", str(folder))
    assert json.loads((folder / "task.json").read_text()) == bench.DEFINITIONS["20news"]
    bench._check_definition("20news", str(folder))  # its own definition: accepted
    (folder / "task.json").write_text(json.dumps({"train_posts": 2000, "test_posts": 2000,
                                                  "first_words": 250}))
    with pytest.raises(SystemExit, match="'train_posts': 2000.*pass another --out"):
        bench._check_definition("20news", str(folder))
    (folder / "task.json").unlink()
    (folder / "lm.tsv").write_text("text\tlabel\n")
    with pytest.raises(SystemExit, match=r"definition \{\}"):
        bench._check_definition("20news", str(folder))
    trec = tmp_path / "trec"  # never redefined: a folder from before is its definition
    trec.mkdir()
    (trec / "lm.tsv").write_text("text\tlabel\n")
    bench._check_definition("trec", str(trec))


def test_stopping_rules_read_the_epoch_each_rule_ends_with():
    """`bench/stopping_rules.py` on the IMDb run of docs/RESULTS.md 4.4: the
    lowest validation loss stops at epoch 7 and keeps 4; the accuracy rule
    runs on past epoch 7 (a better accuracy) and ends on epoch 10, which ties
    epoch 7's accuracy with a lower loss."""
    stopping_epoch = _bench_module("stopping_rules").stopping_epoch
    history = {
        "val_loss": [.694, .656, .643, .565, 1.169, 1.167, .643, 1.005, 1.044, .622, .714, .683],
        "val_error": [.46, .34, .40, .30, .40, .42, .25, .26, .32, .25, .30, .28],
    }
    assert stopping_epoch(history, "val_loss", 3) == 4
    assert stopping_epoch(history, "val_loss", None) == 4
    assert stopping_epoch(history, "val_error", 3, "val_loss") == 10
    assert stopping_epoch(history, "val_error", 3) == 7  # without the tie-breaker
    assert stopping_epoch(history, "val_error", 1, "val_loss") == 2  # epoch 3 is worse


# 1 token an epoch: the cap at one window an epoch binds.
@pytest.mark.parametrize("tokens_per_epoch", [None, 1, 3000, 7000])
def test_lm_curve_counts_the_tokens_of_each_epoch_as_the_stream_cuts_them(tmp_path,
                                                                          tokens_per_epoch):
    """`bench/lm_curve.py` adds up runs that continue each other: each
    epoch is the share of a pass that LMStream gives it."""
    from ulmfit_tf.data import LMStream

    docs = [np.arange(1, 1 + n) for n in np.random.default_rng(0).integers(50, 400, 60)]
    stream = LMStream(docs, batch_size=4, bptt=10, tokens_per_epoch=tokens_per_epoch)
    run = tmp_path / "run"
    run.mkdir()
    epochs = 2 * stream.epochs_per_pass
    (run / "config.json").write_text(json.dumps(
        {"train_tokens": stream.num_tokens, "tokens_per_epoch": tokens_per_epoch,
         "epochs": epochs, "batch_size": 4, "bptt": 10}))
    (run / "metrics.json").write_text(json.dumps(
        {"history": {"val_perplexity": [100.0 - e for e in range(epochs)]}}))
    curve = _bench_module("lm_curve").run_curve(str(run))
    assert [p for _, p in curve] == [100.0 - e for e in range(epochs)]
    tokens = [t for t, _ in curve]
    assert tokens[stream.epochs_per_pass - 1] == pytest.approx(stream.num_tokens)
    assert tokens[-1] == pytest.approx(2 * stream.num_tokens)
    np.testing.assert_allclose(np.diff([0] + tokens), stream.num_tokens / stream.epochs_per_pass)
    if tokens_per_epoch:
        assert stream.epochs_per_pass > 1
    if tokens_per_epoch == 1:
        assert stream.epochs_per_pass < stream.num_tokens
