"""One parse per public function: its arguments, checked once, as a request.

Each ``parse.<name>`` takes the backend's array policy (`requests.ArrayPolicy`) and the
public function's arguments, runs every check before anything is written, in the order
the public docs give, and returns the request that the backend runs.  The CPU and the GPU
share these functions, so they accept and refuse exactly the same calls.
"""
from __future__ import annotations

import math
import os
import sys
import warnings
from typing import Any, NamedTuple

import numpy as np

from . import contract as C
from .args import (as_int, check_bits, check_bool, check_mask_format, check_mode,
                   check_n_threads, check_noise_shape, check_p, check_placement,
                   check_seed, check_shape, check_span, check_uint64)
from .ops import Keep, Op
from .requests import (ArrayPolicy, BiasBackwardRequest, DrawsRequest, DropoutRequest,
                       PhiloxRequest, UnpackRequest)

__all__ = [
    "dropout", "dropout_backward", "dropout_mask", "bias_dropout_add",
    "bias_dropout_add_backward", "alpha_dropout", "alpha_dropout_backward",
    "gaussian_dropout", "gaussian_dropout_backward", "random_bits", "uniform",
    "standard_normal", "philox4x32", "unpack_mask", "float_dtype",
]


# ---- shared pieces -------------------------------------------------------------------------


def _caller_level() -> int:
    """The stacklevel of the first frame outside the fastdrop package (the user's call)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _threshold(p: float, bits: int) -> int:
    """The threshold of p; a p > 0 that rounds to 0 (nothing would be dropped) warns."""
    t = C.threshold(p, bits)
    if t == 0 and p > 0.0:
        hint = "; bits=32 resolves 2**-32" if bits == 16 else ""
        warnings.warn(f"p={p!r} is below the resolution of bits={bits} (2**-{bits}) and "
                      f"rounds to 0: nothing is dropped{hint}", UserWarning,
                      stacklevel=_caller_level())
    return t


def _noise(shape: tuple, block: Any, noise_shape: Any = None):
    """(noise shape of this array, draw map of its noise or None) for the public
    ``block=`` and ``noise_shape=``: noise_shape refers to the global array of a block."""
    placement = check_placement(block, shape)
    if placement is None:
        return check_noise_shape(noise_shape, shape), None
    return C.noise_draws(shape, placement, check_noise_shape(noise_shape, placement[1]))


def _mask(A: ArrayPolicy, mask: Any, noise: tuple):
    """A packed (uint8, ceil(n/8) bytes) or bool (noise shape) mask, and its keep source."""
    mk = A.mask_input(mask)
    n = math.prod(noise)
    dt = A.dtype(mk)
    shape = A.shape(mk)
    if dt == "uint8":
        if len(shape) != 1 or math.prod(shape) != C.packed_size(n):
            raise ValueError(f"packed mask must be 1-D with {C.packed_size(n)} bytes for "
                             f"{n} elements, got shape {shape}")
        return mk, Keep.PACKED
    if dt == "bool":
        if shape != noise:
            raise ValueError(f"bool mask must have shape {noise}, got {shape}")
        return mk, Keep.FLAGS
    raise TypeError(f"mask must be a packed uint8 or a bool array, got dtype {dt}")


def _seed_or_mask(A: ArrayPolicy, mask: Any, seed: Any, noise: tuple):
    """(mask view or None, keep source, seed) for a backward pass."""
    if (mask is None) == (seed is None):
        raise ValueError("give exactly one of mask or seed")
    if mask is not None:
        mk, keep = _mask(A, mask, noise)
        return mk, keep, 0
    return None, Keep.DRAWS, check_uint64(seed, "seed")


def _out(A: ArrayPolicy, out: Any, x: Any, inputs: dict, may_alias=("x",)):
    return None if out is None else A.out(out, A.shape(x), A.dtype(x), inputs, may_alias)


def _mask_out(A: ArrayPolicy, mask_out: Any, return_mask: bool, mask_format: str,
              noise: tuple, inputs: dict):
    """The public ``mask_out=``: None, or the buffer the returned mask is written into
    (packed: uint8 of ``ceil(prod(noise) / 8)`` bytes; bool: the noise shape), checked by
    the backend's policy against the call's arrays and its out (`inputs`)."""
    if mask_out is None:
        return None
    if not return_mask:
        raise ValueError("mask_out is given but return_mask is False: mask_out is the "
                         "buffer of the returned mask (pass return_mask=True)")
    if mask_format == "packed":
        return A.mask_out(mask_out, (C.packed_size(math.prod(noise)),), "uint8", inputs)
    return A.mask_out(mask_out, noise, "bool", inputs)


# ---- the check sequences of the forward and backward passes -------------------------------


_NO_MODE = object()  # the function has no mode argument (alpha dropout)


class _Forward(NamedTuple):
    x: Any
    threshold: int
    mode: Any
    bits: int
    mask_format: str
    noise: tuple
    noise_draws: Any
    stream: int
    n_threads: Any
    training: bool
    return_mask: bool
    out: Any
    mask_out: Any
    seed: int
    source: Any   # the caller's x (inference returns it itself)


def _forward(A, x, p, mode, bits, mask_format, block, noise_shape, stream, n_threads,
             training, return_mask, out, seed, mask_out) -> _Forward:
    """dropout's and alpha_dropout's checks, in their documented order (mode=_NO_MODE:
    the function has no mode)."""
    xv = A.float_input(x, "x")
    pf = check_p(p)
    m = None if mode is _NO_MODE else check_mode(mode)
    b = check_bits(bits)
    fmt = check_mask_format(mask_format)
    noise, ndraws = _noise(A.shape(xv), block, noise_shape)
    st = check_uint64(stream, "stream")
    threads = check_n_threads(n_threads)
    training = check_bool(training, "training")
    return_mask = check_bool(return_mask, "return_mask")
    y = _out(A, out, xv, {"x": xv})
    mo = _mask_out(A, mask_out, return_mask, fmt, noise, {"x": xv, "out": y})
    key = check_seed(seed)
    return _Forward(xv, _threshold(pf, b), m, b, fmt, noise, ndraws, st, threads, training,
                    return_mask, y, mo, key, x)


def _forward_request(f: _Forward, func: str, **op) -> DropoutRequest:
    """The training pass of a checked forward call: flags from the draws."""
    return DropoutRequest(func=func, keep=Keep.DRAWS, x=f.x, out=f.out, seed=f.seed,
                          stream=f.stream, bits=f.bits, threshold=f.threshold,
                          noise_shape=f.noise, noise_draws=f.noise_draws,
                          mask_format=f.mask_format if f.return_mask else None,
                          returns_pair=f.return_mask, n_threads=f.n_threads,
                          mask_out=f.mask_out, **op)


def _inference(f: _Forward, func: str, **op) -> DropoutRequest:
    """training=False: x itself (identity) or, for classic dropout, x * P(keep); no mask
    is drawn (the mask returned is None, a mask_out is left as it is)."""
    return DropoutRequest(func=func, x=f.x, out=f.out, returns_pair=f.return_mask,
                          n_threads=f.n_threads, source=f.source, **op)


def _backward(A, g, p, mode, bits, block, noise_shape, stream, n_threads, mask, seed, out,
              func, scale) -> DropoutRequest:
    """The checks of a backward pass after grad's (`g`: the backend's view of it), in the
    documented order; ``scale(t, bits, mode)`` is the factor of kept gradients."""
    pf = check_p(p)
    m = None if mode is _NO_MODE else check_mode(mode)
    b = check_bits(bits)
    noise, ndraws = _noise(A.shape(g), block, noise_shape)
    st = check_uint64(stream, "stream")
    threads = check_n_threads(n_threads)
    mk, keep, key = _seed_or_mask(A, mask, seed, noise)
    y = _out(A, out, g, {"grad": g, "mask": mk}, may_alias=("grad",))
    t = _threshold(pf, b)
    return DropoutRequest(func=func, op=Op.DROPOUT, keep=keep, x=g, out=y, mask=mk,
                          seed=key, stream=st, bits=b, threshold=t, scale=scale(t, b, m),
                          noise_shape=noise, noise_draws=ndraws, n_threads=threads)


def _dropout_scale(t: int, bits: int, mode: str) -> float:
    return 1.0 if mode == "classic" else C.inverted_scale(t, bits)


# ---- dropout ---------------------------------------------------------------------------------


def dropout(A: ArrayPolicy, x, p=0.5, *, seed=None, stream=0, training=True,
            mode="inverted", noise_shape=None, bits=16, return_mask=False,
            mask_format="packed", out=None, n_threads=None, block=None, mask_out=None
            ) -> DropoutRequest:
    f = _forward(A, x, p, mode, bits, mask_format, block, noise_shape, stream, n_threads,
                 training, return_mask, out, seed, mask_out)
    if not f.training:
        if f.mode == "inverted":
            return _inference(f, "dropout", op=Op.DROPOUT, keep=Keep.ALL, identity=True)
        return _inference(f, "dropout", op=Op.DROPOUT, keep=Keep.ALL, bits=f.bits,
                          threshold=f.threshold,
                          scale=C.keep_probability(f.threshold, f.bits))
    return _forward_request(f, "dropout", op=Op.DROPOUT,
                            scale=_dropout_scale(f.threshold, f.bits, f.mode))


def dropout_backward(A: ArrayPolicy, grad, p, *, mask=None, seed=None, stream=0,
                     mode="inverted", noise_shape=None, bits=16, out=None, n_threads=None,
                     block=None) -> DropoutRequest:
    return _backward(A, A.float_input(grad, "grad"), p, mode, bits, block, noise_shape, stream,
                     n_threads, mask, seed, out, "dropout_backward", _dropout_scale)


def dropout_mask(A: ArrayPolicy, shape, p, *, seed, stream=0, bits=16, packed=True, offset=0,
                 n_threads=None, device=None, block=None) -> DrawsRequest:
    dims = check_shape(shape)
    pf = check_p(p)
    b = check_bits(bits)
    key = check_uint64(seed, "seed")
    st = check_uint64(stream, "stream")
    n = math.prod(dims)
    off = check_span(offset, n)
    threads = check_n_threads(n_threads)
    packed = check_bool(packed, "packed")
    _, draws = _noise(dims, block)
    if draws is not None and off:
        raise ValueError("give offset or block, not both")
    return DrawsRequest(kind="mask", shape=dims, seed=key, stream=st,
                        dtype="uint8" if packed else "bool", bits=b, offset=off,
                        threshold=_threshold(pf, b), draws=draws, n_threads=threads,
                        device=A.device(device))


def unpack_mask(A: ArrayPolicy, mask, shape) -> UnpackRequest:
    dims = check_shape(shape)
    mk = A.mask_input(mask)
    if A.dtype(mk) != "uint8":
        raise TypeError(f"mask must be a packed uint8 array, got dtype {A.dtype(mk)}")
    n = math.prod(dims)
    ms = A.shape(mk)
    if len(ms) != 1 or ms[0] != C.packed_size(n):
        raise ValueError(f"packed mask must be 1-D with {C.packed_size(n)} bytes for {n} "
                         f"elements, got shape {ms}")
    return UnpackRequest(mk, dims)


# ---- bias-dropout-add ------------------------------------------------------------------------


def bias_dropout_add(A: ArrayPolicy, x, bias, residual, p, *, seed, stream=0, bits=16,
                     return_mask=False, out=None, n_threads=None, block=None,
                     mask_out=None) -> DropoutRequest:
    xv = A.float_input(x, "x")
    bv = None if bias is None else A.float_input(bias, "bias")
    rv = A.float_input(residual, "residual")
    pf = check_p(p)
    b = check_bits(bits)
    key = check_uint64(seed, "seed")
    st = check_uint64(stream, "stream")
    threads = check_n_threads(n_threads)
    return_mask = check_bool(return_mask, "return_mask")
    dt, shape = A.dtype(xv), A.shape(xv)
    for name, arr in (("bias", bv), ("residual", rv)):
        if arr is not None and A.dtype(arr) != dt:
            raise TypeError(f"{name} must have x's dtype {dt}, got {A.dtype(arr)}")
    if bv is not None and (len(shape) == 0 or A.shape(bv) != (shape[-1],)):
        raise ValueError(f"bias must have shape (x.shape[-1],) = "
                         f"{(shape[-1],) if shape else '()'}, got {A.shape(bv)}")
    if A.shape(rv) != shape:
        raise ValueError(f"residual must have x's shape {shape}, got {A.shape(rv)}")
    y = _out(A, out, xv, {"x": xv, "residual": rv, "bias": bv}, may_alias=("x", "residual"))
    mo = _mask_out(A, mask_out, return_mask, "packed", shape,
                   {"x": xv, "residual": rv, "bias": bv, "out": y})
    _, draws = _noise(shape, block)
    t = _threshold(pf, b)
    return DropoutRequest(func="bias_dropout_add", op=Op.BDA, keep=Keep.DRAWS, x=xv, out=y,
                          bias=bv, residual=rv, seed=key, stream=st, bits=b, threshold=t,
                          scale=C.inverted_scale(t, b), noise_shape=shape,
                          noise_draws=draws, mask_format="packed" if return_mask else None,
                          returns_pair=return_mask, n_threads=threads, mask_out=mo)


def bias_dropout_add_backward(A: ArrayPolicy, grad, p, *, mask=None, seed=None, stream=0,
                              bits=16, has_bias=True, n_threads=None, block=None
                              ) -> BiasBackwardRequest:
    g = A.float_input(grad, "grad")
    has_bias = check_bool(has_bias, "has_bias")
    if has_bias and len(A.shape(g)) == 0:
        raise ValueError("grad must have at least one axis when has_bias is True")
    inner = _backward(A, g, p, "inverted", bits, block, None, stream, n_threads, mask, seed,
                      None, "bias_dropout_add_backward", _dropout_scale)
    return BiasBackwardRequest(inner, has_bias)


# ---- alpha dropout ---------------------------------------------------------------------------


def _alpha_op(t: int, bits: int) -> dict:
    """Nothing dropped (identity, a copy) or everything (zeros): plain dropout's kernel."""
    if t == 0 or t == 1 << bits:
        return dict(op=Op.DROPOUT, scale=1.0)
    return dict(op=Op.ALPHA, alpha=C.alpha_constants(t, bits))


def alpha_dropout(A: ArrayPolicy, x, p=0.5, *, seed=None, stream=0, training=True,
                  noise_shape=None, bits=16, return_mask=False, mask_format="packed",
                  out=None, n_threads=None, block=None, mask_out=None) -> DropoutRequest:
    f = _forward(A, x, p, _NO_MODE, bits, mask_format, block, noise_shape, stream, n_threads,
                 training, return_mask, out, seed, mask_out)
    if not f.training:
        return _inference(f, "alpha_dropout", op=Op.DROPOUT, keep=Keep.ALL, identity=True)
    return _forward_request(f, "alpha_dropout", **_alpha_op(f.threshold, f.bits))


def _alpha_scale(t: int, bits: int, mode: Any) -> float:
    return 1.0 if t == 0 else C.alpha_constants(t, bits)[0]


def alpha_dropout_backward(A: ArrayPolicy, grad, p, *, mask=None, seed=None, stream=0,
                           noise_shape=None, bits=16, out=None, n_threads=None, block=None
                           ) -> DropoutRequest:
    return _backward(A, A.float_input(grad, "grad"), p, _NO_MODE, bits, block, noise_shape,
                     stream, n_threads, mask, seed, out, "alpha_dropout_backward",
                     _alpha_scale)


# ---- gaussian dropout ------------------------------------------------------------------------


def _gaussian(func, A, v, out, inputs, may_alias, pf, seed, stream, n_threads, block):
    _, draws = _noise(A.shape(v), block)
    sigma = C.gaussian_sigma(pf)
    st = check_uint64(stream, "stream")
    threads = check_n_threads(n_threads)
    y = _out(A, out, v, inputs, may_alias)
    key = check_seed(seed)
    return DropoutRequest(func=func, op=Op.GAUSS, keep=Keep.DRAWS, x=v, out=y, seed=key,
                          stream=st, bits=32, scale=sigma, noise_shape=A.shape(v),
                          noise_draws=draws, n_threads=threads)


def gaussian_dropout(A: ArrayPolicy, x, p=0.5, *, seed=None, stream=0, training=True,
                     out=None, n_threads=None, block=None) -> DropoutRequest:
    xv = A.float_input(x, "x")
    pf = check_p(p)
    training = check_bool(training, "training")
    if not training:
        C.gaussian_sigma(pf)
        check_uint64(stream, "stream")
        threads = check_n_threads(n_threads)
        y = _out(A, out, xv, {"x": xv})
        check_seed(seed)
        _noise(A.shape(xv), block)
        return DropoutRequest(func="gaussian_dropout", op=Op.DROPOUT, keep=Keep.ALL, x=xv,
                              out=y, identity=True, n_threads=threads, source=x)
    return _gaussian("gaussian_dropout", A, xv, out, {"x": xv}, ("x",), pf, seed, stream,
                     n_threads, block)


def gaussian_dropout_backward(A: ArrayPolicy, grad, p, *, seed, stream=0, out=None,
                              n_threads=None, block=None) -> DropoutRequest:
    g = A.float_input(grad, "grad")
    pf = check_p(p)
    key = check_seed(seed, required=True)
    return _gaussian("gaussian_dropout_backward", A, g, out, {"grad": g}, ("grad",), pf, key,
                     stream, n_threads, block)


# ---- the generator ---------------------------------------------------------------------------


def float_dtype(dtype: Any) -> str:
    """float32 or float64, nothing else (no silent cast)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt.name


def _draws(A, kind, shape, seed, stream, resolve, offset, out, n_threads, device
           ) -> DrawsRequest:
    """The checks of the generator functions, in their order; `resolve()` checks the
    dtype argument (or bits) and returns (dtype name, bits, log2 of the index limit)."""
    dims = check_shape(shape)
    key = check_uint64(seed, "seed")
    st = check_uint64(stream, "stream")
    dt, b, limit_log2 = resolve()
    off = check_span(offset, math.prod(dims), limit_log2)
    threads = check_n_threads(n_threads)
    o = None if out is None else A.contiguous_out(out, dims, dt)
    return DrawsRequest(kind=kind, shape=dims, seed=key, stream=st, dtype=dt, bits=b,
                        offset=off, out=o, n_threads=threads,
                        device=A.device(device) if out is None else None)


def random_bits(A: ArrayPolicy, shape, *, seed, stream=0, bits=32, offset=0, out=None,
                n_threads=None, device=None) -> DrawsRequest:
    def resolve():
        b = check_bits(bits)
        return {32: "uint32", 16: "uint16", 8: "uint8"}[b], b, 64

    return _draws(A, "bits", shape, seed, stream, resolve, offset, out, n_threads, device)


def uniform(A: ArrayPolicy, shape, *, seed, stream=0, dtype=np.float32, offset=0, out=None,
            n_threads=None, device=None) -> DrawsRequest:
    def resolve():  # float64 takes two words per element: 2**63 elements at most
        dt = float_dtype(dtype)
        return dt, 32, 64 if dt == "float32" else 63

    return _draws(A, "uniform", shape, seed, stream, resolve, offset, out, n_threads, device)


def standard_normal(A: ArrayPolicy, shape, *, seed, stream=0, dtype=np.float64, offset=0,
                    out=None, n_threads=None, device=None) -> DrawsRequest:
    return _draws(A, "normal", shape, seed, stream, lambda: (float_dtype(dtype), 32, 64),
                  offset, out, n_threads, device)


def philox4x32(A: ArrayPolicy, counter, key, rounds=10, *, n_threads=None) -> PhiloxRequest:
    ctr = A.words(counter, "counter", 4)
    k = A.words(key, "key", 2)
    r = as_int(rounds, "rounds")
    if not 0 <= r <= 16:
        raise ValueError(f"rounds must be in [0, 16], got {r}")
    threads = check_n_threads(n_threads)
    cs, ks = A.shape(ctr), A.shape(k)
    batch = _broadcast_shapes(cs[:-1], ks[:-1])
    if batch is None:
        raise ValueError(f"counter shape {cs} and key shape {ks} do not broadcast "
                         f"over their leading axes")
    return PhiloxRequest(ctr, k, r, batch, threads)


def _broadcast_shapes(a: tuple, b: tuple) -> tuple | None:
    """NumPy's broadcasting of two shapes, or None; for any number of axes (NumPy's own
    np.broadcast_shapes stops at 32)."""
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x != y and 1 not in (x, y):
            return None
        out.append(y if x == 1 else x)
    return tuple(out)
