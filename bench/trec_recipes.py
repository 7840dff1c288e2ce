"""TREC-6: settings of the full ULMFiT classifier recipe on the ablation's LMs.

    python bench/trec_recipes.py --ablation runs/ablation-base [--seeds 0,1,2]
        [--variants factor1.3,stlr_stages,...] [--epochs 8]

Every variant keeps all of ULMFiT's classifier recipe (gradual unfreezing,
discriminative rates, slanted triangular rates) and changes some of its
settings: the rate divisor per layer group (2.6 in the paper), the peak
rate (1e-2), and whether the slanted triangle spans the run ("stlr") or
restarts at each unfreezing stage ("stlr_stages", as ULMFiT's released
scripts and fastai do). It starts from the fine-tuned LM that
`bench/trec_ablation.py` left for each seed (ABLATION/seed<k>/finetuned-lm)
and uses that seed's train/valid split, so its numbers sit beside the
ablation's arms. The variant with the lowest mean *validation* error is
the one to report; the test errors are printed for all of them.
Writes ABLATION/recipes.json and ABLATION/recipes.png.
"""

import argparse
import json
import os

import numpy as np

from ulmfit_tf.cli import _encode, _labelled, _load_lm_run
from ulmfit_tf.training.classifier import ClassifierConfig, compare_on_test, split_labelled
from ulmfit_tf.training.run_dir import save_figure, write_json

VARIANTS = {
    "factor1.3": dict(discriminative_factor=1.3, schedule="stlr"),
    "factor1.6": dict(discriminative_factor=1.6, schedule="stlr"),
    "lr2e-2": dict(max_lr=2e-2, schedule="stlr"),
    "factor1.3_lr2e-2": dict(discriminative_factor=1.3, max_lr=2e-2, schedule="stlr"),
    "stlr_stages": dict(schedule="stlr_stages"),
    "stlr_stages_factor1.3": dict(schedule="stlr_stages", discriminative_factor=1.3),
    "stlr_stages_factor1.3_lr2e-2": dict(schedule="stlr_stages", discriminative_factor=1.3,
                                         max_lr=2e-2),
}
# Arms of the ablation read back for comparison (not retrained).
ABLATION_ARMS = ("from_scratch", "ulmfit", "ulmfit_flat")


def errors_of(run_dir):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        valid = json.load(f)["valid"]["error_rate"]
    with open(os.path.join(run_dir, "test_metrics.json")) as f:
        test = json.load(f)["error_rate"]
    return {"valid": valid, "test": test}


def run_seed(args, seed, data, test, names):
    out = os.path.join(args.ablation, f"seed{seed}")
    lm, vocab = _load_lm_run(os.path.join(out, "finetuned-lm"))
    docs, test_docs = _encode(data.texts, vocab), _encode(test.texts, vocab)
    split = split_labelled(docs, data.labels, 0.1, seed)
    todo = {name: (lm, ClassifierConfig(epochs=args.epochs, seed=seed, **VARIANTS[name]))
            for name in names
            if not os.path.isfile(os.path.join(out, name, "test_metrics.json"))}
    compare_on_test(todo, split, data.classes, vocab, test_docs, test.labels, out)
    return {name: errors_of(os.path.join(out, name)) for name in ABLATION_ARMS + names}


def plot(summary, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    names = list(summary)
    for i, name in enumerate(names):
        for offset, split, color in ((-0.2, "valid", "tab:gray"), (0.2, "test", "tab:blue")):
            errors = 100 * np.array(summary[name][split]["per_seed"])
            ax.bar(i + offset, errors.mean(), 0.4, yerr=errors.std(), capsize=3, color=color,
                   alpha=0.7, label=split if i == 0 else None)
    ax.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=8)
    ax.set_ylabel("TREC-6 error (%)")
    ax.legend()
    ax.set_title("ULMFiT recipe variants, 3 seeds, 8 classifier epochs")
    save_figure(fig, path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ablation", default="runs/ablation-base")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "shared", "data"))
    args = parser.parse_args()
    names = tuple(args.variants.split(","))
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; known: {list(VARIANTS)}")
    data, test = _labelled("trec", "train", args.data), _labelled("trec", "test", args.data)
    results = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        results[seed] = run_seed(args, seed, data, test, names)
        print(f"seed {seed}: " + ", ".join(
            f"{n} {r['valid']:.1%}/{r['test']:.1%}" for n, r in results[seed].items()),
            flush=True)
    summary = {name: {split: {"mean": float(np.mean(v)), "std": float(np.std(v)),
                              "per_seed": v}
                      for split in ("valid", "test")
                      for v in [[results[s][name][split] for s in results]]}
               for name in ABLATION_ARMS + names}
    chosen = min(names, key=lambda n: summary[n]["valid"]["mean"])
    write_json(os.path.join(args.ablation, "recipes.json"),
               {"variants": {n: VARIANTS[n] for n in names}, "epochs": args.epochs,
                "chosen_by_validation": chosen, "errors": summary})
    plot(summary, os.path.join(args.ablation, "recipes.png"))
    print("| arm | valid error | test error |\n|---|---|---|")
    for name, s in summary.items():
        print(f"| {name} | {s['valid']['mean']:.1%} ± {s['valid']['std']:.1%} "
              f"| {s['test']['mean']:.1%} ± {s['test']['std']:.1%} |")
    print(f"chosen by validation error: {chosen}")


if __name__ == "__main__":
    main()
