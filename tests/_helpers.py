"""Shared test helpers: bit-exact comparison and array layouts."""
import numpy as np

try:
    import ml_dtypes
    BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # ml_dtypes is a test extra; bfloat16 cases skip without it
    BFLOAT16 = None

FLOAT_DTYPES = [np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)] + (
    [BFLOAT16] if BFLOAT16 is not None else [])
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def assert_bits_equal(got, expected):
    """Same dtype and shape; NaN in the same places; every other element bit for bit
    (so -0.0 and +0.0 differ)."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    gn = np.isnan(got.astype(np.float32) if got.dtype == BFLOAT16 else got)
    en = np.isnan(expected.astype(np.float32) if expected.dtype == BFLOAT16 else expected)
    np.testing.assert_array_equal(gn, en)
    u = _UINT[got.dtype.itemsize]
    gb = np.ascontiguousarray(got).view(u)
    eb = np.ascontiguousarray(expected).view(u)
    bad = (gb != eb) & ~gn
    assert not bad.any(), (f"{bad.sum()} of {bad.size} elements differ, first at "
                           f"{np.argwhere(bad)[0]}: {got[tuple(np.argwhere(bad)[0])]!r} vs "
                           f"{expected[tuple(np.argwhere(bad)[0])]!r}")


def make_x(shape, dtype, seed=0, specials=True):
    """Random normal values in `dtype`, with NaN, +-Inf, -0.0 sprinkled in."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 3
    if specials and x.size >= 8:
        flat = x.reshape(-1)
        flat[rng.integers(0, x.size, 4)] = [np.nan, np.inf, -np.inf, -0.0]
    return x.astype(dtype)


def layouts(x):
    """The same logical array in several memory layouts."""
    out = {"C": x}
    if x.ndim >= 1:
        out["F"] = np.asfortranarray(x)
        flipped = np.flip(x.copy(), axis=0)
        out["negative"] = np.flip(flipped, axis=0)  # same values, negative stride on axis 0
        big = np.zeros(tuple(2 * s for s in x.shape), x.dtype)
        view = big[tuple(slice(None, None, 2) for _ in x.shape)]
        view[...] = x
        out["strided"] = view
    if x.ndim >= 2:
        t = np.ascontiguousarray(np.swapaxes(x, 0, 1))
        out["transposed"] = np.swapaxes(t, 0, 1)
    return out
