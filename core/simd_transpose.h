/* simd_transpose.h — register transposes of small float blocks, shared by the kernels that must read a
 * row-major operand column-wise (the own GEMM's packs, attention_short.c's K^T and V^T): whole cache
 * lines are loaded and the transpose happens in registers, instead of one gathered value per row.
 * sf_load_transpose16 needs AVX-512F, sf_transpose8x8 AVX; each exists only when the build targets it.
 *
 * What it does not do: any size but these blocks (callers tile and handle edges), or stores beyond the
 * 8 x 8 block (sf_load_transpose16 leaves the transposed rows in registers for the caller to store). */
#ifndef SF_SIMD_TRANSPOSE_H
#define SF_SIMD_TRANSPOSE_H

#include <stdint.h>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#if defined(__AVX512F__)
/* Loads `rows` (<= 16) rows of 16 consecutive floats (the first `kn` of each, the rest 0; rows beyond
 * `rows` are 0) from X (row stride ld) into r, and transposes them in registers: afterwards r[j] holds
 * element j of every row, i.e. r[j][i] = X[i * ld + j]. The pack of a transposed operand reads whole
 * cache lines this way, 16 values a load, instead of gathering one value per row. */
static inline void sf_load_transpose16(__m512 r[16], const float *X, int64_t ld, int rows, int kn) {
    const __mmask16 km = kn >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << kn) - 1);
    for (int i = 0; i < 16; i++) r[i] = i < rows ? _mm512_maskz_loadu_ps(km, X + i * ld) : _mm512_setzero_ps();
    __m512 t[16];
    for (int i = 0; i < 8; i++) { /* per 128-bit lane: pairs of rows interleaved */
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* r[4i + j], lane L: rows 4i..4i+3 of column 4L + j */
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    for (int j = 0; j < 4; j++) { /* 128-bit lanes regrouped: columns j, 8+j (0x88) and 4+j, 12+j (0xdd) */
        t[j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
        t[4 + j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xdd);
        t[8 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
        t[12 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xdd);
    }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
        r[4 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0xdd);
    }
}

#endif

#if defined(__AVX__)
#define SF_SHUF_LO _MM_SHUFFLE(1, 0, 1, 0) /* immediates of _mm256_shuffle_ps */
#define SF_SHUF_HI _MM_SHUFFLE(3, 2, 3, 2)
/* dst (8 rows, stride ds) = src (8 rows, stride ss)^T for one 8 x 8 block, in registers. */
static inline __attribute__((always_inline)) void sf_transpose8x8(float *dst, int64_t ds, const float *src,
                                                                 int64_t ss) {
    const __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ss), r2 = _mm256_loadu_ps(src + 2 * ss),
                 r3 = _mm256_loadu_ps(src + 3 * ss), r4 = _mm256_loadu_ps(src + 4 * ss),
                 r5 = _mm256_loadu_ps(src + 5 * ss), r6 = _mm256_loadu_ps(src + 6 * ss),
                 r7 = _mm256_loadu_ps(src + 7 * ss);
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
                 t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, SF_SHUF_LO), u1 = _mm256_shuffle_ps(t0, t2, SF_SHUF_HI),
                 u2 = _mm256_shuffle_ps(t1, t3, SF_SHUF_LO), u3 = _mm256_shuffle_ps(t1, t3, SF_SHUF_HI),
                 u4 = _mm256_shuffle_ps(t4, t6, SF_SHUF_LO), u5 = _mm256_shuffle_ps(t4, t6, SF_SHUF_HI),
                 u6 = _mm256_shuffle_ps(t5, t7, SF_SHUF_LO), u7 = _mm256_shuffle_ps(t5, t7, SF_SHUF_HI);
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

#endif
