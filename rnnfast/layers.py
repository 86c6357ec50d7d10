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

import math
from typing import Any, Optional, Tuple

import numpy as np

from . import _kernels
from ._buffers import Workspace, aligned_empty, aligned_zeros, check_memory
from ._cells import NONLINEARITIES, CellSpec, cell_spec
from ._module import Module, one_thread_at_a_time, resolve_dtype
from ._threads import blas_single_thread
from ._validation import as_real_array, check_int, check_lengths, check_real, check_shape

__all__ = ["Elman", "RNN", "LSTM", "GRU", "Linear", "recurrent_layer"]

_INT_MAX = 2**31 - 1        # the kernels index in 32 bits (C int, BLAS)


def _readonly(arr: np.ndarray) -> np.ndarray:
    view = arr.view()
    view.flags.writeable = False
    return view


# -------------------------------------------------------------------------------------- recurrent base
_LAYER_DOC = """
    Parameters
    ----------
    input_size : int
        I, the features of each input step.
    hidden_size : int
        H, the units of each layer's state.
    num_layers : int, default 1
        L, stacked layers: layer k > 0 reads layer k-1's outputs.{extra}
    bias : bool, default True
        Whether the layers have the biases ``bias_ih_l{{k}}`` and ``bias_hh_l{{k}}``.
    batch_first : bool, default False
        Inputs and outputs as (B, T, ·) instead of (T, B, ·); states stay (L·D, B, H).
    dropout : float in [0, 1), default 0
        Dropout on the outputs of every layer but the last, in ``train()`` mode only.
    bidirectional : bool, default False
        D = 2 directions per layer: the second reads each sequence backwards from its own last step, with
        its own parameters (suffixed ``_reverse``).
    dtype : {{"float32", "float64"}}, default "float32"
        The parameters' and computations' dtype; inputs of other real dtypes are converted.
    seed : int, optional
        Seed of the initialisation U(−1/√H, 1/√H) and of dropout.

    Shapes
    ------
    x : (T, B, I), or (B, T, I) with ``batch_first``.
    {state} : (L·D, B, H), ordered layer by layer, forward direction first.
    out : (T, B, D·H), or (B, T, D·H) with ``batch_first``.
    weight_ih_l{{k}} : (G·H, I) for k = 0, (G·H, D·H) after; weight_hh_l{{k}} : (G·H, H); biases (G·H,);
    G = {G}.

    Examples
    --------
    >>> import numpy as np, rnnfast
    >>> layer = rnnfast.{name}(input_size=3, hidden_size=5, seed=0)
    >>> out, {ret} = layer(np.zeros((7, 2, 3), np.float32))        # T = 7 steps, B = 2 sequences
    >>> out.shape
    (7, 2, 5)
    >>> dx, {dret} = layer.backward(np.ones_like(out))           # gradients added into .grad
    >>> dx.shape
    (7, 2, 3)
"""


class _Recurrent(Module):
    """Shared machinery of Elman, LSTM and GRU: parameters, input checks, the layer stack, directions, BPTT."""

    _transient = {**Module._transient, "_cache": lambda: None, "_workspace": Workspace, "_verified": list}
    # Fixed at construction: the parameters' shapes and dtype, and the kernels' buffers, follow from them.
    _FROZEN = frozenset({"input_size", "hidden_size", "num_layers", "bidirectional", "dtype", "_spec",
                         "nonlinearity"})

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 dtype: Any = "float32", seed: Optional[int] = None, *, cell: CellSpec):
        super().__init__()
        self.input_size = check_int("input_size", input_size, 1)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.num_layers = check_int("num_layers", num_layers, 1)
        self.dropout = check_real("dropout", dropout, 0.0, 1.0, high_inclusive=False)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.dtype = resolve_dtype(dtype)
        self.seed = seed
        self._spec = cell
        self._rng = np.random.default_rng(seed)
        D, H, GH = self._directions, self.hidden_size, cell.width(self.hidden_size)
        if GH * max(self.input_size, D * H) > _INT_MAX:
            raise ValueError(f"hidden_size {H} and input_size {self.input_size} are too large for "
                             "32-bit BLAS indexing")
        n_params = D * GH * (self.input_size + (self.num_layers - 1) * D * H + self.num_layers * (H + 2 * self.bias))
        check_memory(n_params * (2 * self.dtype.itemsize + 8), "the parameters (data, grad, float64 init)",
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
        self._workspace = Workspace()               # the kernels' buffers, kept across calls
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
    def cell(self) -> CellSpec:
        """The layer's row in the table of cells (:data:`rnnfast._cells.CELLS`)."""
        return self._spec

    @property
    def _directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _suffixes(self) -> Tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    # ---- helpers ------------------------------------------------------------------------------------
    def _layer_params(self, k: int, d: int = 0) -> _kernels.Weights:
        """(weight_ih, weight_hh, bias_ih, bias_hh) of layer k, direction d; the biases None without bias."""
        p, suffix = self._parameters, self._suffixes[d]
        return _kernels.Weights(p[f"weight_ih_l{k}{suffix}"], p[f"weight_hh_l{k}{suffix}"],
                                p.get(f"bias_ih_l{k}{suffix}"), p.get(f"bias_hh_l{k}{suffix}"))

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
        kept = _kernels.kept_elements(self._spec, self.hidden_size)
        return self.dtype.itemsize * T * B * (self.input_size + self.num_layers * self._directions * kept)

    def _check_input(self, x: Any) -> np.ndarray:
        """x as a C-contiguous (T, B, I) array of the layer's dtype (checked before it is converted)."""
        arr = as_real_array("x", x)
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
        check_memory(self._forward_bytes(T, B), "forward on x", arr.shape)
        return np.ascontiguousarray(arr, dtype=self.dtype)

    def _check_state(self, name: str, value: Any, B: int) -> np.ndarray:
        LD, H = self.num_layers * self._directions, self.hidden_size
        if value is None:
            return aligned_zeros((LD, B, H), self.dtype)
        if (type(value) is np.ndarray and value.dtype == self.dtype and value.shape == (LD, B, H)
                and value.flags.c_contiguous):
            return value                                            # the streaming fast path: as given
        arr = as_real_array(name, value)
        what = "(num_layers * 2, B, hidden_size)" if self.bidirectional else "(num_layers, B, hidden_size)"
        check_shape(name, arr, (LD, B, H), what)
        return np.ascontiguousarray(arr, dtype=self.dtype)

    def _to_user_layout(self, arr: np.ndarray) -> np.ndarray:
        return arr.transpose(1, 0, 2) if self.batch_first else arr

    def _split_hx(self, hx: Any) -> Tuple[Any, Any]:
        """(h0, c0) from the user's hx; Elman and GRU have no c0."""
        return hx, None

    def _split_dstate(self, dstate: Any) -> Tuple[Any, Any]:
        return dstate, None

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
        """Run the layers over a batch of sequences, keeping what :meth:`backward` needs.

        Parameters
        ----------
        x : array_like (T, B, input_size), or (B, T, input_size) with ``batch_first``
            Converted to the layer's dtype.
        hx : array_like (L·D, B, hidden_size), or for LSTM a pair (h0, c0) of them; optional
            The initial state; zeros by default.
        lengths : array_like of int (B,), optional
            Sequence b runs for ``lengths[b]`` in [1, T] steps: its output is zero after them and its state
            is the one at its own last step. Default: all T.

        Returns
        -------
        out : ndarray (T, B, D·hidden_size), or (B, T, D·hidden_size) with ``batch_first``
            The last layer's outputs h_t, both directions concatenated; read-only (backward reads it).
        h_n : ndarray (L·D, B, hidden_size)
            Each layer's and direction's final state; for LSTM the pair ``(h_n, c_n)``.
        """
        self._check_parameters()
        xs = self._check_input(x)                                   # (T, B, I)
        T, B = xs.shape[:2]
        h0_in, c0_in = self._split_hx(hx)
        h0 = self._check_state("h0", h0_in, B)                      # (L·D, B, H)
        c0 = self._check_state("c0", c0_in, B) if self._spec.has_cell_state else None
        lens = None if lengths is None else np.ascontiguousarray(
            check_lengths(lengths, B, T, minimum=1, integral_floats=True), dtype=np.intc)
        L, D, H = self.num_layers, self._directions, self.hidden_size
        rev = self._reversal(T, B, lens) if D == 2 else None
        h_n = np.empty((L * D, B, H), self.dtype)
        c_n = np.empty((L * D, B, H), self.dtype) if c0 is not None else None
        options = _kernels.current_options()
        layers = []
        layer_in = xs
        with blas_single_thread():
            for k in range(L):
                runs = []
                for d in range(D):
                    j = k * D + d                                       # this direction's row in the states
                    x_kd = layer_in if d == 0 else self._reverse(layer_in, rev)
                    # the top layer's output is returned to the user, so it is fresh each call
                    fresh = aligned_empty((T + 1, B, H), self.dtype) if k == L - 1 and D == 1 else None
                    run = _kernels.forward_training(self._spec, self._layer_params(k, d), x_kd, h0[j],
                                                    None if c0 is None else c0[j], lens, options,
                                                    workspace=self._workspace, key=(k, d), out=fresh)
                    h_n[j] = run.h_n
                    if c_n is not None:
                        c_n[j] = run.c_n
                    runs.append(run)
                if D == 1:
                    out = runs[0].out                                   # (T, B, H)
                else:
                    out = (aligned_empty((T, B, 2 * H), self.dtype) if k == L - 1
                           else self._workspace.buffer((k, "cat"), (T, B, 2 * H), self.dtype))
                    out[..., :H] = runs[0].out
                    out[..., H:] = self._reverse(runs[1].out, rev)      # (T, B, 2H)
                mask = None
                if k < L - 1 and self.training and self.dropout > 0:
                    mask = (self._rng.random(out.shape) >= self.dropout).astype(self.dtype)
                    mask /= 1.0 - self.dropout                          # (T, B, D·H) inverted dropout
                layers.append(dict(runs=runs, mask=mask))
                layer_in = out if mask is None else np.multiply(
                    out, mask, out=self._workspace.buffer((k, "dropped"), out.shape, self.dtype))
        self._cache = dict(layers=layers, lengths=lens, reversal=rev, T=T, B=B)
        return _readonly(self._to_user_layout(out)), self._pack_state(h_n, c_n)

    __call__ = forward

    # ---- backward -----------------------------------------------------------------------------------
    @one_thread_at_a_time
    def backward(self, dout: Any, dstate: Any = None):
        """Backpropagate through time through the last :meth:`forward` (once per forward).

        Parameters
        ----------
        dout : array_like, the shape of the forward's ``out``
            ∂L/∂out.
        dstate : array_like (L·D, B, hidden_size), or for LSTM a pair (dh_n, dc_n) of them; optional
            ∂L/∂h_n (and ∂L/∂c_n); zeros by default.

        Returns
        -------
        dx : ndarray, the shape of the forward's ``x``
            ∂L/∂x.
        dh0 : ndarray (L·D, B, hidden_size)
            ∂L/∂h0; for LSTM the pair ``(dh0, dc0)``.

        The gradients of the parameters are added into their ``.grad`` (as torch accumulates).
        """
        self._check_parameters(grads=True)
        if self._cache is None:
            raise ValueError("backward needs a forward first (and runs once per forward): call the layer "
                             "on an input, then backward")
        cache = self._cache
        T, B, rev = cache["T"], cache["B"], cache["reversal"]
        L, D, H = self.num_layers, self._directions, self.hidden_size
        lstm = self._spec.has_cell_state
        d_out = as_real_array("dout", dout)
        expected = (B, T, D * H) if self.batch_first else (T, B, D * H)
        check_shape("dout", d_out, expected, "(the forward output's shape)")
        g = np.ascontiguousarray(self._to_user_layout(d_out), dtype=self.dtype)   # (T, B, D·H) dL/d(out)
        dh_in, dc_in = self._split_dstate(dstate)
        dh_n = self._check_state("dh_n", dh_in, B)                  # (L·D, B, H)
        dc_n = self._check_state("dc_n", dc_in, B) if lstm else None
        self._cache = None                                          # the kernels consume the kept gates
        dh0 = aligned_zeros((L * D, B, H), self.dtype)
        dc0 = aligned_zeros((L * D, B, H), self.dtype) if lstm else None
        options = _kernels.current_options()
        with blas_single_thread():
            for k in reversed(range(L)):
                runs = cache["layers"][k]["runs"]

                def direction(d: int, g_d: np.ndarray) -> np.ndarray:
                    i = k * D + d                                   # this direction's row in the states
                    # layer 0's dx is returned to the user, so it is fresh each call
                    fresh = aligned_empty(runs[d].x.shape, self.dtype) if k == 0 and d == 0 else None
                    return _kernels.backward(g_d, dh_n[i], None if dc_n is None else dc_n[i], runs[d], options,
                                             dh0=dh0[i], dc0=None if dc0 is None else dc0[i], dx=fresh)

                if D == 1:
                    dx = direction(0, g)                            # (T, B, I_k)
                else:
                    dx = direction(0, np.ascontiguousarray(g[..., :H]))
                    dx += self._reverse(direction(1, self._reverse(g[..., H:], rev)), rev)
                if k > 0:
                    mask = cache["layers"][k - 1]["mask"]
                    g = dx if mask is None else np.multiply(dx, mask, out=dx)   # through dropout
        return self._to_user_layout(dx), self._pack_state(dh0, dc0)

    # ---- streaming ----------------------------------------------------------------------------------
    @one_thread_at_a_time
    def step(self, x_t: Any, state: Any = None):
        """One timestep for streaming inference; keeps nothing for backward.

        Single-threaded matrix-vector products, so a call costs microseconds.

        Parameters
        ----------
        x_t : array_like (B, input_size)
        state : array_like (num_layers, B, hidden_size), or for LSTM a pair (h, c) of them; optional
            The state after the previous step; zeros by default.

        Returns
        -------
        h_t : ndarray (B, hidden_size)
            The last layer's new state (its output).
        state : ndarray (num_layers, B, hidden_size)
            Every layer's new state, to pass to the next call; for LSTM the pair ``(h, c)``.
        """
        if self.bidirectional:
            raise ValueError("step is not defined for a bidirectional layer (it needs the future); "
                             "call the layer on the whole sequence")
        self._check_parameters()
        arr = x_t
        ready = type(arr) is np.ndarray and arr.dtype == self.dtype and arr.flags.c_contiguous
        if not ready:
            arr = as_real_array("x_t", x_t)
        if arr.ndim != 2 or arr.shape[1] != self.input_size:
            raise ValueError(f"x_t must have shape (B, input_size = {self.input_size}), got {arr.shape}")
        B = arr.shape[0]
        L, H, GH = self.num_layers, self.hidden_size, self._spec.width(self.hidden_size)
        if B * max(self._width, 4 * H) > _INT_MAX:
            raise ValueError(f"x_t has B = {B} rows, too many for 32-bit indexing; split the batch")
        check_memory(self.dtype.itemsize * B * (self.input_size + GH + 8 * L * H), "step on x_t", arr.shape,
                     hint="split the batch")
        if not ready:
            arr = np.ascontiguousarray(arr, dtype=self.dtype)
        lstm = self._spec.has_cell_state
        h_in, c_in = self._split_hx(state)
        h = self._check_state("h0", h_in, B)                        # (L, B, H)
        c = self._check_state("c0", c_in, B) if lstm else None
        h_new = np.empty((L, B, H), self.dtype)
        c_new = np.empty((L, B, H), self.dtype) if lstm else None
        layer_in = arr
        for k in range(L):
            _kernels.step(self._spec, self._layer_params(k), layer_in, h[k], None if c is None else c[k], h_new[k],
                          None if c_new is None else c_new[k], self._workspace)
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
    __doc__ = """Elman (simple) RNN, ``torch.nn.RNN``-compatible: h_t = φ(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh).

    ``out, h_n = rnn(x, h0=None, lengths=None)``; ``dx, dh0 = rnn.backward(dout, dh_n=None)``.
    Not thread-safe: ``forward``, ``backward`` or ``step`` called on this object while another thread is
    inside one of them raises ``RuntimeError`` (use one layer per thread).
""" + _LAYER_DOC.format(name="Elman", G=1, state="h0, h_n", ret="h_n", dret="dh0", extra="""
    nonlinearity : {"tanh", "relu", "sigmoid"}, default "tanh"
        φ.""")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 dtype: Any = "float32", seed: Optional[int] = None):
        if not isinstance(nonlinearity, str):
            raise TypeError(f"nonlinearity must be a str, one of {sorted(NONLINEARITIES)}, got "
                            f"{type(nonlinearity).__name__}")
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {sorted(NONLINEARITIES)}, got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype,
                         seed, cell=cell_spec("elman", nonlinearity))

    def _extra_args(self) -> list:
        return [] if self.nonlinearity == "tanh" else [f"nonlinearity='{self.nonlinearity}'"]


RNN = Elman


class LSTM(_Recurrent):
    __doc__ = """LSTM, ``torch.nn.LSTM``-compatible (gates i, f, g, o; two biases).

    i, f, g, o = σ, σ, tanh, σ of (x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh);  c_t = f ⊙ c_{t-1} + i ⊙ g;
    h_t = o ⊙ tanh(c_t).

    ``out, (h_n, c_n) = lstm(x, (h0, c0)=None, lengths=None)``;
    ``dx, (dh0, dc0) = lstm.backward(dout, (dh_n, dc_n)=None)``.
    Not thread-safe: ``forward``, ``backward`` or ``step`` called on this object while another thread is
    inside one of them raises ``RuntimeError`` (use one layer per thread).
""" + _LAYER_DOC.format(name="LSTM", G=4, state="h0, c0, h_n, c_n", ret="(h_n, c_n)", dret="(dh0, dc0)",
                        extra="")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 dtype: Any = "float32", seed: Optional[int] = None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype,
                         seed, cell=cell_spec("lstm"))

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
    __doc__ = """GRU, ``torch.nn.GRU``-compatible (gates r, z, n; b_hn inside the reset product).

    r, z = σ(x_t W_i{r,z}ᵀ + b_i{r,z} + h_{t-1} W_h{r,z}ᵀ + b_h{r,z});
    n = tanh(x_t W_inᵀ + b_in + r ⊙ (h_{t-1} W_hnᵀ + b_hn));  h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}.

    ``out, h_n = gru(x, h0=None, lengths=None)``; ``dx, dh0 = gru.backward(dout, dh_n=None)``.
    Not thread-safe: ``forward``, ``backward`` or ``step`` called on this object while another thread is
    inside one of them raises ``RuntimeError`` (use one layer per thread).
""" + _LAYER_DOC.format(name="GRU", G=3, state="h0, h_n", ret="h_n", dret="dh0", extra="")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 dtype: Any = "float32", seed: Optional[int] = None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype,
                         seed, cell=cell_spec("gru"))


_LAYERS = {"elman": Elman, "lstm": LSTM, "gru": GRU}


def recurrent_layer(cell: Any, input_size: int, hidden_size: int, **kwargs: Any) -> _Recurrent:
    """The layer for a cell name: ``recurrent_layer("lstm", 3, 5)`` is ``LSTM(3, 5)``.

    Parameters
    ----------
    cell : str or CellSpec
        ``"elman"`` (or ``"rnn"``), ``"lstm"``, ``"gru"``, or a key of the table of cells (``"elman-relu"``).
    input_size, hidden_size : int
    **kwargs
        The layer's other parameters; ``nonlinearity`` for Elman (ignored by LSTM and GRU).

    Returns
    -------
    Elman, LSTM or GRU
    """
    spec = cell_spec(cell, kwargs.pop("nonlinearity", None))
    if spec.family == "elman":
        kwargs["nonlinearity"] = spec.nonlinearity
    return _LAYERS[spec.family](input_size, hidden_size, **kwargs)


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
        self.in_features = check_int("in_features", in_features, 1)
        self.out_features = check_int("out_features", out_features, 1)
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
        arr = as_real_array("x", x, self.dtype)
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
        d = as_real_array("dy", dy, self.dtype)
        check_shape("dy", d, x.shape[:-1] + (self.out_features,), "(..., out_features)")
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
