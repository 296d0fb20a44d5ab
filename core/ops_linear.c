/* ops_linear.c — linear layers and plain matrix products: raw kernels (sf_sgemm, core/gemm.h) with plain-loop
 * references, and the tape ops sf_linear / sf_matmul. See ops.h ("linear / matmul").
 *
 * Layouts: SF_W_OUT_IN stores the weight (OC, C) (nn.Linear, y = x W^T + b); SF_W_IN_OUT stores it
 * (C, OC) (GPT-2 Conv1D, y = x W + b). Forward is one sgemm with the bias added in its stores;
 * backward is up to two sgemms (dinp, dweight: beta = 1 to accumulate, or beta = 0 on the tape when the
 * gradient buffer is fresh, see sf_graph_grad_for_write) plus a column-sum pass
 * as an sgemv of dout with a ones vector for dbias; a NULL gradient pointer skips its work (frozen
 * weight: no dweight gemm).
 *
 * sf_gelu_linear is linear(gelu(u)) that keeps only u: the activation is formed in a scratch for the
 * gemm and recomputed in backward (one GELU pass) instead of staying resident, (N, C) floats less per
 * MLP (a third of a GPT-2 block's activations).
 *
 * Threads: all parallelism here is the gemms' (sift's own kernel or OpenBLAS, both on OpenMP, so the
 * same threads as the other kernels; see core/gemm.h and the Makefile). The one non-gemm pass (column
 * sums for dbias) is one sweep over (N, OC), ~1-3% of the gemms.
 *
 * What it does not do: no saved copies (the tape node keeps x, w, b as retained inputs), no
 * non-contiguous/strided operands, no batched matmul (sf_matmul is 2-D only), no mixed precision.
 * Raw kernels with a size beyond cblas's 32-bit int range fall back to the reference loops (correct,
 * slow); the tape ops reject such sizes with a message instead.
 */
#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "gemm.h"
#include "ops.h"

static int fits_blas_int(int64_t N, int64_t C, int64_t OC) {
    return N <= INT_MAX && C <= INT_MAX && OC <= INT_MAX;
}

/* ------------------------------------------------------------------ reference loops */

void sf_linear_forward_ref(float *out, const float *inp, const float *weight, const float *bias, int64_t N,
                           int64_t C, int64_t OC, sf_wlayout layout) {
    // out (N, OC), inp (N, C), weight (OC, C) or (C, OC), bias (OC) or NULL
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + n * C; // (C)
        for (int64_t o = 0; o < OC; o++) {
            double acc = bias ? bias[o] : 0.0;
            for (int64_t c = 0; c < C; c++) {
                float w = layout == SF_W_OUT_IN ? weight[o * C + c] : weight[c * OC + o];
                acc += (double)x[c] * w;
            }
            out[n * OC + o] = (float)acc;
        }
    }
}

void sf_linear_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, int64_t N, int64_t C, int64_t OC, sf_wlayout layout) {
    // dinp (N, C), dweight like weight, dbias (OC), dout (N, OC), inp (N, C)
    if (dinp)
        for (int64_t n = 0; n < N; n++)
            for (int64_t c = 0; c < C; c++) {
                double acc = 0;
                for (int64_t o = 0; o < OC; o++) {
                    float w = layout == SF_W_OUT_IN ? weight[o * C + c] : weight[c * OC + o];
                    acc += (double)dout[n * OC + o] * w;
                }
                dinp[n * C + c] += (float)acc;
            }
    if (dweight)
        for (int64_t o = 0; o < OC; o++)
            for (int64_t c = 0; c < C; c++) {
                double acc = 0;
                for (int64_t n = 0; n < N; n++) acc += (double)dout[n * OC + o] * inp[n * C + c];
                if (layout == SF_W_OUT_IN)
                    dweight[o * C + c] += (float)acc;
                else
                    dweight[c * OC + o] += (float)acc;
            }
    if (dbias)
        for (int64_t o = 0; o < OC; o++) {
            double acc = 0;
            for (int64_t n = 0; n < N; n++) acc += dout[n * OC + o];
            dbias[o] += (float)acc;
        }
}

/* ------------------------------------------------------------------ optimised kernels */

/* out (N, OC) rows := bias (OC), or zeros. One serial write pass (about 1-3% of the gemm that follows). */
static void fill_rows(float *out, const float *bias, int64_t N, int64_t OC) {
    if (!bias) {
        memset(out, 0, (size_t)N * (size_t)OC * sizeof(float));
        return;
    }
    for (int64_t n = 0; n < N; n++) memcpy(out + n * OC, bias, (size_t)OC * sizeof(float));
}

/* A ones vector for the column sums: dbias = dout^T . ones, done in chunks of SF_ONES_LEN rows. */
#define SF_ONES_LEN 4096
static const float sf_ones[SF_ONES_LEN] = {[0 ... SF_ONES_LEN - 1] = 1.0f}; // (SF_ONES_LEN)

/* dbias (OC) += column sums of dout (N, OC), as sgemv with a ones vector (threaded by OpenBLAS; about
 * 1% of one gemm of the layer). */
static void colsum_add(float *dbias, const float *dout, int64_t N, int64_t OC) {
    for (int64_t r = 0; r < N; r += SF_ONES_LEN) {
        int64_t m = N - r < SF_ONES_LEN ? N - r : SF_ONES_LEN;
        // dbias (OC) += dout[r:r+m]^T (OC, m) . ones (m)
        cblas_sgemv(CblasRowMajor, CblasTrans, (int)m, (int)OC, 1.0f, dout + r * OC, (int)OC, sf_ones, 1, 1.0f, dbias,
                    1);
    }
}

void sf_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int64_t N,
                       int64_t C, int64_t OC, sf_wlayout layout) {
    // out (N, OC), inp (N, C), weight (OC, C) or (C, OC), bias (OC) or NULL
    if (N <= 0 || OC <= 0) return;
    if (!fits_blas_int(N, C, OC)) {
        sf_linear_forward_ref(out, inp, weight, bias, N, C, OC, layout);
        return;
    }
    if (C <= 0) { /* empty contraction: out = bias (or 0) */
        fill_rows(out, bias, N, OC);
        return;
    }
    const int tb = layout == SF_W_OUT_IN; // out = inp . weight^T, weight (OC, C); or inp . weight, weight (C, OC)
    const int64_t ldw = tb ? C : OC;
    if (bias) // out (N, OC) = inp (N, C) . op(weight) (C, OC) + bias, added in the gemm's stores
        sf_sgemm_bias(0, tb, N, OC, C, 1.0f, inp, C, weight, ldw, out, OC, bias);
    else
        sf_sgemm(0, tb, N, OC, C, 1.0f, inp, C, weight, ldw, 0.0f, out, OC);
}

int sf_linear_backward_into(float *dinp, int dinp_fresh, float *dweight, int dweight_fresh, float *dbias,
                            const float *dout, const float *inp, const float *weight, int64_t N, int64_t C,
                            int64_t OC, sf_wlayout layout) {
    // dinp (N, C), dweight (OC, C) or (C, OC), dbias (OC), dout (N, OC), inp (N, C)
    if (N <= 0 || OC <= 0 || C <= 0 || !fits_blas_int(N, C, OC)) { /* the reference accumulates */
        if (dinp && dinp_fresh) memset(dinp, 0, (size_t)(N * C) * sizeof(float));
        if (dweight && dweight_fresh) memset(dweight, 0, (size_t)(OC * C) * sizeof(float));
        if (N <= 0 || OC <= 0) return 0; /* nothing flows back */
        if (!fits_blas_int(N, C, OC)) {
            sf_linear_backward_ref(dinp, dweight, dbias, dout, inp, weight, N, C, OC, layout);
            return 0;
        }
    }
    int dweight_finite = 0;
    if (C > 0) {
        if (dinp) {
            const float beta = dinp_fresh ? 0.0f : 1.0f;
            if (layout == SF_W_OUT_IN) // dinp (N, C) (+)= dout (N, OC) . weight (OC, C)
                sf_sgemm(0, 0, N, C, OC, 1.0f, dout, OC, weight, C, beta, dinp, C);
            else // dinp (N, C) (+)= dout (N, OC) . weight^T, weight (C, OC)
                sf_sgemm(0, 1, N, C, OC, 1.0f, dout, OC, weight, OC, beta, dinp, C);
        }
        if (dweight) {
            const float beta = dweight_fresh ? 0.0f : 1.0f;
            if (layout == SF_W_OUT_IN) // dweight (OC, C) (+)= dout^T (OC, N) . inp (N, C)
                dweight_finite = sf_sgemm_finite(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, beta, dweight, C);
            else // dweight (C, OC) (+)= inp^T (C, N) . dout (N, OC)
                dweight_finite = sf_sgemm_finite(1, 0, C, OC, N, 1.0f, inp, C, dout, OC, beta, dweight, OC);
        }
    }
    if (dbias) colsum_add(dbias, dout, N, OC);
    return dweight_finite;
}

void sf_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, int64_t N, int64_t C, int64_t OC, sf_wlayout layout) {
    sf_linear_backward_into(dinp, 0, dweight, 0, dbias, dout, inp, weight, N, C, OC, layout);
}

/* ------------------------------------------------------------------ tape ops */

/* The backward of a linear node whose input values are x (N, C) (the recorded input in[0], or values
 * recomputed from it) and whose input gradient, when wanted, goes to dx (N, C): overwritten when dx_fresh,
 * accumulated into otherwise. in[1] = weight, in[2] = bias (linear only). i[0] = N, i[1] = C, i[2] = OC,
 * i[3] = layout. */
static sf_status linear_backward_with(sf_graph *g, sf_node *n, const float *x, float *dx, int dx_fresh) {
    sf_tensor *gout = sf_graph_grad(g, n->out);
    if (!gout) return sf_fail(SF_ERR_NOMEM, "%s backward: out of memory for the output gradient", n->op);
    float *dw = NULL, *db = NULL; // dweight (like weight), dbias (OC)
    int dw_fresh = 0;
    sf_sparse_grad *sp = sf_graph_sparse_grad(g, n->in[1]);
    if (sp) { /* SIFT target with a fixed mask: only its k entries, no dense dW */
        int64_t N = n->i[0], C = n->i[1], OC = n->i[2];
        int64_t s_c[1] = {sf_linear_weight_grad_sampled_scratch(sp->k, N, C, OC)};
        sf_tensor *scr = sf_graph_scratch(g, 1, s_c);
        if (!scr) return sf_fail(SF_ERR_NOMEM, "%s backward: out of memory for the sampled gradient", n->op);
        sf_linear_weight_grad_sampled(sp->values, sp->idx, sp->k, sf_f32(gout), x, sf_f32(scr), s_c[0], N, C, OC,
                                      (sf_wlayout)n->i[3]);
        sf_graph_recycle(g, scr);
    } else if (n->in[1]->requires_grad) {
        sf_tensor *gw = sf_graph_grad_for_write(g, n->in[1], &dw_fresh);
        if (!gw) return sf_fail(SF_ERR_NOMEM, "%s backward: out of memory for the weight's gradient", n->op);
        dw = sf_f32(gw);
    }
    if (n->n_in > 2 && n->in[2]->requires_grad) {
        sf_tensor *gb = sf_graph_grad(g, n->in[2]);
        if (!gb) return sf_fail(SF_ERR_NOMEM, "%s backward: out of memory for the bias's gradient", n->op);
        db = sf_f32(gb);
    }
    const int dw_finite = sf_linear_backward_into(dx, dx_fresh, dw, dw_fresh, db, sf_f32(gout), x, sf_f32(n->in[1]),
                                                  n->i[0], n->i[1], n->i[2], (sf_wlayout)n->i[3]);
    if (dw) sf_graph_grad_set_finite(n->in[1], dw_finite); /* the optimizer's non-finite sweep may skip it */
    return SF_OK;
}

/* Shared by linear and matmul: in[0] = x (N, C) viewed as rows. */
static sf_status linear_backward_node(sf_graph *g, sf_node *n) {
    float *dx = NULL;
    int fresh = 0;
    if (n->in[0]->requires_grad) {
        sf_tensor *gx = sf_graph_grad_for_write(g, n->in[0], &fresh);
        if (!gx) return sf_fail(SF_ERR_NOMEM, "%s backward: out of memory for input 0's gradient", n->op);
        dx = sf_f32(gx);
    }
    return linear_backward_with(g, n, sf_f32(n->in[0]), dx, fresh);
}

/* gelu_linear: in[0] = u, the pre-activation (N, C); i[4] = GELU kind. The activation a = gelu(u) is
 * recomputed into a scratch instead of being kept from the forward, in the same pass as gelu'(u), which
 * waits in du itself when du is fresh (else in a second scratch); da, written whole by the dX gemm, then
 * turns it into du = da * gelu'(u) (or adds that). */
static sf_status gelu_linear_backward(sf_graph *g, sf_node *n) {
    const int64_t N = n->i[0], C = n->i[1], NC = N * C;
    const sf_gelu_kind kind = (sf_gelu_kind)n->i[4];
    int64_t s[1] = {NC};
    int du_fresh = 0;
    sf_tensor *du = sf_graph_grad_for_write(g, n->in[0], &du_fresh);             // (N, C) d loss / d u
    sf_tensor *a = sf_graph_scratch(g, 1, s);                                      // (N, C) gelu(u)
    sf_tensor *da = du ? sf_graph_scratch(g, 1, s) : NULL;                          // (N, C) d loss / d a
    sf_tensor *gp = du && !du_fresh ? sf_graph_scratch(g, 1, s) : NULL;            // (N, C) gelu'(u)
    if ((n->in[0]->requires_grad && !du) || !a || (du && !da) || (du && !du_fresh && !gp)) {
        sf_graph_recycle(g, a), sf_graph_recycle(g, da), sf_graph_recycle(g, gp);
        return sf_fail(SF_ERR_NOMEM, "%s backward: out of memory for the recomputed activation", n->op);
    }
    float *grad_u = du ? sf_f32(du_fresh ? du : gp) : NULL; // gelu'(u), until da is known
    if (grad_u)
        sf_gelu_forward_grad(sf_f32(a), grad_u, sf_f32(n->in[0]), NC, kind);
    else
        sf_gelu_forward(sf_f32(a), sf_f32(n->in[0]), NC, kind);
    sf_status st = linear_backward_with(g, n, sf_f32(a), da ? sf_f32(da) : NULL, 1); /* da: written whole */
    if (st == SF_OK && du) {
        float *d = sf_f32(du);
        const float *dav = sf_f32(da), *gpv = grad_u;
        if (du_fresh) {
#pragma omp parallel for simd if (NC > ((int64_t)1 << 15))
            for (int64_t i = 0; i < NC; i++) d[i] = dav[i] * gpv[i];
        } else {
#pragma omp parallel for simd if (NC > ((int64_t)1 << 15))
            for (int64_t i = 0; i < NC; i++) d[i] += dav[i] * gpv[i];
        }
    }
    sf_graph_recycle(g, a);
    sf_graph_recycle(g, da);
    sf_graph_recycle(g, gp);
    return st;
}

/* y = x W (+ b); the node records x_rec as its input (x itself, or the tensor x was computed from) and
 * `attr` in i[4] (gelu_linear: the GELU kind). */
static sf_tensor *linear_impl(sf_graph *g, const char *op, sf_backward_fn backward, sf_tensor *x, sf_tensor *x_rec,
                              int64_t attr, sf_tensor *w, sf_tensor *b, sf_wlayout layout, int64_t N, int64_t C,
                              int64_t OC, int out_ndim, const int64_t *out_shape) {
    if (!fits_blas_int(N, C, OC))
        return sf_fail_null(SF_ERR_ARG, "%s: sizes N=%lld C=%lld OC=%lld exceed the 32-bit BLAS range", op,
                            (long long)N, (long long)C, (long long)OC);
    sf_tensor *out = sf_graph_tensor(g, out_ndim, out_shape); // (..., OC)
    if (!out) return NULL;
    sf_linear_forward(sf_f32(out), sf_f32(x), sf_f32(w), b ? sf_f32(b) : NULL, N, C, OC, layout);
    sf_tensor *in[3] = {x_rec, w, b};
    sf_node *n = sf_graph_record(g, op, backward, out, in, b ? 3 : 2);
    if (n) {
        n->i[0] = N;
        n->i[1] = C;
        n->i[2] = OC;
        n->i[3] = layout;
        n->i[4] = attr;
    }
    return out;
}

sf_status sf_linear_shapes(const char *op, sf_graph *g, sf_tensor *x, sf_tensor *w, sf_tensor *b, sf_wlayout layout,
                           int64_t *N_out, int64_t *C_out, int64_t *OC_out, int64_t *out_shape) {
    char sx[64], sw[64], sb[64];
    if (!g) return sf_fail(SF_ERR_ARG, "%s: graph is missing", op);
    if (sf_check_f32(x, op, "x") || sf_check_f32(w, op, "weight")) return sf_last_status();
    if (b && sf_check_f32(b, op, "bias")) return sf_last_status();
    if (layout != SF_W_OUT_IN && layout != SF_W_IN_OUT)
        return sf_fail(SF_ERR_ARG, "%s: unknown weight layout %d (expected 0 = out_in or 1 = in_out)", op, (int)layout);
    if (x->ndim < 1) return sf_fail(SF_ERR_ARG, "%s: x must have at least 1 dim, got a scalar", op);
    if (w->ndim != 2)
        return sf_fail(SF_ERR_ARG, "%s: weight must be 2-D, got shape %s", op, sf_shape_str(w, sw, sizeof sw));
    int64_t C = x->shape[x->ndim - 1];
    int64_t N = 1; /* rows: product of the leading dims (not numel / C, which fails for C == 0) */
    for (int d = 0; d < x->ndim - 1; d++) N *= x->shape[d];
    int64_t OC = layout == SF_W_OUT_IN ? w->shape[0] : w->shape[1];
    int64_t wC = layout == SF_W_OUT_IN ? w->shape[1] : w->shape[0];
    if (wC != C)
        return sf_fail(SF_ERR_ARG, "%s: x %s has %lld input features but weight %s (%s layout) expects %lld", op,
                       sf_shape_str(x, sx, sizeof sx), (long long)C, sf_shape_str(w, sw, sizeof sw),
                       layout == SF_W_OUT_IN ? "out_in (OC, C)" : "in_out (C, OC)", (long long)wC);
    if (b && (b->ndim != 1 || b->shape[0] != OC))
        return sf_fail(SF_ERR_ARG, "%s: bias must have shape (%lld), got %s", op, (long long)OC,
                       sf_shape_str(b, sb, sizeof sb));
    for (int d = 0; d < x->ndim; d++) out_shape[d] = x->shape[d];
    out_shape[x->ndim - 1] = OC;
    *N_out = N;
    *C_out = C;
    *OC_out = OC;
    return SF_OK;
}

sf_tensor *sf_linear(sf_graph *g, sf_tensor *x, sf_tensor *w, sf_tensor *b, sf_wlayout layout) {
    int64_t N, C, OC, out_shape[SF_MAX_DIMS]; // out (..., OC)
    if (sf_linear_shapes("linear", g, x, w, b, layout, &N, &C, &OC, out_shape)) return NULL;
    return linear_impl(g, "linear", linear_backward_node, x, x, 0, w, b, layout, N, C, OC, x->ndim, out_shape);
}

sf_tensor *sf_gelu_linear(sf_graph *g, sf_tensor *u, sf_gelu_kind kind, sf_tensor *w, sf_tensor *b, sf_wlayout layout) {
    int64_t N, C, OC, out_shape[SF_MAX_DIMS]; // out (..., OC)
    if (sf_linear_shapes("gelu_linear", g, u, w, b, layout, &N, &C, &OC, out_shape)) return NULL;
    if (kind != SF_GELU_TANH && kind != SF_GELU_ERF)
        return sf_fail_null(SF_ERR_ARG, "gelu_linear: unknown GELU kind %d", (int)kind);
    int64_t s[1] = {N * C};
    sf_tensor *a = sf_graph_scratch(g, 1, s); // (N, C) gelu(u), dropped after the gemm
    if (!a) return NULL;
    sf_gelu_forward(sf_f32(a), sf_f32(u), N * C, kind);
    sf_tensor *out = linear_impl(g, "gelu_linear", gelu_linear_backward, a, u, kind, w, b, layout, N, C, OC, u->ndim,
                                 out_shape);
    sf_graph_recycle(g, a);
    return out;
}

sf_tensor *sf_matmul(sf_graph *g, sf_tensor *a, sf_tensor *b) {
    char sa[64], sb[64];
    if (!g) return sf_fail_null(SF_ERR_ARG, "matmul: graph is missing");
    if (sf_check_f32(a, "matmul", "a") || sf_check_f32(b, "matmul", "b")) return NULL;
    if (a->ndim != 2 || b->ndim != 2)
        return sf_fail_null(SF_ERR_ARG, "matmul: a and b must be 2-D, got %s and %s", sf_shape_str(a, sa, sizeof sa),
                            sf_shape_str(b, sb, sizeof sb));
    if (a->shape[1] != b->shape[0])
        return sf_fail_null(SF_ERR_ARG, "matmul: inner dims differ: a %s . b %s", sf_shape_str(a, sa, sizeof sa),
                            sf_shape_str(b, sb, sizeof sb));
    int64_t out_shape[2] = {a->shape[0], b->shape[1]}; // (M, N)
    return linear_impl(g, "matmul", linear_backward_node, a, a, 0, b, NULL, SF_W_IN_OUT, a->shape[0], a->shape[1],
                       b->shape[1], 2, out_shape);
}
