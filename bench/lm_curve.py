"""Held-out perplexity against training tokens, across runs that continue each other.

    python bench/lm_curve.py runs/general-en-base runs/general-en-base-e2 \
        runs/general-en-base-e3 saved_models/general-en-base-e4 --out docs/figures/lm_curve.png

(general-en-base, e2 and e3 from the git history: docs/RESULTS.md sections 1-1.2.)

Each run is a `ulmfit-tf pretrain` directory; give them in the order they
continued each other (`--init-from`), so that the tokens add up. An epoch's
tokens are read from the run's resolved `config.json` (its share of a
pass over the training tokens), the held-out perplexity after it from `metrics.json`. Prints the
table and draws it on log-log axes, where a power law is a straight line.
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from ulmfit_tf.data.lm_stream import split_pass  # noqa: E402


def run_curve(run):
    """[(tokens trained in this run so far, held-out perplexity)] after each epoch."""
    with open(os.path.join(run, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    with open(os.path.join(run, "metrics.json"), encoding="utf-8") as f:
        perplexities = json.load(f)["history"]["val_perplexity"]
    # Pretraining always draws variable windows (`pretrain` has no flag for fixed ones).
    epochs_per_pass, _ = split_pass(config["train_tokens"], config["batch_size"], config["bptt"],
                                    tokens_per_epoch=config.get("tokens_per_epoch"))
    tokens_per_epoch = config["train_tokens"] / epochs_per_pass
    return [((epoch + 1) * tokens_per_epoch, perplexity)
            for epoch, perplexity in enumerate(perplexities)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", help="pretrain run directories, oldest first")
    parser.add_argument("--out", default=None, help="where to draw the curve (a .png)")
    args = parser.parse_args()

    seen = 0.0
    curves = []
    print("| run | epoch | tokens seen | held-out perplexity |\n|---|---|---|---|")
    for run in args.runs:
        points = [(seen + tokens, perplexity) for tokens, perplexity in run_curve(run)]
        name = os.path.basename(os.path.normpath(run))
        for epoch, (tokens, perplexity) in enumerate(points, 1):
            print(f"| {name} | {epoch} | {tokens / 1e6:.1f}M | {perplexity:.1f} |")
        curves.append((name, points))
        seen = points[-1][0]
    if args.out:
        import matplotlib
        import matplotlib.ticker

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ulmfit_tf.training.run_dir import save_figure

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, points in curves:
            tokens, perplexities = zip(*points)
            ax.plot([t / 1e6 for t in tokens], perplexities, marker="o", markersize=3,
                    label=f"{name} ({perplexities[-1]:.1f})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            axis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.set_xlabel("training tokens seen (millions)")
        ax.set_ylabel("held-out perplexity (1% of general-en)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        ax.set_title("AWD-LSTM 128/384, continued run by run")
        save_figure(fig, args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
