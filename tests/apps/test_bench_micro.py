"""pytest-benchmark micro-benchmarks of every public kernel, each also a correctness test:
the timed call's result is checked against fastdrop.reference (bit for bit) or an invariant.

Small arrays and `benchmark.pedantic(rounds=3, iterations=1)`, so the file is fast both
under a plain `python -m pytest` (pytest-benchmark times them) and with
`--benchmark-disable` (each function runs once). For real figures use asv or
`python -m fastdrop bench` (docs/benchmarks.md).

    python -m pytest tests/apps/test_bench_micro.py --benchmark-only   # timings table
"""
import numpy as np
import pytest

import fastdrop
from fastdrop import reference as ref

from _helpers import BFLOAT16, assert_bits_equal, make_x

N = 4096
P = 0.25
SEED = 20261121
DTYPES = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)] + (
    [BFLOAT16] if BFLOAT16 is not None else [])
DTYPE_IDS = [d.name for d in DTYPES]


def timed(benchmark, fn, *args, **kwargs):
    """Run fn under pytest-benchmark with a fixed, small budget; return its result."""
    return benchmark.pedantic(fn, args=args, kwargs=kwargs, rounds=3, iterations=1,
                              warmup_rounds=1)


@pytest.mark.parametrize("bits", [16, 32])
def test_bench_random_bits(benchmark, bits):
    out = timed(benchmark, fastdrop.random_bits, N, seed=SEED, stream=3, bits=bits)
    np.testing.assert_array_equal(out, ref.random_bits(N, seed=SEED, stream=3, bits=bits))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bench_uniform(benchmark, dtype):
    out = timed(benchmark, fastdrop.uniform, N, seed=SEED, stream=3, dtype=dtype)
    np.testing.assert_array_equal(out, ref.uniform(N, seed=SEED, stream=3, dtype=dtype))


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "bool"])
def test_bench_dropout_mask(benchmark, packed):
    m = timed(benchmark, fastdrop.dropout_mask, (64, 64), P, seed=SEED, packed=packed)
    keep = ref.keep_mask((64, 64), P, SEED)
    np.testing.assert_array_equal(m, ref.pack_mask(keep) if packed else keep)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_bench_dropout_forward_mask(benchmark, dtype):
    x = make_x((64, 64), dtype)
    y, mask = timed(benchmark, fastdrop.dropout, x, P, seed=SEED, return_mask=True)
    ey, keep = ref.dropout(x, P, seed=SEED, return_mask=True, mask_format="bool")
    assert_bits_equal(y, ey)
    np.testing.assert_array_equal(mask, ref.pack_mask(keep))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_bench_dropout_forward_nomask(benchmark, dtype):
    x = make_x((64, 64), dtype)
    out = np.empty_like(x)
    y = timed(benchmark, fastdrop.dropout, x, P, seed=SEED, out=out)
    assert y is out
    assert_bits_equal(y, ref.dropout(x, P, seed=SEED))


@pytest.mark.parametrize("source", ["mask", "seed"])
def test_bench_dropout_backward(benchmark, source):
    g = make_x((64, 64), np.float32, seed=5)
    x = make_x((64, 64), np.float32)
    _, mask = fastdrop.dropout(x, P, seed=SEED, stream=4, return_mask=True)
    kw = {"mask": mask} if source == "mask" else {"seed": SEED, "stream": 4}
    dx = timed(benchmark, fastdrop.dropout_backward, g, P, **kw)
    keep = ref.keep_mask((64, 64), P, SEED, 4)
    assert_bits_equal(dx, ref.dropout_backward(g, P, mask=keep))


def test_bench_bias_dropout_add(benchmark):
    x = make_x((32, 128), np.float32)
    b = make_x((128,), np.float32, seed=2, specials=False)
    r = make_x((32, 128), np.float32, seed=3)
    y = timed(benchmark, fastdrop.bias_dropout_add, x, b, r, P, seed=SEED)
    assert_bits_equal(y, ref.bias_dropout_add(x, b, r, P, seed=SEED))


def test_bench_alpha_dropout(benchmark):
    x = make_x((64, 64), np.float32)
    y = timed(benchmark, fastdrop.alpha_dropout, x, P, seed=SEED)
    assert_bits_equal(y, ref.alpha_dropout(x, P, seed=SEED))


@pytest.mark.skipif(not hasattr(fastdrop, "gaussian_dropout")
                    or not hasattr(ref, "gaussian_dropout"),
                    reason="gaussian_dropout is not in this fastdrop yet")
def test_bench_gaussian_dropout(benchmark):
    x = make_x((64, 64), np.float32)
    y = timed(benchmark, fastdrop.gaussian_dropout, x, P, seed=SEED)
    assert_bits_equal(y, ref.gaussian_dropout(x, P, seed=SEED))


def test_bench_memory_limit_baseline(benchmark):
    """The memory-bound reference of the suite (np.multiply into a preallocated y)."""
    x = make_x(N, np.float32, specials=False)
    y = np.empty_like(x)
    timed(benchmark, np.multiply, x, 2.0, out=y)
    np.testing.assert_array_equal(y, x * 2)


def test_bench_numpy_naive_baseline(benchmark):
    """NumPy's naive dropout keeps about 1 - p of the elements, scaled by 1 / (1 - p)."""
    x = np.ones(N, np.float32)
    rng = np.random.default_rng(0)
    y = timed(benchmark, lambda: x * (rng.random(x.shape) >= P) / (1 - P))
    assert set(np.unique(y).tolist()) <= {0.0, np.float32(1 / (1 - P))}
    assert abs((y > 0).mean() - (1 - P)) < 0.05
