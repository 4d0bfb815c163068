"""The random generator: Philox4x32 blocks, per-element draws, uniform and normal floats.

Every function follows docs/contract.md sections 1-3 and equals its pure-NumPy twin in
fastdrop.reference bit for bit, whatever the thread count, the CPU's SIMD level or the
device.  Each is its docstring and one call of the router (`fastdrop._core.route`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._core import parse
from ._core.route import Spec, call

__all__ = ["philox4x32", "random_bits", "uniform", "standard_normal"]

ShapeLike = Any  # int or sequence of ints

_PHILOX = Spec("philox4x32", parse.philox4x32, ("counter", "key"), convert=False)
_RANDOM_BITS = Spec("random_bits", parse.random_bits)
_UNIFORM = Spec("uniform", parse.uniform)
_STANDARD_NORMAL = Spec("standard_normal", parse.standard_normal)


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
        The output blocks, in the broadcast shape of counter and key. The words are read
        with NumPy, so CPU inputs of any framework give a NumPy array; CUDA arrays are
        computed on their GPU and give an array of their framework there.

    Raises
    ------
    TypeError
        counter or key is not uint32, or rounds is not an integer.
    ValueError
        A last axis that is not 4 (counter) or 2 (key), leading axes that do not
        broadcast, or rounds outside [0, 16].

    Examples
    --------
    The Random123 known-answer test (zero counter, zero key):

    >>> import numpy as np, fastdrop
    >>> fastdrop.philox4x32(np.zeros(4, np.uint32), np.zeros(2, np.uint32))
    array([1713891541, 3781805453, 3159862348, 2600524760], dtype=uint32)
    """
    return call(_PHILOX, dict(counter=counter, key=key, rounds=rounds, n_threads=n_threads))


def random_bits(shape: ShapeLike, *, seed: int, stream: int = 0, bits: int = 32,
                offset: int = 0, out: np.ndarray | None = None,
                n_threads: int | None = None, device: Any = None):
    """Per-element random draws of a (seed, stream) stream.

    Element i (C order over `shape`) gets draw ``offset + i``: for ``bits=32`` word
    ``offset + i`` of the stream; for ``bits=16`` the low (even index) or high (odd index)
    half of word ``(offset + i) // 2``; for ``bits=8`` byte ``(offset + i) % 4`` of word
    ``(offset + i) // 4``, least significant first.

    Parameters
    ----------
    shape : int or tuple of ints
        Output shape.
    seed, stream : int
        Unsigned 64-bit integers: the Philox key and the stream's counter words.
    bits : {32, 16, 8}
        Bits per draw; the result is uint32, uint16 or uint8.
    offset : int, optional
        Index of the first draw (a block of a larger logical array starts there).
        ``offset + size`` must be at most 2**64.
    out : numpy.ndarray, optional
        C-contiguous array of the result's shape and dtype to write into.
    n_threads : int, optional
        Threads to use; None means OMP_NUM_THREADS, else all cores.  Never changes the result.
    device : optional
        None or "cpu": a NumPy array. "cuda", "cuda:N", a GPU index or a CUDA array: drawn
        on that GPU (the CUDA array's framework and stream; a Numba device array
        otherwise), bit-identical to the CPU.

    Returns
    -------
    numpy.ndarray of uint32, uint16 or uint8
        `out` itself when given; on the GPU, an array of the `device` array's framework
        (or of `out`'s).

    Raises
    ------
    TypeError
        A shape, seed, stream, bits or offset that is not an integer (or a sequence of
        them), or an `out` that is not a NumPy array (on the CPU) or has the wrong dtype.
    ValueError
        A negative dimension, seed or stream outside [0, 2**64 - 1], bits not 8, 16 or 32,
        ``offset + size`` past 2**64, or an `out` of the wrong shape or not C-contiguous.
    ImportError
        A GPU `device` without numba-cuda (``pip install fastdrop[cuda]``).

    Examples
    --------
    >>> import fastdrop
    >>> fastdrop.random_bits(4, seed=42)
    array([2632642643, 2012563771,  314527917, 1463989207], dtype=uint32)
    >>> fastdrop.random_bits(2, seed=42, offset=2)       # the same stream, from draw 2
    array([ 314527917, 1463989207], dtype=uint32)
    >>> fastdrop.random_bits(4, seed=42, bits=16)
    array([61523, 40170, 18747, 30709], dtype=uint16)
    """
    return call(_RANDOM_BITS, dict(shape=shape, seed=seed, stream=stream, bits=bits, offset=offset,
                             out=out, n_threads=n_threads, device=device))


def uniform(shape: ShapeLike, *, seed: int, stream: int = 0, dtype: Any = np.float32,
            offset: int = 0, out: np.ndarray | None = None,
            n_threads: int | None = None, device: Any = None):
    """Uniform floats in [0, 1) from a (seed, stream) stream.

    float32: element i is ``(w >> 8) * 2**-24`` with w = word ``offset + i``.
    float64: element i is ``(((hi << 32) | lo) >> 11) * 2**-53`` with lo, hi = words
    ``2 * (offset + i)`` and ``2 * (offset + i) + 1``.  Both are exact: every value is a
    multiple of 2**-24 (2**-53) and 1.0 is never returned.

    Parameters
    ----------
    shape : int or tuple of ints
        Output shape.
    seed, stream : int
        Unsigned 64-bit integers.
    dtype : {numpy.float32, numpy.float64}
        The result's dtype (float64 takes two words per element).
    offset : int, optional
        Index of the first element (2**64 elements at most for float32, 2**63 for float64).
    out : numpy.ndarray, optional
        C-contiguous array of the result's shape and dtype to write into.
    n_threads : int, optional
        Threads to use; None means OMP_NUM_THREADS, else all cores.
    device : optional
        As in `random_bits`: None or "cpu" for NumPy, else a GPU.

    Returns
    -------
    numpy.ndarray of the requested dtype
        `out` itself when given; on the GPU, an array of the `device` array's framework
        (or of `out`'s).

    Raises
    ------
    TypeError, ValueError
        As `random_bits`; a dtype other than float32 or float64 is a TypeError.
    ImportError
        A GPU `device` without numba-cuda (``pip install fastdrop[cuda]``).

    Examples
    --------
    >>> import numpy as np, fastdrop
    >>> fastdrop.uniform(3, seed=42)
    array([0.61295986, 0.4685865 , 0.0732317 ], dtype=float32)
    >>> fastdrop.uniform(3, seed=42, dtype=np.float64)
    array([0.4685865..., 0.3408615..., 0.3270633...])
    """
    return call(_UNIFORM, dict(shape=shape, seed=seed, stream=stream, dtype=dtype, offset=offset,
                             out=out, n_threads=n_threads, device=device))


def standard_normal(shape: ShapeLike, *, seed: int, stream: int = 0,
                    dtype: Any = np.float64, offset: int = 0, out: np.ndarray | None = None,
                    n_threads: int | None = None, device: Any = None):
    """Standard normal deviates from a (seed, stream) stream, one 32-bit word each.

    Element i is ``Phi^-1((w + 1/2) / 2**32)`` with w = word ``offset + i``, computed by
    Wichura's AS241 in float64 with only correctly rounded operations (fastdrop's own
    logarithm, no libm), so it is bit-identical on every backend; float32 rounds that once.
    Values lie in [-6.338, 6.338].  This is the noise of `gaussian_dropout`.

    Parameters
    ----------
    shape : int or tuple of ints
        Output shape.
    seed, stream : int
        Unsigned 64-bit integers.
    dtype : {numpy.float64, numpy.float32}
        The result's dtype.
    offset : int, optional
        Index of the first element.
    out : numpy.ndarray, optional
        C-contiguous array of the result's shape and dtype to write into.
    n_threads : int, optional
        Threads to use; None means OMP_NUM_THREADS, else all cores.
    device : optional
        As in `random_bits`: None or "cpu" for NumPy, else a GPU.

    Returns
    -------
    numpy.ndarray of the requested dtype
        `out` itself when given; on the GPU, an array of the `device` array's framework
        (or of `out`'s).

    Raises
    ------
    TypeError, ValueError
        As `uniform`.
    ImportError
        A GPU `device` without numba-cuda (``pip install fastdrop[cuda]``).

    Examples
    --------
    >>> import numpy as np, fastdrop
    >>> fastdrop.standard_normal(3, seed=1)
    array([1.2279..., 1.2518..., 0.2165...])
    >>> fastdrop.standard_normal(3, seed=1, dtype=np.float32)
    array([1.2279..., 1.2518..., 0.2165...], dtype=float32)
    """
    return call(_STANDARD_NORMAL, dict(shape=shape, seed=seed, stream=stream, dtype=dtype, offset=offset,
                             out=out, n_threads=n_threads, device=device))
