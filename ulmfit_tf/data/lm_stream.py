"""Language-model batches: contiguous streams with variable-length BPTT.

Like fastai's `LMDataLoader`: each epoch the documents are shuffled and
concatenated (each starts with ``xxbos``), the result is cut into
`batch_size` contiguous streams, and consecutive batches hold consecutive
windows of every stream, so a model can carry its hidden state from one batch
to the next. Sequence lengths vary as in AWD-LSTM (Merity et al. 2017): the
base is `bptt` with probability 0.95 else `bptt / 2`, then a normal draw with
standard deviation 5, at least 5 and at most `bptt + 20`; each epoch's draws
are then scaled by one common factor (close to 1) so that every epoch has the
same number of batches, which Keras needs to know (progress bars, schedules).

Merity also scales each step's learning rate by ``seq_len / bptt``. We do not:
with Adam (ULMFiT's optimizer) the step size does not depend on the scale of
the loss, and fastai does not do it either.
"""

import os

import numpy as np
import tensorflow as tf

from ulmfit_tf.utils import atomic_write

MAX_SEQ_LEN_DELTA = 20
MIN_SEQ_LEN = 5


class TokenFile:
    """Token ids of many documents in one flat int32 file, read by memory map.

    A corpus larger than memory is written one chunk at a time with `write`
    and streamed from disk by `LMStream`.

    Args:
        path: base path; the ids are ``<path>.ids`` and the document offsets
            ``<path>.offsets.npy``.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        for suffix in (".ids", ".offsets.npy"):
            if not os.path.isfile(self.path + suffix):
                raise FileNotFoundError(f"Token file not found: {self.path + suffix!r}")
        self.offsets = np.load(self.path + ".offsets.npy")
        self.ids = np.memmap(self.path + ".ids", dtype=np.int32, mode="r")
        if self.offsets[-1] != len(self.ids):
            raise ValueError(f"Malformed token file {self.path!r}: offsets end at "
                             f"{self.offsets[-1]}, ids hold {len(self.ids)}.")

    @classmethod
    def write(cls, path, docs):
        """Writes an iterable of id arrays, one chunk at a time, atomically."""
        path = os.fspath(path)
        offsets = [0]
        with atomic_write(path + ".ids", "wb") as f:
            for doc in docs:
                doc = np.asarray(doc, np.int32)
                f.write(doc.tobytes())
                offsets.append(offsets[-1] + len(doc))
            with atomic_write(path + ".offsets.npy", "wb") as g:
                np.save(g, np.array(offsets, np.int64))
        return cls(path)

    def __len__(self):
        return len(self.offsets) - 1

    @property
    def num_tokens(self):
        return int(self.offsets[-1])


def split_pass(num_tokens, batch_size, bptt=70, variable_bptt=True, tokens_per_epoch=None):
    """How LMStream cuts one pass over `num_tokens` into epochs:
    `(epochs_per_pass, batches_per_epoch)`. A function of its own so that
    tools reading a run's `config.json` (bench/lm_curve.py) count an epoch's
    tokens by the same rule as training did."""
    stream_length = (num_tokens - 1) // batch_size
    if not variable_bptt:
        windows = -(-stream_length // bptt)
    else:
        mean = 0.975 * bptt  # bptt with p=0.95, bptt/2 with p=0.05
        windows = max(1, round(stream_length / mean))
    epochs_per_pass = 1
    if tokens_per_epoch is not None:
        epochs_per_pass = int(min(windows, max(1, round(num_tokens / tokens_per_epoch))))
    # Every epoch must have the same number of batches (Keras needs it),
    # so a pass has a multiple of `epochs_per_pass` windows.
    return epochs_per_pass, max(1, round(windows / epochs_per_pass))


class LMStream:
    """(x, y) windows of `batch_size` contiguous token streams.

    Args:
        docs: a list of id arrays (one per document) or a `TokenFile`.
        batch_size: number of parallel streams.
        bptt: base sequence length.
        variable_bptt: draw sequence lengths as AWD-LSTM does; else always
            `bptt` (the last window of an epoch may be shorter).
        shuffle: shuffle the document order each epoch.
        backwards: read the text right to left (for a backward LM).
        seed: seeds the document order and the sequence lengths of each pass
            over the corpus, so a resumed run sees the same data.
        tokens_per_epoch: None: an epoch is one pass over the corpus. A
            number: each pass is cut into consecutive epochs of about this
            many tokens (Keras' `steps_per_epoch` idea), so that a long
            pretraining run validates, plots and checkpoints every few
            minutes and a resumed run loses at most one such epoch.
    """

    def __init__(self, docs, batch_size, bptt=70, variable_bptt=True, shuffle=True,
                 backwards=False, seed=0, tokens_per_epoch=None):
        for name, value, low in (("batch_size", batch_size, 1), ("bptt", bptt, 2)):
            if not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"`{name}` must be an int >= {low}. Received: {value!r}")
        if tokens_per_epoch is not None and (
                not isinstance(tokens_per_epoch, (int, np.integer)) or tokens_per_epoch < 1):
            raise ValueError("`tokens_per_epoch` must be None or an int >= 1. Received: "
                             f"{tokens_per_epoch!r}")
        if isinstance(docs, TokenFile):
            self._ids, self._starts = docs.ids, docs.offsets[:-1]
            self._lengths = np.diff(docs.offsets)
        else:
            docs = [np.asarray(d) for d in docs]
            for i, d in enumerate(docs):
                if d.ndim != 1 or not np.issubdtype(d.dtype, np.integer):
                    raise ValueError(f"`docs` must hold 1-D integer arrays. Received "
                                     f"item {i} with shape {d.shape}, dtype {d.dtype}")
            self._lengths = np.array([len(d) for d in docs], np.int64)
            self._ids = np.concatenate(docs).astype(np.int32) if docs else np.zeros(0, np.int32)
            self._starts = np.concatenate([[0], np.cumsum(self._lengths)[:-1]]).astype(np.int64)
        self.num_tokens = int(self._lengths.sum())
        # Each stream needs one token more than its inputs, for the last target.
        self.stream_length = (self.num_tokens - 1) // batch_size
        if self.stream_length < 2:
            raise ValueError(
                f"`docs` hold {self.num_tokens} tokens: too few for {batch_size} "
                f"streams (`batch_size`); need at least {2 * batch_size + 1}.")
        self.batch_size = int(batch_size)
        self.bptt = int(bptt)
        self.variable_bptt = variable_bptt
        self.shuffle = shuffle
        self.backwards = backwards
        self.seed = seed
        self.epoch = 0
        self.epochs_per_pass, self.batches_per_epoch = split_pass(
            self.num_tokens, batch_size, bptt, variable_bptt, tokens_per_epoch)
        if self.epochs_per_pass > 1 and not variable_bptt:
            raise ValueError("`tokens_per_epoch` needs `variable_bptt=True` (fixed windows "
                             "cannot be rescaled to split a pass evenly).")

    def sequence_lengths(self, epoch):
        """The window lengths of `epoch`: its slice of its pass's windows,
        which sum to the stream length."""
        return self._epoch_lengths(epoch)[1]

    def _epoch_lengths(self, epoch):
        """(tokens of its pass before `epoch`, `epoch`'s window lengths),
        from one draw of the pass's lengths."""
        pass_index, index = divmod(epoch, self.epochs_per_pass)
        lengths = self._pass_lengths(pass_index)
        first = index * self.batches_per_epoch
        return sum(lengths[:first]), lengths[first:first + self.batches_per_epoch]

    def _pass_lengths(self, pass_index):
        """The window lengths of a pass over the corpus.

        Variable lengths follow AWD-LSTM's draw; the pass's draws are then
        scaled by a common factor (close to 1) so that every epoch has the
        same number of batches and a pass covers the whole stream.
        """
        count = self.batches_per_epoch * self.epochs_per_pass
        if not self.variable_bptt:
            return [self.bptt] * (count - 1) + [self.stream_length - self.bptt * (count - 1)]
        rng = np.random.default_rng([self.seed, pass_index, 1])
        base = np.where(rng.random(count) < 0.95, self.bptt, self.bptt / 2)
        raw = np.clip(rng.normal(base, 5).astype(int), MIN_SEQ_LEN,
                      self.bptt + MAX_SEQ_LEN_DELTA).astype(float)
        scaled = raw * self.stream_length / raw.sum()
        lengths = np.maximum(np.floor(scaled).astype(int), 1)
        # Hand out what rounding left over to the largest remainders.
        short = self.stream_length - lengths.sum()
        order = np.argsort(-(scaled - np.floor(scaled)), kind="stable")
        lengths[order[:short]] += 1
        while lengths.sum() > self.stream_length:  # only for tiny streams
            lengths[lengths.argmax()] -= 1
        return [int(n) for n in lengths]

    def streams(self, pass_index):
        """The [batch_size, stream_length + 1] token matrix of a pass over
        the corpus (the epoch when `tokens_per_epoch` is None).

        Materialises the pass; `batches` reads only what each window needs.
        """
        positions = self._stream_positions(self._order(pass_index), 0, self.stream_length + 1)
        return self._ids[positions]

    def _order(self, pass_index):
        if not self.shuffle:
            return np.arange(len(self._lengths))
        return np.random.default_rng([self.seed, pass_index, 0]).permutation(len(self._lengths))

    def _stream_positions(self, order, start, length):
        """Flat-file positions of stream tokens [start, start + length)."""
        cum = np.concatenate([[0], np.cumsum(self._lengths[order])])
        p = (np.arange(self.batch_size)[:, None] * self.stream_length
             + start + np.arange(length)[None, :])
        if self.backwards:
            p = self.num_tokens - 1 - p
        doc = np.searchsorted(cum, p, side="right") - 1
        return self._starts[order[doc]] + (p - cum[doc])

    def batches(self, epoch=None):
        """Yields (x, y) int32 arrays of shape [batch_size, seq_len]."""
        if epoch is None:
            epoch = self.epoch
            self.epoch += 1
        order = self._order(epoch // self.epochs_per_pass)
        start, lengths = self._epoch_lengths(epoch)
        for n in lengths:
            window = self._ids[self._stream_positions(order, start, n + 1)]
            yield window[:, :-1], window[:, 1:]
            start += n

    def __iter__(self):
        return self.batches()

    def as_dataset(self):
        """A `tf.data.Dataset`; each pass over it is the next epoch.

        Under a `tf.distribute` strategy every replica reads the same rows
        of every batch (the strategy splits the global batch into row blocks
        in order, and each worker keeps its own blocks: DATA sharding), so
        each replica carries its own contiguous streams and its own state.
        tests/test_distribute.py checks this on 2 devices and 2 workers.
        """
        spec = tf.TensorSpec([self.batch_size, None], tf.int32)
        dataset = tf.data.Dataset.from_generator(self.batches, output_signature=(spec, spec))
        return dataset.apply(tf.data.experimental.assert_cardinality(
            self.batches_per_epoch)).prefetch(2).with_options(element_sharding())


def element_sharding():
    """Dataset options that shard by elements under a multi-worker strategy
    (files would be AUTO's first try; a generator has none, and for an
    `LMStream` the split of each batch into row blocks must hold)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return options
