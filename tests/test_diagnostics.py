"""gradient_norms_through_time (exact against a hand recursion and torch autograd; vanishing for a small-weight
Elman; the LSTM carries further; Elman, LSTM and GRU) and gradcheck (passes on correct layers and functions, fails on broken ones)."""
from __future__ import annotations

import functools

import numpy as np
import pytest

import rnnfast
from rnnfast.diagnostics import GradcheckError, gradcheck, gradient_norms_through_time
from rnnfast.layers import recurrent_layer

CELLS = ("elman", "lstm", "gru")


@pytest.fixture(autouse=True)
def one_thread(restore_threads):
    """These are thousands of tiny forwards: one OpenMP thread avoids a thread hand-off per call, which
    dominates (10-100x) on a busy 2-core machine. Thread agreement is tested in test_layers.py."""
    rnnfast.set_num_threads(1)


def make(cell, I=3, H=5, L=1, dtype="float64", seed=0, **kw):
    return recurrent_layer(cell, I, H, num_layers=L, dtype=dtype, seed=seed, **kw)


def grads_of(layer):
    return {n: p.grad.copy() for n, p in layer.named_parameters()}


# ---- gradient norms through time ---------------------------------------------------------------------
def test_norms_equal_the_tanh_bptt_recursion():
    """One tanh Elman layer: ∂L/∂h_t = (∂L/∂h_{t+1} ⊙ (1 − h_{t+1}²)) W_hh, from ∂L/∂h_{T-1} = v."""
    rng = np.random.default_rng(0)
    T, B, H = 12, 3, 5
    layer = make("elman", H=H, seed=1)
    x = rng.standard_normal((T, B, 3))
    h0 = rng.uniform(-0.5, 0.5, (1, B, H))
    v = rng.standard_normal((B, H))
    got = gradient_norms_through_time(layer, x, h0, direction=v)
    W_ih, W_hh = layer.weight_ih_l0.data, layer.weight_hh_l0.data
    b = layer.bias_ih_l0.data + layer.bias_hh_l0.data
    hs, h = [], h0[0]
    for t in range(T):                                              # forward by hand
        h = np.tanh(x[t] @ W_ih.T + h @ W_hh.T + b)
        hs.append(h)
    dh, expected = v, [np.linalg.norm(v)]
    for t in range(T - 2, -1, -1):
        dh = (dh * (1 - hs[t + 1] ** 2)) @ W_hh
        expected.append(np.linalg.norm(dh))
    np.testing.assert_allclose(got, expected[::-1], rtol=1e-10)


@pytest.mark.parametrize("cell", CELLS)
def test_norms_match_torch_autograd_multilayer(cell):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    T, B, I, H, L = 9, 2, 3, 4, 2
    layer = make(cell, I, H, L, seed=2)
    x = rng.standard_normal((T, B, I))
    got = gradient_norms_through_time(layer, x, direction="ones")
    tcls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(cell, torch.nn.RNN)
    tl = tcls(I, H, num_layers=L).double()
    tl.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    xt = torch.from_numpy(x)
    state, hs = None, []
    for t in range(T):                                              # one step at a time, keeping every h_t
        out, state = tl(xt[t:t + 1], state)
        h = state[0] if cell == "lstm" else state
        h.retain_grad()
        hs.append(h)
    v = torch.full((B, H), 1.0 / np.sqrt(B * H), dtype=torch.float64)
    (out[0] * v).sum().backward()
    expected = [hs[t].grad[-1].norm().item() for t in range(T - 1)] + [1.0]
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_small_weight_elman_gradients_vanish_geometrically():
    T = 30
    layer = make("elman", H=8, seed=3)
    layer.weight_hh_l0.data *= 0.5
    x = np.random.default_rng(3).standard_normal((T, 2, 3))
    g = gradient_norms_through_time(layer, x)
    distance = T - 1 - np.arange(T)                                 # steps back from the loss
    slope = np.polyfit(distance, np.log(g), 1)[0]
    assert slope < np.log(0.9), f"log-norm slope {slope} per step back"
    # |tanh'| <= 1 and ‖v‖ = 1 give the bound g_t <= ‖W_hh‖₂^(T-1-t)
    s = np.linalg.norm(layer.weight_hh_l0.data, 2)
    assert s < 1
    assert np.all(g <= s ** distance * (1 + 1e-9))


def test_lstm_with_high_forget_bias_carries_further_than_elman():
    T, H = 40, 8
    x = np.random.default_rng(4).standard_normal((T, 2, 3))
    elman = make("elman", H=H, seed=4)
    lstm = make("lstm", H=H, seed=4)
    lstm.bias_ih_l0.data[H:2 * H] += 3.0                            # forget gate f ≈ σ(3) ≈ 0.95
    ge = gradient_norms_through_time(elman, x)
    gl = gradient_norms_through_time(lstm, x)
    assert gl[0] / gl[-1] > 1e3 * (ge[0] / ge[-1])


@pytest.mark.parametrize("cell", CELLS)
def test_layer_is_left_untouched(cell):
    layer = make(cell, L=2, seed=5)
    x = np.random.default_rng(5).standard_normal((6, 2, 3))
    layer.weight_hh_l0.grad[...] = 1.5
    before = grads_of(layer)
    out, _ = layer(x)
    dout = np.ones_like(out)
    gradient_norms_through_time(layer, x)
    for n, g in grads_of(layer).items():
        np.testing.assert_array_equal(g, before[n])
    layer.backward(dout)                                            # the pending backward still works
    twin = make(cell, L=2, seed=5)
    twin(x)
    twin.backward(dout)
    np.testing.assert_allclose(layer.weight_hh_l0.grad - 1.5, twin.weight_hh_l0.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", CELLS)
def test_norms_float32_and_batch_first_agree(cell):
    x = np.random.default_rng(6).standard_normal((8, 2, 3))
    ref = gradient_norms_through_time(make(cell, seed=6), x)
    f32 = gradient_norms_through_time(make(cell, dtype="float32", seed=6), x)
    bf = gradient_norms_through_time(make(cell, seed=6, batch_first=True), x.swapaxes(0, 1))
    np.testing.assert_allclose(f32, ref, rtol=1e-5)                # float32 weights, float64 arithmetic
    np.testing.assert_allclose(bf, ref, rtol=1e-12)
    assert ref[-1] == pytest.approx(1.0)


def test_norms_errors():
    layer = make("elman")
    x = np.zeros((5, 1, 3))
    with pytest.raises(ValueError, match="max_steps"):
        gradient_norms_through_time(layer, x, max_steps=4)
    with pytest.raises(ValueError, match="direction"):
        gradient_norms_through_time(layer, x, direction="up")
    with pytest.raises(ValueError, match="direction"):
        gradient_norms_through_time(layer, x, direction=np.ones((2, 5)))
    with pytest.raises(ValueError, match="x"):
        gradient_norms_through_time(layer, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="at least one timestep"):
        gradient_norms_through_time(layer, np.zeros((0, 1, 3)))
    with pytest.raises(TypeError, match="layer"):
        gradient_norms_through_time(rnnfast.Linear(3, 2), x)


# ---- gradcheck ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lengths", [None, [5, 2, 4]])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", ["elman", "elman-sigmoid", "lstm", "gru"])
def test_gradcheck_passes_on_correct_layers(cell, num_layers, lengths):
    kw = {"nonlinearity": "sigmoid"} if cell == "elman-sigmoid" else {}
    layer = make(cell.split("-")[0], I=2, H=4, L=num_layers, seed=7, **kw)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 3, 2))
    h0 = rng.uniform(-0.5, 0.5, (num_layers, 3, 4))
    hx = (h0, rng.uniform(-0.5, 0.5, h0.shape)) if cell == "lstm" else h0
    assert gradcheck(layer, (x, hx) if lengths is None else x, lengths=lengths) is True


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_passes_on_bidirectional_layers(cell, num_layers):
    layer = make(cell, I=2, H=3, L=num_layers, seed=5, bidirectional=True)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 2, 2))
    h0 = rng.uniform(-0.5, 0.5, (2 * num_layers, 2, 3))                # layers × directions
    hx = (h0, rng.uniform(-0.5, 0.5, h0.shape)) if cell == "lstm" else h0
    assert gradcheck(layer, x, lengths=[4, 2]) is True
    assert gradcheck(layer, (x, hx)) is True


@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_float32_and_batch_first_layers_via_a_float64_twin(cell):
    layer = make(cell, L=2, dtype="float32", seed=8, batch_first=True, dropout=0.5)
    layer.weight_hh_l1.grad[...] = 2.0
    assert gradcheck(layer, np.random.default_rng(8).standard_normal((2, 4, 3))) is True
    assert layer.dtype == np.float32 and layer.training
    assert np.all(layer.weight_hh_l1.grad == 2.0) and not np.any(layer.weight_ih_l0.grad)


def test_gradcheck_linear_and_loss_functions():
    losses = pytest.importorskip("rnnfast.losses")
    rng = np.random.default_rng(9)
    assert gradcheck(rnnfast.Linear(4, 3, dtype="float32", seed=9), rng.standard_normal((5, 2, 4)))
    pred, target = rng.standard_normal((4, 3, 2)), rng.standard_normal((4, 3, 2))
    assert gradcheck(losses.mse_loss, (pred, target))
    assert gradcheck(functools.partial(losses.mse_loss, reduction="none"), (pred, target))   # keyword-only
    assert gradcheck(losses.cross_entropy, (pred, rng.integers(0, 2, (4, 3))))
    assert gradcheck(losses.bce_with_logits, (pred, rng.uniform(0, 1, pred.shape)))

    def two(a, b):                                                  # several wrt: grads in wrt order
        return np.sum(a * a * b), (2 * a * b, a * a)

    assert gradcheck(two, (pred, target), wrt=(0, 1))


class BrokenLSTM(rnnfast.LSTM):
    """backward scales every parameter gradient by 1.01: a 1% error, like a dropped term would make."""

    def backward(self, dout, dstate=None):
        saved = grads_of(self)
        result = super().backward(dout, dstate)
        for n, p in self.named_parameters():
            p.grad[...] = saved[n] + 1.01 * (p.grad - saved[n])
        return result


class BrokenElmanInput(rnnfast.Elman):
    """backward returns dx of the wrong sign on the last step only."""

    def backward(self, dout, dstate=None):
        dx, dh0 = super().backward(dout, dstate)
        dx = dx.copy()
        dx[-1] *= -1
        return dx, dh0


def test_gradcheck_fails_on_broken_layers():
    x = np.random.default_rng(10).standard_normal((4, 2, 3))
    with pytest.raises(GradcheckError, match=r"(weight|bias)_(ih|hh)_l0") as info:
        gradcheck(BrokenLSTM(3, 5, seed=10), x)
    report = info.value.report
    assert isinstance(info.value, ValueError)
    assert {n for n, r in report.items() if not r["ok"]} == {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}
    assert report["x"]["ok"] and report["h0"]["ok"] and report["c0"]["ok"]
    assert report["weight_hh_l0"]["max_rel_error"] == pytest.approx(0.01, rel=1e-3)
    with pytest.raises(GradcheckError, match=r"failed for x; worst: x\[3, "):
        gradcheck(BrokenElmanInput(3, 5, seed=10), x)
    assert gradcheck(BrokenLSTM(3, 5, seed=10), x, raise_exception=False) is False


def test_gradcheck_fails_on_a_broken_function():
    def off(a):
        return 0.5 * np.sum(a ** 3), 1.5 * a ** 2 * 1.01
    with pytest.raises(GradcheckError, match=r"inputs\[0\]"):
        gradcheck(off, np.random.default_rng(11).standard_normal((3, 2)))
    # a tolerance wider than the error lets it through: the check compares against the tolerance given
    assert gradcheck(off, np.random.default_rng(11).standard_normal((3, 2)), rtol=0.02)


def test_gradcheck_max_entries_samples():
    x = np.random.default_rng(12).standard_normal((4, 2, 3))
    with pytest.raises(GradcheckError) as info:
        gradcheck(BrokenLSTM(3, 5, seed=12), x, max_entries=7)
    report = info.value.report
    assert report["weight_hh_l0"]["entries"] == 7 and report["bias_ih_l0"]["entries"] == 7
    assert report["h0"]["entries"] == 7 and report["x"]["entries"] == 7


def test_gradcheck_errors():
    for layer, x in ((make("elman"), np.zeros((5, 0, 3))), (make("lstm"), np.zeros((0, 2, 3))),
                     (rnnfast.Linear(3, 2), np.zeros((0, 3)))):
        with pytest.raises(ValueError, match="x has no entries"):
            gradcheck(layer, x)
    layer = make("elman")
    x = np.zeros((3, 1, 3))
    with pytest.raises(ValueError, match="eps"):
        gradcheck(layer, x, eps=0)
    with pytest.raises(ValueError, match="inputs"):
        gradcheck(layer, (x, None, None))
    with pytest.raises(ValueError, match="lengths"):
        gradcheck(rnnfast.Linear(3, 2), x, lengths=[1])
    with pytest.raises(TypeError, match="layer_or_fn"):
        gradcheck(3, x)
    with pytest.raises(TypeError, match="fn must return"):
        gradcheck(lambda a: 1.0, x)
    with pytest.raises(ValueError, match="wrt"):
        gradcheck(lambda a: (1.0, a), x, wrt=(1,))


def test_messages_name_what_is_wrong():
    """gradcheck(layer, [x, h0]) gave NumPy's "inhomogeneous shape"; gradient_norms_through_time on a
    bidirectional layer failed in step without naming layer."""
    gru = rnnfast.GRU(2, 3, dtype="float64", seed=0)
    x, h0 = np.zeros((4, 1, 2)), np.zeros((1, 1, 3))
    with pytest.raises(TypeError, match=r"pass \(x, hx\)"):
        gradcheck(gru, [x, h0])
    assert gradcheck(gru, (x, h0))
    with pytest.raises(ValueError, match="layer must be unidirectional"):
        gradient_norms_through_time(rnnfast.GRU(2, 3, bidirectional=True, seed=0), x)
