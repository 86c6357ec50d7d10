r"""A lookup table of vectors, ``torch.nn.Embedding``-compatible: integer ids in, rows of ``weight`` out.

    forward:   y[..., :] = W[ids[...], :]                           ids (...) → y (..., E)
    backward:  ∂L/∂W[v] += Σ_{positions p with ids[p] = v} ∂L/∂y[p]  (rows never used get nothing)

``weight`` (num_embeddings, embedding_dim) starts as N(0, 1), as torch's does, with the ``padding_idx`` row
(if any) at zero; that row's gradient is always zero, so an optimizer step does not move it.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._module import Module, is_grad_enabled, no_backward_error, one_thread_at_a_time, resolve_dtype
from ._validation import as_real_array, check_int, check_shape, may_alias

__all__ = ["Embedding"]


class Embedding(Module):
    """Vectors for integer ids: ``y = weight[ids]``, on ``torch.nn.Embedding``'s names and init.

    Parameters
    ----------
    num_embeddings : int
        V, the size of the vocabulary: ids lie in [0, V).
    embedding_dim : int
        E, the length of each vector.
    padding_idx : int, optional
        An id whose vector starts at zero and gets no gradient (a padding token). A negative value counts
        from the end, as in torch, and is stored as its non-negative equivalent.
    dtype : {"float32", "float64"}, default "float32"
    seed : int, optional
        Seed of the initialisation N(0, 1).

    Shapes
    ------
    ids : (...), any shape, an integer dtype.
    y : (..., E).
    weight : (V, E).

    Examples
    --------
    >>> import numpy as np, rnnfast
    >>> emb = rnnfast.Embedding(10, 3, padding_idx=0, seed=0)
    >>> y = emb(np.array([[1, 2], [0, 2]]))                       # (2, 2, 3)
    >>> emb.backward(np.ones_like(y))                             # adds into emb.weight.grad; ids have no gradient
    >>> emb.weight.grad[:3, 0]                                     # row 2 was used twice, row 0 is padding
    array([0., 1., 2.], dtype=float32)

    Notes
    -----
    The gradient is dense (``weight.grad`` has ``weight``'s shape, as torch's default ``sparse=False``), but
    backward only touches the rows that were used, so its cost does not grow with V.
    """

    _transient = {**Module._transient, "_ids": lambda: None, "_no_grad": lambda: False}

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: Optional[int] = None,
                 dtype: Any = "float32", seed: Optional[int] = None):
        super().__init__()
        self.num_embeddings = check_int("num_embeddings", num_embeddings, 1)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, 1)
        if padding_idx is not None:
            padding_idx = check_int("padding_idx", padding_idx)
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"padding_idx must lie in [-num_embeddings, num_embeddings) = "
                                 f"[{-self.num_embeddings}, {self.num_embeddings}), got {padding_idx}")
            padding_idx %= self.num_embeddings                      # -1 → V - 1, as torch stores it
        self.padding_idx = padding_idx
        self.dtype = resolve_dtype(dtype)
        self.seed = seed
        init = np.random.default_rng(seed).standard_normal((self.num_embeddings, self.embedding_dim))
        if padding_idx is not None:
            init[padding_idx] = 0.0
        self.weight = self._register("weight", init, self.dtype)
        self._ids: Optional[np.ndarray] = None                     # the last forward's ids, until its backward
        self._no_grad = False                                       # the last forward ran under no_grad

    @one_thread_at_a_time
    def forward(self, ids: Any) -> np.ndarray:
        """The rows of ``weight`` at ``ids``.

        Parameters
        ----------
        ids : array_like of int, any shape
            Each in [0, num_embeddings). Kept for :meth:`backward`.

        Returns
        -------
        y : ndarray (*ids.shape, embedding_dim)
        """
        arr = self._checked(ids)
        self._check_parameters()
        self._no_grad = not is_grad_enabled()                       # then no backward follows: keep nothing
        # backward reads ids again: keep a copy when it is the caller's array, which may change in between
        self._ids = None if self._no_grad else arr.copy() if may_alias(arr, ids) else arr
        return self.weight.data[arr]                                # (..., E), a fresh array

    __call__ = forward

    def step(self, ids_t: Any) -> np.ndarray:
        """The rows of ``weight`` at one timestep's ids (B,), keeping nothing for :meth:`backward`."""
        arr = self._checked(ids_t)
        self._check_parameters()
        return self.weight.data[arr]

    def _check_parameters(self, grads: bool = False) -> None:
        """weight's ``.data`` (and ``.grad``) of shape (num_embeddings, embedding_dim) and the layer's dtype."""
        self._check_parameter_arrays({"weight": (self.num_embeddings, self.embedding_dim)}, self.dtype,
                                     contiguous=False, grads=grads)

    def _checked(self, ids: Any) -> np.ndarray:
        arr = as_real_array("ids", ids)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"ids must be an integer array, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.num_embeddings):
            raise ValueError(f"ids must lie in [0, num_embeddings) = [0, {self.num_embeddings}), got min "
                             f"{arr.min()}, max {arr.max()}")
        return arr

    @one_thread_at_a_time
    def backward(self, dy: Any) -> None:
        """Add ∂L/∂weight into ``weight.grad``: each position's ``dy`` into the row of its id.

        Parameters
        ----------
        dy : array_like (*ids.shape, embedding_dim)
            ∂L/∂y.

        Returns
        -------
        None
            Integer ids have no gradient (torch's is None too).
        """
        if self._ids is None:
            if self._no_grad:
                raise no_backward_error()
            raise ValueError("backward needs a forward first (and runs once per forward, as the other layers' "
                             "does): call the layer on ids, then backward")
        ids = self._ids
        self._check_parameters(grads=True)
        d = as_real_array("dy", dy, self.dtype)
        check_shape("dy", d, ids.shape + (self.embedding_dim,), "(*ids.shape, embedding_dim)")
        rows = ids.reshape(-1)                                      # (N,)
        d2 = d.reshape(-1, self.embedding_dim)                      # (N, E)
        if self.padding_idx is not None:
            used = rows != self.padding_idx                         # the padding row gets no gradient
            rows, d2 = rows[used], d2[used]
        np.add.at(self.weight.grad, rows, d2)                       # repeated ids add up
        self._ids = None                                            # once per forward: a second would add twice
        return None

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        return s + f", dtype='{self.dtype.name}'"
