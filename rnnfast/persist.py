"""Save and load fitted estimators: one ``.npz`` file of weights plus JSON metadata, no pickle.

File layout (``numpy.savez``, readable with ``np.load(path, allow_pickle=False)``):

    __metadata__        0-d unicode array holding JSON: {"format": "rnnfast-estimator", "format_version",
                        "rnnfast_version", "class", "params" (get_params()), "fitted" (learned attributes),
                        "arrays": {name: {"shape", "dtype"}}}
    rnn.<torch name>    the recurrent layer's weights (weight_ih_l0, ...), as ``state_dict()`` names them
    head.weight, head.bias
    classes_            the classifier's labels (numbers, strings or bytes)

This module knows the file format and nothing of the estimators: a class takes part by :func:`register`, and
provides what is saved (see there). ``save`` writes a temporary file in the target's directory and moves it
into place with ``os.replace``, so an interrupted save never leaves a half-written file under ``path`` and the
previous file survives; the file gets the mode ``open(path, "w")`` would give it (0o666 less the umask for a
new file, the old file's mode when it replaces one), and a file that ``open`` could not write is refused. A
file whose metadata ``load`` would refuse (more than ``_MAX_METADATA_BYTES``) is not written.

``load`` reads nothing it has not checked. It reads the zip directory, the metadata (at most
``_MAX_METADATA_BYTES``) and the ``.npy`` header of every array, and checks the format and version, every
array's name, shape, dtype and size against the metadata and against the model the metadata describes, and
the total against the machine's memory, before it reads any array or builds any layer: a small file that
claims a huge model is refused without allocating it. Every corrupt, truncated or foreign file raises
``ValueError`` naming the file and what is wrong; a missing file ``FileNotFoundError``.
"""
from __future__ import annotations

import importlib
import io
import json
import os
import re
import secrets
import stat
import struct
import tokenize
import zipfile
import zlib
from typing import Any

import numpy as np

from ._version import __version__

__all__ = ["save", "load", "register", "FORMAT_VERSION"]

FORMAT_NAME = "rnnfast-estimator"
FORMAT_VERSION = 1
_META_KEY = "__metadata__"
_MAX_METADATA_BYTES = 64 << 20          # JSON metadata (params, learned attributes, per-epoch history), 4 bytes a
                                        # character (a NumPy unicode array): 16 M characters
_MAX_MEMBERS = 100_000                  # arrays in one file (4 per layer and direction, 2 for the head)
_MAX_NDIM = 32                          # as NumPy's
_MAX_NESTING = 64                       # of the JSON metadata
_ARRAY_KINDS = "biufUS"                 # the dtype kinds a file's arrays may have: numbers, text and bytes
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.]*")   # an array's name: no folders, so no path traversal
# What the zip and .npy readers raise on malformed bytes (a bit flip in a header: a bad offset, an unknown
# method, an "encrypted" flag, a header that is not a Python literal); load turns each into ValueError.
_MALFORMED = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, struct.error, OverflowError,
              NotImplementedError, RuntimeError, SyntaxError, tokenize.TokenError, RecursionError, KeyError)

_REGISTRY: dict[str, Any] = {}
# rnnfast's own estimators, by the module that registers them: `import rnnfast` leaves it unimported (it imports
# scikit-learn when that is installed), so load imports it when a file names one of them.
_BUILT_IN = dict.fromkeys(("SequenceClassifier", "SequenceRegressor", "SequenceForecaster"), "rnnfast.estimators")


def register(*classes: type) -> type:
    """Make estimator classes savable and loadable; returns the first (so it also works as a class decorator).

    A file names its class by ``__name__``. A registered class provides ``get_params(deep=False)`` (its
    constructor takes them back), ``_check_fitted()``, ``_persisted_attrs`` (the learned attributes kept as
    JSON; those named in an optional ``_persisted_float_arrays`` come back as float64 arrays),
    ``_persisted_arrays`` (learned attributes kept as arrays, such as ``classes_``; labels held as
    Python objects are saved as numbers or text and restored as objects), ``_get_weights()`` ->
    ``{name: array}``, ``_weight_spec()`` -> ``(name, shape, dtype)`` of every weight, computed from the
    learned attributes without allocating, and ``_set_weights(weights)``."""
    for cls in classes:
        missing = [a for a in ("get_params", "_check_fitted", "_persisted_attrs", "_get_weights", "_weight_spec",
                               "_set_weights") if not hasattr(cls, a)]
        if missing:
            raise TypeError(f"{cls.__name__} cannot be registered for save/load: it has no {', '.join(missing)}")
        other = _REGISTRY.get(cls.__name__)
        if other is not None and other is not cls:
            raise ValueError(f"another class named {cls.__name__!r} is registered already ({other.__module__})")
        _REGISTRY[cls.__name__] = cls
    return classes[0]


_ITEMS = "__items__"         # the JSON of a dict whose keys are not all strings: {"__items__": [[key, value], ...]}


def _jsonable(value: Any) -> Any:
    """Plain JSON types. Live objects (random generators, communicators, anything else) become None: the
    loaded estimator gets None for them."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name                       # dtype=np.float32 → "float32"
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: _jsonable(v) for k, v in value.items()}
        # Keys JSON cannot keep (class_weight's labels 0, 1, True, 2.5): (key, value) pairs under one marker
        return {_ITEMS: [[_jsonable(k), _jsonable(v)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return None


def _from_jsonable(value: Any) -> Any:
    """Undo ``_jsonable``'s (key, value) pairs: a dict again, keyed by the labels as they were."""
    if isinstance(value, dict):
        if set(value) == {_ITEMS} and isinstance(value[_ITEMS], list):
            return {(tuple(k) if isinstance(k, list) else k): _from_jsonable(v) for k, v in value[_ITEMS]}
        return {k: _from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_jsonable(v) for v in value]
    return value


def _object_marker(name: str) -> str:
    """The metadata key that says array attribute ``name`` held Python objects: classes_ → "classes_dtype"."""
    return name.rstrip("_") + "_dtype"


# --------------------------------------------------------------------------------------------------- save
def save(estimator: Any, path: str | bytes | os.PathLike) -> str:
    """Write a fitted estimator of a registered class (``SequenceClassifier``, ``SequenceRegressor``,
    ``SequenceForecaster``) to ``path``, atomically; returns ``path``."""
    cls: Any = type(estimator)
    if _REGISTRY.get(cls.__name__) != cls:                # (identity: classes compare by it)
        raise TypeError(f"save needs a fitted rnnfast estimator of a registered class "
                        f"({', '.join(sorted(_REGISTRY))}; rnnfast.persist.register adds one), got {cls.__name__}")
    estimator._check_fitted()
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str, bytes or os.PathLike, got {type(path).__name__}")
    path = os.fsdecode(path)
    if not os.path.basename(path) and not os.path.isdir(path):     # "" or "missing/" (a folder: refused below)
        raise ValueError(f"path must name a file, got {path!r}")
    arrays = dict(estimator._get_weights())
    fitted = {name: _jsonable(getattr(estimator, name)) for name in cls._persisted_attrs
              if hasattr(estimator, name)}
    for name in getattr(cls, "_persisted_arrays", ()):
        if not hasattr(estimator, name):
            continue
        value = np.asarray(getattr(estimator, name))
        if value.dtype.kind == "O":                       # labels kept as Python objects (str or int)
            fitted[_object_marker(name)] = "object"
            objects = value.tolist()
            value = np.array(objects)
            if value.tolist() != objects:                 # e.g. numpy's text drops a label's trailing "\0"
                raise ValueError(f"cannot save {name}: {objects!r} would load as {value.tolist()!r} (a {value.dtype} "
                                 f"array); nothing was written")
        if value.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"cannot save {name} of mixed or non-numeric types: {getattr(estimator, name)!r}")
        arrays[name] = value
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "rnnfast_version": __version__,
        "class": cls.__name__,
        "params": _jsonable(estimator.get_params(deep=False)),
        "fitted": fitted,
        "arrays": {name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in arrays.items()},
    }
    text = np.array(json.dumps(meta))
    stored = io.BytesIO()
    np.lib.format.write_array(stored, text)               # the .npy member load measures, header included
    if stored.tell() > _MAX_METADATA_BYTES:
        text_bytes = stored.tell()
        sizes = {name: len(json.dumps(value)) for name, value in {"params": meta["params"], **fitted}.items()}
        largest = max(sizes, key=sizes.__getitem__)
        raise ValueError(f"cannot save to {path!r}: the metadata takes {text_bytes} bytes, more than load reads "
                         f"({_MAX_METADATA_BYTES}); the largest part is {largest} ({sizes[largest]} characters of "
                         f"JSON). Nothing was written")
    # One dict of Any: mypy checks a **dict[str, ndarray] against savez's allow_pickle: bool too.
    members: dict[str, Any] = {_META_KEY: text, **arrays}    # keys never clash
    _write_atomically(path, members)
    return path


def _write_atomically(path: str, members: dict[str, Any]) -> None:
    target = os.path.realpath(path) if os.path.islink(path) else path   # through a symlink, as open() writes
    directory = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save to {path!r}: there is no folder {directory!r}")
    if os.path.isdir(target):
        raise IsADirectoryError(f"cannot save to {path!r}: it is a folder; give a file name in it")
    try:
        mode: int | None = stat.S_IMODE(os.stat(target).st_mode)     # replacing a file keeps its mode
    except FileNotFoundError:
        mode = None                                                   # a new file: 0o666 less the umask
    if mode is not None and not os.access(target, os.W_OK):          # as open(path, "w") refuses it
        raise PermissionError(f"cannot save to {path!r}: the file is not writable")
    tmp = os.path.join(directory, f".rnnfast-{secrets.token_hex(8)}.tmp")
    try:
        # O_EXCL: never an existing file; mode 0o666: the kernel applies the umask, as it does for open(path, "w")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except PermissionError as exc:
            raise PermissionError(f"cannot save to {path!r}: no permission to write in {directory!r}") from exc
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.chmod(tmp, mode)
            np.savez(f, **members)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)                           # atomic: target is the old file or the new one
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# --------------------------------------------------------------------------------------------------- load
def _fail(path: str, why: str) -> ValueError:
    return ValueError(f"{path!r} is not a valid rnnfast model file: {why}")


def load(path: str | os.PathLike) -> Any:
    """Read a model written by :func:`save` (``est.save(path)``); raises a clear error on bad files.

    ``FileNotFoundError`` for a missing file; ``ValueError`` naming the file and the problem for a corrupt,
    truncated or foreign file, a format version newer than this rnnfast reads, or arrays whose names,
    shapes or dtypes disagree with the metadata or with the model it describes. Nothing is unpickled, and
    nothing the size of the model is allocated before the file is known to hold that model.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no rnnfast model file at {path!r}")
    with open(path, "rb") as f:                           # OSError (a folder, no permission) as it is
        try:
            archive = zipfile.ZipFile(f)
        except _MALFORMED as exc:
            raise _fail(path, f"it is not a zip archive (.npz) ({type(exc).__name__}: {exc})") from exc
        with archive:
            return _Reader(archive, path).estimator()


class _Reader:
    """One ``load``: every check, in the order that lets no unchecked size reach an allocation."""

    def __init__(self, archive: zipfile.ZipFile, path: str) -> None:
        self.archive, self.path = archive, path

    def fail(self, why: str) -> ValueError:
        return _fail(self.path, why)

    def estimator(self) -> Any:
        members = self.members()
        if _META_KEY not in members:
            raise self.fail("it has no metadata")
        meta = self.metadata(members.pop(_META_KEY))
        if meta["class"] in _BUILT_IN and meta["class"] not in _REGISTRY:
            importlib.import_module(_BUILT_IN[meta["class"]])        # its import registers it
        cls: Any = _REGISTRY.get(meta["class"])
        if cls is None:
            raise self.fail(f"unknown estimator class {meta['class']!r}")
        spec = meta["arrays"]
        if set(spec) != set(members):
            raise self.fail(f"arrays {sorted(members)} do not match the metadata's {sorted(spec)}")
        headers = {name: self.header(name, info) for name, info in members.items()}
        for name, (shape, dtype) in spec.items():
            if headers[name] != (shape, dtype):
                raise self.fail(f"array {name!r} has shape {headers[name][0]} and dtype {headers[name][1]}, "
                                f"the metadata says {shape} and {dtype}")
        total = sum(int(np.prod(shape, dtype=object)) * dtype.itemsize for shape, dtype in headers.values())
        cap = _memory_cap()
        if total > cap:
            raise self.fail(f"its arrays need {total} bytes, more than this machine's memory ({cap} bytes)")
        try:
            est = cls(**{**getattr(cls, "_earlier_defaults", {}), **_from_jsonable(meta["params"])})
        except (TypeError, ValueError) as exc:
            raise self.fail(f"its params do not fit {cls.__name__}: {exc}") from exc
        self.set_learned(est, cls, meta["fitted"], members)
        weights = {name: info for name, info in members.items() if name not in getattr(cls, "_persisted_arrays", ())}
        self.check_model(est, {name: headers[name] for name in weights})
        try:
            est._set_weights({name: self.array(info) for name, info in weights.items()})
        except (TypeError, ValueError, KeyError) as exc:
            raise self.fail(str(exc)) from exc
        return est

    # ---- the archive ----------------------------------------------------------------------------------
    def members(self) -> dict[str, zipfile.ZipInfo]:
        infos = self.archive.infolist()
        if len(infos) > _MAX_MEMBERS:
            raise self.fail(f"it holds {len(infos)} files, more than a model has")
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            key = info.filename[:-4] if info.filename.endswith(".npy") else ""
            if not _KEY.fullmatch(key):
                raise self.fail(f"it holds {info.filename!r}, which is not an array of a model")
            if key in members:
                raise self.fail(f"it holds {info.filename!r} twice")
            if info.flag_bits & 0x1:
                raise self.fail(f"{info.filename!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise self.fail(f"{info.filename!r} uses zip compression method {info.compress_type}, "
                                f"which .npz files do not")
            members[key] = info
        return members

    def header(self, name: str, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype]:
        """(shape, dtype) from the member's .npy header, whose data size must be what the file holds."""
        try:
            with self.archive.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f".npy format version {version} is not one NumPy's savez writes")
                offset = f.tell()
        except _MALFORMED as exc:
            raise self.fail(f"array {name!r} is corrupt ({type(exc).__name__}: {exc})") from exc
        if dtype.hasobject:
            raise self.fail(f"array {name!r} holds Python objects, which would need pickle")
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if info.file_size - offset != nbytes:
            raise self.fail(f"array {name!r} of shape {shape} and dtype {dtype} needs {nbytes} bytes, the file "
                            f"holds {info.file_size - offset}")
        return tuple(shape), dtype

    def array(self, info: zipfile.ZipInfo) -> np.ndarray:
        """The member's array (its header already checked); the zip's CRC-32 checks every byte."""
        try:
            return np.lib.format.read_array(io.BytesIO(self.archive.read(info)), allow_pickle=False)
        except _MALFORMED as exc:
            raise self.fail(f"{info.filename!r} is corrupt ({type(exc).__name__}: {exc})") from exc

    # ---- the metadata ---------------------------------------------------------------------------------
    def metadata(self, info: zipfile.ZipInfo) -> dict[str, Any]:
        """The metadata, with every field the reader uses checked for its type."""
        if info.file_size > _MAX_METADATA_BYTES:
            raise self.fail(f"its metadata is {info.file_size} bytes, more than {_MAX_METADATA_BYTES}")
        shape, dtype = self.header(_META_KEY, info)
        if shape != () or dtype.kind != "U":
            raise self.fail(f"its metadata is an array of shape {shape} and dtype {dtype}, not a text")
        try:
            meta = json.loads(str(self.array(info)))
        except RecursionError as exc:
            raise self.fail("its metadata is nested too deeply") from exc
        except ValueError as exc:
            raise self.fail(f"its metadata is not JSON ({exc})") from exc
        if _nesting(meta) > _MAX_NESTING:
            raise self.fail(f"its metadata is nested more than {_MAX_NESTING} deep")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            raise self.fail(f"its format is {meta.get('format') if isinstance(meta, dict) else None!r}, "
                            f"expected {FORMAT_NAME!r}")
        version = meta.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise self.fail(f"bad format_version {version!r}")
        if version > FORMAT_VERSION:
            raise ValueError(f"{self.path!r} has model format version {version}, newer than this rnnfast reads "
                             f"({FORMAT_VERSION}); upgrade rnnfast (the file was written by rnnfast "
                             f"{meta.get('rnnfast_version')})")
        for field, kind in (("class", str), ("params", dict), ("fitted", dict), ("arrays", dict)):
            if not isinstance(meta.get(field), kind):
                raise self.fail(f"its metadata's {field!r} is {type(meta.get(field)).__name__}, "
                                f"expected {kind.__name__}")
        meta["arrays"] = {name: self.array_spec(name, entry) for name, entry in meta["arrays"].items()}
        return meta

    def array_spec(self, name: str, entry: Any) -> tuple[tuple[int, ...], np.dtype]:
        what = f"its metadata's entry for array {name!r}"
        if not isinstance(entry, dict):
            raise self.fail(f"{what} is {type(entry).__name__}, expected an object with shape and dtype")
        shape, dtype = entry.get("shape"), entry.get("dtype")
        if (not isinstance(shape, list) or len(shape) > _MAX_NDIM
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
            raise self.fail(f"{what} has shape {shape!r}, expected a list of sizes")
        if not isinstance(dtype, str):
            raise self.fail(f"{what} has dtype {dtype!r}, expected a dtype string")
        try:
            dt = np.dtype(dtype)
        except (TypeError, ValueError, SyntaxError) as exc:
            raise self.fail(f"{what} has dtype {dtype!r}, which is not a dtype ({exc})") from exc
        if dt.kind not in _ARRAY_KINDS or dt.fields is not None or dt.subdtype is not None:
            raise self.fail(f"{what} has dtype {dtype!r}; a model holds numbers, text and bytes only")
        return tuple(shape), dt

    # ---- the estimator --------------------------------------------------------------------------------
    def set_learned(self, est: Any, cls: Any, fitted: dict[str, Any], members: dict[str, zipfile.ZipInfo]) -> None:
        """The learned attributes: JSON ones from the metadata, array ones (classes_) from the file."""
        array_attrs = tuple(getattr(cls, "_persisted_arrays", ()))
        markers = {_object_marker(name): name for name in array_attrs}
        objects = set()
        for name, value in fitted.items():
            if name in markers and value == "object":
                objects.add(markers[name])
            elif name in cls._persisted_attrs:
                if value is not None and name in getattr(cls, "_persisted_float_arrays", ()):
                    value = np.asarray(value, dtype=np.float64)     # JSON keeps float64 exactly, as a list
                setattr(est, name, value)
            else:
                raise self.fail(f"unknown fitted attribute {name!r}")
        for name in array_attrs:
            if name in members:
                value = self.array(members[name])
                setattr(est, name, value.astype(object) if name in objects else value)

    def check_model(self, est: Any, weights: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        """Every weight against the model the learned attributes describe, before any layer is built."""
        expected: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        more = False
        try:
            for name, shape, dtype in est._weight_spec():
                if len(expected) == len(weights):         # bounded by the file, whatever num_layers claims
                    more = True
                    break
                expected[name] = (tuple(shape), np.dtype(dtype))
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
            raise self.fail(f"its learned attributes do not describe a model ({type(exc).__name__}: {exc})") \
                from exc
        if more:
            raise self.fail(f"the model its metadata describes has more weights than the {len(weights)} arrays "
                            f"the file holds")
        missing, unexpected = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
        if missing or unexpected:
            raise self.fail(f"its arrays do not match the model its metadata describes: missing "
                            f"{missing[:5]}{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}")
        for name, (shape, dtype) in expected.items():
            if weights[name] != (shape, dtype):
                raise self.fail(f"array {name!r} has shape {weights[name][0]} and dtype {weights[name][1]}, the "
                                f"model its metadata describes needs {shape} and {dtype}")


def _nesting(value: Any) -> int:
    """How deeply JSON ``value`` nests (without recursion)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth <= _MAX_NESTING:
                todo.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _memory_cap() -> int:
    """The machine's physical memory in bytes (2**40 where it cannot be read)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return 1 << 40

