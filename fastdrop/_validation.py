"""Argument checks shared by the public API.

Every check raises TypeError (wrong kind of object) or ValueError (right kind, bad
value), names the argument, and happens before any kernel runs.
"""
from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from ._openmp_helpers import omp_max_threads

UINT64_MAX = (1 << 64) - 1


def as_int(value: Any, name: str) -> int:
    """An integer argument: Python or NumPy integers; bool, floats and others are refused."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, not bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None


def check_uint64(value: Any, name: str) -> int:
    """An unsigned 64-bit integer (seed, stream, offset)."""
    v = as_int(value, name)
    if not 0 <= v <= UINT64_MAX:
        raise ValueError(f"{name} must be in [0, 2**64 - 1], got {v}")
    return v


def check_bits(bits: Any) -> int:
    """Bits per draw: 16 or 32."""
    b = as_int(bits, "bits")
    if b not in (16, 32):
        raise ValueError(f"bits must be 16 or 32, got {b}")
    return b


def check_shape(shape: Any, name: str = "shape") -> tuple[int, ...]:
    """A shape: a non-negative integer or a sequence of them."""
    if isinstance(shape, (str, bytes)):
        raise TypeError(f"{name} must be an integer or a sequence of integers")
    try:
        dims = (as_int(shape, name),)
    except TypeError:
        try:
            dims = tuple(as_int(d, name) for d in shape)
        except TypeError as exc:
            if "must be an integer" in str(exc):
                raise TypeError(f"{name} must be an integer or a sequence of integers, "
                                f"got {shape!r}") from None
            raise TypeError(f"{name} must be an integer or a sequence of integers, "
                            f"got {type(shape).__name__}") from None
    if any(d < 0 for d in dims):
        raise ValueError(f"{name} must not have negative dimensions, got {dims}")
    return dims


def check_span(offset: Any, n: int, limit_log2: int = 64, name: str = "offset") -> int:
    """offset + n must stay within 2**limit_log2 indices (64-bit index arithmetic)."""
    off = check_uint64(offset, name)
    if off + n > (1 << limit_log2):
        raise ValueError(f"{name} + size must be at most 2**{limit_log2}, "
                         f"got {name}={off} and size={n}")
    return off


MAX_THREADS = 2**31 - 1  # OpenMP takes a C int


def check_n_threads(n_threads: Any) -> int:
    """None: OMP_NUM_THREADS (or what threadpoolctl set), else all cores; or an int >= 1."""
    if n_threads is None:
        return max(1, omp_max_threads())
    n = as_int(n_threads, "n_threads")
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"n_threads must be in [1, 2**31 - 1] or None, got {n}")
    return n


def check_bool(value: Any, name: str) -> bool:
    """A flag: Python or NumPy bool only (no truthy strings, numbers or arrays)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """One of a few strings."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def shape_size(shape: tuple[int, ...]) -> int:
    return math.prod(shape)
