"""block=(origin, global_shape) on the GPU: every block of a chunking equals the CPU's
result on the whole array (sliced) and the CPU's result with the same block=, bit for bit
(masks, returned masks and argument errors included)."""
import itertools
import math

import numpy as np
import pytest

from _cuda_util import dev_layouts, host, require_cuda, to_dev

cuda, D = require_cuda()

import fastdrop as fd  # noqa: E402
from _helpers import FLOAT_DTYPES, assert_bits_equal, make_x  # noqa: E402

DTYPE_IDS = [d.name for d in FLOAT_DTYPES]

# chunkings (per-axis chunk lengths): the whole array, uneven chunks, single rows /
# columns (blocks that are not runs of whole rows), single elements
CHUNKS_2D = [((5,), (7,)), ((2, 3), (3, 4)), ((1,) * 5, (7,)), ((5,), (2, 1, 4)),
             ((1,) * 5, (1,) * 7)]
CHUNKS_3D = [((3,), (4,), (5,)), ((2, 1), (1, 3), (2, 3)), ((1, 1, 1), (4,), (1,) * 5),
             ((1,) * 3, (1,) * 4, (1,) * 5)]
CASES = [((5, 7), c) for c in CHUNKS_2D] + [((3, 4, 5), c) for c in CHUNKS_3D]
CASE_IDS = [f"{shape}-{chunks}" for shape, chunks in CASES]


def blocks(chunks):
    """(origin, slices) of every block of a chunking (per-axis chunk lengths)."""
    cuts = [np.cumsum((0,) + tuple(c)) for c in chunks]
    for idx in itertools.product(*[range(len(c)) for c in chunks]):
        origin = tuple(int(cuts[d][i]) for d, i in enumerate(idx))
        yield origin, tuple(slice(int(cuts[d][i]), int(cuts[d][i + 1]))
                            for d, i in enumerate(idx))


def noise_slices(sl, noise, gshape):
    """The part of a whole noise-shaped mask that a block (slices `sl`) covers: its own
    slice where the noise has the global length, the one element where it broadcasts."""
    return tuple(s if n == g else slice(0, 1) for s, n, g in zip(sl, noise, gshape))


def results(r, on_device=False):
    """A call's result as a tuple of host arrays (None stays None); on_device: check that
    every array came back from the GPU (a CUDA array)."""
    r = r if isinstance(r, tuple) else (r,)
    if on_device:
        assert all(v is None or D.is_cuda_array(v) for v in r)
        return tuple(None if v is None else host(v) for v in r)
    return tuple(None if v is None else np.asarray(v) for v in r)


def check_blocks(f, arrays, chunks, expect_part):
    """For every block: f on device copies of the block's parts with block= equals f on
    the host parts with the same block= (all outputs), and expect_part(sl, outputs)."""
    gshape = arrays[0].shape
    for origin, sl in blocks(chunks):
        parts = [np.ascontiguousarray(a[sl]) for a in arrays]
        got = results(f(*[to_dev(p) for p in parts], block=(origin, gshape)), on_device=True)
        cpu = results(f(*parts, block=(origin, gshape)))
        assert len(got) == len(cpu)
        for g, c in zip(got, cpu):
            if c is None:
                assert g is None
            elif c.dtype in (np.uint8, np.bool_):
                assert g.dtype == c.dtype and g.shape == c.shape
                np.testing.assert_array_equal(g, c)
            else:
                assert_bits_equal(g, c)
        expect_part(sl, got)


def check_against_whole(f, arrays, chunks, noise=None):
    """check_blocks, with y (and the returned mask, if any) equal to the whole array's
    CPU result, sliced."""
    whole = results(f(*arrays))
    noise = noise or arrays[0].shape

    def expect(sl, got):
        assert_bits_equal(got[0], whole[0][sl])
        if len(got) > 1 and got[1] is not None:
            m, wm = got[1], whole[1]
            gshape = arrays[0].shape
            bnoise = tuple(len(range(*s.indices(n))) if n == g else 1
                           for s, n, g in zip(sl, noise, gshape))
            if m.dtype == np.uint8:
                m, wm = fd.unpack_mask(m, bnoise), fd.unpack_mask(wm, noise)
            np.testing.assert_array_equal(m, wm[noise_slices(sl, noise, gshape)])

    check_blocks(f, arrays, chunks, expect)


# ---- dropout -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape, chunks", CASES, ids=CASE_IDS)
def test_dropout_blocks_equal_the_whole(dtype, shape, chunks):
    x = make_x(shape, dtype, seed=len(chunks[0]))
    for bits in (16, 32):
        f = lambda a, **k: fd.dropout(a, 0.4, seed=3, stream=1, bits=bits,  # noqa: E731
                                      return_mask=True, **k)
        check_against_whole(f, [x], chunks)


@pytest.mark.parametrize("fmt", ["packed", "bool"])
@pytest.mark.parametrize("shape, chunks", [CASES[1], CASES[3], CASES[6]], ids=str)
def test_dropout_bool_mask_and_classic_mode(fmt, shape, chunks):
    x = make_x(shape, np.float32, seed=2)
    f = lambda a, **k: fd.dropout(a, 0.3, seed=5, stream=2, mode="classic",  # noqa: E731
                                  return_mask=True, mask_format=fmt, **k)
    check_against_whole(f, [x], chunks)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("noise", [(3, 1, 5), (1, 4, 1), (3, 4, 1), (1, 1, 1)], ids=str)
@pytest.mark.parametrize("fmt", ["packed", "bool"])
def test_noise_shape_refers_to_the_global_array(dtype, noise, fmt):
    x = make_x((3, 4, 5), dtype, seed=7)
    for bits in (16, 32):
        fwd = lambda a, **k: fd.dropout(a, 0.5, seed=8, bits=bits,  # noqa: E731
                                        noise_shape=noise, return_mask=True,
                                        mask_format=fmt, **k)
        alpha = lambda a, **k: fd.alpha_dropout(a, 0.5, seed=8, bits=bits,  # noqa: E731
                                                noise_shape=noise, return_mask=True,
                                                mask_format=fmt, **k)
        bwd = lambda a, **k: fd.dropout_backward(a, 0.5, seed=8, bits=bits,  # noqa: E731
                                                 noise_shape=noise, **k)
        for f in (fwd, alpha, bwd):
            check_against_whole(f, [x], CHUNKS_3D[1], noise)
    check_against_whole(fwd, [x], CHUNKS_3D[2], noise)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape, chunks", [CASES[1], CASES[3], CASES[6]], ids=str)
def test_backward_from_seed_and_from_the_block_mask(dtype, shape, chunks):
    g = make_x(shape, dtype, seed=4)
    for bits in (16, 32):
        seeded = lambda a, **k: fd.dropout_backward(a, 0.4, seed=3, stream=1,  # noqa: E731
                                                    bits=bits, **k)
        check_against_whole(seeded, [g], chunks)
        # the block's own mask (forward with block=) drives the backward of the block
        whole = fd.dropout_backward(g, 0.4, seed=3, stream=1, bits=bits)
        gshape = g.shape
        for origin, sl in blocks(chunks):
            part = np.ascontiguousarray(g[sl])
            for fmt in ("packed", "bool"):
                _, m = fd.dropout(part, 0.4, seed=3, stream=1, bits=bits, return_mask=True,
                                  mask_format=fmt, block=(origin, gshape))
                got = host(fd.dropout_backward(to_dev(part), 0.4, mask=to_dev(m), bits=bits,
                                               block=(origin, gshape)))
                assert_bits_equal(got, whole[sl])
                assert_bits_equal(got, fd.dropout_backward(part, 0.4, mask=m, bits=bits,
                                                           block=(origin, gshape)))


@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("shape, chunks", [CASES[1], CASES[3], CASES[5], CASES[7]], ids=str)
def test_dropout_mask_blocks(bits, packed, shape, chunks):
    whole = fd.dropout_mask(shape, 0.4, seed=9, stream=2, bits=bits, packed=False)
    for origin, sl in blocks(chunks):
        part = whole[sl].shape
        kw = dict(seed=9, stream=2, bits=bits, packed=packed, block=(origin, shape))
        got = host(fd.dropout_mask(part, 0.4, device="cuda", **kw))
        exp = fd.dropout_mask(part, 0.4, **kw)
        assert got.dtype == exp.dtype and got.shape == exp.shape
        np.testing.assert_array_equal(got, exp)
        np.testing.assert_array_equal(fd.unpack_mask(got, part) if packed else got,
                                      whole[sl])
        np.testing.assert_array_equal(
            host(D.dropout_mask(part, 0.4, **kw)), exp)  # the backend, called directly


# ---- bias-dropout-add, alpha and gaussian dropout --------------------------------------------


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("with_bias", [True, False])
def test_bias_dropout_add_blocks(dtype, with_bias):
    x, r = make_x((3, 4, 5), dtype, seed=1), make_x((3, 4, 5), dtype, seed=2)
    b = make_x((5,), dtype, seed=3, specials=False)
    g = make_x((3, 4, 5), dtype, seed=4, specials=False)
    for bits in (16, 32):
        whole = fd.bias_dropout_add(x, b if with_bias else None, r, 0.3, seed=5, stream=2,
                                    bits=bits, return_mask=True)
        gshape = x.shape
        for origin, sl in blocks(CHUNKS_3D[1]):
            xp, rp = np.ascontiguousarray(x[sl]), np.ascontiguousarray(r[sl])
            bp = np.ascontiguousarray(b[sl[-1]]) if with_bias else None
            kw = dict(seed=5, stream=2, bits=bits, return_mask=True, block=(origin, gshape))
            y, m = fd.bias_dropout_add(to_dev(xp), None if bp is None else to_dev(bp),
                                       to_dev(rp), 0.3, **kw)
            cy, cm = fd.bias_dropout_add(xp, bp, rp, 0.3, **kw)
            assert_bits_equal(host(y), cy)
            assert_bits_equal(host(y), whole[0][sl])
            np.testing.assert_array_equal(host(m), cm)
            np.testing.assert_array_equal(fd.unpack_mask(host(m), xp.shape),
                                          fd.unpack_mask(whole[1], gshape)[sl])
            gp = np.ascontiguousarray(g[sl])
            exp = fd.bias_dropout_add_backward(gp, 0.3, seed=5, stream=2, bits=bits,
                                               has_bias=with_bias, block=(origin, gshape))
            for kwb in (dict(seed=5, stream=2, block=(origin, gshape)), dict(mask=m)):
                dx, db, dr = fd.bias_dropout_add_backward(to_dev(gp), 0.3, bits=bits,
                                                          has_bias=with_bias, **kwb)
                assert_bits_equal(host(dx), exp[0])
                if with_bias:
                    assert_bits_equal(host(db), exp[1])
                else:
                    assert db is None
                assert_bits_equal(host(dr), gp)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape, chunks", [CASES[1], CASES[4], CASES[6]], ids=str)
def test_alpha_dropout_blocks(dtype, shape, chunks):
    x = make_x(shape, dtype, seed=6)
    for p, bits in ((0.4, 16), (0.4, 32), (0.0, 16), (1.0, 32)):
        f = lambda a, **k: fd.alpha_dropout(a, p, seed=3, stream=1,  # noqa: E731
                                            bits=bits, return_mask=True, **k)
        check_against_whole(f, [x], chunks)
    fb = lambda a, **k: fd.alpha_dropout_backward(a, 0.4, seed=3, stream=1, **k)  # noqa
    check_against_whole(fb, [x], chunks)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape, chunks", [CASES[1], CASES[3], CASES[4], CASES[6]], ids=str)
def test_gaussian_dropout_blocks(dtype, shape, chunks):
    x = make_x(shape, dtype, seed=5)
    for f in (lambda a, **k: fd.gaussian_dropout(a, 0.3, seed=12, stream=4, **k),
              lambda a, **k: fd.gaussian_dropout_backward(a, 0.3, seed=12, stream=4, **k)):
        check_against_whole(f, [x], chunks)


# ---- huge arrays: draw indices past 2**32 ------------------------------------------------------


@pytest.mark.parametrize("gshape, origin, shape", [
    ((2**20, 2**20), (2**20 - 3, 2**20 - 8), (3, 8)),       # base ~ 2**40, whole rows' ends
    ((2**20, 2**20), (2**19 + 1, 2**19 - 2), (3, 5)),       # rows not contiguous
    ((2**32, 2**32), (2**32 - 2, 2**32 - 5), (2, 5)),       # last draws below 2**64
    ((3, 2**21, 2**21), (1, 2**21 - 2, 7), (2, 2, 3)),      # 3-D, base > 2**42
], ids=str)
def test_block_of_a_huge_array(gshape, origin, shape):
    x = make_x(shape, np.float32, seed=1)
    xd = to_dev(x)
    strides = [math.prod(gshape[d + 1:]) for d in range(len(gshape))]
    first = sum(o * s for o, s in zip(origin, strides))
    assert first >= 2**32
    blk = (origin, gshape)
    for bits in (16, 32):
        m = host(fd.dropout_mask(shape, 0.5, seed=9, stream=4, bits=bits, packed=False,
                                 block=blk, device="cuda"))
        np.testing.assert_array_equal(m, fd.dropout_mask(shape, 0.5, seed=9, stream=4,
                                                         bits=bits, packed=False, block=blk))
        # each element drew the draw of its global linear index (the CPU generator's)
        for idx in np.ndindex(*shape):
            d = first + sum(i * s for i, s in zip(idx, strides))
            r = fd.random_bits(1, seed=9, stream=4, bits=bits, offset=d)[0]
            assert m[idx] == (r >= 2**(bits - 1))
        y, pm = fd.dropout(xd, 0.5, seed=9, stream=4, bits=bits, return_mask=True, block=blk)
        cy, cpm = fd.dropout(x, 0.5, seed=9, stream=4, bits=bits, return_mask=True, block=blk)
        assert_bits_equal(host(y), cy)
        np.testing.assert_array_equal(host(pm), cpm)
        np.testing.assert_array_equal(fd.unpack_mask(host(pm), shape), m)
    assert_bits_equal(host(fd.gaussian_dropout(xd, 0.3, seed=9, stream=4, block=blk)),
                      fd.gaussian_dropout(x, 0.3, seed=9, stream=4, block=blk))


def test_draw_strides_beyond_int64():
    """A global axis whose draw stride is 2**63 (the CPU driver's int64 strides cannot
    hold it, so there is no CPU block call to compare with): the GPU block still takes the
    draws of its global indices, up to 2**64 - 1, checked against the CPU generator at
    those offsets (keep flags, and gaussian noise: 64 bits of each word's deviate)."""
    gshape, origin, shape = (2, 2**63), (0, 2**63 - 3), (2, 3)
    blk = (origin, gshape)
    draws = [[2**63 - 3 + i * 2**63 + j for j in range(3)] for i in range(2)]
    assert draws[-1][-1] == 2**64 - 1
    m = host(fd.dropout_mask(shape, 0.5, seed=2, stream=3, packed=False, block=blk,
                             device="cuda"))
    sigma = fd.gaussian_sigma(0.3)
    g = host(fd.gaussian_dropout(to_dev(np.ones(shape)), 0.3, seed=2, stream=3, block=blk))
    for i, j in np.ndindex(*shape):
        d = draws[i][j]
        r = fd.random_bits(1, seed=2, stream=3, bits=16, offset=d)[0]
        assert m[i, j] == (r >= 2**15)
        z = fd.standard_normal(1, seed=2, stream=3, offset=d)[0]
        assert_bits_equal(g[i, j], np.float64(1.0) + np.float64(sigma) * z)


# ---- layouts, geometry, edge shapes ------------------------------------------------------------


def test_layouts_of_a_block(geometry):
    x = make_x((4, 6), np.float16, seed=3)
    blk = ((2, 5), (9, 13))
    exp, em = fd.dropout(x, 0.4, seed=2, bits=32, return_mask=True, block=blk)
    for name, xd in dev_layouts(x).items():
        y, m = fd.dropout(xd, 0.4, seed=2, bits=32, return_mask=True, block=blk)
        assert_bits_equal(host(y), exp)
        np.testing.assert_array_equal(host(m), em)
    for blocks_, threads in ((1, 1), (2, 3), (3, 7)):     # any grid gives the same bits
        geometry(blocks_, threads)
        y, m = fd.dropout(to_dev(x), 0.4, seed=2, bits=32, return_mask=True, block=blk)
        assert_bits_equal(host(y), exp)
        np.testing.assert_array_equal(host(m), em)
        assert_bits_equal(host(fd.gaussian_dropout(to_dev(x), 0.4, seed=2, block=blk)),
                          fd.gaussian_dropout(x, 0.4, seed=2, block=blk))
        np.testing.assert_array_equal(
            host(fd.dropout_mask((4, 6), 0.4, seed=2, block=blk, device="cuda")),
            fd.dropout_mask((4, 6), 0.4, seed=2, block=blk))


def test_empty_and_0d_blocks():
    cases = [(np.zeros((0, 3), np.float32), ((2, 0), (4, 3))),
             (np.array(1.5, np.float32), ((), ())),
             (np.ones((1, 1), np.float64), ((3, 4), (5, 6)))]
    for x, blk in cases:
        y, m = fd.dropout(to_dev(x), 0.5, seed=1, return_mask=True, block=blk)
        cy, cm = fd.dropout(x, 0.5, seed=1, return_mask=True, block=blk)
        assert_bits_equal(host(y), cy)
        np.testing.assert_array_equal(host(m), cm)
        assert_bits_equal(host(fd.gaussian_dropout(to_dev(x), 0.5, seed=1, block=blk)),
                          fd.gaussian_dropout(x, 0.5, seed=1, block=blk))
    # an empty block still draws its noise mask (as on the CPU)
    x, blk = np.zeros((0, 3), np.float32), ((1, 0), (4, 3))
    _, m = fd.dropout(to_dev(x), 0.5, seed=1, noise_shape=(1, 3), return_mask=True,
                      block=blk)
    np.testing.assert_array_equal(host(m), fd.dropout(x, 0.5, seed=1, noise_shape=(1, 3),
                                                      return_mask=True, block=blk)[1])


def test_inference_checks_the_block_and_ignores_it():
    x = make_x((2, 3), np.float32, seed=1)
    xd = to_dev(x)
    blk = ((1, 1), (4, 5))
    assert fd.dropout(xd, 0.5, training=False, block=blk) is xd
    assert fd.gaussian_dropout(xd, 0.5, training=False, block=blk) is xd
    assert_bits_equal(host(fd.dropout(xd, 0.5, mode="classic", training=False, block=blk)),
                      fd.dropout(x, 0.5, mode="classic", training=False, block=blk))


# ---- argument errors ---------------------------------------------------------------------------

BAD_BLOCKS = [
    "ab",
    ((0,),),
    ((0, 0), (4, 5, 6)),
    ((1, 0), (4, 5)),
    ((0, 1), (4, 5)),
    ((-1, 0), (4, 5)),
    ((0, 0), (4.5, 5)),
    ((0, 0), (2**40, 2**40)),
    ((0, 0), (4, 5), (1, 1)),
    5,
]

CALLS = {
    "dropout": lambda a, **k: fd.dropout(a, 0.5, seed=1, **k),
    "dropout_noise": lambda a, **k: fd.dropout(a, 0.5, seed=1, noise_shape=(None, 1), **k),
    "dropout_backward": lambda a, **k: fd.dropout_backward(a, 0.5, seed=1, **k),
    "alpha_dropout": lambda a, **k: fd.alpha_dropout(a, 0.5, seed=1, **k),
    "alpha_dropout_backward": lambda a, **k: fd.alpha_dropout_backward(a, 0.5, seed=1, **k),
    "gaussian_dropout": lambda a, **k: fd.gaussian_dropout(a, 0.5, seed=1, **k),
    "gaussian_dropout_backward": lambda a, **k: fd.gaussian_dropout_backward(a, 0.5, seed=1,
                                                                             **k),
    "bias_dropout_add": lambda a, **k: fd.bias_dropout_add(a, None, a, 0.5, seed=1, **k),
    "bias_dropout_add_backward": lambda a, **k: fd.bias_dropout_add_backward(a, 0.5, seed=1,
                                                                             **k),
}


def _same_error(cpu_call, gpu_call):
    with pytest.raises(Exception) as cpu_err:
        cpu_call()
    with pytest.raises(type(cpu_err.value)) as gpu_err:
        gpu_call()
    assert str(gpu_err.value) == str(cpu_err.value)


@pytest.mark.parametrize("block", BAD_BLOCKS, ids=repr)
def test_bad_block_gives_the_cpu_error(block):
    x = np.ones((4, 5), np.float32)
    xd = to_dev(x)
    for name, f in CALLS.items():
        _same_error(lambda: f(x, block=block), lambda: f(xd, block=block))
    _same_error(lambda: fd.dropout_mask((4, 5), 0.5, seed=1, block=block),
                lambda: fd.dropout_mask((4, 5), 0.5, seed=1, block=block, device="cuda"))
    out = to_dev(np.full((4, 5), 7, np.float32))              # nothing written on error
    with pytest.raises((TypeError, ValueError)):
        fd.dropout(xd, 0.5, seed=1, block=block, out=out)
    np.testing.assert_array_equal(host(out), 7)


def test_other_block_errors_match_the_cpu():
    x = np.ones((2, 5), np.float32)
    xd = to_dev(x)
    # offset and block are exclusive
    _same_error(lambda: fd.dropout_mask((4, 5), 0.5, seed=1, offset=3, block=((0, 0), (8, 5))),
                lambda: D.dropout_mask((4, 5), 0.5, seed=1, offset=3, block=((0, 0), (8, 5))))
    # noise_shape refers to the global array: (2, 1) does not broadcast to (4, 5)
    for f in (CALLS["dropout"], CALLS["dropout_backward"], CALLS["alpha_dropout"]):
        _same_error(lambda: f(x, noise_shape=(2, 1), block=((0, 0), (4, 5))),
                    lambda: f(xd, noise_shape=(2, 1), block=((0, 0), (4, 5))))
    # a mask must have the block's noise shape
    m = fd.dropout(x, 0.5, seed=1, noise_shape=(4, 1), block=((2, 0), (4, 5)),
                   return_mask=True, mask_format="bool")[1]
    assert m.shape == (2, 1)
    _same_error(lambda: fd.dropout_backward(x, 0.5, mask=np.ones((4, 1), bool),
                                            noise_shape=(4, 1), block=((2, 0), (4, 5))),
                lambda: fd.dropout_backward(xd, 0.5, mask=to_dev(np.ones((4, 1), bool)),
                                            noise_shape=(4, 1), block=((2, 0), (4, 5))))
    assert_bits_equal(host(fd.dropout_backward(xd, 0.5, mask=to_dev(m), noise_shape=(4, 1),
                                               block=((2, 0), (4, 5)))),
                      fd.dropout_backward(x, 0.5, mask=m, noise_shape=(4, 1),
                                          block=((2, 0), (4, 5))))
