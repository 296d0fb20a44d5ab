/* gemm_skinny.c — products with one side of at most one vector (a LoRA rank, a handful of labels): the
 * general kernels pad such a side to their full tile width (an 8-column product ran at 40-60 GFLOP/s on
 * a 12 x 32 AVX-512 tile), these keep the short side in one vector register per row instead:
 *   - "n-skinny",  C (M, n) = A (M, K) op(B) (K, n), n <= VW: blocks of 8 rows of C in 8 accumulators, each
 *     k broadcasting A's 8 values onto op(B)'s row k (B stored (n, K) is transposed first into a (K, VW)
 *     copy);
 *   - "n-skinny, A transposed", C (M, n) = A^T (M, K) B (K, n), A stored (K, M): for n <= 8 as the m-skinny
 *     case below on C^T = B^T A (A's rows read whole), then transposed into C; for 8 < n <= VW blocks of 16
 *     rows of C, each k broadcasting A's row k (16 values, one line) onto B's row k;
 *   - "m-skinny, A transposed", C (m, N) = A^T (m, K) B (K, N), m <= 8, A stored (K, m): blocks of 2 vectors
 *     of C's columns for all m rows (16 accumulators), each k one load of B's row per vector and m
 *     broadcasts of A's row k.
 * C = alpha * product + beta * C (C not read when beta is 0). Threads split C's row (or column) blocks,
 * and every element's sum runs over k in order in one accumulator: the same bits on any thread count.
 *
 * What it does not do: products with both sides wide (core/gemm_own_scheme.h); skinny shapes outside the
 * three cases (both operands transposed, an m-skinny A not transposed: sf_sgemm_skinny returns 0 and
 * sf_sgemm takes its usual route); rank-r updates C (M, N) += A (M, r) B (r, N), whose cost is a pass over
 * C whichever kernel runs them (sf_sgemm_ext packs such a term along with a wider product instead: LoRA). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "simd_vec.h"
#include "thread_scratch.h"

#define ROWS 8    /* n-skinny: rows of C per block */
#define COLS_T 16 /* n-skinny with A transposed: rows of C per block (one line of A's row k) */
#define NV 2      /* m-skinny: vectors of C's columns per block */

/* The calling thread's copy buffer (op(B) as (K, VW), or C^T), kept from call to call and grown when a
 * product needs more (thread_scratch.h, as the own kernel's packs): no allocation in a training step
 * after its first. */
SF_THREAD_SCRATCH(copy_scratch, 1)

/* C row = alpha * acc + beta * C row, n lanes */
static inline void finish_row(float *c, vf acc, int64_t n, float alpha, float beta) {
    vf r = acc * alpha;
    if (beta != 0.0f) r += load_prefix(c, n) * beta;
    store_lanes(c, r, n);
}

/* n-skinny: rows [r0, r1) of C; Bk (K, VW) op(B) with zero lanes past n */
static void n_rows(int64_t r0, int64_t r1, int64_t n, int64_t K, float alpha, const float *A, int64_t lda,
                   const float *Bk, float beta, float *C, int64_t ldc) {
    int64_t r = r0;
    for (; r + ROWS <= r1; r += ROWS) {
        vf acc[ROWS];
        for (int i = 0; i < ROWS; i++) acc[i] = splat(0.0f);
        const float *a = A + r * lda;
        for (int64_t k = 0; k < K; k++) {
            const vf b = *(const vf *)(Bk + k * VW);
#pragma GCC unroll 8
            for (int i = 0; i < ROWS; i++) acc[i] += splat(a[i * lda + k]) * b;
        }
        for (int i = 0; i < ROWS; i++) finish_row(C + (r + i) * ldc, acc[i], n, alpha, beta);
    }
    for (; r < r1; r++) { /* the matrix's last rows (the same place on any thread count) */
        vf acc = splat(0.0f);
        const float *a = A + r * lda;
        for (int64_t k = 0; k < K; k++) acc += splat(a[k]) * *(const vf *)(Bk + k * VW);
        finish_row(C + r * ldc, acc, n, alpha, beta);
    }
}

/* n-skinny with A transposed (A stored (K, M)): rows [r0, r0 + m) of C, m <= COLS_T; B (K, n) rows of n */
static void nt_block(int64_t r0, int64_t m, int64_t n, int64_t K, float alpha, const float *A, int64_t lda,
                     const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    vf acc[COLS_T];
    for (int i = 0; i < COLS_T; i++) acc[i] = splat(0.0f);
    for (int64_t k = 0; k < K; k++) {
        const vf b = load_prefix(B + k * ldb, n);
        const float *a = A + k * lda + r0;
        if (m == COLS_T) {
#pragma GCC unroll 16
            for (int i = 0; i < COLS_T; i++) acc[i] += splat(a[i]) * b;
        } else
            for (int i = 0; i < m; i++) acc[i] += splat(a[i]) * b;
    }
    for (int i = 0; i < m; i++) finish_row(C + (r0 + i) * ldc, acc[i], n, alpha, beta);
}

/* m-skinny with A transposed (A stored (K, m)): columns [c0, c0 + w) of C's m rows, w <= NV * VW */
static void mt_block(int64_t c0, int64_t w, int64_t m, int64_t K, float alpha, const float *A, int64_t lda,
                     const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    vf acc[8][NV];
    for (int i = 0; i < 8; i++)
        for (int v = 0; v < NV; v++) acc[i][v] = splat(0.0f);
    const int nv = (int)((w + VW - 1) / VW);
    if (m == 8 && nv == NV) { /* the common case, every accumulator in a register */
        for (int64_t k = 0; k < K; k++) {
            const vf b0 = *(const vf *)(B + k * ldb + c0), b1 = load_prefix(B + k * ldb + c0 + VW, w - VW);
            const float *a = A + k * lda;
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) {
                const vf s = splat(a[i]);
                acc[i][0] += s * b0;
                acc[i][1] += s * b1;
            }
        }
    } else
    for (int64_t k = 0; k < K; k++) {
        vf b[NV];
        for (int v = 0; v < nv; v++) b[v] = load_prefix(B + k * ldb + c0 + v * VW, w - v * VW);
        const float *a = A + k * lda;
        for (int i = 0; i < m; i++) {
            const vf s = splat(a[i]);
            for (int v = 0; v < nv; v++) acc[i][v] += s * b[v];
        }
    }
    for (int i = 0; i < m; i++)
        for (int v = 0; v < nv; v++) {
            const int64_t lanes = w - v * VW < VW ? w - v * VW : VW;
            finish_row(C + i * ldc + c0 + v * VW, acc[i][v], lanes, alpha, beta);
        }
}

int sf_sgemm_skinny(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                    const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0 || K <= 0) return 0;
    const int par = M * N * K >= ((int64_t)1 << 18) && !omp_in_parallel();
    if (!ta && N <= VW && M >= ROWS) {
        float *Bk = copy_scratch(0, K * VW); // (K, VW) op(B)
        if (!Bk) return 0;
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < VW; j++) Bk[k * VW + j] = j < N ? (tb ? B[j * ldb + k] : B[k * ldb + j]) : 0.0f;
        const int64_t blocks = M / ROWS; /* whole blocks to the threads, the last rows to the last one */
#pragma omp parallel if (par)
        {
            const int t = omp_get_thread_num(), T = omp_get_num_threads();
            const int64_t b0 = blocks * t / T, b1 = blocks * (t + 1) / T;
            n_rows(b0 * ROWS, t == T - 1 ? M : b1 * ROWS, N, K, alpha, A, lda, Bk, beta, C, ldc);
        }
        return 1;
    }
    if (ta && !tb && N <= 8 && M >= COLS_T) {
        /* C^T (N, M) = B^T A with B (K, N) as the transposed side: the m-skinny case, which reads A's
         * rows whole (a column strip of A per block of C's rows read one line per row of A, 4 KB apart,
         * and ran at the general kernels' speed), into a copy that is then transposed into C */
        float *T = copy_scratch(0, N * M); // (N, M) C^T
        if (!T) return 0;
        const int64_t W = NV * VW, blocks = (M + W - 1) / W;
#pragma omp parallel for if (par) schedule(static)
        for (int64_t b = 0; b < blocks; b++) {
            const int64_t c0 = b * W, w = M - c0 < W ? M - c0 : W;
            mt_block(c0, w, N, K, 1.0f, B, ldb, A, lda, 0.0f, T, M);
        }
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                C[i * ldc + j] = alpha * T[j * M + i] + (beta != 0.0f ? beta * C[i * ldc + j] : 0.0f);
        return 1;
    }
    if (ta && !tb && N <= VW && M >= COLS_T) {
        const int64_t blocks = (M + COLS_T - 1) / COLS_T;
#pragma omp parallel for if (par) schedule(static)
        for (int64_t b = 0; b < blocks; b++) {
            const int64_t r0 = b * COLS_T, m = M - r0 < COLS_T ? M - r0 : COLS_T;
            nt_block(r0, m, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        }
        return 1;
    }
    if (ta && !tb && M <= 8 && N >= VW) {
        const int64_t W = NV * VW, blocks = (N + W - 1) / W;
#pragma omp parallel for if (par) schedule(static)
        for (int64_t b = 0; b < blocks; b++) {
            const int64_t c0 = b * W, w = N - c0 < W ? N - c0 : W;
            mt_block(c0, w, M, K, alpha, A, lda, B, ldb, beta, C, ldc);
        }
        return 1;
    }
    return 0;
}
