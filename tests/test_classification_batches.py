import numpy as np
import pytest

from ulmfit_tf.data import ClassificationBatches


def docs_and_labels(n=300, seed=0):
    rng = np.random.default_rng(seed)
    docs = [rng.integers(10, 100, rng.integers(1, 80)).astype(np.int32) for _ in range(n)]
    return docs, rng.integers(0, 3, n)


def test_right_padding_and_content():
    docs, labels = docs_and_labels()
    batches = ClassificationBatches(docs, labels, batch_size=16, seed=1)
    seen = []
    for ids, y in batches.batches(0):
        for row, label in zip(ids, y):
            n = int((row != 1).sum())
            assert (row[n:] == 1).all()  # padding only on the right
            seen.append((tuple(row[:n]), int(label)))
    assert sorted(seen) == sorted((tuple(d), int(l)) for d, l in zip(docs, labels))


def test_sortish_batches_are_homogeneous():
    docs, labels = docs_and_labels(2000)
    batches = ClassificationBatches(docs, labels, batch_size=32, seed=0)
    sortish_pad = sum((ids == 1).sum() for ids, _ in batches.batches(0))
    random_order = np.random.default_rng(0).permutation(len(docs))
    random_pad = 0
    for s in range(0, len(docs), 32):
        lens = np.array([len(docs[i]) for i in random_order[s:s + 32]])
        random_pad += (lens.max() - lens).sum()
    assert sortish_pad < 0.2 * random_pad
    first = next(batches.batches(0))[0]
    assert first.shape[1] == max(map(len, docs))  # the longest batch comes first


def test_eval_order_and_unsort():
    docs, labels = docs_and_labels(50)
    batches = ClassificationBatches(docs, labels, batch_size=8, shuffle=False)
    lengths = [int((ids != 1).sum(1).max()) for ids, _ in batches]
    assert lengths == sorted(lengths, reverse=True)
    predictions = np.concatenate([y for _, y in batches])
    np.testing.assert_array_equal(batches.unsort(predictions), labels)


def test_max_len_keeps_first_tokens():
    batches = ClassificationBatches([np.arange(10, 30)], [0], batch_size=1, max_len=5)
    ids, _ = next(iter(batches))
    assert ids.tolist() == [[10, 11, 12, 13, 14]]


def test_dataset_dtypes():
    docs, labels = docs_and_labels(40)
    batches = ClassificationBatches(docs, labels, batch_size=8)
    ds = batches.as_dataset()
    assert int(ds.cardinality()) == len(batches) == 5
    ids, y = next(iter(ds))
    assert ids.dtype.name == "int32" and y.dtype.name == "int32"


def test_errors():
    with pytest.raises(ValueError, match=r"`labels` must be in \[0, 2\). Received 5 at index 1"):
        ClassificationBatches([[1], [2]], [0, 5], num_classes=2)
    with pytest.raises(ValueError, match="`labels` has 1 items for 2 `docs`"):
        ClassificationBatches([[1], [2]], [0])
    with pytest.raises(ValueError, match="`docs` is empty"):
        ClassificationBatches([], [])
    with pytest.raises(ValueError, match="non-empty 1-D id arrays. Received item 0"):
        ClassificationBatches([[]], [0])
    with pytest.raises(ValueError, match="`max_len` must be None or an int >= 1"):
        ClassificationBatches([[1]], [0], max_len=0)


def test_inference_batches_group_similar_lengths():
    from ulmfit_tf.training.classifier import INFERENCE_MIN_FILL, _similar_lengths

    lengths = np.sort(np.random.default_rng(0).integers(1, 2000, 500))[::-1]
    for min_fill in (0.75, INFERENCE_MIN_FILL):
        slices = list(_similar_lengths(lengths, 64, min_fill))
        assert np.array_equal(np.concatenate([np.arange(len(lengths))[s] for s in slices]),
                              np.arange(len(lengths)))  # every text once, in order
        for s in slices:
            batch = lengths[s]
            assert 1 <= len(batch) <= 64 and batch.min() >= min_fill * batch.max()
    # The default: plain batches of 64 (padding is skipped inside the LSTMs).
    assert [len(lengths[s]) for s in _similar_lengths(lengths, 64)] == [64] * 7 + [52]
