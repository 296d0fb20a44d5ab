/* simd_vec.h — one vector type for kernels written once for every x86 width: GCC's generic vectors of
 * VW floats (16 with AVX-512, 8 with AVX, 4 otherwise), which compile to the build's own instructions
 * (a * b + c becomes an FMA where the target has one), plus the few operations generic vectors lack:
 * a broadcast, a lane select, horizontal max and sum, and a load and a store of a partial vector that
 * touch nothing past its end. Used by attention_short.c's panels, ops_sampled.c's dot products,
 * simd_act.h's activations and gemm_skinny.c.
 *
 * What it does not do: choose blockings or register budgets (each kernel knows its own), or anything
 * that needs a width-specific shuffle beyond the reductions below. Loads and stores through (vf *) need
 * only float alignment. */
#ifndef SF_SIMD_VEC_H
#define SF_SIMD_VEC_H

#include <stdint.h>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#if defined(__AVX512F__)
#define VW 16 /* floats per vector */
#elif defined(__AVX__)
#define VW 8
#else
#define VW 4
#endif

typedef float vf __attribute__((vector_size(VW * sizeof(float)), aligned(sizeof(float)))); /* unaligned ok */
typedef int32_t vi __attribute__((vector_size(VW * sizeof(float))));
typedef uint32_t vu __attribute__((vector_size(VW * sizeof(float))));

/* x in every lane (one broadcast; 0 + x would be an add, as -0 + 0 is not -0) */
static inline vf splat(float x) {
    vf v;
    for (int l = 0; l < VW; l++) v[l] = x;
    return v;
}

/* lanes of a where m is all ones, of b where it is zero (m from a vector comparison) */
static inline vf vselect(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }

/* Horizontal max and sum of one vector; the sum as a tree of halves. */
static inline float hmax(vf x) {
#if VW == 16
    return _mm512_reduce_max_ps((__m512)x);
#else
    float r = x[0];
    for (int l = 1; l < VW; l++) r = x[l] > r ? x[l] : r;
    return r;
#endif
}
static inline float hsum(vf x) {
#if VW == 16
    return _mm512_reduce_add_ps((__m512)x);
#elif VW == 8
    __m128 h = _mm_add_ps(_mm256_castps256_ps128((__m256)x), _mm256_extractf128_ps((__m256)x, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
#else
    return (x[0] + x[2]) + (x[1] + x[3]);
#endif
}

/* The first n (>= 1) of VW floats at x, zeros in the other lanes; nothing past x + n is read. */
static inline vf load_prefix(const float *x, int64_t n) {
    if (n >= VW) return *(const vf *)x;
#if VW == 16
    return (vf)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), x);
#elif VW == 8 && defined(__AVX2__)
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return (vf)_mm256_maskload_ps(x, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), lanes));
#else
    vf v = splat(0.0f);
    for (int l = 0; l < n; l++) v[l] = x[l];
    return v;
#endif
}

/* The first n (< VW) lanes of v to x; nothing past x + n is written. */
static inline void store_prefix(float *x, vf v, int64_t n) {
#if VW == 16
    _mm512_mask_storeu_ps(x, (__mmask16)((1u << n) - 1), (__m512)v);
#else
    for (int64_t l = 0; l < n; l++) x[l] = v[l];
#endif
}

/* n (>= 1) lanes of v to x: a whole vector when n >= VW */
static inline void store_lanes(float *x, vf v, int64_t n) {
    if (n >= VW)
        *(vf *)x = v;
    else
        store_prefix(x, v, n);
}

#endif
