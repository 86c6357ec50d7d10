r"""Models made of layers: ``Sequential`` chains forwards and backwards, ``Readout`` chooses what a recurrent
layer passes on.

For modules f₁ … f_n, ``Sequential`` computes y = f_n(… f₂(f₁(x))) and, given ∂L/∂y, the chain rule in
reverse: g_n = ∂L/∂y, g_{k-1} = f_k.backward(g_k), each backward adding its parameters' gradients into
their ``.grad``. A training loop is then forward, loss, backward, clip, step::

    model = Sequential(Embedding(V, 32), LSTM(32, 64), Readout("last"), Linear(64, C))
    loss, dlogits = cross_entropy(model(ids), labels)
    opt.zero_grad(); model.backward(dlogits); clip_grad_norm_(model.parameters(), 1.0); opt.step()

A recurrent layer returns ``(out, (h_n[, c_n]))`` and its backward takes ``(dout, dh_n[, dc_n])``, so in a
``Sequential`` it is followed by a ``Readout`` that picks what goes on, and routes the gradient back. With
sequence b running T_b = ``lengths[b]`` steps (all T without lengths) and h_t = out[t] (T, B, F = D·H):

    "sequence":  out          (T, B, D·H)    every step (many-to-many); ∂L/∂out = g, ∂L/∂h_n = 0
    "last":      [h_n[-D], …, h_n[-1]] concatenated, (B, D·H): the top layer's final state of each
                 direction, for sequence b at its own last step T_b; ∂L/∂h_n[-D:] = g, ∂L/∂out = 0
    "state":     h_n          (L·D, B, H)    every layer's final state (c_n is not passed on); ∂L/∂h_n = g
    "mean":      m_b = Σ_{t<T_b} h_{t,b} / T_b                  (B, F);  ∂L/∂h_{t,b} = g_b / T_b for t < T_b
    "max":       M_{b,f} = max_{t<T_b} h_{t,b,f}               (B, F);  ∂L/∂h_{t,b,f} = g_{b,f} at the step
                 t*_{b,f} that attains it (the first one on a tie), 0 elsewhere
    "meanmax":   [m, M] side by side                          (B, 2F); the two gradients added
    "lastmeanmax": [last, m, M] side by side                  (B, 3F); ∂L/∂h_n[-D:] from the first F
                 columns, ∂L/∂out from the others (ULMFiT's "concat pooling", mean and max in this order)

These are PyTorch's idioms ``out``, ``torch.cat([h_n[-2], h_n[-1]], 1)`` (``h_n[-1]`` when D = 1), ``h_n``,
``out.mean(0)`` and ``out.max(0).values`` (for equal lengths; with lengths, over each sequence's own steps,
which the readout is given as the layer is: ``Sequential`` passes its ``lengths`` to both).
"""
from __future__ import annotations

from typing import Any, Iterator, Optional

import numpy as np

from . import _kernels
from ._module import Container, Module, is_grad_enabled, no_backward_error, one_thread_at_a_time
from ._stack import _Recurrent
from ._validation import as_real_array, check_choice, check_lengths, check_shape
from .dropout import Dropout
from .embedding import Embedding
from .jordan import Jordan
from .sequences import PackedSequence

# the pieces a model is composed of; Embedding and Dropout live in their own modules
__all__ = ["Sequential", "Readout", "Embedding", "Dropout"]

_POOLED = ("mean", "max", "meanmax", "lastmeanmax")  # the readouts that pool out over time
# the parts each readout puts side by side, in this order: the final state, the mean, the max
_HAS_LAST = ("last", "lastmeanmax")
_HAS_MEAN = ("mean", "meanmax", "lastmeanmax")
_HAS_MAX = ("max", "meanmax", "lastmeanmax")
_WHAT = ("sequence", "last", "state") + _POOLED
_STATEFUL = (_Recurrent, Jordan)     # the layers that return (out, state), so a Readout follows them


class Readout(Module):
    """What a recurrent layer passes on: its outputs, its final state, or a pooling of its outputs over time.

    ``y = Readout(what)((out, state), lengths)`` takes the pair a recurrent layer returns (and the
    ``lengths`` the layer was given); ``dout, dstate = readout.backward(dy)`` returns the pair the layer's
    ``backward`` takes, so it also serves a hand-written loop. The module docstring has the equations.

    Parameters
    ----------
    what : {"sequence", "last", "state", "mean", "max", "meanmax", "lastmeanmax"}
        ``"sequence"``: ``out`` (T, B, D·H) (or (B, T, D·H) with ``batch_first``), one vector per step.
        ``"last"``: the top layer's final state per direction, concatenated (B, D·H): each sequence's own
        last step (``lengths``), and for a bidirectional layer the forward direction after the whole
        sequence beside the reverse one after reading it back to the start.
        ``"state"``: ``h_n`` (L·D, B, H), every layer's final state (for LSTM the hidden state, not ``c_n``).
        ``"mean"``, ``"max"``: the mean, or the per-feature maximum, of ``out`` over each sequence's own
        steps (B, D·H); ``"meanmax"``: both side by side (B, 2·D·H); ``"lastmeanmax"``: ``"last"``,
        then both pools (B, 3·D·H).
    batch_first : bool, default False
        ``out`` is (B, T, D·H), as a layer made with ``batch_first=True`` returns it (only the pooled
        readouts read ``out``'s time axis; a ``Sequential`` checks that this matches its layer).

    Examples
    --------
    >>> import numpy as np, rnnfast
    >>> lstm, last = rnnfast.LSTM(3, 5, seed=0), rnnfast.Readout("last")
    >>> y = last(lstm(np.zeros((7, 2, 3), np.float32)))            # h_n[-1], (2, 5)
    >>> dout, (dh_n, dc_n) = last.backward(np.ones_like(y))         # dout = 0, dh_n[-1] = 1
    >>> dx, _ = lstm.backward(dout, (dh_n, dc_n))
    >>> lengths = np.array([7, 3])
    >>> pooled = rnnfast.Readout("mean")(lstm(np.ones((7, 2, 3), np.float32), lengths=lengths), lengths)  # (2, 5)
    """

    _transient = {**Module._transient, "_shapes": lambda: None, "_pooled": lambda: None}

    def __init__(self, what: str, batch_first: bool = False):
        super().__init__()
        self.what = check_choice("what", what, _WHAT)
        self.batch_first = check_choice("batch_first", batch_first, (False, True))
        self._shapes: Optional[tuple] = None     # (out's shape or None (packed), h_n's shape, dtype, pair, D·H)
        self._pooled: Optional[tuple] = None     # (lengths (B,), argmax (B, F) or None): what pooling's backward reads

    @property
    def pools(self) -> bool:
        """Whether this readout pools ``out`` over time ("mean", "max", "meanmax", "lastmeanmax")."""
        return self.what in _POOLED

    def width(self, features: int) -> int:
        """The width of one sequence's readout from a layer output of ``features`` = D·H per step (for
        ``"state"``, H per layer): twice that for ``"meanmax"``, three times for ``"lastmeanmax"``."""
        return {"meanmax": 2, "lastmeanmax": 3}.get(self.what, 1) * features

    @one_thread_at_a_time
    def forward(self, output: Any, lengths: Any = None) -> np.ndarray:
        """The chosen part of a recurrent layer's ``(out, state)``.

        Parameters
        ----------
        output : tuple (out, h_n) or (out, (h_n, c_n))
            What a recurrent layer returned.
        lengths : array_like of int (B,), optional
            The lengths the layer was given: the pooled readouts read each sequence's first ``lengths[b]``
            steps (default all T). The layer's own h_n already stops there for "last" and "state".

        Returns
        -------
        y : ndarray, out (T, B, D·H), the last states (B, D·H), h_n (L·D, B, H) or the pooling (B, D·H)
            ((B, 2·D·H) for "meanmax", (B, 3·D·H) for "lastmeanmax")
        """
        if not (isinstance(output, tuple) and len(output) == 2):
            raise TypeError(f"Readout takes a recurrent layer's output (out, state), got "
                            f"{type(output).__name__}; place it right after an Elman, LSTM or GRU layer")
        out, state = output
        pair = isinstance(state, tuple)
        h_n = state[0] if pair else state
        if isinstance(out, PackedSequence):     # a layer fed a PackedSequence: its state serves "last" and "state"
            if self.what not in ("last", "state"):
                raise TypeError(f"Readout({self.what!r}) reads out as a padded array, got a PackedSequence: give "
                                f"the layer padded x with lengths= (the kernels skip the padding all the same), "
                                f"or read \"last\" or \"state\"")
            if not (isinstance(h_n, np.ndarray) and h_n.ndim == 3 and np.ndim(out.data) == 2
                    and out.data.shape[-1] % h_n.shape[-1] == 0):
                raise TypeError("Readout takes a recurrent layer's output (out, state): out a PackedSequence of "
                                "(rows, D·H) and a state (L·D, B, H), or a pair of them")
            self._shapes = (None, h_n.shape, h_n.dtype, pair, out.data.shape[-1])   # backward's dout: None
            self._pooled = None
            D = out.data.shape[-1] // h_n.shape[-1]
            return h_n if self.what == "state" else np.concatenate(h_n[-D:], axis=-1)
        if not (isinstance(out, np.ndarray) and isinstance(h_n, np.ndarray) and out.ndim == 3 and h_n.ndim == 3
                and out.shape[-1] % h_n.shape[-1] == 0):
            raise TypeError("Readout takes a recurrent layer's output (out, state): out (T, B, D·H) and a "
                            "state (L·D, B, H), or a pair of them")
        self._shapes = (out.shape, h_n.shape, out.dtype, pair, out.shape[-1])
        self._pooled = None
        if not self.pools:          # the layer applied the lengths: only their count is checked here
            if lengths is not None:
                check_lengths(lengths, h_n.shape[1], minimum=1, integral_floats=True)
        if self.what == "sequence":
            return out
        if self.what == "state":
            return h_n
        D = out.shape[-1] // h_n.shape[-1]
        if self.what == "last":
            return np.concatenate(h_n[-D:], axis=-1)               # (B, D·H), forward direction first
        parts: list[np.ndarray] = [np.concatenate(h_n[-D:], axis=-1)] if self.what == "lastmeanmax" else []
        seq = out.swapaxes(0, 1) if self.batch_first else out                     # (T, B, F) time-major view
        T, B = seq.shape[:2]
        if B != h_n.shape[1]:           # out in the other layout: pooling would run over the batch
            raise ValueError(f"Readout({self.what!r}, batch_first={self.batch_first}) reads out as "
                             f"{'(B, T, F)' if self.batch_first else '(T, B, F)'}, but out {out.shape} then has "
                             f"{B} sequences where the state has {h_n.shape[1]}: set batch_first as the layer's")
        lens = None if lengths is None else check_lengths(lengths, B, T, minimum=1, integral_floats=True)
        steps = np.full(B, T, np.int64) if lens is None else lens.astype(np.int64)   # (B,) T_b
        if seq.dtype not in (np.float32, np.float64):
            raise TypeError(f"Readout({self.what!r}) pools float32 or float64 outputs, got {seq.dtype}")
        argmax = None
        grad = is_grad_enabled()
        F = seq.shape[2]
        readable = seq.strides[2] == seq.itemsize and seq.strides[0] > 0    # the kernels read rows of F, steps ahead
        rows = seq if readable else np.ascontiguousarray(seq)
        if self.what in _HAS_MEAN:  # over each sequence's real steps (csrc/_pool.pxi)
            total = np.empty((B, F), seq.dtype)                                      # (B, F)
            _kernels.sum_over_time(rows, steps, total)
            parts.append(total / steps[:, None].astype(out.dtype))                  # (B, F)
        if self.what in _HAS_MAX:   # each maximum over the real steps, and t*, the first step attaining it
            peak = np.empty((B, F), seq.dtype)                                       # (B, F)
            if grad:                                        # backward routes each maximum's gradient to t*
                argmax = np.empty((B, F), np.int64)                                  # (B, F)
            _kernels.max_over_time(rows, steps, peak, argmax)
            parts.append(peak)
        if grad:
            self._pooled = (steps, argmax)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    __call__ = forward

    @one_thread_at_a_time
    def backward(self, dy: Any) -> tuple:
        """``(dout, dstate)`` for the recurrent layer's ``backward``: ``dy`` routed where its value came from.

        Parameters
        ----------
        dy : array_like, the shape of the forward's ``y``
            ∂L/∂y.

        Returns
        -------
        dout : ndarray, out's shape, or None
            ∂L/∂out (zeros for "last" and "state"; zero past each sequence's end for the pooled readouts);
            None after a PackedSequence out (the layers' ``backward`` takes None as zeros).
        dstate : ndarray (L·D, B, H), a pair (dh_n, None) for LSTM, or None for ``what="sequence"`` and the
            pooled readouts
            ∂L/∂h_n (None stands for zeros, as the layers' ``backward`` takes it).
        """
        if self._shapes is None:
            raise ValueError("backward needs a forward first: call the Readout on a layer's output, then backward")
        out_shape, h_shape, dtype, pair, F = self._shapes
        d = as_real_array("dy", dy)
        if self.what == "sequence":
            check_shape("dy", d, out_shape, "(out's shape)")
            return d, None
        expected = {"state": (h_shape, "(h_n's shape)"), "meanmax": ((h_shape[1], 2 * F), "(B, 2·D·hidden_size)"),
                    "lastmeanmax": ((h_shape[1], 3 * F), "(B, 3·D·hidden_size)")}
        check_shape("dy", d, *expected.get(self.what, ((h_shape[1], F), "(B, D·hidden_size)")))
        dout = None if out_shape is None else np.zeros(out_shape, dtype)     # (T, B, F) or (B, T, F); None: packed
        if self.what == "state":
            return dout, ((d, None) if pair else d)
        dstate = None
        if self.what in _HAS_LAST:
            LD, B, H = h_shape
            dh_n = np.zeros(h_shape, dtype)
            dh_n[-(F // H):] = d[:, :F].reshape(B, F // H, H).transpose(1, 0, 2)   # column block d·H… from h_n[-D+d]
            dstate = (dh_n, None) if pair else dh_n
            if self.what == "last":
                return dout, dstate
        if self._pooled is None or dout is None:           # (the pooled readouts never read a packed out)
            raise no_backward_error()
        steps, argmax = self._pooled
        seq = dout.swapaxes(0, 1) if self.batch_first else dout    # (T, B, F), a view: writes land in dout
        first = F if self.what == "lastmeanmax" else 0              # the mean's columns start here
        if self.what in _HAS_MEAN:
            # ∂m_b/∂h_{t,b} = 1/T_b for t < T_b: the gradient spread evenly over the real steps
            share = d[:, first:first + F] / steps[:, None].astype(dtype)          # (B, F)
            _kernels.spread_over_time(share.astype(dtype, copy=False), steps, seq)
        if self.what in _HAS_MAX:
            assert argmax is not None
            # the maximum passes its gradient to the one step that attained it
            _kernels.max_over_time_backward(argmax, d[:, -F:].astype(dtype, copy=False), seq)
        return dout, dstate

    def extra_repr(self) -> str:
        return repr(self.what) + (", batch_first=True" if self.batch_first else "")


def _modules_in(module: Module) -> Iterator[Module]:
    """``module`` and, for a Sequential, every module inside it (depth first)."""
    yield module
    if isinstance(module, Sequential):
        for m in module:
            yield from _modules_in(m)


def _has_recurrent(module: Module) -> bool:
    """Whether ``module`` is, or (a Sequential) holds, a recurrent layer: the modules that take ``lengths``."""
    return any(isinstance(m, _Recurrent) for m in _modules_in(module))


class Sequential(Container):
    """Modules applied in order, ``torch.nn.Sequential``-style, with a ``backward`` that chains theirs in reverse.

    Parameters
    ----------
    *modules : Module
        Layers (``Linear``, ``Embedding``, ``Dropout``, ``TimeDelay``, ``Elman``/``LSTM``/``GRU``/``Jordan``
        each followed by a :class:`Readout`, another ``Sequential``). A module object appears once: its
        forward keeps what its backward reads, for one call. ``lengths`` go to Elman, LSTM and GRU layers
        (a Jordan layer runs every sequence T steps: with one inside, ``lengths`` raise ValueError).

    Attributes
    ----------
    Parameters are named as torch names them in a ``Sequential``, by position: ``"0.weight"``,
    ``"1.weight_ih_l0"``, and ``state_dict()`` keys are the same names, so weights move across both ways.
    ``train()`` / ``eval()`` set every module's mode; ``zero_grad()`` zeroes every gradient.

    Examples
    --------
    >>> import numpy as np, rnnfast
    >>> model = rnnfast.Sequential(rnnfast.Embedding(10, 4, seed=0), rnnfast.LSTM(4, 8, seed=0),
    ...                            rnnfast.Readout("last"), rnnfast.Linear(8, 3, seed=0))
    >>> ids = np.array([[1, 2], [3, 4], [5, 6]])                    # (T, B) = (3, 2)
    >>> logits = model(ids)                                         # (2, 3)
    >>> loss, dlogits = rnnfast.cross_entropy(logits, np.array([0, 2]))
    >>> model.backward(dlogits)                                     # None: ids have no gradient
    >>> [name for name, _ in model.named_parameters()][:2]
    ['0.weight', '1.weight_ih_l0']
    """

    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            if not (isinstance(m, Module) and callable(getattr(m, "backward", None))):
                raise TypeError(f"modules[{i}] must be an rnnfast module with forward and backward, got "
                                f"{type(m).__name__}")
        for i, m in enumerate(modules):
            after = modules[i + 1] if i + 1 < len(modules) else None
            if isinstance(m, _STATEFUL) and not isinstance(after, Readout):
                raise ValueError(f"modules[{i}] ({type(m).__name__}) returns (out, state): follow it with "
                                 "rnnfast.Readout('sequence'), Readout('last') or Readout('state') to choose "
                                 "what it passes on")
            if isinstance(m, Readout) and (i == 0 or not isinstance(modules[i - 1], _STATEFUL)):
                raise ValueError(f"modules[{i}] (a Readout) must come right after an Elman, LSTM, GRU or Jordan "
                                 "layer")
            if (isinstance(m, Readout) and m.pools
                    and m.batch_first != bool(getattr(modules[i - 1], "batch_first", False))):
                raise ValueError(f"modules[{i}] (Readout({m.what!r})) has batch_first={m.batch_first} but the "
                                 f"layer before it has batch_first={not m.batch_first}: give both the same")
        seen: set = set()
        for i, m in enumerate(modules):
            for inner in _modules_in(m):
                if id(inner) in seen:
                    raise ValueError(f"modules[{i}] ({type(inner).__name__}) is already in this Sequential; a "
                                     "module keeps one forward for its backward, so use a new object (or "
                                     "copy.deepcopy) for each place")
                seen.add(id(inner))
        self._modules = list(modules)

    def _children(self) -> Iterator[tuple[str, Module]]:
        """The modules under torch's names for them: "0", "1", ... (parameters "0.weight", ...)."""
        return ((str(i), m) for i, m in enumerate(self._modules))

    # ---- the chain --------------------------------------------------------------------------------
    @one_thread_at_a_time
    def forward(self, x: Any, lengths: Any = None) -> Any:
        """y = f_n(… f₁(x)): each module's output is the next one's input.

        Parameters
        ----------
        x : array_like
            The first module's input (ids for an ``Embedding``, (T, B, I) for a recurrent layer, ...).
        lengths : array_like of int (B,), optional
            Each sequence's length, given to every recurrent layer (its ``lengths``) and to the
            ``Readout`` after it; the layers start from the zero state.

        Returns
        -------
        y : ndarray
            The last module's output.
        """
        if lengths is not None and not _has_recurrent(self):
            raise ValueError("lengths is given but this Sequential has no recurrent layer to take it")
        if lengths is not None and any(isinstance(m, Jordan) for m in _modules_in(self)):
            raise ValueError("lengths is given but this Sequential has a Jordan layer, which runs every "
                             "sequence T steps (it takes no lengths)")
        y = x
        self._grad_forward = None       # until every module has run: a forward that raises leaves no backward
        for m in self._modules:
            call: Any = m                                        # every module is callable (its forward)
            takes_lengths = lengths is not None and (_has_recurrent(m) or isinstance(m, Readout))
            y = call(y, lengths=lengths) if takes_lengths else call(y)
        self._grad_forward = is_grad_enabled()                   # under no_grad no backward may follow
        return y

    __call__ = forward

    @one_thread_at_a_time
    def backward(self, dy: Any) -> Any:
        """Chain the modules' backwards in reverse through the last :meth:`forward` (once per forward).

        Parameters
        ----------
        dy : array_like, the shape of the forward's ``y``
            ∂L/∂y.

        Returns
        -------
        dx : ndarray or None
            ∂L/∂x; None when the first module is an ``Embedding`` (integer ids have no gradient).

        Every module adds its parameters' gradients into their ``.grad`` (as torch accumulates).
        """
        if self.__dict__.get("_grad_forward", True) is None:   # before any module adds into a .grad
            raise ValueError("backward needs a forward that completed: the last one raised part of the way "
                             "through the modules, whose caches are then of two different forwards")
        if not self.__dict__.get("_grad_forward", True):
            raise no_backward_error()
        g = dy
        for m in reversed(self._modules):
            if isinstance(m, _STATEFUL):
                g, _ = m.backward(*g)                              # g is the Readout's (dout, dstate)
            else:
                g = m.backward(g)
        return g

    # ---- streaming ----------------------------------------------------------------------------------
    @one_thread_at_a_time
    def step(self, x_t: Any, state: Any = None) -> tuple:
        """One timestep through every module, keeping nothing for :meth:`backward` (one-to-many generation,
        as :func:`rnnfast.generate` runs a Sequential).

        Each recurrent layer runs its ``step`` from its state; a ``Readout("sequence")`` or ``("last")``
        passes on the new top state h_t (after one step, the sequence's last output is h_t), ``("state")``
        every layer's h; ``Linear`` and ``Embedding`` map the step; ``Dropout`` passes it through, as in
        eval mode. A ``TimeDelay`` or a pooling ``Readout`` (which need the steps before) raise TypeError.

        Parameters
        ----------
        x_t : array_like
            The first module's input for one step: ids (B,) for an ``Embedding``, else (B, I).
        state : list, optional
            What the previous call returned: one entry per recurrent layer (or inner Sequential), in
            order. None: every recurrent layer starts from zeros.

        Returns
        -------
        y_t : ndarray
            The last module's output for this step, (B, O).
        state : list
            The new states, to pass to the next call.
        """
        with_state = (*_STATEFUL, Sequential)                      # the modules whose step carries a state
        holders = [m for m in self._modules if isinstance(m, with_state)]
        old = [None] * len(holders) if state is None else list(state)
        if len(old) != len(holders):
            raise ValueError(f"state must hold {len(holders)} entries (one per recurrent layer or inner "
                             f"Sequential), got {len(old)}")
        new: list = []
        y, last = x_t, None
        for m in self._modules:
            if isinstance(m, with_state):
                y, last = m.step(y, old[len(new)])
                new.append(last)
            elif isinstance(m, Readout):
                if m.pools:
                    raise TypeError(f"Readout({m.what!r}) pools over every step of a sequence, which one step "
                                    "does not have; step runs Readout 'sequence', 'last' or 'state'")
                if m.what == "state":
                    y = last[0] if isinstance(last, tuple) else last    # every layer's h, (L, B, H)
            elif callable(getattr(m, "step", None)):
                y = m.step(y)
            else:
                raise TypeError(f"{type(m).__name__} has no step (it needs the timesteps before this one); "
                                "run the model on whole sequences instead")
        return y, new

    # ---- the container ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules)

    def __getitem__(self, index: Any) -> Any:
        """``model[i]`` the i-th module; ``model[i:j]`` a Sequential of those (the same module objects)."""
        if isinstance(index, slice):
            return Sequential(*self._modules[index])
        return self._modules[index]

    def train(self, mode: bool = True) -> "Sequential":
        """Training mode for this and every module (dropout on) when ``mode``, else evaluation mode."""
        super().train(mode)
        for m in self._modules:
            m.train(mode)
        return self

    def __repr__(self) -> str:
        if not self._modules:
            return "Sequential()"
        lines = "".join("  " + repr(m).replace("\n", "\n  ") + ",\n" for m in self._modules)
        return f"Sequential(\n{lines})"
