"""Build of fastdrop's Cython extensions.

Portable by default: -O3 only, no -march=native, no -ffast-math.  The Philox kernel picks
AVX2 at run time (fastdrop/_cpu/src/philox.h).  Environment variables:

FASTDROP_OPENMP=0     build without OpenMP (every loop then runs on one thread)
FASTDROP_NATIVE=1     opt in to -march=native (a binary for this CPU only)
"""
import os
import shutil
import sys
import tempfile
import textwrap

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext

OPENMP_PROBE = textwrap.dedent(
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


def _env_flag(name, default):
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    return value not in ("0", "false", "no", "off")


class build_ext(_build_ext):
    """build_ext that adds optimisation flags and OpenMP when the compiler supports it."""

    def _openmp_flags(self):
        if not _env_flag("FASTDROP_OPENMP", True):
            return [], []
        if self.compiler.compiler_type == "msvc":
            return ["/openmp"], []
        if sys.platform == "darwin":
            candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
        else:
            candidates = [(["-fopenmp"], ["-fopenmp"])]
        for cflags, ldflags in candidates:
            if self._compiles_and_links(OPENMP_PROBE, cflags, ldflags):
                return cflags, ldflags
        print("fastdrop: the compiler has no OpenMP; building single-threaded kernels")
        return [], []

    def _compiles_and_links(self, source, cflags, ldflags):
        tmp = tempfile.mkdtemp(prefix="fastdrop-probe-")
        try:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write(source)
            objects = self.compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
            self.compiler.link_executable(objects, "probe", output_dir=tmp, extra_postargs=ldflags)
            return True
        except Exception:  # any compile or link failure means "not supported"
            return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def build_extensions(self):
        if self.compiler.compiler_type == "msvc":
            opt = ["/O2"]
        else:
            # no contraction of a*b+c into FMA: results must equal the reference bit for bit;
            # -fno-math-errno changes no result (sqrt never sets errno on our arguments) but
            # lets sqrt vectorise
            opt = ["-O3", "-fno-strict-aliasing", "-ffp-contract=off", "-fno-math-errno"]
            if _env_flag("FASTDROP_NATIVE", False):
                opt.append("-march=native")
        omp_c, omp_l = self._openmp_flags()
        for ext in self.extensions:
            ext.extra_compile_args = opt + omp_c + list(ext.extra_compile_args)
            ext.extra_link_args = omp_l + list(ext.extra_link_args)
        super().build_extensions()


HEADERS = ["philox.h", "fd_openmp.h", "fd_half.h", "fd_stream.h", "fd_fused.h", "fd_normal.h"]


def extension(name, extra_headers=(), libraries=()):
    """fastdrop._cpu.<name> from fastdrop/_cpu/<name>.pyx; the C headers are in _cpu/src."""
    return Extension(
        f"fastdrop._cpu.{name}",
        [f"fastdrop/_cpu/{name}.pyx"],
        include_dirs=["fastdrop/_cpu/src"],
        depends=[f"fastdrop/_cpu/src/{h}" for h in HEADERS + list(extra_headers)],
        libraries=list(libraries),
    )


# the XLA FFI handlers of fastdrop.jax: C against XLA's vendored C API header (no JAX, no
# C++ at build time); they run the _dropout driver through _dropout.pxd
XLA_HEADERS = ["xla_ffi_c_api.h", "xla_ffi_fastdrop.h"]
# _torch_lean finds torch's stable C ABI and the default generator's exported functions in
# the loaded libtorch_cpu (dlopen, dlsym, and the generator's pthread mutex: libdl and
# libpthread before glibc 2.34)
DL = ["dl", "pthread"] if sys.platform.startswith("linux") else []


setup(
    ext_modules=cythonize(
        [extension("_philox"), extension("_dropout"), extension("_openmp_helpers"),
         extension("_xla", XLA_HEADERS), extension("_torch_lean", ["fd_dl.h", "fd_torch_gen.h"],
                   libraries=DL)],
        compiler_directives={"language_level": "3"},
    ),
    cmdclass={"build_ext": build_ext},
)
