"""The GPU backend: runs `fastdrop._core` requests on CUDA arrays with Numba CUDA kernels.

Results equal the CPU backend's bit for bit (docs/contract.md).  Arrays are CUDA arrays
of any framework (see `fastdrop._cuda._memory`), used in place (zero-copy) when
C-contiguous.  Work runs on the stream the primary input's producer names
(``__cuda_array_interface__['stream']``, or a Numba array's own stream); outputs are
allocated by the input's framework (a Numba device array for Numba, CuPy for CuPy,
PyTorch for PyTorch) and returned as its type.  Functions that take no array
(`random_bits`, `uniform`, `standard_normal`, `dropout_mask`) take ``device=``: None
(Numba device array on the current GPU), a GPU index or "cuda"/"cuda:N", or a CUDA array
whose framework, device and stream the output should share.  ``n_threads`` is checked
for parity with the CPU API, and ignored.

`POLICY` views and checks the arrays while `fastdrop._core.parse` builds a request;
`run` executes it and checks nothing again.  A request's draw map (the public ``block=``) is
coalesced as on the CPU (`_draw_map_args`).
"""
from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np

from .._core.args import as_int
from .._core.contract import FLOAT_DTYPES, compute_dtype_name, packed_size
from .._core.layout import coalesce
from .._core.ops import Keep, Op
from .._core.requests import (BiasBackwardRequest, DrawsRequest, DropoutRequest, PhiloxRequest,
                              UnpackRequest)
from . import _fast as F
from . import _kernels as K
from . import is_cuda_array
from ._env import SIMULATOR, cuda
from ._memory import Operand, Target, allocate, as_operand, check_out, storage_dtype, target_of

__all__ = ["POLICY", "CudaArrays", "run", "set_launch_geometry"]

set_launch_geometry = K.set_launch_geometry
_u64 = np.uint64
_SMALL = 2 ** 32 - 1   # n at most this: the kernels' index divisions are 32-bit


# ---- operands and the array policy ---------------------------------------------------------


def _float_operand(x: Any, name: str) -> Operand:
    if not is_cuda_array(x):
        raise TypeError(f"{name} must be a CUDA array (the GPU backend got "
                        f"{type(x).__name__})")
    op = as_operand(x, name)
    if op.name not in FLOAT_DTYPES:
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


class CudaArrays:
    """CUDA arrays of any framework as `Operand` views (zero-copy)."""

    float_input = staticmethod(_float_operand)

    @staticmethod
    def dtype(view: Operand) -> str:
        return view.name

    @staticmethod
    def shape(view: Operand) -> tuple:
        return view.shape

    @staticmethod
    def mask_input(mask: Any) -> Operand:
        if not is_cuda_array(mask):
            raise TypeError(f"mask must be a CUDA array like grad, got {type(mask).__name__}")
        return as_operand(mask, "mask")

    @staticmethod
    def out(out: Any, shape: tuple, dtype: str, inputs: dict, may_alias: tuple = ()
            ) -> Operand:
        return check_out(out, shape, dtype, inputs, may_alias)

    @staticmethod
    def contiguous_out(out: Any, shape: tuple, dtype: str) -> Operand:
        o = check_out(out, shape, dtype, {})
        if not o.c_contiguous:
            raise ValueError("out must be C-contiguous")
        return o

    @staticmethod
    def mask_out(obj: Any, shape: tuple, dtype: str, inputs: dict) -> Operand:
        """The returned mask's buffer (`ArrayPolicy.mask_out`): the kernels write it as one
        1-D C-order run (`Operand.flat`), so it is C-contiguous, of exactly this shape and
        dtype, and `_apply` writes into it instead of allocating."""
        if not is_cuda_array(obj):
            raise TypeError(f"mask_out must be a CUDA array like x, got {type(obj).__name__}")
        what = "packed" if dtype == "uint8" else "bool"
        try:
            o = as_operand(obj, "mask_out")
        except TypeError as exc:  # a dtype no kernel reads (int8, ...)
            raise TypeError(f"mask_out must have dtype {dtype} for a {what} mask: {exc}"
                            ) from None
        if o.name != dtype:
            raise TypeError(f"mask_out must have dtype {dtype} for a {what} mask, got "
                            f"{o.name}")
        if o.shape != tuple(shape):
            raise ValueError(f"mask_out must have shape {tuple(shape)} for this {what} mask, "
                             f"got {o.shape}")
        if not o.c_contiguous:
            raise ValueError("mask_out must be C-contiguous")
        if o.readonly:
            raise ValueError("mask_out is read-only")
        for name, arr in inputs.items():
            if arr is not None and o.overlaps(arr):
                raise ValueError(f"mask_out must not overlap {name}")
        return o

    @staticmethod
    def words(arr: Any, name: str, last: int) -> Operand:
        if not is_cuda_array(arr):
            raise TypeError(f"{name} must be a CUDA array, got {type(arr).__name__}")
        o = as_operand(arr, name)
        if o.name != "uint32":
            raise TypeError(f"{name} must have dtype uint32, got {o.name}")
        if len(o.shape) == 0 or o.shape[-1] != last:
            raise ValueError(f"{name} must have shape (..., {last}), got {o.shape}")
        return o

    @staticmethod
    def device(device: Any) -> Target:
        return _target(device)


POLICY = CudaArrays()


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
        index = name[5:] if name.startswith("cuda:") else ""
        if not (index.isdigit() and index.isascii()):
            raise ValueError(f"device must be 'cuda' or 'cuda:N' with N a GPU index >= 0, "
                             f"got {device!r}")
        return Target(device_id=int(index))
    idx = as_int(device, "device")
    if idx < 0:
        raise ValueError(f"device must be a GPU index >= 0, got {idx}")
    return Target(device_id=idx)


def _noise_strides(noise: tuple, shape: tuple) -> np.ndarray:
    """C strides (in elements) of the noise shape, 0 on the broadcast axes."""
    strides, acc = [], 1
    for d, s in zip(reversed(noise), reversed(shape)):
        strides.append(acc if d == s else 0)
        acc *= d
    return np.array(strides[::-1], np.int64)


_constants: dict = {}


def _constant(values: tuple, dtype) -> Any:
    """A small read-only device array of `values` (shapes, strides), made once per
    (values, dtype, device) and kept: a call with the shapes of an earlier call allocates
    and copies nothing (training loops repeat their shapes).  It is written once,
    synchronously, before its first use, and never again, so any stream may read it."""
    dev = None if SIMULATOR else cuda.get_current_device().id
    key = (tuple(int(v) for v in values), np.dtype(dtype).str, dev)
    arr = _constants.get(key)
    if arr is None:
        if len(_constants) > 4096:   # a bound, for callers with ever-new shapes
            _constants.clear()
        arr = _constants[key] = cuda.to_device(np.array(key[0], dtype=dtype))
    return arr


def _noise_map(shape: tuple, noise: tuple):
    """(shape, noise strides) of x's axes against its noise shape, coalesced: length-1
    axes dropped, and neighbours merged when both are broadcast or both follow each
    other in the noise mask (e.g. (N, C, H, W) with noise (N, C, 1, 1) -> (N*C, H*W) with
    strides (1, 0)), so that the kernel's index math (one division per unit by the last
    axis, `_device.row_offset` per row) is as short as it can be."""
    strides = _noise_strides(noise, shape).tolist()
    axes = [(n, st) for n, st in zip(shape, strides) if n != 1]
    out: list = []
    for n, st in axes:
        if out:
            pn, pst = out[-1]
            if (pst == 0 and st == 0) or (pst != 0 and pst == st * n):
                out[-1] = (pn * n, st)
                continue
        out.append((n, st))
    if not out:
        out = [(1, 0)]
    return tuple(n for n, _ in out), tuple(st for _, st in out)


# ---- kernel runners -------------------------------------------------------------------------


def _draw_map_args(shape: tuple, draws, strm):
    """The kernel arguments (base, shape, draw strides) of a draw map ``(strides, base)``
    of `shape` (`fastdrop._core.contract.DrawMap`), or unused dummies when draws is None.

    The axes are coalesced as the CPU driver does (``coalesce``): length-1 axes
    are dropped (their draw stride may even be 2**64, which no uint64 holds; their index
    is always 0) and axes whose draws are contiguous are merged, so the kernels' per-element
    div/mod chain (`_device.draw_index`) is as short as it can be -- one axis when the
    block is a run of whole rows.  Call only for a non-empty shape: every axis of the
    global array then has length >= 1, so a kept stride is at most 2**63."""
    if draws is None:
        return _u64(0), _constant((1,), np.int64), _constant((0,), np.uint64)
    strides, base = draws
    cshape, (cstrides,) = coalesce(shape, [tuple(strides)])
    return _u64(base), _constant(cshape, np.int64), _constant(cstrides, np.uint64)


def _run(op: int, ks: int, X: Operand, Y: Operand, *, seed=0, stream=0, bits=16, t=0,
         s=1.0, a=0.0, c=0.0, d=0.0, bias: Operand | None = None,
         res: Operand | None = None, pin=None, fin=None, P: Operand | None = None,
         bout=None, noise: tuple | None = None, draws=None, M: Operand | None = None):
    """One launch of the fused dropout kernel over x's n elements (C order); draws: the
    draw map of x's elements (KS_DRAWS only, see `_draw_map_args`); P: the packed-mask
    output; M: the caller's packed mask (KS_PACKED; else pin, an array).  Eligible
    requests (flags drawn over x's own shape, no block, no bool mask, no bias or
    residual; or a packed mask of x's own shape; or bias-dropout-add) take the fast path
    (`_fast.try_forward`, `_fast.try_masked`, `_fast.try_bda`) when its checks pass."""
    n = X.size
    if n == 0:
        return
    full_noise = noise is None or noise == X.shape
    if (ks == K.KS_DRAWS and full_noise and draws is None and bout is None and bias is None
            and res is None and F.try_forward(op, X, Y, P, seed, stream, bits, t, s, a, c, d)):
        return
    if (ks == K.KS_PACKED and M is not None and full_noise and bias is None and res is None
            and F.try_masked(op, X, Y, M, s)):
        return
    if (op == K.OP_BDA and ks == K.KS_DRAWS and full_noise and draws is None and bout is None
            and res is not None and F.try_bda(X, Y, bias, res, P, seed, stream, bits, t, s)):
        return
    pout = P.flat() if P is not None else None
    if M is not None:
        pin = M.flat()
    ct = K.compute_type(X.name)
    sd = storage_dtype(X.name)
    strm = X.stream
    if noise is None or noise == X.shape:
        full, xshape, nstr = True, _constant((1,), np.int64), _constant((0,), np.int64)
    else:
        full = False
        nshape, nstrides = _noise_map(X.shape, noise)
        xshape, nstr = _constant(nshape, np.int64), _constant(nstrides, np.int64)
    ybuf = Y.output_buffer()
    kern = K.dropout_kernel(X.name, op, ks, draws is not None, full, bias is not None,
                            n <= _SMALL)
    K.launch(kern, (n + 7) // 8, strm,
             ybuf, X.flat(),
             bias.flat() if bias is not None else _dummy(sd),
             res.flat() if res is not None else _dummy(sd),
             pin if pin is not None else _dummy(np.uint8),
             fin if fin is not None else _dummy(np.bool_),
             pout if pout is not None else _dummy(np.uint8),
             bout if bout is not None else _dummy(np.bool_),
             _u64(n), _u64(X.shape[-1] if X.shape else 1), _u64(seed), _u64(stream),
             _u64(bits), _u64(t), ct(s), ct(a), ct(c), ct(d), pout is not None,
             bout is not None, xshape, nstr,
             *_draw_map_args(X.shape, draws, strm))
    Y.commit(ybuf)


def _run_mask(n: int, offset: int, seed: int, stream: int, bits: int, t: int, strm,
              pout=None, bout=None, draws=None, shape: tuple | None = None):
    """Keep flags of draws offset .. offset + n - 1 into the packed and/or bool outputs;
    with draws (a draw map of `shape`, n elements), of the block's elements instead."""
    if n == 0:
        return
    outs = (pout if pout is not None else _dummy(np.uint8),
            bout if bout is not None else _dummy(np.bool_))
    flags = (_u64(seed), _u64(stream), _u64(bits), _u64(t), pout is not None,
             bout is not None)
    if draws is None:
        K.launch(K.k_mask, (n + 7) // 8, strm, *outs, _u64(n), _u64(offset), *flags)
    else:
        K.launch(K.mask_block_kernel(n <= _SMALL), (n + 7) // 8, strm, *outs, _u64(n),
                 *_draw_map_args(shape, draws, strm), *flags)


def _apply(op, X: Operand, Y: Operand, noise: tuple, *, seed=None, stream=0, bits=16, t=0,
           mask: Operand | None = None, return_mask=False, fmt="packed", draws=None,
           mask_out: Operand | None = None, **scalars):
    """fastdrop.functional._apply on the GPU: keep flags drawn (seed) or given (mask),
    a noise-shaped mask broadcast to x's shape; `draws`: the noise's draw map
    (`fastdrop._core.contract.noise_draws`), which only the drawn flags use; mask_out: a
    checked, C-contiguous buffer for the returned mask (then nothing is allocated for
    it), else it is allocated by x's framework.  Returns the (packed, bool) mask
    outputs."""
    full = noise == X.shape
    tgt = target_of(X)
    nn = math.prod(noise)
    P = B = None
    if return_mask:
        if fmt == "packed":
            P = mask_out if mask_out is not None else allocate(tgt, ((nn + 7) // 8,), "uint8")
        else:
            B = mask_out if mask_out is not None else allocate(tgt, noise, "bool")
    common = dict(bits=bits, **scalars)
    if mask is None:
        if full:
            _run(op, K.KS_DRAWS, X, Y, seed=seed, stream=stream, t=t, P=P,
                 bout=B.flat() if B is not None else None, draws=draws, **common)
        else:
            drawn = dict(draws=draws, shape=noise)
            if B is not None:
                flags = B.flat()
                _run_mask(nn, 0, seed, stream, bits, t, X.stream, bout=flags, **drawn)
                _run(op, K.KS_BOOL, X, Y, fin=flags, noise=noise, **common)
            else:
                # the noise mask, drawn first (through x's framework: torch's caching
                # allocator on x's stream, ...)
                packed = P.flat() if P is not None else \
                    allocate(tgt, ((nn + 7) // 8,), "uint8").flat()
                _run_mask(nn, 0, seed, stream, bits, t, X.stream, pout=packed, **drawn)
                _run(op, K.KS_PACKED, X, Y, pin=packed, noise=noise, **common)
    elif mask.name == "uint8":
        _run(op, K.KS_PACKED, X, Y, M=mask, noise=noise, **common)
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



def _convert(A: Operand, name: str) -> Operand:
    """A new array of A's framework holding A's values as `name` (half <-> float32)."""
    C = allocate(target_of(A), A.shape, name)
    if A.size:
        buf = C.output_buffer()
        K.launch(K.convert_kernel(A.name, name), A.size, A.stream, buf, A.flat(),
                 _u64(A.size))
        C.commit(buf)
    return C


def _gaussian(X: Operand, Y: Operand, sigma: float, seed: int, stream: int, draws=None):
    """y = x * (1 + sigma z) over x's elements; draws: the draw map of their words."""
    n = X.size
    if n == 0:
        return
    ybuf = Y.output_buffer()
    args = (ybuf, X.flat(), _u64(n), _u64(seed), _u64(stream), np.float64(sigma))
    if draws is None:
        K.launch(K.gaussian_kernel(X.name), (n + 3) // 4, X.stream, *args)
    else:
        K.launch(K.gaussian_block_kernel(X.name, n <= _SMALL), (n + 3) // 4, X.stream, *args,
                 *_draw_map_args(X.shape, draws, X.stream))
    Y.commit(ybuf)


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


# ---- requests ------------------------------------------------------------------------------


def _pair(req, y, mask=None):
    return (y, mask) if req.returns_pair else y


def _dropout_family(req: DropoutRequest):
    X, Y = req.x, req.out
    if req.identity:
        return _pair(req, _identity(X, Y))
    if Y is None:
        Y = allocate(target_of(X), X.shape, X.name)
    if req.keep == Keep.ALL:  # classic dropout at inference: x * P(keep)
        _run(K.OP_SCALE, K.KS_ALL, X, Y, s=req.scale)
        return _pair(req, Y.obj)
    if req.op == Op.GAUSS:
        _gaussian(X, Y, req.scale, req.seed, req.stream, req.noise_draws)
        return Y.obj
    a, c, d = req.alpha
    P, B = _apply(int(req.op), X, Y, req.noise_shape, seed=req.seed,
                  stream=req.stream, bits=req.bits, t=req.threshold, mask=req.mask,
                  return_mask=req.mask_format is not None, fmt=req.mask_format,
                  draws=req.noise_draws, s=req.scale, a=a, c=c, d=d, bias=req.bias,
                  res=req.residual, mask_out=req.mask_out)
    if req.mask_format is None:
        return _pair(req, Y.obj)
    return _pair(req, Y.obj, (P if req.mask_format == "packed" else B).obj)


def _bias_backward(req: BiasBackwardRequest):
    G = req.dropout.x
    ct = compute_dtype_name(G.name)
    gc = G if ct == G.name else _convert(G, ct)
    dx_c = _dropout_family(req.dropout._replace(x=gc))
    DX = as_operand(dx_c, "dx")
    dbias = None
    if req.has_bias:
        ncols = G.shape[-1]
        D = allocate(target_of(G), (ncols,), G.name)
        if ncols:
            buf = D.output_buffer()
            K.column_sums(buf, DX.flat(), G.size // ncols, ncols, G.name, G.stream)
            D.commit(buf)
        dbias = D.obj
    dx = dx_c if ct == G.name else _convert(DX, G.name).obj
    return dx, dbias, G.obj


def _units(off: int, n: int, per: int) -> int:
    """Philox blocks (of `per` results each) that draws off .. off + n - 1 touch."""
    return (off + n - 1) // per - off // per + 1 if n else 0


def _draws(req: DrawsRequest):
    dims, off, n = req.shape, req.offset, math.prod(req.shape)
    tgt = req.device if req.out is None else target_of(req.out)
    with _device_ctx(tgt.device_id):
        if req.kind == "mask":
            packed = req.dtype == "uint8"
            R = allocate(tgt, (packed_size(n),) if packed else dims, req.dtype)
            _run_mask(n, off, req.seed, req.stream, req.bits, req.threshold, tgt.stream,
                      pout=R.flat() if packed else None, bout=None if packed else R.flat(),
                      draws=req.draws, shape=dims)
            return R.obj
        R = allocate(tgt, dims, req.dtype) if req.out is None else req.out
        words = (_u64(off), _u64(req.seed), _u64(req.stream))
        if req.kind == "bits":
            per = {16: 8, 8: 16, 32: 4}[req.bits]  # draws per Philox block
            kernel, args = K.k_bits, words + (_u64(req.bits),)
        elif req.kind == "uniform":
            per = 4 if req.dtype == "float32" else 2
            kernel, args = (K.k_uniform32 if per == 4 else K.k_uniform64), words
        else:
            per, kernel, args = 4, K.k_normal, words
        if n:
            K.launch(kernel, _units(off, n, per), R.stream, R.flat(), _u64(n), *args)
    return R.obj


def _philox4x32(req: PhiloxRequest):
    C, Kk, batch = req.counter, req.key, req.batch
    with _device_ctx(C.device_id):
        Cb, Kb = _broadcast(C, batch, 4), _broadcast(Kk, batch, 2)
        R = allocate(target_of(C), batch + (4,), "uint32")
        rows = math.prod(batch)
        if rows:
            K.launch(K.k_philox, rows, C.stream, R.flat(), Cb.flat(), Kb.flat(), _u64(rows),
                     np.int64(req.rounds))
    return R.obj


def _unpack(req: UnpackRequest):
    raise NotImplementedError("fastdrop.unpack_mask: mask is a CUDA array; unpack_mask runs "
                              "on the CPU only (copy the mask to the host first)")


def _in_context(runner, view):
    def run_in(req):
        with _device_ctx(view(req).device_id):
            return runner(req)
    return run_in


_RUNNERS = {
    DropoutRequest: _in_context(_dropout_family, lambda r: r.x),
    BiasBackwardRequest: _in_context(_bias_backward, lambda r: r.dropout.x),
    DrawsRequest: _draws, PhiloxRequest: _philox4x32, UnpackRequest: _unpack,
}


def run(request: Any) -> Any:
    """Execute a validated request; results are arrays of the input's framework. Every
    launch of the call, the gathers and scatters of the other operands included, goes on
    the primary input's stream: the other operands are taken to be ready on it."""
    inner = request.dropout if isinstance(request, BiasBackwardRequest) else request
    x = getattr(inner, "x", None)
    if isinstance(x, Operand):
        for v in inner:
            if isinstance(v, Operand) and v is not x:
                v.stream = x.stream
    return _RUNNERS[type(request)](request)
