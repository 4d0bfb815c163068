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
written in one pass.  It equals the general driver bit for bit; the tests run both.
"""
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t
from libc.string cimport memcpy, memset
from cython.parallel cimport prange
from cpython.exc cimport PyErr_CheckSignals
from cpython.pycapsule cimport PyCapsule_GetPointer

from fastdrop._cpu._philox cimport draws_u16, draws_u32, simd_level

cdef extern from "fd_half.h" nogil:
    ctypedef struct fd_f16:
        uint16_t bits
    ctypedef struct fd_bf16:
        uint16_t bits
    float fd_f16_to_f32(fd_f16 v)
    fd_f16 fd_f32_to_f16(float v)
    float fd_bf16_to_f32(fd_bf16 v)
    fd_bf16 fd_f32_to_bf16(float v)
    float fd_keep_f32(float v, uint8_t k)
    double fd_keep_f64(double v, uint8_t k)
    float fd_select_f32(uint8_t k, float a, float b)
    double fd_select_f64(uint8_t k, double a, double b)

cdef extern from "fd_normal.h" nogil:
    void fd_normal_block(const uint32_t* r, double* z, int64_t n)
    void fd_gauss_noise(const uint32_t* r, double* g, int64_t n, double sigma)

cdef extern from "philox.h" nogil:
    enum: FD_SIMD_AVX2
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
    MAX_DIMS = 64
    SUB = 2048            # elements per draw buffer (a multiple of 8)
    FAST_SUB = 256        # elements per draw buffer of the fused path: one 16-bit tile
    CHUNK = 16 * SUB      # elements per unit of thread work (a multiple of 8)
    SIGNAL_CHUNKS = 256   # chunks between two looks at pending signals (8M elements)

# the op and keep-source numbers are fastdrop._core.ops' Op and Keep (fastdrop._cpu.backend
# checks them at import)
cpdef enum Op:
    OP_DROPOUT = 0    # y = x * s where kept, else +0
    OP_BDA = 1        # y = r + ((x + b) * s where kept, else +0)
    OP_ALPHA = 2      # y = x * a + c where kept, else d
    OP_MASK = 3       # no y: only the mask outputs
    OP_GAUSS = 4      # y = x * g, g = 1 + s * z (z: normal deviate of word i; fd_normal.h)
    OP_NORMAL = 5     # y = z rounded to y's dtype (no x)

cpdef enum KeepSource:
    KS_DRAWS = 0      # Philox draws of the logical indices, compared with t
    KS_PACKED = 1     # a packed mask, bit i for logical element i
    KS_FLAGS = 2      # a bool operand with (broadcast) strides
DTYPE_CODES = {"float32": 0, "float64": 1, "float16": 2, "bfloat16": 3}
cdef int _HAS_F16C = fd_cpu_has_f16c()
HAS_F16C = bool(_HAS_F16C)  # float16 takes the fused path only with F16C

cdef struct Plan:
    int op
    int ks
    int bits
    int nd
    int none_kept
    int stream_stores
    int gmap              # draws follow sg (a block of a larger array), not pos
    int fused             # the fused AVX2 paths (fd_fused.h): 1 _chunk_fused, 2 _chunk_fused_bda
    uint32_t t
    uint64_t n
    uint64_t seed
    uint64_t stream
    uint64_t offset       # draw index of element 0 (gmap: its global index)
    double s
    double a
    double c
    double d
    int64_t shape[MAX_DIMS]
    char* y
    const char* x
    const char* b
    const char* r
    const uint8_t* f
    int64_t sy[MAX_DIMS]
    int64_t sx[MAX_DIMS]
    int64_t sb[MAX_DIMS]
    int64_t sr[MAX_DIMS]
    int64_t sf[MAX_DIMS]
    uint64_t sg[MAX_DIMS]  # draw-index strides (elements) of a block's axes in the global
                           # array: up to 2^63 and more, so unsigned (arithmetic mod 2^64)
    const uint8_t* packed_in
    uint8_t* packed_out
    uint8_t* bool_out


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
    if P.none_kept:
        memset(kb, 0, m)
        return
    if P.bits == 16:  # t < 2^16 here: compare the 16-bit draws as they are
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
                              uint32_t* draws) noexcept nogil:
    """The m draws of elements pos .. pos+m-1 into draws (16-bit draws packed two to a
    word at bits=16); nothing when no element can be kept."""
    if P.none_kept:
        return
    if P.bits == 16:
        draws_u16(P.seed, P.stream, P.offset + pos, <uint64_t>m, <uint16_t*>draws)
    else:
        draws_u32(P.seed, P.stream, P.offset + pos, <uint64_t>m, draws)


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
    while pos < b:
        m = <int64_t>(b - pos if b - pos < FAST_SUB else FAST_SUB)
        _fused_draws(P, pos, m, draws)
        y = <real_t*>P.y + pos if P.y != NULL else NULL
        pk = P.packed_out + pos // 8 if P.packed_out != NULL else NULL
        if real_t is float:
            fd_fused_f32(d16, draws, P.bits, P.t, P.none_kept, <const float*>P.x + pos,
                         y, pk, m, <float>P.s, P.stream_stores)
        elif real_t is double:
            fd_fused_f64(d16, draws, P.bits, P.t, P.none_kept, <const double*>P.x + pos,
                         y, pk, m, P.s, P.stream_stores)
        else:
            fd_fused_h16(real_t is fd_bf16, d16, draws, P.bits, P.t, P.none_kept,
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
    _unravel(P, a, idx)
    while pos < b:
        m = <int64_t>(b - pos if b - pos < FAST_SUB else FAST_SUB)
        _fused_draws(P, pos, m, draws)
        if P.packed_out != NULL:  # the mask only (no x, no y)
            fd_fused_f32(d16, draws, P.bits, P.t, P.none_kept, NULL, NULL,
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
                fd_fused_bda_f32(d16 + k, draws + k, P.bits, P.t, P.none_kept,
                                 <const float*>(P.x + ox),
                                 <const float*>(P.b + ob) if P.b != NULL else NULL,
                                 <const float*>(P.r + orr), <float*>(P.y + oy), seg,
                                 <float>P.s, P.stream_stores)
            elif real_t is double:
                fd_fused_bda_f64(d16 + k, draws + k, P.bits, P.t, P.none_kept,
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
    P.stream_stores = FD_HAVE_STREAM and (op == OP_DROPOUT or op == OP_BDA) and n * (
        8 if code == 1 else 4 if code == 0 else 2) >= STREAM_MIN_BYTES
    P.none_kept = t >= (<uint64_t>1 << bits)
    # the fused path: contiguous rows (one coalesced axis), flags from the draws, dropout
    # or the packed mask only, and the AVX2 level selected (float16 also needs F16C)
    isz = 8 if code == 1 else 4 if code == 0 else 2
    P.fused = (FD_HAVE_FUSED and simd_level() == FD_SIMD_AVX2 and not P.gmap
               and ks == KS_DRAWS and bool_out is None and (code != 2 or _HAS_F16C)
               and P.nd == 1
               and (op == OP_MASK or (op == OP_DROPOUT and P.sx[0] == isz
                                      and P.sy[0] == isz)))
    # and bias-dropout-add of float32/float64 with contiguous rows (any number of rows)
    nd = P.nd
    if (not P.fused and FD_HAVE_FUSED and simd_level() == FD_SIMD_AVX2 and not P.gmap
            and op == OP_BDA and ks == KS_DRAWS and bool_out is None and code <= 1
            and P.sx[nd - 1] == isz and P.sy[nd - 1] == isz and P.sr[nd - 1] == isz
            and (b is None or P.sb[nd - 1] == isz)):
        P.fused = 2
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
    cdef Py_ssize_t ci, c0 = 0, c1, n_chunks = <Py_ssize_t>((n + CHUNK - 1) // CHUNK)
    cdef int workers = n_threads if n_chunks >= n_threads else <int>n_chunks
    cdef uint64_t lo, hi
    # SIGNAL_CHUNKS chunks per parallel region, then a look at the signals: Ctrl-C stops a
    # long call within milliseconds (the chunks, hence the result, are the same)
    while c0 < n_chunks:
        c1 = c0 + SIGNAL_CHUNKS if n_chunks - c0 > SIGNAL_CHUNKS else n_chunks
        for ci in prange(c0, c1, nogil=True, schedule="static", num_threads=workers):
            lo = <uint64_t>ci * CHUNK
            hi = lo + CHUNK
            if hi > n:
                hi = n
            if code == 0:
                _chunk(<float*>NULL, &P, lo, hi)
            elif code == 1:
                _chunk(<double*>NULL, &P, lo, hi)
            elif code == 2:
                _chunk(<fd_f16*>NULL, &P, lo, hi)
            else:
                _chunk(<fd_bf16*>NULL, &P, lo, hi)
        c0 = c1
        if c0 < n_chunks:
            PyErr_CheckSignals()
    return P.fused != 0
