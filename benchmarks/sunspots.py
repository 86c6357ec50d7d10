"""Yearly sunspots, 12 years ahead from 20-year windows: the encoder–decoder forecaster against AR(9) and
persistence, all measured in one run.

Data: statsmodels' bundled yearly sunspot numbers 1700–2008 (``statsmodels.datasets.sunspots``; the
``bench`` extra installs statsmodels). A window is 20 consecutive years of input and the 12 years after
them as targets. Training windows: every window whose 12 targets all lie in 1700–1978 (first target year
1720–1967, 248 windows). Test windows: every window whose 12 targets all lie in 1979–2008 (first target
year 1979–1997, 19 windows; their inputs reach back into the training years, which are observed). Windows
whose targets straddle 1978/1979 are in neither set. RMSE at horizon j (1…12) is over the 19 test windows'
j-th forecasts; "mean" is the mean of the 12 RMSEs.

Contenders:
- SequenceForecaster(horizon=12) with its defaults (``--seeds`` of them; the mean RMSE and each seed's),
- AR(9) with an intercept, fitted by least squares on every one-step pair whose target year is <= 1978,
  iterated 12 steps (each forecast fed back as an input),
- persistence: every horizon forecasts the last observed year.

``--validation`` runs the same comparison inside the training years: train on windows whose targets all
lie in 1700–1946, test on those whose targets all lie in 1947–1978 (21 windows). The forecaster's
defaults (batch_size=8 among them) were chosen on that split, never on 1979–2008.

Run: PYTHONPATH=. env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/sunspots.py [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

import rnnfast

WINDOW, HORIZON, AR_ORDER = 20, 12, 9
LAST_TRAIN_YEAR = 1978


def load() -> tuple[np.ndarray, np.ndarray]:
    from statsmodels.datasets import sunspots
    data = sunspots.load_pandas().data
    return data["YEAR"].to_numpy().astype(int), data["SUNACTIVITY"].to_numpy(np.float64)


def ar_and_split(validation: bool) -> tuple[int, int]:
    """(last training target year, last test target year)."""
    return (1946, 1978) if validation else (LAST_TRAIN_YEAR, 9999)


def windows(years: np.ndarray, values: np.ndarray):
    """X (n, 20), y (n, 12), and each window's first and last target year (n,)."""
    w = np.lib.stride_tricks.sliding_window_view(values, WINDOW + HORIZON)          # (n, 32)
    first = years[WINDOW:len(years) - HORIZON + 1]
    return w[:, :WINDOW], w[:, WINDOW:], first, first + HORIZON - 1


def ar_forecast(values: np.ndarray, years: np.ndarray, X: np.ndarray, last_train: int) -> np.ndarray:
    """AR(9) with intercept by least squares on the training years, iterated HORIZON steps from each window."""
    lagged = np.lib.stride_tricks.sliding_window_view(values, AR_ORDER + 1)          # (m, 10)
    target_year = years[AR_ORDER:]
    rows = lagged[target_year <= last_train]
    A = np.column_stack([np.ones(len(rows)), rows[:, :AR_ORDER]])                   # (m, 1 + 9)
    coef, *_ = np.linalg.lstsq(A, rows[:, AR_ORDER], rcond=None)
    hist = X[:, -AR_ORDER:].copy()                                                  # (n, 9)
    out = np.empty((len(X), HORIZON))
    for j in range(HORIZON):
        out[:, j] = coef[0] + hist @ coef[1:]
        hist = np.column_stack([hist[:, 1:], out[:, j]])
    return out


def rmse(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean((pred - truth) ** 2, axis=0))                            # (12,)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--validation", action="store_true",
                        help="train on targets up to 1946, test on 1947-1978 (the split the defaults were chosen on)")
    args = parser.parse_args()
    years, values = load()
    X, y, first, last = windows(years, values)
    last_train, last_test = ar_and_split(args.validation)
    train = last <= last_train
    test = (first > last_train) & (last <= last_test)
    print(f"sunspots {years[0]}-{years[-1]}: {train.sum()} training windows (targets {first[train].min()}-"
          f"{last[train].max()}), {test.sum()} test windows (targets {first[test].min()}-{last[test].max()})")
    print(f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f}, rnnfast threads {rnnfast.get_num_threads()}")
    results = {}
    for seed in args.seeds:
        f = rnnfast.SequenceForecaster(horizon=HORIZON, random_state=seed)
        start = time.perf_counter()
        f.fit(X[train], y[train])
        fit_time = time.perf_counter() - start
        results[f"forecaster seed {seed}"] = rmse(f.predict(X[test]), y[test])
        print(f"  forecaster seed {seed}: fit {fit_time:.1f} s ({f.n_updates_} updates, {f.n_iter_} epochs)")
    nets = np.array([v for k, v in results.items()])
    rows = {f"forecaster (mean of {len(args.seeds)} seeds)": nets.mean(axis=0)}
    rows.update(results)
    start = time.perf_counter()
    rows["AR(9) iterated"] = rmse(ar_forecast(values, years, X[test], last_train), y[test])
    print(f"  AR(9): fit and forecast {1e3 * (time.perf_counter() - start):.1f} ms")
    rows["persistence"] = rmse(np.repeat(X[test][:, -1:], HORIZON, axis=1), y[test])

    width = max(len(k) for k in rows)
    print(f"\nRMSE per horizon (years ahead), test windows with targets in {last_train + 1}-{last[test].max()}")
    print(" " * width + "".join(f"{j:>7d}" for j in range(1, HORIZON + 1)) + "    mean")
    for name, r in rows.items():
        print(f"{name:<{width}}" + "".join(f"{v:7.1f}" for v in r) + f"{r.mean():8.1f}")


if __name__ == "__main__":
    main()
