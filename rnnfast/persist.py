"""Save and load fitted estimators: one ``.npz`` file of weights plus JSON metadata, no pickle.

File layout (``numpy.savez``, readable with ``np.load(path, allow_pickle=False)``):

    __metadata__        0-d unicode array holding JSON: {"format": "rnnfast-estimator", "format_version",
                        "rnnfast_version", "class", "params" (get_params()), "fitted" (learned attributes),
                        "arrays": {name: {"shape", "dtype"}}}
    rnn.<torch name>    the recurrent layer's weights (weight_ih_l0, ...), as ``state_dict()`` names them
    head.weight, head.bias
    classes_            the classifier's labels (numbers or strings)

``save`` writes a temporary file in the target's directory and moves it into place with ``os.replace``, so
an interrupted save never leaves a half-written file under ``path`` and the previous file survives.
``load`` checks the format name and version, and every array's presence, shape and dtype against the
metadata (and the model the metadata describes) before it returns a model.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np

from .distributed import Communicator

if TYPE_CHECKING:                                         # imported lazily at run time: see _estimator_classes
    from .estimators._base import _SequenceEstimator

__all__ = ["save", "load", "FORMAT_VERSION"]

FORMAT_NAME = "rnnfast-estimator"
FORMAT_VERSION = 1
_META_KEY = "__metadata__"
# The learned attributes kept in the metadata are each estimator class's ``_persisted_attrs``.


def _estimator_classes() -> dict[str, type[_SequenceEstimator]]:
    from .estimators import SequenceClassifier, SequenceRegressor

    return {cls.__name__: cls for cls in (SequenceClassifier, SequenceRegressor)}


def _jsonable(value: Any) -> Any:
    """Plain JSON types; random generators (RandomState, Generator) and communicators become None."""
    if isinstance(value, (np.random.RandomState, np.random.Generator, Communicator)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()                             # floats round-trip exactly through JSON
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name                       # dtype=np.float32 → "float32"
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def save(estimator: Any, path: str | os.PathLike) -> str:
    """Write a fitted ``SequenceClassifier`` / ``SequenceRegressor`` to ``path`` (atomically); returns it."""
    from . import __version__

    classes = _estimator_classes()
    if type(estimator).__name__ not in classes or not isinstance(estimator, classes[type(estimator).__name__]):
        raise TypeError(f"save needs an rnnfast SequenceClassifier or SequenceRegressor, got "
                        f"{type(estimator).__name__}")
    estimator._check_fitted()
    path = os.fspath(path)
    arrays = dict(estimator._get_weights())
    fitted = {name: _jsonable(getattr(estimator, name)) for name in type(estimator)._persisted_attrs
              if hasattr(estimator, name)}
    if hasattr(estimator, "classes_"):
        classes_ = np.asarray(estimator.classes_)
        if classes_.dtype.kind == "O":                    # labels kept as Python objects (str or int)
            fitted["classes_dtype"] = "object"
            classes_ = np.array(classes_.tolist())
            if classes_.dtype.kind not in "biufU":
                raise TypeError(f"cannot save classes_ of mixed types: {estimator.classes_!r}")
        arrays["classes_"] = classes_
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "rnnfast_version": __version__,
        "class": type(estimator).__name__,
        "params": _jsonable(estimator.get_params(deep=False)),
        "fitted": fitted,
        "arrays": {name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in arrays.items()},
    }
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".rnnfast-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            # One dict of Any: mypy checks a **dict[str, ndarray] against savez's allow_pickle: bool too.
            members: dict[str, Any] = {_META_KEY: np.array(json.dumps(meta)), **arrays}   # keys never clash
            np.savez(f, **members)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)                             # atomic: path is the old file or the new one
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _fail(path: str, why: str) -> ValueError:
    return ValueError(f"{path!r} is not a valid rnnfast model file: {why}")


def load(path: str | os.PathLike) -> Any:
    """Read a model written by :func:`save` (``est.save(path)``); raises a clear error on bad files.

    ``FileNotFoundError`` for a missing file; ``ValueError`` for a corrupt or foreign file, a format
    version newer than this rnnfast reads, or arrays whose names, shapes or dtypes disagree with the
    metadata.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no rnnfast model file at {path!r}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise _fail(path, f"cannot read it as .npz ({type(exc).__name__}: {exc})") from exc
    if _META_KEY not in data:
        raise _fail(path, "it has no metadata")
    try:
        meta = json.loads(str(data.pop(_META_KEY)))
    except json.JSONDecodeError as exc:
        raise _fail(path, f"its metadata is not JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise _fail(path, f"its format is {meta.get('format') if isinstance(meta, dict) else None!r}, "
                          f"expected {FORMAT_NAME!r}")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise _fail(path, f"bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{path!r} has model format version {version}, newer than this rnnfast reads "
                         f"({FORMAT_VERSION}); upgrade rnnfast (the file was written by rnnfast "
                         f"{meta.get('rnnfast_version')})")
    classes = _estimator_classes()
    cls = classes.get(meta.get("class", ""))             # no "class": the empty name, no estimator
    if cls is None:
        raise _fail(path, f"unknown estimator class {meta.get('class')!r}")
    spec = meta.get("arrays", {})
    if set(spec) != set(data):
        raise _fail(path, f"arrays {sorted(data)} do not match the metadata's {sorted(spec)}")
    for name, arr in data.items():
        want_shape, want_dtype = tuple(spec[name]["shape"]), np.dtype(spec[name]["dtype"])
        if arr.shape != want_shape or arr.dtype != want_dtype:
            raise _fail(path, f"array {name!r} has shape {arr.shape} and dtype {arr.dtype}, the metadata says "
                              f"{want_shape} and {want_dtype}")
    try:
        est = cls(**meta["params"])
        fitted = dict(meta["fitted"])
        classes_dtype = fitted.pop("classes_dtype", None)
        for name, value in fitted.items():
            if name not in cls._persisted_attrs:
                raise ValueError(f"unknown fitted attribute {name!r}")
            setattr(est, name, value)
        if "classes_" in data:
            est.classes_ = data.pop("classes_")
            if classes_dtype == "object":
                est.classes_ = est.classes_.astype(object)
        est._set_weights(data)
    except (TypeError, ValueError, KeyError) as exc:
        raise _fail(path, str(exc)) from exc
    return est
