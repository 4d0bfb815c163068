/*
 * fd_stream.h -- dropout of contiguous float32/float64 runs with non-temporal stores.
 *
 * For outputs much larger than the caches, streaming stores skip the read-for-ownership
 * of every output line: the forward pass then moves 2 bytes per byte of x instead of 3.
 * SSE2 is part of the x86-64 baseline, so this needs no run-time dispatch.  Elsewhere
 * (FD_HAVE_STREAM == 0) the callers use their plain loops.  Results are identical: the
 * same multiply, the same select (a dropped element is +0.0, all bits clear).
 */
#ifndef FASTDROP_FD_STREAM_H
#define FASTDROP_FD_STREAM_H

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__) || defined(_M_X64)
#define FD_HAVE_STREAM 1
#include <emmintrin.h>

/* 4 keep bytes (0/1) -> a 4 x 32-bit lane mask (all ones where kept). */
static inline __m128i fd_mask4(const uint8_t *kb)
{
    uint32_t k4;
    memcpy(&k4, kb, 4);
    __m128i k = _mm_cvtsi32_si128((int)k4);
    k = _mm_unpacklo_epi16(_mm_unpacklo_epi8(k, _mm_setzero_si128()), _mm_setzero_si128());
    return _mm_sub_epi32(_mm_setzero_si128(), k);
}

/* y[j] = kb[j] ? x[j] * s : +0 for j < m; y is 16-byte aligned, m a multiple of 4. */
static inline void fd_dropout_f32_stream(float *y, const float *x, const uint8_t *kb,
                                         int64_t m, float s)
{
    const __m128 vs = _mm_set1_ps(s);
    for (int64_t j = 0; j < m; j += 4) {
        __m128 v = _mm_mul_ps(_mm_loadu_ps(x + j), vs);
        _mm_stream_ps(y + j, _mm_and_ps(v, _mm_castsi128_ps(fd_mask4(kb + j))));
    }
}

/* The same for float64; m a multiple of 4. */
static inline void fd_dropout_f64_stream(double *y, const double *x, const uint8_t *kb,
                                         int64_t m, double s)
{
    const __m128d vs = _mm_set1_pd(s);
    for (int64_t j = 0; j < m; j += 4) {
        __m128i k = fd_mask4(kb + j);                         /* 4 x 32-bit masks */
        __m128d m01 = _mm_castsi128_pd(_mm_unpacklo_epi32(k, k));
        __m128d m23 = _mm_castsi128_pd(_mm_unpackhi_epi32(k, k));
        _mm_stream_pd(y + j, _mm_and_pd(_mm_mul_pd(_mm_loadu_pd(x + j), vs), m01));
        _mm_stream_pd(y + j + 2, _mm_and_pd(_mm_mul_pd(_mm_loadu_pd(x + j + 2), vs), m23));
    }
}

static inline void fd_stream_fence(void) { _mm_sfence(); }
#else
#define FD_HAVE_STREAM 0
static inline void fd_dropout_f32_stream(float *y, const float *x, const uint8_t *kb,
                                         int64_t m, float s) { (void)y; (void)x; (void)kb; (void)m; (void)s; }
static inline void fd_dropout_f64_stream(double *y, const double *x, const uint8_t *kb,
                                         int64_t m, double s) { (void)y; (void)x; (void)kb; (void)m; (void)s; }
static inline void fd_stream_fence(void) {}
#endif

#endif
