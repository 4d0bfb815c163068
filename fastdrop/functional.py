"""Dropout: forward, backward, masks, bias-dropout-add, alpha and gaussian dropout (CPU).

Every function follows docs/contract.md sections 4-7 bit for bit, validates all its
arguments before writing anything, and equals its twin in fastdrop.reference.
"""
from __future__ import annotations

import math
import numbers
import secrets
from typing import Any

import numpy as np

from ._dispatch import on_cuda_array, on_cuda_device
from ._interop import framework_arrays
from ._operands import KS, Op, block_map, check_out, compute_dtype, float_array, run
from ._validation import (as_int, check_bits, check_bool, check_choice, check_n_threads,
                          check_shape, check_span, check_uint64)

__all__ = [
    "dropout", "dropout_backward", "dropout_mask", "unpack_mask", "effective_p",
    "dropout_scale", "bias_dropout_add", "bias_dropout_add_backward", "alpha_dropout",
    "alpha_dropout_backward", "gaussian_dropout", "gaussian_dropout_backward",
    "gaussian_sigma",
]

ALPHA_PRIME = 1.7580993408473766  # SELU scale * alpha (Klambauer et al. 2017)

# ---- probabilities ---------------------------------------------------------------------


def check_p(p: Any) -> float:
    """A real drop probability in [0, 1]."""
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real):
        raise TypeError(f"p must be a real number, got {type(p).__name__}")
    pf = float(p)
    if math.isnan(pf) or not 0.0 <= pf <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    return pf


def _threshold(p: float, bits: int) -> int:
    """t = round_half_even(p * 2^bits), clamped to [0, 2^bits]."""
    return min(max(int(np.rint(p * 2.0**bits)), 0), 1 << bits)


def effective_p(p: float, bits: int = 16) -> float:
    """The drop probability actually used: round_half_even(p * 2**bits) / 2**bits.

    Examples
    --------
    >>> effective_p(0.1)
    0.100006103515625
    """
    b = check_bits(bits)
    return _threshold(check_p(p), b) / 2.0**b


def dropout_scale(p: float, bits: int = 16) -> float:
    """The inverted-dropout scale 2**bits / (2**bits - t): 1 / P(keep) exactly (0 if p drops all)."""
    b = check_bits(bits)
    t = _threshold(check_p(p), b)
    return 0.0 if t == 1 << b else 2.0**b / (2.0**b - t)


# ---- argument checks -------------------------------------------------------------------


def _check_mode(mode: Any) -> str:
    return check_choice(mode, "mode", ("inverted", "classic"))


def _check_mask_format(mask_format: Any) -> str:
    return check_choice(mask_format, "mask_format", ("packed", "bool"))


def _check_noise_shape(noise_shape: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Keras noise_shape: same length as x.shape, each entry x's or 1 (None: x's)."""
    if noise_shape is None:
        return shape
    if isinstance(noise_shape, (str, bytes)) or not hasattr(noise_shape, "__len__"):
        raise TypeError(f"noise_shape must be a tuple of ints, got {noise_shape!r}")
    if len(noise_shape) != len(shape):
        raise ValueError(f"noise_shape {tuple(noise_shape)} must have one entry per axis "
                         f"of x {shape}")
    dims = tuple(s if d is None else as_int(d, "noise_shape") for d, s in zip(noise_shape, shape))
    for d, s in zip(dims, shape):
        if d != s and d != 1:
            raise ValueError(f"noise_shape {dims} does not broadcast to x's shape {shape}")
    return dims


def _check_block(block: Any, shape: tuple[int, ...], noise_shape: Any = None):
    """The noise shape of this array and the block map of its draws.

    block=None: (noise over shape, None).  block=(origin, global_shape): the array is the
    block at `origin` of a C-ordered logical array of `global_shape`; noise_shape then
    refers to the global array, and the block's noise is the part of it the block covers.
    """
    if block is None:
        return _check_noise_shape(noise_shape, shape), None
    if isinstance(block, (str, bytes)) or not hasattr(block, "__len__") or len(block) != 2:
        raise TypeError("block must be a pair (origin, global_shape) of tuples of ints")
    origin = check_shape(block[0], "block origin")
    gshape = check_shape(block[1], "block global_shape")
    if not len(origin) == len(gshape) == len(shape):
        raise ValueError(f"block origin {origin} and global_shape {gshape} must have one "
                         f"entry per axis of the array, shape {shape}")
    for o, n, g in zip(origin, shape, gshape):
        if o + n > g:
            raise ValueError(f"block at origin {origin} of shape {shape} does not fit in "
                             f"global_shape {gshape}")
    if math.prod(gshape) > 2**64:
        raise ValueError(f"block global_shape {gshape} has more than 2**64 elements")
    gnoise = _check_noise_shape(noise_shape, gshape)
    noise = tuple(n if gn != 1 else 1 for n, gn in zip(shape, gnoise))
    norigin = tuple(o if gn != 1 else 0 for o, gn in zip(origin, gnoise))
    return noise, block_map(noise, norigin, gnoise)


def _check_seed(seed: Any) -> int:
    """seed=None draws 64 bits from the operating system's entropy."""
    return secrets.randbits(64) if seed is None else check_uint64(seed, "seed")


def _scale(mode: str, p: float, bits: int) -> tuple[int, float]:
    t = _threshold(p, bits)
    if mode == "classic":
        return t, 1.0
    return t, (0.0 if t == 1 << bits else 2.0**bits / (2.0**bits - t))


def _mask_outputs(noise: tuple[int, ...], return_mask: bool, mask_format: str):
    if not return_mask:
        return None, None
    if mask_format == "packed":
        return np.empty((math.prod(noise) + 7) // 8, np.uint8), None
    return None, np.empty(noise, np.bool_)


def _keep_flags(noise, seed, stream, bits, t, threads, packed_out=None, flags=None,
                block=None):
    """Bool keep flags over the noise shape, into `flags` if given (and, optionally, the
    packed mask)."""
    flags = np.empty(noise, np.bool_) if flags is None else flags
    shape = (flags.size,) if block is None else noise
    run(Op.OP_MASK, KS.KS_DRAWS, shape, np.dtype(np.float32), bool_out=flags,
        packed_out=packed_out, seed=seed, stream=stream, bits=bits, t=t, n_threads=threads,
        block=block)
    return flags


def _apply(op, x, y, noise, *, seed=None, stream=0, bits=16, t=0, mask=None,
           packed_out=None, bool_out=None, threads=1, block=None, **scalars):
    """Run op over x -> y with keep flags drawn (seed) or given (mask), broadcasting a
    noise-shaped mask to x's shape; `block`: the noise's block map (`_check_block`)."""
    dtype = x.dtype
    full = noise == x.shape
    common = dict(y=y, x=x, n_threads=threads, bits=bits, **scalars)
    if mask is None:
        if full:
            run(op, KS.KS_DRAWS, x.shape, dtype, packed_out=packed_out, bool_out=bool_out,
                seed=seed, stream=stream, t=t, block=block, **common)
            return
        flags = _keep_flags(noise, seed, stream, bits, t, threads, packed_out, bool_out,
                            block)
        run(op, KS.KS_FLAGS, x.shape, dtype, f=flags, **common)
    elif mask.dtype == np.uint8:  # packed
        if full:
            run(op, KS.KS_PACKED, x.shape, dtype, packed_in=mask, **common)
        else:
            flags = unpack_mask(mask, noise)
            run(op, KS.KS_FLAGS, x.shape, dtype, f=flags, **common)
    else:
        run(op, KS.KS_FLAGS, x.shape, dtype, f=mask, **common)


def _check_mask(mask: Any, noise: tuple[int, ...]) -> np.ndarray:
    """A packed (uint8, ceil(n/8) bytes) or bool (noise shape) mask."""
    if not isinstance(mask, np.ndarray):
        mask = np.asarray(mask)
    n = math.prod(noise)
    if mask.dtype == np.uint8:
        if mask.ndim != 1 or mask.size != (n + 7) // 8:
            raise ValueError(f"packed mask must be 1-D with {(n + 7) // 8} bytes for "
                             f"{n} elements, got shape {mask.shape}")
        return mask
    if mask.dtype == np.bool_:
        if mask.shape != noise:
            raise ValueError(f"bool mask must have shape {noise}, got {mask.shape}")
        return mask
    raise TypeError(f"mask must be a packed uint8 or a bool array, got dtype {mask.dtype}")


def _prepare_out(out, x, inputs, may_alias=("x",)):
    if out is None:
        return np.empty_like(x)
    return check_out(out, x.shape, x.dtype, inputs, may_alias)


def _identity(xa, y):
    """Inverted dropout at inference: x itself, or copied into out."""
    if y is None:
        return xa
    if y is not xa:
        np.copyto(y, xa)
    return y


def _seed_or_mask(mask, seed, noise):
    if (mask is None) == (seed is None):
        raise ValueError("give exactly one of mask or seed")
    return (_check_mask(mask, noise), None) if mask is not None else (None, check_uint64(seed, "seed"))


# ---- public API --------------------------------------------------------------------------


@on_cuda_array
@framework_arrays("x")
def dropout(x: Any, p: float = 0.5, *, seed: int | None = None, stream: int = 0,
            training: bool = True, mode: str = "inverted", noise_shape: Any = None,
            bits: int = 16, return_mask: bool = False, mask_format: str = "packed",
            out: np.ndarray | None = None, n_threads: int | None = None,
            block: Any = None):
    """Dropout of x with probability p (docs/contract.md section 4).

    Parameters
    ----------
    x : array_like of float16, bfloat16, float32 or float64
        Any shape (0-d and empty included) and any strides.
    p : float
        Drop probability in [0, 1]; the one used is ``effective_p(p, bits)``.
    seed : int, optional
        Unsigned 64-bit key; None draws one from the OS (the call is then not reproducible
        unless the mask is returned).
    stream : int
        Unsigned 64-bit stream number: one per call/layer/step under a seed.
    training : bool
        False: inverted mode returns x itself (or copies it into out); classic mode
        returns ``x * P(keep)``.
    mode : {"inverted", "classic"}
        "inverted" scales kept elements by 1/P(keep) while training (PyTorch, Keras);
        "classic" keeps them as they are and scales at inference instead.
    noise_shape : tuple, optional
        Shape of the mask, one entry per axis, each x's or 1 (e.g. ``(N, C, 1, 1)`` drops
        whole channels); None entries mean x's.
    bits : {16, 32}
        Bits per draw: p is resolved to multiples of 2**-bits.
    return_mask : bool
        Also return the mask (over noise_shape) for the backward pass.
    mask_format : {"packed", "bool"}
        Packed: uint8, bit k of byte j keeps element 8j+k (LSB first). Bool: noise shape.
    out : numpy.ndarray, optional
        Output of x's shape and dtype; may be x itself (in place).
    n_threads : int, optional
        Threads; None means OMP_NUM_THREADS, else all cores. Never changes the result.
    block : (origin, global_shape), optional
        x is the block at index `origin` of a larger C-ordered logical array of shape
        `global_shape` (a chunk, a shard): each element draws as its global index does, so
        the blocks of an array give exactly the whole array's result (fastdrop.dask uses
        it). noise_shape then refers to the global array; a returned mask covers the block,
        in its own C order. Every function of this module takes it.

    Returns
    -------
    y : numpy.ndarray, or (y, mask) when return_mask
        Dropped elements are exactly +0.0, whatever x holds (NaN, Inf); a kept NaN stays NaN.
    """
    xa = float_array(x, "x")
    pf = check_p(p)
    m = _check_mode(mode)
    b = check_bits(bits)
    fmt = _check_mask_format(mask_format)
    noise, nblock = _check_block(block, xa.shape, noise_shape)
    st = check_uint64(stream, "stream")
    threads = check_n_threads(n_threads)
    training = check_bool(training, "training")
    return_mask = check_bool(return_mask, "return_mask")
    y = None if (out is None and not training and m == "inverted") else _prepare_out(out, xa, {"x": xa})
    s = _check_seed(seed)

    if not training:
        if m == "inverted":
            y = _identity(xa, y)
        else:
            ct = compute_dtype(xa.dtype)
            keep = ct.type(1.0 - _threshold(pf, b) / 2.0**b)
            np.copyto(y, (xa.astype(ct) * keep).astype(xa.dtype))
        return (y, None) if return_mask else y

    t, scale = _scale(m, pf, b)
    packed, boolm = _mask_outputs(noise, return_mask, fmt)
    _apply(Op.OP_DROPOUT, xa, y, noise, block=nblock, seed=s, stream=st, bits=b, t=t,
           packed_out=packed, bool_out=boolm, threads=threads, s=scale)
    if return_mask:
        return y, (packed if fmt == "packed" else boolm)
    return y


@on_cuda_array
@framework_arrays("grad", "mask")
def dropout_backward(grad: Any, p: float, *, mask: Any = None, seed: int | None = None,
                     stream: int = 0, mode: str = "inverted", noise_shape: Any = None,
                     bits: int = 16, out: np.ndarray | None = None,
                     n_threads: int | None = None,
                     block: Any = None) -> np.ndarray:
    """Gradient of dropout: ``grad * scale`` where kept, else +0 (classic: ``grad``).

    Give exactly one of `mask` (packed uint8 or bool, as returned by the forward call) or
    `seed` (with the forward call's stream, bits, p and noise_shape: the mask is
    regenerated and never stored).
    """
    g = float_array(grad, "grad")
    pf = check_p(p)
    m = _check_mode(mode)
    b = check_bits(bits)
    noise, nblock = _check_block(block, g.shape, noise_shape)
    st = check_uint64(stream, "stream")
    threads = check_n_threads(n_threads)
    mk, s = _seed_or_mask(mask, seed, noise)
    y = _prepare_out(out, g, {"grad": g, "mask": mk}, may_alias=("grad",))
    t, scale = _scale(m, pf, b)
    _apply(Op.OP_DROPOUT, g, y, noise, block=nblock, seed=s, stream=st, bits=b, t=t, mask=mk,
           threads=threads, s=scale)
    return y


@on_cuda_device
def dropout_mask(shape: Any, p: float, *, seed: int, stream: int = 0, bits: int = 16,
                 packed: bool = True, offset: int = 0, n_threads: int | None = None,
                 block: Any = None) -> np.ndarray:
    """The keep mask dropout would draw over `shape`: packed uint8 bytes or bool array.

    offset is the logical index of the first element (a 1-D run of a larger array);
    block=(origin, global_shape) places an N-d block of `shape` in a larger array (the
    mask is then that of the block's elements, in the block's own C order).
    """
    dims = check_shape(shape)
    pf = check_p(p)
    b = check_bits(bits)
    s = check_uint64(seed, "seed")
    st = check_uint64(stream, "stream")
    n = math.prod(dims)
    off = check_span(offset, n)
    threads = check_n_threads(n_threads)
    packed = check_bool(packed, "packed")
    _, nblock = _check_block(block, dims)
    if nblock is not None and off:
        raise ValueError("give offset or block, not both")
    packed_out = np.empty((n + 7) // 8, np.uint8) if packed else None
    bool_out = None if packed else np.empty(dims, np.bool_)
    run(Op.OP_MASK, KS.KS_DRAWS, (n,) if nblock is None else dims, np.dtype(np.float32),
        packed_out=packed_out, bool_out=bool_out, seed=s, stream=st, bits=b,
        t=_threshold(pf, b), offset=off, n_threads=threads, block=nblock)
    res = packed_out if packed else bool_out
    return res


@framework_arrays("mask")
def unpack_mask(mask: Any, shape: Any) -> np.ndarray:
    """A packed mask (uint8, LSB first) as a bool array of `shape`."""
    dims = check_shape(shape)
    arr = np.asarray(mask)
    if arr.dtype != np.uint8:
        raise TypeError(f"mask must be a packed uint8 array, got dtype {arr.dtype}")
    n = math.prod(dims)
    if arr.ndim != 1 or arr.size != (n + 7) // 8:
        raise ValueError(f"packed mask must be 1-D with {(n + 7) // 8} bytes for {n} elements, "
                         f"got shape {arr.shape}")
    return np.unpackbits(arr, count=n, bitorder="little").view(np.bool_).reshape(dims)


@on_cuda_array
@framework_arrays("x", "bias", "residual")
def bias_dropout_add(x: Any, bias: Any, residual: Any, p: float, *, seed: int,
                     stream: int = 0, bits: int = 16, return_mask: bool = False,
                     out: np.ndarray | None = None, n_threads: int | None = None,
                     block: Any = None):
    """Fused ``residual + dropout(x + bias)`` in one pass (docs/contract.md section 7).

    bias has shape ``(x.shape[-1],)`` or is None; residual has x's shape; all share x's
    dtype. The mask is the one ``dropout(x, p, seed=seed, stream=stream, bits=bits)`` draws.
    out may be x or residual itself. Returns y, or (y, packed mask).
    """
    xa = float_array(x, "x")
    ba = None if bias is None else float_array(bias, "bias")
    ra = float_array(residual, "residual")
    pf = check_p(p)
    b = check_bits(bits)
    s = check_uint64(seed, "seed")
    st = check_uint64(stream, "stream")
    threads = check_n_threads(n_threads)
    return_mask = check_bool(return_mask, "return_mask")
    for name, arr in (("bias", ba), ("residual", ra)):
        if arr is not None and arr.dtype != xa.dtype:
            raise TypeError(f"{name} must have x's dtype {xa.dtype}, got {arr.dtype}")
    if ba is not None and (xa.ndim == 0 or ba.shape != (xa.shape[-1],)):
        raise ValueError(f"bias must have shape (x.shape[-1],) = "
                         f"{(xa.shape[-1],) if xa.ndim else '()'}, got {ba.shape}")
    if ra.shape != xa.shape:
        raise ValueError(f"residual must have x's shape {xa.shape}, got {ra.shape}")
    y = (np.empty_like(xa) if out is None else
         check_out(out, xa.shape, xa.dtype, {"x": xa, "residual": ra, "bias": ba},
                   may_alias=("x", "residual")))
    _, nblock = _check_block(block, xa.shape)
    t, scale = _scale("inverted", pf, b)
    packed = np.empty((xa.size + 7) // 8, np.uint8) if return_mask else None
    run(Op.OP_BDA, KS.KS_DRAWS, xa.shape, xa.dtype, y=y, x=xa, b=ba, r=ra, packed_out=packed,
        seed=s, stream=st, bits=b, t=t, s=scale, n_threads=threads, block=nblock)
    return (y, packed) if return_mask else y


@on_cuda_array
@framework_arrays("grad", "mask")
def bias_dropout_add_backward(grad: Any, p: float, *, mask: Any = None, seed: int | None = None,
                              stream: int = 0, bits: int = 16, has_bias: bool = True,
                              n_threads: int | None = None,
                              block: Any = None):
    """Gradients of bias_dropout_add: (dx, dbias, dresidual).

    dx is dropout's gradient (from the mask or regenerated from seed); dbias sums it over
    all axes but the last, from the compute-precision products (float32 for half types),
    accumulated in float64; None when has_bias is False. dresidual is grad itself.
    """
    g = float_array(grad, "grad")
    has_bias = check_bool(has_bias, "has_bias")
    if has_bias and g.ndim == 0:
        raise ValueError("grad must have at least one axis when has_bias is True")
    ct = compute_dtype(g.dtype)
    # in the compute precision, so that dbias sums the unrounded products (half types)
    dx_c = dropout_backward(g.astype(ct, copy=False), p, mask=mask, seed=seed, stream=stream,
                            bits=bits, n_threads=n_threads, block=block)
    dbias = None
    if has_bias:
        dbias = dx_c.astype(np.float64).reshape(-1, g.shape[-1]).sum(axis=0).astype(g.dtype)
    dx = dx_c if ct == g.dtype else dx_c.astype(g.dtype)
    return dx, dbias, g


def _alpha_constants(p: float, bits: int) -> tuple[int, float, float, float]:
    t = _threshold(p, bits)
    q = t / 2.0**bits
    a = ((1.0 - q) * (1.0 + q * ALPHA_PRIME**2)) ** -0.5 if t < 1 << bits else 0.0
    return t, a, a * ALPHA_PRIME * q, -a * ALPHA_PRIME * (1.0 - q)


@on_cuda_array
@framework_arrays("x")
def alpha_dropout(x: Any, p: float = 0.5, *, seed: int | None = None, stream: int = 0,
                  training: bool = True, noise_shape: Any = None, bits: int = 16,
                  return_mask: bool = False, mask_format: str = "packed",
                  out: np.ndarray | None = None, n_threads: int | None = None,
                  block: Any = None):
    """Alpha dropout (SELU networks; PyTorch's and Keras' definition).

    With q = effective_p(p), alpha' = 1.7580993408473766 and
    a = ((1 - q) (1 + q alpha'^2))^-1/2: kept elements become ``x * a + a alpha' q``, dropped
    ones ``-a alpha' (1 - q)``, keeping zero mean and unit variance for SELU activations.
    q = 0 returns x unchanged (a copy), q = 1 returns zeros. Inference returns x itself.
    """
    xa = float_array(x, "x")
    pf = check_p(p)
    b = check_bits(bits)
    fmt = _check_mask_format(mask_format)
    noise, nblock = _check_block(block, xa.shape, noise_shape)
    st = check_uint64(stream, "stream")
    threads = check_n_threads(n_threads)
    training = check_bool(training, "training")
    return_mask = check_bool(return_mask, "return_mask")
    y = None if (out is None and not training) else _prepare_out(out, xa, {"x": xa})
    s = _check_seed(seed)
    if not training:
        y = _identity(xa, y)
        return (y, None) if return_mask else y
    t, a, c, d = _alpha_constants(pf, b)
    packed, boolm = _mask_outputs(noise, return_mask, fmt)
    if t == 0 or t == 1 << b:  # nothing dropped: identity; everything dropped: zeros
        _apply(Op.OP_DROPOUT, xa, y, noise, block=nblock, seed=s, stream=st, bits=b, t=t,
               packed_out=packed, bool_out=boolm, threads=threads, s=1.0)
    else:
        _apply(Op.OP_ALPHA, xa, y, noise, block=nblock, seed=s, stream=st, bits=b, t=t,
               packed_out=packed, bool_out=boolm, threads=threads, a=a, c=c, d=d)
    if return_mask:
        return y, (packed if fmt == "packed" else boolm)
    return y


@on_cuda_array
@framework_arrays("grad", "mask")
def alpha_dropout_backward(grad: Any, p: float, *, mask: Any = None, seed: int | None = None,
                           stream: int = 0, noise_shape: Any = None, bits: int = 16,
                           out: np.ndarray | None = None, n_threads: int | None = None,
                           block: Any = None
                           ) -> np.ndarray:
    """Gradient of alpha_dropout: ``grad * a`` where kept, else +0 (mask or seed, as in
    dropout_backward)."""
    g = float_array(grad, "grad")
    pf = check_p(p)
    b = check_bits(bits)
    noise, nblock = _check_block(block, g.shape, noise_shape)
    st = check_uint64(stream, "stream")
    threads = check_n_threads(n_threads)
    mk, s = _seed_or_mask(mask, seed, noise)
    y = _prepare_out(out, g, {"grad": g, "mask": mk}, may_alias=("grad",))
    t, a, _, _ = _alpha_constants(pf, b)
    scale = 1.0 if t == 0 else a
    _apply(Op.OP_DROPOUT, g, y, noise, block=nblock, seed=s, stream=st, bits=b, t=t, mask=mk,
           threads=threads, s=scale)
    return y


# ---- gaussian dropout ----------------------------------------------------------------


def gaussian_sigma(p: float) -> float:
    """Standard deviation ``sqrt(p / (1 - p))`` of gaussian dropout's noise (float64).

    Examples
    --------
    >>> gaussian_sigma(0.5)
    1.0
    """
    pf = check_p(p)
    if pf == 1.0:
        raise ValueError("p must be in [0, 1) for gaussian dropout (the noise's variance "
                         "p / (1 - p) is infinite at p = 1)")
    return math.sqrt(pf / (1.0 - pf))


def _gauss(op_input, out, inputs, may_alias, p, seed, stream, n_threads, block):
    g = op_input
    _, nblock = _check_block(block, g.shape)
    sigma = gaussian_sigma(p)
    st = check_uint64(stream, "stream")
    threads = check_n_threads(n_threads)
    y = _prepare_out(out, g, inputs, may_alias=may_alias)
    s = _check_seed(seed)
    _apply(Op.OP_GAUSS, g, y, g.shape, seed=s, stream=st, bits=32, threads=threads, s=sigma,
           block=nblock)
    return y


@on_cuda_array
@framework_arrays("x")
def gaussian_dropout(x: Any, p: float = 0.5, *, seed: int | None = None, stream: int = 0,
                     training: bool = True, out: np.ndarray | None = None,
                     n_threads: int | None = None,
                     block: Any = None) -> np.ndarray:
    """Gaussian dropout (Keras ``GaussianDropout``): multiplicative N(1, p / (1 - p)) noise.

    ``y = x * g`` with ``g = 1 + gaussian_sigma(p) * z``, where z is the standard normal
    deviate of the 32-bit word of each element's logical index (`standard_normal`; the
    transform is exact and documented in docs/contract.md).  g is computed in float64 and
    the product in the compute precision (float32 for float16/bfloat16, rounded once).
    E[y] = x and Var[y] = x**2 p / (1 - p).  p must be in [0, 1): p = 0 gives x unchanged
    (a copy).  Inference (``training=False``) returns x itself, as Keras does.
    There is no mask: the backward pass regenerates g from (seed, stream).
    """
    xa = float_array(x, "x")
    check_p(p)
    training = check_bool(training, "training")
    if not training:
        gaussian_sigma(p)
        check_uint64(stream, "stream")
        check_n_threads(n_threads)
        y = None if out is None else _prepare_out(out, xa, {"x": xa})
        _check_seed(seed)
        _check_block(block, xa.shape)
        return _identity(xa, y)
    return _gauss(xa, out, {"x": xa}, ("x",), p, seed, stream, n_threads, block)


@on_cuda_array
@framework_arrays("grad")
def gaussian_dropout_backward(grad: Any, p: float, *, seed: int, stream: int = 0,
                              out: np.ndarray | None = None,
                              n_threads: int | None = None,
                              block: Any = None) -> np.ndarray:
    """Gradient of gaussian_dropout: ``grad * g`` with the forward call's noise, regenerated
    from its (seed, stream, p); nothing is stored between the passes."""
    g = float_array(grad, "grad")
    check_p(p)
    if seed is None:
        raise ValueError("seed is required: give the forward call's seed and stream")
    check_uint64(seed, "seed")
    return _gauss(g, out, {"grad": g}, ("grad",), p, seed, stream, n_threads, block)
