"""The `ulmfit-tf` command line."""

import argparse
import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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


def _load_documents(corpus, data, max_vocab, min_freq, workers=None):
    """(token id arrays, Vocab) from a `prepare` directory or a corpus name."""
    from ulmfit_tf.corpus import read_texts
    from ulmfit_tf.data import TokenFile
    from ulmfit_tf.text import Vocab, tokenize_corpus

    if os.path.isdir(corpus) and os.path.isfile(os.path.join(corpus, "vocab.txt")):
        vocab = Vocab.load(os.path.join(corpus, "vocab.txt"))
        tokens = TokenFile(os.path.join(corpus, "tokens"))
        return [np.asarray(tokens.ids[a:b]) for a, b in
                zip(tokens.offsets[:-1], tokens.offsets[1:])], vocab
    tokens = tokenize_corpus(read_texts(corpus, source=data).texts, num_workers=workers,
                             progress=True)
    vocab = Vocab.build(tokens, max_vocab=max_vocab, min_freq=min_freq)
    return [vocab.encode(t) for t in tokens], vocab


def _pretrain(args):
    from ulmfit_tf.training.language_model import (LanguageModelConfig, split_documents,
                                                   train_language_model)

    config = LanguageModelConfig(
        embedding_dim=args.embedding_dim, hidden_dim=args.hidden_dim, num_layers=args.layers,
        drop_mult=args.drop_mult, batch_size=args.batch_size, bptt=args.bptt,
        epochs=args.epochs, max_lr=args.lr, schedule=args.schedule,
        valid_fraction=args.valid_fraction, backwards=args.backwards, seed=args.seed)
    docs, vocab = _load_documents(args.corpus, args.data, args.max_vocab, args.min_freq)
    if args.max_tokens:
        kept, total = [], 0
        for doc in docs:
            if total >= args.max_tokens:
                break
            kept.append(doc[: args.max_tokens - total])
            total += len(kept[-1])
        docs = kept
    train, valid = split_documents(docs, config.valid_fraction, config.seed)
    _, summary = train_language_model(train, valid, vocab, config, args.out,
                                      verbose=1 if sys.stdout.isatty() else 2)
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}))


def _generate(args):
    import keras

    from ulmfit_tf.generation import generate
    from ulmfit_tf.text import Vocab

    model_path = os.path.join(args.run, "model.keras")
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"No model.keras in `run`={args.run!r}")
    import ulmfit_tf  # noqa: F401  (registers the classes)

    model = keras.saving.load_model(model_path)
    vocab = Vocab.load(os.path.join(args.run, "vocab.txt"))
    for sample in range(args.samples):
        kwargs = {"temperature": args.temperature}
        if args.sampler != "greedy":
            kwargs["seed"] = None if args.seed is None else args.seed + sample
        print(generate(model, vocab, args.prompt, args.max_new_tokens, args.sampler, **kwargs))


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

    p = sub.add_parser("pretrain", help="train an AWD-LSTM language model (ULMFiT stage 1)")
    p.add_argument("corpus", help="a `prepare` output directory, or a corpus as for prepare")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--data", default=None, help="local mirror of the datasets")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--embedding-dim", type=int, default=400)
    p.add_argument("--hidden-dim", type=int, default=1152)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--drop-mult", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--bptt", type=int, default=70)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--schedule", choices=["one_cycle", "stlr", "constant"], default="one_cycle")
    p.add_argument("--valid-fraction", type=float, default=0.05)
    p.add_argument("--max-tokens", type=int, default=None, help="use only this many tokens")
    p.add_argument("--max-vocab", type=int, default=60000)
    p.add_argument("--min-freq", type=int, default=3)
    p.add_argument("--backwards", action="store_true", help="train a backward LM")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_pretrain)

    p = sub.add_parser("generate", help="continue a prompt with a trained language model")
    p.add_argument("run", help="a pretrain run directory")
    p.add_argument("prompt")
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--sampler", choices=["greedy", "top_k", "top_p", "random"], default="top_k")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=_generate)
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
