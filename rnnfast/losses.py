r"""Loss functions that return the loss and its gradient with respect to the prediction, in one pass.

Every function returns ``(loss, grad)``: ``grad`` has the prediction's shape and dtype and is the exact
gradient of the returned ``loss``. Per-element losses ``l`` (with optional weights ``w``) are reduced as

    reduction="mean":  L = Σ w·l / Σ w          (w ≡ 1 without a mask: the plain mean over N entries)
    reduction="sum":   L = Σ w·l
    reduction="none":  L = w·l                   (an array; grad is that of Σ w·l)

The weighted mean is torch's weighted-cross-entropy semantics, ``mean = sum(w*l) / sum(w)``. A ``mask``
holds per-timestep / per-sample weights aligned with the *leading* axes of the prediction (for
``cross_entropy``: of the labels, i.e. the logits without the class axis) and is broadcast over the
trailing axes, so a ``(T, B)`` mask weights a ``(T, B, O)`` prediction per step; ``Σ w`` then counts each
weight once per element it covers (``O`` times here), so an all-ones mask gives exactly the unmasked
loss. ``mask`` and ``reduction`` are keyword-only: torch's third positional argument is ``weight``, per class
for ``cross_entropy`` and broadcast from the trailing axes for BCE, which a mask is not, so a call written
for torch is refused rather than read as a mask. Weights must be finite and >= 0. Entries of weight 0 are ignored entirely: they add nothing to
``L``, get an exact zero gradient even if the prediction there is not finite, and (cross-entropy) their
labels are not range-checked, so padding labels such as ``-100`` are fine. A mean whose weights sum to 0,
or over an empty prediction, raises ``ValueError`` (torch would return NaN).

Losses, per element (``d`` prediction, ``y`` target):

    mse_loss:         l = ½ (d − y)²                        ∂l/∂d = d − y
        Note the ½: this is ½ × ``torch.nn.functional.mse_loss`` (which has no ½).
    cross_entropy:    logits x (..., C), integer labels k (...), class axis last; loss and gradient in one
                      threaded pass over the rows (csrc/_loss.pxi), to rounding what NumPy computes:
                      log p = x − max(x) − log Σ_c exp(x_c − max(x))   (stable log-softmax)
                      l = −log p_k                          ∂l/∂x = softmax(x) − onehot(k)
    bce_with_logits:  l = max(x, 0) − x·t + log(1 + exp(−|x|))   (= −t log σ(x) − (1−t) log(1−σ(x)),
                                                                   stable for any |x|)
                                                            ∂l/∂x = σ(x) − t
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np
from scipy.special import expit

from . import _kernels
from ._buffers import Workspace
from ._threads import get_num_threads
from ._validation import check_array, check_choice

__all__ = ["mse_loss", "cross_entropy", "bce_with_logits"]

_REDUCTIONS = ("mean", "sum", "none")
_EMPTY_MEAN = ("reduction='mean' over no entries (an empty prediction, or mask weights summing to zero) is "
               "undefined; use reduction='sum'")


_memory = threading.local()     # per thread: the Workspace that recycles the gradients it returned (fresh pages)


def _returned(key: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Memory for a gradient handed to the caller: a dropped earlier one's, or fresh (Workspace.returned)."""
    workspace = getattr(_memory, "workspace", None)
    if workspace is None:
        workspace = _memory.workspace = Workspace()
    return workspace.returned(key, shape, dtype)


def _weights(mask: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
    """The mask as weights of ``shape`` (leading-axis aligned, broadcast over the trailing axes)."""
    if mask is None:
        return None
    m = check_array("mask", mask, dtype_kind="biuf")
    lead = shape[:m.ndim]
    if m.ndim > len(shape) or any(a not in (1, b) for a, b in zip(m.shape, lead)):
        raise ValueError(f"mask of shape {m.shape} does not broadcast to the leading axes of {shape}")
    m = m.astype(dtype, copy=False)
    if not np.all(np.isfinite(m)) or np.any(m < 0):
        raise ValueError("mask weights must be finite and >= 0")
    return np.broadcast_to(m.reshape(m.shape + (1,) * (len(shape) - m.ndim)), shape)


def _reduce(loss: np.ndarray, grad: np.ndarray, w: np.ndarray | None,
            reduction: str) -> tuple[float | np.ndarray, np.ndarray]:
    """Weight and reduce per-entry ``loss`` (shape S); scale ``grad`` (shape S or S + (C,)) to match.

    ``grad`` holds ∂loss/∂pred per entry and is scaled in place.
    """
    loss = np.asarray(loss)
    extra = (slice(None),) * loss.ndim + (None,) * (grad.ndim - loss.ndim)  # w over a class axis
    total: float
    if w is None:
        total = float(loss.size)
    else:
        loss = np.asarray(loss * w)
        grad *= w[extra]
        ignored = w == 0
        if ignored.any():  # exact zeros even where the prediction is inf/nan (0·inf = nan)
            loss[ignored] = 0
            grad[ignored] = 0
        total = float(np.sum(w, dtype=np.float64))
    if reduction == "none":
        return loss, grad
    value = float(np.sum(loss, dtype=np.float64))
    if reduction == "mean":
        if total == 0:
            raise ValueError(_EMPTY_MEAN)
        value /= total
        grad *= 1.0 / total
    return value, grad


def _float_pred_and_target(pred_name: str, pred: Any, target_name: str,
                           target: Any) -> tuple[np.ndarray, np.ndarray]:
    p = check_array(pred_name, pred, dtype_kind="f")
    t = check_array(target_name, target, dtype_kind="biuf")
    if t.shape != p.shape:
        raise ValueError(f"{target_name} has shape {t.shape}, expected {pred_name}'s shape {p.shape}")
    return p, t.astype(p.dtype, copy=False)


def _softmax(z: np.ndarray) -> np.ndarray:
    """softmax over the last axis (probabilities of logits), shifted by the row's max against overflow."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def mse_loss(pred: Any, target: Any, *, mask: Any = None,
             reduction: str = "mean") -> tuple[float | np.ndarray, np.ndarray]:
    """Half squared error ``½ (pred − target)²`` (½ × torch's ``mse_loss``) and its gradient ``pred − target``.

    ``pred`` and ``target`` have the same shape; ``mask`` weights leading axes (see the module docstring).
    Returns ``(loss, grad)``; ``loss`` is a float, or an array for ``reduction="none"``.
    """
    check_choice("reduction", reduction, _REDUCTIONS)
    p, t = _float_pred_and_target("pred", pred, "target", target)
    d = p - t                       # ∂l/∂pred, then scaled in place by _reduce
    loss = 0.5 * d * d
    return _reduce(loss, d, _weights(mask, p.shape, p.dtype), reduction)


def cross_entropy(logits: Any, labels: Any, *, mask: Any = None,
                  reduction: str = "mean") -> tuple[float | np.ndarray, np.ndarray]:
    """Softmax cross-entropy of ``logits`` (..., C) against integer ``labels`` (...), class axis last.

    The gradient is the fused ``(softmax − onehot) · w / Σw``. Labels outside ``[0, C)`` raise
    ``ValueError`` unless their weight is 0. Returns ``(loss, grad)`` with ``grad`` shaped like ``logits``.
    """
    check_choice("reduction", reduction, _REDUCTIONS)
    x = check_array("logits", logits, dtype_kind="f", min_ndim=1)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"logits must be float32 or float64 (the layers' dtypes), got {x.dtype}")
    k = check_array("labels", labels, dtype_kind="iu")
    if k.shape != x.shape[:-1]:
        raise ValueError(f"labels has shape {k.shape}, expected logits' shape without the class axis "
                         f"{x.shape[:-1]}")
    n_classes = x.shape[-1]
    if n_classes == 0:
        raise ValueError("logits must have at least one class (last axis of length 0)")
    w = _weights(mask, k.shape, x.dtype)
    total = float(k.size) if w is None else float(np.sum(w, dtype=np.float64))
    if reduction == "mean" and total == 0:
        raise ValueError(_EMPTY_MEAN)
    # one threaded pass (csrc/_loss.pxi): per-row w·(−log p_k), and the gradient already scaled by 1/Σw
    x2 = np.ascontiguousarray(x.reshape(-1, n_classes))                     # (N, C)
    grad = _returned("cross_entropy", x2.shape, x.dtype)                   # (N, C)
    rows = np.empty(x2.shape[0], np.float64)                                # (N,) w·l per row
    bad = _kernels.cross_entropy_rows(
        x2, np.ascontiguousarray(k.reshape(-1), dtype=np.int64),
        None if w is None else np.ascontiguousarray(w.reshape(-1)),
        1.0 / total if reduction == "mean" else 1.0, grad, rows, get_num_threads())
    if bad >= 0:
        raise ValueError(f"labels must be in [0, {n_classes}) where the mask is nonzero, got "
                         f"{k.reshape(-1)[bad]}")
    grad = grad.reshape(x.shape)
    if reduction == "none":
        return rows.astype(x.dtype).reshape(k.shape), grad
    value = float(rows.sum())
    return (value / total if reduction == "mean" else value), grad


def bce_with_logits(logits: Any, targets: Any, *, mask: Any = None,
                    reduction: str = "mean") -> tuple[float | np.ndarray, np.ndarray]:
    """Binary cross-entropy on logits, ``max(x,0) − x·t + log1p(exp(−|x|))``, and its gradient ``σ(x) − t``.

    ``targets`` (probabilities, usually 0/1) have the logits' shape. Finite for any finite logits.
    Returns ``(loss, grad)``.
    """
    check_choice("reduction", reduction, _REDUCTIONS)
    x, t = _float_pred_and_target("logits", logits, "targets", targets)
    loss = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    grad = expit(x) - t                            # σ(x) − t, expit is stable for large |x|
    return _reduce(loss, grad, _weights(mask, x.shape, x.dtype), reduction)
