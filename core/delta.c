/* delta.c — SIFT deltas: building from a sparse set, saving / loading (safetensors + metadata), checking
 * against a model (names, shapes, SHA-256 of base tensors), bit-exact apply / unapply, and composition
 * (sum, scaling). See delta.h for the file layout and the guarantees. Offsets are kept as the file keeps
 * them (index_array.h): int32 for tensors below 2^31 elements, int64 above.
 *
 * What it does not do: know about Lua or training; hash dense entries; hash huge tensors in parallel
 * within one tensor (tensors are hashed in parallel with each other, each one sequentially: SHA-256 is a
 * chain).
 */
#include "delta.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "sha256.h"

/* ---- small helpers ------------------------------------------------------------------------------ */
static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }

const char *sf_delta_policy_name(sf_policy p) {
    switch (p) {
    case SF_POLICY_TOPK: return "topk";
    case SF_POLICY_GLOBAL: return "global";
    case SF_POLICY_RANDOM: return "random";
    case SF_POLICY_MAGNITUDE: return "magnitude";
    case SF_POLICY_FISHER: return "fisher";
    case SF_POLICY_CUSTOM: return "custom";
    }
    return "unknown";
}

static void shape_text(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t used = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ", %" PRId64 : "%" PRId64, shape[i]);
    if (used < n) snprintf(buf + used, n - used, ndim == 1 ? ",)" : ")");
}

/* A list of "name: reason" items joined by "; " that fits the 1 KB error buffer, counting what did not fit. */
typedef struct {
    char buf[880];
    size_t len;
    int n, dropped;
} problem_list;

static void problem_add(problem_list *p, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void problem_add(problem_list *p, const char *name, const char *fmt, ...) {
    char item[400];
    int m = snprintf(item, sizeof item, "%s%s: ", p->n ? "; " : "", name);
    if (m < 0) m = 0;
    if ((size_t)m < sizeof item) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(item + m, sizeof item - (size_t)m, fmt, ap);
        va_end(ap);
    }
    size_t il = strlen(item);
    if (p->dropped == 0 && p->len + il + 1 < sizeof p->buf) {
        memcpy(p->buf + p->len, item, il + 1);
        p->len += il;
    } else {
        p->dropped++;
    }
    p->n++;
}

static sf_status problem_fail(const problem_list *p, sf_status code, const char *prefix) {
    if (p->dropped)
        return sf_fail(code, "%s: %s; and %d more", prefix, p->buf, p->dropped);
    return sf_fail(code, "%s: %s", prefix, p->buf);
}

/* Shortest of %.15g / %.17g that reads back as the same double. */
static void format_double(double v, char *buf, size_t n) {
    snprintf(buf, n, "%.15g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, n, "%.17g", v);
}

/* Validates k indices: strictly ascending, in 0..numel-1. Message prefixed by `where` (file, tensor). */
static sf_status index_out_of_range(int64_t v, int64_t j, int64_t numel, const char *where) {
    return sf_fail(SF_ERR_FORMAT, "%s: index %" PRId64 " at position %" PRId64 " is outside 0..%" PRId64, where, v, j,
                   numel - 1);
}

static sf_status check_indices(sf_index_array idx, int64_t k, int64_t numel, const char *where) {
    if (k > numel)
        return sf_fail(SF_ERR_FORMAT, "%s: %" PRId64 " indices for a tensor of %" PRId64 " elements", where, k, numel);
    for (int64_t j = 0, prev = -1; j < k; j++) {
        const int64_t v = sf_index_get(idx, j);
        if (v < 0 || v >= numel) return index_out_of_range(v, j, numel, where);
        if (j && v <= prev)
            return sf_fail(SF_ERR_FORMAT,
                           "%s: indices are not strictly ascending at position %" PRId64 " (%" PRId64 " after %" PRId64 ")",
                           where, j, v, prev);
        prev = v;
    }
    return SF_OK;
}

/* SHA-256 of the f32 tensor w (n) as if w[idx[j]] were patch[j] (k, ascending idx; patch may be NULL
 * for none), without writing into w: chunks holding patched entries are copied to a stack buffer. */
static void hash_patched(const float *w, int64_t n, sf_index_array idx, const float *patch, int64_t k, char hex[65]) {
    enum { CH = 4096 };
    float buf[CH]; // (CH) one chunk of the tensor, patched
    sf_sha256_ctx c;
    sf_sha256_init(&c);
    int64_t j = 0;
    for (int64_t s = 0; s < n; s += CH) {
        int64_t len = n - s < CH ? n - s : CH;
        if (!patch || j >= k || sf_index_get(idx, j) >= s + len) {
            sf_sha256_update(&c, w + s, (size_t)len * sizeof(float));
            continue;
        }
        memcpy(buf, w + s, (size_t)len * sizeof(float));
        for (; j < k && sf_index_get(idx, j) < s + len; j++) buf[sf_index_get(idx, j) - s] = patch[j];
        sf_sha256_update(&c, buf, (size_t)len * sizeof(float));
    }
    uint8_t dig[32];
    sf_sha256_final(&c, dig);
    sf_sha256_hex(dig, hex);
}

/* ---- construction --------------------------------------------------------------------------------- */
static void entry_drop_applied(sf_delta_entry *e) {
    sf_tensor_release(e->target);
    e->target = NULL;
    free(e->orig);
    e->orig = NULL;
    sf_tensor_release(e->orig_dense);
    e->orig_dense = NULL;
}

static void entry_free(sf_delta_entry *e) {
    entry_drop_applied(e);
    free(e->name);
    sf_index_free(&e->idx);
    free(e->values);
    sf_tensor_release(e->tensor);
    memset(e, 0, sizeof *e);
}

void sf_delta_free(sf_delta *d) {
    if (!d) return;
    for (int i = 0; i < d->n; i++) entry_free(&d->e[i]);
    free(d->e);
    for (int i = 0; i < d->n_extra; i++) {
        free(d->extra_keys[i]);
        free(d->extra_values[i]);
    }
    free(d->extra_keys);
    free(d->extra_values);
    free(d->policy);
    free(d);
}

sf_delta *sf_delta_new(const char *policy, double rate, int64_t step, uint64_t seed) {
    sf_delta *d = calloc(1, sizeof *d);
    if (!d) return sf_fail_null(SF_ERR_NOMEM, "delta: out of memory");
    d->policy = xstrdup(policy ? policy : "");
    if (!d->policy) {
        free(d);
        return sf_fail_null(SF_ERR_NOMEM, "delta: out of memory");
    }
    d->rate = rate;
    d->step = step;
    d->seed = seed;
    return d;
}

const sf_delta_entry *sf_delta_find(const sf_delta *d, const char *name) {
    for (int i = 0; d && name && i < d->n; i++)
        if (strcmp(d->e[i].name, name) == 0) return &d->e[i];
    return NULL;
}

/* A new zeroed entry named `name` at the end (NULL + error on a duplicate name or no memory). */
static sf_delta_entry *push_entry(sf_delta *d, const char *name) {
    if (!name || !*name) return sf_fail_null(SF_ERR_ARG, "delta: empty tensor name");
    if (sf_delta_find(d, name)) return sf_fail_null(SF_ERR_ARG, "delta: tensor %s appears twice", name);
    sf_delta_entry *e = realloc(d->e, (size_t)(d->n + 1) * sizeof *e);
    if (!e) return sf_fail_null(SF_ERR_NOMEM, "delta: out of memory");
    d->e = e;
    e = &d->e[d->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(name))) return sf_fail_null(SF_ERR_NOMEM, "delta: out of memory");
    d->n++;
    return e;
}

static void pop_entry(sf_delta *d) {
    entry_free(&d->e[d->n - 1]);
    d->n--;
}

/* The number of elements of a shape, or -1 for a bad rank or shape. */
static int64_t shape_numel(int ndim, const int64_t *shape) {
    return ndim >= 1 && ndim <= SF_MAX_DIMS ? sf_shape_numel(ndim, shape) : -1;
}

/* Sparse entry without validation of the hash (hash may be NULL: filled in later). Takes ownership of
 * idx (k offsets, as wide as the tensor's numel needs), which the entry keeps or which is freed on
 * failure; copies values. */
static sf_status add_sparse_owned(sf_delta *d, const char *name, int ndim, const int64_t *shape, int64_t k,
                                  sf_index_array idx, const float *values, const char *hash) {
    sf_status st = SF_OK;
    int64_t numel = shape_numel(ndim, shape);
    char where[300];
    snprintf(where, sizeof where, "delta: %s", name ? name : "?");
    sf_delta_entry *e = NULL;
    if (ndim < 1 || ndim > SF_MAX_DIMS)
        st = sf_fail(SF_ERR_ARG, "delta: %s: rank %d outside 1..%d", name ? name : "?", ndim, SF_MAX_DIMS);
    else if (numel < 0)
        st = sf_fail(SF_ERR_ARG, "delta: %s: bad shape (%s)", name ? name : "?", sf_last_error());
    else if (k < 0)
        st = sf_fail(SF_ERR_ARG, "delta: %s: negative k", name ? name : "?");
    else if (idx.wide != sf_index_needs_wide(numel))
        st = sf_fail(SF_ERR_ARG, "delta: %s: index width does not fit %" PRId64 " elements", name ? name : "?", numel);
    else if ((st = check_indices(idx, k, numel, where)) == SF_OK && !(e = push_entry(d, name)))
        st = sf_last_status();
    if (st != SF_OK) {
        sf_index_free(&idx);
        return st;
    }
    e->ndim = ndim;
    memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    e->numel = numel;
    e->k = k;
    e->idx = idx;
    e->values = malloc((size_t)(k ? k : 1) * sizeof *e->values);
    if (!e->values) {
        pop_entry(d); /* frees e->idx */
        return sf_fail(SF_ERR_NOMEM, "delta: out of memory for %" PRId64 " values of %s", k, name);
    }
    if (values)
        memcpy(e->values, values, (size_t)k * sizeof *values);
    else
        memset(e->values, 0, (size_t)k * sizeof *values);
    if (hash) {
        for (int i = 0; i < 64; i++) e->base_sha256[i] = (char)((hash[i] >= 'A' && hash[i] <= 'F') ? hash[i] + 32 : hash[i]);
        e->base_sha256[64] = '\0';
    }
    return SF_OK;
}

/* The same from borrowed int64 offsets (narrowed to the tensor's width; an offset that does not fit is
 * reported as out of range). */
static sf_status add_sparse_raw(sf_delta *d, const char *name, int ndim, const int64_t *shape, int64_t k,
                                const int64_t *idx, const float *values, const char *hash) {
    const int64_t numel = shape_numel(ndim, shape);
    sf_index_array copy = sf_index_alloc(k, numel); /* (k) */
    if (!copy.data) return sf_fail(SF_ERR_NOMEM, "delta: out of memory for %" PRId64 " indices of %s", k, name ? name : "?");
    char where[300];
    snprintf(where, sizeof where, "delta: %s", name ? name : "?");
    for (int64_t j = 0; j < k; j++) {
        if (!copy.wide && (idx[j] < 0 || idx[j] > INT32_MAX)) {
            sf_index_free(&copy);
            return index_out_of_range(idx[j], j, numel, where);
        }
        sf_index_set(copy, j, idx[j]);
    }
    return add_sparse_owned(d, name, ndim, shape, k, copy, values, hash);
}

/* The same from a borrowed index array (copied as it is). */
static sf_status add_sparse_copy(sf_delta *d, const char *name, int ndim, const int64_t *shape, int64_t k,
                                 sf_index_array idx, const float *values, const char *hash) {
    sf_index_array copy = {malloc((size_t)(k > 0 ? k : 1) * sf_index_elem_bytes(idx.wide)), idx.wide}; /* (k) */
    if (!copy.data) return sf_fail(SF_ERR_NOMEM, "delta: out of memory for %" PRId64 " indices of %s", k, name ? name : "?");
    if (k > 0) memcpy(copy.data, idx.data, (size_t)k * sf_index_elem_bytes(idx.wide));
    return add_sparse_owned(d, name, ndim, shape, k, copy, values, hash);
}

sf_status sf_delta_add_sparse(sf_delta *d, const char *name, int ndim, const int64_t *shape, int64_t k,
                              const int64_t *idx, const float *values, const char *base_sha256) {
    if (!d || !shape || (k > 0 && (!idx || !values))) return sf_fail(SF_ERR_ARG, "delta_add_sparse: NULL argument");
    if (!sf_sha256_is_hex(base_sha256))
        return sf_fail(SF_ERR_ARG, "delta: %s: base SHA-256 must be 64 hex digits", name ? name : "?");
    return add_sparse_raw(d, name, ndim, shape, k, idx, values, base_sha256);
}

sf_status sf_delta_add_dense(sf_delta *d, const char *name, const sf_tensor *t) {
    if (!d || !t) return sf_fail(SF_ERR_ARG, "delta_add_dense: NULL argument");
    if (name && strchr(name, ','))
        return sf_fail(SF_ERR_ARG, "delta: dense tensor name '%s' contains a comma (the file lists dense names comma-separated)", name);
    if (t->ndim < 0 || t->ndim > SF_MAX_DIMS) return sf_fail(SF_ERR_ARG, "delta: %s: bad rank", name ? name : "?");
    sf_tensor *copy = sf_tensor_to_f32(t);
    if (!copy) return sf_last_status();
    sf_delta_entry *e = push_entry(d, name);
    if (!e) {
        sf_tensor_release(copy);
        return sf_last_status();
    }
    e->dense = 1;
    e->ndim = t->ndim;
    memcpy(e->shape, t->shape, sizeof e->shape);
    e->numel = sf_tensor_numel(t);
    e->k = e->numel;
    e->tensor = copy;
    return SF_OK;
}

static int is_reserved_key(const char *key) {
    static const char *const fixed[] = {"format", "policy", "rate", "step", "seed", "dense"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (strcmp(key, fixed[i]) == 0) return 1;
    return strncmp(key, "shape.", 6) == 0 || strncmp(key, "sha256.", 7) == 0;
}

static sf_status set_extra(sf_delta *d, const char *key, const char *value) {
    for (int i = 0; i < d->n_extra; i++)
        if (strcmp(d->extra_keys[i], key) == 0) {
            char *v = strdup(value);
            if (!v) return sf_fail(SF_ERR_NOMEM, "delta: out of memory");
            free(d->extra_values[i]);
            d->extra_values[i] = v;
            return SF_OK;
        }
    char **k = realloc(d->extra_keys, (size_t)(d->n_extra + 1) * sizeof *k);
    if (k) d->extra_keys = k;
    char **v = realloc(d->extra_values, (size_t)(d->n_extra + 1) * sizeof *v);
    if (v) d->extra_values = v;
    if (!k || !v) return sf_fail(SF_ERR_NOMEM, "delta: out of memory");
    char *ks = strdup(key), *vs = strdup(value);
    if (!ks || !vs) {
        free(ks);
        free(vs);
        return sf_fail(SF_ERR_NOMEM, "delta: out of memory");
    }
    d->extra_keys[d->n_extra] = ks;
    d->extra_values[d->n_extra] = vs;
    d->n_extra++;
    return SF_OK;
}

sf_status sf_delta_set_extra(sf_delta *d, const char *key, const char *value) {
    if (!d || !key || !*key || !value) return sf_fail(SF_ERR_ARG, "delta: extra metadata needs a non-empty key and a value");
    if (is_reserved_key(key))
        return sf_fail(SF_ERR_ARG,
                       "delta: metadata key '%s' is reserved (format, policy, rate, step, seed, dense, shape.*, sha256.*)", key);
    return set_extra(d, key, value);
}

const char *sf_delta_get_extra(const sf_delta *d, const char *key) {
    for (int i = 0; d && key && i < d->n_extra; i++)
        if (strcmp(d->extra_keys[i], key) == 0) return d->extra_values[i];
    return NULL;
}

int sf_delta_n_sparse(const sf_delta *d) {
    int n = 0;
    for (int i = 0; d && i < d->n; i++) n += !d->e[i].dense;
    return n;
}

int sf_delta_n_dense(const sf_delta *d) {
    int n = 0;
    for (int i = 0; d && i < d->n; i++) n += d->e[i].dense;
    return n;
}

int64_t sf_delta_n_values(const sf_delta *d) {
    int64_t n = 0;
    for (int i = 0; d && i < d->n; i++) n += d->e[i].dense ? 0 : d->e[i].k;
    return n;
}

/* ---- from a sparse set ---------------------------------------------------------------------------- */
sf_delta *sf_delta_from_sparse(const sf_sparse_set *s, sf_tensor *const *dense, const char *const *dense_names,
                               int n_dense, const char *policy_name) {
    if (!s) return sf_fail_null(SF_ERR_ARG, "delta: no sparse set");
    if (n_dense < 0 || (n_dense > 0 && (!dense || !dense_names)))
        return sf_fail_null(SF_ERR_ARG, "delta: dense tensors given without names");
    if (s->calibrating) return sf_fail_null(SF_ERR_STATE, "delta: the sparse set has not finished its selection");
    for (int i = 0; i < s->n; i++) {
        const sf_sparse_target *t = &s->t[i];
        if (!t->selected || !t->idx.data)
            return sf_fail_null(SF_ERR_STATE, "delta: target %s has no indices yet (run the selection first)", t->name);
        if (t->w->dtype != SF_F32) return sf_fail_null(SF_ERR_ARG, "delta: target %s is not f32", t->name);
    }
    sf_delta *d = sf_delta_new(policy_name ? policy_name : sf_delta_policy_name(s->policy), s->rate, s->step, s->seed);
    if (!d) return NULL;
    for (int i = 0; i < s->n; i++) {
        const sf_sparse_target *t = &s->t[i];
        /* the set's offsets as they are (same width rule: the numel of the same tensor) */
        sf_status st = add_sparse_copy(d, t->name, t->w->ndim, t->w->shape, t->k, t->idx, t->delta, NULL);
        if (st != SF_OK) {
            sf_delta_free(d);
            return NULL;
        }
    }
    /* base hashes: the weight with w0 at idx (tensors in parallel, each hashed sequentially) */
    #pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < s->n; i++) {
        const sf_sparse_target *t = &s->t[i];
        hash_patched(sf_f32(t->w), t->numel, d->e[i].idx, t->w0, t->k, d->e[i].base_sha256);
    }
    for (int i = 0; i < n_dense; i++) {
        if (!dense[i]) {
            sf_delta_free(d);
            return sf_fail_null(SF_ERR_ARG, "delta: dense tensor %s is NULL", dense_names[i] ? dense_names[i] : "?");
        }
        if (sf_delta_add_dense(d, dense_names[i], dense[i]) != SF_OK) {
            sf_delta_free(d);
            return NULL;
        }
    }
    return d;
}

/* ---- save ------------------------------------------------------------------------------------------ */
sf_status sf_delta_save(const sf_delta *d, const char *path) {
    if (!d || !path) return sf_fail(SF_ERR_ARG, "delta save: NULL delta or path");
    int n_sparse = sf_delta_n_sparse(d), n_dense = sf_delta_n_dense(d);
    int nt = 2 * n_sparse + n_dense, nm = 6 + 2 * n_sparse + d->n_extra;
    char **names = calloc((size_t)nt + 1, sizeof *names);
    sf_tensor **tensors = calloc((size_t)nt + 1, sizeof *tensors);
    char **keys = calloc((size_t)nm + 1, sizeof *keys), **vals = calloc((size_t)nm + 1, sizeof *vals);
    char *dense_list = NULL;
    sf_status st = SF_OK;
    if (!names || !tensors || !keys || !vals) {
        st = sf_fail(SF_ERR_NOMEM, "cannot write %s: out of memory", path);
        goto done;
    }
    /* dense list */
    size_t dl = 1;
    for (int i = 0; i < d->n; i++)
        if (d->e[i].dense) dl += strlen(d->e[i].name) + 1;
    if (!(dense_list = malloc(dl))) {
        st = sf_fail(SF_ERR_NOMEM, "cannot write %s: out of memory", path);
        goto done;
    }
    dense_list[0] = '\0';
    for (int i = 0, first = 1; i < d->n; i++)
        if (d->e[i].dense) {
            if (!first) strcat(dense_list, ",");
            strcat(dense_list, d->e[i].name);
            first = 0;
        }
    char rate[40], step[32], seed[32];
    format_double(d->rate, rate, sizeof rate);
    snprintf(step, sizeof step, "%" PRId64, d->step);
    snprintf(seed, sizeof seed, "%" PRIu64, d->seed);
    const char *fixed_k[6] = {"format", "policy", "rate", "step", "seed", "dense"};
    const char *fixed_v[6] = {SF_DELTA_FORMAT, d->policy ? d->policy : "", rate, step, seed, dense_list};
    int m = 0;
    for (; m < 6; m++) {
        keys[m] = strdup(fixed_k[m]);
        vals[m] = strdup(fixed_v[m]);
        if (!keys[m] || !vals[m]) {
            st = sf_fail(SF_ERR_NOMEM, "cannot write %s: out of memory", path);
            goto done;
        }
    }
    int t = 0;
    for (int i = 0; i < d->n; i++) {
        const sf_delta_entry *e = &d->e[i];
        if (e->dense) continue;
        char where[400];
        snprintf(where, sizeof where, "cannot write %s: tensor %s", path, e->name);
        if ((st = check_indices(e->idx, e->k, e->numel, where)) != SF_OK) goto done;
        char sh[200];
        size_t used = 0;
        sh[0] = '\0';
        for (int a = 0; a < e->ndim; a++)
            used += (size_t)snprintf(sh + used, sizeof sh - used, a ? ",%" PRId64 : "%" PRId64, e->shape[a]);
        size_t ln = strlen(e->name) + 16;
        keys[m] = malloc(ln);
        vals[m] = strdup(sh);
        keys[m + 1] = malloc(ln);
        vals[m + 1] = strdup(e->base_sha256);
        names[t] = malloc(ln);
        names[t + 1] = malloc(ln);
        int64_t kshape[1] = {e->k};
        int wide = e->numel >= ((int64_t)1 << 31);
        tensors[t] = sf_tensor_new(wide ? SF_I64 : SF_I32, 1, kshape);
        tensors[t + 1] = sf_tensor_new(SF_F32, 1, kshape);
        if (!keys[m] || !vals[m] || !keys[m + 1] || !vals[m + 1] || !names[t] || !names[t + 1] || !tensors[t] ||
            !tensors[t + 1]) {
            st = sf_fail(SF_ERR_NOMEM, "cannot write %s: out of memory", path);
            goto done;
        }
        snprintf(keys[m], ln, "shape.%s", e->name);
        snprintf(keys[m + 1], ln, "sha256.%s", e->name);
        snprintf(names[t], ln, "%s.indices", e->name);
        snprintf(names[t + 1], ln, "%s.values", e->name);
        for (int64_t j = 0; j < e->k; j++) { /* the file's width: the same rule as in memory */
            if (wide) ((int64_t *)sf_tensor_data(tensors[t]))[j] = sf_index_get(e->idx, j);
            else ((int32_t *)sf_tensor_data(tensors[t]))[j] = (int32_t)sf_index_get(e->idx, j);
        }
        memcpy(sf_f32(tensors[t + 1]), e->values, (size_t)e->k * sizeof(float));
        m += 2;
        t += 2;
    }
    for (int i = 0; i < d->n; i++) {
        const sf_delta_entry *e = &d->e[i];
        if (!e->dense) continue;
        if (!(names[t] = strdup(e->name))) {
            st = sf_fail(SF_ERR_NOMEM, "cannot write %s: out of memory", path);
            goto done;
        }
        tensors[t] = e->tensor;
        sf_tensor_retain(e->tensor);
        t++;
    }
    for (int i = 0; i < d->n_extra; i++, m++) {
        if (is_reserved_key(d->extra_keys[i])) {
            st = sf_fail(SF_ERR_ARG, "cannot write %s: extra metadata key '%s' is reserved", path, d->extra_keys[i]);
            goto done;
        }
        keys[m] = strdup(d->extra_keys[i]);
        vals[m] = strdup(d->extra_values[i]);
        if (!keys[m] || !vals[m]) {
            st = sf_fail(SF_ERR_NOMEM, "cannot write %s: out of memory", path);
            goto done;
        }
    }
    st = sf_st_save(path, nt, (const char *const *)names, tensors, nm, (const char *const *)keys,
                    (const char *const *)vals);
done:
    for (int i = 0; names && tensors && i < nt; i++) {
        free(names[i]);
        sf_tensor_release(tensors[i]);
    }
    for (int i = 0; keys && vals && i < nm; i++) {
        free(keys[i]);
        free(vals[i]);
    }
    free(names);
    free(tensors);
    free(keys);
    free(vals);
    free(dense_list);
    return st;
}

/* ---- load ------------------------------------------------------------------------------------------ */
/* "d0,d1,..." -> shape; 0 on success, -1 on garbage. */
static int parse_shape(const char *s, int *ndim, int64_t *shape) {
    int nd = 0;
    const char *p = s;
    if (!*p) return -1;
    for (;;) {
        if (nd == SF_MAX_DIMS) return -1;
        if (*p < '0' || *p > '9') return -1;
        int64_t v = 0;
        while (*p >= '0' && *p <= '9') {
            if (v > ((int64_t)1 << 53)) return -1;
            v = v * 10 + (*p++ - '0');
        }
        shape[nd++] = v;
        if (*p == '\0') break;
        if (*p++ != ',') return -1;
    }
    int64_t n = 1;
    for (int i = 0; i < nd; i++)
        if (sf_mul_overflow_i64(n, shape[i], &n)) return -1;
    *ndim = nd;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out) {
    if (!s || *s < '0' || *s > '9') return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = (uint64_t)v;
    return 0;
}

static int ends_with(const char *s, const char *suffix, size_t *prefix_len) {
    size_t n = strlen(s), m = strlen(suffix);
    if (n <= m || strcmp(s + n - m, suffix) != 0) return 0;
    *prefix_len = n - m;
    return 1;
}

/* Loads one sparse entry named `name` (shape metadata value `shape_s`) from f into d. */
static sf_status load_sparse(sf_st_file *f, sf_delta *d, const char *path, const char *name, const char *shape_s) {
    int ndim = 0;
    int64_t shape[SF_MAX_DIMS] = {0};
    if (parse_shape(shape_s, &ndim, shape))
        return sf_fail(SF_ERR_FORMAT, "%s: tensor '%s': shape metadata \"%.60s\" is not a comma-separated list of 1..%d non-negative integers",
                       path, name, shape_s, SF_MAX_DIMS);
    int64_t numel = sf_shape_numel(ndim, shape);
    size_t ln = strlen(name) + 16;
    char *key = malloc(ln), *iname = malloc(ln), *vname = malloc(ln);
    sf_tensor *it = NULL, *vt = NULL;
    sf_index_array idx = {NULL, 0};
    sf_status st = SF_OK;
    if (!key || !iname || !vname) {
        st = sf_fail(SF_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    snprintf(key, ln, "sha256.%s", name);
    snprintf(iname, ln, "%s.indices", name);
    snprintf(vname, ln, "%s.values", name);
    const char *hash = sf_st_metadata_get(f, key);
    if (!hash) {
        st = sf_fail(SF_ERR_FORMAT, "%s: tensor '%s' has no base hash (metadata '%s' missing)", path, name, key);
        goto done;
    }
    if (!sf_sha256_is_hex(hash)) {
        st = sf_fail(SF_ERR_FORMAT, "%s: tensor '%s': metadata '%s' is not 64 hex digits", path, name, key);
        goto done;
    }
    const sf_st_entry *ie = sf_st_find(f, iname), *ve = sf_st_find(f, vname);
    if (!ie || !ve) {
        st = sf_fail(SF_ERR_FORMAT, "%s: sparse tensor '%s' has no '%s' tensor", path, name, !ie ? iname : vname);
        goto done;
    }
    if (ie->ndim != 1 || (strcmp(ie->dtype_name, "I32") != 0 && strcmp(ie->dtype_name, "I64") != 0)) {
        st = sf_fail(SF_ERR_FORMAT, "%s: '%s' must be a 1-D I32 or I64 tensor (it is %s with %d dims)", path, iname,
                     ie->dtype_name, ie->ndim);
        goto done;
    }
    if (ve->ndim != 1 || strcmp(ve->dtype_name, "F32") != 0) {
        st = sf_fail(SF_ERR_FORMAT, "%s: '%s' must be a 1-D F32 tensor (it is %s with %d dims)", path, vname,
                     ve->dtype_name, ve->ndim);
        goto done;
    }
    if (ie->shape[0] != ve->shape[0]) {
        st = sf_fail(SF_ERR_FORMAT, "%s: tensor '%s': %" PRId64 " indices but %" PRId64 " values", path, name,
                     ie->shape[0], ve->shape[0]);
        goto done;
    }
    int64_t k = ie->shape[0];
    if (!(it = sf_st_load(f, iname)) || !(vt = sf_st_load(f, vname))) {
        st = sf_last_status();
        goto done;
    }
    char where[600];
    char sh[160];
    shape_text(ndim, shape, sh, sizeof sh);
    snprintf(where, sizeof where, "%s: '%s' (shape %s)", path, iname, sh);
    if (!(idx = sf_index_alloc(k, numel)).data) {
        st = sf_fail(SF_ERR_NOMEM, "%s: out of memory for the indices of '%s'", path, name);
        goto done;
    }
    if (k > numel) { /* reported as check_indices does, before any index */
        st = check_indices(idx, k, numel, where);
        goto done;
    }
    for (int64_t j = 0; j < k; j++) { /* into the width the tensor needs; what does not fit is out of range */
        const int64_t v = it->dtype == SF_I64 ? ((const int64_t *)sf_tensor_data(it))[j]
                                              : ((const int32_t *)sf_tensor_data(it))[j];
        if (v < 0 || v >= numel) {
            st = index_out_of_range(v, j, numel, where);
            goto done;
        }
        sf_index_set(idx, j, v);
    }
    if ((st = check_indices(idx, k, numel, where)) != SF_OK) goto done;
    const float *v = sf_f32(vt);
    for (int64_t j = 0; j < k; j++)
        if (!isfinite(v[j])) {
            st = sf_fail(SF_ERR_FORMAT, "%s: '%s': value %g at position %" PRId64 " is not finite", path, vname, v[j], j);
            goto done;
        }
    st = add_sparse_owned(d, name, ndim, shape, k, idx, v, hash); /* takes idx */
    idx.data = NULL;
    if (st) st = sf_fail(st, "%s: %s", path, sf_last_error());
done:
    free(key);
    free(iname);
    free(vname);
    sf_index_free(&idx);
    sf_tensor_release(it);
    sf_tensor_release(vt);
    return st;
}

sf_delta *sf_delta_load(const char *path) {
    if (!path) return sf_fail_null(SF_ERR_ARG, "load_delta: NULL path");
    sf_st_file *f = sf_st_open(path);
    if (!f) return NULL;
    sf_delta *d = NULL;
    char **dense = NULL;
    int n_dense = 0;
    const char *fmt = sf_st_metadata_get(f, "format");
    if (!fmt) {
        sf_fail(SF_ERR_FORMAT, "%s: not a SIFT delta (no \"format\" metadata; expected \"%s\")", path, SF_DELTA_FORMAT);
        goto fail;
    }
    if (strcmp(fmt, SF_DELTA_FORMAT) != 0) {
        sf_fail(SF_ERR_FORMAT, "%s: format \"%.40s\" is not \"%s\"", path, fmt, SF_DELTA_FORMAT);
        goto fail;
    }
    const char *policy = sf_st_metadata_get(f, "policy"), *rate_s = sf_st_metadata_get(f, "rate");
    const char *step_s = sf_st_metadata_get(f, "step"), *seed_s = sf_st_metadata_get(f, "seed");
    const char *dense_s = sf_st_metadata_get(f, "dense");
    const char *missing = !policy ? "policy" : !rate_s ? "rate" : !step_s ? "step" : !seed_s ? "seed" : NULL;
    if (missing) {
        sf_fail(SF_ERR_FORMAT, "%s: metadata \"%s\" is missing", path, missing);
        goto fail;
    }
    char *end = NULL;
    errno = 0;
    double rate = strtod(rate_s, &end);
    if (!*rate_s || *end || errno || !(rate >= 0 && rate <= 1)) {
        sf_fail(SF_ERR_FORMAT, "%s: metadata rate \"%.40s\" is not a number in [0, 1]", path, rate_s);
        goto fail;
    }
    uint64_t step = 0, seed = 0;
    if (parse_u64(step_s, &step) || step > (uint64_t)INT64_MAX) {
        sf_fail(SF_ERR_FORMAT, "%s: metadata step \"%.40s\" is not a non-negative integer", path, step_s);
        goto fail;
    }
    if (parse_u64(seed_s, &seed)) {
        sf_fail(SF_ERR_FORMAT, "%s: metadata seed \"%.40s\" is not an unsigned 64-bit integer", path, seed_s);
        goto fail;
    }
    if (!(d = sf_delta_new(policy, rate, (int64_t)step, seed))) goto fail;
    /* sparse entries in metadata order; extras */
    for (int i = 0; i < sf_st_metadata_count(f); i++) {
        const char *key = sf_st_metadata_key(f, i), *val = sf_st_metadata_value(f, i);
        if (strncmp(key, "shape.", 6) == 0) {
            if (!key[6]) {
                sf_fail(SF_ERR_FORMAT, "%s: metadata key 'shape.' names no tensor", path);
                goto fail;
            }
            if (load_sparse(f, d, path, key + 6, val) != SF_OK) goto fail;
        } else if (strncmp(key, "sha256.", 7) == 0) {
            char sk[1024];
            snprintf(sk, sizeof sk, "shape.%s", key + 7);
            if (!sf_st_metadata_get(f, sk)) {
                sf_fail(SF_ERR_FORMAT, "%s: metadata '%s' has no matching 'shape.%s'", path, key, key + 7);
                goto fail;
            }
        } else if (!is_reserved_key(key)) {
            if (set_extra(d, key, val) != SF_OK) goto fail;
        }
    }
    /* dense entries */
    if (dense_s && *dense_s) {
        const char *p = dense_s;
        for (;;) {
            const char *c = strchr(p, ',');
            size_t len = c ? (size_t)(c - p) : strlen(p);
            char **nd = realloc(dense, (size_t)(n_dense + 1) * sizeof *nd);
            if (!nd) {
                sf_fail(SF_ERR_NOMEM, "%s: out of memory", path);
                goto fail;
            }
            dense = nd;
            if (!(dense[n_dense] = strndup(p, len))) {
                sf_fail(SF_ERR_NOMEM, "%s: out of memory", path);
                goto fail;
            }
            n_dense++;
            if (!c) break;
            p = c + 1;
        }
    }
    for (int i = 0; i < n_dense; i++) {
        const char *nm = dense[i];
        if (!*nm) {
            sf_fail(SF_ERR_FORMAT, "%s: metadata \"dense\" holds an empty name", path);
            goto fail;
        }
        if (sf_delta_find(d, nm)) {
            sf_fail(SF_ERR_FORMAT, "%s: tensor '%s' is listed both as dense and as sparse", path, nm);
            goto fail;
        }
        size_t pl = 0;
        if (ends_with(nm, ".indices", &pl) || ends_with(nm, ".values", &pl)) {
            char sk[1024];
            snprintf(sk, sizeof sk, "shape.%.*s", (int)pl, nm);
            if (sf_st_metadata_get(f, sk)) {
                sf_fail(SF_ERR_FORMAT, "%s: dense tensor '%s' is also a tensor of the sparse entry '%.*s'", path, nm, (int)pl, nm);
                goto fail;
            }
        }
        const sf_st_entry *e = sf_st_find(f, nm);
        if (!e) {
            sf_fail(SF_ERR_FORMAT, "%s: dense tensor '%s' (listed in metadata \"dense\") is not in the file", path, nm);
            goto fail;
        }
        if (strcmp(e->dtype_name, "F32") != 0) {
            sf_fail(SF_ERR_FORMAT, "%s: dense tensor '%s' is %s, expected F32", path, nm, e->dtype_name);
            goto fail;
        }
        sf_tensor *t = sf_st_load(f, nm);
        if (!t) goto fail;
        const float *v = sf_f32(t);
        const int64_t nv = sf_tensor_numel(t);
        for (int64_t j = 0; j < nv; j++)
            if (!isfinite(v[j])) {
                sf_tensor_release(t);
                sf_fail(SF_ERR_FORMAT, "%s: dense tensor '%s': value at position %" PRId64 " is not finite", path, nm, j);
                goto fail;
            }
        sf_status st = sf_delta_add_dense(d, nm, t);
        sf_tensor_release(t);
        if (st) {
            sf_fail(st, "%s: %s", path, sf_last_error());
            goto fail;
        }
    }
    /* every tensor in the file belongs to an entry */
    for (int i = 0; i < sf_st_count(f); i++) {
        const char *nm = sf_st_entry_at(f, i)->name;
        const sf_delta_entry *e = sf_delta_find(d, nm);
        if (e && e->dense) continue;
        size_t pl = 0;
        int ok = 0;
        if (ends_with(nm, ".indices", &pl) || ends_with(nm, ".values", &pl)) {
            char *base = strndup(nm, pl);
            if (!base) {
                sf_fail(SF_ERR_NOMEM, "%s: out of memory", path);
                goto fail;
            }
            const sf_delta_entry *s = sf_delta_find(d, base);
            ok = s && !s->dense;
            free(base);
        }
        if (!ok) {
            sf_fail(SF_ERR_FORMAT,
                    "%s: unknown tensor '%s' (neither <name>.indices / <name>.values of a sparse entry with "
                    "'shape.<name>' metadata nor listed in \"dense\")",
                    path, nm);
            goto fail;
        }
    }
    for (int i = 0; i < n_dense; i++) free(dense[i]);
    free(dense);
    sf_st_close(f);
    return d;
fail:
    for (int i = 0; i < n_dense; i++) free(dense[i]);
    free(dense);
    sf_delta_free(d);
    sf_st_close(f);
    return NULL;
}

/* ---- check / apply / unapply --------------------------------------------------------------------- */
enum { FIT_OK = 0, FIT_MISSING, FIT_DTYPE, FIT_SHAPE, FIT_INDICES, FIT_ALIAS, FIT_HASH };

sf_status sf_delta_check(const sf_delta *d, const sf_model *m) {
    if (!d || !m) return sf_fail(SF_ERR_ARG, "delta check: NULL delta or model");
    int *why = calloc((size_t)d->n + 1, sizeof *why);
    sf_tensor **p = calloc((size_t)d->n + 1, sizeof *p);
    char (*hex)[65] = calloc((size_t)d->n + 1, sizeof *hex);
    if (!why || !p || !hex) {
        free(why);
        free(p);
        free(hex);
        return sf_fail(SF_ERR_NOMEM, "delta check: out of memory");
    }
    for (int i = 0; i < d->n; i++) {
        const sf_delta_entry *e = &d->e[i];
        p[i] = sf_model_param(m, e->name);
        if (!p[i]) why[i] = FIT_MISSING;
        else if (p[i]->dtype != SF_F32) why[i] = FIT_DTYPE;
        else if (p[i]->ndim != e->ndim || memcmp(p[i]->shape, e->shape, (size_t)e->ndim * sizeof *e->shape) != 0 ||
                 e->numel != sf_tensor_numel(p[i]) || (e->dense && sf_tensor_numel(e->tensor) != e->numel))
            why[i] = FIT_SHAPE;
        else if (!e->dense && check_indices(e->idx, e->k, sf_tensor_numel(p[i]), e->name) != SF_OK) why[i] = FIT_INDICES;
        for (int j = 0; j < i && !why[i]; j++)
            if (p[j] == p[i]) why[i] = FIT_ALIAS;
    }
    #pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < d->n; i++) {
        const sf_delta_entry *e = &d->e[i];
        if (why[i] || e->dense) continue;
        int applied_here = d->applied && e->target == p[i] && e->orig;
        hash_patched(sf_f32(p[i]), sf_tensor_numel(p[i]), e->idx, applied_here ? e->orig : NULL, e->k, hex[i]);
        if (strcmp(hex[i], e->base_sha256) != 0) why[i] = FIT_HASH;
    }
    problem_list pl = {0};
    for (int i = 0; i < d->n; i++) {
        const sf_delta_entry *e = &d->e[i];
        char a[160], b[160];
        switch (why[i]) {
        case FIT_MISSING: problem_add(&pl, e->name, "not in the model"); break;
        case FIT_DTYPE: problem_add(&pl, e->name, "model tensor is %s, not f32", sf_dtype_name(p[i]->dtype)); break;
        case FIT_SHAPE:
            shape_text(e->ndim, e->shape, a, sizeof a);
            problem_add(&pl, e->name, "shape %s in the delta, %s in the model", a, sf_shape_str(p[i], b, sizeof b));
            break;
        case FIT_INDICES: problem_add(&pl, e->name, "indices not strictly ascending or out of range"); break;
        case FIT_ALIAS: problem_add(&pl, e->name, "the same model tensor as another entry"); break;
        case FIT_HASH: problem_add(&pl, e->name, "base SHA-256 differs"); break;
        default: break;
        }
    }
    free(why);
    free(p);
    free(hex);
    if (pl.n) return problem_fail(&pl, SF_ERR_ARG, "delta does not fit the model");
    return SF_OK;
}

sf_status sf_delta_apply(sf_delta *d, sf_model *m) {
    if (!d || !m) return sf_fail(SF_ERR_ARG, "delta apply: NULL delta or model");
    if (d->applied) return sf_fail(SF_ERR_STATE, "delta apply: the delta is already applied (unapply it first)");
    sf_status st = sf_delta_check(d, m);
    if (st) return st;
    /* every allocation first, so a failure writes nothing */
    for (int i = 0; i < d->n; i++) {
        sf_delta_entry *e = &d->e[i];
        if (e->dense) e->orig_dense = sf_tensor_clone(sf_model_param(m, e->name));
        else e->orig = malloc((size_t)(e->k ? e->k : 1) * sizeof *e->orig);
        if (e->dense ? !e->orig_dense : !e->orig) {
            for (int j = 0; j <= i; j++) entry_drop_applied(&d->e[j]);
            return sf_fail(SF_ERR_NOMEM, "delta apply: out of memory saving the original values of %s", e->name);
        }
    }
    for (int i = 0; i < d->n; i++) {
        sf_delta_entry *e = &d->e[i];
        sf_tensor *p = sf_model_param(m, e->name);
        if (e->dense) {
            memcpy(sf_f32(p), sf_f32(e->tensor), (size_t)e->numel * sizeof(float));
        } else {
            float *w = sf_f32(p); // (numel)
            for (int64_t j = 0; j < e->k; j++) {
                const int64_t x = sf_index_get(e->idx, j);
                e->orig[j] = w[x];
                w[x] = w[x] + e->values[j]; /* = w0 + delta, as in the trainer's write-back */
            }
        }
        sf_tensor_retain(p);
        e->target = p;
    }
    d->applied = 1;
    return SF_OK;
}

sf_status sf_delta_unapply(sf_delta *d, sf_model *m) {
    if (!d || !m) return sf_fail(SF_ERR_ARG, "delta unapply: NULL delta or model");
    if (!d->applied) return sf_fail(SF_ERR_STATE, "delta unapply: the delta is not applied");
    for (int i = 0; i < d->n; i++)
        if (sf_model_param(m, d->e[i].name) != d->e[i].target)
            return sf_fail(SF_ERR_STATE, "delta unapply: the delta was applied to another model (tensor %s differs)",
                           d->e[i].name);
    for (int i = 0; i < d->n; i++) {
        sf_delta_entry *e = &d->e[i];
        if (e->dense) {
            memcpy(sf_f32(e->target), sf_f32(e->orig_dense), (size_t)e->numel * sizeof(float));
        } else {
            float *w = sf_f32(e->target); // (numel)
            for (int64_t j = 0; j < e->k; j++) w[sf_index_get(e->idx, j)] = e->orig[j];
        }
        entry_drop_applied(e);
    }
    d->applied = 0;
    return SF_OK;
}

/* ---- composition --------------------------------------------------------------------------------- */
static sf_status copy_entry(sf_delta *r, const sf_delta_entry *e) {
    if (e->dense) return sf_delta_add_dense(r, e->name, e->tensor);
    return add_sparse_copy(r, e->name, e->ndim, e->shape, e->k, e->idx, e->values, e->base_sha256);
}

static sf_status copy_extras(sf_delta *r, const sf_delta *d) {
    for (int i = 0; i < d->n_extra; i++)
        if (!sf_delta_get_extra(r, d->extra_keys[i]) && set_extra(r, d->extra_keys[i], d->extra_values[i]) != SF_OK)
            return sf_last_status();
    return SF_OK;
}

sf_delta *sf_delta_clone(const sf_delta *d) {
    if (!d) return sf_fail_null(SF_ERR_ARG, "delta clone: NULL delta");
    sf_delta *r = sf_delta_new(d->policy, d->rate, d->step, d->seed);
    if (!r) return NULL;
    for (int i = 0; i < d->n; i++)
        if (copy_entry(r, &d->e[i]) != SF_OK) {
            sf_delta_free(r);
            return NULL;
        }
    if (copy_extras(r, d) != SF_OK) {
        sf_delta_free(r);
        return NULL;
    }
    return r;
}

/* Union of two sparse entries with the same name/shape into r; adds the common count to *coll. */
static sf_status merge_sparse(sf_delta *r, const sf_delta_entry *a, const sf_delta_entry *b, int64_t *coll) {
#define AI(i) sf_index_get(a->idx, i)
#define BI(j) sf_index_get(b->idx, j)
    int64_t common = 0;
    for (int64_t i = 0, j = 0; i < a->k && j < b->k;) {
        if (AI(i) == BI(j)) common++, i++, j++;
        else if (AI(i) < BI(j)) i++;
        else j++;
    }
    int64_t k = a->k + b->k - common;
    sf_index_array idx = sf_index_alloc(k, a->numel); /* (k) the union, as wide as a's tensor needs */
    float *val = malloc((size_t)(k ? k : 1) * sizeof *val);
    if (!idx.data || !val) {
        sf_index_free(&idx);
        free(val);
        return sf_fail(SF_ERR_NOMEM, "delta add: out of memory for %s", a->name);
    }
    int64_t i = 0, j = 0, o = 0;
    while (i < a->k || j < b->k) {
        if (j >= b->k || (i < a->k && AI(i) < BI(j))) {
            sf_index_set(idx, o, AI(i));
            val[o++] = a->values[i++];
        } else if (i >= a->k || BI(j) < AI(i)) {
            sf_index_set(idx, o, BI(j));
            val[o++] = b->values[j++];
        } else {
            sf_index_set(idx, o, AI(i));
            val[o++] = a->values[i++] + b->values[j++];
        }
    }
#undef AI
#undef BI
    sf_status st = add_sparse_owned(r, a->name, a->ndim, a->shape, k, idx, val, a->base_sha256); /* takes idx */
    free(val);
    *coll += common;
    return st;
}

sf_delta *sf_delta_add(const sf_delta *a, const sf_delta *b, int64_t *collisions) {
    if (!a || !b) return sf_fail_null(SF_ERR_ARG, "delta add: NULL delta");
    problem_list pl = {0};
    for (int i = 0; i < a->n; i++) {
        const sf_delta_entry *ea = &a->e[i], *eb = sf_delta_find(b, ea->name);
        if (!eb) continue;
        char sa[160], sb[160];
        if (ea->dense && eb->dense) problem_add(&pl, ea->name, "dense in both deltas");
        else if (ea->dense != eb->dense) problem_add(&pl, ea->name, "sparse in one delta, dense in the other");
        else if (ea->ndim != eb->ndim || memcmp(ea->shape, eb->shape, (size_t)ea->ndim * sizeof *ea->shape) != 0) {
            shape_text(ea->ndim, ea->shape, sa, sizeof sa);
            shape_text(eb->ndim, eb->shape, sb, sizeof sb);
            problem_add(&pl, ea->name, "shape %s vs %s", sa, sb);
        } else if (strcmp(ea->base_sha256, eb->base_sha256) != 0) {
            problem_add(&pl, ea->name, "base SHA-256 differs");
        }
    }
    if (pl.n) {
        problem_fail(&pl, SF_ERR_ARG, "cannot add the deltas");
        return NULL;
    }
    size_t pn = strlen(a->policy) + strlen(b->policy) + 2;
    char *pol = malloc(pn);
    if (!pol) return sf_fail_null(SF_ERR_NOMEM, "delta add: out of memory");
    snprintf(pol, pn, "%s+%s", a->policy, b->policy);
    sf_delta *r = sf_delta_new(pol, 0, a->step > b->step ? a->step : b->step, a->seed);
    free(pol);
    if (!r) return NULL;
    int64_t coll = 0;
    sf_status st = SF_OK;
    for (int i = 0; i < a->n && st == SF_OK; i++) {
        const sf_delta_entry *ea = &a->e[i], *eb = sf_delta_find(b, ea->name);
        st = eb ? merge_sparse(r, ea, eb, &coll) : copy_entry(r, ea);
    }
    for (int i = 0; i < b->n && st == SF_OK; i++)
        if (!sf_delta_find(a, b->e[i].name)) st = copy_entry(r, &b->e[i]);
    if (st == SF_OK) st = copy_extras(r, a);
    if (st == SF_OK) st = copy_extras(r, b);
    if (st) {
        sf_delta_free(r);
        return NULL;
    }
    double kv = 0, nv = 0;
    for (int i = 0; i < r->n; i++)
        if (!r->e[i].dense) {
            kv += (double)r->e[i].k;
            nv += (double)r->e[i].numel;
        }
    r->rate = nv > 0 ? kv / nv : 0;
    if (collisions) *collisions = coll;
    return r;
}

sf_delta *sf_delta_scale(const sf_delta *d, double factor) {
    if (!d) return sf_fail_null(SF_ERR_ARG, "delta scale: NULL delta");
    if (!isfinite(factor)) return sf_fail_null(SF_ERR_ARG, "delta scale: factor %g is not finite", factor);
    sf_delta *r = sf_delta_clone(d);
    if (!r) return NULL;
    for (int i = 0; i < r->n; i++) {
        sf_delta_entry *e = &r->e[i];
        if (e->dense) continue;
        for (int64_t j = 0; j < e->k; j++) e->values[j] = (float)((double)e->values[j] * factor);
        for (int64_t j = 0; j < e->k; j++)
            if (!isfinite(e->values[j])) {
                sf_fail(SF_ERR_NUMERIC, "delta scale: %g * the value at index %" PRId64 " of %s overflows float", factor,
                        sf_index_get(d->e[i].idx, j), d->e[i].name);
                sf_delta_free(r);
                return NULL;
            }
    }
    const char *old = sf_delta_get_extra(r, "scale");
    double s = old ? strtod(old, NULL) : 1.0;
    char buf[40];
    format_double(s * factor, buf, sizeof buf);
    if (set_extra(r, "scale", buf) != SF_OK) {
        sf_delta_free(r);
        return NULL;
    }
    return r;
}
