"""Compatibility only: the NumPy reference is now ``rnnfast.reference``, the package's specification of the
mathematics; import it from there. This module keeps ``import reference`` and the old mode names (``"tanh"``,
``"relu"``, ``"sigmoid"`` for Elman cells) working for the tests that still use them (test_tbptt.py)."""
from __future__ import annotations

from rnnfast import reference as _reference
from rnnfast._cells import NONLINEARITIES
from rnnfast.reference import *  # noqa: F401,F403


def _cell(mode):
    return f"elman-{mode}" if mode in NONLINEARITIES else mode


def forward(mode, *args, **kwargs):
    return _reference.forward(_cell(mode), *args, **kwargs)


def run(mode, *args, **kwargs):
    return _reference.run(_cell(mode), *args, **kwargs)


def init_weights(rng, mode, *args, **kwargs):
    return _reference.init_weights(rng, _cell(mode), *args, **kwargs)
