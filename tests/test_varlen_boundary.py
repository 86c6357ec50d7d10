"""The padded boundary of ``lengths=`` (x's gather and h_t's scatter inside the packed forward kernel, dout's
gather and dx's scatter around the backward's): a layer given ``lengths=`` equals the same layer given the
PackedSequence (unpacked), bit for bit, on 1, 2 and 3 threads, under the batch split, the unit split and the
mixed backward, with steps past the longest sequence (T > max length), stacked, in float32 and float64, and is
zero past each length.
"""
from __future__ import annotations

import numpy as np
import pytest

import rnnfast
from rnnfast._kernels import kernel_options

from conftest import is_lstm, make_layer

pytestmark = pytest.mark.usefixtures("single_threaded_blas")

PLANS = {                                                   # KernelOptions for each time-loop plan
    "rows": dict(unit_split_bytes=1 << 60),
    "units": dict(unit_split_bytes=0, unit_split_backward_h_per_row=0),
    "mixed": dict(unit_split_bytes=0, unit_split_backward_h_per_row=1 << 20),
}


def _state(cell, rng, L, B, H, dtype):
    h = rng.uniform(-0.5, 0.5, (L, B, H)).astype(dtype)
    return (h, rng.uniform(-0.5, 0.5, (L, B, H)).astype(dtype)) if is_lstm(cell) else h


def _arrays(cell, state):
    """A state as a list of its arrays: [h] or [h, c] (LSTM)."""
    return list(state) if is_lstm(cell) else [state]


@pytest.mark.parametrize("plan", PLANS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "elman-tanh"])
def test_lengths_equal_the_packed_sequence_on_every_plan(cell, dtype, plan, restore_threads):
    rng = np.random.default_rng(7)
    T, B, I, H, L = 60, 29, 5, 64, 2            # H: whole packed panels, so that the unit split can split it
    lengths = rng.integers(10, 50, B)            # T > every length: steps nobody runs; ~900 rows, enough
    lengths[3] = 1                               # work for 2-3 threads in every kernel (loop_plan)
    x = rng.uniform(-1, 1, (T, B, I)).astype(dtype)
    dout = rng.uniform(-1, 1, (T, B, H)).astype(dtype)
    mask = (np.arange(T)[:, None] < lengths[None, :])[..., None]
    h0, dh_n = _state(cell, rng, L, B, H, dtype), _state(cell, rng, L, B, H, dtype)
    layer = make_layer(cell, I, H, num_layers=L, dtype=np.dtype(dtype).name, seed=1)
    for threads in (1, 2, 3):
        rnnfast.set_num_threads(threads)
        with kernel_options(**PLANS[plan]):
            layer.zero_grad()
            out, hn = layer(x, h0, lengths=lengths)
            dx, dh0 = layer.backward(dout, dh_n)
            grads = {n: p.grad.copy() for n, p in layer.named_parameters()}
            layer.zero_grad()
            packed = rnnfast.pack_sequences(x, lengths)
            out_p, hn_p = layer(packed, h0)
            dx_p, dh0_p = layer.backward(rnnfast.pack_sequences(dout * mask, lengths), dh_n)
        np.testing.assert_array_equal(out, rnnfast.unpack(out_p, total_length=T)[0])
        np.testing.assert_array_equal(dx, rnnfast.unpack(dx_p, total_length=T)[0])
        assert not out[~mask[..., 0]].any() and not dx[~mask[..., 0]].any()     # zeros past each length
        for a, b in zip(_arrays(cell, hn) + _arrays(cell, dh0), _arrays(cell, hn_p) + _arrays(cell, dh0_p)):
            np.testing.assert_array_equal(a, b)
        for n, p in layer.named_parameters():
            np.testing.assert_array_equal(grads[n], p.grad, err_msg=f"{n}, {threads} threads")


def test_workspace_keeps_each_keys_memory_at_its_largest():
    """A ragged batch's (rows, ·) arrays change shape with every new set of lengths: a smaller or equal size
    takes a view of the key's memory, a larger one grows it; every array starts on a cache line."""
    from rnnfast._buffers import CACHE_LINE, Workspace

    ws = Workspace()
    a = ws.buffer("x", (10, 7), np.float32)
    b = ws.buffer("x", (6, 3), np.float64)                      # 144 bytes of a's 280: the same memory
    assert b.shape == (6, 3) and b.dtype == np.float64 and b.flags.c_contiguous and b.flags.writeable
    assert np.shares_memory(a, b) and ws["x"] is b
    assert ws.buffer("x", (6, 3), np.float64) is b              # the same shape again: the same array
    c = ws.buffer("x", (20, 7), np.float32)                     # larger: new memory
    assert not np.shares_memory(b, c) and c.shape == (20, 7)
    assert not np.shares_memory(c, ws.buffer("y", (20, 7), np.float32))      # keys never share
    for arr in (a, b, c):
        assert arr.ctypes.data % CACHE_LINE == 0
