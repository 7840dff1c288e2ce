"""IMDb with few labels: ULMFiT on N labelled reviews against the same
classifier from scratch on N and on 10 x N (the paper's Figure 3, semi-supervised).

    python bench/imdb_lowshot.py [--pretrained saved_models/general-en-base-e4]
        [--labels 100,1000] [--seeds 0] [--unsup-docs 2000] [--lm-epochs 3]
        [--max-tokens 200] [--test-docs 2000] [--arms ulmfit,...] [--out runs/imdb-lowshot]

Stage 2 fine-tunes the pretrained LM once, on `--unsup-docs` reviews chosen
at random from the 50,000 unlabelled ones (`finetune-lm imdb-unsup
--max-docs`); its vocabulary is used by every arm. For each seed and N, the
labelled reviews are a class-balanced random draw from the 25,000 training
reviews (the N reviews are among the 10 x N), and the arms are:

  ulmfit_<N>         fine-tuned LM, ULMFiT's classifier recipe (gradual
                     unfreezing, ÷2.6 rates, one STLR over the run)
  ulmfit_tuned_<N>   the same with the settings chosen on TREC-6's
                     validation split (bench/trec_recipes.py): ÷1.3 rates,
                     one STLR per unfreezing stage
  ulmfit_flat_<N>    fine-tuned LM, one rate, no unfreezing
  scratch_<N>        random weights, one rate, no unfreezing
  scratch_<10N>      the same on ten times the labels

There is no validation split (with 100 labels it would be 10 reviews);
every arm trains a fixed budget: at least `--min-epochs` epochs and
`--min-steps` optimizer steps. To fit the CPU, each review is cut to its
last `--max-tokens` tokens (the end of a review usually carries its
verdict) for every arm alike, and the test error is measured on
`--test-docs` test reviews drawn once at random (seed 0).
Runs are cached: starting it again skips arms that finished, so more seeds
can be added later (`--report-only` summarises what finished; an arm's mean
is over the seeds it ran). Writes OUT/results.json and OUT/lowshot.png.
"""

import argparse
import json
import math
import os

import numpy as np

from ulmfit_tf.cli import DEFAULT_PRETRAINED, _encode, _labelled, _load_lm_run, _run_main
from ulmfit_tf.training.classifier import ClassifierConfig, compare_on_test
from ulmfit_tf.training.run_dir import save_figure, write_json


def balanced_draw(labels, count, seed):
    """Indices of `count` examples, as many of each class, in random order."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = count // len(classes)
    picked = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class]
                             for c in classes])
    return rng.permutation(picked)


def epochs_for(n_docs, args):
    steps_per_epoch = math.ceil(n_docs / args.batch_size)
    return max(args.min_epochs, math.ceil(args.min_steps / steps_per_epoch))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pretrained", default=DEFAULT_PRETRAINED)
    parser.add_argument("--labels", default="100,1000")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--unsup-docs", type=int, default=2000)
    parser.add_argument("--lm-epochs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--test-docs", type=int, default=2000)
    parser.add_argument("--pool", type=int, default=10_000,
                        help="labelled reviews drawn per seed; every arm's labels are drawn "
                             "from them (so an arm's draw does not depend on --labels)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--min-epochs", type=int, default=3)
    parser.add_argument("--min-steps", type=int, default=120)
    parser.add_argument("--arms", default="ulmfit,ulmfit_tuned,ulmfit_flat,scratch",
                        help="which kinds of arm to run or read back")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: summarise the arms that finished")
    parser.add_argument("--out", default="runs/imdb-lowshot")
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "shared", "data"))
    args = parser.parse_args()
    finetuned = os.path.join(args.out, "finetuned-lm")
    if not os.path.isfile(os.path.join(finetuned, "model.keras")):
        _run_main(["finetune-lm", "imdb-unsup", "--pretrained", args.pretrained,
                   "--out", finetuned, "--max-docs", str(args.unsup_docs),
                   "--epochs", str(args.lm_epochs), "--lr", "1e-2", "--seed", "0",
                   "--data", args.data])
    lm, vocab = _load_lm_run(finetuned)
    sizes = {"vocabulary_size": len(vocab), **{
        k: getattr(lm.encoder, k) for k in ("embedding_dim", "hidden_dim", "num_layers")}}

    train, test = _labelled("imdb", "train", args.data), _labelled("imdb", "test", args.data)
    cut = lambda docs: [d[-args.max_tokens:] for d in docs]  # noqa: E731
    test_rows = np.random.default_rng(0).permutation(len(test.texts))[: args.test_docs]
    test_docs = cut(_encode([test.texts[i] for i in test_rows], vocab))
    test_labels = test.labels[test_rows]
    label_counts = [int(n) for n in args.labels.split(",")]

    results = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        pool = balanced_draw(train.labels, max(args.pool, 10 * max(label_counts)), seed)
        pool_docs = cut(_encode([train.texts[i] for i in pool], vocab))
        pool_labels = train.labels[pool]
        out = os.path.join(args.out, f"seed{seed}")
        results[seed] = {}
        for n in label_counts:
            # Same seed, so the n reviews are among the 10 x n ones.
            first = {m: balanced_draw(pool_labels, m, seed) for m in (n, 10 * n)}
            recipe = lambda m, **kw: ClassifierConfig(  # noqa: E731
                epochs=epochs_for(m, args), batch_size=args.batch_size, seed=seed,
                max_len=args.max_tokens, valid_fraction=0.0, **{"schedule": "stlr", **kw})
            plain = dict(gradual_unfreezing=False, discriminative_factor=None)
            arms = {
                f"ulmfit_{n}": (n, lm, recipe(n)),
                f"ulmfit_tuned_{n}": (n, lm, recipe(n, schedule="stlr_stages",
                                                    discriminative_factor=1.3)),
                f"ulmfit_flat_{n}": (n, lm, recipe(n, **plain)),
                f"scratch_{n}": (n, sizes, recipe(n, **plain)),
                f"scratch_{10 * n}": (10 * n, sizes, recipe(10 * n, **plain)),
            }
            kinds = args.arms.split(",")
            arms = {name: arm for name, arm in arms.items() if name.rsplit("_", 1)[0] in kinds}
            for name, (m, source, config) in arms.items():
                metrics = os.path.join(out, name, "test_metrics.json")
                if not os.path.isfile(metrics) and args.report_only:
                    continue
                if not os.path.isfile(metrics):
                    rows = first[m]
                    split = ([pool_docs[i] for i in rows], pool_labels[rows], [],
                             np.zeros(0, np.int32))
                    compare_on_test({name: (source, config)}, split, train.classes, vocab,
                                    test_docs, test_labels, out)
                with open(metrics) as f:
                    results[seed][name] = json.load(f)["error_rate"]
                print(f"seed {seed} {name}: test error {results[seed][name]:.1%}", flush=True)

    names = list(dict.fromkeys(name for r in results.values() for name in r))
    summary = {}
    for name in names:
        errors = {seed: r[name] for seed, r in results.items() if name in r}
        summary[name] = {"mean": float(np.mean(list(errors.values()))),
                         "std": float(np.std(list(errors.values()))), "per_seed": errors}
    write_json(os.path.join(args.out, "results.json"), {
        "pretrained": args.pretrained, "unsup_docs": args.unsup_docs,
        "lm_epochs": args.lm_epochs, "max_tokens": args.max_tokens,
        "test_docs": args.test_docs, "seeds": list(results), "errors": summary})
    plot(summary, label_counts, os.path.join(args.out, "lowshot.png"))
    print("| arm | IMDb test error |\n|---|---|")
    for name, s in summary.items():
        print(f"| {name} | {s['mean']:.1%} ± {s['std']:.1%} (seeds {list(s['per_seed'])}) |")


def plot(summary, label_counts, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    styles = {"ulmfit": ("tab:blue", "o"), "ulmfit_tuned": ("tab:purple", "D"),
              "ulmfit_flat": ("tab:green", "s"),
              "scratch": ("tab:gray", "^")}
    for arm, (color, marker) in styles.items():
        counts = sorted({m for n in label_counts for m in (n, 10 * n)
                         if f"{arm}_{m}" in summary})
        means = [100 * summary[f"{arm}_{m}"]["mean"] for m in counts]
        ax.plot(counts, means, marker=marker, color=color, label=arm)
    ax.set_xscale("log")
    ax.set_xlabel("labelled training reviews")
    ax.set_ylabel("IMDb test error (%)")
    ax.legend()
    ax.set_title("IMDb with few labels")
    save_figure(fig, path)


if __name__ == "__main__":
    main()
