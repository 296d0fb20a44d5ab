/* test_linear.c — tests for ops_linear.c: sf_linear (both weight layouts, with/without bias, any-rank
 * input, frozen weight), sf_matmul, the raw kernels against their *_ref loops, known values, and error
 * paths. It does not benchmark (see scripts/bench_kernels.c).
 *
 * Gradchecks: inputs ~ N(0, 1), eps 1e-2, tolerance 1e-2 (max abs error / max |analytic grad|); the
 * ops are linear in each input, so central differences are exact up to float rounding.
 * Ref-vs-optimised: max |opt - ref| / max(max |ref|, 1) <= 1e-4.
 */
#include <math.h>
#include <string.h>

#include "../core/gemm.h"
#include "../core/ops.h"
#include "../core/optim.h"
#include "gradcheck.h"
#include "test.h"

#define GC_EPS 1e-2
#define GC_TOL 1e-2
#define GC_POINTS 64
#define REF_TOL 1e-4

typedef struct {
    sf_wlayout layout;
} lin_ctx;

/* inputs: x, w, b (b optional: when n_inputs == 2 the build passes NULL) */
static sf_tensor *build_linear_b(sf_graph *g, sf_tensor **in, void *ctx) {
    return sf_linear(g, in[0], in[1], in[2], ((lin_ctx *)ctx)->layout);
}
static sf_tensor *build_linear_nob(sf_graph *g, sf_tensor **in, void *ctx) {
    return sf_linear(g, in[0], in[1], NULL, ((lin_ctx *)ctx)->layout);
}
static sf_tensor *build_matmul(sf_graph *g, sf_tensor **in, void *ctx) {
    (void)ctx;
    return sf_matmul(g, in[0], in[1]);
}

static sf_tensor *randn(int ndim, const int64_t *shape, unsigned long long seed, int trainable) {
    sf_tensor *t = sf_tensor_new_f32(ndim, shape);
    gc_fill_randn(t, seed, 1.0f);
    sf_param_set_trainable(t, trainable);
    return t;
}

static void weight_shape(int64_t *ws, int64_t C, int64_t OC, sf_wlayout layout) {
    ws[0] = layout == SF_W_OUT_IN ? OC : C;
    ws[1] = layout == SF_W_OUT_IN ? C : OC;
}

/* gradcheck sf_linear for x of shape xs (last dim C), OC outputs, both layouts handled by caller */
static double check_linear(const char *label, int xnd, const int64_t *xs, int64_t OC, sf_wlayout layout,
                           int with_bias, int w_trainable) {
    int64_t C = xs[xnd - 1], ws[2], bs[1] = {OC};
    weight_shape(ws, C, OC, layout);
    sf_tensor *in[3] = {randn(xnd, xs, 11, 1), randn(2, ws, 22, w_trainable), with_bias ? randn(1, bs, 33, 1) : NULL};
    lin_ctx ctx = {layout};
    double err = gradcheck(label, with_bias ? build_linear_b : build_linear_nob, &ctx, in, with_bias ? 3 : 2, GC_EPS,
                           GC_POINTS);
    if (!w_trainable) CHECK(in[1]->grad == NULL, "%s: frozen weight got a gradient buffer", label);
    for (int i = 0; i < 3; i++) sf_tensor_release(in[i]);
    return err;
}

TEST(linear_gradcheck_out_in_bias) {
    int64_t xs[2] = {5, 7};
    double e = check_linear("out_in+b", 2, xs, 4, SF_W_OUT_IN, 1, 1);
    CHECK(e <= GC_TOL, "rel err %.3g", e);
}

TEST(linear_gradcheck_in_out_bias) {
    int64_t xs[2] = {5, 7};
    double e = check_linear("in_out+b", 2, xs, 4, SF_W_IN_OUT, 1, 1);
    CHECK(e <= GC_TOL, "rel err %.3g", e);
}

TEST(linear_gradcheck_no_bias_both_layouts) {
    int64_t xs[2] = {6, 3};
    double e1 = check_linear("out_in", 2, xs, 5, SF_W_OUT_IN, 0, 1);
    double e2 = check_linear("in_out", 2, xs, 5, SF_W_IN_OUT, 0, 1);
    CHECK(e1 <= GC_TOL, "out_in rel err %.3g", e1);
    CHECK(e2 <= GC_TOL, "in_out rel err %.3g", e2);
}

TEST(linear_gradcheck_3d_input) {
    int64_t xs[3] = {2, 3, 6}; // (B, T, C)
    double e1 = check_linear("3d out_in+b", 3, xs, 4, SF_W_OUT_IN, 1, 1);
    double e2 = check_linear("3d in_out", 3, xs, 4, SF_W_IN_OUT, 0, 1);
    CHECK(e1 <= GC_TOL, "out_in rel err %.3g", e1);
    CHECK(e2 <= GC_TOL, "in_out rel err %.3g", e2);
}

TEST(linear_output_shape_keeps_leading_dims) {
    sf_graph *g = sf_graph_new();
    int64_t xs[3] = {2, 3, 6}, ws[2] = {4, 6};
    sf_tensor *x = randn(3, xs, 1, 0), *w = randn(2, ws, 2, 0);
    sf_tensor *y = sf_linear(g, x, w, NULL, SF_W_OUT_IN); // (2, 3, 4)
    REQUIRE(y, "linear failed: %s", sf_last_error());
    CHECK(y->ndim == 3 && y->shape[0] == 2 && y->shape[1] == 3 && y->shape[2] == 4, "bad output shape");
    /* 1-D x (C,) -> (OC,) */
    int64_t x1s[1] = {6};
    sf_tensor *x1 = randn(1, x1s, 3, 0);
    sf_tensor *y1 = sf_linear(g, x1, w, NULL, SF_W_OUT_IN);
    REQUIRE(y1, "1-D linear failed: %s", sf_last_error());
    CHECK(y1->ndim == 1 && y1->shape[0] == 4, "bad 1-D output shape");
    for (int o = 0; o < 4; o++) {
        double acc = 0;
        for (int c = 0; c < 6; c++) acc += sf_f32(x1)[c] * sf_f32(w)[o * 6 + c];
        CHECK_CLOSE(sf_f32(y1)[o], acc, 1e-5);
    }
    CHECK(sf_graph_num_nodes(g) == 0, "no node should be recorded for frozen inputs");
    sf_graph_free(g);
    sf_tensor_release(x);
    sf_tensor_release(w);
    sf_tensor_release(x1);
}

TEST(linear_frozen_weight) {
    int64_t xs[3] = {2, 4, 5};
    double e1 = check_linear("frozen out_in+b", 3, xs, 3, SF_W_OUT_IN, 1, 0);
    double e2 = check_linear("frozen in_out", 3, xs, 3, SF_W_IN_OUT, 0, 0);
    CHECK(e1 <= GC_TOL, "out_in rel err %.3g", e1);
    CHECK(e2 <= GC_TOL, "in_out rel err %.3g", e2);
}

TEST(linear_only_weight_trains) {
    /* frozen x (e.g. the embedding output of a frozen model), trainable w: no dinp, w grad right */
    int64_t xs[2] = {4, 5}, ws[2] = {3, 5};
    sf_tensor *in[2] = {randn(2, xs, 5, 0), randn(2, ws, 6, 1)};
    lin_ctx ctx = {SF_W_OUT_IN};
    double e = gradcheck("only w", build_linear_nob, &ctx, in, 2, GC_EPS, GC_POINTS);
    CHECK(e <= GC_TOL, "rel err %.3g", e);
    CHECK(in[0]->grad == NULL, "frozen x got a gradient");
    sf_tensor_release(in[0]);
    sf_tensor_release(in[1]);
}

/* One linear step: y = x w^T, backward with seed dy; returns whether w's gradient is known finite. */
static int linear_step_vouched(sf_tensor *x, sf_tensor *w, sf_tensor *dy) {
    sf_graph *g = sf_graph_new();
    sf_tensor *y = sf_linear(g, x, w, NULL, SF_W_OUT_IN);
    const int ran = y && sf_graph_backward(g, y, dy) == SF_OK;
    CHECK(ran, "linear step: %s", sf_last_error());
    sf_graph_free(g);
    return ran && sf_graph_grad_known_finite(w);
}

/* The weight's gradient is vouched for by the product that wrote it when that product checks its stores
 * (the own kernel; 256 x 128 x 96 is on its route) and found no Inf or NaN, so the optimizer's sweep can
 * skip it; never when a NaN or an overflow reached it, when it is handed out, or on an unchecked route. */
TEST(linear_weight_gradient_vouched_finite_only_when_it_is) {
    const int64_t N = 256, C = 128, OC = 96, xs[2] = {N, C}, ws[2] = {OC, C}, ys[2] = {N, OC};
    sf_tensor *x = randn(2, xs, 31, 0), *w = randn(2, ws, 32, 1), *dy = randn(2, ys, 33, 0);
    const int checked = strcmp(sf_gemm_kernel(), "openblas") != 0; /* OpenBLAS: nothing vouches */
    CHECK(linear_step_vouched(x, w, dy) == checked, "finite gradient: vouched %d, route checks %d",
          sf_graph_grad_known_finite(w), checked);
    CHECK(sf_count_nonfinite(sf_f32(w->grad), OC * C) == 0, "gradient should be finite");
    CHECK(linear_step_vouched(x, w, dy) == checked, "accumulated into (beta 1): still vouched");
    sf_param_zero_grad(w);
    CHECK(sf_graph_grad_known_finite(w), "zeroed: known finite");
    sf_f32(dy)[5 * OC + 7] = NAN;
    CHECK(!linear_step_vouched(x, w, dy), "a NaN reached the gradient but it was vouched for");
    CHECK(sf_count_nonfinite(sf_f32(w->grad), OC * C) > 0, "the NaN should be in the gradient");
    sf_f32(dy)[5 * OC + 7] = 1.0f;
    sf_param_zero_grad(w);
    CHECK(linear_step_vouched(x, w, dy) == checked, "finite again after zeroing");
    for (int64_t i = 0; i < N * C; i++) sf_f32(x)[i] *= 1e20f; /* finite operands, products past FLT_MAX */
    for (int64_t i = 0; i < N * OC; i++) sf_f32(dy)[i] *= 1e20f;
    sf_param_zero_grad(w);
    CHECK(!linear_step_vouched(x, w, dy), "an overflow to Inf was vouched for");
    CHECK(sf_count_nonfinite(sf_f32(w->grad), OC * C) > 0, "the overflow should be in the gradient");
    sf_param_zero_grad(w);
    sf_tensor *held = w->grad;
    sf_tensor_retain(held); /* somebody else holds the buffer: they could write into it */
    CHECK(!sf_graph_grad_known_finite(w), "a buffer held elsewhere was trusted");
    sf_tensor_release(held);
    sf_tensor_release(x), sf_tensor_release(w), sf_tensor_release(dy);
}

TEST(matmul_gradcheck) {
    int64_t as[2] = {4, 6}, bs[2] = {6, 3};
    sf_tensor *in[2] = {randn(2, as, 7, 1), randn(2, bs, 8, 1)};
    double e = gradcheck("matmul", build_matmul, NULL, in, 2, GC_EPS, GC_POINTS);
    CHECK(e <= GC_TOL, "rel err %.3g", e);
    sf_tensor_release(in[0]);
    sf_tensor_release(in[1]);
}

TEST(matmul_known_value) {
    /* [[1,2,3],[4,5,6]] . [[1,0],[0,1],[1,1]] = [[4,5],[10,11]] */
    sf_graph *g = sf_graph_new();
    sf_tensor *a = sf_tensor_f32d(2, 3, -1, -1), *b = sf_tensor_f32d(3, 2, -1, -1);
    const float av[6] = {1, 2, 3, 4, 5, 6}, bv[6] = {1, 0, 0, 1, 1, 1}, want[4] = {4, 5, 10, 11};
    memcpy(sf_f32(a), av, sizeof av);
    memcpy(sf_f32(b), bv, sizeof bv);
    sf_tensor *y = sf_matmul(g, a, b);
    REQUIRE(y, "matmul failed: %s", sf_last_error());
    CHECK(y->ndim == 2 && y->shape[0] == 2 && y->shape[1] == 2, "bad shape");
    for (int i = 0; i < 4; i++) CHECK_CLOSE(sf_f32(y)[i], want[i], 0);
    sf_graph_free(g);
    sf_tensor_release(a);
    sf_tensor_release(b);
}

TEST(linear_known_value_forward_backward) {
    /* x = [[1,2],[3,4]], W (out_in) = [[1,0],[0,1],[1,1]], b = [0.5,-1,2]
     * y = x W^T + b = [[1.5,1,5],[3.5,3,9]]; with dout = ones:
     * dx[n,c] = sum_o W[o,c] = [2,2]; dW[o,c] = sum_n x[n,c] = [4,6]; db = [2,2,2]. */
    const float xv[4] = {1, 2, 3, 4}, wv[6] = {1, 0, 0, 1, 1, 1}, bv[3] = {0.5f, -1, 2};
    const float wantY[6] = {1.5f, 1, 5, 3.5f, 3, 9};
    for (int lay = 0; lay < 2; lay++) {
        sf_graph *g = sf_graph_new();
        sf_tensor *x = sf_tensor_f32d(2, 2, -1, -1), *b = sf_tensor_f32d(3, -1, -1, -1);
        sf_tensor *w = lay == 0 ? sf_tensor_f32d(3, 2, -1, -1) : sf_tensor_f32d(2, 3, -1, -1);
        memcpy(sf_f32(x), xv, sizeof xv);
        memcpy(sf_f32(b), bv, sizeof bv);
        for (int o = 0; o < 3; o++)
            for (int c = 0; c < 2; c++) sf_f32(w)[lay == 0 ? o * 2 + c : c * 3 + o] = wv[o * 2 + c];
        sf_param_set_trainable(x, 1);
        sf_param_set_trainable(w, 1);
        sf_param_set_trainable(b, 1);
        sf_tensor *y = sf_linear(g, x, w, b, (sf_wlayout)lay);
        REQUIRE(y, "linear failed: %s", sf_last_error());
        for (int i = 0; i < 6; i++) CHECK_CLOSE(sf_f32(y)[i], wantY[i], 0);
        sf_tensor *seed = sf_tensor_f32d(2, 3, -1, -1);
        for (int i = 0; i < 6; i++) sf_f32(seed)[i] = 1;
        REQUIRE(sf_graph_backward(g, y, seed) == SF_OK, "backward: %s", sf_last_error());
        REQUIRE(x->grad && w->grad && b->grad, "missing grads");
        for (int i = 0; i < 4; i++) CHECK_CLOSE(sf_f32(x->grad)[i], 2, 0);
        for (int o = 0; o < 3; o++)
            for (int c = 0; c < 2; c++)
                CHECK_CLOSE(sf_f32(w->grad)[lay == 0 ? o * 2 + c : c * 3 + o], c == 0 ? 4 : 6, 0);
        for (int o = 0; o < 3; o++) CHECK_CLOSE(sf_f32(b->grad)[o], 2, 0);
        sf_graph_free(g);
        sf_tensor_release(seed);
        sf_tensor_release(x);
        sf_tensor_release(w);
        sf_tensor_release(b);
    }
}

TEST(linear_grads_accumulate_across_backwards) {
    /* leaf grads are +=: two forward/backward passes give twice the single-pass gradient */
    int64_t xs[2] = {3, 4}, ws[2] = {4, 2}, bs[1] = {2};
    sf_tensor *x = randn(2, xs, 1, 1), *w = randn(2, ws, 2, 1), *b = randn(1, bs, 3, 1);
    float once[8 + 2];
    for (int pass = 0; pass < 2; pass++) {
        sf_graph *g = sf_graph_new();
        sf_tensor *y = sf_linear(g, x, w, b, SF_W_IN_OUT);
        REQUIRE(y, "linear failed: %s", sf_last_error());
        sf_tensor *s = sf_graph_adopt(g, sf_tensor_f32d(3, 2, -1, -1));
        gc_fill_randn(s, 9, 1.0f);
        REQUIRE(sf_graph_backward(g, y, s) == SF_OK, "backward: %s", sf_last_error());
        if (pass == 0) {
            memcpy(once, sf_f32(w->grad), 8 * sizeof(float));
            memcpy(once + 8, sf_f32(b->grad), 2 * sizeof(float));
        } else {
            for (int i = 0; i < 8; i++) CHECK_CLOSE(sf_f32(w->grad)[i], 2 * once[i], 1e-5);
            for (int i = 0; i < 2; i++) CHECK_CLOSE(sf_f32(b->grad)[i], 2 * once[8 + i], 1e-5);
        }
        sf_graph_free(g);
    }
    sf_tensor_release(x);
    sf_tensor_release(w);
    sf_tensor_release(b);
}

static double rel_diff(const float *a, const float *ref, int64_t n) {
    double mx = 0, mref = 1;
    for (int64_t i = 0; i < n; i++) {
        mx = fmax(mx, fabs((double)a[i] - ref[i]));
        mref = fmax(mref, fabs((double)ref[i]));
    }
    return mx / mref;
}

/* max |a - 2 ref| / max(max |2 ref|, 1) */
static double rel_diff_2x(const float *a, const float *ref, int64_t n) {
    double mx = 0, mref = 1;
    for (int64_t i = 0; i < n; i++) {
        mx = fmax(mx, fabs((double)a[i] - 2.0 * ref[i]));
        mref = fmax(mref, fabs(2.0 * ref[i]));
    }
    return mx / mref;
}

static void fill(float *p, int64_t n, unsigned long long seed) {
    int64_t s[1] = {n};
    sf_tensor *t = sf_tensor_new_f32(1, s);
    gc_fill_randn(t, seed, 1.0f);
    memcpy(p, sf_f32(t), (size_t)n * sizeof(float));
    sf_tensor_release(t);
}

/* Compares optimised vs reference forward and backward (accumulating into non-zero grads, and with
 * some grads NULL) at one size and layout. */
static void ref_vs_opt(int64_t N, int64_t C, int64_t OC, sf_wlayout layout) {
    int64_t nx = N * C, nw = C * OC, ny = N * OC;
    float *x = malloc(nx * sizeof(float)), *w = malloc(nw * sizeof(float)), *b = malloc(OC * sizeof(float));
    float *y1 = malloc(ny * sizeof(float)), *y2 = malloc(ny * sizeof(float)), *dy = malloc(ny * sizeof(float));
    float *dx1 = malloc(nx * sizeof(float)), *dx2 = malloc(nx * sizeof(float));
    float *dw1 = malloc(nw * sizeof(float)), *dw2 = malloc(nw * sizeof(float));
    float *db1 = malloc(OC * sizeof(float)), *db2 = malloc(OC * sizeof(float));
    fill(x, nx, 1);
    fill(w, nw, 2);
    fill(b, OC, 3);
    fill(dy, ny, 4);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        sf_linear_forward(y1, x, w, with_bias ? b : NULL, N, C, OC, layout);
        sf_linear_forward_ref(y2, x, w, with_bias ? b : NULL, N, C, OC, layout);
        double e = rel_diff(y1, y2, ny);
        CHECK(e <= REF_TOL, "forward N=%lld C=%lld OC=%lld layout %d bias %d: rel diff %.3g", (long long)N,
              (long long)C, (long long)OC, layout, with_bias, e);
    }
    /* all grads, starting from the same non-zero values (tests +=) */
    fill(dx1, nx, 5);
    memcpy(dx2, dx1, nx * sizeof(float));
    fill(dw1, nw, 6);
    memcpy(dw2, dw1, nw * sizeof(float));
    fill(db1, OC, 7);
    memcpy(db2, db1, OC * sizeof(float));
    sf_linear_backward(dx1, dw1, db1, dy, x, w, N, C, OC, layout);
    sf_linear_backward_ref(dx2, dw2, db2, dy, x, w, N, C, OC, layout);
    double ex = rel_diff(dx1, dx2, nx), ew = rel_diff(dw1, dw2, nw), eb = rel_diff(db1, db2, OC);
    CHECK(ex <= REF_TOL && ew <= REF_TOL && eb <= REF_TOL,
          "backward N=%lld C=%lld OC=%lld layout %d: rel diff dinp %.3g dweight %.3g dbias %.3g", (long long)N,
          (long long)C, (long long)OC, layout, ex, ew, eb);
    /* NULL grads are skipped and the others still right: only dinp, then only dweight + dbias */
    memset(dx1, 0, nx * sizeof(float));
    memset(dx2, 0, nx * sizeof(float));
    sf_linear_backward(dx1, NULL, NULL, dy, x, w, N, C, OC, layout);
    sf_linear_backward_ref(dx2, NULL, NULL, dy, x, w, N, C, OC, layout);
    CHECK(rel_diff(dx1, dx2, nx) <= REF_TOL, "dinp-only backward differs");
    memset(dw1, 0, nw * sizeof(float));
    memset(dw2, 0, nw * sizeof(float));
    memset(db1, 0, OC * sizeof(float));
    memset(db2, 0, OC * sizeof(float));
    sf_linear_backward(NULL, dw1, db1, dy, x, w, N, C, OC, layout);
    sf_linear_backward_ref(NULL, dw2, db2, dy, x, w, N, C, OC, layout);
    CHECK(rel_diff(dw1, dw2, nw) <= REF_TOL && rel_diff(db1, db2, OC) <= REF_TOL, "dweight/dbias-only backward differs");
    free(x), free(w), free(b), free(y1), free(y2), free(dy), free(dx1), free(dx2), free(dw1), free(dw2), free(db1),
        free(db2);
}

TEST(linear_shared_input_and_tied_weight_sum_their_gradients) {
    /* y = linear(x, W) + linear(x, W): the first contribution to dx and dW in backward overwrites the fresh
     * buffers (beta 0), the second must add to it: dx = 2 dy W^T, dW = 2 x^T dy. A second step after
     * zero_grad (dW known zero: overwritten again) must give the same, not twice as much. */
    const int64_t N = 5, C = 24, OC = 40;
    int64_t xs[2] = {N, C}, ws[2] = {C, OC}, ys[2] = {N, OC};
    sf_tensor *x = randn(2, xs, 4, 1), *w = randn(2, ws, 5, 1), *dy = randn(2, ys, 6, 0);
    float dx_ref[5 * 24] = {0}, dw_ref[24 * 40] = {0};
    sf_linear_backward_ref(dx_ref, dw_ref, NULL, sf_f32(dy), sf_f32(x), sf_f32(w), N, C, OC, SF_W_IN_OUT);
    for (int step = 0; step < 2; step++) {
        sf_graph *g = sf_graph_new();
        sf_tensor *y = sf_add(g, sf_linear(g, x, w, NULL, SF_W_IN_OUT), sf_linear(g, x, w, NULL, SF_W_IN_OUT));
        REQUIRE(y, "forward failed: %s", sf_last_error());
        REQUIRE(sf_graph_backward(g, y, dy) == SF_OK, "backward: %s", sf_last_error());
        CHECK(rel_diff_2x(sf_f32(x->grad), dx_ref, N * C) < 1e-5, "step %d: dx is not 2 dy W^T", step);
        CHECK(rel_diff_2x(sf_f32(w->grad), dw_ref, C * OC) < 1e-5, "step %d: dW is not 2 x^T dy", step);
        sf_graph_free(g);
        sf_param_zero_grad(x);
        sf_param_zero_grad(w);
    }
    sf_tensor_release(x);
    sf_tensor_release(w);
    sf_tensor_release(dy);
}

TEST(linear_ref_vs_opt_odd_sizes) {
    const int64_t sizes[][3] = {{7, 13, 5}, {1, 1, 1}, {3, 1, 70}, {64, 96, 160}, {130, 67, 129}};
    for (int s = 0; s < 5; s++)
        for (int lay = 0; lay < 2; lay++) ref_vs_opt(sizes[s][0], sizes[s][1], sizes[s][2], (sf_wlayout)lay);
}

TEST(linear_recording_off) {
    sf_graph *g = sf_graph_new();
    sf_graph_set_recording(g, 0);
    int64_t xs[2] = {3, 4}, ws[2] = {5, 4}, bs[1] = {5};
    sf_tensor *x = randn(2, xs, 1, 1), *w = randn(2, ws, 2, 1), *b = randn(1, bs, 3, 1);
    sf_tensor *y = sf_linear(g, x, w, b, SF_W_OUT_IN);
    REQUIRE(y, "linear failed: %s", sf_last_error());
    CHECK(sf_graph_num_nodes(g) == 0, "recorded a node while recording is off");
    float ref[15];
    sf_linear_forward_ref(ref, sf_f32(x), sf_f32(w), sf_f32(b), 3, 4, 5, SF_W_OUT_IN);
    for (int i = 0; i < 15; i++) CHECK_CLOSE(sf_f32(y)[i], ref[i], 1e-5);
    sf_graph_free(g);
    sf_tensor_release(x);
    sf_tensor_release(w);
    sf_tensor_release(b);
}

TEST(linear_empty_contraction_gives_bias) {
    /* C = 0: y = b for every row, and backward leaves only dbias (column sums of dout). */
    sf_graph *g = sf_graph_new();
    int64_t xs[2] = {3, 0}, ws[2] = {2, 0}, bs[1] = {2};
    sf_tensor *x = sf_tensor_new_f32(2, xs), *w = sf_tensor_new_f32(2, ws), *b = randn(1, bs, 3, 1);
    REQUIRE(x && w, "could not make empty tensors: %s", sf_last_error());
    sf_tensor *y = sf_linear(g, x, w, b, SF_W_OUT_IN);
    REQUIRE(y, "linear failed: %s", sf_last_error());
    CHECK(y->shape[0] == 3 && y->shape[1] == 2, "bad shape");
    for (int n = 0; n < 3; n++)
        for (int o = 0; o < 2; o++) CHECK_CLOSE(sf_f32(y)[n * 2 + o], sf_f32(b)[o], 0);
    sf_tensor *seed = sf_graph_adopt(g, sf_tensor_f32d(3, 2, -1, -1));
    for (int i = 0; i < 6; i++) sf_f32(seed)[i] = 1;
    REQUIRE(sf_graph_backward(g, y, seed) == SF_OK, "backward: %s", sf_last_error());
    for (int o = 0; o < 2; o++) CHECK_CLOSE(sf_f32(b->grad)[o], 3, 0);
    sf_graph_free(g);
    sf_tensor_release(x);
    sf_tensor_release(w);
    sf_tensor_release(b);
}

static int err_mentions(const char *word) { return strstr(sf_last_error(), word) != NULL; }

TEST(linear_errors) {
    sf_graph *g = sf_graph_new();
    int64_t xs[2] = {3, 4}, w_ok[2] = {5, 4}, w_bad[2] = {5, 3}, b_bad[1] = {4}, b_ok[1] = {5}, v[1] = {4};
    sf_tensor *x = randn(2, xs, 1, 0), *w = randn(2, w_ok, 2, 0), *wb = randn(2, w_bad, 3, 0);
    sf_tensor *bb = randn(1, b_bad, 4, 0), *b = randn(1, b_ok, 5, 0), *w1 = randn(1, v, 6, 0);
    sf_tensor *xi = sf_tensor_zeros(SF_I32, 2, xs);

    sf_clear_error();
    CHECK(sf_linear(g, x, wb, NULL, SF_W_OUT_IN) == NULL, "C mismatch accepted");
    CHECK(err_mentions("linear") && err_mentions("weight"), "message: %s", sf_last_error());
    sf_clear_error();
    CHECK(sf_linear(g, x, w, NULL, SF_W_IN_OUT) == NULL, "wrong layout for weight accepted");
    CHECK(err_mentions("linear") && err_mentions("in_out"), "message: %s", sf_last_error());
    sf_clear_error();
    CHECK(sf_linear(g, xi, w, NULL, SF_W_OUT_IN) == NULL, "i32 x accepted");
    CHECK(err_mentions("linear") && err_mentions("f32"), "message: %s", sf_last_error());
    sf_clear_error();
    CHECK(sf_linear(g, x, w, bb, SF_W_OUT_IN) == NULL, "wrong bias size accepted");
    CHECK(err_mentions("linear") && err_mentions("bias"), "message: %s", sf_last_error());
    sf_clear_error();
    CHECK(sf_linear(g, x, w1, NULL, SF_W_OUT_IN) == NULL, "1-D weight accepted");
    CHECK(err_mentions("linear") && err_mentions("2-D"), "message: %s", sf_last_error());
    sf_clear_error();
    CHECK(sf_linear(g, x, w, b, (sf_wlayout)7) == NULL, "bad layout accepted");
    CHECK(err_mentions("linear") && err_mentions("layout"), "message: %s", sf_last_error());
    sf_clear_error();
    CHECK(sf_linear(g, NULL, w, b, SF_W_OUT_IN) == NULL, "NULL x accepted");
    CHECK(err_mentions("linear"), "message: %s", sf_last_error());
    sf_clear_error();
    CHECK(sf_linear(g, x, w, xi, SF_W_OUT_IN) == NULL, "i32 bias accepted");
    CHECK(err_mentions("linear") && err_mentions("bias"), "message: %s", sf_last_error());
    CHECK(sf_linear(g, x, w, b, SF_W_OUT_IN) != NULL, "valid call failed: %s", sf_last_error());

    sf_clear_error();
    CHECK(sf_matmul(g, x, wb) == NULL, "matmul inner mismatch accepted"); // (3,4) . (5,3)
    CHECK(err_mentions("matmul"), "message: %s", sf_last_error());
    sf_clear_error();
    CHECK(sf_matmul(g, x, w1) == NULL, "matmul with 1-D b accepted");
    CHECK(err_mentions("matmul") && err_mentions("2-D"), "message: %s", sf_last_error());
    sf_clear_error();
    CHECK(sf_matmul(g, xi, w) == NULL, "matmul i32 a accepted");
    CHECK(err_mentions("matmul") && err_mentions("f32"), "message: %s", sf_last_error());

    sf_graph_free(g);
    sf_tensor_release(x), sf_tensor_release(w), sf_tensor_release(wb), sf_tensor_release(bb);
    sf_tensor_release(b), sf_tensor_release(w1), sf_tensor_release(xi);
}

TEST_MAIN()
