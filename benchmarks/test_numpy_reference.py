"""The NumPy baseline of ``python -m rnnfast.bench`` computes the same training step as rnnfast.

Not a benchmark: it guards the comparison, since a baseline that computes something else is no baseline.
"""
import numpy as np
import pytest

import rnnfast
from rnnfast.bench import NumpyRNN

# float32 on both sides; the absolute part is scaled by the array's largest |value|.
RTOL, ATOL = 2e-4, 2e-5


def _close(actual, expected, name):
    scale = max(float(np.abs(expected).max()), 1e-30)
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL * scale, err_msg=name)


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("T,B,I,H", [(7, 3, 5, 4), (20, 8, 16, 32), (1, 1, 3, 2)])
def test_numpy_baseline_matches_rnnfast(cell, T, B, I, H):
    rng = np.random.default_rng(T * 100 + B)
    layer = {"lstm": rnnfast.LSTM, "gru": rnnfast.GRU, "elman": rnnfast.Elman}[cell](I, H, dtype="float32", seed=1)
    ref = NumpyRNN.from_state_dict(cell, layer.state_dict())
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    dout = rng.standard_normal((T, B, H)).astype(np.float32)

    out, _ = layer(x)
    out = np.array(out)
    dx, _ = layer.backward(dout)
    out_ref, dx_ref, grads = ref.train_step(x, dout)

    _close(out_ref, out, "out")
    _close(dx_ref, dx, "dx")
    for name, param in layer.named_parameters():
        _close(grads[name], param.grad, name)


def test_numpy_baseline_forward_matches_train_step():
    rng = np.random.default_rng(0)
    layer = rnnfast.LSTM(4, 6, seed=2)
    ref = NumpyRNN.from_state_dict("lstm", layer.state_dict())
    x = rng.standard_normal((5, 2, 4)).astype(np.float32)
    out_fwd = ref.forward(x)
    out_ts, _, _ = ref.train_step(x, np.ones((5, 2, 6), np.float32))
    np.testing.assert_array_equal(out_fwd, out_ts)
