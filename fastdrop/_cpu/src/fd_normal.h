/* fd_normal.h: standard normal deviates from 32-bit Philox words, exactly specified.
 *
 * One 32-bit word r gives one deviate z = Phi^-1(u) with u = (r + 1/2) / 2^32, through
 * Wichura's AS241 (PPND16) rational approximations.  The only operations are +, -, *, /
 * and sqrt in IEEE double precision with round-to-nearest, each correctly rounded, in a
 * fixed order, plus exact bit manipulations; the logarithm of the tail branch is our own
 * (below), not libm's.  So every backend (this header, the NumPy reference, the CUDA twin)
 * gives the same bits.  Build without FMA contraction (-ffp-contract=off).  The steps are
 * in docs/contract.md; fastdrop/reference.py `normal_from_words` is the NumPy twin.
 */
#ifndef FD_NORMAL_H
#define FD_NORMAL_H

#include <stdint.h>
#include <string.h>
#include <math.h>

/* -log(j * 2^-33) for odd j in [1, 2^32): j = m * 2^e with m in [1, 2) taken from the bits
 * of (double)j (exact); m > sqrt(2) is halved (e + 1) so m is in (0.707, 1.415];
 * log(m) = 2 atanh(s), s = (m - 1) / (m + 1), by its series through s^21. */
static inline double fd_neglog_odd(uint32_t j)
{
    /* (double)j without a uint32 conversion (none in SSE2/AVX2): exact either way */
    double dj = (double)(int32_t)(j ^ 0x80000000u) + 2147483648.0, m, f, s, z, w, lm, k;
    uint64_t bits;
    int32_t e, big;
    memcpy(&bits, &dj, 8);
    e = (int32_t)(bits >> 52) - 1023;
    bits = (bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;
    memcpy(&m, &bits, 8);
    big = m > 1.4142135623730951;             /* branch-free, so loops vectorise */
    m = m * (1.0 - 0.5 * (double)big);        /* exact: m or m / 2 */
    e = e + big;
    f = m - 1.0;
    s = f / (2.0 + f);
    z = s * s;
    w = 0.047619047619047616;
    w = w * z + 0.05263157894736842;
    w = w * z + 0.058823529411764705;
    w = w * z + 0.06666666666666667;
    w = w * z + 0.07692307692307693;
    w = w * z + 0.09090909090909091;
    w = w * z + 0.1111111111111111;
    w = w * z + 0.14285714285714285;
    w = w * z + 0.2;
    w = w * z + 0.3333333333333333;
    w = w * z + 1.0;
    lm = (s + s) * w;
    k = (double)(33 - e);                     /* -log(x) = k ln2 - log(m), k in 1..33 */
    return k * 6.93147180369123816490e-01 + (k * 1.90821492927058770002e-10 - lm);
}

/* The deviate of word r (see the top of this file). */
static inline double fd_normal_u32(uint32_t r)
{
    double q, c, a, b, central, t, tail;
    uint64_t sel, cb, tb;
    uint32_t lo = r < ~r ? r : ~r;            /* min(u, 1 - u) = (2 lo + 1) 2^-33 */
    /* q = u - 1/2 = (2r + 1 - 2^32) 2^-33, exactly */
    q = ((double)(int32_t)(r ^ 0x80000000u) * 2.0 + 1.0) * 1.1641532182693481e-10;
    /* |q| <= 0.425 */
    c = 0.180625 - q * q;
    a = 2.5090809287301226727e+3;
    a = a * c + 3.3430575583588128105e+4;
    a = a * c + 6.7265770927008700853e+4;
    a = a * c + 4.5921953931549871457e+4;
    a = a * c + 1.3731693765509461125e+4;
    a = a * c + 1.9715909503065514427e+3;
    a = a * c + 1.3314166789178437745e+2;
    a = a * c + 3.3871328727963666080e+0;
    b = 5.2264952788528545610e+3;
    b = b * c + 2.8729085735721942674e+4;
    b = b * c + 3.9307895800092710610e+4;
    b = b * c + 2.1213794301586595867e+4;
    b = b * c + 5.3941960214247511077e+3;
    b = b * c + 6.8718700749205790830e+2;
    b = b * c + 4.2313330701600911252e+1;
    b = b * c + 1.0;
    central = (q * a) / b;
    /* |q| > 0.425: t = sqrt(-log(min(u, 1 - u))) - 1.6, t + 1.6 <= 4.79 < 5 always
     * (u >= 2^-33), so AS241's third branch is never needed. */
    t = sqrt(fd_neglog_odd(2 * lo + 1)) - 1.6;
    a = 7.74545014278341407640e-4;
    a = a * t + 2.27238449892691845833e-2;
    a = a * t + 2.41780725177450611770e-1;
    a = a * t + 1.27045825245236838258e+0;
    a = a * t + 3.64784832476320460504e+0;
    a = a * t + 5.76949722146069140550e+0;
    a = a * t + 4.63033784615654529590e+0;
    a = a * t + 1.42343711074968357734e+0;
    b = 1.05075007164441684324e-9;
    b = b * t + 5.47593808499534494600e-4;
    b = b * t + 1.51986665636164571966e-2;
    b = b * t + 1.48103976427480074590e-1;
    b = b * t + 6.89767334985100004550e-1;
    b = b * t + 1.67638483018380384940e+0;
    b = b * t + 2.05319162663775882187e+0;
    b = b * t + 1.0;
    tail = a / b;
    tail = copysign(tail, q);                 /* tail > 0 where it is selected */
    /* central where |q| <= 0.425, else tail: a bit blend, so loops vectorise */
    sel = (uint64_t)0 - (uint64_t)(fabs(q) <= 0.425);
    memcpy(&cb, &central, 8);
    memcpy(&tb, &tail, 8);
    cb = (cb & sel) | (tb & ~sel);
    memcpy(&central, &cb, 8);
    return central;
}

/* The block loops below vectorise (GCC, -fno-math-errno for sqrt); on x86-64 Linux they
 * are compiled twice, for AVX2 and for the baseline, and picked at load time (ifunc). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FD_CLONES
#endif

/* z[k] = the deviate of r[k]. */
FD_CLONES static void fd_normal_block(const uint32_t* r, double* z, int64_t n)
{
    int64_t k;
    for (k = 0; k < n; k++)
        z[k] = fd_normal_u32(r[k]);
}

/* g[k] = 1 + sigma * z(r[k]): the multiplicative noise of gaussian dropout, float64. */
FD_CLONES static void fd_gauss_noise(const uint32_t* r, double* g, int64_t n, double sigma)
{
    int64_t k;
    for (k = 0; k < n; k++)
        g[k] = 1.0 + sigma * fd_normal_u32(r[k]);
}

#endif /* FD_NORMAL_H */
