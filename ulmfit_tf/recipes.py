"""Settings of the stages that the command line and the Python API share.

Plain data, no TensorFlow: the command line reads its defaults from here
before it imports anything heavy.
"""

# Stage 2 (fine-tuning the LM on the target's text): the defaults of
# `finetune-lm` and of `LanguageModel.compile()`, over `LanguageModelConfig`.
# The peak is 10x the paper scripts' 4e-3: on all four visible tasks (72k to
# 609k training tokens an epoch) 4e-3 left the bundled 128/384 LM far from the validation
# perplexity a higher peak reaches in the same 3 epochs (docs/RESULTS.md 4.11).
FINETUNE_RECIPE = dict(epochs=3, freeze_epochs=1, max_lr=4e-2, discriminative_factor=2.6,
                       beta_1=0.7, batch_size=64, bptt=70, valid_fraction=0.1, schedule="stlr")
# Stage 2's target vocabulary: up to `max_vocab` tokens seen `min_freq` times.
FINETUNE_VOCAB = dict(max_vocab=60000, min_freq=2)

# Stage 1 (pretraining): named settings of `pretrain` and of
# `LanguageModelConfig.recipe()`. "paper" is the paper's AWD-LSTM as fastai
# pretrains it on WikiText-103 (fastai's AWD_LSTM sizes and dropouts,
# `language_model_learner`'s Adam betas and weight decay, its vocabulary
# rule); the flags' and `LanguageModelConfig`'s defaults are the same values.
# "general-en-base" began the bundled models (saved_models/README.md): the
# recipe of their first run (the default, general-en-base-e4, continued it
# three times), and a size that pretrains in hours on a CPU.
PRETRAIN_RECIPES = {
    "paper": dict(embedding_dim=400, hidden_dim=1152, num_layers=3, drop_mult=1.0,
                  batch_size=64, bptt=70, epochs=1, max_lr=2e-3, schedule="one_cycle",
                  beta_1=0.8, beta_2=0.99, weight_decay=0.01, valid_fraction=0.05),
}
PRETRAIN_RECIPES["general-en-base"] = dict(
    PRETRAIN_RECIPES["paper"], embedding_dim=128, hidden_dim=384, drop_mult=0.1,
    max_lr=5e-3, valid_fraction=0.01)
# Their vocabularies: up to `max_vocab` tokens seen `min_freq` times.
PRETRAIN_VOCAB = {"paper": dict(max_vocab=60000, min_freq=3),
                  "general-en-base": dict(max_vocab=15000, min_freq=3)}
