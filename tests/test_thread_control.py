"""Thread control under interrupts, fork and concurrent estimators (rnnfast._threads).

- Ctrl-C: a KeyboardInterrupt at any point where CPython runs signal handlers, inside the code that lowers and
  restores thread limits, leaves no limit lowered (BLAS limits, rnnfast's thread count). Checked by injecting
  the exception at every such point, and by real signals at random moments.
- fork: a child forked after the parent ran multi-threaded kernels does not hang in its first forward
  (os.fork and multiprocessing's fork start method); the thread that forked runs the kernels on one thread.
- n_threads: a per-thread limit, so estimators in two threads never change the count anyone else sees.
Interrupt and fork tests run in child processes with timeouts, so a hang or a lost limit fails only the test.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import rnnfast
from rnnfast import _threads
from rnnfast import _kernels
from conftest import CHILD_CWD, child_env

needs_openmp = pytest.mark.skipif(not rnnfast.openmp_enabled(), reason="the kernels run on one thread anyway")
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
needs_itimer = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no interval timers on this platform")


def _run_child(script: str, timeout: float = 60) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          env=child_env(OMP_NUM_THREADS="2"), cwd=CHILD_CWD, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


# ---- Ctrl-C -------------------------------------------------------------------------------------------------

_CHILD_SETUP = """
    import signal, sys, threading, time
    import numpy as np, threadpoolctl, rnnfast
    from rnnfast import _threads
    from rnnfast._threads import thread_limit as _num_threads

    threadpoolctl.threadpool_limits(2, user_api="blas")
    rnnfast.set_num_threads(2)
    x = np.random.default_rng(0).standard_normal((6, 40, 8)).astype(np.float32)

    def blas():
        return sorted(lc.get_num_threads() for lc in _threads._blas_controllers())

    BASE = blas()
    assert BASE and set(BASE) == {2}, BASE

    def lost():
        # what an interrupt left behind, once it has been handled (and its traceback freed)
        pass
        out = []
        if blas() != BASE: out.append(f"BLAS limits {blas()}")
        if rnnfast.get_num_threads() != 2: out.append(f"get_num_threads() {rnnfast.get_num_threads()}")
        if _threads._holders or _threads._saved: out.append(f"holds {_threads._holders} {_threads._saved}")
        if _threads._state.limits: out.append(f"thread limits {_threads._state.limits}")
        return out

    def nested():
        with _threads.blas_single_thread():
            with _threads.blas_single_thread():
                pass

    def limited():
        with _num_threads(1):
            with _threads.thread_limit(3):
                assert rnnfast.get_num_threads() == 3
            assert rnnfast.get_num_threads() == 1

    def train_step():
        # a new layer each time: an interrupt between a layer's lock and its try would leave it busy
        layer = rnnfast.LSTM(8, 64, seed=0)
        with _num_threads(1):
            out, _ = layer(x)
        layer.backward(np.ones(out.shape, np.float32))

    OPS = {"blas_single_thread": nested, "thread_limit": limited, "LSTM forward/backward": train_step}
"""


def test_interrupt_at_every_signal_check_point_restores_every_limit():
    """KeyboardInterrupt raised at every point where CPython 3.11+ runs signal handlers (a function's entry or
    a generator's resumption, right after a call returns, a backward jump) in _threads and threadpoolctl, one
    point per run; afterwards every limit is what it was."""
    _run_child(_CHILD_SETUP + """
    import dis
    FILES = {_threads.__file__, threadpoolctl.__file__}
    _points = {}

    def check_points(code):
        if code not in _points:
            pts, prev = set(), None
            for ins in dis.get_instructions(code):
                if prev is not None and prev.opname in ("CALL", "CALL_FUNCTION_EX"):
                    pts.add(ins.offset)
                if ins.opname == "JUMP_BACKWARD":
                    pts.add(ins.offset)
                prev = ins
            _points[code] = pts
        return _points[code]

    class Injector:
        def __init__(self, at):
            self.at, self.seen = at, 0

        def tick(self):
            self.seen += 1
            if self.seen == self.at:
                raise KeyboardInterrupt(f"injected at point {self.at}")

        def __call__(self, frame, event, arg):          # the global tracer: 'call' events only
            if frame.f_code.co_filename not in FILES:
                return None
            frame.f_trace_opcodes = True
            self.tick()                                  # the function's entry (or resumption)
            return self.local

        def local(self, frame, event, arg):
            if event == "opcode" and frame.f_lasti in check_points(frame.f_code):
                self.tick()
            return self.local

    for name, op in OPS.items():
        counter = Injector(0)
        sys.settrace(counter); op(); sys.settrace(None)
        assert not lost(), (name, lost())
        n, interrupted = counter.seen, 0
        assert n > 5, (name, n)
        for at in range(1, n + 1):
            # held here too: a trace function that raises is unset, and CPython 3.11 can then call it once
            # more after its last reference went (a __del__ traced inside call_trace's frame creation)
            injector = Injector(at)
            try:
                sys.settrace(injector)
                op()
            except KeyboardInterrupt:
                interrupted += 1
            finally:
                sys.settrace(None)
            problems = lost()
            assert not problems, f"{name}: interrupt at point {at} of {n}: {problems}"
        assert interrupted >= n // 2, (name, interrupted, n)
        print(name, n, interrupted)
    """)


@needs_itimer
def test_real_interrupts_at_random_moments_restore_every_limit():
    """SIGALRM at random moments, its handler raising KeyboardInterrupt as Ctrl-C does."""
    _run_child(_CHILD_SETUP + """
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGALRM, interrupt)
    rng = np.random.default_rng(0)
    for name, op in OPS.items():
        for i in range(100):
            end = time.monotonic() + 0.05               # a signal that lands in a __del__ is ignored there
            try:
                signal.setitimer(signal.ITIMER_REAL, float(rng.uniform(2e-6, 3e-4)))
                while time.monotonic() < end:
                    op()
            except KeyboardInterrupt:
                pass
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            problems = lost()
            assert not problems, f"{name}: signal {i}: {problems}"
    """)


def test_thread_limit_interrupted_inside_leaves_nothing_behind(restore_threads):
    rnnfast.set_num_threads(2)
    with pytest.raises(KeyboardInterrupt):
        with _threads.thread_limit(1):
            assert rnnfast.get_num_threads() == 1
            raise KeyboardInterrupt
    assert rnnfast.get_num_threads() == 2 and not _threads._state.limits


# ---- fork ---------------------------------------------------------------------------------------------------

_FORK_SETUP = """
    import multiprocessing as mp, os, sys, threading, time
    import numpy as np, rnnfast
    rnnfast.set_num_threads(2)
    x = np.random.default_rng(0).standard_normal((20, 64, 32)).astype(np.float32)   # work for two threads
    layer = rnnfast.LSTM(32, 64, seed=0)

    def run():
        out, _ = layer(x)
        layer.backward(np.ones(out.shape, np.float32))
        rnnfast.Adam(layer.parameters()).zero_grad()
        return np.array(out)

    def run_on_one_thread():
        # what a forked child on one thread must reproduce: the row blocks a thread count gives its BLAS
        # products change their sums on some CPUs (OpenBLAS's Haswell sgemm: blocks of 12 rows)
        with rnnfast.thread_limit(1):
            return run()

    def in_thread(f):
        box = []
        t = threading.Thread(target=lambda: box.append(f()))
        t.start(); t.join()
        return box[0]

    def wait(pid, what, timeout=20):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                assert os.waitstatus_to_exitcode(status) == 0, (what, status)
                return
            time.sleep(0.01)
        os.kill(pid, 9)
        raise AssertionError(f"{what}: the forked child hangs")

    def child(check):
        pid = os.fork()
        if pid == 0:
            try:
                check()
                code = 0
            except BaseException as exc:
                print(repr(exc), file=sys.stderr, flush=True)
                code = 1
            os._exit(code)
        return pid
"""


@needs_fork
@needs_openmp
def test_os_fork_child_does_not_hang_after_the_parent_ran_threaded_kernels():
    _run_child(_FORK_SETUP + """
    expected = run()                                    # the main thread now has a libgomp pool
    expected_1 = run_on_one_thread()

    def check():
        assert rnnfast.get_num_threads() == 1           # the forking thread: its pool is gone
        np.testing.assert_array_equal(run(), expected_1)
        assert in_thread(rnnfast.get_num_threads) == 2  # a new thread gets its own pool
        np.testing.assert_array_equal(in_thread(run), expected)
        rnnfast.set_num_threads(2)
        assert rnnfast.get_num_threads() == 1
        grandchild = child(lambda: np.testing.assert_array_equal(run(), expected_1))
        wait(grandchild, "grandchild")
    wait(child(check), "os.fork")

    # forked by a thread that never ran a kernel: that thread has no pool, its child keeps 2 threads
    def fork_from_fresh_thread():
        def check():
            assert rnnfast.get_num_threads() == 2
            np.testing.assert_array_equal(run(), expected)
        wait(child(check), "fork from a fresh thread")
    in_thread(fork_from_fresh_thread)
    assert rnnfast.get_num_threads() == 2               # the parent is unchanged
    np.testing.assert_array_equal(run(), expected)

    # fork while another thread is inside a kernel (it holds BLAS at one thread) and holds rnnfast's lock
    from rnnfast import _threads
    blas = lambda: sorted(lc.get_num_threads() for lc in _threads._blas_controllers())
    assert set(blas()) == {2}
    inside, leave = threading.Event(), threading.Event()

    def busy():
        with _threads.blas_single_thread(), _threads._lock:
            inside.set()
            leave.wait(30)
    other = threading.Thread(target=busy)
    other.start()
    inside.wait(10)

    def check():
        assert set(blas()) == {1}
        np.testing.assert_array_equal(run(), expected_1)  # no hang on the lock; the limits come back
        assert set(blas()) == {2}, blas()
    pid = child(check)
    leave.set()
    other.join()
    wait(pid, "fork while another thread runs a kernel")
    assert set(blas()) == {2}
    print("ok")
    """)


@needs_fork
@needs_openmp
def test_multiprocessing_fork_children_do_not_hang():
    _run_child(_FORK_SETUP + """
    run()                                               # the main thread now has a libgomp pool
    expected_1 = run_on_one_thread()

    def worker(i):
        return rnnfast.get_num_threads(), bool(np.array_equal(run(), expected_1))

    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:                           # workers forked by the main thread: one thread each
        assert pool.map_async(worker, range(4)).get(timeout=20) == [(1, True)] * 4

    def proc_check(q):
        q.put(worker(0))
    q = ctx.Queue()
    p = ctx.Process(target=proc_check, args=(q,))
    p.start()
    p.join(20)
    if p.is_alive():
        p.kill()
        raise AssertionError("a multiprocessing child (fork) hangs")
    assert p.exitcode == 0 and q.get(timeout=5) == (1, True)
    print("ok")
    """)


# ---- per-thread limits ----------------------------------------------------------------------------------------


def test_thread_limit_is_per_thread_and_nests(restore_threads):
    rnnfast.set_num_threads(2)
    with _threads.thread_limit(3):
        assert rnnfast.get_num_threads() == 3
        with _threads.thread_limit(1):
            assert rnnfast.get_num_threads() == 1
            rnnfast.set_num_threads(4)                  # the global count changes, this thread keeps its limit
            assert rnnfast.get_num_threads() == 1
        assert rnnfast.get_num_threads() == 3
        with _threads.thread_limit(None):
            assert rnnfast.get_num_threads() == 3
    assert rnnfast.get_num_threads() == 4
    with pytest.raises(ValueError, match="positive"):
        _threads.thread_limit(0)
    with pytest.raises(TypeError, match="positive int"):
        _threads.thread_limit(1.5)
    for bad in (_threads.MAX_THREADS + 1, 10**6):              # a million threads ended the process
        for call in (rnnfast.set_num_threads, _threads.thread_limit):
            with pytest.raises(ValueError, match=f"at most {_threads.MAX_THREADS}"):
                call(bad)
    assert rnnfast.get_num_threads() == 4


def test_estimator_thread_counts_in_two_threads_never_change_the_global_count(restore_threads):
    """The interleaving that lost the count: A enters, B enters, A leaves, B leaves."""
    from rnnfast._threads import thread_limit as _num_threads

    rnnfast.set_num_threads(4)
    steps = [threading.Event() for _ in range(4)]
    seen = {}

    def worker(name, n, enter_after, entered, leave_after, left):
        if enter_after is not None:
            steps[enter_after].wait(5)
        with _num_threads(n):
            steps[entered].set()
            steps[leave_after].wait(5)
            seen[name] = rnnfast.get_num_threads()
        steps[left].set()

    a = threading.Thread(target=worker, args=("a", 1, None, 0, 1, 2))
    b = threading.Thread(target=worker, args=("b", 2, 0, 1, 2, 3))
    a.start(); b.start()
    steps[1].wait(5)
    assert rnnfast.get_num_threads() == 4               # the main thread sees neither limit
    a.join(5); b.join(5)
    assert seen == {"a": 1, "b": 2}
    assert rnnfast.get_num_threads() == 4


def test_the_kernels_get_the_calling_threads_limit(monkeypatch, restore_threads):
    rnnfast.set_num_threads(2)
    got = {}
    kernel = _kernels._recurrent.forward

    def spy(*args, **kw):
        # the kernels' thread count: forward(..., workspace, num_threads, unit_split_bytes, h_per_row, **padded)
        got.setdefault(threading.current_thread().name, set()).add(args[-3])
        return kernel(*args, **kw)
    monkeypatch.setattr(_kernels._recurrent, "forward", spy)
    barrier = threading.Barrier(2)

    def work(n):
        layer = rnnfast.GRU(4, 8, seed=n)
        with _threads.thread_limit(n):
            barrier.wait(5)
            for _ in range(5):
                layer(np.ones((3, 2, 4)))
            barrier.wait(5)
    threads = [threading.Thread(target=work, args=(n,), name=f"t{n}") for n in (1, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    rnnfast.GRU(4, 8, seed=0)(np.ones((3, 2, 4)))
    expected_main = {1} if not rnnfast.openmp_enabled() else {2}
    assert got == {"t1": {1}, "t3": {3 if rnnfast.openmp_enabled() else 1},
                   threading.current_thread().name: expected_main}


def test_two_estimators_fitting_in_two_threads(restore_threads):
    """Each fit equals the same fit run alone, and the count the main thread sees never changes meanwhile."""
    from rnnfast import SequenceRegressor

    rnnfast.set_num_threads(2)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((24, 5, 3)), rng.standard_normal(24)
    params = dict(hidden_size=8, max_epochs=3, batch_size=4, random_state=0, validation_fraction=None,
                  n_iter_no_change=None)
    alone = {n: SequenceRegressor(n_threads=n, **params).fit(X, y).predict(X) for n in (1, 2)}
    results, seen, done = {}, set(), threading.Event()

    def fit(n):
        results[n] = SequenceRegressor(n_threads=n, **params).fit(X, y).predict(X)
    threads = [threading.Thread(target=fit, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        seen.add(rnnfast.get_num_threads())
    for t in threads:
        t.join()
    assert seen <= {2} and rnnfast.get_num_threads() == 2
    for n in (1, 2):
        np.testing.assert_array_equal(results[n], alone[n])


@pytest.mark.parametrize("user", [{}, {"OMP_WAIT_POLICY": "PASSIVE"}, {"GOMP_SPINCOUNT": "5"}])
def test_the_wait_policy_is_set_only_around_the_import_and_the_users_wins(user):
    """rnnfast sets GOMP_SPINCOUNT=10000 for libgomp while its extension loads, unless the user set a wait
    policy; the process environment afterwards is the user's, unchanged."""
    code = ("import os, rnnfast, rnnfast._kernels as k; "
            "print(k._set_wait_policy, os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in child_env(**user).items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY") or k in user}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         cwd=CHILD_CWD)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [str(not user), user.get("GOMP_SPINCOUNT", "None"),
                                  user.get("OMP_WAIT_POLICY", "None")]
    assert _kernels._SPINCOUNT == "10000"
