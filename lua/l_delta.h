/* l_delta.h — the sift.Delta userdata (lua/l_delta.c), shared with the sparse-set binding so that
 * s:save_delta(path) can build a delta with sf_delta_from_sparse and hand it to Lua. */
#ifndef L_DELTA_H
#define L_DELTA_H

#include "../core/delta.h"
#include "lsift.h"

#define LSIFT_DELTA "sift.Delta"

/* Pushes a Delta userdata taking ownership of d; d == NULL raises the last core error. Returns 1. */
int lsift_push_delta(lua_State *L, sf_delta *d);
/* The delta at idx (raises if it is not a Delta or has been closed). */
sf_delta *lsift_check_delta(lua_State *L, int idx);
/* Registers sift.load_delta, sift.Delta (the methods table) and the metatable; the module table is on top. */
void lsift_open_delta(lua_State *L);

#endif
