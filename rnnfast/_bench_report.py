"""The report of ``python -m rnnfast.bench``: the targets it checks (reported, never asserted) and the text
tables, from the results dictionary that ``rnnfast.bench.main`` builds (and ``--json`` writes)."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["render", "targets"]


def _fmt(v: Optional[float], digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if v == 0:
        return "0"
    mag = math.floor(math.log10(abs(v)))
    return f"{v:.{max(0, digits - 1 - mag)}f}"


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


# A training-step row whose sgemm rate (timed beside it) fell below this fraction of the run's median ran
# while something else took the cores: its target is reported as noisy and not counted.
NOISY_SGEMM = 0.7


def targets(results: Dict[str, Any]) -> List[Dict[str, Any]]:
    rows = []
    rates = sorted(r["sgemm_gflops"] for r in results["train"] if r.get("sgemm_gflops"))
    median = rates[len(rates) // 2] if rates else None
    for r in results["train"]:
        shape = f"{r['cell']} B={r['B']} T={r['T']} H={r['H']}"
        rf, to, fl = r["rnnfast_ms"], r["torch_ms"], r["floor_ms"]
        if to is None:
            goal, what = 1.2 * fl, "1.2 floor (no torch)"
        elif r["cell"] == "gru":         # torch's CPU GRU has no oneDNN path: at least 2x faster
            goal, what = to / 2, "torch/2"
        else:
            goal, what = min(to, max(to / 2, 1.2 * fl)), "min(torch, max(torch/2, 1.2 floor))"
        rows.append(dict(kind="train", shape=shape, value=rf, target=goal, unit="ms", rule=f"<= {what}",
                         met=rf <= goal, noisy=bool(median and (r.get("sgemm_gflops") or 0) < NOISY_SGEMM * median)))
        if r.get("mem_rnnfast_mb") is not None and r.get("mem_torch_mb") is not None:
            rows.append(dict(kind="memory", shape=shape, value=r["mem_rnnfast_mb"], target=r["mem_torch_mb"],
                             unit="MB", rule="<= torch", met=r["mem_rnnfast_mb"] <= r["mem_torch_mb"]))
    for r in results["streaming"]:
        if r["speedup"] is not None and r["cell"] == "lstm":    # the streaming target is the LSTM's
            rows.append(dict(kind="streaming", shape=f"{r['cell']} B=1 I=H={r['H']}", value=r["speedup"],
                             target=5.0, unit="x", rule=">= 5x faster than torch", met=r["speedup"] >= 5.0))
    for r in results["varlen"]:
        shape = f"{r['cell']} B={r['B']} T={r['T']} H={r['H']}"
        rows.append(dict(kind="varlen", shape=shape, value=r["lengths_over_ideal"], target=1.15, unit="x",
                         rule="lengths <= 1.15 x ideal (padded x real steps)", met=r["lengths_over_ideal"] <= 1.15))
        if r["torch_packed_speedup"] is not None:
            rows.append(dict(kind="varlen", shape=shape, value=r["torch_packed_speedup"], target=4.0, unit="x",
                             rule=">= 4x faster than torch packed", met=r["torch_packed_speedup"] >= 4.0))
        if r["torch_padded_speedup"] is not None:
            rows.append(dict(kind="varlen", shape=shape, value=r["torch_padded_speedup"], target=1.0, unit="x",
                             rule="faster than torch padded", met=r["torch_padded_speedup"] > 1.0))
    return rows


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) if i < left else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def _jax_note(env: Dict[str, Any], rows: Sequence[Dict[str, Any]]) -> str:
    """What JAX ran with: the XLA CPU pool size the bench set (or that it could not), and the cores it kept
    busy, measured (CPU time over wall time of its timed batches, the median per shape; min-max over shapes)."""
    info = env["jax"]
    busy = [r["jax_cores_busy"] for r in rows]
    measured = f"cores busy in its timed batches {_fmt(min(busy))}-{_fmt(max(busy))} (CPU time / wall time)"
    if max(busy) > 1.05 * env["threads"]:
        measured += f", more than {env['threads']}"
    if info["held"]:
        # The pool's threads work beside the thread that runs the computation: N + 1 at most, not N.
        pool = (f"XLA CPU thread pool of {info['threads']} (PJRT_NPROC={info['threads']} when its backend "
                f"started) beside the thread running the step, so up to {info['threads'] + 1} cores")
    else:
        pool = f"thread pool NOT held to {env['threads']} threads ({info['why']})"
    return f"jax {info['version']}: {pool}; {measured}"


def render(results: Dict[str, Any]) -> str:
    env = results["environment"]
    out = [
        "rnnfast bench: float32 training steps (forward + BPTT + parameter grads), median of "
        f"{env['repeat']} alternating rounds",
        f"threads {env['threads']} (usable cores {env['usable_cores']}, OpenMP {env['openmp']}), {env['cpu']}, "
        f"load avg {', '.join(f'{v:.1f}' for v in env['loadavg'] or [])}, "
        f"OMP_WAIT_POLICY {env['omp_wait_policy'] or 'unset'}",
        f"rnnfast {env['rnnfast']}, numpy {env['numpy']}, scipy {env['scipy']}, torch {env['torch'] or 'n/a'}; "
        f"BLAS: {'; '.join(env['blas'])}",
    ]
    jax = "jax_ms" in (results["train"] or [{}])[0]        # --jax: two more columns and a line on its threads
    if results["train"]:                 # (--only may leave it out: no empty table then)
        out += [f"sgemm {env['sgemm_n']}^3 at {env['threads']} threads: {_fmt(env['sgemm_gflops'])} GFLOP/s "
                "(median over shapes)",
                "floor = 3 x forward GEMM FLOPs 2*T*B*G*H*(I+H) at the sgemm rate timed beside each shape"]
        if jax:
            out.append(_jax_note(env, results["train"]))
        out.append("")
    rows = []
    for r in results["train"]:
        mem = lambda k: ("" if r.get(k + "_exact", True) else "~") + _fmt(r.get(k))
        jax_ms, jax_ratio = ([_fmt(r["jax_ms"])], [_fmt(r["jax_over_rnnfast"])]) if jax else ([], [])
        rows.append([r["cell"], str(r["B"]), str(r["T"]), str(r["H"]), _fmt(r["rnnfast_ms"]),
                     _fmt(r["numpy_ms"]), _fmt(r["torch_ms"]), *jax_ms, _fmt(r["sgemm_gflops"]),
                     _fmt(r["floor_ms"]), _fmt(r["torch_over_rnnfast"]), *jax_ratio, _fmt(r["rnnfast_over_floor"]),
                     _fmt(r["speedup_1to2"]), mem("mem_rnnfast_mb"), mem("mem_torch_mb")])
    if rows:
        jax_ms, jax_ratio = (["jax ms"], ["jax/rnnfast"]) if jax else ([], [])
        out.append(_table(["cell", "B", "T", "I=H", "rnnfast ms", "numpy ms", "torch ms", *jax_ms, "sgemm GF/s",
                           "floor ms", "torch/rnnfast", *jax_ratio, "rnnfast/floor", "1->2 thr", "mem rnnfast MB",
                           "mem torch MB"], rows, left=1))
    if results["streaming"]:
        size = results["streaming"][0]["H"]
        out += ["", f"streaming step, B=1, I=H={size} (us per timestep; torch's cell module one step at a time "
                "with its state, inference_mode)"]
        out.append(_table(["cell", "rnnfast us", "torch us", "torch/rnnfast"],
                          [[r["cell"], _fmt(r["rnnfast_us"]), _fmt(r["torch_us"]), _fmt(r["speedup"])]
                           for r in results["streaming"]]))
    if results["varlen"]:
        out += ["", "variable-length training step, I=H, lengths spread over [T/4, T] (ms); ideal = rnnfast "
                "padded x real steps / (B*T); lengths = padded arrays with lengths=, packed = a PackedSequence"]
        out.append(_table(["cell", "B", "T", "H", "real", "rnnfast lengths", "rnnfast packed", "rnnfast padded",
                           "ideal", "lengths/ideal", "packed/ideal", "torch packed", "torch padded",
                           "torch packed/rnnfast", "torch padded/rnnfast"],
                          [[r["cell"], str(r["B"]), str(r["T"]), str(r["H"]), _fmt(r["real_fraction"]),
                            _fmt(r["rnnfast_ms"]), _fmt(r["rnnfast_packed_ms"]), _fmt(r["rnnfast_padded_ms"]),
                            _fmt(r["ideal_ms"]), _fmt(r["lengths_over_ideal"]), _fmt(r["packed_over_ideal"]),
                            _fmt(r["torch_packed_ms"]), _fmt(r["torch_padded_ms"]),
                            _fmt(r["torch_packed_speedup"]), _fmt(r["torch_padded_speedup"])]
                           for r in results["varlen"]]))
    out += ["", "targets (reported, not asserted)"]
    t_rows = [["noisy" if t.get("noisy") else "met" if t["met"] else "MISSED", t["kind"], t["shape"],
               f"{_fmt(t['value'])} {t['unit']}", t["rule"], f"{_fmt(t['target'])} {t['unit']}"]
              for t in results["targets"]]
    out.append(_table(["", "what", "shape", "value", "rule", "target"], t_rows, left=6))
    counted = [t for t in results["targets"] if not t.get("noisy")]
    noisy = len(results["targets"]) - len(counted)
    out.append(f"{sum(t['met'] for t in counted)}/{len(counted)} targets met"
               + (f"; {noisy} not counted (noisy: sgemm beside the shape below {NOISY_SGEMM} x the run's median, "
                  f"another job had the cores)" if noisy else ""))
    return "\n".join(out)
