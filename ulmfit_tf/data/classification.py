"""Classification batches: sorted by length, padded on the right.

Padding goes on the right (after the text) because the classifier masks
padding and Keras only takes the fused cuDNN LSTM kernel for right-padded
masks; with right padding and a mask, a text's outputs do not depend on what
it is batched with. (fastai pads on the left instead, because its pooling
reads the last time step.)

Batching follows fastai's `SortedDL`/`SortishSampler`: for training, texts
are shuffled, cut into chunks of 50 batches, each chunk sorted by length, and
the batches shuffled; for evaluation, texts are sorted by length (longest
first) and the predictions put back in input order by `unsort`.
"""

import numpy as np
import tensorflow as tf

from ulmfit_tf.data.lm_stream import element_sharding
from ulmfit_tf.text.rules import PAD_ID


def pad_right(docs):
    """Id arrays as one right-padded [len, longest] int32 array (xxpad)."""
    ids = np.full((len(docs), max(len(d) for d in docs)), PAD_ID, np.int32)
    for row, doc in enumerate(docs):
        ids[row, :len(doc)] = doc
    return ids


class ClassificationBatches:
    """Batches of (ids, labels) for a classifier.

    Args:
        docs: list of 1-D int id arrays.
        labels: int array (one per doc; for multi-label, a [N, C] 0/1 array;
            for regression, floats), or None for unlabelled text.
        batch_size: texts per batch.
        shuffle: sortish shuffling for training (True) or sorted order for
            evaluation (False).
        max_len: keep only the first `max_len` tokens of each text (None: all).
        num_classes: if given, integer labels are checked to be in range.
        seed: epoch `e` is shuffled with ``seed + e``.
    """

    def __init__(self, docs, labels=None, batch_size=64, shuffle=True, max_len=None,
                 num_classes=None, seed=0):
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"`batch_size` must be an int >= 1. Received: {batch_size!r}")
        if max_len is not None and (not isinstance(max_len, (int, np.integer)) or max_len < 1):
            raise ValueError(f"`max_len` must be None or an int >= 1. Received: {max_len!r}")
        docs = [np.asarray(d, np.int32)[:max_len] for d in docs]
        if not docs:
            raise ValueError("`docs` is empty.")
        for i, d in enumerate(docs):
            if d.ndim != 1 or len(d) == 0:
                raise ValueError(f"`docs` must hold non-empty 1-D id arrays. Received "
                                 f"item {i} with shape {d.shape}")
        if labels is not None:
            labels = np.asarray(labels)
            if len(labels) != len(docs):
                raise ValueError(f"`labels` has {len(labels)} items for {len(docs)} `docs`.")
            if num_classes is not None and np.issubdtype(labels.dtype, np.integer) \
                    and labels.ndim == 1:
                bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
                if len(bad):
                    raise ValueError(
                        f"`labels` must be in [0, {num_classes}). Received "
                        f"{labels[bad[0]]} at index {bad[0]}.")
        self.docs, self.labels = docs, labels
        self.lengths = np.array([len(d) for d in docs])
        self.batch_size, self.shuffle, self.seed = int(batch_size), shuffle, seed
        self.epoch = 0

    def __len__(self):
        return -(-len(self.docs) // self.batch_size)

    def order(self, epoch=0):
        """Indices of the texts in batch order."""
        if not self.shuffle:
            return np.argsort(-self.lengths, kind="stable")
        rng = np.random.default_rng([self.seed, epoch])
        idx = rng.permutation(len(self.docs))
        chunk = self.batch_size * 50
        idx = np.concatenate([c[np.argsort(-self.lengths[c], kind="stable")]
                              for c in np.split(idx, range(chunk, len(idx), chunk))])
        batches = np.split(idx, range(self.batch_size, len(idx), self.batch_size))
        # The longest batch first, so an out-of-memory error shows at once.
        first = int(np.argmax([self.lengths[b].max() for b in batches]))
        rest = [b for i, b in enumerate(batches) if i != first]
        rest = [rest[i] for i in rng.permutation(len(rest))]
        return np.concatenate([batches[first]] + rest)

    def unsort(self, predictions):
        """Puts predictions made in `order()` (shuffle=False) back in input order."""
        out = np.empty_like(predictions)
        out[self.order()] = predictions
        return out

    def batches(self, epoch=None):
        if epoch is None:
            epoch, self.epoch = self.epoch, self.epoch + 1
        order = self.order(epoch)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            ids = self.padded(idx)
            yield ids if self.labels is None else (ids, self.labels[idx])

    def padded(self, indices):
        """The texts at `indices` as one right-padded [len, longest] int32 array."""
        return pad_right([self.docs[i] for i in indices])

    def __iter__(self):
        return self.batches()

    def as_dataset(self):
        ids_spec = tf.TensorSpec([None, None], tf.int32)
        if self.labels is None:
            signature = ids_spec
        else:
            dtype = tf.as_dtype(self.labels.dtype if self.labels.dtype != np.int64 else np.int32)
            signature = (ids_spec, tf.TensorSpec((None,) + self.labels.shape[1:], dtype))
            self.labels = self.labels.astype(dtype.as_numpy_dtype)
        dataset = tf.data.Dataset.from_generator(self.batches, output_signature=signature)
        # A known length: Keras shows a full progress bar and does not warn
        # "ran out of data" at the end of the first epoch.
        return dataset.apply(tf.data.experimental.assert_cardinality(len(self))).prefetch(
            2).with_options(element_sharding())
