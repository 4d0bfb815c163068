"""fastdrop.reference is a true slow twin of fastdrop's public API (as bottleneck's
``slow`` module is of bottleneck): every public kernel has a twin of the same signature,
and the two agree bit for bit on a shared table of argument cases, at every CPU SIMD
level.

The table is built per function name from shared pieces: every float dtype (bfloat16
when ml_dtypes is installed), shapes from 0-d and empty to odd sizes, Fortran-order and
negative-stride views; p in {0, 2**-16, 0.5, 1}; bits 16 and 32; noise_shape; block=
placements; packed and bool masks; both mask formats; out= (in place too).  Results are
compared by their raw bytes (so NaN payloads and -0.0 count), and which argument a result
*is* (x itself at inference, out, grad as dresidual) must match too.
"""
import contextlib
import inspect
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastdrop
from fastdrop import reference as ref
from fastdrop._cpu import _philox
from _helpers import BFLOAT16, FLOAT_DTYPES, make_x

#: fastdrop's public kernels; each must have a twin in fastdrop.reference.
TWINNED = [
    "dropout", "dropout_backward", "dropout_mask", "unpack_mask", "effective_p",
    "dropout_scale", "bias_dropout_add", "bias_dropout_add_backward", "alpha_dropout",
    "alpha_dropout_backward", "gaussian_dropout", "gaussian_dropout_backward",
    "gaussian_sigma", "philox4x32", "random_bits", "uniform", "standard_normal",
]
#: The public names that are not kernels (classes, build and CPU introspection).
NOT_KERNELS = {"Generator", "DropoutCall", "Dropout", "openmp_enabled", "omp_max_threads",
               "get_simd_level", "simd_levels", "__version__"}
LEVELS = fastdrop.simd_levels()

DTYPES = FLOAT_DTYPES  # float16, float32, float64 and bfloat16 when ml_dtypes is there
PS = [0.0, 2.0**-16, 0.5, 1.0]
BITS = [8, 16, 32]
BIG = 2**64 - 1


@contextlib.contextmanager
def simd(level):
    """Run fastdrop at one Philox tile level (portable, avx2, ...), then restore it."""
    previous = _philox.set_simd_level(level)
    try:
        yield
    finally:
        _philox.set_simd_level(previous)


# ---- inputs ------------------------------------------------------------------------------

def _neg(shape, dtype, seed):
    """A negative-stride view (every axis reversed, the last one every other element)."""
    base = make_x(shape[:-1] + (2 * shape[-1],), dtype, seed=seed)
    return base[(slice(None, None, -1),) * (len(shape) - 1) + (slice(None, None, -2),)]


#: (name, factory(dtype, seed) -> array): the layouts of the table.
ARRAYS = [
    ("0d", lambda dt, s: np.asarray(make_x((), dt, seed=s))),  # an array, not a scalar
    ("empty", lambda dt, s: make_x((0,), dt, seed=s)),
    ("3x0", lambda dt, s: make_x((3, 0), dt, seed=s)),
    ("one", lambda dt, s: make_x((1,), dt, seed=s)),
    ("7x13", lambda dt, s: make_x((7, 13), dt, seed=s)),
    ("F7x13", lambda dt, s: np.asfortranarray(make_x((7, 13), dt, seed=s))),
    ("neg5x3x4", lambda dt, s: _neg((5, 3, 4), dt, s)),
]


def _noise_of(shape):
    """A noise shape for `shape`: axis 0 kept (as None when it has several), the others 1."""
    if not shape:
        return ()
    return (None if shape[0] > 1 else shape[0],) + (1,) * (len(shape) - 1)


def _block_of(shape):
    """A placement of an array of `shape` inside a larger global array."""
    gshape = tuple(2 * n + 3 for n in shape)
    origin = tuple(n // 2 + 1 for n in shape)
    return origin, gshape


def _global_noise(gshape):
    """A noise shape of a global array: even axes kept, odd axes 1."""
    return tuple(g if k % 2 == 0 else 1 for k, g in enumerate(gshape))


def _local_noise(shape, noise_shape=None, block=None):
    """The noise shape of an array (of a block of a global array): docs/contract.md."""
    if block is None:
        return tuple(shape) if noise_shape is None else tuple(
            s if d is None else d for d, s in zip(noise_shape, shape))
    gnoise = _global_noise(block[1]) if noise_shape is not None else block[1]
    return tuple(n if gn == g else 1 for n, gn, g in zip(shape, gnoise, block[1]))


def _random_mask(noise, seed, fmt, layout="C"):
    """A random keep mask over `noise`: packed bytes, or bool in a given layout."""
    keep = np.asarray(np.random.default_rng(seed).random(noise) < 0.5)
    if fmt == "packed":
        return np.packbits(keep.ravel(), bitorder="little")
    if layout == "F" and keep.ndim:
        return np.asfortranarray(keep)
    if layout == "neg" and keep.ndim:
        return np.flip(np.flip(keep).copy())
    return keep


# ---- the case table ----------------------------------------------------------------------

class Case:
    """One call: `make()` builds fresh (args, kwargs), so out= arrays and in-place calls
    start from the same state for fastdrop and its twin."""

    def __init__(self, ident, make):
        self.id, self.make = ident, make


CASES = {name: [] for name in TWINNED}


def case(name, ident):
    def register(make):
        CASES[name].append(Case(ident, make))
        return make
    return register


def _dropout_options(x, mode_ok=True):
    """Keyword variants of a forward call (dropout, alpha_dropout) on x."""
    shape = x.shape
    block = _block_of(shape)
    opts = [
        ("plain", {}),
        ("packed", dict(return_mask=True)),
        ("bool", dict(return_mask=True, mask_format="bool")),
        ("inference", dict(training=False)),
        ("inference-mask", dict(training=False, return_mask=True)),
        ("noise", dict(noise_shape=_noise_of(shape), return_mask=True)),
        ("noise-bool", dict(noise_shape=_noise_of(shape), return_mask=True,
                            mask_format="bool")),
        ("out", dict(out=np.full_like(x, 7))),
        ("in-place", dict(out=x)),
        ("block", dict(block=block, return_mask=True)),
        ("block-noise", dict(block=block, noise_shape=_global_noise(block[1]),
                             return_mask=True, mask_format="bool")),
        ("big-seed", dict(seed=BIG, stream=BIG, n_threads=1)),
    ]
    if mode_ok:
        opts += [("classic", dict(mode="classic", return_mask=True)),
                 ("classic-inference", dict(mode="classic", training=False)),
                 ("classic-block", dict(mode="classic", block=block))]
    return opts


def _backward_options(g, seed, mode_ok=True):
    """Keyword variants of a backward call (dropout_backward, alpha_dropout_backward)."""
    shape = g.shape
    block = _block_of(shape)
    gnoise = _global_noise(block[1])
    noise = _noise_of(shape)
    opts = [
        ("packed", dict(mask=_random_mask(shape, seed, "packed"))),
        ("bool", dict(mask=_random_mask(shape, seed, "bool"))),
        ("bool-F", dict(mask=_random_mask(shape, seed, "bool", "F"))),
        ("bool-neg", dict(mask=_random_mask(shape, seed, "bool", "neg"))),
        ("seed", dict(seed=5, stream=9)),
        ("noise-packed", dict(mask=_random_mask(_local_noise(shape, noise), seed, "packed"),
                              noise_shape=noise)),
        ("noise-seed", dict(seed=5, stream=9, noise_shape=noise)),
        ("block-seed", dict(seed=5, stream=9, block=block)),
        ("block-mask", dict(mask=_random_mask(shape, seed, "packed"), block=block)),
        ("block-noise-seed", dict(seed=5, stream=9, block=block, noise_shape=gnoise)),
        ("block-noise-mask", dict(mask=_random_mask(_local_noise(shape, gnoise, block), seed,
                                                    "bool"), block=block, noise_shape=gnoise)),
        ("out", dict(seed=5, out=np.full_like(g, 3))),
        ("in-place", dict(seed=5, out=g)),
    ]
    if mode_ok:
        opts += [("classic-seed", dict(seed=5, stream=9, mode="classic")),
                 ("classic-mask", dict(mask=_random_mask(shape, seed, "bool"),
                                       mode="classic"))]
    return opts


def _register_elementwise():
    """The dropout family over dtype x layout x p x bits x options."""
    for dt, (aname, arr), p, bits in itertools.product(DTYPES, ARRAYS, PS, BITS):
        tag = f"{dt.name}-{aname}-p{p}-b{bits}"
        n_opts = len(_dropout_options(arr(dt, 0)))
        for k in range(n_opts):
            def fwd(dt=dt, arr=arr, p=p, bits=bits, k=k):
                x = arr(dt, 1)
                name, kw = _dropout_options(x)[k]
                return (x, p), dict(dict(seed=11, stream=3, bits=bits), **kw)
            CASES["dropout"].append(Case(f"{tag}-{_dropout_options(arr(dt, 0))[k][0]}", fwd))

            def alpha(dt=dt, arr=arr, p=p, bits=bits, k=k):
                x = arr(dt, 1)
                opts = _dropout_options(x, mode_ok=False)
                if k >= len(opts):
                    return None
                return (x, p), dict(dict(seed=11, stream=3, bits=bits), **opts[k][1])
            CASES["alpha_dropout"].append(Case(f"{tag}-alpha{k}", alpha))

        n_opts = len(_backward_options(arr(dt, 0), 0))
        for k in range(n_opts):
            def bwd(dt=dt, arr=arr, p=p, bits=bits, k=k):
                g = arr(dt, 2)
                name, kw = _backward_options(g, k)[k]
                return (g, p), dict(dict(bits=bits), **kw)
            CASES["dropout_backward"].append(Case(f"{tag}-bwd{k}", bwd))

            def alpha_bwd(dt=dt, arr=arr, p=p, bits=bits, k=k):
                g = arr(dt, 2)
                opts = _backward_options(g, k, mode_ok=False)
                if k >= len(opts):
                    return None
                return (g, p), dict(dict(bits=bits), **opts[k][1])
            CASES["alpha_dropout_backward"].append(Case(f"{tag}-alpha-bwd{k}", alpha_bwd))

        for k, with_bias in itertools.product(range(5), (True, False)):
            def bda(dt=dt, arr=arr, p=p, bits=bits, k=k, with_bias=with_bias):
                x, r = arr(dt, 3), arr(dt, 4)
                if with_bias and x.ndim == 0:
                    return None
                b = make_x(x.shape[-1:], dt, seed=5)[::-1] if with_bias else None
                kw = [dict(), dict(return_mask=True), dict(out=r, return_mask=True),
                      dict(out=x), dict(block=_block_of(x.shape), return_mask=True)][k]
                return (x, b, r, p), dict(dict(seed=6, stream=2, bits=bits), **kw)
            CASES["bias_dropout_add"].append(Case(f"{tag}-bda{k}-bias{with_bias}", bda))

        for k, has_bias in itertools.product(range(4), (True, False)):
            def bda_bwd(dt=dt, arr=arr, p=p, bits=bits, k=k, has_bias=has_bias):
                g = arr(dt, 6)
                if has_bias and g.ndim == 0:
                    return None  # refused: a 0-d grad has no bias axis
                kw = [dict(mask=_random_mask(g.shape, k, "packed")),
                      dict(mask=_random_mask(g.shape, k, "bool", "F")),
                      dict(seed=6, stream=2),
                      dict(seed=6, stream=2, block=_block_of(g.shape))][k]
                return (g, p), dict(dict(bits=bits, has_bias=has_bias), **kw)
            CASES["bias_dropout_add_backward"].append(
                Case(f"{tag}-bda-bwd{k}-bias{has_bias}", bda_bwd))

    for dt, (aname, arr), p in itertools.product(DTYPES, ARRAYS, [0.0, 2.0**-16, 0.5, 0.9]):
        tag = f"{dt.name}-{aname}-p{p}"
        for k in range(6):
            def gauss(dt=dt, arr=arr, p=p, k=k):
                x = arr(dt, 7)
                kw = [dict(), dict(training=False), dict(out=np.full_like(x, 2)),
                      dict(out=x), dict(block=_block_of(x.shape)),
                      dict(seed=BIG, stream=BIG, n_threads=2)][k]
                return (x, p), dict(dict(seed=13, stream=4), **kw)
            CASES["gaussian_dropout"].append(Case(f"{tag}-gauss{k}", gauss))
        for k in range(4):
            def gauss_bwd(dt=dt, arr=arr, p=p, k=k):
                g = arr(dt, 8)
                kw = [dict(), dict(out=np.full_like(g, 2)), dict(out=g),
                      dict(block=_block_of(g.shape))][k]
                return (g, p), dict(dict(seed=13, stream=4), **kw)
            CASES["gaussian_dropout_backward"].append(Case(f"{tag}-gauss-bwd{k}", gauss_bwd))


_register_elementwise()

MASK_SHAPES = [0, 13, (), (3, 0), (7, 13), (2, 3, 5)]

for _shape, _p, _bits in itertools.product(MASK_SHAPES, PS, BITS):
    for _k in range(6):
        def _mask_case(shape=_shape, p=_p, bits=_bits, k=_k):
            dims = (shape,) if isinstance(shape, int) else shape
            kw = [dict(), dict(packed=False), dict(offset=5, stream=3),
                  dict(offset=2**34 + 3, packed=False), dict(block=_block_of(dims)),
                  dict(block=_block_of(dims), packed=False, seed=BIG, stream=BIG)][k]
            return (shape, p), dict(dict(seed=8, bits=bits), **kw)
        CASES["dropout_mask"].append(Case(f"{_shape}-p{_p}-b{_bits}-{_k}", _mask_case))

for _shape in [(), 0, 8, 9, (7, 13), (3, 0), (2, 3, 5)]:
    for _k in range(2):
        def _unpack_case(shape=_shape, k=_k):
            n = int(np.prod(shape))
            packed = np.random.default_rng(n).integers(0, 256, -(-n // 8), dtype=np.uint8)
            return ((packed if k == 0 else packed[::-1]), shape), {}
        CASES["unpack_mask"].append(Case(f"{_shape}-{_k}", _unpack_case))

for _name in ("effective_p", "dropout_scale"):
    for _p, _bits in itertools.product(PS + [0.1, 0.3, 1e-9, 1 - 1e-12], BITS):
        CASES[_name].append(Case(f"p{_p}-b{_bits}", lambda p=_p, b=_bits: ((p, b), {})))
        CASES[_name].append(Case(f"p{_p}-b{_bits}-kw",
                                 lambda p=_p, b=_bits: ((p,), dict(bits=b))))

for _p in [0.0, 2.0**-16, 0.1, 0.5, 0.9, 1 - 2.0**-40]:
    CASES["gaussian_sigma"].append(Case(f"p{_p}", lambda p=_p: ((p,), {})))

for _cs, _ks, _rounds in itertools.product([(4,), (0, 4), (3, 5, 4), (1, 4)],
                                           [(2,), (5, 2), (6, 1, 2)], [0, 1, 7, 10, 16]):
    def _philox_case(cs=_cs, ks=_ks, rounds=_rounds):
        rng = np.random.default_rng(sum(cs) + sum(ks))
        try:
            np.broadcast_shapes(cs[:-1], ks[:-1])
        except ValueError:
            return None
        ctr = rng.integers(0, 2**32, size=cs, dtype=np.uint32)
        key = rng.integers(0, 2**32, size=ks, dtype=np.uint32)
        return (ctr, key, rounds), dict(n_threads=2)
    CASES["philox4x32"].append(Case(f"{_cs}-{_ks}-r{_rounds}", _philox_case))
CASES["philox4x32"].append(Case("strided", lambda: (
    (np.random.default_rng(1).integers(0, 2**32, (40, 8), dtype=np.uint32)[::-3, 2:6],
     [7, 9]), {})))
CASES["philox4x32"].append(Case("lists", lambda: (([1, 2, 3, 4], [5, 6]), {})))

GEN_SHAPES = [(), 0, 1, 13, (7, 13), (3, 0, 2)]
for _shape, _bits, _offset in itertools.product(GEN_SHAPES, BITS, [0, 3, 2**34 + 1, 2**64 - 200]):
    for _k in range(2):
        def _bits_case(shape=_shape, bits=_bits, offset=_offset, k=_k):
            kw = dict(seed=BIG - 7, stream=2**63 + 1, bits=bits, offset=offset)
            if k:
                dims = (shape,) if isinstance(shape, int) else shape
                kw["out"] = np.zeros(dims, {32: np.uint32, 16: np.uint16, 8: np.uint8}[bits])
            return (shape,), kw
        CASES["random_bits"].append(Case(f"{_shape}-b{_bits}-o{_offset}-{_k}", _bits_case))

for _name, _limit in (("uniform", {np.float32: 2**64, np.float64: 2**63}),
                      ("standard_normal", {np.float32: 2**64, np.float64: 2**64})):
    for _shape, _dt, _k in itertools.product(GEN_SHAPES, [np.float32, np.float64], range(4)):
        def _float_case(shape=_shape, dt=_dt, k=_k, limit=_limit):
            offset = [0, 5, 2**34 + 1, limit[dt] - 200][k]
            kw = dict(seed=3, stream=BIG, dtype=dt, offset=offset)
            if k == 1:
                dims = (shape,) if isinstance(shape, int) else shape
                kw["out"] = np.zeros(dims, dt)
            return (shape,), kw
        CASES[_name].append(Case(f"{_shape}-{np.dtype(_dt).name}-{_k}", _float_case))


# ---- comparison ----------------------------------------------------------------------------

def _role(result, args, kwargs):
    """Which argument the result is (not equals: is), or None."""
    for i, a in enumerate(args):
        if result is a:
            return f"arg{i}"
    for k, v in kwargs.items():
        if result is v:
            return k
    return None


def _same_bits(got, exp, where):
    if exp is None:
        assert got is None, f"{where}: expected None, got {type(got).__name__}"
        return
    if isinstance(exp, np.ndarray):
        assert type(got) is np.ndarray, f"{where}: got {type(got).__name__}"
        assert got.dtype == exp.dtype, f"{where}: dtype {got.dtype} != {exp.dtype}"
        assert got.shape == exp.shape, f"{where}: shape {got.shape} != {exp.shape}"
        if got.tobytes() != exp.tobytes():
            u = np.dtype(f"u{exp.dtype.itemsize}")
            gb, eb = (np.frombuffer(a.tobytes(), u) for a in (got, exp))  # C order
            bad = np.flatnonzero(gb != eb)
            i = np.unravel_index(bad[0], exp.shape) if exp.ndim else ()
            raise AssertionError(f"{where}: {bad.size} of {exp.size} elements differ, first "
                                 f"at {i}: {got[i]!r} (0x{gb[bad[0]]:x}) vs {exp[i]!r} "
                                 f"(0x{eb[bad[0]]:x})")
        return
    assert type(got) is type(exp), f"{where}: {type(got).__name__} != {type(exp).__name__}"
    if isinstance(exp, float):
        assert got.hex() == exp.hex(), f"{where}: {got!r} != {exp!r}"
    else:
        assert got == exp, f"{where}: {got!r} != {exp!r}"


_TWIN_RESULTS = {}  # (name, case id) -> the twin's call and result: it has no SIMD level


def _twin(name, c):
    key = (name, c.id)
    if key not in _TWIN_RESULTS:
        t_args, t_kwargs = c.make()
        _TWIN_RESULTS[key] = (getattr(ref, name)(*t_args, **t_kwargs), t_args, t_kwargs)
    return _TWIN_RESULTS[key]


def _compare(name, c, level):
    made = c.make()
    if made is None:  # a combination the function does not take (e.g. a 0-d bias)
        return 0
    args, kwargs = made
    with simd(level):
        got = getattr(fastdrop, name)(*args, **kwargs)
    exp, t_args, t_kwargs = _twin(name, c)
    where = f"{name}[{c.id}]"
    got_t = got if isinstance(got, tuple) else (got,)
    exp_t = exp if isinstance(exp, tuple) else (exp,)
    assert isinstance(got, tuple) == isinstance(exp, tuple) and len(got_t) == len(exp_t), \
        f"{where}: result structure {type(got).__name__} vs {type(exp).__name__}"
    parts = ("dx", "dbias", "dresidual") if name == "bias_dropout_add_backward" else \
        tuple(f"result[{i}]" for i in range(len(got_t)))
    for part, g, e in zip(parts, got_t, exp_t):
        _same_bits(g, e, f"{where} {part}")
        assert _role(g, args, kwargs) == _role(e, t_args, t_kwargs), \
            f"{where} {part}: fastdrop returns {_role(g, args, kwargs)}, the twin " \
            f"{_role(e, t_args, t_kwargs)}"
    # the arguments end in the same state (out= written alike, inputs untouched alike)
    for k, (a, b) in enumerate(zip(list(args) + list(kwargs.values()),
                                   list(t_args) + list(t_kwargs.values()))):
        if isinstance(a, np.ndarray):
            _same_bits(a, b, f"{where} argument {k} after the call")
    return 1


# ---- tests -------------------------------------------------------------------------------

def test_every_public_kernel_has_a_twin():
    """A new public function fails here until it has a twin (or is declared no kernel)."""
    public = set(fastdrop.__all__) - NOT_KERNELS
    assert public == set(TWINNED), (f"without a twin: {sorted(public - set(TWINNED))}; "
                                    f"twinned but not public: {sorted(set(TWINNED) - public)}")
    for name in TWINNED:
        assert callable(getattr(ref, name)), name
        assert name in ref.__all__, name
        assert CASES[name], f"no cases for {name}"


@pytest.mark.parametrize("name", TWINNED)
def test_signatures_are_equal(name):
    def params(f):
        return [(p.name, p.kind, p.default) for p in inspect.signature(f).parameters.values()]
    assert params(getattr(ref, name)) == params(getattr(fastdrop, name))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf * P(keep) = 0
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", TWINNED)
def test_twin_equals_public(name, level):
    ran = sum(_compare(name, c, level) for c in CASES[name])
    assert ran > 0


REFUSED = {
    "no-mask-nor-seed": lambda m, x: m.dropout_backward(x, 0.5),
    "mask-and-seed": lambda m, x: m.dropout_backward(x, 0.5, seed=1,
                                                     mask=np.ones(x.shape, bool)),
    "packed-size": lambda m, x: m.dropout_backward(x, 0.5, mask=np.zeros(3, np.uint8)),
    "bool-shape": lambda m, x: m.alpha_dropout_backward(x, 0.5, mask=np.ones((1, 1), bool)),
    "p": lambda m, x: m.dropout(x, 1.5, seed=1),
    "mode": lambda m, x: m.dropout(x, 0.5, seed=1, mode="sideways"),
    "noise_shape": lambda m, x: m.dropout(x, 0.5, seed=1, noise_shape=(3, 1)),
    "block-does-not-fit": lambda m, x: m.dropout(x, 0.5, seed=1, block=((1, 0), (4, 13))),
    "block-and-offset": lambda m, x: m.dropout_mask((4, 5), 0.5, seed=1, offset=3,
                                                    block=((0, 0), (8, 5))),
    "sigma-p1": lambda m, x: m.gaussian_sigma(1.0),
    "gaussian-p1": lambda m, x: m.gaussian_dropout(x, 1.0, seed=1),
    "bits": lambda m, x: m.effective_p(0.5, bits=12),
    "unpack-size": lambda m, x: m.unpack_mask(np.zeros(2, np.uint8), 3),
}


@pytest.mark.parametrize("call", list(REFUSED.values()), ids=list(REFUSED))
def test_both_refuse(call):
    """A few calls both refuse with ValueError (the twin checks only what it needs)."""
    x = make_x((7, 13), np.float32)
    with pytest.raises(ValueError):
        call(fastdrop, x)
    with pytest.raises(ValueError):
        call(ref, x)


def test_twin_needs_a_seed():
    """The twin is deterministic: seed=None raises where fastdrop would draw one; without
    draws (inference) it is accepted, as in fastdrop."""
    x = make_x((3, 4), np.float32)
    for f in (ref.dropout, ref.alpha_dropout, ref.gaussian_dropout):
        with pytest.raises(ValueError, match="deterministic"):
            f(x, 0.5)
        assert f(x, 0.5, training=False) is x



NAN_CALLS = {
    "dropout": lambda m, a: m.dropout(a, 0.5, seed=1),
    "dropout-p0": lambda m, a: m.dropout(a, 0.0, seed=1),
    "dropout-bits32": lambda m, a: m.dropout(a, 0.1, seed=1, bits=32),
    "classic": lambda m, a: m.dropout(a, 0.3, seed=1, mode="classic"),
    "classic-p0": lambda m, a: m.dropout(a, 0.0, seed=1, mode="classic"),
    "classic-backward": lambda m, a: m.dropout_backward(a, 0.3, seed=1, mode="classic"),
    "alpha": lambda m, a: m.alpha_dropout(a, 0.2, seed=1),
    "alpha-p0": lambda m, a: m.alpha_dropout(a, 0.0, seed=1),
    "gaussian-p0": lambda m, a: m.gaussian_dropout(a, 0.0, seed=1),
    "backward": lambda m, a: m.dropout_backward(a, 0.5, seed=1),
    "bda": lambda m, a: m.bias_dropout_add(a.reshape(-1, 16), a[:16], a.reshape(-1, 16),
                                           0.3, seed=1),
}


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("call", list(NAN_CALLS.values()), ids=list(NAN_CALLS))
def test_every_16_bit_pattern_and_signaling_nans_equal_the_twin(call, level):
    # NaN payloads count: every float16 and bfloat16 bit pattern (signaling and quiet
    # NaNs, both signs), contiguous and strided, and float32/float64 signaling NaNs; a
    # kept element is x * scale in the compute precision (classic and p = 0 too: scale
    # 1), a bfloat16 NaN rounds to ml_dtypes' canonical NaN of its sign
    cases = [np.arange(65536, dtype=np.uint16).view(np.float16)]
    if BFLOAT16 is not None:
        cases.append(np.arange(65536, dtype=np.uint16).view(BFLOAT16))
    for dt, u, pats in [(np.float32, np.uint32, [0x7F800001, 0xFF800001, 0x7FC00001]),
                        (np.float64, np.uint64, [0x7FF0000000000001, 0xFFF0000000000001,
                                                 0x7FF8000000000001])]:
        cases.append(np.resize(np.array(pats + [0], u), 64).view(dt))
    for x in cases:
        for a in (x, np.repeat(x, 2)[::2]):
            with simd(level):
                fast = call(fastdrop, a)
            _same_bits(fast, call(ref, a), f"{x.dtype} {level}")

def test_dbias_is_layout_independent():
    g = make_x((300, 7), np.float64, specials=False)
    c = fastdrop.bias_dropout_add_backward(g, 0.3, seed=4)[1]
    f = fastdrop.bias_dropout_add_backward(np.asfortranarray(g), 0.3, seed=4)[1]
    assert c.tobytes() == ref.bias_dropout_add_backward(g, 0.3, seed=4)[1].tobytes()
    assert f.tobytes() == c.tobytes()


def test_dbias_of_an_empty_last_axis():
    g = np.zeros((3, 0), np.float32)
    dbias = fastdrop.bias_dropout_add_backward(g, 0.5, seed=1)[1]
    assert dbias.shape == (0,) and dbias.dtype == np.float32
    _same_bits(dbias, ref.bias_dropout_add_backward(g, 0.5, seed=1)[1], "dbias")


# ---- property: dropout and its backward on random blocks ------------------------------

def _placement(data, gshape):
    origin, shape = [], []
    for g in gshape:
        o = data.draw(st.integers(0, g))
        origin.append(o)
        shape.append(data.draw(st.integers(0, g - o)))
    return tuple(origin), tuple(shape)


@pytest.mark.parametrize("level", LEVELS)
@given(data=st.data(), dtype=st.sampled_from(DTYPES), bits=st.sampled_from(BITS),
       mode=st.sampled_from(["inverted", "classic"]), fmt=st.sampled_from(["packed", "bool"]),
       p=st.one_of(st.sampled_from(PS), st.floats(0, 1)),
       seed=st.integers(0, BIG), stream=st.integers(0, BIG), placed=st.booleans())
def test_property_dropout_blocks(level, data, dtype, bits, mode, fmt, p, seed, stream,
                                 placed):
    """fastdrop and its twin agree on random shapes, p, seeds, noise shapes and blocks;
    and the twin's block is the block of the twin's whole array (block= checked on its
    own, not only against fastdrop)."""
    gshape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7))
    noise = data.draw(st.one_of(st.none(), st.tuples(
        *[st.sampled_from([g, 1, None]) for g in gshape])))
    xg = make_x(gshape, dtype, seed=data.draw(st.integers(0, 99)))
    origin, shape = _placement(data, gshape) if placed else ((0,) * len(gshape), gshape)
    sl = tuple(slice(o, o + n) for o, n in zip(origin, shape)) + (Ellipsis,)
    x = xg[sl]  # a strided view of the global array (0-d: the array itself)
    block = (origin, gshape) if placed else None
    kw = dict(seed=seed, stream=stream, mode=mode, noise_shape=noise, bits=bits, block=block)
    with simd(level):
        got = fastdrop.dropout(x, p, return_mask=True, mask_format=fmt, **kw)
    exp = ref.dropout(x, p, return_mask=True, mask_format=fmt, **kw)
    for g, e, part in zip(got, exp, ("y", "mask")):
        _same_bits(g, e, part)

    whole_kw = dict(kw, block=None)
    wy, wkeep = ref.dropout(xg, p, return_mask=True, mask_format="bool", **whole_kw)
    _same_bits(exp[0], wy[sl], "block of the whole y")
    gnoise = gshape if noise is None else tuple(g if d is None else d
                                                for d, g in zip(noise, gshape))
    # the block's part of the global noise: its own slice where the noise has the global
    # length (a global axis of length 1 included), the one noise element where it
    # broadcasts (docs/contract.md section 9)
    nsl = tuple(s if gn == g else slice(0, 1) for gn, g, s in zip(gnoise, gshape, sl)) + (
        Ellipsis,)
    keep = exp[1] if fmt == "bool" else ref.unpack_mask(exp[1], wkeep[nsl].shape)
    _same_bits(keep, wkeep[nsl], "block of the whole mask")

    grad = make_x(shape, dtype, seed=7)
    bkw = dict(mode=mode, noise_shape=noise, bits=bits, block=block)
    for source in (dict(mask=got[1]), dict(mask=keep), dict(seed=seed, stream=stream)):
        with simd(level):
            gb = fastdrop.dropout_backward(grad, p, **source, **bkw)
        eb = ref.dropout_backward(grad, p, **source, **bkw)
        _same_bits(gb, eb, f"backward from {sorted(source)}")


@pytest.mark.parametrize("kind", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                  np.int64, np.uint64])
def test_numpy_integer_seeds_and_streams(kind):
    # every call fastdrop takes, the twin takes: NumPy scalars of any integer width
    x = make_x((5, 3), np.float32)
    for kw in (dict(seed=kind(5), stream=0), dict(seed=7, stream=kind(5))):
        _same_bits(fastdrop.random_bits(6, **kw), ref.random_bits(6, **kw), str(kw))
        _same_bits(fastdrop.dropout(x, 0.5, **kw), ref.dropout(x, 0.5, **kw), str(kw))
