"""Build of crnn's Cython + OpenMP kernels.

Environment switches (all optional):

CRNN_OPENMP=0      build without OpenMP (kernels then run single-threaded).
CRNN_NATIVE=1      add -march=native (faster on the build machine, not portable:
                   never use it for wheels that ship).
CRNN_BOUNDSCHECK=1 debug build for hunting memory errors: Cython
                   bounds/wraparound/initialized checks on, -O1 -g, and the
                   kernels fill their workspace with NaN before each call, so a
                   read of memory no kernel wrote poisons the results.
"""
import os
import shlex
import shutil
import sys
import tempfile
import textwrap
import warnings

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

import numpy
from Cython.Build import cythonize


def _env_flag(name, default="0"):
    return os.environ.get(name, default).strip().lower() not in ("", "0", "false", "no", "off")


DEBUG = _env_flag("CRNN_BOUNDSCHECK")
NATIVE = _env_flag("CRNN_NATIVE")
WANT_OPENMP = _env_flag("CRNN_OPENMP", "1")

# crnn._kernel_hooks: test-only entry points into the kernels (src/_kernel_hooks.pyx);
# it ships with the others because the suite also runs against installed wheels
MODULES = ["_kernels", "_step", "_optim", "_openmp", "_smoothing", "_conv", "_kernel_hooks"]


def _try_compile(compiler, cflags, ldflags):
    """Compile and link a tiny OpenMP program with the build's own compiler."""
    code = textwrap.dedent(
        """
        #include <omp.h>
        int main(void) {
            int n = 0;
            #pragma omp parallel reduction(+:n)
            n += 1;
            return n > 0 ? 0 : 1;
        }
        """
    )
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "omp_test.c")
        with open(src, "w") as f:
            f.write(code)
        objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
        # the probe's link does not see LDFLAGS by itself (a sanitizer build
        # compiles the probe with -fsanitize from CFLAGS and must link it so)
        compiler.link_executable(objs, "omp_test", output_dir=tmp,
                                 extra_postargs=ldflags + shlex.split(os.environ.get("LDFLAGS", "")))
        return True
    except Exception:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    def build_extensions(self):
        ctype = self.compiler.compiler_type
        if ctype == "msvc":
            cflags, omp_c, omp_l = ["/O2"], ["/openmp"], []
        else:
            cflags = ["-O1", "-g"] if DEBUG else ["-O3"]
            cflags += ["-fno-math-errno", "-Wno-unused-function"]
            if NATIVE:
                cflags.append("-march=native")
            if sys.platform == "darwin":
                omp_c, omp_l = ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
            else:
                omp_c, omp_l = ["-fopenmp"], ["-fopenmp"]
        use_omp = False
        if WANT_OPENMP:
            use_omp = _try_compile(self.compiler, omp_c, omp_l)
            if not use_omp:
                warnings.warn(
                    "crnn: the compiler does not support OpenMP; building the "
                    "kernels single-threaded (n_jobs will have no effect)."
                )
        for ext in self.extensions:
            ext.extra_compile_args = cflags + (omp_c if use_omp else [])
            ext.extra_link_args = omp_l if use_omp else []
            if DEBUG:
                ext.define_macros = list(ext.define_macros or []) + [("CRNN_DEBUG", "1")]
        super().build_extensions()


directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "nonecheck": DEBUG,
    "embedsignature": True,
}

extensions = [
    Extension(f"crnn.{m}", [f"src/{m}.pyx"], include_dirs=["src", numpy.get_include()],
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")])
    for m in MODULES
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=directives, include_path=["src"]),
    cmdclass={"build_ext": BuildExt},
)
