"""fastdrop.jax: every op (dropout, its backward, alpha, gaussian, bias-dropout-add and their
backwards) equals the NumPy API bit for bit, eagerly and under jit; and every op is
differentiable in both modes: jvp, grad (by transposition), jacfwd, jacrev, hessian, vmap,
scan, with the tangents and gradients the NumPy kernels give."""
import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

import fastdrop as fd  # noqa: E402
import fastdrop.jax as fj  # noqa: E402

from _helpers import assert_bits_equal, make_x  # noqa: E402

P, SEED, STREAM = 0.3, 2**40 + 5, 3
K = dict(seed=SEED, stream=STREAM)
DROP = dict(mode="classic", noise_shape=(None, 1), bits=32)  # a non-default dropout
ALPHA = dict(noise_shape=(1, None))

# op -> (JAX op, NumPy op, NumPy linear part (the jvp's tangent), NumPy gradient of <op, w>)
UNARY = {
    "dropout": (lambda x: fj.dropout(x, P, **K), lambda x: fd.dropout(x, P, **K),
                lambda t: fd.dropout(t, P, **K), lambda w: fd.dropout_backward(w, P, **K)),
    "dropout_classic": (lambda x: fj.dropout(x, P, **K, **DROP),
                        lambda x: fd.dropout(x, P, **K, **DROP),
                        lambda t: fd.dropout(t, P, **K, **DROP),
                        lambda w: fd.dropout_backward(w, P, **K, **DROP)),
    "dropout_backward": (lambda g: fj.dropout_backward(g, P, **K, **DROP),
                         lambda g: fd.dropout_backward(g, P, **K, **DROP),
                         lambda t: fd.dropout_backward(t, P, **K, **DROP),
                         lambda w: fd.dropout(w, P, **K, **DROP)),
    "alpha": (lambda x: fj.alpha_dropout(x, P, **K, **ALPHA),
              lambda x: fd.alpha_dropout(x, P, **K, **ALPHA),
              lambda t: fd.alpha_dropout_backward(t, P, **K, **ALPHA),
              lambda w: fd.alpha_dropout_backward(w, P, **K, **ALPHA)),
    "alpha_backward": (lambda g: fj.alpha_dropout_backward(g, P, **K),
                       lambda g: fd.alpha_dropout_backward(g, P, **K),
                       lambda t: fd.alpha_dropout_backward(t, P, **K),
                       lambda w: fd.alpha_dropout_backward(w, P, **K)),
    "gaussian": (lambda x: fj.gaussian_dropout(x, P, **K), lambda x: fd.gaussian_dropout(x, P, **K),
                 lambda t: fd.gaussian_dropout(t, P, **K),
                 lambda w: fd.gaussian_dropout_backward(w, P, **K)),
    "gaussian_backward": (lambda g: fj.gaussian_dropout_backward(g, P, **K),
                          lambda g: fd.gaussian_dropout_backward(g, P, **K),
                          lambda t: fd.gaussian_dropout_backward(t, P, **K),
                          lambda w: fd.gaussian_dropout(w, P, **K)),
}
SHAPE = (6, 10)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("op", list(UNARY))
def test_unary_ops_equal_numpy_eager_and_jit(op, dtype):
    f, f_np, _, _ = UNARY[op]
    xn = make_x(SHAPE, np.float32).astype(jnp.dtype(dtype))  # NaN, Inf, -0 included
    expected = f_np(xn)
    assert_bits_equal(np.asarray(f(jnp.asarray(xn))), expected)
    assert_bits_equal(np.asarray(jax.jit(f)(jnp.asarray(xn))), expected)


@pytest.mark.parametrize("op", list(UNARY))
def test_unary_ops_jvp_grad_jacobians_hessian(op):
    f, f_np, lin_np, bwd_np = UNARY[op]
    xn = make_x(SHAPE, np.float32, specials=False)
    tn = make_x(SHAPE, np.float32, seed=1, specials=False)
    w = make_x(SHAPE, np.float32, seed=2, specials=False)
    x, t = jnp.asarray(xn), jnp.asarray(tn)
    for transform in (lambda g: g, jax.jit):
        y, ty = transform(lambda x, t: jax.jvp(f, (x,), (t,)))(x, t)
        assert_bits_equal(np.asarray(y), f_np(xn))
        assert_bits_equal(np.asarray(ty), lin_np(tn))  # the same mask / noise
        g = transform(jax.grad(lambda x: (f(x) * w).sum()))(x)
        assert_bits_equal(np.asarray(g), bwd_np(w))  # by transposition: the backward kernel
    # elementwise: both Jacobians are diag(multiplier), the multiplier = the linear part of 1
    m = lin_np(np.ones(SHAPE, np.float32))
    assert len(np.unique(m)) > 1  # a real mask (or noise), not a constant
    jac = np.diag(m.ravel()).reshape(SHAPE + SHAPE)
    np.testing.assert_array_equal(np.asarray(jax.jacfwd(f)(x)), jac)
    np.testing.assert_array_equal(np.asarray(jax.jacrev(f)(x)), jac)
    # hessian of sum(f(x)^2) = diag(2 m^2) (f is affine)
    h = np.asarray(jax.jit(jax.hessian(lambda x: (f(x) ** 2).sum()))(x))
    np.testing.assert_allclose(h, np.diag(2 * m.ravel() ** 2).reshape(SHAPE + SHAPE),
                               rtol=1e-6)


@pytest.mark.parametrize("op", list(UNARY))
def test_unary_ops_vmap_and_scan(op):
    """vmap over streams and over x; scan with the stream as the carried step: each
    step and each batch element is what the unbatched NumPy call gives."""
    name = {"dropout": "dropout", "dropout_classic": "dropout",
            "dropout_backward": "dropout_backward", "alpha": "alpha_dropout",
            "alpha_backward": "alpha_dropout_backward", "gaussian": "gaussian_dropout",
            "gaussian_backward": "gaussian_dropout_backward"}[op]
    extra = DROP if op in ("dropout_classic", "dropout_backward") else {}
    jf, nf = getattr(fj, name), getattr(fd, name)
    xs = make_x((3,) + SHAPE, np.float32, specials=False)
    streams = jnp.arange(3, dtype=jnp.uint32)

    def f(x, s):
        return jf(x, P, seed=SEED, stream=s, **extra)

    batched = jax.jit(jax.vmap(f))(jnp.asarray(xs), streams)
    one_x = jax.vmap(f, in_axes=(None, 0))(jnp.asarray(xs[0]), streams)
    for i in range(3):
        ref = nf(xs[i], P, seed=SEED, stream=i, **extra)
        assert_bits_equal(np.asarray(batched[i]), ref)
        assert_bits_equal(np.asarray(one_x[i]), nf(xs[0], P, seed=SEED, stream=i, **extra))

    def body(c, s):
        return f(c, s), None

    out = jax.jit(lambda x: jax.lax.scan(body, x, streams)[0])(jnp.asarray(xs[0]))
    gsc = jax.jit(jax.grad(lambda x: (jax.lax.scan(body, x, streams)[0] * xs[1]).sum()))(
        jnp.asarray(xs[0]))
    ref = xs[0]
    for i in range(3):
        ref = nf(ref, P, seed=SEED, stream=i, **extra)
    assert_bits_equal(np.asarray(out), ref)
    if op in ("dropout", "dropout_classic", "dropout_backward", "alpha_backward"):
        # a product of 0/scale masks: the gradient is the backward chain, exactly
        grad = xs[1]
        for i in reversed(range(3)):
            grad = {"dropout": fd.dropout_backward, "dropout_classic": fd.dropout_backward,
                    "dropout_backward": fd.dropout,
                    "alpha_backward": fd.alpha_dropout_backward}[op](
                grad, P, seed=SEED, stream=i, **extra)
        assert_bits_equal(np.asarray(gsc), grad)
    else:
        np.testing.assert_allclose(np.asarray(gsc), np.asarray(jax.grad(
            lambda x: (f(f(f(x, 0), 1), 2) * xs[1]).sum())(jnp.asarray(xs[0]))), rtol=1e-6)


def test_vmap_grad_is_the_per_element_backward():
    xs = jnp.asarray(make_x((3,) + SHAPE, np.float32, specials=False))
    w = make_x(SHAPE, np.float32, seed=3, specials=False)
    streams = jnp.arange(3, dtype=jnp.uint32)
    for jf, nb in [(fj.dropout, fd.dropout_backward),
                   (fj.alpha_dropout, fd.alpha_dropout_backward),
                   (fj.gaussian_dropout, fd.gaussian_dropout_backward)]:
        grads = jax.jit(jax.vmap(jax.grad(
            lambda x, s: (jf(x, P, seed=SEED, stream=s) * w).sum())))(xs, streams)
        jvps = jax.vmap(lambda x, t, s: jax.jvp(
            lambda v: jf(v, P, seed=SEED, stream=s), (x,), (t,))[1])(xs, xs, streams)
        for i in range(3):
            assert_bits_equal(np.asarray(grads[i]), nb(w, P, seed=SEED, stream=i))
            assert_bits_equal(np.asarray(jvps[i]), nb(np.asarray(xs[i]), P, seed=SEED, stream=i))


@pytest.mark.parametrize("with_bias", [True, False])
def test_bias_dropout_add_forward_jvp_grad(with_bias):
    xn = make_x(SHAPE, np.float32)
    bn = make_x(SHAPE[-1:], np.float32, seed=1) if with_bias else None
    rn = make_x(SHAPE, np.float32, seed=2)
    x, r = jnp.asarray(xn), jnp.asarray(rn)
    b = None if bn is None else jnp.asarray(bn)
    expected = fd.bias_dropout_add(xn, bn, rn, P, **K)
    assert_bits_equal(np.asarray(fj.bias_dropout_add(x, b, r, P, **K)), expected)
    assert_bits_equal(np.asarray(jax.jit(lambda x, b, r: fj.bias_dropout_add(x, b, r, P, **K))(
        x, b, r)), expected)
    # linear in (x, bias, residual): the tangent is the op of the tangents, the gradients
    # are bias_dropout_add_backward's
    xn, rn = (make_x(SHAPE, np.float32, seed=s, specials=False) for s in (4, 5))
    bn = make_x(SHAPE[-1:], np.float32, seed=6, specials=False) if with_bias else None
    args = (jnp.asarray(xn), None if bn is None else jnp.asarray(bn), jnp.asarray(rn))
    tangents = tuple(None if a is None else 2 * a + 1 for a in args)
    f = (lambda x, b, r: fj.bias_dropout_add(x, b, r, P, **K))
    if not with_bias:
        f2 = (lambda x, r: f(x, None, r))
        _, ty = jax.jvp(f2, (args[0], args[2]), (tangents[0], tangents[2]))
    else:
        _, ty = jax.jit(lambda a, t: jax.jvp(f, a, t))(args, tangents)
    tn = [None if t is None else np.asarray(t) for t in tangents]
    assert_bits_equal(np.asarray(ty), fd.bias_dropout_add(tn[0], tn[1], tn[2], P, **K))
    w = make_x(SHAPE, np.float32, seed=7, specials=False)
    argnums = (0, 1, 2) if with_bias else (0, 2)
    grads = jax.jit(jax.grad(lambda x, b, r: (f(x, b, r) * w).sum(), argnums=argnums))(*args)
    dx, dbias, dres = fd.bias_dropout_add_backward(w, P, **K, has_bias=with_bias)
    assert_bits_equal(np.asarray(grads[0]), dx)
    assert_bits_equal(np.asarray(grads[-1]), dres)
    if with_bias:
        assert_bits_equal(np.asarray(grads[1]), dbias)
    # second order: the hessian of a squared linear map is 2 J^T J, finite and symmetric
    h = jax.hessian(lambda x: (f(x, args[1], args[2]) ** 2).sum())(args[0])
    h = np.asarray(h).reshape(60, 60)
    np.testing.assert_allclose(h, h.T)
    mult = fd.dropout_backward(np.ones(SHAPE, np.float32), P, **K).ravel()
    np.testing.assert_allclose(np.diag(h), 2 * mult ** 2, rtol=1e-6)


def test_bias_dropout_add_backward_op_and_its_derivatives():
    gn = make_x(SHAPE, np.float32, specials=False)
    g = jnp.asarray(gn)
    for has_bias in (True, False):
        dx, dbias, dres = jax.jit(lambda g: fj.bias_dropout_add_backward(
            g, P, **K, has_bias=has_bias))(g)
        ex, eb, _ = fd.bias_dropout_add_backward(gn, P, **K, has_bias=has_bias)
        assert_bits_equal(np.asarray(dx), ex)
        assert dres is not None and np.array_equal(np.asarray(dres), gn)
        if has_bias:
            assert_bits_equal(np.asarray(dbias), eb)
        else:
            assert dbias is None
    # forward mode: linear, the tangent is the op of the tangent
    _, (tdx, tdb, _) = jax.jvp(lambda g: fj.bias_dropout_add_backward(g, P, **K), (g,), (2 * g,))
    ex, eb, _ = fd.bias_dropout_add_backward(2 * gn, P, **K)
    assert_bits_equal(np.asarray(tdx), ex)
    assert_bits_equal(np.asarray(tdb), eb)
    # reverse mode: the transpose of g -> (D g, sum D g) is (cx, cb) -> D (cx + cb)
    cx = make_x(SHAPE, np.float32, seed=1, specials=False)
    cb = make_x(SHAPE[-1:], np.float32, seed=2, specials=False)

    def loss(g):
        dx, dbias, _ = fj.bias_dropout_add_backward(g, P, **K)
        return (dx * cx).sum() + (dbias * cb).sum()

    grad = jax.jit(jax.grad(loss))(g)
    assert_bits_equal(np.asarray(grad), fd.bias_dropout_add(cx, cb, np.zeros_like(cx), P, **K))
    jf = jax.jacfwd(lambda g: fj.bias_dropout_add_backward(g, P, **K)[1])(g)
    jr = jax.jacrev(lambda g: fj.bias_dropout_add_backward(g, P, **K)[1])(g)
    np.testing.assert_array_equal(np.asarray(jf), np.asarray(jr))
    assert jf.shape == (10,) + SHAPE


@pytest.fixture
def x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


def test_float64_check_grads_both_modes_second_order(x64):
    """jax.test_util.check_grads: forward and reverse mode against finite differences, to
    second order, for every op, and bit equality with the NumPy API in float64."""
    x = jnp.asarray(make_x((4, 5), np.float64, specials=False))
    b, r = x[0], x + 1
    fns = [lambda x: fj.dropout(x, 0.4, seed=9, stream=1),
           lambda x: fj.dropout(x, 0.4, seed=9, mode="classic", noise_shape=(None, 1)),
           lambda x: fj.dropout_backward(x, 0.4, seed=9),
           lambda x: fj.alpha_dropout(x, 0.4, seed=9),
           lambda x: fj.gaussian_dropout(x, 0.4, seed=9),
           lambda x: fj.bias_dropout_add(x, b * x[1], r * x, 0.4, seed=9),
           lambda x: fj.bias_dropout_add_backward(x, 0.4, seed=9)[1]]
    for f in fns:
        check_grads(f, (x,), order=2, modes=["fwd", "rev"])
    xn = np.asarray(x)
    assert_bits_equal(np.asarray(fj.gaussian_dropout(x, 0.4, seed=9)),
                      fd.gaussian_dropout(xn, 0.4, seed=9))
    assert_bits_equal(np.asarray(jax.jit(lambda x: fj.alpha_dropout(x, 0.4, seed=9))(x)),
                      fd.alpha_dropout(xn, 0.4, seed=9))


def test_inference_and_errors():
    x = jnp.ones((3, 4))
    assert fj.alpha_dropout(x, 0.5, seed=1, training=False) is x
    assert fj.gaussian_dropout(x, 0.5, seed=1, training=False) is x
    with pytest.raises(ValueError, match="p must be in"):
        fj.gaussian_dropout(x, 1.0, seed=1)  # infinite variance
    with pytest.raises(ValueError, match="p must be in"):
        fj.alpha_dropout(x, -0.1, seed=1)
    with pytest.raises(TypeError, match="grad must have dtype"):
        fj.dropout_backward(jnp.ones(3, jnp.int32), 0.5, seed=1)
    with pytest.raises(ValueError, match="bias must have shape"):
        fj.bias_dropout_add(x, jnp.ones(3), x, 0.5, seed=1)
    with pytest.raises(TypeError, match="bias must have x's dtype"):
        fj.bias_dropout_add(x, jnp.ones(4, jnp.float16), x, 0.5, seed=1)
    with pytest.raises(ValueError, match="residual must have x's dtype and shape"):
        fj.bias_dropout_add(x, None, jnp.ones((4, 3)), 0.5, seed=1)
    with pytest.raises(TypeError, match="residual must have x's dtype"):
        fj.bias_dropout_add(x, None, x.astype(jnp.float16), 0.5, seed=1)
    with pytest.raises(ValueError, match="grad must have at least one axis"):
        fj.bias_dropout_add_backward(jnp.float32(1), 0.5, seed=1)
    with pytest.raises(TypeError, match="has_bias must be"):
        fj.bias_dropout_add_backward(x, 0.5, seed=1, has_bias="yes")
    with pytest.raises(ValueError, match="stream must be in"):
        fj.gaussian_dropout(x, 0.5, seed=1, stream=-1)
    with pytest.raises(TypeError, match="block must be a pair"):
        fj.dropout(x, 0.5, seed=1, block=(0, 0, 0))
    with pytest.raises(ValueError, match="does not fit"):
        fj.dropout(x, 0.5, seed=1, block=((2, 0), (4, 4)))
    with pytest.raises(TypeError, match="block origin must be"):
        fj.dropout(x, 0.5, seed=1, block=(jnp.zeros(3, jnp.int32), (3, 4)))
    with pytest.raises(ValueError, match="one entry per axis of the shard"):
        fj.shard_block(x, (3,), ("d", None))


def test_block_static_and_traced_origin():
    """block= places x in a global array: static or traced origins, forward and grad."""
    gn = make_x((6, 8), np.float32)
    full = fd.dropout(gn, P, **K)
    part = jnp.asarray(gn[2:4, 4:8])
    static = fj.dropout(part, P, **K, block=((2, 4), (6, 8)))
    traced = jax.jit(lambda x, o: fj.dropout(x, P, **K, block=(o, (6, 8))))(
        part, jnp.array([2, 4], jnp.int32))
    assert_bits_equal(np.asarray(static), full[2:4, 4:8])
    assert_bits_equal(np.asarray(traced), full[2:4, 4:8])
    g = jax.grad(lambda x: fj.gaussian_dropout(x, P, **K, block=((2, 4), (6, 8))).sum())(part)
    assert_bits_equal(np.asarray(g), fd.gaussian_dropout(np.ones((6, 8), np.float32), P,
                                                         **K)[2:4, 4:8])


def test_export_through_the_xla_ffi():
    """The custom calls export (tests/adapters/test_jax_ffi.py has the round trips); JAX
    asks for fastdrop's targets to be named as allowed (fastdrop.jax.export_checks)."""
    x = jnp.ones(8)
    with pytest.raises(ValueError, match="fastdrop_dropout_v1"):
        jax.export.export(jax.jit(lambda x: fj.dropout(x, 0.5, seed=1)))(x)
    exp = jax.export.export(jax.jit(lambda x: fj.dropout(x, 0.5, seed=1)),
                            disabled_checks=fj.export_checks())(x)
    assert_bits_equal(np.asarray(exp.call(x)), fd.dropout(np.ones(8, np.float32), 0.5, seed=1))
    # for another platform: the message says the targets are CPU only
    with pytest.raises(NotImplementedError, match=r"dropout on cuda \(the XLA FFI targets "
                                                  r"are CPU only\)"):
        jax.export.export(jax.jit(lambda x: fj.dropout(x, 0.5, seed=1)),
                          platforms=("cpu", "cuda"), disabled_checks=fj.export_checks())(x)
    # the callback route on the CPU: the message gives its reason
    with pytest.raises(NotImplementedError, match="bda_backward with a one-column bias"):
        jax.export.export(jax.jit(lambda g: fj.bias_dropout_add_backward(g, 0.5, seed=1)),
                          disabled_checks=fj.export_checks())(jnp.ones((4, 1)))
    # at inference no kernel runs: the function exports without any check disabled
    exp = jax.export.export(jax.jit(lambda x: fj.dropout(x, 0.5, seed=1, training=False)))(x)
    np.testing.assert_array_equal(np.asarray(exp.call(x)), np.ones(8, np.float32))


def test_gradient_saves_only_the_words():
    """Under grad the residuals of the backward pass are x-independent: the jaxpr of the
    gradient reads the 4 words (and the cotangent), not a stored mask."""
    jaxpr = jax.make_jaxpr(jax.grad(lambda x: fj.dropout(x, 0.5, seed=1).sum()))(jnp.ones(16))
    calls = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "fastdrop_call"]
    ops = [e.params["op"] for e in calls]
    assert ops == ["dropout", "dropout_backward"]
    words = calls[1].invars[1]
    assert words.aval.shape == (4,) and words.aval.dtype == jnp.uint32
