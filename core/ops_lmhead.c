/* ops_lmhead.c — the language-model head and its cross-entropy fused, for when only the loss is needed:
 * logits = h W^T are formed one block of vocabulary columns at a time (an (N, Vc) scratch, ~4 MB),
 * folded into each row's running max and sum of exponentials (an online log-sum-exp) and the target
 * logit, and dropped; backward recomputes each block's logits and turns them into the block's
 * dlogits = (softmax - onehot) / count, which feed dh and that block's rows of dW by two gemms. Blocks
 * of columns rather than rows read the (V, C) head once per pass. So neither the (N x V) logits nor
 * their gradient is ever materialised whole: memory O(N * Vc) instead of O(N * V), at the price of one
 * more (N x C x V) gemm in backward. When N * V fits in the caller's keep_floats, the forward keeps
 * each block's exponentials instead (with the running max each used) and backward rescales them to
 * the softmax: no recompute, O(N * V) memory; the gradient is written over them in place. When the head
 * is frozen (SIFT, LoRA: only dh is wanted) the forward accumulates dh itself, block by block, like an
 * online softmax: A = sum_v exp(x_v - m) W_v, rescaled whenever the running max m grows, and
 * dh = (A / S - W_target) * scale at the end; backward only scales it. Two gemms in all, O(N * C).
 * A reference path (separate linear and cross_entropy on the tape) is what the tests compare against. */
#include <math.h>
#include <string.h>

#include "gemm.h"
#include "ops.h"
#include "simd_math.h"

/* How backward gets the logits' gradient (node attribute i[5]). */
enum { HEAD_RECOMPUTE = 0, HEAD_KEPT = 1, HEAD_ONLINE_DH = 2 };

/* Columns of the vocabulary per block: the (N, Vc) block stays near 1 M floats (4 MB), at least 256
 * and a multiple of 64 columns wide so the gemms keep good shapes. */
static int64_t block_cols(int64_t N, int64_t V) {
    int64_t vc = ((int64_t)1 << 20) / (N > 0 ? N : 1);
    vc = vc < 256 ? 256 : vc & ~(int64_t)63;
    return vc < V ? vc : V;
}

static void block_logits(float *logits, const float *h, const float *W, int64_t N, int64_t C, int64_t Vc) {
    // logits (N, Vc) = h (N, C) W^T, W (Vc, C): the rows v0..v0+Vc of the head
    sf_sgemm(0, 1, N, Vc, C, 1.0f, h, C, W, C, 0.0f, logits, Vc);
}

/* Folds one block of columns [v0, v0+Vc) into every row's running max mx and sum of exp(x - mx), and
 * picks up the target logit tl when it lies in the block. The block is overwritten with exp(x - m), m
 * the row's running max after this block, which goes to m_used (N) when given; rescale (N), when given,
 * gets exp(m_before - m), the factor earlier partial sums must be multiplied by. */
static void block_fold(float *blk, const int64_t *tgt, int64_t N, int64_t v0, int64_t Vc, float *mx, float *sum,
                       float *tl, float *m_used, float *rescale) {
#pragma omp parallel for if (N * Vc > (1 << 16))
    for (int64_t r = 0; r < N; r++) {
        float *x = blk + r * Vc;
        if (tgt[r] >= v0 && tgt[r] < v0 + Vc) tl[r] = x[tgt[r] - v0];
        const float m = fmaxf(mx[r], sf_max_f32(x, Vc));
        sf_exp_shifted(x, x, m, Vc);
        const float f = expf(mx[r] - m); /* what the sums so far are worth under the new max */
        sum[r] = sum[r] * f + sf_sum_f32(x, Vc);
        mx[r] = m;
        if (m_used) m_used[r] = m;
        if (rescale) rescale[r] = f;
    }
}

/* Turns one block of exp(x - m) (m per row, from the forward) into dlogits = (softmax - onehot) * scale
 * in place: softmax = exp(x - m) * exp(m - lse). Ignored rows get zeros. */
static void block_dlogits(float *blk, const int64_t *tgt, const float *m, const float *lse, int64_t N, int64_t v0,
                          int64_t Vc, int64_t ignore, float scale) {
#pragma omp parallel for if (N * Vc > (1 << 16))
    for (int64_t r = 0; r < N; r++) {
        float *x = blk + r * Vc;
        const int64_t t = tgt[r];
        if (t == ignore) {
            memset(x, 0, (size_t)Vc * sizeof *x);
            continue;
        }
        const float f = scale * expf(m[r] - lse[r]);
#pragma omp simd
        for (int64_t j = 0; j < Vc; j++) x[j] *= f;
        if (t >= v0 && t < v0 + Vc) x[t - v0] -= scale;
    }
}

/* Online dh, one block: A (N, C) = A * rescale (per row) + exp(x - m) (N, Vc) W[v0:v0+Vc] (Vc, C). */
static void online_dh_add(float *A, const float *rescale, const float *blk, const float *Wb, int64_t N, int64_t C,
                          int64_t Vc) {
#pragma omp parallel for if (N * C > (1 << 16))
    for (int64_t r = 0; r < N; r++)
        if (rescale[r] != 1.0f)
            for (int64_t c = 0; c < C; c++) A[r * C + c] *= rescale[r];
    sf_sgemm(0, 0, N, C, Vc, 1.0f, blk, Vc, Wb, C, 1.0f, A, C);
}

/* Online dh, the end: A becomes dh / scale = softmax W - W_target = A / S - W_target (0 for ignored rows). */
static void online_dh_finish(float *A, const float *S, const int64_t *tgt, const float *W, int64_t N, int64_t C,
                             int64_t ignore) {
#pragma omp parallel for if (N * C > (1 << 16))
    for (int64_t r = 0; r < N; r++) {
        float *a = A + r * C;
        if (tgt[r] == ignore) {
            memset(a, 0, (size_t)C * sizeof *a);
            continue;
        }
        const float inv = 1.0f / S[r], *wt = W + tgt[r] * C;
        for (int64_t c = 0; c < C; c++) a[c] = a[c] * inv - wt[c];
    }
}

static sf_status lmhead_backward(sf_graph *g, sf_node *n) {
    sf_tensor *h = n->in[0], *W = n->in[1], *tgt_t = n->saved[0], *lse_t = n->saved[1];
    int dh_fresh = 0, dW_fresh = 0; /* fresh: overwritten by the first block instead of accumulated into */
    sf_tensor *dh = sf_graph_grad_for_write(g, h, &dh_fresh), *dW = sf_graph_grad_for_write(g, W, &dW_fresh);
    if ((h->requires_grad && !dh) || (W->requires_grad && !dW))
        return sf_fail(SF_ERR_NOMEM, "lm_head_loss backward: out of memory for the gradients");
    if (!dh && !dW) return SF_OK;
    const int64_t N = n->i[0], C = n->i[1], V = n->i[2], ignore = n->i[3], count = n->i[4];
    if (count == 0) { /* nothing flows back: fresh gradients must still read zero */
        if (dh_fresh) memset(sf_f32(dh), 0, sf_tensor_nbytes(dh));
        if (dW_fresh) memset(sf_f32(dW), 0, sf_tensor_nbytes(dW));
        return SF_OK;
    }
    const float scale = sf_f32(sf_graph_grad(g, n->out))[0] / (float)count;
    const int64_t VC = block_cols(N, V);
    const int64_t mode = n->i[5];
    if (mode == HEAD_ONLINE_DH) { /* the forward formed dh / scale already (the head was frozen) */
        if (dW) return sf_fail(SF_ERR_STATE, "lm_head_loss backward: the head weight became trainable after the forward");
        const float *dhu = sf_f32(n->saved[2]); // (N, C)
        float *d = sf_f32(dh);
#pragma omp parallel for simd if (N * C > (1 << 16))
        for (int64_t i = 0; i < N * C; i++) d[i] = (dh_fresh ? 0.0f : d[i]) + scale * dhu[i];
        return SF_OK;
    }
    const int kept = mode == HEAD_KEPT; /* the forward kept every block's exponentials */
    int64_t ss[2] = {N, VC};
    sf_tensor *scratch = kept ? NULL : sf_graph_scratch(g, 2, ss);
    if (!kept && !scratch) return sf_fail(SF_ERR_NOMEM, "lm_head_loss backward: out of memory");
    const int64_t *tgt = sf_tensor_data(tgt_t);
    const float *lse = sf_f32(lse_t), *hd = sf_f32(h), *Wd = sf_f32(W);
    int dW_finite = 1; /* every block's rows of dW stored by a product that checked them */
    for (int64_t v0 = 0, b = 0; v0 < V; v0 += VC, b++) {
        const int64_t vc = V - v0 < VC ? V - v0 : VC;
        float *blk; // (N, vc): this block's exp(x - m), turned into its dlogits
        if (kept) {
            blk = sf_f32(n->saved[2]) + v0 * N;
            block_dlogits(blk, tgt, sf_f32(n->saved[3]) + b * N, lse, N, v0, vc, ignore, scale);
        } else { /* recompute the block's logits; m = lse gives the softmax directly */
            blk = sf_f32(scratch);
            block_logits(blk, hd, Wd + v0 * C, N, C, vc);
#pragma omp parallel for if (N * vc > (1 << 16))
            for (int64_t r = 0; r < N; r++)
                if (tgt[r] != ignore) sf_exp_shifted(blk + r * vc, blk + r * vc, lse[r], vc);
            block_dlogits(blk, tgt, lse, lse, N, v0, vc, ignore, scale);
        }
        if (dh) /* dh (N, C) += dlogits (N, Vc) W[v0:v0+Vc] (Vc, C); the first block writes a fresh dh */
            sf_sgemm(0, 0, N, C, vc, 1.0f, blk, vc, Wd + v0 * C, C, dh_fresh && v0 == 0 ? 0.0f : 1.0f, sf_f32(dh), C);
        if (dW) /* dW[v0:v0+Vc] (Vc, C) += dlogits^T (Vc, N) h (N, C): each block its own rows */
            dW_finite &= sf_sgemm_finite(1, 0, vc, C, N, 1.0f, blk, vc, hd, C, dW_fresh ? 0.0f : 1.0f,
                                         sf_f32(dW) + v0 * C, C);
    }
    if (dW) sf_graph_grad_set_finite(W, dW_finite); /* the blocks' rows make up all of dW */
    sf_graph_recycle(g, scratch);
    return SF_OK;
}

sf_tensor *sf_lm_head_loss(sf_graph *g, sf_tensor *h, sf_tensor *W, sf_tensor *targets, int64_t ignore_index,
                           int64_t keep_floats) {
    char a[64], b[64];
    if (sf_check_f32(h, "lm_head_loss", "h") || sf_check_f32(W, "lm_head_loss", "W") ||
        sf_check_index(targets, "lm_head_loss", "targets"))
        return NULL;
    const int64_t C = sf_tensor_cols(h), N = sf_tensor_rows(h);
    if (W->ndim != 2 || W->shape[1] != C)
        return sf_fail_null(SF_ERR_ARG, "lm_head_loss: W %s must be (V, %lld) for h %s", sf_shape_str(W, a, sizeof a),
                            (long long)C, sf_shape_str(h, b, sizeof b));
    if (sf_tensor_numel(targets) != N)
        return sf_fail_null(SF_ERR_ARG, "lm_head_loss: %lld targets for %lld rows", (long long)sf_tensor_numel(targets),
                            (long long)N);
    const int64_t V = W->shape[0], VC = block_cols(N, V);
    int64_t s1[1] = {N}, ss[2] = {N, VC}, s3[2] = {4, N}, one[1] = {1};
    sf_tensor *tgt = sf_graph_tensor_dtype(g, SF_I64, 1, s1); // (N) copy, range-checked
    sf_tensor *lse = tgt ? sf_graph_tensor(g, 1, s1) : NULL;   // (N)
    sf_tensor *out = lse ? sf_graph_tensor(g, 1, one) : NULL;
    if (!out) return NULL;
    int64_t *td = sf_tensor_data(tgt), count = 0;
    for (int64_t i = 0; i < N; i++) {
        td[i] = sf_index_at(targets, i);
        if (td[i] == ignore_index) continue;
        if (td[i] < 0 || td[i] >= V)
            return sf_fail_null(SF_ERR_ARG, "lm_head_loss: target %lld at row %lld is outside [0, %lld)", (long long)td[i],
                                (long long)i, (long long)V);
        count++;
    }
    /* What backward will need: with a frozen head only dh, which the forward accumulates block by block
     * (online: A = sum_v exp(x_v - m) W_v, rescaled when m grows; dh = scale (A / S - W_target)); with a
     * training head the blocks' exponentials when they fit in keep_floats, else nothing (recompute). */
    const int64_t n_blocks = (V + VC - 1) / VC;
    const int grad = sf_graph_recording(g) && (h->requires_grad || W->requires_grad);
    const int64_t mode = !grad ? HEAD_RECOMPUTE
                         : (h->requires_grad && !W->requires_grad) ? HEAD_ONLINE_DH
                         : N * V <= keep_floats ? HEAD_KEPT : HEAD_RECOMPUTE;
    int64_t sk[1] = {N * V}, sm[2] = {n_blocks, N}, sa[2] = {N, C};
    sf_tensor *kept = mode == HEAD_KEPT ? sf_graph_tensor(g, 1, sk) : NULL;   // blocks of (N, Vc), one after another
    sf_tensor *m_used = mode == HEAD_KEPT ? sf_graph_tensor(g, 2, sm) : NULL; // (blocks, N) the max each block used
    sf_tensor *acc = mode == HEAD_ONLINE_DH ? sf_graph_tensor_zeros(g, 2, sa) : NULL; // (N, C) A, then dh / scale
    if ((mode == HEAD_KEPT && !m_used) || (mode == HEAD_ONLINE_DH && !acc)) return NULL;
    sf_tensor *scratch = mode == HEAD_KEPT ? NULL : sf_graph_scratch(g, 2, ss); // (N, Vc) one block of logits
    sf_tensor *stats = (mode == HEAD_KEPT || scratch) ? sf_graph_scratch(g, 2, s3) : NULL; // (4, N) see below
    if (!stats) {
        sf_graph_recycle(g, scratch);
        return NULL;
    }
    float *mx = sf_f32(stats), *se = mx + N, *tl = se + N, *resc = tl + N; // running max, sum, target logit, rescale
    for (int64_t r = 0; r < N; r++) mx[r] = -INFINITY, se[r] = 0.0f, tl[r] = 0.0f;
    const float *hd = sf_f32(h), *Wd = sf_f32(W);
    for (int64_t v0 = 0, b = 0; v0 < V; v0 += VC, b++) {
        const int64_t vc = V - v0 < VC ? V - v0 : VC;
        float *blk = mode == HEAD_KEPT ? sf_f32(kept) + v0 * N : sf_f32(scratch);
        block_logits(blk, hd, Wd + v0 * C, N, C, vc);
        block_fold(blk, td, N, v0, vc, mx, se, tl, mode == HEAD_KEPT ? sf_f32(m_used) + b * N : NULL,
                   mode == HEAD_ONLINE_DH ? resc : NULL);
        if (mode == HEAD_ONLINE_DH) online_dh_add(sf_f32(acc), resc, blk, Wd + v0 * C, N, C, vc);
    }
    if (mode == HEAD_ONLINE_DH) online_dh_finish(sf_f32(acc), se, td, Wd, N, C, ignore_index);
    double sum = 0;
    float *lsed = sf_f32(lse);
    for (int64_t r = 0; r < N; r++) {
        lsed[r] = mx[r] + (float)log((double)se[r]);
        if (td[r] != ignore_index) sum += (double)lsed[r] - tl[r];
    }
    sf_graph_recycle(g, scratch);
    sf_graph_recycle(g, stats);
    sf_f32(out)[0] = count ? (float)(sum / (double)count) : 0.0f;
    sf_tensor *in[2] = {h, W};
    sf_node *n = sf_graph_record(g, "lm_head_loss", lmhead_backward, out, in, 2);
    if (n) {
        n->i[0] = N;
        n->i[1] = C;
        n->i[2] = V;
        n->i[3] = ignore_index;
        n->i[4] = count;
        n->i[5] = mode;
        if (sf_node_save(n, tgt) || sf_node_save(n, lse)) return NULL;
        if (mode == HEAD_KEPT && (sf_node_save(n, kept) || sf_node_save(n, m_used))) return NULL;
        if (mode == HEAD_ONLINE_DH && sf_node_save(n, acc)) return NULL;
    }
    return out;
}
