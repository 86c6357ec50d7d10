"""Threads and the GIL: the kernels release the GIL, so layers run in parallel from Python threads.

- Separate layer objects in separate threads give exactly the results of running them one after the other.
- One layer object used from two threads at once raises RuntimeError (its scratch buffers and forward cache
  are per object); the lock is released after every call, also after errors.
- Nested use (rnnfast inside a thread pool) does not oversubscribe: each calling thread uses at most
  ``rnnfast.get_num_threads()`` OpenMP threads, BLAS is held to one thread while a kernel runs, and the
  BLAS limits are back to what they were afterwards.
"""
from __future__ import annotations

import concurrent.futures as cf
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import rnnfast
from rnnfast import _kernels
from conftest import CHILD_CWD, child_env, make_layer

threadpoolctl = pytest.importorskip("threadpoolctl")


def _train_step(layer, x, dout):
    """One forward + backward from zeroed gradients; copies of everything it produces."""
    layer.zero_grad()
    out, state = layer(x)
    dx, _ = layer.backward(dout)
    return [np.array(out), np.array(state[0] if isinstance(state, tuple) else state), dx] + \
        [p.grad.copy() for p in layer.parameters()]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cell, bidirectional", [("lstm", False), ("gru", True), ("elman-tanh", False)])
def test_separate_layers_in_threads_equal_sequential_runs(cell, bidirectional, threads, restore_threads):
    rnnfast.set_num_threads(threads)
    rng = np.random.default_rng(0)
    models = [make_layer(cell, 16, 32, num_layers=2, bidirectional=bidirectional, seed=s) for s in range(2)]
    D = 2 if bidirectional else 1
    xs = [rng.standard_normal((30, 16, 16)).astype(np.float32) for _ in models]
    douts = [rng.standard_normal((30, 16, 32 * D)).astype(np.float32) for _ in models]
    expected = [_train_step(m, x, d) for m, x, d in zip(models, xs, douts)]
    barrier = threading.Barrier(len(models))

    def run(i):
        barrier.wait()
        return [_train_step(models[i], xs[i], douts[i]) for _ in range(5)]
    with cf.ThreadPoolExecutor(len(models)) as pool:
        results = list(pool.map(run, range(len(models))))
    for i, runs in enumerate(results):
        for got in runs:
            for a, b in zip(got, expected[i]):
                np.testing.assert_array_equal(a, b)


class _Gate:
    """Wraps a kernel so that the first call waits inside it until released: while one thread is in the
    kernel, the test calls the same layer from another thread."""

    def __init__(self, kernel):
        self.kernel, self.inside, self.release = kernel, threading.Event(), threading.Event()

    def __call__(self, *args, **kw):
        if not self.inside.is_set():
            self.inside.set()
            assert self.release.wait(30), "the test never released the kernel"
        return self.kernel(*args, **kw)


@pytest.mark.parametrize("method", ["forward", "backward", "step"])
@pytest.mark.parametrize("cell", ["elman-tanh", "lstm", "gru"])
def test_one_layer_used_from_two_threads_raises(cell, method, monkeypatch):
    layer = make_layer(cell, 4, 8, num_layers=2, seed=0)
    x = np.random.default_rng(0).standard_normal((6, 3, 4)).astype(np.float32)
    expected_out, _ = layer(x)
    expected_out = np.array(expected_out)
    expected_step = layer.step(x[0])[0]
    if method == "backward":
        layer(x)
    gate = _Gate(getattr(_kernels._recurrent, method))
    monkeypatch.setattr(_kernels._recurrent, method, gate)
    call = {"forward": lambda: layer(x)[0], "backward": lambda: layer.backward(np.ones((6, 3, 8), np.float32))[0],
            "step": lambda: layer.step(x[0])[0]}[method]
    with cf.ThreadPoolExecutor(1) as pool:
        busy = pool.submit(call)
        assert gate.inside.wait(30)
        for other in (lambda: layer(x), lambda: layer.backward(np.ones((6, 3, 8))), lambda: layer.step(x[0])):
            with pytest.raises(RuntimeError, match="another thread is using this layer"):
                other()
        gate.release.set()
        result = busy.result(30)
    if method == "forward":
        np.testing.assert_array_equal(result, expected_out)
    elif method == "step":
        np.testing.assert_array_equal(result, expected_step)
    np.testing.assert_array_equal(layer(x)[0], expected_out)   # the lock was released: usable again


def test_lock_is_released_after_an_error():
    for layer in (rnnfast.LSTM(4, 3, seed=0), rnnfast.Linear(4, 3, seed=0)):
        with pytest.raises(ValueError):
            layer(np.zeros((2, 3, 5)))
        with pytest.raises(ValueError):
            layer.backward(np.zeros((2, 3, 7)))
        assert not layer._busy.locked()
        layer(np.zeros((2, 3, 4)))


def test_linear_and_all_entry_points_hold_the_lock():
    """Holding the lock from this thread stands in for another thread being inside the layer."""
    for layer, calls in [(rnnfast.Linear(4, 3), ("forward", "backward")),
                         (rnnfast.GRU(4, 3), ("forward", "backward", "step"))]:
        layer(np.zeros((2, 1, 4)))
        args = {"forward": (np.zeros((2, 1, 4)),), "backward": (np.zeros((2, 1, 3)),), "step": (np.zeros((1, 4)),)}
        with layer._busy:
            for name in calls:
                with pytest.raises(RuntimeError, match=f"{type(layer).__name__}.{name} was called while"):
                    getattr(layer, name)(*args[name])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_one_layer_hammered_from_two_threads_never_corrupts(cell, restore_threads):
    """No patching: two threads call forward and backward on one layer as fast as they can. Every call ends in
    a correct result, the lock's RuntimeError, or (backward after the other thread consumed the forward)
    the 'needs a forward first' ValueError."""
    rnnfast.set_num_threads(1)
    layer = make_layer(cell, 16, 32, seed=0)
    x = np.random.default_rng(0).standard_normal((40, 8, 16)).astype(np.float32)
    dout = np.ones((40, 8, 32), np.float32)
    expected_out = np.array(layer(x)[0])
    expected_dx = layer.backward(dout)[0]
    barrier = threading.Barrier(2)

    def hammer(_):
        outcomes = {"ok": 0, "busy": 0, "no forward": 0}
        barrier.wait()
        for _ in range(100):
            try:
                out = layer(x)[0]
                np.testing.assert_array_equal(out, expected_out)
                dx = layer.backward(dout)[0]
                np.testing.assert_array_equal(dx, expected_dx)
                outcomes["ok"] += 1
            except RuntimeError as e:
                assert "another thread" in str(e)
                outcomes["busy"] += 1
            except ValueError as e:
                assert "needs a forward first" in str(e)
                outcomes["no forward"] += 1
        return outcomes
    with cf.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(hammer, range(2)))
    assert sum(r["ok"] for r in results) > 0
    np.testing.assert_array_equal(layer(x)[0], expected_out)


def _blas_threads():
    return sorted((d["filepath"], d["num_threads"]) for d in threadpoolctl.threadpool_info() if d["user_api"] == "blas")


def test_nested_use_holds_blas_to_one_thread_and_restores_it(monkeypatch, restore_threads):
    """rnnfast called from a thread pool: every kernel sees BLAS at one thread, concurrent calls do not
    restore the limits early, and afterwards the limits are what they were before."""
    rnnfast.set_num_threads(1)
    seen = []
    kernel = _kernels._recurrent.forward

    def spy(*args, **kw):
        seen.append({n for _, n in _blas_threads()})
        return kernel(*args, **kw)
    monkeypatch.setattr(_kernels._recurrent, "forward", spy)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        assert {n for _, n in before} == {2}

        def task(i):
            layer = make_layer(["lstm", "gru", "elman-relu"][i % 3], 8, 16, num_layers=2, seed=i)
            x = np.random.default_rng(i).standard_normal((20, 8, 8))
            out, _ = layer(x)
            layer.backward(np.ones(out.shape))
            return np.array(out)
        with cf.ThreadPoolExecutor(4) as pool:
            results = list(pool.map(task, range(12)))
        assert _blas_threads() == before
    assert seen and all(s == {1} for s in seen), seen
    for i, out in enumerate(results):
        np.testing.assert_array_equal(out, task(i))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="counts threads through /proc")
@pytest.mark.skipif(not rnnfast.openmp_enabled(), reason="without OpenMP the kernels use no threads of their own")
def test_nested_use_does_not_oversubscribe():
    """In a fresh process, W pool threads each running kernels with rnnfast.set_num_threads(n) add at most
    n - 1 OpenMP threads each (libgomp keeps one team per calling thread): exactly none for n = 1."""
    script = textwrap.dedent("""
        import concurrent.futures as cf, sys, threading
        import numpy as np, rnnfast

        def threads():
            return int(next(l for l in open("/proc/self/status") if l.startswith("Threads:")).split()[1])

        n, W = int(sys.argv[1]), 3
        rnnfast.set_num_threads(n)
        x = np.random.default_rng(0).standard_normal((20, 64, 32)).astype(np.float32)  # work for many threads
        layer = rnnfast.LSTM(32, 64, seed=0)
        layer.backward(np.ones(layer(x)[0].shape, np.float32))
        base = threads()
        barrier = threading.Barrier(W)

        def work(i):
            layer = rnnfast.LSTM(32, 64, seed=i)
            barrier.wait()
            for _ in range(3):
                layer.backward(np.ones(layer(x)[0].shape, np.float32))
            barrier.wait()                      # every worker's OpenMP team exists now
            return threads()
        with cf.ThreadPoolExecutor(W) as pool:
            print(max(pool.map(work, range(W))) - base)
    """)
    env = child_env()
    env.pop("OMP_NUM_THREADS", None)
    extra = {}
    for n in (1, 2):
        proc = subprocess.run([sys.executable, "-c", script, str(n)], capture_output=True, text=True, env=env,
                              timeout=120, check=False, cwd=CHILD_CWD)
        assert proc.returncode == 0, proc.stderr
        extra[n] = int(proc.stdout.split()[-1])
    assert extra[1] == 3, f"with one thread each, only the 3 pool threads may appear, got {extra[1]}"
    assert 3 < extra[2] <= 3 * 2, f"with two threads each, at most 3 more OpenMP threads, got {extra[2] - 3}"
