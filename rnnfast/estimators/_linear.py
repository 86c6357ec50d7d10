"""SequenceRegressor's linear part (``ridge``): a ridge regression on each sequence's last q steps, fitted first,
whose residuals the network then learns.

The features of sequence b are its last q steps of the scaled input levels, flattened and aligned at its end,
zeros (the training mean, after scaling) before its first step:

    f_b = [x_{T_b−q}, …, x_{T_b−1}]                     (q·I,)      x_t = 0 for t < 0

and on the training sequences, with weights w_b (sample weights, or 1), ridge regression with an intercept:

    (β, c) = argmin Σ_b w_b ‖y_b − f_b·β − c‖² + α‖β‖²

Its α is the one of ``_ALPHAS`` with the least leave-one-out error, which the eigendecomposition of the
centred Gram matrix FᵀWF = V·diag(λ)·Vᵀ gives in closed form for every α at once (G = W^½·F_c·V):

    ŷ_α = G·diag(1/(λ + α))·Gᵀ·W^½·y_c,     h_α,b = Σ_j G_bj² / (λ_j + α) + w_b / Σw,
    e_α,b = (W^½·y_c − ŷ_α)_b / (1 − h_α,b),   LOO R² = 1 − Σ_b ‖e_α,b‖² / Σ_b w_b ‖y_c,b‖²

(h counts the intercept's leverage w_b / Σw). The network is trained on the residuals r = (y − f·β − c) / s,
s their standard deviation per output, and predicts y = f·β + c + s·z.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ._data import _Sequences

# the ridge's candidate penalties (the features are standardized, so λ_j grows with n; α ≤ 1e5 still shrinks
# at 100,000 series)
_ALPHAS = np.logspace(-3, 5, 17)
# the most features f_b holds: q = min(longest training sequence, ⌊_MAX_FEATURES / I⌋) steps
_MAX_FEATURES = 256


def _ridge_steps(longest: int, width: int) -> int:
    """q: the steps of each sequence's end that the ridge reads."""
    return max(1, min(longest, _MAX_FEATURES // max(width, 1)))


def _end_features(steps: _Sequences, q: int, width: int) -> np.ndarray:
    """f (n, q·width) float64: the last q steps of each sequence's first ``width`` features (the levels),
    aligned at its end, zeros before its first step."""
    T, n = steps.x.shape[0], steps.x.shape[1]
    ends = np.full(n, T) if steps.lengths is None else np.asarray(steps.lengths)         # (n,) T_b
    at = ends[:, None] - q + np.arange(q)[None, :]                                       # (n, q) steps read
    f = steps.x[np.clip(at, 0, T - 1), np.arange(n)[:, None], :width].astype(np.float64)  # (n, q, width)
    f[at < 0] = 0.0
    return f.reshape(n, q * width)


def _ridge_loo(f: np.ndarray, y: np.ndarray, w: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(β (p, k), c (k,), α, leave-one-out R²) of the weighted ridge regression of y (n, k) on f (n, p), α
    the one of ``_ALPHAS`` with the least leave-one-out error (module docstring)."""
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
    total = float((yc * yc).sum())
    best_err, best_alpha = np.inf, float(_ALPHAS[0])
    for alpha in _ALPHAS:
        d = 1.0 / (lam + alpha)                                                          # (p,)
        h = G2 @ d + share                                                               # (n,) leverage
        e = (yc - G @ (d[:, None] * Gy)) / np.maximum(1.0 - h, 1e-12)[:, None]           # (n, k)
        err = float((e * e).sum())
        if err < best_err:
            best_err, best_alpha = err, float(alpha)
    coef = V @ (Gy / (lam + best_alpha)[:, None])                                        # (p, k)
    intercept = y_mean - f_mean @ coef                                                   # (k,)
    score = 1.0 - best_err / total if total > 0 else 0.0
    return coef, intercept, best_alpha, score
