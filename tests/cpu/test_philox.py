"""Philox4x32: known-answer vectors, rounds, broadcasting, and both tile kernels."""
import numpy as np
import pytest

import fastdrop
import fastdrop._cpu._philox
from fastdrop._cpu import _philox
from fastdrop import reference as ref
from _helpers import kat_vectors, shims

# Random123's known answers of Philox4x32-10 (docs/contract.md section 1), shared with
# the GPU tests: tests/data/kat_vectors.txt
KAT = kat_vectors()


def _scalar_philox(ctr, key, rounds=10):
    """Contract section 1 in plain Python integers: the oracle of the oracle."""
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for _ in range(rounds):
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0, p1 & 0xFFFFFFFF,
                          (p0 >> 32) ^ c3 ^ k1, p0 & 0xFFFFFFFF)
        k0, k1 = (k0 + 0x9E3779B9) & 0xFFFFFFFF, (k1 + 0xBB67AE85) & 0xFFFFFFFF
    return [c0, c1, c2, c3]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_kat_public_api(ctr, key, expected):
    got = fastdrop.philox4x32(np.array(ctr, np.uint32), np.array(key, np.uint32))
    assert got.dtype == np.uint32 and got.shape == (4,)
    assert got.tolist() == expected
    assert fastdrop.philox4x32(ctr, key).tolist() == expected  # Python lists of ints


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_kat_reference_and_scalar(ctr, key, expected):
    assert ref.philox4x32(ctr, key).tolist() == expected
    assert _scalar_philox(ctr, key) == expected


def test_kat_batched_with_per_row_keys():
    ctr = np.array([c for c, _, _ in KAT], np.uint32)
    key = np.array([k for _, k, _ in KAT], np.uint32)
    got = fastdrop.philox4x32(ctr, key)
    assert got.tolist() == [e for _, _, e in KAT]


@pytest.mark.parametrize("rounds", [0, 1, 2, 7, 10, 13, 16])
def test_rounds_match_reference(rounds):
    rng = np.random.default_rng(rounds)
    ctr = rng.integers(0, 2**32, size=(257, 4), dtype=np.uint32)
    key = rng.integers(0, 2**32, size=(257, 2), dtype=np.uint32)
    got = fastdrop.philox4x32(ctr, key, rounds)
    np.testing.assert_array_equal(got, ref.philox4x32(ctr, key, rounds))
    assert got[5].tolist() == _scalar_philox(ctr[5].tolist(), key[5].tolist(), rounds)


def test_zero_rounds_is_identity():
    ctr = np.arange(40, dtype=np.uint32).reshape(10, 4)
    np.testing.assert_array_equal(fastdrop.philox4x32(ctr, [1, 2], rounds=0), ctr)


@pytest.mark.parametrize("ctr_shape,key_shape,out_shape", [
    ((4,), (2,), (4,)),
    ((0, 4), (2,), (0, 4)),
    ((3, 5, 4), (2,), (3, 5, 4)),
    ((3, 5, 4), (5, 2), (3, 5, 4)),
    ((1, 4), (6, 2), (6, 4)),
    ((2, 1, 4), (1, 3, 2), (2, 3, 4)),
])
def test_broadcasting(ctr_shape, key_shape, out_shape):
    rng = np.random.default_rng(0)
    ctr = rng.integers(0, 2**32, size=ctr_shape, dtype=np.uint32)
    key = rng.integers(0, 2**32, size=key_shape, dtype=np.uint32)
    got = fastdrop.philox4x32(ctr, key)
    assert got.shape == out_shape
    np.testing.assert_array_equal(got, ref.philox4x32(ctr, key))


def test_non_contiguous_counters():
    rng = np.random.default_rng(1)
    big = rng.integers(0, 2**32, size=(40, 8), dtype=np.uint32)
    ctr = big[::-3, 2:6]  # negative stride, not contiguous
    np.testing.assert_array_equal(fastdrop.philox4x32(ctr, [7, 9]),
                                  ref.philox4x32(ctr, [7, 9]))
    np.testing.assert_array_equal(fastdrop.philox4x32(np.asfortranarray(big[:, :4]), [7, 9]),
                                  ref.philox4x32(big[:, :4], [7, 9]))


def test_threads_do_not_change_blocks():
    rng = np.random.default_rng(2)
    ctr = rng.integers(0, 2**32, size=(20000, 4), dtype=np.uint32)
    one = fastdrop.philox4x32(ctr, [3, 4], n_threads=1)
    np.testing.assert_array_equal(one, fastdrop.philox4x32(ctr, [3, 4], n_threads=2))
    np.testing.assert_array_equal(one, fastdrop.philox4x32(ctr, [3, 4], n_threads=5))


def test_stream_layout_from_the_contract():
    """Word w of stream s is word w % 4 of Philox(counter=(lo B, hi B, lo s, hi s), seed key)."""
    seed, stream = 0x0123456789ABCDEF, 0xFEDCBA9876543210
    key = [seed & 0xFFFFFFFF, seed >> 32]
    for w in [0, 1, 2, 3, 4, 7, 2**34 + 5, 2**63 + 2]:
        b = w // 4
        ctr = [b & 0xFFFFFFFF, b >> 32, stream & 0xFFFFFFFF, stream >> 32]
        expected = _scalar_philox(ctr, key)[w % 4]
        assert fastdrop.random_bits(1, seed=seed, stream=stream, offset=w)[0] == expected
        assert ref.stream_words(seed, stream, w, 1)[0] == expected


def test_tile_kernels_agree(simd_level):
    """Each tile kernel (portable C, AVX2) gives the reference stream, tiles and tails."""
    # the block counter's low word wraps inside a tile at 4 * (2**32 - 3)
    for offset in (0, 1, 127, 2**34 - 37, 4 * (2**32 - 3) + 2, 2**64 - 3 * 128 - 11):
        got = fastdrop.random_bits(3 * 128 + 11, seed=99, stream=3, offset=offset)
        np.testing.assert_array_equal(got, ref.random_bits(3 * 128 + 11, seed=99, stream=3,
                                                           bits=32, offset=offset))


@pytest.mark.parametrize("block0", [0, 32, 2**32 - 3, 2**63, 2**64 - 5])
def test_avx512_tile_body(block0):
    """The AVX-512 tile's body (philox.h FD_TILE512_BODY), run with its operations on AVX2
    registers, gives the portable tile, across the 2^32 and 2^64 wraps of the block
    counter. (Where the CPU has AVX-512, test_tile_kernels_agree runs the real one.)"""
    if "avx2" not in _philox.simd_levels():
        pytest.skip("the emulation runs on AVX2")
    sh = shims()
    for seed, stream in [(0, 0), (99, 3), (2**64 - 1, 2**63 + 7)]:
        want, got = np.empty(128, np.uint32), np.empty(128, np.uint32)
        sh.philox_tile(seed, stream, block0, want, False)
        sh.philox_tile(seed, stream, block0, got, True)
        np.testing.assert_array_equal(got, want)
        if 4 * block0 + 128 <= 2**64:  # word indices the twin takes (64-bit)
            np.testing.assert_array_equal(want, ref.stream_words(seed, stream, 4 * block0,
                                                                 128))


def test_simd_level_api():
    levels = fastdrop.simd_levels()
    assert levels[0] == "portable"
    assert fastdrop.get_simd_level() in levels
    with pytest.raises(ValueError, match="simd level"):
        fastdrop._cpu._philox.set_simd_level("sse9")
