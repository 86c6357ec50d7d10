"""What a user's install holds: one version, type information that matches the compiled module, no build
sources beside it, the build record, and show_config().

These run against whichever rnnfast is imported: the installed wheel in CI and in tools/build_wheel.sh
(which also checks the sdist and wheel contents with tools/check_dist.py).
"""
from __future__ import annotations

import ast
import inspect
import io
import os
import re
from importlib import metadata
from pathlib import Path

import pytest

import rnnfast
from rnnfast import _recurrent
from rnnfast._config import _owner, show_config
from rnnfast._version import __version__

PACKAGE_DIR = Path(rnnfast.__file__).resolve().parent


def _installed_distribution() -> metadata.Distribution | None:
    """The installed distribution that the imported rnnfast came from, or None (an in-place build)."""
    try:
        dist = metadata.distribution("rnnfast")
    except metadata.PackageNotFoundError:
        return None
    if dist.read_text("RECORD") is None:  # a source tree's rnnfast.egg-info, not an install
        return None
    located = Path(str(dist.locate_file("rnnfast/__init__.py"))).resolve()
    return dist if located == PACKAGE_DIR / "__init__.py" else None


def test_version_has_one_source():
    assert rnnfast.__version__ == __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc)?\d*(\.dev\d+)?", __version__)
    dist = _installed_distribution()
    if dist is not None:
        assert dist.version == __version__


def test_show_config_is_public():
    assert rnnfast.show_config is show_config


def test_typed_package_markers():
    assert (PACKAGE_DIR / "py.typed").is_file()
    assert (PACKAGE_DIR / "_recurrent.pyi").is_file()


def test_no_build_sources_beside_the_compiled_module():
    leftovers = [p.name for p in PACKAGE_DIR.iterdir() if p.suffix in (".c", ".cpp", ".pyx", ".pxd", ".h", ".o")]
    assert leftovers == []


def _stub_api() -> tuple[dict[str, list[str]], set[str]]:
    """Functions (name -> parameter names) and annotated constants declared in _recurrent.pyi."""
    tree = ast.parse((PACKAGE_DIR / "_recurrent.pyi").read_text(encoding="utf-8"))
    functions = {n.name: [a.arg for a in n.args.args] for n in tree.body if isinstance(n, ast.FunctionDef)}
    constants = {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    return functions, constants


def test_stub_matches_compiled_module():
    """_recurrent.pyi names every function and constant of the compiled module, with its parameters."""
    functions, constants = _stub_api()
    tree = ast.parse((PACKAGE_DIR / "_recurrent.pyi").read_text(encoding="utf-8"))
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}          # the exception classes
    runtime = {name for name in vars(_recurrent) if not name.startswith("__")}
    runtime_classes = {name for name in runtime if isinstance(getattr(_recurrent, name), type)}
    runtime_functions = {name for name in runtime if callable(getattr(_recurrent, name))} - runtime_classes
    assert sorted(runtime_classes) == sorted(classes), "update rnnfast/_recurrent.pyi"
    assert sorted(runtime_functions) == sorted(functions), "update rnnfast/_recurrent.pyi"
    assert sorted(runtime - runtime_functions - runtime_classes) == sorted(constants), "update rnnfast/_recurrent.pyi"
    for name, params in functions.items():
        compiled = list(inspect.signature(getattr(_recurrent, name)).parameters)
        assert compiled == params, f"rnnfast/_recurrent.pyi: {name}{tuple(params)} != compiled {tuple(compiled)}"


def _show_config_text() -> str:
    buf = io.StringIO()
    show_config(file=buf)
    return buf.getvalue()


def _field(text: str, label: str) -> str:
    """The value of the first `label:` row of show_config's output."""
    match = re.search(rf"^  {re.escape(label)}:\s+(.*)$", text, re.M)
    assert match, f"show_config() has no {label!r} row:\n{text}"
    return match.group(1)


def test_show_config_reports_version_threads_and_blas():
    text = _show_config_text()
    assert text.startswith(f"rnnfast {__version__}\n")
    assert _field(text, "enabled").startswith(str(rnnfast.openmp_enabled()))
    assert _field(text, "rnnfast").split()[0] == str(rnnfast.get_num_threads())
    assert _field(text, "scipy built with")
    from threadpoolctl import threadpool_info

    scipy_blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas" and _owner(lib["filepath"]) == "scipy"]
    if scipy_blas:  # threadpoolctl does not see every BLAS (Accelerate on macOS)
        row = _field(text, "scipy loaded")
        assert row.endswith("<- the kernels call this one")
        assert f"{scipy_blas[0]['num_threads']} threads" in row and scipy_blas[0]["version"] in row


def test_build_record():
    """setup.py records the compiler and the OpenMP flags; the record agrees with the compiled module."""
    try:
        from rnnfast import _build_info
    except ImportError:
        if _installed_distribution() is not None:
            raise
        pytest.skip("in-place build made before setup.py recorded build info: rebuild")
    assert _build_info.openmp == rnnfast.openmp_enabled()
    assert _build_info.compiler and _build_info.compiler_command
    text = _show_config_text()
    assert _field(text, "compiler") == _build_info.compiler
    if _build_info.openmp:
        assert _build_info.openmp_compile_args and set(_build_info.openmp_compile_args) <= set(
            _build_info.extra_compile_args)


def test_installed_metadata():
    dist = _installed_distribution()
    if dist is None:
        pytest.skip("rnnfast is not installed (in-place build)")
    requires = dist.requires or []
    runtime = sorted(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requires if "extra ==" not in r)
    assert runtime == ["numpy", "scipy", "threadpoolctl"]
    extras = set(dist.metadata.get_all("Provides-Extra") or [])
    assert {"torch", "plot", "progress", "test", "bench", "mpi"} <= extras
    assert any(r.replace(" ", "").startswith("torch==2.13.0") for r in requires)
    assert dist.metadata["Requires-Python"] == ">=3.10"
    assert dist.metadata.get("License-Expression") == "BSD-3-Clause"
    installed = {str(f) for f in dist.files or []}
    assert "rnnfast/py.typed" in installed and "rnnfast/_recurrent.pyi" in installed
    assert not [f for f in installed if os.path.splitext(f)[1] in (".c", ".pyx", ".pxd", ".h")]
