"""Explicitly rounded float arithmetic and bit casts for the CUDA kernels.

On hardware, NVVM contracts ``a * b + c`` into an FMA by default (numba passes its fma
options only with fastmath=True), which would break bit-identity with the CPU kernels
(built with -ffp-contract=off).  Every multiply, add, subtract, divide and square root
that feeds a result therefore goes through libdevice's ``*_rn`` intrinsics, which lower
to ``mul.rn`` / ``add.rn`` / ``div.rn`` / ``sqrt.rn`` PTX instructions; ptxas never fuses
instructions that carry an explicit rounding modifier.  libdevice has no ``dsub_rn``:
``a - b`` is ``dadd_rn(a, -b)`` (negation is exact, so the result is the same).

Under Numba's CUDA simulator the libdevice functions are empty stubs, so this module
gives NumPy-scalar twins instead (np.float32 / np.float64 arithmetic is IEEE round to
nearest even, each operation rounded once).
"""
from __future__ import annotations

import numpy as np

from ._env import SIMULATOR, cuda

__all__ = ["fmul", "fadd", "fsub", "dmul", "dadd", "dsub", "ddiv", "dsqrt",
           "f32_bits", "bits_f32", "f64_bits", "bits_f64"]

if SIMULATOR:
    _F32, _F64 = np.float32, np.float64

    def fmul(a, b):
        return _F32(a) * _F32(b)

    def fadd(a, b):
        return _F32(a) + _F32(b)

    def fsub(a, b):
        return _F32(a) - _F32(b)

    def dmul(a, b):
        return _F64(a) * _F64(b)

    def dadd(a, b):
        return _F64(a) + _F64(b)

    def dsub(a, b):
        return _F64(a) - _F64(b)

    def ddiv(a, b):
        return _F64(a) / _F64(b)

    def dsqrt(a):
        return np.sqrt(_F64(a))

    def f32_bits(x):
        """The IEEE bits of a float32, as a uint64 holding 32 bits."""
        return np.uint64(_F32(x).view(np.uint32))

    def bits_f32(u):
        return np.uint32(np.uint64(u) & np.uint64(0xFFFFFFFF)).view(np.float32)

    def f64_bits(x):
        return _F64(x).view(np.uint64)

    def bits_f64(u):
        return np.uint64(u).view(np.float64)

else:
    from numba.cuda import libdevice as _ld

    _M32 = np.uint64(0xFFFFFFFF)

    @cuda.jit(device=True)
    def fmul(a, b):
        return _ld.fmul_rn(np.float32(a), np.float32(b))

    @cuda.jit(device=True)
    def fadd(a, b):
        return _ld.fadd_rn(np.float32(a), np.float32(b))

    @cuda.jit(device=True)
    def fsub(a, b):
        return _ld.fsub_rn(np.float32(a), np.float32(b))

    @cuda.jit(device=True)
    def dmul(a, b):
        return _ld.dmul_rn(np.float64(a), np.float64(b))

    @cuda.jit(device=True)
    def dadd(a, b):
        return _ld.dadd_rn(np.float64(a), np.float64(b))

    @cuda.jit(device=True)
    def dsub(a, b):
        return _ld.dadd_rn(np.float64(a), -np.float64(b))

    @cuda.jit(device=True)
    def ddiv(a, b):
        return _ld.ddiv_rn(np.float64(a), np.float64(b))

    @cuda.jit(device=True)
    def dsqrt(a):
        return _ld.dsqrt_rn(np.float64(a))

    @cuda.jit(device=True)
    def f32_bits(x):
        return np.uint64(np.int64(_ld.float_as_int(np.float32(x)))) & _M32

    @cuda.jit(device=True)
    def bits_f32(u):
        return _ld.int_as_float(np.int32(np.uint64(u) & _M32))

    @cuda.jit(device=True)
    def f64_bits(x):
        return np.uint64(_ld.double_as_longlong(np.float64(x)))

    @cuda.jit(device=True)
    def bits_f64(u):
        return _ld.longlong_as_double(np.int64(u))
