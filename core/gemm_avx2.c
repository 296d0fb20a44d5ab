/* gemm_avx2.c — sift's own single-precision GEMM for CPUs with AVX2 and FMA but no AVX-512 (AMD Zen 2/3,
 * Intel Haswell to Alder Lake): C = alpha op(A) op(B) + beta C, row-major, any transposition. Compiled
 * only on such a build (gemm.h's SF_OWN_GEMM is "avx2"); gemm_avx512.c takes AVX-512 builds.
 *
 * The same Goto/BLIS scheme as gemm_avx512.c, whose driver (blocking loops, whole-A path for shares of
 * few rows, split over threads, entry points) both include from gemm_own_scheme.h. What is here are the
 * vector kernels for 256-bit registers:
 *   - a 6 x 16 micro-kernel: 12 ymm accumulators, per k two loads of B and 6 broadcasts of A for 12
 *     FMAs (within the 16 ymm registers; 2 FMAs a cycle need 6 cycles, the loads 3 of a Zen 3's ports);
 *   - packs that read whole cache lines: row-major sources row by row, transposed ones 8 x 8 at a time
 *     through a register transpose;
 *   - edge tiles (fewer than 6 rows or 16 columns) computed into a local tile and copied, so the hot
 *     path has no masks.
 * Blocking for a 32 KB L1 and a 512 KB L2 (Zen 3; 256 KB-1.25 MB on Intel's AVX2 parts): KC = 256 makes a
 * 16-column B sliver 16 KB, an A sliver 6 KB; MC = 144 rows of A make 144 KB of L2.
 *
 * What it does not do: AVX-512 (gemm_avx512.c), decide when it is worth using (gemm.c), or any type
 * other than float.
 */
#include "gemm.h"

#if defined(SF_OWN_GEMM) && !defined(__AVX512F__)

#include <immintrin.h>
#include <string.h>

enum { MR = 6, NR = 16, KC = 256, MC = 144, NC = 3072 };
/* A share whose whole K block of op(A) fits in A_WHOLE floats (256 KB, half of a Zen 3 core's L2) takes
 * the whole-A path: the GPT-2 124M step's 128-row shares at KC = 256 (32K floats). */
enum { A_WHOLE = 64 * 1024 };
/* Shares of rows are whole slivers (the micro-kernel always runs MR rows). */
enum { ROW_SPLIT = MR };

/* The non-finite check's accumulator: one vector, summed across lanes at the end. */
typedef __m256 check_acc;
static inline check_acc check_zero(void) { return _mm256_setzero_ps(); }
static inline int check_clean(check_acc acc) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    float v[4];
    _mm_storeu_ps(v, s);
    return v[0] + v[1] + v[2] + v[3] == 0.0f; /* NaN != 0 too */
}

#include "gemm_own_scheme.h"

/* Lane mask for maskload: the first n (0..8) lanes on. */
static inline __m256i first_lanes(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Loads `rows` (<= 8) rows of 8 consecutive floats (the first `kn` of each, the rest 0; rows beyond `rows`
 * are 0) from X (row stride ld) into r, and transposes them in registers: afterwards r[j][i] = X[i * ld +
 * j]. Masked loads never touch the lanes they leave out, so edges read nothing past the operand. */
static inline void load_transpose8(__m256 r[8], const float *X, int64_t ld, int rows, int kn) {
    if (kn >= 8)
        for (int i = 0; i < 8; i++) r[i] = i < rows ? _mm256_loadu_ps(X + i * ld) : _mm256_setzero_ps();
    else {
        const __m256i km = first_lanes(kn);
        for (int i = 0; i < 8; i++) r[i] = i < rows ? _mm256_maskload_ps(X + i * ld, km) : _mm256_setzero_ps();
    }
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]),
                 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]),
                 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]),
                 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
                 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
                 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
                 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

static void pack_b_sliver(float *restrict dst, const float *restrict B, int64_t ldb, int tb, int64_t kc, int64_t nr) {
    if (!tb) {
        if (nr == NR) {
            for (int64_t k = 0; k < kc; k++) {
                const float *src = B + k * ldb;
                _mm256_store_ps(dst + k * NR, _mm256_loadu_ps(src));
                _mm256_store_ps(dst + k * NR + 8, _mm256_loadu_ps(src + 8));
            }
            return;
        }
        const __m256i m0 = first_lanes(nr < 8 ? (int)nr : 8), m1 = first_lanes(nr > 8 ? (int)nr - 8 : 0);
        for (int64_t k = 0; k < kc; k++) {
            const float *src = B + k * ldb;
            _mm256_store_ps(dst + k * NR, _mm256_maskload_ps(src, m0));
            _mm256_store_ps(dst + k * NR + 8, _mm256_maskload_ps(src + 8, m1));
        }
        return;
    }
    /* op(B)(k, n) = B[n * ldb + k]: each of the sliver's columns is a contiguous row of B; 8 of them at a
     * time are read 8 values along k and transposed */
    const int lo = nr < 8 ? (int)nr : 8, hi = nr > 8 ? (int)nr - 8 : 0;
    for (int64_t k0 = 0; k0 < kc; k0 += 8) {
        const int kn = kc - k0 < 8 ? (int)(kc - k0) : 8;
        __m256 r[8];
        load_transpose8(r, B + k0, ldb, lo, kn);
        for (int j = 0; j < kn; j++) _mm256_store_ps(dst + (k0 + j) * NR, r[j]);
        load_transpose8(r, B + 8 * ldb + k0, ldb, hi, kn);
        for (int j = 0; j < kn; j++) _mm256_store_ps(dst + (k0 + j) * NR + 8, r[j]);
    }
}

/* The first 6 lanes of v to dst[0..5] (4 + 2 floats: nothing written past them). */
static inline void store6(float *dst, __m256 v) {
    _mm_storeu_ps(dst, _mm256_castps256_ps128(v));
    _mm_storel_pi((__m64 *)(dst + 4), _mm256_extractf128_ps(v, 1));
}

static void pack_a(float *restrict ap, const float *restrict A, int64_t lda, int ta, int64_t mc, int64_t kc) {
    if (ta) {
        /* op(A)(m, k) = A[k * lda + m]: row k of A holds MR contiguous values of every sliver; read each
         * row front to back and deal it out */
        for (int64_t k = 0; k < kc; k++) {
            const float *src = A + k * lda;
            int64_t s = 0;
            for (; s + MR <= mc; s += MR) memcpy(ap + s * kc + k * MR, src + s, MR * sizeof(float));
            if (s < mc) {
                float *dst = ap + s * kc + k * MR;
                for (int64_t i = 0; i < MR; i++) dst[i] = s + i < mc ? src[s + i] : 0.0f;
            }
        }
        return;
    }
    for (int64_t s = 0; s < mc; s += MR) {
        const int mr = mc - s < MR ? (int)(mc - s) : MR;
        float *dst = ap + s * kc; /* (kc, MR) */
        /* op(A)(m, k) = A[m * lda + k]: the sliver's rows read 8 values along k at a time and transposed */
        for (int64_t k0 = 0; k0 < kc; k0 += 8) {
            const int kn = kc - k0 < 8 ? (int)(kc - k0) : 8;
            __m256 r[8];
            load_transpose8(r, A + s * lda + k0, lda, mr, kn);
            for (int j = 0; j < kn; j++) store6(dst + (k0 + j) * MR, r[j]);
        }
    }
}

/* The 6 x 16 micro-kernel (gemm_own_scheme.h states its contract). A full tile is stored in place; an
 * edge tile (mr < 6 or nr < 16) is computed in a local 6 x 16 tile first and its real part copied. */
static void micro_kernel(int64_t kc, const float *restrict ap, const float *restrict bp, float *restrict c, int64_t ldc,
                         int mr, int nr, float alpha, float beta, const float *restrict bias, const prefetch_plan *pf,
                         check_acc *check) {
    __m256 acc[MR][2];
    prefetch_c_tile(c, ldc, mr, nr);
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    /* runs of `spacing` k steps, one prefetch before each, so the innermost loop is FMAs and loads only */
    prefetch_cursor cur = prefetch_start(pf, kc);
    for (int64_t k0 = 0; k0 < kc; k0 += cur.spacing) {
        const int64_t steps = kc - k0 < cur.spacing ? kc - k0 : cur.spacing;
        prefetch_issue(&cur);
#pragma GCC unroll 4
        for (int64_t k = 0; k < steps; k++) {
            const __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
#pragma GCC unroll 6
            for (int i = 0; i < MR; i++) {
                const __m256 a = _mm256_broadcast_ss(ap + i);
                acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
            }
            ap += MR;
            bp += NR;
        }
    }
    const int full = mr == MR && nr == NR;
    float tile[MR * NR] __attribute__((aligned(32))), bias_pad[NR] __attribute__((aligned(32)));
    float *out = c;
    int64_t ldo = ldc;
    if (!full) { /* the edge: C's real part (when read) and the bias into zero-padded local copies */
        out = tile, ldo = NR;
        if (beta != 0.0f) {
            memset(tile, 0, sizeof tile);
            for (int i = 0; i < mr; i++) memcpy(tile + i * NR, c + i * ldc, (size_t)nr * sizeof(float));
        }
        if (bias) {
            memset(bias_pad, 0, sizeof bias_pad);
            memcpy(bias_pad, bias, (size_t)nr * sizeof(float));
            bias = bias_pad;
        }
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    const __m256 bias0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    const __m256 bias1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
    const int check_here = check && full; /* an edge is checked on its real part below */
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        if (i >= mr) break;
        float *row = out + i * ldo;
        __m256 r0 = _mm256_fmadd_ps(va, acc[i][0], bias0), r1 = _mm256_fmadd_ps(va, acc[i][1], bias1);
        if (beta != 0.0f) {
            r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row), r0);
            r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 8), r1);
        }
        _mm256_storeu_ps(row, r0);
        _mm256_storeu_ps(row + 8, r1);
        if (check_here) {
            const __m256 zero = _mm256_setzero_ps();
            *check = _mm256_add_ps(*check, _mm256_mul_ps(r0, zero));
            *check = _mm256_add_ps(*check, _mm256_mul_ps(r1, zero));
        }
    }
    if (!full) {
        float sum = 0.0f;
        for (int i = 0; i < mr; i++) {
            memcpy(c + i * ldc, tile + i * NR, (size_t)nr * sizeof(float));
            for (int j = 0; j < nr; j++) sum += tile[i * NR + j] * 0.0f;
        }
        if (check) *check = _mm256_add_ps(*check, _mm256_set1_ps(sum));
    }
}

#endif
