import keras
import keras_hub
import numpy as np
import pytest

from ulmfit_tf.data import LMStream
from ulmfit_tf.generation import SAMPLERS, detokenize, generate, generate_ids, make_sampler
from ulmfit_tf.models import AWDLSTM, AWDLSTMLanguageModel, CLASSIFIER_DROPOUTS
from ulmfit_tf.text import Vocab, tokenize


def small_lm(vocab_size=40, **kwargs):
    encoder = AWDLSTM(vocab_size, embedding_dim=8, hidden_dim=12, num_layers=3, **kwargs)
    return AWDLSTMLanguageModel(encoder)


def compile_lm(lm, lr=1e-2):
    lm.compile(optimizer=keras.optimizers.Adam(lr, beta_1=0.8, beta_2=0.99),
               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
               metrics=[keras_hub.metrics.Perplexity(from_logits=True)])
    return lm


def test_encoder_structure_and_groups():
    encoder = AWDLSTM(40, embedding_dim=8, hidden_dim=12, num_layers=3)
    assert encoder.state_sizes == [12, 12, 8]
    groups = [[layer.name for layer in g] for g in encoder.layer_groups]
    assert groups == [["embedding", "input_dropout"], ["rnn_0", "hidden_dropout_0"],
                      ["rnn_1", "hidden_dropout_1"], ["rnn_2"]]
    out = encoder({"token_ids": np.ones((2, 5), np.int32), "state": encoder.zero_state(2)})
    assert out["sequence_output"].shape == (2, 5, 8) and len(out["state"]) == 6


def test_drop_mult_and_classifier_rates():
    encoder = AWDLSTM(40, embedding_dim=8, hidden_dim=12, drop_mult=0.5, **{
        k: v for k, v in CLASSIFIER_DROPOUTS.items() if k != "output_dropout"})
    assert encoder.get_layer("rnn_1").weight_dropout == 0.25
    assert encoder.get_layer("embedding").embedding_dropout == 0.025
    assert encoder.get_layer("input_dropout").rate == 0.2


def test_encoder_config_and_save_round_trip(tmp_path):
    encoder = AWDLSTM(40, embedding_dim=8, hidden_dim=12, num_layers=2, drop_mult=0.3)
    clone = AWDLSTM.from_config(encoder.get_config())
    assert clone.get_config() == encoder.get_config()
    encoder.save(tmp_path / "enc.keras")
    loaded = keras.saving.load_model(tmp_path / "enc.keras")
    x = {"token_ids": np.arange(10).reshape(2, 5) % 40, "state": encoder.zero_state(2)}
    np.testing.assert_allclose(loaded(x)["sequence_output"], encoder(x)["sequence_output"])


def test_bad_encoder_arguments():
    with pytest.raises(ValueError, match="`hidden_dim` must be an int >= 1. Received: 0"):
        AWDLSTM(40, hidden_dim=0)
    with pytest.raises(TypeError, match="`encoder` must be an AWDLSTM"):
        AWDLSTMLanguageModel(keras.layers.Dense(3))


def test_state_carried_across_batches_equals_one_long_batch():
    lm = small_lm()
    ids = np.random.default_rng(0).integers(0, 40, (3, 12)).astype(np.int32)
    full = lm(ids).numpy()
    lm.reset_states()
    parts = [lm(ids[:, :5]).numpy(), lm(ids[:, 5:9]).numpy(), lm(ids[:, 9:]).numpy()]
    np.testing.assert_allclose(np.concatenate(parts, 1), full, atol=1e-5)
    lm.reset_states()
    assert not np.allclose(lm(ids[:, 5:9]).numpy(), parts[1], atol=1e-3)


def test_training_and_evaluation_keep_separate_states():
    lm = small_lm()
    ids = np.random.default_rng(1).integers(0, 40, (2, 6)).astype(np.int32)
    lm(ids, training=False)
    held = [v.numpy().copy() for v in lm._eval_state.variables]
    lm(ids, training=True)
    for before, var in zip(held, lm._eval_state.variables):
        np.testing.assert_array_equal(var.numpy(), before)
    assert lm._train_state.rows.numpy() == 2


def test_state_resets_each_epoch_and_before_evaluation():
    lm = compile_lm(small_lm())
    stream = LMStream([np.arange(9, 40)] * 20, batch_size=4, bptt=8, seed=0)
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(("train", int(lm._train_state.rows.numpy())))

        def on_test_batch_begin(self, batch, logs=None):
            if batch == 0:
                seen.append(("eval", int(lm._eval_state.rows.numpy())))

    lm.fit(stream.as_dataset(), validation_data=stream.as_dataset(), epochs=2,
           callbacks=[Spy()], verbose=0)
    assert seen == [("train", 0), ("eval", 0), ("train", 0), ("eval", 0)]


def test_language_model_save_round_trip(tmp_path):
    lm = compile_lm(small_lm())
    ids = np.random.default_rng(2).integers(0, 40, (2, 7)).astype(np.int32)
    lm.fit(ids, ids, epochs=1, verbose=0)
    lm.save(tmp_path / "lm.keras")
    loaded = keras.saving.load_model(tmp_path / "lm.keras")
    lm.reset_states()
    np.testing.assert_allclose(loaded.predict(ids, verbose=0), lm.predict(ids, verbose=0),
                               atol=1e-6)
    assert AWDLSTMLanguageModel.from_config(lm.get_config()).get_config() == lm.get_config()


def test_layer_groups_follow_fastai_lm_split():
    lm = small_lm()
    names = [[layer.name for layer in g] for g in lm.layer_groups]
    assert names[0][0] == "rnn_0" and names[2][0] == "rnn_2"
    assert names[3][:2] == ["embedding", "input_dropout"]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_generation_with_each_sampler(sampler):
    vocab = Vocab.build([tokenize("the cat sat on the mat . the dog ran !")], min_freq=1)
    lm = small_lm(len(vocab))
    kwargs = {} if sampler == "greedy" else {"seed": 3}
    text = generate(lm, vocab, "The cat", max_new_tokens=8, sampler=sampler, **kwargs)
    assert text.startswith("The cat")
    assert "xxfake" not in text and "xxunk" not in text.lower()


def test_generation_mixed_prompt_lengths_keeps_prompts():
    lm = small_lm()
    prompts = [np.array([2, 9, 10]), np.array([2, 11, 12, 13, 14, 15])]
    out = generate_ids(lm, prompts, 4, make_sampler("greedy"), stop_at_new_document=False)
    np.testing.assert_array_equal(out[0][:3], prompts[0])
    np.testing.assert_array_equal(out[1][:6], prompts[1])
    assert [len(o) for o in out] == [7, 10]
    # Greedy continuation equals step-by-step argmax through the training model.
    lm.reset_states()
    logits = lm(out[1][None, :-1]).numpy()
    logits[..., [0, 1]] = -np.inf  # xxunk and xxpad are never sampled
    np.testing.assert_array_equal(logits[0, 5:].argmax(-1), out[1][6:])


def test_generation_errors():
    lm = small_lm()
    vocab = Vocab.build([["a"]], min_freq=1)
    with pytest.raises(ValueError, match="`vocab` has 16 tokens but the model 40"):
        generate(lm, vocab, "a")
    with pytest.raises(ValueError, match="`sampler` must be one of"):
        make_sampler("beam")
    with pytest.raises(ValueError, match="`max_new_tokens` must be an int >= 1"):
        generate_ids(lm, [np.array([2])], 0, make_sampler("greedy"))


def test_detokenize():
    tokens = ["xxbos", "xxmaj", "hello", "xxup", "nasa", ",", "so", "g", "xxrep", "3", "o",
              "d", "xxwrep", "3", "no", "!"]
    assert detokenize(tokens) == "Hello NASA, so g ooo d no no no!"
    assert detokenize(["xxmaj", "xxmaj", "word", "xxup"]) == "Word"
    # The contraction rule's tokens join their word again, capitals included.
    assert detokenize(["xxmaj", "i", "do", "n't", "know", "if", "xxup", "it", "'s", "xxup",
                       "ca", "n't", "it", "\u2019s"]) == "I don't know if IT'S CAN'T it\u2019s"


@pytest.mark.slow
def test_epochs_of_tokens_resume_exactly(tmp_path):
    """A pretraining run cut into epochs of `tokens_per_epoch` checkpoints
    after each; stopped in the middle of a pass and started again, it ends
    with the weights of the run that never stopped."""
    from ulmfit_tf.training.language_model import (LanguageModelConfig, fit_language_model,
                                                   language_model_streams)

    rng = np.random.default_rng(0)
    docs = [rng.integers(2, 40, n) for n in rng.integers(20, 80, 60)]
    config = LanguageModelConfig(embedding_dim=8, hidden_dim=12, num_layers=2, batch_size=4,
                                 bptt=8, epochs=4, tokens_per_epoch=1000, max_lr=1e-2)

    class Interrupted(Exception):
        pass

    class StopAfter(keras.callbacks.Callback):  # after the backup of that epoch
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise Interrupted

    def run(run_dir, callbacks=()):
        keras.utils.set_random_seed(0)
        model = small_lm(vocab_size=40, drop_mult=0.5)
        train, valid = language_model_streams(docs[6:], docs[:6], config)
        assert train.epochs_per_pass == 3  # the 4 epochs end in the second pass
        summary, _ = fit_language_model(model, train, valid, config, str(run_dir),
                                        callbacks=callbacks, verbose=0)
        return model, summary

    with pytest.raises(Interrupted):
        run(tmp_path / "resumed", [StopAfter()])
    resumed, summary = run(tmp_path / "resumed")
    assert len(summary["history"]["loss"]) == 2  # epochs 3 and 4 only
    clean, clean_summary = run(tmp_path / "clean")
    np.testing.assert_allclose(summary["history"]["val_loss"],
                               clean_summary["history"]["val_loss"][2:], rtol=1e-6)
    for a, b in zip(resumed.weights, clean.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.path)
