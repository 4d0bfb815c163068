"""asv: GPU benchmarks (Numba CUDA). Skipped (NotImplementedError in setup) without numba,
without a CUDA GPU, or at commits without the fastdrop._cuda backend."""
import numpy as np

from .common import P, SEED, Timed, dtype_of


def _cuda_or_skip():
    try:
        from numba import cuda
    except ImportError:
        raise NotImplementedError("numba is not installed") from None
    try:
        available = cuda.is_available()
    except Exception:  # a broken driver counts as no GPU
        available = False
    if not available:
        raise NotImplementedError("no CUDA GPU")
    return cuda


def _backend_or_skip():
    """fastdrop's GPU backend (fastdrop._cuda, b0ac6e0 on): the public functions dispatch
    on CUDA arrays. Skipped at older commits and without numba-cuda."""
    try:
        from fastdrop import _cuda
        getattr(_cuda, "backend", None) or _cuda.dispatch  # imports numba-cuda (dispatch:
        # the backend's name before 275b8b2)
    except (ImportError, AttributeError) as e:
        raise NotImplementedError(f"fastdrop has no usable CUDA backend here: {e}") from None
    return _cuda


class CudaCopy(Timed):
    """The GPU's memory-bound limit: a device-to-device copy (n itemsizes read and
    written, as a dropout pass without its mask)."""
    params = ([2**18, 2**24], ["float32", "float64"])
    param_names = ["n", "dtype"]

    def setup(self, n, dtype):
        cuda = _cuda_or_skip()
        self.cuda = cuda
        self.x = cuda.to_device(np.full(n, 1.5, dtype))
        self.y = cuda.device_array_like(self.x)

    def time_copy(self, n, dtype):
        self.y.copy_to_device(self.x)
        self.cuda.synchronize()


class CudaDropout(Timed):
    """fastdrop's GPU dropout (the public API on device arrays): forward with the packed
    mask and backward from it."""
    params = ([2**18, 2**24], ["float32", "float64"])
    param_names = ["n", "dtype"]

    def setup(self, n, dtype):
        cuda = _cuda_or_skip()
        _backend_or_skip()
        import fastdrop

        dt = dtype_of(dtype)
        self.cuda, self.fd = cuda, fastdrop
        self.x = cuda.to_device(np.full(n, 1.5, dt))
        self.y = cuda.device_array_like(self.x)
        self.dx = cuda.device_array_like(self.x)
        _, self.mask = fastdrop.dropout(self.x, P, seed=SEED, return_mask=True, out=self.y)
        cuda.synchronize()

    def time_forward_mask(self, n, dtype):
        self.fd.dropout(self.x, P, seed=SEED, return_mask=True, out=self.y)
        self.cuda.synchronize()

    def time_backward_mask(self, n, dtype):
        self.fd.dropout_backward(self.x, P, mask=self.mask, out=self.dx)
        self.cuda.synchronize()
