/* ops_attention.c — multi-head scaled dot-product attention with grouped-query heads (sf_attention).
 *
 * What it does: softmax(q k^T / sqrt(HD) + mask) v per (batch, query head), with query head h reading
 * kv head h / (NH/NKV); causal (decoder) or bidirectional (encoder) visibility; an optional key padding
 * mask; rows that see no key output zeros. The probabilities P (B, NH, T, T) are materialised and saved
 * for backward, which is the standard O(T^2 * HD)-per-head pass:
 *   dV += P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dP * P)),  dQ += dS K * scale,  dK += dS^T Q * scale.
 * Blocks of 64 query rows only touch the keys they can see: causal blocks stop at their last row (about
 * half the work) and keys after the last real one of a right-padded sequence are skipped.
 * Sequences of up to 64 tokens, or up to 256 in whole vectors, whose head size is whole vectors (a
 * training step's T = 32 to 256) take attention_short.c instead, one head at a time: its
 * register-blocked panels read q, k, v in place where the GEMM path packs every operand of every product
 * (gpt2-4m's attention per layer, forward + backward, on the Zen 5 machine: 32 x 32 tokens 1.27 -> 0.89
 * ms, 8 x 256 6.4 -> 5.2 ms; the same softmax, the sums in another order).
 * The raw kernels take base pointers plus row strides for q, k and v (and their gradients), so a fused
 * q|k|v buffer (B, T, (NH + 2 NKV) * HD) can be passed as three offset pointers with one stride.
 * Packed sequences (sf_attention_packed): the rows hold S sequences of their own lengths one after
 * another (a padded batch's real tokens), described by a table of {first row, length, offset of the
 * probabilities}; every kernel walks sequence descriptors, a padded batch being B sequences of T rows,
 * and each sequence takes the short or the blocked path by its own length.
 *
 * What it does not: no KV cache / incremental decoding, no online-softmax (flash) tiling, no dropout on
 * the probabilities, no ALiBi / relative-position bias (RoPE is applied beforehand, see ops_embed.c), no
 * per-query masks beyond causal + key padding (and the packed sequences' bounds).
 *
 * Threading: forward is parallel over (sequence, h); backward is parallel over (sequence, h) with
 * per-(sequence, h) partial dK/dV buffers reduced afterwards row by row when several query heads share
 * a kv head (GQA), so no two threads ever write the same gradient element. The per-head products run on
 * the calling thread (sf_sgemm_serial: the own AVX-512 kernel from 2^15 multiply-adds, else OpenBLAS,
 * single-threaded inside the region), one (sequence, h) per thread; keys and values are read in place
 * as transposed operands (an explicit copy first cost ~4 % of a gpt2-4m SIFT step). The own kernel made
 * attention 13-15 % faster at T = 64 and 256 on the Intel AVX-512 machine (OpenBLAS runs AVX2 kernels
 * there). Earlier,
 * on 2 AMD EPYC cores (AVX2), OpenBLAS per head had beaten the register-tiled loop used before: gpt2-4m
 * attention (NH=4, HD=64) per training step, forward + backward, T=32 B=32 27 -> 16 ms, T=256 B=8
 * 152 -> 74 ms (that loop had itself beaten the pthread OpenBLAS, which ran each call on a second
 * thread pool, oversubscribing the cores). The softmax uses a vectorisable exp (`exp_core`).
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "gemm.h"
#include "ops.h"
#include "attention_short.h"
#include "simd_math.h"

/* ------------------------------------------------------------------------------------------------ */
/* Raw kernels (not in ops.h yet; declared here so tests can `extern` them).                         */
/*   q (B, T, *) row stride q_rs, head h at columns [h*HD, (h+1)*HD)                                 */
/*   k, v (B, T, *) row strides k_rs, v_rs, kv head j at columns [j*HD, (j+1)*HD)                    */
/*   out, dout (B, T, NH*HD) contiguous; att (B, NH, T, T); key_mask (B, T) f32, nonzero = real, or NULL */
/*   dq, dk, dv have the same layout (and strides) as q, k, v.                                       */
/* ------------------------------------------------------------------------------------------------ */
void sf_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                          const float *key_mask, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD, int64_t q_rs,
                          int64_t k_rs, int64_t v_rs, int causal);
/* Scratch for sf_attention_backward: per thread a dP block (64, T), or attention_short.c's work space
 * (none up to 64 tokens); plus, when NH != NKV, per-(b, h) partial dK and dV (B, NH, T, HD) each. The
 * kernel uses as many threads as the n_scratch floats it is given allow (at least one). */
int64_t sf_attention_backward_scratch(int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD);
void sf_attention_backward(float *dq, float *dk, float *dv, float *scratch, int64_t n_scratch, const float *dout,
                           const float *q, const float *k, const float *v, const float *att, const float *key_mask,
                           int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD, int64_t q_rs, int64_t k_rs,
                           int64_t v_rs, int causal);
/* Packed sequences (sf_attention_packed): seqs (S, 3) {row0, len, att0} per sequence; q, k, v, out rows
 * [row0, row0 + len) are its tokens, att + att0 its heads' (NH, len, len) probabilities; no key mask. */
void sf_attention_forward_packed(float *out, float *att, const float *q, const float *k, const float *v,
                                 const int64_t *seqs, int64_t S, int64_t NH, int64_t NKV, int64_t HD, int64_t q_rs,
                                 int64_t k_rs, int64_t v_rs, int causal);
int64_t sf_attention_backward_scratch_packed(const int64_t *seqs, int64_t S, int64_t NH, int64_t NKV, int64_t HD);
void sf_attention_backward_packed(float *dq, float *dk, float *dv, float *scratch, int64_t n_scratch,
                                  const float *dout, const float *q, const float *k, const float *v, const float *att,
                                  const int64_t *seqs, int64_t S, int64_t NH, int64_t NKV, int64_t HD, int64_t q_rs,
                                  int64_t k_rs, int64_t v_rs, int causal);
void sf_attention_forward_ref(float *out, float *att, const float *q, const float *k, const float *v,
                              const float *key_mask, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD,
                              int64_t q_rs, int64_t k_rs, int64_t v_rs, int causal);
void sf_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                               const float *v, const float *att, const float *key_mask, int64_t B, int64_t T,
                               int64_t NH, int64_t NKV, int64_t HD, int64_t q_rs, int64_t k_rs, int64_t v_rs,
                               int causal);

#define ATT_BLK 64 /* query rows per block */

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* C (M, N) = or += alpha * A . B, with A(i, t) = A[i*ars + t*acs] (A with row stride ars and acs = 1,
 * or A^T with ars = 1) and B (K, N) row stride ldb: one product on the calling thread (sf_sgemm_serial),
 * one (batch, head) per thread. */
static void mm(float *C, int64_t ldc, const float *A, int64_t ars, int64_t acs, const float *Bm, int64_t ldb,
               int64_t M, int64_t N, int64_t K, float alpha, int accumulate) {
    if (M <= 0 || N <= 0) return;
    const int trans_a = acs != 1; /* A^T stored: (K, M) with row stride acs */
    sf_sgemm_serial(trans_a, 0, M, N, K, alpha, A, trans_a ? acs : ars, Bm, ldb, accumulate ? 1.0f : 0.0f, C, ldc);
}

/* C (M, N) = alpha * A . B^T, A (M, K) row stride lda, B stored (N, K) row stride ldb (a head's keys or
 * values, read in place: the product's pack transposes them on the way, no copy of ours). */
static void mm_bt(float *C, int64_t ldc, const float *A, int64_t lda, const float *Bm, int64_t ldb, int64_t M,
                  int64_t N, int64_t K, float alpha) {
    if (M <= 0 || N <= 0) return;
    sf_sgemm_serial(0, 1, M, N, K, alpha, A, lda, Bm, ldb, 0.0f, C, ldc);
}

/* sum of x[j] * y[j] over [0, n), 16 lanes */
static float dot_f32(const float *x, const float *y, int64_t n) {
    float a[16] = {0};
    const int64_t n16 = n - n % 16;
    for (int64_t j = 0; j < n16; j += 16) {
#pragma omp simd
        for (int l = 0; l < 16; l++) a[l] += x[j + l] * y[j + l];
    }
    float r = 0.0f;
    for (int l = 0; l < 16; l++) r += a[l];
    for (int64_t j = n16; j < n; j++) r += x[j] * y[j];
    return r;
}

/* Softmax in place over row[0, nvis) restricted to real keys (mask (nvis) nonzero, or NULL = all);
 * zeros everywhere else in row[0, T); an all-zero row when no key is visible. */
static void softmax_row(float *row, int64_t nvis, int64_t T, const float *mask) {
    if (mask) {
#pragma omp simd
        for (int64_t j = 0; j < nvis; j++) row[j] = mask[j] != 0.0f ? row[j] : -INFINITY;
    }
    const float mx = sf_max_f32(row, nvis);
    if (mx == -INFINITY) { /* sees no key */
        memset(row, 0, (size_t)T * sizeof *row);
        return;
    }
    sf_exp_shifted(row, row, mx, nvis);
    if (mask) {
#pragma omp simd
        for (int64_t j = 0; j < nvis; j++) row[j] = mask[j] != 0.0f ? row[j] : 0.0f;
    }
    const float inv = 1.0f / sf_sum_f32(row, nvis);
#pragma omp simd
    for (int64_t j = 0; j < nvis; j++) row[j] *= inv;
    for (int64_t j = nvis; j < T; j++) row[j] = 0.0f;
}

/* Threads whose per-thread scratch of `per` floats fits in n floats: in [1, omp_get_max_threads()]. */
static int threads_for(int64_t n, int64_t per) {
    int t = omp_get_max_threads();
    if (per > 0 && n / per < t) t = (int)(n / per);
    return t < 1 ? 1 : t;
}

/* One sequence of a batch: its first row in q, k, v, out (and the key mask), its length, and where its
 * heads' probabilities (NH of (len, len)) start in att. A padded batch is B sequences of T rows; a packed
 * one (sf_attention_packed) lists them in an i64 (S, 3) table of {row0, len, att0}. */
typedef struct {
    int64_t row0, len, att0;
} att_seq;

static inline att_seq seq_at(const int64_t *seqs, int64_t s, int64_t T, int64_t NH) {
    if (seqs) return (att_seq){seqs[3 * s], seqs[3 * s + 1], seqs[3 * s + 2]};
    return (att_seq){s * T, T, s * NH * T * T};
}

/* The sequence holding a row: row / T for a padded batch, else by bisection of the first rows. */
static inline int64_t seq_of_row(const int64_t *seqs, int64_t S, int64_t T, int64_t row) {
    if (!seqs) return row / T;
    int64_t lo = 0, hi = S - 1; /* seqs[3 lo] <= row < seqs[3 (hi + 1)] */
    while (lo < hi) {
        const int64_t mid = (lo + hi + 1) / 2;
        if (seqs[3 * mid] <= row) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* The forward over S sequences (seqs NULL: S = B padded sequences of T rows), parallel over (s, h). */
static void forward_seqs(float *out, float *att, const float *q, const float *k, const float *v, const float *key_mask,
                         const int64_t *seqs, int64_t S, int64_t T, int64_t NH, int64_t NKV, int64_t HD, int64_t q_rs,
                         int64_t k_rs, int64_t v_rs, int causal) {
    const int64_t G = NH / NKV, C = NH * HD;
    const float scale = 1.0f / sqrtf((float)HD);
#pragma omp parallel
    {
#pragma omp for schedule(dynamic, 1)
        for (int64_t sh = 0; sh < S * NH; sh++) {
            const int64_t h = sh % NH, kvh = h / G;
            const att_seq sq = seq_at(seqs, sh / NH, T, NH);
            const int64_t L = sq.len;
            const float *qh = q + sq.row0 * q_rs + h * HD;          // (L, HD) stride q_rs
            const float *kh = k + sq.row0 * k_rs + kvh * HD;        // (L, HD) stride k_rs
            const float *vh = v + sq.row0 * v_rs + kvh * HD;        // (L, HD) stride v_rs
            float *oh = out + sq.row0 * C + h * HD;                 // (L, HD) stride C
            float *ah = att + sq.att0 + h * L * L;                  // (L, L)
            const float *mb = key_mask ? key_mask + sq.row0 : NULL; // (L)
            if (sf_attention_short_fits(L, HD)) {
                sf_attention_short_forward_head(oh, C, ah, qh, q_rs, kh, k_rs, vh, v_rs, mb, L, HD, scale, causal);
                continue;
            }
            const int64_t kend = sf_key_end(mb, L);
            for (int64_t i0 = 0; i0 < L; i0 += ATT_BLK) {
                const int64_t i1 = min64(L, i0 + ATT_BLK), M = i1 - i0, ncol = causal ? min64(i1, kend) : kend;
                mm_bt(ah + i0 * L, L, qh + i0 * q_rs, q_rs, kh, k_rs, M, ncol, HD, scale); // S = Q K^T (M, ncol)
                for (int64_t i = i0; i < i1; i++) softmax_row(ah + i * L, min64(causal ? i + 1 : L, kend), L, mb);
                mm(oh + i0 * C, C, ah + i0 * L, L, 1, vh, v_rs, M, HD, ncol, 1.0f, 0); // O = P V (M, HD)
            }
        }
    }
}

void sf_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                          const float *key_mask, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD, int64_t q_rs,
                          int64_t k_rs, int64_t v_rs, int causal) {
    forward_seqs(out, att, q, k, v, key_mask, NULL, B, T, NH, NKV, HD, q_rs, k_rs, v_rs, causal);
}

void sf_attention_forward_packed(float *out, float *att, const float *q, const float *k, const float *v,
                                 const int64_t *seqs, int64_t S, int64_t NH, int64_t NKV, int64_t HD, int64_t q_rs,
                                 int64_t k_rs, int64_t v_rs, int causal) {
    forward_seqs(out, att, q, k, v, NULL, seqs, S, 0, NH, NKV, HD, q_rs, k_rs, v_rs, causal);
}

/* Per-thread floats of the backward: dP (ATT_BLK, T) for the blocked path, attention_short.c's work space
 * for its own. */
static int64_t per_thread_floats(int64_t T, int64_t HD) {
    return sf_attention_short_fits(T, HD) ? sf_attention_short_work(T, HD) : ATT_BLK * T;
}

/* The per-thread floats the most demanding sequence of a packed table (S, 3) needs: not always the
 * longest's (a blocked path's 64 rows of 257 take less than the short path's 256 tokens). */
static int64_t most_work(const int64_t *seqs, int64_t S, int64_t HD) {
    int64_t m = 0;
    for (int64_t s = 0; s < S; s++) {
        const int64_t w = per_thread_floats(seqs[3 * s + 1], HD);
        m = w > m ? w : m;
    }
    return m;
}

/* Scratch floats of forward_seqs's backward: per thread `per`; plus, when NH != NKV, per-(sequence,
 * head) partial dK and dV over all N rows. */
static int64_t backward_scratch(int64_t per, int64_t N, int64_t NH, int64_t NKV, int64_t HD) {
    int64_t n = (int64_t)omp_get_max_threads() * per;
    if (NH != NKV) n += 2 * N * NH * HD;                        // partial dK, dV (N, NH, HD) by sequence
    return n;
}

int64_t sf_attention_backward_scratch(int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD) {
    return backward_scratch(per_thread_floats(T, HD), B * T, NH, NKV, HD);
}

int64_t sf_attention_backward_scratch_packed(const int64_t *seqs, int64_t S, int64_t NH, int64_t NKV, int64_t HD) {
    int64_t N = 0;
    for (int64_t s = 0; s < S; s++) N += seqs[3 * s + 1];
    return backward_scratch(most_work(seqs, S, HD), N, NH, NKV, HD);
}

/* The backward over S sequences (seqs NULL: S = B padded sequences of T rows), parallel over (s, h);
 * N rows in all. With GQA, sequence s's head h keeps its partial dK / dV at ((row0 * NH + h * len) * HD)
 * of pk / pv, so no two (s, h) write the same floats; they are then summed row by row. */
static void backward_seqs(float *dq, float *dk, float *dv, float *scratch, int64_t n_scratch, const float *dout,
                          const float *q, const float *k, const float *v, const float *att, const float *key_mask,
                          const int64_t *seqs, int64_t S, int64_t T, int64_t N, int64_t NH, int64_t NKV, int64_t HD,
                          int64_t q_rs, int64_t k_rs, int64_t v_rs, int causal) {
    if (!dq && !dk && !dv) return;
    const int64_t G = NH / NKV, C = NH * HD, n_part = G > 1 ? 2 * N * NH * HD : 0;
    const float scale = 1.0f / sqrtf((float)HD);
    float *pk = G > 1 ? scratch : NULL;        // (N, NH, HD) partial dK, by sequence then head
    float *pv = G > 1 ? pk + N * NH * HD : NULL; // (N, NH, HD) partial dV
    float *per_thread = scratch + n_part;      // (nthr, per)
    const int64_t per = seqs ? most_work(seqs, S, HD) : per_thread_floats(T, HD);
    const int nthr = threads_for(n_scratch - n_part, per);

#pragma omp parallel num_threads(nthr)
    {
        float *dP = per_thread + (int64_t)omp_get_thread_num() * per; // (ATT_BLK, L), or the short path's work
#pragma omp for schedule(dynamic, 1)
        for (int64_t sh = 0; sh < S * NH; sh++) {
            const int64_t h = sh % NH, kvh = h / G;
            const att_seq sq = seq_at(seqs, sh / NH, T, NH);
            const int64_t L = sq.len;
            const float *qh = q + sq.row0 * q_rs + h * HD;   // (L, HD) stride q_rs
            const float *kh = k + sq.row0 * k_rs + kvh * HD; // (L, HD) stride k_rs
            const float *vh = v + sq.row0 * v_rs + kvh * HD; // (L, HD) stride v_rs
            const float *doh = dout + sq.row0 * C + h * HD;  // (L, HD) stride C
            const float *ah = att + sq.att0 + h * L * L;     // (L, L)
            const float *mb = key_mask ? key_mask + sq.row0 : NULL;
            float *dqh = dq ? dq + sq.row0 * q_rs + h * HD : NULL; // (L, HD) stride q_rs
            float *dkh = NULL, *dvh = NULL;                  // (L, HD) stride ldk / ldv
            int64_t ldk = k_rs, ldv = v_rs;
            if (G > 1) { /* private partials, reduced below */
                const int64_t at = (sq.row0 * NH + h * L) * HD;
                ldk = ldv = HD;
                if (dk) memset(dkh = pk + at, 0, (size_t)(L * HD) * sizeof(float));
                if (dv) memset(dvh = pv + at, 0, (size_t)(L * HD) * sizeof(float));
            } else { /* this (s, h) is the only reader of its kv head */
                if (dk) dkh = dk + sq.row0 * k_rs + kvh * HD;
                if (dv) dvh = dv + sq.row0 * v_rs + kvh * HD;
            }
            if (sf_attention_short_fits(L, HD)) {
                sf_attention_short_backward_head(dqh, q_rs, dkh, ldk, dvh, ldv, doh, C, qh, q_rs, kh, k_rs, vh, v_rs,
                                                 ah, mb, L, HD, scale, causal, dP);
                continue;
            }
            const int64_t kend = sf_key_end(mb, L);
            for (int64_t i0 = 0; i0 < L; i0 += ATT_BLK) {
                /* keys [0, ncol) hold every nonzero P of this block, as in forward */
                const int64_t i1 = min64(L, i0 + ATT_BLK), M = i1 - i0, ncol = causal ? min64(i1, kend) : kend;
                if (ncol == 0) continue; /* no row of the block sees a key */
                const float *P = ah + i0 * L; // (M, ncol) stride L
                if (dvh) mm(dvh, ldv, P, 1, L, doh + i0 * C, C, ncol, HD, M, 1.0f, 1); // dV += P^T dO
                if (!dqh && !dkh) continue;
                mm_bt(dP, L, doh + i0 * C, C, vh, v_rs, M, ncol, HD, 1.0f); // dP = dO V^T (M, ncol)
                for (int64_t r = 0; r < M; r++) {                         // dS = P (dP - rowsum(P dP))
                    const float *pr = P + r * L;
                    float *dr = dP + r * L;
                    const float dsum = dot_f32(pr, dr, ncol);
#pragma omp simd
                    for (int64_t j = 0; j < ncol; j++) dr[j] = pr[j] * (dr[j] - dsum);
                }
                if (dqh) mm(dqh + i0 * q_rs, q_rs, dP, L, 1, kh, k_rs, M, HD, ncol, scale, 1);   // dQ += dS K
                if (dkh) mm(dkh, ldk, dP, 1, L, qh + i0 * q_rs, q_rs, ncol, HD, M, scale, 1);    // dK += dS^T Q
            }
        }
        if (G > 1 && (dk || dv)) {
            /* dk/dv[row, kvh] += sum of the partials of the G query heads of kv head kvh, row by row */
#pragma omp for schedule(static)
            for (int64_t row = 0; row < N; row++) {
                const att_seq sq = seq_at(seqs, seq_of_row(seqs, S, T, row), T, NH);
                const int64_t t = row - sq.row0;
                for (int64_t kvh = 0; kvh < NKV; kvh++)
                    for (int64_t g = 0; g < G; g++) {
                        const int64_t src = (sq.row0 * NH + (kvh * G + g) * sq.len + t) * HD;
                        if (dk) {
                            float *d = dk + row * k_rs + kvh * HD;
                            for (int64_t c = 0; c < HD; c++) d[c] += pk[src + c];
                        }
                        if (dv) {
                            float *d = dv + row * v_rs + kvh * HD;
                            for (int64_t c = 0; c < HD; c++) d[c] += pv[src + c];
                        }
                    }
            }
        }
    }
}

void sf_attention_backward(float *dq, float *dk, float *dv, float *scratch, int64_t n_scratch, const float *dout,
                           const float *q, const float *k, const float *v, const float *att, const float *key_mask,
                           int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD, int64_t q_rs, int64_t k_rs,
                           int64_t v_rs, int causal) {
    backward_seqs(dq, dk, dv, scratch, n_scratch, dout, q, k, v, att, key_mask, NULL, B, T, B * T, NH, NKV, HD, q_rs,
                  k_rs, v_rs, causal);
}

void sf_attention_backward_packed(float *dq, float *dk, float *dv, float *scratch, int64_t n_scratch,
                                  const float *dout, const float *q, const float *k, const float *v, const float *att,
                                  const int64_t *seqs, int64_t S, int64_t NH, int64_t NKV, int64_t HD, int64_t q_rs,
                                  int64_t k_rs, int64_t v_rs, int causal) {
    int64_t N = 0;
    for (int64_t s = 0; s < S; s++) N += seqs[3 * s + 1];
    backward_seqs(dq, dk, dv, scratch, n_scratch, dout, q, k, v, att, NULL, seqs, S, 0, N, NH, NKV, HD, q_rs, k_rs,
                  v_rs, causal);
}

/* ---- reference: plain loops, double accumulation, one (b, h, i) at a time --------------------------- */

void sf_attention_forward_ref(float *out, float *att, const float *q, const float *k, const float *v,
                              const float *key_mask, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD,
                              int64_t q_rs, int64_t k_rs, int64_t v_rs, int causal) {
    const int64_t G = NH / NKV, C = NH * HD;
    const double scale = 1.0 / sqrt((double)HD);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < NH; h++)
            for (int64_t i = 0; i < T; i++) {
                const float *qi = q + (b * T + i) * q_rs + h * HD;
                float *p = att + ((b * NH + h) * T + i) * T; // (T)
                double mx = -INFINITY;
                for (int64_t j = 0; j < T; j++) {
                    int vis = (!causal || j <= i) && (!key_mask || key_mask[b * T + j] != 0.0f);
                    double s = 0;
                    const float *kj = k + (b * T + j) * k_rs + (h / G) * HD;
                    for (int64_t c = 0; c < HD; c++) s += (double)qi[c] * kj[c];
                    p[j] = vis ? (float)(s * scale) : -INFINITY;
                    if (vis && s * scale > mx) mx = s * scale;
                }
                double sum = 0;
                for (int64_t j = 0; j < T; j++) sum += p[j] == -INFINITY ? 0.0 : exp(p[j] - mx);
                for (int64_t j = 0; j < T; j++) p[j] = (p[j] == -INFINITY) ? 0.0f : (float)(exp(p[j] - mx) / sum);
                float *o = out + (b * T + i) * C + h * HD;
                for (int64_t c = 0; c < HD; c++) {
                    double s = 0;
                    for (int64_t j = 0; j < T; j++) s += (double)p[j] * v[(b * T + j) * v_rs + (h / G) * HD + c];
                    o[c] = (float)s;
                }
            }
}

void sf_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                               const float *v, const float *att, const float *key_mask, int64_t B, int64_t T,
                               int64_t NH, int64_t NKV, int64_t HD, int64_t q_rs, int64_t k_rs, int64_t v_rs,
                               int causal) {
    (void)key_mask; /* the reference reads visibility from P alone (zero P = unseen key) */
    (void)causal;
    const int64_t G = NH / NKV, C = NH * HD;
    const double scale = 1.0 / sqrt((double)HD);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < NH; h++)
            for (int64_t i = 0; i < T; i++) {
                const int64_t kv = (h / G) * HD;
                const float *p = att + ((b * NH + h) * T + i) * T; // (T)
                const float *doi = dout + (b * T + i) * C + h * HD;
                double D = 0; /* rowsum(P * dP) */
                for (int64_t j = 0; j < T; j++) {
                    double dpj = 0;
                    for (int64_t c = 0; c < HD; c++) dpj += (double)doi[c] * v[(b * T + j) * v_rs + kv + c];
                    D += p[j] * dpj;
                }
                for (int64_t j = 0; j < T; j++) {
                    double dpj = 0;
                    for (int64_t c = 0; c < HD; c++) dpj += (double)doi[c] * v[(b * T + j) * v_rs + kv + c];
                    double ds = p[j] * (dpj - D);
                    for (int64_t c = 0; c < HD; c++) {
                        if (dq) dq[(b * T + i) * q_rs + h * HD + c] += (float)(ds * scale * k[(b * T + j) * k_rs + kv + c]);
                        if (dk) dk[(b * T + j) * k_rs + kv + c] += (float)(ds * scale * q[(b * T + i) * q_rs + h * HD + c]);
                        if (dv) dv[(b * T + j) * v_rs + kv + c] += p[j] * doi[c];
                    }
                }
            }
}

/* ---- tape op ------------------------------------------------------------------------------------ */

/* The rows an attention node runs over: a padded batch (B, T) with an optional 0/1 key mask, or packed
 * sequences (seqs (S, 3), sf_attention_layout). Read back from a node by node_rows. */
typedef struct {
    const float *mask; /* (B, T) or NULL */
    const int64_t *seqs; /* (S, 3) or NULL */
    int64_t S;
} att_rows;

/* n->saved = {att, [mask (B, T) f32 | seqs (S, 3) i64]} */
static att_rows node_rows(const sf_node *n) {
    att_rows r = {NULL, NULL, 0};
    if (n->n_saved < 2) return r;
    sf_tensor *t = n->saved[1];
    if (t->dtype == SF_I64) r.seqs = sf_tensor_data(t), r.S = t->shape[0];
    else r.mask = sf_f32(t);
    return r;
}

static int64_t scratch_floats(att_rows r, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD) {
    return r.seqs ? sf_attention_backward_scratch_packed(r.seqs, r.S, NH, NKV, HD)
                  : sf_attention_backward_scratch(B, T, NH, NKV, HD);
}

/* The backward of q, k, v read with row strides q_rs, k_rs, v_rs (dq, dk, dv alike), over a node's rows. */
static sf_status backward_rows(sf_graph *g, sf_node *n, float *dq, float *dk, float *dv, const float *q,
                               const float *k, const float *v, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                               int64_t HD, int64_t q_rs, int64_t k_rs, int64_t v_rs) {
    const att_rows r = node_rows(n);
    int64_t ns = scratch_floats(r, B, T, NH, NKV, HD);
    sf_tensor *scratch = sf_graph_scratch(g, 1, &ns); // (ns), back to the pool right after
    if (!scratch) return sf_fail(SF_ERR_NOMEM, "attention backward: out of memory for %lld scratch floats", (long long)ns);
    const float *dout = sf_f32(sf_graph_grad(g, n->out)), *att = sf_f32(n->saved[0]);
    const int causal = (int)n->i[2];
    if (r.seqs)
        sf_attention_backward_packed(dq, dk, dv, sf_f32(scratch), ns, dout, q, k, v, att, r.seqs, r.S, NH, NKV, HD,
                                     q_rs, k_rs, v_rs, causal);
    else
        sf_attention_backward(dq, dk, dv, sf_f32(scratch), ns, dout, q, k, v, att, r.mask, B, T, NH, NKV, HD, q_rs,
                              k_rs, v_rs, causal);
    sf_graph_recycle(g, scratch);
    return SF_OK;
}

/* n->in = {q, k, v}; n->saved = {att, [mask | seqs]}; n->i = {NH, NKV, causal}. */
static sf_status attention_backward(sf_graph *g, sf_node *n) {
    sf_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
    sf_tensor *tdq = sf_graph_grad(g, q), *tdk = sf_graph_grad(g, k), *tdv = sf_graph_grad(g, v);
    if (!tdq && !tdk && !tdv) return SF_OK;
    const int64_t B = q->shape[0], T = q->shape[1], NH = n->i[0], NKV = n->i[1], HD = q->shape[2] / NH;
    return backward_rows(g, n, tdq ? sf_f32(tdq) : NULL, tdk ? sf_f32(tdk) : NULL, tdv ? sf_f32(tdv) : NULL, sf_f32(q),
                         sf_f32(k), sf_f32(v), B, T, NH, NKV, HD, NH * HD, NKV * HD, NKV * HD);
}

/* Fused layout: one input qkv (B, T, W = (NH + 2 NKV) HD) holding q | k | v in each row. */
static sf_status attention_qkv_backward(sf_graph *g, sf_node *n) {
    sf_tensor *qkv = n->in[0];
    sf_tensor *tg = sf_graph_grad(g, qkv);
    if (!tg) return SF_OK;
    const int64_t B = qkv->shape[0], T = qkv->shape[1], NH = n->i[0], NKV = n->i[1], HD = n->i[3];
    const int64_t W = (NH + 2 * NKV) * HD;
    float *d = sf_f32(tg);
    const float *x = sf_f32(qkv);
    return backward_rows(g, n, d, d + NH * HD, d + (NH + NKV) * HD, x, x + NH * HD, x + (NH + NKV) * HD, B, T, NH, NKV,
                         HD, W, W, W);
}

/* (B, T) 0/1 f32 copy of a key mask (saved for backward), or NULL with an error. */
static sf_tensor *mask_copy(sf_graph *g, sf_tensor *key_mask, int64_t B, int64_t T) {
    char sk[64];
    if (key_mask->dtype != SF_I32 && key_mask->dtype != SF_I64 && key_mask->dtype != SF_F32)
        return sf_fail_null(SF_ERR_ARG, "attention: key_mask must be i32, i64 or f32, got %s", sf_dtype_name(key_mask->dtype));
    if (key_mask->ndim != 2 || key_mask->shape[0] != B || key_mask->shape[1] != T)
        return sf_fail_null(SF_ERR_ARG, "attention: key_mask must be (B, T) = (%lld, %lld), got %s", (long long)B,
                            (long long)T, sf_shape_str(key_mask, sk, sizeof sk));
    int64_t ms[2] = {B, T};
    sf_tensor *mask = sf_graph_tensor(g, 2, ms);
    if (!mask) return NULL;
    for (int64_t i = 0; i < B * T; i++)
        sf_f32(mask)[i] = (key_mask->dtype == SF_F32 ? sf_f32(key_mask)[i] != 0.0f : sf_index_at(key_mask, i) != 0) ? 1.0f : 0.0f;
    return mask;
}

sf_tensor *sf_attention_layout(sf_graph *g, const int64_t *lens, int64_t S, int64_t NH) {
    if (S < 1 || NH < 1) return sf_fail_null(SF_ERR_ARG, "attention_layout: need at least one sequence and one head");
    int64_t shape[2] = {S, 3};
    sf_tensor *t = sf_graph_tensor_dtype(g, SF_I64, 2, shape);
    if (!t) return NULL;
    int64_t *p = sf_tensor_data(t), row = 0, at = 0;
    for (int64_t s = 0; s < S; s++) {
        if (lens[s] < 1)
            return sf_fail_null(SF_ERR_ARG, "attention_layout: sequence %lld has length %lld (need >= 1)", (long long)s,
                                (long long)lens[s]);
        p[3 * s] = row, p[3 * s + 1] = lens[s], p[3 * s + 2] = at;
        row += lens[s];
        at += NH * lens[s] * lens[s];
    }
    return t;
}

/* The rows of an attention call: checks the key mask or packed layout against x (B, T, *), sets *r and
 * *att_floats (the probabilities' size) and returns the tensor to save beside them (the mask's 0/1 copy,
 * the layout, or NULL for neither); *failed on an error. */
static sf_tensor *rows_of(sf_graph *g, const char *who, sf_tensor *x, sf_tensor *key_mask, sf_tensor *seqs,
                          int64_t NH, att_rows *r, int64_t *att_floats, int *failed) {
    const int64_t B = x->shape[0], T = x->shape[1];
    *r = (att_rows){NULL, NULL, 0};
    *failed = 0;
    *att_floats = B * NH * T * T;
    if (seqs) {
        char ss[64];
        if (seqs->dtype != SF_I64 || seqs->ndim != 2 || seqs->shape[1] != 3) {
            *failed = 1;
            return sf_fail_null(SF_ERR_ARG,
                                "%s: the packed layout must be an i64 (S, 3) tensor (sf_attention_layout), got %s", who,
                                sf_shape_str(seqs, ss, sizeof ss));
        }
        const int64_t *p = sf_tensor_data(seqs), S = seqs->shape[0];
        int64_t row = 0, at = 0;
        for (int64_t s = 0; s < S; s++) {
            if (p[3 * s] != row || p[3 * s + 1] < 1 || p[3 * s + 2] != at) {
                *failed = 1;
                return sf_fail_null(SF_ERR_ARG, "%s: packed layout row %lld is not {row0, len >= 1, att0} in order",
                                    who, (long long)s);
            }
            row += p[3 * s + 1];
            at += NH * p[3 * s + 1] * p[3 * s + 1];
        }
        if (row != B * T) {
            *failed = 1;
            return sf_fail_null(SF_ERR_ARG, "%s: the packed sequences hold %lld rows, the input %lld", who,
                                (long long)row, (long long)(B * T));
        }
        r->seqs = p, r->S = S;
        *att_floats = at;
        return seqs;
    }
    if (!key_mask) return NULL;
    sf_tensor *mask = mask_copy(g, key_mask, B, T);
    if (!mask) *failed = 1;
    else r->mask = sf_f32(mask);
    return mask;
}

/* The probabilities' buffer: (B, NH, T, T) for a padded batch, (na) for packed sequences (each one's
 * (NH, len, len) in turn). */
static sf_tensor *probabilities(sf_graph *g, sf_tensor *seqs, int64_t na, int64_t B, int64_t NH, int64_t T) {
    int64_t as[4] = {B, NH, T, T};
    return seqs ? sf_graph_tensor(g, 1, &na) : sf_graph_tensor(g, 4, as);
}

static void forward_rows(att_rows r, float *out, float *att, const float *q, const float *k, const float *v, int64_t B,
                         int64_t T, int64_t NH, int64_t NKV, int64_t HD, int64_t q_rs, int64_t k_rs, int64_t v_rs,
                         int causal) {
    if (r.seqs) sf_attention_forward_packed(out, att, q, k, v, r.seqs, r.S, NH, NKV, HD, q_rs, k_rs, v_rs, causal);
    else sf_attention_forward(out, att, q, k, v, r.mask, B, T, NH, NKV, HD, q_rs, k_rs, v_rs, causal);
}

static sf_tensor *attention_qkv(sf_graph *g, sf_tensor *qkv, sf_tensor *key_mask, sf_tensor *seqs, int64_t NH,
                                int64_t NKV, int64_t HD, int causal) {
    char sq[64];
    if (sf_check_f32(qkv, "attention_qkv", "qkv")) return NULL;
    if (NH <= 0 || NKV <= 0 || NH % NKV != 0 || HD <= 0)
        return sf_fail_null(SF_ERR_ARG, "attention_qkv: need NH (%lld) a positive multiple of NKV (%lld) and HD > 0",
                            (long long)NH, (long long)NKV);
    const int64_t W = (NH + 2 * NKV) * HD;
    if (qkv->ndim != 3 || qkv->shape[2] != W)
        return sf_fail_null(SF_ERR_ARG, "attention_qkv: qkv must be (B, T, (NH + 2 NKV) HD = %lld), got %s", (long long)W,
                            sf_shape_str(qkv, sq, sizeof sq));
    const int64_t B = qkv->shape[0], T = qkv->shape[1];
    att_rows r;
    int64_t na;
    int failed;
    sf_tensor *keep = rows_of(g, "attention_qkv", qkv, key_mask, seqs, NH, &r, &na, &failed);
    if (failed) return NULL;
    int64_t os[3] = {B, T, NH * HD};
    sf_tensor *att = probabilities(g, seqs, na, B, NH, T);
    sf_tensor *out = att ? sf_graph_tensor(g, 3, os) : NULL; // (B, T, NH*HD)
    if (!out) return NULL;
    const float *x = sf_f32(qkv);
    forward_rows(r, sf_f32(out), sf_f32(att), x, x + NH * HD, x + (NH + NKV) * HD, B, T, NH, NKV, HD, W, W, W, causal);
    sf_tensor *in[1] = {qkv};
    sf_node *n = sf_graph_record(g, "attention_qkv", attention_qkv_backward, out, in, 1);
    if (n) {
        n->i[0] = NH;
        n->i[1] = NKV;
        n->i[2] = causal;
        n->i[3] = HD;
        if (sf_node_save(n, att) || (keep && sf_node_save(n, keep))) return NULL;
    }
    return out;
}

sf_tensor *sf_attention_qkv(sf_graph *g, sf_tensor *qkv, sf_tensor *key_mask, int64_t NH, int64_t NKV, int64_t HD,
                            int causal) {
    return attention_qkv(g, qkv, key_mask, NULL, NH, NKV, HD, causal);
}

sf_tensor *sf_attention_qkv_packed(sf_graph *g, sf_tensor *qkv, sf_tensor *seqs, int64_t NH, int64_t NKV, int64_t HD,
                                   int causal) {
    if (!seqs) return sf_fail_null(SF_ERR_ARG, "attention_qkv_packed: the packed layout is required");
    return attention_qkv(g, qkv, NULL, seqs, NH, NKV, HD, causal);
}

static sf_tensor *attention(sf_graph *g, sf_tensor *q, sf_tensor *k, sf_tensor *v, sf_tensor *key_mask,
                            sf_tensor *seqs, int64_t NH, int64_t NKV, int causal) {
    if (sf_check_f32(q, "attention", "q") || sf_check_f32(k, "attention", "k") || sf_check_f32(v, "attention", "v"))
        return NULL;
    char sq[64], sk[64], sv[64];
    if (q->ndim != 3) return sf_fail_null(SF_ERR_ARG, "attention: q must be (B, T, NH*HD), got %s", sf_shape_str(q, sq, sizeof sq));
    if (NH <= 0 || NKV <= 0 || NH % NKV != 0)
        return sf_fail_null(SF_ERR_ARG, "attention: NH (%lld) must be a positive multiple of NKV (%lld)", (long long)NH,
                            (long long)NKV);
    const int64_t B = q->shape[0], T = q->shape[1];
    if (q->shape[2] % NH != 0 || q->shape[2] == 0)
        return sf_fail_null(SF_ERR_ARG, "attention: q's last dim %lld is not a positive multiple of NH = %lld",
                            (long long)q->shape[2], (long long)NH);
    const int64_t HD = q->shape[2] / NH;
    if (k->ndim != 3 || k->shape[0] != B || k->shape[1] != T || k->shape[2] != NKV * HD ||
        !sf_tensor_same_shape(k, v))
        return sf_fail_null(SF_ERR_ARG, "attention: k %s and v %s must both be (B, T, NKV*HD) = (%lld, %lld, %lld) for q %s",
                            sf_shape_str(k, sk, sizeof sk), sf_shape_str(v, sv, sizeof sv), (long long)B, (long long)T,
                            (long long)(NKV * HD), sf_shape_str(q, sq, sizeof sq));
    att_rows r;
    int64_t na;
    int failed;
    sf_tensor *keep = rows_of(g, "attention", q, key_mask, seqs, NH, &r, &na, &failed);
    if (failed) return NULL;
    sf_tensor *att = probabilities(g, seqs, na, B, NH, T);
    sf_tensor *out = att ? sf_graph_tensor_like(g, q) : NULL; // (B, T, NH*HD)
    if (!out) return NULL;
    forward_rows(r, sf_f32(out), sf_f32(att), sf_f32(q), sf_f32(k), sf_f32(v), B, T, NH, NKV, HD, NH * HD, NKV * HD,
                 NKV * HD, causal);
    sf_tensor *in[3] = {q, k, v};
    sf_node *n = sf_graph_record(g, "attention", attention_backward, out, in, 3);
    if (n) {
        n->i[0] = NH;
        n->i[1] = NKV;
        n->i[2] = causal;
        if (sf_node_save(n, att) || (keep && sf_node_save(n, keep))) return NULL;
    }
    return out;
}

sf_tensor *sf_attention(sf_graph *g, sf_tensor *q, sf_tensor *k, sf_tensor *v, sf_tensor *key_mask,
                        int64_t NH, int64_t NKV, int causal) {
    return attention(g, q, k, v, key_mask, NULL, NH, NKV, causal);
}

sf_tensor *sf_attention_packed(sf_graph *g, sf_tensor *q, sf_tensor *k, sf_tensor *v, sf_tensor *seqs, int64_t NH,
                               int64_t NKV, int causal) {
    if (!seqs) return sf_fail_null(SF_ERR_ARG, "attention_packed: the packed layout is required");
    return attention(g, q, k, v, NULL, seqs, NH, NKV, causal);
}
