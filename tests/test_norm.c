/* test_norm.c — LayerNorm and RMSNorm (ops_norm.c): finite-difference gradients of x, weight and bias
 * (with and without bias, frozen weight, frozen x), known values on [1, 2, 3, 4], the optimised kernels
 * against the double-precision reference loops on sizes that take the parallel paths (accumulation into
 * non-zero gradients, NULL gradient pointers), one row alone against the batch bit for bit, the saved
 * statistics, recording off, and error paths. */
#include <string.h>

#include "../core/ops.h"
#include "gradcheck.h"
#include "test.h"

/* Gradient checks: x ~ N(0, 1) of shape (2, 3, 8), weight ~ 1 + N(0, 0.5), bias ~ N(0, 0.5); central
 * differences with eps 1e-2 (the normalised output is smooth on that scale), relative tolerance 1e-2. */
#define GC_EPS 1e-2
#define GC_TOL 1e-2
#define EPS_LN 1e-5f

typedef struct {
    int rms, with_bias;
} norm_ctx;

static sf_tensor *build(sf_graph *g, sf_tensor **in, void *vctx) {
    norm_ctx *c = vctx;
    if (c->rms) return sf_rmsnorm(g, in[0], in[1], EPS_LN);
    return sf_layernorm(g, in[0], in[1], c->with_bias ? in[2] : NULL, EPS_LN);
}

static sf_tensor *randn(int ndim, const int64_t *shape, unsigned long long seed, float scale, float shift) {
    sf_tensor *t = sf_tensor_new_f32(ndim, shape);
    gc_fill_randn(t, seed, scale);
    for (int64_t i = 0; i < sf_tensor_numel(t); i++) sf_f32(t)[i] += shift;
    return t;
}

/* Runs gradcheck with x (2, 3, 8), weight, bias; train[i] says which of them are trainable. */
static double check_norm(const char *label, int rms, int with_bias, const int train[3]) {
    int64_t xs[3] = {2, 3, 8}, ws[1] = {8};
    sf_tensor *in[3] = {randn(3, xs, 1, 1.0f, 0.3f), randn(1, ws, 2, 0.5f, 1.0f), randn(1, ws, 3, 0.5f, 0.0f)};
    for (int i = 0; i < 3; i++) sf_param_set_trainable(in[i], train[i]);
    norm_ctx c = {rms, with_bias};
    double err = gradcheck(label, build, &c, in, rms ? 2 : (with_bias ? 3 : 2), GC_EPS, 64);
    for (int i = 0; i < 3; i++) {
        if (!train[i] && in[i]->grad) err = INFINITY; /* frozen inputs get nothing */
        sf_tensor_release(in[i]);
    }
    return err;
}

TEST(gradcheck_layernorm) {
    const int all[3] = {1, 1, 1}, frozen_w[3] = {1, 0, 1}, frozen_x[3] = {0, 1, 1}, only_x[3] = {1, 0, 0};
    CHECK(check_norm("layernorm+bias", 0, 1, all) <= GC_TOL, "with bias");
    CHECK(check_norm("layernorm no bias", 0, 0, all) <= GC_TOL, "without bias");
    CHECK(check_norm("layernorm frozen w", 0, 1, frozen_w) <= GC_TOL, "frozen weight");
    CHECK(check_norm("layernorm frozen x", 0, 1, frozen_x) <= GC_TOL, "frozen x");
    CHECK(check_norm("layernorm only x", 0, 0, only_x) <= GC_TOL, "only x trains");
}

TEST(gradcheck_rmsnorm) {
    const int all[3] = {1, 1, 0}, frozen_w[3] = {1, 0, 0}, frozen_x[3] = {0, 1, 0};
    CHECK(check_norm("rmsnorm", 1, 0, all) <= GC_TOL, "rmsnorm");
    CHECK(check_norm("rmsnorm frozen w", 1, 0, frozen_w) <= GC_TOL, "frozen weight");
    CHECK(check_norm("rmsnorm frozen x", 1, 0, frozen_x) <= GC_TOL, "frozen x");
}

/* ---- known values: x = [1, 2, 3, 4], w = 1, b = 0, eps = 1e-5 ---- */

TEST(known_values) {
    int64_t xs[2] = {1, 4}, ws[1] = {4};
    sf_tensor *x = sf_tensor_new_f32(2, xs), *w = sf_tensor_new_f32(1, ws), *b = sf_tensor_zeros_f32(1, ws);
    for (int i = 0; i < 4; i++) {
        sf_f32(x)[i] = (float)(i + 1);
        sf_f32(w)[i] = 1.0f;
    }
    sf_graph *g = sf_graph_new();
    /* mean 2.5, var 1.25: (x - 2.5) / sqrt(1.25 + 1e-5) */
    const double ln[4] = {-1.3416354, -0.4472118, 0.4472118, 1.3416354};
    /* mean(x^2) = 7.5: x / sqrt(7.5 + 1e-5) */
    const double rms[4] = {0.3651481, 0.7302963, 1.0954444, 1.4605925};
    sf_tensor *y = sf_layernorm(g, x, w, b, 1e-5f), *y2 = sf_layernorm(g, x, w, NULL, 1e-5f);
    sf_tensor *z = sf_rmsnorm(g, x, w, 1e-5f);
    REQUIRE(y && y2 && z, "%s", sf_last_error());
    CHECK(sf_tensor_same_shape(y, x) && sf_tensor_same_shape(z, x), "output shape");
    for (int i = 0; i < 4; i++) {
        CHECK_CLOSE(sf_f32(y)[i], ln[i], 1e-6);
        CHECK_CLOSE(sf_f32(y2)[i], ln[i], 1e-6);
        CHECK_CLOSE(sf_f32(z)[i], rms[i], 1e-6);
    }
    /* weight and bias apply per column */
    sf_f32(w)[1] = 2.0f;
    sf_f32(b)[1] = 0.5f;
    CHECK_CLOSE(sf_f32(sf_layernorm(g, x, w, b, 1e-5f))[1], 2 * ln[1] + 0.5, 1e-6);
    CHECK_CLOSE(sf_f32(sf_rmsnorm(g, x, w, 1e-5f))[1], 2 * rms[1], 1e-6);
    /* a constant row normalises to the bias (variance 0, rstd = 1/sqrt(eps)) */
    for (int i = 0; i < 4; i++) sf_f32(x)[i] = 7.0f;
    const float *o = sf_f32(sf_layernorm(g, x, w, b, 1e-5f));
    CHECK(o[0] == 0.0f && o[1] == 0.5f, "constant row -> bias, got %g %g", o[0], o[1]);
    sf_graph_free(g);
    sf_tensor_release(x);
    sf_tensor_release(w);
    sf_tensor_release(b);
}

TEST(saved_statistics) {
    int64_t xs[2] = {3, 5}, ws[1] = {5};
    sf_tensor *x = randn(2, xs, 4, 2.0f, 1.0f), *w = randn(1, ws, 5, 0.1f, 1.0f);
    sf_param_set_trainable(w, 1);
    sf_graph *g = sf_graph_new();
    REQUIRE(sf_layernorm(g, x, w, NULL, 1e-5f) && sf_rmsnorm(g, x, w, 1e-6f), "%s", sf_last_error());
    REQUIRE(sf_graph_num_nodes(g) == 2, "nodes %d", sf_graph_num_nodes(g));
    const sf_node *ln = sf_graph_node(g, 0), *rn = sf_graph_node(g, 1);
    CHECK(ln->n_saved == 2 && rn->n_saved == 1 && ln->n_in == 2, "saved %d/%d in %d", ln->n_saved, rn->n_saved,
          ln->n_in);
    CHECK(ln->f[0] == 1e-5f && rn->f[0] == 1e-6f, "eps attributes %g %g", ln->f[0], rn->f[0]);
    for (int i = 0; i < 3; i++) {
        double m = 0, v = 0, q = 0;
        for (int j = 0; j < 5; j++) m += sf_f32(x)[i * 5 + j] / 5.0;
        for (int j = 0; j < 5; j++) {
            double d = sf_f32(x)[i * 5 + j];
            v += (d - m) * (d - m) / 5.0;
            q += d * d / 5.0;
        }
        CHECK_CLOSE(sf_f32(ln->saved[0])[i], m, 1e-5);
        CHECK_CLOSE(sf_f32(ln->saved[1])[i], 1 / sqrt(v + 1e-5), 1e-4);
        CHECK_CLOSE(sf_f32(rn->saved[0])[i], 1 / sqrt(q + 1e-6), 1e-4);
    }
    sf_graph_free(g);
    /* recording off: no nodes, same values */
    g = sf_graph_new();
    sf_graph_set_recording(g, 0);
    sf_tensor *y = sf_layernorm(g, x, w, NULL, 1e-5f);
    CHECK(y && sf_graph_num_nodes(g) == 0 && !y->requires_grad, "recording off");
    sf_graph_free(g);
    sf_tensor_release(x);
    sf_tensor_release(w);
}

/* ---- optimised vs reference: N = 512, C = 384 (> parallel threshold); gradients start non-zero to
 *      check accumulation; tolerance on max abs diff scaled by the reference magnitude ---- */


static float *fvec(int64_t n, unsigned long long seed, float scale, float shift) {
    float *v = malloc((size_t)n * sizeof(float));
    int64_t s[1] = {n};
    sf_tensor *t = sf_tensor_new_f32(1, s);
    gc_fill_randn(t, seed, scale);
    for (int64_t i = 0; i < n; i++) v[i] = sf_f32(t)[i] + shift;
    sf_tensor_release(t);
    return v;
}

TEST(layernorm_matches_reference) {
    const int64_t N = 512, C = 384;
    float *x = fvec(N * C, 11, 2.0f, 3.0f), *w = fvec(C, 12, 0.5f, 1.0f), *b = fvec(C, 13, 0.5f, 0.0f);
    float *dy = fvec(N * C, 14, 1.0f, 0.0f);
    float *o1 = malloc(N * C * 4), *o2 = malloc(N * C * 4), *m1 = malloc(N * 4), *m2 = malloc(N * 4);
    float *r1 = malloc(N * 4), *r2 = malloc(N * 4);
    for (int bias = 0; bias <= 1; bias++) {
        sf_layernorm_forward(o1, m1, r1, x, w, bias ? b : NULL, N, C, 1e-5f);
        sf_layernorm_forward_ref(o2, m2, r2, x, w, bias ? b : NULL, N, C, 1e-5f);
        CHECK(gc_max_rel_diff(o1, o2, N * C) < 1e-5, "forward (bias %d) %g", bias, gc_max_rel_diff(o1, o2, N * C));
        CHECK(gc_max_rel_diff(m1, m2, N) < 1e-6 && gc_max_rel_diff(r1, r2, N) < 1e-5, "mean/rstd");
    }
    /* every combination of NULL gradients; all start at 0.5 */
    for (int mask = 0; mask < 8; mask++) {
        float *dx1 = fvec(N * C, 0, 0, 0.5f), *dx2 = fvec(N * C, 0, 0, 0.5f);
        float *dw1 = fvec(C, 0, 0, 0.5f), *dw2 = fvec(C, 0, 0, 0.5f), *db1 = fvec(C, 0, 0, 0.5f), *db2 = fvec(C, 0, 0, 0.5f);
        int gx = mask & 1, gw = mask & 2, gb = mask & 4;
        sf_layernorm_backward(gx ? dx1 : NULL, gw ? dw1 : NULL, gb ? db1 : NULL, dy, x, w, m2, r2, N, C);
        sf_layernorm_backward_ref(gx ? dx2 : NULL, gw ? dw2 : NULL, gb ? db2 : NULL, dy, x, w, m2, r2, N, C);
        double ex = gc_max_rel_diff(dx1, dx2, N * C), ew = gc_max_rel_diff(dw1, dw2, C), eb = gc_max_rel_diff(db1, db2, C);
        CHECK(ex < 1e-5 && ew < 1e-5 && eb < 1e-5, "backward mask %d: dx %g dw %g db %g", mask, ex, ew, eb);
        CHECK(gx || dx1[0] == 0.5f, "dinp NULL but touched");
        CHECK(gw || (dw1[0] == 0.5f && dw1[C - 1] == 0.5f), "dweight untouched when NULL");
        CHECK(gb || (db1[0] == 0.5f && db1[C - 1] == 0.5f), "dbias untouched when NULL");
        free(dx1); free(dx2); free(dw1); free(dw2); free(db1); free(db2);
    }
    free(x); free(w); free(b); free(dy); free(o1); free(o2); free(m1); free(m2); free(r1); free(r2);
}

TEST(rmsnorm_matches_reference) {
    const int64_t N = 300, C = 515; /* C not a multiple of 16: uneven column slices */
    float *x = fvec(N * C, 21, 2.0f, 0.5f), *w = fvec(C, 22, 0.5f, 1.0f), *dy = fvec(N * C, 24, 1.0f, 0.0f);
    float *o1 = malloc(N * C * 4), *o2 = malloc(N * C * 4), *r1 = malloc(N * 4), *r2 = malloc(N * 4);
    sf_rmsnorm_forward(o1, r1, x, w, N, C, 1e-6f);
    sf_rmsnorm_forward_ref(o2, r2, x, w, N, C, 1e-6f);
    CHECK(gc_max_rel_diff(o1, o2, N * C) < 1e-5, "forward %g", gc_max_rel_diff(o1, o2, N * C));
    CHECK(gc_max_rel_diff(r1, r2, N) < 1e-5, "rstd %g", gc_max_rel_diff(r1, r2, N));
    for (int mask = 0; mask < 4; mask++) {
        float *dx1 = fvec(N * C, 0, 0, -0.25f), *dx2 = fvec(N * C, 0, 0, -0.25f);
        float *dw1 = fvec(C, 0, 0, -0.25f), *dw2 = fvec(C, 0, 0, -0.25f);
        int gx = mask & 1, gw = mask & 2;
        sf_rmsnorm_backward(gx ? dx1 : NULL, gw ? dw1 : NULL, dy, x, w, r2, N, C);
        sf_rmsnorm_backward_ref(gx ? dx2 : NULL, gw ? dw2 : NULL, dy, x, w, r2, N, C);
        double ex = gc_max_rel_diff(dx1, dx2, N * C), ew = gc_max_rel_diff(dw1, dw2, C);
        CHECK(ex < 1e-5 && ew < 1e-5, "backward mask %d: dx %g dw %g", mask, ex, ew);
        CHECK(gx || dx1[0] == -0.25f, "dinp NULL but touched");
        CHECK(gw || dw1[C - 1] == -0.25f, "dweight NULL but touched");
        free(dx1); free(dx2); free(dw1); free(dw2);
    }
    free(x); free(w); free(dy); free(o1); free(o2); free(r1); free(r2);
}

/* One row at a time (the serial path a KV-cache decode step takes) gives the same bits as the whole batch
 * (the OpenMP path): the two are copies of one loop (core/parallel_for.h). */
TEST(one_row_gives_the_batch_bits) {
    const int64_t N = 200, C = 256; /* N * C above the parallel threshold, one row below it */
    float *x = fvec(N * C, 31, 2.0f, 0.5f), *w = fvec(C, 32, 0.5f, 1.0f), *b = fvec(C, 33, 0.5f, 0.0f);
    float *all = malloc(N * C * 4), *row = malloc(N * C * 4), *ra = malloc(N * 4), *rr = malloc(N * 4);
    float *ma = malloc(N * 4), *mr = malloc(N * 4);
    for (int kind = 0; kind < 2; kind++) {
        if (kind == 0) sf_layernorm_forward(all, ma, ra, x, w, b, N, C, 1e-5f);
        else sf_rmsnorm_forward(all, ra, x, w, N, C, 1e-6f);
        for (int64_t i = 0; i < N; i++)
            if (kind == 0) sf_layernorm_forward(row + i * C, mr + i, rr + i, x + i * C, w, b, 1, C, 1e-5f);
            else sf_rmsnorm_forward(row + i * C, rr + i, x + i * C, w, 1, C, 1e-6f);
        CHECK(memcmp(all, row, N * C * 4) == 0 && memcmp(ra, rr, N * 4) == 0, "%s: rows differ from the batch",
              kind ? "rmsnorm" : "layernorm");
        CHECK(kind == 1 || memcmp(ma, mr, N * 4) == 0, "layernorm means differ");
    }
    free(x); free(w); free(b); free(all); free(row); free(ra); free(rr); free(ma); free(mr);
}

/* Tape op on a (4, 128, 96) tensor (parallel path): gradients equal the reference backward. */
TEST(tape_matches_reference_large) {
    int64_t xs[3] = {4, 128, 96}, ws[1] = {96};
    const int64_t N = 512, C = 96;
    sf_tensor *x = randn(3, xs, 31, 1.0f, 0.0f), *w = randn(1, ws, 32, 0.3f, 1.0f), *b = randn(1, ws, 33, 0.3f, 0);
    sf_tensor *dy = randn(3, xs, 34, 1.0f, 0.0f);
    sf_param_set_trainable(x, 1);
    sf_param_set_trainable(w, 1);
    sf_param_set_trainable(b, 1);
    sf_graph *g = sf_graph_new();
    sf_tensor *y = sf_layernorm(g, x, w, b, 1e-5f);
    REQUIRE(y && sf_graph_backward(g, y, dy) == SF_OK, "%s", sf_last_error());
    float *o = malloc(N * C * 4), *m = malloc(N * 4), *r = malloc(N * 4);
    float *dx = calloc(N * C, 4), *dw = calloc(C, 4), *db = calloc(C, 4);
    sf_layernorm_forward_ref(o, m, r, sf_f32(x), sf_f32(w), sf_f32(b), N, C, 1e-5f);
    sf_layernorm_backward_ref(dx, dw, db, sf_f32(dy), sf_f32(x), sf_f32(w), m, r, N, C);
    CHECK(gc_max_rel_diff(sf_f32(y), o, N * C) < 1e-5, "out");
    CHECK(gc_max_rel_diff(sf_f32(x->grad), dx, N * C) < 1e-5, "dx %g", gc_max_rel_diff(sf_f32(x->grad), dx, N * C));
    CHECK(gc_max_rel_diff(sf_f32(w->grad), dw, C) < 1e-5, "dw %g", gc_max_rel_diff(sf_f32(w->grad), dw, C));
    CHECK(gc_max_rel_diff(sf_f32(b->grad), db, C) < 1e-5, "db %g", gc_max_rel_diff(sf_f32(b->grad), db, C));
    sf_graph_free(g);
    free(o); free(m); free(r); free(dx); free(dw); free(db);
    sf_tensor_release(x); sf_tensor_release(w); sf_tensor_release(b); sf_tensor_release(dy);
}

/* ---- errors ---- */

TEST(errors) {
    int64_t xs[2] = {3, 4}, w4[1] = {4}, w5[1] = {5}, w22[2] = {2, 2};
    sf_tensor *x = sf_tensor_zeros_f32(2, xs), *w = sf_tensor_zeros_f32(1, w4), *bad = sf_tensor_zeros_f32(1, w5);
    sf_tensor *w2d = sf_tensor_zeros_f32(2, w22), *xi = sf_tensor_zeros(SF_I64, 2, xs);
    sf_graph *g = sf_graph_new();
    CHECK(sf_layernorm(g, x, bad, NULL, 1e-5f) == NULL, "weight size");
    CHECK(strstr(sf_last_error(), "layernorm") && strstr(sf_last_error(), "(5,)") && strstr(sf_last_error(), "(3, 4)"),
          "message: %s", sf_last_error());
    CHECK(sf_layernorm(g, x, w, bad, 1e-5f) == NULL && strstr(sf_last_error(), "bias"), "bias: %s", sf_last_error());
    CHECK(sf_layernorm(g, x, w2d, NULL, 1e-5f) == NULL && strstr(sf_last_error(), "(2, 2)"), "2-D weight: %s",
          sf_last_error());
    CHECK(sf_layernorm(g, x, NULL, NULL, 1e-5f) == NULL && strstr(sf_last_error(), "weight is missing"), "no weight: %s",
          sf_last_error());
    CHECK(sf_layernorm(g, xi, w, NULL, 1e-5f) == NULL && strstr(sf_last_error(), "i64"), "dtype: %s", sf_last_error());
    CHECK(sf_layernorm(g, x, w, NULL, -1.0f) == NULL && strstr(sf_last_error(), "eps"), "eps: %s", sf_last_error());
    CHECK(sf_rmsnorm(g, x, bad, 1e-5f) == NULL && strstr(sf_last_error(), "rmsnorm"), "rms weight: %s", sf_last_error());
    CHECK(sf_rmsnorm(g, NULL, w, 1e-5f) == NULL && strstr(sf_last_error(), "x is missing"), "rms x: %s", sf_last_error());
    CHECK(sf_rmsnorm(NULL, x, w, 1e-5f) == NULL && strstr(sf_last_error(), "graph"), "no graph: %s", sf_last_error());
    CHECK(sf_rmsnorm(g, x, w, NAN) == NULL, "NaN eps");
    CHECK(sf_graph_num_nodes(g) == 0, "nodes %d", sf_graph_num_nodes(g));
    CHECK(sf_rmsnorm(g, x, w, 1e-5f) != NULL, "valid call after errors: %s", sf_last_error());
    sf_graph_free(g);
    sf_tensor_release(x); sf_tensor_release(w); sf_tensor_release(bad); sf_tensor_release(w2d); sf_tensor_release(xi);
}

TEST_MAIN()
