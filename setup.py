"""Build of rnnfast's compiled kernels.

Environment switches:
  RNNFAST_REQUIRE_OPENMP=1  fail the build when the compiler has no OpenMP (CI sets it);
                            otherwise such a build succeeds with one thread and says so.
  RNNFAST_DEBUG=1           compile the kernels with bounds checking and without -O3, for debugging.

Each build also writes rnnfast/_build_info.py beside the compiled module (into the build directory, or into
the source tree for an in-place or editable build; it is git-ignored): the compiler, its flags and whether
OpenMP is on, for rnnfast.show_config(). Package metadata lives in pyproject.toml.
"""
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import Cython
import numpy as np
import scipy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

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
    # The build itself adds the environment's CPPFLAGS/CFLAGS/LDFLAGS, so the check does too: on macOS they
    # carry Homebrew's keg-only libomp (-I.../libomp/include, -L.../libomp/lib), as pyproject.toml's
    # [tool.cibuildwheel.macos] environment sets them.
    env_cflags = shlex.split(os.environ.get("CPPFLAGS", "")) + shlex.split(os.environ.get("CFLAGS", ""))
    env_ldflags = shlex.split(os.environ.get("LDFLAGS", ""))
    src = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "omp_check.c")
        with open(path, "w") as f:
            f.write(src)
        for cflags, lflags in candidates:
            cmd = cc + env_cflags + cflags + [path, "-o", os.path.join(tmp, "omp_check")] + env_ldflags + lflags
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
    # -fopenmp-simd keeps the `omp simd` loops vectorised even without the OpenMP runtime; -fno-math-errno lets
    # sqrt vectorise (rnnfast_optim.h): the kernels never read errno, and no result changes. -fno-trapping-math
    # lets GCC compute both sides of a select (the clamps of rf_expf), without which the AVX2 and baseline clones
    # of every pointwise pass stayed scalar (only AVX-512's masks vectorised them): the kernels never read the
    # floating-point exception flags, and no result changes.
    extra_compile = ["-O0" if DEBUG else "-O3", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math",
                     "-Wno-unused-function"]
    extra_compile += omp_compile
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



def _compiler_version(command):
    """First line that `command --version` prints (gcc, clang), or what MSVC's cl prints with no argument."""
    for args in ([command[0], "--version"], [command[0]]):
        try:
            res = subprocess.run(args, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        for line in (res.stdout + res.stderr).splitlines():
            if line.strip():
                return line.strip()
    return command[0]


class build_ext_with_info(build_ext):
    """build_ext that also writes rnnfast/_build_info.py beside the compiled module."""

    INFO = os.path.join("rnnfast", "_build_info.py")

    def run(self):
        super().run()  # builds into build_lib and, for --inplace / editable, copies into the source tree
        built = os.path.join(self.build_lib, self.INFO)
        self._write_info(built)
        if self.inplace:
            package_dir = self.get_finalized_command("build_py").get_package_dir("rnnfast")
            self.copy_file(built, os.path.join(package_dir, os.path.basename(self.INFO)), level=self.verbose)

    def _write_info(self, path):
        cc = self.compiler
        command = getattr(cc, "compiler_so", None) or [getattr(cc, "cc", None) or cc.compiler_type]
        info = {
            "compiler": _compiler_version(command),
            "compiler_type": cc.compiler_type,
            "compiler_command": " ".join(command),
            "extra_compile_args": extra_compile,
            "extra_link_args": omp_link,
            "openmp_compile_args": omp_compile,
            "openmp": bool(omp_compile),
            "debug": DEBUG,
            "cython_version": Cython.__version__,
            "numpy_version": np.__version__,
            "scipy_version": scipy.__version__,
            "python_version": sysconfig.get_python_version(),
            "platform": sysconfig.get_platform(),
        }
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write('"""How this rnnfast was compiled: written by setup.py, read by rnnfast.show_config()."""\n')
            for key, value in info.items():
                f.write(f"{key} = {value!r}\n")

    def get_outputs(self):
        outputs = super().get_outputs()
        if not self.inplace:
            outputs.append(os.path.join(self.build_lib, self.INFO))
        return outputs

    def get_output_mapping(self):
        mapping = super().get_output_mapping()
        if self.inplace:
            package_dir = self.get_finalized_command("build_py").get_package_dir("rnnfast")
            mapping[os.path.join(self.build_lib, self.INFO)] = os.path.join(package_dir, os.path.basename(self.INFO))
        return mapping


setup(
    ext_modules=cythonize(extensions, include_path=["csrc"], compiler_directives=COMPILER_DIRECTIVES),
    cmdclass={"build_ext": build_ext_with_info},
)
