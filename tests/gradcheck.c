/* gradcheck.c — central-difference gradient checking for tape ops. See gradcheck.h. */
#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long long gc_next(unsigned long long *s) {
    unsigned long long z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static double gc_unif(unsigned long long *s) { return (double)(gc_next(s) >> 11) / 9007199254740992.0; }

void gc_fill_uniform(sf_tensor *t, unsigned long long seed, float lo, float hi) {
    float *d = sf_f32(t);
    for (int64_t i = 0; i < sf_tensor_numel(t); i++) d[i] = lo + (hi - lo) * (float)gc_unif(&seed);
}

void gc_fill_randn(sf_tensor *t, unsigned long long seed, float scale) {
    float *d = sf_f32(t);
    for (int64_t i = 0; i < sf_tensor_numel(t); i++) {
        double u1 = gc_unif(&seed), u2 = gc_unif(&seed);
        if (u1 < 1e-300) u1 = 1e-300;
        d[i] = scale * (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

static double eval_loss(gc_build_fn build, void *ctx, sf_tensor **inputs, const sf_tensor *r) {
    sf_graph *g = sf_graph_new();
    sf_graph_set_recording(g, 0);
    sf_tensor *y = build(g, inputs, ctx);
    double L = NAN;
    if (y) {
        L = 0;
        const float *yd = sf_f32(y), *rd = sf_f32(r);
        for (int64_t i = 0; i < sf_tensor_numel(y); i++) L += (double)yd[i] * rd[i];
    }
    sf_graph_free(g);
    return L;
}

double gradcheck(const char *label, gc_build_fn build, void *ctx, sf_tensor **inputs, int n_inputs,
                 double eps, int max_points) {
    for (int i = 0; i < n_inputs; i++) sf_param_drop_grad(inputs[i]);
    sf_graph *g = sf_graph_new();
    sf_tensor *y = build(g, inputs, ctx);
    if (!y) {
        fprintf(stderr, "    gradcheck %s: build failed: %s\n", label, sf_last_error());
        sf_graph_free(g);
        return INFINITY;
    }
    sf_tensor *r = sf_tensor_new_f32(y->ndim, y->shape);
    gc_fill_uniform(r, 1234, -1.0f, 1.0f);
    if (sf_graph_backward(g, y, r) != SF_OK) {
        fprintf(stderr, "    gradcheck %s: backward failed: %s\n", label, sf_last_error());
        sf_tensor_release(r);
        sf_graph_free(g);
        return INFINITY;
    }
    sf_graph_free(g);

    double worst = 0;
    for (int i = 0; i < n_inputs; i++) {
        sf_tensor *x = inputs[i];
        if (!x->requires_grad) continue;
        if (!x->grad) {
            fprintf(stderr, "    gradcheck %s: input %d got no gradient\n", label, i);
            worst = INFINITY;
            continue;
        }
        sf_tensor *ga = sf_tensor_clone(x->grad);
        int64_t n = sf_tensor_numel(x);
        double amax = 0;
        for (int64_t j = 0; j < n; j++) amax = fmax(amax, fabs(sf_f32(ga)[j]));
        double err = 0;
        int64_t stride = n > max_points ? n / max_points : 1;
        int64_t worst_j = -1;
        double worst_a = 0, worst_n = 0;
        for (int64_t j = 0; j < n; j += stride) {
            float *xd = sf_f32(x);
            float keep = xd[j];
            float xp = keep + (float)eps, xm = keep - (float)eps;
            xd[j] = xp;
            double lp = eval_loss(build, ctx, inputs, r);
            xd[j] = xm;
            double lm = eval_loss(build, ctx, inputs, r);
            xd[j] = keep;
            double num = (lp - lm) / ((double)xp - (double)xm);
            double e = fabs(num - sf_f32(ga)[j]) / fmax(amax, 1e-3);
            if (!(e <= err)) {
                err = e;
                worst_j = j;
                worst_a = sf_f32(ga)[j];
                worst_n = num;
            }
        }
        if (!(err <= 1e-2) || getenv("SIFT_GRADCHECK_VERBOSE"))
            fprintf(stderr, "    gradcheck %s input %d: rel err %.3g (at %lld: analytic %.6g numeric %.6g, max|g| %.3g)\n",
                    label, i, err, (long long)worst_j, worst_a, worst_n, amax);
        if (!(err <= worst)) worst = err;
        sf_tensor_release(ga);
    }
    sf_tensor_release(r);
    return worst;
}

double gc_max_rel_diff(const float *a, const float *b, int64_t n) {
    double d = 0, m = 1e-3;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs(b[i]));
    }
    return d / m;
}
