"""The Jordan kernel (csrc/_jordan.pxi) against the Elman kernel at equal sizes, side by side in one run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/jordan_vs_elman.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/jordan_vs_elman.py --shapes 64x100x64x128 --threads 1,2

A shape is BxTxIxH, and the Jordan network's output size is O = H. Three float32 training steps (forward and
backward, the gradient of Σ y·dy) take turns within every round, so they see the same load:
  elman          rnnfast.Elman(I, H): per step one (B, H) x (H, H) product;
  elman+linear   rnnfast.Elman(I, H) then rnnfast.Linear(H, O) on every step: the same products as Jordan's,
                 the head outside the recurrence (one GEMM over all T·B rows);
  jordan         rnnfast.Jordan(I, H, O): per step (B, O) x (O, H) and (B, H) x (H, O), the head inside.
Prints the medians (ms) of forward and backward, and jordan's time over each of the others'.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import rnnfast
from training_loops import blas_info, cpu_model

SHAPES = "32x100x64x64,64x100x64x128,32x50x64x256,16x200x32x64"


def _models(B: int, T: int, I: int, H: int):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    elman = rnnfast.Elman(I, H, seed=0)
    head = rnnfast.Linear(H, H, seed=1)
    jordan = rnnfast.Jordan(I, H, H, seed=0)

    def run_elman():
        t0 = time.perf_counter()
        out, _ = elman(x)
        t1 = time.perf_counter()
        elman.backward(dy)
        return t1 - t0, time.perf_counter() - t1

    def run_elman_linear():
        t0 = time.perf_counter()
        out, _ = elman(x)
        head(out)
        t1 = time.perf_counter()
        elman.backward(head.backward(dy))
        return t1 - t0, time.perf_counter() - t1

    def run_jordan():
        t0 = time.perf_counter()
        jordan(x)
        t1 = time.perf_counter()
        jordan.backward(dy)
        return t1 - t0, time.perf_counter() - t1

    return {"elman": run_elman, "elman+linear": run_elman_linear, "jordan": run_jordan}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=SHAPES, help="comma-separated BxTxIxH (O = H)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"CPU: {cpu_model()}; load average {' '.join(f'{v:.2f}' for v in load)} at the start")
    print("BLAS: " + "; ".join(blas_info()))
    print(f"median of {args.rounds} rounds, ms per float32 training step (forward / backward); O = H")
    print(f"{'threads':>7s} {'B':>3s} {'T':>4s} {'I':>4s} {'H':>4s}  {'elman':>13s}  {'elman+linear':>13s}  "
          f"{'jordan':>13s}  {'j/elman':>7s}  {'j/e+lin':>7s}")
    for threads in (int(t) for t in args.threads.split(",")):
        rnnfast.set_num_threads(threads)
        for shape in args.shapes.split(","):
            B, T, I, H = (int(v) for v in shape.split("x"))
            fns = _models(B, T, I, H)
            times: dict = {name: [] for name in fns}
            for fn in fns.values():             # warm-up: workspaces, page faults
                fn()
            for _ in range(args.rounds):
                for name, fn in fns.items():
                    fn()                        # untimed, then timed, in the same mode
                    times[name].append(fn())
            med = {name: tuple(statistics.median(v[i] for v in ts) for i in range(2)) for name, ts in times.items()}
            total = {name: f + b for name, (f, b) in med.items()}
            cols = "  ".join(f"{1e3 * med[n][0]:6.2f}/{1e3 * med[n][1]:<6.2f}" for n in fns)
            print(f"{threads:7d} {B:3d} {T:4d} {I:4d} {H:4d}  {cols}  {total['jordan'] / total['elman']:7.2f}  "
                  f"{total['jordan'] / total['elman+linear']:7.2f}")


if __name__ == "__main__":
    main()
