"""Arm (iv) of bench/trec_ablation.py: fastai's own recipe from our weights.

Our pretrained LM (already remapped to the TREC vocabulary) is converted to
fastai's layout; fastai then fine-tunes it on the TREC questions and trains
`text_classifier_learner` with the recipe of fastai's text tutorial. Both
libraries see the same tokens and ids (ours), so only the libraries and
their recipes differ.
"""

import os

import numpy as np


def fastai_arm(pretrained, vocab, split, test_docs, test_labels, num_classes, seed,
               lm_epochs, epochs, workdir, return_predictions=False):
    """Returns the TREC test error of fastai's LM fine-tuning + classifier
    (and the predicted classes in test order, with `return_predictions`)."""
    import torch
    from fastai.text.all import (AWD_LSTM, CrossEntropyLossFlat, DataLoaders, LMDataLoader,
                                 SortedDL,
                                 TensorCategory, TensorText, accuracy, awd_lstm_clas_config,
                                 awd_lstm_lm_config, language_model_learner, pad_input_chunk,
                                 set_seed, text_classifier_learner)

    from ulmfit_tf.convert.fastai import save_fastai_language_model

    set_seed(seed, reproducible=True)
    os.makedirs(workdir, exist_ok=True)
    weights = os.path.join(workdir, "pretrained.pth")
    save_fastai_language_model(pretrained, vocab, weights, os.path.join(workdir, "vocab.pkl"))
    sizes = dict(emb_sz=pretrained.encoder.embedding_dim, n_hid=pretrained.encoder.hidden_dim,
                 n_layers=pretrained.encoder.num_layers)
    train_docs, train_labels, valid_docs, valid_labels = split
    texts = lambda docs: [TensorText(np.asarray(d, np.int64)) for d in docs]  # noqa: E731

    # Stage 2 with fastai: the classifier's training questions as LM text.
    lm_dls = DataLoaders(LMDataLoader(texts(train_docs), bs=32, seq_len=40, shuffle=True),
                         LMDataLoader(texts(valid_docs), bs=32, seq_len=40))
    lm_dls.vocab = list(vocab.itos)
    lm_learn = language_model_learner(lm_dls, AWD_LSTM, config=dict(awd_lstm_lm_config, **sizes),
                                      drop_mult=0.3, pretrained=False, path=workdir)
    lm_learn.model.load_state_dict(torch.load(weights, weights_only=True))
    with lm_learn.no_bar(), lm_learn.no_logging():
        lm_learn.freeze()
        lm_learn.fit_one_cycle(1, 2e-2, moms=(0.8, 0.7, 0.8))
        lm_learn.unfreeze()
        lm_learn.fit_one_cycle(max(lm_epochs - 1, 1), 2e-3, moms=(0.8, 0.7, 0.8))

    # Stage 3: fastai's tutorial recipe, stretched to `epochs` in all.
    def labelled(docs, labels):
        return [(t, TensorCategory(int(y))) for t, y in zip(texts(docs), labels)]

    clf_dls = DataLoaders(
        SortedDL(labelled(train_docs, train_labels), before_batch=pad_input_chunk, bs=64,
                 shuffle=True),
        SortedDL(labelled(valid_docs, valid_labels), before_batch=pad_input_chunk, bs=64))
    clf_dls.vocab = list(vocab.itos)  # n_out is given, so only the text vocab is read
    learn = text_classifier_learner(clf_dls, AWD_LSTM, config=dict(awd_lstm_clas_config, **sizes),
                                    drop_mult=0.5, n_out=num_classes, pretrained=False,
                                    loss_func=CrossEntropyLossFlat(), metrics=accuracy,
                                    path=workdir)
    learn.model[0].module.load_state_dict(lm_learn.model[0].state_dict())
    moms = (0.8, 0.7, 0.8)
    with learn.no_bar(), learn.no_logging():
        learn.freeze()
        learn.fit_one_cycle(1, 2e-2, moms=moms)
        learn.freeze_to(-2)
        learn.fit_one_cycle(1, slice(1e-2 / 2.6 ** 4, 1e-2), moms=moms)
        learn.freeze_to(-3)
        learn.fit_one_cycle(1, slice(5e-3 / 2.6 ** 4, 5e-3), moms=moms)
        learn.unfreeze()
        learn.fit_one_cycle(max(epochs - 3, 1), slice(1e-3 / 2.6 ** 4, 1e-3), moms=moms)
        test_dl = SortedDL(labelled(test_docs, test_labels), before_batch=pad_input_chunk,
                           bs=64)
        probabilities, targets = learn.get_preds(dl=test_dl)
    error = float((probabilities.argmax(1) != targets).float().mean())
    # get_preds puts SortedDL's longest-first order back (reorder=True).
    return (error, probabilities.argmax(1).numpy()) if return_predictions else error
