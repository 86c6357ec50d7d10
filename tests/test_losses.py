"""Losses: values and gradients against torch, finite differences, mask semantics, stability, errors."""
import numpy as np
import pytest

import rnnfast
from rnnfast.losses import bce_with_logits, cross_entropy, mse_loss

SHAPE = (4, 3, 5)  # (T, B, C or O)


def _inputs(name, rng, shape=SHAPE, dtype=np.float64):
    """(prediction, target) for a loss: CE takes integer labels over the last axis."""
    pred = rng.standard_normal(shape).astype(dtype)
    if name == "ce":
        return pred, rng.integers(0, shape[-1], size=shape[:-1])
    if name == "bce":
        return pred, rng.random(shape).astype(dtype)  # soft targets in [0, 1]
    return pred, rng.standard_normal(shape).astype(dtype)


LOSSES = {"mse": mse_loss, "ce": cross_entropy, "bce": bce_with_logits}


def _torch_loss(name, pred, target, reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = torch.tensor(pred, requires_grad=True)
    if name == "ce":
        c = pred.shape[-1]
        per = F.cross_entropy(x.reshape(-1, c), torch.tensor(target).reshape(-1), reduction="none")
        per = per.reshape(target.shape)
    elif name == "bce":
        per = F.binary_cross_entropy_with_logits(x, torch.tensor(target), reduction="none")
    else:
        per = 0.5 * F.mse_loss(x, torch.tensor(target), reduction="none")
    return x, per


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_torch(name, reduction):
    torch = pytest.importorskip("torch")
    pred, target = _inputs(name, np.random.default_rng(0))
    loss, grad = LOSSES[name](pred, target, reduction=reduction)
    x, per = _torch_loss(name, pred, target, reduction)
    # torch's own reductions (not our formula): mean over all entries, sum, or none
    ref = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    (ref.sum() if reduction == "none" else ref).backward()
    np.testing.assert_allclose(loss, ref.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad, x.grad.numpy(), rtol=1e-12, atol=1e-14)
    assert grad.shape == pred.shape and grad.dtype == pred.dtype
    if reduction != "none":
        assert isinstance(loss, float)


def test_torch_builtin_reductions():
    """Our mean matches torch's built-in mean reductions (CE with class axis moved, MSE with the ½)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(1)
    x, k = _inputs("ce", rng)
    ref = F.cross_entropy(torch.tensor(x).permute(0, 2, 1), torch.tensor(k))  # torch: class axis 1
    assert cross_entropy(x, k)[0] == pytest.approx(ref.item(), rel=1e-12)
    d, y = _inputs("mse", rng)
    assert mse_loss(d, y)[0] == pytest.approx(0.5 * F.mse_loss(torch.tensor(d), torch.tensor(y)).item(),
                                              rel=1e-12)


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("masked", [False, True])
def test_finite_differences(name, masked):
    rng = np.random.default_rng(2)
    pred, target = _inputs(name, rng, shape=(3, 2, 4))
    mask = rng.random((3, 2)) * (rng.random((3, 2)) > 0.3) if masked else None
    _, grad = LOSSES[name](pred, target, mask=mask)
    h = 1e-6
    num = np.empty_like(pred)
    for idx in np.ndindex(pred.shape):
        up, down = pred.copy(), pred.copy()
        up[idx] += h
        down[idx] -= h
        num[idx] = (LOSSES[name](up, target, mask=mask)[0] - LOSSES[name](down, target, mask=mask)[0]) / (2 * h)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", list(LOSSES))
def test_weighted_mean_matches_torch(name):
    """mean = Σ w·l / Σ w with per-step weights (T, B) broadcast over the trailing axes."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    pred, target = _inputs(name, rng)
    w = rng.random(SHAPE[:2])
    loss, grad = LOSSES[name](pred, target, mask=w)
    x, per = _torch_loss(name, pred, target, "none")
    wt = torch.tensor(w if name == "ce" else np.broadcast_to(w[..., None], SHAPE).copy())
    ref = (per * wt).sum() / wt.sum()
    ref.backward()
    np.testing.assert_allclose(loss, ref.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, x.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf − inf in the padded garbage
@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mask_equals_unmasked_subset(name, reduction):
    rng = np.random.default_rng(4)
    pred, target = _inputs(name, rng)
    keep = rng.random(SHAPE[:2]) > 0.4
    keep[0, 0] = True
    keep[1, 1] = False
    loss, grad = LOSSES[name](pred, target, mask=keep, reduction=reduction)
    sub_loss, sub_grad = LOSSES[name](pred[keep], target[keep], reduction=reduction)
    np.testing.assert_allclose(loss, sub_loss, rtol=1e-13)
    np.testing.assert_allclose(grad[keep], sub_grad, rtol=1e-13)
    assert np.all(grad[~keep] == 0)
    # masked entries contribute nothing, even if they hold garbage
    garbage = pred.copy()
    garbage[~keep] = np.nan if name != "ce" else np.inf
    loss2, grad2 = LOSSES[name](garbage, target, mask=keep, reduction=reduction)
    assert loss2 == loss
    np.testing.assert_array_equal(grad2, grad)


@pytest.mark.parametrize("name", list(LOSSES))
def test_all_ones_mask_equals_no_mask(name):
    pred, target = _inputs(name, np.random.default_rng(5))
    loss, grad = LOSSES[name](pred, target)
    loss1, grad1 = LOSSES[name](pred, target, mask=np.ones(SHAPE[:1]))  # (T,) mask, broadcast over B, C
    assert loss1 == pytest.approx(loss, rel=1e-14)
    np.testing.assert_allclose(grad1, grad, rtol=1e-14)


def test_reduction_none_with_mask_is_weighted_per_entry():
    pred, target = _inputs("mse", np.random.default_rng(6))
    w = np.random.default_rng(7).random(SHAPE[:2])
    per, grad = mse_loss(pred, target, mask=w, reduction="none")
    np.testing.assert_allclose(per, 0.5 * (pred - target) ** 2 * w[..., None], rtol=1e-14)
    np.testing.assert_allclose(grad, (pred - target) * w[..., None], rtol=1e-14)


def test_cross_entropy_ignores_padding_labels_under_zero_weight():
    x, k = _inputs("ce", np.random.default_rng(8))
    mask = np.ones(SHAPE[:2])
    mask[-1] = 0
    padded = k.copy()
    padded[-1] = -100  # torch's ignore_index convention
    np.testing.assert_equal(cross_entropy(x, padded, mask=mask), cross_entropy(x, k, mask=mask))


def test_extreme_logits_are_finite_and_correct():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, -1e4]])
    k = np.array([1, 2, 0])
    loss, grad = cross_entropy(x, k)
    xt = torch.tensor(x, requires_grad=True)
    F.cross_entropy(xt, torch.tensor(k)).backward()
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss, F.cross_entropy(torch.tensor(x), torch.tensor(k)).item(), rtol=1e-12)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-12, atol=1e-15)

    t = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.5], [0.0, 1.0, 0.0]])
    loss, grad = bce_with_logits(x, t)
    xt = torch.tensor(x, requires_grad=True)
    ref = F.binary_cross_entropy_with_logits(xt, torch.tensor(t))
    ref.backward()
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss, ref.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", list(LOSSES))
def test_float32_keeps_dtype(name):
    pred, target = _inputs(name, np.random.default_rng(9), dtype=np.float32)
    loss64, grad64 = LOSSES[name](pred.astype(np.float64), target)
    loss, grad = LOSSES[name](pred, target, mask=np.ones(SHAPE[:2], dtype=bool))
    assert grad.dtype == np.float32
    np.testing.assert_allclose(loss, loss64, rtol=1e-5)
    np.testing.assert_allclose(grad, grad64, rtol=1e-4, atol=1e-7)


def test_single_sample_cross_entropy():
    x = np.array([0.5, -1.0, 2.0])
    loss, grad = cross_entropy(x, np.int64(2))
    p = np.exp(x) / np.exp(x).sum()
    assert loss == pytest.approx(-np.log(p[2]), rel=1e-14)
    np.testing.assert_allclose(grad, p - np.eye(3)[2], rtol=1e-14)


@pytest.mark.parametrize("labels, match", [
    (np.array([0, 3]), "labels"),
    (np.array([-1, 0]), "labels"),
    (np.array([0, 1, 2]), "labels"),
])
def test_cross_entropy_bad_labels(labels, match):
    with pytest.raises(ValueError, match=match):
        cross_entropy(np.zeros((2, 3)), labels)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0])), TypeError, "labels"),
    (lambda: cross_entropy(np.zeros((2, 3), dtype=int), np.array([0, 1])), TypeError, "logits"),
    (lambda: cross_entropy(np.zeros((2, 3), np.float16), np.array([0, 1])), TypeError, "logits must be float32 or"),
    (lambda: mse_loss(np.zeros(3), np.zeros(4)), ValueError, "target"),
    (lambda: bce_with_logits(np.zeros(3), np.zeros((3, 1))), ValueError, "targets"),
    (lambda: mse_loss(np.zeros(3), np.zeros(3), reduction="avg"), ValueError, "reduction"),
    (lambda: mse_loss(np.zeros((2, 3)), np.zeros((2, 3)), mask=np.ones(3)), ValueError, "mask"),
    (lambda: mse_loss(np.zeros((2, 3)), np.zeros((2, 3)), mask=-np.ones(2)), ValueError, "mask"),
    (lambda: mse_loss(np.zeros((2, 3)), np.zeros((2, 3)), mask=np.zeros(2)), ValueError, "zero"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_mask_and_reduction_are_keyword_only():
    """torch's third positional argument is a per-class ``weight``; read as a mask it gave another number
    (cross_entropy 1.638 against torch's 1.413), so a call written for torch is refused instead."""
    x = np.zeros((4, 4))
    for loss, target in [(rnnfast.cross_entropy, np.arange(4)), (rnnfast.bce_with_logits, np.ones((4, 4))),
                         (rnnfast.mse_loss, np.ones((4, 4)))]:
        with pytest.raises(TypeError):
            loss(x, target, np.ones(4))
        with pytest.raises(TypeError):
            loss(x, target, None, "sum")
        assert loss(x, target, mask=np.ones(4), reduction="sum")[0] == loss(x, target, reduction="sum")[0]
