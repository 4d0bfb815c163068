"""The GPU generator: Philox known answers, random bits, uniform, normal deviates."""
import numpy as np
import pytest

from _cuda_util import SIMULATOR, host, require_cuda, to_dev

cuda, D = require_cuda()

import fastdrop as fd  # noqa: E402
from fastdrop import reference as ref  # noqa: E402
from _helpers import kat_vectors  # noqa: E402

KAT = kat_vectors()  # Random123's known answers (tests/data/kat_vectors.txt), as on the CPU
SEED, STREAM = 0x0123456789ABCDEF, 0xFEDCBA9876543210


def test_philox_known_answers():
    ctr = to_dev(np.array([c for c, _, _ in KAT], np.uint32))
    key = to_dev(np.array([k for _, k, _ in KAT], np.uint32))
    got = host(D.philox4x32(ctr, key))
    assert got.tolist() == [e for _, _, e in KAT]


@pytest.mark.parametrize("rounds", [0, 1, 7, 10, 16])
def test_philox_rounds_and_broadcast_equal_cpu(rounds):
    rng = np.random.default_rng(rounds)
    ctr = rng.integers(0, 2**32, (3, 5, 4), dtype=np.uint32)
    key = rng.integers(0, 2**32, (5, 2), dtype=np.uint32)
    got = host(D.philox4x32(to_dev(ctr), to_dev(key), rounds=rounds))
    np.testing.assert_array_equal(got, fd.philox4x32(ctr, key, rounds=rounds))
    np.testing.assert_array_equal(got, ref.philox4x32(ctr, key, rounds))


def test_philox_strided_counter():
    big = np.random.default_rng(1).integers(0, 2**32, (9, 8), dtype=np.uint32)
    ctr = to_dev(big)[::-3, 2:6]                         # negative stride, not contiguous
    got = host(D.philox4x32(ctr, to_dev(np.array([7, 9], np.uint32))))
    np.testing.assert_array_equal(got, ref.philox4x32(big[::-3, 2:6], [7, 9]))


# offsets near 2**32 and 2**34 words and at the very end of the 64-bit index space
OFFSETS = [0, 3, 2**32 - 5, 2**34 - 3, 2**64 - 40]


@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("shape", [(), (0,), (1,), (37,), (3, 7)], ids=str)
def test_random_bits_equal_cpu_and_reference(bits, offset, shape):
    n = int(np.prod(shape))
    if offset + n > 2**64:
        pytest.skip("beyond the index space")
    got = host(D.random_bits(shape, seed=SEED, stream=STREAM, bits=bits, offset=offset))
    exp = fd.random_bits(shape, seed=SEED, stream=STREAM, bits=bits, offset=offset)
    assert got.dtype == exp.dtype and got.shape == exp.shape
    np.testing.assert_array_equal(got, exp)
    np.testing.assert_array_equal(got, ref.random_bits(shape, seed=SEED, stream=STREAM, bits=bits,
                                                       offset=offset))


def test_random_bits_blocks_of_a_larger_array():
    w = host(D.random_bits(64, seed=42, stream=7))
    for a, b in [(0, 5), (3, 8), (5, 64), (17, 18)]:
        np.testing.assert_array_equal(host(D.random_bits(b - a, seed=42, stream=7, offset=a)),
                                      w[a:b])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset", [0, 1, 2**32 - 3, 2**34 + 1])
def test_uniform_equal_cpu_and_reference(dtype, offset):
    got = host(D.uniform((5, 9), seed=SEED, stream=3, dtype=dtype, offset=offset))
    np.testing.assert_array_equal(got, fd.uniform((5, 9), seed=SEED, stream=3, dtype=dtype,
                                                  offset=offset))
    np.testing.assert_array_equal(got, ref.uniform((5, 9), seed=SEED, stream=3, dtype=dtype,
                                                   offset=offset))
    assert got.dtype == dtype


def test_uniform_float64_top_of_its_range():
    off = 2**63 - 11
    got = host(D.uniform(11, seed=1, stream=2, dtype=np.float64, offset=off))
    np.testing.assert_array_equal(got, ref.uniform(11, seed=1, stream=2, dtype=np.float64,
                                                   offset=off))
    with pytest.raises(ValueError):
        D.uniform(12, seed=1, dtype=np.float64, offset=off)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset", [0, 3, 2**34 - 1])
def test_standard_normal_equal_reference(dtype, offset):
    got = host(D.standard_normal((7, 23), seed=SEED, stream=5, dtype=dtype, offset=offset))
    exp = ref.standard_normal((7, 23), seed=SEED, stream=5, dtype=dtype, offset=offset)
    assert got.dtype == exp.dtype
    np.testing.assert_array_equal(got.view(np.uint64 if dtype == np.float64 else np.uint32),
                                  exp.view(np.uint64 if dtype == np.float64 else np.uint32))
    cpu = getattr(fd, "standard_normal", None)
    if cpu is not None:
        np.testing.assert_array_equal(got, cpu((7, 23), seed=SEED, stream=5, dtype=dtype,
                                               offset=offset))


def test_normal_deviates_of_chosen_words():
    """The tail branch, both extremes, the branch boundary and random words."""
    from fastdrop._cuda._device import normal_u32
    words = np.array([0, 1, 2, 3, 2**31 - 1, 2**31, 2**32 - 1, 2**32 - 2, 0x7FFFFFFF,
                      int(0.0773 * 2**32), int(0.0774 * 2**32), int(0.9226 * 2**32),
                      0x12345678, 0xDEADBEEF], np.uint32)
    words = np.concatenate([words, np.random.default_rng(5).integers(0, 2**32, 150,
                                                                       dtype=np.uint32)])
    out = cuda.device_array(words.size, np.float64)
    kernel = cuda.jit(_device_normal_kernel(normal_u32))
    kernel[(words.size + 63) // 64, 64](out, to_dev(words))
    np.testing.assert_array_equal(host(out).view(np.uint64),
                                  ref.normal_from_words(words).view(np.uint64))


def _device_normal_kernel(normal_u32):
    def kernel(out, words):
        i = cuda.grid(1)
        if i < words.size:
            out[i] = normal_u32(words[i])
    return kernel


@pytest.mark.parametrize("blocks,threads", [(1, 1), (3, 7), (64, 32)])
def test_launch_geometry_never_changes_draws(geometry, blocks, threads):
    base = host(D.random_bits(301, seed=9, stream=1, bits=16, offset=5))
    u = host(D.uniform(77, seed=9, dtype=np.float64, offset=1))
    z = host(D.standard_normal(41, seed=9))
    geometry(blocks, threads)
    np.testing.assert_array_equal(host(D.random_bits(301, seed=9, stream=1, bits=16,
                                                     offset=5)), base)
    np.testing.assert_array_equal(host(D.uniform(77, seed=9, dtype=np.float64, offset=1)), u)
    np.testing.assert_array_equal(host(D.standard_normal(41, seed=9)), z)


def test_out_and_device_arguments():
    out = cuda.device_array((4, 6), np.uint32)
    res = D.random_bits((4, 6), seed=3, out=out)
    assert res is out
    np.testing.assert_array_equal(host(out), ref.random_bits((4, 6), seed=3))
    like = to_dev(np.zeros(3, np.float32))
    u = D.uniform(5, seed=3, device=like)
    np.testing.assert_array_equal(host(u), ref.uniform(5, seed=3))
    np.testing.assert_array_equal(host(D.uniform(5, seed=3, device=0)), ref.uniform(5, seed=3))
    np.testing.assert_array_equal(host(D.uniform(5, seed=3, device="cuda")),
                                  ref.uniform(5, seed=3))
    with pytest.raises(ValueError, match="C-contiguous"):
        D.random_bits((4, 3), seed=3, out=cuda.device_array((4, 6), np.uint32)[:, ::2])
    with pytest.raises(TypeError, match="dtype"):
        D.random_bits((4, 6), seed=3, out=cuda.device_array((4, 6), np.uint16))
    with pytest.raises(ValueError, match="device"):
        D.uniform(5, seed=3, device="cpu")


def test_rng_validation_matches_cpu():
    for call in (lambda m: m.random_bits(4, seed=-1), lambda m: m.random_bits(4, seed=1, bits=12),
                 lambda m: m.uniform(4, seed=1, dtype=np.int32),
                 lambda m: m.random_bits(5, seed=1, offset=2**64 - 4)):
        with pytest.raises(Exception) as cpu_err:
            call(fd)
        with pytest.raises(type(cpu_err.value)) as gpu_err:
            call(D)
        assert str(gpu_err.value) == str(cpu_err.value)


@pytest.mark.skipif(SIMULATOR, reason="the simulator has no real hardware to exercise")
def test_hardware_2_28_mask_equals_cpu():
    """2**28 elements on a real GPU: the packed masks (bits 16 and 32) equal the CPU's."""
    n = 2**28
    for bits in (16, 32):
        g = host(D.dropout_mask(n, 0.3, seed=SEED, stream=STREAM, bits=bits))
        c = fd.dropout_mask(n, 0.3, seed=SEED, stream=STREAM, bits=bits)
        np.testing.assert_array_equal(g, c)
