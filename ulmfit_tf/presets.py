"""Bundled pretrained language models, found by the name of their folder."""

import os

# The folders of `saved_models/` beside the package (a source checkout or an
# editable install); ULMFIT_TF_PRESETS points elsewhere.
PRESETS_DIR = os.environ.get("ULMFIT_TF_PRESETS") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "saved_models")
DEFAULT_PRESET = "general-en-base"


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
    raise ValueError(f"No run directory at {path!r}, and it is not a preset: `{arg_name}` "
                     f"must be a run directory or one of the presets {preset_names()} (in "
                     f"{PRESETS_DIR}). Received: {path!r}")
