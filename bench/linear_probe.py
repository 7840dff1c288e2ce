"""How much of a task a language model's features already hold: a linear probe.

    python bench/linear_probe.py --out runs/baselines --tasks trec,sms,imdb \
        --lms saved_models/general-en-base-e4,runs/baselines/{task}/lm

For each task (the files of `bench/classic_baselines.py`, written there if
missing) and each language-model run, the encoder is frozen and every text
is turned into two feature vectors:

- ``embedding``: the mean of the input embeddings of its tokens (a bag of
  the LM's word vectors; no LSTM);
- ``concat_pool``: what the classifier head sees at its start: BPT3C over
  the text, then [last, max, mean] of the top LSTM's outputs.

A logistic regression on standardised features (C chosen by 5-fold
cross-validation on the training split) is scored on the test split. It
costs one forward pass (a minute or two a task on 2 cores, against
15-60 minutes for a classifier run), so it can compare LM checkpoints on
every task; it says what the frozen representation holds, not what
fine-tuning reaches. ``{task}`` in an LM path is replaced by the task's name
(for the LMs that `classic_baselines.py` fine-tuned).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from classic_baselines import DEFAULT_DATA, TASKS, write_task  # noqa: E402

CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


def features(run, *text_sets):
    """For each list of texts: (embedding bag [N, E], concat pool [N, 3E],
    share of xxunk tokens), the LM loaded once."""
    import tensorflow as tf

    from ulmfit_tf.cli import _encode, _load_lm_run
    from ulmfit_tf.data import ClassificationBatches
    from ulmfit_tf.models.classifier import AWDLSTMClassifier
    from ulmfit_tf.text.rules import UNK_ID
    from ulmfit_tf.training.classifier import _similar_lengths

    lm, vocab = _load_lm_run(run)
    classifier = AWDLSTMClassifier.from_language_model(lm, 2)
    table = lm.embedding.embeddings.numpy()
    encode = tf.function(lambda ids: classifier.encode(ids, training=False),
                         reduce_retracing=True)
    for texts in text_sets:
        docs = _encode(texts, vocab)
        bag = np.stack([table[d].mean(0) if len(d) else np.zeros(table.shape[1])
                        for d in docs])
        batches = ClassificationBatches(docs, None, 64, shuffle=False)
        order = batches.order()
        pooled = [encode(tf.convert_to_tensor(batches.padded(order[rows]))).numpy()
                  for rows in _similar_lengths(batches.lengths[order], 64)]
        unk = float(np.mean(np.concatenate(docs) == UNK_ID))
        yield bag, batches.unsort(np.concatenate(pooled)), unk


def probe(train_x, train_y, test_x, test_y):
    """(cross-validated error, C, test error) of a logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def model(c):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))

    scores = [(cross_val_score(model(c), train_x, train_y, cv=5).mean(), c) for c in CS]
    accuracy, c = max(scores)
    fitted = model(c).fit(train_x, train_y)
    return 1 - accuracy, c, 1 - fitted.score(test_x, test_y)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="classic_baselines.py's folder")
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--lms", required=True, help="comma-separated LM run directories")
    args = parser.parse_args()
    from ulmfit_tf.data import load_csv
    from ulmfit_tf.training.run_dir import write_json

    results_path = os.path.join(args.out, "linear-probe.json")
    results = json.load(open(results_path)) if os.path.exists(results_path) else {}
    print("| task | LM | xxunk | features | CV error | test error | seconds |")
    print("|---|---|---|---|---|---|---|")
    for task in args.tasks.split(","):
        folder = os.path.join(args.out, task)
        write_task(task, args.data, folder)
        train = load_csv(os.path.join(folder, "train.tsv"))
        test = load_csv(os.path.join(folder, "test.tsv"), classes=train.classes)
        for lm in args.lms.split(","):
            run = lm.replace("{task}", task)
            start = time.perf_counter()
            (*train_x, unk), (*test_x, _) = features(run, train.texts, test.texts)
            seconds = time.perf_counter() - start
            for name, x, xt in zip(("embedding", "concat_pool"), train_x, test_x):
                cv_error, c, test_error = probe(x, train.labels, xt, test.labels)
                results.setdefault(task, {}).setdefault(run, {})[name] = {
                    "cv_error": cv_error, "C": c, "test_error": test_error,
                    "train_xxunk": unk, "feature_seconds": seconds}
                print(f"| {task} | {run} | {unk:.1%} | {name} | {cv_error:.1%} "
                      f"| {test_error:.1%} | {seconds:.0f} |", flush=True)
    write_json(results_path, results)


if __name__ == "__main__":
    main()
