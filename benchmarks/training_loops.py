"""Whole training loops, rnnfast against PyTorch: recurrent layer, head, loss, clipping and optimizer per step.

    python benchmarks/training_loops.py                         # all loops, 2 threads, every process layout
    python benchmarks/training_loops.py --loops charlm --modes separate --threads 1

Each loop is built twice, with the same initial weights (drawn by NumPy, loaded into both), the same batches
in the same order and the same hyper-parameters, and the first step's loss is checked to agree (so both
time the same work). Loops (float32):

- ``adding``: adding problem, LSTM(2, 64) + Linear(64, 1) on the last step, ½·MSE, T=100, B=64, Adam, clip 1;
- ``charlm``: char-level LM, one-hot 127 → LSTM(127, 128) → Linear(128, 127) per step → cross-entropy,
  T=64, B=32, Adam, clip 5;
- ``digits``: sequential digits (scikit-learn's 8×8 digits, one pixel a step), LSTM(1, 64) + Linear(64, 10)
  on the last step → cross-entropy, T=64, B=32, Adam, clip 1;
- ``gru``: GRU(32, 128) + Linear(128, 32) per step, ½·MSE against the next input, T=100, B=32, Adam, clip 1.

A step is ``zero_grad``, forward, head, loss, backward (head then layer), ``clip_grad_norm_`` and
``optimizer.step()``, as a user writes it (rnnfast's losses return the gradient; torch's ``loss.backward()``;
torch's Adam with ``fused=True``, its fastest on CPU and the same update, 3-5x faster a step than its default).
"On the last step" is the final state in both: ``head(h_n[-1])``, and rnnfast's layer backpropagates from
``dstate`` alone (``backward(None, dstate)``: no (T, B, H) array of zeros for dL/dout).
The input is data in both: torch's ``x`` does not require grad, so autograd skips dL/dx; rnnfast's layer is told
the same (``backward(..., input_grad=False)``). Both get the same dense float32 arrays (char-LM: one-hot rows,
which rnnfast's kernels detect as sparse and multiply by their nonzeros only; torch multiplies them densely).
Both frameworks run at ``--threads`` (``rnnfast.set_num_threads``, ``torch.set_num_threads``); NumPy's BLAS is
left at its defaults, as a user has it. Process layouts (``--modes``): ``separate`` (each framework in its own
fresh process), ``torch-first`` and ``rnnfast-first`` (both in one process, imported in that order; they then
take turns). Two timings per framework, ms per step, medians:

- ``b2b``: back-to-back steps (after warm-up steps), the median step;
- ``burst``: bursts of ``--burst-steps`` steps, each after ``--pause`` idle seconds, the median over bursts of
  a burst's time per step (the wake-up from idle, as in an interactive session or a loop with data loading
  between steps, is charged to its burst; before 2026-12-07 the median step of all bursts, which left it out).

The header names the CPU, the thread count, the versions and the BLAS libraries (threadpoolctl: kernel,
threads) seen in the worker processes. ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` change OpenBLAS's kernel;
the header says whether they are set (unset them in the benchmark command only, e.g.
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/training_loops.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from _busy import busy_processes

LOOPS = {
    # name: (cell, I, H, O, T, B, head on "last" step or "all" steps, loss, clip, lr)
    "adding": ("lstm", 2, 64, 1, 100, 64, "last", "mse", 1.0, 1e-3),
    "charlm": ("lstm", 127, 128, 127, 64, 32, "all", "ce", 5.0, 2e-3),
    "digits": ("lstm", 1, 64, 10, 64, 32, "last", "ce", 1.0, 1e-3),
    "gru": ("gru", 32, 128, 32, 100, 32, "all", "mse", 1.0, 1e-3),
}
DESCRIPTION = {
    "adding": "adding, LSTM(2,64)+Linear, T=100 B=64",
    "charlm": "char-LM, 127→LSTM 128→Linear→CE, T=64 B=32",
    "digits": "digits, LSTM(1,64)+Linear→CE, T=64 B=32",
    "gru": "GRU(32,128)+Linear per step, T=100 B=32",
}
N_BATCHES = 8                       # distinct batches, cycled in the same order by both frameworks
MODES = ("separate", "torch-first", "rnnfast-first")


# ------------------------------------------------------------------------------------------ the problems
def problem(name, np):
    """(weights, batches) of a loop: weights under torch's names, batches [(x (T, B, I), target)]."""
    cell, I, H, O, T, B, head, loss, _, _ = LOOPS[name]
    rng = np.random.default_rng(17)
    G = {"lstm": 4, "gru": 3}[cell]
    k = 1 / np.sqrt(H)
    w = {"weight_ih_l0": rng.uniform(-k, k, (G * H, I)), "weight_hh_l0": rng.uniform(-k, k, (G * H, H)),
         "bias_ih_l0": rng.uniform(-k, k, G * H), "bias_hh_l0": rng.uniform(-k, k, G * H)}
    k = 1 / np.sqrt(H)
    w.update({"head.weight": rng.uniform(-k, k, (O, H)), "head.bias": rng.uniform(-k, k, O)})
    w = {n: v.astype(np.float32) for n, v in w.items()}
    batches = []
    if name == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = (X / 16.0).astype(np.float32)
        order = rng.permutation(len(X))
    for i in range(N_BATCHES):
        if name == "adding":                       # (value, marker) pairs; the target is the marked sum
            x = np.zeros((T, B, 2), np.float32)
            x[..., 0] = rng.random((T, B))
            for b in range(B):
                x[rng.choice(T, 2, replace=False), b, 1] = 1
            target = (x[..., 0] * x[..., 1]).sum(0)[:, None].astype(np.float32)          # (B, 1)
        elif name == "charlm":                     # next-character prediction on a random character stream
            chars = rng.integers(0, I, (T + 1, B))
            x = np.eye(I, dtype=np.float32)[chars[:-1]]                                   # (T, B, 127)
            target = chars[1:].astype(np.int64)                                           # (T, B)
        elif name == "digits":
            idx = order[i * B:(i + 1) * B]
            x = np.ascontiguousarray(X[idx].T[:, :, None])                                # (64, B, 1)
            target = y[idx].astype(np.int64)                                              # (B,)
        else:                                      # gru: predict the next input vector
            seq = rng.standard_normal((T + 1, B, I)).astype(np.float32)
            x, target = np.ascontiguousarray(seq[:-1]), np.ascontiguousarray(seq[1:])
        batches.append((x, target))
    return w, batches


# ------------------------------------------------------------------------------------------ the two loops
def _no_mark(phase):
    """A step's ``mark(phase)`` when its phases are not timed (``--phases`` passes a recorder)."""


def rnnfast_loop(name, np):
    import rnnfast

    cell, I, H, O, T, B, head_on, loss_name, clip, lr = LOOPS[name]
    weights, batches = problem(name, np)
    layer = (rnnfast.LSTM if cell == "lstm" else rnnfast.GRU)(I, H)
    head = rnnfast.Linear(H, O)
    layer.load_state_dict({k: v for k, v in weights.items() if not k.startswith("head.")})
    head.load_state_dict({k[5:]: v for k, v in weights.items() if k.startswith("head.")})
    params = layer.parameters() + head.parameters()
    opt = rnnfast.Adam(params, lr=lr)
    loss_fn = rnnfast.mse_loss if loss_name == "mse" else rnnfast.cross_entropy
    i = [0]

    def step(mark=_no_mark):
        x, target = batches[i[0] % N_BATCHES]
        i[0] += 1
        opt.zero_grad()
        mark("zero_grad")
        out, state = layer(x)                                       # (T, B, H), h_n (1, B, H) (LSTM: (h_n, c_n))
        h_n = state[0] if cell == "lstm" else state
        mark("layer forward")
        y = head(h_n[-1] if head_on == "last" else out)             # many-to-one: the final state
        mark("head forward")
        loss, dy = loss_fn(y, target)
        mark("loss")
        dh = head.backward(dy)
        mark("head backward")
        if head_on == "last":                                       # no dL/dout: only h_n is scored
            dh_n = np.zeros(h_n.shape, h_n.dtype)
            dh_n[-1] = dh
            layer.backward(None, (dh_n, None) if cell == "lstm" else dh_n, input_grad=False)
        else:
            layer.backward(dh, input_grad=False)                    # x is data: no dL/dx, as in torch
        mark("layer backward")
        rnnfast.clip_grad_norm_(params, clip)
        mark("clip")
        opt.step()
        mark("optimizer")
        return loss

    return step


def torch_loop(name, np):
    import torch

    cell, I, H, O, T, B, head_on, loss_name, clip, lr = LOOPS[name]
    weights, batches = problem(name, np)
    layer = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(I, H)
    head = torch.nn.Linear(H, O)
    with torch.no_grad():
        for k, v in weights.items():
            (head if k.startswith("head.") else layer).get_parameter(k.removeprefix("head.")).copy_(
                torch.from_numpy(v))
    params = list(layer.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=lr, fused=True)         # torch's fastest Adam on CPU, the same update
    tb = [(torch.from_numpy(x), torch.from_numpy(t)) for x, t in batches]
    i = [0]

    def step(mark=_no_mark):
        x, target = tb[i[0] % N_BATCHES]
        i[0] += 1
        opt.zero_grad()
        mark("zero_grad")
        out, state = layer(x)
        h_n = state[0] if cell == "lstm" else state
        mark("layer forward")
        y = head(h_n[-1] if head_on == "last" else out)
        mark("head forward")
        if loss_name == "mse":
            loss = 0.5 * torch.nn.functional.mse_loss(y, target)    # rnnfast's mse_loss is ½·MSE
        else:
            loss = torch.nn.functional.cross_entropy(y.reshape(-1, O), target.reshape(-1))
        mark("loss")
        loss.backward()
        mark("backward (head + layer)")
        torch.nn.utils.clip_grad_norm_(params, clip)
        mark("clip")
        opt.step()
        mark("optimizer")
        return loss.item()

    return step


# ------------------------------------------------------------------------------------------ worker process
def blas_info():
    from threadpoolctl import threadpool_info

    return [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} ({i.get('num_threads')} "
            f"threads, {os.path.basename(i.get('filepath', ''))})" for i in threadpool_info()]


def _checkout_on_path():
    """As ``python -c`` does: rnnfast from the built checkout this runs from (its root), else the installed one."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def worker(args):
    """Import the frameworks in the given order, build every loop, time them; print one JSON line."""
    fws = args.worker.split(",")
    _checkout_on_path()
    for fw in fws:
        added = [kv.split("=", 1) for kv in args.rnnfast_env] if fw == "rnnfast" else []
        added = [(k, v) for k, v in added if k not in os.environ]
        os.environ.update(dict(added))       # what rnnfast's import sees, as if the user had set it
        __import__(fw)
        for k, _ in added:
            del os.environ[k]
    import numpy as np

    if "torch" in fws:
        import torch
        torch.set_num_threads(args.threads)
    if "rnnfast" in fws:
        import rnnfast
        rnnfast.set_num_threads(args.threads)
    makers = {"rnnfast": rnnfast_loop, "torch": torch_loop}
    result = {"blas": blas_info(), "loops": {}}
    for name in args.loops.split(","):
        steps = {fw: makers[fw](name, np) for fw in fws}
        first = {fw: float(steps[fw]()) for fw in fws}           # the first step's loss, from the same weights
        for _ in range(args.warmup):
            for fw in fws:
                steps[fw]()
        b2b = {fw: [] for fw in fws}
        burst = {fw: [] for fw in fws}
        for _ in range(args.rounds):                             # the frameworks take turns within each round
            for fw in fws:
                step = steps[fw]
                step()
                for _ in range(args.steps):
                    t0 = time.perf_counter()
                    step()
                    b2b[fw].append(time.perf_counter() - t0)
            for fw in fws:
                step = steps[fw]
                time.sleep(args.pause)
                t0 = time.perf_counter()
                for _ in range(args.burst_steps):
                    step()
                burst[fw].append((time.perf_counter() - t0) / args.burst_steps)   # the wake-up charged to it
        phases = {fw: _phase_times(steps[fw], args.phase_steps) for fw in fws} if args.phase_steps else {}
        result["loops"][name] = {fw: {"phases_ms": phases.get(fw, {}), "first_loss": first[fw],
                                      "b2b_ms": 1e3 * statistics.median(b2b[fw]),
                                      "burst_ms": 1e3 * statistics.median(burst[fw])} for fw in fws}
    print(json.dumps(result))


def _phase_times(step, n):
    """Median ms of each phase of ``step`` over n back-to-back steps, in the order the step marks them."""
    times = {}

    for _ in range(n):
        last = [time.perf_counter()]

        def mark(phase):
            now = time.perf_counter()
            times.setdefault(phase, []).append(now - last[0])
            last[0] = now

        step(mark)
    return {phase: 1e3 * statistics.median(t) for phase, t in times.items()}


def run_worker(frameworks, args):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", ",".join(frameworks), "--loops", args.loops,
           "--threads", str(args.threads), "--steps", str(args.steps), "--rounds", str(args.rounds),
           "--warmup", str(args.warmup), "--pause", str(args.pause), "--burst-steps", str(args.burst_steps)]
    cmd += [f"--rnnfast-env={kv}" for kv in args.rnnfast_env] + ["--phases", str(args.phase_steps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------ the table
def cpu_model():
    _checkout_on_path()
    from rnnfast.bench import cpu_name     # here, not at the top: a worker imports the frameworks in its own order

    return f"{cpu_name()}, {os.cpu_count()} logical CPUs"


def versions():
    out = subprocess.run([sys.executable, "-c", "import numpy, scipy, torch, rnnfast; print(numpy.__version__, "
                          "scipy.__version__, torch.__version__, rnnfast.__version__)"],
                         check=True, capture_output=True, text=True).stdout.split()
    return dict(zip(("numpy", "scipy", "torch", "rnnfast"), out))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--loops", default=",".join(LOOPS), help=f"comma-separated, of {', '.join(LOOPS)}")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10, help="back-to-back timed steps per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--pause", type=float, default=0.25, help="idle seconds before each burst")
    p.add_argument("--burst-steps", type=int, default=10)
    p.add_argument("--busy", type=int, default=0,
                   help="processes spinning on a core-bound Python loop beside the timed ones, for the whole run")
    p.add_argument("--rnnfast-env", action="append", default=[], metavar="NAME=VALUE",
                   help="set in the environment only while rnnfast is imported (as a user's setting would be, "
                        "but torch alone never sees it): to compare wait policies, e.g. GOMP_SPINCOUNT=10000")
    p.add_argument("--phases", dest="phase_steps", type=int, default=0, metavar="N",
                   help="also time each phase of a step (median of N back-to-back steps) and print a table")
    p.add_argument("--json", action="store_true", help="print the results as JSON after the table")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)

    load = os.getloadavg()                   # before this run's own processes add to it
    v = versions()
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_WAIT_POLICY",
                                         "GOMP_SPINCOUNT", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    results = {}
    with busy_processes(args.busy):
        for mode in args.modes.split(","):
            if mode == "separate":
                r = {"rnnfast": run_worker(["rnnfast"], args), "torch": run_worker(["torch"], args)}
                results[mode] = {"blas": r["rnnfast"]["blas"], "loops": {n: {fw: r[fw]["loops"][n][fw] for fw in r}
                                                                         for n in r["rnnfast"]["loops"]}}
            else:
                results[mode] = run_worker(["torch", "rnnfast"] if mode == "torch-first" else ["rnnfast", "torch"],
                                           args)

    print(f"Whole training loops, float32, ms per step (medians), {args.threads} threads each")
    print(f"CPU: {cpu_model()}; load average {' '.join(f'{x:.2f}' for x in load)} at the start")
    print(f"Python {platform.python_version()}, numpy {v['numpy']}, scipy {v['scipy']}, torch {v['torch']}, "
          f"rnnfast {v['rnnfast']}")
    blas = next(iter(results.values()))["blas"]
    print("BLAS (threadpoolctl, in the rnnfast worker): " + "; ".join(blas))
    print("environment: " + ", ".join(f"{k}={v if v is not None else 'unset'}" for k, v in env.items()))
    print(f"busy processes beside the timed ones: {args.busy}; set only for rnnfast's import: "
          f"{', '.join(args.rnnfast_env) or 'nothing'}")
    print(f"b2b: {args.rounds}×{args.steps} back-to-back steps; burst: {args.rounds}×{args.burst_steps} steps, "
          f"each burst after {args.pause} s idle")
    print()
    print("| loop | processes | rnnfast b2b | torch b2b | torch/rnnfast | rnnfast burst | torch burst "
          "| torch/rnnfast | first loss (rnnfast / torch) |")
    print("|---|---|---|---|---|---|---|---|---|")
    bad = []
    for name in args.loops.split(","):
        for mode, res in results.items():
            r, t = res["loops"][name]["rnnfast"], res["loops"][name]["torch"]
            rel = abs(r["first_loss"] - t["first_loss"]) / max(abs(t["first_loss"]), 1e-30)
            if rel > 1e-5:
                bad.append(f"{name} ({mode}): first-step loss rnnfast {r['first_loss']!r} torch {t['first_loss']!r}")
            print(f"| {DESCRIPTION[name]} | {mode} | {r['b2b_ms']:.2f} | {t['b2b_ms']:.2f} "
                  f"| {t['b2b_ms'] / r['b2b_ms']:.2f} | {r['burst_ms']:.2f} | {t['burst_ms']:.2f} "
                  f"| {t['burst_ms'] / r['burst_ms']:.2f} | {r['first_loss']:.6g} / {t['first_loss']:.6g} |")
    if args.phase_steps:
        print(f"\nPer phase, ms (median of {args.phase_steps} back-to-back steps; torch's backward is one call)")
        for mode, res in results.items():
            for name in args.loops.split(","):
                for fw, r in res["loops"][name].items():
                    cells = ", ".join(f"{ph} {ms:.3f}" for ph, ms in r["phases_ms"].items())
                    print(f"{name:7s} {mode:13s} {fw:8s} total {sum(r['phases_ms'].values()):.2f}: {cells}")
    if args.json:
        print(json.dumps({"args": vars(args), "versions": v, "environment": env, "results": results}))
    if bad:
        sys.exit("first-step losses differ (relative difference > 1e-5), the loops do not do the same work:\n"
                 + "\n".join(bad))
    print("\nfirst-step losses agree to 1e-5 (relative) in every row: both frameworks do the same work.")


if __name__ == "__main__":
    main()
