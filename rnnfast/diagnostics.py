r"""Diagnostics for recurrent layers: how far gradients reach back in time, and a finite-difference check.

Gradient norms through time
---------------------------
For a loss on the last step only, ``L = Σ_b,j out[T-1]_bj · v_bj`` (``v`` a fixed (B, H) direction),
:func:`gradient_norms_through_time` returns ``g_t = ‖∂L/∂h_t‖`` (Frobenius norm over batch and hidden of
the top layer's state h_t, holding the other layers' states and the cell state fixed) for t = 0 … T-1.
``g_{T-1} = ‖v‖`` (1 by default). For a one-layer tanh Elman cell, BPTT gives

    ∂L/∂h_t = W_hhᵀ diag(1 − h_{t+1}²) ∂L/∂h_{t+1}       so   g_t ≲ (‖W_hh‖·max|tanh'|)^{T-1-t} ‖v‖

which vanishes geometrically when ‖W_hh‖ < 1, while an LSTM's cell path ``∂c_t/∂c_{t-1} = diag(f_t)``
carries gradient for ~1/(1 − f) steps (Hochreiter & Schmidhuber, 1997; Pascanu et al., 2013).

The kernels do not expose BPTT's intermediate ∂L/∂h_t, so it is obtained exactly from the layer's own
``backward``: ∂L/∂h_t is the ``dh0`` that BPTT over ``x[t+1:]``, started from the full state (all layers,
h and c) at step t, returns for ``dout`` = v on its last step and 0 elsewhere. That costs one forward
and backward over T-1-t steps per t, O(T²) steps in all: fine for T up to a few thousand (``max_steps``).

Finite-difference gradient check
--------------------------------
:func:`gradcheck` compares a layer's ``backward`` with central differences

    ∂L/∂θ_i ≈ (L(θ + ε e_i) − L(θ − ε e_i)) / 2ε,        error O(ε²) + O(1e-16/ε)

of ``L = Σ out·dout + Σ h_n·dh_n (+ Σ c_n·dc_n)`` for random ``dout``, ``dh_n``, ``dc_n``, for every
parameter, the input x and the initial state, entry by entry, in float64. An entry passes when
``|analytic − numeric| <= atol + rtol·|numeric|``. It also checks any function returning
``(value, grad)``, such as ``rnnfast.losses``.

Both functions work on a float64 twin of the layer (same class, constructor arguments and weights,
``eval()`` mode so dropout is off): the layer's own ``.grad``, pending backward and dtype are untouched.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, TypeGuard, TypeVar, Union

import numpy as np

from ._module import Module
from ._validation import check_array, check_int, check_nonnegative, check_positive
from .layers import GRU, LSTM, Elman, Linear

__all__ = ["gradient_norms_through_time", "gradcheck", "GradcheckError"]

_M = TypeVar("_M", bound=Module)


# ---------------------------------------------------------------------------------------------- twins
def _float64_twin(layer: _M, **overrides: Any) -> _M:
    """A new layer of ``type(layer)`` with the same constructor arguments (dtype float64 and
    ``overrides`` aside) and weights, in ``eval()`` mode."""
    kwargs: Dict[str, Any] = {}
    for name, par in inspect.signature(type(layer).__init__).parameters.items():
        if name == "self" or par.kind in (par.VAR_POSITIONAL, par.VAR_KEYWORD):
            continue
        if name in overrides:
            kwargs[name] = overrides[name]
        elif name == "dtype":
            kwargs[name] = "float64"
        elif name in layer.__dict__:
            value = layer.__dict__[name]
            if name == "bias" and not isinstance(value, bool):      # Linear keeps its bias Parameter
                value = value is not None
            kwargs[name] = value
        elif par.default is par.empty:
            raise TypeError(f"cannot build a float64 copy of {type(layer).__name__}: its constructor argument "
                            f"{name!r} is not stored on the layer; pass a float64 layer built by hand")
    twin = type(layer)(**kwargs)
    twin.load_state_dict(layer.state_dict())
    twin.eval()                                                     # returns twin itself, typed as Module
    return twin


def _is_recurrent(obj: Any) -> TypeGuard[Union[Elman, LSTM, GRU]]:
    return isinstance(obj, (Elman, LSTM, GRU))


# ---------------------------------------------------------------------------- gradient norms over time
def gradient_norms_through_time(layer: Module, x: Any, hx: Any = None,
                                direction: Union[str, np.ndarray] = "random", seed: int = 0,
                                max_steps: int = 2000) -> np.ndarray:
    """``g_t = ‖∂L/∂h_t‖`` for t = 0 … T-1, L = Σ out[T-1]·v (see the module docstring).

    Parameters
    ----------
    layer: an ``rnnfast.Elman``, ``rnnfast.LSTM`` or ``rnnfast.GRU`` (any num_layers, dtype, layout); left
        unchanged.
    x: (T, B, I) input ((B, T, I) for a ``batch_first`` layer), T >= 1.
    hx: the initial state, as the layer takes it (None: zeros).
    direction: v, the loss direction on the last output: ``"random"`` (a standard normal (B, H) draw
        from ``seed``, scaled to ‖v‖ = 1), ``"ones"`` (all equal, ‖v‖ = 1), or a (B, H) array used as given.
    max_steps: refuse T > max_steps (the cost grows as T²/2 recurrent steps).

    Returns a float64 array (T,); ``g[T-1] = ‖v‖``. Computed in float64, with dropout off.
    """
    if not _is_recurrent(layer):
        raise TypeError(f"layer must be an rnnfast.Elman, LSTM or GRU, got {type(layer).__name__}")
    if layer.bidirectional:         # (its reverse direction's h_t depend on the steps after t)
        raise ValueError("layer must be unidirectional: g_t follows the gradient back through the forward "
                         "recurrence, which a bidirectional layer's reverse direction does not have")
    max_steps = check_int("max_steps", max_steps, minimum=1)
    xs = check_array("x", x, ndim=3, dtype_kind="fiub").astype(np.float64)
    if layer.batch_first:
        xs = xs.transpose(1, 0, 2)
    xs = np.ascontiguousarray(xs)                                   # (T, B, I)
    T, B = xs.shape[:2]
    if T < 1:
        raise ValueError("x must have at least one timestep")
    if T > max_steps:
        raise ValueError(f"x has T = {T} steps > max_steps = {max_steps}; the cost is O(T²) recurrent steps, "
                         f"raise max_steps to allow it")
    H, lstm = layer.hidden_size, isinstance(layer, LSTM)
    if isinstance(direction, str):
        if direction == "random":
            v = np.random.default_rng(seed).standard_normal((B, H))
        elif direction == "ones":
            v = np.ones((B, H))
        else:
            raise ValueError(f"direction must be 'random', 'ones' or a (B, H) array, got {direction!r}")
        v /= np.linalg.norm(v)
    else:
        v = check_array("direction", direction, dtype_kind="fiub").astype(np.float64)
        if v.shape != (B, H):
            raise ValueError(f"direction must have shape (B, hidden_size) = {(B, H)}, got {v.shape}")
    twin = _float64_twin(layer, batch_first=False)
    states = []                                                     # states[t]: full state after step t
    state = hx
    for t in range(T - 1):
        _, state = twin.step(xs[t], state)
        states.append(state)
    norms = np.empty(T)
    norms[T - 1] = np.linalg.norm(v)
    for t in range(T - 1):
        n = T - 1 - t                                               # steps t+1 … T-1
        twin(xs[t + 1:], states[t])
        dout = np.zeros((n, B, H))
        dout[-1] = v                                                # L = Σ out[T-1]·v
        _, dstate = twin.backward(dout)
        dh0 = dstate[0] if lstm else dstate                         # (L, B, H) ∂L/∂(state at t)
        norms[t] = np.linalg.norm(dh0[-1])                          # top layer
    return norms


# ------------------------------------------------------------------------------------------ gradcheck
class GradcheckError(ValueError):
    """Raised by :func:`gradcheck` when an analytic gradient disagrees with finite differences.

    ``report`` maps every checked name to a dict: ``max_abs_error``, ``max_rel_error`` (relative to
    |numeric|), ``worst_index``, ``analytic`` and ``numeric`` at that index, ``entries`` checked, ``ok``.
    """

    def __init__(self, message: str, report: Dict[str, Dict[str, Any]]):
        super().__init__(message)
        self.report = report


def _numerical_gradient(loss: Callable[[], float], arr: np.ndarray, eps: float,
                        index: np.ndarray) -> np.ndarray:
    """Central differences of ``loss()`` at the flat ``index`` entries of ``arr`` (perturbed in place, restored)."""
    flat = arr.reshape(-1)
    assert arr.size == 0 or np.shares_memory(flat, arr)           # a view: the perturbations reach arr
    out = np.empty(index.size)
    for n, j in enumerate(index):
        orig = flat[j]
        flat[j] = orig + eps
        plus = loss()
        flat[j] = orig - eps
        minus = loss()
        flat[j] = orig
        out[n] = (plus - minus) / (2 * eps)
    return out


def _entries(size: int, max_entries: Optional[int], rng: np.random.Generator) -> np.ndarray:
    if max_entries is None or size <= max_entries:
        return np.arange(size)
    return np.sort(rng.choice(size, max_entries, replace=False))


def _compare(analytic: np.ndarray, numeric: np.ndarray, index: np.ndarray, atol: float,
             rtol: float) -> Dict[str, Any]:
    a = np.asarray(analytic, dtype=np.float64).reshape(-1)[index]
    err = np.abs(a - numeric)
    ratio = err / (atol + rtol * np.abs(numeric))                   # > 1 fails
    w = int(np.argmax(ratio)) if ratio.size else 0
    rel = err / np.maximum(np.abs(numeric), np.finfo(np.float64).tiny)
    return dict(max_abs_error=float(err.max(initial=0.0)), max_rel_error=float(rel.max(initial=0.0)),
                worst_index=int(index[w]) if index.size else None,
                analytic=float(a[w]) if a.size else None, numeric=float(numeric[w]) if a.size else None,
                entries=int(index.size), ok=bool(np.all(ratio <= 1.0)) and bool(np.all(np.isfinite(a))),
                _ratio=float(ratio.max(initial=0.0)) if np.all(np.isfinite(a)) else np.inf)


def _split_layer_inputs(layer: Module, inputs: Any) -> Tuple[Any, Any]:
    if isinstance(inputs, list) and len(inputs) == 2 and _is_recurrent(layer) and np.ndim(inputs[0]) == 3:
        raise TypeError("inputs must be x or a tuple (x, hx): a list [x, hx] reads as one array; pass (x, hx)")
    if isinstance(inputs, tuple):
        if len(inputs) == 1:
            return inputs[0], None
        if len(inputs) == 2 and _is_recurrent(layer):
            return inputs
        raise ValueError(f"inputs must be x or a tuple (x,) / (x, hx), got a tuple of {len(inputs)}")
    return inputs, None


def _layer_problem(layer: Union[Elman, LSTM, GRU, Linear], inputs: Any, lengths: Any, rng: np.random.Generator):
    """(arrays to perturb by name, analytic gradients by name, loss closure) for a layer."""
    twin = _float64_twin(layer)
    x_in, hx_in = _split_layer_inputs(layer, inputs)
    x = np.array(check_array("x", x_in, dtype_kind="fiub"), dtype=np.float64)    # a private copy
    if x.size == 0:
        raise ValueError(f"x has no entries (shape {x.shape}): there is no gradient to check")
    params = {name: p.data for name, p in twin.named_parameters()}
    if isinstance(twin, Linear):                                    # as isinstance(layer, Linear): same type
        dy = rng.uniform(-1, 1, x.shape[:-1] + (twin.out_features,))

        def linear_loss() -> float:
            return float(np.sum(twin(x) * dy))

        twin.zero_grad()
        twin(x)
        dx = twin.backward(dy)
        analytic = {name: p.grad for name, p in twin.named_parameters()}
        analytic["x"] = dx
        return {**params, "x": x}, analytic, linear_loss
    lstm = isinstance(layer, LSTM)
    if x.ndim != 3:
        raise ValueError(f"x must be a 3-D array (T, B, I) ((B, T, I) with batch_first), got shape {x.shape}")
    L = twin.num_layers * (2 if twin.bidirectional else 1)         # h_n's first axis: layers × directions
    B, H = x.shape[0 if twin.batch_first else 1], twin.hidden_size
    if lstm and hx_in is not None and not (isinstance(hx_in, (tuple, list)) and len(hx_in) == 2):
        raise TypeError(f"hx of an LSTM must be a tuple (h0, c0), got {type(hx_in).__name__}")
    h_in, c_in = (hx_in if hx_in is not None else (None, None)) if lstm else (hx_in, None)

    def initial(name: str, value: Any) -> np.ndarray:              # a private float64 copy, zeros if None
        if value is None:
            return np.zeros((L, B, H))
        return np.array(check_array(name, value, dtype_kind="fiub"), dtype=np.float64)

    h0 = initial("h0", h_in)
    c0 = initial("c0", c_in) if lstm else None
    kwargs = {} if lengths is None else {"lengths": lengths}
    out0, _ = twin(x, (h0, c0) if lstm else h0, **kwargs)
    dout = rng.uniform(-1, 1, out0.shape)
    dh_n = rng.uniform(-1, 1, (L, B, H))
    dc_n = rng.uniform(-1, 1, (L, B, H)) if lstm else None

    def loss() -> float:
        out, state = twin(x, (h0, c0) if lstm else h0, **kwargs)
        if lstm:
            return float(np.sum(out * dout) + np.sum(state[0] * dh_n) + np.sum(state[1] * dc_n))
        return float(np.sum(out * dout) + np.sum(state * dh_n))

    twin.zero_grad()
    loss()
    dx, dstate = twin.backward(dout, (dh_n, dc_n) if lstm else dh_n)
    analytic = {name: p.grad for name, p in twin.named_parameters()}
    analytic["x"] = dx
    arrays = {**params, "x": x, "h0": h0}
    analytic["h0"] = dstate[0] if lstm else dstate
    if lstm:
        assert c0 is not None                                       # set above for an LSTM
        arrays["c0"], analytic["c0"] = c0, dstate[1]
    return arrays, analytic, loss


def _function_problem(fn: Callable, inputs: Any, wrt: Sequence[int]):
    args = list(inputs) if isinstance(inputs, (tuple, list)) else [inputs]
    for i in wrt:
        if not 0 <= i < len(args):
            raise ValueError(f"wrt index {i} is out of range for {len(args)} inputs")
        args[i] = np.array(check_array(f"inputs[{i}]", args[i], dtype_kind="fiub"), dtype=np.float64)

    def loss() -> float:
        return float(np.sum(fn(*args)[0]))                          # reduction="none": L = Σ values

    result = fn(*args)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise TypeError(f"fn must return (value, grad), got {type(result).__name__}")
    grads = result[1] if len(wrt) > 1 else (result[1],)
    if len(grads) != len(wrt):
        raise ValueError(f"fn returned {len(grads)} gradients for wrt = {tuple(wrt)}")
    arrays, analytic = {}, {}
    for i, g in zip(wrt, grads):
        g = np.asarray(g)
        if g.shape != args[i].shape:
            raise ValueError(f"fn's gradient for inputs[{i}] has shape {g.shape}, expected {args[i].shape}")
        arrays[f"inputs[{i}]"], analytic[f"inputs[{i}]"] = args[i], np.array(g, dtype=np.float64)
    return arrays, analytic, loss


def gradcheck(layer_or_fn: Union[Module, Callable], inputs: Any, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, *, lengths: Any = None, wrt: Sequence[int] = (0,), seed: int = 0,
              max_entries: Optional[int] = None, raise_exception: bool = True) -> bool:
    """Check analytic gradients against central finite differences in float64.

    ``layer_or_fn`` is one of
      * an ``rnnfast.Elman`` / ``LSTM`` / ``GRU`` (``inputs`` = x, or ``(x, hx)``; ``lengths`` optional):
        checks every parameter, ``x``, ``h0`` (and ``c0``) for L = Σ out·dout + Σ h_n·dh_n (+ Σ c_n·dc_n);
      * an ``rnnfast.Linear`` (``inputs`` = x): weight, bias and x for L = Σ y·dy;
      * a function ``fn(*inputs) -> (value, grad)`` such as ``rnnfast.losses.mse_loss``: checks ``grad``
        against L = Σ value with respect to ``inputs[i]`` for i in ``wrt`` (with several, ``grad`` is a
        tuple in ``wrt`` order).
    Layers are checked on a float64 twin in eval mode (the given layer is not touched, a float32 layer
    included); dout, dh_n, dc_n are U(-1, 1) draws from ``seed``. ``max_entries`` checks only that many
    random entries per array (None: all; each entry costs two forwards). Relu's kink and other
    non-differentiable points make finite differences meaningless: keep pre-activations away from them.

    Returns True when every entry satisfies ``|analytic − numeric| <= atol + rtol·|numeric|``. Otherwise
    raises :class:`GradcheckError` naming the worst array, its worst entry and errors, with the full
    per-array ``report``; or returns False when ``raise_exception=False``.
    """
    eps = check_positive("eps", eps)
    atol = check_nonnegative("atol", atol)
    rtol = check_nonnegative("rtol", rtol)
    if max_entries is not None:
        max_entries = check_int("max_entries", max_entries, minimum=1)
    rng = np.random.default_rng(seed)
    if _is_recurrent(layer_or_fn) or isinstance(layer_or_fn, Linear):
        if lengths is not None and not _is_recurrent(layer_or_fn):
            raise ValueError("lengths is only for recurrent layers")
        arrays, analytic, loss = _layer_problem(layer_or_fn, inputs, lengths, rng)
    elif isinstance(layer_or_fn, Module):
        raise TypeError(f"gradcheck supports rnnfast.Elman, LSTM, GRU and Linear modules, got "
                        f"{type(layer_or_fn).__name__}; wrap it in a function returning (value, grad)")
    elif callable(layer_or_fn):
        if lengths is not None:
            raise ValueError("lengths is only for recurrent layers")
        arrays, analytic, loss = _function_problem(layer_or_fn, inputs, tuple(wrt))
    else:
        raise TypeError(f"layer_or_fn must be an rnnfast layer or a callable, got {type(layer_or_fn).__name__}")
    report: Dict[str, Dict[str, Any]] = {}
    for name, arr in arrays.items():
        index = _entries(arr.size, max_entries, rng)
        numeric = _numerical_gradient(loss, arr, eps, index)
        report[name] = _compare(analytic[name], numeric, index, atol, rtol)
    worst = max(report, key=lambda n: report[n]["_ratio"]) if report else None
    for r in report.values():
        r.pop("_ratio")
    failed = [n for n, r in report.items() if not r["ok"]]
    if not failed:
        return True
    if not raise_exception:
        return False
    assert worst is not None                                        # report is non-empty: something failed
    r = report[worst]
    shape = np.shape(arrays[worst])
    where = np.unravel_index(r["worst_index"], shape) if shape else ()
    raise GradcheckError(
        f"gradient check failed for {', '.join(failed)}; worst: {worst}{list(map(int, where))}: analytic "
        f"{r['analytic']:.8g}, numeric {r['numeric']:.8g} (max abs error {r['max_abs_error']:.3g}, "
        f"max rel error {r['max_rel_error']:.3g}; tolerance atol={atol:g} + rtol={rtol:g}·|numeric|, "
        f"eps={eps:g})", report)
