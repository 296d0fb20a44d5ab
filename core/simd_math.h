/* simd_math.h — small math functions written so that `omp simd` loops vectorise them (glibc's vector
 * expf needs -ffast-math, which the project does not use): exp on non-positive arguments and tanh.
 * Accuracy: sf_exp_nonpos ~1e-7 relative (like expf) for -87 <= x <= 0 (callers clamp);
 * sf_tanh_fast ~1e-7 absolute (relative accuracy is lower for |x| < 1e-3, fine where tanh is added
 * to 1, as in GELU). */
#ifndef SF_SIMD_MATH_H
#define SF_SIMD_MATH_H

#include <stdint.h>

/* Cody-Waite range reduction x = n ln2 + r and a degree-7 polynomial. */
static inline float sf_exp_nonpos(float x) {
    const int32_t ni = (int32_t)(x * 1.44269504088896341f - 0.5f); /* round(x / ln2), x <= 0 */
    const float n = (float)ni;
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f; /* x - n ln2 in two parts */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union {
        int32_t i;
        float f;
    } s = {.i = (ni + 127) << 23}; /* 2^n, n >= -126 */
    return p * s.f;
}

static inline float sf_tanh_fast(float x) {
    float a = x < 0 ? -x : x;
    float z = -2.0f * a;
    z = z < -87.0f ? -87.0f : z;
    float e = sf_exp_nonpos(z);
    float t = (1.0f - e) / (1.0f + e);
    return x < 0 ? -t : t;
}

#endif
