/*
 * fd_fused.h -- the fused dropout row of the contiguous fast path (AVX2).
 *
 * One pass over a run of m elements whose draws are already in an L1 buffer:
 *
 *   keep[j] = draw[j] >= t            (16- or 32-bit draws; none kept when `none`)
 *   y[j]    = keep[j] ? x[j] * s : +0  (y may be NULL: mask only)
 *   bit j of pk = keep[j]              (pk may be NULL; least significant bit first)
 *
 * The keep flags live only in vector registers: 16 elements at a time as 16-bit lanes
 * (all ones where kept), widened to the element width for the select and narrowed with
 * movemask for the packed bits.  This replaces the byte-per-element flag buffer, the
 * separate multiply loop and the scalar pack of the general driver, which made three
 * more passes over L1.  The driver calls it on runs of 256 elements, so Philox compute
 * and the memory stream interleave finely (the out-of-order core overlaps them).
 *
 * Results equal the general driver bit for bit: the same IEEE multiply (no FMA), the
 * same select (a dropped element has all bits clear), the same packed layout.  Stores are
 * non-temporal (two 16-byte halves, so y needs only 16-byte alignment) when `stream` is
 * set and y is 16-byte aligned; plain unaligned stores otherwise.
 */
#ifndef FASTDROP_FD_FUSED_H
#define FASTDROP_FD_FUSED_H

#include <stdint.h>
#include <string.h>
#include "philox.h"
#include "fd_half.h"

/* The keep flag of element j of a run, scalar: for the tails of the vector loops. */
static inline uint8_t fd_keep_at(const uint16_t *d16, const uint32_t *d32, int bits,
                                 uint32_t t, int none, int64_t j)
{
    if (none)
        return 0;
    return bits == 16 ? (uint8_t)(d16[j] >= (uint16_t)t) : (uint8_t)(d32[j] >= t);
}

/* The packed bits of elements j0 .. m-1 (j0 a multiple of 8), zero padding. */
static inline void fd_pack_tail(const uint16_t *d16, const uint32_t *d32, int bits,
                                uint32_t t, int none, int64_t j0, int64_t m, uint8_t *pk)
{
    for (int64_t q = j0; q < m; q += 8) {
        uint8_t v = 0;
        for (int64_t i = q; i < m && i < q + 8; i++)
            v |= (uint8_t)(fd_keep_at(d16, d32, bits, t, none, i) << (i - q));
        pk[q / 8] = v;
    }
}

#if FD_HAVE_AVX2_KERNEL
#define FD_HAVE_FUSED 1

/* 16 keep masks (16-bit lanes, all ones where kept) of elements j .. j+15. */
__attribute__((target("avx2")))
static inline __m256i fd_keep16(const uint16_t *d16, const uint32_t *d32, int bits,
                                __m256i T16, __m256i T32, int none, int64_t j)
{
    if (none)
        return _mm256_setzero_si256();
    if (bits == 16) {
        __m256i d = _mm256_loadu_si256((const __m256i *)(d16 + j));
        return _mm256_cmpeq_epi16(_mm256_max_epu16(d, T16), d);   /* d >= t, unsigned */
    }
    __m256i a = _mm256_loadu_si256((const __m256i *)(d32 + j));
    __m256i b = _mm256_loadu_si256((const __m256i *)(d32 + j + 8));
    __m256i ka = _mm256_cmpeq_epi32(_mm256_max_epu32(a, T32), a);
    __m256i kb = _mm256_cmpeq_epi32(_mm256_max_epu32(b, T32), b);
    /* packs works per 128-bit half: (a0-3 b0-3 a4-7 b4-7) -> reorder the quadwords */
    return _mm256_permute4x64_epi64(_mm256_packs_epi32(ka, kb), 0xD8);
}

/* The 32 packed bits of two 16-lane keep masks (elements j .. j+31). */
__attribute__((target("avx2")))
static inline void fd_store_bits32(__m256i k0, __m256i k1, uint8_t *pk)
{
    __m256i b = _mm256_permute4x64_epi64(_mm256_packs_epi16(k0, k1), 0xD8);
    uint32_t bits = (uint32_t)_mm256_movemask_epi8(b);
    memcpy(pk, &bits, 4);
}

__attribute__((target("avx2")))
static inline void fd_put_f32(float *y, __m256 v, int nt)
{
    if (nt) {
        _mm_stream_ps(y, _mm256_castps256_ps128(v));
        _mm_stream_ps(y + 4, _mm256_extractf128_ps(v, 1));
    } else {
        _mm256_storeu_ps(y, v);
    }
}

__attribute__((target("avx2")))
static inline void fd_put_f64(double *y, __m256d v, int nt)
{
    if (nt) {
        _mm_stream_pd(y, _mm256_castpd256_pd128(v));
        _mm_stream_pd(y + 2, _mm256_extractf128_pd(v, 1));
    } else {
        _mm256_storeu_pd(y, v);
    }
}

__attribute__((target("avx2")))
static void fd_fused_f32(const uint16_t *d16, const uint32_t *d32, int bits, uint32_t t,
                         int none, const float *x, float *y, uint8_t *pk, int64_t m,
                         float s, int stream)
{
    const __m256i T16 = _mm256_set1_epi16((short)(uint16_t)t);
    const __m256i T32 = _mm256_set1_epi32((int)t);
    const __m256 S = _mm256_set1_ps(s);
    const int nt = stream && ((uintptr_t)y % 16 == 0);
    const int64_t m32 = m - m % 32;
    for (int64_t j = 0; j < m32; j += 32) {
        __m256i k0 = fd_keep16(d16, d32, bits, T16, T32, none, j);
        __m256i k1 = fd_keep16(d16, d32, bits, T16, T32, none, j + 16);
        if (pk != NULL)
            fd_store_bits32(k0, k1, pk + j / 8);
        if (y != NULL) {
            const __m256i w[4] = {
                _mm256_cvtepi16_epi32(_mm256_castsi256_si128(k0)),
                _mm256_cvtepi16_epi32(_mm256_extracti128_si256(k0, 1)),
                _mm256_cvtepi16_epi32(_mm256_castsi256_si128(k1)),
                _mm256_cvtepi16_epi32(_mm256_extracti128_si256(k1, 1))};
            for (int q = 0; q < 4; q++) {
                __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * q), S);
                fd_put_f32(y + j + 8 * q, _mm256_and_ps(v, _mm256_castsi256_ps(w[q])), nt);
            }
        }
    }
    if (y != NULL)
        for (int64_t j = m32; j < m; j++)
            y[j] = fd_keep_f32(x[j] * s, fd_keep_at(d16, d32, bits, t, none, j));
    if (pk != NULL)
        fd_pack_tail(d16, d32, bits, t, none, m32, m, pk);
}

__attribute__((target("avx2")))
static void fd_fused_f64(const uint16_t *d16, const uint32_t *d32, int bits, uint32_t t,
                         int none, const double *x, double *y, uint8_t *pk, int64_t m,
                         double s, int stream)
{
    const __m256i T16 = _mm256_set1_epi16((short)(uint16_t)t);
    const __m256i T32 = _mm256_set1_epi32((int)t);
    const __m256d S = _mm256_set1_pd(s);
    const int nt = stream && ((uintptr_t)y % 16 == 0);
    const int64_t m32 = m - m % 32;
    for (int64_t j = 0; j < m32; j += 32) {
        __m256i k0 = fd_keep16(d16, d32, bits, T16, T32, none, j);
        __m256i k1 = fd_keep16(d16, d32, bits, T16, T32, none, j + 16);
        if (pk != NULL)
            fd_store_bits32(k0, k1, pk + j / 8);
        if (y != NULL) {
            const __m256i kk[2] = {k0, k1};
            for (int h = 0; h < 2; h++) {
                __m128i lo = _mm256_castsi256_si128(kk[h]);
                __m128i hi = _mm256_extracti128_si256(kk[h], 1);
                const __m256i w[4] = {_mm256_cvtepi16_epi64(lo),
                                      _mm256_cvtepi16_epi64(_mm_srli_si128(lo, 8)),
                                      _mm256_cvtepi16_epi64(hi),
                                      _mm256_cvtepi16_epi64(_mm_srli_si128(hi, 8))};
                for (int q = 0; q < 4; q++) {
                    int64_t e = j + 16 * h + 4 * q;
                    __m256d v = _mm256_mul_pd(_mm256_loadu_pd(x + e), S);
                    fd_put_f64(y + e, _mm256_and_pd(v, _mm256_castsi256_pd(w[q])), nt);
                }
            }
        }
    }
    if (y != NULL)
        for (int64_t j = m32; j < m; j++)
            y[j] = fd_keep_f64(x[j] * s, fd_keep_at(d16, d32, bits, t, none, j));
    if (pk != NULL)
        fd_pack_tail(d16, d32, bits, t, none, m32, m, pk);
}

#else
#define FD_HAVE_FUSED 0
static void fd_fused_f32(const uint16_t *d16, const uint32_t *d32, int bits, uint32_t t,
                         int none, const float *x, float *y, uint8_t *pk, int64_t m,
                         float s, int stream)
{
    (void)d16; (void)d32; (void)bits; (void)t; (void)none; (void)x; (void)y; (void)pk;
    (void)m; (void)s; (void)stream;
}
static void fd_fused_f64(const uint16_t *d16, const uint32_t *d32, int bits, uint32_t t,
                         int none, const double *x, double *y, uint8_t *pk, int64_t m,
                         double s, int stream)
{
    (void)d16; (void)d32; (void)bits; (void)t; (void)none; (void)x; (void)y; (void)pk;
    (void)m; (void)s; (void)stream;
}
#endif

#endif /* FASTDROP_FD_FUSED_H */
