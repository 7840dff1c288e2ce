"""Language-model training throughput: ulmfit_tf against fastai, same shapes, one run.

    python bench/lm_speed.py [--steps 6] [--shapes small,paper10k,paper30k]
    python bench/lm_speed.py --shapes small --optimizers adam,adamw-groups,sgd --rounds 3 \
        --no-fastai

Each row times full training steps (forward, backward, optimizer) of a
3-layer AWD-LSTM LM with the same shapes in both libraries, on random ids,
after warm-up, and prints tokens/s and the ratio ours / fastai.
Shapes: small = vocab 10k, emb 200, hidden 512; paper10k / paper30k = vocab
10k / 30k, emb 400, hidden 1152. Batch 64, bptt 70.

`--optimizers` times the stages' optimizers (`build_optimizer`: "adam" is
DiscriminativeAdam, the others a Keras optimizer per layer group) with ÷2.6
rates over the LM's 4 groups, each model built once and timed in turns
(`--rounds`, median), so that load on the machine hits all alike; the
ratio column is then against the first one named.
"""

import argparse
import time

import numpy as np

SHAPES = {"small": (10_000, 200, 512), "paper10k": (10_000, 400, 1152),
          "paper30k": (30_000, 400, 1152)}
BATCH, BPTT = 64, 70


def build_ours(vocab, emb, hidden, optimizer="adam", factor=None):
    import keras

    from ulmfit_tf.models import AWDLSTM, AWDLSTMLanguageModel
    from ulmfit_tf.training.optimizers import build_optimizer

    lm = AWDLSTMLanguageModel(AWDLSTM(vocab, embedding_dim=emb, hidden_dim=hidden))
    lm(np.zeros((1, 2), np.int32))
    lm.compile(optimizer=build_optimizer(optimizer, lm, 1e-3, factor=factor),
               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
               jit_compile=False)
    rng = np.random.default_rng(0)
    x = rng.integers(9, vocab, (BATCH, BPTT)).astype(np.int32)
    y = rng.integers(9, vocab, (BATCH, BPTT)).astype(np.int32)
    for _ in range(2):
        lm.train_on_batch(x, y)
    return lm, x, y


def time_ours(model, steps):
    lm, x, y = model
    start = time.perf_counter()
    for _ in range(steps):
        lm.train_on_batch(x, y)
    return BATCH * BPTT * steps / (time.perf_counter() - start)


def fastai(vocab, emb, hidden, steps):
    import torch
    from fastai.text.all import AWD_LSTM, awd_lstm_lm_config, get_language_model

    config = dict(awd_lstm_lm_config, emb_sz=emb, n_hid=hidden)
    model = get_language_model(AWD_LSTM, vocab, config=config)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.randint(9, vocab, (BATCH, BPTT))
    y = torch.randint(9, vocab, (BATCH, BPTT))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad()
        logits, raw, dropped = model(x)
        loss = loss_fn(logits.reshape(-1, vocab), y.reshape(-1))
        loss = loss + 2 * dropped.pow(2).mean() + (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
        loss.backward()
        optimizer.step()
        model[0].reset()

    model.train()
    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return BATCH * BPTT * steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--shapes", default="small,paper10k,paper30k")
    parser.add_argument("--optimizers", default=None,
                        help="compare these stage optimizers (e.g. adam,adamw-groups,sgd)")
    parser.add_argument("--rounds", type=int, default=1, help="timings per model (median)")
    parser.add_argument("--no-fastai", action="store_true")
    args = parser.parse_args()
    if args.optimizers:
        names = args.optimizers.split(",")
        print(f"{'shape':10} {'optimizer':13} {'tok/s':>8} {'vs ' + names[0]:>10}")
        for shape in args.shapes.split(","):
            models = {name: build_ours(*SHAPES[shape], name, factor=2.6) for name in names}
            rates = {name: [] for name in names}
            for _ in range(args.rounds):
                for name in names:
                    rates[name].append(time_ours(models[name], args.steps))
            medians = {name: float(np.median(r)) for name, r in rates.items()}
            for name in names:
                print(f"{shape:10} {name:13} {medians[name]:8,.0f} "
                      f"{medians[name] / medians[names[0]]:10.3f}")
        return
    print(f"{'shape':10} {'ours tok/s':>11} {'fastai tok/s':>13} {'ratio':>6}")
    for name in args.shapes.split(","):
        model = build_ours(*SHAPES[name])
        a = float(np.median([time_ours(model, args.steps) for _ in range(args.rounds)]))
        if args.no_fastai:
            print(f"{name:10} {a:11,.0f}")
            continue
        b = fastai(*SHAPES[name], args.steps)
        print(f"{name:10} {a:11,.0f} {b:13,.0f} {a / b:6.2f}")


if __name__ == "__main__":
    main()
