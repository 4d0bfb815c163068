"""The dropout kernels against fastdrop.reference, bit for bit."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastdrop as fd
from fastdrop import reference as ref
from _helpers import FLOAT_DTYPES, assert_bits_equal, layouts, make_x

DTYPE_IDS = [d.name for d in FLOAT_DTYPES]
SHAPES = [(), (0,), (1,), (7,), (1023,), (3, 0, 2), (3, 5, 7), (2, 3, 4, 5), (2**16 + 3,)]
PS = [0.0, 1e-7, 0.3, 0.5, 1.0]
BOOL = dict(return_mask=True, mask_format="bool")  # the twin returns (y, bool keep mask)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("p", PS)
def test_forward_equals_reference(dtype, shape, p):
    x = make_x(shape, dtype, seed=len(shape))
    for bits in (8, 16, 32):
        exp_y, exp_keep = ref.dropout(x, p, seed=11, stream=3, bits=bits, **BOOL)
        y, mask = fd.dropout(x, p, seed=11, stream=3, bits=bits, return_mask=True)
        assert_bits_equal(y, exp_y)
        np.testing.assert_array_equal(mask, ref.pack_mask(exp_keep))
        _, bmask = fd.dropout(x, p, seed=11, stream=3, bits=bits, return_mask=True,
                              mask_format="bool")
        np.testing.assert_array_equal(bmask, exp_keep)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", [(5,), (33, 17), (4, 6, 10), (3, 1, 5, 2)], ids=str)
def test_layouts_do_not_change_the_mask(dtype, shape):
    x = make_x(shape, dtype, seed=3)
    exp_y = ref.dropout(x, 0.4, seed=5, stream=6)
    for name, xl in layouts(x).items():
        y = fd.dropout(xl, 0.4, seed=5, stream=6)
        assert_bits_equal(y, exp_y)
        out = np.zeros_like(xl)  # out with the same (non-C) layout
        fd.dropout(xl, 0.4, seed=5, stream=6, out=out)
        assert_bits_equal(out, exp_y)


@pytest.mark.parametrize("mode", ["inverted", "classic"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
def test_modes_training_and_inference(mode, dtype):
    x = make_x((6, 50), dtype)
    for training in (True, False):
        exp_y = ref.dropout(x, 0.25, seed=1, stream=2, training=training, mode=mode)
        y = fd.dropout(x, 0.25, seed=1, stream=2, training=training, mode=mode)
        assert_bits_equal(y, exp_y)
    assert fd.dropout(x, 0.25, training=False) is x  # inverted inference: x itself


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("noise", [(4, 3, 1, 1), (1, 3, 1, 1), (4, 1, 5, 1), (1, 1, 1, 6),
                                   (None, 3, 1, 1)], ids=str)
def test_noise_shape(dtype, noise):
    x = make_x((4, 3, 5, 6), dtype, seed=9)
    resolved = tuple(s if d is None else d for d, s in zip(noise, x.shape))
    exp_y, exp_keep = ref.dropout(x, 0.5, seed=2, stream=8, noise_shape=resolved, **BOOL)
    for xl in layouts(x).values():
        y, mask = fd.dropout(xl, 0.5, seed=2, stream=8, noise_shape=noise, return_mask=True)
        assert_bits_equal(y, exp_y)
        np.testing.assert_array_equal(mask, ref.pack_mask(exp_keep))
        assert mask.size == (int(np.prod(resolved)) + 7) // 8
    # the mask is the one dropout_mask draws over the noise shape
    np.testing.assert_array_equal(
        fd.dropout_mask(resolved, 0.5, seed=2, stream=8, packed=False), exp_keep)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("mode", ["inverted", "classic"])
@pytest.mark.parametrize("noise", [None, (8, 1, 9)], ids=str)
def test_backward_from_packed_bool_and_seed(dtype, mode, noise):
    shape = (8, 7, 9)
    x = make_x(shape, dtype, seed=1)
    g = make_x(shape, dtype, seed=2)
    resolved = noise or shape
    _, keep = ref.dropout(x, 0.35, seed=4, stream=9, mode=mode, noise_shape=resolved, **BOOL)
    expected = ref.dropout_backward(g, 0.35, mask=keep, mode=mode, noise_shape=resolved)
    _, packed = fd.dropout(x, 0.35, seed=4, stream=9, mode=mode, noise_shape=noise,
                           return_mask=True)
    for gl in layouts(g).values():
        assert_bits_equal(fd.dropout_backward(gl, 0.35, mask=packed, mode=mode,
                                              noise_shape=noise), expected)
        assert_bits_equal(fd.dropout_backward(gl, 0.35, mask=keep, mode=mode,
                                              noise_shape=noise), expected)
        assert_bits_equal(fd.dropout_backward(gl, 0.35, seed=4, stream=9, mode=mode,
                                              noise_shape=noise), expected)


@given(data=st.data(), dtype=st.sampled_from(FLOAT_DTYPES), bits=st.sampled_from([8, 16, 32]),
       mode=st.sampled_from(["inverted", "classic"]),
       p=st.one_of(st.sampled_from([0.0, 1.0, 0.5, 2.0**-17]), st.floats(0, 1)),
       seed=st.integers(0, 2**64 - 1), stream=st.integers(0, 2**64 - 1))
def test_property_any_layout_any_noise(data, dtype, bits, mode, p, seed, stream):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=7))
    x = make_x(shape, dtype, seed=data.draw(st.integers(0, 100)))
    noise = tuple(data.draw(st.sampled_from([s, 1])) for s in shape)
    exp_y, exp_keep = ref.dropout(x, p, seed=seed, stream=stream, mode=mode,
                                  noise_shape=noise, bits=bits, **BOOL)
    xl = x
    if x.ndim:
        perm = data.draw(st.permutations(range(x.ndim)))
        xl = np.ascontiguousarray(x.transpose(perm)).transpose(np.argsort(perm))
        if data.draw(st.booleans()):
            xl = np.flip(np.flip(xl, 0).copy(), 0)
    y, mask = fd.dropout(xl, p, seed=seed, stream=stream, mode=mode, noise_shape=noise,
                         bits=bits, return_mask=True)
    assert_bits_equal(y, exp_y)
    np.testing.assert_array_equal(mask, ref.pack_mask(exp_keep))
    g = make_x(shape, dtype, seed=7)
    assert_bits_equal(fd.dropout_backward(g, p, mask=mask, mode=mode, noise_shape=noise,
                                          bits=bits),
                      ref.dropout_backward(g, p, mask=exp_keep, mode=mode, noise_shape=noise,
                                           bits=bits))


def test_threads_do_not_change_results():
    x = make_x((3, 2**17 + 5), np.float32)
    one = fd.dropout(x, 0.5, seed=1, n_threads=1, return_mask=True)
    two = fd.dropout(x, 0.5, seed=1, n_threads=2, return_mask=True)
    many = fd.dropout(x, 0.5, seed=1, n_threads=7, return_mask=True)
    for a, b in [(one, two), (one, many)]:
        assert_bits_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    xf = np.asfortranarray(x)
    assert_bits_equal(fd.dropout(xf, 0.5, seed=1, n_threads=2), one[0])


def test_in_place():
    x = make_x((1000,), np.float32)
    expected = ref.dropout(x, 0.5, seed=3)
    x_view = x[::-1][::-1]  # the same memory, seen through another view object
    res = fd.dropout(x, 0.5, seed=3, out=x_view)
    assert res is x_view
    assert_bits_equal(x, expected)


def test_nan_policy():
    x = np.array([np.nan, np.inf, -np.inf, -0.0, np.nan, 1.0] * 200, np.float32)
    y, m = fd.dropout(x, 0.5, seed=2, return_mask=True, mask_format="bool")
    assert m.any() and not m.all()
    dropped = y[~m]
    assert (dropped == 0).all() and not np.signbit(dropped).any()  # exactly +0.0
    assert np.isnan(y[m & np.isnan(x)]).all()                        # kept NaN stays NaN
    assert (y[m & np.isinf(x)] == 2 * x[m & np.isinf(x)]).all()


@pytest.mark.parametrize("bits", [8, 16, 32])
def test_p_edges(bits):
    x = make_x((5000,), np.float64)
    assert_bits_equal(fd.dropout(x, 0.0, seed=1, bits=bits), x)  # exact identity
    y, m = fd.dropout(x, 1.0, seed=1, bits=bits, return_mask=True)
    assert_bits_equal(y, np.zeros_like(x))
    assert not m.any()
    # tiny p: drops about p * n elements, never more than the threshold allows
    assert fd.effective_p(1e-7, bits) == ref.effective_p(1e-7, bits)
    assert fd.dropout_scale(0.3, bits) == ref.dropout_scale(0.3, bits)


@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("offset", [0, 13, 2**31 - 3, 2**34 + 5])
def test_dropout_mask_at_offsets(bits, offset):
    """Masks of blocks of logical arrays past 2^31 (and 2^34) elements."""
    shape = (37, 11)
    keep = ref.keep_mask(shape, 0.3, seed=8, stream=1, bits=bits, offset=offset)
    np.testing.assert_array_equal(
        fd.dropout_mask(shape, 0.3, seed=8, stream=1, bits=bits, offset=offset, packed=False),
        keep)
    np.testing.assert_array_equal(
        fd.dropout_mask(shape, 0.3, seed=8, stream=1, bits=bits, offset=offset),
        ref.pack_mask(keep))
    np.testing.assert_array_equal(fd.unpack_mask(ref.pack_mask(keep), shape), keep)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("with_bias", [True, False])
def test_bias_dropout_add(dtype, with_bias):
    shape = (6, 5, 33)
    x, r = make_x(shape, dtype, seed=1), make_x(shape, dtype, seed=2)
    b = make_x((33,), dtype, seed=3, specials=False) if with_bias else None
    exp_y, exp_mask = ref.bias_dropout_add(x, b, r, 0.4, seed=6, stream=2, return_mask=True)
    keep = ref.unpack_mask(exp_mask, shape)
    y, mask = fd.bias_dropout_add(x, b, r, 0.4, seed=6, stream=2, return_mask=True)
    assert_bits_equal(y, exp_y)
    np.testing.assert_array_equal(mask, ref.pack_mask(keep))
    # the same mask as dropout(x)
    np.testing.assert_array_equal(mask, fd.dropout(x, 0.4, seed=6, stream=2, return_mask=True)[1])
    for name, xl in layouts(x).items():
        assert_bits_equal(fd.bias_dropout_add(xl, b, np.asfortranarray(r), 0.4, seed=6, stream=2),
                          exp_y)
    out = r.copy()
    fd.bias_dropout_add(x, b, out, 0.4, seed=6, stream=2, out=out)  # in place on residual
    assert_bits_equal(out, exp_y)
    g = make_x(shape, dtype, seed=4, specials=False)
    dx, db, dr = fd.bias_dropout_add_backward(g, 0.4, mask=mask, has_bias=with_bias)
    edx, edb, edr = ref.bias_dropout_add_backward(g, 0.4, mask=keep, has_bias=with_bias)
    assert_bits_equal(dx, edx)
    assert_bits_equal(dr, edr)
    if with_bias:
        tol = 1e-2 if dtype.itemsize == 2 else 1e-6
        np.testing.assert_allclose(db.astype(np.float64), edb.astype(np.float64), rtol=tol)
    else:
        assert db is None
    dx2, _, _ = fd.bias_dropout_add_backward(g, 0.4, seed=6, stream=2, has_bias=with_bias)
    assert_bits_equal(dx2, edx)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
def test_alpha_dropout(dtype, p):
    x = make_x((7, 301), dtype)
    exp_y, keep = ref.alpha_dropout(x, p, seed=3, stream=4, **BOOL)
    y, mask = fd.alpha_dropout(x, p, seed=3, stream=4, return_mask=True)
    assert_bits_equal(y, exp_y)
    np.testing.assert_array_equal(mask, ref.pack_mask(keep))
    assert_bits_equal(fd.alpha_dropout(np.asfortranarray(x), p, seed=3, stream=4), exp_y)
    g = make_x(x.shape, dtype, seed=5)
    expected = ref.alpha_dropout_backward(g, p, mask=keep)
    assert_bits_equal(fd.alpha_dropout_backward(g, p, mask=mask), expected)
    assert_bits_equal(fd.alpha_dropout_backward(g, p, seed=3, stream=4), expected)
    assert fd.alpha_dropout(x, p, training=False) is x


def test_alpha_dropout_noise_shape():
    x = make_x((4, 3, 10), np.float32)
    exp_y = ref.alpha_dropout(x, 0.3, seed=1, noise_shape=(4, 3, 1))
    assert_bits_equal(fd.alpha_dropout(x, 0.3, seed=1, noise_shape=(4, 3, 1)), exp_y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_outputs_take_the_streaming_store_path(dtype):
    """Outputs of 8 MiB and more use non-temporal stores: same bits, aligned or not,
    in place or not."""
    n = (8 * 2**20) // np.dtype(dtype).itemsize + 13
    x = make_x((n,), dtype, seed=4)
    expected, keep = ref.dropout(x, 0.3, seed=9, stream=1, **BOOL)
    assert_bits_equal(fd.dropout(x, 0.3, seed=9, stream=1), expected)
    backing = np.zeros(n + 1, dtype)
    misaligned = backing[1:]  # 4 or 8 bytes off a 16-byte boundary: the plain loop
    fd.dropout(x, 0.3, seed=9, stream=1, out=misaligned)
    assert_bits_equal(misaligned, expected)
    g = make_x((n,), dtype, seed=5)
    assert_bits_equal(fd.dropout_backward(g, 0.3, mask=ref.pack_mask(keep)),
                      ref.dropout_backward(g, 0.3, mask=keep))
    inplace = x.copy()
    fd.dropout(inplace, 0.3, seed=9, stream=1, out=inplace)
    assert_bits_equal(inplace, expected)


@pytest.mark.parametrize("view", ["every-other", "reversed"])
def test_strided_packed_masks_are_read_by_logical_byte(view):
    """A packed mask with strides (a view) means its logical bytes, as a contiguous one
    does: the backward passes used to read the bytes under its data pointer in a row."""
    x = np.ones(200, np.float32)
    _, m = fd.dropout(x, 0.5, seed=3, return_mask=True)
    v = np.repeat(m, 2)[::2] if view == "every-other" else m[::-1].copy()[::-1]
    assert not v.flags.c_contiguous and np.array_equal(v, m)
    g = make_x((200,), np.float32, seed=1)
    for f in (fd.dropout_backward, fd.alpha_dropout_backward):
        assert_bits_equal(f(g, 0.5, mask=v), f(g, 0.5, mask=m))
    got = fd.bias_dropout_add_backward(g.reshape(20, 10), 0.5, mask=v)
    exp = fd.bias_dropout_add_backward(g.reshape(20, 10), 0.5, mask=m)
    for a, b in zip(got[:2], exp[:2]):
        assert_bits_equal(a, b)
    np.testing.assert_array_equal(fd.unpack_mask(v, 200), fd.unpack_mask(m, 200))


def test_inference_returns_the_callers_array_itself():
    # "x itself" at inference for any ndarray: a subclass (np.matrix, memmap, a user
    # subclass), a read-only array, an unaligned view of a byte buffer (which the kernels
    # would copy to align it); out= still receives a copy
    class Mine(np.ndarray):
        pass

    plain = np.arange(6, dtype=np.float32).reshape(2, 3)
    readonly = plain.copy()
    readonly.flags.writeable = False
    unaligned = np.frombuffer(bytes(25), np.uint8)[1:].view(np.float32).reshape(2, 3)
    assert not unaligned.flags.aligned
    for x in (np.matrix(plain), plain.view(Mine), readonly, unaligned):
        for f in (fd.dropout, fd.alpha_dropout, fd.gaussian_dropout):
            assert f(x, 0.5, training=False) is x
        y, m = fd.dropout(x, 0.5, training=False, return_mask=True)
        assert y is x and m is None
        out = np.empty((2, 3), np.float32)
        assert fd.dropout(x, 0.5, training=False, out=out) is out
        np.testing.assert_array_equal(out, np.asarray(x))
