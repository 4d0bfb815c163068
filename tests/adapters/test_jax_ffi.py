"""fastdrop.jax under jit through the XLA FFI (fastdrop._cpu._xla's custom calls, no host
callback): bit equality with the NumPy API for every op, dtype, size, p, bits, noise shape
and block; jax.export round trips; the transformations through the custom calls; the
fallback that says when it runs; errors from the handlers instead of crashes."""
import subprocess
import sys
import warnings

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import fastdrop as fd  # noqa: E402
import fastdrop.jax as fj  # noqa: E402
from fastdrop._cpu import _xla  # noqa: E402

from _helpers import assert_bits_equal, make_x  # noqa: E402

K = dict(seed=2**40 + 5, stream=3)
DTYPES = ["float16", "bfloat16", "float32", "float64"]

# (JAX op, NumPy op, takes noise_shape)
UNARY = {
    "dropout": (fj.dropout, fd.dropout, True),
    "dropout_backward": (fj.dropout_backward, fd.dropout_backward, True),
    "alpha": (fj.alpha_dropout, fd.alpha_dropout, True),
    "alpha_backward": (fj.alpha_dropout_backward, fd.alpha_dropout_backward, True),
    "gaussian": (fj.gaussian_dropout, fd.gaussian_dropout, False),
    "gaussian_backward": (fj.gaussian_dropout_backward, fd.gaussian_dropout_backward, False),
}


@pytest.fixture
def x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


def _ffi_jit(f, *args):
    """jit(f)(*args), asserting that it ran through the XLA FFI handlers (no callback)."""
    before = _xla.calls()
    with warnings.catch_warnings():
        warnings.simplefilter("error", fj.FallbackWarning)
        out = jax.jit(f)(*args)
        jax.block_until_ready(out)
    assert _xla.calls() > before, "the FFI handler did not run"
    return out


def test_the_route_is_the_xla_ffi():
    assert fj.lowering_route() == "xla_ffi" and fj.lowering_reason() is None
    for op in ("dropout", "alpha", "gaussian_backward", "bda", "bda_backward"):
        assert fj.lowering_route(op) == "xla_ffi", op
    assert fj.lowering_route("dropout", noise_shape=(None, 1), shape=(4, 5)) == "xla_ffi"
    # NumPy sums a one-column bias gradient pairwise: that call keeps the callback
    assert fj.lowering_route("bda_backward", has_bias=True, shape=(4, 1)) == "callback"
    assert "one-column" in fj.lowering_reason("bda_backward", has_bias=True, shape=(4, 1))
    text = jax.jit(lambda x: fj.dropout(x, 0.5, seed=1)).lower(jnp.ones(8)).as_text()
    assert "fastdrop_dropout_v1" in text and "callback" not in text
    assert _xla.API_VERSION == (0, 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(UNARY))
def test_unary_ops_every_dtype(op, dtype, x64):
    jf, nf, _ = UNARY[op]
    xn = make_x((5, 13), np.float32).astype(jnp.dtype(dtype))  # NaN, Inf, -0 included
    y = _ffi_jit(lambda x: jf(x, 0.3, **K), jnp.asarray(xn))
    assert_bits_equal(np.asarray(y), nf(xn, 0.3, **K))


@pytest.mark.parametrize("shape", [(0,), (3, 0), (), (1,), (7,), (1023,), (3, 1, 5)])
@pytest.mark.parametrize("op", ["dropout", "alpha", "gaussian"])
def test_sizes_empty_and_0d(op, shape):
    jf, nf, _ = UNARY[op]
    xn = make_x(shape, np.float32)
    y = jax.jit(lambda x: jf(x, 0.4, **K))(jnp.asarray(xn))
    assert_bits_equal(np.asarray(y), nf(xn, 0.4, **K))


@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("p", [0.0, 2.0**-12, 0.5, 1.0])
def test_p_and_bits(p, bits):
    xn = make_x((4, 33), np.float32)
    for name in ("dropout", "dropout_backward", "alpha", "alpha_backward"):
        jf, nf, _ = UNARY[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # p below the resolution of bits=8
            expected = nf(xn, p, **K, bits=bits)
            y = _ffi_jit(lambda x: jf(x, p, **K, bits=bits), jnp.asarray(xn))
        assert_bits_equal(np.asarray(y), expected)
    xc = jnp.asarray(xn)
    y = _ffi_jit(lambda x: fj.dropout(x, p, **K, bits=bits, mode="classic"), xc)
    assert_bits_equal(np.asarray(y), fd.dropout(xn, p, **K, bits=bits, mode="classic"))


def test_0d_block_and_empty_bias_gradient():
    x = np.float32(1.5)
    for name in ("dropout", "gaussian"):
        jf, nf, _ = UNARY[name]
        y = _ffi_jit(lambda v: jf(v, 0.5, seed=3, block=((), ())), jnp.asarray(x))
        assert_bits_equal(np.asarray(y), nf(np.asarray(x), 0.5, seed=3, block=((), ())))
    e = np.zeros((0, 5), np.float32)
    dx, db, _ = _ffi_jit(lambda g: fj.bias_dropout_add_backward(g, 0.5, seed=3), e)
    assert_bits_equal(np.asarray(db), fd.bias_dropout_add_backward(e, 0.5, seed=3)[1])


def test_large_calls_on_several_threads():
    """Past two grains (2^18 elements) the handler runs the threaded driver, on the
    backend's thread count for n_threads=None; two independent calls in one program
    (which XLA may run at the same time) are each exact."""
    from fastdrop._cpu import backend

    assert _xla.threads() == max(1, min(fd.omp_max_threads(), backend.thread_policy()["cpus"]))
    xn = make_x((3, 2**17 + 5), np.float32)
    y1, y2 = _ffi_jit(lambda x: (fj.dropout(x, 0.3, seed=1), fj.gaussian_dropout(x, 0.3, seed=2)),
                      jnp.asarray(xn))
    assert_bits_equal(np.asarray(y1), fd.dropout(xn, 0.3, seed=1))
    assert_bits_equal(np.asarray(y2), fd.gaussian_dropout(xn, 0.3, seed=2))


@pytest.mark.parametrize("noise", [(None, 1), (1, None), (1, 1), (None, None)])
def test_noise_shape(noise):
    xn = make_x((6, 10), np.float32)
    for name in ("dropout", "dropout_backward", "alpha", "alpha_backward"):
        jf, nf, _ = UNARY[name]
        y = _ffi_jit(lambda x: jf(x, 0.3, **K, noise_shape=noise), jnp.asarray(xn))
        assert_bits_equal(np.asarray(y), nf(xn, 0.3, **K, noise_shape=noise))


@pytest.mark.parametrize("noise", [None, (None, 1), (1, None)])
def test_block_static_and_traced(noise):
    gn = make_x((6, 8), np.float32)
    part = jnp.asarray(gn[2:4, 4:8])
    for name in ("dropout", "alpha", "gaussian"):
        jf, nf, takes_noise = UNARY[name]
        if noise is not None and not takes_noise:
            continue
        extra = {} if noise is None else {"noise_shape": noise}
        full = nf(gn, 0.3, **K, **extra)
        static = _ffi_jit(lambda x: jf(x, 0.3, **K, block=((2, 4), (6, 8)), **extra), part)
        traced = _ffi_jit(lambda x, o: jf(x, 0.3, **K, block=(o, (6, 8)), **extra), part,
                          jnp.array([2, 4], jnp.int32))
        assert_bits_equal(np.asarray(static), full[2:4, 4:8])
        assert_bits_equal(np.asarray(traced), full[2:4, 4:8])


def test_a_traced_block_that_does_not_fit_is_an_xla_error():
    f = jax.jit(lambda x, o: fj.dropout(x, 0.3, **K, block=(o, (6, 8))))
    part = jnp.ones((2, 4))
    with pytest.raises(Exception, match="block does not fit its global shape"):
        jax.block_until_ready(f(part, jnp.array([5, 4], jnp.int32)))
    # nothing broke: the next call runs
    assert_bits_equal(np.asarray(f(part, jnp.array([4, 4], jnp.int32))),
                      fd.dropout(np.ones((6, 8), np.float32), 0.3, **K)[4:6, 4:8])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_bias_dropout_add_and_backward(with_bias, dtype, x64):
    dt = jnp.dtype(dtype)
    xn, rn = make_x((5, 12), np.float32).astype(dt), make_x((5, 12), np.float32, 1).astype(dt)
    bn = make_x((12,), np.float32, 2).astype(dt) if with_bias else None
    b = None if bn is None else jnp.asarray(bn)
    y = _ffi_jit(lambda x, b, r: fj.bias_dropout_add(x, b, r, 0.3, **K), jnp.asarray(xn), b,
                 jnp.asarray(rn))
    assert_bits_equal(np.asarray(y), fd.bias_dropout_add(xn, bn, rn, 0.3, **K))
    gn = make_x((7, 12), np.float32, 3, specials=False).astype(dt)
    dx, dbias, _ = _ffi_jit(lambda g: fj.bias_dropout_add_backward(
        g, 0.3, **K, has_bias=with_bias), jnp.asarray(gn))
    ex, eb, _ = fd.bias_dropout_add_backward(gn, 0.3, **K, has_bias=with_bias)
    assert_bits_equal(np.asarray(dx), ex)
    if with_bias:
        assert_bits_equal(np.asarray(dbias), eb)


def test_one_column_bias_gradient_takes_the_callback_and_says_so():
    gn = make_x((9, 1), np.float32, specials=False)
    fj._WARNED.clear()
    with pytest.warns(fj.FallbackWarning, match="one-column bias"):
        dx, dbias, _ = jax.jit(lambda g: fj.bias_dropout_add_backward(g, 0.3, **K))(
            jnp.asarray(gn))
    ex, eb, _ = fd.bias_dropout_add_backward(gn, 0.3, **K)
    assert_bits_equal(np.asarray(dx), ex)
    assert_bits_equal(np.asarray(dbias), eb)


def test_transformations_run_through_the_custom_calls():
    xn = make_x((3, 6, 10), np.float32, specials=False)
    w = make_x((6, 10), np.float32, seed=1, specials=False)
    xs, streams = jnp.asarray(xn), jnp.arange(3, dtype=jnp.uint32)
    g = _ffi_jit(jax.grad(lambda x: (fj.dropout(x, 0.3, **K) * w).sum()), xs[0])
    assert_bits_equal(np.asarray(g), fd.dropout_backward(w, 0.3, **K))
    _, t = _ffi_jit(lambda x: jax.jvp(lambda v: fj.gaussian_dropout(v, 0.3, **K), (x,), (x,)),
                    xs[0])
    assert_bits_equal(np.asarray(t), fd.gaussian_dropout(xn[0], 0.3, **K))
    v = _ffi_jit(jax.vmap(lambda x, s: fj.alpha_dropout(x, 0.3, seed=7, stream=s,
                                                        noise_shape=(1, None))), xs, streams)
    for i in range(3):
        assert_bits_equal(np.asarray(v[i]), fd.alpha_dropout(xn[i], 0.3, seed=7, stream=i,
                                                             noise_shape=(1, None)))
    vb = _ffi_jit(jax.vmap(lambda g, s: fj.bias_dropout_add_backward(
        g, 0.3, seed=7, stream=s)[:2]), xs, streams)
    for i in range(3):
        ex, eb, _ = fd.bias_dropout_add_backward(xn[i], 0.3, seed=7, stream=i)
        assert_bits_equal(np.asarray(vb[0][i]), ex)
        assert_bits_equal(np.asarray(vb[1][i]), eb)

    def body(c, s):
        return fj.dropout(c, 0.3, seed=7, stream=s), None

    out = _ffi_jit(lambda x: jax.lax.scan(body, x, streams)[0], xs[0])
    ref = xn[0]
    for i in range(3):
        ref = fd.dropout(ref, 0.3, seed=7, stream=i)
    assert_bits_equal(np.asarray(out), ref)


def _round_trip(exp):
    """serialize, deserialize (JAX needs flatbuffers for it; without, the Exported itself)."""
    try:
        import flatbuffers  # noqa: F401
    except ImportError:
        return exp
    return jax.export.deserialize(exp.serialize())


def test_export_round_trip():
    xn = make_x((4, 10), np.float32)
    w = make_x((4, 10), np.float32, seed=1, specials=False)
    b, r = jnp.asarray(xn[0]), jnp.asarray(xn + 1)

    def f(x, s):
        y = fj.dropout(x, 0.3, seed=K["seed"], stream=s, noise_shape=(None, 1))
        y = fj.bias_dropout_add(y, b, r, 0.2, seed=5, stream=s)
        return fj.gaussian_dropout(y, 0.1, seed=6, stream=s)

    exp = jax.export.export(jax.jit(f), disabled_checks=fj.export_checks())(
        jnp.asarray(xn), jnp.uint32(0))
    back = _round_trip(exp)
    y = back.call(jnp.asarray(xn), jnp.uint32(3))
    e = fd.dropout(xn, 0.3, **K, noise_shape=(None, 1))
    e = fd.bias_dropout_add(e, xn[0], xn + 1, 0.2, seed=5, stream=3)
    assert_bits_equal(np.asarray(y), fd.gaussian_dropout(e, 0.1, seed=6, stream=3))
    # with its gradient (vjp_order=1)
    ge = jax.export.export(jax.jit(jax.grad(lambda x: (fj.dropout(x, 0.3, **K) * w).sum())),
                           disabled_checks=fj.export_checks())(jnp.asarray(xn))
    g = _round_trip(ge).call(jnp.asarray(xn))
    assert_bits_equal(np.asarray(g), fd.dropout_backward(w, 0.3, **K))
    # without the checks, JAX names the targets it does not know to be stable
    with pytest.raises(ValueError, match="fastdrop_dropout_v1"):
        jax.export.export(jax.jit(lambda x: fj.dropout(x, 0.3, seed=1)))(jnp.asarray(xn))



def test_export_with_a_noise_shape_built_from_x_shape():
    # noise_shape=(x.shape[0], 1) with a symbolic batch: the symbolic entry is x's own size
    # there, taken as None (the export as with (None, 1))
    spec = jax.ShapeDtypeStruct(jax.export.symbolic_shape("b, 8"), jnp.float32)
    back = _round_trip(jax.export.export(jax.jit(
        lambda x: (fj.dropout(x, 0.3, **K, noise_shape=(x.shape[0], 1)),
                   fj.alpha_dropout(x, 0.3, **K, noise_shape=x.shape[:1] + (1,)))),
        disabled_checks=fj.export_checks())(spec))
    for b in (2, 5):
        xn = make_x((b, 8), np.float32)
        y, a = back.call(jnp.asarray(xn))
        assert_bits_equal(np.asarray(y), fd.dropout(xn, 0.3, **K, noise_shape=(b, 1)))
        assert_bits_equal(np.asarray(a), fd.alpha_dropout(xn, 0.3, **K, noise_shape=(b, 1)))


@pytest.mark.parametrize("noise_shape", [(None, 1), (None, None, 1), (1, None, None)])
def test_export_with_a_symbolic_batch_in_the_noise_shape(noise_shape):
    # a shape-polymorphic export whose noise shape keeps the symbolic axis: the attribute
    # carries -1 there, resolved by the handler from x's shape at each call
    nd = len(noise_shape)
    dims = ("b", "16") if nd == 2 else ("b", "3", "5")
    spec = jax.ShapeDtypeStruct(jax.export.symbolic_shape(", ".join(dims)), jnp.float32)

    def f(x):
        y = fj.dropout(x, 0.3, **K, noise_shape=noise_shape)
        return y, jax.grad(lambda x: fj.dropout(x, 0.3, **K, noise_shape=noise_shape)
                           .sum())(x)

    back = _round_trip(jax.export.export(jax.jit(f), disabled_checks=fj.export_checks())(
        spec))
    for b in (1, 4, 7):
        xn = make_x((b,) + tuple(int(d) for d in dims[1:]), np.float32)
        y, g = back.call(jnp.asarray(xn))
        assert_bits_equal(np.asarray(y), fd.dropout(xn, 0.3, **K, noise_shape=noise_shape))
        assert_bits_equal(np.asarray(g), fd.dropout_backward(
            np.ones_like(xn), 0.3, **K, noise_shape=noise_shape))

def test_donation_writes_in_place():
    xn = make_x((64, 64), np.float32)
    f = jax.jit(lambda x: fj.dropout(x, 0.3, **K), donate_argnums=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "donated buffers were not usable" would raise
        y = f(jnp.asarray(xn))
    assert_bits_equal(np.asarray(y), fd.dropout(xn, 0.3, **K))


def test_forced_callback_route_in_a_subprocess():
    """FASTDROP_JAX_CALLBACK=1 keeps every call on the host callback (as before), with
    the same numbers; export then refuses with the reason. (And OMP_NUM_THREADS=1 caps
    the handlers at one thread.)"""
    code = (
        "import jax, jax.numpy as jnp, numpy as np, pytest, fastdrop as fd, fastdrop.jax as fj\n"
        "from fastdrop._cpu import _xla\n"
        "assert fj.lowering_route() == 'callback', fj.lowering_route()\n"
        "assert _xla.threads() == 1  # OMP_NUM_THREADS=1: the handlers' cap too\n"
        "assert 'FASTDROP_JAX_CALLBACK' in fj.lowering_reason()\n"
        "x = np.linspace(-3, 3, 50, dtype=np.float32)\n"
        "y = jax.jit(lambda x: fj.dropout(x, 0.3, seed=4))(x)\n"
        "assert np.array_equal(np.asarray(y), fd.dropout(x, 0.3, seed=4)) and _xla.calls() == 0\n"
        "with pytest.raises(NotImplementedError, match='host callback'):\n"
        "    jax.export.export(jax.jit(lambda x: fj.dropout(x, 0.3, seed=4)))(x)\n"
        "print('ok')\n")
    import os
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[2]
    env = dict(os.environ, FASTDROP_JAX_CALLBACK="1", JAX_PLATFORMS="cpu", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(root)] + [
                   p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, cwd=str(root))
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]
