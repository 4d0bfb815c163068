"""docs/contract.md's numbers: thresholds, scales, alpha and gaussian constants, draw maps.

Pure functions of already validated arguments (see `args`), shared by the public API,
`parse` and both backends.
"""
from __future__ import annotations

import math
from typing import NamedTuple


__all__ = [
    "ALPHA_PRIME", "FLOAT_DTYPES", "threshold", "keep_probability", "inverted_scale",
    "alpha_constants", "gaussian_sigma", "compute_dtype_name", "packed_size", "DrawMap",
    "draw_map", "noise_draws",
]

ALPHA_PRIME = 1.7580993408473766  # SELU scale * alpha (Klambauer et al. 2017)
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def threshold(p: float, bits: int) -> int:
    """t = round_half_even(p * 2^bits), clamped to [0, 2^bits] (section 4).  Python's
    round of a float rounds half to even, as np.rint does."""
    return min(max(round(p * 2.0**bits), 0), 1 << bits)


def keep_probability(t: int, bits: int) -> float:
    """P(keep) = 1 - t / 2^bits."""
    return 1.0 - t / 2.0**bits


def inverted_scale(t: int, bits: int) -> float:
    """2^bits / (2^bits - t): 1 / P(keep) exactly; 0 when everything is dropped."""
    return 0.0 if t == 1 << bits else 2.0**bits / (2.0**bits - t)


def alpha_constants(t: int, bits: int) -> tuple[float, float, float]:
    """(a, c, d) of alpha dropout (section 6): kept ``x * a + c``, dropped ``d``."""
    q = t / 2.0**bits
    a = ((1.0 - q) * (1.0 + q * ALPHA_PRIME**2)) ** -0.5 if t < 1 << bits else 0.0
    return a, a * ALPHA_PRIME * q, -a * ALPHA_PRIME * (1.0 - q)


def gaussian_sigma(p: float) -> float:
    """sqrt(p / (1 - p)) for a checked p; ValueError at p = 1 (infinite variance)."""
    if p == 1.0:
        raise ValueError("p must be in [0, 1) for gaussian dropout (the noise's variance "
                         "p / (1 - p) is infinite at p = 1)")
    return math.sqrt(p / (1.0 - p))


def compute_dtype_name(name: str) -> str:
    """float32 for the half types, else the dtype itself (section 4)."""
    return "float32" if name in ("float16", "bfloat16") else name


def packed_size(n: int) -> int:
    """Bytes of a packed mask of n flags."""
    return (n + 7) // 8


class DrawMap(NamedTuple):
    """Which draw each element of an array takes: element idx draws
    ``base + sum(idx * strides)`` (the array is a block of a larger logical array)."""

    strides: tuple[int, ...]
    base: int


def draw_map(origin: tuple[int, ...], global_shape: tuple[int, ...]) -> DrawMap:
    """The draw map of a block at `origin` of a C-ordered array of `global_shape`."""
    strides, acc = [], 1
    for n in reversed(global_shape):
        strides.append(acc)
        acc *= n
    strides.reverse()
    return DrawMap(tuple(strides), sum(o * s for o, s in zip(origin, strides)))


def noise_draws(shape: tuple[int, ...], placement, global_noise: tuple[int, ...]):
    """The noise shape of a block of `shape` placed at ``placement = (origin,
    global_shape)`` whose global array has noise shape `global_noise`, and the draw map of
    that noise: the part of the global noise the block covers (the block's length where
    the global noise has the global length, a global axis of length 1 included, so an
    empty block there stays empty; 1 from 0 where the noise broadcasts)."""
    origin, gshape = placement
    noise = tuple(n if gn == gs else 1 for n, gn, gs in zip(shape, global_noise, gshape))
    norigin = tuple(o if gn == gs else 0 for o, gn, gs in zip(origin, global_noise, gshape))
    return noise, draw_map(norigin, global_noise)
