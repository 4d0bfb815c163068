/*
 * fd_half.h -- float16 and bfloat16 storage types and their exact conversions.
 *
 * Half types are computed in float32 and rounded once (round half to even) back to
 * their storage type (docs/contract.md section 4).  The conversions follow NumPy's
 * npy_halfbits_to_floatbits / npy_floatbits_to_halfbits and ml_dtypes' bfloat16, so the
 * kernels equal the NumPy reference bit for bit, NaNs included (a float16 NaN keeps
 * NumPy's payload bits; a bfloat16 NaN is ml_dtypes' canonical quiet NaN of its sign).
 * The types are one-member structs so that Cython's fused types see four distinct types.
 */
#ifndef FASTDROP_FD_HALF_H
#define FASTDROP_FD_HALF_H

#include <stdint.h>
#include <string.h>

typedef struct { uint16_t bits; } fd_f16;
typedef struct { uint16_t bits; } fd_bf16;

static inline uint32_t fd_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float fd_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float fd_f16_to_f32(fd_f16 v)
{
    uint32_t h = v.bits;
    uint32_t sign = (h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
    if (exp == 0x1Fu)                          /* inf, nan */
        return fd_bits_f32(sign | 0x7F800000u | (mant << 13));
    if (exp == 0) {                            /* zero, subnormal: mant * 2^-24 is exact */
        float f = (float)mant * 5.9604644775390625e-08f;
        return fd_bits_f32(sign | fd_f32_bits(f));
    }
    return fd_bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

static inline fd_f16 fd_f32_to_f16(float value)
{
    uint32_t f = fd_f32_bits(value);
    uint16_t sign = (uint16_t)((f >> 16) & 0x8000u);
    uint32_t f_exp = f & 0x7F800000u, f_sig = f & 0x007FFFFFu;
    fd_f16 r;
    if (f_exp >= 0x47800000u) {                /* overflow to inf, or inf/nan */
        if (f_exp == 0x7F800000u && f_sig) {
            uint16_t n = (uint16_t)(0x7C00u + (f_sig >> 13));
            r.bits = (uint16_t)(sign | (n == 0x7C00u ? 0x7C01u : n));   /* stays a NaN */
        } else {
            r.bits = (uint16_t)(sign | 0x7C00u);
        }
        return r;
    }
    if (f_exp <= 0x38000000u) {                /* subnormal half or zero */
        if (f_exp < 0x33000000u) { r.bits = sign; return r; }
        f_exp >>= 23;
        f_sig = 0x00800000u + f_sig;
        f_sig >>= (113u - f_exp);
        if (((f_sig & 0x00003FFFu) != 0x00001000u) || (f & 0x000007FFu))
            f_sig += 0x00001000u;
        r.bits = (uint16_t)(sign + (f_sig >> 13));
        return r;
    }
    uint16_t h_exp = (uint16_t)((f_exp - 0x38000000u) >> 13);
    if ((f_sig & 0x00003FFFu) != 0x00001000u)  /* round half to even */
        f_sig += 0x00001000u;
    r.bits = (uint16_t)(sign + h_exp + (f_sig >> 13));  /* a carry into the exponent is right */
    return r;
}

static inline float fd_bf16_to_f32(fd_bf16 v) { return fd_bits_f32((uint32_t)v.bits << 16); }

static inline fd_bf16 fd_f32_to_bf16(float value)
{
    uint32_t f = fd_f32_bits(value);
    fd_bf16 r;
    if ((f & 0x7FFFFFFFu) > 0x7F800000u) {      /* nan: the canonical quiet nan of its */
        r.bits = (uint16_t)(((f >> 16) & 0x8000u) | 0x7FC0u);   /* sign, as ml_dtypes */
        return r;
    }
    f += 0x7FFFu + ((f >> 16) & 1u);           /* round half to even */
    r.bits = (uint16_t)(f >> 16);
    return r;
}

static inline fd_f16 fd_f16_zero(void) { fd_f16 r = {0}; return r; }
static inline fd_bf16 fd_bf16_zero(void) { fd_bf16 r = {0}; return r; }

/* ---- branch-free selects: a dropped element is exactly +0.0 (all bits zero) --------- */

/* v where k == 1, +0.0 where k == 0 (k is 0 or 1); NaN and Inf are cleared too. */
static inline float fd_keep_f32(float v, uint8_t k)
{
    return fd_bits_f32(fd_f32_bits(v) & (0u - (uint32_t)k));
}

static inline double fd_keep_f64(double v, uint8_t k)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    u &= (uint64_t)0 - (uint64_t)k;
    memcpy(&v, &u, 8);
    return v;
}

/* a where k == 1, b where k == 0. */
static inline float fd_select_f32(uint8_t k, float a, float b)
{
    uint32_t m = 0u - (uint32_t)k;
    return fd_bits_f32((fd_f32_bits(a) & m) | (fd_f32_bits(b) & ~m));
}

static inline double fd_select_f64(uint8_t k, double a, double b)
{
    uint64_t ua, ub, m = (uint64_t)0 - (uint64_t)k;
    memcpy(&ua, &a, 8);
    memcpy(&ub, &b, 8);
    ua = (ua & m) | (ub & ~m);
    memcpy(&a, &ua, 8);
    return a;
}

#endif /* FASTDROP_FD_HALF_H */
