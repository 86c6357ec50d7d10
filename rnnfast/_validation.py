"""Small argument checks shared across rnnfast: each names the offending argument in its message.

Numbers: ``check_real`` (any real number, optionally within bounds), ``check_positive`` (> 0),
``check_nonnegative`` (>= 0), ``check_int`` (an integer, optionally >= a minimum).
Choices: ``check_choice``. Arrays: ``check_array`` (ndim and dtype kind). Parameter lists:
``check_parameters``.
Wrong types raise ``TypeError``; values out of range raise ``ValueError``. NaN is never in range.
"""
from __future__ import annotations

import numbers
from typing import Any, Collection, Hashable, Iterable

import numpy as np

from ._module import Parameter

__all__ = ["check_real", "check_positive", "check_nonnegative", "check_int", "check_choice", "check_array",
           "check_parameters"]

_KIND_NAMES = {"f": "floating", "i": "signed integer", "u": "unsigned integer", "b": "boolean", "c": "complex"}


def check_real(name: str, value: Any, low: float | None = None, high: float | None = None, *,
               low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    """Return ``float(value)`` if it is a real number (not bool) within the bounds; ``None`` = unbounded."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    ok = v == v  # NaN fails every bound
    if ok and low is not None:
        ok = v >= low if low_inclusive else v > low
    if ok and high is not None:
        ok = v <= high if high_inclusive else v < high
    if not ok:
        lo = "(-inf" if low is None else ("[" if low_inclusive else "(") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + ("]" if high_inclusive else ")")
        raise ValueError(f"{name} must be in {lo}, {hi}, got {value!r}")
    return v


def check_positive(name: str, value: Any) -> float:
    """Return ``float(value)`` if it is a real number > 0."""
    return check_real(name, value, 0.0, low_inclusive=False)


def check_nonnegative(name: str, value: Any) -> float:
    """Return ``float(value)`` if it is a real number >= 0."""
    return check_real(name, value, 0.0)


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    """Return ``int(value)`` if it is an integer (not bool) and, when given, >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``. Unhashable values (arrays, lists) are never one: an array
    is not compared elementwise, which for a large one would allocate a large boolean array."""
    if not isinstance(value, Hashable) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(map(repr, choices))}, got {value!r}")
    return value


def check_array(name: str, x: Any, ndim: int | None = None, dtype_kind: str | None = None,
                min_ndim: int | None = None) -> np.ndarray:
    """Return ``np.asarray(x)`` after checking its number of dimensions and dtype kind.

    ``dtype_kind`` is a string of allowed ``np.dtype.kind`` codes, e.g. ``"f"`` (floating) or ``"iu"``
    (integers). A wrong kind raises ``TypeError``; a wrong ``ndim`` (exact) or ``min_ndim`` raises
    ``ValueError``.
    """
    arr = np.asarray(x)
    if dtype_kind is not None and arr.dtype.kind not in dtype_kind:
        wanted = " or ".join(_KIND_NAMES.get(k, k) for k in dtype_kind)
        raise TypeError(f"{name} must have a {wanted} dtype, got {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if min_ndim is not None and arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape {arr.shape}")
    return arr


def check_parameters(name: str, params: Any, *, allow_single: bool = False) -> list[Parameter]:
    """Return ``params`` (an iterable of ``Parameter``) as a list; a lone Parameter only if ``allow_single``."""
    if allow_single and isinstance(params, Parameter):
        return [params]
    if isinstance(params, (Parameter, np.ndarray, str)) or not isinstance(params, Iterable):
        raise TypeError(f"{name} must be an iterable of rnnfast.Parameter, got {type(params).__name__}")
    params = list(params)
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"{name} must be an iterable of rnnfast.Parameter, got an element of type "
                            f"{type(p).__name__}")
    return params
