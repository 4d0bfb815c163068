# The kernel driver's plan and its nogil entry, for the other kernel modules
# (cimport fastdrop._cpu._dropout): fastdrop._cpu._xla's XLA FFI handlers build a Plan
# on XLA's threads, without the GIL, and run it here.
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

# the half types and their conversions (src/fd_half.h), for both kernel modules
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

cdef enum:
    MAX_DIMS = 64

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

# dtype codes: 0 float32, 1 float64, 2 float16, 3 bfloat16 (DTYPE_CODES)

cdef void plan_choose_path(Plan* P, int code, bint has_bool_out, bint has_b) noexcept nogil

cdef int plan_run_nogil(const Plan* P, int code, int n_threads) noexcept nogil
