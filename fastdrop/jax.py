"""JAX adapter: fastdrop's dropout ops as differentiable, jit- and vmap-able JAX functions.

Install with ``pip install fastdrop[jax]``.

Every op (``dropout``, ``alpha_dropout``, ``gaussian_dropout``, ``bias_dropout_add`` and
their backward passes) is one JAX primitive, ``fastdrop_call``, whose rules say what the
op is mathematically (docs/adapters.md, the JAX section's "Design"):

- each op is linear (dropout, gaussian dropout, bias-dropout-add, the backward passes)
  or affine (alpha dropout) in its array operands, with a diagonal map ``D`` fixed by
  ``(seed, stream, p, bits, noise_shape, block)``. The JVP rule applies the op's linear
  part to the tangent (``D t``: dropped with the same mask, scaled with the same noise)
  and the transpose rule applies ``D^T`` (the backward kernel). So ``jax.grad`` (by
  transposition), ``jax.jvp``, ``jacfwd``, ``jacrev``, ``hessian``, ``vmap`` and
  ``lax.scan`` all work, to any order, and nothing is saved for the backward pass but the
  four uint32 words of (seed, stream).
- the kernels run on the host: eagerly straight on the JAX buffers (zero copy), under
  ``jit`` as XLA FFI custom calls (``_lower``: targets ``fastdrop_<op>_v1`` of
  fastdrop._cpu._xla, C handlers against XLA's vendored FFI C API, run on XLA's threads
  without the GIL and writing XLA's buffers in place), or, as a fallback that warns
  (`FallbackWarning`, `lowering_route`), from a ``jax.pure_callback``
  (``_lower_callback``; each op's host call is one small ``_kernel_*`` function).

Results equal the NumPy API (``fastdrop.dropout`` ...) on the same data bit for bit,
eagerly and under ``jit``.

Limits (see docs/adapters.md):

- the custom calls are opaque to XLA (no fusion with neighbouring operations). CPU only:
  on a GPU backend the callback would copy device -> host -> device.
- ``jax.export`` needs ``disabled_checks=export_checks()`` (JAX serializes only the
  custom calls it knows to be stable); the calls that fall back to the callback are
  refused with a NotImplementedError naming the reason.
- sharding: under ``jit``, inputs sharded over Explicit mesh axes run in a
  ``jax.shard_map`` where each device computes its shard as the block of the global array
  (``block=``): equal to the unsharded result bit for bit, in the input's sharding. Over
  Auto mesh axes the custom call is wrapped in ``jax.experimental.custom_partitioning``
  (``_lower_partitioned``): XLA's SPMD partitioner runs it per shard, each with its
  origin from its mesh coordinates, again bit for bit and in x's sharding (not when
  exporting: ``jax.export`` gets the plain custom call, which XLA runs gathered). In
  your own ``shard_map``, pass ``block=shard_block(x, global_shape, spec)``.
- ``vmap``: the custom call (or the callback) is called once with the whole batch and
  loops over it; each batch element gets exactly what the unbatched call gives for its own
  (seed, stream), so ``vmap(f)(xs)[i] == f(xs[i])``: vmap over ``stream`` for different
  masks.
- ``seed`` and ``stream`` may be Python ints (unsigned 64-bit), concrete integer arrays
  (checked as ints are: a negative one is a ValueError) or traced integer scalars
  (uint32/int32, or 64-bit with ``jax_enable_x64``). A traced value cannot raise inside
  jit: a negative one of a signed type is taken as its two's complement in 64 bits
  (int32 -1 and int64 -1 both mean 2**64 - 1). The seed may be a JAX key.
"""
from __future__ import annotations

import functools
import numbers
import os
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from . import functional as _F
from ._core.args import (check_bits, check_bool, check_choice, check_noise_shape, check_p,
                         check_placement, check_uint64)
from ._core.interop import aligned_empty, jax_platform

__all__ = ["dropout", "dropout_backward", "alpha_dropout", "alpha_dropout_backward",
           "gaussian_dropout", "gaussian_dropout_backward", "bias_dropout_add",
           "bias_dropout_add_backward", "shard_block", "stream_words", "lowering_route",
           "lowering_reason", "export_checks", "FallbackWarning"]

_SUPPORTED = ("float16", "bfloat16", "float32", "float64")


# ---- seed and stream as four uint32 words ---------------------------------------------------


def _int_words(v: Any, name: str):
    """(lo, hi) uint32 of an int or an integer JAX/NumPy scalar (traced or not)."""
    if isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)):
        u = check_uint64(v, name)
        return jnp.uint32(u & 0xFFFFFFFF), jnp.uint32(u >> 32)
    if isinstance(v, np.ndarray):   # NumPy's own: jnp.asarray would narrow 64-bit values
        if v.ndim != 0 or not np.issubdtype(v.dtype, np.integer):
            raise TypeError(f"{name} must be an int or an integer scalar array, got "
                            f"{v.dtype} of shape {v.shape}")
        u = check_uint64(int(v), name)
        return jnp.uint32(u & 0xFFFFFFFF), jnp.uint32(u >> 32)
    arr = jnp.asarray(v)
    if arr.ndim != 0 or not jnp.issubdtype(arr.dtype, jnp.integer):
        raise TypeError(f"{name} must be an int or an integer scalar array, got "
                        f"{getattr(arr, 'dtype', type(v).__name__)} of shape {arr.shape}")
    if not isinstance(arr, jax.core.Tracer):  # a concrete value: checked as an int is
        u = check_uint64(int(arr), name)
        return jnp.uint32(u & 0xFFFFFFFF), jnp.uint32(u >> 32)
    # traced: no error can be raised inside jit; a negative value of a signed type is
    # taken as its two's complement in 64 bits (int32 -1 and int64 -1 both mean 2**64 - 1)
    lo = arr.astype(jnp.uint32)
    if arr.dtype.itemsize == 8:
        hi = (arr.astype(jnp.uint64) >> 32).astype(jnp.uint32)
    elif jnp.issubdtype(arr.dtype, jnp.signedinteger):
        hi = jnp.where(arr < 0, jnp.uint32(0xFFFFFFFF), jnp.uint32(0))
    else:
        hi = jnp.uint32(0)
    return lo, hi


def _seed_words(seed: Any):
    """(lo, hi) of a seed: an int or integer scalar (as `_int_words`), or a JAX key: a
    typed key (``jax.random.key``) through ``jax.random.key_data``, or a raw uint32[2] key
    (``jax.random.PRNGKey``), read as ``(k[0] << 32) | k[1]``, so that ``PRNGKey(n)``
    and ``key(n)`` give the masks of ``seed=n``; the keys of the other implementations
    (``rbg``, ``unsafe_rbg``: uint32[4], typed or raw) by their first two words."""
    if isinstance(seed, numbers.Integral):
        return _int_words(seed, "seed")
    if seed is None:
        raise TypeError("seed must be an int, an integer scalar array or a JAX key, got None "
                        "(JAX functions are pure: pass a seed or a key)")
    arr = seed
    if hasattr(arr, "dtype") and jax.dtypes.issubdtype(arr.dtype, jax.dtypes.prng_key):
        if arr.ndim != 0:
            raise TypeError(f"seed must be a single JAX key, got keys of shape {arr.shape}")
        arr = jax.random.key_data(arr).reshape(-1)   # (any implementation's words)
        if arr.shape[0] < 2 or arr.dtype != jnp.uint32:
            raise TypeError(f"seed as a JAX key must have at least two uint32 words of "
                            f"key data, got {arr.dtype}{list(arr.shape)}")
        return arr[1], arr[0]
    if isinstance(arr, np.ndarray) and arr.ndim == 0:   # (jnp.asarray would narrow it)
        return _int_words(arr, "seed")
    arr = jnp.asarray(arr)
    if arr.ndim == 1:
        if arr.shape not in ((2,), (4,)) or arr.dtype != jnp.uint32:
            raise TypeError(f"seed as a raw JAX key must be uint32[2] (threefry) or "
                            f"uint32[4] (rbg, unsafe_rbg), got {arr.dtype}{list(arr.shape)}")
        return arr[1], arr[0]
    return _int_words(arr, "seed")


def stream_words(seed: Any, stream: Any = 0):
    """uint32[4]: (seed lo, seed hi, stream lo, stream hi), the kernels' operand.

    Parameters
    ----------
    seed, stream : int or integer scalar array
        Python ints (unsigned 64-bit) or integer JAX/NumPy scalars, traced or not
        (32-bit ones give a zero high word). The seed may also be a JAX key:
        ``jax.random.key(n)`` or ``jax.random.PRNGKey(n)`` stand for ``n``.

    Returns
    -------
    jax.Array of uint32, shape (4,)

    Raises
    ------
    TypeError
        seed or stream is neither an int nor an integer scalar array.
    ValueError
        An int outside [0, 2**64 - 1].

    Examples
    --------
    >>> import fastdrop.jax
    >>> fastdrop.jax.stream_words(2**40 + 5, 7)
    Array([  5, 256,   7,   0], dtype=uint32)
    """
    s_lo, s_hi = _seed_words(seed)
    t_lo, t_hi = _int_words(stream, "stream")
    return jnp.stack([jnp.asarray(w, jnp.uint32) for w in (s_lo, s_hi, t_lo, t_hi)])


# ---- the static configuration of a call ----------------------------------------------------


class _Cfg(NamedTuple):
    """Everything static about a call (a primitive parameter: hashable)."""
    p: float
    bits: int = 16
    mode: str = "inverted"
    noise_shape: tuple | None = None
    core_ndim: int = 0                 # ndim of the unbatched x (vmap adds leading axes)
    has_bias: bool = False             # bias-dropout-add only
    global_shape: tuple | None = None  # block=: an origin operand follows the words


# ---- host kernels: one small function per op (what an XLA FFI handler replaces) -------------
# Each takes the static cfg, the 64-bit seed and stream, the block (or None), the input
# arrays (NumPy views of one batch element) and the preallocated outputs, and writes them.


def _kernel_dropout(cfg, seed, stream, block, ins, outs):
    _F.dropout(ins[0], cfg.p, seed=seed, stream=stream, mode=cfg.mode,
               noise_shape=cfg.noise_shape, bits=cfg.bits, out=outs[0], block=block)


def _kernel_dropout_backward(cfg, seed, stream, block, ins, outs):
    _F.dropout_backward(ins[0], cfg.p, seed=seed, stream=stream, mode=cfg.mode,
                        noise_shape=cfg.noise_shape, bits=cfg.bits, out=outs[0], block=block)


def _kernel_alpha(cfg, seed, stream, block, ins, outs):
    _F.alpha_dropout(ins[0], cfg.p, seed=seed, stream=stream, noise_shape=cfg.noise_shape,
                     bits=cfg.bits, out=outs[0], block=block)


def _kernel_alpha_backward(cfg, seed, stream, block, ins, outs):
    _F.alpha_dropout_backward(ins[0], cfg.p, seed=seed, stream=stream,
                              noise_shape=cfg.noise_shape, bits=cfg.bits, out=outs[0],
                              block=block)


def _kernel_gaussian(cfg, seed, stream, block, ins, outs):
    _F.gaussian_dropout(ins[0], cfg.p, seed=seed, stream=stream, out=outs[0], block=block)


def _kernel_gaussian_backward(cfg, seed, stream, block, ins, outs):
    _F.gaussian_dropout_backward(ins[0], cfg.p, seed=seed, stream=stream, out=outs[0],
                                 block=block)


def _kernel_bda(cfg, seed, stream, block, ins, outs):
    x, bias, residual = (ins[0], ins[1], ins[2]) if cfg.has_bias else (ins[0], None, ins[1])
    _F.bias_dropout_add(x, bias, residual, cfg.p, seed=seed, stream=stream, bits=cfg.bits,
                        out=outs[0], block=block)


def _kernel_bda_backward(cfg, seed, stream, block, ins, outs):
    dx, dbias, _ = _F.bias_dropout_add_backward(ins[0], cfg.p, seed=seed, stream=stream,
                                                bits=cfg.bits, has_bias=cfg.has_bias,
                                                block=block)
    outs[0][...] = dx
    if cfg.has_bias:
        outs[1][...] = dbias


_KERNELS = {
    "dropout": _kernel_dropout, "dropout_backward": _kernel_dropout_backward,
    "alpha": _kernel_alpha, "alpha_backward": _kernel_alpha_backward,
    "gaussian": _kernel_gaussian, "gaussian_backward": _kernel_gaussian_backward,
    "bda": _kernel_bda, "bda_backward": _kernel_bda_backward,
}


def _n_arrays(op: str, cfg: _Cfg) -> int:
    """How many of the operands are arrays (the rest: words, and the origin with block)."""
    return (2 + cfg.has_bias) if op == "bda" else 1


def _out_shapes(op: str, cfg: _Cfg, shape: tuple, dtype) -> list[tuple[tuple, Any]]:
    """(shape, dtype) of each output, for x (or grad) of `shape` (batch axes included)."""
    outs = [(tuple(shape), dtype)]
    if op == "bda_backward" and cfg.has_bias:
        outs.append((tuple(shape[:len(shape) - cfg.core_ndim]) + (shape[-1],), dtype))
    return outs


def _host(op: str, cfg: _Cfg, *operands):
    """The host side of one call: NumPy arrays in (leading batch axes allowed), a list of
    64-byte aligned NumPy outputs back. One kernel call per batch element, each with its
    own words (and origin)."""
    operands = [np.asarray(a) for a in operands]
    n = _n_arrays(op, cfg)
    ins, words = operands[:n], operands[n]
    x = ins[0]
    batch = x.shape[:x.ndim - cfg.core_ndim]
    outs = [aligned_empty(s, d) for s, d in _out_shapes(op, cfg, x.shape, x.dtype)]
    kernel = _KERNELS[op]
    for idx in np.ndindex(*batch):
        w = [int(v) for v in words[idx]]
        block = None
        if cfg.global_shape is not None:
            o = operands[n + 1][idx]
            block = (tuple(int(lo) | (int(hi) << 32) for lo, hi in o), cfg.global_shape)
        sl = idx + (Ellipsis,)  # views, also for 0-d elements
        kernel(cfg, w[0] | (w[1] << 32), w[2] | (w[3] << 32), block,
               [a[sl] for a in ins], [o[sl] for o in outs])
    return outs


# ---- the primitive -------------------------------------------------------------------------

_call_p = Primitive("fastdrop_call")
_call_p.multiple_results = True


def _varying(a) -> frozenset:
    """The mesh axes a value varies over inside jax.shard_map (empty elsewhere)."""
    try:
        return frozenset(jax.typeof(a).manual_axis_type.varying)
    except (AttributeError, TypeError):
        return frozenset()


def _bind(op: str, cfg: _Cfg, *operands) -> list:
    # inside shard_map, every operand is made to vary over the axes any operand varies
    # over (as JAX's own ops do), so that the transpose of a replicated operand (a bias
    # next to a sharded x) is summed over those axes
    axes = frozenset().union(*(_varying(a) for a in operands))
    if axes:
        operands = [a if _varying(a) >= axes else
                    jax.lax.pcast(a, tuple(sorted(axes - _varying(a))), to="varying")
                    for a in operands]
    return _call_p.bind(*operands, op=op, cfg=cfg)


def _impl(*operands, op, cfg):
    """Eager: the kernels read the JAX buffers through zero-copy NumPy views and write
    64-byte aligned arrays that device_put adopts without copying. An x sharded over
    several devices goes through the lowering (one custom call per shard, in x's
    sharding; replicated over them when x is), as do arrays off the CPU. The outputs are
    placed as JAX ops place theirs: on a committed x's device (committed), else on the
    default device."""
    x = operands[0]
    if not _split_eagerly(x) and all(jax_platform(a) == "cpu" for a in operands):
        where = next(iter(x.sharding.device_set)) if getattr(x, "committed", False) \
            else None
        return [jax.device_put(o, where) for o in _host(op, cfg, *operands)]
    with jax.disable_jit(False):   # (under jax.disable_jit, jit would call _impl again)
        return _jitted(op, cfg)(*operands)  # through the lowering


@functools.lru_cache(maxsize=256)
def _jitted(op: str, cfg: _Cfg):
    return jax.jit(functools.partial(_bind, op, cfg))


def _split_eagerly(x) -> bool:
    """Whether a concrete x is on several devices (split or replicated)."""
    try:
        return len(x.sharding.device_set) > 1
    except AttributeError:
        return False


def _abstract_eval(*avals, op, cfg):
    x = avals[0]
    # inside shard_map the outputs vary over the mesh axes of the most varying operand
    # (x, or the origin of shard_block, which varies over the mesh axes it reads)
    mat = max((getattr(a, "manual_axis_type", None) for a in avals),
              key=lambda m: len(getattr(m, "varying", ())))
    out = []
    for shape, dtype in _out_shapes(op, cfg, x.shape, x.dtype):
        try:
            extra = {} if mat is None else {"manual_axis_type": mat}
            if shape != x.shape:  # dbias: replicated
                extra["sharding"] = x.sharding.update(spec=jax.sharding.PartitionSpec())
            out.append(x.update(shape=shape, dtype=dtype, weak_type=False, **extra))
        except (AttributeError, TypeError, ValueError):  # other versions of JAX's avals
            out.append(jax.core.ShapedArray(shape, dtype))
    return out


def _callback(*operands, op, cfg):
    x = operands[0]
    specs = [jax.ShapeDtypeStruct(s, d) for s, d in _out_shapes(op, cfg, x.shape, x.dtype)]
    return jax.pure_callback(functools.partial(_host, op, cfg), specs, *operands)


def _lower_callback(ctx, *operands, op, cfg):
    """The fallback lowering: a host callback (jax.pure_callback) into `_host`."""
    params = getattr(ctx.module_context, "lowering_parameters", None)
    if getattr(params, "for_export", False):
        x_aval = ctx.avals_in[0]
        core_shape = tuple(x_aval.shape[len(x_aval.shape) - cfg.core_ndim:])
        reason = _route(op, cfg, core_shape)[1]   # (the CPU's reason, if it has one)
        if reason is None:   # the registration for the other platforms
            platforms = getattr(ctx.module_context, "platforms", None) or ()
            reason = (f"on {', '.join(p for p in platforms if p != 'cpu') or 'a platform'} "
                      f"(the XLA FFI targets are CPU only)")
        raise NotImplementedError(
            f"fastdrop.jax cannot export this call (jax.export): {op} {reason} runs "
            f"through a host callback (jax.pure_callback), which XLA cannot serialize; "
            f"the XLA FFI route (lowering_route()) exports for the CPU "
            f"(platforms=('cpu',)). Export a model without this call (e.g. at inference, "
            f"training=False / deterministic=True, where no kernel runs).")
    return mlir.lower_fun(functools.partial(_callback, op=op, cfg=cfg),
                          multiple_results=True)(ctx, *operands)


# ---- the XLA FFI lowering: XLA custom calls into fastdrop._cpu._xla ------------------------
#
# The handlers are C functions written against XLA's stable FFI C API (a header vendored
# from jaxlib: fastdrop/_cpu/src/xla_ffi_c_api.h), built with fastdrop's other kernels; they
# run on XLA's threads without the GIL and write XLA's result buffers in place. The
# attributes are computed here by fastdrop._core.contract (thresholds, scales, alpha and
# gaussian constants), so the kernels get the NumPy API's own numbers.

try:  # the extension is part of fastdrop's build; a build without it falls back
    from ._cpu import _xla
except ImportError as _exc:  # pragma: no cover - a partial build
    _xla = None
    _FFI_ERROR = f"fastdrop._cpu._xla did not import ({_exc})"
else:
    _FFI_ERROR = None

_FFI_TARGETS: dict = {}   # op -> registered target name
_WARNED: set = set()      # the fallback reasons already warned about


class FallbackWarning(UserWarning):
    """Warned (once per op and reason) when a fastdrop.jax call is lowered under ``jit``
    to a host callback (``jax.pure_callback``) instead of an XLA custom call.

    Parameters
    ----------
    message : str
        The op and the reason (as `lowering_reason` gives it).

    Raises
    ------
    Nothing: a warning class (``warnings.simplefilter("error", FallbackWarning)`` turns
    it into an exception).

    Examples
    --------
    >>> import warnings, fastdrop.jax as fj
    >>> issubclass(fj.FallbackWarning, UserWarning)
    True
    """


def _ffi_threads() -> int:
    """The handlers' thread cap: fastdrop._cpu.backend's policy for n_threads=None
    (OMP_NUM_THREADS, else the usable CPUs, affinity and cgroup quota included; 1 in a
    forked child of a process that ran threads)."""
    from ._core.threads import current_default
    from ._cpu import _openmp_helpers, backend

    policy = backend.thread_policy()
    if policy["single"]:
        return 1
    n = current_default()
    t = max(1, _openmp_helpers.omp_max_threads()) if n is None else n
    return max(1, min(t, policy["cpus"]))


def _after_fork_in_child() -> None:
    # libgomp's threads do not survive fork: after a handler ran a parallel region, the
    # child's handlers run on one thread (as fastdrop._cpu.backend does for its kernels)
    if _xla is not None:
        _xla.set_threads(1 if _xla.parallel_ran() else _ffi_threads())


def _register_ffi() -> None:
    global _FFI_ERROR
    if _xla is None:
        return
    try:
        for name, capsule in _xla.capsules().items():
            jax.ffi.register_ffi_target(name, capsule, platform="cpu", api_version=1)
    except Exception as exc:  # an XLA that refuses the targets: the callback serves
        _FFI_ERROR = f"jax.ffi.register_ffi_target failed ({type(exc).__name__}: {exc})"
        return
    _FFI_TARGETS.update(_xla.TARGETS)
    _xla.set_threads(_ffi_threads())
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _fallback_reason(op: str, cfg: _Cfg) -> str | None:
    """Why this call cannot take the XLA FFI route (None: it can)."""
    if _FFI_ERROR is not None or op not in _FFI_TARGETS:
        return f"(the XLA FFI targets are not available: {_FFI_ERROR})"
    if _FORCE_CALLBACK:
        return "(FASTDROP_JAX_CALLBACK=1)"
    return None


def _ffi_attrs(op: str, cfg: _Cfg, core_shape: tuple) -> dict | None:
    """The custom call's attributes, or None when the call takes the callback (the
    gradient of a one-column bias: NumPy sums it pairwise, the handler row by row)."""
    from ._core import contract as C
    from ._cpu._dropout import Op

    full_shape = tuple(cfg.global_shape if cfg.global_shape is not None else core_shape)
    noise = (None if cfg.noise_shape is None or tuple(cfg.noise_shape) == full_shape
             else tuple(cfg.noise_shape))
    if op == "bda_backward" and cfg.has_bias and core_shape and core_shape[-1] == 1:
        return None
    bits = 32 if op.startswith("gaussian") else cfg.bits
    t = 0 if op.startswith("gaussian") else C.threshold(cfg.p, bits)
    full = 1 << bits
    kop, scale, a, c, d = int(Op.OP_DROPOUT), 1.0, 0.0, 0.0, 0.0
    if op in ("dropout", "dropout_backward", "bda", "bda_backward"):
        scale = 1.0 if cfg.mode == "classic" else C.inverted_scale(t, bits)
    elif op == "alpha":
        if 0 < t < full:
            kop = int(Op.OP_ALPHA)
            a, c, d = C.alpha_constants(t, bits)
    elif op == "alpha_backward":
        scale = 1.0 if t == 0 else C.alpha_constants(t, bits)[0]
    else:  # gaussian and its backward
        kop, scale = int(Op.OP_GAUSS), C.gaussian_sigma(cfg.p)
    attrs = dict(kop=np.int64(kop), t=np.int64(t), bits=np.int64(bits),
                 scale=np.float64(scale), a=np.float64(a), c=np.float64(c),
                 d=np.float64(d), has_bias=np.int64(cfg.has_bias))
    if cfg.global_shape is not None:  # the origin operand follows the words
        attrs["has_block"] = np.int64(1)
        if len(core_shape):
            attrs["gshape"] = np.asarray(cfg.global_shape, np.int64)
    if noise is not None:  # dropout and alpha dropout (the others have no noise_shape)
        # a symbolic dimension (jax.export's shape polymorphism: x's own, since the noise
        # has x's entries or 1) as -1, which the handler resolves from x's shape
        attrs["noise"] = np.asarray([d if isinstance(d, (int, np.integer)) else -1
                                     for d in noise], np.int64)
    return attrs


def _route(op: str, cfg: _Cfg, core_shape: tuple) -> tuple[str, str | None]:
    reason = _fallback_reason(op, cfg)
    if reason is None and _ffi_attrs(op, cfg, core_shape) is None:
        reason = "with a one-column bias (NumPy sums its gradient pairwise)"
    return ("callback", reason) if reason else ("xla_ffi", None)


def _lower(ctx, *operands, op, cfg):
    """The lowering under jit: an XLA custom call (stablehlo.custom_call of a
    fastdrop._cpu._xla target) where the call allows it, else a host callback, with a
    FallbackWarning once per reason. In a program partitioned over several devices (an
    Auto mesh, not exporting) the custom call is wrapped in
    ``jax.experimental.custom_partitioning`` (`_lower_partitioned`): each device runs it
    on its own shard as the block of the global array."""
    x_aval = ctx.avals_in[0]
    core_shape = tuple(x_aval.shape[len(x_aval.shape) - cfg.core_ndim:])
    route, reason = _route(op, cfg, core_shape)
    if route == "callback":
        if (op, reason) not in _WARNED and not _FORCE_CALLBACK:
            _WARNED.add((op, reason))
            warnings.warn(f"fastdrop.jax: {op} {reason} is lowered to a host callback "
                          f"(jax.pure_callback): a host round trip per call, and "
                          f"jax.export refuses it", FallbackWarning, stacklevel=2)
        return _lower_callback(ctx, *operands, op=op, cfg=cfg)
    if _partition_reason(ctx) is None:
        try:
            return _lower_partitioned(ctx, *operands, op=op, cfg=cfg)
        except Exception as exc:  # noqa: BLE001 - any failure: the plain (gathered) call
            key = (op, f"partitioning failed: {type(exc).__name__}")
            if key not in _WARNED:
                _WARNED.add(key)
                warnings.warn(f"fastdrop.jax: {op} could not be partitioned over the "
                              f"devices ({type(exc).__name__}: {exc}); XLA gathers its "
                              f"operands to run the custom call", RuntimeWarning,
                              stacklevel=2)
    return _lower_ffi(ctx, *operands, op=op, cfg=cfg)


def _lower_ffi(ctx, *operands, op, cfg):
    """The plain XLA custom call of one call on the arrays of ctx (a whole array, or one
    device's shard under `_lower_partitioned`)."""
    x_aval = ctx.avals_in[0]
    core_shape = tuple(x_aval.shape[len(x_aval.shape) - cfg.core_ndim:])
    attrs = _ffi_attrs(op, cfg, core_shape)
    if attrs is None:  # pragma: no cover - `_partition` never makes such shards
        return _lower_callback(ctx, *operands, op=op, cfg=cfg)
    aliases = {0: 0} if _ALIAS_X and op != "bda_backward" else None
    return jax.ffi.ffi_lowering(_FFI_TARGETS[op], operand_output_aliases=aliases)(
        ctx, *operands, **attrs)


# ---- SPMD partitioning: one custom call per device on its shard (custom_partitioning) -----
#
# Under jit with operands sharded over Auto mesh axes, XLA's SPMD partitioner sees the
# custom call as opaque and gathers its operands to run it whole. Wrapped in
# custom_partitioning (its partitioner is a host callback that XLA calls while compiling),
# each device instead runs the custom call on its own shard, with the shard's origin in the
# global array as its block (`block=`): computed in the per-shard program from the
# device's mesh coordinates (jax.lax.axis_index), so the draws follow the global indices and
# the result equals the unsharded one bit for bit, in x's sharding. Only the lowering of
# each bind is wrapped: differentiation, vmap and the rest stay on fastdrop_call, whose
# rules bind more fastdrop_calls, each lowered (and partitioned) on its own.

_ffi_p = Primitive("fastdrop_ffi")  # the custom call alone, inside custom_partitioning
_ffi_p.multiple_results = True
# FASTDROP_JAX_PARTITION=0 (read at import): no custom_partitioning, XLA gathers
_PARTITION = os.environ.get("FASTDROP_JAX_PARTITION", "1").strip() not in ("", "0")


def _partition_reason(ctx) -> str | None:
    """Why this lowering is not partitioned (None: it is): exporting (custom_partitioning's
    partitioner is a host callback that jax.export cannot serialize), one device, inside a
    shard_map (already per shard), no device assignment, or FASTDROP_JAX_PARTITION=0."""
    if not _PARTITION:
        return "FASTDROP_JAX_PARTITION=0"
    try:  # the lowering context's class (JAX has no public name for it)
        from jax._src import sharding_impls
    except ImportError:  # pragma: no cover - another JAX
        return "jax._src.sharding_impls is not there"
    mc = ctx.module_context
    if getattr(getattr(mc, "lowering_parameters", None), "for_export", False):
        return "exporting"
    axis_context = getattr(mc, "axis_context", None)
    if not isinstance(axis_context, sharding_impls.ShardingContext):
        return "not a GSPMD program (inside shard_map)"
    if axis_context.device_assignment is None or axis_context.abstract_mesh is None:
        return "no device assignment or mesh"
    if len(axis_context.device_assignment) < 2:
        return "one device"
    x_aval = ctx.avals_in[0]
    if len(x_aval.shape) == 0 or any(d == 0 for d in x_aval.shape):
        return "nothing to split"
    return None


def _lower_partitioned(ctx, *operands, op, cfg):
    nb = len(ctx.avals_in[0].shape) - cfg.core_ndim
    return mlir.lower_fun(_partitioned(op, cfg, nb), multiple_results=True)(ctx, *operands)


def _labels(op: str, cfg: _Cfg, nb: int) -> tuple[list, list, tuple]:
    """The Shardy sharding rule's factors: (operands, results, factors that stay whole).
    Batch axes (b*) and x's axes (c*) pass through; bias follows x's last axis; the words
    (w) and origin (o*) are whole per batch element."""
    b = [f"b{i}" for i in range(nb)]
    c = [f"c{i}" for i in range(cfg.core_ndim)]
    x = b + c
    ins = [x]
    if op == "bda":
        if cfg.has_bias:
            ins.append(b + c[-1:])
        ins.append(x)
    ins.append(b + ["w"])
    whole = ("w",)
    if cfg.global_shape is not None:
        ins.append(b + ["o0", "o1"])
        whole += ("o0", "o1")
    outs = [x]
    if op == "bda_backward" and cfg.has_bias:
        outs.append(b + c[-1:])
        whole = tuple(c[:-1]) + whole  # dbias sums the rows: they stay whole (bitwise)
    return ins, outs, whole  # (Shardy wants the special factors in the rule's order)


@functools.lru_cache(maxsize=None)
def _partitioned(op: str, cfg: _Cfg, nb: int):
    """The custom_partitioning function of a call with nb batch axes (cached)."""
    from jax.experimental.custom_partitioning import custom_partitioning

    def whole(*operands):
        return _ffi_p.bind(*operands, op=op, cfg=cfg)

    f = custom_partitioning(whole)
    ins, outs, keep_whole = _labels(op, cfg, nb)
    rule = (", ".join(" ".join(v) for v in ins) + " -> " +
            ", ".join(" ".join(v) for v in outs))
    f.def_partition(partition=functools.partial(_partition, op, cfg, nb),
                    infer_sharding_from_operands=functools.partial(_infer, op, cfg, nb),
                    sharding_rule=rule, need_replication_factors=keep_whole)
    return f


def _split_spec(op: str, cfg: _Cfg, nb: int, shape: tuple, sharding) -> tuple | None:
    """x's PartitionSpec entries that the per-shard calls keep (None per axis where the
    axis stays whole), or None when nothing is split. An axis stays whole where it does
    not divide evenly, where the shard's offset would not fit 32 bits, and for
    bias_dropout_add_backward with a bias on every axis but the batch axes and the last
    (dbias sums the rows: NumPy's order, on one device) and on a last axis of one column
    per shard."""
    from jax.sharding import NamedSharding

    if not isinstance(sharding, NamedSharding):
        return None
    spec = tuple(sharding.spec) + (None,) * (len(shape) - len(sharding.spec))
    sizes = dict(sharding.mesh.shape)
    keep = []
    for d, e in enumerate(spec):
        names = () if e is None else (tuple(e) if isinstance(e, (tuple, list)) else (e,))
        n = int(np.prod([sizes[a] for a in names])) if names else 1
        ok = bool(names) and n > 1 and shape[d] % n == 0 and shape[d] < 2 ** 32
        if ok and op == "bda_backward" and cfg.has_bias and d >= nb:
            ok = d == len(shape) - 1 and shape[d] // n >= 2
        keep.append(e if ok else None)
    return tuple(keep) if any(e is not None for e in keep) else None


def _shardings(op: str, cfg: _Cfg, nb: int, mesh, keep: tuple | None):
    """(operand shardings, result shardings) of a call whose x keeps `keep`."""
    from jax.sharding import NamedSharding, PartitionSpec as P

    keep = keep if keep is not None else (None,) * (nb + cfg.core_ndim)
    ins, outs, _ = _labels(op, cfg, nb)
    entry = {f"b{i}": keep[i] for i in range(nb)}
    entry.update({f"c{i}": keep[nb + i] for i in range(cfg.core_ndim)})

    def spec(labels):
        return NamedSharding(mesh, P(*(entry.get(f) for f in labels)))

    return tuple(spec(v) for v in ins), [spec(v) for v in outs]


def _infer(op, cfg, nb, mesh, arg_shapes, result_shape):
    """The results' shardings from the operands' (the GSPMD propagation's callback)."""
    x = arg_shapes[0]
    keep = _keep(op, cfg, nb, x)
    return _shardings(op, cfg, nb, x.sharding.mesh if keep else mesh, keep)[1]


def _keep(op: str, cfg: _Cfg, nb: int, x) -> tuple | None:
    """`_split_spec` of the partitioner's x, None (whole) should it not read."""
    try:
        return _split_spec(op, cfg, nb, tuple(x.shape), x.sharding)
    except Exception:  # noqa: BLE001 - a sharding it cannot read: run the call whole
        return None


def _partition(op, cfg, nb, mesh, arg_shapes, result_shape):
    """custom_partitioning's partition callback (run by XLA's SPMD partitioner): the
    operands' and results' shardings and the per-shard function. Each shard's origin is
    its mesh coordinate times its shape along every split axis of x, added to the call's
    own block origin (x is itself a block) or as a new block of x's global shape."""
    x = arg_shapes[0]
    shape = tuple(x.shape)
    keep = _keep(op, cfg, nb, x)
    if keep is None:  # replicated (or not a NamedSharding): the whole call, gathered
        in_sh, out_sh = _shardings(op, cfg, nb, mesh, None)
        return mesh, lambda *ops: _ffi_p.bind(*ops, op=op, cfg=cfg), out_sh, in_sh
    mesh = x.sharding.mesh
    in_sh, out_sh = _shardings(op, cfg, nb, mesh, keep)
    gcore = shape[nb:]
    new_cfg = cfg if cfg.global_shape is not None else cfg._replace(global_shape=gcore)

    def per_shard(*ops):
        local = ops[0].shape[nb:]
        offs = []
        for d in range(cfg.core_ndim):
            e = keep[nb + d]
            offs.append(jnp.uint32(0) if e is None else
                        jax.lax.axis_index(e).astype(jnp.uint32) * jnp.uint32(local[d]))
        offs = jnp.stack(offs) if offs else jnp.zeros((0,), jnp.uint32)
        batch = ops[0].shape[:nb]
        if cfg.global_shape is None:  # a new block: the shard's place in x
            o = jnp.stack([offs, jnp.zeros_like(offs)], axis=-1)
            o = jnp.broadcast_to(o, batch + o.shape)
            return _ffi_p.bind(*ops, o, op=op, cfg=new_cfg)
        o = ops[-1]  # x is a block itself: its origin plus the shard's offset (64 bits)
        lo = o[..., 0] + offs
        hi = o[..., 1] + (lo < o[..., 0]).astype(jnp.uint32)
        return _ffi_p.bind(*ops[:-1], jnp.stack([lo, hi], axis=-1), op=op, cfg=new_cfg)

    return mesh, per_shard, out_sh, in_sh


def export_checks() -> list:
    """The ``disabled_checks`` that let ``jax.export`` serialize fastdrop's custom calls.

    JAX exports only the custom call targets it knows to be stable; fastdrop's targets
    (``fastdrop_<op>_v1``) keep their operands and attributes for as long as their name
    (a change gets a new version). The program that deserializes the export must have
    imported ``fastdrop.jax`` (which registers the targets with XLA).

    Parameters
    ----------
    None

    Returns
    -------
    list of jax.export.DisabledSafetyCheck
        One per target (empty in a build without the FFI handlers).

    Raises
    ------
    Nothing.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, fastdrop.jax as fj
    >>> f = jax.jit(lambda x: fj.dropout(x, 0.5, seed=42))
    >>> exp = jax.export.export(f, disabled_checks=fj.export_checks())(jnp.ones(8))
    >>> jax.export.deserialize(exp.serialize()).call(jnp.ones(8))
    Array([2., 2., 0., 0., 0., 0., 2., 0.], dtype=float32)
    """
    return [jax.export.DisabledSafetyCheck.custom_call(t) for t in _xla.TARGETS.values()] \
        if _xla is not None else []


def lowering_route(op: str = "dropout", **config) -> str:
    """How calls are lowered under ``jit``: ``"xla_ffi"`` (an XLA custom call into
    fastdrop's C kernels: no host round trip, exportable) or ``"callback"`` (a
    ``jax.pure_callback`` into the same kernels).

    Parameters
    ----------
    op : str
        One of "dropout", "dropout_backward", "alpha", "alpha_backward", "gaussian",
        "gaussian_backward", "bda", "bda_backward".
    **config
        p, bits, mode, noise_shape, has_bias, shape (of x), as the call would have them;
        the defaults are a plain call.

    Returns
    -------
    str
        "xla_ffi" or "callback". The reason of a callback is in `lowering_reason`.

    Raises
    ------
    ValueError
        An unknown op, or a bad noise_shape for the shape.

    Examples
    --------
    >>> import fastdrop.jax
    >>> fastdrop.jax.lowering_route()
    'xla_ffi'
    >>> fastdrop.jax.lowering_route("bda_backward", has_bias=True, shape=(4, 1))
    'callback'
    """
    return _route_of(op, config)[0]


def lowering_reason(op: str = "dropout", **config) -> str | None:
    """Why `lowering_route` says "callback" for this call.

    Parameters
    ----------
    op, **config
        As in `lowering_route`.

    Returns
    -------
    str or None
        The reason; None when the call is lowered to the XLA custom call.

    Raises
    ------
    ValueError
        As `lowering_route`.

    Examples
    --------
    >>> import fastdrop.jax
    >>> fastdrop.jax.lowering_reason() is None
    True
    >>> fastdrop.jax.lowering_reason("bda_backward", has_bias=True, shape=(4, 1))
    'with a one-column bias (NumPy sums its gradient pairwise)'
    """
    return _route_of(op, config)[1]


def _route_of(op: str, config: dict) -> tuple[str, str | None]:
    if op not in _KERNELS:
        raise ValueError(f"op must be one of {sorted(_KERNELS)}, got {op!r}")
    shape = tuple(config.pop("shape", (8,)))
    noise = config.pop("noise_shape", None)
    cfg = _Cfg(p=float(config.pop("p", 0.5)), core_ndim=len(shape),
               noise_shape=None if noise is None else check_noise_shape(noise, shape),
               **config)
    return _route(op, cfg, shape)


# FASTDROP_JAX_CALLBACK=1: every call takes the host callback (for comparisons)
_FORCE_CALLBACK = os.environ.get("FASTDROP_JAX_CALLBACK", "").strip() not in ("", "0")
# the output aliases x (operand 0): XLA writes in place where x is dead afterwards (a
# donated argument, an intermediate), and copies x first where it is still needed
_ALIAS_X = os.environ.get("FASTDROP_JAX_ALIAS", "1").strip() not in ("", "0")


# -- autodiff: the tangent of an op is its linear part applied to the tangent; the transpose
#    of a linear op is the backward kernel (D is diagonal: D^T = D)

# the linear part of each op (for alpha, x -> a x where kept: its backward kernel)
_TANGENT_OP = {"dropout": "dropout", "dropout_backward": "dropout_backward",
               "alpha": "alpha_backward", "alpha_backward": "alpha_backward",
               "gaussian": "gaussian", "gaussian_backward": "gaussian_backward",
               "bda": "bda", "bda_backward": "bda_backward"}
# the transposes of the linear ops (alpha itself is affine: never transposed)
_TRANSPOSE_OP = {"dropout": "dropout_backward", "dropout_backward": "dropout",
                 "alpha_backward": "alpha_backward",
                 "gaussian": "gaussian_backward", "gaussian_backward": "gaussian"}


def _jvp(primals, tangents, *, op, cfg):
    outs = _bind(op, cfg, *primals)
    n = _n_arrays(op, cfg)
    ts = tangents[:n]
    if all(type(t) is ad.Zero for t in ts):
        return outs, [ad.Zero.from_primal_value(o) for o in outs]
    ts = [ad.instantiate_zeros(t) for t in ts]
    return outs, _bind(_TANGENT_OP[op], cfg, *ts, *primals[n:])


def _transpose(cts, *operands, op, cfg):
    n = _n_arrays(op, cfg)
    rest = operands[n:]
    if any(ad.is_undefined_primal(a) for a in rest):
        raise TypeError("fastdrop.jax: the seed, stream and block origin are not "
                        "differentiable")
    ins = operands[:n]
    x_aval = ins[0].aval if ad.is_undefined_primal(ins[0]) else jax.typeof(ins[0])
    cts = [ad.instantiate_zeros(c) for c in cts]
    if op in _TRANSPOSE_OP:
        res = _bind(_TRANSPOSE_OP[op], cfg, cts[0], *rest)
    elif op == "bda":  # y = r + D (x + b): x^T = D g, b^T = sum(D g), r^T = g
        dx = _bind("bda_backward", cfg, cts[0], *rest)
        res = dx + [cts[0]]
    elif op == "bda_backward":  # (D g, sum D g)^T (cx, cb) = D (cx + cb): bda with r = 0
        zero = jnp.zeros(x_aval.shape, x_aval.dtype)
        res = _bind("bda", cfg, *cts, zero, *rest)
    else:
        raise NotImplementedError(f"fastdrop.jax: {op} is not linear")
    return [r if ad.is_undefined_primal(a) else None for r, a in zip(res, ins)] + \
        [None] * len(rest)


def _batch(operands, dims, *, op, cfg):
    """vmap: every operand gets the batch axis in front (broadcast where unbatched); the
    host loops over it, each element with its own words."""
    size = next(a.shape[d] for a, d in zip(operands, dims) if d is not None)
    moved = [jnp.broadcast_to(a, (size,) + a.shape) if d is None else jnp.moveaxis(a, d, 0)
             for a, d in zip(operands, dims)]
    outs = _bind(op, cfg, *moved)
    return outs, [0] * len(outs)


_call_p.def_impl(_impl)
_call_p.def_abstract_eval(_abstract_eval)
mlir.register_lowering(_call_p, _lower_callback)
mlir.register_lowering(_call_p, _lower, platform="cpu")
_ffi_p.def_impl(_impl)
_ffi_p.def_abstract_eval(_abstract_eval)
mlir.register_lowering(_ffi_p, _lower_ffi, platform="cpu")
if _PARTITION:  # custom_partitioning needs the devices and the mesh while lowering
    try:
        from jax._src import dispatch as _dispatch
        _dispatch.prim_requires_devices_during_lowering.add(_call_p)
    except (ImportError, AttributeError):  # pragma: no cover - another JAX
        _PARTITION = False
_register_ffi()
ad.primitive_jvps[_call_p] = _jvp
ad.primitive_transposes[_call_p] = _transpose
batching.primitive_batchers[_call_p] = _batch


# ---- argument checks ----------------------------------------------------------------------


def _check_array(a: Any, name: str):
    try:
        a = jnp.asarray(a)
    except (TypeError, ValueError) as exc:   # None, strings, objects: name the argument
        raise TypeError(f"{name} must be an array of float16, bfloat16, float32 or "
                        f"float64, got {type(a).__name__}") from exc
    if a.dtype.name not in _SUPPORTED:
        raise TypeError(f"{name} must have dtype float16, bfloat16, float32 or float64, "
                        f"got {a.dtype}")
    return a


def _check_training(training: Any) -> bool:
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training must be a bool (static), got {type(training).__name__}")
    return bool(training)


def _block_operands(block: Any, shape: tuple) -> tuple[tuple | None, list]:
    """(global_shape, [origin words uint32[ndim, 2]]) of block=, or (None, [])."""
    if block is None:
        return None, []
    if isinstance(block, (str, bytes)) or not hasattr(block, "__len__") or len(block) != 2:
        raise TypeError("block must be a pair (origin, global_shape)")
    origin, gshape = block
    if not isinstance(origin, jax.core.Tracer) and not isinstance(origin, jax.Array):
        origin, gshape = check_placement(block, shape)  # static: every check now
        o = np.array([[v & 0xFFFFFFFF, v >> 32] for v in origin], np.uint32)
        return gshape, [jnp.asarray(o.reshape(len(shape), 2))]
    # an integer array of one entry per axis, possibly traced (jax.lax.axis_index)
    gshape = check_placement(((0,) * len(shape), gshape), shape)[1]
    origin = jnp.asarray(origin)
    if origin.shape != (len(shape),) or not jnp.issubdtype(origin.dtype, jnp.integer):
        raise TypeError(f"block origin must be ints or an integer array of shape "
                        f"({len(shape)},), got {origin.dtype}{list(origin.shape)}")
    lo = origin.astype(jnp.uint32)
    hi = ((origin.astype(jnp.uint64) >> 32).astype(jnp.uint32) if origin.dtype.itemsize == 8
          else jnp.zeros_like(lo))
    return gshape, [jnp.stack([lo, hi], axis=-1)]


def _noise(noise_shape: Any, shape: tuple, gshape: tuple | None):
    if noise_shape is None:
        return None
    full = gshape if gshape is not None else shape
    if not isinstance(noise_shape, (str, bytes)) and hasattr(noise_shape, "__len__") \
            and len(noise_shape) == len(full):
        # a symbolic dimension of jax.export (x.shape[0] of a polymorphic batch) that is
        # x's own size there: as None
        noise_shape = tuple(None if _symbolic_size(d, n) else d
                            for d, n in zip(noise_shape, full))
    return check_noise_shape(noise_shape, full)


def _symbolic_size(d: Any, n: Any) -> bool:
    """Whether noise entry d is a symbolic dimension equal to the axis size n."""
    if d is None or isinstance(d, (numbers.Integral, np.integer)):
        return False
    try:
        return bool(d == n)
    except Exception:  # noqa: BLE001 - an undecidable comparison: not the same size
        return False


def _run(op: str, arrays: list, seed: Any, stream: Any, block: Any, **cfg):
    x = arrays[0]
    gshape, origin = _block_operands(block, tuple(x.shape))
    noise_shape = _noise(cfg.pop("noise_shape", None), tuple(x.shape), gshape)
    words = stream_words(seed, stream)
    spec = _explicit_spec(x) if block is None and op != "bda_backward" else None
    if spec is not None:
        return _run_sharded(op, arrays, words, spec, noise_shape=noise_shape, **cfg)
    c = _Cfg(noise_shape=noise_shape, core_ndim=x.ndim, global_shape=gshape, **cfg)
    return _bind(op, c, *arrays, words, *origin)


def _explicit_spec(x) -> tuple | None:
    """The PartitionSpec entries of x when it is sharded over Explicit mesh axes (under
    jit, ``jax.sharding.AxisType.Explicit``, the default of ``jax.make_mesh``), else None."""
    try:
        sharding = jax.typeof(x).sharding
        spec, mesh = tuple(sharding.spec), sharding.mesh
        explicit = {n for n, t in zip(mesh.axis_names, mesh.axis_types)
                    if t == jax.sharding.AxisType.Explicit}
    except (AttributeError, TypeError):
        return None
    spec = spec + (None,) * (x.ndim - len(spec))
    used = [n for e in spec if e is not None for n in (e if isinstance(e, tuple) else (e,))]
    if not used or not set(used) <= explicit:
        return None
    return spec


def _run_sharded(op: str, arrays: list, words, spec: tuple, **cfg):
    """Each device runs its shard as the block of the global array (``shard_block``), in a
    ``jax.shard_map`` over x's mesh: the result equals the unsharded one bit for bit and
    keeps x's sharding. bias follows x's last axis, residual x's spec."""
    from jax.sharding import PartitionSpec

    x = arrays[0]
    gshape = tuple(x.shape)
    mesh = jax.typeof(x).sharding.mesh
    c = _Cfg(core_ndim=x.ndim, global_shape=gshape, **cfg)
    in_specs = [PartitionSpec(*spec)]
    if op == "bda":
        if c.has_bias:
            in_specs.append(PartitionSpec(spec[-1]))
        in_specs.append(PartitionSpec(*spec))
        arrays = [arrays[0]] + [jax.sharding.reshard(a, jax.NamedSharding(mesh, s))
                                for a, s in zip(arrays[1:], in_specs[1:])]

    def per_shard(*operands):
        origin, _ = shard_block(operands[0], gshape, spec)
        lo = origin.astype(jnp.uint32)
        o = jnp.stack([lo, jnp.zeros_like(lo)], axis=-1)
        return _bind(op, c, *operands, o)

    return jax.shard_map(per_shard, mesh=mesh,
                         in_specs=tuple(in_specs) + (PartitionSpec(),),
                         out_specs=[PartitionSpec(*spec)])(*arrays, words)


# ---- public: dropout ------------------------------------------------------------------------


def dropout(x: Any, p: float = 0.5, *, seed: Any, stream: Any = 0, training: bool = True,
            mode: str = "inverted", noise_shape: Any = None, bits: int = 16,
            block: Any = None) -> jax.Array:
    """Dropout of a JAX array through fastdrop's CPU kernels; differentiable in both
    modes (grad, jvp, jacfwd, jacrev, hessian), jit-, vmap- and scan-able.

    Parameters
    ----------
    x : jax.Array (or array_like) of float16, bfloat16, float32 or float64
    p : float
        Drop probability in [0, 1] (a Python number: it is static under jit).
    seed : int, integer scalar array or JAX key
        The Philox key; traced values allowed. ``jax.random.key(n)`` and
        ``jax.random.PRNGKey(n)`` stand for ``n``; other keys for their 64 key bits.
    stream : int or integer scalar array
        The Philox stream (traced values allowed, so a step counter can be the stream
        without recompiling).
    training : bool
        False: inverted mode returns x itself; classic mode ``x * P(keep)``.
    mode, noise_shape, bits
        As in ``fastdrop.dropout`` (static).
    block : (origin, global_shape), optional
        As in ``fastdrop.dropout``: x is the block at `origin` of a global array. The
        origin may be a traced integer array of one entry per axis (a shard's place,
        see `shard_block`); global_shape is static.

    Returns
    -------
    jax.Array
        Of x's dtype and shape, on the CPU; equal to
        ``fastdrop.dropout(np.asarray(x), p, seed=seed, stream=stream, ...)`` bit for bit.

    Raises
    ------
    TypeError
        x has an unsupported dtype, training is not a bool, seed or stream is not an
        integer or key, a bad block.
    ValueError
        p outside [0, 1], a bad bits, mode, noise_shape or block, a seed or stream outside
        [0, 2**64 - 1].

    Examples
    --------
    >>> import jax, jax.numpy as jnp, fastdrop.jax
    >>> x = jnp.ones(8)
    >>> fastdrop.jax.dropout(x, 0.5, seed=42)
    Array([2., 2., 0., 0., 0., 0., 2., 0.], dtype=float32)
    >>> step = jax.jit(lambda x, s: fastdrop.jax.dropout(x, 0.5, seed=42, stream=s))
    >>> step(x, 0)                                      # the stream may be traced
    Array([2., 2., 0., 0., 0., 0., 2., 0.], dtype=float32)
    >>> jax.grad(lambda x: fastdrop.jax.dropout(x, 0.5, seed=42).sum())(x)
    Array([2., 2., 0., 0., 0., 0., 2., 0.], dtype=float32)
    >>> jax.jvp(lambda x: fastdrop.jax.dropout(x, 0.5, seed=42), (x,), (3 * x,))[1]
    Array([6., 6., 0., 0., 0., 0., 6., 0.], dtype=float32)
    """
    x = _check_array(x, "x")
    pf = check_p(p)
    b = check_bits(bits)
    m = check_choice(mode, "mode", ("inverted", "classic"))
    if not _check_training(training):
        stream_words(seed, stream)  # checked all the same
        if m == "inverted":
            return x
        ct = jnp.float32 if x.dtype.itemsize == 2 else x.dtype
        keep = np.array(1.0 - _F.effective_p(pf, b), dtype=ct)
        return (x.astype(ct) * keep).astype(x.dtype)
    return _run("dropout", [x], seed, stream, block, p=pf, bits=b, mode=m,
                noise_shape=noise_shape)[0]


def dropout_backward(grad: Any, p: float, *, seed: Any, stream: Any = 0,
                     mode: str = "inverted", noise_shape: Any = None, bits: int = 16,
                     block: Any = None) -> jax.Array:
    """Gradient of `dropout`: ``grad * scale`` where kept, else +0 (classic: ``grad``),
    the mask regenerated from (seed, stream); itself differentiable in both modes.

    Parameters
    ----------
    grad : jax.Array (or array_like) of float16, bfloat16, float32 or float64
        The gradient of dropout's output.
    p : float
        The forward call's drop probability (static).
    seed, stream
        The forward call's seed (or JAX key) and stream; traced values allowed.
    mode, noise_shape, bits, block
        The forward call's (as in `dropout`).

    Returns
    -------
    jax.Array
        Of grad's dtype and shape; equal to ``fastdrop.dropout_backward`` bit for bit.

    Raises
    ------
    TypeError, ValueError
        As `dropout`.

    Examples
    --------
    >>> import jax.numpy as jnp, fastdrop.jax
    >>> fastdrop.jax.dropout_backward(jnp.full(8, 3.0), 0.5, seed=42)
    Array([6., 6., 0., 0., 0., 0., 6., 0.], dtype=float32)
    """
    g = _check_array(grad, "grad")
    return _run("dropout_backward", [g], seed, stream, block, p=check_p(p),
                bits=check_bits(bits), mode=check_choice(mode, "mode", ("inverted", "classic")),
                noise_shape=noise_shape)[0]


# ---- public: alpha and gaussian dropout -----------------------------------------------------


def alpha_dropout(x: Any, p: float = 0.5, *, seed: Any, stream: Any = 0,
                  training: bool = True, noise_shape: Any = None, bits: int = 16,
                  block: Any = None) -> jax.Array:
    """Alpha dropout (SELU networks) of a JAX array, as ``fastdrop.alpha_dropout``;
    differentiable in both modes, jit-, vmap- and scan-able.

    Kept elements become ``x * a + b``, dropped ones ``c`` (the constants of
    ``fastdrop.alpha_dropout``): an affine map, whose tangent and gradient are
    ``t * a`` where kept and 0 elsewhere (``alpha_dropout_backward``).

    Parameters
    ----------
    x : jax.Array (or array_like) of float16, bfloat16, float32 or float64
    p : float
        Drop probability in [0, 1] (static).
    seed, stream
        As in `dropout` (traced values and JAX keys allowed).
    training : bool
        False returns x itself.
    noise_shape, bits, block
        As in `dropout` (static; a block origin may be traced).

    Returns
    -------
    jax.Array
        Of x's dtype and shape; equal to ``fastdrop.alpha_dropout`` bit for bit.

    Raises
    ------
    TypeError, ValueError
        As `dropout`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, fastdrop.jax
    >>> fastdrop.jax.alpha_dropout(jnp.zeros(4), 0.5, seed=42)
    Array([ 0.7791...,  0.7791..., -0.7791..., -0.7791...], dtype=float32)
    >>> jax.grad(lambda x: fastdrop.jax.alpha_dropout(x, 0.5, seed=42).sum())(jnp.zeros(4))
    Array([0.8864..., 0.8864..., 0.       , 0.       ], dtype=float32)
    """
    x = _check_array(x, "x")
    pf, b = check_p(p), check_bits(bits)
    if not _check_training(training):
        stream_words(seed, stream)
        return x
    return _run("alpha", [x], seed, stream, block, p=pf, bits=b, noise_shape=noise_shape)[0]


def alpha_dropout_backward(grad: Any, p: float, *, seed: Any, stream: Any = 0,
                           noise_shape: Any = None, bits: int = 16,
                           block: Any = None) -> jax.Array:
    """Gradient of `alpha_dropout`: ``grad * a`` where kept, else +0.

    Parameters
    ----------
    grad : jax.Array (or array_like) of float16, bfloat16, float32 or float64
        The gradient of alpha_dropout's output.
    p : float
        The forward call's drop probability.
    seed, stream, noise_shape, bits, block
        The forward call's (as in `alpha_dropout`).

    Returns
    -------
    jax.Array
        Equal to ``fastdrop.alpha_dropout_backward`` bit for bit.

    Raises
    ------
    TypeError, ValueError
        As `dropout`.

    Examples
    --------
    >>> import jax.numpy as jnp, fastdrop.jax
    >>> fastdrop.jax.alpha_dropout_backward(jnp.ones(4), 0.5, seed=42)
    Array([0.8864..., 0.8864..., 0.       , 0.       ], dtype=float32)
    """
    g = _check_array(grad, "grad")
    return _run("alpha_backward", [g], seed, stream, block, p=check_p(p),
                bits=check_bits(bits), noise_shape=noise_shape)[0]


def _gaussian_p(p: Any) -> float:
    pf = check_p(p)
    _F.gaussian_sigma(pf)  # p = 1: ValueError (infinite variance)
    return pf


def gaussian_dropout(x: Any, p: float = 0.5, *, seed: Any, stream: Any = 0,
                     training: bool = True, block: Any = None) -> jax.Array:
    """Gaussian dropout (Keras ``GaussianDropout``) of a JAX array, as
    ``fastdrop.gaussian_dropout``: ``x * g``, g = 1 + sigma z; linear in x, so its tangent
    and gradient are ``t * g`` with the same noise.

    Parameters
    ----------
    x : jax.Array (or array_like) of float16, bfloat16, float32 or float64
    p : float
        In [0, 1) (static).
    seed, stream
        As in `dropout` (traced values and JAX keys allowed).
    training : bool
        False returns x itself.
    block : (origin, global_shape), optional
        As in `dropout`.

    Returns
    -------
    jax.Array
        Equal to ``fastdrop.gaussian_dropout`` bit for bit.

    Raises
    ------
    TypeError, ValueError
        As `dropout`; p = 1.

    Examples
    --------
    >>> import jax.numpy as jnp, fastdrop.jax
    >>> fastdrop.jax.gaussian_dropout(jnp.ones(3), 0.5, seed=1)
    Array([2.2279..., 2.2518..., 1.2165...], dtype=float32)
    """
    x = _check_array(x, "x")
    pf = _gaussian_p(p)
    if not _check_training(training):
        stream_words(seed, stream)
        return x
    return _run("gaussian", [x], seed, stream, block, p=pf)[0]


def gaussian_dropout_backward(grad: Any, p: float, *, seed: Any, stream: Any = 0,
                              block: Any = None) -> jax.Array:
    """Gradient of `gaussian_dropout`: ``grad * g`` with the forward call's noise.

    Parameters
    ----------
    grad : jax.Array (or array_like) of float16, bfloat16, float32 or float64
        The gradient of gaussian_dropout's output.
    p : float
        The forward call's rate, in [0, 1).
    seed, stream, block
        The forward call's.

    Returns
    -------
    jax.Array
        Equal to ``fastdrop.gaussian_dropout_backward`` bit for bit.

    Raises
    ------
    TypeError, ValueError
        As `gaussian_dropout`.

    Examples
    --------
    >>> import jax.numpy as jnp, fastdrop.jax
    >>> fastdrop.jax.gaussian_dropout_backward(jnp.ones(3), 0.5, seed=1)
    Array([2.2279..., 2.2518..., 1.2165...], dtype=float32)
    """
    g = _check_array(grad, "grad")
    return _run("gaussian_backward", [g], seed, stream, block, p=_gaussian_p(p))[0]


# ---- public: bias-dropout-add -----------------------------------------------------------------


def bias_dropout_add(x: Any, bias: Any, residual: Any, p: float, *, seed: Any,
                     stream: Any = 0, bits: int = 16, block: Any = None) -> jax.Array:
    """Fused ``residual + dropout(x + bias)``, as ``fastdrop.bias_dropout_add``; linear
    in (x, bias, residual) jointly, differentiable in both modes with respect to all three.

    Parameters
    ----------
    x : jax.Array (or array_like) of float16, bfloat16, float32 or float64
        The input of the dropout.
    bias : jax.Array of x's dtype, shape ``(x.shape[-1],)``, or None
        Added to every row of x before the dropout.
    residual : jax.Array of x's dtype and shape
        Added after the dropout.
    p : float
        Drop probability in [0, 1] (static).
    seed, stream
        As in `dropout` (traced values and JAX keys allowed).
    bits, block
        As in `dropout`.

    Returns
    -------
    jax.Array
        Equal to ``fastdrop.bias_dropout_add`` bit for bit; its gradients are
        `bias_dropout_add_backward`'s.

    Raises
    ------
    TypeError
        Mixed or unsupported dtypes.
    ValueError
        A bias or residual of the wrong shape, and as `dropout`.

    Examples
    --------
    >>> import jax.numpy as jnp, fastdrop.jax
    >>> x = jnp.ones((2, 4))
    >>> fastdrop.jax.bias_dropout_add(x, jnp.ones(4), jnp.zeros_like(x), 0.5, seed=42)
    Array([[4., 4., 0., 0.],
           [0., 0., 4., 0.]], dtype=float32)
    """
    x = _check_array(x, "x")
    residual = _check_array(residual, "residual")
    if residual.dtype != x.dtype or residual.shape != x.shape:
        kind = TypeError if residual.dtype != x.dtype else ValueError
        raise kind(f"residual must have x's dtype and shape {x.dtype}{list(x.shape)}, got "
                   f"{residual.dtype}{list(residual.shape)}")
    arrays = [x]
    if bias is not None:
        bias = _check_array(bias, "bias")
        if bias.dtype != x.dtype:
            raise TypeError(f"bias must have x's dtype {x.dtype}, got {bias.dtype}")
        if x.ndim == 0 or bias.shape != (x.shape[-1],):
            raise ValueError(f"bias must have shape (x.shape[-1],) = "
                             f"{(x.shape[-1],) if x.ndim else '(none: x is 0-d)'}, got "
                             f"{bias.shape}")
        arrays.append(bias)
    arrays.append(residual)
    return _run("bda", arrays, seed, stream, block, p=check_p(p), bits=check_bits(bits),
                has_bias=bias is not None)[0]


def bias_dropout_add_backward(grad: Any, p: float, *, seed: Any, stream: Any = 0,
                              bits: int = 16, has_bias: bool = True,
                              block: Any = None) -> tuple:
    """Gradients of `bias_dropout_add`: ``(dx, dbias, dresidual)``, as
    ``fastdrop.bias_dropout_add_backward``.

    Parameters
    ----------
    grad : jax.Array (or array_like) of float16, bfloat16, float32 or float64
        The gradient of bias_dropout_add's output.
    p : float
        The forward call's drop probability.
    seed, stream, bits, block
        The forward call's.
    has_bias : bool
        False: dbias is None.

    Returns
    -------
    dx : jax.Array
        Dropout's gradient, of grad's shape.
    dbias : jax.Array of shape ``(grad.shape[-1],)``, or None
        dx summed over all axes but the last (accumulated in float64 on the host).
    dresidual : jax.Array
        grad itself.

    Raises
    ------
    TypeError, ValueError
        As `bias_dropout_add`; a 0-d grad with has_bias.

    Examples
    --------
    >>> import jax.numpy as jnp, fastdrop.jax
    >>> dx, dbias, dres = fastdrop.jax.bias_dropout_add_backward(jnp.ones((2, 4)), 0.5, seed=42)
    >>> dbias
    Array([2., 2., 2., 0.], dtype=float32)
    """
    g = _check_array(grad, "grad")
    hb = check_bool(has_bias, "has_bias")
    if hb and g.ndim == 0:
        raise ValueError("grad must have at least one axis when has_bias (dbias has shape "
                         "(grad.shape[-1],))")
    outs = _run("bda_backward", [g], seed, stream, block, p=check_p(p),
                bits=check_bits(bits), has_bias=hb)
    return outs[0], (outs[1] if hb else None), g


# ---- sharding: a shard as the block of the global array ------------------------------------


def shard_block(x_shard: Any, global_shape: Any, axis_names: Any) -> tuple:
    """The ``block=`` of a shard inside ``jax.shard_map``: (origin, global_shape), the
    origin traced from ``jax.lax.axis_index``, so that each shard draws as its part of the
    global array does and the shards put together equal the unsharded result bit for bit.

    Parameters
    ----------
    x_shard : jax.Array
        The shard (its shape is the per-device block shape; even sharding).
    global_shape : tuple of ints
        The global array's shape.
    axis_names : sequence
        One entry per axis of x: the mesh axis name (or a tuple of names, major first)
        that axis is split over, or None where it is not split (the ``PartitionSpec``).

    Returns
    -------
    (origin, global_shape)
        To pass as ``block=`` to any function of this module.

    Raises
    ------
    ValueError
        global_shape or axis_names has not one entry per axis of x.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, numpy as np, fastdrop.jax as fj
    >>> from jax.sharding import PartitionSpec as P
    >>> mesh = jax.make_mesh((1,), ("d",))
    >>> x = jax.device_put(jnp.ones(8), jax.NamedSharding(mesh, P("d")))
    >>> def f(x):
    ...     return fj.dropout(x, 0.5, seed=42, block=fj.shard_block(x, (8,), ("d",)))
    >>> jax.jit(jax.shard_map(f, mesh=mesh, in_specs=P("d"), out_specs=P("d")))(x)
    Array([2., 2., 0., 0., 0., 0., 2., 0.], dtype=float32)
    """
    shape = tuple(jnp.shape(x_shard))
    gshape = tuple(int(g) for g in global_shape)
    names = tuple(axis_names)
    if len(gshape) != len(shape) or len(names) != len(shape):
        raise ValueError(f"global_shape {gshape} and axis_names {names} must have one entry "
                         f"per axis of the shard, shape {shape}")
    origin = []
    for n, name in zip(shape, names):
        if name is None:
            origin.append(jnp.int32(0))
            continue
        idx = jax.lax.axis_index(name)  # a tuple of names: the flattened index, major first
        origin.append(idx.astype(jnp.int32) * n)
    return jnp.stack(origin), gshape

