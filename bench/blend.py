"""The default classifier's blend with a bag of n-grams, on finished runs.

    python bench/blend.py --out runs/baselines [--tasks trec,sms,imdb,20news] [--tag v2]
        [--arm ulmfit|scratch]

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


def blend_row(folder, run, seed, weightings=("tfidf",)):
    from ulmfit_tf.data import load_csv
    from ulmfit_tf.evaluation import classification_report
    from ulmfit_tf.models.bag_of_ngrams import (bag_logits, blend_probabilities,
                                                fit_bag_of_ngrams, fit_blend, word_ids)
    from ulmfit_tf.text import Vocab
    from ulmfit_tf.training.classifier import predict_probabilities
    from ulmfit_tf.training.run_dir import load_model_file

    train, (tr_x, tr_y, va_x, va_y) = _valid_split(folder, seed)
    classifier = load_model_file(os.path.join(run, "model.keras"))
    vocab = Vocab.load(os.path.join(run, "vocab.txt"))
    encode = vocab.encode_texts
    tr_ids, va_ids = encode(tr_x), encode(va_x)
    start = time.perf_counter()
    bag, info = fit_bag_of_ngrams(tr_ids, tr_y, va_ids, va_y, word_ids(vocab),
                                  classifier.num_classes, weightings=weightings)
    fit_seconds = time.perf_counter() - start
    cache_path = os.path.join(run, "classifier_probabilities.npz")
    cache = dict(np.load(cache_path)) if os.path.isfile(cache_path) else {}

    def probabilities(name, ids):
        # The classifier's are the same for every bag: computed once a run.
        if name not in cache:
            cache[name] = predict_probabilities(classifier, ids)
            np.savez(cache_path, **cache)
        return cache[name]

    a, b, _ = fit_blend(probabilities("valid", va_ids), bag_logits(bag, va_ids), va_y)
    row = {"classifier_weight": a, "bag_weight": b, "bag_C": info["C"],
           "bag_weighting": info["weighting"],
           "bag_valid_loss": info["valid_losses"][info["C"]],
           "bag_ngrams": bag.num_ngrams, "bag_fit_seconds": fit_seconds}
    sets = {"valid": (va_ids, np.asarray(va_y))}
    for name in ("test", "dev"):
        path = os.path.join(folder, f"{name}.tsv")
        if os.path.isfile(path):
            data = load_csv(path, classes=train.classes)
            sets[name] = (encode(data.texts), np.asarray(data.labels))
    for name, (ids, labels) in sets.items():
        p = probabilities(name, ids)
        q = bag_logits(bag, ids)
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
            row = blend_row(folder, run, seed, weightings)
            tfidf = run_tfidf(folder, seed)
            row.update({f"sklearn_{k}": v for k, v in tfidf.items() if k.endswith("error")})
            row_name = "blend" if args.arm == "ulmfit" else "scratch-blend"
            if weightings != ("tfidf",):
                row_name += "-" + "+".join(weightings)
            _add_row(results_path, task, row_name, seed, row)
            print(task, seed, json.dumps(row), flush=True)
            print(f"  {'':10} {'valid':>7} {'test':>7} {'dev':>7}")
            classifier_name = "ULMFiT" if args.arm == "ulmfit" else "scratch"
            for arm, prefix in ((classifier_name, "classifier_"), ("bag", "bag_"),
                                ("blend", ""), ("sklearn", "sklearn_")):
                print(f"  {arm:10} " + " ".join(
                    f"{row.get(f'{prefix}{n}_error', float('nan')):7.2%}"
                    for n in ("valid", "test", "dev")), flush=True)


if __name__ == "__main__":
    main()
