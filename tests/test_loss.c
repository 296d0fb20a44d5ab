/* test_loss.c — sf_cross_entropy (ops_loss.c): finite-difference gradient of the logits with ignored
 * rows (i32 and i64 targets), known values (uniform logits -> log V, a two-class closed form, the mean
 * over counted rows only), all rows ignored -> 0 with zero gradient, out-of-range targets and other bad
 * arguments -> NULL with a message, logits around 1e4 stay finite and exact, optimised raw kernels
 * against the double-precision reference; sf_mse_loss's gradient, values and refused shapes. Depends on
 * no other op file. */
#include <math.h>
#include <string.h>

#include "../core/ops.h"
#include "gradcheck.h"
#include "test.h"

/* raw kernels of ops_loss.c (not in ops.h) */
extern void sf_cross_entropy_forward(float *loss, float *lse, int64_t *count, const float *logits,
                                     const int64_t *targets, int64_t ignore_index, int64_t N, int64_t V);
extern void sf_cross_entropy_backward(float *dlogits, float dloss, const float *logits, const float *lse,
                                      const int64_t *targets, int64_t ignore_index, int64_t count, int64_t N,
                                      int64_t V);
extern void sf_cross_entropy_forward_ref(float *loss, float *lse, int64_t *count, const float *logits,
                                         const int64_t *targets, int64_t ignore_index, int64_t N, int64_t V);
extern void sf_cross_entropy_backward_ref(float *dlogits, float dloss, const float *logits, const float *lse,
                                          const int64_t *targets, int64_t ignore_index, int64_t count, int64_t N,
                                          int64_t V);

#define GC_EPS 1e-2 /* central-difference step; logits ~ N(0, 1) */
#define GC_TOL 1e-3 /* max |analytic - numeric| / max |analytic| */
#define IGN (-100)

typedef struct {
    sf_tensor *targets;
    int64_t ignore;
} ce_ctx;

static sf_tensor *build_ce(sf_graph *g, sf_tensor **in, void *ctx) {
    ce_ctx *c = ctx;
    return sf_cross_entropy(g, in[0], c->targets, c->ignore);
}

static sf_tensor *make_targets(sf_dtype dt, int64_t N, const int64_t *vals) {
    sf_tensor *t = sf_tensor_new(dt, 1, &N);
    for (int64_t i = 0; i < N; i++) sf_tensor_set_flat(t, i, (double)vals[i]);
    return t;
}

/* The loss in double straight from the definition. */
static double ce_double(const float *x, const int64_t *tg, int64_t ignore, int64_t N, int64_t V) {
    double tot = 0;
    int64_t cnt = 0;
    for (int64_t i = 0; i < N; i++) {
        if (tg[i] == ignore) continue;
        double mx = -INFINITY, s = 0;
        for (int64_t j = 0; j < V; j++) mx = fmax(mx, x[i * V + j]);
        for (int64_t j = 0; j < V; j++) s += exp((double)x[i * V + j] - mx);
        tot += mx + log(s) - x[i * V + tg[i]];
        cnt++;
    }
    return cnt ? tot / cnt : 0.0;
}

TEST(ce_gradcheck_with_ignored_rows) {
    const int64_t N = 6, V = 7;
    const int64_t tv[6] = {3, IGN, 0, 6, IGN, 2};
    int64_t s[2] = {N, V};
    sf_dtype dts[2] = {SF_I32, SF_I64};
    for (int d = 0; d < 2; d++) {
        sf_tensor *x = sf_tensor_new_f32(2, s);
        gc_fill_randn(x, 100 + d, 1.0f);
        sf_param_set_trainable(x, 1);
        ce_ctx c = {make_targets(dts[d], N, tv), IGN};
        double e = gradcheck(sf_dtype_name(dts[d]), build_ce, &c, &x, 1, GC_EPS, 1000);
        CHECK(e <= GC_TOL, "targets %s: worst rel err %g (eps %g, tol %g)", sf_dtype_name(dts[d]), e, GC_EPS, GC_TOL);
        /* ignored rows get exactly zero gradient */
        for (int64_t j = 0; j < V; j++) {
            CHECK(sf_f32(x->grad)[1 * V + j] == 0.0f, "ignored row 1 col %lld has gradient", (long long)j);
            CHECK(sf_f32(x->grad)[4 * V + j] == 0.0f, "ignored row 4 col %lld has gradient", (long long)j);
        }
        sf_tensor_release(c.targets);
        sf_tensor_release(x);
    }
    /* (B, T, V) logits with (B, T) targets are rows of a matrix */
    int64_t s3[3] = {2, 3, 5}, st[2] = {2, 3};
    sf_tensor *x = sf_tensor_new_f32(3, s3);
    gc_fill_randn(x, 110, 2.0f);
    sf_param_set_trainable(x, 1);
    sf_tensor *t = sf_tensor_new(SF_I64, 2, st);
    const int64_t tv3[6] = {4, 0, IGN, 1, 2, 3};
    for (int i = 0; i < 6; i++) ((int64_t *)sf_tensor_data(t))[i] = tv3[i];
    ce_ctx c = {t, IGN};
    double e = gradcheck("(B, T, V)", build_ce, &c, &x, 1, GC_EPS, 1000);
    CHECK(e <= GC_TOL, "3-d logits: worst rel err %g", e);
    sf_tensor_release(t);
    sf_tensor_release(x);
}

TEST(ce_known_values) {
    /* uniform logits -> log V whatever the target */
    const int64_t N = 4, V = 10;
    int64_t s[2] = {N, V};
    sf_tensor *x = sf_tensor_new_f32(2, s);
    for (int64_t i = 0; i < N * V; i++) sf_f32(x)[i] = 3.25f;
    const int64_t tv[4] = {0, 9, 5, 5};
    sf_tensor *t = make_targets(SF_I32, N, tv);
    sf_graph *g = sf_graph_new();
    sf_tensor *y = sf_cross_entropy(g, x, t, IGN);
    REQUIRE(y, "%s", sf_last_error());
    CHECK(sf_tensor_numel(y) == 1, "loss has %lld elements", (long long)sf_tensor_numel(y));
    CHECK_CLOSE(sf_f32(y)[0], log(10.0), 1e-6);

    /* two classes, logits (0, ln 3): target 1 -> -log(3/4), target 0 -> -log(1/4); an ignored third row
     * does not count, so the mean is (log(4/3) + log 4) / 2 */
    int64_t s2[2] = {3, 2};
    sf_tensor *x2 = sf_tensor_new_f32(2, s2);
    const float lv[6] = {0.0f, (float)log(3.0), 0.0f, (float)log(3.0), 5.0f, -5.0f};
    memcpy(sf_f32(x2), lv, sizeof lv);
    sf_param_set_trainable(x2, 1);
    const int64_t tv2[3] = {1, 0, -1};
    sf_tensor *t2 = make_targets(SF_I64, 3, tv2);
    sf_tensor *y2 = sf_cross_entropy(g, x2, t2, -1);
    REQUIRE(y2, "%s", sf_last_error());
    CHECK_CLOSE(sf_f32(y2)[0], (log(4.0 / 3.0) + log(4.0)) / 2.0, 1e-6);
    /* gradient: (softmax - onehot) / 2 = ((1/4, -1/4), (-3/4, 3/4)) / 2, third row zero */
    REQUIRE(sf_graph_backward(g, y2, NULL) == SF_OK, "%s", sf_last_error());
    const double want[6] = {0.125, -0.125, -0.375, 0.375, 0, 0};
    for (int i = 0; i < 6; i++) CHECK_CLOSE(sf_f32(x2->grad)[i], want[i], 1e-6);
    sf_graph_free(g);
    sf_tensor_release(x), sf_tensor_release(t), sf_tensor_release(x2), sf_tensor_release(t2);
}

TEST(ce_all_ignored_is_zero) {
    int64_t s[2] = {3, 4};
    sf_tensor *x = sf_tensor_new_f32(2, s);
    gc_fill_randn(x, 120, 1.0f);
    sf_param_set_trainable(x, 1);
    const int64_t tv[3] = {IGN, IGN, IGN};
    sf_tensor *t = make_targets(SF_I32, 3, tv);
    sf_graph *g = sf_graph_new();
    sf_tensor *y = sf_cross_entropy(g, x, t, IGN);
    REQUIRE(y, "%s", sf_last_error());
    CHECK(sf_f32(y)[0] == 0.0f, "loss %g", sf_f32(y)[0]);
    REQUIRE(sf_graph_backward(g, y, NULL) == SF_OK, "%s", sf_last_error());
    REQUIRE(x->grad, "no gradient buffer");
    for (int i = 0; i < 12; i++) CHECK(sf_f32(x->grad)[i] == 0.0f, "grad[%d] = %g", i, sf_f32(x->grad)[i]);
    sf_graph_free(g);
    sf_tensor_release(x), sf_tensor_release(t);
}

TEST(ce_errors) {
    int64_t s[2] = {3, 4};
    sf_tensor *x = sf_tensor_new_f32(2, s);
    gc_fill_randn(x, 130, 1.0f);
    sf_graph *g = sf_graph_new();
    struct {
        int64_t t[3];
        const char *want;
    } bad[] = {{{0, 1, 4}, "target 4 at row 2"}, {{0, -1, 2}, "target -1 at row 1"}, {{7, 0, 0}, "target 7 at row 0"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sf_tensor *t = make_targets(SF_I64, 3, bad[i].t);
        sf_clear_error();
        CHECK(sf_cross_entropy(g, x, t, IGN) == NULL, "case %zu accepted", i);
        CHECK(strstr(sf_last_error(), "cross_entropy") && strstr(sf_last_error(), bad[i].want),
              "case %zu message '%s' lacks '%s'", i, sf_last_error(), bad[i].want);
        sf_tensor_release(t);
    }
    /* -1 is fine when it is the ignore index */
    const int64_t ok[3] = {0, -1, 2};
    sf_tensor *t = make_targets(SF_I64, 3, ok);
    CHECK(sf_cross_entropy(g, x, t, -1) != NULL, "%s", sf_last_error());
    /* wrong count, wrong dtypes, missing */
    int64_t n2 = 2;
    sf_tensor *t2 = sf_tensor_zeros(SF_I64, 1, &n2), *tf = sf_tensor_zeros_f32(1, (int64_t[]){3});
    sf_tensor *xi = sf_tensor_zeros(SF_I32, 2, s);
    struct {
        sf_tensor *x, *t;
        const char *want;
    } cases[] = {{x, t2, "one entry per row"}, {x, tf, "i32 or i64"}, {xi, t, "f32"}, {NULL, t, "missing"},
                 {x, NULL, "missing"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sf_clear_error();
        CHECK(sf_cross_entropy(g, cases[i].x, cases[i].t, IGN) == NULL, "bad case %zu accepted", i);
        CHECK(strstr(sf_last_error(), "cross_entropy") && strstr(sf_last_error(), cases[i].want),
              "bad case %zu message '%s' lacks '%s'", i, sf_last_error(), cases[i].want);
    }
    sf_graph_free(g);
    sf_tensor_release(x), sf_tensor_release(t), sf_tensor_release(t2), sf_tensor_release(tf), sf_tensor_release(xi);
}

TEST(ce_large_logits_stay_finite) {
    /* logits around +-1e4: exp would overflow without the max shift */
    const int64_t N = 3, V = 5;
    int64_t s[2] = {N, V};
    sf_tensor *x = sf_tensor_new_f32(2, s);
    const float lv[15] = {1e4f, -1e4f, 0.0f, 1e4f - 1.0f, 5e3f, /**/ -1e4f, -1e4f, -1e4f, -1e4f, -1e4f + 2.0f,
                          /**/ 1e4f, 1e4f, 1e4f, 1e4f, 1e4f};
    memcpy(sf_f32(x), lv, sizeof lv);
    sf_param_set_trainable(x, 1);
    const int64_t tv[3] = {3, 0, 2};
    sf_tensor *t = make_targets(SF_I32, N, tv);
    sf_graph *g = sf_graph_new();
    sf_tensor *y = sf_cross_entropy(g, x, t, IGN);
    REQUIRE(y, "%s", sf_last_error());
    const double want = ce_double(lv, tv, IGN, N, V);
    CHECK(isfinite(sf_f32(y)[0]), "loss %g", sf_f32(y)[0]);
    CHECK_CLOSE(sf_f32(y)[0], want, 1e-4 * fabs(want));
    REQUIRE(sf_graph_backward(g, y, NULL) == SF_OK, "%s", sf_last_error());
    for (int i = 0; i < 15; i++) CHECK(isfinite(sf_f32(x->grad)[i]), "grad[%d] = %g", i, sf_f32(x->grad)[i]);
    /* row 2 is uniform: gradient (1/5 - onehot) / 3. Tolerance 2e-5: the saved f32 logsumexp
     * 1e4 + log 5 is only exact to its spacing there (~1e-3 / 2), a relative error of ~6e-5 in the
     * recomputed softmax (at ordinary logits |x| < 100 the spacing is < 1e-5) */
    for (int j = 0; j < 5; j++) CHECK_CLOSE(sf_f32(x->grad)[10 + j], (0.2 - (j == 2)) / 3.0, 2e-5);
    sf_graph_free(g);
    sf_tensor_release(x), sf_tensor_release(t);
}

TEST(ce_ref_vs_opt) {
    /* V = 1000 crosses the 512-column chunks with a tail; tolerance 1e-5 relative (loss, lse) and
     * 1e-5 * max |ref| for the gradient */
    const int64_t N = 37, V = 1000;
    int64_t s[2] = {N, V};
    sf_tensor *x = sf_tensor_new_f32(2, s), *g0 = sf_tensor_new_f32(2, s);
    gc_fill_randn(x, 140, 3.0f);
    gc_fill_randn(g0, 141, 1.0f); /* backward accumulates: both start from the same values */
    int64_t *tg = malloc(sizeof(int64_t) * N);
    for (int64_t i = 0; i < N; i++) tg[i] = i % 5 == 3 ? IGN : (i * 37) % V;
    float l1, l2, *lse1 = malloc(sizeof(float) * N), *lse2 = malloc(sizeof(float) * N);
    float *d1 = malloc(sizeof(float) * N * V), *d2 = malloc(sizeof(float) * N * V);
    memcpy(d1, sf_f32(g0), sizeof(float) * N * V);
    memcpy(d2, sf_f32(g0), sizeof(float) * N * V);
    int64_t c1, c2;
    sf_cross_entropy_forward_ref(&l1, lse1, &c1, sf_f32(x), tg, IGN, N, V);
    sf_cross_entropy_forward(&l2, lse2, &c2, sf_f32(x), tg, IGN, N, V);
    CHECK(c1 == c2 && c1 == N - 7, "counts %lld %lld", (long long)c1, (long long)c2);
    CHECK_CLOSE(l2, l1, 1e-5 * fabs(l1));
    CHECK_CLOSE(l1, ce_double(sf_f32(x), tg, IGN, N, V), 1e-5 * fabs(l1));
    double lse_err = 0;
    for (int64_t i = 0; i < N; i++) lse_err = fmax(lse_err, fabs(lse1[i] - lse2[i]) / fmax(1.0, fabs(lse1[i])));
    CHECK(lse_err <= 1e-6, "lse rel diff %g", lse_err);
    sf_cross_entropy_backward_ref(d1, 0.7f, sf_f32(x), lse1, tg, IGN, c1, N, V);
    sf_cross_entropy_backward(d2, 0.7f, sf_f32(x), lse2, tg, IGN, c2, N, V);
    double mx = 0, md = 0;
    for (int64_t i = 0; i < N * V; i++) {
        mx = fmax(mx, fabs(d1[i] - sf_f32(g0)[i]));
        md = fmax(md, fabs(d1[i] - d2[i]));
    }
    CHECK(md <= 1e-5 * fmax(mx, 1e-3), "dlogits diff %g (max |ref increment| %g)", md, mx);
    free(tg), free(lse1), free(lse2), free(d1), free(d2);
    sf_tensor_release(x), sf_tensor_release(g0);
}

TEST(ce_no_recording) {
    int64_t s[2] = {2, 3};
    sf_tensor *x = sf_tensor_new_f32(2, s);
    gc_fill_randn(x, 150, 1.0f);
    sf_param_set_trainable(x, 1);
    const int64_t tv[2] = {1, 2};
    sf_tensor *t = make_targets(SF_I32, 2, tv);
    sf_graph *g = sf_graph_new();
    sf_graph_set_recording(g, 0);
    sf_tensor *y = sf_cross_entropy(g, x, t, IGN);
    REQUIRE(y, "%s", sf_last_error());
    CHECK(sf_graph_num_nodes(g) == 0, "recorded with recording off");
    CHECK_CLOSE(sf_f32(y)[0], ce_double(sf_f32(x), tv, IGN, 2, 3), 1e-6);
    sf_graph_free(g);
    sf_tensor_release(x), sf_tensor_release(t);
}

/* sf_mse_loss: the gradient of pred by central differences, known values, bad shapes refused. */
static sf_tensor *build_mse(sf_graph *g, sf_tensor **in, void *ctx) { return sf_mse_loss(g, in[0], ctx); }

TEST(mse_gradcheck_values_and_errors) {
    const int64_t N = 5;
    int64_t s2[2] = {N, 1};
    sf_tensor *x = sf_tensor_new_f32(2, s2), *t = sf_tensor_new_f32(1, &N);
    gc_fill_randn(x, 7, 1.0f);
    gc_fill_uniform(t, 8, 0.0f, 5.0f);
    sf_param_set_trainable(x, 1);
    double e = gradcheck("(N, 1)", build_mse, t, &x, 1, GC_EPS, 1000);
    CHECK(e <= GC_TOL, "mse: worst rel err %g", e);
    /* known values: pred (1, 2, 4) against (0, 2, 1): (1 + 0 + 9) / 3; d/dpred = 2 (pred - t) / 3 */
    const int64_t M = 3;
    sf_tensor *p = sf_tensor_new_f32(1, &M), *q = sf_tensor_new_f32(1, &M);
    const float pv[3] = {1, 2, 4}, qv[3] = {0, 2, 1};
    memcpy(sf_f32(p), pv, sizeof pv);
    memcpy(sf_f32(q), qv, sizeof qv);
    sf_param_set_trainable(p, 1);
    sf_graph *g = sf_graph_new();
    sf_tensor *y = sf_mse_loss(g, p, q);
    REQUIRE(y, "%s", sf_last_error());
    CHECK_CLOSE(sf_f32(y)[0], 10.0 / 3.0, 1e-6);
    REQUIRE(sf_graph_backward(g, y, NULL) == SF_OK, "%s", sf_last_error());
    CHECK_CLOSE(sf_f32(p->grad)[0], 2.0 / 3.0, 1e-6);
    CHECK(sf_f32(p->grad)[1] == 0.0f, "zero error, nonzero gradient");
    CHECK_CLOSE(sf_f32(p->grad)[2], 2.0, 1e-6);
    /* bad shapes: (N, 2) pred, a target of another length, an integer target */
    int64_t bad[2] = {M, 2};
    sf_tensor *wide = sf_tensor_new_f32(2, bad), *ti = sf_tensor_new(SF_I64, 1, &M);
    CHECK(sf_mse_loss(g, wide, q) == NULL && strstr(sf_last_error(), "(N) or (N, 1)"), "%s", sf_last_error());
    CHECK(sf_mse_loss(g, x, q) == NULL && strstr(sf_last_error(), "one value per row"), "%s", sf_last_error());
    CHECK(sf_mse_loss(g, p, ti) == NULL, "an i64 target was accepted");
    sf_graph_free(g);
    sf_tensor_release(wide);
    sf_tensor_release(ti);
    sf_tensor_release(p);
    sf_tensor_release(q);
    sf_tensor_release(x);
    sf_tensor_release(t);
}

TEST_MAIN()
