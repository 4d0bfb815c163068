"""fastdrop's torch operators (torch.ops.fastdrop.*): opcheck, bit-exactness against the
public NumPy API, autograd to second order, vmap rules, torch.func, the profiler."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastdrop  # noqa: E402
import fastdrop.torch as ft  # noqa: E402
from fastdrop._core.interop import to_host_array  # noqa: E402
from torch.func import functional_call, grad, jacrev, jvp, vmap  # noqa: E402

from _helpers import assert_bits_equal, make_x  # noqa: E402

OPS = torch.ops.fastdrop
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def host(t):
    return to_host_array(t, "t")[0]


def tensor(shape, dtype=torch.float32, seed=0, specials=True):
    return torch.from_numpy(make_x(shape, np.float64, seed=seed, specials=specials)).to(dtype)


def S(seed, stream=0):
    return ft.seed_tensor(seed, stream)


# ---- opcheck ---------------------------------------------------------------------------------


def _opcheck_cases():
    x = tensor((4, 6), torch.float64, specials=False).requires_grad_()
    g = tensor((4, 6), torch.float64, seed=1, specials=False)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)
    r = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    s = S(11, 3)
    _, m = OPS.dropout(x.detach(), s, 0.3, 16, "inverted", None, True, 0)
    _, mn = OPS.dropout(x.detach(), s, 0.3, 16, "inverted", [4, 1], True, 0)
    return [
        ("dropout", OPS.dropout, (x, s, 0.3, 16, "inverted", None, False, 0)),
        ("dropout-mask-noise", OPS.dropout, (x, s, 0.3, 16, "classic", [4, 1], True, 0)),
        ("dropout_backward-seed", OPS.dropout_backward,
         (g, s, None, 0.3, 16, "inverted", None, 0)),
        ("dropout_backward-mask", OPS.dropout_backward,
         (g, s, mn, 0.3, 16, "inverted", [4, 1], 0)),
        ("alpha_dropout", OPS.alpha_dropout, (x, s, 0.3, 32, None, True, 0)),
        ("alpha_dropout_backward", OPS.alpha_dropout_backward, (g, s, m, 0.3, 16, None, 0)),
        ("bias_dropout_add", OPS.bias_dropout_add, (x, b, r, s, 0.3, 16, False, 0)),
        ("bias_dropout_add-nobias", OPS.bias_dropout_add, (x, None, r, s, 0.3, 16, True, 0)),
        ("bias_dropout_add_backward", OPS.bias_dropout_add_backward,
         (g, s, None, 0.3, 16, True, 0)),
        ("take_stream", OPS.take_stream, (S(5, 2**63 - 1),)),
    ]


@pytest.mark.parametrize("case", _opcheck_cases(), ids=lambda c: c[0])
def test_opcheck(case):
    _, op, args = case
    result = torch.library.opcheck(op, args)
    assert set(result.values()) == {"SUCCESS"}, result


def test_every_operator_is_registered_with_its_schema():
    assert str(OPS.take_stream.default._schema) == \
        "fastdrop::take_stream(Tensor(a0!) state) -> Tensor"
    state = S(5, 2**64 - 1)
    assert torch.equal(OPS.take_stream(state), S(5, 2**64 - 1))
    assert torch.equal(state, S(5, 0))  # the stream wraps as an unsigned 64-bit counter
    names = {"dropout", "dropout_backward", "alpha_dropout", "alpha_dropout_backward",
             "bias_dropout_add", "bias_dropout_add_backward"}
    for name in names:
        schema = str(getattr(OPS, name).default._schema)
        assert schema.startswith(f"fastdrop::{name}(") and "Tensor seed" in schema


# ---- bit-exactness ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_operators_equal_the_public_functions_bit_for_bit(dtype):
    x = tensor((5, 37), dtype)
    g = tensor((5, 37), dtype, seed=1, specials=False)
    xn, gn = host(x), host(g)
    s = S(2**40 + 9, 2**63 + 5)  # a seed and a stream past 2**32 and 2**63
    kw = dict(seed=2**40 + 9, stream=2**63 + 5)
    y, m = OPS.dropout(x, s, 0.3, 16, "inverted", None, True, 0)
    ye, me = fastdrop.dropout(xn, 0.3, return_mask=True, **kw)
    assert_bits_equal(host(y), ye)
    np.testing.assert_array_equal(m.numpy(), me)
    assert_bits_equal(host(OPS.dropout_backward(g, s, None, 0.3, 16, "inverted", None, 0)),
                      fastdrop.dropout_backward(gn, 0.3, **kw))
    assert_bits_equal(host(OPS.dropout_backward(g, s, m, 0.3, 16, "inverted", None, 0)),
                      fastdrop.dropout_backward(gn, 0.3, mask=me))
    ya, _ = OPS.alpha_dropout(x, s, 0.3, 32, [5, 1], False, 0)
    assert_bits_equal(host(ya), fastdrop.alpha_dropout(xn, 0.3, bits=32, noise_shape=(5, 1),
                                                       **kw))
    assert_bits_equal(host(OPS.alpha_dropout_backward(g, s, None, 0.3, 32, [5, 1], 0)),
                      fastdrop.alpha_dropout_backward(gn, 0.3, bits=32, noise_shape=(5, 1),
                                                      **kw))
    b, r = tensor((37,), dtype, seed=2), tensor((5, 37), dtype, seed=3)
    yb, _ = OPS.bias_dropout_add(x, b, r, s, 0.3, 16, False, 0)
    assert_bits_equal(host(yb), fastdrop.bias_dropout_add(xn, host(b), host(r), 0.3, **kw))
    dx, db = OPS.bias_dropout_add_backward(g, s, None, 0.3, 16, True, 0)
    dxe, dbe, _ = fastdrop.bias_dropout_add_backward(gn, 0.3, **kw)
    assert_bits_equal(host(dx), dxe)
    assert_bits_equal(host(db), dbe)


def test_functional_forms_equal_the_public_functions():
    x = tensor((3, 4, 5, 6))
    xn = host(x)
    assert_bits_equal(host(ft.dropout(x, 0.2, seed=5, stream=2)),
                      fastdrop.dropout(xn, 0.2, seed=5, stream=2))
    assert_bits_equal(host(ft.dropout(x, 0.2, seed=S(5, 2))),
                      fastdrop.dropout(xn, 0.2, seed=5, stream=2))
    assert_bits_equal(host(ft.dropout2d(x, 0.2, seed=5)),
                      fastdrop.dropout(xn, 0.2, seed=5, noise_shape=(3, 4, 1, 1)))
    assert_bits_equal(host(ft.alpha_dropout(x, 0.2, True, seed=5)),
                      fastdrop.alpha_dropout(xn, 0.2, seed=5))
    assert_bits_equal(host(ft.feature_alpha_dropout(x, 0.2, True, seed=5)),
                      fastdrop.alpha_dropout(xn, 0.2, seed=5, noise_shape=(3, 4, 1, 1)))


def test_outputs_are_written_in_place_without_copies():
    x = torch.randn(64, 64)
    seen = {}
    real = fastdrop.functional.dropout

    def spy(xa, *a, **k):
        seen["x"], seen["out"] = xa.ctypes.data, k["out"].ctypes.data
        return real(xa, *a, **k)

    fastdrop.functional.dropout = spy
    try:  # a seed tensor: the operator route (an int seed takes the lean path, below)
        y = ft.dropout(x, 0.5, seed=ft.seed_tensor(1))
    finally:
        fastdrop.functional.dropout = real
    assert seen["x"] == x.data_ptr() and seen["out"] == y.data_ptr()
    # the lean path: the pointer fast path reads x's memory and writes y's (no copy)
    import fastdrop._torch_ops as ops
    fast = ops._ptr_fwd

    def spy_fast(xa, ya, *a):
        seen["x"], seen["y"] = xa, ya
        return fast(xa, ya, *a)

    ops._ptr_fwd = spy_fast
    try:
        y2 = ft.dropout(x, 0.5, seed=1)
    finally:
        ops._ptr_fwd = fast
    assert seen["x"] == x.data_ptr() and seen["y"] == y2.data_ptr() and torch.equal(y, y2)


# ---- autograd --------------------------------------------------------------------------------


@pytest.mark.parametrize("keep", ["seed", "mask"])
def test_gradcheck_and_gradgradcheck_every_form(keep):
    x = torch.randn(4, 3, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    r = torch.randn(4, 3, 5, dtype=torch.float64, requires_grad=True)
    forms = [
        lambda x: ft.dropout(x, 0.35, seed=3, stream=7, keep=keep),
        lambda x: ft.dropout(x, 0.35, seed=3, keep=keep, mode="classic"),
        lambda x: ft.dropout1d(x, 0.5, seed=1, keep=keep),
        lambda x: ft.alpha_dropout(x, 0.3, True, seed=2, keep=keep),
        lambda x: ft.feature_alpha_dropout(x, 0.3, True, seed=2, keep=keep),
    ]
    for f in forms:
        assert torch.autograd.gradcheck(f, (x,))
        assert torch.autograd.gradgradcheck(f, (x,))
    assert torch.autograd.gradcheck(
        lambda x, b, r: ft.bias_dropout_add(x, b, r, 0.4, seed=9, keep=keep), (x, b, r))


def test_bias_dropout_add_gradients_are_the_public_backward():
    x = torch.randn(6, 8, requires_grad=True)
    b = torch.randn(8, requires_grad=True)
    r = torch.randn(6, 8, requires_grad=True)
    g = torch.randn(6, 8)
    ft.bias_dropout_add(x, b, r, 0.3, seed=4, stream=1).backward(g)
    dx, db, _ = fastdrop.bias_dropout_add_backward(g.numpy(), 0.3, seed=4, stream=1)
    np.testing.assert_array_equal(x.grad.numpy(), dx)
    np.testing.assert_array_equal(b.grad.numpy(), db)
    assert torch.equal(r.grad, g)


# ---- vmap and torch.func ---------------------------------------------------------------------


def test_vmap_gives_each_element_its_unbatched_result():
    xs = torch.randn(5, 4, 6, dtype=torch.float64)
    s = S(7, 1)

    def f(v):
        return ft.dropout(v, 0.3, seed=s)

    ys = vmap(f)(xs)
    assert all(torch.equal(ys[i], f(xs[i])) for i in range(5))
    # batched along another axis
    ys1 = vmap(f, in_dims=1, out_dims=1)(xs)
    assert all(torch.equal(ys1[:, i], f(xs[:, i])) for i in range(4))
    # a batch of seed tensors: a stream per element
    seeds = torch.stack([S(7, i) for i in range(5)])
    yb = vmap(lambda v, sd: ft.dropout(v, 0.3, seed=sd))(xs, seeds)
    for i in range(5):
        assert torch.equal(yb[i], ft.dropout(xs[i], 0.3, seed=7, stream=i))
    assert not torch.equal(yb[0], yb[1])
    ya = vmap(lambda v, sd: ft.alpha_dropout(v, 0.3, True, seed=sd, keep="mask"))(xs, seeds)
    assert torch.equal(ya[3], ft.alpha_dropout(xs[3], 0.3, True, seed=7, stream=3))


def test_vmap_of_the_operators_directly():
    xs = torch.randn(3, 2, 8)
    s = S(1)
    y, m = vmap(lambda v: OPS.dropout(v, s, 0.5, 16, "inverted", None, True, 0))(xs)
    y2, m0 = OPS.dropout(xs[2], s, 0.5, 16, "inverted", None, True, 0)
    assert torch.equal(y[2], y2) and all(torch.equal(mi, m0) for mi in m)  # one seed: one mask
    g = vmap(lambda v: OPS.dropout_backward(v, s, m0, 0.5, 16, "inverted", None, 0))(xs)
    assert torch.equal(g[1], OPS.dropout_backward(xs[1], s, m0, 0.5, 16, "inverted", None, 0))


def test_grad_jacrev_jvp():
    x = torch.randn(4, 6, dtype=torch.float64)
    s = S(7, 1)

    def f(v):
        return ft.dropout(v, 0.3, seed=s)

    expected = torch.from_numpy(fastdrop.dropout_backward(np.ones((4, 6)), 0.3, seed=7,
                                                          stream=1))
    assert torch.equal(grad(lambda v: f(v).sum())(x), expected)
    J = jacrev(f)(x).reshape(24, 24)
    assert torch.equal(J, torch.diag(expected.reshape(-1)))
    t = torch.randn(4, 6, dtype=torch.float64)
    y, yt = jvp(f, (x,), (t,))
    assert torch.equal(y, f(x)) and torch.equal(yt, f(t))  # linear: the tangent is D t
    # second order through torch.func
    hvp = grad(lambda v: (grad(lambda w: (f(w) ** 2).sum())(v) * t).sum())(x)
    assert torch.allclose(hvp, 2 * expected ** 2 * t)
    ya, yat = jvp(lambda v: ft.alpha_dropout(v, 0.3, True, seed=s), (x,), (t,))
    assert torch.equal(yat, OPS.alpha_dropout_backward(t, s, None, 0.3, 16, None, 0))
    assert torch.allclose(yat, ft.alpha_dropout(t, 0.3, True, seed=s)
                          - ft.alpha_dropout(torch.zeros_like(t), 0.3, True, seed=s))


def test_bias_dropout_add_under_torch_func():
    x, r = torch.randn(3, 4, 8, dtype=torch.float64), torch.randn(3, 4, 8, dtype=torch.float64)
    b = torch.randn(8, dtype=torch.float64)
    s = S(5, 2)

    def f(x, b, r):
        return ft.bias_dropout_add(x, b, r, 0.4, seed=s)

    tx, tb, tr = torch.randn_like(x), torch.randn_like(b), torch.randn_like(r)
    y, yt = jvp(f, (x, b, r), (tx, tb, tr))
    assert torch.equal(y, f(x, b, r))
    assert torch.allclose(yt, tr + ft.dropout(tx + tb, 0.4, seed=s))
    gx, gb, gr = grad(lambda *a: f(*a).sum(), argnums=(0, 1, 2))(x, b, r)
    assert torch.equal(gx, ft.dropout(torch.ones_like(x), 0.4, seed=s))
    assert torch.allclose(gb, gx.sum((0, 1))) and torch.equal(gr, torch.ones_like(r))
    ys = vmap(lambda v: f(v, b, r[0]))(x)
    assert all(torch.equal(ys[i], f(x[i], b, r[0])) for i in range(3))


def test_functional_call_grad_and_per_sample_gradients():
    model = torch.nn.Sequential(torch.nn.Linear(6, 6), ft.Dropout(0.5, seed=1)).double()
    params = {k: v.detach() for k, v in model.named_parameters()}
    xs = torch.randn(5, 6, dtype=torch.float64)

    def loss(p, v):
        return functional_call(model, p, (v,)).sum()

    g = grad(loss)(params, xs)
    model[1].set_state({"seed": 1, "stream": 0})
    model.zero_grad()
    model(xs).sum().backward()
    assert torch.equal(g["0.weight"], model[0].weight.grad)
    assert model[1].get_state() == {"seed": 1, "stream": 1}  # the call advanced it
    per_sample = vmap(grad(loss), in_dims=(None, 0))(params, xs)
    assert per_sample["0.weight"].shape == (5, 6, 6)
    assert model[1].get_state() == {"seed": 1, "stream": 2}  # one call for the batch
    for i in (0, 4):
        model[1].set_state({"seed": 1, "stream": 1})  # the stream that call took
        model.zero_grad()
        model(xs[i]).sum().backward()
        assert torch.allclose(per_sample["0.weight"][i], model[0].weight.grad)


def test_seeds_from_torch_follow_vmap_randomness():
    xs = torch.ones(4, 64)
    with pytest.raises(RuntimeError, match="randomness"):
        vmap(lambda v: ft.dropout(v, 0.5))(xs)
    same = vmap(lambda v: ft.dropout(v, 0.5), randomness="same")(xs)
    assert all(torch.equal(same[0], same[i]) for i in range(4))
    diff = vmap(lambda v: ft.dropout(v, 0.5), randomness="different")(xs)
    assert not torch.equal(diff[0], diff[1])


def test_profiler_shows_the_fastdrop_operators():
    from torch.profiler import profile

    x = torch.randn(16, 16, requires_grad=True)
    with profile() as prof:
        ft.dropout(x, 0.5, seed=1).sum().backward()
        ft.alpha_dropout(x, 0.5, True, seed=1).sum().backward()
    names = {e.key for e in prof.key_averages()}
    assert {"fastdrop::dropout", "fastdrop::dropout_backward", "fastdrop::alpha_dropout",
            "fastdrop::alpha_dropout_backward"} <= names


def test_meta_tensors_go_through_the_fake_implementations():
    x = torch.empty(3, 4, 5, device="meta")
    assert ft.dropout(x, 0.5, seed=1).device.type == "meta"
    y, m = OPS.dropout(x, S(1), 0.5, 16, "inverted", [3, 1, 1], True, 0)
    assert y.shape == x.shape and m.shape == (1,) and m.dtype == torch.uint8
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Linear(5, 5), ft.Dropout(0.1))
    assert model(torch.empty(2, 5, device="meta")).device.type == "meta"


def test_seed_tensor_errors_change_nothing():
    x = torch.ones(8)
    with pytest.raises(ValueError, match="seed tensor must be int64 of shape"):
        ft.dropout(x, 0.5, seed=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="stream must be None"):
        ft.dropout(x, 0.5, seed=S(1), stream=3)
    with pytest.raises(ValueError, match="seed"):
        ft.seed_tensor(-1)
    with pytest.raises(TypeError, match="stream"):
        ft.seed_tensor(1, 2.5)
    assert torch.equal(x, torch.ones(8))
