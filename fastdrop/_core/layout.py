"""Memory layout helpers shared by the backends."""
from __future__ import annotations

__all__ = ["coalesce"]


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
