"""SequenceRegressor: a linear head and ½ squared error, one target vector per sequence or per step."""
from __future__ import annotations

import contextvars
import math
import sys
import threading
import warnings
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Optional

import numpy as np

from .._threads import blas_single_thread, get_num_threads
from .._validation import check_auto_or, check_choice, check_real
from ..losses import mse_loss
from ._base import _SequenceEstimator
from ._compat import ConvergenceWarning, RegressorMixin, warn_at_caller
from ._data import (_check_target_rows, _check_X, _finite_or_raise, _make_rng, _mean_and_scale, _per_step_targets,
                    _r2, _Sequences, _standardized)
from ._docs import ATTRIBUTES, NETWORK_WEIGHT_ATTRIBUTES, NETWORK_WEIGHT_PARAMETER, PARAMETERS, RIDGE_ATTRIBUTES, \
    RIDGE_PARAMETER
from ._linear import _MAX_FEATURES, _end_features, _ridge_loo, _ridge_steps
from ._training import _AUTO_MAX_MACS, _INTERRUPTED


class SequenceRegressor(RegressorMixin, _SequenceEstimator):
    __doc__ = f"""Recurrent sequence regressor: a linear head and ½ squared error.

    ``output="last"``: y (n_samples,) or (n_samples, k). ``output="sequence"``: y (n_samples, T) or
    (n_samples, T, k), or a list of (T_i,) / (T_i, k) arrays; ``predict`` returns the same shape (a list
    for ragged X). With ``scale=True`` the targets are standardized too (per output, with the training
    set's mean and standard deviation), and ``predict`` undoes it; ``loss_curve_`` is then in those units.

    Parameters
    ----------
{PARAMETERS}
{RIDGE_PARAMETER}
{NETWORK_WEIGHT_PARAMETER}

    Attributes
    ----------
    n_outputs_ : int
        Outputs per target (k; 1 for a 1-D y).
    target_mean_, target_scale_ : ndarray (n_outputs_,) or None
        The targets' standardization (None with ``scale=False``).
{RIDGE_ATTRIBUTES}
{NETWORK_WEIGHT_ATTRIBUTES}
{ATTRIBUTES}
    """

    def __init__(self, *, cell: str = "lstm", hidden_size: int = 128, num_layers: int = 1,
                 nonlinearity: str = "tanh", dropout: float = 0.0, bidirectional: bool = False,
                 output: str = "last", readout: str = "auto", window: Any = "auto", window_span: Any = "auto",
                 window_offset: Any = "random", random_crop: Any = "auto", predict_offsets: Any = "all",
                 predict_noise: Any = "auto", predict_crops: Any = "auto", scale: Any = True,
                 derivative: Any = "auto", instance_norm: Any = False, input_noise: float = 0.3,
                 mixup: Any = "auto", ridge: Any = "auto", network_weight: Any = "auto", optimizer: str = "adam",
                 lr: float = 0.003, lr_schedule: str = "cosine", weight_decay: float = 0.0, batch_size: Any = "auto",
                 bucket: bool = True, max_updates: Any = "auto",
                 max_epochs: Optional[int] = None, clip_norm: Optional[float] = 1.0, tbptt: Any = "auto",
                 early_stopping: bool = False, validation_fraction: Optional[float] = 0.1,
                 n_iter_no_change: Optional[int] = 10, tol: float = 1e-4, warm_start: bool = False,
                 random_state: Any = None, n_threads: Optional[int] = None, verbose: int = 0,
                 dtype: str = "float32", comm: Any = None):
        self._init_params(locals())

    # Coarser windows than the classifier's 32 steps: chosen by 3-fold cross-validation inside the training
    # splits (benchmarks/model_quality.py --group regression --cv 3), where 16 steps beat 32 on all three sets
    # for each of random_state 0, 1 and 2 (benchmarks/README.md, how the defaults were chosen).
    _window_steps = 16
    _auto_crop = 0.0
    # predict_noise="auto": predict averages at least 8 draws of the input noise (3-fold cross-validation
    # inside the training splits: mean R² rose with the draws, 0.248, 0.257, 0.265, 0.265 for 0, 4, 8, 16 at
    # seed 0, flat after 8, and each draw costs a forward pass; the classifier's accuracy was the same: 0)
    _auto_predict_noise = 8
    _auto_predict_crops = 0                  # it trains uncropped (random_crop="auto" is 0); not measured with crops
    # mixup="auto": none (3-fold cross-validation: mean R² 0.246, 0.225, 0.230 with α = 0.2 at seeds 0-2,
    # against 0.268, 0.258, 0.275 without)
    _auto_mixup = 0.0

    # ridge="auto": the linear part is kept where its leave-one-out R² on the training sequences is above this:
    # where it predicts sequences it did not see better than their mean, it is what network_weight shrinks the
    # network toward (0.5 before network_weight="auto"; 0 chosen with the contiguous probes by 3-fold
    # cross-validation inside the training splits of the twelve regression sets of benchmarks/model_quality.py:
    # mean R² 0.539, 0.539 at seeds 0, 1 against 0.534, 0.533 with 0.5; benchmarks/README.md)
    _AUTO_RIDGE_SCORE = 0.0
    # network_weight="auto": K probe fits, each on the training sequences but for a contiguous K-th, which it
    # predicts (3-fold cross-fitting: chosen over one probe holding out 20% by the cross-validation in
    # benchmarks/README.md)
    _PROBE_FOLDS = 3

    _persisted_attrs = _SequenceEstimator._persisted_attrs + ("n_outputs_", "target_mean_", "target_scale_",
                                                              "_y_has_output_axis", "ridge_", "ridge_coef_",
                                                              "ridge_intercept_", "ridge_alpha_", "ridge_steps_",
                                                              "ridge_score_", "ridge_residual_scale_",
                                                              "target_center_", "network_weight_")
    _persisted_float_arrays = _SequenceEstimator._persisted_float_arrays + (
        "target_mean_", "target_scale_", "ridge_coef_", "ridge_intercept_", "ridge_residual_scale_",
        "target_center_", "network_weight_")
    _earlier_defaults = {**_SequenceEstimator._earlier_defaults, "ridge": False, "network_weight": 1.0}
    _FIXED_WHEN_SET = {**_SequenceEstimator._FIXED_WHEN_SET, "ridge": "ridge_"}
    ridge_coef_: Optional[np.ndarray]
    ridge_intercept_: Optional[np.ndarray]
    ridge_residual_scale_: Optional[np.ndarray]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True         # y (n_samples, k)
        return tags

    def _fit(self, X: Any, y: Any, sample_weight: Any, partial: bool, classes: Any = None) -> "SequenceRegressor":
        runs: list[_ProbeRun] = []          # the probe fits started, held here: a failed fit resets __dict__
        self._fit_inputs = (X, y, sample_weight, runs)           # for the probe fits (_beside_training)
        try:
            return super()._fit(X, y, sample_weight, partial, classes)
        except FloatingPointError:                  # diverged: the model kept from before that update has its
            if hasattr(self, "model_"):             # weight too (a warm start's from before, else 1 or as set)
                self.network_weight_ = self._unprobed_weight(self._checked_params(),
                                                             getattr(self, "network_weight_", None))
            raise
        finally:
            self.__dict__.pop("_validation_ridge", None)          # (only the validation score read it)
            self.__dict__.pop("_fit_inputs", None)
            for probes in runs:             # (finished; or the fit failed or was interrupted: they stop)
                probes.cancel()

    def _beside_training(self, p: dict[str, Any], planned: float, partial: bool, continuing: bool) -> Optional[int]:
        """network_weight="auto" at a fit's start: the probe fits, the first of them beside the training."""
        if p["network_weight"] != "auto" or continuing or partial:
            return p["n_threads"]
        X, y, sample_weight, runs = self._fit_inputs
        probes = self._probe_run(X, y, sample_weight, p, planned)
        if probes is None:
            return p["n_threads"]
        runs.append(probes)
        probes.start()
        return probes.threads if probes.lanes > 1 else p["n_threads"]

    def _after_training(self, X: Any, y: Any, sample_weight: Any, p: dict[str, Any], partial: bool,
                        continuing: bool, planned: Optional[float]) -> None:
        """network_weight_: as set, from a warm start's model, or ("auto" at a fit's start) from probe fits."""
        self.network_weight_ = self._unprobed_weight(p, getattr(self, "network_weight_", None) if continuing
                                                     else None)
        runs = self._fit_inputs[3]          # (set by _fit, around this call)
        if not runs:
            return
        probes = runs[-1]
        if planned is None:                 # the user interrupted the training: no weight measured
            probes.cancel()
            return
        try:
            found = probes.finish()
        except KeyboardInterrupt:           # anywhere in the probes: the model is fitted, and stays so
            warn_at_caller(f"{_INTERRUPTED} in network_weight's probe fits: the model is fitted, with the "
                           f"network's whole part (network_weight_ 1).", ConvergenceWarning)
            return
        if found is not None:
            self.network_weight_ = self._weight_from(found, probes.helds, probes.weights, p)

    def _unprobed_weight(self, p: dict[str, Any], earlier: Optional[np.ndarray]) -> np.ndarray:
        """w (k,) without a probe: a float ``network_weight`` as given, else the weight from before (a warm
        start), else 1."""
        if p["network_weight"] != "auto" and self._output == "last":
            return np.full(self.n_outputs_, float(p["network_weight"]))
        return earlier if earlier is not None else np.ones(self.n_outputs_)

    def _probe_run(self, X: Any, y: Any, sample_weight: Any, p: dict[str, Any],
                   planned: float) -> Optional["_ProbeRun"]:
        """network_weight="auto": K = _PROBE_FOLDS probe fits, the same estimator with the model's linear part
        (``ridge_``) and the weight 1, each trained on the sequences but for a contiguous K-th (in the order
        given), which it predicts (``_weight_from`` then weighs the network's part by those out-of-fold
        predictions). None where no probe runs: fewer than 2K sequences, K + 1 times the work ``planned`` for the
        model's own training above the work limit of max_updates="auto", or a probe with nothing to train on.

        The K probes and the model's own training share the n threads (``n_threads``, else
        ``get_num_threads()``): min(K + 1, n) of them run at once, each on n // min(K + 1, n) kernel threads, the
        model's training in the calling thread, the probes in threads of their own (at 2 threads: the training
        beside the first probe, then the other two side by side: the training of a small set gains little from
        a second kernel thread, about half its time being Python). Each probe's seed and thread count fix its
        result."""
        if self._output != "last" or self.comm is not None:
            return None
        seqs = _check_X(X, np.dtype(np.float64))
        n, folds = seqs.n, self._PROBE_FOLDS
        if n < 2 * folds or (folds + 1) * planned > _AUTO_MAX_MACS:
            return None
        targets = np.asarray(_check_target_rows(y, seqs, per_step=False))          # (n[, k]), as fit read it
        sw = self._check_sample_weight(sample_weight, n)
        if sw is not None and not sw.any():
            return None
        lengths = np.full(n, seqs.T) if seqs.lengths is None else seqs.lengths
        rows = [seqs.x[:lengths[b], b] for b in range(n)]                          # (T_b, I) each, as given
        helds = np.array_split(np.arange(n), folds)                                 # (m,) each, contiguous
        for held in helds:
            kept = np.setdiff1d(np.arange(n), held)
            if (sw is not None and not sw[kept].any()) or (
                    p["early_stopping"] and math.ceil(p["validation_fraction"] * len(kept)) >= len(kept)):
                return None                 # (a probe with nothing to train on, or no room for its validation)
        threads = p["n_threads"] or get_num_threads()
        lanes = min(folds + 1, threads)                                            # fits at once, training included
        each = threads // lanes                                                     # kernel threads a fit (>= 1)
        params = {**self.get_params(deep=False), "ridge": bool(self.ridge_), "network_weight": 1.0,
                  "warm_start": False, "verbose": 0, "n_threads": each}
        rng = _make_rng(self.random_state)
        seeds = [int(rng.integers(2**31)) for _ in helds]

        def probe_fit(run: _ProbeRun, held: np.ndarray, seed: int) -> Optional[tuple[np.ndarray, np.ndarray]]:
            """(d, r) (m, k) on the ``held`` sequences, from a probe trained on the others; None if it diverged."""
            kept = np.setdiff1d(np.arange(n), held)
            probe = type(self)(**{**params, "random_state": seed})
            probe._stop = run.stop
            try:
                probe.fit([rows[b] for b in kept], targets[kept], sample_weight=None if sw is None else sw[kept])
            except FloatingPointError:      # no weight measured (the model's own fit did not diverge)
                return None
            if run.stop.is_set() or any(issubclass(c.category, ConvergenceWarning) and
                                        str(c.message).startswith(_INTERRUPTED) for c in run.caught):
                raise KeyboardInterrupt     # the probe kept its complete epochs; the user asked to stop
            z, steps = probe._predicted([rows[b] for b in held])                   # (m, k) the network's
            b = probe._baseline(steps)                                              # (m, k) in encoded units
            base = probe._unscaled(b)
            return (probe._unscaled(b + probe._network_part(z, b)) - base,
                    targets[held].reshape(len(held), -1).astype(np.float64) - base)

        return _ProbeRun(probe_fit, helds, seeds, sw, lanes, each)

    def _weight_from(self, found: list[tuple[np.ndarray, np.ndarray]], helds: list[np.ndarray],
                     sw: Optional[np.ndarray], p: dict[str, Any]) -> np.ndarray:
        """w (k,) = clip(Σ ω·r·d / Σ ω·d², 0, 1) per output over the probes' out-of-fold predictions ``found``
        ((d, r) (m, k) of each K-th ``helds``): r = y − b and d = ŷ − b, b the probe's linear part (or its
        training mean), ω the sample weights ``sw`` (None: 1); the least-squares weight of the network's part
        on sequences it did not train on."""
        n = sum(len(held) for held in helds)
        r = np.zeros((n, self.n_outputs_))                                          # (n, k) y − b
        d = np.zeros((n, self.n_outputs_))                                          # (n, k) ŷ − b, out of fold
        for held, (d_held, r_held) in zip(helds, found):
            d[held], r[held] = d_held, r_held
        omega = np.ones(n) if sw is None else sw                                   # (n,)
        num, den = omega @ (r * d), omega @ (d * d)                                 # (k,)
        w = np.clip(np.divide(num, den, out=np.zeros_like(num), where=den > 0), 0.0, 1.0)
        if p["verbose"] > 0:
            folds = len(helds)
            share = f"{n // folds}" + (f"–{n // folds + 1}" if n % folds else "")
            print(f"{type(self).__name__}[{p['cell']}]: network weight {np.array2string(w, precision=3)}, from "
                  f"{folds} probe fits, each predicting the {share} of the {n} sequences it did not train on",
                  file=sys.stderr, flush=True)
        return w

    def _checked_params(self) -> dict[str, Any]:
        p = super()._checked_params()
        p["network_weight"] = check_auto_or("network_weight", self.network_weight,
                                            lambda name, v: check_real(name, v, 0.0, 1.0))
        if p["network_weight"] not in ("auto", 1.0) and p["output"] != "last":
            raise ValueError(f"network_weight={self.network_weight!r}: the weight scales the network's part of one "
                             f"target per sequence; with output='sequence' use 'auto' or 1 (the network alone)")
        p["ridge"] = check_choice("ridge", self.ridge, ("auto", False, True))
        if p["ridge"] != "auto":
            p["ridge"] = bool(p["ridge"])                   # 0, 1 and numpy's bools as False and True
        if p["ridge"] is True and p["output"] != "last":
            raise ValueError("ridge=True: the linear part reads each sequence's end for its one target; use "
                             "ridge=False with output='sequence' (ridge='auto' is False there)")
        return p

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> "SequenceRegressor":
        """One epoch over (X, y) at the constant learning rate ``lr`` (scaled as ``batch_size="auto"`` says for
        this call's batch), from the current model if there is one.

        The first call fixes the model (scaling of inputs and targets, window, architecture, the linear part).
        No early stopping, and no probe fit: ``network_weight="auto"`` is 1 here.
        """
        return self._fit(X, y, sample_weight, partial=True)

    def _n_head_outputs(self) -> int:
        return self.n_outputs_

    def _regression_targets(self, y: Any, seqs: _Sequences) -> tuple[np.ndarray, bool]:
        """(targets as float64, time-major for "sequence", with a trailing output axis: (n, k) / (T, n, k);
        whether y itself had that axis, which predict then keeps)."""
        per_step = self._output == "sequence"
        items = _check_target_rows(y, seqs, per_step)
        t = _per_step_targets(items, seqs) if per_step else np.asarray(items)
        if t.dtype.kind == "c":
            raise ValueError("Complex data not supported in y")
        want = "(n_samples, T) or (n_samples, T, k)" if per_step else "(n_samples,) or (n_samples, k)"
        try:
            t = np.asarray(t, dtype=np.float64)
        except (TypeError, ValueError) as exc:       # an object array of rows, or of other objects
            raise ValueError(f"y must be numbers shaped {want}, as one array: {exc}") from None
        _finite_or_raise(t, "y")
        base = 2 if per_step else 1
        if t.ndim not in (base, base + 1):
            raise ValueError(f"y must have shape {want}, got per-sample targets of shape {t.shape[base:]}")
        return (t, True) if t.ndim == base + 1 else (t[..., None], False)

    def _encode_targets(self, y: Any, seqs: _Sequences, first: bool, classes: Any = None,
                        weights: Optional[np.ndarray] = None) -> np.ndarray:
        t, has_output_axis = self._regression_targets(y, seqs)
        if first:
            self._y_has_output_axis = has_output_axis
            self.n_outputs_ = t.shape[-1]
            self.target_mean_ = self.target_scale_ = None
            valid, w = (t, weights) if self._output == "last" else seqs.real_steps(t, weights)       # (N, k)
            if self.scale:
                self.target_mean_, self.target_scale_ = _mean_and_scale(valid, w)
            self.target_center_ = (np.zeros(self.n_outputs_) if self.scale else _mean_and_scale(valid, w)[0])
        elif t.shape[-1] != self.n_outputs_:
            raise ValueError(f"y has {t.shape[-1]} outputs, but the model was fitted with {self.n_outputs_}")
        if self.target_mean_ is not None:
            t = _standardized(t, self.target_mean_, self.target_scale_)
        return t.astype(self._arch["dtype"])

    def _network_targets(self, steps: _Sequences, targets: np.ndarray, weights: Optional[np.ndarray],
                         train_idx: np.ndarray, val_idx: np.ndarray, continuing: bool,
                         p: dict[str, Any]) -> np.ndarray:
        """With the linear part (``ridge_``): the ridge's residuals r = (y − f·β − c) / s of the encoded targets,
        the ridge fitted on the training rows ``train_idx`` when a model starts (``_linear``); else the targets."""
        self._validation_ridge = None
        if not continuing:
            self._fit_ridge(steps, targets, weights, train_idx, p)
        if not getattr(self, "ridge_", False):
            return targets
        with blas_single_thread():              # (numpy's BLAS pool stays asleep, as in the training loop)
            part = self._ridge_part(steps) / self.ridge_residual_scale_                 # (n, k) f·β + c, over s
        if len(val_idx):                # the validation score is the whole model's R²: _metric adds it back
            self._validation_ridge = part[val_idx]
        return (targets / self.ridge_residual_scale_ - part).astype(targets.dtype)

    def _fit_ridge(self, steps: _Sequences, targets: np.ndarray, weights: Optional[np.ndarray],
                   train_idx: np.ndarray, p: dict[str, Any]) -> None:
        """Fit the linear part on the training rows and keep it where ``ridge`` says (module ``_linear``)."""
        self.ridge_ = False
        self.ridge_coef_ = self.ridge_intercept_ = self.ridge_residual_scale_ = None
        self.ridge_alpha_ = self.ridge_score_ = self.ridge_steps_ = None
        if p["ridge"] is False or self._output != "last" or not len(train_idx):
            return
        longest = steps.T if steps.lengths is None else int(steps.lengths[train_idx].max())
        q = _ridge_steps(longest, self.input_size_)
        if q == 0:
            if p["ridge"] is True:
                raise ValueError(f"ridge=True: the linear part reads at most {_MAX_FEATURES} inputs, and a step "
                                 f"has {self.input_size_} features; use ridge='auto' (none there) or False")
            return
        t = targets[train_idx].astype(np.float64)                                        # (n_train, k)
        w = None if weights is None or not np.any(weights[train_idx]) else weights[train_idx]
        with blas_single_thread():
            f = _end_features(steps, q, self.input_size_, train_idx)                     # (n_train, q·I)
            coef, intercept, alpha, score = _ridge_loo(f, t, w)
            residuals = t - (f @ coef + intercept)
        self.ridge_score_, self.ridge_alpha_, self.ridge_steps_ = score, alpha, q
        if p["ridge"] == "auto" and not score > self._AUTO_RIDGE_SCORE:
            return
        self.ridge_, self.ridge_coef_, self.ridge_intercept_ = True, coef, intercept
        self.ridge_residual_scale_ = _mean_and_scale(residuals, w)[1]

    def _plan_note(self) -> str:
        if getattr(self, "ridge_score_", None) is None:
            return ""
        return (f"; linear part (ridge) {'kept' if self.ridge_ else 'left out'}: leave-one-out R² "
                f"{self.ridge_score_:.3f} on the last {self.ridge_steps_} steps")

    def _ridge_part(self, steps: _Sequences) -> np.ndarray:
        """f·β + c (n, k) of the prepared sequences, in the encoded targets' units."""
        assert self.ridge_steps_ is not None                       # (set with ridge_)
        f = _end_features(steps, int(self.ridge_steps_), self.input_size_)
        return f @ np.asarray(self.ridge_coef_) + np.asarray(self.ridge_intercept_)

    def _fixed_at_fit(self, p: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        if not hasattr(self, "ridge_"):         # a model saved before the linear part existed has none
            self.ridge_ = False
        return super()._fixed_at_fit(p)

    def _baseline(self, steps: _Sequences) -> np.ndarray:
        """b (n, k), what ``network_weight_`` shrinks the network's part toward, in the encoded targets' units:
        the linear part f·β + c of the prepared sequences ``steps``, or without one the training mean."""
        if getattr(self, "ridge_", False):
            with blas_single_thread():
                return self._ridge_part(steps)
        center = getattr(self, "target_center_", None)                 # (k,); a file from before: scaled, 0
        return np.broadcast_to(np.zeros(self.n_outputs_) if center is None else np.asarray(center),
                               (steps.n, self.n_outputs_))

    def _network_part(self, z: np.ndarray, base: np.ndarray) -> np.ndarray:
        """The network's part (n, k) of the encoded targets, from its outputs z and the baseline b
        (``_baseline``): s·z with the linear part (z: residuals over s), else z − b."""
        return np.asarray(self.ridge_residual_scale_) * z if getattr(self, "ridge_", False) else z - base

    def _combined(self, z: np.ndarray, steps: _Sequences) -> np.ndarray:
        """The network's outputs z (n, k) of the prepared sequences ``steps`` as the encoded targets: b + w·(the
        network's part), w its weight (``network_weight_``; output="sequence": z itself)."""
        if self._output != "last":
            return z
        w = getattr(self, "network_weight_", None)
        w = np.ones(z.shape[-1]) if w is None else np.asarray(w)                    # (k,)
        base = self._baseline(steps)                                                # (n, k)
        return base + w * self._network_part(z, base)

    def _loss(self, z, target, mask):
        return mse_loss(z, target.astype(z.dtype, copy=False), mask=mask)

    def _metric(self, z, target, weights):
        base = getattr(self, "_validation_ridge", None)      # the linear part of the validation rows, over s
        if base is not None and len(base) == len(z):
            return _r2(target + base, z + base, weights)
        return _r2(target, z, weights)

    def _unscaled(self, z: np.ndarray) -> np.ndarray:
        """Head outputs (…, k) in the targets' units (float64)."""
        if getattr(self, "target_mean_", None) is None:
            return z
        return z * np.asarray(self.target_scale_) + np.asarray(self.target_mean_)

    def _shape_output(self, z: np.ndarray) -> np.ndarray:
        return z if self._y_has_output_axis else z[..., 0]

    def predict(self, X: Any):
        """Predictions (float64) shaped like the y of fit: (n_samples[, k]) or (n_samples, T[, k])."""
        z, seqs = self._predicted(X)
        z = self._shape_output(self._unscaled(self._combined(z, seqs)))
        return z if self._output == "last" else self._per_sequence(z, seqs)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R² (uniform average over outputs), over sequences ("last") or over every step ("sequence")."""
        z, seqs = self._predicted(X)
        sample_weight = self._check_sample_weight(sample_weight, seqs.n)
        z = self._unscaled(self._combined(z, seqs))
        t = self._regression_targets(y, seqs)[0]
        if t.shape[-1] != z.shape[-1]:                  # as r2_score: never broadcast one output against several
            raise ValueError(f"y has {t.shape[-1]} outputs, but the model was fitted with {z.shape[-1]}")
        if self._output == "last":
            return _r2(t, z, sample_weight)
        w = seqs.mask() * (1.0 if sample_weight is None else np.asarray(sample_weight, np.float64)[None, :])
        flat = w.ravel() > 0
        return _r2(t.reshape(-1, t.shape[-1])[flat], z.reshape(-1, z.shape[-1])[flat], w.ravel()[flat])


class _ProbeRun:
    """network_weight="auto"'s probe fits (``SequenceRegressor._probe_run``) on ``lanes`` lanes, one of them the
    model's own training: ``start`` sets the first lanes − 1 probes going in threads of their own, beside that
    training; ``finish``, once it is done, runs the rest and returns each probe's out-of-fold (d, r), or None
    where one diverged; ``cancel`` stops the running probes at their next batch and joins them. On one lane
    ``finish`` runs them one after another in the calling thread, where a KeyboardInterrupt reaches their
    training loops."""

    def __init__(self, probe_fit: Callable[..., Optional[tuple[np.ndarray, np.ndarray]]], helds: list[np.ndarray],
                 seeds: list[int], weights: Optional[np.ndarray], lanes: int, threads: int) -> None:
        self.probe_fit, self.helds, self.seeds = probe_fit, helds, seeds
        self.weights = weights              # (n,) the sample weights, or None
        self.lanes, self.threads = lanes, threads               # lanes at once, on ``threads`` kernel threads each
        self.stop = threading.Event()       # set: the running probes stop at their next batch
        self.caught: list = []              # the warnings recorded while finish runs the probes
        self.pool = (ThreadPoolExecutor(lanes, thread_name_prefix="rnnfast-probe") if lanes > 1 else None)
        self.futures: list[Future] = []

    def _submit(self, k: int) -> Future:
        assert self.pool is not None
        return self.pool.submit(contextvars.copy_context().run, self.probe_fit, self, self.helds[k], self.seeds[k])

    def start(self) -> None:
        if self.pool is not None:
            self.futures = [self._submit(k) for k in range(min(self.lanes - 1, len(self.helds)))]

    def finish(self) -> Optional[list[tuple[np.ndarray, np.ndarray]]]:
        with warnings.catch_warnings(record=True) as caught:     # (the model's own fit warned as it must)
            warnings.simplefilter("always")
            self.caught = caught
            if self.pool is None:
                found = []
                for held, seed in zip(self.helds, self.seeds):
                    found.append(self.probe_fit(self, held, seed))
                    if found[-1] is None:
                        return None
            else:
                futures = self.futures + [self._submit(k) for k in range(len(self.futures), len(self.helds))]
                try:                        # (an interrupt here too): the running probes stop, then are joined
                    done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                finally:
                    self.cancel()
                failed = [e for f in futures if f in done and (e := f.exception()) is not None]
                if failed:                  # the first to fail, not one the stop ended
                    raise failed[0]
                found = [f.result() for f in futures]
        probed = [v for v in found if v is not None]
        return probed if len(probed) == len(self.helds) else None

    def cancel(self) -> None:
        self.stop.set()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
