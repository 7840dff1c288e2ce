"""Python ULMFiT tokenizer for data preparation (twin of `GraphTokenizer`)."""

import contextlib
import functools
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading

import regex

import ulmfit_tf

from ulmfit_tf.text import rules

_REPEATED_CHAR = regex.compile("(" + rules.NOT_WHITESPACE_CLASS + r")\1{2,}")
_PUNCTUATION = regex.compile(rules.PUNCTUATION)
_PUNCTUATION_BUT_APOSTROPHES = regex.compile(rules.PUNCTUATION_BUT_APOSTROPHES)
_APOSTROPHE = regex.compile(rules.APOSTROPHE)
_CONTRACTION = regex.compile(rules.CONTRACTION)
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


def tokenize(text, split_contractions=False):
    """Tokenizes one text with the ULMFiT rules of `ulmfit_tf.text.rules`.

    Empty and whitespace-only texts give ``["xxbos"]``: the model then sees
    an empty document, which is what it is.

    Args:
        text: a `str`, or `bytes` holding UTF-8.
        split_contractions: split English contractions as spaCy does
            (``don't`` -> ``do n't``); a vocabulary's `split_contractions`
            says which rules its ids were made with.

    Returns:
        A list of tokens, starting with ``"xxbos"``.
    """
    text = _check_text(text, "text")
    for literal, replacement in rules.HTML_REPLACEMENTS:
        if literal in text:
            text = text.replace(literal, replacement)
    text = _REPEATED_CHAR.sub(_replace_rep, text)
    if split_contractions:
        text = _PUNCTUATION_BUT_APOSTROPHES.sub(r" \1 ", text)
        words = _split_contractions(w for w in _WHITESPACE_RUN.split(text) if w)
    else:
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
    if split_contractions:
        tokens = _split_suffixes(tokens)
    return tokens


def _has_apostrophe(word):
    return "'" in word or "\u2019" in word


def _split_contractions(words):
    out = []
    for word in words:
        if not _has_apostrophe(word):
            out.append(word)
            continue
        match = _CONTRACTION.fullmatch(word)
        stem, suffix = match.groups() if match else (word, "")
        out += [w for w in (_APOSTROPHE.sub(r" \1 ", stem) + suffix).split(" ") if w]
    return out


def _split_suffixes(tokens):
    out = []
    for token in tokens:
        match = _has_apostrophe(token) and _CONTRACTION.fullmatch(token)
        if match:
            out += [t for t in match.groups() if t]
        else:
            out.append(token)
    return out


def _append_cased(tokens, word):
    # islower() is True only for words without any Lu letter: a cheap skip.
    if len(word) > 1 and not word.islower():
        if _ALL_CAPS.fullmatch(word):
            tokens.append(rules.TK_UP)
        elif _CAPITALISED.fullmatch(word):
            tokens.append(rules.TK_MAJ)
    tokens.append(word.lower())


def _tokenize_chunk(texts, split_contractions=False):
    return [tokenize(t, split_contractions) for t in texts]


def tokenize_corpus(texts, num_workers=None, chunk_size=1000, progress=False,
                    split_contractions=False):
    """Tokenizes many texts, in several processes when there are many.

    Workers are new Python processes that import only the tokenizer: never
    forked from this one, which may run TensorFlow's or torch's threads (a
    fork of such a process can deadlock or crash), and, unlike
    multiprocessing's "spawn", they do not re-run the main script, so a
    script needs no ``if __name__ == "__main__"`` guard. A worker that dies
    raises `RuntimeError`.

    Args:
        texts: a sequence of str.
        num_workers: processes to use; default: all CPUs for more than
            ``chunk_size`` texts, else 1 (a pool costs more than it saves).
        chunk_size: texts sent to a worker at a time.
        progress: show a progress bar.
        split_contractions: as `tokenize`.

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
    if not isinstance(num_workers, int) or num_workers < 1:
        raise ValueError(f"`num_workers` must be an int >= 1. Received: {num_workers!r}")
    chunks = [texts[i:i + chunk_size] for i in range(0, len(texts), chunk_size)]
    bar = _progress_bar(len(texts), "tokenizing", progress)
    out = []
    tokenize_chunk = functools.partial(_tokenize_chunk, split_contractions=split_contractions)
    for result in map_in_workers(tokenize_chunk, chunks, min(num_workers, len(chunks))):
        out.extend(result)
        bar.update(len(result))
    bar.close()
    return out


def map_in_workers(function, items, num_workers, max_pending=None):
    """``map(function, items)`` in `num_workers` worker processes (in this
    process for one), results in order. `function` must be a module-level
    function (or a `functools.partial` of one) of a module that does not import TensorFlow; items and results
    travel pickled. `items` may be a generator: it is read as workers need
    items, and at most `max_pending` (default 4 per worker) are taken but
    not yet yielded, so a corpus larger than memory streams through."""
    if num_workers <= 1:
        yield from map(function, items)
        return
    items = iter(items)
    max_pending = max_pending or 4 * num_workers
    env = {**os.environ, ulmfit_tf.TOKENIZER_WORKER_ENV: "1"}
    workers = [subprocess.Popen(
        [sys.executable, "-c", "from ulmfit_tf.text.tokenizer import _serve; _serve()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env) for _ in range(num_workers)]
    reading = threading.Lock()
    slots = threading.Semaphore(max_pending)  # released as results are yielded
    taken = [0]  # items read from `items` so far
    done = queue.SimpleQueue()
    stop = threading.Event()

    def next_item():
        with reading:
            item = next(items, _END)
            if item is _END:
                return None
            taken[0] += 1
            return taken[0] - 1, item

    def drive(worker):
        # One thread per worker: send an item, wait for its result, repeat.
        try:
            pickle.dump(sys.path, worker.stdin)
            while not stop.is_set():
                slots.acquire()
                task = None if stop.is_set() else next_item()
                if task is None:
                    slots.release()
                    break
                pickle.dump((function, task[1]), worker.stdin)
                worker.stdin.flush()
                done.put((task[0], *pickle.load(worker.stdout)))
        except (EOFError, OSError, pickle.UnpicklingError):
            done.put((None, False, RuntimeError(_death_message(worker))))
        except Exception as e:  # `items` itself raised: raised again in the caller
            done.put((None, False, e))
        finally:
            done.put(None)  # this thread has finished

    threads = [threading.Thread(target=drive, args=(w,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    try:
        pending, next_index, running = {}, 0, len(threads)
        while running or pending:
            message = done.get() if running else None
            if message is None and running:
                running -= 1
            elif message is not None:
                index, ok, result = message
                if not ok:
                    raise result  # the worker's exception, or its death
                pending[index] = result
            while next_index in pending:
                yield pending.pop(next_index)
                next_index += 1
                slots.release()
            if not running and pending:
                raise RuntimeError("map_in_workers: results missing; a worker thread "
                                   "ended early")
    finally:
        stop.set()
        for _ in threads:  # wake threads waiting for a slot
            slots.release()
        for worker in workers:
            worker.kill()
        for thread in threads:  # each ends on its worker's closed pipe
            thread.join()
        for worker in workers:
            worker.wait()
            for pipe in (worker.stdin, worker.stdout):
                # A chunk a thread had written but not flushed when its worker
                # was killed makes close() raise BrokenPipeError; the pipe is
                # closed all the same.
                with contextlib.suppress(OSError):
                    pipe.close()


_END = object()


def _death_message(worker):
    code = worker.wait()
    how = (f"killed by {signal.Signals(-code).name}" if code < 0 and -code in
           signal.valid_signals() else f"exit code {code}")
    return (f"A tokenizer worker process died ({how}); its texts were not tokenized. "
            "Run again with `num_workers=1` (CLI: `--workers 1`) to tokenize in this "
            "process.")


def _serve():
    """A worker's loop: (function, item) in on stdin, (True, result) or
    (False, the exception it raised) out on stdout."""
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not corrupt the replies
    sys.path[:] = pickle.load(requests)
    while True:
        try:
            function, item = pickle.load(requests)
        except EOFError:
            return
        try:
            reply = (True, function(item))
        except Exception as e:  # raised again in the caller, as map would
            reply = (False, e)
        pickle.dump(reply, replies)
        replies.flush()


def _progress_bar(total, desc, enabled):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="doc", disable=not enabled)
