"""`prepare` in bounded memory: texts -> tokens -> ids on disk in one pass.

A corpus such as WikiText-103 (103M tokens, 540 MB of text) hardly fits in
memory as Python token lists (about 130 bytes a token, measured on
general-en: docs/PERFORMANCE.md). The texts stream through the tokenizer
workers a chunk at a time; each token gets a provisional id the first time
it is seen (one dict of the distinct tokens) and the ids go to disk as they
come, counted on the way. Once the corpus has
been read, the vocabulary is built from the counts (the same `Vocab.build`
rules) and the provisional file is mapped to the final ids block by block.
Memory holds the distinct tokens, their counts and a few chunks, whatever
the corpus' length.
"""

import functools
import itertools
import os
import resource
import time

import numpy as np

from ulmfit_tf.data.lm_stream import TokenFile
from ulmfit_tf.text import Vocab
from ulmfit_tf.text.tokenizer import _progress_bar, _tokenize_chunk, map_in_workers
from ulmfit_tf.utils import atomic_write

_REMAP_BLOCK = 1 << 24  # tokens mapped at a time (64 MB of int32)


def _chunks(texts, chunk_size):
    texts = iter(texts)
    index = 0
    while True:
        chunk = list(itertools.islice(texts, chunk_size))
        if not chunk:
            return
        for i, text in enumerate(chunk):
            if not isinstance(text, str):
                raise TypeError(f"`texts` must hold only str. Received item {index + i}: "
                                f"{text!r} of type {type(text).__name__}")
        index += len(chunk)
        yield chunk


def prepare_token_file(texts, path, max_vocab=60000, min_freq=3, num_workers=None,
                       chunk_size=1000, progress=False, split_contractions=False):
    """Tokenizes `texts` into a `TokenFile` at `path` with a vocabulary built
    from them, holding only a few chunks of the corpus in memory.

    Args:
        texts: an iterable of str (a generator is read once, as it goes).
        path: the `TokenFile` base path to write (``<path>.ids``,
            ``<path>.offsets.npy``); a provisional ``<path>.provisional.*``
            pair is written beside it and removed.
        max_vocab, min_freq: as `Vocab.build`.
        num_workers: tokenizer processes; default all CPUs, or 1 when the
            corpus is a single chunk.
        chunk_size: texts sent to a worker at a time.
        progress: show a progress bar (documents).
        split_contractions: the tokenizer's contraction rule (`tokenize`),
            recorded in the vocabulary.

    Returns:
        (`TokenFile`, `Vocab`, metrics dict: documents, tokens, distinct
        tokens, seconds, tokens per second and the peak resident memory of
        this process and of its tokenizer workers).
    """
    start = time.perf_counter()
    chunks = _chunks(texts, chunk_size)
    first = list(itertools.islice(chunks, 2))
    if not first:
        raise ValueError("`texts` is empty: cannot build a vocabulary from an empty corpus.")
    if num_workers is None:
        num_workers = os.cpu_count() if len(first) > 1 else 1
    if not isinstance(num_workers, int) or num_workers < 1:
        raise ValueError(f"`num_workers` must be an int >= 1. Received: {num_workers!r}")
    provisional_ids = {}
    counts = np.zeros(1024, np.int64)
    bar = _progress_bar(None, "tokenizing", progress)

    def provisional_docs():
        nonlocal counts
        tokenize_chunk = functools.partial(_tokenize_chunk,
                                           split_contractions=split_contractions)
        tokenized = map_in_workers(tokenize_chunk, itertools.chain(first, chunks), num_workers)
        for chunk in tokenized:
            docs = []
            for tokens in chunk:
                docs.append(np.fromiter(
                    (provisional_ids.setdefault(t, len(provisional_ids)) for t in tokens),
                    np.int32, len(tokens)))
            if len(provisional_ids) > len(counts):
                counts = np.concatenate([counts, np.zeros(len(provisional_ids) + len(counts),
                                                          np.int64)])
            counts += np.bincount(np.concatenate(docs) if docs else np.zeros(0, np.int32),
                                  minlength=len(counts))
            bar.update(len(chunk))
            yield from docs

    path = os.fspath(path)
    provisional = TokenFile.write(path + ".provisional", provisional_docs())
    bar.close()
    tokens = list(provisional_ids)  # in provisional id order
    vocab = Vocab.from_counts(dict(zip(tokens, counts[:len(tokens)].tolist())),
                              max_vocab=max_vocab, min_freq=min_freq,
                              split_contractions=split_contractions)
    mapping = np.array(vocab.encode(tokens), np.int32)
    with atomic_write(path + ".ids", "wb") as f:
        for begin in range(0, provisional.num_tokens, _REMAP_BLOCK):
            f.write(mapping[provisional.ids[begin:begin + _REMAP_BLOCK]].tobytes())
        with atomic_write(path + ".offsets.npy", "wb") as g:
            np.save(g, provisional.offsets)
    del provisional
    _remove(path + ".provisional")
    token_file = TokenFile(path)
    seconds = time.perf_counter() - start
    metrics = {
        "documents": len(token_file), "tokens": token_file.num_tokens,
        "distinct_tokens": len(tokens), "vocab_size": len(vocab),
        "tokenize_seconds": round(seconds, 2),
        "tokens_per_second": round(token_file.num_tokens / max(seconds, 1e-9)),
        # Linux reports kilobytes; the workers' peak is the largest one's.
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "workers_peak_rss_mb": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }
    return token_file, vocab, metrics


def _remove(token_file_path):
    for suffix in (".ids", ".offsets.npy"):
        os.remove(token_file_path + suffix)
