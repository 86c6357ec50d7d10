"""The time loop split by hidden units across threads (csrc/rnnfast_team.h), which the kernels choose for a big
W_hh instead of the batch split: plan "units" (products and pointwise passes by units), or backward with a
bigger batch "mixed" (pointwise pass by rows, product by units).

Every element of the step products sums in the same order under every plan, so each must give bit-for-bit the
results of the batch split at the same thread count (the after-loop GEMMs are then split alike), except the
bias gradients: each thread sums its own share of dA (rows or units) during the loop, so their summation
order follows the split, and they must agree to rounding. All of it must match the NumPy reference.
`kernel_options(unit_split_bytes=...)` lowers the size threshold so that small layers take a plan;
`_kernels.loop_plan` says which plan a call takes, so these tests check that the plan under test really ran.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import CELLS, DTYPES, assert_outcomes_close, make_layer, make_problem, run_layer, run_reference
from rnnfast import _kernels
from rnnfast._cells import CELLS as CELL_TABLE
from rnnfast._kernels import KernelOptions, kernel_options

pytestmark = pytest.mark.usefixtures("single_threaded_blas", "restore_threads")

def gate_width(cell, H):
    return CELL_TABLE[cell].width(H)


def weights_of(layer):
    return {k: np.asarray(v, dtype=np.float64) for k, v in layer.state_dict().items()}


# KernelOptions fields: the unit split always (whenever there are 2+ threads and H is whole panels, forward
# and backward), forward by units and backward mixed, never. The batch split can also run the input side's
# products inside the loop (input_gemm, tests/test_input_gemm.py), which sums them in another order than the unit
# split's BLAS GEMM: pinned to BLAS here, so that the plans compare bit for bit.
ALWAYS = dict(unit_split_bytes=0, unit_split_backward_h_per_row=0)
MIXED = dict(unit_split_bytes=0, unit_split_backward_h_per_row=1 << 30)
NEVER = dict(unit_split_bytes=1 << 62, unit_split_backward_h_per_row=1 << 30, input_gemm="blas")


@pytest.fixture
def unit_split_always():
    """Unit split whenever there are 2+ threads and H is whole panels, forward and backward."""
    with kernel_options(**ALWAYS):
        yield


@pytest.fixture
def mixed_backward():
    """Forward by units and backward mixed whenever there are 2+ threads and H is whole panels."""
    with kernel_options(**MIXED):
        yield


def run_batch_split(threads, cell, p):
    """run_with_threads with the unit split turned off."""
    with kernel_options(**NEVER):
        return run_with_threads(threads, cell, p)


def panel(dtype):
    return 128 // np.dtype(dtype).itemsize      # H must be a multiple of the packed panel width


def run_with_threads(threads, cell, p, seed=3, **kwargs):
    import rnnfast

    rnnfast.set_num_threads(threads)
    layer = make_layer(cell, p.I, p.H, dtype=p.dtype, seed=seed, num_layers=p.L, bidirectional=p.bidirectional,
                       **kwargs)
    return layer, run_layer(layer, p)


def assert_identical(a, b):
    """Bit for bit, but for the bias gradients (summed in the split's order): those to a few ulps."""
    np.testing.assert_array_equal(a.out, b.out)
    np.testing.assert_array_equal(a.h_n, b.h_n)
    if a.c_n is not None:
        np.testing.assert_array_equal(a.c_n, b.c_n)
    assert a.grads.keys() == b.grads.keys()
    for name in a.grads:
        if name.startswith("bias_"):
            g = a.grads[name]
            ulp = np.finfo(g.dtype).eps
            np.testing.assert_allclose(g, b.grads[name], rtol=64 * ulp, atol=64 * ulp * np.abs(g).max(),
                                       err_msg=name)
        else:
            np.testing.assert_array_equal(a.grads[name], b.grads[name], err_msg=name)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).name for d in DTYPES])
@pytest.mark.parametrize("cell", CELLS)
def test_unit_split_matches_the_batch_split_bit_for_bit(cell, dtype, lengths, bidirectional, unit_split_always):
    H = 64                                       # 2 float32 panels or 4 float64 ones
    assert H % panel(dtype) == 0
    p = make_problem(cell, T=100, B=7, I=9, H=H, L=2, dtype=dtype, lengths=lengths, bidirectional=bidirectional)
    itemsize = np.dtype(dtype).itemsize
    for backward in (False, True):               # the plan under test is the one that runs
        assert _kernels.loop_plan(2, p.T, p.B, H, gate_width(cell, H), itemsize, backward) == (2, "units")
    _, batch = run_batch_split(2, cell, p)
    layer, units = run_with_threads(2, cell, p)
    assert_identical(units, batch)
    assert_outcomes_close(units, run_reference(p, weights_of(layer)), dtype)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).name for d in DTYPES])
@pytest.mark.parametrize("cell", CELLS)
def test_mixed_backward_matches_the_batch_split_bit_for_bit(cell, dtype, lengths, bidirectional, mixed_backward):
    H = 64
    p = make_problem(cell, T=100, B=7, I=9, H=H, L=2, dtype=dtype, lengths=lengths, bidirectional=bidirectional)
    assert _kernels.loop_plan(2, p.T, p.B, H, gate_width(cell, H), np.dtype(dtype).itemsize, True) == (2, "mixed")
    _, batch = run_batch_split(2, cell, p)
    layer, mixed = run_with_threads(2, cell, p)
    assert_identical(mixed, batch)
    assert_outcomes_close(mixed, run_reference(p, weights_of(layer)), dtype)


@pytest.mark.parametrize("plan, setting", [("units", ALWAYS), ("mixed", MIXED)])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_three_threads_over_two_panels(cell, plan, setting):
    """The team is cut to the two panels, whose batch chunks (the mixed plan's pointwise pass) then differ in
    size, and the result stays exact."""
    dtype = np.float32
    H = 2 * panel(dtype)
    p = make_problem(cell, T=40, B=5, I=6, H=H, dtype=dtype, lengths=True)
    _, batch = run_batch_split(3, cell, p)
    with kernel_options(**setting):
        assert _kernels.loop_plan(3, p.T, p.B, H, gate_width(cell, H), 4, True) == (2, plan)
        _, split = run_with_threads(3, cell, p)
    assert_identical(split, batch)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_default_threshold_takes_the_unit_split_for_a_big_layer(cell):
    """With the default options: a W_hh over 1 MiB and a small batch split by units, and the answer is right."""
    dtype, H = np.float32, 320                   # GRU W_hh 1.2 MB, LSTM 1.6 MB; 320 = 10 panels
    p = make_problem(cell, T=6, B=3, I=5, H=H, dtype=dtype, lengths=True)
    for backward in (False, True):
        assert _kernels.loop_plan(2, p.T, p.B, H, gate_width(cell, H), 4, backward) == (2, "units")
    _, batch = run_batch_split(2, cell, p)
    layer, units = run_with_threads(2, cell, p)
    assert_identical(units, batch)
    assert_outcomes_close(units, run_reference(p, weights_of(layer)), dtype)


def test_loop_plan_keeps_the_batch_split_where_the_unit_split_does_not_pay():
    plan = _kernels.loop_plan
    assert plan(2, 100, 64, 256, 3 * 256, 4, False) == (2, "rows")      # W_hh 0.75 MiB
    assert plan(2, 100, 64, 256, 3 * 256, 4, True) == (2, "rows")
    assert plan(2, 50, 32, 512, 3 * 512, 4, False) == (2, "units")     # 3 MiB: forward splits
    assert plan(2, 50, 32, 512, 3 * 512, 4, True) == (2, "mixed")      # batch 32 > H / 64
    assert plan(2, 50, 4, 1024, 4 * 1024, 4, True) == (2, "units")
    assert plan(2, 50, 4, 1000, 4 * 1000, 4, False) == (2, "rows")     # H not whole panels
    assert plan(2, 50, 4, 1000, 4 * 1000, 4, True) == (2, "rows")
    assert plan(1, 50, 4, 1024, 4 * 1024, 4, False) == (1, "rows")     # one thread
    assert plan(1, 50, 32, 512, 3 * 512, 4, True) == (1, "rows")
    assert plan(2, 1, 1, 512, 512, 4, False) == (1, "rows")            # too little work


def test_unit_split_options_reject_negative_values():
    with pytest.raises(ValueError, match="unit_split_bytes"):
        KernelOptions(unit_split_bytes=-1)
    with pytest.raises(ValueError, match="unit_split_backward_h_per_row"):
        KernelOptions(unit_split_backward_h_per_row=-1)
    from rnnfast import _recurrent          # the kernels check too

    with pytest.raises(ValueError, match="nbytes"):
        _recurrent.loop_plan(2, 5, 5, 64, 64, 4, False, -1, 0)
    with pytest.raises(ValueError, match="backward_h_per_row"):
        _recurrent.loop_plan(2, 5, 5, 64, 64, 4, False, 0, -1)


def test_kernel_options_are_per_context_and_restored():
    """kernel_options changes the options of its block only, and a layer call in the block takes them."""
    default = _kernels.current_options()
    with kernel_options(**NEVER) as inner:
        assert _kernels.current_options() is inner and inner.unit_split_bytes == NEVER["unit_split_bytes"]
        with kernel_options(step_gemm="blas"):
            assert _kernels.current_options().step_gemm == "blas"
            assert _kernels.current_options().unit_split_bytes == NEVER["unit_split_bytes"]
        assert _kernels.current_options() is inner
    assert _kernels.current_options() is default
    with pytest.raises(ValueError, match="step_gemm"):
        KernelOptions(step_gemm="fast")
    with pytest.raises(ValueError, match="weight_gradients"):
        KernelOptions(weight_gradients="numpy")
    with pytest.raises(ValueError, match="num_threads"):
        KernelOptions(num_threads=0)
    for name, bad in (("num_threads", 2**40), ("unit_split_bytes", 1.5), ("unit_split_bytes", "x"),
                      ("unit_split_backward_h_per_row", True)):         # refused here, not at the kernel's call
        with pytest.raises(ValueError, match=f"{name} must be .*an int in"):
            KernelOptions(**{name: bad})
    assert type(KernelOptions(num_threads=np.int64(2), unit_split_bytes=np.uint32(9)).unit_split_bytes) is int


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "elman-tanh"])
def test_buffers_the_threads_share_start_on_a_cache_line(cell, bidirectional):
    """Under the unit split each thread writes whole lines of every row only if each row starts on one: the
    kept activations, the workspace, the returned output, dx and the state gradients."""
    import rnnfast

    rnnfast.set_num_threads(2)
    layer = make_layer(cell, 20, 64, num_layers=2, bidirectional=bidirectional, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 3, 20)).astype(np.float32)
    out, state = layer(x)
    dx, dstate = layer.backward(np.ones_like(out))
    states = list(state) if isinstance(state, tuple) else [state]
    dstates = list(dstate) if isinstance(dstate, tuple) else [dstate]
    arrays = list(layer._workspace.values()) + [out, dx] + dstates
    assert len(layer._workspace) > 0
    for a in arrays:
        assert a.ctypes.data % 64 == 0, (a.shape, a.ctypes.data % 64)
    assert all(s.flags.c_contiguous for s in states)


@pytest.mark.parametrize("shape", [(0,), (3,), (2, 0, 5), (7, 3, 5), (1, 1, 1)])
@pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).name for d in DTYPES])
def test_aligned_buffers_are_ordinary_arrays(shape, dtype):
    from rnnfast._buffers import aligned_empty, aligned_zeros

    a = aligned_empty(shape, dtype)
    z = aligned_zeros(shape, dtype)
    for arr in (a, z):
        assert arr.shape == shape and arr.dtype == np.dtype(dtype)
        assert arr.flags.c_contiguous and arr.flags.writeable
        assert arr.size == 0 or arr.ctypes.data % 64 == 0      # an empty array has no line to share
    assert not z.any()
    a[...] = 1.5
    assert (a == 1.5).all()
