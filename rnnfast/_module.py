"""Parameters and the small Module base that every layer builds on.

A :class:`Parameter` is an array with a gradient of the same shape (``.data`` and ``.grad``), as
``torch.nn.Parameter``. A :class:`Module` owns named parameters in registration order and gives them
PyTorch's names in ``named_parameters()`` and ``state_dict()``; ``backward`` methods add into
``.grad`` (torch accumulates too) and ``zero_grad()`` resets them.
"""
from __future__ import annotations

import contextvars
import functools
import inspect
import threading
from typing import Any, Callable, Iterator, Mapping, NamedTuple, TypeVar

import numpy as np

from ._threads import zero_arrays

__all__ = ["Parameter", "Module", "resolve_dtype", "one_thread_at_a_time", "no_grad", "is_grad_enabled"]

_F = TypeVar("_F", bound=Callable[..., Any])

_FLOAT_DTYPES = {np.dtype(np.float32), np.dtype(np.float64)}


_GRAD_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar("rnnfast_grad_enabled", default=True)


def is_grad_enabled() -> bool:
    """False inside :func:`no_grad` (in this thread or task), else True."""
    return _GRAD_ENABLED.get()


class no_grad:
    """``with rnnfast.no_grad():``, ``@rnnfast.no_grad()`` or ``@rnnfast.no_grad``, as ``torch.no_grad``: no
    backward follows the forwards in the block or the decorated function (a generator function's body too, at
    every resumption), in this thread or task only. One object may be entered again, nested or later.

    The recurrent layers (Elman, LSTM, GRU, and the models built of them) then run their inference forward:
    it keeps no activations (no input projection of all steps, no history of the gates or of c, no copies of
    the caller's inputs), so it needs less memory and runs faster than the training forward, with the same
    results to rounding. ``backward`` after such a forward raises ``RuntimeError``.
    """

    def __new__(cls, func: Any = None) -> Any:
        if func is None:
            return super().__new__(cls)
        return cls()(func)                                # bare @no_grad, as torch allows

    def __init__(self, func: Any = None) -> None:
        self._tokens: list[contextvars.Token[bool]] = []  # one per entry not yet left (nested entries)

    def __enter__(self) -> None:
        self._tokens.append(_GRAD_ENABLED.set(False))

    def __exit__(self, *exc: Any) -> None:
        _GRAD_ENABLED.reset(self._tokens.pop())

    def __call__(self, func: _F) -> _F:
        if not callable(func):
            raise TypeError(f"no_grad decorates a function, got {type(func).__name__}")
        if inspect.isgeneratorfunction(func):
            return _without_grad_at_each_resumption(func)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with no_grad():
                return func(*args, **kwargs)
        return wrapper  # type: ignore[return-value]


def _without_grad_at_each_resumption(gen_func: _F) -> _F:
    """A generator function whose body runs under no_grad each time it runs (torch's ``_wrap_generator``):
    the caller's code between two resumptions keeps its own grad mode."""
    @functools.wraps(gen_func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        gen = gen_func(*args, **kwargs)
        try:
            with no_grad():
                response = gen.send(None)
            while True:
                try:
                    request = yield response
                except GeneratorExit:
                    with no_grad():
                        gen.close()
                    raise
                except BaseException as exc:
                    with no_grad():
                        response = gen.throw(exc)
                else:
                    with no_grad():
                        response = gen.send(request)
        except StopIteration as stop:
            return stop.value
    return wrapper  # type: ignore[return-value]


def no_backward_error() -> RuntimeError:
    """What ``backward`` raises after a forward run under :func:`no_grad`."""
    return RuntimeError("backward after a forward run under rnnfast.no_grad(): that forward kept nothing for "
                        "backward; run the forward outside no_grad to train")


def resolve_dtype(dtype: Any) -> np.dtype:
    """Return ``np.float32`` or ``np.float64`` for a dtype spec, or raise ``ValueError``."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from exc
    if dt not in _FLOAT_DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


class Parameter:
    """A trainable array: ``.data`` (the value) and ``.grad`` (same shape, starts at zeros)."""

    __slots__ = ("data", "grad")

    def __init__(self, data: Any, dtype: Any = None):
        arr = np.array(data, dtype=dtype, order="C", copy=True)
        if arr.dtype.kind != "f":
            raise TypeError(f"Parameter data must be a float array, got dtype {arr.dtype}")
        self.data = arr
        self.grad = np.zeros_like(arr)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def zero_grad(self) -> None:
        self.grad[...] = 0

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


def one_thread_at_a_time(method: _F) -> _F:
    """Make ``method`` raise ``RuntimeError`` while another thread is inside a method of the same object.

    Layers keep scratch buffers and the forward cache on the object, so two threads in one layer at once
    would overwrite each other's memory; the kernels release the GIL, so this can really happen. The lock
    is taken without blocking: concurrent use is a bug in the caller, reported instead of serialised.
    """
    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(f"{type(self).__name__}.{method.__name__} was called while another thread is "
                               f"using this layer; a layer object is not thread-safe: give each thread its "
                               f"own layer (copy.deepcopy or load_state_dict)")
        try:
            return method(self, *args, **kwargs)
        finally:
            self._busy.release()
    return guarded  # type: ignore[return-value]


def from_torch(value: Any) -> Any:
    """A torch tensor's values as a NumPy array (detached, on the CPU); anything else as it is."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    return value


_UNCHECKED = object()                  # in Module._verified: a .grad that the last check did not look at


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(..., strict=False)`` skipped, as torch's ``_IncompatibleKeys``."""

    missing_keys: list
    unexpected_keys: list


class Module:
    """Base class: parameter registry, train/eval mode and state dicts, on torch.nn.Module's names."""

    def __init__(self) -> None:
        self._parameters: dict[str, Parameter] = {}
        self.training = True
        self._busy = threading.Lock()   # see one_thread_at_a_time
        self._verified: list = []       # what _check_parameter_arrays last accepted

    def _register(self, name: str, value: Any, dtype: np.dtype) -> Parameter:
        param = Parameter(value, dtype=dtype)
        self._parameters[name] = param
        return param

    def __setattr__(self, name: str, value: Any) -> None:
        # ``module.weight = Parameter(...)`` replaces the registered parameter, as in torch (the optimizer,
        # state_dict and the kernels then see the new one; the layers check its shape and dtype at their next
        # call); anything else in a parameter's place is refused. The attribute is set too, so that reading
        # it is a plain lookup (__getattr__'s fallback costs a failed lookup first); this is the one place
        # that changes either, so they stay the same object.
        params = self.__dict__.get("_parameters")
        if params is not None and name in params:
            if not isinstance(value, Parameter):
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r}: an rnnfast.Parameter "
                                f"is expected (to change its values: {name}.data[...] = values, or "
                                f"load_state_dict)")
            replaced = params[name] is not value
            params[name] = value
            super().__setattr__(name, value)
            if replaced:
                self._verified = []                                 # check the new one at the next call
                self._parameters_replaced()
            return
        super().__setattr__(name, value)

    def _parameters_replaced(self) -> None:
        """Called when a registered parameter was replaced by another: modules that keep references to their
        Parameters (the kernels' weight tuples) rebuild them here."""

    # Attributes that are not state: never pickled or deep-copied, rebuilt fresh on unpickling (the lock,
    # and in layers the kernel workspaces and the forward cache).
    _transient: dict[str, Callable[[], Any]] = {"_busy": threading.Lock, "_verified": list}

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in self._transient}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        for name, make in self._transient.items():
            self.__dict__[name] = make()

    def __getattr__(self, name: str) -> Any:
        # Parameters read as attributes, as in torch: ``lstm.weight_hh_l0``.
        params = self.__dict__.get("_parameters")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ---- parameters -------------------------------------------------------------------------
    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """(name, Parameter) pairs in registration order, with PyTorch's names (``weight_ih_l0``, ...); a
        Parameter shared by two places (tied weights) once, under its first name, as torch's."""
        seen: set = set()
        for name, p in self._parameters.items():
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _check_parameter_arrays(self, shapes: Mapping[str, tuple], dtype: np.dtype, contiguous: bool = True,
                                grads: bool = False, identities: bool = False) -> None:
        """ValueError unless every parameter's ``.data`` (and ``.grad`` when ``grads``: backward writes it) is a
        ``dtype`` array of its shape in ``shapes``, C-contiguous when ``contiguous``: kernels that read raw memory
        sized from those shapes check this first.

        Fast when nothing changed since the last check that passed: the arrays it accepted are kept (so their
        ids stay unique) and compared by identity, shape, strides and dtype (``.grad`` only when ``grads``, for
        backward), so that one replaced (``p.data = ...``) or reshaped or retyped in place (``p.data.shape =
        ...``) is checked again. ``identities``: compare the identities alone, for a kernel that checks the
        arrays' layouts itself (the streaming step's).
        """
        for p, data, grad, shape, strides, dtype in self._verified:
            if p.data is not data:
                break
            if identities:
                continue
            if data.shape != shape or data.strides != strides or data.dtype is not dtype:
                break
            if grads and (p.grad is not grad or grad.shape != shape or grad.strides != strides
                          or grad.dtype is not dtype):
                break                   # (a .grad not checked yet is _UNCHECKED, never p.grad)
        else:
            if self._verified:
                return
        layout = "C-contiguous " if contiguous else ""
        for name, p in self._parameters.items():
            shape = shapes[name]
            for what, a in (("data", p.data), ("grad", p.grad))[:2 if grads else 1]:
                if not (type(a) is np.ndarray and a.shape == shape and a.dtype == dtype
                        and (a.flags.c_contiguous or not contiguous)):
                    got = f"{type(a).__name__} {getattr(a, 'dtype', '')} {getattr(a, 'shape', '')}"
                    raise ValueError(f"{name}.{what} must be a {layout}{dtype} array of shape {shape}, got "
                                     f"{got}; assign into it ({name}.{what}[...] = value) or use load_state_dict")
        # .data and .grad of one shape, strides and dtype when both are checked: a .grad laid out otherwise
        # (a user's Fortran-order array, where allowed) is checked again at each backward
        self._verified = [(p, p.data, p.grad if grads else _UNCHECKED, p.data.shape, p.data.strides, p.data.dtype)
                          for p in self._parameters.values()]

    def parameters(self) -> list[Parameter]:
        """The Parameters in registration order (what an optimizer takes), a shared one once."""
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        """Set every parameter's ``.grad`` to zero (backward adds into it)."""
        zero_arrays([p.grad for p in self.parameters()])

    def train(self, mode: bool = True) -> "Module":
        """Training mode (dropout on) when ``mode``, else evaluation mode; returns the module."""
        self.training = bool(mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode (dropout off); returns the module."""
        return self.train(False)

    # ---- state dicts ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter's data, keyed by its PyTorch name."""
        return {name: p.data.copy() for name, p in self._parameters.items()}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values in from ``state_dict`` (numpy arrays, torch tensors, Parameters, nested lists).

        Every entry is checked before any parameter is changed: missing names (when ``strict``),
        unknown names (when ``strict``) and wrong shapes raise ``KeyError``/``ValueError`` naming them.
        Returns ``(missing_keys, unexpected_keys)``, as torch does (both empty when ``strict``).
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping of name -> array, got {type(state_dict).__name__}")
        own = self._parameters
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        converted = {}
        for name, value in state_dict.items():
            if name not in own:
                continue
            value = value.data if isinstance(value, Parameter) else from_torch(value)   # (named_parameters())
            try:
                arr = np.asarray(value)
                if arr.dtype.kind == "c":
                    raise TypeError(f"complex dtype {arr.dtype}")
                if arr.shape == own[name].shape:  # only then convert, which could copy something huge
                    arr = arr.astype(own[name].dtype, copy=False)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"load_state_dict: entry {name!r} is not numeric: {exc}") from exc
            if arr.shape != own[name].shape:
                raise ValueError(
                    f"load_state_dict: entry {name!r} has shape {arr.shape}, expected {own[name].shape}")
            converted[name] = arr
        for name, arr in converted.items():
            own[name].data[...] = arr
        return IncompatibleKeys(missing, unexpected)

    def extra_repr(self) -> str:
        """The constructor arguments that ``repr`` shows."""
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class Container(Module):
    """A module made of modules: its parameters are its children's own Parameter objects under
    ``<child>.<name>``, read afresh at each use (a child's parameter may have been replaced since), so that
    optimizers, ``state_dict`` and ``zero_grad`` act on the children's."""

    def _children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) of each child, in order."""
        raise NotImplementedError

    @property                                                   # type: ignore[override]
    def _parameters(self) -> dict:
        return {f"{name}.{p_name}": p for name, m in self._children() for p_name, p in m.named_parameters()}

    @_parameters.setter
    def _parameters(self, value: dict) -> None:
        """Module.__init__'s empty registry: a container's parameters are its children's."""
