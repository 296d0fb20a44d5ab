/* lora.c — LoRA adapters: creation with PEFT's initialisation, the adapted linear on the tape, merging.
 * See lora.h. */
#include "lora.h"

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

sf_tensor *sf_lora_linear(sf_graph *g, const sf_lora_set *s, sf_tensor *x, sf_tensor *w, sf_tensor *b, sf_wlayout layout) {
    sf_tensor *y = sf_linear(g, x, w, b, layout);
    const sf_lora_adapter *a = sf_lora_find(s, w);
    if (!y || !a || a->merged) return y;
    sf_tensor *h = sf_linear(g, x, a->A, NULL, SF_W_OUT_IN); // (..., r)
    sf_tensor *d = h ? sf_linear(g, h, a->B, NULL, SF_W_OUT_IN) : NULL; // (..., out)
    d = d ? sf_scale(g, d, a->scale) : NULL;
    return d ? sf_add(g, y, d) : NULL;
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
