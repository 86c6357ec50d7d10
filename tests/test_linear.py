"""Linear: y = x Wᵀ + b on the last axis, checked against NumPy, finite differences and torch autograd."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import DTYPES, FD_TOL, assert_close, numerical_gradient

SHAPES = [(4,), (6, 4), (5, 3, 4), (2, 3, 2, 4)]  # any leading dims, in_features = 4
shape_ids = ["x".join(map(str, s)) for s in SHAPES]
param_dtype = pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).name for d in DTYPES])
param_shape = pytest.mark.parametrize("shape", SHAPES, ids=shape_ids)
param_bias = pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])


def make(bias=True, dtype=np.float64, seed=0, out_features=3):
    import rnnfast

    return rnnfast.Linear(4, out_features, bias=bias, dtype=np.dtype(dtype).name, seed=seed)


def numpy_linear(lin, x, dy):
    """y, dx and parameter gradients in float64, written out with explicit reshapes."""
    W = lin.weight.data.astype(np.float64)  # (out, in)
    b = lin.bias.data.astype(np.float64) if lin.bias is not None else np.zeros(W.shape[0])
    x2 = np.asarray(x, np.float64).reshape(-1, W.shape[1])  # (N, in)
    dy2 = np.asarray(dy, np.float64).reshape(-1, W.shape[0])  # (N, out)
    y = (x2 @ W.T + b).reshape(np.shape(dy))
    grads = {"weight": dy2.T @ x2, "x": (dy2 @ W).reshape(np.shape(x))}
    if lin.bias is not None:
        grads["bias"] = dy2.sum(axis=0)
    return y, grads


def run(lin, x, dy):
    lin.zero_grad()
    y = np.array(lin(x))
    dx = np.array(lin.backward(dy))
    grads = {name: p.grad.copy() for name, p in lin.named_parameters()}
    grads["x"] = dx
    return y, grads


def inputs(shape, dtype, seed=0, out_features=3):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, shape).astype(dtype)
    dy = rng.uniform(-1, 1, shape[:-1] + (out_features,)).astype(dtype)
    return x, dy


@param_bias
@param_shape
@param_dtype
def test_matches_numpy(dtype, shape, bias):
    lin = make(bias, dtype)
    x, dy = inputs(shape, dtype)
    y, grads = run(lin, x, dy)
    y_ref, grads_ref = numpy_linear(lin, x, dy)
    assert y.dtype == dtype and grads["x"].dtype == dtype
    assert_close(y, y_ref, dtype, "y")
    assert set(grads) == set(grads_ref)
    for name in grads_ref:
        assert_close(grads[name], grads_ref[name], dtype, name)


@param_bias
@param_shape
def test_gradients_finite_differences(shape, bias):
    lin = make(bias, np.float64)
    x, dy = inputs(shape, np.float64, seed=1)
    _, grads = run(lin, x, dy)

    def loss():
        return float(np.sum(lin(x) * dy))

    for name, param in lin.named_parameters():
        np.testing.assert_allclose(grads[name], numerical_gradient(loss, param.data), **FD_TOL, err_msg=name)
    np.testing.assert_allclose(grads["x"], numerical_gradient(loss, x), **FD_TOL, err_msg="x")


@param_bias
@param_shape
@param_dtype
def test_matches_torch(dtype, shape, bias):
    torch = pytest.importorskip("torch")
    lin = make(bias, dtype, seed=2)
    x, dy = inputs(shape, dtype, seed=2)
    y, grads = run(lin, x, dy)
    mod = torch.nn.Linear(4, 3, bias=bias, dtype=torch.float64)
    mod.load_state_dict({k: torch.tensor(v.astype(np.float64)) for k, v in lin.state_dict().items()})
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    ty = mod(tx)
    (ty * torch.tensor(dy.astype(np.float64))).sum().backward()
    assert_close(y, ty.detach().numpy(), dtype, "y")
    assert_close(grads["x"], tx.grad.numpy(), dtype, "x")
    for name, p in mod.named_parameters():
        assert_close(grads[name], p.grad.numpy(), dtype, name)


@param_dtype
def test_load_torch_state_dict(dtype):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    mod = torch.nn.Linear(4, 3)
    lin = make(True, dtype, seed=9)
    assert {k: p.data.shape for k, p in lin.named_parameters()} == \
        {k: tuple(v.shape) for k, v in mod.named_parameters()}
    lin.load_state_dict({k: v.detach().numpy() for k, v in mod.state_dict().items()})
    x = np.random.default_rng(0).uniform(-1, 1, (5, 4))
    assert_close(lin(x), mod(torch.tensor(x, dtype=torch.float32)).detach().numpy(), np.float32)


def test_backward_accumulates_and_zero_grad():
    lin = make(True)
    x1, dy1 = inputs((5, 4), np.float64, seed=3)
    x2, dy2 = inputs((2, 3, 4), np.float64, seed=4)
    _, g1 = run(lin, x1, dy1)
    _, g2 = run(lin, x2, dy2)
    lin.zero_grad()
    for x, dy in ((x1, dy1), (x2, dy2)):
        lin(x)
        lin.backward(dy)
    for name, p in lin.named_parameters():
        assert np.abs(g1[name]).max() > 0
        assert_close(p.grad, g1[name] + g2[name], np.float64, name)
    lin.zero_grad()
    assert all(not np.any(p.grad) for p in lin.parameters())
    lin(x1)
    with pytest.raises(ValueError, match="dy"):
        lin.backward(dy2)                                       # a wrong dy keeps the forward for a retry
    lin.backward(dy1)
    with pytest.raises(ValueError, match="runs once per forward"):
        lin.backward(dy1)                                       # as the recurrent layers: it would add twice
    for name, p in lin.named_parameters():
        assert_close(p.grad, g1[name], np.float64, name)


@param_dtype
def test_input_conversion_non_contiguous_read_only(dtype):
    lin = make(True, dtype)
    x, dy = inputs((6, 5, 4), np.float64, seed=5)
    other = np.float32 if dtype == np.float64 else np.float64
    big = np.zeros((12, 5, 4))
    big[::2] = x
    ro = x.copy()
    ro.setflags(write=False)
    for xv, dyv in [(x.astype(other), dy.astype(other)), (big[::2], np.asfortranarray(dy)), (ro, dy)]:
        # expected: the same values, converted to the layer's dtype in a fresh contiguous array
        y_ref, g_ref = run(lin, np.array(xv, dtype=dtype), np.array(dyv, dtype=dtype))
        y, g = run(lin, xv, dyv)
        assert y.dtype == dtype and g["x"].dtype == dtype
        assert_close(y, y_ref, dtype, "y")
        for name in g_ref:
            assert_close(g[name], g_ref[name], dtype, name)


@param_dtype
def test_seed_and_init_range(dtype):
    a, b, c = make(True, dtype, seed=1, out_features=50), make(True, dtype, seed=1, out_features=50), \
        make(True, dtype, seed=2, out_features=50)
    bound = 1 / np.sqrt(4)
    for name, p in a.named_parameters():
        assert p.data.dtype == dtype and p.grad.shape == p.data.shape
        np.testing.assert_array_equal(p.data, b.state_dict()[name])
        assert not np.array_equal(p.data, c.state_dict()[name])
    w = a.weight.data
    assert w.shape == (50, 4) and a.bias.data.shape == (50,)
    assert np.all(np.abs(w) <= bound * (1 + 1e-6))
    assert w.max() > 0.9 * bound and w.min() < -0.9 * bound


def test_bad_inputs():
    import rnnfast

    lin = make(True)
    with pytest.raises((ValueError, RuntimeError), match="forward"):
        lin.backward(np.zeros((5, 3)))
    with pytest.raises((ValueError, TypeError), match=r"\bx\b"):
        lin(np.zeros((5, 3)))
    with pytest.raises(TypeError, match=r"\bx\b"):
        lin(np.full((5, 4), "a"))
    lin(np.zeros((5, 4)))
    for bad in (np.zeros((5, 4)), np.zeros((4, 3)), np.zeros((5, 1, 3))):
        with pytest.raises((ValueError, TypeError), match=r"dy"):
            lin.backward(bad)
    for args, word in [((0, 3), "in_features"), ((4, 0), "out_features"), ((-1, 3), "in_features")]:
        with pytest.raises((ValueError, TypeError), match=word):
            rnnfast.Linear(*args)
    with pytest.raises((ValueError, TypeError), match="dtype"):
        rnnfast.Linear(4, 3, dtype="int64")
    with pytest.raises((KeyError, ValueError), match="bias"):
        lin.load_state_dict({"weight": np.zeros((3, 4))})
    with pytest.raises(ValueError, match="weight"):
        lin.load_state_dict({"weight": np.zeros((4, 3)), "bias": np.zeros(3)})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N, I, O", [(1, 1, 1), (7, 3, 5), (2048, 128, 127), (300, 64, 1), (5, 0, 4), (0, 3, 2)])
def test_linear_kernels_match_numpy_on_any_thread_count(dtype, N, I, O):
    """The row-split products (csrc/_linear.pxi) against NumPy: y = x Wᵀ, dW += dyᵀ x, dx = dy W; the same
    bits on 1 and 2 threads (each thread's block is a BLAS call of its own rows)."""
    from rnnfast import _kernels
    from rnnfast._threads import blas_single_thread
    rng = np.random.default_rng(N + I + O)
    x, w = rng.standard_normal((N, I)).astype(dtype), rng.standard_normal((O, I)).astype(dtype)
    dy, g0 = rng.standard_normal((N, O)).astype(dtype), rng.standard_normal((O, I)).astype(dtype)
    x64, w64, dy64 = (a.astype(np.float64) for a in (x, w, dy))
    results = []
    for threads in (1, 2):
        y, dw, dx = np.full((N, O), np.nan, dtype), g0.copy(), np.full((N, I), np.nan, dtype)
        with blas_single_thread():
            _kernels.linear_forward(x, w, y, threads)
            _kernels.linear_backward(dy, x, w, dw, dx, threads)
        tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(y, x64 @ w64.T, **tol)
        np.testing.assert_allclose(dw, g0 + dy64.T @ x64, **tol)
        np.testing.assert_allclose(dx, dy64 @ w64, **tol)
        results.append((y, dw, dx))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    dw = g0.copy()
    with blas_single_thread():                                            # as the layer calls it
        _kernels.linear_backward(dy, x, w, dw, None, 2)                   # dx skipped
    np.testing.assert_array_equal(dw, results[0][1])


def test_linear_kernels_refuse_shapes_that_do_not_fit():
    from rnnfast import _kernels
    x, w = np.zeros((4, 3), np.float32), np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="do not fit"):
        _kernels.linear_forward(x, w, np.zeros((4, 3), np.float32), 1)
    with pytest.raises(ValueError, match="do not fit"):
        _kernels.linear_backward(np.zeros((4, 2), np.float32), x, w, np.zeros((3, 2), np.float32), None, 1)
    with pytest.raises(ValueError, match="do not fit"):
        _kernels.linear_backward(np.zeros((4, 2), np.float32), x, w, np.zeros((2, 3), np.float32),
                                 np.zeros((5, 3), np.float32), 1)


def test_weights_in_any_memory_layout():
    """A weight (and its gradient) given in Fortran order, by assignment or load_state_dict, works as NumPy's."""
    import rnnfast
    rng = np.random.default_rng(0)
    w = np.asfortranarray(rng.standard_normal((3, 4)).astype(np.float32))
    x, dy = rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal((5, 3)).astype(np.float32)
    lin = rnnfast.Linear(4, 3, seed=0)
    lin.load_state_dict({"weight": w, "bias": np.zeros(3, np.float32)})
    lin.weight.data = w.copy(order="F")
    lin.weight.grad = np.asfortranarray(np.ones((3, 4), np.float32))
    np.testing.assert_allclose(lin(x), x @ w.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lin.backward(dy), dy @ w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lin.weight.grad, 1 + dy.T @ x, rtol=1e-5, atol=1e-5)
