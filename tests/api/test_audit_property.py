"""The reliability audit's method, kept in the suite (issue 13): one Hypothesis property
over random calls of every array function, compared with the slow twin bit for bit.

Each example draws a function, a dtype in either byte order, a shape (0-d to 3-d, empty
included), a memory layout (C, Fortran, reversed, strided), p (0, 1, rounding ties of
2**-bits, anything), bits, a noise shape, a block placement, a mask (packed with any
strides, or bool with any nonzero byte values), an out kind (none, fresh, in place) and a
thread count.  Non-native byte orders must be refused with a TypeError and nothing
written; everything else must equal `fastdrop.reference`, arguments left alike.

FASTDROP_AUDIT_EXAMPLES sets the number of examples (default 400, a few seconds; the audit's
own run was several thousand: FASTDROP_AUDIT_EXAMPLES=5000).
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastdrop as fd
from fastdrop import reference as ref
from _helpers import BFLOAT16, FLOAT_DTYPES

EXAMPLES = int(os.environ.get("FASTDROP_AUDIT_EXAMPLES", "400"))
FUNCTIONS = ["dropout", "dropout_backward", "alpha_dropout", "alpha_dropout_backward",
             "gaussian_dropout", "gaussian_dropout_backward", "bias_dropout_add",
             "bias_dropout_add_backward"]
FORWARD_MASKS = {"dropout", "alpha_dropout"}
BACKWARD_MASKS = {"dropout_backward", "alpha_dropout_backward", "bias_dropout_add_backward"}
NOISE = {"dropout", "dropout_backward", "alpha_dropout", "alpha_dropout_backward"}
OUT = {"dropout", "dropout_backward", "alpha_dropout", "alpha_dropout_backward",
       "gaussian_dropout", "gaussian_dropout_backward", "bias_dropout_add"}


def _bytes(a):
    a = np.asarray(a)
    return (a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes())


def _same(got, exp, where):
    if isinstance(exp, tuple):
        assert isinstance(got, tuple) and len(got) == len(exp), where
        for k, (g, e) in enumerate(zip(got, exp)):
            _same(g, e, f"{where}[{k}]")
    elif exp is None:
        assert got is None, where
    else:
        assert _bytes(got) == _bytes(exp), where


@st.composite
def layout(draw, shape, dtype, seed):
    """An array of `shape` in a random memory layout (values from `seed`)."""
    rng = np.random.default_rng(seed)
    base = np.asarray(rng.standard_normal(shape) * 3, np.float64)
    if base.size >= 4 and draw(st.booleans()):
        flat = base.reshape(-1)
        flat[rng.integers(0, base.size, 3)] = [np.nan, np.inf, -0.0]
    kind = draw(st.sampled_from(["C", "F", "reversed", "strided"])) if base.ndim else "C"
    x = base.astype(dtype)
    if kind == "F":
        x = np.asfortranarray(x)
    elif kind == "reversed":
        x = np.flip(np.flip(x).copy())
    elif kind == "strided":
        big = np.zeros(tuple(2 * n for n in shape), dtype)
        big[tuple(slice(None, None, 2) for _ in shape)] = x
        x = big[tuple(slice(None, None, 2) for _ in shape)]
    return x


@st.composite
def calls(draw):
    name = draw(st.sampled_from(FUNCTIONS))
    dtype = np.dtype(draw(st.sampled_from(FLOAT_DTYPES)))
    swapped = dtype != BFLOAT16 and draw(st.integers(0, 9)) == 0  # a big-endian array
    shape = tuple(draw(st.lists(st.integers(0, 5), max_size=3)))
    if name.startswith("bias") and not shape:
        shape = (3,)
    bits = draw(st.sampled_from([8, 16, 32]))
    k = draw(st.integers(0, 1 << bits))
    p = draw(st.sampled_from([0.0, 1.0, k / 2.0**bits, (k + 0.5) / 2.0**bits,
                              draw(st.floats(0, 1))]))
    p = min(p, 1.0)
    if name.startswith("gaussian"):
        p = min(p, 0.99)
    x = draw(layout(shape, dtype, draw(st.integers(0, 2**16))))
    if swapped:
        x = x.astype(dtype.newbyteorder(">" if dtype.isnative and np.little_endian else "<"))
    kwargs = dict(n_threads=draw(st.sampled_from([None, 1, 2, 7])))
    if name not in ("bias_dropout_add_backward", "bias_dropout_add"):
        kwargs["stream"] = draw(st.integers(0, 2**64 - 1))
    noise = None
    gshape = shape
    if name in NOISE and draw(st.booleans()) and shape:  # a block of a larger array
        origin = tuple(draw(st.integers(0, 3)) for _ in shape)
        gshape = tuple(o + n + draw(st.integers(0, 3)) for o, n in zip(origin, shape))
        kwargs["block"] = (origin, gshape)
    if name in NOISE and shape and draw(st.booleans()):  # of the global array, if a block
        ones = [draw(st.booleans()) for _ in shape]
        kwargs["noise_shape"] = tuple(1 if o else g for o, g in zip(ones, gshape))
        noise = tuple(1 if o else n for o, n in zip(ones, shape))
    if not name.startswith("gaussian"):
        kwargs["bits"] = bits
    use_mask = name in BACKWARD_MASKS and draw(st.booleans()) and "block" not in kwargs
    if use_mask:
        mshape = noise if noise is not None else shape
        keep = np.random.default_rng(draw(st.integers(0, 99))).random(mshape) < 0.5
        if draw(st.booleans()):  # packed, perhaps as a strided view
            packed = np.packbits(keep.reshape(-1), bitorder="little")
            kwargs["mask"] = (np.repeat(packed, 2)[::2] if draw(st.booleans()) else packed)
        else:  # bool, bytes 1..255 where kept
            raw = (keep * np.random.default_rng(1).integers(1, 256, mshape)).astype(np.uint8)
            kwargs["mask"] = raw.view(np.bool_)
    else:
        kwargs["seed"] = draw(st.integers(0, 2**64 - 1))
    if name in FORWARD_MASKS and draw(st.booleans()):
        kwargs["return_mask"] = True
        kwargs["mask_format"] = draw(st.sampled_from(["packed", "bool"]))
    if name in OUT:
        kind = draw(st.sampled_from(["none", "fresh", "inplace"]))
        if kind == "fresh":
            kwargs["out"] = np.zeros(shape, x.dtype)
        elif kind == "inplace":
            kwargs["out"] = "x"
    return name, x, p, kwargs


def _args(name, x, p, kwargs):
    """One call's arguments: x itself (its layout is part of the case), or a copy of it
    when the call writes it in place (out=x), so both sides start alike."""
    inplace = isinstance(kwargs.get("out"), str)
    xc = x.copy(order="K") if inplace else x
    kw = {k: (v.copy() if isinstance(v, np.ndarray) and k == "out" else v)
          for k, v in kwargs.items()}
    if inplace:
        kw["out"] = xc
    if name == "bias_dropout_add":
        return (xc, None, np.ones_like(xc), p), kw
    return (xc, p), kw


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(calls())
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_every_array_function_equals_its_twin(call):
    name, x, p, kwargs = call
    args, kw = _args(name, x, p, kwargs)
    if not x.dtype.isnative:
        before = [_bytes(a) for a in args if isinstance(a, np.ndarray)]
        with pytest.raises(TypeError, match="non-native byte order"):
            getattr(fd, name)(*args, **kw)
        assert [_bytes(a) for a in args if isinstance(a, np.ndarray)] == before
        return
    targs, tkw = _args(name, x, p, kwargs)
    got = getattr(fd, name)(*args, **kw)
    exp = getattr(ref, name)(*targs, **tkw)
    where = f"{name}(p={p!r}, shape={x.shape}, dtype={x.dtype}, {sorted(kw)})"
    _same(got, exp, where)
    for a, b in zip(list(args) + list(kw.values()), list(targs) + list(tkw.values())):
        if isinstance(a, np.ndarray):
            assert _bytes(a) == _bytes(b), f"{where}: an argument differs after the call"
