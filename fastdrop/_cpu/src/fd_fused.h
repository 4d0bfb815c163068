/*
 * fd_fused.h -- the fused dropout row of the contiguous fast path (AVX2; float32 and
 * float64 also with AVX-512 mask registers, below).
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
 * non-temporal (16-byte pieces, so y needs only 16-byte alignment) when `stream` is set
 * and y is 16-byte aligned; plain unaligned stores otherwise.
 *
 * float16 and bfloat16 (fd_fused_h16) are computed in float32 and rounded once, as
 * fd_half.h does element by element: bfloat16 with the same integer rounding, vectorised;
 * float16 with the F16C conversions (exact widening; narrowing with round to nearest
 * even, fixed by the immediate, not MXCSR), which give fd_half.h's bits for every value
 * the kernel produces.  F16C is checked at run time (fd_cpu_has_f16c) apart from AVX2.
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
    if (bits == 8)  /* the draws are bytes (d16 points at them) */
        return (uint8_t)(((const uint8_t *)(const void *)d16)[j] >= (uint8_t)t);
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
    if (bits == 8) {  /* 16 bytes zero-extended to 16-bit lanes; t < 2^8 */
        __m128i b = _mm_loadu_si128((const __m128i *)((const uint8_t *)(const void *)d16 + j));
        __m256i d = _mm256_cvtepu8_epi16(b);
        return _mm256_cmpeq_epi16(_mm256_max_epu16(d, T16), d);
    }
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

/* ---- the same rows with AVX-512 (F, BW, VL): the keep flags as mask registers ------
 *
 * At the avx512 level the keep flags of 16 elements are one 16-bit mask register: the
 * compare of the draws gives it (vpcmpuw / vpcmpub / vpcmpud), it is the packed mask's
 * 16 bits as they are stored (element j in bit j), a packed input mask is loaded into it
 * as it is, and a zero-masked multiply (vmulps / vmulpd {z}) writes x * s where kept and
 * +0 elsewhere, with no widening of flags and no separate select. The same IEEE
 * multiply, so the same bits as the AVX2 rows and the general driver. Tails use masked
 * loads and stores. Non-temporal stores are 64-byte ones when y is 64-byte aligned, else
 * 16-byte pieces (y 16-byte aligned), else plain stores. */
__attribute__((target("avx512f,avx512bw,avx512vl")))
static inline __mmask16 fd_keep16_k(const uint16_t *d16, const uint32_t *d32, int bits,
                                    uint32_t t, int none, int64_t j)
{
    if (none)
        return 0;
    if (bits == 8)
        return _mm_cmpge_epu8_mask(
            _mm_loadu_si128((const __m128i *)((const uint8_t *)(const void *)d16 + j)),
            _mm_set1_epi8((char)(uint8_t)t));
    if (bits == 16)
        return _mm256_cmpge_epu16_mask(_mm256_loadu_si256((const __m256i *)(d16 + j)),
                                       _mm256_set1_epi16((short)(uint16_t)t));
    return _mm512_cmpge_epu32_mask(_mm512_loadu_si512((const void *)(d32 + j)),
                                   _mm512_set1_epi32((int)t));
}

/* The keep flags of elements j .. j+c-1 (c <= 16) of a run whose draws hold m >= j + c
 * values: a masked load of exactly the c draws. */
__attribute__((target("avx512f,avx512bw,avx512vl")))
static inline __mmask16 fd_keep_tail_k(const uint16_t *d16, const uint32_t *d32, int bits,
                                       uint32_t t, int none, int64_t j, int c)
{
    const __mmask16 live = (__mmask16)((1u << c) - 1u);
    if (none)
        return 0;
    if (bits == 8)
        return _mm_mask_cmpge_epu8_mask(
            live, _mm_maskz_loadu_epi8(live, (const uint8_t *)(const void *)d16 + j),
            _mm_set1_epi8((char)(uint8_t)t));
    if (bits == 16)
        return _mm256_mask_cmpge_epu16_mask(live, _mm256_maskz_loadu_epi16(live, d16 + j),
                                            _mm256_set1_epi16((short)(uint16_t)t));
    return _mm512_mask_cmpge_epu32_mask(live, _mm512_maskz_loadu_epi32(live, d32 + j),
                                        _mm512_set1_epi32((int)t));
}

/* 0: plain stores; 1: 16-byte non-temporal pieces; 2: 64-byte non-temporal stores. */
static inline int fd_nt_kind(int stream, const void *y)
{
    if (!stream)
        return 0;
    if ((uintptr_t)y % 64 == 0)
        return 2;
    return (uintptr_t)y % 16 == 0 ? 1 : 0;
}

__attribute__((target("avx512f,avx512bw,avx512vl")))
static inline void fd_put16_f32(float *y, __m512 v, int nt)
{
    if (nt == 2) {
        _mm512_stream_ps(y, v);
    } else if (nt == 1) {
        _mm_stream_ps(y, _mm512_castps512_ps128(v));
        _mm_stream_ps(y + 4, _mm512_extractf32x4_ps(v, 1));
        _mm_stream_ps(y + 8, _mm512_extractf32x4_ps(v, 2));
        _mm_stream_ps(y + 12, _mm512_extractf32x4_ps(v, 3));
    } else {
        _mm512_storeu_ps(y, v);
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl")))
static inline void fd_put8_f64(double *y, __m512d v, int nt)
{
    if (nt == 2) {
        _mm512_stream_pd(y, v);
    } else if (nt == 1) {
        _mm_stream_pd(y, _mm512_castpd512_pd128(v));
        _mm_stream_pd(y + 2, _mm_castps_pd(_mm512_extractf32x4_ps(_mm512_castpd_ps(v), 1)));
        _mm_stream_pd(y + 4, _mm_castps_pd(_mm512_extractf32x4_ps(_mm512_castpd_ps(v), 2)));
        _mm_stream_pd(y + 6, _mm_castps_pd(_mm512_extractf32x4_ps(_mm512_castpd_ps(v), 3)));
    } else {
        _mm512_storeu_pd(y, v);
    }
}

/* y[j] = keep[j] ? x[j] * s : +0 and the packed bits, for 16 elements under mask k
 * (live: the elements that exist; a full group when live is all ones). */
__attribute__((target("avx512f,avx512bw,avx512vl")))
static inline void fd_apply16_f32(__mmask16 k, __mmask16 live, const float *x, float *y,
                                  __m512 S, int nt)
{
    if (live == (__mmask16)0xFFFF) {
        fd_put16_f32(y, _mm512_maskz_mul_ps(k, _mm512_loadu_ps(x), S), nt);
    } else {
        __m512 v = _mm512_maskz_mul_ps(k, _mm512_maskz_loadu_ps(live, x), S);
        _mm512_mask_storeu_ps(y, live, v);
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl")))
static inline void fd_apply16_f64(__mmask16 k, __mmask16 live, const double *x, double *y,
                                  __m512d S, int nt)
{
    for (int h = 0; h < 2; h++) {
        __mmask8 kh = (__mmask8)(k >> (8 * h)), lh = (__mmask8)(live >> (8 * h));
        if (lh == (__mmask8)0xFF) {
            fd_put8_f64(y + 8 * h, _mm512_maskz_mul_pd(kh, _mm512_loadu_pd(x + 8 * h), S), nt);
        } else if (lh != 0) {
            __m512d v = _mm512_maskz_mul_pd(kh, _mm512_maskz_loadu_pd(lh, x + 8 * h), S);
            _mm512_mask_storeu_pd(y + 8 * h, lh, v);
        }
    }
}

/* The packed bits of c <= 16 elements at bit 0 of pk (a byte boundary): ceil(c / 8)
 * bytes, zero padding past c. */
static inline void fd_store_bits16(__mmask16 k, int c, uint8_t *pk)
{
    uint16_t v = (uint16_t)(k & (uint16_t)((1u << c) - 1u));
    memcpy(pk, &v, (size_t)((c + 7) / 8));
}

/* fd_fused_f32 / fd_fused_f64 at the avx512 level: the same arguments and results. */
#define FD_FUSED512(NAME, T, VEC, SET1, APPLY)                                              \
__attribute__((target("avx512f,avx512bw,avx512vl")))                                       \
static void NAME(const uint16_t *d16, const uint32_t *d32, int bits, uint32_t t, int none, \
                 const T *x, T *y, uint8_t *pk, int64_t m, T s, int stream)                \
{                                                                                          \
    const VEC S = SET1(s);                                                                 \
    const int nt = fd_nt_kind(stream, y);                                                  \
    int64_t j = 0;                                                                         \
    for (; j + 16 <= m; j += 16) {                                                         \
        __mmask16 k = fd_keep16_k(d16, d32, bits, t, none, j);                             \
        if (pk != NULL)                                                                    \
            fd_store_bits16(k, 16, pk + j / 8);                                            \
        if (y != NULL)                                                                     \
            APPLY(k, (__mmask16)0xFFFF, x + j, y + j, S, nt);                              \
    }                                                                                      \
    if (j < m) {                                                                           \
        int c = (int)(m - j);                                                              \
        __mmask16 k = fd_keep_tail_k(d16, d32, bits, t, none, j, c);                       \
        if (pk != NULL)                                                                    \
            fd_store_bits16(k, c, pk + j / 8);                                             \
        if (y != NULL)                                                                     \
            APPLY(k, (__mmask16)((1u << c) - 1u), x + j, y + j, S, nt);                    \
    }                                                                                      \
}

FD_FUSED512(fd_fused_f32_avx512, float, __m512, _mm512_set1_ps, fd_apply16_f32)
FD_FUSED512(fd_fused_f64_avx512, double, __m512d, _mm512_set1_pd, fd_apply16_f64)

/* y[j] = bit j of the packed mask ? x[j] * s : +0 for j < m, the mask's bit 0 at pk[0]:
 * the backward from a packed mask (fd_fused_* with the flags unpacked to draws and t = 1
 * compute the same), with the mask bytes loaded as mask registers. */
#define FD_PACKED512(NAME, T, VEC, SET1, APPLY)                                             \
__attribute__((target("avx512f,avx512bw,avx512vl")))                                       \
static void NAME(const uint8_t *pk, const T *x, T *y, int64_t m, T s, int stream)          \
{                                                                                          \
    const VEC S = SET1(s);                                                                 \
    const int nt = fd_nt_kind(stream, y);                                                  \
    int64_t j = 0;                                                                         \
    for (; j + 16 <= m; j += 16) {                                                         \
        uint16_t k;                                                                        \
        memcpy(&k, pk + j / 8, 2);                                                         \
        APPLY((__mmask16)k, (__mmask16)0xFFFF, x + j, y + j, S, nt);                       \
    }                                                                                      \
    if (j < m) {                                                                           \
        int c = (int)(m - j);                                                              \
        uint16_t k = 0;                                                                    \
        memcpy(&k, pk + j / 8, (size_t)((c + 7) / 8));                                     \
        APPLY((__mmask16)k, (__mmask16)((1u << c) - 1u), x + j, y + j, S, nt);             \
    }                                                                                      \
}

FD_PACKED512(fd_packed_f32_avx512, float, __m512, _mm512_set1_ps, fd_apply16_f32)
FD_PACKED512(fd_packed_f64_avx512, double, __m512d, _mm512_set1_pd, fd_apply16_f64)

/* y[j] = bit j of the packed mask ? x[j] * s : +0 for j < m, the mask's bit 0 at pk[0]:
 * the backward from a packed mask at the avx2 level, with the mask's bits tested in the
 * registers (4 mask bytes broadcast, one AND and one compare per 8 floats or 4 doubles),
 * where unpacking them to 16-bit draws first cost a table lookup per byte and a pass
 * through L1.  The same multiply and select as fd_fused_f32 / fd_fused_f64. */
__attribute__((target("avx2")))
static void fd_packed_f32_avx2(const uint8_t *pk, const float *x, float *y, int64_t m,
                               float s, int stream)
{
    const __m256 S = _mm256_set1_ps(s);
    const int nt = stream && ((uintptr_t)y % 16 == 0);
    __m256i bit[4];
    for (int q = 0; q < 4; q++)  /* bit 8q + i of a 32-bit word, lane i */
        bit[q] = _mm256_sllv_epi32(_mm256_set1_epi32(1 << (8 * q)),
                                   _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    int64_t j = 0;
    for (; j + 32 <= m; j += 32) {
        uint32_t w;
        memcpy(&w, pk + j / 8, 4);
        const __m256i W = _mm256_set1_epi32((int)w);
        for (int q = 0; q < 4; q++) {
            __m256i k = _mm256_cmpeq_epi32(_mm256_and_si256(W, bit[q]), bit[q]);
            __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * q), S);
            fd_put_f32(y + j + 8 * q, _mm256_and_ps(v, _mm256_castsi256_ps(k)), nt);
        }
    }
    for (; j < m; j++)
        y[j] = fd_keep_f32(x[j] * s, (uint8_t)((pk[j / 8] >> (j % 8)) & 1u));
}

__attribute__((target("avx2")))
static void fd_packed_f64_avx2(const uint8_t *pk, const double *x, double *y, int64_t m,
                               double s, int stream)
{
    const __m256d S = _mm256_set1_pd(s);
    const int nt = stream && ((uintptr_t)y % 16 == 0);
    __m256i bit[8];
    for (int q = 0; q < 8; q++)  /* bit 4q + i of a 32-bit word, lane i */
        bit[q] = _mm256_sllv_epi64(_mm256_set1_epi64x(1LL << (4 * q)),
                                   _mm256_setr_epi64x(0, 1, 2, 3));
    int64_t j = 0;
    for (; j + 32 <= m; j += 32) {
        uint32_t w;
        memcpy(&w, pk + j / 8, 4);
        const __m256i W = _mm256_set1_epi64x((long long)w);
        for (int q = 0; q < 8; q++) {
            __m256i k = _mm256_cmpeq_epi64(_mm256_and_si256(W, bit[q]), bit[q]);
            __m256d v = _mm256_mul_pd(_mm256_loadu_pd(x + j + 4 * q), S);
            fd_put_f64(y + j + 4 * q, _mm256_and_pd(v, _mm256_castsi256_pd(k)), nt);
        }
    }
    for (; j < m; j++)
        y[j] = fd_keep_f64(x[j] * s, (uint8_t)((pk[j / 8] >> (j % 8)) & 1u));
}

/* Bias-dropout-add over a contiguous run: y = r + (keep ? (x + b) * s : +0), b NULL (no
 * bias) or contiguous; the keep flags as in fd_fused_f32, no mask output (the driver packs
 * the mask of the whole run with fd_fused_f32 first).  The operation order is that of the
 * general driver's _seg_bda: (x + b), times s, the select, then r + that. */
__attribute__((target("avx2")))
static void fd_fused_bda_f32(const uint16_t *d16, const uint32_t *d32, int bits, uint32_t t,
                             int none, const float *x, const float *b, const float *r,
                             float *y, int64_t m, float s, int stream)
{
    const __m256i T16 = _mm256_set1_epi16((short)(uint16_t)t);
    const __m256i T32 = _mm256_set1_epi32((int)t);
    const __m256 S = _mm256_set1_ps(s);
    const int nt = stream && ((uintptr_t)y % 16 == 0);
    const int64_t m16 = m - m % 16;
    for (int64_t j = 0; j < m16; j += 16) {
        __m256i k = fd_keep16(d16, d32, bits, T16, T32, none, j);
        const __m256i w[2] = {_mm256_cvtepi16_epi32(_mm256_castsi256_si128(k)),
                              _mm256_cvtepi16_epi32(_mm256_extracti128_si256(k, 1))};
        for (int q = 0; q < 2; q++) {
            int64_t e = j + 8 * q;
            __m256 u = _mm256_loadu_ps(x + e);
            if (b != NULL)
                u = _mm256_add_ps(u, _mm256_loadu_ps(b + e));
            __m256 v = _mm256_and_ps(_mm256_mul_ps(u, S), _mm256_castsi256_ps(w[q]));
            fd_put_f32(y + e, _mm256_add_ps(_mm256_loadu_ps(r + e), v), nt);
        }
    }
    for (int64_t j = m16; j < m; j++) {
        float u = b != NULL ? x[j] + b[j] : x[j];
        y[j] = r[j] + fd_keep_f32(u * s, fd_keep_at(d16, d32, bits, t, none, j));
    }
}

__attribute__((target("avx2")))
static void fd_fused_bda_f64(const uint16_t *d16, const uint32_t *d32, int bits, uint32_t t,
                             int none, const double *x, const double *b, const double *r,
                             double *y, int64_t m, double s, int stream)
{
    const __m256i T16 = _mm256_set1_epi16((short)(uint16_t)t);
    const __m256i T32 = _mm256_set1_epi32((int)t);
    const __m256d S = _mm256_set1_pd(s);
    const int nt = stream && ((uintptr_t)y % 16 == 0);
    const int64_t m16 = m - m % 16;
    for (int64_t j = 0; j < m16; j += 16) {
        __m256i k = fd_keep16(d16, d32, bits, T16, T32, none, j);
        __m128i lo = _mm256_castsi256_si128(k), hi = _mm256_extracti128_si256(k, 1);
        const __m256i w[4] = {_mm256_cvtepi16_epi64(lo), _mm256_cvtepi16_epi64(_mm_srli_si128(lo, 8)),
                              _mm256_cvtepi16_epi64(hi), _mm256_cvtepi16_epi64(_mm_srli_si128(hi, 8))};
        for (int q = 0; q < 4; q++) {
            int64_t e = j + 4 * q;
            __m256d u = _mm256_loadu_pd(x + e);
            if (b != NULL)
                u = _mm256_add_pd(u, _mm256_loadu_pd(b + e));
            __m256d v = _mm256_and_pd(_mm256_mul_pd(u, S), _mm256_castsi256_pd(w[q]));
            fd_put_f64(y + e, _mm256_add_pd(_mm256_loadu_pd(r + e), v), nt);
        }
    }
    for (int64_t j = m16; j < m; j++) {
        double u = b != NULL ? x[j] + b[j] : x[j];
        y[j] = r[j] + fd_keep_f64(u * s, fd_keep_at(d16, d32, bits, t, none, j));
    }
}

#include <cpuid.h>

/* F16C (leaf 1, ECX bit 29): on every AVX2 processor made so far, but checked. */
static inline int fd_cpu_has_f16c(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    return (c & (1u << 29)) ? 1 : 0;
}

/* 8 float32 -> 8 bfloat16 (low 16 bits of each 32-bit lane), as fd_f32_to_bf16. */
__attribute__((target("avx2")))
static inline __m256i fd_bf16_round8(__m256 v)
{
    const __m256i f = _mm256_castps_si256(v);
    const __m256i one = _mm256_set1_epi32(1);
    __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(f, _mm256_set1_epi32(0x7FFFFFFF)),
                                     _mm256_set1_epi32(0x7F800000));
    __m256i bias = _mm256_add_epi32(_mm256_set1_epi32(0x7FFF),
                                    _mm256_and_si256(_mm256_srli_epi32(f, 16), one));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(f, bias), 16);
    __m256i q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(f, 16),
                                                 _mm256_set1_epi32(0x8000)),
                                _mm256_set1_epi32(0x7FC0));   /* canonical, its sign */
    return _mm256_blendv_epi8(r, q, nan);
}

/* 16 half-type values: load (f16 or bf16 bits) -> y = keep ? x * s : +0 -> store. */
__attribute__((target("avx2,f16c")))
static inline void fd_fused16_h16(int bf16, const uint16_t *x, uint16_t *y, __m256i k,
                                  __m256 S, int nt)
{
    __m256i xv = _mm256_loadu_si256((const __m256i *)x);
    __m128i xh[2] = {_mm256_castsi256_si128(xv), _mm256_extracti128_si256(xv, 1)};
    __m128i kh[2] = {_mm256_castsi256_si128(k), _mm256_extracti128_si256(k, 1)};
    __m128i out[2];
    __m256i b32[2];
    for (int h = 0; h < 2; h++) {
        __m256 f = bf16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(xh[h]), 16))
                        : _mm256_cvtph_ps(xh[h]);
        __m256 v = _mm256_and_ps(_mm256_mul_ps(f, S),
                                 _mm256_castsi256_ps(_mm256_cvtepi16_epi32(kh[h])));
        if (bf16)
            b32[h] = fd_bf16_round8(v);
        else
            out[h] = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    }
    if (bf16) {
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(b32[0], b32[1]), 0xD8);
        out[0] = _mm256_castsi256_si128(packed);
        out[1] = _mm256_extracti128_si256(packed, 1);
    }
    if (nt) {
        _mm_stream_si128((__m128i *)y, out[0]);
        _mm_stream_si128((__m128i *)(y + 8), out[1]);
    } else {
        _mm_storeu_si128((__m128i *)y, out[0]);
        _mm_storeu_si128((__m128i *)(y + 8), out[1]);
    }
}

/* float32 -> float16 (bf16 = 0) or bfloat16 (bf16 = 1) bits with the vector roundings
 * of fd_fused16_h16, 8 at a time (the tail element by element with fd_half.h): a test
 * hook, so that ties and NaNs can be checked exhaustively against fd_half.h. */
__attribute__((target("avx2,f16c")))
static void fd_round_h16_vec(int bf16, const float *src, uint16_t *dst, int64_t n)
{
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 v = _mm256_loadu_ps(src + j);
        __m128i h;
        if (bf16) {
            __m256i b = fd_bf16_round8(v);
            h = _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(b, b), 0xD8));
        } else {
            h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        }
        _mm_storeu_si128((__m128i *)(dst + j), h);
    }
    for (; j < n; j++)
        dst[j] = bf16 ? fd_f32_to_bf16(src[j]).bits : fd_f32_to_f16(src[j]).bits;
}

/* One float16 (bf16 = 0) or bfloat16 (bf16 = 1) element, scalar: its bits times s in
 * float32, kept or +0, rounded once (the vector rows' tails). */
static inline uint16_t fd_h16_keep(int bf16, uint16_t x, float s, uint8_t k)
{
    if (bf16) {
        fd_bf16 v = {x};
        return fd_f32_to_bf16(fd_keep_f32(fd_bf16_to_f32(v) * s, k)).bits;
    }
    fd_f16 v = {x};
    return fd_f32_to_f16(fd_keep_f32(fd_f16_to_f32(v) * s, k)).bits;
}

/* The fused row for float16 (bf16 = 0; needs F16C) or bfloat16 (bf16 = 1). */
__attribute__((target("avx2,f16c")))
static void fd_fused_h16(int bf16, const uint16_t *d16, const uint32_t *d32, int bits,
                         uint32_t t, int none, const uint16_t *x, uint16_t *y, uint8_t *pk,
                         int64_t m, float s, int stream)
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
            fd_fused16_h16(bf16, x + j, y + j, k0, S, nt);
            fd_fused16_h16(bf16, x + j + 16, y + j + 16, k1, S, nt);
        }
    }
    if (y != NULL)
        for (int64_t j = m32; j < m; j++)
            y[j] = fd_h16_keep(bf16, x[j], s, fd_keep_at(d16, d32, bits, t, none, j));
    if (pk != NULL)
        fd_pack_tail(d16, d32, bits, t, none, m32, m, pk);
}

/* The backward from a packed mask for float16 (bf16 = 0; needs F16C) or bfloat16
 * (bf16 = 1): 2 mask bytes broadcast to 16 lanes and tested bit by bit give the keep
 * lanes of fd_fused16_h16 (as fd_packed_f32_avx2 does for float32). */
__attribute__((target("avx2,f16c")))
static void fd_packed_h16(int bf16, const uint8_t *pk, const uint16_t *x, uint16_t *y,
                          int64_t m, float s, int stream)
{
    const __m256 S = _mm256_set1_ps(s);
    const int nt = stream && ((uintptr_t)y % 16 == 0);
    const __m256i bit = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024,
                                          2048, 4096, 8192, 16384, (short)0x8000);
    int64_t j = 0;
    for (; j + 16 <= m; j += 16) {
        uint16_t w;
        memcpy(&w, pk + j / 8, 2);
        const __m256i W = _mm256_set1_epi16((short)w);
        fd_fused16_h16(bf16, x + j, y + j, _mm256_cmpeq_epi16(_mm256_and_si256(W, bit), bit),
                       S, nt);
    }
    for (; j < m; j++)
        y[j] = fd_h16_keep(bf16, x[j], s, (uint8_t)((pk[j / 8] >> (j % 8)) & 1u));
}

#else
#define FD_HAVE_FUSED 0
static inline int fd_cpu_has_f16c(void) { return 0; }
static void fd_fused_bda_f32(const uint16_t *d16, const uint32_t *d32, int bits, uint32_t t,
                             int none, const float *x, const float *b, const float *r,
                             float *y, int64_t m, float s, int stream)
{
    (void)d16; (void)d32; (void)bits; (void)t; (void)none; (void)x; (void)b; (void)r;
    (void)y; (void)m; (void)s; (void)stream;
}
static void fd_fused_bda_f64(const uint16_t *d16, const uint32_t *d32, int bits, uint32_t t,
                             int none, const double *x, const double *b, const double *r,
                             double *y, int64_t m, double s, int stream)
{
    (void)d16; (void)d32; (void)bits; (void)t; (void)none; (void)x; (void)b; (void)r;
    (void)y; (void)m; (void)s; (void)stream;
}
static void fd_round_h16_vec(int bf16, const float *src, uint16_t *dst, int64_t n)
{
    for (int64_t j = 0; j < n; j++)
        dst[j] = bf16 ? fd_f32_to_bf16(src[j]).bits : fd_f32_to_f16(src[j]).bits;
}
static void fd_fused_h16(int bf16, const uint16_t *d16, const uint32_t *d32, int bits,
                         uint32_t t, int none, const uint16_t *x, uint16_t *y, uint8_t *pk,
                         int64_t m, float s, int stream)
{
    (void)bf16; (void)d16; (void)d32; (void)bits; (void)t; (void)none; (void)x; (void)y;
    (void)pk; (void)m; (void)s; (void)stream;
}
static void fd_packed_h16(int bf16, const uint8_t *pk, const uint16_t *x, uint16_t *y,
                          int64_t m, float s, int stream)
{
    (void)bf16; (void)pk; (void)x; (void)y; (void)m; (void)s; (void)stream;
}
static void fd_fused_f32_avx512(const uint16_t *d16, const uint32_t *d32, int bits,
                                uint32_t t, int none, const float *x, float *y, uint8_t *pk,
                                int64_t m, float s, int stream)
{
    (void)d16; (void)d32; (void)bits; (void)t; (void)none; (void)x; (void)y; (void)pk;
    (void)m; (void)s; (void)stream;
}
static void fd_fused_f64_avx512(const uint16_t *d16, const uint32_t *d32, int bits,
                                uint32_t t, int none, const double *x, double *y,
                                uint8_t *pk, int64_t m, double s, int stream)
{
    (void)d16; (void)d32; (void)bits; (void)t; (void)none; (void)x; (void)y; (void)pk;
    (void)m; (void)s; (void)stream;
}
static void fd_packed_f32_avx512(const uint8_t *pk, const float *x, float *y, int64_t m,
                                 float s, int stream)
{
    (void)pk; (void)x; (void)y; (void)m; (void)s; (void)stream;
}
static void fd_packed_f32_avx2(const uint8_t *pk, const float *x, float *y, int64_t m,
                               float s, int stream)
{
    (void)pk; (void)x; (void)y; (void)m; (void)s; (void)stream;
}
static void fd_packed_f64_avx2(const uint8_t *pk, const double *x, double *y, int64_t m,
                               double s, int stream)
{
    (void)pk; (void)x; (void)y; (void)m; (void)s; (void)stream;
}
static void fd_packed_f64_avx512(const uint8_t *pk, const double *x, double *y, int64_t m,
                                 double s, int stream)
{
    (void)pk; (void)x; (void)y; (void)m; (void)s; (void)stream;
}
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
