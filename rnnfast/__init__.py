"""rnnfast: fast, exact recurrent networks (Elman, LSTM, GRU, Jordan) on the CPU, with Cython BPTT kernels."""
import importlib
from typing import Any

from . import _kernels  # noqa: F401  (first: a clear error when the kernels are not built; the OpenMP wait policy)
from . import distributed, losses, optim
from ._config import show_config
from ._kernels import KernelOptions, kernel_options
from ._module import Module, Parameter, is_grad_enabled, no_grad
from ._threads import get_num_threads, openmp_enabled, set_num_threads, thread_limit
from ._version import __version__
from .clip import clip_grad_norm_, clip_grad_value_
from .compose import Dropout, Embedding, Readout, Sequential
from .diagnostics import GradcheckError, gradcheck, gradient_norms_through_time
from .generate import generate
from .jordan import Jordan
from .layers import GRU, LSTM, RNN, Elman, Linear
from .losses import bce_with_logits, cross_entropy, mse_loss
from .lr_scheduler import CosineAnnealingLR, ReduceLROnPlateau, StepLR
from .optim import SGD, Adam, AdamW, RMSprop
from .seq2seq import EncoderDecoder
from .sequences import PackedSequence, pack_sequences, pad_sequences, sequence_mask, unpack, unpad_sequences
from .tdnn import TimeDelay
from .tbptt import TBPTTResult, TruncatedBPTT, chunk_bounds, detach_state, iter_chunks

__all__ = [
    "Module", "Parameter", "no_grad", "is_grad_enabled", "Elman", "RNN", "LSTM", "GRU", "Linear", "Jordan",
    "Sequential", "Readout", "Embedding", "Dropout", "TimeDelay", "EncoderDecoder",
    "set_num_threads", "get_num_threads", "thread_limit", "openmp_enabled", "kernel_options", "KernelOptions",
    "distributed", "losses", "mse_loss", "cross_entropy", "bce_with_logits",
    "optim", "SGD", "Adam", "AdamW", "RMSprop", "StepLR", "ReduceLROnPlateau", "CosineAnnealingLR",
    "clip_grad_norm_", "clip_grad_value_",
    "pad_sequences", "unpad_sequences", "sequence_mask", "PackedSequence", "pack_sequences", "unpack",
    "TruncatedBPTT", "TBPTTResult", "chunk_bounds", "iter_chunks", "detach_state",
    "gradient_norms_through_time", "gradcheck", "GradcheckError",
    "SequenceClassifier", "SequenceRegressor", "SequenceForecaster", "load", "generate",
    "show_config", "__version__",
]

# The estimators import scikit-learn when it is installed (their base classes), which takes a second and loads
# its own OpenMP runtime: they, and what needs them, are imported when first asked for, so that a program that
# uses the layers alone does not pay for them (PEP 562).
_ON_FIRST_USE = {"SequenceClassifier": ".estimators", "SequenceRegressor": ".estimators",
                 "SequenceForecaster": ".estimators", "estimators": ".estimators", "load": ".persist"}


def __getattr__(name: str) -> Any:
    if name not in _ON_FIRST_USE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_ON_FIRST_USE[name], __name__)
    value = module if name == "estimators" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ON_FIRST_USE))
