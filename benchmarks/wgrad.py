"""The weight-gradient GEMMs dW = Σ_t dA_tᵀ x_t (csrc/rnnfast_wgrad.h) against BLAS, side by side.

    python benchmarks/wgrad.py                            # the grid's big shapes, 2 threads
    python benchmarks/wgrad.py --shapes lstm:64x100x256 --threads 2 --rounds 15

Prints the median forward and backward time (ms) of a float32 training step with the weight gradients from
BLAS and from rnnfast_wgrad.h (the default where the CPU has AVX-512), and the backward ratio. The two take
turns within every round, so they see the same load. The kernel option ``weight_gradients``
(`rnnfast.kernel_options`) forces each.
"""
from __future__ import annotations

from bench_helpers import alternate_modes, cell_problem, mode_script_args, parse_cell_shapes

SHAPES = ("lstm:64x100x128,lstm:64x100x256,lstm:32x50x512,gru:64x100x256,gru:32x50x512,elman:64x100x256,"
          "elman:32x50x512")


def main() -> None:
    args = mode_script_args(__doc__, SHAPES)
    modes = {"blas": dict(weight_gradients="blas"), "rnnfast_wgrad": dict(weight_gradients="auto")}
    print(f"threads {args.threads}; median of {args.rounds} rounds, ms per float32 training step")
    print(f"{'cell':5s} {'B':>3s} {'T':>4s} {'H':>5s}  {'blas fwd/bwd':>19s}  {'rnnfast_wgrad fwd/bwd':>21s}"
          f"  {'bwd ratio':>9s}")
    for cell, B, T, H in parse_cell_shapes(args.shapes):
        layer, x, dout = cell_problem(cell, B, T, H)
        times = alternate_modes(layer, x, dout, modes, args.rounds)
        (fb, bb), (fw, bw) = times["blas"], times["rnnfast_wgrad"]
        print(f"{cell:5s} {B:3d} {T:4d} {H:5d}  {1e3 * fb:9.1f}/{1e3 * bb:<9.1f}  {1e3 * fw:11.1f}/{1e3 * bw:<9.1f}"
              f"  {bb / bw:9.3f}")


if __name__ == "__main__":
    main()
