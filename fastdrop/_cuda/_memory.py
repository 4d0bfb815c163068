"""Zero-copy import of any framework's CUDA arrays, output allocation, layouts, streams.

An input becomes an `Operand`: its logical shape and dtype, its memory (pointer, byte
strides), the stream its producer named, and the framework it came from (so outputs are
allocated by the same framework and handed back as its own type).

Sources, in order: a Numba device array (real, or the simulator's); an object with
``__cuda_array_interface__`` (CuPy, PyTorch -- bfloat16 tensors, which PyTorch does not
export, are viewed as int16 first -- and others); an object with ``__dlpack__`` on a CUDA
device (read through cuda.core's StridedMemoryView, which numba-cuda depends on).

Layouts: the kernels read and write 1-D C-contiguous buffers.  A C-contiguous operand is
used in place (zero-copy).  Any other layout (Fortran order, negative or zero strides,
views with gaps) is first gathered into a C-order temporary by `k_gather`, and an output
of such a layout is computed into a temporary and scattered back by `k_scatter`: the mask
of an element depends only on its logical C-order index, never on the layout.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._core.layout import address_view, overlaps, self_overlapping
from . import _kernels as K
from ._env import SIMULATOR, cuda

try:
    import ml_dtypes
    BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover
    BFLOAT16 = None

FLOATS = ("float16", "bfloat16", "float32", "float64")
_STORAGE = {"float16": np.uint16, "bfloat16": np.uint16, "float32": np.float32,
            "float64": np.float64, "uint8": np.uint8, "bool": np.bool_,
            "uint16": np.uint16, "uint32": np.uint32, "int64": np.int64}
_RAW = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_TYPESTR = {"f2": "float16", "f4": "float32", "f8": "float64", "u1": "uint8",
            "b1": "bool", "u2": "uint16", "u4": "uint32", "i8": "int64"}


def storage_dtype(name: str) -> np.dtype:
    return np.dtype(_STORAGE[name])


def numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        if BFLOAT16 is None:  # pragma: no cover
            raise TypeError("bfloat16 needs ml_dtypes")
        return BFLOAT16
    return np.dtype(np.float16 if name == "float16" else _STORAGE[name])


def _framework(obj) -> str:
    mod = type(obj).__module__.split(".")[0]
    if getattr(obj, "__cuda_ndarray__", False):
        return "numba"
    if mod in ("torch", "cupy"):
        return mod
    return "other"


def _dtype_name(obj, typestr: str | None, name: str = "the array") -> str:
    """The array's dtype name: fastdrop's storage names (float16, bfloat16, float32, ...)
    or, for any other dtype, its own (int16, complex64, ...), which the callers refuse
    with a TypeError naming their argument, as the CPU backend does."""
    if typestr is not None and typestr[:1] == ">" and typestr[1:] not in ("u1", "b1", "i1"):
        raise TypeError(f"{name} has non-native byte order ({typestr}); convert it first")
    dt = getattr(obj, "dtype", None)
    if dt is not None:
        return str(dt).replace("torch.", "")
    if typestr is not None:
        key = typestr[1:]
        if key in _TYPESTR:
            return _TYPESTR[key]
        try:
            return np.dtype(typestr).name
        except TypeError:
            pass
    raise TypeError(f"{name} has a dtype fastdrop cannot read "
                    f"({dt if dt is not None else typestr})")


def _itemsize(nm: str) -> int:
    return storage_dtype(nm).itemsize if nm in _STORAGE else np.dtype(nm).itemsize


def _check_strides(name: str, strides: tuple, nm: str) -> None:
    """Strides the kernels can walk: whole items (a view of a byte buffer need not be)."""
    isz = _itemsize(nm)
    if any(s % isz for s in strides):
        raise ValueError(f"{name} has strides {tuple(strides)} that are not multiples of "
                         f"its {isz}-byte items: not supported on the GPU (copy it first)")


def _numba_stream(cai_stream):
    """A Numba stream for a __cuda_array_interface__ 'stream' entry (v3)."""
    if cai_stream is None or SIMULATOR:
        return 0
    if cai_stream == 1:
        return cuda.legacy_default_stream()
    if cai_stream == 2:
        return cuda.per_thread_default_stream()
    return cuda.external_stream(int(cai_stream))


_external_streams: dict = {}


def torch_stream(device, torch_module=None):
    """PyTorch's current stream on `device` as a Numba stream.  A torch tensor's
    ``__cuda_array_interface__`` names no stream, so without this every launch would go
    to the legacy default stream, unordered with torch's side streams (which are
    non-blocking): a race with the producer, and with the caching allocator reusing
    outputs.  Handle 0 (torch's default stream, the legacy default stream) is Numba's
    default stream, 0; another handle is wrapped once with ``cuda.external_stream``
    (cached by handle).  The simulator has no external streams: 0."""
    if torch_module is None:
        import torch as torch_module
    handle = int(torch_module.cuda.current_stream(device).cuda_stream)
    if handle == 0 or SIMULATOR:
        return 0
    strm = _external_streams.get(handle)
    if strm is None:
        strm = _external_streams[handle] = cuda.external_stream(handle)
    return strm


@dataclass
class Operand:
    """A CUDA array as the kernels see it (see the module docstring)."""
    obj: Any                      # what the caller gave (or what we allocated)
    framework: str                # "numba", "cupy", "torch" or "other"
    name: str                     # logical dtype name
    shape: tuple
    strides: tuple                # bytes, logical order
    ptr: int                      # device address of element (0, ..., 0)
    readonly: bool
    stream: Any                   # Numba stream (or 0: the default stream)
    owner: Any = None             # keeps the memory alive
    host: Any = None              # simulator: the NumPy array that is the "device" memory
    device_id: int | None = None
    _flat: Any = field(default=None, repr=False)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        return _itemsize(self.name)

    @property
    def c_contiguous(self) -> bool:
        if self.size == 0:  # an empty array is contiguous whatever its strides say
            return True
        expected = self.itemsize
        for n, s in zip(reversed(self.shape), reversed(self.strides)):
            if n != 1 and s != expected:
                return False
            expected *= n
        return True

    def overlaps(self, other: "Operand") -> bool:
        """Whether the two share a byte of device memory, exactly (`layout.overlaps`)."""
        return overlaps(address_view(self.ptr, self.shape, self.strides, self.itemsize),
                        address_view(other.ptr, other.shape, other.strides, other.itemsize))

    # -- device views --------------------------------------------------------------------

    def _view(self, offset_bytes: int, count: int, dtype):
        """A 1-D C-contiguous device array of `count` items of `dtype` starting at
        element (0, ...) + offset_bytes."""
        dtype = np.dtype(dtype)
        if SIMULATOR:
            window = _host_window(self.host, self.ptr + offset_bytes, count, dtype)
            from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
            return FakeCUDAArray(window, stream=self.stream)
        desc = {"shape": (count,), "strides": None, "typestr": dtype.str,
                "data": (self.ptr + offset_bytes, False), "version": 3}
        return cuda.from_cuda_array_interface(desc, owner=self.owner, sync=False)

    def flat(self):
        """The elements in logical C order as a 1-D storage-dtype device array: a view
        when C-contiguous, else a gathered temporary."""
        if self._flat is None:
            n, sd = self.size, storage_dtype(self.name)
            if self.c_contiguous:
                self._flat = self._view(0, max(n, 0), sd) if n else empty_raw(0, sd, self.stream)
            else:
                self._flat = empty_raw(n, sd, self.stream)
                self._strided_call(K.k_gather, self._flat)
        return self._flat

    def output_buffer(self):
        """Where a kernel writes this (output) operand's elements in C order: the array
        itself when C-contiguous, else a temporary that `commit` scatters back."""
        if self.c_contiguous:
            return self.flat()
        return empty_raw(self.size, storage_dtype(self.name), self.stream)

    def commit(self, buf):
        if not self.c_contiguous and self.size:
            self._strided_call(K.k_scatter, buf)

    def _strided_call(self, kernel, buf):
        isz = self.itemsize   # (whole-item strides: checked at import, `_check_strides`)
        lo = sum(min(0, (n - 1) * s) for n, s in zip(self.shape, self.strides))
        hi = sum(max(0, (n - 1) * s) for n, s in zip(self.shape, self.strides))
        extent = (hi - lo) // isz + 1
        window = self._view(lo, extent, storage_dtype(self.name))
        shape = to_device_small(np.array(self.shape, np.int64), self.stream)
        strides = to_device_small(np.array([s // isz for s in self.strides], np.int64),
                                  self.stream)
        dst, src = (window, buf) if kernel is K.k_scatter else (buf, window)
        K.launch(kernel, self.size, self.stream, dst, src, np.uint64(self.size),
                 np.int64(-lo // isz), shape, strides)


def _host_window(host: np.ndarray, addr: int, count: int, dtype) -> np.ndarray:
    """Simulator: a writeable NumPy view of `count` items at address `addr` inside the
    memory of `host` (the simulator's 'device' memory is host memory)."""
    root = host
    while isinstance(root.base, np.ndarray):
        root = root.base
    raw = root.reshape(-1, order="A").view(np.uint8)   # an owning array is contiguous
    off = addr - raw.__array_interface__["data"][0]
    return raw[off:off + count * np.dtype(dtype).itemsize].view(dtype)


def empty_raw(n: int, dtype, stream):
    """An uninitialised 1-D device array (a Numba one) on `stream`."""
    return cuda.device_array(n, dtype=np.dtype(dtype), stream=stream)


def to_device_small(host: np.ndarray, stream):
    return cuda.to_device(host, stream=stream)


# ---- import ---------------------------------------------------------------------------------


def as_operand(obj, name: str) -> Operand:
    """Zero-copy view of a CUDA array (see the module docstring)."""
    if SIMULATOR:
        if not getattr(obj, "__cuda_ndarray__", False):
            raise TypeError(f"{name} must be a CUDA array, got {type(obj).__name__}")
        host = obj._ary
        nm = _dtype_name(host, host.dtype.str, name)
        _check_strides(name, host.strides, nm)
        return Operand(obj, "numba", nm, tuple(host.shape), tuple(host.strides),
                       host.__array_interface__["data"][0], not host.flags.writeable,
                       getattr(obj, "stream", 0), owner=obj, host=host)
    framework = _framework(obj)
    device_id = None
    owner = obj
    desc = None
    nm = None
    if framework == "torch":
        t = obj.detach()
        device_id = t.device.index
        if str(t.dtype) == "torch.bfloat16":
            import torch
            t = t.view(torch.int16)
            nm = "bfloat16"
        desc = t.__cuda_array_interface__
        owner = t
    elif framework == "numba" or hasattr(obj, "__cuda_array_interface__"):
        desc = obj.__cuda_array_interface__
        if framework == "cupy":
            device_id = obj.device.id
    if desc is not None:
        if desc.get("mask") is not None:   # (as NumPy's masked arrays on the CPU)
            raise TypeError(f"{name} is a masked CUDA array (__cuda_array_interface__ "
                            f"'mask'): its mask would be lost; fill or compress it first")
        shape = tuple(desc["shape"])
        nm = nm or _dtype_name(obj, desc["typestr"], name)
        isz = _itemsize(nm)
        strides = desc.get("strides")
        if strides is None:
            strides = _c_strides(shape, isz)
        _check_strides(name, strides, nm)
        if framework == "numba":
            stream = getattr(obj, "stream", 0)
        elif framework == "torch":
            stream = torch_stream(t.device)
        else:
            stream = _numba_stream(desc.get("stream"))
        return Operand(obj, framework, nm, shape, tuple(strides), int(desc["data"][0]),
                       bool(desc["data"][1]), stream, owner=owner, device_id=device_id)
    if hasattr(obj, "__dlpack__"):
        nm, shape, strides, ptr, readonly, dev, smv = dlpack_view(obj, name)
        return Operand(obj, "other", nm, shape, strides, ptr, readonly, 0, owner=(obj, smv),
                       device_id=dev)
    raise TypeError(f"{name} must be a CUDA array, got {type(obj).__name__}")


def _strided_memory_view():
    """cuda-core's DLPack reader (numba-cuda's dependency): ``cuda.core.utils`` since
    cuda-core 0.3 / 1.x, ``cuda.core`` before."""
    try:
        from cuda.core.utils import StridedMemoryView
    except ImportError:
        from cuda.core import StridedMemoryView
    return StridedMemoryView


def dlpack_view(obj, name: str = "x"):
    """(dtype name, shape, byte strides, data pointer, read-only, device id, the view) of
    an object through DLPack, without a copy."""
    smv = _strided_memory_view().from_dlpack(obj, stream_ptr=-1)
    nm = _dtype_name(smv, None, name)
    isz = _itemsize(nm)
    shape = tuple(smv.shape)
    strides = smv.strides
    strides = _c_strides(shape, isz) if strides is None else tuple(s * isz for s in strides)
    return (nm, shape, strides, int(smv.ptr), bool(smv.readonly),
            getattr(smv, "device_id", None), smv)


def _c_strides(shape, itemsize):
    strides, acc = [], itemsize
    for n in reversed(shape):
        strides.append(acc)
        acc *= max(n, 1)
    return tuple(reversed(strides))


# ---- allocation ---------------------------------------------------------------------------------


@dataclass
class Target:
    """Where outputs go: a framework, a device and a stream."""
    framework: str = "numba"
    stream: Any = 0
    device_id: int | None = None
    like: Any = None


def target_of(op: Operand) -> Target:
    return Target(op.framework, op.stream, op.device_id, op.obj)


def allocate(target: Target, shape: tuple, name: str) -> Operand:
    """A new array in the target's framework, imported as an Operand."""
    if target.framework == "torch":
        import torch
        dt = getattr(torch, name)
        obj = torch.empty(shape, dtype=dt, device=target.like.device)
    elif target.framework == "cupy" and name != "bfloat16":
        import cupy
        with cupy.cuda.Device(target.device_id):
            obj = cupy.empty(shape, dtype=numpy_dtype(name))
    else:
        obj = cuda.device_array(shape, dtype=numpy_dtype(name), stream=target.stream)
    op = as_operand(obj, "out")
    op.stream = target.stream
    return op


def check_out(out, shape: tuple, name: str, inputs: dict, may_alias=()) -> Operand:
    """The device twin of fastdrop._cpu.backend.CpuArrays.out: a writeable CUDA array of this
    shape and dtype that overlaps no input except exactly one named in may_alias."""
    if not _is_device(out):
        raise TypeError(f"out must be a CUDA array, got {type(out).__name__}")
    o = as_operand(out, "out")
    if o.name != name:   # (the CPU backend's message)
        raise TypeError(f"out must have dtype {name} (native byte order), got {o.name}")
    if o.shape != tuple(shape):
        raise ValueError(f"out must have shape {tuple(shape)}, got {o.shape}")
    if o.readonly:
        raise ValueError("out is read-only")
    if self_overlapping(o.shape, o.strides, o.itemsize):
        raise ValueError("out must not have elements that share memory (a broadcast or "
                         "sliding-window view writes many elements to one address)")
    for nm, arr in inputs.items():
        if arr is None or not o.overlaps(arr):
            continue
        same = (nm in may_alias and arr.shape == o.shape and arr.ptr == o.ptr
                and arr.strides == o.strides)
        if not same:
            if nm in may_alias:
                raise ValueError(f"out overlaps {nm} partially (out may be {nm} itself, "
                                 f"for in-place use, but not another view of its memory)")
            raise ValueError(f"out must not overlap {nm}")
    return o


def _is_device(obj) -> bool:
    from . import is_cuda_array
    return is_cuda_array(obj)
