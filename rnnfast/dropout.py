r"""Inverted dropout, ``torch.nn.Dropout``-compatible: in ``train()`` mode each entry is kept with probability
1 − p and scaled so that the expectation is unchanged; in ``eval()`` mode the identity.

    forward:   y = x ⊙ m / (1 − p),    m_j ~ Bernoulli(1 − p)     (p = 1: y = 0)
    backward:  ∂L/∂x = ∂L/∂y ⊙ m / (1 − p)                         (the forward's own mask)
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._module import Module, one_thread_at_a_time
from ._validation import as_real_array, check_real, check_shape

__all__ = ["Dropout"]


def _floats(name: str, x: Any) -> np.ndarray:
    """``x`` as a real array, integers as float64 (what dropout returns for them)."""
    arr = as_real_array(name, x)
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


class Dropout(Module):
    """Zero each entry with probability ``p`` in training, scaling the rest by 1/(1 − p); identity in eval.

    Parameters
    ----------
    p : float in [0, 1], default 0.5
        The probability of zeroing an entry.
    seed : int, optional
        Seed of the masks.

    Shapes
    ------
    x, y : any shape; y has x's dtype (float64 for integer inputs).

    Examples
    --------
    >>> import numpy as np, rnnfast
    >>> drop = rnnfast.Dropout(0.5)
    >>> drop(np.ones(4), mask=np.array([1, 0, 1, 1], bool))         # a fixed mask: which entries are kept
    array([2., 0., 2., 2.])
    >>> drop.backward(np.ones(4))                                    # through the same mask
    array([2., 0., 2., 2.])
    >>> drop.eval()(np.ones(4))                                      # eval: the identity
    array([1., 1., 1., 1.])
    """

    _transient = {**Module._transient, "_keep": lambda: None, "_shape": lambda: None}

    def __init__(self, p: float = 0.5, seed: Optional[int] = None):
        super().__init__()
        self.p = check_real("p", p, 0.0, 1.0)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._keep: Optional[np.ndarray] = None     # the last forward's mask m (bool); None: it was the identity
        self._shape: Optional[tuple] = None

    @property
    def _factor(self) -> float:
        """1 / (1 − p), and 0 for p = 1 (everything dropped, as torch does, rather than 0 · 1/0)."""
        return 0.0 if self.p == 1 else 1.0 / (1.0 - self.p)

    @one_thread_at_a_time
    def forward(self, x: Any, mask: Any = None) -> np.ndarray:
        """x ⊙ m / (1 − p) in train mode; x itself in eval mode (as torch returns its input).

        Parameters
        ----------
        x : array_like
        mask : array_like of bool or 0/1, x's shape, optional
            In train mode, the entries to keep (instead of a random draw), for tests and for reproducing
            another framework's mask; ignored in eval mode.

        Returns
        -------
        y : ndarray, x's shape
        """
        arr = _floats("x", x)
        self._shape = arr.shape
        if not self.training or (self.p == 0 and mask is None):
            self._keep = None
            return arr
        if mask is None:
            keep = self._rng.random(arr.shape) >= self.p                # (…) m ~ Bernoulli(1 − p)
        else:
            keep = as_real_array("mask", mask)
            check_shape("mask", keep, arr.shape, "(x's shape)")
            if keep.dtype.kind != "b":
                if not np.all((keep == 0) | (keep == 1)):
                    raise ValueError("mask must hold only 0/1 or True/False (the entries to keep)")
                keep = keep != 0
            else:
                keep = keep.copy()                                      # the caller may change theirs
        self._keep = keep
        y = arr * keep                                                  # (…) x's dtype
        y *= self._factor
        return y

    __call__ = forward

    def step(self, x_t: Any) -> np.ndarray:
        """One timestep of a generation (:meth:`rnnfast.Sequential.step`): x_t itself, as in eval mode."""
        return _floats("x_t", x_t)

    @one_thread_at_a_time
    def backward(self, dy: Any) -> np.ndarray:
        """∂L/∂x through the last :meth:`forward`'s mask (the identity if that forward was in eval mode).

        Parameters
        ----------
        dy : array_like, the forward's x's shape

        Returns
        -------
        dx : ndarray
        """
        if self._shape is None:
            raise ValueError("backward needs a forward first: call the layer on an input, then backward")
        d = _floats("dy", dy)
        check_shape("dy", d, self._shape, "(the forward input's shape)")
        if self._keep is None:
            return d
        dx = d * self._keep                                             # through the same mask
        dx *= self._factor
        return dx

    @property
    def last_mask(self) -> Optional[np.ndarray]:
        """The entries the last train-mode :meth:`forward` kept (bool, x's shape); None after the identity."""
        return None if self._keep is None else self._keep.copy()

    def extra_repr(self) -> str:
        return f"p={self.p}"
