"""scikit-learn's estimator base classes when it is installed, else minimal stand-ins with the same behaviour;
and ``warn_at_caller``, which the estimators' warnings (of these categories and others) go through.

scikit-learn is optional: importing rnnfast must never need it.
"""
from __future__ import annotations

import inspect
import os
import sys
import types
import warnings
from collections import defaultdict
from typing import Any, Optional

__all__ = ["BaseEstimator", "ClassifierMixin", "RegressorMixin", "NotFittedError", "DataConversionWarning",
           "ConvergenceWarning", "warn_at_caller"]


class _MinimalBaseEstimator:
    """``get_params`` / ``set_params`` / ``repr`` exactly as ``sklearn.base.BaseEstimator`` defines them."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        init = cls.__init__
        if init is object.__init__:
            return []
        params = [p for p in inspect.signature(init).parameters.values()
                  if p.name != "self" and p.kind != p.VAR_KEYWORD]
        if any(p.kind == p.VAR_POSITIONAL for p in params):
            raise RuntimeError(f"{cls.__name__} must list its parameters in __init__ (no *args)")
        return sorted(p.name for p in params)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self._get_param_names():
            value = getattr(self, key)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((key + "__" + k, v) for k, v in value.get_params().items())
            out[key] = value
        return out

    def set_params(self, **params: Any) -> "_MinimalBaseEstimator":
        if not params:
            return self
        valid = self.get_params(deep=True)
        nested: dict[str, dict[str, Any]] = defaultdict(dict)
        for key, value in params.items():
            key, delim, sub_key = key.partition("__")
            if key not in valid:
                raise ValueError(f"Invalid parameter {key!r} for estimator {self}. "
                                 f"Valid parameters are: {self._get_param_names()!r}.")
            if delim:
                nested[key][sub_key] = value
            else:
                setattr(self, key, value)
                valid[key] = value
        for key, sub_params in nested.items():
            valid[key].set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        # sklearn prints only the parameters that differ from their defaults
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params(deep=False).items()
                   if not (k in defaults and _same_value(v, defaults[k]))]
        return f"{type(self).__name__}({', '.join(changed)})"


def _same_value(a: Any, b: Any) -> bool:
    try:
        return bool(a is b or (type(a) is type(b) and a == b))
    except (TypeError, ValueError):
        return False


class _MinimalClassifierMixin:
    _estimator_type = "classifier"


class _MinimalRegressorMixin:
    _estimator_type = "regressor"


class _MinimalNotFittedError(ValueError, AttributeError):
    """Raised by predict before fit (scikit-learn's ``NotFittedError`` when it is installed)."""


class _MinimalDataConversionWarning(UserWarning):
    """Warns that y was reshaped (scikit-learn's ``DataConversionWarning`` when it is installed)."""



class _MinimalConvergenceWarning(UserWarning):
    """Warns that training stopped early (scikit-learn's ``ConvergenceWarning`` when it is installed)."""


try:  # scikit-learn is optional: importing rnnfast must never need it
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError
except ImportError:  # pragma: no cover - exercised by a subprocess test without sklearn
    BaseEstimator = _MinimalBaseEstimator                   # type: ignore[misc,assignment]
    ClassifierMixin = _MinimalClassifierMixin               # type: ignore[misc,assignment]
    RegressorMixin = _MinimalRegressorMixin                 # type: ignore[misc,assignment]
    NotFittedError = _MinimalNotFittedError                 # type: ignore[misc,assignment]
    DataConversionWarning = _MinimalDataConversionWarning   # type: ignore[misc,assignment]
    ConvergenceWarning = _MinimalConvergenceWarning         # type: ignore[misc,assignment]


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep          # .../rnnfast/


def warn_at_caller(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` pointed at the first frame outside rnnfast: the user's call of ``fit`` or ``predict``,
    however many of the estimators' own frames lie between (a fixed stacklevel points into rnnfast wherever a
    subclass adds one)."""
    frame: Optional[types.FrameType] = sys._getframe(1)        # the caller's
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
