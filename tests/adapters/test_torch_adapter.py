"""fastdrop.torch: the autograd function, the functional form and the Dropout module."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastdrop  # noqa: E402
import fastdrop.torch as ft  # noqa: E402
from fastdrop._core.interop import to_host_array  # noqa: E402

from _helpers import assert_bits_equal, in_threads, make_x  # noqa: E402

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def host(t):
    return to_host_array(t, "t")[0]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("keep", ["seed", "mask"])
def test_forward_and_backward_match_fastdrop_bit_for_bit(dtype, keep):
    x = torch.from_numpy(make_x((6, 37), np.float64)).to(dtype).requires_grad_()
    g = torch.from_numpy(make_x((6, 37), np.float64, seed=1, specials=False)).to(dtype)
    y = ft.dropout(x, 0.3, seed=11, stream=4, keep=keep)
    y.backward(g)
    xn = host(x.detach())
    assert_bits_equal(host(y.detach()), fastdrop.dropout(xn, 0.3, seed=11, stream=4))
    assert_bits_equal(host(x.grad), fastdrop.dropout_backward(host(g), 0.3, seed=11, stream=4))
    assert y.dtype == dtype and x.grad.dtype == dtype


@pytest.mark.parametrize("keep", ["seed", "mask"])
@pytest.mark.parametrize("mode", ["inverted", "classic"])
def test_gradcheck_float64(keep, mode):
    x = torch.randn(5, 9, dtype=torch.float64, requires_grad=True)

    def f(x):
        return ft.dropout(x, 0.35, seed=3, stream=7, keep=keep, mode=mode)

    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


def test_gradcheck_noise_shape_and_module():
    x = torch.randn(4, 3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x: ft.dropout(x, 0.5, seed=1, noise_shape=(None, None, 1)), (x,))
    layer = ft.Dropout(0.25, seed=8)
    # gradcheck calls the function many times: replay the same stream each time
    state = layer.get_state()

    def f(x):
        layer.set_state(state)
        return layer(x)

    assert torch.autograd.gradcheck(f, (x,))


def test_noise_shape_drops_whole_channels():
    x = torch.ones(2, 8, 4, 4)
    y = ft.dropout(x, 0.5, seed=2, noise_shape=(None, None, 1, 1))
    per_channel = y.reshape(2, 8, 16)
    assert torch.all(per_channel == per_channel[..., :1])
    assert 0 < int((per_channel[..., 0] == 0).sum()) < 16


def test_keep_mask_stores_the_packed_mask():
    x = torch.randn(10, 10, requires_grad=True)
    # a seed tensor: the operator route (the lean path keeps the same words and mask as
    # Python objects, tested in test_torch_inplace_jit.py)
    y = ft.dropout(x, 0.5, seed=ft.seed_tensor(1), keep="mask")
    seed, mask = y.grad_fn.saved_tensors  # what fastdrop::dropout's autograd keeps
    assert torch.equal(seed, ft.seed_tensor(1, 0))
    assert mask.dtype == torch.uint8 and mask.numel() == (100 + 7) // 8
    _, me = fastdrop.dropout(x.detach().numpy(), 0.5, seed=1, return_mask=True)
    np.testing.assert_array_equal(mask.numpy(), me)
    # keep="seed": the seed tensor alone, no mask kept
    assert ft.dropout(x, 0.5, seed=ft.seed_tensor(1)).grad_fn.saved_tensors[1] is None
    lean = ft.dropout(x, 0.5, seed=1, keep="mask").grad_fn.fd  # (seed, stream, ..., mask)
    assert lean[:2] == (1, 0) and np.array_equal(lean[4], me)
    assert ft.dropout(x, 0.5, seed=1).grad_fn.fd[4] is None


@pytest.mark.parametrize("shape", [(10, 10), (128, 128), (3, 5461)])
def test_keep_auto_keeps_the_mask_from_2_14_elements(shape):
    # the default keep="auto": the packed mask from 2**14 elements up, else the seed; the
    # same output and gradient bits as keep="seed" and keep="mask" either way
    n = shape[0] * shape[1]
    x = torch.randn(*shape, requires_grad=True)
    g = torch.randn(*shape)
    outs = {}
    for keep in ("auto", "seed", "mask"):
        y = ft.dropout(x, 0.3, seed=4, stream=2, keep=keep)
        y.backward(g)
        outs[keep] = (y.detach(), x.grad)
        x.grad = None
        if keep == "auto":
            kept = y.grad_fn.fd[4]
            assert (kept is not None) == (n >= 1 << 14)
        z = ft.dropout(x, 0.3, seed=ft.seed_tensor(4, 2), keep=keep)  # the operators
        assert torch.equal(z.detach(), outs[keep][0])
        if keep == "auto":
            assert (z.grad_fn.saved_tensors[1] is not None) == (n >= 1 << 14)
    for keep in ("seed", "mask"):
        assert torch.equal(outs[keep][0], outs["auto"][0])
        assert torch.equal(outs[keep][1], outs["auto"][1])
    m = ft.Dropout(0.3, seed=4)
    assert m.keep == "auto" and "keep='auto'" in repr(m)
    y = m(x)
    assert (y.grad_fn.fd[4] is not None) == (n >= 1 << 14)
    assert torch.equal(y.detach(), ft.dropout(x, 0.3, seed=4, stream=0).detach())


def test_output_is_not_a_copy():
    x = torch.randn(64, 64)
    seen = {}
    real = fastdrop.functional.dropout

    def spy(xa, *a, **k):
        y = real(xa, *a, **k)
        seen["x"], seen["y"] = xa.ctypes.data, y.ctypes.data
        return y

    fastdrop.functional.dropout = spy
    try:  # a seed tensor: the operator route (an int seed takes the lean path)
        y = ft.dropout(x, 0.5, seed=ft.seed_tensor(1))
    finally:
        fastdrop.functional.dropout = real
    assert seen["x"] == x.data_ptr() and seen["y"] == y.data_ptr()


def test_module_train_eval_and_inplace():
    m = ft.Dropout(0.5, seed=0)
    x = torch.randn(16, 16)
    y = m(x)
    assert not torch.equal(y, x) and bool((y == 0).any())
    m.eval()
    assert m(x) is x  # as nn.Dropout: the input itself
    m.train()
    mi = ft.Dropout(0.5, inplace=True, seed=0)
    x2 = x.clone()
    assert mi(x2) is x2
    assert torch.equal(x2, y)  # same seed, same first stream
    leaf = torch.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):  # torch's own message
        mi(leaf)
    # in place after a non-leaf: autograd goes through it
    w = torch.randn(8, 8, requires_grad=True)
    h = w * 2
    z = ft.Dropout(0.5, inplace=True, seed=5)(h)
    z.sum().backward()
    expected = 2 * fastdrop.dropout_backward(np.ones((8, 8), np.float32), 0.5, seed=5)
    np.testing.assert_array_equal(w.grad.numpy(), expected)


def test_inplace_over_a_saved_tensor_is_detected_by_autograd():
    w = torch.randn(6, requires_grad=True)
    h = torch.relu(w)  # relu saves its output for backward
    ft.dropout(h, 0.5, seed=1, inplace=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        h.sum().backward()
    a = torch.randn(6)
    version = a._version
    with torch.no_grad():
        ft.dropout(a, 0.5, seed=1, inplace=True)
    assert a._version > version


def test_classic_mode_inference_matches_fastdrop():
    for dtype in DTYPES:
        x = torch.from_numpy(make_x((5, 7), np.float64)).to(dtype)
        m = ft.Dropout(0.3, mode="classic").eval()
        assert_bits_equal(host(m(x)), fastdrop.dropout(host(x), 0.3, training=False,
                                                       mode="classic"))


def test_streams_advance_with_an_explicit_seed():
    m = ft.Dropout(0.5, seed=42)
    x = torch.ones(4, 64)
    y0, y1 = m(x), m(x)
    assert m.last_call == (42, 1)
    np.testing.assert_array_equal(y0.numpy(), fastdrop.dropout(x.numpy(), 0.5, seed=42, stream=0))
    np.testing.assert_array_equal(y1.numpy(), fastdrop.dropout(x.numpy(), 0.5, seed=42, stream=1))
    gen = fastdrop.Generator(7)
    a, b = ft.Dropout(0.5, seed=gen), ft.Dropout(0.5, seed=gen)
    a(x), b(x)
    assert a.last_call == (7, 0) and b.last_call == (7, 1)


def test_torch_manual_seed_makes_runs_reproducible():
    def run(seed):
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(32, 32), ft.Dropout(0.5),
                                    torch.nn.Linear(32, 4))
        x = torch.randn(8, 32)
        return torch.cat([model(x), model(x)])

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # the seed comes from torch's generator: a generator argument is honoured too
    m = ft.Dropout(0.5, generator=torch.Generator().manual_seed(3))
    m2 = ft.Dropout(0.5, generator=torch.Generator().manual_seed(3))
    x = torch.ones(100)
    assert torch.equal(m(x), m2(x))
    torch.manual_seed(0)
    s1 = ft.draw_seed()
    torch.manual_seed(0)
    assert ft.draw_seed() == s1 and 0 <= s1 < 2**64


def _randint_seeds(seed, k, generator=None):
    """The seeds of k seed=None calls as documented: torch.randint(0, 2**32, (2,)) each."""
    if generator is None:
        torch.manual_seed(seed)
    else:
        generator.manual_seed(seed)
    out = []
    for _ in range(k):
        lo, hi = torch.randint(0, 2**32, (2,), dtype=torch.int64, generator=generator).tolist()
        out.append(lo | (hi << 32))
    return out


@pytest.fixture(params=["torch", "shim", "symbols", "cpp"])
def draw_path(request):
    """seed=None's draw through torch (random_ on a scratch tensor), through torch's stable
    C ABI (randint.low_out through the AOTInductor shim; the default generator only),
    through libtorch_cpu's exported generator functions (fd_torch_gen.h; the default
    generator only) or through the C++ extension (fastdrop._torch_draw; built here once: a
    C++ compiler and ninja are test requirements), put back as it was afterwards."""
    from fastdrop import _torch_draw

    was, routes = _torch_draw.active(), _torch_draw.default_routes()
    _torch_draw.use(request.param == "cpp")
    want = (request.param == "symbols", request.param == "shim")
    assert _torch_draw.set_default_routes(*want) == want
    yield request.param
    _torch_draw.use(was)
    assert _torch_draw.set_default_routes(*routes) == routes


def test_seed_none_draws_are_randints_from_any_thread(draw_path):
    torch.manual_seed(5)
    m = ft.Dropout(0.5)
    x = torch.ones(64)
    words = []
    for _ in range(3):
        m(x)
        words.append(m.last_call)
    assert words == [(s, 0) for s in _randint_seeds(5, 3)]
    gen = torch.Generator()
    m = ft.Dropout(0.5, generator=gen.manual_seed(9))
    m(x)
    assert m.last_call == (_randint_seeds(9, 1, gen)[0], 0)
    # threads drawing at once (random_ runs without the GIL, so some calls find the
    # scratch tensor busy and draw into their own): each draw is two consecutive words,
    # and together they are the sequential draws, in some order
    torch.manual_seed(11)

    def work():
        layer, got = ft.Dropout(0.5), []
        for _ in range(200):
            layer(x)
            got.append(layer.last_call[0])
        return got

    seen = in_threads(work)
    assert sorted(seen) == sorted(_randint_seeds(11, 800))


def test_seed_none_draw_waits_for_a_torch_op_holding_the_generator(draw_path):
    # another thread's random_ on 2^22 elements holds the generator's lock without the GIL:
    # the draw waits for it (no deadlock, no torn state) and is one of the two orders' seeds
    import threading
    import time

    n = 1 << 22

    def big():
        return torch.empty(n, dtype=torch.int64).random_(4294967296)

    torch.manual_seed(21)
    seed_first = _randint_seeds(21, 1)[0]
    big_second = big()
    torch.manual_seed(21)
    big_first = big()
    lo, hi = torch.randint(0, 2**32, (2,), dtype=torch.int64).tolist()
    seed_second = lo | (hi << 32)
    torch.manual_seed(21)
    m, x, out = ft.Dropout(0.5), torch.ones(16), {}
    t = threading.Thread(target=lambda: out.update(big=big()))
    t.start()
    time.sleep(0.002)  # most often the big draw holds the lock by now
    m(x)
    t.join(60)
    assert not t.is_alive()
    # either order, each whole: the generator's lock was held by one draw at a time
    seed = m.last_call[0]
    assert ((seed == seed_first and torch.equal(out["big"], big_second))
            or (seed == seed_second and torch.equal(out["big"], big_first)))


def test_seed_none_draws_on_the_cpu_whatever_the_default_device():
    # torch.set_default_device before fastdrop.torch is imported: the seeds still come
    # from the CPU generator (a meta or CUDA default device must not reach the draws)
    import subprocess
    import sys

    code = """
import torch
torch.set_default_device("meta")
import fastdrop.torch as ft
torch.manual_seed(3)
m = ft.Dropout(0.5)
x = torch.ones(300, device="cpu")
y = m(x)
seeds = [m.last_call[0], ft.draw_seed()]
torch.manual_seed(3)
want = []
for _ in range(2):
    lo, hi = torch.randint(0, 2**32, (2,), dtype=torch.int64, device="cpu").tolist()
    want.append(lo | (hi << 32))
assert y.device.type == "cpu" and seeds == want, (seeds, want)
with torch.device("cpu"):
    s = ft.dropout(torch.ones(8), 0.5)  # the functional form's draw, seed=None
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


@pytest.fixture
def one_thread():
    """A tiny model runs fastest on one thread (and the CI box is shared)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def test_small_mlp_trains(one_thread):
    torch.manual_seed(0)
    n, d = 256, 10
    x = torch.randn(n, d)
    labels = (x[:, 0] + x[:, 1] * x[:, 2] > 0).long()
    model = torch.nn.Sequential(torch.nn.Linear(d, 32), torch.nn.ReLU(), ft.Dropout(0.2),
                                torch.nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    lossf = torch.nn.CrossEntropyLoss()
    losses = []
    for _ in range(80):
        opt.zero_grad()
        loss = lossf(model(x), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    model.eval()
    acc = (model(x).argmax(1) == labels).float().mean().item()
    assert acc > 0.85


def test_thread_count_never_changes_the_result():
    x = torch.randn(300, 301)
    a = ft.dropout(x, 0.3, seed=1, n_threads=1)
    b = ft.dropout(x, 0.3, seed=1, n_threads=2)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        c = ft.Dropout(0.3, seed=1)(x)  # n_threads=None: torch's thread count
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(a, b) and torch.equal(a, c)


def test_errors():
    with pytest.raises(TypeError, match="input must be a torch.Tensor"):
        ft.dropout(np.ones(3), 0.5)
    with pytest.raises(TypeError, match="input must have dtype"):
        ft.dropout(torch.ones(3, dtype=torch.int64), 0.5)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        ft.Dropout(1.5)  # torch's message (a subclass of nn.Dropout)
    with pytest.raises(ValueError, match="keep"):
        ft.Dropout(0.5, keep="bits")
    # a meta tensor goes through the operator's fake implementation, as torch's ops do
    ym = ft.dropout(torch.empty(3, 5, device="meta"), 0.5, seed=1)
    assert ym.device.type == "meta" and ym.shape == (3, 5)
    with pytest.raises(RuntimeError, match="torch's generator"):
        ft.Dropout(0.5).set_state({"seed": 1, "stream": 0})


def test_repr_and_p_attribute():
    m = ft.Dropout(0.1, seed=3, bits=32)
    assert "p=0.1" in repr(m) and "bits=32" in repr(m) and "seed=3" in repr(m)
    m.p = 1.0  # as one may on nn.Dropout
    assert torch.equal(m(torch.ones(5)), torch.zeros(5))


def test_seeded_layers_deep_copy_and_save():
    """A seeded fastdrop.torch.Dropout can be deep-copied (nn.TransformerEncoder clones its
    layer) and saved whole with torch.save; the copy replays the original's next masks."""
    import copy
    import io

    layer = ft.Dropout(0.25, seed=5)
    t = torch.ones(64)
    layer(t)
    clone = copy.deepcopy(layer)
    assert torch.equal(clone(t), layer(t))
    buf = io.BytesIO()
    torch.save(layer, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert torch.equal(loaded(t), layer(t))
    block = torch.nn.Sequential(torch.nn.Linear(8, 8), ft.Dropout(0.1, seed=1))
    stack = torch.nn.ModuleList(copy.deepcopy(block) for _ in range(2))
    assert len(stack) == 2


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64,
                                   torch.bfloat16])
@pytest.mark.parametrize("n", [1, 255, 1 << 14])
def test_module_training_call_equals_the_functional_one(dtype, n):
    # the module's written-out common call (_LeanModuleDropout) against the functional
    # form, for a contiguous gradient, an expanded one (stride 0) and a lazily negated x
    x = torch.randn(n, dtype=torch.float64).to(dtype).requires_grad_()
    for gy in (torch.randn(n, dtype=torch.float64).to(dtype),
               torch.ones((), dtype=dtype).expand(n)):
        m = ft.Dropout(0.3, seed=7)
        y = m(x)
        y.backward(gy)
        ref = ft.dropout(x, 0.3, seed=7, stream=0)
        (gref,) = torch.autograd.grad(ref, x, gy)
        assert torch.equal(y.detach(), ref.detach())
        assert torch.equal(x.grad, gref)
        x.grad = None
    neg = torch._neg_view(x.detach()).requires_grad_()
    y = ft.Dropout(0.3, seed=7)(neg)
    assert torch.equal(y.detach(), ft.dropout(-x.detach(), 0.3, seed=7, stream=0))
    # second order through the module's call: d/dx sum(D(x)^2) = 2 D(D(x)) depends on x
    z = ft.Dropout(0.3, seed=7)(x)
    (g1,) = torch.autograd.grad((z * z).sum(), x, create_graph=True)
    zr = ft.dropout(x, 0.3, seed=7, stream=0)
    (g2,) = torch.autograd.grad((zr * zr).sum(), x, create_graph=True)
    assert g1.requires_grad and torch.equal(g1, g2)
    (h1,) = torch.autograd.grad(g1.sum(), x)
    (h2,) = torch.autograd.grad(g2.sum(), x)
    assert torch.equal(h1, h2)
