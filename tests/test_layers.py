"""Elman, LSTM and GRU layers, one- and bidirectional, checked three independent ways (finite differences,
rnnfast.reference, torch autograd), plus threads, step(), lengths, dropout, input handling and errors.
Tests specific to GRU or to bidirectional layers live in test_gru_bidirectional.py."""
from __future__ import annotations

import functools

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import (CELLS, DTYPES, FD_TOL, Outcome, assert_close, assert_outcomes_close, forward, is_lstm,
                      loss_of, make_layer, make_problem, mode_of, numerical_gradient, run_layer, run_reference,
                      time_major)
from rnnfast import reference

pytestmark = pytest.mark.usefixtures("single_threaded_blas")

LAYERS = (1, 2, 3)
dtype_ids = [np.dtype(d).name for d in DTYPES]

param_cell = pytest.mark.parametrize("cell", CELLS)
param_layers = pytest.mark.parametrize("num_layers", LAYERS)
param_batch_first = pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
param_dtype = pytest.mark.parametrize("dtype", DTYPES, ids=dtype_ids)
param_lengths = pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
param_bidirectional = pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
# Where a test is costly, bidirectional runs on two layers only: both directions, layer 1 reading the 2H-wide
# concatenation and layer 0 receiving the gradient of both halves.
param_layers_directions = pytest.mark.parametrize("num_layers, bidirectional",
                                                  [(1, False), (2, False), (3, False), (2, True)],
                                                  ids=["1-uni", "2-uni", "3-uni", "2-bi"])


def weights_of(layer):
    return {k: np.asarray(v, dtype=np.float64) for k, v in layer.state_dict().items()}


# ---- torch autograd as an oracle -------------------------------------------------------------------


def _torch_sigmoid_elman(torch, x, h0, params, p):
    """torch has no sigmoid RNN: the same recurrence as a plain autograd loop, masked after each length. The
    reverse direction takes each sequence reversed within its length (torch.flip of x[:n]), padded after."""
    xs = x.transpose(0, 1) if p.batch_first else x  # (T, B, I)
    lengths = np.full(p.B, p.T) if p.lengths is None else p.lengths
    mask = (torch.arange(p.T)[:, None] < torch.as_tensor(lengths)[None, :]).double()[..., None]  # (T, B, 1)

    def flip_each(seq):  # (T, B, F) -> each sequence reversed within its own length, padding left in place
        return torch.stack([torch.cat([seq[:n, b].flip(0), seq[n:, b]]) for b, n in enumerate(lengths)], dim=1)

    inp, h_n = xs, []
    for k in range(p.L):
        outs = []
        for d, suffix in enumerate(("", "_reverse")[:p.D]):
            w_ih, w_hh = params[f"weight_ih_l{k}{suffix}"], params[f"weight_hh_l{k}{suffix}"]
            bias = params[f"bias_ih_l{k}{suffix}"] + params[f"bias_hh_l{k}{suffix}"] if "bias_ih_l0" in params else 0.0
            seq = flip_each(inp) if d else inp
            h, out_d = h0[k * p.D + d], []
            for t in range(p.T):
                h = mask[t] * torch.sigmoid(seq[t] @ w_ih.T + h @ w_hh.T + bias) + (1 - mask[t]) * h
                out_d.append(mask[t] * h)
            out_d = torch.stack(out_d)
            outs.append(flip_each(out_d) if d else out_d)
            h_n.append(h)
        inp = torch.cat(outs, dim=2)
    out = inp.transpose(0, 1) if p.batch_first else inp
    return out, torch.stack(h_n)


def torch_run(p, weights):
    """Forward + autograd backward of the same loss in torch float64: an Outcome in the problem's layout."""
    torch = pytest.importorskip("torch")

    def leaf(a):
        return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)

    lstm = is_lstm(p.cell)
    mode = mode_of(p.cell)
    x, h0 = leaf(p.x), leaf(p.h0)
    c0 = leaf(p.c0) if lstm else None
    bias = "bias_ih_l0" in weights
    if mode == "sigmoid":
        named = {k: leaf(v) for k, v in weights.items()}
        out, h_n = _torch_sigmoid_elman(torch, x, h0, named, p)
        c_n = None
    else:
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(mode) or functools.partial(torch.nn.RNN,
                                                                                          nonlinearity=mode)
        mod = cls(p.I, p.H, num_layers=p.L, bias=bias, batch_first=p.batch_first, bidirectional=p.bidirectional,
                  dtype=torch.float64)
        mod.load_state_dict({k: torch.tensor(np.asarray(v, dtype=np.float64)) for k, v in weights.items()})
        inp = x
        if p.lengths is not None:
            inp = torch.nn.utils.rnn.pack_padded_sequence(x, torch.as_tensor(p.lengths, dtype=torch.int64),
                                                          batch_first=p.batch_first, enforce_sorted=False)
        out, state = mod(inp, (h0, c0) if lstm else h0)
        if p.lengths is not None:
            out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=p.batch_first, total_length=p.T)
        h_n, c_n = state if lstm else (state, None)
        named = dict(mod.named_parameters())
    def const(a):
        return torch.tensor(np.asarray(a, dtype=np.float64))

    loss = (out * const(p.dout)).sum() + (h_n * const(p.dh_n)).sum()
    if lstm:
        loss = loss + (c_n * const(p.dc_n)).sum()
    loss.backward()
    grads = {k: v.grad.numpy().copy() for k, v in named.items()}
    grads["x"], grads["h0"] = x.grad.numpy().copy(), h0.grad.numpy().copy()
    if lstm:
        grads["c0"] = c0.grad.numpy().copy()
    detach = lambda a: None if a is None else a.detach().numpy().copy()  # noqa: E731
    return Outcome(detach(out), detach(h_n), detach(c_n), grads)


# ---- the reference itself, independent of rnnfast --------------------------------------------------


def reference_problem(cell, num_layers, lengths, bias=True, bidirectional=False, **shape):
    p = make_problem(cell, L=num_layers, batch_first=num_layers == 2, lengths=lengths, seed=num_layers,
                     bidirectional=bidirectional, **shape)
    weights = reference.init_weights(np.random.default_rng(100 + num_layers), cell, p.I, p.H,
                                     num_layers, bias=bias, bidirectional=bidirectional)
    return p, weights


@param_bidirectional
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@param_lengths
@param_layers
@param_cell
def test_reference_matches_torch(cell, num_layers, lengths, bias, bidirectional):
    p, weights = reference_problem(cell, num_layers, lengths, bias, bidirectional)
    assert_outcomes_close(run_reference(p, weights), torch_run(p, weights), np.float64)


@param_lengths
@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, False), (2, True)],
                         ids=["1-uni", "2-uni", "2-bi"])
@param_cell
def test_reference_gradients_finite_differences(cell, num_layers, lengths, bidirectional):
    # small: the reference is a Python loop, called twice per entry of every array
    p, weights = reference_problem(cell, num_layers, lengths, bidirectional=bidirectional, T=4, B=3, I=3, H=3)
    ref = run_reference(p, weights)
    if cell == "elman-relu":
        assert reference.min_abs_preactivation(reference.forward(
            cell, time_major(p.x, p.batch_first), weights, p.h0, p.c0, p.lengths)[3]) > 1e-4  # see smooth_setup

    def loss():
        out, h_n, c_n, _ = reference.forward(cell, time_major(p.x, p.batch_first), weights, p.h0, p.c0, p.lengths)
        return loss_of(p, time_major(out, p.batch_first), h_n, c_n)

    arrays = dict(weights, x=p.x, h0=p.h0, **({"c0": p.c0} if is_lstm(cell) else {}))
    for name, arr in arrays.items():
        np.testing.assert_allclose(ref.grads[name], numerical_gradient(loss, arr), **FD_TOL, err_msg=name)


# ---- rnnfast: three independent checks ---------------------------------------------------------------


def smooth_setup(cell, num_layers, batch_first, lengths=False, dtype=np.float64, bidirectional=False, **shape):
    """A problem and a layer; for relu, the first seed whose pre-activations all stay 1e-4 away from the kink
    (FD_EPS = 1e-6 moves a pre-activation by far less, float32 rounding by ~1e-6)."""
    for seed in range(50):
        p = make_problem(cell, L=num_layers, batch_first=batch_first, dtype=dtype, lengths=lengths, seed=seed,
                         bidirectional=bidirectional, **shape)
        layer = p.layer(seed=seed)
        if cell != "elman-relu":
            return p, layer
        cache = reference.forward(cell, time_major(p.x, batch_first), weights_of(layer), p.h0, None,
                                  p.lengths)[3]
        if reference.min_abs_preactivation(cache) > 1e-4:
            return p, layer
    raise AssertionError("no seed keeps relu away from its kink")


@param_lengths
@param_batch_first
@param_layers_directions
@param_cell
def test_gradients_finite_differences(cell, num_layers, bidirectional, batch_first, lengths):
    p, layer = smooth_setup(cell, num_layers, batch_first, lengths, bidirectional=bidirectional)
    got = run_layer(layer, p)

    def loss():
        return loss_of(p, *forward(layer, p))

    # every entry of every parameter, perturbed in place in .data (as an optimizer updates it)
    for name, param in layer.named_parameters():
        np.testing.assert_allclose(got.grads[name], numerical_gradient(loss, param.data), **FD_TOL,
                                   err_msg=name)
    states = {"x": p.x, "h0": p.h0, **({"c0": p.c0} if is_lstm(cell) else {})}
    for name, arr in states.items():
        np.testing.assert_allclose(got.grads[name], numerical_gradient(loss, arr), **FD_TOL, err_msg=name)


@param_bidirectional
@param_lengths
@param_dtype
@param_batch_first
@param_layers
@param_cell
def test_matches_reference(cell, num_layers, batch_first, dtype, lengths, bidirectional):
    p, layer = smooth_setup(cell, num_layers, batch_first, lengths, dtype, bidirectional)
    got = run_layer(layer, p)
    assert got.out.dtype == dtype and got.h_n.dtype == dtype
    assert all(g.dtype == dtype for g in got.grads.values())
    if is_lstm(cell):
        assert got.c_n.dtype == dtype
    assert_outcomes_close(got, run_reference(p, weights_of(layer)), dtype)


@param_bidirectional
@param_dtype
@param_cell
def test_matches_reference_without_bias(cell, dtype, bidirectional):
    p = make_problem(cell, L=2, dtype=dtype, seed=3, bidirectional=bidirectional)
    layer = p.layer(seed=3, bias=False)
    names = {name for name, _ in layer.named_parameters()}
    suffixes = ("", "_reverse") if bidirectional else ("",)
    assert names == {f"weight_{kind}_l{k}{s}" for kind in ("ih", "hh") for k in (0, 1) for s in suffixes}
    assert_outcomes_close(run_layer(layer, p), run_reference(p, weights_of(layer)), dtype)


@param_bidirectional
@param_lengths
@param_dtype
@param_batch_first
@param_layers
@param_cell
def test_matches_torch(cell, num_layers, batch_first, dtype, lengths, bidirectional):
    p, layer = smooth_setup(cell, num_layers, batch_first, lengths, dtype, bidirectional)
    assert_outcomes_close(run_layer(layer, p), torch_run(p, weights_of(layer)), dtype)


@param_bidirectional
@param_dtype
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", ["elman-tanh", "elman-relu", "lstm", "gru"])
def test_load_state_dict_from_torch(cell, num_layers, dtype, bidirectional):
    torch = pytest.importorskip("torch")
    torch.manual_seed(num_layers)
    lstm = is_lstm(cell)
    kwargs = dict(num_layers=num_layers, bidirectional=bidirectional, dtype=torch.float64)
    if lstm:
        mod = torch.nn.LSTM(4, 5, **kwargs)
    elif cell == "gru":
        mod = torch.nn.GRU(4, 5, **kwargs)
    else:
        mod = torch.nn.RNN(4, 5, nonlinearity=mode_of(cell), **kwargs)
    torch_state = {k: v.detach().numpy() for k, v in mod.state_dict().items()}
    layer = make_layer(cell, 4, 5, num_layers=num_layers, bidirectional=bidirectional, dtype=np.dtype(dtype).name,
                       seed=123)
    # same names in the same order (torch's: layer by layer, forward direction first)
    assert list(layer.state_dict()) == list(torch_state)
    assert {k: v.shape for k, v in layer.state_dict().items()} == {k: v.shape for k, v in torch_state.items()}
    assert {k: p.data.shape for k, p in layer.named_parameters()} == \
        {k: tuple(v.shape) for k, v in mod.named_parameters()}
    layer.load_state_dict(torch_state)
    for k, v in layer.state_dict().items():
        assert v.dtype == dtype
        assert_close(v, torch_state[k], dtype, k)
    x = np.random.default_rng(0).uniform(-1, 1, (5, 3, 4))
    out, state = layer(x)
    t_out, t_state = mod(torch.tensor(x))
    assert_close(out, t_out.detach().numpy(), dtype, "out")
    for ours, theirs in zip(state if lstm else (state,), t_state if lstm else (t_state,)):
        assert_close(ours, theirs.detach().numpy(), dtype, "state")


# ---- threads ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [2, 3])
@param_dtype
@param_layers_directions
@param_cell
def test_threads_agree(cell, num_layers, bidirectional, dtype, threads, restore_threads):
    import rnnfast

    # Large enough that the kernels split the batch: the recurrent GEMMs do 2·T·B·G·H·H ≈ 1e7 (Elman) to
    # 4e7 (LSTM) flops per direction, well above a few 1e6 per thread. B = 161 does not divide evenly by 2
    # or 3 threads.
    p = make_problem(cell, T=12, B=161, I=24, H=48, L=num_layers, dtype=dtype, lengths=True, seed=7,
                     bidirectional=bidirectional)
    layer = p.layer(seed=7)
    rnnfast.set_num_threads(1)
    assert rnnfast.get_num_threads() == 1
    one = run_layer(layer, p)
    rnnfast.set_num_threads(threads)
    assert rnnfast.get_num_threads() == threads
    many = run_layer(layer, p)
    assert_outcomes_close(many, one, dtype)
    # and both are right, not merely equal
    assert_outcomes_close(many, run_reference(p, weights_of(layer)), dtype)


# Sizes around the kernels' blocking: H = 1, hidden sizes that leave partial panels/SIMD tails for
# both G·H (forward) and H (backward), a single sequence, a single step, input wider than hidden.
ODD_SIZES = [(1, 1, 1, 1), (3, 2, 7, 17), (4, 5, 3, 33), (2, 3, 33, 40), (6, 1, 2, 9)]


@pytest.mark.parametrize("sizes", ODD_SIZES, ids=["x".join(map(str, s)) for s in ODD_SIZES])
@param_bidirectional
@param_dtype
@param_cell
def test_odd_sizes_match_reference(cell, dtype, bidirectional, sizes):
    T, B, I, H = sizes
    p, layer = smooth_setup(cell, 2, False, lengths=B > 1, dtype=dtype, bidirectional=bidirectional, T=T, B=B, I=I,
                            H=H)
    assert_outcomes_close(run_layer(layer, p), run_reference(p, weights_of(layer)), dtype)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(cell=st.sampled_from(CELLS), dtype=st.sampled_from(DTYPES), T=st.integers(1, 7), B=st.integers(1, 9),
       I=st.integers(1, 12), H=st.integers(1, 40), L=st.integers(1, 3), batch_first=st.booleans(),
       lengths=st.booleans(), bidirectional=st.booleans(), seed=st.integers(0, 2**16))
def test_random_shapes_match_reference(cell, dtype, T, B, I, H, L, batch_first, lengths, bidirectional, seed):
    p = make_problem(cell, T=T, B=B, I=I, H=H, L=L, batch_first=batch_first, dtype=dtype, lengths=lengths,
                     seed=seed, bidirectional=bidirectional)
    layer = p.layer(seed=seed)
    assert_outcomes_close(run_layer(layer, p), run_reference(p, weights_of(layer)), dtype)


# ---- step() ----------------------------------------------------------------------------------------------


@param_batch_first
@param_dtype
@param_layers
@param_cell
def test_step_matches_forward(cell, num_layers, dtype, batch_first):
    p = make_problem(cell, L=num_layers, dtype=dtype, batch_first=batch_first, seed=11)
    layer = p.layer(seed=11)
    out, h_n, c_n = forward(layer, p)
    x, out = time_major(p.x, batch_first), time_major(out, batch_first)
    state = p.hx
    for t in range(p.T):
        h_t, state = layer.step(x[t], state)  # x_t is (B, I) whatever the layout
        assert h_t.shape == (p.B, p.H) and h_t.dtype == dtype
        assert_close(h_t, out[t], dtype, f"h_t at t={t}")
    if is_lstm(cell):
        assert_close(state[0], h_n, dtype, "h")
        assert_close(state[1], c_n, dtype, "c")
    else:
        assert_close(state, h_n, dtype, "h")


@pytest.mark.parametrize("sizes", ODD_SIZES, ids=["x".join(map(str, s)) for s in ODD_SIZES])
@param_dtype
@param_cell
def test_step_matches_reference_at_odd_sizes(cell, dtype, sizes):
    """The step's matrix-vector products take rows four at a time and K in vectors of 32 bytes: these sizes
    leave every remainder of both (G·H and K = I, H not multiples of 4 and 8, and wider ones)."""
    T, B, I, H = sizes
    p = make_problem(cell, T=T, B=B, I=I, H=H, dtype=dtype, seed=13)
    layer = p.layer(seed=13)
    want = run_reference(p, weights_of(layer))
    state = p.hx
    for t in range(T):
        h_t, state = layer.step(p.x[t], state)
        assert_close(h_t, want.out[t], dtype, f"h_t at t={t}")


@param_cell
def test_step_reads_the_returned_state_as_it_is_now(cell):
    """step takes the state it returned last without checking it again: it must still read its values as the
    caller left them, and refuse it beside an x_t of another batch size."""
    p = make_problem(cell, L=2, seed=14)
    layer = p.layer(seed=14)
    copies = lambda s: tuple(a.copy() for a in s) if is_lstm(cell) else s.copy()     # noqa: E731
    _, state = layer.step(p.x[0])
    for a in state if is_lstm(cell) else (state,):
        a *= 0.5                                                    # in place, as a user may
    got = layer.step(p.x[1], state)                                 # the state returned last, changed
    want = layer.step(p.x[1], copies(state))                        # a new object: checked and read
    np.testing.assert_array_equal(got[0], want[0])
    for a, b in zip(got[1], want[1]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(got[0], layer.step(p.x[1], copies(layer.step(p.x[0])[1]))[0])    # 0.5 mattered
    _, state = layer.step(p.x[0])
    with pytest.raises(ValueError, match="state"):
        layer.step(p.x[0][:2], state)                               # B = 2 beside a state of B = 3
    for change in ("shape", "strides"):                             # in place: read past its end, unchecked
        _, state = layer.step(p.x[0])
        h = state[0] if is_lstm(cell) else state
        if change == "shape":
            h.shape = (h.shape[0] * h.shape[1], 1, h.shape[2])
            with pytest.raises(ValueError, match="state"):
                layer.step(p.x[0], state)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)     # setting strides is deprecated
                h.strides = (h.strides[0], h.strides[1], 0)
            want = layer.step(p.x[1], copies(state))
            got = layer.step(p.x[1], state)
            np.testing.assert_array_equal(got[0], want[0])


@param_layers
@param_cell
def test_step_from_none_state_is_zero_state(cell, num_layers):
    p = make_problem(cell, L=num_layers, seed=12)
    layer = p.layer(seed=12)
    zeros = np.zeros((num_layers, p.B, p.H))
    h_none, s_none = layer.step(p.x[0], None)
    h_zero, s_zero = layer.step(p.x[0], (zeros, zeros.copy()) if is_lstm(cell) else zeros)
    np.testing.assert_array_equal(h_none, h_zero)
    for a, b in zip(s_none if is_lstm(cell) else (s_none,), s_zero if is_lstm(cell) else (s_zero,)):
        np.testing.assert_array_equal(a, b)
    out, _ = layer(p.x[:1])
    assert_close(h_none, out[0], np.float64)


# ---- accumulation, lengths -------------------------------------------------------------------------------


@param_cell
def test_backward_accumulates_and_zero_grad_resets(cell):
    p1 = make_problem(cell, L=2, seed=21)
    p2 = make_problem(cell, L=2, seed=22)
    layer = p1.layer(seed=21)
    g1, g2 = run_layer(layer, p1).grads, run_layer(layer, p2).grads  # each starts from zeroed grads
    layer.zero_grad()
    for p in (p1, p2):
        forward(layer, p)
        layer.backward(p.dout, p.dhx)
    for name, param in layer.named_parameters():
        assert np.abs(g1[name]).max() > 0
        assert_close(param.grad, g1[name] + g2[name], np.float64, name)
    layer.zero_grad()
    for name, param in layer.named_parameters():
        assert param.grad.shape == param.data.shape
        assert not np.any(param.grad), name


@param_bidirectional
@param_dtype
@param_batch_first
@param_layers
@param_cell
def test_lengths_equal_sequences_run_alone(cell, num_layers, batch_first, dtype, bidirectional):
    """A padded batch gives every sequence what it gets alone and unpadded: outputs, final states, all gradients
    (the parameters' summed over sequences), and padding (filled with large values, in x and in dout) reaches
    nothing. For bidirectional layers this is the MXNet bug: the reverse pass must start at each sequence's own
    last step, not at T - 1 in the padding."""
    p = make_problem(cell, T=6, B=4, L=num_layers, batch_first=batch_first, dtype=dtype, lengths=True, seed=31,
                     bidirectional=bidirectional)
    assert sorted(set(p.lengths)) == [1, 3, 6]  # one full, two padded sequences
    x, dout = time_major(p.x, batch_first), time_major(p.dout, batch_first)  # views: writes reach p
    rng = np.random.default_rng(31)
    for b, n in enumerate(p.lengths):
        x[n:, b] = rng.uniform(-1e6, 1e6, x[n:, b].shape)
        dout[n:, b] = rng.uniform(-1e6, 1e6, dout[n:, b].shape)
    layer = p.layer(seed=31)
    got = run_layer(layer, p)
    lstm = is_lstm(cell)
    out, dx = time_major(got.out, batch_first), time_major(got.grads["x"], batch_first)
    param_sum = {name: 0.0 for name, _ in layer.named_parameters()}
    for b, n in enumerate(p.lengths):
        alone = make_problem(cell, T=int(n), B=1, L=num_layers, batch_first=batch_first, dtype=dtype,
                             bidirectional=bidirectional)
        alone.x = time_major(np.ascontiguousarray(x[:n, b:b + 1]), batch_first)
        alone.dout = time_major(np.ascontiguousarray(dout[:n, b:b + 1]), batch_first)
        alone.h0, alone.dh_n = p.h0[:, b:b + 1].copy(), p.dh_n[:, b:b + 1].copy()
        if lstm:
            alone.c0, alone.dc_n = p.c0[:, b:b + 1].copy(), p.dc_n[:, b:b + 1].copy()
        one = run_layer(layer, alone)
        assert_close(out[:n, b], time_major(one.out, batch_first)[:, 0], dtype, f"out[{b}]")
        assert not np.any(out[n:, b]), f"output after the end of sequence {b} must be zero"
        assert_close(got.h_n[:, b], one.h_n[:, 0], dtype, f"h_n[{b}]")
        if lstm:
            assert_close(got.c_n[:, b], one.c_n[:, 0], dtype, f"c_n[{b}]")
        assert_close(dx[:n, b], time_major(one.grads["x"], batch_first)[:, 0], dtype, f"dx[{b}]")
        assert not np.any(dx[n:, b]), f"no gradient after the end of sequence {b}"
        for key in ("h0", "c0") if lstm else ("h0",):
            assert_close(got.grads[key][:, b], one.grads[key][:, 0], dtype, f"d{key}[{b}]")
        for name in param_sum:
            param_sum[name] = param_sum[name] + one.grads[name]
    for name, total in param_sum.items():
        assert_close(got.grads[name], total, dtype, name)


@param_bidirectional
@param_cell
def test_lengths_all_full_equals_no_lengths(cell, bidirectional):
    p = make_problem(cell, L=2, seed=32, bidirectional=bidirectional)
    layer = p.layer(seed=32)
    plain = run_layer(layer, p)
    p.lengths = np.full(p.B, p.T)
    assert_outcomes_close(run_layer(layer, p), plain, np.float64)


# ---- dropout, init, modes --------------------------------------------------------------------------------


@param_bidirectional
@param_cell
def test_dropout_train_differs_eval_equals_no_dropout(cell, bidirectional):
    p = make_problem(cell, T=6, B=4, I=4, H=16, L=3, seed=41, bidirectional=bidirectional)
    layer = p.layer(seed=41, dropout=0.5)
    plain = p.layer(seed=99, dropout=0.0)
    plain.load_state_dict(layer.state_dict())
    expected = forward(plain, p)

    layer.train()
    train_out = forward(layer, p)
    assert not np.allclose(train_out[0], expected[0]), "dropout had no effect in train mode"
    train_again = forward(layer, p)
    assert not np.array_equal(train_again[0], train_out[0]), "dropout masks should be redrawn each forward"

    layer.eval()
    for a, b in zip(forward(layer, p), expected):
        if b is not None:
            assert_close(a, b, np.float64)
    # eval gradients are the exact ones
    layer.eval()
    assert_outcomes_close(run_layer(layer, p), run_reference(p, weights_of(layer)), np.float64)


@param_bidirectional
@param_cell
def test_dropout_single_layer_has_no_effect(cell, bidirectional):
    # torch semantics: dropout acts between stacked layers, never on the last layer's output
    p = make_problem(cell, L=1, seed=42, bidirectional=bidirectional)
    layer = p.layer(seed=42, dropout=0.5).train()
    got = run_layer(layer, p)
    assert_outcomes_close(got, run_reference(p, weights_of(layer)), np.float64)


def test_dropout_is_inverted_and_backward_uses_the_forward_mask():
    # Probe: relu Elman whose layer 1 is the identity (W_ih = I, W_hh = 0, b = 0). Then layer 1 returns its
    # input, the dropped-out output of layer 0 (>= 0): each entry is 0 or out0 / (1 - p), and out0 is the
    # eval-mode output. Backward must route dout through that same mask.
    import rnnfast

    drop, T, B, I, H = 0.4, 6, 5, 4, 6
    layer = rnnfast.Elman(I, H, num_layers=2, nonlinearity="relu", dropout=drop, dtype="float64", seed=1)
    state = layer.state_dict()
    state.update(weight_ih_l1=np.eye(H), weight_hh_l1=np.zeros((H, H)), bias_ih_l1=np.zeros(H),
                 bias_hh_l1=np.zeros(H))
    layer.load_state_dict(state)
    rng = np.random.default_rng(2)
    x, h0 = rng.uniform(-1, 1, (T, B, I)), rng.uniform(0, 0.5, (2, B, H))
    out0, _ = layer.eval()(x, h0)
    live = out0 > 0
    assert live.mean() > 0.3

    out, h_n = layer.train()(x, h0)
    kept = out != 0
    assert not np.any(out[~live])
    np.testing.assert_allclose(out[live & kept], out0[live & kept] / (1 - drop), rtol=1e-12)
    dropped_fraction = 1 - kept[live].mean()
    assert abs(dropped_fraction - drop) < 0.15, dropped_fraction  # about 100 draws: 3 sigma
    np.testing.assert_array_equal(h_n[1], out[-1])

    layer.zero_grad()
    dout = rng.uniform(-1, 1, (T, B, H))
    dh_n = np.stack([rng.uniform(-1, 1, (B, H)), np.zeros((B, H))])
    dx, dh0 = layer.backward(dout, dh_n)
    dpre1 = dout * kept  # through layer 1's relu: live where its input (the dropped output) is > 0
    dout0 = dpre1 * kept / (1 - drop)  # through the identity and the dropout mask
    w0 = {k: v for k, v in state.items() if k.endswith("l0")}
    ref = reference.run("elman-relu", x, w0, h0=h0[:1], dout=dout0, dh_n=dh_n[:1])
    grads = {name: p.grad for name, p in layer.named_parameters()}
    assert_close(dx, ref.grads["x"], np.float64, "dx")
    assert_close(dh0[0], ref.grads["h0"][0], np.float64, "dh0[0]")
    assert not np.any(dh0[1])  # W_hh_l1 = 0
    for name in w0:
        assert_close(grads[name], ref.grads[name], np.float64, name)
    assert_close(grads["weight_ih_l1"], np.einsum("tbi,tbj->ij", dpre1, out), np.float64, "weight_ih_l1")
    assert_close(grads["bias_hh_l1"], dpre1.sum(axis=(0, 1)), np.float64, "bias_hh_l1")


@param_dtype
@param_cell
def test_seed_reproducible_and_init_range(cell, dtype):
    H = 16
    a = make_layer(cell, 3, H, num_layers=2, dtype=np.dtype(dtype).name, seed=5)
    b = make_layer(cell, 3, H, num_layers=2, dtype=np.dtype(dtype).name, seed=5)
    c = make_layer(cell, 3, H, num_layers=2, dtype=np.dtype(dtype).name, seed=6)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys() == sc.keys()
    for k in sa:
        assert sa[k].dtype == dtype
        np.testing.assert_array_equal(sa[k], sb[k])
        assert not np.array_equal(sa[k], sc[k]), k
    bound = 1 / np.sqrt(H)
    allv = np.concatenate([v.ravel() for v in sa.values()])
    assert np.all(np.abs(allv) <= bound * (1 + 1e-6))
    # really spread over the interval, not a constant or a narrower law
    assert allv.max() > 0.9 * bound and allv.min() < -0.9 * bound
    assert abs(allv.mean()) < 0.1 * bound
    for p in a.parameters():
        assert p.grad.shape == p.data.shape and not np.any(p.grad)


def test_rnn_alias_is_elman():
    import rnnfast

    a = rnnfast.RNN(3, 4, num_layers=2, seed=1)
    b = rnnfast.Elman(3, 4, num_layers=2, seed=1)
    x = np.random.default_rng(0).uniform(-1, 1, (5, 2, 3))
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k])
    np.testing.assert_array_equal(a(x)[0], b(x)[0])


@param_cell
def test_state_dict_is_a_copy_and_round_trips(cell):
    p = make_problem(cell, L=2, seed=44)
    layer = p.layer(seed=44)
    before = forward(layer, p)[0]
    state = layer.state_dict()
    for v in state.values():
        v[...] = 0.0
    np.testing.assert_array_equal(forward(layer, p)[0], before)
    other = p.layer(seed=45)
    other.load_state_dict(layer.state_dict())
    np.testing.assert_array_equal(forward(other, p)[0], before)


@param_cell
def test_hx_omitted_is_zero_state(cell):
    p = make_problem(cell, L=2, seed=46)
    layer = p.layer(seed=46)
    out, state = layer(p.x)
    p.h0 = np.zeros_like(p.h0)
    if is_lstm(cell):
        p.c0 = np.zeros_like(p.c0)
    out0, h0, c0 = forward(layer, p)
    np.testing.assert_array_equal(out, out0)
    np.testing.assert_array_equal(state[0] if is_lstm(cell) else state, h0)


@param_cell
def test_backward_dstate_optional(cell):
    p = make_problem(cell, L=2, seed=47)
    layer = p.layer(seed=47)
    p.dh_n = np.zeros_like(p.dh_n)
    if is_lstm(cell):
        p.dc_n = np.zeros_like(p.dc_n)
    full = run_layer(layer, p)
    variants = [None]
    if is_lstm(cell):
        variants += [(None, None), (p.dh_n, None), (None, p.dc_n)]
    for dhx in variants:
        layer.zero_grad()
        forward(layer, p)
        dx, dstate = layer.backward(p.dout) if dhx is None else layer.backward(p.dout, dhx)
        np.testing.assert_allclose(dx, full.grads["x"], rtol=1e-12, atol=1e-14)
        dh0 = dstate[0] if is_lstm(cell) else dstate
        np.testing.assert_allclose(dh0, full.grads["h0"], rtol=1e-12, atol=1e-14)
        for name, param in layer.named_parameters():
            np.testing.assert_allclose(param.grad, full.grads[name], rtol=1e-12, atol=1e-14)


# ---- input handling --------------------------------------------------------------------------------------


@pytest.mark.parametrize("in_dtype", [np.float16, np.float32, np.float64])
@param_dtype
@param_cell
def test_input_dtype_converted(cell, dtype, in_dtype):
    p = make_problem(cell, L=2, dtype=np.float64, seed=51)
    layer = make_layer(cell, p.I, p.H, num_layers=2, dtype=np.dtype(dtype).name, seed=51)
    x = p.x.astype(in_dtype)
    out, _ = layer(x)
    assert out.dtype == dtype
    expected, _ = layer(x.astype(dtype))
    np.testing.assert_array_equal(out, expected)
    dx, _ = layer.backward(p.dout.astype(in_dtype))
    assert dx.dtype == dtype


@param_batch_first
@param_cell
def test_non_contiguous_and_read_only_inputs(cell, batch_first):
    p = make_problem(cell, L=2, batch_first=batch_first, seed=52)
    layer = p.layer(seed=52)
    expected = run_layer(layer, p)

    def strided(a):
        """The same values in a non-contiguous view: every other element of a larger array."""
        big = np.zeros((2 * a.shape[0],) + a.shape[1:], dtype=a.dtype)
        big[::2] = a
        view = big[::2]
        assert not view.flags.c_contiguous
        return view

    def transposed(a):
        """The same values as a transposed (Fortran-ordered) view."""
        view = np.asfortranarray(a)
        assert not view.flags.c_contiguous
        return view

    def read_only(a):
        a = a.copy()
        a.setflags(write=False)
        return a

    for wrap in (strided, transposed, read_only):
        q = make_problem(cell, L=2, batch_first=batch_first, seed=52)
        q.x, q.h0, q.dout, q.dh_n = wrap(p.x), wrap(p.h0), wrap(p.dout), wrap(p.dh_n)
        if is_lstm(cell):
            q.c0, q.dc_n = wrap(p.c0), wrap(p.dc_n)
        got = run_layer(layer, q)
        assert_outcomes_close(got, expected, np.float64)
    # a read-only input is not written to
    x = read_only(p.x)
    layer(x)
    np.testing.assert_array_equal(x, p.x)


# ---- errors ---------------------------------------------------------------------------------------------


@param_cell
def test_bad_x(cell):
    layer = make_layer(cell, 4, 5, num_layers=2, seed=0)
    with pytest.raises((ValueError, TypeError), match=r"\bx\b"):
        layer(np.zeros((3, 4)))  # rank 2
    with pytest.raises((ValueError, TypeError), match=r"\bx\b"):
        layer(np.zeros((5, 3, 4, 1)))  # rank 4
    with pytest.raises((ValueError, TypeError), match=r"\bx\b|input_size"):
        layer(np.zeros((5, 3, 3)))  # wrong feature size
    with pytest.raises(TypeError, match=r"\bx\b"):
        layer(np.array([[["a"] * 4] * 3] * 5))
    with pytest.raises(TypeError, match=r"\bx\b"):
        layer(np.full((5, 3, 4), None, dtype=object))


@param_cell
def test_bad_hx(cell):
    lstm = is_lstm(cell)
    layer = make_layer(cell, 4, 5, num_layers=2, seed=0)
    x = np.zeros((5, 3, 4))
    good = np.zeros((2, 3, 5))
    bad_shapes = [np.zeros((1, 3, 5)), np.zeros((2, 2, 5)), np.zeros((2, 3, 4)), np.zeros((3, 5))]
    for bad in bad_shapes:
        with pytest.raises((ValueError, TypeError), match=r"hx|h0|c0|state"):
            layer(x, (bad, good) if lstm else bad)
        if lstm:
            with pytest.raises((ValueError, TypeError), match=r"hx|h0|c0|state"):
                layer(x, (good, bad))
    if lstm:
        for bad_structure in [good, (good,), (good, good, good)]:
            with pytest.raises((ValueError, TypeError), match=r"hx|h0|c0|state"):
                layer(x, bad_structure)
    else:
        with pytest.raises((ValueError, TypeError), match=r"hx|h0|state"):
            layer(x, np.full((2, 3, 5), "a"))


@param_cell
def test_bad_backward(cell):
    lstm = is_lstm(cell)
    layer = make_layer(cell, 4, 5, num_layers=2, seed=0)
    dout = np.zeros((5, 3, 5))
    with pytest.raises((ValueError, RuntimeError), match="forward"):
        layer.backward(dout)
    layer(np.zeros((5, 3, 4)))
    for bad in [np.zeros((5, 3, 4)), np.zeros((4, 3, 5)), np.zeros((5, 2, 5)), np.zeros((5, 3))]:
        with pytest.raises((ValueError, TypeError), match="dout"):
            layer.backward(bad)
    with pytest.raises(TypeError, match="dout"):
        layer.backward(np.full((5, 3, 5), "a"))
    bad_state = np.zeros((1, 3, 5))
    with pytest.raises((ValueError, TypeError), match=r"dh|dc|state"):
        layer.backward(dout, (bad_state, None) if lstm else bad_state)
    if lstm:
        with pytest.raises((ValueError, TypeError), match=r"dh|dc|state"):
            layer.backward(dout, (None, bad_state))


@param_cell
def test_bad_lengths(cell):
    layer = make_layer(cell, 4, 5, seed=0)
    x = np.zeros((5, 3, 4))
    for bad in ([0, 1, 2], [1, 6, 2], [-1, 2, 2], [1, 2], [[1, 2, 3]]):
        with pytest.raises((ValueError, TypeError), match="lengths"):
            layer(x, None, lengths=np.array(bad))


@param_cell
def test_bad_constructor_arguments(cell):
    lstm = is_lstm(cell)
    for kwargs, word in [((0, 5), "input_size"), ((4, 0), "hidden_size"), ((4, -1), "hidden_size")]:
        with pytest.raises((ValueError, TypeError), match=word):
            make_layer(cell, *kwargs)
    with pytest.raises((ValueError, TypeError), match="num_layers"):
        make_layer(cell, 4, 5, num_layers=0)
    with pytest.raises((ValueError, TypeError), match="dtype"):
        make_layer(cell, 4, 5, dtype="int32")
    if not lstm:
        import rnnfast

        with pytest.raises(ValueError, match="nonlinearity"):
            rnnfast.Elman(4, 5, nonlinearity="softsign")


@param_cell
def test_bad_load_state_dict(cell):
    layer = make_layer(cell, 4, 5, num_layers=2, seed=0)
    good = layer.state_dict()
    before = layer.state_dict()

    missing = dict(good)
    del missing["weight_hh_l1"]
    with pytest.raises((KeyError, ValueError), match="weight_hh_l1"):
        layer.load_state_dict(missing)
    unknown = dict(good, weight_hh_l2=good["weight_hh_l1"])
    with pytest.raises((KeyError, ValueError), match="weight_hh_l2"):
        layer.load_state_dict(unknown)
    misshapen = {k: v + 1.0 for k, v in good.items()}
    misshapen["bias_ih_l0"] = np.zeros(good["bias_ih_l0"].size + 1)
    with pytest.raises(ValueError, match="bias_ih_l0"):
        layer.load_state_dict(misshapen)
    # a failed load changes nothing
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
