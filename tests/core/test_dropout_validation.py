"""Bad input to the dropout API: a clear TypeError/ValueError naming the argument, and
nothing written.

Every refusal below is checked the same way (``assert_refused``): the call raises the
expected exception type with a message that names the offending argument, and every
array handed to the call (``out`` pre-filled with the sentinel 7.0, the inputs, the
mask) is bit for bit what it was before the call.
"""
import math

import numpy as np
import pytest

import fastdrop

SHAPE = (4, 8)
N = math.prod(SHAPE)
SENTINEL = 7.0
# what a refusal that does not happen looks like: pytest.raises fails, or an array changed
NOT_REFUSED = (pytest.fail.Exception, AssertionError)

WITH_OUT = ["dropout", "dropout_backward", "alpha_dropout", "alpha_dropout_backward",
            "bias_dropout_add"]
ARRAY_APIS = WITH_OUT + ["bias_dropout_add_backward"]
ALL_APIS = ARRAY_APIS + ["dropout_mask"]
BACKWARDS = ["dropout_backward", "alpha_dropout_backward", "bias_dropout_add_backward"]
WITH_NOISE_SHAPE = ["dropout", "dropout_backward", "alpha_dropout", "alpha_dropout_backward"]
WITH_MASK_FORMAT = ["dropout", "alpha_dropout"]
# the name of each API's main array argument
MAIN = {"dropout": "x", "alpha_dropout": "x", "bias_dropout_add": "x",
        "dropout_backward": "grad", "alpha_dropout_backward": "grad",
        "bias_dropout_add_backward": "grad"}


def _x(seed=0, dtype=np.float32, shape=SHAPE):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _out(shape=SHAPE, dtype=np.float32):
    return np.full(shape, SENTINEL, dtype)


def base_kwargs(api):
    """Good arguments for each API (so that only the overridden one is bad)."""
    if api in ("dropout", "alpha_dropout"):
        return dict(x=_x(), p=0.5, seed=1)
    if api in BACKWARDS:
        return dict(grad=_x(), p=0.5, seed=1)
    if api == "bias_dropout_add":
        return dict(x=_x(), bias=_x(1, shape=(SHAPE[-1],)), residual=_x(2), p=0.5, seed=1)
    if api == "dropout_mask":
        return dict(shape=SHAPE, p=0.5, seed=1)
    raise AssertionError(api)


def _snapshot(a):
    return a.dtype, a.shape, a.tobytes()


def assert_refused(api, exc, match, *, watch=(), **overrides):
    """Call fastdrop.<api> with good arguments but `overrides` (out defaults to a sentinel
    array): it must raise `exc` matching `match` and leave every array untouched."""
    kwargs = base_kwargs(api)
    if api in WITH_OUT:
        kwargs["out"] = _out()
    kwargs.update(overrides)
    watched = [v for v in kwargs.values() if isinstance(v, np.ndarray)] + list(watch)
    before = [_snapshot(a) for a in watched]
    with pytest.raises(exc, match=match):
        getattr(fastdrop, api)(**kwargs)
    for a, b in zip(watched, before):
        assert _snapshot(a) == b, "an array was written although the call was refused"
    if "out" in kwargs and isinstance(kwargs["out"], np.ndarray) and "out" not in overrides:
        assert (kwargs["out"] == SENTINEL).all()


def test_good_arguments_work():
    """The baseline every refusal below departs from is accepted."""
    for api in ALL_APIS:
        kwargs = base_kwargs(api)
        if api in WITH_OUT:
            kwargs["out"] = _out()
        getattr(fastdrop, api)(**kwargs)
        if api in WITH_OUT:
            assert not (kwargs["out"] == SENTINEL).all()


# ---- p -----------------------------------------------------------------------------------

BAD_P = [
    (math.nan, ValueError), (np.float32("nan"), ValueError), (-0.1, ValueError),
    (-1e-300, ValueError), (1.0000001, ValueError), (2, ValueError), (np.int64(-1), ValueError),
    (math.inf, ValueError), (-math.inf, ValueError),
    (0.5 + 0j, TypeError), (np.complex128(0.5), TypeError), ("0.5", TypeError),
    (None, TypeError), (True, TypeError), (False, TypeError), (np.bool_(True), TypeError),
    ([0.5], TypeError),
]
P_IDS = [f"{type(v).__name__}:{v!r}" for v, _ in BAD_P]


@pytest.mark.parametrize("api", ALL_APIS)
@pytest.mark.parametrize("p,exc", BAD_P, ids=P_IDS)
def test_bad_p(api, p, exc):
    assert_refused(api, exc, r"\bp\b", p=p)


@pytest.mark.parametrize("func", [fastdrop.effective_p, fastdrop.dropout_scale])
@pytest.mark.parametrize("p,exc", BAD_P, ids=P_IDS)
def test_bad_p_scalars(func, p, exc):
    with pytest.raises(exc, match=r"\bp\b"):
        func(p)


@pytest.mark.parametrize("api", ["dropout", "alpha_dropout"])
@pytest.mark.parametrize("p,exc", [(math.nan, ValueError), (1.5, ValueError),
                                   ("0.5", TypeError)])
def test_bad_p_at_inference(api, p, exc):
    """p is checked even when training=False (where it may not be needed)."""
    kw = dict(training=False)
    assert_refused(api, exc, r"\bp\b", p=p, **kw)
    if api == "dropout":
        assert_refused(api, exc, r"\bp\b", p=p, mode="classic", **kw)


def test_p_edges_accepted():
    x = _x()
    np.testing.assert_array_equal(fastdrop.dropout(x, 0, seed=1), x)
    np.testing.assert_array_equal(fastdrop.dropout(x, 1, seed=1), np.zeros_like(x))
    fastdrop.dropout(x, -0.0, seed=1)
    fastdrop.dropout(x, np.float16(0.25), seed=1)


# ---- x / grad / bias / residual dtype -------------------------------------------------------

def _bad_array(kind, shape=SHAPE):
    if kind == "object":
        return np.full(shape, 1.0, dtype=object)
    if kind == "str":
        return np.full(shape, "a")
    if kind == "bytes":
        return np.full(shape, b"a")
    return np.ones(shape, dtype=kind)


BAD_KINDS = ["int8", "int32", "int64", "uint8", "uint64", "bool", "complex64", "complex128",
             "longdouble", "object", "str", "bytes", "datetime64[s]", "timedelta64[s]"]


@pytest.mark.parametrize("api", ARRAY_APIS)
@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_main_array_dtype(api, kind):
    name = MAIN[api]
    assert_refused(api, TypeError, rf"\b{name}\b", **{name: _bad_array(kind)})


@pytest.mark.parametrize("api", ARRAY_APIS)
@pytest.mark.parametrize("value", ["abc", b"abc", None, {"a": 1}, [[1, 2], [3]], 3],
                         ids=["str", "bytes", "None", "dict", "ragged", "int"])
def test_main_array_not_float(api, value):
    name = MAIN[api]
    assert_refused(api, TypeError, rf"\b{name}\b", **{name: value})


@pytest.mark.parametrize("api", ARRAY_APIS)
def test_masked_arrays_are_refused_not_unmasked(api):
    # np.asarray would drop the mask silently and return a plain array
    name = MAIN[api]
    masked = np.ma.array(_x(), mask=np.eye(*SHAPE, dtype=bool))
    assert_refused(api, TypeError, rf"{name} is a numpy.ma.MaskedArray", watch=(masked.data,),
                   **{name: masked})
    if api == "bias_dropout_add":
        for other in ("bias", "residual"):
            good = base_kwargs(api)[other]
            assert_refused(api, TypeError, rf"{other} is a numpy.ma.MaskedArray",
                           **{other: np.ma.array(good, mask=np.zeros(good.shape, bool))})
    if api == "dropout_backward":
        _, pm = fastdrop.dropout(_x(), 0.5, seed=1, return_mask=True)
        assert_refused(api, TypeError, r"mask is a numpy.ma.MaskedArray", seed=None,
                       mask=np.ma.array(pm))
    # the documented way round: the data in, the mask reapplied
    got = np.ma.array(fastdrop.dropout(masked.data, 0.5, seed=1), mask=masked.mask)
    assert (got.data == fastdrop.dropout(_x(), 0.5, seed=1)).all()


@pytest.mark.parametrize("name", ["bias", "residual"])
@pytest.mark.parametrize("kind", ["int32", "bool", "complex64", "object", "str"])
def test_bias_dropout_add_bad_operand_dtype(name, kind):
    shape = (SHAPE[-1],) if name == "bias" else SHAPE
    assert_refused("bias_dropout_add", TypeError, rf"\b{name}\b",
                   **{name: _bad_array(kind, shape)})


@pytest.mark.parametrize("name", ["bias", "residual"])
@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_bias_dropout_add_operand_of_another_float_dtype(name, dtype):
    shape = (SHAPE[-1],) if name == "bias" else SHAPE
    assert_refused("bias_dropout_add", TypeError, rf"\b{name}\b",
                   **{name: _x(3, dtype=dtype, shape=shape)})


@pytest.mark.parametrize("shape", [(SHAPE[0],), (1, SHAPE[-1]), SHAPE, (SHAPE[-1] + 1,), ()],
                         ids=str)
def test_bias_dropout_add_bad_bias_shape(shape):
    assert_refused("bias_dropout_add", ValueError, r"\bbias\b", bias=_x(3, shape=shape))


def test_bias_with_zero_dim_x():
    assert_refused("bias_dropout_add", ValueError, r"\bbias\b", x=_x(shape=()),
                   residual=_x(2, shape=()), bias=_x(3, shape=()), out=_out(()))


@pytest.mark.parametrize("shape", [(SHAPE[-1],), (1, SHAPE[-1]), SHAPE[::-1], (N,),
                                   SHAPE + (1,), ()], ids=str)
def test_bias_dropout_add_bad_residual_shape(shape):
    """residual must have x's shape exactly: no broadcasting."""
    assert_refused("bias_dropout_add", ValueError, r"\bresidual\b", residual=_x(3, shape=shape))


def test_bias_none_accepted():
    kw = base_kwargs("bias_dropout_add")
    kw["bias"] = None
    y = fastdrop.bias_dropout_add(**kw)
    assert y.shape == SHAPE


def test_backward_zero_dim_grad_with_bias():
    assert_refused("bias_dropout_add_backward", ValueError, r"\bgrad\b", grad=_x(shape=()))


# ---- out --------------------------------------------------------------------------------

BAD_OUT = [
    (lambda: _out(SHAPE[::-1]), ValueError),
    (lambda: _out((N,)), ValueError),
    (lambda: _out((1, SHAPE[-1])), ValueError),      # broadcastable, still refused
    (lambda: _out(SHAPE + (1,)), ValueError),
    (lambda: _out(()), ValueError),
    (lambda: _out(dtype=np.float64), TypeError),
    (lambda: _out(dtype=np.float16), TypeError),
    (lambda: _out(dtype=np.int32), TypeError),
    (lambda: _out(dtype=np.uint8), TypeError),
    (lambda: _out().tolist(), TypeError),              # not an ndarray
    (lambda: 7.0, TypeError),
    (lambda: _out()[None].tolist(), TypeError),
]
OUT_IDS = ["transposed-shape", "flat", "broadcastable", "extra-axis", "0-d", "float64",
           "float16", "int32", "uint8", "list", "scalar", "nested-list"]


@pytest.mark.parametrize("api", WITH_OUT)
@pytest.mark.parametrize("make_out,exc", BAD_OUT, ids=OUT_IDS)
def test_bad_out(api, make_out, exc):
    assert_refused(api, exc, r"\bout\b", out=make_out())


@pytest.mark.parametrize("api", WITH_OUT)
def test_read_only_out(api):
    out = _out()
    out.flags.writeable = False
    assert_refused(api, ValueError, r"\bout\b.*read-only|read-only.*\bout\b", out=out)
    assert (out == SENTINEL).all()


@pytest.mark.parametrize("api", WITH_OUT)
def test_unaligned_out(api):
    raw = np.full(N * 4 + 1, 0, np.uint8)
    out = raw[1:].view(np.float32).reshape(SHAPE)
    out[...] = SENTINEL
    assert not out.flags.aligned
    assert_refused(api, ValueError, r"\bout\b", out=out, watch=[raw])


@pytest.mark.parametrize("api", ["dropout", "alpha_dropout"])
@pytest.mark.parametrize("mode", ["inverted", "classic"])
def test_bad_out_at_inference(api, mode):
    """out is validated on the inference path too."""
    kw = dict(training=False) if api == "alpha_dropout" else dict(training=False, mode=mode)
    assert_refused(api, ValueError, r"\bout\b", out=_out((N,)), **kw)
    assert_refused(api, TypeError, r"\bout\b", out=_out(dtype=np.float64), **kw)
    ro = _out()
    ro.flags.writeable = False
    assert_refused(api, ValueError, r"\bout\b", out=ro, **kw)


def _overlapping(shift, dtype=np.float32):
    """(input, out, buffer): two views of one buffer, shifted by `shift` elements."""
    buf = np.random.default_rng(5).standard_normal(N + abs(shift)).astype(dtype)
    a, b = buf[:N].reshape(SHAPE), buf[abs(shift):].reshape(SHAPE)
    return (a, b, buf) if shift > 0 else (b, a, buf)


@pytest.mark.parametrize("api", WITH_OUT)
@pytest.mark.parametrize("shift", [1, -1, 3, -N + 1], ids=["+1", "-1", "+3", "last-only"])
def test_out_partially_overlapping_main_input(api, shift):
    inp, out, buf = _overlapping(shift)
    name = MAIN[api]
    assert_refused(api, ValueError, r"\bout\b", watch=[buf], **{name: inp, "out": out})


@pytest.mark.parametrize("api", WITH_OUT)
def test_out_same_memory_other_layout(api):
    """out over x's memory but with other strides (a transposed view of a square array,
    a reversed view): a partial overlap in effect, refused."""
    name = MAIN[api]
    sq = _x(shape=(8, 8))
    extra = {}
    if api == "bias_dropout_add":
        extra = dict(residual=_x(2, shape=(8, 8)))
    assert_refused(api, ValueError, r"\bout\b", watch=[sq], **{name: sq, "out": sq.T}, **extra)
    assert_refused(api, ValueError, r"\bout\b", watch=[sq],
                   **{name: sq, "out": sq[::-1]}, **extra)


@pytest.mark.parametrize("shift", [1, -2])
def test_bias_dropout_add_out_partially_overlapping_residual(shift):
    inp, out, buf = _overlapping(shift)
    assert_refused("bias_dropout_add", ValueError, r"\bout\b", watch=[buf], residual=inp, out=out)


def test_bias_dropout_add_out_overlapping_bias():
    buf = _x(shape=(N,))
    bias = buf[:SHAPE[-1]]
    out = buf.reshape(SHAPE)
    assert_refused("bias_dropout_add", ValueError, r"\bout\b", watch=[buf], bias=bias, out=out)


@pytest.mark.parametrize("api", WITH_OUT)
@pytest.mark.parametrize("layout", ["columns", "interleaved"])
def test_out_sharing_no_element_with_the_input_is_accepted(api, layout):
    """out in the same buffer as the main input (or residual) but on other bytes: the two
    column halves of one (rows, 2 * cols) buffer, or a[0::2] and a[1::2]. They share no
    element, so NumPy's ufuncs accept them; so does fastdrop, with the result of the
    out-of-place call."""
    kw = base_kwargs(api)
    name = MAIN[api]
    rows, cols = SHAPE
    if layout == "columns":
        buf = np.full((rows, 2 * cols), SENTINEL, np.float32)
        inp, out = buf[:, :cols], buf[:, cols:]
    else:
        buf = np.full((2 * rows, cols), SENTINEL, np.float32)
        inp, out = buf[0::2], buf[1::2]
    inp[...] = kw[name]
    expected = getattr(fastdrop, api)(**kw)
    kw[name] = inp
    if api == "bias_dropout_add":     # and out beside the residual
        kw["residual"], kw["x"] = inp, kw["x"].copy()
        inp[...] = base_kwargs(api)["residual"]
    got = getattr(fastdrop, api)(**kw, out=out)
    assert got is out
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("api", WITH_OUT)
def test_self_overlapping_out_is_refused(api):
    """A sliding window (strides smaller than the elements below them reach) writes
    several elements to one address: the result would depend on which thread writes
    last. Refused, naming out, before anything is written."""
    buf = np.full(N + SHAPE[-1], SENTINEL, np.float32)
    out = np.lib.stride_tricks.sliding_window_view(buf, SHAPE[-1], writeable=True)[:SHAPE[0]]
    assert out.shape == SHAPE and not out.flags.c_contiguous
    assert_refused(api, ValueError, r"\bout\b.*share memory", watch=[buf], out=out)


@pytest.mark.parametrize("api", WITH_OUT)
def test_in_place_works(api):
    """out may be the main input itself: the result equals the out-of-place one."""
    kw = base_kwargs(api)
    name = MAIN[api]
    expected = getattr(fastdrop, api)(**kw)
    x = kw[name].copy()
    kw[name] = x
    got = getattr(fastdrop, api)(**kw, out=x)
    assert got is x
    np.testing.assert_array_equal(x, expected)


def test_in_place_on_residual_works():
    kw = base_kwargs("bias_dropout_add")
    expected = fastdrop.bias_dropout_add(**kw)
    r = kw["residual"]
    got = fastdrop.bias_dropout_add(**kw, out=r)
    assert got is r
    np.testing.assert_array_equal(r, expected)


def test_in_place_with_strided_view_works():
    """The same view (same data, same strides) as x and out is in-place use."""
    big = _x(shape=(8, 16))
    x = big[::2, ::2]
    expected = fastdrop.dropout(x.copy(), 0.5, seed=4)
    fastdrop.dropout(x, 0.5, seed=4, out=big[::2, ::2])
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("api", WITH_OUT)
@pytest.mark.parametrize("bad", [dict(seed=-1), dict(stream=2**64), dict(bits=12),
                                 dict(n_threads=0), dict(p=math.nan)], ids=str)
def test_in_place_refusal_leaves_input_untouched(api, bad):
    """A bad argument with out = the input itself: the input is not modified."""
    kw = base_kwargs(api)
    name = MAIN[api]
    x = kw[name]
    before = x.tobytes()
    kw.update(bad)
    kw["out"] = x
    with pytest.raises((ValueError, TypeError)):
        getattr(fastdrop, api)(**kw)
    assert x.tobytes() == before


# ---- mask ---------------------------------------------------------------------------------

BAD_MASK = [
    (lambda: np.zeros(N // 8 - 1, np.uint8), ValueError),        # too short
    (lambda: np.zeros(N // 8 + 1, np.uint8), ValueError),        # too long
    (lambda: np.zeros((1, N // 8), np.uint8), ValueError),       # 2-D packed
    (lambda: np.zeros(N, np.uint8), ValueError),                 # one byte per element
    (lambda: np.zeros(N // 8, np.int32), TypeError),
    (lambda: np.zeros(SHAPE, np.int32), TypeError),
    (lambda: np.zeros(N // 8, np.int8), TypeError),
    (lambda: np.zeros(N // 8, np.uint16), TypeError),
    (lambda: np.ones(SHAPE, np.float32), TypeError),
    (lambda: np.ones(SHAPE, np.float64), TypeError),
    (lambda: np.ones(SHAPE, bool).T, ValueError),                # wrong bool shape
    (lambda: np.ones(N, bool), ValueError),
    (lambda: np.ones(SHAPE + (1,), bool), ValueError),
    (lambda: np.ones((1, SHAPE[-1]), bool), ValueError),         # broadcastable: refused
    (lambda: [[1] * SHAPE[1]] * SHAPE[0], TypeError),            # list of ints
    (lambda: "mask", TypeError),
]
MASK_IDS = ["packed-short", "packed-long", "packed-2d", "bytes-per-element", "int32-packed",
            "int32-full", "int8", "uint16", "float32", "float64", "bool-transposed",
            "bool-flat", "bool-extra-axis", "bool-broadcastable", "int-list", "str"]


@pytest.mark.parametrize("api", BACKWARDS)
@pytest.mark.parametrize("make_mask,exc", BAD_MASK, ids=MASK_IDS)
def test_bad_mask(api, make_mask, exc):
    assert_refused(api, exc, r"\bmask\b", mask=make_mask(), seed=None)


@pytest.mark.parametrize("api", ["dropout_backward", "alpha_dropout_backward"])
def test_mask_for_full_shape_refused_with_noise_shape(api):
    """With noise_shape, the mask is over the noise shape, not x's."""
    full_packed = fastdrop.dropout_mask(SHAPE, 0.5, seed=1)
    assert_refused(api, ValueError, r"\bmask\b", mask=np.ones(SHAPE, bool), seed=None,
                   noise_shape=(SHAPE[0], 1))
    # 4 noise elements -> 1 byte; x's 32 elements -> 4 bytes
    assert_refused(api, ValueError, r"\bmask\b", mask=full_packed, seed=None,
                   noise_shape=(SHAPE[0], 1))


@pytest.mark.parametrize("api", BACKWARDS)
def test_mask_and_seed_both_or_neither(api):
    mask = fastdrop.dropout_mask(SHAPE, 0.5, seed=1)
    match = r"\bmask\b.*\bseed\b|\bseed\b.*\bmask\b"
    assert_refused(api, ValueError, match, mask=mask, seed=1)
    assert_refused(api, ValueError, match, mask=None, seed=None)
    assert_refused(api, ValueError, match, seed=None)


@pytest.mark.parametrize("api", BACKWARDS)
def test_good_masks_accepted(api):
    """Packed and bool masks of the forward call give the seed-regenerated gradient."""
    kw = base_kwargs(api)
    by_seed = getattr(fastdrop, api)(**kw)
    packed = fastdrop.dropout_mask(SHAPE, 0.5, seed=1)
    bools = fastdrop.dropout_mask(SHAPE, 0.5, seed=1, packed=False)
    for mask in (packed, bools):
        kw2 = dict(kw, seed=None, mask=mask)
        got = getattr(fastdrop, api)(**kw2)
        if api == "bias_dropout_add_backward":
            np.testing.assert_array_equal(got[0], by_seed[0])
        else:
            np.testing.assert_array_equal(got, by_seed)


# ---- unpack_mask ------------------------------------------------------------------------

@pytest.mark.parametrize("mask,exc", [
    (np.zeros(N // 8, np.int8), TypeError), (np.zeros(N // 8, np.float32), TypeError),
    (np.zeros(N // 8, bool), TypeError), (np.zeros(N // 8 - 1, np.uint8), ValueError),
    (np.zeros(N // 8 + 1, np.uint8), ValueError), (np.zeros((2, 2), np.uint8), ValueError),
], ids=["int8", "float32", "bool", "short", "long", "2-d"])
def test_unpack_mask_bad_mask(mask, exc):
    with pytest.raises(exc, match=r"\bmask\b"):
        fastdrop.unpack_mask(mask, SHAPE)


@pytest.mark.parametrize("shape,exc", [((2.5,), TypeError), (-1, ValueError),
                                       ("abc", TypeError), (None, TypeError)])
def test_unpack_mask_bad_shape(shape, exc):
    with pytest.raises(exc, match=r"\bshape\b"):
        fastdrop.unpack_mask(np.zeros(1, np.uint8), shape)


# ---- noise_shape --------------------------------------------------------------------------

BAD_NOISE = [
    ((SHAPE[0],), ValueError),                 # too few axes
    (SHAPE + (1,), ValueError),                # too many axes
    ((), ValueError),
    ((SHAPE[0] - 1, SHAPE[1]), ValueError),    # neither x's nor 1
    ((SHAPE[0], 2), ValueError),
    ((0, SHAPE[1]), ValueError),
    ((-1, SHAPE[1]), ValueError),
    ((1, 2 * SHAPE[1]), ValueError),
    ((float(SHAPE[0]), SHAPE[1]), TypeError),  # non-integer entries
    ((SHAPE[0], 1.5), TypeError),
    ((SHAPE[0], "1"), TypeError),
    ((True, SHAPE[1]), TypeError),
    ("41", TypeError),
    (4, TypeError),
    (1.0, TypeError),
]
NOISE_IDS = ["short", "long", "empty", "3x8", "4x2", "0x8", "-1x8", "1x16", "float-entry",
             "1.5-entry", "str-entry", "bool-entry", "str", "int", "float"]


@pytest.mark.parametrize("api", WITH_NOISE_SHAPE)
@pytest.mark.parametrize("noise_shape,exc", BAD_NOISE, ids=NOISE_IDS)
def test_bad_noise_shape(api, noise_shape, exc):
    assert_refused(api, exc, r"\bnoise_shape\b", noise_shape=noise_shape)


@pytest.mark.parametrize("api", WITH_NOISE_SHAPE)
def test_good_noise_shapes_accepted(api):
    for ns in [(SHAPE[0], 1), (1, SHAPE[1]), (1, 1), SHAPE, (None, 1), [SHAPE[0], 1],
               (np.int64(1), np.int32(SHAPE[1])), np.array([SHAPE[0], 1])]:
        getattr(fastdrop, api)(**base_kwargs(api), noise_shape=ns)


# ---- mode, bits, mask_format ----------------------------------------------------------------

@pytest.mark.parametrize("api", ["dropout", "dropout_backward"])
@pytest.mark.parametrize("mode", ["Inverted", "standard", "", "inverted ", "alpha"])
def test_bad_mode(api, mode):
    assert_refused(api, ValueError, r"\bmode\b", mode=mode)


@pytest.mark.parametrize("api", ["dropout", "dropout_backward"])
@pytest.mark.parametrize("mode", [None, 1, ["inverted"]], ids=["None", "int", "list"])
def test_non_string_mode(api, mode):
    assert_refused(api, (ValueError, TypeError), r"\bmode\b", mode=mode)


@pytest.mark.parametrize("api,name", [("dropout", "mode"), ("dropout_backward", "mode"),
                                      ("dropout", "mask_format"),
                                      ("alpha_dropout", "mask_format")])
def test_array_valued_mode_or_mask_format(api, name):
    value = (np.array(["classic", "inverted"]) if name == "mode"
             else np.array(["bool", "packed"]))
    assert_refused(api, (ValueError, TypeError), rf"\b{name}\b", **{name: value})


def test_bad_mode_at_inference():
    assert_refused("dropout", ValueError, r"\bmode\b", mode="Classic", training=False)


BAD_BITS = [(12, ValueError), (64, ValueError), (0, ValueError), (-16, ValueError),
            (17, ValueError), ("16", TypeError), (16.0, TypeError), (True, TypeError),
            (None, TypeError), (np.float32(32), TypeError)]
BITS_IDS = ["12", "64", "0", "-16", "17", "str", "float", "bool", "None", "np.float32"]


@pytest.mark.parametrize("api", ALL_APIS)
@pytest.mark.parametrize("bits,exc", BAD_BITS, ids=BITS_IDS)
def test_bad_bits(api, bits, exc):
    assert_refused(api, exc, r"\bbits\b", bits=bits)


@pytest.mark.parametrize("func", [fastdrop.effective_p, fastdrop.dropout_scale])
@pytest.mark.parametrize("bits,exc", BAD_BITS, ids=BITS_IDS)
def test_bad_bits_scalars(func, bits, exc):
    with pytest.raises(exc, match=r"\bbits\b"):
        func(0.5, bits)


@pytest.mark.parametrize("api", WITH_MASK_FORMAT)
@pytest.mark.parametrize("fmt", ["Packed", "bits", "uint8", "", None, True],
                         ids=["Packed", "bits", "uint8", "empty", "None", "True"])
@pytest.mark.parametrize("return_mask", [True, False])
def test_bad_mask_format(api, fmt, return_mask):
    assert_refused(api, ValueError, r"\bmask_format\b", mask_format=fmt,
                   return_mask=return_mask)


# ---- seed, stream, offset, n_threads ------------------------------------------------------

BAD_UINT64 = [(-1, ValueError), (2**64, ValueError), (-(2**63), ValueError),
              (2**100, ValueError), (1.0, TypeError), ("3", TypeError), (True, TypeError),
              (np.float64(2.0), TypeError)]
UINT64_IDS = ["-1", "2**64", "-2**63", "2**100", "float", "str", "bool", "np.float64"]


@pytest.mark.parametrize("api", ALL_APIS)
@pytest.mark.parametrize("name", ["seed", "stream"])
@pytest.mark.parametrize("value,exc", BAD_UINT64, ids=UINT64_IDS)
def test_bad_seed_or_stream(api, name, value, exc):
    assert_refused(api, exc, rf"\b{name}\b", **{name: value})


@pytest.mark.parametrize("api", BACKWARDS)
@pytest.mark.parametrize("value,exc", BAD_UINT64, ids=UINT64_IDS)
def test_bad_stream_with_mask(api, value, exc):
    """stream is checked even when the mask is given (and the stream unused)."""
    mask = fastdrop.dropout_mask(SHAPE, 0.5, seed=1)
    assert_refused(api, exc, r"\bstream\b", mask=mask, seed=None, stream=value)


@pytest.mark.parametrize("api", ["dropout", "alpha_dropout"])
def test_bad_seed_at_inference(api):
    assert_refused(api, ValueError, r"\bseed\b", seed=-1, training=False)


def test_required_seed_none_is_refused():
    """bias_dropout_add and dropout_mask need an explicit seed."""
    assert_refused("bias_dropout_add", TypeError, r"\bseed\b", seed=None)
    assert_refused("dropout_mask", TypeError, r"\bseed\b", seed=None)


def test_uint64_extremes_accepted():
    x = _x()
    a = fastdrop.dropout(x, seed=2**64 - 1, stream=2**64 - 1)
    b = fastdrop.dropout(x, seed=np.uint64(2**64 - 1), stream=np.uint64(2**64 - 1))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("offset,exc", [(-1, ValueError), (2**64, ValueError),
                                        (2**64 - N + 1, ValueError), (1.0, TypeError),
                                        ("0", TypeError), (True, TypeError)])
def test_dropout_mask_bad_offset(offset, exc):
    assert_refused("dropout_mask", exc, r"\boffset\b", offset=offset)


@pytest.mark.parametrize("shape,exc", [((2.5,), TypeError), (2.0, TypeError),
                                       ("abc", TypeError), ((-1,), ValueError),
                                       (-3, ValueError), ((2, None), TypeError),
                                       (None, TypeError)])
def test_dropout_mask_bad_shape(shape, exc):
    assert_refused("dropout_mask", exc, r"\bshape\b", shape=shape)


@pytest.mark.parametrize("api", ALL_APIS)
@pytest.mark.parametrize("n_threads,exc", [(0, ValueError), (-1, ValueError),
                                           (1.5, TypeError), ("2", TypeError),
                                           (True, TypeError)])
def test_bad_n_threads(api, n_threads, exc):
    assert_refused(api, exc, r"\bn_threads\b", n_threads=n_threads)


@pytest.mark.parametrize("api", ALL_APIS)
@pytest.mark.parametrize("n_threads", [2**31, 2**40, 2**64], ids=["2**31", "2**40", "2**64"])
def test_huge_n_threads(api, n_threads):
    """An absurd thread count is either refused (ValueError naming n_threads, nothing
    written) or clamped like n_threads=10**6 is (same result as one thread)."""
    kw = base_kwargs(api)
    func = getattr(fastdrop, api)
    expected = func(**kw, n_threads=1)
    try:
        got = func(**kw, n_threads=n_threads)
    except ValueError:
        assert_refused(api, ValueError, r"\bn_threads\b", n_threads=n_threads)
        return
    for g, e in zip(got if isinstance(got, tuple) else (got,),
                    expected if isinstance(expected, tuple) else (expected,)):
        if e is not None:
            np.testing.assert_array_equal(g, e)


# ---- flags that must be bools -------------------------------------------------------------

NOT_BOOLS = ["yes", "", 1, 0, None, 1.0, np.array([True]), np.array([True, False])]
NOT_BOOL_IDS = ["str", "empty-str", "1", "0", "None", "1.0", "array1", "array2"]


@pytest.mark.parametrize("value", NOT_BOOLS, ids=NOT_BOOL_IDS)
def test_dropout_training_not_bool(value):
    assert_refused("dropout", TypeError, r"\btraining\b", training=value)


@pytest.mark.parametrize("value", NOT_BOOLS, ids=NOT_BOOL_IDS)
def test_alpha_dropout_training_not_bool(value):
    assert_refused("alpha_dropout", TypeError, r"\btraining\b", training=value)


@pytest.mark.parametrize("value", [True, False, np.bool_(True), np.bool_(False)], ids=str)
@pytest.mark.parametrize("api", ["dropout", "alpha_dropout"])
def test_training_bools_accepted(api, value):
    x = _x()
    y = getattr(fastdrop, api)(x, 0.5, seed=1, training=value)
    if not value:
        np.testing.assert_array_equal(y, x)


FLAGS = [("dropout", "return_mask"), ("alpha_dropout", "return_mask"),
         ("bias_dropout_add", "return_mask"), ("dropout_mask", "packed"),
         ("bias_dropout_add_backward", "has_bias")]


@pytest.mark.parametrize("api,flag", [
    pytest.param(api, flag) for api, flag in FLAGS], ids=[f"{a}-{f}" for a, f in FLAGS])
@pytest.mark.parametrize("value", ["no", 1, None], ids=["str", "int", "None"])
def test_flag_not_bool(api, flag, value):
    assert_refused(api, TypeError, rf"\b{flag}\b", **{flag: value})
