/* index_array.h — flat element offsets into one tensor, stored as int32 when the tensor has fewer
 * than 2^31 elements and as int64 above, so a sparse set's index memory is 4 bytes per entry for
 * every real weight matrix. The width is chosen once, from the indexed tensor's numel; readers go
 * through sf_index_get (a well-predicted branch the compiler hoists out of loops). This header does
 * not sort or validate offsets: sift.c and delta.c do. The length is kept by the owner (k). */
#ifndef SF_INDEX_ARRAY_H
#define SF_INDEX_ARRAY_H

#include <stdint.h>
#include <stdlib.h>

typedef struct {
    void *data; /* (k) int32_t when !wide, int64_t when wide */
    int wide;
} sf_index_array;

/* The rule of the delta format: int32 when numel < 2^31, int64 otherwise. */
static inline int sf_index_needs_wide(int64_t numel) { return numel >= ((int64_t)1 << 31); }

static inline size_t sf_index_elem_bytes(int wide) { return wide ? sizeof(int64_t) : sizeof(int32_t); }

/* Zeroed storage for k offsets into a tensor of numel elements (at least one slot); .data NULL on OOM. */
static inline sf_index_array sf_index_alloc(int64_t k, int64_t numel) {
    sf_index_array a = {NULL, sf_index_needs_wide(numel)};
    a.data = calloc((size_t)(k > 0 ? k : 1), sf_index_elem_bytes(a.wide));
    return a;
}

static inline void sf_index_free(sf_index_array *a) {
    free(a->data);
    a->data = NULL;
}

static inline int64_t sf_index_get(sf_index_array a, int64_t j) {
    return a.wide ? ((const int64_t *)a.data)[j] : (int64_t)((const int32_t *)a.data)[j];
}

static inline void sf_index_set(sf_index_array a, int64_t j, int64_t v) {
    if (a.wide) ((int64_t *)a.data)[j] = v;
    else ((int32_t *)a.data)[j] = (int32_t)v;
}

/* Copies k offsets out as int64 (API boundaries: Lua tensors, delta files). */
static inline void sf_index_to_i64(sf_index_array a, int64_t k, int64_t *out) {
    for (int64_t j = 0; j < k; j++) out[j] = sf_index_get(a, j);
}

#endif
