"""`TextClassifier`: ULMFiT's classifier as one Keras model on raw strings."""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from ulmfit_tf.models import AWDLSTMClassifier, AWDLSTMLanguageModel
from ulmfit_tf.tasks.inputs import check_labels, check_texts
from ulmfit_tf.text import GraphTokenizer, Vocab
from ulmfit_tf.text.rules import PAD_ID

# Keras' own compile arguments; every other keyword of `compile` is a
# `ClassifierConfig` field of the recipe.
_KERAS_COMPILE_ARGS = ("loss_weights", "weighted_metrics", "run_eagerly", "steps_per_execution",
                       "jit_compile", "auto_scale_loss")
# Fields that shape the model: they are set when it is built, not at compile.
_MODEL_FIELDS = ("drop_mult", "max_len", "bptt", "activation_alpha", "temporal_beta", "task",
                 "backwards")
# Length buckets of a streamed dataset's batches (tokens): texts of similar
# length share a batch, so little of it is padding.
_BUCKET_BOUNDARIES = [8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048]


def encode_texts(texts, vocab):
    """Token ids of raw texts with the Python tokenizer (worker processes for
    many texts), as the CLI encodes them."""
    return vocab.encode_texts(texts, progress=len(texts) > 5000)


def language_model_and_vocab(language_model, vocabulary=None, arg_name="language_model"):
    """(AWDLSTMLanguageModel, Vocab, backwards) from a `LanguageModel`, a
    model plus `vocabulary`, a run directory or a preset name."""
    import json
    import os

    from ulmfit_tf.presets import resolve_preset
    from ulmfit_tf.tasks.language_model import LanguageModel
    from ulmfit_tf.training.run_dir import load_model_file, require_run

    if isinstance(language_model, LanguageModel):
        return language_model.language_model, language_model.vocab, language_model.backwards
    if isinstance(language_model, AWDLSTMLanguageModel):
        if vocabulary is None:
            raise ValueError(f"`vocabulary` is needed with an AWDLSTMLanguageModel as "
                             f"`{arg_name}`. Received: vocabulary=None")
        return language_model, as_vocab(vocabulary), False
    run = resolve_preset(language_model, arg_name)
    require_run(run, "language_model", arg_name)
    config_path = os.path.join(run, "config.json")
    backwards = False
    if os.path.isfile(config_path):
        with open(config_path) as f:
            backwards = bool(json.load(f).get("backwards"))
    return (load_model_file(os.path.join(run, "model.keras")),
            Vocab.load(os.path.join(run, "vocab.txt")), backwards)


def as_vocab(vocabulary):
    if isinstance(vocabulary, Vocab):
        return vocabulary
    if isinstance(vocabulary, str):
        return Vocab.load(vocabulary)
    if isinstance(vocabulary, (list, tuple)):
        return Vocab(list(vocabulary))
    raise TypeError("`vocabulary` must be a Vocab, a list of tokens or a path. "
                    f"Received: {vocabulary!r}")


def _recipe(recipe, overrides, arg_name="recipe"):
    from ulmfit_tf.training.classifier import ClassifierConfig

    fields = {f.name for f in dataclasses.fields(ClassifierConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"Unknown recipe settings {unknown}: they must be ClassifierConfig "
                        f"fields ({sorted(fields)}).")
    if recipe is None or isinstance(recipe, str):
        return ClassifierConfig.recipe(recipe or "default", **overrides)
    if isinstance(recipe, ClassifierConfig):
        return dataclasses.replace(recipe, **overrides)
    raise TypeError(f"`{arg_name}` must be a recipe name or a ClassifierConfig. "
                    f"Received: {recipe!r}")


def _outputs(num_classes, class_names, task):
    """(class names or None, number of outputs)."""
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if len(set(class_names)) != len(class_names) or not class_names:
            raise ValueError(f"`class_names` must be distinct names. Received: {class_names}")
        if num_classes is not None and num_classes != len(class_names):
            raise ValueError(f"`num_classes` ({num_classes}) and `class_names` "
                             f"({len(class_names)} names) disagree.")
        return class_names, len(class_names)
    if task == "regression":
        return None, 1
    if not isinstance(num_classes, int) or num_classes < 2 - (task == "multi_label"):
        raise ValueError(f"Give `class_names` or `num_classes` (an int >= 2). Received: "
                         f"num_classes={num_classes!r}")
    return [str(i) for i in range(num_classes)], num_classes


@keras.saving.register_keras_serializable(package="ulmfit_tf")
class TextClassifier(keras.Model):
    """ULMFiT's text classifier on raw strings (Howard & Ruder 2018, sec. 3.3).

    The in-graph tokenizer (`GraphTokenizer`, core TF ops) and an
    `AWDLSTMClassifier`, as one Keras model: `fit`, `evaluate` and
    `predict` take lists of strings (or a `tf.data.Dataset` of them), and
    `save`/`keras.saving.load_model` keep the vocabulary and class names.

    ```python
    clf = TextClassifier.from_preset("general-en-base-e4", class_names=["neg", "pos"])
    clf.compile()         # ULMFiT's recipe: per-group rates, STLR, unfreezing
    clf.fit(texts, labels)
    clf.predict(["a fine film"])  # [1, 2] probabilities
    ```

    `compile()` without an optimizer sets the recipe (`ClassifierConfig`, the
    CLI's `train-classifier` defaults: `compile(max_lr=1e-2)` changes one
    setting, `compile(recipe="paper")` takes the paper's); `fit` then sizes
    the slanted triangular schedule from its epochs and steps, holds out
    `valid_fraction` of the texts for validation (unless given
    `validation_data` or `validation_split`), and unfreezes one layer group
    per epoch from the top. A Keras optimizer, loss and metrics given to
    `compile` are used as they are.

    The model's input is a string tensor [B] (tokenized in the graph) or
    right-padded token ids [B, T] (int); its output the probabilities.

    `fit` trains the classifier alone; `train_classifier` (and the CLI)
    then blend it with a bag of n-grams (`ClassifierConfig.bag_of_ngrams`),
    and `from_run` loads such a run's blend as its classifier.

    Args:
        classifier: an `AWDLSTMClassifier` (or the `BlendedClassifier` of a
            run).
        vocabulary: its `Vocab`, a list of tokens or a vocab file.
        class_names: names of the outputs (None: "0", "1", ...; none for
            regression).
        max_chars: in-graph tokenization keeps each text's first
            `max_chars` characters (None: all).
        backwards: texts are read right to left (a backward LM's classifier).
        split_contractions, sentencepiece: the tokenizer's contraction rule
            and subword model; default: the `Vocab`'s (off and None for a
            list of tokens).
    """

    def __init__(self, classifier, vocabulary, class_names=None, max_chars=None,
                 backwards=False, split_contractions=None, sentencepiece=None, **kwargs):
        super().__init__(**kwargs)
        from ulmfit_tf.models.bag_of_ngrams import BlendedClassifier

        if not isinstance(classifier, (AWDLSTMClassifier, BlendedClassifier)):
            raise TypeError(f"`classifier` must be an AWDLSTMClassifier or a "
                            f"BlendedClassifier. Received: {classifier!r}")
        self.classifier = classifier
        self.tokenizer = GraphTokenizer(as_vocab(vocabulary), max_chars=max_chars,
                                        name="tokenizer",
                                        split_contractions=split_contractions,
                                        sentencepiece=sentencepiece)
        if self.tokenizer.vocabulary_size != classifier.encoder.vocabulary_size:
            raise ValueError(f"`vocabulary` has {self.tokenizer.vocabulary_size} tokens, the "
                             f"classifier's embedding {classifier.encoder.vocabulary_size}.")
        if classifier.task == "regression":
            self.class_names = list(class_names) if class_names else None
        else:
            self.class_names, _ = _outputs(classifier.num_classes, class_names, classifier.task)
        self.max_chars, self.backwards = max_chars, bool(backwards)
        self.default_recipe = _recipe(None, {"task": classifier.task,
                                             "backwards": self.backwards})
        self.recipe = None
        self._fit_optimizer = False
        self.built = classifier.built

    # Constructors ---------------------------------------------------------

    @classmethod
    def from_language_model(cls, language_model, num_classes=None, class_names=None,
                            vocabulary=None, recipe=None, seed=None, max_chars=None,
                            **settings):
        """A classifier whose encoder starts from a (fine-tuned) language model.

        Args:
            language_model: a `LanguageModel`, a preset name (see
                `ulmfit_tf.presets.preset_names()`), a language-model run
                directory, or an `AWDLSTMLanguageModel` with `vocabulary`.
            num_classes, class_names: the outputs (class names are kept in
                the model; labels may then be given by name).
            recipe: a recipe name or `ClassifierConfig` (default: the CLI's);
                `settings` override its fields (e.g. ``drop_mult=0.3``,
                ``task="multi_label"``); `compile()` uses the same recipe.
            seed: seeds Keras' random generators before the head is
                initialised (as `train-classifier --seed` does).
        """
        from ulmfit_tf.training.classifier import build_classifier

        config = _recipe(recipe, settings)
        class_names, outputs = _outputs(num_classes, class_names, config.task)
        lm, vocab, backwards = language_model_and_vocab(language_model, vocabulary)
        if "backwards" not in settings:  # a backward LM reads texts backwards
            config = dataclasses.replace(config, backwards=backwards)
        if seed is not None:
            keras.utils.set_random_seed(seed)
        model = cls(build_classifier(lm, outputs, config), vocab, class_names,
                    max_chars=max_chars, backwards=config.backwards)
        model.default_recipe = config
        return model

    @classmethod
    def from_preset(cls, preset, **kwargs):
        """`from_language_model` of a bundled language model, by its name."""
        from ulmfit_tf.presets import resolve_preset

        return cls.from_language_model(resolve_preset(preset, "preset"), **kwargs)

    @classmethod
    def from_scratch(cls, vocabulary, num_classes=None, class_names=None, embedding_dim=400,
                     hidden_dim=1152, num_layers=3, recipe=None, seed=None, max_chars=None,
                     **settings):
        """The same architecture from random weights (no pretraining): one
        rate for all groups (from a range test unless `max_lr` is given) and
        no gradual unfreezing unless `settings` say otherwise, as
        `train-classifier` without `--lm`."""
        from ulmfit_tf.training.classifier import build_classifier, scratch_settings

        config = _recipe(recipe, scratch_settings(settings))
        vocab = as_vocab(vocabulary)
        class_names, outputs = _outputs(num_classes, class_names, config.task)
        if seed is not None:
            keras.utils.set_random_seed(seed)
        sizes = {"vocabulary_size": len(vocab), "embedding_dim": embedding_dim,
                 "hidden_dim": hidden_dim, "num_layers": num_layers}
        model = cls(build_classifier(sizes, outputs, config), vocab, class_names,
                    max_chars=max_chars, backwards=config.backwards)
        model.default_recipe = config
        return model

    @classmethod
    def from_run(cls, run_dir, max_chars=None):
        """The classifier of a `train-classifier` run directory."""
        from ulmfit_tf.training.classifier import load_run

        model, vocab, classes, config = load_run(run_dir)
        return cls(model, vocab, classes if model.task != "regression" else None,
                   max_chars=max_chars, backwards=bool(config.get("backwards")))

    # Properties -------------------------------------------------------------

    @property
    def vocab(self):
        return self.tokenizer.vocab

    @property
    def task(self):
        return self.classifier.task

    @property
    def layer_groups(self):
        return self.classifier.layer_groups

    # Forward pass -----------------------------------------------------------

    def token_ids(self, text):
        """Right-padded ids [B, T] of a string tensor [B], in reading order."""
        ids = self.tokenizer(text)
        if self.backwards:
            ids = tf.reverse(ids, axis=[1])
        return ids.to_tensor(default_value=PAD_ID)

    def call(self, inputs, training=False):
        inputs = tf.convert_to_tensor(inputs)
        if inputs.dtype == tf.string:
            inputs = self.token_ids(inputs)
        return self.classifier(inputs, training=training)

    # Training ---------------------------------------------------------------

    def compile(self, optimizer=None, loss=None, metrics=None, recipe=None, **kwargs):
        """Configures training; with no arguments, ULMFiT's recipe.

        Args:
            optimizer: None for the recipe's (per-group rates, its schedule
                sized by `fit`), or any Keras optimizer (used as it is).
            loss, metrics: None for the task's (sparse categorical
                cross-entropy and accuracy for single-label).
            recipe: a recipe name ("default", "paper") or a
                `ClassifierConfig`; None: the one the model was built with.
            **kwargs: `ClassifierConfig` fields that override the recipe
                (``max_lr=1e-2``, ``patience=None``, ...) and Keras' own
                compile arguments (``jit_compile``, ``run_eagerly``, ...).
        """
        from ulmfit_tf.distribute import resolve_jit_compile
        from ulmfit_tf.training.classifier import loss_and_metrics
        from ulmfit_tf.training.optimizers import build_optimizer

        keras_args = {k: kwargs.pop(k) for k in list(kwargs) if k in _KERAS_COMPILE_ARGS}
        for field in _MODEL_FIELDS:
            if field in kwargs and kwargs[field] != getattr(self.default_recipe, field):
                raise ValueError(f"`{field}` shapes the model: set it when building it "
                                 f"(from_language_model(..., {field}=...)), not in compile. "
                                 f"Received: {field}={kwargs[field]!r}")
        base = self.default_recipe if recipe is None else recipe
        config = _recipe(base, kwargs)
        if recipe is not None:  # the model's structure stays what it is
            config = dataclasses.replace(config, **{
                f: getattr(self.default_recipe, f) for f in _MODEL_FIELDS})
        default_loss, default_metrics = loss_and_metrics(self.task)
        keras_args.setdefault("jit_compile",
                              resolve_jit_compile(config.jit_compile, self.distribute_strategy))
        self._fit_optimizer = optimizer is None
        if optimizer is None:
            # A constant rate until fit knows the steps; a schedule, not a
            # float, so the optimizer has the variables of the one fit makes.
            constant = keras.optimizers.schedules.PolynomialDecay(config.max_lr, 1,
                                                                  config.max_lr)
            with self.distribute_strategy.scope():
                optimizer = build_optimizer(
                    config.optimizer, self.classifier, constant,
                    config.discriminative_factor, weight_decay=config.weight_decay,
                    beta_1=config.beta_1, beta_2=config.beta_2,
                    global_clipnorm=config.global_clipnorm)
        self._compile_args = dict(loss=loss or default_loss,
                                  metrics=default_metrics if metrics is None else metrics,
                                  **keras_args)
        self.recipe = config
        super().compile(optimizer=optimizer, **self._compile_args)

    def fit(self, x=None, y=None, batch_size=None, epochs=None, verbose="auto", callbacks=None,
            validation_split=None, validation_data=None, gradual_unfreezing=None, seed=None,
            steps_per_epoch=None):
        """Trains on texts and labels the ULMFiT way.

        Args:
            x: a list (tuple, 1-D array) of strings, or a `tf.data.Dataset`
                of (string, label): unbatched elements are tokenized lazily
                and batched by similar length; batched ones keep their
                batches.
            y: labels for a list `x`: class names or ids (single-label),
                lists of names or a 0/1 array (multi-label), numbers
                (regression).
            batch_size, epochs: default the recipe's ("auto": 64, or 32 for
                fewer than 1,920 training texts; 12, no early stopping
                unless the recipe's `patience` is set).
            validation_split: the fraction of `x` held out (seeded); None:
                the recipe's `valid_fraction` unless `validation_data` is given.
            validation_data: (texts, labels) or a `tf.data.Dataset`.
            gradual_unfreezing: None: the recipe's.
            seed: data order and dropout masks (None: the recipe's).
            steps_per_epoch: batches per epoch of a dataset (counted with one
                pass over it when its length is unknown).

        Returns:
            The `keras.callbacks.History`.
        """
        from ulmfit_tf.data import ClassificationBatches
        from ulmfit_tf.training.classifier import (check_batch_size, resolve_batch_size,
                                                   split_labelled)

        if self.recipe is None:
            raise RuntimeError("Call `compile()` before `fit` (with no arguments for "
                               "ULMFiT's recipe).")
        config = self.recipe
        epochs = config.epochs if epochs is None else epochs
        batch_size = config.batch_size if batch_size is None else batch_size
        check_batch_size(batch_size)
        seed = config.seed if seed is None else seed
        verbose = 1 if verbose == "auto" else verbose
        if isinstance(x, tf.data.Dataset):
            if y is not None:
                raise ValueError("`y` must be None when `x` is a tf.data.Dataset (it yields "
                                 f"the labels). Received: y of type {type(y).__name__}")
            if validation_split:
                raise ValueError("`validation_split` needs in-memory texts; with a "
                                 "tf.data.Dataset give `validation_data`. Received: "
                                 f"validation_split={validation_split!r}")
            if batch_size == "auto":
                batch_size = resolve_batch_size(batch_size, _count_texts(x))
            train = self._ids_dataset(x, batch_size, labelled=True)
            steps = steps_per_epoch or _count_batches(train)
            train = train.apply(tf.data.experimental.assert_cardinality(steps)) \
                if steps_per_epoch is None else train
            valid = None
            if isinstance(validation_data, tf.data.Dataset):
                valid = self._ids_dataset(validation_data, batch_size, labelled=True)
                valid = valid.apply(tf.data.experimental.assert_cardinality(
                    _count_batches(valid)))
            elif validation_data is not None:
                valid = self._batches(*_pair(validation_data), batch_size, shuffle=False)
            self._fit_batches(train, valid, epochs, seed, callbacks, verbose,
                              gradual_unfreezing=gradual_unfreezing, steps_per_epoch=steps)
            return self.history
        texts = check_texts(x, "x")
        labels = check_labels(y, self.class_names, self.task, len(texts), "y")
        docs = encode_texts(texts, self.vocab)
        if validation_data is not None:
            if validation_split:
                raise ValueError("Give `validation_data` or `validation_split`, not both.")
            batch_size = resolve_batch_size(batch_size, len(docs))
            train = ClassificationBatches(self._reading_order(docs), labels, batch_size,
                                          shuffle=True, seed=seed)
            valid = self._batches(*_pair(validation_data), batch_size, shuffle=False,
                                  seed=seed)
        else:
            fraction = config.valid_fraction if validation_split is None else validation_split
            if not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
                raise ValueError(f"`validation_split` must be in [0, 1). Received: "
                                 f"{validation_split!r}")
            train_docs, train_labels, valid_docs, valid_labels = split_labelled(
                docs, labels, fraction, seed)
            batch_size = resolve_batch_size(batch_size, len(train_docs))
            train = ClassificationBatches(self._reading_order(train_docs), train_labels,
                                          batch_size, shuffle=True, seed=seed)
            valid = ClassificationBatches(self._reading_order(valid_docs), valid_labels,
                                          batch_size, shuffle=False) if valid_docs else None
        self._fit_batches(train, valid, epochs, seed, callbacks, verbose,
                          gradual_unfreezing=gradual_unfreezing)
        return self.history

    def _fit_batches(self, train, valid, epochs, seed, callbacks=None, verbose=1,
                     run_dir=None, keep_best=None, gradual_unfreezing=None,
                     steps_per_epoch=None):
        """The recipe's training loop on prepared batches (also the CLI's,
        through `train_classifier`). Returns `fit_run`'s (history dict, wall
        seconds, per-batch losses)."""
        from ulmfit_tf.training.callbacks import GradualUnfreezing
        from ulmfit_tf.training.classifier import _schedule, _tune_max_lr
        from ulmfit_tf.training.optimizers import build_optimizer
        from ulmfit_tf.training.run_dir import best_epoch_callback, fit_run

        config = dataclasses.replace(self.recipe, epochs=epochs)
        steps = steps_per_epoch or len(train)
        unfreeze = config.gradual_unfreezing if gradual_unfreezing is None \
            else gradual_unfreezing
        if self._fit_optimizer and config.tune_lr:
            config = _tune_max_lr(self.classifier, train, config, run_dir, unfreeze, verbose)
        unfreezing = GradualUnfreezing(self.classifier.layer_groups) if unfreeze else None
        if self._fit_optimizer:
            with self.distribute_strategy.scope():
                optimizer = build_optimizer(
                    config.optimizer, self.classifier, _schedule(config, steps, unfreezing),
                    config.discriminative_factor, weight_decay=config.weight_decay,
                    beta_1=config.beta_1, beta_2=config.beta_2,
                    global_clipnorm=config.global_clipnorm)
            super().compile(optimizer=optimizer, **self._compile_args)
        if keep_best is None and valid is not None and (config.patience is not None
                                                        or config.restore_best):
            keep_best = best_epoch_callback(None, config)
        return fit_run(self, train, valid, epochs, run_dir, seed,
                       [*([unfreezing] if unfreezing else []), *(callbacks or [])], verbose,
                       keep_best=keep_best, fit=super().fit)

    # Evaluation and prediction ----------------------------------------------

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False,
                 **kwargs):
        """`evaluate` on a list of texts and labels, or a dataset of (text, label)."""
        batch_size = batch_size or self._inference_batch_size()
        if isinstance(x, tf.data.Dataset):
            data = self._ids_dataset(x, batch_size, labelled=True)
        else:
            data = self._batches(x, y, batch_size, shuffle=False).as_dataset()
        return super().evaluate(data, verbose=verbose, return_dict=return_dict, **kwargs)

    def predict(self, x, batch_size=None, verbose="auto", matmul_precision="float32",
                **kwargs):
        """Probabilities [N, C] (in input order) of a list of texts or a
        dataset of texts (or of (text, label): the labels are dropped).

        `matmul_precision="bfloat16"` (a list of texts only): the LSTMs'
        matmuls in bfloat16, faster on a CPU with AVX512-BF16 or AMX
        (`ulmfit_tf.layers.lstm_kernels.matmul_precision`)."""
        from ulmfit_tf.training.classifier import predict_probabilities

        batch_size = batch_size or self._inference_batch_size()
        if isinstance(x, tf.data.Dataset):
            if matmul_precision != "float32":
                raise ValueError("`matmul_precision` applies to a list of texts, not a "
                                 f"dataset. Received: {matmul_precision!r} with a dataset")
            return super().predict(self._ids_dataset(x, batch_size, labelled=False),
                                   verbose=verbose, **kwargs)
        texts = check_texts(x, "x")
        # Batches sorted by length, traced once (the fast path).
        return predict_probabilities(self, encode_texts(texts, self.vocab), batch_size,
                                     backwards=self.backwards,
                                     matmul_precision=matmul_precision)

    def predict_labels(self, x, batch_size=None):
        """Class names of the most probable class (single-label)."""
        if self.task != "single_label":
            raise ValueError(f"predict_labels needs a single-label task. This model's: "
                             f"{self.task!r}")
        probabilities = self.predict(x, batch_size=batch_size)
        return [self.class_names[i] for i in np.argmax(probabilities, axis=1)]

    def export(self, filepath, version=None, overwrite=False, **kwargs):
        """Writes the TF Serving SavedModel of `ulmfit-tf export` (raw strings
        in, probabilities and labels out) to ``filepath/<version>/``; keyword
        arguments as `ulmfit_tf.export.export_classifier`. Returns its path."""
        from ulmfit_tf.export import export_classifier

        if self.task == "regression":
            raise ValueError("export writes classifiers; this model's task is regression.")
        return export_classifier(self.classifier, self.vocab, self.class_names, filepath,
                                 version=version, backwards=self.backwards,
                                 overwrite=overwrite, **kwargs)

    # Data -------------------------------------------------------------------

    def _inference_batch_size(self):
        from ulmfit_tf.training.classifier import inference_batch_size

        return inference_batch_size((self.recipe or self.default_recipe).batch_size)

    def _reading_order(self, docs):
        return [np.asarray(d)[::-1] for d in docs] if self.backwards else docs

    def _batches(self, texts, labels, batch_size, shuffle, seed=0):
        from ulmfit_tf.data import ClassificationBatches

        texts = check_texts(texts, "x")
        labels = check_labels(labels, self.class_names, self.task, len(texts), "y")
        return ClassificationBatches(self._reading_order(encode_texts(texts, self.vocab)),
                                     labels, batch_size, shuffle=shuffle, seed=seed)

    def _ids_dataset(self, dataset, batch_size, labelled):
        """A dataset of strings (or (string, label)) as batches of ids."""
        spec = dataset.element_spec
        has_labels = isinstance(spec, tuple)
        if labelled and (not has_labels or len(spec) != 2):
            raise ValueError("The dataset must yield (text, label) pairs. Received elements "
                             f"of spec {spec}")
        text_spec = spec[0] if has_labels else spec
        if isinstance(text_spec, tf.TensorSpec) and text_spec.dtype.is_integer:
            return dataset  # token ids already (Keras' validation inside fit)
        if not isinstance(text_spec, tf.TensorSpec) or text_spec.dtype != tf.string:
            raise TypeError(f"The dataset's texts must be tf.string. Received: {text_spec}")
        if text_spec.shape.rank not in (0, 1):
            raise ValueError("The dataset must yield one text (a scalar string) or a batch "
                             f"of them (a vector). Received shape {text_spec.shape}")
        label_of = self._label_lookup() if labelled else None

        def encode(text, *label):
            ids = self.tokenizer(text)
            if self.backwards:
                ids = tf.reverse(ids, axis=[-1])
            if text_spec.shape.rank == 1:
                ids = ids.to_tensor(default_value=PAD_ID)
            return (ids, label_of(label[0])) if labelled else ids

        if not labelled and has_labels:
            dataset = dataset.map(lambda text, label: text)
        dataset = dataset.map(encode, num_parallel_calls=tf.data.AUTOTUNE)
        if text_spec.shape.rank == 0:
            padding = (tf.constant(PAD_ID, tf.int32),
                       tf.zeros([], dataset.element_spec[1].dtype)) if labelled else \
                tf.constant(PAD_ID, tf.int32)
            length = (lambda ids, label: tf.shape(ids)[0]) if labelled else \
                (lambda ids: tf.shape(ids)[0])
            dataset = dataset.bucket_by_sequence_length(
                length, _BUCKET_BOUNDARIES, [batch_size] * (len(_BUCKET_BOUNDARIES) + 1),
                padding_values=padding)
        return dataset.prefetch(tf.data.AUTOTUNE)

    def _label_lookup(self):
        """Dataset labels -> the loss' labels (class names looked up in-graph)."""
        if self.task != "single_label":
            return lambda label: tf.cast(label, tf.float32)
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(self.class_names), tf.range(len(self.class_names), dtype=tf.int32)),
            default_value=-1)
        names = ", ".join(self.class_names)

        def lookup(label):
            ids = table.lookup(label) if label.dtype == tf.string else tf.cast(label, tf.int32)
            check = tf.debugging.assert_equal(
                tf.reduce_all((ids >= 0) & (ids < len(self.class_names))), True,
                message=f"The dataset holds a label outside `class_names` ({names}).")
            with tf.control_dependencies([check]):
                return tf.identity(ids)

        return lookup

    # Saving -----------------------------------------------------------------

    def get_compile_config(self):
        # The recipe, not the optimizer: a loaded model is compiled with the
        # same recipe and `fit` sizes its schedule again.
        if self.recipe is None:
            return None
        return {"recipe": dataclasses.asdict(self.recipe)}

    def compile_from_config(self, config):
        from ulmfit_tf.training.classifier import ClassifierConfig

        if config and "recipe" in config:
            self.compile(recipe=ClassifierConfig(**config["recipe"]))
            # Built, so that Keras loads the saved optimizer state into it.
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        return {**super().get_config(),
                "classifier": keras.saving.serialize_keras_object(self.classifier),
                "vocabulary": list(self.tokenizer.itos), "class_names": self.class_names,
                "max_chars": self.max_chars, "backwards": self.backwards,
                "split_contractions": self.tokenizer.split_contractions,
                "sentencepiece": self.tokenizer.get_config()["sentencepiece"]}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["classifier"] = keras.saving.deserialize_keras_object(config["classifier"])
        return cls(**config)


def _pair(data):
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError("`validation_data` must be (texts, labels) or a tf.data.Dataset. "
                         f"Received: {type(data).__name__}")
    return data


def _count_texts(dataset):
    """Texts in an unbatched dataset of (text, label); a batched one's (or
    an infinite one's) are not a small training set."""
    spec = dataset.element_spec
    if (spec[0] if isinstance(spec, tuple) else spec).shape.rank != 0:
        return float("inf")
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        return float("inf")
    return _count_batches(dataset)


def _count_batches(dataset):
    """Batches in one pass over `dataset` (its length is unknown)."""
    cardinality = int(dataset.cardinality())
    if cardinality >= 0:
        return cardinality
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise ValueError("The dataset is infinite: give `steps_per_epoch`.")
    return int(dataset.reduce(0, lambda count, _: count + 1))
