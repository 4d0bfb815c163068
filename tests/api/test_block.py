"""block=(origin, global_shape): a block of a larger array draws as its global indices do,
so any chunking of an array gives the whole array's result bit for bit."""
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastdrop as fd
from fastdrop import reference as ref
from _helpers import FLOAT_DTYPES, assert_bits_equal, make_x

DTYPE_IDS = [d.name for d in FLOAT_DTYPES]


def blocks(chunks):
    """(origin, slices) of every block of a chunking (a tuple of per-axis chunk lengths)."""
    cuts = [np.cumsum((0,) + tuple(c)) for c in chunks]
    for idx in itertools.product(*[range(len(c)) for c in chunks]):
        origin = tuple(int(cuts[d][i]) for d, i in enumerate(idx))
        yield origin, tuple(slice(int(cuts[d][i]), int(cuts[d][i + 1]))
                            for d, i in enumerate(idx))


def assemble(f, arrays, chunks, gshape, out_shape=None):
    """Apply f block by block (contiguous copies of each block) and put the results back."""
    out = None
    for origin, sl in blocks(chunks):
        part = f(*[np.ascontiguousarray(a[sl]) for a in arrays], block=(origin, gshape))
        if out is None:
            out = np.zeros(out_shape or gshape, part.dtype)
        out[sl] = part
    return out


OPS = {
    "dropout": lambda a, **k: fd.dropout(a, 0.4, seed=3, stream=1, **k),
    "dropout32": lambda a, **k: fd.dropout(a, 0.4, seed=3, stream=1, bits=32, **k),
    "classic": lambda a, **k: fd.dropout(a, 0.3, seed=3, stream=1, mode="classic", **k),
    "backward": lambda a, **k: fd.dropout_backward(a, 0.4, seed=3, stream=1, **k),
    "alpha": lambda a, **k: fd.alpha_dropout(a, 0.4, seed=3, stream=1, **k),
    "alpha_backward": lambda a, **k: fd.alpha_dropout_backward(a, 0.4, seed=3, stream=1, **k),
    "gaussian": lambda a, **k: fd.gaussian_dropout(a, 0.4, seed=3, stream=1, **k),
    "gaussian_backward": lambda a, **k: fd.gaussian_dropout_backward(a, 0.4, seed=3, stream=1,
                                                                     **k),
    "bda": lambda a, **k: fd.bias_dropout_add(a, None, a, 0.4, seed=3, stream=1, **k),
    "mask": lambda a, **k: fd.dropout_mask(a.shape, 0.4, seed=3, stream=1, packed=False, **k),
}
CHUNKINGS = [((5,), (7,), (9,)), ((2, 3), (1, 6), (4, 5)), ((1,) * 5, (7,), (1,) * 9),
             ((3, 2), (2, 2, 3), (9,)), ((4, 1), (7,), (2, 2, 2, 2, 1))]


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("chunks", CHUNKINGS, ids=str)
def test_blocks_equal_the_whole(op, chunks):
    x = make_x((5, 7, 9), np.float32, seed=1)
    assert_bits_equal(assemble(OPS[op], [x], chunks, x.shape), OPS[op](x))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("noise", [(5, 1, 9), (1, 7, 1), (5, 7, 1), (1, 1, 1)], ids=str)
def test_blocks_with_noise_shape(dtype, noise):
    x = make_x((5, 7, 9), dtype, seed=2)
    for f in (lambda a, **k: fd.dropout(a, 0.5, seed=8, noise_shape=noise, **k),
              lambda a, **k: fd.alpha_dropout(a, 0.5, seed=8, noise_shape=noise, **k),
              lambda a, **k: fd.dropout_backward(a, 0.5, seed=8, noise_shape=noise, **k)):
        for chunks in CHUNKINGS[1:3]:
            assert_bits_equal(assemble(f, [x], chunks, x.shape), f(x))


def test_block_masks_round_trip():
    """A block's returned mask (its own C order) drives its backward."""
    x = make_x((6, 10), np.float32, seed=3)
    g = make_x((6, 10), np.float32, seed=4)
    block = ((2, 3), (20, 30))
    y, mask = fd.dropout(x, 0.5, seed=1, block=block, return_mask=True)
    assert_bits_equal(fd.dropout_backward(g, 0.5, mask=mask),
                      fd.dropout_backward(g, 0.5, seed=1, block=block))
    np.testing.assert_array_equal(
        mask, fd.dropout_mask((6, 10), 0.5, seed=1, block=block))
    whole = fd.dropout_mask((20, 30), 0.5, seed=1, packed=False)
    np.testing.assert_array_equal(fd.unpack_mask(mask, (6, 10)), whole[2:8, 3:13])


@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4),
       data=st.data(), bits=st.sampled_from([8, 16, 32]))
def test_any_chunking_property(shape, data, bits):
    chunks = []
    for n in shape:
        cuts = sorted(data.draw(st.sets(st.integers(1, n - 1), max_size=3)) if n > 1 else [])
        edges = [0] + cuts + [n]
        chunks.append(tuple(b - a for a, b in zip(edges, edges[1:])))
    x = make_x(tuple(shape), np.float64, seed=5, specials=False)
    f = lambda a, **k: fd.dropout(a, 0.5, seed=11, stream=2, bits=bits, **k)  # noqa: E731
    assert_bits_equal(assemble(f, [x], chunks, x.shape), f(x))


def test_block_of_a_huge_array_draws_its_global_indices():
    """A block near the end of a logical array of 2**40 elements: draw indices past 2**32
    (64-bit arithmetic), equal to random_bits at the global linear offsets."""
    gshape = (2**20, 2**20)
    origin = (2**20 - 3, 2**20 - 8)
    m = fd.dropout_mask((3, 8), 0.5, seed=9, stream=4, bits=16, packed=False,
                        block=(origin, gshape))
    for i in range(3):
        first = (origin[0] + i) * gshape[1] + origin[1]
        r = fd.random_bits(8, seed=9, stream=4, bits=16, offset=first)
        np.testing.assert_array_equal(m[i], r >= 2**15)


@pytest.mark.parametrize("block, exc, match", [
    ("ab", TypeError, "block"),
    (((0,),), TypeError, "block"),
    (((0, 0), (4, 5, 6)), ValueError, "one entry per axis"),
    (((1, 0), (4, 5)), ValueError, "does not fit"),
    (((0, 1), (4, 5)), ValueError, "does not fit"),
    (((-1, 0), (4, 5)), ValueError, "origin"),
    (((0, 0), (4.5, 5)), TypeError, "global_shape"),
    (((0, 0), (2**40, 2**40)), ValueError, "2\\*\\*64"),
])
def test_bad_block(block, exc, match):
    x = np.ones((4, 5), np.float32)
    out = np.full((4, 5), 7, np.float32)
    with pytest.raises(exc, match=match):
        fd.dropout(x, 0.5, seed=1, block=block, out=out)
    np.testing.assert_array_equal(out, 7)
    with pytest.raises(exc, match=match):
        fd.dropout_mask((4, 5), 0.5, seed=1, block=block)


def test_block_and_offset_are_exclusive():
    with pytest.raises(ValueError, match="offset or block"):
        fd.dropout_mask((4, 5), 0.5, seed=1, offset=3, block=((0, 0), (8, 5)))


def test_noise_shape_refers_to_the_global_array():
    x = np.ones((2, 5), np.float32)
    with pytest.raises(ValueError, match="noise_shape"):
        fd.dropout(x, 0.5, seed=1, noise_shape=(2, 1), block=((0, 0), (4, 5)))
    y = fd.dropout(x, 0.5, seed=1, noise_shape=(4, 1), block=((2, 0), (4, 5)))
    whole = fd.dropout(np.ones((4, 5), np.float32), 0.5, seed=1, noise_shape=(4, 1))
    assert_bits_equal(y, whole[2:])


@pytest.mark.parametrize("bits", [8, 16, 32])
def test_draw_strides_beyond_int64(bits):
    """A global array of 2 x 2^63 elements: axis 0's draw stride is 2^63, past int64
    (the driver's strides are unsigned 64-bit)."""
    from fastdrop import reference as ref
    got = fd.dropout_mask((2, 1), 0.5, seed=3, stream=1, bits=bits, packed=False,
                          block=((0, 5), (2, 2**63)))
    expected = [ref.keep_mask((1,), 0.5, seed=3, stream=1, bits=bits, offset=5)[0],
                ref.keep_mask((1,), 0.5, seed=3, stream=1, bits=bits, offset=2**63 + 5)[0]]
    np.testing.assert_array_equal(got[:, 0], expected)
    x = make_x((2, 1), np.float64, specials=False)
    y = fd.dropout(x, 0.5, seed=3, stream=1, bits=bits, block=((0, 5), (2, 2**63)))
    np.testing.assert_array_equal(y != 0, got)


@pytest.mark.parametrize("block,noise_shape", [
    (((0, 2), (1, 5)), None),       # 0 rows of a global array of one row
    (((1, 2), (1, 5)), None),       # ... at its end
    (((0, 2), (1, 5)), (1, 1)),     # the noise broadcast over the columns
    (((3, 0), (4, 1)), None),       # a global column, empty block
])
def test_an_empty_block_on_a_global_axis_of_length_one(block, noise_shape):
    # without noise_shape the block's noise is its own shape (section 9): an empty block
    # has an empty mask, the same from every function and from the twin, and each
    # backward reads the mask its forward returned
    shape = (0, 3) if block[1] == (1, 5) else (0, 1)
    x = np.zeros(shape, np.float32)
    kw = dict(seed=1, block=block)
    y, m = fd.dropout(x, 0.5, **kw, noise_shape=noise_shape, return_mask=True)
    _, mr = ref.dropout(x, 0.5, **kw, noise_shape=noise_shape, return_mask=True)
    np.testing.assert_array_equal(m, mr)
    assert fd.dropout_backward(x, 0.5, mask=m, block=block, noise_shape=noise_shape).shape \
        == shape
    if noise_shape is None:
        assert m.size == 0
        for packed in (True, False):
            a = fd.dropout_mask(shape, 0.5, **kw, packed=packed)
            b = ref.dropout_mask(shape, 0.5, **kw, packed=packed)
            assert a.shape == b.shape and a.size == 0
        yb, mb = fd.bias_dropout_add(x, None, x, 0.5, **kw, return_mask=True)
        _, mbr = ref.bias_dropout_add(x, None, x, 0.5, **kw, return_mask=True)
        np.testing.assert_array_equal(mb, mbr)
        dx, db, dr = fd.bias_dropout_add_backward(x, 0.5, mask=mb, block=block,
                                                  has_bias=False)
        assert dx.shape == shape and db is None
