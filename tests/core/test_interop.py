"""Zero-copy interop (fastdrop._core.interop, through the router fastdrop._core.route):
torch and JAX CPU arrays through the public API.

Zero-copy is checked on data pointers (tensor.data_ptr(), jax unsafe_buffer_pointer(),
ndarray.ctypes.data), both directions.
"""
import numpy as np
import pytest

import fastdrop
from fastdrop import functional as F
from fastdrop._core.interop import DeviceArrayError, aligned_empty, array_kind, to_host_array
from fastdrop._core.route import register_device_dispatch

from _helpers import BFLOAT16, assert_bits_equal, make_x


def api(name):
    return getattr(fastdrop, name)


def _spy_on_cpu_backend(monkeypatch):
    """Record the data pointers of the x the CPU backend reads and of the y it returns."""
    from fastdrop._cpu import backend

    seen, run = {}, backend.run

    def spy(request):
        y = run(request)
        seen["x"], seen["y"] = request.x.ctypes.data, y.ctypes.data
        return y

    monkeypatch.setattr(backend, "run", spy)
    return seen


def ptr(a):
    return a.__array_interface__["data"][0]


# ---- plain NumPy and other objects ---------------------------------------------------------


def test_numpy_and_plain_objects_pass_through():
    x = np.ones(5, np.float32)
    arr, wrap = to_host_array(x, "x")
    assert arr is x and wrap(x) is x
    lst = [1.0, 2.0]
    arr, wrap = to_host_array(lst, "x")
    assert arr is lst
    assert array_kind(3.0) is None and array_kind(x) == "numpy"
    y = api("dropout")(x, 0.5, seed=1)
    assert type(y) is np.ndarray
    assert_bits_equal(y, F.dropout(x, 0.5, seed=1))


class _FakeCuda:
    __cuda_array_interface__ = {"shape": (3,), "typestr": "<f4", "data": (0, False),
                                "version": 3}

    def __dlpack_device__(self):
        return (2, 1)


class _FakeDLPack:
    def __init__(self, dev):
        self.dev = dev

    def __dlpack__(self, **kwargs):
        raise AssertionError("must not be read")

    def __dlpack_device__(self):
        return self.dev


def test_device_arrays_raise_device_array_error():
    with pytest.raises(DeviceArrayError) as ei:
        to_host_array(_FakeCuda(), "x")
    assert ei.value.name == "x" and ei.value.device == "cuda:1"
    assert isinstance(ei.value, NotImplementedError)
    with pytest.raises(DeviceArrayError, match="dlpack-device-10:0"):
        to_host_array(_FakeDLPack((10, 0)), "grad")


def test_device_arrays_through_the_api_name_the_function():
    with pytest.raises(NotImplementedError, match=r"fastdrop.dropout: x is a dlpack array "
                                                  r"on device dlpack-device-10:0"):
        api("dropout")(_FakeDLPack((10, 0)), 0.5, seed=1)


def test_device_dispatch_gets_the_original_arguments():
    calls = []
    dev = _FakeCuda()
    register_device_dispatch("dropout", lambda **k: calls.append(k) or "gpu")
    try:
        assert fastdrop.dropout(dev, 0.25, seed=3) == "gpu"
        assert fastdrop.dropout(_FakeDLPack((10, 0)), 0.25, seed=3) == "gpu"
    finally:
        register_device_dispatch("dropout", None)
    assert calls[0]["x"] is dev and calls[0]["p"] == 0.25 and calls[0]["seed"] == 3
    assert calls[1]["x"].dev == (10, 0)
    x = np.ones(4, np.float32)  # host arrays never reach the registered implementation
    assert_bits_equal(fastdrop.dropout(x, 0.25, seed=3), F.dropout(x, 0.25, seed=3))


def test_cpu_dlpack_producer_is_read_through_dlpack():
    class Producer:
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kw):
            return self.a.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    a = make_x((4, 6), np.float32)
    arr, _ = to_host_array(Producer(a), "x")
    assert ptr(arr) == ptr(a)


# ---- torch ----------------------------------------------------------------------------------

torch_dtypes = ["float16", "bfloat16", "float32", "float64"]


@pytest.mark.parametrize("dtype", torch_dtypes)
def test_torch_to_numpy_is_zero_copy(dtype):
    torch = pytest.importorskip("torch")
    t = torch.randn(6, 10, dtype=getattr(torch, dtype), requires_grad=True)
    arr, wrap = to_host_array(t, "x")
    assert arr.ctypes.data == t.data_ptr()
    assert arr.dtype.name == dtype and arr.shape == (6, 10)
    np.testing.assert_array_equal(arr.astype(np.float64), t.detach().double().numpy())
    back = wrap(arr)
    assert isinstance(back, torch.Tensor) and back.dtype == t.dtype
    assert back.data_ptr() == arr.ctypes.data


def test_torch_views_keep_their_strides():
    torch = pytest.importorskip("torch")
    base = torch.randn(8, 12)
    t = base[1:, ::3].t()
    arr, _ = to_host_array(t, "x")
    assert arr.ctypes.data == t.data_ptr()
    assert arr.strides == tuple(s * 4 for s in t.stride())
    np.testing.assert_array_equal(arr, t.numpy())


def test_numpy_to_torch_is_zero_copy_bfloat16_included():
    torch = pytest.importorskip("torch")
    for a in (np.ones((3, 5), np.float32), np.ones(7, BFLOAT16) if BFLOAT16 else None,
              np.zeros(4, np.uint8), np.zeros(4, np.bool_)):
        if a is None:
            continue
        _, wrap = to_host_array(torch.zeros(1), "x")
        t = wrap(a)
        assert t.data_ptr() == a.ctypes.data
    assert wrap(np.zeros(4, np.bool_)).dtype == torch.bool


def test_torch_out_rules():
    torch = pytest.importorskip("torch")
    leaf = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="out is a torch tensor that requires grad"):
        to_host_array(leaf, "out", writable=True)
    with torch.no_grad():
        arr, _ = to_host_array(leaf, "out", writable=True)
    assert arr.ctypes.data == leaf.data_ptr()


@pytest.mark.parametrize("dtype", torch_dtypes)
def test_dropout_on_torch_matches_numpy(dtype):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(make_x((9, 17), np.float32)).to(getattr(torch, dtype))
    xn, _ = to_host_array(x, "x")
    y, mask = api("dropout")(x, 0.3, seed=5, stream=2, return_mask=True)
    ye, me = F.dropout(xn, 0.3, seed=5, stream=2, return_mask=True)
    assert isinstance(y, torch.Tensor) and y.dtype == x.dtype
    assert isinstance(mask, torch.Tensor) and mask.dtype == torch.uint8
    assert_bits_equal(to_host_array(y, "y")[0], ye)
    np.testing.assert_array_equal(mask.numpy(), me)
    _, bmask = api("dropout")(x, 0.3, seed=5, stream=2, return_mask=True, mask_format="bool")
    assert bmask.dtype == torch.bool and bmask.shape == x.shape
    unpacked = api("unpack_mask")(mask, tuple(x.shape))
    assert unpacked.dtype == torch.bool and torch.equal(unpacked, bmask)
    dx = api("dropout_backward")(x, 0.3, mask=mask)
    dx2 = api("dropout_backward")(x, 0.3, seed=5, stream=2)
    assert isinstance(dx, torch.Tensor)
    assert_bits_equal(to_host_array(dx, "dx")[0], F.dropout_backward(xn, 0.3, mask=me))
    assert torch.equal(dx.view(torch.int16) if dx.dtype == torch.bfloat16 else dx,
                       dx2.view(torch.int16) if dx2.dtype == torch.bfloat16 else dx2)


def test_torch_result_memory_is_the_kernels_output(monkeypatch):
    torch = pytest.importorskip("torch")
    seen = _spy_on_cpu_backend(monkeypatch)
    wrapped = api("dropout")
    x = torch.randn(100, 100)
    y = wrapped(x, 0.5, seed=1)
    assert seen["x"] == x.data_ptr()  # the kernel read the tensor's memory
    assert y.data_ptr() == seen["y"]  # and the tensor returned is the kernel's output


def test_torch_out_in_place_and_inference_identity():
    torch = pytest.importorskip("torch")
    drop = api("dropout")
    x = torch.randn(20, 30)
    expected = F.dropout(x.numpy().copy(), 0.4, seed=9)
    out = torch.empty_like(x)
    r = drop(x, 0.4, seed=9, out=out)
    assert r is out
    np.testing.assert_array_equal(out.numpy(), expected)
    ptr0 = x.data_ptr()
    r = drop(x, 0.4, seed=9, out=x)  # in place
    assert r is x and x.data_ptr() == ptr0
    np.testing.assert_array_equal(x.numpy(), expected)
    assert drop(x, 0.4, training=False) is x
    # a torch out with a NumPy x
    xn = make_x((5, 6), np.float64)
    out = torch.empty(5, 6, dtype=torch.float64)
    assert drop(xn, 0.4, seed=2, out=out) is out
    np.testing.assert_array_equal(out.numpy(), F.dropout(xn, 0.4, seed=2))


def test_torch_bias_dropout_add_and_alpha():
    torch = pytest.importorskip("torch")
    x, bias, res = (torch.randn(8, 16), torch.randn(16), torch.randn(8, 16))
    y, mask = api("bias_dropout_add")(x, bias, res, 0.2, seed=4, return_mask=True)
    ye, me = F.bias_dropout_add(x.numpy(), bias.numpy(), res.numpy(), 0.2, seed=4,
                                return_mask=True)
    assert isinstance(y, torch.Tensor) and isinstance(mask, torch.Tensor)
    np.testing.assert_array_equal(y.numpy(), ye)
    g = torch.randn(8, 16)
    dx, dbias, dres = api("bias_dropout_add_backward")(g, 0.2, mask=mask)
    assert dres is g and isinstance(dx, torch.Tensor) and isinstance(dbias, torch.Tensor)
    edx, edb, _ = F.bias_dropout_add_backward(g.numpy(), 0.2, mask=me)
    np.testing.assert_array_equal(dx.numpy(), edx)
    np.testing.assert_array_equal(dbias.numpy(), edb)
    a = api("alpha_dropout")(x, 0.3, seed=1)
    np.testing.assert_array_equal(a.numpy(), F.alpha_dropout(x.numpy(), 0.3, seed=1))
    da = api("alpha_dropout_backward")(g, 0.3, seed=1)
    np.testing.assert_array_equal(da.numpy(), F.alpha_dropout_backward(g.numpy(), 0.3, seed=1))


def test_torch_gaussian_dropout():
    torch = pytest.importorskip("torch")
    if not hasattr(F, "gaussian_dropout"):
        pytest.skip("no gaussian_dropout in this version")
    x = torch.randn(8, 16, dtype=torch.float64)
    y = api("gaussian_dropout")(x, 0.3, seed=2, stream=1)
    assert isinstance(y, torch.Tensor)
    np.testing.assert_array_equal(y.numpy(), F.gaussian_dropout(x.numpy(), 0.3, seed=2, stream=1))
    g = api("gaussian_dropout_backward")(x, 0.3, seed=2, stream=1)
    np.testing.assert_array_equal(g.numpy(), F.gaussian_dropout_backward(x.numpy(), 0.3, seed=2,
                                                                         stream=1))


def test_torch_errors_name_the_argument():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="x must have dtype"):
        api("dropout")(torch.ones(3, dtype=torch.int32), 0.5, seed=1)
    with pytest.raises(DeviceArrayError, match="x is a torch array on device meta"):
        api("dropout")(torch.empty(3, device="meta"), 0.5, seed=1)


# ---- jax ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_jax_to_numpy_is_zero_copy_and_read_only(dtype):
    jnp = pytest.importorskip("jax.numpy")
    a = jnp.asarray(make_x((7, 9), np.float32)).astype(dtype)
    arr, wrap = to_host_array(a, "x")
    assert arr.ctypes.data == a.unsafe_buffer_pointer()
    assert not arr.flags.writeable and arr.dtype.name == dtype


def test_numpy_to_jax_aliases_aligned_buffers():
    jax = pytest.importorskip("jax")
    _, wrap = to_host_array(jax.numpy.zeros(2), "x")
    for dtype in (np.float32, np.float16, BFLOAT16, np.uint8):
        if dtype is None:
            continue
        a = aligned_empty((33, 17), dtype)
        assert a.ctypes.data % 64 == 0
        j = wrap(a)
        assert isinstance(j, jax.Array)
        assert j.unsafe_buffer_pointer() == a.ctypes.data


def test_jax_out_is_refused():
    jnp = pytest.importorskip("jax.numpy")
    x = jnp.ones((4, 4))
    with pytest.raises(TypeError, match="out cannot be a JAX array"):
        to_host_array(x, "out", writable=True)
    with pytest.raises(TypeError, match="out cannot be a JAX array: JAX arrays are immutable"):
        api("dropout")(np.ones((4, 4), np.float32), 0.5, seed=1, out=x)
    with pytest.raises(TypeError, match="out cannot be a JAX array"):
        api("dropout")(x, 0.5, seed=1, out=x)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_dropout_on_jax_matches_numpy(dtype):
    jax = pytest.importorskip("jax")
    x = jax.numpy.asarray(make_x((9, 17), np.float32)).astype(dtype)
    y, mask = api("dropout")(x, 0.3, seed=5, stream=2, return_mask=True)
    ye, me = F.dropout(np.asarray(x), 0.3, seed=5, stream=2, return_mask=True)
    assert isinstance(y, jax.Array) and isinstance(mask, jax.Array)
    assert_bits_equal(np.asarray(y), ye)
    np.testing.assert_array_equal(np.asarray(mask), me)
    dx = api("dropout_backward")(x, 0.3, mask=mask)
    assert isinstance(dx, jax.Array)
    assert_bits_equal(np.asarray(dx), F.dropout_backward(np.asarray(x), 0.3, mask=me))
    assert api("dropout")(x, 0.3, training=False) is x


def test_jax_result_is_not_copied(monkeypatch):
    jax = pytest.importorskip("jax")
    seen = _spy_on_cpu_backend(monkeypatch)
    wrapped = api("dropout")
    x = jax.numpy.ones((100, 100), jax.numpy.float32) * 2
    y = wrapped(x, 0.5, seed=1)
    assert seen["x"] == x.unsafe_buffer_pointer()
    assert y.unsafe_buffer_pointer() == seen["y"]
    np.testing.assert_array_equal(np.asarray(y), F.dropout(np.asarray(x), 0.5, seed=1))


def test_traced_jax_values_point_to_the_jax_adapter():
    jax = pytest.importorskip("jax")
    with pytest.raises(TypeError, match="fastdrop.jax.dropout"):
        jax.jit(lambda x: api("dropout")(x, 0.5, seed=1))(jax.numpy.ones(3))
