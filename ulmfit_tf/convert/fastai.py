"""fastai AWD_LSTM language models <-> ulmfit_tf.

Reads the layout of fastai's published English WT103 model: a `.pth`
state dict (``0.encoder.weight``, ``0.rnns.{i}.weight_hh_l0_raw``,
``0.rnns.{i}.module.weight_ih_l0``, the two biases, ``1.decoder.bias``, ...)
and a `.pkl` vocabulary (a pickled list of strings).

Model files from the internet are untrusted: weights are read with
``torch.load(weights_only=True)`` and the vocabulary with an unpickler that
refuses every global, so a pickle that carries code is an error, not a run.
PyTorch is needed only here: ``pip install -e ".[fastai]" -c constraints-fastai.txt``.
"""

import io
import os
import pickle
import re
import tarfile
import tempfile

import numpy as np

from ulmfit_tf.models import AWDLSTM, AWDLSTMLanguageModel
from ulmfit_tf.text import Vocab
from ulmfit_tf.text.rules import SPECIAL_TOKENS


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("Reading fastai weights needs PyTorch: "
                          "pip install -e '.[fastai]' -c constraints-fastai.txt") from None
    return torch


class _NoGlobalsUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: a vocabulary pickle may hold only "
            "lists, tuples, dicts and strings")


def load_vocab_pkl(path):
    """A fastai vocabulary `.pkl` (a list of str) as a `Vocab`.

    fastai pads its vocabularies with repeated ``xxfake`` tokens; they become
    ``xxfake0``, ``xxfake1``, ... (the ids stay the same).
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        itos = _NoGlobalsUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as e:
        raise ValueError(f"Unsafe or malformed vocabulary pickle {path!r}: {e}") from None
    if isinstance(itos, dict) and "itos" in itos:
        itos = itos["itos"]
    if not isinstance(itos, (list, tuple)) or not all(isinstance(t, str) for t in itos):
        raise ValueError(f"Vocabulary pickle {path!r} must hold a list of str. "
                         f"Received: {type(itos).__name__}")
    fake = 0
    renamed = []
    for token in itos:
        if token == "xxfake":
            token, fake = f"xxfake{fake}", fake + 1
        renamed.append(token)
    # fastai tokenizes with spaCy, which splits "don't" into "do n't".
    return Vocab(renamed, split_contractions=True)


def save_vocab_pkl(vocab, path):
    """Writes a `Vocab` as fastai's pickled list (``xxfake<i>`` -> ``xxfake``)."""
    itos = ["xxfake" if re.fullmatch(r"xxfake\d+", t) else t for t in vocab.itos]
    with open(path, "wb") as f:
        pickle.dump(itos, f)


def _state_dict(path):
    torch = _torch()
    state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # saved by Learner.save(with_opt=True)
    return {k: v.float().numpy() for k, v in state.items()}


def language_model_from_state_dict(state, **encoder_kwargs):
    """Builds an `AWDLSTMLanguageModel` holding fastai's weights."""
    state = {k: np.asarray(v) for k, v in state.items()}
    if "0.encoder.weight" not in state:
        raise ValueError("Not a fastai AWD_LSTM language model: no `0.encoder.weight`. "
                         f"Keys: {sorted(state)[:8]}")
    vocab_size, embedding_dim = state["0.encoder.weight"].shape
    num_layers = len({k.split(".")[2] for k in state if k.startswith("0.rnns.")})
    hidden_dim = state["0.rnns.0.weight_hh_l0_raw"].shape[1]
    encoder = AWDLSTM(int(vocab_size), embedding_dim=int(embedding_dim),
                      hidden_dim=int(hidden_dim), num_layers=num_layers, **encoder_kwargs)
    model = AWDLSTMLanguageModel(encoder)
    model(np.zeros((1, 2), np.int32))
    loaded = {"0.encoder.weight", "0.encoder_dp.emb.weight", "1.decoder.weight"}
    embedding = model.embedding
    embedding.embeddings.assign(state["0.encoder.weight"])
    if not np.array_equal(state.get("1.decoder.weight", state["0.encoder.weight"]),
                          state["0.encoder.weight"]):
        raise ValueError("The fastai decoder is not tied to the encoder; ulmfit_tf "
                         "language models always tie them.")
    embedding.output_bias.assign(state.get("1.decoder.bias", np.zeros(vocab_size)))
    loaded.add("1.decoder.bias")
    for layer in range(num_layers):
        prefix = f"0.rnns.{layer}."
        rnn = encoder.get_layer(f"rnn_{layer}")
        rnn.kernel.assign(state[prefix + "module.weight_ih_l0"].T)
        rnn.recurrent_kernel.assign(state[prefix + "weight_hh_l0_raw"].T)
        rnn.bias.assign(state[prefix + "module.bias_ih_l0"] + state[prefix + "module.bias_hh_l0"])
        # module.weight_hh_l0, in older fastai files, is the dropped copy of
        # the raw weight.
        loaded |= {prefix + n for n in ("module.weight_ih_l0", "weight_hh_l0_raw",
                                        "module.bias_ih_l0", "module.bias_hh_l0",
                                        "module.weight_hh_l0")}
    unused = sorted(set(state) - loaded)
    if unused:
        raise ValueError(f"fastai weights not understood (nothing is silently dropped): {unused}")
    return model


def load_fastai_language_model(weights_path, vocab_path, **encoder_kwargs):
    """Reads fastai's `.pth` + `.pkl` into (`AWDLSTMLanguageModel`, `Vocab`)."""
    vocab = load_vocab_pkl(vocab_path)
    model = language_model_from_state_dict(_state_dict(weights_path), **encoder_kwargs)
    if len(vocab) != model.encoder.vocabulary_size:
        raise ValueError(f"The vocabulary has {len(vocab)} tokens, the weights "
                         f"{model.encoder.vocabulary_size}.")
    if tuple(vocab.itos[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
        raise ValueError("The fastai vocabulary does not start with the special tokens.")
    return model, vocab


def to_fastai_state_dict(language_model):
    """fastai's state dict (numpy arrays) for an `AWDLSTMLanguageModel`."""
    embedding = language_model.embedding
    emb = np.asarray(embedding.embeddings.numpy())
    state = {"0.encoder.weight": emb, "0.encoder_dp.emb.weight": emb,
             "1.decoder.weight": emb, "1.decoder.bias": embedding.output_bias.numpy()}
    for layer in range(language_model.encoder.num_layers):
        rnn = language_model.encoder.get_layer(f"rnn_{layer}")
        prefix = f"0.rnns.{layer}."
        recurrent = rnn.recurrent_kernel.numpy().T
        state.update({prefix + "weight_hh_l0_raw": recurrent,
                      prefix + "module.weight_ih_l0": rnn.kernel.numpy().T,
                      prefix + "module.bias_ih_l0": rnn.bias.numpy(),
                      prefix + "module.bias_hh_l0": np.zeros_like(rnn.bias.numpy())})
    return state


def save_fastai_language_model(language_model, vocab, weights_path, vocab_path):
    """Writes fastai's `.pth` + `.pkl` for an `AWDLSTMLanguageModel`."""
    torch = _torch()
    state = {k: torch.from_numpy(np.ascontiguousarray(v))
             for k, v in to_fastai_state_dict(language_model).items()}
    torch.save(state, os.fspath(weights_path))
    save_vocab_pkl(vocab, vocab_path)


# fastai's published English AWD_LSTM language models (WikiText-103), as
# `language_model_learner(..., pretrained=True)` downloads them: a .tgz whose
# folder holds one .pth and one .pkl. fastai publishes no checksum for these
# two (its download_checks.py lists none), so none can be pinned here: the
# archive is loaded as untrusted data (see above) and the converted run
# records the sha256 of what was downloaded.
FASTAI_PRETRAINED = {
    "wt103-fwd": ("https://s3.amazonaws.com/fast-ai-modelzoo/wt103-fwd.tgz", False),
    "wt103-bwd": ("https://s3.amazonaws.com/fast-ai-modelzoo/wt103-bwd.tgz", True),
}


def fastai_pretrained(name, cache_dir=None):
    """The run directory of fastai's `name` ("wt103-fwd" or "wt103-bwd"):
    downloaded and converted the first time, then read from the cache
    (``<cache_dir>/ulmfit_tf/<name>``; default ``$KERAS_HOME``, else
    ``~/.keras``, as Keras' downloads)."""
    from ulmfit_tf.data.datasets import _download

    if name not in FASTAI_PRETRAINED:
        raise ValueError(f"`name` must be one of {list(FASTAI_PRETRAINED)}. Received: {name!r}")
    url, backwards = FASTAI_PRETRAINED[name]
    cache_dir = os.path.expanduser(
        cache_dir or os.environ.get("KERAS_HOME") or os.path.join("~", ".keras"))
    run_dir = os.path.join(cache_dir, "ulmfit_tf", name)
    if os.path.isfile(os.path.join(run_dir, "model.keras")):
        return run_dir
    archive = _download(url, None, cache_dir)
    return convert_fastai_archive(archive, run_dir, backwards=backwards, source=url)


def convert_fastai_archive(archive, run_dir, backwards=False, source=None):
    """Converts a fastai model archive (a tar holding one ``.pth`` and one
    ``.pkl``, the layout fastai publishes) into a language-model run directory."""
    archive = os.fspath(archive)
    with tarfile.open(archive, "r:*") as tar:
        members = {ext: [m for m in tar.getmembers() if m.isfile() and m.name.endswith(ext)]
                   for ext in (".pth", ".pkl")}
        if any(len(found) != 1 for found in members.values()):
            found = sorted(m.name for group in members.values() for m in group)
            raise ValueError(f"{archive!r} must hold one .pth and one .pkl file (fastai's "
                             f"layout). Found: {found}")
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for ext, (member,) in members.items():
                paths.append(os.path.join(tmp, "model" + ext))
                with open(paths[-1], "wb") as f:
                    f.write(tar.extractfile(member).read())
            return convert_fastai_files(*paths, run_dir, backwards=backwards,
                                        source=source or archive,
                                        source_sha256=_sha256(archive))


def convert_fastai_files(weights_path, vocab_path, run_dir, backwards=False, source=None,
                         source_sha256=None):
    """Writes fastai's `.pth` + `.pkl` as a language-model run directory
    (``model.keras``, ``vocab.txt``, ``config.json``) that every stage reads."""
    from ulmfit_tf.training.run_dir import save_model, write_json
    from ulmfit_tf.utils import atomic_directory

    model, vocab = load_fastai_language_model(weights_path, vocab_path)
    encoder = model.encoder
    with atomic_directory(run_dir) as tmp:
        save_model(model, os.path.join(tmp, "model.keras"))
        vocab.save(os.path.join(tmp, "vocab.txt"))
        write_json(os.path.join(tmp, "config.json"), {
            "converted_from": "fastai", "source": os.fspath(source or weights_path),
            "source_sha256": source_sha256 or _sha256(weights_path),
            "backwards": bool(backwards), "vocabulary_size": len(vocab),
            "embedding_dim": encoder.embedding_dim, "hidden_dim": encoder.hidden_dim,
            "num_layers": encoder.num_layers, "drop_mult": encoder.drop_mult})
    return os.fspath(run_dir)


def _sha256(path):
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
