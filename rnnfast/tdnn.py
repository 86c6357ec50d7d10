r"""Time-delay inputs (TDNN): a window of the last k inputs, every s steps, becomes one step's input.

    y_τ = [x_{sτ}, x_{sτ+1}, …, x_{sτ+k−1}]        (T, B, F) → (T', B, k·F),  τ = 0 … T' − 1
    backward:  ∂L/∂x_t = Σ over the windows (τ, j) with sτ + j = t of ∂L/∂y_τ[j·F:(j+1)·F]

The gradient of an input that several windows share (stride s < window k) is the sum over them. The
features of y_τ are k blocks of F, oldest first: torch's ``x.unfold(0, k, s).permute(0, 1, 3, 2)`` flattened.

The ragged tail, when (T − k) is not a multiple of s:
  ``tail="drop"`` (default): T' = ⌊(T − k)/s⌋ + 1 windows, as torch's ``unfold``; the last steps that fill
                 no whole window are dropped (their gradient is zero), and T < k is an error.
  ``tail="pad"``:  the sequence is padded with zeros at the end until every step is in a window (with s > k
                 the steps between two windows are in none, and no window starts past the end):
                 T' = min(⌈max(T − k, 0)/s⌉ + 1, ⌈T/s⌉) (0 for T = 0; the first term when s <= k). This is what
                 the estimators' ``window`` does (with s = k: T' = ⌈T/k⌉), in :func:`time_delay`, the one piece of
                 code both use.

Variable lengths: a padded batch stays padded (steps past a sequence's end are zeros, so windows that
straddle its end see zeros there), and sequence b's windowed length is ``output_lengths(lengths)[b]``, the
windows a sequence of that length has on its own (T' above with T = lengths[b]); under ``tail="pad"`` that
can be fewer than the batch's windows that hold one of its real steps.
Give those lengths to the recurrent layer after it (``Sequential(...)(x, lengths=td.output_lengths(lengths))``).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._module import Module, one_thread_at_a_time
from ._validation import as_real_array, check_choice, check_int, check_shape

__all__ = ["TimeDelay", "time_delay", "time_delay_lengths", "time_delay_steps"]

_TAILS = ("drop", "pad")


def time_delay_steps(T: int, window: int, stride: int, tail: str) -> int:
    """T', the windows of a T-step sequence (module docstring); raises ValueError when T < window with
    ``tail="drop"``."""
    if tail == "pad":
        return int(time_delay_lengths(np.array([T]), window, stride, tail)[0])
    if T < window:
        raise ValueError(f"x has T = {T} steps, fewer than window = {window}: no whole window fits; use "
                         "tail='pad' to pad short sequences with zeros")
    return (T - window) // stride + 1


def time_delay_lengths(lengths: np.ndarray, window: int, stride: int, tail: str) -> np.ndarray:
    """Each sequence's windowed length from its length (module docstring): under "pad" at least 1 for a
    length of at least 1; under "drop" 0 when no whole window fits."""
    lengths = np.asarray(lengths)
    if tail == "pad":
        return np.where(lengths > 0, np.minimum(-(-np.maximum(lengths - window, 0) // stride) + 1,
                                                -(-lengths // stride)), 0)
    return np.maximum(lengths - window, -stride) // stride + 1          # 0 when no whole window fits


def time_delay(x: np.ndarray, window: int, stride: int, tail: str) -> np.ndarray:
    """y (T', B, window·F) from x (T, B, F): the windows of the module docstring, a new C-contiguous array of
    x's dtype."""
    T, B, F = x.shape
    Tw = time_delay_steps(T, window, stride, tail)
    if Tw == 0:
        return np.zeros((0, B, window * F), x.dtype)
    need = (Tw - 1) * stride + window                                   # steps the windows cover
    if need > T:                                                        # "pad": zeros after the end
        x = np.concatenate([x, np.zeros((need - T, B, F), x.dtype)])   # (need, B, F)
    view = np.lib.stride_tricks.sliding_window_view(x[:need], window, axis=0)[::stride]   # (Tw, B, F, window)
    return np.ascontiguousarray(view.transpose(0, 1, 3, 2)).reshape(Tw, B, window * F)    # (Tw, B, window·F)


class TimeDelay(Module):
    """Time-delay window: ``window`` consecutive steps, every ``stride`` steps, become one step.

    Parameters
    ----------
    window : int
        k, the steps in one window.
    stride : int, optional
        s, the steps from one window's start to the next; ``window`` by default (no overlap).
    tail : {"drop", "pad"}, default "drop"
        What happens to the steps after the last whole window (module docstring).
    batch_first : bool, default False
        Inputs and outputs as (B, T, ·) instead of (T, B, ·).

    Shapes
    ------
    x : (T, B, F), or (B, T, F) with ``batch_first``.
    y : (T', B, window·F), T' = ⌊(T − k)/s⌋ + 1 ("drop") or min(⌈max(T − k, 0)/s⌉ + 1, ⌈T/s⌉) ("pad"; 0 for
        T = 0); x's dtype (float64 for integer inputs).

    Examples
    --------
    >>> import numpy as np, rnnfast
    >>> td = rnnfast.TimeDelay(3, stride=2)
    >>> x = np.arange(7.0).reshape(7, 1, 1)                        # T = 7, B = 1, F = 1
    >>> td(x)[:, 0]                                                 # windows start at 0, 2, 4
    array([[0., 1., 2.],
           [2., 3., 4.],
           [4., 5., 6.]])
    >>> td.backward(np.ones((3, 1, 3)))[:, 0, 0]                    # steps 2 and 4 are in two windows
    array([1., 1., 2., 1., 2., 1., 1.])
    """

    _transient = {**Module._transient, "_shape": lambda: None}

    def __init__(self, window: int, stride: Optional[int] = None, tail: str = "drop", batch_first: bool = False):
        super().__init__()
        self.window = check_int("window", window, 1)
        self.stride = self.window if stride is None else check_int("stride", stride, 1)
        self.tail = check_choice("tail", tail, _TAILS)
        self.batch_first = bool(batch_first)
        self._shape: Optional[tuple] = None         # the last forward's x (T, B, F) and dtype

    def output_steps(self, T: int) -> int:
        """T', the windows of a T-step input."""
        return time_delay_steps(check_int("T", T, 0), self.window, self.stride, self.tail)

    def output_lengths(self, lengths: Any) -> np.ndarray:
        """The windowed lengths (B,) of sequences of ``lengths`` (B,) steps, for the recurrent layer after."""
        arr = as_real_array("lengths", lengths)
        if arr.ndim != 1 or arr.dtype.kind not in "iu" or (arr.size and arr.min() < 0):
            raise ValueError(f"lengths must be a 1-D array of non-negative integers, got {arr.dtype} {arr.shape}")
        return time_delay_lengths(arr, self.window, self.stride, self.tail)

    @one_thread_at_a_time
    def forward(self, x: Any) -> np.ndarray:
        """The windows of x.

        Parameters
        ----------
        x : array_like (T, B, F), or (B, T, F) with ``batch_first``

        Returns
        -------
        y : ndarray (T', B, window·F), or (B, T', window·F) with ``batch_first``
        """
        arr = as_real_array("x", x)
        if arr.ndim != 3:
            layout = "(B, T, F)" if self.batch_first else "(T, B, F)"
            raise ValueError(f"x must be a 3-D array {layout}, got shape {arr.shape}")
        if arr.dtype.kind != "f":
            arr = arr.astype(np.float64)
        if self.batch_first:
            arr = arr.transpose(1, 0, 2)
        y = time_delay(arr, self.window, self.stride, self.tail)             # (T', B, k·F)
        self._shape = (arr.shape, arr.dtype)
        return y.transpose(1, 0, 2) if self.batch_first else y

    __call__ = forward

    @one_thread_at_a_time
    def backward(self, dy: Any) -> np.ndarray:
        """∂L/∂x: each window's gradient added back onto the steps it read (summed where windows overlap).

        Parameters
        ----------
        dy : array_like, the forward's ``y``'s shape

        Returns
        -------
        dx : ndarray, the forward's ``x``'s shape (zero on steps no window read)
        """
        if self._shape is None:
            raise ValueError("backward needs a forward first: call the layer on an input, then backward")
        (T, B, F), dtype = self._shape
        k, s = self.window, self.stride
        Tw = time_delay_steps(T, k, s, self.tail)
        d = as_real_array("dy", dy)
        check_shape("dy", d, (B, Tw, k * F) if self.batch_first else (Tw, B, k * F), "(the forward output's shape)")
        if self.batch_first:
            d = d.transpose(1, 0, 2)
        d = d.reshape(Tw, B, k, F)                                           # (T', B, k, F)
        dx = np.zeros((max(Tw - 1, 0) * s + k, B, F), dtype)                  # (steps covered, B, F)
        for j in range(k):                      # offset j of every window reads x_{sτ + j}
            dx[j:j + max(Tw - 1, 0) * s + 1:s][:Tw] += d[:, :, j]
        dx = dx[:T] if dx.shape[0] >= T else np.concatenate([dx, np.zeros((T - dx.shape[0], B, F), dx.dtype)])
        return dx.transpose(1, 0, 2) if self.batch_first else dx

    def extra_repr(self) -> str:
        parts = [str(self.window)]
        if self.stride != self.window:
            parts.append(f"stride={self.stride}")
        if self.tail != "drop":
            parts.append(f"tail='{self.tail}'")
        if self.batch_first:
            parts.append("batch_first=True")
        return ", ".join(parts)
