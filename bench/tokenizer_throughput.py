"""Tokenizer throughput on IMDb train: ours against fastai's, same run.

    python bench/tokenizer_throughput.py [--data ../shared/data] [--docs 5000]
    python bench/tokenizer_throughput.py --docs 0 --ours-only

Both apply fastai's rules and special tokens; fastai splits words with
spaCy (its default `SpacyTokenizer`), ours with one regex. Prints tokens/s
with 1 process and with all CPUs, and the ratio ours / fastai. `--docs 0`
uses all 25,000 reviews. `--ours-only` compares our ways of using several
CPUs instead: one process, worker processes (what `tokenize_corpus` does)
and threads of this process (the GIL serialises the Python parts).
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


def threads(texts, workers):
    import concurrent.futures

    from ulmfit_tf.text import tokenize

    chunks = [texts[i:i + 1000] for i in range(0, len(texts), 1000)]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return [t for chunk in pool.map(lambda c: [tokenize(x) for x in c], chunks)
                for t in chunk]


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
    parser.add_argument("--ours-only", action="store_true")
    args = parser.parse_args()
    texts = load_imdb("train", source=args.data).texts
    if args.docs:
        texts = texts[:args.docs]
    print(f"{len(texts)} IMDb train reviews, {sum(map(len, texts)) / 1e6:.1f}M characters")
    if args.ours_only:
        workers = os.cpu_count()
        print("| how | tokens/s |\n|---|---|")
        for name, function, n in (("1 process", ours, 1),
                                  (f"{workers} worker processes", ours, workers),
                                  (f"{workers} threads", threads, workers)):
            count, elapsed = timed(function, texts, n)
            print(f"| {name} | {count / elapsed:,.0f} |", flush=True)
        return
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
