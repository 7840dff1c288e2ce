"""Peak memory and time of the exported classifier at its request limits.

    python bench/serving_limits.py [--lm saved_models/general-en-base-e4] [--out /tmp/limits]

Exports a classifier built on the given language model (head untrained: the
cost does not depend on the weights) with the default limits, then, in a
fresh process per request that loads only the SavedModel (as a server
would), sends one request and reports the peak resident memory (ru_maxrss)
after loading and after the request, and the request's time:

- a baseline of 8 TREC-length questions;
- at the token limit: 64 texts of one-letter words, texts x longest just
  under max_request_tokens;
- near both limits: 64 texts of prose (about 4 characters a token);
- the same characters of punctuation, one token each (refused by the token
  limit: what it costs to refuse);
- what the issue measured without limits: 64 texts of 100,000 characters
  (refused by the character limit).
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

from ulmfit_tf.cli import DEFAULT_PRETRAINED, _load_lm_run
from ulmfit_tf.export import (DEFAULT_MAX_REQUEST_CHARS, DEFAULT_MAX_REQUEST_TOKENS,
                              export_classifier)

CHILD = r"""
import json, resource, sys, time
import tensorflow as tf
texts = json.load(open(sys.argv[2]))
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
serve(text=tf.constant(["warm up ?"]))
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
try:
    serve(text=tf.constant(texts))
    outcome = "served"
except tf.errors.InvalidArgumentError as e:
    outcome = "refused: " + next((l for l in e.message.splitlines() if "more than" in l),
                                 e.message)[:60]
print(json.dumps({"loaded_mb": loaded, "peak_mb":
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": time.perf_counter() - start, "outcome": outcome}))
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lm", default=DEFAULT_PRETRAINED)
    parser.add_argument("--out", default="/tmp/ulmfit-serving-limits")
    args = parser.parse_args()

    from ulmfit_tf.models import AWDLSTMClassifier

    lm, vocab = _load_lm_run(args.lm)
    model = AWDLSTMClassifier.from_language_model(lm, 6)
    model(np.full((1, 4), 2, np.int32))  # build
    path = export_classifier(model, vocab, [str(i) for i in range(6)], args.out,
                             overwrite=True, version=1)
    per_text_tokens = DEFAULT_MAX_REQUEST_TOKENS // 64 - 2  # xxbos, and a margin
    per_text_bytes = DEFAULT_MAX_REQUEST_CHARS // 64 - 100
    # About 4 characters a token: 29,000 characters are about 7,400 tokens,
    # so 64 of them come close to both limits.
    prose = ("The film was long , but the acting was good . " * 1000)[:29_000]
    cases = {
        "8 questions": ["Who wrote the novel Hamlet ?"] * 8,
        # Alternating, so that no word repeats (xxwrep would fold a run).
        f"64 x {per_text_tokens:,} one-letter words (at the token limit)":
            ["a b " * (per_text_tokens // 2)] * 64,
        "64 x 29,000 characters of prose (near both limits)": [prose] * 64,
        f"64 x {per_text_bytes:,} punctuation characters": [".,;:" * (per_text_bytes // 4)] * 64,
        "64 x 100,000 characters": ["word " * 20_000] * 64,
    }
    print(f"SavedModel {path}; limits: {DEFAULT_MAX_REQUEST_CHARS:,} bytes, "
          f"{DEFAULT_MAX_REQUEST_TOKENS:,} token steps per request")
    print("| request | outcome | peak RSS after load | peak RSS after request | seconds |")
    print("|---|---|---|---|---|")
    for name, texts in cases.items():
        texts_path = os.path.join(args.out, "texts.json")
        with open(texts_path, "w") as f:
            json.dump(texts, f)
        result = subprocess.run([sys.executable, "-c", CHILD, path, texts_path],
                                capture_output=True, text=True,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        if result.returncode:
            print(f"| {name} | failed: {result.stderr[-300:]} | | | |")
            continue
        r = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"| {name} | {r['outcome']} | {r['loaded_mb']:.0f} MB | {r['peak_mb']:.0f} MB | "
              f"{r['seconds']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
