"""The random generator: Philox4x32 blocks, per-element draws, uniform and normal floats.

Every function follows docs/contract.md sections 1-3 and equals its pure-NumPy twin in
fastdrop.reference bit for bit, whatever the thread count or the CPU's SIMD level.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import _philox
from ._dispatch import on_cuda_array, on_cuda_device
from ._operands import KS, Op, check_out, run
from ._validation import (as_int, check_bits, check_n_threads, check_shape, check_span,
                          check_uint64, shape_size)

__all__ = ["philox4x32", "random_bits", "uniform", "standard_normal"]

ShapeLike = Any  # int or sequence of ints


def _uint32_array(value: Any, name: str, last: int) -> np.ndarray:
    """An array of uint32 words whose last axis has length `last`.

    NumPy arrays (and objects exporting __array__) must already be uint32: no silent cast.
    Python sequences of ints are accepted when every value fits in 32 bits.
    """
    if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        arr = np.asarray(value)
        if arr.dtype != np.uint32:
            raise TypeError(f"{name} must have dtype uint32, got {arr.dtype}")
    else:
        try:
            raw = np.asarray(value, dtype=object)
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be an array of uint32 words: {exc}") from None
        if arr.dtype.kind not in "iu" and arr.size:
            raise TypeError(f"{name} must hold integers, got {arr.dtype}")
        if arr.size and any(not 0 <= int(v) <= 0xFFFFFFFF for v in raw.ravel()):
            raise ValueError(f"{name} values must be in [0, 2**32 - 1]")
        arr = arr.astype(np.uint32)
    if arr.ndim == 0 or arr.shape[-1] != last:
        raise ValueError(f"{name} must have shape (..., {last}), got {arr.shape}")
    return arr


@on_cuda_array
def philox4x32(counter: Any, key: Any, rounds: int = 10, *, n_threads: int | None = None
               ) -> np.ndarray:
    """Philox4x32 blocks of counters under keys.

    Parameters
    ----------
    counter : array_like of uint32, shape (..., 4)
        Counter words (c0, c1, c2, c3).
    key : array_like of uint32, shape (2,) or (..., 2)
        Key words (k0, k1); broadcast against the counters' leading axes.
    rounds : int, optional
        Number of rounds, 0 to 16 (10 is Philox4x32-10, the generator of every kernel).
    n_threads : int, optional
        Threads to use; None means OMP_NUM_THREADS, else all cores.

    Returns
    -------
    numpy.ndarray of uint32, shape (..., 4)
        The output blocks, in the broadcast shape of counter and key.
    """
    ctr = _uint32_array(counter, "counter", 4)
    k = _uint32_array(key, "key", 2)
    r = as_int(rounds, "rounds")
    if not 0 <= r <= 16:
        raise ValueError(f"rounds must be in [0, 16], got {r}")
    threads = check_n_threads(n_threads)
    try:
        batch = np.broadcast_shapes(ctr.shape[:-1], k.shape[:-1])
    except ValueError:
        raise ValueError(f"counter shape {ctr.shape} and key shape {k.shape} do not broadcast "
                         f"over their leading axes") from None
    ctr2 = np.ascontiguousarray(np.broadcast_to(ctr, batch + (4,))).reshape(-1, 4)
    key2 = np.broadcast_to(k, batch + (2,)).reshape(-1, 2)
    out = np.empty(ctr2.shape, dtype=np.uint32)
    _philox.philox4x32(ctr2, key2, out, r, threads)
    return out.reshape(batch + (4,))


def _float_dtype(dtype: Any) -> np.dtype:
    """float32 or float64, nothing else (no silent cast)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _check_out(out: Any, dims: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """`out` must be a writeable, aligned NumPy array of exactly this shape and dtype
    (no silent cast), and C-contiguous (no hidden copy)."""
    check_out(out, dims, dtype, {})
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    return out


@on_cuda_device
def random_bits(shape: ShapeLike, *, seed: int, stream: int = 0, bits: int = 32,
                offset: int = 0, out: np.ndarray | None = None,
                n_threads: int | None = None) -> np.ndarray:
    """Per-element random draws of a (seed, stream) stream.

    Element i (C order over `shape`) gets draw ``offset + i``: for ``bits=32`` word
    ``offset + i`` of the stream; for ``bits=16`` the low (even index) or high (odd index)
    half of word ``(offset + i) // 2``.

    Parameters
    ----------
    shape : int or tuple of ints
        Output shape.
    seed, stream : int
        Unsigned 64-bit integers: the Philox key and the stream's counter words.
    bits : {32, 16}
        Bits per draw; the result is uint32 or uint16.
    offset : int, optional
        Index of the first draw (a block of a larger logical array starts there).
        ``offset + size`` must be at most 2**64.
    out : numpy.ndarray, optional
        C-contiguous array of the result's shape and dtype to write into.
    n_threads : int, optional
        Threads to use; None means OMP_NUM_THREADS, else all cores.  Never changes the result.

    Returns
    -------
    numpy.ndarray of uint32 or uint16
        `out` when given.
    """
    dims = check_shape(shape)
    s = check_uint64(seed, "seed")
    st = check_uint64(stream, "stream")
    b = check_bits(bits)
    n = shape_size(dims)
    off = check_span(offset, n)
    threads = check_n_threads(n_threads)
    dt = np.dtype(np.uint32 if b == 32 else np.uint16)
    out = np.empty(dims, dtype=dt) if out is None else _check_out(out, dims, dt)
    _philox.fill_draws(s, st, off, b, out, threads)
    return out


@on_cuda_device
def uniform(shape: ShapeLike, *, seed: int, stream: int = 0, dtype: Any = np.float32,
            offset: int = 0, out: np.ndarray | None = None,
            n_threads: int | None = None) -> np.ndarray:
    """Uniform floats in [0, 1) from a (seed, stream) stream.

    float32: element i is ``(w >> 8) * 2**-24`` with w = word ``offset + i``.
    float64: element i is ``(((hi << 32) | lo) >> 11) * 2**-53`` with lo, hi = words
    ``2 * (offset + i)`` and ``2 * (offset + i) + 1``.  Both are exact: every value is a
    multiple of 2**-24 (2**-53) and 1.0 is never returned.

    Parameters
    ----------
    shape : int or tuple of ints
    seed, stream : int
        Unsigned 64-bit integers.
    dtype : {numpy.float32, numpy.float64}
    offset : int, optional
        Index of the first element (2**64 elements at most for float32, 2**63 for float64).
    out : numpy.ndarray, optional
        C-contiguous array of the result's shape and dtype to write into.
    n_threads : int, optional
        Threads to use; None means OMP_NUM_THREADS, else all cores.

    Returns
    -------
    numpy.ndarray of the requested dtype
    """
    dims = check_shape(shape)
    s = check_uint64(seed, "seed")
    st = check_uint64(stream, "stream")
    dt = _float_dtype(dtype)
    n = shape_size(dims)
    off = check_span(offset, n, 64 if dt.itemsize == 4 else 63)
    threads = check_n_threads(n_threads)
    out = np.empty(dims, dtype=dt) if out is None else _check_out(out, dims, dt)
    _philox.fill_uniform(s, st, off, out, threads)
    return out


@on_cuda_device
def standard_normal(shape: ShapeLike, *, seed: int, stream: int = 0,
                    dtype: Any = np.float64, offset: int = 0, out: np.ndarray | None = None,
                    n_threads: int | None = None) -> np.ndarray:
    """Standard normal deviates from a (seed, stream) stream, one 32-bit word each.

    Element i is ``Phi^-1((w + 1/2) / 2**32)`` with w = word ``offset + i``, computed by
    Wichura's AS241 in float64 with only correctly rounded operations (fastdrop's own
    logarithm, no libm), so it is bit-identical on every backend; float32 rounds that once.
    Values lie in [-6.338, 6.338].  This is the noise of `gaussian_dropout`.

    Parameters
    ----------
    shape : int or tuple of ints
    seed, stream : int
        Unsigned 64-bit integers.
    dtype : {numpy.float64, numpy.float32}
    offset : int, optional
        Index of the first element.
    out : numpy.ndarray, optional
        C-contiguous array of the result's shape and dtype to write into.
    n_threads : int, optional
        Threads to use; None means OMP_NUM_THREADS, else all cores.
    """
    dims = check_shape(shape)
    s = check_uint64(seed, "seed")
    st = check_uint64(stream, "stream")
    dt = _float_dtype(dtype)
    n = shape_size(dims)
    off = check_span(offset, n, 64)
    threads = check_n_threads(n_threads)
    out = np.empty(dims, dtype=dt) if out is None else _check_out(out, dims, dt)
    run(Op.OP_NORMAL, KS.KS_DRAWS, (n,), dt, y=out.reshape(-1), seed=s, stream=st,
        offset=off, bits=32, n_threads=threads)
    return out
