"""One process of the multi-worker tests (tests/test_distribute.py).

    python distributed_worker.py keras PATCHES          # PATCHES: none|build|both
    python distributed_worker.py stages DATA_DIR RUNS RESULTS  # the three stages

With TF_CONFIG set it runs as one worker of a MultiWorkerMirroredStrategy
cluster; without, on one device (the reference run). Prints a result line;
`stages` writes its run directories under RUNS and its weights and the
rows each replica read to RESULTS-weights.npz and RESULTS-rows.npz.
"""

import os
import sys

import numpy as np
import tensorflow as tf

import keras


def keras_fit(patches):
    """A plain Keras model under the strategy, with some of our patches."""
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    from ulmfit_tf import distribute

    if patches == "none":  # importing ulmfit_tf applied the build mend
        TensorFlowTrainer._maybe_symbolic_build = \
            TensorFlowTrainer._maybe_symbolic_build._ulmfit_original
    if patches in ("build", "both"):
        distribute._patch_symbolic_build()
    if patches == "both":
        distribute._patch_metric_reduction()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    x = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((x, x.sum(1))).batch(8)
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
    try:
        model.fit(dataset, epochs=1, verbose=0)
    except Exception as error:  # the test reads which error Keras raised
        print("ERROR", type(error).__name__, " ".join(str(error).split())[:300])
        return
    print("FIT OK")


def stages(data_dir, out, results):
    from ulmfit_tf.data import LMStream, load_trec
    from ulmfit_tf.distribute import make_strategy
    from ulmfit_tf.text import Vocab, tokenize
    from ulmfit_tf.training.classifier import ClassifierConfig, train_classifier
    from ulmfit_tf.training.language_model import LanguageModelConfig, train_language_model
    from ulmfit_tf.training.transfer import remap_language_model

    strategy = make_strategy("multi_worker" if "TF_CONFIG" in os.environ else "default")
    # No dropout anywhere, so that replicas and one device compute the same
    # thing (the head's hidden dropout does not scale with drop_mult).
    from ulmfit_tf.models import AWDLSTMClassifier

    init = AWDLSTMClassifier.__init__
    AWDLSTMClassifier.__init__ = lambda self, *args, **kwargs: init(
        self, *args, **{**kwargs, "head_hidden_dropout": 0.0})
    trec = load_trec("train", source=data_dir)
    tokens = [tokenize(t) for t in trec.texts[:400]]
    vocab = Vocab.build(tokens, min_freq=2)
    docs = [vocab.encode(t) for t in tokens]
    sizes = dict(embedding_dim=8, hidden_dim=12, num_layers=3, drop_mult=0.0)
    common = dict(batch_size=8, bptt=10, valid_fraction=0.1, seed=3, **sizes)

    # Rows each replica of this process reads: the same block of every batch.
    stream = LMStream(docs, 8, 10, seed=3)
    local = [[] for _ in range(strategy.num_replicas_in_sync)]
    for x, _ in strategy.experimental_distribute_dataset(stream.as_dataset()):
        for i, part in enumerate(strategy.experimental_local_results(x)):
            local[i].append(part.numpy())
    rows = {f"replica_{i}": np.concatenate(p, axis=1) for i, p in enumerate(local) if p}

    with strategy.scope():
        stage1, _ = train_language_model(docs[:300], docs[300:], vocab, LanguageModelConfig(
            epochs=2, max_lr=1e-2, **common), os.path.join(out, "stage1"), verbose=0)
        model, _ = remap_language_model(stage1, vocab, vocab)
        # The language-model stages with DiscriminativeAdam, the classifier
        # with SGD per layer group (LayerGroupOptimizer): both optimizers
        # under the strategy. SGD's update is linear in the gradient, so a
        # wrongly scaled or summed gradient shows, and rounding stays small;
        # Adam's first steps on a freshly unfrozen group are about
        # lr * sign(gradient), which turns rounding into 3e-4 differences.
        stage2, _ = train_language_model(docs[:300], docs[300:], vocab, LanguageModelConfig(
            epochs=2, max_lr=1e-2, schedule="stlr", discriminative_factor=2.6,
            freeze_epochs=1, **common), os.path.join(out, "stage2"), model=model, verbose=0)
        # Three epochs to the last, so that three groups train (gradual
        # unfreezing) and the compared weights are the final ones.
        classifier, summary = train_classifier(
            stage2, docs[:160], trec.labels[:160], docs[160:200], trec.labels[160:200],
            trec.classes, vocab, ClassifierConfig(
                epochs=3, batch_size=16, max_len=20, bptt=8, drop_mult=0.0, seed=3,
                optimizer="sgd", max_lr=1e-2, patience=None, restore_best=False),
            os.path.join(out, "stage3"), verbose=0)
    np.savez(results + "-weights.npz",
             **{f"stage1/{v.path}": v.numpy() for v in stage1.weights},
             **{f"stage2/{v.path}": v.numpy() for v in stage2.weights},
             **{f"stage3/{v.path}": v.numpy() for v in classifier.trainable_weights})
    np.savez(results + "-rows.npz", expected=stream.streams(0)[:, :-1], **rows)
    print("STAGES OK", strategy.num_replicas_in_sync,
          summary["history"]["val_accuracy"][-1])


if __name__ == "__main__":
    if sys.argv[1] == "keras":
        keras_fit(sys.argv[2])
    else:
        stages(*sys.argv[2:5])
