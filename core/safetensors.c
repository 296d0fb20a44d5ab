/* safetensors.c — reading (mmap + full validation) and atomic writing of safetensors files.
 *
 * What it does: sf_st_open maps a file read-only, copies the JSON header into a NUL-terminated buffer
 * (so cJSON can never read past the mapping), parses it with cJSON and checks every rule listed in
 * safetensors.h before handing out anything. Views share one sf_storage wrapping the whole mapping; its
 * release callback munmaps, so the mapping lives until the file handle and the last view are gone.
 * sf_st_save builds the header itself (exact integers, insertion order, padded with spaces to a
 * multiple of 8) and streams it through sf_atomic_write (temp file + fsync + rename + fsync of the
 * directory).
 * What it does not do: know about models or parameter names; big-endian hosts (the format and this
 * code are little-endian); protect against the file being truncated by someone else while it is mapped
 * (that raises SIGBUS, as with every mmap reader).
 * Numbers in the header are read as cJSON doubles, so dims and offsets above 2^53 are rejected as too
 * large (no file can hold that many bytes anyway) and an integral float such as 3.0 reads as 3.
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define ST_MAX_HEADER (100ull * 1000 * 1000) /* 100 MB, the limit of the reference implementation */
#define ST_MAX_EXACT (1ull << 53)            /* largest integer a JSON double holds exactly */

/* ---- dtypes ------------------------------------------------------------------------------------ */
typedef enum {
    ST_BOOL, ST_U8, ST_I8, ST_I16, ST_U16, ST_F16, ST_BF16, ST_I32, ST_U32, ST_F32, ST_F64, ST_I64, ST_U64,
    ST_F8_E4M3, ST_F8_E5M2, ST_NTYPES
} st_type;

static const struct {
    const char *name;
    int size;
    sf_dtype engine; /* SF_DTYPE_COUNT when the engine has no such dtype */
} st_types[ST_NTYPES] = {
    [ST_BOOL] = {"BOOL", 1, SF_U8},          [ST_U8] = {"U8", 1, SF_U8},
    [ST_I8] = {"I8", 1, SF_DTYPE_COUNT},     [ST_I16] = {"I16", 2, SF_DTYPE_COUNT},
    [ST_U16] = {"U16", 2, SF_DTYPE_COUNT},   [ST_F16] = {"F16", 2, SF_F16},
    [ST_BF16] = {"BF16", 2, SF_BF16},        [ST_I32] = {"I32", 4, SF_I32},
    [ST_U32] = {"U32", 4, SF_DTYPE_COUNT},   [ST_F32] = {"F32", 4, SF_F32},
    [ST_F64] = {"F64", 8, SF_F64},           [ST_I64] = {"I64", 8, SF_I64},
    [ST_U64] = {"U64", 8, SF_DTYPE_COUNT},   [ST_F8_E4M3] = {"F8_E4M3", 1, SF_DTYPE_COUNT},
    [ST_F8_E5M2] = {"F8_E5M2", 1, SF_DTYPE_COUNT},
};

static int st_type_find(const char *name) {
    for (int i = 0; i < ST_NTYPES; i++)
        if (strcmp(name, st_types[i].name) == 0) return i;
    return -1;
}

/* The file's dtype string for an engine dtype (the writer's choice; BOOL is never written). */
static const char *st_engine_name(sf_dtype dt) {
    switch (dt) {
    case SF_F32: return "F32";
    case SF_F16: return "F16";
    case SF_BF16: return "BF16";
    case SF_I64: return "I64";
    case SF_I32: return "I32";
    case SF_U8: return "U8";
    case SF_F64: return "F64";
    default: return NULL;
    }
}

/* ---- the open file ----------------------------------------------------------------------------- */
typedef struct {
    void *addr;
    size_t len;
} st_map;

static void st_unmap(void *ctx) {
    st_map *m = ctx;
    munmap(m->addr, m->len);
    free(m);
}

typedef struct {
    const char *name;
    int idx; /* into entries */
} st_name_ix;

struct sf_st_file {
    char *path;
    sf_storage *map;        /* the whole mapping; views retain it */
    size_t data_start;      /* byte offset of the data section within the mapping: 8 + header length */
    uint64_t data_size;     /* bytes in the data section */
    int n;
    sf_st_entry *entries;   /* (n) in offset order */
    st_name_ix *by_name;    /* (n) sorted by name, for sf_st_find */
    int n_meta;
    char **meta_keys;       /* (n_meta) in file order */
    char **meta_values;     /* (n_meta) */
};

void sf_st_close(sf_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) free(f->entries[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->entries);
    free(f->by_name);
    free(f->meta_keys);
    free(f->meta_values);
    sf_storage_release(f->map);
    free(f->path);
    free(f);
}

const char *sf_st_path(const sf_st_file *f) { return f->path; }
int sf_st_count(const sf_st_file *f) { return f->n; }

const sf_st_entry *sf_st_entry_at(const sf_st_file *f, int i) {
    return (i >= 0 && i < f->n) ? &f->entries[i] : NULL;
}

static int cmp_name_ix(const void *a, const void *b) {
    const st_name_ix *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static int cmp_key_name_ix(const void *key, const void *elem) {
    return strcmp((const char *)key, ((const st_name_ix *)elem)->name);
}

const sf_st_entry *sf_st_find(const sf_st_file *f, const char *name) {
    if (!f || !name || f->n == 0) return NULL;
    const st_name_ix *hit = bsearch(name, f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_key_name_ix);
    return hit ? &f->entries[hit->idx] : NULL;
}

int sf_st_metadata_count(const sf_st_file *f) { return f->n_meta; }
const char *sf_st_metadata_key(const sf_st_file *f, int i) {
    return (i >= 0 && i < f->n_meta) ? f->meta_keys[i] : NULL;
}
const char *sf_st_metadata_value(const sf_st_file *f, int i) {
    return (i >= 0 && i < f->n_meta) ? f->meta_values[i] : NULL;
}
const char *sf_st_metadata_get(const sf_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

/* ---- header validation --------------------------------------------------------------------- */
static void entry_shape_str(const sf_st_entry *e, char *buf, size_t n) {
    size_t used = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < e->ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ", %lld" : "%lld", (long long)e->shape[i]);
    if (used < n) snprintf(buf + used, n - used, e->ndim == 1 ? ",)" : ")");
}

typedef enum { NUM_OK, NUM_NOT_NUMBER, NUM_NEGATIVE, NUM_FRACTION, NUM_TOO_LARGE } num_check;

/* A JSON number that is a non-negative integer held exactly by a double. */
static num_check json_uint(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return NUM_NOT_NUMBER;
    double d = item->valuedouble;
    if (isnan(d)) return NUM_FRACTION;
    if (d < 0) return NUM_NEGATIVE;
    if (d > (double)ST_MAX_EXACT) return NUM_TOO_LARGE;
    if (d != floor(d)) return NUM_FRACTION;
    *out = (uint64_t)d;
    return NUM_OK;
}

static const char *num_problem(num_check c) {
    switch (c) {
    case NUM_NOT_NUMBER: return "is not a number";
    case NUM_NEGATIVE: return "is negative";
    case NUM_FRACTION: return "is not an integer";
    case NUM_TOO_LARGE: return "is too large (above 2^53)";
    default: return "is fine";
    }
}

/* Fills e from one header entry {"dtype", "shape", "data_offsets"}; checks everything local to the
 * tensor (not its position relative to the others). */
static sf_status parse_entry(const char *path, const cJSON *item, sf_st_entry *e, uint64_t data_size) {
    const char *nm = item->string;
    if (!cJSON_IsObject(item))
        return sf_fail(SF_ERR_FORMAT, "%s: tensor '%s': header entry is not an object", path, nm);
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *c = item->child; c; c = c->next) {
        const cJSON **slot = strcmp(c->string, "dtype") == 0          ? &dtype
                             : strcmp(c->string, "shape") == 0        ? &shape
                             : strcmp(c->string, "data_offsets") == 0 ? &offs
                                                                      : NULL;
        if (!slot) continue; /* unknown fields are ignored, as by the reference implementation */
        if (*slot) return sf_fail(SF_ERR_FORMAT, "%s: tensor '%s': duplicate field \"%s\"", path, nm, c->string);
        *slot = c;
    }
    if (!dtype) return sf_fail(SF_ERR_FORMAT, "%s: tensor '%s': missing \"dtype\"", path, nm);
    if (!shape) return sf_fail(SF_ERR_FORMAT, "%s: tensor '%s': missing \"shape\"", path, nm);
    if (!offs) return sf_fail(SF_ERR_FORMAT, "%s: tensor '%s': missing \"data_offsets\"", path, nm);

    /* dtype */
    if (!cJSON_IsString(dtype))
        return sf_fail(SF_ERR_FORMAT, "%s: tensor '%s': \"dtype\" is not a string", path, nm);
    int ty = st_type_find(dtype->valuestring);
    if (ty < 0)
        return sf_fail(SF_ERR_FORMAT,
                       "%s: tensor '%s': unknown dtype \"%.32s\" (expected one of BOOL, U8, I8, I16, U16, F16, "
                       "BF16, I32, U32, F32, F64, I64, U64, F8_E4M3, F8_E5M2)",
                       path, nm, dtype->valuestring);
    snprintf(e->dtype_name, sizeof e->dtype_name, "%s", st_types[ty].name);
    e->dtype = st_types[ty].engine;

    /* shape */
    if (!cJSON_IsArray(shape))
        return sf_fail(SF_ERR_FORMAT, "%s: tensor '%s': \"shape\" is not an array", path, nm);
    int nd = cJSON_GetArraySize(shape);
    if (nd > SF_MAX_DIMS)
        return sf_fail(SF_ERR_FORMAT, "%s: tensor '%s': shape has %d dims, more than the %d supported", path, nm,
                       nd, SF_MAX_DIMS);
    e->ndim = nd;
    int64_t numel = 1;
    int d = 0;
    for (const cJSON *c = shape->child; c; c = c->next, d++) {
        uint64_t v = 0;
        num_check r = json_uint(c, &v);
        if (r == NUM_NEGATIVE)
            return sf_fail(SF_ERR_FORMAT, "%s: tensor '%s': negative dimension %g at axis %d of the shape", path, nm,
                           c->valuedouble, d);
        if (r != NUM_OK)
            return sf_fail(SF_ERR_FORMAT, "%s: tensor '%s': dimension %d of the shape %s", path, nm, d,
                           num_problem(r));
        e->shape[d] = (int64_t)v;
        if (sf_mul_overflow_i64(numel, (int64_t)v, &numel))
            return sf_fail(SF_ERR_FORMAT, "%s: tensor '%s': shape product overflows 64 bits", path, nm);
    }
    int64_t need;
    if (sf_mul_overflow_i64(numel, st_types[ty].size, &need))
        return sf_fail(SF_ERR_FORMAT, "%s: tensor '%s': shape product x %s overflows 64 bits", path, nm,
                       st_types[ty].name);

    /* data_offsets */
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return sf_fail(SF_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" must be an array of 2 integers [begin, end]",
                       path, nm);
    uint64_t be[2];
    for (int i = 0; i < 2; i++) {
        num_check r = json_uint(cJSON_GetArrayItem(offs, i), &be[i]);
        if (r != NUM_OK)
            return sf_fail(SF_ERR_FORMAT, "%s: tensor '%s': data_offsets[%d] %s", path, nm, i, num_problem(r));
    }
    e->begin = be[0];
    e->end = be[1];
    if (e->end < e->begin)
        return sf_fail(SF_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu): end is before begin", path, nm,
                       (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end > data_size)
        return sf_fail(SF_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu) extend past the end of the file (data section "
                       "holds %llu bytes)",
                       path, nm, (unsigned long long)e->begin, (unsigned long long)e->end,
                       (unsigned long long)data_size);
    if (e->end - e->begin != (uint64_t)need) {
        char sh[128];
        entry_shape_str(e, sh, sizeof sh);
        return sf_fail(SF_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu) but shape %s x %s needs %lld bytes",
                       path, nm, (unsigned long long)e->begin, (unsigned long long)e->end, sh, st_types[ty].name,
                       (long long)need);
    }
    return SF_OK;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static sf_status parse_metadata(sf_st_file *f, const cJSON *meta) {
    if (!cJSON_IsObject(meta))
        return sf_fail(SF_ERR_FORMAT, "%s: \"__metadata__\" is not an object of strings", f->path);
    int n = cJSON_GetArraySize(meta);
    f->meta_keys = calloc((size_t)n + 1, sizeof *f->meta_keys);
    f->meta_values = calloc((size_t)n + 1, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values) return sf_fail(SF_ERR_NOMEM, "%s: out of memory (metadata)", f->path);
    for (const cJSON *c = meta->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return sf_fail(SF_ERR_FORMAT, "%s: \"__metadata__\" value of key '%s' is not a string", f->path,
                           c->string);
        char *k = strdup(c->string), *v = strdup(c->valuestring);
        if (!k || !v) {
            free(k);
            free(v);
            return sf_fail(SF_ERR_NOMEM, "%s: out of memory (metadata)", f->path);
        }
        f->meta_keys[f->n_meta] = k;
        f->meta_values[f->n_meta] = v;
        f->n_meta++;
    }
    /* unique keys, checked on a sorted copy (a hostile header may hold millions of keys) */
    const char **sorted = malloc((size_t)f->n_meta * sizeof *sorted + 1);
    if (!sorted) return sf_fail(SF_ERR_NOMEM, "%s: out of memory (metadata)", f->path);
    memcpy(sorted, f->meta_keys, (size_t)f->n_meta * sizeof *sorted);
    qsort(sorted, (size_t)f->n_meta, sizeof *sorted, cmp_str_ptr);
    sf_status st = SF_OK;
    for (int i = 1; i < f->n_meta && st == SF_OK; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            st = sf_fail(SF_ERR_FORMAT, "%s: \"__metadata__\" has the key '%s' twice (duplicate)", f->path,
                         sorted[i]);
    free(sorted);
    return st;
}

static int cmp_entry_offset(const void *a, const void *b) {
    const sf_st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name); /* names are unique by now */
}

/* Parses and validates the header text (NUL-terminated, hlen bytes) into f. */
static sf_status parse_header(sf_st_file *f, const char *text, size_t hlen) {
    const char *path = f->path;
    if (text[0] != '{')
        return sf_fail(SF_ERR_FORMAT, "%s: header does not start with '{' (not a safetensors file?)", path);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)(end - text) : 0;
        if (at >= strlen(text))
            return sf_fail(SF_ERR_FORMAT, "%s: header JSON ends unexpectedly at byte %zu of %zu (truncated)", path, at,
                           hlen);
        return sf_fail(SF_ERR_FORMAT, "%s: invalid JSON in the header at byte %zu of %zu", path, at, hlen);
    }
    sf_status st = SF_OK;
    for (size_t i = (size_t)(end - text); i < hlen; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r') {
            st = sf_fail(SF_ERR_FORMAT, "%s: unexpected byte 0x%02x after the JSON header at byte %zu of %zu", path,
                         (unsigned char)text[i], i, hlen);
            goto done;
        }
    if (!cJSON_IsObject(root)) {
        st = sf_fail(SF_ERR_FORMAT, "%s: header is not a JSON object", path);
        goto done;
    }

    int total = cJSON_GetArraySize(root), n_meta_items = 0;
    for (const cJSON *c = root->child; c; c = c->next)
        if (strcmp(c->string, "__metadata__") == 0) {
            if (++n_meta_items > 1) {
                st = sf_fail(SF_ERR_FORMAT, "%s: duplicate \"__metadata__\" entry in the header", path);
                goto done;
            }
            if ((st = parse_metadata(f, c)) != SF_OK) goto done;
        }
    int n = total - n_meta_items;
    f->entries = calloc((size_t)n + 1, sizeof *f->entries);
    f->by_name = calloc((size_t)n + 1, sizeof *f->by_name);
    if (!f->entries || !f->by_name) {
        st = sf_fail(SF_ERR_NOMEM, "%s: out of memory (%d header entries)", path, n);
        goto done;
    }
    for (const cJSON *c = root->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) continue;
        sf_st_entry *e = &f->entries[f->n];
        if (!(e->name = strdup(c->string))) {
            st = sf_fail(SF_ERR_NOMEM, "%s: out of memory (tensor names)", path);
            goto done;
        }
        f->n++;
        if ((st = parse_entry(path, c, e, f->data_size)) != SF_OK) goto done;
    }

    /* unique names (checked on the name-sorted index, which sf_st_find needs anyway) */
    for (int i = 0; i < n; i++) f->by_name[i] = (st_name_ix){f->entries[i].name, i};
    qsort(f->by_name, (size_t)n, sizeof *f->by_name, cmp_name_ix);
    for (int i = 1; i < n; i++)
        if (strcmp(f->by_name[i - 1].name, f->by_name[i].name) == 0) {
            st = sf_fail(SF_ERR_FORMAT, "%s: duplicate tensor name '%s' in the header", path, f->by_name[i].name);
            goto done;
        }

    /* contiguous layout: sorted by offset, from 0, no holes, no overlaps, ending at the end of the file */
    qsort(f->entries, (size_t)n, sizeof *f->entries, cmp_entry_offset);
    uint64_t pos = 0;
    for (int i = 0; i < n; i++) {
        const sf_st_entry *e = &f->entries[i];
        if (e->begin == pos) {
            pos = e->end;
            continue;
        }
        if (i == 0)
            st = sf_fail(SF_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets start at %llu, but the first tensor must start at 0 "
                         "(hole at the start of the data)",
                         path, e->name, (unsigned long long)e->begin);
        else if (e->begin < pos)
            st = sf_fail(SF_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu) overlap tensor '%s' ending at %llu",
                         path, e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                         f->entries[i - 1].name, (unsigned long long)pos);
        else
            st = sf_fail(SF_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets [%llu, %llu) leave a hole of %llu bytes after tensor '%s'",
                         path, e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                         (unsigned long long)(e->begin - pos), f->entries[i - 1].name);
        goto done;
    }
    if (pos != f->data_size)
        st = sf_fail(SF_ERR_FORMAT,
                     "%s: %llu bytes of trailing data after the last tensor (file size is not exact: data section "
                     "holds %llu bytes, tensors use %llu)",
                     path, (unsigned long long)(f->data_size - pos), (unsigned long long)f->data_size,
                     (unsigned long long)pos);
    /* by_name holds indices into the unsorted entries: rebuild it for the offset order */
    for (int i = 0; i < n; i++) f->by_name[i] = (st_name_ix){f->entries[i].name, i};
    qsort(f->by_name, (size_t)n, sizeof *f->by_name, cmp_name_ix);
done:
    cJSON_Delete(root);
    return st;
}

sf_st_file *sf_st_open(const char *path) {
    if (!path) return sf_fail_null(SF_ERR_ARG, "sf_st_open: path is NULL");
    sf_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return sf_fail_null(SF_ERR_NOMEM, "%s: out of memory", path);
    }
    char *text = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* O_NONBLOCK: a FIFO must not hang us */
    if (fd < 0) {
        sf_fail(SF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        sf_fail(SF_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        sf_fail(SF_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < 8) {
        sf_fail(SF_ERR_FORMAT, "%s: file is %llu bytes, shorter than the 8-byte header length%s", path,
                (unsigned long long)size, size == 0 ? " (empty file)" : "");
        goto fail;
    }
    if (size > SIZE_MAX) {
        sf_fail(SF_ERR_NOMEM, "%s: file of %llu bytes cannot be mapped", path, (unsigned long long)size);
        goto fail;
    }
    void *addr = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
        sf_fail(SF_ERR_IO, "%s: cannot mmap %llu bytes: %s", path, (unsigned long long)size, strerror(errno));
        goto fail;
    }
    st_map *m = malloc(sizeof *m);
    if (m) *m = (st_map){addr, (size_t)size};
    f->map = m ? sf_storage_wrap(addr, (size_t)size, st_unmap, m) : NULL;
    if (!f->map) {
        free(m);
        munmap(addr, (size_t)size);
        sf_fail(SF_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    close(fd);
    fd = -1;

    const unsigned char *bytes = addr;
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)bytes[i] << (8 * i);
    if (hlen == 0) {
        sf_fail(SF_ERR_FORMAT, "%s: header length is 0 (expected a JSON header)", path);
        goto fail;
    }
    if (hlen > ST_MAX_HEADER) {
        sf_fail(SF_ERR_FORMAT, "%s: header length %llu exceeds the 100 MB limit (not a safetensors file?)", path,
                (unsigned long long)hlen);
        goto fail;
    }
    if (hlen > size - 8) {
        sf_fail(SF_ERR_FORMAT, "%s: header length %llu extends past the end of the file (%llu bytes)", path,
                (unsigned long long)hlen, (unsigned long long)size);
        goto fail;
    }
    f->data_start = (size_t)(8 + hlen);
    f->data_size = size - 8 - hlen;
    text = malloc((size_t)hlen + 1); /* NUL-terminated copy: the parser never sees the mapping */
    if (!text) {
        sf_fail(SF_ERR_NOMEM, "%s: out of memory (header of %llu bytes)", path, (unsigned long long)hlen);
        goto fail;
    }
    memcpy(text, bytes + 8, (size_t)hlen);
    text[hlen] = '\0';
    if (parse_header(f, text, (size_t)hlen) != SF_OK) goto fail;
    free(text);
    return f;
fail:
    if (fd >= 0) close(fd);
    free(text);
    sf_st_close(f);
    return NULL;
}

/* ---- tensors out of the file ------------------------------------------------------------------ */
static const sf_st_entry *find_or_fail(sf_st_file *f, const char *name) {
    if (!f || !name) return sf_fail_null(SF_ERR_ARG, "safetensors: NULL file or tensor name");
    const sf_st_entry *e = sf_st_find(f, name);
    if (!e) return sf_fail_null(SF_ERR_ARG, "%s: no tensor named '%s' (the file has %d)", f->path, name, f->n);
    return e;
}

static const unsigned char *entry_bytes(const sf_st_file *f, const sf_st_entry *e) {
    return (const unsigned char *)f->map->data + f->data_start + e->begin;
}

sf_tensor *sf_st_load(sf_st_file *f, const char *name) {
    const sf_st_entry *e = find_or_fail(f, name);
    if (!e) return NULL;
    if (e->dtype == SF_DTYPE_COUNT)
        return sf_fail_null(SF_ERR_ARG,
                            "%s: tensor '%s' has dtype %s, which the engine cannot hold as is (only a conversion to "
                            "f32 is available)",
                            f->path, name, e->dtype_name);
    sf_tensor *t = sf_tensor_new(e->dtype, e->ndim, e->shape);
    if (!t) return NULL;
    memcpy(sf_tensor_data(t), entry_bytes(f, e), (size_t)(e->end - e->begin));
    return t;
}

sf_tensor *sf_st_view(sf_st_file *f, const char *name) {
    const sf_st_entry *e = find_or_fail(f, name);
    if (!e) return NULL;
    if (e->dtype == SF_DTYPE_COUNT)
        return sf_fail_null(SF_ERR_ARG, "%s: tensor '%s' has dtype %s, which the engine cannot hold", f->path, name,
                            e->dtype_name);
    size_t esz = sf_dtype_size(e->dtype), at = f->data_start + (size_t)e->begin;
    if (at % esz != 0) return sf_st_load(f, name); /* misaligned in the file: a copy instead of a view */
    return sf_tensor_from_storage(f->map, at / esz, e->dtype, e->ndim, e->shape);
}

static float f8_e4m3_to_f32(uint8_t b) { /* E4M3FN: bias 7, no infinities, S.1111.111 is NaN */
    int s = b >> 7, ex = (b >> 3) & 0xf, m = b & 7;
    float v;
    if (ex == 15 && m == 7)
        v = NAN;
    else if (ex == 0)
        v = ldexpf((float)m, -9); /* m/8 * 2^-6 */
    else
        v = ldexpf((float)(8 + m), ex - 10); /* (1 + m/8) * 2^(ex-7) */
    return s ? -v : v;
}

/* Converts n elements of file type ty (little-endian, possibly unaligned) to f32. */
static void convert_to_f32(float *out, const unsigned char *src, int ty, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const unsigned char *p = src + i * st_types[ty].size;
        float v = 0;
        switch ((st_type)ty) {
        case ST_BOOL: v = p[0] ? 1.0f : 0.0f; break;
        case ST_U8: v = p[0]; break;
        case ST_I8: v = (int8_t)p[0]; break;
        case ST_I16: { int16_t x; memcpy(&x, p, 2); v = x; } break;
        case ST_U16: { uint16_t x; memcpy(&x, p, 2); v = x; } break;
        case ST_F16: { uint16_t x; memcpy(&x, p, 2); v = sf_f16_to_f32(x); } break;
        case ST_BF16: { uint16_t x; memcpy(&x, p, 2); v = sf_bf16_to_f32(x); } break;
        case ST_I32: { int32_t x; memcpy(&x, p, 4); v = (float)x; } break;
        case ST_U32: { uint32_t x; memcpy(&x, p, 4); v = (float)x; } break;
        case ST_F32: memcpy(&v, p, 4); break;
        case ST_F64: { double x; memcpy(&x, p, 8); v = (float)x; } break;
        case ST_I64: { int64_t x; memcpy(&x, p, 8); v = (float)x; } break;
        case ST_U64: { uint64_t x; memcpy(&x, p, 8); v = (float)x; } break;
        case ST_F8_E4M3: v = f8_e4m3_to_f32(p[0]); break;
        case ST_F8_E5M2: v = sf_f16_to_f32((uint16_t)(p[0] << 8)); break; /* the top byte of an f16 */
        default: break;
        }
        out[i] = v;
    }
}

sf_tensor *sf_st_load_f32(sf_st_file *f, const char *name) {
    const sf_st_entry *e = find_or_fail(f, name);
    if (!e) return NULL;
    sf_tensor *t = sf_tensor_new_f32(e->ndim, e->shape);
    if (!t) return NULL;
    int ty = st_type_find(e->dtype_name);
    int64_t n = sf_tensor_numel(t);
    if (ty == ST_F32)
        memcpy(sf_f32(t), entry_bytes(f, e), (size_t)n * 4);
    else
        convert_to_f32(sf_f32(t), entry_bytes(f, e), ty, n);
    return t;
}

/* ---- atomic writing ------------------------------------------------------------------------------ */
typedef struct {
    FILE *fp;
    int err; /* errno of the first failed write, 0 if none */
} st_writer;

static int st_emit(void *fh, const void *buf, size_t n) {
    st_writer *w = fh;
    if (w->err) return -1;
    if (n == 0) return 0;
    errno = 0;
    if (fwrite(buf, 1, n, w->fp) != n) {
        w->err = errno ? errno : EIO;
        return -1;
    }
    return 0;
}

static void fsync_parent_dir(const char *path) {
    char *dir = strdup(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash == dir)
        d = "/";
    else if (slash) {
        *slash = '\0';
        d = dir;
    }
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd); /* best effort: the rename already happened; some file systems refuse (EINVAL) */
        close(fd);
    }
    free(dir);
}

sf_status sf_atomic_write(const char *path, sf_write_cb cb, void *ctx) {
    if (!path || !*path) return sf_fail(SF_ERR_ARG, "atomic write: empty path");
    if (!cb) return sf_fail(SF_ERR_ARG, "atomic write of %s: no writer callback", path);
    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp) return sf_fail(SF_ERR_NOMEM, "cannot write %s: out of memory", path);
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());

    struct stat old;
    int keep_mode = stat(path, &old) == 0 && S_ISREG(old.st_mode);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0) {
        sf_status st = sf_fail(SF_ERR_IO, "cannot write %s: cannot create temporary file %s: %s", path, tmp,
                               strerror(errno));
        free(tmp);
        return st;
    }
    if (keep_mode) (void)fchmod(fd, old.st_mode & 07777); /* best effort: a replaced file keeps its mode */
    FILE *fp = fdopen(fd, "wb");
    if (!fp) {
        sf_status st = sf_fail(SF_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return st;
    }
    st_writer w = {fp, 0};
    sf_status st = cb(ctx, st_emit, &w);
    if (w.err)
        st = sf_fail(SF_ERR_IO, "cannot write %s: writing %s failed: %s", path, tmp, strerror(w.err));
    else if (st != SF_OK && sf_last_error()[0] == '\0')
        st = sf_fail(st, "cannot write %s: the writer failed", path);
    if (st == SF_OK && fflush(fp) != 0)
        st = sf_fail(SF_ERR_IO, "cannot write %s: writing %s failed: %s", path, tmp, strerror(errno));
    if (st == SF_OK && fsync(fileno(fp)) != 0)
        st = sf_fail(SF_ERR_IO, "cannot write %s: fsync of %s failed: %s", path, tmp, strerror(errno));
    if (fclose(fp) != 0 && st == SF_OK)
        st = sf_fail(SF_ERR_IO, "cannot write %s: closing %s failed: %s", path, tmp, strerror(errno));
    if (st == SF_OK && rename(tmp, path) != 0)
        st = sf_fail(SF_ERR_IO, "cannot write %s: renaming %s over it failed: %s", path, tmp, strerror(errno));
    if (st != SF_OK) {
        unlink(tmp);
        free(tmp);
        return st;
    }
    free(tmp);
    fsync_parent_dir(path);
    return SF_OK;
}

/* ---- sf_st_save ------------------------------------------------------------------------------------ */
typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_puts(strbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(strbuf *b, const char *fmt, unsigned long long v) {
    char tmp[32];
    int k = snprintf(tmp, sizeof tmp, fmt, v);
    sb_put(b, tmp, (size_t)k);
}

/* A JSON string literal: quotes, backslashes and control characters escaped, other bytes (UTF-8) as is. */
static void sb_json_str(strbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            sb_put(b, esc, 2);
        } else if (*p < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            sb_put(b, esc, 6);
        } else {
            sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

typedef struct {
    const char *header;
    size_t hlen; /* padded to a multiple of 8 */
    int n;
    sf_tensor *const *tensors;
} st_save_ctx;

static sf_status st_save_cb(void *vctx, int (*emit)(void *fh, const void *buf, size_t n), void *fh) {
    const st_save_ctx *c = vctx;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)c->hlen >> (8 * i));
    if (emit(fh, len8, 8) || emit(fh, c->header, c->hlen)) return SF_ERR_IO;
    for (int i = 0; i < c->n; i++)
        if (emit(fh, sf_tensor_data(c->tensors[i]), sf_tensor_nbytes(c->tensors[i]))) return SF_ERR_IO;
    return SF_OK;
}

/* The first name that appears twice in names[0..n), or NULL. Uses a sorted copy. */
static sf_status find_duplicate(const char *const *names, int n, const char **dup) {
    *dup = NULL;
    if (n < 2) return SF_OK;
    const char **s = malloc((size_t)n * sizeof *s);
    if (!s) return sf_fail(SF_ERR_NOMEM, "out of memory (name check)");
    memcpy(s, names, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_str_ptr);
    for (int i = 1; i < n && !*dup; i++)
        if (strcmp(s[i - 1], s[i]) == 0) *dup = s[i];
    free(s);
    return SF_OK;
}

sf_status sf_st_save(const char *path, int n, const char *const *names, sf_tensor *const *tensors, int n_meta,
                     const char *const *meta_keys, const char *const *meta_values) {
    if (!path || !*path) return sf_fail(SF_ERR_ARG, "sf_st_save: empty path");
    if (n < 0 || n_meta < 0 || (n > 0 && (!names || !tensors)) || (n_meta > 0 && (!meta_keys || !meta_values)))
        return sf_fail(SF_ERR_ARG, "save %s: bad tensor or metadata arrays (n = %d, n_meta = %d)", path, n, n_meta);
    for (int i = 0; i < n; i++) {
        if (!names[i] || !names[i][0])
            return sf_fail(SF_ERR_ARG, "save %s: tensor %d has an empty name", path, i);
        if (strcmp(names[i], "__metadata__") == 0)
            return sf_fail(SF_ERR_ARG, "save %s: a tensor cannot be named \"__metadata__\"", path);
        if (!tensors[i]) return sf_fail(SF_ERR_ARG, "save %s: tensor '%s' is NULL", path, names[i]);
        if (!st_engine_name(tensors[i]->dtype))
            return sf_fail(SF_ERR_ARG, "save %s: tensor '%s' has an unknown dtype %d", path, names[i],
                           (int)tensors[i]->dtype);
    }
    for (int i = 0; i < n_meta; i++)
        if (!meta_keys[i] || !meta_values[i])
            return sf_fail(SF_ERR_ARG, "save %s: metadata entry %d has a NULL key or value", path, i);
    const char *dup;
    if (find_duplicate(names, n, &dup) != SF_OK) return sf_last_status();
    if (dup) return sf_fail(SF_ERR_ARG, "save %s: duplicate tensor name '%s'", path, dup);
    if (find_duplicate(meta_keys, n_meta, &dup) != SF_OK) return sf_last_status();
    if (dup) return sf_fail(SF_ERR_ARG, "save %s: duplicate metadata key '%s'", path, dup);

    /* header: {"__metadata__":{...},"name":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},...} */
    strbuf b = {0};
    sb_puts(&b, "{");
    if (n_meta > 0) {
        sb_puts(&b, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_puts(&b, ",");
            sb_json_str(&b, meta_keys[i]);
            sb_puts(&b, ":");
            sb_json_str(&b, meta_values[i]);
        }
        sb_puts(&b, "}");
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const sf_tensor *t = tensors[i];
        if (i || n_meta > 0) sb_puts(&b, ",");
        sb_json_str(&b, names[i]);
        sb_puts(&b, ":{\"dtype\":\"");
        sb_puts(&b, st_engine_name(t->dtype));
        sb_puts(&b, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) sb_printf(&b, d ? ",%llu" : "%llu", (unsigned long long)t->shape[d]);
        uint64_t nb = (uint64_t)sf_tensor_nbytes(t);
        sb_printf(&b, "],\"data_offsets\":[%llu,", (unsigned long long)off);
        off += nb;
        sb_printf(&b, "%llu]}", (unsigned long long)off);
    }
    sb_puts(&b, "}");
    while (!b.oom && b.n % 8 != 0) sb_puts(&b, " ");
    if (b.oom) {
        free(b.p);
        return sf_fail(SF_ERR_NOMEM, "save %s: out of memory (header)", path);
    }
    st_save_ctx c = {b.p, b.n, n, tensors};
    sf_clear_error();
    sf_status st = sf_atomic_write(path, st_save_cb, &c);
    free(b.p);
    return st;
}
