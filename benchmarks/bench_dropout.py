"""asv: fastdrop's dropout kernels, time_* and peakmem_* over size x dtype (x p x bits).

time_* write into preallocated outputs (the kernel alone); peakmem_* allocate as a user's
call does (peak resident memory of the process, the inputs of setup included).
"""
import numpy as np

import fastdrop

from .common import DTYPES, P, SEED, SIZES, Timed, array, dtype_of, need, need_bits


class DropoutMask(Timed):
    params = (SIZES, ["packed", "bool"])
    param_names = ["n", "format"]

    def setup(self, n, fmt):
        self.f = need(fastdrop, "dropout_mask")
        self.packed = fmt == "packed"
        m = self.f((n,), P, seed=SEED, packed=self.packed)
        expected = (n + 7) // 8 if self.packed else n
        assert m.size == expected

    def time_dropout_mask(self, n, fmt):
        self.f((n,), P, seed=SEED, packed=self.packed)

    def peakmem_dropout_mask(self, n, fmt):
        self.f((n,), P, seed=SEED, packed=self.packed)


class Dropout(Timed):
    """Forward (with and without the packed mask) and backward (from the mask, and
    regenerated from the seed)."""
    params = (SIZES, DTYPES)
    param_names = ["n", "dtype"]

    def setup(self, n, dtype):
        dt = dtype_of(dtype)
        self.dropout = need(fastdrop, "dropout")
        self.backward = need(fastdrop, "dropout_backward")
        self.x = array(n, dt)
        self.g = array(n, dt, 0.25)
        self.y = array(n, dt, 0.0)
        self.dx = array(n, dt, 0.0)
        _, self.mask = self.dropout(self.x, P, seed=SEED, return_mask=True)

    def time_forward(self, n, dtype):
        self.dropout(self.x, P, seed=SEED, out=self.y)

    def time_forward_mask(self, n, dtype):
        self.dropout(self.x, P, seed=SEED, return_mask=True, out=self.y)

    def time_backward_mask(self, n, dtype):
        self.backward(self.g, P, mask=self.mask, out=self.dx)

    def time_backward_seed(self, n, dtype):
        self.backward(self.g, P, seed=SEED, out=self.dx)

    def peakmem_forward_mask(self, n, dtype):
        self.dropout(self.x, P, seed=SEED, return_mask=True)


class DropoutP(Timed):
    """The drop probability and the draw width, float32, 2^22 elements."""
    params = ([0.1, 0.5, 0.9], [8, 16, 32])
    param_names = ["p", "bits"]
    n = 2**22

    def setup(self, p, bits):
        self.dropout = need(fastdrop, "dropout")
        need_bits(bits)
        self.x = array(self.n, np.float32)
        self.y = array(self.n, np.float32, 0.0)

    def time_forward_mask(self, p, bits):
        self.dropout(self.x, p, seed=SEED, bits=bits, return_mask=True, out=self.y)


class BiasDropoutAdd(Timed):
    """residual + dropout(x + bias), x of shape (n / 1024, 1024)."""
    params = (SIZES, DTYPES)
    param_names = ["n", "dtype"]

    def setup(self, n, dtype):
        dt = dtype_of(dtype)
        self.f = need(fastdrop, "bias_dropout_add")
        shape = (n // 1024, 1024)
        self.x = array(n, dt).reshape(shape)
        self.r = array(n, dt, -0.5).reshape(shape)
        self.b = array(1024, dt, 0.125)
        self.y = array(n, dt, 0.0).reshape(shape)

    def time_bias_dropout_add(self, n, dtype):
        self.f(self.x, self.b, self.r, P, seed=SEED, out=self.y)

    def peakmem_bias_dropout_add(self, n, dtype):
        self.f(self.x, self.b, self.r, P, seed=SEED)


class AlphaDropout(Timed):
    params = (SIZES, DTYPES)
    param_names = ["n", "dtype"]

    def setup(self, n, dtype):
        dt = dtype_of(dtype)
        self.f = need(fastdrop, "alpha_dropout")
        self.x = array(n, dt)
        self.y = array(n, dt, 0.0)

    def time_alpha_dropout(self, n, dtype):
        self.f(self.x, P, seed=SEED, out=self.y)

    def peakmem_alpha_dropout(self, n, dtype):
        self.f(self.x, P, seed=SEED)


class GaussianDropout(Timed):
    """Skipped at commits without fastdrop.gaussian_dropout."""
    params = (SIZES, DTYPES)
    param_names = ["n", "dtype"]

    def setup(self, n, dtype):
        dt = dtype_of(dtype)
        self.f = need(fastdrop, "gaussian_dropout")
        self.x = array(n, dt)
        self.y = array(n, dt, 0.0)
        try:
            self.f(self.x[:16], P, seed=SEED)
        except TypeError as e:  # an early signature: not this benchmark's
            raise NotImplementedError(f"gaussian_dropout signature: {e}") from None

    def time_gaussian_dropout(self, n, dtype):
        self.f(self.x, P, seed=SEED, out=self.y)

    def peakmem_gaussian_dropout(self, n, dtype):
        self.f(self.x, P, seed=SEED)
