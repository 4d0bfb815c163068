"""The GPU dropout kernels against the CPU kernels and fastdrop.reference, bit for bit."""
import numpy as np
import pytest

from _cuda_util import dev_layouts, host, require_cuda, to_dev

cuda, D = require_cuda()

import fastdrop as fd  # noqa: E402
from fastdrop import reference as ref  # noqa: E402
from _helpers import FLOAT_DTYPES, assert_bits_equal, make_x  # noqa: E402

DTYPE_IDS = [d.name for d in FLOAT_DTYPES]
SHAPES = [(), (0,), (1,), (7,), (13,), (3, 0, 2), (3, 5, 7), (2, 3, 4, 3)]
PS = [0.0, 1e-7, 0.5, 1.0]
BOOL = dict(return_mask=True, mask_format="bool")  # the twin returns (y, bool keep mask)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("p", PS)
def test_forward_equals_cpu_and_reference(dtype, shape, p):
    x = make_x(shape, dtype, seed=len(shape))
    xd = to_dev(x)
    for bits in (16, 32):
        y, mask = D.dropout(xd, p, seed=11, stream=3, bits=bits, return_mask=True)
        cy, cmask = fd.dropout(x, p, seed=11, stream=3, bits=bits, return_mask=True)
        ey, ekeep = ref.dropout(x, p, seed=11, stream=3, bits=bits, **BOOL)
        assert_bits_equal(host(y), cy)
        assert_bits_equal(host(y), ey)
        np.testing.assert_array_equal(host(mask), cmask)
        np.testing.assert_array_equal(host(mask), ref.pack_mask(ekeep))
    _, bmask = D.dropout(xd, p, seed=11, stream=3, return_mask=True, mask_format="bool")
    np.testing.assert_array_equal(host(bmask), ref.dropout(x, p, seed=11, stream=3, **BOOL)[1])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
def test_backward_from_packed_bool_and_seed(dtype):
    g = make_x((5, 11), dtype, seed=4)
    gd = to_dev(g)
    for bits in (16, 32):
        _, packed = fd.dropout(g, 0.3, seed=8, bits=bits, return_mask=True)
        exp = fd.dropout_backward(g, 0.3, mask=packed, bits=bits)
        assert_bits_equal(host(D.dropout_backward(gd, 0.3, mask=to_dev(packed), bits=bits)), exp)
        keep = fd.unpack_mask(packed, g.shape)
        assert_bits_equal(host(D.dropout_backward(gd, 0.3, mask=to_dev(keep), bits=bits)), exp)
        assert_bits_equal(host(D.dropout_backward(gd, 0.3, seed=8, bits=bits)), exp)
        assert_bits_equal(exp, ref.dropout_backward(g, 0.3, mask=keep, bits=bits))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
def test_classic_mode_and_inference(dtype):
    x = make_x((4, 9), dtype, seed=2)
    xd = to_dev(x)
    for training in (True, False):
        y = D.dropout(xd, 0.25, seed=5, mode="classic", training=training)
        assert_bits_equal(host(y), fd.dropout(x, 0.25, seed=5, mode="classic",
                                              training=training))
    assert D.dropout(xd, 0.25, training=False) is xd
    out = cuda.device_array_like(xd)
    assert D.dropout(xd, 0.25, training=False, out=out) is out
    assert_bits_equal(host(out), x)
    _, pm = fd.dropout(x, 0.25, seed=5, mode="classic", return_mask=True)
    assert_bits_equal(host(D.dropout_backward(xd, 0.25, mask=to_dev(pm), mode="classic")),
                      fd.dropout_backward(x, 0.25, mask=pm, mode="classic"))


@pytest.mark.parametrize("noise", [(1, 9), (4, 1), (1, 1), (4, 9)], ids=str)
@pytest.mark.parametrize("fmt", ["packed", "bool"])
def test_noise_shape_forward_backward(noise, fmt):
    x = make_x((4, 9), np.float32, seed=6)
    xd = to_dev(x)
    for bits in (16, 32):
        y, m = D.dropout(xd, 0.5, seed=3, stream=1, noise_shape=noise, bits=bits,
                         return_mask=True, mask_format=fmt)
        cy, cm = fd.dropout(x, 0.5, seed=3, stream=1, noise_shape=noise, bits=bits,
                            return_mask=True, mask_format=fmt)
        assert_bits_equal(host(y), cy)
        np.testing.assert_array_equal(host(m), cm)
        assert_bits_equal(host(y), ref.dropout(x, 0.5, seed=3, stream=1, noise_shape=noise,
                                               bits=bits))
        exp = fd.dropout_backward(x, 0.5, mask=cm, noise_shape=noise, bits=bits)
        assert_bits_equal(host(D.dropout_backward(xd, 0.5, mask=m, noise_shape=noise,
                                                  bits=bits)), exp)
        assert_bits_equal(host(D.dropout_backward(xd, 0.5, seed=3, stream=1,
                                                  noise_shape=noise, bits=bits)), exp)
    # the mask is drawn even when x is empty (as on the CPU)
    _, m0 = D.dropout(to_dev(np.zeros((0, 3), np.float32)), 0.5, seed=1, noise_shape=(1, 3),
                      return_mask=True)
    np.testing.assert_array_equal(host(m0), fd.dropout(np.zeros((0, 3), np.float32), 0.5,
                                                       seed=1, noise_shape=(1, 3),
                                                       return_mask=True)[1])


@pytest.mark.parametrize("dtype", [FLOAT_DTYPES[0], np.dtype(np.float32)], ids=str)
def test_layouts_give_the_same_result(dtype):
    x = make_x((6, 5, 3), dtype, seed=9)
    exp = fd.dropout(x, 0.4, seed=2, bits=32)
    for name, xd in dev_layouts(x).items():
        assert_bits_equal(host(D.dropout(xd, 0.4, seed=2, bits=32)), exp)
    for name, od in dev_layouts(np.zeros_like(x)).items():  # strided outputs too
        res = D.dropout(to_dev(x), 0.4, seed=2, bits=32, out=od)
        assert res is od
        got = np.asarray(od.copy_to_host()) if name == "C" else _gather(od)
        assert_bits_equal(got, exp)


def _gather(od):
    from _cuda_util import SIMULATOR
    if SIMULATOR:
        return np.array(od._ary)
    from fastdrop._cuda._memory import as_operand
    op = as_operand(od, "o")
    flat = op.flat()
    return host(flat).view(od.dtype).reshape(od.shape)


def test_in_place():
    x = make_x((5, 7), np.float32, seed=1)
    xd = to_dev(x)
    assert D.dropout(xd, 0.5, seed=4, out=xd) is xd
    assert_bits_equal(host(xd), fd.dropout(x, 0.5, seed=4))
    xs = to_dev(np.flip(x, 0).copy())[::-1]                 # in place, negative strides
    D.dropout(xs, 0.5, seed=4, out=xs)
    assert_bits_equal(_gather(xs), fd.dropout(x, 0.5, seed=4))


@pytest.mark.parametrize("blocks,threads", [(1, 1), (2, 3), (5, 32), (64, 64)])
def test_launch_geometry_never_changes_results(geometry, blocks, threads):
    x = make_x((3, 67), np.float16, seed=3)
    exp_y, exp_m = fd.dropout(x, 0.3, seed=1, stream=2, return_mask=True)
    geometry(blocks, threads)
    y, m = D.dropout(to_dev(x), 0.3, seed=1, stream=2, return_mask=True)
    assert_bits_equal(host(y), exp_y)
    np.testing.assert_array_equal(host(m), exp_m)
    np.testing.assert_array_equal(host(D.dropout_mask(77, 0.3, seed=1, offset=5)),
                                  fd.dropout_mask(77, 0.3, seed=1, offset=5))


@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("offset", [0, 3, 8, 2**32 - 7, 2**34 + 5])
@pytest.mark.parametrize("p", [0.0, 1e-7, 0.5, 1.0])
def test_dropout_mask(bits, offset, p):
    for shape in [(0,), (13,), (4, 6)]:
        for packed in (True, False):
            got = host(D.dropout_mask(shape, p, seed=7, stream=9, bits=bits, packed=packed,
                                      offset=offset))
            exp = fd.dropout_mask(shape, p, seed=7, stream=9, bits=bits, packed=packed,
                                  offset=offset)
            assert got.dtype == exp.dtype and got.shape == exp.shape
            np.testing.assert_array_equal(got, exp)
    keep = ref.keep_mask((4, 6), p, 7, 9, bits, offset)
    np.testing.assert_array_equal(host(D.dropout_mask((4, 6), p, seed=7, stream=9, bits=bits,
                                                      offset=offset)), ref.pack_mask(keep))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (300, 1)], ids=str)
@pytest.mark.parametrize("with_bias", [True, False])
def test_bias_dropout_add(dtype, shape, with_bias):
    x = make_x(shape, dtype, seed=1)
    r = make_x(shape, dtype, seed=2)
    b = make_x(shape[-1:], dtype, seed=3, specials=False) if with_bias else None
    for bits in (16, 32):
        y, m = D.bias_dropout_add(to_dev(x), None if b is None else to_dev(b), to_dev(r), 0.3,
                                  seed=5, stream=2, bits=bits, return_mask=True)
        cy, cm = fd.bias_dropout_add(x, b, r, 0.3, seed=5, stream=2, bits=bits,
                                     return_mask=True)
        assert_bits_equal(host(y), cy)
        np.testing.assert_array_equal(host(m), cm)
        assert_bits_equal(host(y), ref.bias_dropout_add(x, b, r, 0.3, seed=5, stream=2, bits=bits))
    g = make_x(shape, dtype, seed=4, specials=False)
    exp = fd.bias_dropout_add_backward(g, 0.3, mask=cm, bits=32, has_bias=with_bias)
    for kw in (dict(mask=m), dict(seed=5, stream=2)):
        dx, db, dr = D.bias_dropout_add_backward(to_dev(g), 0.3, bits=32, has_bias=with_bias,
                                                 **kw)
        assert_bits_equal(host(dx), exp[0])
        if with_bias:
            assert_bits_equal(host(db), exp[1])
        else:
            assert db is None
        assert_bits_equal(host(dr), g)


def test_bias_dropout_add_in_place_on_residual():
    x, r = make_x((4, 8), np.float32, seed=1), make_x((4, 8), np.float32, seed=2)
    b = make_x((8,), np.float32, seed=3)
    rd = to_dev(r)
    assert D.bias_dropout_add(to_dev(x), to_dev(b), rd, 0.5, seed=1, out=rd) is rd
    assert_bits_equal(host(rd), fd.bias_dropout_add(x, b, r, 0.5, seed=1))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
def test_alpha_dropout(dtype, p):
    x = make_x((5, 13), dtype, seed=7)
    xd = to_dev(x)
    for bits in (16, 32):
        y, m = D.alpha_dropout(xd, p, seed=3, bits=bits, return_mask=True)
        cy, cm = fd.alpha_dropout(x, p, seed=3, bits=bits, return_mask=True)
        assert_bits_equal(host(y), cy)
        np.testing.assert_array_equal(host(m), cm)
        assert_bits_equal(host(y), ref.alpha_dropout(x, p, seed=3, bits=bits))
        exp = fd.alpha_dropout_backward(x, p, mask=cm, bits=bits)
        assert_bits_equal(host(D.alpha_dropout_backward(xd, p, mask=m, bits=bits)), exp)
        assert_bits_equal(host(D.alpha_dropout_backward(xd, p, seed=3, bits=bits)), exp)
    yn = D.alpha_dropout(xd, p, seed=3, noise_shape=(5, 1), return_mask=True,
                         mask_format="bool")
    cn = fd.alpha_dropout(x, p, seed=3, noise_shape=(5, 1), return_mask=True,
                          mask_format="bool")
    assert_bits_equal(host(yn[0]), cn[0])
    np.testing.assert_array_equal(host(yn[1]), cn[1])
    assert D.alpha_dropout(xd, p, training=False) is xd


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("p", [0.0, 1e-7, 0.3, 0.9])
@pytest.mark.parametrize("shape", [(), (0,), (5,), (3, 11)], ids=str)
def test_gaussian_dropout(dtype, p, shape):
    x = make_x(shape, dtype, seed=5)
    xd = to_dev(x)
    y = D.gaussian_dropout(xd, p, seed=12, stream=4)
    exp = ref.gaussian_dropout(x, p, seed=12, stream=4)
    assert_bits_equal(host(y), exp)
    assert_bits_equal(host(D.gaussian_dropout_backward(xd, p, seed=12, stream=4)),
                      ref.gaussian_dropout_backward(x, p, seed=12, stream=4))
    cpu = getattr(fd, "gaussian_dropout", None)
    if cpu is not None:
        assert_bits_equal(host(y), cpu(x, p, seed=12, stream=4))
        assert_bits_equal(host(D.gaussian_dropout_backward(xd, p, seed=12, stream=4)),
                          fd.gaussian_dropout_backward(x, p, seed=12, stream=4))
    assert D.gaussian_dropout(xd, p, training=False) is xd


def same_kind(like, host):
    """host as the kind of array `like` is: a device array for a device `like`."""
    return host if isinstance(like, np.ndarray) else to_dev(host)


def test_validation_matches_cpu():
    x = make_x((4, 5), np.float32)
    xd = to_dev(x)
    m = fd.dropout(x, 0.5, seed=1, return_mask=True)[1]
    cases = [
        lambda a, mk: fd_or(a).dropout(a, 1.5, seed=1),
        lambda a, mk: fd_or(a).dropout(a, float("nan"), seed=1),
        lambda a, mk: fd_or(a).dropout(a, 0.5, seed=1, bits=12),
        lambda a, mk: fd_or(a).dropout(a, 0.5, seed=1, mode="x"),
        lambda a, mk: fd_or(a).dropout(a, 0.5, seed=1, noise_shape=(3, 1)),
        lambda a, mk: fd_or(a).dropout(a, 0.5, seed=-1),
        lambda a, mk: fd_or(a).dropout(a, 0.5, seed=1, training=1),
        lambda a, mk: fd_or(a).dropout_backward(a, 0.5),
        lambda a, mk: fd_or(a).dropout_backward(a, 0.5, mask=mk, seed=1),
        lambda a, mk: fd_or(a).dropout_backward(a, 0.5, mask=mk[:2]),
        lambda a, mk: fd_or(a).bias_dropout_add(a, a[0, :3], a, 0.5, seed=1),
        lambda a, mk: fd_or(a).bias_dropout_add_backward(zero_d(a), 0.5, seed=1),
        # dtypes no kernel reads, named as the CPU names them (int16 is not uint16)
        lambda a, mk: fd_or(a).dropout(same_kind(a, np.zeros(3, np.int32)), 0.5, seed=1),
        lambda a, mk: fd_or(a).dropout(same_kind(a, np.zeros(3, np.int16)), 0.5, seed=1),
        lambda a, mk: fd_or(a).dropout(same_kind(a, np.zeros(3, np.complex64)), 0.5,
                                       seed=1),
        lambda a, mk: fd_or(a).bias_dropout_add(a, same_kind(a, np.zeros(5, np.int32)), a,
                                                0.5, seed=1),
        lambda a, mk: fd_or(a).dropout_backward(a, 0.5, mask=same_kind(
            a, np.zeros(mk.shape, np.int8))),
        lambda a, mk: fd_or(a).random_bits(6, seed=1, bits=16,
                                           out=same_kind(a, np.zeros(6, np.int16))),
        lambda a, mk: fd_or(a).dropout(a, 0.5, seed=1,
                                       out=same_kind(a, np.zeros((4, 5), np.float64))),
    ]
    for case in cases:
        with pytest.raises(Exception) as cpu_err:
            case(x, m)
        with pytest.raises(type(cpu_err.value)) as gpu_err:
            case(xd, to_dev(m))
        assert str(gpu_err.value) == str(cpu_err.value), case
    with pytest.raises(TypeError, match="CUDA array"):
        D.dropout(x, 0.5, seed=1)
    with pytest.raises(TypeError, match="CUDA array"):
        D.dropout_backward(xd, 0.5, mask=m)
    with pytest.raises(TypeError, match="dtype"):
        D.dropout(to_dev(np.zeros(3, np.int32)), 0.5, seed=1)
    with pytest.raises(ValueError, match="shape"):
        D.dropout(xd, 0.5, seed=1, out=cuda.device_array((5, 4), np.float32))
    with pytest.raises(ValueError, match="overlap"):
        D.dropout(xd, 0.5, seed=1, out=xd[::-1])
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        D.gaussian_dropout(xd, 1.0, seed=1)


def test_out_overlap_is_exact(monkeypatch):
    """out beside x in one buffer (two column halves, or the even and odd rows) shares no
    element: accepted with the CPU's result, as on the CPU. A self-overlapping out (a
    sliding window) is refused naming out."""
    x = np.arange(1, 33, dtype=np.float32).reshape(4, 8)
    expected = fd.dropout(x, 0.5, seed=3)
    for rows, pick in [((4, 16), lambda b: (b[:, :8], b[:, 8:])),
                       ((8, 8), lambda b: (b[0::2], b[1::2]))]:
        hb = np.zeros(rows, np.float32)
        pick(hb)[0][...] = x
        xd, out = pick(to_dev(hb))
        assert D.dropout(xd, 0.5, seed=3, out=out) is out
        assert_bits_equal(host(out), expected)
    # the layouts the simulator cannot make, through the hardware branch of the import
    # (no device call is made before the check)
    from fastdrop._cuda import _memory

    class CAI:
        def __init__(self, ptr, strides):
            self.__cuda_array_interface__ = dict(shape=(4, 8), typestr="<f4", version=3,
                                                 data=(ptr, False), strides=strides)

    monkeypatch.setattr(_memory, "SIMULATOR", False)
    base = 1 << 20
    x_op = _memory.as_operand(CAI(base, (64, 4)), "x")
    got = _memory.check_out(CAI(base + 32, (64, 4)), (4, 8), "float32", {"x": x_op}, ("x",))
    assert got.ptr == base + 32
    with pytest.raises(ValueError, match="out overlaps x partially"):
        _memory.check_out(CAI(base + 4, (64, 4)), (4, 8), "float32", {"x": x_op}, ("x",))
    with pytest.raises(ValueError, match=r"^out .*share memory"):
        _memory.check_out(CAI(base + 4096, (4, 4)), (4, 8), "float32", {"x": x_op}, ("x",))


def zero_d(a):
    """A 0-d array on a's side (host or device)."""
    z = np.array(1.0, np.float32)
    return to_dev(z) if D.is_cuda_array(a) else z


def fd_or(a):
    """fastdrop for host arrays, the GPU dispatch for device arrays."""
    return D if D.is_cuda_array(a) else fd


def test_is_cuda_array():
    class FakeDL:
        def __init__(self, kind):
            self.kind = kind

        def __dlpack_device__(self):
            return (self.kind, 0)

    assert D.is_cuda_array(to_dev(np.zeros(2)))
    assert not D.is_cuda_array(np.zeros(2))
    assert not D.is_cuda_array([1.0, 2.0])
    assert D.is_cuda_array(FakeDL(2)) and D.is_cuda_array(FakeDL(13))
    assert not D.is_cuda_array(FakeDL(1))


@pytest.mark.parametrize("code", [">f2", ">f4", ">f8"])
def test_big_endian_device_arrays_are_refused(code):
    """As on the CPU (tests/core/test_reliability.py): non-native words are never read."""
    x = cuda.to_device(np.arange(1, 9, dtype=code))
    with pytest.raises(TypeError, match=r"x has non-native byte order \(>f"):
        D.dropout(x, 0.5, seed=1)
    with pytest.raises(TypeError, match=r"grad has non-native byte order"):
        D.dropout_backward(x, 0.5, seed=1)


def test_a_refused_call_writes_nothing_and_device_hints_take_any_dtype():
    # strides that are not whole items (float32 values 5 bytes apart, a view of a byte
    # buffer): refused at import, naming the argument, before mask_out is written;
    # device= is a placement hint, whatever its dtype
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    base = np.full(5 * 24 + 8, 7, np.uint8)
    odd = np.ndarray((24,), np.float32, buffer=base, offset=0, strides=(5,))
    x = to_dev(np.arange(1, 25, dtype=np.float32))
    mo = to_dev(np.full(3, 170, np.uint8))
    with pytest.raises(ValueError, match="out has strides .5,. that are not multiples"):
        fd.dropout(x, 0.5, seed=1, out=FakeCUDAArray(odd), return_mask=True, mask_out=mo)
    assert mo.copy_to_host().tolist() == [170] * 3 and (base == 7).all()
    with pytest.raises(ValueError, match="x has strides .5,. that are not multiples"):
        fd.dropout(FakeCUDAArray(odd), 0.5, seed=1, return_mask=True, mask_out=mo)
    assert mo.copy_to_host().tolist() == [170] * 3
    for dt in (np.int32, np.int8, np.complex64):
        bits = fd.random_bits(4, seed=1, device=to_dev(np.zeros(2, dt)))
        np.testing.assert_array_equal(bits.copy_to_host(), fd.random_bits(4, seed=1))


def test_every_launch_of_a_call_is_on_the_primary_inputs_stream(monkeypatch):
    # a strided out, mask, bias or residual on another stream: its gather or scatter runs
    # on x's stream, with the kernel (docs/gpu.md: the other operands are taken to be
    # ready on the primary input's stream), and the results are the CPU's
    from numba.cuda.simulator import kernel as SK
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    launches = []
    real = SK.FakeCUDAKernel.__getitem__

    def spy(self, cfg):
        launches.append((self.fn.__name__, cfg[2] if len(cfg) > 2 else 0))
        return real(self, cfg)

    monkeypatch.setattr(SK.FakeCUDAKernel, "__getitem__", spy)
    s, t = cuda.stream(), cuda.stream()
    xh = make_x((4, 6), np.float32)
    x = FakeCUDAArray(xh.copy(), stream=s)
    mh = np.zeros(6, np.uint8)
    mh[::2] = fd.dropout_mask(24, 0.5, seed=1)
    calls = [
        (lambda: fd.dropout(x, 0.5, seed=1, out=FakeCUDAArray(
            np.zeros((6, 4), np.float32).T, stream=t)), fd.dropout(xh, 0.5, seed=1)),
        (lambda: fd.dropout_backward(x, 0.5, mask=FakeCUDAArray(mh[::2], stream=t)),
         fd.dropout_backward(xh, 0.5, mask=mh[::2].copy())),
        (lambda: fd.bias_dropout_add(
            x, FakeCUDAArray(np.ones(12, np.float32)[::2], stream=t),
            FakeCUDAArray(np.ones((6, 4), np.float32).T, stream=t), 0.5, seed=1),
         fd.bias_dropout_add(xh, np.ones(6, np.float32), np.ones((4, 6), np.float32), 0.5,
                             seed=1)),
    ]
    for call, want in calls:
        launches.clear()
        got = call()
        assert launches and all(st is s for _, st in launches), launches
        assert_bits_equal(host(got), want)


def test_a_masked_cuda_array_interface_is_refused(monkeypatch):
    # the import itself (the hardware branch, reached with the simulator flag off: no
    # device call is made): a 'mask' entry is refused, as NumPy's masked arrays are
    from fastdrop._cuda import _memory

    class CAI:
        def __init__(self, **extra):
            desc = dict(shape=(4,), typestr="<f4", data=(1 << 20, False), version=3,
                        strides=None)
            desc.update(extra)
            self.__cuda_array_interface__ = desc

    monkeypatch.setattr(_memory, "SIMULATOR", False)
    op = _memory.as_operand(CAI(), "x")
    assert (op.name, op.shape, op.strides) == ("float32", (4,), (4,))
    with pytest.raises(TypeError, match="x is a masked CUDA array"):
        _memory.as_operand(CAI(mask=CAI()), "x")
    assert _memory.as_operand(CAI(typestr="<i2"), "x").name == "int16"   # not uint16
