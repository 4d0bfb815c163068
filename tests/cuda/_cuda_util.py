"""Helpers of the GPU tests: availability, host <-> device, layouts."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _helpers import BFLOAT16  # noqa: E402

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def require_cuda():
    """Skip the calling test module unless numba-cuda is installed and there is a GPU or
    the simulator is on."""
    try:
        from numba import cuda
    except ImportError:
        pytest.skip("numba-cuda is not installed (pip install fastdrop[cuda])",
                    allow_module_level=True)
    if not SIMULATOR:
        try:
            ok = cuda.is_available()
        except Exception:  # a broken driver is as good as none
            ok = False
        if not ok:
            pytest.skip("no CUDA GPU (set NUMBA_ENABLE_CUDASIM=1 to use the simulator)",
                        allow_module_level=True)
    return cuda, GpuBackend()


class GpuBackend:
    """The public functions run by the GPU backend alone (fastdrop._core.route.on_backend:
    the same parse and checks as the public API, no routing), and is_cuda_array."""

    def __init__(self):
        import fastdrop  # noqa: F401  (registers every public function's spec)
        from fastdrop._cuda import is_cuda_array
        self.is_cuda_array = is_cuda_array

    def __getattr__(self, name):
        from fastdrop._core.route import on_backend
        fn = on_backend(name, "cuda")
        setattr(self, name, fn)
        return fn


def to_dev(a):
    """A NumPy array on the device, any dtype (bfloat16 travels as uint16 bits)."""
    from numba import cuda
    a = np.asarray(a)
    a = a if a.flags.c_contiguous else a.copy()   # (ascontiguousarray makes 0-d 1-d)
    if a.dtype == BFLOAT16:
        return cuda.to_device(a.view(np.uint16)).view(BFLOAT16)
    return cuda.to_device(a)


def host(d):
    """A device array's values as a NumPy array."""
    if d is None:
        return None
    return np.asarray(d.copy_to_host())


def dev_layouts(x):
    """The same logical array on the device in several memory layouts."""
    from numba import cuda
    out = {"C": to_dev(x)}
    if x.ndim >= 1:
        out["F"] = _to_dev_any(np.asfortranarray(x)) if x.ndim >= 2 else out["C"]
        out["negative"] = to_dev(np.flip(x, 0).copy())[::-1]
        big = np.zeros(tuple(2 * s for s in x.shape), x.dtype)
        big[tuple(slice(None, None, 2) for _ in x.shape)] = x
        out["strided"] = to_dev(big)[tuple(slice(None, None, 2) for _ in x.shape)]
    if x.ndim >= 2:
        t = to_dev(np.ascontiguousarray(np.swapaxes(x, 0, 1)))
        axes = (1, 0) + tuple(range(2, x.ndim))
        out["transposed"] = t.transpose(axes)
    del cuda
    return out


def _to_dev_any(a):
    from numba import cuda
    if a.dtype == BFLOAT16:
        return cuda.to_device(a.view(np.uint16)).view(BFLOAT16)
    return cuda.to_device(a)
