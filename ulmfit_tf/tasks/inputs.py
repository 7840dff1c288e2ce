"""Checks and conversions of what users pass to the text tasks' fit/predict."""

import numpy as np
import tensorflow as tf


def check_texts(texts, arg_name="x"):
    """`texts` as a list of str: a list, tuple or 1-D array of str (or UTF-8
    bytes). One str is refused, since it is one text, not a batch of them."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"`{arg_name}` must be a list of strings, not a single string "
                        f"(wrap it in a list). Received: {texts[:50]!r}")
    if isinstance(texts, tf.Tensor):
        texts = texts.numpy()
    if isinstance(texts, np.ndarray):
        if texts.ndim != 1:
            raise ValueError(f"`{arg_name}` must be 1-D (one string per text). "
                             f"Received an array of shape {texts.shape}")
        texts = texts.tolist()
    if not isinstance(texts, (list, tuple)):
        raise TypeError(f"`{arg_name}` must be a list, tuple or 1-D array of strings, or a "
                        f"tf.data.Dataset. Received: {type(texts).__name__}")
    if not texts:
        raise ValueError(f"`{arg_name}` is empty: there are no texts. Received: {texts!r}")
    out = []
    for i, text in enumerate(texts):
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        if not isinstance(text, str):
            raise TypeError(f"`{arg_name}` must hold strings. Received {text!r} of type "
                            f"{type(text).__name__} at index {i}")
        out.append(text)
    return out


def check_labels(labels, class_names, task, count, arg_name="y"):
    """Labels as the arrays the classifier's loss takes.

    single_label: class names or int ids -> int32 [N]; multi_label: lists of
    class names, or a 0/1 array [N, C] -> float32 [N, C]; regression: numbers
    -> float32 [N].
    """
    if labels is None:
        raise ValueError(f"`{arg_name}` is missing: fit and evaluate need labels.")
    if isinstance(labels, tf.Tensor):
        labels = labels.numpy()
    if isinstance(labels, (str, bytes)) or not hasattr(labels, "__len__"):
        raise TypeError(f"`{arg_name}` must be a list or array of labels. "
                        f"Received: {labels!r}")
    if len(labels) != count:
        raise ValueError(f"`x` and `{arg_name}` must have the same length. Received "
                         f"{count} texts and {len(labels)} labels.")
    if task == "regression":
        try:
            return np.asarray(labels, np.float32).reshape(count)
        except (TypeError, ValueError):
            raise ValueError(f"`{arg_name}` must hold numbers for a regression task. "
                             f"Received: {list(labels)[:5]!r}...") from None
    index = {name: i for i, name in enumerate(class_names)}
    if task == "multi_label":
        array = np.asarray(labels, dtype=object) if len(labels) else np.zeros((0,))
        if array.ndim == 2 and all(isinstance(v, (int, float, np.number, bool, np.bool_))
                                   for v in array.ravel()):
            array = array.astype(np.float32)
            if array.shape[1] != len(class_names) or not np.isin(array, (0, 1)).all():
                raise ValueError(f"`{arg_name}` as an array must be 0/1 of shape "
                                 f"[{count}, {len(class_names)}]. Received shape "
                                 f"{array.shape}")
            return array
        out = np.zeros((count, len(class_names)), np.float32)
        for row, names in enumerate(labels):
            if isinstance(names, str):
                names = [names]
            for name in names:
                if name not in index:
                    raise ValueError(f"`{arg_name}` holds a label outside `class_names` "
                                     f"{class_names}. Received: {name!r} at index {row}")
                out[row, index[name]] = 1.0
        return out
    out = np.empty(count, np.int32)
    for row, label in enumerate(labels):
        if isinstance(label, bytes):
            label = label.decode("utf-8")
        if isinstance(label, str):
            if label not in index:
                raise ValueError(f"`{arg_name}` holds a label outside `class_names` "
                                 f"{class_names}. Received: {label!r} at index {row}")
            out[row] = index[label]
        elif isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            if not 0 <= label < len(class_names):
                raise ValueError(f"`{arg_name}` holds a class id outside [0, "
                                 f"{len(class_names)}). Received: {label!r} at index {row}")
            out[row] = label
        else:
            raise TypeError(f"`{arg_name}` must hold class names or int class ids. "
                            f"Received {label!r} of type {type(label).__name__} at index "
                            f"{row}")
    return out
