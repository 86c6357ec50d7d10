"""The kernel boundary: the one module that imports the compiled extension (``rnnfast._recurrent``).

The layers call a narrow pair per direction of one layer, as thinc's LSTM does::

    fwd = forward_training(cell, weights, x, h0, c0, layout, options, workspace=..., key=...)
    dx = backward(dout, dh_n, dc_n, fwd, options, dh0=..., dc0=...)

``forward_training`` runs the layer over the sequence and returns a :class:`ForwardResult`, which holds what
BPTT needs (the input, the initial state, the outputs and the kept activations); ``backward`` consumes it
(the kernels overwrite the kept gates with their gradients), adds the weight gradients into the parameters'
``.grad`` and returns the gradient of the input. :func:`forward_inference` is the forward that no backward
follows: it keeps nothing (each step projects its own rows into a small buffer that stays in cache; no
(rows, G·H) projection, no history of the gates or of c) and returns an :class:`InferenceResult`, the
outputs and final states only. :func:`step` is the streaming kernel (one timestep, no BPTT).

How the kernels run is a per-call :class:`KernelOptions` (threads, the recurrent product's GEMM, the time
loop's plan, the weight gradients' GEMM, where the input side's products run): by default the context's, which
:func:`kernel_options` changes for a ``with`` block (and only for the calling thread or task).
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import numbers
import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple, Optional, Tuple

import numpy as np

from ._cells import CELLS, CellSpec

if TYPE_CHECKING:
    from ._layout import Layout


def _missing_extension_error() -> ImportError:
    here = os.path.dirname(os.path.abspath(__file__))
    return ImportError(
        f"rnnfast's compiled kernels (rnnfast._recurrent) are not built in {here}. This looks like a source "
        "checkout imported before a build: either install rnnfast (`pip install .`) and run Python from "
        "another directory, so that the installed package is imported, or build the kernels in place "
        "(`python setup.py build_ext --inplace`).")


if importlib.util.find_spec(f"{__package__}._recurrent") is None:
    raise _missing_extension_error()

# Idle OpenMP workers spin briefly, then sleep: GOMP_SPINCOUNT=10000 (the user's OMP_WAIT_POLICY /
# GOMP_SPINCOUNT win). libgomp reads this once, when the first library that uses it loads, so it is set here,
# around the one import of the extension, and removed again afterwards. libgomp is shared: when rnnfast loads it
# first, torch runs under this setting too. Sleeping at once (OMP_WAIT_POLICY=PASSIVE, the earlier default) made
# torch's training steps 3-9x slower when rnnfast was imported first (a futex wake-up per parallel region), and
# rnnfast's own no faster; libgomp's own default (300,000 spins) lets idle workers take the cores of busy
# machines (benchmarks/wait_policy.py and training_loops.py measure all three; benchmarks/README.md).
_SPINCOUNT = "10000"
_set_wait_policy = "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ
if _set_wait_policy:
    os.environ["GOMP_SPINCOUNT"] = _SPINCOUNT
try:
    from . import _recurrent  # noqa: E402
finally:
    if _set_wait_policy:
        del os.environ["GOMP_SPINCOUNT"]
from . import _threads  # noqa: E402

__all__ = ["KernelOptions", "kernel_options", "current_options", "Weights", "ForwardResult", "forward_training",
           "InferenceResult", "forward_inference", "backward", "step", "loop_plan", "kept_elements", "JORDAN_ACTIVATIONS", "JordanWeights", "JordanForward",
           "jordan_forward_training", "jordan_backward", "jordan_step"]



def _check_cell_codes() -> None:
    """The table of cells and the compiled module give every cell the same code (ELMAN_TANH, ..., GRU)."""
    for spec in CELLS.values():
        name = f"ELMAN_{(spec.nonlinearity or '').upper()}" if spec.family == "elman" else spec.family.upper()
        if getattr(_recurrent, name) != spec.code:
            raise ImportError(f"rnnfast._recurrent.{name} = {getattr(_recurrent, name)} but the table of cells "
                              f"says {spec.code}: rebuild the extension")


_check_cell_codes()

openmp_enabled = _recurrent.openmp_enabled
packed_size = _recurrent.packed_size
zero_arrays = _recurrent.zero_arrays                        # (arrays, num_threads): rnnfast._threads wraps it
copy_rows = _recurrent.copy_rows                            # (src, index, dst, num_threads): rnnfast._layout
crop_windows = _recurrent.crop_windows                      # (src, idx, start, end, dst, stride): the estimators' crops
linear_forward = _recurrent.linear_forward                  # (x, w, y, num_threads): rnnfast.Linear
linear_backward = _recurrent.linear_backward                # (dy, x, w, dw, dx or None, num_threads)
cross_entropy_rows = _recurrent.cross_entropy_rows          # (x, labels, w, scale, grad, loss, n): losses
sum_over_time = _recurrent.sum_over_time                    # (seq, steps, total): compose.Readout
spread_over_time = _recurrent.spread_over_time              # (g, steps, dout)
max_over_time = _recurrent.max_over_time                    # (seq, steps, y, argmax or None): Readout
max_over_time_backward = _recurrent.max_over_time_backward  # (argmax, dy, dout)
adam_update = _recurrent.adam_update                        # (p, g, m, v, vmax, maximize, ...): optim.Adam
sum_of_squares = _recurrent.sum_of_squares                  # (g,) -> Σ g² in double: clip.py
add_normal = _recurrent.add_normal                          # (out, x or None, σ, seed, n): estimators' input noise
_float32_approximation = _recurrent._float32_approximation  # (name, x, y): for the accuracy tests


# ------------------------------------------------------------------------------------------------ options
@dataclass(frozen=True)
class KernelOptions:
    """How a kernel call runs. Results are the same under every choice (bit for bit, but for the order of
    sums where the docs of the choice say so); only the speed differs.

    Parameters
    ----------
    num_threads : int, optional
        OpenMP threads; None (default) for :func:`rnnfast.get_num_threads` at the call.
    step_gemm : {"packed", "blas"}
        The recurrent product of each step: rnnfast's packed micro-kernel (default; W_hh packed once per call)
        or one BLAS GEMM per step (each thread's rows one call: where BLAS sums a row by its place in
        the call, as OpenBLAS's Haswell sgemm does, the last bits then depend on the thread count).
    weight_gradients : {"auto", "blas"}
        The after-loop weight-gradient GEMMs: rnnfast_wgrad.h where the CPU has AVX-512 or AVX2 + FMA, else BLAS
        ("auto", default), or always BLAS. The two sum the weight gradients in another order, and split
        dx's GEMM into other row blocks, so these and dx agree to rounding, not bit for bit.
    unit_split_bytes : int
        The time loop splits the hidden units across threads (instead of the batch) when W_hh has at least
        this many bytes (default 1 MiB); 0 whenever H is whole packed panels, a huge value never.
    unit_split_backward_h_per_row : int
        Backward splits its pointwise pass by units too only when H >= this · B (default 64), else the
        "mixed" plan: pointwise pass by rows, product by units.
    input_gemm : {"auto", "step", "blas"}
        The input side's products, x_t W_ihᵀ (forward) and dx_t = dA_t W_ih (backward): "step", inside the time
        loop, each step's rows on the packed micro-kernel while they are in cache (where the loop splits the
        batch rows, the layout is padded, x is dense and ``step_gemm`` is "packed"; backward also needs I
        within 1/8 of a whole number of 32-float panels), else "blas" (default), one BLAS GEMM over all rows
        before (after) the loop; "auto" takes "step" where the micro-kernel outruns this process's BLAS on
        this CPU (:func:`input_gemm_choice`, measured once per process; ``RNNFAST_INPUT_GEMM`` sets it).
        The two sum x_t W_ihᵀ and dx in another order, so they agree to rounding, not bit for bit; that is
        why "auto" is not the default: a timing decides it, and two runs of one script with one seed could
        then differ in their last bits (as PyTorch keeps ``torch.backends.cudnn.benchmark`` off by default).
    """

    num_threads: Optional[int] = None
    step_gemm: str = "packed"
    weight_gradients: str = "auto"
    unit_split_bytes: int = 1 << 20
    unit_split_backward_h_per_row: int = 64
    input_gemm: str = "blas"

    def __post_init__(self) -> None:
        # integers as the kernels take them (a C int, and a Py_ssize_t for the byte count); numpy ints too
        for name, low, high in (("num_threads", 1, 2**31 - 1), ("unit_split_bytes", 0, 2**63 - 1),
                                ("unit_split_backward_h_per_row", 0, 2**31 - 1)):
            value = getattr(self, name)
            if name == "num_threads" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= int(value) <= high:
                raise ValueError(f"{name} must be {'None or ' if name == 'num_threads' else ''}an int in "
                                 f"[{low}, {high}], got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.step_gemm not in ("packed", "blas"):
            raise ValueError(f"step_gemm must be 'packed' or 'blas', got {self.step_gemm!r}")
        if self.weight_gradients not in ("auto", "blas"):
            raise ValueError(f"weight_gradients must be 'auto' or 'blas', got {self.weight_gradients!r}")
        if self.input_gemm not in ("auto", "step", "blas"):
            raise ValueError(f"input_gemm must be 'auto', 'step' or 'blas', got {self.input_gemm!r}")

    @property
    def threads(self) -> int:
        """The thread count of a call made now."""
        return _threads.get_num_threads() if self.num_threads is None else self.num_threads

    def input_by_step(self, dtype: Any, I: int, GH: int) -> bool:
        """Whether the kernels are asked to do the input side's products of a layer (I inputs, G·H gate rows)
        inside the time loop (``input_gemm``); the kernel still declines where the loop's plan or the layout
        does not allow it (:func:`input_plan`)."""
        if self.step_gemm == "blas" or self.input_gemm == "blas":
            return False
        return self.input_gemm == "step" or input_gemm_choice(dtype, I, GH) == "step"


_OPTIONS: contextvars.ContextVar[KernelOptions] = contextvars.ContextVar("rnnfast_kernel_options",
                                                                         default=KernelOptions())


def current_options() -> KernelOptions:
    """The options kernel calls take in this context (thread or task)."""
    return _OPTIONS.get()


@contextlib.contextmanager
def kernel_options(**changes: Any) -> Iterator[KernelOptions]:
    """``with kernel_options(step_gemm="blas"): ...``: the layers' kernel calls in the block, in this thread or
    task only, take the current options with these fields changed (see :class:`KernelOptions`)."""
    token = _OPTIONS.set(replace(_OPTIONS.get(), **changes))
    try:
        yield _OPTIONS.get()
    finally:
        _OPTIONS.reset(token)


def loop_plan(num_threads: int, T: int, B: int, H: int, GH: int, itemsize: int, backward: bool,
              options: Optional[KernelOptions] = None) -> Tuple[int, str]:
    """(threads, plan) that forward or backward would use for its time loop; plan is "rows", "units" or
    "mixed" (csrc: how the threads share a time loop)."""
    o = current_options() if options is None else options
    return _recurrent.loop_plan(num_threads, T, B, H, GH, itemsize, backward, o.unit_split_bytes,
                                o.unit_split_backward_h_per_row)


def _wgrad_product(a: np.ndarray, b: np.ndarray, c: np.ndarray, col0: int,
                   options: Optional[KernelOptions] = None) -> None:
    """c (M, N) += a[:, col0:col0 + M]ᵀ b by the weight-gradient GEMM the options choose (for the tests)."""
    o = current_options() if options is None else options
    _recurrent._wgrad_product(a, b, c, col0, o.weight_gradients == "blas")


# ------------------------------------------------------------------------------------------- the kernels
class Weights(NamedTuple):
    """One direction of one layer's parameters (objects with ``.data`` and ``.grad``); biases None without."""

    w_ih: Any       # (G·H, I)
    w_hh: Any       # (G·H, H)
    b_ih: Any       # (G·H,) or None
    b_hh: Any       # (G·H,) or None


def kernel_biases(cell: CellSpec, weights: Weights, H: int) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """(bias, b_hn) as the kernels take them: b_ih + b_hh, except GRU's b_hn, which stays apart (inside
    r ⊙ (h W_hnᵀ + b_hn))."""
    if weights.b_ih is None:
        return None, None
    bias = weights.b_ih.data + weights.b_hh.data                    # (GH,)
    if cell.family != "gru":
        return bias, None
    bias[2 * H:] = weights.b_ih.data[2 * H:]
    return bias, weights.b_hh.data[2 * H:]


def kept_elements(cell: CellSpec, H: int) -> int:
    """Elements forward keeps per (t, b) row for BPTT: h_t, and the activated gates and c_t, tanh(c_t) (LSTM)
    or the gates and W_hn h_{t-1} + b_hn (GRU)."""
    GH = cell.width(H)
    return H + {"lstm": GH + 2 * H, "gru": GH + H}.get(cell.family, 0)


@dataclass
class ForwardResult:
    """What one direction of one layer's forward keeps for its backward (thinc's ``fwd_state``).

    The kept arrays live in the layer's workspace; ``backward`` overwrites ``gates`` (and GRU's ``hn``) with
    their gradients, so a result is consumed by one backward.
    Arrays are time-major rows (rows, ·) in the :class:`rnnfast._layout.Layout` (padded: T·B rows; packed:
    the real steps only, the batch sorted by decreasing length).
    """

    cell: CellSpec
    weights: Weights
    x: np.ndarray                           # (rows, I) the input
    h0: np.ndarray                          # (B, H), followed in memory by out: [h_0, h_1 .. h_T]
    c0: Optional[np.ndarray]                # (B, H) LSTM, else None
    layout: "Layout"
    out: np.ndarray                         # (rows, H) h_t
    gates: Optional[np.ndarray] = None      # (rows, G·H) activated gates (LSTM, GRU)
    c: Optional[np.ndarray] = None          # (rows, H) c_t (LSTM)
    tanh_c: Optional[np.ndarray] = None     # (rows, H) tanh(c_t) (LSTM)
    hn: Optional[np.ndarray] = None         # (rows, H) W_hn h_{t-1} + b_hn (GRU)
    workspace: Any = field(default=None, repr=False)     # the layer's Workspace, for backward's buffers
    key: tuple = ()                                      # this run's prefix in the workspace
    # W_ih (G·H, I) and W_hh (G·H, H) as this forward read them: backward computes the gradient of the forward
    # that ran even if the caller changes the weights in between (an optimizer step before backward), as
    # it does for x (torch raises there instead)
    w_ih: Optional[np.ndarray] = None
    w_hh: Optional[np.ndarray] = None

    @property
    def h_n(self) -> np.ndarray:
        """(B, H) each row's state at its own last step (h0 when T = 0)."""
        return _last(self.out, self.h0, self.layout)

    @property
    def c_n(self) -> Optional[np.ndarray]:
        """(B, H) each row's cell state at its own last step (LSTM), else None."""
        if self.c is None or self.c0 is None:
            return None
        return _last(self.c, self.c0, self.layout)


def _last(seq: np.ndarray, initial: np.ndarray, layout: "Layout") -> np.ndarray:
    """(B, H) each sequence's row at its own last step of seq (rows, H); initial when T = 0."""
    if layout.T == 0:
        return initial
    if layout.last is None:
        return seq[(layout.T - 1) * layout.B:]
    return seq[layout.last]


def _packed(workspace: Any, key: tuple, K: int, N: int, dtype: np.dtype,
            options: KernelOptions, then_N: int = 0) -> Optional[np.ndarray]:
    """Workspace for the kernel's packed copy of a (K, N) recurrent operand, and of a (K, then_N) one after it
    (each in whole panels of its own: more than a (K, N + then_N) operand's); None selects BLAS."""
    if options.step_gemm == "blas":
        return None
    size = _recurrent.packed_size(dtype.itemsize, K, N) + (_recurrent.packed_size(dtype.itemsize, K, then_N)
                                                           if then_N else 0)
    return workspace.buffer(key + ("packed",), (size,), dtype)


def _widths_and_biases(cell: CellSpec, weights: Weights) -> Tuple[int, int, Optional[np.ndarray],
                                                                    Optional[np.ndarray]]:
    """(H, G·H, bias, b_hn) of one direction of one layer, as the forward kernels take them."""
    H = weights.w_hh.data.shape[1]
    return (H, cell.width(H)) + kernel_biases(cell, weights, H)


def forward_training(cell: CellSpec, weights: Weights, x: np.ndarray, h0: np.ndarray, c0: Optional[np.ndarray],
                     layout: "Layout", options: KernelOptions, *, workspace: Any, key: tuple,
                     out: Optional[np.ndarray] = None, x_padded: Optional[np.ndarray] = None,
                     out_padded: Optional[np.ndarray] = None) -> ForwardResult:
    """Run one direction of one layer over ``x``, keeping what :func:`backward` needs.

    Parameters
    ----------
    cell : CellSpec
        The row of the table of cells.
    weights : Weights
        The parameters (their ``.data`` is read).
    x : ndarray (rows, I)
        The layout's rows, C-contiguous, of the weights' dtype.
    h0, c0 : ndarray (B, H)
        The initial state (``c0`` None but for LSTM), in the layout's batch order.
    layout : Layout
        Padded (T·B rows) or packed (the real steps, sorted by decreasing length).
    options : KernelOptions
    workspace : Workspace
        Where the kept activations and scratch live between calls (:class:`rnnfast._buffers.Workspace`).
    key : tuple
        This run's prefix in the workspace (layer, direction).
    out : ndarray (B + rows, H), optional
        Where to write [h_0, h_1 .. h_T]: a fresh array for outputs returned to the user (default: the
        workspace's).
    x_padded : ndarray (T'·B, I), optional
        Packed layout only: the padded input, from which the kernel gathers ``x`` (then its output).
    out_padded : ndarray (T'·B, H), optional
        Packed layout only: also receives h_t padded, zero past each length (steps >= T untouched).

    Returns
    -------
    ForwardResult
    """
    T, B, rows = layout.T, layout.B, layout.rows
    dtype = x.dtype
    H, GH, bias, b_hn = _widths_and_biases(cell, weights)
    lstm, gru = cell.family == "lstm", cell.family == "gru"
    # (B + rows, H) h_0, h_1 .. h_T in one array, so that padded BPTT's dW_hh = Σ_t dA_tᵀ h_{t-1} is one GEMM
    states = workspace.buffer(key + ("out",), (B + rows, H), dtype) if out is None else out
    states[:B] = h0
    buf = workspace.buffer
    fwd = ForwardResult(cell, weights, x, states[:B], c0, layout, states[B:],
                        gates=buf(key + ("gates",), (rows, GH), dtype) if lstm or gru else None,   # (rows, GH)
                        c=buf(key + ("c",), (rows, H), dtype) if lstm else None,                   # (rows, H)
                        tanh_c=buf(key + ("tanh_c",), (rows, H), dtype) if lstm else None,         # (rows, H)
                        hn=buf(key + ("hn",), (rows, H), dtype) if gru else None,                  # (rows, H)
                        workspace=workspace, key=key,
                        w_ih=workspace.kept_copy(key + ("w_ih",), weights.w_ih.data),      # (GH, I)
                        w_hh=workspace.kept_copy(key + ("w_hh",), weights.w_hh.data))      # (GH, H)
    if T and B:
        scratch = buf(key + ("scratch",), (B, GH), dtype) if gru else None                        # (B, GH)
        by_step = _input_by_step(T, B, x, H, GH, False, layout, options)   # packed: W_hhᵀ, then W_ihᵀ if so
        _recurrent.forward(cell.code, T, layout.batch_sizes, x, weights.w_ih.data, weights.w_hh.data, bias,
                           b_hn, fwd.h0, c0, fwd.gates, fwd.c, fwd.tanh_c, fwd.hn, fwd.out, scratch,
                           _packed(workspace, key + ("forward",), H + (x.shape[1] if by_step else 0), GH, dtype,
                                   options), options.threads,
                           options.unit_split_bytes, options.unit_split_backward_h_per_row,
                           x_padded=x_padded, index=layout.index, order=layout.sorted_indices,
                           out_padded=out_padded, step_input=by_step)   # (index, order: read only when padded)
    return fwd


class InferenceResult(NamedTuple):
    """What one direction of one layer's :func:`forward_inference` leaves: the outputs and the final states
    (in the layout's batch order)."""

    out: np.ndarray                 # (rows, H) h_t
    h_n: np.ndarray                 # (B, H) each row's state at its own last step
    c_n: Optional[np.ndarray]       # (B, H) LSTM, else None


def inference_plan(cell: CellSpec, T: int, B: int, H: int, itemsize: int,
                   options: Optional[KernelOptions] = None) -> Tuple[int, str, bool]:
    """(threads, plan, fused) that :func:`forward_inference` would use on a padded batch: plan "rows" or
    "units"; fused: one product a step, [x_t | h_{t-1}] [W_ih | W_hh]ᵀ (LSTM and Elman by rows)."""
    o = current_options() if options is None else options
    return _recurrent.inference_plan(cell.code, o.threads, T, B, H, itemsize, o.unit_split_bytes)


def forward_inference(cell: CellSpec, weights: Weights, x: np.ndarray, h0: np.ndarray, c0: Optional[np.ndarray],
                      layout: "Layout", options: KernelOptions, *, workspace: Any, key: tuple,
                      out: Optional[np.ndarray] = None) -> InferenceResult:
    """Run one direction of one layer over ``x`` keeping nothing for BPTT (csrc/_inference.pxi).

    The arguments are :func:`forward_training`'s, but ``out`` (rows, H) (default: the workspace's) receives
    h_1 .. h_T only. The workspace holds O(B·G·H) scratch and the packed weights, never a (rows, ·) array
    but ``out``. The results equal :func:`forward_training`'s to rounding (the input projection sums in
    another order: the step micro-kernel's instead of BLAS's GEMM, for LSTM and Elman in one sum with the
    recurrent product; :func:`inference_plan`).

    Returns
    -------
    InferenceResult
    """
    T, B, rows = layout.T, layout.B, layout.rows
    dtype = x.dtype
    H, GH, bias, b_hn = _widths_and_biases(cell, weights)
    lstm, gru = cell.family == "lstm", cell.family == "gru"
    buf, k = workspace.buffer, key + ("inference",)
    if out is None:
        out = buf(k + ("out",), (rows, H), dtype)                                             # (rows, H)
    c = None
    if lstm:
        c = buf(k + ("c",), (B, H), dtype)                                                    # (B, H) c_t
        c[...] = c0
    if T and B:
        K = x.shape[1] + H                  # LSTM, Elman: one product a step, [x_t | h_{t-1}] [W_ih | W_hh]ᵀ
        _recurrent.forward_inference(
            cell.code, T, layout.batch_sizes, x, weights.w_ih.data, weights.w_hh.data, bias, b_hn, h0, c, out,
            buf(k + ("gates",), (B, GH), dtype) if lstm or gru else None,                     # (B, GH)
            buf(k + ("tanh_c",), (B, H), dtype) if lstm else None,                            # (B, H)
            buf(k + ("hn",), (B, H), dtype) if gru else None,                                 # (B, H)
            buf(k + ("scratch",), (B, GH), dtype) if gru else None,                           # (B, GH)
            _packed(workspace, k, K, GH, dtype, options),
            None if gru else buf(k + ("w_cat",), (GH, K), dtype),                             # (GH, I + H)
            None if gru else buf(k + ("z",), (B, K), dtype),                                  # (B, I + H)
            options.threads, options.unit_split_bytes, options.unit_split_backward_h_per_row)
    return InferenceResult(out, _last(out, h0, layout), c)


def backward(dout: np.ndarray, dh_n: np.ndarray, dc_n: Optional[np.ndarray], fwd: ForwardResult,
             options: KernelOptions, *, dh0: np.ndarray, dc0: Optional[np.ndarray],
             dx: Optional[np.ndarray] = None, input_grad: bool = True) -> Optional[np.ndarray]:
    """BPTT through one :class:`ForwardResult` (which it consumes).

    Parameters
    ----------
    dout : ndarray (rows, H)
        ∂L/∂out in the forward's layout, C-contiguous.
    dh_n, dc_n : ndarray (B, H)
        ∂L/∂h_n and (LSTM) ∂L/∂c_n; ``dc_n`` None but for LSTM.
    fwd : ForwardResult
    options : KernelOptions
    dh0, dc0 : ndarray (B, H)
        Filled with ∂L/∂h0 and (LSTM) ∂L/∂c0.
    dx : ndarray (rows, I), optional
        Where to write ∂L/∂x (default: the workspace's).
    input_grad : bool
        False: ∂L/∂x is not wanted, and the kernel skips its GEMM (dx_t = dA_t W_ih); None is returned.

    Returns
    -------
    dx : ndarray (rows, I), or None without ``input_grad``
        ∂L/∂x. The weight gradients are added into the parameters' ``.grad``.
    """
    x, w, layout = fwd.x, fwd.weights, fwd.layout
    T, B, rows = layout.T, layout.B, layout.rows
    dtype = x.dtype
    H = w.w_hh.data.shape[1]
    GH = fwd.cell.width(H)
    if dx is None and input_grad:
        dx = fwd.workspace.buffer(fwd.key + ("dx",), x.shape, dtype)                          # (rows, I)
    if not input_grad:
        dx = None
    if T == 0 or B == 0:
        if dx is not None:
            dx[...] = 0
        dh0[...] = dh_n
        if dc0 is not None:
            dc0[...] = dc_n
        return dx
    dA = fwd.gates if fwd.gates is not None else fwd.workspace.buffer(fwd.key + ("dA",), (rows, GH), dtype)
    # packed: h_{t-1} beside each row, for dW_hh as one GEMM
    h_prev = fwd.workspace.buffer(fwd.key + ("h_prev",), (rows, H), dtype) if layout.is_packed else None
    by_step = dx is not None and _input_by_step(T, B, x, H, GH, True, layout, options)   # packed: W_hh, W_ih
    packed = _packed(fwd.workspace, fwd.key + ("backward",), GH, H, dtype, options,     # W_hh, then W_ih
                     then_N=x.shape[1] if by_step else 0)
    assert fwd.w_ih is not None and fwd.w_hh is not None                # kept by forward_training
    _recurrent.backward(fwd.cell.code, T, layout.batch_sizes, x, fwd.w_ih, fwd.w_hh, fwd.h0, fwd.c0, dA,
                        fwd.c, fwd.tanh_c, fwd.hn, fwd.out, dout, dh_n, dc_n, dx, w.w_ih.grad, w.w_hh.grad,
                        None if w.b_ih is None else w.b_ih.grad, None if w.b_hh is None else w.b_hh.grad,
                        dh0, dc0, h_prev, packed, options.threads, options.unit_split_bytes,
                        options.unit_split_backward_h_per_row, options.weight_gradients == "blas", by_step)
    return dx


# step's arrays do not fit together: a parameter or the state changed shape, layout or dtype in place
StepArgumentsError = _recurrent.StepArgumentsError


def step(cell: CellSpec, weights: Weights, x: np.ndarray, h: np.ndarray, c: Optional[np.ndarray],
         h_out: np.ndarray, c_out: Optional[np.ndarray], workspace: Any) -> None:
    """One timestep of one layer for streaming: h_out (B, H) (and c_out) from x (B, I), h, c (B, H).

    Matrix-vector products on one thread, no BLAS and nothing kept: a call costs microseconds. The arrays
    must be C-contiguous, of one dtype and consistent shapes (the layers check them).
    """
    B, H, dtype = x.shape[0], h.shape[1], x.dtype
    scratch = workspace.get(("step", B))           # a layer's workspace holds one dtype
    if scratch is None:
        n_work = _recurrent.step_work_size(cell.code, B, H)
        scratch = workspace[("step", B)] = (
            np.empty((B, cell.width(H)), dtype),                   # (B, GH) gates
            np.empty(n_work, dtype) if n_work else None)           # LSTM tanh(c); GRU h W_hhᵀ, hn
    gates, work = scratch
    b_ih, b_hh = weights.b_ih, weights.b_hh
    _recurrent.step(cell.code, x, weights.w_ih.data, weights.w_hh.data, None if b_ih is None else b_ih.data,
                    None if b_hh is None else b_hh.data, h, c, gates, work, h_out, c_out)


# ------------------------------------------------------------------------------------------------ Jordan
JORDAN_ACTIVATIONS = dict(_recurrent.JORDAN_ACTIVATIONS)   # φ and g by name -> the kernels' code


class JordanWeights(NamedTuple):
    """The Jordan network's parameters (objects with ``.data`` and ``.grad``); biases None without."""

    w_ih: Any       # (H, I)
    w_yh: Any       # (H, O) output feedback
    b_h: Any        # (H,) or None
    w_hy: Any       # (O, H) the head
    b_y: Any        # (O,) or None


@dataclass
class JordanForward:
    """What a Jordan forward keeps for its backward: the input, s_t and [y_0, y_1 .. y_T]."""

    act: int                    # φ's code
    out_act: int                # g's code
    weights: JordanWeights
    x: np.ndarray               # (T, B, I)
    s: np.ndarray               # (T, B, H) s_t
    ys: np.ndarray              # (T + 1, B, O) y_0 .. y_T
    workspace: Any = field(default=None, repr=False)
    kept: Tuple[np.ndarray, ...] = ()   # W_ih, W_yh, W_hy as the forward read them (see ForwardResult.w_ih)


def _data_or_none(p: Any) -> Optional[np.ndarray]:
    return None if p is None else p.data


def _jordan_packed(workspace: Any, name: str, K: int, N: int, dtype: np.dtype,
                   options: KernelOptions) -> Optional[np.ndarray]:
    return _packed(workspace, ("jordan", name), K, N, dtype, options)


def jordan_forward_training(act: int, out_act: int, weights: JordanWeights, x: np.ndarray, y0: np.ndarray,
                            options: KernelOptions, *, workspace: Any, ys: np.ndarray) -> JordanForward:
    """Run the Jordan network over ``x`` (T, B, I), C-contiguous of the weights' dtype, from ``y0`` (B, O);
    ``ys`` (T + 1, B, O) receives [y_0, y_1 .. y_T]. Returns what :func:`jordan_backward` needs."""
    T, B = x.shape[:2]
    dtype = x.dtype
    H, O = weights.w_ih.data.shape[0], weights.w_hy.data.shape[0]
    ys[0] = y0
    s = workspace.buffer(("jordan", "s"), (T, B, H), dtype)                               # (T, B, H)
    if T and B:
        _recurrent.jordan_forward(act, out_act, x, weights.w_ih.data, weights.w_yh.data, _data_or_none(weights.b_h),
                                  weights.w_hy.data, _data_or_none(weights.b_y), s, ys,
                                  _jordan_packed(workspace, "forward_yh", O, H, dtype, options),
                                  _jordan_packed(workspace, "forward_hy", H, O, dtype, options), options.threads)
    kept = tuple(workspace.kept_copy(("jordan", "kept", name), p.data)
                 for name, p in (("w_ih", weights.w_ih), ("w_yh", weights.w_yh), ("w_hy", weights.w_hy)))
    return JordanForward(act, out_act, weights, x, s, ys, workspace, kept)


def jordan_forward_inference(act: int, out_act: int, weights: JordanWeights, x: np.ndarray, y0: np.ndarray,
                             options: KernelOptions, *, workspace: Any, ys: np.ndarray) -> None:
    """As :func:`jordan_forward_training`, keeping nothing for a backward: each step projects its own x_t into
    one step's s (B, H), so only ``ys`` (T + 1, B, O) is written."""
    T, B = x.shape[:2]
    dtype = x.dtype
    I = x.shape[2]
    H, O = weights.w_ih.data.shape[0], weights.w_hy.data.shape[0]
    ys[0] = y0
    if T and B:
        packed_yh = _jordan_packed(workspace, "forward_yh", O, H, dtype, options)
        _recurrent.jordan_forward(act, out_act, x, weights.w_ih.data, weights.w_yh.data, _data_or_none(weights.b_h),
                                  weights.w_hy.data, _data_or_none(weights.b_y),
                                  workspace.buffer(("jordan", "s_step"), (1, B, H), dtype), ys, packed_yh,
                                  _jordan_packed(workspace, "forward_hy", H, O, dtype, options), options.threads,
                                  True, None if packed_yh is None else
                                  _jordan_packed(workspace, "forward_ih", I, H, dtype, options))


def jordan_backward(dy: np.ndarray, fwd: JordanForward, options: KernelOptions, *, dy0: np.ndarray,
                    dx: np.ndarray) -> np.ndarray:
    """BPTT through a :class:`JordanForward`: ``dy`` (T, B, O) is ∂L/∂y_t from outside (with ∂L/∂y_n already
    added at the last step), a C-contiguous array the kernel overwrites; fills ``dy0`` (B, O) and ``dx``
    (T, B, I), adds the weight gradients into ``.grad`` and returns ``dx``."""
    w, x = fwd.weights, fwd.x
    T, B = x.shape[:2]
    dtype = x.dtype
    H, O = w.w_ih.data.shape[0], w.w_hy.data.shape[0]
    if T == 0 or B == 0:
        dx[...] = 0
        return dx
    da = fwd.workspace.buffer(("jordan", "da"), (T, B, H), dtype)                        # (T, B, H)
    w_ih, w_yh, w_hy = fwd.kept                                         # as the forward read them
    _recurrent.jordan_backward(fwd.act, fwd.out_act, x, w_ih, w_yh, w_hy, fwd.s, fwd.ys, dy,
                               da, dx, w.w_ih.grad, w.w_yh.grad, None if w.b_h is None else w.b_h.grad,
                               w.w_hy.grad, None if w.b_y is None else w.b_y.grad, dy0,
                               _jordan_packed(fwd.workspace, "backward_yh", H, O, dtype, options),
                               _jordan_packed(fwd.workspace, "backward_hy", O, H, dtype, options),
                               options.threads, options.weight_gradients == "blas")
    return dx


def jordan_step(act: int, out_act: int, weights: JordanWeights, x: np.ndarray, y: np.ndarray,
                s_out: np.ndarray, y_out: np.ndarray) -> None:
    """One Jordan timestep for streaming: s_out (B, H) and y_out (B, O) from x (B, I) and y (B, O).
    Matrix-vector products on one thread; C-contiguous arrays of one dtype (the layer checks them)."""
    _recurrent.jordan_step(act, out_act, x, weights.w_ih.data, weights.w_yh.data, _data_or_none(weights.b_h),
                           weights.w_hy.data, _data_or_none(weights.b_y), y, s_out, y_out)


_INPUT_GEMM_ENV = "RNNFAST_INPUT_GEMM"
_CALIBRATION_ROWS = 16              # rows a step of the calibration's micro-kernel runs (a thread's batch chunk)
_input_gemm_choices: dict = {}      # (dtype, I, G·H) -> "step" or "blas", measured once per process


def _read_input_gemm_env() -> Optional[str]:
    """RNNFAST_INPUT_GEMM as read when rnnfast is imported (a lookup per call would cost more than the rest of
    the decision): "step", "blas" or None (unset or empty)."""
    env = os.environ.get(_INPUT_GEMM_ENV, "").strip().lower()
    if env and env not in ("step", "blas"):
        raise ValueError(f"{_INPUT_GEMM_ENV} must be 'step' or 'blas', got {env!r}")
    return env or None


_input_gemm_env = _read_input_gemm_env()


def input_gemm_choice(dtype: Any, I: int, GH: int) -> str:
    """What ``KernelOptions(input_gemm="auto")`` takes for the input side's products of a layer with I inputs
    and G·H gate rows: ``RNNFAST_INPUT_GEMM`` ("step" or "blas") if set, else the result of a calibration run
    once per process and shape, like an FFTW plan: x_t W_ihᵀ and dx_t = dA_t W_ih timed on the calling
    thread (CPU time, best of 5 alternations, a few ms) by the packed micro-kernel 16 rows at a time and by
    one BLAS GEMM; "step" if the micro-kernel takes no longer. The choice does not depend on the batch or the
    thread count, so a layer's results do not either; both ways agree to rounding. The environment variable
    is read when rnnfast is imported."""
    if _input_gemm_env is not None:
        return _input_gemm_env
    key = (dtype, I, GH)
    choice = _input_gemm_choices.get(key)
    if choice is None:
        choice = _input_gemm_choices[key] = _calibrate_input_gemm(np.dtype(dtype), I, GH, _CALIBRATION_ROWS)
    return choice


def input_plan(T: int, B: int, I: int, H: int, GH: int, dtype: Any, backward: bool, *, packed_layout: bool = False,
               sparse: bool = False, options: Optional[KernelOptions] = None) -> str:
    """"step" or "blas": how forward (backward) of a layer would run its input side's products (``input_gemm``),
    the kernel's own decision (csrc/_plan.pxi: _input_by_step) after the options' (packed_layout: a
    ``lengths`` batch; sparse: an x the kernels take as sparse, ``_recurrent.sparse_input``)."""
    o = current_options() if options is None else options
    dt = np.dtype(dtype)
    return _recurrent.input_plan(o.threads, T, B, I, H, GH, dt.itemsize, backward, o.unit_split_bytes,
                                 o.unit_split_backward_h_per_row, o.input_by_step(dt, I, GH),
                                 o.step_gemm != "blas", packed_layout, sparse)


def _input_by_step(T: int, B: int, x: np.ndarray, H: int, GH: int, backward: bool, layout: "Layout",
                   options: KernelOptions) -> bool:
    """Whether forward (backward) may run the input side's products inside the loop, as :func:`input_plan` says
    for a dense x (the forward kernel declines for a sparse one itself, rather than x being scanned twice)."""
    if layout.is_packed or not options.input_by_step(x.dtype, x.shape[1], GH):
        return False
    return input_plan(T, B, x.shape[1], H, GH, x.dtype, backward, options=options) == "step"


def _calibrate_input_gemm(dtype: np.dtype, I: int, GH: int, m: int) -> str:
    """"step" or "blas": which runs the input side's two products faster here (input_gemm_choice)."""
    steps = max(1, min(64, int(2e7 / (2.0 * m * I * GH))))     # about 20 MFLOP a product
    rng = np.random.default_rng(0)
    packed = blas = 0.0
    with _threads.blas_single_thread():
        for K, N in ((I, GH), (GH, I)):                       # forward x_t W_ihᵀ, backward dA_t W_ih
            a = rng.standard_normal((steps * m, K)).astype(dtype)
            w = rng.standard_normal((N, K)).astype(dtype)
            c = np.empty((steps * m, N), dtype)
            work = np.empty(_recurrent.packed_size(dtype.itemsize, K, N), dtype)
            p, b = _recurrent._time_input_gemm(a, w, c, work, m, 5)
            packed, blas = packed + p, blas + b
    return "step" if packed <= blas else "blas"
