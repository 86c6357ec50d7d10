r"""scikit-learn estimators that train rnnfast's recurrent layers: ``fit`` / ``predict`` without a loop.

Model (one network, two heads of the same shape)::

    h_t = Elman, LSTM or GRU stack (``cell``, ``hidden_size``, ``num_layers``) over x_1 … x_T  (T, B, D·H)
          (D = 2 with ``bidirectional``: forward and reverse states side by side)
    z_t = h_t Wᵀ + b                                                                        (T, B, O)

``output="last"`` (many-to-one) reads z at each sequence's own last step T_b; ``output="sequence"``
(many-to-many) reads z_t at every step t ≤ T_b. Objective, a mean over the N scored entries of a batch:

    SequenceClassifier:  L = 1/N Σ −log softmax(z)_y          (O = n_classes; binary is 2-class softmax)
    SequenceRegressor:   L = 1/N Σ ½ (z − y)²                 (O = n_outputs; N counts every output)

Training: mini-batches (reshuffled every epoch), BPTT through the whole sequence (``tbptt=None``) or
truncated BPTT every ``tbptt`` steps (the state flows on, the gradient stops at chunk boundaries and each
chunk makes one update), optional gradient clipping to ``clip_norm``, then one optimizer step. All
randomness (initial weights, dropout, shuffling, the validation split) comes from ``random_state``, so
the same seed gives the same model bit for bit on the same thread count.

Data-parallel training (``comm``, see :mod:`rnnfast.distributed`): run the same script on every rank
(``mpiexec -n 4 python train.py``) with the same X, y and an int ``random_state``. The ranks draw the same
batches and each runs its shard of every mini-batch; each update averages the ranks' gradients (weighted
by their scored entries, one Allreduce), then clips and steps, so the model equals single-process
training on the same seed up to float rounding (with ``dropout`` > 0 the ranks draw different masks, so
it is a different sample of the same training). Rank 0's initial weights are broadcast, every rank ends
with the same model; only rank 0 shows progress and writes ``save``. ``comm=None`` (the default) trains
in this process alone and never imports mpi4py; ``comm="auto"`` uses MPI when an MPI launcher started
more than one rank and mpi4py is installed, and is the same as None otherwise.

Validation (``validation_fraction`` > 0): after every epoch, the loss L and the score (accuracy for the
classifier, R² for the regressor) on the held-out sequences go into ``history_``. Early stopping
(``n_iter_no_change``) watches the validation loss (the training loss when there is no validation set):
it stops after that many epochs without a new minimum and restores the weights of the best epoch
(``best_epoch_``, counted from 1).

Inputs ``X``: a float array (n_samples, T, n_features); a 2-D array (n_samples, T) of univariate
sequences; or a list of (T_i, n_features) / (T_i,) arrays of different lengths, padded internally and
run with the kernels' ``lengths``. ``n_features_in_`` is the number of features per step, except for a
2-D X, where it is X's number of columns (T), as scikit-learn's contract for tables requires (predict
then needs the same number of columns; a 3-D X of one feature may have any T).

scikit-learn is optional: with it installed the estimators inherit its ``BaseEstimator`` and mixins (and
pass ``check_estimator``); without it a minimal base class provides the same ``get_params``,
``set_params`` and ``repr``.
"""
from __future__ import annotations

import inspect
import math
import numbers
import os
import sys
import warnings
from collections import defaultdict
from typing import Any, Iterator, NamedTuple, Optional, cast

import numpy as np

from . import distributed, optim, persist
from ._module import resolve_dtype
from ._threads import thread_limit
from ._validation import check_choice, check_int, check_nonnegative, check_positive, check_real
from .clip import clip_grad_norm_
from .layers import GRU, LSTM, Elman, Linear
from .losses import cross_entropy, mse_loss
from .sequences import pad_sequences
from .tbptt import chunk_bounds

__all__ = ["SequenceClassifier", "SequenceRegressor"]


# ------------------------------------------------------------------------- scikit-learn, or a stand-in
class _MinimalBaseEstimator:
    """``get_params`` / ``set_params`` / ``repr`` exactly as ``sklearn.base.BaseEstimator`` defines them."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        init = cls.__init__
        if init is object.__init__:
            return []
        params = [p for p in inspect.signature(init).parameters.values()
                  if p.name != "self" and p.kind != p.VAR_KEYWORD]
        if any(p.kind == p.VAR_POSITIONAL for p in params):
            raise RuntimeError(f"{cls.__name__} must list its parameters in __init__ (no *args)")
        return sorted(p.name for p in params)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self._get_param_names():
            value = getattr(self, key)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((key + "__" + k, v) for k, v in value.get_params().items())
            out[key] = value
        return out

    def set_params(self, **params: Any) -> "_MinimalBaseEstimator":
        if not params:
            return self
        valid = self.get_params(deep=True)
        nested: dict[str, dict[str, Any]] = defaultdict(dict)
        for key, value in params.items():
            key, delim, sub_key = key.partition("__")
            if key not in valid:
                raise ValueError(f"Invalid parameter {key!r} for estimator {self}. "
                                 f"Valid parameters are: {self._get_param_names()!r}.")
            if delim:
                nested[key][sub_key] = value
            else:
                setattr(self, key, value)
                valid[key] = value
        for key, sub_params in nested.items():
            valid[key].set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        # sklearn prints only the parameters that differ from their defaults
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params(deep=False).items()
                   if not (k in defaults and _same_value(v, defaults[k]))]
        return f"{type(self).__name__}({', '.join(changed)})"


def _same_value(a: Any, b: Any) -> bool:
    try:
        return bool(a is b or (type(a) is type(b) and a == b))
    except (TypeError, ValueError):
        return False


class _MinimalClassifierMixin:
    _estimator_type = "classifier"


class _MinimalRegressorMixin:
    _estimator_type = "regressor"


class _MinimalNotFittedError(ValueError, AttributeError):
    """Raised by predict before fit (scikit-learn's ``NotFittedError`` when it is installed)."""


class _MinimalDataConversionWarning(UserWarning):
    """Warns that y was reshaped (scikit-learn's ``DataConversionWarning`` when it is installed)."""


try:  # scikit-learn is optional: importing rnnfast must never need it
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import DataConversionWarning, NotFittedError
except ImportError:  # pragma: no cover - exercised by a subprocess test without sklearn
    BaseEstimator = _MinimalBaseEstimator                   # type: ignore[misc,assignment]
    ClassifierMixin = _MinimalClassifierMixin               # type: ignore[misc,assignment]
    RegressorMixin = _MinimalRegressorMixin                 # type: ignore[misc,assignment]
    NotFittedError = _MinimalNotFittedError                 # type: ignore[misc,assignment]
    DataConversionWarning = _MinimalDataConversionWarning   # type: ignore[misc,assignment]


# ----------------------------------------------------------------------------------------- input checks
_CELLS = ("elman", "lstm", "gru")
_NONLINEARITIES = ("tanh", "relu", "sigmoid")
_OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
_OUTPUTS = ("last", "sequence")
_SGD_MOMENTUM = 0.9          # optimizer="sgd" uses momentum, as scikit-learn's MLP does
_PREDICT_CHUNK = 1024        # sequences per forward at inference (bounds the memory of predict)


class _Sequences(NamedTuple):
    """Checked input: time-major x (T, n, I), lengths (n,) or None (all T), and the layout it came in."""

    x: np.ndarray
    lengths: Optional[np.ndarray]
    layout: str                 # "2d" (n, T) univariate, "3d" (n, T, I), or "ragged" (list of (T_i, I))

    @property
    def n(self) -> int:
        return self.x.shape[1]

    @property
    def T(self) -> int:
        return self.x.shape[0]

    def ends(self) -> np.ndarray:
        """Each sequence's last step (n,)."""
        return (np.full(self.n, self.T, np.int64) if self.lengths is None else self.lengths) - 1

    def mask(self) -> np.ndarray:
        """1 at the steps each sequence really has, 0 on the padding (T, n)."""
        if self.lengths is None:
            return np.ones((self.T, self.n))
        return (np.arange(self.T)[:, None] < self.lengths[None, :]).astype(np.float64)


def _is_sparse(X: Any) -> bool:
    return hasattr(X, "tocsr") and hasattr(X, "nnz")     # scipy.sparse matrices and arrays


def _finite_or_raise(arr: np.ndarray, name: str) -> None:
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        what = "NaN" if np.isnan(arr).any() else f"infinity or a value too large for {arr.dtype!r}"
        raise ValueError(f"Input {name} contains {what}.")


def _real_array(value: Any, name: str) -> np.ndarray:
    """``value`` as an array of real numbers; complex → ValueError, objects → converted to float64."""
    arr = np.asarray(value)
    if arr.dtype.kind == "c":
        raise ValueError(f"Complex data not supported in {name}")
    if arr.dtype.kind == "O":
        arr = np.asarray(arr, dtype=np.float64)          # TypeError for entries that are not numbers
    if arr.dtype.kind not in "biuf":
        arr = np.asarray(arr, dtype=np.float64)          # ValueError for strings that are not numbers
    return arr


def _check_X(X: Any, dtype: np.dtype) -> _Sequences:
    """X (n, T), (n, T, I) or a list of (T_i, I) / (T_i,) arrays → time-major x of ``dtype`` (+ lengths)."""
    if X is None:
        raise ValueError("X is None; expected sequences (n_samples, T[, n_features]) or a list of arrays")
    if _is_sparse(X):
        raise TypeError("Sparse data is not supported: sequences must be dense; convert with X.toarray()")
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError("Found array with 0 sample(s) (shape=(0,)) while a minimum of 1 is required.")
        try:
            arr = np.asarray(X)
        except ValueError:                               # sequences of different lengths
            return _check_ragged(X, dtype)
        if arr.dtype.kind == "O" and arr.ndim == 1 and len(X) and np.ndim(X[0]) >= 1:
            return _check_ragged(X, dtype)
        X = arr
    arr = _real_array(X, "X")
    if arr.ndim == 1:
        raise ValueError(f"Expected a 2-D X (n_samples, T) or 3-D X (n_samples, T, n_features), got a 1-D "
                         f"array of shape {arr.shape}. Reshape your data either using X.reshape(1, -1) if "
                         f"it is a single sequence or X.reshape(-1, 1) if it holds sequences of one step.")
    if arr.ndim not in (2, 3):
        raise ValueError(f"X must be 2-D (n_samples, T) or 3-D (n_samples, T, n_features), got shape "
                         f"{arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={arr.shape}) while a minimum of 1 is required.")
    if arr.shape[1] == 0 or (arr.ndim == 3 and arr.shape[2] == 0):
        raise ValueError(f"Found array with 0 feature(s) (shape={arr.shape}) while a minimum of 1 is "
                         f"required. (X needs at least one timestep and one feature.)")
    arr = arr.astype(dtype, copy=False)
    _finite_or_raise(arr, "X")
    if arr.ndim == 2:
        return _Sequences(np.ascontiguousarray(arr.T[:, :, None]), None, "2d")    # (T, n, 1)
    return _Sequences(np.ascontiguousarray(arr.transpose(1, 0, 2)), None, "3d")   # (T, n, I)


def _check_ragged(X: Any, dtype: np.dtype) -> _Sequences:
    seqs = []
    for i, s in enumerate(X):
        arr = _real_array(s, f"X[{i}]")
        if arr.ndim == 1:
            arr = arr[:, None]                           # (T_i,) → one feature per step
        if arr.ndim != 2:
            raise ValueError(f"X[{i}] must be a (T_i, n_features) or (T_i,) array, got shape {arr.shape}")
        if arr.shape[1] == 0:
            raise ValueError(f"Found array with 0 feature(s) (shape={arr.shape}) while a minimum of 1 is "
                             f"required (X[{i}]).")
        arr = arr.astype(dtype, copy=False)
        _finite_or_raise(arr, f"X[{i}]")
        seqs.append(arr)
    x, lengths = pad_sequences(seqs, dtype=dtype)        # (T_max, n, I), (n,)
    return _Sequences(np.ascontiguousarray(x), lengths.astype(np.int64), "ragged")


def _check_target_rows(y: Any, seqs: _Sequences, per_step: bool, name: str = "y") -> list | np.ndarray:
    """y's per-sample items, checked against X's sample count (and, per step, against the lengths)."""
    if y is None:
        raise ValueError("requires y to be passed, but the target y is None")
    if _is_sparse(y):
        raise TypeError("Sparse targets are not supported: convert y with y.toarray()")
    items: list | np.ndarray
    if isinstance(y, (list, tuple)) and per_step:
        items = list(y)                                  # one array per sequence, each checked for length
    else:
        arr = np.asarray(y)
        if arr.ndim == 0:
            raise ValueError(f"{name} must be an array with one entry per sequence, got a scalar")
        items = arr
    if len(items) != seqs.n:
        raise ValueError(f"Found input variables with inconsistent numbers of samples: [{seqs.n}, {len(items)}]")
    return items


def _per_step_targets(items: Any, seqs: _Sequences, name: str = "y") -> np.ndarray:
    """Per-step targets as one time-major array (T, n, *k), zero on the padding."""
    lengths = np.full(seqs.n, seqs.T) if seqs.lengths is None else seqs.lengths
    if isinstance(items, np.ndarray) and items.dtype.kind != "O":
        if items.ndim < 2 or items.shape[1] != seqs.T:
            raise ValueError(f"with output='sequence', {name} must have shape (n_samples, T[, k]) = "
                             f"({seqs.n}, {seqs.T}, ...), got {items.shape}")
        return np.ascontiguousarray(np.swapaxes(items, 0, 1))
    rows = [np.asarray(r) for r in items]
    for i, (r, n_i) in enumerate(zip(rows, lengths)):
        if r.ndim < 1 or r.shape[0] != n_i:
            raise ValueError(f"with output='sequence', {name}[{i}] must have one target per step of X[{i}] "
                             f"({n_i}), got shape {r.shape}")
        if r.shape[1:] != rows[0].shape[1:]:
            raise ValueError(f"{name}[{i}] has shape {r.shape}, but {name}[0] has {rows[0].shape}: "
                             f"every sequence needs the same number of outputs")
    dtype = object if any(r.dtype.kind == "O" for r in rows) else np.result_type(*rows)
    fill = rows[0].ravel()[0] if rows[0].size else 0     # padding: any valid target (masked out)
    out = np.full((seqs.T, seqs.n) + rows[0].shape[1:], fill, dtype=dtype)
    for b, r in enumerate(rows):
        out[:r.shape[0], b] = r
    return out


def _check_labels(y: np.ndarray) -> None:
    """Classification targets must be discrete: scikit-learn's ``Unknown label type`` otherwise."""
    if y.dtype.kind == "c":
        raise ValueError("Complex data not supported in y")
    if y.dtype.kind == "f":
        _finite_or_raise(y, "y")
        if np.any(y != np.round(y)):
            raise ValueError("Unknown label type: continuous. Maybe you are trying to fit a classifier, which "
                             "expects discrete classes on a regression problem with continuous values.")
    if y.dtype.kind == "O":
        types = {type(v) for v in y.ravel()}
        if not (all(issubclass(t, str) for t in types) or all(issubclass(t, numbers.Integral) for t in types)):
            raise ValueError(f"Unknown label type: object labels must all be strings or all integers, got "
                             f"{sorted(t.__name__ for t in types)}")


def _column_or_1d(y: np.ndarray) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected. Please change the shape "
                      "of y to (n_samples, ), for example using ravel().", DataConversionWarning, stacklevel=4)
        return y.ravel()
    if y.ndim != 1:
        raise ValueError(f"y should be a 1d array, got an array of shape {y.shape} instead.")
    return y


# --------------------------------------------------------------------------------------------- metrics
def _accuracy(y_true: np.ndarray, y_pred: np.ndarray, weights: Optional[np.ndarray] = None) -> float:
    hits = (np.asarray(y_true) == np.asarray(y_pred)).astype(np.float64)
    return float(np.average(hits, weights=weights))


def _r2(y_true: np.ndarray, y_pred: np.ndarray, weights: Optional[np.ndarray] = None) -> float:
    """R² per output, averaged uniformly over outputs: ``sklearn.metrics.r2_score`` (force_finite)."""
    yt = np.asarray(y_true, np.float64).reshape(len(y_true), -1)       # (N, k)
    yp = np.asarray(y_pred, np.float64).reshape(len(y_pred), -1)
    w = np.ones(len(yt)) if weights is None else np.asarray(weights, np.float64)
    w = w[:, None]
    ss_res = np.sum(w * (yt - yp) ** 2, axis=0)
    mean = np.sum(w * yt, axis=0) / np.sum(w)
    ss_tot = np.sum(w * (yt - mean) ** 2, axis=0)
    score = np.ones(yt.shape[1])
    ok = ss_tot != 0
    score[ok] = 1 - ss_res[ok] / ss_tot[ok]
    score[~ok & (ss_res != 0)] = 0.0                     # constant y, imperfect prediction
    return float(score.mean())


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ------------------------------------------------------------------------------------------- utilities
def _make_rng(random_state: Any) -> np.random.Generator:
    """A Generator from None (fresh entropy), an int, a RandomState or a Generator."""
    if random_state is None or isinstance(random_state, (numbers.Integral, np.random.SeedSequence)):
        if isinstance(random_state, bool):
            raise TypeError("random_state must be None, an int or a numpy random generator, got a bool")
        if isinstance(random_state, numbers.Integral) and random_state < 0:
            raise ValueError(f"random_state must be >= 0, got {random_state}")
        # numbers.Integral is int or np.integer here; typeshed does not relate int to the numbers ABCs
        return np.random.default_rng(cast("int | np.integer | np.random.SeedSequence | None", random_state))
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31 - 1))
    raise TypeError(f"random_state must be None, an int or a numpy random generator, got "
                    f"{type(random_state).__name__}")


def _num_threads(n: Optional[int]) -> thread_limit:
    """Run the kernels called from this thread on ``n`` threads inside the block (None: keep the setting)."""
    return thread_limit(n)


class _Progress:
    """Per-epoch progress on stderr: a tqdm bar when tqdm is installed, a plain line otherwise."""

    def __init__(self, enabled: bool, total: int, desc: str):
        self.bar = None
        self.enabled = enabled
        self.total, self.desc = total, desc
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, desc=desc, unit="epoch", file=sys.stderr, leave=True)

    def update(self, epoch: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()}, refresh=False)
            self.bar.update(1)
        else:
            parts = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            print(f"{self.desc}: epoch {epoch}/{self.total}: {parts}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _last_features(out: np.ndarray, last: np.ndarray, rows: np.ndarray, H: int) -> np.ndarray:
    """Each sequence's summary for a many-to-one head, (m, D·H): h at its last step; for a bidirectional
    layer, the forward half at the last step and the reverse half at step 0 (where it has read it all)."""
    if out.shape[2] == H:
        return out[last, rows]
    return np.concatenate([out[last, rows, :H], out[0, rows, H:]], axis=1)


def _last_features_backward(dout: np.ndarray, dfeat: np.ndarray, last: np.ndarray, rows: np.ndarray,
                            H: int) -> None:
    """Scatter the gradient of ``_last_features`` into dout (T, B, D·H) (zero elsewhere)."""
    if dout.shape[2] == H:
        dout[last, rows] = dfeat
    else:
        dout[last, rows, :H] = dfeat[:, :H]
        dout[0, rows, H:] = dfeat[:, H:]


class _Diverged(Exception):
    """A mini-batch produced a non-finite loss or gradient (raised before its update)."""

    def __init__(self, loss: float):
        super().__init__(loss)
        self.loss = loss


# --------------------------------------------------------------------------------------- the estimator
class _SequenceEstimator(BaseEstimator):
    """Training and inference shared by both estimators; subclasses define the head and the loss."""

    # What save keeps beside the weights: learned attributes as JSON, and as arrays (see rnnfast.persist)
    _persisted_attrs = ("n_features_in_", "input_size_", "fit_layout_", "n_outputs_", "history_", "n_epochs_",
                        "best_epoch_", "_output", "_arch", "_y_has_output_axis")
    _persisted_arrays = ("classes_",)

    def __init__(self, *, cell: str = "lstm", hidden_size: int = 32, num_layers: int = 1,
                 nonlinearity: str = "tanh", dropout: float = 0.0, bidirectional: bool = False,
                 output: str = "last",
                 optimizer: str = "adam", lr: float = 0.01, weight_decay: float = 0.0, batch_size: int = 32,
                 max_epochs: int = 100, clip_norm: Optional[float] = 1.0, tbptt: Optional[int] = None,
                 validation_fraction: Optional[float] = 0.1, n_iter_no_change: Optional[int] = 10,
                 random_state: Any = None, n_threads: Optional[int] = None, verbose: int = 0,
                 dtype: str = "float32", comm: Any = None):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.nonlinearity = nonlinearity
        self.dropout = dropout
        self.bidirectional = bidirectional
        self.output = output
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.clip_norm = clip_norm
        self.tbptt = tbptt
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.n_threads = n_threads
        self.verbose = verbose
        self.dtype = dtype
        self.comm = comm

    # ---- scikit-learn metadata --------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True         # (n_samples, T, n_features)
        return tags

    # ---- parameters -------------------------------------------------------------------------------
    def _checked_params(self) -> dict[str, Any]:
        """The constructor parameters, validated (each error names its parameter); they stay unchanged."""
        p = dict(
            cell=check_choice("cell", self.cell, _CELLS),
            hidden_size=check_int("hidden_size", self.hidden_size, 1),
            num_layers=check_int("num_layers", self.num_layers, 1),
            nonlinearity=check_choice("nonlinearity", self.nonlinearity, _NONLINEARITIES),
            dropout=check_real("dropout", self.dropout, 0.0, 1.0, high_inclusive=False),
            bidirectional=check_choice("bidirectional", self.bidirectional, (False, True)),
            output=check_choice("output", self.output, _OUTPUTS),
            optimizer=check_choice("optimizer", self.optimizer, _OPTIMIZERS),
            lr=check_positive("lr", self.lr),
            weight_decay=check_nonnegative("weight_decay", self.weight_decay),
            batch_size=check_int("batch_size", self.batch_size, 1),
            max_epochs=check_int("max_epochs", self.max_epochs, 1),
            clip_norm=None if self.clip_norm is None else check_positive("clip_norm", self.clip_norm),
            tbptt=None if self.tbptt is None else check_int("tbptt", self.tbptt, 1),
            validation_fraction=(0.0 if self.validation_fraction is None else
                                 check_real("validation_fraction", self.validation_fraction, 0.0, 1.0,
                                            high_inclusive=False)),
            n_iter_no_change=(None if self.n_iter_no_change is None
                              else check_int("n_iter_no_change", self.n_iter_no_change, 1)),
            n_threads=None if self.n_threads is None else check_int("n_threads", self.n_threads, 1),
            verbose=check_int("verbose", int(self.verbose) if isinstance(self.verbose, bool) else self.verbose, 0),
        )
        if p["bidirectional"] and p["tbptt"] is not None:
            raise ValueError("tbptt: truncated BPTT needs a unidirectional cell (the reverse direction reads "
                             "each whole sequence); use tbptt=None with bidirectional=True")
        try:
            p["dtype"] = resolve_dtype(self.dtype)
        except ValueError as exc:
            raise ValueError(f"dtype: {exc}") from None
        return p

    # ---- subclass hooks ---------------------------------------------------------------------------
    def _encode_targets(self, y: Any, seqs: _Sequences) -> np.ndarray:
        """Store what the targets teach (classes_, n_outputs_) and return them encoded:
        "last": (n,) or (n, k); "sequence": (T, n) or (T, n, k), time-major."""
        raise NotImplementedError

    def _loss(self, z: np.ndarray, target: np.ndarray, mask: Optional[np.ndarray]) -> tuple[float, np.ndarray]:
        raise NotImplementedError

    def _metric(self, z: np.ndarray, target: np.ndarray, weights: Optional[np.ndarray]) -> float:
        raise NotImplementedError

    # ---- fit --------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> "_SequenceEstimator":
        """Train on sequences ``X`` with targets ``y`` (see the class docstring); returns self."""
        p = self._checked_params()
        seqs = _check_X(X, p["dtype"])
        self.__dict__.pop("best_epoch_", None)           # from an earlier fit with early stopping
        self._output = p["output"]
        self._arch = {k: p[k] for k in ("cell", "hidden_size", "num_layers", "nonlinearity", "dropout",
                                        "bidirectional")}
        self._arch["dtype"] = p["dtype"].name
        targets = self._encode_targets(y, seqs)
        comm = self._comm()                              # None: this process trains alone
        rng = _make_rng(self.random_state)
        if comm is not None:
            data = [seqs.x, targets] + ([] if seqs.lengths is None else [seqs.lengths])
            distributed.check_same_on_all_ranks(comm, data, "X and y")
            if not isinstance(self.random_state, numbers.Integral):
                rng = np.random.default_rng(distributed.shared_seed(comm, rng))   # the same batches everywhere
        n = seqs.n

        self.n_features_in_ = seqs.T if seqs.layout == "2d" else seqs.x.shape[2]
        self.input_size_ = seqs.x.shape[2]
        self.fit_layout_ = seqs.layout
        self._build(rng, rank=0 if comm is None else comm.rank)

        # validation split (held out for the whole fit)
        order = rng.permutation(n)
        n_val = math.ceil(p["validation_fraction"] * n) if p["validation_fraction"] > 0 else 0
        if n_val and n - n_val < 1:
            raise ValueError(f"validation_fraction={self.validation_fraction} leaves no training sequence: "
                             f"n_samples={n}; pass more samples or validation_fraction=None")
        val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
        params = self.rnn_.parameters() + self.head_.parameters()
        # data-parallel: rank 0's initial weights everywhere, and the gradients in one flat buffer
        dp = None if comm is None else distributed.DataParallel(params, comm)
        opt = self._make_optimizer(p)

        history: dict[str, list[float]] = {"loss": []}
        if n_val:
            history.update(val_loss=[], val_score=[])
        early = p["n_iter_no_change"] is not None
        best, best_epoch, best_state, since_best = math.inf, 0, None, 0
        progress = _Progress(p["verbose"] > 0 and (comm is None or comm.rank == 0), p["max_epochs"],
                             f"{type(self).__name__}[{p['cell']}]")
        try:
            with _num_threads(p["n_threads"]):
                for epoch in range(1, p["max_epochs"] + 1):
                    self.rnn_.train()
                    perm = train_idx[rng.permutation(len(train_idx))]
                    total, count = 0.0, 0.0
                    for batch, start in enumerate(range(0, len(perm), p["batch_size"]), 1):
                        idx = perm[start:start + p["batch_size"]]
                        try:
                            s, c = self._train_batch(seqs, targets, idx, opt, params, p, dp)
                        except _Diverged as exc:
                            self.rnn_.eval()
                            raise FloatingPointError(
                                f"training diverged in epoch {epoch}, batch {batch}: the loss is {exc.loss} or a "
                                f"gradient is not finite; the model keeps the weights from before that update. "
                                f"Lower lr (now {self.lr}) or set clip_norm") from None
                        total, count = total + s, count + c
                    history["loss"].append(total / max(count, 1.0))
                    monitored = history["loss"][-1]
                    if n_val:
                        val_loss, val_score = self._evaluate(seqs, targets, val_idx)
                        history["val_loss"].append(val_loss)
                        history["val_score"].append(val_score)
                        monitored = val_loss
                    progress.update(epoch, {k: v[-1] for k, v in history.items()})
                    if not math.isfinite(history["loss"][-1]):
                        raise FloatingPointError(
                            f"the training loss diverged to {history['loss'][-1]} in epoch {epoch}; "
                            f"lower lr (now {self.lr}) or set clip_norm")
                    if early:
                        if monitored < best:
                            best, best_epoch, since_best = monitored, epoch, 0
                            best_state = (self.rnn_.state_dict(), self.head_.state_dict())
                        else:
                            since_best += 1
                            if since_best >= p["n_iter_no_change"]:
                                break
        finally:
            progress.close()
        if early and best_state is not None:
            self.rnn_.load_state_dict(best_state[0])
            self.head_.load_state_dict(best_state[1])
            self.best_epoch_ = best_epoch
        self.rnn_.eval()
        self.history_ = history
        self.n_epochs_ = len(history["loss"])
        return self

    def _comm(self) -> Optional[distributed.Communicator]:
        """The communicator of data-parallel training; None when this process trains alone."""
        if self.comm is None:
            return None
        try:
            comm = distributed.get_comm(self.comm)
        except ValueError as exc:
            raise ValueError(f"comm: {exc}") from None
        return comm if comm.size > 1 else None

    def _build(self, rng: np.random.Generator, rank: int = 0) -> None:
        """Fresh layers with seeds drawn from ``rng`` (initial weights and dropout masks)."""
        seed_rnn, seed_head = (int(v) for v in rng.integers(0, 2**63 - 1, size=2))
        if rank:    # data-parallel: rank 0's weights are broadcast; each rank draws its own dropout masks
            seed_rnn = int(np.random.SeedSequence([seed_rnn, rank]).generate_state(1, np.uint64)[0] >> 1)
        self.rnn_, self.head_ = self._make_layers(seed_rnn, seed_head)

    def _make_layers(self, seed_rnn: Optional[int] = None, seed_head: Optional[int] = None) -> tuple[Any, Linear]:
        """The recurrent stack and the Linear head that ``_arch`` (fixed at fit) describes."""
        a = self._arch
        common = dict(dropout=a["dropout"], bidirectional=a.get("bidirectional", False), dtype=a["dtype"],
                      seed=seed_rnn)
        rnn: Elman | LSTM | GRU
        if a["cell"] == "elman":
            rnn = Elman(self.input_size_, a["hidden_size"], a["num_layers"], nonlinearity=a["nonlinearity"],
                        **common)
        else:
            rnn = (LSTM if a["cell"] == "lstm" else GRU)(self.input_size_, a["hidden_size"], a["num_layers"],
                                                         **common)
        width = a["hidden_size"] * (2 if common["bidirectional"] else 1)
        return rnn, Linear(width, self._n_head_outputs(), dtype=a["dtype"], seed=seed_head)

    # ---- weights, pickling ------------------------------------------------------------------------
    def _get_weights(self) -> dict[str, np.ndarray]:
        """Copies of every weight, named ``rnn.<torch name>`` and ``head.weight`` / ``head.bias``."""
        return {**{f"rnn.{k}": v for k, v in self.rnn_.state_dict().items()},
                **{f"head.{k}": v for k, v in self.head_.state_dict().items()}}

    def _weight_spec(self) -> Iterator[tuple[str, tuple[int, ...], str]]:
        """(name, shape, dtype) of every weight ``_set_weights`` takes, from ``_arch``, ``input_size_`` and the
        head's outputs, without building a layer: ``load`` checks a file against it before allocating."""
        a = self._arch
        G = {"elman": Elman._gate_count, "lstm": LSTM._gate_count, "gru": GRU._gate_count}[a["cell"]]
        H, L = check_int("hidden_size", a["hidden_size"], 1), check_int("num_layers", a["num_layers"], 1)
        D = 2 if a.get("bidirectional", False) else 1
        dtype = resolve_dtype(a["dtype"]).name
        for k in range(L):
            width = check_int("input_size_", self.input_size_, 1) if k == 0 else D * H
            for suffix in ("", "_reverse")[:D]:
                yield f"rnn.weight_ih_l{k}{suffix}", (G * H, width), dtype
                yield f"rnn.weight_hh_l{k}{suffix}", (G * H, H), dtype
                yield f"rnn.bias_ih_l{k}{suffix}", (G * H,), dtype
                yield f"rnn.bias_hh_l{k}{suffix}", (G * H,), dtype
        O = self._n_head_outputs()
        yield "head.weight", (O, D * H), dtype
        yield "head.bias", (O,), dtype

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Rebuild ``rnn_`` / ``head_`` from ``_arch`` with these weights; names, shapes and dtypes must match."""
        rnn, head = self._make_layers()
        own = {**{f"rnn.{k}": v for k, v in rnn.named_parameters()},
               **{f"head.{k}": v for k, v in head.named_parameters()}}
        missing, unexpected = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
        if missing or unexpected:
            raise ValueError(f"weights do not match the model: missing {missing}, unexpected {unexpected}")
        for name, param in own.items():
            arr = np.asarray(weights[name])
            if arr.shape != param.shape or arr.dtype != param.dtype:
                raise ValueError(f"weight {name!r} has shape {arr.shape} and dtype {arr.dtype}, expected "
                                 f"{param.shape} and {param.dtype}")
            param.data[...] = arr
        self.rnn_, self.head_ = rnn.eval(), head

    def __getstate__(self) -> dict[str, Any]:
        # Pickle the weights, not the layer objects with their scratch buffers and caches.
        getstate = getattr(super(), "__getstate__", None)
        state = dict(getstate() if getstate is not None else self.__dict__)
        if "rnn_" in state:
            state["_weights"] = self._get_weights()
            del state["rnn_"], state["head_"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        weights = state.pop("_weights", None)
        setstate = getattr(super(), "__setstate__", None)
        if setstate is not None:
            setstate(state)
        else:
            self.__dict__.update(state)
        if weights is not None:
            self._set_weights(weights)

    def _make_optimizer(self, p: dict[str, Any]) -> optim.Optimizer:
        params = self.rnn_.parameters() + self.head_.parameters()
        lr, wd = p["lr"], p["weight_decay"]
        if p["optimizer"] == "adam":
            return optim.Adam(params, lr=lr, weight_decay=wd)
        if p["optimizer"] == "adamw":
            return optim.AdamW(params, lr=lr, weight_decay=wd)
        if p["optimizer"] == "sgd":
            return optim.SGD(params, lr=lr, momentum=_SGD_MOMENTUM, weight_decay=wd)
        return optim.RMSprop(params, lr=lr, weight_decay=wd)

    def _train_batch(self, seqs: _Sequences, targets: np.ndarray, idx: np.ndarray, opt: optim.Optimizer,
                     params: list, p: dict[str, Any],
                     dp: Optional[distributed.DataParallel] = None) -> tuple[float, float]:
        """One mini-batch: one update per truncation chunk (one chunk = full BPTT).

        Data-parallel (``dp``): ``idx`` is the whole batch, which fixes the chunks and the updates; this
        rank runs its shard of it (possibly none of a chunk's sequences) and each update first averages
        the ranks' gradients. Returns (Σ loss·entries, entries) over the chunks of the whole batch, for
        the epoch's mean training loss.
        """
        lengths = None if seqs.lengths is None else seqs.lengths[idx]             # (B,)
        T = seqs.T if lengths is None else int(lengths.max())
        batch_ends = np.full(len(idx), T, np.int64) if lengths is None else lengths   # (B,) steps per sequence
        bounds = chunk_bounds(T, p["tbptt"] if p["tbptt"] is not None else max(T, 1))
        idx, ends = (idx, batch_ends) if dp is None else (dp.shard(idx), dp.shard(batch_ends))  # this rank's
        x = seqs.x[:T, idx]                                                        # (T, B, I)
        tgt = targets[idx] if self._output == "last" else targets[:T, idx]
        L, B, H = p["num_layers"] * (2 if p["bidirectional"] else 1), len(idx), p["hidden_size"]
        lstm = p["cell"] == "lstm"
        h = np.zeros((L, B, H), p["dtype"])                                        # state carried over chunks
        c = np.zeros((L, B, H), p["dtype"]) if lstm else None
        loss_sum, entries = 0.0, 0.0
        for s, e in bounds:
            running = batch_ends > s
            if not running.any():
                break
            # the batch updates after a chunk that scores something: every step, or a sequence's last step
            update = self._output == "sequence" or bool(np.any(running & (batch_ends <= e)))
            rows = np.flatnonzero(ends > s)                                        # sequences still running
            value, n_scored = 0.0, 0.0
            if rows.size:
                all_rows = rows.size == B
                lens = np.minimum(ends[rows] - s, e - s)                          # (B',) steps in this chunk
                xc = x[s:e] if all_rows else x[s:e, rows]                          # (k, B', I)
                state = (h, c) if lstm else h
                if not all_rows:
                    if lstm:
                        assert c is not None                                       # c is set exactly for an LSTM
                        state = (h[:, rows], c[:, rows])
                    else:
                        state = h[:, rows]
                out, new_state = self.rnn_(xc, state, lengths=None if lengths is None else lens)
                if self._output == "last":
                    done = np.flatnonzero(ends[rows] <= e)                         # sequences ending here
                    if done.size:
                        hid = _last_features(out, lens[done] - 1, done, H)         # (m, D·H)
                        z = self.head_(hid)                                        # (m, O)
                        value, dz = self._loss(z, tgt[rows[done]], None)
                        dout = np.zeros(out.shape, out.dtype)                      # (k, B', D·H) zero but there
                        _last_features_backward(dout, self.head_.backward(dz), lens[done] - 1, done, H)
                        n_scored = float(done.size)
                else:
                    z = self.head_(out)                                            # (k, B', O)
                    t_chunk = tgt[s:e] if all_rows else tgt[s:e, rows]
                    mask = (np.arange(e - s)[:, None] < lens[None, :]) if lengths is not None else None
                    value, dz = self._loss(z, t_chunk, mask)
                    dout = self.head_.backward(dz)                                 # (k, B', H)
                    n_scored = float(lens.sum())
                    done = rows
                if done.size:
                    self.rnn_.backward(dout, None)                                 # ∂L/∂(state after chunk) = 0
            if update:
                if dp is not None:                       # the whole batch's mean gradient, on every rank
                    value, n_scored = dp.average_gradients_(value, n_scored)
                if not (math.isfinite(value) and all(np.isfinite(q.grad).all() for q in params)):
                    raise _Diverged(value)               # before the update: the weights stay good
                if p["clip_norm"] is not None:
                    clip_grad_norm_(params, p["clip_norm"])
                opt.step()
                opt.zero_grad()
                loss_sum += value * n_scored
                entries += n_scored
            if rows.size:
                hn, cn = new_state if lstm else (new_state, None)
                if all_rows:
                    h, c = hn, cn
                else:
                    h[:, rows] = hn
                    if lstm:
                        assert c is not None
                        c[:, rows] = cn
        return loss_sum, entries

    # ---- inference --------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "rnn_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                                 f"appropriate arguments before using this estimator.")

    def _check_X_predict(self, X: Any) -> _Sequences:
        self._check_fitted()
        seqs = _check_X(X, self.rnn_.dtype)
        name = type(self).__name__
        if seqs.layout == "2d" and self.fit_layout_ == "2d" and seqs.T != self.n_features_in_:
            raise ValueError(f"X has {seqs.T} features, but {name} is expecting {self.n_features_in_} "
                             f"features as input.")
        if seqs.x.shape[2] != self.input_size_:
            got = "a 2-D X (univariate sequences)" if seqs.layout == "2d" else f"X with {seqs.x.shape[2]}"
            raise ValueError(f"{got} features per step, but {name} is expecting {self.input_size_} "
                             f"features per step as input.")
        return seqs

    def _forward(self, seqs: _Sequences, idx: Optional[np.ndarray] = None) -> np.ndarray:
        """Head outputs z in float64, in eval mode: "last" (n, O), "sequence" (T, n, O) (0 on padding)."""
        idx = np.arange(seqs.n) if idx is None else idx
        self.rnn_.eval()
        W = self.head_.weight.data.astype(np.float64)                               # (O, H)
        assert self.head_.bias is not None                                          # _make_layers: bias=True
        b = self.head_.bias.data.astype(np.float64)
        parts = []
        with _num_threads(self.n_threads):
            for start in range(0, len(idx), _PREDICT_CHUNK):
                rows = idx[start:start + _PREDICT_CHUNK]
                lengths = None if seqs.lengths is None else seqs.lengths[rows]
                T = seqs.T if lengths is None else int(lengths.max())
                out, _ = self.rnn_(seqs.x[:T, rows], lengths=lengths)             # (T, B, H)
                if self._output == "last":
                    ends = (lengths if lengths is not None else np.full(len(rows), T)) - 1
                    feats = _last_features(out, ends, np.arange(len(rows)), self._arch["hidden_size"])
                    parts.append(feats.astype(np.float64) @ W.T + b)
                else:
                    z = out.astype(np.float64) @ W.T + b                                 # (T, B, O)
                    if T < seqs.T:
                        z = np.concatenate([z, np.zeros((seqs.T - T,) + z.shape[1:])])
                    parts.append(z)
        return np.concatenate(parts, axis=0 if self._output == "last" else 1)

    def _evaluate(self, seqs: _Sequences, targets: np.ndarray, idx: np.ndarray) -> tuple[float, float]:
        """(mean loss, score) on the sequences ``idx``, in eval mode."""
        z = self._forward(seqs, idx)
        if self._output == "last":
            t = targets[idx]
            value, _ = self._loss(z, t, None)
            return float(value), self._metric(z, t, None)
        sub = seqs.mask()[:, idx]                                                  # (T, n_val)
        t = targets[:, idx]
        value, _ = self._loss(z, t, sub)
        flat = sub.ravel() > 0
        return float(value), self._metric(z.reshape((-1,) + z.shape[2:])[flat],
                                          t.reshape((-1,) + t.shape[2:])[flat], None)

    def _per_sequence(self, values: np.ndarray, seqs: _Sequences):
        """Time-major per-step results (T, n, ...) in the user's layout: (n, T, ...) or a ragged list."""
        if seqs.lengths is None:
            return np.ascontiguousarray(np.swapaxes(values, 0, 1))
        return [np.ascontiguousarray(values[:n_b, b]) for b, n_b in enumerate(seqs.lengths)]

    def save(self, path: Any) -> str:
        """Write the fitted model to ``path`` (.npz of weights + JSON metadata); see :func:`rnnfast.load`.

        In data-parallel training (``comm``) only rank 0 writes; the other ranks return ``path`` at once.
        """
        from .persist import save

        comm = self._comm()
        if comm is not None and comm.rank != 0:
            return os.fspath(path)
        return save(self, path)


class SequenceClassifier(ClassifierMixin, _SequenceEstimator):
    """Recurrent sequence classifier: softmax over ``classes_`` and cross-entropy (binary included).

    ``output="last"``: one label per sequence, y (n_samples,). ``output="sequence"``: one label per step,
    y (n_samples, T) or a list of (T_i,) arrays; ``predict`` then returns (n_samples, T) labels (a list for
    ragged X) and ``predict_proba`` (n_samples, T, n_classes).

    Parameters
    ----------
    cell : "lstm" | "gru" | "elman"
    hidden_size, num_layers : the recurrent stack's width and depth.
    nonlinearity : "tanh" | "relu" | "sigmoid", Elman only (ignored by the LSTM).
    dropout : between stacked layers during training.
    bidirectional : read each sequence both ways (needs ``tbptt=None``); with ``output="last"`` the head
        sees the forward state at the last step and the reverse state at the first.
    output : "last" (many-to-one) | "sequence" (many-to-many).
    optimizer : "adam" | "adamw" | "sgd" (momentum 0.9) | "rmsprop", with ``lr`` and ``weight_decay``.
    batch_size, max_epochs : sequences per update, passes over the training set.
    clip_norm : clip the gradient's total 2-norm to this before each update (None: no clipping).
    tbptt : truncated BPTT every ``tbptt`` steps (None: full BPTT).
    validation_fraction : fraction held out to record ``val_loss`` / ``val_score`` (accuracy) per epoch.
    n_iter_no_change : stop after this many epochs without a lower validation loss (training loss when
        there is no validation set) and restore the best weights; None trains ``max_epochs``.
    random_state : seeds weights, dropout, shuffling and the split (None: fresh each fit).
    n_threads : kernel threads during fit/predict (None: ``rnnfast.get_num_threads()``).
    verbose : 1 shows a progress bar on stderr.
    dtype : "float32" | "float64", the precision of the weights and of training.

    Attributes
    ----------
    classes_, n_features_in_, input_size_ (features per step), rnn_ (the Elman/LSTM layer), head_ (the
    Linear layer), history_ ({"loss", "val_loss", "val_score"} per epoch), n_epochs_, best_epoch_ (with
    early stopping).
    """

    def _n_head_outputs(self) -> int:
        return len(self.classes_)

    def _encode_targets(self, y: Any, seqs: _Sequences) -> np.ndarray:
        per_step = self._output == "sequence"
        items = _check_target_rows(y, seqs, per_step)
        if per_step:
            labels = _per_step_targets(items, seqs)                            # (T, n)
            if labels.ndim != 2:
                raise ValueError(f"with output='sequence', y must have one label per step, (n_samples, T), "
                                 f"got per-step targets of shape {labels.shape[2:]}")
            valid = seqs.mask().astype(bool)
            seen = labels[valid]
        else:
            labels = _column_or_1d(np.asarray(items))                          # (n,)
            seen = labels
        _check_labels(seen)
        self.classes_ = np.unique(seen)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes in the data, but the "
                             f"data contains only one class: {self.classes_[0]!r}")
        codes = np.searchsorted(self.classes_, labels.ravel()).reshape(labels.shape)
        if per_step:
            codes = np.where(valid, codes, 0)                                   # padding: any valid class
        return codes.astype(np.int64)

    def _loss(self, z, target, mask):
        return cross_entropy(z, target, mask=mask)

    def _metric(self, z, target, weights):
        return _accuracy(target, z.argmax(axis=-1), weights)

    def predict_proba(self, X: Any):
        """Class probabilities: (n_samples, n_classes); per step (n_samples, T, n_classes) with
        output="sequence" (a list of (T_i, n_classes) arrays for ragged X)."""
        seqs = self._check_X_predict(X)
        proba = _softmax(self._forward(seqs))
        return proba if self._output == "last" else self._per_sequence(proba, seqs)

    def predict(self, X: Any):
        """The most probable class: (n_samples,), or per step (n_samples, T) / a list for ragged X."""
        seqs = self._check_X_predict(X)
        labels = self.classes_[self._forward(seqs).argmax(axis=-1)]
        return labels if self._output == "last" else self._per_sequence(labels, seqs)

    def predict_log_proba(self, X: Any):
        """Logarithm of :meth:`predict_proba`."""
        proba = self.predict_proba(X)
        if isinstance(proba, list):
            return [np.log(p) for p in proba]
        return np.log(proba)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy: of the sequences' labels ("last") or of every step's label ("sequence")."""
        seqs = self._check_X_predict(X)
        pred = self.classes_[self._forward(seqs).argmax(axis=-1)]
        if self._output == "last":
            truth = _column_or_1d(np.asarray(_check_target_rows(y, seqs, False)))
            return _accuracy(truth, pred, sample_weight)
        truth = _per_step_targets(_check_target_rows(y, seqs, True), seqs)
        w = seqs.mask() * (1.0 if sample_weight is None else np.asarray(sample_weight, np.float64)[None, :])
        return _accuracy(truth.ravel(), pred.ravel(), w.ravel())


class SequenceRegressor(RegressorMixin, _SequenceEstimator):
    """Recurrent sequence regressor: a linear head and ½ squared error.

    ``output="last"``: y (n_samples,) or (n_samples, k). ``output="sequence"``: y (n_samples, T) or
    (n_samples, T, k), or a list of (T_i,) / (T_i, k) arrays; ``predict`` returns the same shape (a list
    for ragged X). Parameters as :class:`SequenceClassifier` (``val_score`` is R²). Targets are not
    rescaled: standardize them when they are far from unit scale.

    Attributes: n_outputs_, n_features_in_, input_size_, rnn_, head_, history_, n_epochs_, best_epoch_.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True         # y (n_samples, k)
        return tags

    def _n_head_outputs(self) -> int:
        return self.n_outputs_

    def _regression_targets(self, y: Any, seqs: _Sequences) -> np.ndarray:
        """Targets as float64, time-major for "sequence", with a trailing output axis: (n, k) / (T, n, k)."""
        per_step = self._output == "sequence"
        items = _check_target_rows(y, seqs, per_step)
        t = _per_step_targets(items, seqs) if per_step else np.asarray(items)
        if t.dtype.kind == "c":
            raise ValueError("Complex data not supported in y")
        t = np.asarray(t, dtype=np.float64)
        _finite_or_raise(t, "y")
        base = 2 if per_step else 1
        if t.ndim not in (base, base + 1):
            want = "(n_samples, T) or (n_samples, T, k)" if per_step else "(n_samples,) or (n_samples, k)"
            raise ValueError(f"y must have shape {want}, got per-sample targets of shape {t.shape[base:]}")
        return t if t.ndim == base + 1 else t[..., None]

    def _encode_targets(self, y: Any, seqs: _Sequences) -> np.ndarray:
        t = self._regression_targets(y, seqs)
        self._y_has_output_axis = self._has_output_axis(y)
        self.n_outputs_ = t.shape[-1]
        return t.astype(self._arch["dtype"])

    def _has_output_axis(self, y: Any) -> bool:
        """Whether the user's y has a trailing output axis, which predict then keeps."""
        if self._output == "sequence" and isinstance(y, (list, tuple)):
            return np.asarray(y[0]).ndim == 2
        return np.asarray(y).ndim == (2 if self._output == "last" else 3)

    def _loss(self, z, target, mask):
        return mse_loss(z, target.astype(z.dtype, copy=False), mask=mask)

    def _metric(self, z, target, weights):
        return _r2(target, z, weights)

    def _shape_output(self, z: np.ndarray) -> np.ndarray:
        return z if self._y_has_output_axis else z[..., 0]

    def predict(self, X: Any):
        """Predictions (float64) shaped like the y of fit: (n_samples[, k]) or (n_samples, T[, k])."""
        seqs = self._check_X_predict(X)
        z = self._shape_output(self._forward(seqs))
        return z if self._output == "last" else self._per_sequence(z, seqs)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R² (uniform average over outputs), over sequences ("last") or over every step ("sequence")."""
        seqs = self._check_X_predict(X)
        z = self._forward(seqs)
        t = self._regression_targets(y, seqs)
        if self._output == "last":
            return _r2(t, z, sample_weight)
        w = seqs.mask() * (1.0 if sample_weight is None else np.asarray(sample_weight, np.float64)[None, :])
        flat = w.ravel() > 0
        return _r2(t.reshape(-1, t.shape[-1])[flat], z.reshape(-1, z.shape[-1])[flat], w.ravel()[flat])


persist.register(SequenceClassifier, SequenceRegressor)
