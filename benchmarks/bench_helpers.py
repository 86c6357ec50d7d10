"""Shared pieces of the benchmark suite: the workloads (from rnnfast.bench, so that the suite and
``python -m rnnfast.bench`` measure the same things) and a runner with modest rounds.
"""
import math
import time

import rnnfast
from rnnfast.bench import CELLS, GRID, STREAM_SIZE, VARLEN_SHAPE, train_flops, varlen_lengths  # noqa: F401
from rnnfast.bench import _make_layer as make_layer  # noqa: F401

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
