"""Settings of the stages that the command line and the Python API share.

Plain data, no TensorFlow: the command line reads its defaults from here
before it imports anything heavy.
"""

# Stage 2 (fine-tuning the LM on the target's text): the defaults of
# `finetune-lm` and of `LanguageModel.compile()`, over `LanguageModelConfig`.
FINETUNE_RECIPE = dict(epochs=3, freeze_epochs=1, max_lr=4e-3, discriminative_factor=2.6,
                       beta_1=0.7, batch_size=64, bptt=70, valid_fraction=0.1, schedule="stlr")
# Stage 2's target vocabulary: up to `max_vocab` tokens seen `min_freq` times.
FINETUNE_VOCAB = dict(max_vocab=60000, min_freq=2)
