/* test_lora.c — tests for lora.c's adapted linear, one fused tape node: y = x op(W) + b + scale (x A^T) B^T.
 * Finite-difference gradchecks for x, W, b, A and B in both weight layouts (any-rank x); values and
 * gradients equal to the unfused composition linear + linear(linear(x, A), B) * scale at sizes where the
 * products go to the large-gemm kernel; a frozen base weight and frozen input get no gradient work; a
 * merged adapter reduces to the plain linear; bad shapes give errors that name the adapter.
 * It does not test adapter creation or merging arithmetic beyond that (the Lua tests train with LoRA).
 */
#include <string.h>

#include "../core/lora.h"
#include "gradcheck.h"
#include "test.h"

typedef struct {
    sf_lora_set *set;
    sf_wlayout layout;
} lora_ctx;

/* inputs: x, W, b, A, B (A and B are the adapter's own tensors) */
static sf_tensor *build_lora(sf_graph *g, sf_tensor **in, void *ctx) {
    lora_ctx *c = ctx;
    return sf_lora_linear(g, c->set, in[0], in[1], in[2], c->layout);
}

/* the unfused reference: linear(x, W, b) + scale * linear(linear(x, A), B) */
static sf_tensor *build_unfused(sf_graph *g, sf_tensor **in, void *ctx) {
    lora_ctx *c = ctx;
    const sf_lora_adapter *a = &c->set->a[0];
    sf_tensor *y = sf_linear(g, in[0], in[1], in[2], c->layout);
    sf_tensor *h = sf_linear(g, in[0], a->A, NULL, SF_W_OUT_IN);
    return sf_add(g, y, sf_scale(g, sf_linear(g, h, a->B, NULL, SF_W_OUT_IN), a->scale));
}

/* A LoRA set of rank r on a fresh random W (layout) of C inputs and OC outputs; B random too (it starts
 * at 0 in real use, which would hide half of the gradients). */
static sf_lora_set *make_set(sf_tensor **w_out, int64_t C, int64_t OC, int r, sf_wlayout layout, unsigned long long seed) {
    int64_t ws[2] = {layout == SF_W_OUT_IN ? OC : C, layout == SF_W_OUT_IN ? C : OC};
    sf_tensor *w = sf_tensor_new_f32(2, ws);
    gc_fill_randn(w, seed, 0.5f);
    const char *name = "blk.w";
    sf_lora_set *s = sf_lora_new(&w, &name, &layout, 1, r, 2.0f * (float)r, seed + 1); /* scale 2 */
    if (s) gc_fill_randn(s->a[0].B, seed + 2, 0.5f);
    *w_out = w;
    return s;
}

static double check_case(const char *label, int xnd, const int64_t *xs, int64_t OC, int r, sf_wlayout layout) {
    sf_tensor *w;
    const int64_t C = xs[xnd - 1];
    sf_lora_set *s = make_set(&w, C, OC, r, layout, 40);
    if (!s) return INFINITY;
    int64_t bs[1] = {OC};
    sf_tensor *x = sf_tensor_new_f32(xnd, xs), *b = sf_tensor_new_f32(1, bs);
    gc_fill_randn(x, 41, 1.0f);
    gc_fill_randn(b, 42, 1.0f);
    sf_param_set_trainable(x, 1);
    sf_param_set_trainable(w, 1);
    sf_param_set_trainable(b, 1);
    sf_tensor *in[5] = {x, w, b, s->a[0].A, s->a[0].B};
    lora_ctx ctx = {s, layout};
    double e = gradcheck(label, build_lora, &ctx, in, 5, 1e-2, 48);
    sf_tensor_release(x), sf_tensor_release(b), sf_tensor_release(w);
    sf_lora_free(s);
    return e;
}

TEST(lora_linear_gradcheck_both_layouts) {
    int64_t xs2[2] = {5, 10}, xs3[3] = {2, 3, 9};
    CHECK(check_case("lora out_in", 2, xs2, 7, 3, SF_W_OUT_IN) <= 1e-2, "out_in gradcheck failed");
    CHECK(check_case("lora in_out", 2, xs2, 7, 3, SF_W_IN_OUT) <= 1e-2, "in_out gradcheck failed");
    CHECK(check_case("lora 3-d x", 3, xs3, 6, 2, SF_W_IN_OUT) <= 1e-2, "3-d gradcheck failed");
}

TEST(lora_linear_equals_unfused_composition) {
    /* 128 x 96 -> 80, r = 8: the base products go to the large-gemm kernel */
    for (int layout = 0; layout < 2; layout++) {
        sf_tensor *w;
        const int64_t N = 128, C = 96, OC = 80;
        sf_lora_set *s = make_set(&w, C, OC, 8, (sf_wlayout)layout, 50);
        REQUIRE(s, "lora_new: %s", sf_last_error());
        int64_t xs[2] = {N, C}, bs[1] = {OC}, ys[2] = {N, OC};
        sf_tensor *x = sf_tensor_new_f32(2, xs), *b = sf_tensor_new_f32(1, bs), *dy = sf_tensor_new_f32(2, ys);
        gc_fill_randn(x, 51, 1.0f), gc_fill_randn(b, 52, 1.0f), gc_fill_randn(dy, 53, 1.0f);
        sf_param_set_trainable(x, 1);
        sf_param_set_trainable(b, 1);
        sf_tensor *in[3] = {x, w, b};
        lora_ctx ctx = {s, (sf_wlayout)layout};
        float *got[5] = {0}, *want[5] = {0};
        sf_tensor *grads_of[4] = {x, b, s->a[0].A, s->a[0].B};
        for (int pass = 0; pass < 2; pass++) {
            sf_graph *g = sf_graph_new();
            sf_tensor *y = (pass ? build_unfused : build_lora)(g, in, &ctx);
            REQUIRE(y, "forward (%s): %s", pass ? "unfused" : "fused", sf_last_error());
            REQUIRE(sf_graph_backward(g, y, dy) == SF_OK, "backward: %s", sf_last_error());
            float **dst = pass ? want : got;
            dst[4] = malloc((size_t)(N * OC) * sizeof(float));
            memcpy(dst[4], sf_f32(y), (size_t)(N * OC) * sizeof(float));
            for (int k = 0; k < 4; k++) {
                const int64_t n = sf_tensor_numel(grads_of[k]);
                dst[k] = malloc((size_t)n * sizeof(float));
                memcpy(dst[k], sf_f32(grads_of[k]->grad), (size_t)n * sizeof(float));
                sf_param_zero_grad(grads_of[k]);
            }
            CHECK(w->grad == NULL, "the frozen base weight got a gradient buffer");
            sf_graph_free(g);
        }
        const char *what[5] = {"dx", "db", "dA", "dB", "y"};
        for (int k = 0; k < 5; k++) {
            const int64_t n = k == 4 ? N * OC : sf_tensor_numel(grads_of[k]);
            CHECK(gc_max_rel_diff(got[k], want[k], n) < 1e-4, "layout %d: %s differs from the unfused composition (%.3g)",
                  layout, what[k], gc_max_rel_diff(got[k], want[k], n));
            free(got[k]), free(want[k]);
        }
        sf_tensor_release(x), sf_tensor_release(b), sf_tensor_release(dy), sf_tensor_release(w);
        sf_lora_free(s);
    }
}

TEST(lora_linear_frozen_input_merged_adapter_and_errors) {
    sf_tensor *w;
    sf_lora_set *s = make_set(&w, 12, 9, 2, SF_W_OUT_IN, 60);
    REQUIRE(s, "lora_new: %s", sf_last_error());
    int64_t xs[2] = {4, 12}, bad[2] = {4, 11};
    sf_tensor *x = sf_tensor_new_f32(2, xs), *xb = sf_tensor_new_f32(2, bad);
    gc_fill_randn(x, 61, 1.0f);
    gc_fill_randn(xb, 62, 1.0f);
    /* frozen x: only the adapter's factors get gradients */
    sf_graph *g = sf_graph_new();
    sf_tensor *y = sf_lora_linear(g, s, x, w, NULL, SF_W_OUT_IN);
    REQUIRE(y, "forward: %s", sf_last_error());
    REQUIRE(sf_graph_backward(g, sf_sum(g, y), NULL) == SF_OK, "backward: %s", sf_last_error());
    CHECK(x->grad == NULL && w->grad == NULL, "frozen x / W got gradient buffers");
    CHECK(s->a[0].A->grad && s->a[0].B->grad, "the factors got no gradients");
    float fused[36];
    memcpy(fused, sf_f32(y), sizeof fused);
    sf_graph_free(g);
    /* merged: the plain linear on W + scale B A gives the same output */
    REQUIRE(sf_lora_merge(s) == SF_OK, "merge");
    g = sf_graph_new();
    y = sf_lora_linear(g, s, x, w, NULL, SF_W_OUT_IN);
    REQUIRE(y, "merged forward: %s", sf_last_error());
    CHECK(gc_max_rel_diff(sf_f32(y), fused, 36) < 1e-5, "merged output differs from the adapted one");
    CHECK(sf_graph_node(g, 0) == NULL || strcmp(sf_graph_node(g, 0)->op, "lora_linear") != 0,
          "a merged adapter still recorded lora_linear");
    sf_graph_free(g);
    REQUIRE(sf_lora_unmerge(s) == SF_OK, "unmerge");
    /* wrong input size: an error naming the adapted weight */
    g = sf_graph_new();
    CHECK(sf_lora_linear(g, s, xb, w, NULL, SF_W_OUT_IN) == NULL, "x with 11 features was accepted");
    CHECK(strstr(sf_last_error(), "blk.w") != NULL, "error does not name the weight: %s", sf_last_error());
    CHECK(sf_lora_linear(g, s, x, w, NULL, SF_W_IN_OUT) == NULL, "the wrong layout was accepted");
    sf_graph_free(g);
    sf_tensor_release(x), sf_tensor_release(xb), sf_tensor_release(w);
    sf_lora_free(s);
}

TEST_MAIN()
