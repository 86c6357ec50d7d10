"""The input side's products inside the time loop (``KernelOptions.input_gemm``, csrc/_plan.pxi: _input_by_step).

With "step" the forward projects each step's rows, a_t = x_t W_ihᵀ, and backward computes dx_t = dA_t W_ih, on
the packed micro-kernel inside the time loop; with "blas" each is one BLAS GEMM over all rows before (after) the
loop. "auto" takes whichever a calibration at first use finds faster on this CPU. Both must match the NumPy
reference, finite differences (float64) and torch; they agree with each other to rounding only (the sums run in
another order). Under "step" each row's products sum in the same order whatever rows share its thread, so 1 and
2 threads agree bit for bit (but for the bias gradients, summed per thread).
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import (CELLS, DTYPES, FD_TOL, assert_close, assert_outcomes_close, forward, loss_of, make_problem,
                      numerical_gradient, run_layer, run_reference)
from rnnfast import _kernels
from rnnfast._cells import CELLS as CELL_TABLE
from rnnfast._kernels import KernelOptions, kernel_options

pytestmark = pytest.mark.usefixtures("single_threaded_blas", "restore_threads")


def weights_of(layer):
    return {k: np.asarray(v, dtype=np.float64) for k, v in layer.state_dict().items()}


def run(cell, p, mode, threads, seed=3):
    import rnnfast

    rnnfast.set_num_threads(threads)
    layer = p.layer(seed=seed)
    with kernel_options(input_gemm=mode):
        return layer, run_layer(layer, p)


def plans(p, mode, threads):
    """(forward, backward) input plans a padded, dense problem p takes under `mode`."""
    GH = CELL_TABLE[p.cell].width(p.H)
    options = KernelOptions(num_threads=threads, input_gemm=mode)
    return tuple(_kernels.input_plan(p.T, p.B, p.I, p.H, GH, p.dtype, backward, options=options)
                 for backward in (False, True))


# I = 64 fills two float32 panels (four float64 ones), so backward's dx_t runs in the loop too; I = 9 leaves
# most of a panel empty, so only the forward's projection does
@pytest.mark.parametrize("I, expected", [(64, ("step", "step")), (9, ("step", "blas"))], ids=["I64", "I9"])
@pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).name for d in DTYPES])
@pytest.mark.parametrize("cell", CELLS)
def test_step_and_blas_match_the_reference(cell, dtype, I, expected):
    p = make_problem(cell, T=30, B=5, I=I, H=20, dtype=dtype)
    assert plans(p, "step", 2) == expected                  # the plan under test is the one that runs
    assert plans(p, "blas", 2) == ("blas", "blas")
    layer, step = run(cell, p, "step", 2)
    _, blas = run(cell, p, "blas", 2)
    ref = run_reference(p, weights_of(layer))
    assert_outcomes_close(step, ref, dtype)
    assert_outcomes_close(blas, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).name for d in DTYPES])
@pytest.mark.parametrize("cell", ["lstm", "gru", "elman-tanh"])
def test_one_and_two_threads_agree_bit_for_bit_under_step(cell, dtype):
    p = make_problem(cell, T=25, B=7, I=64, H=16, L=2, dtype=dtype)
    assert plans(p, "step", 1) == plans(p, "step", 2) == ("step", "step")
    _, one = run(cell, p, "step", 1)
    _, two = run(cell, p, "step", 2)
    np.testing.assert_array_equal(one.out, two.out)
    np.testing.assert_array_equal(one.h_n, two.h_n)
    for name in one.grads:
        if name.startswith("bias_"):        # each thread sums its own rows of dA
            assert_close(two.grads[name], one.grads[name], dtype, name)
        else:
            np.testing.assert_array_equal(two.grads[name], one.grads[name], err_msg=name)


@pytest.mark.parametrize("cell", ["lstm", "gru", "elman-relu"])
def test_step_gradients_match_finite_differences(cell):
    p = make_problem(cell, T=6, B=3, I=32, H=5, dtype=np.float64)       # 2 float64 panels: dx_t in the loop
    assert plans(p, "step", 2) == ("step", "step")
    layer, got = run(cell, p, "step", 2)
    x = p.x.copy()

    def loss():
        with kernel_options(input_gemm="step"):
            return loss_of(p, *forward(layer, p, x))

    np.testing.assert_allclose(got.grads["x"], numerical_gradient(loss, x), **FD_TOL, err_msg="x")
    w = layer.weight_ih_l0.data
    np.testing.assert_allclose(got.grads["weight_ih_l0"], numerical_gradient(loss, w), **FD_TOL, err_msg="w_ih")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_step_matches_torch(cell):
    torch = pytest.importorskip("torch")
    p = make_problem(cell, T=20, B=6, I=64, H=24, dtype=np.float64)
    layer, got = run(cell, p, "step", 2)
    mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](p.I, p.H).double()
    with torch.no_grad():
        for name, value in layer.state_dict().items():
            getattr(mod, name).copy_(torch.from_numpy(np.asarray(value, dtype=np.float64)))
    x = torch.from_numpy(p.x.copy()).requires_grad_(True)
    hx = (torch.from_numpy(p.h0), torch.from_numpy(p.c0)) if cell == "lstm" else torch.from_numpy(p.h0)
    out, state = mod(x, hx)
    h_n = state[0] if cell == "lstm" else state
    loss = (out * torch.from_numpy(p.dout)).sum() + (h_n * torch.from_numpy(p.dh_n)).sum()
    if cell == "lstm":
        loss = loss + (state[1] * torch.from_numpy(p.dc_n)).sum()
    loss.backward()
    assert_close(got.out, out.detach().numpy(), np.float64, "out")
    assert_close(got.grads["x"], x.grad.numpy(), np.float64, "x")
    for name, param in mod.named_parameters():
        assert_close(got.grads[name], param.grad.numpy(), np.float64, name)


def test_the_kernels_decline_where_step_does_not_apply():
    plan = _kernels.input_plan
    step = KernelOptions(num_threads=2, input_gemm="step")
    assert plan(50, 64, 128, 128, 512, np.float32, False, options=step) == "step"
    assert plan(50, 64, 128, 128, 512, np.float32, True, options=step) == "step"
    assert plan(50, 64, 128, 128, 512, np.float32, False, packed_layout=True, options=step) == "blas"
    assert plan(50, 64, 128, 128, 512, np.float32, False, sparse=True, options=step) == "blas"
    assert plan(50, 64, 2, 64, 256, np.float32, False, options=step) == "step"     # x_t W_ihᵀ: any I
    assert plan(50, 64, 2, 64, 256, np.float32, True, options=step) == "blas"      # dx_t: 2 of a panel's 32
    assert plan(50, 64, 127, 128, 512, np.float32, True, options=step) == "step"   # 127 of 128
    assert plan(50, 64, 100, 128, 512, np.float32, True, options=step) == "blas"   # 100 of 128
    assert plan(50, 8, 256, 1024, 4096, np.float32, False, options=step) == "blas"  # the unit split
    blas_steps = KernelOptions(num_threads=2, input_gemm="step", step_gemm="blas")
    assert plan(50, 64, 128, 128, 512, np.float32, False, options=blas_steps) == "blas"
    assert plan(50, 64, 128, 128, 512, np.float32, False, options=KernelOptions(input_gemm="blas")) == "blas"


def test_auto_is_a_calibration_cached_per_shape_and_the_environment_overrides_it(monkeypatch):
    monkeypatch.setattr(_kernels, "_input_gemm_env", None)
    monkeypatch.setattr(_kernels, "_input_gemm_choices", {})
    choice = _kernels.input_gemm_choice(np.dtype(np.float32), 48, 192)
    assert choice in ("step", "blas")
    assert list(_kernels._input_gemm_choices.values()) == [choice]
    key, = _kernels._input_gemm_choices
    _kernels._input_gemm_choices[key] = "other"                                  # cached: not measured again
    assert _kernels.input_gemm_choice(np.dtype(np.float32), 48, 192) == "other"
    for forced in ("step", "blas"):
        monkeypatch.setenv(_kernels._INPUT_GEMM_ENV, f" {forced.upper()} ")
        monkeypatch.setattr(_kernels, "_input_gemm_env", _kernels._read_input_gemm_env())
        assert _kernels.input_gemm_choice(np.dtype(np.float32), 48, 192) == forced
        assert KernelOptions(input_gemm="auto").input_by_step(np.dtype(np.float32), 48, 192) == (forced == "step")
    monkeypatch.setenv(_kernels._INPUT_GEMM_ENV, "fast")
    with pytest.raises(ValueError, match="RNNFAST_INPUT_GEMM"):
        _kernels._read_input_gemm_env()
    monkeypatch.setenv(_kernels._INPUT_GEMM_ENV, "")
    assert _kernels._read_input_gemm_env() is None
    with pytest.raises(ValueError, match="input_gemm"):
        KernelOptions(input_gemm="fast")


def test_calibration_times_both_products():
    from rnnfast import _recurrent

    a = np.ones((40, 8), np.float32)
    w = np.full((70, 8), 0.5, np.float32)
    c = np.zeros((40, 70), np.float32)
    work = np.empty(_recurrent.packed_size(4, 8, 70), np.float32)
    packed, blas = _recurrent._time_input_gemm(a, w, c, work, 16, 2)
    assert packed > 0 and blas > 0
    np.testing.assert_array_equal(c, np.full((40, 70), 4.0, np.float32))         # both computed a @ wᵀ
    with pytest.raises(ValueError, match="do not fit"):
        _recurrent._time_input_gemm(a, w, c, work[:10], 16, 2)


def test_the_kernel_rejects_a_packed_buffer_without_room_for_w_ih():
    from rnnfast import _recurrent
    from rnnfast._cells import cell_spec

    spec = cell_spec("elman-tanh")
    T, B, I, H = 3, 4, 32, 32
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T * B, I)).astype(np.float32)
    w_ih, w_hh = (rng.standard_normal((H, k)).astype(np.float32) for k in (I, H))
    out = np.empty((T * B, H), np.float32)
    small = np.empty(_recurrent.packed_size(4, H, H), np.float32)
    with pytest.raises(ValueError, match="packed must hold"):
        _recurrent.forward(spec.code, T, None, x, w_ih, w_hh, None, None, np.zeros((B, H), np.float32), None,
                           None, None, None, None, out, None, small, 1, 1 << 62, 64, step_input=True)


@pytest.mark.parametrize("dtype, I, H", [(np.float64, 31, 1), (np.float64, 15, 17), (np.float32, 63, 33)])
@pytest.mark.parametrize("threads", [1, 2])
def test_backward_packs_w_hh_and_w_ih_in_whole_panels_of_their_own(dtype, I, H, threads):
    """With (H mod nr) + (I mod nr) <= nr, W_hh's panels and W_ih's after them take more room than one
    (G·H, H + I) operand's: the workspace once had that smaller size, and packing W_ih wrote past its end (a
    heap overflow that glibc caught at free, or not at all)."""
    from rnnfast import _recurrent
    from rnnfast._buffers import Workspace

    itemsize = np.dtype(dtype).itemsize
    need = _recurrent.packed_size(itemsize, H, H) + _recurrent.packed_size(itemsize, H, I)     # Elman: G·H = H
    assert need > _recurrent.packed_size(itemsize, H, H + I)
    assert _kernels._packed(Workspace(), ("t",), H, H, np.dtype(dtype), KernelOptions(), then_N=I).size == need
    p = make_problem("elman-tanh", T=4, B=6, I=I, H=H, dtype=dtype)
    assert plans(p, "step", threads)[1] == "step"                    # backward's dx_t in the loop: the path
    layer, step = run("elman-tanh", p, "step", threads)
    assert_outcomes_close(step, run_reference(p, weights_of(layer)), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).name for d in DTYPES])
@pytest.mark.parametrize("N1, N2", [(64, 9), (32, 600), (512, 64), (128, 128)])
def test_weight_gradients_in_one_pass_equal_two_products_bit_for_bit(dtype, N1, N2):
    """Backward computes dW_hh and dW_ih in one pass of rnnfast_wgrad.h over dA (packed once): each element
    must sum as in a product of its own (N1 + N2 over one block of packed columns, or several)."""
    from rnnfast import _recurrent

    rng = np.random.default_rng(1)
    K, M = 700, 37
    if N1 % (128 // np.dtype(dtype).itemsize):
        pytest.skip("N1 is not whole panels of this dtype")
    a = rng.standard_normal((K, M)).astype(dtype)
    b1, b2 = (rng.standard_normal((K, n)).astype(dtype) for n in (N1, N2))
    c1, c2 = (rng.standard_normal((M, n)).astype(dtype) for n in (N1, N2))
    one1, one2 = c1.copy(), c2.copy()
    if not _recurrent._wgrad_pair(a, b1, one1, b2, one2):
        pytest.skip("rnnfast_wgrad.h needs AVX-512")
    sep1, sep2 = c1.copy(), c2.copy()
    _recurrent._wgrad_product(a, b1, sep1, 0, False)
    _recurrent._wgrad_product(a, b2, sep2, 0, False)
    np.testing.assert_array_equal(one1, sep1)
    np.testing.assert_array_equal(one2, sep2)
    np.testing.assert_allclose(one1, c1 + a.T.astype(np.float64) @ b1, rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-3 if dtype == np.float32 else 1e-10)
    with pytest.raises(ValueError, match="whole panels"):
        _recurrent._wgrad_pair(a, b2, c2, b1, c1) if N2 % (128 // np.dtype(dtype).itemsize) else \
            _recurrent._wgrad_pair(a, b1[:1], c1, b2, c2)
