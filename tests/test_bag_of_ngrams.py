"""The TF-IDF bag of n-grams on token ids, and its blend with the classifier."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from ulmfit_tf.data.classification import pad_right
from ulmfit_tf.models.bag_of_ngrams import (BagOfNgrams, BlendedClassifier,
                                            bag_logits, fit_bag_of_ngrams, fit_blend, word_ids)
from ulmfit_tf.text import Vocab, tokenize_corpus
from ulmfit_tf.training.classifier import (ClassifierConfig, load_run, predict_probabilities,
                                           train_classifier)


@pytest.fixture(scope="module")
def trec_ids(trec_id_split):
    return trec_id_split(1500)


@pytest.fixture(scope="module")
def fitted(trec_ids):
    vocab, tr_x, tr_y, va_x, va_y, classes = trec_ids
    return fit_bag_of_ngrams(tr_x, tr_y, va_x, va_y, word_ids(vocab), len(classes),
                             cs=(1.0, 10.0))


def _as_words(vocab, docs):
    """The kept tokens of each doc as one string, for scikit-learn."""
    keep = word_ids(vocab)
    return [" ".join(vocab.itos[i] for i in d if keep[i]) for d in docs]


def test_word_ids_keep_words_not_markers_or_punctuation():
    from ulmfit_tf.text.rules import SPECIAL_TOKENS

    vocab = Vocab(list(SPECIAL_TOKENS) + ["the", "?", "a", "don't", "42", "\u2581cat", "xxx"])
    keep = dict(zip(vocab.itos, word_ids(vocab)))
    assert keep["the"] == keep["42"] == keep["\u2581cat"] == keep["xxx"] == 1
    assert keep["?"] == keep["a"] == keep["don't"] == keep["xxmaj"] == keep["xxbos"] == 0


def test_features_are_scikit_learns_tfidf(trec_ids, fitted):
    """Same idf, sublinear tf and L2 norm as TfidfVectorizer on the kept tokens."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vocab, tr_x, _, va_x, _, _ = trec_ids
    layer, _ = fitted
    vectorizer = TfidfVectorizer(token_pattern=r"\S+", lowercase=False, ngram_range=(1, 2),
                                 sublinear_tf=True)
    vectorizer.fit(_as_words(vocab, tr_x))
    assert layer.num_ngrams == len(vectorizer.vocabulary_)
    expected = vectorizer.transform(_as_words(vocab, va_x[:50]))
    row, column, value = (t.numpy() for t in layer.features(pad_right(va_x[:50])))
    ours = np.zeros((50, layer.num_ngrams + 1))
    np.add.at(ours, (row, column), value)
    # Our column c + 1 is the c-th key in sorted order; map scikit-learn's
    # n-gram strings to our keys the same way.
    names = vectorizer.get_feature_names_out()
    index = {w: i for i, w in enumerate(vocab.itos)}
    size = len(vocab)

    def key(name):
        parts = [index[p] for p in name.split(" ")]
        return parts[0] if len(parts) == 1 else size + parts[0] * size + parts[1]

    order = np.argsort([key(n) for n in names])
    np.testing.assert_allclose(ours[:, 1:], expected.toarray()[:, order], atol=1e-6)
    assert not ours[:, 0].any()  # unknown n-grams weigh nothing


def test_fit_matches_scikit_learns_logistic_regression(trec_ids, fitted):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vocab, tr_x, tr_y, va_x, va_y, classes = trec_ids
    layer, info = fitted
    vectorizer = TfidfVectorizer(token_pattern=r"\S+", lowercase=False, ngram_range=(1, 2),
                                 sublinear_tf=True)
    features = vectorizer.fit_transform(_as_words(vocab, tr_x))
    reference = LogisticRegression(C=info["C"], max_iter=2000).fit(features, tr_y)
    theirs = reference.predict(vectorizer.transform(_as_words(vocab, va_x)))
    ours = np.argmax(bag_logits(layer, va_x), -1)
    assert np.mean(ours == theirs) >= 0.97
    assert abs(np.mean(ours != va_y) - np.mean(theirs != va_y)) <= 0.015
    assert info["valid_losses"][info["C"]] == min(info["valid_losses"].values())


def test_nb_weighting_is_nbsvms_ratio(trec_ids, fitted):
    """Each class's ratio against the rest, on n-gram presence, alpha 1
    (Wang & Manning 2012, one class against the rest)."""
    from ulmfit_tf.models.bag_of_ngrams import _kernel_scale

    _, tr_x, tr_y, _, _, classes = trec_ids
    layer, _ = fitted
    labels = np.asarray(tr_y[:200])
    features = layer.features(pad_right(tr_x[:200]))
    scale = _kernel_scale("nb", features, labels, layer.num_ngrams + 1, len(classes)).numpy()
    row, column, _ = (t.numpy() for t in features)
    present = np.zeros((200, layer.num_ngrams + 1))
    present[row, column] = 1.0
    for c in range(len(classes)):
        p = 1.0 + present[labels == c].sum(0)
        q = 1.0 + present[labels != c].sum(0)
        np.testing.assert_allclose(scale[1:, c], np.log(p / p.sum() / (q / q.sum()))[1:],
                                   rtol=1e-5, atol=1e-6)
    assert np.all(_kernel_scale("tfidf", features, labels, 5, 3).numpy() == 1.0)


def test_weighting_is_chosen_by_validation_loss(trec_ids, fitted):
    vocab, tr_x, tr_y, va_x, va_y, classes = trec_ids
    args = (tr_x, tr_y, va_x, va_y, word_ids(vocab), len(classes))
    plain, plain_info = fitted
    nb, nb_info = fit_bag_of_ngrams(*args, cs=(1.0, 10.0), weightings=("nb",))
    both, info = fit_bag_of_ngrams(*args, cs=(1.0, 10.0), weightings=("tfidf", "nb"))
    losses = {"tfidf": plain_info["valid_losses"][plain_info["C"]],
              "nb": nb_info["valid_losses"][nb_info["C"]]}
    assert losses["tfidf"] != losses["nb"]
    assert info["weighting"] == min(losses, key=losses.get)
    chosen = plain if info["weighting"] == "tfidf" else nb
    np.testing.assert_allclose(bag_logits(both, va_x[:20]), bag_logits(chosen, va_x[:20]),
                               atol=1e-5)
    with pytest.raises(ValueError, match="weightings"):
        fit_bag_of_ngrams(*args, weightings=("bm25",))


def test_logits_do_not_depend_on_padding_or_batch(trec_ids, fitted):
    _, _, _, va_x, _, _ = trec_ids
    layer, _ = fitted
    alone = np.concatenate([layer(pad_right([d])).numpy() for d in va_x[:8]])
    padded = np.full((8, 60), 1, np.int64)
    for i, d in enumerate(va_x[:8]):
        padded[i, :len(d)] = d
    np.testing.assert_allclose(layer(padded).numpy(), alone, atol=1e-5)
    assert np.all(np.isfinite(layer(np.full((2, 3), 1, np.int64)).numpy()))  # all padding


def test_layer_config_and_save_round_trip(fitted, trec_ids, tmp_path):
    layer, _ = fitted
    va_x = trec_ids[3]
    clone = BagOfNgrams.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    model = keras.Sequential([keras.Input((None,), dtype="int32"), layer])
    model.save(tmp_path / "bag.keras")
    loaded = keras.models.load_model(tmp_path / "bag.keras").layers[-1]
    np.testing.assert_array_equal(bag_logits(loaded, va_x[:20]), bag_logits(layer, va_x[:20]))


def test_bad_arguments_name_themselves(trec_ids):
    vocab, tr_x, tr_y, va_x, va_y, _ = trec_ids
    with pytest.raises(ValueError, match="num_ngrams"):
        BagOfNgrams(10, 0, 2)
    with pytest.raises(ValueError, match="train_docs.*same length"):
        fit_bag_of_ngrams(tr_x, tr_y[:3], va_x, va_y, word_ids(vocab), 6)
    with pytest.raises(ValueError, match="valid_docs.*empty"):
        fit_bag_of_ngrams(tr_x, tr_y, [], [], word_ids(vocab), 6)
    with pytest.raises(ValueError, match="cs"):
        fit_bag_of_ngrams(tr_x, tr_y, va_x, va_y, word_ids(vocab), 6, cs=(0.0,))


def test_blend_weights_follow_the_informative_side():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    # Right on 80% of the texts, confidently wrong on the rest, so that no
    # scale makes the log loss vanish.
    right = rng.random(300) < 0.8
    informative = np.full((300, 3), 0.05)
    informative[np.arange(300), np.where(right, labels, (labels + 1) % 3)] = 0.9
    noise = rng.normal(size=(300, 3))
    a, b, _ = fit_blend(informative, noise, labels)
    assert b == 0 and a > 0
    a, b, _ = fit_blend(tf.nn.softmax(noise).numpy(), np.log(informative), labels)
    assert a == 0 and b > 0
    # Both half right, on different texts: the blend uses both.
    p = np.full((300, 3), 1 / 3)
    p[:150] = informative[:150]
    q = np.zeros((300, 3))
    q[150:] = np.log(informative[150:])
    a, b, _ = fit_blend(p, q, labels)
    assert a > 0 and b > 0


def test_blended_run_end_to_end(trec_ids, tmp_path):
    """train_classifier writes the blend; load_run, the CLI's path, serves it;
    its probabilities are the blend's formula; save and export keep them."""
    from ulmfit_tf.export import export_classifier

    vocab, tr_x, tr_y, va_x, va_y, classes = trec_ids
    sizes = {"vocabulary_size": len(vocab), "embedding_dim": 8, "hidden_dim": 12,
             "num_layers": 1}
    config = ClassifierConfig(epochs=1, max_len=12, bptt=5, gradual_unfreezing=False,
                              discriminative_factor=None)
    model, summary = train_classifier(sizes, tr_x[:300], tr_y[:300], va_x, va_y, classes, vocab,
                                      config, str(tmp_path / "run"), verbose=0)
    assert isinstance(model, BlendedClassifier)
    with open(tmp_path / "run" / "blend.json") as f:
        blend = json.load(f)
    assert blend == summary["blend"]
    loaded, *_ = load_run(str(tmp_path / "run"))
    assert isinstance(loaded, BlendedClassifier)
    # As `ulmfit-tf export` does: straight from the run, never called.
    path = export_classifier(loaded, vocab, classes, str(tmp_path / "export"), version=1)
    p = predict_probabilities(loaded.classifier, va_x[:30])
    q = tf.nn.log_softmax(bag_logits(loaded.bag_of_ngrams, va_x[:30])).numpy()
    expected = tf.nn.softmax(blend["classifier_weight"] * np.log(np.clip(p, 1e-7, 1))
                             + blend["bag_weight"] * q).numpy()
    np.testing.assert_allclose(predict_probabilities(loaded, va_x[:30]), expected, atol=1e-5)
    np.testing.assert_allclose(predict_probabilities(model, va_x[:30]), expected, atol=1e-5)
    assert loaded.num_classes == len(classes) and loaded.task == "single_label"
    assert not loaded.bag_of_ngrams.trainable_weights

    loaded.save(tmp_path / "blend.keras")
    again = keras.models.load_model(tmp_path / "blend.keras")
    np.testing.assert_allclose(predict_probabilities(again, va_x[:30]), expected, atol=1e-5)
    assert BlendedClassifier.from_config(loaded.get_config()).get_config() == loaded.get_config()

    served = tf.saved_model.load(path).signatures["predict_ids"](
        token_ids=tf.constant(pad_right(va_x[:30]), tf.int32))["probabilities"].numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)

    # The Keras task on raw strings serves the run's blend, and saves it.
    from ulmfit_tf.tasks import TextClassifier

    texts = [" ".join(vocab.itos[i] for i in d) for d in va_x[:10]]
    text_model = TextClassifier.from_run(str(tmp_path / "run"))
    on_strings = text_model.predict(texts, verbose=0)
    # A fresh process without ulmfit_tf reads the same from the SavedModel.
    script = (f"import json, tensorflow as tf; m = tf.saved_model.load({path!r}); "
              f"print(json.dumps(m.signatures['serving_default'](text=tf.constant("
              f"{texts!r}))['probabilities'].numpy().tolist()))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(json.loads(done.stdout.strip().splitlines()[-1]), on_strings,
                               atol=1e-5)
    np.testing.assert_allclose(on_strings, predict_probabilities(
        loaded, [vocab.encode(t) for t in tokenize_corpus(texts, num_workers=1)]), atol=1e-5)
    text_model.save(tmp_path / "text.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "text.keras").predict(
        texts, verbose=0), on_strings, atol=1e-6)


def test_no_blend_when_switched_off_or_multi_label(trec_ids, tmp_path):
    vocab, tr_x, tr_y, va_x, va_y, classes = trec_ids
    sizes = {"vocabulary_size": len(vocab), "embedding_dim": 8, "hidden_dim": 12,
             "num_layers": 1}
    config = ClassifierConfig(epochs=1, max_len=12, bptt=5, bag_of_ngrams=False)
    os.makedirs(tmp_path / "off")
    with open(tmp_path / "off" / "blend.json", "w") as f:  # an earlier run's
        json.dump({"classifier_weight": 1.0, "bag_weight": 1.0}, f)
    model, summary = train_classifier(sizes, tr_x[:100], tr_y[:100], va_x[:50], va_y[:50],
                                      classes, vocab, config, str(tmp_path / "off"), verbose=0)
    assert not isinstance(model, BlendedClassifier) and "blend" not in summary
    assert not os.path.exists(tmp_path / "off" / "blend.json")
    assert not isinstance(load_run(str(tmp_path / "off"))[0], BlendedClassifier)
    assert ClassifierConfig.recipe("paper").bag_of_ngrams is False
    assert ClassifierConfig().bag_of_ngrams is True


def test_blended_classifier_refuses_a_mismatch(fitted):
    from ulmfit_tf.training.classifier import build_classifier

    layer, _ = fitted
    sizes = {"vocabulary_size": layer.vocabulary_size, "embedding_dim": 8, "hidden_dim": 8,
             "num_layers": 1}
    config = ClassifierConfig(max_len=12, bptt=5)
    with pytest.raises(ValueError, match="6 classes"):
        BlendedClassifier(build_classifier(sizes, 3, config), layer, 1.0, 1.0)
    with pytest.raises(ValueError, match="bag_weight"):
        BlendedClassifier(build_classifier(sizes, 6, config), layer, 1.0, -1.0)


def test_fit_under_a_mirrored_strategy_matches_one_device(run_script):
    """train_classifier runs under a strategy's scope: the fit creates no
    variable until the end, and gives the same model there."""
    out = run_script("""
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from ulmfit_tf.models.bag_of_ngrams import bag_logits, fit_bag_of_ngrams
rng = np.random.default_rng(0)
labels = rng.integers(0, 3, 120)
docs = [np.concatenate([rng.integers(9, 40, 6), [40 + y] * 2, rng.integers(9, 40, 4)])
        for y in labels]
words = np.ones(50, np.float32)
words[:9] = 0
args = (docs[:90], labels[:90], docs[90:], labels[90:], words, 3)
with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
    mirrored, info = fit_bag_of_ngrams(*args, cs=(1.0, 10.0))
    under_scope = bag_logits(mirrored, docs[90:])
single, _ = fit_bag_of_ngrams(*args, cs=(1.0, 10.0))
print("max_abs_diff", float(np.abs(under_scope - bag_logits(single, docs[90:])).max()))
print("valid_error", info["valid_errors"][info["C"]])
""")
    assert float(out["max_abs_diff"]) < 1e-5
    assert float(out["valid_error"]) == 0.0  # the class word is in every text
