"""The fused AVX2 path of the dropout driver (fastdrop/_cpu/src/fd_fused.h) against the reference.

Contiguous dropout, backward from the seed and from packed masks (float32 and float64:
the mask's bits tested in the registers, fd_packed_*), in every float dtype, take
the fused path when the Philox level is avx2 (float16 also needs F16C); the `simd_level` fixture runs every case on
both levels, so the general driver (portable) and the fused path are held to the same
reference.  Sizes straddle the 32-element vector step, the 256-element draw buffer and
the 32768-element thread chunk; outputs straddle the 8 MiB streaming-store threshold.
"""
import numpy as np
import pytest

import fastdrop as fd
from fastdrop._core.contract import DrawMap
from fastdrop._core.ops import Keep, Op
from fastdrop._cpu import _dropout, _philox
from fastdrop._cpu.backend import run_kernel
from fastdrop import reference as ref
from _helpers import BFLOAT16, FLOAT_DTYPES, assert_bits_equal, make_x, shims

SIZES = [1, 7, 31, 32, 33, 255, 256, 257, 1000, 2 * 32768 + 37]
PS = [0.0, 1e-7, 0.5, 1.0]
DTYPES = [np.float32, np.float64]
ALL = [d.type if d != BFLOAT16 else d for d in FLOAT_DTYPES]
IDS = [np.dtype(d).name for d in ALL]
BOOL = dict(return_mask=True, mask_format="bool")  # the twin returns (y, bool keep mask)


@pytest.mark.parametrize("dtype", ALL, ids=IDS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("bits", [8, 16, 32])
def test_forward_backward_and_masks(simd_level, dtype, n, p, bits):
    x = make_x((n,), dtype, seed=n)
    exp_y, keep = ref.dropout(x, p, seed=5, stream=2, bits=bits, **BOOL)
    y, mask = fd.dropout(x, p, seed=5, stream=2, bits=bits, return_mask=True)
    assert_bits_equal(y, exp_y)
    np.testing.assert_array_equal(mask, ref.pack_mask(keep))
    assert_bits_equal(fd.dropout(x, p, seed=5, stream=2, bits=bits), exp_y)
    assert_bits_equal(fd.dropout(x, p, seed=5, stream=2, bits=bits, mode="classic"),
                      ref.dropout(x, p, seed=5, stream=2, bits=bits, mode="classic"))
    g = make_x((n,), dtype, seed=n + 1)
    assert_bits_equal(fd.dropout_backward(g, p, seed=5, stream=2, bits=bits),
                      ref.dropout_backward(g, p, mask=keep, bits=bits))
    assert_bits_equal(fd.dropout_backward(g, p, mask=mask, bits=bits),  # the packed mask
                      ref.dropout_backward(g, p, mask=keep, bits=bits))
    np.testing.assert_array_equal(fd.dropout_mask((n,), p, seed=5, stream=2, bits=bits),
                                  ref.pack_mask(keep))


@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("offset", [1, 13, 255, 256 * 7 + 3, 2**31 - 3, 2**34 + 5])
def test_masks_at_unaligned_offsets(simd_level, bits, offset):
    """Draw runs that do not start on a Philox tile (the copying branch of draws_u16)."""
    n = 3 * 256 + 29
    keep = ref.keep_mask((n,), 0.3, seed=8, stream=1, bits=bits, offset=offset)
    np.testing.assert_array_equal(
        fd.dropout_mask((n,), 0.3, seed=8, stream=1, bits=bits, offset=offset),
        ref.pack_mask(keep))


@pytest.mark.parametrize("dtype", ALL, ids=IDS)
@pytest.mark.parametrize("shift,n", [(s, 1000) for s in range(9)]
                         + [(s, (8 * 2**20) // 2 + 13) for s in (0, 1, 8)])
def test_out_alignment(simd_level, dtype, shift, n):
    """out at element offsets from a 64-byte boundary, below and above 8 MiB (the
    streaming-store size for 4-byte types): 16-byte aligned rows stream, others do not."""
    x = make_x((n,), dtype, seed=3)
    expected, keep = ref.dropout(x, 0.5, seed=9, stream=1, **BOOL)
    backing = np.zeros(n + 8, dtype)
    out = backing[shift:shift + n]
    _, mask = fd.dropout(x, 0.5, seed=9, stream=1, out=out, return_mask=True)
    assert_bits_equal(out, expected)
    np.testing.assert_array_equal(mask, ref.pack_mask(keep))
    assert not backing[:shift].any() and not backing[shift + n:].any()  # nothing outside
    # the backward from that packed mask into the same misaligned out
    backing[:] = 0
    fd.dropout_backward(x, 0.5, mask=mask, out=out)
    assert_bits_equal(out, ref.dropout_backward(x, 0.5, mask=keep))
    assert not backing[:shift].any() and not backing[shift + n:].any()


@pytest.mark.parametrize("dtype", ALL, ids=IDS)
def test_in_place_and_two_dimensional(simd_level, dtype):
    x = make_x((300, 257), dtype, seed=2)
    expected = ref.dropout(x, 0.25, seed=4, stream=6)
    inplace = x.copy()
    fd.dropout(inplace, 0.25, seed=4, stream=6, out=inplace)
    assert_bits_equal(inplace, expected)
    fortran = np.asfortranarray(x)  # not one contiguous C run: the general driver
    assert_bits_equal(fd.dropout(fortran, 0.25, seed=4, stream=6), expected)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threads(simd_level, threads):
    x = make_x((5 * 32768 + 11,), np.float32, seed=7)
    expected, keep = ref.dropout(x, 0.5, seed=1, stream=0, **BOOL)
    y, mask = fd.dropout(x, 0.5, seed=1, return_mask=True, n_threads=threads)
    assert_bits_equal(y, expected)
    np.testing.assert_array_equal(mask, ref.pack_mask(keep))


def _path(dtype, x_view=None, **kw):
    """Which path the driver takes for a dropout of a contiguous 1000-element row."""
    x = np.ones(1000, dtype) if x_view is None else x_view
    y = np.empty(x.shape, x.dtype)
    packed = np.empty((x.size + 7) // 8, np.uint8)
    return run_kernel(Op.DROPOUT, Keep.DRAWS, x.shape, x.dtype,
                      y=y, x=x, packed_out=packed, seed=1, stream=0, bits=16,
                      t=1 << 15, scale=2.0, n_threads=1, **kw)


def test_which_path_runs():
    """The fused path runs exactly where it may: at the avx2 level, on contiguous rows
    (float16 only with F16C); never for strided rows or blocks."""
    if "avx2" not in _philox.simd_levels():
        pytest.skip("no AVX2 on this machine: the fused path never runs")
    previous = _philox.set_simd_level("avx2")
    try:
        assert _path(np.float32) is True
        assert _path(np.float64) is True
        assert _path(np.float16) is _dropout.HAS_F16C
        if BFLOAT16 is not None:
            assert _path(BFLOAT16) is True
        assert _path(np.float32, x_view=np.ones(2000, np.float32)[::2]) is False
        assert _path(np.float32, draws=DrawMap((1,), 0)) is False
        _philox.set_simd_level("portable")
        assert _path(np.float32) is False
    finally:
        _philox.set_simd_level(previous)


@pytest.mark.parametrize("dtype", ALL, ids=IDS)
def test_every_half_and_nan_payload_bit_for_bit(dtype):
    """The fused path and the general driver agree on every bit pattern of the 16-bit
    types, NaN payloads included (tests/api/test_twin.py compares them with the reference
    too)."""
    if np.dtype(dtype).itemsize != 2 or "avx2" not in _philox.simd_levels():
        pytest.skip("16-bit types on an AVX2 machine only")
    x = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(dtype)
    got = {}
    previous = _philox.get_simd_level()
    try:
        for level in ("portable", "avx2"):
            _philox.set_simd_level(level)
            got[level] = np.stack([fd.dropout(x, p, seed=3, stream=1).view(np.uint16)
                                   for p in (0.3, 0.5, 0.9)])
    finally:
        _philox.set_simd_level(previous)
    np.testing.assert_array_equal(got["avx2"], got["portable"])


@pytest.mark.parametrize("bf16", [False, True], ids=["float16", "bfloat16"])
def test_vector_roundings_on_every_tie(bf16):
    """The fused path's float32 -> half roundings (F16C for float16, integer AVX2 for
    bfloat16) equal fd_half.h on 2^20 high-bit patterns times 8 low-bit patterns: every
    rounding position's ties and near-ties, subnormal results, overflow, inf and NaN.
    float16 leaves signaling NaNs out: F16C quiets them, fd_half.h keeps them, but the
    kernels convert only products x * s, and a product is never a signaling NaN."""
    if "avx2" not in _philox.simd_levels() or not (bf16 or _dropout.HAS_F16C):
        pytest.skip("the vector conversions need AVX2 (and F16C for float16)")
    hi = np.arange(2**20, dtype=np.uint32) << np.uint32(12)
    lo = np.array([0, 1, 0x7FF, 0x800, 0x801, 0xFFE, 0xFFF, 0x555], np.uint32)
    bits = (hi[:, None] | lo[None, :]).reshape(-1)
    signaling = ((bits & 0x7F800000) == 0x7F800000) & ((bits & 0x7FFFFF) != 0) & (
        (bits & 0x400000) == 0) & (not bf16)
    src = bits[~signaling].view(np.float32)
    vec, scalar = (np.empty(src.size, np.uint16) for _ in range(2))
    hooks = shims()
    hooks.round_to_half_bits(src, vec, bf16, True)
    hooks.round_to_half_bits(src, scalar, bf16, False)
    np.testing.assert_array_equal(vec, scalar)
    # and fd_half.h itself against NumPy / ml_dtypes on the non-NaN values
    with np.errstate(invalid="ignore"):
        finite = ~np.isnan(src)
    target = np.float16 if not bf16 else BFLOAT16
    if target is None:
        pytest.skip("ml_dtypes is not installed")
    with np.errstate(over="ignore"):  # overflow to inf is one of the cases
        expected = src[finite].astype(target).view(np.uint16)
    np.testing.assert_array_equal(scalar[finite], expected)


@pytest.mark.parametrize("dtype", ALL, ids=IDS)
@pytest.mark.parametrize("shape", [(1,), (1000,), (37, 1), (9, 7), (5, 33), (3, 256),
                                   (130, 300), (2, 3, 17)], ids=str)
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("bits,p", [(16, 0.0), (16, 1e-7), (16, 0.5), (32, 0.3), (16, 1.0)])
def test_bias_dropout_add(simd_level, dtype, shape, with_bias, bits, p):
    """Bias-dropout-add (fused path 2 for float32/float64: row segments inside each
    256-draw run, the mask packed per run) against the reference."""
    x, r = make_x(shape, dtype, seed=1), make_x(shape, dtype, seed=2)
    b = make_x(shape[-1:], dtype, seed=3) if with_bias else None
    exp_y, exp_mask = ref.bias_dropout_add(x, b, r, p, seed=6, stream=2, bits=bits,
                                           return_mask=True)
    keep = ref.unpack_mask(exp_mask, shape)
    y, mask = fd.bias_dropout_add(x, b, r, p, seed=6, stream=2, bits=bits, return_mask=True)
    assert_bits_equal(y, exp_y)
    np.testing.assert_array_equal(mask, ref.pack_mask(keep))
    assert_bits_equal(fd.bias_dropout_add(x, b, r, p, seed=6, stream=2, bits=bits), exp_y)
    inplace = r.copy()  # out may be the residual itself
    fd.bias_dropout_add(x, b, inplace, p, seed=6, stream=2, bits=bits, out=inplace)
    assert_bits_equal(inplace, exp_y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shift", [0, 1, 4])
def test_bias_dropout_add_large_and_unaligned(simd_level, dtype, shift):
    """Above 8 MiB (streaming stores when out is 16-byte aligned), with several threads."""
    shape = ((8 * 2**20) // (np.dtype(dtype).itemsize * 1024) + 3, 1024)
    x, r = make_x(shape, dtype, seed=4), make_x(shape, dtype, seed=5)
    b = make_x((1024,), dtype, seed=6)
    exp_y, exp_mask = ref.bias_dropout_add(x, b, r, 0.5, seed=2, stream=9, return_mask=True)
    keep = ref.unpack_mask(exp_mask, shape)
    n = x.size
    backing = np.zeros(n + 8, dtype)
    out = backing[shift:shift + n].reshape(shape)
    _, mask = fd.bias_dropout_add(x, b, r, 0.5, seed=2, stream=9, out=out, return_mask=True,
                                  n_threads=2)
    assert_bits_equal(out, exp_y)
    np.testing.assert_array_equal(mask, ref.pack_mask(keep))


def test_bias_dropout_add_path():
    """Which path bias-dropout-add takes: fused for float32/float64 contiguous rows."""
    if "avx2" not in _philox.simd_levels():
        pytest.skip("no AVX2 on this machine: the fused path never runs")
    previous = _philox.set_simd_level("avx2")
    try:
        def path(dtype, xs=None):
            x = np.ones((40, 30), dtype) if xs is None else xs
            r, y, b = np.ones_like(x), np.empty_like(x), np.ones(x.shape[-1], x.dtype)
            return run_kernel(Op.BDA, Keep.DRAWS, x.shape,
                              x.dtype, y=y, x=x, b=b, r=r, seed=1, stream=0, bits=16,
                              t=1 << 15, scale=2.0, n_threads=1)
        assert path(np.float32) is True
        assert path(np.float64) is True
        assert path(np.float16) is False
        assert path(np.float32, np.ones((40, 60), np.float32)[:, ::2]) is False
    finally:
        _philox.set_simd_level(previous)
