r"""The training engine: the one update rule that the estimators and :class:`~rnnfast.TruncatedBPTT` share.

One update over a chunk ``[s, e)`` of a batch, from the state S_s carried over from the chunk before::

    out, S_e    = layer(x[s:e], S_s)               (lengths: each sequence's steps in the chunk)
    L, n, g     = objective((out, S_e))             readout, head and loss: L over n scored entries, and
                                                    g = (∂L/∂out, ∂L/∂S_e) through what the loss read
    ∇           = BPTT of L through the chunk       nothing flows into S_e from later chunks and S_s is a
                                                    constant: the truncation
    ∇           ← Σ_r n_r ∇_r / Σ_r n_r             data-parallel only: the ranks' gradients, one Allreduce
    θ           ← optimizer step on clip(∇, max_norm)

Without an optimizer nothing is updated and each chunk's (clipped) gradient is added to ``.grad``, so a
pass leaves the TBPTT gradient Σ_j ∇_j of the whole stream at fixed θ there. A chunk always starts from
zero gradients: whatever ``.grad`` held before never leaks into an update.

The model is the recurrent layer alone or an ``rnnfast.Sequential`` that begins with it (an estimator's
``Sequential(layer, Readout(...), Linear)``): the engine runs the layer from the carried state, the
objective applies the rest (``Readout`` and head, which also serve a hand-written loop), and every
parameter of the model is updated and clipped.
"""
from __future__ import annotations

import math
from typing import Any, Callable, List, Optional, Protocol, Tuple

import numpy as np

from ._module import Parameter
from .clip import clip_grad_norm_
from .compose import Sequential

__all__ = ["Engine", "Diverged", "Objective"]

# objective((out, state)) -> (loss value L, scored entries n, g): g is what the layer's backward takes,
# (dL/dout, dL/dstate) with None for a zero state gradient, or None when the chunk scores nothing
Objective = Callable[[Tuple[np.ndarray, Any]], Tuple[float, float, Optional[Tuple[Any, Any]]]]


class _Layer(Protocol):
    """What the engine uses of a recurrent layer (``rnnfast.Elman`` / ``LSTM`` / ``GRU``)."""

    def __call__(self, x: Any, hx: Any, /, *, lengths: Any = None) -> Any: ...   # -> (out, state)

    def backward(self, dout: Any, dstate: Any, /) -> Any: ...

    def parameters(self) -> List[Parameter]: ...


class _Head(Protocol):
    """What the engine uses of a head (e.g. ``rnnfast.Linear``)."""

    def __call__(self, x: Any, /) -> Any: ...

    def backward(self, dy: Any, /) -> Any: ...

    def parameters(self) -> List[Parameter]: ...


class Diverged(Exception):
    """An update's loss or gradient is not finite (with clipping: the gradient's norm, whose sum of squares
    overflows also when an entry passes √(largest float)); raised before the step, so the weights stay good."""

    def __init__(self, loss: float):
        super().__init__(loss)
        self.loss = loss


class Engine:
    """Forward, truncated backward, (average), check, clip and step for one model and an optional head.

    Parameters
    ----------
    model : the recurrent layer, or an ``rnnfast.Sequential`` whose first module is the recurrent layer
        (the modules after it are the ones the objective applies).
    head : an optional module applied by the objective (its parameters are updated and clipped too).
    optimizer : anything with ``step()`` and ``zero_grad()`` over the parameters; None accumulates.
    max_norm : clip each update's gradient to this total 2-norm (None: no clipping).
    dp : an ``rnnfast.distributed.DataParallel`` averaging the ranks' gradients before each update.
    check_finite : raise :class:`Diverged` before an update whose loss or gradient is not finite.
    """

    def __init__(self, model: Any, head: Optional[_Head] = None, optimizer: Any = None,
                 max_norm: Optional[float] = None, dp: Any = None, check_finite: bool = False):
        self.model, self.head, self.optimizer = model, head, optimizer
        self.layer: _Layer = model[0] if isinstance(model, Sequential) else model
        self.max_norm, self.dp, self.check_finite = max_norm, dp, check_finite
        self.params: List[Parameter] = model.parameters() + (head.parameters() if head is not None else [])

    def zero_grad(self) -> None:
        """Zero the model's and the head's ``.grad`` (with the kernels' threads, through ``zero_grad``)."""
        for module in (self.model, self.head):
            if module is None:
                continue
            if hasattr(module, "zero_grad"):
                module.zero_grad()
            else:
                for p in module.parameters():
                    p.grad[...] = 0

    def backprop(self, x: Any, state: Any, objective: Objective,
                 lengths: Optional[np.ndarray] = None) -> Tuple[float, float, Any]:
        """Forward the chunk from ``state``, score it and add its truncated gradient to ``.grad``.

        Returns ``(L, n, state after the chunk)``; the state is the layer's (not detached).
        """
        out, new_state = self.layer(x, state) if lengths is None else self.layer(x, state, lengths=lengths)
        value, n, grad = objective((out, new_state))
        if grad is not None:
            self.layer.backward(*grad)                       # ∂L/∂S_e only from this chunk's loss: the cut
        return value, n, new_state

    def update(self, value: float, n: float) -> Tuple[float, float]:
        """Average (data-parallel), check, clip and step; returns the (averaged) ``(L, n)``. An update
        that scored nothing (n = 0: every entry weighs 0) makes no step."""
        if self.dp is not None:
            value, n = self.dp.average_gradients_(value, n)
        if n == 0:
            return value, n
        if self.max_norm is not None:    # the norm before clipping is finite exactly when every gradient is
            total = clip_grad_norm_(self.params, self.max_norm)          # (and its squares' sum fits the dtype)
            if self.check_finite and not (math.isfinite(value) and math.isfinite(total)):
                raise Diverged(value)    # clipping changed .grad only, never the weights
        elif self.check_finite and not (math.isfinite(value) and all(np.isfinite(p.grad).all() for p in self.params)):
            raise Diverged(value)
        if self.optimizer is not None:
            self.optimizer.step()
        return value, n

    def step(self, x: Any, state: Any, objective: Objective,
             lengths: Optional[np.ndarray] = None) -> Tuple[float, float, Any]:
        """One whole update on a chunk: zero, :meth:`backprop`, :meth:`update`. Without an optimizer the
        chunk's gradient is added to what ``.grad`` held before. Returns ``(L, n, state after the chunk)``."""
        saved = None if self.optimizer is not None else [p.grad.copy() for p in self.params]
        self.zero_grad()
        try:
            value, n, new_state = self.backprop(x, state, objective, lengths)
            value, n = self.update(value, n)
        except BaseException:
            if saved is not None:                            # a failed chunk adds nothing: the sum as it was
                for p, g in zip(self.params, saved):
                    p.grad[...] = g
            raise
        if saved is not None:
            for p, g in zip(self.params, saved):
                p.grad += g                                  # Σ_j ∇_j
        return value, n, new_state
