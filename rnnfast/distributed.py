r"""Data-parallel training over MPI: a small communicator interface and one Allreduce per update.

Every rank holds the whole model and the whole training set, draws the same mini-batches (same seed) and
runs its shard of each one (:meth:`DataParallel.shard`). Rank r's layers leave in ``.grad`` the gradient
ḡ_r of its mean loss over its n_r scored entries; one Allreduce of the flat buffer
``[n_r·ḡ_r, n_r·L_r, n_r]`` gives every rank the gradient of the whole batch's mean loss::

    g = Σ_r n_r ḡ_r / Σ_r n_r          L = Σ_r n_r L_r / Σ_r n_r

which is exact for shards of any size (a shard may even be empty), so training on p ranks computes the
same updates as one process on the same batches, up to float rounding. Clip after this average (the
gradient is then the global one, as with torch DDP), then step the optimizer: every rank applies the same
update to the same weights, and :class:`DataParallel` broadcasts rank 0's weights at the start so that
they are the same.

Communicators (``rank``, ``size``, ``allreduce_mean_(buf)``, ``allreduce_sum_(buf)``,
``broadcast_(arrays, root=0)``, ``barrier()``):

- :class:`SingleProcessComm`: rank 0 of 1; every operation is a no-op, so code runs unchanged without MPI.
- :class:`MPIComm`: an mpi4py communicator (``COMM_WORLD`` by default). Buffers go to the uppercase
  methods (``Allreduce``, ``Bcast``) as they are: no pickling. mpi4py is imported here only, when an
  MPIComm is made; ``import rnnfast`` never needs it.
- :func:`get_comm` (``"auto"``): MPI when an MPI launcher started this process with more than one rank
  and mpi4py is importable, else the single-process one. The launcher is recognised by its environment
  (``PMI_SIZE``: MPICH, Intel MPI, Slurm's PMI; ``OMPI_COMM_WORLD_SIZE``: Open MPI;
  ``MV2_COMM_WORLD_SIZE``: MVAPICH), so a plain ``python script.py`` does not import mpi4py.

Threads: ranks on one machine share its cores. An MPIComm lowers rnnfast's thread count to this rank's
share of the cores (``set_threads=True``, the default): each core counts 1/k for each of the k ranks on the
node allowed to run on it (their affinity masks, from ``Split_type(COMM_TYPE_SHARED)``), which is
cores ÷ local ranks when nothing is pinned and all of a rank's own cores when the launcher pinned it
alone to them. It never raises the count (``OMP_NUM_THREADS=1`` stays 1).

When scaling out pays. Per update, a ring allreduce sends and receives 2·(p−1)/p · G bytes per rank
(G = the gradient: 4 bytes per parameter in float32), plus 2·(p−1) latencies; the compute (forward + BPTT,
≈ 3 × 2·T·B·G_h·(I+H) FLOPs for G_h gate rows) is split over the p ranks. Take an LSTM with I=32, H=128
and a 10-class head: 84 234 parameters, G = 337 kB. At p=2 each rank moves 337 kB per update: ≈ 0.27 ms
at 10 Gbit/s, 0.06 ms through shared memory on one machine (measured). At T=50, B=64 an update is
1.6 GFLOP, about 60 ms on one core of our (busy, 2-core) test machine, 30 ms per rank at p=2: the
allreduce costs ~1% over 10 GbE. At T=10, B=8 an update is 0.04 GFLOP, ~1 ms on one core, and the
allreduce and the wait for the slower rank cost as much as the compute: 2 ranks ran slower than 1.
Scaling out pays when the compute per rank per update, 6·T·(B/p)·G_h·(I+H) / (FLOP/s of a core's
threads), is well above 2·(p−1)/p · G / bandwidth; ``python benchmarks/mpi_scaling.py [--shape TxB]``
measures both here.

Training is equal to one process step by step; over many epochs, rounding differences grow as with any
change of summation order (a different thread count, too), so long runs agree statistically, not digit
by digit.
"""
from __future__ import annotations

import hashlib
import math
import numbers
import os
import sys
import warnings
from fractions import Fraction
from typing import Any, Iterable, Optional, Sequence, TypeVar

import numpy as np

from ._module import Parameter
from ._threads import get_num_threads, set_num_threads
from ._validation import check_parameters, check_real

__all__ = ["Communicator", "SingleProcessComm", "MPIComm", "get_comm", "launcher_world_size",
           "DataParallel", "check_same_on_all_ranks", "shared_seed", "thread_budget"]

_S = TypeVar("_S")

# The world size an MPI launcher exports to each process it starts, by launcher.
_LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


# ---------------------------------------------------------------------------------------- communicators
class Communicator:
    """What data-parallel training needs from a communicator. All operations are collective: every rank
    calls them, in the same order. Buffers are C-contiguous NumPy arrays, changed in place."""

    rank: int = 0           # this process, 0 … size − 1
    size: int = 1           # processes in the job
    local_rank: int = 0     # this process among those on its machine
    local_size: int = 1     # processes on this machine

    def allreduce_sum_(self, buf: np.ndarray) -> np.ndarray:
        """buf ← Σ over ranks of buf (elementwise, in place); returns buf."""
        raise NotImplementedError

    def allreduce_mean_(self, buf: np.ndarray) -> np.ndarray:
        """buf ← (1/size) Σ over ranks of buf (elementwise, in place); returns buf."""
        self.allreduce_sum_(buf)
        if self.size > 1:
            buf /= self.size
        return buf

    def broadcast_(self, arrays: Iterable[np.ndarray], root: int = 0) -> None:
        """Every rank's arrays ← root's (same shapes and dtypes on every rank), in place."""
        raise NotImplementedError

    def barrier(self) -> None:
        """Return once every rank has called it."""

    def __deepcopy__(self, memo: dict) -> "Communicator":
        return self     # a handle on the job, not a value (scikit-learn's clone deep-copies parameters)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class SingleProcessComm(Communicator):
    """Rank 0 of a job of one: reductions and broadcasts leave the buffers as they are."""

    def allreduce_sum_(self, buf: np.ndarray) -> np.ndarray:
        return buf

    def broadcast_(self, arrays: Iterable[np.ndarray], root: int = 0) -> None:
        if root != 0:
            raise ValueError(f"root must be 0 in a single-process job, got {root}")


class MPIComm(Communicator):
    """An mpi4py communicator (``MPI.COMM_WORLD`` by default). Making one is collective over it.

    ``set_threads`` (default True): lower rnnfast's thread count to this rank's share of its machine's
    cores (see the module docstring); call ``rnnfast.set_num_threads`` afterwards to choose otherwise.
    """

    def __init__(self, comm: Any = None, *, set_threads: bool = True) -> None:
        from mpi4py import MPI   # here only: importing rnnfast must never need mpi4py

        self._MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)         # the ranks on this machine
        try:
            self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
            mine = _usable_cpus()
            # Once, at set-up: the node's affinity masks, a few short lists (the only pickled exchange).
            masks = [set(m) for m in node.allgather(sorted(mine))] if mine else []
        finally:
            node.Free()
        self.thread_budget = (thread_budget(mine, masks) if mine
                              else max(1, (os.cpu_count() or 1) // self.local_size))
        if set_threads:
            set_num_threads(min(get_num_threads(), self.thread_budget))

    def allreduce_sum_(self, buf: np.ndarray) -> np.ndarray:
        self.comm.Allreduce(self._MPI.IN_PLACE, _checked_buffer(buf), op=self._MPI.SUM)
        return buf

    def broadcast_(self, arrays: Iterable[np.ndarray], root: int = 0) -> None:
        for a in arrays:
            self.comm.Bcast(_checked_buffer(a), root=root)

    def barrier(self) -> None:
        self.comm.Barrier()

    def __reduce__(self) -> tuple:
        # Pickles (for a fitted estimator whose ``comm`` is this object) as "the world communicator of
        # the process that loads it"; other communicators cannot be recreated elsewhere.
        if self.comm != self._MPI.COMM_WORLD:
            raise TypeError("only an MPIComm of COMM_WORLD can be pickled; pass comm='auto' to estimators")
        return (get_comm, ("mpi",))


def _checked_buffer(a: Any) -> np.ndarray:
    if not (isinstance(a, np.ndarray) and a.flags.c_contiguous and a.flags.writeable):
        raise TypeError(f"communication buffers must be writeable C-contiguous numpy arrays, got "
                        f"{type(a).__name__}{'' if not isinstance(a, np.ndarray) else ' ' + str(a.flags)}")
    return a


def _usable_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:       # not on Linux: no affinity masks, MPIComm divides cpu_count instead
        return set()


def thread_budget(mine: set[int], masks: Sequence[set[int]]) -> int:
    """This rank's share of the cores: Σ over its cores of 1/(ranks on the node allowed on that core).

    ``mine``: this rank's affinity mask; ``masks``: every local rank's (``mine`` among them). Unpinned
    ranks share all cores (cores ÷ ranks); a rank pinned alone to its cores gets all of them. At least 1.
    """
    share = sum((Fraction(1, max(1, sum(cpu in m for m in masks))) for cpu in mine), Fraction(0))
    return max(1, math.floor(share))


# Created once per process: making an MPIComm is collective, and every estimator fit would repeat it.
_world: Optional[MPIComm] = None


def launcher_world_size() -> Optional[int]:
    """The world size an MPI launcher gave this process (from its environment), or None if none did."""
    for var in _LAUNCHER_SIZE_VARS:
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return None


def get_comm(comm: Any = "auto") -> Communicator:
    """A communicator for ``comm``:

    - ``"auto"``: :class:`MPIComm` of ``COMM_WORLD`` when this process was started by an MPI launcher
      with more than one rank (or mpi4py is already imported and its world is larger than 1) and mpi4py
      is importable; otherwise :class:`SingleProcessComm` (warning when a launcher said several ranks
      but mpi4py is missing: every rank would then train alone). Never imports mpi4py in a plain run.
    - ``"mpi"``: :class:`MPIComm` of ``COMM_WORLD`` (``ImportError`` without mpi4py).
    - ``None`` or ``"single"``: :class:`SingleProcessComm`.
    - a :class:`Communicator`: itself; an mpi4py communicator: wrapped in an :class:`MPIComm`.
    """
    global _world
    if isinstance(comm, Communicator):
        return comm
    if comm is None or (isinstance(comm, str) and comm == "single"):
        return SingleProcessComm()
    if isinstance(comm, str) and comm == "mpi":
        if _world is None:
            _world = MPIComm()
        return _world
    if isinstance(comm, str) and comm == "auto":
        if _world is not None:
            return _world
        mpi = sys.modules.get("mpi4py.MPI")
        if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
            return get_comm("mpi") if mpi.COMM_WORLD.Get_size() > 1 else SingleProcessComm()
        n = launcher_world_size()
        if n is None or n < 2:
            return SingleProcessComm()
        try:
            import mpi4py  # noqa: F401
        except ImportError:
            warnings.warn(f"started by an MPI launcher with {n} ranks, but mpi4py is not installed, so "
                          f"every rank trains on its own; pip install 'rnnfast[mpi]'", RuntimeWarning,
                          stacklevel=2)
            return SingleProcessComm()
        return get_comm("mpi")
    if hasattr(comm, "Allreduce") and hasattr(comm, "Get_rank"):
        return MPIComm(comm)
    raise ValueError(f"comm must be 'auto', 'mpi', 'single', None, an rnnfast.distributed.Communicator or "
                     f"an mpi4py communicator, got {comm!r}")


# --------------------------------------------------------------------------------- data-parallel training
class DataParallel:
    """Data-parallel training of ``params`` over ``comm``: start identical, average gradients in one call.

    On construction, rank ``root``'s weights are broadcast to every rank, and every parameter's ``.grad``
    becomes a view into one flat buffer (``self.buffer``, two trailing slots for the loss and the count),
    so that an update needs a single Allreduce. A training step::

        dp = DataParallel(params, comm)
        for batch in batches:                       # the same global batches on every rank
            mine = dp.shard(batch)                  # this rank's part (possibly empty)
            loss, count = ..., len(mine)            # forward + backward: .grad = ∂(mean loss over mine)
            loss, count = dp.average_gradients_(loss, count)    # .grad = ∂(mean loss over the batch)
            rnnfast.clip_grad_norm_(params, 1.0)    # after the average, on the global gradient
            opt.step(); opt.zero_grad()
    """

    def __init__(self, params: Iterable[Parameter], comm: Any = "auto", root: int = 0) -> None:
        self.params = check_parameters("params", params)
        self.comm = get_comm(comm)
        dtypes = {p.dtype for p in self.params}
        if len(dtypes) != 1:
            raise ValueError(f"DataParallel needs parameters of one dtype, got {sorted(map(str, dtypes))}")
        for i, p in enumerate(self.params):
            if not isinstance(p.grad, np.ndarray) or p.grad.shape != p.data.shape:
                got = f"shape {p.grad.shape}" if isinstance(p.grad, np.ndarray) else type(p.grad).__name__
                raise ValueError(f"DataParallel gathers every parameter's .grad into one buffer: params[{i}].grad "
                                 f"must be an array of its shape {p.data.shape}, got {got}")
        self.comm.broadcast_([p.data for p in self.params], root=root)
        sizes = [p.grad.size for p in self.params]
        self.buffer = np.zeros(sum(sizes) + 2, dtype=dtypes.pop())          # [grads…, loss·n, n]
        offset = 0
        for p, n in zip(self.params, sizes):
            view = self.buffer[offset:offset + n].reshape(p.grad.shape)
            view[...] = p.grad
            p.grad = view                                                   # the layers add into it
            offset += n

    @property
    def grads(self) -> np.ndarray:
        """Every parameter's gradient, concatenated (a view)."""
        return self.buffer[:-2]

    def shard(self, batch: _S) -> _S:
        """This rank's contiguous part of ``batch`` (a sequence or array); sizes differ by at most 1."""
        q, r = divmod(len(batch), self.comm.size)       # type: ignore[arg-type]
        lo = self.comm.rank * q + min(self.comm.rank, r)
        return batch[lo:lo + q + (self.comm.rank < r)]  # type: ignore[index]

    def average_gradients_(self, loss: float, count: float) -> tuple[float, float]:
        """``.grad`` holds ∂(this rank's mean loss over ``count`` entries); afterwards ∂(the batch's mean).

        One Allreduce of [count·g, count·loss, count]. Returns the batch's (mean loss, count); (0, 0) and
        zero gradients when no rank had an entry.
        """
        count = check_real("count", count, 0.0, math.inf, high_inclusive=False)   # checked before .grad changes
        if isinstance(loss, bool) or not isinstance(loss, (numbers.Real, np.ndarray)) or np.ndim(loss) != 0:
            raise TypeError(f"loss must be a real number, got {type(loss).__name__}")
        buf = self.buffer
        grads = buf[:-2]
        grads *= count                                  # ∂(sum of this rank's losses)
        buf[-2], buf[-1] = loss * count, count
        self.comm.allreduce_sum_(buf)
        total = float(buf[-1])
        if total == 0:
            return 0.0, 0.0
        grads /= total
        return float(buf[-2]) / total, total


def check_same_on_all_ranks(comm: Communicator, arrays: Iterable[Any], what: str) -> None:
    """Raise ``ValueError`` on every rank unless every rank holds the same ``arrays`` (shapes, dtypes, bytes).

    Two small collectives: rank 0's fingerprint is broadcast, then the ranks that differ are counted.
    """
    if comm.size == 1:
        return
    digest = hashlib.blake2b(digest_size=8)
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(repr((a.shape, a.dtype.str)).encode())
        digest.update(a.data if a.dtype.kind != "O" else repr(a.tolist()).encode())
    mine = np.frombuffer(digest.digest(), dtype=np.int64).copy()           # (1,)
    root = mine.copy()
    comm.broadcast_([root])
    differ = np.array([float(mine[0] != root[0])])
    comm.allreduce_sum_(differ)
    if differ[0]:
        raise ValueError(f"{int(differ[0])} of {comm.size} ranks hold different {what} than rank 0: "
                         f"data-parallel training needs the whole training set on every rank (each rank "
                         f"trains on its shard of every mini-batch)")


def shared_seed(comm: Communicator, rng: np.random.Generator) -> np.ndarray:
    """Entropy drawn from rank 0's ``rng``, the same on every rank (for ``np.random.default_rng``)."""
    words = rng.integers(0, 2**63 - 1, size=4, dtype=np.int64)
    comm.broadcast_([words])
    return words
