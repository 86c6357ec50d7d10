"""The machinery Elman, LSTM and GRU share (rnnfast.layers holds their API): parameters, argument checks, the
stack of layers and directions, dropout between layers, and the calls into the kernel boundary
(rnnfast._kernels), one direction of one layer at a time.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional, Tuple

import numpy as np

from . import _kernels
from ._buffers import Workspace, aligned_zeros, check_memory
from ._cells import CellSpec
from ._layout import Layout
from ._module import Module, is_grad_enabled, no_backward_error, one_thread_at_a_time, resolve_dtype
from .sequences import PackedSequence
from ._threads import blas_single_thread
from ._validation import as_real_array, check_int, check_lengths, check_real, check_shape, may_alias

_INT_MAX = 2**31 - 1        # the kernels index in 32 bits (C int, BLAS)


def _readonly(arr: np.ndarray) -> np.ndarray:
    view = arr.view()
    view.flags.writeable = False
    return view


def time_major_input(x: Any, input_size: int, batch_first: bool, width: int, dtype: np.dtype,
                     forward_bytes: Callable[[int, int], int]) -> np.ndarray:
    """A recurrent layer's x as a C-contiguous (T, B, input_size) array of ``dtype``, checked before it is
    converted: 3-D, input_size features, T·B rows of ``width`` within 32-bit indexing, and the
    ``forward_bytes(T, B)`` forward allocates within the machine's memory."""
    if type(x).__name__ == "PackedSequence" and type(x).__module__.startswith("torch"):
        raise TypeError("x is torch's PackedSequence: pack with rnnfast.pack_sequences, or give the padded array "
                        "with lengths=")
    arr = as_real_array("x", x)
    if arr.ndim != 3:
        layout = "(B, T, input_size)" if batch_first else "(T, B, input_size)"
        raise ValueError(f"x must be a 3-D array {layout}, got shape {arr.shape}")
    if arr.shape[2] != input_size:
        raise ValueError(f"x must have input_size = {input_size} features on its last axis, got {arr.shape[2]}")
    if batch_first:
        arr = arr.transpose(1, 0, 2)
    T, B = arr.shape[:2]
    if T * B * width > _INT_MAX:
        raise ValueError(f"x has T*B = {T * B} rows, too many for 32-bit BLAS indexing; split the batch")
    check_memory(forward_bytes(T, B), "forward on x", arr.shape)
    return np.ascontiguousarray(arr, dtype=dtype)


class _Recurrent(Module):
    """Shared machinery of Elman, LSTM and GRU: parameters, input checks, the layer stack, directions, BPTT."""

    _transient = {**Module._transient, "_cache": lambda: None, "_workspace": Workspace}
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
        # the widest row the kernels index in 32 bits: G·H, I or D·H
        self._width = max(GH, self.input_size, D * H)
        self._lstm = cell.has_cell_state            # the state is (h, c)
        # each direction of each layer's parameters, as the kernels take them (the Parameter objects stay)
        self._weights = {(k, d): self._collect_weights(k, d) for k in range(self.num_layers)
                         for d in range(D)}

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
    def _collect_weights(self, k: int, d: int) -> _kernels.Weights:
        """(weight_ih, weight_hh, bias_ih, bias_hh) of layer k, direction d; the biases None without bias."""
        p, suffix = self._parameters, self._suffixes[d]
        return _kernels.Weights(p[f"weight_ih_l{k}{suffix}"], p[f"weight_hh_l{k}{suffix}"],
                                p.get(f"bias_ih_l{k}{suffix}"), p.get(f"bias_hh_l{k}{suffix}"))

    def _parameters_replaced(self) -> None:
        self._weights = {key: self._collect_weights(*key) for key in self._weights}

    def _layer_params(self, k: int, d: int = 0) -> _kernels.Weights:
        return self._weights[k, d]

    def _check_parameters(self, grads: bool = False, identities: bool = False) -> None:
        """Every parameter's ``.data`` and ``.grad`` is still a C-contiguous array of the layer's dtype and
        registered shape (the kernels size their loops from them and read raw memory)."""
        self._check_parameter_arrays(self._param_shapes, self.dtype, grads=grads, identities=identities)

    def _forward_bytes(self, T: int, B: int) -> int:
        """A lower bound on what forward allocates: the input copy and every run's kept activations (the
        inference forward: every run's h_t only)."""
        H = self.hidden_size
        kept = _kernels.kept_elements(self._spec, H) if is_grad_enabled() else H
        return self.dtype.itemsize * T * B * (self.input_size + self.num_layers * self._directions * kept)

    def _check_input(self, x: Any) -> np.ndarray:
        """x as a C-contiguous (T, B, I) array of the layer's dtype (checked before it is converted)."""
        return time_major_input(x, self.input_size, self.batch_first, self._width, self.dtype, self._forward_bytes)

    def _check_state(self, name: str, value: Any, B: int) -> np.ndarray:
        LD, H = self.num_layers * self._directions, self.hidden_size
        if value is None:
            return self._workspace.zeros(("zeros", name), (LD, B, H), self.dtype)   # h_n, dh0, ... are fresh copies
        if (type(value) is np.ndarray and value.dtype == self.dtype and value.shape == (LD, B, H)
                and value.flags.c_contiguous):
            return value                                            # the streaming fast path: as given
        arr = as_real_array(name, value)
        what = "(num_layers * 2, B, hidden_size)" if self.bidirectional else "(num_layers, B, hidden_size)"
        check_shape(name, arr, (LD, B, H), what)
        return np.ascontiguousarray(arr, dtype=self.dtype)

    def _sorted_state(self, layout: Layout, name: str, value: Any, B: int, kept: bool = False) -> np.ndarray:
        """A state argument checked (zeros when None) and in the layout's batch order; zeros need no sorting.
        ``kept``: backward reads it again (see :meth:`_kept`)."""
        state = self._check_state(name, value, B)
        if value is None:
            return state
        return layout.sort(self._kept(name, state, value) if kept else state)

    def _kept(self, name: str, arr: np.ndarray, given: Any) -> np.ndarray:
        """``arr``, which backward reads again, in memory the caller cannot change in between: a copy in the
        layer's workspace when it is the caller's own array (torch raises when a saved input changed; here
        backward always computes the gradient of the forward that ran). Under no_grad no backward reads it:
        ``arr`` as it is."""
        if is_grad_enabled() and may_alias(arr, given):
            return self._workspace.kept_copy(("kept", name), arr)
        return arr

    def _to_user_layout(self, arr: np.ndarray) -> np.ndarray:
        return arr.transpose(1, 0, 2) if self.batch_first else arr

    def _split_hx(self, hx: Any, name: str = "hx") -> Tuple[Any, Any]:
        """(h0, c0) from the user's hx (the argument ``name``); Elman and GRU have no c0."""
        return hx, None

    def _split_dstate(self, dstate: Any) -> Tuple[Any, Any]:
        return dstate, None

    def _pack_state(self, h: np.ndarray, c: Optional[np.ndarray]) -> Any:
        return h

    # ---- forward ------------------------------------------------------------------------------------
    @one_thread_at_a_time
    def forward(self, x: Any, hx: Any = None, lengths: Any = None):
        """Run the layers over a batch of sequences, keeping what :meth:`backward` needs; inside
        ``with rnnfast.no_grad():`` the inference forward, which keeps nothing (``backward`` then raises).

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
            The last layer's outputs h_t, both directions concatenated; read-only (backward reads it; under
            no_grad a fresh writable array).
        h_n : ndarray (L·D, B, hidden_size)
            Each layer's and direction's final state; for LSTM the pair ``(h_n, c_n)``.
        """
        self._check_parameters()
        packed_in = isinstance(x, PackedSequence)
        if packed_in:
            if lengths is not None:
                raise ValueError("lengths must be None with a PackedSequence x, whose batch_sizes give the lengths")
            layout, rows_in = self._check_packed(x)
            T, B = layout.T, layout.B
        else:
            xs = self._check_input(x)                                   # (T, B, I)
            T, B = xs.shape[:2]
            lens = None if lengths is None else check_lengths(lengths, B, T, minimum=1, integral_floats=True)
            # with lengths, the packed layout: the kernels run the real steps only (rnnfast._layout)
            layout = Layout.padded(T, B) if lens is None or B == 0 else self._packed_layout(lens)
            if not layout.is_packed:
                rows_in = self._kept("x", layout.to_rows(xs), x)
            else:
                rows_in = self._workspace.buffer("x", (layout.rows, xs.shape[2]), self.dtype)    # (rows, I)
        # with lengths (padded arrays, packed kernels) and one direction, the training kernels gather x's rows
        # and scatter the top layer's h_t into the padded output themselves, on rows in cache
        fused = layout.is_packed and not packed_in and self._directions == 1 and is_grad_enabled()
        if layout.is_packed and not packed_in and not fused:
            layout.to_rows(xs, out=rows_in)
        h0_in, c0_in = self._split_hx(hx)
        h0 = self._sorted_state(layout, "h0", h0_in, B, kept=True)                        # (L·D, B, H)
        c0 = self._sorted_state(layout, "c0", c0_in, B, kept=True) if self._lstm else None
        L, D, H = self.num_layers, self._directions, self.hidden_size
        h_n = np.empty((L * D, B, H), self.dtype)
        c_n = np.empty((L * D, B, H), self.dtype) if c0 is not None else None
        options = _kernels.current_options()
        grad = is_grad_enabled()
        layers = []
        layer_in = rows_in                                              # (rows, I)
        rows = layout.rows
        fresh_out = not layout.is_packed or packed_in                   # the top layer's out goes to the user
        returned = self._workspace.returned                             # memory for arrays the user keeps
        out_padded = returned("out_padded", xs.shape[:2] + (H,), self.dtype) if fused else None     # (T', B, H)
        with blas_single_thread():
            for k in range(L):
                runs = []
                for d in range(D):
                    j = k * D + d                                       # this direction's row in the states
                    x_kd = layer_in if d == 0 else layout.reverse(layer_in)
                    # the top layer's output is returned to the user, so it is never a buffer the next call
                    # writes (Workspace.returned: memory the user has let go of, or fresh) ([h_0, out]
                    # for the training forward's BPTT, out alone at inference)
                    fresh = (returned("out", (B * grad + rows, H), self.dtype) if k == L - 1 and D == 1 and fresh_out
                             else None)
                    kernel = _kernels.forward_training if grad else _kernels.forward_inference
                    padded = {} if out_padded is None else dict(
                        x_padded=xs.reshape(-1, xs.shape[2]) if k == 0 else None,
                        out_padded=out_padded.reshape(-1, H) if k == L - 1 else None)
                    run = kernel(self._spec, self._layer_params(k, d), x_kd, h0[j], None if c0 is None else c0[j],
                                 layout, options, workspace=self._workspace, key=(k, d), out=fresh, **padded)
                    h_n[j] = run.h_n
                    if c_n is not None:
                        c_n[j] = run.c_n
                    runs.append(run)
                if D == 1:
                    out = runs[0].out                                   # (rows, H)
                else:
                    out = (returned("out", (rows, 2 * H), self.dtype) if k == L - 1 and fresh_out
                           else self._workspace.buffer((k, "cat"), (rows, 2 * H), self.dtype))
                    out[:, :H] = runs[0].out
                    out[:, H:] = layout.reverse(runs[1].out)            # (rows, 2H)
                mask = None
                if k < L - 1 and self.training and self.dropout > 0:
                    mask = (self._rng.random(out.shape) >= self.dropout).astype(self.dtype)
                    mask /= 1.0 - self.dropout                          # (rows, D·H) inverted dropout
                layers.append(dict(runs=runs, mask=mask))
                layer_in = out if mask is None else np.multiply(
                    out, mask, out=self._workspace.buffer((k, "dropped"), out.shape, self.dtype))
        self._cache = dict(layers=layers, layout=layout, T=T if packed_in else xs.shape[0], B=B,
                           packed=x if packed_in else None) if grad else dict(no_grad=True)
        state = self._pack_state(layout.unsort(h_n), None if c_n is None else layout.unsort(c_n))
        view = _readonly if grad else (lambda a: a)
        if packed_in:
            return x._replace(data=view(out)), state
        if out_padded is not None:
            out_padded[layout.T:] = 0                                   # the steps past the longest sequence
            return view(self._to_user_layout(out_padded)), state
        T_out = xs.shape[0]
        user_out = returned("out_padded", (T_out, B, out.shape[1]), self.dtype) if layout.is_packed else None
        return view(self._to_user_layout(layout.to_padded(out, T_out, out=user_out))), state

    def _packed_layout(self, lens: Any, packed: Optional[PackedSequence] = None) -> Layout:
        """The packed layout of these lengths (B,), or of a PackedSequence; the last one is kept, for batches of
        the same lengths again."""
        def exactly(a: Any) -> Any:                 # bytes alone would equate int8 [1, 1] with int16 [257]
            return None if a is None else (np.asarray(a).dtype.str, np.shape(a), np.asarray(a).tobytes())

        key = (("packed",) + tuple(exactly(a) for a in (packed.batch_sizes, packed.sorted_indices,
                                                         packed.unsorted_indices))
               if packed is not None else np.asarray(lens, np.int64).tobytes())
        kept = self._workspace.get("layout")
        if kept is None or kept[0] != key:
            kept = self._workspace["layout"] = (key, Layout.packed(lens) if packed is None else packed.layout())
        return kept[1]

    def _check_packed(self, x: PackedSequence) -> Tuple[Layout, np.ndarray]:
        """The layout of a PackedSequence and its data as the kernels' rows (rows, I)."""
        layout = self._packed_layout(None, x)
        data = self._kept("x", np.ascontiguousarray(as_real_array("x.data", x.data), dtype=self.dtype), x.data)
        check_shape("x.data", data, (layout.rows, self.input_size), "(sum(batch_sizes), input_size)")
        return layout, data

    __call__ = forward

    # ---- backward -----------------------------------------------------------------------------------
    @one_thread_at_a_time
    def backward(self, dout: Any, dstate: Any = None, *, input_grad: bool = True):
        """Backpropagate through time through the last :meth:`forward` (once per forward).

        Parameters
        ----------
        dout : array_like, the shape of the forward's ``out``, or None
            ∂L/∂out; None when the loss does not read ``out``, only the final state (many-to-one from
            ``h_n``, as ``head(h_n[-1])`` in torch): zeros without an array to allocate and fill.
        dstate : array_like (L·D, B, hidden_size), or for LSTM a pair (dh_n, dc_n) of them; optional
            ∂L/∂h_n (and ∂L/∂c_n); zeros by default.
        input_grad : bool, default True
            False when nothing upstream needs ∂L/∂x (a one-hot or data input, as a torch input without
            ``requires_grad``): the first layer then skips dx = dA W_ih and ``dx`` is None.

        Returns
        -------
        dx : ndarray, the shape of the forward's ``x``; None when ``input_grad`` is False
            ∂L/∂x.
        dh0 : ndarray (L·D, B, hidden_size)
            ∂L/∂h0; for LSTM the pair ``(dh0, dc0)``.

        The gradients of the parameters are added into their ``.grad`` (as torch accumulates).
        """
        self._check_parameters(grads=True)
        if not isinstance(input_grad, (bool, np.bool_)):
            raise TypeError(f"input_grad must be True or False, got {input_grad!r}")
        if self._cache is None:
            raise ValueError("backward needs a forward first (and runs once per forward): call the layer "
                             "on an input, then backward")
        cache = self._cache
        if cache.get("no_grad"):
            raise no_backward_error()
        T, B, layout, packed_in = cache["T"], cache["B"], cache["layout"], cache["packed"] is not None
        L, D, H = self.num_layers, self._directions, self.hidden_size
        lstm = self._lstm
        if dout is None:                                                # only the final state is scored
            g = self._workspace.zeros("no dout", (layout.rows, D * H), self.dtype)   # (rows, D·H), read-only
        elif packed_in:
            d_out = as_real_array("dout", dout.data if isinstance(dout, PackedSequence) else dout)
            check_shape("dout", d_out, (layout.rows, D * H), "(the forward output's data shape)")
            g = np.ascontiguousarray(d_out, dtype=self.dtype)           # (rows, D·H) dL/d(out)
        else:
            d_out = as_real_array("dout", dout)
            expected = (B, T, D * H) if self.batch_first else (T, B, D * H)
            check_shape("dout", d_out, expected, "(the forward output's shape)")
            g = np.ascontiguousarray(self._to_user_layout(d_out), dtype=self.dtype)
            g = layout.to_rows(g, out=self._workspace.buffer("dout", (layout.rows, D * H), self.dtype)
                               if layout.is_packed else None)           # (rows, D·H) dL/d(out)
        dh_in, dc_in = self._split_dstate(dstate)
        dh_n = self._sorted_state(layout, "dh_n", dh_in, B)        # (L·D, B, H)
        dc_n = self._sorted_state(layout, "dc_n", dc_in, B) if lstm else None
        self._cache = None                                          # the kernels consume the kept gates
        dh0 = aligned_zeros((L * D, B, H), self.dtype)
        dc0 = aligned_zeros((L * D, B, H), self.dtype) if lstm else None
        options = _kernels.current_options()
        with blas_single_thread():
            for k in reversed(range(L)):
                runs = cache["layers"][k]["runs"]

                def direction(d: int, g_d: np.ndarray) -> Optional[np.ndarray]:
                    i = k * D + d                                   # this direction's row in the states
                    # layer 0's dx is returned to the user: memory the user has let go of, or fresh
                    fresh = (self._workspace.returned("dx", runs[d].x.shape, self.dtype)
                             if k == 0 and d == 0 and input_grad and (packed_in or not layout.is_packed) else None)
                    return _kernels.backward(g_d, dh_n[i], None if dc_n is None else dc_n[i], runs[d], options,
                                             dh0=dh0[i], dc0=None if dc0 is None else dc0[i], dx=fresh,
                                             input_grad=input_grad or k > 0)

                if D == 1:
                    dx = direction(0, g)                            # (rows, I_k)
                else:
                    dx = direction(0, np.ascontiguousarray(g[:, :H]))
                    dx_reverse = direction(1, layout.reverse(g[:, H:]))
                    if dx is not None:                              # (None at layer 0 without input_grad)
                        dx += layout.reverse(dx_reverse)
                if k > 0:
                    assert dx is not None                           # layers above the first always compute it
                    mask = cache["layers"][k - 1]["mask"]
                    g = dx if mask is None else np.multiply(dx, mask, out=dx)   # through dropout
        dstate0 = self._pack_state(layout.unsort(dh0), None if dc0 is None else layout.unsort(dc0))
        if not input_grad:
            return None, dstate0
        if packed_in:
            return cache["packed"]._replace(data=dx), dstate0
        assert dx is not None                                       # input_grad: layer 0 computed it
        user_dx = self._workspace.returned("dx_padded", (T, B, dx.shape[1]), self.dtype) if layout.is_packed else None
        return self._to_user_layout(layout.to_padded(dx, T, out=user_dx)), dstate0

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
        try:
            return self._step(x_t, state, trusted=True)
        except _kernels.StepArgumentsError:
            # a parameter or the returned state changed shape, layout or dtype in place: check everything
            # again (a parameter is named), and take the state through the checks that copy it as needed
            self._verified = []
            self._workspace.pop("step state", None)
            return self._step(x_t, state, trusted=False)

    def _step(self, x_t: Any, state: Any, trusted: bool):
        """step's work; ``trusted``: compare the parameters and the state returned last by identity alone,
        since the kernel checks the arrays' layouts (a mismatch raises StepArgumentsError)."""
        self._check_parameters(identities=trusted)
        arr = x_t
        ready = type(arr) is np.ndarray and arr.dtype == self.dtype and arr.flags.c_contiguous
        if not ready:
            arr = as_real_array("x_t", x_t)
        if arr.ndim != 2 or arr.shape[1] != self.input_size:
            raise ValueError(f"x_t must have shape (B, input_size = {self.input_size}), got {arr.shape}")
        B = arr.shape[0]
        L, H = self.num_layers, self.hidden_size
        lstm = self._lstm
        workspace = self._workspace
        # streaming passes back the state object the last call returned: its arrays are this layer's own,
        # checked when they were made; reshaped, restrided or retyped in place since, the kernel refuses them
        last = workspace.get("step state")                          # (state, B, h, c)
        if trusted and last is not None and state is last[0] and B == last[1]:
            h, c = last[2], last[3]                                 # (the kernel checks their layouts)
        else:
            GH = self._spec.gates * H
            if B * max(self._width, 4 * H) > _INT_MAX:
                raise ValueError(f"x_t has B = {B} rows, too many for 32-bit indexing; split the batch")
            check_memory(self.dtype.itemsize * B * (self.input_size + GH + 8 * L * H), "step on x_t", arr.shape,
                         hint="split the batch")
            h_in, c_in = self._split_hx(state, "state")
            h = self._check_state("state[0]" if lstm else "state", h_in, B)    # (L, B, H)
            c = self._check_state("state[1]", c_in, B) if lstm else None
        if not ready:
            arr = np.ascontiguousarray(arr, dtype=self.dtype)
        h_new = np.empty((L, B, H), self.dtype)
        c_new = np.empty((L, B, H), self.dtype) if lstm else None
        layer_in = arr
        for k in range(L):
            _kernels.step(self._spec, self._layer_params(k), layer_in, h[k], None if c is None else c[k], h_new[k],
                          None if c_new is None else c_new[k], workspace)
            layer_in = h_new[k]
        new_state = self._pack_state(h_new, c_new)
        workspace["step state"] = (new_state, B, h_new, c_new)
        return h_new[L - 1].copy(), new_state

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
