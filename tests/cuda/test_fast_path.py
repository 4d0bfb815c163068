"""The GPU fast path (fastdrop._cuda._fast) against fastdrop.reference and the CPU, bit for bit.

Under the simulator the fast kernels run their plain-Python twins of the vector accesses
and half conversions (the compiled intrinsics are checked by tests/cuda/sass_check.py);
every test also checks that the route it meant was taken (`_fast.launches`).
"""
import numpy as np
import pytest

from _cuda_util import SIMULATOR, host, require_cuda

cuda, D = require_cuda()

import fastdrop as fd  # noqa: E402
from fastdrop import reference as ref  # noqa: E402
from fastdrop._core.ops import Op  # noqa: E402
from fastdrop._cuda import _fast as F  # noqa: E402
from _helpers import FLOAT_DTYPES, assert_bits_equal, make_x  # noqa: E402

DTYPE_IDS = [d.name for d in FLOAT_DTYPES]
BOOL = dict(return_mask=True, mask_format="bool")


def _address(d) -> int:
    if SIMULATOR:
        return d._ary.__array_interface__["data"][0]
    return d.__cuda_array_interface__["data"][0]


def place(x: np.ndarray, misalign: int = 0):
    """x on the device at an address that is 16-byte aligned plus `misalign` bytes."""
    x = np.ascontiguousarray(x)
    raw = cuda.to_device(np.zeros(x.nbytes + 64, np.uint8))
    off = (-_address(raw)) % 16 + misalign
    view = raw[off:off + x.nbytes]
    view.copy_to_device(x.reshape(-1).view(np.uint8))
    return view.view(x.dtype).reshape(x.shape)


class Route:
    """Counts the fast-path launches of a block: ``with Route() as r: ...; r.forward``
    (also r.masked, r.tail)."""

    def __enter__(self):
        self.start = dict(F.launches)
        return self

    def __exit__(self, *exc):
        for key in F.launches:
            setattr(self, key, F.launches[key] - self.start[key])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("n", [0, 5, 8, 37, 203])
def test_forward_and_mask_equal_reference(dtype, bits, n):
    x = make_x((n,), dtype, seed=n + bits)
    xd = place(x)
    per = F.per_iteration(np.dtype(dtype).name, bits)   # bits=8: one Philox block
    fast = n >= per
    for p in (0.0, 1e-7, 0.5, 1.0):
        with Route() as r:
            y, m = D.dropout(xd, p, seed=2**40 + 11, stream=2**33 + 3, bits=bits,
                             return_mask=True)
            y2 = D.dropout(xd, p, seed=2**40 + 11, stream=2**33 + 3, bits=bits)
        ey, ekeep = ref.dropout(x, p, seed=2**40 + 11, stream=2**33 + 3, bits=bits, **BOOL)
        assert_bits_equal(host(y), ey)
        assert_bits_equal(host(y2), ey)
        np.testing.assert_array_equal(host(m), ref.pack_mask(ekeep))
        # p = 1 (t = 2^bits) and fewer than 8 elements take the general kernel
        assert r.forward == (2 if fast and p < 1 else 0), (p, r.forward)
        assert r.tail == (2 if fast and p < 1 and n % per else 0)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
def test_backward_from_seed_alpha_and_classic(dtype):
    g = make_x((3, 29), dtype, seed=5)
    gd = place(g)
    with Route() as r:
        for bits in (16, 32):
            got = D.dropout_backward(gd, 0.3, seed=8, bits=bits)
            assert_bits_equal(host(got), ref.dropout_backward(g, 0.3, seed=8, bits=bits))
            got = D.dropout(gd, 0.3, seed=8, bits=bits, mode="classic")
            assert_bits_equal(host(got), ref.dropout(g, 0.3, seed=8, bits=bits, mode="classic"))
            y, m = D.alpha_dropout(gd, 0.2, seed=4, bits=bits, return_mask=True)
            ey, ekeep = ref.alpha_dropout(g, 0.2, seed=4, bits=bits, **BOOL)
            assert_bits_equal(host(y), ey)
            np.testing.assert_array_equal(host(m), ref.pack_mask(ekeep))
            assert_bits_equal(host(D.alpha_dropout_backward(gd, 0.2, seed=4, bits=bits)),
                              ref.alpha_dropout_backward(g, 0.2, seed=4, bits=bits))
    assert r.forward == 8 and r.tail == 8


def test_extreme_seed_and_stream():
    x = make_x((40,), np.float32, seed=8)
    top = 2**64 - 1
    with Route() as r:
        for bits in (16, 32):
            y, m = D.dropout(place(x), 0.5, seed=top, stream=top, bits=bits, return_mask=True)
            ey, ekeep = ref.dropout(x, 0.5, seed=top, stream=top, bits=bits, **BOOL)
            assert_bits_equal(host(y), ey)
            np.testing.assert_array_equal(host(m), ref.pack_mask(ekeep))
    assert r.forward == 2


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("n", [5, 8, 61])
def test_backward_from_packed_mask(dtype, n):
    g = make_x((n,), dtype, seed=n)
    gd = place(g)
    with Route() as r:
        for bits in (16, 32):
            for mode in ("inverted", "classic"):
                _, packed = fd.dropout(g, 0.4, seed=2, bits=bits, return_mask=True)
                keep = fd.unpack_mask(packed, g.shape)
                got = D.dropout_backward(gd, 0.4, mask=place(packed), bits=bits, mode=mode)
                exp = ref.dropout_backward(g, 0.4, mask=keep, bits=bits, mode=mode)
                assert_bits_equal(host(got), exp)
                assert_bits_equal(host(got), fd.dropout_backward(g, 0.4, mask=packed,
                                                                 bits=bits, mode=mode))
        got = D.alpha_dropout_backward(gd, 0.2, mask=place(packed))
        assert_bits_equal(host(got), ref.alpha_dropout_backward(g, 0.2, mask=keep))
    assert r.masked == (5 if n >= 8 else 0) and r.forward == 0
    assert r.tail == (5 if n >= 8 and n % 8 else 0)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("misalign", ["x", "out"])
def test_misaligned_takes_the_general_kernel(dtype, misalign):
    x = make_x((45,), dtype, seed=9)
    isz = x.dtype.itemsize
    xd = place(x, isz if misalign == "x" else 0)
    out = place(np.zeros_like(x), isz if misalign == "out" else 0)
    with Route() as r:
        y = D.dropout(xd, 0.5, seed=1, out=out)
    assert y is out and r.forward == 0
    assert_bits_equal(host(out), ref.dropout(x, 0.5, seed=1))


def test_out_in_place_and_strided_inputs():
    x = make_x((6, 20), np.float32, seed=3)
    exp = ref.dropout(x, 0.4, seed=7, stream=2)
    out = place(np.zeros_like(x))
    with Route() as r:
        assert D.dropout(place(x), 0.4, seed=7, stream=2, out=out) is out
        assert_bits_equal(host(out), exp)
        g = place(x)                         # backward in place: out is grad itself
        assert D.dropout_backward(g, 0.4, seed=7, stream=2, out=g) is g
        assert_bits_equal(host(g), ref.dropout_backward(x, 0.4, seed=7, stream=2))
        # a transposed view is gathered into an (aligned) C-order temporary first
        t = place(np.ascontiguousarray(x.T)).T
        assert_bits_equal(host(D.dropout(t, 0.4, seed=7, stream=2)), exp)
    assert r.forward == 3


@pytest.mark.parametrize("blocks,threads", [(1, 1), (3, 7), (5, 32)])
def test_launch_geometry_does_not_change_bits(geometry, blocks, threads):
    x = make_x((301,), np.float16, seed=1)
    xd = place(x)
    geometry(blocks, threads)
    for bits in (8, 32):
        with Route() as r:
            y, m = D.dropout(xd, 0.5, seed=3, bits=bits, return_mask=True)
        assert r.forward == 1
        ey, ekeep = ref.dropout(x, 0.5, seed=3, bits=bits, **BOOL)
        assert_bits_equal(host(y), ey)
        np.testing.assert_array_equal(host(m), ref.pack_mask(ekeep))


def test_fast_equals_general_and_cpu():
    x = make_x((4, 50), np.float32, seed=12)
    xd = place(x)
    with Route() as r:
        fy, fm = D.dropout(xd, 0.5, seed=5, return_mask=True)
    prev = F.set_enabled(False)
    try:
        with Route() as r2:
            gy, gm = D.dropout(xd, 0.5, seed=5, return_mask=True)
    finally:
        F.set_enabled(prev)
    assert r.forward == 1 and r2.forward == 0
    cy, cm = fd.dropout(x, 0.5, seed=5, return_mask=True)
    assert_bits_equal(host(fy), host(gy))
    assert_bits_equal(host(fy), cy)
    np.testing.assert_array_equal(host(fm), host(gm))
    np.testing.assert_array_equal(host(fm), cm)


def test_plan_refuses_what_the_fast_path_cannot_do():
    a = _address(place(np.zeros(64, np.float32)))
    b = a + 4
    assert F.fast_plan("float32", 0, 64, 16, 100, a, a)
    assert not F.fast_plan("float32", 0, 64, 16, 100, b, a)       # misaligned x
    assert not F.fast_plan("float32", 0, 64, 16, 100, a, b)       # misaligned y
    assert not F.fast_plan("float32", 0, 7, 16, 100, a, a)        # no whole unit
    assert not F.fast_plan("float32", 0, 64, 16, 1 << 16, a, a)   # p = 1
    assert not F.fast_plan("float32", 0, 64, 32, 1 << 32, a, a)
    assert F.fast_plan("float32", 0, 64, 32, (1 << 32) - 1, a, a)
    assert F.fast_plan("bfloat16", int(Op.ALPHA), 64, 16, 100, a, a)
    assert not F.fast_plan("float32", int(Op.BDA), 64, 16, 100, a, a)
    assert not F.fast_plan("float32", 0, 8 * (F.MAX_UNITS + 1), 16, 100, a, a)
    prev = F.set_enabled(False)
    try:
        assert not F.fast_plan("float32", 0, 64, 16, 100, a, a)
    finally:
        F.set_enabled(prev)


def test_warm_up_launches_every_specialisation():
    before = dict(F.launches)
    # dtypes x (ops x bits x mask + masked + bits x mask x bias)
    assert F.warm_up() == 4 * (2 * 3 * 2 + 1 + 3 * 2 * 2)
    assert F.warm_up(dtypes=("float32",), bits=(16,), packed=(True,), masked=False,
                     bda=False) == 2
    assert F.launches == before                  # nothing counted as a real call


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape,bias,fast", [((5, 16), True, True), ((3, 24), False, True),
                                             ((4, 12), True, False), ((3, 5), False, False)],
                         ids=["bias", "nobias", "ncols%8", "n%8"])
def test_bias_dropout_add(dtype, shape, bias, fast):
    x = make_x(shape, dtype, seed=1)
    r = make_x(shape, dtype, seed=2)
    b = make_x(shape[-1:], dtype, seed=3, specials=False) if bias else None
    xd, rd = place(x), place(r)
    bd = place(b) if bias else None
    with Route() as route:
        for bits in (8, 16, 32):
            y, m = D.bias_dropout_add(xd, bd, rd, 0.3, seed=6, bits=bits, return_mask=True)
            ey, em = ref.bias_dropout_add(x, b, r, 0.3, seed=6, bits=bits, return_mask=True)
            assert_bits_equal(host(y), ey)
            np.testing.assert_array_equal(host(m), np.asarray(em))
            out = place(r)                               # in place on the residual
            assert D.bias_dropout_add(xd, bd, out, 0.3, seed=6, bits=bits, out=out) is out
            assert_bits_equal(host(out), ey)
    assert route.bda == (6 if fast else 0)


@pytest.mark.parametrize("blocks,threads,ncols", [(1, 1, 16), (1, 3, 16), (2, 7, 24),
                                                  (1, 5, 40)])
def test_bias_dropout_add_grid_stride_columns(geometry, blocks, threads, ncols):
    """Each thread walks several units: the bias column must follow (col += step % nc8)."""
    shape = (7, ncols)
    x, r = make_x(shape, np.float32, seed=4), make_x(shape, np.float32, seed=5)
    b = make_x((ncols,), np.float32, seed=6, specials=False)
    geometry(blocks, threads)
    with Route() as route:
        y = D.bias_dropout_add(place(x), place(b), place(r), 0.5, seed=2)
    assert route.bda == 1
    assert_bits_equal(host(y), ref.bias_dropout_add(x, b, r, 0.5, seed=2))


@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("blocks,threads,ncols", [(1, 1, 16), (1, 3, 16), (2, 7, 24),
                                                  (1, 5, 40)])
def test_bda_float64_several_units_per_thread(geometry, blocks, threads, ncols, bias, bits):
    # the float64 bda kernel draws the next unit's keep byte after a unit's stores and
    # writes each half after loading it: grid-stride loops over several units, out of
    # place and in place (out = x), against the twin
    shape = (7, ncols)
    x, r = make_x(shape, np.float64, seed=4), make_x(shape, np.float64, seed=5)
    b = make_x((ncols,), np.float64, seed=6, specials=False) if bias else None
    geometry(blocks, threads)
    with Route() as route:
        y, m = D.bias_dropout_add(place(x), place(b) if bias else None, place(r), 0.4,
                                  seed=3, bits=bits, return_mask=True)
        out = place(x)
        D.bias_dropout_add(out, place(b) if bias else None, place(r), 0.4, seed=3,
                           bits=bits, out=out)
    ey, em = ref.bias_dropout_add(x, b, r, 0.4, seed=3, bits=bits, return_mask=True)
    assert route.bda == 2
    assert_bits_equal(host(y), ey)
    assert_bits_equal(host(out), ey)
    np.testing.assert_array_equal(host(m), np.asarray(em))
