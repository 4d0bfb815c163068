"""fastdrop.torch: the lean eager path (bits, autograd, its fallbacks), the zero-copy
in-place operator fastdrop::dropout_, and torch.jit.script / torch.jit.trace."""
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import fastdrop  # noqa: E402
import fastdrop._torch_ops as ops  # noqa: E402
import fastdrop.torch as ft  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _np(t):
    return t.detach().numpy()


# ---- the lean path --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("keep", ["seed", "mask"])
def test_lean_path_bits_and_gradients_equal_fastdrop(dtype, keep):
    x = torch.randn(3, 37, dtype=torch.float64).to(dtype).requires_grad_()
    assert ops.lean_input(x)
    m = ft.Dropout(0.3, seed=11, keep=keep)
    for stream in range(2):
        y = m(x)
        ref = fastdrop.dropout(_np(x), 0.3, seed=11, stream=stream)
        np.testing.assert_array_equal(_np(y), ref)
        g = torch.randn(3, 37, dtype=torch.float64).to(dtype)
        (dx,) = torch.autograd.grad(y, x, g)
        np.testing.assert_array_equal(
            _np(dx), fastdrop.dropout_backward(g.numpy(), 0.3, seed=11, stream=stream))
        assert m.last_call == (11, stream)
    assert m.get_state() == {"seed": 11, "stream": 2}


def test_lean_path_double_backward_and_strided_grads():
    x = torch.randn(64, dtype=torch.float64, requires_grad=True)
    m = ft.Dropout(0.5, seed=3)
    y = m(x)
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)  # an expanded (stride 0) dy
    d = fastdrop.dropout_backward(np.ones(64), 0.5, seed=3)
    np.testing.assert_array_equal(_np(g), d)
    v = torch.randn(64, dtype=torch.float64, requires_grad=True)
    y = m(x)
    (dx,) = torch.autograd.grad(y, x, v, create_graph=True)  # dx = D v, differentiable in v
    assert type(dx.grad_fn).__name__ == "_EagerDropoutBackwardBackward"   # the eager pair
    u = torch.randn(64, dtype=torch.float64)
    (dv,) = torch.autograd.grad(dx, v, u)
    np.testing.assert_array_equal(_np(dv), fastdrop.dropout_backward(u.numpy(), 0.5, seed=3,
                                                                     stream=1))
    assert torch.autograd.gradcheck(lambda t: ft.Dropout(0.5, seed=3)(t), (x,))


def test_lean_path_matches_the_operator_route_and_torch_seeds():
    x = torch.randn(5, 40)
    routes = []
    for layout in ("contiguous", "permuted"):
        xi = x if layout == "contiguous" else x.t().contiguous().t()  # same values
        assert ops.lean_input(xi) == (layout == "contiguous")
        torch.manual_seed(7)
        routes.append(ft.Dropout(0.4)(xi))
    assert torch.equal(routes[0], routes[1])
    torch.manual_seed(7)
    seed = ft.draw_seed()
    np.testing.assert_array_equal(_np(routes[0]), fastdrop.dropout(x.numpy(), 0.4, seed=seed))


def test_lean_path_steps_aside():
    x = torch.randn(8, 8)
    m = ft.Dropout(0.5, seed=1)
    assert not ops.lean_input(x.to(torch.bfloat16)) and not ops.lean_input(x[:, ::2])
    assert not ops.lean_input(torch.empty(0))
    with torch.autograd.profiler.profile() as prof:
        y0 = m(x)  # the operator, so the profiler names it
    assert "fastdrop::dropout" in {e.name for e in prof.function_events}
    with torch.device("cpu"):  # a torch function mode
        assert not ops.lean_input(x)
        y1 = m(x)
    y2 = m(x)  # the lean path again
    for stream, y in enumerate((y0, y1, y2)):
        assert torch.equal(y, fastdrop_tensor(x, 1, stream))


def fastdrop_tensor(x, seed, stream):
    return torch.from_numpy(fastdrop.dropout(x.numpy(), 0.5, seed=seed, stream=stream))


def test_seed_cache_follows_the_buffer_through_copies():
    import copy
    import pickle

    m = ft.Dropout(0.5, seed=9)
    x = torch.ones(32)
    m(x)
    for make in (copy.deepcopy, lambda t: pickle.loads(pickle.dumps(t))):
        clone = make(m)
        assert torch.equal(clone(x), m(x))  # both continue at stream 1, then 2 ...
        assert clone.get_state() == m.get_state()
    m.set_state({"seed": 9, "stream": 0})
    assert m.last_call is not None and torch.equal(m(x), fastdrop_tensor(x, 9, 0))
    m.share_memory()  # moves the buffer's storage: the cached view must follow
    assert torch.equal(m(x), fastdrop_tensor(x, 9, 1)) and m.get_state()["stream"] == 2


def test_seed_words_of_every_width_and_the_stream_wrap():
    # the lean path reads the seed buffer's words in C (fastdrop/_cpu/_torch_lean.pyx): a
    # seed with both 32-bit words set, streams past 2**63 and the unsigned 64-bit wrap
    seed = (1 << 64) - 3
    m = ft.Dropout(0.5, seed=seed)
    x = torch.ones(64, requires_grad=True)
    for start, streams in (((1 << 63) - 1, ((1 << 63) - 1, 1 << 63)),
                           ((1 << 64) - 1, ((1 << 64) - 1, 0))):
        m.set_state({"seed": seed, "stream": start})
        for st in streams:
            y = m(x)
            assert m.last_call == (seed, st)
            assert torch.equal(y, fastdrop_tensor(x.detach(), seed, st))
            y.backward(torch.ones(64))
            assert torch.equal(x.grad, fastdrop_tensor(torch.ones(64), seed, st))
            x.grad = None
        assert m.get_state()["stream"] == (streams[1] + 1) % (1 << 64)


# ---- in place -------------------------------------------------------------------------------


def test_inplace_writes_the_input_memory_with_no_copy():
    x = torch.randn(6, 50)
    expected = ft.Dropout(0.5, seed=4)(x)
    for make in (lambda t: t.clone(),  # lean path
                 lambda t: t.t().contiguous().t()):  # strided: the operator fastdrop::dropout_
        xi = make(x)
        ptr, version = xi.data_ptr(), xi._version
        y = ft.Dropout(0.5, inplace=True, seed=4)(xi)
        assert y is xi and y.data_ptr() == ptr and xi._version > version
        assert torch.equal(xi, expected)
    xi = x.clone()
    assert ft.dropout(xi, 0.5, inplace=True, seed=4) is xi and torch.equal(xi, expected)
    x4 = torch.randn(2, 3, 4, 4).to(memory_format=torch.channels_last)
    x4i = x4.clone()
    assert ft.Dropout2d(0.5, True, seed=2)(x4i) is x4i
    assert x4i.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x4i, ft.Dropout2d(0.5, seed=2)(x4))


def test_inplace_under_autograd_keeps_autograd_rules():
    w = torch.randn(4, 9, requires_grad=True)
    for make in (lambda t: t * 2, lambda t: (t * 2).t().contiguous().t()):
        h = make(w)
        ptr = h.data_ptr()
        z = ft.Dropout(0.5, inplace=True, seed=6, keep="mask")(h)
        assert z is h and z.data_ptr() == ptr
        (g,) = torch.autograd.grad(z.sum(), w)
        d = fastdrop.dropout_backward(np.ones((4, 9), np.float32), 0.5, seed=6)
        np.testing.assert_array_equal(_np(g), 2 * d)
    # not C-contiguous and not a view: the eager in-place Function (mark_dirty), no copy
    # (`ops.plain_eager` had compared bound methods with `is`, which never held, so this
    # went through the out-of-place operator and copy_)
    h = w.t() * 2
    ptr = h.data_ptr()
    z = ft.Dropout(0.5, inplace=True, seed=6)(h)
    assert z is h and z.data_ptr() == ptr
    assert type(z.grad_fn).__name__ == "DropoutInplaceFunctionBackward"
    (g,) = torch.autograd.grad(z.sum(), w)
    d = fastdrop.dropout_backward(np.ones((9, 4), np.float32), 0.5, seed=6)
    np.testing.assert_array_equal(_np(g), 2 * d.T)
    view = (w * 1)[1:]  # a view under autograd: copy_, autograd's own view bookkeeping
    z = ft.Dropout(0.5, inplace=True, seed=6)(view)
    (g,) = torch.autograd.grad(z.sum(), w)
    assert not bool(g[0].any())
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        ft.Dropout(0.5, inplace=True)(w)
    r = torch.relu(w)
    ft.Dropout(0.5, inplace=True, seed=1)(r)  # relu saved r: the bumped version tells
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        r.sum().backward()


def test_inplace_operator_is_declared_mutating_and_compiles():
    schema = torch.ops.fastdrop.dropout_.default._schema
    assert schema.is_mutable and schema.arguments[0].alias_info.is_write
    torch._dynamo.reset()

    def f(t, seed):
        t = t + 1
        return ft.dropout(t, 0.5, inplace=True, seed=seed) * 3

    from torch._inductor.utils import run_and_get_code

    x = torch.randn(8, 16)
    s = ft.seed_tensor(5, 2)
    with torch.no_grad():
        got, code = run_and_get_code(torch.compile(f, fullgraph=True), x, s)
    np.testing.assert_array_equal(
        got.numpy(), 3 * fastdrop.dropout(x.numpy() + 1, 0.5, seed=5, stream=2))
    # functionalized, then re-inplaced by inductor: the operator runs on the buffer itself
    assert "torch.ops.fastdrop.dropout_.default(buf" in code[0] and "clone" not in code[0]
    # under autograd (compiled): the out-of-place operator, differentiable
    torch._dynamo.reset()
    w = torch.randn(8, 16, requires_grad=True)
    step = torch.compile(lambda t: ft.dropout(t * 2, 0.5, inplace=True, seed=s),
                         fullgraph=True)
    out = step(w)
    (g,) = torch.autograd.grad(out.sum(), w)
    np.testing.assert_array_equal(
        _np(g), 2 * fastdrop.dropout_backward(np.ones((8, 16), np.float32), 0.5, seed=5,
                                              stream=2))
    torch._dynamo.reset()


# ---- TorchScript ----------------------------------------------------------------------------


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation warning
        return fn(*a, **k)


@pytest.mark.parametrize("make,shape", [
    (lambda: ft.Dropout(0.4, seed=3), (4, 10)),
    (lambda: ft.Dropout(0.4, seed=3, keep="mask", noise_shape=(None, 1)), (4, 10)),
    (lambda: ft.Dropout(0.4, seed=3, mode="classic"), (4, 10)),
    (lambda: ft.Dropout1d(0.4, seed=3), (4, 10)),
    (lambda: ft.Dropout2d(0.4, seed=3), (2, 4, 3, 3)),
    (lambda: ft.Dropout3d(0.4, seed=3), (4, 2, 3, 3)),
    (lambda: ft.AlphaDropout(0.4, seed=3), (4, 10)),
    (lambda: ft.FeatureAlphaDropout(0.4, seed=3), (2, 4, 5)),
], ids=["dropout", "noise_mask", "classic", "1d_unbatched", "2d", "3d_unbatched", "alpha",
        "feature_alpha"])
def test_script_matches_eager(make, shape):
    layer, twin = make(), make()
    scripted = _quiet(torch.jit.script, layer)
    x = torch.randn(*shape, requires_grad=True)
    for _ in range(2):
        ys, ye = scripted(x), twin(x)
        assert torch.equal(ys, ye)
        gs, = torch.autograd.grad(ys.sum(), x)
        ge, = torch.autograd.grad(ye.sum(), x)
        assert torch.equal(gs, ge)
    assert layer.get_state() == twin.get_state()  # the buffer is shared
    scripted.eval()
    twin.eval()
    assert torch.equal(scripted(x), twin(x))


def test_script_in_a_model_and_torch_seeds():
    model = nn.Sequential(nn.Linear(6, 6), ft.Dropout(0.5), nn.ReLU())
    scripted = _quiet(torch.jit.script, model)
    x = torch.randn(3, 6)
    torch.manual_seed(2)
    a = scripted(x)
    torch.manual_seed(2)
    assert torch.equal(a, model(x))


def test_trace_advances_the_stream_and_matches_eager():
    x = torch.randn(3, 8)
    layer, twin = ft.Dropout(0.5, seed=5), ft.Dropout(0.5, seed=5)
    traced = _quiet(torch.jit.trace, layer, x, check_trace=False)  # draws stream 0
    twin(x)
    for _ in range(3):
        assert torch.equal(traced(x), twin(x))
    m = ft.Dropout(0.5)
    traced = _quiet(torch.jit.trace, m, x, check_trace=False)
    torch.manual_seed(1)
    a = traced(x)
    torch.manual_seed(1)
    assert torch.equal(a, m(x))


def test_jit_refuses_python_seed_state():
    layer = ft.Dropout(0.5, seed=fastdrop.Generator(1))
    with pytest.raises(RuntimeError, match="fastdrop.Generator"):
        _quiet(torch.jit.script, layer)
    with pytest.raises(RuntimeError, match="fastdrop.Generator"):
        _quiet(torch.jit.trace, layer, torch.ones(4), check_trace=False)
    with pytest.raises(RuntimeError, match="torch.Generator"):
        _quiet(torch.jit.script, ft.Dropout(0.5, generator=torch.Generator()))

    class Twice(ft.Dropout):
        def forward(self, input):
            return 2 * super().forward(input)

    with pytest.raises(RuntimeError, match="overrides fastdrop.torch.Dropout.forward"):
        _quiet(torch.jit.script, Twice(0.5))


def test_functional_lean_path_equals_the_operator_route():
    x = torch.randn(4, 33, requires_grad=True)
    g = torch.Generator().manual_seed(3)
    for kw in (dict(seed=7), dict(seed=7, stream=2**64 - 1), dict(stream=5, generator=g)):
        if "generator" in kw:
            kw["generator"].manual_seed(3)
        y = ft.dropout(x, 0.25, **kw)
        if "generator" in kw:
            kw["generator"].manual_seed(3)
            ss = ft.seed_tensor(ft.draw_seed(kw["generator"]), 5)
        else:
            ss = ft.seed_tensor(kw["seed"], kw.get("stream", 0))
        assert torch.equal(y, ft.dropout(x.t().contiguous().t(), 0.25, seed=ss))  # strided
        (dx,) = torch.autograd.grad(y.sum(), x)
        assert torch.equal(dx, torch.autograd.grad(ft.dropout(x, 0.25, seed=ss).sum(), x)[0])
    with pytest.raises(ValueError, match="stream"):
        ft.dropout(x, 0.25, seed=1, stream=-1)


@pytest.mark.parametrize("make,shape,other", [
    (lambda: ft.Dropout2d(0.5, seed=3), (2, 3, 4, 4), (5, 3, 2, 6)),
    (lambda: ft.Dropout(0.5, seed=3, noise_shape=(None, None, 1, 1)), (2, 3, 4, 4),
     (5, 3, 2, 6)),
    (lambda: ft.FeatureAlphaDropout(0.5, seed=3), (2, 3, 4), (4, 3, 7)),
    (lambda: ft.Dropout1d(0.5, seed=3), (3, 5), (2, 6)),   # unbatched
], ids=["dropout2d", "noise_shape", "feature_alpha", "1d_unbatched"])
def test_trace_with_a_noise_shape_takes_other_shapes(make, shape, other):
    # the traced graph records -1 (that axis's size) for the noise shape's full axes, not
    # the traced sizes: another batch or channel count gives eager's bits
    layer, twin = make(), make()
    traced = _quiet(torch.jit.trace, layer, torch.randn(*shape), check_trace=False)
    twin(torch.randn(*shape))   # the stream the trace drew
    for s in (shape, other, shape):
        x = torch.randn(*s, requires_grad=True)
        yt, ye = traced(x), twin(x)
        assert torch.equal(yt, ye)
        gt, = torch.autograd.grad(yt.sum(), x)
        ge, = torch.autograd.grad(ye.sum(), x)
        assert torch.equal(gt, ge)


def test_trace_of_the_functional_channel_dropout():
    f = lambda x: ft.dropout2d(x, 0.5, seed=9)   # noqa: E731
    traced = _quiet(torch.jit.trace, f, torch.randn(2, 3, 4, 4), check_trace=False)
    for s in ((2, 3, 4, 4), (6, 2, 3, 3)):
        x = torch.randn(*s)
        assert torch.equal(traced(x), f(x))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32,
                                   torch.float64])
def test_script_classic_eval_in_place_rounds_as_eager(dtype):
    # eval of classic mode is x * P(keep), the half types computed in float32 and rounded
    # once, in place or not, scripted or eager
    x = torch.randn(1000, dtype=torch.float64).to(dtype)
    want = ft.Dropout(0.3, mode="classic").eval()(x.clone())
    for inplace in (False, True):
        layer = ft.Dropout(0.3, mode="classic", inplace=inplace).eval()
        scripted = _quiet(torch.jit.script, layer)
        xe, xs = x.clone(), x.clone()
        ye, ys = layer(xe), scripted(xs)
        assert torch.equal(ye, want) and torch.equal(ys, want)
        if inplace:   # the input's memory, written
            assert ys.data_ptr() == xs.data_ptr() and torch.equal(xs, want)
            assert torch.equal(xe, want)
