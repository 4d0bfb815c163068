"""Checks of the scalar arguments of the public API, declared once.

Every check raises TypeError (wrong kind of object) or ValueError (right kind, bad
value), names the argument, and returns the normalised value.  None of them touches an
array's memory: `parse` runs all of a call's checks before any kernel writes anything.
"""
from __future__ import annotations

import math
import numbers
import operator
from typing import Any

import numpy as np

from . import entropy

__all__ = [
    "UINT64_MAX", "MAX_THREADS", "as_int", "check_uint64", "check_seed", "check_bits",
    "check_shape", "check_span", "check_n_threads", "check_bool", "check_choice", "check_p",
    "check_mode", "check_mask_format", "check_noise_shape", "check_noise_spec",
    "check_placement",
]

UINT64_MAX = (1 << 64) - 1
MAX_THREADS = 2**31 - 1  # OpenMP takes a C int


def as_int(value: Any, name: str) -> int:
    """An integer argument: Python or NumPy integers; bool, floats and others are refused."""
    if type(value) is int:  # the common case first (bool is a subclass, not int itself)
        return value
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, not bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None


def check_uint64(value: Any, name: str) -> int:
    """An unsigned 64-bit integer (seed, stream, offset)."""
    if type(value) is int and 0 <= value <= UINT64_MAX:
        return value
    v = as_int(value, name)
    if not 0 <= v <= UINT64_MAX:
        raise ValueError(f"{name} must be in [0, 2**64 - 1], got {v}")
    return v


def check_seed(seed: Any, required: bool = False) -> int:
    """An unsigned 64-bit seed; None draws 64 fresh bits (unless `required`): from a
    generator seeded with the operating system's entropy (fastdrop._core.entropy)."""
    if seed is None:
        if required:
            raise ValueError("seed is required: give the forward call's seed and stream")
        return entropy.randbits(64)
    return check_uint64(seed, "seed")


def check_bits(bits: Any) -> int:
    """Bits per draw: 16 (the default), 32, or 8 (opt-in: half the Philox work of 16,
    p resolved to multiples of 1/256)."""
    b = as_int(bits, "bits")
    if b not in (8, 16, 32):
        raise ValueError(f"bits must be 8, 16 or 32, got {b}")
    return b


def check_shape(shape: Any, name: str = "shape") -> tuple[int, ...]:
    """A shape: a non-negative integer or a sequence of them."""
    if type(shape) is int and shape >= 0:
        return (shape,)
    if type(shape) is tuple and all(type(d) is int and d >= 0 for d in shape):
        return shape
    if isinstance(shape, (str, bytes, dict, set, frozenset)):  # unordered or not ints
        raise TypeError(f"{name} must be an integer or a sequence of integers, "
                        f"got {type(shape).__name__}")
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


def check_n_threads(n_threads: Any) -> int | None:
    """None (the backend's default: OMP_NUM_THREADS, else all cores) or an int >= 1."""
    if n_threads is None:
        return None
    n = as_int(n_threads, "n_threads")
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"n_threads must be in [1, 2**31 - 1] or None, got {n}")
    return n


def check_bool(value: Any, name: str) -> bool:
    """A flag: Python or NumPy bool only (no truthy strings, numbers or arrays)."""
    if value is True or value is False:
        return value
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """One of a few strings."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_p(p: Any) -> float:
    """A real drop probability in [0, 1]."""
    if type(p) is float and 0.0 <= p <= 1.0:  # (NaN fails the comparison)
        return p
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real):
        raise TypeError(f"p must be a real number, got {type(p).__name__}")
    try:
        pf = float(p)
    except OverflowError:  # an int past float's range (10**400)
        text = repr(p)
        raise ValueError(f"p must be in [0, 1], got {text[:20]}... ({len(text)} digits)"
                         ) from None
    if math.isnan(pf) or not 0.0 <= pf <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    return pf


def check_mode(mode: Any) -> str:
    """Dropout's scaling: "inverted" (while training) or "classic" (at inference)."""
    return check_choice(mode, "mode", ("inverted", "classic"))


def check_mask_format(mask_format: Any) -> str:
    """A returned mask's format: "packed" (uint8 bits) or "bool"."""
    return check_choice(mask_format, "mask_format", ("packed", "bool"))


def check_noise_shape(noise_shape: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Keras noise_shape: same length as x.shape, each entry x's or 1 (None: x's)."""
    if noise_shape is None:
        return shape
    check_noise_spec(noise_shape)
    if len(noise_shape) != len(shape):
        raise ValueError(f"noise_shape {tuple(noise_shape)} must have one entry per axis "
                         f"of x {shape}")
    dims = tuple(s if d is None else as_int(d, "noise_shape") for d, s in zip(noise_shape, shape))
    for d, s in zip(dims, shape):
        if d != s and d != 1:
            raise ValueError(f"noise_shape {dims} does not broadcast to x's shape {shape}")
    return dims


def check_noise_spec(noise_shape: Any) -> tuple | None:
    """A noise shape on its own (before any array is seen, as a layer's constructor gets
    it): None, or a sequence of ints >= 0 and None entries."""
    if noise_shape is None:
        return None
    if (isinstance(noise_shape, (str, bytes, dict, set, frozenset))
            or not hasattr(noise_shape, "__len__")):
        raise TypeError(f"noise_shape must be a tuple of ints, got {noise_shape!r}")
    dims = tuple(None if d is None else as_int(d, "noise_shape") for d in noise_shape)
    if any(d is not None and d < 0 for d in dims):
        raise ValueError(f"noise_shape must not have negative entries, got {dims}")
    return dims


def check_placement(block: Any, shape: tuple[int, ...]
                    ) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """The public ``block=(origin, global_shape)`` argument: where an array of `shape`
    sits in a larger C-ordered logical array.  Returns (origin, global_shape), or None."""
    if block is None:
        return None
    if isinstance(block, (str, bytes)) or not hasattr(block, "__len__") or len(block) != 2:
        raise TypeError("block must be a pair (origin, global_shape) of tuples of ints")
    origin = check_shape(block[0], "block origin")
    gshape = check_shape(block[1], "block global_shape")
    if not len(origin) == len(gshape) == len(shape):
        raise ValueError(f"block origin {origin} and global_shape {gshape} must have one "
                         f"entry per axis of the array, shape {shape}")
    for o, n, g in zip(origin, shape, gshape):
        if o + n > g:
            raise ValueError(f"block at origin {origin} of shape {shape} does not fit in "
                             f"global_shape {gshape}")
    if math.prod(gshape) > 2**64:
        raise ValueError(f"block global_shape {gshape} has more than 2**64 elements")
    return origin, gshape
