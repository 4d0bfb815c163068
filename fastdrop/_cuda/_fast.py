"""The fast path: dropout kernels specialised for contiguous, 16-byte-aligned arrays.

`forward_kernel(dtype, op, bits, want_packed)` is the forward pass (and the backward pass
from the seed, which is the same computation on the gradient) of dropout and alpha dropout
when the keep flags come from the draws, with no noise shape, no ``block=`` and no bool
mask: ``x`` and ``y`` are C-contiguous (x may be a gathered temporary) and start at
16-byte-aligned addresses.  `masked_kernel(dtype)` is the backward from a packed mask of
x's own shape; `bda_kernel(dtype, bits, packed, has_bias)` the bias-dropout-add forward
(ncols % 8 == 0 with a bias, n % 8 == 0).  `backend._run` routes such requests here
(`try_forward`, `try_masked`, `try_bda`, whose checks are `fast_plan`'s); the general
kernels of `_kernels` keep everything else (strided outputs, noise shapes, blocks, bool
masks, misaligned views, bias-dropout-add with other column counts).

What makes it fast, against `_kernels.dropout_kernel`:

- dtype, op, bits and the packed-mask output are compile-time constants (closures), so
  each specialisation is straight-line code with no run-time flag;
- one unit is 8 consecutive elements (one byte of the packed mask): its data travel in
  16-byte vector accesses (``ld.global.v4.u32`` / ``st.global.v4.u32``: 1 for float16 and
  bfloat16, 2 for float32, 4 for float64), every load of a unit is issued before any of
  its stores (float64 bias-dropout-add: of each half of a unit, `_bda_halves`), and the
  mask byte is one ``st.global.u8``;
- Philox4x32-10 runs on 32-bit words (the products are ``mul.wide.u32``); one block per
  unit at bits=16, two at bits=32, and at bits=8 one block per *two* units (an iteration
  is 16 elements, `_forward_b8`; float64 and bias-dropout-add take half a block per unit
  instead, `keep8h`); the counter's high word is 0 (the route requires fewer than 2^31
  units, so every block index fits in 32 bits);
- keep flags are compares against ``T = t << (32 - bits)`` (a half word ``h >= t`` is
  ``w >= T`` for the high half and ``(w << 16) >= T`` for the low one); every element is
  a select between the product and the dropped value (no branch); the route requires
  ``t < 2^bits`` (p = 1 goes to the general kernel);
- 32-bit unit indices and a grid of about one wave (`fast_geometry`) with a grid-stride
  loop;
- half types convert with ``cvt.f32.f16`` and the packing ``cvt.rn.{f16x2,bf16x2}.f32``
  (round to nearest even, as fd_half.h), which need sm_80 or later (`fast_plan` checks).

The kernels take uint64 device addresses (no array views per call, few parameters).
Each kernel family is a module-level template (`_forward`, `_forward_b8`, `_masked`,
`_bda`, `_tail`, `_masked_tail`) specialised by `_kernels.specialise` (closure-free, so
numba-cuda's compile cache, ``cache=True``, finds it again in the next process).
The elements past the last whole iteration (fewer than 8, or 16 at bits=8) are done by
`tail_kernel` / `masked_tail_kernel`, one thread with the general device functions.
`warm_up` compiles every specialisation ahead of its first call; `set_enabled(False)`
turns the route off.

The vector accesses and conversions are Numba intrinsics written in LLVM IR (llvmlite),
which the CUDA simulator cannot run: under the simulator (`SIMULATOR`) the same names are
plain-Python twins (word by word, through `_device`'s bit-exact conversions), so the
simulator tests check the arithmetic and the unit/draw mapping, and
``tests/cuda/sass_check.py`` checks the compiled code (vector widths, no scalar data
access, registers, instructions per unit) from PTX -> ptxas -> nvdisasm, without a GPU.
"""
from __future__ import annotations

import functools

import numpy as np

from .._core.ops import Op
from ._device import (MASK32, U, f16_to_f32, f32_to_bf16, f32_to_f16, keep_byte,
                      philox10_32)
from ._env import SIMULATOR, cuda
from ._fp import bits_f32, bits_f64, dadd, dmul, f32_bits, f64_bits, fadd, fmul
from . import _kernels as K

__all__ = ["forward_kernel", "tail_kernel", "masked_kernel", "masked_tail_kernel",
           "bda_kernel", "fast_plan", "fast_geometry", "try_forward", "try_masked", "try_bda",
           "warm_up", "cache_stats",
           "set_enabled", "launches", "units_of", "per_iteration", "UNIT_WORDS", "DTYPES",
           "OPS", "MAX_UNITS"]

#: uint32 words of one 8-element unit, per dtype
UNIT_WORDS = {"float16": 4, "bfloat16": 4, "float32": 8, "float64": 16}
DTYPES = tuple(UNIT_WORDS)
#: ops of the fast path (bias-dropout-add keeps the general kernel)
OPS = (int(Op.DROPOUT), int(Op.ALPHA))
#: the fast path's units are uint32, and so are its Philox block indices (2 per unit at
#: bits=32)
MAX_UNITS = 2 ** 31 - 1
#: threads per block of the fast kernels (simulator: tiny, as in _kernels)
THREADS = 32 if SIMULATOR else 256

dev = cuda.jit(device=True)
_u32 = np.uint32
U16, U32 = U(16), U(32)
HI16 = U(0xFFFF0000)


@dev
def _f64_of(lo, hi):
    """The float64 whose bits are the words (lo, hi)."""
    return bits_f64((U(hi) << U32) | U(lo))


@dev
def _lo32(v):
    """The low word of float64 v's bits."""
    return _u32(f64_bits(v) & MASK32)


@dev
def _hi32(v):
    """The high word of float64 v's bits."""
    return _u32(f64_bits(v) >> U32)


# ---- intrinsics: 16-byte accesses and half conversions ------------------------------------

if SIMULATOR:
    def _make_ld16(unit_words: int, j: int):
        def ld16(arr, u):
            """Words 4j .. 4j + 3 of unit u of arr (a uint32 view under the simulator)."""
            b = int(u) * unit_words + 4 * j
            return (_u32(arr[b]), _u32(arr[b + 1]), _u32(arr[b + 2]), _u32(arr[b + 3]))
        return ld16

    def _make_st16(unit_words: int, j: int):
        def st16(arr, u, w0, w1, w2, w3):
            b = int(u) * unit_words + 4 * j
            arr[b] = w0
            arr[b + 1] = w1
            arr[b + 2] = w2
            arr[b + 3] = w3
        return st16

    def st8(arr, u, byte):
        """Byte u of arr (the packed mask)."""
        arr[u] = np.uint8(byte)

    def ld8(arr, u):
        """Byte u of arr (the packed mask), as uint32."""
        return _u32(arr[u])

    def f16x2_to_f32(w):
        """(low half, high half) of a word holding two float16, as float32 (exact)."""
        return f16_to_f32(U(w) & U(0xFFFF)), f16_to_f32(U(w) >> U16)

    def f32_to_f16x2(lo, hi):
        """Two float32 rounded to nearest even as float16, packed (lo in bits 0-15)."""
        return _u32(int(f32_to_f16(lo)) | (int(f32_to_f16(hi)) << 16))

    def f32_to_bf16x2(lo, hi):
        return _u32(int(f32_to_bf16(lo)) | (int(f32_to_bf16(hi)) << 16))

else:
    from llvmlite import ir
    from numba import types
    try:
        from numba.cuda.extending import intrinsic
    except ImportError:  # pragma: no cover - numba-cuda before numba.cuda.extending
        from numba.core.extending import intrinsic

    _I8, _I16, _I32, _I64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
    _V4 = ir.VectorType(_I32, 4)
    _F32 = ir.FloatType()

    def _global_pointer(context, builder, aryty, ary, u, uty, byte_offset: int,
                        unit_bytes: int, pointee):
        """``pointee addrspace(1)*`` to byte ``u * unit_bytes + byte_offset`` of an
        array's data, or of memory at a uint64 device address (the fast route passes
        addresses: no array views, fewer kernel parameters); u is a 32-bit unit index,
        zero-extended (one mul.wide.u32)."""
        if isinstance(aryty, types.Integer):
            addr = context.cast(builder, ary, aryty, types.uint64)
            base = builder.inttoptr(addr, _I8.as_pointer())
        else:
            a = context.make_array(aryty)(context, builder, value=ary)
            base = builder.bitcast(a.data, _I8.as_pointer())
        u64 = context.cast(builder, u, uty, types.uint64)
        off = builder.add(builder.mul(u64, ir.Constant(_I64, unit_bytes)),
                          ir.Constant(_I64, byte_offset))
        p = builder.gep(base, [off], inbounds=True)
        p = builder.bitcast(p, pointee.as_pointer())
        return builder.addrspacecast(p, pointee.as_pointer(addrspace=1))

    def _global_v4_pointer(context, builder, aryty, ary, u, uty, byte_offset: int,
                           unit_bytes: int):
        return _global_pointer(context, builder, aryty, ary, u, uty, byte_offset,
                               unit_bytes, _V4)

    @intrinsic
    def ld8(typingctx, arr, u):
        """``ld.global.u8``: byte u of arr (an array or a device address), as uint32."""
        sig = types.uint32(arr, u)

        def codegen(context, builder, sig, args):
            p = _global_pointer(context, builder, sig.args[0], args[0], args[1],
                                sig.args[1], 0, 1, _I8)
            return builder.zext(builder.load(p), _I32)

        return sig, codegen

    @intrinsic
    def st8(typingctx, arr, u, byte):
        """``st.global.u8``: byte u of arr (an array or a device address)."""
        sig = types.void(arr, u, byte)

        def codegen(context, builder, sig, args):
            p = _global_pointer(context, builder, sig.args[0], args[0], args[1],
                                sig.args[1], 0, 1, _I8)
            b = builder.trunc(context.cast(builder, args[2], sig.args[2], types.uint32), _I8)
            builder.store(b, p)
            return context.get_dummy_value()

        return sig, codegen

    def _make_ld16(unit_words: int, j: int):
        @intrinsic
        def ld16(typingctx, arr, u):
            """``ld.global.v4.u32``: words 4j .. 4j + 3 of unit u of arr (any dtype)."""
            sig = types.UniTuple(types.uint32, 4)(arr, u)

            def codegen(context, builder, sig, args):
                p = _global_v4_pointer(context, builder, sig.args[0], args[0], args[1],
                                       sig.args[1], 16 * j, 4 * unit_words)
                v = builder.load(p, align=16)
                vals = [builder.extract_element(v, ir.Constant(_I32, k)) for k in range(4)]
                return context.make_tuple(builder, sig.return_type, vals)

            return sig, codegen
        return ld16

    def _make_st16(unit_words: int, j: int):
        @intrinsic
        def st16(typingctx, arr, u, w0, w1, w2, w3):
            """``st.global.v4.u32``: words 4j .. 4j + 3 of unit u of arr."""
            sig = types.void(arr, u, w0, w1, w2, w3)

            def codegen(context, builder, sig, args):
                p = _global_v4_pointer(context, builder, sig.args[0], args[0], args[1],
                                       sig.args[1], 16 * j, 4 * unit_words)
                v = ir.Constant(_V4, ir.Undefined)
                for k in range(4):
                    w = context.cast(builder, args[2 + k], sig.args[2 + k], types.uint32)
                    v = builder.insert_element(v, w, ir.Constant(_I32, k))
                builder.store(v, p, align=16)
                return context.get_dummy_value()

            return sig, codegen
        return st16

    @intrinsic
    def f16x2_to_f32(typingctx, w):
        """(low half, high half) of a word holding two float16, as float32:
        ``cvt.f32.f16`` (exact)."""
        sig = types.UniTuple(types.float32, 2)(w)

        def codegen(context, builder, sig, args):
            x = context.cast(builder, args[0], sig.args[0], types.uint32)
            halves = (builder.trunc(x, _I16),
                      builder.trunc(builder.lshr(x, ir.Constant(_I32, 16)), _I16))
            vals = [builder.fpext(builder.bitcast(h, ir.HalfType()), _F32) for h in halves]
            return context.make_tuple(builder, sig.return_type, vals)

        return sig, codegen

    def _pack_cvt(kind: str):
        @intrinsic
        def pack(typingctx, lo, hi):
            """``cvt.rn.{kind}x2.f32``: two float32 rounded to nearest even, packed (lo in
            bits 0-15)."""
            sig = types.uint32(lo, hi)

            def codegen(context, builder, sig, args):
                a = context.cast(builder, args[1], sig.args[1], types.float32)
                b = context.cast(builder, args[0], sig.args[0], types.float32)
                fn = ir.FunctionType(_I32, [_F32, _F32])
                asm = ir.InlineAsm(fn, f"cvt.rn.{kind}x2.f32 $0, $1, $2;", "=r,f,f")
                return builder.call(asm, [a, b])   # $1 -> the high half, $2 -> the low

            return sig, codegen
        return pack

    f32_to_f16x2 = _pack_cvt("f16")
    f32_to_bf16x2 = _pack_cvt("bf16")


# ---- Philox4x32-10 on 32-bit words ----------------------------------------------------------


@dev
def _ge(w, T):
    """w >= T as 0 or 1 (uint32)."""
    return _u32(1) if _u32(w) >= _u32(T) else _u32(0)


@dev
def _low_ge(w, T):
    """(low half of w) >= (T >> 16), i.e. (w << 16) >= T, as 0 or 1."""
    return _ge(_u32((U(w) << U16) & MASK32), T)


@dev
def keep16(u, sk0, sk1, st0, st1, T):
    """Keep flags (0/1) of the 8 draws of unit u at bits=16: one Philox block, half words
    low half first."""
    r0, r1, r2, r3 = philox10_32(u, _u32(0), st0, st1, sk0, sk1)
    return (_low_ge(r0, T), _ge(r0, T), _low_ge(r1, T), _ge(r1, T),
            _low_ge(r2, T), _ge(r2, T), _low_ge(r3, T), _ge(r3, T))


@dev
def keep32(u, sk0, sk1, st0, st1, T):
    """Keep flags (0/1) of the 8 draws of unit u at bits=32: Philox blocks 2u and 2u+1."""
    b = _u32((U(u) << U(1)) & MASK32)
    a0, a1, a2, a3 = philox10_32(b, _u32(0), st0, st1, sk0, sk1)
    b0, b1, b2, b3 = philox10_32(_u32(b | _u32(1)), _u32(0), st0, st1, sk0, sk1)
    return (_ge(a0, T), _ge(a1, T), _ge(a2, T), _ge(a3, T),
            _ge(b0, T), _ge(b1, T), _ge(b2, T), _ge(b3, T))


@dev
def _bytes_ge(w, T):
    """Flags (0/1) of the 4 bytes of w, least significant first, each against T >> 24
    (``(w << (24 - 8b)) >= T`` for byte b: T's low 24 bits are 0)."""
    return (_ge(_u32((U(w) << U(24)) & MASK32), T), _ge(_u32((U(w) << U16) & MASK32), T),
            _ge(_u32((U(w) << U(8)) & MASK32), T), _ge(w, T))


@dev
def keep8x2(v, sk0, sk1, st0, st1, T):
    """Keep flags (0/1) of the 16 draws of Philox block v at bits=8 (contract section 3:
    draw 16v + k is byte k % 4 of word k // 4, least significant first): 8-element units
    2v and 2v + 1."""
    r0, r1, r2, r3 = philox10_32(v, _u32(0), st0, st1, sk0, sk1)
    a0, a1, a2, a3 = _bytes_ge(r0, T)
    a4, a5, a6, a7 = _bytes_ge(r1, T)
    b0, b1, b2, b3 = _bytes_ge(r2, T)
    b4, b5, b6, b7 = _bytes_ge(r3, T)
    return (a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7)


@dev
def keep8h(u, sk0, sk1, st0, st1, T):
    """Keep flags (0/1) of the 8 draws of unit u at bits=8: half of Philox block u >> 1
    (words 0-1 for an even unit, 2-3 for an odd one, chosen by selects).  Used where a
    kernel steps by 8-element units (bias-dropout-add): a whole block per unit, as at
    bits=16."""
    r0, r1, r2, r3 = philox10_32(_u32(u >> _u32(1)), _u32(0), st0, st1, sk0, sk1)
    odd = (u & _u32(1)) != _u32(0)
    wa = r2 if odd else r0
    wb = r3 if odd else r1
    a0, a1, a2, a3 = _bytes_ge(wa, T)
    a4, a5, a6, a7 = _bytes_ge(wb, T)
    return a0, a1, a2, a3, a4, a5, a6, a7


@dev
def _byte(k0, k1, k2, k3, k4, k5, k6, k7):
    """The packed-mask byte of 8 keep flags (bit k: element k)."""
    return _u32(k0 | (k1 << _u32(1)) | (k2 << _u32(2)) | (k3 << _u32(3)) | (k4 << _u32(4))
                | (k5 << _u32(5)) | (k6 << _u32(6)) | (k7 << _u32(7)))


# ---- per dtype: the 8 values of a unit --------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _codec8(dtype_name: str):
    """(load8(x, u) -> 8 compute-type values, store8(y, u, v0..v7)) of a dtype."""
    words = UNIT_WORDS[dtype_name]
    ld = [_make_ld16(words, j) for j in range(words // 4)]
    st = [_make_st16(words, j) for j in range(words // 4)]

    if dtype_name == "float32":
        ld0, ld1 = ld
        st0, st1 = st

        @dev
        def load8(x, u):
            a0, a1, a2, a3 = ld0(x, u)
            a4, a5, a6, a7 = ld1(x, u)
            return (bits_f32(a0), bits_f32(a1), bits_f32(a2), bits_f32(a3),
                    bits_f32(a4), bits_f32(a5), bits_f32(a6), bits_f32(a7))

        @dev
        def store8(y, u, v0, v1, v2, v3, v4, v5, v6, v7):
            st0(y, u, _u32(f32_bits(v0)), _u32(f32_bits(v1)), _u32(f32_bits(v2)),
                _u32(f32_bits(v3)))
            st1(y, u, _u32(f32_bits(v4)), _u32(f32_bits(v5)), _u32(f32_bits(v6)),
                _u32(f32_bits(v7)))

    elif dtype_name == "float64":
        ld0, ld1, ld2, ld3 = ld
        st0, st1, st2, st3 = st
        f64, lo32, hi32 = _f64_of, _lo32, _hi32

        @dev
        def load8(x, u):
            a0, a1, a2, a3 = ld0(x, u)
            a4, a5, a6, a7 = ld1(x, u)
            a8, a9, a10, a11 = ld2(x, u)
            a12, a13, a14, a15 = ld3(x, u)
            return (f64(a0, a1), f64(a2, a3), f64(a4, a5), f64(a6, a7),
                    f64(a8, a9), f64(a10, a11), f64(a12, a13), f64(a14, a15))

        @dev
        def store8(y, u, v0, v1, v2, v3, v4, v5, v6, v7):
            st0(y, u, lo32(v0), hi32(v0), lo32(v1), hi32(v1))
            st1(y, u, lo32(v2), hi32(v2), lo32(v3), hi32(v3))
            st2(y, u, lo32(v4), hi32(v4), lo32(v5), hi32(v5))
            st3(y, u, lo32(v6), hi32(v6), lo32(v7), hi32(v7))

    else:
        (ld0,), (st0,) = ld, st
        pack = f32_to_f16x2 if dtype_name == "float16" else f32_to_bf16x2

        if dtype_name == "float16":
            @dev
            def pair(w):
                return f16x2_to_f32(w)
        else:
            @dev
            def pair(w):
                return bits_f32((U(w) << U16) & MASK32), bits_f32(U(w) & HI16)

        @dev
        def load8(x, u):
            a0, a1, a2, a3 = ld0(x, u)
            v0, v1 = pair(a0)
            v2, v3 = pair(a1)
            v4, v5 = pair(a2)
            v6, v7 = pair(a3)
            return v0, v1, v2, v3, v4, v5, v6, v7

        @dev
        def store8(y, u, v0, v1, v2, v3, v4, v5, v6, v7):
            st0(y, u, pack(v0, v1), pack(v2, v3), pack(v4, v5), pack(v6, v7))

    return load8, store8


@functools.lru_cache(maxsize=None)
def _halves_f64():
    """(load_a, store_a, load_b, store_b) of float64: the 4 values of a unit's first half
    (words 0-7: two 16-byte accesses) and of its second half (words 8-15), for
    `_bda_halves`."""
    ld = [_make_ld16(16, j) for j in range(4)]
    st = [_make_st16(16, j) for j in range(4)]
    f64, lo32, hi32 = _f64_of, _lo32, _hi32

    def half(ld0, ld1, st0, st1):
        @dev
        def load4(x, u):
            a0, a1, a2, a3 = ld0(x, u)
            a4, a5, a6, a7 = ld1(x, u)
            return f64(a0, a1), f64(a2, a3), f64(a4, a5), f64(a6, a7)

        @dev
        def store4(y, u, v0, v1, v2, v3):
            st0(y, u, lo32(v0), hi32(v0), lo32(v1), hi32(v1))
            st1(y, u, lo32(v2), hi32(v2), lo32(v3), hi32(v3))

        return load4, store4

    return half(ld[0], ld[1], st[0], st[1]) + half(ld[2], ld[3], st[2], st[3])


@functools.lru_cache(maxsize=None)
def _element(dtype_name: str, op: int):
    """elem(xv, keep, s, a, c, d): one element in the compute precision, branch-free:
    DROPOUT ``x * s`` or +0, ALPHA ``x * a + c`` or d."""
    ct = K.compute_type(dtype_name)
    mul, add = (dmul, dadd) if ct is np.float64 else (fmul, fadd)
    zero = ct(0.0)

    if op == int(Op.DROPOUT):
        @dev
        def elem(xv, keep, s, a, c, d):
            v = mul(xv, s)
            return v if keep != _u32(0) else zero
    else:
        @dev
        def elem(xv, keep, s, a, c, d):
            v = add(mul(xv, a), c)
            return v if keep != _u32(0) else d
    return elem


@functools.lru_cache(maxsize=None)
def _bda_element(dtype_name: str, has_bias: bool):
    """elem(xv, bv, rv, keep, s): bias-dropout-add's ``res + ((x + bias) * s or +0)`` in
    the compute precision (contract section 7), branch-free."""
    ct = K.compute_type(dtype_name)
    mul, add = (dmul, dadd) if ct is np.float64 else (fmul, fadd)
    zero = ct(0.0)

    @dev
    def elem(xv, bv, rv, keep, s):
        uu = add(xv, bv) if has_bias else xv
        v = mul(uu, s)
        return add(rv, v if keep != _u32(0) else zero)

    return elem


# ---- the kernels -----------------------------------------------------------------------
#
# Module-level templates, specialised by `_kernels.specialise` (their compile-time
# constants and device functions bound as globals, so that numba-cuda's compile cache
# finds them again in the next process): the names below are placeholders.

s_load8 = s_store8 = s_elem = s_keep8 = s_keep16 = None
S_PACKED = S_BIAS = False
s_load = s_store = s_mul = s_add = None
s_load_a = s_store_a = s_load_b = s_store_b = None
S_ZERO = S_ALPHA = None


def _forward(y, x, pout, nunits, sk0, sk1, st0, st1, T, s, a, c, d):
    """`forward_kernel` at bits 16 and 32: one 8-element unit per iteration."""
    u = _u32(_u32(cuda.blockIdx.x) * _u32(cuda.blockDim.x) + _u32(cuda.threadIdx.x))
    step = _u32(_u32(cuda.gridDim.x) * _u32(cuda.blockDim.x))
    while u < nunits:
        x0, x1, x2, x3, x4, x5, x6, x7 = s_load8(x, u)          # every load first
        k0, k1, k2, k3, k4, k5, k6, k7 = s_keep8(u, sk0, sk1, st0, st1, T)
        s_store8(y, u, s_elem(x0, k0, s, a, c, d), s_elem(x1, k1, s, a, c, d),
                 s_elem(x2, k2, s, a, c, d), s_elem(x3, k3, s, a, c, d),
                 s_elem(x4, k4, s, a, c, d), s_elem(x5, k5, s, a, c, d),
                 s_elem(x6, k6, s, a, c, d), s_elem(x7, k7, s, a, c, d))
        if S_PACKED:
            st8(pout, u, _byte(k0, k1, k2, k3, k4, k5, k6, k7))
        u = _u32(u + step)


def _forward_b8(y, x, pout, nblocks, sk0, sk1, st0, st1, T, s, a, c, d):
    """`forward_kernel` at bits=8: one Philox block (16 draws) per iteration, i.e. the
    8-element units 2v and 2v + 1."""
    v = _u32(_u32(cuda.blockIdx.x) * _u32(cuda.blockDim.x) + _u32(cuda.threadIdx.x))
    step = _u32(_u32(cuda.gridDim.x) * _u32(cuda.blockDim.x))
    while v < nblocks:
        lo = _u32(v + v)
        hi = _u32(lo + _u32(1))
        x0, x1, x2, x3, x4, x5, x6, x7 = s_load8(x, lo)          # every load first
        x8, x9, x10, x11, x12, x13, x14, x15 = s_load8(x, hi)
        (k0, k1, k2, k3, k4, k5, k6, k7, k8, k9, k10, k11, k12, k13, k14,
         k15) = s_keep16(v, sk0, sk1, st0, st1, T)
        s_store8(y, lo, s_elem(x0, k0, s, a, c, d), s_elem(x1, k1, s, a, c, d),
                 s_elem(x2, k2, s, a, c, d), s_elem(x3, k3, s, a, c, d),
                 s_elem(x4, k4, s, a, c, d), s_elem(x5, k5, s, a, c, d),
                 s_elem(x6, k6, s, a, c, d), s_elem(x7, k7, s, a, c, d))
        s_store8(y, hi, s_elem(x8, k8, s, a, c, d), s_elem(x9, k9, s, a, c, d),
                 s_elem(x10, k10, s, a, c, d), s_elem(x11, k11, s, a, c, d),
                 s_elem(x12, k12, s, a, c, d), s_elem(x13, k13, s, a, c, d),
                 s_elem(x14, k14, s, a, c, d), s_elem(x15, k15, s, a, c, d))
        if S_PACKED:
            st8(pout, lo, _byte(k0, k1, k2, k3, k4, k5, k6, k7))
            st8(pout, hi, _byte(k8, k9, k10, k11, k12, k13, k14, k15))
        v = _u32(v + step)


@functools.lru_cache(maxsize=None)
def forward_kernel(dtype_name: str, op: int, bits: int, want_packed: bool):
    """The fast kernel of one specialisation (see the module docstring).

    Arguments: ``y, x`` (the output's and the input's memory: uint64 device addresses
    on a GPU -- arrays work too -- uint32 views under the simulator), ``pout`` (the
    packed mask: an address or a uint8 array; unused unless want_packed), ``nunits``
    (whole 8-element units, < 2^31; at bits=8 whole 16-element Philox blocks, see
    `units_of`), the seed's and the stream's 32-bit halves, ``T = t << (32 - bits)``
    (uint32), and the op's scalars ``s, a, c, d`` in the compute type."""
    load8, store8 = _codec8(dtype_name)
    ns = dict(s_load8=load8, s_store8=store8, s_elem=_element(dtype_name, op),
              S_PACKED=bool(want_packed))
    if per_iteration(dtype_name, bits) == 16:
        return K.specialise(_forward_b8, ("fwd", dtype_name, op, bits, want_packed),
                            dict(ns, s_keep16=keep8x2), max_registers=32)
    keep8 = {16: keep16, 32: keep32, 8: keep8h}[bits]
    return K.specialise(_forward, ("fwd", dtype_name, op, bits, want_packed),
                        dict(ns, s_keep8=keep8))


def per_iteration(dtype_name: str, bits: int) -> int:
    """Elements per iteration of `forward_kernel`: 8 (one unit), or 16 at bits=8 (one
    Philox block) -- except float64, whose 16 elements would not fit in 32 registers
    without spilling: it takes half a block per 8-element unit (`keep8h`)."""
    return 16 if bits == 8 and dtype_name != "float64" else 8


def units_of(n: int, bits: int, dtype_name: str = "float32") -> int:
    """The iterations of `forward_kernel` for n elements (see `per_iteration`); the
    elements past them go to `tail_kernel`."""
    return n // per_iteration(dtype_name, bits)


def _bda(y, x, bias, res, pout, nunits, nc8, sk0, sk1, st0, st1, T, s):
    """`bda_kernel`'s template."""
    u = _u32(_u32(cuda.blockIdx.x) * _u32(cuda.blockDim.x) + _u32(cuda.threadIdx.x))
    step = _u32(_u32(cuda.gridDim.x) * _u32(cuda.blockDim.x))
    col = _u32(u % nc8)              # bias unit of u, advanced without a division
    cstep = _u32(step % nc8)
    while u < nunits:
        x0, x1, x2, x3, x4, x5, x6, x7 = s_load8(x, u)
        r0, r1, r2, r3, r4, r5, r6, r7 = s_load8(res, u)
        if S_BIAS:
            b0, b1, b2, b3, b4, b5, b6, b7 = s_load8(bias, col)
        else:
            b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = S_ZERO
        k0, k1, k2, k3, k4, k5, k6, k7 = s_keep8(u, sk0, sk1, st0, st1, T)
        s_store8(y, u, s_elem(x0, b0, r0, k0, s), s_elem(x1, b1, r1, k1, s),
                 s_elem(x2, b2, r2, k2, s), s_elem(x3, b3, r3, k3, s),
                 s_elem(x4, b4, r4, k4, s), s_elem(x5, b5, r5, k5, s),
                 s_elem(x6, b6, r6, k6, s), s_elem(x7, b7, r7, k7, s))
        if S_PACKED:
            st8(pout, u, _byte(k0, k1, k2, k3, k4, k5, k6, k7))
        u = _u32(u + step)
        col = _u32(col + cstep)
        col = _u32(col - nc8) if col >= nc8 else col


def _bda_halves(y, x, bias, res, pout, nunits, nc8, sk0, sk1, st0, st1, T, s):
    """`bda_kernel`'s template for float64 (32 registers, no spill): a unit's 48 loaded
    words and Philox would not fit together, so the unit goes in two halves of 4 values
    (each half's x, residual and bias loads before its two stores: in place, y = x or
    y = res, stays exact) and the keep byte of the next unit is drawn after the stores
    (ptxas overlaps it with the second half's loads), the first one before the loop."""
    u = _u32(_u32(cuda.blockIdx.x) * _u32(cuda.blockDim.x) + _u32(cuda.threadIdx.x))
    step = _u32(_u32(cuda.gridDim.x) * _u32(cuda.blockDim.x))
    col = _u32(u % nc8)
    cstep = _u32(step % nc8)
    k0, k1, k2, k3, k4, k5, k6, k7 = s_keep8(u, sk0, sk1, st0, st1, T)
    kb = _byte(k0, k1, k2, k3, k4, k5, k6, k7)
    while u < nunits:
        x0, x1, x2, x3 = s_load_a(x, u)
        r0, r1, r2, r3 = s_load_a(res, u)
        if S_BIAS:
            b0, b1, b2, b3 = s_load_a(bias, col)
        else:
            b0 = b1 = b2 = b3 = S_ZERO
        s_store_a(y, u, s_elem(x0, b0, r0, kb & _u32(1), s),
                  s_elem(x1, b1, r1, kb & _u32(2), s),
                  s_elem(x2, b2, r2, kb & _u32(4), s),
                  s_elem(x3, b3, r3, kb & _u32(8), s))
        x0, x1, x2, x3 = s_load_b(x, u)
        r0, r1, r2, r3 = s_load_b(res, u)
        if S_BIAS:
            b0, b1, b2, b3 = s_load_b(bias, col)
        else:
            b0 = b1 = b2 = b3 = S_ZERO
        s_store_b(y, u, s_elem(x0, b0, r0, kb & _u32(16), s),
                  s_elem(x1, b1, r1, kb & _u32(32), s),
                  s_elem(x2, b2, r2, kb & _u32(64), s),
                  s_elem(x3, b3, r3, kb & _u32(128), s))
        if S_PACKED:
            st8(pout, u, kb)
        u = _u32(u + step)
        col = _u32(col + cstep)
        col = _u32(col - nc8) if col >= nc8 else col
        k0, k1, k2, k3, k4, k5, k6, k7 = s_keep8(u, sk0, sk1, st0, st1, T)
        kb = _byte(k0, k1, k2, k3, k4, k5, k6, k7)


@functools.lru_cache(maxsize=None)
def bda_kernel(dtype_name: str, bits: int, want_packed: bool, has_bias: bool):
    """The fast bias-dropout-add forward: ``y = res + ((x + bias[col]) * s where kept,
    else +0)`` in the compute precision, rounded once (contract section 7), with the
    flags `forward_kernel` draws.  Arguments: ``y, x, bias, res, pout`` (addresses on a
    GPU), ``nunits``, ``nc8 = ncols / 8`` (the route requires ncols % 8 == 0 with a bias:
    unit u's 8 columns are bias's unit ``u % nc8``, advanced by ``step % nc8`` and one
    compare per iteration: no division in the loop), the
    seed's and the stream's halves, ``T`` and ``s``.  x, res and bias are loaded before
    any store (float64: before the same half's stores; y may be x or res: in place).
    At bits=8 each unit generates its Philox block and uses its half (`keep8h`).
    float64 takes `_bda_halves` (a unit in two halves, each half's loads before its
    stores; the next unit's flags drawn after the stores), compiled with a 32-register
    cap (no spill: sass_check)."""
    load8, store8 = _codec8(dtype_name)
    keep8 = {16: keep16, 32: keep32, 8: keep8h}[bits]
    ns = dict(s_load8=load8, s_store8=store8, s_keep8=keep8,
              s_elem=_bda_element(dtype_name, has_bias),
              S_PACKED=bool(want_packed), S_BIAS=bool(has_bias),
              S_ZERO=K.compute_type(dtype_name)(0.0))
    key = ("bda", dtype_name, bits, want_packed, has_bias)
    if dtype_name == "float64":
        la, sa, lb, sb = _halves_f64()
        return K.specialise(_bda_halves, key,
                            dict(ns, s_load_a=la, s_store_a=sa, s_load_b=lb, s_store_b=sb),
                            max_registers=32)
    return K.specialise(_bda, key, ns)


def _masked(y, x, pin, nunits, s):
    """`masked_kernel`'s template."""
    u = _u32(_u32(cuda.blockIdx.x) * _u32(cuda.blockDim.x) + _u32(cuda.threadIdx.x))
    step = _u32(_u32(cuda.gridDim.x) * _u32(cuda.blockDim.x))
    z = s
    while u < nunits:
        x0, x1, x2, x3, x4, x5, x6, x7 = s_load8(x, u)
        m = ld8(pin, u)
        s_store8(y, u, s_elem(x0, m & _u32(1), s, z, z, z),
                 s_elem(x1, m & _u32(2), s, z, z, z),
                 s_elem(x2, m & _u32(4), s, z, z, z), s_elem(x3, m & _u32(8), s, z, z, z),
                 s_elem(x4, m & _u32(16), s, z, z, z),
                 s_elem(x5, m & _u32(32), s, z, z, z),
                 s_elem(x6, m & _u32(64), s, z, z, z),
                 s_elem(x7, m & _u32(128), s, z, z, z))
        u = _u32(u + step)


@functools.lru_cache(maxsize=None)
def masked_kernel(dtype_name: str):
    """The fast backward from a packed mask (the forward's own shape): ``dx = dy * s``
    where bit k of mask byte u keeps element 8u + k, else +0.  Arguments: ``y, x, pin``
    (addresses on a GPU, as `forward_kernel`'s), ``nunits`` (uint32) and ``s``.  The mask
    byte and the data are loaded together, before any store."""
    load8, store8 = _codec8(dtype_name)
    return K.specialise(_masked, ("masked", dtype_name),
                        dict(s_load8=load8, s_store8=store8,
                             s_elem=_element(dtype_name, int(Op.DROPOUT))))


def _masked_tail(y, x, pin, first, n, s):
    """`masked_tail_kernel`'s template."""
    if cuda.grid(1) != 0:
        return
    byte = U(pin[first >> U(3)])
    for kk in range(n - first):
        i = first + U(kk)
        keep = ((byte >> U(kk)) & U(1)) != U(0)
        v = s_mul(s_load(x[i]), s) if keep else S_ZERO
        y[i] = s_store(v)


@functools.lru_cache(maxsize=None)
def masked_tail_kernel(dtype_name: str):
    """`masked_kernel`'s last, partial unit (elements first .. n - 1, ``first = 8u``): one
    thread, the general kernels' device functions, mask byte u."""
    load, store, mul, _, ct, _ = K.codec(dtype_name)
    return K.specialise(_masked_tail, ("masked_tail", dtype_name),
                        dict(s_load=load, s_store=store, s_mul=mul, S_ZERO=ct(0.0)))


def _tail(y, x, pout, first, n, seed, stream, bits, t, s, a, c, d, want_packed):
    """`tail_kernel`'s template."""
    if cuda.grid(1) != 0:
        return
    b0 = first >> U(3)
    for bb in range(((n - first) + U(7)) >> U(3)):
        i0 = (b0 + U(bb)) << U(3)
        cnt = n - i0
        if cnt > U(8):
            cnt = U(8)
        byte = keep_byte(seed, stream, i0, cnt, bits, t)
        for kk in range(cnt):
            i = i0 + U(kk)
            keep = ((byte >> U(kk)) & U(1)) != U(0)
            xv = s_load(x[i])
            if S_ALPHA:
                v = s_add(s_mul(xv, a), c) if keep else d
            else:
                v = s_mul(xv, s) if keep else S_ZERO
            y[i] = s_store(v)
        if want_packed:
            pout[i0 >> U(3)] = np.uint8(byte)


@functools.lru_cache(maxsize=None)
def tail_kernel(dtype_name: str, op: int):
    """The elements past the fast kernel's last iteration (elements first .. n - 1,
    fewer than 16, ``first = 8u``): one thread, with the general kernels' device
    functions, byte after byte of the mask; writes y's elements and, when want_packed,
    the mask bytes."""
    load, store, mul, add, ct, _ = K.codec(dtype_name)
    return K.specialise(_tail, ("tail", dtype_name, op),
                        dict(s_load=load, s_store=store, s_mul=mul, s_add=add,
                             S_ZERO=ct(0.0), S_ALPHA=op == int(Op.ALPHA)))


# ---- routing and launch ----------------------------------------------------------------


def _address(arr) -> int:
    """The device address of a 1-D device array's first element."""
    if SIMULATOR:  # the simulator's device memory is a NumPy array
        return int(arr._ary.__array_interface__["data"][0])
    return int(arr.__cuda_array_interface__["data"][0])


@functools.lru_cache(maxsize=None)
def _half_conversions_ok(device_id) -> bool:
    """cvt.rn.{f16x2,bf16x2}.f32 need sm_80 or later."""
    if SIMULATOR:
        return True
    return tuple(cuda.get_current_device().compute_capability) >= (8, 0)


_enabled = [True]
#: launches of the fast kernels since import (tests check that the route was taken)
launches = {"forward": 0, "masked": 0, "bda": 0, "tail": 0}


def set_enabled(enabled: bool) -> bool:
    """Turn the fast path on or off (tests and benchmarks compare it with the general
    kernels); returns the previous setting."""
    prev = _enabled[0]
    _enabled[0] = bool(enabled)
    return prev


def fast_plan(dtype_name: str, op: int, n: int, bits: int, t: int, x_address: int,
              y_address: int) -> bool:
    """True when a request with these parameters, whose input and output elements are in
    C order at these device addresses, may take the fast path (the caller has checked:
    keep flags drawn, no noise shape, no block, no bool mask, no bias or residual)."""
    if not _enabled[0]:
        return False
    if dtype_name not in UNIT_WORDS or op not in OPS or bits not in (8, 16, 32):
        return False
    if n < per_iteration(dtype_name, bits) or n // 8 > MAX_UNITS or not 0 <= t < (1 << bits):
        return False
    if x_address % 16 or y_address % 16:
        return False
    if dtype_name in ("float16", "bfloat16") and not _half_conversions_ok(
            None if SIMULATOR else cuda.get_current_device().id):
        return False
    return True


@functools.lru_cache(maxsize=None)
def _wave_blocks() -> int:
    """Blocks of THREADS threads in one full wave of the current GPU (2048 resident
    threads per multiprocessor: the fast kernels use at most 32 registers)."""
    if SIMULATOR:
        return 2
    sms = cuda.get_current_device().MULTIPROCESSOR_COUNT
    return sms * (2048 // THREADS)


def fast_geometry(nunits: int):
    """(blocks, threads): about one wave (or fewer blocks for small sizes); a geometry
    forced by `_kernels.set_launch_geometry` wins (tests)."""
    forced = K.forced_geometry()
    if forced is not None:
        return forced
    blocks = max(1, min(_wave_blocks(), (nunits + THREADS - 1) // THREADS))
    return blocks, THREADS


_dummies: dict = {}


def _dummy_u8():
    """A 1-byte device array standing for an absent mask (kernels are typed)."""
    key = None if SIMULATOR else cuda.get_current_device().id
    if key not in _dummies:
        _dummies[key] = cuda.device_array(1, np.uint8)
    return _dummies[key]


def try_forward(op: int, X, Y, P, seed: int, stream: int, bits: int, t: int, s, a, c,
                d) -> bool:
    """Run one dropout-family pass on the fast path if it qualifies (`fast_plan`);
    False: nothing was launched, the caller runs the general kernel.

    X, Y: the input and output `_memory.Operand` (Y C-contiguous; X C-contiguous, or it
    is gathered into an aligned C-order temporary first); P: the packed-mask output
    Operand, or None.  On a GPU the kernel gets device addresses (no array views are
    made); the elements past the last whole iteration go to `tail_kernel`."""
    n = X.size
    if not Y.c_contiguous or not _enabled[0]:
        return False
    xsrc = None if X.c_contiguous else X.flat()
    x_addr = X.ptr if xsrc is None else _address(xsrc)
    if not fast_plan(X.name, op, n, bits, t, x_addr, Y.ptr):
        return False
    ct = K.compute_type(X.name)
    nunits = units_of(n, bits, X.name)
    done = nunits * per_iteration(X.name, bits)    # elements of the whole iterations
    want_p = P is not None
    strm = X.stream
    if SIMULATOR:  # the twins read words: uint32 views of the whole units
        span = done
        xw = X.flat()[:span].view(np.uint32)
        yw = Y.flat()[:span].view(np.uint32)
        pw = P.flat() if want_p else _dummy_u8()
    else:
        xw, yw, pw = U(x_addr), U(Y.ptr), U(P.ptr if want_p else 0)
    blocks, threads = fast_geometry(nunits)
    forward_kernel(X.name, op, bits, want_p)[blocks, threads, strm](
        yw, xw, pw, _u32(nunits), _u32(seed & 0xFFFFFFFF), _u32(seed >> 32),
        _u32(stream & 0xFFFFFFFF), _u32(stream >> 32), _u32(t << (32 - bits)),
        ct(s), ct(a), ct(c), ct(d))
    launches["forward"] += 1
    if n > done:
        launches["tail"] += 1
        tail_kernel(X.name, op)[1, 1, strm](
            Y.flat(), X.flat(), P.flat() if want_p else _dummy_u8(), U(done), U(n),
            U(seed), U(stream), U(bits), U(t), ct(s), ct(a), ct(c), ct(d), want_p)
    return True


def try_masked(op: int, X, Y, M, s) -> bool:
    """The backward from a packed mask `M` (an Operand of ceil(n / 8) bytes, the
    forward's own shape) on the fast path if it qualifies (op DROPOUT, `fast_plan`'s
    checks with a threshold of 0); False: nothing was launched."""
    n = X.size
    if op != int(Op.DROPOUT) or not Y.c_contiguous or not M.c_contiguous \
            or not _enabled[0]:
        return False
    xsrc = None if X.c_contiguous else X.flat()
    x_addr = X.ptr if xsrc is None else _address(xsrc)
    if not fast_plan(X.name, op, n, 16, 0, x_addr, Y.ptr):
        return False
    ct = K.compute_type(X.name)
    nunits = n // 8
    strm = X.stream
    if SIMULATOR:
        span = 8 * nunits
        xw = X.flat()[:span].view(np.uint32)
        yw = Y.flat()[:span].view(np.uint32)
        mw = M.flat()
    else:
        xw, yw, mw = U(x_addr), U(Y.ptr), U(M.ptr)
    blocks, threads = fast_geometry(nunits)
    masked_kernel(X.name)[blocks, threads, strm](yw, xw, mw, _u32(nunits), ct(s))
    launches["masked"] += 1
    if n % 8:
        launches["tail"] += 1
        masked_tail_kernel(X.name)[1, 1, strm](Y.flat(), X.flat(), M.flat(), U(8 * nunits),
                                               U(n), ct(s))
    return True


def warm_up(dtypes=DTYPES, bits=(8, 16, 32), packed=(False, True), ops=OPS,
            masked: bool = True, bda: bool = True) -> int:
    """Compile the fast kernels now rather than at their first call (numba-cuda compiles a
    kernel at its first launch with new argument types; this launches each
    specialisation over 0 units, with the argument types `try_forward` and `try_masked`
    use, on the default stream; `bda_kernel` with and without a bias when bda).  Returns
    the number of kernels launched."""
    count = 0
    for name in dtypes:
        ct = K.compute_type(name)
        if SIMULATOR:
            d = _dummy_u8()
            y = x = p = d
        else:
            y = x = p = U(0)
        zero = ct(0.0)
        for op in ops:
            for b in bits:
                for want in packed:
                    forward_kernel(name, op, b, bool(want))[1, THREADS, 0](
                        y, x, p, _u32(0), _u32(0), _u32(0), _u32(0), _u32(0), _u32(0),
                        zero, zero, zero, zero)
                    count += 1
        if masked:
            masked_kernel(name)[1, THREADS, 0](y, x, p, _u32(0), zero)
            count += 1
        for b in (bits if bda else ()):
            for want in packed:
                for has_bias in (False, True):
                    bda_kernel(name, b, bool(want), has_bias)[1, THREADS, 0](
                        y, x, x, x, p, _u32(0), _u32(1), _u32(0), _u32(0), _u32(0),
                        _u32(0), _u32(0), zero)
                    count += 1
    return count


def cache_stats(dtypes=DTYPES, bits=(8, 16, 32), packed=(False, True), ops=OPS) -> dict:
    """numba-cuda's disk-cache hits and misses (compilations) of the fast kernels that
    `warm_up` (with these arguments) has compiled or loaded in this process:
    ``{"hits": h, "misses": m}`` (a second process after a first one's warm-up should
    show only hits; `_kernels.CACHE` off: both 0)."""
    kernels = []
    for name in dtypes:
        kernels += [forward_kernel(name, op, b, bool(w)) for op in ops for b in bits
                    for w in packed]
        kernels.append(masked_kernel(name))
        kernels += [bda_kernel(name, b, bool(w), hb) for b in bits for w in packed
                    for hb in (False, True)]
    hits = sum(sum(getattr(k, "_cache_hits", {}).values()) for k in kernels)
    misses = sum(sum(getattr(k, "_cache_misses", {}).values()) for k in kernels)
    return {"hits": int(hits), "misses": int(misses)}


def try_bda(X, Y, B, R, P, seed: int, stream: int, bits: int, t: int, s) -> bool:
    """bias-dropout-add's forward on the fast path if it qualifies: `fast_plan`'s checks
    (for x and y), n % 8 == 0 (no tail kernel), the residual `R` C-contiguous and
    16-byte aligned, and the bias `B` (or None) too, with ncols % 8 == 0.  False: nothing
    was launched."""
    n = X.size
    if not (_enabled[0] and Y.c_contiguous and X.c_contiguous and R.c_contiguous) \
            or n % 8 or R.ptr % 16:
        return False
    ncols = X.shape[-1]
    if B is not None and (ncols % 8 or not B.c_contiguous or B.ptr % 16):
        return False
    if not fast_plan(X.name, int(Op.DROPOUT), n, bits, t, X.ptr, Y.ptr):
        return False
    ct = K.compute_type(X.name)
    nunits = n // 8
    want_p = P is not None
    if SIMULATOR:
        xw, yw, rw = (A.flat()[:n].view(np.uint32) for A in (X, Y, R))
        bw = B.flat().view(np.uint32) if B is not None else xw
        pw = P.flat() if want_p else _dummy_u8()
    else:
        xw, yw, rw, bw = U(X.ptr), U(Y.ptr), U(R.ptr), U(B.ptr if B is not None else 0)
        pw = U(P.ptr if want_p else 0)
    blocks, threads = fast_geometry(nunits)
    bda_kernel(X.name, bits, want_p, B is not None)[blocks, threads, X.stream](
        yw, xw, bw, rw, pw, _u32(nunits), _u32(max(ncols // 8, 1)),
        _u32(seed & 0xFFFFFFFF), _u32(seed >> 32), _u32(stream & 0xFFFFFFFF),
        _u32(stream >> 32), _u32(t << (32 - bits)), ct(s))
    launches["bda"] += 1
    return True
