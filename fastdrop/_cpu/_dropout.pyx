# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Dropout kernels: one pass over memory, logical C order, any strides.

Private: fastdrop._core.parse validates arguments, fastdrop._cpu.backend prepares the operands (coalesced shape,
byte strides, aligned arrays) and calls `run`.  One driver serves every operation:

- the keep flags of a block of elements come from the Philox draws of their logical
  indices (KS_DRAWS), from a packed mask (KS_PACKED), or from a bool mask operand with
  broadcast strides (KS_FLAGS, used for noise_shape);
- the op turns (x, flags) into y: dropout, bias-dropout-add, alpha dropout, or nothing
  (OP_MASK: only the mask outputs are written);
- or, with no flags, (x, normal deviates of the 32-bit words) into y: gaussian dropout
  (OP_GAUSS) or the deviates themselves (OP_NORMAL).

Work is split into chunks of CHUNK logical elements (a multiple of 8, so each chunk owns
whole bytes of a packed mask) spread over OpenMP threads; inside a chunk, SUB draws at a
time go through a stack buffer and are consumed at once.  No temporary of the input's
size exists.

The common case, a contiguous float32/float64 dropout (or packed mask) with flags from the
draws, takes a fused path when the AVX2 Philox kernel is in use (_chunk_fused,
fd_fused.h): 256 draws at a time, flags kept in vector registers, y and the packed mask
written in one pass (at the avx512 level, float32 and float64 keep the flags in mask
registers, and the backward from a packed mask loads the mask bytes into them).  It
equals the general driver bit for bit; the tests run every level.
"""
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t
from libc.string cimport memcpy, memset
from libc.math cimport floor, fmod
from cython.parallel cimport prange
from cpython.exc cimport PyErr_CheckSignals
from cpython.pycapsule cimport PyCapsule_GetPointer

from fastdrop._cpu._philox cimport draws_u8, draws_u8_wide, draws_u16, draws_u32, simd_level

import numpy as np

cdef extern from "fd_normal.h" nogil:
    void fd_normal_block(const uint32_t* r, double* z, int64_t n)
    void fd_gauss_noise(const uint32_t* r, double* g, int64_t n, double sigma)

cdef extern from "philox.h" nogil:
    enum: FD_SIMD_AVX2
    enum: FD_SIMD_AVX512
    enum: FD_LITTLE_ENDIAN
    int fd_simd_best()

cdef extern from "fd_fused.h" nogil:
    enum: FD_HAVE_FUSED
    void fd_fused_f32(const uint16_t* d16, const uint32_t* d32, int bits, uint32_t t,
                      int none, const float* x, float* y, uint8_t* pk, int64_t m, float s,
                      int stream)
    void fd_fused_f64(const uint16_t* d16, const uint32_t* d32, int bits, uint32_t t,
                      int none, const double* x, double* y, uint8_t* pk, int64_t m, double s,
                      int stream)
    void fd_fused_h16(int bf16, const uint16_t* d16, const uint32_t* d32, int bits,
                      uint32_t t, int none, const uint16_t* x, uint16_t* y, uint8_t* pk,
                      int64_t m, float s, int stream)
    int fd_cpu_has_f16c()
    void fd_fused_f32_avx512(const uint16_t* d16, const uint32_t* d32, int bits, uint32_t t,
                             int none, const float* x, float* y, uint8_t* pk, int64_t m,
                             float s, int stream)
    void fd_fused_f64_avx512(const uint16_t* d16, const uint32_t* d32, int bits, uint32_t t,
                             int none, const double* x, double* y, uint8_t* pk, int64_t m,
                             double s, int stream)
    void fd_packed_f32_avx512(const uint8_t* pk, const float* x, float* y, int64_t m,
                              float s, int stream)
    void fd_packed_f64_avx512(const uint8_t* pk, const double* x, double* y, int64_t m,
                              double s, int stream)
    void fd_packed_f32_avx2(const uint8_t* pk, const float* x, float* y, int64_t m,
                            float s, int stream)
    void fd_packed_h16(int bf16, const uint8_t* pk, const uint16_t* x, uint16_t* y,
                       int64_t m, float s, int stream)
    void fd_packed_f64_avx2(const uint8_t* pk, const double* x, double* y, int64_t m,
                            double s, int stream)
    void fd_fused_bda_f32(const uint16_t* d16, const uint32_t* d32, int bits, uint32_t t,
                          int none, const float* x, const float* b, const float* r, float* y,
                          int64_t m, float s, int stream)
    void fd_fused_bda_f64(const uint16_t* d16, const uint32_t* d32, int bits, uint32_t t,
                          int none, const double* x, const double* b, const double* r,
                          double* y, int64_t m, double s, int stream)

cdef extern from "fd_stream.h" nogil:
    enum: FD_HAVE_STREAM
    void fd_dropout_f32_stream(float* y, const float* x, const uint8_t* kb, int64_t m, float s)
    void fd_dropout_f64_stream(double* y, const double* x, const uint8_t* kb, int64_t m,
                               double s)
    void fd_stream_fence()

# Outputs of at least this many bytes are written with non-temporal stores (well past L2,
# about half an L3): they would not stay in cache anyway.
cdef enum:
    STREAM_MIN_BYTES = 8 * 1024 * 1024

ctypedef fused real_t:
    float
    double
    fd_f16
    fd_bf16

cdef enum:
    SUB = 2048            # elements per draw buffer (a multiple of 8)
    FAST_SUB = 256        # elements per draw buffer of the fused path: one 16-bit tile
    CHUNK = 16 * SUB      # elements per unit of thread work (a multiple of 8)
    SIGNAL_CHUNKS = 256   # chunks between two looks at pending signals (8M elements)
    # The grain: a thread per GRAIN elements at most.  Measured on 2 cores
    # (docs/benchmarks.md, issue 14): with idle threads that sleep (OMP_WAIT_POLICY=PASSIVE)
    # a second thread costs about 80 us of wake-up, more than it saves below 2^17
    # elements (2^16: 114 us on 2 threads against 36 us on one), and on a loaded machine
    # 2^16 on 2 threads was 3-160x slower than on one under every wait policy tried.
    GRAIN = 4 * CHUNK     # 131072 elements

# Op, KeepSource, MAX_DIMS and the Plan struct are declared in _dropout.pxd (shared with
# fastdrop._cpu._xla, the XLA FFI handlers).
DTYPE_CODES = {"float32": 0, "float64": 1, "float16": 2, "bfloat16": 3}
cdef int _HAS_F16C = fd_cpu_has_f16c()
HAS_F16C = bool(_HAS_F16C)  # float16 takes the fused path only with F16C

# ---- per-segment element loops (strides in elements; 1 = contiguous) -------------

cdef inline void _seg_dropout(real_t* y, int64_t sy, const real_t* x, int64_t sx,
                              const uint8_t* kb, int64_t m, double s,
                              bint stream) noexcept nogil:
    """y = x * s where kept, else +0 (s = 1 for classic mode).  Branch-free selects;
    `stream`: non-temporal stores for contiguous, 16-byte aligned runs."""
    cdef int64_t j, m4 = m - m % 4
    cdef float sf = <float>s
    if (real_t is float or real_t is double) and stream and sx == 1 and sy == 1 \
            and (<size_t>y) % 16 == 0:
        if real_t is float:
            fd_dropout_f32_stream(y, x, kb, m4, sf)
            for j in range(m4, m):
                y[j] = fd_keep_f32(x[j] * sf, kb[j])
        else:
            fd_dropout_f64_stream(y, x, kb, m4, s)
            for j in range(m4, m):
                y[j] = fd_keep_f64(x[j] * s, kb[j])
        return
    if real_t is double:
        if sx == 1 and sy == 1:
            for j in range(m):
                y[j] = fd_keep_f64(x[j] * s, kb[j])
        else:
            for j in range(m):
                y[j * sy] = fd_keep_f64(x[j * sx] * s, kb[j])
    elif real_t is float:
        if sx == 1 and sy == 1:
            for j in range(m):
                y[j] = fd_keep_f32(x[j] * sf, kb[j])
        else:
            for j in range(m):
                y[j * sy] = fd_keep_f32(x[j * sx] * sf, kb[j])
    elif real_t is fd_f16:
        for j in range(m):
            y[j * sy] = fd_f32_to_f16(fd_keep_f32(fd_f16_to_f32(x[j * sx]) * sf, kb[j]))
    else:
        for j in range(m):
            y[j * sy] = fd_f32_to_bf16(fd_keep_f32(fd_bf16_to_f32(x[j * sx]) * sf, kb[j]))


cdef inline void _seg_bda(real_t* y, int64_t sy, const real_t* x, int64_t sx,
                          const real_t* b, int64_t sb, const real_t* r, int64_t sr,
                          const uint8_t* kb, int64_t m, double s) noexcept nogil:
    """y = r + ((x + b) * s where kept, else +0); b may be NULL (no bias)."""
    cdef int64_t j
    cdef float sf = <float>s, uf
    cdef double ud
    for j in range(m):
        if real_t is double:
            ud = x[j * sx] + b[j * sb] if b != NULL else x[j * sx]
            y[j * sy] = r[j * sr] + fd_keep_f64(ud * s, kb[j])
        elif real_t is float:
            uf = x[j * sx] + b[j * sb] if b != NULL else x[j * sx]
            y[j * sy] = r[j * sr] + fd_keep_f32(uf * sf, kb[j])
        elif real_t is fd_f16:
            uf = fd_f16_to_f32(x[j * sx])
            if b != NULL:
                uf = uf + fd_f16_to_f32(b[j * sb])
            y[j * sy] = fd_f32_to_f16(fd_f16_to_f32(r[j * sr]) + fd_keep_f32(uf * sf, kb[j]))
        else:
            uf = fd_bf16_to_f32(x[j * sx])
            if b != NULL:
                uf = uf + fd_bf16_to_f32(b[j * sb])
            y[j * sy] = fd_f32_to_bf16(fd_bf16_to_f32(r[j * sr]) + fd_keep_f32(uf * sf, kb[j]))


cdef inline void _seg_alpha(real_t* y, int64_t sy, const real_t* x, int64_t sx,
                            const uint8_t* kb, int64_t m, double a, double c,
                            double d) noexcept nogil:
    """y = x * a + c where kept, else d."""
    cdef int64_t j
    cdef float af = <float>a, cf = <float>c, df = <float>d
    for j in range(m):
        if real_t is double:
            y[j * sy] = fd_select_f64(kb[j], x[j * sx] * a + c, d)
        elif real_t is float:
            y[j * sy] = fd_select_f32(kb[j], x[j * sx] * af + cf, df)
        elif real_t is fd_f16:
            y[j * sy] = fd_f32_to_f16(fd_select_f32(kb[j], fd_f16_to_f32(x[j * sx]) * af + cf, df))
        else:
            y[j * sy] = fd_f32_to_bf16(fd_select_f32(kb[j], fd_bf16_to_f32(x[j * sx]) * af + cf, df))


cdef inline void _seg_gauss(real_t* y, int64_t sy, const real_t* x, int64_t sx,
                            const double* g, int64_t m) noexcept nogil:
    """y = x * g in the compute precision (g rounded to float32 for the other types)."""
    cdef int64_t j
    for j in range(m):
        if real_t is double:
            y[j * sy] = x[j * sx] * g[j]
        elif real_t is float:
            y[j * sy] = x[j * sx] * <float>g[j]
        elif real_t is fd_f16:
            y[j * sy] = fd_f32_to_f16(fd_f16_to_f32(x[j * sx]) * <float>g[j])
        else:
            y[j * sy] = fd_f32_to_bf16(fd_bf16_to_f32(x[j * sx]) * <float>g[j])


cdef inline void _seg_normal(real_t* y, int64_t sy, const double* g, int64_t m) noexcept nogil:
    """y = g rounded once to y's type (float32 or float64)."""
    cdef int64_t j
    for j in range(m):
        if real_t is double:
            y[j * sy] = g[j]
        elif real_t is float:
            y[j * sy] = <float>g[j]


# ---- flags ------------------------------------------------------------------------

cdef inline void _pack(const uint8_t* kb, uint64_t m, uint8_t* out) noexcept nogil:
    """Pack m flags into ceil(m/8) bytes, least significant bit first, zero padding.
    8 flags (0/1 bytes) at a time: read as a little-endian word w, the product
    w * 0x0102040810204080 gathers flag i into bit 56 + i (no carries: each column of
    the product sums at most one 1)."""
    cdef uint64_t q, i, nfull = m // 8, w
    cdef uint8_t v
    for q in range(nfull):
        if FD_LITTLE_ENDIAN:
            memcpy(&w, kb + 8 * q, 8)
            out[q] = <uint8_t>((w * <uint64_t>0x0102040810204080ULL) >> 56)
        else:
            v = 0
            for i in range(8):
                v |= <uint8_t>(kb[8 * q + i] << i)
            out[q] = v
    if m % 8:
        v = 0
        for i in range(m % 8):
            v |= <uint8_t>(kb[8 * nfull + i] << i)
        out[nfull] = v


cdef inline void _flags_from_draws(const Plan* P, uint64_t first, uint64_t m,
                                   uint32_t* draws, uint8_t* kb) noexcept nogil:
    """Keep flags of draws first .. first+m-1: draw >= t.  `draws` holds SUB words."""
    cdef uint64_t k
    cdef uint32_t t = P.t
    cdef uint16_t t16
    cdef uint16_t* d16 = <uint16_t*>draws
    cdef uint8_t* d8 = <uint8_t*>draws
    cdef uint8_t t8
    if P.none_kept:
        memset(kb, 0, m)
        return
    if P.bits == 8:  # t < 2^8 here
        t8 = <uint8_t>t
        draws_u8(P.seed, P.stream, first, m, d8)
        for k in range(m):
            kb[k] = d8[k] >= t8
    elif P.bits == 16:  # t < 2^16 here: compare the 16-bit draws as they are
        t16 = <uint16_t>t
        draws_u16(P.seed, P.stream, first, m, d16)
        for k in range(m):
            kb[k] = d16[k] >= t16
    else:
        draws_u32(P.seed, P.stream, first, m, draws)
        for k in range(m):
            kb[k] = draws[k] >= t


cdef inline void _draw_values(const Plan* P, bint gauss, uint64_t first, uint64_t step,
                              int64_t m, uint32_t* draws, uint8_t* kb,
                              double* g) noexcept nogil:
    """Keep flags (kb) or gaussian values (g) of m elements whose draw indices are first,
    first + step, ...  (step 1: one run of draws; otherwise one draw at a time)."""
    cdef int64_t j
    if step == 1:
        if not gauss:
            _flags_from_draws(P, first, <uint64_t>m, draws, kb)
        else:
            draws_u32(P.seed, P.stream, first, m, draws)
            if P.op == OP_GAUSS:
                fd_gauss_noise(draws, g, m, P.s)
            else:
                fd_normal_block(draws, g, m)
        return
    for j in range(m):
        _draw_values(P, gauss, first + <uint64_t>j * step, 1, 1, draws, kb + j, g + j)


# _UNPACK[v] holds the 8 flags (0/1 bytes, least significant bit first) of mask byte v.
cdef uint8_t _UNPACK[256][8]
cdef int _v, _i
for _v in range(256):
    for _i in range(8):
        _UNPACK[_v][_i] = (_v >> _i) & 1


cdef uint16_t _UNPACK16[256][8]   # the same flags as 16-bit "draws" (0 or 1) for the fused path
for _v in range(256):
    for _i in range(8):
        _UNPACK16[_v][_i] = (_v >> _i) & 1


cdef inline void _draws_from_packed(const uint8_t* packed, uint64_t pos, uint64_t m,
                                    uint16_t* d16) noexcept nogil:
    """Flags of elements pos .. pos+m-1 (pos a multiple of 8) as 16-bit values 0 / 1: the
    fused kernels' draws with t = 1 then keep exactly the flagged elements."""
    cdef uint64_t q, i
    cdef const uint8_t* src = packed + pos // 8
    for q in range(m // 8):
        memcpy(d16 + 8 * q, _UNPACK16[src[q]], 16)
    for i in range(m - m % 8, m):
        d16[i] = (src[i // 8] >> (i % 8)) & 1


cdef inline void _flags_from_packed(const uint8_t* packed, uint64_t pos, uint64_t m,
                                    uint8_t* kb) noexcept nogil:
    """Flags of elements pos .. pos+m-1; pos is a multiple of 8 (chunks and SUB are)."""
    cdef uint64_t q, i
    cdef const uint8_t* src = packed + pos // 8
    for q in range(m // 8):
        memcpy(kb + 8 * q, _UNPACK[src[q]], 8)
    for i in range(m - m % 8, m):
        kb[i] = (src[i // 8] >> (i % 8)) & 1


# ---- the driver ---------------------------------------------------------------------

cdef inline void _unravel(const Plan* P, uint64_t a, int64_t* idx) noexcept nogil:
    """idx = the multi-index of logical element a (C order over P.shape)."""
    cdef int dd
    cdef uint64_t rem = a
    for dd in range(P.nd - 1, -1, -1):
        idx[dd] = <int64_t>(rem % <uint64_t>P.shape[dd])
        rem = rem // <uint64_t>P.shape[dd]


cdef inline void _advance(const Plan* P, int64_t* idx, int64_t seg) noexcept nogil:
    """Move idx seg elements on along its last axis (never past the row's end), carrying
    into the leading axes at the end of a row."""
    cdef int nd = P.nd, dd
    idx[nd - 1] += seg
    if idx[nd - 1] == P.shape[nd - 1]:
        idx[nd - 1] = 0
        dd = nd - 2
        while dd >= 0:
            idx[dd] += 1
            if idx[dd] < P.shape[dd]:
                break
            idx[dd] = 0
            dd -= 1


cdef inline void _fused_draws(const Plan* P, uint64_t pos, int64_t m,
                              uint32_t* draws, bint wide8=True) noexcept nogil:
    """The m draws of elements pos .. pos+m-1 into draws (16-bit draws packed two to a
    word at bits=16; 8-bit draws widened to 16 bits at bits=8, for the same compares:
    see _cmp_bits); nothing when no element can be kept."""
    if P.none_kept:
        return
    if P.bits == 8 and not wide8:  # bytes, compared as bytes by fd_fused.h (bits=8)
        draws_u8(P.seed, P.stream, P.offset + pos, <uint64_t>m, <uint8_t*>draws)
    elif P.bits == 8:
        draws_u8_wide(P.seed, P.stream, P.offset + pos, <uint64_t>m, <uint16_t*>draws)
    elif P.bits == 16:
        draws_u16(P.seed, P.stream, P.offset + pos, <uint64_t>m, <uint16_t*>draws)
    else:
        draws_u32(P.seed, P.stream, P.offset + pos, <uint64_t>m, draws)


cdef inline int _cmp_bits(const Plan* P) noexcept nogil:
    """The draw width the fused kernels compare: 16 for bits=8 too (_fused_draws widens
    8-bit draws, and t < 2^8 then compares the same)."""
    return 16 if P.bits == 8 else P.bits


cdef void _chunk_fused(real_t* tag, const Plan* P, uint64_t a, uint64_t b) noexcept nogil:
    """Elements a .. b-1 of a contiguous dropout (or packed mask) whose
    keep flags come from the draws: FAST_SUB draws into L1, then one fused pass
    (fd_fused.h) writes y and the packed mask.  Equal to _chunk bit for bit."""
    cdef uint32_t draws[FAST_SUB]
    cdef uint16_t* d16 = <uint16_t*>draws
    cdef uint64_t pos = a
    cdef int64_t m
    cdef real_t* y
    cdef uint8_t* pk
    # flags from a packed mask: 16-bit values 0 / 1 compared with t = 1 (never none kept)
    cdef bint from_mask = P.ks == KS_PACKED
    cdef int bits = 16 if from_mask else P.bits  # bits=8: byte draws (fd_keep16 reads them)
    cdef uint32_t t = 1 if from_mask else P.t
    cdef int none = 0 if from_mask else P.none_kept
    # one Philox tile per run: 256 16-bit draws, 512 8-bit ones (in the same 1 KB buffer;
    # a run of 256 would make a whole tile and use half of it)
    cdef int64_t sub = 2 * FAST_SUB if bits == 8 else FAST_SUB
    # the avx512 level: float32 and float64 rows with mask registers (fd_fused.h). From a
    # packed mask with no mask output, the mask's bits are tested in the registers (no
    # unpacking): as mask registers (avx512, float32 and float64), or broadcast and
    # compared (avx2, every dtype)
    cdef bint k512 = simd_level() >= FD_SIMD_AVX512 and (real_t is float or real_t is double)
    if from_mask and P.packed_out == NULL and P.y != NULL:
        if real_t is fd_f16 or real_t is fd_bf16:
            fd_packed_h16(real_t is fd_bf16, P.packed_in + a // 8,
                          <const uint16_t*>(<const real_t*>P.x + a),
                          <uint16_t*>(<real_t*>P.y + a), <int64_t>(b - a), <float>P.s,
                          P.stream_stores)
        elif real_t is float:
            (fd_packed_f32_avx512 if k512 else fd_packed_f32_avx2)(
                P.packed_in + a // 8, <const float*>P.x + a, <float*>P.y + a,
                <int64_t>(b - a), <float>P.s, P.stream_stores)
        elif real_t is double:
            (fd_packed_f64_avx512 if k512 else fd_packed_f64_avx2)(
                P.packed_in + a // 8, <const double*>P.x + a, <double*>P.y + a,
                <int64_t>(b - a), P.s, P.stream_stores)
        pos = b
    while pos < b:
        m = <int64_t>(b - pos if b - pos < <uint64_t>sub else sub)
        if from_mask:
            _draws_from_packed(P.packed_in, pos, <uint64_t>m, d16)
        else:
            _fused_draws(P, pos, m, draws, False)
        y = <real_t*>P.y + pos if P.y != NULL else NULL
        pk = P.packed_out + pos // 8 if P.packed_out != NULL else NULL
        if real_t is float:
            if k512:
                fd_fused_f32_avx512(d16, draws, bits, t, none, <const float*>P.x + pos,
                                    y, pk, m, <float>P.s, P.stream_stores)
            else:
                fd_fused_f32(d16, draws, bits, t, none, <const float*>P.x + pos,
                             y, pk, m, <float>P.s, P.stream_stores)
        elif real_t is double:
            if k512:
                fd_fused_f64_avx512(d16, draws, bits, t, none, <const double*>P.x + pos,
                                    y, pk, m, P.s, P.stream_stores)
            else:
                fd_fused_f64(d16, draws, bits, t, none, <const double*>P.x + pos,
                             y, pk, m, P.s, P.stream_stores)
        else:
            fd_fused_h16(real_t is fd_bf16, d16, draws, bits, t, none,
                         <const uint16_t*>(<const real_t*>P.x + pos), <uint16_t*>y, pk, m,
                         <float>P.s, P.stream_stores)
        pos += <uint64_t>m
    if P.stream_stores:
        fd_stream_fence()


cdef void _chunk_fused_bda(real_t* tag, const Plan* P, uint64_t a, uint64_t b) noexcept nogil:
    """Elements a .. b-1 of a float32/float64 bias-dropout-add with flags from the draws and
    contiguous rows (x, r, y and the bias along the last axis): FAST_SUB draws into L1,
    the packed mask of the run, then fd_fused_bda_* on each row segment of the run."""
    cdef uint32_t draws[FAST_SUB]
    cdef uint16_t* d16 = <uint16_t*>draws
    cdef int64_t idx[MAX_DIMS]
    cdef int nd = P.nd, dd
    cdef int64_t cols = P.shape[nd - 1], seg, k, m, ox, oy, ob, orr
    cdef uint64_t pos = a
    # one Philox tile per run: 256 16-bit draws, or 512 8-bit ones widened to 16 bits
    cdef int64_t sub = 2 * FAST_SUB if P.bits == 8 else FAST_SUB
    _unravel(P, a, idx)
    while pos < b:
        m = <int64_t>(b - pos if b - pos < <uint64_t>sub else sub)
        _fused_draws(P, pos, m, draws)
        if P.packed_out != NULL:  # the mask only (no x, no y)
            fd_fused_f32(d16, draws, _cmp_bits(P), P.t, P.none_kept, NULL, NULL,
                         P.packed_out + pos // 8, m, 0.0, 0)
        k = 0
        while k < m:
            seg = m - k
            if cols - idx[nd - 1] < seg:
                seg = cols - idx[nd - 1]
            ox = oy = ob = orr = 0
            for dd in range(nd):
                ox += idx[dd] * P.sx[dd]
                oy += idx[dd] * P.sy[dd]
                ob += idx[dd] * P.sb[dd]
                orr += idx[dd] * P.sr[dd]
            if real_t is float:
                fd_fused_bda_f32(d16 + k, draws + k, _cmp_bits(P), P.t, P.none_kept,
                                 <const float*>(P.x + ox),
                                 <const float*>(P.b + ob) if P.b != NULL else NULL,
                                 <const float*>(P.r + orr), <float*>(P.y + oy), seg,
                                 <float>P.s, P.stream_stores)
            elif real_t is double:
                fd_fused_bda_f64(d16 + k, draws + k, _cmp_bits(P), P.t, P.none_kept,
                                 <const double*>(P.x + ox),
                                 <const double*>(P.b + ob) if P.b != NULL else NULL,
                                 <const double*>(P.r + orr), <double*>(P.y + oy), seg,
                                 P.s, P.stream_stores)
            k += seg
            _advance(P, idx, seg)
        pos += <uint64_t>m
    if P.stream_stores:
        fd_stream_fence()


cdef void _chunk(real_t* tag, const Plan* P, uint64_t a, uint64_t b) noexcept nogil:
    """Elements a .. b-1 (logical C order) of the plan."""
    cdef uint32_t draws[SUB]
    cdef uint8_t kb[SUB]
    cdef double g[SUB]
    cdef bint gauss = P.op == OP_GAUSS or P.op == OP_NORMAL
    cdef bint seg_draws = P.gmap and (gauss or P.ks == KS_DRAWS)
    cdef int64_t idx[MAX_DIMS]
    cdef int nd = P.nd, dd
    cdef int64_t cols = P.shape[nd - 1], seg, k, m, ox, oy, ob, orr, of
    cdef uint64_t og
    cdef int64_t isz = sizeof(real_t)
    cdef uint64_t pos = a
    if P.fused == 1:
        _chunk_fused(tag, P, a, b)
        return
    if P.fused == 2 and (real_t is float or real_t is double):
        _chunk_fused_bda(tag, P, a, b)
        return
    _unravel(P, a, idx)
    while pos < b:
        m = <int64_t>(b - pos if b - pos < SUB else SUB)
        if not P.gmap and (gauss or P.ks == KS_DRAWS):  # one run of draws for the block
            _draw_values(P, gauss, P.offset + pos, 1, m, draws, kb, g)
        elif P.ks == KS_PACKED:
            _flags_from_packed(P.packed_in, pos, m, kb)
        if P.op != OP_MASK or seg_draws:
            k = 0
            while k < m:
                seg = m - k
                if cols - idx[nd - 1] < seg:
                    seg = cols - idx[nd - 1]
                ox = oy = ob = orr = of = og = 0
                for dd in range(nd):
                    ox += idx[dd] * P.sx[dd]
                    oy += idx[dd] * P.sy[dd]
                    ob += idx[dd] * P.sb[dd]
                    orr += idx[dd] * P.sr[dd]
                    of += idx[dd] * P.sf[dd]
                    og += <uint64_t>idx[dd] * P.sg[dd]
                if seg_draws:  # a row of a block: draws of its global indices
                    _draw_values(P, gauss, P.offset + og, P.sg[nd - 1], seg,
                                 draws, kb + k, g + k)
                if P.ks == KS_FLAGS:  # any nonzero byte keeps, as NumPy reads a bool
                    for dd in range(seg):
                        kb[k + dd] = P.f[of + dd * P.sf[nd - 1]] != 0
                if P.op == OP_DROPOUT:
                    _seg_dropout(<real_t*>(P.y + oy), P.sy[nd - 1] // isz,
                                 <const real_t*>(P.x + ox), P.sx[nd - 1] // isz,
                                 kb + k, seg, P.s, P.stream_stores)
                elif P.op == OP_GAUSS:
                    _seg_gauss(<real_t*>(P.y + oy), P.sy[nd - 1] // isz,
                               <const real_t*>(P.x + ox), P.sx[nd - 1] // isz, g + k, seg)
                elif P.op == OP_NORMAL:
                    _seg_normal(<real_t*>(P.y + oy), P.sy[nd - 1] // isz, g + k, seg)
                elif P.op == OP_BDA:
                    _seg_bda(<real_t*>(P.y + oy), P.sy[nd - 1] // isz,
                             <const real_t*>(P.x + ox), P.sx[nd - 1] // isz,
                             <const real_t*>(P.b + ob) if P.b != NULL else NULL,
                             P.sb[nd - 1] // isz,
                             <const real_t*>(P.r + orr), P.sr[nd - 1] // isz,
                             kb + k, seg, P.s)
                elif P.op == OP_ALPHA:
                    _seg_alpha(<real_t*>(P.y + oy), P.sy[nd - 1] // isz,
                               <const real_t*>(P.x + ox), P.sx[nd - 1] // isz,
                               kb + k, seg, P.a, P.c, P.d)
                k += seg
                _advance(P, idx, seg)
        if P.ks == KS_DRAWS and not gauss:  # the mask outputs, in the block's C order
            if P.packed_out != NULL:
                _pack(kb, m, P.packed_out + pos // 8)
            if P.bool_out != NULL:
                memcpy(P.bool_out + pos, kb, m)
        pos += <uint64_t>m
    if P.stream_stores:
        fd_stream_fence()  # make the non-temporal stores visible before the thread ends


# The C side of NumPy's array interface (__array_struct__): a capsule holding this
# struct.  Reading the data pointer through it costs a fraction of a microsecond, where
# arr.__array_interface__ (a dict) or arr.ctypes cost microseconds.
cdef extern from *:
    """
    typedef struct {
        int two; int nd; char typekind; int itemsize; int flags;
        Py_intptr_t *shape; Py_intptr_t *strides; void *data; PyObject *descr;
    } fd_array_interface;
    """
    ctypedef struct fd_array_interface:
        int two
        int nd
        char typekind
        int itemsize
        int flags
        Py_ssize_t* shape
        Py_ssize_t* strides
        void* data


def address(arr):
    """The data pointer of a NumPy array (an int), through __array_struct__; None for
    None."""
    if arr is None:
        return None
    cap = arr.__array_struct__
    cdef fd_array_interface* inter = <fd_array_interface*>PyCapsule_GetPointer(cap, NULL)
    if inter.two != 2:
        raise ValueError("not an array interface struct")
    return <uintptr_t>inter.data


cdef inline char* _ptr(obj):
    return <char*><uintptr_t>obj if obj is not None else NULL


cdef enum:
    NPY_C_CONTIGUOUS = 0x0001   # NumPy's array flags, as __array_struct__ reports them
    NPY_ALIGNED = 0x0100
    NPY_NOTSWAPPED = 0x0200
    NPY_WRITEABLE = 0x0400


cdef void _choose_path(Plan* P, int code, bint has_bool_out, bint has_b) noexcept nogil:
    """The plan's non-temporal stores, none_kept and fused path (fd_fused.h) from its
    op, dtype code, keep source and strides: the same decision for every caller."""
    cdef int64_t isz = 8 if code == 1 else 4 if code == 0 else 2
    cdef int nd = P.nd
    P.stream_stores = FD_HAVE_STREAM and (P.op == OP_DROPOUT or P.op == OP_BDA) and \
        P.n * isz >= STREAM_MIN_BYTES
    # the fused path: contiguous rows (one coalesced axis), flags from the draws, dropout
    # or the packed mask only, and the AVX2 level selected (float16 also needs F16C)
    P.fused = (FD_HAVE_FUSED and simd_level() >= FD_SIMD_AVX2 and not P.gmap
               and P.ks == KS_DRAWS and not has_bool_out and (code != 2 or _HAS_F16C)
               and nd == 1
               and (P.op == OP_MASK or (P.op == OP_DROPOUT and P.sx[0] == isz
                                        and P.sy[0] == isz)))
    # and dropout (its backward) from a packed mask, rows contiguous: the mask's bits as
    # the fused kernels' draws (_draws_from_packed)
    if (not P.fused and FD_HAVE_FUSED and simd_level() >= FD_SIMD_AVX2 and not P.gmap
            and P.ks == KS_PACKED and P.op == OP_DROPOUT and (code != 2 or _HAS_F16C)
            and nd == 1 and P.sx[0] == isz and P.sy[0] == isz):
        P.fused = 1
    # and bias-dropout-add of float32/float64 with contiguous rows (any number of rows)
    if (not P.fused and FD_HAVE_FUSED and simd_level() >= FD_SIMD_AVX2 and not P.gmap
            and P.op == OP_BDA and P.ks == KS_DRAWS and not has_bool_out and code <= 1
            and P.sx[nd - 1] == isz and P.sy[nd - 1] == isz and P.sr[nd - 1] == isz
            and (not has_b or P.sb[nd - 1] == isz)):
        P.fused = 2


cdef inline void _chunks(const Plan* P, int code, uint64_t lo, uint64_t hi) noexcept nogil:
    if code == 0:
        _chunk(<float*>NULL, P, lo, hi)
    elif code == 1:
        _chunk(<double*>NULL, P, lo, hi)
    elif code == 2:
        _chunk(<fd_f16*>NULL, P, lo, hi)
    else:
        _chunk(<fd_bf16*>NULL, P, lo, hi)


cdef inline int _grain_workers(uint64_t n, int n_threads) noexcept nogil:
    """n_threads capped by the grain: at most one thread per GRAIN elements."""
    cdef uint64_t most = n // GRAIN if n >= GRAIN else 1  # the grain's cap
    return n_threads if <uint64_t>n_threads <= most else <int>most


cdef void _run_chunks(const Plan* P, int code, Py_ssize_t c0, Py_ssize_t c1,
                      int workers) noexcept nogil:
    """Chunks c0 .. c1-1 of the plan on `workers` threads (one: no parallel region)."""
    cdef uint64_t n = P.n
    cdef Py_ssize_t ci
    cdef uint64_t lo, hi
    if workers <= 1:
        for ci in range(c0, c1):
            lo = <uint64_t>ci * CHUNK
            hi = lo + CHUNK if lo + CHUNK < n else n
            _chunks(P, code, lo, hi)
    else:
        for ci in prange(c0, c1, schedule="static", num_threads=workers):
            lo = <uint64_t>ci * CHUNK
            hi = lo + CHUNK
            if hi > n:
                hi = n
            _chunks(P, code, lo, hi)


cdef int _execute(const Plan* P, int code, int n_threads) except -1:
    """Run a complete plan of P.n > 0 elements on up to n_threads threads: one chunk of
    CHUNK elements per unit of work, at most one thread per GRAIN elements,
    SIGNAL_CHUNKS chunks between two looks at pending signals (Ctrl-C stops a long call
    within milliseconds; the chunks, hence the result, are the same).  One worker runs no
    parallel region at all."""
    cdef uint64_t n = P.n
    cdef Py_ssize_t c0 = 0, c1, n_chunks = <Py_ssize_t>((n + CHUNK - 1) // CHUNK)
    cdef int workers = _grain_workers(n, n_threads)
    while c0 < n_chunks:
        c1 = c0 + SIGNAL_CHUNKS if n_chunks - c0 > SIGNAL_CHUNKS else n_chunks
        with nogil:
            _run_chunks(P, code, c0, c1, workers)
        c0 = c1
        if c0 < n_chunks:
            PyErr_CheckSignals()
    return 0


# ---- the nogil entry (_dropout.pxd): for callers on threads without the GIL -------------

cdef void plan_choose_path(Plan* P, int code, bint has_bool_out, bint has_b) noexcept nogil:
    """_choose_path: the plan's stores and fused path (call once the plan is filled in)."""
    _choose_path(P, code, has_bool_out, has_b)


cdef int plan_run_nogil(const Plan* P, int code, int n_threads) noexcept nogil:
    """Run a complete plan of P.n > 0 elements on up to n_threads threads (capped by the
    grain, as _execute), without the GIL and without looking at signals (XLA's threads:
    fastdrop._cpu._xla).  Returns the number of threads it ran on."""
    cdef uint64_t n = P.n
    cdef Py_ssize_t n_chunks = <Py_ssize_t>((n + CHUNK - 1) // CHUNK)
    cdef int workers = _grain_workers(n, n_threads)
    _run_chunks(P, code, 0, n_chunks, workers)
    return workers if workers > 1 else 1


def run(int op, int ks, str dtype_name, shape, *, y=None, x=None, b=None, r=None, f=None,
        sy=None, sx=None, sb=None, sr=None, sf=None, sg=None, packed_in=None, packed_out=None,
        bool_out=None, uint64_t seed=0, uint64_t stream=0, uint64_t offset=0, int bits=16,
        uint64_t t=0, double scale=1.0, double a=0.0, double c=0.0, double d=0.0,
        int n_threads=1):
    """Run one plan.  Pointers are integer addresses (arrays kept alive by the caller);
    shape and strides (bytes) are sequences of equal length 1..64; n > 0.  sg (elements),
    when given, maps each element to its draw index offset + sum(idx * sg): a block of a
    larger logical array.  Returns True when the fused path (fd_fused.h) ran."""
    cdef Plan P
    cdef int dd, code = DTYPE_CODES[dtype_name]
    cdef uint64_t n = 1
    P.op, P.ks, P.bits, P.nd = op, ks, bits, len(shape)
    if not 1 <= P.nd <= MAX_DIMS:
        raise ValueError("bad number of dimensions")
    zeros = (0,) * P.nd
    P.gmap = sg is not None
    sy, sx, sb, sr, sf, sg = [v if v is not None else zeros for v in (sy, sx, sb, sr, sf, sg)]
    for dd in range(P.nd):
        P.shape[dd] = shape[dd]
        n *= <uint64_t>shape[dd]
        P.sy[dd], P.sx[dd], P.sb[dd], P.sr[dd], P.sf[dd] = sy[dd], sx[dd], sb[dd], sr[dd], sf[dd]
        P.sg[dd] = sg[dd]
    P.n = n
    P.none_kept = t >= (<uint64_t>1 << bits)
    _choose_path(&P, code, bool_out is not None, b is not None)
    P.t = <uint32_t>t if not P.none_kept else 0
    P.seed, P.stream, P.offset = seed, stream, offset
    P.s, P.a, P.c, P.d = scale, a, c, d
    P.y, P.x, P.b, P.r = _ptr(y), _ptr(x), _ptr(b), _ptr(r)
    P.f = <const uint8_t*>_ptr(f)
    P.packed_in = <const uint8_t*>_ptr(packed_in)
    P.packed_out = <uint8_t*>_ptr(packed_out)
    P.bool_out = <uint8_t*>_ptr(bool_out)
    if n == 0:
        return False
    _execute(&P, code, n_threads)
    return P.fused != 0


# ---- the common call, checked and run without the request layer ------------------------
#
# The common call of each dropout-family function (dropout, alpha and gaussian dropout, their
# backward passes, bias-dropout-add and its backward, dropout_mask): exact, C-contiguous,
# aligned, native NumPy arrays with a Python float p, int seed and stream, no noise shape,
# block or mask format other than packed, takes this path: every argument is checked here
# against the same rules as fastdrop._core.parse, and a call that is not plainly valid and
# common returns None, so that the public function goes the general way (which raises the
# documented errors and warnings).  The result is the same bit for bit
# (tests/cpu/test_call_fast_path.py).

from fastdrop._core import contract as _contract

cdef object _ndarray = np.ndarray
cdef object _empty = np.empty
cdef object _empty_like = np.empty_like
cdef object _uint8 = np.dtype(np.uint8)
cdef object _bool = np.dtype(np.bool_)
cdef object _float32 = np.dtype(np.float32)
cdef object _bf16 = None      # ml_dtypes' bfloat16 dtype, once an array of it was seen
cdef object _thread_policy = None  # fastdrop._cpu.backend._threads: n_threads -> threads
cdef object _randbits = None  # secrets.randbits (seed=None)
cdef object _bias_grads = None  # backend._bias_grads: (g, dx_c, has_bias) -> the grads
cdef object _INVERTED = "inverted", _PACKED = "packed", _BOOL = "bool"
cdef object _BITS32 = 32


def set_hooks(thread_policy, randbits, bias_grads):
    """The backend's thread policy (called for calls of more than one chunk), the seed
    source of seed=None and bias_dropout_add_backward's gradients from dropout's (the
    general path's own code: dbias summed as it sums it)."""
    global _thread_policy, _randbits, _bias_grads
    _thread_policy, _randbits, _bias_grads = thread_policy, randbits, bias_grads


cdef inline bint _is(object value, str word) except -1:
    """value is the str word (a str subclass or any other object is not)."""
    return value is word or (type(value) is str and <str>value == word)


cdef inline fd_array_interface* _inter(object cap) except NULL:
    cdef fd_array_interface* inter = <fd_array_interface*>PyCapsule_GetPointer(cap, NULL)
    if inter.two != 2:
        raise ValueError("not an array interface struct")
    return inter


cdef int _float_code(object arr, fd_array_interface* v, bint writeable) except -2:
    """The dtype code of a native, aligned, C-contiguous float array view; -1 if the view
    is anything else."""
    cdef int need = NPY_C_CONTIGUOUS | NPY_ALIGNED | NPY_NOTSWAPPED
    global _bf16
    if writeable:
        need |= NPY_WRITEABLE
    if (v.flags & need) != need:
        return -1
    if v.typekind == b'f':
        return 0 if v.itemsize == 4 else 1 if v.itemsize == 8 else 2 if v.itemsize == 2 \
            else -1
    if v.typekind == b'V' and v.itemsize == 2:
        dt = arr.dtype
        if _bf16 is None and dt.name == "bfloat16":
            _bf16 = dt
        return 3 if dt is _bf16 else -1
    return -1


cdef inline uint64_t _size(fd_array_interface* v) noexcept:
    cdef uint64_t n = 1
    cdef int dd
    for dd in range(v.nd):
        n *= <uint64_t>v.shape[dd]
    return n


cdef inline bint _same_shape(fd_array_interface* a, fd_array_interface* b) noexcept:
    cdef int dd
    if a.nd != b.nd:
        return False
    for dd in range(a.nd):
        if a.shape[dd] != b.shape[dd]:
            return False
    return True


cdef inline bint _disjoint(fd_array_interface* a, uint64_t abytes,
                           fd_array_interface* b, uint64_t bbytes) noexcept:
    cdef uintptr_t pa = <uintptr_t>a.data, pb = <uintptr_t>b.data
    return pa + abytes <= pb or pb + bbytes <= pa


cdef inline int _uint64_arg(object v, uint64_t* out) except -2:
    """A Python int in [0, 2**64 - 1] (not bool) into out: 0; anything else: -1."""
    if type(v) is not int or v < 0 or v > 0xFFFFFFFFFFFFFFFF:
        return -1
    out[0] = <uint64_t>v
    return 0


cdef inline int _threads_arg(object n_threads) except -2:
    """0 for None (the default), n for a Python int in [1, 2**31 - 1], -1 otherwise."""
    if n_threads is None:
        return 0
    if type(n_threads) is not int or n_threads < 1 or n_threads > 0x7FFFFFFF:
        return -1
    return <int>n_threads


cdef inline int64_t _threshold_of(double p, int bits) noexcept:
    """round_half_even(p * 2**bits) for p in [0, 1] (exact: a power-of-two scaling), as
    fastdrop._core.contract.threshold; -1 when p > 0 rounds to 0 (the general path warns)."""
    cdef double v = p * (<double>(<uint64_t>1 << bits))
    cdef double r = floor(v)
    cdef double frac = v - r
    if frac > 0.5 or (frac == 0.5 and fmod(r, 2.0) != 0.0):
        r += 1.0
    if r == 0.0 and p > 0.0:
        return -1
    return <int64_t>r


cdef inline double _inverted_scale(int64_t t, int bits) noexcept:
    """2**bits / (2**bits - t), 0 when all are dropped: contract.inverted_scale."""
    cdef double full = <double>(<uint64_t>1 << bits)
    return 0.0 if t == (<int64_t>1 << bits) else full / (full - <double>t)


cdef void _plan_contiguous(Plan* P, int op, int ks, int code, uint64_t n, uint64_t cols,
                           int bits, int64_t t, double scale, uint64_t seed, uint64_t stream,
                           uint64_t offset, char* y, const char* x, const char* b,
                           const char* r, const uint8_t* packed_in, uint8_t* packed_out,
                           uint8_t* bool_out) noexcept:
    """A plan of n contiguous elements (y, x, r: those that are not NULL), its path chosen:
    one axis, or rows of `cols` elements when a bias b runs along them (cols < n; b's
    stride 0 down the rows).  Its first element draws `offset`; a, c, d are 0."""
    cdef int64_t isz = 8 if code == 1 else 4 if code == 0 else 2
    cdef int dd, nd = 2 if b != NULL and cols < n else 1
    P.op, P.ks, P.bits, P.nd, P.gmap = op, ks, bits, nd, 0
    P.n = n
    P.shape[nd - 1] = <int64_t>(cols if nd == 2 else n)
    P.sy[nd - 1] = isz if y != NULL else 0
    P.sx[nd - 1] = isz if x != NULL else 0
    P.sr[nd - 1] = isz if r != NULL else 0
    P.sb[nd - 1] = isz if b != NULL else 0
    if nd == 2:  # the rows: every operand but the bias moves a row on
        P.shape[0] = <int64_t>(n // cols)
        P.sy[0], P.sx[0], P.sr[0] = P.sy[1] * <int64_t>cols, P.sx[1] * <int64_t>cols, \
            P.sr[1] * <int64_t>cols
        P.sb[0] = 0
    for dd in range(nd):
        P.sf[dd] = 0
        P.sg[dd] = 0
    P.none_kept = t >= (<int64_t>1 << bits)
    _choose_path(P, code, bool_out != NULL, b != NULL)
    P.t = <uint32_t>t if not P.none_kept else 0
    P.seed, P.stream, P.offset = seed, stream, offset
    P.s, P.a, P.c, P.d = scale, 0.0, 0.0, 0.0
    P.y, P.x, P.b, P.r, P.f = y, x, b, r, NULL
    P.packed_in, P.packed_out, P.bool_out = packed_in, packed_out, bool_out


cdef inline int _workers(uint64_t n, int n_threads) except -1:
    """Threads for n elements: 1 below two grains, else the backend's policy."""
    if n < 2 * GRAIN:
        return 1
    return <int>_thread_policy(None if n_threads == 0 else n_threads)


cdef int _common_scalars(object p, object mode, object bits, object stream,
                         object n_threads, int* b, uint64_t* st, int* threads) except -2:
    """The scalars every fast path shares: a Python float p in [0, 1], inverted mode,
    bits 8, 16 or 32, an int stream, n_threads None or an int (0 for None): 0, else -1."""
    if type(p) is not float or type(bits) is not int or not _is(mode, _INVERTED):
        return -1
    if bits != 16 and bits != 32 and bits != 8:
        return -1
    if not 0.0 <= p <= 1.0:  # NaN too
        return -1
    if _uint64_arg(stream, st) < 0:
        return -1
    threads[0] = _threads_arg(n_threads)
    if threads[0] < 0:
        return -1
    b[0] = bits
    return 0


cdef object _output(object x, fd_array_interface* xv, object out, int code,
                    uint64_t nbytes, fd_array_interface* mv, uint64_t mbytes,
                    object r=None, fd_array_interface* rv=NULL,
                    fd_array_interface* bv=NULL, uint64_t bbytes=0):
    """y of a fast call: a new array (out=None), x itself or r itself (an input that out
    may be, when given: residual) if writeable, or `out`: an aligned, native, C-contiguous
    array of x's dtype and shape; disjoint from x and r unless it is that very object, and
    always from the mask mv and the bias bv (when not NULL; mbytes, bbytes long).  None for
    anything else."""
    cdef fd_array_interface* yv
    if out is None:
        return _empty_like(x)
    if out is x or (r is not None and out is r):
        yv = xv if out is x else rv
        if not yv.flags & NPY_WRITEABLE:
            return None
    else:
        if type(out) is not _ndarray:
            return None
        ycap = out.__array_struct__
        yv = _inter(ycap)
        if _float_code(out, yv, True) != code or not _same_shape(xv, yv):
            return None
    if out is not x and not _disjoint(xv, nbytes, yv, nbytes):
        return None
    if r is not None and out is not r and not _disjoint(rv, nbytes, yv, nbytes):
        return None
    if mv != NULL and not _disjoint(mv, mbytes, yv, nbytes):
        return None
    if bv != NULL and not _disjoint(bv, bbytes, yv, nbytes):
        return None
    return out


cdef object _packed_mask(object mask, uint64_t n, fd_array_interface** mv):
    """A packed mask of n flags: an exact, C-contiguous, 1-d uint8 array of ceil(n / 8)
    bytes, viewed in mv; returns the capsule that holds the view (keep it while mv is
    used), or None for anything else."""
    cdef fd_array_interface* v
    if type(mask) is not _ndarray:
        return None
    cap = mask.__array_struct__
    v = _inter(cap)
    if (v.typekind != b'u' or v.itemsize != 1 or v.nd != 1
            or not v.flags & NPY_C_CONTIGUOUS or <uint64_t>v.shape[0] != (n + 7) // 8):
        return None
    mv[0] = v
    return cap


cdef object _mask_buffer(object mask_out, uint64_t n, object y, fd_array_interface* xv,
                         uint64_t nbytes, fd_array_interface* rv=NULL,
                         fd_array_interface* bv=NULL, uint64_t bbytes=0):
    """The packed mask's buffer of a fast call that returns its mask: a new array
    (mask_out None), or mask_out itself when it is an exact, C-contiguous, writeable 1-d
    uint8 array of ceil(n / 8) bytes disjoint from x (xv), the output y, the residual rv
    and the bias bv (when not NULL; nbytes, nbytes, bbytes long); None for anything else,
    which the general path then refuses with its message."""
    cdef fd_array_interface* mv
    cdef fd_array_interface* yv
    cdef uint64_t mbytes = (n + 7) // 8
    if mask_out is None:
        return _empty(mbytes, _uint8)
    mcap = _packed_mask(mask_out, n, &mv)
    if mcap is None or not mv.flags & NPY_WRITEABLE:
        return None
    ycap = y.__array_struct__
    yv = _inter(ycap)
    if not _disjoint(xv, nbytes, mv, mbytes) or not _disjoint(yv, nbytes, mv, mbytes):
        return None
    if rv != NULL and not _disjoint(rv, nbytes, mv, mbytes):
        return None
    if bv != NULL and not _disjoint(bv, bbytes, mv, mbytes):
        return None
    return mask_out


# One-entry caches of the contract's constants (fastdrop._core.contract computes them: the
# same formulas on both paths); each is filled in C, without Python code in between, so a
# thread switch never sees half an entry.
cdef int64_t _alpha_t = -1
cdef int _alpha_bits = 0
cdef double _alpha_a = 0.0, _alpha_c = 0.0, _alpha_d = 0.0
cdef uint64_t _sigma_key = 0xFFFFFFFFFFFFFFFF   # the bits of p (no p in [0, 1) has these)
cdef double _sigma_value = 0.0


cdef int _alpha_of(int64_t t, int bits, Plan* P) except -1:
    """P.a, P.c, P.d = contract.alpha_constants(t, bits)."""
    global _alpha_t, _alpha_bits, _alpha_a, _alpha_c, _alpha_d
    cdef double a, c, d
    if t != _alpha_t or bits != _alpha_bits:
        a, c, d = _contract.alpha_constants(t, bits)
        _alpha_a, _alpha_c, _alpha_d, _alpha_t, _alpha_bits = a, c, d, t, bits
    P.a, P.c, P.d = _alpha_a, _alpha_c, _alpha_d
    return 0


cdef double _sigma_of(double p) except -1.0:
    """contract.gaussian_sigma(p) for p in [0, 1) (keyed by p's bits: -0.0 is not 0.0)."""
    global _sigma_key, _sigma_value
    cdef uint64_t key
    cdef double s
    memcpy(&key, &p, 8)
    if key != _sigma_key:
        s = _contract.gaussian_sigma(p)
        _sigma_value, _sigma_key = s, key
    return _sigma_value


cdef object _array_view(object arr, fd_array_interface** v, int* code, uint64_t* n):
    """An exact ndarray's view (v), dtype code and size; returns the capsule that holds the
    view (keep it while v is used), or None when arr is not a native, aligned, C-contiguous
    float array with elements."""
    if type(arr) is not _ndarray:
        return None
    cap = arr.__array_struct__
    v[0] = _inter(cap)
    code[0] = _float_code(arr, v[0], False)
    if code[0] < 0:
        return None
    n[0] = _size(v[0])
    if n[0] == 0:
        return None
    return cap


cdef enum:
    FWD_DROPOUT = 0   # _forward's kinds
    FWD_ALPHA = 1
    FWD_GAUSS = 2


cdef object _forward(int kind, bint need_seed, object x, object p, object seed,
                     object stream, object training, object mode, object noise_shape,
                     object bits, object return_mask, object mask_format, object out,
                     object n_threads, object block, object mask_out=None):
    """The common call of dropout (FWD_DROPOUT), alpha_dropout (FWD_ALPHA; mode
    "inverted") or gaussian_dropout and its backward (FWD_GAUSS: bits 32, no mask; p in
    [0, 1) as contract.gaussian_sigma wants; need_seed: seed=None is an error), or None:
    parse._forward's (parse._gaussian's) checks, then the training pass of their request
    (_alpha_op: nothing or everything dropped is dropout's kernel with scale 1)."""
    cdef uint64_t key, st, n, nbytes
    cdef int code, b, threads, op
    cdef int64_t t = 0
    cdef double scale
    cdef fd_array_interface* xv
    cdef Plan P
    if training is not True or noise_shape is not None or block is not None:
        return None
    if _common_scalars(p, mode, bits, stream, n_threads, &b, &st, &threads) < 0:
        return None
    if not (_is(mask_format, _PACKED) or (_is(mask_format, _BOOL) and return_mask is False)):
        return None
    if return_mask is not True and (return_mask is not False or mask_out is not None):
        return None
    if (seed is not None or need_seed) and _uint64_arg(seed, &key) < 0:
        return None
    xcap = _array_view(x, &xv, &code, &n)
    if xcap is None:
        return None
    nbytes = n * <uint64_t>xv.itemsize
    if kind == FWD_GAUSS:
        if <double>p == 1.0:  # the general path raises (infinite variance)
            return None
        op, scale = OP_GAUSS, _sigma_of(<double>p)
    else:
        t = _threshold_of(<double>p, b)
        if t < 0:
            return None
        op = OP_ALPHA if kind == FWD_ALPHA and 0 < t < (<int64_t>1 << b) else OP_DROPOUT
        scale = 1.0 if kind == FWD_ALPHA else _inverted_scale(t, b)
    y = _output(x, xv, out, code, nbytes, NULL, 0)
    if y is None:
        return None
    packed = None
    if return_mask:
        packed = _mask_buffer(mask_out, n, y, xv, nbytes)
        if packed is None:
            return None
    if seed is None:  # drawn last, as parse.check_seed does
        key = <uint64_t>_randbits(64)
    _plan_contiguous(&P, op, KS_DRAWS, code, n, n, b, t, scale, key, st, 0,
                     _ptr(address(y)), _ptr(address(x)), NULL, NULL, NULL,
                     <uint8_t*>_ptr(address(packed)), NULL)
    if op == OP_ALPHA:
        _alpha_of(t, b, &P)
    _execute(&P, code, _workers(n, threads))
    return (y, packed) if return_mask else y


cdef enum:
    BWD_DROPOUT = 0   # _backward's kinds
    BWD_ALPHA = 1
    BWD_BIAS = 2


cdef object _backward(int kind, object grad, object p, object mask, object seed,
                      object stream, object mode, object noise_shape, object bits,
                      object out, object n_threads, object block):
    """The common call of a backward pass, or None: parse._backward's checks and request;
    BWD_DROPOUT: dropout's scale, BWD_ALPHA: alpha dropout's (parse._alpha_scale),
    BWD_BIAS: bias-dropout-add's dropout part, in the compute precision (float32 for the
    half types, as backend._bias_backward runs it; out is None)."""
    cdef uint64_t key = 0, st, n, nbytes
    cdef int code, b, threads, ks
    cdef int64_t t
    cdef double scale
    cdef fd_array_interface* gv
    cdef fd_array_interface* mv = NULL
    cdef Plan P
    if noise_shape is not None or block is not None or (mask is None) == (seed is None):
        return None
    if _common_scalars(p, mode, bits, stream, n_threads, &b, &st, &threads) < 0:
        return None
    gcap = _array_view(grad, &gv, &code, &n)
    if gcap is None:
        return None
    nbytes = n * <uint64_t>gv.itemsize
    if mask is not None:
        mcap = _packed_mask(mask, n, &mv)
        if mcap is None:
            return None
        ks = KS_PACKED
    else:
        if _uint64_arg(seed, &key) < 0:
            return None
        ks = KS_DRAWS
    t = _threshold_of(<double>p, b)
    if t < 0:
        return None
    if kind == BWD_BIAS:  # dropout_backward of grad in the compute precision, into a new array
        if code >= 2:
            grad = grad.astype(_float32)
            code = 0
        y = _empty_like(grad)
    else:
        y = _output(grad, gv, out, code, nbytes, mv, (n + 7) // 8)
        if y is None:
            return None
    if kind == BWD_ALPHA:
        if t == 0:
            scale = 1.0
        else:
            _alpha_of(t, b, &P)
            scale = P.a
    else:
        scale = _inverted_scale(t, b)
    _plan_contiguous(&P, OP_DROPOUT, ks, code, n, n, b, t, scale, key, st, 0,
                     _ptr(address(y)), _ptr(address(grad)), NULL, NULL,
                     <const uint8_t*>(mv.data if mv != NULL else NULL), NULL, NULL)
    _execute(&P, code, _workers(n, threads))
    return y


def fast_dropout(x, p, seed, stream, training, mode, noise_shape, bits, return_mask,
                 mask_format, out, n_threads, block, mask_out=None):
    """fastdrop.dropout's common call (the public parameters, in order), or None when
    the call is not one: then the general path parses it."""
    return _forward(FWD_DROPOUT, False, x, p, seed, stream, training, mode, noise_shape, bits,
                    return_mask, mask_format, out, n_threads, block, mask_out)


def fast_dropout_backward(grad, p, mask, seed, stream, mode, noise_shape, bits, out,
                          n_threads, block):
    """fastdrop.dropout_backward's common call (the public parameters, in order), or
    None when the call is not one."""
    return _backward(BWD_DROPOUT, grad, p, mask, seed, stream, mode, noise_shape, bits, out,
                     n_threads, block)


def fast_alpha_dropout(x, p, seed, stream, training, noise_shape, bits, return_mask,
                       mask_format, out, n_threads, block, mask_out=None):
    """fastdrop.alpha_dropout's common call (the public parameters, in order), or None."""
    return _forward(FWD_ALPHA, False, x, p, seed, stream, training, _INVERTED, noise_shape,
                    bits, return_mask, mask_format, out, n_threads, block, mask_out)


def fast_alpha_dropout_backward(grad, p, mask, seed, stream, noise_shape, bits, out,
                                n_threads, block):
    """fastdrop.alpha_dropout_backward's common call (the public parameters, in order),
    or None."""
    return _backward(BWD_ALPHA, grad, p, mask, seed, stream, _INVERTED, noise_shape, bits,
                     out, n_threads, block)


def fast_gaussian_dropout(x, p, seed, stream, training, out, n_threads, block):
    """fastdrop.gaussian_dropout's common call (the public parameters, in order), or
    None."""
    return _forward(FWD_GAUSS, False, x, p, seed, stream, training, _INVERTED, None, _BITS32,
                    False, _PACKED, out, n_threads, block)


def fast_gaussian_dropout_backward(grad, p, seed, stream, out, n_threads, block):
    """fastdrop.gaussian_dropout_backward's common call (the public parameters, in
    order), or None."""
    return _forward(FWD_GAUSS, True, grad, p, seed, stream, True, _INVERTED, None, _BITS32,
                    False, _PACKED, out, n_threads, block)


cdef uint64_t _MAX_MASK = <uint64_t>1 << 62   # more elements: the general path answers


def fast_dropout_mask(shape, p, seed, stream, bits, packed, offset, n_threads, device,
                      block):
    """fastdrop.dropout_mask's common call (the public parameters, in order: shape an int
    or a tuple of ints, device None), or None: parse.dropout_mask's checks and request."""
    cdef uint64_t key, st, off, n = 1, d
    cdef int b, threads
    cdef int64_t t
    cdef Py_ssize_t k
    cdef Plan P
    if device is not None or block is not None or (packed is not True and packed is not False):
        return None
    if type(shape) is int:
        if shape < 0 or shape > <object>_MAX_MASK:
            return None
        n = <uint64_t>shape
    elif type(shape) is tuple:
        if len(<tuple>shape) > 32:  # NumPy's shapes (and np.empty's) of older versions
            return None
        for k in range(len(<tuple>shape)):
            v = (<tuple>shape)[k]
            if type(v) is not int or v < 0 or v > <object>_MAX_MASK:
                return None
            d = <uint64_t>v
            if d != 0 and n > _MAX_MASK // d:
                return None
            n *= d
    else:
        return None
    if n == 0:
        return None
    if _common_scalars(p, _INVERTED, bits, stream, n_threads, &b, &st, &threads) < 0:
        return None
    if _uint64_arg(seed, &key) < 0 or _uint64_arg(offset, &off) < 0:
        return None
    if off != 0 and n - 1 > 0xFFFFFFFFFFFFFFFF - off:  # offset + n past 2**64: an error
        return None
    t = _threshold_of(<double>p, b)
    if t < 0:
        return None
    if packed:
        mask = _empty((n + 7) // 8, _uint8)
    else:
        mask = _empty(shape, _bool)
    _plan_contiguous(&P, OP_MASK, KS_DRAWS, 0, n, n, b, t, 1.0, key, st, off, NULL, NULL,
                     NULL, NULL, NULL, <uint8_t*>_ptr(address(mask)) if packed else NULL,
                     NULL if packed else <uint8_t*>_ptr(address(mask)))
    _execute(&P, 0, _workers(n, threads))
    return mask


def fast_bias_dropout_add(x, bias, residual, p, seed, stream, bits, return_mask, out,
                          n_threads, block, mask_out=None):
    """fastdrop.bias_dropout_add's common call (the public parameters, in order: bias
    None or a 1-d array along x's last axis, residual of x's shape, all of x's dtype), or
    None: parse.bias_dropout_add's checks and request."""
    cdef uint64_t key, st, n, nbytes, cols, rn
    cdef int code, rcode, b, threads
    cdef int64_t t
    cdef fd_array_interface* xv
    cdef fd_array_interface* rv
    cdef fd_array_interface* bv = NULL
    cdef Plan P
    if block is not None or (bias is not None and type(bias) is not _ndarray):
        return None
    if _common_scalars(p, _INVERTED, bits, stream, n_threads, &b, &st, &threads) < 0:
        return None
    if return_mask is not True and (return_mask is not False or mask_out is not None):
        return None
    if _uint64_arg(seed, &key) < 0:
        return None
    xcap = _array_view(x, &xv, &code, &n)
    if xcap is None:
        return None
    nbytes = n * <uint64_t>xv.itemsize
    rcap = _array_view(residual, &rv, &rcode, &rn)
    if rcap is None or rcode != code or not _same_shape(xv, rv):
        return None
    cols = n
    if bias is not None:
        bcap = bias.__array_struct__
        bv = _inter(bcap)
        if (_float_code(bias, bv, False) != code or xv.nd == 0 or bv.nd != 1
                or bv.shape[0] != xv.shape[xv.nd - 1]):
            return None
        cols = <uint64_t>bv.shape[0]
    t = _threshold_of(<double>p, b)
    if t < 0:
        return None
    y = _output(x, xv, out, code, nbytes, NULL, 0, residual, rv, bv,
                cols * <uint64_t>xv.itemsize)
    if y is None:
        return None
    packed = None
    if return_mask:
        packed = _mask_buffer(mask_out, n, y, xv, nbytes, rv, bv, cols * <uint64_t>xv.itemsize)
        if packed is None:
            return None
    _plan_contiguous(&P, OP_BDA, KS_DRAWS, code, n, cols, b, t, _inverted_scale(t, b), key,
                     st, 0, _ptr(address(y)), _ptr(address(x)), _ptr(address(bias)),
                     _ptr(address(residual)), NULL, <uint8_t*>_ptr(address(packed)), NULL)
    _execute(&P, code, _workers(n, threads))
    return (y, packed) if return_mask else y


def fast_bias_dropout_add_backward(grad, p, mask, seed, stream, bits, has_bias, n_threads,
                                   block):
    """fastdrop.bias_dropout_add_backward's common call (the public parameters, in
    order), or None: dropout's backward in the compute precision (_backward), then the
    general path's own dbias and dx (backend._bias_grads)."""
    if has_bias is not True and has_bias is not False:
        return None
    if has_bias and type(grad) is _ndarray and grad.ndim == 0:  # the general path raises
        return None
    dx_c = _backward(BWD_BIAS, grad, p, mask, seed, stream, _INVERTED, None, bits, None,
                     n_threads, block)
    if dx_c is None:
        return None
    return _bias_grads(grad, dx_c, has_bias)


# ---- the common call on raw addresses (the torch adapter's lean path) -------------------
#
# dropout and its backward on memory given as integer addresses (tensor.data_ptr()): n
# C-contiguous elements of dtype code 0..3 (DTYPE_CODES), the output equal to the input (in
# place) or disjoint from it, a packed mask of (n + 7) // 8 bytes at mask_addr (0: none),
# all kept alive by the caller.  The scalars are checked as the common call checks them
# (_common_scalars, _threshold_of); False for anything else (the caller goes the general
# way), True once the kernel ran: the same bits as fastdrop.dropout.

cdef inline int _addr_arg(object v, bint may_be_null, char** out) except -2:
    """A Python int address (not bool), non-zero unless may_be_null, into out: 0; -1
    otherwise."""
    if type(v) is not int or v < 0 or v > <object><uintptr_t>(-1):
        return -1
    if v == 0 and not may_be_null:
        return -1
    out[0] = <char*><uintptr_t>v
    return 0


cdef int _ptr_common(object n, object dtype_code, object p, object stream, object bits,
                     object n_threads, uint64_t* nn, int* code, int* b, uint64_t* st,
                     int* threads, int64_t* t) except -2:
    """The checks both pointer entries share: n an int in [1, 2**62], dtype_code an int
    0..3, then _common_scalars' (inverted mode) and a threshold the general path takes
    without a warning: 0, else -1."""
    if type(n) is not int or n < 1 or n > <object>_MAX_MASK:
        return -1
    if type(dtype_code) is not int or not 0 <= dtype_code <= 3:
        return -1
    if _common_scalars(p, _INVERTED, bits, stream, n_threads, b, st, threads) < 0:
        return -1
    t[0] = _threshold_of(<double>p, b[0])
    if t[0] < 0:
        return -1
    nn[0] = <uint64_t>n
    code[0] = <int>dtype_code
    return 0


def fast_dropout_ptr(x_addr, y_addr, n, dtype_code, p, seed, stream, bits, mask_addr,
                     n_threads):
    """fastdrop.dropout(x, p, seed=seed, stream=stream, bits=bits, out=y) of the n
    C-contiguous elements at x_addr into y_addr (x_addr itself: in place; else disjoint),
    the packed mask written at mask_addr ((n + 7) // 8 bytes; 0: no mask).  Returns True
    when it ran, False (nothing written) for a call outside the common one."""
    cdef uint64_t key, st, nn
    cdef int code, b, threads
    cdef int64_t t
    cdef char* x
    cdef char* y
    cdef char* m
    cdef Plan P
    if _ptr_common(n, dtype_code, p, stream, bits, n_threads, &nn, &code, &b, &st, &threads,
                   &t) < 0:
        return False
    if (_uint64_arg(seed, &key) < 0 or _addr_arg(x_addr, False, &x) < 0
            or _addr_arg(y_addr, False, &y) < 0 or _addr_arg(mask_addr, True, &m) < 0):
        return False
    _plan_contiguous(&P, OP_DROPOUT, KS_DRAWS, code, nn, nn, b, t, _inverted_scale(t, b), key,
                     st, 0, y, x, NULL, NULL, NULL, <uint8_t*>m, NULL)
    _execute(&P, code, _workers(nn, threads))
    return True


def fast_dropout_backward_ptr(g_addr, dx_addr, n, dtype_code, p, mask_addr, seed, stream,
                              bits, n_threads):
    """fastdrop.dropout_backward(g, p, mask=..., seed=..., stream=stream, bits=bits,
    out=dx) of the n C-contiguous elements at g_addr into dx_addr (g_addr itself or
    disjoint): from the packed mask at mask_addr, or (mask_addr 0) regenerated from seed.
    Returns True when it ran, False (nothing written) for a call outside the common one."""
    cdef uint64_t key = 0, st, nn
    cdef int code, b, threads
    cdef int64_t t
    cdef char* g
    cdef char* dx
    cdef char* m
    cdef Plan P
    if _ptr_common(n, dtype_code, p, stream, bits, n_threads, &nn, &code, &b, &st, &threads,
                   &t) < 0:
        return False
    if (_addr_arg(g_addr, False, &g) < 0 or _addr_arg(dx_addr, False, &dx) < 0
            or _addr_arg(mask_addr, True, &m) < 0):
        return False
    if m == NULL and _uint64_arg(seed, &key) < 0:
        return False
    _plan_contiguous(&P, OP_DROPOUT, KS_DRAWS if m == NULL else KS_PACKED, code, nn, nn, b, t,
                     _inverted_scale(t, b), key, st, 0, dx, g, NULL, NULL,
                     <const uint8_t*>m, NULL, NULL)
    _execute(&P, code, _workers(nn, threads))
    return True
