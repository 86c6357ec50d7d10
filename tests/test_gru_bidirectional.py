"""GRU and bidirectional layers: what test_layers.py's parametrised checks (finite differences, the reference,
torch, threads, step, sequences run alone) do not pin down by themselves.

- GRU's cell, one step, from the issue's equations written out here (not from rnnfast.reference);
- a bidirectional stack equals unidirectional layers run by hand: the forward direction on the sequences,
  the reverse one on each sequence reversed within its own length, outputs concatenated, states ordered
  [l0 fwd, l0 rev, l1 fwd, ...], gradients summed where the directions share an input;
- padding, however large, reaches nothing; the reverse pass starts at each sequence's own last step (the
  MXNet bug);
- errors: step on a bidirectional layer, dout of width H, states with num_layers rows.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import CELL_TABLE, CELLS, DTYPES, assert_close, is_lstm, make_layer, make_problem, run_layer, time_major

pytestmark = pytest.mark.usefixtures("single_threaded_blas")

dtype_ids = [np.dtype(d).name for d in DTYPES]
param_cell = pytest.mark.parametrize("cell", CELLS)
param_dtype = pytest.mark.parametrize("dtype", DTYPES, ids=dtype_ids)
param_batch_first = pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# ---- GRU's cell -------------------------------------------------------------------------------------------


@param_dtype
def test_gru_step_follows_the_equations(dtype):
    """r = σ(W_ir x + b_ir + W_hr h + b_hr), z = σ(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h, with weights stacked (r, z, n)."""
    import rnnfast

    I, H, B = 3, 4, 5
    gru = rnnfast.GRU(I, H, dtype=np.dtype(dtype).name, seed=0)
    rng = np.random.default_rng(0)
    state = {k: rng.uniform(-1, 1, v.shape) for k, v in gru.state_dict().items()}  # biases as large as weights
    gru.load_state_dict(state)
    w = {k: v.astype(dtype).astype(np.float64) for k, v in state.items()}  # the values the layer holds
    x, h = rng.uniform(-1, 1, (B, I)), rng.uniform(-1, 1, (B, H))
    W_ir, W_iz, W_in = np.split(w["weight_ih_l0"], 3)
    W_hr, W_hz, W_hn = np.split(w["weight_hh_l0"], 3)
    b_ir, b_iz, b_in = np.split(w["bias_ih_l0"], 3)
    b_hr, b_hz, b_hn = np.split(w["bias_hh_l0"], 3)
    x64, h64 = x.astype(dtype).astype(np.float64), h.astype(dtype).astype(np.float64)
    r = sigmoid(x64 @ W_ir.T + b_ir + h64 @ W_hr.T + b_hr)
    z = sigmoid(x64 @ W_iz.T + b_iz + h64 @ W_hz.T + b_hz)
    n = np.tanh(x64 @ W_in.T + b_in + r * (h64 @ W_hn.T + b_hn))
    expected = (1 - z) * n + z * h64
    # b_hn outside the reset product would be a different function here, so the check can tell them apart
    n_outside = np.tanh(x64 @ W_in.T + b_in + b_hn + r * (h64 @ W_hn.T))
    assert np.abs((1 - z) * (n_outside - n)).max() > 1e-2

    h_t, h_new = gru.step(x.astype(dtype), h[None].astype(dtype))
    assert h_t.dtype == dtype and h_new.shape == (1, B, H)
    assert_close(h_t, expected, dtype, "step")
    assert_close(h_new[0], expected, dtype, "step state")
    out, h_n = gru(x[None].astype(dtype), h[None].astype(dtype))
    assert_close(out[0], expected, dtype, "forward")
    assert_close(h_n[0], expected, dtype, "forward h_n")


# ---- bidirectional == unidirectional layers by hand --------------------------------------------------------


def flip_within(seq, lengths):
    """(T, B, F) with sequence b's first lengths[b] steps reversed; the padding after them stays in place."""
    out = seq.copy()
    for b, n in enumerate(lengths):
        out[:n, b] = seq[:n, b][::-1]
    return out


def one_direction(bi, k, d):
    """A unidirectional one-layer copy of direction d of layer k of the bidirectional layer ``bi``."""
    suffix = ("", "_reverse")[d]
    sd = bi.state_dict()
    in_k = bi.input_size if k == 0 else 2 * bi.hidden_size
    kwargs = {"nonlinearity": bi.nonlinearity} if hasattr(bi, "nonlinearity") else {}
    layer = type(bi)(in_k, bi.hidden_size, bias=bi.bias, dtype=bi.dtype.name, **kwargs)
    layer.load_state_dict({name: sd[name.replace("_l0", f"_l{k}") + suffix] for name in layer.state_dict()})
    return layer


@param_batch_first
@param_dtype
@param_cell
def test_bidirectional_equals_two_unidirectional_stacks(cell, dtype, batch_first):
    """Two bidirectional layers against four unidirectional ones wired by hand, with lengths; every output,
    final state, parameter gradient, dx and initial-state gradient."""
    L, T = 2, 6
    p = make_problem(cell, T=T, B=4, L=L, batch_first=batch_first, dtype=dtype, lengths=True, seed=61,
                     bidirectional=True)
    lengths, lstm, H = p.lengths, is_lstm(cell), p.H
    assert 1 in lengths and T in lengths and any(1 < n < T for n in lengths)
    bi = p.layer(seed=61)
    got = run_layer(bi, p)

    def state(hx, j):  # row j of h0 (and c0), as a one-layer state
        return (hx[0][j:j + 1], hx[1][j:j + 1]) if lstm else hx[j:j + 1]

    # forward, layer by layer: direction 1 reads (and writes) each sequence reversed within its length
    layer_in = time_major(p.x, batch_first)
    dirs, out_k = {}, None
    for k in range(L):
        halves = []
        for d in range(2):
            uni = dirs[k, d] = one_direction(bi, k, d)
            seq = layer_in if d == 0 else flip_within(layer_in, lengths)
            o, s = uni(seq, state(p.hx, 2 * k + d), lengths=lengths)
            halves.append(np.array(o) if d == 0 else flip_within(np.array(o), lengths))
            j = 2 * k + d
            h_j, c_j = (s[0][0], s[1][0]) if lstm else (s[0], None)
            assert_close(got.h_n[j], h_j, dtype, f"h_n[{j}]")  # order: l0 fwd, l0 rev, l1 fwd, l1 rev
            if lstm:
                assert_close(got.c_n[j], c_j, dtype, f"c_n[{j}]")
        out_k = np.concatenate(halves, axis=2)
        layer_in = out_k
    assert_close(got.out, time_major(out_k, batch_first), dtype, "out")

    # backward, top down: the two directions' dx add up, their dh0 rows sit at 2k and 2k + 1
    g = time_major(p.dout, batch_first)
    for k in reversed(range(L)):
        dx = 0.0
        for d in range(2):
            uni, j = dirs[k, d], 2 * k + d
            uni.zero_grad()
            g_d = g[..., :H] if d == 0 else flip_within(g[..., H:], lengths)
            dstate = (p.dh_n[j:j + 1], p.dc_n[j:j + 1]) if lstm else p.dh_n[j:j + 1]
            dx_d, ds = uni.backward(np.ascontiguousarray(g_d), dstate)
            dx = dx + (dx_d if d == 0 else flip_within(dx_d, lengths))
            assert_close(got.grads["h0"][j], (ds[0] if lstm else ds)[0], dtype, f"dh0[{j}]")
            if lstm:
                assert_close(got.grads["c0"][j], ds[1][0], dtype, f"dc0[{j}]")
            suffix = ("", "_reverse")[d]
            for name, param in uni.named_parameters():
                name_bi = name.replace("_l0", f"_l{k}") + suffix
                assert_close(got.grads[name_bi], param.grad, dtype, f"grad {name_bi}")
        g = dx
    assert_close(got.grads["x"], time_major(g, batch_first), dtype, "dx")


# ---- padding and the reverse pass's start (the MXNet bug) ------------------------------------------------


@param_dtype
@param_cell
def test_reverse_pass_starts_at_each_sequence_end(cell, dtype):
    """The reverse direction's first step is x[n-1] from its h0 row: its output there is one cell step,
    whatever the padding after it holds; its final state is its output at t = 0."""
    p = make_problem(cell, T=7, B=5, dtype=dtype, lengths=True, seed=62, bidirectional=True)
    p.x[:] = np.where(np.arange(p.T)[:, None, None] < p.lengths[None, :, None], p.x, 1e3)  # loud padding
    bi = p.layer(seed=62)
    got = run_layer(bi, p)
    rev = one_direction(bi, 0, 1)
    H, lstm = p.H, is_lstm(cell)
    for b, n in enumerate(p.lengths):
        x_last = p.x[n - 1:n, b:b + 1]  # (1, 1, I)
        h0 = p.h0[1:2, b:b + 1]
        o, _ = rev(x_last, (h0, p.c0[1:2, b:b + 1]) if lstm else h0)
        assert_close(got.out[n - 1, b, H:], o[0, 0], dtype, f"first reverse step of sequence {b}")
        assert_close(got.h_n[1, b], got.out[0, b, H:], dtype, f"reverse h_n of sequence {b}")
        assert_close(got.h_n[0, b], got.out[n - 1, b, :H], dtype, f"forward h_n of sequence {b}")
        assert not np.any(got.out[n:, b]), f"output in the padding of sequence {b}"
        assert not np.any(got.grads["x"][n:, b]), f"gradient in the padding of sequence {b}"


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@param_dtype
@param_cell
def test_padding_values_reach_nothing(cell, dtype, bidirectional):
    """Zeros or huge random numbers in the padding of x and of dout: the same outputs, states and gradients."""
    p = make_problem(cell, T=6, B=5, L=2, dtype=dtype, lengths=True, seed=63, bidirectional=bidirectional,
                     batch_first=True)
    live = (np.arange(p.T)[None, :] < p.lengths[:, None])[..., None]  # (B, T, 1)
    assert not live.all()
    rng = np.random.default_rng(63)
    layer = p.layer(seed=63)
    results = []
    for fill in (lambda a: np.zeros_like(a), lambda a: rng.uniform(-1e6, 1e6, a.shape).astype(dtype),
                 lambda a: rng.choice([-1e30, 1e30], a.shape).astype(dtype)):
        p.x, p.dout = np.where(live, p.x, fill(p.x)), np.where(live, p.dout, fill(p.dout))
        results.append(run_layer(layer, p))
    zero = results[0]
    for other in results[1:]:
        np.testing.assert_array_equal(other.out, zero.out)
        np.testing.assert_array_equal(other.h_n, zero.h_n)
        if is_lstm(cell):
            np.testing.assert_array_equal(other.c_n, zero.c_n)
        for name in zero.grads:
            np.testing.assert_array_equal(other.grads[name], zero.grads[name], err_msg=name)


# ---- errors -------------------------------------------------------------------------------------------------


@param_cell
def test_step_raises_for_bidirectional(cell):
    layer = make_layer(cell, 4, 5, num_layers=2, bidirectional=True, seed=0)
    with pytest.raises(ValueError, match="bidirectional"):
        layer.step(np.zeros((3, 4)))
    h = np.zeros((4, 3, 5))
    with pytest.raises(ValueError, match="bidirectional"):
        layer.step(np.zeros((3, 4)), (h, h) if is_lstm(cell) else h)


@param_cell
def test_bidirectional_bad_shapes_name_the_argument(cell):
    lstm = is_lstm(cell)
    L, T, B, I, H = 2, 5, 3, 4, 6
    layer = make_layer(cell, I, H, num_layers=L, bidirectional=True, seed=0)
    x = np.zeros((T, B, I))
    good, short = np.zeros((2 * L, B, H)), np.zeros((L, B, H))  # num_layers rows instead of num_layers * 2
    with pytest.raises(ValueError, match=r"\bh0\b"):
        layer(x, (short, good) if lstm else short)
    if lstm:
        with pytest.raises(ValueError, match=r"\bc0\b"):
            layer(x, (good, short))
    out, _ = layer(x, (good, good) if lstm else good)
    assert out.shape == (T, B, 2 * H)
    with pytest.raises(ValueError, match=r"\bdout\b"):
        layer.backward(np.zeros((T, B, H)))  # width H instead of 2H
    with pytest.raises(ValueError, match=r"\bdh_n\b"):
        layer.backward(np.zeros((T, B, 2 * H)), (short, good) if lstm else short)
    if lstm:
        with pytest.raises(ValueError, match=r"\bdc_n\b"):
            layer.backward(np.zeros((T, B, 2 * H)), (good, short))
    # a unidirectional layer rejects the bidirectional shapes the other way round
    uni = make_layer(cell, I, H, num_layers=L, seed=0)
    with pytest.raises(ValueError, match=r"\bh0\b"):
        uni(x, (good, short) if lstm else good)
    uni(x)
    with pytest.raises(ValueError, match=r"\bdout\b"):
        uni.backward(np.zeros((T, B, 2 * H)))


@pytest.mark.parametrize("cell", ["elman-tanh", "lstm", "gru"])
def test_bidirectional_layer_input_sizes_and_repr(cell):
    layer = make_layer(cell, 4, 6, num_layers=3, bidirectional=True, seed=0)
    G = CELL_TABLE[cell].gates
    shapes = {k: v.shape for k, v in layer.state_dict().items()}
    for k in range(3):
        for suffix in ("", "_reverse"):
            assert shapes[f"weight_ih_l{k}{suffix}"] == (G * 6, 4 if k == 0 else 12)
            assert shapes[f"weight_hh_l{k}{suffix}"] == (G * 6, 6)
            assert shapes[f"bias_hh_l{k}{suffix}"] == (G * 6,)
    assert len(shapes) == 3 * 2 * 4
    assert "bidirectional=True" in repr(layer)
