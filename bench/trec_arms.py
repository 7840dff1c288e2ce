"""TREC-6 classifier arms from one fine-tuned LM, over seeds, side by side.

    python bench/trec_arms.py --lm runs/trec-lm --out runs/arms [--seeds 0,1,2]
        [--epochs 8] [--arms default,no_ar_tar] [--tag NAME]

Each arm is the demo's ULMFiT classifier (÷1.3 per group, peak 2e-2, a
slanted triangle per unfreezing stage) with some settings changed; each
seed has its own train/valid split of the training questions. Prints mean
and standard deviation of the validation and test errors per arm (choose by
validation), and writes OUT/<tag>.json. Run it from an older checkout
(`PYTHONPATH=<checkout> python <checkout>/bench/trec_arms.py --tag old`)
to put that code's numbers beside today's.
"""

import argparse
import json
import os

import numpy as np

from ulmfit_tf.cli import _encode, _labelled, _load_lm_run
from ulmfit_tf.training.classifier import ClassifierConfig, compare_on_test, split_labelled

BASE = dict(discriminative_factor=1.3, max_lr=2e-2)
ARMS = {
    "default": {},
    "no_ar_tar": dict(activation_alpha=0.0, temporal_beta=0.0),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lm", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "shared", "data"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--arms", default="default,no_ar_tar")
    parser.add_argument("--tag", default="arms")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.arms.split(",")

    data, test = _labelled("trec", "train", args.data), _labelled("trec", "test", args.data)
    lm, vocab = _load_lm_run(args.lm)
    docs, test_docs = _encode(data.texts, vocab), _encode(test.texts, vocab)
    results = {name: {"valid": [], "test": []} for name in names}
    for seed in seeds:
        split = split_labelled(docs, data.labels, 0.1, seed)
        arms = {name: (lm, ClassifierConfig(epochs=args.epochs, seed=seed,
                                            **{**BASE, **ARMS[name]})) for name in names}
        out = os.path.join(args.out, args.tag, f"seed{seed}")
        reports = compare_on_test(arms, split, data.classes, vocab, test_docs, test.labels, out)
        for name in names:
            with open(os.path.join(out, name, "metrics.json")) as f:
                results[name]["valid"].append(json.load(f)["valid"]["error_rate"])
            results[name]["test"].append(reports[name]["error_rate"])
            print(f"seed {seed} {name}: valid {results[name]['valid'][-1]:.3f}, "
                  f"test {results[name]['test'][-1]:.3f}", flush=True)
    print(f"| arm ({args.tag}) | valid error | test error |\n|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {np.mean(r['valid']):.1%} ± {np.std(r['valid']):.1%} | "
              f"{np.mean(r['test']):.1%} ± {np.std(r['test']):.1%} |")
    with open(os.path.join(args.out, f"{args.tag}.json"), "w") as f:
        json.dump({"seeds": seeds, "epochs": args.epochs, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
