"""SequenceRegressor: a linear head and ½ squared error, one target vector per sequence or per step."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..losses import mse_loss
from ._base import _SequenceEstimator
from ._compat import RegressorMixin
from ._data import (_check_target_rows, _finite_or_raise, _mean_and_scale, _per_step_targets, _r2, _Sequences,
                    _standardized)
from ._docs import ATTRIBUTES, PARAMETERS


class SequenceRegressor(RegressorMixin, _SequenceEstimator):
    __doc__ = f"""Recurrent sequence regressor: a linear head and ½ squared error.

    ``output="last"``: y (n_samples,) or (n_samples, k). ``output="sequence"``: y (n_samples, T) or
    (n_samples, T, k), or a list of (T_i,) / (T_i, k) arrays; ``predict`` returns the same shape (a list
    for ragged X). With ``scale=True`` the targets are standardized too (per output, with the training
    set's mean and standard deviation), and ``predict`` undoes it; ``loss_curve_`` is then in those units.

    Parameters
    ----------
{PARAMETERS}

    Attributes
    ----------
    n_outputs_ : int
        Outputs per target (k; 1 for a 1-D y).
    target_mean_, target_scale_ : ndarray (n_outputs_,) or None
        The targets' standardization (None with ``scale=False``).
{ATTRIBUTES}
    """

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

    _persisted_attrs = _SequenceEstimator._persisted_attrs + ("n_outputs_", "target_mean_", "target_scale_",
                                                              "_y_has_output_axis")
    _persisted_float_arrays = _SequenceEstimator._persisted_float_arrays + ("target_mean_", "target_scale_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True         # y (n_samples, k)
        return tags

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> "SequenceRegressor":
        """One epoch over (X, y) at the constant learning rate ``lr`` (scaled as ``batch_size="auto"`` says for
        this call's batch), from the current model if there is one.

        The first call fixes the model (scaling of inputs and targets, window, architecture). No early
        stopping.
        """
        return self._fit(X, y, sample_weight, partial=True)

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

    def _encode_targets(self, y: Any, seqs: _Sequences, first: bool, classes: Any = None,
                        weights: Optional[np.ndarray] = None) -> np.ndarray:
        t = self._regression_targets(y, seqs)
        if first:
            self._y_has_output_axis = self._has_output_axis(y)
            self.n_outputs_ = t.shape[-1]
            self.target_mean_ = self.target_scale_ = None
            if self.scale:
                valid, w = (t, weights) if self._output == "last" else seqs.real_steps(t, weights)   # (N, k)
                self.target_mean_, self.target_scale_ = _mean_and_scale(valid, w)
        elif t.shape[-1] != self.n_outputs_:
            raise ValueError(f"y has {t.shape[-1]} outputs, but the model was fitted with {self.n_outputs_}")
        if self.target_mean_ is not None:
            t = _standardized(t, self.target_mean_, self.target_scale_)
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
        z = self._shape_output(self._unscaled(z))
        return z if self._output == "last" else self._per_sequence(z, seqs)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R² (uniform average over outputs), over sequences ("last") or over every step ("sequence")."""
        z, seqs = self._predicted(X)
        sample_weight = self._check_sample_weight(sample_weight, seqs.n)
        z = self._unscaled(z)
        t = self._regression_targets(y, seqs)
        if t.shape[-1] != z.shape[-1]:                  # as r2_score: never broadcast one output against several
            raise ValueError(f"y has {t.shape[-1]} outputs, but the model was fitted with {z.shape[-1]}")
        if self._output == "last":
            return _r2(t, z, sample_weight)
        w = seqs.mask() * (1.0 if sample_weight is None else np.asarray(sample_weight, np.float64)[None, :])
        flat = w.ravel() > 0
        return _r2(t.reshape(-1, t.shape[-1])[flat], z.reshape(-1, z.shape[-1])[flat], w.ravel()[flat])
