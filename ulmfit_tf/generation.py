"""Text generation from an AWD-LSTM language model with keras-hub samplers."""

import numpy as np
import keras_hub
import regex
import tensorflow as tf

from ulmfit_tf.text import rules

SAMPLERS = ("greedy", "top_k", "top_p", "random")


def make_sampler(name="top_k", temperature=1.0, k=10, p=0.9, seed=None):
    """A keras-hub sampler by name: greedy, top_k, top_p or random."""
    if name == "greedy":
        return keras_hub.samplers.GreedySampler(temperature=temperature)
    if name == "top_k":
        return keras_hub.samplers.TopKSampler(k=k, temperature=temperature, seed=seed)
    if name == "top_p":
        return keras_hub.samplers.TopPSampler(p=p, temperature=temperature, seed=seed)
    if name == "random":
        return keras_hub.samplers.RandomSampler(temperature=temperature, seed=seed)
    raise ValueError(f"`sampler` must be one of {SAMPLERS}. Received: {name!r}")


def generate_ids(language_model, prompts, max_new_tokens, sampler, stop_at_new_document=True,
                 vocab_itos=None):
    """Continues each id prompt by up to `max_new_tokens` tokens.

    The sampler's `next` runs one token through the model with the LSTM
    state as the cache, so each new token costs one step, not a re-read of
    the whole text. Prompts of different lengths share one batch: positions
    inside a longer prompt are read, not sampled (the sampler's mask).

    Returns a list of id arrays, the prompts included.
    """
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("`prompts` must be a non-empty list of non-empty id sequences.")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"`max_new_tokens` must be an int >= 1. Received: {max_new_tokens!r}")
    lengths = np.array([len(p) for p in prompts])
    total = int(lengths.max()) + max_new_tokens
    ids = np.full((len(prompts), total), rules.PAD_ID, np.int32)
    for row, prompt in enumerate(prompts):
        ids[row, : len(prompt)] = prompt
    mask = np.arange(total)[None, :] < lengths[:, None]
    start = int(lengths.min())

    encoder = language_model.encoder
    state = encoder.zero_state(len(prompts))
    if start > 1:
        _, state = language_model.step(ids[:, : start - 1], state)

    # Never sample padding, unknown or filler tokens (fastai's no_unk).
    banned = np.zeros(encoder.vocabulary_size, np.float32)
    banned[[rules.UNK_ID, rules.PAD_ID]] = -1e9
    if vocab_itos is not None:
        banned[[i for i, t in enumerate(vocab_itos) if t.startswith("xxfake")]] = -1e9
    banned = tf.constant(banned)

    def next_token(prompt, cache, index):
        token = tf.expand_dims(prompt[:, index - 1], 1)
        logits, cache = language_model.step(token, list(cache))
        return logits[:, 0] + banned, None, tuple(cache)

    out = tf.function(sampler)(
        next_token, tf.constant(ids), cache=tuple(state), index=start, mask=tf.constant(mask),
        stop_token_ids=[rules.BOS_ID] if stop_at_new_document else None).numpy()
    results = []
    for row, length in enumerate(lengths):
        generated = out[row, length:length + max_new_tokens]
        if stop_at_new_document:
            stops = np.flatnonzero(generated == rules.BOS_ID)
            generated = generated[: stops[0]] if len(stops) else generated
        results.append(np.concatenate([out[row, :length], generated]))
    return results


_SUFFIX = regex.compile(rules.CONTRACTION_SUFFIX)
_WORD_START = "\u2581"  # SentencePiece's mark for a piece that starts a word
_SPACED_NT = regex.compile(" ((?i:n[" + rules.APOSTROPHES + "]t))")


def detokenize(tokens):
    """Readable text from ULMFiT tokens (undoes xxmaj, xxup, xxrep, xxwrep)."""
    words, i = [], 0
    while i < len(tokens):
        token = tokens[i]
        if token in (rules.BOS, rules.PAD, rules.EOS, rules.FLD):
            i += 1
            continue
        if token in (rules.TK_REP, rules.TK_WREP) and i + 2 < len(tokens) \
                and tokens[i + 1].isdigit():
            count, word = int(tokens[i + 1]), tokens[i + 2]
            words.append(word * count if token == rules.TK_REP else " ".join([word] * count))
            i += 3
            continue
        if token in (rules.TK_MAJ, rules.TK_UP):
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            if nxt is None or nxt in rules.SPECIAL_TOKENS:  # a marker without a word
                i += 1
                continue
            words.append(nxt.capitalize() if token == rules.TK_MAJ else nxt.upper())
            i += 2
            # "xxup do n't" was one word, DON'T.
            if token == rules.TK_UP and i < len(tokens) and _SUFFIX.fullmatch(tokens[i]):
                words.append(tokens[i].upper())
                i += 1
            continue
        words.append(token)
        i += 1
    text = " ".join(words)
    for punct in (".", ",", "!", "?", ";", ":", ")", "'", "\u2019"):
        text = text.replace(" " + punct, punct)
    return _SPACED_NT.sub(r"\1", text.replace("( ", "("))


def generate(language_model, vocab, prompt, max_new_tokens=50, sampler="top_k", **sampler_args):
    """Continues a text prompt; returns the whole text, detokenized."""
    if not isinstance(prompt, str):
        raise TypeError(f"`prompt` must be a str. Received: {prompt!r}")
    if len(vocab) != language_model.encoder.vocabulary_size:
        raise ValueError(f"`vocab` has {len(vocab)} tokens but the model "
                         f"{language_model.encoder.vocabulary_size}.")
    if isinstance(sampler, str):
        sampler = make_sampler(sampler, **sampler_args)
    ids = generate_ids(language_model, vocab.encode_texts([prompt], num_workers=1),
                       max_new_tokens, sampler, vocab_itos=vocab.itos)
    tokens = vocab.decode(ids[0])
    if vocab.sentencepiece is not None:  # pieces -> the rule tokens they spell
        tokens = "".join(tokens).replace(_WORD_START, " ").split()
    return detokenize(tokens)
