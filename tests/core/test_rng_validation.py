"""Bad input: a clear TypeError/ValueError naming the argument; nothing is written."""
import numpy as np
import pytest

import fastdrop


@pytest.mark.parametrize("name", ["seed", "stream"])
@pytest.mark.parametrize("value,exc", [
    (-1, ValueError), (2**64, ValueError), (1.5, TypeError), ("3", TypeError),
    (True, TypeError), (None, TypeError), (np.float64(2.0), TypeError),
])
def test_bad_seed_or_stream(name, value, exc):
    kwargs = {"seed": 1, "stream": 0, name: value}
    with pytest.raises(exc, match=name):
        fastdrop.random_bits(4, **kwargs)
    with pytest.raises(exc, match=name):
        fastdrop.uniform(4, **kwargs)


def test_numpy_integer_seed_and_extremes_accepted():
    a = fastdrop.random_bits(4, seed=np.uint64(2**64 - 1), stream=np.int8(3))
    b = fastdrop.random_bits(4, seed=2**64 - 1, stream=3)
    np.testing.assert_array_equal(a, b)


def test_seed_is_required():
    with pytest.raises(TypeError):
        fastdrop.random_bits(4)


@pytest.mark.parametrize("bits,exc", [(12, ValueError), (64, ValueError), (0, ValueError),
                                      ("16", TypeError), (16.0, TypeError)])
def test_bad_bits(bits, exc):
    with pytest.raises(exc, match="bits"):
        fastdrop.random_bits(4, seed=1, bits=bits)


@pytest.mark.parametrize("shape,exc", [((2.5,), TypeError), (2.0, TypeError), ("abc", TypeError),
                                       ((-1,), ValueError), (-3, ValueError), ((2, None), TypeError),
                                       (None, TypeError)])
def test_bad_shape(shape, exc):
    with pytest.raises(exc, match="shape"):
        fastdrop.random_bits(shape, seed=1)


@pytest.mark.parametrize("offset,exc", [(-1, ValueError), (2**64, ValueError),
                                        (2**64 - 3, ValueError), (1.0, TypeError)])
def test_bad_offset(offset, exc):
    with pytest.raises(exc, match="offset"):
        fastdrop.random_bits(4, seed=1, offset=offset)


def test_uniform_float64_offset_limit():
    fastdrop.uniform(4, seed=1, dtype=np.float64, offset=2**63 - 4)
    with pytest.raises(ValueError, match="offset"):
        fastdrop.uniform(4, seed=1, dtype=np.float64, offset=2**63 - 3)


@pytest.mark.parametrize("n_threads,exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError)])
def test_bad_n_threads(n_threads, exc):
    with pytest.raises(exc, match="n_threads"):
        fastdrop.random_bits(4, seed=1, n_threads=n_threads)


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.uint32, "complex64", object, "nope"])
def test_uniform_bad_dtype(dtype):
    with pytest.raises(TypeError, match="dtype"):
        fastdrop.uniform(4, seed=1, dtype=dtype)


@pytest.mark.parametrize("counter,exc,match", [
    (np.zeros(4, np.int64), TypeError, "counter"),
    (np.zeros(4, np.uint64), TypeError, "counter"),
    (np.zeros(4, np.float32), TypeError, "counter"),
    (np.zeros(3, np.uint32), ValueError, "counter"),
    (np.zeros((2, 5), np.uint32), ValueError, "counter"),
    (np.uint32(3), ValueError, "counter"),
    ([0, 0, 0, -1], ValueError, "counter"),
    ([0, 0, 0, 2**32], ValueError, "counter"),
    ([0.5, 0, 0, 0], TypeError, "counter"),
    ("abcd", TypeError, "counter"),
])
def test_bad_counter(counter, exc, match):
    with pytest.raises(exc, match=match):
        fastdrop.philox4x32(counter, np.zeros(2, np.uint32))


@pytest.mark.parametrize("key,exc", [
    (np.zeros(3, np.uint32), ValueError), (np.zeros(2, np.int32), TypeError),
    (np.zeros((3, 2), np.uint32), ValueError),  # does not broadcast with 4 counters
])
def test_bad_key(key, exc):
    with pytest.raises(exc, match="key"):
        fastdrop.philox4x32(np.zeros((4, 4), np.uint32), key)


@pytest.mark.parametrize("rounds,exc", [(-1, ValueError), (17, ValueError), (2.0, TypeError)])
def test_bad_rounds(rounds, exc):
    with pytest.raises(exc, match="rounds"):
        fastdrop.philox4x32(np.zeros(4, np.uint32), [0, 0], rounds)


@pytest.mark.parametrize("make_out,exc", [
    (lambda: np.full(10, 7, np.uint16), TypeError),           # wrong dtype for bits=32
    (lambda: np.full(11, 7, np.uint32), ValueError),          # wrong shape
    (lambda: np.full((2, 10), 7, np.uint32)[:, ::2].copy().T, ValueError),  # wrong shape (5, 2)
    (lambda: np.full(20, 7, np.uint32)[::2], ValueError),     # not contiguous
    (lambda: [7] * 10, TypeError),                            # not an ndarray
])
def test_bad_out_is_refused_and_untouched(make_out, exc):
    out = make_out()
    before = np.array(out, copy=True)
    with pytest.raises(exc, match="out"):
        fastdrop.random_bits(10, seed=1, out=out)
    np.testing.assert_array_equal(np.asarray(out), before)


def test_read_only_out_is_refused():
    out = np.full(10, 7, np.uint32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fastdrop.random_bits(10, seed=1, out=out)
    assert (out == 7).all()


def test_bad_argument_checked_before_writing_out():
    out = np.full(10, 7, np.uint32)
    with pytest.raises(ValueError, match="seed"):
        fastdrop.random_bits(10, seed=-1, out=out)
    assert (out == 7).all()
