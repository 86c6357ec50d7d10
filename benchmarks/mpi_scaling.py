"""Data-parallel scaling on this machine: one training update on 1 rank against 2 ranks (mpiexec).

    python benchmarks/mpi_scaling.py                   # LSTM I=32 H=128, T=50, B=64 (the docs' example)
    python benchmarks/mpi_scaling.py --shape 10x8 --rounds 5

Needs mpi4py and an mpiexec (pip install ".[mpi]"). Each configuration (ranks x threads per rank: 1x1,
1x2, 2x1) is a fresh ``mpiexec -n P`` run of this file in --worker mode, which trains a many-to-one LSTM
with a 10-class head through rnnfast.distributed.DataParallel (each rank runs its shard of the global
batch B, one Allreduce per update, then clipping and Adam) and reports from rank 0:

- ms per update (median over timed updates, after a barrier, so both ranks' slowest counts);
- ms of each update spent in ``average_gradients_`` (the Allreduce plus waiting for the slower rank);
- ms of a bare Allreduce of the same gradient buffer (the communication cost alone).

The configurations take turns over --rounds rounds and the median round counts (the machine may be
shared). Ratios: 1x1 / 2x1 is the speedup from a second rank; 1x2 / 2x1 compares two ranks with two
threads in one rank on the same cores.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np


def worker(args: argparse.Namespace) -> None:
    import rnnfast
    from rnnfast import distributed

    comm = distributed.get_comm("auto")
    rnnfast.set_num_threads(args.threads)
    T, B = args.T, args.B
    lstm = rnnfast.LSTM(args.input, args.hidden, seed=0)
    head = rnnfast.Linear(args.hidden, 10, seed=0)
    params = lstm.parameters() + head.parameters()
    dp = distributed.DataParallel(params, comm)
    opt = rnnfast.Adam(params, lr=1e-3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, args.input)).astype(np.float32)      # (T, B, I) the global batch
    labels = rng.integers(0, 10, size=B)
    mine = dp.shard(np.arange(B))
    xm, ym = np.ascontiguousarray(x[:, mine]), labels[mine]
    dh = np.zeros((1, len(mine), args.hidden), np.float32)

    def update() -> float:
        out, (h_n, _) = lstm(xm)
        loss, dlogits = rnnfast.cross_entropy(head(h_n[-1]), ym)
        dh[-1] = head.backward(dlogits)
        lstm.backward(None, (dh, None))
        t0 = time.perf_counter()
        dp.average_gradients_(float(loss), float(len(ym)))
        waited = time.perf_counter() - t0
        rnnfast.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        return waited

    for _ in range(2):
        update()
    steps, waits = [], []
    for _ in range(args.updates):
        comm.barrier()
        t0 = time.perf_counter()
        waits.append(update())
        comm.barrier()
        steps.append(time.perf_counter() - t0)
    bare = []
    buf = dp.buffer.copy()
    for _ in range(50):
        comm.barrier()
        t0 = time.perf_counter()
        comm.allreduce_sum_(buf)
        bare.append(time.perf_counter() - t0)
    if comm.rank == 0:
        print(json.dumps({"ms_update": 1e3 * statistics.median(steps),
                          "ms_in_average": 1e3 * statistics.median(waits),
                          "ms_allreduce": 1e3 * statistics.median(bare), "grad_bytes": dp.grads.nbytes,
                          "n_params": int(dp.grads.size), "threads": rnnfast.get_num_threads(),
                          "ranks": comm.size}))


def run(ranks: int, threads: int, args: argparse.Namespace, mpiexec: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    cmd = [mpiexec, "-n", str(ranks), sys.executable, os.path.abspath(__file__), "--worker",
           "--threads", str(threads), "--shape", f"{args.T}x{args.B}", "--input", str(args.input),
           "--hidden", str(args.hidden), "--updates", str(args.updates)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="50x64", help="TxB: timesteps and global batch (default 50x64)")
    parser.add_argument("--input", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--updates", type=int, default=10, help="timed updates per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.T, args.B = (int(v) for v in args.shape.lower().split("x"))
    if args.worker:
        return worker(args)

    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if mpiexec is None:
        raise SystemExit("no mpiexec: pip install 'rnnfast[mpi]'")
    configs = [(1, 1), (1, 2), (2, 1)]
    results: dict[tuple[int, int], list[dict]] = {c: [] for c in configs}
    for _ in range(args.rounds):
        for c in configs:
            results[c].append(run(*c, args, mpiexec))
    med = {c: {k: statistics.median(r[k] for r in rs) for k in ("ms_update", "ms_in_average", "ms_allreduce")}
           for c, rs in results.items()}
    info = results[(2, 1)][0]
    flops = 3 * 2 * args.T * args.B * 4 * args.hidden * (args.input + args.hidden)
    print(f"LSTM I={args.input} H={args.hidden}, T={args.T}, global batch B={args.B}, 10-class head, float32: "
          f"{info['n_params']} parameters, gradient {info['grad_bytes'] / 1e3:.0f} kB; "
          f"~{flops / 1e9:.2f} GFLOP per update; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'ranks x threads':>16} {'ms/update':>10} {'in allreduce':>13} {'bare allreduce':>15}")
    for (p, t), m in med.items():
        comm = f"{m['ms_in_average']:13.2f} {m['ms_allreduce']:15.3f}" if p > 1 else f"{'-':>13} {'-':>15}"
        print(f"{p:>10} x {t:<4} {m['ms_update']:10.2f} {comm}")
    one, two_threads, two_ranks = (med[c]["ms_update"] for c in configs)
    print(f"speedup of 2 ranks x 1 thread over 1 rank x 1 thread: {one / two_ranks:.2f}x")
    print(f"2 ranks x 1 thread against 1 rank x 2 threads (same cores): {two_threads / two_ranks:.2f}x")
    print(f"bare allreduce against the compute per rank (1x1 time / 2): "
          f"{med[(2, 1)]['ms_allreduce'] / (one / 2):.1%} (a ring allreduce moves 2(p-1)/p x "
          f"{info['grad_bytes'] / 1e3:.0f} kB per rank per update)")


if __name__ == "__main__":
    main()
