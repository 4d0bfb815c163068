"""Routing of public calls to the GPU backend (fastdrop._cuda) by the input's kind.

CUDA arrays of any framework (``__cuda_array_interface__`` or a CUDA
``__dlpack_device__``) and calls naming a CUDA ``device`` go to fastdrop._cuda.dispatch,
whose functions have the public signatures; everything else stays on the CPU kernels.
The check is cheap and never imports Numba.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from . import _cuda

__all__ = ["on_cuda_array", "on_cuda_device", "wants_cuda"]


def _gpu(name: str, args: tuple, kwargs: dict) -> Any:
    """The GPU twin of `name`, called with the same arguments (block= included: the GPU
    functions take it wherever the CPU ones do)."""
    return getattr(_cuda.dispatch, name)(*args, **kwargs)


def on_cuda_array(func: Callable) -> Callable:
    """Send the call to the GPU when its first argument is a CUDA array."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if args and _cuda.is_cuda_array(args[0]):
            return _gpu(func.__name__, args, kwargs)
        return func(*args, **kwargs)
    return wrapper


def wants_cuda(device: Any, out: Any = None) -> bool:
    """device: None or "cpu" for the CPU; "cuda", "cuda:N", an int, or a CUDA array (whose
    device, framework and stream the result follows) for the GPU.  A CUDA `out` also
    selects the GPU."""
    if out is not None and _cuda.is_cuda_array(out):
        return True
    if device is None or (isinstance(device, str) and device == "cpu"):
        return False
    type_name = type(device).__name__
    if type_name == "device" and getattr(device, "type", None) == "cpu":  # torch.device
        return False
    return True


def on_cuda_device(func: Callable) -> Callable:
    """Send the call to the GPU when its `device` (or `out`) asks for it; the CPU function
    itself accepts device=None or "cpu"."""
    @functools.wraps(func)
    def wrapper(*args: Any, device: Any = None, **kwargs: Any) -> Any:
        if wants_cuda(device, kwargs.get("out")):
            return _gpu(func.__name__, args, dict(kwargs, device=device))
        return func(*args, **kwargs)
    return wrapper
