r"""Optimizers and learning-rate schedules with PyTorch's update rules, defaults and state dicts.

Each optimizer updates ``Parameter.data`` in place from ``Parameter.grad`` (which it never modifies),
with in-place NumPy operations on two scratch arrays per parameter. Notation: θ parameter, g its
gradient, γ learning rate, λ weight decay, t the step count (from 1).

Common to all: ``g ← −g`` if ``maximize``; then, except in AdamW, the L2 term ``g ← g + λθ``.
Hyper-parameters are checked as given: γ, λ, ε and μ must be finite and >= 0 (``ValueError`` otherwise;
torch accepts an infinite one, which turns every weight into inf or NaN at the first step).

SGD (momentum μ, dampening τ)::

    b ← g                    at the first step (t = 1)
    b ← μ b + (1 − τ) g      afterwards                        (only when μ ≠ 0)
    g ← g + μ b   if nesterov, else   g ← b
    θ ← θ − γ g

Adam (β₁, β₂, ε)::

    m ← β₁ m + (1 − β₁) g            v ← β₂ v + (1 − β₂) g²          (m, v start at 0)
    v̂ ← max(v̂, v) if amsgrad, else v̂ = v
    θ ← θ − γ/(1 − β₁ᵗ) · m / (√v̂ / √(1 − β₂ᵗ) + ε)

Adam's and AdamW's whole rule (sign, L2 term or decoupled decay, moments, AMSGrad, update) runs as one pass
over each parameter's elements (csrc/_optim.pxi, split over the threads for long parameters), equal to the
NumPy operations it replaces to rounding; those remain for arrays that are not C-contiguous.

AdamW: Adam with decoupled weight decay, ``θ ← θ (1 − γλ)`` before the Adam update, and no L2 term.

RMSprop (α, ε, momentum μ)::

    v ← α v + (1 − α) g²
    ḡ ← α ḡ + (1 − α) g,  d = √(v − ḡ²) + ε   if centered,   else d = √v + ε
    b ← μ b + g / d,  θ ← θ − γ b              if μ > 0,      else θ ← θ − γ g / d

Every optimizer keeps torch's shape. ``params`` is an iterable of parameters, or of parameter groups: dicts
with a ``"params"`` entry and any hyper-parameters of their own, the rest taken from the constructor's
arguments (``optimizer.defaults``), as in ``Adam([{"params": rnn.parameters()}, {"params": head.parameters(),
"lr": 1e-2}], lr=1e-3)``; ``add_param_group`` adds one later. Each of ``param_groups`` is a dict of its
parameters and hyper-parameters (read at every ``step()``, so schedulers and users may change them; ``opt.lr``
is a shortcut for ``param_groups[0]["lr"]``); a group's hyper-parameters are checked as the constructor's
are, and a parameter may be in one group only. ``state[i]`` holds the buffers of the i-th parameter counted
through the groups in order, and ``state_dict()`` / ``load_state_dict()`` round-trip them exactly: N steps
equal N/2 steps, a save, a load into a fresh optimizer and N/2 more steps, bit for bit.
Unlike torch's ``zero_grad`` (which sets grads to ``None``), ``zero_grad`` here fills the ``.grad`` arrays with zeros.

The learning-rate schedules (``StepLR``, ``ReduceLROnPlateau``, ``CosineAnnealingLR``) live in
``rnnfast.lr_scheduler``, as torch's in ``torch.optim.lr_scheduler``; ``rnnfast.optim`` names them too.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from . import _kernels
from ._module import Parameter, from_torch
from ._threads import get_num_threads, zero_arrays
from ._validation import check_int, check_parameters, check_real

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "LRScheduler", "StepLR", "ReduceLROnPlateau",
           "CosineAnnealingLR"]


def _check_rate(name: str, value: Any) -> float:
    """A finite real >= 0: an infinite learning rate, decay or momentum turns every weight into inf/NaN."""
    return check_real(name, value, 0.0, math.inf, high_inclusive=False)


def _unordered(name: str, params: Any) -> None:
    """TypeError for a set: its order (by object id) would pair state[i] with another parameter after a load."""
    if isinstance(params, (set, frozenset)):
        raise TypeError(f"{name} must be an ordered collection (a list or tuple), not a set: the state of "
                        f"parameter i is saved and loaded by its place in that order")


def _param_groups(params: Any) -> list[Mapping[str, Any]]:
    """``params`` as torch reads it: parameters (one group), or parameter groups (dicts with "params")."""
    _unordered("params", params)
    if isinstance(params, Mapping):
        raise TypeError("params must be an iterable of rnnfast.Parameter or of parameter groups (dicts), "
                        "got a single dict: put it in a list")
    if isinstance(params, Iterable) and not isinstance(params, (Parameter, str, np.ndarray)):
        params = list(params)
        if params and isinstance(params[0], Mapping):
            for i, group in enumerate(params):
                if not isinstance(group, Mapping):
                    raise TypeError(f"params[{i}] must be a parameter group (a dict) like params[0], "
                                    f"got {type(group).__name__}")
            return params
    items = check_parameters("params", params)
    if not items:
        raise ValueError("optimizer got an empty parameter list")
    return [{"params": items}]


def _grad(p: Parameter, weight_decay: float, maximize: bool, out: np.ndarray) -> np.ndarray:
    """g = ±∇ + λθ as torch orders it (negate, then add the L2 term); ``p.grad`` itself is left alone."""
    if weight_decay == 0:
        return np.negative(p.grad, out=out) if maximize else p.grad
    np.multiply(p.data, weight_decay, out=out)
    if maximize:
        out -= p.grad
    else:
        out += p.grad
    return out


def _flag(name: str, value: Any) -> bool:
    """A switch given as a bool (or 0/1): "False" as a string would be true."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}")


def _buffer(state: dict[str, Any], key: str, like: np.ndarray) -> np.ndarray:
    """``state[key]``, created as zeros shaped like ``like`` on first use."""
    buf = state.get(key)
    if buf is None:
        buf = state[key] = np.zeros_like(like)
    return buf


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``step``/``zero_grad``/state dicts.

    Subclasses implement ``_checked(hyper)``, which checks a group's hyper-parameters and returns them as
    stored (keys it does not know pass through, as torch keeps them), and ``_update(p, state, group, s0, s1)``
    for one parameter, with two scratch arrays of its shape and dtype; they may implement
    ``_update_in_one_pass(p, state, group)``, which returns True when it has done the update by a kernel that
    needs no scratch (none is then allocated).
    """

    def __init__(self, params: Iterable[Parameter] | Iterable[Mapping[str, Any]], defaults: dict[str, Any]) -> None:
        self.defaults: dict[str, Any] = self._checked(dict(defaults))
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}
        self._scratch: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for group in _param_groups(params):
            self.add_param_group(group)

    @classmethod
    def _checked(cls, hyper: dict[str, Any]) -> dict[str, Any]:
        return hyper

    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group: a dict with ``"params"`` (a Parameter or an iterable of them) and any hyper-parameters
        of its own; the others are ``defaults``'. Its parameters' state indices follow the existing ones."""
        if not isinstance(param_group, Mapping):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("param_group must have a 'params' entry")
        where = f"parameter group {len(self.param_groups)}"
        _unordered(f"{where}'s params", param_group["params"])
        params = check_parameters(f"{where}'s params", param_group["params"], allow_single=True)
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{where}'s params contains the same Parameter more than once")
        if {id(p) for p in params} & {id(p) for _, p, _ in self._indexed_params()}:
            raise ValueError(f"some parameters appear in more than one parameter group: {where} repeats some "
                             f"of an earlier group's")
        try:
            hyper = self._checked({**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}})
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{where}: {exc}") from None
        self.param_groups.append({"params": params, **hyper})

    def _indexed_params(self) -> Iterable[tuple[int, Parameter, dict[str, Any]]]:
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                yield i, p, group
                i += 1

    @property
    def lr(self) -> float:
        """The learning rate, ``param_groups[0]["lr"]``."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self.param_groups[0]["lr"] = _check_rate("lr", value)

    def zero_grad(self) -> None:
        """Fill every parameter's ``.grad`` with zeros (a ``.grad`` set to None stays None)."""
        zero_arrays([p.grad for _, p, _ in self._indexed_params() if p.grad is not None])

    def _updated_params(self) -> list[tuple[int, Parameter, dict[str, Any]]]:
        """The parameters ``step`` updates: those with a ``.grad`` (torch skips a None one), each checked
        before any is updated, so that a bad one leaves every parameter and its state as it was."""
        updated = []
        for i, p, group in self._indexed_params():
            g = p.grad
            if g is None:
                continue
            if not isinstance(g, np.ndarray) or g.shape != p.data.shape or g.dtype.kind != "f":
                what = (f"{type(g).__name__}" if not isinstance(g, np.ndarray)
                        else f"an array of shape {g.shape} and dtype {g.dtype}")
                raise ValueError(f"the .grad of parameter {i} must be None or a floating-point array of its "
                                 f"shape {p.data.shape}, got {what}")
            updated.append((i, p, group))
        return updated

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a ``.grad`` once; if given, ``closure()`` is called first and its
        result returned."""
        loss = closure() if closure is not None else None
        for i, p, group in self._updated_params():
            state = self.state.setdefault(i, {})
            if self._update_in_one_pass(p, state, group):
                continue
            scratch = self._scratch.get(i)
            if scratch is None or scratch[0].shape != p.data.shape or scratch[0].dtype != p.data.dtype:
                scratch = self._scratch[i] = (np.empty_like(p.data), np.empty_like(p.data))
            self._update(p, state, group, *scratch)
        return loss

    def _update_in_one_pass(self, p: Parameter, state: dict[str, Any], group: dict[str, Any]) -> bool:
        return False

    def _state_keys(self, group: dict[str, Any]) -> tuple[set, set]:
        """(the buffers a parameter's state may hold, those it must hold once stepped) with these
        hyper-parameters, as this class's step makes them (and torch's)."""
        raise NotImplementedError

    def _update(self, p: Parameter, state: dict[str, Any], group: dict[str, Any],
                s0: np.ndarray, s1: np.ndarray) -> None:
        raise NotImplementedError

    # ---- state dicts ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Copies of the per-parameter state (keyed by parameter index) and of the hyper-parameters."""
        state = {i: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                 for i, s in self.state.items()}
        groups, start = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": list(range(start, start + n))})
            start += n
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore hyper-parameters and buffers saved by ``state_dict()`` of the same optimizer class.

        Everything is checked (group count, parameter count, hyper-parameter names, buffer shapes) before
        anything changes; mismatches raise ``KeyError``/``ValueError``.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        if set(state_dict) != {"state", "param_groups"}:
            raise KeyError("state_dict must be a mapping with exactly the keys 'state' and 'param_groups'")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"state_dict has {len(saved_groups)} parameter groups, "
                             f"expected {len(self.param_groups)}")
        new_groups = []
        for own, saved in zip(self.param_groups, saved_groups):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"state_dict has a group of {len(saved['params'])} parameters, "
                                 f"expected {len(own['params'])}")
            missing = sorted(set(self.defaults) - set(saved))     # other keys (a user's, a scheduler's) pass
            if missing:                                             # through, as torch's load takes the saved
                raise KeyError(f"state_dict's parameter groups lack {type(self).__name__}'s hyper-parameters "
                               f"{missing}")
            new_groups.append(self._checked({k: v for k, v in saved.items() if k != "params"}))
        # the saved groups' "params" are the ids its state is keyed by, matched to this optimizer's
        # parameters in order, as torch's load matches them
        params, groups, ids = {}, {}, {}
        indexed = iter(self._indexed_params())
        for saved, hyper in zip(saved_groups, new_groups):     # (lengths checked above)
            for saved_id in saved["params"]:
                i, p, _ = next(indexed)
                if saved_id in ids:
                    raise ValueError(f"state_dict's parameter groups list the parameter id {saved_id!r} twice")
                ids[saved_id], params[i], groups[i] = i, p, hyper      # the hyper-parameters being loaded
        new_state: dict[int, dict[str, Any]] = {}
        for saved_id, saved in dict(state_dict["state"]).items():
            if saved_id not in ids:
                raise ValueError(f"state_dict has state for parameter id {saved_id!r}, which its param_groups do "
                                 f"not list ({sorted(ids, key=str)})")
            i = ids[saved_id]
            entry: dict[str, Any] = {}
            for key, value in saved.items():
                value = from_torch(value)                               # (torch's step is a 0-d tensor)
                if key == "step":
                    step = float(np.asarray(value)) if np.ndim(value) == 0 and not isinstance(value, bool) else None
                    if step is None or not step.is_integer() or step < 0:
                        raise ValueError(f"state_dict entry 'step' of parameter {i} must be an integer >= 0, got "
                                         f"{value!r}")
                    entry[key] = int(step)
                elif value is None:
                    entry[key] = None
                else:
                    arr = np.array(value, dtype=params[i].dtype, copy=True)
                    if arr.shape != params[i].shape:
                        raise ValueError(f"state_dict entry {key!r} of parameter {i} has shape {arr.shape}, "
                                         f"expected {params[i].shape}")
                    entry[key] = arr
            if entry:                   # an empty entry: a parameter not stepped yet
                allowed, required = self._state_keys(groups[i])
                wrong = sorted(set(entry) - allowed)
                lacking = sorted(k for k in required if entry.get(k) is None)
                if wrong or lacking:
                    raise KeyError(f"state_dict's state of parameter {i} does not fit {type(self).__name__} with "
                                   f"its hyper-parameters: unexpected {wrong}, missing {lacking}")
            new_state[i] = entry
        for own, values in zip(self.param_groups, new_groups):
            params = own["params"]                      # the saved group's keys and values, as torch's load
            own.clear()
            own.update({"params": params, **values})
        self.state = new_state

    def __repr__(self) -> str:
        groups = [", ".join(f"{k}={v!r}" for k, v in g.items() if k != "params") for g in self.param_groups]
        if len(groups) == 1:
            return f"{type(self).__name__}({groups[0]})"
        return f"{type(self).__name__}(" + "; ".join(f"group {i}: {g}" for i, g in enumerate(groups)) + ")"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay."""

    def __init__(self, params: Iterable[Parameter] | Iterable[Mapping[str, Any]], lr: float = 1e-3,
                 momentum: float = 0, dampening: float = 0, weight_decay: float = 0, nesterov: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize})

    @classmethod
    def _checked(cls, hyper):
        hyper.update(lr=_check_rate("lr", hyper["lr"]), momentum=_check_rate("momentum", hyper["momentum"]),
                     dampening=check_real("dampening", hyper["dampening"], -math.inf, math.inf,
                                          low_inclusive=False, high_inclusive=False),
                     weight_decay=_check_rate("weight_decay", hyper["weight_decay"]),
                     nesterov=_flag("nesterov", hyper["nesterov"]),
                     maximize=_flag("maximize", hyper["maximize"]))
        if hyper["nesterov"] and (hyper["momentum"] <= 0 or hyper["dampening"] != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0")
        return hyper

    def _state_keys(self, group):
        return {"momentum_buffer"}, set()                # torch's holds momentum_buffer: None without momentum

    def _update(self, p, state, group, s0, s1):
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        g = _grad(p, group["weight_decay"], group["maximize"], s0)
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= momentum                          # b ← μ b + (1 − τ) g
                if dampening == 0:
                    buf += g
                else:
                    np.multiply(g, 1 - dampening, out=s1)
                    buf += s1
            if group["nesterov"]:
                np.multiply(buf, momentum, out=s1)       # g ← g + μ b
                s1 += g
                g = s1
            else:
                g = buf
        np.multiply(g, lr, out=s1)
        p.data -= s1


class Adam(Optimizer):
    """Adam (Kingma & Ba) with optional AMSGrad and L2 weight decay added to the gradient."""

    _decoupled = False  # AdamW: decay the weights directly instead

    def __init__(self, params: Iterable[Parameter] | Iterable[Mapping[str, Any]], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
                 amsgrad: bool = False, *, maximize: bool = False) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                                  "amsgrad": amsgrad, "maximize": maximize})

    @classmethod
    def _checked(cls, hyper):
        betas = hyper["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair of floats, got {betas!r}")
        hyper.update(lr=_check_rate("lr", hyper["lr"]),
                     betas=(check_real("betas[0]", betas[0], 0.0, 1.0, high_inclusive=False),
                            check_real("betas[1]", betas[1], 0.0, 1.0, high_inclusive=False)),
                     eps=_check_rate("eps", hyper["eps"]),
                     weight_decay=_check_rate("weight_decay", hyper["weight_decay"]),
                     amsgrad=_flag("amsgrad", hyper["amsgrad"]), maximize=_flag("maximize", hyper["maximize"]))
        return hyper

    def _state_keys(self, group):
        needed = {"step", "exp_avg", "exp_avg_sq"} | ({"max_exp_avg_sq"} if group["amsgrad"] else set())
        return needed | {"max_exp_avg_sq"}, needed

    def _hyper(self, state: dict[str, Any], group: dict[str, Any]) -> tuple:
        """(λ of the L2 term, decay of θ, step size γ/(1 − β₁ᵗ), √(1 − β₂ᵗ)) of this step t; counts the step."""
        lr, wd = group["lr"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        t = state["step"] = state.get("step", 0) + 1
        return (0.0 if self._decoupled else wd, 1 - lr * wd if self._decoupled else 1.0,
                lr / (1 - beta1 ** t), (1 - beta2 ** t) ** 0.5)

    def _moments(self, p: Parameter, state: dict[str, Any], group: dict[str, Any]) -> tuple:
        """(m, v, v̂ or None), created as zeros on first use."""
        return (_buffer(state, "exp_avg", p.data), _buffer(state, "exp_avg_sq", p.data),
                _buffer(state, "max_exp_avg_sq", p.data) if group["amsgrad"] else None)

    def _update_in_one_pass(self, p, state, group):
        m, v, vmax = self._moments(p, state, group)
        dtype = p.data.dtype
        if dtype not in (np.float32, np.float64) or not all(
                a is None or a.flags.c_contiguous and a.dtype == dtype for a in (p.data, p.grad, m, v, vmax)):
            return False                                 # a user's layout or dtype: the NumPy operations of _update
        l2, decay, step_size, bias2_sqrt = self._hyper(state, group)
        beta1, beta2 = group["betas"]
        _kernels.adam_update(p.data.reshape(-1), p.grad.reshape(-1), m.reshape(-1), v.reshape(-1),
                             None if vmax is None else vmax.reshape(-1), group["maximize"], l2, decay, beta1, beta2,
                             bias2_sqrt, group["eps"], step_size, get_num_threads())
        return True

    def _update(self, p, state, group, s0, s1):
        beta1, beta2 = group["betas"]
        m, v, vmax = self._moments(p, state, group)
        l2, decay, step_size, bias2_sqrt = self._hyper(state, group)
        g = _grad(p, l2, group["maximize"], s0)
        if decay != 1:
            p.data *= decay                              # θ ← θ (1 − γλ)
        np.subtract(g, m, out=s1)                        # m ← m + (1 − β₁)(g − m)
        s1 *= 1 - beta1
        m += s1
        np.multiply(g, g, out=s1)                        # v ← β₂ v + (1 − β₂) g²
        s1 *= 1 - beta2
        v *= beta2
        v += s1
        if vmax is not None:
            v = np.maximum(vmax, v, out=vmax)
        np.sqrt(v, out=s1)                               # denominator √v̂ / √(1 − β₂ᵗ) + ε
        s1 /= bias2_sqrt
        s1 += group["eps"]
        np.divide(m, s1, out=s1)
        s1 *= step_size
        p.data -= s1


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``θ ← θ(1 − γλ)`` then the Adam step."""

    _decoupled = True

    def __init__(self, params: Iterable[Parameter] | Iterable[Mapping[str, Any]], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 amsgrad: bool = False, *, maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


class RMSprop(Optimizer):
    """RMSprop (Hinton), optionally centered and with momentum, on torch's update rule."""

    def __init__(self, params: Iterable[Parameter] | Iterable[Mapping[str, Any]], lr: float = 1e-2,
                 alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0, momentum: float = 0,
                 centered: bool = False, *, maximize: bool = False) -> None:
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay,
                                  "momentum": momentum, "centered": centered, "maximize": maximize})

    @classmethod
    def _checked(cls, hyper):
        hyper.update(lr=_check_rate("lr", hyper["lr"]), alpha=check_real("alpha", hyper["alpha"], 0.0, 1.0),
                     eps=_check_rate("eps", hyper["eps"]),
                     weight_decay=_check_rate("weight_decay", hyper["weight_decay"]),
                     momentum=_check_rate("momentum", hyper["momentum"]),
                     centered=_flag("centered", hyper["centered"]),
                     maximize=_flag("maximize", hyper["maximize"]))
        return hyper

    def _state_keys(self, group):
        needed = ({"step", "square_avg"} | ({"momentum_buffer"} if group["momentum"] > 0 else set())
                  | ({"grad_avg"} if group["centered"] else set()))
        return needed | {"momentum_buffer", "grad_avg"}, needed

    def _update(self, p, state, group, s0, s1):
        lr, alpha, momentum = group["lr"], group["alpha"], group["momentum"]
        g = _grad(p, group["weight_decay"], group["maximize"], s0)
        state["step"] = state.get("step", 0) + 1
        v = _buffer(state, "square_avg", p.data)
        v *= alpha                                       # v ← α v + (1 − α) g²
        np.multiply(g, g, out=s1)
        s1 *= 1 - alpha
        v += s1
        if group["centered"]:
            gbar = _buffer(state, "grad_avg", p.data)
            np.subtract(g, gbar, out=s1)                 # ḡ ← ḡ + (1 − α)(g − ḡ)
            s1 *= 1 - alpha
            gbar += s1
            np.multiply(gbar, gbar, out=s1)              # d = √(v − ḡ²) + ε
            np.subtract(v, s1, out=s1)
            np.sqrt(s1, out=s1)
        else:
            np.sqrt(v, out=s1)                           # d = √v + ε
        s1 += group["eps"]
        np.divide(g, s1, out=s1)                         # g / d
        if momentum > 0:
            buf = _buffer(state, "momentum_buffer", p.data)
            buf *= momentum                              # b ← μ b + g / d
            buf += s1
            np.multiply(buf, lr, out=s1)
        else:
            s1 *= lr
        p.data -= s1


# the schedules, under this module's name too (as torch.optim.StepLR is torch.optim.lr_scheduler.StepLR)
from .lr_scheduler import CosineAnnealingLR, LRScheduler, ReduceLROnPlateau, StepLR  # noqa: E402
