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
 *
 * What it does not: no KV cache / incremental decoding, no online-softmax (flash) tiling, no dropout on
 * the probabilities, no ALiBi / relative-position bias (RoPE is applied beforehand, see ops_embed.c), no
 * fused-qkv tape op (yet), no per-query masks beyond causal + key padding.
 *
 * Threading: forward is parallel over (b, h); backward is parallel over (b, h) with per-(b, h) partial
 * dK/dV buffers reduced afterwards when several query heads share a kv head (GQA), so no two threads
 * ever write the same gradient element. The per-head products run on the calling thread
 * (sf_sgemm_serial: the own AVX-512 kernel from 2^15 multiply-adds, else OpenBLAS, single-threaded
 * inside the region), one (b, h) per thread; keys and values are read in place as transposed operands
 * (an explicit copy first cost ~4 % of a gpt2-4m SIFT step). The own kernel made attention 13-15 %
 * faster at T = 64 and 256 on the Intel AVX-512 machine (OpenBLAS runs AVX2 kernels there). Earlier,
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

void sf_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                          const float *key_mask, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD, int64_t q_rs,
                          int64_t k_rs, int64_t v_rs, int causal) {
    const int64_t G = NH / NKV, C = NH * HD;
    const float scale = 1.0f / sqrtf((float)HD);
    const int short_path = sf_attention_short_fits(T, HD);
#pragma omp parallel
    {
#pragma omp for schedule(dynamic, 1)
        for (int64_t bh = 0; bh < B * NH; bh++) {
            const int64_t b = bh / NH, h = bh % NH, kvh = h / G;
            const float *qh = q + b * T * q_rs + h * HD;          // (T, HD) stride q_rs
            const float *kh = k + b * T * k_rs + kvh * HD;        // (T, HD) stride k_rs
            const float *vh = v + b * T * v_rs + kvh * HD;        // (T, HD) stride v_rs
            float *oh = out + b * T * C + h * HD;                 // (T, HD) stride C
            float *ah = att + bh * T * T;                         // (T, T)
            const float *mb = key_mask ? key_mask + b * T : NULL; // (T)
            if (short_path) {
                sf_attention_short_forward_head(oh, C, ah, qh, q_rs, kh, k_rs, vh, v_rs, mb, T, HD, scale, causal);
                continue;
            }
            const int64_t kend = sf_key_end(mb, T);
            for (int64_t i0 = 0; i0 < T; i0 += ATT_BLK) {
                const int64_t i1 = min64(T, i0 + ATT_BLK), M = i1 - i0, ncol = causal ? min64(i1, kend) : kend;
                mm_bt(ah + i0 * T, T, qh + i0 * q_rs, q_rs, kh, k_rs, M, ncol, HD, scale); // S = Q K^T (M, ncol)
                for (int64_t i = i0; i < i1; i++) softmax_row(ah + i * T, min64(causal ? i + 1 : T, kend), T, mb);
                mm(oh + i0 * C, C, ah + i0 * T, T, 1, vh, v_rs, M, HD, ncol, 1.0f, 0); // O = P V (M, HD)
            }
        }
    }
}

/* Per-thread floats of the backward: dP (ATT_BLK, T) for the blocked path, attention_short.c's work space
 * for its own. */
static int64_t per_thread_floats(int64_t T, int64_t HD) {
    return sf_attention_short_fits(T, HD) ? sf_attention_short_work(T, HD) : ATT_BLK * T;
}

int64_t sf_attention_backward_scratch(int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD) {
    int64_t n = (int64_t)omp_get_max_threads() * per_thread_floats(T, HD);
    if (NH != NKV) n += 2 * B * NH * T * HD;                    // partial dK, dV (B, NH, T, HD)
    return n;
}

void sf_attention_backward(float *dq, float *dk, float *dv, float *scratch, int64_t n_scratch, const float *dout,
                           const float *q, const float *k, const float *v, const float *att, const float *key_mask,
                           int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD, int64_t q_rs, int64_t k_rs,
                           int64_t v_rs, int causal) {
    if (!dq && !dk && !dv) return;
    const int64_t G = NH / NKV, C = NH * HD, n_part = G > 1 ? 2 * B * NH * T * HD : 0;
    const float scale = 1.0f / sqrtf((float)HD);
    float *pk = G > 1 ? scratch : NULL;              // (B, NH, T, HD) partial dK
    float *pv = G > 1 ? pk + B * NH * T * HD : NULL; // (B, NH, T, HD) partial dV
    float *per_thread = scratch + n_part;            // (nthr, per)
    const int64_t per = per_thread_floats(T, HD);
    const int nthr = threads_for(n_scratch - n_part, per);
    const int short_path = sf_attention_short_fits(T, HD);

#pragma omp parallel num_threads(nthr)
    {
        float *dP = per_thread + (int64_t)omp_get_thread_num() * per; // (ATT_BLK, T), or the short path's work
#pragma omp for schedule(dynamic, 1)
        for (int64_t bh = 0; bh < B * NH; bh++) {
            const int64_t b = bh / NH, h = bh % NH, kvh = h / G;
            const float *qh = q + b * T * q_rs + h * HD;   // (T, HD) stride q_rs
            const float *kh = k + b * T * k_rs + kvh * HD; // (T, HD) stride k_rs
            const float *vh = v + b * T * v_rs + kvh * HD; // (T, HD) stride v_rs
            const float *doh = dout + b * T * C + h * HD;  // (T, HD) stride C
            const float *ah = att + bh * T * T;            // (T, T)
            float *dqh = dq ? dq + b * T * q_rs + h * HD : NULL; // (T, HD) stride q_rs
            float *dkh = NULL, *dvh = NULL;                // (T, HD) stride ldk / ldv
            int64_t ldk = k_rs, ldv = v_rs;
            if (G > 1) { /* private partials, reduced below */
                ldk = ldv = HD;
                if (dk) memset(dkh = pk + bh * T * HD, 0, (size_t)(T * HD) * sizeof(float));
                if (dv) memset(dvh = pv + bh * T * HD, 0, (size_t)(T * HD) * sizeof(float));
            } else { /* this (b, h) is the only reader of its kv head */
                if (dk) dkh = dk + b * T * k_rs + kvh * HD;
                if (dv) dvh = dv + b * T * v_rs + kvh * HD;
            }
            if (short_path) {
                sf_attention_short_backward_head(dqh, q_rs, dkh, ldk, dvh, ldv, doh, C, qh, q_rs, kh, k_rs, vh, v_rs,
                                                 ah, key_mask ? key_mask + b * T : NULL, T, HD, scale, causal, dP);
                continue;
            }
            const int64_t kend = sf_key_end(key_mask ? key_mask + b * T : NULL, T);
            for (int64_t i0 = 0; i0 < T; i0 += ATT_BLK) {
                /* keys [0, ncol) hold every nonzero P of this block, as in forward */
                const int64_t i1 = min64(T, i0 + ATT_BLK), M = i1 - i0, ncol = causal ? min64(i1, kend) : kend;
                if (ncol == 0) continue; /* no row of the block sees a key */
                const float *P = ah + i0 * T; // (M, ncol) stride T
                if (dvh) mm(dvh, ldv, P, 1, T, doh + i0 * C, C, ncol, HD, M, 1.0f, 1); // dV += P^T dO
                if (!dqh && !dkh) continue;
                mm_bt(dP, T, doh + i0 * C, C, vh, v_rs, M, ncol, HD, 1.0f); // dP = dO V^T (M, ncol)
                for (int64_t r = 0; r < M; r++) {                         // dS = P (dP - rowsum(P dP))
                    const float *pr = P + r * T;
                    float *dr = dP + r * T;
                    const float dsum = dot_f32(pr, dr, ncol);
#pragma omp simd
                    for (int64_t j = 0; j < ncol; j++) dr[j] = pr[j] * (dr[j] - dsum);
                }
                if (dqh) mm(dqh + i0 * q_rs, q_rs, dP, T, 1, kh, k_rs, M, HD, ncol, scale, 1);   // dQ += dS K
                if (dkh) mm(dkh, ldk, dP, 1, T, qh + i0 * q_rs, q_rs, ncol, HD, M, scale, 1);    // dK += dS^T Q
            }
        }
        if (G > 1 && (dk || dv)) {
            /* dk/dv[b, t, kvh] += sum of the partials of the G query heads of kv head kvh */
#pragma omp for schedule(static)
            for (int64_t bt = 0; bt < B * T; bt++) {
                const int64_t b = bt / T, t = bt % T;
                for (int64_t kvh = 0; kvh < NKV; kvh++)
                    for (int64_t g = 0; g < G; g++) {
                        const int64_t src = ((b * NH + kvh * G + g) * T + t) * HD;
                        if (dk) {
                            float *d = dk + bt * k_rs + kvh * HD;
                            for (int64_t c = 0; c < HD; c++) d[c] += pk[src + c];
                        }
                        if (dv) {
                            float *d = dv + bt * v_rs + kvh * HD;
                            for (int64_t c = 0; c < HD; c++) d[c] += pv[src + c];
                        }
                    }
            }
        }
    }
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

/* n->in = {q, k, v}; n->saved = {att (B, NH, T, T), [0/1 mask (B, T)]}; n->i = {NH, NKV, causal}. */
static sf_status attention_backward(sf_graph *g, sf_node *n) {
    sf_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *att = n->saved[0];
    const float *mask = n->n_saved > 1 ? sf_f32(n->saved[1]) : NULL; // (B, T)
    sf_tensor *tdq = sf_graph_grad(g, q), *tdk = sf_graph_grad(g, k), *tdv = sf_graph_grad(g, v);
    if (!tdq && !tdk && !tdv) return SF_OK;
    const int64_t B = q->shape[0], T = q->shape[1], NH = n->i[0], NKV = n->i[1], HD = q->shape[2] / NH;
    int64_t ns = sf_attention_backward_scratch(B, T, NH, NKV, HD);
    sf_tensor *scratch = sf_graph_scratch(g, 1, &ns); // (ns), back to the pool right after
    if (!scratch) return sf_fail(SF_ERR_NOMEM, "attention backward: out of memory for %lld scratch floats", (long long)ns);
    sf_attention_backward(tdq ? sf_f32(tdq) : NULL, tdk ? sf_f32(tdk) : NULL, tdv ? sf_f32(tdv) : NULL,
                          sf_f32(scratch), ns, sf_f32(sf_graph_grad(g, n->out)), sf_f32(q), sf_f32(k), sf_f32(v),
                          sf_f32(att), mask, B, T, NH, NKV, HD, NH * HD, NKV * HD, NKV * HD, (int)n->i[2]);
    sf_graph_recycle(g, scratch);
    return SF_OK;
}

/* Fused layout: one input qkv (B, T, W = (NH + 2 NKV) HD) holding q | k | v in each row. */
static sf_status attention_qkv_backward(sf_graph *g, sf_node *n) {
    sf_tensor *qkv = n->in[0], *att = n->saved[0];
    const float *mask = n->n_saved > 1 ? sf_f32(n->saved[1]) : NULL; // (B, T)
    sf_tensor *tg = sf_graph_grad(g, qkv);
    if (!tg) return SF_OK;
    const int64_t B = qkv->shape[0], T = qkv->shape[1], NH = n->i[0], NKV = n->i[1], HD = n->i[3];
    const int64_t W = (NH + 2 * NKV) * HD;
    int64_t ns = sf_attention_backward_scratch(B, T, NH, NKV, HD);
    sf_tensor *scratch = sf_graph_scratch(g, 1, &ns);
    if (!scratch) return sf_fail(SF_ERR_NOMEM, "attention backward: out of memory for %lld scratch floats", (long long)ns);
    float *d = sf_f32(tg);
    const float *x = sf_f32(qkv);
    sf_attention_backward(d, d + NH * HD, d + (NH + NKV) * HD, sf_f32(scratch), ns, sf_f32(sf_graph_grad(g, n->out)),
                          x, x + NH * HD, x + (NH + NKV) * HD, sf_f32(att), mask, B, T, NH, NKV, HD, W, W, W,
                          (int)n->i[2]);
    sf_graph_recycle(g, scratch);
    return SF_OK;
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

sf_tensor *sf_attention_qkv(sf_graph *g, sf_tensor *qkv, sf_tensor *key_mask, int64_t NH, int64_t NKV, int64_t HD,
                            int causal) {
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
    sf_tensor *mask = NULL;
    if (key_mask && !(mask = mask_copy(g, key_mask, B, T))) return NULL;
    int64_t as[4] = {B, NH, T, T}, os[3] = {B, T, NH * HD};
    sf_tensor *att = sf_graph_tensor(g, 4, as);                 // (B, NH, T, T)
    sf_tensor *out = att ? sf_graph_tensor(g, 3, os) : NULL;     // (B, T, NH*HD)
    if (!out) return NULL;
    const float *x = sf_f32(qkv);
    sf_attention_forward(sf_f32(out), sf_f32(att), x, x + NH * HD, x + (NH + NKV) * HD, mask ? sf_f32(mask) : NULL, B,
                         T, NH, NKV, HD, W, W, W, causal);
    sf_tensor *in[1] = {qkv};
    sf_node *n = sf_graph_record(g, "attention_qkv", attention_qkv_backward, out, in, 1);
    if (n) {
        n->i[0] = NH;
        n->i[1] = NKV;
        n->i[2] = causal;
        n->i[3] = HD;
        if (sf_node_save(n, att) || (mask && sf_node_save(n, mask))) return NULL;
    }
    return out;
}

sf_tensor *sf_attention(sf_graph *g, sf_tensor *q, sf_tensor *k, sf_tensor *v, sf_tensor *key_mask,
                        int64_t NH, int64_t NKV, int causal) {
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
    sf_tensor *mask = NULL; // (B, T) 0/1 copy of key_mask (saved for backward)
    if (key_mask && !(mask = mask_copy(g, key_mask, B, T))) return NULL;
    int64_t as[4] = {B, NH, T, T};
    sf_tensor *att = sf_graph_tensor(g, 4, as);               // (B, NH, T, T)
    sf_tensor *out = att ? sf_graph_tensor_like(g, q) : NULL; // (B, T, NH*HD)
    if (!out) return NULL;
    sf_attention_forward(sf_f32(out), sf_f32(att), sf_f32(q), sf_f32(k), sf_f32(v), mask ? sf_f32(mask) : NULL, B, T,
                         NH, NKV, HD, NH * HD, NKV * HD, NKV * HD, causal);
    sf_tensor *in[3] = {q, k, v};
    sf_node *n = sf_graph_record(g, "attention", attention_backward, out, in, 3);
    if (n) {
        n->i[0] = NH;
        n->i[1] = NKV;
        n->i[2] = causal;
        if (sf_node_save(n, att) || (mask && sf_node_save(n, mask))) return NULL;
    }
    return out;
}
