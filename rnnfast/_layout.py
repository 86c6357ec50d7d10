r"""How the kernels' time-major row arrays (x, gates, out, ...: ``(rows, ·)``) hold a batch of sequences.

Padded: every step holds all B sequences, step t's rows are ``t·B .. t·B + B - 1`` (rows = T·B).

Packed, as cuDNN's layout and torch's ``PackedSequence``: the batch is sorted by decreasing length (stable),
``sorted_indices[i]`` is the original index of the i-th longest sequence, and step t holds only the

    m_t = batch_sizes[t] = #{b : lengths[b] > t}

sequences still running, sorted rows 0 .. m_t - 1, contiguous from row ``offsets[t] = Σ_{s<t} m_s``. So
rows = Σ_b lengths[b]: the kernels' GEMMs and time loop touch the real steps only. Each sequence reversed
within its own length has the same lengths, so the same layout; ``reversal`` maps a row to its mirror.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from . import _kernels, _threads

__all__ = ["Layout"]

# The padded batch's copies to and from the packed rows run on the kernels' threads from this many bytes of
# rows up (one thread below): at 2 threads, with 512 KB and 3.2 MB copies, Elman's and GRU's training steps
# with lengths= ran 1–6% faster and LSTM's within ±2.5% (benchmarks/README.md, variable lengths); smaller
# copies were not measured.
COPY_TEAM_BYTES = 256 * 1024


def _copy_threads(nbytes: int) -> int:
    """Threads for a copy of ``nbytes`` between the padded batch and the packed rows."""
    return _threads.team_threads() if nbytes >= COPY_TEAM_BYTES else 1


class Layout:
    """The layout of one batch (see the module docstring); ``Layout.padded(T, B)`` or
    ``Layout.packed(lengths)``."""

    rows: int                                    # T·B padded, Σ lengths packed
    T: int                                       # steps the kernels run
    B: int
    batch_sizes: Optional[np.ndarray]            # (T,) intc m_t, or None (padded)
    sorted_indices: Optional[np.ndarray]         # (B,) original index of the i-th longest sequence
    unsorted_indices: Optional[np.ndarray]       # (B,) its inverse
    index: Optional[np.ndarray]                  # (rows,) row t·B + b of the padded (T, B) batch of each row
    last: Optional[np.ndarray]                   # (B,) the row of each sorted sequence's last step
    _lengths: Optional[np.ndarray]               # (B,) the sorted lengths

    def __init__(self, T: int, B: int):
        self.T, self.B, self.rows = int(T), int(B), int(T) * int(B)
        self.batch_sizes = self.sorted_indices = self.unsorted_indices = None
        self.index = self.last = self._lengths = None
        self._reversal: Optional[np.ndarray] = None
        self._offsets: Optional[np.ndarray] = None      # (T + 1,) packed: the first row of each step
        self._pad_index: Dict[int, np.ndarray] = {}

    @classmethod
    def padded(cls, T: int, B: int) -> "Layout":
        return cls(T, B)

    @classmethod
    def packed(cls, lengths: np.ndarray, sorted_indices: Optional[np.ndarray] = None) -> "Layout":
        """The packed layout of sequences of these lengths (B,), each >= 1; sorted by decreasing length,
        stably, unless ``sorted_indices`` gives the order."""
        lengths = np.asarray(lengths, dtype=np.intp)
        order = (np.argsort(-lengths, kind="stable") if sorted_indices is None
                 else np.asarray(sorted_indices, dtype=np.intp))
        ls = lengths[order]                                                         # (B,) decreasing
        B = len(ls)
        T = int(ls[0]) if B else 0
        layout = cls(T, B)
        # O(rows) work, not O(T·B): a batch of a few long sequences among short ones builds in time with its rows
        bs = (B - np.cumsum(np.bincount(ls, minlength=T + 1)[:T])).astype(np.intc)     # (T,) m_t = B - #{ls <= t}
        offsets = np.zeros(T + 1, np.intp)
        np.cumsum(bs, out=offsets[1:])                                              # (T + 1,)
        layout.rows = rows = int(offsets[-1])
        t = np.repeat(np.arange(T), bs)                                             # (rows,) step of each row
        b = np.arange(rows) - offsets[t]                                            # (rows,) its sorted sequence
        layout.batch_sizes = bs
        layout.sorted_indices = order
        layout.unsorted_indices = np.empty_like(order)
        layout.unsorted_indices[order] = np.arange(B)
        layout.index = t * B + order[b]                                             # (rows,)
        layout.last = offsets[ls - 1] + np.arange(B)                                # (B,)
        layout._offsets = offsets
        layout._lengths = ls
        return layout

    @property
    def reversal(self) -> Optional[np.ndarray]:
        """(rows,) packed: the row of the same sequence at its mirrored step (None when padded). Built on first
        use (only the bidirectional layers read it)."""
        if self._reversal is None and self._offsets is not None and self.batch_sizes is not None:
            offsets, ls = self._offsets, self._lengths
            assert ls is not None
            t = np.repeat(np.arange(self.T), self.batch_sizes)                      # (rows,) step of each row
            b = np.arange(self.rows) - offsets[t]                                   # (rows,) its sorted sequence
            self._reversal = offsets[ls[b] - 1 - t] + b                             # (rows,)
        return self._reversal

    @property
    def is_packed(self) -> bool:
        return self.batch_sizes is not None

    def lengths(self) -> np.ndarray:
        """(B,) each sequence's length, in the original order."""
        if self._lengths is None or self.unsorted_indices is None:
            return np.full(self.B, self.T, np.int64)
        return self._lengths[self.unsorted_indices].astype(np.int64)

    def to_rows(self, seq: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """seq (T', B, F), T' >= T, C-contiguous, as the layout's C-contiguous rows (rows, F): a view when
        padded, else gathered into ``out`` (or a new array)."""
        if self.index is None:
            return np.ascontiguousarray(seq[:self.T]).reshape(self.rows, seq.shape[-1])
        flat = seq.reshape(seq.shape[0] * seq.shape[1], seq.shape[-1])
        out = np.empty((self.rows, flat.shape[1]), flat.dtype) if out is None else out
        _kernels.copy_rows(flat, self.index, out, _copy_threads(out.nbytes))
        return out

    def to_padded(self, rows: np.ndarray, T: int, out: Optional[np.ndarray] = None) -> np.ndarray:
        """rows (rows, F), C-contiguous, as a (T, B, F) batch, T >= self.T, zero past each length (a view
        when padded, else written into ``out`` (T, B, F), C-contiguous, or a new array)."""
        F = rows.shape[-1]
        if self.index is None:
            return rows.reshape(self.T, self.B, F)
        index = self._pad_index.get(T)
        if index is None:                       # (T·B,) the row of each (t, b), -1 past its length
            index = self._pad_index[T] = np.full(T * self.B, -1, np.intp)
            index[self.index] = np.arange(self.rows)
        seq = np.empty((T, self.B, F), rows.dtype) if out is None else out
        _kernels.copy_rows(rows, index, seq.reshape(T * self.B, F), _copy_threads(seq.nbytes))
        return seq

    def reverse(self, rows: np.ndarray) -> np.ndarray:
        """rows (rows, F) with each sequence reversed in time within its length, as a contiguous copy."""
        if self.reversal is None:
            F = rows.shape[-1]
            return np.ascontiguousarray(rows.reshape(self.T, self.B, F)[::-1]).reshape(self.rows, F)
        return np.take(rows, self.reversal, axis=0)

    def sort(self, state: np.ndarray) -> np.ndarray:
        """state (…, B, H) in the layout's batch order (contiguous)."""
        if self.sorted_indices is None:
            return state
        return np.ascontiguousarray(state[..., self.sorted_indices, :])

    def unsort(self, state: np.ndarray) -> np.ndarray:
        """state (…, B, H) from the layout's batch order back to the original one."""
        if self.unsorted_indices is None:
            return state
        return np.ascontiguousarray(state[..., self.unsorted_indices, :])
