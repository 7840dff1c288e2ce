"""ULMFiT stage 1: train an AWD-LSTM language model on a corpus."""

import dataclasses
import math
import os
import time

import keras
import keras_hub
import numpy as np

from ulmfit_tf.data import LMStream
from ulmfit_tf.distribute import resolve_jit_compile, worker_run_dir
from ulmfit_tf.models import AWDLSTM, AWDLSTMLanguageModel
from ulmfit_tf.recipes import FINETUNE_RECIPE, PRETRAIN_RECIPES
from ulmfit_tf.text.rules import BOS_ID
from ulmfit_tf.training.run_dir import (fit_run, plot_history, save_model, write_config,
                                        write_json)
from ulmfit_tf.training.callbacks import GradualUnfreezing
from ulmfit_tf.training.optimizers import OPTIMIZERS, build_optimizer
from ulmfit_tf.training.schedules import OneCycle, SlantedTriangular


@dataclasses.dataclass
class LanguageModelConfig:
    """Everything that defines a language-model training run.

    Defaults are the "paper" recipe: fastai's AWD_LSTM and
    `language_model_learner` settings, except the schedule's `max_lr`, which
    depends on the model size. ``LanguageModelConfig.recipe("general-en-base")``
    is the first run of the bundled models (later runs continued it).
    """

    embedding_dim: int = 400
    hidden_dim: int = 1152
    num_layers: int = 3
    drop_mult: float = 1.0
    batch_size: int = 64
    bptt: int = 70
    epochs: int = 1
    # None: an epoch is a pass over the corpus. A number: epochs of about
    # this many tokens (see `LMStream`); `epochs` then counts those.
    tokens_per_epoch: int = None
    max_lr: float = 2e-3
    schedule: str = "one_cycle"  # "one_cycle", "stlr" or "constant"
    # "adam": DiscriminativeAdam; "sgd", "rmsprop", "lion", "adamw-groups":
    # a Keras optimizer per layer group (LayerGroupOptimizer).
    optimizer: str = "adam"
    weight_decay: float = 0.01
    beta_1: float = 0.8
    beta_2: float = 0.99
    # Clips the norm of all gradients together, as AWD-LSTM and fastai do
    # (Keras' `clipnorm` clips each variable's alone).
    global_clipnorm: float = None
    valid_fraction: float = 0.05
    backwards: bool = False
    seed: int = 0
    # Which documents `pretrain` holds out (and `--max-tokens` keeps); None:
    # `seed`. Apart from `seed` so that a run continued with another `seed`
    # (a new document order) validates on the documents its start did.
    split_seed: int = None
    # True, False or "auto"; off where XLA cannot run the step (see
    # `ulmfit_tf.distribute.resolve_jit_compile`).
    jit_compile: object = False
    # Stage 2 (fine-tuning): per-group rates (top group / factor ** depth) and
    # epochs that train only the top group (embedding + decoder) first.
    discriminative_factor: float = None
    freeze_epochs: int = 0

    @classmethod
    def recipe(cls, name, **overrides):
        """The pretraining settings of the recipe `name` ("paper" or
        "general-en-base", see `ulmfit_tf.recipes.PRETRAIN_RECIPES`), with
        `overrides`."""
        if name not in PRETRAIN_RECIPES:
            raise ValueError(f"`recipe` must be one of {tuple(PRETRAIN_RECIPES)}. "
                             f"Received: {name!r}")
        return cls(**{**PRETRAIN_RECIPES[name], **overrides})

    def __post_init__(self):
        if self.schedule not in ("one_cycle", "stlr", "constant"):
            raise ValueError("`schedule` must be 'one_cycle', 'stlr' or 'constant'. "
                             f"Received: {self.schedule!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}. "
                             f"Received: {self.optimizer!r}")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ValueError(f"`valid_fraction` must be in [0, 1). Received: "
                             f"{self.valid_fraction!r}")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"`epochs` must be an int >= 1. Received: {self.epochs!r}")
        if self.tokens_per_epoch is not None and (
                not isinstance(self.tokens_per_epoch, int) or self.tokens_per_epoch < 1):
            raise ValueError("`tokens_per_epoch` must be None or an int >= 1. Received: "
                             f"{self.tokens_per_epoch!r}")
        if self.split_seed is not None and not isinstance(self.split_seed, int):
            raise ValueError(f"`split_seed` must be None or an int. Received: "
                             f"{self.split_seed!r}")
        if not isinstance(self.freeze_epochs, int) or not 0 <= self.freeze_epochs < self.epochs:
            raise ValueError("`freeze_epochs` must be an int in [0, epochs). Received: "
                             f"{self.freeze_epochs!r}")


def finetune_config(model, **overrides):
    """Stage 2's `LanguageModelConfig` for `model` (its sizes and drop_mult).
    Fewer epochs than the recipe's frozen ones leave the last epoch unfrozen."""
    encoder = model.encoder
    settings = {**FINETUNE_RECIPE, **overrides}
    if "freeze_epochs" not in overrides:
        settings["freeze_epochs"] = max(0, min(settings["freeze_epochs"], settings["epochs"] - 1))
    return LanguageModelConfig(**{
        "embedding_dim": encoder.embedding_dim, "hidden_dim": encoder.hidden_dim,
        "num_layers": encoder.num_layers, "drop_mult": encoder.drop_mult, **settings})


def split_documents(docs, valid_fraction, seed):
    """Seeded split of documents into (train, valid); valid may be empty."""
    order = np.random.default_rng(seed).permutation(len(docs))
    n_valid = int(round(len(docs) * valid_fraction))
    if valid_fraction and n_valid == 0 and len(docs) > 1:
        n_valid = 1
    return [docs[i] for i in order[n_valid:]], [docs[i] for i in order[:n_valid]]


def make_schedule(config, total_steps):
    if config.schedule == "stlr":
        # At least one warm-up step however short the run (as the classifier).
        return SlantedTriangular(config.max_lr, total_steps,
                                 cut_frac=max(0.1, 1.0 / total_steps))
    if config.schedule == "one_cycle":
        return OneCycle(config.max_lr, total_steps)
    return config.max_lr


def compile_language_model(model, config, total_steps, optimizer=None):
    """Compiles `model` with the config's optimizer and schedule (or `optimizer`)."""
    if optimizer is None:
        optimizer = build_optimizer(config.optimizer, model, make_schedule(config, total_steps),
                                    config.discriminative_factor,
                                    weight_decay=config.weight_decay, beta_1=config.beta_1,
                                    beta_2=config.beta_2, global_clipnorm=config.global_clipnorm)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras_hub.metrics.Perplexity(from_logits=True, name="perplexity")],
                  # Off by default: sequence lengths vary, so XLA would recompile often.
                  jit_compile=resolve_jit_compile(config.jit_compile, model.distribute_strategy))
    return model


class _Throughput(keras.callbacks.Callback):
    def __init__(self, stream):
        super().__init__()
        self.stream, self.seconds, self.tokens = stream, 0.0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._epoch = epoch

    def on_test_begin(self, logs=None):
        self._pause = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        end = getattr(self, "_pause", None) or time.perf_counter()
        self.seconds += end - self._start
        self.tokens += self.stream.batch_size * sum(self.stream.sequence_lengths(self._epoch))
        self._pause = None


def train_language_model(train_docs, valid_docs, vocab, config, run_dir, model=None,
                         verbose=1):
    """Trains (or continues training) an AWD-LSTM language model.

    Args:
        train_docs, valid_docs: lists of id arrays (valid may be empty).
        vocab: the `Vocab` of the ids.
        config: a `LanguageModelConfig`.
        run_dir: where the run writes ``config.json``, ``metrics.json``,
            ``history.png``, ``vocab.txt`` and ``model.keras``; an interrupted
            run resumes from ``run_dir/backup`` when started again.
        model: an `AWDLSTMLanguageModel` to continue from (stage 2, see
            `remap_language_model`); default a new one from `config`.

    Under a `tf.distribute` strategy, call it (and create `model`) inside
    ``strategy.scope()``; `config.batch_size` is the global batch. Workers
    of a multi-worker cluster other than the chief write to
    ``run_dir/workers/<task>``.

    Returns:
        (model, metrics dict).
    """
    run_dir = worker_run_dir(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    if model is None:
        model = AWDLSTMLanguageModel(AWDLSTM(
            len(vocab), embedding_dim=config.embedding_dim, hidden_dim=config.hidden_dim,
            num_layers=config.num_layers, drop_mult=config.drop_mult))
    elif model.encoder.vocabulary_size != len(vocab):
        raise ValueError(f"`model` has {model.encoder.vocabulary_size} tokens, `vocab` "
                         f"{len(vocab)}; remap it first (remap_language_model).")
    train, valid = language_model_streams(train_docs, valid_docs, config)
    write_config(run_dir, config, vocabulary_size=len(vocab),
                 total_steps=sum(len(train.sequence_lengths(e)) for e in range(config.epochs)),
                 train_tokens=train.num_tokens,
                 valid_tokens=0 if valid is None else valid.num_tokens)
    vocab.save(os.path.join(run_dir, "vocab.txt"))
    summary, batch_losses = fit_language_model(model, train, valid, config, run_dir,
                                               verbose=verbose)
    save_model(model, os.path.join(run_dir, "model.keras"))
    write_json(os.path.join(run_dir, "metrics.json"), summary)
    if summary["history"]:
        plot_history(summary["history"], os.path.join(run_dir, "history.png"),
                     "language model", batch_losses=batch_losses)
    return model, summary


def language_model_streams(train_docs, valid_docs, config):
    """(train, valid) `LMStream`s of id arrays; valid is None when too short."""
    train = LMStream(train_docs, config.batch_size, config.bptt, backwards=config.backwards,
                     seed=config.seed, tokens_per_epoch=config.tokens_per_epoch)
    valid = None
    if valid_docs and sum(map(len, valid_docs)) > 2 * config.batch_size + 1:
        valid = LMStream(valid_docs, config.batch_size, config.bptt, variable_bptt=False,
                         shuffle=False, backwards=config.backwards)
    return train, valid


def fit_language_model(model, train, valid, config, run_dir=None, callbacks=(), verbose=1,
                       optimizer=None):
    """The language-model training loop of every stage (`train_language_model`,
    `LanguageModel.fit`): compiles `model` with the config's optimizer and
    schedule (or `optimizer`), freezes all but the top group for
    `freeze_epochs`, and fits.

    Returns (summary dict, per-batch training losses)."""
    total_steps = sum(len(train.sequence_lengths(e)) for e in range(config.epochs))
    model = compile_language_model(model, config, total_steps, optimizer)
    model(np.full((1, 2), BOS_ID, np.int32))  # BackupAndRestore needs a built model
    model.reset_states()
    throughput = _Throughput(train)
    all_callbacks = [throughput]
    if config.freeze_epochs:
        groups = model.layer_groups
        all_callbacks.append(GradualUnfreezing(
            groups, [1] * config.freeze_epochs + [len(groups)]))
    metrics, seconds, batch_losses = fit_run(model, train, valid, config.epochs, run_dir,
                                             config.seed, [*all_callbacks, *callbacks],
                                             verbose)
    summary = {"history": metrics, "wall_seconds": seconds,
               "train_tokens_per_second": round(throughput.tokens / max(throughput.seconds, 1e-9))}
    if metrics.get("val_loss"):
        summary["val_perplexity"] = math.exp(metrics["val_loss"][-1])
    return summary, batch_losses
