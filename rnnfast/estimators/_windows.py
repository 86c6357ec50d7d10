"""The estimators' time-delay windows (``window=k``, stride k): k consecutive steps become one step of k·I
features,

    x'_τ = [x_{kτ}, x_{kτ+1}, …, x_{kτ+k−1}]        τ = 0 … ⌈T/k⌉ − 1,   length T'_b = ⌈T_b / k⌉

(steps past a sequence's end are zeros), so the recurrence runs ⌈T/k⌉ steps instead of T. With
``window_span=m`` > 1 each step also reads the (m − 1)·k steps before its own k (zeros before the first;
with k = 1 too):

    x'_τ = [x_{kτ−(m−1)k}, …, x_{kτ+k−1}]            (m·k·I features, stride k; the same T'_b)

so consecutive steps overlap, as a convolution's receptive fields do. ``_cropped_windowed`` makes the grid of
each sequence from its own first step φ_b (a training batch's random offsets and crops, predict's other
alignments) in one kernel pass; ``_windowed`` is its grid from step 0 (predict, validation).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _kernels
from ._data import _Sequences


def _auto_window(T: int, target_steps: int) -> int:
    """The window that brings T steps down to at most ``target_steps``: ⌈T / target_steps⌉."""
    return max(1, -(-T // target_steps))


def _offset_windowed(seqs: _Sequences, idx: np.ndarray, k: int, rng: np.random.Generator, random_offset: bool = True,
                     crop: float = 0.0, span: int = 1) -> _Sequences:
    """Sequences ``idx`` of ``seqs`` (B,), each starting at its own random step φ_b ∈ {0 … min(k, T_b) − 1} (its
    first φ_b steps dropped; φ_b = 0 without ``random_offset``), then windowed: x (T'', B, span·k·I), lengths
    ⌈(T_b − φ_b)/k⌉. Over many draws the model sees every alignment of the window grid on every sequence
    (``window_offset="random"``).

    With ``crop`` = c > 0 (``random_crop``) each sequence first keeps a random segment of its steps,
    ℓ_b = ⌈u_b·T_b⌉ of them (u_b uniform in [1 − c, 1]) from a uniform start s_b ∈ {0 … T_b − ℓ_b}, and the
    window grid starts at s_b + φ_b: x holds steps s_b + φ_b … s_b + ℓ_b − 1."""
    phase = rng.integers(0, k, size=len(idx)) if random_offset else np.zeros(len(idx), np.int64)   # (B,) φ_b
    if crop == 0.0:
        return _cropped_windowed(seqs, idx, phase, k, span=span)
    T = seqs.ends()[idx] + 1                                                        # (B,) T_b
    keep = np.maximum(1, np.ceil(T * rng.uniform(1.0 - crop, 1.0, size=len(idx)))).astype(np.int64)  # ℓ_b
    start = rng.integers(0, T - keep + 1)                                           # (B,) s_b
    return _cropped_windowed(seqs, idx, start + phase, k, stops=start + keep, span=span)


def _cropped_windowed(seqs: _Sequences, idx: np.ndarray, phase: np.ndarray, k: int,
                      stops: Optional[np.ndarray] = None, span: int = 1) -> _Sequences:
    """Sequences ``idx`` of ``seqs`` (B,), each with its first φ_b = min(phase_b, T_b − 1) steps dropped
    (phase: (B,) ints), then windowed: window τ of sequence b is its steps φ_b + kτ … φ_b + kτ + k − 1, zeros
    past its end T_b (or past ``stops``_b ≤ T_b: the steps before it kept), the time-delay view of the cropped
    sequences, copied straight into that layout by one kernel pass (``_kernels.crop_windows``). With span = m > 1
    window τ also holds the (m − 1)·k steps before its own k, zeros before φ_b (``window_span``)."""
    ends = seqs.ends()[idx] + 1 if stops is None else stops                         # (B,) T_b
    phase = np.minimum(phase, ends - 1)                                             # (B,) φ_b
    steps = -(-(ends - phase) // k)                                                 # (B,) ⌈(T_b − φ_b)/k⌉
    x = np.empty((int(steps.max()), len(idx), span * k * seqs.x.shape[2]), seqs.x.dtype)  # (T', B, m·k·I)
    _kernels.crop_windows(np.ascontiguousarray(seqs.x), np.ascontiguousarray(idx, np.intp),
                          phase.astype(np.intp), ends.astype(np.intp), x, k)
    return _Sequences(x, steps, seqs.layout)


def _windowed(seqs: _Sequences, k: int, span: int = 1) -> _Sequences:
    """The time-delay view (module docstring) of every sequence from its first step: x (T, n, I) →
    (⌈T/k⌉, n, span·k·I), lengths ⌈T_b/k⌉ (None stays None): rnnfast.TimeDelay(span·k, stride=k, tail="pad")'s
    windows over x after (span − 1)·k steps of zeros, with zeros past each sequence's end, by
    _cropped_windowed's kernel pass at phase 0. Unchanged (no copy) when k = span = 1."""
    if k == 1 and span == 1:
        return seqs
    out = _cropped_windowed(seqs, np.arange(seqs.n), np.zeros(seqs.n, np.intp), k, span=span)
    return out if seqs.lengths is not None else out._replace(lengths=None)
