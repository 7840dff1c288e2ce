"""Words against SentencePiece subwords, all three stages, on TREC-6.

    python bench/subword_trec.py --out runs/subword-trec [--max-tokens 500000]
        [--subword-vocab 8000] [--arms words,subwords] [--classifier-flags "--epochs 6"]

Each arm runs the CLI as a user would, with the same settings but the
vocabulary: `prepare` on general-en (words: the default 60,000-token
vocabulary; subwords: `--subword-vocab`), `pretrain` at general-en-base's
sizes (128/384/3, peak 5e-3) on the first `--max-tokens` training tokens of a
seeded choice of documents (equal steps for both arms: subwords spell the
same text in more tokens, so that arm sees less text), then `finetune-lm` and
`train-classifier` on TREC-6 with their defaults (and `--classifier-flags`)
and `evaluate` on its test split. Prints a table (stage times, validation
perplexity, TREC-6 validation and test error) and writes OUT/results.json;
an arm whose OUT/<arm>/results.json exists is not run again.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(args, log):
    """One CLI command; its last JSON line, and its wall time."""
    start = time.perf_counter()
    with open(log, "w") as f:
        done = subprocess.run([sys.executable, "-m", "ulmfit_tf.cli", *args],
                              stdout=subprocess.PIPE, stderr=f, text=True)
    if done.returncode:
        raise SystemExit(f"failed ({done.returncode}): ulmfit-tf {' '.join(args)}; see {log}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return (json.loads(lines[-1]) if lines else {}), round(time.perf_counter() - start)


def arm(name, args):
    out = os.path.join(args.out, name)
    os.makedirs(out, exist_ok=True)
    results_path = os.path.join(out, "results.json")
    if os.path.exists(results_path):
        with open(results_path) as f:
            return json.load(f)
    data = ["--data", args.data]
    results, seconds = {}, {}
    subwords = ["--subword-vocab", str(args.subword_vocab)] if name == "subwords" else []
    prepared, lm, ft, clf = (os.path.join(out, d) for d in ("data", "lm", "ft", "clf"))
    steps = [
        ("prepare", ["prepare", args.corpus, "--out", prepared, *subwords]),
        ("pretrain", ["pretrain", prepared, "--out", lm, "--embedding-dim", "128",
                      "--hidden-dim", "384", "--layers", "3", "--lr", "5e-3",
                      "--max-tokens", str(args.max_tokens), "--seed", "0"]),
        ("finetune-lm", ["finetune-lm", "trec", "--pretrained", lm, "--out", ft, *data]),
        ("train-classifier", ["train-classifier", "trec", "--lm", ft, "--out", clf, *data,
                              *args.classifier_flags.split()]),
    ]
    for stage, command in steps:
        results[stage], seconds[stage] = run(command, os.path.join(out, f"{stage}.log"))
        print(f"{name} {stage}: {seconds[stage]} s", flush=True)
    report, seconds["evaluate"] = run(["evaluate", "trec", clf, *data],
                                      os.path.join(out, "evaluate.log"))
    with open(os.path.join(clf, "metrics.json")) as f:
        valid_error = json.load(f)["valid"]["error_rate"]
    summary = {
        "vocab_size": results["prepare"].get("vocab_size"),
        "corpus_tokens": results["prepare"].get("tokens"),
        "lm_val_perplexity": results["pretrain"].get("val_perplexity"),
        "finetuned_val_perplexity": results["finetune-lm"].get("val_perplexity"),
        "trec_valid_error": valid_error, "trec_test_error": report["error_rate"],
        "seconds": seconds}
    with open(results_path, "w") as f:
        json.dump(summary, f, indent=1)
    return summary


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    parser.add_argument("--corpus", default=None, help="default: DATA/general-en")
    parser.add_argument("--max-tokens", type=int, default=500_000)
    parser.add_argument("--subword-vocab", type=int, default=8000)
    parser.add_argument("--arms", default="words,subwords")
    parser.add_argument("--classifier-flags", default="")
    args = parser.parse_args()
    args.corpus = args.corpus or os.path.join(args.data, "general-en")
    results = {name: arm(name, args) for name in args.arms.split(",")}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print("\n| arm | vocabulary | LM val perplexity (own tokens) | fine-tuned | TREC-6 valid "
          "error | test error | prepare + pretrain + fine-tune + classifier (s) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        s = r["seconds"]
        print(f"| {name} | {r['vocab_size']:,} | {r['lm_val_perplexity']:.1f} | "
              f"{r['finetuned_val_perplexity']:.1f} | {r['trec_valid_error']:.1%} | "
              f"{r['trec_test_error']:.1%} | {s['prepare']} + {s['pretrain']} + "
              f"{s['finetune-lm']} + {s['train-classifier']} |")


if __name__ == "__main__":
    main()
