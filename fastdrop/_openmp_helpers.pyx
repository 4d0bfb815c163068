# cython: language_level=3
"""OpenMP facts of this build (OpenMP is optional: without it, everything runs on one thread)."""

cdef extern from "fd_openmp.h" nogil:
    int fd_openmp_enabled()
    int fd_omp_max_threads()


def openmp_enabled():
    """True when the extension modules were built with OpenMP."""
    return bool(fd_openmp_enabled())


def omp_max_threads():
    """omp_get_max_threads(): OMP_NUM_THREADS, or what threadpoolctl set, else all cores."""
    return fd_omp_max_threads()
