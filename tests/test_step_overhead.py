"""Buffers kept across training steps (issue 17's per-step fixed cost) never reach the user: the zeros used for
an initial state that is not given are shared by every call, and must stay zeros and stay out of every array
the user holds. Each check compares a call that uses them with the same call given explicit zeros."""
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import rnnfast
from rnnfast import _buffers

LAYERS = [rnnfast.LSTM, rnnfast.GRU, rnnfast.Elman]


def _layer(cls, **kw):
    return cls(3, 5, num_layers=2, seed=0, dtype="float64", **kw)


def _rng_x(seed, T=4, B=3):
    return np.random.default_rng(seed).standard_normal((T, B, 3))


def _zeros_like_state(layer, B):
    h = np.zeros((layer.num_layers, B, layer.hidden_size))
    return (h, h.copy()) if isinstance(layer, rnnfast.LSTM) else h


def _flat(state):
    return list(state) if isinstance(state, tuple) else [state]


def _assert_same_backward(a, b, d0_a, d0_b):
    """The two layers' backward results agree bit for bit: dh0 (and dc0), and every parameter's gradient."""
    for s_a, s_b in zip(_flat(d0_a), _flat(d0_b)):
        np.testing.assert_array_equal(s_a, s_b)
    for (name, p_a), (_, p_b) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p_a.grad, p_b.grad, err_msg=name)


@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("lengths", [None, [4, 2, 3]])
def test_default_state_matches_explicit_zeros_over_steps(cls, lengths):
    """Forward + backward three times with the state left out equals the same with explicit zeros, bit for bit
    (the kept zeros are not written by one step and read by the next)."""
    a, b = _layer(cls), _layer(cls)
    for step in range(3):
        x = _rng_x(step)
        g = np.random.default_rng(10 + step).standard_normal((4, 3, 5))
        out_a, st_a = a.forward(x, lengths=lengths)
        out_b, st_b = b.forward(x, _zeros_like_state(b, 3), lengths=lengths)
        np.testing.assert_array_equal(out_a, out_b)
        for s_a, s_b in zip(_flat(st_a), _flat(st_b)):
            np.testing.assert_array_equal(s_a, s_b)
        dx_a, d0_a = a.backward(g)
        dx_b, d0_b = b.backward(g, _zeros_like_state(b, 3))
        np.testing.assert_array_equal(dx_a, dx_b)
        _assert_same_backward(a, b, d0_a, d0_b)


@pytest.mark.parametrize("cls", LAYERS)
def test_outputs_of_consecutive_calls_stay_distinct(cls):
    """What two consecutive forwards/backwards return shares no memory with each other nor with the kept zeros,
    and the first call's arrays keep their values after the second."""
    layer = _layer(cls)
    out1, st1 = layer.forward(_rng_x(1))
    held = [out1.copy()] + [s.copy() for s in _flat(st1)]
    dx1, d01 = layer.backward(np.ones((4, 3, 5)))
    held_d = [dx1.copy()] + [s.copy() for s in _flat(d01)]
    out2, st2 = layer.forward(_rng_x(2))
    dx2, d02 = layer.backward(np.full((4, 3, 5), 2.0))
    first = [out1] + _flat(st1) + [dx1] + _flat(d01)
    second = [out2] + _flat(st2) + [dx2] + _flat(d02)
    kept = [v for k, v in layer._workspace.items() if isinstance(k, tuple) and k[0] == "zeros"]
    assert kept, "the layer keeps no zero state: the test would check nothing"
    for arr in first:
        for other in second + kept:
            assert not np.shares_memory(arr, other)
    for before, now in zip(held + held_d, [out1] + _flat(st1) + [dx1] + _flat(d01)):
        np.testing.assert_array_equal(before, now)
    for z in kept:
        assert not z.flags.writeable and not z.any()


@pytest.mark.parametrize("cls", LAYERS)
def test_streaming_step_default_state(cls):
    """step() with no state twice gives the same as with explicit zeros and returns fresh arrays."""
    layer = _layer(cls)
    x_t = _rng_x(3)[0]
    y1, s1 = layer.step(x_t)
    y2, s2 = layer.step(x_t)
    y3, _ = layer.step(x_t, _zeros_like_state(layer, 3))
    np.testing.assert_array_equal(y1, y3)
    np.testing.assert_array_equal(y1, y2)
    assert not np.shares_memory(y1, y2)
    for a, b in zip(_flat(s1), _flat(s2)):
        assert not np.shares_memory(a, b)


@pytest.mark.parametrize("cls", LAYERS)
def test_default_state_follows_the_batch_size_up_and_down(cls):
    """Batch sizes 3, 5, 2, 5 (a larger one grows the kept memory, a smaller one takes a view of it): each
    forward without a state equals the one given explicit zeros, and the kept zeros stay zero and read-only."""
    a, b = _layer(cls), _layer(cls)
    for step, B in enumerate((3, 5, 2, 5)):
        x = _rng_x(step, B=B)
        out_a, st_a = a.forward(x)
        out_b, st_b = b.forward(x, _zeros_like_state(b, B))
        np.testing.assert_array_equal(out_a, out_b)
        for s_a, s_b in zip(_flat(st_a), _flat(st_b)):
            np.testing.assert_array_equal(s_a, s_b)
    kept = [v for k, v in a._workspace.items() if isinstance(k, tuple) and k[0] == "zeros"]
    assert kept and all(not z.flags.writeable and not z.any() for z in kept)


# Outputs the user has let go of (rnnfast._buffers.Workspace.returned): the next call may write its output into
# their memory, and must never write into memory the user still holds, through any view.
recycling = pytest.mark.skipif(_buffers._UNREFERENCED is None, reason="reference counts do not allow it here")


def _owner(a):
    """A weak reference to the array that owns a's memory (the memory is recycled while it stays alive)."""
    return weakref.ref(a if a.base is None else a.base)


def _same_owner(a, ref):
    return ref() is not None and (a if a.base is None else a.base) is ref()


@recycling
@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("lengths", [None, [4, 2, 3]])
def test_dropped_outputs_are_recycled_and_held_ones_never(cls, bidirectional, lengths):
    """A loop that keeps only its last step's arrays gets the memory of the step before back: out and dx of
    step k + 2 reuse step k's once the loop dropped them, while step k + 1's, still held (a view of out's last
    step, dx whole), keep their values. Every step's results equal a fresh layer's, bit for bit."""
    layer = _layer(cls, bidirectional=bidirectional)
    reference = _layer(cls, bidirectional=bidirectional)
    g = np.random.default_rng(7).standard_normal((4, 3, 5 * (2 if bidirectional else 1)))
    owners = []
    held = None
    for step in range(4):
        x = _rng_x(step)
        out, _ = layer.forward(x, lengths=lengths)
        dx, _ = layer.backward(g)
        ref_out, _ = reference.forward(x, lengths=lengths)
        ref_dx, _ = reference.backward(g)
        np.testing.assert_array_equal(out, ref_out)
        np.testing.assert_array_equal(dx, ref_dx)
        if held is not None:                         # the previous step's arrays, held through a view and whole
            np.testing.assert_array_equal(held[0], held[1])
            np.testing.assert_array_equal(held[2], held[3])
            assert not np.shares_memory(held[0], out) and not np.shares_memory(held[2], dx)
        if step >= 2:                                # step - 2's arrays were dropped: their memory is back
            assert _same_owner(out, owners[step - 2][0]) and _same_owner(dx, owners[step - 2][1])
        owners.append((_owner(out), _owner(dx)))
        held = (out[-1], out[-1].copy(), dx, dx.copy())
        del out, dx, ref_out, ref_dx


@recycling
def test_outputs_kept_in_a_list_are_never_overwritten():
    """A user who keeps every step's output (a list) gets fresh memory each time, none of it overwritten."""
    layer = _layer(rnnfast.LSTM)
    kept, copies = [], []
    for step in range(5):
        out, _ = layer.forward(_rng_x(step))
        layer.backward(np.ones((4, 3, 5)))
        kept.append(out)
        copies.append(out.copy())
    for out, copy in zip(kept, copies):
        np.testing.assert_array_equal(out, copy)
    assert not any(np.shares_memory(a, b) for i, a in enumerate(kept) for b in kept[:i])


@recycling
def test_linear_and_cross_entropy_recycle_only_what_was_dropped():
    """Linear's y and dx and cross_entropy's gradient: a dropped one's memory comes back two calls later, one
    still held keeps its values, and every result equals a fresh module's."""
    head, reference = rnnfast.Linear(5, 4, seed=0), rnnfast.Linear(5, 4, seed=0)
    rng = np.random.default_rng(3)
    owners, held = [], None
    for step in range(4):
        x = rng.standard_normal((6, 2, 5)).astype(np.float32)
        labels = rng.integers(0, 4, (6, 2))
        y = head(x)
        loss, dy = rnnfast.cross_entropy(y, labels)
        dx = head.backward(dy)
        # the reference on another thread: cross_entropy's recycling is per thread, so it leaves this one's alone
        with ThreadPoolExecutor(1) as pool:
            ref_loss, ref_dy = pool.submit(rnnfast.cross_entropy, reference(x.copy()), labels).result()
        ref_dx = reference.backward(ref_dy.copy())
        assert loss == ref_loss
        for a, b in ((dy, ref_dy), (dx, ref_dx)):
            np.testing.assert_array_equal(a, b)
        if held is not None:
            assert all(np.array_equal(kept, copy) for kept, copy in held)
            assert not any(np.shares_memory(kept, a) for kept, _ in held for a in (y, dy, dx))
        if step >= 2:
            assert all(_same_owner(a, ref) for a, ref in zip((y, dy, dx), owners[step - 2]))
        owners.append([_owner(a) for a in (y, dy, dx)])
        held = [(a[0], a[0].copy()) for a in (y, dy, dx)]                 # a view of each: holds all of it
        del y, dy, dx, ref_dy, ref_dx
    np.testing.assert_array_equal(head.weight.grad, reference.weight.grad)


@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("kw", [{}, {"bidirectional": True, "num_layers": 2}])
@pytest.mark.parametrize("lengths", [None, [4, 2, 3], "packed"])
def test_backward_without_dout_equals_zeros(cls, kw, lengths):
    """backward(None, dstate) (a loss on the final state only) equals backward(zeros, dstate) bit for bit, for
    padded, ragged and packed input; twice in a row, so its kept zeros stay zeros."""
    a, b = (cls(3, 5, seed=0, dtype="float64", **kw) for _ in range(2))
    for step in range(2):
        x = _rng_x(step)
        if lengths == "packed":
            x = rnnfast.pack_sequences(x, [4, 2, 3])
        out_a, st_a = a(x, lengths=None if lengths == "packed" else lengths)
        out_b, _ = b(x, lengths=None if lengths == "packed" else lengths)
        ds = tuple(np.ones_like(s) for s in st_a) if isinstance(st_a, tuple) else np.ones_like(st_a)
        zeros = (out_b._replace(data=np.zeros_like(out_b.data)) if lengths == "packed" else np.zeros_like(out_b))
        dx_a, d0_a = a.backward(None, ds)
        dx_b, d0_b = b.backward(zeros, ds)
        np.testing.assert_array_equal(dx_a.data if lengths == "packed" else dx_a,
                                      dx_b.data if lengths == "packed" else dx_b)
        _assert_same_backward(a, b, d0_a, d0_b)


@pytest.mark.parametrize("cls", LAYERS)
def test_inference_keeps_no_output_memory(cls):
    """Under no_grad nothing is kept between calls: a dropped output's memory is freed, not recycled."""
    layer, head = _layer(cls), rnnfast.Linear(5, 2, seed=0, dtype="float64")
    with rnnfast.no_grad():
        out, _ = layer(_rng_x(0))
        y = head(out)
        refs = [_owner(out), _owner(y)]
        del out, y
    assert all(ref() is None for ref in refs)
