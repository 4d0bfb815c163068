/*
 * philox.h -- the single C definition of fastdrop's random generator.
 *
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
 * SC11; the Random123 library) and fastdrop's stream layout, as written in
 * docs/contract.md sections 1-3:
 *
 *   key     = (lo32(seed), hi32(seed))
 *   counter = (lo32(B), hi32(B), lo32(stream), hi32(stream))
 *   word w of a stream is word (w mod 4) of Philox4x32-10(counter(B = w div 4), key)
 *
 * Three layers, each built on the one before:
 *   1. fd_philox4x32_round / fd_philox4x32_R: the scalar generator, any number of rounds.
 *   2. fd_stream_block: one 4-word block of a (seed, stream) stream.
 *   3. fd_philox_tile: FD_TILE_BLOCKS consecutive blocks at once, in stream order.  A
 *      portable version (plain C, the round of layer 1 applied lane by lane) and an AVX2
 *      version (intrinsics) chosen at run time.  They are bit-identical; the tests check it.
 *
 * Nothing here depends on Python or NumPy; the Numba CUDA twin mirrors it line by line.
 */
#ifndef FASTDROP_PHILOX_H
#define FASTDROP_PHILOX_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>

#define FD_PHILOX_M0 UINT32_C(0xD2511F53)
#define FD_PHILOX_M1 UINT32_C(0xCD9E8D57)
#define FD_PHILOX_W0 UINT32_C(0x9E3779B9)
#define FD_PHILOX_W1 UINT32_C(0xBB67AE85)
#define FD_PHILOX_ROUNDS 10
#define FD_PHILOX_MAX_ROUNDS 16

/* Blocks per tile: 32 blocks = 128 words = 512 bytes, a few cache lines of L1. */
#define FD_TILE_BLOCKS 32
#define FD_TILE_WORDS (4 * FD_TILE_BLOCKS)

/* ---- 1. the generator ------------------------------------------------------------ */

/* One Philox round on counter words (c0, c1, c2, c3) with key (k0, k1). */
static inline void fd_philox4x32_round(uint32_t *c0, uint32_t *c1, uint32_t *c2,
                                       uint32_t *c3, uint32_t k0, uint32_t k1)
{
    uint64_t p0 = (uint64_t)FD_PHILOX_M0 * (uint64_t)*c0;
    uint64_t p1 = (uint64_t)FD_PHILOX_M1 * (uint64_t)*c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ *c1 ^ k0;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ *c3 ^ k1;
    *c1 = (uint32_t)p1;
    *c3 = (uint32_t)p0;
    *c0 = n0;
    *c2 = n2;
}

/* Philox4x32 with `rounds` rounds: the key is bumped after every round. */
static inline void fd_philox4x32_R(int rounds, const uint32_t ctr[4],
                                   const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < rounds; r++) {
        fd_philox4x32_round(&c0, &c1, &c2, &c3, k0, k1);
        k0 += FD_PHILOX_W0;
        k1 += FD_PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* ---- 2. the stream layout -------------------------------------------------------- */

/* Block `block` (words 4*block .. 4*block+3) of stream `stream` under `seed`. */
static inline void fd_stream_block(uint64_t seed, uint64_t stream, uint64_t block,
                                   uint32_t out[4])
{
    const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32),
                             (uint32_t)stream, (uint32_t)(stream >> 32)};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    fd_philox4x32_R(FD_PHILOX_ROUNDS, ctr, key, out);
}

/* ---- 3. tiles of blocks ---------------------------------------------------------- */

/* Blocks block0 .. block0 + FD_TILE_BLOCKS - 1, written as 4*FD_TILE_BLOCKS words in
 * stream order.  Portable: structure-of-arrays so that compilers can vectorise the
 * lane loop; block0 + i wraps modulo 2^64 as the 64-bit block counter does. */
static void fd_philox_tile_portable(uint64_t seed, uint64_t stream, uint64_t block0,
                                    uint32_t *out)
{
    uint32_t x0[FD_TILE_BLOCKS], x1[FD_TILE_BLOCKS], x2[FD_TILE_BLOCKS], x3[FD_TILE_BLOCKS];
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int i = 0; i < FD_TILE_BLOCKS; i++) {
        uint64_t b = block0 + (uint64_t)i;
        x0[i] = (uint32_t)b;
        x1[i] = (uint32_t)(b >> 32);
        x2[i] = (uint32_t)stream;
        x3[i] = (uint32_t)(stream >> 32);
    }
    for (int r = 0; r < FD_PHILOX_ROUNDS; r++) {
        for (int i = 0; i < FD_TILE_BLOCKS; i++)
            fd_philox4x32_round(&x0[i], &x1[i], &x2[i], &x3[i], k0, k1);
        k0 += FD_PHILOX_W0;
        k1 += FD_PHILOX_W1;
    }
    for (int i = 0; i < FD_TILE_BLOCKS; i++) {
        out[4 * i + 0] = x0[i];
        out[4 * i + 1] = x1[i];
        out[4 * i + 2] = x2[i];
        out[4 * i + 3] = x3[i];
    }
}

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) \
    && !defined(FASTDROP_NO_AVX2)
#define FD_HAVE_AVX2_KERNEL 1
#include <immintrin.h>

/* The same tile with AVX2: each 64-bit lane holds one block's 32-bit counter word in
 * its low half (the high half is don't-care: vpmuludq reads only the low 32 bits), so
 * the round's two 32x32->64 products are one vpmuludq each for 4 blocks.  The tile runs
 * in groups of FD_AVX2_GROUP vectors (8 blocks), each group's ten rounds in registers:
 * 8 state vectors and the constants fit AVX2's 16 ymm registers, where the whole tile's
 * 32 state vectors at once spilled to the stack every round (4.9 ns a block against 3.7
 * in a C loop on an AVX2-only AMD EPYC; docs/benchmarks.md). */
#define FD_AVX2_GROUP 2
__attribute__((target("avx2")))
static void fd_philox_tile_avx2(uint64_t seed, uint64_t stream, uint64_t block0,
                                uint32_t *out)
{
    enum { NV = FD_TILE_BLOCKS / 4, G = FD_AVX2_GROUP };
    const __m256i m0 = _mm256_set1_epi64x((long long)FD_PHILOX_M0);
    const __m256i m1 = _mm256_set1_epi64x((long long)FD_PHILOX_M1);
    const __m256i lo32 = _mm256_set1_epi64x(0xFFFFFFFFLL);
    const __m256i s2 = _mm256_set1_epi64x((long long)(uint32_t)stream);
    const __m256i s3 = _mm256_set1_epi64x((long long)(uint32_t)(stream >> 32));
    const __m256i base = _mm256_set1_epi64x((long long)block0);
    for (int g = 0; g < NV; g += G) {
        __m256i x0[G], x1[G], x2[G], x3[G];
        uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
        for (int u = 0; u < G; u++) {
            const int v = g + u;
            __m256i b = _mm256_add_epi64(base, _mm256_setr_epi64x(4 * v, 4 * v + 1,
                                                                  4 * v + 2, 4 * v + 3));
            x0[u] = b;
            x1[u] = _mm256_srli_epi64(b, 32);
            x2[u] = s2;
            x3[u] = s3;
        }
        for (int r = 0; r < FD_PHILOX_ROUNDS; r++) {
            const __m256i K0 = _mm256_set1_epi64x((long long)k0);
            const __m256i K1 = _mm256_set1_epi64x((long long)k1);
            for (int u = 0; u < G; u++) {
                __m256i p0 = _mm256_mul_epu32(x0[u], m0);
                __m256i p1 = _mm256_mul_epu32(x2[u], m1);
                __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), x1[u]), K0);
                __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), x3[u]), K1);
                x1[u] = p1;
                x3[u] = p0;
                x0[u] = n0;
                x2[u] = n2;
            }
            k0 += FD_PHILOX_W0;
            k1 += FD_PHILOX_W1;
        }
        for (int u = 0; u < G; u++) {
            const int v = g + u;
            /* lanes (x0, x1, x2, x3) of blocks 4v..4v+3 -> 16 words in stream order */
            __m256i ab = _mm256_or_si256(_mm256_and_si256(x0[u], lo32), _mm256_slli_epi64(x1[u], 32));
            __m256i cd = _mm256_or_si256(_mm256_and_si256(x2[u], lo32), _mm256_slli_epi64(x3[u], 32));
            __m256i lo = _mm256_unpacklo_epi64(ab, cd);   /* blocks 4v, 4v+2 */
            __m256i hi = _mm256_unpackhi_epi64(ab, cd);   /* blocks 4v+1, 4v+3 */
            _mm256_storeu_si256((__m256i *)(out + 16 * v), _mm256_permute2x128_si256(lo, hi, 0x20));
            _mm256_storeu_si256((__m256i *)(out + 16 * v + 8), _mm256_permute2x128_si256(lo, hi, 0x31));
        }
    }
}

static inline int fd_cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}

/* ---- the AVX-512 tile (F + BW + VL) -----------------------------------------------
 *
 * The AVX2 tile's layout at twice the width: each 64-bit lane of a 512-bit vector holds
 * one block's counter word in its low half, 8 blocks a vector, the 32 blocks of a tile in
 * 16 state vectors (of 32 zmm registers: no spills, where the AVX2 tile's 32 ymm of state
 * overflow AVX2's 16).  A round is, for 8 blocks: two vpmuludq, two shifts and two
 * vpternlogd (the three-way XORs, 0x96 = a ^ b ^ c): 6 instructions where AVX2 needs 8
 * for 4 blocks.
 *
 * The body is written once (FD_TILE512_BODY) over a small set of operations, and
 * instantiated twice: with AVX-512 intrinsics (fd_philox_tile_avx512, the run-time level
 * FD_SIMD_AVX512), and with the same operations emulated by pairs of AVX2 registers
 * (fd_philox_tile_avx512_emu, a test hook: tests/_shims.pyx runs it on machines without
 * AVX-512, so the body's logic is checked everywhere; the AVX-512 operations themselves
 * are one intrinsic each).  Both equal the portable tile bit for bit. */
#define FD_TILE512_BODY(P, V)                                                             \
    V x0[4], x1[4], x2[4], x3[4];                                                         \
    const V m0 = P##set1(FD_PHILOX_M0), m1 = P##set1(FD_PHILOX_M1);                       \
    const V lo32 = P##set1(0xFFFFFFFFu);                                                  \
    const V s2 = P##set1((uint32_t)stream), s3 = P##set1((uint32_t)(stream >> 32));       \
    const V iota = P##iota();                                                             \
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);                            \
    for (int v = 0; v < 4; v++) {                                                         \
        V b = P##add(P##set1(block0 + (uint64_t)(8 * v)), iota);                          \
        x0[v] = b;                                                                        \
        x1[v] = P##srl32(b);                                                              \
        x2[v] = s2;                                                                       \
        x3[v] = s3;                                                                       \
    }                                                                                     \
    for (int r = 0; r < FD_PHILOX_ROUNDS; r++) {                                          \
        const V K0 = P##set1(k0), K1 = P##set1(k1);                                       \
        for (int v = 0; v < 4; v++) {                                                     \
            V p0 = P##mul(x0[v], m0);                                                     \
            V p1 = P##mul(x2[v], m1);                                                     \
            V n0 = P##xor3(P##srl32(p1), x1[v], K0);                                      \
            V n2 = P##xor3(P##srl32(p0), x3[v], K1);                                      \
            x1[v] = p1;                                                                   \
            x3[v] = p0;                                                                   \
            x0[v] = n0;                                                                   \
            x2[v] = n2;                                                                   \
        }                                                                                 \
        k0 += FD_PHILOX_W0;                                                               \
        k1 += FD_PHILOX_W1;                                                               \
    }                                                                                     \
    for (int v = 0; v < 4; v++) {                                                         \
        /* (word 0 | word 1 << 32) and (word 2 | word 3 << 32) of blocks 8v .. 8v+7,     \
           interleaved: blocks 8v .. 8v+3, then 8v+4 .. 8v+7, in stream order */          \
        V ab = P##or(P##and(x0[v], lo32), P##sll32(x1[v]));                               \
        V cd = P##or(P##and(x2[v], lo32), P##sll32(x3[v]));                               \
        P##store(out + 32 * v, P##ilo(ab, cd));                                           \
        P##store(out + 32 * v + 16, P##ihi(ab, cd));                                      \
    }

/* The operations with AVX-512 (64-bit lanes). */
#define fd512_set1(v) _mm512_set1_epi64((long long)(uint64_t)(v))
#define fd512_iota() _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7)
#define fd512_add(a, b) _mm512_add_epi64((a), (b))
#define fd512_srl32(a) _mm512_srli_epi64((a), 32)
#define fd512_sll32(a) _mm512_slli_epi64((a), 32)
#define fd512_and(a, b) _mm512_and_si512((a), (b))
#define fd512_or(a, b) _mm512_or_si512((a), (b))
#define fd512_mul(a, b) _mm512_mul_epu32((a), (b))
#define fd512_xor3(a, b, c) _mm512_ternarylogic_epi64((a), (b), (c), 0x96)
#define fd512_ilo(a, b) _mm512_permutex2var_epi64((a), _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11), (b))
#define fd512_ihi(a, b) _mm512_permutex2var_epi64((a), _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15), (b))
#define fd512_store(p, a) _mm512_storeu_si512((void *)(p), (a))

__attribute__((target("avx512f,avx512bw,avx512vl")))
static void fd_philox_tile_avx512(uint64_t seed, uint64_t stream, uint64_t block0,
                                  uint32_t *out)
{
    FD_TILE512_BODY(fd512_, __m512i)
}

/* The same operations on pairs of AVX2 registers (lanes 0-3, lanes 4-7): the test hook. */
typedef struct { __m256i l, h; } fd_e512;

__attribute__((target("avx2"))) static inline fd_e512 fdE_set1(uint64_t v)
{ fd_e512 r = {_mm256_set1_epi64x((long long)v), _mm256_set1_epi64x((long long)v)}; return r; }
__attribute__((target("avx2"))) static inline fd_e512 fdE_iota(void)
{ fd_e512 r = {_mm256_setr_epi64x(0, 1, 2, 3), _mm256_setr_epi64x(4, 5, 6, 7)}; return r; }
__attribute__((target("avx2"))) static inline fd_e512 fdE_add(fd_e512 a, fd_e512 b)
{ fd_e512 r = {_mm256_add_epi64(a.l, b.l), _mm256_add_epi64(a.h, b.h)}; return r; }
__attribute__((target("avx2"))) static inline fd_e512 fdE_srl32(fd_e512 a)
{ fd_e512 r = {_mm256_srli_epi64(a.l, 32), _mm256_srli_epi64(a.h, 32)}; return r; }
__attribute__((target("avx2"))) static inline fd_e512 fdE_sll32(fd_e512 a)
{ fd_e512 r = {_mm256_slli_epi64(a.l, 32), _mm256_slli_epi64(a.h, 32)}; return r; }
__attribute__((target("avx2"))) static inline fd_e512 fdE_and(fd_e512 a, fd_e512 b)
{ fd_e512 r = {_mm256_and_si256(a.l, b.l), _mm256_and_si256(a.h, b.h)}; return r; }
__attribute__((target("avx2"))) static inline fd_e512 fdE_or(fd_e512 a, fd_e512 b)
{ fd_e512 r = {_mm256_or_si256(a.l, b.l), _mm256_or_si256(a.h, b.h)}; return r; }
__attribute__((target("avx2"))) static inline fd_e512 fdE_mul(fd_e512 a, fd_e512 b)
{ fd_e512 r = {_mm256_mul_epu32(a.l, b.l), _mm256_mul_epu32(a.h, b.h)}; return r; }
__attribute__((target("avx2"))) static inline fd_e512 fdE_xor3(fd_e512 a, fd_e512 b, fd_e512 c)
{
    fd_e512 r = {_mm256_xor_si256(_mm256_xor_si256(a.l, b.l), c.l),
                 _mm256_xor_si256(_mm256_xor_si256(a.h, b.h), c.h)};
    return r;
}
/* lanes (a0, b0, a1, b1, a2, b2, a3, b3): permutex2var with indices 0, 8, 1, 9, ... */
__attribute__((target("avx2"))) static inline fd_e512 fdE_ilo(fd_e512 a, fd_e512 b)
{
    __m256i lo = _mm256_unpacklo_epi64(a.l, b.l), hi = _mm256_unpackhi_epi64(a.l, b.l);
    fd_e512 r = {_mm256_permute2x128_si256(lo, hi, 0x20), _mm256_permute2x128_si256(lo, hi, 0x31)};
    return r;
}
/* lanes (a4, b4, a5, b5, a6, b6, a7, b7): indices 4, 12, 5, 13, ... */
__attribute__((target("avx2"))) static inline fd_e512 fdE_ihi(fd_e512 a, fd_e512 b)
{
    __m256i lo = _mm256_unpacklo_epi64(a.h, b.h), hi = _mm256_unpackhi_epi64(a.h, b.h);
    fd_e512 r = {_mm256_permute2x128_si256(lo, hi, 0x20), _mm256_permute2x128_si256(lo, hi, 0x31)};
    return r;
}
__attribute__((target("avx2"))) static inline void fdE_store(uint32_t *p, fd_e512 a)
{
    _mm256_storeu_si256((__m256i *)(void *)p, a.l);
    _mm256_storeu_si256((__m256i *)(void *)(p + 8), a.h);
}

__attribute__((target("avx2"), unused))
static void fd_philox_tile_avx512_emu(uint64_t seed, uint64_t stream, uint64_t block0,
                                      uint32_t *out)
{
    FD_TILE512_BODY(fdE_, fd_e512)
}

/* AVX-512 F, BW and VL, with the OS saving the zmm state (libgcc's check covers XCR0). */
static inline int fd_cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512vl")) ? 1 : 0;
}
#else
#define FD_HAVE_AVX2_KERNEL 0
static inline int fd_cpu_has_avx2(void) { return 0; }
static inline int fd_cpu_has_avx512(void) { return 0; }
#endif

/* Kernel levels: 0 = portable C, 1 = AVX2, 2 = AVX-512 (its Philox tile, and the fused
 * float32/float64 dropout rows of fd_fused.h with mask registers). */
#define FD_SIMD_PORTABLE 0
#define FD_SIMD_AVX2 1
#define FD_SIMD_AVX512 2

/* The best level this build and this CPU support. */
static inline int fd_simd_best(void)
{
#if FD_HAVE_AVX2_KERNEL
    if (fd_cpu_has_avx2() && fd_cpu_has_avx512())
        return FD_SIMD_AVX512;
    if (fd_cpu_has_avx2())
        return FD_SIMD_AVX2;
#endif
    return FD_SIMD_PORTABLE;
}

/* One tile at the given level (a level this machine lacks falls back to portable). */
static inline void fd_philox_tile_at(int level, uint64_t seed, uint64_t stream,
                                     uint64_t block0, uint32_t *out)
{
#if FD_HAVE_AVX2_KERNEL
    if (level == FD_SIMD_AVX512) {
        fd_philox_tile_avx512(seed, stream, block0, out);
        return;
    }
    if (level == FD_SIMD_AVX2) {
        fd_philox_tile_avx2(seed, stream, block0, out);
        return;
    }
#endif
    (void)level;
    fd_philox_tile_portable(seed, stream, block0, out);
}

/* ---- draws ----------------------------------------------------------------------- */

#if defined(__BYTE_ORDER__) && (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
#define FD_LITTLE_ENDIAN 1
#else
#define FD_LITTLE_ENDIAN 0
#endif

/* 16-bit draw j of a word buffer: low half of word j/2 first (contract section 3). */
static inline uint16_t fd_draw16(const uint32_t *words, size_t j)
{
    return (uint16_t)(words[j >> 1] >> ((j & 1u) * 16u));
}

/* Copy n 16-bit draws starting at draw `first` of a word buffer into dst. */
static inline void fd_copy_draws16(const uint32_t *words, size_t first, size_t n, uint16_t *dst)
{
#if FD_LITTLE_ENDIAN
    /* on little-endian machines the uint16 view of the words is the draw order */
    memcpy(dst, (const uint16_t *)(const void *)words + first, n * sizeof(uint16_t));
#else
    for (size_t j = 0; j < n; j++)
        dst[j] = fd_draw16(words, first + j);
#endif
}

/* 8-bit draw j of a word buffer: byte j mod 4 of word j/4, least significant first. */
static inline uint8_t fd_draw8(const uint32_t *words, size_t j)
{
    return (uint8_t)(words[j >> 2] >> ((j & 3u) * 8u));
}

/* Copy n 8-bit draws starting at draw `first` of a word buffer into dst. */
static inline void fd_copy_draws8(const uint32_t *words, size_t first, size_t n, uint8_t *dst)
{
#if FD_LITTLE_ENDIAN
    /* on little-endian machines the byte view of the words is the draw order */
    memcpy(dst, (const uint8_t *)(const void *)words + first, n);
#else
    for (size_t j = 0; j < n; j++)
        dst[j] = fd_draw8(words, first + j);
#endif
}

/* n 8-bit draws widened to 16 bits (the 16-bit compare paths then serve bits = 8). */
static inline void fd_widen8(const uint8_t *src, size_t n, uint16_t *dst)
{
    for (size_t j = 0; j < n; j++)
        dst[j] = src[j];
}

#endif /* FASTDROP_PHILOX_H */
