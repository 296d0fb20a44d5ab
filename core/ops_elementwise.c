/* ops_elementwise.c — pointwise tape ops: add, sub, mul, scale, tanh, gelu (tanh approximation and
 * exact erf, as PyTorch's gelu(approximate='tanh') / gelu()), bias_gelu (gelu(x + bias) with a per-column
 * bias: an MLP up-projection's bias fused into its activation), silu, swiglu (silu(gate) * up), inverted
 * dropout and the sum of all elements, plus the raw gelu / bias_gelu kernels and their reference loops.
 *
 * Binary ops need identical shapes (no broadcasting). Every tensor is treated as a flat array of n
 * elements; loops run in parallel (OpenMP) once n exceeds SF_EW_PAR. The exact GELU, SiLU and SwiGLU run
 * on whole vectors (core/simd_act.h: erfc, exp, sigmoid without library calls; a partial last vector).
 * Backward kernels accumulate (+=) into the gradient buffers the tape hands out and skip inputs that need
 * no gradient; an op applied to the same tensor twice (x * x) accumulates both contributions into the
 * one buffer. bias_gelu's backward forms dz = dout * gelu'(x + bias) once and, when the bias trains,
 * adds it to dx and to the column sums of its block of 32 rows in the same row pass (blocks in parallel,
 * sums in a scratch buffer), then adds the block sums into dbias in block order: no atomics, results
 * independent of the thread count, and no second read of the (N, C) gradient. x + bias is recomputed,
 * never stored.
 *
 * Dropout stores no mask: element i is kept iff the top 32 bits of sf_hash64(seed, i) are >= p * 2^32,
 * so the backward (and any later call with the same seed) recomputes exactly the same mask. The caller
 * picks a fresh seed per call and per step, and passes p = 0 for evaluation.
 *
 * This file does not broadcast, does not handle non-f32 tensors and does not implement matmuls, norms,
 * softmax or losses (see the other ops_*.c files).
 */
#include <math.h>
#include <string.h>

#include "ops.h"
#include "parallel_for.h"
#include "rng.h"
#include "simd_act.h"
#include "simd_math.h"

#define SF_EW_PAR ((int64_t)1 << 15) /* parallelise loops longer than this */
#define SF_BG_ROWS 32                /* rows per block of bias_gelu's partial bias-gradient sums */
#define SF_EW_BLOCK 4096             /* floats per work item of the vector loops below */

/* SF_VLOOP (simd_act.h) over [0, n) in blocks of SF_EW_BLOCK floats, the blocks in parallel once n
 * exceeds SF_EW_PAR; the body sees i, VLD and VST as in SF_VLOOP. */
#define EW_VLOOP(n, ...)                                                                                        \
    do {                                                                                                        \
        const int64_t ewn_ = (n), ewb_ = (ewn_ + SF_EW_BLOCK - 1) / SF_EW_BLOCK;                                \
        _Pragma("omp parallel for if (ewn_ > SF_EW_PAR) schedule(static)")                                      \
        for (int64_t b_ = 0; b_ < ewb_; b_++)                                                                   \
            SF_VLOOP(b_ * SF_EW_BLOCK, b_ == ewb_ - 1 ? ewn_ : (b_ + 1) * SF_EW_BLOCK, __VA_ARGS__)             \
    } while (0)

/* ------------------------------------------------------------------------------------------------ */
/* argument checks and gradient helpers                                                             */

static sf_status check_unary(sf_graph *g, const char *op, const sf_tensor *x, const char *arg) {
    if (!g) return sf_fail(SF_ERR_ARG, "%s: graph is missing", op);
    return sf_check_f32(x, op, arg);
}

static sf_status check_same(sf_graph *g, const char *op, const sf_tensor *a, const char *an, const sf_tensor *b,
                            const char *bn) {
    sf_status st = check_unary(g, op, a, an);
    if (st == SF_OK) st = sf_check_f32(b, op, bn);
    if (st != SF_OK) return st;
    if (!sf_tensor_same_shape(a, b)) {
        char sa[96], sb[96];
        return sf_fail(SF_ERR_ARG, "%s: %s %s and %s %s must have the same shape", op, an,
                       sf_shape_str(a, sa, sizeof sa), bn, sf_shape_str(b, sb, sizeof sb));
    }
    return SF_OK;
}

/* The buffer to accumulate t's gradient into, or NULL when t needs none; sets *st on allocation failure. */
static float *grad_ptr(sf_graph *g, sf_tensor *t, const char *op, sf_status *st) {
    sf_tensor *d = sf_graph_grad(g, t);
    if (d) return sf_f32(d);
    if (t && t->requires_grad) *st = sf_fail(SF_ERR_NOMEM, "%s backward: out of memory for a gradient", op);
    return NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* raw gelu kernels                                                                                 */

#define GELU_S 0.7978845608028654f   /* sqrt(2 / pi) */
#define GELU_C 0.044715f
#define INV_SQRT_2PI 0.3989422804014327f

static inline float gelu_tanh_f(float x) {
    float u = GELU_S * (x + GELU_C * x * x * x);
    return 0.5f * x * (1.0f + sf_tanh_fast(u));
}
static inline float gelu_tanh_grad(float x) {
    float x2 = x * x;
    float t = sf_tanh_fast(GELU_S * (x + GELU_C * x2 * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_S * (1.0f + 3.0f * GELU_C * x2);
}
/* The exact form x Phi(x) on vectors (simd_act.h: Phi from erfc, relatively accurate for x << 0 too) */
static inline vf gelu_erf_grad(vf x) { return vnormal_cdf(x) + x * INV_SQRT_2PI * vgauss(x); }

void sf_gelu_forward(float *out, const float *inp, int64_t n, sf_gelu_kind kind) {
    // out, inp: (n,)
    if (kind == SF_GELU_ERF)
        EW_VLOOP(n, {
            const vf x = VLD(inp);
            VST(out, x * vnormal_cdf(x));
        });
    else
        SF_PARALLEL_FOR_SIMD_IF(n > SF_EW_PAR, for (int64_t i = 0; i < n; i++) out[i] = gelu_tanh_f(inp[i]););
}

void sf_gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n, sf_gelu_kind kind) {
    // dinp, inp, dout: (n,)
    if (!dinp) return;
    if (kind == SF_GELU_ERF) {
        EW_VLOOP(n, VST(dinp, VLD(dinp) + VLD(dout) * gelu_erf_grad(VLD(inp))););
    } else {
#pragma omp parallel for simd if (n > SF_EW_PAR) schedule(static)
        for (int64_t i = 0; i < n; i++) dinp[i] += dout[i] * gelu_tanh_grad(inp[i]);
    }
}

void sf_gelu_forward_grad(float *out, float *grad, const float *inp, int64_t n, sf_gelu_kind kind) {
    // out, grad, inp: (n,)
    if (kind == SF_GELU_ERF) {
        EW_VLOOP(n, {
            const vf x = VLD(inp), p = vnormal_cdf(x);
            VST(out, x * p);
            VST(grad, p + x * INV_SQRT_2PI * vgauss(x));
        });
    } else {
#pragma omp parallel for simd if (n > SF_EW_PAR) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            const float x = inp[i], x2 = x * x, t = sf_tanh_fast(GELU_S * (x + GELU_C * x2 * x));
            out[i] = 0.5f * x * (1.0f + t);
            grad[i] = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_S * (1.0f + 3.0f * GELU_C * x2);
        }
    }
}

/* Reference loops: serial, double precision, llm.c's cosh form of the tanh derivative. */
static double gelu_ref_d(double x, sf_gelu_kind kind) {
    if (kind == SF_GELU_ERF) return 0.5 * x * erfc(-x / sqrt(2.0)); /* not 1 + erf: it cancels for x << 0 */
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

static double gelu_grad_ref_d(double x, sf_gelu_kind kind) {
    if (kind == SF_GELU_ERF) return 0.5 * erfc(-x / sqrt(2.0)) + x * exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
    double s = sqrt(2.0 / M_PI), u = s * (x + 0.044715 * x * x * x), c = cosh(u);
    return 0.5 * (1.0 + tanh(u)) + 0.5 * x * (1.0 / (c * c)) * s * (1.0 + 3.0 * 0.044715 * x * x);
}

void sf_gelu_forward_ref(float *out, const float *inp, int64_t n, sf_gelu_kind kind) {
    for (int64_t i = 0; i < n; i++) out[i] = (float)gelu_ref_d(inp[i], kind);
}

void sf_gelu_backward_ref(float *dinp, const float *inp, const float *dout, int64_t n, sf_gelu_kind kind) {
    if (!dinp) return;
    for (int64_t i = 0; i < n; i++) dinp[i] += (float)(dout[i] * gelu_grad_ref_d(inp[i], kind));
}

/* dz = dy * gelu'(x + bias) on one row of C; dx += dz, dbias += dz (either may be NULL). */
static inline void bias_gelu_grad_row(float *dx, float *dbias, const float *dy, const float *x, const float *bias,
                                      int64_t C, sf_gelu_kind kind) {
    if (kind == SF_GELU_ERF) {
        SF_VLOOP(0, C, {
            const vf dz = VLD(dy) * gelu_erf_grad(VLD(x) + VLD(bias));
            if (dx) VST(dx, VLD(dx) + dz);
            if (dbias) VST(dbias, VLD(dbias) + dz);
        })
    } else if (dx && dbias) {
#pragma omp simd
        for (int64_t j = 0; j < C; j++) {
            float dz = dy[j] * gelu_tanh_grad(x[j] + bias[j]);
            dx[j] += dz;
            dbias[j] += dz;
        }
    } else if (dx) {
#pragma omp simd
        for (int64_t j = 0; j < C; j++) dx[j] += dy[j] * gelu_tanh_grad(x[j] + bias[j]);
    } else if (dbias) {
#pragma omp simd
        for (int64_t j = 0; j < C; j++) dbias[j] += dy[j] * gelu_tanh_grad(x[j] + bias[j]);
    }
}

void sf_bias_gelu_forward(float *out, const float *inp, const float *bias, int64_t N, int64_t C, sf_gelu_kind kind) {
    // out, inp: (N, C); bias: (C,)
    if (kind == SF_GELU_ERF) {
#pragma omp parallel for if (N * C > SF_EW_PAR) schedule(static)
        for (int64_t r = 0; r < N; r++) {
            const float *x = inp + r * C; // (C,)
            float *o = out + r * C;       // (C,)
            SF_VLOOP(0, C, {
                const vf z = VLD(x) + VLD(bias);
                VST(o, z * vnormal_cdf(z));
            })
        }
    } else {
#pragma omp parallel for if (N * C > SF_EW_PAR) schedule(static)
        for (int64_t i = 0; i < N; i++) {
            const float *x = inp + i * C; // (C,)
            float *o = out + i * C;       // (C,)
#pragma omp simd
            for (int64_t j = 0; j < C; j++) o[j] = gelu_tanh_f(x[j] + bias[j]);
        }
    }
}

int64_t sf_bias_gelu_backward_scratch(int64_t N, int64_t C) { return (N + SF_BG_ROWS - 1) / SF_BG_ROWS * C; }

void sf_bias_gelu_backward(float *dinp, float *dbias, float *scratch, const float *dout, const float *inp,
                           const float *bias, int64_t N, int64_t C, sf_gelu_kind kind) {
    // dinp, dout, inp: (N, C) (dinp may be NULL); dbias (C,) or NULL; bias: (C,);
    // scratch: (ceil(N / SF_BG_ROWS), C), used when dbias is not NULL
    int par = N * C > SF_EW_PAR;
    if (!dbias) { /* rows in parallel */
        if (!dinp) return;
#pragma omp parallel for if (par) schedule(static)
        for (int64_t i = 0; i < N; i++)
            bias_gelu_grad_row(dinp + i * C, NULL, dout + i * C, inp + i * C, bias, C, kind);
        return;
    }
    const int64_t n_blk = (N + SF_BG_ROWS - 1) / SF_BG_ROWS;
#pragma omp parallel if (par)
    {
        /* blocks of rows in parallel, each summing its dz into its own scratch row ... */
#pragma omp for schedule(static)
        for (int64_t k = 0; k < n_blk; k++) {
            float *part = scratch + k * C; // (C,)
            memset(part, 0, (size_t)C * sizeof(float));
            int64_t i1 = (k + 1) * SF_BG_ROWS < N ? (k + 1) * SF_BG_ROWS : N;
            for (int64_t i = k * SF_BG_ROWS; i < i1; i++)
                bias_gelu_grad_row(dinp ? dinp + i * C : NULL, part, dout + i * C, inp + i * C, bias, C, kind);
        }
        /* ... then the block sums added in block order, columns in parallel (implicit barrier above) */
        int64_t j0, j1;
        sf_omp_columns(C, &j0, &j1);
        for (int64_t k = 0; k < n_blk && j0 < j1; k++)
            for (int64_t j = j0; j < j1; j++) dbias[j] += scratch[k * C + j];
    }
}

void sf_bias_gelu_forward_ref(float *out, const float *inp, const float *bias, int64_t N, int64_t C,
                              sf_gelu_kind kind) {
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < C; j++) out[i * C + j] = (float)gelu_ref_d((double)inp[i * C + j] + bias[j], kind);
}

void sf_bias_gelu_backward_ref(float *dinp, float *dbias, const float *dout, const float *inp, const float *bias,
                               int64_t N, int64_t C, sf_gelu_kind kind) {
    for (int64_t j = 0; j < C; j++) {
        double colsum = 0;
        for (int64_t i = 0; i < N; i++) {
            double dz = dout[i * C + j] * gelu_grad_ref_d((double)inp[i * C + j] + bias[j], kind);
            if (dinp) dinp[i * C + j] += (float)dz;
            colsum += dz;
        }
        if (dbias) dbias[j] += (float)colsum;
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* add / sub / mul / scale                                                                          */

/* in[0] = a, in[1] = b; i[0] = sign of b (+1 add, -1 sub). */
static sf_status addsub_backward(sf_graph *g, sf_node *n) {
    sf_status st = SF_OK;
    const float *dout = sf_f32(sf_graph_grad(g, n->out)); // (n,)
    float *da = grad_ptr(g, n->in[0], n->op, &st);        // (n,) or NULL
    float *db = grad_ptr(g, n->in[1], n->op, &st);        // (n,) or NULL
    if (st != SF_OK) return st;
    int64_t N = sf_tensor_numel(n->out);
    float sb = (float)n->i[0];
    if (da) {
#pragma omp parallel for if (N > SF_EW_PAR) schedule(static)
        for (int64_t i = 0; i < N; i++) da[i] += dout[i];
    }
    if (db) { /* may be da itself when a == b: the two loops then add both terms */
#pragma omp parallel for if (N > SF_EW_PAR) schedule(static)
        for (int64_t i = 0; i < N; i++) db[i] += sb * dout[i];
    }
    return SF_OK;
}

static sf_tensor *addsub(sf_graph *g, sf_tensor *a, sf_tensor *b, int sign, const char *op) {
    if (check_same(g, op, a, "a", b, "b") != SF_OK) return NULL;
    sf_tensor *out = sf_graph_tensor_like(g, a);
    if (!out) return NULL;
    const float *pa = sf_f32(a), *pb = sf_f32(b); // (n,)
    float *po = sf_f32(out);                      // (n,)
    int64_t N = sf_tensor_numel(a);
    if (sign > 0) {
#pragma omp parallel for if (N > SF_EW_PAR) schedule(static)
        for (int64_t i = 0; i < N; i++) po[i] = pa[i] + pb[i];
    } else {
#pragma omp parallel for if (N > SF_EW_PAR) schedule(static)
        for (int64_t i = 0; i < N; i++) po[i] = pa[i] - pb[i];
    }
    sf_tensor *in[2] = {a, b};
    sf_node *n = sf_graph_record(g, op, addsub_backward, out, in, 2);
    if (n) n->i[0] = sign;
    return out;
}

sf_tensor *sf_add(sf_graph *g, sf_tensor *a, sf_tensor *b) { return addsub(g, a, b, +1, "add"); }
sf_tensor *sf_sub(sf_graph *g, sf_tensor *a, sf_tensor *b) { return addsub(g, a, b, -1, "sub"); }

/* in[0] = a, in[1] = b. */
static sf_status mul_backward(sf_graph *g, sf_node *n) {
    sf_status st = SF_OK;
    const float *dout = sf_f32(sf_graph_grad(g, n->out));          // (n,)
    const float *pa = sf_f32(n->in[0]), *pb = sf_f32(n->in[1]);    // (n,)
    float *da = grad_ptr(g, n->in[0], "mul", &st);                 // (n,) or NULL
    float *db = grad_ptr(g, n->in[1], "mul", &st);                 // (n,) or NULL
    if (st != SF_OK) return st;
    int64_t N = sf_tensor_numel(n->out);
    if (da) {
#pragma omp parallel for if (N > SF_EW_PAR) schedule(static)
        for (int64_t i = 0; i < N; i++) da[i] += dout[i] * pb[i];
    }
    if (db) { /* db == da when a == b (x * x): gets 2 x dout in total */
#pragma omp parallel for if (N > SF_EW_PAR) schedule(static)
        for (int64_t i = 0; i < N; i++) db[i] += dout[i] * pa[i];
    }
    return SF_OK;
}

sf_tensor *sf_mul(sf_graph *g, sf_tensor *a, sf_tensor *b) {
    if (check_same(g, "mul", a, "a", b, "b") != SF_OK) return NULL;
    sf_tensor *out = sf_graph_tensor_like(g, a);
    if (!out) return NULL;
    const float *pa = sf_f32(a), *pb = sf_f32(b); // (n,)
    float *po = sf_f32(out);                      // (n,)
    int64_t N = sf_tensor_numel(a);
#pragma omp parallel for if (N > SF_EW_PAR) schedule(static)
    for (int64_t i = 0; i < N; i++) po[i] = pa[i] * pb[i];
    sf_tensor *in[2] = {a, b};
    sf_graph_record(g, "mul", mul_backward, out, in, 2);
    return out;
}

/* in[0] = a; f[0] = s. */
static sf_status scale_backward(sf_graph *g, sf_node *n) {
    sf_status st = SF_OK;
    const float *dout = sf_f32(sf_graph_grad(g, n->out)); // (n,)
    float *da = grad_ptr(g, n->in[0], "scale", &st);      // (n,)
    if (!da) return st;
    int64_t N = sf_tensor_numel(n->out);
    float s = (float)n->f[0];
#pragma omp parallel for if (N > SF_EW_PAR) schedule(static)
    for (int64_t i = 0; i < N; i++) da[i] += s * dout[i];
    return SF_OK;
}

sf_tensor *sf_scale(sf_graph *g, sf_tensor *a, float s) {
    if (check_unary(g, "scale", a, "a") != SF_OK) return NULL;
    sf_tensor *out = sf_graph_tensor_like(g, a);
    if (!out) return NULL;
    const float *pa = sf_f32(a); // (n,)
    float *po = sf_f32(out);     // (n,)
    int64_t N = sf_tensor_numel(a);
#pragma omp parallel for if (N > SF_EW_PAR) schedule(static)
    for (int64_t i = 0; i < N; i++) po[i] = s * pa[i];
    sf_tensor *in[1] = {a};
    sf_node *n = sf_graph_record(g, "scale", scale_backward, out, in, 1);
    if (n) n->f[0] = s;
    return out;
}

/* ------------------------------------------------------------------------------------------------ */
/* tanh / gelu / silu / swiglu                                                                      */

/* in[0] = x; uses the output y: dx += dout (1 - y^2). */
static sf_status tanh_backward(sf_graph *g, sf_node *n) {
    sf_status st = SF_OK;
    const float *dout = sf_f32(sf_graph_grad(g, n->out)); // (n,)
    const float *y = sf_f32(n->out);                      // (n,)
    float *dx = grad_ptr(g, n->in[0], "tanh", &st);       // (n,)
    if (!dx) return st;
    int64_t N = sf_tensor_numel(n->out);
#pragma omp parallel for if (N > SF_EW_PAR) schedule(static)
    for (int64_t i = 0; i < N; i++) dx[i] += dout[i] * (1.0f - y[i] * y[i]);
    return SF_OK;
}

sf_tensor *sf_tanh(sf_graph *g, sf_tensor *x) {
    if (check_unary(g, "tanh", x, "x") != SF_OK) return NULL;
    sf_tensor *out = sf_graph_tensor_like(g, x);
    if (!out) return NULL;
    const float *px = sf_f32(x); // (n,)
    float *po = sf_f32(out);     // (n,)
    int64_t N = sf_tensor_numel(x);
#pragma omp parallel for if (N > SF_EW_PAR) schedule(static)
    for (int64_t i = 0; i < N; i++) po[i] = tanhf(px[i]);
    sf_tensor *in[1] = {x};
    sf_graph_record(g, "tanh", tanh_backward, out, in, 1);
    return out;
}

/* in[0] = x; i[0] = kind. */
static sf_status gelu_backward(sf_graph *g, sf_node *n) {
    sf_status st = SF_OK;
    const float *dout = sf_f32(sf_graph_grad(g, n->out)); // (n,)
    float *dx = grad_ptr(g, n->in[0], "gelu", &st);       // (n,)
    if (!dx) return st;
    sf_gelu_backward(dx, sf_f32(n->in[0]), dout, sf_tensor_numel(n->out), (sf_gelu_kind)n->i[0]);
    return SF_OK;
}

sf_tensor *sf_gelu(sf_graph *g, sf_tensor *x, sf_gelu_kind kind) {
    if (check_unary(g, "gelu", x, "x") != SF_OK) return NULL;
    if (kind != SF_GELU_TANH && kind != SF_GELU_ERF)
        return sf_fail_null(SF_ERR_ARG, "gelu: kind must be SF_GELU_TANH (0) or SF_GELU_ERF (1), got %d", (int)kind);
    sf_tensor *out = sf_graph_tensor_like(g, x);
    if (!out) return NULL;
    sf_gelu_forward(sf_f32(out), sf_f32(x), sf_tensor_numel(x), kind);
    sf_tensor *in[1] = {x};
    sf_node *n = sf_graph_record(g, "gelu", gelu_backward, out, in, 1);
    if (n) n->i[0] = kind;
    return out;
}

/* in[0] = x, in[1] = bias; i[0] = kind. */
static sf_status bias_gelu_backward(sf_graph *g, sf_node *n) {
    sf_status st = SF_OK;
    const float *dout = sf_f32(sf_graph_grad(g, n->out)); // (N, C)
    float *dx = grad_ptr(g, n->in[0], "bias_gelu", &st);  // (N, C) or NULL
    float *db = grad_ptr(g, n->in[1], "bias_gelu", &st);  // (C,) or NULL
    if (st != SF_OK) return st;
    int64_t N = sf_tensor_rows(n->out), C = sf_tensor_cols(n->out);
    int64_t s_n[1] = {sf_bias_gelu_backward_scratch(N, C)};
    sf_tensor *scr = db && s_n[0] > 0 ? sf_graph_scratch(g, 1, s_n) : NULL; // (ceil(N / 32), C)
    if (db && s_n[0] > 0 && !scr) return sf_fail(SF_ERR_NOMEM, "bias_gelu backward: out of memory for the bias sums");
    sf_bias_gelu_backward(dx, db, scr ? sf_f32(scr) : NULL, dout, sf_f32(n->in[0]), sf_f32(n->in[1]), N, C,
                          (sf_gelu_kind)n->i[0]);
    if (scr) sf_graph_recycle(g, scr);
    return SF_OK;
}

sf_tensor *sf_bias_gelu(sf_graph *g, sf_tensor *x, sf_tensor *bias, sf_gelu_kind kind) {
    if (check_unary(g, "bias_gelu", x, "x") != SF_OK || sf_check_f32(bias, "bias_gelu", "bias") != SF_OK) return NULL;
    if (kind != SF_GELU_TANH && kind != SF_GELU_ERF)
        return sf_fail_null(SF_ERR_ARG, "bias_gelu: kind must be SF_GELU_TANH (0) or SF_GELU_ERF (1), got %d",
                            (int)kind);
    char sx[96], sb[96];
    if (x->ndim < 1 || bias->ndim != 1 || bias->shape[0] != x->shape[x->ndim - 1])
        return sf_fail_null(SF_ERR_ARG, "bias_gelu: bias %s must have shape (C,) with C the last dim of x %s",
                            sf_shape_str(bias, sb, sizeof sb), sf_shape_str(x, sx, sizeof sx));
    sf_tensor *out = sf_graph_tensor_like(g, x); // (N, C)
    if (!out) return NULL;
    int64_t N = sf_tensor_rows(x), C = sf_tensor_cols(x);
    sf_bias_gelu_forward(sf_f32(out), sf_f32(x), sf_f32(bias), N, C, kind);
    sf_tensor *in[2] = {x, bias};
    sf_node *n = sf_graph_record(g, "bias_gelu", bias_gelu_backward, out, in, 2);
    if (n) n->i[0] = kind;
    return out;
}

/* in[0] = x: dx += dout * s (1 + x (1 - s)), s = sigmoid(x). */
static sf_status silu_backward(sf_graph *g, sf_node *n) {
    sf_status st = SF_OK;
    const float *dout = sf_f32(sf_graph_grad(g, n->out)); // (n,)
    const float *px = sf_f32(n->in[0]);                   // (n,)
    float *dx = grad_ptr(g, n->in[0], "silu", &st);       // (n,)
    if (!dx) return st;
    int64_t N = sf_tensor_numel(n->out);
    EW_VLOOP(N, {
        const vf x = VLD(px), s = vsigmoid(x);
        VST(dx, VLD(dx) + VLD(dout) * s * (1.0f + x * (1.0f - s)));
    });
    return SF_OK;
}

sf_tensor *sf_silu(sf_graph *g, sf_tensor *x) {
    if (check_unary(g, "silu", x, "x") != SF_OK) return NULL;
    sf_tensor *out = sf_graph_tensor_like(g, x);
    if (!out) return NULL;
    const float *px = sf_f32(x); // (n,)
    float *po = sf_f32(out);     // (n,)
    int64_t N = sf_tensor_numel(x);
    EW_VLOOP(N, {
        const vf x = VLD(px);
        VST(po, x * vsigmoid(x));
    });
    sf_tensor *in[1] = {x};
    sf_graph_record(g, "silu", silu_backward, out, in, 1);
    return out;
}

/* in[0] = gate, in[1] = up: out = silu(gate) * up. */
static sf_status swiglu_backward(sf_graph *g, sf_node *n) {
    sf_status st = SF_OK;
    const float *dout = sf_f32(sf_graph_grad(g, n->out));         // (n,)
    const float *pg = sf_f32(n->in[0]), *pu = sf_f32(n->in[1]);   // (n,)
    float *dg = grad_ptr(g, n->in[0], "swiglu", &st);             // (n,) or NULL
    float *du = grad_ptr(g, n->in[1], "swiglu", &st);             // (n,) or NULL
    if (st != SF_OK) return st;
    int64_t N = sf_tensor_numel(n->out);
    if (dg) {
        EW_VLOOP(N, {
            const vf x = VLD(pg), s = vsigmoid(x);
            VST(dg, VLD(dg) + VLD(dout) * VLD(pu) * s * (1.0f + x * (1.0f - s)));
        });
    }
    if (du) { /* du == dg when gate == up */
        EW_VLOOP(N, {
            const vf x = VLD(pg);
            VST(du, VLD(du) + VLD(dout) * x * vsigmoid(x));
        });
    }
    return SF_OK;
}

sf_tensor *sf_swiglu(sf_graph *g, sf_tensor *gate, sf_tensor *up) {
    if (check_same(g, "swiglu", gate, "gate", up, "up") != SF_OK) return NULL;
    sf_tensor *out = sf_graph_tensor_like(g, gate);
    if (!out) return NULL;
    const float *pg = sf_f32(gate), *pu = sf_f32(up); // (n,)
    float *po = sf_f32(out);                          // (n,)
    int64_t N = sf_tensor_numel(gate);
    EW_VLOOP(N, {
        const vf x = VLD(pg);
        VST(po, x * vsigmoid(x) * VLD(pu));
    });
    sf_tensor *in[2] = {gate, up};
    sf_graph_record(g, "swiglu", swiglu_backward, out, in, 2);
    return out;
}

/* ------------------------------------------------------------------------------------------------ */
/* dropout                                                                                          */

/* Keep threshold on the top 32 bits of the hash: P(keep) = 1 - thr / 2^32 = 1 - p (to 2^-32). */
static uint64_t dropout_threshold(double p) { return (uint64_t)(p * 4294967296.0); }
static inline int dropout_keep(uint64_t seed, int64_t i, uint64_t thr) {
    return (sf_hash64(seed, (uint64_t)i) >> 32) >= thr;
}

/* y (n,) = keep(i) ? x * scale : 0; also the backward with x = dout and y = dinp accumulated. */
static void dropout_apply(float *y, const float *x, int64_t N, uint64_t seed, uint64_t thr, float scale,
                          int accumulate) {
    if (accumulate) {
#pragma omp parallel for if (N > SF_EW_PAR) schedule(static)
        for (int64_t i = 0; i < N; i++)
            if (dropout_keep(seed, i, thr)) y[i] += scale * x[i];
    } else {
#pragma omp parallel for if (N > SF_EW_PAR) schedule(static)
        for (int64_t i = 0; i < N; i++) y[i] = dropout_keep(seed, i, thr) ? scale * x[i] : 0.0f;
    }
}

/* in[0] = x; f[0] = p, f[1] = scale; i[0] = seed. The mask is recomputed from the seed. */
static sf_status dropout_backward(sf_graph *g, sf_node *n) {
    sf_status st = SF_OK;
    const float *dout = sf_f32(sf_graph_grad(g, n->out)); // (n,)
    float *dx = grad_ptr(g, n->in[0], "dropout", &st);    // (n,)
    if (!dx) return st;
    dropout_apply(dx, dout, sf_tensor_numel(n->out), (uint64_t)n->i[0], dropout_threshold(n->f[0]), (float)n->f[1], 1);
    return SF_OK;
}

sf_tensor *sf_dropout(sf_graph *g, sf_tensor *x, float p, uint64_t seed) {
    if (check_unary(g, "dropout", x, "x") != SF_OK) return NULL;
    if (!(p >= 0.0f && p < 1.0f))
        return sf_fail_null(SF_ERR_ARG, "dropout: p must be in [0, 1), got %g", (double)p);
    if (p == 0.0f) return x; /* identity: no copy, no node */
    sf_tensor *out = sf_graph_tensor_like(g, x);
    if (!out) return NULL;
    float scale = 1.0f / (1.0f - p);
    dropout_apply(sf_f32(out), sf_f32(x), sf_tensor_numel(x), seed, dropout_threshold(p), scale, 0);
    sf_tensor *in[1] = {x};
    sf_node *n = sf_graph_record(g, "dropout", dropout_backward, out, in, 1);
    if (n) {
        n->f[0] = p;
        n->f[1] = scale;
        n->i[0] = (int64_t)seed;
    }
    return out;
}

/* ------------------------------------------------------------------------------------------------ */
/* sum                                                                                              */

/* in[0] = x: dx += dout[0]. */
static sf_status sum_backward(sf_graph *g, sf_node *n) {
    sf_status st = SF_OK;
    float d = sf_f32(sf_graph_grad(g, n->out))[0];
    float *dx = grad_ptr(g, n->in[0], "sum", &st); // (n,)
    if (!dx) return st;
    int64_t N = sf_tensor_numel(n->in[0]);
#pragma omp parallel for if (N > SF_EW_PAR) schedule(static)
    for (int64_t i = 0; i < N; i++) dx[i] += d;
    return SF_OK;
}

sf_tensor *sf_sum(sf_graph *g, sf_tensor *x) {
    if (check_unary(g, "sum", x, "x") != SF_OK) return NULL;
    int64_t shape[1] = {1};
    sf_tensor *out = sf_graph_tensor(g, 1, shape); // (1,)
    if (!out) return NULL;
    const float *px = sf_f32(x); // (n,)
    int64_t N = sf_tensor_numel(x);
    double s = 0; /* double accumulation: exact enough for any realistic n */
#pragma omp parallel for if (N > SF_EW_PAR) schedule(static) reduction(+ : s)
    for (int64_t i = 0; i < N; i++) s += px[i];
    sf_f32(out)[0] = (float)s;
    sf_tensor *in[1] = {x};
    sf_graph_record(g, "sum", sum_backward, out, in, 1);
    return out;
}
