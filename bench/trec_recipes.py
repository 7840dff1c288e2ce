"""TREC-6 test error of classifier recipes on one fine-tuned LM, same budget.

    python bench/trec_recipes.py --lm runs/demo/finetuned-lm [--epochs 8] [--data ../shared/data]

Arms: ULMFiT (gradual unfreezing + discriminative rates + STLR), the
pretrained encoder without gradual unfreezing, and the same architecture from
random weights (no unfreezing, one rate). One seed; run directories go to
runs/recipes/<arm>.
"""

import argparse
import os

from ulmfit_tf.cli import _encode, _labelled, _load_lm_run
from ulmfit_tf.training.classifier import ClassifierConfig, compare_on_test, split_labelled


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lm", required=True, help="a fine-tuned language-model run")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", default="runs/recipes")
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "shared", "data"))
    args = parser.parse_args()
    data, test = _labelled("trec", "train", args.data), _labelled("trec", "test", args.data)
    lm, vocab = _load_lm_run(args.lm)
    docs, test_docs = _encode(data.texts, vocab), _encode(test.texts, vocab)
    split = split_labelled(docs, data.labels, 0.1, 0)
    sizes = {"vocabulary_size": len(vocab), **{
        k: getattr(lm.encoder, k) for k in ("embedding_dim", "hidden_dim", "num_layers")}}
    arms = {
        "ulmfit": (lm, ClassifierConfig(epochs=args.epochs)),
        "pretrained_no_unfreezing": (lm, ClassifierConfig(epochs=args.epochs,
                                                          gradual_unfreezing=False)),
        "from_scratch": (sizes, ClassifierConfig(epochs=args.epochs, gradual_unfreezing=False,
                                                 discriminative_factor=None)),
    }
    reports = compare_on_test(arms, split, data.classes, vocab, test_docs, test.labels,
                              args.out)
    for name, report in reports.items():
        print(f"{name:26} test error {report['error_rate']:.1%}")


if __name__ == "__main__":
    main()
