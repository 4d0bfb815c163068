"""The CPU backend: runs `fastdrop._core` requests on NumPy arrays with the Cython kernels.

`POLICY` is how the CPU views and checks arrays while `fastdrop._core.parse` builds a
request (NumPy arrays, zero-copy; the dtype policy); `run` executes a request: it
allocates the outputs, broadcasts and coalesces the operands and calls the kernel driver
(``_dropout.run``) or the generator (``_philox``).  Nothing is validated here again.
"""
from __future__ import annotations

import math
import os
import sys
from typing import Any

import numpy as np

from .._core import entropy
from .._core.contract import FLOAT_DTYPES, DrawMap, compute_dtype_name, packed_size
from .._core.layout import coalesce, overlaps, self_overlapping
from .._core.ops import Keep, Op
from .._core.requests import (BiasBackwardRequest, DrawsRequest, DropoutRequest, PhiloxRequest,
                              UnpackRequest)
from .._core.threads import current_default
from . import _dropout, _openmp_helpers, _philox

__all__ = ["POLICY", "CpuArrays", "run", "run_kernel", "dtype_name", "FAST_PATHS"]

for _op in Op:  # the C enum of the driver must be the core's numbering
    assert int(getattr(_dropout.Op, "OP_" + _op.name)) == _op, _op
for _keep in (Keep.DRAWS, Keep.PACKED, Keep.FLAGS):
    assert int(getattr(_dropout.KeepSource, "KS_" + _keep.name)) == _keep, _keep

_NAMES: dict[np.dtype, str] = {}  # dtype -> its name (dtype.name costs microseconds)


def dtype_name(dtype: np.dtype) -> str:
    """dtype.name, cached per dtype object."""
    name = _NAMES.get(dtype)
    if name is None:
        name = _NAMES[dtype] = dtype.name
    return name


_compute: dict[np.dtype, np.dtype] = {}


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """float32 for the half types, else the dtype itself (docs/contract.md section 4)."""
    ct = _compute.get(dtype)
    if ct is None:
        ct = _compute[dtype] = (np.dtype(np.float32) if compute_dtype_name(dtype_name(dtype))
                                != dtype_name(dtype) else dtype)
    return ct


# ---- the array policy --------------------------------------------------------------------


def _refuse_masked(obj: Any, name: str) -> None:
    """A numpy.ma.MaskedArray is refused: viewing it as an ndarray (as the kernels read
    it) would silently lose its mask, and the result would be a plain array."""
    if isinstance(obj, np.ma.MaskedArray):
        raise TypeError(f"{name} is a numpy.ma.MaskedArray, whose mask fastdrop would lose: "
                        f"pass its data ({name}.data, or np.ma.getdata({name})) and "
                        f"reapply the mask to the result (np.ma.array(result, "
                        f"mask={name}.mask))")


class CpuArrays:
    """NumPy views of the caller's arrays (zero-copy where the buffer allows)."""

    @staticmethod
    def float_input(x: Any, name: str) -> np.ndarray:
        if isinstance(x, (str, bytes)):
            raise TypeError(f"{name} must be a floating-point array, got {type(x).__name__}")
        _refuse_masked(x, name)
        try:
            arr = np.asarray(x)
        except Exception as exc:  # objects NumPy cannot view
            raise TypeError(f"{name} must be a floating-point array: {exc}") from None
        if dtype_name(arr.dtype) not in FLOAT_DTYPES:
            raise TypeError(f"{name} must have dtype float16, bfloat16, float32 or float64, "
                            f"got {arr.dtype}")
        if not arr.dtype.isnative:  # the kernels read native words: no silent garbage
            raise TypeError(f"{name} has non-native byte order ({arr.dtype.str}); convert it "
                            f"first, e.g. {name}.astype({arr.dtype.name!r})")
        if not arr.flags.aligned:  # rare: views into byte buffers; the kernels need alignment
            arr = arr.copy()
        return arr

    @staticmethod
    def dtype(view: np.ndarray) -> str:
        return dtype_name(view.dtype)

    @staticmethod
    def shape(view: np.ndarray) -> tuple:
        return view.shape

    @staticmethod
    def mask_input(mask: Any) -> np.ndarray:
        _refuse_masked(mask, "mask")
        arr = mask if isinstance(mask, np.ndarray) else np.asarray(mask)
        if arr.dtype == np.uint8 and arr.ndim == 1 and not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)  # the kernels read packed bytes in a row
        return arr

    @staticmethod
    def out(out: Any, shape: tuple, dtype: str, inputs: dict, may_alias: tuple = ()
            ) -> np.ndarray:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
        if dtype_name(out.dtype) != dtype or not out.dtype.isnative:
            raise TypeError(f"out must have dtype {dtype} (native byte order), got "
                            f"{out.dtype.str if not out.dtype.isnative else out.dtype}")
        if out.shape != shape:
            raise ValueError(f"out must have shape {shape}, got {out.shape}")
        if not out.flags.writeable:
            raise ValueError("out is read-only")
        if not out.flags.aligned:
            raise ValueError("out must be aligned")
        if self_overlapping(out.shape, out.strides, out.itemsize):
            raise ValueError("out must not have elements that share memory (a broadcast or "
                             "sliding-window view writes many elements to one address)")
        for name, arr in inputs.items():
            if arr is None or not overlaps(out, arr):
                continue
            same = (name in may_alias and arr.shape == out.shape and
                    arr.__array_interface__["data"][0] == out.__array_interface__["data"][0]
                    and arr.strides == out.strides)
            if not same:
                if name in may_alias:
                    raise ValueError(f"out overlaps {name} partially (out may be {name} "
                                     f"itself, for in-place use, but not another view of "
                                     f"its memory)")
                raise ValueError(f"out must not overlap {name}")
        return out

    @classmethod
    def contiguous_out(cls, out: Any, shape: tuple, dtype: str) -> np.ndarray:
        cls.out(out, shape, dtype, {})
        if not out.flags.c_contiguous:
            raise ValueError("out must be C-contiguous")
        return out

    @staticmethod
    def mask_out(obj: Any, shape: tuple, dtype: str, inputs: dict) -> np.ndarray:
        """The returned mask's buffer (`ArrayPolicy.mask_out`): the kernels write its bytes
        in a row, so it is C-contiguous, of exactly this shape and dtype."""
        if not isinstance(obj, np.ndarray):
            raise TypeError(f"mask_out must be a numpy.ndarray, got {type(obj).__name__}")
        what = "packed" if dtype == "uint8" else "bool"
        if dtype_name(obj.dtype) != dtype:
            raise TypeError(f"mask_out must have dtype {dtype} for a {what} mask, got "
                            f"{obj.dtype}")
        if obj.shape != shape:
            raise ValueError(f"mask_out must have shape {shape} for this {what} mask, got "
                             f"{obj.shape}")
        if not obj.flags.c_contiguous:
            raise ValueError("mask_out must be C-contiguous")
        if not obj.flags.writeable:
            raise ValueError("mask_out is read-only")
        for name, arr in inputs.items():
            if arr is not None and overlaps(obj, arr):
                raise ValueError(f"mask_out must not overlap {name}")
        return obj

    @staticmethod
    def words(value: Any, name: str, last: int) -> np.ndarray:
        """NumPy arrays (and objects exporting __array__) must already be uint32: no
        silent cast.  Python sequences of ints are accepted when every value fits."""
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

    @staticmethod
    def device(device: Any) -> None:
        return None  # the router sends every non-CPU device to the GPU backend


POLICY = CpuArrays()


# ---- the kernel driver ---------------------------------------------------------------------


_address = _dropout.address  # the data pointer of an ndarray (None for None)
_OPERANDS = ("y", "x", "b", "r", "f")


def run_kernel(op: int, keep: int, shape: tuple[int, ...], dtype: np.dtype, *,
               y: np.ndarray | None = None, x: np.ndarray | None = None,
               b: np.ndarray | None = None, r: np.ndarray | None = None,
               f: np.ndarray | None = None, packed_in: np.ndarray | None = None,
               packed_out: np.ndarray | None = None, bool_out: np.ndarray | None = None,
               draws: DrawMap | None = None, **scalars: Any) -> bool:
    """Call the kernel driver on operands broadcast to `shape` (logical C order).

    draws: the operands are a block of a larger logical array, and element idx draws
    ``draws.base + sum(idx * draws.strides)`` instead of its position.  Returns True when
    the driver took its fused path (for the tests).
    """
    if math.prod(shape) == 0:
        return False
    present = [(nm, a if a.shape == shape else np.broadcast_to(a, shape))
               for nm, a in zip(_OPERANDS, (y, x, b, r, f)) if a is not None]
    strides = [a.strides for _, a in present]
    if draws is not None:
        strides.append(tuple(draws.strides))
        scalars["offset"] = draws.base
    cshape, cstrides = coalesce(shape, strides)
    kwargs = {nm: _address(a) for nm, a in present}
    kwargs.update({f"s{nm}": st for (nm, _), st in zip(present, cstrides)})
    if draws is not None:
        kwargs["sg"] = cstrides[-1]
    return _dropout.run(int(op), int(keep), dtype_name(dtype), cshape,
                        packed_in=_address(packed_in), packed_out=_address(packed_out),
                        bool_out=_address(bool_out), **kwargs, **scalars)


# ---- the thread count -----------------------------------------------------------------------
#
# Results never depend on it (docs/contract.md), so it is capped freely:
# - at the CPUs this process may run on (its affinity mask, and a cgroup CPU quota): a
#   huge n_threads no longer asks libgomp for thousands of threads (which failed, or
#   crashed in GOMP_parallel);
# - n_threads=None takes the context's default first (`fastdrop._core.threads`: 1 for the
#   chunks of fastdrop.dask), then OMP_NUM_THREADS (threadpoolctl's limit), else all;
# - at 1 in a process forked after a multi-threaded kernel ran: libgomp's thread pool does
#   not survive fork, and a parallel region in the child waits forever for threads that
#   are not there.  One thread runs no parallel region, so the child always finishes.


def cgroup_cpus(root: str = "/sys/fs/cgroup") -> int | None:
    """The CPUs a cgroup CPU quota allows (rounded up), or None without a quota: cgroup v2
    ``cpu.max`` ("quota period", or "max period"), else v1 ``cpu.cfs_quota_us`` over
    ``cpu.cfs_period_us`` (-1: none).  Containers set these, not the affinity mask."""
    def read(name):
        try:
            with open(os.path.join(root, name)) as f:
                return f.read().split()
        except (OSError, ValueError):
            return None
    v2 = read("cpu.max")
    if v2 and len(v2) == 2 and v2[0] != "max":
        quota, period = int(v2[0]), int(v2[1])
    else:
        q, p = read("cpu/cpu.cfs_quota_us"), read("cpu/cpu.cfs_period_us")
        if not (q and p) or int(q[0]) <= 0:
            return None
        quota, period = int(q[0]), int(p[0])
    return max(1, -(-quota // period)) if period > 0 else None


def _cpus() -> int:
    try:
        n = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity API (macOS, Windows)
        n = max(1, os.cpu_count() or 1)
    quota = cgroup_cpus()
    return min(n, quota) if quota else n


_state = {"cpus": _cpus(), "parallel_ran": False, "single": False}


def _parallel_ran() -> bool:
    """Whether this process ran an OpenMP parallel region: the NumPy-API kernels, or the
    XLA FFI handlers of fastdrop.jax (fastdrop._cpu._xla, when it was loaded)."""
    xla = sys.modules.get("fastdrop._cpu._xla")
    return _state["parallel_ran"] or (xla is not None and xla.parallel_ran())


def _after_fork_in_child() -> None:
    _state["single"] = _parallel_ran()
    _state["cpus"] = _cpus()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _threads(n: int | None) -> int:
    """The threads a kernel runs on: n (None: OMP_NUM_THREADS, else all cores), capped as
    described above."""
    if _state["single"]:
        return 1
    if n is None:
        n = current_default()  # a context's default (1 inside fastdrop.dask), or None
    t = max(1, _openmp_helpers.omp_max_threads()) if n is None else n
    if t > _state["cpus"]:
        t = _state["cpus"]
    if t > 1:
        _state["parallel_ran"] = True
    return t


# (through the module's name, so that tests may watch _threads on both paths; _bias_grads
# through a lambda too: it is defined below)
_dropout.set_hooks(lambda n: _threads(n), entropy.randbits,
                   lambda g, dx_c, has_bias: _bias_grads(g, dx_c, has_bias))

# The common calls of the dropout family, checked and run in Cython without a request
# (fastdrop._core.route.fast_path): each returns None for any other call.
FAST_PATHS = {"dropout": _dropout.fast_dropout,
              "dropout_backward": _dropout.fast_dropout_backward,
              "dropout_ptr": _dropout.fast_dropout_ptr,
              "dropout_backward_ptr": _dropout.fast_dropout_backward_ptr,
              "dropout_mask": _dropout.fast_dropout_mask,
              "bias_dropout_add": _dropout.fast_bias_dropout_add,
              "bias_dropout_add_backward": _dropout.fast_bias_dropout_add_backward,
              "alpha_dropout": _dropout.fast_alpha_dropout,
              "alpha_dropout_backward": _dropout.fast_alpha_dropout_backward,
              "gaussian_dropout": _dropout.fast_gaussian_dropout,
              "gaussian_dropout_backward": _dropout.fast_gaussian_dropout_backward}


def thread_policy() -> dict:
    """The thread caps in force: {"cpus": usable CPUs, "single": forced to one thread
    (a forked child), "wait_policy": how OpenMP's idle threads wait (fastdrop._cpu:
    "passive" by default, "user", "default" or "preloaded")}."""
    from . import WAIT_POLICY
    return {"cpus": _state["cpus"], "single": _state["single"], "wait_policy": WAIT_POLICY}


# ---- requests ----------------------------------------------------------------------------


def _mask_outputs(req: DropoutRequest):
    """(packed, bool) buffers of the returned mask: the caller's mask_out, else new."""
    if req.mask_format is None:
        return None, None
    mo = req.mask_out
    if req.mask_format == "packed":
        return (np.empty(packed_size(math.prod(req.noise_shape)), np.uint8) if mo is None
                else mo), None
    return None, np.empty(req.noise_shape, np.bool_) if mo is None else mo


def _unpack(mask: np.ndarray, shape: tuple) -> np.ndarray:
    n = math.prod(shape)
    return np.unpackbits(mask, count=n, bitorder="little").view(np.bool_).reshape(shape)


def _dropout_family(req: DropoutRequest):
    x = req.x
    if req.identity:  # inference: x itself (the caller's ndarray), or copied into out
        if req.out is None:
            y = req.source if isinstance(req.source, np.ndarray) else x
        else:
            y = req.out
            if y is not x:
                np.copyto(y, x)
        return (y, None) if req.returns_pair else y
    y = np.empty_like(x) if req.out is None else req.out
    if req.keep == Keep.ALL:  # classic dropout at inference: x * P(keep)
        ct = compute_dtype(x.dtype)
        np.copyto(y, (x.astype(ct) * ct.type(req.scale)).astype(x.dtype))
        return (y, None) if req.returns_pair else y
    common = dict(y=y, x=x, n_threads=_threads(req.n_threads), bits=req.bits, scale=req.scale)
    if req.op == Op.ALPHA:
        common["a"], common["c"], common["d"] = req.alpha
    elif req.op == Op.BDA:
        common["b"], common["r"] = req.bias, req.residual
    packed, flags = _mask_outputs(req)
    full = req.noise_shape == x.shape
    if req.keep == Keep.DRAWS:
        drawn = dict(seed=req.seed, stream=req.stream, t=req.threshold)
        if full:
            run_kernel(req.op, Keep.DRAWS, x.shape, x.dtype, packed_out=packed,
                       bool_out=flags, draws=req.noise_draws, **drawn, **common)
        else:  # the keep flags of the noise shape, broadcast over x
            flags = np.empty(req.noise_shape, np.bool_) if flags is None else flags
            mshape = (flags.size,) if req.noise_draws is None else req.noise_shape
            run_kernel(Op.MASK, Keep.DRAWS, mshape, np.dtype(np.float32), bool_out=flags,
                       packed_out=packed, n_threads=common["n_threads"], bits=req.bits,
                       draws=req.noise_draws, **drawn)
            run_kernel(req.op, Keep.FLAGS, x.shape, x.dtype, f=flags, **common)
    elif req.keep == Keep.PACKED and full:
        run_kernel(req.op, Keep.PACKED, x.shape, x.dtype, packed_in=req.mask, **common)
    else:
        f = req.mask if req.keep == Keep.FLAGS else _unpack(req.mask, req.noise_shape)
        run_kernel(req.op, Keep.FLAGS, x.shape, x.dtype, f=f, **common)
    if req.returns_pair:
        return y, (packed if req.mask_format == "packed" else flags)
    return y


def _bias_backward(req: BiasBackwardRequest):
    g = req.dropout.x
    ct = compute_dtype(g.dtype)
    # in the compute precision, so that dbias sums the unrounded products (half types)
    dx_c = _dropout_family(req.dropout._replace(x=g.astype(ct, copy=False)))
    return _bias_grads(g, dx_c, req.has_bias)


def _bias_grads(g: np.ndarray, dx_c: np.ndarray, has_bias: bool):
    """(dx, dbias, dresidual) of bias_dropout_add_backward from dropout's gradient dx_c of
    grad g in the compute precision (this path's and the fast path's, _dropout)."""
    dbias = None
    if has_bias:
        # row by row in C order whatever the layout (a Fortran-order sum would add in
        # another order and change float64's last bits); an empty last axis gives ()
        ncols = g.shape[-1]
        rows = dx_c.astype(np.float64, order="C").reshape(-1, ncols) if ncols else None
        dbias = (rows.sum(axis=0) if ncols else np.zeros(0)).astype(g.dtype)
    dx = dx_c if dx_c.dtype == g.dtype else dx_c.astype(g.dtype)
    return dx, dbias, g


def _draws(req: DrawsRequest):
    threads = _threads(req.n_threads)
    dims = req.shape
    if req.kind == "mask":
        n = math.prod(dims)
        packed = req.dtype == "uint8"
        packed_out = np.empty(packed_size(n), np.uint8) if packed else None
        bool_out = None if packed else np.empty(dims, np.bool_)
        run_kernel(Op.MASK, Keep.DRAWS, (n,) if req.draws is None else dims,
                   np.dtype(np.float32), packed_out=packed_out, bool_out=bool_out,
                   seed=req.seed, stream=req.stream, bits=req.bits, t=req.threshold,
                   offset=req.offset, n_threads=threads, draws=req.draws)
        return packed_out if packed else bool_out
    out = np.empty(dims, dtype=req.dtype) if req.out is None else req.out
    if req.kind == "bits":
        _philox.fill_draws(req.seed, req.stream, req.offset, req.bits, out, threads)
    elif req.kind == "uniform":
        _philox.fill_uniform(req.seed, req.stream, req.offset, out, threads)
    else:  # normal
        run_kernel(Op.NORMAL, Keep.DRAWS, (out.size,), out.dtype, y=out.reshape(-1),
                   seed=req.seed, stream=req.stream, offset=req.offset, bits=32,
                   n_threads=threads)
    return out


def _philox4x32(req: PhiloxRequest):
    ctr2 = np.ascontiguousarray(np.broadcast_to(req.counter, req.batch + (4,))).reshape(-1, 4)
    key2 = np.broadcast_to(req.key, req.batch + (2,)).reshape(-1, 2)
    out = np.empty(ctr2.shape, dtype=np.uint32)
    _philox.philox4x32(ctr2, key2, out, req.rounds, _threads(req.n_threads))
    return out.reshape(req.batch + (4,))


_RUNNERS = {DropoutRequest: _dropout_family, BiasBackwardRequest: _bias_backward,
            DrawsRequest: _draws, PhiloxRequest: _philox4x32,
            UnpackRequest: lambda req: _unpack(req.mask, req.shape)}


def run(request: Any) -> Any:
    """Execute a validated request; results are NumPy arrays."""
    return _RUNNERS[type(request)](request)
