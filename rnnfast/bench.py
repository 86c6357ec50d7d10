"""``python -m rnnfast.bench``: rnnfast against NumPy, PyTorch and the GEMM floor, side by side in one run.

For every shape (B, T, I=H) and cell, one float32 training step (forward + BPTT + parameter gradients, loss
``sum(out * dout)`` with a random ``dout``) of:
- rnnfast (``layer(x)``, ``layer.backward(dout)``);
- a careful vectorised NumPy BPTT (rnnfast._bench_numpy: written for speed within NumPy, the fair baseline;
  rnnfast.reference is the specification, written for clarity);
- PyTorch CPU (``torch.nn.LSTM`` / ``torch.nn.GRU`` / ``torch.nn.RNN``, ``out.backward(dout)``, x requiring grad as rnnfast
  returns dx), when torch is installed;
- JAX CPU with ``--jax`` (rnnfast._bench_jax: ``jax.lax.scan`` over time, ``jax.value_and_grad`` for the
  parameter gradients and dx, compiled ahead of timing), its XLA thread pool sized to ``--threads`` where it
  can be; that pool works beside the thread running the step, so the cores JAX keeps busy are measured and
  printed rather than assumed;
- the GEMM floor: the step's FLOPs, 3 × the forward GEMM FLOPs 2·T·B·G·H·(I+H), at the sgemm rate
  (scipy.linalg.blas.sgemm, n = 1024, same thread count) timed as one more contender of the same shape, so
  that the floor sees the same machine load as the steps it is compared with.

Timing: time.perf_counter around a batch of calls long enough to time (``--min-time``), after warm-up; the
contenders of a shape alternate within each of ``--repeat`` rounds (in a rotating order) so that noise hits
all of them alike; the median round counts. rnnfast, torch and the BLAS of NumPy/SciPy use the same thread
count (``--threads``); rnnfast is also timed at 1 and 2 threads for the 1→2 thread speedup.

Peak memory: each measurement runs in a fresh subprocess that imports its library, runs one training step
of a tiny model (library start-up is not charged to the shape), builds the model and the input, then resets
the peak-RSS mark (Linux ``/proc/self/clear_refs``) and runs two training steps; the figure is the peak RSS
(VmHWM) minus the RSS just before the steps. Where the mark cannot be reset the
difference of ``ru_maxrss`` is used (marked with ``~``), which misses peaks lower than the import peak.

Extra rows: streaming ``step`` at B=1, I=H=64 (µs per timestep, rnnfast ``layer.step`` against torch's cell
module, ``LSTMCell``/``GRUCell``/``RNNCell`` with the same weights, one step at a time with its state under
``torch.inference_mode``: torch's fastest single step, 2-4x faster than its ``LSTM`` module called with T=1),
and variable-length batches (B=32, T=100,
H=64 and B=64, T=100, H=128; lengths spread evenly over [T/4, T], shuffled): rnnfast with ``lengths``
(padded arrays in and out), rnnfast on a ``PackedSequence`` (no padding at all), rnnfast padded (no lengths),
torch through ``pack_padded_sequence(enforce_sorted=False)`` and torch padded; training steps. The
work-proportional ideal is rnnfast padded × Σ lengths / (B·T).

The closing "targets" section reports, never asserts: training step ≤ min(torch, max(torch/2, 1.2 × floor))
(GRU: ≤ torch/2, since torch's CPU GRU has no oneDNN path);
streaming LSTM ≥ 5× faster than torch (Elman and GRU reported); variable-length (with ``lengths``) ≤ 1.15 × the
work-proportional ideal, faster than torch padded and ≥ 4× faster than torch packed;
peak memory ≤ torch's. A training-step row whose sgemm rate, timed beside it, fell below 0.7× the run's median
(another job had the cores) is reported as noisy and not counted.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from types import ModuleType
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ._cells import cell_spec
from ._bench_numpy import NumpyRNN
from ._bench_report import _ratio, render, targets
from ._validation import int_argument

__all__ = ["main", "GRID", "QUICK_GRID", "VARLEN_SHAPE", "VARLEN_SHAPES", "STREAM_SIZE", "CELLS", "train_flops", "varlen_lengths",
           "make_layer", "NumpyRNN"]

GRID: Tuple[Tuple[int, int, int], ...] = (      # (B, T, I = H)
    (1, 100, 32), (32, 100, 64), (64, 100, 128), (16, 200, 128), (64, 100, 256), (32, 50, 512))
QUICK_GRID: Tuple[Tuple[int, int, int], ...] = ((1, 100, 32), (32, 100, 64))
STREAM_SIZE = 64            # streaming: B = 1, I = H = 64
STREAM_STEPS = 100          # timesteps per timed call
VARLEN_SHAPES = ((32, 100, 64), (64, 100, 128))
VARLEN_SHAPE = VARLEN_SHAPES[0]
CELLS = ("lstm", "gru", "elman")        # rnnfast._cells' families (CELL_NAMES), in the tables' order
SGEMM_N = 1024
# Idle time before each timed batch. OpenBLAS's worker threads spin for about 2^28 cycles after a threaded
# call before they sleep, and spinning they take a core from whatever runs next (benchmarks/README.md).
# One untimed call follows the pause, so that the batch does not time a wake-up from idle either.
SETTLE_S = 0.15


# ------------------------------------------------------------------------------------------- helpers
def train_flops(cell: str, B: int, T: int, I: int, H: int) -> float:
    """GEMM FLOPs of one training step: 3 × the forward's 2·T·B·G·H·(I+H) (forward, dX/dh, dW)."""
    return 3.0 * 2.0 * T * B * cell_spec(cell).gates * H * (I + H)


def _parse_shape(text: str) -> Tuple[int, int, int]:
    try:
        B, T, H = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape must be BxTxH (I = H), got {text!r}") from None
    if min(B, T, H) < 1:
        raise argparse.ArgumentTypeError(f"shape sizes must be positive, got {text!r}")
    return B, T, H


def _seconds(text: str, above_zero: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (above_zero and value == 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds {'>' if above_zero else '>='} 0, "
                                         f"got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    return _seconds(text, above_zero=True)


def _parse_shapes(text: str) -> List[Tuple[int, int, int]]:
    shapes = [_parse_shape(s) for s in text.split(",") if s.strip()]
    if not shapes:
        raise argparse.ArgumentTypeError("expected at least one shape BxTxH")
    return shapes


def _parse_cells(text: str) -> List[str]:
    cells = [c.strip().lower() for c in text.split(",") if c.strip()]
    bad = [c for c in cells if c not in CELLS]
    if bad or not cells:
        raise argparse.ArgumentTypeError(f"cells must be a comma-separated subset of {','.join(CELLS)}, "
                                         f"got {text!r}")
    return list(dict.fromkeys(cells))


SECTIONS = ("train", "streaming", "varlen")


def _parse_sections(text: str) -> List[str]:
    sections = [t.strip() for t in text.split(",") if t.strip()]
    if not sections or any(t not in SECTIONS for t in sections):
        raise argparse.ArgumentTypeError(f"--only takes a comma-separated subset of {','.join(SECTIONS)}, "
                                         f"got {text!r}")
    return sections


def _import_torch(disabled: bool):
    if disabled:
        return None
    try:
        import torch
    except (ImportError, OSError):      # not installed, or a broken install: the torch columns read n/a
        return None
    return torch


def make_layer(cell: str, I: int, H: int, seed: int = 0):
    """The float32 rnnfast layer of a cell ("lstm", "gru", "elman") that the benchmarks time."""
    from .layers import recurrent_layer

    return recurrent_layer(cell, I, H, dtype="float32", seed=seed)


def _make_torch(torch, cell: str, I: int, H: int, state_dict: Dict[str, np.ndarray]):
    mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "elman": torch.nn.RNN}[cell](I, H, dtype=torch.float32)
    mod.load_state_dict({k: torch.from_numpy(np.array(v, np.float32)) for k, v in state_dict.items()})
    return mod


def varlen_lengths(B: int, T: int, seed: int = 0) -> np.ndarray:
    """B lengths spread evenly over [T/4, T] (T included), in shuffled order."""
    lens = np.linspace(max(1, T // 4), T, B).round().astype(np.int64)
    lens[np.argmax(lens)] = T
    return np.random.default_rng(seed).permutation(lens)


# -------------------------------------------------------------------------------------------- timing
class Contender:
    """One thing to time: ``fn`` does one unit of work; it runs with ``threads`` threads everywhere.

    ``samples`` holds the seconds per call of each timed batch, ``cores`` the process's CPU time over the
    wall time of the same batch (how many cores were busy: a check of ``threads`` where nothing sets it)."""

    def __init__(self, name: str, fn: Callable[[], Any], threads: int, per_call: int = 1):
        self.name, self.fn, self.threads, self.per_call = name, fn, threads, per_call
        self.inner = 1
        self.samples: List[float] = []
        self.cores: List[float] = []

    @property
    def median(self) -> float:
        return statistics.median(self.samples) / self.per_call


class _ThreadSetter:
    """Sets rnnfast's, torch's and the BLAS thread counts (outside the timed region)."""

    def __init__(self, torch):
        from threadpoolctl import ThreadpoolController

        self.torch = torch
        self.blas = ThreadpoolController().select(user_api="blas")

    @contextlib.contextmanager
    def threads(self, n: int) -> Iterator[None]:
        import rnnfast

        rnnfast.set_num_threads(n)
        if self.torch is not None and self.torch.get_num_threads() != n:
            self.torch.set_num_threads(n)
        with self.blas.limit(limits=n):
            yield


def _timed(fn: Callable[[], Any], inner: int) -> float:
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def measure(contenders: Sequence[Contender], setter: _ThreadSetter, repeat: int, min_time: float,
            warmup: int = 2, settle: float = SETTLE_S) -> None:
    """Warm up and calibrate each contender, then time them in alternation, ``repeat`` rounds, each timed
    batch after ``settle`` idle seconds and one untimed call."""
    for c in contenders:
        with setter.threads(c.threads):
            for _ in range(warmup):
                c.fn()
            one = _timed(c.fn, 1)
            c.inner = max(1, math.ceil(min_time / max(one, 1e-7)))
    order = list(contenders)
    n = len(order)
    for r in range(repeat):
        for c in order[r % n:] + order[:r % n]:
            gc.collect()
            time.sleep(settle)
            with setter.threads(c.threads):
                c.fn()                            # untimed: the batch then times back-to-back calls, as in training
                cpu0 = time.process_time()
                c.samples.append(_timed(c.fn, c.inner))
                c.cores.append((time.process_time() - cpu0) / (c.samples[-1] * c.inner))


def sgemm_contender(threads: int, n: int = SGEMM_N) -> Contender:
    """scipy.linalg.blas.sgemm on n×n×n (the BLAS rnnfast's kernels call); ``per_call`` holds its FLOPs."""
    from scipy.linalg.blas import sgemm

    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32))
    b = np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32))
    c = np.zeros((n, n), np.float32, order="F")
    return Contender("sgemm", lambda: sgemm(1.0, a, b, beta=0.0, c=c, overwrite_c=1), threads,
                     per_call=2 * n ** 3)            # median = seconds per FLOP


# ---------------------------------------------------------------------------------------- workloads
def _train_fns(cell: str, B: int, T: int, H: int, torch, lengths: Optional[np.ndarray] = None,
               seed: int = 0, jax_bench=None) -> Dict[str, Callable[[], Any]]:
    """Closures for one training step of each implementation on the same weights and data; ``jax_bench``
    (the module rnnfast._bench_jax, its backend started) adds JAX's to the padded ones."""
    I = H
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I), dtype=np.float32)
    dout = rng.standard_normal((T, B, H), dtype=np.float32)
    layer = make_layer(cell, I, H, seed)
    sd = layer.state_dict()
    fns: Dict[str, Callable[[], Any]] = {}

    def rnnfast_step(lens=lengths):
        layer.zero_grad()
        layer(x, lengths=lens)
        layer.backward(dout)

    fns["rnnfast"] = rnnfast_step
    if lengths is not None:
        from rnnfast import pack_sequences
        x_packed, dout_packed = pack_sequences(x, lengths), pack_sequences(dout, lengths).data

        def rnnfast_packed_step():
            layer.zero_grad()
            layer(x_packed)
            layer.backward(dout_packed)

        fns["rnnfast packed"] = rnnfast_packed_step
        fns["rnnfast padded"] = lambda: rnnfast_step(None)
    else:
        ref = NumpyRNN.from_state_dict(cell, sd)
        fns["numpy"] = lambda: ref.train_step(x, dout)
        if jax_bench is not None:
            fns["jax"] = jax_bench.train_step(cell, sd, x, dout)      # compiled here, before any timing
    if torch is not None:
        mod = _make_torch(torch, cell, I, H, sd)
        params = list(mod.parameters())
        xt = torch.from_numpy(x).requires_grad_(True)
        dt = torch.from_numpy(dout)

        def torch_step(packed: bool = False):
            for p in params:
                p.grad = None
            xt.grad = None
            if packed:
                seq = torch.nn.utils.rnn.pack_padded_sequence(xt, lens_t, enforce_sorted=False)
                out, _ = torch.nn.utils.rnn.pad_packed_sequence(mod(seq)[0], total_length=T)
            else:
                out, _ = mod(xt)
            out.backward(dt)

        if lengths is not None:
            lens_t = torch.from_numpy(np.asarray(lengths, np.int64))
            fns["torch packed"] = lambda: torch_step(True)
            fns["torch padded"] = torch_step
        else:
            fns["torch"] = torch_step
    return fns


def _stream_fns(cell: str, torch, steps: int = STREAM_STEPS, size: int = STREAM_SIZE, seed: int = 0):
    """Closures running ``steps`` streaming timesteps at B = 1, carrying the state."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((steps, 1, size), dtype=np.float32)
    layer = make_layer(cell, size, size, seed)
    xs = [x[t] for t in range(steps)]                                # (1, I) each

    def rnnfast_stream():
        state = None
        for x_t in xs:
            _, state = layer.step(x_t, state)

    fns = {"rnnfast": rnnfast_stream}
    if torch is not None:          # torch's cell module: its fastest single step (its LSTM module at T=1: 2-4x slower)
        mod = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "elman": torch.nn.RNNCell}[cell](
            size, size, dtype=torch.float32)
        mod.load_state_dict({k[:-3]: torch.from_numpy(np.array(v, np.float32))          # weight_ih_l0 → weight_ih
                             for k, v in layer.state_dict().items()})
        xts = [t for t in torch.from_numpy(x)]                       # (1, I) each

        def torch_stream():
            with torch.inference_mode():
                state = None
                for x_t in xts:
                    state = mod(x_t, state)

        fns["torch"] = torch_stream
    return fns


# ----------------------------------------------------------------------------------- memory probes
def _proc_status_kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _maxrss_kb() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r // 1024 if sys.platform == "darwin" else r


def _memory_probe(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Runs in the child: peak RSS increase (MB) of two training steps over the RSS after set-up.

    Set-up is the imports, one training step of a tiny model of the same cell (so that one-time library
    start-up, such as thread pools and JIT kernels, is not charged to the shape) and the model and data of
    the shape. Everything the shape's steps allocate counts, workspaces kept across calls included.
    """
    torch = _import_torch(spec["lib"] != "torch")
    import rnnfast

    rnnfast.set_num_threads(spec["threads"])
    if torch is not None:
        torch.set_num_threads(spec["threads"])
    from threadpoolctl import threadpool_limits

    threadpool_limits(spec["threads"], user_api="blas")
    cell, B, T, H = spec["cell"], spec["B"], spec["T"], spec["H"]
    _train_fns(cell, 2, 2, 4, torch)[spec["lib"]]()              # library start-up: thread pools, JIT, ...
    fn = _train_fns(cell, B, T, H, torch)[spec["lib"]]
    gc.collect()
    base_kb = _proc_status_kb("VmRSS")
    reset = False
    try:
        with open("/proc/self/clear_refs", "w") as fh:                # resets VmHWM to the current RSS
            fh.write("5")
        reset = _proc_status_kb("VmHWM") is not None and base_kb is not None
    except OSError:
        pass
    if not reset:
        base_kb = _maxrss_kb()
    for _ in range(2):
        fn()
    peak_kb = _proc_status_kb("VmHWM") if reset else _maxrss_kb()
    assert peak_kb is not None and base_kb is not None        # reset: both read from /proc/self/status above
    return {"peak_mb": (peak_kb - base_kb) / 1024.0, "exact": reset}


def measure_memory(lib: str, cell: str, B: int, T: int, H: int, threads: int) -> Optional[Dict[str, Any]]:
    spec = dict(lib=lib, cell=cell, B=B, T=T, H=H, threads=threads)
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH")) if p)
    env["OMP_NUM_THREADS"] = str(threads)
    try:
        proc = subprocess.run([sys.executable, "-m", "rnnfast.bench", "--_memory-probe", json.dumps(spec)],
                              capture_output=True, text=True, env=env, timeout=600)
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError, OSError):
        return None


# --------------------------------------------------------------------------------------- the report
def blas_kernels() -> list:
    """The BLAS libraries threadpoolctl sees, each as "openblas 0.3.30 (SkylakeX)": the kernel beside every
    figure."""
    from threadpoolctl import threadpool_info
    return sorted({f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"
                   for i in threadpool_info() if i.get("user_api") == "blas"})


def cpu_name() -> str:
    """The CPU's model name and its widest x86 vector ISA, as "AMD EPYC 9R14 96-Core Processor (AVX-512)":
    beside every figure, with :func:`blas_kernels`."""
    fields: Dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
                if "model name" in fields and "flags" in fields:
                    break
    except OSError:
        pass
    model = fields.get("model name") or platform.processor() or platform.machine()
    flags = fields.get("flags", "").split()
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else None
    return f"{model} ({isa})" if isa else model


def _environment(threads: int, torch, gflops: Optional[float], args) -> Dict[str, Any]:
    import scipy

    import rnnfast

    cpu = cpu_name()
    usable: Optional[int]
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "threads": threads, "usable_cores": usable, "cpu": cpu, "python": platform.python_version(),
        "rnnfast": rnnfast.__version__, "openmp": rnnfast.openmp_enabled(), "numpy": np.__version__,
        "scipy": scipy.__version__, "torch": torch.__version__ if torch is not None else None,
        "blas": blas_kernels(), "sgemm_gflops": gflops, "sgemm_n": SGEMM_N, "repeat": args.repeat,
        "min_time_s": args.min_time, "settle_s": args.settle, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


# --------------------------------------------------------------------------------------------- main
def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rnnfast bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int_argument(1), default=None,
                   help="threads for rnnfast, torch and BLAS alike (default: rnnfast.get_num_threads())")
    p.add_argument("--quick", action="store_true",
                   help=f"shapes {', '.join('x'.join(map(str, s)) for s in QUICK_GRID)}, 3 rounds, no memory")
    p.add_argument("--cells", type=_parse_cells, default=list(CELLS), help="comma-separated: lstm,gru,elman")
    p.add_argument("--shapes", type=_parse_shapes, default=None,
                   help="comma-separated BxTxH (I = H), replacing the grid")
    p.add_argument("--repeat", type=int_argument(1), default=None,
                   help="alternating rounds, median taken (default 7; 3 quick)")
    p.add_argument("--min-time", type=_positive_seconds, default=None,
                   help="seconds per timed batch of calls (default 0.05; 0.01 quick)")
    p.add_argument("--settle", type=_seconds, default=SETTLE_S,
                   help=f"idle seconds before each timed batch, so that threads spinning after the previous "
                        f"contender do not slow the next (default {SETTLE_S})")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                   help="write the results as JSON to PATH, or to stdout (instead of the table) without PATH")
    p.add_argument("--memory", action=argparse.BooleanOptionalAction, default=None,
                   help="measure peak memory in subprocesses (default on; off with --quick)")
    p.add_argument("--no-torch", action="store_true", help="leave torch out, as if it were not installed")
    p.add_argument("--jax", action="store_true",
                   help='add JAX CPU to the training-step rows (needs pip install "jax[cpu]"); its XLA thread '
                        "pool is sized to --threads when its backend starts, and the cores it keeps busy are "
                        "measured and printed (the pool's threads work beside the one running the step)")
    p.add_argument("--no-extras", action="store_true", help="skip the streaming and variable-length rows")
    p.add_argument("--only", type=_parse_sections, default=list(SECTIONS), metavar="SECTION,...",
                   help="run only these rows: comma-separated train,streaming,varlen (default all); e.g. "
                        "--only varlen for the variable-length rows alone")
    p.add_argument("--varlen-shapes", "--varlen-shape", dest="varlen_shapes", type=_parse_shapes,
                   default=list(VARLEN_SHAPES), metavar="BxTxH,...",
                   help="comma-separated shapes of the variable-length batches (default "
                        + ",".join("x".join(map(str, v)) for v in VARLEN_SHAPES) + ")")
    p.add_argument("--_memory-probe", dest="memory_probe", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.json not in (None, "-"):                     # before minutes of measuring, not after them
        folder = os.path.dirname(os.path.abspath(args.json))
        if os.path.isdir(args.json) or not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            parser.error(f"--json {args.json}: cannot write a file there (a folder, or in no writable folder)")
    if args.memory_probe is not None:
        print(json.dumps(_memory_probe(json.loads(args.memory_probe))))
        return 0
    import rnnfast

    shapes = args.shapes if args.shapes is not None else (list(QUICK_GRID) if args.quick else list(GRID))
    args.repeat = args.repeat if args.repeat is not None else (3 if args.quick else 7)
    args.min_time = args.min_time if args.min_time is not None else (0.01 if args.quick else 0.05)
    memory = args.memory if args.memory is not None else not args.quick
    threads = args.threads if args.threads is not None else rnnfast.get_num_threads()
    torch = _import_torch(args.no_torch)
    jax_bench: Optional[ModuleType] = None
    jax_info: Optional[Dict[str, Any]] = None
    if args.jax and "train" in args.only:
        from . import _bench_jax                         # imports no JAX: start() does, sizing its thread pool

        try:
            jax_info = _bench_jax.start(threads)
        except ImportError as exc:
            raise SystemExit(f"error: {exc}") from None
        jax_bench = _bench_jax
    log = lambda msg: print(msg, file=sys.stderr, flush=True)
    setter = _ThreadSetter(torch)
    thread_counts = list(dict.fromkeys([threads, 1, 2]))

    results: Dict[str, Any] = {"train": [], "streaming": [], "varlen": []}
    gemm = sgemm_contender(threads)

    sections = [t for t in args.only if t == "train" or not args.no_extras]
    if not sections:
        parser.error(f"--no-extras skips the streaming and variable-length rows, and --only {','.join(args.only)} "
                     f"asks for nothing else: no rows to run")
    for cell in args.cells if "train" in sections else ():
        for B, T, H in shapes:
            log(f"train {cell} B={B} T={T} H={H}")
            fns = _train_fns(cell, B, T, H, torch, jax_bench=jax_bench)
            cons = {f"rnnfast@{n}": Contender(f"rnnfast@{n}", fns["rnnfast"], n) for n in thread_counts}
            cons.update({k: Contender(k, f, threads) for k, f in fns.items() if k != "rnnfast"})
            gemm.samples, gemm.cores = [], []
            cons["sgemm"] = gemm
            measure(list(cons.values()), setter, args.repeat, args.min_time, settle=args.settle)
            gflops = 1e-9 / gemm.median
            ms = {k: c.median * 1e3 for k, c in cons.items() if k != "sgemm"}
            flops = train_flops(cell, B, T, H, H)
            rf, to = ms[f"rnnfast@{threads}"], ms.get("torch")
            floor = flops / (gflops * 1e9) * 1e3
            row = dict(
                cell=cell, B=B, T=T, I=H, H=H, train_gflop=flops / 1e9, sgemm_gflops=gflops, rnnfast_ms=rf,
                numpy_ms=ms["numpy"],
                torch_ms=to, floor_ms=floor, torch_over_rnnfast=_ratio(to, rf), rnnfast_over_floor=rf / floor,
                numpy_over_rnnfast=ms["numpy"] / rf, rnnfast_1thread_ms=ms["rnnfast@1"],
                rnnfast_2thread_ms=ms["rnnfast@2"], speedup_1to2=ms["rnnfast@1"] / ms["rnnfast@2"],
                samples_ms={k: [s / c.per_call * 1e3 for s in c.samples] for k, c in cons.items()
                            if k != "sgemm"})
            if "jax" in cons:           # keys only with --jax, so that the output without it is unchanged
                row.update(jax_ms=ms["jax"], jax_over_rnnfast=ms["jax"] / rf,
                           jax_cores_busy=statistics.median(cons["jax"].cores))
            results["train"].append(row)

    if "streaming" in sections:
        for cell in args.cells:
            log(f"streaming {cell}")
            stream_cons = [Contender(k, f, threads, per_call=STREAM_STEPS)
                           for k, f in _stream_fns(cell, torch).items()]
            measure(stream_cons, setter, args.repeat, args.min_time, settle=args.settle)
            us = {c.name: c.median * 1e6 for c in stream_cons}
            results["streaming"].append(dict(cell=cell, B=1, I=STREAM_SIZE, H=STREAM_SIZE,
                                             rnnfast_us=us["rnnfast"], torch_us=us.get("torch"),
                                             speedup=_ratio(us.get("torch"), us["rnnfast"])))
    if "varlen" in sections:
        for B, T, H in args.varlen_shapes:
            lengths = varlen_lengths(B, T)
            real = float(lengths.sum()) / (B * T)           # the real steps' share of the padded batch
            for cell in args.cells:
                log(f"varlen {cell} B={B} T={T} H={H}")
                varlen_cons = [Contender(k, f, threads)
                               for k, f in _train_fns(cell, B, T, H, torch, lengths).items()]
                measure(varlen_cons, setter, args.repeat, args.min_time, settle=args.settle)
                ms = {c.name: c.median * 1e3 for c in varlen_cons}
                ideal = ms["rnnfast padded"] * real
                results["varlen"].append(dict(
                    cell=cell, B=B, T=T, I=H, H=H, lengths_min=int(lengths.min()),
                    lengths_max=int(lengths.max()), real_fraction=real,
                    rnnfast_ms=ms["rnnfast"], rnnfast_packed_ms=ms["rnnfast packed"],
                    rnnfast_padded_ms=ms["rnnfast padded"], ideal_ms=ideal,
                    torch_packed_ms=ms.get("torch packed"), torch_padded_ms=ms.get("torch padded"),
                    torch_packed_speedup=_ratio(ms.get("torch packed"), ms["rnnfast"]),
                    torch_padded_speedup=_ratio(ms.get("torch padded"), ms["rnnfast"]),
                    lengths_over_ideal=ms["rnnfast"] / ideal, packed_over_ideal=ms["rnnfast packed"] / ideal,
                    padded_over_lengths=ms["rnnfast padded"] / ms["rnnfast"]))

    if memory:
        for r in results["train"]:
            log(f"memory {r['cell']} B={r['B']} T={r['T']} H={r['H']}")
            for lib in ("rnnfast", "torch") if torch is not None else ("rnnfast",):
                m = measure_memory(lib, r["cell"], r["B"], r["T"], r["H"], threads)
                r[f"mem_{lib}_mb"] = m["peak_mb"] if m else None
                r[f"mem_{lib}_mb_exact"] = m["exact"] if m else True

    rates = [r["sgemm_gflops"] for r in results["train"]]
    results["environment"] = _environment(threads, torch, statistics.median(rates) if rates else None, args)
    if jax_info is not None:
        results["environment"]["jax"] = jax_info
    results["targets"] = targets(results)
    text = render(results)
    if args.json == "-":
        print(json.dumps(results, indent=1))
    else:
        print(text)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
