"""Statistical sanity of the generator.

Bounds are set at about six standard deviations: a right generator fails them with
probability below 1e-8, and the same checks reject deliberately broken streams (tested
below, so the checks themselves can fail).
"""
import numpy as np
import pytest

import fastdrop

N_WORDS = 2**22  # 4 Mi words, 16 MiB of bytes


def mean_z(words):
    """z-score of the mean of uint32 words against uniform on [0, 2^32)."""
    n = words.size
    mean = words.astype(np.float64).mean()
    mu, sd = (2.0**32 - 1) / 2, 2.0**32 / np.sqrt(12.0 * n)
    return (mean - mu) / sd


def byte_chi2(words):
    """Pearson chi-square of the 256 byte frequencies (255 degrees of freedom)."""
    counts = np.bincount(words.view(np.uint8), minlength=256).astype(np.float64)
    expected = counts.sum() / 256
    return float(((counts - expected) ** 2 / expected).sum())


# chi2(255): mean 255, sd sqrt(510) = 22.6; 6 sd above (and 5 below: too uniform is a failure)
CHI2_LOW, CHI2_HIGH = 255 - 5 * 22.6, 255 + 6 * 22.6


def looks_uniform(words):
    return abs(mean_z(words)) < 6 and CHI2_LOW < byte_chi2(words) < CHI2_HIGH


@pytest.mark.parametrize("seed,stream", [(0, 0), (12345, 1), (2**64 - 1, 2**64 - 1)])
def test_words_look_uniform(seed, stream):
    words = fastdrop.random_bits(N_WORDS, seed=seed, stream=stream)
    assert abs(mean_z(words)) < 6
    assert CHI2_LOW < byte_chi2(words) < CHI2_HIGH


def test_sixteen_bit_draws_look_uniform():
    draws = fastdrop.random_bits(2 * N_WORDS, seed=77, stream=5, bits=16)
    assert looks_uniform(draws.view(np.uint32))
    hist = np.bincount(draws >> 8, minlength=256).astype(np.float64)  # top byte of each draw
    assert ((hist - hist.mean()) ** 2 / hist.mean()).sum() < CHI2_HIGH


def test_adjacent_streams_are_not_correlated():
    a = fastdrop.random_bits(N_WORDS, seed=9, stream=1000)
    b = fastdrop.random_bits(N_WORDS, seed=9, stream=1001)
    assert looks_uniform(a ^ b)
    r = np.corrcoef(a.astype(np.float64), b.astype(np.float64))[0, 1]
    assert abs(r) < 6 / np.sqrt(N_WORDS)


def test_uniform_mean_and_variance():
    u = fastdrop.uniform(N_WORDS, seed=3, dtype=np.float64)
    assert abs(u.mean() - 0.5) < 6 * np.sqrt(1 / 12 / N_WORDS)
    assert abs(u.var() - 1 / 12) < 6 * np.sqrt(1 / 180 / N_WORDS)


@pytest.mark.parametrize("broken", ["counter", "stuck_bit", "biased", "one_round"])
def test_checks_reject_broken_generators(broken):
    words = fastdrop.random_bits(N_WORDS, seed=1, stream=2)
    if broken == "counter":
        bad = np.arange(N_WORDS, dtype=np.uint32)
    elif broken == "stuck_bit":
        bad = words | np.uint32(1)
    elif broken == "biased":
        bad = words >> np.uint32(1)
    else:  # Philox with a single round on consecutive counters
        ctr = np.zeros((N_WORDS // 4, 4), np.uint32)
        ctr[:, 0] = np.arange(N_WORDS // 4, dtype=np.uint32)
        bad = fastdrop.philox4x32(ctr, [1, 0], rounds=1).ravel()
    assert not looks_uniform(bad)
