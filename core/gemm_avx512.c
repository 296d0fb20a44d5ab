/* gemm_avx512.c — sift's own single-precision GEMM for AVX-512 CPUs: C = alpha op(A) op(B) + beta C,
 * row-major, any transposition. Compiled to a stub (sf_sgemm_own returns 0) when the build does not
 * target AVX-512; gemm.c routes around it then.
 *
 * The classic Goto/BLIS scheme: op(B) is packed KC x NC at a time into column slivers of NR = 32
 * (Bp: [NC/NR][KC][NR]), op(A) MC x KC at a time into row slivers of MR = 12 (Ap: [MC/MR][KC][MR]),
 * zero-padded at the edges, and a 12 x 32 register-blocked micro-kernel (24 zmm accumulators, two
 * vector loads of B and 12 broadcasts of A per k) adds each sliver pair into C with masked stores at
 * the right and bottom edges; an optional bias row is added in the same stores (the first K block's).
 * Packs read whole cache lines: row-major sources row by row, transposed ones 16 x 16 at a time through
 * a register transpose. The operands of a training step come from memory, not cache, so B's slivers
 * are packed just before their first use, and each C tile is prefetched before its k loop. A share of
 * few rows (A's K block within 1 MB: a training step's B * T token rows) takes the whole-A path
 * instead: A packed once per K block, each B sliver packed and used by every row sliver at once, the
 * next sliver's lines prefetched into L2 a few at a time from inside the micro-kernel's k loop.
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

#include <stddef.h>

#if defined(__AVX512F__)

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "threads.h"

enum { MR = 12, NR = 32, KC = 768, MC = 96, NC = 3072 };
/* A share whose whole K block of op(A) (m x min(K, KC)) fits in A_WHOLE floats (1 MB, half of a 2 MB L2)
 * takes the whole-A path (gemm_whole_a): the training step's products over B * T = 256 token rows. */
enum { A_WHOLE = 256 * 1024 };

typedef struct {
    float *a, *b;  /* Ap (MC * KC) and Bp (NC * KC), 64-byte aligned, kept across calls */
    float *a_whole; /* Ap for the whole-A path: (A_WHOLE + MR * KC), slivers of MR rows padded */
} pack_buffers;

/* Each thread's own pack buffers (thread-specific data, freed when the thread ends): OpenMP's pool
 * threads keep theirs from call to call, and concurrent callers never share one. */
static pthread_key_t g_key;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

static void free_buffers(void *p) {
    pack_buffers *b = p;
    free(b->a);
    free(b->b);
    free(b->a_whole);
    free(b);
}

static void make_key(void) {
    if (pthread_key_create(&g_key, free_buffers) != 0) g_key = (pthread_key_t)-1;
}

static pack_buffers *thread_buffers(void) {
    pthread_once(&g_key_once, make_key);
    if (g_key == (pthread_key_t)-1) return NULL;
    pack_buffers *p = pthread_getspecific(g_key);
    if (p) return p;
    p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->a = aligned_alloc(64, (size_t)MC * KC * sizeof(float));
    p->b = aligned_alloc(64, (size_t)NC * KC * sizeof(float));
    p->a_whole = aligned_alloc(64, ((size_t)A_WHOLE + MR * KC) * sizeof(float));
    if (!p->a || !p->b || !p->a_whole || pthread_setspecific(g_key, p) != 0) {
        free_buffers(p);
        return NULL;
    }
    return p;
}

/* Lane masks of a 32-column sliver's two vectors when only its first nr (<= NR) columns are real. */
static inline __mmask16 lanes_lo(int64_t nr) { return nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1); }
static inline __mmask16 lanes_hi(int64_t nr) { return nr > 16 ? lanes_lo(nr - 16) : (__mmask16)0; }

/* Where op(X)'s element (row, col) sits in X stored with row stride ld, transposed (t) or not. */
static inline const float *op_at(const float *X, int64_t ld, int t, int64_t row, int64_t col) {
    return t ? X + col * ld + row : X + row * ld + col;
}

/* Loads `rows` (<= 16) rows of 16 consecutive floats (the first `kn` of each, the rest 0; rows beyond
 * `rows` are 0) from X (row stride ld) into r, and transposes them in registers: afterwards r[j] holds
 * element j of every row, i.e. r[j][i] = X[i * ld + j]. The pack of a transposed operand reads whole
 * cache lines this way, 16 values a load, instead of gathering one value per row. */
static inline void load_transpose16(__m512 r[16], const float *X, int64_t ld, int rows, int kn) {
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

/* One sliver of Bp: dst[k][j] = op(B)(k, j) for k < kc, j < NR (0 beyond nr); op(B) starts at B (already
 * offset to the sliver's first row and column). */
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
        load_transpose16(r, B + k0, ldb, lo, kn);
        for (int j = 0; j < kn; j++) _mm512_store_ps(dst + (k0 + j) * NR, r[j]);
        load_transpose16(r, B + 16 * ldb + k0, ldb, hi, kn);
        for (int j = 0; j < kn; j++) _mm512_store_ps(dst + (k0 + j) * NR + 16, r[j]);
    }
}

/* Ap[s][k][i] = op(A)(s*MR + i, k) for k < kc, i < MR (0 beyond mc). */
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
            load_transpose16(r, A + s * lda + k0, lda, mr, kn);
            for (int j = 0; j < kn; j++) _mm512_mask_storeu_ps(dst + (k0 + j) * MR, mr_lanes, r[j]);
        }
    }
}

/* Cache lines to fetch into L2 while a micro-kernel runs: `count` lines starting at line `first` of a
 * pattern of rows (row r at base + r * ld, row_len floats, lines_per_row lines each, the last one at
 * the row's last float), one line every kc / count steps of the k loop so the requests trickle out
 * instead of filling the line-fill buffers at once. */
typedef struct {
    const float *base;
    int64_t ld, row_len, lines_per_row, first, count;
} prefetch_plan;

/* C (mr <= MR, nr <= NR; row stride ldc) = alpha * Ap-sliver . Bp-sliver + beta * C (+ bias (nr), added to
 * every row, when not NULL); pf (or NULL): lines to prefetch meanwhile. check (or NULL): every stored
 * value times 0 is added into it, which leaves it 0 unless some stored value is Inf or NaN. */
static void micro_kernel(int64_t kc, const float *restrict ap, const float *restrict bp, float *restrict c, int64_t ldc,
                         int mr, int nr, float alpha, float beta, const float *restrict bias, const prefetch_plan *pf,
                         __m512 *check) {
    __m512 acc[MR][2];
    /* the tile of C is read or written after the k loop: fetch it now, so its lines arrive meanwhile */
    for (int i = 0; i < mr; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + nr - 1), _MM_HINT_T0);
    }
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    const int64_t n_pf = pf ? pf->count : 0, spacing = n_pf > 0 && kc / n_pf > 1 ? kc / n_pf : 1;
    int64_t countdown = n_pf > 0 ? spacing : kc + 1, issued = 0;
    int64_t pf_row = pf ? pf->first / pf->lines_per_row : 0, pf_line = pf ? pf->first % pf->lines_per_row : 0;
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++) {
        if (--countdown == 0) {
            countdown = spacing;
            if (issued < n_pf) {
                const int64_t off = pf_line * 16 < pf->row_len ? pf_line * 16 : pf->row_len - 1;
                _mm_prefetch((const char *)(pf->base + pf_row * pf->ld + off), _MM_HINT_T1);
                if (++pf_line == pf->lines_per_row) pf_line = 0, pf_row++;
                issued++;
            }
        }
        const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            const __m512 a = _mm512_set1_ps(ap[i]);
            acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
        }
        ap += MR;
        bp += NR;
    }
    const __mmask16 m0 = lanes_lo(nr), m1 = lanes_hi(nr);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    const __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    const __m512 bias1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
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

/* The whole-A path, for a share of few rows (the training step's B * T = 256 tokens): op(A)'s K block is
 * packed whole (it stays in L2), then each 32-column sliver of op(B) is packed and used at once by every
 * row sliver, so B is read from memory once and never re-read from a packed panel. While a sliver's
 * micro-kernels run, they prefetch the next sliver's source lines into L2, a few per call (measured on
 * operands from memory at the GPT-2 124M step's shapes: 245 -> 273 GFLOP/s over the blocked scheme). Not
 * for a row-major B whose row stride is a multiple of 4 KB: its rows then fall into 1/64 of L2's sets
 * and the prefetched lines evict one another and A (measured 2 % slower there). */
static void gemm_whole_a(pack_buffers *bufs, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
                         const float *bias, __m512 *check) {
    const int64_t calls = (M + MR - 1) / MR; /* micro-kernel calls per sliver */
    for (int64_t pc = 0; pc < K; pc += KC) {
        const int64_t kc = K - pc < KC ? K - pc : KC;
        const float beta_here = pc == 0 ? beta : 1.0f; /* later K blocks add onto the first's result */
        const float *bias_here = pc == 0 ? bias : NULL;
        for (int64_t ic = 0; ic < M; ic += MC) /* Ap: [ceil(M / MR)][kc][MR] */
            pack_a(bufs->a_whole + ic * kc, op_at(A, lda, ta, ic, pc), lda, ta, M - ic < MC ? M - ic : MC, kc);
        for (int64_t jr = 0; jr < N; jr += NR) {
            const int nr = (int)(N - jr < NR ? N - jr : NR);
            const float *sliver = op_at(B, ldb, tb, pc, jr);
            pack_b_sliver(bufs->b, sliver, ldb, tb, kc, nr);
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
                micro_kernel(kc, bufs->a_whole + ir * kc, bufs->b, C + ir * ldc + jr, ldc, mr, nr, alpha, beta_here,
                             bias_here ? bias_here + jr : NULL, mine.count > 0 ? &mine : NULL, check);
            }
        }
    }
}

/* The whole blocked scheme on one thread's share: C (M, N) = alpha op(A) op(B) + beta C (+ bias (N)).
 * B's panel is packed one sliver at a time during the first row block, each just before its first use, so
 * its loads from memory interleave with the arithmetic instead of stalling a whole-panel pack (a large
 * model's weights are never in cache when their product starts). No software prefetch of the next
 * sliver: with the operands on huge pages (core/tensor.c) the hardware prefetchers keep up, and explicit
 * prefetches measured 3-4 % slower, cold or hot. */
static void gemm_serial(pack_buffers *bufs, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
                        const float *bias, __m512 *check) {
    for (int64_t jc = 0; jc < N; jc += NC) {
        const int64_t nc = N - jc < NC ? N - jc : NC;
        for (int64_t pc = 0; pc < K; pc += KC) {
            const int64_t kc = K - pc < KC ? K - pc : KC;
            /* later K blocks add onto the first's result, which holds the bias */
            const float beta_here = pc == 0 ? beta : 1.0f;
            const float *bias_here = pc == 0 ? bias : NULL;
            for (int64_t ic = 0; ic < M; ic += MC) {
                const int64_t mc = M - ic < MC ? M - ic : MC;
                pack_a(bufs->a, op_at(A, lda, ta, ic, pc), lda, ta, mc, kc);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    const int nr = (int)(nc - jr < NR ? nc - jr : NR);
                    if (ic == 0) pack_b_sliver(bufs->b + jr * kc, op_at(B, ldb, tb, pc, jc + jr), ldb, tb, kc, nr);
                    for (int64_t ir = 0; ir < mc; ir += MR) {
                        const int mr = (int)(mc - ir < MR ? mc - ir : MR);
                        micro_kernel(kc, bufs->a + ir * kc, bufs->b + jr * kc, C + (ic + ir) * ldc + jc + jr, ldc, mr,
                                     nr, alpha, beta_here, bias_here ? bias_here + jc + jr : NULL, NULL, check);
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

/* The product on nt threads (1: the calling thread alone, no parallel region). */
static int own_gemm(int nt, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                    const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const float *bias,
                    int *all_finite) {
    if (M <= 0 || N <= 0 || K <= 0) return 0;
    /* split the longer side into contiguous shares, in whole micro-tiles */
    const int by_rows = M >= N;
    const int64_t tile = by_rows ? MR : NR, len = by_rows ? M : N;
    const int64_t tiles = (len + tile - 1) / tile;
    if (nt > tiles) nt = (int)tiles;
    if (nt < 1) nt = 1;
    int unverified = 0; /* some share stored a non-finite value, or went where nobody checks */
#pragma omp parallel num_threads(nt) if (nt > 1) reduction(| : unverified)
    {
        const int t = omp_get_thread_num();
        const int64_t t0 = tiles * t / nt * tile, t1 = tiles * (t + 1) / nt * tile;
        const int64_t lo = t0, hi = t1 < len ? t1 : len;
        const int64_t m = by_rows ? hi - lo : M, n = by_rows ? N : hi - lo; /* this share: C (m, n) */
        const float *a = by_rows ? (ta ? A + lo : A + lo * lda) : A, *b = by_rows ? B : (tb ? B + lo * ldb : B + lo);
        float *c = by_rows ? C + lo * ldc : C + lo;
        const float *bias_share = bias && !by_rows ? bias + lo : bias;
        pack_buffers *bufs = hi > lo ? thread_buffers() : NULL;
        __m512 check = _mm512_setzero_ps();
        if (bufs && m * (K < KC ? K : KC) <= A_WHOLE)
            gemm_whole_a(bufs, ta, tb, m, n, K, alpha, a, lda, b, ldb, beta, c, ldc, bias_share,
                         all_finite ? &check : NULL);
        else if (bufs)
            gemm_serial(bufs, ta, tb, m, n, K, alpha, a, lda, b, ldb, beta, c, ldc, bias_share,
                        all_finite ? &check : NULL);
        else if (hi > lo) { /* no memory for this thread's pack buffers: OpenBLAS does its share */
            serial_fallback(ta, tb, m, n, K, alpha, a, lda, b, ldb, beta, c, ldc, bias_share);
            unverified = 1;
        }
        if (_mm512_reduce_add_ps(check) != 0.0f) unverified = 1; /* NaN compares unequal too */
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
                    all_finite);
}

int sf_sgemm_own_serial(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                        const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    return own_gemm(1, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL, NULL);
}

#else /* no AVX-512 in this build */

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

#endif
