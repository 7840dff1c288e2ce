"""The `ulmfit-tf` command line."""

import argparse
import json
import os
import sys
import time


def _prepare(args):
    from ulmfit_tf.corpus import read_texts
    from ulmfit_tf.data import TokenFile
    from ulmfit_tf.text import Vocab, tokenize_corpus
    from ulmfit_tf.utils import atomic_directory

    data = read_texts(args.corpus, source=args.data)
    start = time.time()
    tokens = tokenize_corpus(data.texts, num_workers=args.workers, progress=True)
    elapsed = time.time() - start
    n_tokens = sum(map(len, tokens))
    vocab = Vocab.build(tokens, max_vocab=args.max_vocab, min_freq=args.min_freq)
    with atomic_directory(args.out) as tmp:
        vocab.save(os.path.join(tmp, "vocab.txt"))
        TokenFile.write(os.path.join(tmp, "tokens"), (vocab.encode(t) for t in tokens))
        config = {"command": "prepare", **{k: v for k, v in vars(args).items() if k != "func"}}
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        metrics = {"documents": len(tokens), "tokens": n_tokens, "vocab_size": len(vocab),
                   "tokenize_seconds": round(elapsed, 2),
                   "tokens_per_second": round(n_tokens / max(elapsed, 1e-9))}
        with open(os.path.join(tmp, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=2)
    print(json.dumps(metrics))


def build_parser():
    parser = argparse.ArgumentParser(prog="ulmfit-tf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="tokenize a corpus, build its vocab, write token ids")
    p.add_argument("corpus", help="trec, imdb, imdb-unsup, or a path (.txt folder, .csv/.tsv)")
    p.add_argument("--out", required=True, help="directory to write")
    p.add_argument("--data", default=None, help="local mirror of the datasets")
    p.add_argument("--max-vocab", type=int, default=60000)
    p.add_argument("--min-freq", type=int, default=3)
    p.add_argument("--workers", type=int, default=None)
    p.set_defaults(func=_prepare)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"ulmfit-tf {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
