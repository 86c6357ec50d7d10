"""Kernel-level properties: the float32 transcendental approximations, batch independence, the packed
recurrent product against BLAS, and the weight-gradient GEMM (rnnfast_wgrad.h) against NumPy and BLAS."""
import numpy as np
import pytest
from scipy.special import expit

import rnnfast
from rnnfast import _kernels
from rnnfast._kernels import KernelOptions, kernel_options

CELLS = [lambda **kw: rnnfast.Elman(nonlinearity="tanh", **kw), lambda **kw: rnnfast.Elman(nonlinearity="relu", **kw),
         lambda **kw: rnnfast.Elman(nonlinearity="sigmoid", **kw), rnnfast.LSTM, rnnfast.GRU]


def _grid():
    """Every float32 pattern class that matters: a dense sweep, tiny magnitudes, saturation, extremes."""
    dense = np.linspace(-100, 100, 400_001)
    tiny = np.logspace(-30, 0, 3001)
    return np.concatenate([dense, tiny, -tiny, [0.0, 1e-45, -1e-45, 88.0, -87.0, 1e4, -1e4]]).astype(np.float32)


@pytest.mark.parametrize("name, ref, max_rel", [
    ("tanh", np.tanh, 4e-7),
    ("sigmoid", expit, 4e-7),
    ("exp", np.exp, 4e-7),
])
def test_float32_approximations_match_numpy(name, ref, max_rel):
    x = _grid()
    if name == "exp":
        x = x[(x > -87.0) & (x < 88.0)]          # the range where float32 exp is a normal number
    y = np.empty_like(x)
    _kernels._float32_approximation(name, x, y)
    exact = ref(x.astype(np.float64))
    assert np.all(np.isfinite(y))
    big = np.abs(exact) > 1e-37                  # relative error where the result is a normal float32
    rel = np.abs(y[big] - exact[big]) / np.abs(exact[big])
    assert rel.max() < max_rel, (x[big][rel.argmax()], rel.max())
    assert np.all(np.abs(y[~big] - exact[~big]) < 1e-37)
    if name in ("tanh", "sigmoid"):              # saturation is exact and the range is respected
        lo, hi = (-1.0, 1.0) if name == "tanh" else (0.0, 1.0)
        assert y.min() >= lo and y.max() <= hi
        assert y[x == np.float32(1e4)][0] == 1.0


@pytest.mark.parametrize("make", CELLS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-6), ("float64", 1e-13)])
def test_forward_does_not_depend_on_the_rest_of_the_batch(make, threads, dtype, rtol, restore_threads):
    """A sequence's outputs are the same, to float rounding, whichever sequences share its batch (BLAS may
    round the input projection differently for different row counts; the recurrence itself is row-wise)."""
    rnnfast.set_num_threads(threads)
    layer = make(input_size=8, hidden_size=40, num_layers=2, dtype=dtype, seed=0)
    x = np.random.default_rng(0).standard_normal((20, 11, 8)).astype(dtype)
    full, _ = layer(x)
    for rows in (slice(0, 1), slice(3, 8), slice(2, 11)):
        part, _ = layer(x[:, rows])
        np.testing.assert_allclose(part, full[:, rows], rtol=rtol, atol=rtol)


@pytest.mark.parametrize("T", [9, 40])
@pytest.mark.parametrize("make", CELLS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_packed_step_product_equals_blas(make, dtype, T):
    """The packed recurrent micro-kernel and per-step sgemm/dgemm give the same training step."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, 13, 5))
    dout = rng.standard_normal((T, 13, 37))
    lengths = rng.integers(1, T + 1, size=13)
    results = {}
    for mode in ("packed", "blas"):
        with kernel_options(step_gemm=mode):
            layer = make(input_size=5, hidden_size=37, dtype=dtype, seed=3)
            out, _ = layer(x, lengths=lengths)
            dx, _ = layer.backward(dout)
        results[mode] = [np.array(out), dx] + [p.grad.copy() for p in layer.parameters()]
    rtol = 1e-12 if dtype == "float64" else 1e-4
    for a, b in zip(results["packed"], results["blas"]):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


def wgrad_options(use_blas):
    return KernelOptions(weight_gradients="blas" if use_blas else "auto")


# Sizes on both sides of every block edge of rnnfast_wgrad.h: K of its K block (256), M of a tile (12) and of
# a block (192), N of a panel (32 floats, 16 doubles) and of a block (512 floats, 256 doubles).
WGRAD_SHAPES = [(0, 5, 6), (1, 1, 1), (7, 13, 17), (255, 12, 32), (257, 11, 33), (600, 193, 16), (300, 191, 257),
                (513, 24, 513), (40, 400, 31)]


@pytest.mark.parametrize("use_blas", [False, True], ids=["rnnfast", "blas"])
@pytest.mark.parametrize("K, M, N", WGRAD_SHAPES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weight_gradient_product_matches_numpy(dtype, K, M, N, use_blas):
    """c += a[:, col0:col0 + M]ᵀ b, with a's rows wider than M (as dA's gate columns are), against float64
    NumPy. The bound is the one of a sum of K products done in the float type, from c's start value:
    |error| <= (K + 1)·ε·(|c| + |a|ᵀ|b|), ε the unit roundoff."""
    rng = np.random.default_rng(K * 1000 + M + N)
    col0 = 3
    a = rng.standard_normal((K, col0 + M + 5)).astype(dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    c = rng.standard_normal((M, N)).astype(dtype)
    a_used = a[:, col0:col0 + M].astype(np.float64)
    exact = c.astype(np.float64) + a_used.T @ b.astype(np.float64)
    bound = (K + 1) * np.finfo(dtype).eps / 2 * (np.abs(c) + np.abs(a_used).T @ np.abs(b.astype(np.float64)))
    out = c.copy()
    _kernels._wgrad_product(a, b, out, col0, wgrad_options(use_blas))
    assert np.all(np.abs(out - exact) <= bound), np.max(np.abs(out - exact) - bound)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weight_gradient_tiles_of_avx512_and_avx2_give_the_same_bits(dtype):
    """The AVX-512 tile (12 rows × a panel) and the AVX2 + FMA one (four passes of 6 rows × half a panel)
    add each element's products in the same order; with the instruction set capped at 0 the product is
    BLAS's, to rounding. (Where the CPU lacks AVX-512 both of the first two take the AVX2 path.)"""
    from rnnfast import _recurrent
    rng = np.random.default_rng(11)
    a = rng.standard_normal((300, 3 + 191 + 5)).astype(dtype)      # K = 300 crosses the K block, M = 191
    b = rng.standard_normal((300, 257)).astype(dtype)              # N = 257: partial panels and halves
    c = rng.standard_normal((191, 257)).astype(dtype)
    out = {}
    for level in (2, 1, 0):
        old = _recurrent._set_isa_limit(level)
        try:
            out[level] = c.copy()
            _kernels._wgrad_product(a, b, out[level], 3, wgrad_options(False))
        finally:
            _recurrent._set_isa_limit(old)
    np.testing.assert_array_equal(out[1], out[2])
    tol = 1e-4 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(out[0], out[1], rtol=tol, atol=tol * np.abs(out[1]).max())


def test_weight_gradient_product_rejects_shapes_that_do_not_fit():
    a, b, c = np.zeros((4, 6)), np.zeros((4, 3)), np.zeros((5, 3))
    with pytest.raises(ValueError, match="do not fit"):
        _kernels._wgrad_product(a, b, c, 2)                   # columns 2..6 of a 6-wide a
    with pytest.raises(ValueError, match="do not fit"):
        _kernels._wgrad_product(a, np.zeros((3, 3)), c, 0)    # b has 3 rows, a 4


@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("make", CELLS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weight_gradients_from_rnnfast_and_blas_agree(make, dtype, lengths, restore_threads):
    """A training step with the weight gradients from rnnfast_wgrad.h and from BLAS: everything else is
    bit-for-bit the same, and the weight gradients agree to rounding (sums of T·B = 600 products). So does
    dx: BLAS computes it in both, but over row blocks that differ between the two (the GRU's gate bound moves
    onto its split), and OpenBLAS picks its small-matrix kernel, which sums in another order, by size."""
    rnnfast.set_num_threads(2)
    rng = np.random.default_rng(2)
    T, B, I, H = 30, 20, 24, 64
    x = rng.standard_normal((T, B, I))
    dout = rng.standard_normal((T, B, H))
    lens = rng.integers(1, T + 1, size=B) if lengths else None
    results = {}
    for use_blas in (False, True):
        with kernel_options(weight_gradients="blas" if use_blas else "auto"):
            layer = make(input_size=I, hidden_size=H, dtype=dtype, seed=3)
            out, _ = layer(x, lengths=lens)
            dx, _ = layer.backward(dout)
        results[use_blas] = dict(out=np.array(out), dx=dx, **{n: p.grad.copy() for n, p in layer.named_parameters()})
    ours, blas = results[False], results[True]
    rtol = 1e-13 if dtype == "float64" else 1e-5
    for name in ours:
        if name.startswith("weight") or name == "dx":
            np.testing.assert_allclose(ours[name], blas[name], rtol=rtol, atol=rtol * np.abs(blas[name]).max())
        else:
            np.testing.assert_array_equal(ours[name], blas[name], err_msg=name)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_zero_arrays_fills_every_byte(threads):
    """Each array split among the threads in whole lines, the last share taking the rest: every element of
    arrays of awkward sizes (and above and below the size where threads are used) ends up zero, and nothing
    around them is touched."""
    rng = np.random.default_rng(0)
    sizes = [0, 1, 15, 17, 1000, 70_001, 300_000]
    base = rng.standard_normal(sum(sizes) + len(sizes) + 1)            # one guard element after each array
    arrays, guards, offset = [], [], 0
    for n in sizes:
        arrays.append(base[offset:offset + n])
        guards.append(offset + n)
        offset += n + 1
    before = base.copy()
    _kernels.zero_arrays(arrays, threads)
    for a in arrays:
        assert not a.any()
    np.testing.assert_array_equal(base[guards], before[guards])


def test_zero_arrays_rejects_what_it_cannot_fill():
    with pytest.raises(ValueError, match="C-contiguous"):
        _kernels.zero_arrays([np.ones((4, 4))[:, ::2]], 2)
    frozen = np.ones(5)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        _kernels.zero_arrays([frozen], 2)


def test_zero_grad_fills_any_gradient_array(restore_threads):
    """Module.zero_grad zeroes contiguous gradients with the kernels' threads and any other array with NumPy."""
    rnnfast.set_num_threads(2)
    layer = rnnfast.GRU(64, 256, seed=0)
    for p in layer.parameters():
        p.grad[...] = 1.0
    w = layer.weight_hh_l0
    w.grad = np.ones((w.shape[1], w.shape[0]), w.dtype).T          # a transposed view: not C-contiguous
    layer.zero_grad()
    for name, p in layer.named_parameters():
        assert not p.grad.any(), name


def test_import_without_the_built_kernels_says_what_to_do(tmp_path):
    """A source checkout imported before a build (or right after `pip install .`, from the checkout): an
    ImportError that says what to do, not Python's circular-import message."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    shutil.copytree(Path(rnnfast.__file__).parent, tmp_path / "rnnfast",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", "import rnnfast"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode != 0
    message = res.stderr.strip().splitlines()[-1]
    assert message.startswith("ImportError: rnnfast's compiled kernels"), message
    assert "pip install ." in message and "python setup.py build_ext --inplace" in message
    assert "circular import" not in res.stderr


# ---- sparse inputs (rnnfast_sparse.h): the input projection and dW_ih by x's nonzeros --------------------


def _sparse_problem(cell, dtype, lengths=False, threads_seed=0, T=6, B=5, I=20, H=7):
    """A conftest problem whose x is sparse as one-hot inputs are: mostly one nonzero a row (1, or a random
    scale), one row with two, one row of zeros."""
    from conftest import make_problem

    p = make_problem(cell, T=T, B=B, I=I, H=H, dtype=dtype, lengths=lengths, seed=threads_seed)
    rng = np.random.default_rng(7 + threads_seed)
    x = np.zeros((T, B, I), dtype)
    cols = rng.integers(0, I, (T, B))
    x[np.arange(T)[:, None], np.arange(B)[None, :], cols] = np.where(rng.random((T, B)) < 0.5, 1.0,
                                                                     rng.uniform(-2, 2, (T, B)))
    x[1, 0, (cols[1, 0] + 3) % I] = 0.75          # two nonzeros
    x[2, 1] = 0                                   # none
    p.x = x
    return p


def test_sparse_input_detection():
    from rnnfast import _recurrent

    eye = np.eye(40, dtype=np.float32)[np.random.default_rng(0).integers(0, 40, 100)]   # (100, 40) one-hot
    assert _recurrent.sparse_input(eye)
    assert _recurrent.sparse_input(np.zeros((3, 16)))
    assert not _recurrent.sparse_input(eye + np.float32(1e-30))                      # dense, if tiny
    assert not _recurrent.sparse_input(np.eye(8)[[0, 3, 5]])                          # I < 16: dense anyway
    half = np.zeros((10, 32))
    half[:, :5] = 1                                                                   # 5 of 32 > 1 in 8
    assert not _recurrent.sparse_input(half)
    assert _recurrent.sparse_input(np.pad(half[:, :4], ((0, 0), (0, 28))))           # 4 of 32


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("cell", ["elman-tanh", "elman-relu", "lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_input_matches_reference(cell, dtype, lengths, threads, restore_threads):
    """A training step on one-hot-like x (the sparse path) against rnnfast.reference in float64, and the
    inference forward's output against the training forward's."""
    from conftest import assert_outcomes_close, make_layer, run_layer, run_reference
    from rnnfast import _recurrent

    rnnfast.set_num_threads(threads)
    p = _sparse_problem(cell, dtype, lengths)
    assert _recurrent.sparse_input(p.x.reshape(-1, p.I))
    layer = make_layer(cell, p.I, p.H, dtype=dtype, seed=4)
    got = run_layer(layer, p)
    assert_outcomes_close(got, run_reference(p, {n: q.data for n, q in layer.named_parameters()}), dtype)
    kw = {} if p.lengths is None else {"lengths": p.lengths}
    with rnnfast.no_grad():
        out, _ = layer(p.x, p.hx, **kw)
    np.testing.assert_allclose(out, got.out, rtol=2e-6 if dtype == np.float32 else 1e-13, atol=1e-6)


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("cell", ["elman-tanh", "lstm", "gru"])
def test_a_non_finite_input_weight_reaches_every_row_of_a_sparse_x(cell, value):
    """As in the dense product and in torch, 0 · NaN is NaN: a NaN (or inf) in a column of W_ih that no row of
    the one-hot x selects still makes every output NaN (the sparse projection skipped it: a diverged model
    looked healthy on token inputs)."""
    from conftest import make_layer
    from rnnfast import _recurrent

    x = np.eye(32)[np.random.default_rng(0).integers(0, 31, (5, 3))]                # (5, 3, 32), never id 31
    assert _recurrent.sparse_input(x.reshape(-1, 32))
    layer = make_layer(cell, 32, 4, dtype=np.float64, seed=0)
    layer.weight_ih_l0.data[:, 31] = value
    out, _ = layer(x)
    assert np.isnan(out).all()
    with rnnfast.no_grad():
        assert np.isnan(layer(x)[0]).all()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_sparse_input_gradients_finite_differences(cell):
    from conftest import FD_TOL, forward, loss_of, make_layer, numerical_gradient, run_layer

    p = _sparse_problem(cell, np.float64, T=4, B=3, I=16, H=4)
    layer = make_layer(cell, p.I, p.H, dtype=np.float64, seed=5)
    got = run_layer(layer, p)

    def loss():
        return loss_of(p, *forward(layer, p))

    for name in ("weight_ih_l0", "bias_ih_l0"):
        param = dict(layer.named_parameters())[name]
        np.testing.assert_allclose(got.grads[name], numerical_gradient(loss, param.data), **FD_TOL, err_msg=name)
    np.testing.assert_allclose(got.grads["x"], numerical_gradient(loss, p.x), **FD_TOL, err_msg="x")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_sparse_input_matches_torch(cell):
    from conftest import assert_outcomes_close, make_layer, run_layer
    from test_layers import torch_run

    pytest.importorskip("torch")
    p = _sparse_problem(cell, np.float32, lengths=True, T=9, B=6, I=30, H=12)
    layer = make_layer(cell, p.I, p.H, dtype=np.float32, seed=6)
    assert_outcomes_close(run_layer(layer, p), torch_run(p, {n: q.data for n, q in layer.named_parameters()}),
                          np.float32)


# ---- backward(input_grad=False): no dx = dA W_ih for the first layer ------------------------------------


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, False), (2, True)])
@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("make", [rnnfast.LSTM, rnnfast.GRU, rnnfast.Elman])
def test_backward_without_input_grad(make, lengths, layers, bidirectional, threads, restore_threads):
    """The same weight and state gradients, bit for bit, with and without dx; dx is then None."""
    rnnfast.set_num_threads(threads)
    rng = np.random.default_rng(3)
    T, B, I, H = 7, 5, 6, 9
    x = rng.standard_normal((T, B, I))
    dout = rng.standard_normal((T, B, (1 + bidirectional) * H))
    lens = rng.integers(1, T + 1, size=B) if lengths else None
    results = []
    for input_grad in (True, False):
        layer = make(I, H, num_layers=layers, bidirectional=bidirectional, dtype="float64", seed=2)
        layer(x, lengths=lens)
        dx, dstate = layer.backward(dout, input_grad=input_grad)
        assert (dx is None) == (not input_grad)
        states = dstate if isinstance(dstate, tuple) else (dstate,)
        results.append([np.array(s) for s in states] + [p.grad.copy() for p in layer.parameters()])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_backward_input_grad_must_be_a_bool():
    layer = rnnfast.LSTM(3, 4)
    layer(np.zeros((2, 1, 3), np.float32))
    with pytest.raises(TypeError, match="input_grad"):
        layer.backward(np.zeros((2, 1, 4), np.float32), input_grad="no")


@pytest.mark.parametrize("cell", ["elman-tanh", "lstm", "gru"])
def test_step_kernel_refuses_arrays_that_do_not_fit(cell):
    """The streaming step's kernel checks its arrays against x and h_out itself (the layer compares only
    identities per call): each misfit, of shape, layout or dtype, raises StepArgumentsError before any
    memory is read."""
    from conftest import make_layer
    from rnnfast import _kernels, _recurrent

    layer = make_layer(cell, 5, 4, dtype=np.float64, seed=0)
    layer.step(np.zeros((2, 5)))                                    # makes the step's scratch
    w = layer._layer_params(0)
    gates, work = layer._workspace[("step", 2)]
    lstm = cell == "lstm"
    args = dict(x=np.zeros((2, 5)), w_ih=w.w_ih.data, w_hh=w.w_hh.data, b_ih=w.b_ih.data, b_hh=w.b_hh.data,
                h=np.zeros((2, 4)), c=np.zeros((2, 4)) if lstm else None, gates=gates, work=work,
                h_out=np.zeros((2, 4)), c_out=np.zeros((2, 4)) if lstm else None)
    code = layer.cell.code
    _recurrent.step(code, *args.values())                           # fits
    for name, bad in [("w_hh", w.w_hh.data.reshape(-1, 1)), ("w_ih", w.w_ih.data.astype(np.float32)),
                      ("h", np.zeros((4, 2)).T), ("h", np.zeros((3, 4))), ("gates", gates[:1]),
                      ("b_hh", None), ("x", np.zeros((2, 5), np.float32))]:
        with pytest.raises(_kernels.StepArgumentsError):
            _recurrent.step(code, *{**args, name: bad}.values())
