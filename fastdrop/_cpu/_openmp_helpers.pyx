# cython: language_level=3
"""OpenMP facts of this build (OpenMP is optional: without it, everything runs on one thread)."""

cdef extern from "fd_openmp.h" nogil:
    int fd_openmp_enabled()
    int fd_omp_max_threads()


def openmp_enabled():
    """Whether the extension modules were built with OpenMP.

    Returns
    -------
    bool
        False: every kernel runs on one thread.

    Examples
    --------
    >>> import fastdrop
    >>> isinstance(fastdrop.openmp_enabled(), bool)
    True
    """
    return bool(fd_openmp_enabled())


def omp_max_threads():
    """omp_get_max_threads(): the default thread count of the kernels.

    Returns
    -------
    int
        OMP_NUM_THREADS, or what threadpoolctl set, else all cores (1 without OpenMP).

    Examples
    --------
    >>> import fastdrop
    >>> fastdrop.omp_max_threads() >= 1
    True
    """
    return fd_omp_max_threads()
