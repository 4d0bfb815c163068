"""fastdrop's CPU backend: Cython kernels over C headers (``src/``), OpenMP threads and
run-time SIMD dispatch.

`backend` runs the validated requests of `fastdrop._core` on NumPy arrays; ``_philox``
(Philox4x32-10 and per-element draws), ``_dropout`` (the dropout driver) and
``_openmp_helpers`` are the compiled kernels.
"""
from __future__ import annotations

import os

# OpenMP's wait policy.  libgomp's default lets the threads of a finished parallel region
# spin before they sleep; on a loaded machine (other processes, a Dask worker's threads,
# hundreds of runnable threads) those spinning threads take the CPUs that the threads
# doing work need, and a 2-thread call was measured up to 22x slower than a 1-thread one
# (benchmarks/loaded.py, docs/benchmarks.md).  Waiting threads that sleep at once
# (PASSIVE) cost a wake-up per parallel region instead.  libgomp reads OMP_WAIT_POLICY
# once, when it is loaded: so unless the user chose (OMP_WAIT_POLICY or GOMP_SPINCOUNT
# set), it is PASSIVE while fastdrop's extensions load libgomp, and the environment is
# restored at once (child processes and other libraries see it unchanged).
# FASTDROP_WAIT_POLICY=default keeps libgomp's own default.

WAIT_POLICY: str = "passive"  # "passive", "user" (the user's setting), "default", or
#                               "preloaded" (libgomp was already loaded: its setting holds)


def _libgomp_loaded() -> bool:
    try:
        with open("/proc/self/maps") as f:
            return any("libgomp.so" in line for line in f)
    except OSError:  # not Linux: we cannot tell; assume it was not
        return False


def _load_extensions() -> None:
    global WAIT_POLICY
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        WAIT_POLICY = "user"
    elif os.environ.get("FASTDROP_WAIT_POLICY", "").strip().lower() == "default":
        WAIT_POLICY = "default"
    elif _libgomp_loaded():
        WAIT_POLICY = "preloaded"
    if WAIT_POLICY != "passive":
        from . import _openmp_helpers  # noqa: F401
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        from . import _openmp_helpers  # noqa: F401  (loads libgomp)
    finally:
        os.environ.pop("OMP_WAIT_POLICY", None)


_load_extensions()
