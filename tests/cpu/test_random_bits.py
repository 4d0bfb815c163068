"""random_bits and uniform against the reference: sizes, offsets, threads, chunking."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastdrop
from fastdrop import reference as ref

SIZES = [0, 1, 3, 4, 5, 1023, 2**20 + 7]
U64 = st.integers(0, 2**64 - 1)


@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("n", SIZES)
def test_equals_reference(bits, n):
    rng = np.random.default_rng(n + bits)
    seed, stream = (int(v) for v in rng.integers(0, 2**63, size=2))
    got = fastdrop.random_bits(n, seed=seed, stream=stream, bits=bits)
    assert got.dtype == {32: np.uint32, 16: np.uint16, 8: np.uint8}[bits]
    assert got.shape == (n,)
    np.testing.assert_array_equal(got, ref.random_bits(n, seed=seed, stream=stream, bits=bits))


@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (7, 5), (2, 3, 129)])
def test_shapes_follow_c_order(bits, shape):
    got = fastdrop.random_bits(shape, seed=5, stream=6, bits=bits)
    assert got.shape == shape
    n = int(np.prod(shape))
    np.testing.assert_array_equal(got.ravel(), fastdrop.random_bits(n, seed=5, stream=6, bits=bits))
    np.testing.assert_array_equal(got, ref.random_bits(shape, seed=5, stream=6, bits=bits))


@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("offset", [2**34 - 1000, 2**34 * (32 // 16) - 333, 2**35 + 3, 2**64 - 5000])
def test_large_offsets_do_not_wrap(bits, offset):
    """Word indices near and past 2^34 (block counters past 2^32): the high counter word
    is used, so nothing wraps back to the start of the stream."""
    n = 4000
    got = fastdrop.random_bits(n, seed=2**64 - 1, stream=2**40 + 1, bits=bits, offset=offset)
    np.testing.assert_array_equal(got, ref.random_bits(n, seed=2**64 - 1, stream=2**40 + 1,
                                                       bits=bits, offset=offset))
    low = fastdrop.random_bits(n, seed=2**64 - 1, stream=2**40 + 1, bits=bits,
                               offset=offset % 2**32)
    assert not np.array_equal(got, low)


def test_block_counter_high_word():
    """Word 4 * 2^32 is block 2^32: counter (0, 1, ...), not block 0."""
    w = fastdrop.random_bits(4, seed=1, stream=2, offset=4 * 2**32)
    expected = fastdrop.philox4x32([0, 1, 2, 0], [1, 0])
    np.testing.assert_array_equal(w, expected)
    assert not np.array_equal(w, fastdrop.random_bits(4, seed=1, stream=2))


def test_last_draws_of_the_index_space():
    for bits in (8, 16, 32):
        got = fastdrop.random_bits(300, seed=3, bits=bits, offset=2**64 - 300)
        np.testing.assert_array_equal(got, ref.random_bits(300, seed=3, stream=0, bits=bits,
                                                           offset=2**64 - 300))


def test_sixteen_bit_draws_are_word_halves():
    words = fastdrop.random_bits(50, seed=11, stream=12, bits=32)
    halves = fastdrop.random_bits(100, seed=11, stream=12, bits=16)
    np.testing.assert_array_equal(halves[0::2], words & 0xFFFF)
    np.testing.assert_array_equal(halves[1::2], words >> 16)


@pytest.mark.parametrize("bits", [8, 16, 32])
def test_threads_do_not_change_draws(bits):
    n = 3 * 2**18 + 5
    one = fastdrop.random_bits(n, seed=7, stream=8, bits=bits, offset=3, n_threads=1)
    two = fastdrop.random_bits(n, seed=7, stream=8, bits=bits, offset=3, n_threads=2)
    many = fastdrop.random_bits(n, seed=7, stream=8, bits=bits, offset=3, n_threads=7)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, many)


@given(seed=U64, stream=U64, bits=st.sampled_from([8, 16, 32]),
       offset=st.integers(0, 2**40), n=st.integers(0, 3000), data=st.data())
def test_any_slice_is_the_draws_at_its_offset(seed, stream, bits, offset, n, data):
    """Chunk invariance: the draws of a sub-range are the slice of the whole range."""
    whole = fastdrop.random_bits(n, seed=seed, stream=stream, bits=bits, offset=offset)
    a = data.draw(st.integers(0, n))
    b = data.draw(st.integers(a, n))
    part = fastdrop.random_bits(b - a, seed=seed, stream=stream, bits=bits, offset=offset + a)
    np.testing.assert_array_equal(part, whole[a:b])
    np.testing.assert_array_equal(whole, ref.random_bits(n, seed=seed, stream=stream, bits=bits,
                                                         offset=offset))


def test_out_is_filled_and_returned():
    out = np.zeros((3, 77), np.uint16)
    res = fastdrop.random_bits((3, 77), seed=1, stream=2, bits=16, out=out)
    assert res is out
    np.testing.assert_array_equal(out, ref.random_bits((3, 77), seed=1, stream=2, bits=16))


def test_unaligned_start_in_output_buffer():
    """A uint16 output whose data pointer is not 4-byte aligned takes the buffered path."""
    backing = np.zeros(2 * 1000 + 1, np.uint16)
    out = backing[1:1001]
    fastdrop.random_bits(1000, seed=4, bits=16, out=out)
    np.testing.assert_array_equal(out, ref.random_bits(1000, seed=4, stream=0, bits=16))


def test_seeds_and_streams_give_different_streams():
    base = fastdrop.random_bits(64, seed=1, stream=0)
    assert not np.array_equal(base, fastdrop.random_bits(64, seed=2, stream=0))
    assert not np.array_equal(base, fastdrop.random_bits(64, seed=1, stream=1))
    assert not np.array_equal(base, fastdrop.random_bits(64, seed=1, stream=2**32))
    assert not np.array_equal(base, fastdrop.random_bits(64, seed=2**32 + 1, stream=0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_uniform_equals_reference(dtype, n):
    got = fastdrop.uniform(n, seed=n, stream=3, dtype=dtype)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, ref.uniform(n, seed=n, stream=3, dtype=dtype))
    assert got.size == 0 or (got.min() >= 0.0 and got.max() < 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_conversion_is_documented_formula(dtype):
    words = fastdrop.random_bits(20, seed=8, stream=9)
    got = fastdrop.uniform(10 if dtype == np.float64 else 20, seed=8, stream=9, dtype=dtype)
    if dtype == np.float32:
        expected = [(int(w) >> 8) / 2**24 for w in words]
    else:
        expected = [(((int(words[2 * i + 1]) << 32) | int(words[2 * i])) >> 11) / 2**53
                    for i in range(10)]
    assert got.tolist() == expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_offsets_threads_and_extremes(dtype):
    limit = 2**64 if dtype == np.float32 else 2**63
    for offset in (0, 5, 2**34 + 1, limit - 1000):
        got = fastdrop.uniform(1000, seed=1, dtype=dtype, offset=offset)
        np.testing.assert_array_equal(got, ref.uniform(1000, seed=1, stream=0, dtype=dtype,
                                                        offset=offset))
    n = 2**19 + 3
    np.testing.assert_array_equal(fastdrop.uniform(n, seed=2, dtype=dtype, n_threads=1),
                                  fastdrop.uniform(n, seed=2, dtype=dtype, n_threads=2))
    out = np.empty((4, 5), dtype)
    assert fastdrop.uniform((4, 5), seed=3, dtype=dtype, out=out) is out
    np.testing.assert_array_equal(out, ref.uniform((4, 5), seed=3, stream=0, dtype=dtype))


@pytest.mark.parametrize("offset", [0, 1, 3, 4, 2**36 + 5])
def test_8_bit_draws_are_the_bytes_of_the_words_least_significant_first(offset):
    """docs/contract.md section 3: draw d of bits=8 is byte d mod 4 of word d div 4."""
    n = 1001
    d = offset + np.arange(n, dtype=np.uint64)
    first_word = offset // 4
    words = fastdrop.random_bits((offset + n + 3) // 4 - first_word, seed=9, stream=4,
                                 bits=32, offset=first_word)
    expected = (words[(d // 4 - first_word).astype(np.int64)] >> (8 * (d % 4)).astype(np.uint32)
                ) & 0xFF
    got = fastdrop.random_bits(n, seed=9, stream=4, bits=8, offset=offset)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected.astype(np.uint8))


@pytest.mark.parametrize("p", [0.3, 0.5, 1 / 256, 255 / 256])
def test_8_bit_dropout_keeps_the_draws_at_or_above_the_threshold(p):
    n = 3001
    draws = fastdrop.random_bits(n, seed=9, stream=4, bits=8)
    _, mask = fastdrop.dropout(np.ones(n, np.float32), p, seed=9, stream=4, bits=8,
                               return_mask=True)
    keep = np.unpackbits(mask, count=n, bitorder="little").astype(bool)
    np.testing.assert_array_equal(keep, draws >= round(p * 256))
    assert fastdrop.effective_p(p, bits=8) == round(p * 256) / 256
