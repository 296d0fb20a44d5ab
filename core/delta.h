/* delta.h — SIFT deltas: the trained sparse increments (and dense head replacements) of a fine-tuning
 * run, as a standalone object and file, applied to / removed from a model bit-exactly.
 *
 * A delta holds entries, each either
 *   sparse: {name, shape, k, idx (k, strictly ascending flat row-major offsets), values (k, the
 *            increments), base_sha256 (hex SHA-256 of the base tensor's f32 bytes)}, or
 *   dense:  {name, tensor (f32, the full replacement values, e.g. a trained classification head)},
 * and metadata: policy, rate, step, seed and free-form extra key/values.
 *
 * File (safetensors, written atomically): per sparse entry "<name>.indices" (I32 when the tensor has
 * fewer than 2^31 elements, else I64) and "<name>.values" (F32); per dense entry "<name>" (F32).
 * __metadata__: "format" = "sift-delta/1", "policy", "rate" (%.17g), "step", "seed" (decimal),
 * "dense" (comma-separated dense names, "" if none), per sparse entry "shape.<name>" = "d0,d1,..." and
 * "sha256.<name>" = 64 hex digits, plus the extras (any other key).
 *
 * Apply: W[idx] = W[idx] + values, the same float addition as the trainer's write-back w0 + delta,
 * so a model with the base weights reproduces the fine-tuned weights (and logits) bit for bit. The
 * original values (sparse: W[idx]; dense: the whole tensor) are kept inside the delta until unapply
 * restores them bit-exactly. Before anything is written the delta is checked against the model (names,
 * shapes, base hashes, indices sorted and in range); every failure lists every offending tensor.
 *
 * What it does not do: know about Lua; stack deltas (a second delta on the same tensors no longer sees
 * its base, so check refuses it — compose with sf_delta_add instead); restore a model when an applied
 * delta is freed (the originals go with it); hash dense entries (a dense head replaces the tensor
 * whatever it held).
 */
#ifndef SF_DELTA_H
#define SF_DELTA_H

#include "model.h"
#include "sift.h"

#define SF_DELTA_FORMAT "sift-delta/1"

typedef struct {
    char *name;
    int dense;                    /* 0: sparse increments, 1: dense replacement */
    int ndim;
    int64_t shape[SF_MAX_DIMS];   /* of the model tensor */
    int64_t numel;
    int64_t k;                    /* sparse: number of indices; dense: numel */
    sf_index_array idx;           /* (k) sparse: strictly ascending offsets in 0..numel-1, int32 when
                                     numel < 2^31 (as in the file), int64 above */
    float *values;                /* (k) sparse: the increments */
    char base_sha256[65];         /* sparse: hex SHA-256 of the base tensor's f32 bytes */
    sf_tensor *tensor;            /* dense: (shape) f32 replacement values, owned */
    /* applied state (private: managed by apply / unapply) */
    sf_tensor *target;            /* the model tensor written into (retained) */
    float *orig;                  /* (k) sparse: W[idx] before apply */
    sf_tensor *orig_dense;        /* dense: the tensor before apply */
} sf_delta_entry;

typedef struct sf_delta {
    sf_delta_entry *e;            /* (n) sparse and dense entries, in file order (sparse first) */
    int n;
    char *policy;                 /* e.g. "topk", "topk+random" after an addition */
    double rate;
    int64_t step;
    uint64_t seed;
    int n_extra;
    char **extra_keys, **extra_values; /* (n_extra) free-form metadata */
    int applied;                  /* 1 between a successful apply and unapply */
} sf_delta;

/* A delta from a sparse set after (or during) training: values = the increments, base hash = SHA-256 of
 * each target's base tensor (the current weight with w0 at idx, hashed without modifying the model).
 * dense (n_dense tensors, with names) are copied as replacement entries. policy_name NULL -> the set's
 * policy name. Every target must have selected its indices. */
sf_delta *sf_delta_from_sparse(const sf_sparse_set *s, sf_tensor *const *dense, const char *const *dense_names,
                               int n_dense, const char *policy_name);
/* An empty delta (no entries) with the given metadata, for building deltas by hand. */
sf_delta *sf_delta_new(const char *policy, double rate, int64_t step, uint64_t seed);
/* Appends entries (copies everything given). Sparse: idx must be strictly ascending in 0..numel-1;
 * base_sha256 is 64 hex digits. Dense: t is converted to an f32 copy. Names must be unique. */
sf_status sf_delta_add_sparse(sf_delta *d, const char *name, int ndim, const int64_t *shape, int64_t k,
                              const int64_t *idx, const float *values, const char *base_sha256);
sf_status sf_delta_add_dense(sf_delta *d, const char *name, const sf_tensor *t);
/* Sets (or replaces) an extra metadata pair; reserved keys (format, policy, rate, step, seed, dense,
 * shape.*, sha256.*) are refused. */
sf_status sf_delta_set_extra(sf_delta *d, const char *key, const char *value);
const char *sf_delta_get_extra(const sf_delta *d, const char *key); /* NULL if absent */

sf_status sf_delta_save(const sf_delta *d, const char *path);
/* Loads and validates a delta file: format tag, metadata values, every sparse entry has indices and
 * values of equal length (1-D, I32/I64 and F32), indices strictly ascending and in range of the shape,
 * shapes parse, hashes are hex, dense tensors are F32, no unknown tensors. Errors name file and tensor. */
sf_delta *sf_delta_load(const char *path);
void sf_delta_free(sf_delta *d); /* NULL-safe; an applied delta's originals are dropped, not restored */

/* Does the delta fit the model: every name exists (f32), shapes equal, indices valid, base hashes equal
 * to the model's tensors (while d is applied to m, the hash is of the base it was applied to). On
 * mismatch ONE error listing every offending tensor with the reason. */
sf_status sf_delta_check(const sf_delta *d, const sf_model *m);
/* Checks, then writes the delta into the model, keeping the originals. Refuses a delta already applied. */
sf_status sf_delta_apply(sf_delta *d, sf_model *m);
/* Restores the originals saved by apply, bit-exactly. Error (nothing written) if d is not applied to m. */
sf_status sf_delta_unapply(sf_delta *d, sf_model *m);

/* a + b: per sparse name the union of the indices, values summed where both have an index; *collisions
 * (may be NULL) = number of indices present in both. Common names must agree in shape and base hash and
 * be sparse in both (dense names in both are refused); one error lists every conflict. Metadata: policy
 * "<a>+<b>", rate = effective density (values / elements over the sparse entries), step = max, seed = a's,
 * extras of a then b (a wins). The result is not applied. */
sf_delta *sf_delta_add(const sf_delta *a, const sf_delta *b, int64_t *collisions);
/* factor * d: sparse values multiplied (in double, rounded to float); dense entries are copied
 * unchanged (a replacement is not an increment); metadata copied, extra "scale" multiplied by factor. */
sf_delta *sf_delta_scale(const sf_delta *d, double factor);
sf_delta *sf_delta_clone(const sf_delta *d); /* not applied */

/* Accessors. */
int sf_delta_n_sparse(const sf_delta *d);
int sf_delta_n_dense(const sf_delta *d);
int64_t sf_delta_n_values(const sf_delta *d); /* sum of k over sparse entries */
const sf_delta_entry *sf_delta_find(const sf_delta *d, const char *name);
const char *sf_delta_policy_name(sf_policy p); /* "topk", "global", "random", "magnitude", "fisher", "custom" */

#endif
