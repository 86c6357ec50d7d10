"""Check what rnnfast's sdist and wheels hold (run by tools/build_wheel.sh).

  sdist:    everything a build needs: setup.py, pyproject.toml, README.md, MANIFEST.in, every csrc/*.pyx,
            *.pxd, *.pxi and *.h of the source tree, the rnnfast/ Python files, stubs and py.typed, the tests;
            no generated C, no compiled module, no build record.
  wheel:    only what runs: rnnfast/*.py (the sdist's, plus the build record _build_info.py), the compiled
            _recurrent module, _recurrent.pyi and py.typed; no C, Cython or header file.
  repaired: the same, plus rnnfast.libs/ holding the OpenMP runtime (libgomp) and no BLAS: the kernels use
            SciPy's BLAS at run time through scipy.linalg.cython_blas.

Usage: python tools/check_dist.py --source DIR --sdist X.tar.gz --wheel X.whl [--repaired X.whl]
Exits non-zero with one line per problem.
"""
from __future__ import annotations

import argparse
import fnmatch
import re
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

BLAS_NAMES = re.compile(r"(openblas|blas|lapack|mkl|accelerate|flexiblas|atlas)", re.I)
COMPILED = re.compile(r"^rnnfast/_recurrent\.[^/]*(\.so|\.pyd)$")


def sdist_names(path: Path) -> set[str]:
    with tarfile.open(path) as tf:
        names = {m.name for m in tf.getmembers() if m.isfile()}
    top = {n.split("/", 1)[0] for n in names}
    if len(top) != 1:
        raise SystemExit(f"{path.name}: expected one top-level directory, got {sorted(top)}")
    return {n.split("/", 1)[1] for n in names}


def check_sdist(path: Path, source: Path) -> list[str]:
    names = sdist_names(path)
    errors = []
    expected = {"setup.py", "pyproject.toml", "README.md", "MANIFEST.in", "rnnfast/py.typed",
                "rnnfast/_recurrent.pyi"}
    for pattern in ("csrc/*.pyx", "csrc/*.pxd", "csrc/*.pxi", "csrc/*.h", "rnnfast/**/*.py", "tests/*.py"):
        expected |= {p.relative_to(source).as_posix() for p in source.glob(pattern)}
    expected.discard("rnnfast/_build_info.py")
    errors += [f"sdist: missing {n}" for n in sorted(expected - names)]
    for n in sorted(names):
        if fnmatch.fnmatch(n, "csrc/*.c") or n.endswith((".so", ".pyd", ".o")) or n == "rnnfast/_build_info.py":
            errors.append(f"sdist: build product {n} should not be shipped")
    return errors


def wheel_names(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as zf:
        return {n for n in zf.namelist() if not n.endswith("/")}  # auditwheel adds directory entries


def wheel_metadata(path: Path) -> tuple[str, list[str], list[str]]:
    with zipfile.ZipFile(path) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        msg = Parser().parsestr(zf.read(meta_name).decode())
    return msg["Version"], msg.get_all("Requires-Dist") or [], msg.get_all("Provides-Extra") or []


def check_wheel(path: Path, sdist: set[str], version: str, repaired: bool) -> list[str]:
    names = wheel_names(path)
    errors = []
    package = {n for n in names if n.startswith("rnnfast/")}
    py_expected = {n for n in sdist if fnmatch.fnmatch(n, "rnnfast/*.py")} | {"rnnfast/_build_info.py"}
    compiled = {n for n in package if COMPILED.match(n)}
    if len(compiled) != 1:
        errors.append(f"{path.name}: expected one compiled rnnfast/_recurrent module, got {sorted(compiled)}")
    allowed = py_expected | compiled | {"rnnfast/py.typed", "rnnfast/_recurrent.pyi"}
    errors += [f"{path.name}: missing {n}" for n in sorted(allowed - package - compiled)]
    errors += [f"{path.name}: unexpected {n} (not needed to run)" for n in sorted(package - allowed)]
    for n in sorted(names):
        top = n.split("/", 1)[0]
        if top in ("rnnfast",) or top.startswith("rnnfast-") and top.endswith(".dist-info"):
            continue
        if repaired and top == "rnnfast.libs":
            continue
        errors.append(f"{path.name}: unexpected top-level entry {n}")
    libs = sorted(n.split("/", 1)[1] for n in names if n.startswith("rnnfast.libs/"))
    if repaired:
        if not any(lib.startswith("libgomp") for lib in libs):
            errors.append(f"{path.name}: libgomp is not bundled in rnnfast.libs/ ({libs})")
        errors += [f"{path.name}: BLAS library bundled: {lib}" for lib in libs if BLAS_NAMES.search(lib)]
        errors += [f"{path.name}: unexpected bundled library {lib}" for lib in libs if not lib.startswith("libgomp")]
    wheel_version, requires, extras = wheel_metadata(path)
    if wheel_version != version:
        errors.append(f"{path.name}: metadata version {wheel_version} != rnnfast/_version.py {version}")
    runtime = sorted(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requires if "extra ==" not in r)
    if runtime != ["numpy", "scipy", "threadpoolctl"]:
        errors.append(f"{path.name}: runtime dependencies {runtime}, expected numpy, scipy, threadpoolctl")
    missing_extras = {"torch", "plot", "progress", "test", "bench", "mpi"} - set(extras)
    if missing_extras:
        errors.append(f"{path.name}: extras missing: {sorted(missing_extras)}")
    return errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, required=True, help="the source tree the sdist was built from")
    ap.add_argument("--sdist", type=Path, required=True)
    ap.add_argument("--wheel", type=Path, required=True, help="the wheel as built, before repair")
    ap.add_argument("--repaired", type=Path, help="the wheel after auditwheel repair")
    args = ap.parse_args(argv)
    ns: dict[str, str] = {}
    exec((args.source / "rnnfast" / "_version.py").read_text(), ns)
    version = ns["__version__"]
    errors = check_sdist(args.sdist, args.source)
    sdist = sdist_names(args.sdist)
    errors += check_wheel(args.wheel, sdist, version, repaired=False)
    if args.repaired:
        errors += check_wheel(args.repaired, sdist, version, repaired=True)
    for e in errors:
        print(f"check_dist: {e}", file=sys.stderr)
    if not errors:
        checked = [p.name for p in (args.sdist, args.wheel, args.repaired) if p]
        print(f"check_dist: OK ({', '.join(checked)})")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
