"""Shared pieces of the benchmark suite: the workloads (from rnnfast.bench, so that the suite and
``python -m rnnfast.bench`` measure the same things) and a runner with modest rounds.
"""
import math
import time

import numpy as np

import rnnfast
from rnnfast.bench import CELLS, GRID, STREAM_SIZE, VARLEN_SHAPE, train_flops, varlen_lengths  # noqa: F401
from rnnfast.bench import make_layer  # noqa: F401

ROUND_TIME = 0.005      # s: calls per round are batched up to this, so tiny steps are timeable
TOTAL_TIME = 0.4        # s: the rounds of one benchmark add up to about this
MIN_ROUNDS, MAX_ROUNDS = 3, 25


def shape_id(shape):
    B, T, H = shape
    return f"B{B}-T{T}-H{H}"


def run(benchmark, fn, *, group, **info):
    """Time ``fn`` with modest rounds: each round batches calls up to ROUND_TIME, rounds up to TOTAL_TIME."""
    fn()                                                    # warm-up (workspaces, caches, page faults)
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    iterations = max(1, math.ceil(ROUND_TIME / one))
    rounds = min(MAX_ROUNDS, max(MIN_ROUNDS, int(TOTAL_TIME / (one * iterations))))
    benchmark.group = group
    benchmark.extra_info.update(threads=rnnfast.get_num_threads(), **info)
    benchmark.pedantic(fn, rounds=rounds, iterations=iterations, warmup_rounds=1)


def alternate_modes(layer, x, dout, modes, rounds, cpu_time=False, per_round=False):
    """{mode: (forward seconds, backward seconds)}, medians of ``rounds`` float32 training steps of ``layer``
    on x (T, B, I) and dout (T, B, H) under each mode, where ``modes`` maps a name to the kernel options
    (``rnnfast.KernelOptions`` fields) that make the mode. The modes take turns within every round,
    so they see the same load; each timed step follows an untimed one in the same mode. ``cpu_time``: the
    process's CPU time instead of wall time (for one thread); ``per_round``: also return {mode: (forward
    times, backward times)} of every round, for per-round ratios."""
    from rnnfast import kernel_options

    clock = time.process_time if cpu_time else time.perf_counter
    times = {m: ([], []) for m in modes}
    for _ in range(rounds):
        for m, options in modes.items():
            with kernel_options(**options):
                layer(x)
                layer.backward(dout)
                t0 = clock()
                layer(x)
                t1 = clock()
                layer.backward(dout)
                t2 = clock()
            times[m][0].append(t1 - t0)
            times[m][1].append(t2 - t1)
    medians = {m: (float(np.median(f)), float(np.median(b))) for m, (f, b) in times.items()}
    if per_round:
        return medians, {m: (np.array(f), np.array(b)) for m, (f, b) in times.items()}
    return medians


def mode_script_args(doc, shapes):
    """The command line of a mode comparison script (--shapes, --threads, --rounds), with rnnfast's thread
    count set from it."""
    import argparse

    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--shapes", default=shapes, help=f"comma-separated cell:BxTxH (I = H), default {shapes}")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args()
    rnnfast.set_num_threads(args.threads)
    return args


def parse_cell_shapes(text):
    """[(cell, B, T, H)] from comma-separated cell:BxTxH."""
    specs = []
    for spec in text.split(","):
        cell, shape = spec.split(":")
        B, T, H = (int(v) for v in shape.split("x"))
        specs.append((cell, B, T, H))
    return specs


def cell_problem(cell, B, T, H):
    """A layer (I = H, seed 0) and float32 x (T, B, I), dout (T, B, H) for a mode comparison."""
    layer = {"lstm": rnnfast.LSTM, "gru": rnnfast.GRU, "elman": rnnfast.Elman}[cell](H, H, seed=0)
    rng = np.random.default_rng(0)
    return layer, rng.standard_normal((T, B, H), dtype=np.float32), rng.standard_normal((T, B, H), dtype=np.float32)
