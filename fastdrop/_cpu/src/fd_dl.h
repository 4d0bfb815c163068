/* dlopen and dlsym for fastdrop._cpu._torch_lean, which looks up torch's stable C ABI in
 * the libtorch_cpu torch has loaded. Windows has neither: there the lookup finds nothing
 * and seed=None's draw stays on torch's random_ (fastdrop._torch_draw.bind_shim_draw). */
#ifndef FD_DL_H
#define FD_DL_H

#include <stddef.h>

#ifdef _WIN32
#define FD_RTLD_NOW 0
#define FD_RTLD_NOLOAD 0
static inline void* fd_dlopen(const char* file, int flag) { (void)file; (void)flag; return NULL; }
static inline void* fd_dlsym(void* lib, const char* name) { (void)lib; (void)name; return NULL; }
#else
#include <dlfcn.h>
#define FD_RTLD_NOW RTLD_NOW
#define FD_RTLD_NOLOAD RTLD_NOLOAD
static inline void* fd_dlopen(const char* file, int flag) { return dlopen(file, flag); }
static inline void* fd_dlsym(void* lib, const char* name) { return dlsym(lib, name); }
#endif

#endif /* FD_DL_H */
