"""Type stub for the compiled kernels (csrc/recurrent.pyx -> rnnfast._recurrent).

Array arguments are C-contiguous float32 or float64 arrays, one dtype per call (``lengths``: int32); the
ones the kernel's comment marks "or None" / "else None" may be None. tests/test_packaging.py checks that the
names and parameters here match the compiled module, so a change of signature in csrc/ comes here too.
"""
from typing import Any

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
def loop_plan(num_threads: int, T: int, B: int, H: int, GH: int, itemsize: int, backward: bool,
              split_bytes: int, split_h_per_row: int) -> tuple[int, str]: ...
def zero_arrays(arrays: list[_Arr], num_threads: int) -> None: ...
def copy_rows(src: _Arr, index: _Arr, dst: _Arr) -> None: ...
def _wgrad_product(a: _Arr, b: _Arr, c: _Arr, col0: int, use_blas: bool) -> None: ...
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
    dx: _Arr,                # OUT   (rows, I)
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
) -> None: ...
def step_work_size(cell: int, B: int, H: int) -> int: ...
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
