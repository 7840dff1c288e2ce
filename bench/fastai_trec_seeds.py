"""fastai's TREC-6 arm on several seeds: errors, and how much the seeds' models differ.

    python bench/fastai_trec_seeds.py --lm runs/trec-lm [--seeds 0,1,2]

Remaps the bundled default LM (`--pretrained`) to the TREC vocabulary of the given
fine-tuned LM run, then runs `fastai_trec.fastai_arm` (fastai's LM
fine-tuning, 4 epochs, and tutorial classifier recipe, 8 epochs) for each
seed on that seed's train/valid split, and prints each seed's test error
and how many test questions each pair of seeds' classifiers label
differently. Written to look into the ablation's identical 13.0% per seed
(docs/RESULTS.md, section 2).
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # fastai_trec

from fastai_trec import fastai_arm  # noqa: E402

from ulmfit_tf.cli import DEFAULT_PRETRAINED, _encode, _labelled, _load_lm_run  # noqa: E402
from ulmfit_tf.training.classifier import split_labelled  # noqa: E402
from ulmfit_tf.training.transfer import remap_language_model  # noqa: E402


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser()
    parser.add_argument("--lm", required=True, help="a fine-tuned LM run (for its vocabulary)")
    parser.add_argument("--pretrained", default=DEFAULT_PRETRAINED)
    parser.add_argument("--data", default=os.path.join(root, "..", "shared", "data"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default="/tmp/fastai-trec-seeds")
    args = parser.parse_args()

    data, test = _labelled("trec", "train", args.data), _labelled("trec", "test", args.data)
    _, vocab = _load_lm_run(args.lm)
    base, base_vocab = _load_lm_run(args.pretrained)
    docs, test_docs = _encode(data.texts, vocab), _encode(test.texts, vocab)
    predictions = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        pretrained, _ = remap_language_model(base, base_vocab, vocab)
        split = split_labelled(docs, data.labels, 0.1, seed)
        error, predictions[seed] = fastai_arm(
            pretrained, vocab, split, test_docs, test.labels, len(data.classes), seed, 4, 8,
            os.path.join(args.out, f"seed{seed}"), return_predictions=True)
        wrong = int((predictions[seed] != test.labels).sum())
        print(f"seed {seed}: test error {error:.3f} ({wrong} of {len(test.labels)} wrong)",
              flush=True)
    seeds = sorted(predictions)
    for i, a in enumerate(seeds):
        for b in seeds[i + 1:]:
            differ = int((predictions[a] != predictions[b]).sum())
            print(f"seeds {a} and {b}: {differ} test questions labelled differently")


if __name__ == "__main__":
    main()
