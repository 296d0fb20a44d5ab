/* ops_sampled.c — selected entries of a linear layer's weight gradient, computed directly as dot
 * products of the layer input and the output gradient (a sampled dense-dense product): for SIFT
 * targets whose mask is fixed, k entries cost k*N multiply-adds instead of the N*C*OC of a full dW.
 *
 * The optimised kernel transposes dout (N, OC) and inp (N, C) once, in L1-sized tiles of 8 x 8 AVX
 * register blocks, so that each entry is a contiguous, vectorised dot product of length N; the k dot
 * products run in parallel. (Row-wise gathers and per-block transposes measured 4-10x slower here: the
 * cost is memory access, not the k*N multiply-adds.) A plain reference loop sits beside it. */
#include "ops.h"

#ifdef __AVX__
#include <immintrin.h>
#endif

/* Row stride of the transposed copies: N padded so that consecutive rows are not a multiple of 4 KB
 * apart (N = 1024 floats would put the 8 rows of every register block in one L1 set). */
static int64_t padded_rows(int64_t N) { return (N + 15) / 16 * 16 + 16; }

int64_t sf_linear_weight_grad_sampled_scratch(int64_t k, int64_t N, int64_t C, int64_t OC) {
    (void)k;
    return (C + OC) * padded_rows(N); /* the two transposed copies */
}

#ifdef __AVX__
#define SHUF_LO _MM_SHUFFLE(1, 0, 1, 0) /* immediates of _mm256_shuffle_ps */
#define SHUF_HI _MM_SHUFFLE(3, 2, 3, 2)
/* dst (8 rows, stride ds) = src (8 rows, stride ss)^T for one 8 x 8 block, in registers. */
static inline __attribute__((always_inline)) void transpose8x8(float *dst, int64_t ds, const float *src,
                                                              int64_t ss) {
    const __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ss), r2 = _mm256_loadu_ps(src + 2 * ss),
                 r3 = _mm256_loadu_ps(src + 3 * ss), r4 = _mm256_loadu_ps(src + 4 * ss),
                 r5 = _mm256_loadu_ps(src + 5 * ss), r6 = _mm256_loadu_ps(src + 6 * ss),
                 r7 = _mm256_loadu_ps(src + 7 * ss);
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
                 t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, SHUF_LO), u1 = _mm256_shuffle_ps(t0, t2, SHUF_HI),
                 u2 = _mm256_shuffle_ps(t1, t3, SHUF_LO), u3 = _mm256_shuffle_ps(t1, t3, SHUF_HI),
                 u4 = _mm256_shuffle_ps(t4, t6, SHUF_LO), u5 = _mm256_shuffle_ps(t4, t6, SHUF_HI),
                 u6 = _mm256_shuffle_ps(t5, t7, SHUF_LO), u7 = _mm256_shuffle_ps(t5, t7, SHUF_HI);
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + ds, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ds, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ds, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ds, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ds, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ds, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ds, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif

/* dst (Cc, R) with row stride ld = src (R, Cc)^T in 32 x 32 tiles (8 x 8 register blocks where AVX is
 * available, scalar at the edges); tiles are shared among threads. */
static void transpose(float *dst, int64_t ld, const float *src, int64_t R, int64_t Cc) {
    const int64_t TB = 32;
    const int64_t tiles_r = (R + TB - 1) / TB, tiles_c = (Cc + TB - 1) / TB;
#pragma omp parallel for schedule(static) if (R * Cc > (1 << 15))
    for (int64_t tr = 0; tr < tiles_r; tr++)
        for (int64_t tc = 0; tc < tiles_c; tc++) {
            const int64_t r0 = tr * TB, c0 = tc * TB;
            const int64_t r1 = r0 + TB < R ? r0 + TB : R, c1 = c0 + TB < Cc ? c0 + TB : Cc;
            int64_t rv = r0, cv = c0; /* the part covered by whole 8 x 8 blocks: [r0, rv) x [c0, cv) */
#ifdef __AVX__
            rv = r0 + (r1 - r0) / 8 * 8;
            cv = c0 + (c1 - c0) / 8 * 8;
            for (int64_t r = r0; r < rv; r += 8)
                for (int64_t c = c0; c < cv; c += 8) transpose8x8(dst + c * ld + r, ld, src + r * Cc + c, Cc);
#endif
            for (int64_t c = c0; c < c1; c++)
                for (int64_t r = (c < cv ? rv : r0); r < r1; r++) dst[c * ld + r] = src[r * Cc + c];
        }
}

void sf_linear_weight_grad_sampled(float *vals, sf_index_array idx, int64_t k, const float *dout, const float *inp,
                                   float *scratch, int64_t n_scratch, int64_t N, int64_t C, int64_t OC,
                                   sf_wlayout layout) {
    const int64_t ld = padded_rows(N);
    if (k == 0 || N == 0 || n_scratch < (C + OC) * ld) return;
    float *dT = scratch, *xT = scratch + OC * ld; /* (OC, N) and (C, N), row stride ld */
    transpose(dT, ld, dout, N, OC);
    transpose(xT, ld, inp, N, C);
#pragma omp parallel for schedule(static) if (k * N > (1 << 16))
    for (int64_t j = 0; j < k; j++) {
        const int64_t e = sf_index_get(idx, j);
        const int64_t o = layout == SF_W_OUT_IN ? e / C : e % OC, i = layout == SF_W_OUT_IN ? e % C : e / OC;
        const float *a = dT + o * ld, *x = xT + i * ld;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t n = 0; n < N; n++) s += a[n] * x[n];
        vals[j] += s;
    }
}

void sf_linear_weight_grad_sampled_ref(float *vals, sf_index_array idx, int64_t k, const float *dout, const float *inp,
                                       int64_t N, int64_t C, int64_t OC, sf_wlayout layout) {
    for (int64_t j = 0; j < k; j++) {
        int64_t e = sf_index_get(idx, j);
        int64_t o = layout == SF_W_OUT_IN ? e / C : e % OC, i = layout == SF_W_OUT_IN ? e % C : e / OC;
        double s = 0;
        for (int64_t n = 0; n < N; n++) s += (double)dout[n * OC + o] * inp[n * C + i];
        vals[j] += (float)s;
    }
}
