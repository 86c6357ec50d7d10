"""Thread control: rnnfast's OpenMP thread count, per-thread limits, BLAS held to one thread inside the kernels,
and what a forked child may use.

Thread count. ``set_num_threads`` sets the process-wide count; ``thread_limit(n)`` overrides it for the calling
Python thread only, inside a ``with`` block (the estimators' ``n_threads`` uses it, so two estimators fitting in
two threads never change the count anyone else sees). ``get_num_threads`` returns the calling thread's count, and
it is what the layers pass to the kernels.

BLAS. The kernels parallelise over batch chunks with OpenMP and call BLAS from inside those threads, so a threaded
BLAS there would oversubscribe the cores and pay a thread hand-off per small GEMM. While a kernel runs,
:func:`blas_single_thread` holds every BLAS that threadpoolctl sees (scipy's OpenBLAS among them) to one thread,
and restores the previous limits afterwards. The rest of a training step holds it too (``Linear``'s products), or
calls no BLAS (``clip_grad_norm_``'s 2-norm is a pass of rnnfast's own, not a BLAS dot, which OpenBLAS threads
above 10⁴ entries). A threaded call there would wake the BLAS pool, whose workers then keep spinning and take a
core from the next kernel call (benchmarks/training_loops.py measures whole steps). Every caller registers a hold;
the first hold lowers the limits and the last release restores them, so concurrent calls from several Python
threads restore the limits only when the last one leaves, and it works from any thread (rnnfast inside a thread
pool included): see :func:`_set_blas_threads` and :func:`_switch`. A hold reads each library's limit afresh, so a
limit the user sets (threadpoolctl, ``openblas_set_num_threads``) between kernel calls is what it restores.

Interrupts. CPython raises KeyboardInterrupt (and whatever a signal handler raises) on the main thread at
function entries, after calls and at loop ends. A limit is recorded before it is lowered, releasing is
idempotent and a release that an interrupt cuts short is run again before the interrupt propagates, so an
interrupt at any of those points leaves no limit lowered. The one point no Python-level context manager can
cover is the entry of its own ``__exit__``: there the limit is given back when the context manager is freed,
with the interrupt's traceback, as soon as the interrupt has been handled. (A second interrupt within the same
microseconds can still leave BLAS lowered; the next kernel call then restores it.)

Fork. GNU libgomp keeps a thread pool per Python thread that ran a parallel region, and that pool does not
survive ``fork``: a forked child that opens a parallel region on it waits forever for threads that do not
exist (torch hangs the same way). In a child forked (``os.fork``, multiprocessing's "fork" start method,
gunicorn, joblib's fork backends) by a thread that had run the kernels on more than one thread, that thread
therefore runs the kernels on one thread (``get_num_threads()`` returns 1 there, whatever ``set_num_threads``
says), as data.table does under ``mclapply``. Threads the child starts get their own pools and the usual count.
The BLAS limits that kernels on other parent threads held at the fork are restored by the child's first
kernel call, and a lock they held is replaced.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Callable, Optional

import numpy as np

__all__ = ["set_num_threads", "get_num_threads", "thread_limit", "openmp_enabled", "blas_single_thread"]


def _default_threads() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return min(int(env), MAX_THREADS)       # the most set_num_threads takes
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_num_threads: Optional[int] = None          # the process-wide count; None: not yet asked (see _global_threads)


def _kernels() -> Any:
    """The kernel module (imported on first use: it imports this module first, to set the wait policy)."""
    from . import _kernels as kernels
    return kernels


def _global_threads() -> int:
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_threads() if openmp_enabled() else 1
    return _num_threads


class _ThreadState(threading.local):
    """What rnnfast keeps per Python thread."""

    def __init__(self) -> None:
        self.limits: list[_Limit] = []   # the thread_limit blocks open on this thread, innermost last
        self.team = False                # this thread ran kernels on > 1 thread: libgomp keeps a pool for it
        self.forked = False              # ... and this is a forked child of it: that pool is gone (see Fork)


_state = _ThreadState()
_per_thread = False                     # set once a thread_limit or a fork made _state matter (a fast path)


def openmp_enabled() -> bool:
    """True when the kernels were compiled with OpenMP (otherwise they run on one thread)."""
    return bool(_kernels().openmp_enabled())


# The most threads a caller may ask for: 4 × the CPUs, and at least 256. The kernels' teams grow with the work
# up to the count set, and a million threads exhausted the address space, where libgomp ends the process.
MAX_THREADS = max(256, 4 * (os.cpu_count() or 1))


def _check_threads(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) and not hasattr(n, "__index__"):
        raise TypeError(f"n must be a positive int, got {type(n).__name__}")
    n = int(n)
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"n must be a positive int, at most {MAX_THREADS} (4 x the CPUs, at least 256), got {n}")
    return n if openmp_enabled() else 1


def set_num_threads(n: int) -> None:
    """Set the number of threads the kernels use (default: ``OMP_NUM_THREADS``, else the usable cores).

    Process-wide; a thread inside :func:`thread_limit` keeps its own count, and in a forked child the thread
    that forked uses one thread if it had run the kernels on several (see :mod:`rnnfast._threads`)."""
    global _num_threads
    _num_threads = _check_threads(n)


def get_num_threads() -> int:
    """The number of threads the kernels called from this thread use."""
    if not _per_thread:
        return _num_threads if _num_threads is not None else _global_threads()
    state = _state
    if state.forked:
        return 1
    limits = state.limits
    return limits[-1].n if limits else _global_threads()


class _Limit:
    """One open ``thread_limit`` block in a thread's stack (compared by identity)."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


class thread_limit:
    """``with thread_limit(n):`` the kernels called from this Python thread use ``n`` threads inside the block.

    Other threads, and ``get_num_threads()`` outside the block, are unaffected; blocks nest, and ``n=None``
    changes nothing. It is what the estimators' ``n_threads`` uses."""

    _stack: Optional[list] = None                   # the stack the entry went on (class defaults: see __del__)
    _entry: Optional[_Limit] = None

    def __init__(self, n: Optional[int]) -> None:
        global _per_thread
        self._entry = None if n is None else _Limit(_check_threads(n))
        _per_thread = True

    def __enter__(self) -> "thread_limit":
        if self._entry is not None:
            self._stack = _state.limits
            try:
                self._stack.append(self._entry)
            except BaseException:                   # interrupted right after the append: take it back
                self.__exit__()
                raise
        return self

    def __exit__(self, *exc: Any) -> None:
        stack, entry = self._stack, self._entry     # no call before the removal: nothing to interrupt
        if stack is not None and entry in stack:    # this block's entry, wherever it is in the stack
            stack.remove(entry)

    __del__ = __exit__                              # an interrupt at the entry of __exit__ skipped it


_lock = threading.RLock()
_holders: set[int] = set()                          # ids of the blas_single_thread blocks open in any thread
_saved: list[tuple[Callable[[int], Any], int]] = []  # (a library's setter, its limit before the first hold)
_controllers: list | None = None
_RELEASE_TRIES = 3                                   # a release that fails 3 times raises the error


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


def _switch(lc) -> tuple[Callable[[], Any], Callable[[int], Any]]:
    """(get, set) of one library's thread limit, as a hold calls them.

    For OpenBLAS on its own threads, its C functions themselves (what threadpoolctl calls in the end): a hold
    runs at every kernel call, several times a training step, and threadpoolctl's path (its controlling-thread
    rule and lock, taken and handed back: :func:`_set_blas_threads`) costs several times the C call. Any other
    library, or a threadpoolctl without the symbol lookup, goes through threadpoolctl.
    """
    symbol = getattr(lc, "_get_symbol", None)
    if symbol is not None and lc.internal_api == "openblas" and getattr(lc, "threading_layer", "") == "pthreads":
        get, set_ = symbol("openblas_get_num_threads"), symbol("openblas_set_num_threads")
        if get is not None and set_ is not None:
            return get, set_
    return lc.get_num_threads, lambda n: _set_blas_threads(lc, n)


_switches: list | None = None


def _blas_switches() -> list:
    global _switches
    if _switches is None:
        _switches = [_switch(lc) for lc in _blas_controllers()]
    return _switches


def _restore_saved() -> None:
    """Put back the limits the first hold lowered. Idempotent: ``_saved`` is emptied only once all are back."""
    for set_threads, n in _saved:
        set_threads(n)
    _saved.clear()


def _acquire(key: int) -> None:
    with _lock:
        if not _holders:
            _restore_saved()                        # left by a release that two interrupts cut short
            for get_threads, set_threads in _blas_switches():
                n = get_threads()
                if n is not None and n != 1:
                    _saved.append((set_threads, n))  # recorded before it is lowered: a release restores it
                    set_threads(1)
        _holders.add(key)


def _release(key: int) -> None:
    with _lock:
        _holders.discard(key)
        if not _holders:
            _restore_saved()


class blas_single_thread:
    """``with blas_single_thread():`` hold BLAS to one thread for the duration (cheap: two C calls per library)."""

    _held = False                                   # True from just before the hold is taken until it is given back

    def __enter__(self) -> None:
        if get_num_threads() > 1:
            _state.team = True                      # the kernels inside will run a team on this thread
        self._held = True                           # before _acquire: __del__ must release what it did
        try:
            _acquire(id(self))
        except BaseException:                       # interrupted inside: give back what was taken
            self._release()
            raise

    def __exit__(self, *exc: Any) -> None:
        self._release()

    def _release(self) -> None:
        error = None
        for _ in range(_RELEASE_TRIES):
            try:
                _release(id(self))
            except BaseException as exc:            # an interrupt inside the release: finish it, then raise
                error = exc
            else:
                self._held = False
                break
        if error is not None:
            raise error

    def __del__(self) -> None:                      # an interrupt at the entry of __exit__ skipped it
        if self._held:
            _release(id(self))


def _after_fork_in_child() -> None:
    global _lock, _per_thread
    _lock = threading.RLock()                       # another parent thread may have held it at the fork
    _holders.clear()                                # ... and its holds have no thread here: the child's
    # first kernel call restores the limits they lowered (_acquire), not this handler, which must not
    # call into threadpoolctl, whose locks a vanished thread may hold
    if _state.team:
        _state.forked = _per_thread = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def team_threads() -> int:
    """The thread count for a kernel call made now (``get_num_threads()``), noting when this thread runs an
    OpenMP team (above 1), which the fork handler reads."""
    n = get_num_threads()
    if n > 1:
        _state.team = True
    return n


def zero_arrays(arrays: list) -> None:
    """Fill the arrays with zeros: writable C-contiguous ones by the kernels' threads (_kernels.zero_arrays),
    any others with NumPy."""
    fast: list = []
    other: list = []
    for a in arrays:
        ok = isinstance(a, np.ndarray) and a.flags.c_contiguous and a.flags.writeable
        (fast if ok else other).append(a)
    if fast:
        _kernels().zero_arrays(fast, team_threads())
    for a in other:
        a[...] = 0
