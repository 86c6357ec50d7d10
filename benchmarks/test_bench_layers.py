"""rnnfast's float32 forward pass, training step, streaming step and variable-length batch.

Grid (B, T, I=H) from rnnfast.bench.GRID; the training step is forward + BPTT + parameter gradients for the
loss sum(out * dout). Time only: correctness lives in tests/.
"""
import numpy as np
import pytest

from bench_helpers import (CELLS, GRID, STREAM_SIZE, VARLEN_SHAPE, make_layer, run, shape_id,
                           train_flops, varlen_lengths)


def _data(B, T, H, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, H), dtype=np.float32)      # (T, B, I), I = H
    dout = rng.standard_normal((T, B, H), dtype=np.float32)   # (T, B, H)
    return x, dout


def _train_step(layer, x, dout, lengths=None):
    def step():
        layer.zero_grad()
        layer(x, lengths=lengths)
        layer.backward(dout)
    return step


@pytest.mark.parametrize("shape", GRID, ids=shape_id)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kind", ["forward", "train"])
def test_grid(benchmark, kind, cell, shape):
    """The forward pass, or the training step (forward + BPTT + parameter gradients)."""
    B, T, H = shape
    layer = make_layer(cell, H, H)
    x, dout = _data(B, T, H)
    fn = (lambda: layer(x)) if kind == "forward" else _train_step(layer, x, dout)
    gflop = train_flops(cell, B, T, H, H) / (3e9 if kind == "forward" else 1e9)
    run(benchmark, fn, group=f"{kind} {cell}", gflop=gflop)


@pytest.mark.parametrize("cell", CELLS)
def test_streaming_step(benchmark, cell):
    """One ``step`` at B = 1, carrying the state from call to call (time per timestep)."""
    layer = make_layer(cell, STREAM_SIZE, STREAM_SIZE)
    x_t = np.random.default_rng(0).standard_normal((1, STREAM_SIZE), dtype=np.float32)
    state = [None]

    def step():
        _, state[0] = layer.step(x_t, state[0])

    run(benchmark, step, group="streaming step B=1", I=STREAM_SIZE, H=STREAM_SIZE)


@pytest.mark.parametrize("padded", [False, True], ids=["lengths", "padded"])
@pytest.mark.parametrize("cell", CELLS)
def test_varlen_train_step(benchmark, cell, padded):
    """Training step on a batch with lengths spread over [T/4, T]; ``padded`` ignores the lengths."""
    B, T, H = VARLEN_SHAPE
    layer = make_layer(cell, H, H)
    x, dout = _data(B, T, H)
    lengths = None if padded else varlen_lengths(B, T)
    run(benchmark, _train_step(layer, x, dout, lengths),
        group=f"varlen train {cell} {shape_id(VARLEN_SHAPE)}")


@pytest.mark.parametrize("what", ["mean", "max", "lastmeanmax"])
def test_readout_train_step(benchmark, what):
    """A pooled readout's forward + backward over a ragged estimator-sized batch (B=16, T=32, H=64), as
    SequenceClassifier runs it once per update (its default readout is "lastmeanmax")."""
    import rnnfast

    B, T, H = 16, 32, 64
    out, _ = _data(B, T, H)
    h_n = np.zeros((1, B, H), np.float32)
    lengths = varlen_lengths(B, T)
    readout = rnnfast.Readout(what)

    def step():
        y = readout((out, (h_n, h_n)), lengths=lengths)
        readout.backward(np.ones_like(y))

    run(benchmark, step, group="readout train B=16 T=32 H=64")
