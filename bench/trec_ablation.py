"""The paper's TREC-6 ablation at CPU scale: 3 seeds, same classifier budget.

    python bench/trec_ablation.py [--pretrained saved_models/general-en-base-e4]
        [--seeds 0,1,2] [--epochs 8] [--lm-epochs 4] [--out runs/ablation] [--fastai]
        [--lr 1e-2] [--lr-scratch 1e-2]

Arms (each seed: its own LM fine-tuning, split of train/valid, classifier
initialisation and dropout):
  from_scratch        the same classifier from random weights (one rate,
                      no unfreezing: nothing to protect)
  pretrained_only     the pretrained LM's encoder, no LM fine-tuning, then
                      the ULMFiT classifier recipe
  ulmfit              pretrained + LM fine-tuned on TREC + gradual unfreezing
                      + discriminative rates + STLR
  ulmfit_no_unfreeze  as ulmfit, without gradual unfreezing
  ulmfit_flat         as ulmfit, without gradual unfreezing and with one
                      rate for all layers (the from_scratch recipe on the
                      fine-tuned LM's weights)
  fastai              (with --fastai) the same pretrained weights converted
                      to fastai, fine-tuned and classified by fastai's
                      tutorial recipe (bench/fastai_trec.py); same tokens,
                      LM epochs and classifier epochs
Prints mean and standard deviation of the test error per arm, writes
OUT/results.json and OUT/ablation.png.
"""

import argparse
import os
import sys

import numpy as np

from ulmfit_tf.cli import DEFAULT_PRETRAINED, _encode, _labelled, _load_lm_run, _run_main
from ulmfit_tf.training.classifier import ClassifierConfig, compare_on_test, split_labelled
from ulmfit_tf.training.run_dir import save_figure, write_json
from ulmfit_tf.training.transfer import remap_language_model

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # fastai_trec

ARMS = ("from_scratch", "pretrained_only", "ulmfit", "ulmfit_no_unfreeze", "ulmfit_flat")


def run_seed(args, seed, data, test, names):
    """Test errors of the arms `names` for one seed."""
    out = os.path.join(args.out, f"seed{seed}")
    finetuned = os.path.join(out, "finetuned-lm")
    if not os.path.isfile(os.path.join(finetuned, "model.keras")):
        _run_main(["finetune-lm", "trec", "--pretrained", args.pretrained, "--out", finetuned,
                   "--epochs", str(args.lm_epochs), "--lr", "1e-2", "--batch-size", "32",
                   "--bptt", "40", "--seed", str(seed), "--data", args.data])
    lm, vocab = _load_lm_run(finetuned)
    pretrained, pretrained_vocab = _load_lm_run(args.pretrained)
    pretrained, _ = remap_language_model(pretrained, pretrained_vocab, vocab)
    docs, test_docs = _encode(data.texts, vocab), _encode(test.texts, vocab)
    split = split_labelled(docs, data.labels, 0.1, seed)
    sizes = {"vocabulary_size": len(vocab), **{
        k: getattr(lm.encoder, k) for k in ("embedding_dim", "hidden_dim", "num_layers")}}
    lrs = {"from_scratch": args.lr_scratch, **{a: args.lr for a in ARMS[1:]}}
    # One triangle over the run, as these arms were measured (docs/RESULTS.md);
    # bench/trec_recipes.py measures the per-stage schedule, now the default.
    config = lambda arm: dict(epochs=args.epochs, seed=seed, max_lr=lrs[arm],  # noqa: E731
                              schedule="stlr")
    arms = {
        "from_scratch": (sizes, ClassifierConfig(**config("from_scratch"),
                                                 gradual_unfreezing=False,
                                                 discriminative_factor=None)),
        "pretrained_only": (pretrained, ClassifierConfig(**config("pretrained_only"))),
        "ulmfit": (lm, ClassifierConfig(**config("ulmfit"))),
        "ulmfit_no_unfreeze": (lm, ClassifierConfig(**config("ulmfit_no_unfreeze"),
                                                    gradual_unfreezing=False)),
        "ulmfit_flat": (lm, ClassifierConfig(**config("ulmfit_flat"), gradual_unfreezing=False,
                                             discriminative_factor=None)),
    }
    arms = {name: arm for name, arm in arms.items() if name in names}
    reports = compare_on_test(arms, split, data.classes, vocab, test_docs, test.labels, out)
    errors = {name: report["error_rate"] for name, report in reports.items()}
    if args.fastai and "fastai" in names:
        from fastai_trec import fastai_arm

        errors["fastai"] = fastai_arm(pretrained, vocab, split, test_docs, test.labels,
                                      len(data.classes), seed, args.lm_epochs, args.epochs,
                                      os.path.join(out, "fastai"))
    return errors


def plot(results, path, arms):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for i, arm in enumerate(arms):
        errors = [100 * r[arm] for r in results.values()]
        ax.bar(i, np.mean(errors), yerr=np.std(errors), capsize=4, alpha=0.7)
        ax.scatter([i] * len(errors), errors, color="black", s=12, zorder=3)
    ax.set_xticks(range(len(arms)), [a.replace("_", "\n") for a in arms])
    ax.set_ylabel("TREC-6 test error (%)")
    ax.set_title(f"{len(results)} seeds, same classifier budget")
    save_figure(fig, path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pretrained", default=DEFAULT_PRETRAINED)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lm-epochs", type=int, default=4)
    parser.add_argument("--out", default="runs/ablation")
    parser.add_argument("--fastai", action="store_true", help="add arm (iv), fastai's recipe")
    parser.add_argument("--lr", type=float, default=1e-2, help="peak rate, pretrained arms")
    parser.add_argument("--lr-scratch", type=float, default=1e-2, help="peak rate, scratch")
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "shared", "data"))
    args = parser.parse_args()
    data, test = _labelled("trec", "train", args.data), _labelled("trec", "test", args.data)
    arms = ARMS + ("fastai",) if args.fastai else ARMS
    results = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        results[seed] = run_seed(args, seed, data, test, arms)
        print(f"seed {seed}: " + ", ".join(f"{a} {results[seed][a]:.1%}" for a in arms),
              flush=True)
    summary = {arm: {"mean": float(np.mean([r[arm] for r in results.values()])),
                     "std": float(np.std([r[arm] for r in results.values()])),
                     "per_seed": [r[arm] for r in results.values()]} for arm in arms}
    write_json(os.path.join(args.out, "results.json"),
               {"pretrained": args.pretrained, "epochs": args.epochs,
                "lm_epochs": args.lm_epochs, "lr": args.lr, "lr_scratch": args.lr_scratch,
                "arms": summary})
    plot(results, os.path.join(args.out, "ablation.png"), arms)
    print("| arm | TREC-6 test error, mean ± std |\n|---|---|")
    for arm in arms:
        print(f"| {arm} | {summary[arm]['mean']:.1%} ± {summary[arm]['std']:.1%} |")


if __name__ == "__main__":
    main()
