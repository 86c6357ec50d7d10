"""Small argument checks shared across rnnfast: each names the offending argument in its message.

Numbers: ``check_real`` (any real number, optionally within bounds), ``check_positive`` (> 0),
``check_nonnegative`` (>= 0), ``check_int`` (an integer, optionally >= a minimum).
Choices: ``check_choice``. Arrays: ``check_array`` (ndim and dtype kind), ``as_real_array`` (any real
dtype, converted), ``check_shape``, ``check_lengths`` (sequence lengths). Parameter lists: ``check_parameters``.
Wrong types raise ``TypeError``; values out of range raise ``ValueError``. NaN is never in range.
"""
from __future__ import annotations

import argparse
import numbers
from typing import Any, Callable, Collection, Hashable, Iterable

import numpy as np

from ._module import Parameter

__all__ = ["check_real", "check_positive", "check_nonnegative", "check_int", "check_choice", "check_array",
           "as_real_array", "check_shape", "check_lengths", "check_parameters"]

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


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``int(value)`` if it is an integer (not bool) and, when given, >= ``minimum`` and <= ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and int(value) > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}")
    return int(value)


def check_choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``. Unhashable values (arrays, lists) are never one: an array
    is not compared elementwise, which for a large one would allocate a large boolean array."""
    if not isinstance(value, Hashable) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def check_auto_or(name: str, value: Any, check: Callable[[str, Any], Any]) -> Any:
    """A parameter that is "auto" (any other string is refused, naming the choice) or else what
    ``check(name, value)`` accepts."""
    return check_choice(name, value, ("auto",)) if isinstance(value, str) else check(name, value)


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


def as_real_array(name: str, value: Any, dtype: np.dtype | None = None) -> np.ndarray:
    """``value`` as an array of ``dtype`` (None: its own real dtype); TypeError for anything else."""
    if value is None:
        raise TypeError(f"{name} must be an array, got None")
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # ragged nested lists
        raise TypeError(f"{name} must be an array of real numbers: {exc}") from exc
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    return arr if dtype is None else arr.astype(dtype, copy=False)


def int_argument(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum``, else argparse's usage error naming the option."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value
    return parse


def may_alias(arr: np.ndarray, given: Any) -> bool:
    """Whether ``arr``, made from the caller's ``given``, may share the caller's memory, which the caller may
    change later: an ndarray that overlaps ``given``, or a view of a buffer numpy does not own (a torch
    tensor, a memoryview, anything with ``__array_interface__``). An array numpy made afresh (from a list,
    or by a conversion of dtype or order) does not."""
    if isinstance(given, np.ndarray):
        return bool(np.may_share_memory(arr, given))
    root = arr
    while isinstance(root.base, np.ndarray):
        root = root.base
    return root.base is not None


def check_shape(name: str, arr: np.ndarray, expected: tuple[int, ...], what: str) -> None:
    """ValueError unless ``arr.shape == expected``; ``what`` names the expected shape, e.g. "(B, H)"."""
    if arr.shape != tuple(expected):
        raise ValueError(f"{name} must have shape {what} = {tuple(expected)}, got {arr.shape}")


def check_lengths(lengths: Any, B: int | None = None, T: int | None = None, *, minimum: int = 0,
                  integral_floats: bool = False) -> np.ndarray:
    """Sequence lengths: an integer array (B,) (any length when ``B`` is None) with values in [minimum, T]
    (no upper bound when ``T`` is None). Floats with integral values pass when ``integral_floats`` (an
    empty ``np.array([])`` is float64). Returns the array as given (range-checked before any cast)."""
    arr = as_real_array("lengths", lengths)
    if arr.dtype.kind == "b" or (arr.dtype.kind == "f" and not integral_floats):
        raise TypeError(f"lengths must be an integer array, got dtype {arr.dtype}")
    if B is not None:
        check_shape("lengths", arr, (B,), "(B,)")
    elif arr.ndim != 1:
        raise ValueError(f"lengths must be a 1-D array (B,), got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
        raise TypeError(f"lengths must be an integer array, got non-integer values of dtype {arr.dtype}")
    if arr.size:
        if T is not None and (arr.min() < minimum or arr.max() > T):
            raise ValueError(f"lengths must lie in [{minimum}, T] = [{minimum}, {T}], got min {arr.min()}, "
                             f"max {arr.max()}")
        if T is None and arr.min() < minimum:
            raise ValueError(f"lengths must be >= {minimum}, got {arr.min()}")
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
            kind = type(p)
            raise TypeError(f"{name} must be an iterable of rnnfast.Parameter, got an element of type "
                            f"{kind.__module__}.{kind.__qualname__}" + (
                                " (a torch parameter: give the optimizer an rnnfast module's parameters())"
                                if kind.__module__.startswith("torch") else ""))
    return params
