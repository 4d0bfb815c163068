"""The general GPU kernels' hoisted index math and the dbias reduction, against the CPU.

The general kernels (`_kernels.dropout_kernel`, the block-map and noise-shape paths, the
bias-dropout-add fallback) compute an index once per unit or row and advance it element
by element, with 32-bit divisions when n < 2^32; dbias is a tiled column reduction
(ncols >= 2) or NumPy's pairwise tree in parallel (ncols == 1).  Each test runs with the
fast path off (so the general kernel runs even where the fast one would), and the index
tests also with the 64-bit index path forced (``backend._SMALL = 0``).
"""
import numpy as np
import pytest

from _cuda_util import host, require_cuda, to_dev

cuda, D = require_cuda()

import fastdrop as fd  # noqa: E402
from fastdrop._cuda import _fast as F  # noqa: E402
from fastdrop._cuda import _kernels as K  # noqa: E402
from fastdrop._cuda import backend as B  # noqa: E402
from _helpers import assert_bits_equal, make_x  # noqa: E402


@pytest.fixture(params=["32-bit", "64-bit"])
def general(request, monkeypatch):
    """The general kernels only, with 32-bit or 64-bit index divisions."""
    prev = F.set_enabled(False)
    if request.param == "64-bit":
        monkeypatch.setattr(B, "_SMALL", 0)
    yield request.param
    F.set_enabled(prev)


def test_noise_axes_are_coalesced():
    assert B._noise_map((2, 3, 4, 5), (2, 3, 1, 1)) == ((6, 20), (1, 0))
    assert B._noise_map((2, 3, 4, 5), (1, 3, 1, 5)) == ((2, 3, 4, 5), (0, 5, 0, 1))
    assert B._noise_map((2, 1, 4, 5), (2, 1, 4, 1)) == ((8, 5), (1, 0))
    assert B._noise_map((3, 4), (1, 1)) == ((12,), (0,))
    assert B._noise_map((1, 1), (1, 1)) == ((1,), (0,))


@pytest.mark.parametrize("shape,noise", [((2, 3, 4, 5), (2, 3, 1, 1)),
                                         ((3, 5, 2, 3), (3, 5, 1, 1)),
                                         ((2, 3, 4, 5), (1, 3, 1, 5)),
                                         ((7, 3), (7, 1)), ((4, 6), (1, 6))], ids=str)
def test_noise_shapes(general, shape, noise):
    if general == "64-bit" and len(shape) == 2:
        pytest.skip("the 4-D shapes cover the 64-bit path (the simulator is slow)")
    x = make_x(shape, np.float32, seed=3)
    xd = to_dev(x)
    for bits in (8, 16):
        for fmt in (("packed", "bool") if bits == 16 else ("packed",)):
            y, m = D.dropout(xd, 0.4, seed=5, noise_shape=noise, bits=bits, return_mask=True,
                             mask_format=fmt)
            cy, cm = fd.dropout(x, 0.4, seed=5, noise_shape=noise, bits=bits,
                                return_mask=True, mask_format=fmt)
            assert_bits_equal(host(y), cy)
            np.testing.assert_array_equal(host(m), cm)
            g = D.dropout_backward(xd, 0.4, mask=m, noise_shape=noise, bits=bits)
            assert_bits_equal(host(g), fd.dropout_backward(x, 0.4, mask=cm, noise_shape=noise,
                                                           bits=bits))
        a = D.alpha_dropout(xd, 0.3, seed=2, noise_shape=noise, bits=bits)
        assert_bits_equal(host(a), fd.alpha_dropout(x, 0.3, seed=2, noise_shape=noise,
                                                    bits=bits))


@pytest.mark.parametrize("blocks,threads", [(1, 1), (2, 3), (3, 7)])
def test_bias_columns_and_blocks_follow_the_grid(general, geometry, blocks, threads):
    """A thread walks several units: the bias column (advanced, not divided) and a
    block's draw indices (one division per unit, then advanced) must follow."""
    geometry(blocks, threads)
    x, r = make_x((6, 5), np.float32, seed=1), make_x((6, 5), np.float32, seed=2)
    b = make_x((5,), np.float32, seed=3, specials=False)
    for bits in (8, 16, 32):
        y, m = D.bias_dropout_add(to_dev(x), to_dev(b), to_dev(r), 0.5, seed=4, bits=bits,
                                  return_mask=True)
        cy, cm = fd.bias_dropout_add(x, b, r, 0.5, seed=4, bits=bits, return_mask=True)
        assert_bits_equal(host(y), cy)
        np.testing.assert_array_equal(host(m), cm)
    g = make_x((5, 7), np.float32, seed=6)
    blk = ((3, 2), (9, 11))
    for bits in (8, 32):
        got = D.dropout(to_dev(g), 0.5, seed=1, bits=bits, block=blk, return_mask=True)
        exp = fd.dropout(g, 0.5, seed=1, bits=bits, block=blk, return_mask=True)
        assert_bits_equal(host(got[0]), exp[0])
        np.testing.assert_array_equal(host(got[1]), exp[1])
        assert_bits_equal(host(D.gaussian_dropout(to_dev(g), 0.3, seed=1, block=blk)),
                          fd.gaussian_dropout(g, 0.3, seed=1, block=blk))


@pytest.fixture
def fast_off():
    prev = F.set_enabled(False)
    yield
    F.set_enabled(prev)


@pytest.mark.parametrize("shape", [(600, 3), (9, 20), (1000, 1), (5000, 1), (5, 1),
                                   (0, 4), (3, 0)], ids=str)
def test_dbias_equals_cpu(fast_off, shape):
    """More rows than one shared-memory tile (ncols >= 2), and NumPy's pairwise tree
    (ncols == 1) over several levels."""
    g = make_x(shape, np.float32, seed=7, specials=False)
    exp = fd.bias_dropout_add_backward(g, 0.3, seed=2, bits=16)
    dx, db, _ = D.bias_dropout_add_backward(to_dev(g), 0.3, seed=2, bits=16)
    assert_bits_equal(host(dx), exp[0])
    assert_bits_equal(host(db), exp[1])


@pytest.mark.parametrize("blocks,threads", [(1, 1), (1, 64), (2, 40), (3, 96)])
def test_dbias_any_geometry(geometry, blocks, threads):
    """Blocks of more than one warp split loading from adding (warps 1.. load the next
    tile while warp 0 adds); tiny blocks take fewer columns each."""
    geometry(blocks, threads)
    g = make_x((300, 21), np.float32, seed=9, specials=False)
    exp = fd.bias_dropout_add_backward(g, 0.3, seed=2)
    assert_bits_equal(host(D.bias_dropout_add_backward(to_dev(g), 0.3, seed=2)[1]), exp[1])
    g1 = make_x((700, 1), np.float32, seed=9, specials=False)
    exp = fd.bias_dropout_add_backward(g1, 0.3, seed=2)
    assert_bits_equal(host(D.bias_dropout_add_backward(to_dev(g1), 0.3, seed=2)[1]), exp[1])


def test_pairwise_depth_matches_numpy_splits():
    assert K.pairwise_depth(128) == 0
    assert K.pairwise_depth(129) == 1
    assert K.pairwise_depth(20000) == 8   # 20000 / 2^8 = 78 <= 128 < 156
    assert K.pairwise_depth(5000) == 6
