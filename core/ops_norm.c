/* ops_norm.c — LayerNorm and RMSNorm over the last dimension, and the residual add fused into a
 * LayerNorm: raw llm.c-style forward/backward kernels, their serial reference loops, and the tape ops
 * sf_layernorm / sf_add_layernorm / sf_rmsnorm.
 *
 *   layernorm:     out = (x - mean) * rstd * w + b,  rstd = 1 / sqrt(var + eps)  (biased variance, nn.LayerNorm)
 *   add_layernorm: sum = a + b, out = layernorm(sum)  (the transformer's residual add and the norm after it)
 *   rmsnorm:       out = x * rstd * w,               rstd = 1 / sqrt(mean(x^2) + eps)  (Llama / HF LlamaRMSNorm)
 *
 * Forward saves per-row statistics (mean and rstd for layernorm, rstd for rmsnorm; (N,) each) so the
 * backward needs no recomputation of them. Backward accumulates (+=) into dinp/dweight/dbias and does no
 * work for the NULL ones (frozen inputs). Parallelism: rows in parallel for out and dinp; dweight/dbias
 * in a second, column-parallel pass (each thread owns a slice of columns and walks every row in order),
 * so no atomics, no scratch, and results that do not depend on the thread count.
 *
 * add_layernorm forms the sum while computing the row mean (the sum is stored: it is the next residual
 * stream) and, in backward, adds the sum's gradient from its later consumers to the norm's input
 * gradient and passes the total to both addends in the same row pass; no separate add node works on
 * (N, C) buffers in either direction. On the tape it is two nodes, "add_ln_sum" (out = sum, in = a, b)
 * and "add_layernorm" (out = normalised, in = sum, w, b); the second, which runs first in backward, takes
 * the sum's pending gradient from the tape (sf_graph_take_grad), so the first only runs — as a plain add —
 * when the normalised output got no gradient at all.
 *
 * This file does not normalise over other dimensions (no batch/group norm), does not support a missing
 * weight, and works in f32 only (statistics of the reference loops in double).
 */
#include <math.h>
#include <stdlib.h>

#include "ops.h"
#include "parallel_for.h"

#define SF_NORM_PAR ((int64_t)1 << 15) /* parallelise when N * C exceeds this */

/* ================================ layernorm raw kernels ========================================== */

/* One row: given its mean m, writes o = (x - m) * rstd * w (+ b) and returns rstd. */
static inline float ln_row(float *o, const float *x, float m, const float *weight, const float *bias, int64_t C,
                           float eps) {
    float v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (int64_t j = 0; j < C; j++) {
        float d = x[j] - m;
        v += d * d;
    }
    v /= (float)C;
    float s = 1.0f / sqrtf(v + eps);
    if (bias) {
#pragma omp simd
        for (int64_t j = 0; j < C; j++) o[j] = (x[j] - m) * s * weight[j] + bias[j];
    } else {
#pragma omp simd
        for (int64_t j = 0; j < C; j++) o[j] = (x[j] - m) * s * weight[j];
    }
    return s;
}

void sf_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                          const float *bias, int64_t N, int64_t C, float eps) {
    // out, inp: (N, C); mean, rstd: (N,) or NULL (not stored); weight: (C,); bias: (C,) or NULL
    SF_PARALLEL_FOR_IF(N * C > SF_NORM_PAR, for (int64_t i = 0; i < N; i++) {
        const float *x = inp + i * C; // (C,)
        float m = 0.0f;
        _Pragma("omp simd reduction(+ : m)") for (int64_t j = 0; j < C; j++) m += x[j];
        m /= (float)C;
        float s = ln_row(out + i * C, x, m, weight, bias, C, eps);
        if (mean) mean[i] = m;
        if (rstd) rstd[i] = s;
    });
}

void sf_add_layernorm_forward(float *sum, float *out, float *mean, float *rstd, const float *a, const float *b,
                              const float *weight, const float *bias, int64_t N, int64_t C, float eps) {
    // sum, out, a, b: (N, C); mean, rstd: (N,) or NULL (not stored); weight: (C,); bias: (C,) or NULL
#pragma omp parallel for if (N * C > SF_NORM_PAR) schedule(static)
    for (int64_t i = 0; i < N; i++) {
        const float *xa = a + i * C, *xb = b + i * C; // (C,)
        float *x = sum + i * C;                       // (C,)
        float m = 0.0f;
#pragma omp simd reduction(+ : m)
        for (int64_t j = 0; j < C; j++) {
            x[j] = xa[j] + xb[j];
            m += x[j];
        }
        m /= (float)C;
        float s = ln_row(out + i * C, x, m, weight, bias, C, eps);
        if (mean) mean[i] = m;
        if (rstd) rstd[i] = s;
    }
}

/* Row i's two means for the input gradient: *a = mean(dy w), *b = mean(dy w norm), norm = (x - m) s. */
static inline void ln_row_dmeans(const float *x, const float *dy, const float *weight, float m, float s, int64_t C,
                                 float *a, float *b) {
    float sa = 0.0f, sb = 0.0f;
#pragma omp simd reduction(+ : sa, sb)
    for (int64_t j = 0; j < C; j++) {
        float dn = dy[j] * weight[j];
        sa += dn;
        sb += dn * (x[j] - m) * s;
    }
    *a = sa / (float)C;
    *b = sb / (float)C;
}

/* dweight += sum over rows of norm * dy, dbias += sum of dy (either may be NULL), column-parallel. */
static void ln_param_grads(float *dweight, float *dbias, const float *dout, const float *inp, const float *mean,
                           const float *rstd, int64_t N, int64_t C, int par) {
    if (!dweight && !dbias) return;
#pragma omp parallel if (par)
    {
        int64_t j0, j1;
        sf_omp_columns(C, &j0, &j1);
        for (int64_t i = 0; i < N && j0 < j1; i++) {
            const float *x = inp + i * C, *dy = dout + i * C; // (C,)
            float m = mean[i], s = rstd[i];
            if (dweight)
#pragma omp simd
                for (int64_t j = j0; j < j1; j++) dweight[j] += (x[j] - m) * s * dy[j];
            if (dbias)
#pragma omp simd
                for (int64_t j = j0; j < j1; j++) dbias[j] += dy[j];
        }
    }
}

void sf_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                           const float *weight, const float *mean, const float *rstd, int64_t N, int64_t C) {
    // dinp, dout, inp: (N, C); dweight, dbias, weight: (C,); mean, rstd: (N,); NULL grads are skipped
    int par = N * C > SF_NORM_PAR;
    if (dinp) {
#pragma omp parallel for if (par) schedule(static)
        for (int64_t i = 0; i < N; i++) {
            const float *x = inp + i * C, *dy = dout + i * C; // (C,)
            float *dx = dinp + i * C;                         // (C,)
            float m = mean[i], s = rstd[i];
            /* dnorm = dy * w;  dx = s * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)) */
            float a, b;
            ln_row_dmeans(x, dy, weight, m, s, C, &a, &b);
#pragma omp simd
            for (int64_t j = 0; j < C; j++) {
                float nrm = (x[j] - m) * s;
                dx[j] += s * (dy[j] * weight[j] - a - nrm * b);
            }
        }
    }
    ln_param_grads(dweight, dbias, dout, inp, mean, rstd, N, C, par);
}

/* One row of add_layernorm's input gradient: g = ds + s (dy w - a - norm b) (ds NULL = 0); d1 += k g and,
 * when d2 is not NULL, d2 += g. Each call site passes ds and d2 known to be NULL or not, so after inlining
 * every variant is one simd loop without tests. */
static inline void add_ln_row_grad(float *d1, float *d2, float k, const float *ds, const float *x, const float *dy,
                                   const float *weight, float m, float s, float a, float b, int64_t C) {
    if (d2) {
#pragma omp simd
        for (int64_t j = 0; j < C; j++) {
            float g = s * (dy[j] * weight[j] - a - (x[j] - m) * s * b) + (ds ? ds[j] : 0.0f);
            d1[j] += g;
            d2[j] += g;
        }
    } else {
#pragma omp simd
        for (int64_t j = 0; j < C; j++) {
            float g = s * (dy[j] * weight[j] - a - (x[j] - m) * s * b) + (ds ? ds[j] : 0.0f);
            d1[j] += k * g;
        }
    }
}

void sf_add_layernorm_backward(float *da, float *db, float *dweight, float *dbias, const float *dsum,
                               const float *dout, const float *sum, const float *weight, const float *mean,
                               const float *rstd, int64_t N, int64_t C) {
    // da, db, dsum, dout, sum: (N, C) (da/db/dsum may be NULL); dweight, dbias, weight: (C,); mean, rstd: (N,)
    int par = N * C > SF_NORM_PAR;
    /* d1 gets k * g, d2 (distinct from d1, or NULL) gets g: a and b may be the same tensor (x + x) */
    float *d1 = da ? da : db, *d2 = da && db && da != db ? db : NULL;
    float k = da && da == db ? 2.0f : 1.0f;
    if (d1) {
#pragma omp parallel for if (par) schedule(static)
        for (int64_t i = 0; i < N; i++) {
            const float *x = sum + i * C, *dy = dout + i * C; // (C,)
            const float *ds = dsum ? dsum + i * C : NULL;     // (C,) or NULL
            float m = mean[i], s = rstd[i], a, b;
            ln_row_dmeans(x, dy, weight, m, s, C, &a, &b);
            float *r1 = d1 + i * C, *r2 = d2 ? d2 + i * C : NULL; // (C,)
            if (ds && r2) add_ln_row_grad(r1, r2, k, ds, x, dy, weight, m, s, a, b, C);
            else if (ds) add_ln_row_grad(r1, NULL, k, ds, x, dy, weight, m, s, a, b, C);
            else if (r2) add_ln_row_grad(r1, r2, k, NULL, x, dy, weight, m, s, a, b, C);
            else add_ln_row_grad(r1, NULL, k, NULL, x, dy, weight, m, s, a, b, C);
        }
    }
    ln_param_grads(dweight, dbias, dout, sum, mean, rstd, N, C, par);
}

void sf_layernorm_forward_ref(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                              const float *bias, int64_t N, int64_t C, float eps) {
    for (int64_t i = 0; i < N; i++) {
        const float *x = inp + i * C;
        double m = 0, v = 0;
        for (int64_t j = 0; j < C; j++) m += x[j];
        m /= (double)C;
        for (int64_t j = 0; j < C; j++) v += (x[j] - m) * (x[j] - m);
        v /= (double)C;
        double s = 1.0 / sqrt(v + eps);
        for (int64_t j = 0; j < C; j++)
            out[i * C + j] = (float)((x[j] - m) * s * weight[j] + (bias ? bias[j] : 0.0f));
        if (mean) mean[i] = (float)m;
        if (rstd) rstd[i] = (float)s;
    }
}

void sf_layernorm_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                               const float *weight, const float *mean, const float *rstd, int64_t N, int64_t C) {
    for (int64_t i = 0; i < N; i++) {
        const float *x = inp + i * C, *dy = dout + i * C;
        double m = mean[i], s = rstd[i], a = 0, b = 0;
        for (int64_t j = 0; j < C; j++) {
            double nrm = (x[j] - m) * s, dn = (double)dy[j] * weight[j];
            a += dn;
            b += dn * nrm;
            if (dweight) dweight[j] += (float)(nrm * dy[j]);
            if (dbias) dbias[j] += dy[j];
        }
        a /= (double)C;
        b /= (double)C;
        if (dinp)
            for (int64_t j = 0; j < C; j++) {
                double nrm = (x[j] - m) * s;
                dinp[i * C + j] += (float)(s * ((double)dy[j] * weight[j] - a - nrm * b));
            }
    }
}

void sf_add_layernorm_forward_ref(float *sum, float *out, float *mean, float *rstd, const float *a, const float *b,
                                  const float *weight, const float *bias, int64_t N, int64_t C, float eps) {
    for (int64_t i = 0; i < N * C; i++) sum[i] = a[i] + b[i];
    sf_layernorm_forward_ref(out, mean, rstd, sum, weight, bias, N, C, eps);
}

void sf_add_layernorm_backward_ref(float *da, float *db, float *dweight, float *dbias, const float *dsum,
                                   const float *dout, const float *sum, const float *weight, const float *mean,
                                   const float *rstd, int64_t N, int64_t C) {
    float *dx = calloc((size_t)(N * C > 0 ? N * C : 1), sizeof *dx); // (N, C) the norm's input gradient
    if (!dx) return;                                                // reference loops: tests only
    sf_layernorm_backward_ref(dx, dweight, dbias, dout, sum, weight, mean, rstd, N, C);
    for (int64_t i = 0; i < N * C; i++) {
        const float g = dx[i] + (dsum ? dsum[i] : 0.0f);
        if (da) da[i] += g;
        if (db) db[i] += g; /* da == db when a == b: both terms land */
    }
    free(dx);
}

/* ================================= rmsnorm raw kernels =========================================== */

void sf_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int64_t N, int64_t C,
                        float eps) {
    // out, inp: (N, C); rstd: (N,) or NULL (not stored); weight: (C,)
    SF_PARALLEL_FOR_IF(N * C > SF_NORM_PAR, for (int64_t i = 0; i < N; i++) {
        const float *x = inp + i * C; // (C,)
        float *o = out + i * C;       // (C,)
        float ss = 0.0f;
        _Pragma("omp simd reduction(+ : ss)") for (int64_t j = 0; j < C; j++) ss += x[j] * x[j];
        float s = 1.0f / sqrtf(ss / (float)C + eps);
        _Pragma("omp simd") for (int64_t j = 0; j < C; j++) o[j] = x[j] * s * weight[j];
        if (rstd) rstd[i] = s;
    });
}

void sf_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                         const float *rstd, int64_t N, int64_t C) {
    // dinp, dout, inp: (N, C); dweight, weight: (C,); rstd: (N,); NULL grads are skipped
    int par = N * C > SF_NORM_PAR;
    if (dinp) {
#pragma omp parallel for if (par) schedule(static)
        for (int64_t i = 0; i < N; i++) {
            const float *x = inp + i * C, *dy = dout + i * C; // (C,)
            float *dx = dinp + i * C;                         // (C,)
            float s = rstd[i];
            /* norm = x * s, dnorm = dy * w;  dx = s * (dnorm - norm * mean(dnorm * norm)) */
            float b = 0.0f;
#pragma omp simd reduction(+ : b)
            for (int64_t j = 0; j < C; j++) b += dy[j] * weight[j] * x[j];
            b *= s * s / (float)C; /* mean(dnorm * norm) / s, folded so the loop below multiplies x */
#pragma omp simd
            for (int64_t j = 0; j < C; j++) dx[j] += s * (dy[j] * weight[j] - x[j] * b);
        }
    }
    if (dweight) {
#pragma omp parallel if (par)
        {
            int64_t j0, j1;
            sf_omp_columns(C, &j0, &j1);
            for (int64_t i = 0; i < N && j0 < j1; i++) {
                const float *x = inp + i * C, *dy = dout + i * C; // (C,)
                float s = rstd[i];
#pragma omp simd
                for (int64_t j = j0; j < j1; j++) dweight[j] += x[j] * s * dy[j];
            }
        }
    }
}

void sf_rmsnorm_forward_ref(float *out, float *rstd, const float *inp, const float *weight, int64_t N, int64_t C,
                            float eps) {
    for (int64_t i = 0; i < N; i++) {
        const float *x = inp + i * C;
        double ss = 0;
        for (int64_t j = 0; j < C; j++) ss += (double)x[j] * x[j];
        double s = 1.0 / sqrt(ss / (double)C + eps);
        for (int64_t j = 0; j < C; j++) out[i * C + j] = (float)(x[j] * s * weight[j]);
        if (rstd) rstd[i] = (float)s;
    }
}

void sf_rmsnorm_backward_ref(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                             const float *rstd, int64_t N, int64_t C) {
    for (int64_t i = 0; i < N; i++) {
        const float *x = inp + i * C, *dy = dout + i * C;
        double s = rstd[i], b = 0;
        for (int64_t j = 0; j < C; j++) {
            double nrm = x[j] * s;
            b += (double)dy[j] * weight[j] * nrm;
            if (dweight) dweight[j] += (float)(nrm * dy[j]);
        }
        b /= (double)C;
        if (dinp)
            for (int64_t j = 0; j < C; j++)
                dinp[i * C + j] += (float)(s * ((double)dy[j] * weight[j] - x[j] * s * b));
    }
}

/* ===================================== tape ops ================================================== */

/* The buffer to accumulate t's gradient into, or NULL when t needs none; sets *st on allocation failure. */
static float *grad_ptr(sf_graph *g, sf_tensor *t, const char *op, sf_status *st) {
    sf_tensor *d = sf_graph_grad(g, t);
    if (d) return sf_f32(d);
    if (t && t->requires_grad) *st = sf_fail(SF_ERR_NOMEM, "%s backward: out of memory for a gradient", op);
    return NULL;
}

/* x (..., C) f32 with at least one dim and C > 0. */
static sf_status check_norm_args(sf_graph *g, const char *op, const sf_tensor *x) {
    if (!g) return sf_fail(SF_ERR_ARG, "%s: graph is missing", op);
    sf_status st = sf_check_f32(x, op, "x");
    if (st != SF_OK) return st;
    if (x->ndim < 1 || sf_tensor_cols(x) < 1) {
        char sx[96];
        return sf_fail(SF_ERR_ARG, "%s: x %s must have at least one dimension and a non-empty last dimension", op,
                       sf_shape_str(x, sx, sizeof sx));
    }
    return SF_OK;
}

/* v: a 1-D f32 vector of C elements, C = last dim of x. */
static sf_status check_vec(const char *op, const sf_tensor *x, const sf_tensor *v, const char *name) {
    sf_status st = sf_check_f32(v, op, name);
    if (st != SF_OK) return st;
    int64_t C = sf_tensor_cols(x);
    if (v->ndim != 1 || v->shape[0] != C) {
        char sx[96], sv[96];
        return sf_fail(SF_ERR_ARG, "%s: %s %s must have shape (%lld,) to match the last dim of x %s", op, name,
                       sf_shape_str(v, sv, sizeof sv), (long long)C, sf_shape_str(x, sx, sizeof sx));
    }
    return SF_OK;
}

/* in = {x, weight[, bias]}; saved[0] = mean (N,), saved[1] = rstd (N,). */
static sf_status layernorm_backward(sf_graph *g, sf_node *n) {
    sf_status st = SF_OK;
    sf_tensor *x = n->in[0], *w = n->in[1], *b = n->n_in > 2 ? n->in[2] : NULL;
    const float *dout = sf_f32(sf_graph_grad(g, n->out)); // (N, C)
    float *dx = grad_ptr(g, x, "layernorm", &st);         // (N, C) or NULL
    float *dw = grad_ptr(g, w, "layernorm", &st);         // (C,) or NULL
    float *db = b ? grad_ptr(g, b, "layernorm", &st) : NULL; // (C,) or NULL
    if (st != SF_OK) return st;
    sf_layernorm_backward(dx, dw, db, dout, sf_f32(x), sf_f32(w), sf_f32(n->saved[0]), sf_f32(n->saved[1]),
                          sf_tensor_rows(x), sf_tensor_cols(x));
    return SF_OK;
}

sf_tensor *sf_layernorm(sf_graph *g, sf_tensor *x, sf_tensor *weight, sf_tensor *bias, float eps) {
    if (check_norm_args(g, "layernorm", x) != SF_OK || check_vec("layernorm", x, weight, "weight") != SF_OK ||
        (bias && check_vec("layernorm", x, bias, "bias") != SF_OK))
        return NULL;
    if (!(eps >= 0.0f)) return sf_fail_null(SF_ERR_ARG, "layernorm: eps must be >= 0, got %g", (double)eps);
    int64_t N = sf_tensor_rows(x), C = sf_tensor_cols(x);
    int64_t rows[1] = {N};
    sf_tensor *out = sf_graph_tensor_like(g, x);  // (N, C)
    sf_tensor *mean = sf_graph_tensor(g, 1, rows); // (N,)
    sf_tensor *rstd = sf_graph_tensor(g, 1, rows); // (N,)
    if (!out || !mean || !rstd) return NULL;
    sf_layernorm_forward(sf_f32(out), sf_f32(mean), sf_f32(rstd), sf_f32(x), sf_f32(weight),
                         bias ? sf_f32(bias) : NULL, N, C, eps);
    sf_tensor *in[3] = {x, weight, bias};
    sf_node *n = sf_graph_record(g, "layernorm", layernorm_backward, out, in, bias ? 3 : 2);
    if (n) {
        n->f[0] = eps;
        if (sf_node_save(n, mean) != SF_OK || sf_node_save(n, rstd) != SF_OK) return NULL;
    }
    return out;
}

/* The sum node: in = {a, b}. Runs only when the norm's output got no gradient (add_layernorm_backward
 * takes the sum's gradient otherwise): da += dsum, db += dsum. */
static sf_status add_ln_sum_backward(sf_graph *g, sf_node *n) {
    sf_status st = SF_OK;
    const float *ds = sf_f32(sf_graph_grad(g, n->out));   // (N, C)
    float *da = grad_ptr(g, n->in[0], "add_layernorm", &st); // (N, C) or NULL
    float *db = grad_ptr(g, n->in[1], "add_layernorm", &st); // (N, C) or NULL
    if (st != SF_OK) return st;
    int64_t N = sf_tensor_numel(n->out);
#pragma omp parallel for if (N > SF_NORM_PAR) schedule(static)
    for (int64_t i = 0; i < N; i++) {
        if (da) da[i] += ds[i];
        if (db) db[i] += ds[i]; /* db == da when a == b: both terms land */
    }
    return SF_OK;
}

/* The norm node: in = {sum, weight[, bias]}; saved = {mean (N,), rstd (N,), a, b}. Does the backward of
 * both nodes: the sum's gradient from its other consumers plus the norm's input gradient, into a and b. */
static sf_status add_layernorm_backward(sf_graph *g, sf_node *n) {
    sf_status st = SF_OK;
    sf_tensor *sum = n->in[0], *w = n->in[1], *b = n->n_in > 2 ? n->in[2] : NULL;
    const float *dout = sf_f32(sf_graph_grad(g, n->out));            // (N, C)
    float *da = grad_ptr(g, n->saved[2], "add_layernorm", &st);       // (N, C) or NULL
    float *dd = grad_ptr(g, n->saved[3], "add_layernorm", &st);       // (N, C) or NULL
    float *dw = grad_ptr(g, w, "add_layernorm", &st);                 // (C,) or NULL
    float *db = b ? grad_ptr(g, b, "add_layernorm", &st) : NULL;      // (C,) or NULL
    if (st != SF_OK) return st;
    sf_tensor *dsum = sf_graph_take_grad(g, sum); // (N, C) or NULL
    sf_add_layernorm_backward(da, dd, dw, db, dsum ? sf_f32(dsum) : NULL, dout, sf_f32(sum), sf_f32(w),
                              sf_f32(n->saved[0]), sf_f32(n->saved[1]), sf_tensor_rows(sum), sf_tensor_cols(sum));
    if (dsum) sf_graph_recycle(g, dsum);
    return SF_OK;
}

sf_tensor *sf_add_layernorm(sf_graph *g, sf_tensor *x, sf_tensor *d, sf_tensor *weight, sf_tensor *bias, float eps,
                            sf_tensor **sum_out) {
    const char *op = "add_layernorm";
    if (sum_out) *sum_out = NULL;
    if (check_norm_args(g, op, x) != SF_OK || sf_check_f32(d, op, "d") != SF_OK ||
        check_vec(op, x, weight, "weight") != SF_OK || (bias && check_vec(op, x, bias, "bias") != SF_OK))
        return NULL;
    if (!sf_tensor_same_shape(x, d)) {
        char sx[96], sd[96];
        return sf_fail_null(SF_ERR_ARG, "%s: x %s and d %s must have the same shape", op, sf_shape_str(x, sx, sizeof sx),
                            sf_shape_str(d, sd, sizeof sd));
    }
    if (!(eps >= 0.0f)) return sf_fail_null(SF_ERR_ARG, "%s: eps must be >= 0, got %g", op, (double)eps);
    int64_t N = sf_tensor_rows(x), C = sf_tensor_cols(x);
    int64_t rows[1] = {N};
    sf_tensor *sum = sf_graph_tensor_like(g, x);  // (N, C)
    sf_tensor *out = sf_graph_tensor_like(g, x);  // (N, C)
    sf_tensor *mean = sf_graph_tensor(g, 1, rows); // (N,)
    sf_tensor *rstd = sf_graph_tensor(g, 1, rows); // (N,)
    if (!sum || !out || !mean || !rstd) return NULL;
    sf_add_layernorm_forward(sf_f32(sum), sf_f32(out), sf_f32(mean), sf_f32(rstd), sf_f32(x), sf_f32(d),
                             sf_f32(weight), bias ? sf_f32(bias) : NULL, N, C, eps);
    sf_tensor *in_sum[2] = {x, d}, *in_ln[3] = {sum, weight, bias};
    if (sf_graph_recording(g) && !sf_graph_record(g, "add_ln_sum", add_ln_sum_backward, sum, in_sum, 2) &&
        (x->requires_grad || d->requires_grad))
        return NULL; /* out of memory for the tape */
    sf_node *n = sf_graph_record(g, op, add_layernorm_backward, out, in_ln, bias ? 3 : 2);
    if (n) {
        n->f[0] = eps;
        if (sf_node_save(n, mean) != SF_OK || sf_node_save(n, rstd) != SF_OK || sf_node_save(n, x) != SF_OK ||
            sf_node_save(n, d) != SF_OK)
            return NULL;
    }
    if (sum_out) *sum_out = sum;
    return out;
}

/* in = {x, weight}; saved[0] = rstd (N,). */
static sf_status rmsnorm_backward(sf_graph *g, sf_node *n) {
    sf_status st = SF_OK;
    sf_tensor *x = n->in[0], *w = n->in[1];
    const float *dout = sf_f32(sf_graph_grad(g, n->out)); // (N, C)
    float *dx = grad_ptr(g, x, "rmsnorm", &st);           // (N, C) or NULL
    float *dw = grad_ptr(g, w, "rmsnorm", &st);           // (C,) or NULL
    if (st != SF_OK) return st;
    sf_rmsnorm_backward(dx, dw, dout, sf_f32(x), sf_f32(w), sf_f32(n->saved[0]), sf_tensor_rows(x),
                        sf_tensor_cols(x));
    return SF_OK;
}

sf_tensor *sf_rmsnorm(sf_graph *g, sf_tensor *x, sf_tensor *weight, float eps) {
    if (check_norm_args(g, "rmsnorm", x) != SF_OK || check_vec("rmsnorm", x, weight, "weight") != SF_OK) return NULL;
    if (!(eps >= 0.0f)) return sf_fail_null(SF_ERR_ARG, "rmsnorm: eps must be >= 0, got %g", (double)eps);
    int64_t N = sf_tensor_rows(x), C = sf_tensor_cols(x);
    int64_t rows[1] = {N};
    sf_tensor *out = sf_graph_tensor_like(g, x);  // (N, C)
    sf_tensor *rstd = sf_graph_tensor(g, 1, rows); // (N,)
    if (!out || !rstd) return NULL;
    sf_rmsnorm_forward(sf_f32(out), sf_f32(rstd), sf_f32(x), sf_f32(weight), N, C, eps);
    sf_tensor *in[2] = {x, weight};
    sf_node *n = sf_graph_record(g, "rmsnorm", rmsnorm_backward, out, in, 2);
    if (n) {
        n->f[0] = eps;
        if (sf_node_save(n, rstd) != SF_OK) return NULL;
    }
    return out;
}
