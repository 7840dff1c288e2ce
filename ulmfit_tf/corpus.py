"""Reading a corpus argument from the command line or the API into texts."""

import os

from ulmfit_tf.data import datasets

NAMED_CORPORA = ("trec", "imdb", "imdb-unsup", "20news", "sms", "wikitext-2",
                 "wikitext-103")


def read_texts(spec, split="train", source=None, text_column="text", label_column="label",
               encoding="utf-8"):
    """Reads texts (and labels, when there are any) named by `spec`.

    `spec` is one of `NAMED_CORPORA` (read from `source`, the
    ``ULMFIT_TF_DATA`` mirror or a download), or a path: a directory of text
    files (class sub-folders of ``.txt`` or extensionless files for labels;
    ``.txt`` files read recursively when unlabelled), a ``.csv``/``.tsv``
    file, or one ``.txt`` file, decoded with `encoding`.
    """
    if spec == "trec":
        return datasets.load_trec(split, source=source)
    if spec in ("imdb", "imdb-unsup"):
        return datasets.load_imdb("unsup" if spec == "imdb-unsup" else split, source=source)
    if spec == "20news":
        return datasets.load_20news(split, source=source)
    if spec == "sms":
        return datasets.load_sms(split, source=source)
    if spec in datasets.WIKITEXT_ARCHIVES:
        return datasets.TextDataset(list(datasets.iter_wikitext(spec, split, source=source)))
    if not isinstance(spec, (str, os.PathLike)) or not os.path.exists(spec):
        raise ValueError(
            f"A corpus must be one of {list(NAMED_CORPORA)} or an existing path "
            f"(folder of text files, .csv/.tsv file, .txt file). Received: {spec!r}")
    spec = os.fspath(spec)
    if spec.endswith((".csv", ".tsv")):
        return datasets.load_csv(spec, text_column=text_column, label_column=label_column,
                                 encoding=encoding)
    if os.path.isdir(spec):
        try:
            return datasets.load_folder(spec, encoding=encoding)
        except ValueError:
            return datasets.TextDataset(datasets.load_corpus(spec, encoding=encoding))
    return datasets.TextDataset(datasets.load_corpus(spec, encoding=encoding))


def iter_texts(spec, split="train", source=None, encoding="utf-8"):
    """The texts of `read_texts`, one at a time: WikiText and folders are read
    as they are consumed, so a corpus larger than memory can be prepared."""
    if spec in datasets.WIKITEXT_ARCHIVES:
        return datasets.iter_wikitext(spec, split, source=source)
    if isinstance(spec, (str, os.PathLike)) and os.path.isdir(spec):
        return datasets.iter_folder(spec, encoding=encoding)
    return iter(read_texts(spec, split, source, encoding=encoding).texts)
