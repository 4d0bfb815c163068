"""Memory layout helpers shared by the backends."""
from __future__ import annotations

import numpy as np

__all__ = ["coalesce", "overlaps", "self_overlapping", "address_view"]

# How hard np.shares_memory may work on one pair of operands before it gives up (and the
# pair counts as overlapping): enough for any layout NumPy's slicing makes.
_MAX_WORK = 10_000
_TooHardError = getattr(np, "exceptions", np).TooHardError


def coalesce(shape: tuple[int, ...], strides: list[tuple[int, ...]]):
    """Drop length-1 axes and merge axes that are contiguous for every operand: the
    fewest axes a kernel must walk (both backends walk the same ones)."""
    if len(shape) == 1 and shape[0] != 1:  # the common case: nothing to merge
        return shape, strides
    dims = [(n, [s[k] for s in strides]) for k, n in enumerate(shape) if n != 1]
    if not dims:
        return (1,), [(0,) for _ in strides]
    merged = [dims[0]]
    for n, st in dims[1:]:
        pn, pst = merged[-1]
        if all(ps == s * n for ps, s in zip(pst, st)):
            merged[-1] = (pn * n, st)
        else:
            merged.append((n, st))
    new_shape = tuple(n for n, _ in merged)
    new_strides = [tuple(st[i] for _, st in merged) for i in range(len(strides))]
    return new_shape, new_strides


def self_overlapping(shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int) -> bool:
    """True when two elements of this layout may share bytes (a broadcast view, or a
    sliding window of `as_strided`/`sliding_window_view`): a buffer the kernels must not
    write, since which write lands last would depend on the threads or the launch.

    Each axis, taken from the smallest stride up, must step past every element the smaller
    axes reach; the layouts this misses (interleaved, yet disjoint) count as overlapping."""
    dims = sorted((abs(s), n) for n, s in zip(shape, strides) if n > 1)
    if any(n == 0 for n in shape):
        return False
    extent = itemsize
    for s, n in dims:
        if s < extent:
            return True
        extent += s * (n - 1)
    return False


def overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays share a byte, exactly (not only their bounds): two column halves
    of one buffer, or a[0::2] and a[1::2], do not.  A pair too involved to decide counts as
    overlapping."""
    if not np.may_share_memory(a, b):
        return False
    try:
        return bool(np.shares_memory(a, b, max_work=_MAX_WORK))
    except _TooHardError:
        return True


class _Addresses:
    def __init__(self, ptr: int, shape: tuple, strides: tuple, itemsize: int):
        self.__array_interface__ = {"data": (ptr, True), "shape": tuple(shape),
                                    "strides": tuple(strides), "typestr": f"|V{itemsize}",
                                    "version": 3}


def address_view(ptr: int, shape: tuple, strides: tuple, itemsize: int) -> np.ndarray:
    """A read-only NumPy array over these addresses, for `overlaps` on device memory: NumPy
    only compares its pointers and strides, never reads it."""
    return np.asarray(_Addresses(ptr, shape, strides, itemsize))
