"""Tokenizer throughput on IMDb train: ours against fastai's, same run.

    python bench/tokenizer_throughput.py [--data ../shared/data] [--docs 5000]

Both apply fastai's rules and special tokens; fastai splits words with
spaCy (its default `SpacyTokenizer`), ours with one regex. Prints tokens/s
with 1 process and with all CPUs, and the ratio ours / fastai. `--docs 0`
uses all 25,000 reviews.
"""

import argparse
import os
import time

from ulmfit_tf.data import load_imdb
from ulmfit_tf.text import tokenize_corpus


def fastai_tokenize(texts, workers):
    from fastai.text.all import SpacyTokenizer, tokenize_texts

    return tokenize_texts(texts, n_workers=workers, tok=SpacyTokenizer())


def ours(texts, workers):
    return tokenize_corpus(texts, num_workers=workers)


def timed(function, texts, workers):
    start = time.perf_counter()
    tokens = function(texts, workers)
    elapsed = time.perf_counter() - start
    return sum(map(len, tokens)), elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "shared", "data"))
    parser.add_argument("--docs", type=int, default=5000)
    args = parser.parse_args()
    texts = load_imdb("train", source=args.data).texts
    if args.docs:
        texts = texts[:args.docs]
    print(f"{len(texts)} IMDb train reviews, {sum(map(len, texts)) / 1e6:.1f}M characters")
    print("| processes | ours tokens/s | fastai (spaCy) tokens/s | ratio | tokens ours / fastai |")
    print("|---|---|---|---|---|")
    for workers in sorted({1, os.cpu_count()}):
        n_ours, t_ours = timed(ours, texts, workers)
        n_fastai, t_fastai = timed(fastai_tokenize, texts, workers)
        print(f"| {workers} | {n_ours / t_ours:,.0f} | {n_fastai / t_fastai:,.0f} | "
              f"{(n_ours / t_ours) / (n_fastai / t_fastai):.2f}x | "
              f"{n_ours:,} / {n_fastai:,} |", flush=True)


if __name__ == "__main__":
    main()
