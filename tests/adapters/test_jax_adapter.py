"""fastdrop.jax.dropout: the primitive over the CPU kernels (eagerly on the JAX buffers,
under jit XLA FFI custom calls), jit, vmap, grads, keys. The other ops, forward mode and the
higher derivatives: test_jax_ops.py; the XLA FFI route itself: test_jax_ffi.py."""
import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

import fastdrop  # noqa: E402
import fastdrop.jax as fj  # noqa: E402

X64_AT_IMPORT = jax.config.jax_enable_x64

from _helpers import assert_bits_equal, make_x  # noqa: E402


@pytest.fixture
def x64():
    """float64 for the duration of one test; the global flag is restored afterwards."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("jit", [False, True])
def test_equals_fastdrop_bit_for_bit(dtype, jit):
    xn = make_x((7, 33), np.float32).astype(jnp.dtype(dtype))
    x = jnp.asarray(xn)

    def f(x, stream):
        return fj.dropout(x, 0.3, seed=2**40 + 5, stream=stream)

    f = jax.jit(f) if jit else f
    for stream in (0, 3):
        y = f(x, stream)
        assert isinstance(y, jax.Array) and y.dtype == x.dtype
        assert_bits_equal(np.asarray(y), fastdrop.dropout(xn, 0.3, seed=2**40 + 5, stream=stream))


def test_float64_and_check_grads(x64):
    x = jnp.asarray(make_x((5, 11), np.float64, specials=False))
    assert x.dtype == jnp.float64

    def f(x):
        return fj.dropout(x, 0.4, seed=9, stream=1)

    check_grads(f, (x,), order=1, modes=["rev"])
    check_grads(f, (x,), order=2, modes=["rev"])
    check_grads(lambda x: fj.dropout(x, 0.4, seed=9, mode="classic",
                                     noise_shape=(None, 1)), (x,), order=1, modes=["rev"])
    assert_bits_equal(np.asarray(f(x)), fastdrop.dropout(np.asarray(x), 0.4, seed=9, stream=1))


def test_x64_flag_is_restored():
    # runs after test_float64_and_check_grads in file order
    assert jax.config.jax_enable_x64 == X64_AT_IMPORT


@pytest.mark.parametrize("jit", [False, True])
def test_gradient_is_fastdrop_dropout_backward(jit):
    xn = make_x((6, 10), np.float32, specials=False)
    w = np.arange(60, dtype=np.float32).reshape(6, 10)

    def loss(x):
        return (fj.dropout(x, 0.3, seed=5, stream=2) * w).sum()

    grad = jax.jit(jax.grad(loss)) if jit else jax.grad(loss)
    g = grad(jnp.asarray(xn))
    assert_bits_equal(np.asarray(g), fastdrop.dropout_backward(w, 0.3, seed=5, stream=2))


def test_traced_seed_and_stream():
    xn = make_x((4, 9), np.float32)
    f = jax.jit(lambda x, seed, stream: fj.dropout(x, 0.5, seed=seed, stream=stream))
    for seed, stream in [(1, 0), (7, 12), (2**31 + 3, 2**32 - 1)]:
        y = f(jnp.asarray(xn), jnp.uint32(seed), jnp.uint32(stream))
        assert_bits_equal(np.asarray(y), fastdrop.dropout(xn, 0.5, seed=seed, stream=stream))
    with pytest.raises(TypeError, match="seed must be an int or an integer scalar"):
        fj.dropout(jnp.ones(3), 0.5, seed=jnp.ones((2, 2), jnp.uint32))  # uint32[2]: a key


def test_vmap_is_per_element():
    xs = jnp.asarray(make_x((3, 5, 8), np.float32))
    streams = jnp.arange(3, dtype=jnp.uint32)
    batched = jax.jit(jax.vmap(lambda x, s: fj.dropout(x, 0.3, seed=4, stream=s)))(xs, streams)
    same = jax.vmap(lambda x: fj.dropout(x, 0.3, seed=4, stream=1))(xs)
    over_streams = jax.vmap(lambda s: fj.dropout(xs[0], 0.3, seed=4, stream=s))(streams)
    grads = jax.vmap(jax.grad(lambda x, s: fj.dropout(x, 0.3, seed=4, stream=s).sum()))(xs, streams)
    for i in range(3):
        xi = np.asarray(xs[i])
        assert_bits_equal(np.asarray(batched[i]), fastdrop.dropout(xi, 0.3, seed=4, stream=i))
        assert_bits_equal(np.asarray(same[i]), fastdrop.dropout(xi, 0.3, seed=4, stream=1))
        assert_bits_equal(np.asarray(over_streams[i]),
                          fastdrop.dropout(np.asarray(xs[0]), 0.3, seed=4, stream=i))
        assert_bits_equal(np.asarray(grads[i]), fastdrop.dropout_backward(
            np.ones((5, 8), np.float32), 0.3, seed=4, stream=i))


def test_eager_call_copies_nothing(monkeypatch):
    seen = {}
    real = fastdrop.functional.dropout

    def spy(x, *a, **k):
        y = real(x, *a, **k)
        seen["x"], seen["y"] = x.ctypes.data, k["out"].ctypes.data
        return y

    monkeypatch.setattr(fastdrop.functional, "dropout", spy)
    x = jnp.ones((64, 64), jnp.float32) * 3
    y = fj.dropout(x, 0.5, seed=1)
    assert seen["x"] == x.unsafe_buffer_pointer()
    assert seen["y"] == y.unsafe_buffer_pointer()


def test_inference_and_noise_shape():
    x = jnp.asarray(make_x((4, 6), np.float32))
    assert fj.dropout(x, 0.5, seed=1, training=False) is x
    assert_bits_equal(np.asarray(fj.dropout(x, 0.3, seed=1, training=False, mode="classic")),
                      fastdrop.dropout(np.asarray(x), 0.3, training=False, mode="classic"))
    y = fj.dropout(jnp.ones((4, 6)), 0.5, seed=3, noise_shape=(None, 1))
    assert bool(jnp.all(y == y[:, :1]))
    assert_bits_equal(np.asarray(y), fastdrop.dropout(np.ones((4, 6), np.float32), 0.5, seed=3,
                                                      noise_shape=(None, 1)))


def test_errors():
    with pytest.raises(TypeError, match="x must have dtype"):
        fj.dropout(jnp.ones(3, jnp.int32), 0.5, seed=1)
    with pytest.raises(ValueError, match="p must be in"):
        fj.dropout(jnp.ones(3), 2.0, seed=1)
    with pytest.raises(ValueError, match="seed must be in"):
        fj.dropout(jnp.ones(3), 0.5, seed=-1)
    with pytest.raises(TypeError, match="training must be a bool"):
        fj.dropout(jnp.ones(3), 0.5, seed=1, training=1)
    with pytest.raises(TypeError, match="seed must be an int.*got None"):
        fj.dropout(jnp.ones(3), 0.5, seed=None)
    with pytest.raises(ValueError, match="noise_shape"):
        fj.dropout(jnp.ones((2, 3)), 0.5, seed=1, noise_shape=(2, 2))


def test_jax_keys_are_seeds():
    """jax.random.key(n) and jax.random.PRNGKey(n) stand for seed n (issue 16), eager,
    under jit and under grad; split keys give their key_data's 64 bits."""
    x = jnp.ones(64, jnp.float32)
    expected = np.asarray(fj.dropout(x, 0.5, seed=42, stream=3))
    for key in (jax.random.PRNGKey(42), jax.random.key(42)):
        np.testing.assert_array_equal(np.asarray(fj.dropout(x, 0.5, seed=key, stream=3)),
                                      expected)
        jitted = jax.jit(lambda k: fj.dropout(x, 0.5, seed=k, stream=3))(key)
        np.testing.assert_array_equal(np.asarray(jitted), expected)
    sub = jax.random.split(jax.random.key(0))[1]
    hi, lo = (int(w) for w in jax.random.key_data(sub))
    np.testing.assert_array_equal(
        np.asarray(fj.dropout(x, 0.5, seed=sub)),
        fastdrop.dropout(np.ones(64, np.float32), 0.5, seed=hi << 32 | lo))
    grad = jax.grad(lambda v: fj.dropout(v, 0.5, seed=jax.random.key(42), stream=3).sum())(x)
    np.testing.assert_array_equal(np.asarray(grad), expected)  # dropout of ones = its gradient
    with pytest.raises(TypeError, match="single JAX key"):
        fj.dropout(x, 0.5, seed=jax.random.split(jax.random.key(0)))
    with pytest.raises(TypeError, match="uint32"):
        fj.dropout(x, 0.5, seed=jnp.zeros(3, jnp.uint32))


def test_numpy_0d_seeds_and_streams_keep_their_64_bits():
    # jnp.asarray would narrow a NumPy int64/uint64 0-d array to 32 bits (x64 off): the
    # value is read as the int it is, as fastdrop.dropout reads it
    x = jnp.ones(64, jnp.float32)
    xn = np.ones(64, np.float32)
    for seed, stream in [(np.array(2**40 + 7), np.array(2**40 + 3)),
                         (np.array(2**63 + 5, np.uint64), np.array(2**64 - 1, np.uint64)),
                         (np.array(3, np.int32), np.array(9, np.uint8))]:
        want = fastdrop.dropout(xn, 0.5, seed=int(seed), stream=int(stream))
        np.testing.assert_array_equal(np.asarray(fj.dropout(x, 0.5, seed=seed, stream=stream)),
                                      want)
        w = [int(v) for v in fj.stream_words(seed, stream)]
        assert (w[0] | w[1] << 32, w[2] | w[3] << 32) == (int(seed), int(stream))
    with pytest.raises(ValueError, match="stream"):
        fj.dropout(x, 0.5, seed=1, stream=np.array(-1))
    with pytest.raises(TypeError, match="stream must be an int or an integer scalar"):
        fj.dropout(x, 0.5, seed=1, stream=np.array([1, 2]))


def test_non_arrays_name_the_argument():
    x = jnp.ones((2, 3), jnp.float32)
    with pytest.raises(TypeError, match="x must be an array of float16"):
        fj.dropout(None, 0.5, seed=1)
    with pytest.raises(TypeError, match="residual must be an array"):
        fj.bias_dropout_add(x, None, None, 0.5, seed=1)
    with pytest.raises(TypeError, match="bias must be an array"):
        fj.bias_dropout_add(x, "a", x, 0.5, seed=1)


@pytest.mark.parametrize("impl", ["rbg", "unsafe_rbg"])
def test_keys_of_the_other_implementations_are_seeds(impl):
    # rbg and unsafe_rbg keys (uint32[4] of key data, typed or raw): their first two words,
    # eager, under jit and vmap, and through the Flax drop-in as through Flax's own
    x = jnp.ones(64, jnp.float32)
    for key in (jax.random.key(7, impl=impl), jax.random.split(jax.random.key(7, impl=impl))[1]):
        data = jax.random.key_data(key)
        assert data.shape == (4,)
        hi, lo = int(data[0]), int(data[1])
        want = fastdrop.dropout(np.ones(64, np.float32), 0.5, seed=hi << 32 | lo, stream=2)
        for seed in (key, data):   # typed, raw
            np.testing.assert_array_equal(np.asarray(fj.dropout(x, 0.5, seed=seed, stream=2)),
                                          want)
            np.testing.assert_array_equal(np.asarray(jax.jit(
                lambda k: fj.dropout(x, 0.5, seed=k, stream=2))(seed)), want)
    keys = jax.random.split(jax.random.key(1, impl=impl), 3)
    ys = jax.vmap(lambda k: fj.dropout(x, 0.5, seed=k))(keys)
    for k, y in zip(keys, ys):
        np.testing.assert_array_equal(np.asarray(y), np.asarray(fj.dropout(x, 0.5, seed=k)))
    flax_linen = pytest.importorskip("flax.linen")
    import fastdrop.flax.linen as fnn
    k = jax.random.key(3, impl=impl)
    ours = fnn.Dropout(0.5, deterministic=False).apply({}, x, rngs={"dropout": k})
    theirs = flax_linen.Dropout(0.5, deterministic=False).apply({}, x, rngs={"dropout": k})
    assert ours.shape == theirs.shape   # (the key make_rng derives from k is the seed)
    assert set(np.unique(np.asarray(ours)).tolist()) == {0.0, 2.0}
    again = fnn.Dropout(0.5, deterministic=False).apply({}, x, rngs={"dropout": k})
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(again))
    with pytest.raises(TypeError, match="uint32.2. .threefry. or uint32.4."):
        fj.dropout(x, 0.5, seed=jnp.zeros(5, jnp.uint32))
