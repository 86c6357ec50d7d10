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
copied as needed. The returned outputs are read-only, since backward reads them. ``backward`` computes the
gradient of the forward that ran: the forward keeps copies of x and of the weights it read, so an optimizer
step (or any change of x or of the weights) in between does not change it (torch raises there instead).

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

from ._cells import NONLINEARITIES, cell_spec
from ._buffers import Workspace
from ._module import Module, is_grad_enabled, no_backward_error, one_thread_at_a_time, resolve_dtype
from ._stack import _Recurrent
from . import _kernels
from ._threads import blas_single_thread, get_num_threads
from ._validation import as_real_array, check_int, check_shape, may_alias

__all__ = ["Elman", "RNN", "LSTM", "GRU", "Linear", "recurrent_layer"]

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

    def _split_hx(self, hx: Any, name: str = "hx") -> Tuple[Any, Any]:
        return self._pair(name, hx)

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
    U(−1/√in_features, 1/√in_features). The products are one GEMM each over all leading axes, on one BLAS
    thread (:func:`rnnfast._threads.blas_single_thread`), as inside the recurrent kernels.
    """

    _transient = {**Module._transient, "_x": lambda: None, "_w": lambda: None, "_no_grad": lambda: False,
                  "_workspace": Workspace}

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
        self._w: Optional[np.ndarray] = None                            # (out, in) W as the last forward read it
        self._no_grad = False                                           # the last forward ran under no_grad
        self._workspace = Workspace()                                   # x kept for backward; y and dx memory

    @one_thread_at_a_time
    def forward(self, x: Any) -> np.ndarray:
        """y = x Wᵀ + b.

        Parameters
        ----------
        x : array_like (..., in_features)
            Kept for :meth:`backward`.

        Returns
        -------
        y : ndarray (..., out_features)
        """
        arr = self._checked(x)
        self._check_parameters()
        y = self._workspace.returned("y", arr.shape[:-1] + (self.out_features,), self.dtype)
        if not is_grad_enabled():                                       # no backward follows: keep nothing
            self._x, self._no_grad = None, True
            return self._apply(arr, y)
        # backward reads x again: keep a copy when it is the caller's array, which may change in between
        if may_alias(arr, x):
            arr = self._workspace.kept_copy("x", arr)
        self._x = arr
        # W as this forward read it: dx = dy W of the forward that ran, even after an optimizer step in between
        self._w = self._workspace.kept_copy("w", self.weight.data)
        self._no_grad = False
        return self._apply(self._x, y)

    __call__ = forward

    def step(self, x_t: Any) -> np.ndarray:
        """y = x Wᵀ + b for one timestep (x_t (B, in_features)), keeping nothing for :meth:`backward`."""
        arr = self._checked(x_t)
        self._check_parameters()
        return self._apply(arr)

    def _check_parameters(self, grads: bool = False) -> None:
        """Each parameter's ``.data`` (and ``.grad``) of the layer's shape and dtype, in any memory layout: one
        replaced by another of the wrong shape is named rather than broadcast or refused by the kernel."""
        shapes = {"weight": (self.out_features, self.in_features), "bias": (self.out_features,)}
        self._check_parameter_arrays(shapes, self.dtype, contiguous=False, grads=grads)

    def _checked(self, x: Any) -> np.ndarray:
        arr = as_real_array("x", x, self.dtype)
        if arr.ndim < 1 or arr.shape[-1] != self.in_features:
            raise ValueError(f"x must have in_features = {self.in_features} on its last axis, got shape {arr.shape}")
        return arr

    def _apply(self, arr: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """y = arr Wᵀ + b, written into ``out`` (arr.shape[:-1] + (out_features,), C-contiguous) or a new array."""
        x2 = np.ascontiguousarray(arr.reshape(-1, self.in_features))    # (N, in): one GEMM, not one per slice
        y = (np.empty((x2.shape[0], self.out_features), self.dtype) if out is None
             else out.reshape(x2.shape[0], self.out_features))          # (N, out)
        with blas_single_thread():                                      # its rows split over rnnfast's threads
            _kernels.linear_forward(x2, np.ascontiguousarray(self.weight.data), y, get_num_threads())
        if self.bias is not None:
            y += self.bias.data
        return y.reshape(arr.shape[:-1] + (self.out_features,))

    @one_thread_at_a_time
    def backward(self, dy: Any) -> np.ndarray:
        """Gradients through the last :meth:`forward`: adds dW = Σ dyᵀ x and db = Σ dy into ``.grad``.

        Parameters
        ----------
        dy : array_like (..., out_features)
            ∂L/∂y.

        Returns
        -------
        dx : ndarray (..., in_features)
            ∂L/∂x = dy W.
        """
        if self._x is None:
            if self._no_grad:
                raise no_backward_error()
            raise ValueError("backward needs a forward first (and runs once per forward, as the recurrent "
                             "layers' does): call the layer on an input, then backward")
        x, w = self._x, self._w
        assert w is not None                                            # kept with x by the forward
        self._check_parameters(grads=True)
        d = as_real_array("dy", dy, self.dtype)
        check_shape("dy", d, x.shape[:-1] + (self.out_features,), "(..., out_features)")
        self._x = None                                                  # once per forward: a second would add twice
        d2 = np.ascontiguousarray(d.reshape(-1, self.out_features))    # (N, out)
        dx = self._workspace.returned("dx", (d2.shape[0], self.in_features), self.dtype)   # (N, in)
        grad = self.weight.grad                                         # (out, in) accumulated in place
        dw = grad if grad.flags.c_contiguous else np.zeros(grad.shape, self.dtype)   # (a user's layout: add after)
        with blas_single_thread():                                      # rows split over rnnfast's threads
            _kernels.linear_backward(d2, np.ascontiguousarray(x.reshape(-1, self.in_features)),
                                     w, dw, dx,
                                     get_num_threads())                 # dW += dyᵀ x, dx = dy W
        if dw is not grad:
            grad += dw
        if self.bias is not None:
            self.bias.grad += d2.sum(axis=0)
        return dx.reshape(x.shape)                                      # (..., in)

    def extra_repr(self) -> str:
        s = f"{self.in_features}, {self.out_features}"
        if self.bias is None:
            s += ", bias=False"
        return s + f", dtype='{self.dtype.name}'"
