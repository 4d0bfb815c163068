"""JAX adapter: fastdrop dropout as a differentiable, jit- and vmap-able JAX function.

Install with ``pip install fastdrop[jax]``.

``fastdrop.jax.dropout(x, p, seed=..., stream=...)`` runs fastdrop's CPU kernels from a
``jax.pure_callback``, under a ``jax.custom_vjp`` whose backward pass calls
``fastdrop.dropout_backward`` with the same (seed, stream): no mask is stored. The result
equals ``fastdrop.dropout`` on the same NumPy data bit for bit, inside or outside
``jax.jit``.

Limits (see docs/adapters.md):

- host callback: under ``jit`` each call leaves the compiled program for a host round trip
  (XLA hands the buffer to Python and copies the result back); XLA cannot fuse it with
  neighbouring operations. CPU only: on a GPU backend the callback would copy device ->
  host -> device.
- reverse mode only (``jax.grad``, ``jax.vjp``); forward mode (``jax.jvp``, ``jacfwd``)
  is not defined for a custom_vjp function. The gradient is differentiable again (to any
  order in reverse mode).
- ``vmap``: the callback is called once with the whole batch (``vmap_method=
  "broadcast_all"``) and loops over the batch on the host; each batch element gets
  exactly what the unbatched call gives for its own (seed, stream), so
  ``vmap(f)(xs)[i] == f(xs[i])``: vmap over ``stream`` for different masks.
- ``seed`` and ``stream`` may be Python ints (unsigned 64-bit), concrete integer arrays
  (checked as ints are: a negative one is a ValueError) or traced integer scalars
  (uint32/int32, or 64-bit with ``jax_enable_x64``). A traced value cannot raise inside
  jit: a negative one of a signed type is taken as its two's complement in 64 bits
  (int32 -1 and int64 -1 both mean 2**64 - 1).
"""
from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import functional as _F
from ._core.args import check_bits, check_choice, check_noise_shape, check_p, check_uint64
from ._core.interop import aligned_empty, jax_platform

__all__ = ["dropout", "stream_words"]

_SUPPORTED = ("float16", "bfloat16", "float32", "float64")


# ---- seed and stream as four uint32 words ---------------------------------------------------


def _int_words(v: Any, name: str):
    """(lo, hi) uint32 of an int or an integer JAX/NumPy scalar (traced or not)."""
    if isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)):
        u = check_uint64(v, name)
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
    and ``key(n)`` give the masks of ``seed=n``."""
    if isinstance(seed, numbers.Integral):
        return _int_words(seed, "seed")
    arr = seed
    if hasattr(arr, "dtype") and jax.dtypes.issubdtype(arr.dtype, jax.dtypes.prng_key):
        if arr.ndim != 0:
            raise TypeError(f"seed must be a single JAX key, got keys of shape {arr.shape}")
        arr = jax.random.key_data(arr)
    arr = jnp.asarray(arr)
    if arr.ndim == 1:
        if arr.shape != (2,) or arr.dtype != jnp.uint32:
            raise TypeError(f"seed as a raw JAX key must be uint32[2] (threefry), got "
                            f"{arr.dtype}{list(arr.shape)}")
        return arr[1], arr[0]
    return _int_words(arr, "seed")


def stream_words(seed: Any, stream: Any = 0):
    """uint32[4]: (seed lo, seed hi, stream lo, stream hi), the callback's operand.

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


# ---- host side ------------------------------------------------------------------------------


def _host(kind: str, cfg: tuple):
    """The callback: `kind` ("forward" or "backward") over x of shape batch + core shape,
    one kernel call per batch element, with that element's words."""
    p, bits, mode, noise_shape, core_ndim = cfg

    def call(x, words):
        x = np.asarray(x)
        words = np.asarray(words)
        batch = x.shape[:x.ndim - core_ndim]
        words = np.broadcast_to(words, batch + (4,))
        y = aligned_empty(x.shape, x.dtype)  # 64-byte aligned: jax.device_put aliases it
        for idx in np.ndindex(*batch):
            w = [int(v) for v in words[idx]]
            seed, stream = w[0] | (w[1] << 32), w[2] | (w[3] << 32)
            sl = idx + (Ellipsis,)  # a view, also for 0-d elements
            if kind == "forward":
                _F.dropout(x[sl], p, seed=seed, stream=stream, mode=mode,
                           noise_shape=noise_shape, bits=bits, out=y[sl])
            else:
                _F.dropout_backward(x[sl], p, seed=seed, stream=stream, mode=mode,
                                    noise_shape=noise_shape, bits=bits, out=y[sl])
        return y

    return call


def _callback(kind: str, x, words, cfg: tuple):
    if not isinstance(x, jax.core.Tracer) and not isinstance(words, jax.core.Tracer):
        # eager call on concrete arrays: no callback. np.asarray views x's CPU buffer and
        # device_put aliases the aligned result: no copy either way
        if jax_platform(x) == "cpu":
            return jax.device_put(_host(kind, cfg)(x, words))
    return jax.pure_callback(_host(kind, cfg), jax.ShapeDtypeStruct(x.shape, x.dtype), x, words,
                             vmap_method="broadcast_all")


# ---- differentiation: y = D x, dx = D dy, d(dx) = D d(dy) -----------------------------------


def _forward_impl(x, words, cfg):
    return _callback("forward", x, words, cfg)


def _backward_impl(g, words, cfg):
    return _callback("backward", g, words, cfg)


# cfg, a hashable tuple (p, bits, mode, noise_shape, ndim), is static
_dropout_core = jax.custom_vjp(_forward_impl, nondiff_argnums=(2,))
_backward_core = jax.custom_vjp(_backward_impl, nondiff_argnums=(2,))


# The forward rules call the custom_vjp functions themselves (not the raw callbacks), so
# that differentiating through a vjp (second order) meets custom rules, never a callback.
def _core_fwd(x, words, cfg):
    return _dropout_core(x, words, cfg), words


def _bcore_fwd(g, words, cfg):
    return _backward_core(g, words, cfg), words


def _linear_bwd(cfg, words, g):
    """Both maps are multiplication by the same diagonal D: their transpose is D again."""
    return _backward_core(g, words, cfg), None


_dropout_core.defvjp(_core_fwd, _linear_bwd)
_backward_core.defvjp(_bcore_fwd, _linear_bwd)


# ---- public ---------------------------------------------------------------------------------


def dropout(x: Any, p: float = 0.5, *, seed: Any, stream: Any = 0, training: bool = True,
            mode: str = "inverted", noise_shape: Any = None, bits: int = 16):
    """Dropout of a JAX array through fastdrop's CPU kernels; differentiable (reverse mode),
    jit- and vmap-able.

    Parameters
    ----------
    x : jax.Array (or array_like) of float16, bfloat16, float32 or float64
    p : float
        Drop probability in [0, 1] (a Python number: it is static under jit).
    seed, stream : int or integer scalar array
        The Philox key and stream (traced values allowed, so a step counter can be the
        stream without recompiling).
    training : bool
        False: inverted mode returns x itself; classic mode ``x * P(keep)``.
    mode, noise_shape, bits
        As in ``fastdrop.dropout`` (static).

    Returns
    -------
    jax.Array
        Of x's dtype and shape, on the CPU; equal to
        ``fastdrop.dropout(np.asarray(x), p, seed=seed, stream=stream, ...)`` bit for bit.

    Raises
    ------
    TypeError
        x has an unsupported dtype, training is not a bool, seed or stream is not an
        integer.
    ValueError
        p outside [0, 1], a bad bits, mode or noise_shape, a seed or stream outside
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
    """
    x = jnp.asarray(x)
    if x.dtype.name not in _SUPPORTED:
        raise TypeError(f"x must have dtype float16, bfloat16, float32 or float64, got {x.dtype}")
    pf = check_p(p)
    b = check_bits(bits)
    m = check_choice(mode, "mode", ("inverted", "classic"))
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training must be a bool (static), got {type(training).__name__}")
    ns = None
    if noise_shape is not None:
        ns = check_noise_shape(noise_shape, tuple(x.shape))
    words = stream_words(seed, stream)
    if not training:
        if m == "inverted":
            return x
        ct = jnp.float32 if x.dtype.itemsize == 2 else x.dtype
        keep = np.array(1.0 - _F.effective_p(pf, b), dtype=ct)
        return (x.astype(ct) * keep).astype(x.dtype)
    return _dropout_core(x, words, (pf, b, m, ns, x.ndim))
