/* test_attention_qkv.c — the fused-layout attention (q | k | v in one row, read with strides): gradient
 * check (central differences, eps 1e-2, tolerance 1e-2 relative to max |g|) with GQA, causal and
 * bidirectional, with a padding mask, and equality with sf_attention on sliced inputs. */
#include <math.h>

#include "../core/ops.h"
#include "gradcheck.h"
#include "test.h"

typedef struct {
    int64_t NH, NKV, HD;
    int causal;
    sf_tensor *mask;
} qkv_ctx;

static sf_tensor *build_fused(sf_graph *g, sf_tensor **in, void *vctx) {
    qkv_ctx *c = vctx;
    return sf_attention_qkv(g, in[0], c->mask, c->NH, c->NKV, c->HD, c->causal);
}

static sf_tensor *build_sliced(sf_graph *g, sf_tensor **in, void *vctx) {
    qkv_ctx *c = vctx;
    int64_t Q = c->NH * c->HD, KV = c->NKV * c->HD;
    sf_tensor *q = sf_slice_cols(g, in[0], 0, Q), *k = sf_slice_cols(g, in[0], Q, KV), *v = sf_slice_cols(g, in[0], Q + KV, KV);
    return sf_attention(g, q, k, v, c->mask, c->NH, c->NKV, c->causal);
}

TEST(attention_qkv_gradcheck_and_matches_sliced) {
    int64_t cases[3][3] = {{2, 2, 3}, {4, 2, 4}, {4, 1, 2}}; /* NH, NKV, HD */
    for (int ci = 0; ci < 3; ci++)
        for (int causal = 0; causal < 2; causal++)
            for (int masked = 0; masked < 2; masked++) {
                qkv_ctx c = {cases[ci][0], cases[ci][1], cases[ci][2], causal, NULL};
                int64_t B = 2, T = 5, W = (c.NH + 2 * c.NKV) * c.HD;
                int64_t shape[3] = {B, T, W}, ms[2] = {B, T};
                sf_tensor *x = sf_tensor_new_f32(3, shape);
                gc_fill_randn(x, 7 + (unsigned)ci, 1.0f);
                sf_param_set_trainable(x, 1);
                if (masked) {
                    c.mask = sf_tensor_zeros(SF_I64, 2, ms);
                    int64_t *m = sf_tensor_data(c.mask);
                    for (int64_t i = 0; i < B * T; i++) m[i] = !(i % T == 0 || i == B * T - 1); /* pads at both ends */
                }
                double err = gradcheck("attention_qkv", build_fused, &c, &x, 1, 1e-2, 200);
                CHECK(err <= 1e-2, "case %d causal %d mask %d: gradcheck error %.3g", ci, causal, masked, err);
                /* forward and gradient equal the sliced path */
                sf_graph *g1 = sf_graph_new(), *g2 = sf_graph_new();
                sf_param_drop_grad(x);
                sf_tensor *y1 = build_fused(g1, &x, &c);
                sf_tensor *r = sf_tensor_new_f32(y1->ndim, y1->shape);
                gc_fill_randn(r, 99, 1.0f);
                sf_graph_backward(g1, y1, r);
                sf_tensor *g_fused = sf_tensor_clone(x->grad);
                sf_param_drop_grad(x);
                sf_tensor *y2 = build_sliced(g2, &x, &c);
                sf_graph_backward(g2, y2, r);
                double dy = 0, dg = 0;
                for (int64_t i = 0; i < sf_tensor_numel(y1); i++) dy = fmax(dy, fabs(sf_f32(y1)[i] - sf_f32(y2)[i]));
                for (int64_t i = 0; i < sf_tensor_numel(x); i++) dg = fmax(dg, fabs(sf_f32(g_fused)[i] - sf_f32(x->grad)[i]));
                CHECK(dy <= 1e-6 && dg <= 1e-5, "fused vs sliced: output %.3g, grad %.3g", dy, dg);
                sf_tensor_release(g_fused);
                sf_tensor_release(r);
                sf_graph_free(g1);
                sf_graph_free(g2);
                sf_tensor_release(c.mask);
                sf_tensor_release(x);
            }
}

TEST(attention_qkv_errors) {
    sf_graph *g = sf_graph_new();
    int64_t shape[3] = {1, 3, 10};
    sf_tensor *x = sf_tensor_zeros_f32(3, shape);
    CHECK(!sf_attention_qkv(g, x, NULL, 2, 1, 3, 1), "width 10 != (2 + 2) * 3 accepted");
    CHECK(!sf_attention_qkv(g, x, NULL, 3, 2, 2, 1), "NH not a multiple of NKV accepted");
    sf_tensor_release(x);
    sf_graph_free(g);
}

TEST_MAIN()
