# cython: boundscheck=False, wraparound=False
"""The torch adapter's lean path, per call, in C: the checks a training call makes on its
input (`lean_code`), the seed words a seeded layer takes from its seed buffer
(`take_words`), seed=None's draws from torch's generator (`draw_words`: through torch's
stable C ABI when `bind_shim_draw` found it), fastdrop.torch.Dropout's common training call
(`dropout_call`), the modules' forward (`module_forward`), the backward of every lean call
(`lean_backward`), and the pool of recycled output buffers (`pool_array`).

At 2^8 elements a module's forward + backward is mostly Python (docs/benchmarks.md): these
are the same checks, words and calls as the Python they replace, without the bytecode.
torch is not needed to build or import this module: fastdrop._torch_ops hands the torch
objects they call in once (`bind`).
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.dict cimport PyDict_GetItem
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.pycapsule cimport PyCapsule_GetPointer
from cpython.pythread cimport PyThread_get_thread_ident
from libc.stdint cimport int32_t, int64_t, uint64_t, uintptr_t

cdef extern from "fd_dl.h" nogil:  # dlopen and dlsym (none on Windows)
    void* dlopen "fd_dlopen" (const char* filename, int flag)
    void* dlsym "fd_dlsym" (void* handle, const char* symbol)
    int RTLD_NOW "FD_RTLD_NOW"
    int RTLD_NOLOAD "FD_RTLD_NOLOAD"

# bound by fastdrop._torch_ops (bind): torch's classes, checks and allocators
cdef object _tensor = None, _parameter = None
cdef dict _codes = {}
cdef object _functorch_active, _dispatch_modes, _function_modes, _tracing, _profiler
cdef object _grad_enabled, _empty_like, _fresh_like, _ptr_backward, _lean_grad
cdef object _fresh_mask, _ptr_forward, _lean_run
cdef Py_ssize_t _small = 0
cdef bint _bound = False
# torch.autograd.forward_ad's globals: its `_current_level` is -1 outside every dual level
# (forward-mode AD), whose tangents the lean path would not carry
cdef dict _fwad = None


def bind(*, tensor, parameter, codes, functorch_active, dispatch_modes, function_modes,
         tracing, profiler, grad_enabled, fresh_mask, empty_like, fresh_like, ptr_forward,
         ptr_backward, lean_run, lean_grad, small, forward_ad=None):
    """Hand in the torch objects the lean path calls (fastdrop._torch_ops, at import):
    the plain tensor classes, the dtype -> code map, the global-state checks (each a torch
    C call; `profiler` is torch.autograd.profiler, read for `_is_profiler_enabled`),
    torch.is_grad_enabled, the allocators (`fresh_mask` for packed masks; torch.empty_like
    for outputs of at most `small` elements, else `fresh_like`), the
    pointer kernels, and the general forward and backward (`lean_run`, `lean_grad`);
    `forward_ad`: torch.autograd.forward_ad's globals (a dict with ``_current_level``), or
    None when this torch has no such global (then dual levels are not seen here)."""
    global _tensor, _parameter, _codes, _functorch_active, _dispatch_modes
    global _function_modes, _tracing, _profiler, _grad_enabled, _empty_like, _fresh_like
    global _ptr_backward, _lean_grad, _small, _bound, _fresh_mask, _ptr_forward, _lean_run
    global _fwad
    _fwad = forward_ad
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
    of those dtypes, not a lazy negation, and no torch.func transform, dual level
    (forward-mode AD), dispatch or function mode, profiler or jit trace active.
    Compilation is the caller's check (a call that torch.compile traces must not reach
    this C function)."""
    return _code(x)


cdef object _code(x):
    if not _bound:
        return -1
    cdef type t = type(x)
    if ((t is _tensor or t is _parameter) and x.is_cpu and x.is_contiguous()
            and not _functorch_active() and not _dispatch_modes() and not _function_modes()
            and not _profiler._is_profiler_enabled and not _tracing() and not x.is_neg()
            and not _in_dual_level()):
        return _codes.get(x.dtype, -1)
    return -1


cdef inline bint _in_dual_level():
    """Inside ``torch.autograd.forward_ad.dual_level()`` (any thread: the level is global)."""
    if _fwad is None:
        return False
    cdef PyObject* level = PyDict_GetItem(_fwad, "_current_level")
    return level != NULL and <object>level != -1


def take_words(uintptr_t addr):
    """(seed, stream) of the next call from a layer's seed state at addr: three int64
    (seed low word, seed high word, stream), the seed's words read as unsigned 32-bit and
    the stream as unsigned 64-bit; the stream is advanced by one (int64 wrap). The caller
    keeps the state's memory alive and checks it is a CPU int64 tensor of 3 elements."""
    return _take(addr)


cdef tuple _take(uintptr_t addr):
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
cdef unsigned long _draw_owner = 0  # the thread that set _draw_busy (after_fork_in_child)


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


# torch's stable C ABI (the AOTInductor shim, exported by libtorch_cpu with C linkage:
# torch/csrc/inductor/aoti_torch/c/shim.h and generated/c_shim_cpu.h): randint.low_out on
# a scratch tensor of its own, drawn from torch.default_generator through the dispatcher
# without Python's argument parsing. Used for the default generator when no dispatch or
# function mode is active (a mode sees the draw only through the Python route). The GIL is
# held throughout (the shim does not release it), and `_draw_busy` guards against a
# re-entrant call.
ctypedef int32_t (*_shim_randint_fn)(void*, int64_t, int64_t, const int64_t*,
                                     int64_t) noexcept nogil
ctypedef int32_t (*_shim_empty_fn)(int64_t, const int64_t*, const int64_t*, int32_t,
                                   int32_t, int32_t, void**) noexcept nogil
ctypedef int32_t (*_shim_ptr_fn)(void*, void**) noexcept nogil
ctypedef int32_t (*_shim_code_fn)() noexcept nogil
cdef _shim_randint_fn _shim_randint = NULL
cdef void* _shim_out = NULL
cdef const int64_t* _shim_at = NULL
cdef object _default_generator = None
cdef int64_t _TWO = 2


def bind_shim_draw(bytes library, default_generator):
    """Bind the shim's draw: `library` the path of the loaded libtorch_cpu (opened with
    RTLD_NOLOAD: nothing is loaded that torch has not), `default_generator`
    torch.default_generator. Makes the scratch tensor through the shim; returns False
    (nothing bound) when a symbol is missing or a call fails. The caller checks the draws
    against torch.randint's (`shim_draw`) before relying on them."""
    global _shim_randint, _shim_out, _shim_at, _default_generator
    if _shim_randint != NULL:
        return True
    cdef void* lib = dlopen(library, RTLD_NOW | RTLD_NOLOAD)
    if lib == NULL:
        return False
    cdef void* f_randint = dlsym(lib, b"aoti_torch_cpu_randint_low_out")
    cdef void* f_empty = dlsym(lib, b"aoti_torch_empty_strided")
    cdef void* f_ptr = dlsym(lib, b"aoti_torch_get_data_ptr")
    cdef void* f_int64 = dlsym(lib, b"aoti_torch_dtype_int64")
    cdef void* f_cpu = dlsym(lib, b"aoti_torch_device_type_cpu")
    if (f_randint == NULL or f_empty == NULL or f_ptr == NULL or f_int64 == NULL
            or f_cpu == NULL):
        return False
    cdef int64_t size = 2, stride = 1
    cdef void* out = NULL
    cdef void* data = NULL
    if (<_shim_empty_fn>f_empty)(1, &size, &stride, (<_shim_code_fn>f_int64)(),
                                 (<_shim_code_fn>f_cpu)(), 0, &out) != 0 or out == NULL:
        return False
    if (<_shim_ptr_fn>f_ptr)(out, &data) != 0 or data == NULL:
        return False  # the handle stays allocated: 16 bytes, once
    _shim_out, _shim_at, _default_generator = out, <const int64_t*>data, default_generator
    _shim_randint = <_shim_randint_fn>f_randint
    return True


def unbind_shim_draw():
    """seed=None's draws for the default generator through ``random_`` again (the scratch
    handle stays allocated)."""
    global _shim_randint
    _shim_randint = NULL


def shim_draw_bound():
    """Whether the shim's draw is bound."""
    return _shim_randint != NULL


# libtorch_cpu's exported C++ functions (fd_torch_gen.h): the default generator's two
# draws under its mutex, as the opt-in C++ extension makes them, with no tensor op. Bound
# when every layout check passes (`bind_gen_draw`), tried before the shim for the default
# generator when no dispatch or function mode is active.
cdef extern from "fd_torch_gen.h" nogil:
    ctypedef struct fd_torch_gen:
        void* impl
    int fd_gen_bind(fd_torch_gen* g, const char* lib, uint64_t seed)
    int fd_gen_try_draw(fd_torch_gen* g, uint64_t* out)
    int fd_gen_draw(fd_torch_gen* g, uint64_t* out)

cdef fd_torch_gen _gen


def bind_gen_draw(bytes library, default_generator):
    """Bind the exported-symbol draw: `library` the path of the loaded libtorch_cpu
    (RTLD_NOLOAD), `default_generator` torch.default_generator (its initial_seed is one of
    the layout checks). False (nothing bound) when a symbol is missing or a check fails;
    the caller checks the draws against torch.randint's (`gen_draw`) before relying on
    them."""
    global _default_generator
    if fd_gen_bind(&_gen, library, <uint64_t>default_generator.initial_seed()) != 1:
        return False
    _default_generator = default_generator
    return True


def unbind_gen_draw():
    """seed=None's draws for the default generator through the shim or ``random_`` again."""
    _gen.impl = NULL


def gen_draw_bound():
    """Whether the exported-symbol draw is bound."""
    return _gen.impl != NULL


cdef inline int _gen_drew(uint64_t* w) noexcept:
    """The exported-symbol draw into *w: 1 drawn, 0 not (unbound, or another default
    generator). Waits for a held mutex without the GIL."""
    cdef int r = fd_gen_try_draw(&_gen, w)
    if r < 0:
        with nogil:
            r = fd_gen_draw(&_gen, w)
    return r


def gen_draw():
    """One draw through the exported symbols (their check at bind time), or None when
    they are not bound."""
    cdef uint64_t w
    return w if _gen.impl != NULL and _gen_drew(&w) == 1 else None


cdef inline uint64_t _words(const int64_t* at) noexcept:
    """The 64-bit seed of two draws at `at`, the first the low word."""
    return <uint64_t>at[0] | (<uint64_t>at[1] << 32)


cdef inline bint _shim_drew() noexcept:
    """randint.low_out(0, 2**32) on the shim's scratch; False when the call fails."""
    return _shim_randint(_shim_out, 0, 4294967296, &_TWO, 1) == 0


def shim_draw():
    """One draw through the shim (its check at bind time), or None when it is not bound,
    busy or fails."""
    global _draw_busy, _draw_owner
    if _shim_randint == NULL or _draw_busy:
        return None
    _draw_busy, _draw_owner = True, PyThread_get_thread_ident()
    try:
        return _words(_shim_at) if _shim_drew() else None
    finally:
        _draw_busy = False


def draw_words(generator):
    """The 64-bit seed of one seed=None call: two draws of ``random_(2**32)`` (the draws of
    ``torch.randint(0, 2**32, (2,))``) from `generator` (None: torch.default_generator),
    the first the low word; None when the scratch tensor is busy or not bound."""
    return _draw(generator)


cdef object _draw(generator):
    global _draw_busy, _draw_owner
    cdef uint64_t w
    if _cpp_draw != NULL and _cpp_draw(<PyObject*>generator, &w):
        return w
    if (_gen.impl != NULL and (generator is None or generator is _default_generator)
            and not _dispatch_modes() and not _function_modes() and _gen_drew(&w) == 1):
        return w
    if _draw_busy or _draw_random is None:
        return None
    _draw_busy, _draw_owner = True, PyThread_get_thread_ident()
    try:
        if (_shim_randint != NULL and (generator is None or generator is _default_generator)
                and not _dispatch_modes() and not _function_modes() and _shim_drew()):
            return _words(_shim_at)
        if generator is None:  # random_'s own default (no keyword to parse)
            _draw_random(4294967296)
        else:
            _draw_random(4294967296, generator=generator)
        return _words(_draw_at)
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
cdef unsigned long _pool_owner = 0  # the thread that set _pool_busy
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
    global _pool_busy, _pool_owner
    cdef list bufs
    cdef Py_ssize_t i, total
    if _pool_busy or _np_ndarray is None:
        return None
    _pool_busy, _pool_owner = True, PyThread_get_thread_ident()
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


def after_fork_in_child():
    """In a forked child (os.register_at_fork; fastdrop._torch_ops): clear the busy flags
    that another thread of the parent had set. That thread does not exist in the child, so
    its call never ends; left set, the flags would send every later draw and output of the
    child to the slower fallbacks. A flag the forking thread set itself (a fork from inside
    that call: a dispatch mode or a finalizer) stays, for that call still runs on."""
    global _draw_busy, _pool_busy
    cdef unsigned long me = PyThread_get_thread_ident()
    if _draw_busy and _draw_owner != me:
        _draw_busy = False
    if _pool_busy and _pool_owner != me:
        _pool_busy = False


# ---- fastdrop.torch.Dropout's common training call ------------------------------------------
# What Dropout.forward's lean branch does for an out-of-place call on an input that
# requires grad, with grad mode on (the training step), read from the module's __dict__
# without the bytecode and the attribute lookups through nn.Module's MRO: the same checks,
# the same words, the same Function. Anything else (eval, a changed p, p = 0, an empty
# input, in place, no graph, a fastdrop.Generator or an explicit torch generator, the
# first call after the seed buffer moved, inside fastdrop.torch.checkpoint) is declined
# before anything is drawn or advanced, and forward's Python handles it.
cdef object _module_apply = None, _num_threads = None, _replay = None, _graph_task = None
cdef Py_ssize_t _auto_mask_min = 0


cdef tuple _global_hooks = ()


def bind_module_call(*, module_apply, num_threads, replay, auto_mask_min, global_hooks=(),
                     graph_task=None):
    """Hand in the modules' Function apply (fastdrop._torch_ops.lean_module_apply),
    torch.get_num_threads, fastdrop._torch_replay (whose `active` is read per call), the
    size from which keep="auto" keeps a packed mask, torch.nn.modules.module's global
    hook dicts (a call through the module's ``__call__`` is taken only while all are
    empty), and torch._C._current_graph_task_id (-1 outside a backward pass: a seeded
    layer's call inside one is declined, for forward's Python to see)."""
    global _module_apply, _num_threads, _replay, _auto_mask_min, _global_hooks
    global _graph_task
    _module_apply, _num_threads, _replay = module_apply, num_threads, replay
    _auto_mask_min = auto_mask_min
    _global_hooks = tuple(global_hooks)
    _graph_task = graph_task


cdef bint _no_hooks(dict d):
    """nn.Module._wrapped_call_impl would call forward directly: no compiled call
    (Module.compile), no hook of the module's and no global one."""
    if d.get("_compiled_call_impl") is not None:
        return False
    for name in ("_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks",
                 "_backward_hooks"):
        h = d.get(name)
        if h is None or len(h):
            return False
    for h in _global_hooks:
        if len(h):
            return False
    return True


def dropout_call(module, x, bint called=False):
    """y of a fastdrop.torch.Dropout training call on x, or None (nothing drawn or
    advanced): see above. `called`: from the module's ``__call__``, which nn.Module's
    would run hooks around (declined while there are any: `_no_hooks`)."""
    if _module_apply is None:
        return None
    cdef dict d = module.__dict__
    lean = d.get("_lean")
    if lean is None or d.get("training") is not True or d.get("inplace") is not False:
        return None
    if called and not _no_hooks(d):
        return None
    code = _code(x)
    if code < 0 or not x.requires_grad or not _grad_enabled() or _replay.active:
        return None
    p = d.get("p")
    if type(p) is not float or p != d.get("_p_checked") or p == 0.0:
        return None
    cdef Py_ssize_t n = x.numel()
    if n == 0:
        return None
    source = d.get("_source")
    if source == "seed":
        if _graph_task is not None and _graph_task() != -1:
            return None   # inside a backward pass (a recompute?): forward's Python warns
        state = (<dict>d["_buffers"]).get("fd_state")
        cache = d.get("_fd_view")
        if cache is None or (<tuple>cache)[0] is not state:
            return None
        addr = state.data_ptr()
        if (<tuple>cache)[1] != addr:
            return None
        words = _take(addr)
    elif source == "torch" and d.get("torch_generator") is None:
        w = _draw(None)
        if w is None:
            return None
        words = (w, 0)
    else:
        return None
    d["_last"] = words
    k = lean[1]
    keep_mask = k == "mask" or (k == "auto" and n >= _auto_mask_min)
    nt = lean[2] or _num_threads()
    return _module_apply(x, ((<tuple>words)[0], (<tuple>words)[1], p, lean[0], keep_mask,
                             nt, n, code))
