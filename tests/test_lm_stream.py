import numpy as np
import pytest

from ulmfit_tf.data import LMStream, TokenFile


def make_docs(n_docs=40, seed=0):
    rng = np.random.default_rng(seed)
    # Every token unique, so any misplaced token shows.
    lengths = rng.integers(1, 60, n_docs)
    ids = np.arange(lengths.sum(), dtype=np.int32) + 10
    return np.split(ids, np.cumsum(lengths)[:-1])


def concat_windows(stream, epoch):
    xs, ys = zip(*stream.batches(epoch))
    return np.concatenate(xs, 1), np.concatenate(ys, 1)


@pytest.mark.parametrize("backwards", [False, True])
def test_windows_round_trip_to_streams(backwards):
    docs = make_docs()
    stream = LMStream(docs, batch_size=4, bptt=12, backwards=backwards, seed=3)
    x, y = concat_windows(stream, epoch=0)
    full = stream.streams(0)
    np.testing.assert_array_equal(x, full[:, :-1])
    np.testing.assert_array_equal(y, full[:, 1:])
    # The streams are the shuffled documents end to end, cut in batch_size rows.
    order = stream._order(0)
    text = np.concatenate([docs[i] for i in order])
    if backwards:
        text = text[::-1]
    n = stream.stream_length
    for b in range(4):
        np.testing.assert_array_equal(full[b], text[b * n: b * n + n + 1])


def test_each_epoch_reshuffles_and_is_reproducible():
    docs = make_docs()
    stream = LMStream(docs, batch_size=4, bptt=12, seed=7)
    assert not np.array_equal(stream.streams(0), stream.streams(1))
    again = LMStream(docs, batch_size=4, bptt=12, seed=7)
    np.testing.assert_array_equal(concat_windows(stream, 1)[0], concat_windows(again, 1)[0])
    first = [x for x, _ in stream]  # iteration advances the epoch
    second = [x for x, _ in stream]
    assert stream.epoch == 2 and not all(
        a.shape == b.shape and np.array_equal(a, b) for a, b in zip(first, second))


def test_no_shuffle_keeps_document_order():
    docs = make_docs()
    stream = LMStream(docs, batch_size=1, bptt=10, shuffle=False)
    expected = np.concatenate(docs)[:stream.stream_length + 1]
    np.testing.assert_array_equal(stream.streams(5)[0], expected)


def test_variable_bptt_distribution():
    stream = LMStream([np.arange(200_000)], batch_size=2, bptt=70, seed=0)
    lengths = np.array(stream.sequence_lengths(0))
    assert lengths.sum() == stream.stream_length
    assert lengths.min() >= 5 and lengths.max() <= 90 * 1.05
    assert abs(np.median(lengths) - 70) <= 3
    share_half = np.mean(lengths < 50)
    assert 0.02 < share_half < 0.09  # bptt/2 with probability 0.05
    # The same number of batches every epoch, and different lengths.
    other = stream.sequence_lengths(1)
    assert len(other) == len(lengths) == stream.batches_per_epoch
    assert other != lengths.tolist()


def test_fixed_bptt():
    stream = LMStream([np.arange(1001)], batch_size=2, bptt=70, variable_bptt=False)
    assert stream.sequence_lengths(0) == [70] * 7 + [10]


def test_tiny_stream_lengths_cover_it():
    stream = LMStream([np.arange(40)], batch_size=3, bptt=70, seed=0)
    assert sum(stream.sequence_lengths(0)) == stream.stream_length == 13


def test_epochs_of_tokens_cut_each_pass_in_order():
    docs = make_docs(n_docs=120)
    stream = LMStream(docs, batch_size=4, bptt=12, seed=3, tokens_per_epoch=900)
    whole = LMStream(docs, batch_size=4, bptt=12, seed=3)
    assert stream.epochs_per_pass == round(stream.num_tokens / 900) > 1
    for pass_index in (0, 1):
        epochs = range(pass_index * stream.epochs_per_pass,
                       (pass_index + 1) * stream.epochs_per_pass)
        assert all(len(stream.sequence_lengths(e)) == stream.batches_per_epoch for e in epochs)
        # One pass's epochs, end to end, are the pass's streams: the same
        # shuffle as a run without `tokens_per_epoch`, read in consecutive parts.
        x = np.concatenate([concat_windows(stream, e)[0] for e in epochs], 1)
        np.testing.assert_array_equal(x, stream.streams(pass_index)[:, :-1])
        np.testing.assert_array_equal(stream.streams(pass_index), whole.streams(pass_index))
    assert stream.sequence_lengths(0) != stream.sequence_lengths(stream.epochs_per_pass)
    assert int(stream.as_dataset().cardinality()) == stream.batches_per_epoch
    # More epochs than windows: one window each at most.
    tiny = LMStream(docs, batch_size=4, bptt=12, tokens_per_epoch=1)
    assert tiny.batches_per_epoch == 1
    lengths = [n for e in range(tiny.epochs_per_pass) for n in tiny.sequence_lengths(e)]
    assert min(lengths) > 0 and sum(lengths) == tiny.stream_length


def test_token_file_round_trip(tmp_path):
    docs = make_docs()
    token_file = TokenFile.write(tmp_path / "corpus", iter(docs))
    assert len(token_file) == len(docs) and token_file.num_tokens == sum(map(len, docs))
    in_memory = LMStream(docs, batch_size=3, bptt=9, seed=1)
    on_disk = LMStream(TokenFile(tmp_path / "corpus"), batch_size=3, bptt=9, seed=1)
    np.testing.assert_array_equal(on_disk.streams(2), in_memory.streams(2))


def test_dataset():
    stream = LMStream(make_docs(), batch_size=4, bptt=12, seed=0)
    dataset = stream.as_dataset()
    assert int(dataset.cardinality()) == stream.batches_per_epoch
    batches = list(dataset)
    expected = list(stream.batches(0))
    assert len(batches) == len(expected)
    np.testing.assert_array_equal(batches[0][0].numpy(), expected[0][0])


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="too few for 8 streams"):
        LMStream([np.arange(10)], batch_size=8)
    with pytest.raises(ValueError, match="`batch_size` must be an int >= 1. Received: 0"):
        LMStream([np.arange(100)], batch_size=0)
    with pytest.raises(ValueError, match="`docs` must hold 1-D integer arrays"):
        LMStream([np.zeros(10, np.float32)], batch_size=1)
    with pytest.raises(ValueError, match="too few"):
        LMStream([], batch_size=1)
    with pytest.raises(ValueError, match="`tokens_per_epoch` must be None or an int >= 1. "
                       "Received: 0"):
        LMStream([np.arange(100)], batch_size=1, tokens_per_epoch=0)
    with pytest.raises(ValueError, match="`tokens_per_epoch` needs `variable_bptt=True`"):
        LMStream([np.arange(1000)], batch_size=1, variable_bptt=False, tokens_per_epoch=100)
    with pytest.raises(FileNotFoundError, match="Token file not found"):
        TokenFile(tmp_path / "missing")
