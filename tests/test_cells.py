"""The table of cells (rnnfast._cells): one row per kernel cell, which the layers, the kernel boundary and the
reference read; names parsed once (cell_spec), "rnn" an alias of "elman"."""
from __future__ import annotations

import numpy as np
import pytest

import rnnfast
from rnnfast import _kernels, _recurrent
from rnnfast._cells import ALIASES, CELL_NAMES, CELLS, cell_spec
from rnnfast.layers import recurrent_layer


def test_the_table_agrees_with_the_compiled_kernels_and_the_layers():
    compiled = {"elman-tanh": _recurrent.ELMAN_TANH, "elman-relu": _recurrent.ELMAN_RELU,
                "elman-sigmoid": _recurrent.ELMAN_SIGMOID, "lstm": _recurrent.LSTM, "gru": _recurrent.GRU}
    assert {key: spec.code for key, spec in CELLS.items()} == compiled
    assert len({spec.code for spec in CELLS.values()}) == len(CELLS)
    for key, spec in CELLS.items():
        assert spec.key == key
        layer = recurrent_layer(key, 3, 5, num_layers=2)
        assert layer.cell is spec
        assert layer.weight_ih_l0.shape == (spec.gates * 5, 3) and layer.weight_hh_l1.shape == (spec.gates * 5, 5)
        _, state = layer(np.zeros((2, 1, 3), np.float32))
        assert isinstance(state, tuple) == spec.has_cell_state == (spec.state == ("h", "c"))
        assert len(spec.gate_names) == spec.gates


@pytest.mark.parametrize("name, nonlinearity, key", [
    ("elman", None, "elman-tanh"), ("rnn", None, "elman-tanh"), ("rnn", "relu", "elman-relu"),
    ("elman", "sigmoid", "elman-sigmoid"), ("elman-relu", None, "elman-relu"), ("elman-relu", "relu", "elman-relu"),
    ("lstm", None, "lstm"), ("lstm", "tanh", "lstm"), ("gru", None, "gru"),
])
def test_cell_spec_parses_families_aliases_and_keys(name, nonlinearity, key):
    assert cell_spec(name, nonlinearity) is CELLS[key]
    assert cell_spec(CELLS[key]) is CELLS[key]


def test_cell_spec_errors_name_the_choices():
    with pytest.raises(ValueError, match="cell must be one of 'elman', 'lstm', 'gru', 'rnn'"):
        cell_spec("transformer")
    with pytest.raises(ValueError, match="nonlinearity must be one of 'tanh', 'relu', 'sigmoid'"):
        cell_spec("elman", "gelu")
    with pytest.raises(ValueError, match="has the nonlinearity 'relu'"):
        cell_spec("elman-relu", "tanh")
    with pytest.raises(TypeError, match="cell must be a str"):
        cell_spec(3)
    with pytest.raises(TypeError, match="nonlinearity must be a str"):
        cell_spec("elman", 1)
    assert set(CELL_NAMES) == {spec.family for spec in CELLS.values()} and ALIASES == {"rnn": "elman"}


def test_recurrent_layer_builds_the_family_class():
    assert type(recurrent_layer("rnn", 2, 3)) is rnnfast.Elman
    assert recurrent_layer("rnn", 2, 3, nonlinearity="relu").nonlinearity == "relu"
    assert type(recurrent_layer("lstm", 2, 3, nonlinearity="tanh")) is rnnfast.LSTM
    assert type(recurrent_layer("gru", 2, 3, bidirectional=True)) is rnnfast.GRU


def test_kept_elements_follow_the_table():
    H = 7
    assert _kernels.kept_elements(CELLS["elman-relu"], H) == H
    assert _kernels.kept_elements(CELLS["lstm"], H) == H + 4 * H + 2 * H
    assert _kernels.kept_elements(CELLS["gru"], H) == H + 3 * H + H
