/* direction.c — random, weight-scaled directions and in-place combinations for landscape probes.
 * See direction.h. */
#include "direction.h"

#include <math.h>
#include <stdlib.h>

#include "rng.h"

static sf_status check_f32(const sf_tensor *t, int64_t n, const char *what) {
    if (!t) return sf_fail(SF_ERR_ARG, "%s: missing tensor", what);
    if (t->dtype != SF_F32) return sf_fail(SF_ERR_ARG, "%s: expected an f32 tensor, got %s", what, sf_dtype_name(t->dtype));
    if (sf_tensor_numel(t) != n)
        return sf_fail(SF_ERR_ARG, "%s: %lld elements where %lld are expected", what, (long long)sf_tensor_numel(t),
                       (long long)n);
    return SF_OK;
}

/* sum of squares of filter f of x (rows x cols, row-major): a row when by_rows, else a column */
static double filter_sq(const float *x, int64_t rows, int64_t cols, int by_rows, int64_t f) {
    double s = 0;
    if (by_rows)
        for (int64_t j = 0; j < cols; j++) s += (double)x[f * cols + j] * x[f * cols + j];
    else
        for (int64_t i = 0; i < rows; i++) s += (double)x[i * cols + f] * x[i * cols + f];
    return s;
}

static void scale_filter(float *x, int64_t rows, int64_t cols, int by_rows, int64_t f, double s) {
    if (by_rows)
        for (int64_t j = 0; j < cols; j++) x[f * cols + j] = (float)(x[f * cols + j] * s);
    else
        for (int64_t i = 0; i < rows; i++) x[i * cols + f] = (float)(x[i * cols + f] * s);
}

sf_status sf_direction_random(sf_tensor *d, const sf_tensor *w, uint64_t seed, uint64_t stream, sf_dir_norm norm,
                              sf_wlayout layout) {
    if (!w) return sf_fail(SF_ERR_ARG, "direction: missing weight");
    const int64_t n = sf_tensor_numel(w);
    sf_status st = check_f32(d, n, "direction");
    if (st) return st;
    if (norm != SF_DIR_NONE && norm != SF_DIR_LAYER && norm != SF_DIR_FILTER)
        return sf_fail(SF_ERR_ARG, "direction: unknown normalisation %d", (int)norm);
    sf_tensor *wf = NULL; /* w in f32 when it is stored otherwise */
    const float *wv = NULL;
    if (norm != SF_DIR_NONE) {
        if (w->dtype == SF_F32) wv = sf_f32(w);
        else {
            wf = sf_tensor_to_f32(w);
            if (!wf) return sf_last_status();
            wv = sf_f32(wf);
        }
    }
    float *dv = sf_f32(d);
    sf_rng r;
    sf_rng_seed(&r, sf_hash64(seed, stream));
    sf_rng_fill_normal(&r, dv, n, 0.0f, 1.0f);
    if (norm == SF_DIR_NONE || n == 0) {
        sf_tensor_release(wf);
        return SF_OK;
    }
    int64_t rows = 1, cols = n, filters = 1;
    int by_rows = 1;
    if (norm == SF_DIR_FILTER && w->ndim >= 2) {
        rows = w->shape[0];
        cols = n / rows;
        by_rows = layout != SF_W_IN_OUT;
        filters = by_rows ? rows : cols;
    }
    for (int64_t f = 0; f < filters; f++) {
        double dn = sqrt(filter_sq(dv, rows, cols, by_rows, f)), wn = sqrt(filter_sq(wv, rows, cols, by_rows, f));
        scale_filter(dv, rows, cols, by_rows, f, dn > 0 ? wn / dn : 0.0);
    }
    sf_tensor_release(wf);
    return SF_OK;
}

sf_status sf_tensor_combine(sf_tensor *p, const sf_tensor *base, float a, const sf_tensor *d1, float b,
                            const sf_tensor *d2) {
    if (!p) return sf_fail(SF_ERR_ARG, "combine: missing output tensor");
    const int64_t n = sf_tensor_numel(p);
    sf_status st = check_f32(p, n, "combine (output)");
    if (!st) st = check_f32(base, n, "combine (base)");
    if (!st) st = check_f32(d1, n, "combine (first direction)");
    if (!st && d2) st = check_f32(d2, n, "combine (second direction)");
    if (st) return st;
    float *pv = sf_f32(p);
    const float *bv = sf_f32(base), *v1 = sf_f32(d1), *v2 = d2 ? sf_f32(d2) : NULL;
    if (v2)
        for (int64_t i = 0; i < n; i++) pv[i] = bv[i] + (a * v1[i] + b * v2[i]);
    else
        for (int64_t i = 0; i < n; i++) pv[i] = bv[i] + a * v1[i];
    return SF_OK;
}
