/* gemm.c — routes the engine's matrix products: sift's own AVX-512 kernel for large products when the
 * build has it, OpenBLAS's cblas_sgemm otherwise. See gemm.h. */
#include "gemm.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Below this many multiply-adds OpenBLAS wins (measured: 64^3 OpenBLAS 4x faster, 96^3 own 1.3x). */
#define OWN_MIN_MACS ((int64_t)1 << 19)

static int g_force_openblas = -1; /* -1: not read from the environment yet */

static int force_openblas(void) {
    if (g_force_openblas < 0) {
        const char *e = getenv("SIFT_GEMM");
        g_force_openblas = e && strcmp(e, "openblas") == 0;
    }
    return g_force_openblas;
}

int sf_gemm_use_openblas(int on) {
    int prev = force_openblas();
    g_force_openblas = on ? 1 : 0;
    return prev;
}

const char *sf_gemm_kernel(void) {
#if defined(__AVX512F__)
    if (!force_openblas()) return "avx512";
#endif
    return "openblas";
}

static int use_own(int64_t M, int64_t N, int64_t K) {
    return K > 0 && M * N * K >= OWN_MIN_MACS && !force_openblas() && !omp_in_parallel();
}

void sf_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
              const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (use_own(M, N, K) && sf_sgemm_own(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL))
        return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)M,
                (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

void sf_sgemm_bias(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc, const float *bias) {
    if (M <= 0 || N <= 0) return;
    if (use_own(M, N, K) && sf_sgemm_own(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, 0.0f, C, ldc, bias))
        return;
    for (int64_t i = 0; i < M; i++) memcpy(C + i * ldc, bias, (size_t)N * sizeof(float)); /* rows = bias */
    sf_sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, 1.0f, C, ldc);
}
