"""Variable-length batches in the packed layout (rnnfast._layout; csrc/_plan.pxi): what test_layers.py's
``lengths=`` checks (reference, torch packed, finite differences, threads, unit split) do not pin down.

- the kernels receive the real steps only: Σ lengths rows, whatever the padding;
- the layout: batch sizes, index, reversal and last rows, from the definitions;
- ``pack_sequences`` / ``unpack`` / ``PackedSequence`` equal torch's ``pack_padded_sequence`` /
  ``pad_packed_sequence``, and a layer given a PackedSequence equals the same layer given ``lengths=``, and
  torch's module given torch's PackedSequence (outputs, states, every gradient), bidirectional and stacked;
- finite differences through the packed API in float64;
- skewed lengths (one long sequence among short ones, ties, already sorted or reversed) on 1, 2, 3 threads;
- ``step`` run on each sequence alone for its own length ends where the packed forward's h_n does;
- errors: bad batch_sizes at the kernel, bad PackedSequence fields, dout of the wrong shape.
"""
from __future__ import annotations

import numpy as np
import pytest

import rnnfast
from rnnfast import _kernels
from rnnfast._layout import Layout

from conftest import (CELLS, DTYPES, FD_EPS, FD_TOL, Problem, assert_close, is_lstm, make_layer, mode_of,
                      run_reference)

pytestmark = pytest.mark.usefixtures("single_threaded_blas")

param_cell = pytest.mark.parametrize("cell", CELLS)
param_dtype = pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).name for d in DTYPES])
SKEWED = {                                       # B = 7 lengths, T = 30
    "one long": [30, 2, 1, 3, 2, 1, 2],
    "ties": [5, 9, 9, 5, 1, 9, 5],
    "sorted": [30, 25, 20, 15, 10, 5, 1],
    "increasing": [1, 5, 10, 15, 20, 25, 30],
}


def problem(cell, lengths, T=None, I=3, H=5, L=1, bidirectional=False, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    T = int(lengths.max()) if T is None else T
    B, D = len(lengths), 2 if bidirectional else 1
    x = rng.uniform(-1, 1, (T, B, I)).astype(dtype)
    x[np.arange(T)[:, None] >= lengths[None, :]] = np.nan          # padding: reaches nothing
    h0 = rng.uniform(-0.5, 0.5, (L * D, B, H)).astype(dtype)
    c0 = rng.uniform(-0.5, 0.5, (L * D, B, H)).astype(dtype) if is_lstm(cell) else None
    dout = rng.uniform(-1, 1, (T, B, D * H)).astype(dtype)
    dh_n = rng.uniform(-1, 1, (L * D, B, H)).astype(dtype)
    dc_n = rng.uniform(-1, 1, (L * D, B, H)).astype(dtype) if is_lstm(cell) else None
    layer = make_layer(cell, I, H, num_layers=L, bidirectional=bidirectional, dtype=np.dtype(dtype).name,
                       seed=seed)
    return layer, x, lengths, (h0, c0), dout, (dh_n, dc_n)


def hx(cell, state):
    return state if is_lstm(cell) else state[0]


def padded_run(layer, cell, x, lengths, state, dout, dstate):
    """Forward + backward with lengths= (padded API): (out, h_n, c_n, grads incl. x, h0, c0)."""
    layer.zero_grad()
    out, st = layer(x, hx(cell, state), lengths=lengths)
    dx, d0 = layer.backward(dout, hx(cell, dstate))
    h_n, c_n = st if is_lstm(cell) else (st, None)
    dh0, dc0 = d0 if is_lstm(cell) else (d0, None)
    grads = {n: p.grad.copy() for n, p in layer.named_parameters()}
    grads.update(x=np.array(dx), h0=np.array(dh0), c0=None if dc0 is None else np.array(dc0))
    return np.array(out), np.array(h_n), None if c_n is None else np.array(c_n), grads


# ---- the kernels see the real steps only -------------------------------------------------------------------


@param_cell
def test_kernels_receive_the_real_steps_only(cell, monkeypatch):
    seen = []
    forward, backward = _kernels._recurrent.forward, _kernels._recurrent.backward

    def spy(kernel, name):
        def call(*args, **kw):
            seen.append((name, args[1], args[2], args[3].shape[0]))    # T, batch_sizes, rows of x
            return kernel(*args, **kw)
        return call
    monkeypatch.setattr(_kernels._recurrent, "forward", spy(forward, "forward"))
    monkeypatch.setattr(_kernels._recurrent, "backward", spy(backward, "backward"))
    layer, x, lengths, state, dout, dstate = problem(cell, [4, 9, 2, 9, 1], T=12, bidirectional=True)
    padded_run(layer, cell, x, lengths, state, dout, dstate)
    assert [s[0] for s in seen] == ["forward"] * 2 + ["backward"] * 2
    for _, T, bs, rows in seen:
        assert T == 9 and rows == lengths.sum() == 25                   # not T·B = 60, nor 9·5
        np.testing.assert_array_equal(bs, [5, 4, 3, 3, 2, 2, 2, 2, 2])       # #{lengths > t}


# ---- the layout ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SKEWED)
def test_layout_follows_its_definitions(name):
    lengths = np.array(SKEWED[name])
    lay = Layout.packed(lengths)
    T, B = lengths.max(), len(lengths)
    order = np.argsort(-lengths, kind="stable")
    np.testing.assert_array_equal(lay.sorted_indices, order)
    np.testing.assert_array_equal(lay.unsorted_indices[order], np.arange(B))
    np.testing.assert_array_equal(lay.batch_sizes, [(lengths > t).sum() for t in range(T)])
    assert lay.rows == lengths.sum()
    rows = [(t, order[i]) for t in range(T) for i in range(B) if lengths[order[i]] > t]   # packed order
    np.testing.assert_array_equal(lay.index, [t * B + b for t, b in rows])
    where = {tb: r for r, tb in enumerate(rows)}
    np.testing.assert_array_equal(lay.last, [where[lengths[b] - 1, b] for b in order])
    np.testing.assert_array_equal(lay.reversal, [where[lengths[b] - 1 - t, b] for t, b in rows])
    np.testing.assert_array_equal(lay.lengths(), lengths)
    seq = np.random.default_rng(0).standard_normal((T + 2, B, 3))
    seq[np.arange(T + 2)[:, None] >= lengths[None, :]] = 0
    np.testing.assert_array_equal(lay.to_padded(lay.to_rows(seq), T + 2), seq)



@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_copies_are_numpys_gather_on_every_thread_count(dtype):
    """_kernels.copy_rows(src, index, dst, num_threads): dst[r] = src[index[r]], zeros where index[r] < 0, the
    same on 1, 2 and 3 threads; and Layout's copies, which take the kernels' threads from COPY_TEAM_BYTES up,
    above and below it."""
    rng = np.random.default_rng(4)
    src = rng.standard_normal((3000, 37)).astype(dtype)
    index = rng.integers(-1, 3000, 4001).astype(np.intp)
    want = np.where((index >= 0)[:, None], src[np.maximum(index, 0)], 0)
    for threads in (1, 2, 3):
        dst = np.full((4001, 37), np.nan, dtype)
        _kernels.copy_rows(src, index, dst, threads)
        np.testing.assert_array_equal(dst, want)
    for B, T, F in ((64, 100, 128), (5, 9, 3)):                  # 3.3 MB of rows, and a few hundred bytes
        lengths = rng.integers(1, T + 1, B)
        lay = Layout.packed(lengths)
        seq = rng.standard_normal((T, B, F)).astype(dtype)
        seq[np.arange(T)[:, None] >= lengths[None, :]] = 0
        for threads in (1, 2):
            with rnnfast.thread_limit(threads):
                rows = lay.to_rows(seq)
                np.testing.assert_array_equal(rows, seq.reshape(T * B, F)[lay.index])
                np.testing.assert_array_equal(lay.to_padded(rows, T), seq)

# ---- the packed API against torch and against lengths= ---------------------------------------------------


def test_pack_sequences_and_unpack_equal_torch():
    torch = pytest.importorskip("torch")
    lengths = np.array(SKEWED["ties"])
    x = np.random.default_rng(0).standard_normal((lengths.max() + 1, len(lengths), 3))
    ours = rnnfast.pack_sequences(x, lengths)
    theirs = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths),
                                                     enforce_sorted=False)
    np.testing.assert_array_equal(ours.data, theirs.data.numpy())
    np.testing.assert_array_equal(ours.batch_sizes, theirs.batch_sizes.numpy())
    np.testing.assert_array_equal(ours.sorted_indices, theirs.sorted_indices.numpy())
    np.testing.assert_array_equal(ours.unsorted_indices, theirs.unsorted_indices.numpy())
    padded, lens = rnnfast.unpack(ours, total_length=x.shape[0])
    np.testing.assert_array_equal(lens, lengths)
    np.testing.assert_array_equal(padded, np.where(np.arange(x.shape[0])[:, None, None] < lengths[None, :, None],
                                                   x, 0))
    from_list = rnnfast.pack_sequences([x[:n, b] for b, n in enumerate(lengths)], dtype="float64")
    np.testing.assert_array_equal(from_list.data, ours.data)
    bf, _ = rnnfast.unpack(ours, batch_first=True)
    np.testing.assert_array_equal(bf, np.swapaxes(padded[:lengths.max()], 0, 1))


@pytest.mark.parametrize("L, bidirectional", [(1, False), (2, False), (2, True)], ids=["1-layer", "2-layer", "2-layer-bi"])
@param_dtype
@param_cell
def test_packed_input_equals_lengths_and_torch(cell, dtype, L, bidirectional):
    torch = pytest.importorskip("torch")
    layer, x, lengths, state, dout, dstate = problem(cell, SKEWED["ties"], T=11, L=L, bidirectional=bidirectional,
                                                     dtype=dtype)
    out_p, h_p, c_p, g_p = padded_run(layer, cell, x, lengths, state, dout, dstate)
    packed = rnnfast.pack_sequences(x, lengths)
    dout_packed = rnnfast.pack_sequences(dout, lengths)
    layer.zero_grad()
    out, st = layer(packed, hx(cell, state))
    assert isinstance(out, rnnfast.PackedSequence) and out.data.shape == (lengths.sum(), out_p.shape[-1])
    dx, d0 = layer.backward(dout_packed, hx(cell, dstate))
    assert isinstance(dx, rnnfast.PackedSequence)
    # the packed API and lengths= are one computation: bit for bit
    np.testing.assert_array_equal(rnnfast.unpack(out, total_length=11)[0], out_p)
    np.testing.assert_array_equal(rnnfast.unpack(dx, total_length=11)[0], g_p["x"])
    np.testing.assert_array_equal(st[0] if is_lstm(cell) else st, h_p)
    for n, p in layer.named_parameters():
        np.testing.assert_array_equal(p.grad, g_p[n], err_msg=n)
    # and torch's module on torch's PackedSequence, in float64
    mode = mode_of(cell)
    kind = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(mode, torch.nn.RNN)
    kwargs = {} if mode in ("lstm", "gru") else {"nonlinearity": mode}
    if mode == "sigmoid":
        pytest.skip("torch's RNN has no sigmoid nonlinearity")
    ref = kind(3, 5, num_layers=L, bidirectional=bidirectional, **kwargs).double()
    ref.load_state_dict({k: torch.tensor(v, dtype=torch.float64) for k, v in layer.state_dict().items()})
    xt = torch.tensor(packed.data, dtype=torch.float64, requires_grad=True)
    seq = torch.nn.utils.rnn.PackedSequence(xt, torch.from_numpy(packed.batch_sizes),
                                            torch.from_numpy(packed.sorted_indices),
                                            torch.from_numpy(packed.unsorted_indices))
    h0 = [torch.tensor(s, dtype=torch.float64, requires_grad=True) for s in state if s is not None]
    o, s = ref(seq, tuple(h0) if is_lstm(cell) else h0[0])
    s = s if is_lstm(cell) else (s,)
    loss = (o.data * torch.from_numpy(dout_packed.data.astype(np.float64))).sum()
    loss = loss + sum((si * torch.tensor(di, dtype=torch.float64)).sum() for si, di in zip(s, dstate) if di is not None)
    loss.backward()
    assert_close(out.data, o.data.detach().numpy(), dtype, "out")
    assert_close(h_p, s[0].detach().numpy(), dtype, "h_n")
    if c_p is not None:
        assert_close(c_p, s[1].detach().numpy(), dtype, "c_n")
    assert_close(dx.data, xt.grad.numpy(), dtype, "dx")
    assert_close(g_p["h0"], h0[0].grad.numpy(), dtype, "dh0")
    theirs = dict(ref.named_parameters())
    for n, p in layer.named_parameters():
        assert_close(p.grad, theirs[n].grad.numpy(), dtype, n)


@pytest.mark.parametrize("cell", ["lstm", "gru", "elman-tanh"])
def test_packed_gradients_finite_differences(cell):
    """float64 central differences of L = Σ out·dout + Σ h_n·dh_n through the packed API, bidirectional and
    stacked, for x and a few entries of every parameter."""
    layer, x, lengths, state, dout, dstate = problem(cell, [5, 2, 5, 1], L=2, bidirectional=True, H=3)
    packed = rnnfast.pack_sequences(x, lengths)
    dpacked = rnnfast.pack_sequences(dout, lengths).data

    def loss(data):
        out, st = layer(packed._replace(data=data), hx(cell, state))
        h_n = st[0] if is_lstm(cell) else st
        return float(np.sum(out.data * dpacked) + np.sum(h_n * dstate[0]))
    layer.zero_grad()
    layer(packed, hx(cell, state))
    dx, _ = layer.backward(dpacked, (dstate[0], None) if is_lstm(cell) else dstate[0])
    rng = np.random.default_rng(1)
    for r, f in zip(rng.integers(0, packed.data.shape[0], 6), rng.integers(0, 3, 6)):
        e = np.zeros_like(packed.data)
        e[r, f] = FD_EPS
        fd = (loss(packed.data + e) - loss(packed.data - e)) / (2 * FD_EPS)
        np.testing.assert_allclose(dx.data[r, f], fd, **FD_TOL)
    for name, p in layer.named_parameters():
        grad = p.grad.copy()
        for flat in rng.integers(0, p.data.size, 2):
            i = np.unravel_index(flat, p.data.shape)
            keep = p.data[i]
            p.data[i] = keep + FD_EPS
            up = loss(packed.data)
            p.data[i] = keep - FD_EPS
            down = loss(packed.data)
            p.data[i] = keep
            np.testing.assert_allclose(grad[i], (up - down) / (2 * FD_EPS), err_msg=name, **FD_TOL)


# ---- skewed lengths on 1, 2, 3 threads -------------------------------------------------------------------


@pytest.mark.parametrize("name", SKEWED)
@param_dtype
@pytest.mark.parametrize("cell", ["lstm", "gru", "elman-relu"])
def test_skewed_lengths_threads_agree_and_match_the_reference(cell, dtype, name, restore_threads):
    """The thread blocks are cut by real steps (one thread may hold a single long sequence); every thread
    count gives the reference's result. B = 7·9 sequences, so that the kernels use several threads."""
    lengths = np.tile(SKEWED[name], 9)
    layer, x, lengths, state, dout, dstate = problem(cell, lengths, I=16, H=32, dtype=dtype, seed=3)
    results = []
    for n in (1, 2, 3):
        rnnfast.set_num_threads(n)
        results.append(padded_run(layer, cell, x, lengths, state, dout, dstate))
    p = Problem(cell, x.shape[0], x.shape[1], 16, 32, 1, False, np.dtype(dtype), np.nan_to_num(x), state[0],
                state[1], lengths, dout, dstate[0], dstate[1])
    ref = run_reference(p, {k: np.asarray(v, np.float64) for k, v in layer.state_dict().items()})
    for out, h_n, c_n, grads in results:
        assert_close(out, ref.out, dtype, "out")
        assert_close(h_n, ref.h_n, dtype, "h_n")
        for k, v in ref.grads.items():
            assert_close(grads[k], v, dtype, k)


# ---- step -------------------------------------------------------------------------------------------------


@param_dtype
@param_cell
def test_step_each_sequence_alone_ends_at_the_packed_h_n(cell, dtype):
    layer, x, lengths, state, _, _ = problem(cell, SKEWED["one long"][:4], L=2, dtype=dtype)
    _, st = layer(rnnfast.pack_sequences(x, lengths), hx(cell, state))
    h_n = st[0] if is_lstm(cell) else st
    for b, n in enumerate(lengths):
        s = hx(cell, tuple(None if a is None else np.ascontiguousarray(a[:, b:b + 1]) for a in state))
        for t in range(n):
            _, s = layer.step(x[t, b:b + 1], s)
        assert_close(s[0] if is_lstm(cell) else s, h_n[:, b:b + 1], dtype, f"sequence {b}")


# ---- errors -----------------------------------------------------------------------------------------------


def test_kernel_rejects_bad_batch_sizes():
    x, w = np.zeros((6, 2)), np.zeros((3, 3))
    h0 = np.zeros((3, 3))
    args = lambda T, bs: (rnnfast._cells.CELLS["elman-tanh"].code, T, bs, x, np.zeros((3, 2)), w, None, None,  # noqa
                          h0, None, None, None, None, None, np.zeros((6, 3)), None, None, 1, 1 << 20, 64)
    for T, bs in [(3, [3, 1, 2]), (2, [2, 4]), (2, [3, 2]), (3, [3, 3, 0]), (2, [3])]:
        with pytest.raises(ValueError, match="batch_sizes|rows"):
            _kernels._recurrent.forward(*args(T, np.array(bs, np.intc)))


def test_kernels_reject_bad_padded_arrays():
    """The packed kernels' padded input and output (the gather and scatter they do for lengths=) are checked
    against the layout before any pointer is read."""
    lay = Layout.packed(np.array([3, 1, 2]))                         # rows = 6, B = 3, T = 3
    code = rnnfast._cells.CELLS["elman-tanh"].code
    x, w_ih, w_hh, h0 = np.zeros((6, 2)), np.zeros((3, 2)), np.zeros((3, 3)), np.zeros((3, 3))

    def forward(**kw):
        _kernels._recurrent.forward(code, 3, lay.batch_sizes, x, w_ih, w_hh, None, None, h0, None, None, None,
                                    None, None, np.zeros((6, 3)), None, None, 1, 1 << 20, 64, **kw)
    forward(x_padded=np.zeros((9, 2)), index=lay.index, order=lay.sorted_indices, out_padded=np.zeros((12, 3)))
    with pytest.raises(ValueError, match="x_padded needs index"):
        forward(x_padded=np.zeros((9, 2)))
    with pytest.raises(ValueError, match="x_padded must be"):
        forward(x_padded=np.zeros((9, 3)), index=lay.index)
    with pytest.raises(ValueError, match="x_padded must be"):
        forward(x_padded=np.zeros((8, 2)), index=lay.index)
    with pytest.raises(ValueError, match="outside x_padded"):
        forward(x_padded=np.zeros((6, 2)), index=lay.index)          # index reaches row 6..8
    with pytest.raises(ValueError, match="out_padded needs order"):
        forward(out_padded=np.zeros((9, 3)), index=lay.index)
    with pytest.raises(ValueError, match="order.2. = 3 is not a sequence"):
        forward(out_padded=np.zeros((9, 3)), index=lay.index, order=np.array([0, 1, 3]))
    with pytest.raises(ValueError, match="packed layout"):
        _kernels._recurrent.forward(code, 2, None, x, w_ih, w_hh, None, None, h0, None, None, None, None, None,
                                    np.zeros((6, 3)), None, None, 1, 1 << 20, 64, x_padded=np.zeros((6, 2)),
                                    index=np.arange(6))


def test_bad_packed_sequences():
    layer = rnnfast.GRU(2, 3)
    good = rnnfast.pack_sequences(np.zeros((4, 3, 2)), [4, 2, 1])
    with pytest.raises(ValueError, match="batch_sizes"):
        layer(good._replace(batch_sizes=np.array([1, 3, 1, 1])))
    with pytest.raises(ValueError, match="sorted_indices"):
        layer(good._replace(sorted_indices=np.array([0, 0, 1])))
    with pytest.raises(ValueError, match="x.data"):
        layer(good._replace(data=np.zeros((6, 2))))
    with pytest.raises(ValueError, match="x.data"):
        layer(good._replace(data=np.zeros((7, 5))))
    layer(good)
    with pytest.raises(ValueError, match="dout"):
        layer.backward(np.zeros((7, 4)))
    with pytest.raises(TypeError, match="packed"):
        rnnfast.unpack(np.zeros((3, 2)))
    with pytest.raises(TypeError, match="total_length must be an integer"):
        rnnfast.unpack(good, total_length=7.9)
    with pytest.raises(ValueError, match="lengths"):
        rnnfast.pack_sequences(np.zeros((4, 3, 2)), [5, 2, 1])
    with pytest.raises(ValueError, match="lengths must be None with a PackedSequence"):
        layer(good, lengths=[4, 2, 1])
    shuffled = rnnfast.pack_sequences(np.zeros((4, 3, 2)), [1, 4, 2])
    layer(shuffled)
    with pytest.raises(ValueError, match="unsorted_indices must be None or the inverse"):
        layer(shuffled._replace(unsorted_indices=shuffled.sorted_indices))     # checked on every call
    layer(shuffled._replace(unsorted_indices=None))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_batch_in_sorted_order_needs_no_indices_as_torchs(cell):
    """torch's pack_padded_sequence(enforce_sorted=True) leaves sorted_indices and unsorted_indices None."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, 2))
    layer = make_layer(cell, 2, 3, dtype="float64", seed=0)
    packed = rnnfast.pack_sequences(x, [5, 3, 2])
    assert packed.sorted_indices.tolist() == [0, 1, 2]
    want = layer(packed)[0].data.copy()
    got = layer(packed._replace(sorted_indices=None, unsorted_indices=None))[0].data
    np.testing.assert_array_equal(got, want)
    torch = pytest.importorskip("torch")
    tpacked = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), [5, 3, 2], enforce_sorted=True)
    assert tpacked.sorted_indices is None
    ours = rnnfast.PackedSequence(*(None if a is None else a.numpy() for a in tpacked))
    np.testing.assert_array_equal(layer(ours)[0].data, want)
