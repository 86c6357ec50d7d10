"""Thread control: rnnfast's OpenMP thread count, and BLAS held to one thread inside the kernels.

The kernels parallelise over batch chunks with OpenMP and call BLAS from inside those threads, so a
threaded BLAS there would oversubscribe the cores and pay a thread hand-off per small GEMM. While a kernel
runs, :func:`blas_single_thread` holds every BLAS that threadpoolctl sees (scipy's OpenBLAS among them) to
one thread, and restores the previous limits afterwards. It is reference-counted, so concurrent calls
from several Python threads restore the limits only when the last one leaves, and it works from any
thread (rnnfast inside a thread pool included): see :func:`_set_blas_threads`.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Iterator

import numpy as np

# Idle OpenMP workers sleep instead of spinning (the user's OMP_WAIT_POLICY / GOMP_SPINCOUNT win). A kernel
# opens few parallel regions per call, so the wake-up is cheap, while spinning workers on a shared or busy
# machine steal the cores the other threads need: measured at load 9 on 2 cores, a small 2-thread LSTM call
# went from ~0.07 ms (passive) to ~16 ms median (spinning). libgomp reads this once, as our extension loads
# it; the variable is removed again so that other OpenMP libraries loaded later keep their defaults.
_set_wait_policy = "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ
if _set_wait_policy:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
try:
    from . import _recurrent
finally:
    if _set_wait_policy:
        del os.environ["OMP_WAIT_POLICY"]

__all__ = ["set_num_threads", "get_num_threads", "openmp_enabled", "blas_single_thread"]


def _default_threads() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_num_threads = _default_threads() if _recurrent.openmp_enabled() else 1


def openmp_enabled() -> bool:
    """True when the kernels were compiled with OpenMP (otherwise they run on one thread)."""
    return bool(_recurrent.openmp_enabled())


def set_num_threads(n: int) -> None:
    """Set the number of threads the kernels use (default: ``OMP_NUM_THREADS``, else the usable cores)."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int) and not hasattr(n, "__index__"):
        raise TypeError(f"n must be a positive int, got {type(n).__name__}")
    n = int(n)
    if not 1 <= n <= 2**31 - 1:  # the kernels take a C int
        raise ValueError(f"n must be a positive int below 2**31, got {n}")
    _num_threads = n if openmp_enabled() else 1


def get_num_threads() -> int:
    """The number of threads the kernels use."""
    return _num_threads


_lock = threading.Lock()
_depth = 0
_saved: list[tuple[object, int]] = []
_controllers: list | None = None


def _blas_controllers() -> list:
    global _controllers
    if _controllers is None:
        from threadpoolctl import ThreadpoolController

        _controllers = list(ThreadpoolController().select(user_api="blas").lib_controllers)
    return _controllers


def _set_blas_threads(lc, n: int) -> None:
    """``lc.set_num_threads(n)``, effective from any Python thread.

    threadpoolctl (>= 3.6) lets only one "controlling" thread change a pthreads OpenBLAS and silently ignores
    the others, and the first thread to set a limit keeps control: after one rnnfast call on the main thread,
    calls from a thread pool would leave BLAS threaded inside the kernels. The pool is process-wide either
    way, so take control for this one change and hand it back.
    """
    clear = getattr(type(lc), "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)
    lc.set_num_threads(n)
    if clear is not None:
        clear()


@contextlib.contextmanager
def blas_single_thread() -> Iterator[None]:
    """Hold BLAS to one thread for the duration (cheap: two C calls per library)."""
    global _depth
    with _lock:
        if _depth == 0:
            _saved.clear()
            for lc in _blas_controllers():
                n = lc.get_num_threads()
                if n is not None and n != 1:
                    _saved.append((lc, n))
                    _set_blas_threads(lc, 1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for lc, n in _saved:
                    _set_blas_threads(lc, n)
                _saved.clear()


def zero_arrays(arrays: list) -> None:
    """Fill the arrays with zeros: writable C-contiguous ones by the kernels' threads (_recurrent.zero_arrays),
    any others with NumPy."""
    fast: list = []
    other: list = []
    for a in arrays:
        ok = isinstance(a, np.ndarray) and a.flags.c_contiguous and a.flags.writeable
        (fast if ok else other).append(a)
    if fast:
        _recurrent.zero_arrays(fast, _num_threads)
    for a in other:
        a[...] = 0
