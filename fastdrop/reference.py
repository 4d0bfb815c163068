"""Pure-NumPy twin of fastdrop: slow, obviously correct, the tests' oracle.

A twin of every public kernel, written straight from docs/contract.md with no attempt at
speed (in the manner of bottleneck's ``slow`` module).  Only NumPy; no other fastdrop
module is imported.

Each public function here has exactly the signature of its namesake in `fastdrop` (same
parameter names, order, defaults and keyword-only markers), so ``fastdrop.reference.f``
can replace ``fastdrop.f`` in any call on NumPy arrays and gives the same result, bit for
bit.  The differences are deliberate and few:

- the twin is deterministic: ``seed=None`` where a draw is needed raises ValueError
  (fastdrop would draw a seed from the operating system);
- ``n_threads`` and ``device`` are accepted and ignored (threads never change a result;
  the twin always computes with NumPy on the host and returns NumPy arrays);
- argument checking is only what the definitions need; fastdrop's own validation (the
  exact exception types and messages) is not mirrored.

The low-level pieces the public functions are built from (`stream_words`, `draws_at`,
`draw_indices`, `keep_mask`, `pack_mask`, `threshold`, `compute_dtype`,
`normal_from_words`, `gaussian_noise`, ...) are public too, for the tests.
"""
from __future__ import annotations

import operator

import numpy as np

__all__ = [
    # the twins of fastdrop's public functions
    "dropout", "dropout_backward", "dropout_mask", "unpack_mask", "effective_p",
    "dropout_scale", "bias_dropout_add", "bias_dropout_add_backward", "alpha_dropout",
    "alpha_dropout_backward", "gaussian_dropout", "gaussian_dropout_backward",
    "gaussian_sigma", "philox4x32", "random_bits", "uniform", "standard_normal",
    # their building blocks
    "ALPHA_PRIME", "stream_words", "words_at", "draws_at", "draw_indices", "noise_draws",
    "threshold", "keep_mask", "pack_mask", "compute_dtype", "normal_from_words",
    "gaussian_noise",
]

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
_MASK32 = np.uint64(0xFFFFFFFF)
_U32 = np.uint64(32)


# ---------------------------------------------------------------------------------------
# Small argument helpers (only what the definitions need)
# ---------------------------------------------------------------------------------------

def _shape(shape):
    """An int or a sequence of ints as a tuple."""
    if np.ndim(shape) == 0:
        return (operator.index(shape),)
    return tuple(operator.index(d) for d in shape)


def _size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _need_seed(seed):
    """The twin is deterministic: a draw needs a seed."""
    if seed is None:
        raise ValueError("fastdrop.reference is deterministic: give seed= (seed=None, "
                         "an OS-drawn seed in fastdrop, is not supported by the twin)")
    return operator.index(seed)


def _check_p(p):
    p = float(p)
    if not 0.0 <= p <= 1.0:  # NaN fails too
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    return p


def _check_bits(bits):
    if bits not in (8, 16, 32):
        raise ValueError(f"bits must be 8, 16 or 32, got {bits!r}")
    return int(bits)


def _check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _into(y, out):
    """Return y (as an array: NumPy's 0-d arithmetic gives scalars), or copy it into `out`
    and return `out`."""
    if out is None:
        return np.asarray(y)
    np.copyto(out, y)
    return out


def _pair(y, mask, return_mask):
    return (y, mask) if return_mask else y


def _check_mask_out(mask_out, return_mask, mask_format, shape, noise_shape=None,
                    block=None):
    """The public mask_out=: None, or (return_mask only) a C-contiguous, writeable NumPy
    array of the returned mask's dtype and shape (packed: uint8 ``(ceil(n / 8),)`` over
    the noise shape of an array of `shape`; bool: that noise shape).  (Overlap with the
    other arrays is not checked here: fastdrop refuses it.)"""
    if mask_out is None:
        return
    noise = noise_draws(shape, noise_shape, block)[0]
    if not return_mask:
        raise ValueError("mask_out is given but return_mask is False")
    if not isinstance(mask_out, np.ndarray):
        raise TypeError(f"mask_out must be a numpy.ndarray, got {type(mask_out).__name__}")
    packed = mask_format == "packed"
    dtype, shape = (np.uint8, (-(-_size(noise) // 8),)) if packed else (np.bool_, noise)
    if mask_out.dtype != dtype:
        raise TypeError(f"mask_out must have dtype {np.dtype(dtype)}, got {mask_out.dtype}")
    if mask_out.shape != shape:
        raise ValueError(f"mask_out must have shape {shape}, got {mask_out.shape}")
    if not mask_out.flags.c_contiguous or not mask_out.flags.writeable:
        raise ValueError("mask_out must be C-contiguous and writeable")


def _mask_into(mask, mask_out):
    """The returned mask: `mask` itself, or copied into `mask_out`, which is returned."""
    return mask if mask_out is None else _into(mask, mask_out)


# ---------------------------------------------------------------------------------------
# Generator (docs/contract.md sections 1-3)
# ---------------------------------------------------------------------------------------

def philox4x32(counter, key, rounds=10, *, n_threads=None):
    """Philox4x32-`rounds` of counter (..., 4) under key (2,) or (..., 2), uint32 in and
    out; the leading axes of counter and key broadcast."""
    counter = np.asarray(counter, dtype=np.uint32)
    key = np.asarray(key, dtype=np.uint32)
    batch = np.broadcast_shapes(counter.shape[:-1], key.shape[:-1])
    counter = np.broadcast_to(counter, batch + (4,))
    key = np.broadcast_to(key, batch + (2,))
    c0, c1, c2, c3 = (counter[..., j].astype(np.uint64) for j in range(4))
    k0, k1 = (key[..., j].astype(np.uint64) for j in range(2))
    for _ in range(rounds):
        p0 = np.uint64(M0) * c0  # 32 x 32 -> 64 bit products fit in uint64
        p1 = np.uint64(M1) * c2
        c0, c1, c2, c3 = ((p1 >> _U32) ^ c1 ^ k0, p1 & _MASK32,
                          (p0 >> _U32) ^ c3 ^ k1, p0 & _MASK32)
        k0 = (k0 + np.uint64(W0)) & _MASK32
        k1 = (k1 + np.uint64(W1)) & _MASK32
    return np.stack([c0, c1, c2, c3], axis=-1).astype(np.uint32)


def words_at(seed, stream, w):
    """Words ``w`` (an array of word indices) of stream `stream` under `seed` (uint32, w's
    shape): word w is word ``w mod 4`` of Philox4x32-10 of the counter
    ``(lo32(B), hi32(B), lo32(stream), hi32(stream))``, ``B = w div 4``, under the key
    ``(lo32(seed), hi32(seed))`` (section 2)."""
    seed, stream = operator.index(seed), operator.index(stream)   # (NumPy scalars: ints)
    w = np.asarray(w, dtype=np.uint64)
    flat = w.ravel()
    blocks, which = np.unique(flat >> np.uint64(2), return_inverse=True)
    counter = np.stack([blocks & _MASK32, blocks >> _U32,
                        np.full_like(blocks, stream & 0xFFFFFFFF),
                        np.full_like(blocks, stream >> 32)], axis=-1).astype(np.uint32)
    key = np.array([seed & 0xFFFFFFFF, seed >> 32], dtype=np.uint32)
    out = philox4x32(counter, key)
    return out[which.ravel(), (flat & np.uint64(3)).astype(np.intp)].reshape(w.shape)


def stream_words(seed, stream, first_word, n):
    """Words first_word .. first_word + n - 1 of stream `stream` under `seed` (uint32)."""
    return words_at(seed, stream, np.uint64(first_word) + np.arange(n, dtype=np.uint64))


def draws_at(seed, stream, bits, d):
    """Draws ``d`` (an array of draw indices; section 3): bits=32, word d (uint32);
    bits=16, the low (d even) or high (d odd) half of word ``d div 2`` (uint16); bits=8,
    byte ``d mod 4`` of word ``d div 4``, least significant first (uint8)."""
    d = np.asarray(d, dtype=np.uint64)
    if bits == 32:
        return words_at(seed, stream, d)
    if bits == 8:
        word = words_at(seed, stream, d >> np.uint64(2))
        byte = (d & np.uint64(3)).astype(np.uint32)
        return ((word >> (np.uint32(8) * byte)) & np.uint32(0xFF)).astype(np.uint8)
    word = words_at(seed, stream, d >> np.uint64(1))
    half = (d & np.uint64(1)).astype(np.uint32)
    return ((word >> (np.uint32(16) * half)) & np.uint32(0xFFFF)).astype(np.uint16)


def draw_indices(shape, origin=None, global_shape=None, offset=0):
    """The draw index of every element of an array of `shape` (uint64, that shape).

    The array is the block at `origin` of a C-ordered logical array of `global_shape`
    (default: the array itself), whose first element draws `offset`: element ``idx``
    draws ``offset + sum((origin + idx) * C-strides of global_shape)``, i.e. the global
    C-order index of ``origin + idx`` (docs/contract.md, "Blocks").
    """
    shape = tuple(shape)
    origin = (0,) * len(shape) if origin is None else tuple(origin)
    global_shape = shape if global_shape is None else tuple(global_shape)
    strides, acc = [], 1
    for g in reversed(global_shape):
        strides.append(acc)
        acc *= g
    strides.reverse()
    d = np.full(shape, offset, dtype=np.uint64)
    for axis, (n, o, s) in enumerate(zip(shape, origin, strides)):
        i = np.uint64(o) + np.arange(n, dtype=np.uint64)
        along = [1] * len(shape)
        along[axis] = n
        # s may be 2**64 on an axis of length 1 (then o + i is 0): reduce it mod 2**64
        d = d + (i * np.uint64(s % 2**64)).reshape(along)
    return d


def _resolve_noise(noise_shape, shape):
    """Keras noise_shape: one entry per axis, each the array's or 1; None entries (or
    None) mean the array's."""
    if noise_shape is None:
        return tuple(shape)
    noise = tuple(s if d is None else operator.index(d) for d, s in zip(noise_shape, shape))
    if len(noise_shape) != len(shape) or any(d not in (s, 1) for d, s in zip(noise, shape)):
        raise ValueError(f"noise_shape {tuple(noise_shape)} does not broadcast to {shape}")
    return noise


def _placement(block, shape):
    origin, global_shape = _shape(block[0]), _shape(block[1])
    if not len(origin) == len(global_shape) == len(shape) or any(
            o < 0 or o + n > g for o, n, g in zip(origin, shape, global_shape)):
        raise ValueError(f"block at origin {origin} of shape {shape} does not fit in "
                         f"global_shape {global_shape}")
    return origin, global_shape


def noise_draws(shape, noise_shape=None, block=None):
    """(noise shape of an array of `shape`, the draw index of each of its noise elements).

    Without a block the noise (noise_shape, default `shape`) is indexed in its own C
    order.  With ``block=(origin, global_shape)``, noise_shape refers to the global array:
    the global noise is drawn in its own C order and this array's noise is the part of it
    the block covers: axis k has the block's length (from origin[k]) where the global
    noise has the global length (a global axis of length 1 included), and length 1 (from
    0) where the global noise has 1 and the global array more.
    """
    shape = tuple(shape)
    if block is None:
        noise = _resolve_noise(noise_shape, shape)
        return noise, draw_indices(noise)
    origin, global_shape = _placement(block, shape)
    global_noise = _resolve_noise(noise_shape, global_shape)
    noise = tuple(n if gn == gs else 1 for n, gn, gs in zip(shape, global_noise,
                                                              global_shape))
    norigin = tuple(o if gn == gs else 0 for o, gn, gs in zip(origin, global_noise,
                                                              global_shape))
    return noise, draw_indices(noise, norigin, global_noise)


def random_bits(shape, *, seed, stream=0, bits=32, offset=0, out=None, n_threads=None,
                device=None):
    """Element i (C order over `shape`) is draw ``offset + i``: a word (bits=32, uint32),
    a half word (bits=16, uint16) or a byte (bits=8, uint8)."""
    shape = _shape(shape)
    bits = _check_bits(bits)
    d = draw_indices(shape, offset=offset)
    return _into(draws_at(_need_seed(seed), stream, bits, d), out)


def uniform(shape, *, seed, stream=0, dtype=np.float32, offset=0, out=None, n_threads=None,
            device=None):
    """Uniform [0, 1) floats: float32 from the top 24 bits of word ``offset + i``; float64
    from the top 53 bits of words ``2(offset + i)`` (low) and ``2(offset + i) + 1`` (high)."""
    shape = _shape(shape)
    seed = _need_seed(seed)
    d = draw_indices(shape, offset=offset)
    if np.dtype(dtype) == np.float32:
        w = words_at(seed, stream, d)
        u = (w >> np.uint32(8)).astype(np.float32) * np.float32(2.0 ** -24)
    elif np.dtype(dtype) == np.float64:
        lo = words_at(seed, stream, np.uint64(2) * d).astype(np.uint64)
        hi = words_at(seed, stream, np.uint64(2) * d + np.uint64(1)).astype(np.uint64)
        u = (((hi << _U32) | lo) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    else:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
    return _into(u.reshape(shape), out)


# ---------------------------------------------------------------------------------------
# Dropout (docs/contract.md sections 4-7)
# ---------------------------------------------------------------------------------------

#: SELU scale * alpha (Klambauer et al. 2017): the value a SELU saturates to is -ALPHA_PRIME.
ALPHA_PRIME = 1.7580993408473766


def threshold(p, bits=16):
    """Keep threshold of drop probability `p`: element i is kept iff ``r_i >= t``.

    ``t = round_half_even(p * 2**bits)`` clamped to ``[0, 2**bits]`` (an int; the product
    is exact: a float64 times a power of two).
    """
    t = int(np.rint(np.float64(p) * 2.0 ** bits))
    return min(max(t, 0), 2 ** bits)


def effective_p(p, bits=16):
    """Effective drop probability ``t / 2**bits`` (a float, exact)."""
    bits = _check_bits(bits)
    return threshold(_check_p(p), bits) / 2 ** bits


def dropout_scale(p, bits=16):
    """Inverted-mode scale ``2**bits / (2**bits - t)`` (float64), 0.0 when all is dropped."""
    bits = _check_bits(bits)
    kept = 2 ** bits - threshold(_check_p(p), bits)
    return 2 ** bits / kept if kept else 0.0


def _keep_of_draws(draws, p, bits):
    """Keep flags of draws: ``r >= t``, compared in uint64 (so t = 2**32 keeps nothing)."""
    return np.asarray(draws.astype(np.uint64) >= np.uint64(threshold(p, bits)))


def keep_mask(shape, p, seed, stream=0, bits=16, offset=0):
    """Bool keep flags over `shape` (C order): draw ``offset + i`` kept iff ``r >= t``."""
    d = draw_indices(_shape(shape), offset=offset)
    return _keep_of_draws(draws_at(seed, stream, bits, d), p, bits)


def pack_mask(keep):
    """Packed mask: bit k (least significant first) of byte j is element 8j + k's flag
    (elements in C order), the padding bits 0."""
    return np.packbits(np.asarray(keep, dtype=bool).ravel(), bitorder="little")


def unpack_mask(mask, shape):
    """Inverse of `pack_mask`: the first ``prod(shape)`` bits as a bool array of `shape`."""
    shape = _shape(shape)
    n = _size(shape)
    mask = np.asarray(mask)
    if mask.dtype != np.uint8:
        raise TypeError(f"mask must be a packed uint8 array, got dtype {mask.dtype}")
    if mask.shape != (-(-n // 8),):
        raise ValueError(f"packed mask must be 1-D with {-(-n // 8)} bytes for {n} elements, "
                         f"got shape {mask.shape}")
    bits = np.unpackbits(mask, count=n, bitorder="little")
    return bits.astype(bool).reshape(shape)


def _mask_as_keep(mask, noise):
    """A backward pass's mask= argument: packed uint8 bytes or bool flags over `noise`."""
    mask = np.asarray(mask)
    if mask.dtype == np.uint8:
        return unpack_mask(mask, noise)
    if mask.dtype == np.bool_:
        if mask.shape != noise:
            raise ValueError(f"bool mask must have shape {noise}, got {mask.shape}")
        return mask
    raise TypeError(f"mask must be a packed uint8 or a bool array, got dtype {mask.dtype}")


def _backward_keep(mask, seed, stream, p, bits, noise, draws):
    """Keep flags of a backward pass: the forward's mask, or regenerated from its seed."""
    if (mask is None) == (seed is None):
        raise ValueError("give exactly one of mask or seed")
    if mask is not None:
        return _mask_as_keep(mask, noise)
    return _keep_of_draws(draws_at(operator.index(seed), stream, bits, draws), p, bits)


def _returned_mask(keep, mask_format):
    return pack_mask(keep) if mask_format == "packed" else keep


def dropout_mask(shape, p, *, seed, stream=0, bits=16, packed=True, offset=0,
                 n_threads=None, device=None, block=None):
    """The keep mask dropout draws over `shape`: packed uint8 bytes (``packed=True``) or
    bool flags of `shape`.  Element i draws ``offset + i``; with ``block=(origin,
    global_shape)`` (not together with offset) element idx draws the global C-order index
    of ``origin + idx``, and the mask lists the block's elements in its own C order."""
    shape = _shape(shape)
    p, bits = _check_p(p), _check_bits(bits)
    if block is not None:
        if offset:
            raise ValueError("give offset or block, not both")
        _, d = noise_draws(shape, None, block)
    else:
        d = draw_indices(shape, offset=offset)
    keep = _keep_of_draws(draws_at(_need_seed(seed), stream, bits, d), p, bits)
    return pack_mask(keep) if packed else keep


def compute_dtype(dtype):
    """Precision of the arithmetic: float32 for float16 and bfloat16, else `dtype` itself."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype.name in ("float16", "bfloat16") else dtype


def _zero(dtype):
    return np.zeros((), dtype=dtype)  # +0.0


@np.errstate(invalid="ignore", over="ignore")
def _masked(values, keep, factor):
    """``where(keep, values_c * factor_c, +0.0)`` in the compute precision, rounded once to
    ``values.dtype``; `keep` broadcasts to ``values.shape``."""
    cd = compute_dtype(values.dtype)
    scaled = values.astype(cd) * cd.type(factor)
    return np.where(keep, scaled, _zero(cd)).astype(values.dtype)


def _apply_mask(values, keep, p, mode, bits):
    """The training map shared by forward and backward: ``values * scale`` where kept
    (classic: scale 1, through the same multiply: a signaling NaN comes out quiet, a
    bfloat16 NaN canonical), +0.0 where dropped."""
    return _masked(values, keep, 1.0 if mode == "classic" else dropout_scale(p, bits))


def dropout(x, p=0.5, *, seed=None, stream=0, training=True, mode="inverted",
            noise_shape=None, bits=16, return_mask=False, mask_format="packed", out=None,
            n_threads=None, block=None, mask_out=None):
    """Dropout of `x` (sections 4 and 5), the twin of `fastdrop.dropout`.

    Training: the keep mask is drawn over the noise shape (`noise_draws`) and broadcast
    to x; inverted mode gives ``x * scale`` where kept, classic mode ``x``; dropped
    elements are +0.0.  Inference: inverted mode returns x itself (or copies it into
    out), classic mode ``x * P(keep)`` in the compute precision.

    Returns y, or ``(y, mask)`` with return_mask (the mask over the block's noise shape,
    packed or bool; None at inference).  mask_out (return_mask only): the mask is written
    into it and it is returned as the mask (left as it is at inference).  seed=None raises
    ValueError while training.
    """
    x = np.asarray(x)
    p, bits = _check_p(p), _check_bits(bits)
    _check_choice(mode, "mode", ("inverted", "classic"))
    _check_choice(mask_format, "mask_format", ("packed", "bool"))
    _check_mask_out(mask_out, return_mask, mask_format, x.shape, noise_shape, block)
    if not training:
        if mode == "inverted":
            return _pair(x if out is None else _into(x, out), None, return_mask)
        keep_probability = (2 ** bits - threshold(p, bits)) / 2 ** bits
        return _pair(_into(_masked(x, True, keep_probability), out), None, return_mask)
    noise, draws = noise_draws(x.shape, noise_shape, block)
    keep = _keep_of_draws(draws_at(_need_seed(seed), stream, bits, draws), p, bits)
    y = _into(_apply_mask(x, keep, p, mode, bits), out)
    return _pair(y, _mask_into(_returned_mask(keep, mask_format), mask_out), return_mask)


def dropout_backward(grad, p, *, mask=None, seed=None, stream=0, mode="inverted",
                     noise_shape=None, bits=16, out=None, n_threads=None, block=None):
    """Gradient of `dropout` (section 6): ``grad * scale`` where kept (classic: ``grad``),
    +0.0 where dropped, with the forward's arithmetic.  The keep flags come from the
    forward's mask (packed or bool, over the noise shape) or its seed (exactly one)."""
    grad = np.asarray(grad)
    p, bits = _check_p(p), _check_bits(bits)
    _check_choice(mode, "mode", ("inverted", "classic"))
    noise, draws = noise_draws(grad.shape, noise_shape, block)
    keep = _backward_keep(mask, seed, stream, p, bits, noise, draws)
    return _into(_apply_mask(grad, keep, p, mode, bits), out)


@np.errstate(invalid="ignore", over="ignore")
def bias_dropout_add(x, bias, residual, p, *, seed, stream=0, bits=16, return_mask=False,
                     out=None, n_threads=None, block=None, mask_out=None):
    """Fused ``residual + dropout(x + bias)`` (section 7, inverted mode).

    In the compute precision: ``u = x + bias``; ``v = u * scale`` if kept else +0.0;
    ``y = residual + v``; rounded once to ``x.dtype``.  `bias` has shape
    ``(x.shape[-1],)`` or is None.  The mask is the one ``dropout(x)`` draws for the same
    (seed, stream, bits, p, block).  Returns y, or ``(y, packed mask)`` with return_mask
    (written into mask_out, returned as the mask, when it is given).
    """
    x, residual = np.asarray(x), np.asarray(residual)
    p, bits = _check_p(p), _check_bits(bits)
    _check_mask_out(mask_out, return_mask, "packed", x.shape, None, block)
    _, draws = noise_draws(x.shape, None, block)
    keep = _keep_of_draws(draws_at(_need_seed(seed), stream, bits, draws), p, bits)
    cd = compute_dtype(x.dtype)
    u = x.astype(cd) if bias is None else x.astype(cd) + np.asarray(bias).astype(cd)
    v = np.where(keep, u * cd.type(dropout_scale(p, bits)), _zero(cd))
    y = _into((residual.astype(cd) + v).astype(x.dtype), out)
    return _pair(y, _mask_into(pack_mask(keep), mask_out), return_mask)


def bias_dropout_add_backward(grad, p, *, mask=None, seed=None, stream=0, bits=16,
                              has_bias=True, n_threads=None, block=None):
    """Gradients ``(dx, dbias, dresidual)`` of `bias_dropout_add`.

    dx: ``dropout_backward(grad, p, ...)``.  dbias (None without bias):
    ``v = where(keep, grad_c * scale_c, 0)`` in the compute precision (not rounded to
    grad's dtype), in float64, summed over every axis but the last (the rows of
    ``v.reshape(-1, grad.shape[-1])`` added in C order), cast to ``grad.dtype``.
    dresidual: grad itself.
    """
    grad = np.asarray(grad)
    p, bits = _check_p(p), _check_bits(bits)
    if has_bias and grad.ndim == 0:
        raise ValueError("grad must have at least one axis when has_bias is True")
    noise, draws = noise_draws(grad.shape, None, block)
    keep = _backward_keep(mask, seed, stream, p, bits, noise, draws)
    cd = compute_dtype(grad.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        v = np.where(keep, grad.astype(cd) * cd.type(dropout_scale(p, bits)), _zero(cd))
    dbias = None
    if has_bias:
        rows = np.ascontiguousarray(v, dtype=np.float64).reshape(-1, grad.shape[-1]) \
            if grad.shape[-1] else np.zeros((0, 0))
        dbias = rows.sum(axis=0).astype(grad.dtype)
    return np.asarray(v.astype(grad.dtype)), dbias, grad


def _alpha_coefficients(q):
    """(a, c, d) of alpha dropout at effective drop probability q, in float64: kept
    elements become ``x * a + c``, dropped ones ``d``. q == 1 gives (0, 0, 0): all zeros."""
    if q == 1:
        return 0.0, 0.0, 0.0
    a = ((1 - q) * (1 + q * ALPHA_PRIME ** 2)) ** -0.5
    return a, a * ALPHA_PRIME * q, -a * ALPHA_PRIME * (1 - q)


@np.errstate(invalid="ignore", over="ignore")
def alpha_dropout(x, p=0.5, *, seed=None, stream=0, training=True, noise_shape=None,
                  bits=16, return_mask=False, mask_format="packed", out=None,
                  n_threads=None, block=None, mask_out=None):
    """Alpha dropout (Klambauer et al. 2017; PyTorch ``alpha_dropout``, Keras
    ``AlphaDropout``) with the contract's keep mask.

    With q = ``effective_p(p, bits)``, ``alpha' = ALPHA_PRIME`` and
    ``a = ((1 - q) * (1 + q * alpha'**2)) ** -0.5``: a kept element becomes
    ``(x * a) + c`` with ``c = a * alpha' * q``, a dropped one ``d = -a * alpha' * (1 - q)``
    (a, c, d in float64, cast to the compute precision; one rounding to ``x.dtype``).
    q == 0: `x * 1` in the compute precision (x itself but for a signaling NaN, which
    comes out quiet, and a bfloat16 NaN, canonical). q == 1: all +0.0 (as PyTorch; a
    would be infinite). Inference: x itself (or copied into out).  Returns y, or ``(y, mask)`` (mask_out: as
    in `dropout`).
    """
    x = np.asarray(x)
    p, bits = _check_p(p), _check_bits(bits)
    _check_choice(mask_format, "mask_format", ("packed", "bool"))
    _check_mask_out(mask_out, return_mask, mask_format, x.shape, noise_shape, block)
    if not training:
        return _pair(x if out is None else _into(x, out), None, return_mask)
    noise, draws = noise_draws(x.shape, noise_shape, block)
    keep = _keep_of_draws(draws_at(_need_seed(seed), stream, bits, draws), p, bits)
    q = effective_p(p, bits)
    if q == 0:   # x * 1 in the compute precision (every value but a signaling NaN kept)
        y = _masked(x, True, 1.0)
    else:
        cd = compute_dtype(x.dtype)
        a, c, d = (cd.type(v) for v in _alpha_coefficients(q))
        y = np.where(keep, x.astype(cd) * a + c, d).astype(x.dtype)
    return _pair(_into(y, out), _mask_into(_returned_mask(keep, mask_format), mask_out),
                 return_mask)


def alpha_dropout_backward(grad, p, *, mask=None, seed=None, stream=0, noise_shape=None,
                           bits=16, out=None, n_threads=None, block=None):
    """Gradient of `alpha_dropout`: ``grad * a`` where kept, +0.0 where dropped."""
    grad = np.asarray(grad)
    p, bits = _check_p(p), _check_bits(bits)
    noise, draws = noise_draws(grad.shape, noise_shape, block)
    keep = _backward_keep(mask, seed, stream, p, bits, noise, draws)
    a = _alpha_coefficients(effective_p(p, bits))[0]
    return _into(_masked(grad, keep, a), out)


# ---------------------------------------------------------------------------------------
# Normal deviates and gaussian dropout (docs/contract.md, "Normal deviates", section 8)
# ---------------------------------------------------------------------------------------

# Wichura (1988), AS241 PPND16: central region |q| <= 0.425 (a: numerator, b: denominator,
# highest power first), and the tail region (c, d) in t = sqrt(-log(min(u, 1 - u))) - 1.6.
_AS241_A = (2.5090809287301226727e+3, 3.3430575583588128105e+4, 6.7265770927008700853e+4,
            4.5921953931549871457e+4, 1.3731693765509461125e+4, 1.9715909503065514427e+3,
            1.3314166789178437745e+2, 3.3871328727963666080e+0)
_AS241_B = (5.2264952788528545610e+3, 2.8729085735721942674e+4, 3.9307895800092710610e+4,
            2.1213794301586595867e+4, 5.3941960214247511077e+3, 6.8718700749205790830e+2,
            4.2313330701600911252e+1, 1.0)
_AS241_C = (7.74545014278341407640e-4, 2.27238449892691845833e-2, 2.41780725177450611770e-1,
            1.27045825245236838258e+0, 3.64784832476320460504e+0, 5.76949722146069140550e+0,
            4.63033784615654529590e+0, 1.42343711074968357734e+0)
_AS241_D = (1.05075007164441684324e-9, 5.47593808499534494600e-4, 1.51986665636164571966e-2,
            1.48103976427480074590e-1, 6.89767334985100004550e-1, 1.67638483018380384940e+0,
            2.05319162663775882187e+0, 1.0)
# 1 / (2k + 1) for k = 10 .. 1, then 1: the series of atanh(s) / s in z = s^2.
_ATANH = tuple(1.0 / (2 * k + 1) for k in range(10, 0, -1)) + (1.0,)
_LN2_HI = 6.93147180369123816490e-01  # 0x3FE62E42FEE00000: k * _LN2_HI is exact, k < 2^32
_LN2_LO = 1.90821492927058770002e-10  # 0x3DEA39EF35793C76


def _horner(coefficients, v):
    acc = np.full_like(v, coefficients[0])
    for c in coefficients[1:]:
        acc = acc * v + c
    return acc


def _neglog_odd(j):
    """``-log(j * 2**-33)`` for odd uint32 j, float64, by fastdrop's own logarithm:
    j = m * 2**e exactly (m in [1, 2) from the bits of float64(j)); m > sqrt(2) is halved;
    ``log(m) = 2 s * P(s*s)`` with ``s = (m - 1) / (m + 1)`` and P the atanh series
    through s**20; the result is ``k ln2_hi + (k ln2_lo - log(m))`` with ``k = 33 - e``."""
    bits = j.astype(np.float64).view(np.uint64)
    e = (bits >> np.uint64(52)).astype(np.int64) - 1023
    m = ((bits & np.uint64(0x000FFFFFFFFFFFFF)) | np.uint64(0x3FF0000000000000)).view(np.float64)
    big = m > 1.4142135623730951
    m = np.where(big, m * 0.5, m)
    e = e + big
    f = m - 1.0
    s = f / (2.0 + f)
    lm = (s + s) * _horner(_ATANH, s * s)
    k = (33 - e).astype(np.float64)
    return k * _LN2_HI + (k * _LN2_LO - lm)


def normal_from_words(words):
    """Standard normal deviates, one per uint32 word r: ``Phi^-1((r + 1/2) / 2**32)`` by
    AS241 in float64 (only +, -, *, /, sqrt, each correctly rounded, in this order).

    ``q = (2r + 1 - 2**32) * 2**-33`` (exact).  ``|q| <= 0.425``: ``q * A(c) / B(c)`` with
    ``c = 0.180625 - q*q``.  Otherwise ``t = sqrt(-log((2 min(r, ~r) + 1) * 2**-33)) - 1.6``
    and ``sign(q) * C(t) / D(t)``; t + 1.6 < 4.8, so AS241's far-tail branch never occurs.
    Deviates lie in [-6.338, 6.338].
    """
    r = np.asarray(words, dtype=np.uint32)
    shape = r.shape
    r = r.ravel()
    q = ((2 * r.astype(np.int64) + 1).astype(np.float64) - 4294967296.0) * 2.0 ** -33
    c = 0.180625 - q * q
    central = (q * _horner(_AS241_A, c)) / _horner(_AS241_B, c)
    lo = np.minimum(r, ~r)
    t = np.sqrt(_neglog_odd(2 * lo + np.uint32(1))) - 1.6
    tail = _horner(_AS241_C, t) / _horner(_AS241_D, t)
    tail = np.where(q < 0.0, -tail, tail)
    return np.where(np.abs(q) <= 0.425, central, tail).reshape(shape)


def standard_normal(shape, *, seed, stream=0, dtype=np.float64, offset=0, out=None,
                    n_threads=None, device=None):
    """Element i is `normal_from_words` of word ``offset + i`` (bits=32 layout), rounded
    once to `dtype` (float32 or float64)."""
    shape = _shape(shape)
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
    words = words_at(_need_seed(seed), stream, draw_indices(shape, offset=offset))
    return _into(normal_from_words(words).astype(dtype), out)


def gaussian_sigma(p):
    """Standard deviation of gaussian dropout's noise, ``sqrt(p / (1 - p))`` in float64
    (Keras ``GaussianDropout``); p in [0, 1) (p = 1 has infinite variance: ValueError)."""
    p = _check_p(p)
    if p == 1.0:
        raise ValueError("p must be in [0, 1) for gaussian dropout")
    return float(np.sqrt(np.float64(p) / (np.float64(1.0) - np.float64(p))))


def _noise_of_words(words, p):
    """``g = 1 + sigma * z`` in float64, z the normal deviates of `words`."""
    return 1.0 + gaussian_sigma(p) * normal_from_words(words)


def gaussian_noise(shape, p, seed, stream=0, offset=0):
    """Multiplicative noise ``g = 1 + sigma * z`` in float64 over `shape`, element i using
    word ``offset + i`` (z = `standard_normal`)."""
    d = draw_indices(_shape(shape), offset=offset)
    return _noise_of_words(words_at(seed, stream, d), p)


@np.errstate(invalid="ignore", over="ignore")
def _times_noise(values, g):
    cd = compute_dtype(values.dtype)
    return (values.astype(cd) * g.astype(cd)).astype(values.dtype)


def gaussian_dropout(x, p=0.5, *, seed=None, stream=0, training=True, out=None,
                     n_threads=None, block=None):
    """Gaussian dropout (Keras ``GaussianDropout``; Srivastava et al. 2014, section 10):
    ``y = x * g``, g = 1 + sigma * z with z the normal deviate of each element's word
    (its draw index: its C-order index, or its global one in a block), in the compute
    precision: float64 for float64, ``x * float32(g)`` for float32, and
    ``float32(x) * float32(g)`` rounded once for float16 and bfloat16.
    Inference: x itself (or copied into out)."""
    x = np.asarray(x)
    p = _check_p(p)
    gaussian_sigma(p)  # p = 1 is an error even at inference
    if not training:
        return x if out is None else _into(x, out)
    _, draws = noise_draws(x.shape, None, block)
    g = _noise_of_words(words_at(_need_seed(seed), stream, draws), p)
    return _into(_times_noise(x, g), out)


def gaussian_dropout_backward(grad, p, *, seed, stream=0, out=None, n_threads=None,
                              block=None):
    """Gradient of `gaussian_dropout`: ``grad * g`` with the forward call's noise."""
    grad = np.asarray(grad)
    p = _check_p(p)
    _, draws = noise_draws(grad.shape, None, block)
    g = _noise_of_words(words_at(_need_seed(seed), stream, draws), p)
    return _into(_times_noise(grad, g), out)
