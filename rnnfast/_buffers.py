"""Memory for the kernels: cache-line-aligned arrays, a check against the machine's memory, and the per-layer
cache of scratch buffers kept across calls.

Every buffer a kernel writes starts on a cache line. With the unit split, the two threads of a time loop
write the two halves of every row (whole packed panels, so each half is a whole number of lines when the row
starts on one); NumPy's large arrays start 16 bytes into a line, which would leave the line at each boundary
written by both threads at every step.
"""
from __future__ import annotations

import functools
import math
import os
import sys
from typing import Any, Hashable, Optional, Tuple

import numpy as np

from ._module import is_grad_enabled

__all__ = ["CACHE_LINE", "aligned_empty", "aligned_zeros", "check_memory", "physical_memory", "Workspace"]

CACHE_LINE = 64     # bytes


def aligned_empty(shape: tuple, dtype: Any) -> np.ndarray:
    """``np.empty(shape, dtype)`` starting on a cache line."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize             # (math.prod: np.prod costs µs a call)
    return _aligned_in(np.empty(nbytes + CACHE_LINE, np.uint8), shape, dtype)


def _aligned_in(raw: np.ndarray, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """An array of ``shape`` in the bytes ``raw`` (1-D uint8, at least one cache line longer), starting on a
    cache line; its ``base`` is ``raw``."""
    start = -raw.ctypes.data % CACHE_LINE
    return raw[start:start + math.prod(shape) * dtype.itemsize].view(dtype).reshape(shape)


def aligned_zeros(shape: tuple, dtype: Any) -> np.ndarray:
    """``np.zeros(shape, dtype)`` starting on a cache line."""
    arr = aligned_empty(shape, dtype)
    arr.fill(0)
    return arr


@functools.lru_cache(maxsize=None)
def physical_memory() -> Optional[int]:
    """Bytes of RAM on this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(nbytes: int, what: str, shape: Tuple[int, ...] = (),
                 hint: str = "split the batch, or the sequence into chunks (rnnfast.TruncatedBPTT)") -> None:
    """MemoryError now if ``nbytes`` exceed the physical memory: with overcommit such an allocation can
    succeed and the process be killed later, while the kernel writes into it."""
    total = physical_memory()
    if total and nbytes > total:
        what += f" of shape {shape}" if shape else ""
        raise MemoryError(f"{what} needs at least {nbytes / 2**30:.3g} GiB, more than this machine's "
                          f"{total / 2**30:.3g} GiB of memory; {hint}")


_RETURNED = 2           # arrays per key that Workspace.returned recycles: this call's and the previous one's


def _references(ring: list, i: int) -> int:
    """References to ``ring[i]`` as this very expression counts them (sys.getrefcount; -1 without it)."""
    return sys.getrefcount(ring[i]) if hasattr(sys, "getrefcount") else -1


def _unreferenced_count() -> Optional[int]:
    """What :func:`_references` gives for an array that only its ring references, measured on this interpreter
    (an interpreter may count the argument's reference or not), or None (never recycle) when a view held
    elsewhere does not raise the count by one."""
    ring = [np.empty(8, np.uint8)]
    alone = _references(ring, 0)
    view = ring[0][2:]                              # held elsewhere: a view keeps its base alive
    held = _references(ring, 0)
    del view
    return alone if alone > 0 and held == alone + 1 and _references(ring, 0) == alone else None


_UNREFERENCED = _unreferenced_count()


class Workspace(dict):
    """A layer's scratch arrays, kept across calls (fresh pages cost page faults).

    A dict from a key (a tuple naming the layer, direction and buffer) to the aligned array last made for it.
    Each key's memory is kept at the largest size asked for: a ragged batch's (rows, ·) arrays change shape
    with every new set of lengths, and take a view of the memory already there instead of a new array.
    """

    def __init__(self) -> None:
        super().__init__()
        self._memory: dict = {}                     # key -> the aligned bytes its arrays are views of
        self._returned: dict = {}                   # key -> the bytes of its last arrays handed to the caller

    def buffer(self, key: Hashable, shape: tuple, dtype: Any) -> np.ndarray:
        """The array kept under ``key`` if it has ``shape`` and ``dtype``, else one of that shape in the key's
        memory (grown when too small), kept in its place. The previous array under ``key`` shares that memory."""
        buf: Optional[np.ndarray] = self.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            dtype = np.dtype(dtype)
            nbytes = math.prod(shape) * dtype.itemsize
            memory = self._memory.get(key)
            if memory is None or memory.nbytes < nbytes:
                memory = self._memory[key] = aligned_empty((nbytes,), np.uint8)
            buf = memory[:nbytes].view(dtype).reshape(shape)
            self[key] = buf
        return buf

    def kept_copy(self, key: Hashable, a: np.ndarray) -> np.ndarray:
        """A copy of ``a`` in the buffer under ``key``: what a backward reads as its forward saw it (x, the
        weights), whatever the caller changes in between."""
        kept = self.buffer(key, a.shape, a.dtype)
        np.copyto(kept, a)
        return kept

    def returned(self, key: Hashable, shape: tuple, dtype: Any) -> np.ndarray:
        """An aligned array of ``shape`` for the caller to keep (a layer's output, dx): in the memory of one of
        the last _RETURNED arrays made under ``key`` that nothing outside this workspace references any more
        (the caller has dropped it and every view of it), else in fresh memory. Its contents are undefined.

        A training step's outputs are megabytes, and the fresh pages of a new array cost a page fault each at
        their first write (10% of a small LSTM's training step, benchmarks/README.md); a loop that drops its
        previous step's output gets that memory back instead. An array the caller still holds is never
        handed out again, as with a fresh allocation. Under ``no_grad`` (an inference loop, which keeps
        nothing between calls) always fresh, and where reference counts do not behave so, as on PyPy, too
        (_unreferenced_count checks at import). Up to _RETURNED dropped arrays per key stay allocated as long
        as the workspace, as its other buffers do."""
        if not is_grad_enabled():                   # inference keeps nothing between calls: fresh memory
            return aligned_empty(shape, dtype)
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize + CACHE_LINE
        ring: list = self._returned.setdefault(key, [])
        for i in range(len(ring) if _UNREFERENCED is not None else 0):
            # referenced by the ring alone: every view anyone holds adds one
            if _references(ring, i) == _UNREFERENCED and ring[i].nbytes >= nbytes:
                ring.append(ring.pop(i))             # most recently handed out last
                return _aligned_in(ring[-1], shape, dtype)
        if len(ring) >= _RETURNED:
            ring.pop(0)                             # forget the oldest (its holder keeps it alive)
        ring.append(np.empty(nbytes, np.uint8))
        return _aligned_in(ring[-1], shape, dtype)

    def zeros(self, key: Hashable, shape: tuple, dtype: Any) -> np.ndarray:
        """Zeros kept under ``key`` as :meth:`buffer` keeps its arrays, read-only: for inputs the kernels only
        read (an initial state not given), so that a write raises instead of changing the next call's. A new
        shape takes a view of the key's memory, filled with zeros once."""
        buf = self.buffer(key, shape, dtype)
        if buf.flags.writeable:                     # just made by buffer (the kept one is read-only)
            buf.fill(0)
            buf.flags.writeable = False
        return buf
