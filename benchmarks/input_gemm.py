"""The input side's products inside the time loop or as BLAS GEMMs, side by side (``KernelOptions.input_gemm``):
"blas" (x W_ihᵀ over all rows before the loop, dx = dA W_ih after it, by BLAS), "step" (each step's rows by the
packed micro-kernel inside the loop, where the loop splits the rows) and the kernels' own choice ("auto": a
calibration at first use per shape, rnnfast._kernels.input_gemm_choice).

    python benchmarks/input_gemm.py                                   # the shapes below, 2 threads
    python benchmarks/input_gemm.py --shapes lstm:16x200x128 --threads 1

Prints the median forward and backward time (ms) of a float32 training step of each mode, and step/blas, the
median of the per-round ratios of whole steps. The modes take turns within every round, so they see the same
load; with --threads 1 the times are the process's CPU time, which other processes' load disturbs less.
"""
from __future__ import annotations

import numpy as np

from bench_helpers import alternate_modes, cell_problem, mode_script_args, parse_cell_shapes

SHAPES = "lstm:64x100x128,lstm:16x200x128,gru:64x100x128,elman:64x100x128,lstm:32x100x64"
MODES = {"blas": dict(input_gemm="blas"), "step": dict(input_gemm="step"), "auto": {}}


def main() -> None:
    args = mode_script_args(__doc__, SHAPES)
    print(f"threads {args.threads}; median of {args.rounds} rounds, ms per float32 training step "
          f"({'CPU' if args.threads == 1 else 'wall'} time)")
    print(f"{'cell':5s} {'B':>3s} {'T':>4s} {'H':>5s}  " + "  ".join(f"{m + ' fwd/bwd':>17s}" for m in MODES)
          + "  step/blas")
    for cell, B, T, H in parse_cell_shapes(args.shapes):
        layer, x, dout = cell_problem(cell, B, T, H)
        times, rounds = alternate_modes(layer, x, dout, MODES, args.rounds, cpu_time=args.threads == 1,
                                        per_round=True)
        cols = "  ".join(f"{1e3 * f:8.2f}/{1e3 * b:<8.2f}" for f, b in times.values())
        ratio = np.median(np.add(*rounds["step"]) / np.add(*rounds["blas"]))
        print(f"{cell:5s} {B:3d} {T:4d} {H:5d}  {cols}  {ratio:9.3f}")


if __name__ == "__main__":
    main()
