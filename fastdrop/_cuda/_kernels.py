"""The CUDA kernels (Numba), and the launch geometry.

Every kernel walks its work with a grid-stride loop over *units* indexed by logical C
order, so the launch geometry never changes a result:

- generator kernels (random bits, uniform, normal, gaussian dropout): one unit is one
  Philox block (4 words: 4 draws at bits=32, 8 at bits=16, 2 float64 uniforms);
- mask and dropout kernels: one unit is 8 consecutive elements, i.e. one byte of the
  packed mask (1 Philox block at bits=16, 2 at bits=32 when the first draw is a multiple
  of 8 -- always, except for dropout_mask with an unaligned offset).

Blocks of a larger array (``block=``): the *block-map* variants (`k_mask_block`,
``dropout_kernel(..., gmap=True)``, `gaussian_block_kernel`) keep the same units, but each
element computes its own draw index from its logical index and the per-axis draw strides
(`_device.draw_index`), since consecutive elements are consecutive draws only along a row.

All index arithmetic is uint64.  The arrays a kernel sees are 1-D and C-contiguous (the
dispatch layer gathers strided operands first); float16 and bfloat16 travel as their
uint16 bit patterns.
"""
from __future__ import annotations

import functools

import numpy as np

from ._device import (NONE, U, U0, U1, U2, U3, U7, U8, U11, U32, MASK16, MASK32,
                      bf16_to_f32, block_keep_byte, cached_draw, draw_index, f16_to_f32,
                      f32_to_bf16, f32_to_f16, f64_to_f16, keep_byte, noise_index,
                      normal_u32, philox_r, pick4, stream_block, strided_offset)
from .._core.ops import Keep, Op
from ._env import SIMULATOR, cuda
from ._fp import dadd, dmul, fadd, fmul

# keep sources and ops of the dropout kernel: fastdrop._core.ops' numbers, as plain ints
# (compile-time constants of each specialisation)
KS_DRAWS, KS_ALL, KS_PACKED, KS_BOOL = (int(Keep.DRAWS), int(Keep.ALL), int(Keep.PACKED),
                                        int(Keep.FLAGS))
OP_SCALE, OP_ALPHA, OP_BDA = int(Op.DROPOUT), int(Op.ALPHA), int(Op.BDA)

TWO_M24 = np.float32(2.0 ** -24)
TWO_M53 = np.float64(2.0 ** -53)

dev = cuda.jit(device=True)


# ---- launch geometry ----------------------------------------------------------------------

#: threads per block and the cap on blocks; the simulator runs every thread in Python,
#: so it gets a tiny grid (the grid-stride loops cover any size).
DEFAULT_THREADS = 32 if SIMULATOR else 256
MAX_BLOCKS = 2 if SIMULATOR else 65535

_geometry: list = [None]  # (blocks, threads) forced by the tests, or None


def set_launch_geometry(blocks: int | None = None, threads: int | None = None):
    """Force the grid (tests: any geometry gives the same bits).  None restores the
    default.  Returns the previous setting."""
    prev = _geometry[0]
    _geometry[0] = None if blocks is None else (int(blocks), int(threads or DEFAULT_THREADS))
    return prev


def forced_geometry():
    """The (blocks, threads) forced by `set_launch_geometry`, or None."""
    return _geometry[0]


def geometry(units: int):
    """(blocks, threads) for `units` units of work."""
    if _geometry[0] is not None:
        return _geometry[0]
    threads = DEFAULT_THREADS
    blocks = max(1, min(MAX_BLOCKS, (units + threads - 1) // threads))
    return blocks, threads


def launch(kernel, units: int, stream, *args):
    if units <= 0:
        return
    blocks, threads = geometry(units)
    kernel[blocks, threads, stream](*args)


# ---- per dtype: loads, stores and the compute precision ------------------------------------


@dev
def _load_f16(v):
    return f16_to_f32(v)


@dev
def _load_bf16(v):
    return bf16_to_f32(v)


@dev
def _load_f32(v):
    return np.float32(v)


@dev
def _load_f64(v):
    return np.float64(v)


@dev
def _store_f16(v):
    return f32_to_f16(v)


@dev
def _store_bf16(v):
    return f32_to_bf16(v)


@dev
def _store_f32(v):
    return np.float32(v)


@dev
def _store_f64(v):
    return np.float64(v)


@dev
def _f64_to_f16(v):
    return f64_to_f16(v)


@dev
def _f64_to_bf16(v):  # ml_dtypes rounds float64 -> float32 -> bfloat16
    return f32_to_bf16(np.float32(v))


_CODECS = {
    # dtype: (load, store, mul, add, compute type, store a float64)
    "float16": (_load_f16, _store_f16, fmul, fadd, np.float32, _f64_to_f16),
    "bfloat16": (_load_bf16, _store_bf16, fmul, fadd, np.float32, _f64_to_bf16),
    "float32": (_load_f32, _store_f32, fmul, fadd, np.float32, _store_f32),
    "float64": (_load_f64, _store_f64, dmul, dadd, np.float64, _store_f64),
}


def compute_type(dtype_name: str):
    return _CODECS[dtype_name][4]


def codec(dtype_name: str) -> tuple:
    """(load, store, mul, add, compute type, store a float64) of a dtype: the device
    functions of the general kernels (the fast path's tail uses them too)."""
    return _CODECS[dtype_name]


# ---- generator kernels ------------------------------------------------------------------------


@cuda.jit
def k_philox(out, ctr, key, nrows, rounds):
    """Row j: Philox4x32-`rounds` of counter ctr[4j:4j+4] under key key[2j:2j+2]."""
    j = U(cuda.grid(1))
    step = U(cuda.gridsize(1))
    while j < nrows:
        c0, c1, c2, c3 = philox_r(rounds, U(ctr[U(4) * j]), U(ctr[U(4) * j + U1]),
                                  U(ctr[U(4) * j + U2]), U(ctr[U(4) * j + U3]),
                                  U(key[U2 * j]), U(key[U2 * j + U1]))
        out[U(4) * j] = np.uint32(c0)
        out[U(4) * j + U1] = np.uint32(c1)
        out[U(4) * j + U2] = np.uint32(c2)
        out[U(4) * j + U3] = np.uint32(c3)
        j += step


@cuda.jit
def k_bits(out, n, offset, seed, stream, bits):
    """Draw offset + i into out[i]: a word (bits=32), a half word, low half first
    (bits=16), or a byte, least significant first (bits=8)."""
    per = U(8) if bits == U(16) else U(16) if bits == U(8) else U(4)  # draws per block
    first = offset // per
    nblocks = (offset + n - U1) // per - first + U1
    b = U(cuda.grid(1))
    step = U(cuda.gridsize(1))
    while b < nblocks:
        blk = first + b
        w0, w1, w2, w3 = stream_block(seed, stream, blk)
        for kk in range(per):
            d = blk * per + U(kk)
            if d >= offset and d - offset < n:
                if bits == U(16):
                    w = pick4(w0, w1, w2, w3, U(kk) >> U1)
                    out[d - offset] = (w >> (U(16) * (U(kk) & U1))) & MASK16
                elif bits == U(8):
                    w = pick4(w0, w1, w2, w3, U(kk) >> U(2))
                    out[d - offset] = (w >> (U(8) * (U(kk) & U(3)))) & U(0xFF)
                else:
                    out[d - offset] = pick4(w0, w1, w2, w3, U(kk))
        b += step


@cuda.jit
def k_uniform32(out, n, offset, seed, stream):
    """(word (offset + i) >> 8) * 2^-24 (exact)."""
    first = offset >> U2
    nblocks = ((offset + n - U1) >> U2) - first + U1
    b = U(cuda.grid(1))
    step = U(cuda.gridsize(1))
    while b < nblocks:
        blk = first + b
        w0, w1, w2, w3 = stream_block(seed, stream, blk)
        for kk in range(4):
            d = (blk << U2) + U(kk)
            if d >= offset and d - offset < n:
                w = pick4(w0, w1, w2, w3, U(kk))
                out[d - offset] = fmul(np.float32(w >> U8), TWO_M24)
        b += step


@cuda.jit
def k_uniform64(out, n, offset, seed, stream):
    """(((hi << 32) | lo) >> 11) * 2^-53 with lo, hi = words 2d, 2d + 1 (exact)."""
    first = offset >> U1                                # 2 elements per block
    nblocks = ((offset + n - U1) >> U1) - first + U1
    b = U(cuda.grid(1))
    step = U(cuda.gridsize(1))
    while b < nblocks:
        blk = first + b
        w0, w1, w2, w3 = stream_block(seed, stream, blk)
        d = blk << U1
        if d >= offset and d - offset < n:
            out[d - offset] = dmul(np.float64(((w1 << U32) | w0) >> U11), TWO_M53)
        d = d + U1
        if d >= offset and d - offset < n:
            out[d - offset] = dmul(np.float64(((w3 << U32) | w2) >> U11), TWO_M53)
        b += step


@cuda.jit
def k_normal(out, n, offset, seed, stream):
    """normal_u32(word offset + i), rounded once to out's dtype."""
    first = offset >> U2
    nblocks = ((offset + n - U1) >> U2) - first + U1
    b = U(cuda.grid(1))
    step = U(cuda.gridsize(1))
    while b < nblocks:
        blk = first + b
        w0, w1, w2, w3 = stream_block(seed, stream, blk)
        for kk in range(4):
            d = (blk << U2) + U(kk)
            if d >= offset and d - offset < n:
                out[d - offset] = normal_u32(pick4(w0, w1, w2, w3, U(kk)))
        b += step


@cuda.jit
def k_mask(pout, bout, n, offset, seed, stream, bits, t, want_p, want_b):
    """Keep flags of draws offset + i, packed (byte u: elements 8u .. 8u + 7) and/or bool."""
    nunits = (n + U7) >> U3
    u = U(cuda.grid(1))
    step = U(cuda.gridsize(1))
    while u < nunits:
        i0 = u << U3
        cnt = n - i0
        if cnt > U8:
            cnt = U8
        byte = keep_byte(seed, stream, offset + i0, cnt, bits, t)
        if want_p:
            pout[u] = np.uint8(byte)
        if want_b:
            for kk in range(cnt):
                bout[i0 + U(kk)] = ((byte >> U(kk)) & U1) != U0
        u += step


@cuda.jit
def k_mask_block(pout, bout, n, base, shape, gstrides, seed, stream, bits, t, want_p, want_b):
    """k_mask for a block of a larger array: element i (C order over `shape`) takes draw
    base + sum(coord_k(i) * gstrides_k); the outputs are in the block's own C order."""
    nunits = (n + U7) >> U3
    u = U(cuda.grid(1))
    step = U(cuda.gridsize(1))
    while u < nunits:
        i0 = u << U3
        cnt = n - i0
        if cnt > U8:
            cnt = U8
        byte = block_keep_byte(seed, stream, i0, cnt, bits, t, base, shape, gstrides)
        if want_p:
            pout[u] = np.uint8(byte)
        if want_b:
            for kk in range(cnt):
                bout[i0 + U(kk)] = ((byte >> U(kk)) & U1) != U0
        u += step


# ---- layout kernels -----------------------------------------------------------------------------


@cuda.jit
def k_gather(dst, src, n, base, shape, strides):
    """dst[i] = src[base + sum(coord_k(i) * strides_k)]: a strided view, C order."""
    i = U(cuda.grid(1))
    step = U(cuda.gridsize(1))
    while i < n:
        dst[i] = src[strided_offset(i, base, shape, strides)]
        i += step


@cuda.jit
def k_scatter(dst, src, n, base, shape, strides):
    """The inverse of k_gather: write a C-order buffer into a strided view."""
    i = U(cuda.grid(1))
    step = U(cuda.gridsize(1))
    while i < n:
        dst[strided_offset(i, base, shape, strides)] = src[i]
        i += step


# ---- per-dtype kernels ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def dropout_kernel(dtype_name: str, op: int, ks: int, gmap: bool = False):
    """The fused elementwise kernel of dtype `dtype_name`, op and keep source (closure
    constants, so each specialisation keeps only its own branches).  gmap (KS_DRAWS
    only): x is a block of a larger array, whose element i draws
    ``draw_index(i, base, gshape, gstrides)`` instead of i (otherwise those three
    arguments are unused).

    Per 8-element unit u: the keep flags come from the draws (and are written to the
    packed / bool mask outputs), from a packed or bool mask (indexed in the noise shape
    when ``full`` is false), or are all set; then per element, in the compute precision:
    OP_SCALE ``x * s`` or +0; OP_ALPHA ``x * a + c`` or d; OP_BDA
    ``res + ((x + bias) * s or +0)``; rounded once to the storage type.
    """
    load, store, mul, add, ct, _ = _CODECS[dtype_name]
    zero = ct(0.0)

    @cuda.jit
    def kernel(y, x, bias, res, pin, fin, pout, bout, n, ncols, seed, stream, bits, t,
               s, a, c, d, full, want_p, want_b, has_bias, xshape, nstrides, base, gshape,
               gstrides):
        nunits = (n + U7) >> U3
        u = U(cuda.grid(1))
        step = U(cuda.gridsize(1))
        while u < nunits:
            i0 = u << U3
            cnt = n - i0
            if cnt > U8:
                cnt = U8
            byte = U0
            if ks == KS_DRAWS:
                if gmap:
                    byte = block_keep_byte(seed, stream, i0, cnt, bits, t, base, gshape,
                                           gstrides)
                else:
                    byte = keep_byte(seed, stream, i0, cnt, bits, t)
                if want_p:
                    pout[u] = np.uint8(byte)
            elif ks == KS_ALL:
                byte = U(0xFF)
            elif ks == KS_PACKED and full:
                byte = U(pin[u])
            else:
                for kk in range(cnt):
                    i = i0 + U(kk)
                    j = i if full else noise_index(i, xshape, nstrides)
                    if ks == KS_PACKED:
                        f = (U(pin[j >> U3]) >> (j & U7)) & U1
                    else:
                        f = U1 if fin[j] else U0
                    byte = byte | (f << U(kk))
            for kk in range(cnt):
                i = i0 + U(kk)
                keep = ((byte >> U(kk)) & U1) != U0
                if want_b:
                    bout[i] = keep
                xv = load(x[i])
                if op == OP_SCALE:
                    v = mul(xv, s) if keep else zero
                elif op == OP_ALPHA:
                    v = add(mul(xv, a), c) if keep else d
                else:
                    uu = add(xv, load(bias[i % ncols])) if has_bias else xv
                    v = add(load(res[i]), mul(uu, s) if keep else zero)
                y[i] = store(v)
            u += step

    return kernel


@functools.lru_cache(maxsize=None)
def gaussian_kernel(dtype_name: str):
    """y[i] = x[i] * ct(1 + sigma * z_i), z_i = normal_u32(word i); one Philox block
    (4 elements) per unit."""
    gauss = _gauss_element(dtype_name)

    @cuda.jit
    def kernel(y, x, n, seed, stream, sigma):
        nblocks = (n + U3) >> U2
        b = U(cuda.grid(1))
        step = U(cuda.gridsize(1))
        while b < nblocks:
            w0, w1, w2, w3 = stream_block(seed, stream, b)
            for kk in range(4):
                i = (b << U2) + U(kk)
                if i < n:
                    y[i] = gauss(x[i], pick4(w0, w1, w2, w3, U(kk)), sigma)
            b += step

    return kernel


@functools.lru_cache(maxsize=None)
def gaussian_block_kernel(dtype_name: str):
    """gaussian_kernel for a block of a larger array: element i takes word
    ``draw_index(i, base, gshape, gstrides)``; units of 4 consecutive elements, the
    Philox block reused while their words stay in it (`cached_draw`)."""
    gauss = _gauss_element(dtype_name)

    @cuda.jit
    def kernel(y, x, n, seed, stream, sigma, base, gshape, gstrides):
        nunits = (n + U3) >> U2
        u = U(cuda.grid(1))
        step = U(cuda.gridsize(1))
        while u < nunits:
            cur = NONE
            w0 = U0
            w1 = U0
            w2 = U0
            w3 = U0
            for kk in range(4):
                i = (u << U2) + U(kk)
                if i < n:
                    d = draw_index(i, base, gshape, gstrides)
                    r, cur, w0, w1, w2, w3 = cached_draw(seed, stream, d, U32, cur,
                                                         w0, w1, w2, w3)
                    y[i] = gauss(x[i], r, sigma)
            u += step

    return kernel


@functools.lru_cache(maxsize=None)
def _gauss_element(dtype_name: str):
    """Device function: the gaussian dropout of one stored element xs with word r,
    ``x * ct(1 + sigma * normal_u32(r))`` (g in float64, the product in the compute
    precision, each operation rounded once), stored."""
    load, store, mul, _, ct, _ = _CODECS[dtype_name]

    @dev
    def gauss(xs, r, sigma):
        z = normal_u32(r)
        g = dadd(1.0, dmul(sigma, z))
        return store(mul(load(xs), ct(g)))

    return gauss


@functools.lru_cache(maxsize=None)
def convert_kernel(src_name: str, dst_name: str):
    """dst[i] = src[i] converted exactly as NumPy's astype (half <-> float32 only)."""
    load = _CODECS[src_name][0]
    store = _CODECS[dst_name][1]

    @cuda.jit
    def kernel(dst, src, n):
        i = U(cuda.grid(1))
        step = U(cuda.gridsize(1))
        while i < n:
            dst[i] = store(load(src[i]))
            i += step

    return kernel


@functools.lru_cache(maxsize=None)
def colsum_kernel(dtype_name: str):
    """dbias: out[c] = sum over rows r of float64(v[r * ncols + c]), in NumPy's order
    (``v.reshape(-1, ncols).sum(axis=0)``): sequential from +0.0 for ncols >= 2, NumPy's
    pairwise summation (blocks of 128, 8 accumulators) for ncols == 1; rounded once to
    `dtype_name`."""
    store64 = _CODECS[dtype_name][5]

    @dev
    def leaf(v, start, m, ncols, col):
        if m < U8:
            acc = 0.0
            for kk in range(m):
                acc = dadd(acc, np.float64(v[(start + U(kk)) * ncols + col]))
            return acc
        r0 = np.float64(v[(start + U0) * ncols + col])
        r1 = np.float64(v[(start + U1) * ncols + col])
        r2 = np.float64(v[(start + U2) * ncols + col])
        r3 = np.float64(v[(start + U3) * ncols + col])
        r4 = np.float64(v[(start + U(4)) * ncols + col])
        r5 = np.float64(v[(start + U(5)) * ncols + col])
        r6 = np.float64(v[(start + U(6)) * ncols + col])
        r7 = np.float64(v[(start + U7) * ncols + col])
        i = U8
        while i < m - (m % U8):
            r0 = dadd(r0, np.float64(v[(start + i) * ncols + col]))
            r1 = dadd(r1, np.float64(v[(start + i + U1) * ncols + col]))
            r2 = dadd(r2, np.float64(v[(start + i + U2) * ncols + col]))
            r3 = dadd(r3, np.float64(v[(start + i + U3) * ncols + col]))
            r4 = dadd(r4, np.float64(v[(start + i + U(4)) * ncols + col]))
            r5 = dadd(r5, np.float64(v[(start + i + U(5)) * ncols + col]))
            r6 = dadd(r6, np.float64(v[(start + i + U(6)) * ncols + col]))
            r7 = dadd(r7, np.float64(v[(start + i + U7) * ncols + col]))
            i += U8
        acc = dadd(dadd(dadd(r0, r1), dadd(r2, r3)), dadd(dadd(r4, r5), dadd(r6, r7)))
        while i < m:
            acc = dadd(acc, np.float64(v[(start + i) * ncols + col]))
            i += U1
        return acc

    @cuda.jit
    def kernel(out, v, nrows, ncols):
        col = U(cuda.grid(1))
        step = U(cuda.gridsize(1))
        while col < ncols:
            if ncols >= U2:
                acc = 0.0
                for r in range(nrows):
                    acc = dadd(acc, np.float64(v[U(r) * ncols + col]))
            else:
                # NumPy's pairwise_sum, its recursion unrolled with explicit stacks
                st_start = cuda.local.array(64, np.uint64)
                st_len = cuda.local.array(64, np.uint64)
                st_state = cuda.local.array(64, np.uint64)
                vals = cuda.local.array(64, np.float64)
                sp = 0
                vp = 0
                st_start[0] = U0
                st_len[0] = nrows
                st_state[0] = U0
                sp = 1
                while sp > 0:
                    top = sp - 1
                    start = st_start[top]
                    m = st_len[top]
                    n2 = m // U2
                    n2 = n2 - n2 % U8
                    if m <= U(128):
                        vals[vp] = leaf(v, start, m, ncols, col)
                        vp += 1
                        sp -= 1
                    elif st_state[top] == U0:
                        st_state[top] = U1
                        st_start[sp] = start
                        st_len[sp] = n2
                        st_state[sp] = U0
                        sp += 1
                    elif st_state[top] == U1:
                        st_state[top] = U2
                        st_start[sp] = start + n2
                        st_len[sp] = m - n2
                        st_state[sp] = U0
                        sp += 1
                    else:
                        vals[vp - 2] = dadd(vals[vp - 2], vals[vp - 1])
                        vp -= 1
                        sp -= 1
                acc = dadd(0.0, vals[0])
            out[col] = store64(acc)
            col += step

    return kernel


@cuda.jit
def k_copy(dst, src, n):
    """dst[i] = src[i], bits unchanged."""
    i = U(cuda.grid(1))
    step = U(cuda.gridsize(1))
    while i < n:
        dst[i] = src[i]
        i += step
