/* simd_act.h — exp, erfc, the Gaussian, the normal CDF and the sigmoid on whole vectors (simd_vec.h's
 * vf: 16, 8 or 4 floats), for the activations (exact GELU, SiLU / SwiGLU) and attention's softmax.
 * Written on GCC vectors rather than as scalar functions in `omp simd` loops: gcc -O2 does not if-convert
 * the clamps these need once an exp follows in the same loop (the loop stayed scalar, and erff / expf
 * are scalar library calls), while vector selects always compile to vector instructions.
 *
 * Accuracy (measured against double on a 1e-4 grid): vexp_nonpos ~1e-7 relative on [-87, 0]; verfc_nonneg,
 * vgauss and vsigmoid a few 1e-7 relative all the way into the tails (exp(-a^2) takes a^2 in two exact
 * parts). NaN stays NaN through every function; results below exp(-87) ~ 1.6e-38 flush to 0.
 *
 * SF_VLOOP walks an array in vectors with a partial last one (no scalar tail to keep in step; its partial
 * loads and stores are simd_vec.h's).
 *
 * What it does not do: parallelise loops (the kernels own their threading), or exp of positive
 * arguments. */
#ifndef SF_SIMD_ACT_H
#define SF_SIMD_ACT_H

#include "simd_math.h"
#include "simd_vec.h"

#define SF_INV_SQRT2 0.7071067811865476f

/* sf_exp_nonpos on a vector, for x in [-87, 0] (or NaN, which stays NaN: its conversion gives the
 * integer indefinite, and r is NaN): the same range reduction and polynomial. */
static inline vf vexp_nonpos(vf x) {
    const vi ni = __builtin_convertvector(x * 1.44269504088896341f - 0.5f, vi);
    const vf n = __builtin_convertvector(ni, vf);
    const vf r = (x - n * 0.693359375f) + n * 2.12194440e-4f; /* x - n ln2 in two parts */
    return SF_EXP_POLY7(r) * (vf)(((vu)ni + 127u) << 23);     /* p(r) 2^n */
}

/* exp(hi + lo) for hi + lo <= 0 (or NaN, or tiny above 0); 0 below -87 and when hi = -inf. hi is a multiple
 * of 2^-18 below 128 in magnitude and |lo| < 2, so hi - n ln2_hi is exact and the sum hi + lo is never
 * rounded into the reduced argument: for exp(-a^2), rounding a^2 alone costs ~a^2 2^-24 (5e-6 at a = 9). */
static inline vf vexp_nonpos_hilo(vf hi, vf lo) {
    const vf x = hi + lo;
    const vi tiny = (x < -87.0f) | (hi < -87.0f); /* hi = -inf: lo may be NaN (inf - inf) */
    const vi ni = __builtin_convertvector(vselect(tiny, splat(-87.0f), x) * 1.44269504088896341f - 0.5f, vi);
    const vf n = __builtin_convertvector(ni, vf);
    const vf r = ((hi - n * 0.693359375f) + lo) + n * 2.12194440e-4f;
    return vselect(tiny, splat(0.0f), SF_EXP_POLY7(r) * (vf)(((vu)ni + 127u) << 23));
}

static inline vf vabs(vf x) { return (vf)((vu)x & 0x7fffffffu); }

/* x with its 12 low mantissa bits cleared: its square (and half of it) is exact in float */
static inline vf vhigh12(vf x) { return (vf)((vu)x & 0xfffff000u); }

/* erfc(a) for a >= 0 (+inf gives 0), given -a^2 as hi + lo (hi exact, see vexp_nonpos_hilo): Numerical
 * Recipes' Chebyshev-fitted erfcc, t exp(P(t) - a^2) with t = 1 / (1 + a / 2), fractional error < 1.2e-7
 * in exact arithmetic, so it stays relatively accurate far into the tail, where 1 + erf(x) for a negative
 * x would cancel. P(0) - 1.2655 ~ 3e-8 > 0 at a = 0 (the fit's own error): its exp still rounds to 1. */
static inline vf verfc_split(vf a, vf hi, vf lo) {
    const vf t = 1.0f / (1.0f + 0.5f * a);
    const vf p = -1.26551223f +
                 t * (1.00002368f +
                      t * (0.37409196f +
                           t * (0.09678418f +
                                t * (-0.18628806f +
                                     t * (0.27886807f +
                                          t * (-1.13520398f +
                                               t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
    return t * vexp_nonpos_hilo(hi, lo + p);
}

/* erfc(a) for a >= 0 */
static inline vf verfc_nonneg(vf a) {
    const vf h = vhigh12(a);
    return verfc_split(a, -(h * h), (h - a) * (h + a));
}

/* exp(-x^2 / 2), from x itself (x / sqrt2 would round first: ~x^2 * 2^-24 relative) */
static inline vf vgauss(vf x) {
    const vf h = vhigh12(x);
    return vexp_nonpos_hilo(-0.5f * (h * h), -0.5f * ((x - h) * (x + h)));
}

/* Phi(x) = (1 + erf(x / sqrt2)) / 2, the standard normal CDF, as erfc(|x| / sqrt2) / 2 (or 1 minus it),
 * with the exponent -x^2 / 2 taken from x: relatively accurate for negative x too. */
static inline vf vnormal_cdf(vf x) {
    const vf ax = vabs(x), h = vhigh12(ax);
    const vf c = 0.5f * verfc_split(ax * SF_INV_SQRT2, -0.5f * (h * h), -0.5f * ((ax - h) * (ax + h)));
    return vselect(x < 0.0f, c, 1.0f - c);
}

/* 1 / (1 + exp(-x)) without overflow: e = exp(-|x|) <= 1, then 1 / (1 + e) for x >= 0 and e / (1 + e)
 * below; sigmoid(-inf) = 0, so silu(-inf) = -inf * 0 = NaN, as with expf. */
static inline vf vsigmoid(vf x) {
    const vf e = vexp_nonpos_hilo(-vabs(x), splat(0.0f)), r = 1.0f / (1.0f + e);
    return vselect(x < 0.0f, e * r, r);
}

/* Loops over [i0, i1) in whole vectors and, last, one partial vector of the rest: inside the body,
 * VLD(p) loads the lanes at p + i (zeros past the end) and VST(p, v) stores them (only those before the
 * end). Example: SF_VLOOP(0, n, { vf x = VLD(in); VST(out, x * vsigmoid(x)); }); */
#define SF_VLOOP(i0, i1, ...)                                                                                   \
    for (int64_t i = (i0), vend_ = (i1); i < vend_; i += VW) {                                                  \
        const int64_t vlanes_ = vend_ - i < VW ? vend_ - i : VW;                                                \
        __VA_ARGS__                                                                                             \
    }
#define VLD(p) load_prefix((p) + i, vlanes_)
#define VST(p, v) store_lanes((p) + i, (v), vlanes_)

#endif
