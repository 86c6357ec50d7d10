#!/usr/bin/env python
"""The estimators' ``fit``, timed per epoch, beside the same recipe in PyTorch (issue 17).

Part 1. What a user of the estimators waits for is the whole of ``fit``: scaling, the window, batching, the input
noise, the layer, the readout, the head, the loss, clipping, Adam and the learning-rate schedule. This
script fits ``SequenceClassifier`` with its defaults (only the number of epochs fixed, ``max_epochs``, and
``random_state=0``) and ``torch_same_recipe`` from ``model_quality.py`` (the same recipe in PyTorch, same
epochs, same thread count), one after the other in one process, and prints seconds per epoch and the ratio.

Part 2 (issue 18): a ragged training set against the ideal of its real steps. The ideal is the epoch time of an
equal-length set with the same number of series and the same real steps (every series at the mean length),
trained with the same window; the ratio is ragged / ideal, with ``bucket=True`` (the default) and
``bucket=False``.

Data: aeon's bundled JapaneseVowels (270 ragged series of 7–29 steps × 12) and ArrowHead (36 × 251), and a
synthetic set of 2,000 series of 100 steps × 8 features (random walks, labels from their sign at the end).

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/estimator_epochs.py [--epochs 20] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_quality  # noqa: E402  (loads rnnfast: installed, or this checkout)
import rnnfast  # noqa: E402


def synthetic(n=2000, T=100, F=8, seed=0):
    rng = np.random.default_rng(seed)
    X = np.cumsum(rng.standard_normal((n, T, F)), axis=1)
    y = (X[:, -1, 0] > 0).astype(int)
    return X[: n // 2], y[: n // 2], X[n // 2:], y[n // 2:]


def datasets():
    for name in ("JapaneseVowels", "ArrowHead"):
        Xtr, ytr, _ = model_quality.load_split(name, "train")
        Xte, _, _ = model_quality.load_split(name, "test")
        yield name, model_quality.to_rnnfast(Xtr), ytr, model_quality.to_rnnfast(Xte)
    yield "random walks 1000 × 100 × 8", *synthetic()[:3]


def ragged_walks(n=256, lo=30, hi=3000, F=8, seed=0):
    """n random walks of lengths uniform in [lo, hi] × F features, labels from their sign at the end."""
    rng = np.random.default_rng(seed)
    X = [np.cumsum(rng.standard_normal((int(t), F)), axis=0) for t in rng.integers(lo, hi + 1, size=n)]
    return X, np.array([int(x[-1, 0] > 0) for x in X])


def epoch_seconds(X, y, epochs, **params):
    est = rnnfast.SequenceClassifier(random_state=0, max_epochs=epochs, max_updates=None, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        est.fit(X, y)
    return (time.perf_counter() - t) / est.n_epochs_, est


def ragged_table(epochs):
    print()
    print("| data | n, lengths | bucket | s/epoch | ideal s/epoch | ragged / ideal |")
    print("|---|---|---|---|---|---|")
    Xjv, yjv, _ = model_quality.load_split("JapaneseVowels", "train")
    for name, (X, y) in (("JapaneseVowels", (model_quality.to_rnnfast(Xjv), yjv)),
                         ("random walks", ragged_walks())):
        lens = np.array([len(x) for x in X])
        mean_len = int(round(lens.mean()))
        _, est = epoch_seconds(X, y, 1)
        k = est.window_                                                # the same network for the ideal
        equal = [np.resize(x, (mean_len, x.shape[1])) for x in X]      # same n, same real steps
        ideal, _ = epoch_seconds(equal, y, epochs, window=k)
        for bucket in (True, False):
            t, _ = epoch_seconds(X, y, epochs, window=k, bucket=bucket)
            print(f"| {name} | {len(X)}, {lens.min()}–{lens.max()} (window {k}) | {bucket} | {t:.4f} | "
                  f"{ideal:.4f} | {t / ideal:.2f} |", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    rnnfast.set_num_threads(args.threads)
    import torch
    from threadpoolctl import threadpool_info
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor() or platform.machine())
    print(f"# CPU: {cpu}")
    print(f"# rnnfast {rnnfast.__version__}, torch {torch.__version__}, numpy {np.__version__}, "
          f"{args.threads} threads, {args.epochs} epochs, load {os.getloadavg()[0]:.2f}")
    print("# BLAS: " + "; ".join(f"{i['internal_api']} {i.get('version')} {i.get('architecture')} "
                                 f"({os.path.basename(i['filepath'])})" for i in threadpool_info()
                                 if i["user_api"] == "blas"))
    print("| data | n, T | rnnfast s/epoch | torch s/epoch | torch / rnnfast |")
    print("|---|---|---|---|---|")
    for name, Xtr, ytr, Xte in datasets():
        est = rnnfast.SequenceClassifier(random_state=0, max_epochs=args.epochs, max_updates=None)
        params = est.get_params()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            est.fit(Xtr, ytr)
            t_rnnfast = (time.perf_counter() - t) / est.n_epochs_
            t = time.perf_counter()
            model_quality.torch_same_recipe(Xtr, ytr, Xte[:1], params, threads=args.threads)
            t_torch = (time.perf_counter() - t) / args.epochs
        lens = [len(x) for x in Xtr]
        shape = f"{len(Xtr)}, {min(lens)}–{max(lens)}" if min(lens) != max(lens) else f"{len(Xtr)}, {lens[0]}"
        print(f"| {name} | {shape} | {t_rnnfast:.3f} | {t_torch:.3f} | {t_torch / t_rnnfast:.2f} |", flush=True)
    ragged_table(args.epochs)


if __name__ == "__main__":
    main()
