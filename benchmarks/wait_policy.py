"""How long idle OpenMP workers should spin: rnnfast's default (GOMP_SPINCOUNT=10000, set around its import)
against sleeping at once (OMP_WAIT_POLICY=PASSIVE) and other GOMP_SPINCOUNT settings, on an idle machine and
with busy processes beside it.

    python benchmarks/wait_policy.py                   # LSTM 32x100x64, 2 threads, 0 and 3 busy processes
    python benchmarks/wait_policy.py --busy 0,6 --spincounts 1000,10000

Each setting runs in a fresh interpreter (libgomp reads the variables once, when it loads), which times a
loop of training steps and prints the median and 90th percentile. The busy processes are plain Python
loops, started before and stopped after each group of runs.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from _busy import busy_processes

CHILD = r"""
import time, numpy as np, rnnfast
rnnfast.set_num_threads({threads})
layer = rnnfast.LSTM({H}, {H}, seed=0)
x = np.random.default_rng(0).standard_normal(({T}, {B}, {H})).astype(np.float32)     # (T, B, I)
for _ in range(5):
    layer(x); layer.backward(x)
times = []
for _ in range({steps}):
    t0 = time.perf_counter(); layer(x); layer.backward(x); times.append(time.perf_counter() - t0)
print(1e3 * np.median(times), 1e3 * np.percentile(times, 90))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="32x100x64", help="BxTxH of the LSTM (I = H)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--busy", default="0,3", help="comma-separated numbers of busy processes")
    p.add_argument("--spincounts", default="200000", help="comma-separated GOMP_SPINCOUNT values to try")
    args = p.parse_args()
    B, T, H = (int(v) for v in args.shape.split("x"))
    code = CHILD.format(threads=args.threads, B=B, T=T, H=H, steps=args.steps)
    settings = [("default (spin 10000)", {}), ("OMP_WAIT_POLICY=PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"})]
    settings += [(f"GOMP_SPINCOUNT={n}", {"GOMP_SPINCOUNT": n}) for n in args.spincounts.split(",")]
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    print(f"LSTM B={B} T={T} H={H}, {args.threads} threads, ms per training step (median, p90)")
    for busy in (int(n) for n in args.busy.split(",")):
        with busy_processes(busy):
            time.sleep(0.5)
            for name, env in settings:
                out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, check=True,
                                     capture_output=True, text=True).stdout.split()
                print(f"busy {busy}  {name:24s} {float(out[0]):7.2f} {float(out[1]):7.2f}")


if __name__ == "__main__":
    main()
