"""The fused softmax cross-entropy kernel (csrc/_loss.pxi, rnnfast_loss.h) behind rnnfast.cross_entropy:
against a plain NumPy reference in float64 and float32, 1 thread against 2, and torch autograd at the shape
of a char-level LM step. (tests/test_losses.py checks the semantics: masks, reductions, finite differences.)"""
import numpy as np
import pytest

import rnnfast
from rnnfast.losses import cross_entropy
from rnnfast._threads import thread_limit

TOL = {np.float64: dict(rtol=1e-12, atol=1e-15), np.float32: dict(rtol=2e-5, atol=2e-7)}


def reference(x, k, w=None, reduction="mean"):
    """Softmax cross-entropy written for clarity, in float64: (loss, ∂loss/∂x)."""
    x = x.astype(np.float64).reshape(-1, x.shape[-1])
    k = k.reshape(-1)
    w = np.ones(len(k)) if w is None else w.astype(np.float64).reshape(-1)
    z = x - x.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    rows = np.arange(len(k))
    per = -np.log(p[rows, np.where(w == 0, 0, k)]) * w
    grad = p.copy()
    grad[rows, np.where(w == 0, 0, k)] -= 1
    grad *= w[:, None]
    if reduction == "none":
        return per, grad
    if reduction == "sum":
        return per.sum(), grad
    return per.sum() / w.sum(), grad / w.sum()


def logits(rng, shape, dtype):
    return (3 * rng.standard_normal(shape)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("masked", [False, True])
def test_matches_numpy_reference(dtype, reduction, masked):
    rng = np.random.default_rng(0)
    x = logits(rng, (64, 32, 127), dtype)                                   # (T, B, C)
    k = rng.integers(0, 127, (64, 32))
    w = rng.random((64, 32)).astype(dtype) * (rng.random((64, 32)) > 0.2) if masked else None
    loss, grad = cross_entropy(x, k, mask=w, reduction=reduction)
    ref_loss, ref_grad = reference(x, k, w, reduction)
    assert grad.dtype == dtype and grad.shape == x.shape
    np.testing.assert_allclose(np.asarray(loss).reshape(-1), np.reshape(ref_loss, -1), **TOL[dtype])
    np.testing.assert_allclose(grad.reshape(-1, 127), ref_grad, **TOL[dtype])
    if reduction == "none":
        assert loss.dtype == dtype and loss.shape == k.shape


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_thread_and_two_agree_bit_for_bit(dtype):
    if not rnnfast.openmp_enabled():
        pytest.skip("built without OpenMP")
    rng = np.random.default_rng(1)
    x = logits(rng, (2048, 127), dtype)                                    # big enough to split the rows
    k = rng.integers(0, 127, 2048)
    with thread_limit(1):
        one = cross_entropy(x, k)
    with thread_limit(2):
        two = cross_entropy(x, k)
    assert one[0] == two[0]
    np.testing.assert_array_equal(one[1], two[1])


def test_non_finite_logits_propagate_as_in_numpy():
    x = np.array([[0.0, np.nan, 1.0], [np.inf, 0.0, 1.0], [1.0, 2.0, 3.0]])
    loss, grad = cross_entropy(x, np.array([0, 1, 2]), reduction="none")
    assert np.isnan(loss[0]) and np.isnan(loss[1]) and np.isfinite(loss[2])
    assert np.isnan(grad[:2]).all() and np.isfinite(grad[2]).all()


def test_zero_weight_rows_are_exact_zeros_whatever_their_logits():
    x = np.array([[np.inf, np.nan, 1.0], [1.0, 2.0, 3.0]], np.float32)
    loss, grad = cross_entropy(x, np.array([7, 2]), mask=np.array([0.0, 1.0]), reduction="none")
    assert loss[0] == 0 and (grad[0] == 0).all()
    np.testing.assert_allclose(grad[1], reference(x[1:], np.array([2]), reduction="sum")[1][0], rtol=1e-6)


def test_bad_label_names_labels_and_value():
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\).*got 5"):
        cross_entropy(np.zeros((4, 3)), np.array([0, 1, 5, -1]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_torch_autograd(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = logits(rng, (64, 32, 127), dtype)
    k = rng.integers(0, 127, (64, 32))
    xt = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(xt.reshape(-1, 127), torch.tensor(k).reshape(-1))
    ref.backward()
    loss, grad = cross_entropy(x, k)
    np.testing.assert_allclose(loss, ref.item(), **TOL[dtype])
    np.testing.assert_allclose(grad, xt.grad.numpy(), **TOL[dtype])
