"""Property tests: every route of fastdrop.torch (the lean pointer kernels, the recycled
outputs, the C backward, the operators for other layouts), for dropout, the channel and
alpha forms and bias-dropout-add, gives fastdrop's NumPy result bit for bit, forward and
gradient, over dtypes, sizes across the adapter's thresholds, layouts, p, bits, keep,
thread counts, seeds and streams."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import fastdrop  # noqa: E402
import fastdrop.torch as ft  # noqa: E402
from fastdrop import _torch_ops as ops  # noqa: E402
from fastdrop._core.interop import to_host_array  # noqa: E402

from _helpers import assert_bits_equal, make_x  # noqa: E402

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
U64 = st.integers(0, 2**64 - 1)
P = st.one_of(st.sampled_from([0.0, 1e-7, 0.1, 0.5, 1.0]),
              st.floats(0.0, 1.0, allow_nan=False))
# 1-D sizes on both sides of the lean path's thresholds: NumPy-allocated outputs, the
# output pool (256 KiB: 2^16 float32), keep="auto" keeping the mask (2^14 elements)
SIZES = st.one_of(st.integers(0, 300), st.sampled_from(
    [ops._NUMPY_ALLOC - 1, ops._NUMPY_ALLOC + 1, (1 << 14) - 1, 1 << 14,
     (ops._RECYCLE_BYTES // 4) + 3]))


def host(t):
    return to_host_array(t.detach(), "t")[0]


def _layout(x, kind):
    """x (2-D or more) in another memory layout, the same values."""
    if kind == "transposed":
        return x.transpose(0, 1).contiguous().transpose(0, 1)
    if kind == "strided":
        big = torch.zeros(tuple(2 * s for s in x.shape), dtype=x.dtype)
        view = big[tuple(slice(None, None, 2) for _ in x.shape)]
        view.copy_(x)
        return view
    if kind == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    return x


@st.composite
def cases(draw):
    dtype = draw(st.sampled_from(DTYPES))
    kind = draw(st.sampled_from(["flat", "C", "transposed", "strided", "channels_last"]))
    if kind == "flat":
        shape = (draw(SIZES),)
    elif kind == "channels_last":
        shape = tuple(draw(st.lists(st.integers(1, 6), min_size=4, max_size=4)))
    else:
        shape = tuple(draw(st.lists(st.integers(0, 9), min_size=2, max_size=3)))
    return dict(dtype=dtype, kind=kind, shape=shape, p=draw(P),
                bits=draw(st.sampled_from([8, 16, 32])),
                keep=draw(st.sampled_from(["seed", "mask", "auto"])),
                seed=draw(U64), stream=draw(U64), data=draw(st.integers(0, 2**31)),
                n_threads=draw(st.sampled_from([None, 1, 2])))


def _inputs(c):
    x64 = make_x(c["shape"], np.float64, seed=c["data"])
    g64 = make_x(c["shape"], np.float64, seed=c["data"] + 1, specials=False)
    x = _layout(torch.from_numpy(x64).to(c["dtype"]), c["kind"])
    g = _layout(torch.from_numpy(g64).to(c["dtype"]), c["kind"])
    return x, g


def _expected(x, g, c, stream):
    kw = dict(seed=c["seed"], stream=stream, bits=c["bits"])
    return (fastdrop.dropout(host(x), c["p"], **kw),
            fastdrop.dropout_backward(host(g), c["p"], **kw))


@given(cases())
def test_functional_equals_fastdrop(c):
    x, g = _inputs(c)
    x.requires_grad_()
    y = ft.dropout(x, c["p"], seed=c["seed"], stream=c["stream"], bits=c["bits"],
                   keep=c["keep"], n_threads=c["n_threads"])
    (dx,) = torch.autograd.grad(y, x, g) if y.requires_grad else (None,)
    ey, edx = _expected(x, g, c, c["stream"])
    assert_bits_equal(host(y), ey)
    assert y.dtype == x.dtype and y.shape == x.shape
    if c["kind"] == "channels_last" and c["p"] != 0.0:
        assert y.is_contiguous(memory_format=torch.channels_last)
    if dx is not None:
        assert_bits_equal(host(dx), edx)
    else:
        assert c["p"] == 0.0 or x.numel() == 0  # the identity: no graph node of its own


@given(cases(), st.booleans())
def test_module_equals_fastdrop_and_advances_its_stream(c, grad):
    x, g = _inputs(c)
    m = ft.Dropout(c["p"], seed=c["seed"], bits=c["bits"], keep=c["keep"],
                   n_threads=c["n_threads"])
    for stream in (0, 1):
        xi = x.detach().clone(memory_format=torch.preserve_format).requires_grad_(grad)
        y = m(xi)
        ey, edx = _expected(x, g, c, stream)
        assert_bits_equal(host(y), ey)
        if grad and y.requires_grad:
            y.backward(g)
            assert_bits_equal(host(xi.grad), edx)
        if c["p"] != 0.0 and x.numel():
            assert m.last_call == (c["seed"], stream)


@given(cases(), st.sampled_from(["dropout2d", "alpha_dropout", "feature_alpha_dropout"]))
def test_channel_and_alpha_forms_equal_fastdrop(c, name):
    x, g = _inputs(c)
    kw = dict(seed=c["seed"], stream=c["stream"], bits=c["bits"])
    if name != "alpha_dropout":  # channel-wise: whole (N, C) channels, 4-D inputs here
        if x.dim() != 4:  # (2, n/2, 1, 1) or (1, n, 1, 1): two or one batch rows
            rows = 2 if x.numel() % 2 == 0 and x.numel() else 1
            x, g = (t.reshape(rows, -1, 1, 1) for t in (x, g))
        kw_ref = dict(kw, noise_shape=tuple(x.shape[:2]) + (1, 1))
    else:
        kw_ref = kw
    x.requires_grad_()
    y = getattr(ft, name)(x, c["p"], True, keep=c["keep"], n_threads=c["n_threads"], **kw)
    alpha = name != "dropout2d"
    ref_f = fastdrop.alpha_dropout if alpha else fastdrop.dropout
    ref_b = fastdrop.alpha_dropout_backward if alpha else fastdrop.dropout_backward
    assert_bits_equal(host(y), ref_f(host(x), c["p"], **kw_ref))
    if y.requires_grad:
        (dx,) = torch.autograd.grad(y, x, g)
        assert_bits_equal(host(dx), ref_b(host(g), c["p"], **kw_ref))


@given(cases(), st.booleans())
def test_bias_dropout_add_equals_fastdrop(c, with_bias):
    x, g = _inputs(c)
    if x.dim() == 0:
        x, g = x.reshape(1), g.reshape(1)
    r = _layout(torch.from_numpy(make_x(tuple(x.shape), np.float64, seed=c["data"] + 2))
                .to(c["dtype"]), "C")
    b = (torch.from_numpy(make_x((x.shape[-1],), np.float64, seed=c["data"] + 3))
         .to(c["dtype"]) if with_bias else None)
    leaves = [t.requires_grad_() for t in (x, r) + ((b,) if with_bias else ())]
    kw = dict(seed=c["seed"], stream=c["stream"], bits=c["bits"])
    y = ft.bias_dropout_add(x, b, r, c["p"], keep=c["keep"], n_threads=c["n_threads"], **kw)
    bh = host(b) if with_bias else None
    assert_bits_equal(host(y), fastdrop.bias_dropout_add(host(x), bh, host(r), c["p"], **kw))
    grads = torch.autograd.grad(y, leaves, g)
    edx, edb, edr = fastdrop.bias_dropout_add_backward(host(g), c["p"], has_bias=with_bias,
                                                        **kw)
    assert_bits_equal(host(grads[0]), edx)
    assert_bits_equal(host(grads[1]), edr)
    if with_bias:
        assert_bits_equal(host(grads[2]), edb)


@given(cases(), st.booleans())
def test_forward_mode_tangent_is_the_backward_map(c, module):
    # inside a dual level: the tangent of y = D x is D t, fastdrop's backward of t
    import torch.autograd.forward_ad as fwAD
    x, t = _inputs(c)
    f = (ft.Dropout(c["p"], seed=c["seed"], bits=c["bits"], keep=c["keep"],
                    n_threads=c["n_threads"]) if module else
         (lambda a: ft.dropout(a, c["p"], seed=c["seed"], stream=c["stream"],
                               bits=c["bits"], keep=c["keep"], n_threads=c["n_threads"])))
    with fwAD.dual_level():
        y, yt = fwAD.unpack_dual(f(fwAD.make_dual(x, t)))
    ey, et = _expected(x, t, c, 0 if module else c["stream"])
    assert_bits_equal(host(y), ey)
    if c["p"] == 0.0 or x.numel() == 0:   # the identity: the tangent is t itself
        assert yt is None or torch.equal(yt, t)
    else:
        assert_bits_equal(host(yt), et)
