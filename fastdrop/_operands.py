"""Operand preparation for the dropout kernels: dtype policy, layouts, kernel calls."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _dropout

Op = _dropout.Op
KS = _dropout.KeepSource

SUPPORTED = ("float16", "bfloat16", "float32", "float64")
_NAMES: dict[np.dtype, str] = {}  # dtype -> supported name (dtype.name costs microseconds)


def dtype_name(dtype: np.dtype) -> str | None:
    """The supported dtype's name, or None; cached per dtype object."""
    name = _NAMES.get(dtype)
    if name is None and dtype.name in SUPPORTED:
        name = _NAMES[dtype] = dtype.name
    return name


def float_array(x: Any, name: str) -> np.ndarray:
    """x as a NumPy array (zero-copy where the buffer allows) of a supported float dtype."""
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be a floating-point array, got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # objects NumPy cannot view
        raise TypeError(f"{name} must be a floating-point array: {exc}") from None
    if dtype_name(arr.dtype) is None:
        raise TypeError(f"{name} must have dtype float16, bfloat16, float32 or float64, "
                        f"got {arr.dtype}")
    if not arr.flags.aligned:  # rare: views into byte buffers; the kernels need alignment
        arr = arr.copy()
    return arr


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """float32 for the half types, else the dtype itself (docs/contract.md section 4)."""
    return np.dtype(np.float32) if dtype.itemsize == 2 else dtype


def check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype,
              inputs: dict[str, np.ndarray], may_alias: tuple[str, ...] = ()) -> np.ndarray:
    """A writeable, aligned ndarray of this shape and dtype, that overlaps no input
    except exactly (same data, same strides) one of those named in may_alias."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"out must have dtype {dtype}, got {out.dtype}")
    if out.shape != shape:
        raise ValueError(f"out must have shape {shape}, got {out.shape}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    if not out.flags.aligned:
        raise ValueError("out must be aligned")
    for name, arr in inputs.items():
        if arr is None or not np.may_share_memory(out, arr):
            continue
        same = (name in may_alias and arr.shape == out.shape and
                arr.__array_interface__["data"][0] == out.__array_interface__["data"][0]
                and arr.strides == out.strides)
        if not same:
            if name in may_alias:
                raise ValueError(f"out overlaps {name} partially (out may be {name} itself, "
                                 f"for in-place use, but not another view of its memory)")
            raise ValueError(f"out must not overlap {name}")
    return out


_address = _dropout.address  # the data pointer of an ndarray (None for None)


def coalesce(shape: tuple[int, ...], strides: list[tuple[int, ...]]):
    """Drop length-1 axes and merge axes that are contiguous for every operand."""
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


def run(op: int, ks: int, shape: tuple[int, ...], dtype: np.dtype, *,
        y: np.ndarray | None = None, x: np.ndarray | None = None,
        b: np.ndarray | None = None, r: np.ndarray | None = None,
        f: np.ndarray | None = None, packed_in: np.ndarray | None = None,
        packed_out: np.ndarray | None = None, bool_out: np.ndarray | None = None,
        block: tuple[tuple[int, ...], int] | None = None, **scalars: Any) -> bool:
    """Call the kernel driver on operands broadcast to `shape` (logical C order).

    block: ``(strides, base)``: the operands are a block of a larger logical array, and
    element idx draws ``base + sum(idx * strides)`` (`block_map`) instead of its position.
    Returns True when the driver took its fused path (for the tests).
    """
    if math.prod(shape) == 0:
        return False
    names = ["y", "x", "b", "r", "f"]
    arrays = [y, x, b, r, f]
    present = [(nm, a if a.shape == shape else np.broadcast_to(a, shape))
               for nm, a in zip(names, arrays) if a is not None]
    strides = [a.strides for _, a in present]
    if block is not None:
        strides.append(tuple(block[0]))
        scalars["offset"] = block[1]
    cshape, cstrides = coalesce(shape, strides)
    kwargs = {nm: _address(a) for nm, a in present}
    kwargs.update({f"s{nm}": st for (nm, _), st in zip(present, cstrides)})
    if block is not None:
        kwargs["sg"] = cstrides[-1]
    return _dropout.run(int(op), int(ks), dtype_name(dtype), cshape,
                 packed_in=_address(packed_in), packed_out=_address(packed_out),
                 bool_out=_address(bool_out), **kwargs, **scalars)


def block_map(shape: tuple[int, ...], origin: tuple[int, ...],
              global_shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """(strides, base) placing a block of `shape` at `origin` of a C-ordered logical array of
    `global_shape`: element idx of the block is global element ``base + sum(idx * strides)``."""
    strides, acc = [], 1
    for n in reversed(global_shape):
        strides.append(acc)
        acc *= n
    strides.reverse()
    return tuple(strides), sum(o * s for o, s in zip(origin, strides))
