/* tensor.c — storage, allocation accounting, tensor creation, views and dtype conversion.
 * See tensor.h. Does not implement any math beyond element conversion. */
#include "tensor.h"

#include <math.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static _Atomic size_t g_mem_current;
static _Atomic size_t g_mem_peak;

size_t sf_dtype_size(sf_dtype dt) {
    switch (dt) {
    case SF_F32: return 4;
    case SF_F16: return 2;
    case SF_BF16: return 2;
    case SF_I64: return 8;
    case SF_I32: return 4;
    case SF_U8: return 1;
    case SF_F64: return 8;
    default: return 0;
    }
}

static const char *const dtype_names[SF_DTYPE_COUNT] = {"f32", "f16", "bf16", "i64", "i32", "u8", "f64"};

const char *sf_dtype_name(sf_dtype dt) {
    return (dt >= 0 && dt < SF_DTYPE_COUNT) ? dtype_names[dt] : "?";
}

int sf_dtype_from_name(const char *name, sf_dtype *out) {
    for (int i = 0; i < SF_DTYPE_COUNT; i++)
        if (strcmp(name, dtype_names[i]) == 0) {
            *out = (sf_dtype)i;
            return 0;
        }
    return -1;
}

/* ---- allocation ---- */
static size_t round_up(size_t n) { return (n + SF_ALIGN - 1) / SF_ALIGN * SF_ALIGN; }

/* Large buffers (weights, gradients, moments, activations of big models) are mapped directly, 2 MB
 * aligned and marked for transparent huge pages: a training step streams through gigabytes, and the
 * gemm packs read rows or columns a page apart, so with 4 KB pages most of their loads also miss the TLB
 * (measured: products on cold operands 7 % faster with huge pages). Such memory returns to the system when
 * freed and comes zeroed. Under AddressSanitizer everything goes through the checked heap instead. */
#if defined(__SANITIZE_ADDRESS__)
#define HUGE_MIN ((size_t)-1)
#else
#define HUGE_MIN ((size_t)4 << 20)
#endif
#define HUGE_ALIGN ((size_t)2 << 20)

static size_t page_round(size_t n) { return (n + 4095) & ~(size_t)4095; }

/* What sf_alloc takes for nbytes (0 counts as 1), and whether it maps that instead of using the heap. */
static size_t alloc_size(size_t nbytes) { return round_up(nbytes ? nbytes : 1); }
static int is_mapped(size_t sz) { return sz >= HUGE_MIN; }

static void *map_huge(size_t nbytes) {
    const size_t len = page_round(nbytes), span = len + HUGE_ALIGN;
    char *base = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) return NULL;
    char *data = (char *)(((uintptr_t)base + HUGE_ALIGN - 1) & ~(uintptr_t)(HUGE_ALIGN - 1));
    /* keep exactly [data, data + len): unmap the slack before and after */
    if (data > base) munmap(base, (size_t)(data - base));
    if (base + span > data + len) munmap(data + len, (size_t)(base + span - (data + len)));
    (void)madvise(data, len, MADV_HUGEPAGE); /* a hint: without it (THP off) the memory is still fine */
    return data;
}

void *sf_alloc(size_t nbytes) {
    size_t sz = alloc_size(nbytes);
    if (sz < nbytes) return sf_fail_null(SF_ERR_NOMEM, "allocation of %zu bytes overflows", nbytes);
    void *p = is_mapped(sz) ? map_huge(sz) : aligned_alloc(SF_ALIGN, sz);
    if (!p) return sf_fail_null(SF_ERR_NOMEM, "out of memory allocating %zu bytes", nbytes);
    size_t cur = atomic_fetch_add(&g_mem_current, sz) + sz;
    size_t peak = atomic_load(&g_mem_peak);
    while (cur > peak && !atomic_compare_exchange_weak(&g_mem_peak, &peak, cur)) {
    }
    return p;
}

void *sf_alloc_zero(size_t nbytes) {
    void *p = sf_alloc(nbytes);
    if (p && !is_mapped(alloc_size(nbytes))) memset(p, 0, nbytes); /* fresh mappings are zero */
    return p;
}

void sf_free(void *p, size_t nbytes) {
    if (!p) return;
    const size_t sz = alloc_size(nbytes);
    atomic_fetch_sub(&g_mem_current, sz);
    if (is_mapped(sz))
        munmap(p, page_round(sz));
    else
        free(p);
}

void sf_heap_keep_freed(void) {
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
    (void)mallopt(M_MMAP_THRESHOLD, (int)HUGE_MIN);
    (void)mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

size_t sf_mem_allocated(void) { return atomic_load(&g_mem_current); }
size_t sf_mem_peak(void) { return atomic_load(&g_mem_peak); }
void sf_mem_reset_peak(void) { atomic_store(&g_mem_peak, atomic_load(&g_mem_current)); }

/* ---- storage ---- */
sf_storage *sf_storage_new(size_t nbytes, int zero) {
    sf_storage *s = calloc(1, sizeof *s);
    if (!s) return sf_fail_null(SF_ERR_NOMEM, "out of memory (storage header)");
    s->data = zero ? sf_alloc_zero(nbytes) : sf_alloc(nbytes);
    if (!s->data) {
        free(s);
        return NULL;
    }
    s->nbytes = nbytes;
    s->refcount = 1;
    return s;
}

sf_storage *sf_storage_wrap(void *data, size_t nbytes, void (*release)(void *), void *ctx) {
    sf_storage *s = calloc(1, sizeof *s);
    if (!s) return sf_fail_null(SF_ERR_NOMEM, "out of memory (storage header)");
    s->data = data;
    s->nbytes = nbytes;
    s->refcount = 1;
    s->release = release;
    s->release_ctx = ctx;
    return s;
}

void sf_storage_retain(sf_storage *s) {
    if (s) s->refcount++;
}

void sf_storage_release(sf_storage *s) {
    if (!s || --s->refcount > 0) return;
    if (s->release)
        s->release(s->release_ctx);
    else
        sf_free(s->data, s->nbytes);
    free(s);
}

/* ---- shapes ---- */
int64_t sf_shape_numel(int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > SF_MAX_DIMS) {
        sf_fail(SF_ERR_ARG, "tensor rank %d outside 0..%d", ndim, SF_MAX_DIMS);
        return -1;
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            sf_fail(SF_ERR_ARG, "negative dimension %lld at axis %d", (long long)shape[i], i);
            return -1;
        }
        if (sf_mul_overflow_i64(n, shape[i], &n)) {
            sf_fail(SF_ERR_NOMEM, "shape product overflows 64 bits");
            return -1;
        }
    }
    return n;
}

static sf_tensor *tensor_header(sf_dtype dt, int ndim, const int64_t *shape, int64_t *numel_out,
                                size_t *nbytes_out) {
    if (dt < 0 || dt >= SF_DTYPE_COUNT) return sf_fail_null(SF_ERR_ARG, "unknown dtype %d", (int)dt);
    int64_t n = sf_shape_numel(ndim, shape);
    if (n < 0) return NULL;
    int64_t nb;
    if (sf_mul_overflow_i64(n, (int64_t)sf_dtype_size(dt), &nb) || (uint64_t)nb > SIZE_MAX / 2)
        return sf_fail_null(SF_ERR_NOMEM, "tensor of %lld elements is too large", (long long)n);
    sf_tensor *t = calloc(1, sizeof *t);
    if (!t) return sf_fail_null(SF_ERR_NOMEM, "out of memory (tensor header)");
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->refcount = 1;
    t->is_leaf = 1;
    t->ag_node = -1;
    *numel_out = n;
    *nbytes_out = (size_t)nb;
    return t;
}

static sf_tensor *tensor_alloc(sf_dtype dt, int ndim, const int64_t *shape, int zero) {
    int64_t n;
    size_t nb;
    sf_tensor *t = tensor_header(dt, ndim, shape, &n, &nb);
    if (!t) return NULL;
    t->storage = sf_storage_new(nb, zero);
    if (!t->storage) {
        free(t);
        return NULL;
    }
    return t;
}

sf_tensor *sf_tensor_new(sf_dtype dt, int ndim, const int64_t *shape) { return tensor_alloc(dt, ndim, shape, 0); }
sf_tensor *sf_tensor_zeros(sf_dtype dt, int ndim, const int64_t *shape) { return tensor_alloc(dt, ndim, shape, 1); }
sf_tensor *sf_tensor_new_f32(int ndim, const int64_t *shape) { return tensor_alloc(SF_F32, ndim, shape, 0); }
sf_tensor *sf_tensor_zeros_f32(int ndim, const int64_t *shape) { return tensor_alloc(SF_F32, ndim, shape, 1); }

sf_tensor *sf_tensor_f32d(int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    int64_t shape[4] = {d0, d1, d2, d3};
    int nd = 1;
    while (nd < 4 && shape[nd] >= 0) nd++;
    return sf_tensor_zeros_f32(nd, shape);
}

sf_tensor *sf_tensor_from_storage(sf_storage *s, size_t offset, sf_dtype dt, int ndim, const int64_t *shape) {
    int64_t n;
    size_t nb;
    sf_tensor *t = tensor_header(dt, ndim, shape, &n, &nb);
    if (!t) return NULL;
    size_t esz = sf_dtype_size(dt);
    if (offset > s->nbytes / esz || nb > s->nbytes - offset * esz) {
        free(t);
        return sf_fail_null(SF_ERR_ARG, "view of %zu bytes at element %zu exceeds storage of %zu bytes", nb,
                            offset, s->nbytes);
    }
    sf_storage_retain(s);
    t->storage = s;
    t->offset = offset;
    return t;
}

void sf_tensor_retain(sf_tensor *t) {
    if (t) t->refcount++;
}

void sf_tensor_release(sf_tensor *t) {
    if (!t || --t->refcount > 0) return;
    sf_tensor_release(t->grad);
    sf_tensor_release(t->ag_grad);
    sf_storage_release(t->storage);
    free(t->name);
    free(t);
}

sf_tensor *sf_tensor_view(sf_tensor *t, int ndim, const int64_t *shape) {
    int64_t n = sf_shape_numel(ndim, shape);
    if (n < 0) return NULL;
    if (n != sf_tensor_numel(t)) {
        char a[96];
        return sf_fail_null(SF_ERR_ARG, "cannot view tensor of shape %s (%lld elements) as %lld elements",
                            sf_shape_str(t, a, sizeof a), (long long)sf_tensor_numel(t), (long long)n);
    }
    return sf_tensor_from_storage(t->storage, t->offset, t->dtype, ndim, shape);
}

sf_tensor *sf_tensor_narrow0(sf_tensor *t, int64_t start, int64_t len) {
    if (t->ndim < 1 || start < 0 || len < 0 || start + len > t->shape[0])
        return sf_fail_null(SF_ERR_ARG, "narrow [%lld, %lld) outside dim 0 of size %lld", (long long)start,
                            (long long)(start + len), (long long)(t->ndim ? t->shape[0] : 0));
    int64_t shape[SF_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) shape[i] = t->shape[i];
    shape[0] = len;
    int64_t row = sf_tensor_numel(t) / (t->shape[0] ? t->shape[0] : 1);
    if (t->shape[0] == 0) row = 0;
    return sf_tensor_from_storage(t->storage, t->offset + (size_t)(start * row), t->dtype, t->ndim, shape);
}

int64_t sf_tensor_numel(const sf_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t sf_tensor_nbytes(const sf_tensor *t) { return (size_t)sf_tensor_numel(t) * sf_dtype_size(t->dtype); }

int sf_tensor_same_shape(const sf_tensor *a, const sf_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

int64_t sf_tensor_cols(const sf_tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }
int64_t sf_tensor_rows(const sf_tensor *t) {
    int64_t c = sf_tensor_cols(t);
    return c ? sf_tensor_numel(t) / c : 0;
}

void *sf_tensor_data(const sf_tensor *t) {
    return (char *)t->storage->data + t->offset * sf_dtype_size(t->dtype);
}

const char *sf_shape_str(const sf_tensor *t, char *buf, size_t n) {
    size_t used = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < t->ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (used < n) snprintf(buf + used, n - used, t->ndim == 1 ? ",)" : ")");
    return buf;
}

sf_status sf_tensor_set_name(sf_tensor *t, const char *name) {
    char *c = name ? strdup(name) : NULL;
    if (name && !c) return sf_fail(SF_ERR_NOMEM, "out of memory (name)");
    free(t->name);
    t->name = c;
    return SF_OK;
}

/* ---- scalar conversions ---- */
float sf_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t sf_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float sf_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            float f = ldexpf((float)mant, -24);
            memcpy(&u, &f, 4);
            u |= sign;
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 112) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t sf_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* overflow to inf */
    if (a < 0x38800000u) {                                    /* subnormal or zero */
        float af;
        memcpy(&af, &a, 4);
        return (uint16_t)(sign | (uint32_t)lrintf(af * 16777216.0f));
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u) - (112u << 23);
    return (uint16_t)(sign | (r >> 13));
}

int64_t sf_tensor_get_flat_int(const sf_tensor *t, int64_t i) {
    const void *d = sf_tensor_data(t);
    switch (t->dtype) {
    case SF_I64: return ((const int64_t *)d)[i];
    case SF_I32: return ((const int32_t *)d)[i];
    case SF_U8: return ((const uint8_t *)d)[i];
    default: return 0;
    }
}

double sf_tensor_get_flat(const sf_tensor *t, int64_t i) {
    const void *d = sf_tensor_data(t);
    switch (t->dtype) {
    case SF_F32: return ((const float *)d)[i];
    case SF_F16: return sf_f16_to_f32(((const uint16_t *)d)[i]);
    case SF_BF16: return sf_bf16_to_f32(((const uint16_t *)d)[i]);
    case SF_I64: return (double)((const int64_t *)d)[i];
    case SF_I32: return ((const int32_t *)d)[i];
    case SF_U8: return ((const uint8_t *)d)[i];
    case SF_F64: return ((const double *)d)[i];
    default: return 0;
    }
}

void sf_tensor_set_flat(sf_tensor *t, int64_t i, double v) {
    void *d = sf_tensor_data(t);
    switch (t->dtype) {
    case SF_F32: ((float *)d)[i] = (float)v; break;
    case SF_F16: ((uint16_t *)d)[i] = sf_f32_to_f16((float)v); break;
    case SF_BF16: ((uint16_t *)d)[i] = sf_f32_to_bf16((float)v); break;
    case SF_I64: ((int64_t *)d)[i] = (int64_t)v; break;
    case SF_I32: ((int32_t *)d)[i] = (int32_t)v; break;
    case SF_U8: ((uint8_t *)d)[i] = (uint8_t)v; break;
    case SF_F64: ((double *)d)[i] = v; break;
    default: break;
    }
}

sf_status sf_tensor_copy_(sf_tensor *dst, const sf_tensor *src) {
    int64_t n = sf_tensor_numel(src);
    if (n != sf_tensor_numel(dst))
        return sf_fail(SF_ERR_ARG, "copy between tensors of %lld and %lld elements", (long long)n,
                       (long long)sf_tensor_numel(dst));
    if (dst->dtype == src->dtype) {
        memmove(sf_tensor_data(dst), sf_tensor_data(src), sf_tensor_nbytes(src));
        return SF_OK;
    }
    if (dst->dtype == SF_F32) {
        float *o = sf_f32(dst);
        const void *d = sf_tensor_data(src);
        if (src->dtype == SF_BF16)
            for (int64_t i = 0; i < n; i++) o[i] = sf_bf16_to_f32(((const uint16_t *)d)[i]);
        else if (src->dtype == SF_F16)
            for (int64_t i = 0; i < n; i++) o[i] = sf_f16_to_f32(((const uint16_t *)d)[i]);
        else
            for (int64_t i = 0; i < n; i++) o[i] = (float)sf_tensor_get_flat(src, i);
        return SF_OK;
    }
    for (int64_t i = 0; i < n; i++) sf_tensor_set_flat(dst, i, sf_tensor_get_flat(src, i));
    return SF_OK;
}

sf_tensor *sf_tensor_to_f32(const sf_tensor *t) {
    sf_tensor *o = sf_tensor_new(SF_F32, t->ndim, t->shape);
    if (!o) return NULL;
    sf_tensor_copy_(o, t);
    return o;
}

sf_tensor *sf_tensor_clone(const sf_tensor *t) {
    sf_tensor *o = sf_tensor_new(t->dtype, t->ndim, t->shape);
    if (!o) return NULL;
    memcpy(sf_tensor_data(o), sf_tensor_data(t), sf_tensor_nbytes(t));
    return o;
}
