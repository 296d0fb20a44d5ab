/* gemm.h — the engine's single-precision matrix product, C = alpha op(A) op(B) + beta C (row-major,
 * the cblas_sgemm contract), routed to the fastest kernel this build has.
 *
 * Where the build targets AVX-512 or AVX2 + FMA (-march=native on such a CPU) large products run on
 * sift's own packed, cache-blocked kernel (gemm_avx512.c or gemm_avx2.c, one scheme in
 * gemm_own_scheme.h), split over the engine's threads; everything else — other CPUs, small or
 * degenerate products, calls made inside a parallel region — goes to OpenBLAS's cblas_sgemm, except
 * sizes or leading dimensions beyond cblas's int range (the own kernel takes those whatever the
 * routing, or plain loops on a build without it); those too small for the own kernel run on one OpenBLAS
 * thread, so results do not depend on the thread count wherever the own kernel runs (OpenBLAS's threaded
 * sums differ in the last bits). A product with one row or one column (a token at a time in
 * generation) is a matrix-vector product: OpenBLAS's cblas_sgemv, which does not pack the matrix first.
 * Every product through these entry points counts its multiply-adds (sf_gemm_macs). The reasons:
 * OpenBLAS 0.3.21 runs its AVX2 (Haswell) kernels under the OPENBLAS_CORETYPE=Haswell setting this
 * project keeps, which leave half of an AVX-512 core's FMA width unused; on AVX2 CPUs the own kernel is
 * on a par with them on square products and 5-15 % faster on a training step's (few rows, whole-A
 * path), and its stores check for non-finite values.
 *
 * What it does not do: column-major layouts, other element types, or any numerics beyond the float
 * sums themselves (summation order differs from OpenBLAS's, so results agree to rounding, not bits).
 */
#ifndef SF_GEMM_H
#define SF_GEMM_H

#include <stdint.h>

/* The own kernel this build compiles, named as sf_gemm_kernel() reports it (none: OpenBLAS only). */
#if defined(__AVX512F__)
#define SF_OWN_GEMM "avx512"
#elif defined(__AVX2__) && defined(__FMA__)
#define SF_OWN_GEMM "avx2"
#endif

/* C (M, N) = alpha * op(A) (M, K) . op(B) (K, N) + beta * C; op(X) = X or X^T as trans_* says.
 * Leading dimensions as in row-major cblas_sgemm (lda = row stride of A as stored). beta == 0 never
 * reads C (it may hold NaN). */
void sf_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
              const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* The same with a bias row added to every row of the result: C = alpha op(A) op(B) + beta C + bias (N).
 * The own kernel adds it in its stores; the OpenBLAS route fills C with it first (beta must be 0 then). */
void sf_sgemm_bias(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc, const float *bias);

/* A product with a low-rank term riding along: C = alpha (op(A) op(B) + A2 op(B2)) + beta C (+ bias (N),
 * added to every row; only with beta 0), A2 (M, K2) row-major, op(B2) (K2, N): B2 stored (K2, N), or
 * (N, K2) when tb2. On the own kernel (K2 <= 64) A2's columns and op(B2)'s rows are packed after the last
 * K block's, so C is stored once (LoRA: y = x W^T + (s h) B^T, dx = dY W + dh A, with no pass over y or
 * dx for the rank-r term); elsewhere the low-rank product runs after the other. Counted as M N (K + K2). */
void sf_sgemm_ext(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const float *bias,
                  const float *A2, int64_t lda2, int trans_b2, const float *B2, int64_t ldb2, int64_t K2);

/* Which kernel large products use: "avx512" or "avx2" (sift's own, SF_OWN_GEMM) or "openblas". sf_gemm_use_openblas(1)
 * forces OpenBLAS for every product (tests compare the two; benchmarks measure both); the environment
 * variable SIFT_GEMM=openblas does the same at start-up. Returns the previous setting. */
int sf_gemm_use_openblas(int on);
const char *sf_gemm_kernel(void);

/* Whether the own kernel reads a transposed A (op(A) = A^T: a weight gradient's X^T or dY^T) where it
 * lies instead of packing a copy of it first (gemm_own_scheme.h says when it applies).
 * On by default; the environment variable SIFT_GEMM_A_IN_PLACE=0 turns it off at start-up. The same
 * bits either way (tests compare the two). sf_gemm_read_a_in_place returns the previous setting. */
int sf_gemm_read_a_in_place(int on);
int sf_gemm_a_in_place_enabled(void);

/* sf_sgemm, telling whether every value it stored in C is finite: returns 1 when the product ran on the
 * own kernel, which checks its stores as it makes them (free: a few instructions per 12 x 32 tile), and
 * found no Inf or NaN; 0 when one was found, or when the route taken cannot tell (OpenBLAS, sgemv, empty
 * products). Since C is stored whole, 1 means all of C is finite, whatever it held before (beta 1 adds
 * it in). Backward uses it to vouch for a weight's gradient (sf_graph_grad_set_finite), so the
 * optimizer's non-finite sweep can skip it. */
int sf_sgemm_finite(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* Multiply-adds (M * N * K each) of every product made through sf_sgemm, sf_sgemm_bias, sf_sgemm_finite
 * and sf_sgemm_serial, or added by sf_gemm_count, since start-up, whatever kernel ran it; thread-safe.
 * Take differences around a piece of work to count its products (twice this is its FLOP count). The own
 * kernel's direct entry points below do not count. */
int64_t sf_gemm_macs(void);
/* Adds an (M, N, K) product made by a kernel of its own (attention_short.c's panels) to that count. */
void sf_gemm_count(int64_t M, int64_t N, int64_t K);

/* The own kernel directly, whatever the routing (tests); bias (N) may be NULL. Returns 0 (and does
 * nothing) when this build has none or M, N or K is not positive. The _checked form also sets
 * *all_finite (when not NULL) as sf_sgemm_finite describes. */
int sf_sgemm_own(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                 const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const float *bias);
int sf_sgemm_own_checked(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                         int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const float *bias,
                         int *all_finite);
int sf_sgemm_own_serial(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                        int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* sf_sgemm_ext's product on the own kernel; 0 (nothing done) as above, or when K2 is not in 1..64. */
int sf_sgemm_own_ext(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                     int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const float *bias,
                     const float *A2, int64_t lda2, int trans_b2, const float *B2, int64_t ldb2, int64_t K2);

/* Products with one side of at most one vector (core/gemm_skinny.c): C (M, n) = op(A) op(B) with n <= VW
 * floats (A not transposed, or transposed with B not), or C (m, N) = A^T B with m <= 8 and N >= VW. Returns
 * 0 (and does nothing) for other shapes; sf_sgemm routes such products here. Results do not depend on the
 * thread count. */
int sf_sgemm_skinny(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* The product on the calling thread alone, for callers that run many small products in parallel
 * themselves (attention: one (batch, head) per thread): the own kernel when the routing allows it and
 * the product has at least 2^15 multiply-adds, else OpenBLAS — which runs single-threaded when called
 * inside a parallel region (the OpenMP build; outside one it may use the engine's threads). */
void sf_sgemm_serial(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                     int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

#endif
