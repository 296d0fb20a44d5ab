/* simd_math.h — small math functions written so that `omp simd` loops vectorise them (glibc's vector
 * expf needs -ffast-math, which the project does not use): exp on non-positive arguments and tanh.
 * Accuracy: sf_exp_nonpos ~1e-7 relative (like expf) for -87 <= x <= 0 (callers clamp);
 * sf_tanh_fast ~1e-7 absolute (relative accuracy is lower for |x| < 1e-3, fine where tanh is added
 * to 1, as in GELU). Also the row helpers shared by attention and cross-entropy (shifted exp, max, sum). */
#ifndef SF_SIMD_MATH_H
#define SF_SIMD_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp(r) for |r| <= ln2 / 2: the degree-7 Taylor polynomial in Horner form, for a float r or a GCC
 * vector of floats (attention_short.c's vexp_nonpos). */
#define SF_EXP_POLY7(r)                                                                                         \
    ((((((((r) * (1.0f / 5040.0f) + 1.0f / 720.0f) * (r) + 1.0f / 120.0f) * (r) + 1.0f / 24.0f) * (r) +        \
        1.0f / 6.0f) * (r) + 0.5f) * (r) + 1.0f) * (r) + 1.0f)

/* Cody-Waite range reduction x = n ln2 + r and a degree-7 polynomial. */
static inline float sf_exp_nonpos(float x) {
    /* round(x / ln2), x <= 0, from a copy of x in which a NaN or an infinity is 0 (converting those to an
     * integer is undefined), made with integer operations so the loop still vectorises (a compare-and-
     * select on the float did not: 2x slower GELU); r below keeps x itself, so a NaN still comes out
     * NaN, and every finite x gives the same bits as before */
    uint32_t xb;
    memcpy(&xb, &x, 4);
    xb &= 0u - (uint32_t)((xb & 0x7fffffffu) < 0x7f800000u);
    float xf;
    memcpy(&xf, &xb, 4);
    const int32_t ni = (int32_t)(xf * 1.44269504088896341f - 0.5f);
    const float n = (float)ni;
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f; /* x - n ln2 in two parts */
    const float p = SF_EXP_POLY7(r);
    union {
        int32_t i;
        float f;
    } s = {.i = (int32_t)((uint32_t)(ni + 127) << 23)}; /* 2^n, n >= -126 (unsigned shift: NaN input must not be UB) */
    return p * s.f;
}

/* Branch-free (bit operations only) so `omp simd` loops vectorise it: |x| is clamped to 9 through its
 * bits (tanh(9) rounds to 1 in float) and the sign is copied back bit-wise. */
static inline float sf_tanh_fast(float x) {
    uint32_t xb, tb;
    memcpy(&xb, &x, 4);
    uint32_t ab = xb & 0x7fffffffu;
    ab = ab < 0x41100000u ? ab : 0x41100000u;
    float a;
    memcpy(&a, &ab, 4);
    float e = sf_exp_nonpos(-2.0f * a);
    float t = (1.0f - e) / (1.0f + e);
    memcpy(&tb, &t, 4);
    tb |= xb & 0x80000000u;
    memcpy(&t, &tb, 4);
    return t;
}

/* Row helpers shared by attention and cross-entropy. */
/* dst[j] = exp(src[j] - sub) for j < n (src <= sub; results below exp(-87) ~ 1.6e-38 are not exact);
 * dst == src is fine. Two loops: gcc -O2 vectorises each but not the fused one. */
static inline void sf_exp_shifted(float *dst, const float *src, float sub, int64_t n) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
        const float x = src[j] - sub;
        dst[j] = x < -87.0f ? -87.0f : x;
    }
#pragma omp simd
    for (int64_t j = 0; j < n; j++) dst[j] = sf_exp_nonpos(dst[j]);
}

/* max of x[0, n) (-inf when n == 0), 16 lanes */
static inline float sf_max_f32(const float *x, int64_t n) {
    float m[16];
    for (int l = 0; l < 16; l++) m[l] = -INFINITY;
    const int64_t n16 = n - n % 16;
    for (int64_t j = 0; j < n16; j += 16) {
#pragma omp simd
        for (int l = 0; l < 16; l++) m[l] = x[j + l] > m[l] ? x[j + l] : m[l];
    }
    float r = -INFINITY;
    for (int l = 0; l < 16; l++) r = m[l] > r ? m[l] : r;
    for (int64_t j = n16; j < n; j++) r = x[j] > r ? x[j] : r;
    return r;
}

/* sum of x[0, n), 16 lanes */
static inline float sf_sum_f32(const float *x, int64_t n) {
    float a[16] = {0};
    const int64_t n16 = n - n % 16;
    for (int64_t j = 0; j < n16; j += 16) {
#pragma omp simd
        for (int l = 0; l < 16; l++) a[l] += x[j + l];
    }
    float r = 0.0f;
    for (int l = 0; l < 16; l++) r += a[l];
    for (int64_t j = n16; j < n; j++) r += x[j];
    return r;
}

/* One past the last real key of a (T) mask row (T when mask is NULL): keys past it (right padding) are
 * never computed. Shared by ops_attention.c and attention_short.c. */
static inline int64_t sf_key_end(const float *mask, int64_t T) {
    int64_t e = T;
    if (mask)
        while (e > 0 && mask[e - 1] == 0.0f) e--;
    return e;
}

#endif
