/* gemm_avx512.c — sift's own single-precision GEMM for AVX-512 CPUs: C = alpha op(A) op(B) + beta C,
 * row-major, any transposition. Compiled only when the build targets AVX-512 (gemm_avx2.c takes AVX2
 * builds; without either, gemm.c's stubs make sf_sgemm_own return 0 and route around it).
 *
 * The classic Goto/BLIS scheme: op(B) is packed KC x NC at a time into column slivers of NR = 32
 * (Bp: [NC/NR][KC][NR]), op(A) MC x KC at a time into row slivers of MR = 12 (Ap: [MC/MR][KC][MR]),
 * zero-padded at the edges, and a 12 x 32 register-blocked micro-kernel (24 zmm accumulators, two
 * vector loads of B and 12 broadcasts of A per k) adds each sliver pair into C with masked stores at
 * the right and bottom edges (a bottom sliver of at most 4 or 8 rows runs a loop of 4 or 8 rows); an
 * optional bias row is added in the same stores (the first K block's).
 * Packs read whole cache lines: row-major sources row by row, transposed ones 16 x 16 at a time through
 * a register transpose. The operands of a training step come from memory, not cache, so B's slivers
 * are packed just before their first use, and each C tile is prefetched before its k loop. A share of
 * few rows (A's K block within 1 MB: a training step's B * T token rows) takes the whole-A path
 * instead: A packed once per K block (or, transposed, read in place: micro_kernel_a_in_place), each B
 * sliver packed and used by every row sliver at once, the next sliver's lines prefetched into L2 a few at
 * a time from inside the micro-kernel's k loop.
 * Two or more threads each take a contiguous share of the rows (or, for wide short products, of the
 * columns) and run the whole scheme on it with their own pack buffers,
 * which are per thread and kept across calls (no allocation in a training step after the first; any
 * number of threads may call at once); sf_sgemm_own_serial runs it all on the calling thread. On
 * request (sf_sgemm_own_checked) the stores also sum every value times 0, which tells whether all of C
 * came out finite at the cost of a few instructions per tile.
 *
 * What it does not do: decide when it is worth using (gemm.c does), split work inside an outer
 * parallel region (it runs on the calling thread there), or any type other than float.
 */
#include "gemm.h"

#if defined(__AVX512F__)

#include <immintrin.h>

enum { MR = 12, NR = 32, KC = 768, MC = 96, NC = 3072 };
/* A share whose whole K block of op(A) (m x min(K, KC)) fits in A_WHOLE floats (1 MB: half of a 2 MB L2,
 * all of a Zen 5's 1 MB one, where half the threshold measured 3 % slower) takes the whole-A path
 * (gemm_whole_a): the training step's products over B * T = 256 token rows. */
enum { A_WHOLE = 256 * 1024 };
/* Shares of rows are multiples of 4: micro_kernel runs an edge sliver of 4 or 8 rows as such. */
enum { ROW_SPLIT = 4 };
/* This kernel also reads a transposed A in place (micro_kernel_a_in_place). */
#define SF_GEMM_A_IN_PLACE 1

/* The non-finite check's accumulator: one vector, summed across lanes at the end. */
typedef __m512 check_acc;
static inline check_acc check_zero(void) { return _mm512_setzero_ps(); }
static inline int check_clean(check_acc acc) { return _mm512_reduce_add_ps(acc) == 0.0f; } /* NaN != 0 too */

#include "gemm_own_scheme.h"
#include "simd_transpose.h"

/* Lane masks of a 32-column sliver's two vectors when only its first nr (<= NR) columns are real. */
static inline __mmask16 lanes_lo(int64_t nr) { return nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1); }
static inline __mmask16 lanes_hi(int64_t nr) { return nr > 16 ? lanes_lo(nr - 16) : (__mmask16)0; }

static void pack_b_sliver(float *restrict dst, const float *restrict B, int64_t ldb, int tb, int64_t kc, int64_t nr) {
    if (!tb) {
        const __mmask16 m0 = lanes_lo(nr), m1 = lanes_hi(nr);
        for (int64_t k = 0; k < kc; k++) {
            const float *src = B + k * ldb;
            _mm512_store_ps(dst + k * NR, _mm512_maskz_loadu_ps(m0, src));
            _mm512_store_ps(dst + k * NR + 16, _mm512_maskz_loadu_ps(m1, src + 16));
        }
        return;
    }
    /* op(B)(k, n) = B[n * ldb + k]: each of the sliver's columns is a contiguous row of B; 16 of them at a
     * time are read 16 values along k and transposed */
    const int lo = nr < 16 ? (int)nr : 16, hi = nr > 16 ? (int)nr - 16 : 0;
    for (int64_t k0 = 0; k0 < kc; k0 += 16) {
        const int kn = kc - k0 < 16 ? (int)(kc - k0) : 16;
        __m512 r[16];
        sf_load_transpose16(r, B + k0, ldb, lo, kn);
        for (int j = 0; j < kn; j++) _mm512_store_ps(dst + (k0 + j) * NR, r[j]);
        sf_load_transpose16(r, B + 16 * ldb + k0, ldb, hi, kn);
        for (int j = 0; j < kn; j++) _mm512_store_ps(dst + (k0 + j) * NR + 16, r[j]);
    }
}

static void pack_a(float *restrict ap, const float *restrict A, int64_t lda, int ta, int64_t mc, int64_t kc) {
    const __mmask16 mr_lanes = (__mmask16)((1u << MR) - 1);
    if (ta) {
        /* op(A)(m, k) = A[k * lda + m]: row k of A holds MR contiguous values of every sliver; read each
         * row front to back and deal it out */
        for (int64_t k = 0; k < kc; k++) {
            const float *src = A + k * lda;
            for (int64_t s = 0; s < mc; s += MR) {
                const int64_t mr = mc - s < MR ? mc - s : MR;
                const __mmask16 m = (__mmask16)((1u << mr) - 1);
                _mm512_mask_storeu_ps(ap + s * kc + k * MR, mr_lanes, _mm512_maskz_loadu_ps(m, src + s));
            }
        }
        return;
    }
    for (int64_t s = 0; s < mc; s += MR) {
        const int mr = mc - s < MR ? (int)(mc - s) : MR;
        float *dst = ap + s * kc; /* (kc, MR) */
        /* op(A)(m, k) = A[m * lda + k]: the sliver's rows read 16 values along k at a time and transposed */
        for (int64_t k0 = 0; k0 < kc; k0 += 16) {
            const int kn = kc - k0 < 16 ? (int)(kc - k0) : 16;
            __m512 r[16];
            if (k0 + 64 < kc) /* the rows' lines four steps ahead: the hardware prefetchers lag on 12 streams */
                for (int i = 0; i < mr; i++) _mm_prefetch((const char *)(A + (s + i) * lda + k0 + 64), _MM_HINT_T0);
            sf_load_transpose16(r, A + s * lda + k0, lda, mr, kn);
            for (int j = 0; j < kn; j++) _mm512_mask_storeu_ps(dst + (k0 + j) * MR, mr_lanes, r[j]);
        }
    }
}

/* The 12 x 32 micro-kernel's body with op(A)(i, k) at a[i * a_rs + k * a_ks] (packed: a_rs 1, a_ks MR) and
 * the packed B sliver: 24 zmm accumulators; per k two loads of B and 12 broadcasts of A; masked stores at
 * the right edge. `rows` (a constant: 4, 8 or MR, at least mr) is how many rows the loop computes.
 * Always inlined, so each caller gets its own loop with its strides and row count folded in. */
static inline __attribute__((always_inline)) void kernel_body(const int rows, int64_t kc, const float *restrict a,
                                                             int64_t a_rs, int64_t a_ks, const float *restrict bp,
                                                             float *restrict c, int64_t ldc, int mr, int nr,
                                                             float alpha, float beta, const float *restrict bias,
                                                             const prefetch_plan *pf, check_acc *check) {
    __m512 acc[MR][2];
    prefetch_c_tile(c, ldc, mr, nr);
#pragma GCC unroll 12
    for (int i = 0; i < rows; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    prefetch_cursor cur = prefetch_start(pf, kc);
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++) {
        prefetch_tick(&cur);
        const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
#pragma GCC unroll 12
        for (int i = 0; i < rows; i++) {
            const __m512 av = _mm512_set1_ps(a[i * a_rs]);
            acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
        }
        a += a_ks;
        bp += NR;
    }
    const __mmask16 m0 = lanes_lo(nr), m1 = lanes_hi(nr);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    const __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    const __m512 bias1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 12
    for (int i = 0; i < rows; i++) {
        if (i >= mr) break;
        float *row = c + i * ldc;
        __m512 r0 = _mm512_fmadd_ps(va, acc[i][0], bias0), r1 = _mm512_fmadd_ps(va, acc[i][1], bias1);
        if (beta != 0.0f) {
            r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, row), r0);
            r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16), r1);
        }
        _mm512_mask_storeu_ps(row, m0, r0);
        _mm512_mask_storeu_ps(row + 16, m1, r1);
        if (check) {
            const __m512 zero = _mm512_setzero_ps();
            *check = _mm512_add_ps(*check, _mm512_maskz_mul_ps(m0, r0, zero));
            *check = _mm512_add_ps(*check, _mm512_maskz_mul_ps(m1, r1, zero));
        }
    }
}

/* The micro-kernel on packed slivers (gemm_own_scheme.h states its contract). */
static void micro_kernel(int64_t kc, const float *restrict ap, const float *restrict bp, float *restrict c, int64_t ldc,
                         int mr, int nr, float alpha, float beta, const float *restrict bias, const prefetch_plan *pf,
                         check_acc *check) {
    /* a sliver of a few rows (the last of a share: a GPT-2 124M step's 256 token rows are 21 slivers and 4
     * rows) runs the loop for 4 or 8 rows only: the same sums for its rows, a third or two thirds of the work */
    if (mr <= 4) kernel_body(4, kc, ap, 1, MR, bp, c, ldc, mr, nr, alpha, beta, bias, pf, check);
    else if (mr <= 8) kernel_body(8, kc, ap, 1, MR, bp, c, ldc, mr, nr, alpha, beta, bias, pf, check);
    else kernel_body(MR, kc, ap, 1, MR, bp, c, ldc, mr, nr, alpha, beta, bias, pf, check);
}

/* The micro-kernel with op(A) transposed in place (gemm_own_scheme.h states its contract): at each k
 * the 12 broadcasts read 12 consecutive floats of one row of A. */
static void micro_kernel_a_in_place(int64_t kc, const float *restrict a, int64_t lda, const float *restrict bp,
                                    float *restrict c, int64_t ldc, int mr, int nr, float alpha, float beta,
                                    const float *restrict bias, const prefetch_plan *pf, check_acc *check) {
    kernel_body(MR, kc, a, 1, lda, bp, c, ldc, mr, nr, alpha, beta, bias, pf, check);
}

#endif
