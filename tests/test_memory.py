"""Long runs do not leak: 10⁴ training steps (forward, backward, clipping, an optimizer step), streaming steps,
and calls that fail validation leave the resident set size flat.

Each loop runs in a fresh subprocess, which reads its RSS from /proc/self/statm after a warm-up (buffers,
caches and allocator pools reach their steady state) and again at the end. A leak of one small array per
call (here at least ~0.5 kB) would grow the RSS by ≥ 5 MB over 10⁴ calls; the bound is 2 MB.
Truncated BPTT's bounded memory is tested in test_tbptt.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import CHILD_CWD, child_env

CALLS = 10_000
WARMUP = 1_000
BOUND = 2**20

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc/self/statm")

PRELUDE = textwrap.dedent("""
    import gc, os, sys
    import numpy as np
    import rnnfast

    rnnfast.set_num_threads(1)
    PAGE = os.sysconf("SC_PAGE_SIZE")

    def rss():
        gc.collect()
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE

    def measure(body, calls, warmup):
        for _ in range(warmup):
            body()
        start = rss()
        for _ in range(calls - warmup):
            body()
        print(rss() - start)
""")

BODIES = {
    # one training step per call, on each cell, bidirectional too
    "train": """
        rng = np.random.default_rng(0)
        models = [rnnfast.LSTM(3, 4, num_layers=2, seed=0), rnnfast.GRU(3, 4, bidirectional=True, seed=0),
                  rnnfast.Elman(3, 4, nonlinearity="relu", dropout=0.5, num_layers=2, seed=0)]
        head = rnnfast.Linear(4, 2, seed=0)
        params = [p for m in models for p in m.parameters()] + head.parameters()
        opt = rnnfast.Adam(params, lr=1e-3)
        x = rng.standard_normal((5, 2, 3)).astype(np.float32)
        y = rng.standard_normal((5, 2, 2)).astype(np.float32)
        lengths = np.array([5, 3])
        i = [0]

        def body():
            m = models[i[0] % 3]
            i[0] += 1
            opt.zero_grad()
            out, _ = m(x, lengths=lengths)
            pred = head(out[..., :4])
            loss, dpred = rnnfast.mse_loss(pred, y, mask=rnnfast.sequence_mask(lengths))
            dout = np.zeros(out.shape, np.float32)
            dout[..., :4] = head.backward(dpred)
            m.backward(dout)
            rnnfast.clip_grad_norm_(params, 1.0)
            opt.step()
    """,
    # streaming inference
    "step": """
        lstm, gru = rnnfast.LSTM(3, 4, num_layers=2, seed=0), rnnfast.GRU(3, 4, seed=0)
        x_t = np.ones((2, 3), np.float32)
        state = [None, None]

        def body():
            _, state[0] = lstm.step(x_t, state[0])
            _, state[1] = gru.step(x_t, state[1])
    """,
    # calls refused by validation (the exception and its traceback must not keep anything alive)
    "errors": """
        lstm = rnnfast.LSTM(3, 4, seed=0)
        bad = [np.zeros((5, 2, 4)), np.zeros((5, 2)), "x", np.zeros((5, 2, 3), complex)]
        i = [0]

        def body():
            try:
                lstm(bad[i[0] % 4], lengths=[9, 9])
            except (ValueError, TypeError):
                pass
            try:
                lstm.backward(np.zeros((1, 1, 1)))
            except (ValueError, TypeError):
                pass
            i[0] += 1
    """,
}


@pytest.mark.parametrize("body", sorted(BODIES))
def test_no_leak_over_ten_thousand_calls(body):
    script = PRELUDE + textwrap.dedent(BODIES[body]) + f"\nmeasure(body, {CALLS}, {WARMUP})\n"
    env = child_env(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                          check=False, cwd=CHILD_CWD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    growth = int(proc.stdout.split()[-1])
    assert growth < BOUND, f"RSS grew by {growth / 2**20:.2f} MB over {CALLS - WARMUP} calls of {body!r}"
