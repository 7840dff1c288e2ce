"""The AWD-LSTM encoder (Merity et al. 2017) as a Keras functional model."""

import keras
import tensorflow as tf

from ulmfit_tf.layers import EmbeddingDropout, LockedDropout, WeightDropLSTM
from ulmfit_tf.text.rules import PAD_ID

# fastai's `awd_lstm_lm_config` and `awd_lstm_clas_config` dropouts.
LM_DROPOUTS = dict(embedding_dropout=0.02, input_dropout=0.25, weight_dropout=0.2,
                   hidden_dropout=0.15, output_dropout=0.1)
CLASSIFIER_DROPOUTS = dict(embedding_dropout=0.05, input_dropout=0.4, weight_dropout=0.5,
                           hidden_dropout=0.3, output_dropout=0.4)


@keras.saving.register_keras_serializable(package="ulmfit_tf")
class AWDLSTM(keras.Model):
    """AWD-LSTM encoder: embedding, `num_layers` weight-dropped LSTMs.

    Merity, Keskar & Socher (2017), "Regularizing and Optimizing LSTM
    Language Models", as ULMFiT (Howard & Ruder 2018) uses it: embedding
    dropout, locked dropout on the embeddings (input) and between layers
    (hidden), weight drop in every LSTM. The last LSTM returns to the
    embedding size so that a language model can tie its decoder.

    Layer names define the layer groups used for freezing and per-layer
    rates: ``embedding``, ``rnn_0`` ... ``rnn_{n-1}`` (each with the dropout
    that follows it).

    The model takes the initial LSTM state as inputs and returns the final
    one, so callers can carry state across batches (language models) or
    chunks of a long document (BPT3C). Padding is not masked inside the
    LSTMs: with right padding, the outputs at real tokens do not depend on it,
    and callers mask the outputs (this keeps the fused cuDNN kernel usable).

    Args:
        vocabulary_size: number of token ids.
        embedding_dim: embedding size (paper and fastai: 400).
        hidden_dim: LSTM size (paper 1150, fastai 1152).
        num_layers: number of LSTM layers.
        embedding_dropout, input_dropout, weight_dropout, hidden_dropout:
            dropout rates, each multiplied by `drop_mult`. Defaults: fastai's
            language-model rates (`LM_DROPOUTS`).
        drop_mult: scales every dropout rate.
        mask_padding: hold the LSTM state over ``xxpad`` tokens, so that the
            returned state is the one after each row's last real token
            (right padding). Language models need not (their streams hold no
            padding); classifiers do, for long documents.
        output_bias: give the embedding a decoder bias (language models).

    Inputs: ``{"token_ids": [B, T] int, "state": [h_0, c_0, h_1, c_1, ...]}``.
    Outputs: ``{"sequence_output": [B, T, embedding_dim], "state": [...]}``.
    """

    def __init__(self, vocabulary_size, embedding_dim=400, hidden_dim=1152, num_layers=3,
                 embedding_dropout=LM_DROPOUTS["embedding_dropout"],
                 input_dropout=LM_DROPOUTS["input_dropout"],
                 weight_dropout=LM_DROPOUTS["weight_dropout"],
                 hidden_dropout=LM_DROPOUTS["hidden_dropout"], drop_mult=1.0,
                 mask_padding=False, output_bias=True, dtype=None, **kwargs):
        for name, value in (("vocabulary_size", vocabulary_size),
                            ("embedding_dim", embedding_dim), ("hidden_dim", hidden_dim),
                            ("num_layers", num_layers)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1. Received: {value!r}")
        if drop_mult < 0:
            raise ValueError(f"`drop_mult` must be >= 0. Received: {drop_mult!r}")
        sizes = [hidden_dim] * (num_layers - 1) + [embedding_dim]

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        state_in = []
        for layer, size in enumerate(sizes):
            state_in += [keras.Input(shape=(size,), name=f"rnn_{layer}_h"),
                         keras.Input(shape=(size,), name=f"rnn_{layer}_c")]
        x = EmbeddingDropout(vocabulary_size, embedding_dim,
                             embedding_dropout=embedding_dropout * drop_mult,
                             use_output_bias=output_bias, dtype=dtype,
                             name="embedding")(token_ids)
        x = LockedDropout(input_dropout * drop_mult, dtype=dtype, name="input_dropout")(x)
        mask = keras.ops.not_equal(token_ids, PAD_ID) if mask_padding else None
        state_out = []
        for layer, size in enumerate(sizes):
            x, h, c = WeightDropLSTM(size, weight_dropout * drop_mult, dtype=dtype,
                                     name=f"rnn_{layer}")(
                x, initial_state=(state_in[2 * layer], state_in[2 * layer + 1]), mask=mask)
            state_out += [h, c]
            if layer < num_layers - 1:
                x = LockedDropout(hidden_dropout * drop_mult, dtype=dtype,
                                  name=f"hidden_dropout_{layer}")(x)
        super().__init__(inputs={"token_ids": token_ids, "state": state_in},
                         outputs={"sequence_output": x, "state": state_out},
                         dtype=dtype, **kwargs)
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.embedding_dropout = embedding_dropout
        self.input_dropout = input_dropout
        self.weight_dropout = weight_dropout
        self.hidden_dropout = hidden_dropout
        self.drop_mult = drop_mult
        self.mask_padding = mask_padding
        self.output_bias = output_bias
        self.state_sizes = sizes

    def __call__(self, inputs, *args, **kwargs):
        # Keras refuses a mix of arrays and tensors in one nested input.
        if isinstance(inputs, dict) and not any(
                isinstance(x, keras.KerasTensor) for x in tf.nest.flatten(inputs)):
            inputs = {"token_ids": tf.convert_to_tensor(inputs["token_ids"]),
                      "state": [tf.convert_to_tensor(s) for s in inputs["state"]]}
        return super().__call__(inputs, *args, **kwargs)

    @property
    def layer_groups(self):
        """Layer groups from the bottom: [[embedding], [rnn_0, ...], ...]."""
        groups = [[self.get_layer("embedding"), self.get_layer("input_dropout")]]
        for layer in range(self.num_layers):
            group = [self.get_layer(f"rnn_{layer}")]
            if layer < self.num_layers - 1:
                group.append(self.get_layer(f"hidden_dropout_{layer}"))
            groups.append(group)
        return groups

    def zero_state(self, batch_size):
        """Zeros for the ``state`` input: [h_0, c_0, h_1, c_1, ...]."""
        return [tf.zeros([batch_size, size], self.compute_dtype)
                for size in self.state_sizes for _ in range(2)]

    def get_config(self):
        return {"vocabulary_size": self.vocabulary_size, "embedding_dim": self.embedding_dim,
                "hidden_dim": self.hidden_dim, "num_layers": self.num_layers,
                "embedding_dropout": self.embedding_dropout,
                "input_dropout": self.input_dropout, "weight_dropout": self.weight_dropout,
                "hidden_dropout": self.hidden_dropout, "drop_mult": self.drop_mult,
                "mask_padding": self.mask_padding, "output_bias": self.output_bias,
                "name": self.name, "trainable": self.trainable,
                "dtype": keras.saving.serialize_keras_object(self.dtype_policy)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
