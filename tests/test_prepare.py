"""Streaming `prepare`: the same vocabulary and ids as tokenizing in memory,
in bounded memory; WikiText as a named corpus."""

import hashlib
import os
import re
import zipfile

import numpy as np
import pytest

from ulmfit_tf.corpus import iter_texts, read_texts
from ulmfit_tf.data import datasets
from ulmfit_tf.data.prepare import prepare_token_file
from ulmfit_tf.text import Vocab, tokenize_corpus
from ulmfit_tf.text.tokenizer import map_in_workers


@pytest.mark.parametrize("num_workers, split_contractions", [(1, False), (2, False), (2, True)])
def test_streaming_prepare_equals_the_in_memory_one(trec, tmp_path, num_workers,
                                                    split_contractions):
    texts = trec[0].texts[:1500]
    token_file, vocab, metrics = prepare_token_file(
        (t for t in texts), tmp_path / "tokens", max_vocab=500, min_freq=2,
        num_workers=num_workers, chunk_size=100, split_contractions=split_contractions)
    tokens = tokenize_corpus(texts, num_workers=1, split_contractions=split_contractions)
    expected = Vocab.build(tokens, max_vocab=500, min_freq=2,
                           split_contractions=split_contractions)
    assert ("'s" in vocab.stoi) is split_contractions
    assert vocab == expected and len(vocab) == 504  # 500 padded to a multiple of 8
    np.testing.assert_array_equal(token_file.ids, np.concatenate([expected.encode(t)
                                                                  for t in tokens]))
    np.testing.assert_array_equal(np.diff(token_file.offsets), [len(t) for t in tokens])
    assert metrics["documents"] == 1500 and metrics["tokens"] == token_file.num_tokens
    assert metrics["distinct_tokens"] == len({t for doc in tokens for t in doc})
    assert metrics["peak_rss_mb"] > 0
    assert sorted(os.listdir(tmp_path)) == ["tokens.ids", "tokens.offsets.npy"]


def test_prepare_errors_leave_no_files(tmp_path):
    with pytest.raises(ValueError, match="`texts` is empty"):
        prepare_token_file(iter([]), tmp_path / "tokens")
    with pytest.raises(TypeError, match="`texts` must hold only str. Received item 2: 7"):
        prepare_token_file(iter(["a b", "c", 7]), tmp_path / "tokens", num_workers=1)
    with pytest.raises(ValueError, match="`num_workers` must be an int >= 1. Received: 0"):
        prepare_token_file(["a"], tmp_path / "tokens", num_workers=0)
    assert os.listdir(tmp_path) == []


def test_workers_read_a_generator_as_they_need_it():
    taken = []

    def items():
        for i in range(40):
            taken.append(i)
            yield [f"text {i}"]

    results = map_in_workers(_first_token_count, items(), num_workers=2, max_pending=3)
    first = next(results)
    assert first == 3 and len(taken) <= 3  # no more taken than may be pending
    assert [first, *results] == [3] * 40 and len(taken) == 40


def _first_token_count(texts):
    from ulmfit_tf.text import tokenize

    return len(tokenize(texts[0]))  # xxbos text <i>


def _wikitext_zip(path, folder, suffix, articles):
    text = "".join(f" \n = {title} = \n \n {body} \n \n = = Section = = \n \n more . \n"
                   for title, body in articles)
    with zipfile.ZipFile(path, "w") as archive:
        for split in ("train", "valid", "test"):
            archive.writestr(f"{folder}/wiki.{split}{suffix}", text if split == "valid"
                             else " \n = Other = \n \n x . \n")
    return path


def test_wikitext_articles_from_zip_mirror_and_split_file(tmp_path, data_dir):
    articles = [("Valkyria Chronicles", "The game @-@ a <unk> one ."), ("Tower", "It = is .")]
    _wikitext_zip(tmp_path / "wikitext-2-v1.zip", "wikitext-2", ".tokens", articles)
    valid = list(datasets.iter_wikitext("wikitext-2", "valid", source=tmp_path))
    assert len(valid) == 2 and valid[0].startswith("= Valkyria Chronicles =")
    assert "= = Section = =" in valid[0]  # sections stay inside their article
    assert read_texts("wikitext-2", "valid", source=tmp_path / "wikitext-2-v1.zip").texts == valid
    assert list(iter_texts("wikitext-2", "test", source=tmp_path)) == ["= Other = \n \n x ."]
    # The shared mirror holds the tokenized validation file alone.
    shared = list(datasets.iter_wikitext("wikitext-2", "valid", source=data_dir))
    with open(os.path.join(data_dir, "wikitext-2", "wiki.valid.tokens"), encoding="utf-8") as f:
        text = f.read()
    expected = [a.strip() for a in re.split(r"\n (?== [^=])", text) if a.strip()]
    assert shared == expected and len(shared) > 50
    with pytest.raises(FileNotFoundError, match="holds none of"):
        list(datasets.iter_wikitext("wikitext-103", "valid", source=tmp_path))
    with pytest.raises(ValueError, match="`name` must be one of"):
        list(datasets.iter_wikitext("wikitext-3"))
    with pytest.raises(ValueError, match="not the WikiText `train` file"):
        list(datasets.iter_wikitext("wikitext-2", "train", source=os.path.join(
            data_dir, "wikitext-2", "wiki.valid.tokens")))


@pytest.mark.local_download
def test_wikitext_download_is_checked(tmp_path, monkeypatch):
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    archive = _wikitext_zip(upstream / "wikitext-103-raw-v1.zip", "wikitext-103-raw", ".raw",
                            [("A", "b ."), ("C", "d .")])
    sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(datasets, "WIKITEXT_URL", upstream.as_uri() + "/")
    variants = datasets.WIKITEXT_ARCHIVES["wikitext-103"]
    monkeypatch.setitem(datasets.WIKITEXT_ARCHIVES, "wikitext-103",
                        ((*variants[0][:3], sha256), variants[1]))
    cache = str(tmp_path / "cache")
    assert len(list(datasets.iter_wikitext("wikitext-103", "valid", cache_dir=cache))) == 2
    archive.write_bytes(b"tampered")
    os.remove(os.path.join(cache, "ulmfit_tf", "wikitext-103-raw-v1.zip"))
    with pytest.raises(ValueError, match="(?i)hash|checksum|corrupt"):
        list(datasets.iter_wikitext("wikitext-103", "valid", cache_dir=cache))


def test_folder_streams_in_read_texts_order(data_dir):
    folder = os.path.join(data_dir, "general-en", "inaugural")
    assert list(iter_texts(folder)) == read_texts(folder).texts
