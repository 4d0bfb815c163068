"""Property test: fastdrop.dask gives fastdrop's result on the whole array, bit for bit,
for any chunking (uneven chunks and empty axes included), dtype, p, bits, noise shape,
seed and stream: the result never depends on how the array is cut."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

da = pytest.importorskip("dask.array")

import fastdrop as fd  # noqa: E402
import fastdrop.dask as fdd  # noqa: E402

from _helpers import FLOAT_DTYPES, assert_bits_equal, make_x  # noqa: E402

U64 = st.integers(0, 2**64 - 1)


@st.composite
def chunked(draw):
    """(shape, chunks): each axis cut into random pieces that sum to its size."""
    shape = tuple(draw(st.lists(st.integers(0, 12), min_size=1, max_size=3)))
    chunks = []
    for n in shape:
        cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=4))) if n > 1 else []
        edges = [0] + cuts + [n]
        chunks.append(tuple(b - a for a, b in zip(edges, edges[1:])) or (0,))
    return shape, tuple(chunks)


@given(chunked(), st.sampled_from(FLOAT_DTYPES),
       st.one_of(st.sampled_from([0.0, 1e-7, 0.5, 1.0]), st.floats(0.0, 1.0)),
       st.sampled_from([8, 16, 32]), U64, U64, st.booleans(), st.integers(0, 2**31))
def test_any_chunking_gives_the_whole_array_result(sc, dtype, p, bits, seed, stream,
                                                   noisy, data):
    shape, chunks = sc
    x = make_x(shape, dtype, seed=data)
    noise = tuple(1 if i % 2 else d for i, d in enumerate(shape)) if noisy else None
    kw = dict(seed=seed, stream=stream, bits=bits, noise_shape=noise)
    X = da.from_array(x, chunks=chunks)
    assert_bits_equal(fdd.dropout(X, p, **kw).compute(scheduler="sync"),
                      fd.dropout(x, p, **kw))
    g = make_x(shape, dtype, seed=data + 1, specials=False)
    assert_bits_equal(fdd.dropout_backward(da.from_array(g, chunks=chunks), p,
                                           **kw).compute(scheduler="sync"),
                      fd.dropout_backward(g, p, **kw))
