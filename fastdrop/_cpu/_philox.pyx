# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Kernels of the random generator: Philox blocks, stream draws, uniform floats.

Private: the public, validating wrappers are in fastdrop/rng.py.  Every function
here trusts its arguments (dtypes, shapes, ranges are checked in Python).

Work is split into chunks of whole tiles (FD_TILE_BLOCKS blocks, aligned to the
stream's global block index), and chunks are spread over OpenMP threads.  Each
element's value depends only on its global index, so the split never changes a result.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy
from cpython.exc cimport PyErr_CheckSignals
from cython.parallel cimport prange

cdef extern from "philox.h" nogil:
    enum: FD_SIMD_PORTABLE
    enum: FD_SIMD_AVX2
    enum: FD_SIMD_AVX512
    enum: FD_HAVE_AVX2_KERNEL
    enum: FD_LITTLE_ENDIAN
    void fd_philox4x32_R(int rounds, const uint32_t* ctr, const uint32_t* key,
                         uint32_t* out)
    void fd_philox_tile_at(int level, uint64_t seed, uint64_t stream, uint64_t block0,
                           uint32_t* out)
    int fd_simd_best()
    void fd_copy_draws16(const uint32_t* words, size_t first, size_t n, uint16_t* dst)
    void fd_copy_draws8(const uint32_t* words, size_t first, size_t n, uint8_t* dst)
    void fd_widen8(const uint8_t* src, size_t n, uint16_t* dst)

# Tiles per chunk: a chunk is the unit of work handed to a thread (16 KiB of words).
cdef enum:
    TILES_PER_CHUNK = 32
    SIGNAL_CHUNKS = 1024  # chunks between two looks at pending signals (2^22+ words)

_LEVEL_NAMES = {FD_SIMD_PORTABLE: "portable", FD_SIMD_AVX2: "avx2", FD_SIMD_AVX512: "avx512"}
cdef int _best_level = fd_simd_best()
cdef int _level = _best_level


def simd_levels():
    """The Philox kernel levels this build and this CPU can run, best last.

    Returns
    -------
    list of str
        A subset of ``["portable", "avx2", "avx512"]``; the best is the default
        ("avx512": AVX-512 F, BW and VL, for the Philox tile).

    Examples
    --------
    >>> import fastdrop
    >>> fastdrop.simd_levels()[0]
    'portable'
    """
    return [name for lvl, name in sorted(_LEVEL_NAMES.items()) if lvl <= _best_level]


def get_simd_level():
    """Name of the Philox tile kernel in use (results never depend on it).

    Returns
    -------
    str
        "avx512", "avx2" or "portable".

    Examples
    --------
    >>> import fastdrop
    >>> fastdrop.get_simd_level() in fastdrop.simd_levels()
    True
    """
    return _LEVEL_NAMES[_level]


def set_simd_level(name):
    """Select the Philox tile kernel; returns the previous name.  For tests/benchmarks."""
    global _level
    cdef int lvl
    for lvl, lvl_name in _LEVEL_NAMES.items():
        if lvl_name == name:
            if lvl > _best_level:
                raise ValueError(f"simd level {name!r} is not available on this machine")
            previous = _LEVEL_NAMES[_level]
            _level = lvl
            return previous
    raise ValueError(f"unknown simd level {name!r}; expected one of {list(_LEVEL_NAMES.values())}")


cdef int simd_level() noexcept nogil:
    """The Philox tile level in use (FD_SIMD_PORTABLE, FD_SIMD_AVX2 or FD_SIMD_AVX512): the
    dropout driver takes its AVX2 fused path at FD_SIMD_AVX2 and its AVX-512 rows (float32,
    float64) at FD_SIMD_AVX512, so set_simd_level covers them all."""
    return _level


cdef void philox_tile(uint64_t seed, uint64_t stream, uint64_t block0,
                      uint32_t* out) noexcept nogil:
    """FD_TILE_BLOCKS blocks from block0, 4*FD_TILE_BLOCKS words in stream order."""
    fd_philox_tile_at(_level, seed, stream, block0, out)


cdef inline int _n_workers(uint64_t n_chunks, int n_threads) noexcept nogil:
    if n_chunks < <uint64_t>n_threads:
        return <int>n_chunks if n_chunks > 0 else 1
    return n_threads


def philox4x32(const uint32_t[:, ::1] ctr, const uint32_t[:, :] key, uint32_t[:, ::1] out,
               int rounds, int n_threads):
    """out[i] = Philox4x32-rounds(ctr[i], key[i]) for every row i."""
    cdef Py_ssize_t i, n = ctr.shape[0]
    if n == 0:
        return
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=_n_workers(<uint64_t>(n // 4096 + 1), n_threads)):
        _philox_row(rounds, &ctr[i, 0], key[i, 0], key[i, 1], &out[i, 0])


cdef inline void _philox_row(int rounds, const uint32_t* ctr, uint32_t k0, uint32_t k1,
                             uint32_t* out) noexcept nogil:
    cdef uint32_t key[2]
    key[0] = k0
    key[1] = k1
    fd_philox4x32_R(rounds, ctr, key, out)


cdef inline void _tile_span(uint64_t t, uint64_t per_tile, uint64_t g0, uint64_t glast,
                            uint64_t* lo, uint64_t* hi) noexcept nogil:
    """Elements of tile t inside [g0, glast], relative to the tile's first element.

    Inclusive last index so that a range ending at 2^64 - 1 never overflows."""
    cdef uint64_t start = t * per_tile
    lo[0] = g0 - start if g0 > start else 0
    hi[0] = (glast - start if glast - start < per_tile - 1 else per_tile - 1) + 1


cdef void _draws_chunk(uint64_t seed, uint64_t stream, int bits, uint64_t g0,
                       uint64_t glast, uint64_t ta, uint64_t tb, char* out) noexcept nogil:
    """Tiles ta..tb-1 of draws g0..glast; out holds draw g0."""
    cdef uint64_t per_tile = FD_TILE_WORDS * (32 // bits)
    cdef uint64_t lo, hi, first
    _tile_span(ta, per_tile, g0, glast, &lo, &hi)
    first = ta * per_tile + lo
    _tile_span(tb - 1, per_tile, g0, glast, &lo, &hi)
    cdef size_t n = (tb - 1) * per_tile + hi - first
    if bits == 32:
        draws_u32(seed, stream, first, n, <uint32_t*>out + (first - g0))
    elif bits == 16:
        draws_u16(seed, stream, first, n, <uint16_t*>out + (first - g0))
    else:
        draws_u8(seed, stream, first, n, <uint8_t*>out + (first - g0))


cdef inline void _draws_of_width(uint64_t seed, uint64_t stream, uint64_t first, size_t n,
                                 char* dst, int width) noexcept nogil:
    """Draws first .. first+n-1 (first + n <= 2^64) of `width` bytes (4, 2 or 1: bits 32,
    16, 8) into dst; whole tiles at a 4-byte-aligned place are generated in place (the
    word buffer's bytes are the draw order on little-endian machines; words always)."""
    cdef uint32_t buf[FD_TILE_WORDS]
    cdef uint64_t per_tile = FD_TILE_WORDS * (4 // width)
    cdef uint64_t t, lo, hi, glast
    cdef char* p
    if n == 0:
        return
    glast = first + (n - 1)
    for t in range(first // per_tile, glast // per_tile + 1):
        _tile_span(t, per_tile, first, glast, &lo, &hi)
        p = dst + (t * per_tile + lo - first) * <uint64_t>width
        if ((width == 4 or FD_LITTLE_ENDIAN) and lo == 0 and hi == per_tile
                and (<size_t>p) % 4 == 0):
            philox_tile(seed, stream, t * FD_TILE_BLOCKS, <uint32_t*>p)
        else:
            philox_tile(seed, stream, t * FD_TILE_BLOCKS, buf)
            if width == 4:
                memcpy(p, &buf[lo], (hi - lo) * 4)
            elif width == 2:
                fd_copy_draws16(buf, lo, hi - lo, <uint16_t*>p)
            else:
                fd_copy_draws8(buf, lo, hi - lo, <uint8_t*>p)


cdef void draws_u32(uint64_t seed, uint64_t stream, uint64_t first, size_t n,
                    uint32_t* dst) noexcept nogil:
    """Words first .. first+n-1 (first + n <= 2^64) into dst."""
    _draws_of_width(seed, stream, first, n, <char*>dst, 4)


cdef void draws_u16(uint64_t seed, uint64_t stream, uint64_t first, size_t n,
                    uint16_t* dst) noexcept nogil:
    """16-bit draws first .. first+n-1 (first + n <= 2^64) into dst."""
    _draws_of_width(seed, stream, first, n, <char*>dst, 2)


cdef void draws_u8(uint64_t seed, uint64_t stream, uint64_t first, size_t n,
                   uint8_t* dst) noexcept nogil:
    """8-bit draws first .. first+n-1 (first + n <= 2^64) into dst."""
    _draws_of_width(seed, stream, first, n, <char*>dst, 1)


cdef void draws_u8_wide(uint64_t seed, uint64_t stream, uint64_t first, size_t n,
                        uint16_t* dst) noexcept nogil:
    """8-bit draws first .. first+n-1 widened to uint16 in dst (n <= 4 * FD_TILE_WORDS
    at a time through a stack buffer): the 16-bit compare paths then serve bits = 8."""
    cdef uint8_t buf[4 * FD_TILE_WORDS]
    cdef size_t done = 0, m
    while done < n:
        m = n - done if n - done < 4 * FD_TILE_WORDS else 4 * FD_TILE_WORDS
        draws_u8(seed, stream, first + done, m, buf)
        fd_widen8(buf, m, dst + done)
        done += m


cdef void _uniform32_chunk(uint64_t seed, uint64_t stream, uint64_t g0, uint64_t glast,
                           uint64_t ta, uint64_t tb, float* out) noexcept nogil:
    cdef uint32_t buf[FD_TILE_WORDS]
    cdef uint64_t t, lo, hi, j
    cdef float* dst
    for t in range(ta, tb):
        philox_tile(seed, stream, t * FD_TILE_BLOCKS, buf)
        _tile_span(t, FD_TILE_WORDS, g0, glast, &lo, &hi)
        dst = out + (t * FD_TILE_WORDS - g0)
        for j in range(lo, hi):
            # top 24 bits of the word, times 2^-24: a float32 in [0, 1), exactly
            dst[j] = <float>(<int32_t>(buf[j] >> 8)) * <float>5.9604644775390625e-08


cdef void _uniform64_chunk(uint64_t seed, uint64_t stream, uint64_t g0, uint64_t glast,
                           uint64_t ta, uint64_t tb, double* out) noexcept nogil:
    cdef uint32_t buf[FD_TILE_WORDS]
    cdef uint64_t t, lo, hi, j, u
    cdef uint64_t per_tile = FD_TILE_WORDS // 2
    cdef double* dst
    for t in range(ta, tb):
        philox_tile(seed, stream, t * FD_TILE_BLOCKS, buf)
        _tile_span(t, per_tile, g0, glast, &lo, &hi)
        dst = out + (t * per_tile - g0)
        for j in range(lo, hi):
            # words 2j (low) and 2j+1 (high) make a 64-bit integer; its top 53 bits * 2^-53
            u = ((<uint64_t>buf[2 * j + 1]) << 32) | buf[2 * j]
            dst[j] = <double>(<int64_t>(u >> 11)) * 1.1102230246251565e-16


cdef enum:
    FILL_DRAWS = 0
    FILL_UNIFORM32 = 1
    FILL_UNIFORM64 = 2


cdef int _fill(int kind, uint64_t seed, uint64_t stream, uint64_t offset, int bits,
               uint64_t per_tile, uint64_t n, void* out, int n_threads) except -1:
    """Results offset .. offset+n-1 of a stream (draws or uniform floats, per_tile to a
    tile) into out: chunks of TILES_PER_CHUNK tiles over the threads, with a look at
    pending signals (Ctrl-C) every SIGNAL_CHUNKS chunks."""
    cdef uint64_t glast = offset + (n - 1)
    cdef uint64_t t0 = offset // per_tile
    cdef uint64_t n_tiles = glast // per_tile - t0 + 1
    cdef Py_ssize_t c, c0 = 0, c1
    cdef Py_ssize_t n_chunks = (n_tiles + TILES_PER_CHUNK - 1) // TILES_PER_CHUNK
    cdef uint64_t ta, tb
    cdef int workers = _n_workers(n_chunks, n_threads)
    while c0 < n_chunks:
        c1 = c0 + SIGNAL_CHUNKS if n_chunks - c0 > SIGNAL_CHUNKS else n_chunks
        for c in prange(c0, c1, nogil=True, schedule="static", num_threads=workers):
            ta = t0 + <uint64_t>c * TILES_PER_CHUNK
            tb = ta + TILES_PER_CHUNK
            if tb > t0 + n_tiles:
                tb = t0 + n_tiles
            if kind == FILL_DRAWS:
                _draws_chunk(seed, stream, bits, offset, glast, ta, tb, <char*>out)
            elif kind == FILL_UNIFORM32:
                _uniform32_chunk(seed, stream, offset, glast, ta, tb, <float*>out)
            else:
                _uniform64_chunk(seed, stream, offset, glast, ta, tb, <double*>out)
        c0 = c1
        if c0 < n_chunks:
            PyErr_CheckSignals()
    return 0


def fill_draws(uint64_t seed, uint64_t stream, uint64_t offset, int bits, out, int n_threads):
    """Fill the contiguous uint32 (bits=32), uint16 (bits=16) or uint8 (bits=8) array `out` with draws
    offset, offset+1, ... of the stream."""
    cdef unsigned char[::1] view = out.reshape(-1).view("u1")
    cdef uint64_t n = out.size
    if n == 0:
        return
    _fill(FILL_DRAWS, seed, stream, offset, bits, FD_TILE_WORDS * (32 // bits), n,
          &view[0], n_threads)


def fill_uniform(uint64_t seed, uint64_t stream, uint64_t offset, out, int n_threads):
    """Fill the contiguous float32 or float64 array `out` with uniform [0, 1) floats
    number offset, offset+1, ... of the stream."""
    cdef float[::1] f32
    cdef double[::1] f64
    cdef uint64_t n = out.size
    if n == 0:
        return
    if out.dtype.itemsize == 4:
        f32 = out.reshape(-1)
        _fill(FILL_UNIFORM32, seed, stream, offset, 32, FD_TILE_WORDS, n, &f32[0],
              n_threads)
    else:
        f64 = out.reshape(-1)
        _fill(FILL_UNIFORM64, seed, stream, offset, 32, FD_TILE_WORDS // 2, n, &f64[0],
              n_threads)
