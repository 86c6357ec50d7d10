"""Adam's one-pass update (csrc/_optim.pxi, rnnfast_optim.h) and clip_grad_norm_'s Σ g² pass: against the
plain NumPy rule, torch.optim.Adam and torch's clip_grad_norm_ at the shapes of an LSTM layer, in float32 and
float64, on 1 thread and on 2. (tests/test_optim.py and tests/test_clip.py check the semantics.)"""
import numpy as np
import pytest

import rnnfast
from rnnfast import Parameter, clip_grad_norm_
from rnnfast.optim import Adam, AdamW
from rnnfast._threads import thread_limit

SHAPES = [(512, 128), (512, 127), (512,), (1 << 18,)]       # the last splits over the threads
TOL = {np.float64: dict(rtol=1e-12, atol=1e-14), np.float32: dict(rtol=1e-5, atol=1e-7)}


def numpy_adam(theta, grads, lr, betas, eps, wd, amsgrad, decoupled):
    """Adam as torch.optim.Adam/AdamW document it, in float64, written for clarity."""
    b1, b2 = betas
    theta = [t.astype(np.float64) for t in theta]
    m = [np.zeros_like(t) for t in theta]
    v = [np.zeros_like(t) for t in theta]
    vmax = [np.zeros_like(t) for t in theta]
    for step, gs in enumerate(grads, 1):
        for i, g in enumerate(gs):
            g = g.astype(np.float64)
            if decoupled:
                theta[i] = theta[i] * (1 - lr * wd)
            else:
                g = g + wd * theta[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            vmax[i] = np.maximum(vmax[i], v[i])
            vh = vmax[i] if amsgrad else v[i]
            theta[i] = theta[i] - lr / (1 - b1 ** step) * m[i] / (np.sqrt(vh) / np.sqrt(1 - b2 ** step) + eps)
    return theta


def run(cls, dtype, threads, steps=3, **kw):
    rng = np.random.default_rng(0)
    params = [Parameter(rng.standard_normal(s), dtype=dtype) for s in SHAPES]
    start = [p.data.copy() for p in params]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]
    opt = cls(params, **kw)
    with thread_limit(threads):
        for gs in grads:
            for p, g in zip(params, gs):
                p.grad[...] = g
            opt.step()
    return [p.data for p in params], start, grads


CONFIGS = [(Adam, dict(lr=1e-2)), (Adam, dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
           (Adam, dict(lr=1e-2, amsgrad=True)), (AdamW, dict(lr=1e-2, weight_decay=0.3, amsgrad=True))]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls, kw", CONFIGS)
def test_adam_matches_numpy_reference(dtype, cls, kw):
    got, start, grads = run(cls, dtype, 1, **kw)
    ref = numpy_adam(start, grads, kw["lr"], kw.get("betas", (0.9, 0.999)), kw.get("eps", 1e-8),
                     kw.get("weight_decay", 0), kw.get("amsgrad", False), cls is AdamW)
    for a, b in zip(got, ref):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adam_one_thread_and_two_agree_bit_for_bit(dtype):
    if not rnnfast.openmp_enabled():
        pytest.skip("built without OpenMP")
    one = run(Adam, dtype, 1, amsgrad=True)[0]
    two = run(Adam, dtype, 2, amsgrad=True)[0]
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_adam_non_contiguous_parameter_takes_the_numpy_path_with_the_same_result():
    rng = np.random.default_rng(3)
    data = rng.standard_normal((6, 4))
    a, b = Parameter(data.copy()), Parameter(data.copy())
    b.data = np.asfortranarray(b.data)
    b.grad = np.asfortranarray(b.grad)
    oa, ob = Adam([a], lr=0.1), Adam([b], lr=0.1)
    for _ in range(3):
        g = rng.standard_normal((6, 4))
        a.grad[...] = g
        b.grad[...] = g
        oa.step()
        ob.step()
    np.testing.assert_allclose(a.data, b.data, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adam_matches_torch(dtype):
    torch = pytest.importorskip("torch")
    got, start, grads = run(Adam, dtype, 2, lr=1e-2, amsgrad=True)
    tp = [torch.tensor(s, requires_grad=True) for s in start]
    opt = torch.optim.Adam(tp, lr=1e-2, amsgrad=True)
    for gs in grads:
        for t, g in zip(tp, gs):
            t.grad = torch.tensor(g)
        opt.step()
    for a, t in zip(got, tp):
        np.testing.assert_allclose(a, t.detach().numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("max_norm", [1.0, 1e6])
def test_clip_grad_norm_against_numpy_and_torch(dtype, max_norm):
    rng = np.random.default_rng(4)
    params = [Parameter(np.zeros(s), dtype=dtype) for s in SHAPES]
    grads = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    for p, g in zip(params, grads):
        p.grad[...] = g
    total = clip_grad_norm_(params, max_norm)
    ref = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads))
    assert total == pytest.approx(ref, rel=1e-12)
    coef = min(max_norm / (ref + 1e-6), 1.0)
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad, g * coef, **TOL[dtype])
        if coef == 1.0:
            np.testing.assert_array_equal(p.grad, g)
    torch = pytest.importorskip("torch")
    tp = [torch.zeros(s, dtype=getattr(torch, np.dtype(dtype).name)) for s in SHAPES]
    for t, g in zip(tp, grads):
        t.grad = torch.tensor(g)
    assert total == pytest.approx(torch.nn.utils.clip_grad_norm_(tp, max_norm).item(), rel=TOL[dtype]["rtol"])
    for p, t in zip(params, tp):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), **TOL[dtype])


def test_clip_grad_norm_huge_float64_gradient_does_not_overflow():
    p = Parameter(np.zeros(3))
    p.grad[...] = [1e200, 1e200, 0.0]                # Σ g² overflows in double; the scaled 2-norm does not
    total = clip_grad_norm_([p], 1.0)
    assert total == pytest.approx(np.sqrt(2) * 1e200, rel=1e-12)
    np.testing.assert_allclose(p.grad, [1 / np.sqrt(2), 1 / np.sqrt(2), 0], rtol=1e-9)
