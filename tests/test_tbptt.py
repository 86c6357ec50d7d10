"""Truncated BPTT: chunking, detached states, gradients against full BPTT (k >= T) and against chunk-by-chunk
BPTT written by hand on tests/reference.py (k < T), updates, clipping, and O(k) memory on a 10⁶-step stream;
ragged batches (lengths) against full BPTT with lengths (k >= T) and against each sequence truncated alone
(k < T)."""
from __future__ import annotations

import functools
import tracemalloc

import numpy as np
import pytest

import reference
import rnnfast
from conftest import is_lstm, make_layer, mode_of
from rnnfast.losses import mse_loss
from rnnfast.optim import SGD
from rnnfast.tbptt import TruncatedBPTT, chunk_bounds, detach_state, iter_chunks

sum_mse = functools.partial(mse_loss, reduction="sum")
CELLS = ("elman-tanh", "lstm")


@pytest.fixture(autouse=True)
def one_thread(restore_threads):
    """Many tiny chunks (B <= 3): one OpenMP thread avoids a thread hand-off per call, which dominates
    (10-100x) on a busy 2-core machine. Thread agreement is tested in test_layers.py."""
    rnnfast.set_num_threads(1)


def problem(cell, T=11, B=3, I=2, H=4, O=2, L=2, seed=0):
    rng = np.random.default_rng(seed)
    layer = make_layer(cell, I, H, num_layers=L, dtype="float64", seed=seed)
    head = rnnfast.Linear(H, O, dtype="float64", seed=seed + 1)
    x = rng.standard_normal((T, B, I))
    y = rng.standard_normal((T, B, O))
    return layer, head, x, y


def grads_of(*modules):
    return {f"{i}.{n}": p.grad.copy() for i, m in enumerate(modules) for n, p in m.named_parameters()}


def weights_of(module):
    return {n: p.data.astype(np.float64) for n, p in module.named_parameters()}


def reference_chunk(cell, weights, W, b, x, y, h0, c0):
    """One chunk by hand: reference forward, Linear head, ½‖pred − y‖² summed, reference BPTT with dh_n = 0."""
    out, h_n, c_n, cache = reference.forward(mode_of(cell), x, weights, h0, c0)
    pred = out @ W.T + b                                           # (k, B, O)
    d = pred - y
    grads = reference.backward(cache, d @ W)                       # dh_n, dc_n default to 0: the cut
    grads["head.weight"] = d.reshape(-1, W.shape[0]).T @ out.reshape(-1, out.shape[-1])
    grads["head.bias"] = d.sum(axis=(0, 1))
    return 0.5 * float(np.sum(d * d)), grads, h_n, c_n


# ---- helpers ---------------------------------------------------------------------------------------------
def test_chunk_bounds():
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_bounds(8, 4) == [(0, 4), (4, 8)]
    assert chunk_bounds(3, 20) == [(0, 3)]
    assert chunk_bounds(0, 5) == []
    for T, k in [(1, 1), (17, 3), (100, 20), (5, 7)]:
        bounds = chunk_bounds(T, k)
        assert [s for s, _ in bounds] == list(range(0, T, k))
        assert all(e - s == k for s, e in bounds[:-1]) and 1 <= bounds[-1][1] - bounds[-1][0] <= k
        assert bounds[-1][1] == T and all(e == s2 for (_, e), (s2, _) in zip(bounds, bounds[1:]))
    with pytest.raises(ValueError, match="k must be >= 1"):
        chunk_bounds(10, 0)
    with pytest.raises(TypeError, match="k"):
        chunk_bounds(10, 2.0)
    with pytest.raises(ValueError, match="T"):
        chunk_bounds(-1, 2)


def test_iter_chunks_are_views_on_the_time_axis():
    x, y = np.arange(24.0).reshape(2, 6, 2), np.arange(12).reshape(2, 6)
    chunks = list(iter_chunks(x, y, 4, time_axis=1))
    assert [c[0].shape for c in chunks] == [(2, 4, 2), (2, 2, 2)]
    np.testing.assert_array_equal(chunks[1][1], y[:, 4:])
    assert np.shares_memory(chunks[0][0], x)
    with pytest.raises(ValueError, match="targets"):
        list(iter_chunks(x, y[:, :5], 4, time_axis=1))


def test_detach_state_copies():
    h, c = np.ones((1, 2, 3)), np.zeros((1, 2, 3))
    dh = detach_state(h)
    dt = detach_state((h, c))
    h[...] = 5
    assert np.all(dh == 1) and np.all(dt[0] == 1) and isinstance(dt, tuple) and len(dt) == 2
    assert not np.shares_memory(dt[1], c)
    assert detach_state(None) is None
    with pytest.raises(TypeError, match="state"):
        detach_state(np.array(["a"]))


# ---- gradients -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_one_chunk_equals_full_bptt(cell):
    layer, head, x, y = problem(cell, seed=1)
    twin = make_layer(cell, 2, 4, num_layers=2, dtype="float64", seed=1)          # problem()'s layer and head
    twin_head = rnnfast.Linear(4, 2, dtype="float64", seed=2)
    T = x.shape[0]
    for k in (T, T + 5):
        layer.zero_grad(), head.zero_grad()
        res = TruncatedBPTT(layer, mse_loss, k=k, head=head).run(x, y)
        assert res.losses.shape == (1,) and res.steps == T
        # full BPTT over the whole sequence, on an identical layer
        twin.zero_grad(), twin_head.zero_grad()
        out, state = twin(x)
        value, dpred = mse_loss(twin_head(out), y)
        twin.backward(twin_head.backward(dpred))
        assert res.losses[0] == pytest.approx(value, rel=1e-12)
        full, got = grads_of(twin, twin_head), grads_of(layer, head)
        for name in full:
            np.testing.assert_allclose(got[name], full[name], rtol=1e-10, atol=1e-12, err_msg=name)
        h_n = state[0] if is_lstm(cell) else state
        np.testing.assert_allclose(res.state[0] if is_lstm(cell) else res.state, h_n, rtol=1e-12)


@pytest.mark.parametrize("k", [1, 4, 5])
@pytest.mark.parametrize("cell", CELLS)
def test_chunks_equal_reference_bptt_with_detached_states(cell, k):
    layer, head, x, y = problem(cell, T=11, seed=2)
    hx_rng = np.random.default_rng(9)
    h0 = hx_rng.uniform(-0.5, 0.5, (2, 3, 4))
    c0 = hx_rng.uniform(-0.5, 0.5, (2, 3, 4)) if is_lstm(cell) else None
    weights, W, b = weights_of(layer), head.weight.data.copy(), head.bias.data.copy()
    res = TruncatedBPTT(layer, sum_mse, k=k, head=head).run(x, y, (h0, c0) if is_lstm(cell) else h0)

    total, losses, h, c = None, [], h0, c0
    for s in range(0, x.shape[0], k):                               # independent chunking and carrying
        value, g, h, c = reference_chunk(cell, weights, W, b, x[s:s + k], y[s:s + k], h, c)
        losses.append(value)
        g = {n: v for n, v in g.items() if n not in ("x", "h0", "c0")}    # parameters only
        total = g if total is None else {n: total[n] + g[n] for n in total}
    np.testing.assert_allclose(res.losses, losses, rtol=1e-11)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, total[name], rtol=1e-9, atol=1e-11, err_msg=name)
    np.testing.assert_allclose(head.weight.grad, total["head.weight"], rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(head.bias.grad, total["head.bias"], rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(res.state[0] if is_lstm(cell) else res.state, h, rtol=1e-11)
    if is_lstm(cell):
        np.testing.assert_allclose(res.state[1], c, rtol=1e-11)

    # ... and the truncation really cuts: full BPTT of the same summed loss differs
    full, g_full, _, _ = reference_chunk(cell, weights, W, b, x, y, h0, c0)
    assert full == pytest.approx(sum(losses), rel=1e-11)            # same forward, same loss
    assert not np.allclose(layer.weight_hh_l0.grad, g_full["weight_hh_l0"], rtol=1e-3)


def test_without_optimizer_gradients_add_to_existing_grads():
    layer, head, x, y = problem("lstm", seed=3)
    trainer = TruncatedBPTT(layer, sum_mse, k=4, head=head)
    trainer.run(x, y)
    once = grads_of(layer, head)
    trainer.run(x, y)                                              # same weights: the same sum again
    for name, g in grads_of(layer, head).items():
        np.testing.assert_allclose(g, 2 * once[name], rtol=1e-12, err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
def test_sgd_updates_once_per_chunk(cell):
    layer, head, x, y = problem(cell, T=9, seed=4)
    lr, k = 0.05, 4
    weights, W, b = weights_of(layer), head.weight.data.copy(), head.bias.data.copy()
    opt = SGD(layer.parameters() + head.parameters(), lr=lr)
    res = TruncatedBPTT(layer, sum_mse, k=k, head=head, optimizer=opt).run(x, y)

    h = c = None
    losses = []
    for s in range(0, 9, k):                                        # reference: forward, BPTT, then update
        value, g, h, c = reference_chunk(cell, weights, W, b, x[s:s + k], y[s:s + k], h, c)
        losses.append(value)
        weights = {n: w - lr * g[n] for n, w in weights.items()}
        W, b = W - lr * g["head.weight"], b - lr * g["head.bias"]
    np.testing.assert_allclose(res.losses, losses, rtol=1e-10)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.data, weights[name], rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(head.weight.data, W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(head.bias.data, b, rtol=1e-10, atol=1e-12)


def test_clipping_bounds_each_update():
    updates = {}
    for max_norm in (None, 0.01):
        layer, head, x, y = problem("lstm", T=12, seed=5)
        trainer = TruncatedBPTT(layer, sum_mse, k=4, head=head, max_norm=max_norm,
                                optimizer=SGD(layer.parameters() + head.parameters(), lr=1.0))
        steps = []
        for xc, yc in iter_chunks(x, y, 4):
            before = np.concatenate([p.data.ravel() for p in trainer.parameters()])
            trainer.step(xc, yc)
            steps.append(np.linalg.norm(np.concatenate([p.data.ravel() for p in trainer.parameters()]) - before))
        updates[max_norm] = np.array(steps)
    assert np.all(updates[0.01] <= 0.01 * (1 + 1e-6)) and np.all(updates[0.01] > 0.005)
    assert np.all(updates[None] > 0.1)                              # so the clip did something


def test_batch_first_layer_equals_time_major():
    tm, head, x, y = problem("lstm", seed=6)
    bf = make_layer("lstm", 2, 4, num_layers=2, dtype="float64", seed=6, batch_first=True)
    head_bf = rnnfast.Linear(4, 2, dtype="float64", seed=7)
    a = TruncatedBPTT(tm, sum_mse, k=3, head=head).run(x, y)
    b = TruncatedBPTT(bf, sum_mse, k=3, head=head_bf).run(x.swapaxes(0, 1), y.swapaxes(0, 1))
    np.testing.assert_allclose(b.losses, a.losses, rtol=1e-12)
    for (n, p), q in zip(tm.named_parameters(), bf.parameters()):
        np.testing.assert_allclose(q.grad, p.grad, rtol=1e-10, atol=1e-12, err_msg=n)


def test_stream_of_a_million_steps_in_bounded_memory():
    """A generator yields 10⁶ steps (B=1, I=2) in chunks of 1000; peak traced memory stays far below what
    even the stream's input alone would take (16 MB), let alone full-BPTT buffers (≥ 64 MB)."""
    N, K = 10**6, 1000

    def stream():
        rng = np.random.default_rng(0)
        for _ in range(N // K):
            x = rng.standard_normal((K, 1, 2))
            yield x, np.cumsum(x[:, :, :1], axis=0) * 0.1          # a target that needs memory of the past

    layer = rnnfast.LSTM(2, 8, dtype="float64", seed=0)
    head = rnnfast.Linear(8, 1, dtype="float64", seed=0)
    trainer = TruncatedBPTT(layer, mse_loss, head=head, max_norm=1.0,
                            optimizer=SGD(layer.parameters() + head.parameters(), lr=0.01))
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        res = trainer.run_chunks(stream())
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert res.steps == N and res.losses.shape == (N // K,) and np.all(np.isfinite(res.losses))
    assert peak < 2e6, f"peak traced memory grew by {peak / 1e6:.1f} MB over a 10⁶-step stream"


# ---- ragged batches (lengths) ------------------------------------------------------------------------------
RAGGED = np.array([11, 3, 6])                                       # B = 3, T = 11


def ragged(x, y, lengths):
    """x, y with NaN past each length (the padding must reach neither the layer nor the loss), and the
    (T, B) mask of real steps."""
    real = np.arange(x.shape[0])[:, None] < lengths[None, :]
    x, y = x.copy(), y.copy()
    x[~real], y[~real] = np.nan, np.nan
    return x, y, real


def initial_state(cell, B=3, seed=9):
    rng = np.random.default_rng(seed)
    h0 = rng.uniform(-0.5, 0.5, (2, B, 4))
    return (h0, rng.uniform(-0.5, 0.5, (2, B, 4))) if is_lstm(cell) else h0


@pytest.mark.parametrize("cell", CELLS)
def test_ragged_one_chunk_equals_full_bptt_with_lengths(cell):
    layer, head, x, y = problem(cell, seed=11)
    x, y, real = ragged(x, y, RAGGED)
    twin = make_layer(cell, 2, 4, num_layers=2, dtype="float64", seed=11)
    twin_head = rnnfast.Linear(4, 2, dtype="float64", seed=12)
    state = initial_state(cell)
    for k in (11, 16):
        layer.zero_grad(), head.zero_grad()
        res = TruncatedBPTT(layer, mse_loss, k=k, head=head).run(x, y, state, lengths=RAGGED)
        assert res.losses.shape == (1,) and res.steps == 11
        # full BPTT with lengths, the loss a mean over the real steps only
        twin.zero_grad(), twin_head.zero_grad()
        out, h_n = twin(x, state, lengths=RAGGED)
        pred = twin_head(out)
        value, d_real = mse_loss(pred[real], y[real])
        dpred = np.zeros_like(pred)
        dpred[real] = d_real
        twin.backward(twin_head.backward(dpred))
        assert np.isfinite(value) and res.losses[0] == pytest.approx(value, rel=1e-12)
        full, got = grads_of(twin, twin_head), grads_of(layer, head)
        for name in full:
            assert np.all(np.isfinite(got[name])), name
            np.testing.assert_allclose(got[name], full[name], rtol=1e-10, atol=1e-12, err_msg=name)
        for a, b in zip(res.state if is_lstm(cell) else (res.state,), h_n if is_lstm(cell) else (h_n,)):
            np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("k", [1, 4, 5])
@pytest.mark.parametrize("cell", CELLS)
def test_ragged_chunks_equal_each_sequence_truncated_alone(cell, k):
    """k < T: each chunk runs the sequences still running from the states they carry, and a summed loss over
    the real steps splits into the sequences' own; so the pass's losses, gradients and final states are
    those of each sequence cut into the same chunks alone (B = 1, no lengths: the padded path), summed."""
    layer, head, x, y = problem(cell, T=11, seed=13)
    x, y, _ = ragged(x, y, RAGGED)
    state = initial_state(cell)
    layer.zero_grad(), head.zero_grad()
    res = TruncatedBPTT(layer, sum_mse, k=k, head=head).run(x, y, state, lengths=RAGGED)
    got = grads_of(layer, head)
    losses, total = np.zeros_like(res.losses), None
    for b, n in enumerate(RAGGED):
        layer.zero_grad(), head.zero_grad()
        alone = TruncatedBPTT(layer, sum_mse, k=k, head=head).run(
            x[:n, b:b + 1], y[:n, b:b + 1], tuple(s[:, b:b + 1] for s in state) if is_lstm(cell) else state[:, b:b + 1])
        losses[:len(alone.losses)] += alone.losses                  # chunk j of sequence b is chunk j of the batch
        g = grads_of(layer, head)
        total = g if total is None else {name: total[name] + g[name] for name in total}
        mine = res.state if is_lstm(cell) else (res.state,)         # sequence b's state: kept since it ended
        for a, s_alone in zip(mine, alone.state if is_lstm(cell) else (alone.state,)):
            np.testing.assert_allclose(a[:, b:b + 1], s_alone, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.losses, losses, rtol=1e-11)
    for name in total:
        np.testing.assert_allclose(got[name], total[name], rtol=1e-9, atol=1e-11, err_msg=name)


def test_ragged_batch_first_equals_time_major_and_ended_sequences_keep_their_state():
    tm, head, x, y = problem("gru", seed=14)
    bf = make_layer("gru", 2, 4, num_layers=2, dtype="float64", seed=14, batch_first=True)
    head_bf = rnnfast.Linear(4, 2, dtype="float64", seed=15)
    x, y, _ = ragged(x, y, RAGGED)
    a = TruncatedBPTT(tm, sum_mse, k=4, head=head).run(x, y, lengths=RAGGED)
    b = TruncatedBPTT(bf, sum_mse, k=4, head=head_bf).run(x.swapaxes(0, 1), y.swapaxes(0, 1), lengths=RAGGED)
    np.testing.assert_allclose(b.losses, a.losses, rtol=1e-12)
    np.testing.assert_allclose(b.state, a.state, rtol=1e-12)
    for (n, p), q in zip(tm.named_parameters(), bf.parameters()):
        np.testing.assert_allclose(q.grad, p.grad, rtol=1e-10, atol=1e-12, err_msg=n)
    # one chunk by hand: sequence 1 has ended (0 real steps) and keeps its state bit for bit
    trainer = TruncatedBPTT(tm, sum_mse, k=4, head=head)
    h = initial_state("gru")
    value, after = trainer.step(x[:4], y[:4], h, lengths=[4, 0, 2])
    np.testing.assert_array_equal(after[:, 1], h[:, 1])
    assert np.isfinite(value) and not np.allclose(after[:, [0, 2]], h[:, [0, 2]])
    assert trainer.step(x[:4], y[:4], h, lengths=[0, 0, 0]) == (0.0, pytest.approx(h))   # nothing runs


def test_ragged_errors():
    layer, head, x, y = problem("lstm")
    trainer = TruncatedBPTT(layer, mse_loss, k=4, head=head)
    with pytest.raises(ValueError, match="lengths must have shape"):
        trainer.run(x, y, lengths=[5, 6])
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T\]"):
        trainer.run(x, y, lengths=[5, 12, 3])
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T\]"):
        trainer.run(x, y, lengths=[5, 0, 3])
    with pytest.raises(TypeError, match="lengths must be an integer array"):
        trainer.run(x, y, lengths=[5.5, 2, 3])
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T\] = \[0, 4\]"):
        trainer.step(x[:4], y[:4], lengths=[5, 1, 1])
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T\]"):
        trainer.run_chunks([(x[:4], y[:4], [4, 4, -1])])
    with pytest.raises(ValueError, match="target_chunk must have"):
        trainer.step(x[:4], y[:4, :2], lengths=[4, 1, 1])
    with pytest.raises(TypeError, match="triples"):
        trainer.run_chunks([(x, y, RAGGED, None)])


def test_errors():
    layer, head, x, y = problem("elman-tanh")
    with pytest.raises(ValueError, match="k must be >= 1"):
        TruncatedBPTT(layer, mse_loss, k=0)
    with pytest.raises(TypeError, match="loss must be a callable"):
        TruncatedBPTT(layer, "mse")
    with pytest.raises(TypeError, match="layer"):
        TruncatedBPTT(object(), mse_loss)
    with pytest.raises(TypeError, match="optimizer"):
        TruncatedBPTT(layer, mse_loss, optimizer=object())
    with pytest.raises(ValueError, match="max_norm"):
        TruncatedBPTT(layer, mse_loss, max_norm=0.0)
    with pytest.raises(ValueError, match="targets"):
        TruncatedBPTT(layer, mse_loss, head=head).run(x, y[:-1])
    with pytest.raises(TypeError, match="loss must return a tuple"):
        TruncatedBPTT(layer, lambda p, t: 0.0, head=head).run(x, y)
    with pytest.raises(ValueError, match="loss returned a grad of shape"):
        TruncatedBPTT(layer, lambda p, t: (0.0, np.zeros(3)), head=head).run(x, y)
    with pytest.raises(TypeError, match="pairs"):
        TruncatedBPTT(layer, mse_loss, head=head).run_chunks([x])
    with pytest.raises(ValueError, match="no timesteps"):
        TruncatedBPTT(layer, mse_loss, head=head).step(x[:0], y[:0])


def test_lengths_with_a_layer_that_takes_none_name_the_layer():
    jordan = rnnfast.Jordan(2, 3, 1, seed=0)
    tbptt = rnnfast.TruncatedBPTT(jordan, rnnfast.mse_loss, k=2)
    x, y = np.zeros((5, 2, 2)), np.zeros((5, 2, 1))
    with pytest.raises(TypeError, match="lengths: Jordan takes no lengths"):
        tbptt.run(x, y, lengths=[5, 3])
    assert len(tbptt.run(x, y).losses) == 3                      # equal lengths: as before


def test_a_sequential_as_layer_is_refused_since_its_chunks_would_run_its_first_module_alone():
    model = rnnfast.Sequential(rnnfast.LSTM(3, 4, seed=0), rnnfast.Readout("sequence"), rnnfast.Linear(4, 4))
    with pytest.raises(TypeError, match="one recurrent layer.*got a Sequential"):
        TruncatedBPTT(model, mse_loss, k=3, optimizer=SGD(model.parameters(), lr=0.5))


def test_a_chunk_that_fails_without_an_optimizer_leaves_the_accumulated_gradient():
    layer = rnnfast.LSTM(3, 4, seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 2, 3)), rng.standard_normal((6, 2, 4))
    tb = TruncatedBPTT(layer, mse_loss, k=3)
    tb.run(x, y)
    before = [p.grad.copy() for p in layer.parameters()]
    assert any(np.abs(g).sum() > 0 for g in before)
    with pytest.raises(ValueError, match="shape"):
        tb.step(x[:3], y[:3, :, :2])                                  # a target of the wrong shape
    for p, g in zip(layer.parameters(), before):
        np.testing.assert_array_equal(p.grad, g)


def test_a_bidirectional_layer_is_refused_since_a_chunk_does_not_reach_the_sequences_end():
    with pytest.raises(ValueError, match="unidirectional"):
        TruncatedBPTT(rnnfast.LSTM(3, 4, bidirectional=True, seed=0), mse_loss, k=3)
