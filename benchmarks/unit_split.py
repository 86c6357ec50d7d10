"""The time loop's ways to share work between threads, side by side: the batch split ("rows"), the hidden-unit
split ("units", csrc/rnnfast_team.h), backward's "mixed" plan (pointwise pass by rows, product by units; the
forward then splits by units), and the choice the kernels make by default.

    python benchmarks/unit_split.py                       # the shapes below, 2 threads
    python benchmarks/unit_split.py --shapes gru:4x50x1024,lstm:32x50x512 --threads 2

Prints the median forward and backward time (ms) of a float32 training step of each mode. The modes take
turns within every round, so they see the same load. The kernel options ``unit_split_bytes`` and
``unit_split_backward_h_per_row`` (`rnnfast.kernel_options`) force each mode.
"""
from __future__ import annotations

from bench_helpers import alternate_modes, cell_problem, mode_script_args, parse_cell_shapes

SHAPES = "gru:4x50x1024,lstm:8x20x1024,gru:16x50x512,gru:32x50x512,lstm:32x50x512,gru:64x100x256"
MODES = {  # KernelOptions fields of each mode; "default": the options as they are
    "rows": dict(unit_split_bytes=1 << 62, unit_split_backward_h_per_row=1 << 30),
    "units": dict(unit_split_bytes=0, unit_split_backward_h_per_row=0),
    "mixed": dict(unit_split_bytes=0, unit_split_backward_h_per_row=1 << 30),
    "default": {},
}


def main() -> None:
    args = mode_script_args(__doc__, SHAPES)
    modes = MODES
    print(f"threads {args.threads}; median of {args.rounds} rounds, ms per float32 training step")
    print(f"{'cell':5s} {'B':>3s} {'T':>4s} {'H':>5s}  " + "  ".join(f"{m + ' fwd/bwd':>19s}" for m in modes))
    for cell, B, T, H in parse_cell_shapes(args.shapes):
        layer, x, dout = cell_problem(cell, B, T, H)
        times = alternate_modes(layer, x, dout, modes, args.rounds)
        cols = "  ".join(f"{1e3 * f:9.1f}/{1e3 * b:<9.1f}" for f, b in times.values())
        print(f"{cell:5s} {B:3d} {T:4d} {H:5d}  {cols}")


if __name__ == "__main__":
    main()
