# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""XLA FFI handlers: fastdrop's CPU kernels as XLA custom calls (fastdrop.jax under jit).

Private.  Each handler is a C function ``XLA_FFI_Error* (XLA_FFI_CallFrame*)`` written
against XLA's stable C API (src/xla_ffi_c_api.h, vendored from jaxlib; the frame protocol
in src/xla_ffi_fastdrop.h), so this module builds with fastdrop's normal build: no JAX,
no C++.  fastdrop.jax registers `capsules()` with ``jax.ffi.register_ffi_target`` and
lowers its primitive to ``stablehlo.custom_call`` ops of these targets.

XLA calls a handler on its own threads, without the GIL: the handlers read XLA's buffers,
build a `Plan` (fastdrop._cpu._dropout.pxd) and run it with ``plan_run_nogil``, writing
the result buffers XLA allocated (no copy).  No Python is touched; a bad call returns an
XLA_FFI_Error (the XLA program fails with its message) and writes nothing.

The call (every target): operands ``x`` (float16/bfloat16/float32/float64, leading batch
axes allowed), then ``words`` (uint32, the batch axes + (4,): seed lo, seed hi, stream lo,
stream hi), then, with a block, ``origin`` (uint32, the batch axes + (ndim, 2): lo, hi of
each axis's origin); results of x's shape.  Attributes (computed in Python by
fastdrop._core.contract, so the constants are the NumPy API's own): ``kop`` (the kernel's
Op), ``t``, ``bits``, ``scale``, and ``a``, ``c``, ``d`` (alpha dropout), ``has_bias``
(bias-dropout-add), ``gshape`` (i64 array: the global shape of a block), ``noise`` (i64
array: a noise shape smaller than x's, the global one with a block, -1 standing for x's
size on that axis (a symbolic dimension of an export) without a block; its keep flags go
through a scratch byte array, then broadcast over x, as fastdrop._cpu.backend does).

Threads: at most `threads()` per call (`set_threads`, set by fastdrop.jax from
fastdrop._cpu.backend's policy when it registers the targets), and at most one per
GRAIN (2^17) elements, as every other kernel call.
"""
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from cpython.pycapsule cimport PyCapsule_New

from fastdrop._cpu._dropout cimport (fd_f16, fd_bf16, fd_f16_to_f32, fd_f32_to_f16,
                                     fd_bf16_to_f32, fd_f32_to_bf16, Plan, MAX_DIMS,
                                     OP_DROPOUT, OP_BDA, OP_ALPHA, OP_GAUSS, OP_MASK,
                                     KS_DRAWS, KS_FLAGS, plan_choose_path, plan_run_nogil)

cdef extern from "xla_ffi_fastdrop.h" nogil:
    ctypedef struct XLA_FFI_Error:
        pass
    ctypedef struct XLA_FFI_CallFrame:
        pass
    ctypedef enum XLA_FFI_DataType:
        XLA_FFI_DataType_U32
        XLA_FFI_DataType_F16
        XLA_FFI_DataType_F32
        XLA_FFI_DataType_F64
        XLA_FFI_DataType_BF16
    ctypedef struct XLA_FFI_Buffer:
        XLA_FFI_DataType dtype
        void* data
        int64_t rank
        int64_t* dims
    enum:
        FD_FFI_API_MAJOR
        FD_FFI_API_MINOR
    XLA_FFI_Error* fd_ffi_error(const XLA_FFI_CallFrame* f, int invalid, const char* msg)
    int fd_ffi_prologue(XLA_FFI_CallFrame* f, XLA_FFI_Error** err)
    int64_t fd_ffi_nargs(const XLA_FFI_CallFrame* f)
    int64_t fd_ffi_nrets(const XLA_FFI_CallFrame* f)
    XLA_FFI_Buffer* fd_ffi_arg(const XLA_FFI_CallFrame* f, int64_t i)
    XLA_FFI_Buffer* fd_ffi_ret(const XLA_FFI_CallFrame* f, int64_t i)
    int fd_ffi_attr_i64(const XLA_FFI_CallFrame* f, const char* name, int64_t* out)
    int fd_ffi_attr_f64(const XLA_FFI_CallFrame* f, const char* name, double* out)
    int fd_ffi_attr_i64s(const XLA_FFI_CallFrame* f, const char* name, const int64_t** data,
                         int64_t* n)

API_VERSION = (FD_FFI_API_MAJOR, FD_FFI_API_MINOR)  # of the vendored header

cdef int _threads = 1          # the most threads a handler call runs on (set_threads)
cdef int _parallel_ran = 0     # a handler ran a parallel region (fork safety)
cdef long long _calls = 0      # handler executions (a test counter, counted atomically:
                               # XLA runs the devices' handlers on several threads)

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    static inline void fd_count_call(long long* c) { __atomic_fetch_add(c, 1, __ATOMIC_RELAXED); }
    static inline long long fd_read_calls(long long* c) { return __atomic_load_n(c, __ATOMIC_RELAXED); }
    #else  /* another compiler: a plain count (a test counter only) */
    static inline void fd_count_call(long long* c) { *c += 1; }
    static inline long long fd_read_calls(long long* c) { return *c; }
    #endif
    """
    void fd_count_call(long long* c) nogil
    long long fd_read_calls(long long* c) nogil

# handler kinds
cdef enum:
    H_UNARY = 0     # dropout, its backward, alpha, alpha backward, gaussian, its backward
    H_BDA = 1       # bias-dropout-add
    H_BDA_BWD = 2   # bias-dropout-add backward: dx and dbias


cdef struct Call:
    int code            # dtype code (_dropout.DTYPE_CODES)
    int64_t isz
    int nd              # core rank
    int64_t shape[MAX_DIMS]
    uint64_t n          # core elements
    uint64_t batch      # batch elements
    const uint32_t* words
    const uint32_t* origin   # NULL without a block
    const int64_t* gshape
    const int64_t* noise     # NULL: the noise is x's shape; else one entry per axis
    int64_t nr[MAX_DIMS]     # the noise attribute, its -1 entries resolved (C.noise)
    int64_t nl[MAX_DIMS]     # a core element's noise shape (x's, or 1 where broadcast)
    uint64_t nf              # its size
    int64_t kop, t, bits, has_bias
    double scale, a, c, d


cdef inline int _code(XLA_FFI_DataType dt) noexcept nogil:
    if dt == XLA_FFI_DataType_F32:
        return 0
    if dt == XLA_FFI_DataType_F64:
        return 1
    if dt == XLA_FFI_DataType_F16:
        return 2
    if dt == XLA_FFI_DataType_BF16:
        return 3
    return -1


cdef inline bint _same_dims(const XLA_FFI_Buffer* a, const XLA_FFI_Buffer* b) noexcept nogil:
    cdef int64_t k
    if a.rank != b.rank:
        return False
    for k in range(a.rank):
        if a.dims[k] != b.dims[k]:
            return False
    return True


cdef const char* _decode(XLA_FFI_CallFrame* f, int kind, Call* C) noexcept nogil:
    """Check the call's operands and attributes and fill C: NULL, or the error message."""
    cdef XLA_FFI_Buffer* x = fd_ffi_arg(f, 0)
    cdef XLA_FFI_Buffer* w
    cdef XLA_FFI_Buffer* o = NULL
    cdef XLA_FFI_Buffer* y = fd_ffi_ret(f, 0)
    cdef XLA_FFI_Buffer* other
    cdef int64_t k, nb, ng = 0, iw, narrays, hb = 0
    cdef int rc
    if x == NULL or y == NULL:
        return "fastdrop: the first operand and result must be buffers"
    C.code = _code(x.dtype)
    if C.code < 0:
        return "fastdrop: x must be float16, bfloat16, float32 or float64"
    C.isz = 8 if C.code == 1 else 4 if C.code == 0 else 2
    if y.dtype != x.dtype or not _same_dims(x, y):
        return "fastdrop: the result must have x's dtype and shape"
    C.kop = OP_DROPOUT
    C.t = C.has_bias = 0
    C.bits = 16
    C.scale, C.a, C.c, C.d = 1.0, 0.0, 0.0, 0.0
    if (fd_ffi_attr_i64(f, "t", &C.t) != 0 or fd_ffi_attr_i64(f, "bits", &C.bits) != 0
            or fd_ffi_attr_f64(f, "scale", &C.scale) != 0):
        return "fastdrop: attributes t (i64), bits (i64) and scale (f64) are required"
    if C.bits != 8 and C.bits != 16 and C.bits != 32:
        return "fastdrop: bits must be 8, 16 or 32"
    if C.t < 0 or C.t > (<int64_t>1 << C.bits):
        return "fastdrop: t must be in [0, 2**bits]"
    if fd_ffi_attr_i64(f, "kop", &C.kop) == -2 or fd_ffi_attr_i64(f, "has_bias", &C.has_bias) == -2:
        return "fastdrop: attributes kop and has_bias must be integers"
    if (fd_ffi_attr_f64(f, "a", &C.a) == -2 or fd_ffi_attr_f64(f, "c", &C.c) == -2
            or fd_ffi_attr_f64(f, "d", &C.d) == -2):
        return "fastdrop: attributes a, c and d must be floats"
    if kind == H_UNARY:
        if C.kop != OP_DROPOUT and C.kop != OP_ALPHA and C.kop != OP_GAUSS:
            return "fastdrop: kop must be OP_DROPOUT, OP_ALPHA or OP_GAUSS"
        narrays = 1
    elif kind == H_BDA:
        C.kop = OP_BDA
        narrays = 3 if C.has_bias else 2
    else:
        C.kop = OP_DROPOUT
        narrays = 1
    iw = narrays
    w = fd_ffi_arg(f, iw)
    if w == NULL or w.dtype != XLA_FFI_DataType_U32 or w.rank < 1 or w.dims[w.rank - 1] != 4:
        return "fastdrop: the words operand must be uint32 of shape (batch..., 4)"
    nb = w.rank - 1
    if x.rank < nb:
        return "fastdrop: x must have the words' batch axes"
    C.batch = 1
    for k in range(nb):
        if x.dims[k] != w.dims[k]:
            return "fastdrop: x and the words must have the same batch axes"
        C.batch *= <uint64_t>w.dims[k]
    C.nd = <int>(x.rank - nb)
    if C.nd > MAX_DIMS:
        return "fastdrop: too many dimensions"
    C.n = 1
    for k in range(C.nd):
        C.shape[k] = x.dims[nb + k]
        C.n *= <uint64_t>C.shape[k]
    C.words = <const uint32_t*>w.data
    C.origin = NULL
    C.gshape = NULL
    if fd_ffi_attr_i64(f, "has_block", &hb) == -2:
        return "fastdrop: attribute has_block must be an integer"
    rc = fd_ffi_attr_i64s(f, "gshape", &C.gshape, &ng)
    if rc == -2:
        return "fastdrop: attribute gshape must be an i64 array"
    if hb:
        o = fd_ffi_arg(f, iw + 1)
        if (o == NULL or o.dtype != XLA_FFI_DataType_U32 or o.rank != nb + 2
                or o.dims[nb] != C.nd or o.dims[nb + 1] != 2 or (C.nd > 0 and ng != C.nd)):
            return ("fastdrop: a block needs an origin operand uint32 (batch..., ndim, 2) "
                    "and gshape of ndim entries")
        for k in range(nb):
            if o.dims[k] != w.dims[k]:
                return "fastdrop: the origin must have the words' batch axes"
        if C.nd > 0:  # a 0-d block is its one element: draw 0, as without a block
            C.origin = <const uint32_t*>o.data
    if fd_ffi_nargs(f) != iw + 1 + (o != NULL):
        return "fastdrop: wrong number of operands"
    C.noise = NULL
    C.nf = C.n
    rc = fd_ffi_attr_i64s(f, "noise", &C.noise, &ng)
    if rc == -2 or (rc == 0 and (kind != H_UNARY or C.kop == OP_GAUSS or ng != C.nd)):
        return ("fastdrop: attribute noise must be an i64 array of one entry per axis "
                "(dropout and alpha dropout only)")
    if rc == 0:
        C.nf = 1
        for k in range(C.nd):
            # -1: x's size on that axis (a symbolic dimension of jax.export; no block)
            C.nr[k] = C.shape[k] if C.noise[k] == -1 and C.origin == NULL else C.noise[k]
            if C.nr[k] != 1 and C.nr[k] != (C.gshape[k] if C.origin != NULL else C.shape[k]):
                return "fastdrop: the noise shape must have x's (the global) entries or 1"
            C.nl[k] = C.shape[k] if C.nr[k] != 1 else 1
            C.nf *= <uint64_t>C.nl[k]
        C.noise = C.nr
    # the other arrays of bias-dropout-add
    if kind == H_BDA:
        if C.nd == 0 and C.has_bias:
            return "fastdrop: bias needs x with at least one axis"
        for k in range(1, narrays):
            other = fd_ffi_arg(f, k)
            if other == NULL or other.dtype != x.dtype:
                return "fastdrop: bias and residual must have x's dtype"
            if k == narrays - 1:  # residual
                if not _same_dims(other, x):
                    return "fastdrop: residual must have x's shape"
            elif (other.rank != nb + 1 or other.dims[nb] != C.shape[C.nd - 1]
                  or any_batch_differs(other, x, nb)):
                return "fastdrop: bias must have shape (batch..., x.shape[-1])"
    if kind == H_BDA_BWD:
        if fd_ffi_nrets(f) != 1 + (C.has_bias != 0):
            return "fastdrop: bias_dropout_add_backward has dx (and dbias) results"
        if C.has_bias:
            if C.nd == 0:
                return "fastdrop: dbias needs grad with at least one axis"
            if C.shape[C.nd - 1] == 1:
                return ("fastdrop: a one-column dbias is not computed here (NumPy sums it "
                        "pairwise): the callback runs it")
            other = fd_ffi_ret(f, 1)
            if (other == NULL or other.dtype != x.dtype or other.rank != nb + 1
                    or other.dims[nb] != C.shape[C.nd - 1] or any_batch_differs(other, x, nb)):
                return "fastdrop: dbias must have shape (batch..., grad.shape[-1])"
    elif fd_ffi_nrets(f) != 1:
        return "fastdrop: wrong number of results"
    return NULL


cdef inline bint any_batch_differs(const XLA_FFI_Buffer* a, const XLA_FFI_Buffer* b,
                                   int64_t nb) noexcept nogil:
    cdef int64_t k
    for k in range(nb):
        if a.dims[k] != b.dims[k]:
            return True
    return False


cdef const char* _fill(Plan* P, const Call* C, uint64_t i, char* y, const char* x,
                       const char* b, const char* r, int kop,
                       const uint8_t* flags=NULL) noexcept nogil:
    """The plan of batch element i: C-contiguous operands of the core shape (a bias along
    the last axis), draws of the element's own words (and block), axes coalesced.
    NULL, or an error message (a block that does not fit its global shape)."""
    cdef int nd = C.nd, k, j
    cdef int64_t acc = C.isz
    cdef uint64_t g = 1, o, base = 0
    cdef const uint32_t* ow
    cdef const uint32_t* w = C.words + 4 * i
    cdef int64_t facc = 1
    P.op, P.ks, P.bits = kop, KS_DRAWS if C.noise == NULL else KS_FLAGS, <int>C.bits
    P.seed = <uint64_t>w[0] | (<uint64_t>w[1] << 32)
    P.stream = <uint64_t>w[2] | (<uint64_t>w[3] << 32)
    P.none_kept = C.t >= (<int64_t>1 << C.bits)
    P.t = <uint32_t>C.t if not P.none_kept else 0
    P.s, P.a, P.c, P.d = C.scale, C.a, C.c, C.d
    P.y, P.x, P.b, P.r, P.f = y, x, b, r, flags
    P.packed_in, P.packed_out, P.bool_out = NULL, NULL, NULL
    P.n = C.n
    P.gmap = C.origin != NULL and nd > 0
    # C-order strides (bytes), the bias's (0 but on the last axis), the global draw strides
    for k in range(nd - 1, -1, -1):
        P.shape[k] = C.shape[k]
        P.sx[k] = P.sy[k] = P.sr[k] = acc
        P.sb[k] = C.isz if (b != NULL and k == nd - 1) else 0
        P.sf[k] = 0
        if C.noise != NULL:  # the keep flags of the noise, broadcast over x
            P.sf[k] = facc if C.nl[k] != 1 else 0
            facc *= C.nl[k]
        acc *= C.shape[k]
        if P.gmap:
            P.sg[k] = g
            g *= <uint64_t>C.gshape[k]
        else:
            P.sg[k] = 0
    if r == NULL:
        for k in range(nd):
            P.sr[k] = 0
    if P.gmap:
        ow = C.origin + 2 * <uint64_t>nd * i
        for k in range(nd):
            o = <uint64_t>ow[2 * k] | (<uint64_t>ow[2 * k + 1] << 32)
            if C.gshape[k] < 0 or o > <uint64_t>C.gshape[k] or \
                    <uint64_t>C.shape[k] > <uint64_t>C.gshape[k] - o:
                return ("fastdrop: the block does not fit its global shape "
                        "(origin + shape > global shape)")
            base += o * P.sg[k]
    P.offset = base
    if C.noise != NULL:  # the draws went into the flags (_fill_mask)
        P.gmap, P.offset = 0, 0
        for k in range(nd):
            P.sg[k] = 0
    P.nd = nd
    _coalesce(P, C.isz, r != NULL, b != NULL)
    plan_choose_path(P, C.code, False, b != NULL)
    return NULL


cdef void _coalesce(Plan* P, int64_t isz, bint has_r, bint has_b) noexcept nogil:
    """Drop axes of size 1 and merge an axis into the next where every stride allows (the
    driver's fused paths want one axis); C order, hence the draws, unchanged."""
    cdef int nd = P.nd, k, j
    j = 0
    for k in range(nd):
        if P.shape[k] == 1:
            continue
        if j > 0 and _mergeable(P, j - 1, k):
            P.shape[j - 1] *= P.shape[k]
            P.sx[j - 1], P.sy[j - 1], P.sb[j - 1] = P.sx[k], P.sy[k], P.sb[k]
            P.sr[j - 1], P.sg[j - 1], P.sf[j - 1] = P.sr[k], P.sg[k], P.sf[k]
            continue
        P.shape[j] = P.shape[k]
        P.sx[j], P.sy[j], P.sb[j], P.sr[j], P.sg[j] = P.sx[k], P.sy[k], P.sb[k], P.sr[k], P.sg[k]
        P.sf[j] = P.sf[k]
        j += 1
    if j == 0:  # 0-d, or every axis of size 1: one element
        P.shape[0] = 1
        P.sx[0] = P.sy[0] = isz
        P.sr[0] = isz if has_r else 0
        P.sb[0] = isz if has_b else 0
        P.sf[0] = 0
        P.sg[0] = 1
        j = 1
    P.nd = j


cdef void _fill_mask(Plan* M, const Call* C, uint64_t i, uint8_t* flags) noexcept nogil:
    """The plan of the keep flags of batch element i's noise (one byte per noise element,
    C order): its draws, as fastdrop._cpu.backend draws a noise shape (one run of draws
    without a block; with one, the draws of the block's part of the global noise)."""
    cdef int nd = C.nd, k
    cdef uint64_t g = 1, o, base = 0
    cdef const uint32_t* ow
    cdef const uint32_t* w = C.words + 4 * i
    M.op, M.ks, M.bits = OP_MASK, KS_DRAWS, <int>C.bits
    M.seed = <uint64_t>w[0] | (<uint64_t>w[1] << 32)
    M.stream = <uint64_t>w[2] | (<uint64_t>w[3] << 32)
    M.none_kept = C.t >= (<int64_t>1 << C.bits)
    M.t = <uint32_t>C.t if not M.none_kept else 0
    M.s, M.a, M.c, M.d = 1.0, 0.0, 0.0, 0.0
    M.y, M.x, M.b, M.r, M.f = NULL, NULL, NULL, NULL, NULL
    M.packed_in, M.packed_out, M.bool_out = NULL, NULL, flags
    M.n = C.nf
    M.gmap = C.origin != NULL
    M.nd = nd
    for k in range(nd - 1, -1, -1):
        M.shape[k] = C.nl[k]
        M.sx[k] = M.sy[k] = M.sb[k] = M.sr[k] = M.sf[k] = 0
        M.sg[k] = g if M.gmap else 0
        g *= <uint64_t>C.noise[k]
    if M.gmap:
        ow = C.origin + 2 * <uint64_t>nd * i
        for k in range(nd):
            o = <uint64_t>ow[2 * k] | (<uint64_t>ow[2 * k + 1] << 32)
            if C.noise[k] != 1:
                base += o * M.sg[k]
    else:  # one run of draws over the noise, as a 1-D array
        M.nd = 1
        M.shape[0] = <int64_t>C.nf
        M.sg[0] = 0
    M.offset = base
    _coalesce(M, 4, False, False)
    plan_choose_path(M, 0, True, False)


cdef inline bint _mergeable(const Plan* P, int a, int k) noexcept nogil:
    """Axis a (kept so far) and axis k (next, of size P.shape[k]) merge into one."""
    cdef int64_t m = P.shape[k]
    return (P.sx[a] == P.sx[k] * m and P.sy[a] == P.sy[k] * m and P.sb[a] == P.sb[k] * m
            and P.sr[a] == P.sr[k] * m and P.sf[a] == P.sf[k] * m
            and P.sg[a] == P.sg[k] * <uint64_t>m)


cdef inline void _run(const Plan* P, int code) noexcept nogil:
    global _parallel_ran
    if P.n == 0:
        return
    if plan_run_nogil(P, code, _threads) > 1:
        _parallel_ran = 1


cdef XLA_FFI_Error* _handle(XLA_FFI_CallFrame* f, int kind) noexcept nogil:
    global _calls
    cdef XLA_FFI_Error* err
    cdef Call C
    cdef Plan P
    cdef const char* msg
    cdef uint64_t i, nbytes
    cdef char* y
    cdef const char* x
    cdef const char* bias = NULL
    cdef const char* res = NULL
    if fd_ffi_prologue(f, &err):
        return err
    msg = _decode(f, kind, &C)
    if msg != NULL:
        return fd_ffi_error(f, 1, msg)
    fd_count_call(&_calls)
    nbytes = C.n * <uint64_t>C.isz
    x = <const char*>fd_ffi_arg(f, 0).data
    y = <char*>fd_ffi_ret(f, 0).data
    if kind == H_BDA:
        res = <const char*>fd_ffi_arg(f, 2 if C.has_bias else 1).data
        if C.has_bias:
            bias = <const char*>fd_ffi_arg(f, 1).data
    # every element's plan is checked before any is run: no partial writes
    for i in range(C.batch):
        msg = _fill(&P, &C, i, NULL, NULL, NULL, NULL, <int>C.kop)
        if msg != NULL:
            return fd_ffi_error(f, 1, msg)
    if kind == H_BDA_BWD:
        return _bda_backward(f, &C, x, y)
    if C.noise != NULL:
        return _noise_run(f, &C, x, y)
    for i in range(C.batch):
        _fill(&P, &C, i, y + i * nbytes, x + i * nbytes,
              bias + i * <uint64_t>C.shape[C.nd - 1] * C.isz if bias != NULL else NULL,
              res + i * nbytes if res != NULL else NULL, <int>C.kop)
        _run(&P, C.code)
    return NULL


cdef XLA_FFI_Error* _noise_run(XLA_FFI_CallFrame* f, const Call* C, const char* x,
                               char* y) noexcept nogil:
    """Dropout or alpha dropout with a noise shape: the flags of each element's noise
    (_fill_mask), then the op with the flags broadcast over x."""
    cdef Plan M, P
    cdef uint64_t i, nbytes = C.n * <uint64_t>C.isz
    cdef uint8_t* flags
    if C.n == 0:
        return NULL
    flags = <uint8_t*>malloc(C.nf if C.nf else 1)
    if flags == NULL:
        return fd_ffi_error(f, 0, "fastdrop: out of memory (the noise's flags)")
    for i in range(C.batch):
        _fill_mask(&M, C, i, flags)
        _run(&M, 0)
        _fill(&P, C, i, y + i * nbytes, x + i * nbytes, NULL, NULL, <int>C.kop, flags)
        _run(&P, C.code)
    free(flags)
    return NULL


cdef XLA_FFI_Error* _bda_backward(XLA_FFI_CallFrame* f, const Call* C, const char* g,
                                  char* dx) noexcept nogil:
    """dx = the dropout of grad (its backward) and dbias = dx summed over all axes but the
    last, in float64, row after row, from the compute-precision dx (float32 for the half
    types), as fastdrop._cpu.backend._bias_backward; a one-column dbias is refused by
    _decode (NumPy sums a single column pairwise)."""
    cdef Plan P
    cdef uint64_t i, n = C.n, nbytes = C.n * <uint64_t>C.isz, q, rows = 0, cols = 0, rr, jj
    cdef char* dbias = NULL
    cdef float* tmp = NULL
    cdef double* acc = NULL
    cdef const char* src
    cdef Call C32
    if C.has_bias:
        dbias = <char*>fd_ffi_ret(f, 1).data
        cols = <uint64_t>C.shape[C.nd - 1]
        rows = n // cols if cols else 0
        acc = <double*>malloc((cols if cols else 1) * sizeof(double))
        if C.code >= 2:
            tmp = <float*>malloc((n if n else 1) * sizeof(float))
        if acc == NULL or (C.code >= 2 and tmp == NULL):
            free(acc)
            free(tmp)
            return fd_ffi_error(f, 0, "fastdrop: out of memory (bias_dropout_add_backward)")
    for i in range(C.batch):
        if not C.has_bias or C.code < 2:
            _fill(&P, C, i, dx + i * nbytes, g + i * nbytes, NULL, NULL, OP_DROPOUT)
            _run(&P, C.code)
        if not C.has_bias:
            continue
        if C.code >= 2:  # the half types: dx in float32 first (the compute precision)
            src = g + i * nbytes
            for q in range(n):
                if C.code == 2:
                    tmp[q] = fd_f16_to_f32((<const fd_f16*>src)[q])
                else:
                    tmp[q] = fd_bf16_to_f32((<const fd_bf16*>src)[q])
            C32 = C[0]
            C32.code, C32.isz = 0, 4
            _fill(&P, &C32, i, <char*>tmp, <const char*>tmp, NULL, NULL, OP_DROPOUT)
            _run(&P, 0)
            for q in range(n):
                if C.code == 2:
                    (<fd_f16*>(dx + i * nbytes))[q] = fd_f32_to_f16(tmp[q])
                else:
                    (<fd_bf16*>(dx + i * nbytes))[q] = fd_f32_to_bf16(tmp[q])
        # dbias: the first row, then each next row added (NumPy's sum over axis 0 of a
        # C-ordered float64 array of more than one column); no rows: zeros
        for jj in range(cols):
            acc[jj] = 0.0
        for rr in range(rows):
            for jj in range(cols):
                if C.code == 0:
                    _acc(acc, jj, rr, <double>(<const float*>(dx + i * nbytes))[rr * cols + jj])
                elif C.code == 1:
                    _acc(acc, jj, rr, (<const double*>(dx + i * nbytes))[rr * cols + jj])
                else:
                    _acc(acc, jj, rr, <double>tmp[rr * cols + jj])
        for jj in range(cols):
            if C.code == 0:
                (<float*>dbias)[i * cols + jj] = <float>acc[jj]
            elif C.code == 1:
                (<double*>dbias)[i * cols + jj] = acc[jj]
            elif C.code == 2:
                (<fd_f16*>dbias)[i * cols + jj] = fd_f32_to_f16(_f64_to_f32(acc[jj]))
            else:
                (<fd_bf16*>dbias)[i * cols + jj] = fd_f32_to_bf16(_f64_to_f32(acc[jj]))
    free(acc)
    free(tmp)
    return NULL


cdef inline void _acc(double* acc, uint64_t j, uint64_t row, double v) noexcept nogil:
    if row == 0:
        acc[j] = v
    else:
        acc[j] = acc[j] + v


cdef extern from *:
    """
    #include <math.h>
    /* double -> float rounded to odd: then float -> float16 / bfloat16 (round to nearest
       even) rounds as one direct double -> half rounding would (float keeps more than 2
       extra bits), which is how NumPy and ml_dtypes cast float64 sums to the half types */
    static inline float fd_f64_to_f32_odd(double d)
    {
        float f = (float)d;
        uint32_t u;
        if (d != d || (double)f == d)
            return f;
        if (fabs((double)f) > fabs(d))
            f = nextafterf(f, 0.0f);
        memcpy(&u, &f, 4);
        u |= 1u;
        memcpy(&f, &u, 4);
        return f;
    }
    """
    float fd_f64_to_f32_odd(double d) nogil


cdef inline float _f64_to_f32(double v) noexcept nogil:
    return fd_f64_to_f32_odd(v)


# ---- the handlers (one C function per kind; each target names one) ------------------------

cdef XLA_FFI_Error* _h_unary(XLA_FFI_CallFrame* f) noexcept nogil:
    return _handle(f, H_UNARY)


cdef XLA_FFI_Error* _h_bda(XLA_FFI_CallFrame* f) noexcept nogil:
    return _handle(f, H_BDA)


cdef XLA_FFI_Error* _h_bda_backward(XLA_FFI_CallFrame* f) noexcept nogil:
    return _handle(f, H_BDA_BWD)


# fastdrop.jax's op -> (the XLA custom call target, the handler kind).  The names carry a
# version: an exported program (jax.export) names its targets, and a later fastdrop that
# changed a call's operands or attributes would register new names.
TARGETS = {
    "dropout": "fastdrop_dropout_v1",
    "dropout_backward": "fastdrop_dropout_backward_v1",
    "alpha": "fastdrop_alpha_v1",
    "alpha_backward": "fastdrop_alpha_backward_v1",
    "gaussian": "fastdrop_gaussian_v1",
    "gaussian_backward": "fastdrop_gaussian_backward_v1",
    "bda": "fastdrop_bda_v1",
    "bda_backward": "fastdrop_bda_backward_v1",
}


def capsules():
    """{target name: PyCapsule of its handler's address} (unnamed capsules, as
    jax.ffi.pycapsule makes), for jax.ffi.register_ffi_target(..., platform="cpu")."""
    out = {}
    for op, name in TARGETS.items():
        if op == "bda":
            out[name] = PyCapsule_New(<void*>_h_bda, NULL, NULL)
        elif op == "bda_backward":
            out[name] = PyCapsule_New(<void*>_h_bda_backward, NULL, NULL)
        else:
            out[name] = PyCapsule_New(<void*>_h_unary, NULL, NULL)
    return out


def set_threads(int n):
    """The most threads one handler call runs on (at least 1)."""
    global _threads
    _threads = n if n > 1 else 1


def threads():
    """The handlers' thread cap (`set_threads`)."""
    return _threads


def parallel_ran():
    """True once a handler ran a parallel region in this process (a forked child must not
    start one: libgomp's threads do not survive fork)."""
    return bool(_parallel_ran)


def calls():
    """Handler executions so far in this process (for the tests: which route ran)."""
    return fd_read_calls(&_calls)
