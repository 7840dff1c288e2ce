"""Classifier inference docs/s: float32 at batch 64 and 128, mixed_bfloat16 at 64.

    python bench/inference_variants.py [--docs 300] [--repeats 2]

The model and reviews of `bench/classifier_speed.py inference` (the paper's
classifier, random weights, IMDb test reviews); every variant runs
`--repeats` times, interleaved, in one process.
"""

import argparse
import os
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import classifier_speed  # noqa: E402

from ulmfit_tf.training.classifier import predict_probabilities  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "shared", "data"))
    args = parser.parse_args()
    docs = classifier_speed.imdb_ids(args.data, args.docs)
    print(f"{len(docs)} reviews, {sum(map(len, docs))} tokens")
    models = {"float32": classifier_speed.ours_model()}
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        models["mixed_bfloat16"] = classifier_speed.ours_model()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for model in models.values():
        predict_probabilities(model, docs[:64])  # build and trace
    models["mixed_bfloat16"].set_weights(models["float32"].get_weights())
    gap = np.abs(predict_probabilities(models["float32"], docs[:64])
                 - predict_probabilities(models["mixed_bfloat16"], docs[:64])).max()
    print(f"largest probability difference, bfloat16 vs float32: {gap:.2e}")
    variants = (("float32", 64), ("float32", 128), ("mixed_bfloat16", 64))
    rates = {variant: [] for variant in variants}
    for _ in range(args.repeats):
        for name, batch in variants:
            start = time.perf_counter()
            predict_probabilities(models[name], docs, batch_size=batch)
            rates[(name, batch)].append(len(docs) / (time.perf_counter() - start))
    for (name, batch), values in rates.items():
        print(f"{name:15} batch {batch:3}: " + ", ".join(f"{v:.1f}" for v in values) + " docs/s")


if __name__ == "__main__":
    main()
