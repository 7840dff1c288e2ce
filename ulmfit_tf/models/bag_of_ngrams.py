"""A TF-IDF bag-of-n-grams linear classifier on token ids, and its blend with ULMFiT.

At this project's scale (a 10M-token stage-1 LM on 2 CPU cores, not the
paper's WikiText-103 one), ULMFiT alone loses to TF-IDF + logistic
regression on long texts full of rare topical words (IMDb: 21% against
17% test error; 20 Newsgroups: 38% against 25%) and wins on short ones
(TREC-6: 7% against 12%). The default classifier therefore blends the two,
with weights fitted on the validation split (docs/RESULTS.md 4.6).

Both parts read the same token ids, so the blend is one Keras model that
the CLI, the Python API and the SavedModel run alike, with core ops only.
"""

import re

import keras
import numpy as np
import tensorflow as tf

from ulmfit_tf.data.classification import pad_right
from ulmfit_tf.text.rules import PAD_ID, SPECIAL_TOKENS

# Inverse regularisation strengths tried (scikit-learn's C); the best on
# the validation split wins, as for the TF-IDF baseline of the bench.
DEFAULT_CS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
FIT_STEPS = 300
FIT_BATCH = 256  # documents featurised at a time


def word_ids(vocab):
    """A 0/1 vector over `vocab`'s ids: 1 for a word of two or more word
    characters (scikit-learn's default token pattern), 0 for punctuation,
    single characters and our special tokens (``xxmaj``, ``xxbos``...). On
    all our tokens the bag of n-grams had 20.4% test error on IMDb (seed 2,
    C chosen by validation error), on words only 17.5%: bigrams of
    punctuation and markers are noise to it."""
    keep = np.zeros(len(vocab), np.float32)
    for i, token in enumerate(vocab.itos):
        token = token.lstrip("\u2581")  # a SentencePiece piece's word start
        keep[i] = bool(re.fullmatch(r"\w\w+", token)) and token not in SPECIAL_TOKENS
    return keep


def ngram_keys(ids, vocabulary_size):
    """Unigram and bigram keys of right-padded ids [B, T]: a unigram is its
    id, a bigram (a, b) is V + a * V + b; -1 where padding is involved."""
    ids = tf.cast(ids, tf.int64)
    size = tf.constant(vocabulary_size, tf.int64)
    real = tf.not_equal(ids, PAD_ID)
    unigrams = tf.where(real, ids, -1)
    bigrams = tf.where(real[:, :-1] & real[:, 1:], size + ids[:, :-1] * size + ids[:, 1:], -1)
    return tf.concat([unigrams, bigrams], axis=1)


def words_only(token_ids, words):
    """Right-padded ids [B, T] without the ids that `words` (0/1 per id)
    drops, closed up, so bigrams span what lay between (as scikit-learn's
    bigrams span the punctuation its tokenizer drops)."""
    token_ids = tf.convert_to_tensor(token_ids)
    keep = tf.not_equal(token_ids, PAD_ID) & (tf.gather(words, token_ids) > 0)
    return tf.ragged.boolean_mask(token_ids, keep).to_tensor(
        default_value=tf.constant(PAD_ID, token_ids.dtype))


@keras.saving.register_keras_serializable(package="ulmfit_tf")
class BagOfNgrams(keras.layers.Layer):
    """Right-padded token ids [B, T] -> class logits [B, C] of a linear model
    on L2-normalised sublinear TF-IDF features of the ids' unigrams and
    bigrams: scikit-learn's ``TfidfVectorizer(ngram_range=(1, 2),
    sublinear_tf=True)`` on our tokens, with its smoothed idf.

    N-grams are formed over the ids that `words` keeps (`word_ids`).
    The n-gram vocabulary is a sorted key vector (`ngram_keys`) searched with
    `tf.searchsorted`: no lookup table, so it saves as weights and serves
    with core ops. N-grams outside it (and padding) are dropped. Fitted by
    `fit_bag_of_ngrams`.

    Args:
        vocabulary_size: of the token ids.
        num_ngrams: size of the n-gram vocabulary.
        num_classes: outputs.
    """

    def __init__(self, vocabulary_size, num_ngrams, num_classes, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("vocabulary_size", vocabulary_size), ("num_ngrams", num_ngrams),
                            ("num_classes", num_classes)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1. Received: {value!r}")
        self.vocabulary_size, self.num_ngrams = int(vocabulary_size), int(num_ngrams)
        self.num_classes = int(num_classes)
        self.words = self.add_weight(shape=(self.vocabulary_size,), initializer="zeros",
                                     trainable=False, name="words")
        self.keys = self.add_weight(shape=(self.num_ngrams,), dtype="int64",
                                    initializer="zeros", trainable=False, name="ngram_keys")
        # Row 0 stands for every n-gram outside the vocabulary: idf 0 drops it.
        self.idf = self.add_weight(shape=(self.num_ngrams + 1,), initializer="zeros",
                                   trainable=False, name="idf")
        self.kernel = self.add_weight(shape=(self.num_ngrams + 1, self.num_classes),
                                      initializer="zeros", name="kernel")
        self.bias = self.add_weight(shape=(self.num_classes,), initializer="zeros",
                                    name="bias")
        self.built = True  # its weights do not depend on the input's shape

    def features(self, token_ids):
        """Sparse TF-IDF rows: (row [N], column [N], value [N]) of a batch,
        one entry per distinct n-gram of a text (column 0: unknown)."""
        token_ids = words_only(tf.cast(token_ids, tf.int64), self.words)
        keys = ngram_keys(token_ids, self.vocabulary_size)
        batch, width = tf.shape(keys, out_type=tf.int64)[0], tf.shape(keys, out_type=tf.int64)[1]
        flat = tf.reshape(keys, [-1])
        position = tf.minimum(tf.searchsorted(self.keys, flat, out_type=tf.int64),
                              self.num_ngrams - 1)
        column = tf.where(tf.gather(self.keys, position) == flat, position + 1, 0)
        rows = tf.repeat(tf.range(batch), width)
        distinct, _, counts = tf.unique_with_counts(rows * (self.num_ngrams + 1) + column,
                                                    out_idx=tf.int64)
        row, column = distinct // (self.num_ngrams + 1), distinct % (self.num_ngrams + 1)
        value = (1.0 + tf.math.log(tf.cast(counts, tf.float32))) * tf.gather(self.idf, column)
        norm = tf.sqrt(tf.math.unsorted_segment_sum(tf.square(value), row, batch))
        return row, column, value / tf.maximum(tf.gather(norm, row), 1e-12)

    def call(self, token_ids):
        return _logits(self.features(token_ids), self.kernel, self.bias,
                       tf.shape(token_ids, out_type=tf.int64)[0])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size,
                "num_ngrams": self.num_ngrams, "num_classes": self.num_classes}


def bag_logits(layer, docs):
    """Logits [N, C] of a list of id arrays."""
    return np.concatenate([layer(pad_right(docs[start:start + FIT_BATCH])).numpy()
                           for start in range(0, len(docs), FIT_BATCH)])


def _features_of(layer, docs):
    """All of `docs`' TF-IDF entries as one (row, column, value) triple."""
    rows, columns, values = [], [], []
    for start in range(0, len(docs), FIT_BATCH):
        row, column, value = layer.features(pad_right(docs[start:start + FIT_BATCH]))
        rows.append(row.numpy() + start)
        columns.append(column.numpy())
        values.append(value.numpy())
    return (tf.constant(np.concatenate(rows)), tf.constant(np.concatenate(columns)),
            tf.constant(np.concatenate(values)))


def _check_labelled(name, docs, labels):
    if len(docs) != len(labels):
        raise ValueError(f"`{name}_docs` and `{name}_labels` must have the same length. "
                         f"Received: {len(docs)} and {len(labels)}")
    if not len(docs):
        raise ValueError(f"`{name}_docs` is empty.")


def fit_bag_of_ngrams(train_docs, train_labels, valid_docs, valid_labels, words, num_classes,
                      cs=DEFAULT_CS, weightings=("tfidf",)):
    """Fits a `BagOfNgrams` (L2-regularised logistic regression) for each C
    in `cs` on the training ids, warm-started from the previous C, and keeps
    the C with the lowest validation log loss. (The validation error of 100
    IMDb reviews was flat within 4 reviews across C and chose a C 1.2 points
    worse on 2,000 others.)

    The objective is scikit-learn's: C x the summed cross-entropy + half the
    squared kernel norm (the bias is not penalised), minimised with
    full-batch Adam (`FIT_STEPS` steps per C) on plain tensors: no variable
    is created until the end, so the fit runs the same under a
    `tf.distribute` strategy's scope.

    `words`: 0/1 per token id, the ids n-grams are made of (`word_ids`).
    `weightings`: fitted in turn, the lowest validation log loss over all
    (weighting, C) wins. "tfidf": the kernel is penalised as it is; "nb":
    the kernel is V x r and V is penalised, r being each class's naive
    Bayes log-count ratio against the rest (Wang & Manning's NBSVM, on
    TF-IDF features as in Jeremy Howard's "NB-SVM strong linear baseline"):
    n-grams that tell the classes apart cost less to use. Either way the
    layer holds one kernel, so serving is the same.

    Returns:
        (layer, {"C": chosen, "weighting": chosen, "valid_losses":
        {C: loss}, "valid_errors": {C: error}} of the chosen weighting).
    """
    _check_labelled("train", train_docs, train_labels)
    _check_labelled("valid", valid_docs, valid_labels)
    if not cs or any(not c > 0 for c in cs):
        raise ValueError(f"`cs` must be positive numbers. Received: {cs!r}")
    if not weightings or any(w not in WEIGHTINGS for w in weightings):
        raise ValueError(f"`weightings` must be some of {WEIGHTINGS}. Received: {weightings!r}")
    train_labels = np.asarray(train_labels, np.int64)
    valid_labels = np.asarray(valid_labels, np.int64)
    words = np.asarray(words, np.float32)
    # Document frequencies: each text's distinct keys, counted over texts
    # (a batch at a time: one padded matrix of 25,000 reviews is gigabytes).
    distinct = []
    for start in range(0, len(train_docs), FIT_BATCH):
        keys = ngram_keys(words_only(pad_right(train_docs[start:start + FIT_BATCH]), words),
                          len(words)).numpy()
        distinct.extend(np.unique(row[row >= 0]) for row in keys)
    vocabulary, document_frequency = np.unique(np.concatenate(distinct), return_counts=True)
    if not len(vocabulary):
        raise ValueError("`train_docs` hold no word: nothing to make n-grams of.")
    layer = BagOfNgrams(len(words), len(vocabulary), num_classes)
    layer.words.assign(words)
    layer.keys.assign(vocabulary)
    idf = np.log((1.0 + len(train_docs)) / (1.0 + document_frequency)) + 1.0
    layer.idf.assign(np.concatenate([[0.0], idf]).astype(np.float32))

    train_features = _features_of(layer, train_docs)
    valid_features = _features_of(layer, valid_docs)
    fits = {w: _fit_path(train_features, train_labels, valid_features, valid_labels,
                         _kernel_scale(w, train_features, train_labels, layer.num_ngrams + 1,
                                       num_classes), cs)
            for w in weightings}
    weighting, best = min(((w, c) for w in weightings for c in cs),
                          key=lambda wc: (fits[wc[0]]["valid_losses"][wc[1]], wc[1]))
    kernel, bias = fits[weighting]["fitted"][best]
    layer.kernel.assign(kernel)
    layer.bias.assign(bias)
    return layer, {"C": best, "weighting": weighting,
                   "valid_losses": fits[weighting]["valid_losses"],
                   "valid_errors": fits[weighting]["valid_errors"]}


WEIGHTINGS = ("tfidf", "nb")


def _kernel_scale(weighting, features, labels, num_columns, num_classes):
    """[columns, classes]: 1 ("tfidf"), or each n-gram's naive Bayes
    log-count ratio of a class against the rest ("nb"): log of its share
    of the class's texts over its share of the others', presence counted,
    plus one (NBSVM's alpha = 1)."""
    if weighting == "tfidf":
        return tf.ones((num_columns, num_classes))
    row, column, _ = (t.numpy() for t in features)
    in_class = np.zeros((num_columns, num_classes))
    np.add.at(in_class, (column, labels[row]), 1.0)
    p = in_class + 1.0
    q = in_class.sum(1, keepdims=True) - in_class + 1.0
    ratio = np.log(p / p.sum(0)) - np.log(q / q.sum(0))
    ratio[0] = 1.0  # the unknown column: its feature is always 0
    return tf.constant(ratio, tf.float32)


def _fit_path(train_features, train_labels, valid_features, valid_labels, scale, cs):
    """Kernel and bias for each C (from the smallest, each warm-started from
    the last), with the validation log loss and error of each."""
    num_classes = int(scale.shape[1])
    count, valid_count = int(len(train_labels)), int(len(valid_labels))
    state = [tf.zeros(scale.shape), tf.zeros((num_classes,))]
    moments = [tf.zeros_like(t) for t in state for _ in range(2)]
    losses, errors, fitted = {}, {}, {}
    steps_done = 0
    for c in sorted(cs):
        # The objective divided by C x the number of texts.
        penalty = tf.constant(1.0 / (2.0 * c * count), tf.float32)
        state, moments = _adam(train_features, train_labels, count, state, moments,
                               penalty, tf.constant(steps_done, tf.float32), scale)
        steps_done += FIT_STEPS
        kernel = state[0] * scale
        logits = _logits(valid_features, kernel, state[1], valid_count)
        losses[c] = float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            valid_labels, logits)))
        errors[c] = float(np.mean(np.argmax(logits.numpy(), -1) != valid_labels))
        fitted[c] = [kernel.numpy(), state[1].numpy()]
    return {"valid_losses": losses, "valid_errors": errors, "fitted": fitted}


def _logits(features, kernel, bias, batch):
    # A sparse-dense matmul: 3x faster to fit than gathering kernel rows
    # and summing them per text (IMDb, 310k entries).
    row, column, value = features
    shape = tf.stack([tf.cast(batch, tf.int64), tf.shape(kernel, out_type=tf.int64)[0]])
    rows = tf.SparseTensor(tf.stack([row, column], axis=1), value, shape)
    return tf.sparse.sparse_dense_matmul(rows, kernel) + bias


@tf.function
def _adam(features, labels, count, state, moments, penalty, steps_done, scale,
          learning_rate=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """`FIT_STEPS` full-batch Adam steps from `state` ([V, bias], the kernel
    being V x `scale`) and `moments` ([m, v] of each), Keras' Adam update."""

    def step(i, state, moments):
        with tf.GradientTape() as tape:
            tape.watch(state)
            kernel, bias = state
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels, _logits(features, kernel * scale, bias, count))) + penalty * \
                tf.reduce_sum(tf.square(kernel))
        gradients = [tf.convert_to_tensor(g) for g in tape.gradient(loss, state)]
        t = steps_done + tf.cast(i, tf.float32) + 1.0
        rate = learning_rate * tf.sqrt(1.0 - beta_2 ** t) / (1.0 - beta_1 ** t)
        new_state, new_moments = [], []
        for value, gradient, m, v in zip(state, gradients, moments[0::2], moments[1::2]):
            m = m + (gradient - m) * (1.0 - beta_1)
            v = v + (tf.square(gradient) - v) * (1.0 - beta_2)
            new_state.append(value - rate * m / (tf.sqrt(v) + epsilon))
            new_moments += [m, v]
        return i + 1, new_state, new_moments

    _, state, moments = tf.while_loop(lambda i, *_: i < FIT_STEPS, step, [0, state, moments])
    return state, moments


BLEND_SHARES = np.round(np.linspace(0.0, 1.0, 21), 2)
BLEND_SCALES = np.round(np.geomspace(0.05, 20.0, 27), 4)


def fit_blend(classifier_probabilities, bag_logits, labels):
    """Weights (a, b) of the blend softmax(a log p + b log q) of a
    classifier's probabilities p and a bag of n-grams' q, by the lowest log
    loss on `labels` over a grid of shares b / (a + b) and scales a + b.

    The scale matters: our classifier's probabilities are over-confident
    (IMDb: 0.92 on average at 21% error) and a bag of n-grams' timid (0.68
    at 16%), so an even mean of the two follows the classifier. Returns
    (a, b, log loss).
    """
    labels = np.asarray(labels, np.int64)
    log_p = np.log(np.clip(np.asarray(classifier_probabilities, np.float64), 1e-7, 1.0))
    log_q = tf.nn.log_softmax(np.asarray(bag_logits, np.float64)).numpy()
    best = None
    for share in BLEND_SHARES:
        mixed = (1.0 - share) * log_p + share * log_q
        for scale in BLEND_SCALES:
            z = scale * mixed
            z = z - z.max(-1, keepdims=True)
            loss = float(np.mean(np.log(np.exp(z).sum(-1)) - z[np.arange(len(labels)), labels]))
            if best is None or loss < best[2] - 1e-12:
                best = (float(scale * (1.0 - share)), float(scale * share), loss)
    return best


def blend_probabilities(classifier_probabilities, bag_logits, classifier_weight, bag_weight):
    """softmax(a log p + b log_softmax(bag logits)): the blend of
    `BlendedClassifier`, also for probabilities and logits at hand."""
    probabilities = tf.cast(classifier_probabilities, tf.float32)
    log_p = tf.math.log(tf.clip_by_value(probabilities, 1e-7, 1.0))
    log_q = tf.nn.log_softmax(tf.cast(bag_logits, tf.float32))
    return tf.nn.softmax(classifier_weight * log_p + bag_weight * log_q)


@keras.saving.register_keras_serializable(package="ulmfit_tf")
class BlendedClassifier(keras.Model):
    """softmax(a log p + b log q): a classifier's probabilities p blended
    with a `BagOfNgrams`' q on the same token ids (`fit_blend`).

    Behaves as the classifier it wraps where a caller needs it to
    (`num_classes`, `task`, `layer_groups`, `encoder`); the bag of n-grams
    and the weights are fixed (not trainable): fine-tuning the blend trains
    the classifier alone.
    """

    def __init__(self, classifier, bag_of_ngrams, classifier_weight, bag_weight, **kwargs):
        super().__init__(**kwargs)
        if getattr(classifier, "task", None) != "single_label":
            raise ValueError("`classifier` must be a single-label classifier (softmax). "
                             f"Received task={getattr(classifier, 'task', None)!r}")
        if not isinstance(bag_of_ngrams, BagOfNgrams):
            raise TypeError(f"`bag_of_ngrams` must be a BagOfNgrams. Received: {bag_of_ngrams!r}")
        if bag_of_ngrams.num_classes != classifier.num_classes:
            raise ValueError(f"`bag_of_ngrams` has {bag_of_ngrams.num_classes} classes, "
                             f"`classifier` {classifier.num_classes}.")
        for name, value in (("classifier_weight", classifier_weight),
                            ("bag_weight", bag_weight)):
            if not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"`{name}` must be a number >= 0. Received: {value!r}")
        self.classifier, self.bag_of_ngrams = classifier, bag_of_ngrams
        self.bag_of_ngrams.trainable = False
        self.classifier_weight, self.bag_weight = float(classifier_weight), float(bag_weight)
        # Export refuses an unbuilt model; a loaded run's is built.
        self.built = classifier.built

    num_classes = property(lambda self: self.classifier.num_classes)
    task = property(lambda self: self.classifier.task)
    layer_groups = property(lambda self: self.classifier.layer_groups)
    encoder = property(lambda self: self.classifier.encoder)

    def call(self, token_ids, training=False):
        return blend_probabilities(self.classifier(token_ids, training=training),
                                   self.bag_of_ngrams(token_ids), self.classifier_weight,
                                   self.bag_weight)

    def get_config(self):
        return {**super().get_config(),
                "classifier": keras.saving.serialize_keras_object(self.classifier),
                "bag_of_ngrams": keras.saving.serialize_keras_object(self.bag_of_ngrams),
                "classifier_weight": self.classifier_weight, "bag_weight": self.bag_weight}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("classifier", "bag_of_ngrams"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
