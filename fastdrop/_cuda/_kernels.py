"""The CUDA kernels (Numba), and the launch geometry.

Every kernel walks its work with a grid-stride loop over *units* indexed by logical C
order, so the launch geometry never changes a result:

- generator kernels (random bits, uniform, normal, gaussian dropout): one unit is one
  Philox block (4 words: 4 draws at bits=32, 8 at bits=16, 2 float64 uniforms);
- mask and dropout kernels: one unit is 8 consecutive elements, i.e. one byte of the
  packed mask (1 Philox block at bits=16, 2 at bits=32, half of one at bits=8, when the
  first draw is a multiple of 8 -- always, except for dropout_mask with an unaligned
  offset).

Blocks of a larger array (``block=``): the *block-map* variants (`mask_block_kernel`,
``dropout_kernel(..., gmap=True)``, `gaussian_block_kernel`) keep the same units, but the
draw index of an element is not its logical index: it is computed once per unit from the
per-axis draw strides (`_device.block_keep_byte`, `_device.row_offset`; `_block_byte32`
in the fused kernel for blocks below 2^32 elements) and advanced element by element,
since consecutive elements are consecutive draws only along a row.

Counter, key and draw arithmetic is uint64; index divisions are 32-bit in the ``small``
specialisations (n < 2^32).  The per-dtype kernels are module-level templates specialised
by `specialise` (compile-time constants as globals, no closure), so that numba-cuda's
compile cache (`CACHE`) finds them again in the next process.  dbias is `column_sums`.
The arrays a kernel sees are 1-D and C-contiguous (the dispatch layer gathers strided
operands first); float16 and bfloat16 travel as their uint16 bit patterns.
"""
from __future__ import annotations

import functools
import hashlib
import os
import types as _pytypes
from pathlib import Path

import numpy as np

from ._device import (NONE, U, U0, U1, U2, U3, U7, U8, U11, U16, U32, MASK16,
                      bf16_to_f32, block_keep_byte, cached_draw, divmod_u, f16_to_f32,
                      f32_to_bf16, f32_to_f16, f64_to_f16, keep_byte, normal_u32, philox_r,
                      pick4, row_offset, stream_block, stream_block32, strided_offset,
                      unit_keep_byte)
from .._core.ops import Keep, Op
from ._env import SIMULATOR, cuda
from ._fp import dadd, dmul, fadd, fmul

# keep sources and ops of the dropout kernel: fastdrop._core.ops' numbers, as plain ints
# (compile-time constants of each specialisation)
KS_DRAWS, KS_ALL, KS_PACKED, KS_BOOL = (int(Keep.DRAWS), int(Keep.ALL), int(Keep.PACKED),
                                        int(Keep.FLAGS))
OP_SCALE, OP_ALPHA, OP_BDA = int(Op.DROPOUT), int(Op.ALPHA), int(Op.BDA)

_u32 = np.uint32
TWO_M24 = np.float32(2.0 ** -24)
TWO_M53 = np.float64(2.0 ** -53)

dev = cuda.jit(device=True)


# ---- specialisations and the compile cache -------------------------------------------------

#: numba-cuda's on-disk compile cache (``cuda.jit(cache=True)``) for every kernel; off
#: under the simulator (nothing is compiled) and with FASTDROP_CUDA_CACHE=0
CACHE = not SIMULATOR and os.environ.get("FASTDROP_CUDA_CACHE", "1") not in ("", "0")


def _source_tag() -> str:
    """A short hash of this package's sources: part of every specialisation's cache name,
    so that a change to any device function (numba's cache tracks only the kernel's own
    file) compiles afresh instead of loading a stale kernel."""
    h = hashlib.sha256()
    for f in sorted(Path(__file__).resolve().parent.glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


SOURCE_TAG = _source_tag()


def specialise(template, key: tuple, namespace: dict, max_registers: int | None = None):
    """A kernel compiled from `template`, a module-level function, with the names of
    `namespace` (compile-time constants, device functions) bound as its globals.

    Specialisations are not closures: numba-cuda's cache key hashes a kernel's bytecode,
    its closure cells (pickled: these differ from process to process for device
    functions, so a closure never hits the cache) and its signature, and names the cache
    file after the function's module, qualified name and line.  So each specialisation is
    a new function object on the template's code, with no closure and a qualified name
    made of the template's name, `key` (its compile-time constants) and `SOURCE_TAG`:
    its cache key is the same in every process, and two specialisations never share a
    cache file.  max_registers: ptxas's register cap (``cuda.jit(max_registers=)``)."""
    g = dict(template.__globals__)
    g.update(namespace)
    f = _pytypes.FunctionType(template.__code__, g, template.__name__,
                              template.__defaults__)
    f.__qualname__ = "__".join([template.__name__, *map(str, key), SOURCE_TAG])
    f.__module__, f.__doc__ = template.__module__, template.__doc__
    opts = {} if SIMULATOR or max_registers is None else {"max_registers": max_registers}
    return cuda.jit(cache=CACHE, **opts)(f)


def cache_name(kernel) -> str:
    """The qualified name numba-cuda's cache files of a `specialise`d kernel carry."""
    return getattr(kernel, "py_func", kernel).__qualname__


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


@cuda.jit(cache=CACHE)
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


@cuda.jit(cache=CACHE)
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


@cuda.jit(cache=CACHE)
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


@cuda.jit(cache=CACHE)
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


@cuda.jit(cache=CACHE)
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


@cuda.jit(cache=CACHE)
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


def _mask_block(pout, bout, n, base, shape, gstrides, seed, stream, bits, t, want_p, want_b):
    """`mask_block_kernel`'s template."""
    nunits = (n + U7) >> U3
    u = U(cuda.grid(1))
    step = U(cuda.gridsize(1))
    while u < nunits:
        i0 = u << U3
        cnt = n - i0
        if cnt > U8:
            cnt = U8
        byte = block_keep_byte(seed, stream, i0, cnt, bits, t, base, shape, gstrides,
                               S_SMALL)
        if want_p:
            pout[u] = np.uint8(byte)
        if want_b:
            for kk in range(cnt):
                bout[i0 + U(kk)] = ((byte >> U(kk)) & U1) != U0
        u += step


@functools.lru_cache(maxsize=None)
def mask_block_kernel(small: bool = False):
    """k_mask for a block of a larger array: element i (C order over `shape`) takes draw
    base + sum(coord_k(i) * gstrides_k); the outputs are in the block's own C order.
    small: n < 2^32 (32-bit divisions)."""
    return specialise(_mask_block, ("mask_block", bool(small)), dict(S_SMALL=bool(small)))


# ---- layout kernels -----------------------------------------------------------------------------


@cuda.jit(cache=CACHE)
def k_gather(dst, src, n, base, shape, strides):
    """dst[i] = src[base + sum(coord_k(i) * strides_k)]: a strided view, C order."""
    i = U(cuda.grid(1))
    step = U(cuda.gridsize(1))
    while i < n:
        dst[i] = src[strided_offset(i, base, shape, strides)]
        i += step


@cuda.jit(cache=CACHE)
def k_scatter(dst, src, n, base, shape, strides):
    """The inverse of k_gather: write a C-order buffer into a strided view."""
    i = U(cuda.grid(1))
    step = U(cuda.gridsize(1))
    while i < n:
        dst[strided_offset(i, base, shape, strides)] = src[i]
        i += step


# ---- per-dtype kernels ---------------------------------------------------------------------------


@dev
def _row_offset32(row, shape, strides):
    """`_device.row_offset` in 32-bit arithmetic (every index and offset below 2^32), a loop the
    compiler keeps rolled: from the innermost leading axis outwards, while a coordinate is
    left (rem != 0: the outer coordinates are then 0 and add nothing) and an axis is left.
    One copy of a division, none once the row's remaining coordinates are 0; for
    row < prod(shape[:-1]) the same offset."""
    k = _u32(shape.size - 1)
    off = _u32(0)
    rem = _u32(row)
    while rem != _u32(0) and k != _u32(0):
        k = _u32(k - _u32(1))
        sh = _u32(shape[k])
        q = _u32(rem // sh)
        off = _u32(off + _u32(rem - q * sh) * _u32(strides[k]))
        rem = q
    return off


@dev
def _draw_row_offset32(row, shape, gstrides):
    """`_device.row_offset` of a block's draw strides (uint64, wrapping as the draw map
    does) for row < 2^32 and a shape below 2^32, the loop kept rolled as in
    `_row_offset32`."""
    k = _u32(shape.size - 1)
    off = U0
    rem = _u32(row)
    while rem != _u32(0) and k != _u32(0):
        k = _u32(k - _u32(1))
        sh = _u32(shape[k])
        q = _u32(rem // sh)
        off = off + U(_u32(rem - q * sh)) * gstrides[k]
        rem = q
    return off


@dev
def _block_byte32(seed, stream, i0, cnt, bits, t, base, shape, gstrides):
    """`_device.block_keep_byte` for a block of fewer than 2^32 elements (its draw
    indices stay uint64): one 32-bit division for the unit's first element, then the draw
    index is carried (+ the last axis' draw stride per element, a row offset at a row's
    end); the Philox block is reused while the draws stay in it (`stream_block32`, the
    same words as `stream_block`).  The loop stops at a stop bit, so the compiler keeps
    one copy of its body (one Philox block of registers)."""
    nd = shape.size
    L = _u32(shape[nd - 1])
    gl = gstrides[nd - 1]
    i = _u32(i0)
    row = _u32(i // L)
    c = _u32(i - row * L)
    left = _u32(L - c)                        # elements left in the row
    d = base + _draw_row_offset32(row, shape, gstrides) + U(c) * gl
    # draw d: block d >> bsh, word (d >> wsh) & 3, its bits from (d & sub) * bits
    if bits == U16:
        bsh, wsh, sub = U3, U1, U1
    elif bits == U8:
        bsh, wsh, sub = U(4), U2, U3
    else:
        bsh, wsh, sub = U2, U0, U0
    vmask = _u32((U1 << bits) - U1)
    byte = _u32(0)
    cur = NONE
    w0 = _u32(0)
    w1 = _u32(0)
    w2 = _u32(0)
    w3 = _u32(0)
    stop = _u32(_u32(1) << _u32(cnt))
    bit = _u32(1)
    while bit != stop:
        blk = d >> bsh
        if blk != cur:
            w0, w1, w2, w3 = stream_block32(seed, stream, blk)
            cur = blk
        r = _u32(pick4(w0, w1, w2, w3, _u32(d >> wsh) & _u32(3)))
        r = _u32(_u32(r >> _u32(_u32(d & sub) * _u32(bits))) & vmask)
        if U(r) >= t:
            byte = _u32(byte | bit)
        bit = _u32(bit << _u32(1))
        d = d + gl
        left = _u32(left - _u32(1))
        if left == _u32(0):
            left = L
            row = _u32(row + _u32(1))
            d = base + _draw_row_offset32(row, shape, gstrides)
    return byte


# Templates of the per-dtype kernels, specialised by `specialise`: the names below are
# placeholders for their compile-time constants and device functions.
s_load = s_store = s_mul = s_add = s_gauss = s_store64 = None
S_ZERO = None
S_OP = S_KS = 0
S_GMAP = S_BIAS = S_SMALL = False
s_ix = np.uint64
S_FULL = True


def _dropout(y, x, bias, res, pin, fin, pout, bout, n, ncols, seed, stream, bits, t,
             s, a, c, d, want_p, want_b, nshape, nstrides, base, gshape, gstrides):
    """`dropout_kernel`'s template (see there)."""
    nunits = (n + U7) >> U3
    small = S_SMALL                       # every index fits in 32 bits
    u = U(cuda.grid(1))
    step = U(cuda.gridsize(1))
    col = s_ix(0)                         # (s_ix: uint32 when small, else uint64)
    cstep = s_ix(0)
    nc = s_ix(ncols)
    # the bias column of the unit's first element, advanced without a division; with a
    # block map, divided per unit instead (after the draws: not live through the Philox
    # block, which leaves the kernel at 32 registers)
    bcarry = S_OP == OP_BDA and S_BIAS and not (S_GMAP and S_SMALL)
    if bcarry:
        col = s_ix(divmod_u(u << U3, ncols, small)[1])
        cstep = s_ix(divmod_u(step << U3, ncols, small)[1])
    L = U1
    nl = U0
    if not S_FULL:                        # the noise shape's last axis (coalesced)
        L = U(nshape[nshape.size - 1])
        nl = U(nstrides[nstrides.size - 1])
    while u < nunits:
        i0 = u << U3
        cnt = n - i0
        if cnt > U8:
            cnt = U8
        byte = U0
        if S_KS == KS_DRAWS:
            if S_GMAP and S_SMALL:
                byte = U(_block_byte32(seed, stream, i0, cnt, bits, t, base, gshape,
                                       gstrides))
            elif S_GMAP:
                byte = block_keep_byte(seed, stream, i0, cnt, bits, t, base, gshape,
                                       gstrides, small)
            else:
                byte = unit_keep_byte(seed, stream, u, cnt, bits, t)
            if want_p:
                pout[u] = np.uint8(byte)
        elif S_KS == KS_ALL:
            byte = U(0xFF)
        elif S_FULL:
            if S_KS == KS_PACKED:
                byte = U(pin[u])
            else:
                bit = _u32(1)             # a rolled loop, as the element loop below
                ib = s_ix(i0)
                while bit != _u32(_u32(1) << _u32(cnt)):
                    if fin[ib]:
                        byte = byte | U(bit)
                    bit = _u32(bit << _u32(1))
                    ib = s_ix(ib + s_ix(1))
        else:
            # a noise-shaped mask (ops SCALE and ALPHA): the noise index of element i0,
            # then advanced element by element (one division per unit and a row offset
            # per row, not one division per axis and element), each flag applied at once
            if S_SMALL:                   # every index in 32 bits: half the registers
                L32 = _u32(L)
                nl32 = _u32(nl)
                i32 = _u32(i0)
                row32 = _u32(i32 // L32)
                cc32 = _u32(i32 - row32 * L32)
                left = _u32(L32 - cc32)   # elements left in the row
                j32 = _u32(_row_offset32(row32, nshape, nstrides) + cc32 * nl32)
                st = _u32(_u32(1) << _u32(cnt))   # a stop bit: see the loop below
                while st != _u32(1):
                    if S_KS == KS_PACKED:
                        keep = ((_u32(pin[j32 >> _u32(3)]) >> (j32 & _u32(7)))
                                & _u32(1)) != _u32(0)
                    else:
                        keep = fin[j32]
                    xv = s_load(x[i32])
                    if S_OP == OP_ALPHA:
                        v = s_add(s_mul(xv, a), c) if keep else d
                    else:
                        v = s_mul(xv, s) if keep else S_ZERO
                    y[i32] = s_store(v)
                    st = _u32(st >> _u32(1))
                    i32 = _u32(i32 + _u32(1))
                    j32 = _u32(j32 + nl32)
                    left = _u32(left - _u32(1))
                    if left == _u32(0):
                        left = L32
                        row32 = _u32(row32 + _u32(1))
                        j32 = _row_offset32(row32, nshape, nstrides)
            else:
                row, cc = divmod_u(i0, L, small)
                jrow = row_offset(row, nshape, nstrides, small)
                for kk in range(cnt):
                    j = jrow + cc * nl
                    if S_KS == KS_PACKED:
                        keep = ((U(pin[j >> U3]) >> (j & U7)) & U1) != U0
                    else:
                        keep = fin[j]
                    i = i0 + U(kk)
                    xv = s_load(x[i])
                    if S_OP == OP_ALPHA:
                        v = s_add(s_mul(xv, a), c) if keep else d
                    else:
                        v = s_mul(xv, s) if keep else S_ZERO
                    y[i] = s_store(v)
                    cc = cc + U1
                    if cc == L:
                        cc = U0
                        row = row + U1
                        jrow = row_offset(row, nshape, nstrides, small)
            cnt = U0                      # done: skip the loop below
        bc = col
        if S_OP == OP_BDA and S_BIAS and not bcarry:
            bc = s_ix(_u32(i0) % _u32(ncols))
        # the flags left, the next one in bit 0, and a stop bit above them: the loop's
        # trip count is not an expression the compiler can unroll by (one copy of the
        # body, one element in flight: fewer registers than an unrolled loop)
        # (a packed mask's last byte may have bits set past the end: dropped)
        stop = _u32(_u32(1) << _u32(cnt))
        fl = _u32((_u32(byte) & _u32(stop - _u32(1))) | stop)
        i = s_ix(i0)
        while fl != _u32(1):
            keep = (fl & _u32(1)) != _u32(0)
            fl = _u32(fl >> _u32(1))
            if want_b:
                bout[i] = keep
            xv = s_load(x[i])
            if S_OP == OP_SCALE:
                v = s_mul(xv, s) if keep else S_ZERO
            elif S_OP == OP_ALPHA:
                v = s_add(s_mul(xv, a), c) if keep else d
            else:
                if S_BIAS:
                    uu = s_add(xv, s_load(bias[bc]))
                    bc = s_ix(bc + s_ix(1))
                    if bc == nc:
                        bc = s_ix(0)
                else:
                    uu = xv
                v = s_add(s_load(res[i]), s_mul(uu, s) if keep else S_ZERO)
            y[i] = s_store(v)
            i = s_ix(i + s_ix(1))
        if bcarry:
            col = s_ix(col + cstep)
            if col >= nc:
                col = s_ix(col - nc)
        u += step


@functools.lru_cache(maxsize=None)
def dropout_kernel(dtype_name: str, op: int, ks: int, gmap: bool = False,
                   full: bool = True, has_bias: bool = False, small: bool = False):
    """The fused elementwise kernel of dtype `dtype_name`, op and keep source, with the
    compile-time constants gmap (KS_DRAWS only: x is a block of a larger array, whose
    element i draws ``draw_index(i, base, gshape, gstrides)`` instead of i), full (the
    mask has x's own shape; else ``nshape``/``nstrides`` give x's shape and the noise
    mask's strides, 0 on the broadcast axes, coalesced), has_bias (OP_BDA) and small
    (n < 2^32: every division of an index is 32-bit, and the 64-bit division routine is
    not in the kernel at all), so each specialisation keeps only its own branches.

    Per 8-element unit u: the keep flags come from the draws (straight-line for a unit's
    aligned draws, `unit_keep_byte`; through the block map otherwise) and are written to
    the packed / bool mask outputs, or from a packed or bool mask (indexed in the noise
    shape when not full), or are all set; then per element, in the compute precision:
    OP_SCALE ``x * s`` or +0; OP_ALPHA ``x * a + c`` or d; OP_BDA
    ``res + ((x + bias) * s or +0)``; rounded once to the storage type.  Index math is
    hoisted out of the element loop: the bias column is computed once per thread and
    advanced (no ``i % ncols``; with a block map once per unit, so that it is not live
    through the Philox code), the noise and draw indices once per unit and advanced;
    divisions are 32-bit when n < 2^32.  The per-element loops end on a stop bit (the
    flags left shifted down to it), a trip count the compiler does not unroll by: one
    element in flight and one copy of the body, which keeps every n < 2^32
    specialisation at 32 registers or fewer without local memory or a call
    (tests/cuda/sass_check.py checks it).
    """
    load, store, mul, add, ct, _ = _CODECS[dtype_name]
    full = bool(full) or ks in (KS_DRAWS, KS_ALL)
    has_bias = bool(has_bias) and op == OP_BDA
    gmap = bool(gmap) and ks == KS_DRAWS
    small = bool(small) and (gmap or not full or has_bias)   # else no division at all
    return specialise(_dropout, ("dropout", dtype_name, op, ks, gmap, full, has_bias, small),
                      dict(s_load=load, s_store=store, s_mul=mul, s_add=add,
                           S_ZERO=ct(0.0), S_OP=op, S_KS=ks, S_GMAP=gmap, S_FULL=full,
                           S_BIAS=has_bias, S_SMALL=small,
                           s_ix=np.uint32 if small else np.uint64))


def _gaussian(y, x, n, seed, stream, sigma):
    """`gaussian_kernel`'s template."""
    nblocks = (n + U3) >> U2
    b = U(cuda.grid(1))
    step = U(cuda.gridsize(1))
    while b < nblocks:
        w0, w1, w2, w3 = stream_block(seed, stream, b)
        for kk in range(4):
            i = (b << U2) + U(kk)
            if i < n:
                y[i] = s_gauss(x[i], pick4(w0, w1, w2, w3, U(kk)), sigma)
        b += step


@functools.lru_cache(maxsize=None)
def gaussian_kernel(dtype_name: str):
    """y[i] = x[i] * ct(1 + sigma * z_i), z_i = normal_u32(word i); one Philox block
    (4 elements) per unit."""
    return specialise(_gaussian, ("gaussian", dtype_name),
                      dict(s_gauss=_gauss_element(dtype_name)))


def _gaussian_block(y, x, n, seed, stream, sigma, base, gshape, gstrides):
    """`gaussian_block_kernel`'s template."""
    nunits = (n + U3) >> U2
    small = S_SMALL
    nd = gshape.size
    L = U(gshape[nd - 1])
    gl = gstrides[nd - 1]
    u = U(cuda.grid(1))
    step = U(cuda.gridsize(1))
    while u < nunits:
        cur = NONE
        w0 = U0
        w1 = U0
        w2 = U0
        w3 = U0
        i0 = u << U2
        row, c = divmod_u(i0, L, small)              # hoisted: once per unit
        drow = base + row_offset(row, gshape, gstrides, small)
        for kk in range(4):
            i = i0 + U(kk)
            if i < n:
                r, cur, w0, w1, w2, w3 = cached_draw(seed, stream, drow + c * gl, U32, cur,
                                                     w0, w1, w2, w3)
                y[i] = s_gauss(x[i], r, sigma)
                c = c + U1
                if c == L:
                    c = U0
                    row = row + U1
                    drow = base + row_offset(row, gshape, gstrides, small)
        u += step


@functools.lru_cache(maxsize=None)
def gaussian_block_kernel(dtype_name: str, small: bool = False):
    """gaussian_kernel for a block of a larger array: element i takes word
    ``draw_index(i, base, gshape, gstrides)`` (computed once per 4-element unit and then
    advanced, as in `block_keep_byte`); the Philox block reused while the unit's words
    stay in it (`cached_draw`); small: n < 2^32 (32-bit divisions)."""
    return specialise(_gaussian_block, ("gaussian_block", dtype_name, bool(small)),
                      dict(s_gauss=_gauss_element(dtype_name), S_SMALL=bool(small)))


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


def _convert(dst, src, n):
    """`convert_kernel`'s template."""
    i = U(cuda.grid(1))
    step = U(cuda.gridsize(1))
    while i < n:
        dst[i] = s_store(s_load(src[i]))
        i += step


@functools.lru_cache(maxsize=None)
def convert_kernel(src_name: str, dst_name: str):
    """dst[i] = src[i] converted exactly as NumPy's astype (half <-> float32 only)."""
    return specialise(_convert, ("convert", src_name, dst_name),
                      dict(s_load=_CODECS[src_name][0], s_store=_CODECS[dst_name][1]))


# ---- dbias: column sums in NumPy's order ----------------------------------------------------
#
# bias_dropout_add_backward's dbias is ``v.reshape(-1, ncols).sum(axis=0)`` in float64 on
# the CPU, and must be the same bits here, so the GPU adds in NumPy's order:
#
# - ncols >= 2: per column, sequentially from +0.0, row after row.  That chain cannot be
#   reordered (float addition is not associative), so the parallelism is across columns
#   and in the loads: a block owns `width` consecutive columns, its threads stage tiles of
#   rows in shared memory (coalesced loads, many in flight; warps 1.. load the next tile
#   while warp 0 adds the current one), and one thread per column adds its column's
#   values in row order.  No local memory, no thread per column reading global memory one
#   row at a time.
# - ncols == 1: NumPy's pairwise summation (`_leaf`: blocks of at most 128 values with 8
#   accumulators; above 128 the halves split at ``n2 = n // 2 - (n // 2) % 8``), which is
#   a tree, so it is parallel: `k_pairwise_leaves` computes every leaf at once (thread j
#   walks the path of j's bits), `k_pairwise_combine` (one block) adds the children of
#   each inner node, level by level from the bottom, in the same pairs as NumPy.

#: float64 values of one shared-memory tile of the column sum (2 tiles: 32 KiB)
COLSUM_TILE = 2048
PW_BLOCK = U(128)


@dev
def _leaf(v, start, m):
    """NumPy's pairwise_sum of v[start .. start + m - 1] for m <= 128 (its leaf: a plain
    loop from 0 for m < 8, else 8 strided accumulators combined as
    ``((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))`` and the rest added in order)."""
    if m < U8:
        acc = 0.0
        for kk in range(m):
            acc = dadd(acc, np.float64(v[start + U(kk)]))
        return acc
    r0 = np.float64(v[start])
    r1 = np.float64(v[start + U1])
    r2 = np.float64(v[start + U2])
    r3 = np.float64(v[start + U3])
    r4 = np.float64(v[start + U(4)])
    r5 = np.float64(v[start + U(5)])
    r6 = np.float64(v[start + U(6)])
    r7 = np.float64(v[start + U7])
    i = U8
    while i < m - (m % U8):
        r0 = dadd(r0, np.float64(v[start + i]))
        r1 = dadd(r1, np.float64(v[start + i + U1]))
        r2 = dadd(r2, np.float64(v[start + i + U2]))
        r3 = dadd(r3, np.float64(v[start + i + U3]))
        r4 = dadd(r4, np.float64(v[start + i + U(4)]))
        r5 = dadd(r5, np.float64(v[start + i + U(5)]))
        r6 = dadd(r6, np.float64(v[start + i + U(6)]))
        r7 = dadd(r7, np.float64(v[start + i + U7]))
        i += U8
    acc = dadd(dadd(dadd(r0, r1), dadd(r2, r3)), dadd(dadd(r4, r5), dadd(r6, r7)))
    while i < m:
        acc = dadd(acc, np.float64(v[start + i]))
        i += U1
    return acc


@dev
def _split(m):
    """NumPy's split of a pairwise sum of m > 128 values: the first half's length."""
    n2 = m >> U1
    return n2 - (n2 & U7)


def pairwise_depth(n: int) -> int:
    """The depth of NumPy's pairwise-summation tree of n values (0: one leaf)."""
    sizes, depth = {n}, 0
    while any(m > 128 for m in sizes):
        nxt = set()
        for m in sizes:
            if m > 128:
                n2 = m // 2 - (m // 2) % 8
                nxt.update((n2, m - n2))
        sizes, depth = nxt, depth + 1
    return depth


@cuda.jit(cache=CACHE)
def k_pairwise_leaves(slots, v, n, depth):
    """Slot j (j < 2^depth, the leaf's path from the root in j's top bits, left = 0) of
    NumPy's pairwise tree of v[0 .. n - 1]: the leaf's sum, written by the one j whose
    remaining bits are 0 (other j under the same leaf write nothing)."""
    j = U(cuda.grid(1))
    step = U(cuda.gridsize(1))
    nslots = U1 << depth
    while j < nslots:
        start = U0
        m = n
        lv = U0
        while m > PW_BLOCK:
            n2 = _split(m)
            if (j >> (depth - U1 - lv)) & U1:
                start = start + n2
                m = m - n2
            else:
                m = n2
            lv = lv + U1
        if (j & ((U1 << (depth - lv)) - U1)) == U0:
            slots[j] = _leaf(v, start, m)
        j += step


def _pairwise_combine(out, slots, n, depth):
    """`k_pairwise_combine`'s template."""
    tid = U(cuda.threadIdx.x)
    nt = U(cuda.blockDim.x)
    lvl = depth
    while lvl > U0:
        lvl = lvl - U1                      # the inner nodes at depth lvl, bottom first
        p = tid
        while p < (U1 << lvl):
            m = n
            d = U0
            inner = True
            while d < lvl:                  # walk to node p (lvl bits, left = 0)
                if m <= PW_BLOCK:
                    inner = False           # under a leaf: no such node
                    break
                n2 = _split(m)
                m = m - n2 if (p >> (lvl - U1 - d)) & U1 else n2
                d = d + U1
            if inner and m > PW_BLOCK:
                sh = depth - lvl
                left = p << sh
                slots[left] = dadd(slots[left], slots[left | (U1 << (sh - U1))])
            p += nt
        cuda.syncthreads()
    if tid == U0 and cuda.blockIdx.x == 0:
        out[0] = s_store64(dadd(0.0, slots[0]))


@dev
def _load_tile(buf, b, v, first_row, nrows, ncols, cb, cw, lw, t0, nt):
    """Threads t0, t0 + nt, ... (tile-local indices) copy rows first_row .. of columns
    cb .. cb + cw - 1 of v into tile b of buf (float64), ``idx = r * width + c``: a
    warp reads 32 / width rows of width consecutive values per instruction."""
    rows = nrows - first_row if first_row < nrows else U0
    rows_per = U(COLSUM_TILE) >> U(lw)
    if rows > rows_per:
        rows = rows_per
    end = _u32(rows) << lw                 # the tile's filled part only
    idx = t0
    while idx < end:
        r = idx >> lw
        cc = idx & ((_u32(1) << lw) - _u32(1))
        if cc < cw:
            buf[b, idx] = np.float64(v[(first_row + U(r)) * ncols + cb + U(cc)])
        idx = _u32(idx + nt)


def _colsum(out, v, nrows, ncols, lw):
    """`colsum_kernel`'s template: block g owns columns g*width .. g*width + width - 1
    (``width = 2^lw``; grid-stride over column groups); see the section comment."""
    tid = _u32(cuda.threadIdx.x)
    nt = _u32(cuda.blockDim.x)
    buf = cuda.shared.array((2, COLSUM_TILE), np.float64)
    split = nt > _u32(32)                   # warps 1.. load while warp 0 adds
    width = U1 << U(lw)
    rows_per = U(COLSUM_TILE) >> U(lw)
    ntiles = (nrows + rows_per - U1) >> (U(11) - U(lw))   # COLSUM_TILE = 2^11
    g = U(cuda.blockIdx.x)
    while g * width < ncols:
        cb = g * width
        cw = _u32(width if ncols - cb > width else ncols - cb)
        acc = 0.0
        _load_tile(buf, 0, v, U0, nrows, ncols, cb, cw, lw, tid, nt)   # by everyone
        cuda.syncthreads()
        for k in range(ntiles):
            kk = U(k)
            nb = _u32((kk + U1) & U1)
            nxt = (kk + U1) * rows_per
            more = kk + U1 < ntiles
            if split and more and tid >= _u32(32):
                _load_tile(buf, nb, v, nxt, nrows, ncols, cb, cw, lw, _u32(tid - _u32(32)),
                           _u32(nt - _u32(32)))
            if tid < cw:
                rows = nrows - kk * rows_per
                if rows > rows_per:
                    rows = rows_per
                cur = _u32(kk & U1)
                for r in range(_u32(rows)):
                    acc = dadd(acc, buf[cur, (_u32(r) << lw) + tid])
            if more and not split:
                _load_tile(buf, nb, v, nxt, nrows, ncols, cb, cw, lw, tid, nt)
            cuda.syncthreads()
        if tid < cw:
            out[cb + U(tid)] = s_store64(acc)
        g += U(cuda.gridDim.x)


@functools.lru_cache(maxsize=None)
def colsum_kernel(dtype_name: str):
    """dbias for ncols >= 2: out[c] = sum over rows r of v[r * ncols + c] (float64, from
    +0.0, row after row: NumPy's ``v.reshape(-1, ncols).sum(axis=0)``), rounded once to
    `dtype_name`.  Arguments ``out, v, nrows, ncols, lw``: blocks of at least
    ``width = 2^lw`` threads (`colsum_width`)."""
    return specialise(_colsum, ("colsum", dtype_name),
                      dict(s_store64=_CODECS[dtype_name][5]))


@functools.lru_cache(maxsize=None)
def pairwise_combine_kernel(dtype_name: str):
    """dbias for ncols == 1, after `k_pairwise_leaves`: one block adds the tree's inner
    nodes level by level and stores ``+0.0 + root``, rounded once to `dtype_name`."""
    return specialise(_pairwise_combine, ("pairwise_combine", dtype_name),
                      dict(s_store64=_CODECS[dtype_name][5]))


def colsum_width(threads: int) -> int:
    """Columns per block of `colsum_kernel` for blocks of `threads` threads: 8 (a 32-byte
    segment of float32 per row, and ncols / 8 blocks), fewer for tiny test blocks."""
    w = 8
    while w > threads:
        w //= 2
    return w


def column_sums(out, v, nrows: int, ncols: int, dtype_name: str, stream):
    """Launch the dbias reduction: out[c] = NumPy's float64 column sum of the (nrows,
    ncols) C-order matrix v, rounded to `dtype_name` (see the section comment)."""
    if ncols == 0:
        return
    if ncols >= 2 or nrows == 0:
        forced = forced_geometry()
        # (the simulator runs every thread in Python, its barriers slowly: 8 there)
        threads = forced[1] if forced else (8 if SIMULATOR else DEFAULT_THREADS)
        width = colsum_width(threads)
        groups = (ncols + width - 1) // width
        blocks = forced[0] if forced else max(1, min(1 if SIMULATOR else MAX_BLOCKS, groups))
        colsum_kernel(dtype_name)[blocks, threads, stream](out, v, U(nrows), U(ncols),
                                                           np.uint32(width.bit_length() - 1))
        return
    depth = pairwise_depth(nrows)
    slots = cuda.device_array(1 << depth, np.float64, stream=stream)
    launch(k_pairwise_leaves, 1 << depth, stream, slots, v, U(nrows), U(depth))
    forced = forced_geometry()
    threads = forced[1] if forced else (DEFAULT_THREADS if SIMULATOR else 1024)
    pairwise_combine_kernel(dtype_name)[1, threads, stream](out, slots, U(nrows), U(depth))


@cuda.jit(cache=CACHE)
def k_copy(dst, src, n):
    """dst[i] = src[i], bits unchanged."""
    i = U(cuda.grid(1))
    step = U(cuda.gridsize(1))
    while i < n:
        dst[i] = src[i]
        i += step
