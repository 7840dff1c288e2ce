"""The default classifier's blend with a bag of n-grams, on finished runs.

    python bench/blend.py --out runs/baselines [--tasks trec,sms,imdb,20news] [--tag v2]
        [--arm ulmfit|scratch] [--backward-tag bwd]

For each ULMFiT (or from-scratch) run that ``bench/classic_baselines.py``
left (``OUT/<task>/<tag>-<arm>-s<seed>``), does what `train_classifier` now
does after training: fits the TF-IDF bag of n-grams on the run's training
split and the blend's weights on its validation split
(`ulmfit_tf.models.bag_of_ngrams`). Training the classifier does not
depend on the blend, so this is the new default's model for that seed.
Prints validation, test and (IMDb) dev error of the classifier alone, the
bag of n-grams alone and the blend, beside scikit-learn's TF-IDF + logistic
regression of the bench (C chosen on validation error).
"""

import argparse
import glob
import json
import os
import re
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from classic_baselines import _add_row, _valid_split, run_tfidf  # noqa: E402


class _CachedProbabilities:
    """A run's classifier probabilities for named text sets, computed once
    and kept in the run (``classifier_probabilities.npz``): they are the
    same for every bag."""

    def __init__(self, run):
        from ulmfit_tf.text import Vocab

        self.run = run
        self.vocab = Vocab.load(os.path.join(run, "vocab.txt"))
        with open(os.path.join(run, "config.json")) as f:
            self.backwards = bool(json.load(f).get("backwards", False))
        self._classifier = None
        self.path = os.path.join(run, "classifier_probabilities.npz")
        self.cache = dict(np.load(self.path)) if os.path.isfile(self.path) else {}

    @property
    def classifier(self):
        from ulmfit_tf.training.run_dir import load_model_file

        if self._classifier is None:
            self._classifier = load_model_file(os.path.join(self.run, "model.keras"))
        return self._classifier

    def __call__(self, name, texts):
        from ulmfit_tf.training.classifier import predict_probabilities

        if name not in self.cache:
            self.cache[name] = predict_probabilities(
                self.classifier, self.vocab.encode_texts(texts), backwards=self.backwards)
            np.savez(self.path, **self.cache)
        return self.cache[name]


def blend_row(folder, run, seed, weightings=("tfidf",), backward_run=None):
    """The bag, the blend and their errors for one run; with `backward_run`
    (a backward classifier of the same seed), the blend of both directions'
    averaged probabilities (the paper's bidirectional ULMFiT) with the bag."""
    from ulmfit_tf.data import load_csv
    from ulmfit_tf.evaluation import classification_report
    from ulmfit_tf.models.bag_of_ngrams import (bag_logits, blend_probabilities,
                                                fit_bag_of_ngrams, fit_blend, word_ids)

    train, (tr_x, tr_y, va_x, va_y) = _valid_split(folder, seed)
    forward = _CachedProbabilities(run)
    backward = backward_run and _CachedProbabilities(backward_run)
    vocab = forward.vocab
    tr_ids, va_ids = vocab.encode_texts(tr_x), vocab.encode_texts(va_x)
    start = time.perf_counter()
    bag, info = fit_bag_of_ngrams(tr_ids, tr_y, va_ids, va_y, word_ids(vocab),
                                  len(train.classes), weightings=weightings)
    fit_seconds = time.perf_counter() - start

    def probabilities(name, texts):
        p = forward(name, texts)
        return p if backward is None else (p + backward(name, texts)) / 2

    a, b, _ = fit_blend(probabilities("valid", va_x), bag_logits(bag, va_ids), va_y)
    row = {"classifier_weight": a, "bag_weight": b, "bag_C": info["C"],
           "bag_weighting": info["weighting"],
           "bag_valid_loss": info["valid_losses"][info["C"]],
           "bag_ngrams": bag.num_ngrams, "bag_fit_seconds": fit_seconds}
    sets = {"valid": (va_x, np.asarray(va_y))}
    for name in ("test", "dev"):
        path = os.path.join(folder, f"{name}.tsv")
        if os.path.isfile(path):
            data = load_csv(path, classes=train.classes)
            sets[name] = (data.texts, np.asarray(data.labels))
    for name, (texts, labels) in sets.items():
        p = probabilities(name, texts)
        q = bag_logits(bag, vocab.encode_texts(texts))
        if backward is not None:
            for direction, source in (("forward", forward), ("backward", backward)):
                row[f"{direction}_{name}_error"] = float(
                    np.mean(source(name, texts).argmax(-1) != labels))
        blend_p = blend_probabilities(p, q, a, b).numpy()  # the LSTMs once, not twice
        row[f"classifier_{name}_error"] = float(np.mean(p.argmax(-1) != labels))
        row[f"bag_{name}_error"] = float(np.mean(q.argmax(-1) != labels))
        report = classification_report(labels, blend_p, list(train.classes))
        row[f"{name}_error"] = report["error_rate"]
        if name == "test":
            row["test_macro_f1"] = report["macro_f1"]
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--tasks", default="trec,sms,imdb,20news")
    parser.add_argument("--tag", default="v2")
    parser.add_argument("--seeds", default=None, help="only these seeds' runs (default: all)")
    parser.add_argument("--arm", choices=("ulmfit", "scratch"), default="ulmfit",
                        help="whose classifiers to blend (scratch: rows named scratch-blend)")
    parser.add_argument("--backward-tag", default=None,
                        help="average each ULMFiT run with the backward classifier of this "
                             "tag and seed before the blend (rows named blend-bidirectional)")
    parser.add_argument("--weightings", default="tfidf",
                        help="the bag's weightings to choose from on validation (tfidf, nb, "
                             "tfidf,nb); rows named blend-<weightings> unless tfidf")
    args = parser.parse_args()
    seeds = None if args.seeds is None else {int(s) for s in args.seeds.split(",")}
    weightings = tuple(args.weightings.split(","))
    results_path = os.path.join(args.out, f"results-{args.tag}-blend.json")
    for task in args.tasks.split(","):
        folder = os.path.join(args.out, task)
        for run in sorted(glob.glob(os.path.join(folder, f"{args.tag}-{args.arm}-s*"))):
            if not os.path.isfile(os.path.join(run, "model.keras")):
                continue
            seed = int(re.search(r"-s(\d+)$", run).group(1))
            if seeds is not None and seed not in seeds:
                continue
            backward_run = None
            if args.backward_tag:
                backward_run = os.path.join(folder, f"{args.backward_tag}-ulmfit-s{seed}")
                if not os.path.isfile(os.path.join(backward_run, "model.keras")):
                    continue
            row = blend_row(folder, run, seed, weightings, backward_run)
            tfidf = run_tfidf(folder, seed)
            row.update({f"sklearn_{k}": v for k, v in tfidf.items() if k.endswith("error")})
            row_name = "blend" if args.arm == "ulmfit" else "scratch-blend"
            if weightings != ("tfidf",):
                row_name += "-" + "+".join(weightings)
            if backward_run:
                row_name += "-bidirectional"
            _add_row(results_path, task, row_name, seed, row)
            print(task, seed, json.dumps(row), flush=True)
            print(f"  {'':10} {'valid':>7} {'test':>7} {'dev':>7}")
            classifier_name = "ULMFiT" if args.arm == "ulmfit" else "scratch"
            arms = [(classifier_name, "classifier_"), ("bag", "bag_"), ("blend", ""),
                    ("sklearn", "sklearn_")]
            if backward_run:
                arms[:1] = [("forward", "forward_"), ("backward", "backward_"),
                            ("both", "classifier_")]
            for arm, prefix in arms:
                print(f"  {arm:10} " + " ".join(
                    f"{row.get(f'{prefix}{n}_error', float('nan')):7.2%}"
                    for n in ("valid", "test", "dev")), flush=True)


if __name__ == "__main__":
    main()
