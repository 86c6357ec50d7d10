"""rnnfast: fast, exact recurrent networks (Elman, LSTM) on the CPU, with Cython BPTT kernels."""
from ._module import Module, Parameter

__version__ = "0.1.0"
