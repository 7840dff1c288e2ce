"""The `ulmfit-tf` command line."""

import argparse
import json
import os
import re
import sys
import tempfile
import time

import numpy as np

from ulmfit_tf.presets import DEFAULT_BACKWARD_PRESET, DEFAULT_PRESET, PRESETS_DIR
from ulmfit_tf.recipes import FINETUNE_RECIPE, FINETUNE_VOCAB, PRETRAIN_VOCAB


def _prepare(args):
    from ulmfit_tf.corpus import iter_texts, read_texts
    from ulmfit_tf.data import TokenFile
    from ulmfit_tf.data.prepare import prepare_token_file
    from ulmfit_tf.text import Vocab, tokenize_corpus
    from ulmfit_tf.training.run_dir import write_config, write_json
    from ulmfit_tf.utils import atomic_directory

    with atomic_directory(args.out) as tmp:
        if args.subword_vocab:
            from ulmfit_tf.text.subword import SubwordEncoder

            # SentencePiece trains on the whole corpus in memory.
            data = read_texts(args.corpus, source=args.data, encoding=args.encoding)
            start = time.time()
            tokens = tokenize_corpus(data.texts, num_workers=args.workers, progress=True,
                                     split_contractions=args.split_contractions)
            elapsed = time.time() - start
            n_tokens = sum(map(len, tokens))
            subwords = SubwordEncoder.train(tokens, args.subword_vocab)
            vocab = Vocab(subwords.vocab.itos, args.split_contractions, subwords.proto)
            subwords.save(os.path.join(tmp, "spm.model"))
            TokenFile.write(os.path.join(tmp, "tokens"), (subwords.encode(t) for t in tokens))
            metrics = {"documents": len(tokens), "tokens": n_tokens, "vocab_size": len(vocab),
                       "tokenize_seconds": round(elapsed, 2),
                       "tokens_per_second": round(n_tokens / max(elapsed, 1e-9))}
        else:
            texts = iter_texts(args.corpus, source=args.data, encoding=args.encoding)
            _, vocab, metrics = prepare_token_file(
                texts, os.path.join(tmp, "tokens"), max_vocab=args.max_vocab,
                min_freq=args.min_freq, num_workers=args.workers, progress=True,
                split_contractions=args.split_contractions)
        vocab.save(os.path.join(tmp, "vocab.txt"))
        write_config(tmp, {k: v for k, v in vars(args).items() if k != "func"})
        write_json(os.path.join(tmp, "metrics.json"), metrics)
    print(json.dumps(metrics))


def _load_documents(corpus, data, max_vocab, min_freq, workers=None, encoding="utf-8",
                    vocab=None, split_contractions=False):
    """(token id arrays, Vocab) from a `prepare` directory or a corpus name;
    encoded with `vocab` (and its tokenizer rules) when given, else with one
    built from the corpus."""
    from ulmfit_tf.corpus import read_texts
    from ulmfit_tf.data import TokenFile
    from ulmfit_tf.text import Vocab, tokenize_corpus

    if os.path.isdir(corpus) and os.path.isfile(os.path.join(corpus, "vocab.txt")):
        prepared = Vocab.load(os.path.join(corpus, "vocab.txt"))
        tokens = TokenFile(os.path.join(corpus, "tokens"))
        docs = [np.asarray(tokens.ids[a:b]) for a, b in
                zip(tokens.offsets[:-1], tokens.offsets[1:])]
        if vocab is None and split_contractions and not prepared.split_contractions:
            raise ValueError(f"`--split-contractions` was given, but `corpus` {corpus!r} "
                             "was prepared without it: prepare it with the flag.")
        if vocab is None or vocab == prepared:
            return docs, prepared
        if vocab.split_contractions != prepared.split_contractions:
            raise ValueError(
                f"`corpus` {corpus!r} was prepared with split_contractions="
                f"{prepared.split_contractions}, the model's vocabulary has "
                f"{vocab.split_contractions}: prepare it again with the model's rules.")
        if vocab.sentencepiece is not None or prepared.sentencepiece is not None:
            raise ValueError(f"`corpus` {corpus!r} was prepared with other subwords than "
                             "the model's: its ids cannot be mapped to the model's.")
        # Ids of the prepared vocabulary -> the same tokens' ids in `vocab`.
        mapping = np.array(vocab.encode(prepared.itos), np.int32)
        return [mapping[d] for d in docs], vocab
    texts = read_texts(corpus, source=data, encoding=encoding).texts
    if vocab is not None:
        return vocab.encode_texts(texts, num_workers=workers, progress=True), vocab
    tokens = tokenize_corpus(texts, num_workers=workers, progress=True,
                             split_contractions=split_contractions)
    vocab = Vocab.build(tokens, max_vocab=max_vocab, min_freq=min_freq,
                        split_contractions=split_contractions)
    return [vocab.encode(t) for t in tokens], vocab


def _pretrain(args):
    from ulmfit_tf.training.language_model import (LanguageModelConfig, split_documents,
                                                   train_language_model)

    settings = {field: getattr(args, flag) for flag, field in _PRETRAIN_FLAGS.items()
                if hasattr(args, flag)}
    model = vocab = None
    split_seed = args.split_seed
    if args.init_from:
        from ulmfit_tf.presets import resolve_preset

        # Continue training a model: its sizes and its vocabulary.
        init_run = resolve_preset(args.init_from, "--init-from")
        model, vocab = _load_lm_run(init_run, "--init-from")
        encoder = model.encoder
        settings.update(embedding_dim=encoder.embedding_dim, hidden_dim=encoder.hidden_dim,
                        num_layers=encoder.num_layers, drop_mult=encoder.drop_mult)
        if split_seed is None:
            # Its held-out documents, whatever --seed: other ones would
            # include text it trained on and flatter its perplexity.
            split_seed = _recorded_split_seed(init_run)
    config = LanguageModelConfig.recipe(
        args.recipe, **settings, tokens_per_epoch=args.tokens_per_epoch,
        optimizer=args.optimizer, backwards=args.backwards, seed=args.seed,
        split_seed=args.seed if split_seed is None else split_seed)
    vocab_rule = {**PRETRAIN_VOCAB[args.recipe],
                  **{flag: getattr(args, flag) for flag in ("max_vocab", "min_freq")
                     if hasattr(args, flag)}}
    docs, vocab = _load_documents(args.corpus, args.data, vocab_rule["max_vocab"],
                                  vocab_rule["min_freq"],
                                  encoding=args.encoding, vocab=vocab,
                                  split_contractions=args.split_contractions)
    if args.max_tokens:
        # A seeded random choice of documents, so a cap samples every source.
        order = np.random.default_rng(config.split_seed).permutation(len(docs))
        kept, total = [], 0
        for doc in (docs[i] for i in order):
            if total >= args.max_tokens:
                break
            kept.append(doc[: args.max_tokens - total])
            total += len(kept[-1])
        docs = kept
    train, valid = split_documents(docs, config.valid_fraction, config.split_seed)
    _, summary = train_language_model(train, valid, vocab, config, args.out, model=model,
                                      verbose=1 if sys.stdout.isatty() else 2)
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}))


def _recorded_split_seed(run):
    """The seed that chose a pretrain run's held-out documents, from its
    config.json (runs before `split_seed` used `seed`); None if unrecorded."""
    config = _read_run_config(run)
    split_seed = config.get("split_seed")
    return config.get("seed") if split_seed is None else split_seed


def _generate(args):
    from ulmfit_tf.generation import generate

    model, vocab = _load_lm_run(args.run)
    for sample in range(args.samples):
        kwargs = {"temperature": args.temperature}
        if args.sampler != "greedy":
            kwargs["seed"] = None if args.seed is None else args.seed + sample
        print(generate(model, vocab, args.prompt, args.max_new_tokens, args.sampler, **kwargs))


def _encode(texts, vocab, workers=None):
    return vocab.encode_texts(texts, num_workers=workers, progress=True)


def random_subset(texts, count, seed):
    """`count` of `texts` chosen at random (seeded, so a low-shot experiment
    can name the subset it used), in their original order."""
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"`--max-docs` must be an int >= 1. Received: {count!r}")
    chosen = np.random.default_rng(seed).permutation(len(texts))[:count]
    return [texts[i] for i in sorted(chosen)]


def _load_lm_run(run, arg_name="run"):
    from ulmfit_tf.presets import resolve_preset
    from ulmfit_tf.text import Vocab
    from ulmfit_tf.training.run_dir import load_model_file, require_run

    run = resolve_preset(run, arg_name)  # a preset's name or a run directory
    require_run(run, "language_model", arg_name)
    return (load_model_file(os.path.join(run, "model.keras")),
            Vocab.load(os.path.join(run, "vocab.txt")))


def _load_pretrained(pretrained, fastai_vocab=None):
    """finetune-lm's start: (model, vocab, backwards) of a run directory, a
    preset, or fastai's `.pth` weights with their `.pkl` vocabulary."""
    if os.fspath(pretrained).endswith(".pth"):
        if not fastai_vocab:
            raise ValueError("`--pretrained` is fastai weights (.pth): pass their vocabulary "
                             f"with `--vocab PATH.pkl`. Received: {pretrained!r}")
        from ulmfit_tf.convert.fastai import load_fastai_language_model

        return (*load_fastai_language_model(pretrained, fastai_vocab), False)
    if fastai_vocab:
        raise ValueError("`--vocab` is the vocabulary of fastai .pth weights, and "
                         f"`--pretrained` is not one. Received: {pretrained!r}")
    from ulmfit_tf.presets import resolve_preset

    run = resolve_preset(pretrained, "--pretrained")
    model, vocab = _load_lm_run(run, "--pretrained")
    return model, vocab, bool(_read_run_config(run).get("backwards", False))


def _finetune_lm(args):
    from ulmfit_tf.corpus import read_texts
    from ulmfit_tf.text import Vocab, tokenize_corpus
    from ulmfit_tf.training.language_model import (finetune_config, split_documents,
                                                   train_language_model)
    from ulmfit_tf.training.transfer import remap_language_model

    pretrained, old_vocab, backwards = _load_pretrained(args.pretrained, args.vocab)
    if backwards and not args.backwards:
        print("--pretrained is a backward language model: fine-tuning it backwards")
    texts = []
    for corpus in args.corpus:
        texts += read_texts(corpus, source=args.data, encoding=args.encoding).texts
    if args.max_docs is not None:
        texts = random_subset(texts, args.max_docs, args.seed)
    if old_vocab.sentencepiece is None:
        # The pretrained vocabulary's rules, so its tokens keep their rows.
        tokens = old_vocab.tokenize(texts, progress=True)
        vocab = Vocab.build(tokens, max_vocab=args.max_vocab, min_freq=args.min_freq,
                            split_contractions=old_vocab.split_contractions)
        docs = [vocab.encode(t) for t in tokens]
    else:  # subwords spell every word: the vocabulary stays the model's
        vocab = old_vocab
        docs = vocab.encode_texts(texts, progress=True)
    model, new_tokens = remap_language_model(pretrained, old_vocab, vocab,
                                             drop_mult=args.drop_mult)
    print(f"target vocabulary: {len(vocab)} tokens, {new_tokens} new to the pretrained model")
    config = finetune_config(
        model, batch_size=args.batch_size, bptt=args.bptt, epochs=args.epochs, max_lr=args.lr,
        discriminative_factor=args.factor, optimizer=args.optimizer, beta_1=args.beta_1,
        valid_fraction=args.valid_fraction,
        backwards=args.backwards or backwards, seed=args.seed,
        **({} if args.freeze_epochs is None else {"freeze_epochs": args.freeze_epochs}))
    train, valid = split_documents(docs, config.valid_fraction, config.seed)
    _, summary = train_language_model(train, valid, vocab, config, args.out, model=model,
                                      verbose=1 if sys.stdout.isatty() else 2)
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}))


def _labelled(corpus, split, data, encoding="utf-8"):
    from ulmfit_tf.corpus import read_texts

    dataset = read_texts(corpus, split=split, source=data, encoding=encoding)
    if dataset.labels is None:
        raise ValueError(f"The corpus {corpus!r} has no labels; a classifier needs them.")
    return dataset


# pretrain flags -> LanguageModelConfig fields; left out, the recipe's.
_PRETRAIN_FLAGS = {"embedding_dim": "embedding_dim", "hidden_dim": "hidden_dim",
                   "layers": "num_layers", "drop_mult": "drop_mult", "batch_size": "batch_size",
                   "bptt": "bptt", "epochs": "epochs", "lr": "max_lr", "schedule": "schedule",
                   "valid_fraction": "valid_fraction"}


# train-classifier flags -> ClassifierConfig fields. Their defaults are the
# recipe's (ClassifierConfig.recipe): a flag left out is absent from `args`.
_CLASSIFIER_FLAGS = {"epochs": "epochs", "batch_size": "batch_size", "lr": "max_lr",
                     "factor": "discriminative_factor", "schedule": "schedule",
                     "drop_mult": "drop_mult", "max_len": "max_len", "bptt": "bptt",
                     "valid_fraction": "valid_fraction", "patience": "patience",
                     "restore_best": "restore_best", "optimizer": "optimizer",
                     "monitor": "monitor", "bag_of_ngrams": "bag_of_ngrams",
                     "tune": "tune_lr"}


def _given_classifier_settings(args):
    """The ClassifierConfig fields that the command line sets."""
    given = {field: getattr(args, flag) for flag, field in _CLASSIFIER_FLAGS.items()
             if hasattr(args, flag)}
    if given.get("discriminative_factor") == 1:
        given["discriminative_factor"] = None  # one rate for all groups
    if args.no_gradual_unfreezing:
        given["gradual_unfreezing"] = False
    return {**given, "backwards": args.backwards, "seed": args.seed}


def _classifier_config(args):
    from ulmfit_tf.training.classifier import ClassifierConfig, scratch_settings

    settings = _given_classifier_settings(args)
    if not args.lm:
        settings = scratch_settings(settings)
    return ClassifierConfig.recipe(args.recipe, **settings)


def _train_classifier(args):
    from ulmfit_tf.evaluation import classification_report, plot_confusion_matrix
    from ulmfit_tf.text import Vocab, tokenize_corpus
    from ulmfit_tf.training.callbacks import StopAfterEpoch
    from ulmfit_tf.training.classifier import (predict_probabilities,
                                               split_labelled, train_classifier)
    from ulmfit_tf.training.run_dir import write_json

    config = _classifier_config(args)
    data = _labelled(args.corpus, "train", args.data, args.encoding)
    if args.lm:
        source, vocab = _load_lm_run(args.lm, "--lm")
        docs = _encode(data.texts, vocab)
    else:
        tokens = tokenize_corpus(data.texts, progress=True)
        vocab = Vocab.build(tokens, max_vocab=args.max_vocab, min_freq=args.min_freq)
        docs = [vocab.encode(t) for t in tokens]
        source = {"vocabulary_size": len(vocab), "embedding_dim": args.embedding_dim,
                  "hidden_dim": args.hidden_dim, "num_layers": args.layers}
    split = split_labelled(docs, data.labels, config.valid_fraction, config.seed)
    extra = []
    if os.environ.get("ULMFIT_TF_STOP_AFTER_EPOCH"):  # used by the resume test
        extra.append(StopAfterEpoch(int(os.environ["ULMFIT_TF_STOP_AFTER_EPOCH"])))
    model, summary = train_classifier(
        source, *split, data.classes, vocab, config, args.out,
        verbose=1 if sys.stdout.isatty() else 2, extra_callbacks=extra)
    result = {"valid_error": summary.get("valid", {}).get("error_rate"),
              "epochs": len(summary["history"]["loss"]), "best_epoch": summary.get("best_epoch")}
    if "blend" in summary:
        # Optimistic: the blend's weights were fitted on this split.
        result["blend_valid_error"] = summary["blend"]["valid_error"]
        result["bag_weight"] = summary["blend"]["bag_weight"]
    if args.test_split:
        test = _labelled(args.corpus, "test", args.data, args.encoding)
        probabilities = predict_probabilities(model, _encode(test.texts, vocab),
                                              backwards=config.backwards)
        report = classification_report(test.labels, probabilities, test.classes)
        write_json(os.path.join(args.out, "test_metrics.json"), report)
        plot_confusion_matrix(report, os.path.join(args.out, "confusion_test.png"), "test")
        result["test_error"] = report["error_rate"]
    print(json.dumps(result))


def _baseline(args):
    from ulmfit_tf.baselines import predict_probabilities, tfidf_logistic_regression
    from ulmfit_tf.evaluation import classification_report
    from ulmfit_tf.training.classifier import split_labelled

    data = _labelled(args.corpus, "train", args.data, args.encoding)
    if not 0 < args.valid_fraction < 1:
        raise ValueError("`--valid-fraction` must be in (0, 1): C is chosen on the "
                         f"validation split. Received: {args.valid_fraction}")
    split = split_labelled(data.texts, data.labels, args.valid_fraction, args.seed)
    pipeline, info = tfidf_logistic_regression(*split)
    result = {"model": "tfidf-1-2gram+logistic-regression", "C": info["C"],
              "valid_error": info["valid_errors"][info["C"]]}
    if args.test_split:
        test = _labelled(args.corpus, "test", args.data, args.encoding)
        report = classification_report(
            _labels_as_run_ids(test, list(data.classes), args.corpus),
            predict_probabilities(pipeline, test.texts, len(data.classes)), list(data.classes))
        result.update(test_error=report["error_rate"], test_macro_f1=report["macro_f1"])
    print(json.dumps(result))


def _evaluate(args):
    from ulmfit_tf.evaluation import classification_report, plot_confusion_matrix
    from ulmfit_tf.training.classifier import load_run, predict_probabilities
    from ulmfit_tf.training.run_dir import write_json

    data = _labelled(args.corpus, args.split, args.data, args.encoding)
    total = run_classes = None
    for run in args.runs:
        model, vocab, classes, config = load_run(run)
        if run_classes is None:
            run_classes = list(classes)
        elif list(classes) != run_classes:
            raise ValueError(f"The runs to average must share their classes: {args.runs[0]!r} "
                             f"has {run_classes}, {run!r} has {list(classes)}.")
        probabilities = predict_probabilities(model, _encode(data.texts, vocab),
                                              backwards=config.get("backwards", False),
                                              matmul_precision=args.matmul_precision)
        total = probabilities if total is None else total + probabilities
    # The paper's best results average a forward and a backward classifier.
    labels = _labels_as_run_ids(data, run_classes, args.runs[0])
    report = classification_report(labels, total / len(args.runs), run_classes)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        write_json(os.path.join(args.out, "metrics.json"), report)
        plot_confusion_matrix(report, os.path.join(args.out, "confusion.png"), args.split)
    print(json.dumps({k: report[k] for k in ("accuracy", "error_rate", "macro_f1", "count")}))


def _labels_as_run_ids(data, run_classes, run):
    """The corpus' labels as ids of the run's classes. A test sample may
    lack a rare class (it is reported with zero support), not hold one the
    run has never seen."""
    unknown = [c for c in data.classes if c not in run_classes]
    if unknown:
        raise ValueError(f"The corpus has classes that the run {run!r} was not trained on: "
                         f"{unknown}. The run's classes: {run_classes}")
    index = {c: i for i, c in enumerate(run_classes)}
    return np.array([index[data.classes[label]] for label in data.labels], np.int32)


def _predict(args):
    from ulmfit_tf.training.classifier import load_run, predict_probabilities

    texts = list(args.texts)
    if args.file:
        with open(args.file, encoding="utf-8") as f:
            texts += [line.rstrip("\n") for line in f if line.strip()]
    if not texts:
        raise ValueError("Give texts as arguments or `--file` (one text per line).")
    model, vocab, classes, config = load_run(args.run)
    probabilities = predict_probabilities(model, _encode(texts, vocab, workers=1),
                                          backwards=config.get("backwards", False),
                                          matmul_precision=args.matmul_precision)
    for text, row in zip(texts, probabilities):
        print(json.dumps({"text": text[:80], "label": classes[int(row.argmax())],
                          "probabilities": {c: round(float(p), 4) for c, p in zip(classes, row)}}))


def _lr_find(args):
    import keras

    from ulmfit_tf.data import ClassificationBatches
    from ulmfit_tf.training.classifier import ClassifierConfig, build_classifier
    from ulmfit_tf.training.lr_finder import lr_find, plot_lr_find, steep
    from ulmfit_tf.training.run_dir import write_json

    data = _labelled(args.corpus, "train", args.data, args.encoding)
    source, vocab = _load_lm_run(args.lm, "--lm")
    config = ClassifierConfig(drop_mult=args.drop_mult)
    model = build_classifier(source, len(data.classes), config)
    model.compile(optimizer=keras.optimizers.Adam(1e-7, beta_1=0.7, beta_2=0.99),
                  loss="sparse_categorical_crossentropy")
    batches = ClassificationBatches(_encode(data.texts, vocab), data.labels, args.batch_size,
                                    num_classes=len(data.classes))
    rates, losses, suggestion = lr_find(model, batches.as_dataset(), num_steps=args.steps,
                                        verbose=1 if sys.stdout.isatty() else 2)
    os.makedirs(args.out, exist_ok=True)
    plot_lr_find(rates, losses, suggestion, os.path.join(args.out, "lr_find.png"))
    steepest = steep(rates, losses, args.steps)
    write_json(os.path.join(args.out, "lr_find.json"),
               {"rates": rates.tolist(), "losses": losses.tolist(), "suggestion": suggestion,
                "steep": steepest})
    print(json.dumps({"suggested_lr": suggestion, "steep": steepest}))


def _export(args):
    from ulmfit_tf.export import export_classifier, export_language_model
    from ulmfit_tf.training.classifier import load_run
    from ulmfit_tf.training.run_dir import run_kind

    limits = {"max_chars": args.max_chars, "max_request_chars": args.max_request_chars,
              "max_request_tokens": args.max_request_tokens, "version": args.version,
              "overwrite": args.overwrite}
    kinds = [run_kind(run) for run in args.runs]
    if kinds[0] == "classifier":
        if set(kinds) != {"classifier"}:
            raise ValueError(f"`runs` must all be classifier runs to export their average. "
                             f"Received: {dict(zip(args.runs, kinds))}")
        loaded = [load_run(run) for run in args.runs]
        classes = loaded[0][2]
        for run, (_, _, other, _) in zip(args.runs, loaded):
            if list(other) != list(classes):
                raise ValueError(f"The runs to average must share their classes: "
                                 f"{args.runs[0]!r} has {list(classes)}, {run!r} has {list(other)}.")
        vocabs = [v for _, v, *_ in loaded]
        path = export_classifier([m for m, *_ in loaded], vocabs, classes,
                                 args.out, backwards=[c.get("backwards", False)
                                                      for *_, c in loaded],
                                 matmul_precision=args.matmul_precision, **limits)
    else:
        if len(args.runs) > 1:
            raise ValueError("Several runs export as one averaged model for classifiers only. "
                             f"Received language-model runs: {args.runs}")
        if args.matmul_precision != "float32":
            raise ValueError("`--matmul-precision` applies to classifier exports only. "
                             f"Received: {args.matmul_precision!r} for a language-model run")
        model, vocab = _load_lm_run(args.runs[0])
        config = _read_run_config(args.runs[0])
        path = export_language_model(model, vocab, args.out, backwards=config.get(
            "backwards", False), keep_special_tokens=args.keep_special_tokens, **limits)
        vocabs = [vocab]
    if any(v.sentencepiece is not None for v in vocabs):
        print("note: this model reads subwords with keras-hub's SentencePieceTokenizer, a "
              "tensorflow-text op: the server needs tensorflow-text (TF Serving: a build "
              "with its ops; Python: `import tensorflow_text` before loading). "
              "docs/SERVING.md, Subwords.", file=sys.stderr)
    print(json.dumps({"saved_model": path}))


def _read_run_config(run):
    path = os.path.join(run, "config.json")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


DEFAULT_PRETRAINED = os.path.join(PRESETS_DIR, DEFAULT_PRESET)
DEFAULT_PRETRAINED_BACKWARD = os.path.join(PRESETS_DIR, DEFAULT_BACKWARD_PRESET)


def _demo(args):
    """ULMFiT's three stages on TREC-6 at small scale, beside a from-scratch
    baseline; with a backward LM too, each direction and their average."""
    from ulmfit_tf.evaluation import classification_report
    from ulmfit_tf.training.classifier import ClassifierConfig, compare_on_test, split_labelled
    from ulmfit_tf.training.run_dir import write_json

    directions = {"forward": args.pretrained}
    if not args.no_backward:
        directions["backward"] = args.pretrained_backward
    for direction, pretrained in directions.items():  # before any work
        if (os.path.isfile(os.path.join(pretrained, "model.keras")) and
                _read_run_config(pretrained).get("backwards", False) != (direction == "backward")):
            flag = "--pretrained-backward" if direction == "backward" else "--pretrained"
            raise ValueError(f"`{flag}` must be a {direction} language model. Received: "
                             f"{pretrained!r}, which reads the other way")
    os.makedirs(args.out, exist_ok=True)
    data_args = ["--data", args.data] if args.data else []
    finetuned = {}
    for direction, pretrained in directions.items():
        backwards_args = ["--backwards"] if direction == "backward" else []
        suffix = "-backward" if direction == "backward" else ""
        if not os.path.isfile(os.path.join(pretrained, "model.keras")):
            print(f"No pretrained {direction} model at {pretrained!r}: pretraining a small one "
                  "on TREC questions (weak; the bundled general-English models are better).")
            pretrained = os.path.join(args.out, "pretrained" + suffix)
            _run_main(["pretrain", "trec", "--out", pretrained, "--epochs", "2",
                       "--embedding-dim", "64", "--hidden-dim", "128", "--layers", "2",
                       "--batch-size", "32", "--bptt", "40", "--lr", "1e-2", "--drop-mult", "0.3",
                       *backwards_args, *data_args])
        finetuned[direction] = os.path.join(args.out, "finetuned-lm" + suffix)
        _run_main(["finetune-lm", "trec", "--pretrained", pretrained,
                   "--out", finetuned[direction], "--epochs", str(args.lm_epochs), "--lr", "1e-2",
                   "--batch-size", "32", "--bptt", "40", "--seed", str(args.seed),
                   *backwards_args, *data_args])

    data, test = _labelled("trec", "train", args.data), _labelled("trec", "test", args.data)
    lm, vocab = _load_lm_run(finetuned["forward"])
    docs, test_docs = _encode(data.texts, vocab), _encode(test.texts, vocab)
    split = split_labelled(docs, data.labels, 0.1, args.seed)
    arms = {
        # train-classifier's defaults, at most --epochs epochs, without the
        # bag-of-n-grams blend: the demo shows what transfer alone does.
        "ulmfit": (lm, ClassifierConfig(epochs=args.epochs, seed=args.seed,
                                        bag_of_ngrams=False)),
        # The same architecture and budget from random weights: no pretraining,
        # so nothing to protect (no gradual unfreezing, one rate).
        "from_scratch": ({"vocabulary_size": len(vocab), **{
            k: getattr(lm.encoder, k) for k in ("embedding_dim", "hidden_dim", "num_layers")}},
            ClassifierConfig(epochs=args.epochs, seed=args.seed, gradual_unfreezing=False,
                             discriminative_factor=None, bag_of_ngrams=False)),
    }
    probabilities = {}
    reports = compare_on_test(arms, split, data.classes, vocab, test_docs, test.labels,
                              args.out, verbose=2, test_probabilities=probabilities)
    if "backward" in finetuned:
        # Its own vocabulary and ids; the same texts in each split (the split
        # depends only on their count and the seed).
        lm, vocab = _load_lm_run(finetuned["backward"])
        split = split_labelled(_encode(data.texts, vocab), data.labels, 0.1, args.seed)
        config = ClassifierConfig(epochs=args.epochs, seed=args.seed, bag_of_ngrams=False,
                                  backwards=True)
        reports.update(compare_on_test(
            {"ulmfit_backward": (lm, config)}, split, data.classes, vocab,
            _encode(test.texts, vocab), test.labels, args.out, verbose=2,
            test_probabilities=probabilities))
        # The paper's best results average the two directions' probabilities.
        reports["ulmfit_ensemble"] = classification_report(
            test.labels, (probabilities["ulmfit"] + probabilities["ulmfit_backward"]) / 2,
            data.classes)
    results = {name: report["error_rate"] for name, report in reports.items()}
    write_json(os.path.join(args.out, "demo.json"), results)
    ulmfit = f"ULMFiT {results['ulmfit']:.1%}"
    if "ulmfit_ensemble" in results:
        ulmfit = (f"ULMFiT forward {results['ulmfit']:.1%}, backward "
                  f"{results['ulmfit_backward']:.1%}, both averaged "
                  f"{results['ulmfit_ensemble']:.1%}")
    print(f"TREC-6 test error: {ulmfit}; same model from scratch "
          f"{results['from_scratch']:.1%}")


def _run_main(argv):
    if main(argv) != 0:
        raise RuntimeError(f"`ulmfit-tf {' '.join(argv)}` failed")


# A flag's default when the recipe decides (argparse cannot tell a flag left
# out from one given its default value).
_UNSET = argparse.SUPPRESS
# ulmfit_tf.training.classifier.RECIPES, restated: the parser must not import
# TensorFlow (a test checks that the two agree).
CLASSIFIER_RECIPES = ("default", "paper")
PRETRAIN_RECIPE_NAMES = tuple(PRETRAIN_VOCAB)
# ulmfit_tf.training.optimizers.OPTIMIZERS, restated for the same reason.
OPTIMIZERS = ("adam", "sgd", "rmsprop", "lion", "adamw-groups")


def _int_or_none(text):
    return None if text.lower() == "none" else int(text)


def _add_optimizer_flag(parser, default="adam"):
    parser.add_argument(
        "--optimizer", choices=OPTIMIZERS, default=default,
        help="adam: Adam(W) with a rate multiplier per layer group (DiscriminativeAdam, the "
             "fastest); sgd (momentum 0.9), rmsprop, lion, adamw-groups: that Keras "
             "optimizer for each layer group (LayerGroupOptimizer). Rates suit Adam: "
             "set --lr for the others")


def _add_encoding_flag(parser):
    parser.add_argument("--encoding", default="utf-8",
                        help="encoding of .csv/.tsv/.txt corpora (e.g. latin-1, cp1252)")


def _add_matmul_precision_flag(parser, scope=""):
    parser.add_argument(
        "--matmul-precision", choices=["float32", "bfloat16"], default="float32",
        help=f"{scope}the LSTMs' matmuls in bfloat16 (gates and cell state stay float32): "
             "faster only on a CPU with AVX512-BF16 or AMX (docs/PERFORMANCE.md)")


def _add_contractions_flag(parser):
    parser.add_argument(
        "--split-contractions", action="store_true",
        help="split English contractions as spaCy and fastai do (don't -> do n't); "
             "recorded in the vocabulary, which every later stage follows")


def _add_strategy_flag(parser):
    parser.add_argument(
        "--strategy", choices=["default", "mirrored", "multi_worker"], default="default",
        help="tf.distribute strategy: one device, all GPUs of this host, or one process "
             "per host (cluster from TF_CONFIG); --batch-size is the global batch")


def build_parser():
    parser = argparse.ArgumentParser(prog="ulmfit-tf", description=__doc__)
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up log (hidden except errors)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="tokenize a corpus, build its vocab, write token ids")
    p.add_argument("corpus", help="trec, imdb, imdb-unsup, 20news, sms, wikitext-2, "
                   "wikitext-103, or a path (.txt folder, .csv/.tsv); WikiText and folders "
                   "are read as they are tokenized, so their size is not bounded by memory")
    p.add_argument("--out", required=True, help="directory to write")
    p.add_argument("--data", default=None, help="local mirror of the datasets")
    _add_encoding_flag(p)
    p.add_argument("--max-vocab", type=int, default=60000)
    p.add_argument("--min-freq", type=int, default=3)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--subword-vocab", type=int, default=None,
                   help="SentencePiece subwords of this vocabulary size instead of words "
                        "(for pretraining; exports need tensorflow-text in the server)")
    _add_contractions_flag(p)
    p.set_defaults(func=_prepare)

    p = sub.add_parser("pretrain", help="train an AWD-LSTM language model (ULMFiT stage 1)")
    p.add_argument("corpus", help="a `prepare` output directory, or a corpus as for prepare")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--data", default=None, help="local mirror of the datasets")
    _add_encoding_flag(p)
    p.add_argument("--recipe", "--preset", choices=PRETRAIN_RECIPE_NAMES, default="paper",
                   help="paper: the paper's AWD-LSTM as fastai pretrains it on WikiText-103 "
                        "(400/1152/3, fastai's dropouts, bptt 70, batch 64, Adam 0.8/0.99, "
                        "vocabulary 60k); general-en-base: the settings that began the "
                        "bundled models (128/384/3, dropouts x 0.1, peak 5e-3, vocabulary "
                        "15k). Flags below override the recipe's values")
    p.add_argument("--epochs", type=int, default=_UNSET,
                   help="passes over the corpus, or epochs of --tokens-per-epoch")
    p.add_argument("--tokens-per-epoch", type=int, default=None,
                   help="cut each pass over the corpus into epochs of about this many "
                        "tokens: validation, history and a resumable checkpoint after each")
    p.add_argument("--embedding-dim", type=int, default=_UNSET)
    p.add_argument("--hidden-dim", type=int, default=_UNSET)
    p.add_argument("--layers", type=int, default=_UNSET)
    p.add_argument("--drop-mult", type=float, default=_UNSET)
    p.add_argument("--batch-size", type=int, default=_UNSET)
    p.add_argument("--bptt", type=int, default=_UNSET)
    p.add_argument("--lr", type=float, default=_UNSET, help="peak learning rate")
    p.add_argument("--schedule", choices=["one_cycle", "stlr", "constant"], default=_UNSET)
    _add_optimizer_flag(p)
    p.add_argument("--valid-fraction", type=float, default=_UNSET)
    p.add_argument("--max-tokens", type=int, default=None,
                   help="use only this many tokens (of randomly chosen documents)")
    p.add_argument("--max-vocab", type=int, default=_UNSET)
    p.add_argument("--min-freq", type=int, default=_UNSET)
    p.add_argument("--backwards", action="store_true", help="train a backward LM")
    _add_contractions_flag(p)
    p.add_argument("--init-from", default=None,
                   help="a language-model run (or preset) to continue training: its sizes, "
                        "vocabulary, tokenizer rules and held-out documents are kept")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the document order, dropout and initial weights")
    p.add_argument("--split-seed", type=int, default=None,
                   help="seeds which documents are held out (and which --max-tokens keeps); "
                        "default: --seed, or with --init-from the seed of its run's split, so "
                        "that a different --seed continues it on a new document order")
    _add_strategy_flag(p)
    p.set_defaults(func=_pretrain)

    p = sub.add_parser("generate", help="continue a prompt with a trained language model")
    p.add_argument("run", help="a pretrain run directory")
    p.add_argument("prompt")
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--sampler", choices=["greedy", "top_k", "top_p", "random"], default="top_k")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=_generate)

    p = sub.add_parser("finetune-lm", help="fine-tune a language model on target text "
                       "(ULMFiT stage 2: discriminative rates + STLR)")
    p.add_argument("corpus", nargs="+", help="target corpora (as for prepare)")
    p.add_argument("--pretrained", required=True,
                   help="a pretrain run directory, a bundled preset (general-en-base-e4, "
                        "the default forward model; general-en-base-bwd, the backward one), "
                        "fastai's wt103-fwd or wt103-bwd (downloaded and converted once), "
                        "or fastai weights PATH.pth with --vocab")
    p.add_argument("--vocab", default=None,
                   help="the .pkl vocabulary of fastai weights given as --pretrained PATH.pth")
    p.add_argument("--out", required=True)
    p.add_argument("--data", default=None, help="local mirror of the datasets")
    _add_encoding_flag(p)
    finetune = {**FINETUNE_RECIPE, **FINETUNE_VOCAB}
    p.add_argument("--epochs", type=int, default=finetune["epochs"])
    p.add_argument("--freeze-epochs", type=int, default=None,
                   help="epochs that train only the embedding/decoder first (default "
                        f"{finetune['freeze_epochs']}, fewer when --epochs leaves no "
                        "unfrozen epoch)")
    p.add_argument("--lr", type=float, default=finetune["max_lr"],
                   help="peak rate of the top group")
    p.add_argument("--factor", type=float, default=finetune["discriminative_factor"],
                   help="rate divisor per group")
    p.add_argument("--beta-1", type=float, default=finetune["beta_1"])
    _add_optimizer_flag(p)
    p.add_argument("--drop-mult", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=finetune["batch_size"])
    p.add_argument("--bptt", type=int, default=finetune["bptt"])
    p.add_argument("--valid-fraction", type=float, default=finetune["valid_fraction"])
    p.add_argument("--max-vocab", type=int, default=finetune["max_vocab"])
    p.add_argument("--min-freq", type=int, default=finetune["min_freq"])
    p.add_argument("--max-docs", type=int, default=None,
                   help="use only this many documents of the corpora (a random choice, "
                        "seeded by --seed)")
    p.add_argument("--backwards", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    _add_strategy_flag(p)
    p.set_defaults(func=_finetune_lm)

    p = sub.add_parser("train-classifier", help="train a classifier (ULMFiT stage 3: "
                       "gradual unfreezing + discriminative rates + STLR)")
    p.add_argument("corpus", help="trec, imdb, 20news, sms, or a labelled .csv/.tsv file "
                   "or class folder")
    p.add_argument("--lm", default=None, help="a (fine-tuned) language-model run directory; "
                   "leave out to train from scratch (then with one rate for all layers, "
                   "chosen by a range test (--tune), no gradual unfreezing and early "
                   "stopping, unless flags say otherwise)")
    p.add_argument("--out", required=True)
    p.add_argument("--data", default=None, help="local mirror of the datasets")
    _add_encoding_flag(p)
    p.add_argument("--recipe", choices=CLASSIFIER_RECIPES, default="default",
                   help="default: this library's settings, chosen on validation error "
                        "across tasks; paper: ULMFiT's as the paper and fastai run it "
                        "(5 epochs, ÷2.6, peak 1e-2). Flags below "
                        "override the recipe's values")
    p.add_argument("--epochs", type=int, default=_UNSET,
                   help="epochs (at most, with --patience)")
    p.add_argument("--lr", type=float, default=_UNSET, help="peak rate of the top group")
    p.add_argument("--tune", action=argparse.BooleanOptionalAction, default=_UNSET,
                   help="choose the peak rate with a range test first (fastai's lr_find, "
                        "its valley suggestion; 100 steps on what the first epoch trains), "
                        "instead of --lr; writes lr_find.json and lr_find.png")
    p.add_argument("--factor", type=float, default=_UNSET,
                   help="rate divisor per group (1: one rate)")
    p.add_argument("--schedule", choices=["stlr_stages", "stlr", "one_cycle", "constant"],
                   default=_UNSET,
                   help="stlr_stages: a slanted triangle per gradual-unfreezing stage; "
                        "stlr: one over the run")
    p.add_argument("--no-gradual-unfreezing", action="store_true")
    _add_optimizer_flag(p, default=_UNSET)
    p.add_argument("--drop-mult", type=float, default=_UNSET)
    p.add_argument("--batch-size", type=int, default=_UNSET,
                   help="default: 64, or 32 for fewer than 1,920 training texts (with "
                        "--lm; from scratch and --recipe paper: 64)")
    p.add_argument("--max-len", type=int, default=_UNSET)
    p.add_argument("--bptt", type=int, default=_UNSET)
    p.add_argument("--valid-fraction", type=float, default=_UNSET)
    p.add_argument("--patience", type=_int_or_none, default=_UNSET,
                   help="early stopping: stop after this many epochs without a better "
                        "--monitor (default none: train all --epochs; from scratch: 3)")
    p.add_argument("--restore-best", action=argparse.BooleanOptionalAction, default=_UNSET,
                   help="end with the weights of the epoch of best --monitor (default: "
                        "the last epoch's; from scratch: the best's)")
    p.add_argument("--monitor", choices=("val_loss", "val_accuracy"), default=_UNSET,
                   help="what the best epoch is best at (val_accuracy: ties go to the "
                        "lower loss)")
    p.add_argument("--bag-of-ngrams", action=argparse.BooleanOptionalAction, default=_UNSET,
                   help="blend the classifier with a TF-IDF bag of n-grams, weights "
                        "fitted on the validation split (default: on; --recipe paper: off)")
    p.add_argument("--test-split", action="store_true",
                   help="evaluate on the corpus' test split at the end (named corpora)")
    p.add_argument("--backwards", action="store_true", help="with a backward LM")
    p.add_argument("--embedding-dim", type=int, default=400, help="from scratch only")
    p.add_argument("--hidden-dim", type=int, default=1152, help="from scratch only")
    p.add_argument("--layers", type=int, default=3, help="from scratch only")
    p.add_argument("--max-vocab", type=int, default=60000, help="from scratch only")
    p.add_argument("--min-freq", type=int, default=2, help="from scratch only")
    p.add_argument("--seed", type=int, default=0)
    _add_strategy_flag(p)
    p.set_defaults(func=_train_classifier)

    p = sub.add_parser("evaluate", help="accuracy, per-class P/R/F1, confusion matrix; "
                       "several runs are ensembled (mean of probabilities)")
    p.add_argument("corpus")
    p.add_argument("runs", nargs="+", help="classifier run directories")
    p.add_argument("--split", default="test")
    p.add_argument("--data", default=None)
    _add_encoding_flag(p)
    p.add_argument("--out", default=None, help="write metrics.json and confusion.png here")
    _add_matmul_precision_flag(p)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("predict", help="classify texts with a trained classifier")
    p.add_argument("run")
    p.add_argument("texts", nargs="*")
    p.add_argument("--file", default=None, help="a text file, one text per line")
    _add_matmul_precision_flag(p)
    p.set_defaults(func=_predict)

    p = sub.add_parser("baseline", help="TF-IDF + logistic regression on the classifier's "
                       "split, for comparison (needs scikit-learn)")
    p.add_argument("corpus", help="as for train-classifier")
    p.add_argument("--data", default=None, help="local mirror of the datasets")
    _add_encoding_flag(p)
    p.add_argument("--valid-fraction", type=float, default=0.1)
    p.add_argument("--test-split", action="store_true",
                   help="also score the corpus' test split (named corpora)")
    p.add_argument("--seed", type=int, default=0, help="the split's seed, as train-classifier's")
    p.set_defaults(func=_baseline)

    p = sub.add_parser("lr-find", help="loss against learning rate for a classifier")
    p.add_argument("corpus")
    p.add_argument("--lm", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--data", default=None)
    _add_encoding_flag(p)
    p.add_argument("--drop-mult", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=100)
    p.set_defaults(func=_lr_find)

    p = sub.add_parser("export", help="write a SavedModel for TF Serving (<out>/<version>/)")
    p.add_argument("runs", nargs="+", metavar="run",
                   help="a classifier or language-model run directory; several classifier "
                        "runs (e.g. forward and backward) export as one averaged model")
    p.add_argument("--out", required=True, help="model base path (TF Serving watches it)")
    p.add_argument("--version", type=int, default=None,
                   help="version directory; default: the next free number")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing version (TF Serving will not reload it)")
    p.add_argument("--max-chars", type=int, default=100_000,
                   help="characters of each request text that are read")
    p.add_argument("--max-request-chars", type=int, default=2_000_000,
                   help="bytes of text per request; larger requests are refused")
    p.add_argument("--max-request-tokens", type=int, default=500_000,
                   help="texts x tokens of the longest per request; larger are refused")
    p.add_argument("--keep-special-tokens", action="store_true",
                   help="language models: let xxmaj, xxunk, ... into the top k")
    _add_matmul_precision_flag(p, "classifiers: ")
    p.set_defaults(func=_export)

    p = sub.add_parser("demo", help="ULMFiT on TREC-6 from the bundled pretrained LM, "
                       "beside the same model trained from scratch")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--data", default=None, help="local mirror of the datasets")
    p.add_argument("--pretrained", default=DEFAULT_PRETRAINED)
    p.add_argument("--pretrained-backward", default=DEFAULT_PRETRAINED_BACKWARD,
                   help="the backward LM (pretrained on TREC if none is there)")
    p.add_argument("--no-backward", action="store_true",
                   help="the forward direction only (half the time)")
    p.add_argument("--lm-epochs", type=int, default=3)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_demo)
    return parser


# An absl log record: severity letter, date, time; or absl's own notice that
# logging is not initialised. Lines that follow a record without such a
# head (e.g. "To enable the following instructions: ...") continue it.
_ABSL_RECORD = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d|^WARNING: All log messages before absl")
# A CUDA build of TensorFlow on a machine without a GPU reports this as an
# error, though nothing is wrong: the CPU is used.
_NO_GPU_NOISE = "failed call to cuInit"


def _quiet_tensorflow_log(captured):
    """The lines of `captured` (what TensorFlow wrote to stderr while
    starting) a user should see: TensorFlow's errors, and anything that is
    not an absl log record (a Python traceback)."""
    kept, keep = [], True
    for line in captured.splitlines(keepends=True):
        head = _ABSL_RECORD.match(line)
        if head:
            keep = head.group(1) in ("E", "F") and _NO_GPU_NOISE not in line
        if keep:
            kept.append(line)
    return "".join(kept)


def _start_tensorflow(verbose):
    """Imports TensorFlow and the package's Keras classes. TensorFlow 2.21
    logs its start-up (oneDNN, CUDA, CPU features) through absl before any
    log level applies (TF_CPP_MIN_LOG_LEVEL does not silence it), so unless
    `verbose`, its stderr is captured meanwhile and only errors are shown."""
    import ulmfit_tf

    if verbose or "tensorflow" in sys.modules:
        ulmfit_tf.import_keras_classes()
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_logical_devices()  # CUDA's probe logs here
            ulmfit_tf.import_keras_classes()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            sys.stderr.write(_quiet_tensorflow_log(capture.read().decode("utf-8", "replace")))


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    _start_tensorflow(args.verbose)
    try:
        if getattr(args, "strategy", "default") != "default":
            from ulmfit_tf.distribute import make_strategy

            with make_strategy(args.strategy).scope():
                args.func(args)
        else:
            args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"ulmfit-tf {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
