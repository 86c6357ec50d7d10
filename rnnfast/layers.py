"""Recurrent layers (Elman, LSTM, GRU) and a per-timestep Linear, with PyTorch's parameters and state.

Elman, layer k:  h_t = φ(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh),   φ ∈ {tanh, relu, sigmoid}
LSTM,  layer k:  i, f, g, o = σ, σ, tanh, σ of (x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh), split in that order
                 c_t = f ⊙ c_{t-1} + i ⊙ g,    h_t = o ⊙ tanh(c_t)
GRU,   layer k:  r, z = σ(x_t W_i{r,z}ᵀ + b_i{r,z} + h_{t-1} W_h{r,z}ᵀ + b_h{r,z})
                 n = tanh(x_t W_inᵀ + b_in + r ⊙ (h_{t-1} W_hnᵀ + b_hn)),   h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}
Linear:          y = x Wᵀ + b over the last axis.

Parameters carry torch.nn's names and shapes (``weight_ih_l0`` (G·H, I), ``weight_hh_l0`` (G·H, H),
``bias_ih_l0``, ``bias_hh_l0``, ...; G = 4 for LSTM, 3 for GRU, 1 for Elman), so weights move across with
``state_dict`` / ``load_state_dict``. Layer k > 0 reads layer k-1's outputs, with dropout between layers in
``train()`` mode only. ``bidirectional=True`` adds a second direction per layer (parameters suffixed
``_reverse``) that reads each sequence backwards from its own last step; outputs are concatenated
(…, 2H) and states are (num_layers·2, B, H), ordered layer by layer, forward first, as in torch.

``backward`` runs BPTT through the last ``forward``, adds into every parameter's ``.grad`` (as torch
accumulates) and returns the gradients of the input and the initial state. It can run once per forward:
the LSTM kernel overwrites the kept gates with their gradients, as torch frees its graph.

Conventions: arrays are (T, B, I) (or (B, T, I) with ``batch_first``), states (num_layers, B, H). Inputs of
another float or integer dtype are converted to the layer's dtype; non-contiguous and read-only inputs are
copied as needed. The returned outputs are read-only, since backward reads them.

Edge cases. Empty batches and sequences are allowed: ``T = 0`` gives an empty ``out`` and ``h_n = h0``
(``c_n = c0``), ``B = 0`` empty outputs and states; backward then returns zeros (``dh0 = dh_n``) and
leaves ``.grad`` unchanged, and ``step`` on ``B = 0`` returns empty arrays. NaN and inf are not screened
out: they propagate as in torch, so a NaN in a row of ``x``, ``h0`` or in the weights makes that row's
outputs from then on NaN (rows do not mix). Every argument is checked before a kernel runs: wrong types
raise ``TypeError``, wrong shapes and sizes ``ValueError`` naming the argument and the expected shape, a
problem too large for the kernels' 32-bit indexing ``ValueError`` and one whose buffers alone exceed the
machine's physical memory ``MemoryError``, each before anything is allocated.

Threads. The kernels release the GIL, so separate layer objects run in parallel from Python threads.
One layer object is not thread-safe (it keeps scratch buffers and the forward cache): calling
``forward``, ``backward`` or ``step`` while another thread is inside one of them raises ``RuntimeError``.
"""
from __future__ import annotations

import functools
import math
import os
from typing import Any, Optional, Tuple

import numpy as np

from . import _recurrent
from ._module import Module, one_thread_at_a_time, resolve_dtype
from ._threads import blas_single_thread, get_num_threads
from ._validation import check_real

__all__ = ["Elman", "RNN", "LSTM", "GRU", "Linear"]

_NONLINEARITIES = {"tanh": _recurrent.ELMAN_TANH, "relu": _recurrent.ELMAN_RELU,
                   "sigmoid": _recurrent.ELMAN_SIGMOID}
_INT_MAX = 2**31 - 1
_STEP_GEMM = os.environ.get("RNNFAST_STEP_GEMM", "packed")


# --------------------------------------------------------------------------------------------- checks
def _check_size(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


_CACHE_LINE = 64     # bytes


def _aligned_empty(shape: tuple, dtype: Any) -> np.ndarray:
    """np.empty(shape, dtype) starting on a cache line: every buffer the kernels write.

    With the unit split, the two threads of a time loop write the two halves of every row (units [0, H/2)
    and [H/2, H), whole packed panels, so each half is a whole number of lines when the row starts on one).
    NumPy's large arrays start 16 bytes into a line, which left the line at each boundary written by both
    threads at every step. Aligned, GRU 32×50×512's training step went 63.3 → 62.3 ms (10 alternating
    rounds, 9 of them faster)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + _CACHE_LINE, np.uint8)
    start = -raw.ctypes.data % _CACHE_LINE
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def _aligned_zeros(shape: tuple, dtype: Any) -> np.ndarray:
    arr = _aligned_empty(shape, dtype)
    arr.fill(0)
    return arr


def _as_float_array(name: str, value: Any, dtype: Optional[np.dtype]) -> np.ndarray:
    """``value`` as an array of ``dtype`` (None: its own real dtype); TypeError for anything else."""
    if value is None:
        raise TypeError(f"{name} must be an array, got None")
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # ragged nested lists
        raise TypeError(f"{name} must be an array of real numbers: {exc}") from exc
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    return arr if dtype is None else arr.astype(dtype, copy=False)


def _check_shape(name: str, arr: np.ndarray, expected: Tuple[int, ...], what: str) -> None:
    if arr.shape != tuple(expected):
        raise ValueError(f"{name} must have shape {what} = {tuple(expected)}, got {arr.shape}")


def _check_lengths(lengths: Any, T: int, B: int) -> Optional[np.ndarray]:
    if lengths is None:
        return None
    arr = _as_float_array("lengths", lengths, None)
    if arr.dtype.kind == "b":
        raise TypeError(f"lengths must be an integer array, got dtype {arr.dtype}")
    if arr.shape != (B,):
        raise ValueError(f"lengths must have shape (B,) = ({B},), got {arr.shape}")
    # integral floats pass (np.array([]) is float64); they are range-checked before the cast to int
    if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
        raise TypeError(f"lengths must be an integer array, got non-integer values of dtype {arr.dtype}")
    if B and (arr.min() < 1 or arr.max() > T):
        raise ValueError(f"lengths must lie in [1, T] = [1, {T}], got min {arr.min()}, max {arr.max()}")
    return np.ascontiguousarray(arr, dtype=np.intc)


@functools.lru_cache(maxsize=None)
def _physical_memory() -> Optional[int]:
    """Bytes of RAM on this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _check_memory(nbytes: int, what: str, shape: Tuple[int, ...] = (),
                  hint: str = "split the batch, or the sequence into chunks (rnnfast.TruncatedBPTT)") -> None:
    """MemoryError now if ``nbytes`` exceed the physical memory: with overcommit such an allocation can
    succeed and the process be killed later, while the kernel writes into it."""
    total = _physical_memory()
    if total and nbytes > total:
        what += f" of shape {shape}" if shape else ""
        raise MemoryError(f"{what} needs at least {nbytes / 2**30:.3g} GiB, more than this machine's "
                          f"{total / 2**30:.3g} GiB of memory; {hint}")


def _readonly(arr: np.ndarray) -> np.ndarray:
    view = arr.view()
    view.flags.writeable = False
    return view


# -------------------------------------------------------------------------------------- recurrent base
class _Recurrent(Module):
    """Shared machinery of Elman, LSTM and GRU: parameters, input checks, the layer stack, directions, BPTT."""

    _gate_count = 1
    _has_cell_state = False
    _transient = {**Module._transient, "_cache": lambda: None, "_workspace": dict, "_verified": list}
    # Fixed at construction: the parameters' shapes and dtype, and the kernels' buffers, follow from them.
    _FROZEN = frozenset({"input_size", "hidden_size", "num_layers", "bidirectional", "dtype", "_cell",
                         "nonlinearity"})

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 dtype: Any = "float32", seed: Optional[int] = None, *, cell: int):
        super().__init__()
        self.input_size = _check_size("input_size", input_size)
        self.hidden_size = _check_size("hidden_size", hidden_size)
        self.num_layers = _check_size("num_layers", num_layers)
        self.dropout = check_real("dropout", dropout, 0.0, 1.0, high_inclusive=False)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.dtype = resolve_dtype(dtype)
        self.seed = seed
        self._cell = cell
        self._rng = np.random.default_rng(seed)
        D, H, GH = self._directions, self.hidden_size, self._gate_count * self.hidden_size
        if GH * max(self.input_size, D * H) > _INT_MAX:
            raise ValueError(f"hidden_size {H} and input_size {self.input_size} are too large for "
                             "32-bit BLAS indexing")
        n_params = D * GH * (self.input_size + (self.num_layers - 1) * D * H + self.num_layers * (H + 2 * self.bias))
        _check_memory(n_params * (2 * self.dtype.itemsize + 8), "the parameters (data, grad, float64 init)",
                      hint="use a smaller model")
        bound = 1.0 / math.sqrt(H)
        for k in range(self.num_layers):
            in_k = self.input_size if k == 0 else D * H
            for suffix in self._suffixes:
                self._register(f"weight_ih_l{k}{suffix}", self._rng.uniform(-bound, bound, (GH, in_k)), self.dtype)
                self._register(f"weight_hh_l{k}{suffix}", self._rng.uniform(-bound, bound, (GH, H)), self.dtype)
                if self.bias:
                    self._register(f"bias_ih_l{k}{suffix}", self._rng.uniform(-bound, bound, GH), self.dtype)
                    self._register(f"bias_hh_l{k}{suffix}", self._rng.uniform(-bound, bound, GH), self.dtype)
        self._cache: Optional[dict] = None
        self._workspace: dict = {}
        self._param_shapes = {name: p.shape for name, p in self._parameters.items()}
        self._verified: list = []                   # (parameter, data, grad) _check_parameters accepted
        # the widest row the kernels index in 32 bits: G·H, I or D·H
        self._width = max(GH, self.input_size, D * H)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._FROZEN and name in self.__dict__:
            raise AttributeError(f"{name} is fixed when the layer is built (the parameters' shapes and dtype "
                                 f"follow from it); build a new layer and load_state_dict into it")
        super().__setattr__(name, value)

    @property
    def _directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _suffixes(self) -> Tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    # ---- helpers ------------------------------------------------------------------------------------
    def _layer_params(self, k: int, d: int = 0):
        """(weight_ih, weight_hh, bias_ih, bias_hh) of layer k, direction d; the biases None without bias."""
        p, suffix = self._parameters, self._suffixes[d]
        return (p[f"weight_ih_l{k}{suffix}"], p[f"weight_hh_l{k}{suffix}"],
                p.get(f"bias_ih_l{k}{suffix}"), p.get(f"bias_hh_l{k}{suffix}"))

    def _kernel_biases(self, b_ih, b_hh):
        """(bias, b_hn) as the kernels take them: b_ih + b_hh, except GRU's b_hn, which stays apart."""
        if b_ih is None:
            return None, None
        bias = b_ih.data + b_hh.data                                     # (GH,)
        if self._cell != _recurrent.GRU:
            return bias, None
        H = self.hidden_size
        bias[2 * H:] = b_ih.data[2 * H:]
        return bias, b_hh.data[2 * H:]

    def _buffer(self, key: tuple, shape: tuple) -> np.ndarray:
        """A scratch array kept across calls of the same shape (fresh pages cost page faults)."""
        buf = self._workspace.get(key)
        if buf is None or buf.shape != shape:
            buf = _aligned_empty(shape, self.dtype)
            self._workspace[key] = buf
        return buf

    def _packed(self, key: tuple, K: int, N: int) -> Optional[np.ndarray]:
        """Workspace for the kernel's packed copy of a (K, N) recurrent operand; None selects BLAS."""
        if _STEP_GEMM == "blas":
            return None
        size = _recurrent.packed_size(self.dtype.itemsize, K, N)
        return self._buffer(key + ("packed",), (size,))

    def _check_parameters(self, grads: bool = False) -> None:
        """Every parameter's ``.data`` and ``.grad`` is still a C-contiguous array of the layer's dtype and
        registered shape.

        The kernels size their loops from the buffers and read raw memory, so a parameter replaced by one
        of another shape (``p.data = ...``) must not reach them. Fast when nothing was replaced: the
        arrays last accepted are kept (so their ids stay unique) and compared by identity (``.grad`` only
        when ``grads``, for backward).
        """
        for p, data, grad in self._verified:
            if p.data is not data or (grads and p.grad is not grad):
                break
        else:
            if self._verified:
                return
        for name, p in self._parameters.items():
            shape = self._param_shapes[name]
            for what, a in (("data", p.data), ("grad", p.grad)):
                if not (type(a) is np.ndarray and a.shape == shape and a.dtype == self.dtype
                        and a.flags.c_contiguous):
                    got = f"{type(a).__name__} {getattr(a, 'dtype', '')} {getattr(a, 'shape', '')}"
                    raise ValueError(f"{name}.{what} must be a C-contiguous {self.dtype} array of shape "
                                     f"{shape}, got {got}; assign into it ({name}.{what}[...] = value) or "
                                     "use load_state_dict")
        self._verified = [(p, p.data, p.grad) for p in self._parameters.values()]

    def _forward_bytes(self, T: int, B: int) -> int:
        """A lower bound on what forward allocates: the input copy and every run's kept activations."""
        H, GH = self.hidden_size, self._gate_count * self.hidden_size
        kept = H + {_recurrent.LSTM: GH + 2 * H, _recurrent.GRU: GH + H}.get(self._cell, 0)  # out, gates, c...
        return self.dtype.itemsize * T * B * (self.input_size + self.num_layers * self._directions * kept)

    def _check_input(self, x: Any) -> np.ndarray:
        """x as a C-contiguous (T, B, I) array of the layer's dtype (checked before it is converted)."""
        arr = _as_float_array("x", x, None)
        if arr.ndim != 3:
            layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
            raise ValueError(f"x must be a 3-D array {layout}, got shape {arr.shape}")
        if arr.shape[2] != self.input_size:
            raise ValueError(f"x must have input_size = {self.input_size} features on its last axis, "
                             f"got {arr.shape[2]}")
        if self.batch_first:
            arr = arr.transpose(1, 0, 2)
        T, B = arr.shape[:2]
        if T * B * self._width > _INT_MAX:
            raise ValueError(f"x has T*B = {T * B} rows, too many for 32-bit BLAS indexing; split the batch")
        _check_memory(self._forward_bytes(T, B), "forward on x", arr.shape)
        return np.ascontiguousarray(arr, dtype=self.dtype)

    def _check_state(self, name: str, value: Any, B: int) -> np.ndarray:
        LD, H = self.num_layers * self._directions, self.hidden_size
        if value is None:
            return _aligned_zeros((LD, B, H), self.dtype)
        if (type(value) is np.ndarray and value.dtype == self.dtype and value.shape == (LD, B, H)
                and value.flags.c_contiguous):
            return value                                            # the streaming fast path: as given
        arr = _as_float_array(name, value, None)
        what = "(num_layers * 2, B, hidden_size)" if self.bidirectional else "(num_layers, B, hidden_size)"
        _check_shape(name, arr, (LD, B, H), what)
        return np.ascontiguousarray(arr, dtype=self.dtype)

    def _to_user_layout(self, arr: np.ndarray) -> np.ndarray:
        return arr.transpose(1, 0, 2) if self.batch_first else arr

    def _split_hx(self, hx: Any) -> Tuple[Any, Any]:
        """(h0, c0) from the user's hx; Elman and GRU have no c0."""
        return hx, None

    def _pack_state(self, h: np.ndarray, c: Optional[np.ndarray]) -> Any:
        return h

    @staticmethod
    def _reversal(T: int, B: int, lens: Optional[np.ndarray]):
        """Index (T, B) that reverses each sequence within its own length (an involution), or None."""
        if lens is None:
            return None
        t = np.arange(T)[:, None]                                       # (T, 1)
        return np.where(t < lens[None, :], lens[None, :] - 1 - t, t)    # (T, B)

    @staticmethod
    def _reverse(seq: np.ndarray, rev: Optional[np.ndarray]) -> np.ndarray:
        """seq (T, B, ...) with each sequence reversed in time within its length, as a contiguous copy."""
        if rev is None:
            return np.ascontiguousarray(seq[::-1])
        return seq[rev, np.arange(seq.shape[1])[None, :]]

    # ---- forward ------------------------------------------------------------------------------------
    @one_thread_at_a_time
    def forward(self, x: Any, hx: Any = None, lengths: Any = None):
        self._check_parameters()
        xs = self._check_input(x)                                   # (T, B, I)
        T, B = xs.shape[:2]
        h0_in, c0_in = self._split_hx(hx)
        h0 = self._check_state("h0", h0_in, B)                      # (L·D, B, H)
        c0 = self._check_state("c0", c0_in, B) if self._has_cell_state else None
        lens = _check_lengths(lengths, T, B)
        L, D, H = self.num_layers, self._directions, self.hidden_size
        rev = self._reversal(T, B, lens) if D == 2 else None
        h_n = np.empty((L * D, B, H), self.dtype)
        c_n = np.empty((L * D, B, H), self.dtype) if self._has_cell_state else None
        layers = []
        layer_in = xs
        with blas_single_thread():
            for k in range(L):
                runs = []
                for d in range(D):
                    x_kd = layer_in if d == 0 else self._reverse(layer_in, rev)
                    run = self._forward_run(k, d, x_kd, h0[k * D + d], c0[k * D + d] if c0 is not None else None,
                                            lens, fresh=(k == L - 1 and D == 1))
                    h_n[k * D + d] = self._last(run["out"], run["h0"], lens)
                    if c_n is not None:
                        c_n[k * D + d] = self._last(run["c"], run["c0"], lens)
                    runs.append(run)
                if D == 1:
                    out = runs[0]["out"]                                # (T, B, H)
                else:
                    out = _aligned_empty((T, B, 2 * H), self.dtype) if k == L - 1 else self._buffer((k, "cat"), (T, B, 2 * H))
                    out[..., :H] = runs[0]["out"]
                    out[..., H:] = self._reverse(runs[1]["out"], rev)    # (T, B, 2H)
                mask = None
                if k < L - 1 and self.training and self.dropout > 0:
                    mask = (self._rng.random(out.shape) >= self.dropout).astype(self.dtype)
                    mask /= 1.0 - self.dropout                          # (T, B, D·H) inverted dropout
                layers.append(dict(runs=runs, mask=mask))
                layer_in = out if mask is None else np.multiply(out, mask, out=self._buffer((k, "dropped"), out.shape))
        self._cache = dict(layers=layers, lengths=lens, reversal=rev, T=T, B=B)
        return _readonly(self._to_user_layout(out)), self._pack_state(h_n, c_n)

    __call__ = forward

    def _forward_run(self, k: int, d: int, x: np.ndarray, h0: np.ndarray, c0: Optional[np.ndarray],
                     lens: Optional[np.ndarray], fresh: bool) -> dict:
        """One direction of one layer over x (T, B, I_k); returns what its backward needs."""
        T, B = x.shape[:2]
        H, GH, cell = self.hidden_size, self._gate_count * self.hidden_size, self._cell
        w_ih, w_hh, b_ih, b_hh = self._layer_params(k, d)
        bias, b_hn = self._kernel_biases(b_ih, b_hh)
        lstm, gru = cell == _recurrent.LSTM, cell == _recurrent.GRU
        key = (k, d)
        # (T + 1, B, H) h_0, h_1 .. h_T in one array, so that BPTT's dW_hh = Σ_t dA_tᵀ h_{t-1} is one GEMM;
        # h_1 .. h_T is the output, and the top layer's is returned to the user, so it is fresh each call
        states = _aligned_empty((T + 1, B, H), self.dtype) if fresh else self._buffer(key + ("out",), (T + 1, B, H))
        states[0] = h0
        h0, out = states[0], states[1:]                                    # (B, H), (T, B, H)
        run = dict(x=x, h0=h0, c0=c0, out=out,
                   gates=self._buffer(key + ("gates",), (T, B, GH)) if lstm or gru else None,   # (T, B, GH)
                   c=self._buffer(key + ("c",), (T, B, H)) if lstm else None,                   # (T, B, H)
                   tanh_c=self._buffer(key + ("tanh_c",), (T, B, H)) if lstm else None,         # (T, B, H)
                   hn=self._buffer(key + ("hn",), (T, B, H)) if gru else None,                  # (T, B, H)
                   scratch=self._buffer(key + ("scratch",), (B, GH)) if gru else None)      # (B, GH)
        if T and B:
            _recurrent.forward(cell, x, w_ih.data, w_hh.data, bias, b_hn, h0, c0, lens, run["gates"],
                               run["c"], run["tanh_c"], run["hn"], out, run["scratch"],
                               self._packed(key + ("forward",), H, GH), get_num_threads())
        return run

    @staticmethod
    def _last(seq: np.ndarray, initial: np.ndarray, lens: Optional[np.ndarray]) -> np.ndarray:
        """Each row's value at its own last step (B, H); the initial state when T = 0."""
        T, B = seq.shape[:2]
        if T == 0:
            return initial
        if lens is None:
            return seq[T - 1]
        return seq[lens - 1, np.arange(B)]

    # ---- backward -----------------------------------------------------------------------------------
    def _split_dstate(self, dstate: Any) -> Tuple[Any, Any]:
        return dstate, None

    @one_thread_at_a_time
    def backward(self, dout: Any, dstate: Any = None):
        self._check_parameters(grads=True)
        if self._cache is None:
            raise ValueError("backward needs a forward first (and runs once per forward): call the layer "
                             "on an input, then backward")
        cache = self._cache
        T, B, lens, rev = cache["T"], cache["B"], cache["lengths"], cache["reversal"]
        L, D, H = self.num_layers, self._directions, self.hidden_size
        lstm = self._has_cell_state
        d_out = _as_float_array("dout", dout, None)
        expected = (B, T, D * H) if self.batch_first else (T, B, D * H)
        _check_shape("dout", d_out, expected, "the shape of the forward output")
        g = np.ascontiguousarray(self._to_user_layout(d_out), dtype=self.dtype)   # (T, B, D·H) dL/d(out)
        dh_in, dc_in = self._split_dstate(dstate)
        dh_n = self._check_state("dh_n", dh_in, B)                  # (L·D, B, H)
        dc_n = self._check_state("dc_n", dc_in, B) if lstm else None
        self._cache = None                                          # the kernels consume the kept gates
        dh0 = _aligned_zeros((L * D, B, H), self.dtype)
        dc0 = _aligned_zeros((L * D, B, H), self.dtype) if lstm else None
        with blas_single_thread():
            for k in reversed(range(L)):
                runs = cache["layers"][k]["runs"]

                def direction(d: int, g_d: np.ndarray) -> np.ndarray:
                    i = k * D + d                                   # this direction's row in the states
                    return self._backward_run(k, d, runs[d], g_d, dh_n[i], None if dc_n is None else dc_n[i],
                                              dh0[i], None if dc0 is None else dc0[i], lens,
                                              fresh=(k == 0 and d == 0))

                if D == 1:
                    dx = direction(0, g)                            # (T, B, I_k)
                else:
                    dx = direction(0, np.ascontiguousarray(g[..., :H]))
                    dx += self._reverse(direction(1, self._reverse(g[..., H:], rev)), rev)
                if k > 0:
                    mask = cache["layers"][k - 1]["mask"]
                    g = dx if mask is None else np.multiply(dx, mask, out=dx)   # through dropout
        return self._to_user_layout(dx), self._pack_state(dh0, dc0)

    def _backward_run(self, k: int, d: int, run: dict, dout: np.ndarray, dh_n: np.ndarray,
                      dc_n: Optional[np.ndarray], dh0: np.ndarray, dc0: Optional[np.ndarray],
                      lens: Optional[np.ndarray], fresh: bool) -> np.ndarray:
        """BPTT through one direction of one layer: accumulates into .grad, fills dh0/dc0, returns dx."""
        x = run["x"]
        T, B = x.shape[:2]
        H, GH = self.hidden_size, self._gate_count * self.hidden_size
        w_ih, w_hh, b_ih, b_hh = self._layer_params(k, d)
        key = (k, d)
        dx = _aligned_empty(x.shape, self.dtype) if fresh else self._buffer(key + ("dx",), x.shape)   # (T, B, I_k)
        if T == 0 or B == 0:
            dx[...] = 0
            dh0[...] = dh_n
            if dc0 is not None:
                dc0[...] = dc_n
            return dx
        dA = run["gates"] if run["gates"] is not None else self._buffer(key + ("dA",), (T, B, GH))  # (T, B, GH)
        _recurrent.backward(self._cell, x, w_ih.data, w_hh.data, run["h0"], run["c0"], lens, dA, run["c"],
                            run["tanh_c"], run["hn"], run["out"], dout, dh_n, dc_n, dx, w_ih.grad, w_hh.grad,
                            b_ih.grad if b_ih is not None else None, b_hh.grad if b_hh is not None else None,
                            dh0, dc0, self._packed(key + ("backward",), GH, H),
                            get_num_threads())
        return dx

    # ---- streaming ----------------------------------------------------------------------------------
    @one_thread_at_a_time
    def step(self, x_t: Any, state: Any = None):
        """One timestep for streaming inference: x_t (B, I) -> (h_t (B, H), new state). Keeps nothing
        for backward; single-threaded matrix-vector products, so a call costs microseconds."""
        if self.bidirectional:
            raise ValueError("step is not defined for a bidirectional layer (it needs the future); "
                             "call the layer on the whole sequence")
        self._check_parameters()
        arr = x_t
        ready = type(arr) is np.ndarray and arr.dtype == self.dtype and arr.flags.c_contiguous
        if not ready:
            arr = _as_float_array("x_t", x_t, None)
        if arr.ndim != 2 or arr.shape[1] != self.input_size:
            raise ValueError(f"x_t must have shape (B, input_size = {self.input_size}), got {arr.shape}")
        B = arr.shape[0]
        L, H, GH = self.num_layers, self.hidden_size, self._gate_count * self.hidden_size
        if B * max(self._width, 4 * H) > _INT_MAX:
            raise ValueError(f"x_t has B = {B} rows, too many for 32-bit indexing; split the batch")
        _check_memory(self.dtype.itemsize * B * (self.input_size + GH + 8 * L * H), "step on x_t", arr.shape,
                      hint="split the batch")
        if not ready:
            arr = np.ascontiguousarray(arr, dtype=self.dtype)
        lstm = self._has_cell_state
        h_in, c_in = self._split_hx(state)
        h = self._check_state("h0", h_in, B)                        # (L, B, H)
        c = self._check_state("c0", c_in, B) if lstm else None
        h_new = np.empty((L, B, H), self.dtype)
        c_new = np.empty((L, B, H), self.dtype) if lstm else None
        scratch = self._workspace.get(("step", B))
        if scratch is None:
            n_work = _recurrent.step_work_size(self._cell, B, H)
            scratch = self._workspace[("step", B)] = (
                np.empty((B, GH), self.dtype),                          # (B, GH) gates
                np.empty(n_work, self.dtype) if n_work else None)      # LSTM tanh(c); GRU h W_hhᵀ, hn
        gates, work = scratch
        layer_in = arr
        for k in range(L):
            w_ih, w_hh, b_ih, b_hh = self._layer_params(k)
            _recurrent.step(self._cell, layer_in, w_ih.data, w_hh.data, None if b_ih is None else b_ih.data,
                            None if b_hh is None else b_hh.data, h[k], None if c is None else c[k], gates,
                            work, h_new[k], None if c_new is None else c_new[k])
            layer_in = h_new[k]
        return h_new[L - 1].copy(), self._pack_state(h_new, c_new)

    def extra_repr(self) -> str:
        parts = [str(self.input_size), str(self.hidden_size)]
        if self.num_layers != 1:
            parts.append(f"num_layers={self.num_layers}")
        parts += self._extra_args()
        if not self.bias:
            parts.append("bias=False")
        if self.batch_first:
            parts.append("batch_first=True")
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        if self.bidirectional:
            parts.append("bidirectional=True")
        parts.append(f"dtype='{self.dtype.name}'")
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        return ", ".join(parts)

    def _extra_args(self) -> list:
        return []


class Elman(_Recurrent):
    """Elman (simple) RNN, ``torch.nn.RNN``-compatible; ``nonlinearity`` is tanh, relu or sigmoid.

    ``out, h_n = rnn(x, h0=None, lengths=None)``; ``dx, dh0 = rnn.backward(dout, dh_n=None)``.
    Not thread-safe: ``forward``, ``backward`` or ``step`` called on this object while another thread is
    inside one of them raises ``RuntimeError`` (use one layer per thread).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 dtype: Any = "float32", seed: Optional[int] = None):
        if not isinstance(nonlinearity, str):
            raise TypeError(f"nonlinearity must be a str, one of {sorted(_NONLINEARITIES)}, got "
                            f"{type(nonlinearity).__name__}")
        if nonlinearity not in _NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {sorted(_NONLINEARITIES)}, got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype,
                         seed, cell=_NONLINEARITIES[nonlinearity])

    def _extra_args(self) -> list:
        return [] if self.nonlinearity == "tanh" else [f"nonlinearity='{self.nonlinearity}'"]


RNN = Elman


class LSTM(_Recurrent):
    """LSTM, ``torch.nn.LSTM``-compatible (gates i, f, g, o; two biases).

    ``out, (h_n, c_n) = lstm(x, (h0, c0)=None, lengths=None)``;
    ``dx, (dh0, dc0) = lstm.backward(dout, (dh_n, dc_n)=None)``.
    Not thread-safe: ``forward``, ``backward`` or ``step`` called on this object while another thread is
    inside one of them raises ``RuntimeError`` (use one layer per thread).
    """

    _gate_count = 4
    _has_cell_state = True

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 dtype: Any = "float32", seed: Optional[int] = None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype,
                         seed, cell=_recurrent.LSTM)

    @staticmethod
    def _pair(name: str, value: Any) -> Tuple[Any, Any]:
        if value is None:
            return None, None
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(f"{name} must be a tuple (h, c) of two (num_layers, B, hidden_size) arrays or None, "
                            f"got {type(value).__name__}")
        return value[0], value[1]

    def _split_hx(self, hx: Any) -> Tuple[Any, Any]:
        return self._pair("hx", hx)

    def _split_dstate(self, dstate: Any) -> Tuple[Any, Any]:
        return self._pair("dstate (dh_n, dc_n)", dstate)

    def _pack_state(self, h: np.ndarray, c: Optional[np.ndarray]) -> Any:
        return h, c


class GRU(_Recurrent):
    """GRU, ``torch.nn.GRU``-compatible (gates r, z, n; b_hn inside the reset product).

    ``out, h_n = gru(x, h0=None, lengths=None)``; ``dx, dh0 = gru.backward(dout, dh_n=None)``.
    Not thread-safe: ``forward``, ``backward`` or ``step`` called on this object while another thread is
    inside one of them raises ``RuntimeError`` (use one layer per thread).
    """

    _gate_count = 3

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 dtype: Any = "float32", seed: Optional[int] = None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype,
                         seed, cell=_recurrent.GRU)


# ----------------------------------------------------------------------------------------------- Linear
class Linear(Module):
    """``y = x Wᵀ + b`` on the last axis of any (..., in_features) array (every timestep at once).

    ``weight`` (out_features, in_features) and ``bias`` (out_features,), initialised as torch does:
    U(−1/√in_features, 1/√in_features).
    """

    _transient = {**Module._transient, "_x": lambda: None}

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: Any = "float32",
                 seed: Optional[int] = None):
        super().__init__()
        self.in_features = _check_size("in_features", in_features)
        self.out_features = _check_size("out_features", out_features)
        self.dtype = resolve_dtype(dtype)
        self.seed = seed
        rng = np.random.default_rng(seed)
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight = self._register("weight", rng.uniform(-bound, bound, (self.out_features, self.in_features)),
                                     self.dtype)
        self.bias = self._register("bias", rng.uniform(-bound, bound, self.out_features), self.dtype) if bias else None
        self._x: Optional[np.ndarray] = None

    @one_thread_at_a_time
    def forward(self, x: Any) -> np.ndarray:
        arr = _as_float_array("x", x, self.dtype)
        if arr.ndim < 1 or arr.shape[-1] != self.in_features:
            raise ValueError(f"x must have in_features = {self.in_features} on its last axis, got shape {arr.shape}")
        self._x = arr
        y = arr @ self.weight.data.T                                    # (..., out)
        if self.bias is not None:
            y += self.bias.data
        return y

    __call__ = forward

    @one_thread_at_a_time
    def backward(self, dy: Any) -> np.ndarray:
        if self._x is None:
            raise ValueError("backward needs a forward first: call the layer on an input, then backward")
        x = self._x
        d = _as_float_array("dy", dy, self.dtype)
        _check_shape("dy", d, x.shape[:-1] + (self.out_features,), "(..., out_features)")
        d2 = d.reshape(-1, self.out_features)                          # (N, out)
        self.weight.grad += d2.T @ x.reshape(-1, self.in_features)     # (out, in)
        if self.bias is not None:
            self.bias.grad += d2.sum(axis=0)
        return d @ self.weight.data                                     # (..., in)

    def extra_repr(self) -> str:
        s = f"{self.in_features}, {self.out_features}"
        if self.bias is None:
            s += ", bias=False"
        return s + f", dtype='{self.dtype.name}'"
