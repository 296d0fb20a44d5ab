/* test_fused.c — the fused ops sf_add_layernorm (ops_norm.c), sf_bias_gelu (ops_elementwise.c) and
 * sf_gelu_linear (ops_linear.c, also with a sampled sparse weight):
 * finite-difference gradients of every input for each way the two outputs of add_layernorm can be used
 * (both, only the norm, only the sum, a GPT-2-like chain where the sum feeds the next fused op, the same
 * tensor added to itself; frozen and bias-less variants), equality with the unfused compositions
 * (sf_add + sf_layernorm; sf_linear with bias + sf_gelu) on shapes that take the parallel paths, including
 * a leaf with a gradient hook, the optimised kernels against their reference loops for every combination
 * of NULL gradient pointers (accumulating into non-zero buffers), the tape structure (nodes, frozen inputs,
 * recording off, backward from the sum alone) and error paths. */
#include <string.h>

#include "../core/ops.h"
#include "gradcheck.h"
#include "test.h"

/* Gradient checks: central differences with eps 1e-2 (the normalised output and gelu are smooth on that
 * scale), relative tolerance 1e-2 on the worst element (see gradcheck.h). */
#define GC_EPS 1e-2
#define GC_TOL 1e-2
#define EPS_LN 1e-5f

static sf_tensor *randn(int ndim, const int64_t *shape, unsigned long long seed, float scale, float shift) {
    sf_tensor *t = sf_tensor_new_f32(ndim, shape);
    gc_fill_randn(t, seed, scale);
    for (int64_t i = 0; i < sf_tensor_numel(t); i++) sf_f32(t)[i] += shift;
    return t;
}

static float *fvec(int64_t n, unsigned long long seed, float scale, float shift) {
    int64_t s[1] = {n};
    sf_tensor *t = randn(1, s, seed, scale, shift);
    float *v = malloc((size_t)n * sizeof(float));
    memcpy(v, sf_f32(t), (size_t)n * sizeof(float));
    sf_tensor_release(t);
    return v;
}


/* ================================== add_layernorm ============================================= */

enum { M_BOTH, M_NORM_ONLY, M_SUM_ONLY, M_CHAIN, M_SAME };

typedef struct {
    int mode, with_bias, fused;
} aln_ctx;

/* sum = x + d, h = layernorm(sum), fused or as sf_add + sf_layernorm. */
static sf_tensor *add_ln(sf_graph *g, int fused, sf_tensor *x, sf_tensor *d, sf_tensor *w, sf_tensor *b,
                         sf_tensor **sum) {
    if (fused) return sf_add_layernorm(g, x, d, w, b, EPS_LN, sum);
    sf_tensor *r = sf_add(g, x, d);
    if (sum) *sum = r;
    return r ? sf_layernorm(g, r, w, b, EPS_LN) : NULL;
}

/* in = {x, d, w, b}. */
static sf_tensor *build_aln(sf_graph *g, sf_tensor **in, void *vctx) {
    aln_ctx *c = vctx;
    sf_tensor *x = in[0], *d = in[1], *w = in[2], *b = c->with_bias ? in[3] : NULL, *r = NULL, *r2 = NULL;
    sf_tensor *h;
    switch (c->mode) {
    case M_BOTH: /* the sum also feeds a later op: its gradient comes from two places */
        h = add_ln(g, c->fused, x, d, w, b, &r);
        return h ? sf_add(g, h, sf_tanh(g, r)) : NULL;
    case M_NORM_ONLY: return add_ln(g, c->fused, x, d, w, b, NULL);
    case M_SUM_ONLY: /* the normalised output gets no gradient: the sum node back-propagates alone */
        h = add_ln(g, c->fused, x, d, w, b, &r);
        return h ? sf_tanh(g, r) : NULL;
    case M_CHAIN: /* GPT-2: x1 = x + d, h1 = ln(x1), o = f(h1), x2 = x1 + o, h2 = ln(x2) */
        h = add_ln(g, c->fused, x, d, w, b, &r);
        h = h ? add_ln(g, c->fused, r, sf_tanh(g, h), w, b, &r2) : NULL;
        return h ? sf_add(g, h, sf_scale(g, r2, 0.5f)) : NULL;
    case M_SAME: /* x + x */
        h = add_ln(g, c->fused, x, x, w, b, &r);
        return h ? sf_add(g, h, sf_tanh(g, r)) : NULL;
    }
    return NULL;
}

/* x, d (2, 3, 8), w ~ 1 + N(0, 0.5), b ~ N(0, 0.5); train[i] says which of x, d, w, b train. */
static double check_aln(const char *label, int mode, int with_bias, const int train[4]) {
    int64_t xs[3] = {2, 3, 8}, ws[1] = {8};
    sf_tensor *in[4] = {randn(3, xs, 1, 1.0f, 0.3f), randn(3, xs, 2, 1.0f, -0.2f), randn(1, ws, 3, 0.5f, 1.0f),
                        randn(1, ws, 4, 0.5f, 0.0f)};
    for (int i = 0; i < 4; i++) sf_param_set_trainable(in[i], train[i]);
    aln_ctx c = {mode, with_bias, 1};
    double err = gradcheck(label, build_aln, &c, in, with_bias ? 4 : 3, GC_EPS, 64);
    for (int i = 0; i < 4; i++) {
        if (!train[i] && in[i]->grad) err = INFINITY; /* frozen inputs get nothing */
        sf_tensor_release(in[i]);
    }
    return err;
}

TEST(gradcheck_add_layernorm) {
    const int all[4] = {1, 1, 1, 1}, frozen_norm[4] = {1, 1, 0, 0}, frozen_x[4] = {0, 1, 1, 1};
    const int only_norm[4] = {0, 0, 1, 1}, same[4] = {1, 0, 1, 1};
    CHECK(check_aln("aln both", M_BOTH, 1, all) <= GC_TOL, "both outputs used");
    CHECK(check_aln("aln no bias", M_BOTH, 0, all) <= GC_TOL, "no bias");
    CHECK(check_aln("aln norm only", M_NORM_ONLY, 1, all) <= GC_TOL, "sum not used");
    CHECK(check_aln("aln sum only", M_SUM_ONLY, 1, frozen_norm) <= GC_TOL, "norm output not used");
    CHECK(check_aln("aln chain", M_CHAIN, 1, all) <= GC_TOL, "chain of two");
    CHECK(check_aln("aln x + x", M_SAME, 1, same) <= GC_TOL, "x + x");
    CHECK(check_aln("aln frozen norm", M_BOTH, 1, frozen_norm) <= GC_TOL, "frozen weight and bias");
    CHECK(check_aln("aln frozen x", M_CHAIN, 1, frozen_x) <= GC_TOL, "frozen x");
    CHECK(check_aln("aln only norm trains", M_BOTH, 1, only_norm) <= GC_TOL, "only weight and bias");
}

/* A leaf-gradient hook that counts its calls and keeps the gradient (it lands in t->grad). */
static sf_hook_result count_hook(sf_tensor *t, sf_tensor *grad, void *user) {
    (void)t;
    (void)grad;
    ++*(int *)user;
    return SF_HOOK_KEEP;
}

/* Fused and unfused on (4, 128, 96) (parallel paths): the same outputs and gradients of x, d, w, b, for
 * every mode; x carries a hook, which must fire exactly once per backward. */
TEST(add_layernorm_matches_unfused) {
    int64_t xs[3] = {4, 128, 96}, ws[1] = {96};
    const int64_t N = 512, C = 96;
    for (int mode = M_BOTH; mode <= M_SAME; mode++) {
        float *grads[2][4] = {{NULL}};
        float *outs[2] = {NULL, NULL};
        int64_t n_out = 0;
        for (int fused = 0; fused <= 1; fused++) {
            sf_tensor *in[4] = {randn(3, xs, 41, 1.0f, 0.5f), randn(3, xs, 42, 2.0f, 0.0f),
                                randn(1, ws, 43, 0.3f, 1.0f), randn(1, ws, 44, 0.3f, 0.0f)};
            for (int i = 0; i < 4; i++) sf_param_set_trainable(in[i], mode != M_SAME || i != 1);
            int calls = 0;
            sf_param_set_hook(in[0], count_hook, &calls);
            sf_graph *g = sf_graph_new();
            aln_ctx c = {mode, 1, fused};
            sf_tensor *y = build_aln(g, in, &c);
            REQUIRE(y, "%s", sf_last_error());
            sf_tensor *seed = randn(y->ndim, y->shape, 45, 1.0f, 0.0f);
            REQUIRE(sf_graph_backward(g, y, seed) == SF_OK, "%s", sf_last_error());
            CHECK(calls == 1, "mode %d fused %d: hook fired %d times", mode, fused, calls);
            n_out = sf_tensor_numel(y);
            outs[fused] = malloc((size_t)n_out * sizeof(float));
            memcpy(outs[fused], sf_f32(y), (size_t)n_out * sizeof(float));
            for (int i = 0; i < 4; i++) {
                if (!in[i]->grad) continue;
                grads[fused][i] = malloc(sf_tensor_nbytes(in[i]->grad));
                memcpy(grads[fused][i], sf_f32(in[i]->grad), sf_tensor_nbytes(in[i]->grad));
            }
            sf_graph_free(g);
            sf_tensor_release(seed);
            for (int i = 0; i < 4; i++) sf_tensor_release(in[i]);
        }
        CHECK(gc_max_rel_diff(outs[1], outs[0], n_out) < 1e-6, "mode %d output %g", mode,
              gc_max_rel_diff(outs[1], outs[0], n_out));
        const int64_t sz[4] = {N * C, N * C, C, C};
        for (int i = 0; i < 4; i++) {
            CHECK(!grads[0][i] == !grads[1][i], "mode %d: input %d has a gradient in one version only", mode, i);
            if (grads[0][i] && grads[1][i]) {
                double e = gc_max_rel_diff(grads[1][i], grads[0][i], sz[i]);
                CHECK(e < 1e-5, "mode %d: gradient of input %d differs by %g", mode, i, e);
            }
            free(grads[0][i]);
            free(grads[1][i]);
        }
        free(outs[0]);
        free(outs[1]);
    }
}

/* Optimised kernels vs reference loops: N = 300, C = 515 (parallel; C not a multiple of 16), every
 * combination of NULL da, db, dweight, dbias, dsum, and da == db; gradients start at 0.5. */
TEST(add_layernorm_kernels_match_reference) {
    const int64_t N = 300, C = 515;
    float *a = fvec(N * C, 51, 2.0f, 1.0f), *b = fvec(N * C, 52, 1.0f, -0.5f), *w = fvec(C, 53, 0.5f, 1.0f);
    float *bias = fvec(C, 54, 0.5f, 0.0f), *dy = fvec(N * C, 55, 1.0f, 0.0f), *ds = fvec(N * C, 56, 1.0f, 0.0f);
    float *s1 = malloc(N * C * 4), *s2 = malloc(N * C * 4), *o1 = malloc(N * C * 4), *o2 = malloc(N * C * 4);
    float *m1 = malloc(N * 4), *m2 = malloc(N * 4), *r1 = malloc(N * 4), *r2 = malloc(N * 4);
    for (int wb = 0; wb <= 1; wb++) {
        sf_add_layernorm_forward(s1, o1, m1, r1, a, b, w, wb ? bias : NULL, N, C, 1e-5f);
        sf_add_layernorm_forward_ref(s2, o2, m2, r2, a, b, w, wb ? bias : NULL, N, C, 1e-5f);
        CHECK(!memcmp(s1, s2, N * C * 4), "sum differs");
        CHECK(gc_max_rel_diff(o1, o2, N * C) < 1e-5, "forward (bias %d) %g", wb, gc_max_rel_diff(o1, o2, N * C));
        CHECK(gc_max_rel_diff(m1, m2, N) < 1e-6 && gc_max_rel_diff(r1, r2, N) < 1e-5, "mean/rstd");
    }
    sf_add_layernorm_forward(s1, o1, NULL, NULL, a, b, w, bias, N, C, 1e-5f); /* statistics not stored */
    CHECK(gc_max_rel_diff(o1, o2, N * C) < 1e-5, "forward without statistics");
    for (int mask = 0; mask < 33; mask++) { /* mask 32: da == db */
        int same = mask == 32, ga = same || (mask & 1), gb = !same && (mask & 2), gw = mask & 4, gbias = mask & 8;
        const float *dsum = mask & 16 ? ds : NULL;
        float *da1 = fvec(N * C, 0, 0, 0.5f), *da2 = fvec(N * C, 0, 0, 0.5f);
        float *db1 = fvec(N * C, 0, 0, 0.5f), *db2 = fvec(N * C, 0, 0, 0.5f);
        float *dw1 = fvec(C, 0, 0, 0.5f), *dw2 = fvec(C, 0, 0, 0.5f), *dc1 = fvec(C, 0, 0, 0.5f), *dc2 = fvec(C, 0, 0, 0.5f);
        float *pa1 = ga ? da1 : NULL, *pa2 = ga ? da2 : NULL;
        float *pb1 = same ? da1 : gb ? db1 : NULL, *pb2 = same ? da2 : gb ? db2 : NULL;
        sf_add_layernorm_backward(pa1, pb1, gw ? dw1 : NULL, gbias ? dc1 : NULL, dsum, dy, s2, w, m2, r2, N, C);
        sf_add_layernorm_backward_ref(pa2, pb2, gw ? dw2 : NULL, gbias ? dc2 : NULL, dsum, dy, s2, w, m2, r2, N, C);
        double ea = gc_max_rel_diff(da1, da2, N * C), eb = gc_max_rel_diff(db1, db2, N * C);
        double ew = gc_max_rel_diff(dw1, dw2, C), ec = gc_max_rel_diff(dc1, dc2, C);
        CHECK(ea < 1e-5 && eb < 1e-5 && ew < 1e-5 && ec < 1e-5, "mask %d: da %g db %g dw %g dbias %g", mask, ea, eb,
              ew, ec);
        CHECK(ga || da1[0] == 0.5f, "mask %d: da NULL but touched", mask);
        CHECK(gb || db1[N * C - 1] == 0.5f, "mask %d: db NULL but touched", mask);
        CHECK(gw || dw1[C - 1] == 0.5f, "mask %d: dweight NULL but touched", mask);
        CHECK(gbias || dc1[C - 1] == 0.5f, "mask %d: dbias NULL but touched", mask);
        free(da1); free(da2); free(db1); free(db2); free(dw1); free(dw2); free(dc1); free(dc2);
    }
    free(a); free(b); free(w); free(bias); free(dy); free(ds);
    free(s1); free(s2); free(o1); free(o2); free(m1); free(m2); free(r1); free(r2);
}

TEST(add_layernorm_tape) {
    int64_t xs[2] = {3, 4}, ws[1] = {4};
    sf_tensor *x = randn(2, xs, 61, 1.0f, 0.0f), *d = randn(2, xs, 62, 1.0f, 0.0f);
    sf_tensor *w = randn(1, ws, 63, 0.1f, 1.0f), *b = randn(1, ws, 64, 0.1f, 0.0f);
    sf_graph *g = sf_graph_new();
    sf_tensor *sum = NULL;
    /* nothing trains: no node, but both results */
    sf_tensor *h = sf_add_layernorm(g, x, d, w, b, 1e-5f, &sum);
    REQUIRE(h && sum, "%s", sf_last_error());
    CHECK(sf_graph_num_nodes(g) == 0 && !h->requires_grad && !sum->requires_grad, "frozen: nodes %d",
          sf_graph_num_nodes(g));
    for (int i = 0; i < 12; i++) CHECK(sf_f32(sum)[i] == sf_f32(x)[i] + sf_f32(d)[i], "sum[%d]", i);
    /* only the norm trains: one node, the sum needs no gradient */
    sf_param_set_trainable(w, 1);
    h = sf_add_layernorm(g, x, d, w, NULL, 1e-5f, &sum);
    CHECK(h && sf_graph_num_nodes(g) == 1 && h->requires_grad && !sum->requires_grad, "frozen addends: nodes %d",
          sf_graph_num_nodes(g));
    CHECK(!strcmp(sf_graph_node(g, 0)->op, "add_layernorm"), "op %s", sf_graph_node(g, 0)->op);
    sf_graph_free(g);
    /* x trains: the sum node, then the norm node (saves mean, rstd, x, d) */
    sf_param_set_trainable(x, 1);
    g = sf_graph_new();
    h = sf_add_layernorm(g, x, d, w, b, 1e-5f, &sum);
    REQUIRE(h && sf_graph_num_nodes(g) == 2, "nodes %d", sf_graph_num_nodes(g));
    const sf_node *n0 = sf_graph_node(g, 0), *n1 = sf_graph_node(g, 1);
    CHECK(!strcmp(n0->op, "add_ln_sum") && n0->out == sum && n0->n_in == 2, "sum node %s", n0->op);
    CHECK(!strcmp(n1->op, "add_layernorm") && n1->out == h && n1->in[0] == sum && n1->n_in == 3 && n1->n_saved == 4,
          "norm node %s in %d saved %d", n1->op, n1->n_in, n1->n_saved);
    /* backward from the sum alone: d sum / dx = 1, the norm node never runs */
    sf_tensor *seed = randn(2, xs, 65, 1.0f, 0.0f);
    REQUIRE(sf_graph_backward(g, sum, seed) == SF_OK, "%s", sf_last_error());
    for (int i = 0; i < 12; i++) CHECK(sf_f32(x->grad)[i] == sf_f32(seed)[i], "dx[%d]", i);
    CHECK(!w->grad, "the norm's weight got a gradient from a backward of the sum");
    sf_graph_free(g);
    /* recording off */
    g = sf_graph_new();
    sf_graph_set_recording(g, 0);
    h = sf_add_layernorm(g, x, d, w, b, 1e-5f, NULL);
    CHECK(h && sf_graph_num_nodes(g) == 0 && !h->requires_grad, "recording off");
    sf_graph_free(g);
    sf_tensor_release(seed);
    sf_tensor_release(x); sf_tensor_release(d); sf_tensor_release(w); sf_tensor_release(b);
}

TEST(add_layernorm_errors) {
    int64_t xs[2] = {3, 4}, x5[2] = {3, 5}, w4[1] = {4}, w5[1] = {5};
    sf_tensor *x = sf_tensor_zeros_f32(2, xs), *d5 = sf_tensor_zeros_f32(2, x5), *w = sf_tensor_zeros_f32(1, w4);
    sf_tensor *bad = sf_tensor_zeros_f32(1, w5), *xi = sf_tensor_zeros(SF_I64, 2, xs);
    sf_graph *g = sf_graph_new();
    sf_tensor *sum = x;
    CHECK(sf_add_layernorm(g, x, d5, w, NULL, 1e-5f, &sum) == NULL && sum == NULL, "shape mismatch");
    CHECK(strstr(sf_last_error(), "add_layernorm") && strstr(sf_last_error(), "(3, 5)"), "message: %s", sf_last_error());
    CHECK(sf_add_layernorm(g, x, xi, w, NULL, 1e-5f, NULL) == NULL && strstr(sf_last_error(), "i64"), "dtype: %s",
          sf_last_error());
    CHECK(sf_add_layernorm(g, x, NULL, w, NULL, 1e-5f, NULL) == NULL && strstr(sf_last_error(), "d is missing"),
          "no d: %s", sf_last_error());
    CHECK(sf_add_layernorm(g, x, x, bad, NULL, 1e-5f, NULL) == NULL && strstr(sf_last_error(), "weight"), "weight: %s",
          sf_last_error());
    CHECK(sf_add_layernorm(g, x, x, w, bad, 1e-5f, NULL) == NULL && strstr(sf_last_error(), "bias"), "bias: %s",
          sf_last_error());
    CHECK(sf_add_layernorm(g, x, x, w, NULL, NAN, NULL) == NULL && strstr(sf_last_error(), "eps"), "eps: %s",
          sf_last_error());
    CHECK(sf_add_layernorm(NULL, x, x, w, NULL, 1e-5f, NULL) == NULL && strstr(sf_last_error(), "graph"), "graph: %s",
          sf_last_error());
    CHECK(sf_graph_num_nodes(g) == 0, "nodes %d", sf_graph_num_nodes(g));
    sf_graph_free(g);
    sf_tensor_release(x); sf_tensor_release(d5); sf_tensor_release(w); sf_tensor_release(bad); sf_tensor_release(xi);
}

/* ==================================== bias_gelu =============================================== */

typedef struct {
    sf_gelu_kind kind;
} bg_ctx;

static sf_tensor *build_bg(sf_graph *g, sf_tensor **in, void *vctx) {
    return sf_bias_gelu(g, in[0], in[1], ((bg_ctx *)vctx)->kind);
}

/* x (3, 7) ~ N(0, 1.5), bias (7) ~ N(0, 1). */
static double check_bg(const char *label, sf_gelu_kind kind, int train_x, int train_b) {
    int64_t xs[2] = {3, 7}, bs[1] = {7};
    sf_tensor *in[2] = {randn(2, xs, 71, 1.5f, 0.0f), randn(1, bs, 72, 1.0f, 0.0f)};
    sf_param_set_trainable(in[0], train_x);
    sf_param_set_trainable(in[1], train_b);
    bg_ctx c = {kind};
    double err = gradcheck(label, build_bg, &c, in, 2, 1e-3, 64);
    if ((!train_x && in[0]->grad) || (!train_b && in[1]->grad)) err = INFINITY;
    sf_tensor_release(in[0]);
    sf_tensor_release(in[1]);
    return err;
}

TEST(gradcheck_bias_gelu) {
    for (int kind = 0; kind <= 1; kind++) {
        CHECK(check_bg("bias_gelu", (sf_gelu_kind)kind, 1, 1) <= GC_TOL, "kind %d", kind);
        CHECK(check_bg("bias_gelu frozen bias", (sf_gelu_kind)kind, 1, 0) <= GC_TOL, "kind %d frozen bias", kind);
        CHECK(check_bg("bias_gelu frozen x", (sf_gelu_kind)kind, 0, 1) <= GC_TOL, "kind %d frozen x", kind);
    }
}

/* Kernels vs reference: N = 300, C = 515, x ~ N(0, 3); every combination of NULL dinp / dbias, gradients
 * starting at 0.25 (backward accumulates). dbias sums 300 rows in float: tolerance 1e-5 relative. */
TEST(bias_gelu_kernels_match_reference) {
    const int64_t N = 300, C = 515;
    float *x = fvec(N * C, 81, 3.0f, 0.0f), *bias = fvec(C, 82, 1.0f, 0.0f), *dy = fvec(N * C, 83, 1.0f, 0.0f);
    float *o1 = malloc(N * C * 4), *o2 = malloc(N * C * 4);
    for (int kind = 0; kind <= 1; kind++) {
        sf_bias_gelu_forward(o1, x, bias, N, C, (sf_gelu_kind)kind);
        sf_bias_gelu_forward_ref(o2, x, bias, N, C, (sf_gelu_kind)kind);
        CHECK(gc_max_rel_diff(o1, o2, N * C) < 1e-6, "kind %d forward %g", kind, gc_max_rel_diff(o1, o2, N * C));
        for (int mask = 0; mask < 4; mask++) {
            int gx = mask & 1, gb = mask & 2;
            float *dx1 = fvec(N * C, 0, 0, 0.25f), *dx2 = fvec(N * C, 0, 0, 0.25f);
            float *db1 = fvec(C, 0, 0, 0.25f), *db2 = fvec(C, 0, 0, 0.25f);
            float *scr = malloc((size_t)sf_bias_gelu_backward_scratch(N, C) * sizeof(float));
            sf_bias_gelu_backward(gx ? dx1 : NULL, gb ? db1 : NULL, scr, dy, x, bias, N, C, (sf_gelu_kind)kind);
            free(scr);
            sf_bias_gelu_backward_ref(gx ? dx2 : NULL, gb ? db2 : NULL, dy, x, bias, N, C, (sf_gelu_kind)kind);
            double ex = gc_max_rel_diff(dx1, dx2, N * C), eb = gc_max_rel_diff(db1, db2, C);
            CHECK(ex < 1e-5 && eb < 1e-5, "kind %d mask %d: dx %g dbias %g", kind, mask, ex, eb);
            CHECK(gx || dx1[N * C - 1] == 0.25f, "dinp NULL but touched");
            CHECK(gb || db1[C - 1] == 0.25f, "dbias NULL but touched");
            free(dx1); free(dx2); free(db1); free(db2);
        }
    }
    free(x); free(bias); free(dy); free(o1); free(o2);
}

/* The MLP up-projection: linear(x, W, b) -> gelu against linear(x, W, NULL) -> bias_gelu(b), x (256, 64),
 * W (64, 256) GPT-2 layout: outputs and the gradients of x, W, b agree; a frozen bias gets none. */
TEST(bias_gelu_matches_linear_then_gelu) {
    int64_t xs[2] = {256, 64}, wsz[2] = {64, 256}, bs[1] = {256};
    for (int kind = 0; kind <= 1; kind++)
        for (int train_b = 0; train_b <= 1; train_b++) {
            float *res[2][4] = {{NULL}};
            for (int fused = 0; fused <= 1; fused++) {
                sf_tensor *x = randn(2, xs, 91, 1.0f, 0.0f), *w = randn(2, wsz, 92, 0.2f, 0.0f);
                sf_tensor *b = randn(1, bs, 93, 0.5f, 0.0f), *seed = randn(2, (int64_t[2]){256, 256}, 94, 1.0f, 0.0f);
                sf_param_set_trainable(x, 1);
                sf_param_set_trainable(w, 1);
                sf_param_set_trainable(b, train_b);
                sf_graph *g = sf_graph_new();
                sf_tensor *y = fused ? sf_bias_gelu(g, sf_linear(g, x, w, NULL, SF_W_IN_OUT), b, (sf_gelu_kind)kind)
                                     : sf_gelu(g, sf_linear(g, x, w, b, SF_W_IN_OUT), (sf_gelu_kind)kind);
                REQUIRE(y && sf_graph_backward(g, y, seed) == SF_OK, "%s", sf_last_error());
                sf_tensor *t[4] = {y, x->grad, w->grad, b->grad};
                CHECK(!train_b == !b->grad, "bias gradient present %d, trains %d", b->grad != NULL, train_b);
                for (int i = 0; i < 4; i++)
                    if (t[i]) {
                        res[fused][i] = malloc(sf_tensor_nbytes(t[i]));
                        memcpy(res[fused][i], sf_f32(t[i]), sf_tensor_nbytes(t[i]));
                    }
                sf_graph_free(g);
                sf_tensor_release(x); sf_tensor_release(w); sf_tensor_release(b); sf_tensor_release(seed);
            }
            const int64_t sz[4] = {256 * 256, 256 * 64, 64 * 256, 256};
            const char *names[4] = {"output", "dx", "dW", "dbias"};
            for (int i = 0; i < 4; i++) {
                if (res[0][i] && res[1][i]) {
                    double e = gc_max_rel_diff(res[1][i], res[0][i], sz[i]);
                    CHECK(e < 1e-5, "kind %d train_b %d: %s differs by %g", kind, train_b, names[i], e);
                }
                free(res[0][i]);
                free(res[1][i]);
            }
        }
}

/* ---- sf_gelu_linear (ops_linear.c): linear(gelu(u)) recomputing gelu(u) in backward ---- */
typedef struct {
    sf_gelu_kind kind;
    sf_wlayout layout;
} gl_ctx;

static sf_tensor *build_gl(sf_graph *g, sf_tensor **in, void *vctx) {
    gl_ctx *c = vctx;
    return sf_gelu_linear(g, in[0], c->kind, in[1], in[2], c->layout);
}

TEST(gradcheck_gelu_linear) {
    for (int kind = 0; kind <= 1; kind++)
        for (int lay = 0; lay <= 1; lay++) {
            int64_t us[2] = {5, 6}, ws[2] = {lay ? 6 : 4, lay ? 4 : 6}, bs[1] = {4};
            sf_tensor *in[3] = {randn(2, us, 101, 1.5f, 0.0f), randn(2, ws, 102, 0.5f, 0.0f), randn(1, bs, 103, 0.5f, 0.0f)};
            for (int i = 0; i < 3; i++) sf_param_set_trainable(in[i], 1);
            gl_ctx c = {(sf_gelu_kind)kind, (sf_wlayout)lay};
            double err = gradcheck("gelu_linear", build_gl, &c, in, 3, 1e-3, 64);
            CHECK(err <= GC_TOL, "kind %d layout %d: gradcheck error %.3g", kind, lay, err);
            for (int i = 0; i < 3; i++) sf_tensor_release(in[i]);
        }
}

TEST(gelu_linear_input_gradient_accumulates_across_backwards) {
    /* the first backward writes u's fresh gradient (gelu'(u) waits in it); the second finds it holding
     * values and must add: twice the single pass, for both GELU kinds */
    for (int kind = 0; kind <= 1; kind++) {
        int64_t us[2] = {40, 24}, ws[2] = {24, 16}, bs[1] = {16};
        sf_tensor *u = randn(2, us, 111, 1.5f, 0.0f), *w = randn(2, ws, 112, 0.5f, 0.0f), *b = randn(1, bs, 113, 0.5f, 0.0f);
        sf_param_set_trainable(u, 1);
        float once[40 * 24];
        for (int pass = 0; pass < 2; pass++) {
            sf_graph *g = sf_graph_new();
            sf_tensor *y = sf_gelu_linear(g, u, (sf_gelu_kind)kind, w, b, SF_W_IN_OUT);
            REQUIRE(y, "gelu_linear: %s", sf_last_error());
            REQUIRE(sf_graph_backward(g, sf_sum(g, y), NULL) == SF_OK, "backward: %s", sf_last_error());
            if (pass == 0) {
                memcpy(once, sf_f32(u->grad), sizeof once);
            } else {
                double worst = 0;
                for (int i = 0; i < 40 * 24; i++) worst = fmax(worst, fabs(sf_f32(u->grad)[i] - 2.0 * once[i]));
                CHECK(worst < 1e-5, "kind %d: second pass gave %.3g off twice the first", kind, worst);
            }
            sf_graph_free(g);
        }
        sf_tensor_release(u), sf_tensor_release(w), sf_tensor_release(b);
    }
}

/* Against sf_gelu then sf_linear, u (200, 48) -> 96 outputs, both layouts: output and the gradients of
 * u, W, b agree; with a frozen u there is no input gradient; a SIFT-style sampled sparse weight gets
 * the same k entries as the dense gradient holds. */
TEST(gelu_linear_matches_gelu_then_linear) {
    const int64_t N = 200, C = 48, OC = 96, K = 97;
    for (int lay = 0; lay <= 1; lay++)
        for (int train_u = 0; train_u <= 1; train_u++) {
            float *res[2][4] = {{NULL}}, sparse_vals[K];
            for (int fused = 0; fused <= 1; fused++) {
                int64_t us[2] = {N, C}, ws[2] = {lay ? C : OC, lay ? OC : C}, bs[1] = {OC}, ys[2] = {N, OC};
                sf_tensor *u = randn(2, us, 111, 1.5f, 0.0f), *w = randn(2, ws, 112, 0.3f, 0.0f);
                sf_tensor *b = randn(1, bs, 113, 0.5f, 0.0f), *seed = randn(2, ys, 114, 1.0f, 0.0f);
                sf_param_set_trainable(u, train_u);
                sf_param_set_trainable(w, 1);
                sf_param_set_trainable(b, 1);
                sf_graph *g = sf_graph_new();
                sf_tensor *y = fused ? sf_gelu_linear(g, u, SF_GELU_TANH, w, b, (sf_wlayout)lay)
                                     : sf_linear(g, sf_gelu(g, u, SF_GELU_TANH), w, b, (sf_wlayout)lay);
                REQUIRE(y && sf_graph_backward(g, y, seed) == SF_OK, "%s", sf_last_error());
                CHECK(!train_u == !u->grad, "input gradient present %d, u trains %d", u->grad != NULL, train_u);
                sf_tensor *t[4] = {y, u->grad, w->grad, b->grad};
                for (int i = 0; i < 4; i++)
                    if (t[i]) {
                        res[fused][i] = malloc(sf_tensor_nbytes(t[i]));
                        memcpy(res[fused][i], sf_f32(t[i]), sf_tensor_nbytes(t[i]));
                    }
                sf_graph_free(g);
                if (fused) { /* the same weight as a sampled sparse leaf: k entries, no dense gradient, and
                              * (its own backward) du and dbias as before; once alone (du written fresh) and
                              * once used twice (the second use adds to du): everything doubles */
                    sf_index_array idx = sf_index_alloc(K, C * OC);
                    for (int64_t j = 0; j < K; j++) sf_index_set(idx, j, j * 47);
                    for (int uses = 1; uses <= 2; uses++) {
                        memset(sparse_vals, 0, sizeof sparse_vals);
                        sf_sparse_grad sp = {.k = K, .idx = idx, .values = sparse_vals, .sampled = 1};
                        sf_param_drop_grad(w);
                        sf_param_drop_grad(u);
                        sf_param_drop_grad(b);
                        w->sparse = &sp;
                        g = sf_graph_new();
                        y = sf_gelu_linear(g, u, SF_GELU_TANH, w, b, (sf_wlayout)lay);
                        if (uses == 2) y = sf_add(g, y, sf_gelu_linear(g, u, SF_GELU_TANH, w, b, (sf_wlayout)lay));
                        REQUIRE(y && sf_graph_backward(g, y, seed) == SF_OK, "%s", sf_last_error());
                        CHECK(w->grad == NULL, "a dense gradient was formed for the sampled weight");
                        double worst = 0, mx = 0;
                        for (int64_t j = 0; j < K; j++) {
                            worst = fmax(worst, fabs(sparse_vals[j] - uses * res[0][2][j * 47]));
                            mx = fmax(mx, fabs(uses * res[0][2][j * 47]));
                        }
                        CHECK(worst <= 1e-5 * mx, "layout %d uses %d: sampled entries differ by %g (max %g)", lay, uses,
                              worst, mx);
                        const sf_tensor *got[2] = {u->grad, b->grad};
                        const float *want[2] = {res[0][1], res[0][3]};
                        const int64_t n_el[2] = {N * C, OC};
                        for (int q = 0; q < 2; q++) {
                            CHECK(!got[q] == !want[q], "layout %d uses %d: gradient %d present %d, expected %d", lay,
                                  uses, q, got[q] != NULL, want[q] != NULL);
                            if (!got[q] || !want[q]) continue;
                            double e = 0, m = 0;
                            for (int64_t i = 0; i < n_el[q]; i++) {
                                e = fmax(e, fabs(sf_f32(got[q])[i] - uses * want[q][i]));
                                m = fmax(m, fabs(uses * want[q][i]));
                            }
                            CHECK(e <= 1e-5 * m, "layout %d uses %d: %s differs by %g (max %g) with a sampled weight",
                                  lay, uses, q ? "dbias" : "du", e, m);
                        }
                        w->sparse = NULL;
                        sf_graph_free(g);
                    }
                    sf_index_free(&idx);
                }
                sf_tensor_release(u); sf_tensor_release(w); sf_tensor_release(b); sf_tensor_release(seed);
            }
            const int64_t sz[4] = {N * OC, N * C, C * OC, OC};
            const char *names[4] = {"output", "du", "dW", "dbias"};
            for (int i = 0; i < 4; i++) {
                CHECK(!res[0][i] == !res[1][i], "layout %d: %s present in one path only", lay, names[i]);
                if (res[0][i] && res[1][i]) {
                    double e = gc_max_rel_diff(res[1][i], res[0][i], sz[i]);
                    CHECK(e < 1e-5, "layout %d train_u %d: %s differs by %g", lay, train_u, names[i], e);
                }
                free(res[0][i]);
                free(res[1][i]);
            }
        }
}

TEST(bias_gelu_errors) {
    int64_t xs[2] = {3, 4}, b5[1] = {5}, b4[1] = {4};
    sf_tensor *x = sf_tensor_zeros_f32(2, xs), *bad = sf_tensor_zeros_f32(1, b5), *b = sf_tensor_zeros_f32(1, b4);
    sf_tensor *bi = sf_tensor_zeros(SF_I32, 1, b4);
    sf_graph *g = sf_graph_new();
    CHECK(sf_bias_gelu(g, x, bad, SF_GELU_TANH) == NULL && strstr(sf_last_error(), "bias_gelu") &&
              strstr(sf_last_error(), "(5,)") && strstr(sf_last_error(), "(3, 4)"),
          "bias shape: %s", sf_last_error());
    CHECK(sf_bias_gelu(g, x, bi, SF_GELU_TANH) == NULL && strstr(sf_last_error(), "i32"), "dtype: %s", sf_last_error());
    CHECK(sf_bias_gelu(g, x, NULL, SF_GELU_TANH) == NULL && strstr(sf_last_error(), "bias is missing"), "no bias: %s",
          sf_last_error());
    CHECK(sf_bias_gelu(g, x, b, (sf_gelu_kind)5) == NULL && strstr(sf_last_error(), "kind"), "kind: %s",
          sf_last_error());
    CHECK(sf_bias_gelu(NULL, x, b, SF_GELU_ERF) == NULL && strstr(sf_last_error(), "graph"), "graph: %s",
          sf_last_error());
    /* known value: gelu(0 + 1) */
    sf_f32(b)[1] = 1.0f;
    const sf_tensor *y = sf_bias_gelu(g, x, b, SF_GELU_ERF);
    REQUIRE(y, "%s", sf_last_error());
    CHECK_CLOSE(sf_f32(y)[1], 0.8413447, 1e-6);
    CHECK(sf_f32(y)[0] == 0.0f && sf_f32(y)[5] == sf_f32(y)[1], "per-column bias");
    CHECK(sf_graph_num_nodes(g) == 0, "nodes %d", sf_graph_num_nodes(g));
    sf_graph_free(g);
    sf_tensor_release(x); sf_tensor_release(bad); sf_tensor_release(b); sf_tensor_release(bi);
}

TEST_MAIN()
