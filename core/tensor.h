/* tensor.h — n-dimensional tensors (up to 4 dims) over refcounted, 64-byte aligned storage.
 *
 * What it does: allocation with a global byte counter (current and peak, used by memory tests and
 * benchmarks), contiguous row-major tensors in f32 (compute type) and f16/bf16/i64/i32/u8 (loading
 * and index types), views that share storage, dtype conversion to f32, checked shape arithmetic.
 * Storage may also wrap foreign memory (e.g. an mmap'd file) with a release callback.
 * It also carries the few autograd fields the tape needs per tensor (see graph.h); it does not
 * know about operations or the tape itself.
 */
#ifndef SF_TENSOR_H
#define SF_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "index_array.h"
#include "status.h"

#define SF_MAX_DIMS 4
#define SF_ALIGN 64

typedef enum { SF_F32 = 0, SF_F16, SF_BF16, SF_I64, SF_I32, SF_U8, SF_F64, SF_DTYPE_COUNT } sf_dtype;

size_t sf_dtype_size(sf_dtype dt);
const char *sf_dtype_name(sf_dtype dt); /* "f32", "f16", "bf16", "i64", "i32", "u8", "f64" */
int sf_dtype_from_name(const char *name, sf_dtype *out); /* 0 on success, -1 unknown */

/* ---- raw aligned allocation with accounting ------------------------------------------------ */
void *sf_alloc(size_t nbytes);         /* 64-byte aligned, counted; NULL + error on failure */
void *sf_alloc_zero(size_t nbytes);
void sf_free(void *p, size_t nbytes);  /* nbytes must be what was allocated (large blocks are mapped) */
size_t sf_mem_allocated(void);         /* bytes currently allocated through sf_alloc */
size_t sf_mem_peak(void);              /* high-water mark since the last reset */
void sf_mem_reset_peak(void);          /* peak := current */
/* Programs (sift-repl, bench_kernels) call this at start: glibc keeps freed heap memory for reuse
 * instead of returning it (malloc serves everything below sf_alloc's own 4 MB mapping size from the
 * heap, and the heap is trimmed only past 256 MB free at its top). With glibc's defaults whether a freed
 * block of a few MB went back to the system depended on the heap's layout, so a call that allocates
 * and frees one (a generation's arena) paid fresh page faults, or not, by the length of argv: prefill of
 * stories260K ran at 38k or 63k tokens/s. A library should not change a host's malloc, hence a call for
 * programs, not a side effect of loading sift. No effect without glibc or under AddressSanitizer. */
void sf_heap_keep_freed(void);

/* ---- storage ---------------------------------------------------------------------------------- */
typedef struct sf_storage {
    void *data;
    size_t nbytes;
    int refcount;
    /* foreign memory: release(release_ctx) is called instead of sf_free when the last ref goes */
    void (*release)(void *ctx);
    void *release_ctx;
} sf_storage;

sf_storage *sf_storage_new(size_t nbytes, int zero);
sf_storage *sf_storage_wrap(void *data, size_t nbytes, void (*release)(void *), void *ctx);
void sf_storage_retain(sf_storage *s);
void sf_storage_release(sf_storage *s);

/* ---- tensors ---------------------------------------------------------------------------------- */
struct sf_tensor;
/* A leaf-gradient hook: called once per backward when `leaf`'s gradient `grad` is complete.
 * Return SF_HOOK_CONSUMED if the hook took what it needed (the dense buffer is then recycled and
 * leaf->grad is left untouched), SF_HOOK_KEEP to have `grad` accumulated into leaf->grad. */
typedef enum { SF_HOOK_KEEP = 0, SF_HOOK_CONSUMED = 1 } sf_hook_result;
typedef sf_hook_result (*sf_grad_hook)(struct sf_tensor *leaf, struct sf_tensor *grad, void *user);

/* A sparse leaf: only the gradient entries at idx (k, ascending flat offsets, int32 or int64) are wanted; they
 * accumulate into values (k). Ops that can compute those entries directly (linear: sampled dense-dense
 * product) do so when `sampled` is set; otherwise the tape gathers them from a transient dense buffer. */
typedef struct sf_sparse_grad {
    int64_t k;
    sf_index_array idx; /* (k) ascending */
    float *values;
    int sampled;
} sf_sparse_grad;

typedef struct sf_tensor {
    sf_storage *storage;
    size_t offset; /* in elements of dtype, from storage->data */
    sf_dtype dtype;
    int ndim;
    int64_t shape[SF_MAX_DIMS];
    int refcount;
    char *name; /* optional, owned (parameters carry their checkpoint name) */

    /* autograd (see graph.h) */
    int requires_grad;       /* leaf parameter that trains, or a value computed from one */
    int is_leaf;             /* 1 unless produced by a recorded tape node */
    struct sf_tensor *grad;  /* persistent accumulated gradient of a leaf (NULL until needed) */
    sf_grad_hook hook;       /* optional leaf-gradient hook */
    void *hook_user;
    sf_sparse_grad *sparse;  /* not owned; NULL for ordinary leaves */
    int grad_zero;           /* grad is known to hold only zeros and nobody else holds it (zeroing it again
                              * is skipped); cleared when the tape or model:grad hands it out */
    int grad_finite;         /* grad is known to hold no Inf or NaN (the optimizer's sweep for them skips
                              * it): set by zeroing and by writers that checked what they wrote
                              * (sf_graph_grad_set_finite), cleared like grad_zero */
    /* bookkeeping owned by the graph during one backward pass */
    struct sf_tensor *ag_grad; /* transient gradient buffer */
    int ag_pending;            /* consumers whose backward has not run yet */
    int ag_node;               /* index of the producing node in its graph, -1 for leaves */
} sf_tensor;

/* Creation. All return NULL with an error message on failure (bad shape, overflow, no memory). */
sf_tensor *sf_tensor_new(sf_dtype dt, int ndim, const int64_t *shape);      /* uninitialised */
sf_tensor *sf_tensor_zeros(sf_dtype dt, int ndim, const int64_t *shape);
sf_tensor *sf_tensor_new_f32(int ndim, const int64_t *shape);
sf_tensor *sf_tensor_zeros_f32(int ndim, const int64_t *shape);
sf_tensor *sf_tensor_from_storage(sf_storage *s, size_t offset, sf_dtype dt, int ndim,
                                  const int64_t *shape); /* retains s; checks bounds */
/* Convenience: 1..4 dims, pass -1 for unused trailing dims: sf_tensor_f32d(2, 3, -1, -1). */
sf_tensor *sf_tensor_f32d(int64_t d0, int64_t d1, int64_t d2, int64_t d3);

void sf_tensor_retain(sf_tensor *t);
void sf_tensor_release(sf_tensor *t); /* NULL-safe; frees at refcount 0 (and its grad) */

/* A view sharing storage: same elements, new shape (numel must match). */
sf_tensor *sf_tensor_view(sf_tensor *t, int ndim, const int64_t *shape);
/* A view of rows [start, start+len) along dim 0. */
sf_tensor *sf_tensor_narrow0(sf_tensor *t, int64_t start, int64_t len);
/* Deep copy converted to f32 (from any numeric dtype). */
sf_tensor *sf_tensor_to_f32(const sf_tensor *t);
/* Deep copy in the same dtype. */
sf_tensor *sf_tensor_clone(const sf_tensor *t);
sf_status sf_tensor_copy_(sf_tensor *dst, const sf_tensor *src); /* same numel; converts dtype to dst's */
sf_status sf_tensor_set_name(sf_tensor *t, const char *name);

int64_t sf_tensor_numel(const sf_tensor *t);
size_t sf_tensor_nbytes(const sf_tensor *t);
int sf_tensor_same_shape(const sf_tensor *a, const sf_tensor *b);
/* Product of all dims but the last (rows when viewed as a matrix) and the last dim. */
int64_t sf_tensor_rows(const sf_tensor *t);
int64_t sf_tensor_cols(const sf_tensor *t);
void *sf_tensor_data(const sf_tensor *t);
static inline float *sf_f32(const sf_tensor *t) { return (float *)sf_tensor_data(t); }
/* "(2, 3, 4)" into buf. */
const char *sf_shape_str(const sf_tensor *t, char *buf, size_t n);

/* Checked numel of a shape; -1 (and an error) on a negative dim or overflow. */
int64_t sf_shape_numel(int ndim, const int64_t *shape);

/* Scalar conversions used by loaders and the binding. */
float sf_bf16_to_f32(uint16_t h);
uint16_t sf_f32_to_bf16(float f); /* round to nearest even */
float sf_f16_to_f32(uint16_t h);
uint16_t sf_f32_to_f16(float f);
/* Read element i of any numeric tensor as double. */
double sf_tensor_get_flat(const sf_tensor *t, int64_t i);
/* Element i of an integer tensor (i64, i32, u8) exactly, as a double cannot hold every i64; 0 for others. */
int64_t sf_tensor_get_flat_int(const sf_tensor *t, int64_t i);
void sf_tensor_set_flat(sf_tensor *t, int64_t i, double v);

#endif
