"""ULMFiT stage 3: a classifier on a fine-tuned language model's encoder."""

import dataclasses
import itertools
import json
import os
import time
import weakref

import keras
import numpy as np
import tensorflow as tf

from ulmfit_tf.data import ClassificationBatches
from ulmfit_tf.distribute import resolve_jit_compile, worker_run_dir
from ulmfit_tf.evaluation import classification_report, plot_confusion_matrix
from ulmfit_tf.layers.lstm_kernels import check_matmul_precision
from ulmfit_tf.layers.lstm_kernels import matmul_precision as lstm_matmul_precision
from ulmfit_tf.models import AWDLSTM, AWDLSTMClassifier, AWDLSTMLanguageModel
from ulmfit_tf.models.classifier import TASKS
from ulmfit_tf.text.rules import BOS_ID
from ulmfit_tf.training.callbacks import GradualUnfreezing
from ulmfit_tf.training.optimizers import OPTIMIZERS, build_optimizer
from ulmfit_tf.training.run_dir import (best_epoch_callback, fit_run, plot_history,
                                        save_model, write_config, write_json)
from ulmfit_tf.training.schedules import OneCycle, SlantedTriangular, StagedSlantedTriangular


SCHEDULES = ("stlr_stages", "stlr", "one_cycle", "constant")
MONITORS = ("val_loss", "val_accuracy")
# Named sets of settings: "default" is the dataclass' defaults; "paper" is
# ULMFiT's classifier recipe as the paper's scripts and fastai run it.
RECIPES = {
    "default": {},
    "paper": dict(epochs=5, batch_size=64, max_lr=1e-2, discriminative_factor=2.6,
                  schedule="stlr_stages", gradual_unfreezing=True, drop_mult=0.5, patience=None,
                  restore_best=False, bag_of_ngrams=False),
}
# batch_size="auto": batches of 64, or of 32 for a training split of fewer
# than 30 batches of 64. Twelve epochs of 15 batches (900 texts) left the
# classifier far behind; batches of 32 double its steps for about the same
# time and lowered dev error on every seed of IMDb and 20 Newsgroups. On
# TREC-6 (4,907 texts) they raised validation error, on SMS (4,013) it was
# level (docs/RESULTS.md 4.14).
SMALL_TRAINING_SET = 30 * 64
# A classifier trained from scratch has no pretrained knowledge to protect:
# one rate for all groups, all trained from the start (unless asked otherwise).
# It keeps early stopping: the recipe's run to the last epoch was measured
# only with a language model. Its rate comes from a range test: 2e-2 was
# chosen for a pretrained encoder, and the test's rate lowered TREC-6's
# from-scratch validation error on every seed, level on SMS and IMDb
# (docs/RESULTS.md 4.7).
# Its batch stays 64: batches of 32 were measured with a language model only.
SCRATCH_SETTINGS = {"discriminative_factor": None, "gradual_unfreezing": False,
                    "patience": 3, "restore_best": True, "tune_lr": True, "batch_size": 64}


def scratch_settings(given):
    """`SCRATCH_SETTINGS` under the settings `given`; a rate given (`max_lr`)
    without `tune_lr` is used as given, not replaced by the range test's."""
    settings = {**SCRATCH_SETTINGS, **given}
    if "max_lr" in given and "tune_lr" not in given:
        settings["tune_lr"] = False
    return settings


@dataclasses.dataclass
class ClassifierConfig:
    """A classifier training run: ULMFiT's recipe with settings chosen on
    validation error across tasks (docs/RESULTS.md, "Against classic
    baselines").

    Gradual unfreezing (one more group per epoch from the top), per-group
    rates (÷ `discriminative_factor` per group) and the slanted triangular
    rate, restarted at each unfreezing; Adam with betas 0.7/0.99 (the paper);
    `epochs` epochs, ending with the last epoch's weights: on every task
    measured, the last epoch had a lower error on held-out texts than the
    one early stopping picked from a small validation split (`patience`,
    `restore_best` and `monitor` turn it on). Then a blend with a TF-IDF
    bag of n-grams (`bag_of_ngrams`), weighted on the validation split. The
    paper's settings: ``ClassifierConfig.recipe("paper")``.
    """

    epochs: int = 12
    # An int, or "auto": 64, or 32 below `SMALL_TRAINING_SET` training texts.
    batch_size: object = "auto"
    max_lr: float = 2e-2
    # "stlr_stages": a slanted triangle per gradual-unfreezing stage (as
    # ULMFiT's scripts and fastai); "stlr": one over the run; "one_cycle";
    # "constant".
    schedule: str = "stlr_stages"
    # The paper's 2.6 leaves the embedding of a 5-group classifier at 1/46
    # of the head's rate: too slow for the lower layers in a short run.
    discriminative_factor: float = 1.3
    gradual_unfreezing: bool = True
    drop_mult: float = 0.5
    # "adam": DiscriminativeAdam; "sgd", "rmsprop", "lion", "adamw-groups":
    # a Keras optimizer per layer group (LayerGroupOptimizer).
    optimizer: str = "adam"
    weight_decay: float = 0.01
    beta_1: float = 0.7
    beta_2: float = 0.99
    # Clips the norm of all gradients together, as AWD-LSTM and fastai do
    # (Keras' `clipnorm` clips each variable's alone).
    global_clipnorm: float = None
    max_len: int = 72 * 20
    bptt: int = 72
    # AR and TAR on the encoder's outputs (fastai's classifier: 2 and 1).
    activation_alpha: float = 2.0
    temporal_beta: float = 1.0
    task: str = "single_label"
    valid_fraction: float = 0.1
    # Early stopping: stop after `patience` epochs without a better `monitor`
    # (None: train all `epochs`), and end with the best epoch's weights when
    # `restore_best`. Both need a validation split. Off by default: with
    # 100-500 validation texts the best epoch is noise (IMDb: the lowest
    # validation loss at epoch 4 was 30.7% on 2,000 other reviews, the last
    # epoch 20.6%; docs/RESULTS.md 4.4).
    patience: int = None
    restore_best: bool = False
    # What "best" means for early stopping and the weights kept: "val_loss",
    # or "val_accuracy" (ties: the lower loss).
    monitor: str = "val_loss"
    backwards: bool = False  # read texts right to left (with a backward LM)
    # Replace `max_lr` by a range test's suggestion (fastai's `lr_find`,
    # "valley") on what the first epoch trains: the head alone under
    # gradual unfreezing, else the whole model. Off with a language model:
    # its suggestions (4e-3 on TREC-6, 8.5e-3 on SMS) cost validation error
    # against the 2e-2 chosen across tasks; on from scratch
    # (`SCRATCH_SETTINGS`; docs/RESULTS.md 4.7).
    tune_lr: bool = False
    # Blend the classifier with a TF-IDF bag of n-grams on the same ids,
    # weights fitted on the validation split (single-label tasks with a
    # validation split; `ulmfit_tf.models.bag_of_ngrams`).
    bag_of_ngrams: bool = True
    seed: int = 0
    # True, False or "auto"; off where XLA cannot run the step (see
    # `ulmfit_tf.distribute.resolve_jit_compile`).
    jit_compile: object = False

    @classmethod
    def recipe(cls, name="default", **overrides):
        """The settings of the recipe `name` (see `RECIPES`), with `overrides`."""
        if name not in RECIPES:
            raise ValueError(f"`recipe` must be one of {tuple(RECIPES)}. Received: {name!r}")
        return cls(**{**RECIPES[name], **overrides})

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"`schedule` must be one of {SCHEDULES}. "
                             f"Received: {self.schedule!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}. "
                             f"Received: {self.optimizer!r}")
        if self.task not in TASKS:
            raise ValueError(f"`task` must be one of {TASKS}. Received: {self.task!r}")
        if self.monitor not in MONITORS:
            raise ValueError(f"`monitor` must be one of {MONITORS}. Received: {self.monitor!r}")
        if self.monitor == "val_accuracy" and self.task == "regression":
            raise ValueError("`monitor`='val_accuracy' needs a classification task; "
                             "a regression has no accuracy. Received: task='regression'")
        check_batch_size(self.batch_size)
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"`epochs` must be an int >= 1. Received: {self.epochs!r}")
        if self.patience is not None and (not isinstance(self.patience, int)
                                          or self.patience < 1):
            raise ValueError("`patience` must be None or an int >= 1. "
                             f"Received: {self.patience!r}")


def check_batch_size(batch_size):
    if batch_size != "auto" and (not isinstance(batch_size, (int, np.integer))
                                 or isinstance(batch_size, bool) or batch_size < 1):
        raise ValueError(f"`batch_size` must be 'auto' or an int >= 1. Received: {batch_size!r}")


def resolve_batch_size(batch_size, train_count):
    """The training batch for `train_count` texts: `batch_size` itself, or
    for "auto" 64, and 32 below `SMALL_TRAINING_SET` texts."""
    if batch_size != "auto":
        return batch_size
    return 32 if train_count < SMALL_TRAINING_SET else 64


def inference_batch_size(batch_size):
    """The batch for scoring texts under the setting `batch_size`."""
    return 64 if batch_size == "auto" else batch_size


def _schedule(config, steps_per_epoch, unfreezing=None):
    """The rate schedule; `unfreezing`, the run's `GradualUnfreezing`
    callback (None without), delimits the stages of "stlr_stages"."""
    total_steps = steps_per_epoch * config.epochs
    if config.schedule == "stlr_stages":
        # A stage for each run of epochs that train the same groups. An
        # epoch of one step has no room for a warm-up and a decay: then one
        # triangle spans the run.
        trained = [unfreezing.unfrozen_groups(e) if unfreezing is not None else None
                   for e in range(config.epochs)]
        epochs = [len(list(run)) for _, run in itertools.groupby(trained)]
        if steps_per_epoch < 2:
            epochs = [config.epochs]
        return StagedSlantedTriangular(config.max_lr, [e * steps_per_epoch for e in epochs])
    if config.schedule == "stlr":
        return SlantedTriangular(config.max_lr, total_steps,
                                 cut_frac=max(0.1, 1.0 / total_steps))
    if config.schedule == "one_cycle":
        return OneCycle(config.max_lr, total_steps)
    return config.max_lr


def build_classifier(source, num_classes, config):
    """A classifier whose encoder comes from `source`: an `AWDLSTMLanguageModel`
    (ULMFiT) or an int vocabulary size (from scratch, same architecture)."""
    if isinstance(source, AWDLSTMLanguageModel):
        model = AWDLSTMClassifier.from_language_model(
            source, num_classes, drop_mult=config.drop_mult, task=config.task,
            max_len=config.max_len, bptt=config.bptt, activation_alpha=config.activation_alpha,
            temporal_beta=config.temporal_beta)
    elif isinstance(source, dict):
        from ulmfit_tf.models.awd_lstm import CLASSIFIER_DROPOUTS

        rates = {k: v for k, v in CLASSIFIER_DROPOUTS.items() if k != "output_dropout"}
        encoder = AWDLSTM(mask_padding=True, output_bias=False, drop_mult=config.drop_mult,
                          **source, **rates)
        model = AWDLSTMClassifier(encoder, num_classes, task=config.task,
                                  max_len=config.max_len, bptt=config.bptt,
                                  activation_alpha=config.activation_alpha,
                                  temporal_beta=config.temporal_beta)
    else:
        raise TypeError("`source` must be an AWDLSTMLanguageModel or a dict of AWDLSTM "
                        f"sizes. Received: {source!r}")
    model(np.full((1, 2), BOS_ID, np.int32))
    return model


def loss_and_metrics(task):
    if task == "single_label":
        return "sparse_categorical_crossentropy", ["accuracy"]
    if task == "multi_label":
        return "binary_crossentropy", ["binary_accuracy"]
    return "mean_squared_error", ["mean_absolute_error"]


def train_classifier(source, train_docs, train_labels, valid_docs, valid_labels, classes,
                     vocab, config, run_dir, verbose=1, extra_callbacks=()):
    """Trains a classifier the ULMFiT way and writes a run directory.

    Args:
        source: a fine-tuned `AWDLSTMLanguageModel` (its encoder is copied),
            or a dict of `AWDLSTM` sizes to train from scratch.
        train_docs, valid_docs: lists of id arrays; labels as ints.
        classes: class names.
        vocab: the `Vocab` of the ids (saved with the model).
        config: a `ClassifierConfig`.
        run_dir: gets ``config.json``, ``metrics.json``, ``history.png``,
            ``confusion_valid.png``, ``vocab.txt``, ``classes.json`` and
            ``model.keras``; an interrupted run resumes from
            ``run_dir/backup`` when started again.

    Under a `tf.distribute` strategy, call it inside ``strategy.scope()``
    (`source` too must be created there); `config.batch_size` is global
    ("auto" resolves on the whole training split).
    Workers other than a multi-worker cluster's chief write to
    ``run_dir/workers/<task>``.

    Returns:
        (model, summary dict).
    """
    from ulmfit_tf.tasks.text_classifier import TextClassifier

    run_dir = worker_run_dir(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    if config.backwards:
        train_docs = [np.asarray(d)[::-1] for d in train_docs]
        valid_docs = [np.asarray(d)[::-1] for d in valid_docs]
    num_outputs = len(classes) if config.task != "regression" else 1
    # Resolved here, so that config.json holds the batch the run trains with.
    config = dataclasses.replace(
        config, batch_size=resolve_batch_size(config.batch_size, len(train_docs)))
    train = ClassificationBatches(train_docs, train_labels, config.batch_size, shuffle=True,
                                  num_classes=len(classes), seed=config.seed)
    valid = ClassificationBatches(valid_docs, valid_labels, config.batch_size, shuffle=False,
                                  num_classes=len(classes)) if len(valid_docs) else None
    total_steps = len(train) * config.epochs
    # The same model and training loop as the Python API's TextClassifier.
    text_model = TextClassifier(build_classifier(source, num_outputs, config), vocab,
                                list(classes) if config.task != "regression" else None,
                                backwards=config.backwards)
    if config.tune_lr:
        config = _tune_max_lr(text_model.classifier, train, config, run_dir, verbose=verbose)
    # Tuned once, here, so that config.json holds the rate the run trains with.
    text_model.compile(recipe=dataclasses.replace(config, tune_lr=False))
    model = text_model.classifier

    write_config(run_dir, config, classes=list(classes), vocabulary_size=len(vocab),
                 total_steps=total_steps, train_docs=len(train_docs),
                 valid_docs=len(valid_docs),
                 source="language model" if isinstance(source, AWDLSTMLanguageModel)
                 else "scratch")
    vocab.save(os.path.join(run_dir, "vocab.txt"))
    write_json(os.path.join(run_dir, "classes.json"), list(classes))

    keep_best = None
    if valid is not None and (config.patience is not None or config.restore_best):
        keep_best = best_epoch_callback(run_dir, config)
    history, seconds, batch_losses = text_model._fit_batches(
        train, valid, config.epochs, config.seed, list(extra_callbacks), verbose,
        run_dir=run_dir, keep_best=keep_best)
    summary = {"history": history, "wall_seconds": seconds}
    if keep_best is not None and keep_best.best_epoch is not None:
        summary["best_epoch"] = keep_best.best_epoch + 1  # 1-based, as the history plot
    if valid is not None and config.task == "single_label":
        valid_probabilities = predict_probabilities(model, valid_docs)
        report = classification_report(valid_labels, valid_probabilities, classes)
        summary["valid"] = report
        plot_confusion_matrix(report, os.path.join(run_dir, "confusion_valid.png"),
                              "validation")
    # The run's model file holds the classifier on ids with the optimizer
    # that trained it (its state and schedule), as before the text model.
    model.compile(optimizer=text_model.optimizer, loss=loss_and_metrics(config.task)[0],
                  metrics=loss_and_metrics(config.task)[1])
    save_model(model, os.path.join(run_dir, "model.keras"))
    if config.bag_of_ngrams and config.task == "single_label" and valid is not None:
        model = _blend_with_bag_of_ngrams(model, train_docs, train_labels, valid_docs,
                                          valid_labels, valid_probabilities, vocab, summary,
                                          run_dir)
    else:  # a blend left by an earlier run in this folder is not this model's
        for name in ("blend.json", "bag_of_ngrams.keras"):
            if os.path.exists(os.path.join(run_dir, name)):
                os.remove(os.path.join(run_dir, name))
    write_json(os.path.join(run_dir, "metrics.json"), summary)
    plot_history(summary["history"], os.path.join(run_dir, "history.png"), "classifier",
                 batch_losses=batch_losses)
    return model, summary


LR_FIND_STEPS = 100


def _tune_max_lr(classifier, train, config, run_dir=None, gradual_unfreezing=None,
                 verbose=0):
    """`config` with `max_lr` from a range test (fastai's `lr_find`, its
    "valley" suggestion) on the groups the first epoch trains: the head
    alone under gradual unfreezing (`gradual_unfreezing`, None: the
    config's). `train`: `ClassificationBatches` or a dataset of (ids,
    labels). With a `run_dir`, writes ``lr_find.json`` and ``lr_find.png``
    there, and a resumed run reads the rate it chose before instead of
    testing again. `verbose` as `lr_find`'s."""
    from ulmfit_tf.training.lr_finder import lr_find, plot_lr_find, steep

    path = run_dir and os.path.join(run_dir, "lr_find.json")
    if path and os.path.isfile(path) and os.path.isdir(os.path.join(run_dir, "backup")):
        with open(path) as f:
            return dataclasses.replace(config, max_lr=json.load(f)["suggestion"])
    if gradual_unfreezing is None:
        gradual_unfreezing = config.gradual_unfreezing
    groups = classifier.layer_groups
    trained = GradualUnfreezing(groups).unfrozen_groups(0) if gradual_unfreezing \
        else len(groups)
    frozen = [layer for group in groups[:len(groups) - trained] for layer in group]
    if isinstance(train, ClassificationBatches):
        # Its own batches: the run's keep their epoch count, so the training
        # that follows is the one `max_lr` = the suggestion would give.
        train = ClassificationBatches(train.docs, train.labels, train.batch_size,
                                      shuffle=True, seed=train.seed).as_dataset()
    for layer in frozen:
        layer.trainable = False
    try:
        classifier.compile(optimizer=keras.optimizers.Adam(1e-7, beta_1=config.beta_1,
                                                           beta_2=config.beta_2),
                           loss=loss_and_metrics(config.task)[0])
        start = time.perf_counter()
        rates, losses, suggestion = lr_find(classifier, train, num_steps=LR_FIND_STEPS,
                                            suggest="valley", verbose=verbose)
        seconds = time.perf_counter() - start
    finally:
        for layer in frozen:
            layer.trainable = True
    if path:
        plot_lr_find(rates, losses, suggestion, os.path.join(run_dir, "lr_find.png"))
        write_json(path, {"suggestion": suggestion, "steep": steep(rates, losses, LR_FIND_STEPS),
                          "untuned_max_lr": config.max_lr, "seconds": seconds,
                          "trained_groups": trained,
                          "rates": rates.tolist(), "losses": losses.tolist()})
    return dataclasses.replace(config, max_lr=suggestion)


def _blend_with_bag_of_ngrams(model, train_docs, train_labels, valid_docs, valid_labels,
                              valid_probabilities, vocab, summary, run_dir):
    """Fits the bag of n-grams and the blend's weights on the validation
    split (`valid_probabilities`: the classifier's there), saves them in the
    run (``bag_of_ngrams.keras``, ``blend.json``) and returns the blended
    model. The validation report of the blend is optimistic: its weights
    were fitted there."""
    from ulmfit_tf.models.bag_of_ngrams import (BlendedClassifier, bag_logits,
                                                blend_probabilities, fit_bag_of_ngrams,
                                                fit_blend, word_ids)

    bag, info = fit_bag_of_ngrams(train_docs, train_labels, valid_docs, valid_labels,
                                  word_ids(vocab), model.num_classes)
    valid_bag_logits = bag_logits(bag, valid_docs)
    classifier_weight, bag_weight, loss = fit_blend(valid_probabilities, valid_bag_logits,
                                                    valid_labels)
    blended = blend_probabilities(valid_probabilities, valid_bag_logits, classifier_weight,
                                  bag_weight).numpy()
    blend = {"classifier_weight": classifier_weight, "bag_weight": bag_weight,
             "valid_loss": loss, "bag_C": info["C"], "bag_ngrams": bag.num_ngrams,
             "bag_valid_error": info["valid_errors"][info["C"]],
             "classifier_valid_error": summary["valid"]["error_rate"],
             "valid_error": float(np.mean(np.argmax(blended, -1) != valid_labels))}
    save_model(keras.Sequential([keras.Input((None,), dtype="int32"), bag]),
               os.path.join(run_dir, "bag_of_ngrams.keras"))
    write_json(os.path.join(run_dir, "blend.json"), blend)
    summary["blend"] = blend
    return BlendedClassifier(model, bag, classifier_weight, bag_weight)


def split_labelled(docs, labels, valid_fraction, seed):
    """Seeded (train docs, train labels, valid docs, valid labels)."""
    from ulmfit_tf.training.language_model import split_documents

    train, valid = split_documents(list(zip(docs, labels)), valid_fraction, seed)
    return ([d for d, _ in train], np.array([l for _, l in train]),
            [d for d, _ in valid], np.array([l for _, l in valid]))


def compare_on_test(arms, split, classes, vocab, test_docs, test_labels, out_dir, verbose=0,
                    test_probabilities=None):
    """Trains each arm (name -> (source, config)) on the same split and reports
    its test metrics (also written to ``out_dir/<arm>/test_metrics.json``).
    `test_probabilities`: a dict that receives each arm's test probabilities
    (to average arms)."""
    reports = {}
    for name, (source, config) in arms.items():
        model, _ = train_classifier(source, *split, classes, vocab, config,
                                    os.path.join(out_dir, name), verbose=verbose)
        probabilities = predict_probabilities(model, test_docs, backwards=config.backwards)
        if test_probabilities is not None:
            test_probabilities[name] = probabilities
        reports[name] = classification_report(test_labels, probabilities, classes)
        write_json(os.path.join(out_dir, name, "test_metrics.json"), reports[name])
    return reports


# 0: plain sorted batches. Padding costs next to nothing since the LSTMs
# skip finished rows and project only real steps, and fuller batches keep
# the recurrent matmuls wide: on 200 IMDb reviews 0 read 26% faster than
# 0.75 and 4% faster than 0.5 (docs/PERFORMANCE.md, session 18).
INFERENCE_MIN_FILL = 0.0


def predict_probabilities(model, docs, batch_size=64, backwards=False,
                          matmul_precision="float32"):
    """Class probabilities for id arrays, in input order (sorted batches inside).

    Runs on this process's device, also under a strategy (under a
    multi-worker one, Keras' `predict` would take each worker's batch for a
    share of one global batch). `matmul_precision="bfloat16"`: the LSTMs'
    matmuls in bfloat16 (`ulmfit_tf.layers.lstm_kernels.matmul_precision`;
    faster only on a CPU with AVX512-BF16 or AMX)."""
    check_matmul_precision(matmul_precision)  # before a bad value is cached
    if backwards:
        docs = [np.asarray(d)[::-1] for d in docs]
    batches = ClassificationBatches(docs, None, batch_size, shuffle=False)
    order = batches.order()  # longest first
    predict = _inference_function(model, matmul_precision)
    outputs = []
    for rows in _similar_lengths(batches.lengths[order], batch_size):
        outputs.append(predict(tf.convert_to_tensor(batches.padded(order[rows]))).numpy())
    return batches.unsort(np.concatenate(outputs))


def _similar_lengths(sorted_lengths, batch_size, min_fill=INFERENCE_MIN_FILL):
    """Slices of descending lengths: at most `batch_size` texts, none shorter
    than `min_fill` of the batch's longest (with the default 0, consecutive
    slices of `batch_size`). Before the LSTMs skipped padding, a batch of the
    64 longest IMDb reviews, 1,849 down to 513 tokens, was 59% padding and
    half the inference time."""
    start = 0
    while start < len(sorted_lengths):
        end = start + 1
        while (end < len(sorted_lengths) and end - start < batch_size
               and sorted_lengths[end] >= min_fill * sorted_lengths[start]):
            end += 1
        yield slice(start, end)
        start = end


_INFERENCE_FUNCTIONS = weakref.WeakKeyDictionary()


def _inference_function(model, precision="float32"):
    """The model's forward pass, traced once for every batch shape.

    `predict_on_batch` traced again for each new batch width (sorted batches
    of IMDb reviews all differ) until Keras relaxed its shapes, and those
    traces cost more than the forward passes of a few hundred reviews."""
    functions = _INFERENCE_FUNCTIONS.setdefault(model, {})
    if precision not in functions:
        model_ref = weakref.ref(model)  # the cache must not keep the model alive

        def forward(ids):
            with lstm_matmul_precision(precision):
                return model_ref()(ids, training=False)

        functions[precision] = tf.function(
            forward, input_signature=[tf.TensorSpec([None, None], tf.int32)])
    return functions[precision]


def load_run(run_dir):
    """(model, vocab, classes, config dict) of a classifier run directory;
    the model is a `BlendedClassifier` where the run has a blend."""
    from ulmfit_tf.text import Vocab
    from ulmfit_tf.training.run_dir import load_model_file, require_run

    require_run(run_dir, "classifier")
    model = load_model_file(os.path.join(run_dir, "model.keras"))
    blend_path = os.path.join(run_dir, "blend.json")
    if os.path.isfile(blend_path):
        from ulmfit_tf.models.bag_of_ngrams import BlendedClassifier

        with open(blend_path) as f:
            blend = json.load(f)
        bag = load_model_file(os.path.join(run_dir, "bag_of_ngrams.keras")).layers[-1]
        model = BlendedClassifier(model, bag, blend["classifier_weight"], blend["bag_weight"])
    with open(os.path.join(run_dir, "classes.json")) as f:
        classes = json.load(f)
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    return model, Vocab.load(os.path.join(run_dir, "vocab.txt")), classes, config
