/* sift.c — sparse sets: budgets, leaf hooks, selection policies, sparse AdamW on the increments,
 * write-back and restore, memory accounting, and the published code's quirks on request. See sift.h. */
#include "sift.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "rng.h"

typedef struct {
    sf_sparse_set *s;
    int i;
} hook_ctx;

/* per-set side arrays kept next to the public struct */
typedef struct {
    sf_sparse_set pub;
    hook_ctx *ctx;         /* (n) */
    sf_sparse_grad *desc;  /* (n) sparse-leaf descriptors installed after selection */
    float **calib_sq;      /* (n) fisher: sum of g^2 */
    int64_t *reach;        /* (n) order in which targets completed in the last backward */
    int *frozen;           /* (n) reference quirk: never trained */
    float **pending;       /* (n) deferred selection: this rank's dense gradient of the current calibration
                            * batch over its backward passes, handed to the policy by sf_sparse_note_batch */
    int deferred;          /* this selection defers (s->defer_selection or several processes) */
} set_impl;

static set_impl *impl(sf_sparse_set *s) { return (set_impl *)s; }

int64_t sf_sparse_budget(double rate, int64_t numel) {
    if (numel <= 0) return 0;
    double f = floor(rate * (double)numel);
    int64_t k = (f >= (double)numel) ? numel : (int64_t)f + 1;
    return k < numel ? k : numel;
}

/* ---- top-k by quickselect on a copy ---- */
static float kth_largest(float *a, int64_t n, int64_t k) { /* k in 1..n; a is scratch */
    int64_t lo = 0, hi = n - 1, want = k - 1;            /* index in descending order */
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    while (lo < hi) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        float pivot = a[lo + (int64_t)((seed >> 33) % (uint64_t)(hi - lo + 1))];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot) i++;
            while (a[j] < pivot) j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else return a[want];
    }
    return a[want];
}

static float clean(float x) { return isnan(x) ? -INFINITY : x; }

sf_status sf_topk_indices(const float *score, int64_t n, int64_t k, int64_t *out) {
    if (k < 0 || k > n) return sf_fail(SF_ERR_ARG, "top-k: k = %lld outside 0..%lld", (long long)k, (long long)n);
    if (k == 0) return SF_OK;
    if (k == n) {
        for (int64_t i = 0; i < n; i++) out[i] = i;
        return SF_OK;
    }
    float *tmp = malloc((size_t)n * sizeof *tmp);
    if (!tmp) return sf_fail(SF_ERR_NOMEM, "top-k: out of memory for %lld scores", (long long)n);
    for (int64_t i = 0; i < n; i++) tmp[i] = clean(score[i]);
    float thr = kth_largest(tmp, n, k);
    free(tmp);
    int64_t above = 0;
    for (int64_t i = 0; i < n; i++) above += clean(score[i]) > thr;
    int64_t ties_wanted = k - above, m = 0;
    for (int64_t i = 0; i < n && m < k; i++) {
        float v = clean(score[i]);
        if (v > thr || (v == thr && ties_wanted > 0)) {
            if (v == thr) ties_wanted--;
            out[m++] = i;
        }
    }
    return m == k ? SF_OK : sf_fail(SF_ERR_STATE, "top-k: selected %lld of %lld", (long long)m, (long long)k);
}

/* ---- target storage ---- */
static void free_target_arrays(sf_sparse_target *t) {
    sf_index_free(&t->idx);
    free(t->w0);
    free(t->delta);
    free(t->grad);
    free(t->m);
    free(t->v);
    t->w0 = t->delta = t->grad = t->m = t->v = NULL;
}

static sf_status alloc_target_arrays(sf_sparse_target *t, int64_t k) {
    free_target_arrays(t);
    size_t n = (size_t)(k ? k : 1);
    t->k = k;
    t->idx = sf_index_alloc(k, t->numel);
    t->w0 = calloc(n, sizeof *t->w0);
    t->delta = calloc(n, sizeof *t->delta);
    t->grad = calloc(n, sizeof *t->grad);
    t->m = calloc(n, sizeof *t->m);
    t->v = calloc(n, sizeof *t->v);
    if (!t->idx.data || !t->w0 || !t->delta || !t->grad || !t->m || !t->v)
        return sf_fail(SF_ERR_NOMEM, "sparse set: out of memory for %lld entries of %s", (long long)k, t->name);
    return SF_OK;
}

static void gather_add(float *dst, const float *src, sf_index_array idx, int64_t k) {
    for (int64_t j = 0; j < k; j++) dst[j] += src[sf_index_get(idx, j)];
}

/* Per-tensor selection for topk/random/magnitude from the dense gradient g (may be NULL). */
static sf_status select_one(sf_sparse_set *s, int i, const float *g) {
    sf_sparse_target *t = &s->t[i];
    int64_t k = sf_sparse_budget(s->rate, t->numel);
    sf_status st = alloc_target_arrays(t, k);
    if (st) return st;
    const float *w = sf_f32(t->w);
    float *score = NULL;
    if (s->policy == SF_POLICY_RANDOM) {
        /* Floyd's algorithm: k distinct uniform indices, then sorted */
        sf_rng r;
        sf_rng_seed(&r, s->seed ^ (0x5851f42d4c957f2dULL * (uint64_t)(i + 1)));
        char *mark = calloc((size_t)t->numel, 1);
        if (!mark) return sf_fail(SF_ERR_NOMEM, "random mask: out of memory");
        for (int64_t j = t->numel - k; j < t->numel; j++) {
            int64_t c = (int64_t)sf_rng_below(&r, (uint64_t)j + 1);
            if (mark[c]) c = j;
            mark[c] = 1;
        }
        int64_t m = 0;
        for (int64_t e = 0; e < t->numel; e++)
            if (mark[e]) sf_index_set(t->idx, m++, e);
        free(mark);
    } else {
        score = malloc((size_t)t->numel * sizeof *score);
        if (!score) return sf_fail(SF_ERR_NOMEM, "selection: out of memory for %s", t->name);
        const float *src = s->policy == SF_POLICY_MAGNITUDE ? w : g;
        for (int64_t e = 0; e < t->numel; e++) score[e] = src ? fabsf(src[e]) : 0.0f;
        int64_t *pick = malloc((size_t)(k ? k : 1) * sizeof *pick);
        st = pick ? sf_topk_indices(score, t->numel, k, pick) : sf_fail(SF_ERR_NOMEM, "selection: out of memory for %s", t->name);
        free(score);
        if (st == SF_OK)
            for (int64_t j = 0; j < k; j++) sf_index_set(t->idx, j, pick[j]);
        free(pick);
        if (st) return st;
    }
    if (g) gather_add(t->grad, g, t->idx, k);
    t->got_grad = g != NULL;
    t->selected = 1;
    return SF_OK;
}

/* A target's dense calibration gradient g of one batch, as the policy takes it. */
static void take_calibration_grad(sf_sparse_set *s, int i, const float *g) {
    set_impl *im = impl(s);
    sf_sparse_target *t = &s->t[i];
    switch (s->policy) {
    case SF_POLICY_TOPK:
    case SF_POLICY_RANDOM:
    case SF_POLICY_MAGNITUDE:
        if (!t->selected) {
            if (select_one(s, i, g) != SF_OK) return; /* reported by finish_selection */
        } else {
            gather_add(t->grad, g, t->idx, t->k);
            t->got_grad = 1;
        }
        break;
    default: /* global, fisher, custom: keep the dense gradient (and g^2 for fisher) until finish */
        if (!t->calib) t->calib = calloc((size_t)t->numel, sizeof *t->calib);
        if (s->policy == SF_POLICY_FISHER && !im->calib_sq[i])
            im->calib_sq[i] = calloc((size_t)t->numel, sizeof(float));
        if (!t->calib || (s->policy == SF_POLICY_FISHER && !im->calib_sq[i])) break;
        for (int64_t e = 0; e < t->numel; e++) t->calib[e] += g[e];
        if (s->policy == SF_POLICY_FISHER)
            for (int64_t e = 0; e < t->numel; e++) im->calib_sq[i][e] += g[e] * g[e];
        t->got_grad = 1;
    }
}

static sf_hook_result sparse_hook(sf_tensor *leaf, sf_tensor *grad, void *user) {
    (void)leaf;
    hook_ctx *c = user;
    sf_sparse_set *s = c->s;
    set_impl *im = impl(s);
    sf_sparse_target *t = &s->t[c->i];
    im->reach[c->i] = ++s->reach_counter;
    if (!grad) { /* training: the tape already accumulated the k entries */
        t->got_grad = 1;
        return SF_HOOK_CONSUMED;
    }
    const float *g = sf_f32(grad);
    if (im->deferred) { /* the policy must see the whole batch's gradient: keep adding until note_batch */
        if (!im->pending[c->i]) im->pending[c->i] = calloc((size_t)t->numel, sizeof(float));
        if (im->pending[c->i])
            for (int64_t e = 0; e < t->numel; e++) im->pending[c->i][e] += g[e];
        return SF_HOOK_CONSUMED;
    }
    take_calibration_grad(s, c->i, g);
    return SF_HOOK_CONSUMED;
}

sf_sparse_set *sf_sparse_new(sf_tensor *const *weights, const char *const *names, int n, double rate,
                             sf_policy policy, uint64_t seed) {
    if (!(rate >= 0 && rate <= 1)) return sf_fail_null(SF_ERR_ARG, "sparse set: rate %g outside [0, 1]", rate);
    if (policy < SF_POLICY_TOPK || policy > SF_POLICY_CUSTOM) return sf_fail_null(SF_ERR_ARG, "sparse set: unknown policy");
    for (int i = 0; i < n; i++) {
        if (weights[i]->dtype != SF_F32)
            return sf_fail_null(SF_ERR_ARG, "sparse set: target %s is not f32", names[i]);
        if (weights[i]->hook || weights[i]->sparse)
            return sf_fail_null(SF_ERR_STATE, "sparse set: %s already belongs to another sparse set (free it first)", names[i]);
        for (int j = 0; j < i; j++)
            if (weights[j] == weights[i]) return sf_fail_null(SF_ERR_ARG, "sparse set: %s is listed twice", names[i]);
    }
    set_impl *im = calloc(1, sizeof *im);
    if (!im) return sf_fail_null(SF_ERR_NOMEM, "out of memory (sparse set)");
    sf_sparse_set *s = &im->pub;
    s->rate = rate;
    s->policy = policy;
    s->seed = seed;
    s->n = n;
    s->untrained_target = -1;
    s->t = calloc((size_t)n + 1, sizeof *s->t);
    im->ctx = calloc((size_t)n + 1, sizeof *im->ctx);
    im->desc = calloc((size_t)n + 1, sizeof *im->desc);
    im->calib_sq = calloc((size_t)n + 1, sizeof *im->calib_sq);
    im->reach = calloc((size_t)n + 1, sizeof *im->reach);
    im->frozen = calloc((size_t)n + 1, sizeof *im->frozen);
    im->pending = calloc((size_t)n + 1, sizeof *im->pending);
    if (!s->t || !im->ctx || !im->desc || !im->calib_sq || !im->reach || !im->frozen || !im->pending) {
        sf_sparse_free(s);
        return sf_fail_null(SF_ERR_NOMEM, "out of memory (sparse set)");
    }
    for (int i = 0; i < n; i++) {
        sf_sparse_target *t = &s->t[i];
        t->name = strdup(names[i]);
        t->w = weights[i];
        sf_tensor_retain(t->w);
        t->numel = sf_tensor_numel(t->w);
        t->k = sf_sparse_budget(rate, t->numel);
        im->ctx[i] = (hook_ctx){s, i};
        sf_param_set_trainable(t->w, 1);
        sf_param_drop_grad(t->w);
        sf_param_set_hook(t->w, sparse_hook, &im->ctx[i]);
        if (!t->name) {
            sf_sparse_free(s);
            return sf_fail_null(SF_ERR_NOMEM, "out of memory (sparse set)");
        }
    }
    return s;
}

void sf_sparse_free(sf_sparse_set *s) {
    if (!s) return;
    set_impl *im = impl(s);
    for (int i = 0; i < s->n; i++) {
        sf_sparse_target *t = &s->t[i];
        if (t->w) {
            if (t->w->hook == sparse_hook) sf_param_set_hook(t->w, NULL, NULL);
            if (im->desc && t->w->sparse == &im->desc[i]) t->w->sparse = NULL;
            sf_tensor_release(t->w);
        }
        free(t->name);
        free_target_arrays(t);
        free(t->calib);
        if (im->calib_sq) free(im->calib_sq[i]);
        if (im->pending) free(im->pending[i]);
    }
    free(s->t);
    free(im->ctx);
    free(im->desc);
    free(im->calib_sq);
    free(im->reach);
    free(im->frozen);
    free(im->pending);
    free(im);
}

void sf_sparse_set_mode(sf_sparse_set *s, sf_sparse_mode mode) {
    s->mode = mode;
    set_impl *im = impl(s);
    for (int i = 0; i < s->n; i++) im->desc[i].sampled = mode == SF_SPARSE_SAMPLED;
}

sf_status sf_sparse_begin_selection(sf_sparse_set *s) {
    set_impl *im = impl(s);
    for (int i = 0; i < s->n; i++) {
        sf_sparse_target *t = &s->t[i];
        if (t->w->sparse == &im->desc[i]) t->w->sparse = NULL; /* dense gradients while selecting */
        t->selected = 0;
        t->got_grad = 0;
        free(t->calib);
        t->calib = NULL;
        free(im->calib_sq[i]);
        im->calib_sq[i] = NULL;
        im->reach[i] = 0;
        im->frozen[i] = 0;
        free(im->pending[i]);
        im->pending[i] = NULL;
    }
    im->deferred = s->defer_selection || sf_dist_size() > 1;
    s->calibrating = 1;
    s->calib_batches = 0;
    s->reach_counter = 0;
    s->step = 0;
    return SF_OK;
}

sf_status sf_sparse_note_batch(sf_sparse_set *s) {
    set_impl *im = impl(s);
    if (!s->calibrating) return sf_fail(SF_ERR_STATE, "select: no selection in progress");
    s->calib_batches++;
    if (!im->deferred) return SF_OK;
    /* several processes: every rank sums every target in target order, reached by its backward or not
     * (then zeros); one process: a target no pass reached is left to finish_selection, as undeferred */
    const int summing = sf_dist_size() > 1;
    for (int i = 0; i < s->n; i++) {
        sf_sparse_target *t = &s->t[i];
        if (!im->pending[i] && !summing) continue;
        if (!im->pending[i]) im->pending[i] = calloc((size_t)t->numel, sizeof(float));
        if (!im->pending[i]) {
            sf_status st = sf_fail(SF_ERR_NOMEM, "select: out of memory for the calibration gradient of %s", t->name);
            sf_dist_abort(1, sf_last_error()); /* the other ranks would wait for this sum forever */
            return st;
        }
        sf_status st = sf_dist_sum_f32(im->pending[i], t->numel);
        if (st) return st;
        take_calibration_grad(s, i, im->pending[i]);
        free(im->pending[i]);
        im->pending[i] = NULL;
    }
    return SF_OK;
}

const float *sf_sparse_calib_grad(const sf_sparse_set *s, int i) {
    return (i >= 0 && i < s->n) ? s->t[i].calib : NULL;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

sf_status sf_sparse_set_indices(sf_sparse_set *s, int i, const int64_t *idx, int64_t k) {
    if (i < 0 || i >= s->n) return sf_fail(SF_ERR_ARG, "set_indices: target %d outside 0..%d", i, s->n - 1);
    sf_sparse_target *t = &s->t[i];
    if (k < 0 || k > t->numel)
        return sf_fail(SF_ERR_ARG, "%s: %lld indices for a tensor of %lld elements", t->name, (long long)k, (long long)t->numel);
    int64_t *sorted = malloc((size_t)(k ? k : 1) * sizeof *sorted);
    if (!sorted) return sf_fail(SF_ERR_NOMEM, "set_indices: out of memory");
    memcpy(sorted, idx, (size_t)k * sizeof *sorted);
    qsort(sorted, (size_t)k, sizeof *sorted, cmp_i64);
    for (int64_t j = 0; j < k; j++) {
        int64_t v = sorted[j];
        if (v < 0 || v >= t->numel) {
            free(sorted);
            return sf_fail(SF_ERR_ARG, "%s: index %lld outside 0..%lld", t->name, (long long)v, (long long)t->numel - 1);
        }
        if (j && v == sorted[j - 1]) {
            free(sorted);
            return sf_fail(SF_ERR_ARG, "%s: index %lld appears twice", t->name, (long long)v);
        }
    }
    sf_status st = alloc_target_arrays(t, k);
    if (st) {
        free(sorted);
        return st;
    }
    for (int64_t j = 0; j < k; j++) sf_index_set(t->idx, j, sorted[j]);
    free(sorted);
    if (t->calib) gather_add(t->grad, t->calib, t->idx, k);
    t->selected = 1;
    return SF_OK;
}

static sf_status select_global(sf_sparse_set *s) {
    int64_t total = 0, K = 0;
    for (int i = 0; i < s->n; i++) {
        total += s->t[i].numel;
        K += sf_sparse_budget(s->rate, s->t[i].numel);
    }
    float *all = malloc((size_t)(total ? total : 1) * sizeof *all);
    if (!all) return sf_fail(SF_ERR_NOMEM, "global top-k: out of memory for %lld scores", (long long)total);
    int64_t off = 0;
    for (int i = 0; i < s->n; i++) {
        const float *c = s->t[i].calib;
        for (int64_t e = 0; e < s->t[i].numel; e++) all[off + e] = c ? fabsf(c[e]) : 0.0f;
        off += s->t[i].numel;
    }
    int64_t *pick = malloc((size_t)(K ? K : 1) * sizeof *pick);
    sf_status st = pick ? sf_topk_indices(all, total, K, pick) : sf_fail(SF_ERR_NOMEM, "global top-k: out of memory");
    free(all);
    off = 0;
    int64_t p = 0;
    for (int i = 0; i < s->n && st == SF_OK; i++) {
        int64_t start = p;
        while (p < K && pick[p] < off + s->t[i].numel) p++;
        int64_t k = p - start;
        for (int64_t j = start; j < p; j++) pick[j] -= off;
        st = sf_sparse_set_indices(s, i, pick + start, k);
        off += s->t[i].numel;
    }
    free(pick);
    return st;
}

sf_status sf_sparse_finish_selection(sf_sparse_set *s) {
    set_impl *im = impl(s);
    sf_status st = SF_OK;
    if (s->policy == SF_POLICY_GLOBAL) {
        st = select_global(s);
    } else if (s->policy == SF_POLICY_FISHER) {
        int nb = s->calib_batches > 0 ? s->calib_batches : 1;
        for (int i = 0; i < s->n && st == SF_OK; i++) {
            sf_sparse_target *t = &s->t[i];
            int64_t k = sf_sparse_budget(s->rate, t->numel);
            int64_t *idx = malloc((size_t)(k ? k : 1) * sizeof *idx);
            if (!idx) return sf_fail(SF_ERR_NOMEM, "fisher: out of memory");
            if (im->calib_sq[i]) {
                st = sf_topk_indices(im->calib_sq[i], t->numel, k, idx);
            } else {
                for (int64_t j = 0; j < k; j++) idx[j] = j;
            }
            if (st == SF_OK) st = sf_sparse_set_indices(s, i, idx, k);
            free(idx);
            if (st == SF_OK && nb > 1)
                for (int64_t j = 0; j < t->k; j++) t->grad[j] /= (float)nb; /* mean calibration gradient */
        }
    } else if (s->policy == SF_POLICY_CUSTOM) {
        for (int i = 0; i < s->n; i++)
            if (!s->t[i].selected)
                return sf_fail(SF_ERR_STATE, "custom policy: no indices were given for %s", s->t[i].name);
    } else {
        for (int i = 0; i < s->n && st == SF_OK; i++)
            if (!s->t[i].selected) st = select_one(s, i, s->t[i].calib); /* not reached by backward */
    }
    if (st) return st;
    /* the quirks of the published code, on request */
    s->untrained_target = -1;
    if (s->reference_quirks) {
        int64_t best = -1;
        for (int i = 0; i < s->n; i++)
            if (im->reach[i] > best) {
                best = im->reach[i];
                s->untrained_target = i;
            }
        if (s->untrained_target >= 0) im->frozen[s->untrained_target] = 1;
    }
    for (int i = 0; i < s->n; i++) {
        sf_sparse_target *t = &s->t[i];
        const float *w = sf_f32(t->w);
        for (int64_t j = 0; j < t->k; j++) t->w0[j] = w[sf_index_get(t->idx, j)];
        memset(t->delta, 0, (size_t)t->k * sizeof *t->delta);
        memset(t->m, 0, (size_t)t->k * sizeof *t->m);
        memset(t->v, 0, (size_t)t->k * sizeof *t->v);
        if (s->reference_quirks) { /* the first batch is discarded */
            memset(t->grad, 0, (size_t)t->k * sizeof *t->grad);
            t->got_grad = 0;
        }
        free(t->calib);
        t->calib = NULL;
        free(im->calib_sq[i]);
        im->calib_sq[i] = NULL;
        im->desc[i] = (sf_sparse_grad){.k = t->k, .idx = t->idx, .values = t->grad, .sampled = s->mode == SF_SPARSE_SAMPLED};
        t->w->sparse = &im->desc[i];
        sf_param_drop_grad(t->w);
    }
    s->calibrating = 0;
    return SF_OK;
}

sf_status sf_sparse_restore_target(sf_sparse_set *s, int i, const float *w0, const float *delta, const float *m,
                                   const float *v) {
    if (i < 0 || i >= s->n) return sf_fail(SF_ERR_ARG, "restore: no target %d", i);
    sf_sparse_target *t = &s->t[i];
    if (s->calibrating || !t->selected) return sf_fail(SF_ERR_STATE, "restore: %s has no mask yet", t->name);
    for (int64_t j = 0; j < t->k; j++)
        if (memcmp(&t->w0[j], &w0[j], sizeof *w0))
            return sf_fail(SF_ERR_ARG, "restore: %s differs from the checkpoint's base weights at entry %lld (another model?)",
                           t->name, (long long)sf_index_get(t->idx, j));
    memcpy(t->delta, delta, (size_t)t->k * sizeof *delta);
    memcpy(t->m, m, (size_t)t->k * sizeof *m);
    memcpy(t->v, v, (size_t)t->k * sizeof *v);
    memset(t->grad, 0, (size_t)t->k * sizeof *t->grad);
    t->got_grad = 0;
    float *w = sf_f32(t->w);
    for (int64_t j = 0; j < t->k; j++) w[sf_index_get(t->idx, j)] = t->w0[j] + t->delta[j];
    return SF_OK;
}

void sf_sparse_write_back(sf_sparse_set *s) {
    for (int i = 0; i < s->n; i++) {
        sf_sparse_target *t = &s->t[i];
        if (!t->selected) continue;
        float *w = sf_f32(t->w);
        for (int64_t j = 0; j < t->k; j++) w[sf_index_get(t->idx, j)] = t->w0[j] + t->delta[j];
    }
}

void sf_sparse_restore(sf_sparse_set *s) {
    for (int i = 0; i < s->n; i++) {
        sf_sparse_target *t = &s->t[i];
        if (!t->selected) continue;
        float *w = sf_f32(t->w);
        for (int64_t j = 0; j < t->k; j++) w[sf_index_get(t->idx, j)] = t->w0[j];
    }
}

sf_status sf_sparse_step(sf_sparse_set *s, const sf_adamw_hparams *hp) {
    if (s->calibrating) return sf_fail(SF_ERR_STATE, "sparse step: selection is not finished");
    set_impl *im = impl(s);
    s->step++;
    for (int i = 0; i < s->n; i++) {
        sf_sparse_target *t = &s->t[i];
        if (!t->selected || !t->got_grad || im->frozen[i]) continue;
        if (sf_count_nonfinite(t->grad, t->k))
            return sf_fail(SF_ERR_NUMERIC, "step: non-finite gradient in %s; weights left unchanged", t->name);
    }
    for (int i = 0; i < s->n; i++) {
        sf_sparse_target *t = &s->t[i];
        if (!t->selected || !t->got_grad || im->frozen[i]) continue;
        float *w = sf_f32(t->w);
        if (s->reference_quirks) /* written back one step late: the weight gets the previous increment */
            for (int64_t j = 0; j < t->k; j++) w[sf_index_get(t->idx, j)] = t->w0[j] + t->delta[j];
        sf_adamw_update(t->delta, t->grad, t->m, t->v, t->k, hp, s->step, 1.0f);
        if (!s->reference_quirks)
            for (int64_t j = 0; j < t->k; j++) w[sf_index_get(t->idx, j)] = t->w0[j] + t->delta[j];
    }
    sf_sparse_zero_grad(s);
    return SF_OK;
}

void sf_sparse_zero_grad(sf_sparse_set *s) {
    for (int i = 0; i < s->n; i++) {
        sf_sparse_target *t = &s->t[i];
        if (t->grad) memset(t->grad, 0, (size_t)t->k * sizeof *t->grad);
        t->got_grad = 0;
    }
}

double sf_sparse_grad_norm_sq(const sf_sparse_set *s) {
    double sum = 0;
    for (int i = 0; i < s->n; i++)
        if (s->t[i].grad) sum += sf_grad_norm_sq(s->t[i].grad, s->t[i].k);
    return sum;
}

void sf_sparse_scale_grad(sf_sparse_set *s, float factor) {
    for (int i = 0; i < s->n; i++)
        if (s->t[i].grad) sf_scale_inplace(s->t[i].grad, s->t[i].k, factor);
}

int64_t sf_sparse_trainable(const sf_sparse_set *s) {
    const set_impl *im = (const set_impl *)s;
    int64_t n = 0;
    for (int i = 0; i < s->n; i++) n += im->frozen[i] ? 0 : s->t[i].k;
    return n;
}

sf_sparse_memory sf_sparse_memory_of(const sf_sparse_set *s) {
    const set_impl *im = (const set_impl *)s;
    sf_sparse_memory m = {0};
    for (int i = 0; i < s->n; i++) {
        const sf_sparse_target *t = &s->t[i];
        size_t k = (size_t)t->k;
        m.increments += k * sizeof(float);
        m.moments += 2 * k * sizeof(float);
        m.indices += k * sf_index_elem_bytes(t->idx.data ? t->idx.wide : sf_index_needs_wide(t->numel));
        m.originals += k * sizeof(float);
        m.grads += k * sizeof(float);
        if (t->calib) m.calibration += (size_t)t->numel * sizeof(float);
        if (im->calib_sq[i]) m.calibration += (size_t)t->numel * sizeof(float);
    }
    return m;
}
