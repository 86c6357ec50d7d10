"""Reliability of the public API at its edges: NaN and inf, empty batches and sequences, allocations that cannot
fit, unusual input memory (dtypes, layouts, read-only, broadcast), parameters replaced behind the layer's
back, and argument validation that the other test files do not already cover.

Decisions these tests pin down (the layers module docstring documents them):
- NaN propagates as in torch: NaN in a row of x or h0 makes that row's later outputs NaN, never a finite
  wrong value, and does not leak into the other rows.
- T = 0 gives an empty out and h_n = h0; B = 0 gives empty outputs; backward then returns zeros (dh0 = dh_n)
  and leaves .grad unchanged; step and optimizers work on them.
- A problem too large for 32-bit indexing raises ValueError, one whose buffers exceed the physical memory
  MemoryError, both before anything is allocated.
"""
from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import rnnfast
from rnnfast import _buffers, _kernels
from conftest import CELLS, CHILD_CWD, assert_outcomes_close, child_env, is_lstm, make_layer, make_problem, mode_of, run_layer

pytestmark = pytest.mark.usefixtures("single_threaded_blas")

param_cell = pytest.mark.parametrize("cell", CELLS)
param_bidirectional = pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])


@pytest.fixture(autouse=True)
def one_thread(restore_threads):
    rnnfast.set_num_threads(1)


def _state(cell, h, c):
    return (h, c) if is_lstm(cell) else h


def _h(cell, state):
    return state[0] if is_lstm(cell) else state


# ---- NaN and inf -----------------------------------------------------------------------------------------


@param_bidirectional
@param_cell
def test_nan_in_x_gives_nan_out_in_that_row_only(cell, bidirectional):
    T, B, I, H = 5, 3, 4, 3
    layer = make_layer(cell, I, H, num_layers=2, bidirectional=bidirectional, dtype="float64", seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (T, B, I))
    x[2, 1, 0] = np.nan                                     # step 2 of sequence 1
    out, state = layer(x)
    others = [0, 2]
    assert np.all(np.isfinite(out[:, others])) and np.all(np.isfinite(_h(cell, state)[:, others]))
    if bidirectional:                                       # both directions reach every step of row 1
        assert np.all(np.isnan(out[:, 1]))
    else:
        assert np.all(np.isfinite(out[:2, 1])), "steps before the NaN are unaffected"
        assert np.all(np.isnan(out[2:, 1]))
    assert np.all(np.isnan(_h(cell, state)[:, 1]))
    if is_lstm(cell):
        assert np.all(np.isnan(state[1][:, 1])) and np.all(np.isfinite(state[1][:, others]))

    dx, dstate = layer.backward(np.ones(out.shape))
    assert np.all(np.isfinite(dx[:, others])) and np.all(np.isfinite(_h(cell, dstate)[:, others]))
    if mode_of(cell) == "relu":
        # relu's derivative is taken as 0 only where h <= 0, so at a NaN activation the gradient passes
        # through unchanged and stays finite, exactly as in torch.nn.RNN (checked against torch below)
        assert np.all(np.isfinite(dx[:, 1]))
    else:
        assert np.isnan(dx[:, 1]).any() and np.isnan(_h(cell, dstate)[:, 1]).any()
    assert np.isnan(layer.weight_hh_l0.grad).any(), "the batch sum of weight gradients sees the NaN row"


@param_bidirectional
@pytest.mark.parametrize("mode", ["relu", "tanh"])
def test_nan_propagation_matches_torch(mode, bidirectional):
    torch = pytest.importorskip("torch")
    layer = rnnfast.Elman(4, 3, num_layers=2, nonlinearity=mode, bidirectional=bidirectional, dtype="float64",
                          seed=0)
    ref = torch.nn.RNN(4, 3, num_layers=2, nonlinearity=mode, bidirectional=bidirectional).double()
    ref.load_state_dict({k: torch.tensor(v) for k, v in layer.state_dict().items()})
    x = np.random.default_rng(0).uniform(-1, 1, (5, 3, 4))
    x[2, 1, 0] = np.nan
    out, _ = layer(x)
    dx, dh0 = layer.backward(np.ones(out.shape))
    xt = torch.tensor(x, requires_grad=True)
    h0 = torch.zeros(layer.num_layers * (2 if bidirectional else 1), 3, 3, dtype=torch.float64, requires_grad=True)
    out_t, _ = ref(xt, h0)
    out_t.backward(torch.ones_like(out_t))
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(dh0, h0.grad.numpy(), rtol=1e-12, equal_nan=True)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, dict(ref.named_parameters())[name].grad.numpy(), rtol=1e-12,
                                   equal_nan=True, err_msg=name)


@param_cell
def test_nan_in_state_or_step_input_propagates(cell):
    layer = make_layer(cell, 4, 3, num_layers=2, dtype="float64", seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 3, 4))
    h0 = np.zeros((2, 3, 3))
    h0[0, 1, 0] = np.nan
    out, state = layer(x, _state(cell, h0, np.zeros((2, 3, 3))))
    assert np.all(np.isnan(out[:, 1])) and np.all(np.isfinite(out[:, [0, 2]]))
    x_t = x[0].copy()
    x_t[2, 3] = np.nan
    h_t, state = layer.step(x_t)
    assert np.all(np.isnan(h_t[2])) and np.all(np.isfinite(h_t[:2]))
    assert np.all(np.isnan(_h(cell, state)[:, 2]))


@param_cell
def test_inf_input_gives_no_finite_garbage_in_other_rows(cell):
    layer = make_layer(cell, 4, 3, dtype="float64", seed=0)
    alone = np.array(layer(np.zeros((3, 1, 4)))[0][:, 0])
    x = np.zeros((3, 2, 4))
    x[0, 0] = np.inf
    out, _ = layer(x)
    np.testing.assert_allclose(out[:, 1], alone, rtol=1e-12, atol=1e-15)
    dx, _ = layer.backward(np.ones(out.shape))               # no exception, no crash
    assert np.all(np.isfinite(dx[:, 1]))


# ---- empty batches and sequences ---------------------------------------------------------------------------


@pytest.mark.parametrize("T, B", [(0, 3), (4, 0), (0, 0)], ids=["T0", "B0", "T0B0"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
@param_bidirectional
@param_cell
def test_empty_batch_or_sequence(cell, bidirectional, batch_first, T, B):
    I, H, L = 4, 3, 2
    D = 2 if bidirectional else 1
    layer = make_layer(cell, I, H, num_layers=L, bidirectional=bidirectional, batch_first=batch_first,
                       dropout=0.5, dtype="float64", seed=0)
    rng = np.random.default_rng(0)
    x = np.zeros((B, T, I) if batch_first else (T, B, I))
    h0, c0 = rng.standard_normal((L * D, B, H)), rng.standard_normal((L * D, B, H))
    lengths = np.zeros(0, np.int64) if B == 0 else None
    out, state = layer(x, _state(cell, h0, c0), lengths=lengths)
    assert out.shape == ((B, T, D * H) if batch_first else (T, B, D * H)) and out.dtype == np.float64
    np.testing.assert_array_equal(_h(cell, state), h0)      # T = 0: h_n = h0 (B = 0: both empty)
    if is_lstm(cell):
        np.testing.assert_array_equal(state[1], c0)
    before = {name: p.data.copy() for name, p in layer.named_parameters()}
    dh_n, dc_n = rng.standard_normal((L * D, B, H)), rng.standard_normal((L * D, B, H))
    dx, dstate = layer.backward(np.ones(out.shape), _state(cell, dh_n, dc_n))
    assert dx.shape == x.shape and not dx.any()
    np.testing.assert_array_equal(_h(cell, dstate), dh_n)   # the gradient passes through zero steps
    if is_lstm(cell):
        np.testing.assert_array_equal(dstate[1], dc_n)
    assert all(not p.grad.any() for p in layer.parameters())
    opt = rnnfast.Adam(layer.parameters(), lr=0.1)
    assert rnnfast.clip_grad_norm_(layer.parameters(), 1.0) == 0.0
    opt.step()
    for name, p in layer.named_parameters():
        np.testing.assert_array_equal(p.data, before[name], err_msg=name)
    if not bidirectional:
        h_t, state = layer.step(np.zeros((B, I)), _state(cell, h0, c0))
        assert h_t.shape == (B, H) and _h(cell, state).shape == (L, B, H)
    if B == 0:
        for empty in ([], (), np.array([], dtype=np.float64), np.zeros(0, np.uint8)):
            assert layer(x, lengths=empty)[0].shape == out.shape


@param_cell
def test_lengths_cannot_be_given_for_zero_steps(cell):
    layer = make_layer(cell, 4, 3, seed=0)
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T\] = \[1, 0\]"):
        layer(np.zeros((0, 2, 4)), lengths=[1, 1])


def test_losses_on_empty_predictions():
    pred = np.zeros((0, 2, 3))
    value, grad = rnnfast.mse_loss(pred, pred, reduction="sum")
    assert value == 0.0 and grad.shape == pred.shape
    assert rnnfast.mse_loss(pred, pred, reduction="none")[0].shape == pred.shape
    with pytest.raises(ValueError, match="no entries"):
        rnnfast.mse_loss(pred, pred)
    with pytest.raises(ValueError, match="no entries"):
        rnnfast.cross_entropy(pred, np.zeros((0, 2), int))
    assert rnnfast.bce_with_logits(pred, pred, reduction="sum")[0] == 0.0


# ---- allocations that cannot fit ---------------------------------------------------------------------------


def _peak_bytes(f):
    """Peak traced allocation while f() runs (NumPy reports its buffers to tracemalloc)."""
    tracemalloc.start()
    try:
        f()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
def test_32bit_overflow_is_a_value_error_before_any_copy(batch_first):
    lstm = rnnfast.LSTM(1, 8, batch_first=batch_first)         # float32: converting x would copy 4 GB
    x = np.broadcast_to(np.float64(0.0), (10**6, 10**3, 1))    # 10⁹ rows, zero-stride: costs nothing

    def call():
        with pytest.raises(ValueError, match="32-bit"):
            lstm(x)
    assert _peak_bytes(call) < 2**20
    with pytest.raises(ValueError, match="32-bit"):
        lstm.step(np.broadcast_to(np.float64(0.0), (10**8, 1)))


def test_memory_error_before_any_allocation_or_kernel(monkeypatch):
    """With the machine's memory pretended to be 1 MiB: constructors, forward and step refuse, and no kernel
    runs."""
    small = rnnfast.LSTM(4, 64, seed=0)
    monkeypatch.setattr(_buffers, "physical_memory", lambda: 2**20)
    ran = []
    for name in ("forward", "backward", "step"):
        kernel = getattr(_kernels._recurrent, name)
        monkeypatch.setattr(_kernels._recurrent, name,
                            lambda *args, _name=name, _kernel=kernel, **kw: ran.append(_name) or _kernel(*args, **kw))
    with pytest.raises(MemoryError, match="parameters"):
        rnnfast.GRU(256, 256)
    x = np.zeros((100, 20, 4), np.float32)                      # 100·20·(4 + 64·7)·4 B ≈ 3.6 MB

    def refused():
        with pytest.raises(MemoryError, match=r"forward on x of shape \(100, 20, 4\)"):
            small(x)
    assert _peak_bytes(refused) < 2**18
    with pytest.raises(MemoryError, match="step"):
        small.step(np.zeros((2000, 4), np.float32))
    assert ran == []
    out, _ = small(np.zeros((2, 3, 4), np.float32))             # small problems still pass the check
    small.backward(np.zeros(out.shape, np.float32))
    small.step(np.zeros((2, 4), np.float32))
    assert ran == ["forward", "backward", "step"]


def test_memory_error_on_this_machine():
    """Real sizes, no patching: layers whose buffers exceed this machine's RAM raise MemoryError with our
    message. Runs in a subprocess with a 3 GB address-space limit, so that if the check ever fails, the
    allocation fails too instead of exhausting the machine."""
    script = textwrap.dedent("""
        import math, os, resource
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, resource.RLIM_INFINITY))
        import numpy as np, rnnfast
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        # Parameters: an LSTM(1, 8192) layer holds ~4·8192·16384 weights, 24 bytes each (data, grad, init).
        layers = math.ceil(2 * ram / (4 * 8192 * 16384 * 24)) + 1
        try:
            rnnfast.LSTM(1, 8192, num_layers=layers)
        except MemoryError as e:
            print("ctor", "machine's" in str(e))
        # Activations: 2²¹ - 1 rows of an LSTM(1, 256) keep ≥ 8·(1 + 7·256) bytes per row and layer.
        rows = (2**31 - 1) // 1024
        layers = math.ceil(2 * ram / (8 * rows * 7 * 256)) + 1
        lstm = rnnfast.LSTM(1, 256, num_layers=layers, dtype="float64")
        try:
            lstm(np.broadcast_to(np.float64(0), (rows, 1, 1)))
        except MemoryError as e:
            print("forward", "machine's" in str(e))
        try:
            lstm.step(np.broadcast_to(np.float64(0), (rows, 1)))
        except MemoryError as e:
            print("step", "machine's" in str(e))
        print("done")
    """)
    env = child_env(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                          check=False, cwd=CHILD_CWD)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == ["ctor", "True", "forward", "True", "step", "True", "done"], proc.stdout


# ---- dtypes, layouts, read-only and broadcast memory -----------------------------------------------------


@param_bidirectional
@param_cell
def test_unusual_input_memory_matches_contiguous_float64(cell, bidirectional):
    """Every input in other dtypes and layouts gives the contiguous float64 result (the values are exactly
    representable in each dtype used), and no input is written to."""
    p = make_problem(cell, T=4, B=3, I=3, H=2, L=2, dtype=np.float64, seed=5, bidirectional=bidirectional,
                     lengths=True)
    p.x = np.round(p.x * 4) / 4                                 # exact in float16 and after int scaling
    layer = p.layer(seed=5)
    expected = run_layer(layer, p)

    def variants(a):
        yield a.astype(np.float16)
        yield a.astype(np.float32)
        yield np.asfortranarray(a)
        yield a[::-1].copy()[::-1]                              # negative strides
        ro = a.copy()
        ro.setflags(write=False)
        yield ro
        yield a.tolist()                                        # nested lists
    for variant in variants(p.x):
        q = copy.copy(p)
        q.x = variant
        assert_outcomes_close(run_layer(layer, q), expected, np.float64)
    q = copy.copy(p)
    q.x = (p.x * 4).astype(np.int32)                            # integers are converted, not rejected
    q.dout = np.broadcast_to(p.dout[:1], p.dout.shape)          # zero-stride upstream gradient
    scaled = copy.copy(p)
    scaled.x, scaled.dout = p.x * 4, np.broadcast_to(p.dout[:1], p.dout.shape).copy()
    assert_outcomes_close(run_layer(layer, q), run_layer(layer, scaled), np.float64)
    for lengths in (p.lengths.tolist(), tuple(p.lengths), p.lengths.astype(np.float32), p.lengths.astype(np.uint8)):
        q = copy.copy(p)
        q.lengths = lengths
        assert_outcomes_close(run_layer(layer, q), expected, np.float64)
    ro = [a for a in (p.x, p.h0, p.c0, p.dout, p.dh_n, p.dc_n) if a is not None]
    saved = [a.copy() for a in ro]
    for a in ro:
        a.setflags(write=False)
    run_layer(layer, p)
    for a, s in zip(ro, saved):
        np.testing.assert_array_equal(a, s)


class _ForeignBuffer:
    """Memory numpy views without copying and does not own, as it does a torch tensor's."""

    def __init__(self, a):
        self._a = a
        self.__array_interface__ = a.__array_interface__


@param_cell
@pytest.mark.parametrize("form", ["ndarray", "memoryview", "array_interface", "torch"])
def test_inputs_changed_between_forward_and_backward_leave_the_forwards_gradients(cell, form):
    """backward computes the gradient of the forward that ran, whatever memory the caller passed it and
    changed afterwards (torch raises when a saved tensor was changed; the layers keep their own copy)."""
    wrap = {"ndarray": lambda a: a, "memoryview": memoryview, "array_interface": _ForeignBuffer}.get(form)
    if form == "torch":
        wrap = pytest.importorskip("torch").from_numpy
    rng = np.random.default_rng(0)
    x, h0, dout = rng.standard_normal((5, 2, 3)), rng.standard_normal((1, 2, 4)), rng.standard_normal((5, 2, 4))
    layer = make_layer(cell, 3, 4, dtype="float64", seed=0)
    linear = rnnfast.Linear(3, 4, dtype="float64", seed=0)

    def gradients(x_in, h_in, change):
        layer.zero_grad()
        linear.zero_grad()
        layer(x_in, (h_in, h_in) if is_lstm(cell) else h_in)
        linear(x_in)
        change()
        layer.backward(dout)
        linear.backward(dout)
        return [p.grad.copy() for p in layer.parameters() + linear.parameters()]

    expected = gradients(x.copy(), h0.copy(), lambda: None)
    xa, ha = x.copy(), h0.copy()

    def change():
        xa[...] = 100.0
        ha[...] = 5.0
    for got, want in zip(gradients(wrap(xa), wrap(ha), change), expected):
        np.testing.assert_array_equal(got, want)


@param_cell
def test_step_inputs_in_any_memory(cell):
    layer = make_layer(cell, 3, 2, num_layers=2, dtype="float64", seed=1)
    x_t = np.array([[0.5, -1.0, 0.25], [1.0, 0.0, -0.5]])
    h_ref, s_ref = layer.step(x_t)
    for variant in (x_t.astype(np.float16), np.asfortranarray(x_t), x_t.tolist(), x_t[::-1].copy()[::-1],
                    np.broadcast_to(x_t[:1], (2, 3))):
        h, _ = layer.step(variant)
        np.testing.assert_array_equal(h[:1], h_ref[:1])
        if variant is not None and np.shape(variant) == x_t.shape and np.array_equal(variant, x_t):
            np.testing.assert_array_equal(h, h_ref)
    np.testing.assert_array_equal(layer.step((x_t * 4).astype(np.int8))[0], layer.step(x_t * 4)[0])
    state = _state(cell, np.asfortranarray(_h(cell, s_ref)), s_ref[1] if is_lstm(cell) else None)
    np.testing.assert_array_equal(layer.step(x_t, state)[0], layer.step(x_t, s_ref)[0])


# ---- parameters replaced behind the layer's back, frozen configuration, copies --------------------------------


@param_cell
def test_replaced_parameter_of_wrong_shape_dtype_or_layout_is_refused(cell):
    """The kernels read raw memory sized from the parameters; a replaced .data or .grad that does not match
    must be refused before a kernel runs, not read out of bounds."""
    layer = make_layer(cell, 4, 3, num_layers=2, dtype="float64", seed=0)
    x = np.zeros((2, 2, 4))
    w = layer.weight_hh_l1
    good, good_grad = w.data, w.grad
    rows, cols = w.shape
    bad_values = [np.zeros((rows * 4, cols * 4)), np.zeros((rows - 1, cols)), np.zeros((rows, cols + 1)),
                  np.zeros(rows * cols), np.zeros(w.shape, np.float32), np.asfortranarray(np.zeros(w.shape)),
                  np.zeros((2,) + w.shape)[:, 0], w.data.tolist()]
    for bad in bad_values:
        w.data = bad
        for call in (lambda: layer(x), lambda: layer.step(x[0])):
            with pytest.raises(ValueError, match=r"weight_hh_l1\.data"):
                call()
    w.data = good
    out, _ = layer(x)
    w.grad = np.zeros((1, 1))
    with pytest.raises(ValueError, match=r"weight_hh_l1\.grad"):
        layer.backward(np.zeros(out.shape))
    w.grad = good_grad
    layer.backward(np.zeros(out.shape))                         # the cache survived the refused call
    replacement = np.full(w.shape, 0.1)                         # a fresh array of the right kind is used
    w.data = replacement
    ref = make_layer(cell, 4, 3, num_layers=2, dtype="float64", seed=0)
    ref.weight_hh_l1.data[...] = 0.1
    x = np.random.default_rng(0).standard_normal((2, 2, 4))
    np.testing.assert_array_equal(layer(x)[0], ref(x)[0])


@param_cell
def test_parameter_reshaped_in_place_is_refused(cell):
    """The same array object, reshaped or retyped in place after a call had accepted it (it crashed the
    process: the kernels sized their loops from the new shape)."""
    layer = make_layer(cell, 4, 3, dtype="float64", seed=0)
    x = np.zeros((2, 2, 4))
    out, _ = layer(x)
    layer.step(x[0])
    w = layer.weight_hh_l0
    rows, cols = w.data.shape
    for change in (lambda a: setattr(a, "shape", (rows * cols, 1)), lambda a: setattr(a, "shape", (1, rows * cols)),
                   lambda a: setattr(a, "dtype", np.float32), lambda a: setattr(a, "dtype", np.int64)):
        for which in ("data", "grad"):
            layer(x)                                            # accepted, as it is
            arr = getattr(w, which)
            saved = (arr.shape, arr.dtype)
            change(arr)
            calls = [lambda: layer.backward(np.zeros(out.shape))] if which == "grad" else [
                lambda: layer(x), lambda: layer.step(x[0])]
            for call in calls:
                with pytest.raises(ValueError, match=rf"weight_hh_l0\.{which}"):
                    call()
            arr.dtype, arr.shape = saved[1], saved[0]
    layer(x)
    layer.backward(np.zeros(out.shape))                         # whole again: accepted


def _modules_and_inputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 4))
    return [(make_layer("lstm", 4, 3, dtype="float64", seed=0), "weight_hh_l0", x),
            (make_layer("gru", 4, 3, dtype="float64", seed=0), "weight_ih_l0", x),
            (rnnfast.Elman(4, 3, dtype="float64", seed=0), "bias_hh_l0", x),
            (rnnfast.Jordan(4, 3, 2, dtype="float64", seed=0), "weight_yh", x),
            (rnnfast.Linear(4, 3, dtype="float64", seed=0), "weight", x),
            (rnnfast.Embedding(5, 3, dtype="float64", seed=0), "weight", np.array([[0, 4], [2, 2]]))]


@pytest.mark.parametrize("index", range(6))
def test_assigning_a_parameter_replaces_it_as_in_torch(index):
    """``module.name = Parameter(...)``: the registry, the optimizer's view and the kernels all take the new
    one (a layer used to keep computing with the old one, or Linear computed with the new one while
    parameters() and state_dict still held the old); anything else in its place is refused."""
    module, name, x = _modules_and_inputs()[index]
    first = lambda out: out[0] if isinstance(out, tuple) else out      # noqa: E731
    old = getattr(module, name)
    new = rnnfast.Parameter(np.full(old.data.shape, 0.25), dtype=old.data.dtype)
    setattr(module, name, new)
    assert getattr(module, name) is new
    assert any(p is new for p in module.parameters()) and not any(p is old for p in module.parameters())
    reference, _, _ = _modules_and_inputs()[index]
    getattr(reference, name).data[...] = 0.25
    np.testing.assert_array_equal(first(module(x)), first(reference(x)))
    np.testing.assert_array_equal(module.state_dict()[name], reference.state_dict()[name])
    with pytest.raises(TypeError, match=f"parameter '{name}'"):
        setattr(module, name, np.zeros(old.data.shape))
    setattr(module, name, rnnfast.Parameter(np.zeros((7,) + old.data.shape)))
    with pytest.raises(ValueError, match=rf"{name}\.data"):
        module(x)


def test_a_parameter_replaced_in_a_child_reaches_its_container():
    """Sequential and EncoderDecoder read their children's parameters afresh: a child's replaced weight was
    used by the child but not by model.parameters(), state_dict or an optimizer built after."""
    lin = rnnfast.Linear(3, 2, seed=0)
    model = rnnfast.Sequential(rnnfast.LSTM(3, 3, seed=0), rnnfast.Readout("last"), lin)
    new = rnnfast.Parameter(np.full((2, 3), 0.5, np.float32))
    lin.weight = new
    assert dict(model.named_parameters())["2.weight"] is new
    np.testing.assert_array_equal(model.state_dict()["2.weight"], new.data)
    ed = rnnfast.EncoderDecoder(2, 4, 1, seed=0)
    w = rnnfast.Parameter(np.zeros_like(ed.head.weight.data))
    ed.head.weight = w
    assert dict(ed.named_parameters())["head.weight"] is w


def test_tied_weights_are_one_parameter_to_the_optimizer():
    """head.weight = emb.weight (weight tying): parameters() lists the shared Parameter once, as torch's does
    (the optimizer refused the container, and clipping counted its gradient twice); state_dict keeps both
    names."""
    emb, head = rnnfast.Embedding(5, 3, seed=0), rnnfast.Linear(3, 5, seed=0)
    head.weight = emb.weight
    model = rnnfast.Sequential(emb, rnnfast.LSTM(3, 3, seed=0), rnnfast.Readout("sequence"), head)
    ids = [id(p) for p in model.parameters()]
    assert len(ids) == len(set(ids)) and id(emb.weight) in ids
    assert {"0.weight", "3.weight"} <= set(model.state_dict())
    rnnfast.Adam(model.parameters())


def test_a_grad_of_none_is_checked_only_by_backward():
    """A .grad set to None (optimizers' zero_grad may) does not stop a forward, whether or not the layer had
    checked its parameters before (a fresh copy refused it); backward names it."""
    for make in (lambda: rnnfast.Linear(3, 2, seed=0), lambda: rnnfast.LSTM(3, 2, seed=0)):
        x = np.ones((2, 1, 3), np.float32)
        for warm in (False, True):
            layer = make()
            if warm:
                layer(x)
            layer.parameters()[0].grad = None
            out = layer(x)
            out = out[0] if isinstance(out, tuple) else out
            with pytest.raises(ValueError, match=r"\.grad must be"):
                layer.backward(np.ones_like(out))


def test_linear_names_a_parameter_of_the_wrong_shape_or_dtype():
    """Linear broadcast a bias of shape (1,) or (n, out) into its output, and a float64 weight in a float32
    layer reached the kernel, whose error named no argument."""
    lin = rnnfast.Linear(4, 2, seed=0)
    x = np.ones((3, 4), np.float32)
    good_w, good_b = lin.weight.data, lin.bias.data
    for name, bad in [("bias", np.zeros(1, np.float32)), ("bias", np.zeros((3, 2), np.float32)),
                      ("weight", good_w.astype(np.float64)), ("weight", np.zeros((4, 2), np.float32))]:
        getattr(lin, name).data = bad
        for call in (lambda: lin(x), lambda: lin.step(x)):
            with pytest.raises(ValueError, match=rf"{name}\.data must be a float32 array of shape"):
                call()
        lin.weight.data, lin.bias.data = good_w, good_b
    lin.weight.data = np.asfortranarray(good_w)                # any memory layout of the right shape is taken
    y = lin(x)
    lin.weight.grad = np.zeros((2, 5), np.float32)
    with pytest.raises(ValueError, match=r"weight\.grad"):
        lin.backward(np.ones_like(y))


def test_embedding_backward_runs_once_per_forward():
    """As the other layers' and torch's: a second backward added the gradient twice, and a backward after a
    no_grad forward was taken."""
    emb = rnnfast.Embedding(4, 2, dtype="float64", seed=0)
    ids = np.array([[1, 3], [1, 0]])
    emb(ids)
    emb.backward(np.ones((2, 2, 2)))
    np.testing.assert_array_equal(emb.weight.grad[1], [2.0, 2.0])
    with pytest.raises(ValueError, match="once per forward"):
        emb.backward(np.ones((2, 2, 2)))
    np.testing.assert_array_equal(emb.weight.grad[1], [2.0, 2.0])
    with rnnfast.no_grad():
        emb(ids)
    with pytest.raises(RuntimeError, match="no_grad"):
        emb.backward(np.ones((2, 2, 2)))


def test_load_state_dict_takes_parameters_and_returns_what_it_skipped():
    """As torch's: ``load_state_dict(dict(other.named_parameters()))`` loads (it said "shape ()"), and
    ``strict=False`` returns ``(missing_keys, unexpected_keys)`` (it returned None)."""
    src, dst = rnnfast.LSTM(3, 4, seed=1), rnnfast.LSTM(3, 4, seed=2)
    assert dst.load_state_dict(dict(src.named_parameters())) == ([], [])
    for name, value in src.state_dict().items():
        np.testing.assert_array_equal(dst.state_dict()[name], value)
    partial = {k: v for k, v in rnnfast.LSTM(3, 4, seed=3).state_dict().items() if k != "bias_hh_l0"}
    partial["extra"] = np.zeros(1)
    result = dst.load_state_dict(partial, strict=False)
    assert result.missing_keys == ["bias_hh_l0"] and result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(dst.bias_hh_l0.data, src.bias_hh_l0.data)    # left as it was


def test_torch_objects_in_rnnfast_places_are_named():
    """A torch parameter given to an rnnfast optimizer, and torch's PackedSequence given to a layer: the errors
    said "got an element of type Parameter" and "inhomogeneous shape"."""
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="torch.nn.parameter.Parameter .a torch parameter"):
        rnnfast.Adam(torch.nn.LSTM(3, 4).parameters())
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.zeros(5, 2, 3), torch.tensor([5, 3]))
    with pytest.raises(TypeError, match="torch's PackedSequence: pack with rnnfast.pack_sequences"):
        rnnfast.LSTM(3, 4)(packed)


@pytest.mark.parametrize("index", range(5))
@pytest.mark.parametrize("how", ["in place", "replaced"])
def test_backward_is_the_gradient_of_the_forward_that_ran_when_weights_change_in_between(index, how):
    """An optimizer step (or any change of the weights) between forward and backward: backward used the new
    weights and gave a gradient of neither the forward that ran nor the new weights (torch raises; rnnfast
    computes the gradient of the forward that ran, as it does when x changes)."""
    module, _, x = _modules_and_inputs()[index]
    twin, _, _ = _modules_and_inputs()[index]
    first = lambda out: out[0] if isinstance(out, tuple) else out      # noqa: E731
    dout = np.random.default_rng(1).standard_normal(first(twin(x)).shape)
    want_dx = twin.backward(dout)
    out = first(module(x))
    for p in module.parameters():
        if how == "in place":
            p.data *= 2.0
        else:
            p.data = p.data * 2.0
    got_dx = module.backward(dout)
    np.testing.assert_array_equal(first(got_dx), first(want_dx))
    for (name, p), q in zip(module.named_parameters(), twin.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=name)
    assert out.shape == dout.shape


@param_cell
def test_shape_defining_attributes_are_frozen(cell):
    layer = make_layer(cell, 4, 3, seed=0)
    for name, value in [("input_size", 8), ("hidden_size", 1), ("num_layers", 2), ("bidirectional", True),
                        ("dtype", np.dtype(np.float64))]:
        with pytest.raises(AttributeError, match=name):
            setattr(layer, name, value)
    layer.batch_first = True                                    # layout and dropout may change
    layer.dropout = 0.25
    layer.eval()
    assert layer(np.zeros((2, 5, 4)))[0].shape == (2, 5, 3)


@param_cell
def test_pickle_and_deepcopy_give_independent_working_layers(cell):
    layer = make_layer(cell, 4, 3, num_layers=2, bidirectional=True, dtype="float64", seed=0)
    x = np.random.default_rng(0).standard_normal((3, 2, 4))
    expected = np.array(layer(x)[0])
    for clone in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
        assert clone._busy is not layer._busy
        np.testing.assert_array_equal(clone(x)[0], expected)
        clone.weight_ih_l0.data[...] = 0
        np.testing.assert_array_equal(layer(x)[0], expected)


# ---- argument validation not covered elsewhere ---------------------------------------------------------------


@pytest.mark.parametrize("make", [rnnfast.Elman, rnnfast.LSTM, rnnfast.GRU])
def test_constructor_arguments(make):
    for bad, exc in [("0.5", TypeError), (None, TypeError), (True, TypeError), (1.0, ValueError), (-0.1, ValueError),
                     (float("nan"), ValueError)]:
        with pytest.raises(exc, match="dropout"):
            make(4, 3, dropout=bad)
    assert make(4, 3, dropout=np.float32(0.5)).dropout == 0.5
    for size, exc in [(2.0, TypeError), ("3", TypeError), (None, TypeError), (-3, ValueError)]:
        with pytest.raises(exc, match="hidden_size"):
            make(4, size)
    with pytest.raises(ValueError, match="32-bit"):
        make(10**6, 10**6)


def test_elman_nonlinearity_type():
    with pytest.raises(TypeError, match="nonlinearity"):
        rnnfast.Elman(4, 3, nonlinearity=["tanh"])
    with pytest.raises(ValueError, match="nonlinearity"):
        rnnfast.Elman(4, 3, nonlinearity="TANH")


@param_cell
def test_lengths_values(cell):
    layer = make_layer(cell, 4, 3, seed=0)
    x = np.zeros((5, 2, 4))
    for bad, exc in [([1.5, 2], TypeError), ([np.nan, 2], TypeError), ([1e30, 2], ValueError),
                     ([np.inf, 2], ValueError), ([True, True], TypeError), ([[1, 2], [3]], TypeError),
                     (["1", "2"], TypeError), ([2**40, 1], ValueError)]:
        with pytest.raises(exc, match="lengths"):
            layer(x, lengths=bad)


def test_optimizer_hyperparameters_must_be_finite():
    params = [rnnfast.Parameter(np.zeros(3))]
    for cls, key in [(rnnfast.SGD, "lr"), (rnnfast.SGD, "momentum"), (rnnfast.SGD, "weight_decay"),
                     (rnnfast.SGD, "dampening"), (rnnfast.Adam, "lr"), (rnnfast.Adam, "eps"),
                     (rnnfast.AdamW, "weight_decay"), (rnnfast.RMSprop, "momentum"), (rnnfast.RMSprop, "eps")]:
        with pytest.raises(ValueError, match=key):
            cls(params, **{key: float("inf")})
    opt = rnnfast.SGD(params, lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        opt.lr = float("inf")
    with pytest.raises(ValueError, match="gamma"):
        rnnfast.StepLR(opt, 2, gamma=float("inf"))
    with pytest.raises(TypeError, match="mapping"):
        opt.load_state_dict(None)
    with pytest.raises(KeyError, match="state"):                 # wrong keys stay a KeyError
        opt.load_state_dict({"state": {}})


def test_choices_never_compare_arrays_elementwise():
    huge = np.broadcast_to(np.float32(0), (10**5, 10**3))       # elementwise == "mean" would allocate 100 MB

    def call():
        for f in (lambda: rnnfast.mse_loss(np.zeros(2), np.zeros(2), reduction=huge),
                  lambda: rnnfast.ReduceLROnPlateau(rnnfast.SGD([rnnfast.Parameter(np.zeros(1))]), mode=huge)):
            with pytest.raises(ValueError):
                f()
    assert _peak_bytes(call) < 2**20
    assert rnnfast.mse_loss(np.zeros(2), np.zeros(2), reduction=np.str_("sum"))[0] == 0.0


def test_set_num_threads_refuses_counts_past_its_limit(restore_threads):
    with pytest.raises(ValueError, match="at most"):
        rnnfast.set_num_threads(2**31)
    with pytest.raises(ValueError, match="n_threads must be <= "):
        rnnfast.SequenceClassifier(n_threads=10**6).fit(np.zeros((4, 3)), [0, 1, 0, 1])
    # the default from OMP_NUM_THREADS is held to the same limit, and round-trips
    code = ("import rnnfast; from rnnfast import _threads; n = rnnfast.get_num_threads(); "
            "rnnfast.set_num_threads(n); print(n == _threads.MAX_THREADS or not rnnfast.openmp_enabled())")
    env = child_env(OMP_NUM_THREADS="1000000")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=CHILD_CWD, capture_output=True, text=True)
    assert out.stdout.strip() == "True", out.stderr
    with pytest.raises(ValueError):
        rnnfast.set_num_threads(0)


def test_sequences_arguments():
    for value, dtype in [(np.inf, "int8"), (2**70, "int64"), (300, "uint8"), (np.nan, "int32"), (2, "bool")]:
        with pytest.raises(ValueError, match="padding_value"):
            rnnfast.pad_sequences([np.zeros(2), np.zeros(1)], dtype=dtype, padding_value=value)
    padded, _ = rnnfast.pad_sequences([np.zeros(2), np.zeros(1)], dtype="int8", padding_value=-128)
    assert padded[1, 1] == -128
    with pytest.raises(ValueError, match="max_len"):
        rnnfast.sequence_mask(np.zeros(0, int), max_len=-1)
    assert rnnfast.sequence_mask(np.zeros(0, int), max_len=3).shape == (3, 0)


@param_cell
def test_step_errors_name_its_state_argument(cell):
    layer = make_layer(cell, 3, 4)
    x_t = np.zeros((2, 3))
    bad = np.zeros((1, 2, 5))
    name = r"state\[0\]" if is_lstm(cell) else "state"
    with pytest.raises(ValueError, match=f"^{name} must have shape"):
        layer.step(x_t, (bad, np.zeros((1, 2, 4))) if is_lstm(cell) else bad)
    if is_lstm(cell):
        with pytest.raises(ValueError, match=r"^state\[1\] must have shape"):
            layer.step(x_t, (np.zeros((1, 2, 4)), bad))
        with pytest.raises(TypeError, match="^state must be a tuple"):
            layer.step(x_t, bad)
