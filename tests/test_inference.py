"""The inference forward (``with rnnfast.no_grad():``; csrc/_inference.pxi): a forward no backward follows.

- it equals the training forward (outputs and final states) for every cell, dtype, lengths, direction count,
  layer count, thread count and time-loop plan (rows, units), with the packed and the BLAS step product, on
  PackedSequence and batch_first inputs; and the NumPy reference and torch under ``inference_mode``;
- ``backward`` after it raises (layer and Sequential), and works again after a training forward;
- it keeps nothing: no (rows, G·H) array in the workspace, no copy of the caller's input, and its peak of
  allocated memory is about the output's;
- no_grad is per thread, nests and restores; the estimators' predict and ``generate`` use it.

The two forwards sum the input projection in another order (the step micro-kernel against BLAS's GEMM), so
they agree to rounding: the dtype's tolerance table, not bit for bit.
"""
from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

import rnnfast
from rnnfast import _kernels

from conftest import CELLS, DTYPES, assert_close, is_lstm, make_layer, make_problem, run_reference

pytestmark = pytest.mark.usefixtures("single_threaded_blas")

param_dtype = pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).name for d in DTYPES])
# (threads, KernelOptions changes): one thread; two by rows; two with unit_split_bytes=0 (H = 64 is two packed
# panels of floats, four of doubles: GRU splits the units, LSTM and Elman still run fused by rows, see
# test_unit_split); the step product by BLAS
PLANS = {"1 thread": (1, {}), "2 threads, rows": (2, {"unit_split_bytes": 1 << 40}),
         "2 threads, units": (2, {"unit_split_bytes": 0}), "blas step": (2, {"step_gemm": "blas"})}


def _states(state):
    return state if isinstance(state, tuple) else (state,)


def _both(layer, *args, **kwargs):
    """(training out, states), (inference out, states) of the same call."""
    train_out, train_state = layer(*args, **kwargs)
    if isinstance(train_out, rnnfast.PackedSequence):
        train_out = train_out.data
    train = (np.array(train_out), [np.array(s) for s in _states(train_state)])
    with rnnfast.no_grad():
        out, state = layer(*args, **kwargs)
    return train, (out, _states(state))


def _assert_same(train, infer, dtype):
    assert_close(infer[0], train[0], dtype, "out")
    assert infer[0].dtype == np.dtype(dtype)
    for i, (a, b) in enumerate(zip(infer[1], train[1])):
        assert_close(a, b, dtype, f"state {i}")


@pytest.mark.parametrize("plan", list(PLANS))
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@param_dtype
@pytest.mark.parametrize("cell", CELLS)
def test_equals_training_forward(cell, dtype, lengths, bidirectional, num_layers, plan, restore_threads):
    threads, changes = PLANS[plan]
    p = make_problem(cell, T=20, B=64, I=7, H=64, L=num_layers, dtype=dtype, lengths=lengths,
                     bidirectional=bidirectional, seed=1)
    layer = p.layer(seed=2)
    rnnfast.set_num_threads(threads)
    kwargs = {} if p.lengths is None else {"lengths": p.lengths}
    with rnnfast.kernel_options(**changes):
        if threads == 2 and not lengths:                # the plan this case is here for
            gru = layer.cell.family == "gru"
            want = ("units" if gru and plan == "2 threads, units" else "rows", not gru)
            assert _kernels.inference_plan(layer.cell, p.T, p.B, p.H, np.dtype(dtype).itemsize)[1:] == want
        train, infer = _both(layer, p.x, p.hx, **kwargs)
    _assert_same(train, infer, dtype)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@param_dtype
@pytest.mark.parametrize("cell", CELLS)
def test_unit_split(cell, dtype, bidirectional, restore_threads):
    """Fewer rows than threads: every cell splits the hidden units (LSTM and Elman unfused)."""
    p = make_problem(cell, T=130, B=1, I=5, H=128, L=2, dtype=dtype, bidirectional=bidirectional, seed=3)
    layer = p.layer(seed=3)
    rnnfast.set_num_threads(2)
    with rnnfast.kernel_options(unit_split_bytes=0):
        assert _kernels.inference_plan(layer.cell, p.T, p.B, p.H, np.dtype(dtype).itemsize) == (2, "units", False)
        train, infer = _both(layer, p.x, p.hx)
    _assert_same(train, infer, dtype)


@pytest.mark.parametrize("cell", CELLS)
@param_dtype
def test_matches_reference(cell, dtype):
    p = make_problem(cell, T=6, B=4, I=3, H=5, L=2, dtype=dtype, lengths=True, bidirectional=True, seed=4)
    layer = p.layer(seed=4)
    ref = run_reference(p, {name: q.data for name, q in layer.named_parameters()})
    with rnnfast.no_grad():
        out, state = layer(p.x, p.hx, lengths=p.lengths)
    assert_close(out, ref.out, dtype, "out")
    assert_close(_states(state)[0], ref.h_n, dtype, "h_n")
    if is_lstm(cell):
        assert_close(state[1], ref.c_n, dtype, "c_n")


@pytest.mark.parametrize("cell", ["lstm", "gru", "elman-tanh"])
def test_matches_torch_inference_mode(cell):
    torch = pytest.importorskip("torch")
    p = make_problem(cell, T=8, B=5, I=4, H=6, L=2, dtype=np.float64, bidirectional=True, seed=5)
    layer = p.layer(seed=5)
    mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "elman-tanh": torch.nn.RNN}[cell](
        4, 6, num_layers=2, bidirectional=True, dtype=torch.float64)
    mod.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    hx = tuple(torch.from_numpy(a) for a in p.hx) if is_lstm(cell) else torch.from_numpy(p.hx)
    with torch.inference_mode():
        want_out, want_state = mod(torch.from_numpy(p.x), hx)
    with rnnfast.no_grad():
        out, state = layer(p.x, p.hx)
    assert_close(out, want_out.numpy(), np.float64, "out")
    for a, b in zip(_states(state), _states(want_state)):
        assert_close(a, b.numpy(), np.float64, "state")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_packed_sequence_and_batch_first(cell):
    p = make_problem(cell, T=7, B=6, I=3, H=8, dtype=np.float32, lengths=True, seed=6)
    layer = p.layer(seed=6)
    packed = rnnfast.pack_sequences(p.x, p.lengths)
    train, infer = _both(layer, packed)
    assert isinstance(infer[0], rnnfast.PackedSequence)
    _assert_same(train, (infer[0].data, infer[1]), np.float32)
    bf = make_layer(cell, p.I, p.H, batch_first=True, seed=6)
    train, infer = _both(bf, np.swapaxes(p.x, 0, 1), lengths=p.lengths)
    _assert_same(train, infer, np.float32)


def test_outputs_are_the_callers_and_inputs_are_not_copied():
    layer = rnnfast.LSTM(4, 8, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 3, 4)).astype(np.float32)
    with rnnfast.no_grad():
        out1, _ = layer(x)
        out2, _ = layer(x + 1)
    assert out1.flags.writeable and not np.shares_memory(out1, out2)    # fresh each call, as torch's
    assert not np.allclose(out1, out2)
    assert ("kept", "x") not in layer._workspace                       # the training forward's copy of x
    layer(x)
    assert ("kept", "x") in layer._workspace


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_backward_after_inference_forward_raises(cell):
    p = make_problem(cell, T=4, B=2, I=3, H=5, seed=7)
    layer = p.layer()
    with rnnfast.no_grad():
        layer(p.x, p.hx)
    with pytest.raises(RuntimeError, match="no_grad"):
        layer.backward(p.dout, p.dhx)
    layer(p.x, p.hx)                                    # a training forward: backward works again
    dx, _ = layer.backward(p.dout, p.dhx)
    assert dx.shape == p.x.shape
    model = rnnfast.Sequential(rnnfast.LSTM(3, 5, seed=0), rnnfast.Readout("last"), rnnfast.Linear(5, 2, seed=0))
    with rnnfast.no_grad():
        y = model(p.x)
    with pytest.raises(RuntimeError, match="no_grad"):
        model.backward(np.ones_like(y))
    assert all(not q.grad.any() for q in model.parameters())           # raised before any .grad changed
    head = rnnfast.Linear(3, 2, seed=0)
    with rnnfast.no_grad():
        y = head(p.x)
    assert head._x is None                                              # kept nothing
    with pytest.raises(RuntimeError, match="no_grad"):
        head.backward(np.ones_like(y))
    y = head(p.x)
    assert head.backward(np.ones_like(y)).shape == p.x.shape            # a training forward: works again


@pytest.mark.parametrize("cell", ["lstm", "gru", "elman-tanh"])
def test_keeps_no_history(cell):
    T, B, I, H = 50, 16, 8, 32
    p = make_problem(cell, T=T, B=B, I=I, H=H, L=2, dtype=np.float32, seed=8)
    layer = p.layer()
    GH = layer.cell.width(H)
    with rnnfast.no_grad():
        layer(p.x)                                      # the workspace's buffers exist from here on
        sizes = {key: buf.size for key, buf in layer._workspace.items() if isinstance(buf, np.ndarray)}
        # nothing of (T·B, G·H), (T·B, H) per layer but each layer's output rows (the next one's input)
        assert max(sizes.values()) <= max(T * B * H, 2 * GH * max(I, H))
        assert sum(sizes.values()) < T * B * H + 6 * B * GH + 4 * GH * (I + 3 * H)
        tracemalloc.start()
        try:
            out, _ = layer(p.x)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    # the fresh output and small bookkeeping; the training forward's history would be L·T·B·(G·H + 3H) floats
    assert peak < out.nbytes + 4 * B * H * 4 + 64 * 1024
    layer(p.x)
    assert any(buf.size >= T * B * GH for buf in layer._workspace.values() if isinstance(buf, np.ndarray))


def test_no_grad_is_per_thread_nests_and_restores():
    assert rnnfast.is_grad_enabled()
    seen = []
    with rnnfast.no_grad():
        with rnnfast.no_grad():
            assert not rnnfast.is_grad_enabled()
        assert not rnnfast.is_grad_enabled()
        thread = threading.Thread(target=lambda: seen.append(rnnfast.is_grad_enabled()))
        thread.start()
        thread.join()
    assert rnnfast.is_grad_enabled() and seen == [True]

    @rnnfast.no_grad()
    def inside():
        return rnnfast.is_grad_enabled()
    assert inside() is False and rnnfast.is_grad_enabled()

    @rnnfast.no_grad                                          # bare, as torch allows
    def bare(a, b=1):
        return rnnfast.is_grad_enabled(), a + b
    assert bare(1, b=2) == (False, 3) and bare.__name__ == "bare" and rnnfast.is_grad_enabled()
    reused = rnnfast.no_grad()
    with reused:
        with reused:
            assert not rnnfast.is_grad_enabled()
        assert not rnnfast.is_grad_enabled()
    with reused:
        assert not rnnfast.is_grad_enabled()
    assert rnnfast.is_grad_enabled()
    with pytest.raises(TypeError, match="decorates a function"):
        rnnfast.no_grad()(3)


def test_no_grad_on_a_generator_function_holds_at_every_resumption_and_not_between():
    """As torch's: the body runs without grad each time it resumes; the caller's code between keeps its own."""
    lstm = rnnfast.LSTM(3, 4, seed=0)

    @rnnfast.no_grad()
    def stream(chunks):
        received = None
        for x in chunks:
            out, _ = lstm(x)
            received = yield rnnfast.is_grad_enabled(), out.flags.writeable, received
        return "done"
    gen = stream([np.ones((5, 2, 3), np.float32)] * 3)
    assert next(gen) == (False, True, None)                    # the inference forward: a writable fresh array
    assert rnnfast.is_grad_enabled()                           # between resumptions, the caller's mode
    assert gen.send("hello") == (False, True, "hello")
    with pytest.raises(ValueError, match="thrown"):
        gen.throw(ValueError("thrown"))                         # not caught inside: it ends the generator
    assert rnnfast.is_grad_enabled()
    gen = stream([np.ones((5, 2, 3), np.float32)])
    next(gen)
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == "done" and rnnfast.is_grad_enabled()
    gen = stream([np.ones((5, 2, 3), np.float32)] * 2)
    next(gen)
    gen.close()
    assert rnnfast.is_grad_enabled()


def test_estimators_predict_and_generate_run_the_inference_forward(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((24, 12, 2))
    y = (X[:, :, 0] > 0).astype(int)
    clf = rnnfast.SequenceClassifier(output="sequence", hidden_size=8, max_updates=2, window=1,
                                     random_state=0).fit(X, y)

    def refuse(*args, **kwargs):
        raise AssertionError("predict ran the training forward")
    monkeypatch.setattr(_kernels, "forward_training", refuse)
    assert clf.predict(X).shape == y.shape
    assert clf.predict_proba(X[:3]).shape == (3, 12, 2)
    assert rnnfast.generate(clf, X[0], 3, feedback=lambda label: np.array([label, 0.0])).shape == (3,)


# ---- the Jordan network: the inference forward projects each step's x_t and keeps no s_t -----------------


@param_dtype
@pytest.mark.parametrize("plan", list(PLANS))
@pytest.mark.parametrize("phi, g", [("tanh", "identity"), ("relu", "sigmoid"), ("sigmoid", "tanh")])
def test_jordan_inference_matches_training_and_reference(phi, g, plan, dtype, restore_threads):
    from rnnfast import reference
    from rnnfast.jordan import Jordan

    threads, changes = PLANS[plan]
    rnnfast.set_num_threads(threads)
    rng = np.random.default_rng(5)
    T, B, I, H, O = 9, 7, 5, 33, 6
    x = rng.standard_normal((T, B, I)).astype(dtype)
    y0 = rng.standard_normal((1, B, O)).astype(dtype)
    with _kernels.kernel_options(**changes):
        net = Jordan(I, H, O, nonlinearity=phi, output_activation=g, dtype=dtype, seed=2)
        y, y_n = net(x, y0)
        with rnnfast.no_grad():
            yi, yi_n = net(x, y0)
    assert yi.flags.writeable and not y.flags.writeable
    tol = dict(rtol=2e-6, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(yi, y, **tol)
    np.testing.assert_allclose(yi_n, y_n, **tol)
    ry, ry_n, _ = reference.jordan_forward(x.astype(np.float64), {n: q.data.astype(np.float64) for n, q in
                                                                  net.named_parameters()}, y0[0].astype(np.float64),
                                           phi, g)
    assert_close(yi, ry, dtype, "y")
    assert_close(yi_n[0], ry_n, dtype, "y_n")


def test_jordan_inference_keeps_nothing_and_backward_raises():
    from rnnfast.jordan import Jordan

    net = Jordan(4, 16, 3, seed=0)
    x = np.random.default_rng(0).standard_normal((50, 8, 4)).astype(np.float32)
    with rnnfast.no_grad():
        net(x)
    assert all(np.asarray(a).size < 50 * 8 * 16 for a in net._workspace.values() if isinstance(a, np.ndarray))
    with pytest.raises(RuntimeError, match="no_grad"):
        net.backward(np.zeros((50, 8, 3), np.float32))
    y, _ = net(x)                                      # a training forward: backward works again
    dx, _ = net.backward(np.ones_like(y))
    assert dx.shape == x.shape
