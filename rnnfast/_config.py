"""``rnnfast.show_config()``: what a bug report needs to know about this installation.

It reports the version, how the kernels were compiled (recorded by setup.py in ``rnnfast/_build_info.py``
at build time), whether OpenMP is on, the BLAS that SciPy provides (the kernels call it through
``scipy.linalg.cython_blas``; threadpoolctl finds it once ``scipy.linalg`` is imported) and the thread
counts of rnnfast and of each BLAS and OpenMP runtime loaded in the process.
"""
from __future__ import annotations

import os
import platform
import sys
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TextIO

from ._threads import get_num_threads, openmp_enabled
from ._version import __version__

__all__ = ["show_config"]


def _build_info() -> dict[str, Any]:
    """The build record written by setup.py, or {} for a build made without it."""
    try:
        mod = import_module("rnnfast._build_info")
    except ImportError:
        return {}
    return {k: v for k, v in vars(mod).items() if not k.startswith("_")}


def _dist_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _owner(filepath: str) -> str:
    """Which wheel a shared library came from: numpy, scipy, rnnfast (bundled by auditwheel) or other."""
    path = os.path.realpath(filepath)
    for name in ("scipy", "numpy", "rnnfast"):
        mod = sys.modules.get(name)
        if mod is None or mod.__file__ is None:
            continue
        pkg = os.path.dirname(os.path.realpath(mod.__file__))
        if any(path.startswith(d + os.sep) for d in (pkg, pkg + ".libs")):
            return name
    return "other"


def _runtime_libraries() -> list[dict[str, Any]]:
    """threadpoolctl's view of the BLAS and OpenMP runtimes loaded, after importing scipy.linalg."""
    import scipy.linalg  # noqa: F401  (loads SciPy's BLAS, the one the kernels call)
    from threadpoolctl import threadpool_info

    return [dict(lib, owner=_owner(lib.get("filepath") or "")) for lib in threadpool_info()]


def _scipy_blas_build() -> str:
    """The BLAS SciPy was built against, from scipy.show_config (name and version)."""
    import scipy

    try:
        blas = scipy.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '?')}"
    except Exception:  # older SciPy or an unusual build: not worth failing a bug report over
        return "unknown"


def _row(label: str, value: object) -> str:
    return f"  {label + ':':<18}{value}"


def _lines() -> list[str]:
    import numpy
    import scipy

    info = _build_info()
    libs = _runtime_libraries()
    out = [
        f"rnnfast {__version__}",
        _row("location", os.path.dirname(os.path.abspath(__file__))),
        _row("python", f"{sys.version.splitlines()[0]} ({platform.python_implementation()})"),
        _row("platform", f"{platform.platform()} ({platform.machine()})"),
        _row("numpy", numpy.__version__),
        _row("scipy", scipy.__version__),
        _row("threadpoolctl", _dist_version("threadpoolctl")),
        "build:",
    ]
    if info:
        out += [
            _row("compiler", info.get("compiler", "unknown")),
            _row("command", info.get("compiler_command", "unknown")),
            _row("compile flags", " ".join(info.get("extra_compile_args", []))),
            _row("link flags", " ".join(info.get("extra_link_args", []))),
            _row("openmp flags", " ".join(info.get("openmp_compile_args", [])) or "none"),
            _row("debug build", info.get("debug", "unknown")),
            _row("cython", info.get("cython_version", "unknown")),
            _row("numpy, scipy", f"{info.get('numpy_version', '?')}, {info.get('scipy_version', '?')} (at build time)"),
            _row("platform", info.get("platform", "unknown")),
        ]
    else:
        out.append(_row("unknown", "no rnnfast/_build_info.py in this build (rebuild with setup.py to record it)"))
    omp = [lib for lib in libs if lib.get("user_api") == "openmp"]
    blas = [lib for lib in libs if lib.get("user_api") == "blas"]
    out += [
        "openmp:",
        _row("enabled", f"{openmp_enabled()} (compiled in)"),
        _row("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "unset")),
    ]
    out += [_row("runtime", f"{lib.get('prefix')} ({lib['owner']}), {lib.get('num_threads')} threads, "
                            f"{lib.get('filepath')}") for lib in omp] or [_row("runtime", "none loaded")]
    out += [
        "threads:",
        _row("rnnfast", f"{get_num_threads()} (get_num_threads(); BLAS is held to 1 thread inside the kernels)"),
        "blas:",
        _row("scipy built with", _scipy_blas_build()),
    ]
    for lib in blas:
        mark = "  <- the kernels call this one" if lib["owner"] == "scipy" else ""
        out.append(_row(f"{lib['owner']} loaded", f"{lib.get('internal_api')} {lib.get('version')} "
                        f"({lib.get('threading_layer', '?')}, {lib.get('architecture', '?')}), "
                        f"{lib.get('num_threads')} threads, {lib.get('filepath')}{mark}"))
    if not any(lib["owner"] == "scipy" for lib in blas):
        out.append(_row("scipy loaded", "not visible to threadpoolctl (for example Accelerate on macOS)"))
    return out


def show_config(file: TextIO | None = None) -> None:
    """Print rnnfast's version, build (compiler, OpenMP), BLAS and thread counts; paste it into bug reports."""
    print("\n".join(_lines()), file=sys.stdout if file is None else file)
