/* ops_shape.c — shape ops on the tape: reshape (a copy-free view whose gradient flows back to the
 * source) and column slicing of (rows, C) matrices (a copy; used to split a fused q|k|v projection).
 * No math beyond copying and adding gradients. */
#include <string.h>

#include "ops.h"

static sf_status reshape_backward(sf_graph *g, sf_node *n) {
    sf_tensor *dy = sf_graph_grad(g, n->out), *dx = sf_graph_grad(g, n->in[0]);
    if (!dx) return SF_OK;
    float *d = sf_f32(dx);
    const float *s = sf_f32(dy);
    int64_t cnt = sf_tensor_numel(dy);
#pragma omp parallel for if (cnt > (1 << 16))
    for (int64_t i = 0; i < cnt; i++) d[i] += s[i];
    return SF_OK;
}

sf_tensor *sf_reshape(sf_graph *g, sf_tensor *x, int ndim, const int64_t *shape) {
    if (sf_check_f32(x, "reshape", "x")) return NULL;
    sf_tensor *y = sf_graph_adopt(g, sf_tensor_view(x, ndim, shape));
    if (!y) return NULL;
    sf_tensor *in[1] = {x};
    sf_graph_record(g, "reshape", reshape_backward, y, in, 1);
    return y;
}

static sf_status slice_cols_backward(sf_graph *g, sf_node *n) {
    sf_tensor *dy = sf_graph_grad(g, n->out), *dx = sf_graph_grad(g, n->in[0]);
    if (!dx) return SF_OK;
    int64_t rows = n->i[0], C = n->i[1], start = n->i[2], len = n->i[3];
    float *d = sf_f32(dx);
    const float *s = sf_f32(dy);
#pragma omp parallel for if (rows * len > (1 << 16))
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < len; c++) d[r * C + start + c] += s[r * len + c];
    return SF_OK;
}

sf_tensor *sf_slice_cols(sf_graph *g, sf_tensor *x, int64_t start, int64_t len) {
    if (sf_check_f32(x, "slice_cols", "x")) return NULL;
    int64_t C = sf_tensor_cols(x), rows = sf_tensor_rows(x);
    if (x->ndim < 1 || start < 0 || len < 0 || start + len > C)
        return sf_fail_null(SF_ERR_ARG, "slice_cols: columns [%lld, %lld) outside 0..%lld", (long long)start,
                            (long long)(start + len), (long long)C);
    int64_t shape[SF_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
    shape[x->ndim - 1] = len;
    sf_tensor *y = sf_graph_tensor(g, x->ndim, shape);
    if (!y) return NULL;
    const float *s = sf_f32(x);
    float *d = sf_f32(y);
    for (int64_t r = 0; r < rows; r++) memcpy(d + r * len, s + r * C + start, (size_t)len * sizeof(float));
    sf_tensor *in[1] = {x};
    sf_node *n = sf_graph_record(g, "slice_cols", slice_cols_backward, y, in, 1);
    if (n) {
        n->i[0] = rows;
        n->i[1] = C;
        n->i[2] = start;
        n->i[3] = len;
    }
    return y;
}
