"""Stage 2's settings by validation perplexity: `finetune-lm` over a grid.

    python bench/lm_finetune_grid.py --out runs/baselines [--tasks trec,sms]
        [--epochs 1,3,6] [--lrs 2e-3,4e-3,1e-2] [--report-only]

For each task of `bench/classic_baselines.py` (the same `lm.tsv`, written
there) and each pair of epochs and peak rate, runs ``ulmfit-tf finetune-lm``
from the bundled LM as a user would, every other setting the CLI's default,
and reads the last epoch's validation perplexity (the split is the same for
every setting: `--valid-fraction` and `--seed` stay at their defaults, and
the vocabulary depends only on the corpus). A pair already run (its folder
``OUT/<task>/lm-e<epochs>-lr<rate>``) is read, not run again. The pair of
the CLI's defaults runs again under its own name: copy `classic_baselines.py`'s
``lm`` folder and ``lm_seconds.json`` to that name to reuse them.
Prints a table per task: validation perplexity and wall seconds.
"""

import argparse
import json
import os

from classic_baselines import BUNDLED_LM, DEFAULT_DATA, finetune_lm, write_task


def lm_name(epochs, lr):
    return f"lm-e{epochs}-lr{lr:g}"


def final_perplexity(run):
    with open(os.path.join(run, "metrics.json")) as f:
        return json.load(f)["history"]["val_perplexity"][-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--tasks", default="trec,sms")
    parser.add_argument("--epochs", default="1,3,6")
    parser.add_argument("--lrs", default="2e-3,4e-3,1e-2")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    grid = [(int(e), float(lr)) for e in args.epochs.split(",") for lr in args.lrs.split(",")]
    for task in args.tasks.split(","):
        folder = os.path.join(args.out, task)
        write_task(task, args.data, folder)
        rows = []
        for epochs, lr in grid:
            name = lm_name(epochs, lr)
            done = os.path.isfile(os.path.join(folder, name + "_seconds.json"))
            if args.report_only and not done:
                continue
            run, seconds = finetune_lm(folder, ["--epochs", str(epochs), "--lr", str(lr)],
                                       name, BUNDLED_LM)
            rows.append((epochs, lr, final_perplexity(run), seconds))
            print(f"{task} epochs {epochs} lr {lr:g}: validation perplexity "
                  f"{rows[-1][2]:.2f}, {seconds:.0f} s", flush=True)
        print(f"\n{task}: {'epochs':>6} {'peak rate':>9} {'valid ppl':>9} {'wall s':>7}")
        for epochs, lr, perplexity, seconds in sorted(rows, key=lambda r: r[2]):
            print(f"{'':{len(task) + 1}} {epochs:6d} {lr:9.0e} {perplexity:9.2f} {seconds:7.0f}")


if __name__ == "__main__":
    main()
