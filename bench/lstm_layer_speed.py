"""One LSTM layer (400 -> 1152, batch 64, 70 steps), forward + backward, on the CPU.

    python bench/lstm_layer_speed.py [--steps 5]

The choices for the weight-dropped LSTM's CPU path, measured side by side in
one run: TF's fused BlockLSTMV2, keras.layers.LSTM, autodiff through a
tf.scan loop, our loop with a hand-written backward pass
(ulmfit_tf.layers.lstm_kernels), and PyTorch's nn.LSTM (if installed).
"""

import argparse
import time

import tensorflow as tf

B, T, I, H = 64, 70, 400, 1152


def tf_rate(fn, variables, steps):
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            y = fn()
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, variables)

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return B * T * steps / (time.perf_counter() - start)


def main():
    import keras

    from ulmfit_tf.layers.lstm_kernels import _project, lstm_sequence

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    x = tf.random.normal([B, T, I])
    kernel = tf.Variable(tf.random.normal([I, 4 * H]) * 0.02)
    recurrent = tf.Variable(tf.random.normal([H, 4 * H]) * 0.02)
    bias = tf.Variable(tf.zeros([4 * H]))
    zeros = tf.zeros([B, H])

    def block():
        out = tf.raw_ops.BlockLSTMV2(
            seq_len_max=tf.constant(T, tf.int64), x=tf.transpose(x, [1, 0, 2]), cs_prev=zeros,
            h_prev=zeros, w=tf.concat([kernel, recurrent], 0), wci=tf.zeros([H]),
            wcf=tf.zeros([H]), wco=tf.zeros([H]), b=bias, cell_clip=0.0, use_peephole=False)
        return out[6]

    layer = keras.layers.LSTM(H, return_sequences=True)
    layer.build((B, T, I))

    def scan_autodiff():
        projected = _project(x, kernel, bias, inference=False)

        def step(carry, z_in):
            h, c = carry
            i, f, g, o = tf.split(z_in + tf.matmul(h, recurrent), 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            return tf.sigmoid(o) * tf.tanh(c), c

        return tf.scan(step, projected, initializer=(zeros, zeros))[0]

    rows = [("tf.raw_ops.BlockLSTMV2", tf_rate(block, [kernel, recurrent, bias], args.steps)),
            ("keras.layers.LSTM", tf_rate(lambda: layer(x), layer.trainable_variables,
                                          args.steps)),
            ("tf.scan + autodiff", tf_rate(scan_autodiff, [kernel, recurrent, bias],
                                           args.steps)),
            ("ulmfit_tf lstm_sequence", tf_rate(
                lambda: lstm_sequence(x, zeros, zeros, kernel, recurrent, bias)[0],
                [kernel, recurrent, bias], args.steps))]
    try:
        import torch

        lstm = torch.nn.LSTM(I, H, batch_first=True)
        tx = torch.randn(B, T, I)
        for _ in range(2):
            y, _ = lstm(tx)
            (y * y).sum().backward()
        start = time.perf_counter()
        for _ in range(args.steps):
            y, _ = lstm(tx)
            (y * y).sum().backward()
        rows.append(("torch.nn.LSTM", B * T * args.steps / (time.perf_counter() - start)))
    except ImportError:
        pass
    reference = dict(rows).get("torch.nn.LSTM")
    for name, rate in rows:
        ratio = f"{rate / reference:.2f}x torch" if reference else ""
        print(f"{name:26} {rate:8,.0f} tokens/s  {ratio}")


if __name__ == "__main__":
    main()
