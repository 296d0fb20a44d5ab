/* safetensors.h — reading and writing the safetensors format.
 *
 * Reader: the file is mmap'd read-only and fully validated on open: u64 little-endian header length
 * (bounded: at most 100 MB and within the file), JSON header starting with '{', an optional
 * "__metadata__" map of string -> string, per tensor {"dtype", "shape", "data_offsets": [begin, end]}
 * with a known dtype, non-negative shape whose product (no overflow) times the dtype size equals
 * end - begin, offsets contiguous from 0 with no holes or overlaps (in offset order), and the data
 * section ending exactly at the end of the file. Every violation is an error naming the file and the
 * tensor. Tensors handed out are views on the mapping (the mapping lives until the file and every view
 * are released) or f32 copies.
 * Writer: 8-byte aligned header (padded with spaces), tensors in the given order, written to a temp
 * file in the same directory, fsync'd and renamed over the target, so a failure (e.g. a full disk)
 * never leaves a truncated file nor destroys an existing one.
 * This file does not know about models.
 */
#ifndef SF_SAFETENSORS_H
#define SF_SAFETENSORS_H

#include "tensor.h"

typedef struct {
    char *name;
    char dtype_name[8]; /* as in the file: "F32", "BF16", ... */
    sf_dtype dtype;     /* engine dtype, or -1 (SF_DTYPE_COUNT) when the engine cannot hold it (e.g. F8_E4M3) */
    int ndim;
    int64_t shape[SF_MAX_DIMS];
    uint64_t begin, end; /* byte offsets within the data section */
} sf_st_entry;

typedef struct sf_st_file sf_st_file;

sf_st_file *sf_st_open(const char *path);
void sf_st_close(sf_st_file *f); /* NULL-safe; views stay valid */
const char *sf_st_path(const sf_st_file *f);
int sf_st_count(const sf_st_file *f);
const sf_st_entry *sf_st_entry_at(const sf_st_file *f, int i); /* in file (offset) order */
const sf_st_entry *sf_st_find(const sf_st_file *f, const char *name);
/* A tensor viewing the mapped bytes in the file's dtype (read-only memory: do not write into it). */
sf_tensor *sf_st_view(sf_st_file *f, const char *name);
/* A new f32 tensor converted from the stored dtype (F32/F16/BF16/F64/I64/I32/...). */
sf_tensor *sf_st_load_f32(sf_st_file *f, const char *name);
/* A new tensor in the stored dtype (a copy, writable). */
sf_tensor *sf_st_load(sf_st_file *f, const char *name);
int sf_st_metadata_count(const sf_st_file *f);
const char *sf_st_metadata_key(const sf_st_file *f, int i);
const char *sf_st_metadata_value(const sf_st_file *f, int i);
const char *sf_st_metadata_get(const sf_st_file *f, const char *key); /* NULL if absent */

/* Writes n tensors (any engine dtype) with names, and n_meta metadata pairs, atomically.
 * Names must be unique and non-empty (an error otherwise, before anything is written). */
sf_status sf_st_save(const char *path, int n, const char *const *names, sf_tensor *const *tensors, int n_meta,
                     const char *const *meta_keys, const char *const *meta_values);

/* Atomic file writing helper shared with other writers: writes `len` bytes from the chunks produced by
 * `write_cb` to path via temp file + fsync + rename (+ fsync of the directory). */
typedef sf_status (*sf_write_cb)(void *ctx, int (*emit)(void *fh, const void *buf, size_t n), void *fh);
sf_status sf_atomic_write(const char *path, sf_write_cb cb, void *ctx);

#endif
