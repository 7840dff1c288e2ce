"""Pretrained language models by name: the bundled ones (folders of
`saved_models/`) and fastai's WikiText-103 models (downloaded and converted
once)."""

import os

# The folders of `saved_models/` beside the package (a source checkout or an
# editable install); ULMFIT_TF_PRESETS points elsewhere.
PRESETS_DIR = os.environ.get("ULMFIT_TF_PRESETS") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "saved_models")
# The default start of stage 2: `general-en-base` trained on to 63.9M tokens
# (three runs that continue each other; docs/RESULTS.md 1.3). It replaced
# `general-en-base` (10.1M tokens) when it was better on validation downstream.
DEFAULT_PRESET = "general-en-base-e4"
# The backward LM of the forward + backward ensemble: `general-en-base`'s
# twin (the same vocabulary, model size and held-out documents, read right
# to left), not yet trained on as the forward model was.
DEFAULT_BACKWARD_PRESET = "general-en-base-bwd"
# fastai's published models (ulmfit_tf.convert.fastai.FASTAI_PRETRAINED).
FASTAI_PRESETS = ("wt103-fwd", "wt103-bwd")


def preset_names():
    """Names of the bundled language models (folders holding a model.keras)."""
    if not os.path.isdir(PRESETS_DIR):
        return []
    return sorted(name for name in os.listdir(PRESETS_DIR)
                  if os.path.isfile(os.path.join(PRESETS_DIR, name, "model.keras")))


def resolve_preset(name_or_path, arg_name="preset"):
    """The run directory of a preset name or of a path to a run directory."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"`{arg_name}` must be a preset name or a run directory. "
                        f"Received: {name_or_path!r}")
    path = os.fspath(name_or_path)
    if os.path.isdir(path):
        return path
    if path in preset_names():
        return os.path.join(PRESETS_DIR, path)
    if path in FASTAI_PRESETS:
        from ulmfit_tf.convert.fastai import fastai_pretrained

        return fastai_pretrained(path)
    raise ValueError(f"No run directory at {path!r}, and it is not a preset: `{arg_name}` "
                     f"must be a run directory or one of the presets {preset_names()} (in "
                     f"{PRESETS_DIR}) or fastai's {list(FASTAI_PRESETS)}. Received: {path!r}")
