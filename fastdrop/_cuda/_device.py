"""Device functions: Philox4x32-10, the stream layout, half conversions, normal deviates.

Line-by-line twins of fastdrop/_cpu/src/philox.h, fd_half.h and fd_normal.h.
All integer arithmetic is unsigned 64-bit (np.uint64 constants only: Numba types a
uint64 mixed with a signed integer as float64), with 32-bit values masked explicitly;
all float arithmetic goes through the explicitly rounded operations of `_fp`.
"""
from __future__ import annotations

import numpy as np

from . import _fp
from ._env import cuda
from ._fp import bits_f32, bits_f64, dadd, ddiv, dmul, dsqrt, dsub, f32_bits, f64_bits, fmul

U = np.uint64
M0, M1 = U(0xD2511F53), U(0xCD9E8D57)
W0, W1 = U(0x9E3779B9), U(0xBB67AE85)
MASK32, MASK16 = U(0xFFFFFFFF), U(0xFFFF)
U0, U1, U2, U3, U7, U8, U11, U13, U16, U23, U32, U52 = (
    U(0), U(1), U(2), U(3), U(7), U(8), U(11), U(13), U(16), U(23), U(32), U(52))
NONE = U(0xFFFFFFFFFFFFFFFF)  # no block: block indices are below 2**62
_u32 = np.uint32

dev = cuda.jit(device=True)

# ---- philox.h: the generator ------------------------------------------------------------


@dev
def philox_round(c0, c1, c2, c3, k0, k1):
    p0 = M0 * c0                                  # 32 x 32 -> 64 bit, exact in uint64
    p1 = M1 * c2
    n0 = (p1 >> U32) ^ c1 ^ k0
    n2 = (p0 >> U32) ^ c3 ^ k1
    return n0, p1 & MASK32, n2, p0 & MASK32       # (c0, c1, c2, c3)


@dev
def philox_r(rounds, c0, c1, c2, c3, k0, k1):
    for _ in range(rounds):
        c0, c1, c2, c3 = philox_round(c0, c1, c2, c3, k0, k1)
        k0 = (k0 + W0) & MASK32
        k1 = (k1 + W1) & MASK32
    return c0, c1, c2, c3


@dev
def stream_block(seed, stream, block):
    """Block `block` (words 4*block .. 4*block + 3) of (seed, stream): fd_stream_block."""
    return philox_r(10, block & MASK32, block >> U32, stream & MASK32, stream >> U32,
                    seed & MASK32, seed >> U32)


@dev
def philox10_32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 (contract section 1) of a counter and key of uint32 words; the
    products are 32 x 32 -> 64 bit (``mul.wide.u32``): the same words as `philox_r`,
    in fewer instructions than its uint64 arithmetic."""
    for _ in range(10):
        p0 = M0 * U(c0)
        p1 = M1 * U(c2)
        n0 = _u32(((p1 >> U32) ^ U(c1) ^ U(k0)) & MASK32)
        n2 = _u32(((p0 >> U32) ^ U(c3) ^ U(k1)) & MASK32)
        c0, c1, c2, c3 = n0, _u32(p1 & MASK32), n2, _u32(p0 & MASK32)
        k0 = _u32((U(k0) + W0) & MASK32)
        k1 = _u32((U(k1) + W1) & MASK32)
    return c0, c1, c2, c3


@dev
def stream_block32(seed, stream, block):
    """`stream_block` (any uint64 block index) through `philox10_32`."""
    return philox10_32(_u32(block & MASK32), _u32(block >> U32), _u32(stream & MASK32),
                       _u32(stream >> U32), _u32(seed & MASK32), _u32(seed >> U32))


@dev
def _flag(r, t):
    return U1 if U(r) >= t else U0


@dev
def unit_keep_byte(seed, stream, u, count, bits, t):
    """``keep_byte(seed, stream, 8u, count, bits, t)`` (count <= 8) for a unit whose first
    draw is 8u, i.e. aligned to the blocks: straight-line, each block generated once
    (bits=16: block u; bits=32: blocks 2u, 2u + 1; bits=8: half of block u >> 1), 8
    compares, the flags past `count` cleared."""
    if bits == U16:
        w0, w1, w2, w3 = stream_block32(seed, stream, u)
        byte = (_flag(U(w0) & MASK16, t) | (_flag(U(w0) >> U16, t) << U1)
                | (_flag(U(w1) & MASK16, t) << U2) | (_flag(U(w1) >> U16, t) << U3)
                | (_flag(U(w2) & MASK16, t) << U(4)) | (_flag(U(w2) >> U16, t) << U(5))
                | (_flag(U(w3) & MASK16, t) << U(6)) | (_flag(U(w3) >> U16, t) << U7))
    elif bits == U8:
        w0, w1, w2, w3 = stream_block32(seed, stream, u >> U1)
        odd = (u & U1) != U0
        wa = U(w2) if odd else U(w0)
        wb = U(w3) if odd else U(w1)
        byte = (_flag(wa & U(0xFF), t) | (_flag((wa >> U8) & U(0xFF), t) << U1)
                | (_flag((wa >> U16) & U(0xFF), t) << U2) | (_flag(wa >> U(24), t) << U3)
                | (_flag(wb & U(0xFF), t) << U(4)) | (_flag((wb >> U8) & U(0xFF), t) << U(5))
                | (_flag((wb >> U16) & U(0xFF), t) << U(6)) | (_flag(wb >> U(24), t) << U7))
    else:
        a0, a1, a2, a3 = stream_block32(seed, stream, u << U1)
        b0, b1, b2, b3 = stream_block32(seed, stream, (u << U1) | U1)
        byte = (_flag(a0, t) | (_flag(a1, t) << U1) | (_flag(a2, t) << U2)
                | (_flag(a3, t) << U3) | (_flag(b0, t) << U(4)) | (_flag(b1, t) << U(5))
                | (_flag(b2, t) << U(6)) | (_flag(b3, t) << U7))
    return byte & ((U1 << U(count)) - U1)


@dev
def pick4(w0, w1, w2, w3, k):
    """Word k (0..3) of a block."""
    if k == U0:
        return w0
    if k == U1:
        return w1
    if k == U2:
        return w2
    return w3


@dev
def cached_draw(seed, stream, d, bits, cur, w0, w1, w2, w3):
    """Draw d (a word at bits=32, a half word, low half first, at bits=16, a byte, least
    significant first, at bits=8) and the block cache (cur: the index of the cached
    Philox block w0..w3, NONE for none): the block holding d is generated only when it
    is not the cached one.  Returns (r, cur, w0, w1, w2, w3)."""
    if bits == U16:
        blk = d >> U3
        w = (d >> U1) & U3
    elif bits == U8:
        blk = d >> U(4)
        w = (d >> U2) & U3
    else:
        blk = d >> U2
        w = d & U3
    if blk != cur:
        w0, w1, w2, w3 = stream_block(seed, stream, blk)
        cur = blk
    r = pick4(w0, w1, w2, w3, w)
    if bits == U16:
        r = (r >> (U16 * (d & U1))) & MASK16
    elif bits == U8:
        r = (r >> (U8 * (d & U3))) & U(0xFF)
    return r, cur, w0, w1, w2, w3


@dev
def keep_byte(seed, stream, first, count, bits, t):
    """Keep flags of draws first .. first + count - 1 (count <= 8) as the bits of a byte
    (bit k: draw first + k kept, r >= t).  One Philox block serves 4 draws (bits=32) or 8
    (bits=16); a block is generated once and reused while the draws stay in it."""
    byte = U0
    cur = NONE
    w0 = U0
    w1 = U0
    w2 = U0
    w3 = U0
    for kk in range(count):
        k = U(kk)
        r, cur, w0, w1, w2, w3 = cached_draw(seed, stream, first + k, bits, cur,
                                             w0, w1, w2, w3)
        if r >= t:
            byte = byte | (U1 << k)
    return byte


@dev
def block_keep_byte(seed, stream, first, count, bits, t, base, shape, gstrides, small):
    """keep_byte for elements first .. first + count - 1 (C order) of a block of a larger
    array (block=): element i takes draw ``draw_index(i, ...)``, so consecutive elements
    are consecutive draws only along a row.  The index math is hoisted: one division by
    the last axis and one `row_offset` for the unit's first element, then each element
    advances its column (and, past a row's end, its row) without a division; `small`
    (every index below 2^32) makes the divisions 32-bit.  The Philox block is reused while
    the draws stay in it."""
    nd = shape.size
    L = U(shape[nd - 1])
    gl = gstrides[nd - 1]
    row, c = divmod_u(first, L, small)
    drow = base + row_offset(row, shape, gstrides, small)
    byte = U0
    cur = NONE
    w0 = U0
    w1 = U0
    w2 = U0
    w3 = U0
    for kk in range(count):
        k = U(kk)
        d = drow + c * gl
        r, cur, w0, w1, w2, w3 = cached_draw(seed, stream, d, bits, cur, w0, w1, w2, w3)
        if r >= t:
            byte = byte | (U1 << k)
        c = c + U1
        if c == L:
            c = U0
            row = row + U1
            drow = base + row_offset(row, shape, gstrides, small)
    return byte


# ---- fd_half.h: float16 and bfloat16 ------------------------------------------------------


@dev
def f16_to_f32(h):
    h = U(h) & MASK16
    sign = (h & U(0x8000)) << U16
    exp = (h >> U(10)) & U(0x1F)
    mant = h & U(0x3FF)
    if exp == U(0x1F):                                  # inf, nan
        return bits_f32(sign | U(0x7F800000) | (mant << U13))
    if exp == U0:                                       # zero, subnormal: exact product
        f = fmul(np.float32(mant), np.float32(5.9604644775390625e-08))
        return bits_f32(sign | f32_bits(f))
    return bits_f32(sign | ((exp + U(112)) << U23) | (mant << U13))


@dev
def f32_to_f16(value):
    f = f32_bits(value)
    sign = (f >> U16) & U(0x8000)
    f_exp = f & U(0x7F800000)
    f_sig = f & U(0x007FFFFF)
    if f_exp >= U(0x47800000):                          # overflow to inf, or inf/nan
        if f_exp == U(0x7F800000) and f_sig != U0:
            n = (U(0x7C00) + (f_sig >> U13)) & MASK16
            if n == U(0x7C00):
                n = U(0x7C01)                           # stays a NaN
            return np.uint16(sign | n)
        return np.uint16(sign | U(0x7C00))
    if f_exp <= U(0x38000000):                          # subnormal half or zero
        if f_exp < U(0x33000000):
            return np.uint16(sign)
        f_exp = f_exp >> U23
        f_sig = U(0x00800000) + f_sig
        f_sig = f_sig >> (U(113) - f_exp)
        if ((f_sig & U(0x00003FFF)) != U(0x00001000)) or ((f & U(0x000007FF)) != U0):
            f_sig = f_sig + U(0x00001000)
        return np.uint16((sign + (f_sig >> U13)) & MASK16)
    h_exp = ((f_exp - U(0x38000000)) >> U13) & MASK16
    if (f_sig & U(0x00003FFF)) != U(0x00001000):        # round half to even
        f_sig = f_sig + U(0x00001000)
    return np.uint16((sign + h_exp + (f_sig >> U13)) & MASK16)  # a carry is right


@dev
def bf16_to_f32(h):
    return bits_f32((U(h) & MASK16) << U16)


@dev
def f32_to_bf16(value):
    f = f32_bits(value)
    if (f & U(0x7FFFFFFF)) > U(0x7F800000):             # nan: canonical, its sign
        return np.uint16(((f >> U16) & U(0x8000)) | U(0x7FC0))
    f = (f + U(0x7FFF) + ((f >> U16) & U1)) & MASK32    # round half to even
    return np.uint16(f >> U16)


@dev
def f64_to_f16(value):
    """float64 -> float16 in one rounding (NumPy's npy_doublebits_to_halfbits), for
    dbias, which the CPU casts straight from float64."""
    d = f64_bits(value)
    h_sgn = (d >> U(48)) & U(0x8000)
    d_exp = d & U(0x7FF0000000000000)
    if d_exp >= U(0x40F0000000000000):
        if d_exp == U(0x7FF0000000000000):
            d_sig = d & U(0x000FFFFFFFFFFFFF)
            if d_sig != U0:
                ret = (U(0x7C00) + (d_sig >> U(42))) & MASK16
                if ret == U(0x7C00):
                    ret = ret + U1
                return np.uint16((h_sgn + ret) & MASK16)
        return np.uint16(h_sgn + U(0x7C00))
    if d_exp <= U(0x3F00000000000000):
        if d_exp < U(0x3E60000000000000):
            return np.uint16(h_sgn)
        d_exp = d_exp >> U52
        d_sig = U(0x0010000000000000) + (d & U(0x000FFFFFFFFFFFFF))
        d_sig = d_sig << (d_exp - U(998))
        if (d_sig & U(0x003FFFFFFFFFFFFF)) != U(0x0010000000000000):
            d_sig = d_sig + U(0x0010000000000000)
        return np.uint16((h_sgn + (d_sig >> U(53))) & MASK16)
    h_exp = (d_exp - U(0x3F00000000000000)) >> U(42)
    d_sig = d & U(0x000FFFFFFFFFFFFF)
    if (d_sig & U(0x000007FFFFFFFFFF)) != U(0x0000020000000000):
        d_sig = d_sig + U(0x0000020000000000)
    return np.uint16((h_sgn + h_exp + (d_sig >> U(42))) & MASK16)


# ---- fd_normal.h: normal deviates ---------------------------------------------------------


@dev
def neglog_odd(j):
    """-log(j * 2^-33) for odd j in [1, 2^32): fd_neglog_odd."""
    dj = np.float64(j)
    bits = f64_bits(dj)
    e = np.int64(bits >> U52) - np.int64(1023)
    m = bits_f64((bits & U(0x000FFFFFFFFFFFFF)) | U(0x3FF0000000000000))
    if m > 1.4142135623730951:
        m = dmul(m, 0.5)
        e = e + np.int64(1)
    f = dsub(m, 1.0)
    s = ddiv(f, dadd(2.0, f))
    z = dmul(s, s)
    w = 0.047619047619047616
    w = dadd(dmul(w, z), 0.05263157894736842)
    w = dadd(dmul(w, z), 0.058823529411764705)
    w = dadd(dmul(w, z), 0.06666666666666667)
    w = dadd(dmul(w, z), 0.07692307692307693)
    w = dadd(dmul(w, z), 0.09090909090909091)
    w = dadd(dmul(w, z), 0.1111111111111111)
    w = dadd(dmul(w, z), 0.14285714285714285)
    w = dadd(dmul(w, z), 0.2)
    w = dadd(dmul(w, z), 0.3333333333333333)
    w = dadd(dmul(w, z), 1.0)
    lm = dmul(dadd(s, s), w)
    k = np.float64(np.int64(33) - e)             # -log(x) = k ln2 - log(m), k in 1..33
    return dadd(dmul(k, 6.93147180369123816490e-01),
                dsub(dmul(k, 1.90821492927058770002e-10), lm))


@dev
def normal_u32(r):
    """The deviate of word r: fd_normal_u32 (AS241 in float64, fixed operation order)."""
    r = U(r) & MASK32
    q = dmul(dsub(np.float64(U2 * r + U1), 4294967296.0), 1.1641532182693481e-10)
    aq = -q if q < 0.0 else q
    if aq <= 0.425:
        c = dsub(0.180625, dmul(q, q))
        a = 2.5090809287301226727e+3
        a = dadd(dmul(a, c), 3.3430575583588128105e+4)
        a = dadd(dmul(a, c), 6.7265770927008700853e+4)
        a = dadd(dmul(a, c), 4.5921953931549871457e+4)
        a = dadd(dmul(a, c), 1.3731693765509461125e+4)
        a = dadd(dmul(a, c), 1.9715909503065514427e+3)
        a = dadd(dmul(a, c), 1.3314166789178437745e+2)
        a = dadd(dmul(a, c), 3.3871328727963666080e+0)
        b = 5.2264952788528545610e+3
        b = dadd(dmul(b, c), 2.8729085735721942674e+4)
        b = dadd(dmul(b, c), 3.9307895800092710610e+4)
        b = dadd(dmul(b, c), 2.1213794301586595867e+4)
        b = dadd(dmul(b, c), 5.3941960214247511077e+3)
        b = dadd(dmul(b, c), 6.8718700749205790830e+2)
        b = dadd(dmul(b, c), 4.2313330701600911252e+1)
        b = dadd(dmul(b, c), 1.0)
        return ddiv(dmul(q, a), b)
    nr = MASK32 ^ r
    lo = r if r < nr else nr                      # min(u, 1 - u) = (2 lo + 1) 2^-33
    t = dsub(dsqrt(neglog_odd(U2 * lo + U1)), 1.6)
    a = 7.74545014278341407640e-4
    a = dadd(dmul(a, t), 2.27238449892691845833e-2)
    a = dadd(dmul(a, t), 2.41780725177450611770e-1)
    a = dadd(dmul(a, t), 1.27045825245236838258e+0)
    a = dadd(dmul(a, t), 3.64784832476320460504e+0)
    a = dadd(dmul(a, t), 5.76949722146069140550e+0)
    a = dadd(dmul(a, t), 4.63033784615654529590e+0)
    a = dadd(dmul(a, t), 1.42343711074968357734e+0)
    b = 1.05075007164441684324e-9
    b = dadd(dmul(b, t), 5.47593808499534494600e-4)
    b = dadd(dmul(b, t), 1.51986665636164571966e-2)
    b = dadd(dmul(b, t), 1.48103976427480074590e-1)
    b = dadd(dmul(b, t), 6.89767334985100004550e-1)
    b = dadd(dmul(b, t), 1.67638483018380384940e+0)
    b = dadd(dmul(b, t), 2.05319162663775882187e+0)
    b = dadd(dmul(b, t), 1.0)
    tail = ddiv(a, b)
    return -tail if q < 0.0 else tail


# ---- index helpers ------------------------------------------------------------------------


@dev
def divmod_u(a, b, small):
    """(a // b, a % b) of uint64 values; in 32 bits (no call to the 64-bit division
    routine) when `small`: a and b below 2^32."""
    if small:
        q = U(_u32(a) // _u32(b))
    else:
        q = a // b
    return q, a - q * b


@dev
def row_offset(row, shape, strides, small):
    """``sum_k coord_k * strides_k`` over the leading axes ``0 .. nd - 2`` of the
    coordinates of `row` in C order over ``shape[:-1]`` (row < prod(shape[:-1]), so the
    outermost axis needs no division): the offset of a row's first element, computed once
    per row rather than per element.  strides: an int64 (non-negative) or uint64 array."""
    nd = shape.size
    off = U0
    rem = row
    for kk in range(nd - 2, 0, -1):
        q, r = divmod_u(rem, U(shape[kk]), small)
        off = off + r * U(strides[kk])
        rem = q
    if nd >= 2:
        off = off + rem * U(strides[0])
    return off


@dev
def noise_index(i, xshape, nstrides):
    """Index in the noise shape's C order of x's element i (C order): the coordinates of
    i, with the broadcast axes (stride 0) dropped."""
    j = U0
    rem = i
    for kk in range(xshape.size - 1, -1, -1):
        sh = U(xshape[kk])
        j = j + (rem % sh) * U(nstrides[kk])
        rem = rem // sh
    return j


@dev
def draw_index(i, base, shape, gstrides):
    """Draw index of element i (C order over `shape`) of a block of a larger logical
    array: ``base + sum(coord_k(i) * gstrides_k)`` (fastdrop._core.contract.draw_map), in
    uint64 (draw indices go up to 2**64 - 1; gstrides is a uint64 array)."""
    d = base
    rem = i
    for kk in range(shape.size - 1, -1, -1):
        sh = U(shape[kk])
        d = d + (rem % sh) * gstrides[kk]
        rem = rem // sh
    return d


@dev
def strided_offset(i, base, shape, strides):
    """Element offset (may use negative strides) of logical element i (C order)."""
    off = base
    rem = i
    for kk in range(shape.size - 1, -1, -1):
        sh = U(shape[kk])
        off = off + np.int64(rem % sh) * strides[kk]
        rem = rem // sh
    return off


_ = _fp  # the module is the single switch between libdevice and the simulator
