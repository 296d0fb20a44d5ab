/* gemm_own_scheme.h — the part of sift's own GEMM that does not depend on the vector instructions: the
 * per-thread pack buffers (thread_scratch.h), the blocked Goto/BLIS scheme, the whole-A path for shares
 * of few rows, a low-rank term packed along with the last K block, the split over threads and the public
 * entry points (sf_sgemm_own, _checked, _serial, _ext in gemm.h). Each ISA file (gemm_avx512.c,
 * gemm_avx2.c) includes it once, after defining
 *   - the blocking: enum MR, NR (micro-tile rows and columns), KC, MC, NC (K, row and column blocks),
 *     A_WHOLE (floats of op(A)'s K block up to which a share takes the whole-A path), ROW_SPLIT (a
 *     share of rows is a multiple of it: MR, or the fewest rows micro_kernel's loop runs for an edge);
 *   - check_acc, a vector accumulator, with check_zero() and check_clean(acc) (1 when the sum of every
 *     stored value times 0 stayed 0, i.e. every stored value was finite);
 * and defines after it the three kernels it declares: pack_a, pack_b_sliver and micro_kernel (and, when it
 * defines SF_GEMM_A_IN_PLACE to 1, micro_kernel_a_in_place). The scheme itself is described in
 * gemm_avx512.c's header.
 *
 * What it does not do: anything with vectors; it is a textual template (static functions), not a
 * separately compiled unit, so each ISA file gets its own copy, inlined into its own kernels.
 */
#ifndef SF_GEMM_OWN_SCHEME_H
#define SF_GEMM_OWN_SCHEME_H

#ifndef SF_GEMM_A_IN_PLACE
#define SF_GEMM_A_IN_PLACE 0
#endif

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>

#include "gemm.h"
#include "thread_scratch.h"
#include "threads.h"

typedef struct {
    float *a, *b;  /* Ap (MC * KC) and Bp (NC * KC), 64-byte aligned, kept across calls */
    float *a_whole; /* Ap for the whole-A path: (A_WHOLE + MR * KC), slivers of MR rows padded */
} pack_buffers;

/* A low-rank term riding along (sf_sgemm_own_ext): op(A) gets k2 more columns, A2 (rows, k2) row-major, and
 * op(B) k2 more rows, op(B2) (k2, cols): B2 stored (k2, cols), or (cols, k2) when tb2. They are packed after
 * the last K block's own, so that block's micro-kernels run kc + k2 steps and C is stored once. */
typedef struct {
    const float *a2, *b2;
    int64_t lda2, ldb2, k2;
    int tb2;
} gemm_ext;
enum { EXT_MAX = 64 }; /* the most extra columns packed along (LoRA's ranks); beyond, gemm.c adds a product */

/* Each thread's own pack buffers (thread_scratch.h): slots 0, 1, 2 = a, b, a_whole, with room for a K
 * block of KC + EXT_MAX. */
SF_THREAD_SCRATCH(pack_scratch, 3)

/* The calling thread's pack buffers; 0 when memory ran out. */
static int thread_buffers(pack_buffers *p) {
    p->a = pack_scratch(0, (int64_t)MC * (KC + EXT_MAX));
    p->b = pack_scratch(1, (int64_t)NC * (KC + EXT_MAX));
    p->a_whole = pack_scratch(2, (int64_t)A_WHOLE + MR * (KC + EXT_MAX));
    return p->a && p->b && p->a_whole;
}

/* Where op(X)'s element (row, col) sits in X stored with row stride ld, transposed (t) or not. */
static inline const float *op_at(const float *X, int64_t ld, int t, int64_t row, int64_t col) {
    return t ? X + col * ld + row : X + row * ld + col;
}

/* Cache lines to fetch into L2 while a micro-kernel runs: `count` lines starting at line `first` of a
 * pattern of rows (row r at base + r * ld, row_len floats, lines_per_row lines each, the last one at
 * the row's last float), one line every kc / count steps of the k loop so the requests trickle out
 * instead of filling the line-fill buffers at once. */
typedef struct {
    const float *base;
    int64_t ld, row_len, lines_per_row, first, count;
} prefetch_plan;

/* A micro-kernel's C tile (mr rows of nr floats) is read or written after its k loop: fetching its lines
 * first lets them arrive meanwhile. */
static inline void prefetch_c_tile(const float *c, int64_t ldc, int mr, int nr) {
    for (int i = 0; i < mr; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + nr - 1), _MM_HINT_T0);
    }
}

/* A micro-kernel's walk through its prefetch plan: one line every `spacing` steps of its k loop until
 * `count` are out. Either prefetch_tick once per k step, or prefetch_issue at the start of each run of
 * `spacing` steps (a loop nest that keeps the countdown out of the innermost loop). */
typedef struct {
    const prefetch_plan *pf;
    int64_t spacing, countdown, issued, row, line;
} prefetch_cursor;

static inline prefetch_cursor prefetch_start(const prefetch_plan *pf, int64_t kc) {
    const int64_t n_pf = pf ? pf->count : 0, spacing = n_pf > 0 && kc / n_pf > 1 ? kc / n_pf : 1;
    prefetch_cursor c = {pf, n_pf > 0 ? spacing : kc, n_pf > 0 ? spacing : kc + 1, 0, 0, 0};
    if (pf) c.row = pf->first / pf->lines_per_row, c.line = pf->first % pf->lines_per_row;
    return c;
}

/* The next line of the plan, if any is left. */
static inline void prefetch_issue(prefetch_cursor *c) {
    const prefetch_plan *pf = c->pf;
    if (!pf || c->issued >= pf->count) return;
    const int64_t off = c->line * 16 < pf->row_len ? c->line * 16 : pf->row_len - 1;
    _mm_prefetch((const char *)(pf->base + c->row * pf->ld + off), _MM_HINT_T1);
    if (++c->line == pf->lines_per_row) c->line = 0, c->row++;
    c->issued++;
}

static inline void prefetch_tick(prefetch_cursor *c) {
    if (--c->countdown != 0) return;
    c->countdown = c->spacing;
    prefetch_issue(c);
}

/* The ISA file's kernels (defined after this header):
 * pack_b_sliver: one sliver of Bp: dst[k][j] = op(B)(k, j) for k < kc, j < NR (0 beyond nr); op(B) starts
 *   at B (already offset to the sliver's first row and column).
 * pack_a: Ap[s][k][i] = op(A)(s*MR + i, k) for k < kc, i < MR (0 beyond mc).
 * micro_kernel: C (mr <= MR, nr <= NR; row stride ldc) = alpha * Ap-sliver . Bp-sliver + beta * C (+ bias
 *   (nr), added to every row, when not NULL); pf (or NULL): lines to prefetch meanwhile. check (or NULL):
 *   every stored value times 0 is added into it. */
static void pack_b_sliver(float *restrict dst, const float *restrict B, int64_t ldb, int tb, int64_t kc, int64_t nr);
static void pack_a(float *restrict ap, const float *restrict A, int64_t lda, int ta, int64_t mc, int64_t kc);
static void micro_kernel(int64_t kc, const float *restrict ap, const float *restrict bp, float *restrict c, int64_t ldc,
                         int mr, int nr, float alpha, float beta, const float *restrict bias, const prefetch_plan *pf,
                         check_acc *check);

/* micro_kernel_a_in_place (when the ISA file defines SF_GEMM_A_IN_PLACE): micro_kernel's contract with
 *   op(A) transposed and read where it lies, element (i, k) at a[k * lda + i], instead of a packed
 *   sliver; mr must be MR (all 12 values of each k are read). The same sums in the same order as
 *   micro_kernel on a packed copy: the same bits. */
#if SF_GEMM_A_IN_PLACE
static void micro_kernel_a_in_place(int64_t kc, const float *restrict a, int64_t lda, const float *restrict bp,
                                    float *restrict c, int64_t ldc, int mr, int nr, float alpha, float beta,
                                    const float *restrict bias, const prefetch_plan *pf, check_acc *check);
#endif

/* Whether the micro-kernels read op(A) in place rather than from a packed copy (sf_gemm_read_a_in_place):
 * for a transposed A (a weight gradient's X^T or dY^T) the 12 values of a sliver at each k are consecutive
 * floats of one row of A, which the micro-kernel broadcasts where they lie, so the pack (a copy of A's
 * K block, per thread) is not needed. Measured on the weight-gradient products alone (operands rotated
 * through 6 copies): gpt2-4m step's 10-18 % faster, RoBERTa-base / Llama-124M's 4-9 %, whatever A's row
 * stride (4 KB multiples included: 8-18 % there); on whole full steps, in place and packed interleaved in
 * one process, 2-3.5 % (gpt2-4m 32x32), 1 % (GPT-2 124M, Llama-124M), 0-1 % (RoBERTa-base). Not for a
 * row-major A: reading 12 rows at once measured 7-10 % slower than packing them, even with the rows
 * prefetched. The tail of fewer than 12 rows is still packed. */
static int a_in_place(int ta) { return SF_GEMM_A_IN_PLACE && ta && sf_gemm_a_in_place_enabled(); }

/* The extra columns in the K block starting at pc of kc columns: ext's k2 in the last block, else 0. */
static inline int64_t ext_cols(const gemm_ext *ext, int64_t pc, int64_t kc, int64_t K) {
    return ext && pc + kc >= K ? ext->k2 : 0;
}

/* Packs rows [ir, ir + mr) of op(A)'s K block (pc, kc) and, when k2 > 0, the same rows of A2 after them:
 * one sliver of kc + k2 steps at ap. */
static inline void pack_a_sliver_ext(float *ap, const float *A, int64_t lda, int ta, int64_t ir, int64_t pc,
                                     int64_t mr, int64_t kc, const gemm_ext *ext, int64_t k2) {
    pack_a(ap, op_at(A, lda, ta, ir, pc), lda, ta, mr, kc);
    if (k2 > 0) pack_a(ap + kc * MR, ext->a2 + ir * ext->lda2, ext->lda2, 0, mr, k2);
}

/* Packs one sliver of op(B)'s K block (pc, kc), columns [jc, jc + nr), and, when k2 > 0, op(B2)'s rows
 * after it: kc + k2 rows of NR at bp. */
static inline void pack_b_sliver_ext(float *bp, const float *B, int64_t ldb, int tb, int64_t pc, int64_t jc,
                                     int64_t kc, int64_t nr, const gemm_ext *ext, int64_t k2) {
    pack_b_sliver(bp, op_at(B, ldb, tb, pc, jc), ldb, tb, kc, nr);
    if (k2 > 0) pack_b_sliver(bp + kc * NR, op_at(ext->b2, ext->ldb2, ext->tb2, 0, jc), ext->ldb2, ext->tb2, k2, nr);
}

/* The whole-A path, for a share of few rows (the training step's B * T = 256 tokens): op(A)'s K block is
 * packed whole (it stays in L2; a transposed A is read in place instead, see a_in_place), then each
 * 32-column sliver of op(B) is packed and used at once by every row sliver, so B is read from memory once
 * and never re-read from a packed panel. While a sliver's micro-kernels run, they prefetch the next
 * sliver's source lines into L2, a few per call (measured on operands from memory at the GPT-2 124M step's
 * shapes: 245 -> 273 GFLOP/s over the blocked scheme). Not for a row-major B whose row stride is a
 * multiple of 4 KB: its rows then fall into 1/64 of L2's sets and the prefetched lines evict one another
 * and A (measured 2 % slower there). */
static void gemm_whole_a(pack_buffers *bufs, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
                         const float *bias, const gemm_ext *ext, check_acc *check) {
    const int64_t calls = (M + MR - 1) / MR; /* micro-kernel calls per sliver */
    /* rows read in place: whole slivers (not with a low-rank term: its columns come packed) */
    const int64_t m_in_place = a_in_place(ta) && !ext ? M / MR * MR : 0;
    for (int64_t pc = 0; pc < K; pc += KC) {
        const int64_t kc = K - pc < KC ? K - pc : KC, k2 = ext_cols(ext, pc, kc, K), kt = kc + k2;
        const float beta_here = pc == 0 ? beta : 1.0f; /* later K blocks add onto the first's result */
        const float *bias_here = pc == 0 ? bias : NULL;
        if (k2 == 0)
            for (int64_t ic = m_in_place; ic < M; ic += MC) /* Ap: [ceil(M / MR)][kc][MR] (rows not read in place) */
                pack_a(bufs->a_whole + ic * kc, op_at(A, lda, ta, ic, pc), lda, ta, M - ic < MC ? M - ic : MC, kc);
        else /* Ap: [ceil(M / MR)][kc + k2][MR] */
            for (int64_t ic = 0; ic < M; ic += MR)
                pack_a_sliver_ext(bufs->a_whole + ic * kt, A, lda, ta, ic, pc, M - ic < MR ? M - ic : MR, kc, ext, k2);
        for (int64_t jr = 0; jr < N; jr += NR) {
            const int nr = (int)(N - jr < NR ? N - jr : NR);
            const float *sliver = op_at(B, ldb, tb, pc, jr);
            pack_b_sliver_ext(bufs->b, B, ldb, tb, pc, jr, kc, nr, ext, k2);
            /* the next sliver: rows of B (tb: nnext rows of kc floats; else kc rows of nnext floats) */
            const int64_t nnext = N - jr - NR < NR ? N - jr - NR : NR;
            prefetch_plan next = {0};
            if (nnext > 0 && (tb || ldb % 1024 != 0)) {
                next.base = tb ? sliver + NR * ldb : sliver + NR;
                next.ld = ldb;
                next.row_len = tb ? kc : nnext;
                next.lines_per_row = next.row_len / 16 + 1;
                next.count = (tb ? nnext : kc) * next.lines_per_row;
            }
            const int64_t per_call = (next.count + calls - 1) / calls;
            for (int64_t ir = 0; ir < M; ir += MR) {
                const int mr = (int)(M - ir < MR ? M - ir : MR);
                prefetch_plan mine = next;
                mine.first = ir / MR * per_call;
                mine.count = next.count - mine.first < per_call ? next.count - mine.first : per_call;
                float *c = C + ir * ldc + jr;
                const float *bias_jr = bias_here ? bias_here + jr : NULL;
#if SF_GEMM_A_IN_PLACE
                if (ir < m_in_place) {
                    micro_kernel_a_in_place(kc, op_at(A, lda, ta, ir, pc), lda, bufs->b, c, ldc, mr, nr, alpha,
                                            beta_here, bias_jr, mine.count > 0 ? &mine : NULL, check);
                    continue;
                }
#endif
                micro_kernel(kt, bufs->a_whole + ir * kt, bufs->b, c, ldc, mr, nr, alpha, beta_here, bias_jr,
                             mine.count > 0 ? &mine : NULL, check);
            }
        }
    }
}

/* The whole blocked scheme on one thread's share: C (M, N) = alpha op(A) op(B) + beta C (+ bias (N)).
 * A is packed MC x KC at a time (a transposed A's whole slivers are read in place, see a_in_place).
 * B's panel is packed one sliver at a time during the first row block, each just before its first use, so
 * its loads from memory interleave with the arithmetic instead of stalling a whole-panel pack (a large
 * model's weights are never in cache when their product starts). No software prefetch of the next
 * sliver: with the operands on huge pages (core/tensor.c) the hardware prefetchers keep up, and explicit
 * prefetches measured 3-4 % slower, cold or hot. */
static void gemm_serial(pack_buffers *bufs, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
                        const float *bias, const gemm_ext *ext, check_acc *check) {
    const int in_place = a_in_place(ta) && !ext;
    for (int64_t jc = 0; jc < N; jc += NC) {
        const int64_t nc = N - jc < NC ? N - jc : NC;
        for (int64_t pc = 0; pc < K; pc += KC) {
            const int64_t kc = K - pc < KC ? K - pc : KC, k2 = ext_cols(ext, pc, kc, K), kt = kc + k2;
            /* later K blocks add onto the first's result, which holds the bias */
            const float beta_here = pc == 0 ? beta : 1.0f;
            const float *bias_here = pc == 0 ? bias : NULL;
            for (int64_t ic = 0; ic < M; ic += MC) {
                const int64_t mc = M - ic < MC ? M - ic : MC;
                const int64_t mc_in_place = in_place ? mc / MR * MR : 0; /* whole slivers read in place */
                if (k2 > 0) /* Ap: [ceil(mc / MR)][kc + k2][MR] */
                    for (int64_t ir = 0; ir < mc; ir += MR)
                        pack_a_sliver_ext(bufs->a + ir * kt, A, lda, ta, ic + ir, pc, mc - ir < MR ? mc - ir : MR, kc,
                                          ext, k2);
                else if (mc_in_place < mc) /* Ap: [ceil(mc / MR)][kc][MR] (the rows not read in place) */
                    pack_a(bufs->a + mc_in_place * kc, op_at(A, lda, ta, ic + mc_in_place, pc), lda, ta,
                           mc - mc_in_place, kc);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    const int nr = (int)(nc - jr < NR ? nc - jr : NR);
                    if (ic == 0) pack_b_sliver_ext(bufs->b + jr * kt, B, ldb, tb, pc, jc + jr, kc, nr, ext, k2);
                    for (int64_t ir = 0; ir < mc; ir += MR) {
                        const int mr = (int)(mc - ir < MR ? mc - ir : MR);
                        float *c = C + (ic + ir) * ldc + jc + jr;
                        const float *bias_jr = bias_here ? bias_here + jc + jr : NULL;
#if SF_GEMM_A_IN_PLACE
                        if (ir < mc_in_place) {
                            micro_kernel_a_in_place(kc, op_at(A, lda, ta, ic + ir, pc), lda, bufs->b + jr * kc, c, ldc,
                                                    mr, nr, alpha, beta_here, bias_jr, NULL, check);
                            continue;
                        }
#endif
                        micro_kernel(kt, bufs->a + ir * kt, bufs->b + jr * kt, c, ldc, mr, nr, alpha, beta_here,
                                     bias_jr, NULL, check);
                    }
                }
            }
        }
    }
}

/* C (m, n) = alpha op(A) op(B) + beta C (+ bias) through OpenBLAS on the calling thread. */
static void serial_fallback(int ta, int tb, int64_t m, int64_t n, int64_t K, float alpha, const float *A, int64_t lda,
                            const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const float *bias) {
    if (bias) {
        for (int64_t i = 0; i < m; i++) {
            float *row = C + i * ldc;
            for (int64_t j = 0; j < n; j++) row[j] = (beta != 0.0f ? beta * row[j] : 0.0f) + bias[j];
        }
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)K,
                alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* One thread's share of the product: C (m, n) = alpha op(A) op(B) + beta C (+ bias), A, B, C and bias already
 * offset to the share. Returns 1 when some value it stored was not finite or went unchecked (OpenBLAS did
 * the share because the pack buffers could not be allocated). */
static int gemm_share(int ta, int tb, int64_t m, int64_t n, int64_t K, float alpha, const float *a, int64_t lda,
                      const float *b, int64_t ldb, float beta, float *c, int64_t ldc, const float *bias,
                      const gemm_ext *ext, int checked) {
    if (m <= 0 || n <= 0) return 0;
    pack_buffers buffers, *bufs = &buffers;
    if (!thread_buffers(bufs)) { /* no memory for this thread's pack buffers: OpenBLAS does its share */
        serial_fallback(ta, tb, m, n, K, alpha, a, lda, b, ldb, beta, c, ldc, bias);
        if (ext) /* and the low-rank term after it */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, ext->tb2 ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)ext->k2,
                        alpha, ext->a2, (int)ext->lda2, ext->b2, (int)ext->ldb2, 1.0f, c, (int)ldc);
        return 1;
    }
    check_acc check = check_zero();
    if (m * ((K < KC ? K : KC) + (ext ? ext->k2 : 0)) <= A_WHOLE)
        gemm_whole_a(bufs, ta, tb, m, n, K, alpha, a, lda, b, ldb, beta, c, ldc, bias, ext, checked ? &check : NULL);
    else
        gemm_serial(bufs, ta, tb, m, n, K, alpha, a, lda, b, ldb, beta, c, ldc, bias, ext, checked ? &check : NULL);
    return !check_clean(check);
}

/* The product on nt threads (1: the calling thread alone, no parallel region: attention calls it thousands of
 * times per step from inside its own region, where even a one-thread team costs a little). */
static int own_gemm(int nt, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                    const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const float *bias,
                    const gemm_ext *ext, int *all_finite) {
    if (M <= 0 || N <= 0 || K <= 0) return 0;
    if (ext && (ext->k2 <= 0 || ext->k2 > EXT_MAX)) return 0;
    /* split the longer side into contiguous shares: of columns in whole micro-tiles, of rows in multiples of
     * ROW_SPLIT (a share's last few rows run a shorter micro-kernel loop, so 1024 rows split 512 + 512, each
     * 42 tiles and 8 rows, rather than 516 + 508) */
    const int by_rows = M >= N;
    const int64_t tile = by_rows ? ROW_SPLIT : NR, len = by_rows ? M : N;
    const int64_t tiles = (len + tile - 1) / tile;
    if (nt > tiles) nt = (int)tiles;
    if (nt <= 1) {
        const int unverified =
            gemm_share(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, ext, all_finite != NULL);
        if (all_finite) *all_finite = !unverified;
        return 1;
    }
    int unverified = 0; /* some share stored a non-finite value, or went where nobody checks */
#pragma omp parallel num_threads(nt) reduction(| : unverified)
    {
        const int t = omp_get_thread_num();
        const int64_t t0 = tiles * t / nt * tile, t1 = tiles * (t + 1) / nt * tile;
        const int64_t lo = t0, hi = t1 < len ? t1 : len;
        const int64_t m = by_rows ? hi - lo : M, n = by_rows ? N : hi - lo; /* this share: C (m, n) */
        const float *a = by_rows ? (ta ? A + lo : A + lo * lda) : A, *b = by_rows ? B : (tb ? B + lo * ldb : B + lo);
        float *c = by_rows ? C + lo * ldc : C + lo;
        const float *bias_share = bias && !by_rows ? bias + lo : bias;
        gemm_ext share_ext; /* the low-rank term's rows (A2) or columns (op(B2)) of this share */
        if (ext) {
            share_ext = *ext;
            if (by_rows) share_ext.a2 = ext->a2 + lo * ext->lda2;
            else share_ext.b2 = ext->tb2 ? ext->b2 + lo * ext->ldb2 : ext->b2 + lo;
        }
        unverified |= gemm_share(ta, tb, m, n, K, alpha, a, lda, b, ldb, beta, c, ldc, bias_share,
                                 ext ? &share_ext : NULL, all_finite != NULL);
    }
    if (all_finite) *all_finite = !unverified;
    return 1;
}

int sf_sgemm_own(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                 const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const float *bias) {
    return sf_sgemm_own_checked(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, NULL);
}

int sf_sgemm_own_checked(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                         const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const float *bias,
                         int *all_finite) {
    return own_gemm(omp_in_parallel() ? 1 : sf_get_threads(), ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias,
                    NULL, all_finite);
}

int sf_sgemm_own_ext(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                     const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const float *bias, const float *A2,
                     int64_t lda2, int tb2, const float *B2, int64_t ldb2, int64_t K2) {
    const gemm_ext ext = {A2, B2, lda2, ldb2, K2, tb2};
    return own_gemm(omp_in_parallel() ? 1 : sf_get_threads(), ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias,
                    &ext, NULL);
}

int sf_sgemm_own_serial(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                        const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    return own_gemm(1, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL, NULL, NULL);
}

#endif
