"""Classifier inference speed and training memory: ulmfit_tf against fastai.

    python bench/classifier_speed.py inference [--docs 500] [--rounds 3]
    python bench/classifier_speed.py loops [--docs 200] [--rounds 3]
    python bench/classifier_speed.py skipping [--docs 200] [--rounds 3]
    python bench/classifier_speed.py savedmodel [--docs 200] [--rounds 3]
        [--matmul-precision bfloat16]
    python bench/classifier_speed.py precision [--docs 200] [--rounds 3]
    python bench/classifier_speed.py agreement --runs RUN=TEST.tsv[,RUN=TEST.tsv...]
    python bench/classifier_speed.py memory [--lengths 500,1000,2000,5000]
    python bench/classifier_speed.py outlier [--length 540] [--outlier 12000] [--rounds 3]

Both libraries get the same AWD-LSTM classifier (vocab 10k, embedding 400,
hidden 1152, 3 layers, fastai's head, BPT3C with bptt 72 and max_len
72 x 20), random weights, in the same run.

inference: docs/s over IMDb test reviews (our tokens and ids for both),
    batches of 64 sorted by length as fastai's test DataLoader sorts them,
    each side timed --rounds times in turns (median), after this machine's
    matmul peak (float32, bfloat16) and with each side's LSTM FLOP rate as
    a share of it.
loops: our inference loop (training=False: only h and c cross steps)
    against the training loop (which also stacks gates and tanh(c) for
    its backward pass) on one model, timed in turns (median of --rounds),
    with the largest difference of their probabilities.
skipping: the inference loop that computes only the rows still holding
    text at each step, against the same loop computing every row (the
    finished ones held by the mask), and batches grouped down to 75% of
    their longest text (the grouping before session 18) against plain
    sorted batches (the default), on one model, timed in turns.
savedmodel: texts/s of the exported SavedModel (`serving_default`, raw
    strings in, tokenized in the graph, default request limits), loaded in
    a fresh process that imports only TensorFlow (as TF Serving would) and
    called with texts sorted by length in batches of 64 as
    `predict_probabilities` makes them (by characters), against the Python
    path from the same strings (tokenizer + `predict_probabilities`), with
    the largest difference of their probabilities; `--matmul-precision
    bfloat16` exports and predicts with bfloat16 LSTM matmuls.
precision: our classifier with its LSTM matmuls in float32 and in bfloat16
    (`predict_probabilities(matmul_precision=...)`, one model) and fastai's
    float32, timed in turns, with how far bfloat16 moves the probabilities
    and the labels (random weights: many reviews sit near the boundary, so
    label agreement here is a pessimistic proxy for a trained model's).
agreement: trained classifier runs scored on their test files with float32
    and with bfloat16 matmuls: the share of texts whose label is the same,
    the largest difference of probabilities, both error rates, and texts/s
    of each (the second of two passes each, in turns).
outlier: seconds of one training step (Adam, forward and backward) on a
    batch of 64 random texts of --length tokens, and on the same batch with
    its first text --outlier tokens long (a uuencoded post of 20
    Newsgroups is 12,373 of our tokens), both libraries in turns (median of
    --rounds), at the bundled LM's sizes (vocab 15k, embedding 128, hidden
    384): what one long text costs the batch it lands in.
memory: peak resident memory (ru_maxrss) of a fresh process that trains 3
    steps on a batch of 8 documents of each length; BPT3C should keep it
    flat once documents are longer than max_len (1,440 tokens).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

VOCAB, EMB, HIDDEN, BPTT, MAX_LEN = 10_000, 400, 1152, 72, 72 * 20
BATCH = 64


def imdb_ids(data, count):
    from ulmfit_tf.data import load_imdb
    from ulmfit_tf.text import Vocab, tokenize_corpus

    texts = load_imdb("test", source=data).texts
    texts = [texts[i] for i in np.random.default_rng(0).permutation(len(texts))[:count]]
    tokens = tokenize_corpus(texts)
    vocab = Vocab.build(tokens, max_vocab=VOCAB - 16)
    return [np.minimum(vocab.encode(t), VOCAB - 1).astype(np.int32) for t in tokens]


def ours_model(vocab=VOCAB, embedding=EMB, hidden=HIDDEN):
    from ulmfit_tf.training.classifier import ClassifierConfig, build_classifier

    sizes = {"vocabulary_size": vocab, "embedding_dim": embedding, "hidden_dim": hidden,
             "num_layers": 3}
    return build_classifier(sizes, 2, ClassifierConfig(max_len=MAX_LEN, bptt=BPTT))


def fastai_model(vocab=VOCAB, embedding=EMB, hidden=HIDDEN):
    from fastai.text.all import AWD_LSTM, awd_lstm_clas_config, get_text_classifier

    config = dict(awd_lstm_clas_config, emb_sz=embedding, n_hid=hidden)
    return get_text_classifier(AWD_LSTM, vocab, 2, seq_len=BPTT, config=config,
                               max_len=MAX_LEN)


def fastai_padded(batch):
    """fastai's own classifier collate: whole chunks of padding in front,
    the rest behind, so that every text starts on a chunk boundary as its
    SentenceEncoder expects."""
    import torch
    from fastai.text.data import pad_chunk

    return torch.stack([pad_chunk(torch.from_numpy(doc.astype(np.int64)), pad_idx=1,
                                  pad_first=True, seq_len=BPTT, pad_len=max(map(len, batch)))
                        for doc in batch])


def ours_inference(docs):
    """A function that times one pass of our classifier over `docs`."""
    from ulmfit_tf.training.classifier import predict_probabilities

    model = ours_model()
    predict_probabilities(model, docs[:BATCH])  # build and trace once

    def timed():
        start = time.perf_counter()
        predict_probabilities(model, docs, batch_size=BATCH)
        return time.perf_counter() - start
    return timed


def flops_per_token():
    """Multiply-adds x 2 of the three LSTMs per token (input and recurrent
    matmuls); the embedding lookup, the cell's elementwise work and the head
    are a few percent on top."""
    sizes = [(EMB, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, EMB)]
    return sum(2 * 4 * units * (inputs + units) for inputs, units in sizes)


def matmul_peaks(n=2048, repeats=5):
    """GFLOP/s of a large square matmul: TensorFlow float32 and bfloat16,
    torch float32, on this process's threads."""
    import tensorflow as tf
    import torch

    def best(run):
        run()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return 2 * n ** 3 / min(times) / 1e9

    peaks = {}
    for dtype in (tf.float32, tf.bfloat16):
        a = tf.cast(tf.random.normal([n, n]), dtype)
        matmul = tf.function(lambda x: tf.matmul(x, x))
        peaks[f"TensorFlow {dtype.name}"] = best(lambda: matmul(a).numpy())
    a = torch.randn(n, n)
    peaks["torch float32"] = best(lambda: a @ a)
    return peaks


def compare_loops(docs, rounds):
    import ulmfit_tf.layers.weight_drop_lstm as weight_drop_lstm
    from ulmfit_tf.training.classifier import predict_probabilities

    inference_loop = ours_model()
    training_loop = ours_model()
    training_loop.set_weights(inference_loop.get_weights())
    sequence = weight_drop_lstm.lstm_sequence

    def forced_training_loop(*args, **kwargs):
        return sequence(*args, **{**kwargs, "training": True})

    def timed(model, force):
        weight_drop_lstm.lstm_sequence = forced_training_loop if force else sequence
        try:
            start = time.perf_counter()
            probabilities = predict_probabilities(model, docs, batch_size=BATCH)
            return time.perf_counter() - start, probabilities
        finally:
            weight_drop_lstm.lstm_sequence = sequence

    timed(inference_loop, False), timed(training_loop, True)  # trace both
    seconds = {"inference loop": [], "training loop": []}
    for _ in range(rounds):
        s_new, p_new = timed(inference_loop, False)
        s_old, p_old = timed(training_loop, True)
        seconds["inference loop"].append(s_new)
        seconds["training loop"].append(s_old)
    print("| loop | docs/s | vs training loop |\n|---|---|---|")
    base = float(np.median(seconds["training loop"]))
    for name, values in seconds.items():
        median = float(np.median(values))
        print(f"| {name} | {len(docs) / median:,.1f} | {base / median:.2f}x |")
    print(f"max abs difference of probabilities: {np.abs(p_new - p_old).max():.2e}")


def compare_skipping(docs, rounds):
    """The inference loop that skips finished rows against the same loop
    computing every row (finished ones held by the mask, as before), one
    model, timed in turns; batches grouped down to 75% of their longest
    text (as before session 18) against plain sorted batches (the default)."""
    import tensorflow as tf

    import ulmfit_tf.layers.lstm_kernels as kernels
    import ulmfit_tf.training.classifier as classifier

    skipping = kernels._skipping_forward

    def every_row(inputs, mask, h0, c0, kernel, recurrent_kernel, bias):
        projected = kernels._project(inputs, kernel, bias)
        keep = tf.cast(tf.transpose(mask)[:, :, tf.newaxis], projected.dtype)
        units = tf.shape(h0)[-1]
        outputs = tf.TensorArray(projected.dtype, size=tf.shape(projected)[0],
                                 element_shape=h0.shape)

        def body(t, h, c, outputs):
            h_new, c_new = kernels._inference_cell(projected[t], h, c, recurrent_kernel, units)
            h_new, c_new = h + keep[t] * (h_new - h), c + keep[t] * (c_new - c)
            return t + 1, h_new, c_new, outputs.write(t, h_new)

        _, h, c, outputs = tf.while_loop(lambda t, *_: t < tf.shape(projected)[0], body,
                                         (0, h0, c0, outputs))
        return tf.transpose(outputs.stack(), [1, 0, 2]), h, c

    model = ours_model()
    arms = {}
    for name, loop, fill in [("every row (before)", every_row, 0.75),
                             ("skipping finished rows, batches filled to 75%", skipping, 0.75),
                             ("skipping, plain sorted batches (default)", skipping, 0.0)]:
        kernels._skipping_forward = loop  # read when the function is traced, just below
        function = tf.function(lambda ids: model(ids, training=False),
                               input_signature=[tf.TensorSpec([None, None], tf.int32)])
        function(tf.ones([2, 5], tf.int32))
        arms[name] = (function, fill)
    kernels._skipping_forward = skipping
    inference_function, similar_lengths = classifier._inference_function, classifier._similar_lengths
    seconds, probabilities = {name: [] for name in arms}, {}
    try:
        for _ in range(rounds):
            for name, (function, fill) in arms.items():
                classifier._inference_function = lambda *_, function=function: function
                classifier._similar_lengths = (
                    lambda lengths, size, min_fill=None, fill=fill: similar_lengths(lengths, size, fill))
                start = time.perf_counter()
                probabilities[name] = classifier.predict_probabilities(model, docs, BATCH)
                seconds[name].append(time.perf_counter() - start)
    finally:
        classifier._inference_function, classifier._similar_lengths = (inference_function,
                                                                       similar_lengths)
    base = float(np.median(seconds["every row (before)"]))
    print("| loop | docs/s | vs every row | max abs difference of probabilities |\n|---|---|---|---|")
    for name in arms:
        median = float(np.median(seconds[name]))
        difference = np.abs(probabilities[name] - probabilities["every row (before)"]).max()
        print(f"| {name} | {len(docs) / median:,.2f} | {base / median:.2f}x | {difference:.1e} |")


SERVE = """
import sys, time
import numpy as np, tensorflow as tf
path, texts_file, out, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
texts = open(texts_file, encoding="utf-8").read().split("\\x00")
serve = tf.saved_model.load(path).signatures["serving_default"]
order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
# As predict_probabilities batches them: sorted by length (here in
# characters: the client has no tokens), 64 at a time.
batches = [order[start:start + 64] for start in range(0, len(order), 64)]
def run():
    probabilities = np.zeros((len(texts), 2), np.float32)
    for rows in batches:
        result = serve(text=tf.constant([texts[i] for i in rows]))
        probabilities[rows] = result["probabilities"].numpy()
    return probabilities
run()
seconds = []
for _ in range(rounds):
    start = time.perf_counter()
    probabilities = run()
    seconds.append(time.perf_counter() - start)
np.save(out, probabilities)
print("SECONDS", *seconds)
"""


def compare_savedmodel(data, count, rounds, precision="float32"):
    import tempfile

    from ulmfit_tf.data import load_imdb
    from ulmfit_tf.export import export_classifier
    from ulmfit_tf.text import Vocab, tokenize_corpus
    from ulmfit_tf.training.classifier import predict_probabilities

    texts = load_imdb("test", source=data).texts
    texts = [texts[i].replace("\x00", " ")
             for i in np.random.default_rng(0).permutation(len(texts))[:count]]
    vocab = Vocab.build(tokenize_corpus(texts), max_vocab=VOCAB - 16)
    model = ours_model()

    def python_path():
        docs = [vocab.encode(t) for t in tokenize_corpus(texts, num_workers=1)]
        return predict_probabilities(model, docs, batch_size=BATCH, matmul_precision=precision)

    python_path()  # trace
    python_seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        python_probabilities = python_path()
        python_seconds.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        export_classifier(model, vocab, ["neg", "pos"], os.path.join(tmp, "export"),
                          version=1, matmul_precision=precision)
        with open(os.path.join(tmp, "texts"), "w", encoding="utf-8") as f:
            f.write("\x00".join(texts))
        result = subprocess.run(
            [sys.executable, "-c", SERVE, os.path.join(tmp, "export", "1"),
             os.path.join(tmp, "texts"), os.path.join(tmp, "p.npy"), str(rounds)],
            capture_output=True, text=True, cwd=tmp,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
        if result.returncode:
            raise RuntimeError(result.stderr[-2000:])
        served_seconds = [float(x) for x in result.stdout.split("SECONDS")[1].split()]
        served_probabilities = np.load(os.path.join(tmp, "p.npy"))
    python_s, served_s = float(np.median(python_seconds)), float(np.median(served_seconds))
    print(f"matmul precision {precision}\n| path | texts/s |\n|---|---|")
    print(f"| Python: tokenizer + predict_probabilities | {len(texts) / python_s:,.1f} |")
    print(f"| SavedModel serving_default, fresh process | {len(texts) / served_s:,.1f} |")
    print(f"SavedModel / Python: {python_s / served_s:.2f}x; max abs difference of "
          f"probabilities: {np.abs(served_probabilities - python_probabilities).max():.2e}")


def compare_precision(docs, rounds):
    from ulmfit_tf.training.classifier import predict_probabilities

    model = ours_model()
    fastai = fastai_inference(docs)

    def timed(precision):
        start = time.perf_counter()
        probabilities = predict_probabilities(model, docs, batch_size=BATCH,
                                              matmul_precision=precision)
        return time.perf_counter() - start, probabilities

    precisions = ("float32", "bfloat16")
    for precision in precisions:  # trace each once
        predict_probabilities(model, docs[:BATCH], matmul_precision=precision)
    seconds = {name: [] for name in (*precisions, "fastai")}
    probabilities = {}
    for _ in range(rounds):  # in turns, so that other load hits all alike
        for precision in precisions:
            elapsed, probabilities[precision] = timed(precision)
            seconds[precision].append(elapsed)
        seconds["fastai"].append(fastai())
    medians = {name: float(np.median(values)) for name, values in seconds.items()}
    print("| | docs/s | vs fastai | vs our float32 |\n|---|---|---|---|")
    for name, median in medians.items():
        label = "fastai float32" if name == "fastai" else f"ours, {name} matmuls"
        print(f"| {label} | {len(docs) / median:,.2f} | {medians['fastai'] / median:.2f}x | "
              f"{medians['float32'] / median:.2f}x |")
    full, reduced = probabilities["float32"], probabilities["bfloat16"]
    agree = float(np.mean(full.argmax(1) == reduced.argmax(1)))
    print(f"bfloat16 against float32: max abs difference of probabilities "
          f"{np.abs(full - reduced).max():.2e}, labels agree on {agree:.2%}")


def compare_agreement(pairs):
    from ulmfit_tf.corpus import read_texts
    from ulmfit_tf.training.classifier import load_run, predict_probabilities

    print("| run | texts | labels agree | max abs difference | error float32 | error bfloat16 "
          "| texts/s float32 / bfloat16 (second pass) |\n|---|---|---|---|---|---|---|")
    for pair in pairs.split(","):
        run, test = pair.split("=")
        model, vocab, classes, config = load_run(run)
        data = read_texts(test)
        index = {c: i for i, c in enumerate(classes)}
        labels = np.array([index[data.classes[label]] for label in data.labels])
        docs = vocab.encode_texts(data.texts)
        results, seconds = {}, {}
        for precision in ("float32", "bfloat16", "float32", "bfloat16"):  # traced, then timed
            start = time.perf_counter()
            results[precision] = predict_probabilities(
                model, docs, backwards=config.get("backwards", False), matmul_precision=precision)
            seconds[precision] = time.perf_counter() - start
        full, reduced = results["float32"], results["bfloat16"]
        print(f"| {run} | {len(docs)} | {np.mean(full.argmax(1) == reduced.argmax(1)):.2%} | "
              f"{np.abs(full - reduced).max():.1e} | {np.mean(full.argmax(1) != labels):.2%} | "
              f"{np.mean(reduced.argmax(1) != labels):.2%} | "
              f"{len(docs) / seconds['float32']:.1f} / {len(docs) / seconds['bfloat16']:.1f} |")


def fastai_inference(docs):
    import torch

    model = fastai_model().eval()
    order = sorted(range(len(docs)), key=lambda i: -len(docs[i]))

    def run(selected):
        with torch.no_grad():
            for b in range(0, len(selected), BATCH):
                # (Padding all in front made fastai skip the first, partial
                # chunk of most texts: 15% of the tokens of 200 or 500 reviews.)
                x = fastai_padded([docs[i] for i in selected[b:b + BATCH]])
                model[0].reset()
                model(x)

    run(order[:BATCH])

    def timed():
        start = time.perf_counter()
        run(order)
        return time.perf_counter() - start
    return timed


def train_steps(library, length, steps=3, batch=8):
    """Runs in a fresh process; prints its peak RSS in MB as JSON."""
    rng = np.random.default_rng(0)
    docs = list(rng.integers(9, VOCAB, (batch, length)).astype(np.int32))
    y = rng.integers(0, 2, batch)
    step = ours_train_step() if library == "ours" else fastai_train_step()
    for _ in range(steps):
        step(docs, y)
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


BUNDLED_SIZES = {"vocab": 15_000, "embedding": 128, "hidden": 384}


def ours_train_step(**sizes):
    """A function that runs (and times) one Adam step of our classifier on
    a list of id arrays, padded as our batches are."""
    import keras

    from ulmfit_tf.data.classification import pad_right

    model = ours_model(**sizes)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")

    def step(batch, labels):
        x = pad_right(batch)
        start = time.perf_counter()
        model.train_on_batch(x, labels)
        return time.perf_counter() - start
    return step


def fastai_train_step(**sizes):
    """The same for fastai's classifier, padded by its own collate."""
    import torch

    model = fastai_model(**sizes).train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)

    def step(batch, labels):
        x, y = fastai_padded(batch), torch.from_numpy(labels)
        start = time.perf_counter()
        optimizer.zero_grad()
        model[0].reset()
        torch.nn.functional.cross_entropy(model(x)[0], y).backward()
        optimizer.step()
        return time.perf_counter() - start
    return step


def compare_outlier(length, outlier, rounds):
    rng = np.random.default_rng(0)
    vocab = BUNDLED_SIZES["vocab"]
    plain = [rng.integers(9, vocab, length).astype(np.int32) for _ in range(BATCH)]
    with_outlier = [rng.integers(9, vocab, outlier).astype(np.int32)] + plain[1:]
    labels = rng.integers(0, 2, BATCH)
    steps = {"ours": ours_train_step(**BUNDLED_SIZES),
             "fastai": fastai_train_step(**BUNDLED_SIZES)}
    batches = {"plain": plain, "outlier": with_outlier}
    seconds = {(lib, kind): [] for lib in steps for kind in batches}
    for lib, step in steps.items():  # trace and warm up each shape once
        for batch in batches.values():
            step(batch, labels)
    for _ in range(rounds):  # in turns, so that other load hits all alike
        for lib, step in steps.items():
            for kind, batch in batches.items():
                seconds[lib, kind].append(step(batch, labels))
    median = {key: float(np.median(values)) for key, values in seconds.items()}
    print(f"one training step, batch {BATCH}: {BATCH} texts of {length:,} tokens, or the same "
          f"with one of {outlier:,}; median of {rounds}")
    print(f"| | {BATCH} x {length:,} tokens | one text {outlier:,} long | cost of the long text |")
    print("|---|---|---|---|")
    for lib in steps:
        plain_s, outlier_s = median[lib, "plain"], median[lib, "outlier"]
        print(f"| {lib} | {plain_s:.2f} s | {outlier_s:.2f} s | {outlier_s / plain_s:.2f}x |")
    print(f"ours / fastai, the batch with the long text: "
          f"{median['ours', 'outlier'] / median['fastai', 'outlier']:.2f}x the time")


def memory(lengths):
    print("| tokens per document | ours peak RSS (MB) | fastai peak RSS (MB) | ratio fastai / ours |")
    print("|---|---|---|---|")
    for length in lengths:
        row = []
        for library in ("ours", "fastai"):
            out = subprocess.run([sys.executable, __file__, "_train", library, str(length)],
                                 capture_output=True, text=True, check=True,
                                 env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            row.append(json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"])
        print(f"| {length:,} | {row[0]:,.0f} | {row[1]:,.0f} | {row[1] / row[0]:.2f} |",
              flush=True)


def main():
    if sys.argv[1] == "_train":
        return train_steps(sys.argv[2], int(sys.argv[3]))
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["inference", "loops", "skipping", "savedmodel",
                                         "precision", "agreement", "memory", "outlier"])
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "shared", "data"))
    parser.add_argument("--docs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lengths", default="500,1000,2000,5000")
    parser.add_argument("--length", type=int, default=540, help="outlier: every text's length")
    parser.add_argument("--outlier", type=int, default=12_000,
                        help="outlier: the long text's length")
    parser.add_argument("--runs", default=None, help="agreement: RUN=TEST.tsv,...")
    parser.add_argument("--matmul-precision", default="float32", choices=["float32", "bfloat16"],
                        help="savedmodel: both paths in this precision")
    args = parser.parse_args()
    if args.what == "agreement":
        return compare_agreement(args.runs)
    if args.what == "outlier":
        return compare_outlier(args.length, args.outlier, args.rounds)
    if args.what == "memory":
        return memory([int(n) for n in args.lengths.split(",")])
    if args.what == "savedmodel":
        return compare_savedmodel(args.data, args.docs, args.rounds, args.matmul_precision)
    docs = imdb_ids(args.data, args.docs)
    tokens = sum(map(len, docs))
    if args.what == "loops":
        print(f"{len(docs)} IMDb test reviews, {tokens:,} tokens")
        return compare_loops(docs, args.rounds)
    if args.what == "skipping":
        print(f"{len(docs)} IMDb test reviews, {tokens:,} tokens, median of {args.rounds}")
        return compare_skipping(docs, args.rounds)
    if args.what == "precision":
        print(f"{len(docs)} IMDb test reviews, {tokens:,} tokens, median of {args.rounds}")
        return compare_precision(docs, args.rounds)
    peaks = matmul_peaks()
    print("matmul peak, 2048 x 2048, GFLOP/s: "
          + ", ".join(f"{name} {value:.0f}" for name, value in peaks.items()))
    ours, fastai = ours_inference(docs), fastai_inference(docs)
    seconds = {"ours": [], "fastai": []}
    for _ in range(args.rounds):  # in turns, so that other load hits both alike
        seconds["ours"].append(ours())
        seconds["fastai"].append(fastai())
    ours_s, fastai_s = (float(np.median(seconds[k])) for k in ("ours", "fastai"))
    print(f"{len(docs)} IMDb test reviews, {tokens:,} tokens (mean {tokens / len(docs):.0f}), "
          f"median of {args.rounds}")
    print("| | ours | fastai | ratio |\n|---|---|---|---|")
    print(f"| docs/s | {len(docs) / ours_s:,.2f} | {len(docs) / fastai_s:,.2f} | "
          f"{fastai_s / ours_s:.2f}x |")
    peak = peaks["TensorFlow float32"]
    rates = [tokens * flops_per_token() / s / 1e9 for s in (ours_s, fastai_s)]
    print(f"| LSTM GFLOP/s (share of the float32 peak) | {rates[0]:.0f} ({rates[0] / peak:.0%}) "
          f"| {rates[1]:.0f} ({rates[1] / peak:.0%}) | |")

if __name__ == "__main__":
    main()
