/* test_gemm.c — tests for gemm.c / gemm_avx512.c / gemm_avx2.c: sift's own kernel (whichever the build
 * has: AVX-512, or AVX2 + FMA) against a double-precision
 * reference and against OpenBLAS for every transposition, shapes that straddle every blocking edge (MR,
 * NR, KC, MC, NC), padded leading dimensions, alpha/beta (beta = 0 must not read C, which holds NaN),
 * 1 and 2 threads, calls from inside a parallel region, rows more than 2^26 floats apart, sizes beyond
 * cblas's int range (never passed to it), single-row / single-column products (the matrix-vector
 * route), both schemes of the own kernel (whole-A and blocked), checked products (sf_sgemm_finite),
 * single-thread products from parallel threads (sf_sgemm_serial), the routing switch, and the
 * multiply-add counter (sf_gemm_macs) on every entry point and route, and the skinny kernels
 * (gemm_skinny.c) for products with a side of at most one vector. The
 * shapes straddle the blocking edges of both kernels. On a build with neither (no AVX2 + FMA) the kernel
 * tests report themselves skipped. It does not time anything (make bench does).
 *
 * Tolerance: |C - ref| <= 1e-5 * (K * max|a| * max|b| + |beta C|), float accumulation of K products.
 */
#include <omp.h>
#include <stdint.h>

#include "../core/gemm.h"
#include "../core/rng.h"
#include "../core/simd_vec.h"
#include "../core/tensor.h"
#include "../core/threads.h"
#include "test.h"

typedef struct {
    int64_t M, N, K;
} shape;

/* every blocking edge of the AVX-512 kernel: MR = 12, NR = 32, KC = 768, MC = 96, NC = 3072 (and the
 * former KC = 384, MC = 192); of the AVX2 one: MR = 6, NR = 16, KC = 256, MC = 144, NC = 3072 */
static const shape SHAPES[] = {
    {1, 1, 1},      {12, 32, 1},     {13, 33, 7},    {11, 31, 385},  {192, 64, 384}, {193, 65, 769},
    {25, 3073, 9},  {7, 3100, 400},  {400, 5, 3},    {64, 1000, 64}, {300, 300, 300}, {96, 32, 768},
    {97, 33, 767},  {95, 70, 1537},  {200, 40, 1600}, {6, 16, 1},    {7, 17, 257},    {5, 15, 255},
    {144, 48, 256}, {145, 49, 513},  {143, 3075, 20},
};

static float *filled(int64_t n, sf_rng *r) {
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(sf_rng_uniform(r) * 2.0 - 1.0);
    return p;
}

/* C (M, N; stride ldc) = alpha op(A) op(B) + beta C in double precision */
static void ref_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                     const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++)
                s += (double)(ta ? A[k * lda + i] : A[i * lda + k]) * (double)(tb ? B[j * ldb + k] : B[k * ldb + j]);
            C[i * ldc + j] = (float)(alpha * s + (beta != 0.0f ? (double)beta * C[i * ldc + j] : 0.0));
        }
}

/* Runs one case through `own` (1: sf_sgemm_own; 0: sf_sgemm; 2: sf_sgemm_serial; 3: sf_sgemm_skinny);
 * returns the max error over the tolerance (<= 1 passes) and checks that the padding columns of C were
 * not touched. */
static double run_case(int own, int ta, int tb, shape s, int pad, float alpha, float beta, uint64_t seed) {
    sf_rng r;
    sf_rng_seed(&r, seed);
    const int64_t M = s.M, N = s.N, K = s.K;
    const int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    float *A = filled((ta ? K : M) * lda, &r), *B = filled((tb ? N : K) * ldb, &r), *C = filled(M * ldc, &r);
    float *R = malloc((size_t)(M * ldc) * sizeof *R);
    if (beta == 0.0f)
        for (int64_t i = 0; i < M * ldc; i++) C[i] = NAN; /* must never be read */
    memcpy(R, C, (size_t)(M * ldc) * sizeof *R);
    ref_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, R, ldc);
    if (own == 3)
        CHECK(sf_sgemm_skinny(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc), "skinny kernel refused");
    else if (own == 2)
        sf_sgemm_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else if (own)
        CHECK(sf_sgemm_own(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL), "own kernel refused");
    else
        sf_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    double worst = 0;
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double tol = 1e-5 * ((double)K * fabs(alpha) + fabs(beta) + 1.0);
            double e = fabs((double)C[i * ldc + j] - R[i * ldc + j]) / tol;
            if (!(e <= worst)) worst = e; /* NaN propagates as a failure */
        }
        for (int64_t j = N; j < ldc; j++)
            if (!(C[i * ldc + j] == R[i * ldc + j] || (isnan(C[i * ldc + j]) && isnan(R[i * ldc + j])))) worst = INFINITY;
    }
    free(A), free(B), free(C), free(R);
    return worst;
}

static int have_own(void) {
    float a = 1, b = 2, c = 0;
    return sf_sgemm_own(0, 0, 1, 1, 1, 1.0f, &a, 1, &b, 1, 0.0f, &c, 1, NULL) && c == 2.0f;
}

TEST(own_kernel_every_transposition_and_edge) {
    if (!have_own()) SKIP("this build has no own kernel (the CPU or -march lacks AVX-512F and AVX2 + FMA)");
    uint64_t seed = 1;
    for (size_t i = 0; i < sizeof SHAPES / sizeof *SHAPES; i++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                double e = run_case(1, ta, tb, SHAPES[i], (int)(i % 3) * 5, 0.75f, i % 2 ? 0.0f : -0.5f, seed++);
                CHECK(e <= 1.0, "M=%lld N=%lld K=%lld ta=%d tb=%d: error %.3g x tolerance", (long long)SHAPES[i].M,
                      (long long)SHAPES[i].N, (long long)SHAPES[i].K, ta, tb, e);
            }
}

/* The skinny kernels (gemm_skinny.c): each of the three cases at its edges (row and column tails, one
 * lane, a whole vector, K from 1 up), alpha / beta (beta 0 never reads C), padded leading dimensions;
 * the same bits on one and two threads and through sf_sgemm's routing; shapes outside them refused. */
static void skinny_bits(int ta, int tb, shape s, int nt, uint64_t seed, float *out) {
    sf_rng r;
    sf_rng_seed(&r, seed);
    const int64_t lda = ta ? s.M : s.K, ldb = tb ? s.K : s.N;
    float *A = filled((ta ? s.K : s.M) * lda, &r), *B = filled((tb ? s.N : s.K) * ldb, &r);
    const int saved = sf_get_threads();
    sf_set_threads(nt);
    memset(out, 0, (size_t)(s.M * s.N) * sizeof *out);
    if (nt > 0)
        sf_sgemm_skinny(ta, tb, s.M, s.N, s.K, 0.5f, A, lda, B, ldb, 0.0f, out, s.N);
    else
        sf_sgemm(ta, tb, s.M, s.N, s.K, 0.5f, A, lda, B, ldb, 0.0f, out, s.N);
    sf_set_threads(saved);
    free(A), free(B);
}

TEST(skinny_products_every_case_and_edge) {
    const int64_t w = VW, r = VW < 8 ? VW : 8; /* floats per vector in this build; a rank that fits one */
    const struct { int ta, tb; shape s; } cases[] = {
        /* n-skinny, A rows: N <= VW, M >= 8 (whole 8-row blocks and a tail), op(B) either way */
        {0, 0, {8, 1, 5}},      {0, 1, {13, 3, 257}}, {0, 0, {1024, r, 256}}, {0, 1, {1024, r, 256}},
        {0, 0, {37, VW, 100}},  {0, 1, {9, VW, 1}},
        /* n-skinny, A transposed: N <= VW, M >= 16 (16-row blocks and a tail) */
        {1, 0, {16, r, 1024}},  {1, 0, {1024, r, 1024}}, {1, 0, {37, VW - 1, 77}}, {1, 0, {17, 1, 9}},
        {1, 0, {33, VW, 3}},
        /* m-skinny, A transposed: M <= 8, N >= VW (blocks of 2 vectors of columns and a partial one) */
        {1, 0, {8, 256, 1024}}, {1, 0, {3, 33, 50}},  {1, 0, {8, VW, 7}},    {1, 0, {5, 100, 1}},
        {1, 0, {1, 2 * VW + 1, 64}},
    };
    uint64_t seed = 300;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int v = 0; v < 2; v++) {
            double e = run_case(3, cases[i].ta, cases[i].tb, cases[i].s, v * 5, v ? 1.0f : 0.75f, v ? -0.5f : 0.0f,
                                seed++);
            CHECK(e <= 1.0, "case %zu M=%lld N=%lld K=%lld ta=%d tb=%d: error %.3g x tolerance", i,
                  (long long)cases[i].s.M, (long long)cases[i].s.N, (long long)cases[i].s.K, cases[i].ta,
                  cases[i].tb, e);
        }
    /* one and two threads, and the routing, give the same bits */
    const struct { int ta, tb; shape s; } big[] = {
        {0, 1, {1027, r, 300}}, {1, 0, {1029, r, 513}}, {1, 0, {8, 517, 1024}}};
    for (int i = 0; i < 3; i++) {
        const int64_t n = big[i].s.M * big[i].s.N;
        float *one = malloc((size_t)n * 4), *two = malloc((size_t)n * 4), *routed = malloc((size_t)n * 4);
        skinny_bits(big[i].ta, big[i].tb, big[i].s, 1, 77, one);
        skinny_bits(big[i].ta, big[i].tb, big[i].s, 2, 77, two);
        skinny_bits(big[i].ta, big[i].tb, big[i].s, 0, 77, routed);
        CHECK(!memcmp(one, two, (size_t)n * 4), "case %d: one and two threads differ", i);
        CHECK(!memcmp(one, routed, (size_t)n * 4), "case %d: sf_sgemm did not route it to the skinny kernel", i);
        free(one), free(two), free(routed);
    }
    /* outside the three cases: refused, C untouched */
    float a[64] = {0}, b[64] = {0}, c = 7.0f;
    CHECK(!sf_sgemm_skinny(1, 1, 16, 1, 1, 1.0f, a, 16, b, 1, 0.0f, &c, 1) && c == 7.0f, "A and B transposed");
    CHECK(!sf_sgemm_skinny(0, 0, 7, 1, 1, 1.0f, a, 1, b, 1, 0.0f, &c, 1) && c == 7.0f, "fewer than 8 rows");
    CHECK(!sf_sgemm_skinny(0, 0, 9, w + 1, 1, 1.0f, a, 1, b, w + 1, 0.0f, &c, w + 1) && c == 7.0f, "N above VW");
    CHECK(!sf_sgemm_skinny(1, 0, 9, w + 1, 1, 1.0f, a, 9, b, w + 1, 0.0f, &c, w + 1) && c == 7.0f, "M 9, N above VW");
}

TEST(own_kernel_one_and_two_threads_agree_with_reference) {
    if (!have_own()) SKIP("this build has no own kernel");
    const int saved = sf_get_threads();
    const shape s = {301, 257, 401};
    for (int nt = 1; nt <= 2; nt++) {
        sf_set_threads(nt);
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                double e = run_case(1, ta, tb, s, 3, 1.0f, 1.0f, 100 + nt * 4 + ta * 2 + tb);
                CHECK(e <= 1.0, "threads %d ta=%d tb=%d: error %.3g x tolerance", nt, ta, tb, e);
            }
    }
    /* wide and short: split over columns */
    const shape w = {20, 4000, 64};
    sf_set_threads(2);
    CHECK(run_case(1, 0, 1, w, 0, 1.0f, 0.0f, 7) <= 1.0, "wide product split over columns");
    sf_set_threads(saved);
}

/* A share's last rows: the own kernel splits rows over threads in multiples of 4 and runs an edge sliver of
 * few rows with a shorter loop (AVX-512: 4 or 8 rows). Every row must come out with the same bits however
 * the rows fall: 1024 rows on one thread (85 slivers and 4 rows) and on two (512 + 512: 42 slivers and 8
 * rows each), and each block of 4, 8 or 12 rows computed on its own; a wide product (split over columns)
 * with 256 rows (21 slivers and 4) likewise; bias, beta and transposed operands included. */
TEST(own_kernel_edge_rows_give_the_same_bits) {
    if (!have_own()) SKIP("this build has no own kernel");
    const int saved = sf_get_threads();
    static const struct {
        int64_t M, N, K;
        int ta, tb;
    } cases[] = {{1024, 256, 300, 0, 0}, {1024, 200, 769, 0, 1}, {256, 768, 256, 1, 0}, {260, 700, 100, 1, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const int ta = cases[i].ta, tb = cases[i].tb;
        const int64_t M = cases[i].M, N = cases[i].N, K = cases[i].K, lda = ta ? M : K, ldb = tb ? K : N;
        sf_rng r;
        sf_rng_seed(&r, 1200 + i);
        float *A = filled(M * K, &r), *B = filled(K * N, &r), *bias = filled(N, &r), *C0 = filled(M * N, &r);
        float *whole[2], *part = malloc((size_t)(M * N) * sizeof *part);
        for (int nt = 1; nt <= 2; nt++) {
            sf_set_threads(nt);
            whole[nt - 1] = malloc((size_t)(M * N) * sizeof(float));
            memcpy(whole[nt - 1], C0, (size_t)(M * N) * sizeof(float));
            CHECK(sf_sgemm_own_checked(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.5f, whole[nt - 1], N, bias, NULL),
                  "case %zu: the own kernel refused", i);
        }
        CHECK(!memcmp(whole[0], whole[1], (size_t)(M * N) * sizeof(float)), "case %zu: one and two threads differ", i);
        sf_set_threads(1);
        for (int64_t rows = 4; rows <= 12; rows += 4) {
            memcpy(part, C0, (size_t)(M * N) * sizeof *part);
            for (int64_t r0 = 0; r0 < M; r0 += rows) {
                const int64_t m = M - r0 < rows ? M - r0 : rows;
                sf_sgemm_own_checked(ta, tb, m, N, K, 1.0f, ta ? A + r0 : A + r0 * lda, lda, B, ldb, 0.5f,
                                     part + r0 * N, N, bias, NULL);
            }
            CHECK(!memcmp(whole[0], part, (size_t)(M * N) * sizeof *part), "case %zu: rows %lld at a time differ", i,
                  (long long)rows);
        }
        double worst = 0;
        float *R = malloc((size_t)(M * N) * sizeof *R);
        for (int64_t x = 0; x < M * N; x++) R[x] = 0.5f * C0[x] + bias[x % N];
        ref_gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 1.0f, R, N);
        for (int64_t x = 0; x < M * N; x++) {
            const double d = fabs((double)whole[0][x] - R[x]) / (1e-5 * ((double)K + 1.5)); /* as run_case */
            if (d > worst) worst = d;
        }
        CHECK(worst <= 1.0, "case %zu: error %.3g x tolerance", i, worst);
        free(A), free(B), free(bias), free(C0), free(whole[0]), free(whole[1]), free(part), free(R);
    }
    sf_set_threads(saved);
}

/* Both schemes of the own kernel on one thread: a share whose op(A) K block (rows x min(K, KC)) fits in
 * A_WHOLE floats takes the whole-A path (A packed once, each B sliver used by every row at once, the next
 * sliver prefetched, except for a row-major B whose row stride is a multiple of 1024 floats); a larger
 * one takes the blocked path (MC x KC blocks of A, B panels of NC columns). AVX-512: KC = 768, A_WHOLE =
 * 256 K; AVX2: KC = 256, A_WHOLE = 64 K (the path named first is AVX-512's, the second AVX2's). */
TEST(own_kernel_whole_a_and_blocked_paths) {
    if (!have_own()) SKIP("this build has no own kernel");
    const int saved = sf_get_threads();
    sf_set_threads(1);
    static const struct {
        shape s;
        int pad, ta, tb;
    } cases[] = {
        {{340, 100, 769}, 0, 0, 0},  /* whole A: 340 x 768 floats; blocked */
        {{342, 100, 769}, 3, 1, 1},  /* blocked: 342 x 768 > 256 K; blocked */
        {{350, 3080, 769}, 0, 0, 1}, /* blocked, past NC = 3072 and KC */
        {{350, 3080, 769}, 1, 1, 0},
        {{100, 1024, 800}, 0, 0, 0}, /* whole A, B's row stride 1024 floats: no prefetch */
        {{100, 1024, 800}, 5, 1, 0}, /* whole A, stride 1029: prefetched */
        {{100, 1000, 1600}, 2, 0, 1},
        {{256, 100, 513}, 0, 0, 0},  /* whole A; whole A: 256 x 256 = 64 K */
        {{257, 100, 513}, 1, 1, 1},  /* whole A; blocked */
        {{128, 2304, 768}, 0, 0, 1}, /* a GPT-2 124M step's share (whole A on both), B = W (out, in) */
        {{128, 770, 768}, 3, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const double e = run_case(1, cases[i].ta, cases[i].tb, cases[i].s, cases[i].pad, 1.25f, i % 2 ? 0.0f : 0.5f, 500 + i);
        CHECK(e <= 1.0, "M=%lld N=%lld K=%lld ta=%d tb=%d: error %.3g x tolerance", (long long)cases[i].s.M,
              (long long)cases[i].s.N, (long long)cases[i].s.K, cases[i].ta, cases[i].tb, e);
    }
    sf_set_threads(saved);
}

/* The micro-kernels reading a transposed A in place (sf_gemm_read_a_in_place): the same bits as with A
 * packed, on one and two threads, on the whole-A and the blocked path — whole slivers in place and a tail
 * of fewer than 12 rows packed, K past KC (two K blocks), padded and 4 KB-multiple row strides, alpha /
 * beta, a bias — and both within tolerance of the double-precision reference. */
static void transposed_a_bits(shape s, int64_t lda, int tb, int nt, int in_place, float beta, uint64_t seed, float *out,
                              double *err) {
    sf_rng r;
    sf_rng_seed(&r, seed);
    const int64_t ldb = tb ? s.K : s.N;
    float *A = filled(s.K * lda, &r), *B = filled((tb ? s.N : s.K) * ldb, &r), *bias = filled(s.N, &r);
    float *C0 = filled(s.M * s.N, &r), *R = malloc((size_t)(s.M * s.N) * sizeof *R);
    memcpy(out, C0, (size_t)(s.M * s.N) * sizeof *out);
    const int saved = sf_get_threads(), prev = sf_gemm_read_a_in_place(in_place);
    sf_set_threads(nt);
    CHECK(sf_sgemm_own(1, tb, s.M, s.N, s.K, 0.5f, A, lda, B, ldb, beta, out, s.N, beta == 0.0f ? bias : NULL),
          "own kernel refused");
    sf_set_threads(saved);
    sf_gemm_read_a_in_place(prev);
    for (int64_t i = 0; i < s.M; i++) /* the reference: C0 * beta (+ bias) + 0.5 A^T op(B) */
        for (int64_t j = 0; j < s.N; j++) R[i * s.N + j] = beta == 0.0f ? bias[j] * 2.0f : C0[i * s.N + j];
    ref_gemm(1, tb, s.M, s.N, s.K, 0.5f, A, lda, B, ldb, beta == 0.0f ? 0.5f : beta, R, s.N);
    double worst = 0;
    for (int64_t i = 0; i < s.M * s.N; i++) {
        const double e = fabs((double)out[i] - R[i]) / (1e-5 * ((double)s.K * 0.5 + 2.0));
        if (!(e <= worst)) worst = e;
    }
    *err = worst;
    free(A), free(B), free(bias), free(C0), free(R);
}

TEST(own_kernel_reads_transposed_a_in_place_with_the_same_bits) {
    if (!have_own()) SKIP("this build has no own kernel");
    static const struct {
        shape s;
        int64_t lda_pad;
        int tb;
    } cases[] = {
        {{256, 200, 1024}, 0, 0},   /* a gpt2-4m step's dW shape (C = 256 rows, K = 1024 tokens): two K blocks */
        {{250, 100, 300}, 3, 0},    /* a tail of 10 rows packed, padded stride */
        {{133, 70, 769}, 0, 1},     /* tail of 1 row, B transposed, K = KC + 1 */
        {{24, 33, 5}, 1000, 0},     /* rows of A 4 KB apart */
        {{36, 40, 64}, 7, 1},
        {{400, 64, 300}, 5, 0},     /* blocked path (400 x 300 > A_WHOLE on AVX2): MC blocks, a tail of 4 */
        {{1030, 40, 800}, 1, 1},    /* blocked on both: K past KC, a tail of 10 rows */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const shape s = cases[i].s;
        const int64_t lda = s.M + cases[i].lda_pad, n = s.M * s.N;
        float *packed = malloc((size_t)n * sizeof *packed), *placed = malloc((size_t)n * sizeof *placed);
        for (int nt = 1; nt <= 2; nt++)
            for (int b = 0; b < 2; b++) {
                const float beta = b ? -0.75f : 0.0f;
                double e_packed, e_placed;
                transposed_a_bits(s, lda, cases[i].tb, nt, 0, beta, 900 + i, packed, &e_packed);
                transposed_a_bits(s, lda, cases[i].tb, nt, 1, beta, 900 + i, placed, &e_placed);
                CHECK(e_packed <= 1.0 && e_placed <= 1.0, "case %zu nt %d beta %g: error %.3g / %.3g x tolerance", i,
                      nt, beta, e_packed, e_placed);
                CHECK(!memcmp(packed, placed, (size_t)n * sizeof *packed),
                      "case %zu nt %d beta %g: in place and packed differ", i, nt, beta);
            }
        free(packed), free(placed);
    }
}

/* sf_sgemm_ext: C = alpha (op(A) op(B) + A2 op(B2)) + beta C (+ bias) — on the own kernel the low-rank term
 * packed along with the last K block (whole-A and blocked paths, K past KC, row and column tails, rows or
 * columns split over two threads, K2 from 1 to the 64 it packs), and past 64 or on OpenBLAS as a second
 * product: within tolerance of the double reference; one and two threads give the same bits. */
static double ext_case(shape s, int ta, int tb, int tb2, int64_t K2, float beta, int with_bias, int nt, uint64_t seed,
                       float *out) {
    sf_rng r;
    sf_rng_seed(&r, seed);
    const int64_t M = s.M, N = s.N, K = s.K, lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 2, ldc = N + 3;
    const int64_t lda2 = K2 + 1, ldb2 = (tb2 ? K2 : N) + 1;
    float *A = filled((ta ? K : M) * lda, &r), *B = filled((tb ? N : K) * ldb, &r), *A2 = filled(M * lda2, &r);
    float *B2 = filled((tb2 ? N : K2) * ldb2, &r), *bias = filled(N, &r), *C = filled(M * ldc, &r);
    float *R = malloc((size_t)(M * N) * sizeof *R); /* the reference: the two products one after the other */
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) R[i * N + j] = with_bias ? bias[j] : C[i * ldc + j];
    ref_gemm(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, with_bias ? 1.0f : beta, R, N);
    ref_gemm(0, tb2, M, N, K2, 0.75f, A2, lda2, B2, ldb2, 1.0f, R, N);
    if (with_bias)
        for (int64_t i = 0; i < M * ldc; i++) C[i] = NAN; /* beta 0: never read */
    const float pad = C[N];
    const int saved = sf_get_threads();
    sf_set_threads(nt);
    sf_sgemm_ext(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, with_bias ? 0.0f : beta, C, ldc, with_bias ? bias : NULL, A2,
                 lda2, tb2, B2, ldb2, K2);
    sf_set_threads(saved);
    double worst = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            const double e = fabs(C[i * ldc + j] - R[i * N + j]) / (1e-5 * ((double)(K + K2) + 2.0));
            if (!(e <= worst)) worst = e;
            out[i * N + j] = C[i * ldc + j];
        }
    if (!(C[N] == pad || (isnan(C[N]) && isnan(pad)))) worst = INFINITY; /* the padding after row 0 untouched */
    free(A), free(B), free(A2), free(B2), free(bias), free(C), free(R);
    return worst;
}

TEST(ext_products_add_the_low_rank_term) {
    static const struct {
        shape s;
        int ta, tb, tb2;
        int64_t K2;
    } cases[] = {
        {{1024, 160, 256}, 0, 0, 1, 8},  /* LoRA forward at gpt2-4m's 1024 x 256 x (s h) B^T: whole A, by rows */
        {{1024, 96, 768}, 0, 1, 0, 8},   /* LoRA dx (dY W^T + dh A) at K = 768: blocked path */
        {{100, 900, 64}, 0, 1, 1, 16},   /* wide: split by columns, op(B2)'s columns per share */
        {{37, 45, 800}, 1, 0, 0, 1},     /* K past KC: the term in the second block; row and column tails */
        {{400, 70, 1600}, 1, 1, 1, 64},  /* blocked, three K blocks, the widest packed term */
        {{30, 40, 50}, 0, 0, 0, 65},     /* past 64: a second product */
        {{3, 5, 7}, 0, 0, 1, 4},         /* too small for the own kernel */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const shape s = cases[i].s;
        float *one = malloc((size_t)(s.M * s.N) * sizeof *one), *two = malloc((size_t)(s.M * s.N) * sizeof *two);
        for (int variant = 0; variant < 2; variant++) { /* beta -0.5 into C; bias with beta 0 */
            const int ta = cases[i].ta, tb = cases[i].tb, tb2 = cases[i].tb2;
            const double e1 = ext_case(s, ta, tb, tb2, cases[i].K2, -0.5f, variant, 1, 70 + i, one);
            const double e2 = ext_case(s, ta, tb, tb2, cases[i].K2, -0.5f, variant, 2, 70 + i, two);
            CHECK(e1 <= 1.0 && e2 <= 1.0, "case %zu variant %d: error %.3g / %.3g x tolerance", i, variant, e1, e2);
            if (have_own())
                CHECK(!memcmp(one, two, (size_t)(s.M * s.N) * sizeof *one),
                      "case %zu variant %d: 1 and 2 threads differ", i, variant);
        }
        const int prev = sf_gemm_use_openblas(1); /* the route without the own kernel */
        const double eo = ext_case(s, cases[i].ta, cases[i].tb, cases[i].tb2, cases[i].K2, 0.0f, 1, 2, 90 + i, one);
        sf_gemm_use_openblas(prev);
        CHECK(eo <= 1.0, "case %zu on OpenBLAS: error %.3g x tolerance", i, eo);
        free(one), free(two);
    }
    const int64_t before = sf_gemm_macs();
    float a = 1, b = 2, a2 = 3, b2 = 4, c = 0;
    sf_sgemm_ext(0, 0, 1, 1, 1, 1.0f, &a, 1, &b, 1, 0.0f, &c, 1, NULL, &a2, 1, 0, &b2, 1, 1);
    CHECK(c == 14.0f && sf_gemm_macs() - before == 2, "1x1: c = %g, %lld multiply-adds counted", c,
          (long long)(sf_gemm_macs() - before));
}

/* sf_sgemm_finite: 1 only when the own kernel stored every value of C and none was Inf or NaN — on both of
 * its paths, 1 and 2 threads; a NaN in A, a NaN in C added in by beta 1, an overflow of finite operands
 * and an unchecked route (OpenBLAS forced) all give 0; beta 0 never reads C's NaN. */
TEST(checked_products_tell_whether_c_is_finite) {
    const int saved = sf_get_threads();
    const int own = have_own();
    static const shape shapes[] = {{256, 200, 300}, {700, 100, 800}}; /* whole-A path, blocked path */
    for (int nt = 1; nt <= 2; nt++) {
        sf_set_threads(nt);
        for (int si = 0; si < 2; si++) {
            const int64_t M = shapes[si].M, N = shapes[si].N, K = shapes[si].K;
            sf_rng r;
            sf_rng_seed(&r, 900 + (uint64_t)(nt * 2 + si));
            float *A = filled(M * K, &r), *B = filled(K * N, &r), *C = filled(M * N, &r);
            for (int64_t i = 0; i < M * N; i++) C[i] = NAN;
            CHECK(sf_sgemm_finite(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N) == own,
                  "threads %d shape %d: finite product (beta 0 over NaN) not vouched", nt, si);
            CHECK(sf_sgemm_finite(0, 1, M, N, K, 1.0f, A, K, B, K, 1.0f, C, N) == own,
                  "threads %d shape %d: finite accumulation not vouched", nt, si);
            C[(M - 1) * N + N - 1] = NAN; /* the last element, added in by beta 1 */
            CHECK(!sf_sgemm_finite(1, 0, M, N, K, 1.0f, A, M, B, N, 1.0f, C, N), "NaN in C vouched (threads %d)", nt);
            A[K / 2] = INFINITY; /* row 0 of A: Inf times B's signs, or NaN */
            CHECK(!sf_sgemm_finite(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N), "Inf in A vouched (threads %d)", nt);
            A[K / 2] = 0.5f;
            for (int64_t i = 0; i < K * N; i++) B[i] *= 1e38f; /* finite; products overflow */
            CHECK(!sf_sgemm_finite(0, 0, M, N, K, 1e10f, A, K, B, N, 0.0f, C, N), "overflow vouched (threads %d)", nt);
            for (int64_t i = 0; i < K * N; i++) B[i] *= 1e-38f;
            const int prev = sf_gemm_use_openblas(1);
            CHECK(!sf_sgemm_finite(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N), "the OpenBLAS route cannot vouch");
            sf_gemm_use_openblas(prev);
            CHECK(!sf_sgemm_finite(0, 0, 0, N, K, 1.0f, A, K, B, N, 0.0f, C, N), "an empty product stores nothing");
            free(A), free(B), free(C);
        }
    }
    sf_set_threads(saved);
}

TEST(single_row_or_column_products_through_sf_sgemm) {
    /* M = 1 or N = 1 (a token at a time) take the matrix-vector route: every transposition, padded leading
     * dimensions (strided vectors), beta 0 over NaN and beta -0.5, large enough to have gone to the own
     * kernel before */
    static const shape VEC[] = {{1, 4096, 256}, {1, 300, 50}, {77, 1, 300}, {1, 1, 9}, {2000, 1, 700}, {1, 33, 1}};
    uint64_t seed = 500;
    for (size_t i = 0; i < sizeof VEC / sizeof *VEC; i++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int b = 0; b < 2; b++) {
                    double e = run_case(0, ta, tb, VEC[i], (int)(i % 2) * 3, 0.75f, b ? -0.5f : 0.0f, seed++);
                    CHECK(e <= 1.0, "M=%lld N=%lld K=%lld ta=%d tb=%d beta=%s: error %.3g x tolerance",
                          (long long)VEC[i].M, (long long)VEC[i].N, (long long)VEC[i].K, ta, tb, b ? "-0.5" : "0", e);
                }
}

TEST(own_kernel_inside_a_parallel_region) {
    if (!have_own()) SKIP("this build has no own kernel");
    const shape s = {50, 70, 90};
    double worst[2] = {0, 0};
#pragma omp parallel for num_threads(2)
    for (int t = 0; t < 2; t++) worst[t] = run_case(1, t, 1 - t, s, 1, 1.0f, 0.5f, 40 + (uint64_t)t);
    CHECK(worst[0] <= 1.0 && worst[1] <= 1.0, "errors %.3g %.3g x tolerance", worst[0], worst[1]);
}

/* sf_sgemm_serial, as attention calls it: from the threads of a parallel region at once (and from outside
 * one), below and above the own kernel's 2^15 multiply-adds, every transposition, with the own kernel
 * allowed and with OpenBLAS forced. */
TEST(serial_products_from_parallel_threads) {
    static const shape shapes[] = {{20, 30, 40}, {64, 64, 64}, {37, 250, 70}};
    for (int forced = 0; forced < 2; forced++) {
        const int prev = sf_gemm_use_openblas(forced);
        double worst[2] = {0, 0};
#pragma omp parallel for num_threads(2)
        for (int t = 0; t < 2; t++)
            for (int i = 0; i < 3; i++)
                for (int tr = 0; tr < 4; tr++) {
                    const double e = run_case(2, tr / 2, tr % 2, shapes[i], t, 0.5f, tr % 2 ? 0.0f : 1.0f,
                                              (uint64_t)(60 + t * 16 + i * 4 + tr));
                    if (!(e <= worst[t])) worst[t] = e;
                }
        const double outside = run_case(2, 1, 0, shapes[2], 2, 1.0f, 0.0f, 99);
        sf_gemm_use_openblas(prev);
        CHECK(worst[0] <= 1.0 && worst[1] <= 1.0 && outside <= 1.0, "OpenBLAS forced %d: errors %.3g %.3g %.3g x tolerance",
              forced, worst[0], worst[1], outside);
    }
}

/* A (2, K) whose two rows lie lda floats apart, in a mapping of which only those rows are touched, times
 * op(B) (K, N) (transposed when tb); through the own kernel directly (own), or through sf_sgemm with
 * OpenBLAS forced. Returns the error over the tolerance (<= 1 passes), -1 when the own kernel refused,
 * or NAN when the address space for A is missing. */
static double far_rows_case(int64_t lda, int tb, int own, int64_t N, int64_t K, uint64_t seed) {
    const int64_t M = 2;
    float *A = sf_alloc((size_t)(lda + K) * sizeof(float));
    if (!A) return NAN;
    sf_rng r;
    sf_rng_seed(&r, seed);
    float *Ac = filled(M * K, &r), *B = filled(N * K, &r), *C = calloc((size_t)(M * N), sizeof *C);
    float *R = calloc((size_t)(M * N), sizeof *R);
    memcpy(A, Ac, (size_t)K * sizeof *A);
    memcpy(A + lda, Ac + K, (size_t)K * sizeof *A);
    const int64_t ldb = tb ? K : N;
    ref_gemm(0, tb, M, N, K, 1.0f, Ac, K, B, ldb, 0.0f, R, N);
    double worst = 0;
    if (own) {
        if (!sf_sgemm_own(0, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N, NULL)) worst = -1;
    } else {
        const int prev = sf_gemm_use_openblas(1);
        sf_sgemm(0, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
        sf_gemm_use_openblas(prev);
    }
    for (int64_t i = 0; i < M * N && worst >= 0; i++) {
        const double e = fabs((double)C[i] - R[i]) / (1e-5 * (double)(K + 1));
        if (!(e <= worst)) worst = e;
    }
    sf_free(A, (size_t)(lda + K) * sizeof(float));
    free(Ac), free(B), free(C), free(R);
    return worst;
}

TEST(own_kernel_rows_far_apart) {
    /* leading dimensions past 2^26 floats (the packs read rows, no 32-bit gather offsets): 256 MB apart */
    if (!have_own()) SKIP("this build has no own kernel (the CPU or -march lacks AVX-512F and AVX2 + FMA)");
    const double e = far_rows_case(((int64_t)1 << 26) + 3, 1, 1, 300, 900, 77);
    CHECK(e >= 0 && e <= 1.0, "error %.3g x tolerance (-1: the kernel refused, nan: no memory)", e);
}

TEST(sizes_beyond_cblas_int_range_never_reach_cblas) {
    /* a leading dimension of 2^31 + 16 floats cannot be passed to cblas_sgemm (int): even with OpenBLAS
     * forced the product must come out right (the own kernel takes it, or plain loops without one) */
#if defined(__SANITIZE_ADDRESS__)
    SKIP("an 8 GB mapping under AddressSanitizer's allocator");
#endif
    const double e = far_rows_case(((int64_t)1 << 31) + 16, 0, 0, 40, 30, 78);
    if (isnan(e)) SKIP("no 8 GB of address space for the test: %s", sf_last_error());
    CHECK(e <= 1.0, "error %.3g x tolerance", e);
}

/* sf_sgemm_bias on both routes: C = alpha op(A) op(B) + bias, C's old values (NaN) never read */
TEST(bias_row_added_on_both_routes) {
    const int64_t M = 37, N = 70, K = 400, ldc = N + 2;
    sf_rng r;
    sf_rng_seed(&r, 77);
    float *A = filled(M * K, &r), *B = filled(N * K, &r), *bias = filled(N, &r), *R = filled(M * ldc, &r);
    float *C = malloc((size_t)(M * ldc) * sizeof *C);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) R[i * ldc + j] = bias[j];
    ref_gemm(0, 1, M, N, K, 0.5f, A, K, B, K, 1.0f, R, ldc);
    for (int forced = 0; forced < 2; forced++) {
        int prev = sf_gemm_use_openblas(forced);
        for (int64_t i = 0; i < M * ldc; i++) C[i] = NAN;
        sf_sgemm_bias(0, 1, M, N, K, 0.5f, A, K, B, K, C, ldc, bias);
        double worst = 0;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double e = fabs((double)C[i * ldc + j] - R[i * ldc + j]) / (1e-5 * (K * 0.5 + 2));
                if (!(e <= worst)) worst = e;
            }
        CHECK(worst <= 1.0, "%s route: error %.3g x tolerance", forced ? "openblas" : "routed", worst);
        CHECK(isnan(C[N]) && isnan(C[N + 1]), "padding columns untouched");
        sf_gemm_use_openblas(prev);
    }
    free(A), free(B), free(bias), free(R), free(C);
}

TEST(routing_switch_and_openblas_path) {
    int prev = sf_gemm_use_openblas(1);
    CHECK(strcmp(sf_gemm_kernel(), "openblas") == 0, "forced: kernel %s", sf_gemm_kernel());
    const shape s = {200, 300, 400};
    CHECK(run_case(0, 1, 0, s, 2, 0.5f, 0.25f, 9) <= 1.0, "OpenBLAS path");
    sf_gemm_use_openblas(0);
#if defined(SF_OWN_GEMM)
    CHECK(have_own() && strcmp(sf_gemm_kernel(), SF_OWN_GEMM) == 0, "kernel %s", sf_gemm_kernel());
#else
    CHECK(!have_own() && strcmp(sf_gemm_kernel(), "openblas") == 0, "kernel %s", sf_gemm_kernel());
#endif
    CHECK(run_case(0, 0, 1, s, 2, 0.5f, 0.25f, 10) <= 1.0, "routed path");
    /* degenerate sizes never reach the own kernel: K = 0 scales C by beta, M = 0 is a no-op */
    float c[2] = {3, 4}, a = 0, b = 0;
    sf_sgemm(0, 0, 1, 2, 0, 1.0f, &a, 1, &b, 2, 0.5f, c, 2);
    CHECK(c[0] == 1.5f && c[1] == 2.0f, "K = 0: C = beta C, got %g %g", c[0], c[1]);
    sf_sgemm(0, 0, 0, 2, 3, 1.0f, &a, 3, &b, 2, 0.0f, c, 2);
    CHECK(c[0] == 1.5f, "M = 0 left C alone");
    sf_gemm_use_openblas(prev);
}

/* sf_gemm_macs counts M * N * K once per product through every entry point, on every route (own kernel,
 * OpenBLAS forced, matrix-vector, serial from parallel threads, bias, checked), and nothing for empty
 * products or the own kernel's direct entry points. */
TEST(every_product_counted_once) {
    const int64_t M = 40, N = 70, K = 300, n = M * N * K;
    sf_rng r;
    sf_rng_seed(&r, 321);
    float *A = filled(M * K, &r), *B = filled(K * N, &r), *bias = filled(N, &r), *C = calloc((size_t)(M * N), sizeof *C);
    for (int forced = 0; forced < 2; forced++) {
        const int prev = sf_gemm_use_openblas(forced);
        int64_t m0 = sf_gemm_macs();
        sf_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
        CHECK(sf_gemm_macs() - m0 == n, "forced %d sf_sgemm: counted %lld, expected %lld", forced,
              (long long)(sf_gemm_macs() - m0), (long long)n);
        m0 = sf_gemm_macs();
        sf_sgemm_bias(0, 0, M, N, K, 1.0f, A, K, B, N, C, N, bias);
        (void)sf_sgemm_finite(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
        CHECK(sf_gemm_macs() - m0 == 2 * n, "forced %d bias + finite: counted %lld, expected %lld", forced,
              (long long)(sf_gemm_macs() - m0), (long long)(2 * n));
        m0 = sf_gemm_macs();
        sf_sgemm(0, 0, 1, N, K, 1.0f, A, K, B, N, 0.0f, C, N); /* one row: the matrix-vector route */
        sf_sgemm(0, 0, M, N, 0, 1.0f, A, K, B, N, 0.0f, C, N); /* K = 0: no product */
        sf_sgemm(0, 0, 0, N, K, 1.0f, A, K, B, N, 0.0f, C, N); /* M = 0 */
        CHECK(sf_gemm_macs() - m0 == N * K, "forced %d vector + empty: counted %lld, expected %lld", forced,
              (long long)(sf_gemm_macs() - m0), (long long)(N * K));
        m0 = sf_gemm_macs();
#pragma omp parallel for num_threads(2)
        for (int t = 0; t < 8; t++) {
            float *c = calloc((size_t)(M * N), sizeof *c);
            sf_sgemm_serial(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, c, N);
            free(c);
        }
        CHECK(sf_gemm_macs() - m0 == 8 * n, "forced %d serial from 2 threads: counted %lld, expected %lld", forced,
              (long long)(sf_gemm_macs() - m0), (long long)(8 * n));
        sf_gemm_use_openblas(prev);
    }
    const int64_t m0 = sf_gemm_macs();
    (void)sf_sgemm_own(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N, NULL);
    CHECK(sf_gemm_macs() == m0, "the own kernel's direct entry point counted %lld", (long long)(sf_gemm_macs() - m0));
    free(A), free(B), free(bias), free(C);
}

TEST_MAIN()
