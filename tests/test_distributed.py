"""rnnfast.distributed and data-parallel estimators: p ranks train the model one process trains on the
same global batches (up to rounding), whatever the shard sizes; every rank ends identical; plain runs never
import mpi4py.

Most tests simulate p ranks as p threads of this process (``ThreadComm``), so they run without MPI. The
MPI test runs ``mpiexec -n 2 python tests/_mpi_worker.py`` and is skipped when mpi4py or mpiexec is
missing (``pip install ".[test,mpi]"`` installs both).
"""
from __future__ import annotations

import importlib.util
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from conftest import CHILD_CWD

import rnnfast
from rnnfast import distributed
from rnnfast.distributed import DataParallel, SingleProcessComm, thread_budget

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # `import _mpi_worker` under any import mode
import _mpi_worker  # noqa: E402
from _mpi_worker import CONFIGS, data, estimator  # noqa: E402

LAUNCHER_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
TOL = dict(rtol=1e-9, atol=1e-12)          # float64: p ranks against one process, summation order apart


# ---------------------------------------------------------------------------- p ranks as threads, no MPI
class _Group:
    def __init__(self, size):
        self.size = size
        self.barrier = threading.Barrier(size, timeout=60)
        self.slots = [None] * size


class ThreadComm(distributed.Communicator):
    """Rank ``rank`` of ``group``: collectives meet at a barrier; sums run in rank order on every rank."""

    def __init__(self, group, rank):
        self.group, self.rank, self.size = group, rank, group.size
        self.local_rank, self.local_size = rank, group.size

    def _exchange(self, value):
        self.group.slots[self.rank] = value
        self.group.barrier.wait()
        values = list(self.group.slots)
        self.group.barrier.wait()            # nobody writes the next collective's slot before all have read
        return values

    def allreduce_sum_(self, buf):
        total = self._exchange(buf.copy())
        buf[...] = total[0]
        for part in total[1:]:
            buf += part
        return buf

    def broadcast_(self, arrays, root=0):
        arrays = list(arrays)
        sent = self._exchange([a.copy() for a in arrays] if self.rank == root else None)[root]
        for a, s in zip(arrays, sent):
            a[...] = s


def run_ranks(size, fn):
    """fn(comm) on ``size`` threads, one rank each; returns their results in rank order (re-raises)."""
    group = _Group(size)
    results, errors = [None] * size, []

    def target(rank):
        try:
            results[rank] = fn(ThreadComm(group, rank))
        except BaseException as exc:             # noqa: BLE001 - re-raised below
            errors.append(exc)
            group.barrier.abort()

    threads = [threading.Thread(target=target, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def weights(est):
    return {k: v.copy() for k, v in est._get_weights().items()}


def assert_weights_close(a, b, **tol):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], err_msg=k, **(tol or TOL))


# ------------------------------------------------------------------------------------- the communicators
def test_single_process_comm_is_a_no_op():
    comm = SingleProcessComm()
    assert (comm.rank, comm.size, comm.local_rank, comm.local_size) == (0, 1, 0, 1)
    buf = np.arange(5.0)
    assert comm.allreduce_mean_(buf) is buf and comm.allreduce_sum_(buf) is buf
    np.testing.assert_array_equal(buf, np.arange(5.0))
    comm.broadcast_([buf])
    np.testing.assert_array_equal(buf, np.arange(5.0))
    comm.barrier()


def test_get_comm_choices(monkeypatch):
    for var in LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    assert isinstance(distributed.get_comm(None), SingleProcessComm)
    assert isinstance(distributed.get_comm("single"), SingleProcessComm)
    if "mpi4py.MPI" not in sys.modules:         # (the MPI test's parent never imports it)
        assert isinstance(distributed.get_comm("auto"), SingleProcessComm)
    comm = SingleProcessComm()
    assert distributed.get_comm(comm) is comm
    with pytest.raises(ValueError, match="comm must be"):
        distributed.get_comm("nccl")
    monkeypatch.setenv("PMI_SIZE", "1")
    assert distributed.launcher_world_size() == 1
    if "mpi4py.MPI" not in sys.modules:
        assert isinstance(distributed.get_comm("auto"), SingleProcessComm)


def test_allreduce_mean_over_ranks():
    out = run_ranks(3, lambda comm: comm.allreduce_mean_(np.full(4, float(comm.rank))))
    for buf in out:
        np.testing.assert_array_equal(buf, np.ones(4))


def child_env(**extra):
    """This environment without a launcher's variables, importing the rnnfast this test imported."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(os.path.dirname(rnnfast.__file__)),
                                                      env.get("PYTHONPATH")]))
    return {**env, **extra}


def run_python(code, env_update=None):
    env = child_env(**(env_update or {}))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=120, cwd=CHILD_CWD)


def test_plain_runs_never_import_mpi4py():
    """import rnnfast, comm=None and comm="auto" without a launcher: mpi4py is neither needed nor imported."""
    res = run_python("""
        import sys
        sys.modules["mpi4py"] = None                    # any import of mpi4py now fails
        import numpy as np, rnnfast
        from rnnfast import distributed
        assert isinstance(distributed.get_comm("auto"), distributed.SingleProcessComm)
        X, y = np.random.default_rng(0).standard_normal((20, 4, 1)), np.arange(20) % 2
        for comm in (None, "auto"):
            rnnfast.SequenceClassifier(hidden_size=4, max_epochs=1, n_threads=1, comm=comm).fit(X, y)
        print("ok")
    """)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_auto_under_a_launcher_without_mpi4py_warns_and_trains_alone():
    res = run_python("""
        import sys, warnings
        sys.modules["mpi4py"] = None
        from rnnfast import distributed
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            comm = distributed.get_comm("auto")
        assert isinstance(comm, distributed.SingleProcessComm), comm
        assert any("mpi4py is not installed" in str(x.message) for x in w), [str(x.message) for x in w]
        print("ok")
    """, {"PMI_SIZE": "2"})
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


@pytest.mark.parametrize("cpus, masks, expected", [
    ({0, 1}, [{0, 1}, {0, 1}], 1),                                   # 2 cores, 2 unpinned ranks
    (set(range(8)), [set(range(8))] * 3, 2),                         # 8 cores ÷ 3 ranks, rounded down
    (set(range(16)), [set(range(16))], 16),                          # one rank per machine
    ({2}, [{0}, {1}, {2}, {3}], 1),                                  # pinned one core each
    (set(range(8)), [set(range(8)), set(range(8, 16))], 8),          # pinned to a socket each
    ({0, 1}, [{0, 1}] * 4, 1),                                       # more ranks than cores: still 1
])
def test_thread_budget_is_this_ranks_share_of_the_cores(cpus, masks, expected):
    assert thread_budget(cpus, masks) == expected


# ---------------------------------------------------------------------------------------- DataParallel
@pytest.mark.parametrize("n", [0, 1, 2, 5, 7, 12])
@pytest.mark.parametrize("size", [1, 2, 3])
def test_shards_partition_every_batch(n, size):
    shards = run_ranks(size, lambda comm: DataParallel([rnnfast.Parameter(np.zeros(1))], comm).shard(
        np.arange(n)))
    np.testing.assert_array_equal(np.concatenate(shards), np.arange(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_data_parallel_starts_from_rank0_weights_and_averages_by_shard_size():
    counts = [3.0, 0.0, 5.0]          # one rank scores nothing (its gradient is zero)

    def rank(comm):
        lin = rnnfast.Linear(3, 2, dtype="float64", seed=comm.rank)     # different weights on each rank
        dp = DataParallel(lin.parameters(), comm)
        assert all(p.grad.base is dp.buffer for p in lin.parameters())   # the gradients live in one buffer
        for i, p in enumerate(lin.parameters()):
            p.grad[...] = (comm.rank + 1) * (i + 1) if counts[comm.rank] else 0.0   # ∂(mean over the shard)
        loss, count = dp.average_gradients_(loss=float(comm.rank + 1), count=counts[comm.rank])
        return lin.state_dict(), [p.grad.copy() for p in lin.parameters()], loss, count

    out = run_ranks(3, rank)
    ref = rnnfast.Linear(3, 2, dtype="float64", seed=0).state_dict()
    w_mean = (3 * 1 + 5 * 3) / 8                                         # Σ n_r·(r+1) / Σ n_r
    for state, grads, loss, count in out:
        for k in ref:
            np.testing.assert_array_equal(state[k], ref[k])
        for i, g in enumerate(grads):
            np.testing.assert_allclose(g, w_mean * (i + 1), rtol=1e-15)
        assert count == 8 and loss == pytest.approx(w_mean, rel=1e-15)


def test_bad_loss_or_count_leaves_the_gradients_and_a_missing_grad_is_named():
    lin = rnnfast.Linear(2, 1, dtype="float64")
    dp = DataParallel(lin.parameters(), SingleProcessComm())
    for p in lin.parameters():
        p.grad[...] = 1.0
    for loss, count, exc, match in ((None, 4, TypeError, "loss must be a real number"),
                                    (0.5, float("nan"), ValueError, "count"), (0.5, -4, ValueError, "count")):
        with pytest.raises(exc, match=match):
            dp.average_gradients_(loss, count)
        assert all(np.all(p.grad == 1.0) for p in lin.parameters())    # not scaled by the count
    assert dp.average_gradients_(np.float64(0.5), 4) == (0.5, 4.0)
    other = rnnfast.Linear(3, 1, dtype="float64")
    other.bias.grad = None
    with pytest.raises(ValueError, match=r"params\[1\]\.grad must be an array"):
        DataParallel(other.parameters(), SingleProcessComm())


def test_different_data_on_a_rank_raises_on_every_rank():
    def rank(comm):
        X = np.zeros((10, 3, 1)) + (comm.rank == 2)
        try:
            distributed.check_same_on_all_ranks(comm, [X], "X and y")
        except ValueError as exc:
            return str(exc)
        return None

    messages = run_ranks(3, rank)
    assert all(m is not None and "1 of 3 ranks hold different X and y" in m for m in messages)


# ----------------------------------------------------------------------------- data-parallel estimators
@pytest.mark.parametrize("name, weighted, extra", [(name, False, {}) for name in sorted(CONFIGS)] + [
    ("classifier", True, {}), ("classifier", True, {"mixup": 0.0}), ("regressor", True, {})])
@pytest.mark.parametrize("size", [2, 3])
def test_p_ranks_train_the_single_process_model(name, size, weighted, extra):
    """Uneven and empty shards, truncated BPTT, clipping, early stopping, mixup, sample weights: the same
    weights and losses."""
    X, y = data(name)
    sw = np.random.default_rng(1).uniform(0.2, 3.0, len(X)) if weighted else None
    single = estimator(name, None, **extra).fit(X, y, sample_weight=sw)
    ranks = run_ranks(size, lambda comm: estimator(name, comm, **extra).fit(X, y, sample_weight=sw))
    assert_weights_close(weights(ranks[0]), weights(single))
    np.testing.assert_allclose(ranks[0].history_["loss"], single.history_["loss"], rtol=1e-12)
    assert ranks[0].n_epochs_ == single.n_epochs_
    for other in ranks[1:]:                                   # every rank holds the same model, bit for bit
        for k, v in weights(other).items():
            np.testing.assert_array_equal(v, weights(ranks[0])[k], err_msg=k)


def test_a_comm_of_one_process_changes_nothing(monkeypatch):
    for var in LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    X, y = data("classifier")
    ref = weights(estimator("classifier", None).fit(X, y))
    for comm in ("auto", SingleProcessComm()):
        got = weights(estimator("classifier", comm).fit(X, y))
        for k in ref:
            np.testing.assert_array_equal(got[k], ref[k], err_msg=k)


def test_unseeded_and_dropout_fits_stay_identical_across_ranks():
    """random_state=None: rank 0's seed is shared, or the ranks would shard different batches; dropout
    masks differ between ranks while the weights stay identical."""
    X, y = data("classifier")

    def rank(comm):
        est = estimator("classifier", comm, random_state=None, num_layers=2, dropout=0.3, max_epochs=2)
        return weights(est.fit(X, y))

    a, b = run_ranks(2, rank)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_only_rank0_saves_and_a_comm_parameter_pickles(tmp_path):
    X, y = data("classifier")
    paths = [tmp_path / "r0.npz", tmp_path / "r1.npz"]
    ests = run_ranks(2, lambda comm: estimator("classifier", comm, max_epochs=1).fit(X, y))
    assert [e.save(p) for e, p in zip(ests, paths)] == [str(p) for p in paths]
    assert paths[0].exists() and not paths[1].exists()
    loaded = rnnfast.load(paths[0])
    assert loaded.comm is None                       # a communicator is not saved with the model
    np.testing.assert_array_equal(loaded.predict_proba(X[:5]), ests[0].predict_proba(X[:5]))
    single = estimator("classifier", SingleProcessComm(), max_epochs=1).fit(X, y)
    assert pickle.loads(pickle.dumps(single)).comm.size == 1
    sk = pytest.importorskip("sklearn.base")
    assert sk.clone(single).comm is single.comm      # clone keeps the handle, not a copy of it


def test_a_bad_comm_names_the_parameter():
    with pytest.raises(ValueError, match="comm: comm must be"):
        estimator("classifier", "gloo").fit(*data("classifier"))


# ------------------------------------------------------------------------------------------- real MPI
def _mpiexec():
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")     # the mpich wheel's, in a venv
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


@pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None,
                    reason="mpi4py is not installed (pip install '.[mpi]')")
@pytest.mark.skipif(_mpiexec() is None, reason="no mpiexec on PATH (pip install '.[mpi]' provides one)")
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_mpiexec_two_ranks_train_the_single_process_model(name, tmp_path):
    env = child_env(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",   # if it is Open MPI's
                    OMPI_MCA_rmaps_base_oversubscribe="1")
    cmd = [_mpiexec(), "-n", "2", sys.executable, _mpi_worker.__file__, name, str(tmp_path)]
    try:
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(cmd)} did not finish in 120 s: {exc.stderr}")
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}"

    single = estimator(name, None).fit(*data(name))
    r0, r1 = (dict(np.load(tmp_path / f"rank{r}.npz")) for r in (0, 1))
    assert int(r0["size"]) == 2
    w0 = {k[2:]: v for k, v in r0.items() if k.startswith("w/")}
    assert_weights_close(w0, weights(single))
    np.testing.assert_allclose(r0["loss"], single.history_["loss"], rtol=1e-12)
    for k, v in w0.items():                                   # both ranks hold the same model, bit for bit
        np.testing.assert_array_equal(r1["w/" + k], v, err_msg=k)
    saved = weights(rnnfast.load(tmp_path / "model.npz"))     # written once, by rank 0
    for k in saved:
        np.testing.assert_array_equal(saved[k], w0[k], err_msg=k)
    # progress only from rank 0
    assert (tmp_path / "stderr0.txt").read_text().strip()
    assert not (tmp_path / "stderr1.txt").read_text().strip()
    # threads: this rank's share of the node's cores, never more than before
    masks = [set(r["mask"].tolist()) for r in (r0, r1)]
    if int(r0["local_size"]) == 2 and all(masks):
        for r, mask in zip((r0, r1), masks):
            assert int(r["threads_after"]) == min(int(r["threads_before"]), thread_budget(mask, masks))
        assert sum(int(r["threads_after"]) for r in (r0, r1)) <= max(len(masks[0] | masks[1]), 2)
