r"""Learning-rate schedules with PyTorch's semantics (``torch.optim.lr_scheduler``): each one changes
``optimizer.param_groups[i]["lr"]`` in place.
Call ``scheduler.step()`` after ``optimizer.step()``, as in torch:

    StepLR:             γ ← γ · gamma whenever the epoch count reaches a multiple of step_size
    ReduceLROnPlateau:  γ ← max(γ · factor, min_lr) after more than ``patience`` epochs without the
                        metric improving on the best by more than ``threshold`` (relative: best·(1 ∓ thr),
                        absolute: best ∓ thr), then ``cooldown`` epochs before counting again; changes
                        smaller than ``eps`` are skipped.
    CosineAnnealingLR:  γ_t = η_min + (γ_0 − η_min)·(1 + cos(π t / T_max))/2 after t calls of ``step()``,
                        computed as torch computes it (a ratio of consecutive cosines applied to the current
                        γ, so a γ changed by hand is annealed from where it is).
"""
from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ._validation import check_choice, check_int, check_nonnegative, check_real

if TYPE_CHECKING:           # rnnfast.optim imports this module to name the schedules too
    from .optim import Optimizer

__all__ = ["LRScheduler", "StepLR", "ReduceLROnPlateau", "CosineAnnealingLR"]


class LRScheduler:
    """Base class: holds the optimizer, ``last_epoch``, ``get_last_lr()`` and the state dicts."""

    _from_initial_lr = True

    def __init__(self, optimizer: Optimizer) -> None:
        from .optim import Optimizer
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be an rnnfast.optim.Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        # As torch: the first scheduler on an optimizer records each group's "initial_lr", and every scheduler
        # anneals from it, not from a rate an earlier scheduler (or the user) has changed since; torch's
        # ReduceLROnPlateau neither records nor reads it.
        if self._from_initial_lr:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr" if self._from_initial_lr else "lr"] for group in optimizer.param_groups]
        self.last_epoch = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rate of each parameter group after the last ``step``."""
        return list(self._last_lr)

    def _record_lr(self) -> None:
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer (copied)."""
        return {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k != "optimizer"}

    _added_since: dict[str, Any] = {}        # attributes newer than some saved state dicts: their value then
    # the hyper-parameters' checks, check(name, value) -> value: the constructor's, and load_state_dict's
    _value_checks: dict[str, Callable[[str, Any], Any]] = {}

    def _checked(self, key: str, value: Any) -> Any:
        """A constructor argument checked as ``_value_checks`` says."""
        return self._value_checks[key](key, value)

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore attributes saved by ``state_dict()`` of the same scheduler class, checked as the constructor
        checks them, with one rate per parameter group of this scheduler's optimizer."""
        own = set(self.__dict__) - {"optimizer"}
        given = sorted(state_dict)
        state = copy.deepcopy({**{k: v for k, v in self._added_since.items() if k not in state_dict},
                               **state_dict})
        if set(state) != own:
            raise KeyError(f"state_dict keys {given} do not match {type(self).__name__}'s {sorted(own)}")
        self._check_state(state)
        self.__dict__.update(state)

    def _check_state(self, s: dict[str, Any]) -> None:
        """ValueError/TypeError, naming the entry, unless a loaded state ``s`` is one this class could have."""
        s["last_epoch"] = check_int("state_dict['last_epoch']", s["last_epoch"], 0)
        groups = len(self.base_lrs)
        for key in ("base_lrs", "_last_lr"):
            if not isinstance(s[key], (list, tuple)) or len(s[key]) != groups:
                raise ValueError(f"state_dict[{key!r}] must list one rate per parameter group ({groups}), got "
                                 f"{s[key]!r}")
            s[key] = [check_nonnegative(f"state_dict[{key!r}]", v) for v in s[key]]
        for key, check in self._value_checks.items():
            s[key] = check(f"state_dict[{key!r}]", s[key])


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` calls of ``step()``."""

    _value_checks = {"step_size": lambda name, v: check_int(name, v, 1),
                     "gamma": lambda name, v: check_real(name, v, 0.0, math.inf, low_inclusive=False,
                                                         high_inclusive=False)}

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = self._checked("step_size", step_size)
        self.gamma = self._checked("gamma", gamma)
        super().__init__(optimizer)

    def step(self) -> None:
        self.last_epoch += 1
        if self.last_epoch % self.step_size == 0:
            for group in self.optimizer.param_groups:
                group["lr"] = group["lr"] * self.gamma
        self._record_lr()


class ReduceLROnPlateau(LRScheduler):
    """Multiply the learning rate by ``factor`` when a metric passed to ``step(metric)`` stops improving."""

    _from_initial_lr = False
    _added_since = {"default_min_lr": None}     # (a state dict from before it: min_lrs as saved, no default)
    _value_checks = {"mode": lambda name, v: check_choice(name, v, ("min", "max")),
                     "threshold_mode": lambda name, v: check_choice(name, v, ("rel", "abs")),
                     "factor": lambda name, v: check_real(name, v, 0.0, 1.0, high_inclusive=False),
                     "patience": lambda name, v: check_int(name, v, 0),
                     "threshold": check_nonnegative,
                     "cooldown": lambda name, v: check_int(name, v, 0),
                     "eps": check_nonnegative}

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float | list[float] = 0, eps: float = 1e-8) -> None:
        super().__init__(optimizer)
        self.mode = self._checked("mode", mode)
        self.threshold_mode = self._checked("threshold_mode", threshold_mode)
        self.factor = self._checked("factor", factor)
        self.patience = self._checked("patience", patience)
        self.threshold = self._checked("threshold", threshold)
        self.cooldown = self._checked("cooldown", cooldown)
        self.eps = self._checked("eps", eps)
        n_groups = len(optimizer.param_groups)
        self.default_min_lr: float | None = None        # a group added later gets it (a list: no default)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n_groups:
                raise ValueError(f"min_lr has {len(min_lr)} entries, expected one per group ({n_groups})")
            self.min_lrs = [check_nonnegative("min_lr", v) for v in min_lr]
        else:
            self.default_min_lr = check_nonnegative("min_lr", min_lr)
            self.min_lrs = [self.default_min_lr] * n_groups
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _check_state(self, s: dict[str, Any]) -> None:
        super()._check_state(s)
        name = "state_dict[{!r}]".format
        for key in ("num_bad_epochs", "cooldown_counter"):      # (state only: the constructor sets them)
            s[key] = check_int(name(key), s[key], 0)
        if s["default_min_lr"] is not None:
            s["default_min_lr"] = check_nonnegative(name("default_min_lr"), s["default_min_lr"])
        if not isinstance(s["min_lrs"], (list, tuple)) or len(s["min_lrs"]) != len(self.base_lrs):
            raise ValueError(f"{name('min_lrs')} must list one rate per parameter group ({len(self.base_lrs)}), "
                             f"got {s['min_lrs']!r}")
        s["min_lrs"] = [check_nonnegative(name("min_lrs"), v) for v in s["min_lrs"]]
        s["best"] = check_real(name("best"), s["best"], -math.inf, math.inf)

    def _is_better(self, a: float) -> bool:
        rel = self.threshold_mode == "rel"
        if self.mode == "min":
            return a < (self.best * (1.0 - self.threshold) if rel else self.best - self.threshold)
        return a > (self.best * (1.0 + self.threshold) if rel else self.best + self.threshold)

    def step(self, metrics: float) -> None:  # type: ignore[override]
        current = float(metrics)
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0                      # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.patience:
            groups = len(self.optimizer.param_groups)
            if groups != len(self.min_lrs):             # a group added since (add_param_group), as torch
                if self.default_min_lr is None:
                    raise RuntimeError(f"the optimizer has {groups} parameter groups, {len(self.min_lrs)} when "
                                       f"ReduceLROnPlateau was made with one min_lr each: set min_lrs to a "
                                       f"list of {groups}")
                self.min_lrs = [self.default_min_lr] * groups
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, min_lr)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._record_lr()


class CosineAnnealingLR(LRScheduler):
    """Anneal the learning rate from its initial value to ``eta_min`` over ``T_max`` calls of ``step()``,
    along half a cosine (torch's ``CosineAnnealingLR``, with its recursive update; past ``T_max`` the
    cosine continues and the rate rises again, as in torch)."""

    _value_checks = {"T_max": lambda name, v: check_int(name, v, 1), "eta_min": check_nonnegative}

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max = self._checked("T_max", T_max)
        self.eta_min = self._checked("eta_min", eta_min)
        super().__init__(optimizer)

    def step(self) -> None:
        self.last_epoch += 1
        t, T, lo = self.last_epoch, self.T_max, self.eta_min
        groups = self.optimizer.param_groups
        if (t - 1 - T) % (2 * T) == 0:                   # the trough: restart the climb from eta_min
            if len(groups) != len(self.base_lrs):       # (a group added since has no initial rate, as torch)
                raise ValueError(f"the optimizer has {len(groups)} parameter groups, {len(self.base_lrs)} when "
                                 f"CosineAnnealingLR was made: the climb from eta_min needs each one's initial lr")
            for group, base in zip(groups, self.base_lrs):
                group["lr"] = group["lr"] + (base - lo) * (1 - math.cos(math.pi / T)) / 2
        else:                                            # every group, one added since too, as torch
            for group in groups:
                group["lr"] = ((1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                               * (group["lr"] - lo) + lo)
        self._record_lr()
