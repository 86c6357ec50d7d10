"""The table of recurrent cells: one row per cell the kernels run, written once.

Every part of rnnfast that needs to know what a cell is reads this table: the layers (how many gates, whether
there is a cell state ``c``), the kernel boundary (:mod:`rnnfast._kernels`, the cell's code in the compiled
module and the buffers it keeps), the NumPy reference (:mod:`rnnfast.reference`) and the tests.

==============  ======  =====  ============  ===========  =================================================
key             family  G      state         gates        nonlinearity
==============  ======  =====  ============  ===========  =================================================
elman-tanh      elman   1      h             h            tanh
elman-relu      elman   1      h             h            relu
elman-sigmoid   elman   1      h             h            sigmoid
lstm            lstm    4      (h, c)        i, f, g, o   σ, σ, tanh, σ (fixed)
gru             gru     3      h             r, z, n      σ, σ, tanh (fixed)
==============  ======  =====  ============  ===========  =================================================

``G`` is the gate count: ``weight_ih`` is (G·H, I) and ``weight_hh`` (G·H, H), as in ``torch.nn``.

Names: a *family* (``"elman"``, ``"lstm"``, ``"gru"``; ``"rnn"`` is an alias of ``"elman"``, as
``rnnfast.RNN`` is of ``rnnfast.Elman``) or a *key* (``"elman-relu"``) name a cell; :func:`cell_spec` parses
either. The ``code`` column is the cell's number in the compiled kernels (``csrc``: the Elman codes are
``RF_TANH``, ``RF_RELU``, ``RF_SIGMOID`` of ``rnnfast_pointwise.h``, then ``LSTM``, ``GRU``);
:mod:`rnnfast._kernels` checks at import that the compiled module agrees.

Adding a cell: a row here, its kernel (a pointwise pass in ``csrc/rnnfast_pointwise.h`` and its branch in the
time loops), its equations in :mod:`rnnfast.reference`, and a layer class in :mod:`rnnfast.layers`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

__all__ = ["CellSpec", "CELLS", "CELL_NAMES", "ALIASES", "NONLINEARITIES", "cell_spec"]


@dataclass(frozen=True)
class CellSpec:
    """One row of the table of cells.

    Attributes
    ----------
    family : str
        ``"elman"``, ``"lstm"`` or ``"gru"``: the layer class and the estimators' ``cell``.
    code : int
        The cell's code in the compiled kernels.
    gates : int
        G, the number of gate blocks of H units in ``weight_ih`` (G·H, I) and ``weight_hh`` (G·H, H).
    gate_names : tuple of str
        The gate blocks in PyTorch's order.
    state : tuple of str
        ``("h",)``, or ``("h", "c")`` for a cell that also carries a cell state.
    nonlinearity : str or None
        Elman's φ; None where the gates fix the nonlinearities.
    """

    family: str
    code: int
    gates: int
    gate_names: Tuple[str, ...]
    state: Tuple[str, ...]
    nonlinearity: Optional[str] = None

    @property
    def key(self) -> str:
        """The row's name: ``"elman-tanh"``, ``"lstm"``, ..."""
        return f"{self.family}-{self.nonlinearity}" if self.family == "elman" else self.family

    @property
    def has_cell_state(self) -> bool:
        """True when the state is the pair (h, c) (LSTM)."""
        return "c" in self.state

    def width(self, hidden_size: int) -> int:
        """G·H, the rows of ``weight_ih`` and ``weight_hh``."""
        return self.gates * hidden_size


NONLINEARITIES: Tuple[str, ...] = ("tanh", "relu", "sigmoid")        # Elman's φ, codes 0, 1, 2

_ROWS = (
    CellSpec("elman", 0, 1, ("h",), ("h",), "tanh"),
    CellSpec("elman", 1, 1, ("h",), ("h",), "relu"),
    CellSpec("elman", 2, 1, ("h",), ("h",), "sigmoid"),
    CellSpec("lstm", 3, 4, ("i", "f", "g", "o"), ("h", "c")),
    CellSpec("gru", 4, 3, ("r", "z", "n"), ("h",)),
)

#: Every cell the kernels run, by key (``"elman-tanh"``, ``"elman-relu"``, ``"elman-sigmoid"``, ``"lstm"``,
#: ``"gru"``).
CELLS: Mapping[str, CellSpec] = {row.key: row for row in _ROWS}
#: The families, as layers and estimators name them.
CELL_NAMES: Tuple[str, ...] = ("elman", "lstm", "gru")
#: Other accepted names of a family.
ALIASES: Mapping[str, str] = {"rnn": "elman"}


def _one_of(values: Any) -> str:
    return ", ".join(repr(v) for v in values)


def cell_spec(cell: Any, nonlinearity: Optional[str] = None) -> CellSpec:
    """The table's row for a cell name.

    Parameters
    ----------
    cell : str or CellSpec
        A family (``"elman"``, ``"lstm"``, ``"gru"``), an alias (``"rnn"``), a key (``"elman-relu"``) or a
        row (returned as it is).
    nonlinearity : str, optional
        Elman's φ (``"tanh"``, ``"relu"``, ``"sigmoid"``) when ``cell`` names the family; default ``"tanh"``.
        Ignored for LSTM and GRU (their gates fix it); a key that says it (``"elman-relu"``) must agree.

    Returns
    -------
    CellSpec

    Raises
    ------
    TypeError
        ``cell`` or ``nonlinearity`` is not a str.
    ValueError
        An unknown name or nonlinearity, or one that contradicts the key.
    """
    if isinstance(cell, CellSpec):
        return cell
    if not isinstance(cell, str):
        raise TypeError(f"cell must be a str, one of {_one_of(CELL_NAMES)}, got {type(cell).__name__}")
    if nonlinearity is not None and not isinstance(nonlinearity, str):
        raise TypeError(f"nonlinearity must be a str, one of {_one_of(NONLINEARITIES)}, got "
                        f"{type(nonlinearity).__name__}")
    name = ALIASES.get(cell, cell)
    if name in CELLS:
        spec = CELLS[name]
        if spec.nonlinearity is not None and nonlinearity not in (None, spec.nonlinearity):
            raise ValueError(f"cell {cell!r} has the nonlinearity {spec.nonlinearity!r}, got {nonlinearity!r}")
        return spec
    if name == "elman":
        phi = "tanh" if nonlinearity is None else nonlinearity
        if phi not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {_one_of(NONLINEARITIES)}, got {phi!r}")
        return CELLS[f"elman-{phi}"]
    raise ValueError(f"cell must be one of {_one_of(CELL_NAMES + tuple(ALIASES))} (or a key: "
                     f"{_one_of(CELLS)}), got {cell!r}")
