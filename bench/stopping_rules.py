"""Which epoch should a classifier run end with? Each stopping rule's epoch on a dev set.

    python bench/stopping_rules.py --out runs/baselines --task imdb --seed 0

Trains the default classifier (`train-classifier`'s settings, or those of
``--classifier-flags``) on the files of `bench/classic_baselines.py` for all
its epochs, without early stopping, from the task's fine-tuned LM
(``{out}/{task}/lm``), and after each epoch scores a dev set that takes no
part in training or stopping (IMDb: ``dev.tsv``, 2,000 reviews outside the
labelled ones). Training does not depend on when it would have stopped, so
one run says where each stopping rule would end; the weights of every epoch
are kept, and the dev set scores the epochs the rules end with:

- ``val_loss``: the lowest validation loss, stopping after `patience`
  epochs without a lower one (the default, as Keras' EarlyStopping);
- ``val_error``: the lowest validation error (ties: the lower loss);
- ``val_loss, no patience``: the lowest validation loss of all epochs;
- ``last``: no early stopping.

For tasks without a dev file, ``--dev-from-train N`` holds N random texts of
the training file out as the dev set (the classifier then trains on fewer).
Writes ``{out}/{task}/stopping-s{seed}.json`` and prints a table.
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from classic_baselines import DEFAULT_DATA, write_task  # noqa: E402


def stopping_epoch(history, key, patience, tie_key=None):
    """The 1-based epoch a rule ends with: the best `key` (lower is better;
    ties go to the lower `tie_key`) among the epochs it would have run."""
    best = None
    for epoch in range(len(history[key])):
        score = (history[key][epoch], history[tie_key][epoch] if tie_key else 0)
        if best is None or score < best[0]:
            best = (score, epoch)
        elif patience is not None and epoch - best[1] >= patience:
            break
    return best[1] + 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/baselines")
    parser.add_argument("--task", default="imdb")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--dev", default="dev.tsv", help="in the task's folder")
    parser.add_argument("--dev-from-train", type=int, default=None, metavar="N",
                        help="hold out N random texts of train.tsv as the dev set and "
                             "train on the rest (for tasks without a dev.tsv)")
    parser.add_argument("--classifier-flags", default="")
    parser.add_argument("--patience", type=int, default=3, help="of the simulated rules")
    parser.add_argument("--all-epochs", action="store_true",
                        help="score every epoch on the dev set, not only the rules' ends")
    args = parser.parse_args()

    import dataclasses

    import keras
    import numpy as np

    from ulmfit_tf.cli import _classifier_config, _encode, _load_lm_run, build_parser
    from ulmfit_tf.data import load_csv
    from ulmfit_tf.evaluation import classification_report
    from ulmfit_tf.training.classifier import (predict_probabilities, split_labelled,
                                               train_classifier)

    folder = os.path.join(args.out, args.task)
    write_task(args.task, args.data, folder)
    train_path, dev_path = (os.path.join(folder, f) for f in ("train.tsv", args.dev))
    run = os.path.join(folder, f"stopping-s{args.seed}"
                       + (f"-dev{args.dev_from_train}" if args.dev_from_train else ""))
    cli = build_parser().parse_args(
        ["train-classifier", train_path, "--lm", os.path.join(folder, "lm"), "--out", run,
         "--seed", str(args.seed), *args.classifier_flags.split()])
    # Every epoch, so that each rule's end can be read off.
    config = dataclasses.replace(_classifier_config(cli), patience=None)
    source, vocab = _load_lm_run(cli.lm, "--lm")
    train = load_csv(train_path)
    if args.dev_from_train:
        order = np.random.default_rng(1000 + args.seed).permutation(len(train.texts))
        dev = train.subset(np.sort(order[:args.dev_from_train]))
        train = train.subset(np.sort(order[args.dev_from_train:]))
    else:
        dev = load_csv(dev_path, classes=train.classes)
    weights = os.path.join(run, "epochs")
    os.makedirs(weights, exist_ok=True)

    class SaveEachEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            classifier = getattr(self.model, "classifier", self.model)  # a TextClassifier's
            classifier.save_weights(os.path.join(weights, f"{epoch + 1}.weights.h5"))

    split = split_labelled(_encode(train.texts, vocab), train.labels, config.valid_fraction,
                           config.seed)
    model, summary = train_classifier(source, *split, train.classes, vocab, config, run,
                                      verbose=2, extra_callbacks=[SaveEachEpoch()])
    history = summary["history"]
    history["val_error"] = [1 - a for a in history["val_accuracy"]]
    rules = {
        "val_loss": stopping_epoch(history, "val_loss", args.patience),
        "val_error": stopping_epoch(history, "val_error", args.patience, "val_loss"),
        "val_loss, no patience": stopping_epoch(history, "val_loss", None),
        "last": len(history["loss"]),
    }
    # Scoring the dev set costs minutes an epoch: the rules' epochs first.
    epochs = sorted(set(rules.values()))
    if args.all_epochs:
        epochs += [e for e in range(1, len(history["loss"]) + 1) if e not in epochs]
    dev_docs = _encode(dev.texts, vocab)
    dev_errors = {}
    for epoch in epochs:
        model.load_weights(os.path.join(weights, f"{epoch}.weights.h5"))
        report = classification_report(dev.labels, predict_probabilities(model, dev_docs),
                                       train.classes)
        dev_errors[epoch] = report["error_rate"]
        print(f"epoch {epoch}: dev error {report['error_rate']:.2%}", flush=True)
    result = {"task": args.task, "seed": args.seed, "flags": args.classifier_flags,
              "patience": args.patience, "dev_error": dev_errors,
              "val_error": history["val_error"], "val_loss": history["val_loss"],
              "train_accuracy": history["accuracy"],
              "rules": {name: {"epoch": e, "dev_error": dev_errors[e]}
                        for name, e in rules.items()}}
    with open(run + ".json", "w") as f:
        json.dump(result, f, indent=1)
    print("| epoch | train acc | val loss | val error | dev error |\n|---|---|---|---|---|")
    for e in range(len(history["loss"])):
        dev_error = f"{dev_errors[e + 1]:.1%}" if e + 1 in dev_errors else "-"
        print(f"| {e + 1} | {history['accuracy'][e]:.3f} | {history['val_loss'][e]:.3f} | "
              f"{history['val_error'][e]:.1%} | {dev_error} |")
    for name, r in result["rules"].items():
        print(f"{name}: epoch {r['epoch']}, dev error {r['dev_error']:.2%}")


if __name__ == "__main__":
    main()
