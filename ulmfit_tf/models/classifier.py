"""ULMFiT text classifier: AWD-LSTM encoder, BPT3C, concat pooling, head."""

import keras
import tensorflow as tf

from ulmfit_tf.layers import CrossReplicaBatchNormalization
from ulmfit_tf.models.awd_lstm import AWDLSTM, CLASSIFIER_DROPOUTS
from ulmfit_tf.text.rules import PAD_ID

TASKS = ("single_label", "multi_label", "regression")


def build_head(input_dim, num_outputs, task="single_label", hidden_dim=50, dropout=0.4,
               hidden_dropout=0.1, dtype=None):
    """fastai's `PoolingLinearClassifier` head as a functional model.

    Two blocks of (BatchNorm, dropout, dense without bias): ReLU after the hidden one, and
    softmax, sigmoid or nothing after the output one (single-label,
    multi-label, regression), in float32. BatchNorm momentum 0.9 is PyTorch's
    0.1 (Keras counts the other way).
    """
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}. Received: {task!r}")
    inputs = keras.Input((input_dim,), name="pooled")
    # Global-batch statistics under tf.distribute, so N replicas train as
    # one device would (per-replica batches of a few rows give noisy ones).
    x = CrossReplicaBatchNormalization(momentum=0.9, epsilon=1e-5, dtype=dtype,
                                       name="head_bn_0")(inputs)
    x = keras.layers.Dropout(dropout, dtype=dtype, name="head_dropout_0")(x)
    # No biases after BatchNorm, as fastai's `LinBnDrop` (its shift is one).
    x = keras.layers.Dense(hidden_dim, activation="relu", use_bias=False, dtype=dtype,
                           name="head_dense_0")(x)
    x = CrossReplicaBatchNormalization(momentum=0.9, epsilon=1e-5, dtype=dtype,
                                       name="head_bn_1")(x)
    x = keras.layers.Dropout(hidden_dropout, dtype=dtype, name="head_dropout_1")(x)
    x = keras.layers.Dense(num_outputs, use_bias=False, dtype=dtype, name="head_dense_1")(x)
    activation = {"single_label": "softmax", "multi_label": "sigmoid", "regression": "linear"}
    outputs = keras.layers.Activation(activation[task], dtype="float32", name="output")(x)
    return keras.Model(inputs, outputs, name="head")


def bpt3c_split(token_ids, max_len, bptt):
    """Splits right-padded ids into (prefix, suffix) for BPT3C.

    The suffix holds each text's last `max_len` tokens (left-aligned,
    right-padded), the prefix everything before them (right-padded to a
    multiple of `bptt`). Shapes are static where the input's length is (XLA
    needs it). Returns (prefix [B, P], prefix_lengths [B], suffix [B, L],
    suffix_lengths [B]).
    """
    token_ids = tf.cast(token_ids, tf.int32)
    static_steps = token_ids.shape[1]
    steps = tf.shape(token_ids)[1]
    lengths = tf.reduce_sum(tf.cast(tf.not_equal(token_ids, PAD_ID), tf.int32), axis=1)
    start = tf.maximum(lengths - max_len, 0)
    window = min(max_len, static_steps) if static_steps is not None else tf.minimum(max_len, steps)
    positions = start[:, tf.newaxis] + tf.range(window)[tf.newaxis, :]
    suffix_lengths = lengths - start
    in_suffix = tf.range(window)[tf.newaxis, :] < suffix_lengths[:, tf.newaxis]
    suffix = tf.where(in_suffix, tf.gather(token_ids, tf.minimum(positions, steps - 1),
                                           batch_dims=1), PAD_ID)
    if static_steps is not None:
        prefix_steps = max(0, static_steps - max_len)  # >= every row's start
        prefix_steps = -(-prefix_steps // bptt) * bptt
    else:
        prefix_steps = tf.reduce_max(tf.concat([start, [0]], 0))
        prefix_steps = (prefix_steps + bptt - 1) // bptt * bptt
    prefix = tf.pad(token_ids, [[0, 0], [0, tf.maximum(prefix_steps - steps, 0)]],
                    constant_values=PAD_ID)[:, :prefix_steps]
    in_prefix = tf.range(prefix_steps)[tf.newaxis, :] < start[:, tf.newaxis]
    prefix = tf.where(in_prefix, prefix, PAD_ID)
    return prefix, start, suffix, suffix_lengths


def masked_concat_pool(outputs, lengths):
    """[last real output, max over real steps, mean over real steps] (fastai)."""
    mask = tf.range(tf.shape(outputs)[1])[tf.newaxis, :] < lengths[:, tf.newaxis]
    mask = tf.cast(mask, outputs.dtype)[:, :, tf.newaxis]
    safe_lengths = tf.maximum(lengths, 1)
    last = tf.gather(outputs, safe_lengths - 1, batch_dims=1)
    lowest = tf.cast(outputs.dtype.min, outputs.dtype)
    max_pool = tf.reduce_max(outputs * mask + (1 - mask) * lowest, axis=1)
    counts = tf.cast(safe_lengths, outputs.dtype)[:, tf.newaxis]
    mean_pool = tf.reduce_sum(outputs * mask, axis=1) / counts
    has_tokens = tf.cast(lengths > 0, outputs.dtype)[:, tf.newaxis]
    return tf.concat([last, max_pool * has_tokens, mean_pool], axis=-1)


def activation_penalty(outputs, lengths, alpha, beta):
    """AR + TAR over the real tokens of right-padded `outputs` [B, T, F]:
    ``alpha * mean(h_t ** 2) + beta * mean((h_t - h_{t-1}) ** 2)``, the
    means over real tokens (and real consecutive pairs) and features, in
    float32. The encoder's last layer has no dropout after it, so the
    "dropped" output of AR is the raw one of TAR, as in fastai's classifier."""
    x = tf.cast(outputs, tf.float32)
    real = tf.sequence_mask(lengths, tf.shape(x)[1], dtype=tf.float32)[:, :, tf.newaxis]
    features = tf.cast(tf.shape(x)[-1], tf.float32)
    loss = tf.constant(0.0)
    if alpha:
        loss += alpha * tf.reduce_sum(tf.square(x) * real) / (
            tf.maximum(tf.reduce_sum(real), 1.0) * features)
    if beta:
        pairs = real[:, 1:] * real[:, :-1]
        loss += beta * tf.reduce_sum(tf.square(x[:, 1:] - x[:, :-1]) * pairs) / (
            tf.maximum(tf.reduce_sum(pairs), 1.0) * features)
    return loss


@keras.saving.register_keras_serializable(package="ulmfit_tf")
class AWDLSTMClassifier(keras.Model):
    """Text classifier of ULMFiT (Howard & Ruder 2018, sec. 3.3).

    **BPT3C** (backpropagation through time for text classification): a text
    of any length is read in chunks of `bptt` tokens, the LSTM state carried
    from chunk to chunk, and only the outputs of its last `max_len` tokens are
    pooled and back-propagated into; the chunks before them run without
    gradients, so memory stays bounded however long the text (fastai: bptt
    72, max_len 72 * 20). We back-propagate through the whole last `max_len`
    window in one piece, where fastai detaches the state between its chunks.
    Each chunk before the window reads only the rows that still have text
    there, as fastai's `SentenceEncoder` does.

    Input: right-padded token ids [B, T] (``xxpad`` = 1). A text's
    prediction does not depend on what it is batched with.

    Args:
        encoder: an `AWDLSTM` built with ``mask_padding=True`` (see
            `from_language_model`).
        num_classes: outputs of the head.
        task: "single_label" (softmax), "multi_label" (sigmoid) or
            "regression" (linear).
        max_len: tokens at the end of each text that are pooled.
        bptt: chunk length for the tokens before them.
        head_hidden_dim, head_dropout, head_hidden_dropout: the head (fastai:
            50, 0.4 * drop_mult, 0.1).
        activation_alpha, temporal_beta: AR and TAR (AWD-LSTM's activation
            regularisers) on the encoder's outputs over each text's pooled
            window, real tokens only, in training: fastai's classifier
            learner adds them with 2 and 1, as ULMFiT's `train_clas.py` did.
    """

    def __init__(self, encoder, num_classes, task="single_label", max_len=72 * 20, bptt=72,
                 head_hidden_dim=50, head_dropout=CLASSIFIER_DROPOUTS["output_dropout"],
                 head_hidden_dropout=0.1, activation_alpha=2.0, temporal_beta=1.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(encoder, AWDLSTM):
            raise TypeError(f"`encoder` must be an AWDLSTM. Received: {encoder!r}")
        if not encoder.mask_padding:
            raise ValueError("`encoder` must be built with mask_padding=True, so the state "
                             "carried between chunks skips padding.")
        for name, value in (("num_classes", num_classes), ("max_len", max_len), ("bptt", bptt)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1. Received: {value!r}")
        for name, value in (("activation_alpha", activation_alpha),
                            ("temporal_beta", temporal_beta)):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"`{name}` must be a number >= 0. Received: {value!r}")
        self.activation_alpha, self.temporal_beta = float(activation_alpha), float(temporal_beta)
        self.encoder = encoder
        self.num_classes, self.task = num_classes, task
        self.max_len, self.bptt = max_len, bptt
        self.head_hidden_dim, self.head_dropout = head_hidden_dim, head_dropout
        self.head_hidden_dropout = head_hidden_dropout
        self.head = build_head(3 * encoder.embedding_dim, num_classes, task, head_hidden_dim,
                               head_dropout * encoder.drop_mult, head_hidden_dropout,
                               dtype=encoder.dtype_policy)

    @classmethod
    def from_language_model(cls, language_model, num_classes, drop_mult=1.0, **kwargs):
        """A classifier whose encoder starts from a (fine-tuned) LM's weights,
        with fastai's classifier dropouts times `drop_mult`."""
        lm_encoder = language_model.encoder if hasattr(language_model, "encoder") \
            else language_model
        rates = {k: v for k, v in CLASSIFIER_DROPOUTS.items() if k != "output_dropout"}
        encoder = AWDLSTM(lm_encoder.vocabulary_size, embedding_dim=lm_encoder.embedding_dim,
                          hidden_dim=lm_encoder.hidden_dim, num_layers=lm_encoder.num_layers,
                          drop_mult=drop_mult, mask_padding=True, output_bias=False,
                          dtype=lm_encoder.dtype_policy, **rates)
        model = cls(encoder, num_classes, **kwargs)
        source = {v.path: v for v in lm_encoder.weights}
        for variable in encoder.weights:
            if variable.path not in source:
                raise ValueError(f"The language model has no weight {variable.path!r}.")
            variable.assign(source[variable.path])
        return model

    @property
    def layer_groups(self):
        """fastai's classifier split: embedding, each RNN, then the head."""
        return self.encoder.layer_groups + [[self.head]]

    def encode(self, token_ids, training=False):
        """BPT3C: pooled features [B, 3 * embedding_dim] of right-padded ids."""
        token_ids = tf.cast(token_ids, tf.int32)
        prefix, prefix_lengths, suffix, suffix_lengths = bpt3c_split(token_ids, self.max_len,
                                                                     self.bptt)
        batch = tf.shape(token_ids)[0]
        state = [tf.zeros([batch, size], self.encoder.compute_dtype)
                 for size in self.encoder.state_sizes for _ in range(2)]

        def read_rows(chunk, rows, state):
            out = self.encoder({"token_ids": tf.gather(chunk, rows),
                                "state": [tf.gather(s, rows) for s in state]},
                               training=training)
            # No gradients flow into the text before the pooled window.
            return [tf.tensor_scatter_nd_update(s, rows[:, tf.newaxis], tf.stop_gradient(new))
                    for s, new in zip(state, out["state"])]

        def read_chunk(i, state):
            chunk = prefix[:, i * self.bptt:(i + 1) * self.bptt]
            chunk = tf.ensure_shape(chunk, [None, self.bptt])
            # Only the rows with text in this chunk, as fastai's
            # SentenceEncoder: one 12,000-token post in a batch of 64 would
            # otherwise make the other 63 rows read 12,000 tokens of padding
            # (20 Newsgroups: up to half of an epoch; docs/PERFORMANCE.md).
            rows = tf.reshape(tf.where(prefix_lengths > i * self.bptt), [-1])
            state = tf.cond(tf.size(rows) > 0, lambda: read_rows(chunk, rows, list(state)),
                            lambda: list(state))
            return i + 1, state

        chunks = prefix.shape[1] // self.bptt if prefix.shape[1] is not None else \
            tf.shape(prefix)[1] // self.bptt
        if tf.executing_eagerly():
            # tf.while_loop with maximum_iterations breaks on nested loop
            # variables when eager; a Python loop does the same there.
            for i in range(int(chunks)):
                _, state = read_chunk(i, state)
        elif not isinstance(chunks, int) or chunks > 0:
            _, state = tf.while_loop(
                lambda i, state: i < chunks, read_chunk, [0, state],
                shape_invariants=[tf.TensorShape([]),
                                  [tf.TensorShape([None, s.shape[1]]) for s in state]],
                maximum_iterations=chunks if isinstance(chunks, int) else None)
        out = self.encoder({"token_ids": suffix, "state": state}, training=training)
        if training and (self.activation_alpha or self.temporal_beta):
            self.add_loss(activation_penalty(out["sequence_output"], suffix_lengths,
                                             self.activation_alpha, self.temporal_beta))
        return masked_concat_pool(out["sequence_output"], suffix_lengths)

    def call(self, token_ids, training=False):
        return self.head(self.encode(token_ids, training=training), training=training)

    def get_config(self):
        return {**super().get_config(),
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "num_classes": self.num_classes, "task": self.task, "max_len": self.max_len,
                "bptt": self.bptt, "head_hidden_dim": self.head_hidden_dim,
                "head_dropout": self.head_dropout,
                "head_hidden_dropout": self.head_hidden_dropout,
                "activation_alpha": self.activation_alpha, "temporal_beta": self.temporal_beta}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)
