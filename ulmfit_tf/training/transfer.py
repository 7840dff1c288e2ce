"""Moving a language model between vocabularies (ULMFiT stage 1 -> 2)."""

import numpy as np

from ulmfit_tf.models import AWDLSTM, AWDLSTMLanguageModel
from ulmfit_tf.text.rules import BOS_ID


def remap_language_model(language_model, old_vocab, new_vocab, drop_mult=None):
    """A copy of `language_model` for `new_vocab`, as fastai's `match_embeds`.

    Rows of tokens both vocabularies know are copied (embedding and decoder
    bias); tokens new to the model get the mean row. Every other weight is
    copied by name, and it is an error if any weight is left unloaded.

    Returns:
        (new language model, number of new tokens).
    """
    old = language_model.encoder
    if len(old_vocab) != old.vocabulary_size:
        raise ValueError(f"`old_vocab` has {len(old_vocab)} tokens, the model "
                         f"{old.vocabulary_size}.")
    encoder = AWDLSTM(len(new_vocab), embedding_dim=old.embedding_dim,
                      hidden_dim=old.hidden_dim, num_layers=old.num_layers,
                      embedding_dropout=old.embedding_dropout, input_dropout=old.input_dropout,
                      weight_dropout=old.weight_dropout, hidden_dropout=old.hidden_dropout,
                      drop_mult=old.drop_mult if drop_mult is None else drop_mult,
                      dtype=old.dtype_policy)
    model = AWDLSTMLanguageModel(encoder, output_dropout=language_model.output_dropout,
                                 ar_alpha=language_model.ar_alpha,
                                 tar_beta=language_model.tar_beta)
    model(np.full((1, 2), BOS_ID, np.int32))
    model.reset_states()

    old_embeddings = language_model.embedding.embeddings.numpy()
    old_bias = language_model.embedding.output_bias.numpy()
    index = np.array([old_vocab.stoi.get(token, -1) for token in new_vocab.itos])
    known = index >= 0
    embeddings = np.tile(old_embeddings.mean(0), (len(new_vocab), 1))
    bias = np.full(len(new_vocab), old_bias.mean(), old_bias.dtype)
    embeddings[known] = old_embeddings[index[known]]
    bias[known] = old_bias[index[known]]
    model.embedding.embeddings.assign(embeddings)
    model.embedding.output_bias.assign(bias)

    source = {v.path: v for v in language_model.weights}
    loaded = {"embedding/embeddings", "embedding/output_bias"}
    for variable in model.weights:
        if variable.path in loaded:
            continue
        if variable.path not in source or tuple(source[variable.path].shape) != \
                tuple(variable.shape):
            raise ValueError(f"No matching weight for {variable.path!r} in the language model.")
        variable.assign(source[variable.path])
        loaded.add(variable.path)
    unused = sorted(set(source) - loaded)
    if unused:
        raise ValueError(f"Weights of the language model left unloaded: {unused}")
    return model, int((~known).sum())
