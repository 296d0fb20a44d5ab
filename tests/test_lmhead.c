/* test_lmhead.c — the fused LM head + cross-entropy: gradient check (central differences, eps 1e-2,
 * tolerance 1e-2 relative to max |g|) on h and W with ignored rows, and equality of loss and gradients
 * with the unfused path (linear then cross_entropy) at several sizes, including several column blocks,
 * with the logits recomputed in backward, kept from the forward, and with a frozen head (dh formed in the
 * forward by an online softmax). */
#include <math.h>

#include "../core/ops.h"
#include "gradcheck.h"
#include "test.h"

typedef struct {
    sf_tensor *targets;
    int64_t keep; /* keep_floats: 0 recomputes the logits in backward, INT64_MAX keeps them */
} lm_ctx;

static sf_tensor *fused(sf_graph *g, sf_tensor **in, void *c) {
    return sf_lm_head_loss(g, in[0], in[1], ((lm_ctx *)c)->targets, -100, ((lm_ctx *)c)->keep);
}
static sf_tensor *unfused(sf_graph *g, sf_tensor **in, void *c) {
    sf_tensor *logits = sf_linear(g, in[0], in[1], NULL, SF_W_OUT_IN);
    return logits ? sf_cross_entropy(g, logits, ((lm_ctx *)c)->targets, -100) : NULL;
}

static sf_tensor *make_targets(int64_t N, int64_t V, unsigned seed) {
    int64_t s[1] = {N};
    sf_tensor *t = sf_tensor_new(SF_I64, 1, s);
    int64_t *d = sf_tensor_data(t);
    for (int64_t i = 0; i < N; i++) d[i] = (i % 5 == 3) ? -100 : (int64_t)((i * 7919u + seed) % (unsigned)V);
    return t;
}

TEST(lm_head_loss_gradcheck) {
    int64_t N = 6, C = 5, V = 9;
    int64_t sh[2] = {N, C}, sw[2] = {V, C};
    sf_tensor *h = sf_tensor_new_f32(2, sh), *W = sf_tensor_new_f32(2, sw);
    gc_fill_randn(h, 1, 1.0f);
    gc_fill_randn(W, 2, 1.0f);
    sf_param_set_trainable(h, 1);
    sf_param_set_trainable(W, 1);
    lm_ctx c = {make_targets(N, V, 3), 0};
    sf_tensor *in[2] = {h, W};
    for (int kp = 0; kp < 3; kp++) { /* recompute, keep, frozen head (dh formed in the forward) */
        c.keep = kp == 1 ? INT64_MAX : 0;
        sf_param_set_trainable(W, kp != 2);
        double err = gradcheck("lm_head_loss", fused, &c, in, 2, 1e-2, 100);
        CHECK(err <= 1e-2, "mode %d: gradcheck error %.3g", kp, err);
    }
    sf_tensor_release(c.targets);
    sf_tensor_release(h);
    sf_tensor_release(W);
}

TEST(lm_head_loss_equals_unfused) {
    /* one block of columns; 2 and 3 blocks with a partial last one (block width ~1 M floats / N) */
    int64_t sizes[5][3] = {{7, 16, 33}, {300, 32, 500}, {129, 8, 4096}, {2048, 8, 1000}, {4100, 4, 700}};
    for (int q = 0; q < 15; q++) { /* each size: logits recomputed, kept, and a frozen head (dh formed online) */
        const int k = q / 3, mode = q % 3;
        int64_t N = sizes[k][0], C = sizes[k][1], V = sizes[k][2];
        int64_t sh[2] = {N, C}, sw[2] = {V, C};
        sf_tensor *h = sf_tensor_new_f32(2, sh), *W = sf_tensor_new_f32(2, sw);
        gc_fill_randn(h, 10 + (unsigned)k, 1.0f);
        gc_fill_randn(W, 20 + (unsigned)k, 0.5f);
        sf_param_set_trainable(h, 1);
        sf_param_set_trainable(W, mode != 2);
        lm_ctx c = {make_targets(N, V, (unsigned)k), mode == 1 ? INT64_MAX : 0};
        sf_tensor *in[2] = {h, W};
        double loss[2];
        sf_tensor *gh[2], *gw[2];
        for (int f = 0; f < 2; f++) {
            sf_param_drop_grad(h);
            sf_param_drop_grad(W);
            sf_graph *g = sf_graph_new();
            sf_tensor *l = f ? unfused(g, in, &c) : fused(g, in, &c);
            REQUIRE(l, "%s", sf_last_error());
            loss[f] = sf_f32(l)[0];
            REQUIRE(sf_graph_backward(g, l, NULL) == SF_OK, "%s", sf_last_error());
            gh[f] = sf_tensor_clone(h->grad);
            gw[f] = mode == 2 ? NULL : sf_tensor_clone(W->grad);
            sf_graph_free(g);
        }
        CHECK(fabs(loss[0] - loss[1]) <= 1e-5 * fabs(loss[1]), "size %d: loss %.8f vs %.8f", k, loss[0], loss[1]);
        double dh = 0, dw = 0, mh = 0, mw = 0;
        for (int64_t i = 0; i < sf_tensor_numel(h); i++) {
            dh = fmax(dh, fabs(sf_f32(gh[0])[i] - sf_f32(gh[1])[i]));
            mh = fmax(mh, fabs(sf_f32(gh[1])[i]));
        }
        CHECK(mode != 2 || W->grad == NULL, "a frozen head got a gradient");
        for (int64_t i = 0; mode != 2 && i < sf_tensor_numel(W); i++) {
            dw = fmax(dw, fabs(sf_f32(gw[0])[i] - sf_f32(gw[1])[i]));
            mw = fmax(mw, fabs(sf_f32(gw[1])[i]));
        }
        CHECK(dh <= 1e-5 * mh && dw <= 1e-5 * mw, "size %d mode %d: dh %.3g (max %.3g), dW %.3g (max %.3g)", k, mode, dh,
              mh, dw, mw);
        for (int f = 0; f < 2; f++) {
            sf_tensor_release(gh[f]);
            sf_tensor_release(gw[f]);
        }
        sf_tensor_release(c.targets);
        sf_tensor_release(h);
        sf_tensor_release(W);
    }
}

TEST(lm_head_loss_errors) {
    sf_graph *g = sf_graph_new();
    int64_t sh[2] = {3, 4}, sw[2] = {5, 4};
    sf_tensor *h = sf_tensor_zeros_f32(2, sh), *W = sf_tensor_zeros_f32(2, sw), *t = make_targets(3, 5, 0);
    ((int64_t *)sf_tensor_data(t))[1] = 7;
    CHECK(!sf_lm_head_loss(g, h, W, t, -100, 0), "out-of-range target accepted");
    sf_tensor_release(t);
    t = make_targets(2, 5, 0);
    CHECK(!sf_lm_head_loss(g, h, W, t, -100, 0), "wrong number of targets accepted");
    sf_tensor_release(t);
    sf_tensor_release(h);
    sf_tensor_release(W);
    sf_graph_free(g);
}

TEST_MAIN()
