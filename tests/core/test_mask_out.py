"""The public ``mask_out=`` of dropout, alpha_dropout and bias_dropout_add (issue 18).

With return_mask=True the mask is written into the caller's buffer and that buffer is
returned as the mask, the very object, holding the mask the call would have allocated,
bit for bit (and the twin's).  Every bad buffer is refused before anything runs: the
error names mask_out and neither mask_out nor out is written.  The GPU path is run under
Numba's CUDA simulator (in this process when it is on, else in a child process that
turns it on); there the mask is not allocated: the buffer given is the one written.
"""
import importlib.util
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastdrop as fd
import fastdrop.reference as ref
from fastdrop._core.route import fast_path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _helpers import BFLOAT16, GpuAllocationCount, assert_bits_equal, make_x  # noqa: E402

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
HAS_NUMBA = importlib.util.find_spec("numba") is not None

DTYPES = [np.float16, np.float32, np.float64] + ([BFLOAT16] if BFLOAT16 is not None else [])
FORWARD = ("dropout", "alpha_dropout")


def _garbage(shape, dtype):
    """A buffer that holds no mask: every byte 0xA5 (bool: alternating flags)."""
    if np.dtype(dtype) == np.bool_:
        return (np.arange(int(np.prod(shape))) % 2 == 0).reshape(shape)
    return np.full(shape, 0xA5, np.uint8)


def _mask_shape(fmt, noise):
    return (-(-int(np.prod(noise)) // 8),) if fmt == "packed" else tuple(noise)


def _call(module, name, x, *, fmt="packed", **kw):
    """One training call of `name` returning its mask (bias_dropout_add: packed only)."""
    f = getattr(module, name)
    if name == "bias_dropout_add":
        bias = (np.linspace(-1, 1, x.shape[-1]).astype(x.dtype) if x.ndim else None)
        residual = np.linspace(2, -2, x.size).reshape(x.shape).astype(x.dtype)
        return f(x, bias, residual, 0.3, seed=11, return_mask=True, **kw)
    return f(x, 0.3, seed=11, return_mask=True, mask_format=fmt, **kw)


def _noise_of(x, noise_shape, block):
    return ref.noise_draws(x.shape, noise_shape, block)[0]


# ---- bit equality with the allocated mask, and identity ------------------------------------

CASES = [  # (shape, noise_shape, block)
    ((), None, None), ((0,), None, None), ((3, 0, 2), None, None), ((1,), None, None),
    ((7,), None, None), ((13,), None, None), ((64,), None, None), ((5, 3), None, None),
    ((4, 6, 5), None, None), ((4, 6, 5), (4, 1, 5), None), ((4, 6, 5), (1, 6, 1), None),
    ((9, 7), (9, 1), None), ((3, 8), None, ((1, 0), (5, 8))),
    ((3, 5), (6, 1), ((2, 0), (6, 5))),  # noise_shape of the global array
]


def _ids(c):
    return f"{c[0]}-noise{c[1]}-block{c[2] is not None}"


# bias_dropout_add returns a packed mask over x's shape (no noise_shape)
EQUAL = [(name, fmt, c) for name in FORWARD for fmt in ("packed", "bool") for c in CASES] + \
    [("bias_dropout_add", "packed", c) for c in CASES if c[1] is None]


@pytest.mark.parametrize("name,fmt,case", EQUAL,
                         ids=[f"{n}-{f}-{_ids(c)}" for n, f, c in EQUAL])
def test_mask_out_equals_the_allocated_mask(name, fmt, case):
    shape, noise_shape, block = case
    x = make_x(shape, np.float32, seed=3)
    kw = dict(block=block) if name == "bias_dropout_add" else \
        dict(noise_shape=noise_shape, block=block)
    noise = _noise_of(x, noise_shape, block)
    dt = np.uint8 if fmt == "packed" else np.bool_
    y_exp, m_exp = _call(fd, name, x, fmt=fmt, **kw)
    mo = _garbage(_mask_shape(fmt, noise), dt)
    y, m = _call(fd, name, x, fmt=fmt, mask_out=mo, **kw)
    assert m is mo
    assert_bits_equal(m, m_exp)
    assert_bits_equal(y, y_exp)
    # the twin, with a buffer of its own
    mo_ref = _garbage(mo.shape, dt)
    y_ref, m_ref = _call(ref, name, x, fmt=fmt, mask_out=mo_ref, **kw)
    assert m_ref is mo_ref
    assert_bits_equal(m_ref, m_exp)
    assert_bits_equal(y_ref, y_exp)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", FORWARD + ("bias_dropout_add",))
def test_mask_out_with_out_and_in_place(name, dtype):
    x = make_x((6, 11), dtype, seed=5)
    y_exp, m_exp = _call(fd, name, x)
    out = np.full_like(x, 7)
    mo = _garbage(m_exp.shape, np.uint8)
    y, m = _call(fd, name, x, out=out, mask_out=mo)
    assert y is out and m is mo
    assert_bits_equal(y, y_exp)
    assert_bits_equal(m, m_exp)
    xi = x.copy()  # out is x itself
    mo2 = _garbage(m_exp.shape, np.uint8)
    y, m = _call(fd, name, xi, out=xi, mask_out=mo2)
    assert y is xi and m is mo2
    assert_bits_equal(xi, y_exp)
    assert_bits_equal(m, m_exp)


@pytest.mark.parametrize("name", FORWARD)
@pytest.mark.parametrize("fmt", ["packed", "bool"])
def test_inference_leaves_mask_out_alone(name, fmt):
    x = make_x((5, 9), np.float32, seed=1)
    dt = np.uint8 if fmt == "packed" else np.bool_
    mo = _garbage(_mask_shape(fmt, x.shape), dt)
    before = mo.copy()
    for module in (fd, ref):
        y, m = getattr(module, name)(x, 0.5, training=False, return_mask=True,
                                     mask_format=fmt, mask_out=mo)
        assert y is x and m is None
        assert_bits_equal(mo, before)


def test_classic_inference_leaves_mask_out_alone():
    x = make_x((5, 9), np.float32, seed=1)
    mo = _garbage(_mask_shape("packed", x.shape), np.uint8)
    before = mo.copy()
    y, m = fd.dropout(x, 0.5, training=False, mode="classic", return_mask=True, mask_out=mo)
    assert m is None
    assert_bits_equal(y, ref.dropout(x, 0.5, training=False, mode="classic"))
    assert_bits_equal(mo, before)


def test_repeated_calls_reuse_the_buffer():
    x = make_x((8, 33), np.float32, seed=2)
    out = np.empty_like(x)
    mo = np.empty((x.size + 7) // 8, np.uint8)
    for stream in range(4):
        y, m = fd.dropout(x, 0.5, seed=9, stream=stream, out=out, return_mask=True,
                          mask_out=mo)
        assert y is out and m is mo
        assert_bits_equal(m, fd.dropout(x, 0.5, seed=9, stream=stream, return_mask=True)[1])


# ---- the fast paths write into a good mask_out and decline any other ----------------------


def _fast_calls(x, r, b, return_mask=True):
    return {  # the public parameters in order but mask_out
        "dropout": (x, 0.5, 1, 0, True, "inverted", None, 16, return_mask, "packed", None,
                    None, None),
        "alpha_dropout": (x, 0.5, 1, 0, True, None, 16, return_mask, "packed", None, None,
                          None),
        "bias_dropout_add": (x, b, r, 0.5, 1, 0, 16, return_mask, None, None, None),
    }


def test_the_fast_paths_write_into_mask_out():
    x = make_x((4, 16), np.float32, seed=0)
    r, b = np.ones_like(x), np.ones(16, np.float32)
    for name, args in _fast_calls(x, r, b).items():
        fast = fast_path(name)
        taken = fast(*args)                 # without mask_out (the torch adapter's call)
        assert taken is not None, name
        mo = np.full(8, 0xA5, np.uint8)
        same = fast(*args, mo)
        assert same is not None and same[1] is mo, name
        assert_bits_equal(same[0], taken[0])
        assert_bits_equal(mo, taken[1])


def test_the_fast_paths_decline_a_bad_mask_out():
    # declined (None, nothing written): the general path then raises its own message
    x = make_x((4, 16), np.float32, seed=0)
    r, b = np.ones_like(x), np.ones(16, np.float32)
    big = np.zeros(64, np.uint8)
    ro = np.zeros(8, np.uint8)
    ro.flags.writeable = False
    bad = {"int8": lambda: np.zeros(8, np.int8), "short": lambda: np.zeros(7, np.uint8),
           "2-d": lambda: np.zeros((2, 4), np.uint8), "strided": lambda: big[::2][:8],
           "read-only": lambda: ro, "list": lambda: [0] * 8,
           "in x": lambda: x.view(np.uint8).reshape(-1)[:8],
           "in residual": lambda: r.view(np.uint8).reshape(-1)[8:16],
           "in bias": lambda: b.view(np.uint8)[:8]}
    for name, args in _fast_calls(x, r, b).items():
        fast = fast_path(name)
        for what, make in bad.items():
            if what in ("in residual", "in bias") and name != "bias_dropout_add":
                continue
            mo = make()
            before = np.array(mo, copy=True)
            assert fast(*args, mo) is None, (name, what)
            np.testing.assert_array_equal(np.asarray(mo), before)
        # a mask_out without return_mask
        no_mask = _fast_calls(x, r, b, return_mask=False)[name]
        assert fast(*no_mask, np.zeros(8, np.uint8)) is None, name
    out = np.empty_like(x)
    args = list(_fast_calls(x, r, b)["dropout"])
    args[10] = out
    assert fast_path("dropout")(*args, out.view(np.uint8).reshape(-1)[:8]) is None


# ---- bad buffers ---------------------------------------------------------------------------


def _bad_cases():
    """(id, function name, format, mask_out maker (x, out, extras) -> buffer, error)."""
    n = 6 * 11
    k = (n + 7) // 8
    ro = np.zeros(k, np.uint8)
    ro.flags.writeable = False
    ro_b = np.zeros((6, 11), np.bool_)
    ro_b.flags.writeable = False
    for name in FORWARD + ("bias_dropout_add",):
        yield f"{name}-int8", name, "packed", lambda x, o, e: np.zeros(k, np.int8), TypeError
        yield f"{name}-bool-for-packed", name, "packed", \
            lambda x, o, e: np.zeros(k, np.bool_), TypeError
        yield f"{name}-float32", name, "packed", \
            lambda x, o, e: np.zeros(k, np.float32), TypeError
        yield f"{name}-short", name, "packed", lambda x, o, e: np.zeros(k - 1, np.uint8), \
            ValueError
        yield f"{name}-long", name, "packed", lambda x, o, e: np.zeros(k + 1, np.uint8), \
            ValueError
        yield f"{name}-2d", name, "packed", lambda x, o, e: np.zeros((1, k), np.uint8), \
            ValueError
        yield f"{name}-0d", name, "packed", lambda x, o, e: np.zeros((), np.uint8), ValueError
        yield f"{name}-strided", name, "packed", \
            lambda x, o, e: np.zeros(2 * k, np.uint8)[::2], ValueError
        yield f"{name}-reversed", name, "packed", \
            lambda x, o, e: np.zeros(k, np.uint8)[::-1], ValueError
        yield f"{name}-read-only", name, "packed", lambda x, o, e: ro, ValueError
        yield f"{name}-list", name, "packed", lambda x, o, e: [0] * k, TypeError
        yield f"{name}-bytearray", name, "packed", lambda x, o, e: bytearray(k), TypeError
        yield f"{name}-overlaps-x", name, "packed", \
            lambda x, o, e: x.reshape(-1).view(np.uint8)[:k], ValueError
        yield f"{name}-overlaps-x-tail", name, "packed", \
            lambda x, o, e: x.reshape(-1).view(np.uint8)[-k:], ValueError
        yield f"{name}-overlaps-out", name, "packed", \
            lambda x, o, e: o.reshape(-1).view(np.uint8)[3:3 + k], ValueError
        yield f"{name}-without-return_mask", name, "nomask", \
            lambda x, o, e: np.zeros(k, np.uint8), ValueError
    yield "bda-overlaps-residual", "bias_dropout_add", "packed", \
        lambda x, o, e: e["residual"].reshape(-1).view(np.uint8)[:k], ValueError
    yield "bda-overlaps-bias", "bias_dropout_add", "packed", \
        lambda x, o, e: e["bias"].view(np.uint8)[:k], ValueError
    for name in FORWARD:
        yield f"{name}-bool-uint8", name, "bool", lambda x, o, e: np.zeros((6, 11), np.uint8), \
            TypeError
        yield f"{name}-bool-packed-shape", name, "bool", \
            lambda x, o, e: np.zeros(k, np.bool_), ValueError
        yield f"{name}-bool-flat", name, "bool", lambda x, o, e: np.zeros(n, np.bool_), \
            ValueError
        yield f"{name}-bool-fortran", name, "bool", \
            lambda x, o, e: np.zeros((6, 11), np.bool_, order="F"), ValueError
        yield f"{name}-bool-transposed", name, "bool", \
            lambda x, o, e: np.zeros((11, 6), np.bool_).T, ValueError
        yield f"{name}-bool-read-only", name, "bool", lambda x, o, e: ro_b, ValueError
        yield f"{name}-bool-overlaps-x", name, "bool", \
            lambda x, o, e: x.reshape(-1).view(np.bool_)[:n].reshape(6, 11), ValueError
        yield f"{name}-bool-overlaps-out", name, "bool", \
            lambda x, o, e: o.reshape(-1).view(np.bool_)[n:2 * n].reshape(6, 11), ValueError
        yield f"{name}-bool-noise-shape", name, "bool-noise", \
            lambda x, o, e: np.zeros((6, 11), np.bool_), ValueError


BAD = list(_bad_cases())


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_a_bad_mask_out_is_refused_and_nothing_is_written(case):
    _, name, fmt, make, error = case
    x = make_x((6, 11), np.float32, seed=4)
    out = np.full_like(x, 7.0)
    extras = dict(residual=np.linspace(1, 2, x.size).reshape(x.shape).astype(np.float32),
                  bias=np.linspace(-1, 1, 11).astype(np.float32))
    mo = make(x, out, extras)
    snapshots = [np.array(a, copy=True) for a in (x, out, extras["residual"],
                                                  extras["bias"])]
    mo_before = np.array(mo, copy=True) if isinstance(mo, np.ndarray) else list(mo)
    kw = dict(seed=1, out=out, mask_out=mo, return_mask=fmt != "nomask")
    if name != "bias_dropout_add":
        kw["mask_format"] = "bool" if fmt.startswith("bool") else "packed"
        if fmt == "bool-noise":
            kw["noise_shape"] = (6, 1)
    f = getattr(fd, name)
    with pytest.raises(error, match="mask_out"):
        if name == "bias_dropout_add":
            f(x, extras["bias"], extras["residual"], 0.5, **kw)
        else:
            f(x, 0.5, **kw)
    for before, after in zip(snapshots, (x, out, extras["residual"], extras["bias"])):
        assert_bits_equal(after, before)
    if isinstance(mo, np.ndarray):
        np.testing.assert_array_equal(mo.view(np.uint8), mo_before.view(np.uint8))
    else:
        assert list(mo) == mo_before


@pytest.mark.parametrize("case", [c for c in BAD if "overlaps" not in c[0]],
                         ids=[c[0] for c in BAD if "overlaps" not in c[0]])
def test_the_twin_refuses_them_too(case):
    """The twin checks type, dtype, shape, layout and return_mask (not overlap)."""
    _, name, fmt, make, error = case
    x = make_x((6, 11), np.float32, seed=4)
    extras = dict(residual=np.ones_like(x), bias=np.ones(11, np.float32))
    kw = dict(seed=1, mask_out=make(x, None, extras), return_mask=fmt != "nomask")
    if name != "bias_dropout_add":
        kw["mask_format"] = "bool" if fmt.startswith("bool") else "packed"
        if fmt == "bool-noise":
            kw["noise_shape"] = (6, 1)
    f = getattr(ref, name)
    with pytest.raises(error, match="mask_out"):
        if name == "bias_dropout_add":
            f(x, extras["bias"], extras["residual"], 0.5, **kw)
        else:
            f(x, 0.5, **kw)


def test_a_bad_mask_out_is_refused_after_the_earlier_arguments():
    """mask_out is checked with out, after x, p and the others: a bad p is named first."""
    x = make_x((4, 4), np.float32)
    with pytest.raises(ValueError, match=r"p must be"):
        fd.dropout(x, 1.5, seed=1, return_mask=True, mask_out=[0])


def test_torch_cpu_tensors_as_mask_out():
    torch = pytest.importorskip("torch")
    x = torch.linspace(-2, 2, 45).reshape(5, 9)
    exp = fd.dropout(x.numpy(), 0.25, seed=4, return_mask=True)
    mo = torch.full((6,), 0xA5, dtype=torch.uint8)
    y, m = fd.dropout(x, 0.25, seed=4, return_mask=True, mask_out=mo)
    assert m is mo and isinstance(y, torch.Tensor)
    assert_bits_equal(m.numpy(), exp[1])
    assert_bits_equal(y.numpy(), exp[0])
    mb = torch.zeros((5, 9), dtype=torch.bool)
    _, m = fd.alpha_dropout(x, 0.25, seed=4, return_mask=True, mask_format="bool",
                            mask_out=mb)
    assert m is mb
    assert_bits_equal(mb.numpy(), fd.alpha_dropout(x.numpy(), 0.25, seed=4,
                                                   return_mask=True, mask_format="bool")[1])
    with pytest.raises(ValueError, match="mask_out"):
        fd.dropout(x, 0.25, seed=4, return_mask=True, mask_out=mo[:5])


# ---- a property ----------------------------------------------------------------------------


@st.composite
def _calls(draw):
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(0, 9), min_size=ndim, max_size=ndim)))
    name = draw(st.sampled_from(FORWARD + ("bias_dropout_add",)))
    fmt = "packed" if name == "bias_dropout_add" else draw(st.sampled_from(["packed",
                                                                           "bool"]))
    noise = None
    if name != "bias_dropout_add" and draw(st.booleans()):
        noise = tuple(d if draw(st.booleans()) else 1 for d in shape)
    dtype = draw(st.sampled_from(DTYPES))
    kw = dict(bits=draw(st.sampled_from([8, 16, 32])),
              stream=draw(st.integers(0, 2**64 - 1)))
    if noise is not None:
        kw["noise_shape"] = noise
    return name, fmt, shape, dtype, kw, draw(st.floats(0.0, 1.0))


@settings(max_examples=60, deadline=None)
@given(call=_calls(), seed=st.integers(0, 2**64 - 1))
def test_mask_out_property(call, seed):
    name, fmt, shape, dtype, kw, p = call
    x = make_x(shape, dtype, seed=seed % 1000)
    noise = _noise_of(x, kw.get("noise_shape"), None)
    dt = np.uint8 if fmt == "packed" else np.bool_
    if name == "bias_dropout_add":
        r = np.ones_like(x)
        b = np.ones(shape[-1], dtype) if shape else None
        args = (x, b, r, p)
    else:
        args = (x, p)
        kw["mask_format"] = fmt
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a tiny p: the same either way
        y_exp, m_exp = getattr(fd, name)(*args, seed=seed, return_mask=True, **kw)
        mo = _garbage(_mask_shape(fmt, noise), dt)
        y, m = getattr(fd, name)(*args, seed=seed, return_mask=True, mask_out=mo, **kw)
        mo_ref = _garbage(mo.shape, dt)
        y_ref, m_ref = getattr(ref, name)(*args, seed=seed, return_mask=True,
                                          mask_out=mo_ref, **kw)
    assert m is mo and m_ref is mo_ref
    assert_bits_equal(m, m_exp)
    assert_bits_equal(m_ref, m_exp)
    assert_bits_equal(y, y_exp)
    assert_bits_equal(y_ref, y_exp)


# ---- the GPU path (Numba's simulator) ------------------------------------------------------


def _gpu():
    """(cuda, the GPU backend's on_backend runners) when a GPU or the simulator is usable
    in this process, else skip."""
    if not HAS_NUMBA:
        pytest.skip("numba-cuda is not installed")
    from numba import cuda
    if not SIMULATOR:
        try:
            ok = cuda.is_available()
        except Exception:
            ok = False
        if not ok:
            pytest.skip("no CUDA GPU in this process (the simulator run is a child process)")
    return cuda


GPU_CASES = [("dropout", "packed", (64,), None), ("dropout", "bool", (64,), None),
             ("dropout", "packed", (5, 13), (5, 1)), ("dropout", "bool", (5, 13), (1, 13)),
             ("alpha_dropout", "packed", (3, 7), None), ("alpha_dropout", "bool", (9,), None),
             ("bias_dropout_add", "packed", (4, 10), None), ("dropout", "packed", (), None),
             ("dropout", "packed", (0,), None)]


@pytest.mark.parametrize("name,fmt,shape,noise", GPU_CASES)
def test_gpu_mask_out_is_written_and_nothing_is_allocated(monkeypatch, name, fmt, shape,
                                                         noise):
    cuda = _gpu()
    from fastdrop._cuda._memory import as_operand
    x = make_x(shape, np.float32, seed=6)
    kw = {} if name == "bias_dropout_add" else dict(noise_shape=noise)
    y_exp, m_exp = _call(fd, name, x, fmt=fmt, **kw)
    xd, yd = cuda.to_device(x), cuda.to_device(np.zeros_like(x))
    if name == "bias_dropout_add":
        bias = np.linspace(-1, 1, x.shape[-1]).astype(x.dtype)
        res = np.linspace(2, -2, x.size).reshape(x.shape).astype(x.dtype)
        bd, rd = cuda.to_device(bias), cuda.to_device(res)

        def run(mo):
            return fd.bias_dropout_add(xd, bd, rd, 0.3, seed=11, return_mask=True, out=yd,
                                       mask_out=mo)
    else:
        def run(mo):
            return getattr(fd, name)(xd, 0.3, seed=11, return_mask=True, mask_format=fmt,
                                     out=yd, mask_out=mo, **kw)
    md = cuda.to_device(_garbage(m_exp.shape, m_exp.dtype))
    ptr = as_operand(md, "mask_out").ptr
    run(md)                                     # first call: kernels, shape constants
    md2 = cuda.to_device(_garbage(m_exp.shape, m_exp.dtype))
    count = GpuAllocationCount(monkeypatch)
    y, m = run(md2)
    monkeypatch.undo()
    assert count.calls == [], count.calls
    assert m is md2 and y is yd
    assert as_operand(md, "mask_out").ptr == ptr
    assert_bits_equal(md2.copy_to_host(), m_exp)
    assert_bits_equal(md.copy_to_host(), m_exp)
    assert_bits_equal(yd.copy_to_host(), y_exp)


def test_gpu_bad_mask_out_is_refused_and_nothing_is_written():
    cuda = _gpu()
    x = make_x((6, 11), np.float32, seed=7)
    xd = cuda.to_device(x)
    yd = cuda.to_device(np.full_like(x, 7.0))
    k = (x.size + 7) // 8
    bad = [("numpy", np.zeros(k, np.uint8), TypeError),
           ("list", [0] * k, TypeError),
           ("dtype", cuda.to_device(np.zeros(k, np.int8)), TypeError),
           ("shape", cuda.to_device(np.zeros(k + 1, np.uint8)), ValueError),
           ("strided", cuda.to_device(np.zeros(2 * k, np.uint8))[::2], ValueError),
           ("overlaps x", xd.view(np.uint8)[:k], ValueError),
           ("overlaps out", yd.view(np.uint8)[5:5 + k], ValueError)]
    for what, mo, error in bad:
        with pytest.raises(error, match="mask_out"):
            fd.dropout(xd, 0.5, seed=1, return_mask=True, out=yd, mask_out=mo)
        assert_bits_equal(xd.copy_to_host(), x)
        assert (yd.copy_to_host() == 7.0).all(), what
    md = cuda.to_device(np.full(k, 0xA5, np.uint8))
    with pytest.raises(ValueError, match="mask_out"):
        fd.dropout(xd, 0.5, seed=1, out=yd, mask_out=md)      # without return_mask
    with pytest.raises(ValueError, match="mask_out"):
        fd.dropout(xd, 0.5, seed=1, return_mask=True, mask_format="bool", out=yd,
                   mask_out=cuda.to_device(np.zeros((11, 6), np.bool_)))
    assert (md.copy_to_host() == 0xA5).all()
    assert (yd.copy_to_host() == 7.0).all()


@pytest.mark.skipif(SIMULATOR or not HAS_NUMBA,
                    reason="under the simulator already (or numba-cuda is missing)")
def test_the_gpu_path_under_the_simulator():
    """The GPU tests above, in a child process with NUMBA_ENABLE_CUDASIM=1."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", os.path.abspath(__file__), "-q", "-x", "-k",
         "gpu_ and not under_the_simulator",
         "-p", "no:cacheprovider"],
        env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.splitlines()[-1], \
        proc.stdout[-2000:]
