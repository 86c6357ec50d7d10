"""Gradient clipping against torch.nn.utils.clip_grad_norm_ / clip_grad_value_."""
import math

import numpy as np
import pytest

from rnnfast import Parameter
from rnnfast.clip import clip_grad_norm_, clip_grad_value_

SHAPES = [(3, 4), (7,), (2, 2, 3)]


def _pair(seed=0, scale=1.0, dtype=np.float64):
    """Our Parameters and torch tensors holding the same random gradients."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    params, tensors = [], []
    for s in SHAPES:
        p = Parameter(rng.standard_normal(s), dtype=dtype)
        p.grad[...] = scale * rng.standard_normal(s)
        t = torch.tensor(p.data.copy(), requires_grad=True)
        t.grad = torch.tensor(p.grad.copy())
        params.append(p)
        tensors.append(t)
    return params, tensors


def _assert_same_grads(params, tensors, rtol=1e-13):
    for p, t in zip(params, tensors):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=rtol, atol=1e-300)


@pytest.mark.parametrize("norm_type", [1, 2.0, 3, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])  # clips / leaves alone (coef clamped to 1)
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    params, tensors = _pair()
    total = clip_grad_norm_(params, max_norm, norm_type)
    ref = torch.nn.utils.clip_grad_norm_(tensors, max_norm, norm_type, foreach=False)
    assert isinstance(total, float)
    assert total == pytest.approx(ref.item(), rel=1e-13)
    _assert_same_grads(params, tensors)


def test_clip_grad_norm_result_has_max_norm():
    params, _ = _pair(scale=10.0)
    clip_grad_norm_(params, 2.0)
    after = np.sqrt(sum(np.sum(p.grad ** 2) for p in params))
    assert after == pytest.approx(2.0, rel=1e-6)


def test_single_parameter_and_float32():
    torch = pytest.importorskip("torch")
    params, tensors = _pair(seed=1, dtype=np.float32)
    assert tensors[0].grad.dtype == torch.float32
    total = clip_grad_norm_(params[0], 0.1)
    ref = torch.nn.utils.clip_grad_norm_(tensors[0], 0.1)
    assert params[0].grad.dtype == np.float32
    assert total == pytest.approx(ref.item(), rel=1e-6)
    np.testing.assert_allclose(params[0].grad, tensors[0].grad.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(params[1].grad, tensors[1].grad.numpy())  # not passed: untouched


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite(bad):
    torch = pytest.importorskip("torch")
    params, tensors = _pair(seed=2)
    params[1].grad[2] = bad
    tensors[1].grad[2] = bad
    before = [p.grad.copy() for p in params]
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError):
        torch.nn.utils.clip_grad_norm_(tensors, 1.0, error_if_nonfinite=True)
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.grad, b)  # nothing changed before the error
    # without the flag: same (non-finite) result as torch
    total = clip_grad_norm_(params, 1.0)
    ref = torch.nn.utils.clip_grad_norm_(tensors, 1.0, foreach=False)
    np.testing.assert_equal(total, ref.item())
    for p, t in zip(params, tensors):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())


@pytest.mark.parametrize("clip_value", [0.0, 0.3, 5.0])
def test_clip_grad_value_matches_torch(clip_value):
    torch = pytest.importorskip("torch")
    params, tensors = _pair(seed=3)
    clip_grad_value_(params, clip_value)
    torch.nn.utils.clip_grad_value_(tensors, clip_value, foreach=False)
    for p, t in zip(params, tensors):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())


def test_empty_and_errors():
    assert clip_grad_norm_([], 1.0) == 0.0
    p = Parameter(np.ones(3))
    with pytest.raises(TypeError, match="Parameter"):
        clip_grad_norm_([np.ones(3)], 1.0)
    with pytest.raises(TypeError, match="Parameter"):
        clip_grad_value_(np.ones(3), 1.0)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_(p, -1.0)
    with pytest.raises(ValueError, match="clip_value"):
        clip_grad_value_(p, -1.0)
    with pytest.raises(ValueError, match="norm_type"):
        clip_grad_norm_(p, 1.0, norm_type=float("nan"))


def test_a_parameter_without_grad_is_skipped_and_bad_grads_or_norm_types_are_refused():
    p, q = Parameter(np.ones(4)), Parameter(np.ones(3))
    p.grad, q.grad = np.full(4, 3.0), None                     # torch skips a None grad
    assert clip_grad_norm_([p, q], 1.0) == 6.0 and q.grad is None
    np.testing.assert_allclose(p.grad, 3.0 / (6.0 + 1e-6))
    clip_grad_value_([p, q], 0.1)
    assert q.grad is None and (p.grad == 0.1).all()
    for bad, match in ((np.ones(2), r"shape \(3,\), got ndarray \(2,\) float64"), ([1.0, 2.0, 3.0], "got list"),
                       (np.ones(3, np.float16), "float32 or float64 array")):
        q.grad = bad
        for clip in (lambda: clip_grad_norm_([p, q], 1.0), lambda: clip_grad_value_([p, q], 1.0)):
            with pytest.raises(ValueError, match=match):
                clip()
    q.grad = np.ones(3)
    for bad in ("two", None, [2]):
        with pytest.raises(ValueError, match="norm_type must be a real number or 'inf'"):
            clip_grad_norm_([p, q], 1.0, norm_type=bad)
