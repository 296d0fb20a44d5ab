/* lsift.h — shared declarations of the Lua binding (lua/l_*.c). The binding is thin: it converts
 * arguments, calls core/, and raises a Lua error with core's message on failure. It never calls Lua
 * from worker threads and keeps C state consistent before raising. */
#ifndef LSIFT_H
#define LSIFT_H

#include <lauxlib.h>
#include <lua.h>

#include "../core/tensor.h"

#define SIFT_VERSION "0.1.0"
#define LSIFT_TENSOR "sift.Tensor"

/* Tensor userdata: {sf_tensor *t}; t == NULL after close. */
typedef struct {
    sf_tensor *t;
} l_tensor;

/* Pushes a tensor userdata taking over one reference to t (t == NULL raises the last core error). */
void lsift_push_tensor(lua_State *L, sf_tensor *t);
sf_tensor *lsift_check_tensor(lua_State *L, int idx);
sf_tensor *lsift_test_tensor(lua_State *L, int idx); /* NULL if not a tensor */
/* Raises a Lua error "<what>: <core message>". */
int lsift_error(lua_State *L, const char *what);
/* Converts a Lua value (nested table of numbers, or a tensor) to an i64 tensor of ids with the given rank
 * (1 or 2); returns a new reference. */
sf_tensor *lsift_to_ids(lua_State *L, int idx, const char *what);
/* The same for any dtype (a tensor of another dtype is converted; table values must fit it). */
sf_tensor *lsift_to_dtype(lua_State *L, int idx, sf_dtype dt, const char *what);

/* Registration of each part of the module table (the table is on top of the stack). */
void lsift_open_tensor(lua_State *L);
void lsift_open_print(lua_State *L);
void lsift_open_io(lua_State *L);        /* l_io.c: load_tensors, save_tensors */
void lsift_open_tokenizer(lua_State *L); /* l_tokenizer.c: sift.tokenizer */
void lsift_open_model(lua_State *L);
void lsift_open_sets(lua_State *L);      /* l_sets.c: sift._sparse/_lora/_full, sift.AdamW */
void lsift_open_dist(lua_State *L);      /* l_dist.c: sift.dist */
void lsift_open_probe(lua_State *L);     /* l_probe.c: t:top_indices, idx:count_common, sift.direction, t:combine_ */
void lsift_open_options(lua_State *L);   /* l_options.c: sift._check_options */
/* Raises "who: unknown option 'key' (did you mean ...?); known: ..." (at the caller's line) when the table
 * at idx has a key not in known (NULL-terminated); nothing when idx is not a table. */
void lsift_check_options(lua_State *L, int idx, const char *who, const char *const known[]);
/* The same for a data table's fields (a batch, a config): "who: unknown field 'key' ...". */
void lsift_check_fields(lua_State *L, int idx, const char *who, const char *const known[]);
/* Several processes write a file once: rank 0 writes (st is its status, SF_OK on the others, which do
 * not write) and every rank learns whether it did; returns the status each rank reports. One process:
 * st. */
sf_status lsift_rank0_wrote(sf_status st, const char *path);
/* Formats a tensor like PyTorch into a Lua string pushed on the stack. */
void lsift_push_tensor_string(lua_State *L, const sf_tensor *t);

int luaopen_sift(lua_State *L);
#endif
