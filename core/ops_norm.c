/* ops_norm.c — LayerNorm and RMSNorm over the last dimension: raw llm.c-style forward/backward kernels,
 * their serial reference loops, and the tape ops sf_layernorm / sf_rmsnorm.
 *
 *   layernorm: out = (x - mean) * rstd * w + b,  rstd = 1 / sqrt(var + eps)  (biased variance, nn.LayerNorm)
 *   rmsnorm:   out = x * rstd * w,               rstd = 1 / sqrt(mean(x^2) + eps)  (Llama / HF LlamaRMSNorm)
 *
 * Forward saves per-row statistics (mean and rstd for layernorm, rstd for rmsnorm; (N,) each) so the
 * backward needs no recomputation of them. Backward accumulates (+=) into dinp/dweight/dbias and does no
 * work for the NULL ones (frozen inputs). Parallelism: rows in parallel for out and dinp; dweight/dbias
 * in a second, column-parallel pass (each thread owns a slice of columns and walks every row in order),
 * so no atomics, no scratch, and results that do not depend on the thread count.
 *
 * This file does not normalise over other dimensions (no batch/group norm), does not support a missing
 * weight, and works in f32 only (statistics of the reference loops in double).
 */
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "ops.h"

#define SF_NORM_PAR ((int64_t)1 << 15) /* parallelise when N * C exceeds this */

/* Columns [*j0, *j1) owned by the calling thread in a column-parallel pass (whole slices of 16). */
static void my_columns(int64_t C, int64_t *j0, int64_t *j1) {
    int nth = 1, tid = 0;
#ifdef _OPENMP
    nth = omp_get_num_threads();
    tid = omp_get_thread_num();
#endif
    int64_t chunk = ((C + nth - 1) / nth + 15) / 16 * 16;
    *j0 = (int64_t)tid * chunk;
    *j1 = *j0 + chunk;
    if (*j0 > C) *j0 = C;
    if (*j1 > C) *j1 = C;
}

/* ================================ layernorm raw kernels ========================================== */

void sf_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                          const float *bias, int64_t N, int64_t C, float eps) {
    // out, inp: (N, C); mean, rstd: (N,) or NULL (not stored); weight: (C,); bias: (C,) or NULL
#pragma omp parallel for if (N * C > SF_NORM_PAR) schedule(static)
    for (int64_t i = 0; i < N; i++) {
        const float *x = inp + i * C; // (C,)
        float *o = out + i * C;       // (C,)
        float m = 0.0f;
#pragma omp simd reduction(+ : m)
        for (int64_t j = 0; j < C; j++) m += x[j];
        m /= (float)C;
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int64_t j = 0; j < C; j++) {
            float d = x[j] - m;
            v += d * d;
        }
        v /= (float)C;
        float s = 1.0f / sqrtf(v + eps);
        if (bias)
            for (int64_t j = 0; j < C; j++) o[j] = (x[j] - m) * s * weight[j] + bias[j];
        else
            for (int64_t j = 0; j < C; j++) o[j] = (x[j] - m) * s * weight[j];
        if (mean) mean[i] = m;
        if (rstd) rstd[i] = s;
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
            float a = 0.0f, b = 0.0f;
#pragma omp simd reduction(+ : a, b)
            for (int64_t j = 0; j < C; j++) {
                float dn = dy[j] * weight[j];
                a += dn;
                b += dn * (x[j] - m) * s;
            }
            a /= (float)C;
            b /= (float)C;
            for (int64_t j = 0; j < C; j++) {
                float nrm = (x[j] - m) * s;
                dx[j] += s * (dy[j] * weight[j] - a - nrm * b);
            }
        }
    }
    if (dweight || dbias) {
#pragma omp parallel if (par)
        {
            int64_t j0, j1;
            my_columns(C, &j0, &j1);
            for (int64_t i = 0; i < N && j0 < j1; i++) {
                const float *x = inp + i * C, *dy = dout + i * C; // (C,)
                float m = mean[i], s = rstd[i];
                if (dweight)
                    for (int64_t j = j0; j < j1; j++) dweight[j] += (x[j] - m) * s * dy[j];
                if (dbias)
                    for (int64_t j = j0; j < j1; j++) dbias[j] += dy[j];
            }
        }
    }
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

/* ================================= rmsnorm raw kernels =========================================== */

void sf_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int64_t N, int64_t C,
                        float eps) {
    // out, inp: (N, C); rstd: (N,) or NULL (not stored); weight: (C,)
#pragma omp parallel for if (N * C > SF_NORM_PAR) schedule(static)
    for (int64_t i = 0; i < N; i++) {
        const float *x = inp + i * C; // (C,)
        float *o = out + i * C;       // (C,)
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (int64_t j = 0; j < C; j++) ss += x[j] * x[j];
        float s = 1.0f / sqrtf(ss / (float)C + eps);
        for (int64_t j = 0; j < C; j++) o[j] = x[j] * s * weight[j];
        if (rstd) rstd[i] = s;
    }
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
            for (int64_t j = 0; j < C; j++) dx[j] += s * (dy[j] * weight[j] - x[j] * b);
        }
    }
    if (dweight) {
#pragma omp parallel if (par)
        {
            int64_t j0, j1;
            my_columns(C, &j0, &j1);
            for (int64_t i = 0; i < N && j0 < j1; i++) {
                const float *x = inp + i * C, *dy = dout + i * C; // (C,)
                float s = rstd[i];
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
