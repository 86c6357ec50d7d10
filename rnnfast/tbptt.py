r"""Truncated backpropagation through time (TBPTT): train on a long stream k steps at a time.

Full BPTT over a stream of T steps keeps every step's activations (memory O(T)) and updates the weights
once. Truncated BPTT cuts the stream into chunks ``[s_j, s_j + k)`` ("update once every fixed number of
steps, for example, 20") and, for each chunk j in order,

    out, S_j   = layer(x[s_j : s_j + k], S_{j-1})         S_{j-1}: the state carried from chunk j-1 (S_0 = hx)
    pred       = head(out)  (if a head is given)
    L_j, dpred = loss(pred, y[s_j : s_j + k])
    ∇_j        = BPTT of L_j through the chunk only:       ∂L_j/∂S_j = 0 and S_{j-1} is a constant
    θ          ← optimizer step on clip(∇_j)

The forward state flows through the whole stream, the gradient never crosses a chunk boundary: ∇_j
ignores how θ shaped S_{j-1} (that is the truncation). NumPy arrays carry no graph, so "detaching" the
state (:func:`detach_state`) is a copy; the cut itself is ``dh_n = 0`` in the chunk's backward. Memory is
O(k) whatever T: only one chunk's activations exist at a time. :meth:`TruncatedBPTT.run_chunks` takes any
iterable of ``(x_chunk, target_chunk)`` pairs, e.g. a generator reading a stream of 10⁶ steps that never
exists in memory as a whole; :meth:`TruncatedBPTT.run` cuts an array that does.

Without an optimizer nothing is updated and each chunk's (clipped) gradient is *added* to ``.grad``:
after a pass, ``.grad`` holds the TBPTT gradient Σ_j ∇_j of the whole stream at fixed θ. With
``k >= T`` that is exactly full BPTT.

Ragged batches (``lengths`` (B,), sequence b real for its first ``lengths[b]`` steps): chunk j holds

    n_b,j = clip(lengths[b] − s_j, 0, e_j − s_j)          the real steps of sequence b in chunk j

The chunk runs the layer's packed path (``lengths=``) over the sequences with n_b,j > 0 only; a sequence
that has ended (n_b,j = 0) is left out and carries its final state S_b (the state after its own last step)
unchanged to the end. The loss sees the real steps only: ``loss(pred[real], target[real])`` on the (N, ...)
rows where ``real`` is the chunk's (steps, B) mask of real steps, in the layer's layout (time-major: step
by step; ``batch_first``: sequence by sequence), and the padding gets no gradient. So with ``k >= T`` a
ragged pass is full BPTT of the layer with ``lengths``, and with ``k < T`` each sequence's gradient is the
one it would get truncated alone (for a loss that sums over the rows).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, Union, overload

import numpy as np

from ._engine import Engine, _Head, _Layer
from .compose import Sequential
from ._module import Parameter
from ._validation import check_int, check_lengths, check_positive

__all__ = ["chunk_bounds", "iter_chunks", "detach_state", "TruncatedBPTT", "TBPTTResult"]

LossFn = Callable[[np.ndarray, Any], Tuple[Any, np.ndarray]]


class ChunkBounds(Sequence[Tuple[int, int]]):
    """``[(0, k), (k, 2k), …, (m·k, T)]`` computed on demand, so any T costs O(1) memory."""

    def __init__(self, T: int, k: int):
        self.T, self.k = T, k
        self._starts = range(0, T, k)

    def __len__(self) -> int:
        return len(self._starts)

    @overload
    def __getitem__(self, i: int) -> Tuple[int, int]: ...

    @overload
    def __getitem__(self, i: slice) -> List[Tuple[int, int]]: ...

    def __getitem__(self, i: Union[int, slice]) -> Union[Tuple[int, int], List[Tuple[int, int]]]:
        if isinstance(i, slice):
            return [(s, min(s + self.k, self.T)) for s in self._starts[i]]
        s = self._starts[i]
        return (s, min(s + self.k, self.T))

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        for s in self._starts:
            yield (s, min(s + self.k, self.T))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChunkBounds):
            return (self.T, self.k) == (other.T, other.k) or list(self) == list(other)
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"chunk_bounds(T={self.T}, k={self.k})"


def chunk_bounds(T: int, k: int) -> ChunkBounds:
    """``[(0, k), (k, 2k), …, (m·k, T)]``: consecutive chunks of k steps covering ``range(T)``, as a lazy
    sequence (a 10⁶-step or endless stream costs nothing to describe).

    The last chunk is shorter when k does not divide T; ``T = 0`` gives no chunk. ``k < 1`` raises ValueError.
    """
    T = check_int("T", T, minimum=0)
    k = check_int("k", k, minimum=1)
    return ChunkBounds(T, k)


def iter_chunks(x: Any, targets: Any, k: int, time_axis: int = 0) -> Iterator[Tuple[np.ndarray, Any]]:
    """Yield ``(x[s:e], targets[s:e])`` (views, sliced on ``time_axis``) for ``(s, e)`` in ``chunk_bounds``.

    ``targets`` may be None (a loss that needs none); otherwise its ``time_axis`` must match x's.
    """
    xs = np.asarray(x)
    if xs.ndim <= time_axis:
        raise ValueError(f"x must have a time axis {time_axis}, got shape {xs.shape}")
    T = xs.shape[time_axis]
    ys = None if targets is None else np.asarray(targets)
    if ys is not None and (ys.ndim <= time_axis or ys.shape[time_axis] != T):
        raise ValueError(f"targets must have the same number of steps as x on axis {time_axis} ({T}), "
                         f"got shape {ys.shape}")
    for s, e in chunk_bounds(T, k):
        cut = (slice(None),) * time_axis + (slice(s, e),)
        yield xs[cut], (None if ys is None else ys[cut])


def detach_state(state: Any) -> Any:
    """A copy of a recurrent state (an array, a tuple ``(h, c)`` of arrays, or None).

    This is the state carried across a truncation boundary: the same values, owned by the caller and
    unconnected to the layer's buffers (NumPy has no graph to cut; the gradient is cut by the next
    chunk's ``backward(dout, dh_n=None)``, which starts from ``∂L/∂S = 0``).
    """
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(detach_state(s) for s in state)
    arr = np.asarray(state)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"state must be an array or a tuple of arrays of real numbers, got dtype {arr.dtype}")
    return np.array(arr, copy=True)


@dataclass
class TBPTTResult:
    """What a TBPTT pass returns.

    ``losses`` (n_chunks,) float64: each chunk's loss value (as the loss function reduced it), computed
    before that chunk's update. ``state``: the state after the last step (detached), to continue the
    stream later. ``steps``: the number of timesteps processed.
    """

    losses: np.ndarray
    state: Any
    steps: int


class TruncatedBPTT:
    """Train a recurrent ``layer`` (and an optional per-step ``head``, e.g. ``rnnfast.Linear``) by TBPTT.

    Parameters
    ----------
    layer: an ``rnnfast.Elman`` / ``rnnfast.LSTM`` (any num_layers, either layout).
    loss: ``loss(pred, target) -> (value, dpred)``, e.g. ``rnnfast.losses.mse_loss`` or a
        ``functools.partial`` of one; ``pred`` is the chunk's ``head(out)`` (or ``out``), in the layer's
        layout. With ``reduction="mean"`` each chunk's loss is a mean over that chunk, so a shorter last
        chunk weighs its steps more.
    k: steps per chunk for :meth:`run` (default 20).
    head: optional module with ``forward``/``backward`` applied to ``out`` at every step.
    optimizer: anything with ``step()`` over the layer's and head's parameters (``rnnfast.optim.SGD``, …).
        None: no update; each chunk's gradient is added to ``.grad`` (see the module docstring).
    max_norm: if given, each chunk's gradient (layer and head together) is clipped to this total
        2-norm with ``rnnfast.clip.clip_grad_norm_`` before it is applied or accumulated.

    Each chunk zeroes the layer's and head's ``.grad`` before its backward (restoring the accumulated sum
    afterwards when ``optimizer`` is None), so gradients from outside the pass never leak into an update.
    """

    def __init__(self, layer: _Layer, loss: LossFn, k: int = 20, head: Optional[_Head] = None,
                 optimizer: Any = None, max_norm: Optional[float] = None):
        for name, mod in (("layer", layer), ("head", head)):
            if mod is None and name == "head":
                continue
            if not (callable(mod) and hasattr(mod, "backward") and hasattr(mod, "parameters")):
                raise TypeError(f"{name} must be an rnnfast module with forward/backward/parameters, "
                                f"got {type(mod).__name__}")
        if getattr(layer, "bidirectional", False):      # its reverse direction would read each chunk alone
            raise ValueError("truncated BPTT needs a unidirectional layer: a bidirectional one's reverse direction "
                             "reads the sequence from its end, which a chunk does not reach")
        if len(inspect.signature(layer).parameters) < 2:   # forward(x) alone: not a layer that carries a state
            raise TypeError(f"layer must be a recurrent layer (Elman, LSTM, GRU or Jordan), whose forward takes "
                            f"x and a state, got {type(layer).__name__}")
        if isinstance(layer, Sequential):       # the chunks would run its first module alone (the Engine's layer)
            raise TypeError("layer must be one recurrent layer (Elman, LSTM, GRU or Jordan), got a Sequential: "
                            "pass its recurrent layer as layer and what follows it as head (a module applied "
                            "to the layer's out)")
        if not callable(loss):
            raise TypeError(f"loss must be a callable loss(pred, target) -> (value, grad), got {type(loss).__name__}")
        if optimizer is not None and not callable(getattr(optimizer, "step", None)):
            raise TypeError(f"optimizer must have a step() method, got {type(optimizer).__name__}")
        self.layer = layer
        self.loss = loss
        self.k = check_int("k", k, minimum=1)
        self.head = head
        self.optimizer = optimizer
        self.max_norm = None if max_norm is None else check_positive("max_norm", max_norm)

    # ---- helpers ------------------------------------------------------------------------------------
    @property
    def time_axis(self) -> int:
        """The time axis of x and targets: 1 for a ``batch_first`` layer, else 0."""
        return 1 if getattr(self.layer, "batch_first", False) else 0

    def parameters(self) -> List[Parameter]:
        """The layer's parameters, then the head's."""
        return self.layer.parameters() + (self.head.parameters() if self.head is not None else [])

    # ---- one chunk ----------------------------------------------------------------------------------
    def step(self, x_chunk: Any, target_chunk: Any, state: Any = None,
             lengths: Any = None) -> Tuple[float, Any]:
        """Forward, loss, truncated backward, (clip), update on one chunk from ``state``.

        ``lengths`` (B,), optional: the real steps of each sequence in this chunk, in [0, k_j] (0: the
        sequence has ended; it is left out and keeps its state). The loss then sees the real steps only
        (module docstring); a chunk where every sequence has ended scores nothing: loss 0, no update.

        Returns ``(loss value, detached state after the chunk)``.
        """
        shape = np.shape(x_chunk)
        if len(shape) > self.time_axis and shape[self.time_axis] == 0:
            raise ValueError("x_chunk has no timesteps; every chunk needs at least one step")
        if lengths is not None:
            return self._ragged_step(x_chunk, target_chunk, state, lengths)

        def objective(output: Tuple[np.ndarray, Any]) -> Tuple[float, float, Tuple[np.ndarray, None]]:
            pred = self.head(output[0]) if self.head is not None else output[0]
            value, dpred = self._call_loss(pred, target_chunk)
            return value, 1.0, (self.head.backward(dpred) if self.head is not None else dpred, None)

        engine = Engine(self.layer, self.head, self.optimizer, self.max_norm)
        value, _, new_state = engine.step(x_chunk, state, objective)
        return value, detach_state(new_state)

    def _ragged_step(self, x_chunk: Any, target_chunk: Any, state: Any, lengths: Any) -> Tuple[float, Any]:
        """:meth:`step` on a chunk with ``lengths``: the running sequences through the packed path, the loss
        on their real steps."""
        if "lengths" not in inspect.signature(self.layer).parameters:
            raise TypeError(f"lengths: {type(self.layer).__name__} takes no lengths (it runs every sequence all "
                            f"T steps); give equal-length batches, or a recurrent layer (Elman, LSTM, GRU)")
        ta, ba = self.time_axis, 1 - self.time_axis             # time and batch axes of x and the targets
        xs = np.asarray(x_chunk)
        if xs.ndim != 3:
            raise ValueError(f"x_chunk must be a 3-D array, got shape {xs.shape}")
        k, B = xs.shape[ta], xs.shape[ba]
        lens = np.asarray(check_lengths(lengths, B, k, minimum=0), np.int64)                 # (B,)
        ys = None if target_chunk is None else np.asarray(target_chunk)
        if ys is not None and (ys.ndim < 2 or ys.shape[ta] != k or ys.shape[ba] != B):
            raise ValueError(f"target_chunk must have x_chunk's steps and batch ({k}, {B}) on its axes "
                             f"{ta}, {ba}, got shape {ys.shape}")
        live = np.flatnonzero(lens)                             # (B_a,) the sequences still running
        if live.size == 0:
            return 0.0, detach_state(state)
        whole = live.size == B
        pick = (lambda a: a) if whole else (lambda a: np.take(a, live, axis=ba))
        steps = np.arange(k)
        real = (steps[:, None] < lens[live][None, :]) if ta == 0 else (steps[None, :] < lens[live][:, None])
        target = None if ys is None else pick(ys)[real]         # (N, ...) the real steps' targets

        def objective(output: Tuple[np.ndarray, Any]) -> Tuple[float, float, Tuple[np.ndarray, None]]:
            out = output[0]
            pred = self.head(out) if self.head is not None else out     # (k, B_a, O) or (B_a, k, O)
            value, d_real = self._call_loss(pred[real], target)
            dpred = np.zeros_like(pred)
            dpred[real] = d_real                                # the padding gets no gradient
            return value, 1.0, (self.head.backward(dpred) if self.head is not None else dpred, None)

        engine = Engine(self.layer, self.head, self.optimizer, self.max_norm)
        value, _, new_state = engine.step(pick(xs), _state_rows(state, live, whole), objective, lens[live])
        return value, _merge_state(state, new_state, live, B)

    def _call_loss(self, pred: np.ndarray, target: Any) -> Tuple[float, np.ndarray]:
        result = self.loss(pred, target)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError(f"loss must return a tuple (value, grad), got {type(result).__name__}")
        value, grad = result
        grad = np.asarray(grad)
        if grad.shape != pred.shape:
            raise ValueError(f"loss returned a grad of shape {grad.shape}, expected the prediction's shape "
                             f"{pred.shape}")
        return float(np.sum(value)), grad

    # ---- passes -------------------------------------------------------------------------------------
    def run_chunks(self, chunks: Iterable[Tuple[Any, ...]], state: Any = None) -> TBPTTResult:
        """One pass over an iterable of ``(x_chunk, target_chunk)`` pairs, each one truncation window, or of
        ``(x_chunk, target_chunk, lengths_chunk)`` triples for a ragged batch (:meth:`step`'s ``lengths``).

        ``x_chunk`` is ``(k_j, B, I)`` (``(B, k_j, I)`` for a ``batch_first`` layer); chunks may differ in
        length. The iterable is consumed lazily, so a generator can feed an arbitrarily long stream in
        O(max k_j) memory (plus one float per chunk for ``losses``). ``state`` is the initial state
        (None: zeros).
        """
        losses: List[float] = []
        steps = 0
        state = detach_state(state)
        for j, item in enumerate(chunks):
            if not (isinstance(item, (tuple, list)) and len(item) in (2, 3)):
                raise TypeError(f"chunks must yield (x_chunk, target_chunk) pairs or (x_chunk, target_chunk, "
                                f"lengths) triples; item {j} is a {type(item).__name__}")
            value, state = self.step(item[0], item[1], state, item[2] if len(item) == 3 else None)
            losses.append(value)
            steps += np.shape(item[0])[self.time_axis]
        return TBPTTResult(np.asarray(losses, dtype=np.float64), state, steps)

    def run(self, x: Any, targets: Any, state: Any = None, lengths: Any = None) -> TBPTTResult:
        """One pass over a whole sequence ``x`` (T, B, I) with ``targets`` (T, ...), cut into chunks of ``k``.

        ``lengths`` (B,), optional, in [1, T]: a ragged batch, sequence b real for its first ``lengths[b]``
        steps; each chunk gets the real steps of each sequence in it (module docstring).
        Chunks are views of ``x``: nothing of size T is allocated beyond the inputs themselves.
        """
        chunks = iter_chunks(x, targets, self.k, self.time_axis)
        if lengths is None:
            return self.run_chunks(chunks, state)
        shape = np.shape(x)
        if len(shape) != 3:
            raise ValueError(f"x must be a 3-D array, got shape {shape}")
        T, B = shape[self.time_axis], shape[1 - self.time_axis]
        lens = np.asarray(check_lengths(lengths, B, T, minimum=1), np.int64)                  # (B,)
        return self.run_chunks(((xc, yc, np.clip(lens - s, 0, e - s)) for (xc, yc), (s, e)
                                in zip(chunks, chunk_bounds(T, self.k))), state)


def _state_rows(state: Any, rows: np.ndarray, whole: bool) -> Any:
    """The state (L·D, B, H), or a pair of them, of the sequences ``rows`` only (all: as it is)."""
    if state is None or whole:
        return state
    if isinstance(state, (tuple, list)):
        return tuple(None if s is None else np.asarray(s)[:, rows] for s in state)
    return np.asarray(state)[:, rows]


def _merge_state(state: Any, new: Any, rows: np.ndarray, B: int) -> Any:
    """A detached state of all B sequences: ``new`` (of the sequences ``rows``) in their places, ``state``
    (zeros if None) elsewhere, for the sequences that have ended."""
    if isinstance(new, tuple):
        old = state if isinstance(state, (tuple, list)) else (None,) * len(new)
        return tuple(_merge_state(o, n, rows, B) for o, n in zip(old, new))
    new = np.asarray(new)
    merged = np.zeros(new.shape[:1] + (B,) + new.shape[2:], new.dtype)        # (L·D, B, H)
    if state is not None:
        merged[...] = state
    merged[:, rows] = new
    return merged
