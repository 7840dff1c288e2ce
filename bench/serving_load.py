"""The exported classifier under load: 8 threads x 200 requests of mixed lengths.

    python bench/serving_load.py --export exported/trec/1 [--data ../shared/data]

Each request is one text: a TREC question, or an IMDb review (up to ~2,500
words), chosen at random. Checks that the threaded results equal serial ones,
then prints requests/s and per-request latency percentiles, serial and
threaded, measured in the same run.
"""

import argparse
import os
import threading
import time

import numpy as np
import tensorflow as tf

from ulmfit_tf.data import load_imdb, load_trec


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--export", required=True, help="<model base path>/<version>")
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "shared", "data"))
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200, help="per thread")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    questions = load_trec("test", source=args.data).texts
    reviews = load_imdb("test", source=args.data).texts[:2000]
    texts = [questions[rng.integers(len(questions))] if rng.random() < 0.5
             else reviews[rng.integers(len(reviews))]
             for _ in range(args.threads * args.requests)]
    serve = tf.saved_model.load(args.export).signatures["serving_default"]
    serve(text=tf.constant(texts[:2]))  # warm up

    def call(text):
        start = time.perf_counter()
        out = serve(text=tf.constant([text]))["probabilities"].numpy()
        return out, time.perf_counter() - start

    start = time.perf_counter()
    serial = [call(t) for t in texts]
    serial_seconds = time.perf_counter() - start

    threaded = [None] * len(texts)

    def worker(k):
        for i in range(k, len(texts), args.threads):
            threaded[i] = call(texts[i])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.threads)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    threaded_seconds = time.perf_counter() - start

    worst = max(float(np.abs(a[0] - b[0]).max()) for a, b in zip(serial, threaded))
    print(f"{len(texts)} requests, {args.threads} threads; max |threaded - serial| = {worst:.2e}")
    for name, results, seconds in (("serial", serial, serial_seconds),
                                   (f"{args.threads} threads", threaded, threaded_seconds)):
        latency = np.array([r[1] for r in results]) * 1000
        print(f"{name}: {len(texts) / seconds:.1f} requests/s, latency p50 "
              f"{np.percentile(latency, 50):.1f} ms, p99 {np.percentile(latency, 99):.1f} ms")


if __name__ == "__main__":
    main()
