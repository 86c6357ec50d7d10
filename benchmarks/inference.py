"""The inference forward against the training forward and torch (issue 17, the inference item).

For each shape (T = 100, float32, LSTM and GRU) and thread count, side by side in one run (rnnfast.bench's
alternating rounds, the median round):
- rnnfast training forward: ``layer(x)`` (keeps the activations BPTT needs);
- rnnfast inference forward: ``with rnnfast.no_grad(): layer(x)`` (keeps nothing);
- torch: ``module(x)`` under ``torch.inference_mode()``, same weights and thread count.
Prints milliseconds per forward and the ratios training / inference (target: >= 1.3 at H >= 128) and
torch / inference. Benchmark commands unset OpenBLAS's tuning variables:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/inference.py [--threads 2] [--repeat 7]
"""
import argparse
import os

import numpy as np

import rnnfast
from rnnfast.bench import (Contender, _import_torch, _make_torch, _ThreadSetter, blas_kernels, cpu_name, make_layer,
                           measure)

SHAPES = ((32, 64, 128), (64, 128, 128), (32, 256, 256), (64, 256, 256), (32, 128, 512), (64, 256, 512))  # (B, I, H)
T = 100


def contenders(cell: str, B: int, I: int, H: int, threads: int, torch) -> list:
    layer = make_layer(cell, I, H)
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)

    def inference():
        with rnnfast.no_grad():
            layer(x)

    out = [Contender("training", lambda: layer(x), threads), Contender("inference", inference, threads)]
    if torch is not None:
        mod = _make_torch(torch, cell, I, H, layer.state_dict())
        xt = torch.from_numpy(x)

        def torch_forward():
            with torch.inference_mode():
                mod(xt)
        out.append(Contender("torch", torch_forward, threads))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[2])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--cells", nargs="+", default=["lstm", "gru"])
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()
    torch = _import_torch(args.no_torch)
    setter = _ThreadSetter(torch)
    print(f"# {cpu_name()}, BLAS {', '.join(blas_kernels()) or 'n/a'}, load average {os.getloadavg()[0]:.2f}, "
          f"rnnfast {rnnfast.__version__}, torch {getattr(torch, '__version__', 'n/a')}")
    print(f"{'cell':5} {'thr':>3} {'B':>3} {'I':>4} {'H':>4} | {'train ms':>9} {'infer ms':>9} {'torch ms':>9} | "
          f"{'train/infer':>11} {'torch/infer':>11}")
    for threads in args.threads:
        for cell in args.cells:
            for B, I, H in SHAPES:
                cs = contenders(cell, B, I, H, threads, torch)
                measure(cs, setter, args.repeat, args.min_time)
                ms = {c.name: c.median * 1e3 for c in cs}
                tor = ms.get("torch", float("nan"))
                print(f"{cell:5} {threads:>3} {B:>3} {I:>4} {H:>4} | {ms['training']:9.2f} {ms['inference']:9.2f} "
                      f"{tor:9.2f} | {ms['training'] / ms['inference']:11.2f} {tor / ms['inference']:11.2f}",
                      flush=True)
    print(f"# load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
