"""The GPU twins of fastdrop's public functions: same signatures, same defaults, same
argument checks (imported from fastdrop.functional / fastdrop._validation, not copied),
same results bit for bit (docs/contract.md).

Arrays are CUDA arrays of any framework (see `fastdrop._cuda._memory`), used in place
(zero-copy) when C-contiguous.  Work runs on the stream the primary input's producer
names (``__cuda_array_interface__['stream']``, or a Numba array's own stream); outputs
are allocated by the input's framework (a Numba device array for Numba, CuPy for CuPy,
PyTorch for PyTorch) and returned as its type.  Functions that take no array
(`random_bits`, `uniform`, `standard_normal`, `dropout_mask`) take ``device=``: None
(Numba device array on the current GPU), a GPU index or "cuda"/"cuda:N", or a CUDA array
whose framework, device and stream the output should share.  ``n_threads`` is accepted
and checked for parity with the CPU API, and ignored.

``block=(origin, global_shape)`` works as on the CPU (checked and mapped by
`fastdrop.functional._check_block`): the kernels then take the block map (`_block_map`)
and each element draws its global index.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np

from .._validation import (as_int, check_bits, check_bool, check_n_threads, check_shape,
                           check_span, check_uint64, shape_size)
from .._operands import coalesce
from ..functional import (_alpha_constants, _check_block, _check_mask_format, _check_mode,
                          _check_seed, _scale, _threshold, check_p, gaussian_sigma)
from ..rng import _float_dtype
from . import _kernels as K
from . import is_cuda_array
from ._env import SIMULATOR, cuda
from ._memory import (FLOATS, Operand, Target, allocate, as_operand, check_out,
                      storage_dtype, target_of)

__all__ = [
    "is_cuda_array", "dropout", "dropout_backward", "dropout_mask", "bias_dropout_add",
    "bias_dropout_add_backward", "alpha_dropout", "alpha_dropout_backward",
    "gaussian_dropout", "gaussian_dropout_backward", "random_bits", "uniform",
    "standard_normal", "philox4x32", "set_launch_geometry",
]

set_launch_geometry = K.set_launch_geometry
_u64 = np.uint64


# ---- operands -------------------------------------------------------------------------------


def _float_operand(x: Any, name: str) -> Operand:
    if not is_cuda_array(x):
        raise TypeError(f"{name} must be a CUDA array (the GPU backend got "
                        f"{type(x).__name__})")
    op = as_operand(x, name)
    if op.name not in FLOATS:
        raise TypeError(f"{name} must have dtype float16, bfloat16, float32 or float64, "
                        f"got {op.name}")
    return op


def _device_ctx(device_id):
    if SIMULATOR or device_id is None:
        return contextlib.nullcontext()
    return cuda.gpus[device_id]


_dummies: dict = {}


def _dummy(dtype) -> Any:
    """A 1-element device array standing for an absent operand (kernels are typed)."""
    dtype = np.dtype(dtype)
    key = (dtype.str, None if SIMULATOR else cuda.get_current_device().id)
    arr = _dummies.get(key)
    if arr is None:
        arr = _dummies[key] = cuda.device_array(1, dtype=dtype)
    return arr


def _prepare_out(out, X: Operand, inputs: dict, may_alias=("x",)) -> Operand:
    if out is None:
        return allocate(target_of(X), X.shape, X.name)
    return check_out(out, X.shape, X.name, inputs, may_alias)


def _check_mask(mask: Any, noise: tuple) -> Operand:
    """A packed (uint8, ceil(n/8) bytes) or bool (noise shape) CUDA mask."""
    if not is_cuda_array(mask):
        raise TypeError(f"mask must be a CUDA array like grad, got {type(mask).__name__}")
    mk = as_operand(mask, "mask")
    n = math.prod(noise)
    if mk.name == "uint8":
        if len(mk.shape) != 1 or mk.size != (n + 7) // 8:
            raise ValueError(f"packed mask must be 1-D with {(n + 7) // 8} bytes for "
                             f"{n} elements, got shape {mk.shape}")
        return mk
    if mk.name == "bool":
        if mk.shape != noise:
            raise ValueError(f"bool mask must have shape {noise}, got {mk.shape}")
        return mk
    raise TypeError(f"mask must be a packed uint8 or a bool array, got dtype {mk.name}")


def _seed_or_mask(mask, seed, noise):
    if (mask is None) == (seed is None):
        raise ValueError("give exactly one of mask or seed")
    return (_check_mask(mask, noise), None) if mask is not None else (None, check_uint64(seed, "seed"))


def _noise_strides(noise: tuple, shape: tuple) -> np.ndarray:
    """C strides (in elements) of the noise shape, 0 on the broadcast axes."""
    strides, acc = [], 1
    for d, s in zip(reversed(noise), reversed(shape)):
        strides.append(acc if d == s else 0)
        acc *= d
    return np.array(strides[::-1], np.int64)


# ---- kernel runners -------------------------------------------------------------------------


def _block_map(shape: tuple, block, strm):
    """The kernel arguments (base, shape, draw strides) of a block map ``(strides, base)``
    of `shape` (`functional._check_block`), or unused dummies when block is None.

    The axes are coalesced as the CPU driver does (`_operands.coalesce`): length-1 axes
    are dropped (their draw stride may even be 2**64, which no uint64 holds; their index
    is always 0) and axes whose draws are contiguous are merged, so the kernels' per-element
    div/mod chain (`_device.draw_index`) is as short as it can be -- one axis when the
    block is a run of whole rows.  Call only for a non-empty shape: every axis of the
    global array then has length >= 1, so a kept stride is at most 2**63."""
    if block is None:
        return _u64(0), _dummy(np.int64), _dummy(np.uint64)
    strides, base = block
    cshape, (cstrides,) = coalesce(shape, [tuple(strides)])
    return (_u64(base), cuda.to_device(np.array(cshape, np.int64), stream=strm),
            cuda.to_device(np.array(cstrides, np.uint64), stream=strm))


def _run(op: int, ks: int, X: Operand, Y: Operand, *, seed=0, stream=0, bits=16, t=0,
         s=1.0, a=0.0, c=0.0, d=0.0, bias: Operand | None = None,
         res: Operand | None = None, pin=None, fin=None, pout=None, bout=None,
         noise: tuple | None = None, block=None):
    """One launch of the fused dropout kernel over x's n elements (C order); block: the
    block map of x's draws (KS_DRAWS only, see `_block_map`)."""
    n = X.size
    if n == 0:
        return
    ct = K.compute_type(X.name)
    sd = storage_dtype(X.name)
    strm = X.stream
    if noise is None or noise == X.shape:
        full, xshape, nstr = True, _dummy(np.int64), _dummy(np.int64)
    else:
        full = False
        xshape = cuda.to_device(np.array(X.shape, np.int64), stream=strm)
        nstr = cuda.to_device(_noise_strides(noise, X.shape), stream=strm)
    ybuf = Y.output_buffer()
    kern = K.dropout_kernel(X.name, op, ks, block is not None)
    K.launch(kern, (n + 7) // 8, strm,
             ybuf, X.flat(),
             bias.flat() if bias is not None else _dummy(sd),
             res.flat() if res is not None else _dummy(sd),
             pin if pin is not None else _dummy(np.uint8),
             fin if fin is not None else _dummy(np.bool_),
             pout if pout is not None else _dummy(np.uint8),
             bout if bout is not None else _dummy(np.bool_),
             _u64(n), _u64(X.shape[-1] if X.shape else 1), _u64(seed), _u64(stream),
             _u64(bits), _u64(t), ct(s), ct(a), ct(c), ct(d), full, pout is not None,
             bout is not None, bias is not None, xshape, nstr,
             *_block_map(X.shape, block, strm))
    Y.commit(ybuf)


def _run_mask(n: int, offset: int, seed: int, stream: int, bits: int, t: int, strm,
              pout=None, bout=None, block=None, shape: tuple | None = None):
    """Keep flags of draws offset .. offset + n - 1 into the packed and/or bool outputs;
    with block (a block map of `shape`, n elements), of the block's elements instead."""
    if n == 0:
        return
    outs = (pout if pout is not None else _dummy(np.uint8),
            bout if bout is not None else _dummy(np.bool_))
    flags = (_u64(seed), _u64(stream), _u64(bits), _u64(t), pout is not None,
             bout is not None)
    if block is None:
        K.launch(K.k_mask, (n + 7) // 8, strm, *outs, _u64(n), _u64(offset), *flags)
    else:
        K.launch(K.k_mask_block, (n + 7) // 8, strm, *outs, _u64(n),
                 *_block_map(shape, block, strm), *flags)


def _apply(op, X: Operand, Y: Operand, noise: tuple, *, seed=None, stream=0, bits=16, t=0,
           mask: Operand | None = None, return_mask=False, fmt="packed", block=None,
           **scalars):
    """fastdrop.functional._apply on the GPU: keep flags drawn (seed) or given (mask),
    a noise-shaped mask broadcast to x's shape; `block`: the noise's block map
    (`functional._check_block`), which only the drawn flags use.  Returns the (packed,
    bool) mask outputs."""
    full = noise == X.shape
    tgt = target_of(X)
    nn = math.prod(noise)
    P = B = None
    if return_mask:
        if fmt == "packed":
            P = allocate(tgt, ((nn + 7) // 8,), "uint8")
        else:
            B = allocate(tgt, noise, "bool")
    common = dict(bits=bits, **scalars)
    if mask is None:
        if full:
            _run(op, K.KS_DRAWS, X, Y, seed=seed, stream=stream, t=t,
                 pout=P.flat() if P is not None else None,
                 bout=B.flat() if B is not None else None, block=block, **common)
        else:
            drawn = dict(block=block, shape=noise)
            if B is not None:
                flags = B.flat()
                _run_mask(nn, 0, seed, stream, bits, t, X.stream, bout=flags, **drawn)
                _run(op, K.KS_BOOL, X, Y, fin=flags, noise=noise, **common)
            else:
                packed = P.flat() if P is not None else \
                    cuda.device_array((nn + 7) // 8, np.uint8, stream=X.stream)
                _run_mask(nn, 0, seed, stream, bits, t, X.stream, pout=packed, **drawn)
                _run(op, K.KS_PACKED, X, Y, pin=packed, noise=noise, **common)
    elif mask.name == "uint8":
        _run(op, K.KS_PACKED, X, Y, pin=mask.flat(), noise=noise, **common)
    else:
        _run(op, K.KS_BOOL, X, Y, fin=mask.flat(), noise=noise, **common)
    return P, B


def _identity(X: Operand, Y: Operand | None):
    """Inference: x itself, or copied into out."""
    if Y is None:
        return X.obj
    if not (Y.ptr == X.ptr and Y.strides == X.strides) and X.size:
        buf = Y.output_buffer()
        K.launch(K.k_copy, X.size, X.stream, buf, X.flat(), _u64(X.size))
        Y.commit(buf)
    return Y.obj


def _masks_out(P, B, fmt):
    return (P.obj if P is not None else None) if fmt == "packed" else \
        (B.obj if B is not None else None)


# ---- dropout ---------------------------------------------------------------------------------


def dropout(x: Any, p: float = 0.5, *, seed: int | None = None, stream: int = 0,
            training: bool = True, mode: str = "inverted", noise_shape: Any = None,
            bits: int = 16, return_mask: bool = False, mask_format: str = "packed",
            out: Any = None, n_threads: int | None = None, block: Any = None):
    """fastdrop.dropout for a CUDA array x (see its docstring)."""
    X = _float_operand(x, "x")
    pf = check_p(p)
    m = _check_mode(mode)
    b = check_bits(bits)
    fmt = _check_mask_format(mask_format)
    noise, nblock = _check_block(block, X.shape, noise_shape)
    st = check_uint64(stream, "stream")
    check_n_threads(n_threads)
    training = check_bool(training, "training")
    return_mask = check_bool(return_mask, "return_mask")
    with _device_ctx(X.device_id):
        Y = None if (out is None and not training and m == "inverted") else \
            _prepare_out(out, X, {"x": X})
        s = _check_seed(seed)
        if not training:
            if m == "inverted":
                y = _identity(X, Y)
            else:
                _run(K.OP_SCALE, K.KS_ALL, X, Y, s=1.0 - _threshold(pf, b) / 2.0**b)
                y = Y.obj
            return (y, None) if return_mask else y
        t, scale = _scale(m, pf, b)
        P, B = _apply(K.OP_SCALE, X, Y, noise, seed=s, stream=st, bits=b, t=t,
                      return_mask=return_mask, fmt=fmt, block=nblock, s=scale)
    if return_mask:
        return Y.obj, _masks_out(P, B, fmt)
    return Y.obj


def dropout_backward(grad: Any, p: float, *, mask: Any = None, seed: int | None = None,
                     stream: int = 0, mode: str = "inverted", noise_shape: Any = None,
                     bits: int = 16, out: Any = None, n_threads: int | None = None,
                     block: Any = None):
    """fastdrop.dropout_backward for a CUDA array grad (and a CUDA mask)."""
    G = _float_operand(grad, "grad")
    pf = check_p(p)
    m = _check_mode(mode)
    b = check_bits(bits)
    noise, nblock = _check_block(block, G.shape, noise_shape)
    st = check_uint64(stream, "stream")
    check_n_threads(n_threads)
    mk, s = _seed_or_mask(mask, seed, noise)
    with _device_ctx(G.device_id):
        Y = _prepare_out(out, G, {"grad": G, "mask": mk}, may_alias=("grad",))
        t, scale = _scale(m, pf, b)
        _apply(K.OP_SCALE, G, Y, noise, seed=s, stream=st, bits=b, t=t, mask=mk,
               block=nblock, s=scale)
    return Y.obj


def _target(device: Any) -> Target:
    """Where a function without array inputs puts its output (see the module doc)."""
    if device is None:
        return Target()
    if is_cuda_array(device):
        return target_of(as_operand(device, "device"))
    if isinstance(device, str):
        name = device.strip().lower()
        if name == "cuda":
            return Target()
        if name.startswith("cuda:"):
            return Target(device_id=as_int(int(name[5:]), "device"))
        raise ValueError(f"device must be 'cuda' or 'cuda:N', got {device!r}")
    idx = as_int(device, "device")
    if idx < 0:
        raise ValueError(f"device must be a GPU index >= 0, got {idx}")
    return Target(device_id=idx)


def _rng_out(out: Any, dims: tuple, name: str) -> Operand:
    o = check_out(out, dims, name, {})
    if not o.c_contiguous:
        raise ValueError("out must be C-contiguous")
    return o


def dropout_mask(shape: Any, p: float, *, seed: int, stream: int = 0, bits: int = 16,
                 packed: bool = True, offset: int = 0, n_threads: int | None = None,
                 device: Any = None, block: Any = None):
    """fastdrop.dropout_mask on the GPU (output on `device`, see the module doc)."""
    dims = check_shape(shape)
    pf = check_p(p)
    b = check_bits(bits)
    s = check_uint64(seed, "seed")
    st = check_uint64(stream, "stream")
    n = math.prod(dims)
    off = check_span(offset, n)
    check_n_threads(n_threads)
    packed = check_bool(packed, "packed")
    _, nblock = _check_block(block, dims)
    if nblock is not None and off:
        raise ValueError("give offset or block, not both")
    tgt = _target(device)
    with _device_ctx(tgt.device_id):
        R = allocate(tgt, ((n + 7) // 8,) if packed else dims, "uint8" if packed else "bool")
        _run_mask(n, off, s, st, b, _threshold(pf, b), tgt.stream,
                  pout=R.flat() if packed else None, bout=None if packed else R.flat(),
                  block=nblock, shape=dims)
    return R.obj


# ---- bias-dropout-add ------------------------------------------------------------------------


def bias_dropout_add(x: Any, bias: Any, residual: Any, p: float, *, seed: int,
                     stream: int = 0, bits: int = 16, return_mask: bool = False,
                     out: Any = None, n_threads: int | None = None, block: Any = None):
    """fastdrop.bias_dropout_add for CUDA arrays."""
    X = _float_operand(x, "x")
    Bb = None if bias is None else _float_operand(bias, "bias")
    R = _float_operand(residual, "residual")
    pf = check_p(p)
    b = check_bits(bits)
    s = check_uint64(seed, "seed")
    st = check_uint64(stream, "stream")
    check_n_threads(n_threads)
    return_mask = check_bool(return_mask, "return_mask")
    for name, arr in (("bias", Bb), ("residual", R)):
        if arr is not None and arr.name != X.name:
            raise TypeError(f"{name} must have x's dtype {X.name}, got {arr.name}")
    if Bb is not None and (len(X.shape) == 0 or Bb.shape != (X.shape[-1],)):
        raise ValueError(f"bias must have shape (x.shape[-1],) = "
                         f"{(X.shape[-1],) if X.shape else '()'}, got {Bb.shape}")
    if R.shape != X.shape:
        raise ValueError(f"residual must have x's shape {X.shape}, got {R.shape}")
    with _device_ctx(X.device_id):
        Y = (allocate(target_of(X), X.shape, X.name) if out is None else
             check_out(out, X.shape, X.name, {"x": X, "residual": R, "bias": Bb},
                       may_alias=("x", "residual")))
        _, nblock = _check_block(block, X.shape)
        t, scale = _scale("inverted", pf, b)
        P = allocate(target_of(X), ((X.size + 7) // 8,), "uint8") if return_mask else None
        _run(K.OP_BDA, K.KS_DRAWS, X, Y, seed=s, stream=st, bits=b, t=t, s=scale, bias=Bb,
             res=R, pout=P.flat() if P is not None else None, block=nblock)
    return (Y.obj, P.obj) if return_mask else Y.obj


def _convert(A: Operand, name: str) -> Operand:
    """A new array of A's framework holding A's values as `name` (half <-> float32)."""
    C = allocate(target_of(A), A.shape, name)
    if A.size:
        buf = C.output_buffer()
        K.launch(K.convert_kernel(A.name, name), A.size, A.stream, buf, A.flat(),
                 _u64(A.size))
        C.commit(buf)
    return C


def bias_dropout_add_backward(grad: Any, p: float, *, mask: Any = None,
                              seed: int | None = None, stream: int = 0, bits: int = 16,
                              has_bias: bool = True, n_threads: int | None = None,
                              block: Any = None):
    """fastdrop.bias_dropout_add_backward for CUDA arrays: (dx, dbias, dresidual)."""
    G = _float_operand(grad, "grad")
    has_bias = check_bool(has_bias, "has_bias")
    if has_bias and len(G.shape) == 0:
        raise ValueError("grad must have at least one axis when has_bias is True")
    ct = "float32" if G.name in ("float16", "bfloat16") else G.name
    with _device_ctx(G.device_id):
        gc = grad if ct == G.name else _convert(G, ct).obj
        dx_c = dropout_backward(gc, p, mask=mask, seed=seed, stream=stream, bits=bits,
                                n_threads=n_threads, block=block)
        DX = as_operand(dx_c, "dx")
        dbias = None
        if has_bias:
            ncols = G.shape[-1]
            D = allocate(target_of(G), (ncols,), G.name)
            if ncols:
                buf = D.output_buffer()
                K.launch(K.colsum_kernel(G.name), ncols, G.stream, buf, DX.flat(),
                         _u64(G.size // ncols), _u64(ncols))
                D.commit(buf)
            dbias = D.obj
        dx = dx_c if ct == G.name else _convert(DX, G.name).obj
    return dx, dbias, grad


# ---- alpha dropout ---------------------------------------------------------------------------


def alpha_dropout(x: Any, p: float = 0.5, *, seed: int | None = None, stream: int = 0,
                  training: bool = True, noise_shape: Any = None, bits: int = 16,
                  return_mask: bool = False, mask_format: str = "packed",
                  out: Any = None, n_threads: int | None = None, block: Any = None):
    """fastdrop.alpha_dropout for a CUDA array x."""
    X = _float_operand(x, "x")
    pf = check_p(p)
    b = check_bits(bits)
    fmt = _check_mask_format(mask_format)
    noise, nblock = _check_block(block, X.shape, noise_shape)
    st = check_uint64(stream, "stream")
    check_n_threads(n_threads)
    training = check_bool(training, "training")
    return_mask = check_bool(return_mask, "return_mask")
    with _device_ctx(X.device_id):
        Y = None if (out is None and not training) else _prepare_out(out, X, {"x": X})
        s = _check_seed(seed)
        if not training:
            y = _identity(X, Y)
            return (y, None) if return_mask else y
        t, a, c, d = _alpha_constants(pf, b)
        if t == 0 or t == 1 << b:  # nothing dropped: identity; everything: zeros
            P, B = _apply(K.OP_SCALE, X, Y, noise, seed=s, stream=st, bits=b, t=t,
                          return_mask=return_mask, fmt=fmt, block=nblock, s=1.0)
        else:
            P, B = _apply(K.OP_ALPHA, X, Y, noise, seed=s, stream=st, bits=b, t=t,
                          return_mask=return_mask, fmt=fmt, block=nblock, a=a, c=c, d=d)
    if return_mask:
        return Y.obj, _masks_out(P, B, fmt)
    return Y.obj


def alpha_dropout_backward(grad: Any, p: float, *, mask: Any = None, seed: int | None = None,
                           stream: int = 0, noise_shape: Any = None, bits: int = 16,
                           out: Any = None, n_threads: int | None = None,
                           block: Any = None):
    """fastdrop.alpha_dropout_backward for CUDA arrays: ``grad * a`` where kept, else +0."""
    G = _float_operand(grad, "grad")
    pf = check_p(p)
    b = check_bits(bits)
    noise, nblock = _check_block(block, G.shape, noise_shape)
    st = check_uint64(stream, "stream")
    check_n_threads(n_threads)
    mk, s = _seed_or_mask(mask, seed, noise)
    with _device_ctx(G.device_id):
        Y = _prepare_out(out, G, {"grad": G, "mask": mk}, may_alias=("grad",))
        t, a, _, _ = _alpha_constants(pf, b)
        _apply(K.OP_SCALE, G, Y, noise, seed=s, stream=st, bits=b, t=t, mask=mk,
               block=nblock, s=1.0 if t == 0 else a)
    return Y.obj


# ---- gaussian dropout ------------------------------------------------------------------------


def _gaussian(X: Operand, Y: Operand, sigma: float, seed: int, stream: int, block=None):
    """y = x * (1 + sigma z) over x's elements; block: the block map of their words."""
    n = X.size
    if n == 0:
        return
    ybuf = Y.output_buffer()
    args = (ybuf, X.flat(), _u64(n), _u64(seed), _u64(stream), np.float64(sigma))
    if block is None:
        K.launch(K.gaussian_kernel(X.name), (n + 3) // 4, X.stream, *args)
    else:
        K.launch(K.gaussian_block_kernel(X.name), (n + 3) // 4, X.stream, *args,
                 *_block_map(X.shape, block, X.stream))
    Y.commit(ybuf)


def gaussian_dropout(x: Any, p: float = 0.5, *, seed: int | None = None, stream: int = 0,
                     training: bool = True, out: Any = None, n_threads: int | None = None,
                     block: Any = None):
    """Gaussian dropout of a CUDA array: ``y = x * (1 + sigma z)`` (fastdrop.reference)."""
    X = _float_operand(x, "x")
    check_p(p)
    training = check_bool(training, "training")
    _, nblock = _check_block(block, X.shape)   # first, as on the CPU while training
    sigma = gaussian_sigma(p)
    st = check_uint64(stream, "stream")
    check_n_threads(n_threads)
    with _device_ctx(X.device_id):
        Y = None if (out is None and not training) else _prepare_out(out, X, {"x": X})
        s = _check_seed(seed)
        if not training:
            return _identity(X, Y)
        _gaussian(X, Y, sigma, s, st, nblock)
    return Y.obj


def gaussian_dropout_backward(grad: Any, p: float, *, seed: int, stream: int = 0,
                              out: Any = None, n_threads: int | None = None,
                              block: Any = None):
    """Gradient of gaussian_dropout: ``grad * g`` with the forward call's noise."""
    G = _float_operand(grad, "grad")
    sigma = gaussian_sigma(p)
    s = check_uint64(seed, "seed")
    _, nblock = _check_block(block, G.shape)
    st = check_uint64(stream, "stream")
    check_n_threads(n_threads)
    with _device_ctx(G.device_id):
        Y = _prepare_out(out, G, {"grad": G}, may_alias=("grad",))
        _gaussian(G, Y, sigma, s, st, nblock)
    return Y.obj


# ---- the generator ---------------------------------------------------------------------------


def _rng_call(kernel, units, dims, name, out, device, *args):
    tgt = _target(device) if out is None else target_of(as_operand(out, "out"))
    with _device_ctx(tgt.device_id):
        R = allocate(tgt, dims, name) if out is None else _rng_out(out, dims, name)
        n = math.prod(dims)
        if n:
            K.launch(kernel, units, R.stream, R.flat(), _u64(n), *args)
    return R.obj


def random_bits(shape: Any, *, seed: int, stream: int = 0, bits: int = 32, offset: int = 0,
                out: Any = None, n_threads: int | None = None, device: Any = None):
    """fastdrop.random_bits on the GPU: uint32 words or uint16 half words."""
    dims = check_shape(shape)
    s = check_uint64(seed, "seed")
    st = check_uint64(stream, "stream")
    b = check_bits(bits)
    n = shape_size(dims)
    off = check_span(offset, n)
    check_n_threads(n_threads)
    per = 8 if b == 16 else 4
    units = (off + n - 1) // per - off // per + 1 if n else 0
    return _rng_call(K.k_bits, units, dims, "uint32" if b == 32 else "uint16", out, device,
                     _u64(off), _u64(s), _u64(st), _u64(b))


def uniform(shape: Any, *, seed: int, stream: int = 0, dtype: Any = np.float32,
            offset: int = 0, out: Any = None, n_threads: int | None = None,
            device: Any = None):
    """fastdrop.uniform on the GPU: exact [0, 1) floats (24 or 53 random bits)."""
    dims = check_shape(shape)
    s = check_uint64(seed, "seed")
    st = check_uint64(stream, "stream")
    dt = _float_dtype(dtype)
    n = shape_size(dims)
    off = check_span(offset, n, 64 if dt.itemsize == 4 else 63)
    check_n_threads(n_threads)
    if dt.itemsize == 4:
        units = ((off + n - 1) >> 2) - (off >> 2) + 1 if n else 0
        kernel = K.k_uniform32
    else:
        units = ((off + n - 1) >> 1) - (off >> 1) + 1 if n else 0
        kernel = K.k_uniform64
    return _rng_call(kernel, units, dims, dt.name, out, device, _u64(off), _u64(s), _u64(st))


def standard_normal(shape: Any, *, seed: int, stream: int = 0, dtype: Any = np.float64,
                    offset: int = 0, out: Any = None, n_threads: int | None = None,
                    device: Any = None):
    """Standard normal deviates: element i is fastdrop.reference.normal_from_words of word
    offset + i (fd_normal.h), rounded once to dtype (float32 or float64)."""
    dims = check_shape(shape)
    s = check_uint64(seed, "seed")
    st = check_uint64(stream, "stream")
    dt = _float_dtype(dtype)
    n = shape_size(dims)
    off = check_span(offset, n)
    check_n_threads(n_threads)
    units = ((off + n - 1) >> 2) - (off >> 2) + 1 if n else 0
    return _rng_call(K.k_normal, units, dims, dt.name, out, device, _u64(off), _u64(s),
                     _u64(st))


def _broadcast(op: Operand, batch: tuple, last: int) -> Operand:
    """op (..., last) broadcast to batch + (last,) with zero strides (gathered later)."""
    lead = len(batch) - (len(op.shape) - 1)
    strides = [0] * lead + list(op.strides[:-1])
    shape = list(batch)
    for k in range(len(batch)):
        if k >= lead and op.shape[k - lead] == 1 and batch[k] != 1:
            strides[k] = 0
    return Operand(op.obj, op.framework, op.name, tuple(shape) + (last,),
                   tuple(strides) + (op.strides[-1],), op.ptr, op.readonly, op.stream,
                   owner=op.owner, host=op.host, device_id=op.device_id)


def philox4x32(counter: Any, key: Any, rounds: int = 10, *, n_threads: int | None = None):
    """fastdrop.philox4x32 for CUDA uint32 arrays counter (..., 4) and key (..., 2)."""
    ops = []
    for name, arr, last in (("counter", counter, 4), ("key", key, 2)):
        if not is_cuda_array(arr):
            raise TypeError(f"{name} must be a CUDA array, got {type(arr).__name__}")
        o = as_operand(arr, name)
        if o.name != "uint32":
            raise TypeError(f"{name} must have dtype uint32, got {o.name}")
        if len(o.shape) == 0 or o.shape[-1] != last:
            raise ValueError(f"{name} must have shape (..., {last}), got {o.shape}")
        ops.append(o)
    C, Kk = ops
    r = as_int(rounds, "rounds")
    if not 0 <= r <= 16:
        raise ValueError(f"rounds must be in [0, 16], got {r}")
    check_n_threads(n_threads)
    try:
        batch = np.broadcast_shapes(C.shape[:-1], Kk.shape[:-1])
    except ValueError:
        raise ValueError(f"counter shape {C.shape} and key shape {Kk.shape} do not broadcast "
                         f"over their leading axes") from None
    with _device_ctx(C.device_id):
        Cb, Kb = _broadcast(C, batch, 4), _broadcast(Kk, batch, 2)
        R = allocate(target_of(C), batch + (4,), "uint32")
        rows = math.prod(batch)
        if rows:
            K.launch(K.k_philox, rows, C.stream, R.flat(), Cb.flat(), Kb.flat(), _u64(rows),
                     np.int64(r))
    return R.obj
