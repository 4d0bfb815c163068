"""Shared test helpers: bit-exact comparison, array layouts, threads."""
import threading

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


_SHIMS = []


def shims():
    """tests/_shims.pyx, compiled on first use into tests/.shims_build (cached until the
    .pyx or a C header changes) with fastdrop's own flags; skips without Cython or a C
    compiler."""
    if _SHIMS:
        return _SHIMS[0]
    import importlib.util
    import os
    import pathlib
    import sys

    import pytest

    here = pathlib.Path(__file__).resolve().parent
    src = here.parent / "fastdrop" / "_cpu" / "src"
    build = here / ".shims_build"
    pyx = here / "_shims.pyx"
    inputs = [pyx, *src.glob("*.h")]
    stamp = str(max(p.stat().st_mtime_ns for p in inputs))
    built = sorted(build.glob("_shims*.so")) + sorted(build.glob("_shims*.pyd"))
    if not (built and (build / "stamp").exists() and (build / "stamp").read_text() == stamp):
        try:
            from Cython.Build import cythonize
            from setuptools import Distribution, Extension
        except ImportError:
            pytest.skip("the test shims need Cython (pip install cython)")
        build.mkdir(exist_ok=True)
        ext = Extension("_shims", [str(pyx)], include_dirs=[str(src)],
                        extra_compile_args=["-O2", "-ffp-contract=off", "-fno-strict-aliasing",
                                            "-Wno-unused-function"])
        dist = Distribution({"ext_modules": cythonize([ext], build_dir=str(build), quiet=True,
                                                      compiler_directives={"language_level": "3"})})
        cmd = dist.get_command_obj("build_ext")
        cmd.build_lib, cmd.build_temp = str(build), str(build / "tmp")
        cmd.ensure_finalized()
        cwd = os.getcwd()
        try:
            os.chdir(build)
            cmd.run()
        except Exception as exc:  # no compiler
            pytest.skip(f"the test shims could not be built: {exc}")
        finally:
            os.chdir(cwd)
        (build / "stamp").write_text(stamp)
        built = sorted(build.glob("_shims*.so")) + sorted(build.glob("_shims*.pyd"))
    spec = importlib.util.spec_from_file_location("_shims", built[0])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules.setdefault("_shims", mod)
    _SHIMS.append(mod)
    return mod


def kat_vectors(generator: str = "philox4x32", rounds: int = 10):
    """(counter, key, expected) word lists of tests/data/kat_vectors.txt (Random123's
    format), for `generator` with `rounds` rounds."""
    import pathlib

    path = pathlib.Path(__file__).resolve().parent / "data" / "kat_vectors.txt"
    rows = []
    for line in path.read_text().splitlines():
        f = line.split()
        if not f or f[0].startswith("#") or f[0] != generator or int(f[1]) != rounds:
            continue
        w = [int(v, 16) for v in f[2:]]
        rows.append((w[0:4], w[4:6], w[6:10]))
    assert rows, f"no {generator}-{rounds} vectors in {path}"
    return rows


class GpuAllocationCount:
    """Counts the GPU backend's allocation and copy calls (Numba's device_array,
    device_array_like and to_device, and `fastdrop._cuda._memory.allocate`) for the time
    of a test: ``count = GpuAllocationCount(monkeypatch)``, then ``count.calls``."""

    NAMES = ("device_array", "device_array_like", "to_device")

    def __init__(self, monkeypatch):
        from fastdrop._cuda import _env, _memory, backend
        self.calls = []
        for name in self.NAMES:
            self._wrap(monkeypatch, _env.cuda, name)
        self._wrap(monkeypatch, _memory, "allocate")
        monkeypatch.setattr(backend, "allocate", _memory.allocate)

    def _wrap(self, monkeypatch, owner, name):
        real = getattr(owner, name)

        def counted(*args, **kwargs):
            self.calls.append(name)
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)


def in_threads(work, n=4):
    """Run `work()` in n threads at once; the lists they return, concatenated."""
    results = [None] * n

    def run(i):
        results[i] = work()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [v for r in results for v in r]
