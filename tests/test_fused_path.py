"""The fused AVX2 path of the dropout driver (fastdrop/fd_fused.h) against the reference.

Contiguous float32/float64 dropout, backward from the seed and packed masks take the
fused path when the Philox level is avx2; the `simd_level` fixture runs every case on
both levels, so the general driver (portable) and the fused path are held to the same
reference.  Sizes straddle the 32-element vector step, the 256-element draw buffer and
the 32768-element thread chunk; outputs straddle the 8 MiB streaming-store threshold.
"""
import numpy as np
import pytest

import fastdrop as fd
from fastdrop import _operands, _philox
from fastdrop import reference as ref
from _helpers import assert_bits_equal, make_x

SIZES = [1, 7, 31, 32, 33, 255, 256, 257, 1000, 2 * 32768 + 37]
PS = [0.0, 1e-7, 0.5, 1.0]
DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("bits", [16, 32])
def test_forward_backward_and_masks(simd_level, dtype, n, p, bits):
    x = make_x((n,), dtype, seed=n)
    exp_y, keep = ref.dropout(x, p, seed=5, stream=2, bits=bits)
    y, mask = fd.dropout(x, p, seed=5, stream=2, bits=bits, return_mask=True)
    assert_bits_equal(y, exp_y)
    np.testing.assert_array_equal(mask, ref.pack_mask(keep))
    assert_bits_equal(fd.dropout(x, p, seed=5, stream=2, bits=bits), exp_y)
    assert_bits_equal(fd.dropout(x, p, seed=5, stream=2, bits=bits, mode="classic"),
                      ref.dropout(x, p, seed=5, stream=2, bits=bits, mode="classic")[0])
    g = make_x((n,), dtype, seed=n + 1)
    assert_bits_equal(fd.dropout_backward(g, p, seed=5, stream=2, bits=bits),
                      ref.dropout_backward(g, p, keep, bits=bits))
    np.testing.assert_array_equal(fd.dropout_mask((n,), p, seed=5, stream=2, bits=bits),
                                  ref.pack_mask(keep))


@pytest.mark.parametrize("bits", [16, 32])
@pytest.mark.parametrize("offset", [1, 13, 255, 256 * 7 + 3, 2**31 - 3, 2**34 + 5])
def test_masks_at_unaligned_offsets(simd_level, bits, offset):
    """Draw runs that do not start on a Philox tile (the copying branch of draws_u16)."""
    n = 3 * 256 + 29
    keep = ref.keep_mask((n,), 0.3, seed=8, stream=1, bits=bits, offset=offset)
    np.testing.assert_array_equal(
        fd.dropout_mask((n,), 0.3, seed=8, stream=1, bits=bits, offset=offset),
        ref.pack_mask(keep))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shift", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("n", [1000, (8 * 2**20) // 4 + 13])
def test_out_alignment(simd_level, dtype, shift, n):
    """out at every element offset from a 64-byte boundary, below and above the
    streaming-store size: 16-byte aligned rows stream, the others use plain stores."""
    x = make_x((n,), dtype, seed=3)
    expected, keep = ref.dropout(x, 0.5, seed=9, stream=1)
    backing = np.zeros(n + 8, dtype)
    out = backing[shift:shift + n]
    _, mask = fd.dropout(x, 0.5, seed=9, stream=1, out=out, return_mask=True)
    assert_bits_equal(out, expected)
    np.testing.assert_array_equal(mask, ref.pack_mask(keep))
    assert not backing[:shift].any() and not backing[shift + n:].any()  # nothing outside


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_and_two_dimensional(simd_level, dtype):
    x = make_x((300, 257), dtype, seed=2)
    expected, _ = ref.dropout(x, 0.25, seed=4, stream=6)
    inplace = x.copy()
    fd.dropout(inplace, 0.25, seed=4, stream=6, out=inplace)
    assert_bits_equal(inplace, expected)
    fortran = np.asfortranarray(x)  # not one contiguous C run: the general driver
    assert_bits_equal(fd.dropout(fortran, 0.25, seed=4, stream=6), expected)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threads(simd_level, threads):
    x = make_x((5 * 32768 + 11,), np.float32, seed=7)
    expected, keep = ref.dropout(x, 0.5, seed=1, stream=0)
    y, mask = fd.dropout(x, 0.5, seed=1, return_mask=True, n_threads=threads)
    assert_bits_equal(y, expected)
    np.testing.assert_array_equal(mask, ref.pack_mask(keep))


def _path(dtype, x_view=None, **kw):
    """Which path the driver takes for a dropout of a contiguous 1000-element row."""
    x = np.ones(1000, dtype) if x_view is None else x_view
    y = np.empty(x.shape, x.dtype)
    packed = np.empty((x.size + 7) // 8, np.uint8)
    return _operands.run(_operands.Op.OP_DROPOUT, _operands.KS.KS_DRAWS, x.shape, x.dtype,
                         y=y, x=x, packed_out=packed, seed=1, stream=0, bits=16,
                         t=1 << 15, s=2.0, n_threads=1, **kw)


def test_which_path_runs():
    """The fused path runs exactly where it may: at the avx2 level, on contiguous
    float32/float64 rows; never for half types, strided rows or blocks."""
    if "avx2" not in _philox.simd_levels():
        pytest.skip("no AVX2 on this machine: the fused path never runs")
    previous = _philox.set_simd_level("avx2")
    try:
        assert _path(np.float32) is True
        assert _path(np.float64) is True
        assert _path(np.float16) is False
        assert _path(np.float32, x_view=np.ones(2000, np.float32)[::2]) is False
        assert _path(np.float32, block=((1,), 0)) is False
        _philox.set_simd_level("portable")
        assert _path(np.float32) is False
    finally:
        _philox.set_simd_level(previous)
