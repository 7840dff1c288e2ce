"""Python ULMFiT tokenizer for data preparation (twin of `GraphTokenizer`)."""

import multiprocessing
import os

import regex

from ulmfit_tf.text import rules

_REPEATED_CHAR = regex.compile("(" + rules.NOT_WHITESPACE_CLASS + r")\1{2,}")
_PUNCTUATION = regex.compile(rules.PUNCTUATION)
_WHITESPACE_RUN = regex.compile(rules.WHITESPACE_RUN)
_WORD = regex.compile(rules.WORD)
_ALL_CAPS = regex.compile(rules.ALL_CAPS)
_CAPITALISED = regex.compile(rules.CAPITALISED)


def _replace_rep(match):
    return f" {rules.TK_REP} {len(match.group(0))} {match.group(1)} "


def _check_text(text, arg_name):
    if isinstance(text, bytes):
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(
                f"`{arg_name}` must be a str or UTF-8 bytes. Received bytes "
                f"that are not valid UTF-8 ({e.reason} at byte {e.start}): "
                f"{text[max(0, e.start - 10):e.start + 10]!r}"
            ) from None
    if not isinstance(text, str):
        raise TypeError(
            f"`{arg_name}` must be a str. Received: {text!r} of type "
            f"{type(text).__name__}"
        )
    return text


def tokenize(text):
    """Tokenizes one text with the ULMFiT rules of `ulmfit_tf.text.rules`.

    Empty and whitespace-only texts give ``["xxbos"]``: the model then sees
    an empty document, which is what it is.

    Args:
        text: a `str`, or `bytes` holding UTF-8.

    Returns:
        A list of tokens, starting with ``"xxbos"``.
    """
    text = _check_text(text, "text")
    for literal, replacement in rules.HTML_REPLACEMENTS:
        if literal in text:
            text = text.replace(literal, replacement)
    text = _REPEATED_CHAR.sub(_replace_rep, text)
    text = _PUNCTUATION.sub(r" \1 ", text)
    words = [w for w in _WHITESPACE_RUN.split(text) if w]

    tokens = [rules.BOS]
    i, n = 0, len(words)
    while i < n:
        word = words[i]
        j = i + 1
        while j < n and words[j] == word:
            j += 1
        count = j - i
        if count >= rules.MIN_REPEAT and _WORD.fullmatch(word):
            tokens += [rules.TK_WREP, str(count)]
            _append_cased(tokens, word)
        else:
            for _ in range(count):
                _append_cased(tokens, word)
        i = j
    return tokens


def _append_cased(tokens, word):
    # islower() is True only for words without any Lu letter: a cheap skip.
    if len(word) > 1 and not word.islower():
        if _ALL_CAPS.fullmatch(word):
            tokens.append(rules.TK_UP)
        elif _CAPITALISED.fullmatch(word):
            tokens.append(rules.TK_MAJ)
    tokens.append(word.lower())


def _tokenize_chunk(texts):
    return [tokenize(t) for t in texts]


def tokenize_corpus(texts, num_workers=None, chunk_size=1000, progress=False):
    """Tokenizes many texts, in several processes when there are many.

    Args:
        texts: a sequence of str.
        num_workers: processes to use; default: all CPUs for more than
            ``chunk_size`` texts, else 1 (a pool costs more than it saves).
        chunk_size: texts sent to a worker at a time.
        progress: show a progress bar.

    Returns:
        A list of token lists, in the order of ``texts``.
    """
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, (str, bytes)):
            raise TypeError(
                f"`texts` must hold only str. Received item {i}: {t!r} of "
                f"type {type(t).__name__}"
            )
    if num_workers is None:
        num_workers = os.cpu_count() if len(texts) > chunk_size else 1
    if num_workers < 1:
        raise ValueError(f"`num_workers` must be >= 1. Received: {num_workers}")
    chunks = [texts[i:i + chunk_size] for i in range(0, len(texts), chunk_size)]
    bar = _progress_bar(len(texts), "tokenizing", progress)
    out = []
    if num_workers == 1:
        for chunk in chunks:
            out.extend(_tokenize_chunk(chunk))
            bar.update(len(chunk))
    else:
        # fork shares the already-imported module; spawn would re-import TF.
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(num_workers) as pool:
            for result in pool.imap(_tokenize_chunk, chunks):
                out.extend(result)
                bar.update(len(result))
    bar.close()
    return out


def _progress_bar(total, desc, enabled):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="doc", disable=not enabled)
