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
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/estimator_epochs.py --ragged-only \
        --ragged-data JapaneseVowels --epochs 30 --rounds 5      # part 2 alone, alternating rounds
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
import model_quality  # noqa: E402  (loads rnnfast: this checkout when built in place, else the installed one)
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


def alternating(fits, rounds):
    """Each of ``fits`` (name -> a function returning seconds per epoch) run ``rounds`` times, taking turns,
    each round starting one further along, so that a load spike does not always fall on the same one; the
    times per name, in rounds."""
    times = {key: [] for key in fits}
    order = list(fits)
    for r in range(rounds):
        for key in order[r % len(order):] + order[:r % len(order)]:
            times[key].append(fits[key]())
    return times


def ragged_table(epochs, rounds=1, data=("JapaneseVowels", "random walks")):
    """Ragged / ideal per data set, bucketed and not. With ``rounds`` > 1 the three fits (ideal, bucket=True,
    bucket=False) alternate, each round in another order, and the table gives the medians over the rounds of
    s/epoch and of each round's ratio (with its range), so that a load spike in one fit does not make the
    ratio."""
    print()
    print(f"| data | n, lengths | bucket | s/epoch | ideal s/epoch | ragged / ideal (median of {rounds}, range) |")
    print("|---|---|---|---|---|---|")
    sets = {}
    if "JapaneseVowels" in data:
        Xjv, yjv, _ = model_quality.load_split("JapaneseVowels", "train")
        sets["JapaneseVowels"] = (model_quality.to_rnnfast(Xjv), yjv)
    if "random walks" in data:
        sets["random walks"] = ragged_walks()
    for name, (X, y) in sets.items():
        lens = np.array([len(x) for x in X])
        mean_len = int(round(lens.mean()))
        _, est = epoch_seconds(X, y, 1)
        k = est.window_                                                # the same network for the ideal
        equal = [np.resize(x, (mean_len, x.shape[1])) for x in X]      # same n, same real steps
        fits = {"ideal": lambda: epoch_seconds(equal, y, epochs, window=k)[0],
                True: lambda: epoch_seconds(X, y, epochs, window=k, bucket=True)[0],
                False: lambda: epoch_seconds(X, y, epochs, window=k, bucket=False)[0]}
        times = alternating(fits, rounds)
        ideal = float(np.median(times["ideal"]))
        for bucket in (True, False):
            ratios = np.array(times[bucket]) / np.array(times["ideal"])
            spread = f" ({ratios.min():.2f}–{ratios.max():.2f})" if rounds > 1 else ""
            print(f"| {name} | {len(X)}, {lens.min()}–{lens.max()} (window {k}) | {bucket} | "
                  f"{np.median(times[bucket]):.4f} | {ideal:.4f} | {np.median(ratios):.2f}{spread} |", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ragged-only", action="store_true", help="only part 2, the ragged sets against their ideal")
    p.add_argument("--rounds", type=int, default=1,
                   help="alternating rounds (part 1: rnnfast and torch; part 2: ideal, bucketed, not bucketed); "
                        "medians reported")
    p.add_argument("--ragged-data", default="JapaneseVowels,random walks",
                   help="part 2: comma-separated, of JapaneseVowels and 'random walks'")
    args = p.parse_args(argv)
    rnnfast.set_num_threads(args.threads)
    import torch
    from threadpoolctl import threadpool_info
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor() or platform.machine())
    print(f"# CPU: {cpu}")
    print(f"# rnnfast {rnnfast.__version__} (from {os.path.dirname(rnnfast.__file__)}), torch {torch.__version__}, "
          f"numpy {np.__version__}, "
          f"{args.threads} threads, {args.epochs} epochs, load {os.getloadavg()[0]:.2f}")
    print("# BLAS: " + "; ".join(f"{i['internal_api']} {i.get('version')} {i.get('architecture')} "
                                 f"({os.path.basename(i['filepath'])})" for i in threadpool_info()
                                 if i["user_api"] == "blas"))
    if args.ragged_only:
        ragged_table(args.epochs, args.rounds, tuple(args.ragged_data.split(",")))
        return
    print(f"| data | n, T | rnnfast s/epoch | torch s/epoch | torch / rnnfast (median of {args.rounds}, range) |")
    print("|---|---|---|---|---|")
    for name, Xtr, ytr, Xte in datasets():
        params = rnnfast.SequenceClassifier(random_state=0, max_epochs=args.epochs, max_updates=None).get_params()

        def fit_rnnfast():
            est = rnnfast.SequenceClassifier(**params)
            t = time.perf_counter()
            est.fit(Xtr, ytr)
            return (time.perf_counter() - t) / est.n_epochs_

        def fit_torch():
            t = time.perf_counter()
            model_quality.torch_same_recipe(Xtr, ytr, Xte[:1], params, threads=args.threads)
            return (time.perf_counter() - t) / args.epochs

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            times = alternating({"rnnfast": fit_rnnfast, "torch": fit_torch}, args.rounds)
        ratios = np.array(times["torch"]) / np.array(times["rnnfast"])
        spread = f" ({ratios.min():.2f}–{ratios.max():.2f})" if args.rounds > 1 else ""
        lens = [len(x) for x in Xtr]
        shape = f"{len(Xtr)}, {min(lens)}–{max(lens)}" if min(lens) != max(lens) else f"{len(Xtr)}, {lens[0]}"
        print(f"| {name} | {shape} | {np.median(times['rnnfast']):.3f} | {np.median(times['torch']):.3f} | "
              f"{np.median(ratios):.2f}{spread} |", flush=True)
    ragged_table(args.epochs, args.rounds, tuple(args.ragged_data.split(",")))


if __name__ == "__main__":
    main()
