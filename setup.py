"""Build of rnnfast's compiled kernels.

Environment switches:
  RNNFAST_REQUIRE_OPENMP=1  fail the build when the compiler has no OpenMP (CI sets it);
                            otherwise such a build succeeds with one thread and says so.
  RNNFAST_DEBUG=1           compile the kernels with bounds checking and without -O3, for debugging.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("RNNFAST_DEBUG", "0") not in ("", "0")
REQUIRE_OPENMP = os.environ.get("RNNFAST_REQUIRE_OPENMP", "0") not in ("", "0")

# The one place for Cython compiler directives.
COMPILER_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "nonecheck": False,
    "embedsignature": True,
}


def _openmp_flags():
    """(compile, link) flags for OpenMP if a test program builds with them, else (None, None)."""
    if sys.platform == "win32":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    cc = cc.split()
    if sys.platform == "win32" or shutil.which(cc[0]) is None:
        return candidates[0] if sys.platform == "win32" else (None, None)
    src = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "omp_check.c")
        with open(path, "w") as f:
            f.write(src)
        for cflags, lflags in candidates:
            cmd = cc + cflags + [path, "-o", os.path.join(tmp, "omp_check")] + lflags
            if subprocess.run(cmd, capture_output=True).returncode == 0:
                return cflags, lflags
    return None, None


omp_compile, omp_link = _openmp_flags()
if omp_compile is None:
    if REQUIRE_OPENMP:
        sys.exit("rnnfast: RNNFAST_REQUIRE_OPENMP is set but the compiler has no OpenMP support")
    print("rnnfast: WARNING: no OpenMP support found; building the kernels single-threaded", file=sys.stderr)
    omp_compile, omp_link = [], []

if sys.platform == "win32":
    extra_compile = ["/O2"] + omp_compile
else:
    # -fopenmp-simd keeps the `omp simd` loops vectorised even without the OpenMP runtime.
    extra_compile = ["-O0" if DEBUG else "-O3", "-fopenmp-simd", "-Wno-unused-function"] + omp_compile
    if DEBUG:
        extra_compile.append("-g")

extensions = [
    Extension(
        "rnnfast._recurrent",
        ["csrc/recurrent.pyx"],
        include_dirs=["csrc", np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
        extra_compile_args=extra_compile,
        extra_link_args=omp_link,
    ),
]

setup(
    ext_modules=cythonize(extensions, include_path=["csrc"], compiler_directives=COMPILER_DIRECTIVES),
)
