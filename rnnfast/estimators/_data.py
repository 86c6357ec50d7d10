"""Input checks, scaling, batching and the metrics of the sequence estimators.

X comes as a float array (n_samples, T, n_features), a 2-D array (n_samples, T) of univariate sequences, or
a list of (T_i, n_features) / (T_i,) arrays; every form becomes one time-major array x (T, n, I) and,
for ragged input, the lengths (n,). The time-delay windows are in ``_windows``.
"""
from __future__ import annotations

import numbers
from typing import Any, NamedTuple, Optional, cast

import numpy as np

from .. import _kernels
from .._threads import MAX_THREADS, get_num_threads
from .._validation import check_int
from ..sequences import pad_sequences
from ._compat import DataConversionWarning, warn_at_caller

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

    def real_steps(self, values: np.ndarray, weights: Optional[np.ndarray]) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """The entries of time-major ``values`` (T, n, ...) at the steps the sequences really have, (N, ...),
        and each one's weight (N,): its sequence's ``weights`` (None stays None)."""
        if self.lengths is None:                                                  # every step: no mask
            return (values.reshape((-1,) + values.shape[2:]),
                    None if weights is None else np.tile(weights, values.shape[0]))
        valid = self.mask().astype(bool)                                          # (T, n)
        w = None if weights is None else np.broadcast_to(weights[None, :], valid.shape)[valid]
        return values[valid], w

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
        try:
            arr = np.asarray(arr, dtype=np.float64)      # TypeError for entries that are not numbers
        except TypeError:
            if not hasattr(value, "to_numpy"):
                raise
            # pandas' nullable columns: a missing value (pd.NA) is NaN, which the finite check then names
            arr = np.asarray(value.to_numpy(dtype=np.float64, na_value=np.nan))
    if arr.dtype.kind not in "biuf":
        arr = np.asarray(arr, dtype=np.float64)          # ValueError for strings that are not numbers
    return arr


def _check_X(X: Any, dtype: np.dtype) -> _Sequences:
    """X (n, T), (n, T, I) or a list of (T_i, I) / (T_i,) arrays → time-major x of ``dtype`` (+ lengths)."""
    if X is None:
        raise ValueError("X is None; expected sequences (n_samples, T[, n_features]) or a list of arrays")
    if _is_sparse(X):
        raise TypeError("Sparse data is not supported: sequences must be dense; convert with X.toarray()")
    if type(X).__name__ == "DataFrame" and min(np.shape(X)) > 0 and np.ndim(X.iloc[0, 0]) > 0:
        raise TypeError("X is a DataFrame of series (sktime's nested format); pass a list of (T_i, n_features) "
                        "arrays, e.g. [np.column_stack([np.asarray(c) for c in row]) for row in X.values]")
    if getattr(X, "ndim", None) == 1 and getattr(X, "dtype", None) == object:
        X = list(X)                     # sequences held in an object array or a pandas Series: a list of them
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


def _feature_names(X: Any) -> Optional[np.ndarray]:
    """The column names of a DataFrame X as an object array (n_features,) when they are all strings, else
    None; TypeError when strings are mixed with other names: ``sklearn.utils.validation._get_feature_names``."""
    columns = getattr(X, "columns", None) if len(getattr(X, "shape", ())) == 2 else None
    if columns is None:
        return None
    names = np.asarray(list(columns), dtype=object)
    types = sorted({type(v).__qualname__ for v in names})
    if len(types) > 1 and "str" in types:
        raise TypeError(f"Feature names are only supported if all input features have string names, but your "
                        f"input has {types} as feature name / column name types. If you want feature names to be "
                        f"stored and validated, you must convert them all to strings, by using X.columns = "
                        f"X.columns.astype(str) for example. Otherwise you can remove feature / column names from "
                        f"your input data, or convert them all to a non-string data type.")
    return names if types == ["str"] else None


def _check_feature_names(est: Any, X: Any, reset: bool) -> None:
    """Set (``reset``: a fit that starts a model) or check ``est.feature_names_in_`` against X's column names
    (``_feature_names``), as ``sklearn.utils.validation._check_feature_names`` does: a fit on X without names
    of strings deletes a stale ``feature_names_in_``; other names than at fit are a ValueError; names on one
    side only, a UserWarning. Called before X's values are checked, as scikit-learn does: a DataFrame with
    other columns than at fit is named as such, not as the NaN or the shape it holds."""
    names = _feature_names(X)
    if reset:
        if names is not None:
            est.feature_names_in_ = names
        else:
            est.__dict__.pop("feature_names_in_", None)
        return
    fitted, name = getattr(est, "feature_names_in_", None), type(est).__name__
    if fitted is None and names is None:
        return
    if fitted is None or names is None:
        warn_at_caller(f"X has feature names, but {name} was fitted without feature names" if fitted is None else
                       f"X does not have valid feature names, but {name} was fitted with feature names", UserWarning)
        return
    if len(fitted) == len(names) and np.all(fitted == names):
        return
    unexpected, missing = sorted(set(names) - set(fitted)), sorted(set(fitted) - set(names))

    def listed(title: str, items: list) -> str:                # at most five names, as scikit-learn lists them
        return f"{title}:\n" + "".join(f"- {v}\n" for v in items[:5]) + ("- ...\n" if len(items) > 5 else "")

    message = "The feature names should match those that were passed during fit.\n"
    message += listed("Feature names unseen at fit time", unexpected) if unexpected else ""
    message += listed("Feature names seen at fit time, yet now missing", missing) if missing else ""
    if not unexpected and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    raise ValueError(message)


def _check_ragged(X: Any, dtype: np.dtype) -> _Sequences:
    seqs: list[np.ndarray] = []
    for i, s in enumerate(X):
        arr = _real_array(s, f"X[{i}]")
        if arr.ndim == 1:
            arr = arr[:, None]                           # (T_i,) → one feature per step
        if arr.ndim != 2:
            raise ValueError(f"X[{i}] must be a (T_i, n_features) or (T_i,) array, got shape {arr.shape}")
        if arr.shape[1] == 0:
            raise ValueError(f"Found array with 0 feature(s) (shape={arr.shape}) while a minimum of 1 is "
                             f"required (X[{i}]).")
        if seqs and arr.shape[1] != seqs[0].shape[1]:
            raise ValueError(f"X[{i}] has {arr.shape[1]} features per step, but X[0] has {seqs[0].shape[1]}: "
                             f"every sequence needs the same features")
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
        warn_at_caller("A column-vector y was passed when a 1d array was expected. Please change the shape "
                       "of y to (n_samples, ), for example using ravel().", DataConversionWarning)
        return y.ravel()
    if y.ndim != 1:
        raise ValueError(f"y should be a 1d array, got an array of shape {y.shape} instead.")
    return y


# --------------------------------------------------------------------------------------------- metrics
def _accuracy(y_true: np.ndarray, y_pred: np.ndarray, weights: Optional[np.ndarray] = None) -> float:
    hits = (np.asarray(y_true) == np.asarray(y_pred)).astype(np.float64)
    return float(np.average(hits, weights=weights))


def _check_n_threads(n_threads: Any) -> Optional[int]:
    """An estimator's ``n_threads``: None, or an int in [1, MAX_THREADS] (what ``thread_limit`` takes)."""
    return None if n_threads is None else check_int("n_threads", n_threads, 1, MAX_THREADS)


def _checked_sample_weight(sample_weight: Any, n: int, all_zero: bool = False) -> Optional[np.ndarray]:
    """``sample_weight`` as (n,) float64 weights, finite and >= 0, not all 0 unless ``all_zero`` (a
    ``partial_fit`` batch, which then makes no update), or None."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape (n_samples,) = ({n},), got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight must be finite and >= 0")
    if not w.any() and not all_zero:
        raise ValueError("sample_weight is zero for every sample")
    return w


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


def _jittered(x: np.ndarray, sigma: float, rng: np.random.Generator, out: Optional[np.ndarray] = None
              ) -> np.ndarray:
    """x + σ·z, z standard normal, into ``out`` (a fresh array by default; x itself, C-contiguous, to jitter in
    place).

    The kernels draw z (csrc/rnnfast_random.h: about 4x faster than NumPy's float32 draw on one thread) from one seed
    that ``rng`` gives, so ``random_state`` fixes the noise, every thread count draws the same numbers, and
    ``rng`` advances by one number a call whatever the size of x."""
    seed = int(rng.integers(0, 2**64, dtype=np.uint64))
    contiguous = np.ascontiguousarray(x)
    if out is None:                                     # a copy made here is jittered in place
        out = np.empty_like(x) if contiguous is x else contiguous
    elif out.shape != x.shape or out.dtype != x.dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {x.dtype} array of shape {x.shape}")
    _kernels.add_normal(out.reshape(-1), contiguous.reshape(-1), sigma, seed, get_num_threads())
    return out




# ------------------------------------------------------------------------------------------ batching
_BUCKET_POOL = 32            # bucket=True sorts pools of this many batches by length


def _epoch_batches(order: np.ndarray, batches: int, lengths: Optional[np.ndarray], bucket: bool,
                   rng: np.random.Generator) -> list[np.ndarray]:
    """An epoch's mini-batches: ``order`` (the shuffled training indices) cut into ``batches`` batches of
    equal size (± 1), so no small remainder makes an update of its own. With ``bucket`` and unequal
    ``lengths`` (n,), each pool of ``_BUCKET_POOL`` batches is first sorted by length (stable: ties keep
    their shuffled order) and the batches are then shuffled, so that a batch holds sequences of similar
    length and costs about its real steps (as Keras' ``bucket_by_sequence_length``)."""
    if not bucket or lengths is None or lengths.min() == lengths.max():
        return np.array_split(order, batches)
    pool = _BUCKET_POOL * -(-len(order) // batches)                          # sequences per pool
    keys = lengths[order]
    order = np.concatenate([order[i:i + pool][np.argsort(keys[i:i + pool], kind="stable")]
                            for i in range(0, len(order), pool)])
    parts = np.array_split(order, batches)
    return [parts[i] for i in rng.permutation(batches)]


# ------------------------------------------------------------------------------ scaling and the window
def _mean_and_scale(values: np.ndarray, weights: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and standard deviation of the rows of ``values`` (N, k), each (k,); a constant column
    gets scale 1, as scikit-learn's StandardScaler gives it."""
    mean = np.average(values, axis=0, weights=weights)
    scale = np.sqrt(np.average((values - mean) ** 2, axis=0, weights=weights))
    scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0)] = 1.0
    return mean, scale


# A feature whose standardized values have a fourth moment above this (a normal 3, a Laplace 6, an
# exponential 9, a lognormal with σ = 1 114) has tails that would squeeze its bulk into a sliver near 0 after
# standardization (counts, prices, spikes); such a feature passes through asinh first. For a two-valued
# feature (one-hot) this changes nothing: any increasing map of it standardizes to the same two values.
_HEAVY_TAIL_KURTOSIS = 20.0


def _weighted_median(values: np.ndarray, weights: Optional[np.ndarray]) -> float:
    """The median of ``values`` (N,), each counted ``weights`` times (None: once)."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(np.ones(len(values)) if weights is None else weights[order])
    return float(values[order][np.searchsorted(cum, 0.5 * cum[-1])])


def _asinh_compression(values: np.ndarray, weights: Optional[np.ndarray]
                       ) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """Center and scale (k,) of asinh((x − center) / scale) for the heavy-tailed columns of ``values`` (N, k):
    center the median, scale the median of the nonzero |x − center| (the bulk's own spread); scale 0 marks a
    column left as it is. (None, None) when no column is heavy-tailed."""
    mean, std = _mean_and_scale(values, weights)
    z2 = (values - mean) / std                                                              # (N, k)
    z2 *= z2                                                # z², then z⁴ in place (power 4 calls pow: 4x slower)
    kurtosis = np.average(np.square(z2, out=z2), axis=0, weights=weights)                  # (k,)
    center, scale = np.zeros(values.shape[1]), np.zeros(values.shape[1])
    for j in np.flatnonzero(kurtosis > _HEAVY_TAIL_KURTOSIS):
        center[j] = _weighted_median(values[:, j], weights)
        dev = np.abs(values[:, j] - center[j])
        nonzero = dev > 0
        scale[j] = _weighted_median(dev[nonzero], None if weights is None else weights[nonzero])
    return (center, scale) if scale.any() else (None, None)


def _asinh_compressed(x: np.ndarray, center: Any, scale: Any) -> np.ndarray:
    """x (…, k) with each column of nonzero ``scale`` replaced by asinh((x − center) / scale); a copy."""
    x = np.array(x, copy=True)
    cols = np.flatnonzero(np.asarray(scale))
    x[..., cols] = np.arcsinh((x[..., cols] - np.asarray(center)[cols]) / np.asarray(scale)[cols])
    return x


class _InputScaling(NamedTuple):
    """What ``scale`` learns: asinh compression of the heavy-tailed features (None: none is), then the mean
    and standard deviation (I,) of every feature."""
    asinh_center: Optional[np.ndarray]
    asinh_scale: Optional[np.ndarray]
    mean: np.ndarray
    scale: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Steps (…, I) as the network reads them, in x's dtype."""
        if self.asinh_scale is not None:
            x = _asinh_compressed(x, self.asinh_center, self.asinh_scale)
        return _standardized(x, self.mean, self.scale)


def _input_scaling(seqs: _Sequences, weights: Optional[np.ndarray] = None, heavy_tails: bool = True
                   ) -> _InputScaling:
    """Per-feature statistics (I,) over every real step of the training sequences, each step weighted by its
    sequence's weight (so a weight of 2 counts as the sequence given twice): asinh compression of the
    heavy-tailed features (with ``heavy_tails``), then the mean and standard deviation."""
    values, w = seqs.real_steps(seqs.x.astype(np.float64, copy=False), weights)                # (N, I)
    center, scale = _asinh_compression(values, w) if heavy_tails else (None, None)
    if scale is not None:
        values = _asinh_compressed(values, center, scale)
    return _InputScaling(center, scale, *_mean_and_scale(values, w))


def _standardized(x: np.ndarray, mean: Any, scale: Any) -> np.ndarray:
    """(x − mean) / scale, in x's dtype (the statistics are cast to it)."""
    mean, scale = np.asarray(mean), np.asarray(scale)
    return ((x - mean.astype(x.dtype)) / scale.astype(x.dtype)).astype(x.dtype, copy=False)


def _scaled(seqs: _Sequences, scaling: _InputScaling) -> _Sequences:
    """The real steps transformed by ``scaling``; the padding stays 0."""
    x = scaling(seqs.x)
    if seqs.lengths is not None:
        x *= seqs.mask()[:, :, None].astype(x.dtype)
    return _Sequences(x, seqs.lengths, seqs.layout)


# instance_norm="auto" appends each sequence's own standardization when the training sequences do not share
# a scale: their standard deviations span more than this factor (90th over 10th percentile, per feature), or
# their means differ by more than their typical own standard deviation. Only sequences of at least
# _SCALE_STEPS real steps count: the moments of a few steps of noise spread that much by chance alone.
_SCALE_SPAN = 10.0
_SCALE_STEPS = 10


def _own_moments(seqs: _Sequences) -> tuple[np.ndarray, np.ndarray]:
    """Each sequence's mean and standard deviation of each feature over its real steps, (n, I) each, in
    float64. A sequence whose feature is constant to within its dtype's rounding gets the deviation 1 (its
    standardized values are then 0), so rounding noise is never blown up to unit size."""
    x = seqs.x.astype(np.float64)                                            # (T, n, I)
    mask = None if seqs.lengths is None else seqs.mask()[:, :, None]         # (T, n, 1); None: every step real
    real = x if mask is None else x * mask                                    # (T, n, I) the padding 0
    steps = np.full((seqs.n, 1), float(seqs.T)) if mask is None else mask.sum(axis=0)   # (n, 1)
    mean = real.sum(axis=0) / steps                                           # (n, I)
    dev = x - mean                                                            # (T, n, I)
    if mask is not None:
        dev *= mask
    std = np.sqrt((dev ** 2).sum(axis=0) / steps)                             # (n, I)
    tiny = 100 * np.finfo(seqs.x.dtype).eps * np.abs(real).max(axis=0)        # (n, I)
    std[std <= tiny] = 1.0
    return mean, std


def _scales_differ(seqs: _Sequences, moments: Optional[tuple[np.ndarray, np.ndarray]] = None) -> bool:
    """instance_norm="auto"'s test on the training sequences (see ``_SCALE_SPAN``); ``moments``: their
    ``_own_moments``, when already computed."""
    long_enough = seqs.ends() + 1 >= _SCALE_STEPS                             # (n,)
    if not long_enough.any():
        return False
    mean, std = (m[long_enough] for m in (moments or _own_moments(seqs)))    # (n', I) each
    lo, mid, hi = np.percentile(std, [10, 50, 90], axis=0)                    # (I,) each
    return bool(np.any(hi > _SCALE_SPAN * lo) or np.any(mean.std(axis=0) > mid))


def _instance_normalized(seqs: _Sequences, moments: Optional[tuple[np.ndarray, np.ndarray]] = None
                         ) -> _Sequences:
    """The sequences with each one's own standardization appended to its features: x (T, n, I) →
    [x, (x − mean_b) / std_b] (T, n, 2I), the moments over sequence b's real steps (``_own_moments``, or
    ``moments`` when already computed); the padding stays 0."""
    mean, std = moments or _own_moments(seqs)                                 # (n, I) each
    own = _standardized(seqs.x, mean, std)                                   # (T, n, I)
    if seqs.lengths is not None:
        own *= seqs.mask()[:, :, None].astype(own.dtype)
    return _Sequences(np.concatenate([seqs.x, own], axis=2), seqs.lengths, seqs.layout)


def _with_differences(seqs: _Sequences) -> _Sequences:
    """The sequences with each feature's first difference appended: x (T, n, I) → [x, Δx] (T, n, 2I),

        Δx_0 = 0,   Δx_t = x_t − x_{t−1}   (t < T_b),   0 on the padding,

    so the network reads each step's slope beside its level (``derivative``)."""
    diff = np.zeros_like(seqs.x)                                             # (T, n, I)
    np.subtract(seqs.x[1:], seqs.x[:-1], out=diff[1:])
    if seqs.lengths is not None:
        diff *= seqs.mask()[:, :, None].astype(diff.dtype)                  # no step from a last value to 0
    return _Sequences(np.concatenate([seqs.x, diff], axis=2), seqs.lengths, seqs.layout)
