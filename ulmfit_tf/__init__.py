"""ULMFiT (Howard & Ruder, 2018) in Keras 3 on TensorFlow."""

import os as _os
import sys as _sys

__version__ = "0.1.0"

# Set in the environment of the Python tokenizer's worker processes
# (`ulmfit_tf.text.tokenizer`), which need only `regex`.
TOKENIZER_WORKER_ENV = "ULMFIT_TF_TOKENIZER_WORKER"


def import_keras_classes():
    """Imports every module that registers a class with Keras, so that
    `keras.saving.load_model` finds them. A plain `import ulmfit_tf` does it,
    except in the two places that must not pay for TensorFlow (below)."""
    from ulmfit_tf import layers, models, tasks, text  # noqa: F401
    from ulmfit_tf.text import graph_tokenizer  # noqa: F401
    from ulmfit_tf.training import schedules  # noqa: F401


def _needs_no_keras():
    # A tokenizer worker would otherwise spend seconds and hundreds of MB
    # importing TensorFlow for nothing; the `ulmfit-tf` command imports it
    # after parsing, so that `--help` and argument errors are instant and
    # TensorFlow's log level can be set first.
    return (_os.environ.get(TOKENIZER_WORKER_ENV) == "1"
            or _os.path.basename(_sys.argv[0] if _sys.argv else "") == "ulmfit-tf")


if not _needs_no_keras():
    import_keras_classes()


def __getattr__(name):
    # `ulmfit_tf.TextClassifier` without importing Keras for the tokenizer
    # workers and the command line until it is asked for.
    if name in ("TextClassifier", "LanguageModel"):
        from ulmfit_tf import tasks

        return getattr(tasks, name)
    raise AttributeError(f"module 'ulmfit_tf' has no attribute {name!r}")
