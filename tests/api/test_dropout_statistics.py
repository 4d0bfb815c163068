"""Statistics of the dropout API: keep fractions, unbiasedness, independence, SELU
self-normalisation, channel dropout.

Every bound is Z = 6.5 standard deviations of the statistic under a correct
implementation (normal approximation; all statistics are sums of about 2**17 to 2**21
independent terms). A two-sided 6.5-sigma excursion has probability 8e-11, so a correct
implementation fails any one check with probability below 1e-10 and the whole file (about
100 such bounds) below 1e-8. The seeds are fixed, so the run is deterministic.

Each kind of check is also shown to fail on a deliberately wrong input (a mask drawn with
the wrong p, classic output fed to the inverted check, correlated flags, plain dropout fed
to the alpha-dropout check, element-wise dropout fed to the channel check), so the checks
themselves have power.
"""
import functools
import math

import numpy as np
import pytest

import fastdrop

Z = 6.5
N = 2**21
ALPHA_PRIME = 1.7580993408473766  # SELU scale * alpha; alpha_dropout's docstring


def keep_prob(p, bits=16):
    """P(keep), exactly: 1 - effective_p."""
    return 1.0 - fastdrop.effective_p(p, bits)


def flags(p, *, seed, stream=0, bits=16, n=N):
    return fastdrop.dropout_mask(n, p, seed=seed, stream=stream, bits=bits, packed=False)


# ---- check functions (each returns True when the sample is consistent) -----------------

def binomial_ok(kept, n, q):
    """Number kept out of n within Z sigma of Binomial(n, q)."""
    return abs(kept - n * q) < Z * math.sqrt(n * q * (1 - q))


def inverted_mean_ok(x, y, q):
    """Inverted dropout: E[y_i] = x_i; Var(y_i - x_i) = x_i^2 (1 - q) / q."""
    x = x.astype(np.float64)
    diff = y.astype(np.float64).sum() - x.sum()
    return abs(diff) < Z * math.sqrt((x * x).sum() * (1 - q) / q)


def classic_mean_ok(x, y, q):
    """Classic dropout: E[y_i] = q x_i; Var(y_i) = x_i^2 q (1 - q)."""
    x = x.astype(np.float64)
    diff = y.astype(np.float64).sum() - q * x.sum()
    return abs(diff) < Z * math.sqrt((x * x).sum() * q * (1 - q))


def correlation(a, b):
    """Pearson correlation of two bool arrays, from exact integer counts."""
    n = a.size
    sa, sb, sab = (int(np.count_nonzero(v)) for v in (a, b, a & b))  # Python ints: no overflow
    return (n * sab - sa * sb) / math.sqrt((n * sa - sa * sa) * (n * sb - sb * sb))


def uncorrelated(a, b):
    """|r| < Z / sqrt(n): sqrt(n) r is about N(0, 1) for independent flags."""
    return abs(correlation(a, b)) < Z / math.sqrt(a.size)


def alpha_moments(q):
    """E[y^4] of alpha dropout on x ~ N(0, 1), drop probability q (mean 0, variance 1)."""
    a = ((1 - q) * (1 + q * ALPHA_PRIME**2)) ** -0.5
    c, d = a * ALPHA_PRIME * q, -a * ALPHA_PRIME * (1 - q)
    kept4 = 3 * a**4 + 6 * a**2 * c**2 + c**4  # E[(a x + c)^4], x ~ N(0, 1)
    return (1 - q) * kept4 + q * d**4


def self_normalised(y, q):
    """Sample mean ~ 0 (sd 1/sqrt(n)) and variance ~ 1 (sd sqrt((E y^4 - 1)/n))."""
    n = y.size
    y = y.astype(np.float64)
    mean, var = y.mean(), y.var()
    mean_ok = abs(mean) < Z / math.sqrt(n)
    var_ok = abs(var - 1) < Z * math.sqrt((alpha_moments(q) - 1) / n) + Z**2 / n
    return mean_ok and var_ok


def channels_all_or_nothing(y):
    """Each (n, c) slice of a 4-D output is all non-zero or all zero (x has no zeros)."""
    nz = y != 0
    return bool((nz.all(axis=(2, 3)) == nz.any(axis=(2, 3))).all())


# ---- keep fraction ------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_fraction(p, bits):
    q = keep_prob(p, bits)
    packed = fastdrop.dropout_mask(N, p, seed=20240601, stream=7, bits=bits)
    kept = int(np.unpackbits(packed).sum())
    assert binomial_ok(kept, N, q)
    # the bool mask is the same draw
    assert np.count_nonzero(flags(p, seed=20240601, stream=7, bits=bits)) == kept
    # a mask drawn with a p off by 0.01 is rejected by the same check
    wrong = fastdrop.dropout_mask(N, p + 0.01, seed=20240601, stream=7, bits=bits)
    assert not binomial_ok(int(np.unpackbits(wrong).sum()), N, q)


@pytest.mark.parametrize("bits", [8, 16, 32])
def test_keep_fraction_of_dropout_masks(bits):
    """The masks dropout and alpha_dropout return are Binomial(n, P(keep)) too."""
    x = np.ones(N, np.float32)
    for api in (fastdrop.dropout, fastdrop.alpha_dropout):
        _, m = api(x, 0.3, seed=99, stream=bits, bits=bits, return_mask=True,
                   mask_format="bool")
        assert binomial_ok(np.count_nonzero(m), N, keep_prob(0.3, bits))


# ---- inverted mode: E[y] = x ----------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _random_x_cached(dtype, seed):
    x = (1.0 + np.random.default_rng(seed).standard_normal(N)).astype(dtype)
    x.flags.writeable = False
    return x


def _random_x(dtype, seed=3):
    """1 + N(0, 1): a mean far from 0, so that a wrong scale shows in the mean."""
    return _random_x_cached(np.dtype(dtype), seed)


@functools.lru_cache(maxsize=None)
def _normal_x():
    x = np.random.default_rng(8).standard_normal(N)
    x.flags.writeable = False
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_inverted_mean_is_unbiased(p, dtype):
    q = keep_prob(p)
    ones = np.ones(N, dtype)
    y = fastdrop.dropout(ones, p, seed=11, stream=1)
    assert inverted_mean_ok(ones, y, q)
    x = _random_x(dtype)
    y = fastdrop.dropout(x, p, seed=11, stream=2)
    assert inverted_mean_ok(x, y, q)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_inverted_check_rejects_unscaled_output(p):
    """Classic-mode output (kept elements not scaled) has mean q x: rejected."""
    x = _random_x(np.float64)
    y = fastdrop.dropout(x, p, seed=11, stream=2, mode="classic")
    assert not inverted_mean_ok(x, y, keep_prob(p))
    # the right mask with the scale of another p (2% too large or too small)
    y = fastdrop.dropout(x, p, seed=11, stream=2)
    for factor in (1.02, 0.98):
        assert not inverted_mean_ok(x, y * factor, keep_prob(p))


# ---- classic mode: E[y] = P(keep) x ---------------------------------------------------------

@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_classic_mean(p, bits):
    q = keep_prob(p, bits)
    ones = np.ones(N)
    y = fastdrop.dropout(ones, p, seed=12, stream=1, bits=bits, mode="classic")
    assert classic_mean_ok(ones, y, q)
    x = _random_x(np.float64, seed=4)
    y = fastdrop.dropout(x, p, seed=12, stream=2, bits=bits, mode="classic")
    assert classic_mean_ok(x, y, q)
    # inference scales by P(keep) exactly, so training and inference agree in mean
    np.testing.assert_array_equal(
        fastdrop.dropout(x, p, bits=bits, mode="classic", training=False), x * q)
    # inverted output (scaled by 1/q) is rejected by the classic check
    y = fastdrop.dropout(x, p, seed=12, stream=2, bits=bits)
    assert not classic_mean_ok(x, y, q)


# ---- independence -------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_adjacent_elements_not_correlated(p, bits):
    f = flags(p, seed=31, stream=5, bits=bits)
    assert uncorrelated(f[:-1], f[1:])
    # 16-bit draws: the two halves of one word, and the seam between words
    assert uncorrelated(f[0::2], f[1::2])
    assert uncorrelated(f[1:-1:2], f[2::2])
    # one Philox block is 4 words (8 draws at 16 bits): lags within and across blocks
    for lag in (2, 4, 8):
        assert uncorrelated(f[:-lag], f[lag:])


@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("stream", [0, 1000, 2**32 - 1, 2**64 - 2])
def test_consecutive_streams_not_correlated(stream, bits):
    """Streams s and s + 1 (also across the 32-bit boundary of the stream number)."""
    a = flags(0.5, seed=77, stream=stream, bits=bits)
    b = flags(0.5, seed=77, stream=stream + 1, bits=bits)
    assert uncorrelated(a, b)
    assert uncorrelated(a[:-1], b[1:])  # and shifted by one element


def test_consecutive_seeds_not_correlated():
    a = flags(0.5, seed=2**32 - 1, stream=3)
    b = flags(0.5, seed=2**32, stream=3)
    assert uncorrelated(a, b)


def test_correlation_check_rejects_correlated_flags():
    """Flags that copy their neighbour (or the other stream) 5% of the time: r ~ 0.05,
    about 70 sigma at this n."""
    a = flags(0.5, seed=77, stream=0)
    b = flags(0.5, seed=77, stream=1)
    copy = np.random.default_rng(0).random(N) < 0.05
    assert not uncorrelated(a, np.where(copy, a, b))
    shifted = a.copy()
    shifted[1:] = np.where(copy[1:], a[:-1], a[1:])
    assert not uncorrelated(shifted[:-1], shifted[1:])
    # the same stream twice is as correlated as can be
    assert not uncorrelated(a, flags(0.5, seed=77, stream=0))


# ---- alpha dropout ------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_alpha_dropout_self_normalising(p, bits):
    x = _normal_x()
    q = fastdrop.effective_p(p, bits)
    y = fastdrop.alpha_dropout(x, p, seed=41, stream=2, bits=bits)
    assert self_normalised(y, q)
    # float32 input too
    y32 = fastdrop.alpha_dropout(x.astype(np.float32), p, seed=41, stream=3, bits=bits)
    assert self_normalised(y32, q)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_alpha_check_rejects_wrong_transforms(p):
    x = _normal_x()
    q = fastdrop.effective_p(p)
    # plain inverted dropout: mean 0 but variance 1 / (1 - q)
    assert not self_normalised(fastdrop.dropout(x, p, seed=41, stream=2), q)
    # the right mask without the affine correction: kept x as is, dropped -alpha'
    y, m = fastdrop.alpha_dropout(x, p, seed=41, stream=2, return_mask=True, mask_format="bool")
    assert not self_normalised(np.where(m, x, -ALPHA_PRIME), q)
    # the right output with a scale 2% off
    assert self_normalised(y, q)
    assert not self_normalised(y * 1.02, q)
    assert not self_normalised(y * 0.98, q)


# ---- noise_shape: channel dropout -----------------------------------------------------------

NCHW = (256, 512, 2, 2)  # 2**17 channels, 2**19 elements


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_channel_dropout(p):
    x = (1.0 + np.random.default_rng(9).random(NCHW)).astype(np.float32)  # no zeros
    noise = NCHW[:2] + (1, 1)
    y, m = fastdrop.dropout(x, p, seed=51, stream=4, noise_shape=noise, return_mask=True,
                            mask_format="bool")
    assert m.shape == noise
    assert channels_all_or_nothing(y)
    kept = (y != 0).all(axis=(2, 3))
    np.testing.assert_array_equal(kept, m[:, :, 0, 0])
    scale = np.float32(fastdrop.dropout_scale(p))
    np.testing.assert_array_equal(y[kept], x[kept] * scale)
    n_ch = NCHW[0] * NCHW[1]
    q = keep_prob(p)
    assert binomial_ok(np.count_nonzero(kept), n_ch, q)
    # neighbouring channels and samples are independent
    assert uncorrelated(kept[:, :-1].ravel(), kept[:, 1:].ravel())
    assert uncorrelated(kept[:-1].ravel(), kept[1:].ravel())
    # element-wise dropout is not channel dropout; a wrong p is rejected by the fraction
    assert not channels_all_or_nothing(fastdrop.dropout(x, p, seed=51, stream=4))
    y_wrong = fastdrop.dropout(x, p + 0.03, seed=51, stream=4, noise_shape=noise)
    assert not binomial_ok(np.count_nonzero((y_wrong != 0).all(axis=(2, 3))), n_ch, q)


def test_channel_dropout_backward_matches_forward_channels():
    """The gradient regenerated from the seed drops the same channels."""
    x = (1.0 + np.random.default_rng(10).random(NCHW)).astype(np.float32)
    noise = NCHW[:2] + (1, 1)
    y = fastdrop.dropout(x, 0.5, seed=52, stream=1, noise_shape=noise)
    g = fastdrop.dropout_backward(np.ones_like(x), 0.5, seed=52, stream=1, noise_shape=noise)
    assert channels_all_or_nothing(g)
    np.testing.assert_array_equal(g != 0, y != 0)
