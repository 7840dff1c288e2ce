"""Language-model training throughput: ulmfit_tf against fastai, same shapes, one run.

    python bench/lm_speed.py [--steps 6] [--shapes small,paper10k,paper30k]

Each row times full training steps (forward, backward, optimizer) of a
3-layer AWD-LSTM LM with the same shapes in both libraries, on random ids,
after warm-up, and prints tokens/s and the ratio ours / fastai.
Shapes: small = vocab 10k, emb 200, hidden 512; paper10k / paper30k = vocab
10k / 30k, emb 400, hidden 1152. Batch 64, bptt 70.
"""

import argparse
import time

import numpy as np

SHAPES = {"small": (10_000, 200, 512), "paper10k": (10_000, 400, 1152),
          "paper30k": (30_000, 400, 1152)}
BATCH, BPTT = 64, 70


def ours(vocab, emb, hidden, steps):
    import keras

    from ulmfit_tf.models import AWDLSTM, AWDLSTMLanguageModel
    from ulmfit_tf.training import DiscriminativeAdam

    lm = AWDLSTMLanguageModel(AWDLSTM(vocab, embedding_dim=emb, hidden_dim=hidden))
    lm.compile(optimizer=DiscriminativeAdam(1e-3),
               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
               jit_compile=False)
    rng = np.random.default_rng(0)
    x = rng.integers(9, vocab, (BATCH, BPTT)).astype(np.int32)
    y = rng.integers(9, vocab, (BATCH, BPTT)).astype(np.int32)
    for _ in range(2):
        lm.train_on_batch(x, y)
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
    args = parser.parse_args()
    print(f"{'shape':10} {'ours tok/s':>11} {'fastai tok/s':>13} {'ratio':>6}")
    for name in args.shapes.split(","):
        a = ours(*SHAPES[name], args.steps)
        b = fastai(*SHAPES[name], args.steps)
        print(f"{name:10} {a:11,.0f} {b:13,.0f} {a / b:6.2f}")


if __name__ == "__main__":
    main()
