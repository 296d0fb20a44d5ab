/* test_elementwise.c — the pointwise ops of ops_elementwise.c: finite-difference gradients of every op
 * and every input (including x * x on one tensor), known values (gelu(1) in both forms, silu(1), tanh,
 * add/sub/mul/scale/sum), the gelu kernels against their double-precision reference loops, the vector
 * exact GELU / SiLU / SwiGLU against double on a dense grid (relative, into the tails) and at special
 * values, dropout's
 * mask (deterministic per seed, ~70% kept at p = 0.3, mean preserved, recomputed in backward), frozen
 * inputs, recording off, and error paths (shape/dtype mismatch, bad p, missing arguments). */
#include <string.h>

#include "../core/ops.h"
#include "gradcheck.h"
#include "test.h"

/* Gradient checks: inputs ~N(0, 1) (or U(0.5, 1.5) where stated), central differences with eps 1e-3,
 * relative tolerance 1e-2 on the worst element (see gradcheck.h for the error measure). */
#define GC_EPS 1e-3
#define GC_TOL 1e-2

enum { OP_ADD, OP_SUB, OP_MUL, OP_SQUARE, OP_SCALE, OP_TANH, OP_GELU_T, OP_GELU_E, OP_SILU, OP_SWIGLU,
       OP_SWIGLU_SAME, OP_DROPOUT, OP_SUM, OP_CHAIN };

typedef struct {
    int op;
    float p;
    uint64_t seed;
} ew_ctx;

static sf_tensor *build(sf_graph *g, sf_tensor **in, void *vctx) {
    ew_ctx *c = vctx;
    switch (c->op) {
    case OP_ADD: return sf_add(g, in[0], in[1]);
    case OP_SUB: return sf_sub(g, in[0], in[1]);
    case OP_MUL: return sf_mul(g, in[0], in[1]);
    case OP_SQUARE: return sf_mul(g, in[0], in[0]);
    case OP_SCALE: return sf_scale(g, in[0], -2.5f);
    case OP_TANH: return sf_tanh(g, in[0]);
    case OP_GELU_T: return sf_gelu(g, in[0], SF_GELU_TANH);
    case OP_GELU_E: return sf_gelu(g, in[0], SF_GELU_ERF);
    case OP_SILU: return sf_silu(g, in[0]);
    case OP_SWIGLU: return sf_swiglu(g, in[0], in[1]);
    case OP_SWIGLU_SAME: return sf_swiglu(g, in[0], in[0]);
    case OP_DROPOUT: return sf_dropout(g, in[0], c->p, c->seed);
    case OP_SUM: return sf_sum(g, in[0]);
    case OP_CHAIN: { /* sum(tanh(a * b) - silu(a)) : intermediate gradients flow through the tape */
        sf_tensor *t = sf_tanh(g, sf_mul(g, in[0], in[1]));
        return sf_sum(g, sf_sub(g, t, sf_silu(g, in[0])));
    }
    }
    return NULL;
}

static sf_tensor *param(int64_t r, int64_t c, unsigned long long seed) {
    int64_t shape[2] = {r, c};
    sf_tensor *t = sf_tensor_new_f32(2, shape);
    gc_fill_randn(t, seed, 1.0f);
    sf_param_set_trainable(t, 1);
    return t;
}

static double check_op(const char *label, int op, int n_in, float p, uint64_t seed) {
    sf_tensor *in[2] = {param(3, 7, 11), param(3, 7, 12)};
    ew_ctx c = {op, p, seed};
    double err = gradcheck(label, build, &c, in, n_in, GC_EPS, 64);
    sf_tensor_release(in[0]);
    sf_tensor_release(in[1]);
    return err;
}

TEST(gradcheck_binary) {
    CHECK(check_op("add", OP_ADD, 2, 0, 0) <= GC_TOL, "add");
    CHECK(check_op("sub", OP_SUB, 2, 0, 0) <= GC_TOL, "sub");
    CHECK(check_op("mul", OP_MUL, 2, 0, 0) <= GC_TOL, "mul");
    CHECK(check_op("swiglu", OP_SWIGLU, 2, 0, 0) <= GC_TOL, "swiglu");
}

TEST(gradcheck_same_tensor_twice) {
    /* x * x and swiglu(x, x): both uses must land in x's gradient */
    CHECK(check_op("mul(x,x)", OP_SQUARE, 1, 0, 0) <= GC_TOL, "x*x");
    CHECK(check_op("swiglu(x,x)", OP_SWIGLU_SAME, 1, 0, 0) <= GC_TOL, "swiglu(x,x)");
    /* and the exact value: d sum(x*x) / dx = 2x */
    sf_tensor *x = param(2, 5, 3);
    sf_graph *g = sf_graph_new();
    sf_tensor *y = sf_sum(g, sf_mul(g, x, x));
    REQUIRE(y && sf_graph_backward(g, y, NULL) == SF_OK, "backward: %s", sf_last_error());
    for (int i = 0; i < 10; i++) CHECK_CLOSE(sf_f32(x->grad)[i], 2 * sf_f32(x)[i], 1e-6);
    sf_graph_free(g);
    sf_tensor_release(x);
}

TEST(gradcheck_unary) {
    CHECK(check_op("scale", OP_SCALE, 1, 0, 0) <= GC_TOL, "scale");
    CHECK(check_op("tanh", OP_TANH, 1, 0, 0) <= GC_TOL, "tanh");
    CHECK(check_op("gelu_tanh", OP_GELU_T, 1, 0, 0) <= GC_TOL, "gelu tanh");
    CHECK(check_op("gelu_erf", OP_GELU_E, 1, 0, 0) <= GC_TOL, "gelu erf");
    CHECK(check_op("silu", OP_SILU, 1, 0, 0) <= GC_TOL, "silu");
    CHECK(check_op("sum", OP_SUM, 1, 0, 0) <= GC_TOL, "sum");
    CHECK(check_op("chain", OP_CHAIN, 2, 0, 0) <= GC_TOL, "chain");
}

TEST(gradcheck_dropout) {
    CHECK(check_op("dropout p=0.3", OP_DROPOUT, 1, 0.3f, 42) <= GC_TOL, "dropout");
    CHECK(check_op("dropout p=0.9", OP_DROPOUT, 1, 0.9f, 43) <= GC_TOL, "dropout p=0.9");
}

TEST(frozen_inputs_get_no_gradient) {
    sf_tensor *a = param(4, 6, 1), *b = param(4, 6, 2);
    sf_param_set_trainable(b, 0);
    for (int op = OP_ADD; op <= OP_SWIGLU; op++) {
        if (op == OP_SQUARE) continue;
        ew_ctx c = {op, 0, 0};
        sf_tensor *in[2] = {a, b};
        char label[32];
        snprintf(label, sizeof label, "frozen b, op %d", op);
        CHECK(gradcheck(label, build, &c, in, 2, GC_EPS, 64) <= GC_TOL, "op %d", op);
        CHECK(b->grad == NULL, "frozen input got a gradient (op %d)", op);
    }
    /* nothing trainable: no node is recorded */
    sf_param_set_trainable(a, 0);
    sf_graph *g = sf_graph_new();
    CHECK(sf_mul(g, a, b) != NULL, "mul");
    CHECK(sf_graph_num_nodes(g) == 0, "nodes %d", sf_graph_num_nodes(g));
    sf_graph_free(g);
    sf_tensor_release(a);
    sf_tensor_release(b);
}

TEST(recording_off_computes_without_nodes) {
    sf_tensor *a = param(2, 3, 5), *b = param(2, 3, 6);
    sf_graph *g = sf_graph_new();
    sf_graph_set_recording(g, 0);
    sf_tensor *y = sf_swiglu(g, sf_gelu(g, a, SF_GELU_ERF), sf_dropout(g, b, 0.5f, 9));
    REQUIRE(y, "%s", sf_last_error());
    CHECK(sf_graph_num_nodes(g) == 0, "nodes %d", sf_graph_num_nodes(g));
    CHECK(!y->requires_grad, "output of an unrecorded op requires grad");
    sf_graph_free(g);
    sf_tensor_release(a);
    sf_tensor_release(b);
}

/* ---- known values ---- */

static sf_tensor *vec(int n, const float *v) {
    sf_tensor *t = sf_tensor_f32d(n, -1, -1, -1);
    memcpy(sf_f32(t), v, (size_t)n * sizeof(float));
    return t;
}

TEST(known_values) {
    const float xv[4] = {1.0f, -1.0f, 0.0f, 2.0f}, yv[4] = {0.5f, 3.0f, -2.0f, 0.25f};
    sf_tensor *x = vec(4, xv), *y = vec(4, yv);
    sf_graph *g = sf_graph_new();
    const float *o;
    o = sf_f32(sf_gelu(g, x, SF_GELU_TANH));
    CHECK_CLOSE(o[0], 0.8411920, 1e-6);  /* torch.nn.functional.gelu(1, approximate='tanh') */
    CHECK_CLOSE(o[1], -0.1588080, 1e-6); /* gelu(-x) = gelu(x) - x */
    CHECK_CLOSE(o[2], 0.0, 0);
    o = sf_f32(sf_gelu(g, x, SF_GELU_ERF));
    CHECK_CLOSE(o[0], 0.8413447, 1e-6); /* torch.nn.functional.gelu(1) */
    CHECK_CLOSE(o[1], -0.1586553, 1e-6);
    CHECK_CLOSE(o[3], 1.9544997, 1e-6);
    o = sf_f32(sf_silu(g, x));
    CHECK_CLOSE(o[0], 0.7310586, 1e-6);
    CHECK_CLOSE(o[1], -0.2689414, 1e-6);
    o = sf_f32(sf_tanh(g, x));
    CHECK_CLOSE(o[0], 0.7615942, 1e-6);
    CHECK_CLOSE(o[3], 0.9640276, 1e-6);
    o = sf_f32(sf_swiglu(g, x, y)); /* silu(1) * 0.5, silu(-1) * 3 */
    CHECK_CLOSE(o[0], 0.3655293, 1e-6);
    CHECK_CLOSE(o[1], -0.8068243, 1e-6);
    o = sf_f32(sf_add(g, x, y));
    CHECK(o[0] == 1.5f && o[1] == 2.0f && o[2] == -2.0f && o[3] == 2.25f, "add");
    o = sf_f32(sf_sub(g, x, y));
    CHECK(o[0] == 0.5f && o[1] == -4.0f && o[2] == 2.0f && o[3] == 1.75f, "sub");
    o = sf_f32(sf_mul(g, x, y));
    CHECK(o[0] == 0.5f && o[1] == -3.0f && o[2] == 0.0f && o[3] == 0.5f, "mul");
    o = sf_f32(sf_scale(g, x, -3.0f));
    CHECK(o[0] == -3.0f && o[1] == 3.0f && o[3] == -6.0f, "scale");
    sf_tensor *s = sf_sum(g, y);
    CHECK(s->ndim == 1 && s->shape[0] == 1, "sum shape");
    CHECK(sf_f32(s)[0] == 1.75f, "sum %g", sf_f32(s)[0]);
    sf_graph_free(g);
    sf_tensor_release(x);
    sf_tensor_release(y);
}

TEST(sum_large) {
    /* 1e6 elements of 0.1 (parallel reduction in double): 100000 to float precision */
    int64_t shape[1] = {1000000};
    sf_tensor *x = sf_tensor_new_f32(1, shape);
    for (int64_t i = 0; i < shape[0]; i++) sf_f32(x)[i] = 0.1f;
    sf_graph *g = sf_graph_new();
    CHECK_CLOSE(sf_f32(sf_sum(g, x))[0], 1e6 * (double)0.1f, 0.01);
    sf_graph_free(g);
    sf_tensor_release(x);
}

/* ---- gelu kernels vs reference (tolerances: max abs diff, x ~ N(0, 3) including |x| up to ~15) ---- */

TEST(gelu_kernels_match_reference) {
    int64_t n = 200003; /* > parallel threshold, odd size */
    int64_t shape[1] = {n};
    sf_tensor *x = sf_tensor_new_f32(1, shape), *d = sf_tensor_new_f32(1, shape);
    gc_fill_randn(x, 7, 3.0f);
    gc_fill_randn(d, 8, 1.0f);
    sf_f32(x)[0] = 0.0f;
    sf_f32(x)[1] = 20.0f;
    sf_f32(x)[2] = -20.0f;
    float *o1 = malloc(n * sizeof(float)), *o2 = malloc(n * sizeof(float));
    float *g1 = malloc(n * sizeof(float)), *g2 = malloc(n * sizeof(float));
    for (int kind = 0; kind <= 1; kind++) {
        sf_gelu_forward(o1, sf_f32(x), n, (sf_gelu_kind)kind);
        sf_gelu_forward_ref(o2, sf_f32(x), n, (sf_gelu_kind)kind);
        for (int64_t i = 0; i < n; i++) g1[i] = g2[i] = 0.25f; /* backward accumulates */
        sf_gelu_backward(g1, sf_f32(x), sf_f32(d), n, (sf_gelu_kind)kind);
        sf_gelu_backward_ref(g2, sf_f32(x), sf_f32(d), n, (sf_gelu_kind)kind);
        double fo = 0, fg = 0;
        for (int64_t i = 0; i < n; i++) {
            fo = fmax(fo, fabs(o1[i] - o2[i]) / fmax(1.0, fabs(o2[i])));
            fg = fmax(fg, fabs(g1[i] - g2[i]));
        }
        CHECK(fo <= 1e-6, "kind %d forward max rel diff %g", kind, fo);
        CHECK(fg <= 1e-5, "kind %d backward max abs diff %g", kind, fg);
        CHECK(o1[1] == 20.0f && o1[2] == 0.0f && o1[0] == 0.0f, "kind %d tails: %g %g", kind, o1[1], o1[2]);
        CHECK_CLOSE(g1[0], 0.25 + 0.5 * sf_f32(d)[0], 1e-7); /* gelu'(0) = 0.5 */
        /* the one-pass value + derivative: gelu(x) as above, gelu'(x) as the reference with dout = 1 */
        for (int64_t i = 0; i < n; i++) g2[i] = 0.0f;
        float *ones = malloc(n * sizeof(float));
        for (int64_t i = 0; i < n; i++) ones[i] = 1.0f;
        sf_gelu_backward_ref(g2, sf_f32(x), ones, n, (sf_gelu_kind)kind);
        sf_gelu_forward_grad(o1, g1, sf_f32(x), n, (sf_gelu_kind)kind);
        fo = fg = 0;
        for (int64_t i = 0; i < n; i++) {
            fo = fmax(fo, fabs(o1[i] - o2[i]) / fmax(1.0, fabs(o2[i])));
            fg = fmax(fg, fabs(g1[i] - g2[i]));
        }
        CHECK(fo <= 1e-6 && fg <= 1e-5, "kind %d forward_grad: value rel diff %g, derivative abs diff %g", kind, fo, fg);
        free(ones);
    }
    sf_gelu_backward(NULL, sf_f32(x), sf_f32(d), n, SF_GELU_TANH); /* frozen: no-op, no crash */
    free(o1); free(o2); free(g1); free(g2);
    sf_tensor_release(x);
    sf_tensor_release(d);
}

/* The vectorised exact GELU, SiLU and SwiGLU (core/simd_act.h) against double on a dense grid of x in
 * [-16, 16] (an odd length: the parallel blocks and a partial last vector), element by element and
 * RELATIVE to each value down to 1e-30, so that the far negative tails, where 1 + erf(x) would cancel,
 * are checked too; then the special values: +-0, +-inf, NaN, +-1e30. */
static double rel_err(double got, double ref) {
    if (isnan(ref)) return isnan(got) ? 0 : INFINITY;
    if (fabs(ref) < 1e-30) return fabs(got - ref) < 1e-30 ? 0 : INFINITY;
    return fabs(got - ref) / fabs(ref);
}

TEST(activations_match_double_on_a_grid) {
    const int64_t n = 320001; /* x = -16 + i * 1e-4 */
    float *x = malloc(n * sizeof(float)), *o = malloc(n * sizeof(float)), *gr = malloc(n * sizeof(float));
    float *o2 = malloc(n * sizeof(float)), *d = malloc(n * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = (float)(-16.0 + (double)i * 1e-4), d[i] = 1.0f;
    for (int64_t i = 0; i < n; i++) gr[i] = 0.0f;
    sf_gelu_forward(o, x, n, SF_GELU_ERF);
    sf_gelu_backward(gr, x, d, n, SF_GELU_ERF);
    sf_gelu_forward_grad(o2, d, x, n, SF_GELU_ERF); /* d becomes gelu'(x) */
    double wf = 0, wx = 0, wb = 0, wbx = 0;
    for (int64_t i = 0; i < n; i++) {
        const double xd = x[i], cdf = 0.5 * erfc(-xd / sqrt(2.0));
        const double f = xd * cdf, df = cdf + xd * exp(-0.5 * xd * xd) / sqrt(2.0 * M_PI);
        const double ef = rel_err(o[i], f), eb = fabs(gr[i] - df) / fmax(fabs(df), 1.0);
        if (ef > wf) wf = ef, wx = xd;
        if (eb > wb) wb = eb, wbx = xd;
        CHECK(o2[i] == o[i] && d[i] == gr[i], "gelu forward_grad differs from forward/backward at x = %g", xd);
        if (o2[i] != o[i] || d[i] != gr[i]) break;
    }
    /* measured 4e-7 at worst, out to x = -16 (where 1 + erff(x / sqrt2) in float would keep no digit) */
    CHECK(wf <= 1e-6, "gelu(x) relative error %g at x = %g", wf, wx);
    /* gelu' = Phi(x) + x phi(x) cancels near its zero (x ~ -0.75): absolute error there, relative above 1 */
    CHECK(wb <= 3e-7, "gelu'(x) error %g at x = %g (relative, floor 1)", wb, wbx);
    /* silu and swiglu through the tape ops */
    int64_t shape[1] = {n};
    sf_tensor *tx = sf_tensor_new_f32(1, shape), *tu = sf_tensor_new_f32(1, shape);
    memcpy(sf_f32(tx), x, n * sizeof(float));
    for (int64_t i = 0; i < n; i++) sf_f32(tu)[i] = 0.5f;
    sf_param_set_trainable(tx, 1);
    sf_graph *g = sf_graph_new();
    const float *sl = sf_f32(sf_silu(g, tx)), *sw = sf_f32(sf_swiglu(g, tx, tu));
    double ws = 0, wsx = 0;
    for (int64_t i = 0; i < n; i++) {
        const double xd = x[i], s = xd >= 0 ? 1 / (1 + exp(-xd)) : exp(xd) / (1 + exp(xd));
        const double e = fmax(rel_err(sl[i], xd * s), rel_err(sw[i], 0.5 * xd * s));
        if (e > ws) ws = e, wsx = xd;
    }
    CHECK(ws <= 5e-7, "silu / swiglu relative error %g at x = %g", ws, wsx);
    sf_graph_free(g);
    /* special values as the erff / expf formulas give them (-inf * 0 = NaN), NaN stays NaN */
    const float sv[7] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e30f, -1e30f};
    float so[7], sg[7], ss[7];
    for (int k = 0; k < 7; k++) sg[k] = 0.0f;
    float ones[7] = {1, 1, 1, 1, 1, 1, 1};
    sf_gelu_forward(so, sv, 7, SF_GELU_ERF);
    sf_gelu_backward(sg, sv, ones, 7, SF_GELU_ERF);
    sf_tensor *t7 = sf_tensor_f32d(7, -1, -1, -1);
    memcpy(sf_f32(t7), sv, sizeof sv);
    g = sf_graph_new();
    memcpy(ss, sf_f32(sf_silu(g, t7)), sizeof ss);
    sf_graph_free(g);
    CHECK(so[0] == 0.0f && so[2] == INFINITY && isnan(so[3]) && isnan(so[4]) && so[5] == 1e30f && so[6] == 0.0f,
          "gelu specials: %g %g %g %g %g %g", so[0], so[2], so[3], so[4], so[5], so[6]);
    CHECK(sg[0] == 0.5f && isnan(sg[2]) && isnan(sg[3]) && isnan(sg[4]) && sg[5] == 1.0f && sg[6] == 0.0f,
          "gelu' specials: %g %g %g %g %g %g", sg[0], sg[2], sg[3], sg[4], sg[5], sg[6]); /* +-inf * 0 */
    CHECK(ss[0] == 0.0f && ss[2] == INFINITY && isnan(ss[3]) && isnan(ss[4]) && ss[5] == 1e30f && ss[6] == 0.0f,
          "silu specials: %g %g %g %g %g %g", ss[0], ss[2], ss[3], ss[4], ss[5], ss[6]);
    sf_tensor_release(t7);
    sf_tensor_release(tx);
    sf_tensor_release(tu);
    free(x); free(o); free(gr); free(o2); free(d);
}

/* GELU over 1024-element pieces (a decode step's MLP row: the serial path) gives the bits of one call over
 * everything (the OpenMP path; core/parallel_for.h). */
TEST(gelu_pieces_give_the_whole_bits) {
    const int64_t n = 64 * 1024;
    int64_t shape[1] = {n};
    sf_tensor *x = sf_tensor_new_f32(1, shape);
    gc_fill_randn(x, 9, 3.0f);
    float *whole = malloc(n * sizeof(float)), *pieces = malloc(n * sizeof(float));
    for (int kind = 0; kind <= 1; kind++) {
        sf_gelu_forward(whole, sf_f32(x), n, (sf_gelu_kind)kind);
        for (int64_t i = 0; i < n; i += 1024) sf_gelu_forward(pieces + i, sf_f32(x) + i, 1024, (sf_gelu_kind)kind);
        CHECK(memcmp(whole, pieces, n * sizeof(float)) == 0, "kind %d: pieces differ from the whole", kind);
    }
    free(whole); free(pieces);
    sf_tensor_release(x);
}

/* tape ops over a large tensor (parallel path) agree with the small serial ones element by element */
TEST(large_tensors_match_small) {
    int64_t shape[1] = {100000};
    sf_tensor *a = sf_tensor_new_f32(1, shape), *b = sf_tensor_new_f32(1, shape);
    gc_fill_randn(a, 21, 1.0f);
    gc_fill_randn(b, 22, 1.0f);
    sf_param_set_trainable(a, 1);
    sf_param_set_trainable(b, 1);
    sf_graph *g = sf_graph_new();
    sf_tensor *y = sf_sum(g, sf_mul(g, sf_swiglu(g, a, b), sf_silu(g, sf_tanh(g, a))));
    REQUIRE(y && sf_graph_backward(g, y, NULL) == SF_OK, "%s", sf_last_error());
    double wa = 0, wb = 0;
    for (int64_t i = 0; i < shape[0]; i += 997) {
        double x = sf_f32(a)[i], u = sf_f32(b)[i], s = 1 / (1 + exp(-x)), t = tanh(x), st = 1 / (1 + exp(-t));
        double sw = x * s * u, si = t * st;
        double dsw_dx = u * s * (1 + x * (1 - s)), dsi_dt = st * (1 + t * (1 - st));
        double ga = dsw_dx * si + sw * dsi_dt * (1 - t * t), gb = x * s * si;
        wa = fmax(wa, fabs(ga - sf_f32(a->grad)[i]));
        wb = fmax(wb, fabs(gb - sf_f32(b->grad)[i]));
    }
    CHECK(wa < 1e-5 && wb < 1e-5, "closed-form gradients: max abs diff a %g b %g", wa, wb);
    sf_graph_free(g);
    sf_tensor_release(a);
    sf_tensor_release(b);
}

/* ---- dropout ---- */

TEST(dropout_mask) {
    const float p = 0.3f;
    int64_t shape[1] = {100000};
    sf_tensor *x = sf_tensor_new_f32(1, shape);
    gc_fill_uniform(x, 5, 0.5f, 1.5f); /* nonzero, so out != 0 marks kept elements */
    sf_graph *g = sf_graph_new();
    sf_tensor *y1 = sf_dropout(g, x, p, 1234), *y2 = sf_dropout(g, x, p, 1234), *y3 = sf_dropout(g, x, p, 1235);
    REQUIRE(y1 && y2 && y3, "%s", sf_last_error());
    int64_t kept = 0, differ = 0, bad_scale = 0;
    double mx = 0, my = 0;
    for (int64_t i = 0; i < shape[0]; i++) {
        float v1 = sf_f32(y1)[i], v3 = sf_f32(y3)[i];
        CHECK(v1 == sf_f32(y2)[i], "same seed, different value at %lld", (long long)i);
        kept += v1 != 0.0f;
        differ += (v1 != 0.0f) != (v3 != 0.0f);
        if (v1 != 0.0f && v1 != sf_f32(x)[i] * (1.0f / (1.0f - p))) bad_scale++;
        mx += sf_f32(x)[i];
        my += v1;
    }
    double frac = (double)kept / shape[0];
    CHECK(fabs(frac - 0.7) <= 0.03, "kept fraction %g, expected 0.7 +- 0.03", frac);
    /* two independent masks disagree on 2 p (1 - p) = 42% of elements */
    CHECK(fabs((double)differ / shape[0] - 0.42) <= 0.03, "another seed differs on %g", (double)differ / shape[0]);
    CHECK(bad_scale == 0, "%lld kept elements not scaled by 1/(1-p)", (long long)bad_scale);
    /* E[y] = E[x]; std of the mean ~0.002 here, so 0.01 is 5 sigma */
    mx /= shape[0];
    my /= shape[0];
    CHECK(fabs(my - mx) <= 0.01, "mean of x %g, mean of dropout(x) %g", mx, my);
    sf_graph_free(g);
    sf_tensor_release(x);
}

TEST(dropout_backward_uses_the_same_mask) {
    int64_t shape[2] = {300, 250}; /* 75000 elements: parallel path */
    sf_tensor *x = sf_tensor_new_f32(2, shape);
    gc_fill_uniform(x, 6, 0.5f, 1.5f);
    sf_param_set_trainable(x, 1);
    sf_graph *g = sf_graph_new();
    sf_tensor *y = sf_dropout(g, x, 0.5f, 77);
    REQUIRE(y, "%s", sf_last_error());
    sf_tensor *seed = sf_tensor_new_f32(2, shape);
    for (int64_t i = 0; i < 75000; i++) sf_f32(seed)[i] = 1.0f;
    REQUIRE(sf_graph_backward(g, y, seed) == SF_OK, "%s", sf_last_error());
    int64_t bad = 0;
    for (int64_t i = 0; i < 75000; i++) {
        float expect = sf_f32(y)[i] != 0.0f ? 2.0f : 0.0f;
        bad += sf_f32(x->grad)[i] != expect;
    }
    CHECK(bad == 0, "%lld gradient elements disagree with the forward mask", (long long)bad);
    sf_graph_free(g);
    sf_tensor_release(seed);
    sf_tensor_release(x);
}

TEST(dropout_p0_is_identity) {
    sf_tensor *x = param(2, 3, 1);
    sf_graph *g = sf_graph_new();
    CHECK(sf_dropout(g, x, 0.0f, 1) == x, "p == 0 must return x itself");
    CHECK(sf_graph_num_nodes(g) == 0, "p == 0 recorded a node");
    sf_graph_free(g);
    sf_tensor_release(x);
}

/* ---- errors ---- */

TEST(errors) {
    sf_tensor *a = param(2, 3, 1), *b = param(3, 2, 2), *c = param(2, 3, 3);
    int64_t sh[2] = {2, 3};
    sf_tensor *ai = sf_tensor_zeros(SF_I32, 2, sh);
    sf_graph *g = sf_graph_new();
    sf_clear_error();
    CHECK(sf_add(g, a, b) == NULL, "add shape mismatch");
    CHECK(strstr(sf_last_error(), "add") && strstr(sf_last_error(), "(2, 3)") && strstr(sf_last_error(), "(3, 2)"),
          "message: %s", sf_last_error());
    CHECK(sf_sub(g, a, b) == NULL && strstr(sf_last_error(), "sub"), "sub: %s", sf_last_error());
    CHECK(sf_mul(g, b, a) == NULL && strstr(sf_last_error(), "(3, 2)"), "mul: %s", sf_last_error());
    CHECK(sf_swiglu(g, a, b) == NULL && strstr(sf_last_error(), "gate"), "swiglu: %s", sf_last_error());
    CHECK(sf_mul(g, a, ai) == NULL && strstr(sf_last_error(), "i32"), "dtype: %s", sf_last_error());
    CHECK(sf_tanh(g, ai) == NULL && strstr(sf_last_error(), "tanh"), "tanh dtype: %s", sf_last_error());
    CHECK(sf_silu(g, NULL) == NULL && strstr(sf_last_error(), "missing"), "silu NULL: %s", sf_last_error());
    CHECK(sf_add(NULL, a, c) == NULL && strstr(sf_last_error(), "graph"), "no graph: %s", sf_last_error());
    CHECK(sf_gelu(g, a, (sf_gelu_kind)7) == NULL && strstr(sf_last_error(), "kind"), "gelu kind: %s", sf_last_error());
    CHECK(sf_dropout(g, a, 1.0f, 1) == NULL && strstr(sf_last_error(), "[0, 1)"), "p=1: %s", sf_last_error());
    CHECK(sf_dropout(g, a, -0.1f, 1) == NULL, "p<0");
    CHECK(sf_dropout(g, a, NAN, 1) == NULL, "p NaN");
    CHECK(sf_sum(g, ai) == NULL, "sum dtype");
    CHECK(sf_scale(g, NULL, 2.0f) == NULL, "scale NULL");
    CHECK(sf_graph_num_nodes(g) == 0, "failed ops recorded %d nodes", sf_graph_num_nodes(g));
    /* valid calls still work after errors */
    CHECK(sf_add(g, a, c) != NULL, "add after errors: %s", sf_last_error());
    sf_graph_free(g);
    sf_tensor_release(a);
    sf_tensor_release(b);
    sf_tensor_release(c);
    sf_tensor_release(ai);
}

TEST_MAIN()
