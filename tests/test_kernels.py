"""Kernel-level properties: the float32 transcendental approximations, batch independence, and the packed
recurrent product against BLAS."""
import numpy as np
import pytest
from scipy.special import expit

import rnnfast
import rnnfast.layers as layers_mod
from rnnfast import _recurrent

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
    _recurrent._float32_approximation(name, x, y)
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
def test_packed_step_product_equals_blas(make, dtype, T, monkeypatch):
    """The packed recurrent micro-kernel and per-step sgemm/dgemm give the same training step."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, 13, 5))
    dout = rng.standard_normal((T, 13, 37))
    lengths = rng.integers(1, T + 1, size=13)
    results = {}
    for mode in ("packed", "blas"):
        monkeypatch.setattr(layers_mod, "_STEP_GEMM", mode)
        layer = make(input_size=5, hidden_size=37, dtype=dtype, seed=3)
        out, _ = layer(x, lengths=lengths)
        dx, _ = layer.backward(dout)
        results[mode] = [np.array(out), dx] + [p.grad.copy() for p in layer.parameters()]
    rtol = 1e-12 if dtype == "float64" else 1e-4
    for a, b in zip(results["packed"], results["blas"]):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())
