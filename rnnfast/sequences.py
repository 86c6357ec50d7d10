r"""Variable-length sequences: pad a list into one batch with ``lengths``, and cut it back.

A batch of B sequences ``s_b`` of shapes ``(T_b, *F)`` becomes one array

    padded[t, b] = s_b[t]          for t <  T_b
    padded[t, b] = padding_value   for T_b <= t < T_max = max_b T_b

of shape ``(T_max, B, *F)`` (``(B, T_max, *F)`` with ``batch_first``) and ``lengths = (T_1, …, T_B)``.
Pass both to a layer, ``out, h_n = rnn(padded, lengths=lengths)``: each sequence then runs for its own
length, ``out`` is zero past it and ``h_n`` holds each sequence's state at its own last step, exactly as if
it had run alone (and as ``torch.nn.utils.rnn.pack_padded_sequence``). ``sequence_mask(lengths)`` gives the
``(T_max, B)`` 0/1 weights that make a loss (``rnnfast.losses``' ``mask=``) ignore the padding.

Packed sequences skip the padding altogether, as ``torch.nn.utils.rnn.PackedSequence``:
``pack_sequences(padded, lengths)`` (or a list of arrays) gives a :class:`PackedSequence` whose ``data``
``(Σ T_b, *F)`` holds the real steps only, time-major, the batch sorted by decreasing length at each step;
a layer takes it and returns its output packed the same way; ``unpack`` gives ``(padded, lengths)`` back.
A layer given ``lengths=`` packs internally, so both cost what the real steps cost.
"""
from __future__ import annotations

from typing import Any, Iterable, List, NamedTuple, Optional, Tuple

import numpy as np

from ._layout import Layout
from ._validation import check_int, check_lengths

__all__ = ["pad_sequences", "unpad_sequences", "sequence_mask", "PackedSequence", "pack_sequences", "unpack"]


def _numeric_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be a numeric NumPy dtype, got {dtype!r}") from exc
    if dt.kind not in "fiub":
        raise TypeError(f"dtype must be a real numeric dtype (float, int, bool), got {dt}")
    return dt


def _check_lengths(lengths: Any) -> np.ndarray:
    return check_lengths(lengths).astype(np.int64, copy=False)


def pad_sequences(sequences: Iterable[Any], dtype: Any = "float32", batch_first: bool = False,
                  padding_value: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """Pad sequences ``(T_b, *F)`` (usually ``(T_b, F)``, or ``(T_b,)`` for per-step labels) into one batch.

    Returns ``(padded, lengths)``: ``padded`` of shape ``(T_max, B, *F)`` (``(B, T_max, *F)`` when
    ``batch_first``) and ``dtype``, filled with ``padding_value`` past each sequence's end, and ``lengths``
    (B,) int64. Trailing shapes are kept as given (as ``torch.nn.utils.rnn.pad_sequence``): a list of
    ``(T_b,)`` label arrays gives ``(T_max, B)``; give a layer ``(T_b, 1)`` arrays if it has one feature.

    Raises ``ValueError`` for an empty list, a sequence of length 0 (a layer runs each sequence for at
    least one step), a 0-d entry or mismatched trailing shapes, and ``TypeError`` for entries that are not
    arrays of real numbers; each message names ``sequences[i]``.
    """
    if isinstance(sequences, (str, bytes)) or not isinstance(sequences, Iterable):
        raise TypeError(f"sequences must be a list of (T_i, F) arrays, got {type(sequences).__name__}")
    dt = _numeric_dtype(dtype)
    _check_padding_value(padding_value, dt)
    arrays: List[np.ndarray] = []
    for i, seq in enumerate(sequences):
        try:
            arr = np.asarray(seq)
        except (TypeError, ValueError) as exc:      # ragged nested lists
            raise TypeError(f"sequences[{i}] is not an array of real numbers: {exc}") from exc
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"sequences[{i}] must be an array of real numbers, got dtype {arr.dtype}")
        if arr.ndim == 0:
            raise ValueError(f"sequences[{i}] must have a time axis, shape (T_i, F) or (T_i,), got a scalar")
        if arr.shape[0] == 0:
            raise ValueError(f"sequences[{i}] has length 0; every sequence needs at least one step")
        if arrays and arr.shape[1:] != arrays[0].shape[1:]:
            raise ValueError(f"sequences[{i}] has shape {arr.shape}, but sequences[0] has shape "
                             f"{arrays[0].shape}: all must share the trailing (feature) shape")
        arrays.append(arr)
    if not arrays:
        raise ValueError("sequences is empty: pad_sequences needs at least one sequence")
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)   # (B,)
    T_max, B = int(lengths.max()), len(arrays)
    padded = np.full((T_max, B) + arrays[0].shape[1:], padding_value, dtype=dt)   # (T_max, B, *F)
    for b, arr in enumerate(arrays):
        padded[:lengths[b], b] = arr
    if batch_first:
        padded = np.ascontiguousarray(np.swapaxes(padded, 0, 1))       # (B, T_max, *F)
    return padded, lengths


def unpad_sequences(padded: Any, lengths: Any, batch_first: bool = False) -> List[np.ndarray]:
    """The inverse of :func:`pad_sequences`: ``[padded[:T_b, b] for b]``, each ``(T_b, *F)`` (copies).

    Use it on a layer's ``out`` to get each sequence's outputs back.
    """
    arr = np.asarray(padded)
    if arr.ndim < 2:
        raise ValueError(f"padded must have a time and a batch axis, got shape {arr.shape}")
    if batch_first:
        arr = np.swapaxes(arr, 0, 1)                                    # (T_max, B, *F)
    lens = _check_lengths(lengths)
    if lens.shape != (arr.shape[1],):
        raise ValueError(f"lengths must have shape (B,) = ({arr.shape[1]},), got {lens.shape}")
    if lens.size and lens.max() > arr.shape[0]:
        raise ValueError(f"lengths must be <= T_max = {arr.shape[0]}, got {lens.max()}")
    return [arr[:n, b].copy() for b, n in enumerate(lens)]


def sequence_mask(lengths: Any, max_len: int | None = None, batch_first: bool = False,
                  dtype: Any = "float32") -> np.ndarray:
    """0/1 weights ``m[t, b] = [t < lengths[b]]`` of shape ``(T_max, B)`` (``(B, T_max)`` with ``batch_first``).

    ``max_len`` defaults to ``max(lengths)``. Pass it as a loss's ``mask`` to ignore the padding.
    """
    lens = _check_lengths(lengths)
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer))):
        raise TypeError(f"max_len must be an int or None, got {type(max_len).__name__}")
    T = int(lens.max(initial=0)) if max_len is None else int(max_len)
    if T < 0:
        raise ValueError(f"max_len must be >= 0, got {T}")
    if lens.size and T < lens.max():
        raise ValueError(f"max_len = {T} is shorter than the longest sequence ({lens.max()})")
    m = (np.arange(T)[:, None] < lens[None, :]).astype(_numeric_dtype(dtype))   # (T, B)
    return np.ascontiguousarray(m.T) if batch_first else m


class PackedSequence(NamedTuple):
    """A batch of variable-length sequences without padding, as ``torch.nn.utils.rnn.PackedSequence``.

    Attributes
    ----------
    data : ndarray (Σ_b T_b, *F)
        The real steps, time-major: step t's ``batch_sizes[t]`` rows, the sequences still running at step t
        in decreasing order of length, then step t + 1's.
    batch_sizes : ndarray (T_max,) int64
        Sequences running at each step, non-increasing.
    sorted_indices : ndarray (B,) int64, or None
        The original index of the i-th longest sequence (ties keep their order); None, as torch reads it,
        when the batch is in that order already.
    unsorted_indices : ndarray (B,) int64, or None
        Its inverse: where sequence b sits in the sorted order (checked against it when given).
    """

    data: np.ndarray
    batch_sizes: np.ndarray
    sorted_indices: Optional[np.ndarray] = None
    unsorted_indices: Optional[np.ndarray] = None

    def layout(self) -> Layout:
        """The kernels' packed layout of this batch (checked)."""
        bs = np.asarray(self.batch_sizes)
        integers = bs.ndim == 1 and bs.dtype.kind in "iu"
        if integers:
            bs = bs.astype(np.int64)                            # int64: a uint diff wraps where bs decreases
        if not integers or (bs.size and (bs.min() < 1 or np.any(np.diff(bs) > 0))):
            raise ValueError("batch_sizes must be a 1-D integer array, non-increasing, each >= 1")
        B = int(bs[0]) if bs.size else 0
        # None: the batch is in sorted order already, as torch reads it (enforce_sorted=True leaves both None)
        order = np.arange(B) if self.sorted_indices is None else np.asarray(self.sorted_indices)
        if order.shape != (B,) or order.dtype.kind not in "iu" or not np.array_equal(np.sort(order), np.arange(B)):
            raise ValueError(f"sorted_indices must be None or a permutation of range(B = {B})")
        if self.unsorted_indices is not None:
            inverse = np.asarray(self.unsorted_indices)
            if inverse.shape != (B,) or inverse.dtype.kind not in "iu" or not np.array_equal(order[inverse],
                                                                                          np.arange(B)):
                raise ValueError("unsorted_indices must be None or the inverse permutation of sorted_indices")
        # the i-th longest runs while bs[t] > i: to the first t with bs[t] <= i (bs non-increasing), O(B log T)
        sorted_lengths = np.searchsorted(-bs, -np.arange(B), side="left")    # (B,)
        lengths = np.empty(B, np.int64)
        lengths[order] = sorted_lengths
        return Layout.packed(lengths, order)


def _check_padding_value(padding_value: Any, dt: np.dtype) -> None:
    """TypeError unless a real number; ValueError unless dtype dt holds it exactly (NaN, 0.5 or 300 in an
    integer dtype would be written as something else)."""
    if ((isinstance(padding_value, (bool, np.bool_)) and dt.kind != "b")
            or not isinstance(padding_value, (int, float, np.integer, np.floating, np.bool_))):
        raise TypeError(f"padding_value must be a real number (or a bool for bool data), got "
                        f"{type(padding_value).__name__}")
    if dt.kind in "iub":
        lo, hi = (0, 1) if dt.kind == "b" else (np.iinfo(dt).min, np.iinfo(dt).max)
        if not (lo <= padding_value <= hi and padding_value == int(padding_value)):  # NaN fails the first
            raise ValueError(f"padding_value {padding_value!r} is not representable in dtype {dt}")


def pack_sequences(sequences: Any, lengths: Any = None, batch_first: bool = False,
                   dtype: Any = None) -> PackedSequence:
    """Pack a padded batch ``(T_max, B, *F)`` (``(B, T_max, *F)`` with ``batch_first``) of these lengths, or a
    list of ``(T_b, *F)`` arrays (``lengths`` None), into a :class:`PackedSequence` (torch's
    ``pack_padded_sequence(..., enforce_sorted=False)`` / ``pack_sequence``).

    Sequences are sorted by decreasing length, stably; ``dtype`` defaults to the input's (float32 for a list).
    """
    if lengths is None:
        if not isinstance(sequences, (list, tuple)):
            raise TypeError("pack_sequences needs lengths with a padded array, or a list of (T_b, *F) arrays")
        padded, lens = pad_sequences(sequences, dtype="float32" if dtype is None else dtype)
    else:
        padded = np.asarray(sequences)
        if padded.ndim < 2:
            raise ValueError(f"sequences must have a time and a batch axis, got shape {padded.shape}")
        if batch_first:
            padded = np.swapaxes(padded, 0, 1)                              # (T_max, B, *F)
        lens = check_lengths(lengths, padded.shape[1], padded.shape[0], minimum=1)
        if dtype is not None:
            padded = padded.astype(_numeric_dtype(dtype), copy=False)
    layout = Layout.packed(lens)
    order, unsorted, index, bs = layout.sorted_indices, layout.unsorted_indices, layout.index, layout.batch_sizes
    assert order is not None and unsorted is not None and index is not None and bs is not None   # packed
    flat = padded.reshape((padded.shape[0] * padded.shape[1],) + padded.shape[2:])
    return PackedSequence(np.take(flat, index, axis=0), bs.astype(np.int64), order.astype(np.int64),
                          unsorted.astype(np.int64))


def unpack(packed: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
           total_length: int | None = None) -> Tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`pack_sequences` (torch's ``pad_packed_sequence``): ``(padded, lengths)``, padded
    ``(T, B, *F)`` (``(B, T, *F)`` with ``batch_first``), T = ``total_length`` or the longest length, in the
    original batch order."""
    if not isinstance(packed, PackedSequence):
        raise TypeError(f"packed must be a PackedSequence, got {type(packed).__name__}")
    layout = packed.layout()
    data = np.asarray(packed.data)
    if data.shape[0] != layout.rows:
        raise ValueError(f"packed.data must have sum(batch_sizes) = {layout.rows} rows, got {data.shape[0]}")
    T = layout.T if total_length is None else check_int("total_length", total_length, 0)
    if T < layout.T:
        raise ValueError(f"total_length = {T} is shorter than the longest sequence ({layout.T})")
    _check_padding_value(padding_value, data.dtype)
    padded = np.full((T * layout.B,) + data.shape[1:], padding_value, dtype=data.dtype)
    padded[layout.index if layout.index is not None else slice(None)] = data
    padded = padded.reshape((T, layout.B) + data.shape[1:])
    if batch_first:
        padded = np.ascontiguousarray(np.swapaxes(padded, 0, 1))
    return padded, layout.lengths()
