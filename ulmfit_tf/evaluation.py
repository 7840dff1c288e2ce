"""Classification metrics and their plots."""

import numpy as np

from ulmfit_tf.training.run_dir import save_figure


def classification_report(labels, probabilities, classes):
    """Accuracy, error rate, per-class precision/recall/F1, confusion matrix.

    Args:
        labels: int array [N] of true classes.
        probabilities: [N, C] predicted probabilities.
        classes: class names, index = label.
    """
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(classes):
        raise ValueError(f"`probabilities` must be [N, {len(classes)}]. Received shape "
                         f"{probabilities.shape}")
    if len(labels) != len(probabilities):
        raise ValueError(f"`labels` has {len(labels)} items, `probabilities` "
                         f"{len(probabilities)}.")
    predicted = probabilities.argmax(1)
    n = len(classes)
    confusion = np.zeros((n, n), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {}
    for c, name in enumerate(classes):
        tp = confusion[c, c]
        precision = tp / max(confusion[:, c].sum(), 1)
        recall = tp / max(confusion[c].sum(), 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        per_class[name] = {"precision": float(precision), "recall": float(recall),
                           "f1": float(f1), "support": int(confusion[c].sum())}
    accuracy = float((predicted == labels).mean()) if len(labels) else float("nan")
    # As scikit-learn: a class neither in the labels nor predicted (a rare
    # class missing from a test sample) does not pull the mean to zero.
    seen = (confusion.sum(0) + confusion.sum(1)) > 0
    f1s = [m["f1"] for m, s in zip(per_class.values(), seen) if s]
    return {"accuracy": accuracy, "error_rate": 1 - accuracy,
            "macro_f1": float(np.mean(f1s)) if f1s else float("nan"),
            "per_class": per_class, "confusion_matrix": confusion.tolist(),
            "classes": list(classes), "count": int(len(labels))}


def plot_confusion_matrix(report, path, title="confusion matrix"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.array(report["confusion_matrix"])
    classes = report["classes"]
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(classes), 1 + 0.6 * len(classes)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center",
                color="white" if value > matrix.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title} (error {report['error_rate']:.1%})")
    save_figure(fig, path)
