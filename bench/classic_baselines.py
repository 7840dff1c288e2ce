"""ULMFiT through the CLI's defaults against TF-IDF + logistic regression.

    python bench/classic_baselines.py --out runs/baselines [--tasks trec,sms,20news,imdb]
        [--seeds 0,1,2] [--arms tfidf,ulmfit,scratch] [--tag default]
        [--classifier-flags "--lr 2e-2"] [--report-only]

Each task is written once as TSV files (``OUT/<task>/train.tsv``,
``test.tsv``, ``lm.tsv``: the texts the language model is fine-tuned on),
the same for every arm. Then, per seed:

- ``tfidf``: TF-IDF word 1-2 grams + logistic regression, C chosen on the
  validation split that `train-classifier` holds out for that seed;
- ``ulmfit``: ``ulmfit-tf finetune-lm`` from the bundled LM (once per task,
  seed 0, CLI defaults), then ``ulmfit-tf train-classifier --lm`` with the
  CLI's defaults plus `--classifier-flags`, scored with ``ulmfit-tf
  evaluate`` on the test file (since session 16 the defaults blend the
  classifier with a bag of n-grams: `--classifier-flags
  --no-bag-of-ngrams` for the classifier alone; `bench/blend.py` scores
  both from one run);
- ``scratch``: ``train-classifier`` without a language model, the bundled
  LM's sizes, the CLI's defaults (early stopping on validation included)
  plus `--scratch-flags`.

Each command runs as a user would run it (a subprocess of the `ulmfit-tf`
command line) and its wall time is kept. Results go to
``OUT/results-<tag>.json`` (one entry per task, arm and seed, kept across
invocations, so arms and seeds can be added later); the summary prints
mean ± std of validation and test error and macro-F1 per task and arm.

Task definitions (the same for every arm):
- trec: TREC-6, 5,452 training questions, the 500 test questions.
- sms: SMS spam, the fixed 80/20 split of `load_sms`.
- trec1k (not run by default): TREC-6 with 1,000 of its training
  questions (a seeded draw), the same 500 test questions; the LM is
  fine-tuned on the 1,000. A short-text task as small as the long-text
  ones below, for checking settings that depend on the training set's
  size. ``dev.tsv``: 2,000 more of the training questions.
- 20news: 20 Newsgroups (headers included), 1,000 training posts drawn at
  random (seed 0) and 2,000 test posts drawn likewise, each cut to its
  first 200 whitespace-separated words, so that the CLI's defaults fit
  the issue's 15-minute budget on 2 cores (2,000 posts of 250 words, the
  definition until session 23, took 31 minutes). ``dev.tsv`` (since
  session 24): 2,000 more posts of the training archive, cut likewise.
- imdb: 1,000 labelled training reviews (500 per class, seed 0), 2,000
  random test reviews; the LM is fine-tuned on the 1,000 labelled texts
  and 1,000 random unlabelled reviews. Every review is cut to its first
  200 words (22 minutes with whole reviews, the definition until session
  23). ``dev.tsv``: 2,000 more reviews of the training archive, cut
  likewise.

``dev.tsv`` (20news, imdb, trec1k) is scored as ``dev_error`` for choosing
settings: the validation split of 100 texts cannot, and the test split
must not.

``task.json`` in each task's folder records the definition its files were
written with; a folder written under another definition is refused rather
than mixed into new results.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import time

import numpy as np

from ulmfit_tf.cli import DEFAULT_PRETRAINED as BUNDLED_LM

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "..", "..", "shared", "data")
TASKS = ("trec", "sms", "20news", "imdb")
SMALL_TREC = 1000
NEWS_POSTS, NEWS_TEST, NEWS_WORDS = 1000, 2000, 200
IMDB_LABELS, IMDB_UNSUP, IMDB_TEST, IMDB_WORDS = 1000, 1000, 2000, 200
DEV_TEXTS = 2000
FIRST_WORDS = {"20news": NEWS_WORDS, "imdb": IMDB_WORDS}
DEV_TASKS = ("20news", "imdb", "trec1k")
# Labelled texts drawn at random from the archive (IMDb's: balanced).
RANDOM_LABELS = {"20news": NEWS_POSTS, "trec1k": SMALL_TREC}
CORPUS = {"trec1k": "trec"}
DEFINITIONS = {
    "trec": {},
    "sms": {},
    "trec1k": {"train_questions": SMALL_TREC, "dev_questions": DEV_TEXTS},
    "20news": {"train_posts": NEWS_POSTS, "test_posts": NEWS_TEST, "dev_posts": DEV_TEXTS,
               "first_words": NEWS_WORDS},
    "imdb": {"labels": IMDB_LABELS, "unlabelled_for_lm": IMDB_UNSUP, "test_reviews": IMDB_TEST,
             "dev_reviews": DEV_TEXTS, "first_words": IMDB_WORDS},
}


def _write_tsv(path, texts, labels, classes):
    from ulmfit_tf.utils import atomic_write

    with atomic_write(path, "w") as f:  # utf-8; no newline translation on POSIX
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["text", "label"])
        for text, label in zip(texts, labels):
            writer.writerow([text, classes[label]])


def _first_words(text, count):
    return " ".join(text.split()[:count])


def _cut(texts, count):
    return [_first_words(text, count) for text in texts]


def _balanced(labels, count, rng):
    classes = np.unique(labels)
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))
                                   [:count // len(classes)] for c in classes]))


def _labelled_indices(task, labels, rng):
    """The training archive's rows that `task` labels (write_task's draw)."""
    if task == "imdb":
        return _balanced(labels, IMDB_LABELS, rng)
    return np.sort(rng.permutation(len(labels))[:RANDOM_LABELS[task]])


def write_dev(task, data, folder):
    """``dev.tsv`` (`DEV_TASKS`): DEV_TEXTS texts of the training archive
    (seeded), none of them a labelled text, cut like the task's others, for
    choosing settings. The validation split (100 texts) cannot tell
    recipes 5 points apart; the test split must not choose them."""
    from ulmfit_tf.corpus import read_texts

    path = os.path.join(folder, "dev.tsv")
    if os.path.isfile(path):
        return
    train = read_texts(CORPUS.get(task, task), "train", source=data)
    texts = _cut(train.texts, FIRST_WORDS[task]) if task in FIRST_WORDS else train.texts
    labelled = _labelled_indices(task, train.labels, np.random.default_rng(0))
    rest = np.setdiff1d(np.arange(len(train)), labelled)
    # TREC-6 repeats questions: a copy of a labelled one would not be held out.
    seen = {texts[i] for i in labelled}
    chosen = np.sort([i for i in np.random.default_rng(1).permutation(rest)
                      if texts[i] not in seen][:DEV_TEXTS])
    _write_tsv(path, [texts[i] for i in chosen], train.labels[chosen], list(train.classes))


def _check_definition(task, folder):
    """Records `task`'s definition in a new folder, and refuses one whose
    files were written under another: its fine-tuned LM and runs would be
    mixed into results for the new definition. Folders from before
    definitions were recorded hold the one of their time, which is {} for
    the tasks that never changed (TREC-6, SMS)."""
    from ulmfit_tf.training.run_dir import write_json

    path = os.path.join(folder, "task.json")
    if not os.listdir(folder):
        write_json(path, DEFINITIONS[task])
    recorded = {}
    if os.path.isfile(path):
        with open(path) as f:
            recorded = json.load(f)
    if recorded != DEFINITIONS[task]:
        raise SystemExit(f"{folder} holds {task} written under the definition {recorded}, "
                         f"not the current {DEFINITIONS[task]}; pass another --out")


def write_task(task, data, folder):
    """Writes the task's train/test/lm TSV files (once)."""
    from ulmfit_tf.corpus import read_texts

    os.makedirs(folder, exist_ok=True)
    _check_definition(task, folder)
    if task in DEV_TASKS:
        write_dev(task, data, folder)
    if os.path.isfile(os.path.join(folder, "lm.tsv")):
        return
    corpus = CORPUS.get(task, task)
    train, test = read_texts(corpus, "train", source=data), read_texts(corpus, "test", source=data)
    rng = np.random.default_rng(0)
    lm_texts = None
    if task in DEV_TASKS:  # the tasks that label a draw of the archive
        train = train.subset(_labelled_indices(task, train.labels, rng))
    if task == "20news":
        test = test.subset(np.sort(rng.permutation(len(test))[:NEWS_TEST]))
        train.texts = _cut(train.texts, NEWS_WORDS)
        test.texts = _cut(test.texts, NEWS_WORDS)
    elif task == "imdb":
        test = test.subset(np.sort(rng.permutation(len(test))[:IMDB_TEST]))
        unsup = read_texts("imdb-unsup", source=data)
        lm_texts = train.texts + [unsup.texts[i] for i in
                                  np.sort(rng.permutation(len(unsup))[:IMDB_UNSUP])]
        train.texts = _cut(train.texts, IMDB_WORDS)
        test.texts = _cut(test.texts, IMDB_WORDS)
        lm_texts = _cut(lm_texts, IMDB_WORDS)
    classes = list(train.classes)
    _write_tsv(os.path.join(folder, "train.tsv"), train.texts, train.labels, classes)
    _write_tsv(os.path.join(folder, "test.tsv"), test.texts, test.labels, classes)
    lm_texts = lm_texts or train.texts
    _write_tsv(os.path.join(folder, "lm.tsv"), lm_texts, [0] * len(lm_texts), classes)


def _cli(args, log_path):
    """Runs `ulmfit-tf ARGS`, its output to `log_path`; returns (last JSON
    line printed, wall seconds)."""
    start = time.perf_counter()
    last_json = None
    # Line by line as they come: the log shows how far a 40-minute run is.
    with open(log_path, "w") as log, subprocess.Popen(
            [sys.executable, "-m", "ulmfit_tf.cli", *args], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True) as process:
        for line in process.stdout:
            log.write(line)
            log.flush()
            if line.startswith("{"):
                last_json = line
    if process.returncode:
        raise RuntimeError(f"ulmfit-tf {' '.join(args)} failed; see {log_path}")
    return (json.loads(last_json) if last_json else None), time.perf_counter() - start


def _valid_split(folder, seed):
    """The texts and labels of train-classifier's split for `seed`."""
    from ulmfit_tf.data import load_csv
    from ulmfit_tf.training.classifier import split_labelled

    train = load_csv(os.path.join(folder, "train.tsv"))
    return train, split_labelled(train.texts, train.labels, 0.1, seed)


def run_tfidf(folder, seed):
    from ulmfit_tf.baselines import predict_probabilities, tfidf_logistic_regression
    from ulmfit_tf.data import load_csv
    from ulmfit_tf.evaluation import classification_report

    start = time.perf_counter()
    train, (tr_x, tr_y, va_x, va_y) = _valid_split(folder, seed)
    test = load_csv(os.path.join(folder, "test.tsv"), classes=train.classes)
    pipeline, info = tfidf_logistic_regression(tr_x, tr_y, va_x, va_y)
    report = classification_report(
        test.labels, predict_probabilities(pipeline, test.texts, len(train.classes)),
        train.classes)
    row = {"valid_error": info["valid_errors"][info["C"]], "test_error": report["error_rate"],
           "test_macro_f1": report["macro_f1"], "C": info["C"],
           "seconds": time.perf_counter() - start}
    if os.path.isfile(os.path.join(folder, "dev.tsv")):
        dev = load_csv(os.path.join(folder, "dev.tsv"), classes=train.classes)
        row["dev_error"] = classification_report(
            dev.labels, predict_probabilities(pipeline, dev.texts, len(train.classes)),
            train.classes)["error_rate"]
    return row


def run_classifier(folder, seed, run, flags, lm=None):
    args = ["train-classifier", os.path.join(folder, "train.tsv"), "--out", run,
            "--seed", str(seed), *flags]
    if lm:
        args += ["--lm", lm]
    result, seconds = _cli(args, run + ".log")
    with open(os.path.join(run, "metrics.json")) as f:
        epochs = len(json.load(f)["history"]["loss"])
    test, eval_seconds = _cli(["evaluate", os.path.join(folder, "test.tsv"), run],
                              run + ".evaluate.log")
    row = {"valid_error": result["valid_error"], "test_error": test["error_rate"],
           "test_macro_f1": test["macro_f1"], "epochs": epochs,
           "seconds": seconds + eval_seconds}
    if result.get("blend_valid_error") is not None:
        # valid_error stays the classifier's; the blend's is optimistic (its
        # weights were fitted on that split); test and dev are the blend's.
        row["blend_valid_error"] = result["blend_valid_error"]
        row["bag_weight"] = result["bag_weight"]
    if os.path.isfile(os.path.join(folder, "dev.tsv")):
        dev, _ = _cli(["evaluate", os.path.join(folder, "dev.tsv"), run], run + ".dev.log")
        row["dev_error"] = dev["error_rate"]
    return row


def finetune_lm(folder, flags, name="lm", pretrained=BUNDLED_LM):
    """The task's fine-tuned LM, run once per `name` (a set of `flags` and a
    `pretrained` LM)."""
    run = os.path.join(folder, name)
    if not os.path.isfile(os.path.join(run, "model.keras")):
        _, seconds = _cli(["finetune-lm", os.path.join(folder, "lm.tsv"), "--pretrained",
                           pretrained, "--out", run, *flags], run + ".log")
        with open(run + "_seconds.json", "w") as f:
            json.dump({"seconds": seconds}, f)
    with open(run + "_seconds.json") as f:
        return run, json.load(f)["seconds"]


def _mean_seconds(rows):
    """Rows recovered from logs have no wall time."""
    seconds = [r["seconds"] for r in rows if "seconds" in r]
    return np.mean(seconds) if seconds else float("nan")


def summarize(results):
    print(f"{'task':8} {'arm':8} {'valid error':>16} {'test error':>16} {'macro-F1':>14} "
          f"{'epochs':>7} {'wall s':>8}  seeds")
    for task, arms in results.items():
        for arm, seeds in arms.items():
            rows = list(seeds.values())
            stat = lambda k: (np.mean([r[k] for r in rows]), np.std([r[k] for r in rows]))
            v, t, f = stat("valid_error"), stat("test_error"), stat("test_macro_f1")
            epochs = np.mean([r.get("epochs", 0) for r in rows])
            dev = [r["dev_error"] for r in rows if "dev_error" in r]
            print(f"{task:8} {arm:8} {v[0]:9.2%} ± {v[1]:4.1%} {t[0]:9.2%} ± {t[1]:4.1%} "
                  f"{f[0]:7.3f} ± {f[1]:.3f} {epochs:7.1f} {_mean_seconds(rows):8.0f}"
                  f"  {','.join(seeds)}" + (f"  dev error {np.mean(dev):.2%}" if dev else ""))


def _add_row(results_path, task, arm, seed, row):
    """Adds one result to the file under a lock, re-reading it first: two
    invocations with the same --tag (other tasks, other seeds) each kept
    the file as they had read it at their start, and the last to write
    dropped the other's rows."""
    import fcntl

    from ulmfit_tf.training.run_dir import write_json

    with open(results_path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = {}
        if os.path.isfile(results_path):
            with open(results_path) as f:
                results = json.load(f)
        results.setdefault(task, {}).setdefault(arm, {})[str(seed)] = row
        write_json(results_path, results)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--arms", default="tfidf,ulmfit,scratch")
    parser.add_argument("--tag", default="default", help="names this set of classifier flags")
    parser.add_argument("--classifier-flags", default="", help="added to train-classifier")
    parser.add_argument("--scratch-flags",
                        default="--embedding-dim 128 --hidden-dim 384 --epochs 20",
                        help="added to train-classifier without --lm")
    parser.add_argument("--lm-flags", default="", help="added to finetune-lm")
    parser.add_argument("--pretrained", default=BUNDLED_LM,
                        help="the stage-1 LM to fine-tune; name each with --lm-name")
    parser.add_argument("--lm-name", default="lm",
                        help="the fine-tuned LM's folder in the task's; name each --lm-flags")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    unknown = set(args.tasks.split(",")) - set(DEFINITIONS)
    if unknown:
        parser.error(f"--tasks: {sorted(unknown)} not among {sorted(DEFINITIONS)}")
    results_path = os.path.join(args.out, f"results-{args.tag}.json")
    results = {}
    if os.path.isfile(results_path):
        with open(results_path) as f:
            results = json.load(f)
    if not args.report_only:
        for task in args.tasks.split(","):
            folder = os.path.join(args.out, task)
            write_task(task, args.data, folder)
            for seed in [int(s) for s in args.seeds.split(",")]:
                for arm in args.arms.split(","):
                    if str(seed) in results.get(task, {}).get(arm, {}):
                        continue
                    if arm == "tfidf":
                        row = run_tfidf(folder, seed)
                    elif arm == "ulmfit":
                        lm, lm_seconds = finetune_lm(folder, args.lm_flags.split(), args.lm_name,
                                                     args.pretrained)
                        row = run_classifier(folder, seed,
                                             os.path.join(folder, f"{args.tag}-ulmfit-s{seed}"),
                                             args.classifier_flags.split(), lm=lm)
                        row["lm_seconds"] = lm_seconds
                        row["seconds"] += lm_seconds  # a user's budget: both stages
                    else:
                        row = run_classifier(folder, seed,
                                             os.path.join(folder, f"{args.tag}-scratch-s{seed}"),
                                             args.scratch_flags.split())
                    results = _add_row(results_path, task, arm, seed, row)
                    print(task, arm, seed, json.dumps(row), flush=True)
    summarize(results)


if __name__ == "__main__":
    main()
