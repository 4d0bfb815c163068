"""The CPU fast path of dropout and dropout_backward (fastdrop._core.route.fast_path).

It must take the common call, decline every other one (which the general path then
parses, so errors and warnings are the documented ones), and give the general path's
result bit for bit: that path is `on_backend(name, "cpu")`, which always builds a request.
"""
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
    with pytest.raises(KeyError):
        fast_path("alpha_dropout")
