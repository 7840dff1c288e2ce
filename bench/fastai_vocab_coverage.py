"""How well our tokenizer fits a vocabulary built by fastai's (spaCy) tokenizer.

    python bench/fastai_vocab_coverage.py [--docs 2000] [--data ../shared/data]

fastai's published WT103 vocabulary (``itos_wt103.pkl``) comes from spaCy's
English rules with fastai's pre/post rules; ours are regex rules of the same
family. A model converted from fastai (``--pretrained wt103-fwd``) is fed our
tokens, so every token fastai's vocabulary holds and our tokenizer never
produces is a row of the embedding that is never used, and every running
token of ours that fastai's vocabulary lacks becomes ``xxunk``. Without the
real WT103 vocabulary here, the vocabulary is built by fastai on a seeded
subset of IMDb's training reviews (fastai's `make_vocab`, min_freq 3), and the
same reviews are tokenized by fastai and by ours, with and without the
contraction rule (``split_contractions``, what a converted fastai vocabulary
uses). Prints the counts and the most frequent fastai tokens we never produce.
"""

import argparse
import collections
import os
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    from fastai.text.all import make_vocab, tokenize_texts

    from ulmfit_tf.data import load_imdb
    from ulmfit_tf.text import tokenize_corpus

    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    args = parser.parse_args()
    reviews = load_imdb("train", source=args.data).texts
    chosen = np.random.default_rng(0).permutation(len(reviews))[:args.docs]
    texts = [reviews[i] for i in sorted(chosen)]

    start = time.perf_counter()
    theirs = [list(t) for t in tokenize_texts(texts, n_workers=1)]
    fastai_seconds = time.perf_counter() - start
    fastai_vocab = make_vocab(collections.Counter(t for doc in theirs for t in doc),
                              min_freq=3, max_vocab=60000)
    known = set(fastai_vocab)
    their_counts = collections.Counter(t for doc in theirs for t in doc)
    their_running = sum(their_counts.values())
    real = [t for t in fastai_vocab if not t.startswith("xxfake")]
    their_unk = sum(c for t, c in their_counts.items() if t not in known)
    print(f"{len(texts)} IMDb reviews: fastai {their_running:,} tokens ({fastai_seconds:.0f} s); "
          f"fastai vocabulary {len(real):,} tokens; fastai's own running tokens outside it "
          f"{their_unk / their_running:.2%}")
    for split_contractions in (False, True):
        start = time.perf_counter()
        ours = tokenize_corpus(texts, num_workers=1, split_contractions=split_contractions)
        our_seconds = time.perf_counter() - start
        our_counts = collections.Counter(t for doc in ours for t in doc)
        never = [t for t in real if t not in our_counts]
        our_running = sum(our_counts.values())
        our_unk = sum(c for t, c in our_counts.items() if t not in known)
        same_docs = sum(a == list(b) for a, b in zip(ours, theirs))
        print(f"\nours, split_contractions={split_contractions}: {our_running:,} tokens "
              f"({our_seconds:.0f} s); {same_docs} of {len(texts)} reviews tokenized exactly "
              f"as fastai does")
        print(f"  we never produce {len(never):,} ({len(never) / len(real):.1%}) of fastai's "
              f"vocabulary, {sum(their_counts[t] for t in never) / their_running:.2%} of "
              f"fastai's running tokens")
        print(f"  our running tokens outside the fastai vocabulary (-> xxunk): "
              f"{our_unk / our_running:.2%}")
        print("  most frequent fastai tokens we never produce:",
              sorted(never, key=lambda t: -their_counts[t])[:25])


if __name__ == "__main__":
    main()
