"""SequenceRegressor's defaults on simple drawn targets that a linear model solves (issue 16).

The public regression sets of ``model_quality.py`` are few: two (Covid3Month, CardanoSentiment) where no model
explains a tenth of the variance, and Tecator's spectra. Defaults chosen on them alone may fit noise-level
sets and fail plain ones, so this script draws targets whose answer is known, 500 training and 500 test
series of T steps (default 50) of standard-normal x, each target plus noise of 5% of its standard deviation:

- ``mean``: the mean of x over the sequence;
- ``ewma``: Σ_t 0.9^(T−1−t)·x_t, an exponentially weighted sum ending at the last step;
- ``last``: x at the last step;
- ``lagdiff``: x_{T−5} − x_{T−10}, two steps at fixed places from the end;
- ``weights``: Σ_t w_t·x_t with standard-normal w, a linear functional spread over every step;
- ``product``: x_{T−1}·x_{T−2}, a nonlinear target that a linear model cannot read.

Printed side by side in one run: rnnfast's regressor (its defaults and only ``random_state=0``, or each
``--variant``), ridge (``RidgeCV`` on the flattened series) and 1-NN Euclidean (both scikit-learn, 1 thread),
R² on the test series and rnnfast's fit seconds.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/simple_targets.py [--T 50] \\
        [--variant "{'window_offset': 0}"] [--threads 2]
"""
from __future__ import annotations

import argparse
import ast
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_quality as mq  # noqa: E402

import rnnfast  # noqa: E402
from rnnfast.bench import blas_kernels  # noqa: E402
from rnnfast.estimators import SequenceRegressor  # noqa: E402

N_TRAIN, N_TEST = 500, 500
TARGETS = ("mean", "ewma", "last", "lagdiff", "weights", "product")


def task(name: str, T: int) -> tuple[np.ndarray, np.ndarray]:
    """X (n, T, 1) and targets y (n,) of N_TRAIN + N_TEST series (the same x for every target)."""
    rng = np.random.default_rng(0)
    n = N_TRAIN + N_TEST
    X = rng.standard_normal((n, T, 1))                                              # (n, T, 1)
    x = X[:, :, 0]                                                                  # (n, T)
    w = rng.standard_normal(T)                                                      # (T,) for "weights"
    y = {"mean": lambda: x.mean(axis=1),
         "ewma": lambda: x @ 0.9 ** np.arange(T - 1, -1, -1),
         "last": lambda: x[:, -1],
         "lagdiff": lambda: x[:, -5] - x[:, -10],
         "weights": lambda: x @ w,
         "product": lambda: x[:, -1] * x[:, -2]}[name]()                            # (n,)
    noise = np.random.default_rng(1 + TARGETS.index(name)).standard_normal(n)
    return X, y + 0.05 * y.std() * noise


def baselines(X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Ridge (alpha by leave-one-out CV) and 1-NN Euclidean on the flattened series, R² on the test part."""
    from sklearn.linear_model import RidgeCV
    from sklearn.neighbors import KNeighborsRegressor
    flat = X.reshape(len(X), -1)
    tr, te = slice(0, N_TRAIN), slice(N_TRAIN, None)
    with mq.single_threaded_baselines():
        ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(flat[tr], y[tr]).score(flat[te], y[te])
        knn = KNeighborsRegressor(n_neighbors=1).fit(flat[tr], y[tr]).score(flat[te], y[te])
    return {"ridge": ridge, "1-NN ED": knn}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=50, help="steps a series (default 50)")
    ap.add_argument("--targets", default=",".join(TARGETS), help="comma-separated, of " + ", ".join(TARGETS))
    ap.add_argument("--variant", action="append", type=ast.literal_eval, default=None,
                    help="estimator overrides as a Python dict, repeatable (default: the defaults alone)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    names = [t.strip() for t in args.targets.split(",")]
    unknown = [t for t in names if t not in TARGETS]
    if unknown:
        ap.error(f"--targets: unknown {unknown}; expected some of {list(TARGETS)}")
    variants = args.variant or [{}]
    rnnfast.set_num_threads(args.threads)
    info = mq.machine_info(args.threads)
    print(f"# CPU: {info['cpu']}; BLAS: {'; '.join(blas_kernels())}; {args.threads} threads for rnnfast, "
          f"1 for the baselines; T = {args.T}, {N_TRAIN} training and {N_TEST} test series")
    cols = [("defaults" if not v else str(v)) for v in variants]
    print("| target | " + " | ".join(f"rnnfast {c} (fit s)" for c in cols) + " | ridge | 1-NN ED |")
    print("|---|" + "---|" * (len(cols) + 2))
    for name in names:
        X, y = task(name, args.T)
        cells = []
        for v in variants:
            t0 = time.perf_counter()
            model = SequenceRegressor(**{"random_state": 0, **v}).fit(X[:N_TRAIN], y[:N_TRAIN])
            seconds = time.perf_counter() - t0
            cells.append(f"{model.score(X[N_TRAIN:], y[N_TRAIN:]):.3f} ({seconds:.1f})")
        base = baselines(X, y)
        print(f"| {name} | " + " | ".join(cells) + f" | {base['ridge']:.3f} | {base['1-NN ED']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
