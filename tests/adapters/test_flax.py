"""fastdrop.flax: linen and nnx Dropout modules, drop-ins for Flax's own: seeding from Flax's
dropout rng stream, the masks of fastdrop.dropout, deterministic, broadcast_dims, and
models training a few steps with optax."""
import numpy as np
import pytest

jax = pytest.importorskip("jax")
flax = pytest.importorskip("flax")
optax = pytest.importorskip("optax")
import flax.linen as nn  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

import fastdrop as fd  # noqa: E402
import fastdrop.flax  # noqa: E402,F401
import fastdrop.flax.linen as fnn  # noqa: E402
import fastdrop.flax.nnx as fnnx  # noqa: E402

from _helpers import assert_bits_equal, make_x  # noqa: E402


def key_seed(key) -> int:
    """The fastdrop seed a JAX key stands for: its 64 bits, word 0 high."""
    hi, lo = (int(w) for w in jax.random.key_data(key))
    return hi << 32 | lo


def regression_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 8)).astype(np.float32)
    y = (x @ rng.standard_normal((8, 1))).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(y)


# ---- linen ---------------------------------------------------------------------------------


def test_linen_is_a_drop_in_with_fastdrop_masks():
    assert issubclass(fnn.Dropout, nn.Dropout)
    xn = make_x((4, 16), np.float32)
    x = jnp.asarray(xn)
    key = jax.random.key(7)
    y = fnn.Dropout(0.3).apply({}, x, deterministic=False, rng=key)
    assert_bits_equal(np.asarray(y), fd.dropout(xn, 0.3, seed=key_seed(key)))
    assert fnn.Dropout(0.3).apply({}, x, deterministic=True) is x
    assert fnn.Dropout(0.0, deterministic=False).apply({}, x) is x
    np.testing.assert_array_equal(
        np.asarray(fnn.Dropout(1.0, deterministic=False).apply({}, x, rng=key)), 0.0)

    # the key comes from make_rng('dropout'): seeded as Flax's own module is
    seen = []

    class Spy(nn.Module):
        @nn.compact
        def __call__(self, x):
            seen.append(self.make_rng("dropout"))
            return x

    class Model(nn.Module):
        layer: type

        @nn.compact
        def __call__(self, x):
            return self.layer(0.3, deterministic=False, name="drop")(x)

    root = jax.random.key(3)
    y = Model(fnn.Dropout).apply({}, x, rngs={"dropout": root})
    Model(lambda *a, **k: Spy(name="drop")).apply({}, x, rngs={"dropout": root})
    assert_bits_equal(np.asarray(y), fd.dropout(xn, 0.3, seed=key_seed(seen[0])))
    again = Model(fnn.Dropout).apply({}, x, rngs={"dropout": root})
    other = Model(fnn.Dropout).apply({}, x, rngs={"dropout": jax.random.key(4)})
    assert_bits_equal(np.asarray(again), np.asarray(y))
    assert not np.array_equal(np.asarray(other), np.asarray(y))
    with pytest.raises(ValueError, match="rate must be in"):
        fnn.Dropout(1.5).apply({}, x, deterministic=False, rng=key)
    with pytest.raises(ValueError, match="broadcast_dims entry 5"):
        fnn.Dropout(0.5, broadcast_dims=(5,)).apply({}, x, deterministic=False, rng=key)


def test_linen_broadcast_dims_and_bits():
    x = jnp.ones((3, 5, 6))
    key = jax.random.key(1)
    y = np.asarray(fnn.Dropout(0.5, broadcast_dims=(0, -1)).apply(
        {}, x, deterministic=False, rng=key))
    assert np.all(y == y[:1, :, :1])  # constant along axes 0 and 2
    assert 0 < (y == 0).sum() < y.size
    assert_bits_equal(y, fd.dropout(np.ones((3, 5, 6), np.float32), 0.5, seed=key_seed(key),
                                    noise_shape=(1, None, 1)))
    y32 = fnn.Dropout(0.5, bits=32).apply({}, x, deterministic=False, rng=key)
    assert_bits_equal(np.asarray(y32), fd.dropout(np.ones((3, 5, 6), np.float32), 0.5,
                                                  seed=key_seed(key), bits=32))


def test_linen_model_trains_with_optax():
    x, y = regression_data()

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool):
            x = nn.relu(nn.Dense(32)(x))
            x = fnn.Dropout(0.2, deterministic=not train)(x)
            return nn.Dense(1)(x)

    model = MLP()
    params = model.init(jax.random.key(0), x, train=False)["params"]
    tx = optax.adam(1e-2)
    state = tx.init(params)

    def loss_fn(params, key):
        pred = model.apply({"params": params}, x, train=True, rngs={"dropout": key})
        return jnp.mean((pred - y) ** 2)

    @jax.jit
    def step(params, state, key):
        loss, grads = jax.value_and_grad(loss_fn)(params, key)
        updates, state = tx.update(grads, state)
        return optax.apply_updates(params, updates), state, loss

    losses = []
    for i in range(30):
        params, state, loss = step(params, state, jax.random.fold_in(jax.random.key(1), i))
        losses.append(float(loss))
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0]
    # at inference: deterministic, the dropout is the identity
    a = model.apply({"params": params}, x, train=False)
    b = model.apply({"params": params}, x, train=False)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ---- nnx -----------------------------------------------------------------------------------


def test_nnx_is_a_drop_in_seeded_as_flax_own():
    assert issubclass(fnnx.Dropout, nnx.Dropout)
    xn = make_x((4, 16), np.float32)
    x = jnp.asarray(xn)
    ours = fnnx.Dropout(0.3, rngs=nnx.Rngs(dropout=5))
    theirs = nnx.Dropout(0.3, rngs=nnx.Rngs(dropout=5))  # the same forked stream
    keys = [theirs.rngs(), theirs.rngs()]
    y1, y2 = ours(x), ours(x)
    assert_bits_equal(np.asarray(y1), fd.dropout(xn, 0.3, seed=key_seed(keys[0])))
    assert_bits_equal(np.asarray(y2), fd.dropout(xn, 0.3, seed=key_seed(keys[1])))
    assert not np.array_equal(np.asarray(y1), np.asarray(y2))  # a fresh key per call
    # call-time rngs: a key, an RngStream, an Rngs
    key = jax.random.key(9)
    plain = fnnx.Dropout(0.3)
    assert_bits_equal(np.asarray(plain(x, rngs=key)), fd.dropout(xn, 0.3, seed=key_seed(key)))
    expected = fd.dropout(xn, 0.3, seed=key_seed(nnx.Rngs(dropout=2).dropout()))
    assert_bits_equal(np.asarray(plain(x, rngs=nnx.Rngs(dropout=2))), expected)
    assert_bits_equal(np.asarray(plain(x, rngs=nnx.Rngs(dropout=2).dropout)), expected)
    # deterministic / eval: the identity
    assert ours(x, deterministic=True) is x
    ours.eval()
    assert ours(x) is x
    ours.train()
    assert not np.array_equal(np.asarray(ours(x)), xn)
    view = nnx.view(ours, deterministic=True)
    assert view(x) is x
    with pytest.raises(ValueError, match="no `rngs`"):
        fnnx.Dropout(0.3)(x)
    with pytest.raises(TypeError, match="rngs must be"):
        fnnx.Dropout(0.3)(x, rngs=3)
    with pytest.raises(ValueError, match="rate must be in"):
        fnnx.Dropout(-0.5)
    with pytest.raises(ValueError, match="bits must be"):
        fnnx.Dropout(0.5, bits=12)


def test_nnx_broadcast_dims():
    drop = fnnx.Dropout(0.5, broadcast_dims=(1,), rngs=nnx.Rngs(dropout=0))
    key = nnx.Dropout(0.5, rngs=nnx.Rngs(dropout=0)).rngs()
    y = np.asarray(drop(jnp.ones((6, 7))))
    assert np.all(y == y[:, :1]) and 0 < (y == 0).sum() < y.size
    assert_bits_equal(y, fd.dropout(np.ones((6, 7), np.float32), 0.5, seed=key_seed(key),
                                    noise_shape=(None, 1)))


def test_nnx_model_trains_with_optax():
    x, y = regression_data()

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(8, 32, rngs=rngs)
            self.drop = fnnx.Dropout(0.2, rngs=rngs)
            self.l2 = nnx.Linear(32, 1, rngs=rngs)

        def __call__(self, x):
            return self.l2(self.drop(nnx.relu(self.l1(x))))

    model = MLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        def loss_fn(model):
            return jnp.mean((model(x) - y) ** 2)
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    model.train()
    losses = [float(step(model, optimizer)) for _ in range(30)]
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0]
    model.eval()
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(model(x)))


# ---- what Flax's own modules accept ----------------------------------------------------------


@pytest.mark.parametrize("rate", [jnp.float32(0.5), jnp.asarray(0.5), np.float64(0.5),
                                  np.asarray(0.5)], ids=["jnp_scalar", "jnp_0d", "np_scalar",
                                                         "np_0d"])
def test_a_concrete_array_rate_and_numpy_int_broadcast_dims(rate):
    # as flax.linen.Dropout and flax.nnx.Dropout take them: a concrete 0-d array rate is
    # its value; NumPy integers are ints in broadcast_dims
    x = jnp.ones((3, 5, 6))
    key = jax.random.key(1)
    dims = (np.int64(0), np.int32(-1))
    want = fd.dropout(np.ones((3, 5, 6), np.float32), 0.5, seed=key_seed(key),
                      noise_shape=(1, None, 1))
    y = fnn.Dropout(rate, broadcast_dims=dims).apply({}, x, deterministic=False, rng=key)
    assert_bits_equal(np.asarray(y), want)
    nn.Dropout(rate, broadcast_dims=dims).apply({}, x, deterministic=False, rng=key)  # Flax
    k = nnx.Dropout(0.5, rngs=nnx.Rngs(dropout=0)).rngs()
    y = fnnx.Dropout(rate, broadcast_dims=dims, rngs=nnx.Rngs(dropout=0))(x)
    assert_bits_equal(np.asarray(y), fd.dropout(np.ones((3, 5, 6), np.float32), 0.5,
                                                seed=key_seed(k), noise_shape=(1, None, 1)))


def test_bad_rates_dims_and_inputs_name_the_argument():
    x = jnp.ones((2, 3))
    key = jax.random.key(0)
    for bad in (jnp.asarray([0.5, 0.5]), jnp.asarray(True), "0.5"):
        with pytest.raises(TypeError, match="rate must be"):
            fnn.Dropout(bad).apply({}, x, deterministic=False, rng=key)
    with pytest.raises(ValueError, match="rate must be in"):
        fnn.Dropout(jnp.asarray(1.5)).apply({}, x, deterministic=False, rng=key)
    for dims in ((0.0,), (True,), (np.bool_(True),), ("0",)):
        with pytest.raises(TypeError, match="broadcast_dims must be a sequence of ints"):
            fnn.Dropout(0.5, broadcast_dims=dims).apply({}, x, deterministic=False, rng=key)
    with pytest.raises(TypeError, match="inputs must be an array of float16"):
        fnn.Dropout(0.5).apply({}, None, deterministic=False, rng=key)
    with pytest.raises(TypeError, match="inputs must have dtype float16"):
        fnn.Dropout(0.5).apply({}, jnp.ones((2, 3), jnp.int32), deterministic=False, rng=key)
    with pytest.raises(TypeError, match="rate must be"):   # traced: static, as Flax's
        jax.jit(lambda r: fnn.Dropout(r).apply({}, x, deterministic=False, rng=key))(0.5)
