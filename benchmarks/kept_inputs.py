"""What the copy of the caller's inputs costs (issue 19, item 2): a training step with and without it.

A layer copies x (and h0, c0, lengths) into its workspace when they are the caller's own arrays, so that
changing them between forward and backward cannot change the gradient. This times LSTM training steps
(forward + backward, float32) with that copy and with it switched off, alternating, and prints the medians:

    python benchmarks/kept_inputs.py [--threads 2] [--rounds 15]
"""
import argparse
import time

import numpy as np

import rnnfast
from rnnfast import _stack


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    rnnfast.set_num_threads(args.threads)
    layer_cls = _stack.StackedRecurrent if hasattr(_stack, "StackedRecurrent") else next(
        c for c in vars(_stack).values() if isinstance(c, type) and hasattr(c, "_kept"))
    kept = layer_cls._kept
    modes = {"with the copy": kept, "without": lambda self, name, arr, given: arr}
    for B, T, H in ((32, 100, 64), (64, 100, 256)):
        layer = rnnfast.LSTM(H, H, seed=0)
        x = np.random.default_rng(0).standard_normal((T, B, H)).astype(np.float32)
        dout = np.ones((T, B, H), np.float32)
        times: dict = {m: [] for m in modes}
        for _ in range(args.rounds):
            for name, fn in modes.items():
                layer_cls._kept = fn
                t0 = time.perf_counter()
                for _ in range(3):
                    layer(x)
                    layer.backward(dout)
                times[name].append((time.perf_counter() - t0) / 3)
        layer_cls._kept = kept
        print(f"LSTM B={B} T={T} I=H={H}, {args.threads} threads: " + ", ".join(
            f"{1e3 * np.median(v):.2f} ms {k}" for k, v in times.items()))


if __name__ == "__main__":
    main()
