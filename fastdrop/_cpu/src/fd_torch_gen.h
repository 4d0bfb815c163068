/* seed=None's draw from torch.default_generator through the C++ functions libtorch_cpu
 * exports, for fastdrop._cpu._torch_lean: what the opt-in C++ extension
 * (fd_torch_draw.cpp) does, without a compiler at run time.
 *
 * A seed=None call takes the draws of torch.randint(0, 2**32, (2,)): under the
 * generator's mutex, two CPUGeneratorImpl::random64(), each reduced modulo 2**32
 * (random_from_to's CPU kernel for that range). libtorch_cpu exports, as C++ symbols
 * (Itanium ABI: a member function takes `this` first):
 *   at::detail::getDefaultCPUGenerator()  -> const at::Generator& (one pointer: the impl)
 *   at::CPUGeneratorImpl::random64()      -> uint64_t
 *   vtable for at::CPUGeneratorImpl        (the impl's type, checked)
 * The mutex is a data member (c10/core/GeneratorImpl.h), which no exported function
 * reaches; its place follows from the layout of c10::GeneratorImpl:
 *   intrusive_ptr_target: vtable pointer, combined refcount (uint64)   2 pointers
 *   std::mutex mutex_       (a pthread_mutex_t in libstdc++ and libc++)
 *   Device device_          (int8 type, int8 index: CPU is 0, -1)
 *   DispatchKeySet key_set_ (uint64), PyObject* pyobj_
 * followed by CPUGeneratorImpl's engine, an mt19937 whose first member is its seed.
 * `fd_gen_bind` checks every piece it can see before anything is drawn: the symbols, the
 * vtable, the device after the mutex, the engine's seed against initial_seed(), and that
 * the mutex is free; the caller then checks the draws against torch.randint's. A torch
 * whose layout differs fails a check and seed=None's draw stays on the stable C ABI or
 * random_. Windows (another C++ ABI, no pthreads): nothing binds. */
#ifndef FD_TORCH_GEN_H
#define FD_TORCH_GEN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fd_dl.h"

typedef struct {
    void* impl;                       /* the default CPUGeneratorImpl; NULL: not bound */
    void** (*get)(void);              /* at::detail::getDefaultCPUGenerator */
    uint64_t (*random64)(void* self); /* at::CPUGeneratorImpl::random64 */
} fd_torch_gen;

#ifdef _WIN32

static inline int fd_gen_bind(fd_torch_gen* g, const char* lib, uint64_t seed) {
    (void)lib; (void)seed; g->impl = NULL; return 0;
}
static inline int fd_gen_try_draw(fd_torch_gen* g, uint64_t* out) {
    (void)g; (void)out; return 0;
}
static inline int fd_gen_draw(fd_torch_gen* g, uint64_t* out) {
    (void)g; (void)out; return 0;
}

#else

#include <pthread.h>

#define FD_GEN_MUTEX (2 * sizeof(void*))
#define FD_GEN_DEVICE (FD_GEN_MUTEX + sizeof(pthread_mutex_t))
#define FD_GEN_KEYSET ((FD_GEN_DEVICE + 2 + 7) & ~(size_t)7)
#define FD_GEN_ENGINE (FD_GEN_KEYSET + 8 + sizeof(void*))

static inline pthread_mutex_t* fd_gen_mutex(void* impl) {
    return (pthread_mutex_t*)((char*)impl + FD_GEN_MUTEX);
}

/* 1 and g bound when every check passes (`seed`: torch.default_generator.initial_seed());
 * 0, g unbound, otherwise. Draws nothing. */
static inline int fd_gen_bind(fd_torch_gen* g, const char* lib, uint64_t seed) {
    g->impl = NULL;
    void* h = fd_dlopen(lib, FD_RTLD_NOW | FD_RTLD_NOLOAD);
    if (h == NULL) return 0;
    void* get = fd_dlsym(h, "_ZN2at6detail22getDefaultCPUGeneratorEv");
    void* r64 = fd_dlsym(h, "_ZN2at16CPUGeneratorImpl8random64Ev");
    char* vtable = (char*)fd_dlsym(h, "_ZTVN2at16CPUGeneratorImplE");
    if (get == NULL || r64 == NULL || vtable == NULL) return 0;
    void** (*get_fn)(void) = (void** (*)(void))get;
    void* impl = *get_fn();
    if (impl == NULL) return 0;
    /* the vtable pointer points past the offset-to-top and the type info */
    void* vptr;
    memcpy(&vptr, impl, sizeof vptr);
    if (vptr != (void*)(vtable + 2 * sizeof(void*))) return 0;
    const int8_t* dev = (const int8_t*)((char*)impl + FD_GEN_DEVICE);
    if (dev[0] != 0 || dev[1] != -1) return 0;
    uint64_t engine_seed;
    memcpy(&engine_seed, (char*)impl + FD_GEN_ENGINE, sizeof engine_seed);
    if (engine_seed != seed) return 0;
    if (pthread_mutex_trylock(fd_gen_mutex(impl)) != 0) return 0;
    pthread_mutex_unlock(fd_gen_mutex(impl));
    g->get = get_fn;
    g->random64 = (uint64_t (*)(void*))r64;
    g->impl = impl;
    return 1;
}

static inline void fd_gen_take(fd_torch_gen* g, uint64_t* out) {
    const uint64_t lo = g->random64(g->impl) & 0xffffffffu;
    const uint64_t hi = g->random64(g->impl) & 0xffffffffu;
    pthread_mutex_unlock(fd_gen_mutex(g->impl));
    *out = lo | (hi << 32);
}

/* 1: drawn into *out; -1: the mutex is held (by another thread's op: call fd_gen_draw
 * without the GIL); 0: not bound, or the default generator is no longer the bound one. */
static inline int fd_gen_try_draw(fd_torch_gen* g, uint64_t* out) {
    if (g->impl == NULL || *g->get() != g->impl) return 0;
    if (pthread_mutex_trylock(fd_gen_mutex(g->impl)) != 0) return -1;
    fd_gen_take(g, out);
    return 1;
}

/* fd_gen_try_draw, waiting for the mutex (without the GIL: the holder may need it). */
static inline int fd_gen_draw(fd_torch_gen* g, uint64_t* out) {
    if (g->impl == NULL || *g->get() != g->impl) return 0;
    if (pthread_mutex_lock(fd_gen_mutex(g->impl)) != 0) return 0;
    fd_gen_take(g, out);
    return 1;
}

#endif /* _WIN32 */

#endif /* FD_TORCH_GEN_H */
