r"""Gradient clipping, in place, on ``torch.nn.utils``'s names and rules.

``clip_grad_norm_`` treats all gradients as one vector: its p-norm is the p-norm of the per-parameter
p-norms, and every gradient is scaled by the same clamped coefficient::

    ‖g‖ = ‖(‖g₁‖_p, …, ‖gₙ‖_p)‖_p        (p = inf: max |g|; p = 2: √(Σ g²), one pass a parameter)
    g ← g · min(max_norm / (‖g‖ + 1e-6), 1)

``clip_grad_value_`` clamps every entry: ``g ← min(max(g, −c), c)``.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from . import _kernels
from ._module import Parameter
from ._validation import check_nonnegative, check_parameters, check_real

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def clip_grad_norm_(parameters: Parameter | Iterable[Parameter], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> float:
    """Scale all gradients together so that their total ``norm_type``-norm is at most ``max_norm``.

    Returns the total norm *before* clipping, as a Python float (0.0 for no parameters). With
    ``error_if_nonfinite=True`` a NaN or infinite total norm raises ``RuntimeError`` before any gradient
    changes; otherwise the gradients are scaled by the (NaN or zero) coefficient, as torch does.
    """
    params = _with_grads(parameters)
    max_norm = check_nonnegative("max_norm", max_norm)
    try:
        norm_type = float(norm_type)            # accepts "inf", as torch does
    except (TypeError, ValueError):
        raise ValueError(f"norm_type must be a real number or 'inf', got {norm_type!r}") from None
    norm_type = check_real("norm_type", norm_type)
    if norm_type == 2:
        total = _two_norm(params)
    else:  # no BLAS here (a 2-norm would be a BLAS dot): max |g| for inf, else (Σ |g|^p)^(1/p)
        norms = [np.linalg.norm(p.grad.ravel(), ord=norm_type) for p in params if p.grad.size]
        total = float(np.linalg.norm(np.asarray(norms, dtype=np.float64), ord=norm_type)) if norms else 0.0
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is "
                           f"non-finite ({total}), so it cannot be clipped. Pass error_if_nonfinite=False "
                           f"to scale the gradients by the non-finite norm anyway.")
    coef = min(max_norm / (total + 1e-6), 1.0)  # min() keeps a NaN coefficient NaN, like torch.clamp
    if coef == 1.0:                             # g · 1 = g exactly (NaN and inf included): skip the pass
        return total
    with np.errstate(invalid="ignore"):  # an infinite norm gives coef 0 and inf·0 = NaN, as in torch
        for p in params:
            p.grad *= coef
    return total


def _with_grads(parameters: Parameter | Iterable[Parameter]) -> list[Parameter]:
    """The parameters that have a ``.grad`` (torch skips one that is None), each of its parameter's shape."""
    params = [p for p in check_parameters("parameters", parameters, allow_single=True) if p.grad is not None]
    for p in params:
        if not isinstance(p.grad, np.ndarray) or p.grad.shape != p.data.shape or p.grad.dtype not in _LARGEST:
            raise ValueError(f"parameters: a .grad must be None or a float32 or float64 array of its parameter's "
                             f"shape {p.data.shape}, got {type(p.grad).__name__} "
                             f"{getattr(p.grad, 'shape', '')} {getattr(p.grad, 'dtype', '')}".rstrip())
    return params


def _two_norm(params: list[Parameter]) -> float:
    """‖g‖₂ of all gradients as one vector, as torch computes it: each square in the gradient's dtype, and a
    sum beyond the largest value of the dtype (of the parameter, then of the widest one) is inf. The sums run
    in double in one vectorised pass per parameter (csrc/_optim.pxi), on the calling thread."""
    total, largest = 0.0, 0.0
    for p in params:
        top = _LARGEST[p.grad.dtype]
        s = _kernels.sum_of_squares(p.grad.reshape(-1))
        total += math.inf if s > top else s     # a NaN stays NaN
        largest = max(largest, top)
    return math.inf if total > largest else math.sqrt(total)


_LARGEST = {np.dtype(t): float(np.finfo(t).max) for t in (np.float32, np.float64)}


def clip_grad_value_(parameters: Parameter | Iterable[Parameter], clip_value: float) -> None:
    """Clamp every gradient entry into ``[-clip_value, clip_value]``, in place."""
    params = _with_grads(parameters)
    c = check_nonnegative("clip_value", clip_value)
    for p in params:
        np.clip(p.grad, -c, c, out=p.grad)
