/* lora.c — LoRA adapters: creation with PEFT's initialisation, the adapted linear on the tape (one fused
 * node: the base product with the low-rank path packed along in the same gemm (sf_sgemm_ext), forward and
 * backward), merging.
 * See lora.h. */
#include "lora.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "rng.h"

static sf_tensor *named_zeros(int64_t d0, int64_t d1, const char *base, const char *suffix) {
    int64_t shape[2] = {d0, d1};
    sf_tensor *t = sf_tensor_zeros_f32(2, shape);
    if (!t) return NULL;
    char name[512];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    sf_tensor_set_name(t, name);
    sf_param_set_trainable(t, 1);
    return t;
}

sf_lora_set *sf_lora_new(sf_tensor *const *weights, const char *const *names, const sf_wlayout *layouts, int n, int r,
                         float alpha, uint64_t seed) {
    if (r < 1) return sf_fail_null(SF_ERR_ARG, "lora: rank r must be >= 1, got %d", r);
    if (!(alpha > 0)) return sf_fail_null(SF_ERR_ARG, "lora: alpha must be > 0");
    sf_lora_set *s = calloc(1, sizeof *s);
    if (!s) return sf_fail_null(SF_ERR_NOMEM, "out of memory (lora)");
    s->a = calloc((size_t)n + 1, sizeof *s->a);
    s->r = r;
    s->alpha = alpha;
    if (!s->a) {
        free(s);
        return sf_fail_null(SF_ERR_NOMEM, "out of memory (lora)");
    }
    sf_rng rng;
    sf_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) {
        sf_tensor *w = weights[i];
        if (w->ndim != 2 || w->dtype != SF_F32) {
            sf_lora_free(s);
            return sf_fail_null(SF_ERR_ARG, "lora: target %s is not a 2-D f32 weight", names[i]);
        }
        int64_t in = layouts[i] == SF_W_OUT_IN ? w->shape[1] : w->shape[0];
        int64_t out = layouts[i] == SF_W_OUT_IN ? w->shape[0] : w->shape[1];
        if (r > in || r > out) {
            sf_lora_free(s);
            return sf_fail_null(SF_ERR_ARG, "lora: rank %d exceeds the size of %s (%lld x %lld)", r, names[i],
                                (long long)out, (long long)in);
        }
        sf_lora_adapter *a = &s->a[s->n];
        a->name = strdup(names[i]);
        a->w = w;
        sf_tensor_retain(w);
        a->layout = layouts[i];
        a->scale = alpha / (float)r;
        a->A = named_zeros(r, in, names[i], ".lora_A");
        a->B = named_zeros(out, r, names[i], ".lora_B");
        s->n++;
        if (!a->name || !a->A || !a->B) {
            sf_lora_free(s);
            return sf_fail_null(SF_ERR_NOMEM, "out of memory (lora)");
        }
        float bound = 1.0f / sqrtf((float)in);
        float *ad = sf_f32(a->A);
        for (int64_t j = 0; j < (int64_t)r * in; j++) ad[j] = (float)(2.0 * sf_rng_uniform(&rng) - 1.0) * bound;
    }
    return s;
}

void sf_lora_free(sf_lora_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        free(s->a[i].name);
        sf_tensor_release(s->a[i].w);
        sf_tensor_release(s->a[i].A);
        sf_tensor_release(s->a[i].B);
    }
    free(s->a);
    free(s);
}

const sf_lora_adapter *sf_lora_find(const sf_lora_set *s, const sf_tensor *w) {
    if (!s) return NULL;
    for (int i = 0; i < s->n; i++)
        if (s->a[i].w == w) return &s->a[i];
    return NULL;
}

/* lora_linear's backward. in = {x, W, A, B, (b)}, saved[0] = h = x A^T (N, r); i[0..4] = N, C, OC, layout,
 * r; f[0] = scale. With g = dout (N, OC) and dh = scale g B (N, r):
 *   dB (OC, r) += scale g^T h        dA (r, C) += dh^T x
 *   dx (N, C)  += g op(W)^T + dh A   dW, db as a plain linear's (when they train)
 * All of it gemms, dx's two terms in one (sf_sgemm_ext): no elementwise pass over (N, OC) or (N, C). */
static sf_status lora_linear_backward(sf_graph *g, sf_node *n) {
    const int64_t N = n->i[0], C = n->i[1], OC = n->i[2], r = n->i[4];
    const sf_wlayout layout = (sf_wlayout)n->i[3];
    const float scale = (float)n->f[0];
    sf_tensor *x = n->in[0], *W = n->in[1], *A = n->in[2], *B = n->in[3], *b = n->n_in > 4 ? n->in[4] : NULL;
    const float *gout = sf_f32(sf_graph_grad(g, n->out)), *h = sf_f32(n->saved[0]);
    int dx_fresh = 0, dW_fresh = 0, dA_fresh = 0, dB_fresh = 0;
    sf_tensor *dx = sf_graph_grad_for_write(g, x, &dx_fresh), *dW = sf_graph_grad_for_write(g, W, &dW_fresh);
    sf_tensor *dA = sf_graph_grad_for_write(g, A, &dA_fresh), *dB = sf_graph_grad_for_write(g, B, &dB_fresh);
    sf_tensor *db = b ? sf_graph_grad(g, b) : NULL;
    int64_t hs[2] = {N, r};
    sf_tensor *dh = (dx || dA) ? sf_graph_scratch(g, 2, hs) : NULL; // (N, r)
    if ((x->requires_grad && !dx) || (W->requires_grad && !dW) || (A->requires_grad && !dA) ||
        (B->requires_grad && !dB) || (b && b->requires_grad && !db) || ((dx || dA) && !dh)) {
        sf_graph_recycle(g, dh);
        return sf_fail(SF_ERR_NOMEM, "lora_linear backward: out of memory for the gradients");
    }
    if (dB) /* dB (OC, r) (+)= scale g^T (OC, N) h (N, r) */
        sf_sgemm(1, 0, OC, r, N, scale, gout, OC, h, r, dB_fresh ? 0.0f : 1.0f, sf_f32(dB), r);
    if (dh) /* dh (N, r) = scale g (N, OC) B (OC, r) */
        sf_sgemm(0, 0, N, r, OC, scale, gout, OC, sf_f32(B), r, 0.0f, sf_f32(dh), r);
    if (dA) /* dA (r, C) (+)= dh^T (r, N) x (N, C) */
        sf_sgemm(1, 0, r, C, N, 1.0f, sf_f32(dh), r, sf_f32(x), C, dA_fresh ? 0.0f : 1.0f, sf_f32(dA), C);
    if (dx && N > 0 && C > 0) /* dx (N, C) (+)= g (N, OC) op(W)^T + dh (N, r) A (r, C): one product, the rank-r
                                 * term packed along with the base's (no second pass over dx) */
        sf_sgemm_ext(0, layout == SF_W_IN_OUT, N, C, OC, 1.0f, gout, OC, sf_f32(W), layout == SF_W_IN_OUT ? OC : C,
                     dx_fresh ? 0.0f : 1.0f, sf_f32(dx), C, NULL, sf_f32(dh), r, 0, sf_f32(A), C, r);
    /* the frozen (or trainable) base: dW, db */
    const int dW_finite = sf_linear_backward_into(NULL, 0, dW ? sf_f32(dW) : NULL, dW_fresh, db ? sf_f32(db) : NULL,
                                                  gout, sf_f32(x), sf_f32(W), N, C, OC, layout);
    if (dW) sf_graph_grad_set_finite(W, dW_finite);
    sf_graph_recycle(g, dh);
    return SF_OK;
}

/* y = x op(W) + b + scale (x A^T) B^T as one tape node: h = x A^T (N, r), a skinny gemm, is kept for
 * backward; scale h rides along with the base product (sf_sgemm_ext: its r columns packed after x's), so
 * y is stored once and the low-rank path costs no pass over it. */
sf_tensor *sf_lora_linear(sf_graph *g, const sf_lora_set *s, sf_tensor *x, sf_tensor *w, sf_tensor *b, sf_wlayout layout) {
    const sf_lora_adapter *a = sf_lora_find(s, w);
    if (!a || a->merged) return sf_linear(g, x, w, b, layout);
    if (layout != a->layout)
        return sf_fail_null(SF_ERR_ARG, "lora_linear: %s was adapted in the %s layout, used as %s", a->name,
                            a->layout == SF_W_OUT_IN ? "out_in" : "in_out", layout == SF_W_OUT_IN ? "out_in" : "in_out");
    int64_t N, C, OC, out_shape[SF_MAX_DIMS]; // out (..., OC); the adapter's A (r, C) and B (OC, r) fit W
    if (sf_linear_shapes("lora_linear", g, x, w, b, layout, &N, &C, &OC, out_shape))
        return sf_fail_null(sf_last_status(), "%s (adapted weight %s)", sf_last_error(), a->name);
    const int64_t r = a->A->shape[0];
    if (N > INT_MAX || C > INT_MAX || OC > INT_MAX)
        return sf_fail_null(SF_ERR_ARG, "lora_linear: sizes N=%lld C=%lld OC=%lld exceed the 32-bit BLAS range",
                            (long long)N, (long long)C, (long long)OC);
    int64_t hs[2] = {N, r};
    sf_tensor *out = sf_graph_tensor(g, x->ndim, out_shape), *h = out ? sf_graph_tensor(g, 2, hs) : NULL;
    sf_tensor *sh = h ? sf_graph_scratch(g, 2, hs) : NULL; // (N, r) scale h
    if (!sh) return NULL;
    if (N > 0 && OC > 0 && C > 0) {
        /* h (N, r) = x (N, C) A^T, A (r, C); out (N, OC) = x op(W) + b + (scale h) B^T, B (OC, r) */
        sf_sgemm(0, 1, N, r, C, 1.0f, sf_f32(x), C, sf_f32(a->A), C, 0.0f, sf_f32(h), r);
        const float *hv = sf_f32(h);
        float *shv = sf_f32(sh);
        for (int64_t i = 0; i < N * r; i++) shv[i] = a->scale * hv[i];
        sf_sgemm_ext(0, layout == SF_W_OUT_IN, N, OC, C, 1.0f, sf_f32(x), C, sf_f32(w), layout == SF_W_OUT_IN ? C : OC,
                     0.0f, sf_f32(out), OC, b ? sf_f32(b) : NULL, shv, r, 1, sf_f32(a->B), r, r);
    } else { /* an empty contraction (C = 0: out = b, h = 0) or nothing to compute */
        sf_linear_forward(sf_f32(out), sf_f32(x), sf_f32(w), b ? sf_f32(b) : NULL, N, C, OC, layout);
        memset(sf_f32(h), 0, (size_t)(N * r) * sizeof(float));
    }
    sf_graph_recycle(g, sh);
    sf_tensor *in[5] = {x, w, a->A, a->B, b};
    sf_node *n = sf_graph_record(g, "lora_linear", lora_linear_backward, out, in, b ? 5 : 4);
    if (n) {
        n->i[0] = N, n->i[1] = C, n->i[2] = OC, n->i[3] = layout, n->i[4] = r;
        n->f[0] = a->scale;
        if (sf_node_save(n, h) != SF_OK) return NULL;
    }
    return out;
}

/* W += sign * scale * (B A) in W's layout. */
static void merge_one(sf_lora_adapter *a, float sign) {
    int64_t r = a->A->shape[0], in = a->A->shape[1], out = a->B->shape[0];
    float alpha = sign * a->scale;
    if (a->layout == SF_W_OUT_IN) /* W (out, in) += B (out, r) A (r, in) */
        sf_sgemm(0, 0, out, in, r, alpha, sf_f32(a->B), r, sf_f32(a->A), in, 1.0f, sf_f32(a->w), in);
    else /* W (in, out) += A^T (in, r) B^T (r, out) */
        sf_sgemm(1, 1, in, out, r, alpha, sf_f32(a->A), in, sf_f32(a->B), r, 1.0f, sf_f32(a->w), out);
}

sf_status sf_lora_merge(sf_lora_set *s) {
    for (int i = 0; i < s->n; i++)
        if (!s->a[i].merged) {
            merge_one(&s->a[i], 1.0f);
            s->a[i].merged = 1;
        }
    return SF_OK;
}

sf_status sf_lora_unmerge(sf_lora_set *s) {
    for (int i = 0; i < s->n; i++)
        if (s->a[i].merged) {
            merge_one(&s->a[i], -1.0f);
            s->a[i].merged = 0;
        }
    return SF_OK;
}

int64_t sf_lora_trainable(const sf_lora_set *s) {
    int64_t n = 0;
    for (int i = 0; i < s->n; i++) n += sf_tensor_numel(s->a[i].A) + sf_tensor_numel(s->a[i].B);
    return n;
}
