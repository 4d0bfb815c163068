"""Zero-copy interop with PyTorch and JAX CPU arrays (and any CPU DLPack producer).

The kernels work on NumPy arrays. This module turns the caller's arrays into NumPy views
of the same memory and the results back into the caller's type:

- PyTorch CPU tensors: ``tensor.detach().numpy()`` (zero-copy; bfloat16 goes through an
  int16 view and ``.view(ml_dtypes.bfloat16)``, zero-copy too). Results come back through
  ``torch.from_numpy`` (zero-copy). A torch ``out`` tensor is written in place through its
  NumPy view.
- JAX CPU arrays: ``np.asarray`` (zero-copy, read-only view). JAX arrays are immutable, so
  ``out=`` refuses them. Results come back through ``jax.device_put``, which aliases the
  NumPy buffer when it is 64-byte aligned and copies otherwise; the decorator allocates
  64-byte aligned outputs for JAX callers so that the result is not copied.
- Other objects with ``__dlpack__`` on the CPU: ``np.from_dlpack``; results stay NumPy.
- Arrays on an accelerator (``__cuda_array_interface__``, a non-CPU ``__dlpack_device__``,
  a CUDA torch tensor, a JAX array on a GPU) are never copied to the host here:
  `to_host_array` raises `DeviceArrayError`, and the router (`fastdrop._core.route`)
  sends the call to a device backend or lets the error (a NotImplementedError) reach the
  caller.

Neither torch nor jax is imported by this module: an object is recognised only when its
framework is already imported (``sys.modules``), so NumPy callers pay nothing for it.
"""
from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

__all__ = ["DeviceArrayError", "to_host_array", "array_kind", "aligned_empty",
           "jax_platform", "numpy_to_torch", "torch_to_numpy"]

# DLPack device types that NumPy can read directly (kDLCPU, kDLCUDAHost, kDLROCMHost)
_HOST_DLPACK_DEVICES = (1, 3, 11)
_ALIGN = 64  # what XLA:CPU needs to alias a host buffer instead of copying it


class DeviceArrayError(NotImplementedError):
    """An argument lives on an accelerator: the CPU path does not handle it.

    Raised by `to_host_array` instead of copying device memory to the host. The router
    catches it; without one, it reaches the caller as a NotImplementedError.

    Attributes: ``name`` (the argument), ``device`` (a string such as ``"cuda:0"``),
    ``framework`` ("torch", "jax", "cuda_array_interface" or "dlpack").
    """

    def __init__(self, name: str, device: str, framework: str, func: str | None = None):
        self.name, self.device, self.framework = name, device, framework
        where = f"fastdrop.{func}: " if func else ""
        super().__init__(
            f"{where}{name} is a {framework} array on device {device}; fastdrop's CPU "
            f"kernels take host arrays only and the GPU backend is not available for it "
            f"(copy it to the CPU first, e.g. tensor.cpu() or jax.device_get)")


# ---- recognising arrays ----------------------------------------------------------------


def _torch_tensor_type():
    torch = sys.modules.get("torch")
    return getattr(torch, "Tensor", None) if torch is not None else None


def _jax_array_type():
    jax = sys.modules.get("jax")
    return getattr(jax, "Array", None) if jax is not None else None


def array_kind(obj: Any) -> str | None:
    """"numpy", "torch", "jax", "dask", "cuda" (a __cuda_array_interface__ object), "dlpack"
    (another DLPack producer), or None (anything else: lists, scalars...)."""
    if isinstance(obj, np.ndarray):
        return "numpy"
    if type(obj).__module__.startswith("dask."):
        return "dask"
    tt = _torch_tensor_type()
    if tt is not None and isinstance(obj, tt):
        return "torch"
    jt = _jax_array_type()
    if jt is not None and isinstance(obj, jt):
        return "jax"
    try:
        if hasattr(obj, "__cuda_array_interface__"):
            return "cuda"
    except Exception:  # some producers raise other errors than AttributeError here
        return "cuda"
    if hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__"):
        return "dlpack"
    return None


def _identity(result):
    return result


# ---- torch -----------------------------------------------------------------------------


def torch_to_numpy(t, name: str, writable: bool) -> np.ndarray:
    import torch

    if t.device.type != "cpu":
        raise DeviceArrayError(name, str(t.device), "torch")
    if writable and t.requires_grad and torch.is_grad_enabled():
        raise ValueError(f"{name} is a torch tensor that requires grad: fastdrop cannot write "
                         f"it in place under autograd (use fastdrop.torch, or torch.no_grad())")
    t = t.detach()
    if t.is_neg() or t.is_conj():
        if writable:
            raise ValueError(f"{name} is a lazily negated/conjugated torch view; it cannot "
                             f"be written in place")
        t = t.resolve_neg().resolve_conj()  # copies: numpy cannot see the lazy bit
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def _is_bfloat16(dtype: np.dtype) -> bool:
    # dtype.name is slow (microseconds, Python code in NumPy); the type's name is not
    return dtype.type.__name__ == "bfloat16"


def numpy_to_torch(arr: np.ndarray):
    import torch

    if not arr.flags.writeable or any(s < 0 for s in arr.strides):
        arr = arr.copy()  # torch.from_numpy takes neither; fastdrop's own outputs are fine
    if _is_bfloat16(arr.dtype):
        return torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(arr)


# ---- jax -------------------------------------------------------------------------------


def jax_platform(a) -> str | None:
    """The platform of a committed single-device JAX array ("cpu", "gpu", ...)."""
    try:
        devs = a.devices()
    except Exception:  # tracers have no devices
        return None
    plats = {d.platform for d in devs}
    return plats.pop() if len(plats) == 1 else ",".join(sorted(plats))


def _jax_to_numpy(a, name: str, writable: bool) -> np.ndarray:
    jax = sys.modules["jax"]
    if isinstance(a, jax.core.Tracer):
        raise TypeError(f"{name} is a traced JAX value (inside jit, grad or vmap); "
                        f"use fastdrop.jax.dropout, which runs the kernels inside the "
                        f"compiled program (an XLA FFI custom call)")
    if writable:
        raise TypeError(f"{name} cannot be a JAX array: JAX arrays are immutable; call "
                        f"without {name}= and use the returned array")
    plat = jax_platform(a)
    if plat != "cpu":
        raise DeviceArrayError(name, str(plat), "jax")
    return np.asarray(a)  # zero-copy, read-only view of the CPU buffer


def aligned_empty(shape, dtype, align: int = _ALIGN) -> np.ndarray:
    """np.empty whose data address is a multiple of `align` bytes (C order)."""
    dtype = np.dtype(dtype)
    shape = tuple(shape)
    raw = np.empty(math.prod(shape) * dtype.itemsize + align, np.uint8)
    start = (-raw.__array_interface__["data"][0]) % align
    return np.ndarray(shape, dtype, buffer=raw, offset=start)


def _numpy_to_jax(arr: np.ndarray):
    import jax

    # Both alias the buffer when it is 64-byte aligned and C-contiguous, else copy. DLPack
    # is the cheaper call (about half of device_put's overhead, measured) but does not
    # carry bfloat16.
    if arr.dtype.kind in "fiub" and not _is_bfloat16(arr.dtype) and arr.flags.c_contiguous:
        try:
            return jax.dlpack.from_dlpack(arr)
        except Exception:
            pass
    return jax.device_put(arr)


# ---- the public conversion ---------------------------------------------------------------


def to_host_array(obj: Any, name: str, *, writable: bool = False):
    """A NumPy view of `obj`'s CPU memory (no copy) and the function that turns a
    result back into `obj`'s type.

    Parameters
    ----------
    obj : numpy.ndarray, torch.Tensor, jax.Array, a CPU DLPack producer, or anything else
        Other objects (lists, scalars) are returned unchanged, for fastdrop's own checks.
    name : str
        The argument's name, for error messages.
    writable : bool
        The array will be written in place (``out=``): JAX arrays are refused (TypeError),
        as are torch tensors that require grad while autograd is on (ValueError).

    Returns
    -------
    (array, wrap)
        ``wrap(ndarray)`` returns a torch tensor (``torch.from_numpy``, zero-copy), a JAX
        array (``jax.device_put``: zero-copy for 64-byte aligned buffers, else one copy)
        or the ndarray itself.

    Raises
    ------
    DeviceArrayError
        `obj` lives on an accelerator (CUDA torch tensor, JAX GPU array, an object with
        ``__cuda_array_interface__`` or a non-CPU ``__dlpack_device__``). Nothing is copied.
    """
    kind = array_kind(obj)
    if kind == "numpy" or kind is None:
        return obj, _identity
    if kind == "dask":  # np.asarray would compute the whole array and return NumPy
        raise TypeError(f"{name} is a Dask array: use fastdrop.dask (the same functions, "
                        f"lazy and chunk by chunk, returning Dask arrays)")
    if kind == "torch":
        return torch_to_numpy(obj, name, writable), numpy_to_torch
    if kind == "jax":
        return _jax_to_numpy(obj, name, writable), _numpy_to_jax
    if kind == "cuda":
        dev = "cuda"
        try:
            dev_type, dev_id = obj.__dlpack_device__()
            dev = (f"cuda:{int(dev_id)}" if int(dev_type) == 2
                   else f"dlpack-device-{int(dev_type)}:{int(dev_id)}")
        except Exception:
            pass
        raise DeviceArrayError(name, dev, "cuda_array_interface")
    # kind == "dlpack"
    dev_type, dev_id = obj.__dlpack_device__()
    if int(dev_type) not in _HOST_DLPACK_DEVICES:
        raise DeviceArrayError(name, f"dlpack-device-{int(dev_type)}:{int(dev_id)}", "dlpack")
    try:
        arr = np.from_dlpack(obj)
    except Exception as exc:
        raise TypeError(f"{name} could not be read through DLPack: {exc}") from None
    if writable and not arr.flags.writeable:
        raise TypeError(f"{name} is read-only through DLPack and cannot be written in place")
    return arr, _identity
