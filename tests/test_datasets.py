import hashlib
import os

import numpy as np
import pytest

import ulmfit_tf.data.datasets as datasets
from ulmfit_tf.data import (load_20news, load_corpus, load_csv, load_folder, load_imdb, load_sms,
                            load_trec)


def test_trec(trec):
    train, test = trec
    assert (len(train), len(test)) == (5452, 500)
    assert train.classes == ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
    assert train.texts[0] == "How did serfdom develop in and then leave Russia ?"
    assert train.classes[train.labels[0]] == "DESC"
    assert set(np.unique(test.labels)) == set(range(6))


def test_trec_from_env_mirror(data_dir, monkeypatch):
    monkeypatch.setenv("ULMFIT_TF_DATA", data_dir)
    assert len(load_trec("test")) == 500


def test_imdb_train(imdb_train):
    assert len(imdb_train) == 25000
    assert np.bincount(imdb_train.labels).tolist() == [12500, 12500]
    ratings, labels = imdb_train.ratings, imdb_train.labels
    neg, pos = ratings[labels == 0], ratings[labels == 1]
    assert neg.max() <= 4 and pos.min() >= 7
    assert "<br />" in "".join(imdb_train.texts[:200])


def test_imdb_extracted_folder_equals_archive(tmp_path, imdb_train):
    root = tmp_path / "aclImdb" / "train"
    for label, name in ((0, "neg"), (1, "pos")):
        (root / name).mkdir(parents=True)
        idx = np.flatnonzero(imdb_train.labels == label)[:3]
        for i in idx:
            (root / name / f"{i}_{imdb_train.ratings[i]}.txt").write_text(imdb_train.texts[i])
    # The archive's layout: unlabelled reviews in train/unsup/, beside neg/ and pos/.
    (root / "unsup").mkdir()
    for i in range(4):
        (root / "unsup" / f"{i}_0.txt").write_text(f"unlabelled review {i}")
    small = load_imdb("train", source=tmp_path)
    assert len(small) == 6 and small.labels.tolist() == [0, 0, 0, 1, 1, 1]
    unsup = load_imdb("unsup", source=tmp_path)
    assert unsup.texts == [f"unlabelled review {i}" for i in range(4)]
    assert unsup.labels is None and unsup.ratings.tolist() == [0, 0, 0, 0]


def test_bad_split_and_missing_source(tmp_path):
    with pytest.raises(ValueError, match="`split` must be one of"):
        load_imdb("dev", source=tmp_path)
    with pytest.raises(FileNotFoundError, match="`source`=.*holds none of"):
        load_trec("train", source=tmp_path)


@pytest.mark.local_download
def test_download_with_checksum_and_cache(tmp_path, monkeypatch):
    """The real download path, against a local file:// URL (no network)."""
    upstream = tmp_path / "upstream" / "TREC_10.label"
    upstream.parent.mkdir()
    upstream.write_bytes(b"NUM:date When was it ?\n")
    md5 = hashlib.md5(upstream.read_bytes()).hexdigest()
    monkeypatch.setitem(datasets.TREC_URLS, "test", (upstream.as_uri(), md5))
    cache = tmp_path / "cache"
    assert load_trec("test", cache_dir=str(cache)).texts == ["When was it ?"]
    assert os.path.isfile(cache / "ulmfit_tf" / "TREC_10.label")
    upstream.unlink()  # the cached copy is used from now on
    assert len(load_trec("test", cache_dir=str(cache))) == 1

    bad = tmp_path / "upstream" / "train_5500.label"
    bad.write_bytes(b"NUM:date tampered ?\n")
    monkeypatch.setitem(datasets.TREC_URLS, "train", (bad.as_uri(), md5))
    with pytest.raises(ValueError, match="(?i)hash|checksum|corrupt"):
        load_trec("train", cache_dir=str(cache))


def test_20news(data_dir):
    train, test = load_20news("train", source=data_dir), load_20news("test", source=data_dir)
    assert (len(train), len(test)) == (11314, 7532)
    assert len(train.classes) == 20 and train.classes == test.classes
    assert train.classes[0] == "alt.atheism" and train.classes[-1] == "talk.religion.misc"
    assert np.bincount(train.labels).min() >= 370
    assert train.texts[0].startswith("From: ")  # posts as they are, headers included


def test_20news_extracted_folder_equals_archive(tmp_path, data_dir):
    """The upstream layout (20news-bydate-train/<group>/<number>, no extension)
    extracted into a folder reads like the archive."""
    archive = load_20news("test", source=data_dir)
    for label in (0, 19):
        group = tmp_path / "20news-bydate-test" / archive.classes[label]
        group.mkdir(parents=True)
        for i in np.flatnonzero(archive.labels == label)[:2]:
            (group / str(1000 + i)).write_bytes(archive.texts[i].encode("latin-1"))
    (tmp_path / "20news-bydate-train").mkdir()
    folder = load_20news("test", source=tmp_path)
    assert folder.classes == (archive.classes[0], archive.classes[19])
    picked = [t for label in (0, 19) for t in
              [archive.texts[i] for i in np.flatnonzero(archive.labels == label)[:2]]]
    assert folder.texts == picked and folder.labels.tolist() == [0, 0, 1, 1]


def test_sms_fixed_split(data_dir):
    train, test = load_sms("train", source=data_dir), load_sms("test", source=data_dir)
    assert (len(train), len(test)) == (4459, 1115)
    assert train.classes == ("ham", "spam")
    assert np.bincount(train.labels).sum() + np.bincount(test.labels).sum() == 5574
    assert int(train.labels.sum() + test.labels.sum()) == 747
    # Each message in one split only (the corpus itself repeats some texts).
    with open(os.path.join(data_dir, "sms", "SMSSpamCollection"), encoding="utf-8") as f:
        everything = [line.rstrip("\n").partition("\t")[2] for line in f][1:]
    assert sorted(train.texts + test.texts) == sorted(everything)
    assert load_sms("test", source=data_dir).texts == test.texts  # fixed, whatever the seed


def test_sms_without_header_and_from_zip(tmp_path, data_dir):
    """UCI's file has no header line and comes in a zip."""
    import zipfile

    with open(os.path.join(data_dir, "sms", "SMSSpamCollection"), "rb") as f:
        lines = f.read().split(b"\n")
    headerless = b"\n".join(lines[1:])
    with zipfile.ZipFile(tmp_path / "sms+spam+collection.zip", "w") as archive:
        archive.writestr("SMSSpamCollection", headerless)
        archive.writestr("readme", "not read")
    assert load_sms("test", source=tmp_path).texts == load_sms("test", source=data_dir).texts
    (tmp_path / "short").mkdir()
    (tmp_path / "short" / "SMSSpamCollection").write_bytes(b"\n".join(lines[1:100]))
    with pytest.raises(ValueError, match="not the SMS Spam Collection v.1"):
        load_sms(source=tmp_path / "short")
    (tmp_path / "short" / "SMSSpamCollection").write_bytes(b"ham\thi\nmaybe\tspam?\n")
    with pytest.raises(ValueError, match="Malformed SMS spam file.*line 2"):
        load_sms(source=tmp_path / "short")


def test_named_corpora_in_read_texts(data_dir):
    from ulmfit_tf.corpus import NAMED_CORPORA, read_texts

    assert {"20news", "sms"} <= set(NAMED_CORPORA)
    assert len(read_texts("sms", "test", source=data_dir)) == 1115
    with pytest.raises(ValueError, match="A corpus must be one of .*'20news'.*Received: 'nope'"):
        read_texts("nope")


def test_malformed_trec(tmp_path):
    (tmp_path / "TREC_10.label").write_text("not a trec line\n")
    with pytest.raises(ValueError, match="Malformed TREC file.*line 1"):
        load_trec("test", source=tmp_path)


def test_folder_with_classes(tmp_path):
    for cls, texts in {"b": ["x", "y"], "a": ["z"]}.items():
        (tmp_path / cls).mkdir()
        for i, t in enumerate(texts):
            (tmp_path / cls / f"{i}.txt").write_text(t)
    ds = load_folder(tmp_path)
    assert ds.classes == ("a", "b") and ds.texts == ["z", "x", "y"]
    assert ds.labels.tolist() == [0, 1, 1]


def test_folder_of_classes_with_extensionless_files(tmp_path):
    """Class folders of plain files without an extension (20 Newsgroups'
    layout) are documents too; hidden files and other extensions are not."""
    for cls in ("spam", "ham"):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / "10021").write_text(f"{cls} post")
        (tmp_path / cls / ".DS_Store").write_text("junk")
        (tmp_path / cls / "notes.md").write_text("junk")
    ds = load_folder(tmp_path)
    assert ds.classes == ("ham", "spam") and ds.texts == ["ham post", "spam post"]


def test_folder_unlabelled_and_errors(tmp_path):
    (tmp_path / "1.txt").write_text("one")
    (tmp_path / "2.txt").write_bytes(b"\xff bad")
    with pytest.raises(ValueError, match="2.txt.*not valid utf-8"):
        load_folder(tmp_path)
    (tmp_path / "2.txt").write_text("two")
    ds = load_folder(tmp_path)
    assert ds.texts == ["one", "two"] and ds.labels is None
    with pytest.raises(FileNotFoundError, match="`path` is not a directory"):
        load_folder(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no .txt files"):
        load_folder(empty)


def test_csv_and_tsv(tmp_path):
    (tmp_path / "d.csv").write_text('text,label\n"hello, world",pos\nbad,neg\n')
    ds = load_csv(tmp_path / "d.csv")
    assert ds.texts == ["hello, world", "bad"] and ds.classes == ("neg", "pos")
    assert ds.labels.tolist() == [1, 0]
    (tmp_path / "d.tsv").write_text("sentence\ty\nhi there\t2\n")
    ds = load_csv(tmp_path / "d.tsv", text_column="sentence", label_column="y",
                  classes=["1", "2"])
    assert ds.labels.tolist() == [1]


def test_csv_errors(tmp_path):
    (tmp_path / "d.csv").write_text("text,label\nhello,maybe\n")
    with pytest.raises(ValueError, match="Row 2 of .*label 'maybe' is not in `classes`"):
        load_csv(tmp_path / "d.csv", classes=["neg", "pos"])
    with pytest.raises(ValueError, match="`text_column`='body' is not a column"):
        load_csv(tmp_path / "d.csv", text_column="body")
    with pytest.raises(FileNotFoundError, match="`path` is not a file"):
        load_csv(tmp_path / "nope.csv")


def test_general_corpus(data_dir):
    docs = load_corpus(os.path.join(data_dir, "general-en", "inaugural"))
    assert len(docs) > 10 and all(isinstance(d, str) and d for d in docs)
