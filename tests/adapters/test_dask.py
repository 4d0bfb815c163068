"""fastdrop.dask: chunk by chunk, equal bit for bit to fastdrop on the computed array, for
any chunking and under the threaded, processes and distributed schedulers."""
import numpy as np
import pytest

da = pytest.importorskip("dask.array")
import dask  # noqa: E402

import fastdrop as fd  # noqa: E402
import fastdrop.dask as fdd  # noqa: E402
from _helpers import assert_bits_equal, make_x  # noqa: E402

SHAPE = (10, 12, 14)
# Four or more chunkings of a 3-D array: one chunk, regular, uneven, single-element slabs.
CHUNKINGS = [SHAPE, (3, 5, 7), ((1, 9), (5, 7), (2, 2, 10)), (4, 12, 3), (10, 1, 14),
             ((5, 5), (11, 1), (13, 1))]


@pytest.fixture(scope="module")
def x():
    return make_x(SHAPE, np.float32, seed=1)


@pytest.mark.parametrize("chunks", CHUNKINGS, ids=str)
@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_dropout_chunk_invariance(x, chunks, scheduler):
    X = da.from_array(x, chunks=chunks)
    expected = fd.dropout(x, 0.4, seed=5, stream=2)
    assert_bits_equal(fdd.dropout(X, 0.4, seed=5, stream=2).compute(scheduler=scheduler),
                      expected)
    # rechunking the lazy result changes nothing either
    y = fdd.dropout(X, 0.4, seed=5, stream=2).rechunk((7, 7, 7))
    assert_bits_equal(y.compute(scheduler=scheduler), expected)


@pytest.mark.parametrize("chunks", CHUNKINGS[1:4], ids=str)
@pytest.mark.parametrize("noise", [(10, 1, 14), (1, 12, 1), (10, 12, 1)], ids=str)
def test_noise_shape_masks_and_backward(x, chunks, noise):
    X = da.from_array(x, chunks=chunks)
    y, mask = fdd.dropout(X, 0.5, seed=7, stream=1, noise_shape=noise, return_mask=True)
    y, mask = dask.compute(y, mask)
    ey, emask = fd.dropout(x, 0.5, seed=7, stream=1, noise_shape=noise, return_mask=True,
                           mask_format="bool")
    assert_bits_equal(y, ey)
    np.testing.assert_array_equal(mask, emask)
    g = make_x(SHAPE, np.float32, seed=2)
    G = da.from_array(g, chunks=chunks)
    expected = fd.dropout_backward(g, 0.5, mask=emask, noise_shape=noise)
    assert_bits_equal(fdd.dropout_backward(G, 0.5, seed=7, stream=1,
                                           noise_shape=noise).compute(), expected)
    assert_bits_equal(fdd.dropout_backward(G, 0.5, mask=da.from_array(emask, chunks=3),
                                           noise_shape=noise).compute(), expected)


@pytest.mark.parametrize("chunks", CHUNKINGS[1:3], ids=str)
def test_variants(x, chunks):
    X = da.from_array(x, chunks=chunks)
    cases = [
        (fdd.alpha_dropout(X, 0.3, seed=2, noise_shape=(10, 1, 1)),
         fd.alpha_dropout(x, 0.3, seed=2, noise_shape=(10, 1, 1))),
        (fdd.alpha_dropout_backward(X, 0.3, seed=2), fd.alpha_dropout_backward(x, 0.3, seed=2)),
        (fdd.gaussian_dropout(X, 0.2, seed=4, stream=9),
         fd.gaussian_dropout(x, 0.2, seed=4, stream=9)),
        (fdd.gaussian_dropout_backward(X, 0.2, seed=4, stream=9),
         fd.gaussian_dropout_backward(x, 0.2, seed=4, stream=9)),
        (fdd.dropout(X, 0.3, seed=1, mode="classic", bits=32),
         fd.dropout(x, 0.3, seed=1, mode="classic", bits=32)),
        (fdd.dropout_mask(SHAPE, 0.3, seed=1, chunks=chunks),
         fd.dropout_mask(SHAPE, 0.3, seed=1, packed=False)),
    ]
    for got, expected in cases:
        assert_bits_equal(got.compute(), expected)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_bias_dropout_add(dtype):
    x = make_x(SHAPE, dtype, seed=3)
    r = make_x(SHAPE, dtype, seed=4)
    b = make_x((14,), dtype, seed=5)
    X, R = da.from_array(x, chunks=(3, 5, 4)), da.from_array(r, chunks=(5, 4, 7))
    assert_bits_equal(fdd.bias_dropout_add(X, b, R, 0.3, seed=6).compute(),
                      fd.bias_dropout_add(x, b, r, 0.3, seed=6))
    assert_bits_equal(fdd.bias_dropout_add(X, da.from_array(b, chunks=5), R, 0.3,
                                           seed=6).compute(),
                      fd.bias_dropout_add(x, b, r, 0.3, seed=6))
    assert_bits_equal(fdd.bias_dropout_add(X, None, R, 0.3, seed=6).compute(),
                      fd.bias_dropout_add(x, None, r, 0.3, seed=6))
    dx, db, dr = dask.compute(*fdd.bias_dropout_add_backward(R, 0.3, seed=6))
    ex, eb, er = fd.bias_dropout_add_backward(r, 0.3, seed=6)
    assert_bits_equal(dx, ex)
    assert_bits_equal(dr, er)
    assert_bits_equal(db, eb)   # the contract's order: bit-identical


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape,chunkings", [
    ((4000, 7), [(100, 7), (333, 3), (4000, 1), (1, 7), (4000, 7)]),
    ((6, 50, 5), [(1, 7, 2), (4, 50, 5), (6, 1, 1)]),
    ((900, 1), [(100, 1), (900, 1)]),   # a single column: NumPy's pairwise sum
    ((9,), [(2,), (9,)]),               # one row
    ((0, 4), [(0, 2)]),
])
def test_dbias_is_bit_identical_whatever_the_chunking(dtype, shape, chunkings):
    # the rows in C order, added one after the other from +0.0 in float64 (a chain of one
    # task per chunk of rows), as every backend sums them (docs/contract.md section 7)
    g = make_x(shape, dtype, seed=11, specials=False)
    want = fd.bias_dropout_add_backward(g, 0.3, seed=2, stream=5)[1]
    for chunks in chunkings:
        db = fdd.bias_dropout_add_backward(da.from_array(g, chunks=chunks), 0.3, seed=2,
                                           stream=5)[1]
        assert db.shape == want.shape
        assert_bits_equal(db.compute(), want)


def test_processes_scheduler(x):
    X = da.from_array(x, chunks=(4, 5, 6))
    y = fdd.dropout(X, 0.4, seed=5, stream=2, noise_shape=(10, 12, 1))
    assert_bits_equal(y.compute(scheduler="processes", num_workers=2),
                      fd.dropout(x, 0.4, seed=5, stream=2, noise_shape=(10, 12, 1)))


def test_distributed_local_cluster(x):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        for chunks in CHUNKINGS[1:5]:
            X = da.from_array(x, chunks=chunks)
            y = client.compute(fdd.dropout(X, 0.6, seed=8, stream=3)).result()
            assert_bits_equal(y, fd.dropout(x, 0.6, seed=8, stream=3))


def test_seed_none_is_drawn_once_for_all_chunks(x, monkeypatch):
    drawn = []

    def randbits(k):
        drawn.append(k)
        return 1234567 + len(drawn)

    monkeypatch.setattr(fdd.secrets, "randbits", randbits)
    y = fdd.dropout(da.from_array(x, chunks=(2, 3, 4)), 0.5)
    assert drawn == [64]
    assert_bits_equal(y.compute(), fd.dropout(x, 0.5, seed=1234568))
    assert drawn == [64]  # computing draws nothing more


def test_bad_input_fails_at_graph_build(x):
    X = da.from_array(x, chunks=5)
    with pytest.raises(TypeError, match="x"):
        fdd.dropout(x, 0.5, seed=1)
    with pytest.raises(ValueError, match="p"):
        fdd.dropout(X, 1.5, seed=1)
    with pytest.raises(ValueError, match="noise_shape"):
        fdd.dropout(X, 0.5, seed=1, noise_shape=(3, 1, 1))
    with pytest.raises(ValueError, match="mask or seed"):
        fdd.dropout_backward(X, 0.5)
    with pytest.raises(ValueError, match="mask"):
        fdd.dropout_backward(X, 0.5, mask=np.ones((10, 12, 1), np.uint8))
    with pytest.raises(TypeError, match="x"):
        fdd.dropout(da.from_array(np.arange(10), chunks=5), 0.5, seed=1)
    with pytest.raises(ValueError, match="residual"):
        fdd.bias_dropout_add(X, None, X[:5], 0.5, seed=1)
    with pytest.raises(ValueError, match="p"):
        fdd.gaussian_dropout(X, 1.0, seed=1)
    # checked as the NumPy API checks them, when the graph is built
    X32 = da.ones((4, 6), chunks=2, dtype=np.float32)
    with pytest.raises(TypeError, match="residual must have x's dtype float32"):
        fdd.bias_dropout_add(X32, None, da.zeros((4, 6), chunks=2), 0.5, seed=1)
    with pytest.raises(TypeError, match="bias"):
        fdd.bias_dropout_add(X32, [0.0] * 6, X32, 0.5, seed=1)
    with pytest.raises(TypeError, match="return_mask must be a bool"):
        fdd.dropout(X32, 0.5, seed=1, return_mask=1)


def test_a_mask_graph_computes_nothing_when_built(monkeypatch):
    calls = []
    real = fd.functional.dropout_mask

    def spy(shape, *a, **k):
        calls.append(tuple(shape))
        return real(shape, *a, **k)

    monkeypatch.setattr(fdd._f, "dropout_mask", spy)
    X = da.ones((2000, 2000), chunks=500, dtype=np.float32)
    m = fdd.dropout_mask((2000, 2000), 0.5, seed=1, chunks=500)
    y, m2 = fdd.dropout(X, 0.5, seed=1, return_mask=True)
    assert calls == [(1, 1), (1, 1)]   # the checks' stand-ins only
    with pytest.raises(ValueError, match="p"):
        fdd.dropout_mask((2000, 2000), 1.5, seed=1)
    part = m[:3, :5].compute()
    np.testing.assert_array_equal(part, fd.dropout_mask((2000, 2000), 0.5, seed=1,
                                                        packed=False)[:3, :5])
