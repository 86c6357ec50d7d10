"""Shared helpers for the layer tests: problems, running a layer or the reference, tolerances, finite differences.

A *problem* is one forward + backward: input, initial state, optional lengths and the upstream gradients
(``dout``, ``dh_n``, ``dc_n``) that define the scalar loss
``sum(out * dout) + sum(h_n * dh_n) + sum(c_n * dc_n)`` whose gradient ``backward`` returns.
"""
from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # `import conftest` under any import mode

import rnnfast  # noqa: E402
from rnnfast import reference  # noqa: E402
from rnnfast._cells import CELLS as CELL_TABLE  # noqa: E402
from rnnfast.layers import recurrent_layer  # noqa: E402

# Child Python processes must import the rnnfast these tests import (the installed one in CI), so they
# get its folder first on PYTHONPATH and run from a directory with no source checkout in it: `python -c`
# and `python -m` put the working directory first on sys.path, and a checkout's rnnfast/ is uncompiled.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(rnnfast.__file__)))
CHILD_CWD = tempfile.mkdtemp(prefix="rnnfast-tests-")


def child_env(**extra: str) -> dict:
    """os.environ with PACKAGE_PARENT first on PYTHONPATH, plus ``extra``."""
    path = os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}

CELLS = tuple(CELL_TABLE)          # "elman-tanh", "elman-relu", "elman-sigmoid", "lstm", "gru"
DTYPES = (np.float32, np.float64)

# Agreement between the layer (in its dtype) and a float64 computation of the same function. The
# absolute part is scaled by the largest |expected| value of the array (see assert_close), so that
# entries which are small by cancellation are judged against the array's scale.
TOL = {
    np.dtype(np.float32): dict(rtol=1e-5, atol=1e-6),
    np.dtype(np.float64): dict(rtol=1e-12, atol=1e-14),
}
# Central differences in float64: truncation O(eps²) and rounding O(1e-16 / eps).
FD_EPS = 1e-6
FD_TOL = dict(rtol=1e-5, atol=1e-7)


def mode_of(cell):
    """"elman-relu" -> "relu", "lstm" -> "lstm", "gru" -> "gru": Elman's nonlinearity, else the family (as
    torch names the module or the nonlinearity)."""
    spec = CELL_TABLE[cell]
    return spec.nonlinearity or spec.family


def is_lstm(cell):
    """True for a cell whose state is the pair (h, c)."""
    return CELL_TABLE[cell].has_cell_state


def make_layer(cell, input_size, hidden_size, **kwargs):
    return recurrent_layer(cell, input_size, hidden_size, **kwargs)


def time_major(a, batch_first):
    """(B, T, ...) -> (T, B, ...) when batch_first; the reference works time-major."""
    return np.swapaxes(a, 0, 1) if batch_first else a


@dataclass
class Problem:
    cell: str
    T: int
    B: int
    I: int
    H: int
    L: int
    batch_first: bool
    dtype: np.dtype
    x: np.ndarray  # (T, B, I), or (B, T, I) when batch_first
    h0: np.ndarray  # (L*D, B, H)
    c0: np.ndarray | None  # (L*D, B, H), LSTM only
    lengths: np.ndarray | None  # (B,)
    dout: np.ndarray  # same layout as x, last axis D*H
    dh_n: np.ndarray  # (L*D, B, H)
    dc_n: np.ndarray | None  # (L*D, B, H), LSTM only
    bidirectional: bool = False

    @property
    def D(self):
        """Number of directions."""
        return 2 if self.bidirectional else 1

    @property
    def hx(self):
        return (self.h0, self.c0) if is_lstm(self.cell) else self.h0

    @property
    def dhx(self):
        return (self.dh_n, self.dc_n) if is_lstm(self.cell) else self.dh_n

    def layer(self, seed=0, **kwargs):
        """A fresh layer for this problem (random init from ``seed``)."""
        return make_layer(self.cell, self.I, self.H, num_layers=self.L, batch_first=self.batch_first,
                          bidirectional=self.bidirectional, dtype=np.dtype(self.dtype).name, seed=seed, **kwargs)


def make_problem(cell, T=5, B=3, I=4, H=5, L=1, batch_first=False, dtype=np.float64, lengths=False, seed=0,
                 bidirectional=False):
    """Random inputs, states and upstream gradients. With ``lengths``, sequence 0 is full length and the
    last one has length 1, the others are random in [1, T]. States are (L*D, B, H) and outputs D*H wide,
    D = 2 when ``bidirectional``."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    lstm = is_lstm(cell)
    shape_x = (B, T, I) if batch_first else (T, B, I)
    D = 2 if bidirectional else 1
    shape_out = (B, T, D * H) if batch_first else (T, B, D * H)

    def rand(shape, scale=1.0):
        return (scale * rng.uniform(-1.0, 1.0, shape)).astype(dtype)

    lens = None
    if lengths:
        lens = rng.integers(1, T + 1, size=B)
        lens[0], lens[-1] = T, 1
    return Problem(cell, T, B, I, H, L, batch_first, dtype,
                   x=rand(shape_x), h0=rand((L * D, B, H), 0.5), c0=rand((L * D, B, H), 0.5) if lstm else None,
                   lengths=lens, dout=rand(shape_out), dh_n=rand((L * D, B, H)),
                   dc_n=rand((L * D, B, H)) if lstm else None, bidirectional=bidirectional)


@dataclass
class Outcome:
    out: np.ndarray
    h_n: np.ndarray
    c_n: np.ndarray | None
    grads: dict  # parameter names, and "x", "h0", "c0"


def forward(layer, p, x=None):
    """``layer(x, hx[, lengths])`` -> (out, h_n, c_n)."""
    x = p.x if x is None else x
    kwargs = {} if p.lengths is None else {"lengths": p.lengths}
    out, state = layer(x, p.hx, **kwargs)
    if is_lstm(p.cell):
        h_n, c_n = state
        return out, h_n, c_n
    return out, state, None


def run_layer(layer, p):
    """Forward and backward through the layer (grads zeroed first); copies of everything."""
    layer.zero_grad()
    out, h_n, c_n = forward(layer, p)
    dx, dstate = layer.backward(p.dout, p.dhx)
    grads = {name: param.grad.copy() for name, param in layer.named_parameters()}
    grads["x"] = np.array(dx)
    if is_lstm(p.cell):
        grads["h0"], grads["c0"] = np.array(dstate[0]), np.array(dstate[1])
    else:
        grads["h0"] = np.array(dstate)
    return Outcome(np.array(out), np.array(h_n), None if c_n is None else np.array(c_n), grads)


def run_reference(p, weights):
    """The same forward and backward in rnnfast.reference (float64), returned in the problem's layout."""
    f64 = lambda a: None if a is None else np.asarray(a, dtype=np.float64)  # noqa: E731
    res = reference.run(p.cell, time_major(f64(p.x), p.batch_first), weights,
                        h0=f64(p.h0), c0=f64(p.c0), lengths=p.lengths,
                        dout=time_major(f64(p.dout), p.batch_first), dh_n=f64(p.dh_n), dc_n=f64(p.dc_n))
    grads = dict(res.grads)
    grads["x"] = time_major(grads["x"], p.batch_first)
    return Outcome(time_major(res.out, p.batch_first), res.h_n, res.c_n, grads)


def loss_of(p, out, h_n, c_n):
    """The scalar whose gradient backward returns, in float64."""
    total = np.sum(np.asarray(out, np.float64) * p.dout) + np.sum(np.asarray(h_n, np.float64) * p.dh_n)
    if c_n is not None:
        total += np.sum(np.asarray(c_n, np.float64) * p.dc_n)
    return float(total)


def assert_close(actual, desired, dtype, what=""):
    """``actual`` (computed in ``dtype``) against a float64 ``desired``, with the tolerance of ``dtype``."""
    tol = TOL[np.dtype(dtype)]
    desired = np.asarray(desired, dtype=np.float64)
    actual = np.asarray(actual)
    assert actual.shape == desired.shape, f"{what}: shape {actual.shape} != {desired.shape}"
    scale = max(1.0, float(np.abs(desired).max(initial=0.0)))
    np.testing.assert_allclose(actual.astype(np.float64), desired, rtol=tol["rtol"],
                               atol=tol["atol"] * scale, err_msg=what)


def assert_outcomes_close(actual, desired, dtype):
    """Outputs, final states and every gradient (the same set of names on both sides)."""
    assert_close(actual.out, desired.out, dtype, "out")
    assert_close(actual.h_n, desired.h_n, dtype, "h_n")
    if desired.c_n is not None:
        assert_close(actual.c_n, desired.c_n, dtype, "c_n")
    assert set(actual.grads) == set(desired.grads)
    for name in desired.grads:
        assert_close(actual.grads[name], desired.grads[name], dtype, f"grad {name}")


def numerical_gradient(loss, arr, eps=FD_EPS):
    """Central differences of ``loss()`` with respect to every entry of ``arr`` (perturbed in place, restored)."""
    assert arr.dtype == np.float64, "finite differences need float64"
    grad = np.zeros(arr.shape)
    flat = arr.reshape(-1)  # a view: writes reach arr
    assert np.shares_memory(flat, arr)
    for j in range(flat.size):
        orig = flat[j]
        flat[j] = orig + eps
        plus = loss()
        flat[j] = orig - eps
        minus = loss()
        flat[j] = orig
        grad.reshape(-1)[j] = (plus - minus) / (2 * eps)
    return grad


@pytest.fixture
def single_threaded_blas():
    """NumPy's BLAS on one thread for the test (use with ``pytestmark = pytest.mark.usefixtures(...)``).

    The reference multiplies tiny matrices, one step at a time; a threaded OpenBLAS hands each of them between
    threads, which on a busy machine costs ~30x the work itself (1.9 s instead of 0.06 s for one reference run
    of T=12, B=161, H=48, 3 layers, at load 7 on 2 cores). rnnfast's kernels hold BLAS to one thread anyway."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture
def restore_threads():
    """Put rnnfast's thread count back after a test that changes it."""
    import rnnfast

    saved = rnnfast.get_num_threads()
    yield
    rnnfast.set_num_threads(saved)
