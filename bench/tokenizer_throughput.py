"""Python tokenizer throughput on IMDb train (25,000 reviews).

    python bench/tokenizer_throughput.py [--data ../shared/data]

Prints tokens/s with 1 process and with all CPUs, measured in the same run.
"""

import argparse
import os
import time

from ulmfit_tf.data import load_imdb
from ulmfit_tf.text import tokenize_corpus


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "shared", "data"))
    args = parser.parse_args()
    texts = load_imdb("train", source=args.data).texts
    for workers in sorted({1, os.cpu_count()}):
        start = time.perf_counter()
        tokens = tokenize_corpus(texts, num_workers=workers)
        elapsed = time.perf_counter() - start
        n = sum(map(len, tokens))
        print(f"workers={workers}: {n:,} tokens in {elapsed:.2f} s = {n / elapsed:,.0f} tokens/s")


if __name__ == "__main__":
    main()
