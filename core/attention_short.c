/* attention_short.c — one (batch, head) of attention for sequences of up to SF_ATT_SHORT_T (256) tokens,
 * forward and backward, with every product done by register-blocked loops that read their operands in
 * place ("panels").
 *
 * Why: at a training step's T = 32 or 64 a head's products are 32 x 32 x 64: through the general GEMM
 * each call packs both operands (transposing three of the four), pays its call overhead and fills 12-row
 * micro-tiles with 8 rows of work, and gpt2-4m's attention ran at ~70 GFLOP/s of a 380 GFLOP/s machine.
 * Here one product is a panel: rows of C held in vector registers (RG rows x NV vectors), each step of
 * its sum adding a broadcast of one A value per row times NV vectors of one row of B. A broadcast can
 * come from any address, so A is read where it lies, transposed or not (P^T and dS^T are just a row
 * stride of 1 and a column stride of T); B's rows must be contiguous, which they are for V, K, Q and
 * dO; only K^T and V^T (for S = Q K^T and dP = dO V^T) are copied, each once per head, into T columns
 * padded with zeros to whole vectors.
 *   forward:  S = scale Q K^T, softmax per row (causal, key padding), P saved; O = P V
 *   backward: dV += P^T dO; dP = dO V^T; dS = P (dP - rowsum(P dP)); dQ += scale dS K; dK += scale dS^T Q
 * The T-wide products (S, dP) run in column blocks of WIDE_NV vectors; causal ones leave out the rows a
 * block's keys are hidden from, and the HD-wide ones the keys a row group cannot see (and, for P^T and
 * dS^T, the queries before it). Up to 64 tokens any T works (scores in a padded local buffer); beyond,
 * T must be whole vectors, the scores go straight into P's rows and the HD-wide panels run in slices
 * of HD_NV vectors (B's rows then come from L2, and more rows share each one).
 * Vector width follows the build (16 floats with AVX-512, 8 with AVX, 4 otherwise) through GCC's
 * generic vectors (simd_vec.h); the accumulators are budgeted to the register file (24 of 32, or 12 of
 * 16).
 *
 * What it does not do: longer or (past 64) uneven sequences, head sizes that are not whole vectors or
 * above 8 vectors (sf_attention_short_fits says; ops_attention.c's blocked GEMM path takes the rest),
 * threading (the caller runs one head per thread), or allocate: its buffers are on the stack (48 KB up
 * to 64 tokens, K^T's up to 128 KB beyond) or, for a long backward, the caller's work space.
 */
#include "attention_short.h"

#include <string.h>

#include "gemm.h"
#include "simd_act.h"
#include "simd_math.h"
#include "simd_transpose.h"
#include "simd_vec.h"

#define NACC (VW == 16 ? 24 : 12) /* accumulators a panel may hold in registers (of 32 or 16) */
#define MAX_NV 8 /* vectors per panel row at most (HD up to 8 * VW) */
#define MAX_HD (MAX_NV * VW)
#define WIDE_NV 4 /* vectors per column block of the T-wide products (S, dP) */
#define SHORT_T 64 /* up to here any T (a local, padded score buffer); beyond, T must be whole vectors */
#define MAX_TV (SF_ATT_SHORT_T / VW) /* vectors in a row of T at most */


int sf_attention_short_fits(int64_t T, int64_t HD) {
    return T >= 1 && T <= SF_ATT_SHORT_T && (T <= SHORT_T || T % VW == 0) && HD >= VW && HD % VW == 0 &&
           HD <= MAX_HD;
}

static inline int64_t padded(int64_t T) { return (T + VW - 1) / VW * VW; }

/* Past SHORT_T the backward's V^T and dS live in the caller's work space; below, on the stack (aligned:
 * with the work space unaligned, as from a plain malloc, the backward at T = 64 lost a fifth). */
int64_t sf_attention_short_work(int64_t T, int64_t HD) { return T > SHORT_T ? (HD + T) * padded(T) : 0; }

/* Which part of the sum a row group takes: all t in [0, tend); only t < its last row + 1 (A lower
 * triangular: a causal row sees keys up to itself); only t >= its first row (A upper triangular: P^T,
 * dS^T, where key j is seen by queries from j on). */
enum { SPAN_ALL = 0, SPAN_LOWER = 1, SPAN_UPPER = 2 };

/* C (rows, NV * VW; row stride ldc) = or += alpha * sum over t of A(r, t) * B[t] (NV vectors from B + t * ldb),
 * A(r, t) = A[r * ars + t * acs]. Rows in groups of RG held in registers; a group's rows past `rows`
 * repeat its last row (computed, never stored). */
#define DEFINE_PANEL(NV)                                                                                        \
    static void panel_##NV(float *C, int64_t ldc, const float *A, int64_t ars, int64_t acs, const float *Bm,       \
                           int64_t ldb, int64_t rows, int64_t tend, int span, float alpha, int accumulate) {    \
        enum { RG = NACC / NV < 12 ? NACC / NV : 12 };                                                           \
        for (int64_t r0 = 0; r0 < rows; r0 += RG) {                                                              \
            const int rg = rows - r0 < RG ? (int)(rows - r0) : RG;                                               \
            const int64_t lo = span == SPAN_UPPER ? r0 : 0;                                                      \
            const int64_t hi = span == SPAN_LOWER && r0 + rg < tend ? r0 + rg : tend;                            \
            const float *ar[RG];                                                                                 \
            for (int r = 0; r < RG; r++) ar[r] = A + (r0 + (r < rg ? r : rg - 1)) * ars;                         \
            vf acc[RG][NV];                                                                                      \
            _Pragma("GCC unroll 12") for (int r = 0; r < RG; r++)                                                \
                _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) acc[r][v] = (vf){0};                        \
            for (int64_t t = lo; t < hi; t++) {                                                                  \
                const float *bt = Bm + t * ldb;                                                                  \
                vf b[NV];                                                                                        \
                _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) b[v] = *(const vf *)(bt + v * VW);          \
                _Pragma("GCC unroll 12") for (int r = 0; r < RG; r++) {                                          \
                    const vf a = splat(ar[r][t * acs]);                                                          \
                    _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) acc[r][v] += a * b[v];                  \
                }                                                                                                \
            }                                                                                                    \
            _Pragma("GCC unroll 12") for (int r = 0; r < RG; r++) {                                              \
                if (r >= rg) break;                                                                              \
                _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) {                                           \
                    vf *c = (vf *)(C + (r0 + r) * ldc + v * VW);                                                 \
                    *c = accumulate ? *c + alpha * acc[r][v] : alpha * acc[r][v];                                \
                }                                                                                                \
            }                                                                                                    \
        }                                                                                                        \
    }
DEFINE_PANEL(1)
DEFINE_PANEL(2)
DEFINE_PANEL(3)
DEFINE_PANEL(4)
DEFINE_PANEL(5)
DEFINE_PANEL(6)
DEFINE_PANEL(7)
DEFINE_PANEL(8)

static void panel(int nv, float *C, int64_t ldc, const float *A, int64_t ars, int64_t acs, const float *Bm, int64_t ldb,
                  int64_t rows, int64_t tend, int span, float alpha, int accumulate) {
    if (rows <= 0) return;
    switch (nv) {
    case 1: panel_1(C, ldc, A, ars, acs, Bm, ldb, rows, tend, span, alpha, accumulate); break;
    case 2: panel_2(C, ldc, A, ars, acs, Bm, ldb, rows, tend, span, alpha, accumulate); break;
    case 3: panel_3(C, ldc, A, ars, acs, Bm, ldb, rows, tend, span, alpha, accumulate); break;
    case 4: panel_4(C, ldc, A, ars, acs, Bm, ldb, rows, tend, span, alpha, accumulate); break;
    case 5: panel_5(C, ldc, A, ars, acs, Bm, ldb, rows, tend, span, alpha, accumulate); break;
    case 6: panel_6(C, ldc, A, ars, acs, Bm, ldb, rows, tend, span, alpha, accumulate); break;
    case 7: panel_7(C, ldc, A, ars, acs, Bm, ldb, rows, tend, span, alpha, accumulate); break;
    default: panel_8(C, ldc, A, ars, acs, Bm, ldb, rows, tend, span, alpha, accumulate); break;
    }
}

/* The same product, HD = nv vectors wide; past SHORT_T rows as slices of HD_NV vectors, so that more rows
 * share each row of B while it is in registers (B's rows then come from L2: 25 % off the backward at
 * T = 256; at T <= 64, where B stays in L1, the whole width measured 5-10 % faster). On AVX2 (12
 * accumulators) narrower slices at T <= 64 measured slower in the backward, so no width rule there. */
#define HD_NV 2
static void panel_hd(int nv, float *C, int64_t ldc, const float *A, int64_t ars, int64_t acs, const float *Bm,
                     int64_t ldb, int64_t rows, int64_t tend, int span, float alpha, int accumulate) {
    const int w = rows > SHORT_T ? HD_NV : nv;
    for (int v0 = 0; v0 < nv; v0 += w)
        panel(nv - v0 < w ? nv - v0 : w, C + v0 * VW, ldc, A, ars, acs, Bm + v0 * VW, ldb, rows, tend, span, alpha,
              accumulate);
}

/* C (rows, ncols; row stride ldc) = alpha A B with A(r, t) = A[r * ars + t] for t < tend, B (tend, ncols)
 * row stride ldb: a T-wide product (S = Q K^T, dP = dO V^T) as panels of WIDE_NV vectors of columns.
 * causal: rows before a column block see none of its keys and are left out of it (their entries there
 * are left unwritten: callers read a row only up to the keys it sees). */
static void panel_wide(float *C, int64_t ldc, const float *A, int64_t ars, const float *Bm, int64_t ldb, int64_t rows,
                       int64_t ncols, int64_t tend, float alpha, int causal) {
    for (int64_t c0 = 0; c0 < ncols; c0 += WIDE_NV * VW) {
        const int nv = (int)((ncols - c0) / VW < WIDE_NV ? (ncols - c0) / VW : WIDE_NV);
        const int64_t r0 = causal ? (c0 < rows ? c0 : rows) : 0;
        panel(nv, C + r0 * ldc + c0, ldc, A + r0 * ars, ars, 1, Bm + c0, ldb, rows - r0, tend, SPAN_ALL, alpha, 0);
    }
}

/* xt (HD, TP) = x (T, HD; row stride ld)^T, columns T..TP zero: VW x VW blocks transposed in registers
 * (simd_transpose.h), plain copies for what they leave. */
static void transpose_padded(float *xt, int64_t TP, const float *x, int64_t ld, int64_t T, int64_t HD) {
    int64_t jv = 0; /* keys [0, jv) done by blocks */
#if VW == 16
    for (; jv < TP; jv += 16)
        for (int64_t c0 = 0; c0 < HD; c0 += 16) {
            __m512 r[16];
            sf_load_transpose16(r, x + jv * ld + c0, ld, T - jv < 16 ? (int)(T - jv) : 16, 16);
            for (int c = 0; c < 16; c++) _mm512_storeu_ps(xt + (c0 + c) * TP + jv, r[c]);
        }
#elif VW == 8
    for (; jv + 8 <= T; jv += 8)
        for (int64_t c0 = 0; c0 < HD; c0 += 8) sf_transpose8x8(xt + c0 * TP + jv, TP, x + jv * ld + c0, ld);
#endif
    for (int64_t c = 0; c < HD; c++) {
        float *dst = xt + c * TP;
        for (int64_t j = jv; j < TP; j++) dst[j] = j < T ? x[j * ld + c] : 0.0f;
    }
}

/* p (T) = softmax of row (TP, whole vectors) over the keys j < nvis with vis[j] != 0 (vis (TP): 1 for a
 * real key, 0 for padding and past T), zero elsewhere and when no key is visible; p may be row. Values
 * of row at keys it does not see are never used (they may be unwritten). The row stays in vectors
 * throughout: no scalar tails at the short, uneven lengths of causal rows. */
static void softmax_row_padded(float *p, const float *row, const float *vis, int64_t nvis, int64_t T, int64_t TP) {
    const int nv = (int)(TP / VW);
    vf x[MAX_TV], seen[MAX_TV], lane;
    for (int l = 0; l < VW; l++) lane[l] = (float)l;
    vf m = splat(-INFINITY);
    for (int v = 0; v < nv; v++) {
        const vi in_reach = lane + (float)(v * VW) < (float)nvis;
        seen[v] = vselect(in_reach, *(const vf *)(vis + v * VW), splat(0.0f));
        x[v] = vselect(seen[v] != 0.0f, *(const vf *)(row + v * VW), splat(-INFINITY));
        m = vselect(x[v] > m, x[v], m);
    }
    const float mx = hmax(m);
    if (mx == -INFINITY) { /* sees no key */
        memset(p, 0, (size_t)T * sizeof *p);
        return;
    }
    vf sum = splat(0.0f);
    for (int v = 0; v < nv; v++) {
        const vf d = x[v] - mx; /* -inf for the unseen: clamped, then zeroed */
        x[v] = vexp_nonpos(vselect(d < -87.0f, splat(-87.0f), d)) * seen[v];
        sum += x[v];
    }
    const float inv = 1.0f / hsum(sum);
    for (int v = 0; v < nv; v++) {
        const vf y = x[v] * inv;
        if ((v + 1) * VW <= T)
            *(vf *)(p + v * VW) = y;
        else
            for (int l = 0; l < VW && v * VW + l < T; l++) p[v * VW + l] = y[l];
    }
}

/* Adds n of a head's (T x keys x HD) products to sf_gemm_macs as ops_attention.c's blocked path counts
 * them, whichever path ran: per block of 64 query rows, the keys up to the last real one (causal: and up
 * to the block's last row). */
static void count_products(int n, int64_t T, int64_t kend, int64_t HD, int causal) {
    int64_t pairs = 0; /* (query, key) pairs of the blocks */
    for (int64_t i0 = 0; i0 < T; i0 += 64) {
        const int64_t i1 = T < i0 + 64 ? T : i0 + 64;
        pairs += (i1 - i0) * (causal && i1 < kend ? i1 : kend);
    }
    for (int k = 0; k < n; k++) sf_gemm_count(pairs, HD, 1);
}

/* One head's forward with its buffers given: kt (HD, TP) for K^T, s (T, TP) for the scores. */
static inline void forward_head(float *kt, float *s, float *oh, int64_t ldo, float *ah, const float *qh, int64_t q_rs,
                                const float *kh, int64_t k_rs, const float *vh, int64_t v_rs, const float *mask,
                                int64_t T, int64_t HD, float scale, int causal) {
    const int64_t TP = padded(T), kend = sf_key_end(mask, T);
    float vis[SF_ATT_SHORT_T] __attribute__((aligned(64))); // (TP) 1 = a real key
    for (int64_t j = 0; j < TP; j++) vis[j] = j < kend && (!mask || mask[j] != 0.0f) ? 1.0f : 0.0f;
    transpose_padded(kt, TP, kh, k_rs, T, HD);
    panel_wide(s, TP, qh, q_rs, kt, TP, T, TP, HD, scale, causal); // S = scale Q K^T
    for (int64_t i = 0; i < T; i++)
        softmax_row_padded(ah + i * T, s + i * TP, vis, causal ? i + 1 : T, T, TP); // P
    panel_hd((int)(HD / VW), oh, ldo, ah, T, 1, vh, v_rs, T, kend, causal ? SPAN_LOWER : SPAN_ALL, 1.0f, 0); // O = P V
    count_products(2, T, kend, HD, causal); /* S and P V */
}

/* Past SHORT_T: K^T in a frame of its own (up to 128 KB, only paid by long sequences; in the short
 * frame it cost T = 32 a tenth), the scores straight into P's rows (whole vectors). */
static __attribute__((noinline)) void forward_head_long(float *oh, int64_t ldo, float *ah, const float *qh,
                                                       int64_t q_rs, const float *kh, int64_t k_rs, const float *vh,
                                                       int64_t v_rs, const float *mask, int64_t T, int64_t HD,
                                                       float scale, int causal) {
    float kt[MAX_HD * SF_ATT_SHORT_T] __attribute__((aligned(64))); // (HD, T) K^T
    forward_head(kt, ah, oh, ldo, ah, qh, q_rs, kh, k_rs, vh, v_rs, mask, T, HD, scale, causal);
}

void sf_attention_short_forward_head(float *oh, int64_t ldo, float *ah, const float *qh, int64_t q_rs, const float *kh,
                                     int64_t k_rs, const float *vh, int64_t v_rs, const float *mask, int64_t T,
                                     int64_t HD, float scale, int causal) {
    if (T > SHORT_T) {
        forward_head_long(oh, ldo, ah, qh, q_rs, kh, k_rs, vh, v_rs, mask, T, HD, scale, causal);
        return;
    }
    float kt[MAX_HD * SHORT_T] __attribute__((aligned(64))); // (HD, TP) K^T
    float s[SHORT_T * SHORT_T] __attribute__((aligned(64)));  // (T, TP) scores
    forward_head(kt, s, oh, ldo, ah, qh, q_rs, kh, k_rs, vh, v_rs, mask, T, HD, scale, causal);
}

/* d (TP) = p (dP - rowsum(p dP)) over the keys j < nvis, zero from nvis on; p (T) a row of P, d (TP) the
 * row of dP (read only below nvis). */
static void ds_row(float *d, const float *p, int64_t nvis, int64_t TP) {
    const int nv = (int)(TP / VW), nseen = (int)((nvis + VW - 1) / VW);
    vf pv[MAX_TV], dv[MAX_TV], acc = splat(0.0f);
    for (int v = 0; v < nseen; v++) {
        pv[v] = load_prefix(p + v * VW, nvis - v * VW);
        dv[v] = load_prefix(d + v * VW, nvis - v * VW);
        acc += pv[v] * dv[v];
    }
    const float dsum = hsum(acc);
    for (int v = 0; v < nseen; v++) *(vf *)(d + v * VW) = pv[v] * (dv[v] - dsum); /* p is 0 past nvis */
    for (int v = nseen; v < nv; v++) *(vf *)(d + v * VW) = splat(0.0f);
}

/* One head's backward after dV, with its buffers given: vt (HD, TP) for V^T, ds (T, TP) for dP then dS. */
static void backward_head_qk(float *vt, float *ds, float *dqh, int64_t ldq, float *dkh, int64_t ldk, const float *doh,
                             int64_t ldo, const float *qh, int64_t q_rs, const float *kh, int64_t k_rs,
                             const float *vh, int64_t v_rs, const float *ah, int64_t kend, int64_t T, int64_t HD,
                             float scale, int causal) {
    const int64_t TP = padded(T);
    const int nh = (int)(HD / VW), upper = causal ? SPAN_UPPER : SPAN_ALL, lower = causal ? SPAN_LOWER : SPAN_ALL;
    transpose_padded(vt, TP, vh, v_rs, T, HD);
    panel_wide(ds, TP, doh, ldo, vt, TP, T, TP, HD, 1.0f, causal); // dP = dO V^T
    for (int64_t i = 0; i < T; i++) // dS = P (dP - rowsum(P dP)), zero past the keys row i sees
        ds_row(ds + i * TP, ah + i * T, causal ? (i + 1 < kend ? i + 1 : kend) : kend, TP);
    if (dqh) panel_hd(nh, dqh, ldq, ds, TP, 1, kh, k_rs, T, kend, lower, scale, 1); // dQ += scale dS K
    if (dkh) panel_hd(nh, dkh, ldk, ds, 1, TP, qh, q_rs, kend, T, upper, scale, 1); // dK += scale dS^T Q
    count_products(1 + (dqh != NULL) + (dkh != NULL), T, kend, HD, causal); /* dP, dQ, dK */
}

void sf_attention_short_backward_head(float *dqh, int64_t ldq, float *dkh, int64_t ldk, float *dvh, int64_t ldv,
                                      const float *doh, int64_t ldo, const float *qh, int64_t q_rs, const float *kh,
                                      int64_t k_rs, const float *vh, int64_t v_rs, const float *ah, const float *mask,
                                      int64_t T, int64_t HD, float scale, int causal, float *work) {
    const int64_t kend = sf_key_end(mask, T);
    /* key rows j >= kend have all-zero P and dS columns: nothing to add to their dK and dV */
    if (dvh) panel_hd((int)(HD / VW), dvh, ldv, ah, 1, T, doh, ldo, kend, T, causal ? SPAN_UPPER : SPAN_ALL, 1.0f, 1);
    if (dvh) count_products(1, T, kend, HD, causal); // dV += P^T dO
    if (!dqh && !dkh) return;
    if (T > SHORT_T) { /* V^T and dS in the caller's work space */
        backward_head_qk(work, work + HD * padded(T), dqh, ldq, dkh, ldk, doh, ldo, qh, q_rs, kh, k_rs, vh, v_rs, ah,
                         kend, T, HD, scale, causal);
        return;
    }
    float vt[MAX_HD * SHORT_T] __attribute__((aligned(64))); // (HD, TP) V^T
    float ds[SHORT_T * SHORT_T] __attribute__((aligned(64))); // (T, TP) dP, then dS
    backward_head_qk(vt, ds, dqh, ldq, dkh, ldk, doh, ldo, qh, q_rs, kh, k_rs, vh, v_rs, ah, kend, T, HD, scale,
                     causal);
}
