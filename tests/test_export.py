"""SavedModel export: raw strings on a graph of core TF ops, same numbers as Keras."""

import json
import os
import subprocess
import sys
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from ulmfit_tf.export import export_classifier, export_language_model
from ulmfit_tf.models import AWDLSTM, AWDLSTMLanguageModel
from ulmfit_tf.text import Vocab, tokenize_corpus
from ulmfit_tf.training.classifier import (ClassifierConfig, build_classifier,
                                           predict_probabilities)

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def trained(trec, tmp_path_factory):
    """A tiny classifier trained briefly on TREC, with a short BPT3C window so
    that long questions go through the chunked path."""
    train = trec[0]
    tokens = tokenize_corpus(train.texts[:1500], num_workers=1)
    vocab = Vocab.build(tokens, min_freq=2)
    config = ClassifierConfig(max_len=12, bptt=5, drop_mult=0.2)
    model = build_classifier({"vocabulary_size": len(vocab), "embedding_dim": 16,
                              "hidden_dim": 24, "num_layers": 2}, len(train.classes), config)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    ids = tf.ragged.constant([vocab.encode(t) for t in tokens]).to_tensor(default_value=1)
    model.fit(ids, train.labels[:1500], batch_size=64, epochs=2, verbose=0)
    path = export_classifier(model, vocab, train.classes, tmp_path_factory.mktemp("export"),
                             version=3)
    return model, vocab, train.classes, path


def keras_probabilities(model, vocab, texts):
    return predict_probabilities(model, [vocab.encode(t) for t in
                                         tokenize_corpus(texts, num_workers=1)])


def test_layout_and_fresh_process_without_tensorflow_text(trained, trec, tmp_path):
    model, vocab, classes, path = trained
    assert os.path.basename(path) == "3" and os.path.isfile(os.path.join(path, "saved_model.pb"))
    texts = trec[1].texts[:40] + ["", "   ", "A much longer question " * 12 + "?"]
    np.save(tmp_path / "want.npy", keras_probabilities(model, vocab, texts))
    with open(tmp_path / "texts.json", "w") as f:
        json.dump(texts, f)
    script = f"""
import json, sys, numpy as np, tensorflow as tf
m = tf.saved_model.load({path!r})
texts = json.load(open({str(tmp_path / 'texts.json')!r}))
out = m.signatures["serving_default"](text=tf.constant(texts))
assert "tensorflow_text" not in sys.modules
want = np.load({str(tmp_path / 'want.npy')!r})
print(float(np.abs(out["probabilities"].numpy() - want).max()))
print(json.dumps([l.decode() for l in out["label"].numpy()[:3]]))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    diff, labels = result.stdout.strip().splitlines()[-2:]
    assert float(diff) <= 1e-5
    assert all(label in classes for label in json.loads(labels))


def test_ids_signature_matches(trained):
    model, vocab, classes, path = trained
    loaded = tf.saved_model.load(path)
    ids = tf.constant([[2, 9, 10, 11, 1, 1], [2, 12, 13, 14, 15, 16]], tf.int32)
    out = loaded.signatures["predict_ids"](token_ids=ids)
    np.testing.assert_allclose(out["probabilities"], model.predict(ids, verbose=0), atol=1e-5)


def test_server_inputs_never_crash(trained):
    _, _, classes, path = trained
    serve = tf.saved_model.load(path).signatures["serving_default"]
    assert serve(text=tf.constant([], tf.string))["probabilities"].shape == (0, len(classes))
    huge = "word " * 200_000  # 1 MB
    out = serve(text=tf.constant([b"", b"\xff\xfe\xc3 broken", huge.encode()]))
    probabilities = out["probabilities"].numpy()
    assert probabilities.shape == (3, len(classes))
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-5)


def test_batched_equals_single(trained):
    model, vocab, _, path = trained
    serve = tf.saved_model.load(path).signatures["serving_default"]
    text = "What is the capital of France ?"
    longer = " ".join(["Which river flows through the old town of Prague and why ?"] * 8)
    alone = serve(text=tf.constant([text]))["probabilities"].numpy()[0]
    batched = serve(text=tf.constant([longer, text]))["probabilities"].numpy()[1]
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    ids = [vocab.encode(t) for t in tokenize_corpus([text, longer], num_workers=1)]
    assert len(ids[1]) >= 10 * len(ids[0])
    keras_alone = model.predict(ids[0][None], verbose=0)[0]
    padded = np.ones((2, len(ids[1])), np.int32)
    padded[0, :len(ids[1])] = ids[1]
    padded[1, :len(ids[0])] = ids[0]
    np.testing.assert_allclose(model.predict(padded, verbose=0)[1], keras_alone, atol=1e-5)
    np.testing.assert_allclose(alone, keras_alone, atol=1e-5)


@pytest.mark.slow
def test_saved_model_cli_show_and_run(trained):
    _, _, classes, path = trained
    show = subprocess.run(["saved_model_cli", "show", "--dir", path, "--all"],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert show.returncode == 0, show.stderr[-2000:]
    assert "signature_def['serving_default']" in show.stdout
    assert "signature_def['predict_ids']" in show.stdout
    run = subprocess.run(["saved_model_cli", "run", "--dir", path, "--tag_set", "serve",
                          "--signature_def", "serving_default",
                          "--input_exprs", "text=['Who wrote Hamlet ?', 'How tall is it ?']"],
                         capture_output=True, text=True, env=ENV, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "probabilities" in run.stdout and "label" in run.stdout


def test_rest_request_and_response_shapes(trained):
    """The README's TF Serving REST example, answered by calling the signature
    with the same instances and laying the outputs out as TF Serving's row
    format does (one object per instance)."""
    _, _, classes, path = trained
    request = {"signature_name": "serving_default",
               "instances": ["Who wrote Hamlet ?", "How far is the moon ?"]}
    serve = tf.saved_model.load(path).signatures["serving_default"]
    out = serve(text=tf.constant(request["instances"]))
    predictions = [{"probabilities": out["probabilities"][i].numpy().tolist(),
                    "label": out["label"][i].numpy().decode(),
                    "label_id": int(out["label_id"][i])} for i in range(2)]
    response = json.loads(json.dumps({"predictions": predictions}))
    assert [sorted(p) for p in response["predictions"]] == [
        ["label", "label_id", "probabilities"]] * 2
    assert all(len(p["probabilities"]) == len(classes) for p in response["predictions"])
    inputs = serve.structured_input_signature[1]
    # Unknown rank: TF Serving's row format sends [N] or [N, 1], and a
    # scalar is one text (test_input_shapes).
    assert list(inputs) == ["text"] and inputs["text"].shape.rank is None


def test_concurrent_calls_match_serial(trained, trec):
    _, _, _, path = trained
    serve = tf.saved_model.load(path).signatures["serving_default"]
    rng = np.random.default_rng(0)
    requests = [[" ".join(rng.choice(trec[1].texts, rng.integers(1, 4)))]
                for _ in range(80)]
    serial = [serve(text=tf.constant(r))["probabilities"].numpy() for r in requests]
    results = [None] * len(requests)

    def worker(k):
        for i in range(k, len(requests), 8):
            results[i] = serve(text=tf.constant(requests[i]))["probabilities"].numpy()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(results, serial):
        np.testing.assert_array_equal(a, b)


def test_language_model_export(tmp_path):
    vocab = Vocab.build([["the", "cat", "sat", "on", "mat"]], min_freq=1)
    lm = AWDLSTMLanguageModel(AWDLSTM(len(vocab), embedding_dim=8, hidden_dim=12,
                                      num_layers=2))
    lm(np.zeros((1, 2), np.int32))
    path = export_language_model(lm, vocab, tmp_path / "lm", top_k=5, keep_special_tokens=True)
    out = tf.saved_model.load(path).signatures["serving_default"](
        text=tf.constant(["the cat sat", "the"]))
    ids = vocab.encode(["xxbos", "the", "cat", "sat"])[None]
    lm.reset_states()
    want = tf.nn.softmax(lm.predict(ids, verbose=0)[0, -1]).numpy()
    order = np.argsort(-want)[:5]
    assert [t.decode() for t in out["tokens"].numpy()[0]] == [vocab.itos[i] for i in order]
    np.testing.assert_allclose(out["probabilities"].numpy()[0], want[order], atol=1e-5)


def test_failed_export_leaves_nothing(tmp_path, trained):
    _, vocab, classes, _ = trained
    with pytest.raises(Exception):
        export_classifier("not a model", vocab, classes, tmp_path / "bad")
    assert not os.path.exists(tmp_path / "bad" / "1")
    with pytest.raises(ValueError, match="`version` must be None or an int >= 1. Received: 0"):
        export_classifier(trained[0], vocab, classes, tmp_path / "bad", version=0)


def test_bfloat16_matmul_export_matches_the_python_path(trained, trec, tmp_path):
    model, vocab, classes, _ = trained
    texts = trec[1].texts[:200]
    docs = [vocab.encode(t) for t in tokenize_corpus(texts, num_workers=1)]
    full = predict_probabilities(model, docs)
    reduced = predict_probabilities(model, docs, matmul_precision="bfloat16")
    assert 0 < np.abs(reduced - full).max() < 0.05
    assert np.mean(reduced.argmax(1) == full.argmax(1)) >= 0.98
    path = export_classifier(model, vocab, classes, tmp_path / "bf16",
                             matmul_precision="bfloat16")
    out = tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(texts))
    np.testing.assert_allclose(out["probabilities"], reduced, atol=1e-5)
    with pytest.raises(ValueError, match=r"`matmul_precision` must be one of .*Received: 'fp8'"):
        export_classifier(model, vocab, classes, tmp_path / "bad", matmul_precision="fp8")
    assert not os.path.exists(tmp_path / "bad")
    with pytest.raises(ValueError, match=r"`matmul_precision` must be one of .*Received: 'int8'"):
        predict_probabilities(model, docs, matmul_precision="int8")


def test_backward_classifier_export_reverses_in_the_graph(trained, trec, tmp_path):
    model, vocab, classes, _ = trained
    texts = trec[1].texts[:30] + ["A much longer question " * 12 + "?"]
    path = export_classifier(model, vocab, classes, tmp_path / "bwd", backwards=True)
    served = tf.saved_model.load(path).signatures["serving_default"](
        text=tf.constant(texts))["probabilities"].numpy()
    docs = [vocab.encode(t) for t in tokenize_corpus(texts, num_workers=1)]
    backward = predict_probabilities(model, docs, backwards=True)
    np.testing.assert_allclose(served, backward, atol=1e-5)
    # The same model read forwards gives other numbers: the test can fail.
    assert np.abs(predict_probabilities(model, docs) - backward).max() > 1e-3


def test_forward_and_backward_export_as_one_average(trained, trec, tmp_path):
    model, vocab, classes, _ = trained
    texts = trec[1].texts[:20]
    path = export_classifier([model, model], [vocab, vocab], classes, tmp_path / "both",
                             backwards=[False, True])
    loaded = tf.saved_model.load(path)
    assert "predict_ids" not in loaded.signatures
    served = loaded.signatures["serving_default"](text=tf.constant(texts))
    docs = [vocab.encode(t) for t in tokenize_corpus(texts, num_workers=1)]
    want = (predict_probabilities(model, docs) + predict_probabilities(model, docs,
                                                                       backwards=True)) / 2
    np.testing.assert_allclose(served["probabilities"].numpy(), want, atol=1e-5)
    assert [l.decode() for l in served["label"].numpy()] == [classes[i] for i in
                                                             want.argmax(1)]


def test_request_limits_refuse_with_a_clear_error(trained, tmp_path):
    model, vocab, classes, _ = trained
    path = export_classifier(model, vocab, classes, tmp_path / "capped", max_chars=1000,
                             max_request_chars=5000, max_request_tokens=400)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    assert serve(text=tf.constant(["who ?"] * 60))["probabilities"].shape[0] == 60
    # 100 characters of punctuation are 101 tokens: 8 texts of them are 808
    # token steps, over 400, though far under the character limits.
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"more than 400 token steps.*max_request_tokens"):
        serve(text=tf.constant([".,;:" * 25] * 8))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"more than 5000 bytes.*max_request_chars"):
        serve(text=tf.constant(["word " * 200] * 6))
    with pytest.raises(ValueError, match="`max_request_tokens` must be an int >= 1"):
        export_classifier(model, vocab, classes, tmp_path / "x", max_request_tokens=0)


def test_input_shapes(trained):
    _, _, classes, path = trained
    serve = tf.saved_model.load(path).signatures["serving_default"]
    vector = serve(text=tf.constant(["Who wrote Hamlet ?", "Why ?"]))["probabilities"]
    column = serve(text=tf.constant([["Who wrote Hamlet ?"], ["Why ?"]]))["probabilities"]
    scalar = serve(text=tf.constant("Who wrote Hamlet ?"))["probabilities"]
    np.testing.assert_array_equal(column, vector)
    # A batch of one may take another matmul kernel than a batch of two:
    # the same numbers up to float32 rounding (3e-8 seen on one machine).
    np.testing.assert_allclose(scalar, vector[:1], atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"`text` must be a vector of strings \[N\].*Received shape"):
        serve(text=tf.constant([["a", "b"], ["c", "d"]]))


@pytest.mark.slow
def test_existing_version_is_kept_unless_overwrite(trained, tmp_path):
    model, vocab, classes, _ = trained
    first = export_classifier(model, vocab, classes, tmp_path / "m")
    second = export_classifier(model, vocab, classes, tmp_path / "m")
    assert [os.path.basename(p) for p in (first, second)] == ["1", "2"]
    stamp = os.stat(os.path.join(first, "saved_model.pb")).st_mtime_ns
    with pytest.raises(ValueError, match="exists; TF Serving does not reload.*overwrite"):
        export_classifier(model, vocab, classes, tmp_path / "m", version=1)
    assert os.stat(os.path.join(first, "saved_model.pb")).st_mtime_ns == stamp
    export_classifier(model, vocab, classes, tmp_path / "m", version=1, overwrite=True)
    assert os.path.isfile(os.path.join(first, "saved_model.pb"))


def test_language_model_export_leaves_out_special_tokens(tmp_path):
    vocab = Vocab.build([["the", "cat", "sat", "on", "mat"]], min_freq=1)
    lm = AWDLSTMLanguageModel(AWDLSTM(len(vocab), embedding_dim=8, hidden_dim=12,
                                      num_layers=2))
    lm(np.zeros((1, 2), np.int32))
    top_k = 5
    path = export_language_model(lm, vocab, tmp_path / "lm", top_k=top_k)
    out = tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(["the"]))
    tokens = [t.decode() for t in out["tokens"].numpy()[0]]
    assert sorted(tokens) == ["cat", "mat", "on", "sat", "the"]
    ids = vocab.encode(["xxbos", "the"])[None]
    lm.reset_states()
    want = tf.nn.softmax(lm.predict(ids, verbose=0)[0, -1]).numpy()
    np.testing.assert_allclose(out["probabilities"].numpy()[0],
                               want[vocab.encode(tokens)], atol=1e-5)


def test_backward_language_model_export_predicts_the_token_before(tmp_path):
    vocab = Vocab.build([["the", "cat", "sat", "on", "mat"]], min_freq=1)
    lm = AWDLSTMLanguageModel(AWDLSTM(len(vocab), embedding_dim=8, hidden_dim=12,
                                      num_layers=2))
    lm(np.zeros((1, 2), np.int32))
    path = export_language_model(lm, vocab, tmp_path / "lm", top_k=3, backwards=True,
                                 keep_special_tokens=True)
    out = tf.saved_model.load(path).signatures["serving_default"](
        text=tf.constant(["cat sat"]))
    ids = vocab.encode(["sat", "cat", "xxbos"])[None]
    lm.reset_states()
    want = tf.nn.softmax(lm.predict(ids, verbose=0)[0, -1]).numpy()
    np.testing.assert_allclose(out["probabilities"].numpy()[0], np.sort(want)[::-1][:3],
                               atol=1e-5)
