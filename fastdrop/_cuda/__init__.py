"""fastdrop's GPU backend: Numba CUDA kernels, bit-identical to the CPU kernels.

Importing this package is cheap and never imports Numba: `is_cuda_array` only looks at
an object's attributes, so the public CPU API can call it on every input.  The kernels
and the runner of requests (`fastdrop._cuda.backend`, the GPU backend) live apart; it
imports numba-cuda (ImportError naming ``pip install fastdrop[cuda]`` when missing).

This package is isolated on purpose (numba-cuda is in maintenance mode): nothing outside
it imports Numba.
"""
from __future__ import annotations

__all__ = ["is_cuda_array", "backend", "INSTALL_HINT"]

INSTALL_HINT = ("fastdrop's GPU backend needs numba-cuda: pip install fastdrop[cuda] "
                "(or pip install numba-cuda)")

_DLPACK_CUDA = 2          # kDLCUDA
_DLPACK_CUDA_MANAGED = 13  # kDLCUDAManaged


def is_cuda_array(obj) -> bool:
    """True for a CUDA device array of any framework: an object with
    ``__cuda_array_interface__`` (Numba, CuPy, PyTorch, ...), a Numba (or Numba
    simulator) device array, or an object whose ``__dlpack_device__()`` is CUDA (2) or
    CUDA managed (13) memory.  NumPy arrays and Python objects give False quickly."""
    tp = type(obj)
    if tp.__module__ == "numpy" or tp in (int, float, bool, list, tuple, str, bytes):
        return False
    if getattr(obj, "__cuda_ndarray__", False):          # Numba (and its simulator)
        return True
    try:
        if hasattr(obj, "__cuda_array_interface__"):
            return True
    except Exception:  # torch raises for tensors that require grad: not hasattr-safe
        return True
    dev = getattr(obj, "__dlpack_device__", None)
    if dev is None:
        return False
    try:
        kind = int(dev()[0])
    except Exception:
        return False
    return kind in (_DLPACK_CUDA, _DLPACK_CUDA_MANAGED)


def __getattr__(name):
    if name == "backend":  # lazy: imports numba-cuda
        import importlib
        return importlib.import_module(__name__ + ".backend")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
