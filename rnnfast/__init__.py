"""rnnfast: fast, exact recurrent networks (Elman, LSTM) on the CPU, with Cython BPTT kernels."""
from ._module import Module, Parameter
from ._threads import get_num_threads, openmp_enabled, set_num_threads
from .layers import LSTM, RNN, Elman, Linear

__version__ = "0.1.0"

__all__ = ["Module", "Parameter", "Elman", "RNN", "LSTM", "Linear",
           "set_num_threads", "get_num_threads", "openmp_enabled", "__version__"]
