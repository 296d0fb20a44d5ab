/* ops_lmhead.c — the language-model head and its cross-entropy fused, for when only the loss is needed:
 * logits = h W^T are formed one block of rows at a time (a (rows, V) scratch), reduced to a per-row
 * log-sum-exp and target logit, and dropped; backward recomputes each block's logits and turns them
 * into the block's dlogits = (softmax - onehot) / count, which feed dh and dW by two gemms. So neither
 * the (N x V) logits nor their gradient is ever materialised whole: memory O(rows * V) instead of
 * O(N * V), at the price of one more (N x C x V) gemm in backward. A reference path (separate linear and
 * cross_entropy on the tape) is what the tests compare against. */
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "ops.h"
#include "simd_math.h"

#define LMHEAD_ROWS 128 /* rows per block */

/* lse (rows) and the sum of (lse - target logit) over non-ignored rows of one block of logits, which it
 * overwrites (the exponentials are computed in place). */
static double block_loss(float *logits, const int64_t *tgt, int64_t rows, int64_t V, int64_t ignore, float *lse) {
    double sum = 0;
#pragma omp parallel for reduction(+ : sum) if (rows * V > (1 << 16))
    for (int64_t r = 0; r < rows; r++) {
        float *x = logits + r * V;
        const float mx = sf_max_f32(x, V);
        const float tl = tgt[r] != ignore ? x[tgt[r]] : 0.0f;
        sf_exp_shifted(x, x, mx, V);
        lse[r] = mx + (float)log((double)sf_sum_f32(x, V));
        if (tgt[r] != ignore) sum += (double)lse[r] - tl;
    }
    return sum;
}

static void block_logits(float *logits, const float *h, const float *W, int64_t rows, int64_t C, int64_t V) {
    // logits (rows, V) = h (rows, C) W^T, W (V, C)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)V, (int)C, 1.0f, h, (int)C, W, (int)C, 0.0f,
                logits, (int)V);
}

static sf_status lmhead_backward(sf_graph *g, sf_node *n) {
    sf_tensor *h = n->in[0], *W = n->in[1], *tgt_t = n->saved[0], *lse_t = n->saved[1];
    sf_tensor *dh = sf_graph_grad(g, h), *dW = sf_graph_grad(g, W);
    if (!dh && !dW) return SF_OK;
    const int64_t N = n->i[0], C = n->i[1], V = n->i[2], ignore = n->i[3], count = n->i[4];
    if (count == 0) return SF_OK;
    const float scale = sf_f32(sf_graph_grad(g, n->out))[0] / (float)count;
    int64_t ss[2] = {LMHEAD_ROWS, V};
    sf_tensor *scratch = sf_graph_scratch(g, 2, ss);
    if (!scratch) return sf_fail(SF_ERR_NOMEM, "lm_head_loss backward: out of memory");
    float *blk = sf_f32(scratch);
    const int64_t *tgt = sf_tensor_data(tgt_t);
    const float *lse = sf_f32(lse_t), *hd = sf_f32(h), *Wd = sf_f32(W);
    for (int64_t r0 = 0; r0 < N; r0 += LMHEAD_ROWS) {
        int64_t rows = N - r0 < LMHEAD_ROWS ? N - r0 : LMHEAD_ROWS;
        block_logits(blk, hd + r0 * C, Wd, rows, C, V);
#pragma omp parallel for if (rows * V > (1 << 16))
        for (int64_t r = 0; r < rows; r++) {
            float *x = blk + r * V;
            int64_t t = tgt[r0 + r];
            if (t == ignore) {
                memset(x, 0, (size_t)V * sizeof *x);
                continue;
            }
            sf_exp_shifted(x, x, lse[r0 + r], V); /* softmax */
#pragma omp simd
            for (int64_t j = 0; j < V; j++) x[j] *= scale;
            x[t] -= scale;
        }
        if (dh) /* dh (rows, C) += dlogits (rows, V) W (V, C) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)C, (int)V, 1.0f, blk, (int)V, Wd,
                        (int)C, 1.0f, sf_f32(dh) + r0 * C, (int)C);
        if (dW) /* dW (V, C) += dlogits^T (V, rows) h (rows, C) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)V, (int)C, (int)rows, 1.0f, blk, (int)V,
                        hd + r0 * C, (int)C, 1.0f, sf_f32(dW), (int)C);
    }
    sf_graph_recycle(g, scratch);
    return SF_OK;
}

sf_tensor *sf_lm_head_loss(sf_graph *g, sf_tensor *h, sf_tensor *W, sf_tensor *targets, int64_t ignore_index) {
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
    const int64_t V = W->shape[0];
    int64_t s1[1] = {N}, ss[2] = {LMHEAD_ROWS, V}, one[1] = {1};
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
    sf_tensor *scratch = sf_graph_scratch(g, 2, ss);
    if (!scratch) return NULL;
    double sum = 0;
    for (int64_t r0 = 0; r0 < N; r0 += LMHEAD_ROWS) {
        int64_t rows = N - r0 < LMHEAD_ROWS ? N - r0 : LMHEAD_ROWS;
        block_logits(sf_f32(scratch), sf_f32(h) + r0 * C, sf_f32(W), rows, C, V);
        sum += block_loss(sf_f32(scratch), td + r0, rows, V, ignore_index, sf_f32(lse) + r0);
    }
    sf_graph_recycle(g, scratch);
    sf_f32(out)[0] = count ? (float)(sum / (double)count) : 0.0f;
    sf_tensor *in[2] = {h, W};
    sf_node *n = sf_graph_record(g, "lm_head_loss", lmhead_backward, out, in, 2);
    if (n) {
        n->i[0] = N;
        n->i[1] = C;
        n->i[2] = V;
        n->i[3] = ignore_index;
        n->i[4] = count;
        if (sf_node_save(n, tgt) || sf_node_save(n, lse)) return NULL;
    }
    return out;
}
