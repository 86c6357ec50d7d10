"""Type stub for the compiled kernels (csrc/recurrent.pyx -> rnnfast._recurrent).

Array arguments are C-contiguous float32 or float64 arrays, one dtype per call (``lengths``: int32); the
ones the kernel's comment marks "or None" / "else None" may be None. tests/test_packaging.py checks that the
names and parameters here match the compiled module, so a change of signature in csrc/ comes here too.
"""
from typing import Any, Optional

from numpy.typing import NDArray

_Arr = NDArray[Any]
_Opt = NDArray[Any] | None

ELMAN_TANH: int
ELMAN_RELU: int
ELMAN_SIGMOID: int
LSTM: int
GRU: int
_OPENMP_ENABLED: bool

def packed_size(itemsize: int, K: int, N: int) -> int: ...
def sparse_input(x: _Arr) -> bool: ...
def loop_plan(num_threads: int, T: int, B: int, H: int, GH: int, itemsize: int, backward: bool,
              split_bytes: int, split_h_per_row: int) -> tuple[int, str]: ...
def input_plan(num_threads: int, T: int, B: int, I: int, H: int, GH: int, itemsize: int, backward: bool,
               split_bytes: int, split_h_per_row: int, step_input: bool, packed: bool, packed_layout: bool,
               sparse: bool) -> str: ...
def _time_input_gemm(a: _Arr, w: _Arr, c: _Arr, packed: _Arr, m: int, repeats: int) -> tuple[float, float]: ...
def zero_arrays(arrays: list[_Arr], num_threads: int) -> None: ...
def copy_rows(src: _Arr, index: _Arr, dst: _Arr, num_threads: int = 1) -> None: ...
def crop_windows(src: _Arr, idx: _Arr, start: _Arr, end: _Arr, dst: _Arr, stride: int = 0) -> None: ...
def linear_forward(x: _Arr, w: _Arr, y: _Arr, num_threads: int) -> None: ...
def linear_backward(dy: _Arr, x: _Arr, w: _Arr, dw: _Arr, dx: Optional[_Arr], num_threads: int) -> None: ...
def cross_entropy_rows(x: _Arr, labels: _Arr, w: _Opt, scale: float, grad: _Arr, loss: _Arr,
                       num_threads: int) -> int: ...
def sum_over_time(seq: _Arr, steps: _Arr, total: _Arr) -> None: ...
def spread_over_time(g: _Arr, steps: _Arr, dout: _Arr) -> None: ...
def max_over_time(seq: _Arr, steps: _Arr, y: _Arr, argmax: _Opt = None) -> None: ...
def max_over_time_backward(argmax: _Arr, dy: _Arr, dout: _Arr) -> None: ...
def adam_update(p: _Arr, g: _Arr, m: _Arr, v: _Arr, vmax: _Opt, maximize: bool, l2: float, decay: float,
                beta1: float, beta2: float, bias2_sqrt: float, eps: float, step_size: float,
                num_threads: int) -> None: ...
def sum_of_squares(g: _Arr) -> float: ...
NORMAL_BLOCK: int
def add_normal(out: _Arr, x: _Opt, sigma: float, seed: int, num_threads: int) -> None: ...
def _wgrad_product(a: _Arr, b: _Arr, c: _Arr, col0: int, use_blas: bool) -> None: ...
def _wgrad_pair(a: _Arr, b1: _Arr, c1: _Arr, b2: _Arr, c2: _Arr) -> bool: ...
def forward(
    cell: int,               # ELMAN_*, LSTM or GRU
    T: int,                  # steps
    batch_sizes: _Opt,       # IN   (T,) int32 rows of each step (packed), or None (padded: B each)
    x: _Arr,                 # IN   (rows, I) time-major
    w_ih: _Arr,              # IN   (G·H, I)
    w_hh: _Arr,              # IN   (G·H, H)
    bias: _Opt,              # IN   (G·H,) or None
    b_hn: _Opt,              # IN   (H,) GRU, else None
    h0: _Arr,                # IN   (B, H)
    c0: _Opt,                # IN   (B, H) LSTM, else None
    gates: _Opt,             # OUT  (rows, G·H) LSTM, GRU; Elman: None
    c: _Opt,                 # OUT  (rows, H) LSTM, else None
    tanh_c: _Opt,            # OUT  (rows, H) LSTM, else None
    hn: _Opt,                # OUT  (rows, H) GRU, else None
    out: _Arr,               # OUT  (rows, H)
    scratch: _Opt,           # WORK (B, G·H) GRU, else None
    packed: _Opt,            # WORK (packed_size,) or None
    num_threads: int,
    split_bytes: int,
    split_h_per_row: int,
    x_padded: _Opt = ...,    # IN   (T'·B, I) packed: x gathered from here (x then OUT)
    index: _Opt = ...,       # IN   (rows,) intp packed: the padded row of each row
    order: _Opt = ...,       # IN   (B,) intp packed: sorted_indices
    out_padded: _Opt = ...,  # OUT  (T'·B, H) packed: h_t padded
    step_input: bool = ...,  # x_t W_ihᵀ inside the loop; packed then (packed_size(H + I, G·H),)
) -> None: ...
def inference_plan(cell: int, num_threads: int, T: int, B: int, H: int, itemsize: int,
                   split_bytes: int) -> tuple[int, str, bool]: ...
def forward_inference(
    cell: int,               # ELMAN_*, LSTM or GRU
    T: int,                  # steps
    batch_sizes: _Opt,       # IN     (T,) int32 rows of each step (packed), or None (padded: B each)
    x: _Arr,                 # IN     (rows, I) time-major
    w_ih: _Arr,              # IN     (G·H, I)
    w_hh: _Arr,              # IN     (G·H, H)
    bias: _Opt,              # IN     (G·H,) or None
    b_hn: _Opt,              # IN     (H,) GRU, else None
    h0: _Arr,                # IN     (B, H)
    c: _Opt,                 # IN/OUT (B, H) LSTM: c0 in, the final c out; else None
    out: _Arr,               # OUT    (rows, H)
    gates: _Opt,             # WORK   (B, G·H) LSTM, GRU; Elman: None
    tanh_c: _Opt,            # WORK   (B, H) LSTM, else None
    hn: _Opt,                # WORK   (B, H) GRU, else None
    scratch: _Opt,           # WORK   (B, G·H) GRU, else None
    packed: _Opt,            # WORK   (packed_size(I + H, G·H),) or None
    w_cat: _Opt,             # WORK   (G·H, I + H) LSTM, Elman, else None
    z: _Opt,                 # WORK   (B, I + H) LSTM, Elman, else None
    num_threads: int,
    split_bytes: int,
    split_h_per_row: int,
) -> None: ...
def backward(
    cell: int,
    T: int,                  # steps
    batch_sizes: _Opt,       # IN    (T,) int32 rows of each step (packed), or None (padded: B each)
    x: _Arr,                 # IN    (rows, I) time-major
    w_ih: _Arr,              # IN    (G·H, I)
    w_hh: _Arr,              # IN    (G·H, H)
    h0: _Arr,                # IN    (B, H)
    c0: _Opt,                # IN    (B, H) LSTM, else None
    gates: _Arr,             # INOUT (rows, G·H)
    c: _Opt,                 # IN    (rows, H) LSTM, else None
    tanh_c: _Opt,            # IN    (rows, H) LSTM, else None
    hn: _Opt,                # INOUT (rows, H) GRU, else None
    out: _Arr,               # IN    (rows, H)
    dout: _Arr,              # IN    (rows, H)
    dh_n: _Arr,              # IN    (B, H)
    dc_n: _Opt,              # IN    (B, H) LSTM, else None
    dx: _Opt,                # OUT   (rows, I), or None: not computed
    dw_ih: _Arr,             # INOUT (G·H, I)
    dw_hh: _Arr,             # INOUT (G·H, H)
    db_ih: _Opt,             # INOUT (G·H,) or None
    db_hh: _Opt,             # INOUT (G·H,) or None
    dh0: _Arr,               # OUT   (B, H)
    dc0: _Opt,               # OUT   (B, H) LSTM, else None
    h_prev: _Opt,            # WORK  (rows, H) packed, else None
    packed: _Opt,            # WORK  (packed_size,) or None
    num_threads: int,
    split_bytes: int,
    split_h_per_row: int,
    wgrad_blas: bool,
    step_input: bool = ...,  # dx_t inside the loop; packed then (packed_size(G·H, H + I),)
) -> None: ...
def step_work_size(cell: int, B: int, H: int) -> int: ...
class StepArgumentsError(ValueError): ...
def step(
    cell: int,
    x: _Arr,                 # IN   (B, I)
    w_ih: _Arr,              # IN   (G·H, I)
    w_hh: _Arr,              # IN   (G·H, H)
    b_ih: _Opt,              # IN   (G·H,) or None (no bias)
    b_hh: _Opt,              # IN   (G·H,) or None (no bias)
    h: _Arr,                 # IN   (B, H)
    c: _Opt,                 # IN   (B, H) LSTM, else None
    gates: _Arr,             # WORK (B, G·H)
    work: _Opt,              # WORK (step_work_size,) LSTM, GRU, else None
    h_out: _Arr,             # OUT  (B, H)
    c_out: _Opt,             # OUT  (B, H) LSTM, else None
) -> None: ...
def openmp_enabled() -> bool: ...
def _float32_approximation(name: str, x: NDArray[Any], y: NDArray[Any]) -> None: ...
def _recurrent_product(a: _Arr, w: _Arr, c: _Arr, accumulate: bool) -> None: ...
def _set_isa_limit(level: int) -> int: ...

JORDAN_ACTIVATIONS: dict[str, int]

def jordan_forward(
    act: int,                # φ: ELMAN_TANH, ELMAN_RELU or ELMAN_SIGMOID
    out_act: int,            # g: JORDAN_ACTIVATIONS["identity"] or one of φ's codes
    x: _Arr,                 # IN    (T, B, I)
    w_ih: _Arr,              # IN    (H, I)
    w_yh: _Arr,              # IN    (H, O)
    b_h: _Opt,               # IN    (H,) or None
    w_hy: _Arr,              # IN    (O, H)
    b_y: _Opt,               # IN    (O,) or None
    s: _Arr,                 # OUT   (T, B, H); inference: WORK (1, B, H)
    ys: _Arr,                # INOUT (T + 1, B, O)
    packed_yh: _Opt,         # WORK  (packed_size(O, H),) or None
    packed_hy: _Opt,         # WORK  (packed_size(H, O),) or None
    num_threads: int,
    inference: bool = ...,   # keep nothing for BPTT
    packed_ih: _Opt = ...,   # WORK  (packed_size(I, H),) or None (inference)
) -> None: ...
def jordan_backward(
    act: int,
    out_act: int,
    x: _Arr,                 # IN    (T, B, I)
    w_ih: _Arr,              # IN    (H, I)
    w_yh: _Arr,              # IN    (H, O)
    w_hy: _Arr,              # IN    (O, H)
    s: _Arr,                 # IN    (T, B, H)
    ys: _Arr,                # IN    (T + 1, B, O)
    dz: _Arr,                # INOUT (T, B, O)
    da: _Arr,                # OUT   (T, B, H)
    dx: _Arr,                # OUT   (T, B, I)
    dw_ih: _Arr,             # INOUT (H, I)
    dw_yh: _Arr,             # INOUT (H, O)
    db_h: _Opt,              # INOUT (H,) or None
    dw_hy: _Arr,             # INOUT (O, H)
    db_y: _Opt,              # INOUT (O,) or None
    dy0: _Arr,               # OUT   (B, O)
    packed_yh: _Opt,         # WORK  (packed_size(H, O),) or None
    packed_hy: _Opt,         # WORK  (packed_size(O, H),) or None
    num_threads: int,
    wgrad_blas: bool,
) -> None: ...
def jordan_step(
    act: int,
    out_act: int,
    x: _Arr,                 # IN  (B, I)
    w_ih: _Arr,              # IN  (H, I)
    w_yh: _Arr,              # IN  (H, O)
    b_h: _Opt,               # IN  (H,) or None
    w_hy: _Arr,              # IN  (O, H)
    b_y: _Opt,               # IN  (O,) or None
    y: _Arr,                 # IN  (B, O)
    s_out: _Arr,             # OUT (B, H)
    y_out: _Arr,             # OUT (B, O)
) -> None: ...
