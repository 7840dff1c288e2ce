"""The Keras-native API on raw text: TextClassifier and LanguageModel."""

import json
import os
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import ulmfit_tf
from ulmfit_tf import LanguageModel, TextClassifier
from ulmfit_tf.cli import main
from ulmfit_tf.data import ClassificationBatches
from ulmfit_tf.models import AWDLSTM, AWDLSTMLanguageModel
from ulmfit_tf.presets import DEFAULT_PRESET
from ulmfit_tf.tasks.text_classifier import encode_texts
from ulmfit_tf.text import Vocab, tokenize_corpus
from ulmfit_tf.training.language_model import split_documents


@pytest.fixture(scope="module")
def questions(trec):
    train = trec[0]
    texts = train.texts[:320]
    return texts, [train.classes[i] for i in train.labels[:320]], list(train.classes)


def tiny_language_model(texts, seed=0):
    vocab = Vocab.build(tokenize_corpus(texts, num_workers=1), min_freq=2)
    keras.utils.set_random_seed(seed)
    model = AWDLSTMLanguageModel(AWDLSTM(len(vocab), embedding_dim=16, hidden_dim=24,
                                         num_layers=2))
    model(np.full((1, 2), 2, np.int32))
    model.reset_states()
    return LanguageModel(model, vocab)


@pytest.fixture(scope="module")
def trained(questions):
    texts, labels, classes = questions
    clf = TextClassifier.from_language_model(tiny_language_model(texts), class_names=classes,
                                             seed=0)
    clf.compile()
    history = clf.fit(texts, labels, epochs=2, batch_size=32, verbose=0)
    return clf, history


def test_fit_predict_on_strings(trained, questions):
    clf, history = trained
    texts, labels, classes = questions
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 2
    probabilities = clf.predict(["who painted the mona lisa ?", "where is paris ?", "x"])
    assert probabilities.shape == (3, 6)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    # The Python fast path and the in-graph tokenizer give the same outputs.
    in_graph = clf(tf.constant(["who painted the mona lisa ?", "where is paris ?", "x"]))
    np.testing.assert_allclose(probabilities, in_graph.numpy(), atol=1e-6)
    assert clf.predict_labels(["where is paris ?"])[0] in classes
    reduced = clf.predict(texts[:64], matmul_precision="bfloat16")
    full = clf.predict(texts[:64])
    assert 0 < np.abs(reduced - full).max() < 0.05
    with pytest.raises(ValueError, match=r"`matmul_precision` applies to a list of texts"):
        clf.predict(tf.data.Dataset.from_tensor_slices(texts[:2]).batch(2),
                    matmul_precision="bfloat16")
    results = clf.evaluate(texts[:64], labels[:64], verbose=0, return_dict=True)
    assert 0.0 <= results["accuracy"] <= 1.0 and results["loss"] > 0


def test_compile_defaults_are_the_cli_recipe(trained):
    from ulmfit_tf.training.classifier import ClassifierConfig

    clf, _ = trained
    assert clf.recipe == ClassifierConfig.recipe("default")
    schedule = clf.optimizer.learning_rate  # sized by fit: one triangle per stage
    assert type(clf.optimizer).__name__ == "DiscriminativeAdam"
    assert clf.optimizer.get_config()["learning_rate"]["class_name"] == \
        "StagedSlantedTriangular", schedule
    multipliers = sorted(set(clf.optimizer.multipliers.values()))
    assert multipliers[-1] == 1.0 and multipliers[-2] == pytest.approx(1 / 1.3)
    paper = TextClassifier(clf.classifier, clf.vocab, clf.class_names)
    paper.compile(recipe="paper")
    assert paper.recipe.discriminative_factor == 2.6 and paper.recipe.patience is None
    assert paper.recipe.drop_mult == clf.recipe.drop_mult  # the model's, not changed


def test_save_load_round_trip(trained, tmp_path):
    clf, _ = trained
    texts = ["who painted the mona lisa ?", "how far is the moon ?"]
    path = str(tmp_path / "clf.keras")
    clf.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, TextClassifier) and loaded.class_names == clf.class_names
    np.testing.assert_array_equal(loaded.predict(texts), clf.predict(texts))
    assert loaded.recipe == clf.recipe  # compiled again with the same recipe
    again = TextClassifier.from_config(clf.get_config())
    assert again.get_config() == clf.get_config()


def test_export_writes_the_serving_model(trained, tmp_path):
    clf, _ = trained
    path = clf.export(str(tmp_path / "served"))
    assert path.endswith(os.path.join("served", "1"))
    served = tf.saved_model.load(path).signatures["serving_default"]
    out = served(text=tf.constant(["where is paris ?"]))
    np.testing.assert_allclose(out["probabilities"].numpy(), clf.predict(["where is paris ?"]),
                               atol=1e-5)


@pytest.mark.slow
def test_dataset_of_strings_gives_the_list_s_result(questions):
    """A tf.data.Dataset carrying the batches that the list path makes (texts
    tokenized in the graph) trains to the same weights."""
    texts, labels, classes = questions
    lm = tiny_language_model(texts)
    weights = []
    for kind in ("list", "dataset"):
        clf = TextClassifier.from_language_model(lm, class_names=classes, seed=0)
        clf.compile()
        if kind == "list":
            clf.fit(texts, labels, epochs=1, batch_size=32, validation_split=0.0, verbose=0)
        else:
            # fit's seeded split (nothing held out), then its sortish batches.
            kept, _ = split_documents(list(range(len(texts))), 0.0, 0)
            docs = [encode_texts(texts, clf.vocab)[i] for i in kept]
            order = [kept[i] for i in
                     ClassificationBatches(docs, np.zeros(len(docs)), 32, seed=0).order(0)]
            ds = tf.data.Dataset.from_tensor_slices(
                ([texts[i] for i in order], [labels[i] for i in order])).batch(32)
            clf.fit(ds, epochs=1, verbose=0)
        weights.append([w.numpy() for w in clf.classifier.weights])
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # Unbatched texts are batched by length, read lazily.
    ds = tf.data.Dataset.from_tensor_slices((texts, labels))
    history = clf.fit(ds, epochs=1, batch_size=16, validation_data=ds.take(40), verbose=0)
    assert np.isfinite(history.history["val_loss"][0])
    assert clf.predict(tf.data.Dataset.from_tensor_slices(texts[:5]).batch(2)).shape == (5, 6)


@pytest.mark.slow
def test_cli_and_api_train_the_same_weights(questions, tmp_path):
    texts, labels, classes = questions
    lm_run = str(tmp_path / "lm")
    tiny = tiny_language_model(texts)
    from ulmfit_tf.training.run_dir import save_model

    os.makedirs(lm_run)
    save_model(tiny.language_model, os.path.join(lm_run, "model.keras"))
    tiny.vocab.save(os.path.join(lm_run, "vocab.txt"))
    csv = tmp_path / "questions.csv"
    import csv as csv_module

    with open(csv, "w", newline="") as f:
        writer = csv_module.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels))
    out = str(tmp_path / "cli")
    assert main(["train-classifier", str(csv), "--lm", lm_run, "--out", out, "--epochs", "2",
                 "--seed", "3"]) == 0
    with open(os.path.join(out, "classes.json")) as f:
        assert json.load(f) == sorted(classes)
    with open(os.path.join(out, "config.json")) as f:  # the batch "auto" resolved to
        config = json.load(f)
    assert (config["batch_size"], config["train_docs"], config["total_steps"]) == (32, 288, 18)

    clf = TextClassifier.from_language_model(lm_run, class_names=sorted(classes), seed=3)
    clf.compile()
    clf.fit(texts, labels, epochs=2, seed=3, verbose=0)
    cli_model = keras.saving.load_model(os.path.join(out, "model.keras"), compile=False)
    for a, b in zip(cli_model.weights, clf.classifier.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.path)
    # The run blends this classifier with a bag of n-grams; its classifier
    # is the API's.
    run_model = TextClassifier.from_run(out)
    assert run_model.classifier.bag_weight >= 0
    only_classifier = TextClassifier(run_model.classifier.classifier, run_model.vocab,
                                     run_model.class_names)
    np.testing.assert_allclose(only_classifier.predict(texts[:4]), clf.predict(texts[:4]),
                               atol=1e-6)


def test_tune_in_cli_and_api_picks_the_same_rate_and_weights(questions, tmp_path,
                                                             monkeypatch):
    """`train-classifier --tune` and `compile(tune_lr=True)` run the same range
    test and then train the same weights at its suggestion."""
    from ulmfit_tf.training import classifier as classifier_module

    monkeypatch.setattr(classifier_module, "LR_FIND_STEPS", 40)  # test time
    texts, labels, classes = questions
    lm_run = str(tmp_path / "lm")
    from ulmfit_tf.training.run_dir import save_model

    os.makedirs(lm_run)
    tiny = tiny_language_model(texts)
    save_model(tiny.language_model, os.path.join(lm_run, "model.keras"))
    tiny.vocab.save(os.path.join(lm_run, "vocab.txt"))
    import csv as csv_module

    with open(tmp_path / "q.csv", "w", newline="") as f:
        csv_module.writer(f).writerows([("text", "label"), *zip(texts, labels)])
    out = str(tmp_path / "cli")
    assert main(["train-classifier", str(tmp_path / "q.csv"), "--lm", lm_run, "--out", out,
                 "--epochs", "1", "--batch-size", "32", "--tune", "--no-bag-of-ngrams"]) == 0
    with open(os.path.join(out, "lr_find.json")) as f:
        suggestion = json.load(f)["suggestion"]
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["max_lr"] == suggestion

    clf = TextClassifier.from_language_model(lm_run, class_names=sorted(classes), seed=0)
    clf.compile(tune_lr=True)
    clf.fit(texts, labels, epochs=1, batch_size=32, verbose=0)
    cli_model = keras.saving.load_model(os.path.join(out, "model.keras"), compile=False)
    for a, b in zip(cli_model.weights, clf.classifier.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.path)
    # The untuned recipe's rate trains something else.
    assert suggestion != clf.recipe.max_lr


def test_bad_input_is_named(trained):
    clf, _ = trained
    with pytest.raises(TypeError, match=r"`x` must hold strings. Received 3 of type int at "
                                        r"index 1"):
        clf.fit(["a", 3], ["HUM", "LOC"])
    with pytest.raises(ValueError, match=r"`y` holds a label outside `class_names`.*'FOO' "
                                         r"at index 1"):
        clf.fit(["a", "b"], ["HUM", "FOO"])
    with pytest.raises(ValueError, match=r"same length. Received 2 texts and 1 labels"):
        clf.fit(["a", "b"], ["HUM"])
    with pytest.raises(ValueError, match=r"`x` is empty"):
        clf.predict([])
    with pytest.raises(TypeError, match=r"not a single string"):
        clf.predict("who is it ?")
    with pytest.raises(ValueError, match=r"class id outside \[0, 6\). Received: 9"):
        clf.evaluate(["a"], [9])
    with pytest.raises(TypeError, match=r"Unknown recipe settings \['max_rate'\]"):
        clf.compile(max_rate=1e-2)
    with pytest.raises(ValueError, match=r"`drop_mult` shapes the model"):
        clf.compile(drop_mult=0.1)
    with pytest.raises(ValueError, match=r"`preset` must be a run directory or one of the presets"):
        TextClassifier.from_preset("no-such-model", num_classes=2)
    with pytest.raises(ValueError, match=r"`class_names` must be distinct"):
        TextClassifier.from_language_model(DEFAULT_PRESET, class_names=["a", "a"])
    fresh = TextClassifier(clf.classifier, clf.vocab, clf.class_names)
    with pytest.raises(RuntimeError, match=r"Call `compile\(\)` before `fit`"):
        fresh.fit(["a"], ["HUM"])


def test_monitor_val_accuracy_keeps_the_most_accurate_epoch(questions):
    """compile(monitor="val_accuracy"): the weights kept are those of the
    epoch of highest validation accuracy, ties going to the lower loss."""
    texts, labels, classes = questions
    clf = TextClassifier.from_language_model(tiny_language_model(texts), class_names=classes,
                                             seed=0)
    clf.compile(monitor="val_accuracy", patience=None)
    valid = (texts[:64], labels[:64])
    history = clf.fit(texts[64:], labels[64:], epochs=3, batch_size=32, validation_data=valid,
                      verbose=0).history
    best = max(range(3), key=lambda e: (history["val_accuracy"][e], -history["val_loss"][e]))
    results = clf.evaluate(*valid, verbose=0, return_dict=True)
    assert results["accuracy"] == pytest.approx(history["val_accuracy"][best], abs=1e-6)
    assert results["loss"] == pytest.approx(history["val_loss"][best], rel=1e-4)
    with pytest.raises(ValueError, match="`monitor` must be one of"):
        clf.compile(monitor="accuracy")


def test_auto_batch_size_halves_for_a_small_training_split(questions):
    """The recipe's batch_size="auto" trains 288 texts (320 less the
    validation tenth) in batches of 32, as `train-classifier` would; an
    int is kept; scoring uses batches of 64."""
    from ulmfit_tf.tasks.text_classifier import _count_texts
    from ulmfit_tf.training.classifier import (SMALL_TRAINING_SET, ClassifierConfig,
                                               inference_batch_size, resolve_batch_size)

    assert ClassifierConfig().batch_size == "auto"
    assert ClassifierConfig.recipe("paper").batch_size == 64
    assert [resolve_batch_size("auto", n) for n in (1, SMALL_TRAINING_SET - 1,
                                                    SMALL_TRAINING_SET)] == [32, 32, 64]
    assert resolve_batch_size(16, 10) == 16 and resolve_batch_size(16, 10 ** 6) == 16
    assert inference_batch_size("auto") == 64 and inference_batch_size(8) == 8
    with pytest.raises(ValueError, match=r"`batch_size` must be 'auto' or an int >= 1\. "
                                         r"Received: 'big'"):
        ClassifierConfig(batch_size="big")
    with pytest.raises(ValueError, match="`batch_size` must be 'auto' or an int >= 1"):
        ClassifierConfig(batch_size=0)

    texts, labels, classes = questions
    clf = TextClassifier.from_language_model(tiny_language_model(texts),
                                             class_names=classes, seed=0)
    steps = []

    class CountSteps(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            steps.append(self.model.optimizer.iterations.numpy())

    clf.compile()
    clf.fit(texts, labels, epochs=1, verbose=0, callbacks=[CountSteps()])
    assert steps == [9]  # ceil(288 / 32)
    with pytest.raises(ValueError, match="`batch_size` must be 'auto' or an int >= 1. "
                                         "Received: -4"):
        clf.fit(texts, labels, epochs=1, batch_size=-4, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices((texts, labels))
    assert _count_texts(dataset) == 320
    assert _count_texts(dataset.filter(lambda text, label: True)) == 320  # length unknown
    assert _count_texts(dataset.batch(8)) == _count_texts(dataset.repeat()) == float("inf")


def test_from_scratch_takes_the_scratch_settings(trained):
    clf, _ = trained
    scratch = TextClassifier.from_scratch(clf.vocab, class_names=["a", "b"], embedding_dim=8,
                                          hidden_dim=8, num_layers=1)
    scratch.compile()
    assert scratch.recipe.discriminative_factor is None
    assert scratch.recipe.gradual_unfreezing is False
    assert scratch.recipe.tune_lr is True  # its rate from a range test
    assert scratch.recipe.batch_size == 64  # batches of 32 were measured with an LM only
    assert scratch.predict(["some text"]).shape == (1, 2)


@pytest.mark.slow
def test_multi_label_and_regression(questions):
    texts, _, _ = questions
    lm = tiny_language_model(texts)
    tags = [["short"] if len(t) < 40 else ["long", "question"] for t in texts]
    clf = TextClassifier.from_language_model(lm, class_names=["short", "long", "question"],
                                             task="multi_label", seed=0)
    clf.compile(monitor="val_accuracy")  # the binary accuracy, for multi-label tasks
    clf.fit(texts, tags, epochs=1, batch_size=64, verbose=0)
    probabilities = clf.predict(texts[:3])
    assert probabilities.shape == (3, 3) and not np.allclose(probabilities.sum(1), 1.0)
    reg = TextClassifier.from_language_model(lm, task="regression", seed=0)
    reg.compile()
    history = reg.fit(texts, [len(t) / 100 for t in texts], epochs=1, verbose=0)
    assert "mean_absolute_error" in history.history and reg.predict(texts[:2]).shape == (2, 1)


def test_presets_are_found_by_name():
    from ulmfit_tf.presets import preset_names

    assert DEFAULT_PRESET in preset_names()
    lm = LanguageModel.from_preset(DEFAULT_PRESET)
    assert len(lm.vocab) == lm.language_model.encoder.vocabulary_size
    assert lm.generate("the president said", max_new_tokens=3, sampler="greedy").startswith(
        "the president said")


def test_language_model_adapt_fit_generate_save(questions, tmp_path):
    texts, _, _ = questions
    general = tiny_language_model(texts[:100])
    adapted = general.adapt(texts, min_freq=1)
    assert len(adapted.vocab) > len(general.vocab)
    word = next(t for t in general.vocab.itos[10:] if t in adapted.vocab.stoi)
    np.testing.assert_array_equal(
        adapted.language_model.embedding.embeddings.numpy()[adapted.vocab.stoi[word]],
        general.language_model.embedding.embeddings.numpy()[general.vocab.stoi[word]])
    adapted.compile(max_lr=1e-2)
    before = adapted.evaluate(texts[-64:], batch_size=8, verbose=0)["loss"]
    history = adapted.fit(texts, epochs=2, batch_size=8, verbose=0)
    assert len(history.history["loss"]) == 2
    assert adapted.evaluate(texts[-64:], batch_size=8, verbose=0)["loss"] < before
    assert adapted.generate("what is", max_new_tokens=4).startswith("what is")
    path = str(tmp_path / "lm.keras")
    adapted.save(path)
    loaded = keras.saving.load_model(path)
    ids = np.array([[2, 5, 9, 12]], np.int32)
    adapted.reset_states(), loaded.reset_states()
    np.testing.assert_allclose(loaded(ids).numpy(), adapted(ids).numpy(), atol=1e-6)
    with pytest.raises(TypeError, match=r"`texts` must be a list"):
        adapted.adapt(42)


def test_language_model_fits_a_handful_of_texts(questions):
    """A fit of one step (a few texts, the default batch): the slanted
    triangle had no room for a warm-up and refused to be built."""
    texts, _, _ = questions
    lm = tiny_language_model(texts)
    lm.compile()
    history = lm.fit(texts[:60], epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1 and np.isfinite(history.history["loss"][0])


def test_contraction_rule_follows_the_vocabulary_through_the_tasks(questions, tmp_path):
    """A vocabulary with spaCy's contraction rule (a converted fastai LM)
    keeps it through `adapt`, the classifier, Keras saving and generation."""
    texts, labels, classes = questions
    texts = [t.replace(" 's", "'s") for t in texts]  # TREC's text is pre-tokenized
    vocab = Vocab.build(tokenize_corpus(texts, num_workers=1, split_contractions=True),
                        min_freq=2, split_contractions=True)
    keras.utils.set_random_seed(0)
    model = AWDLSTMLanguageModel(AWDLSTM(len(vocab), embedding_dim=16, hidden_dim=24,
                                         num_layers=2))
    model(np.full((1, 2), 2, np.int32))
    general = LanguageModel(model, vocab)
    adapted = general.adapt(texts + ["I don't know what it's called"] * 3, min_freq=1)
    assert adapted.vocab.split_contractions and "n't" in adapted.vocab.stoi
    path = str(tmp_path / "lm.keras")
    adapted.save(path)
    assert keras.saving.load_model(path).vocab == adapted.vocab
    assert adapted.generate("Who doesn't", max_new_tokens=1).startswith("Who doesn't")
    clf = TextClassifier.from_language_model(adapted, class_names=classes, seed=0)
    assert clf.vocab == adapted.vocab
    clf.save(str(tmp_path / "clf.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "clf.keras"))
    ids = loaded.tokenizer(tf.constant(["what's it"]))[0].numpy().tolist()
    assert ids == clf.vocab.encode(["xxbos", "what", "'s", "it"]).tolist()


def test_finetune_lm_cli_and_api_train_the_same_weights(questions, tmp_path):
    texts, _, _ = questions
    general = tiny_language_model(texts[:150])
    from ulmfit_tf.training.run_dir import save_model

    lm_run = str(tmp_path / "general")
    save_model(general.language_model, os.path.join(lm_run, "model.keras"))
    general.vocab.save(os.path.join(lm_run, "vocab.txt"))
    corpus = tmp_path / "questions.txt"  # one document per line
    corpus.write_text("\n".join(texts) + "\n")
    from ulmfit_tf.corpus import read_texts

    documents = read_texts(str(corpus)).texts
    out = str(tmp_path / "cli")
    assert main(["finetune-lm", str(corpus), "--pretrained", lm_run, "--out", out,
                 "--epochs", "2", "--batch-size", "8", "--bptt", "20"]) == 0

    api = LanguageModel.from_preset(lm_run).adapt(documents)
    api.compile(bptt=20)
    api.fit(documents, epochs=2, batch_size=8, verbose=0)
    cli_model = keras.saving.load_model(os.path.join(out, "model.keras"), compile=False)
    assert Vocab.load(os.path.join(out, "vocab.txt")) == api.vocab
    for a, b in zip(cli_model.weights, api.language_model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.path)


MIRRORED = textwrap.dedent("""
    import numpy as np, tensorflow as tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    import keras
    from ulmfit_tf import TextClassifier
    from test_tasks import tiny_language_model
    texts = ["what is a cat ?", "who is he ?", "where is rome ?", "how many legs ?"] * 10
    labels = ["DESC", "HUM", "LOC", "NUM"] * 10
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        clf = TextClassifier.from_language_model(tiny_language_model(texts),
                                                 class_names=["DESC", "HUM", "LOC", "NUM"], seed=0)
        clf.compile()
    history = clf.fit(texts, labels, epochs=2, batch_size=8, verbose=0)
    print("replicas", clf.distribute_strategy.num_replicas_in_sync)
    print("loss", history.history["loss"][-1])
    # Batches of 3 and 5 rows do not split evenly between the 2 replicas
    # (Keras' own symbolic build fails on them in AddN).
    print("shape", clf.predict(texts[:3]).shape)
    print("accuracy", clf.evaluate(texts[:5], labels[:5], verbose=0, return_dict=True)["accuracy"])
""")


@pytest.mark.slow
def test_fit_under_mirrored_strategy(run_script):
    out = run_script(MIRRORED)
    assert out["replicas"] == "2" and np.isfinite(float(out["loss"]))
    assert out["shape"] == "(3, 4)" and 0 <= float(out["accuracy"]) <= 1
