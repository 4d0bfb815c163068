"""Normal deviates and gaussian dropout: kernels against fastdrop.reference bit for bit,
the reference against an independent inverse normal CDF, statistics, and bad input."""
import math
import statistics

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastdrop as fd
from fastdrop import reference as ref
from _helpers import FLOAT_DTYPES, assert_bits_equal, layouts, make_x

DTYPE_IDS = [d.name for d in FLOAT_DTYPES]
SHAPES = [(), (0,), (1,), (7,), (1023,), (3, 0, 2), (3, 5, 7), (2**16 + 3,)]
PS = [0.0, 1e-7, 0.3, 0.5, 0.9]
# Words at the edges of the transform: the ends, the middle, and both sides of the
# central/tail boundary |q| = 0.425 (u = 0.075 and 0.925).
EDGE_WORDS = np.array([0, 1, 2, 3, 2**31 - 2, 2**31 - 1, 2**31, 2**31 + 1, 2**32 - 2,
                       2**32 - 1, 322122546, 322122547, 322122548, 3972844747, 3972844748,
                       3972844749], dtype=np.uint64).astype(np.uint32)


# ---- the transform itself (reference) ---------------------------------------------------

def test_reference_transform_matches_an_independent_inverse_cdf():
    """AS241 with fastdrop's own logarithm, against Python's statistics.NormalDist
    (AS241 with libm's log): within a few units in the last place everywhere."""
    rng = np.random.default_rng(4)
    words = np.concatenate([EDGE_WORDS, rng.integers(0, 2**32, 20000, dtype=np.uint64)
                            .astype(np.uint32)])
    z = ref.normal_from_words(words)
    nd = statistics.NormalDist()
    expected = np.array([nd.inv_cdf((int(w) + 0.5) / 2**32) for w in words])
    np.testing.assert_allclose(z, expected, rtol=4e-15, atol=1e-300)
    assert z[0] == -z[9] and abs(z[0] + 6.3379577545) < 1e-9  # symmetric, extreme word


def test_reference_log_matches_libm():
    j = np.concatenate([np.array([1, 3, 2**32 - 1], dtype=np.uint64),
                        2 * np.arange(1, 2**31, 9973, dtype=np.uint64) + 1]).astype(np.uint32)
    got = ref._neglog_odd(j)
    expected = -np.log(j.astype(np.float64) * 2.0**-33)
    np.testing.assert_allclose(got, expected, rtol=3e-16)


def test_transform_is_monotonic_and_antisymmetric():
    w = np.arange(0, 2**32, 65537, dtype=np.uint64).astype(np.uint32)
    z = ref.normal_from_words(w)
    assert np.all(np.diff(z) > 0)
    np.testing.assert_array_equal(ref.normal_from_words(~w), -z)


# ---- kernels against the reference --------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 7, 2048, 2049, 70001])
def test_standard_normal_equals_reference(dtype, n, simd_level):
    got = fd.standard_normal(n, seed=5, stream=3, dtype=dtype, offset=11)
    assert_bits_equal(got, ref.standard_normal(n, seed=5, stream=3, dtype=dtype, offset=11))


def test_kernel_transform_on_edge_words():
    """The C transform (fd_normal.h) on words a stream rarely draws: both ends, the middle,
    both sides of the central/tail boundary; and on every word a few streams draw."""
    from _helpers import shims

    words = np.concatenate([EDGE_WORDS, np.arange(0, 2**32, 4099, dtype=np.uint64)
                            .astype(np.uint32)])
    out = np.empty(words.size)
    shims().normals_of_words(words, out)
    assert_bits_equal(out, ref.normal_from_words(words))
    for stream in range(8):
        words = fd.random_bits(4096, seed=77, stream=stream)
        assert_bits_equal(fd.standard_normal(4096, seed=77, stream=stream),
                          ref.normal_from_words(words))


@pytest.mark.parametrize("offset", [0, 2**32 - 5, 2**34 + 1, 2**64 - 100])
def test_standard_normal_offsets(offset):
    got = fd.standard_normal(100, seed=2**64 - 1, stream=2**63 + 5, offset=offset)
    assert_bits_equal(got, ref.standard_normal(100, seed=2**64 - 1, stream=2**63 + 5,
                                               dtype=np.float64, offset=offset))


@given(n=st.integers(0, 3000), cut=st.integers(0, 3000), seed=st.integers(0, 2**64 - 1))
def test_standard_normal_chunk_invariance(n, cut, seed):
    cut = min(cut, n)
    whole = fd.standard_normal(n, seed=seed, stream=1)
    parts = np.concatenate([fd.standard_normal(cut, seed=seed, stream=1),
                            fd.standard_normal(n - cut, seed=seed, stream=1, offset=cut)])
    assert_bits_equal(parts, whole)


def test_standard_normal_threads_and_out():
    one = fd.standard_normal((300, 301), seed=1, n_threads=1)
    out = np.empty((300, 301))
    two = fd.standard_normal((300, 301), seed=1, n_threads=2, out=out)
    assert two is out
    assert_bits_equal(two, one)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("p", PS)
def test_gaussian_dropout_equals_reference(dtype, shape, p):
    x = make_x(shape, dtype, seed=len(shape))
    exp = ref.gaussian_dropout(x, p, seed=13, stream=4)
    assert_bits_equal(fd.gaussian_dropout(x, p, seed=13, stream=4), exp)
    g = make_x(shape, dtype, seed=99)
    assert_bits_equal(fd.gaussian_dropout_backward(g, p, seed=13, stream=4),
                      ref.gaussian_dropout_backward(g, p, seed=13, stream=4))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
def test_gaussian_dropout_layouts_threads_out(dtype):
    x = make_x((33, 17, 3), dtype, seed=3)
    exp = ref.gaussian_dropout(x, 0.4, seed=5, stream=6)
    for name, xl in layouts(x).items():
        for threads in (1, 2):
            assert_bits_equal(fd.gaussian_dropout(xl, 0.4, seed=5, stream=6, n_threads=threads),
                              exp)
        out = np.zeros_like(xl)
        assert fd.gaussian_dropout(xl, 0.4, seed=5, stream=6, out=out) is out
        assert_bits_equal(out, exp)
    inplace = x.copy()
    fd.gaussian_dropout(inplace, 0.4, seed=5, stream=6, out=inplace)
    assert_bits_equal(inplace, exp)


def test_gaussian_dropout_large_multithreaded():
    x = make_x((2**20 + 5,), np.float32, seed=8)
    exp = ref.gaussian_dropout(x, 0.2, seed=21, stream=0)
    assert_bits_equal(fd.gaussian_dropout(x, 0.2, seed=21, n_threads=2), exp)


def test_gaussian_inference_and_identity():
    x = make_x((5, 40), np.float32)
    assert fd.gaussian_dropout(x, 0.3, training=False) is x
    out = np.empty_like(x)
    assert fd.gaussian_dropout(x, 0.3, training=False, out=out) is out
    assert_bits_equal(out, x)
    assert_bits_equal(fd.gaussian_dropout(x, 0.0, seed=1), x)  # sigma 0: g = 1 exactly
    assert fd.gaussian_sigma(0.5) == 1.0
    assert fd.gaussian_sigma(0.2) == math.sqrt(0.2 / 0.8)


def test_gaussian_nan_policy():
    """No element is dropped: NaN stays NaN, Inf stays +-Inf (g > 0 where |z| < 1/sigma)."""
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0] * 20, dtype=np.float32)
    y = fd.gaussian_dropout(x, 0.01, seed=3)
    assert np.isnan(y[0::5]).all()
    assert np.isposinf(y[1::5]).all() and np.isneginf(y[2::5]).all()


# ---- statistics -----------------------------------------------------------------------------

Z = 6.5


def test_standard_normal_moments_and_cdf():
    """Mean, variance, skewness and kurtosis within Z standard errors; the empirical CDF
    within the Kolmogorov-Smirnov bound 2.3 / sqrt(n) (exceeded with probability 5e-5 by
    a correct generator), checked at every 64th order statistic (+ 64 / n for the gaps)."""
    n = 2**21
    z = fd.standard_normal(n, seed=2024)
    se = 1 / math.sqrt(n)
    assert abs(z.mean()) < Z * se
    assert abs(z.var() - 1) < Z * math.sqrt(2) * se
    assert abs(np.mean(z**3)) < Z * math.sqrt(15) * se
    assert abs(np.mean(z**4) - 3) < Z * math.sqrt(96) * se
    zs = np.sort(z[: 2**17])
    nd = statistics.NormalDist()
    cdf = np.array([nd.cdf(v) for v in zs[:: 64]])
    emp = (np.arange(0, zs.size, 64) + 1) / zs.size
    assert np.max(np.abs(emp - cdf)) < 2.3 / math.sqrt(zs.size) + 64 / zs.size


def test_moment_check_rejects_a_wrong_variance():
    n = 2**21
    z = fd.standard_normal(n, seed=2024) * 1.01
    assert abs(z.var() - 1) > Z * math.sqrt(2) / math.sqrt(n)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_gaussian_dropout_mean_and_variance(p):
    """E[y] = x and Var[y] = x^2 p / (1 - p) (Keras' GaussianDropout)."""
    n = 2**20
    x = np.full(n, 1.5)
    y = fd.gaussian_dropout(x, p, seed=7, stream=int(p * 10))
    var = 1.5**2 * p / (1 - p)
    assert abs(y.mean() - 1.5) < Z * math.sqrt(var / n)
    assert abs(y.var() / var - 1) < Z * math.sqrt(2 / n)


# ---- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("p, exc", [(1.0, ValueError), (float("nan"), ValueError),
                                    (-0.1, ValueError), (1.5, ValueError), ("0.5", TypeError),
                                    (True, TypeError), (1 + 0j, TypeError)])
def test_gaussian_bad_p(p, exc):
    x = np.ones(10, np.float32)
    out = np.full(10, 7, np.float32)
    with pytest.raises(exc, match="p"):
        fd.gaussian_dropout(x, p, seed=1, out=out)
    with pytest.raises(exc, match="p"):
        fd.gaussian_dropout_backward(x, p, seed=1, out=out)
    np.testing.assert_array_equal(out, 7)


@pytest.mark.parametrize("x", [np.arange(4), np.ones(4, bool), np.ones(4, complex),
                               np.array([1.0, None])])
def test_gaussian_bad_arrays(x):
    with pytest.raises(TypeError, match="x"):
        fd.gaussian_dropout(x, 0.5, seed=1)
    with pytest.raises(TypeError, match="grad"):
        fd.gaussian_dropout_backward(x, 0.5, seed=1)


def test_gaussian_bad_out_and_seed():
    x = np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match="out"):
        fd.gaussian_dropout(x, 0.5, seed=1, out=np.empty((5, 4), np.float32))
    with pytest.raises(TypeError, match="out"):
        fd.gaussian_dropout(x, 0.5, seed=1, out=np.empty((4, 5), np.float64))
    ro = np.empty((4, 5), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fd.gaussian_dropout(x, 0.5, seed=1, out=ro)
    big = np.zeros(21, np.float32)
    with pytest.raises(ValueError, match="overlap"):
        fd.gaussian_dropout(big[:20].reshape(4, 5), 0.5, seed=1, out=big[1:].reshape(4, 5))
    assert not big.any()
    with pytest.raises(ValueError, match="seed"):
        fd.gaussian_dropout_backward(x, 0.5, seed=None)
    with pytest.raises((TypeError, ValueError), match="seed"):
        fd.gaussian_dropout(x, 0.5, seed=-1)
    with pytest.raises((TypeError, ValueError), match="stream"):
        fd.gaussian_dropout(x, 0.5, seed=1, stream=2**64)


@pytest.mark.parametrize("kwargs, exc", [({"dtype": np.float16}, TypeError),
                                         ({"dtype": "int32"}, TypeError),
                                         ({"offset": -1}, ValueError),
                                         ({"offset": 2**64 - 5}, ValueError),
                                         ({"seed": 2**64}, ValueError)])
def test_standard_normal_bad_input(kwargs, exc):
    args = {"seed": 1, **kwargs}
    with pytest.raises(exc):
        fd.standard_normal(10, **args)


def test_generator_gaussian_dropout_and_backward():
    gen = fd.Generator(seed=31, stream=5)
    x = make_x((20, 30), np.float32, seed=1)
    y, call = gen.gaussian_dropout(x, 0.25)
    assert call.kind == "gaussian" and call.stream == 5 and gen.next_stream == 6
    assert_bits_equal(y, ref.gaussian_dropout(x, 0.25, seed=31, stream=5))
    g = make_x((20, 30), np.float32, seed=2)
    assert_bits_equal(call.backward(g), ref.gaussian_dropout_backward(g, 0.25, seed=31, stream=5))
    with pytest.raises(ValueError, match="mask"):
        call.mask((20, 30))
    assert gen.gaussian_dropout(x, 0.25, training=False) == (x, None)
    z = gen.standard_normal(10)
    assert_bits_equal(z, ref.standard_normal(10, seed=31, stream=6))
