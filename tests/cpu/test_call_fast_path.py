"""The CPU fast paths of the dropout family (fastdrop._core.route.fast_path).

It must take the common call, decline every other one (which the general path then
parses, so errors and warnings are the documented ones), and give the general path's
result bit for bit: that path is `on_backend(name, "cpu")`, which always builds a request.
"""
import inspect
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastdrop as fd
import fastdrop.reference as ref
from fastdrop._core.route import fast_path, on_backend

ml_dtypes = pytest.importorskip("ml_dtypes")

FAST_FWD = fast_path("dropout")
FAST_BWD = fast_path("dropout_backward")
GENERAL_FWD = on_backend("dropout", "cpu")
GENERAL_BWD = on_backend("dropout_backward", "cpu")

DTYPES = [np.float16, ml_dtypes.bfloat16, np.float32, np.float64]

# the forward's public parameters in order, with their defaults
FWD = dict(seed=None, stream=0, training=True, mode="inverted", noise_shape=None, bits=16,
           return_mask=False, mask_format="packed", out=None, n_threads=None, block=None)
BWD = dict(mask=None, seed=None, stream=0, mode="inverted", noise_shape=None, bits=16,
           out=None, n_threads=None, block=None)


def fast_fwd(x, p, **kw):
    return FAST_FWD(x, p, *{**FWD, **kw}.values())


def fast_bwd(g, p, **kw):
    return FAST_BWD(g, p, *{**BWD, **kw}.values())


def same(a, b):
    assert type(a) is type(b)
    if a is None:
        return
    if isinstance(a, tuple):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            same(u, v)
        return
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8))


# ---- the common call is taken ----------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 5), (1 << 16,), (2, 3, 4)])
def test_the_common_call_is_taken_and_equals_the_general_path(dtype, shape):
    x = np.linspace(-3, 3, int(np.prod(shape))).reshape(shape).astype(dtype)
    for kw in (dict(seed=5), dict(seed=5, stream=9, bits=32), dict(seed=7, bits=8),
               dict(seed=2**64 - 1,
               return_mask=True), dict(seed=0, n_threads=1)):
        got = fast_fwd(x, 0.3, **kw)
        assert got is not None
        same(got, GENERAL_FWD(x, 0.3, **kw))
        same(got, ref.dropout(x, 0.3, **kw))
    y, mask = fd.dropout(x, 0.3, seed=5, return_mask=True)
    g = np.linspace(-1, 1, x.size).reshape(shape).astype(dtype)
    for kw in (dict(seed=5), dict(mask=mask), dict(seed=5, stream=1, bits=32)):
        got = fast_bwd(g, 0.3, **kw)
        assert got is not None
        same(got, GENERAL_BWD(g, 0.3, **kw))
        same(got, ref.dropout_backward(g, 0.3, **kw))


@pytest.mark.parametrize("p", [0.0, 2.0**-16, 0.5, 1.0 - 2.0**-17, 1.0])
@pytest.mark.parametrize("bits", [8, 16, 32])
def test_edge_probabilities(p, bits):
    x = np.linspace(-4, 4, 1001).astype(np.float32)
    got = fast_fwd(x, p, seed=3, bits=bits, return_mask=True)
    if fd.effective_p(p, bits) == 0.0 and p > 0.0:  # below the resolution: the general
        assert got is None                          # path warns
        with pytest.warns(UserWarning, match="resolution"):
            fd.dropout(x, p, seed=3, bits=bits)
        return
    assert got is not None
    same(got, GENERAL_FWD(x, p, seed=3, bits=bits, return_mask=True))
    same(fast_bwd(x, p, seed=3, bits=bits), GENERAL_BWD(x, p, seed=3, bits=bits))


def test_round_half_even_thresholds():
    # p * 2**16 exactly half-way between two integers: t rounds to the even one
    x = np.ones(4096, np.float32)
    for k in (1, 2, 3, 100, 65534):
        p = (k + 0.5) / 65536.0
        same(fast_fwd(x, p, seed=1, return_mask=True),
             GENERAL_FWD(x, p, seed=1, return_mask=True))
        assert fd.effective_p(p) == (k + (k % 2)) / 65536.0


def test_out_in_place_and_distinct():
    x = np.linspace(-1, 1, 999).astype(np.float32)
    expected = GENERAL_FWD(x, 0.5, seed=4)
    buf = np.full_like(x, 7.0)
    assert fast_fwd(x, 0.5, seed=4, out=buf) is buf
    same(buf, expected)
    inplace = x.copy()
    assert fast_fwd(inplace, 0.5, seed=4, out=inplace) is inplace
    same(inplace, expected)
    _, mask = GENERAL_FWD(x, 0.5, seed=4, return_mask=True)
    g = x.copy()
    assert fast_bwd(g, 0.5, mask=mask, out=g) is g
    same(g, GENERAL_BWD(x, 0.5, mask=mask))


def test_large_calls_use_the_thread_policy_and_do_not_depend_on_it():
    x = np.linspace(-1, 1, (1 << 19) + 5).astype(np.float32)  # past two grains
    one = fast_fwd(x, 0.25, seed=8, n_threads=1, return_mask=True)
    two = fast_fwd(x, 0.25, seed=8, n_threads=2, return_mask=True)
    same(one, two)
    same(one, GENERAL_FWD(x, 0.25, seed=8, return_mask=True))


def test_seed_none_draws_a_fresh_seed_each_call():
    x = np.ones(4096, np.float32)
    a, b = fast_fwd(x, 0.5), fast_fwd(x, 0.5)
    assert a is not None and b is not None and not np.array_equal(a, b)


# ---- every other call is declined (and the public function still answers) -----------------


def _declined_forward_calls():
    x = np.linspace(-1, 1, 64).astype(np.float32)
    ro = x.copy()
    ro.flags.writeable = False
    big_endian = x.astype(">f4")
    raw = np.zeros(64 * 4 + 1, np.uint8)[1:].view(np.float32)  # not 4-byte aligned
    yield "strided", (x[::2], 0.5), dict(seed=1)
    yield "fortran 2-D", (np.asfortranarray(x.reshape(8, 8)), 0.5), dict(seed=1)
    yield "big-endian", (big_endian, 0.5), dict(seed=1)
    yield "unaligned", (raw, 0.5), dict(seed=1)
    yield "empty", (np.zeros(0, np.float32), 0.5), dict(seed=1)
    yield "subclass", (x.view(np.ma.MaskedArray), 0.5), dict(seed=1)
    yield "list", ([1.0, 2.0], 0.5), dict(seed=1)
    yield "int array", (np.arange(4), 0.5), dict(seed=1)
    yield "numpy float p", (x, np.float32(0.5)), dict(seed=1)
    yield "int p", (x, 1), dict(seed=1)
    yield "p > 1", (x, 1.5), dict(seed=1)
    yield "nan p", (x, float("nan")), dict(seed=1)
    yield "tiny p", (x, 1e-9), dict(seed=1)
    yield "bool seed", (x, 0.5), dict(seed=True)
    yield "negative seed", (x, 0.5), dict(seed=-1)
    yield "huge seed", (x, 0.5), dict(seed=2**64)
    yield "numpy seed", (x, 0.5), dict(seed=np.uint64(3))
    yield "float stream", (x, 0.5), dict(seed=1, stream=1.0)
    yield "inference", (x, 0.5), dict(seed=1, training=False)
    yield "truthy training", (x, 0.5), dict(seed=1, training=1)
    yield "classic", (x, 0.5), dict(seed=1, mode="classic")
    yield "bad mode", (x, 0.5), dict(seed=1, mode="inverse")
    yield "array mode", (x, 0.5), dict(seed=1, mode=np.array(["inverted"] * 2))
    yield "noise shape", (x, 0.5), dict(seed=1, noise_shape=(64,))
    yield "bits 12", (x, 0.5), dict(seed=1, bits=12)
    yield "bool mask", (x, 0.5), dict(seed=1, return_mask=True, mask_format="bool")
    yield "bad mask format", (x, 0.5), dict(seed=1, mask_format="bits")
    yield "truthy return_mask", (x, 0.5), dict(seed=1, return_mask=1)
    yield "read-only out", (x, 0.5), dict(seed=1, out=ro)
    yield "read-only in place", (ro, 0.5), dict(seed=1, out=ro)
    yield "overlapping out", (x[:32], 0.5), dict(seed=1, out=x[16:48])
    yield "wrong dtype out", (x, 0.5), dict(seed=1, out=np.empty(64, np.float64))
    yield "wrong shape out", (x, 0.5), dict(seed=1, out=np.empty((8, 8), np.float32))
    yield "zero threads", (x, 0.5), dict(seed=1, n_threads=0)
    yield "block", (x, 0.5), dict(seed=1, block=((0,), (64,)))


@pytest.mark.parametrize("case", list(_declined_forward_calls()), ids=lambda c: c[0])
def test_uncommon_forward_calls_are_declined_and_answered_as_before(case):
    _, args, kw = case
    assert fast_fwd(*args, **kw) is None
    try:
        with warnings.catch_warnings(record=True) as w_general:
            warnings.simplefilter("always")
            expected = GENERAL_FWD(*args, **kw)
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)) as info:
            fd.dropout(*args, **kw)
        assert str(info.value) == str(exc)
        return
    with warnings.catch_warnings(record=True) as w_public:
        warnings.simplefilter("always")
        got = fd.dropout(*args, **kw)
    assert [str(w.message) for w in w_public] == [str(w.message) for w in w_general]
    if isinstance(expected, tuple):
        for u, v in zip(got, expected):
            np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    else:
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


def test_uncommon_backward_calls_are_declined():
    g = np.linspace(-1, 1, 64).astype(np.float32)
    _, mask = fd.dropout(g, 0.5, seed=1, return_mask=True)
    flags = fd.unpack_mask(mask, g.shape)
    cases = [
        dict(seed=1, mask=mask),                   # both
        dict(),                                    # neither
        dict(mask=flags),                          # a bool mask
        dict(mask=mask[:-1]),                      # a short packed mask
        dict(mask=np.repeat(mask, 2)[::2]),        # a strided packed mask
        dict(mask=mask.astype(np.int8)),           # a signed mask
        dict(seed=1, mode="classic"),
        dict(seed=1, noise_shape=(64,)),
        dict(seed=1, out=np.empty(64, np.float16)),
    ]
    for kw in cases:
        assert fast_bwd(g, 0.5, **kw) is None, kw
    overlaps_mask = np.zeros(64, np.float32)
    mask_view = overlaps_mask.view(np.uint8)[:8]
    mask_view[:] = mask
    assert fast_bwd(g, 0.5, mask=mask_view, out=overlaps_mask) is None
    with pytest.raises(ValueError, match="overlap"):
        fd.dropout_backward(g, 0.5, mask=mask_view, out=overlaps_mask)


def test_a_declined_bad_out_writes_nothing():
    x = np.ones(64, np.float32)
    out = np.full(64, 3.0, np.float32)
    with pytest.raises(ValueError):
        fd.dropout(x, 1.5, seed=1, out=out)
    assert (out == 3.0).all()


# ---- the property: the fast path equals the general path and the twin -----------------------


@settings(max_examples=60, deadline=None)
@given(dtype=st.sampled_from(DTYPES), n=st.integers(1, 3000),
       p=st.floats(0.0, 1.0), bits=st.sampled_from([8, 16, 32]),
       seed=st.integers(0, 2**64 - 1), stream=st.integers(0, 2**64 - 1),
       return_mask=st.booleans(), from_mask=st.booleans())
def test_fast_path_property(dtype, n, p, bits, seed, stream, return_mask, from_mask):
    x = np.random.default_rng(n).standard_normal(n).astype(dtype)
    kw = dict(seed=seed, stream=stream, bits=bits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # p below the resolution: the general path warns
        got = fd.dropout(x, p, return_mask=return_mask, **kw)
        same(got, GENERAL_FWD(x, p, return_mask=return_mask, **kw))
        same(got, ref.dropout(x, p, return_mask=return_mask, **kw))
        _, mask = ref.dropout(x, p, return_mask=True, **kw)
        bk = dict(mask=mask, bits=bits) if from_mask else kw
        same(fd.dropout_backward(x, p, **bk), ref.dropout_backward(x, p, **bk))


def test_the_fast_path_is_the_cpu_backends():
    assert "fastdrop._cpu.backend" in sys.modules
    from fastdrop._cpu import backend
    assert backend.FAST_PATHS["dropout"] is FAST_FWD
    for name in OTHERS:
        assert backend.FAST_PATHS[name] is fast_path(name)
    with pytest.raises(KeyError):
        fast_path("unpack_mask")


# ---- the pointer entries (the torch adapter's lean path) ------------------------------------
#
# dropout and its backward on raw addresses: the same bits as the public functions.

PTR_FWD = fast_path("dropout_ptr")
PTR_BWD = fast_path("dropout_backward_ptr")
CODES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.float16): 2,
         np.dtype(ml_dtypes.bfloat16): 3}


def _addr(a):
    return 0 if a is None else a.ctypes.data


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 13, 1 << 12])
def test_the_pointer_entries_equal_the_public_functions(dtype, n):
    x = np.random.default_rng(n).standard_normal(n).astype(dtype)
    code, kw = CODES[x.dtype], dict(seed=5, stream=3, bits=16)
    want_y, want_m = fd.dropout(x, 0.3, return_mask=True, **kw)
    y, m = np.empty_like(x), np.empty((n + 7) // 8, np.uint8)
    assert PTR_FWD(_addr(x), _addr(y), n, code, 0.3, 5, 3, 16, _addr(m), 1) is True
    same(y, want_y)
    same(m, want_m)
    y2 = np.empty_like(x)  # no mask
    assert PTR_FWD(_addr(x), _addr(y2), n, code, 0.3, 5, 3, 16, 0, 1) is True
    same(y2, want_y)
    want_dx = fd.dropout_backward(x, 0.3, mask=want_m, bits=16)
    same(want_dx, fd.dropout_backward(x, 0.3, seed=5, stream=3, bits=16))
    for mask in (m, None):  # from the mask; regenerated from the seed
        dx = np.empty_like(x)
        assert PTR_BWD(_addr(x), _addr(dx), n, code, 0.3, _addr(mask), 5, 3, 16, 1) is True
        same(dx, want_dx)
    xi = x.copy()  # in place, both ways
    assert PTR_FWD(_addr(xi), _addr(xi), n, code, 0.3, 5, 3, 16, 0, 1) is True
    same(xi, want_y)
    xi = x.copy()
    assert PTR_BWD(_addr(xi), _addr(xi), n, code, 0.3, 0, 5, 3, 16, 1) is True
    same(xi, want_dx)


def test_the_pointer_entries_decline_uncommon_calls():
    x = np.ones(64, np.float32)
    y = np.zeros_like(x)
    a, b = _addr(x), _addr(y)
    good = dict(n=64, dtype_code=0, p=0.5, seed=1, stream=0, bits=16, n_threads=1)
    bad = [("n", 0), ("n", 2**70), ("n", 64.0), ("dtype_code", 4), ("dtype_code", True),
           ("p", 1.5), ("p", float("nan")), ("p", 1), ("p", 2.0**-40), ("seed", -1),
           ("seed", 1.0), ("stream", 2**64), ("bits", 12), ("bits", 16.0), ("n_threads", 0)]
    for name, v in bad:
        k = {**good, name: v}
        assert PTR_FWD(a, b, k["n"], k["dtype_code"], k["p"], k["seed"], k["stream"], k["bits"],
                       0, k["n_threads"]) is False, name
        if name != "seed":  # with a mask the seed is not read
            assert PTR_BWD(a, b, k["n"], k["dtype_code"], k["p"], a, k["seed"], k["stream"],
                           k["bits"], k["n_threads"]) is False, name
    for xa, ya, ma in [(0, b, 0), (a, 0, 0), (a, -1, 0), (a, b, -1), (a, b, 2.0), (str(a), b, 0)]:
        assert PTR_FWD(xa, ya, 64, 0, 0.5, 1, 0, 16, ma, 1) is False
        assert PTR_BWD(xa, ya, 64, 0, 0.5, ma, 1, 0, 16, 1) is False
    assert PTR_BWD(a, b, 64, 0, 0.5, 0, None, 0, 16, 1) is False  # no mask and no seed
    assert not y.any()  # nothing was written


# ---- the other functions' fast paths ------------------------------------------------------
#
# Each is called with its public function's parameters in order (`fast`), and compared with
# the general path (`general`: on_backend, which always parses) and the twin.

OTHERS = ["dropout_mask", "bias_dropout_add", "bias_dropout_add_backward", "alpha_dropout",
          "alpha_dropout_backward", "gaussian_dropout", "gaussian_dropout_backward"]
SIGNATURES = {name: inspect.signature(getattr(fd, name)) for name in OTHERS}


def fast(name, *args, **kw):
    bound = SIGNATURES[name].bind(*args, **kw)
    bound.apply_defaults()
    return fast_path(name)(*bound.arguments.values())


def general(name, *args, **kw):
    return on_backend(name, "cpu")(*args, **kw)


def _operands(dtype, shape):
    n = int(np.prod(shape))
    x = np.linspace(-3, 3, n).reshape(shape).astype(dtype)
    r = np.linspace(1, -2, n).reshape(shape).astype(dtype)
    b = np.linspace(-1, 2, shape[-1]).astype(dtype) if shape else None
    return x, r, b


def _taken_calls(dtype, shape):
    x, r, b = _operands(dtype, shape)
    _, mask = ref.dropout(x, 0.3, seed=5, return_mask=True)
    n = x.size
    yield "dropout_mask", (shape, 0.3), dict(seed=5)
    yield "dropout_mask", (n, 0.3), dict(seed=5, packed=False, bits=8, offset=7)
    yield "dropout_mask", (shape, 0.3), dict(seed=2**64 - 1, stream=3, bits=32, packed=False,
                                             offset=2**64 - n)
    yield "bias_dropout_add", (x, b, r, 0.3), dict(seed=5)
    yield "bias_dropout_add", (x, None, r, 0.3), dict(seed=5, bits=8, return_mask=True)
    yield "bias_dropout_add", (x, b, r, 0.3), dict(seed=6, stream=9, bits=32, return_mask=True,
                                                   n_threads=1)
    yield "bias_dropout_add_backward", (r, 0.3), dict(seed=5, has_bias=bool(shape))
    yield "bias_dropout_add_backward", (r, 0.3), dict(mask=mask, has_bias=bool(shape))
    yield "bias_dropout_add_backward", (r, 0.3), dict(seed=5, bits=32, has_bias=False)
    for kw in (dict(seed=5), dict(seed=5, stream=9, bits=32, return_mask=True),
               dict(seed=7, bits=8, mask_format="bool"), dict(seed=0, n_threads=1)):
        yield "alpha_dropout", (x, 0.3), kw
    for kw in (dict(seed=5), dict(mask=mask), dict(seed=5, stream=1, bits=32),
               dict(seed=5, bits=8)):
        yield "alpha_dropout_backward", (r, 0.3), kw
    for kw in (dict(seed=5), dict(seed=2**64 - 1, stream=3, n_threads=1)):
        yield "gaussian_dropout", (x, 0.3), kw
        yield "gaussian_dropout_backward", (r, 0.3), kw


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 5), (5, 1), (1, 9), (1 << 12,),
                                   (2, 3, 4)])
def test_the_other_common_calls_are_taken_and_equal_the_general_path(dtype, shape):
    for name, args, kw in _taken_calls(dtype, shape):
        got = fast(name, *args, **kw)
        assert got is not None, (name, kw)
        same(got, general(name, *args, **kw))
        same(got, getattr(ref, name)(*args, **kw))
        if name == "bias_dropout_add_backward":
            assert got[2] is args[0]  # dresidual is grad itself


@pytest.mark.parametrize("p", [0.0, 2.0**-16, 2.0**-40, 0.5, 1.0 - 2.0**-17, 1.0])
@pytest.mark.parametrize("bits", [8, 16, 32])
def test_the_other_functions_at_edge_probabilities(p, bits):
    x, r, b = _operands(np.float32, (7, 143))
    below = fd.effective_p(p, bits) == 0.0 and p > 0.0  # the general path warns
    drawn = dict(seed=3, bits=bits)
    calls = [("dropout_mask", (x.shape, p), drawn),
             ("bias_dropout_add", (x, b, r, p), dict(drawn, return_mask=True)),
             ("bias_dropout_add_backward", (x, p), drawn),
             ("alpha_dropout", (x, p), dict(drawn, return_mask=True)),
             ("alpha_dropout_backward", (x, p), drawn)]
    for name, args, kw in calls:
        got = fast(name, *args, **kw)
        if below:
            assert got is None, name
            with pytest.warns(UserWarning, match="resolution"):
                getattr(fd, name)(*args, **kw)
            continue
        assert got is not None, name
        same(got, general(name, *args, **kw))
        same(got, getattr(ref, name)(*args, **kw))
    for name in ("gaussian_dropout", "gaussian_dropout_backward"):  # p in [0, 1), any p
        got = fast(name, x, p, seed=3)
        if p == 1.0:
            assert got is None
            with pytest.raises(ValueError, match="infinite"):
                getattr(fd, name)(x, p, seed=3)
            continue
        same(got, general(name, x, p, seed=3))
        same(got, getattr(ref, name)(x, p, seed=3))


def test_the_other_outputs_in_place_and_distinct():
    x, r, b = _operands(np.float32, (9, 111))
    for name, args, kw in [("bias_dropout_add", (x, b, r, 0.5), dict(seed=4)),
                           ("alpha_dropout", (x, 0.5), dict(seed=4)),
                           ("alpha_dropout_backward", (x, 0.5), dict(seed=4)),
                           ("gaussian_dropout", (x, 0.5), dict(seed=4)),
                           ("gaussian_dropout_backward", (x, 0.5), dict(seed=4))]:
        expected = general(name, *args, **kw)
        buf = np.full_like(x, 7.0)
        assert fast(name, *args, out=buf, **kw) is buf
        same(buf, expected)
        targets = [0, 2] if name == "bias_dropout_add" else [0]  # out may be x or residual
        for k in targets:
            own = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
            assert fast(name, *own, out=own[k], **kw) is own[k]
            same(own[k], expected)
    shared = x.copy()  # residual is x itself, and so is out
    expected = general("bias_dropout_add", shared, b, shared, 0.5, seed=4)
    assert fast("bias_dropout_add", shared, b, shared, 0.5, seed=4, out=shared) is shared
    same(shared, expected)


def test_the_other_large_calls_do_not_depend_on_threads():
    x, r, b = _operands(np.float32, (1 << 10, 257))  # past two grains
    for name, args, kw in [("bias_dropout_add", (x, b, r, 0.25), dict(return_mask=True)),
                           ("dropout_mask", (x.shape, 0.25), dict(packed=False)),
                           ("gaussian_dropout", (x, 0.25), {})]:
        one = fast(name, *args, seed=8, n_threads=1, **kw)
        same(one, fast(name, *args, seed=8, n_threads=2, **kw))
        same(one, general(name, *args, seed=8, **kw))


def test_the_other_seed_none_calls_draw_a_fresh_seed_each_call():
    x = np.ones((8, 512), np.float32)
    for name in ("alpha_dropout", "gaussian_dropout"):
        a, b = fast(name, x, 0.5), fast(name, x, 0.5)
        assert a is not None and b is not None
        assert a.shape == x.shape and a.dtype == x.dtype and not np.array_equal(a, b)
    y, mask = fast("alpha_dropout", x, 0.5, return_mask=True)
    assert mask.dtype == np.uint8 and mask.shape == (x.size // 8,)
    same(fast("alpha_dropout_backward", x, 0.5, mask=mask),
         general("alpha_dropout_backward", x, 0.5, mask=mask))


def _declined_other_calls():
    x = np.linspace(-1, 1, 64).astype(np.float32)
    x2 = x.reshape(8, 8).copy()
    ro = x.copy()
    ro.flags.writeable = False
    raw = np.zeros(64 * 4 + 1, np.uint8)[1:].view(np.float32)  # not 4-byte aligned
    b = np.linspace(0, 1, 8).astype(np.float32)
    r = x2 + 1
    _, mask = fd.dropout(x, 0.5, seed=1, return_mask=True)
    arrays = {"strided": x[::2].reshape(4, 8), "fortran": np.asfortranarray(x2),
              "big-endian": x2.astype(">f4"), "unaligned": raw.reshape(8, 8),
              "empty": np.zeros((0, 8), np.float32), "subclass": x2.view(np.ma.MaskedArray),
              "list": x2.tolist(), "int array": np.arange(64).reshape(8, 8)}
    scalars = {"numpy float p": dict(p=np.float32(0.5)), "int p": dict(p=1),
               "p > 1": dict(p=1.5), "nan p": dict(p=float("nan")),
               "bool seed": dict(seed=True), "negative seed": dict(seed=-1),
               "huge seed": dict(seed=2**64), "numpy seed": dict(seed=np.uint64(3)),
               "float stream": dict(stream=1.0), "zero threads": dict(n_threads=0),
               "numpy threads": dict(n_threads=np.int64(1)),
               "block": dict(block=((0, 0), (8, 8)))}
    with_bits = {"tiny p": dict(p=1e-9), "bits 12": dict(bits=12),
                 "bool bits": dict(bits=True)}

    def vary(name, call):
        """The uncommon variants of one common call: (name, variant, args, kw)."""
        args, kw = call
        params = SIGNATURES[name].parameters
        where_p = 3 if name == "bias_dropout_add" else 1
        if name != "dropout_mask":
            for what, arr in arrays.items():
                yield name, what, (arr,) + args[1:], kw
        for what, change in dict(scalars, **(with_bits if "bits" in params else {})).items():
            a, k = list(args), dict(kw)
            if "p" in change:
                a[where_p] = change["p"]
            else:
                k.update(change)
            yield name, what, tuple(a), k
        if "out" in params:
            for what, out in (("read-only out", ro.reshape(8, 8)),
                              ("wrong dtype out", np.empty((8, 8), np.float64)),
                              ("wrong shape out", np.empty(64, np.float32)),
                              ("strided out", np.empty((8, 16), np.float32)[:, ::2]),
                              ("overlapping out", args[0].reshape(-1)[::-1].reshape(8, 8)),
                              ("a view of x as out", args[0][:])):
                yield name, what, args, dict(kw, out=out)
        if "training" in params:
            yield name, "inference", args, dict(kw, training=False)
            yield name, "truthy training", args, dict(kw, training=1)
        if "return_mask" in params:
            yield name, "truthy return_mask", args, dict(kw, return_mask=1)
        if "mask_format" in params:
            yield name, "bool mask", args, dict(kw, return_mask=True, mask_format="bool")
            yield name, "bad mask format", args, dict(kw, mask_format="bits")
        if "noise_shape" in params:
            yield name, "noise shape", args, dict(kw, noise_shape=(8, 1))
        if "mask" in params:
            for what, change in (("mask and seed", dict(mask=mask)),
                                 ("neither", dict(seed=None)),
                                 ("bool mask in", dict(seed=None, mask=np.ones((8, 8), bool))),
                                 ("short mask", dict(seed=None, mask=mask[:-1])),
                                 ("strided mask", dict(seed=None,
                                                       mask=np.repeat(mask, 2)[::2])),
                                 ("signed mask", dict(seed=None, mask=mask.astype(np.int8)))):
                yield name, what, args, dict(kw, **change)

    one = dict(seed=1)
    yield from vary("bias_dropout_add", ((x2, b, r, 0.5), one))
    for name in ("bias_dropout_add_backward", "alpha_dropout", "alpha_dropout_backward",
                 "gaussian_dropout", "gaussian_dropout_backward"):
        yield from vary(name, ((x2, 0.5), one))
    yield from vary("dropout_mask", (((8, 8), 0.5), one))
    bda = "bias_dropout_add"
    over_bias = np.zeros(64, np.float32)  # out's memory holds the bias
    ro2 = ro.reshape(8, 8)
    for what, args, kw in [
            ("bias of another dtype", (x2, b.astype(np.float64), r, 0.5), {}),
            ("bias of another length", (x2, b[:7].copy(), r, 0.5), {}),
            ("2-d bias", (x2, b.reshape(1, 8), r, 0.5), {}),
            ("strided bias", (x2, np.repeat(b, 2)[::2], r, 0.5), {}),
            ("list bias", (x2, b.tolist(), r, 0.5), {}),
            ("bias of a 0-d x", (x2[0, 0].copy(), b[:1].copy(), r[0, 0].copy(), 0.5), {}),
            ("residual of another shape", (x2, b, r.reshape(-1), 0.5), {}),
            ("residual of another dtype", (x2, b, r.astype(np.float64), 0.5), {}),
            ("strided residual", (x2, b, np.repeat(r, 2, axis=1)[:, ::2], 0.5), {}),
            ("fortran residual", (x2, b, np.asfortranarray(r), 0.5), {}),
            ("list residual", (x2, b, r.tolist(), 0.5), {}),
            ("no seed", (x2, b, r, 0.5), dict(seed=None)),
            ("out over the residual", (x2, b, r, 0.5),
             dict(out=r.reshape(-1)[::-1].reshape(8, 8))),
            ("out holding the bias", (x2, over_bias[56:64], r, 0.5),
             dict(out=over_bias[:64].reshape(8, 8))),
            ("read-only residual as out", (x2, b, ro2, 0.5), dict(out=ro2)),
            ("a view of the residual as out", (x2, b, r, 0.5), dict(out=r[:])),
    ]:
        yield bda, what, args, dict(one, **kw)
    over_mask = np.zeros(64, np.float32)  # out's memory holds the mask
    over_mask.view(np.uint8)[:8] = mask
    yield "alpha_dropout_backward", "out over the mask", (x, 0.5), dict(
        mask=over_mask.view(np.uint8)[:8], out=over_mask)
    bwd = "bias_dropout_add_backward"
    yield bwd, "0-d grad with bias", (np.ones((), np.float32), 0.5), one
    yield bwd, "truthy has_bias", (x2, 0.5), dict(one, has_bias=1)
    yield "gaussian_dropout", "p = 1", (x2, 1.0), one
    yield "gaussian_dropout_backward", "p = 1", (x2, 1.0), one
    yield "gaussian_dropout_backward", "no seed", (x2, 0.5), dict(seed=None)
    for what, args, kw in [
            ("float shape", (8.0, 0.5), {}), ("negative shape", (-8, 0.5), {}),
            ("list shape", ([8, 8], 0.5), {}), ("numpy shape", (np.int64(8), 0.5), {}),
            ("numpy dim", ((2, np.int64(4)), 0.5), {}), ("empty", ((4, 0), 0.5), {}),
            ("zero", (0, 0.5), {}), ("bool shape", (True, 0.5), {}),
            ("huge shape", ((2**40, 2**40), 0.5), {}),
            ("no seed", (8, 0.5), dict(seed=None)),
            ("negative offset", (8, 0.5), dict(offset=-1)),
            ("offset past 2**64", (8, 0.5), dict(offset=2**64 - 7)),
            ("truthy packed", (8, 0.5), dict(packed=1)),
            ("cpu device", (8, 0.5), dict(device="cpu")),
            ("offset and block", ((8,), 0.5), dict(offset=1, block=((0,), (8,)))),
    ]:
        yield "dropout_mask", what, args, dict(one, **kw)


def _answers(func, args, kw):
    """What a call answers: ("raises", type, message) or ("returns", result, warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            got = func(*args, **kw)
        except (TypeError, ValueError, OverflowError, MemoryError) as exc:
            return "raises", type(exc), str(exc)
    return "returns", got, [str(w.message) for w in caught]


@pytest.mark.parametrize("case", list(_declined_other_calls()), ids=lambda c: f"{c[0]}-{c[1]}")
def test_uncommon_calls_of_the_other_functions_are_declined_and_answered_as_before(case):
    name, _, args, kw = case
    assert fast(name, *args, **kw) is None
    expected = _answers(on_backend(name, "cpu"), args, kw)
    got = _answers(getattr(fd, name), args, kw)
    assert got[0] == expected[0], (got, expected)
    if got[0] == "raises":
        assert got[1:] == expected[1:]
        return
    assert got[2] == expected[2]  # the same warnings
    a, e = got[1], expected[1]
    for u, v in zip(a if isinstance(a, tuple) else (a,), e if isinstance(e, tuple) else (e,)):
        assert (u is None) == (v is None)
        if u is not None:
            np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_a_declined_bad_call_of_the_other_functions_writes_nothing():
    x, r, b = _operands(np.float32, (8, 8))
    out = np.full_like(x, 3.0)
    with pytest.raises(ValueError):
        fd.bias_dropout_add(x, b, r, 1.5, seed=1, out=out)
    with pytest.raises(ValueError):
        fd.gaussian_dropout(x, 1.0, seed=1, out=out)
    with pytest.raises(TypeError):
        fd.alpha_dropout(x, 0.5, seed=1, bits=True, out=out)
    assert (out == 3.0).all()


@settings(max_examples=80, deadline=None)
@given(name=st.sampled_from(OTHERS), dtype=st.sampled_from(DTYPES), rows=st.integers(1, 9),
       cols=st.integers(1, 400), p=st.floats(0.0, 1.0), bits=st.sampled_from([8, 16, 32]),
       seed=st.integers(0, 2**64 - 1), stream=st.integers(0, 2**64 - 1),
       flag=st.booleans(), from_mask=st.booleans())
def test_the_other_fast_paths_property(name, dtype, rows, cols, p, bits, seed, stream, flag,
                                       from_mask):
    x = np.random.default_rng(cols).standard_normal((rows, cols)).astype(dtype)
    r = np.random.default_rng(rows).standard_normal((rows, cols)).astype(dtype)
    b = np.linspace(-1, 1, cols).astype(dtype)
    drawn = dict(seed=seed, stream=stream, bits=bits)
    if from_mask and name in ("alpha_dropout_backward", "bias_dropout_add_backward"):
        drawn = dict(mask=fd.dropout_mask(x.shape, 0.5, seed=seed, bits=bits), bits=bits)
    if name == "dropout_mask":
        args, kw = ((rows, cols), p), dict(drawn, packed=flag, offset=seed % 1000)
    elif name == "bias_dropout_add":
        args, kw = (x, b if flag else None, r, p), dict(drawn, return_mask=from_mask)
    elif name == "bias_dropout_add_backward":
        args, kw = (x, p), dict(drawn, has_bias=flag)
    elif name == "alpha_dropout":
        args, kw = (x, p), dict(drawn, return_mask=flag)
    elif name == "alpha_dropout_backward":
        args, kw = (x, p), drawn
    else:
        args, kw = (x, min(p, 0.99)), dict(seed=seed, stream=stream)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # p below the resolution: the general path warns
        got = getattr(fd, name)(*args, **kw)
        same(got, general(name, *args, **kw))
        same(got, getattr(ref, name)(*args, **kw))
