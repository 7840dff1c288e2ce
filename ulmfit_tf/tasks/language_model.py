"""`LanguageModel`: ULMFiT's AWD-LSTM language model as one Keras model on raw text."""

import dataclasses

import keras
import tensorflow as tf

from ulmfit_tf.models import AWDLSTMLanguageModel
from ulmfit_tf.tasks.inputs import check_texts
from ulmfit_tf.tasks.text_classifier import as_vocab, encode_texts
from ulmfit_tf.text import GraphTokenizer, Vocab
from ulmfit_tf.text.rules import PAD_ID


@keras.saving.register_keras_serializable(package="ulmfit_tf")
class LanguageModel(keras.Model):
    """A pretrained AWD-LSTM language model with its vocabulary (stages 1-2).

    ```python
    lm = LanguageModel.from_preset("general-en-base-e4")
    lm = lm.adapt(target_texts)   # the target's vocabulary (stage 2)
    lm.compile()                  # stage 2's recipe (finetune-lm's defaults)
    lm.fit(target_texts)          # contiguous stream, variable BPTT, carried state
    lm.generate("the movie was")
    clf = TextClassifier.from_language_model(lm, class_names=[...])
    ```

    The model's input is a string tensor [B] (tokenized in the graph) or
    token ids [B, T]; its output next-token logits [B, T, V]. The state is
    carried between calls, as in `AWDLSTMLanguageModel`.

    Args:
        language_model: an `AWDLSTMLanguageModel`.
        vocabulary: its `Vocab`, a list of tokens or a vocab file.
        backwards: the model reads texts right to left.
        split_contractions, sentencepiece: the tokenizer's contraction rule
            and subword model; default: the `Vocab`'s (off and None for a
            list of tokens).
    """

    def __init__(self, language_model, vocabulary, backwards=False, split_contractions=None,
                 sentencepiece=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(language_model, AWDLSTMLanguageModel):
            raise TypeError(f"`language_model` must be an AWDLSTMLanguageModel. Received: "
                            f"{language_model!r}")
        self.language_model = language_model
        self.tokenizer = GraphTokenizer(as_vocab(vocabulary), name="tokenizer",
                                        split_contractions=split_contractions,
                                        sentencepiece=sentencepiece)
        if self.tokenizer.vocabulary_size != language_model.encoder.vocabulary_size:
            raise ValueError(f"`vocabulary` has {self.tokenizer.vocabulary_size} tokens, the "
                             f"model's embedding {language_model.encoder.vocabulary_size}.")
        self.backwards = bool(backwards)
        self.recipe = None
        self._optimizer_given = None
        self.built = language_model.built

    @classmethod
    def from_preset(cls, preset):
        """A bundled language model by its folder name in `saved_models/`
        (see `ulmfit_tf.presets.preset_names()`), or any LM run directory."""
        from ulmfit_tf.presets import resolve_preset
        from ulmfit_tf.tasks.text_classifier import language_model_and_vocab

        run = resolve_preset(preset)
        model, vocab, backwards = language_model_and_vocab(run, arg_name="preset")
        return cls(model, vocab, backwards=backwards)

    from_run = from_preset

    @property
    def vocab(self):
        return self.tokenizer.vocab

    @property
    def layer_groups(self):
        return self.language_model.layer_groups

    def call(self, inputs, training=False):
        inputs = tf.convert_to_tensor(inputs)
        if inputs.dtype == tf.string:
            ids = self.tokenizer(inputs)
            if self.backwards:
                ids = tf.reverse(ids, axis=[1])
            inputs = ids.to_tensor(default_value=PAD_ID)
        return self.language_model(inputs, training=training)

    def reset_states(self):
        self.language_model.reset_states()

    def adapt(self, texts, max_vocab=None, min_freq=None, drop_mult=None):
        """Stage 2's vocabulary transfer: a new `LanguageModel` whose
        vocabulary is `texts`' tokens (up to `max_vocab`, seen `min_freq`
        times; finetune-lm's defaults), rows of known tokens copied and new
        ones starting at the mean embedding (fastai's `match_embeds`). A
        subword vocabulary stays as it is: its pieces spell any text."""
        from ulmfit_tf.recipes import FINETUNE_VOCAB
        from ulmfit_tf.training.transfer import remap_language_model

        texts = check_texts(texts, "texts")
        vocab = self.vocab
        if vocab.sentencepiece is None:  # subwords spell every word: no new tokens
            # The pretrained vocabulary's rules, so its tokens keep their rows.
            tokens = vocab.tokenize(texts, progress=len(texts) > 5000)
            vocab = Vocab.build(
                tokens, max_vocab=FINETUNE_VOCAB["max_vocab"] if max_vocab is None else max_vocab,
                min_freq=FINETUNE_VOCAB["min_freq"] if min_freq is None else min_freq,
                split_contractions=vocab.split_contractions)
        with self.distribute_strategy.scope():
            model, _ = remap_language_model(self.language_model, self.vocab, vocab,
                                            drop_mult=drop_mult)
        return LanguageModel(model, vocab, backwards=self.backwards)

    def compile(self, optimizer=None, recipe=None, **settings):
        """Sets the training recipe: stage 2's by default (finetune-lm's:
        per-group rates ÷2.6, the slanted triangular schedule, the first epoch
        training the embedding and decoder only). `recipe` may be a
        `LanguageModelConfig`; `settings` override its fields (``max_lr``,
        ``epochs``, ...). A Keras `optimizer` replaces the recipe's."""
        from ulmfit_tf.training.language_model import LanguageModelConfig, finetune_config

        fields = {f.name for f in dataclasses.fields(LanguageModelConfig)}
        unknown = sorted(set(settings) - fields)
        if unknown:
            raise TypeError(f"Unknown recipe settings {unknown}: they must be "
                            f"LanguageModelConfig fields ({sorted(fields)}).")
        if recipe is None:
            config = finetune_config(self.language_model, backwards=self.backwards,
                                     **settings)
        elif isinstance(recipe, LanguageModelConfig):
            config = dataclasses.replace(recipe, **settings)
        else:
            raise TypeError(f"`recipe` must be None or a LanguageModelConfig. Received: "
                            f"{recipe!r}")
        from ulmfit_tf.training.language_model import compile_language_model

        self.recipe, self._optimizer_given = config, optimizer
        # Usable at once (evaluate); fit sizes the schedule from its steps.
        compile_language_model(self.language_model, dataclasses.replace(config, schedule="constant"),
                               total_steps=1, optimizer=optimizer)

    def fit(self, x=None, epochs=None, batch_size=None, validation_split=None,
            validation_data=None, callbacks=None, verbose="auto", seed=None):
        """Trains on raw texts read as one contiguous stream (documents
        concatenated, variable BPTT, the state carried from batch to batch).

        Args:
            x: a list (tuple, 1-D array) of strings, one per document.
            epochs, batch_size: default the recipe's.
            validation_split: documents held out (seeded); None: the recipe's.
            validation_data: a list of validation texts instead.

        Returns:
            The `keras.callbacks.History`.
        """
        from ulmfit_tf.training.language_model import (fit_language_model,
                                                       language_model_streams,
                                                       split_documents)

        if self.recipe is None:
            raise RuntimeError("Call `compile()` before `fit` (with no arguments for "
                               "ULMFiT's stage 2 recipe).")
        overrides = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size),
                                       ("seed", seed)) if v is not None}
        if validation_split is not None:
            if validation_data is not None:
                raise ValueError("Give `validation_data` or `validation_split`, not both.")
            overrides["valid_fraction"] = validation_split
        if epochs is not None:  # the frozen epochs leave at least one unfrozen
            overrides["freeze_epochs"] = max(0, min(self.recipe.freeze_epochs, epochs - 1))
        config = dataclasses.replace(self.recipe, **overrides)
        docs = encode_texts(check_texts(x, "x"), self.vocab)
        if validation_data is not None:
            train_docs = docs
            valid_docs = encode_texts(check_texts(validation_data, "validation_data"),
                                      self.vocab)
        else:
            train_docs, valid_docs = split_documents(docs, config.valid_fraction, config.seed)
        train, valid = language_model_streams(train_docs, valid_docs, config)
        if self._optimizer_given is not None:
            config = dataclasses.replace(config, freeze_epochs=0)
        fit_language_model(self.language_model, train, valid, config, callbacks=callbacks or (),
                           verbose=1 if verbose == "auto" else verbose,
                           optimizer=self._optimizer_given)
        self.history = self.language_model.history
        return self.history

    def evaluate(self, x=None, batch_size=None, verbose="auto", return_dict=True, **kwargs):
        """Loss and perplexity of the model on texts (one contiguous stream,
        fixed BPTT), as the validation of `fit` computes them."""
        from ulmfit_tf.data import LMStream

        config = self.recipe or self._default_config()
        docs = encode_texts(check_texts(x, "x"), self.vocab)
        stream = LMStream(docs, batch_size or config.batch_size, config.bptt,
                          variable_bptt=False, shuffle=False, backwards=self.backwards)
        if not self.language_model.compiled:
            self.compile()
        return self.language_model.evaluate(stream.as_dataset(), verbose=verbose,
                                            return_dict=return_dict, **kwargs)

    def generate(self, prompt, max_new_tokens=50, sampler="top_k", **sampler_args):
        """Continues `prompt` (a str) with a keras-hub sampler ("top_k",
        "greedy", "top_p", ... ; see `ulmfit_tf.generation.make_sampler`)."""
        from ulmfit_tf.generation import generate

        if self.backwards:
            raise ValueError("generate needs a forward language model; this one reads "
                             "backwards.")
        return generate(self.language_model, self.vocab, prompt, max_new_tokens=max_new_tokens,
                        sampler=sampler, **sampler_args)

    def predict(self, x, **kwargs):
        raise NotImplementedError("Use `generate(prompt)` for text, `evaluate(texts)` for "
                                  "perplexity, or call the model on token ids for logits.")

    def get_compile_config(self):
        if self.recipe is None:
            return None
        return {"recipe": dataclasses.asdict(self.recipe)}

    def compile_from_config(self, config):
        from ulmfit_tf.training.language_model import LanguageModelConfig

        if config and "recipe" in config:
            self.compile(recipe=LanguageModelConfig(**config["recipe"]))

    def _default_config(self):
        from ulmfit_tf.training.language_model import finetune_config

        return finetune_config(self.language_model, backwards=self.backwards)

    def get_config(self):
        return {**super().get_config(),
                "language_model": keras.saving.serialize_keras_object(self.language_model),
                "vocabulary": list(self.tokenizer.itos), "backwards": self.backwards,
                "split_contractions": self.tokenizer.split_contractions,
                "sentencepiece": self.tokenizer.get_config()["sentencepiece"]}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["language_model"] = keras.saving.deserialize_keras_object(
            config["language_model"])
        return cls(**config)
