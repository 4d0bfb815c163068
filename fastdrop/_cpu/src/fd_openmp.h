/* OpenMP is optional at build time: without it every parallel loop runs on one thread. */
#ifndef FASTDROP_FD_OPENMP_H
#define FASTDROP_FD_OPENMP_H
#ifdef _OPENMP
#include <omp.h>
static inline int fd_openmp_enabled(void) { return 1; }
static inline int fd_omp_max_threads(void) { return omp_get_max_threads(); }
#else
static inline int fd_openmp_enabled(void) { return 0; }
static inline int fd_omp_max_threads(void) { return 1; }
#endif
#endif
