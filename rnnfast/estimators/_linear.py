"""SequenceRegressor's linear part (``ridge``): a ridge regression on each sequence's last q steps, fitted first,
whose residuals the network then learns.

The features of sequence b are its last q steps of the input levels (scaled, with ``scale``), flattened and
aligned at its end, zeros (the training mean, after scaling) before its first step:

    f_b = [x_{T_b−q}, …, x_{T_b−1}]                     (q·I,)      x_t = 0 for t < 0

and on the training sequences, with weights w_b (sample weights, or 1), ridge regression with an intercept:

    (β, c) = argmin Σ_b w_b ‖y_b − f_b·β − c‖² + α‖β‖²

Its α is the one of the grid ``_ALPHAS``·mean(λ) (relative to the features' size, so that the choice does not
depend on their units) with the least leave-one-out error, which the eigendecomposition of the centred Gram
matrix FᵀWF = V·diag(λ)·Vᵀ gives in closed form for every α at once (G = W^½·F_c·V):

    ŷ_α = G·diag(1/(λ + α))·Gᵀ·W^½·y_c,     h_α,b = Σ_j G_bj² / (λ_j + α) + w_b / Σw,
    e_α,b = (W^½·y_c − ŷ_α)_b / (1 − h_α,b),   LOO R²_k = 1 − Σ_b e_α,bk² / Σ_b w_b y_c,bk²

(h counts the intercept's leverage w_b / Σw; α minimises Σ_b ‖e_α,b‖² over the outputs together, as scikit-learn's
RidgeCV does, and the score is the mean of the outputs' LOO R², as ``score`` averages them). The network is trained
on the residuals r = (y − f·β − c) / s, s their standard deviation per output, and predicts y = f·β + c + s·z.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ._data import _Sequences

# the ridge's candidate penalties, in units of the mean eigenvalue of FᵀWF (for standardized features about
# Σw: 10⁻⁶ to 10³ of it, 19 values)
_ALPHAS = np.logspace(-6, 3, 19)
# the most features f_b holds: q = min(longest training sequence, ⌊_MAX_FEATURES / I⌋) steps, none where a
# step alone has more
_MAX_FEATURES = 256


def _ridge_steps(longest: int, width: int) -> int:
    """q: the steps of each sequence's end that the ridge reads (0: a step has more than _MAX_FEATURES)."""
    return min(longest, _MAX_FEATURES // max(width, 1))


def _alpha_grid(lam: np.ndarray) -> np.ndarray:
    """The candidate α for the eigenvalues ``lam`` of FᵀWF: ``_ALPHAS`` times their mean (1 where all are 0)."""
    size = float(lam.mean()) if lam.size and lam.mean() > 0 else 1.0
    return _ALPHAS * size


def _end_features(steps: _Sequences, q: int, width: int, rows: Optional[np.ndarray] = None) -> np.ndarray:
    """f (m, q·width) float64 of the sequences ``rows`` (all n by default; m of them): the last q steps of each
    one's first ``width`` features (the levels), aligned at its end, zeros before its first step."""
    T = steps.x.shape[0]
    rows = np.arange(steps.x.shape[1]) if rows is None else np.asarray(rows)             # (m,)
    ends = np.full(len(rows), T) if steps.lengths is None else np.asarray(steps.lengths)[rows]   # (m,) T_b
    at = ends[:, None] - q + np.arange(q)[None, :]                                       # (m, q) steps read
    f = steps.x[np.clip(at, 0, T - 1), rows[:, None], :width].astype(np.float64)         # (m, q, width)
    f[at < 0] = 0.0
    return f.reshape(len(rows), q * width)


def _ridge_loo(f: np.ndarray, y: np.ndarray, w: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(β (p, k), c (k,), α, leave-one-out R²) of the weighted ridge regression of y (n, k) on f (n, p), α
    the one of ``_alpha_grid`` with the least leave-one-out error (module docstring)."""
    w = np.ones(len(f)) if w is None else np.asarray(w, np.float64)                      # (n,)
    share = w / w.sum()
    f_mean, y_mean = share @ f, share @ y                                                # (p,), (k,)
    root = np.sqrt(w)[:, None]
    fc, yc = (f - f_mean) * root, (y - y_mean) * root                                    # (n, p), (n, k)
    lam, V = np.linalg.eigh(fc.T @ fc)                                                   # (p,), (p, p)
    lam = np.maximum(lam, 0.0)
    G = fc @ V                                                                           # (n, p)
    Gy = G.T @ yc                                                                        # (p, k)
    G2 = G * G                                                                           # (n, p)
    total = (yc * yc).sum(axis=0)                                                        # (k,)
    best_err, best_alpha, best_per_output = np.inf, 0.0, total
    for alpha in _alpha_grid(lam):
        d = 1.0 / (lam + alpha)                                                          # (p,)
        h = G2 @ d + share                                                               # (n,) leverage
        e = (yc - G @ (d[:, None] * Gy)) / np.maximum(1.0 - h, 1e-12)[:, None]           # (n, k)
        per_output = (e * e).sum(axis=0)                                                 # (k,)
        if per_output.sum() < best_err:
            best_err, best_alpha, best_per_output = float(per_output.sum()), float(alpha), per_output
    coef = V @ (Gy / (lam + best_alpha)[:, None])                                        # (p, k)
    intercept = y_mean - f_mean @ coef                                                   # (k,)
    scores = np.where(total > 0, 1.0 - best_per_output / np.where(total > 0, total, 1.0), 0.0)
    return coef, intercept, best_alpha, float(scores.mean())
