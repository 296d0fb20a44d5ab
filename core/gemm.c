/* gemm.c — routes the engine's matrix products: sift's own kernel (AVX-512 or AVX2) for large products
 * when the build has one, the skinny kernels for products with a side of at most one vector
 * (gemm_skinny.c), OpenBLAS's cblas_sgemv for a single row or column, OpenBLAS's cblas_sgemm otherwise;
 * and counts every product's multiply-adds (sf_gemm_macs).
 * See gemm.h. */
#include "gemm.h"

#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Below this many multiply-adds OpenBLAS wins. AVX-512 (measured: 64^3 OpenBLAS 4x faster, 96^3 own
 * 1.3x); AVX2, on 2 threads of a Zen 3 (OpenBLAS's AVX2 kernels are at full width there): 96^3 own 0.9x,
 * from 128^3 (2^21) to 384^3 0.9-1.07x (even, within this VM's noise), a training step's products (from
 * 1024 x 256 x 256) own 1.0-1.2x; from 2^21 the own kernel's checked stores also vouch for gradients. */
#if defined(__AVX512F__)
#define OWN_MIN_MACS ((int64_t)1 << 19)
#else
#define OWN_MIN_MACS ((int64_t)1 << 21)
#endif

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

static int g_a_in_place = -1; /* -1: not read from the environment yet */

int sf_gemm_a_in_place_enabled(void) {
    if (g_a_in_place < 0) {
        const char *e = getenv("SIFT_GEMM_A_IN_PLACE");
        g_a_in_place = !(e && strcmp(e, "0") == 0);
    }
    return g_a_in_place;
}

int sf_gemm_read_a_in_place(int on) {
    int prev = sf_gemm_a_in_place_enabled();
    g_a_in_place = on ? 1 : 0;
    return prev;
}

const char *sf_gemm_kernel(void) {
#if defined(SF_OWN_GEMM)
    if (!force_openblas()) return SF_OWN_GEMM;
#endif
    return "openblas";
}

static int use_own(int64_t M, int64_t N, int64_t K) {
    return K > 0 && M * N * K >= OWN_MIN_MACS && !force_openblas() && !omp_in_parallel();
}

/* cblas takes int sizes: a size or leading dimension beyond INT_MAX cannot go there */
static int fits_cblas(int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc) {
    return M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX;
}

/* Plain loops for products cblas cannot take on a build without the own kernel: correct, slow. */
static void sgemm_loops(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                        const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
#pragma omp parallel for if (M > 1 && !omp_in_parallel())
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++)
                s += (double)(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
            C[i * ldc + j] = (float)(alpha * s) + (beta != 0.0f ? beta * C[i * ldc + j] : 0.0f);
        }
}

/* OpenBLAS on the calling thread alone while it runs a product, when `on` and not already inside a
 * parallel region (there OpenBLAS runs one thread anyway): returns what one_thread_end restores (0:
 * nothing changed). OpenBLAS takes its thread count from OpenMP's at each call (the OpenMP build). */
static int one_thread_begin(int on) {
    if (!on || omp_in_parallel()) return 0;
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    return threads;
}

static void one_thread_end(int threads) {
    if (threads > 0) omp_set_num_threads(threads);
}

/* A single row or column of C (M or N = 1, as in generation with a KV cache: one token's products) is a
 * matrix-vector product: cblas_sgemv reads the matrix once, where a gemm would first pack all of it. */
static int is_vector(int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc) {
    return (M == 1 || N == 1) && K > 0 && fits_cblas(M, N, K, lda, ldb, ldc);
}

static void vector_product(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                           const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    /* y: C's row (M = 1, contiguous) or column (stride ldc); beta applied here, so C is never read when
     * beta is 0 and the gemv only adds */
    const int64_t ny = M == 1 ? N : M, incy = M == 1 ? 1 : ldc;
    for (int64_t i = 0; i < ny; i++) C[i * incy] = beta == 0.0f ? 0.0f : beta * C[i * incy];
    /* below ~4 MB of matrix one thread finishes sooner than waking a second one (passive waiting) */
    const int threads = one_thread_begin(ny * K < ((int64_t)1 << 20));
    if (M == 1) { /* x = op(A)'s row: A[k] or A[k * lda]; C (1, N) = x op(B) */
        const int incx = ta ? (int)lda : 1;
        if (tb) /* B stored (N, K): y = B x */
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)N, (int)K, alpha, B, (int)ldb, A, incx, 1.0f, C, 1);
        else /* B (K, N): y = B^T x */
            cblas_sgemv(CblasRowMajor, CblasTrans, (int)K, (int)N, alpha, B, (int)ldb, A, incx, 1.0f, C, 1);
    } else { /* x = op(B)'s column: B[k * ldb] or B[k]; C (M, 1) = op(A) x */
        const int incx = tb ? 1 : (int)ldb;
        if (ta) /* A stored (K, M): y = A^T x */
            cblas_sgemv(CblasRowMajor, CblasTrans, (int)K, (int)M, alpha, A, (int)lda, B, incx, 1.0f, C, (int)ldc);
        else /* A (M, K): y = A x */
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)M, (int)K, alpha, A, (int)lda, B, incx, 1.0f, C, (int)ldc);
    }
    one_thread_end(threads);
}

/* Multiply-adds of every product through the entry points below, since start-up (sf_gemm_macs). Relaxed
 * atomic adds: attention's threads call sf_sgemm_serial concurrently; one add per product costs nothing. */
static int64_t g_macs;

static void count_macs(int64_t M, int64_t N, int64_t K) {
    if (M > 0 && N > 0 && K > 0) __atomic_fetch_add(&g_macs, M * N * K, __ATOMIC_RELAXED);
}

int64_t sf_gemm_macs(void) { return __atomic_load_n(&g_macs, __ATOMIC_RELAXED); }

void sf_gemm_count(int64_t M, int64_t N, int64_t K) { count_macs(M, N, K); }

/* sf_sgemm's routing, uncounted (the entry points count once, then route here). */
static void route(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (is_vector(M, N, K, lda, ldb, ldc)) {
        vector_product(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (!force_openblas() && sf_sgemm_skinny(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) return;
    if (use_own(M, N, K) && sf_sgemm_own(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL))
        return;
    const int64_t k = K < 0 ? 0 : K;
    if (!fits_cblas(M, N, k, lda, ldb, ldc)) { /* the own kernel whatever the routing, else loops */
        if (!sf_sgemm_own(trans_a, trans_b, M, N, k, alpha, A, lda, B, ldb, beta, C, ldc, NULL))
            sgemm_loops(trans_a, trans_b, M, N, k, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* A product too small for the own kernel runs on one OpenBLAS thread: waking a second one (passive
     * waiting) costs about what it saves at this size, and one thread's sums do not depend on the
     * engine's thread count — OpenBLAS's 1- and 2-thread results differ in the last bits, and training
     * is to give the same bits on any thread count where the own kernel runs (tests/lua/test_train.lua). */
    const int threads = one_thread_begin(M * N * k < OWN_MIN_MACS);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)M,
                (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
    one_thread_end(threads);
}

void sf_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
              const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    count_macs(M, N, K);
    route(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

int sf_sgemm_finite(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return 0;
    count_macs(M, N, K);
    int all_finite = 0;
    if (!is_vector(M, N, K, lda, ldb, ldc) && use_own(M, N, K) &&
        sf_sgemm_own_checked(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL, &all_finite))
        return all_finite;
    route(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return 0; /* the route taken does not check */
}

/* Own-kernel products on one thread pay off from here. AVX-512 (measured in attention's per-head
 * products: 64 x 64 x 64 and larger 13-15 % faster than OpenBLAS's AVX2 kernels, 32 x 32 x 64 even);
 * AVX2: never at attention's sizes (measured on a Zen 3, one thread: 32 x 32 x 64 own 0.62x OpenBLAS,
 * 64^3 0.71x, 256 x 256 x 64 0.93x — packing does not pay for itself on products this small). */
#if defined(__AVX512F__)
#define OWN_SERIAL_MIN_MACS ((int64_t)1 << 15)
#else
#define OWN_SERIAL_MIN_MACS INT64_MAX
#endif

void sf_sgemm_serial(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                     int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    count_macs(M, N, K);
    if (K > 0 && M * N * K >= OWN_SERIAL_MIN_MACS && !force_openblas() &&
        sf_sgemm_own_serial(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
        return;
    route(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc); /* OpenBLAS inside a region */
}

/* C's M rows (stride ldc) = bias (N): where the routes without the own kernel's bias stores start. */
static void fill_bias_rows(float *C, int64_t ldc, int64_t M, int64_t N, const float *bias) {
    for (int64_t i = 0; i < M; i++) memcpy(C + i * ldc, bias, (size_t)N * sizeof(float));
}

void sf_sgemm_bias(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc, const float *bias) {
    if (M <= 0 || N <= 0) return;
    count_macs(M, N, K);
    if (!is_vector(M, N, K, lda, ldb, ldc) && use_own(M, N, K) &&
        sf_sgemm_own(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, 0.0f, C, ldc, bias))
        return;
    fill_bias_rows(C, ldc, M, N, bias);
    route(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, 1.0f, C, ldc);
}

void sf_sgemm_ext(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const float *bias,
                  const float *A2, int64_t lda2, int trans_b2, const float *B2, int64_t ldb2, int64_t K2) {
    if (M <= 0 || N <= 0) return;
    if (K2 <= 0) { /* no low-rank term */
        if (bias) sf_sgemm_bias(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, C, ldc, bias);
        else sf_sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    count_macs(M, N, K + K2);
    if (!is_vector(M, N, K, lda, ldb, ldc) && use_own(M, N, K + K2) &&
        sf_sgemm_own_ext(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, A2, lda2, trans_b2, B2,
                         ldb2, K2))
        return;
    if (bias) { /* rows = bias, then both products add */
        fill_bias_rows(C, ldc, M, N, bias);
        beta = 1.0f;
    }
    route(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    route(0, trans_b2, M, N, K2, alpha, A2, lda2, B2, ldb2, 1.0f, C, ldc);
}

#if !defined(SF_OWN_GEMM) /* no own kernel in this build: the entry points say so and do nothing */

int sf_sgemm_own_checked(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                         const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const float *bias,
                         int *all_finite) {
    (void)ta, (void)tb, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda, (void)B, (void)ldb, (void)beta,
        (void)C, (void)ldc, (void)bias, (void)all_finite;
    return 0;
}

int sf_sgemm_own(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                 const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const float *bias) {
    return sf_sgemm_own_checked(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, NULL);
}

int sf_sgemm_own_serial(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                        const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    (void)ta, (void)tb, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda, (void)B, (void)ldb, (void)beta,
        (void)C, (void)ldc;
    return 0;
}

int sf_sgemm_own_ext(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                     const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const float *bias, const float *A2,
                     int64_t lda2, int tb2, const float *B2, int64_t ldb2, int64_t K2) {
    (void)ta, (void)tb, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda, (void)B, (void)ldb, (void)beta,
        (void)C, (void)ldc, (void)bias, (void)A2, (void)lda2, (void)tb2, (void)B2, (void)ldb2, (void)K2;
    return 0;
}

#endif
