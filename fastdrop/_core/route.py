"""The router: one public call -> the backend that runs it -> the caller's array type.

`call` is the one driver every public function calls.  From the kind of its primary
array (or its ``device=`` and ``out=`` for the functions without array inputs) it picks:

- a device implementation registered with `register_device_dispatch` for the function,
  when the primary array lives on an accelerator (it gets the original arguments);
- else the GPU backend (`fastdrop._cuda.backend`) for a CUDA array of any framework
  (``fastdrop._cuda.is_cuda_array``) or a CUDA ``device=``/``out=``;
- else the CPU backend (`fastdrop._cpu.backend`), after turning torch, JAX and DLPack CPU
  arrays into NumPy views of the same memory (`interop`).

The backend's array policy views the arrays while `parse` checks the arguments; the
backend then runs the request.  CPU results come back in the primary argument's type
(an ndarray that is the view of an argument comes back as that argument itself).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .. import _cuda
from .interop import DeviceArrayError, aligned_empty, array_kind, to_host_array

__all__ = ["Spec", "call", "fast_path", "register_device_dispatch", "device_implementation",
           "wants_cuda", "on_backend", "BACKENDS"]

BACKENDS = ("cpu", "cuda")


@dataclass(frozen=True)
class Spec:
    """How the router treats a public function.

    name: the public name.  parse: ``parse(policy, **arguments) -> request``.  arrays:
    the array parameters, primary first (none for the generator functions, which take
    ``device=``).  out: the output parameter, if any.  buffers: other parameters that are
    written (``mask_out``: the returned mask's buffer), viewed writeable like out.
    convert: whether torch/JAX arrays are viewed as NumPy and the results converted back
    (philox4x32 reads its words with NumPy and returns NumPy).
    """

    name: str
    parse: Callable
    arrays: tuple = ()
    out: str | None = None
    convert: bool = True
    buffers: tuple = ()
    watched: tuple = field(init=False, default=())  # the arrays, out and the buffers

    def __post_init__(self):
        object.__setattr__(self, "watched", self.arrays + ((self.out,) if self.out else ())
                           + self.buffers)
        _SPECS[self.name] = self


_REGISTRY: dict[str, Callable] = {}
_SPECS: dict[str, Spec] = {}  # every public function's spec, by name


def register_device_dispatch(func_name: str, impl: Callable | None) -> None:
    """Route calls of ``fastdrop.<func_name>`` whose primary array lives on an accelerator
    to `impl`, called with the public function's arguments by keyword (the caller's own
    objects).  It takes precedence over fastdrop's GPU backend.  None removes the route."""
    if impl is None:
        _REGISTRY.pop(func_name, None)
    else:
        _REGISTRY[func_name] = impl


def device_implementation(func_name: str, array: Any) -> Callable | None:
    """Who runs ``fastdrop.<func_name>`` for a device `array`: the registered function,
    else the GPU backend's runner when it recognises the array, else None.  An
    ImportError of the GPU backend (numba-cuda missing) propagates: it names the package
    to install."""
    impl = _REGISTRY.get(func_name)
    if impl is not None:
        return impl
    if not _cuda.is_cuda_array(array):
        return None
    return on_backend(func_name, "cuda") if func_name in _SPECS else None


def _backend(name: str):
    if name == "cpu":
        return _cpu()
    if name == "cuda":
        return _cuda.backend  # imports numba-cuda
    raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")


def on_backend(func_name: str, backend: str) -> Callable:
    """``fastdrop.<func_name>`` run by one backend ("cpu" or "cuda"), whatever its
    arguments' kind: the same parse and checks, no routing, no conversion (for tests that
    compare every backend with the twin, and for device implementations)."""
    spec = _SPECS[func_name]

    def run_on(*args, **kwargs):  # the public signature, positional arguments included
        b = _backend(backend)
        return b.run(spec.parse(b.POLICY, *args, **kwargs))

    run_on.__name__ = run_on.__qualname__ = func_name
    return run_on


def wants_cuda(device: Any, out: Any = None) -> bool:
    """device: None or "cpu" for the CPU; "cuda", "cuda:N", an int, or a CUDA array (whose
    device, framework and stream the result follows) for the GPU.  A CUDA `out` also
    selects the GPU."""
    if out is not None and _cuda.is_cuda_array(out):
        return True
    if device is None or (isinstance(device, str) and device == "cpu"):
        return False
    if type(device).__name__ == "device" and getattr(device, "type", None) == "cpu":
        return False  # torch.device("cpu")
    return True


_cpu_backend = None


def _cpu():
    global _cpu_backend
    if _cpu_backend is None:
        _cpu_backend = importlib.import_module("fastdrop._cpu.backend")
    return _cpu_backend


def fast_path(func_name: str) -> Callable:
    """The CPU backend's fast path of ``fastdrop.<func_name>`` (every function of
    fastdrop.functional but unpack_mask): called with the public parameters in order, it
    runs the common call (one C-contiguous, aligned, native NumPy array; a float p; int
    seed and stream; no noise shape, block, bool mask or mask_out) and returns its
    result, or returns None for any other call, which then goes through `call`.  It
    accepts only calls that the parse accepts, and gives the same result bit for bit,
    without building a request."""
    return _cpu().FAST_PATHS[func_name]


def _run_on_gpu(spec: Spec, kw: dict) -> Any:
    gpu = _cuda.backend  # imports numba-cuda
    return gpu.run(spec.parse(gpu.POLICY, **kw))


def call(spec: Spec, kw: dict) -> Any:
    """Run the public function `spec` on its arguments `kw` (every parameter by name)."""
    if not spec.arrays:  # the generator functions: device= and out= choose
        if wants_cuda(kw.get("device"), kw.get("out")):
            return _run_on_gpu(spec, kw)
        cpu = _cpu()
        return cpu.run(spec.parse(cpu.POLICY, **kw))
    primary = kw[spec.arrays[0]]
    if type(primary) is not np.ndarray and _cuda.is_cuda_array(primary):
        impl = _REGISTRY.get(spec.name)
        return impl(**kw) if impl is not None else _run_on_gpu(spec, kw)
    if spec.convert:
        for name in spec.watched:  # torch, JAX, DLPack: NumPy views first
            v = kw[name]
            if v is not None and type(v) is not np.ndarray and \
                    array_kind(v) not in (None, "numpy"):
                return _converted_call(spec, kw)
    cpu = _cpu()
    return cpu.run(spec.parse(cpu.POLICY, **kw))


def _converted_call(spec: Spec, kw: dict) -> Any:
    """A CPU call with torch/JAX/DLPack arguments: NumPy views in, the caller's types out."""
    original = kw
    kw = dict(kw)
    views = {}  # id(view) -> (view, the caller's object)
    primary_wrap = None
    primary_kind = array_kind(kw[spec.arrays[0]])
    try:
        for name in spec.watched:
            v = kw[name]
            if v is None:
                continue
            arr, wrap = to_host_array(v, name, writable=(name == spec.out
                                                         or name in spec.buffers))
            if name == spec.arrays[0]:
                primary_wrap = wrap
            if arr is not v:
                views[id(arr)] = (arr, v)
                kw[name] = arr
    except DeviceArrayError as exc:
        impl = device_implementation(spec.name, original[exc.name])
        if impl is not None:
            return impl(**original)
        raise DeviceArrayError(exc.name, exc.device, exc.framework, spec.name) from None
    if (primary_kind == "jax" and spec.out is not None and kw[spec.out] is None
            and kw.get("training", True) is not False
            and isinstance(kw[spec.arrays[0]], np.ndarray)):
        x = kw[spec.arrays[0]]  # 64-byte aligned: JAX aliases the result instead of copying
        kw[spec.out] = aligned_empty(x.shape, x.dtype)
    cpu = _cpu()
    result = cpu.run(spec.parse(cpu.POLICY, **kw))

    def back(r):
        if isinstance(r, np.ndarray):
            hit = views.get(id(r))
            if hit is not None and hit[0] is r:
                return hit[1]
            return primary_wrap(r) if primary_wrap is not None else r
        return r

    if isinstance(result, tuple):
        return tuple(back(r) for r in result)
    return back(result)
