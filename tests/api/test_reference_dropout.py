"""The pure-NumPy dropout reference against docs/contract.md sections 4-7.

The reference is the oracle of every backend, so here it is checked against the contract
itself: exact hand-computed values, plain-integer readings of the keep rule, and
statistical properties with bounds of about six standard deviations.
"""
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastdrop import reference as ref

U64 = st.integers(0, 2**64 - 1)
FLOATS = [np.float16, np.float32, np.float64]  # bfloat16 cases use the `bf16` fixture
SPECIAL = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1.5, -2.25, 3.0]
BOOL = dict(return_mask=True, mask_format="bool")  # return (y, bool keep mask)


@pytest.fixture
def bf16():
    return pytest.importorskip("ml_dtypes").bfloat16


def bitwise_equal(a, b):
    """Equal dtype, shape and bytes (so -0.0 != +0.0 and NaN == NaN of the same payload)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def special_input(dtype, n=4096):
    """n values cycling through NaN, +-Inf, -0.0 and finite numbers."""
    return np.resize(np.array(SPECIAL, dtype=np.float64), n).astype(dtype)


# --- threshold, effective_p, dropout_scale ------------------------------------------------

@pytest.mark.parametrize("p,bits,t", [
    (0.0, 16, 0), (0.0, 32, 0),
    (1.0, 16, 2**16), (1.0, 32, 2**32),
    (0.5, 16, 2**15), (0.5, 32, 2**31),
    (0.1, 16, 6554), (0.1, 32, 429496730),          # 6553.6 and 429496729.6
    (1e-9, 16, 0), (1e-9, 32, 4),                   # 6.5536e-5 and 4.294967296
    (1 - 1e-12, 16, 2**16), (1 - 1e-12, 32, 2**32),  # within 0.005 of 2^bits
])
def test_threshold_exact_values(p, bits, t):
    assert ref.threshold(p, bits) == t
    assert ref.effective_p(p, bits) == t / 2**bits
    assert ref.dropout_scale(p, bits) == (0.0 if t == 2**bits else 2**bits / (2**bits - t))


def test_scale_hand_values():
    assert ref.dropout_scale(0.0) == 1.0
    assert ref.dropout_scale(0.5) == 2.0
    assert ref.dropout_scale(0.75, 32) == 4.0
    assert ref.dropout_scale(1.0) == 0.0
    assert ref.dropout_scale(0.1) == 65536 / 58982
    assert ref.dropout_scale(1e-9, 32) == 2**32 / (2**32 - 4)
    assert isinstance(ref.dropout_scale(0.3), float)
    assert isinstance(ref.threshold(0.3), int)


@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("k,t", [(0, 0), (1, 2), (2, 2), (3, 4), (100, 100), (101, 102)])
def test_threshold_ties_round_half_even(bits, k, t):
    p = (k + 0.5) / 2**bits  # exactly representable, p * 2^bits = k + 1/2
    assert p * 2**bits == k + 0.5
    assert ref.threshold(p, bits) == t


@given(p=st.floats(0, 1), bits=st.sampled_from([8, 16, 32]))
def test_threshold_is_exact_rational_rounding(p, bits):
    """round() on a Fraction rounds half to even, exactly: an independent reading."""
    assert ref.threshold(p, bits) == min(max(round(Fraction(p) * 2**bits), 0), 2**bits)
    q = ref.effective_p(p, bits)
    assert Fraction(q) == Fraction(ref.threshold(p, bits), 2**bits)
    assert abs(q - p) <= 0.5 / 2**bits


# --- keep_mask -----------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 0.999, 1.0])
def test_keep_mask_is_draws_at_least_t_by_hand(bits, p):
    shape = (3, 7, 5)
    draws = ref.random_bits(shape, seed=1234, stream=56, bits=bits).ravel().tolist()
    t = min(max(round(Fraction(p) * 2**bits), 0), 2**bits)
    expected = np.array([int(r) >= t for r in draws]).reshape(shape)
    keep = ref.keep_mask(shape, p, 1234, 56, bits)
    assert keep.dtype == bool and keep.shape == shape
    np.testing.assert_array_equal(keep, expected)


@pytest.mark.parametrize("bits", [8, 16, 32])
def test_keep_mask_extremes(bits):
    assert ref.keep_mask(10_000, 0.0, 7, 8, bits).all()
    assert not ref.keep_mask(10_000, 1.0, 7, 8, bits).any()  # t = 2^bits: nothing kept
    # one draw below t is dropped, one at t is kept
    r = ref.random_bits(2, seed=7, stream=8, bits=bits).astype(np.int64)
    lo, hi = sorted(r.tolist())
    if lo < hi:
        p = hi / 2**bits
        np.testing.assert_array_equal(ref.keep_mask(2, p, 7, 8, bits), r >= hi)


@given(seed=U64, stream=U64, offset=st.integers(0, 2**40), n=st.integers(0, 300),
       bits=st.sampled_from([8, 16, 32]))
def test_keep_mask_offset_is_a_slice(seed, stream, offset, n, bits):
    big = ref.keep_mask(n + 11, 0.4, seed, stream, bits, offset)
    np.testing.assert_array_equal(ref.keep_mask(n, 0.4, seed, stream, bits, offset + 11),
                                  big[11:])


@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_fraction_binomial(bits, p):
    n = 2**20
    kept = int(ref.keep_mask(n, p, 2024, 3, bits).sum())
    pk = 1 - ref.effective_p(p, bits)
    assert abs(kept - n * pk) < 6 * math.sqrt(n * pk * (1 - pk))


# --- pack_mask / unpack_mask ---------------------------------------------------------------

def test_pack_hand_case():
    keep = np.array([1, 0, 0, 0, 0, 0, 0, 0, 1, 1], dtype=bool)
    np.testing.assert_array_equal(ref.pack_mask(keep), np.array([1, 3], dtype=np.uint8))
    np.testing.assert_array_equal(ref.pack_mask(np.ones(10, bool)), [255, 3])  # padding 0
    np.testing.assert_array_equal(ref.pack_mask(np.zeros(0, bool)), np.zeros(0, np.uint8))


@given(shape=st.lists(st.integers(0, 13), min_size=1, max_size=3), seed=U64)
def test_pack_unpack_round_trip(shape, seed):
    keep = ref.keep_mask(tuple(shape), 0.5, seed)
    n = keep.size
    packed = ref.pack_mask(keep)
    assert packed.dtype == np.uint8 and packed.shape == (-(-n // 8),)
    assert bitwise_equal(packed, np.packbits(keep.ravel(), bitorder="little"))
    if n % 8:
        assert packed[-1] >> (n % 8) == 0  # padding bits are zero
    for k in range(n):  # bit k % 8 of byte k // 8 is element k's flag, C order
        assert bool((packed[k // 8] >> (k % 8)) & 1) == keep.ravel()[k]
    back = ref.unpack_mask(packed, tuple(shape))
    assert back.dtype == bool
    np.testing.assert_array_equal(back, keep)


# --- dropout forward -----------------------------------------------------------------------

def test_dropout_small_case_by_hand():
    x = np.arange(1.0, 11.0)
    y, keep = ref.dropout(x, 0.5, seed=99, stream=4, **BOOL)
    draws = ref.random_bits(10, seed=99, stream=4, bits=16).tolist()
    assert keep.tolist() == [r >= 32768 for r in draws]
    assert y.tolist() == [2 * v if r >= 32768 else 0.0 for v, r in zip(x.tolist(), draws)]


@pytest.mark.parametrize("mode", ["inverted", "classic"])
@pytest.mark.parametrize("dtype", FLOATS + ["bfloat16"])
def test_dropped_is_positive_zero_and_nan_survives(dtype, mode, request):
    if dtype == "bfloat16":
        dtype = request.getfixturevalue("bf16")
    x = special_input(dtype)
    y, keep = ref.dropout(x, 0.5, seed=5, stream=6, mode=mode, **BOOL)
    assert y.dtype == x.dtype and y.shape == x.shape and 0 < keep.sum() < keep.size
    dropped = y[~keep].astype(np.float64)
    assert (dropped == 0).all() and not np.signbit(dropped).any()
    kept_x, kept_y = x[keep].astype(np.float64), y[keep].astype(np.float64)
    np.testing.assert_array_equal(np.isnan(kept_y), np.isnan(kept_x))
    assert np.isnan(kept_x).any() and np.isinf(kept_y).any()
    assert np.signbit(kept_y[kept_x == 0]).tolist() == np.signbit(kept_x[kept_x == 0]).tolist()


@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_full_precision_arithmetic(dtype, bits):
    x = np.random.default_rng(1).standard_normal(5000).astype(dtype)
    p = 0.3
    y, keep = ref.dropout(x, p, seed=1, stream=2, bits=bits, **BOOL)
    expected = np.where(keep, x * dtype(ref.dropout_scale(p, bits)), dtype(0))
    assert bitwise_equal(y, expected)


@pytest.mark.parametrize("dtype", [np.float16, "bfloat16"])
def test_half_precision_rounds_once(dtype, request):
    if dtype == "bfloat16":
        dtype = request.getfixturevalue("bf16")
    x = (np.random.default_rng(2).standard_normal(20000) * 100).astype(dtype)
    p = 0.1  # scale 65536 / 58982 is not exact in float32 nor in the half type
    y, keep = ref.dropout(x, p, seed=3, stream=4, **BOOL)
    s32 = np.float32(ref.dropout_scale(p))
    expected = np.where(keep, x.astype(np.float32) * s32, np.float32(0)).astype(dtype)
    assert bitwise_equal(y, expected)
    # rounding twice (product in the half type) differs somewhere: the test can tell
    twice = np.where(keep, (x * np.asarray(s32).astype(dtype)).astype(dtype), 0).astype(dtype)
    assert not bitwise_equal(y, twice)


def test_float16_overflow_rounds_to_inf():
    x = np.array([65504.0, -65504.0], dtype=np.float16)
    y, keep = ref.dropout(x, 0.0, seed=0, **BOOL)
    assert bitwise_equal(y, x)  # p = 0: identity, no overflow
    y, keep = ref.dropout(x, 0.5, seed=0, noise_shape=(1,), **BOOL)
    assert y.tolist() == ([np.inf, -np.inf] if keep[0] else [0.0, 0.0])


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_inverted_is_unbiased(p):
    n = 2**20
    x = np.full(n, 1.5)
    y = ref.dropout(x, p, seed=11, stream=12)
    q = ref.effective_p(p)
    sd_of_mean = 1.5 * math.sqrt(q / (1 - q) / n)
    assert abs(y.mean() - 1.5) < 6 * sd_of_mean


@pytest.mark.parametrize("dtype", FLOATS + ["bfloat16"])
def test_classic_training_keeps_values(dtype, request):
    if dtype == "bfloat16":
        dtype = request.getfixturevalue("bf16")
    x = special_input(dtype)
    y, keep = ref.dropout(x, 0.25, seed=8, stream=9, mode="classic", **BOOL)
    assert bitwise_equal(y, np.where(keep, x, np.zeros((), dtype)))
    assert bitwise_equal(y[keep], x[keep])


@pytest.mark.parametrize("dtype", FLOATS)
def test_inference(dtype):
    x = special_input(dtype, 64)
    y, keep = ref.dropout(x, 0.25, seed=1, training=False, **BOOL)
    assert keep is None and bitwise_equal(y, x) and y is x  # x itself, as fastdrop
    y, keep = ref.dropout(x, 0.25, seed=1, training=False, mode="classic", **BOOL)
    cd = np.float64 if dtype == np.float64 else np.float32
    assert keep is None
    assert bitwise_equal(y, (x.astype(cd) * cd(0.75)).astype(dtype))
    assert y[x == 3.0].tolist() == [2.25] * int((x == 3.0).sum())  # 3 * 0.75, exact


def test_classic_inference_uses_effective_p():
    x = np.array([1.0])
    y = ref.dropout(x, 0.1, seed=0, training=False, mode="classic")
    assert y[0] == 58982 / 65536 and y[0] != 0.9


@pytest.mark.parametrize("mode", ["inverted", "classic"])
@pytest.mark.parametrize("dtype", FLOATS + ["bfloat16"])
def test_p0_identity_p1_zeros(dtype, mode, request):
    if dtype == "bfloat16":
        dtype = request.getfixturevalue("bf16")
    x = special_input(dtype, 100)
    for bits in (8, 16, 32):
        y, keep = ref.dropout(x, 0.0, seed=3, mode=mode, bits=bits, **BOOL)
        assert keep.all() and bitwise_equal(y, x)
        y, keep = ref.dropout(x, 1.0, seed=3, mode=mode, bits=bits, **BOOL)
        assert not keep.any() and bitwise_equal(y, np.zeros(100, dtype))


@pytest.mark.parametrize("bits", [8, 16, 32])
def test_noise_shape_channel_masks(bits):
    x = np.ones((4, 8, 5, 6), dtype=np.float32)
    y, keep = ref.dropout(x, 0.5, seed=21, stream=22, noise_shape=(4, 8, 1, 1), bits=bits,
                          **BOOL)
    assert keep.shape == (4, 8, 1, 1)
    np.testing.assert_array_equal(keep, ref.keep_mask((4, 8, 1, 1), 0.5, 21, 22, bits))
    assert 0 < keep.sum() < keep.size
    # each (n, c) channel is all 2.0 (kept) or all 0.0 (dropped)
    np.testing.assert_array_equal(y, np.broadcast_to(np.where(keep, 2.0, 0.0), x.shape))
    # mask drawn in the noise shape's own C order: (1, 8, 5, 1) uses 40 draws
    _, keep2 = ref.dropout(x, 0.5, seed=21, stream=22, noise_shape=(1, 8, 5, 1), bits=bits,
                           **BOOL)
    np.testing.assert_array_equal(keep2.ravel(), ref.keep_mask(40, 0.5, 21, 22, bits))


@given(seed=U64, stream=U64, shape=st.lists(st.integers(0, 9), min_size=1, max_size=3),
       p=st.floats(0, 1), bits=st.sampled_from([8, 16, 32]))
def test_mask_is_keep_mask(seed, stream, shape, p, bits):
    x = np.ones(shape)
    y, keep = ref.dropout(x, p, seed=seed, stream=stream, bits=bits, **BOOL)
    np.testing.assert_array_equal(keep, ref.keep_mask(tuple(shape), p, seed, stream, bits))
    np.testing.assert_array_equal(y, np.where(keep, ref.dropout_scale(p, bits), 0.0))


# --- dropout backward ----------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["inverted", "classic"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_backward_matches_forward(dtype, mode):
    x = special_input(dtype, 3000)
    p = 0.3
    y, keep = ref.dropout(x, p, seed=4, stream=5, mode=mode, **BOOL)
    # the same linear map
    assert bitwise_equal(ref.dropout_backward(x, p, mask=keep, mode=mode), y)
    ones = ref.dropout_backward(np.ones_like(x), p, mask=keep, mode=mode)
    expected = dtype(ref.dropout_scale(p)) if mode == "inverted" else dtype(1)
    np.testing.assert_array_equal(ones, np.where(keep, expected, dtype(0)))
    assert not np.signbit(ref.dropout_backward(-np.ones_like(x), p, mask=keep,
                                                mode=mode)[~keep]).any()


def test_backward_broadcasts_noise_shape():
    g = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4) + 1
    x = np.ones_like(g)
    _, keep = ref.dropout(x, 0.5, seed=6, noise_shape=(2, 3, 1), **BOOL)
    dx = ref.dropout_backward(g, 0.5, mask=keep, noise_shape=(2, 3, 1))
    np.testing.assert_array_equal(dx, np.where(np.broadcast_to(keep, g.shape), 2 * g, 0.0))


# --- fused bias-dropout-add ----------------------------------------------------------------

@pytest.mark.parametrize("with_bias", [True, False])
def test_bias_dropout_add_float64(with_bias):
    rng = np.random.default_rng(7)
    x, residual = rng.standard_normal((2, 5, 16)), rng.standard_normal((2, 5, 16))
    bias = rng.standard_normal(16) if with_bias else None
    y, packed = ref.bias_dropout_add(x, bias, residual, 0.2, seed=31, stream=32, return_mask=True)
    keep = ref.unpack_mask(packed, x.shape)
    d, keep_d = ref.dropout(x + (bias if with_bias else 0.0), 0.2, seed=31, stream=32, **BOOL)
    np.testing.assert_array_equal(keep, keep_d)
    np.testing.assert_array_equal(keep, ref.keep_mask(x.shape, 0.2, 31, 32))
    assert bitwise_equal(y, residual + d)


@pytest.mark.parametrize("dtype", [np.float16, "bfloat16"])
def test_bias_dropout_add_half_rounds_once(dtype, request):
    if dtype == "bfloat16":
        dtype = request.getfixturevalue("bf16")
    rng = np.random.default_rng(8)
    x, residual, bias = (rng.standard_normal(s).astype(dtype) for s in ((64, 32), (64, 32), 32))
    y, packed = ref.bias_dropout_add(x, bias, residual, 0.1, seed=1, stream=2, return_mask=True)
    keep = ref.unpack_mask(packed, x.shape)
    f = np.float32
    v = np.where(keep, (x.astype(f) + bias.astype(f)) * f(ref.dropout_scale(0.1)), f(0))
    assert bitwise_equal(y, (residual.astype(f) + v).astype(dtype))
    # unfused (rounding after each step) differs somewhere
    unfused = residual + ref.dropout(x + bias, 0.1, seed=1, stream=2)
    assert not bitwise_equal(y, unfused)


def test_bias_dropout_add_dropped_and_extremes():
    x = np.full((3, 4), np.nan)
    residual = np.full((3, 4), -0.0)
    y, packed = ref.bias_dropout_add(x, np.zeros(4), residual, 1.0, seed=0, return_mask=True)
    keep = ref.unpack_mask(packed, x.shape)
    assert not keep.any() and bitwise_equal(y, np.zeros((3, 4)))  # -0.0 + +0.0 = +0.0
    x = np.arange(12.0).reshape(3, 4)
    y, packed = ref.bias_dropout_add(x, np.ones(4), np.ones((3, 4)), 0.0, seed=0, return_mask=True)
    keep = ref.unpack_mask(packed, x.shape)
    assert keep.all() and bitwise_equal(y, x + 2)


def test_bias_dropout_add_backward():
    grad = np.ones((2, 3, 4), dtype=np.float32)
    keep = ref.keep_mask(grad.shape, 0.5, 9, 10)
    dx, dbias, dres = ref.bias_dropout_add_backward(grad, 0.5, mask=keep)
    assert dx.shape == grad.shape and dbias.shape == (4,) and dres.shape == grad.shape
    assert dx.dtype == dbias.dtype == dres.dtype == np.float32
    assert bitwise_equal(dx, ref.dropout_backward(grad, 0.5, mask=keep))
    np.testing.assert_array_equal(dbias, 2.0 * keep.sum(axis=(0, 1)))  # hand value
    assert bitwise_equal(dres, grad) and dres is grad  # grad itself, as fastdrop
    assert ref.bias_dropout_add_backward(grad, 0.5, mask=keep, has_bias=False)[1] is None


def test_dbias_accumulates_unrounded_products_in_float64():
    """float16: dbias sums the float32 products, not dx (rounded to float16 per element)."""
    grad = np.full((3, 2), 1.1, dtype=np.float16)
    keep = np.ones(grad.shape, dtype=bool)
    dx, dbias, _ = ref.bias_dropout_add_backward(grad, 0.1, mask=keep)
    prod = float(np.float32(grad[0, 0]) * np.float32(ref.dropout_scale(0.1)))
    assert dbias.dtype == np.float16
    assert dbias.tolist() == [float(np.float16(3 * prod))] * 2
    assert dbias.tolist() != dx.astype(np.float64).sum(axis=0).astype(np.float16).tolist()


# --- alpha dropout -------------------------------------------------------------------------

def test_alpha_prime_is_selu_scale_times_alpha():
    selu_alpha, selu_scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    assert ref.ALPHA_PRIME == pytest.approx(selu_alpha * selu_scale, rel=1e-15)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_alpha_dropout_self_normalising(p):
    n = 2**20
    x = np.random.default_rng(13).standard_normal(n)
    y, keep = ref.alpha_dropout(x, p, seed=14, stream=15, **BOOL)
    assert 0 < keep.sum() < n
    assert abs(y.mean()) < 6 / math.sqrt(n)
    assert abs(y.var() - 1) < 0.02
    # a plain (unadjusted) drop-to-saturation would fail the same check
    raw = np.where(keep, x, -ref.ALPHA_PRIME)
    assert abs(raw.mean()) > 6 / math.sqrt(n) or abs(raw.var() - 1) > 0.02


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_alpha_dropout_formula(dtype):
    x = special_input(dtype, 2000)
    p = 0.5
    y, keep = ref.alpha_dropout(x, p, seed=16, stream=17, **BOOL)
    q, ap = 0.5, ref.ALPHA_PRIME
    a = ((1 - q) * (1 + q * ap**2)) ** -0.5  # pow, as specified: 1 / sqrt differs in the last bit
    cd = np.float64 if dtype == np.float64 else np.float32
    kept = (x.astype(cd) * cd(a) + cd(a * ap * q)).astype(dtype)
    dropped = np.asarray(cd(-a * ap * (1 - q))).astype(dtype)
    assert bitwise_equal(y, np.where(keep, kept, dropped))
    assert np.isnan(y[~keep].astype(np.float64)).sum() == 0  # dropped NaN becomes d
    assert bitwise_equal(ref.alpha_dropout_backward(np.ones_like(x), p, mask=keep),
                         np.where(keep, np.asarray(cd(a)).astype(dtype), np.zeros((), dtype)))


def test_alpha_dropout_extremes_and_inference():
    x = special_input(np.float32, 100)
    y, keep = ref.alpha_dropout(x, 0.0, seed=1, **BOOL)
    assert keep.all() and bitwise_equal(y, x)
    y, keep = ref.alpha_dropout(x, 1.0, seed=1, **BOOL)
    assert not keep.any() and bitwise_equal(y, np.zeros_like(x))
    assert bitwise_equal(ref.alpha_dropout_backward(x, 1.0, mask=keep), np.zeros_like(x))
    y, keep = ref.alpha_dropout(x, 0.3, seed=1, training=False, **BOOL)
    assert keep is None and bitwise_equal(y, x) and y is x  # x itself, as fastdrop


def test_alpha_dropout_noise_shape_and_backward():
    x = np.random.default_rng(18).standard_normal((3, 6, 7))
    y, keep = ref.alpha_dropout(x, 0.3, seed=19, stream=20, noise_shape=(3, 6, 1), **BOOL)
    assert keep.shape == (3, 6, 1)
    np.testing.assert_array_equal(keep, ref.keep_mask((3, 6, 1), 0.3, 19, 20))
    q, ap = ref.effective_p(0.3), ref.ALPHA_PRIME
    a = ((1 - q) * (1 + q * ap**2)) ** -0.5
    k = np.broadcast_to(keep, x.shape)
    dx = ref.alpha_dropout_backward(x, 0.3, mask=keep, noise_shape=(3, 6, 1))
    assert bitwise_equal(dx, np.where(k, x * a, 0.0))
    np.testing.assert_array_equal(y[k], dx[k] + a * ap * q)  # (x * a) + c, same rounding
    assert (y[~k] == -a * ap * (1 - q)).all()
