"""Property tests: fastdrop.jax.dropout, eager and under jit (the XLA FFI route, traced
seed and stream), and its gradient equal fastdrop's NumPy result bit for bit, over
dtypes, shapes, p, bits, noise shapes, seeds and streams."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import fastdrop  # noqa: E402
import fastdrop.jax as fj  # noqa: E402

from _helpers import assert_bits_equal, make_x  # noqa: E402

U32 = st.integers(0, 2**32 - 1)  # a traced seed or stream without x64: uint32
P = st.one_of(st.sampled_from([0.0, 1e-7, 0.1, 0.5, 1.0]),
              st.floats(0.0, 1.0, allow_nan=False))


@st.composite
def cases(draw):
    shape = tuple(draw(st.lists(st.integers(0, 9), min_size=0, max_size=3)))
    noise = None
    if shape and draw(st.booleans()):
        noise = tuple(d if draw(st.booleans()) else 1 for d in shape)
    return dict(dtype=draw(st.sampled_from(["float16", "bfloat16", "float32"])),
                shape=shape, noise=noise, p=draw(P), bits=draw(st.sampled_from([8, 16, 32])),
                seed=draw(U32), stream=draw(U32), data=draw(st.integers(0, 2**31)))


@given(cases(), st.booleans())
def test_dropout_and_its_gradient_equal_fastdrop(c, jit):
    xn = make_x(c["shape"], np.float32, seed=c["data"]).astype(jnp.dtype(c["dtype"]))
    gn = make_x(c["shape"], np.float32, seed=c["data"] + 1,
                specials=False).astype(jnp.dtype(c["dtype"]))
    kw = dict(noise_shape=c["noise"], bits=c["bits"])

    def f(x, seed, stream):
        return fj.dropout(x, c["p"], seed=seed, stream=stream, **kw)

    if jit:
        f = jax.jit(f)
        seed, stream = jnp.uint32(c["seed"]), jnp.uint32(c["stream"])
    else:
        seed, stream = c["seed"], c["stream"]
    y, vjp = jax.vjp(lambda x: f(x, seed, stream), jnp.asarray(xn))
    (dx,) = vjp(jnp.asarray(gn))
    ref = dict(seed=c["seed"], stream=c["stream"], **kw)
    assert_bits_equal(np.asarray(y), fastdrop.dropout(xn, c["p"], **ref))
    assert_bits_equal(np.asarray(dx), fastdrop.dropout_backward(gn, c["p"], **ref))
