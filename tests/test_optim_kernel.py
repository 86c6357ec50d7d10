"""The one-pass Adam / AdamW update (csrc/_optim.pxi, rnnfast_optim.h) and clip_grad_norm_'s Σ g² pass: against
a plain NumPy rule written for clarity, the NumPy path they replace (non-contiguous arrays), torch.optim.Adam /
AdamW and torch's clip_grad_norm_, at the shapes of an LSTM layer, in float32 and float64, on 1 thread and on 2.
(tests/test_optim.py and tests/test_clip.py check the rest of the semantics.)"""
import math

import numpy as np
import pytest

import rnnfast
from rnnfast import Parameter, clip_grad_norm_
from rnnfast.optim import Adam, AdamW
from rnnfast._threads import thread_limit

SHAPES = [(512, 128), (512, 127), (512,), (1 << 18,)]       # the last splits over the threads
TOL = {np.float64: dict(rtol=1e-12, atol=1e-14), np.float32: dict(rtol=1e-5, atol=1e-7)}


def numpy_adam(theta, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
               decoupled=False):
    """Adam as torch.optim.Adam / AdamW document it, in float64, written for clarity."""
    b1, b2 = betas
    theta = [t.astype(np.float64) for t in theta]
    m = [np.zeros_like(t) for t in theta]
    v = [np.zeros_like(t) for t in theta]
    vmax = [np.zeros_like(t) for t in theta]
    for step, gs in enumerate(grads, 1):
        for i, g in enumerate(gs):
            g = -g.astype(np.float64) if maximize else g.astype(np.float64)
            if decoupled:
                theta[i] = theta[i] * (1 - lr * weight_decay)
            else:
                g = g + weight_decay * theta[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            vmax[i] = np.maximum(vmax[i], v[i])
            vh = vmax[i] if amsgrad else v[i]
            theta[i] = theta[i] - lr / (1 - b1 ** step) * m[i] / (np.sqrt(vh) / np.sqrt(1 - b2 ** step) + eps)
    return theta


def problem(dtype, shapes=SHAPES, steps=3, seed=0):
    rng = np.random.default_rng(seed)
    start = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]
    return start, grads


def run(cls, start, grads, threads=1, layout=None, **kw):
    params = [Parameter(s.copy(), dtype=s.dtype) for s in start]
    if layout is not None:                          # a user's layout: the NumPy path
        for p in params:
            p.data = layout(p.data)
            p.grad = layout(p.grad)
    opt = cls(params, **kw)
    with thread_limit(threads):
        for gs in grads:
            for p, g in zip(params, gs):
                p.grad[...] = g
            opt.step()
    return [p.data for p in params]


CONFIGS = [(Adam, dict(lr=1e-2)), (Adam, dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
           (Adam, dict(lr=1e-2, amsgrad=True, maximize=True)), (AdamW, dict(lr=1e-2, weight_decay=0.3, amsgrad=True)),
           (AdamW, dict(lr=3e-2, weight_decay=1e-2, maximize=True))]
IDS = ["adam", "adam-l2", "adam-amsgrad-maximize", "adamw-amsgrad", "adamw-maximize"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls, kw", CONFIGS, ids=IDS)
def test_adam_matches_numpy_reference(dtype, cls, kw):
    start, grads = problem(dtype)
    got = run(cls, start, grads, **kw)
    ref = numpy_adam(start, grads, decoupled=cls is AdamW, **kw)
    for a, b in zip(got, ref):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls, kw", CONFIGS, ids=IDS)
def test_adam_one_pass_equals_the_numpy_path_it_replaces(dtype, cls, kw):
    start, grads = problem(dtype, shapes=[(64, 16), (16,)])
    fused = run(cls, start, grads, **kw)
    numpy_path = run(cls, start, grads, layout=np.asfortranarray, **kw)    # not C-contiguous
    for a, b in zip(fused, numpy_path):
        np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adam_one_thread_and_two_agree_bit_for_bit(dtype):
    if not rnnfast.openmp_enabled():
        pytest.skip("built without OpenMP")
    start, grads = problem(dtype, shapes=[(1 << 18,)])
    one = run(Adam, start, grads, 1, lr=1e-2, amsgrad=True, weight_decay=0.1)
    two = run(Adam, start, grads, 2, lr=1e-2, amsgrad=True, weight_decay=0.1)
    np.testing.assert_array_equal(one[0], two[0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls, kw", CONFIGS, ids=IDS)
def test_adam_matches_torch(dtype, cls, kw):
    torch = pytest.importorskip("torch")
    start, grads = problem(dtype, shapes=SHAPES[:3])
    got = run(cls, start, grads, 2, **kw)
    tp = [torch.tensor(s, requires_grad=True) for s in start]
    opt = getattr(torch.optim, cls.__name__)(tp, **kw)
    for gs in grads:
        for t, g in zip(tp, gs):
            t.grad = torch.tensor(g)
        opt.step()
    # float32: torch orders the operations of a step otherwise (lerp, addcmul, addcdiv), and where g = ∇ + λθ
    # nearly cancels, the ratio m / (√v̂ + ε) of one element in 10⁵ moves by ~1e-3 of a step of γ; the one-pass
    # update equals rnnfast's NumPy path there to rounding (above) and the float64 reference (rtol 1e-5)
    tol = TOL[dtype] if dtype == np.float64 else dict(rtol=1e-5, atol=1e-3 * kw["lr"])
    for a, t in zip(got, tp):
        np.testing.assert_allclose(a, t.detach().numpy(), **tol)


def test_adam_amsgrad_propagates_nan_as_torch():
    torch = pytest.importorskip("torch")
    start, grads = problem(np.float32, shapes=[(8,)], steps=3)
    grads[1][0][2] = np.nan                         # v̂ = max(v̂, NaN) is NaN in torch.maximum, and stays NaN
    got = run(Adam, start, grads, lr=1e-2, amsgrad=True)[0]
    t = torch.tensor(start[0], requires_grad=True)
    opt = torch.optim.Adam([t], lr=1e-2, amsgrad=True)
    for (g,) in grads:
        t.grad = torch.tensor(g)
        opt.step()
    assert np.isnan(got[2]) and np.isnan(t.detach().numpy()[2])
    np.testing.assert_allclose(got, t.detach().numpy(), rtol=1e-5)


def torch_clip(torch, grads, max_norm, norm_type=2.0):
    tp = [torch.zeros(g.shape, dtype=getattr(torch, g.dtype.name)) for g in grads]
    for t, g in zip(tp, grads):
        t.grad = torch.tensor(g)
    total = torch.nn.utils.clip_grad_norm_(tp, max_norm, norm_type).item()
    return total, [t.grad.numpy() for t in tp]


def clip(grads, max_norm, **kw):
    params = [Parameter(np.zeros(g.shape), dtype=g.dtype) for g in grads]
    for p, g in zip(params, grads):
        p.grad[...] = g
    return clip_grad_norm_(params, max_norm, **kw), [p.grad for p in params]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("max_norm", [1.0, 1e6])
def test_clip_grad_norm_against_numpy_and_torch(dtype, max_norm):
    rng = np.random.default_rng(4)
    grads = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    total, clipped = clip(grads, max_norm)
    ref = np.sqrt(sum((g * g).astype(np.float64).sum() for g in grads))    # squares in the dtype, as torch
    assert total == pytest.approx(ref, rel=1e-12)
    coef = min(max_norm / (ref + 1e-6), 1.0)
    for c, g in zip(clipped, grads):
        np.testing.assert_allclose(c, g * coef, **TOL[dtype])
        if coef == 1.0:
            np.testing.assert_array_equal(c, g)
    torch = pytest.importorskip("torch")
    t_total, t_clipped = torch_clip(torch, grads, max_norm)
    assert total == pytest.approx(t_total, rel=TOL[dtype]["rtol"])
    for c, t in zip(clipped, t_clipped):
        np.testing.assert_allclose(c, t, **TOL[dtype])


# (gradient entries, dtype): torch's norm overflows to inf in the dtype (then every gradient becomes 0), and a
# float32 square below the smallest float32 is 0 (torch's norm of 1e-25 is 0)
EXTREMES = [([1e200, 1e200, 0.0], np.float64), ([2e19, 2e19, 0.0], np.float32), ([1.5e19, 1.5e19, 0.0], np.float32),
            ([3e38, 0.0, 0.0], np.float32), ([1e-25, 1e-25, 0.0], np.float32), ([np.nan, 1.0, 0.0], np.float32),
            ([np.inf, 1.0, 0.0], np.float64)]


@pytest.mark.parametrize("values, dtype", EXTREMES)
def test_clip_grad_norm_overflow_underflow_and_nan_as_torch(values, dtype):
    torch = pytest.importorskip("torch")
    grads = [np.array(values, dtype), np.ones(4, dtype)]
    total, clipped = clip(grads, 1.0)
    t_total, t_clipped = torch_clip(torch, grads, 1.0)
    if math.isfinite(t_total):
        assert total == pytest.approx(t_total, rel=1e-6, abs=1e-30)
    else:
        assert math.isnan(total) if math.isnan(t_total) else total == t_total
    for c, t in zip(clipped, t_clipped):
        np.testing.assert_allclose(c, t, rtol=1e-6)


def test_clip_grad_norm_float32_sum_overflow_across_parameters_is_inf():
    # each parameter's Σ g² fits in float32 (2.25e38), their sum does not: torch's norm of the norms is inf
    grads = [np.full(1, 1.5e19, np.float32), np.full(1, 1.5e19, np.float32)]
    total, clipped = clip(grads, 1.0)
    assert total == math.inf
    assert all((c == 0).all() for c in clipped)
    torch = pytest.importorskip("torch")
    assert torch_clip(torch, grads, 1.0)[0] == math.inf


def test_clip_grad_norm_nonfinite_raises_before_changing_anything():
    grads = [np.array([np.inf, 1.0]), np.ones(3)]
    params = [Parameter(np.zeros(g.shape)) for g in grads]
    for p, g in zip(params, grads):
        p.grad[...] = g
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(p.grad, g)


@pytest.mark.parametrize("norm_type", [math.inf, 1.0, 3.0])
def test_clip_grad_norm_other_norms_match_torch(norm_type):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    grads = [rng.standard_normal(s).astype(np.float32) for s in SHAPES[:3]]
    total, clipped = clip(grads, 1.0, norm_type=norm_type)
    t_total, t_clipped = torch_clip(torch, grads, 1.0, norm_type)
    assert total == pytest.approx(t_total, rel=1e-5)
    for c, t in zip(clipped, t_clipped):
        np.testing.assert_allclose(c, t, rtol=1e-5, atol=1e-8)
