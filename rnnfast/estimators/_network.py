r"""The estimators' network: recurrent stack, readout and linear head, for training and for inference.

    h_t = Elman, LSTM or GRU stack over the (scaled, windowed) inputs x'_1 … x'_T'          (T', B, F)
    f   = readout(h) over each sequence's own steps t < T'_b                               (B, F or 2F)
              "last":    h at the last step (bidirectional: forward half at T'_b − 1, reverse half at 0)
              "mean":    Σ_t h_t / T'_b
              "max":     max_t h_t, per feature
              "meanmax": [mean, max]
    z   = f Wᵀ + b                                                                          (B, O)

``output="sequence"`` skips the readout: z_t = h_t Wᵀ + b at every step (T', B, O).
Backward of the readouts: mean spreads ∂L/∂f / T'_b over the steps, max routes ∂L/∂f to the step that won.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np

__all__ = ["READOUTS", "readout_width", "readout_forward", "readout_backward"]

READOUTS = ("last", "mean", "max", "meanmax")


def readout_width(readout: str, width: int) -> int:
    """Features the head reads: the layer's output width F, twice that for "meanmax"."""
    return 2 * width if readout == "meanmax" else width


class _ReadoutCache(NamedTuple):
    readout: str
    shape: tuple                 # the layer output's (T', B, F)
    lengths: np.ndarray          # (B,) steps per sequence
    argmax: Optional[np.ndarray]  # (B, F) the step of each max ("max", "meanmax")
    H: int                       # hidden size: the forward half of a bidirectional output


def readout_forward(out: np.ndarray, lengths: Optional[np.ndarray], readout: str,
                    H: int) -> tuple[np.ndarray, _ReadoutCache]:
    """Features (B, readout_width) from the layer output ``out`` (T', B, F), zero past each length."""
    T, B, F = out.shape
    lens = np.full(B, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)     # (B,)
    rows = np.arange(B)
    parts, argmax = [], None
    if readout == "last":
        last = lens - 1
        if F == H:
            parts.append(out[last, rows])
        else:                                          # reverse direction: it has read it all at step 0
            parts.append(np.concatenate([out[last, rows, :H], out[0, rows, H:]], axis=1))
    if readout in ("mean", "meanmax"):
        # the layer outputs zeros past each sequence's end, so the plain sum over T' is the sum over t < T'_b
        parts.append(out.sum(axis=0) / lens[:, None].astype(out.dtype))
    if readout in ("max", "meanmax"):
        masked = out
        if lengths is not None and lens.min() < T:
            valid = np.arange(T)[:, None] < lens[None, :]                                  # (T', B)
            masked = np.where(valid[:, :, None], out, -np.inf)
        argmax = masked.argmax(axis=0)                                                       # (B, F)
        parts.append(np.take_along_axis(out, argmax[None], axis=0)[0])
    feats = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    return feats, _ReadoutCache(readout, out.shape, lens, argmax, H)


def readout_backward(dfeat: np.ndarray, cache: _ReadoutCache, dtype: Any) -> np.ndarray:
    """∂L/∂out (T', B, F), zero where the readout did not look, from ∂L/∂features (B, readout_width)."""
    T, B, F = cache.shape
    dout = np.zeros(cache.shape, dtype)
    rows = np.arange(B)
    readout, lens = cache.readout, cache.lengths
    if readout == "last":
        if F == cache.H:
            dout[lens - 1, rows] = dfeat
        else:
            dout[lens - 1, rows, :cache.H] = dfeat[:, :cache.H]
            dout[0, rows, cache.H:] = dfeat[:, cache.H:]
        return dout
    dmean = dfeat[:, :F] if readout in ("mean", "meanmax") else None
    dmax = dfeat[:, -F:] if readout in ("max", "meanmax") else None
    if dmean is not None:
        valid = np.arange(T)[:, None] < lens[None, :]                                      # (T', B)
        dout += valid[:, :, None] * (dmean / lens[:, None].astype(dtype))[None]
    if dmax is not None:
        assert cache.argmax is not None
        feat = np.arange(F)
        dout[cache.argmax, rows[:, None], feat[None, :]] += dmax          # one step per (b, f)
    return dout
