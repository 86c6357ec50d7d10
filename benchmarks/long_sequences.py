"""Per-step targets of long sequences: what tbptt="auto" and the work limit of max_updates="auto" give (issue 16).

``output="sequence"`` scores every step, so a fit through whole sequences of thousands of steps costs
thousands of steps per update. Three drawn tasks, 100 training and 20 test series each:

- ``filter`` (SequenceRegressor): y_t = 0.9·y_{t−1} + tanh(2·x_t,0) − 0.5·x_t,1², plus noise 0.1; score R²;
- ``regimes`` (SequenceClassifier): a Markov chain of 3 states (switching with probability 0.02 a step)
  shifts the mean of a noisy x by 0.7 per state; the label of each step is its state; score accuracy;
- ``runsum`` (SequenceRegressor): y_t = (x_1 + … + x_t) / 10, a sum over the whole sequence so far; R².

For T = 1,000 and 3,000, side by side in one run: the defaults (``tbptt="auto"``: an update every 128 steps),
``tbptt=None`` (whole sequences, in the work the default budget allows), and with ``--whole`` the defaults
before this change (``tbptt=None, max_updates=2000``: 2000 updates through whole sequences, minutes a fit),
beside a linear model on each step's last 16 steps of input (logistic regression for the regimes, ridge
for the others; scikit-learn, 1 thread).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/long_sequences.py [--whole] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_quality as mq  # noqa: E402

import rnnfast  # noqa: E402
from rnnfast.bench import blas_kernels  # noqa: E402
from rnnfast.estimators import SequenceClassifier, SequenceRegressor  # noqa: E402

N_TRAIN, N_TEST, LAGS = 100, 20, 16


def task(name: str, T: int) -> tuple[np.ndarray, np.ndarray]:
    """X (n, T, I) and per-step targets y (n, T) of N_TRAIN + N_TEST series."""
    rng = np.random.default_rng(0)
    n = N_TRAIN + N_TEST
    if name == "filter":
        X = rng.standard_normal((n, T, 2))
        y, acc = np.zeros((n, T)), np.zeros(n)
        for t in range(T):
            acc = 0.9 * acc + np.tanh(2 * X[:, t, 0]) - 0.5 * X[:, t, 1] ** 2
            y[:, t] = acc
        return X, y + 0.1 * rng.standard_normal(y.shape)
    if name == "runsum":
        X = rng.standard_normal((n, T, 1))
        return X, np.cumsum(X[:, :, 0], axis=1) / 10
    state, cur = np.zeros((n, T), np.int64), rng.integers(0, 3, n)                 # (n, T) regimes
    for t in range(T):
        cur = np.where(rng.random(n) < 0.02, rng.integers(0, 3, n), cur)
        state[:, t] = cur
    return (state[:, :, None] - 1.0) * 0.7 + rng.standard_normal((n, T, 1)), state


def lagged(X: np.ndarray) -> np.ndarray:
    """Each step's last LAGS steps of input, zeros before the first: (n·T, LAGS·I)."""
    n, T, I = X.shape
    padded = np.concatenate([np.zeros((n, LAGS - 1, I)), X], axis=1)
    return np.concatenate([padded[:, j:j + T] for j in range(LAGS)], axis=2).reshape(n * T, LAGS * I)


def linear_baseline(name: str, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression, Ridge
    tr, te = slice(0, N_TRAIN), slice(N_TRAIN, None)
    t0 = time.perf_counter()
    model = LogisticRegression(max_iter=500) if name == "regimes" else Ridge(alpha=1.0)
    model.fit(lagged(X[tr]), y[tr].ravel())
    return float(model.score(lagged(X[te]), y[te].ravel())), time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--whole", action="store_true", help="add tbptt=None, max_updates=2000 (minutes per fit)")
    ap.add_argument("--threads", type=int, default=2, help="rnnfast.set_num_threads")
    ap.add_argument("--T", default="1000,3000", help="sequence lengths, comma-separated")
    ap.add_argument("--tasks", default="filter,regimes,runsum", help="comma-separated")
    args = ap.parse_args(argv)
    rnnfast.set_num_threads(args.threads)
    info = mq.machine_info(args.threads)
    print(f"# {info['cpu']}; numpy's BLAS {', '.join(blas_kernels()) or '?'}; rnnfast {rnnfast.__version__} on "
          f"{args.threads} threads, the linear model on 1; load average {info['loadavg'][0]:.1f}")
    variants = {"defaults": {}, "tbptt=None": {"tbptt": None}}
    if args.whole:
        variants["tbptt=None, max_updates=2000"] = {"tbptt": None, "max_updates": 2000}
    cols = list(variants) + ["linear, 16 lags"]
    print("| task | T | " + " | ".join(cols) + " |")
    print("|---|---" + "|---" * len(cols) + "|")
    for T in (int(s) for s in args.T.split(",")):
        for name in args.tasks.split(","):
            X, y = task(name, T)
            Estimator = SequenceClassifier if name == "regimes" else SequenceRegressor
            cells = []
            for params in variants.values():
                est = Estimator(output="sequence", random_state=0, **params)
                t0 = time.perf_counter()
                est.fit(X[:N_TRAIN], y[:N_TRAIN])
                seconds = time.perf_counter() - t0
                cells.append(f"{est.score(X[N_TRAIN:], y[N_TRAIN:]):.3f} ({seconds:.1f} s, {est.n_updates_} "
                             f"updates)")
            with mq.single_threaded_baselines():
                score, seconds = linear_baseline(name, X, y)
            cells.append(f"{score:.3f} ({seconds:.1f} s)")
            print(f"| {name} | {T:,} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
