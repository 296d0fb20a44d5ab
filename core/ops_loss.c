/* ops_loss.c — mean softmax cross-entropy over rows of logits (sf_cross_entropy), and the mean squared
 * error of a regression head (sf_mse_loss: mean of (pred - target)^2 over rows, summed in double;
 * backward adds dloss * 2 (pred - target) / N to dpred).
 *
 * What it does: loss = mean over rows whose target != ignore_index of logsumexp(logits[row]) -
 * logits[row][target], numerically stable (max-subtracted, row sums accumulated in double). Forward
 * saves only the per-row logsumexp (N floats) and the targets; backward recomputes the softmax row by
 * row and accumulates dloss / count * (softmax - onehot) into dlogits (ignored rows get nothing).
 * Targets outside [0, V) (other than ignore_index) are an error naming the row and the value.
 *
 * What it does not: no label smoothing, no per-class weights, no reduction other than the mean (use
 * count-weighted sums yourself), no N x V probability buffer (softmax is recomputed in backward), no
 * gradient for the targets.
 */
#include <math.h>
#include <string.h>

#include "ops.h"
#include "simd_math.h"

/* ------------------------------------------------------------------------------------------------ */
/* Raw kernels (not in ops.h yet; declared here so tests can `extern` them).                         */
/*   logits (N, V), targets (N) int64 (ignore_index = skip row), lse (N), loss (1), dlogits (N, V)  */
/* ------------------------------------------------------------------------------------------------ */
/* loss[0] = mean CE over the counted rows (0 if none), lse[row] = logsumexp(logits[row]) for counted rows
 * (0 for ignored ones), *count = number of counted rows. Targets must already be validated. */
void sf_cross_entropy_forward(float *loss, float *lse, int64_t *count, const float *logits, const int64_t *targets,
                              int64_t ignore_index, int64_t N, int64_t V);
/* dlogits[row] += dloss / count * (softmax(logits[row]) - onehot(target)) for counted rows. */
void sf_cross_entropy_backward(float *dlogits, float dloss, const float *logits, const float *lse,
                               const int64_t *targets, int64_t ignore_index, int64_t count, int64_t N, int64_t V);
void sf_cross_entropy_forward_ref(float *loss, float *lse, int64_t *count, const float *logits,
                                  const int64_t *targets, int64_t ignore_index, int64_t N, int64_t V);
void sf_cross_entropy_backward_ref(float *dlogits, float dloss, const float *logits, const float *lse,
                                   const int64_t *targets, int64_t ignore_index, int64_t count, int64_t N, int64_t V);

#define CE_CHUNK 512 /* columns per stack chunk when exponentiating a row */

#define exp_shifted sf_exp_shifted /* core/simd_math.h */
#define max_f32 sf_max_f32

/* logsumexp of one row (V): max-subtracted, exponentials summed in double (8 lanes). */
static float row_lse(const float *x, int64_t V) {
    const float mx = max_f32(x, V);
    double acc[8] = {0};
    double tail = 0.0;
    float e[CE_CHUNK];
    for (int64_t j0 = 0; j0 < V; j0 += CE_CHUNK) {
        const int64_t n = V - j0 < CE_CHUNK ? V - j0 : CE_CHUNK, n8 = n - n % 8;
        exp_shifted(e, x + j0, mx, n);
        for (int64_t j = 0; j < n8; j += 8) {
#pragma omp simd
            for (int l = 0; l < 8; l++) acc[l] += (double)e[j + l];
        }
        for (int64_t j = n8; j < n; j++) tail += e[j];
    }
    double sum = tail;
    for (int l = 0; l < 8; l++) sum += acc[l];
    return (float)((double)mx + log(sum));
}

void sf_cross_entropy_forward(float *loss, float *lse, int64_t *count, const float *logits, const int64_t *targets,
                              int64_t ignore_index, int64_t N, int64_t V) {
    double total = 0.0;
    int64_t cnt = 0;
#pragma omp parallel for schedule(static) reduction(+ : total, cnt)
    for (int64_t i = 0; i < N; i++) {
        if (targets[i] == ignore_index) {
            lse[i] = 0.0f;
            continue;
        }
        const float *x = logits + i * V; // (V)
        lse[i] = row_lse(x, V);
        total += (double)lse[i] - (double)x[targets[i]];
        cnt++;
    }
    *count = cnt;
    loss[0] = cnt ? (float)(total / (double)cnt) : 0.0f;
}

void sf_cross_entropy_backward(float *dlogits, float dloss, const float *logits, const float *lse,
                               const int64_t *targets, int64_t ignore_index, int64_t count, int64_t N, int64_t V) {
    if (count <= 0) return;
    const float s = (float)((double)dloss / (double)count);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) {
        if (targets[i] == ignore_index) continue;
        const float *x = logits + i * V; // (V)
        float *d = dlogits + i * V;      // (V)
        float e[CE_CHUNK];
        for (int64_t j0 = 0; j0 < V; j0 += CE_CHUNK) {
            const int64_t n = V - j0 < CE_CHUNK ? V - j0 : CE_CHUNK;
            exp_shifted(e, x + j0, lse[i], n); /* softmax = exp(x - lse) */
#pragma omp simd
            for (int64_t j = 0; j < n; j++) d[j0 + j] += s * e[j];
        }
        d[targets[i]] -= s;
    }
}

/* ---- reference: plain loops in double, one row at a time ------------------------------------------ */

void sf_cross_entropy_forward_ref(float *loss, float *lse, int64_t *count, const float *logits,
                                  const int64_t *targets, int64_t ignore_index, int64_t N, int64_t V) {
    double total = 0.0;
    int64_t cnt = 0;
    for (int64_t i = 0; i < N; i++) {
        lse[i] = 0.0f;
        if (targets[i] == ignore_index) continue;
        const float *x = logits + i * V;
        double mx = -INFINITY, sum = 0.0;
        for (int64_t j = 0; j < V; j++) mx = x[j] > mx ? x[j] : mx;
        for (int64_t j = 0; j < V; j++) sum += exp((double)x[j] - mx);
        double l = mx + log(sum);
        lse[i] = (float)l;
        total += l - x[targets[i]];
        cnt++;
    }
    *count = cnt;
    loss[0] = cnt ? (float)(total / (double)cnt) : 0.0f;
}

void sf_cross_entropy_backward_ref(float *dlogits, float dloss, const float *logits, const float *lse,
                                   const int64_t *targets, int64_t ignore_index, int64_t count, int64_t N,
                                   int64_t V) {
    if (count <= 0) return;
    const double s = (double)dloss / (double)count;
    for (int64_t i = 0; i < N; i++) {
        if (targets[i] == ignore_index) continue;
        for (int64_t j = 0; j < V; j++) {
            double p = exp((double)logits[i * V + j] - (double)lse[i]);
            dlogits[i * V + j] += (float)(s * (p - (j == targets[i] ? 1.0 : 0.0)));
        }
    }
}

/* ---- tape op ------------------------------------------------------------------------------------ */

/* n->in = {logits}; n->saved = {lse (N), targets (N) i64}; n->i = {ignore_index, count}. */
static sf_status cross_entropy_backward(sf_graph *g, sf_node *n) {
    sf_tensor *logits = n->in[0];
    sf_tensor *dl = sf_graph_grad(g, logits);
    if (!dl) return SF_OK;
    const float dloss = sf_f32(sf_graph_grad(g, n->out))[0];
    sf_cross_entropy_backward(sf_f32(dl), dloss, sf_f32(logits), sf_f32(n->saved[0]),
                              (const int64_t *)sf_tensor_data(n->saved[1]), n->i[0], n->i[1],
                              sf_tensor_rows(logits), sf_tensor_cols(logits));
    return SF_OK;
}

sf_tensor *sf_cross_entropy(sf_graph *g, sf_tensor *logits, sf_tensor *targets, int64_t ignore_index) {
    if (sf_check_f32(logits, "cross_entropy", "logits") || sf_check_index(targets, "cross_entropy", "targets"))
        return NULL;
    char sl[64], st[64];
    if (logits->ndim < 1)
        return sf_fail_null(SF_ERR_ARG, "cross_entropy: logits must be (N, V), got a scalar");
    const int64_t N = sf_tensor_rows(logits), V = sf_tensor_cols(logits);
    if (sf_tensor_numel(targets) != N)
        return sf_fail_null(SF_ERR_ARG, "cross_entropy: targets %s must have one entry per row of logits %s (%lld)",
                            sf_shape_str(targets, st, sizeof st), sf_shape_str(logits, sl, sizeof sl), (long long)N);
    for (int64_t i = 0; i < N; i++) {
        const int64_t t = sf_index_at(targets, i);
        if (t != ignore_index && (t < 0 || t >= V))
            return sf_fail_null(SF_ERR_ARG, "cross_entropy: target %lld at row %lld is outside [0, %lld) (ignore_index %lld)",
                                (long long)t, (long long)i, (long long)V, (long long)ignore_index);
    }
    sf_tensor *tg = sf_graph_tensor_dtype(g, SF_I64, 1, &N); // (N) i64 copy, saved for backward
    if (!tg) return NULL;
    for (int64_t i = 0; i < N; i++) ((int64_t *)sf_tensor_data(tg))[i] = sf_index_at(targets, i);
    const int64_t one = 1;
    sf_tensor *lse = sf_graph_tensor(g, 1, &N);                 // (N)
    sf_tensor *out = lse ? sf_graph_tensor(g, 1, &one) : NULL; // (1)
    if (!out) return NULL;
    int64_t count = 0;
    sf_cross_entropy_forward(sf_f32(out), sf_f32(lse), &count, sf_f32(logits), (const int64_t *)sf_tensor_data(tg),
                             ignore_index, N, V);
    sf_node *n = sf_graph_record(g, "cross_entropy", cross_entropy_backward, out, &logits, 1);
    if (n) {
        n->i[0] = ignore_index;
        n->i[1] = count;
        if (sf_node_save(n, lse) || sf_node_save(n, tg)) return NULL;
    }
    return out;
}

/* ---- mean squared error ------------------------------------------------------------------------- */

/* n->in = {pred}; n->saved = {target (N) f32}. */
static sf_status mse_backward(sf_graph *g, sf_node *n) {
    sf_tensor *pred = n->in[0];
    sf_tensor *dp = sf_graph_grad(g, pred);
    if (!dp) return SF_OK;
    const float dloss = sf_f32(sf_graph_grad(g, n->out))[0];
    const int64_t N = sf_tensor_numel(pred);
    const float *p = sf_f32(pred), *t = sf_f32(n->saved[0]);
    float *d = sf_f32(dp);
    const double s = 2.0 * dloss / (double)N;
    for (int64_t i = 0; i < N; i++) d[i] += (float)(s * ((double)p[i] - t[i]));
    return SF_OK;
}

sf_tensor *sf_mse_loss(sf_graph *g, sf_tensor *pred, sf_tensor *target) {
    if (sf_check_f32(pred, "mse_loss", "pred") || sf_check_f32(target, "mse_loss", "target")) return NULL;
    char sp[64], st[64];
    const int64_t N = pred->ndim >= 1 ? pred->shape[0] : 0;
    if (pred->ndim < 1 || pred->ndim > 2 || (pred->ndim == 2 && pred->shape[1] != 1) || N < 1)
        return sf_fail_null(SF_ERR_ARG, "mse_loss: pred must be (N) or (N, 1) with N >= 1, got %s",
                            sf_shape_str(pred, sp, sizeof sp));
    if (sf_tensor_numel(target) != N)
        return sf_fail_null(SF_ERR_ARG, "mse_loss: target %s must have one value per row of pred %s (%lld)",
                            sf_shape_str(target, st, sizeof st), sf_shape_str(pred, sp, sizeof sp), (long long)N);
    const int64_t one = 1;
    sf_tensor *out = sf_graph_tensor(g, 1, &one); // (1)
    if (!out) return NULL;
    const float *p = sf_f32(pred), *t = sf_f32(target);
    double sum = 0;
    for (int64_t i = 0; i < N; i++) sum += ((double)p[i] - t[i]) * ((double)p[i] - t[i]);
    sf_f32(out)[0] = (float)(sum / (double)N);
    sf_node *n = sf_graph_record(g, "mse_loss", mse_backward, out, &pred, 1);
    if (n && sf_node_save(n, target)) return NULL; /* retained for backward, as the inputs are */
    return out;
}
