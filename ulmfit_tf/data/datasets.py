"""Readers for IMDb, TREC-6, 20 Newsgroups, SMS spam, WikiText, folders of
text files and CSV/TSV files.

The named corpora come from their canonical URLs, checked and cached the way
`keras.utils.get_file` does it. A local copy wins over the download: pass
``source=`` (a file or a directory holding the upstream files) or set the
environment variable ``ULMFIT_TF_DATA`` to a mirror directory.
"""

import csv
import dataclasses
import os
import re
import tarfile

import numpy as np

MIRROR_ENV = "ULMFIT_TF_DATA"

# md5 of the upstream files (keras.utils.get_file checks md5 or sha256).
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
TREC_URLS = {
    "train": ("https://cogcomp.seas.upenn.edu/Data/QA/QC/train_5500.label",
              "073462e3fcefaae31e00edb1f18d2d02"),
    "test": ("https://cogcomp.seas.upenn.edu/Data/QA/QC/TREC_10.label",
             "323a3554401d86e650717e2d2f942589"),
}
TREC_CLASSES = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
IMDB_CLASSES = ("neg", "pos")
# The "bydate" archive scikit-learn downloads (the same files as
# qwone.com/~jason/20Newsgroups/20news-bydate.tar.gz), with its sha256.
NEWSGROUPS_URL = "https://ndownloader.figshare.com/files/5975967"
NEWSGROUPS_SHA256 = "8f1b2514ca22a5ade8fbb9cfa5727df95fa587f4c87b786e15c759fa66d95610"
SMS_URL = "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"
SMS_CLASSES = ("ham", "spam")
# UCI publishes no checksum for the SMS zip: a download is checked by its
# counts instead (5,574 messages, 747 of them spam).
SMS_COUNTS = (4827, 747)
# WikiText (Merity et al. 2016) from its author's site (the original S3
# bucket is gone), sha256 as published with the Hugging Face dataset. The raw
# variant comes first: the ULMFiT rules tokenize it; the tokenized one
# (``<unk>``, ``@-@``) is read too, the rules undo its markers.
WIKITEXT_URL = "https://wikitext.smerity.com/"
WIKITEXT_ARCHIVES = {
    "wikitext-2": (("wikitext-2-raw-v1.zip", "wikitext-2-raw", ".raw",
                    "ef7edb566e3e2b2d31b29c1fdb0c89a4cc683597484c3dc2517919c615435a11"),
                   ("wikitext-2-v1.zip", "wikitext-2", ".tokens",
                    "92675f1d63015c1c8b51f1656a52d5bdbc33aafa60cc47a218a66e7ee817488c")),
    "wikitext-103": (("wikitext-103-raw-v1.zip", "wikitext-103-raw", ".raw",
                      "91c00ae287f0d699e18605c84afc9e45c192bc6b7797ff8837e5474655a33794"),
                     ("wikitext-103-v1.zip", "wikitext-103", ".tokens",
                      "242ba0f20b329cfdf1ccc61e9e9e5b59becf189db7f7a81cd2a0e2fc31539590")),
}
# An article starts at a top-level heading line, " = Title = " (sections are
# " = = Section = = ").
_WIKITEXT_TITLE = re.compile(r"^ = [^=].* = $")
# SMS spam has no test split: a fixed fifth of the messages (a permutation
# seeded 0, whatever the run's seed) is the test split.
SMS_TEST_FRACTION = 0.2


@dataclasses.dataclass
class TextDataset:
    """Texts with integer labels (None for unlabelled text).

    Attributes:
        texts: list of str.
        labels: int array (index into `classes`), or None.
        classes: class names, index = label.
        ratings: IMDb star ratings (1-10, 0 for unsup), else None.
    """

    texts: list
    labels: np.ndarray = None
    classes: tuple = ()
    ratings: np.ndarray = None

    def __len__(self):
        return len(self.texts)

    def subset(self, indices):
        indices = np.asarray(indices)
        pick = lambda a: None if a is None else np.asarray(a)[indices]
        return TextDataset([self.texts[i] for i in indices], pick(self.labels),
                           self.classes, pick(self.ratings))


def _check_split(split, allowed):
    if split not in allowed:
        raise ValueError(f"`split` must be one of {allowed}. Received: {split!r}")


def _mirror_file(source, candidates):
    """Finds one of `candidates` (relative paths) in `source` or the mirror."""
    roots = [source] if source is not None else []
    if source is None and os.environ.get(MIRROR_ENV):
        roots.append(os.environ[MIRROR_ENV])
    for root in roots:
        root = os.fspath(root)
        if os.path.isfile(root) and os.path.basename(root) == os.path.basename(candidates[0]):
            return root
        for rel in candidates:
            path = os.path.join(root, rel)
            if os.path.exists(path):
                return path
    if source is not None:
        raise FileNotFoundError(
            f"`source`={os.fspath(source)!r} holds none of {list(candidates)}.")
    return None


def _download(url, md5, cache_dir, fname=None):
    """Downloads into the cache once; `md5` is an md5 or sha256 hex digest
    (None: no published checksum)."""
    import keras

    if cache_dir is not None:
        # get_file silently falls back to /tmp/.keras for a missing directory.
        os.makedirs(cache_dir, exist_ok=True)
    return keras.utils.get_file(
        fname=fname or os.path.basename(url), origin=url, file_hash=md5,
        cache_dir=cache_dir, cache_subdir="ulmfit_tf")


def load_trec(split="train", source=None, cache_dir=None):
    """TREC-6 question classification (Li & Roth 2002), coarse labels.

    Args:
        split: "train" (5,452 questions) or "test" (500).
        source: a directory holding ``train_5500.label``/``TREC_10.label``
            (or ``trec/`` beneath it), or the file itself. Default: the
            ``ULMFIT_TF_DATA`` mirror, else download.
        cache_dir: where downloads are kept (default ``~/.keras``).
    """
    _check_split(split, ("train", "test"))
    url, md5 = TREC_URLS[split]
    name = os.path.basename(url)
    path = _mirror_file(source, [name, os.path.join("trec", name)])
    if path is None:
        path = _download(url, md5, cache_dir)
    texts, labels = [], []
    # Upstream files are Latin-1, not UTF-8.
    with open(path, encoding="latin-1") as f:
        for line_no, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            match = re.match(r"^([A-Z]+):\S+ (.*)$", line)
            if not match or match.group(1) not in TREC_CLASSES:
                raise ValueError(f"Malformed TREC file {path!r}, line {line_no}: {line!r}")
            labels.append(TREC_CLASSES.index(match.group(1)))
            texts.append(match.group(2))
    return TextDataset(texts, np.array(labels, np.int32), TREC_CLASSES)


def load_imdb(split="train", source=None, cache_dir=None):
    """IMDb Large Movie Review Dataset (Maas et al. 2011).

    Args:
        split: "train", "test" (25,000 labelled reviews each) or "unsup"
            (50,000 unlabelled reviews).
        source: ``aclImdb_v1.tar.gz``, a directory holding it (or ``imdb/``
            with it), or an extracted ``aclImdb`` directory. Default: the
            ``ULMFIT_TF_DATA`` mirror, else download.
        cache_dir: where downloads are kept (default ``~/.keras``).

    Reviews are ordered by (label, review id), so a dataset is the same
    however the archive was packed.
    """
    _check_split(split, ("train", "test", "unsup"))
    path = _mirror_file(source, ["aclImdb_v1.tar.gz", os.path.join("imdb", "aclImdb_v1.tar.gz"),
                                 "aclImdb", os.path.join("imdb", "aclImdb")])
    if path is None:
        path = _download(IMDB_URL, IMDB_MD5, cache_dir)
    if os.path.isdir(path) and os.path.basename(os.path.normpath(path)) != "aclImdb":
        path = os.path.join(path, "aclImdb")
    folder = "train" if split == "unsup" else split  # unsup/ sits beside neg/ and pos/
    pattern = re.compile(r"(?:^|/)aclImdb/" + folder + r"/(neg|pos|unsup)/(\d+)_(\d+)\.txt$")
    records = []
    for name, read in _walk_archive(path, "aclImdb"):
        match = pattern.search(name)
        if match and (split == "unsup") == (match.group(1) == "unsup"):
            label = 0 if split == "unsup" else IMDB_CLASSES.index(match.group(1))
            records.append((label, int(match.group(2)), int(match.group(3)),
                            read().decode("utf-8")))
    if not records:
        raise ValueError(f"No IMDb `{split}` reviews found in {path!r}.")
    records.sort(key=lambda r: r[:2])
    labels = None if split == "unsup" else np.array([r[0] for r in records], np.int32)
    return TextDataset([r[3] for r in records], labels,
                       () if split == "unsup" else IMDB_CLASSES,
                       np.array([r[2] for r in records], np.int32))


def _walk_archive(path, top):
    """Yields (member name, reader) for every file of a tar archive, or of a
    folder extracted from one (named as the member `top`/...)."""
    if os.path.isdir(path):
        for root, _, files in os.walk(path):
            for fname in files:
                full = os.path.join(root, fname)
                rel = top + "/" + os.path.relpath(full, path).replace(os.sep, "/")

                def read(full=full):
                    with open(full, "rb") as f:
                        return f.read()

                yield rel, read
        return
    # Streaming through the archive once takes ~4 s for IMDb; extracting its
    # 100k small files takes longer and doubles the disk use.
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            if member.isfile():
                yield member.name, archive.extractfile(member).read


def load_20news(split="train", source=None, cache_dir=None):
    """20 Newsgroups, "bydate" version (Lang 1995): posts as they are, headers
    included, decoded as Latin-1 (the posts are mostly ASCII; Latin-1 decodes
    every byte).

    Args:
        split: "train" (11,314 posts) or "test" (7,532).
        source: ``20news-bydate.tar.gz``, a directory holding it (or
            ``20news/`` with it), or an extracted folder holding
            ``20news-bydate-train/``. Default: the ``ULMFIT_TF_DATA``
            mirror, else download.
        cache_dir: where downloads are kept (default ``~/.keras``).

    Classes are the 20 newsgroup names, sorted; posts are ordered by
    (class, message number).
    """
    _check_split(split, ("train", "test"))
    name = "20news-bydate.tar.gz"
    path = _mirror_file(source, [name, os.path.join("20news", name),
                                 "20news-bydate-train", os.path.join("20news",
                                                                     "20news-bydate-train")])
    if path is None:
        path = _download(NEWSGROUPS_URL, NEWSGROUPS_SHA256, cache_dir, fname=name)
    if os.path.isdir(path) and os.path.basename(os.path.normpath(path)) == "20news-bydate-train":
        path = os.path.dirname(os.path.normpath(path))
    pattern = re.compile(r"(?:^|/)20news-bydate-" + split + r"/([^/]+)/([^/]+)$")
    records = []
    for member, read in _walk_archive(path, "20news"):
        match = pattern.search(member)
        if match:
            number = int(match.group(2)) if match.group(2).isdigit() else match.group(2)
            records.append((match.group(1), number, read().decode("latin-1")))
    if not records:
        raise ValueError(f"No 20 Newsgroups `{split}` posts found in {path!r}.")
    records.sort(key=lambda r: (r[0], str(r[1]).zfill(12)))
    classes = tuple(sorted({r[0] for r in records}))
    index = {c: i for i, c in enumerate(classes)}
    return TextDataset([r[2] for r in records],
                       np.array([index[r[0]] for r in records], np.int32), classes)


def load_sms(split="train", source=None, cache_dir=None):
    """SMS Spam Collection v.1 (Almeida et al. 2011): 5,574 messages, ham or spam.

    Args:
        split: "train" (4,459 messages) or "test" (1,115): the corpus has no
            split of its own, so a fixed fifth of it (a permutation seeded 0)
            is the test split, the same for every run.
        source: ``SMSSpamCollection`` (tab-separated ``label<TAB>text``, a
            header line or none), a directory holding it (or ``sms/`` with
            it), or UCI's zip. Default: the ``ULMFIT_TF_DATA`` mirror, else
            download.
        cache_dir: where downloads are kept (default ``~/.keras``).
    """
    _check_split(split, ("train", "test"))
    path = _mirror_file(source, ["SMSSpamCollection", os.path.join("sms", "SMSSpamCollection"),
                                 "sms+spam+collection.zip"])
    if path is None:
        path = _download(SMS_URL, None, cache_dir)
    if path.endswith(".zip"):
        import zipfile

        with zipfile.ZipFile(path) as archive:
            raw = archive.read("SMSSpamCollection")
    else:
        with open(path, "rb") as f:
            raw = f.read()
    texts, labels = [], []
    for line_no, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        label, _, text = line.partition("\t")
        if label not in SMS_CLASSES:
            if line_no == 1:  # a header line ("Label<TAB>SMS")
                continue
            raise ValueError(f"Malformed SMS spam file {path!r}, line {line_no}: {line!r}")
        labels.append(SMS_CLASSES.index(label))
        texts.append(text)
    labels = np.array(labels, np.int32)
    if tuple(np.bincount(labels, minlength=2)) != SMS_COUNTS:
        raise ValueError(f"{path!r} is not the SMS Spam Collection v.1: it holds "
                         f"{np.bincount(labels, minlength=2).tolist()} ham/spam messages, "
                         f"expected {list(SMS_COUNTS)}.")
    order = np.random.default_rng(0).permutation(len(texts))
    cut = int(round(len(texts) * SMS_TEST_FRACTION))
    chosen = np.sort(order[:cut] if split == "test" else order[cut:])
    return TextDataset([texts[i] for i in chosen], labels[chosen], SMS_CLASSES)


def iter_wikitext(name="wikitext-103", split="train", source=None, cache_dir=None):
    """Yields the articles of a WikiText split, one str each, reading the
    archive line by line (WikiText-103's training split is 540 MB).

    Args:
        name: "wikitext-2" or "wikitext-103".
        split: "train", "valid" or "test".
        source: the upstream zip (raw or tokenized variant), a directory
            holding it or its extracted folder (``wikitext-103-raw/``), or a
            split file (``wiki.valid.tokens``). Default: the
            ``ULMFIT_TF_DATA`` mirror, else download (the raw variant).
        cache_dir: where downloads are kept (default ``~/.keras``).
    """
    if name not in WIKITEXT_ARCHIVES:
        raise ValueError(f"`name` must be one of {list(WIKITEXT_ARCHIVES)}. Received: {name!r}")
    _check_split(split, ("train", "valid", "test"))
    variants = WIKITEXT_ARCHIVES[name]
    candidates = []
    for archive, folder, suffix, _ in variants:
        member = f"wiki.{split}{suffix}"
        candidates += [archive, os.path.join(folder, member), os.path.join(name, archive),
                       os.path.join(name, member)]
    if source is not None and os.path.isfile(source):
        path = os.fspath(source)
        if not path.endswith(".zip") and f"wiki.{split}." not in os.path.basename(path):
            raise ValueError(f"`source`={path!r} is not the WikiText `{split}` file "
                             f"(wiki.{split}.raw or wiki.{split}.tokens) nor its zip.")
    else:
        path = _mirror_file(source, candidates)
    if path is None:
        archive, _, _, sha256 = variants[0]
        path = _download(WIKITEXT_URL + archive, sha256, cache_dir)
    yield from _wikitext_articles(_wikitext_lines(path, split))


def _wikitext_lines(path, split):
    import io
    import zipfile

    if not path.endswith(".zip"):
        with open(path, encoding="utf-8") as f:
            yield from f
        return
    with zipfile.ZipFile(path) as archive:
        members = [m for m in archive.namelist()
                   if re.search(rf"(^|/)wiki\.{split}\.(raw|tokens)$", m)]
        if not members:
            raise ValueError(f"No WikiText `{split}` file in {path!r}.")
        with archive.open(members[0]) as raw:
            yield from io.TextIOWrapper(raw, encoding="utf-8")


def _wikitext_articles(lines):
    article = []
    for line in lines:
        if _WIKITEXT_TITLE.match(line.rstrip("\n")) and any(l.strip() for l in article):
            yield "".join(article).strip()
            article = []
        article.append(line)
    if any(l.strip() for l in article):
        yield "".join(article).strip()


def iter_folder(path, encoding="utf-8"):
    """Yields the texts `load_folder` (or, where it finds none, `load_corpus`)
    would return, in the same order, reading one file at a time."""
    path = os.fspath(path)
    try:
        files = _folder_files(path)[0]
    except ValueError:
        files = _corpus_files(path)
    for f in files:
        yield _read_text(f, encoding)


def _is_text_file(directory, name):
    """A document of a class folder: a ``.txt`` file or a file without an
    extension (as 20 Newsgroups' posts are), not a hidden one."""
    return (not name.startswith(".") and (name.endswith(".txt") or "." not in name)
            and os.path.isfile(os.path.join(directory, name)))


def load_folder(path, encoding="utf-8"):
    """A folder of text files, one document each.

    With class sub-folders (``path/<class>/<file>``, files named ``*.txt``
    or without an extension) the sub-folder names are the classes;
    otherwise the ``.txt`` files directly in `path` are read, unlabelled.
    Files are read in sorted order.
    """
    files, labels, classes = _folder_files(path)
    texts = [_read_text(f, encoding) for f in files]
    return TextDataset(texts, None if labels is None else np.array(labels, np.int32), classes)


def _folder_files(path):
    """(files, labels or None, classes) of `load_folder`."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"`path` is not a directory: {path!r}")
    subdirs = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d))
                     and any(_is_text_file(os.path.join(path, d), f)
                             for f in os.listdir(os.path.join(path, d))))
    top_files = sorted(f for f in os.listdir(path) if f.endswith(".txt"))
    if subdirs and not top_files:
        files, labels = [], []
        for label, sub in enumerate(subdirs):
            directory = os.path.join(path, sub)
            for fname in sorted(os.listdir(directory)):
                if _is_text_file(directory, fname):
                    files.append(os.path.join(directory, fname))
                    labels.append(label)
        return files, labels, tuple(subdirs)
    if not top_files:
        raise ValueError(f"`path`={path!r} holds no .txt files (nor class "
                         "sub-folders of text files).")
    return [os.path.join(path, f) for f in top_files], None, ()


def _undecodable_line(path, encoding):
    """(1-based line, 1-based byte in that line) of the first bytes of `path`
    that `encoding` cannot decode."""
    import codecs

    decoder = codecs.getincrementaldecoder(encoding)()
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                decoder.decode(raw)
            except UnicodeDecodeError as e:
                return number, e.start + 1
    return None, None


def _read_text(path, encoding):
    try:
        with open(path, encoding=encoding) as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"File {path!r} is not valid {encoding} ({e.reason} at "
                         f"byte {e.start}); pass `encoding=`.") from None


def load_csv(path, text_column="text", label_column="label", classes=None,
             delimiter=None, encoding="utf-8"):
    """A CSV or TSV file with a text column and an optional label column.

    Args:
        path: the file. The delimiter is a tab for ``.tsv`` files, else a
            comma, unless `delimiter` is given.
        text_column, label_column: header names. `label_column=None` reads
            unlabelled text.
        classes: the label set, in id order. Default: the sorted distinct
            labels of the file. A label outside a given set is an error.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"`path` is not a file: {path!r}")
    if delimiter is None:
        delimiter = "\t" if path.endswith(".tsv") else ","
    try:
        with open(path, encoding=encoding, newline="") as f:
            reader = csv.DictReader(f, delimiter=delimiter)
            header = reader.fieldnames or []
            for arg, col in (("text_column", text_column), ("label_column", label_column)):
                if col is not None and col not in header:
                    raise ValueError(f"`{arg}`={col!r} is not a column of {path!r}. "
                                     f"Columns: {header}")
            rows = list(reader)
    except UnicodeDecodeError as e:
        line, column = _undecodable_line(path, encoding)
        raise ValueError(
            f"{path!r} is not valid {encoding}: line {line}, byte {column} ({e.reason}). "
            "Pass its encoding: `encoding=` (CLI: `--encoding`, e.g. latin-1 or cp1252)."
        ) from None
    texts = [r[text_column] for r in rows]
    for i, t in enumerate(texts):
        if t is None:
            raise ValueError(f"Row {i + 2} of {path!r} has no `{text_column}` value.")
    if label_column is None:
        return TextDataset(texts)
    raw = [r[label_column] for r in rows]
    classes = tuple(sorted(set(raw))) if classes is None else tuple(classes)
    index = {c: i for i, c in enumerate(classes)}
    for i, label in enumerate(raw):
        if label not in index:
            raise ValueError(f"Row {i + 2} of {path!r}: label {label!r} is not in "
                             f"`classes` {list(classes)}.")
    return TextDataset(texts, np.array([index[l] for l in raw], np.int32), classes)


def load_corpus(path, encoding="utf-8"):
    """All ``.txt`` files under `path` (recursively, sorted), one document each."""
    return [_read_text(f, encoding) for f in _corpus_files(path)]


def _corpus_files(path):
    path = os.fspath(path)
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"`path` does not exist: {path!r}")
    files = sorted(os.path.join(root, f) for root, _, names in os.walk(path)
                   for f in names if f.endswith(".txt"))
    if not files:
        raise ValueError(f"`path`={path!r} holds no .txt files.")
    return files
