/* graph.c — tape recording, buffer pool, reverse pass and leaf-gradient hooks. See graph.h. */
#include "graph.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#define ASAN_UNPOISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#endif

struct sf_graph {
    sf_node *nodes;
    int n_nodes, cap_nodes;
    sf_tensor **owned; /* graph-owned tensors (outputs, scratch) */
    int n_owned, cap_owned;
    sf_storage **pool; /* idle storages, reused by size (pool_take) */
    int *pool_idle;    /* (cap_pool) resets each pooled storage has sat unused through */
    int n_pool, cap_pool, cap_idle;
    int recording;
    int backward_done;
    int in_backward;
    int profiling;
    double last_t;
    sf_op_time *prof;
    int n_prof, cap_prof;
    sf_leaf_observer observer; /* told of every finished leaf (a gradient sync), or NULL */
    void *observer_user;
};

static int grow(void **arr, int *cap, int need, size_t elem);

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static sf_op_time *prof_entry(sf_graph *g, const char *op) {
    for (int i = 0; i < g->n_prof; i++)
        if (g->prof[i].op == op || !strcmp(g->prof[i].op, op)) return &g->prof[i];
    if (grow((void **)&g->prof, &g->cap_prof, g->n_prof + 1, sizeof *g->prof)) return NULL;
    g->prof[g->n_prof] = (sf_op_time){.op = op};
    return &g->prof[g->n_prof++];
}

void sf_graph_set_profiling(sf_graph *g, int on) {
    g->profiling = on;
    g->last_t = now_s();
}
int sf_graph_profile(const sf_graph *g, const sf_op_time **out) {
    *out = g->prof;
    return g->n_prof;
}
void sf_graph_profile_clear(sf_graph *g) { g->n_prof = 0; }

static int grow(void **arr, int *cap, int need, size_t elem) {
    if (need <= *cap) return 0;
    int nc = *cap ? *cap * 2 : 64;
    while (nc < need) nc *= 2;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p) return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

sf_graph *sf_graph_new(void) {
    sf_graph *g = calloc(1, sizeof *g);
    if (!g) return sf_fail_null(SF_ERR_NOMEM, "out of memory (graph)");
    g->recording = 1;
    return g;
}

int sf_graph_set_recording(sf_graph *g, int on) {
    int old = g->recording;
    g->recording = on;
    return old;
}
int sf_graph_recording(const sf_graph *g) { return g->recording; }
int sf_graph_num_nodes(const sf_graph *g) { return g->n_nodes; }
const sf_node *sf_graph_node(const sf_graph *g, int i) { return (i >= 0 && i < g->n_nodes) ? &g->nodes[i] : NULL; }

/* ---- pool ---- */
/* An idle storage for nbytes: one of exactly that size if there is one, else the smallest holding at
 * most twice nbytes. Real data comes in batches padded to their own longest row, so the sizes of a step
 * change with every batch; an exact-size pool missed on nearly all of them and mapped every activation
 * afresh (page faults, zeroed huge pages: 16 % of an SST-2 step on gpt2-4m). Taking a larger buffer,
 * the pool settles on buffers of the longest batch seen. Under AddressSanitizer the part of the buffer
 * beyond what a fresh allocation of nbytes would give stays poisoned until the storage comes back. */
static sf_storage *pool_take(sf_graph *g, size_t nbytes) {
    int best = -1;
    for (int i = g->n_pool - 1; i >= 0; i--) {
        const size_t have = g->pool[i]->nbytes;
        if (have == nbytes) {
            best = i;
            break;
        }
        if (have > nbytes && have / 2 <= nbytes && (best < 0 || have < g->pool[best]->nbytes)) best = i;
    }
    if (best < 0) return NULL;
    sf_storage *s = g->pool[best];
    g->n_pool--;
    g->pool[best] = g->pool[g->n_pool];
    g->pool_idle[best] = g->pool_idle[g->n_pool];
    const size_t used = (nbytes + SF_ALIGN - 1) / SF_ALIGN * SF_ALIGN;
    if (s->nbytes > used) ASAN_POISON_MEMORY_REGION((char *)s->data + used, s->nbytes - used);
    return s;
}

/* Puts an idle storage (its only reference) in the pool; 0 when it could not (then the caller keeps it). */
static int pool_put(sf_graph *g, sf_storage *s) {
    if (grow((void **)&g->pool, &g->cap_pool, g->n_pool + 1, sizeof *g->pool) ||
        grow((void **)&g->pool_idle, &g->cap_idle, g->n_pool + 1, sizeof *g->pool_idle))
        return 0;
    ASAN_UNPOISON_MEMORY_REGION(s->data, s->nbytes);
    g->pool_idle[g->n_pool] = 0;
    g->pool[g->n_pool++] = s;
    return 1;
}

/* Called at every reset: storages that sat unused through a whole step belong to shapes that are no
 * longer in use (e.g. another padded length) and are released, so the pool tracks the working set. */
static void pool_age(sf_graph *g) {
    int k = 0;
    for (int i = 0; i < g->n_pool; i++) {
        if (g->pool_idle[i] >= 1) {
            sf_storage_release(g->pool[i]);
            continue;
        }
        g->pool[k] = g->pool[i];
        g->pool_idle[k] = g->pool_idle[i] + 1;
        k++;
    }
    g->n_pool = k;
}

/* Gives the tensor's storage back to the pool when nobody else uses it; releases the tensor. */
static void recycle_tensor(sf_graph *g, sf_tensor *t) {
    if (!t) return;
    if (t->refcount == 1 && t->storage && t->storage->refcount == 1 && !t->storage->release &&
        pool_put(g, t->storage))
        t->storage = NULL;
    sf_tensor_release(t);
}

void sf_graph_trim(sf_graph *g) {
    for (int i = 0; i < g->n_pool; i++) sf_storage_release(g->pool[i]);
    g->n_pool = 0;
}

size_t sf_graph_pool_bytes(const sf_graph *g) {
    size_t b = 0;
    for (int i = 0; i < g->n_pool; i++) b += g->pool[i]->nbytes;
    return b;
}

size_t sf_graph_owned_bytes(const sf_graph *g) {
    size_t b = 0;
    for (int i = 0; i < g->n_owned; i++)
        if (g->owned[i]->storage && g->owned[i]->storage->refcount == 1) b += g->owned[i]->storage->nbytes;
    return b;
}

static sf_tensor *pooled_tensor(sf_graph *g, sf_dtype dt, int ndim, const int64_t *shape, int zero) {
    int64_t n = sf_shape_numel(ndim, shape);
    if (n < 0) return NULL;
    sf_tensor tmp = {.dtype = dt, .ndim = ndim};
    for (int i = 0; i < ndim; i++) tmp.shape[i] = shape[i];
    size_t nb = sf_tensor_nbytes(&tmp);
    sf_storage *s = pool_take(g, nb);
    sf_tensor *t;
    if (s) {
        t = sf_tensor_from_storage(s, 0, dt, ndim, shape);
        sf_storage_release(s); /* the tensor now holds the only reference */
        if (!t) return NULL;
        if (zero) memset(s->data, 0, nb);
    } else {
        t = zero ? sf_tensor_zeros(dt, ndim, shape) : sf_tensor_new(dt, ndim, shape);
        if (!t) return NULL;
    }
    return t;
}

sf_tensor *sf_graph_adopt(sf_graph *g, sf_tensor *t) {
    if (!t) return NULL;
    if (grow((void **)&g->owned, &g->cap_owned, g->n_owned + 1, sizeof *g->owned)) {
        sf_tensor_release(t);
        return sf_fail_null(SF_ERR_NOMEM, "out of memory (graph tensor list)");
    }
    g->owned[g->n_owned++] = t;
    return t;
}

sf_tensor *sf_graph_tensor_dtype(sf_graph *g, sf_dtype dt, int ndim, const int64_t *shape) {
    return sf_graph_adopt(g, pooled_tensor(g, dt, ndim, shape, 0));
}
sf_tensor *sf_graph_tensor(sf_graph *g, int ndim, const int64_t *shape) {
    return sf_graph_adopt(g, pooled_tensor(g, SF_F32, ndim, shape, 0));
}
sf_tensor *sf_graph_tensor_zeros(sf_graph *g, int ndim, const int64_t *shape) {
    return sf_graph_adopt(g, pooled_tensor(g, SF_F32, ndim, shape, 1));
}
sf_tensor *sf_graph_scratch(sf_graph *g, int ndim, const int64_t *shape) {
    return pooled_tensor(g, SF_F32, ndim, shape, 0);
}
void sf_graph_recycle(sf_graph *g, sf_tensor *t) { recycle_tensor(g, t); }
sf_tensor *sf_graph_tensor_like(sf_graph *g, const sf_tensor *t) { return sf_graph_tensor(g, t->ndim, t->shape); }

/* ---- recording ---- */
static void node_clear(sf_node *n) {
    for (int i = 0; i < n->n_in; i++) sf_tensor_release(n->in[i]);
    for (int i = 0; i < n->n_saved; i++) sf_tensor_release(n->saved[i]);
    memset(n, 0, sizeof *n);
}

sf_node *sf_graph_record(sf_graph *g, const char *op, sf_backward_fn backward, sf_tensor *out,
                         sf_tensor *const *in, int n_in) {
    if (!g->recording || n_in > SF_NODE_MAX_IN) return NULL;
    int any = 0;
    for (int i = 0; i < n_in; i++)
        if (in[i] && in[i]->requires_grad) any = 1;
    if (!any) return NULL;
    if (grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes)) {
        sf_fail(SF_ERR_NOMEM, "out of memory (tape)");
        return NULL;
    }
    g->backward_done = 0;
    sf_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->backward = backward;
    n->out = out;
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++) {
        n->in[i] = in[i];
        sf_tensor_retain(in[i]);
    }
    out->requires_grad = 1;
    out->is_leaf = 0;
    out->ag_node = g->n_nodes;
    g->n_nodes++;
    if (g->profiling) {
        double t = now_s();
        sf_op_time *e = prof_entry(g, op);
        if (e) {
            e->forward_s += t - g->last_t;
            e->calls++;
        }
        g->last_t = t;
    }
    return n;
}

sf_status sf_node_save(sf_node *n, sf_tensor *t) {
    if (n->n_saved >= SF_NODE_MAX_SAVED) return sf_fail(SF_ERR_STATE, "op %s saves too many tensors", n->op);
    sf_tensor_retain(t);
    n->saved[n->n_saved++] = t;
    return SF_OK;
}

void sf_graph_reset(sf_graph *g) {
    if (g->profiling) g->last_t = now_s();
    pool_age(g); /* before this step's buffers return: they count as used */
    for (int i = 0; i < g->n_nodes; i++) node_clear(&g->nodes[i]);
    g->n_nodes = 0;
    for (int i = 0; i < g->n_owned; i++) {
        sf_tensor *t = g->owned[i];
        t->ag_node = -1;
        recycle_tensor(g, t->ag_grad);
        t->ag_grad = NULL;
        recycle_tensor(g, t);
    }
    g->n_owned = 0;
    g->backward_done = 0;
}

void sf_graph_free(sf_graph *g) {
    if (!g) return;
    sf_graph_reset(g);
    sf_graph_trim(g);
    free(g->nodes);
    free(g->owned);
    free(g->pool);
    free(g->pool_idle);
    free(g->prof);
    free(g);
}

/* ---- backward ---- */
sf_tensor *sf_graph_grad(sf_graph *g, sf_tensor *t) {
    if (!t || !t->requires_grad) return NULL;
    if (t->is_leaf && !t->hook && !t->sparse) {
        t->grad_zero = 0;
        t->grad_finite = 0; /* the caller writes into it now; it may vouch again (sf_graph_grad_set_finite) */
        if (!t->grad) {
            t->grad = sf_tensor_zeros(SF_F32, t->ndim, t->shape);
            if (!t->grad) return NULL;
        }
        return t->grad;
    }
    if (!t->ag_grad) t->ag_grad = pooled_tensor(g, SF_F32, t->ndim, t->shape, 1);
    return t->ag_grad;
}

sf_tensor *sf_graph_grad_for_write(sf_graph *g, sf_tensor *t, int *fresh) {
    *fresh = 0;
    if (!t || !t->requires_grad) return NULL;
    if (t->is_leaf && !t->hook && !t->sparse) {
        /* zero and nobody else holds it (a caller holding the buffer may have written into it) */
        const int known_zero = !t->grad || (t->grad_zero && t->grad->refcount == 1);
        sf_tensor *gt = sf_graph_grad(g, t); /* clears grad_zero: the caller writes into it now */
        *fresh = gt && known_zero;
        return gt;
    }
    if (!t->ag_grad) {
        t->ag_grad = pooled_tensor(g, SF_F32, t->ndim, t->shape, 0);
        *fresh = t->ag_grad != NULL;
    }
    return t->ag_grad;
}

int sf_graph_grad_known_finite(const sf_tensor *t) {
    return t && t->grad && t->grad_finite && t->grad->refcount == 1;
}

void sf_graph_grad_set_finite(sf_tensor *t, int finite) {
    if (t && t->is_leaf && !t->hook && !t->sparse) t->grad_finite = finite && t->grad && t->grad->refcount == 1;
}

static sf_status add_into(sf_tensor *dst, const sf_tensor *src) {
    float *d = sf_f32(dst);
    const float *s = sf_f32(src);
    int64_t n = sf_tensor_numel(src);
    for (int64_t i = 0; i < n; i++) d[i] += s[i];
    return SF_OK;
}

void sf_graph_drop_value(sf_graph *g, sf_tensor *t) {
    if (!t || t->is_leaf || t->ag_node < 0 || !t->storage || t->storage->refcount != 1 || t->storage->release) return;
    if (pool_put(g, t->storage)) t->storage = NULL;
}

sf_tensor *sf_graph_take_grad(sf_graph *g, sf_tensor *t) {
    (void)g;
    if (!t || t->is_leaf) return NULL; /* leaves' gradients belong to their hooks / t->grad */
    sf_tensor *d = t->ag_grad;
    t->ag_grad = NULL;
    return d;
}

sf_sparse_grad *sf_graph_sparse_grad(sf_graph *g, sf_tensor *t) {
    (void)g;
    if (!t || !t->requires_grad || !t->sparse || !t->sparse->sampled) return NULL;
    return t->sparse;
}

/* A leaf's last consumer has run: hand its gradient to the hook, or leave it in t->grad. */
static sf_status finish_leaf_grad(sf_graph *g, sf_tensor *t) {
    if (t->sparse) { /* gather the wanted entries of a dense contribution, if any, and recycle it */
        sf_tensor *gbuf = t->ag_grad;
        t->ag_grad = NULL;
        if (gbuf) {
            const float *d = sf_f32(gbuf);
            float *vals = t->sparse->values;
            const sf_index_array idx = t->sparse->idx;
            for (int64_t i = 0; i < t->sparse->k; i++) vals[i] += d[sf_index_get(idx, i)];
            recycle_tensor(g, gbuf);
        }
        if (t->hook) t->hook(t, NULL, t->hook_user);
        return SF_OK;
    }
    if (!t->hook) return SF_OK; /* accumulated straight into t->grad */
    sf_tensor *gbuf = sf_graph_grad(g, t);
    if (!gbuf) return SF_ERR_NOMEM;
    t->ag_grad = NULL;
    sf_hook_result r = t->hook(t, gbuf, t->hook_user);
    if (r == SF_HOOK_KEEP) {
        t->grad_zero = 0;
        t->grad_finite = 0;
        if (!t->grad) {
            t->grad = gbuf; /* hand over the buffer itself */
            return SF_OK;
        }
        add_into(t->grad, gbuf);
    }
    recycle_tensor(g, gbuf);
    return SF_OK;
}

static sf_status finish_leaf(sf_graph *g, sf_tensor *t) {
    sf_status st = finish_leaf_grad(g, t);
    if (st == SF_OK && g->observer) g->observer(t, g->observer_user);
    return st;
}

void sf_graph_set_leaf_observer(sf_graph *g, sf_leaf_observer fn, void *user) {
    g->observer = fn;
    g->observer_user = user;
}

sf_status sf_graph_backward(sf_graph *g, sf_tensor *out, const sf_tensor *seed) {
    if (g->backward_done) return sf_fail(SF_ERR_STATE, "backward already ran on this forward pass; run forward again");
    if (!out || !out->requires_grad || out->ag_node < 0 || out->ag_node >= g->n_nodes ||
        g->nodes[out->ag_node].out != out)
        return sf_fail(SF_ERR_STATE, "backward: the output was not computed on this tape from trainable inputs");
    if (seed ? !sf_tensor_same_shape(seed, out) || seed->dtype != SF_F32 : sf_tensor_numel(out) != 1)
        return sf_fail(SF_ERR_ARG, "backward: the seed gradient must have the output's shape (or the output be a scalar)");

    /* count the consumers of every leaf */
    for (int k = 0; k < g->n_nodes; k++)
        for (int i = 0; i < g->nodes[k].n_in; i++) g->nodes[k].in[i]->ag_pending = 0;
    for (int k = 0; k < g->n_nodes; k++)
        for (int i = 0; i < g->nodes[k].n_in; i++) g->nodes[k].in[i]->ag_pending++;

    sf_tensor *go = sf_graph_grad(g, out);
    if (!go) return sf_fail(SF_ERR_NOMEM, "backward: out of memory for the seed gradient");
    if (seed)
        memcpy(sf_f32(go), sf_f32(seed), sf_tensor_nbytes(seed));
    else
        sf_f32(go)[0] = 1.0f;

    g->backward_done = 1;
    g->in_backward = 1;
    sf_status st = SF_OK;
    for (int k = out->ag_node; k >= 0; k--) {
        sf_node *n = &g->nodes[k];
        if (n->out->ag_grad && st == SF_OK) {
            double t0 = g->profiling ? now_s() : 0;
            st = n->backward(g, n);
            if (g->profiling) {
                sf_op_time *e = prof_entry(g, n->op);
                if (e) e->backward_s += now_s() - t0;
            }
            recycle_tensor(g, n->out->ag_grad);
            n->out->ag_grad = NULL;
        }
        for (int i = 0; i < n->n_in; i++) {
            sf_tensor *t = n->in[i];
            if (t->requires_grad && t->is_leaf && --t->ag_pending == 0 && st == SF_OK) st = finish_leaf(g, t);
        }
    }
    /* nodes recorded after `out` never got a gradient; leaves only they use are not finished */
    g->in_backward = 0;
    return st;
}

/* ---- parameters ---- */
void sf_param_set_trainable(sf_tensor *t, int trainable) { t->requires_grad = trainable ? 1 : 0; }
void sf_param_set_hook(sf_tensor *t, sf_grad_hook hook, void *user) {
    t->hook = hook;
    t->hook_user = user;
}
void sf_param_zero_grad(sf_tensor *t) {
    /* skipped only when known zero and nobody else holds the buffer (a caller could have written it) */
    if (t->grad && (!t->grad_zero || t->grad->refcount > 1)) memset(sf_f32(t->grad), 0, sf_tensor_nbytes(t->grad));
    t->grad_zero = t->grad && t->grad->refcount == 1;
    t->grad_finite = t->grad_zero; /* zeros */
}
void sf_param_drop_grad(sf_tensor *t) {
    sf_tensor_release(t->grad);
    t->grad = NULL;
    t->grad_zero = 0;
    t->grad_finite = 0;
}
