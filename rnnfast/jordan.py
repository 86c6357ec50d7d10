"""The Jordan network: the previous *output*, not the previous hidden state, is fed back.

    s_t = φ(x_t W_ihᵀ + y_{t-1} W_yhᵀ + b_h)        φ ∈ {tanh, relu, sigmoid}              s_t (B, H)
    y_t = g(s_t W_hyᵀ + b_y)                        g ∈ {identity, tanh, relu, sigmoid}    y_t (B, O)

with y_0 given (zeros by default). The head W_hy is inside the recurrence, so BPTT runs through it:
∂L/∂y_t = dout_t + (da_{t+1} W_yh), dz_t = ∂L/∂y_t ⊙ g'(·), da_t = (dz_t W_hy) ⊙ φ'(·) (csrc/_jordan.pxi;
rnnfast.reference.jordan_forward / jordan_backward are the specification).

Parameters, named as PyTorch names a layer's weights (``weight_<from><to>`` of shape (to, from)):
``weight_ih`` (H, I) input → hidden, ``weight_yh`` (H, O) previous output → hidden, ``bias_h`` (H,),
``weight_hy`` (O, H) hidden → output (the head), ``bias_y`` (O,). All start U(−1/√H, 1/√H), as torch
initialises ``nn.RNN(I, H)`` and ``nn.Linear(H, O)``.

g is not softmax: for classes, keep g the identity and give the logits y_t to ``rnnfast.cross_entropy``;
the network then feeds its logits back (the lectures' Jordan network feeds back whatever the output unit
computes). Like the other layers' states, y0 and y_n are (1, B, O) (one layer), so a ``rnnfast.Readout``
works after a Jordan layer in a ``rnnfast.Sequential``. There are no ``lengths``: every sequence of a batch
runs T steps.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from . import _kernels
from ._buffers import Workspace, check_memory
from ._cells import NONLINEARITIES
from ._module import Module, is_grad_enabled, no_backward_error, one_thread_at_a_time, resolve_dtype
from ._stack import _INT_MAX, _readonly, time_major_input
from ._threads import blas_single_thread
from ._validation import as_real_array, check_choice, check_int, check_shape, may_alias

__all__ = ["Jordan", "OUTPUT_ACTIVATIONS"]

OUTPUT_ACTIVATIONS = ("identity", "tanh", "relu", "sigmoid")


class Jordan(Module):
    """Jordan network: s_t = φ(x_t W_ihᵀ + y_{t-1} W_yhᵀ + b_h), y_t = g(s_t W_hyᵀ + b_y).

    ``y, y_n = jordan(x, y0=None)``; ``dx, dy0 = jordan.backward(dy, dy_n=None)``; ``y_t, y_state =
    jordan.step(x_t, y_state)``. Not thread-safe: ``forward``, ``backward`` or ``step`` called on this object
    while another thread is inside one of them raises ``RuntimeError`` (use one layer per thread).

    Parameters
    ----------
    input_size : int
        I, the features of each input step.
    hidden_size : int
        H, the units of s_t.
    output_size : int
        O, the units of y_t, which are fed back.
    nonlinearity : {"tanh", "relu", "sigmoid"}, default "tanh"
        φ.
    output_activation : {"identity", "tanh", "relu", "sigmoid"}, default "identity"
        g.
    bias : bool, default True
        Whether there are ``bias_h`` and ``bias_y``.
    batch_first : bool, default False
        Inputs and outputs as (B, T, ·) instead of (T, B, ·); y0 and y_n stay (1, B, O).
    dtype : {"float32", "float64"}, default "float32"
    seed : int, optional
        Seed of the initialisation U(−1/√H, 1/√H).

    Shapes
    ------
    x : (T, B, I), or (B, T, I) with ``batch_first``.
    y : (T, B, O), or (B, T, O) with ``batch_first``: y_1 .. y_T.
    y0, y_n : (1, B, O).

    Examples
    --------
    >>> import numpy as np, rnnfast
    >>> net = rnnfast.Jordan(input_size=3, hidden_size=8, output_size=2, seed=0)
    >>> y, y_n = net(np.zeros((7, 4, 3), np.float32))              # T = 7 steps, B = 4 sequences
    >>> y.shape, y_n.shape
    ((7, 4, 2), (1, 4, 2))
    >>> dx, dy0 = net.backward(np.ones_like(y))                    # gradients added into .grad
    >>> dx.shape
    (7, 4, 3)
    """

    _transient = {**Module._transient, "_cache": lambda: None, "_workspace": Workspace, "_no_grad": lambda: False}
    _FROZEN = frozenset({"input_size", "hidden_size", "output_size", "dtype", "nonlinearity",
                         "output_activation", "bias"})

    def __init__(self, input_size: int, hidden_size: int, output_size: int, nonlinearity: str = "tanh",
                 output_activation: str = "identity", bias: bool = True, batch_first: bool = False,
                 dtype: Any = "float32", seed: Optional[int] = None):
        super().__init__()
        self.input_size = check_int("input_size", input_size, 1)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.output_size = check_int("output_size", output_size, 1)
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, sorted(NONLINEARITIES))
        self.output_activation = check_choice("output_activation", output_activation, OUTPUT_ACTIVATIONS)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dtype = resolve_dtype(dtype)
        self.seed = seed
        I, H, O = self.input_size, self.hidden_size, self.output_size
        if H * max(I, O) > _INT_MAX or O * H > _INT_MAX:
            raise ValueError(f"hidden_size {H}, input_size {I} and output_size {O} are too large for 32-bit "
                             "BLAS indexing")
        check_memory((H * (I + 2 * O) + H + O) * (2 * self.dtype.itemsize + 8),
                     "the parameters (data, grad, float64 init)", hint="use a smaller model")
        rng = np.random.default_rng(seed)
        bound = 1.0 / math.sqrt(H)
        reg = self._register
        w_ih = reg("weight_ih", rng.uniform(-bound, bound, (H, I)), self.dtype)
        w_yh = reg("weight_yh", rng.uniform(-bound, bound, (H, O)), self.dtype)
        b_h = reg("bias_h", rng.uniform(-bound, bound, H), self.dtype) if self.bias else None
        w_hy = reg("weight_hy", rng.uniform(-bound, bound, (O, H)), self.dtype)
        b_y = reg("bias_y", rng.uniform(-bound, bound, O), self.dtype) if self.bias else None
        self._weights = _kernels.JordanWeights(w_ih, w_yh, b_h, w_hy, b_y)
        self._codes = (_kernels.JORDAN_ACTIVATIONS[self.nonlinearity],
                       _kernels.JORDAN_ACTIVATIONS[self.output_activation])
        self._param_shapes = {name: p.shape for name, p in self._parameters.items()}
        self._cache: Optional[_kernels.JordanForward] = None
        self._no_grad = False                                           # the last forward ran under no_grad
        self._workspace = Workspace()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._FROZEN and name in self.__dict__:
            raise AttributeError(f"{name} is fixed when the layer is built (the parameters' shapes and the "
                                 "kernels follow from it); build a new layer and load_state_dict into it")
        super().__setattr__(name, value)

    def _parameters_replaced(self) -> None:
        p = self._parameters
        self._weights = _kernels.JordanWeights(p["weight_ih"], p["weight_yh"], p.get("bias_h"), p["weight_hy"],
                                               p.get("bias_y"))

    # ---- checks -------------------------------------------------------------------------------------
    def _check_parameters(self, grads: bool = False) -> None:
        """The kernels read raw memory sized from the registered shapes: no parameter was replaced by another."""
        self._check_parameter_arrays(self._param_shapes, self.dtype, grads=grads)

    def _check_input(self, x: Any) -> np.ndarray:
        """x as a C-contiguous (T, B, I) array of the layer's dtype, a copy if it shares the caller's memory
        (backward reads it again)."""
        I, H, O = self.input_size, self.hidden_size, self.output_size
        out = time_major_input(x, I, self.batch_first, max(I, H, O), self.dtype,
                               lambda T, B: self.dtype.itemsize * T * B * (2 * I + 2 * H + 2 * O))
        return out.copy() if may_alias(out, x) else out

    def _check_state(self, name: str, value: Any, B: int) -> np.ndarray:
        """y0 or dy_n as a (B, O) array (given as (1, B, O)); zeros for None."""
        O = self.output_size
        if value is None:
            return np.zeros((B, O), self.dtype)
        arr = as_real_array(name, value)
        check_shape(name, arr, (1, B, O), "(1, B, output_size)")
        return np.ascontiguousarray(arr[0], dtype=self.dtype)

    # ---- forward, backward, step --------------------------------------------------------------------
    @one_thread_at_a_time
    def forward(self, x: Any, y0: Any = None):
        """Run the network over a batch of sequences, keeping what :meth:`backward` needs; inside
        ``with rnnfast.no_grad():`` the inference forward, which keeps nothing (``backward`` then raises).

        Parameters
        ----------
        x : array_like (T, B, input_size), or (B, T, input_size) with ``batch_first``
        y0 : array_like (1, B, output_size), optional
            The output fed back at the first step; zeros by default.

        Returns
        -------
        y : ndarray (T, B, output_size), or (B, T, output_size) with ``batch_first``
            y_1 .. y_T; read-only (backward reads it; under no_grad writable).
        y_n : ndarray (1, B, output_size)
            The last output (y0 when T = 0).
        """
        self._check_parameters()
        xs = self._check_input(x)                                       # (T, B, I)
        T, B = xs.shape[:2]
        y_init = self._check_state("y0", y0, B)                         # (B, O)
        ys = self._workspace.returned("ys", (T + 1, B, self.output_size), self.dtype)   # (T + 1, B, O) y_0 .. y_T
        grad = is_grad_enabled()
        with blas_single_thread():
            if grad:
                self._cache = _kernels.jordan_forward_training(*self._codes, self._weights, xs, y_init,
                                                               _kernels.current_options(), workspace=self._workspace,
                                                               ys=ys)
            else:                                                       # no backward follows: keep nothing
                self._cache = None
                _kernels.jordan_forward_inference(*self._codes, self._weights, xs, y_init,
                                                  _kernels.current_options(), workspace=self._workspace, ys=ys)
        self._no_grad = not grad
        y = ys[1:]
        y = y.transpose(1, 0, 2) if self.batch_first else y
        return (_readonly(y) if grad else y), ys[T][None].copy()

    __call__ = forward

    @one_thread_at_a_time
    def backward(self, dy: Any, dy_n: Any = None):
        """Backpropagate through time through the last :meth:`forward` (once per forward).

        Parameters
        ----------
        dy : array_like, the shape of the forward's ``y``
            ∂L/∂y.
        dy_n : array_like (1, B, output_size), optional
            ∂L/∂y_n; zeros by default.

        Returns
        -------
        dx : ndarray, the shape of the forward's ``x``
            ∂L/∂x.
        dy0 : ndarray (1, B, output_size)
            ∂L/∂y0.

        The gradients of the parameters are added into their ``.grad`` (as torch accumulates).
        """
        self._check_parameters(grads=True)
        fwd = self._cache
        if fwd is None and self._no_grad:
            raise no_backward_error()
        if fwd is None:
            raise ValueError("backward needs a forward first (and runs once per forward): call the layer "
                             "on an input, then backward")
        T, B = fwd.x.shape[:2]
        d = as_real_array("dy", dy)
        O = self.output_size
        check_shape("dy", d, (B, T, O) if self.batch_first else (T, B, O), "(the forward output's shape)")
        dz = np.array(d.transpose(1, 0, 2) if self.batch_first else d, dtype=self.dtype, order="C")  # (T, B, O)
        d_n = self._check_state("dy_n", dy_n, B)
        if T:
            dz[T - 1] += d_n
        self._cache = None
        dy0 = np.empty((1, B, O), self.dtype)
        dx = self._workspace.returned("dx", fwd.x.shape, self.dtype)   # (T, B, I)
        with blas_single_thread():
            _kernels.jordan_backward(dz, fwd, _kernels.current_options(), dy0=dy0[0], dx=dx)
        if T == 0:
            dy0[0] = d_n
        return (dx.transpose(1, 0, 2) if self.batch_first else dx), dy0

    @one_thread_at_a_time
    def step(self, x_t: Any, state: Any = None):
        """One timestep for streaming inference; keeps nothing for backward.

        Parameters
        ----------
        x_t : array_like (B, input_size)
        state : array_like (1, B, output_size), optional
            The previous output y_{t-1}; zeros by default.

        Returns
        -------
        y_t : ndarray (B, output_size)
        state : ndarray (1, B, output_size)
            y_t, to pass to the next call.
        """
        self._check_parameters()
        arr = as_real_array("x_t", x_t)
        if arr.ndim != 2 or arr.shape[1] != self.input_size:
            raise ValueError(f"x_t must have shape (B, input_size = {self.input_size}), got {arr.shape}")
        B = arr.shape[0]
        if B * max(self.input_size, self.hidden_size, self.output_size) > _INT_MAX:
            raise ValueError(f"x_t has B = {B} rows, too many for 32-bit indexing; split the batch")
        arr = np.ascontiguousarray(arr, dtype=self.dtype)
        y = self._check_state("state", state, B)
        s_out = np.empty((B, self.hidden_size), self.dtype)
        y_new = np.empty((1, B, self.output_size), self.dtype)
        _kernels.jordan_step(*self._codes, self._weights, arr, y, s_out, y_new[0])
        return y_new[0].copy(), y_new

    def extra_repr(self) -> str:
        parts = [str(self.input_size), str(self.hidden_size), str(self.output_size)]
        if self.nonlinearity != "tanh":
            parts.append(f"nonlinearity='{self.nonlinearity}'")
        if self.output_activation != "identity":
            parts.append(f"output_activation='{self.output_activation}'")
        if not self.bias:
            parts.append("bias=False")
        if self.batch_first:
            parts.append("batch_first=True")
        parts.append(f"dtype='{self.dtype.name}'")
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        return ", ".join(parts)
