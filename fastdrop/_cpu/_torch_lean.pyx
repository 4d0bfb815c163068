# cython: boundscheck=False, wraparound=False
"""The torch adapter's lean path, per call, in C: the checks a training call makes on its
input (`lean_code`), the seed words a seeded layer takes from its seed buffer
(`take_words`), the modules' forward (`module_forward`), the backward of every lean call
(`lean_backward`), and the pool of recycled output buffers (`pool_array`).

At 2^8 elements a module's forward + backward is mostly Python (docs/benchmarks.md): these
are the same checks, words and calls as the Python they replace, without the bytecode.
torch is not needed to build or import this module: fastdrop._torch_ops hands the torch
objects they call in once (`bind`).
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.pycapsule cimport PyCapsule_GetPointer
from libc.stdint cimport int64_t, uint64_t, uintptr_t

# bound by fastdrop._torch_ops (bind): torch's classes, checks and allocators
cdef object _tensor = None, _parameter = None
cdef dict _codes = {}
cdef object _functorch_active, _dispatch_modes, _function_modes, _tracing, _profiler
cdef object _grad_enabled, _empty_like, _fresh_like, _ptr_backward, _lean_grad
cdef object _fresh_mask, _ptr_forward, _lean_run
cdef Py_ssize_t _small = 0
cdef bint _bound = False


def bind(*, tensor, parameter, codes, functorch_active, dispatch_modes, function_modes,
         tracing, profiler, grad_enabled, fresh_mask, empty_like, fresh_like, ptr_forward,
         ptr_backward, lean_run, lean_grad, small):
    """Hand in the torch objects the lean path calls (fastdrop._torch_ops, at import):
    the plain tensor classes, the dtype -> code map, the global-state checks (each a torch
    C call; `profiler` is torch.autograd.profiler, read for `_is_profiler_enabled`),
    torch.is_grad_enabled, the allocators (`fresh_mask` for packed masks; torch.empty_like
    for outputs of at most `small` elements, else `fresh_like`), the
    pointer kernels, and the general forward and backward (`lean_run`, `lean_grad`)."""
    global _tensor, _parameter, _codes, _functorch_active, _dispatch_modes
    global _function_modes, _tracing, _profiler, _grad_enabled, _empty_like, _fresh_like
    global _ptr_backward, _lean_grad, _small, _bound, _fresh_mask, _ptr_forward, _lean_run
    _tensor, _parameter, _codes = tensor, parameter, dict(codes)
    _functorch_active, _dispatch_modes, _function_modes = (functorch_active, dispatch_modes,
                                                           function_modes)
    _tracing, _profiler, _grad_enabled = tracing, profiler, grad_enabled
    _empty_like, _fresh_like, _ptr_backward, _lean_grad = (empty_like, fresh_like,
                                                           ptr_backward, lean_grad)
    _fresh_mask, _ptr_forward, _lean_run = fresh_mask, ptr_forward, lean_run
    _small = small
    _bound = True


def lean_code(x):
    """x's dtype code for the pointer kernels (0 float32, 1 float64, 2 float16) when a
    dropout of x may take the lean path, else -1: x a plain C-contiguous CPU tensor of one
    of those dtypes, not a lazy negation, and no torch.func transform, dispatch or function
    mode, profiler or jit trace active. Compilation is the caller's check (a call that
    torch.compile traces must not reach this C function)."""
    if not _bound:
        return -1
    cdef type t = type(x)
    if ((t is _tensor or t is _parameter) and x.is_cpu and x.is_contiguous()
            and not _functorch_active() and not _dispatch_modes() and not _function_modes()
            and not _profiler._is_profiler_enabled and not _tracing() and not x.is_neg()):
        return _codes.get(x.dtype, -1)
    return -1


def take_words(uintptr_t addr):
    """(seed, stream) of the next call from a layer's seed state at addr: three int64
    (seed low word, seed high word, stream), the seed's words read as unsigned 32-bit and
    the stream as unsigned 64-bit; the stream is advanced by one (int64 wrap). The caller
    keeps the state's memory alive and checks it is a CPU int64 tensor of 3 elements."""
    cdef int64_t* s = <int64_t*>addr
    cdef uint64_t lo = <uint64_t>s[0] & 0xFFFFFFFFu
    cdef uint64_t hi = <uint64_t>s[1] & 0xFFFFFFFFu
    cdef uint64_t st = <uint64_t>s[2]
    s[2] = <int64_t>(st + 1)  # two's complement: INT64_MAX + 1 is INT64_MIN
    return (lo | (hi << 32), st)


def module_forward(ctx, x, cfg):
    """y of a module's lean call (fastdrop._torch_ops._LeanModuleDropout; cfg: seed, stream,
    p, bits, keep the mask, threads (> 0), n, dtype code, all checked by the module): the
    pointer kernel into a new output (and a packed mask), else `lean_run`; ctx.fd keeps
    what the backward needs."""
    key, st, p, bits, keep_mask, nt, n, code = cfg
    y = _empty_like(x) if n <= _small else _fresh_like(x)
    mt = _fresh_mask((n + 7) // 8) if keep_mask else None
    if not _ptr_forward(x.data_ptr(), y.data_ptr(), n, code, p, key, st, bits,
                        0 if mt is None else mt.data_ptr(), nt):
        y, mt = _lean_run(x, key, st, p, bits, keep_mask, nt, False)
    ctx.fd = (key, st, p, bits, mt, nt, n, code)
    return y


def lean_backward(ctx, gy):
    """dx of a lean call (fastdrop._torch_ops._LeanDropout and _LeanModuleDropout, whose
    ctx.fd is (seed, stream, p, bits, packed mask tensor or None, threads (> 0), n, dtype
    code)), and None for its configuration: the pointer kernel on gy's memory when gy is
    plain and C-contiguous and no graph is recorded, else `lean_grad` (any layout;
    create_graph)."""
    key, st, p, bits, mt, nt, n, code = ctx.fd
    cdef type t = type(gy)
    if (not _grad_enabled() and (t is _tensor or t is _parameter) and gy.is_contiguous()
            and not gy.is_neg()):
        dt = _empty_like(gy) if n <= _small else _fresh_like(gy)
        if _ptr_backward(gy.data_ptr(), dt.data_ptr(), n, code, p,
                         0 if mt is None else mt.data_ptr(), key, st, bits, nt):
            return dt, None
    return _lean_grad(gy, key, st, p, bits, mt, nt), None


# ---- seed=None: two draws from torch's generator --------------------------------------------
# Through the opt-in C++ extension when it is bound (fastdrop._torch_draw: the draws of
# torch's own kernel, under the generator's lock, no tensor op). Otherwise one (2,) int64
# scratch tensor, drawn into by its own `random_` (bound: no attribute lookup) and read at
# its address. random_ releases the GIL while it runs: a call that finds the scratch busy
# (another thread drawing) gets None, and its caller draws into a tensor of its own.
ctypedef int (*_cpp_draw_fn)(PyObject*, uint64_t*) noexcept
cdef _cpp_draw_fn _cpp_draw = NULL
cdef object _cpp_capsule = None  # keeps the extension's capsule (and module) alive
cdef object _draw_random = None  # the bound method keeps the tensor
cdef const int64_t* _draw_at = NULL
cdef bint _draw_busy = False


def bind_cpp_draw(capsule):
    """Make the C++ extension's draw (fastdrop._torch_draw; `capsule` is its
    ``_draw_capsule``) seed=None's draw; None unbinds it (the draw through torch)."""
    global _cpp_draw, _cpp_capsule
    if capsule is None:
        _cpp_draw, _cpp_capsule = NULL, None
        return
    cdef void* f = PyCapsule_GetPointer(capsule, b"fastdrop_torch_draw.draw")
    _cpp_draw, _cpp_capsule = <_cpp_draw_fn>f, capsule


def cpp_draw_bound():
    """Whether the C++ extension's draw is bound."""
    return _cpp_draw != NULL


def bind_draw(*, scratch):
    """Hand in the scratch tensor (a CPU int64 tensor of 2 contiguous elements, kept
    alive by its bound `random_`; fastdrop._torch_ops)."""
    global _draw_random, _draw_at
    _draw_random = scratch.random_
    _draw_at = <const int64_t*><uintptr_t>scratch.data_ptr()


def draw_words(generator):
    """The 64-bit seed of one seed=None call: two draws of ``random_(2**32)`` (the draws of
    ``torch.randint(0, 2**32, (2,))``) from `generator` (None: torch.default_generator),
    the first the low word; None when the scratch tensor is busy or not bound."""
    global _draw_busy
    cdef uint64_t w
    if _cpp_draw != NULL and _cpp_draw(<PyObject*>generator, &w):
        return w
    if _draw_busy or _draw_random is None:
        return None
    _draw_busy = True
    try:
        if generator is None:  # random_'s own default (no keyword to parse)
            _draw_random(4294967296)
        else:
            _draw_random(4294967296, generator=generator)
        return <uint64_t>_draw_at[0] | (<uint64_t>_draw_at[1] << 32)
    finally:
        _draw_busy = False


# ---- the recycled output buffers (fastdrop._torch_ops._POOL) ---------------------------------
# The pool is a dict, nbytes -> list of NumPy uint8 buffers (nbytes + align bytes each), the
# most recently used size last. A buffer whose only reference is its list's belongs to no
# array and no tensor (a tensor made by torch.from_numpy holds its array, whose base is the
# buffer), and is handed out again. This runs after kernels that have streamed megabytes
# through the caches, where each Python-level step of the same logic cost microseconds
# (2^18 float32: 45 to 50 us per pooled output in Python, against 17 to 19 us for
# torch.from_numpy of a ready array). The GIL makes a check-and-take atomic; a call that
# finds the pool busy (a finalizer run by a collection during np.empty, on this thread or
# another) gets None, and its caller allocates as usual.

cdef bint _pool_busy = False
cdef object _np_empty = None, _np_ndarray = None, _np_uint8 = None


def bind_pool(*, empty, ndarray, uint8):
    """Hand in numpy.empty, numpy.ndarray and numpy.uint8 (fastdrop._torch_ops)."""
    global _np_empty, _np_ndarray, _np_uint8
    _np_empty, _np_ndarray, _np_uint8 = empty, ndarray, uint8


cdef Py_ssize_t _free_index(list bufs):
    """The index of a buffer that only the list holds, or -1."""
    cdef Py_ssize_t i
    for i in range(PyList_GET_SIZE(bufs)):
        if (<PyObject*>PyList_GET_ITEM(bufs, i)).ob_refcnt == 1:
            return i
    return -1


cdef object _view(object buf, object shape, object dtype, Py_ssize_t align):
    """An array of shape and dtype at buf's first `align`-byte boundary (its base: buf)."""
    cdef Py_buffer v
    PyObject_GetBuffer(buf, &v, PyBUF_SIMPLE)
    cdef uintptr_t a = <uintptr_t>v.buf
    PyBuffer_Release(&v)
    return _np_ndarray(shape, dtype, buf, <Py_ssize_t>((align - a % align) % align))


cdef bint _evict(dict pool, Py_ssize_t keep):
    """Drop one free buffer of a size other than `keep`, the least recently used size
    first; False when every other buffer is in use."""
    cdef list bufs
    cdef Py_ssize_t i
    for size in list(pool):
        if size == keep:
            continue
        bufs = pool[size]
        i = _free_index(bufs)
        if i >= 0:
            del bufs[i]
            if not bufs:
                del pool[size]
            return True
    return False


def pool_array(dict pool, Py_ssize_t nbytes, shape, dtype, Py_ssize_t per_size,
               Py_ssize_t most, Py_ssize_t align):
    """An array of shape and dtype (nbytes) on a free pooled buffer, `align`-byte aligned,
    or on a new buffer when there is room (at most per_size of a size, `most` in all; a
    free buffer of the least recently used other size gives way), else None."""
    global _pool_busy
    cdef list bufs
    cdef Py_ssize_t i, total
    if _pool_busy or _np_ndarray is None:
        return None
    _pool_busy = True
    try:
        bufs = pool.pop(nbytes, None)
        if bufs is None:
            bufs = []
        pool[nbytes] = bufs
        i = _free_index(bufs)
        if i >= 0:
            return _view(bufs[i], shape, dtype, align)
        if PyList_GET_SIZE(bufs) >= per_size:
            return None
        total = 0
        for other in pool.values():
            total += PyList_GET_SIZE(other)
        if total >= most and not _evict(pool, nbytes):
            if not bufs:
                del pool[nbytes]
            return None
        buf = _np_empty(nbytes + align, _np_uint8)
        bufs.append(buf)
        return _view(buf, shape, dtype, align)
    finally:
        _pool_busy = False
