/* test_attention.c — sf_attention (ops_attention.c): finite-difference gradients of q, k and v for
 * causal MHA, GQA (NH=4 with NKV=2 and NKV=1), bidirectional attention with a padding mask and causal
 * attention whose first keys are padding (rows that see nothing), odd sizes; the optimised raw kernels
 * against the plain reference (also through a fused q|k|v buffer with row strides, and at several
 * thread counts); known values (T=1 copies v, uniform scores average v, a two-key closed form); the
 * saved probabilities; frozen inputs; error paths. Depends on no other op file. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "../core/attention_short.h"
#include "../core/ops.h"
#include "gradcheck.h"
#include "test.h"

/* raw kernels of ops_attention.c (not in ops.h) */
extern void sf_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                                 const float *key_mask, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD,
                                 int64_t q_rs, int64_t k_rs, int64_t v_rs, int causal);
extern int64_t sf_attention_backward_scratch(int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD);
extern void sf_attention_backward(float *dq, float *dk, float *dv, float *scratch, int64_t n_scratch, const float *dout,
                                  const float *q, const float *k, const float *v, const float *att,
                                  const float *key_mask, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD,
                                  int64_t q_rs, int64_t k_rs, int64_t v_rs, int causal);
extern void sf_attention_forward_ref(float *out, float *att, const float *q, const float *k, const float *v,
                                     const float *key_mask, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                                     int64_t HD, int64_t q_rs, int64_t k_rs, int64_t v_rs, int causal);
extern void sf_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                      const float *k, const float *v, const float *att, const float *key_mask,
                                      int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD, int64_t q_rs,
                                      int64_t k_rs, int64_t v_rs, int causal);

#define GC_EPS 1e-2 /* central-difference step; inputs ~ N(0, 1) */
#define GC_TOL 1e-3 /* max |analytic - numeric| / max |analytic| */

typedef struct {
    int64_t NH, NKV;
    int causal;
    sf_tensor *mask;
} attn_ctx;

static sf_tensor *build_attn(sf_graph *g, sf_tensor **in, void *ctx) {
    attn_ctx *c = ctx;
    return sf_attention(g, in[0], in[1], in[2], c->mask, c->NH, c->NKV, c->causal);
}

static sf_tensor *randn3(int64_t B, int64_t T, int64_t C, unsigned long long seed, int trainable) {
    int64_t s[3] = {B, T, C};
    sf_tensor *t = sf_tensor_new_f32(3, s);
    gc_fill_randn(t, seed, 1.0f);
    sf_param_set_trainable(t, trainable);
    return t;
}

/* (B, T) mask of dtype dt from 0/1 values */
static sf_tensor *make_mask(sf_dtype dt, int64_t B, int64_t T, const int *vals) {
    int64_t s[2] = {B, T};
    sf_tensor *m = sf_tensor_new(dt, 2, s);
    for (int64_t i = 0; i < B * T; i++) sf_tensor_set_flat(m, i, vals[i]);
    return m;
}

/* Gradient check of q, k and v; returns the worst error. */
static double check_attn(const char *label, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD, int causal,
                         sf_tensor *mask, unsigned long long seed) {
    sf_tensor *in[3] = {randn3(B, T, NH * HD, seed, 1), randn3(B, T, NKV * HD, seed + 1, 1),
                        randn3(B, T, NKV * HD, seed + 2, 1)};
    attn_ctx c = {NH, NKV, causal, mask};
    double err = gradcheck(label, build_attn, &c, in, 3, GC_EPS, 1000);
    for (int i = 0; i < 3; i++) sf_tensor_release(in[i]);
    return err;
}

TEST(attn_gradcheck_causal_mha) {
    double e = check_attn("causal MHA B2 T5 NH2 HD3", 2, 5, 2, 2, 3, 1, NULL, 11);
    CHECK(e <= GC_TOL, "worst rel err %g (eps %g, tol %g)", e, GC_EPS, GC_TOL);
}

TEST(attn_gradcheck_gqa_4_2) {
    double e = check_attn("causal GQA NH4 NKV2", 2, 6, 4, 2, 4, 1, NULL, 21);
    CHECK(e <= GC_TOL, "worst rel err %g", e);
    e = check_attn("bidir GQA NH4 NKV2", 1, 5, 4, 2, 3, 0, NULL, 22);
    CHECK(e <= GC_TOL, "worst rel err %g", e);
}

TEST(attn_gradcheck_gqa_4_1) {
    double e = check_attn("causal MQA NH4 NKV1", 2, 5, 4, 1, 3, 1, NULL, 31);
    CHECK(e <= GC_TOL, "worst rel err %g", e);
    e = check_attn("bidir MQA NH4 NKV1", 2, 4, 4, 1, 2, 0, NULL, 32);
    CHECK(e <= GC_TOL, "worst rel err %g", e);
}

TEST(attn_gradcheck_bidir_padding_mask) {
    /* sequence 0: right padding; sequence 1: a hole in the middle; sequence 2: all real */
    const int mv[15] = {1, 1, 1, 0, 0, /**/ 1, 0, 1, 1, 1, /**/ 1, 1, 1, 1, 1};
    sf_dtype dts[3] = {SF_I32, SF_I64, SF_F32};
    for (int d = 0; d < 3; d++) {
        sf_tensor *m = make_mask(dts[d], 3, 5, mv);
        double e = check_attn(sf_dtype_name(dts[d]), 3, 5, 2, 1, 3, 0, m, 41 + d);
        CHECK(e <= GC_TOL, "mask %s: worst rel err %g", sf_dtype_name(dts[d]), e);
        sf_tensor_release(m);
    }
}

TEST(attn_causal_left_padding_rows_see_nothing) {
    /* causal with left padding: rows 0 and 1 of sequence 0 see no key -> zero output and zero gradient */
    const int64_t B = 2, T = 5, NH = 2, NKV = 1, HD = 3;
    const int mv[10] = {0, 0, 1, 1, 1, /**/ 1, 1, 1, 1, 1};
    sf_tensor *m = make_mask(SF_I64, B, T, mv);
    double e = check_attn("causal left padding", B, T, NH, NKV, HD, 1, m, 51);
    CHECK(e <= GC_TOL, "worst rel err %g", e);

    sf_tensor *q = randn3(B, T, NH * HD, 52, 1), *k = randn3(B, T, NKV * HD, 53, 1), *v = randn3(B, T, NKV * HD, 54, 1);
    sf_graph *g = sf_graph_new();
    sf_tensor *y = sf_attention(g, q, k, v, m, NH, NKV, 1);
    REQUIRE(y, "%s", sf_last_error());
    for (int64_t t = 0; t < 2; t++)
        for (int64_t c = 0; c < NH * HD; c++) CHECK(sf_f32(y)[t * NH * HD + c] == 0.0f, "row %lld col %lld not zero", (long long)t, (long long)c);
    sf_tensor *seed = sf_tensor_new_f32(3, y->shape);
    gc_fill_randn(seed, 55, 1.0f);
    REQUIRE(sf_graph_backward(g, y, seed) == SF_OK, "%s", sf_last_error());
    for (int64_t t = 0; t < 2; t++)
        for (int64_t c = 0; c < NH * HD; c++) CHECK(sf_f32(q->grad)[t * NH * HD + c] == 0.0f, "dq row %lld not zero", (long long)t);
    /* padded keys get no gradient at all (no row gives them weight) */
    for (int64_t t = 0; t < 2; t++)
        for (int64_t c = 0; c < NKV * HD; c++) {
            CHECK(sf_f32(k->grad)[t * NKV * HD + c] == 0.0f, "dk of padded key %lld not zero", (long long)t);
            CHECK(sf_f32(v->grad)[t * NKV * HD + c] == 0.0f, "dv of padded key %lld not zero", (long long)t);
        }
    sf_tensor_release(seed);
    sf_graph_free(g);
    sf_tensor_release(q);
    sf_tensor_release(k);
    sf_tensor_release(v);
    sf_tensor_release(m);
}

TEST(attn_frozen_inputs_match_full) {
    /* each subset of trainable inputs gets exactly the gradients the all-trainable run gets */
    const int64_t B = 2, T = 7, NH = 4, NKV = 2, HD = 5;
    sf_tensor *in[3] = {randn3(B, T, NH * HD, 61, 1), randn3(B, T, NKV * HD, 62, 1), randn3(B, T, NKV * HD, 63, 1)};
    sf_tensor *full[3] = {0};
    sf_tensor *seed = NULL;
    for (int mask_bits = 7; mask_bits >= 1; mask_bits--) {
        for (int i = 0; i < 3; i++) {
            sf_param_drop_grad(in[i]);
            sf_param_set_trainable(in[i], (mask_bits >> i) & 1);
        }
        sf_graph *g = sf_graph_new();
        sf_tensor *y = sf_attention(g, in[0], in[1], in[2], NULL, NH, NKV, 1);
        REQUIRE(y, "%s", sf_last_error());
        if (!seed) {
            seed = sf_tensor_new_f32(3, y->shape);
            gc_fill_randn(seed, 64, 1.0f);
        }
        REQUIRE(sf_graph_backward(g, y, seed) == SF_OK, "%s", sf_last_error());
        for (int i = 0; i < 3; i++) {
            if (mask_bits == 7) {
                full[i] = sf_tensor_clone(in[i]->grad);
            } else if ((mask_bits >> i) & 1) {
                double md = 0;
                for (int64_t j = 0; j < sf_tensor_numel(full[i]); j++)
                    md = fmax(md, fabs(sf_f32(full[i])[j] - sf_f32(in[i]->grad)[j]));
                CHECK(md == 0.0, "subset %d input %d differs by %g", mask_bits, i, md);
            } else {
                CHECK(in[i]->grad == NULL, "frozen input %d got a gradient", i);
            }
        }
        sf_graph_free(g);
    }
    for (int i = 0; i < 3; i++) {
        sf_tensor_release(in[i]);
        sf_tensor_release(full[i]);
    }
    sf_tensor_release(seed);
}

static double max_abs(const float *a, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}
static double max_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* Optimised vs reference raw kernels on one fused (B, T, (NH + 2 NKV) HD) q|k|v buffer (row strides),
 * T larger than a 64-row block with tails, HD not a multiple of 16. Tolerance: max |diff| <= 1e-5 *
 * max(1, max |ref|). */
static void ref_vs_opt(int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD, int causal, const float *mask,
                       int nthreads) {
    const int64_t W = (NH + 2 * NKV) * HD, C = NH * HD;
    float *qkv = malloc(sizeof(float) * B * T * W);      // (B, T, W)
    float *dout = malloc(sizeof(float) * B * T * C);     // (B, T, C)
    float *o1 = malloc(sizeof(float) * B * T * C), *o2 = malloc(sizeof(float) * B * T * C);
    float *a1 = malloc(sizeof(float) * B * NH * T * T), *a2 = malloc(sizeof(float) * B * NH * T * T);
    float *g1 = malloc(sizeof(float) * B * T * W), *g2 = malloc(sizeof(float) * B * T * W); // d(qkv)
    int64_t s3[3] = {B, T, W}, sc[3] = {B, T, C};
    sf_tensor *tq = sf_tensor_new_f32(3, s3), *td = sf_tensor_new_f32(3, sc), *tg = sf_tensor_new_f32(3, s3);
    gc_fill_randn(tq, 71 + T, 1.0f);
    gc_fill_randn(td, 72 + T, 1.0f);
    gc_fill_randn(tg, 73 + T, 1.0f); /* gradients accumulate: start both from the same nonzero values */
    memcpy(qkv, sf_f32(tq), sizeof(float) * B * T * W);
    memcpy(dout, sf_f32(td), sizeof(float) * B * T * C);
    memcpy(g1, sf_f32(tg), sizeof(float) * B * T * W);
    memcpy(g2, sf_f32(tg), sizeof(float) * B * T * W);
    const float *q = qkv, *k = qkv + NH * HD, *v = qkv + (NH + NKV) * HD;
    float *dq1 = g1, *dk1 = g1 + NH * HD, *dv1 = g1 + (NH + NKV) * HD;
    float *dq2 = g2, *dk2 = g2 + NH * HD, *dv2 = g2 + (NH + NKV) * HD;

    const int saved_threads = omp_get_max_threads();
    omp_set_num_threads(nthreads);
    const int64_t nbs = sf_attention_backward_scratch(B, T, NH, NKV, HD);
    float *bs = malloc(sizeof(float) * nbs);
    sf_attention_forward_ref(o1, a1, q, k, v, mask, B, T, NH, NKV, HD, W, W, W, causal);
    sf_attention_forward(o2, a2, q, k, v, mask, B, T, NH, NKV, HD, W, W, W, causal);
    sf_attention_backward_ref(dq1, dk1, dv1, dout, q, k, v, a1, mask, B, T, NH, NKV, HD, W, W, W, causal);
    sf_attention_backward(dq2, dk2, dv2, bs, nbs, dout, q, k, v, a2, mask, B, T, NH, NKV, HD, W, W, W, causal);
    omp_set_num_threads(saved_threads);

    double tol_o = 1e-5 * fmax(1, max_abs(o1, B * T * C)), tol_a = 1e-5, tol_g = 1e-5 * fmax(1, max_abs(g1, B * T * W));
    double eo = max_diff(o1, o2, B * T * C), ea = max_diff(a1, a2, B * NH * T * T), eg = max_diff(g1, g2, B * T * W);
    CHECK(eo <= tol_o, "T%lld NH%lld NKV%lld causal %d thr %d: out diff %g > %g", (long long)T, (long long)NH,
          (long long)NKV, causal, nthreads, eo, tol_o);
    CHECK(ea <= tol_a, "T%lld NH%lld NKV%lld causal %d thr %d: att diff %g > %g", (long long)T, (long long)NH,
          (long long)NKV, causal, nthreads, ea, tol_a);
    CHECK(eg <= tol_g, "T%lld NH%lld NKV%lld causal %d thr %d: d(qkv) diff %g > %g", (long long)T, (long long)NH,
          (long long)NKV, causal, nthreads, eg, tol_g);
    /* frozen: NULL gradients leave the buffer untouched (run with the saved thread count: the kernel
     * uses only as many threads as the scratch sized for `nthreads` allows) */
    memcpy(g2, sf_f32(tg), sizeof(float) * B * T * W);
    sf_attention_backward(NULL, dk2, NULL, bs, nbs, dout, q, k, v, a2, mask, B, T, NH, NKV, HD, W, W, W, causal);
    double untouched = 0;
    for (int64_t r = 0; r < B * T; r++) {
        untouched = fmax(untouched, max_diff(g2 + r * W, sf_f32(tg) + r * W, NH * HD));
        untouched = fmax(untouched, max_diff(g2 + r * W + (NH + NKV) * HD, sf_f32(tg) + r * W + (NH + NKV) * HD, NKV * HD));
    }
    CHECK(untouched == 0.0, "NULL dq/dv: buffers changed by %g", untouched);
    double ek = 0;
    for (int64_t r = 0; r < B * T; r++)
        ek = fmax(ek, max_diff(g2 + r * W + NH * HD, g1 + r * W + NH * HD, NKV * HD));
    CHECK(ek <= tol_g, "dk alone differs by %g", ek);

    free(qkv), free(dout), free(o1), free(o2), free(a1), free(a2), free(g1), free(g2), free(bs);
    sf_tensor_release(tq), sf_tensor_release(td), sf_tensor_release(tg);
}

TEST(attn_ref_vs_opt_fused_strides) {
    const int64_t B = 2, T = 150;
    float *mask = malloc(sizeof(float) * B * T); // (B, T): seq 0 left+right padded with holes, seq 1 all real
    for (int64_t t = 0; t < T; t++) {
        mask[t] = (t >= 7 && t < 131 && t % 13 != 5) ? 1.0f : 0.0f;
        mask[T + t] = 1.0f;
    }
    const int64_t cfg[4][3] = {{6, 6, 40}, {6, 3, 40}, {6, 2, 17}, {4, 1, 64}}; /* NH, NKV, HD */
    for (int c = 0; c < 4; c++)
        for (int causal = 0; causal <= 1; causal++) {
            ref_vs_opt(B, T, cfg[c][0], cfg[c][1], cfg[c][2], causal, NULL, 2);
            ref_vs_opt(B, T, cfg[c][0], cfg[c][1], cfg[c][2], causal, mask, 3);
        }
    ref_vs_opt(3, 5, 4, 2, 3, 1, NULL, 1); /* tiny: everything is a tail */
    ref_vs_opt(1, 64, 2, 1, 16, 0, NULL, 1);
    free(mask);
}

/* The panel path (attention_short.c: T <= 64, or up to 256 in whole vectors; HD whole vectors) against
 * the reference: T from 1 to a full 64, uneven ones (partial vectors, partial row groups), 72 and 80
 * (whole vectors on some widths only), 128 and 256 (scores in place, column blocks, sliced panels), head
 * sizes of one to eight vectors, GQA, key padding with holes (and a sequence that sees nothing), causal
 * and not, one and two threads. T = 65 and 257 take the blocked path, checked alike. */
TEST(attn_short_path_matches_reference) {
    /* every vector width takes 32 x 32 and 256 x 32; none takes T 257, an odd T past 64 or a partial vector */
    CHECK(sf_attention_short_fits(32, 32) && sf_attention_short_fits(256, 32) && !sf_attention_short_fits(257, 32) &&
              !sf_attention_short_fits(65, 32) && !sf_attention_short_fits(32, 3),
          "short path: fits(32, 32) %d (256, 32) %d (257, 32) %d (65, 32) %d (32, 3) %d",
          sf_attention_short_fits(32, 32), sf_attention_short_fits(256, 32), sf_attention_short_fits(257, 32), sf_attention_short_fits(65, 32),
          sf_attention_short_fits(32, 3));
    const int64_t Ts[10] = {1, 7, 16, 32, 45, 64, 72, 80, 128, 256};
    const int64_t heads[4][3] = {{4, 4, 64}, {6, 3, 16}, {4, 1, 32}, {2, 2, 128}}; /* NH, NKV, HD */
    for (int ti = 0; ti < 10; ti++)
        for (int hi = 0; hi < 4; hi++) {
            const int64_t B = 3, T = Ts[ti], NH = heads[hi][0], NKV = heads[hi][1], HD = heads[hi][2];
            if (!sf_attention_short_fits(T, HD)) continue; /* over 8 vectors on this build's width */
            if (T >= 128 && (hi == 1 || hi == 3)) continue; /* the long ones: MHA and GQA 4:1 suffice */
            float *mask = malloc(sizeof(float) * B * T); // seq 0 all real, seq 1 holes and right padding, seq 2 none
            for (int64_t t = 0; t < T; t++) {
                mask[t] = 1.0f;
                mask[T + t] = (t % 5 != 2 && t < T - T / 4) ? 1.0f : 0.0f;
                mask[2 * T + t] = 0.0f;
            }
            for (int causal = 0; causal <= 1; causal++) {
                ref_vs_opt(B, T, NH, NKV, HD, causal, NULL, 1 + (int)(T % 2));
                ref_vs_opt(B, T, NH, NKV, HD, causal, mask, 2);
            }
            free(mask);
        }
    ref_vs_opt(2, 65, 4, 2, 64, 1, NULL, 2);
    ref_vs_opt(1, 257, 2, 1, 32, 1, NULL, 2);
}

TEST(attn_known_values) {
    /* T = 1: the only key gets weight 1, so head h outputs v of kv head h / (NH/NKV) */
    {
        const int64_t NH = 4, NKV = 2, HD = 3;
        sf_tensor *q = randn3(2, 1, NH * HD, 81, 0), *k = randn3(2, 1, NKV * HD, 82, 0), *v = randn3(2, 1, NKV * HD, 83, 0);
        sf_graph *g = sf_graph_new();
        for (int causal = 0; causal <= 1; causal++) {
            sf_tensor *y = sf_attention(g, q, k, v, NULL, NH, NKV, causal);
            REQUIRE(y, "%s", sf_last_error());
            for (int64_t b = 0; b < 2; b++)
                for (int64_t h = 0; h < NH; h++)
                    for (int64_t c = 0; c < HD; c++)
                        CHECK_CLOSE(sf_f32(y)[b * NH * HD + h * HD + c], sf_f32(v)[b * NKV * HD + (h / 2) * HD + c], 1e-6);
        }
        sf_graph_free(g);
        sf_tensor_release(q), sf_tensor_release(k), sf_tensor_release(v);
    }
    /* q = 0: uniform scores -> causal row t is the mean of v[0..t]; masked bidirectional rows the mean of
     * the real keys */
    {
        const int64_t B = 1, T = 6, NH = 2, NKV = 1, HD = 2;
        int64_t sq[3] = {B, T, NH * HD};
        sf_tensor *q = sf_tensor_zeros_f32(3, sq), *k = randn3(B, T, NKV * HD, 84, 0), *v = randn3(B, T, NKV * HD, 85, 0);
        const int mv[6] = {1, 0, 1, 1, 0, 1};
        sf_tensor *m = make_mask(SF_I32, B, T, mv);
        sf_graph *g = sf_graph_new();
        sf_tensor *yc = sf_attention(g, q, k, v, NULL, NH, NKV, 1);
        sf_tensor *yb = sf_attention(g, q, k, v, m, NH, NKV, 0);
        REQUIRE(yc && yb, "%s", sf_last_error());
        for (int64_t t = 0; t < T; t++)
            for (int64_t c = 0; c < HD; c++) {
                double mc = 0, mb = 0;
                for (int64_t j = 0; j <= t; j++) mc += sf_f32(v)[j * HD + c];
                mc /= (double)(t + 1);
                for (int64_t j = 0; j < T; j++) mb += mv[j] ? sf_f32(v)[j * HD + c] : 0.0;
                mb /= 4.0;
                for (int64_t h = 0; h < NH; h++) {
                    CHECK_CLOSE(sf_f32(yc)[t * NH * HD + h * HD + c], mc, 1e-6);
                    CHECK_CLOSE(sf_f32(yb)[t * NH * HD + h * HD + c], mb, 1e-6);
                }
            }
        sf_graph_free(g);
        sf_tensor_release(q), sf_tensor_release(k), sf_tensor_release(v), sf_tensor_release(m);
    }
    /* closed form, HD = 1 (scale 1): q1 = 1, k = (0, ln 3) -> weights (1/4, 3/4); v = (2, 6) -> 5; and the
     * gradient of out1 w.r.t. v is the weights */
    {
        int64_t s[3] = {1, 2, 1};
        sf_tensor *q = sf_tensor_new_f32(3, s), *k = sf_tensor_new_f32(3, s), *v = sf_tensor_new_f32(3, s);
        sf_f32(q)[0] = 0.3f, sf_f32(q)[1] = 1.0f;
        sf_f32(k)[0] = 0.0f, sf_f32(k)[1] = (float)log(3.0);
        sf_f32(v)[0] = 2.0f, sf_f32(v)[1] = 6.0f;
        sf_param_set_trainable(v, 1);
        sf_graph *g = sf_graph_new();
        sf_tensor *y = sf_attention(g, q, k, v, NULL, 1, 1, 1);
        REQUIRE(y, "%s", sf_last_error());
        CHECK_CLOSE(sf_f32(y)[0], 2.0, 1e-6); /* row 0 sees key 0 only */
        CHECK_CLOSE(sf_f32(y)[1], 5.0, 1e-5);
        sf_tensor *seed = sf_tensor_new_f32(3, s);
        sf_f32(seed)[0] = 0.0f, sf_f32(seed)[1] = 1.0f;
        REQUIRE(sf_graph_backward(g, y, seed) == SF_OK, "%s", sf_last_error());
        CHECK_CLOSE(sf_f32(v->grad)[0], 0.25, 1e-6);
        CHECK_CLOSE(sf_f32(v->grad)[1], 0.75, 1e-6);
        sf_graph_free(g);
        sf_tensor_release(seed), sf_tensor_release(q), sf_tensor_release(k), sf_tensor_release(v);
    }
}

TEST(attn_saved_probabilities) {
    const int64_t B = 2, T = 9, NH = 3, NKV = 1, HD = 4;
    sf_tensor *q = randn3(B, T, NH * HD, 91, 1), *k = randn3(B, T, NKV * HD, 92, 0), *v = randn3(B, T, NKV * HD, 93, 0);
    sf_graph *g = sf_graph_new();
    sf_tensor *y = sf_attention(g, q, k, v, NULL, NH, NKV, 1);
    REQUIRE(y, "%s", sf_last_error());
    REQUIRE(sf_graph_num_nodes(g) == 1, "nodes %d", sf_graph_num_nodes(g));
    const sf_node *n = sf_graph_node(g, 0);
    REQUIRE(n->n_saved >= 1, "nothing saved");
    const sf_tensor *P = n->saved[0];
    CHECK(sf_tensor_numel(P) == B * NH * T * T, "saved numel %lld, want B*NH*T*T = %lld", (long long)sf_tensor_numel(P),
          (long long)(B * NH * T * T));
    CHECK(P->ndim == 4 && P->shape[0] == B && P->shape[1] == NH && P->shape[2] == T && P->shape[3] == T, "shape");
    for (int64_t r = 0; r < B * NH * T; r++) {
        const int64_t i = r % T;
        double s = 0;
        for (int64_t j = 0; j < T; j++) {
            float p = sf_f32(P)[r * T + j];
            if (j > i) CHECK(p == 0.0f, "future key %lld of row %lld has weight %g", (long long)j, (long long)i, p);
            s += p;
        }
        CHECK_CLOSE(s, 1.0, 1e-5);
    }
    sf_graph_free(g);
    /* recording off: same output, no node */
    g = sf_graph_new();
    sf_graph_set_recording(g, 0);
    sf_tensor *y2 = sf_attention(g, q, k, v, NULL, NH, NKV, 1);
    REQUIRE(y2, "%s", sf_last_error());
    CHECK(sf_graph_num_nodes(g) == 0, "recorded with recording off");
    sf_graph *g2 = sf_graph_new();
    sf_tensor *y3 = sf_attention(g2, q, k, v, NULL, NH, NKV, 1);
    CHECK(max_diff(sf_f32(y2), sf_f32(y3), sf_tensor_numel(y2)) == 0.0, "output depends on recording");
    sf_graph_free(g2);
    sf_graph_free(g);
    sf_tensor_release(q), sf_tensor_release(k), sf_tensor_release(v);
}

TEST(attn_errors) {
    sf_graph *g = sf_graph_new();
    sf_tensor *q = randn3(2, 3, 8, 1, 0), *k = randn3(2, 3, 4, 2, 0), *v = randn3(2, 3, 4, 3, 0);
    sf_tensor *kbad = randn3(2, 4, 4, 4, 0);
    int64_t s2[2] = {6, 8}, sm[2] = {2, 3}, smb[2] = {3, 2};
    sf_tensor *q2 = sf_tensor_new_f32(2, s2);
    sf_tensor *qi = sf_tensor_new(SF_I32, 3, q->shape);
    sf_tensor *mu8 = sf_tensor_zeros(SF_U8, 2, sm), *mbad = sf_tensor_zeros(SF_I32, 2, smb);
    struct {
        sf_tensor *q, *k, *v, *m;
        int64_t NH, NKV;
        const char *what;
    } cases[] = {
        {q2, k, v, NULL, 2, 1, "(B, T, NH*HD)"},
        {qi, k, v, NULL, 2, 1, "f32"},
        {q, k, v, NULL, 3, 1, "multiple of NH"},
        {q, k, v, NULL, 2, 3, "multiple of NKV"},
        {q, k, v, NULL, 0, 1, "positive"},
        {q, kbad, v, NULL, 2, 1, "(B, T, NKV*HD)"},
        {q, k, kbad, NULL, 2, 1, "(B, T, NKV*HD)"},
        {q, k, v, NULL, 4, 1, "(B, T, NKV*HD)"}, /* HD = 2 -> k must be (2, 3, 2) */
        {q, k, v, mu8, 2, 1, "i32, i64 or f32"},
        {q, k, v, mbad, 2, 1, "(B, T)"},
        {NULL, k, v, NULL, 2, 1, "missing"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sf_clear_error();
        sf_tensor *y = sf_attention(g, cases[i].q, cases[i].k, cases[i].v, cases[i].m, cases[i].NH, cases[i].NKV, 1);
        CHECK(y == NULL, "case %zu accepted", i);
        CHECK(strstr(sf_last_error(), "attention") && strstr(sf_last_error(), cases[i].what),
              "case %zu message '%s' lacks '%s'", i, sf_last_error(), cases[i].what);
    }
    sf_graph_free(g);
    sf_tensor_release(q), sf_tensor_release(k), sf_tensor_release(v), sf_tensor_release(kbad);
    sf_tensor_release(q2), sf_tensor_release(qi), sf_tensor_release(mu8), sf_tensor_release(mbad);
}

TEST_MAIN()
