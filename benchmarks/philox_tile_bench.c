/* The Philox tiles alone, in a C loop: ns per 4-word block of the portable and the AVX2
 * tile (best of 9 passes over 2^22 blocks), after checking that they agree.
 *
 *     gcc -O3 -Ifastdrop/_cpu/src benchmarks/philox_tile_bench.c -o /tmp/tile && /tmp/tile
 */
#include "philox.h"

#include <stdio.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(void)
{
    uint32_t a[FD_TILE_WORDS], b[FD_TILE_WORDS];
    uint64_t acc = 0;
    for (uint64_t s = 0; s < 50; s++)
        for (uint64_t blk = 0; blk < (1u << 12); blk += 7) {
            uint64_t seed = s * 0x9E3779B97F4A7C15ULL, st = s * 12345 + (s << 40);
            uint64_t b0 = blk + (s << 33) + 0xFFFFFFF0ULL * (s & 1);  /* 2^32 wraps too */
            fd_philox_tile_portable(seed, st, b0, a);
            fd_philox_tile_at(fd_simd_best() >= FD_SIMD_AVX2 ? FD_SIMD_AVX2 : 0, seed, st, b0, b);
            if (memcmp(a, b, sizeof a) != 0) {
                printf("the tiles differ\n");
                return 1;
            }
        }
    for (int level = 0; level <= (fd_simd_best() >= FD_SIMD_AVX2 ? FD_SIMD_AVX2 : 0); level++) {
        double best = 1e9;
        for (int r = 0; r < 9; r++) {
            double t = now();
            for (uint64_t q = 0; q < (1u << 22); q += FD_TILE_BLOCKS) {
                fd_philox_tile_at(level, 123, 5, q, b);
                acc += b[7];
            }
            t = now() - t;
            if (t < best)
                best = t;
        }
        printf("%s tile: %.3f ns per block\n", level ? "AVX2" : "portable",
               best / (1u << 22) * 1e9);
    }
    return (int)(acc & 0);
}
