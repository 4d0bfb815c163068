"""Pure-NumPy reference of fastdrop: slow, obviously correct, the tests' oracle.

A twin of every kernel, written straight from docs/contract.md with no attempt at speed
(in the manner of bottleneck's ``slow`` module).  Only NumPy.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "philox4x32", "stream_words", "random_bits", "uniform",
    "threshold", "effective_p", "dropout_scale", "keep_mask", "pack_mask", "unpack_mask",
    "compute_dtype", "dropout", "dropout_backward", "bias_dropout_add",
    "bias_dropout_add_backward", "alpha_dropout", "alpha_dropout_backward",
    "normal_from_words", "standard_normal", "gaussian_sigma", "gaussian_noise",
    "gaussian_dropout", "gaussian_dropout_backward",
]

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
_MASK32 = np.uint64(0xFFFFFFFF)
_U32 = np.uint64(32)


def philox4x32(counter, key, rounds=10):
    """Philox4x32-`rounds` of counter (..., 4) under key (..., 2), uint32 in and out."""
    counter = np.asarray(counter, dtype=np.uint32)
    key = np.asarray(key, dtype=np.uint32)
    c0, c1, c2, c3 = (counter[..., j].astype(np.uint64) for j in range(4))
    k0, k1 = (key[..., j].astype(np.uint64) for j in range(2))
    for _ in range(rounds):
        p0 = np.uint64(M0) * c0  # 32 x 32 -> 64 bit products fit in uint64
        p1 = np.uint64(M1) * c2
        c0, c1, c2, c3 = ((p1 >> _U32) ^ c1 ^ k0, p1 & _MASK32,
                          (p0 >> _U32) ^ c3 ^ k1, p0 & _MASK32)
        k0 = (k0 + np.uint64(W0)) & _MASK32
        k1 = (k1 + np.uint64(W1)) & _MASK32
    return np.stack(np.broadcast_arrays(c0, c1, c2, c3), axis=-1).astype(np.uint32)


def stream_words(seed, stream, first_word, n):
    """Words first_word .. first_word + n - 1 of stream `stream` under `seed` (uint32)."""
    if n == 0:
        return np.empty(0, dtype=np.uint32)
    first_block, last_block = first_word // 4, (first_word + n - 1) // 4
    blocks = np.uint64(first_block) + np.arange(last_block - first_block + 1, dtype=np.uint64)
    counter = np.stack([blocks & _MASK32, blocks >> _U32,
                        np.full_like(blocks, stream & 0xFFFFFFFF),
                        np.full_like(blocks, stream >> 32)], axis=-1).astype(np.uint32)
    key = np.array([seed & 0xFFFFFFFF, seed >> 32], dtype=np.uint32)
    words = philox4x32(counter, key).reshape(-1)
    start = first_word - 4 * first_block
    return words[start:start + n]


def random_bits(shape, seed, stream=0, bits=32, offset=0):
    """Draw offset + i for element i (C order): a word (bits=32) or a half word (bits=16)."""
    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    if bits == 32:
        return stream_words(seed, stream, offset, n).reshape(shape)
    if n == 0:
        return np.empty(shape, dtype=np.uint16)
    first_word = offset // 2
    words = stream_words(seed, stream, first_word, (offset + n - 1) // 2 - first_word + 1)
    draw = np.uint64(offset) + np.arange(n, dtype=np.uint64)
    word = words[(draw // np.uint64(2) - np.uint64(first_word)).astype(np.intp)]
    half = (draw % np.uint64(2)).astype(np.uint32)
    return ((word >> (np.uint32(16) * half)) & np.uint32(0xFFFF)).astype(np.uint16).reshape(shape)


def uniform(shape, seed, stream=0, dtype=np.float32, offset=0):
    """Uniform [0, 1) floats: float32 from the top 24 bits of one word, float64 from the
    top 53 bits of two words (low word first)."""
    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    if np.dtype(dtype) == np.float32:
        w = stream_words(seed, stream, offset, n)
        return ((w >> np.uint32(8)).astype(np.float32) * np.float32(2.0 ** -24)).reshape(shape)
    w = stream_words(seed, stream, 2 * offset, 2 * n).astype(np.uint64)
    u = (w[1::2] << _U32) | w[0::2]
    return ((u >> np.uint64(11)).astype(np.float64) * 2.0 ** -53).reshape(shape)


# ---------------------------------------------------------------------------------------
# Dropout (docs/contract.md sections 4-7)
# ---------------------------------------------------------------------------------------

#: SELU scale * alpha (Klambauer et al. 2017): the value a SELU saturates to is -ALPHA_PRIME.
ALPHA_PRIME = 1.7580993408473766


def threshold(p, bits=16):
    """Keep threshold of drop probability `p`: element i is kept iff ``r_i >= t``.

    Parameters
    ----------
    p : float
        Drop probability in [0, 1].
    bits : {16, 32}
        Width of a draw.

    Returns
    -------
    int
        ``t = round_half_even(p * 2**bits)`` clamped to ``[0, 2**bits]`` (the product is
        exact: a float64 times a power of two).
    """
    t = int(np.rint(np.float64(p) * 2.0 ** bits))
    return min(max(t, 0), 2 ** bits)


def effective_p(p, bits=16):
    """Effective drop probability ``t / 2**bits`` (a float, exact)."""
    return threshold(p, bits) / 2 ** bits


def dropout_scale(p, bits=16):
    """Inverted-mode scale ``2**bits / (2**bits - t)`` (float64), 0.0 when all is dropped."""
    kept = 2 ** bits - threshold(p, bits)
    return 2 ** bits / kept if kept else 0.0


def keep_mask(shape, p, seed, stream=0, bits=16, offset=0):
    """Bool keep flags over `shape` (C order): draw ``offset + i`` kept iff ``r >= t``.

    The comparison is in uint64, so ``t = 2**32`` (bits=32, p=1) keeps nothing.
    """
    draws = random_bits(shape, seed, stream, bits, offset)
    return draws.astype(np.uint64) >= np.uint64(threshold(p, bits))


def pack_mask(keep):
    """Packed mask: bit k (least significant first) of byte j is element 8j + k's flag."""
    return np.packbits(np.asarray(keep, dtype=bool).ravel(), bitorder="little")


def unpack_mask(packed, shape):
    """Inverse of `pack_mask`: the first ``prod(shape)`` bits as a bool array of `shape`."""
    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), count=n, bitorder="little")
    return bits.astype(bool).reshape(shape)


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


def dropout(x, p, seed, stream=0, training=True, mode="inverted", noise_shape=None, bits=16):
    """Dropout of `x` as docs/contract.md section 4 and 5 define it.

    Parameters
    ----------
    x : ndarray
        float16, bfloat16, float32 or float64 input.
    p : float
        Drop probability in [0, 1].
    seed, stream : int
        Unsigned 64-bit key and stream of the draws.
    training : bool
        False: inference (inverted: `x` unchanged; classic: ``x * P(keep)``).
    mode : {"inverted", "classic"}
    noise_shape : tuple of int, optional
        Shape the mask is drawn over (each dim x's or 1), broadcast to ``x.shape``;
        None means ``x.shape``.
    bits : {16, 32}

    Returns
    -------
    y : ndarray
        Same shape and dtype as `x`; dropped elements are exactly +0.0.
    keep : ndarray of bool or None
        The keep mask over the noise shape (None at inference).
    """
    x = np.asarray(x)
    if not training:
        if mode == "inverted":
            return x.copy(), None
        t = threshold(p, bits)
        return _masked(x, True, (2 ** bits - t) / 2 ** bits), None
    keep = keep_mask(x.shape if noise_shape is None else tuple(noise_shape),
                     p, seed, stream, bits)
    return _apply_mask(x, keep, p, mode, bits), keep


def dropout_backward(grad, p, keep, mode="inverted", bits=16):
    """Gradient of `dropout` (section 6): ``grad * scale`` where kept (classic: ``grad``),
    +0.0 where dropped, with the forward's arithmetic. `keep` broadcasts to ``grad.shape``."""
    return _apply_mask(np.asarray(grad), keep, p, mode, bits)


def _apply_mask(values, keep, p, mode, bits):
    """The training map shared by forward and backward: ``values * scale`` where kept
    (classic: ``values``), +0.0 where dropped."""
    if mode == "classic":
        return np.where(keep, values, _zero(values.dtype))
    return _masked(values, keep, dropout_scale(p, bits))


@np.errstate(invalid="ignore", over="ignore")
def bias_dropout_add(x, bias, residual, p, seed, stream=0, bits=16):
    """Fused ``residual + dropout(x + bias)`` (section 7, inverted mode).

    In the compute precision: ``u = x + bias``; ``v = u * scale`` if kept else +0.0;
    ``y = residual + v``; rounded once to ``x.dtype``. `bias` has shape
    ``(x.shape[-1],)`` or is None. The mask is the one ``dropout(x)`` draws for the same
    (seed, stream, bits, p).

    Returns
    -------
    y : ndarray
    keep : ndarray of bool, shape ``x.shape``
    """
    x, residual = np.asarray(x), np.asarray(residual)
    cd = compute_dtype(x.dtype)
    keep = keep_mask(x.shape, p, seed, stream, bits)
    u = x.astype(cd) if bias is None else x.astype(cd) + np.asarray(bias).astype(cd)
    v = np.where(keep, u * cd.type(dropout_scale(p, bits)), _zero(cd))
    return (residual.astype(cd) + v).astype(x.dtype), keep


def bias_dropout_add_backward(grad, keep, p, bits=16, has_bias=True):
    """Gradients of `bias_dropout_add`.

    Returns
    -------
    dx : ndarray
        ``dropout_backward(grad, p, keep)``.
    dbias : ndarray or None
        ``where(keep, grad_c * scale_c, 0)`` (compute precision, not rounded) summed over
        every axis but the last in float64, then cast to ``grad.dtype``; None without bias.
    dresidual : ndarray
        A copy of `grad`.
    """
    grad = np.asarray(grad)
    dx = dropout_backward(grad, p, keep, bits=bits)
    dbias = None
    if has_bias:
        cd = compute_dtype(grad.dtype)
        with np.errstate(invalid="ignore", over="ignore"):
            v = np.where(keep, grad.astype(cd) * cd.type(dropout_scale(p, bits)), _zero(cd))
        dbias = v.astype(np.float64).sum(axis=tuple(range(grad.ndim - 1))).astype(grad.dtype)
    return dx, dbias, grad.copy()


def _alpha_coefficients(q):
    """(a, c, d) of alpha dropout at effective drop probability q, in float64: kept
    elements become ``x * a + c``, dropped ones ``d``. q == 1 gives (0, 0, 0): all zeros."""
    if q == 1:
        return 0.0, 0.0, 0.0
    a = ((1 - q) * (1 + q * ALPHA_PRIME ** 2)) ** -0.5
    return a, a * ALPHA_PRIME * q, -a * ALPHA_PRIME * (1 - q)


@np.errstate(invalid="ignore", over="ignore")
def alpha_dropout(x, p, seed, stream=0, training=True, bits=16, noise_shape=None):
    """Alpha dropout (Klambauer et al. 2017; PyTorch ``alpha_dropout``, Keras ``AlphaDropout``)
    with the contract's keep mask.

    With q = ``effective_p(p, bits)``, ``alpha' = ALPHA_PRIME`` and
    ``a = ((1 - q) * (1 + q * alpha'**2)) ** -0.5``: a kept element becomes
    ``(x * a) + c`` with ``c = a * alpha' * q``, a dropped one ``d = -a * alpha' * (1 - q)``
    (a, c, d in float64, cast to the compute precision; one rounding to ``x.dtype``).
    This keeps zero mean and unit variance for standardised inputs.
    q == 0: `x` unchanged. q == 1: all +0.0 (as PyTorch; a would be infinite).
    Inference: `x` unchanged (a copy).

    Returns
    -------
    y : ndarray
    keep : ndarray of bool or None
        Keep mask over the noise shape (None at inference).
    """
    x = np.asarray(x)
    if not training:
        return x.copy(), None
    keep = keep_mask(x.shape if noise_shape is None else tuple(noise_shape),
                     p, seed, stream, bits)
    q = effective_p(p, bits)
    if q == 0:
        return x.copy(), keep
    cd = compute_dtype(x.dtype)
    a, c, d = (cd.type(v) for v in _alpha_coefficients(q))
    y = np.where(keep, x.astype(cd) * a + c, d)
    return y.astype(x.dtype), keep


def alpha_dropout_backward(grad, p, keep, bits=16):
    """Gradient of `alpha_dropout`: ``grad * a`` where kept, +0.0 where dropped."""
    grad = np.asarray(grad)
    return _masked(grad, keep, _alpha_coefficients(effective_p(p, bits))[0])


# ---------------------------------------------------------------------------------------
# Normal deviates and gaussian dropout (docs/contract.md, "Normal deviates")
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


def standard_normal(shape, seed, stream=0, dtype=np.float64, offset=0):
    """Element i is `normal_from_words` of word ``offset + i`` (bits=32 layout), rounded
    once to `dtype` (float32 or float64)."""
    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    words = random_bits(shape, seed, stream, 32, offset)
    return normal_from_words(words).astype(dtype)


def gaussian_sigma(p):
    """Standard deviation of gaussian dropout's noise, ``sqrt(p / (1 - p))`` in float64
    (Keras ``GaussianDropout``); p in [0, 1)."""
    p = float(p)
    return float(np.sqrt(np.float64(p) / (np.float64(1.0) - np.float64(p))))


def gaussian_noise(shape, p, seed, stream=0, offset=0):
    """Multiplicative noise ``g = 1 + sigma * z`` in float64, z = `standard_normal`."""
    z = standard_normal(shape, seed, stream, np.float64, offset)
    return 1.0 + gaussian_sigma(p) * z


@np.errstate(invalid="ignore", over="ignore")
def _times_noise(values, g):
    cd = compute_dtype(values.dtype)
    return (values.astype(cd) * g.astype(cd)).astype(values.dtype)


def gaussian_dropout(x, p, seed, stream=0, training=True):
    """Gaussian dropout (Keras ``GaussianDropout``; Srivastava et al. 2014, section 10):
    ``y = x * g``, g = `gaussian_noise` over x's shape (element i uses word i), in the
    compute precision: float64 for float64, ``x * float32(g)`` for float32, and
    ``float32(x) * float32(g)`` rounded once for float16 and bfloat16.  E[y] = x and
    Var[y] = x**2 p / (1 - p).  Inference: `x` unchanged (a copy)."""
    x = np.asarray(x)
    if not training:
        return x.copy()
    return _times_noise(x, gaussian_noise(x.shape, p, seed, stream))


def gaussian_dropout_backward(grad, p, seed, stream=0):
    """Gradient of `gaussian_dropout`: ``grad * g`` with the forward call's noise."""
    grad = np.asarray(grad)
    return _times_noise(grad, gaussian_noise(grad.shape, p, seed, stream))
