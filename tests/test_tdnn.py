"""rnnfast.TimeDelay (time-delay windows) against a NumPy loop, finite differences, torch's unfold, and the
estimators' window."""
from __future__ import annotations

import numpy as np
import pytest

import rnnfast
from rnnfast.estimators._data import _Sequences
from rnnfast.estimators._windows import _windowed
from rnnfast.tdnn import TimeDelay

from conftest import FD_TOL, numerical_gradient

CASES = [(7, 3, 2, "drop"), (7, 3, 2, "pad"), (10, 4, 4, "drop"), (10, 4, 4, "pad"), (9, 2, 1, "drop"),
         (5, 5, 3, "pad"), (2, 4, 3, "pad"), (8, 2, 3, "drop"), (8, 2, 3, "pad"), (1, 1, 1, "drop"),
         (8, 2, 5, "pad"), (11, 2, 5, "pad"), (7, 1, 4, "pad")]          # s > k: no window past the end


def loop_windows(x, k, s, tail):
    """The windows written out: y_τ = [x_{sτ}, …, x_{sτ+k−1}], zeros past the end under "pad"."""
    T, B, F = x.shape
    starts = []
    t = 0
    while (t + k <= T) if tail == "drop" else (t == 0 or t + k - s < T and t < T):
        starts.append(t)
        t += s
    y = np.zeros((len(starts), B, k * F), x.dtype)
    for tau, t0 in enumerate(starts):
        for j in range(k):
            if t0 + j < T:
                y[tau, :, j * F:(j + 1) * F] = x[t0 + j]
    return y


def loop_backward(dy, T, k, s):
    Tw, B, kF = dy.shape
    F = kF // k
    dx = np.zeros((T, B, F))
    for tau in range(Tw):
        for j in range(k):
            if tau * s + j < T:
                dx[tau * s + j] += dy[tau, :, j * F:(j + 1) * F]
    return dx


@pytest.mark.parametrize("T, k, s, tail", CASES)
def test_matches_loop(T, k, s, tail):
    rng = np.random.default_rng(T * 100 + k * 10 + s)
    x = rng.standard_normal((T, 3, 2))
    td = TimeDelay(k, stride=s, tail=tail)
    y = td(x)
    expected = loop_windows(x, k, s, tail)
    np.testing.assert_array_equal(y, expected)
    assert td.output_steps(T) == expected.shape[0]
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(td.backward(dy), loop_backward(dy, T, k, s), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("T, k, s, tail", [(7, 3, 2, "drop"), (7, 3, 2, "pad"), (6, 2, 1, "drop")])
def test_gradient_finite_differences(T, k, s, tail):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, 2, 2))
    td = TimeDelay(k, stride=s, tail=tail)
    dy = rng.uniform(-1, 1, td(x).shape)
    dx = td.backward(dy)
    numeric = numerical_gradient(lambda: float(np.sum(td(x) * dy)), x)
    np.testing.assert_allclose(dx, numeric, **FD_TOL)


@pytest.mark.parametrize("T, k, s", [(7, 3, 2), (10, 4, 4), (9, 2, 1), (8, 2, 3)])
def test_matches_torch_unfold(T, k, s):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, 3, 2))
    tx = torch.tensor(x, requires_grad=True)
    ty = tx.unfold(0, k, s).permute(0, 1, 3, 2).reshape(-1, 3, k * 2)     # (T', B, k·F), oldest step first
    dy = rng.standard_normal(tuple(ty.shape))
    (ty * torch.tensor(dy)).sum().backward()
    td = TimeDelay(k, stride=s)
    np.testing.assert_array_equal(td(x), ty.detach().numpy())
    np.testing.assert_allclose(td.backward(dy), tx.grad.numpy(), rtol=1e-14, atol=1e-14)


def test_batch_first_dtype_and_lengths():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 2, 3)).astype(np.float32)
    tm, bf = TimeDelay(4, stride=2, tail="pad"), TimeDelay(4, stride=2, tail="pad", batch_first=True)
    y = tm(x)
    assert y.dtype == np.float32 and y.shape == (4, 2, 12)
    np.testing.assert_array_equal(bf(x.transpose(1, 0, 2)), y.transpose(1, 0, 2))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = tm.backward(dy)
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(bf.backward(dy.transpose(1, 0, 2)), dx.transpose(1, 0, 2))
    # windows holding at least one real step ("pad"), whole windows ("drop")
    np.testing.assert_array_equal(tm.output_lengths(np.array([1, 4, 5, 6, 7, 9])), [1, 1, 2, 2, 3, 4])
    np.testing.assert_array_equal(TimeDelay(4, stride=2).output_lengths(np.array([3, 4, 5, 6, 9])), [0, 1, 1, 2, 3])
    for k, s, tail in ((2, 5, "pad"), (4, 2, "pad"), (3, 3, "drop")):               # each length as one sequence
        td = TimeDelay(k, stride=s, tail=tail)
        steps = [td.output_steps(T) if T >= k or tail == "pad" else 0 for T in range(1, 13)]
        assert td.output_lengths(np.arange(1, 13)).tolist() == steps, (k, s, tail)
    assert TimeDelay(2).forward(np.arange(4).reshape(4, 1, 1)).dtype == np.float64


def test_in_sequential_before_a_recurrent_layer():
    """Sequential(TimeDelay, LSTM, Readout, Linear) matches the windows computed by hand, gradient included."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((12, 3, 2))
    lengths = np.array([12, 7, 3])
    x[7:, 1] = 0
    x[3:, 2] = 0
    td = TimeDelay(3, tail="pad")
    model = rnnfast.Sequential(td, rnnfast.LSTM(6, 5, dtype="float64", seed=0), rnnfast.Readout("last"),
                               rnnfast.Linear(5, 2, dtype="float64", seed=1))
    logits = model(x, lengths=td.output_lengths(lengths))
    dx = model.backward(np.ones_like(logits))
    lstm, head = rnnfast.LSTM(6, 5, dtype="float64", seed=0), rnnfast.Linear(5, 2, dtype="float64", seed=1)
    xw = loop_windows(x, 3, 3, "pad")
    out, (h_n, c_n) = lstm(xw, lengths=np.array([4, 3, 1]))
    np.testing.assert_allclose(logits, head(h_n[-1]), rtol=1e-12)
    dh_n = head.backward(np.ones_like(logits))[None]
    dxw, _ = lstm.backward(np.zeros_like(out), (dh_n, None))
    np.testing.assert_allclose(dx, loop_backward(dxw, 12, 3, 3), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_estimator_window_is_the_layer(k):
    """The estimators' window is TimeDelay(k, tail="pad") on the batch padded with zeros, the lengths ⌈T_b/k⌉
    (the estimators' own kernel pass never reads the padding: here it holds other values)."""
    rng = np.random.default_rng(k)
    x = rng.standard_normal((11, 4, 2)).astype(np.float32)
    lengths = np.array([11, 8, 5, 1])
    padded = np.where(np.arange(11)[:, None, None] < lengths[None, :, None], x, 0).astype(np.float32)
    w = _windowed(_Sequences(x, lengths, "ragged"), k)
    np.testing.assert_array_equal(w.x, TimeDelay(k, tail="pad")(padded))
    np.testing.assert_array_equal(w.lengths, -(-lengths // k))


def test_bad_input():
    with pytest.raises(ValueError, match="window"):
        TimeDelay(0)
    with pytest.raises(ValueError, match="stride"):
        TimeDelay(2, stride=0)
    with pytest.raises(ValueError, match="tail"):
        TimeDelay(2, tail="wrap")
    td = TimeDelay(3)
    with pytest.raises(ValueError, match="x must be a 3-D"):
        td(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="fewer than window = 3"):
        td(np.zeros((2, 1, 1)))
    with pytest.raises(ValueError, match="backward needs a forward"):
        td.backward(np.zeros((1, 1, 3)))
    td(np.zeros((6, 1, 1)))
    with pytest.raises(ValueError, match="dy must have shape"):
        td.backward(np.zeros((3, 1, 3)))
    with pytest.raises(TypeError, match="x must be an array of real numbers"):
        td(np.array([[["a"]]]))
    with pytest.raises(ValueError, match="lengths"):
        td.output_lengths(np.array([1.5]))
