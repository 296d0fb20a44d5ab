/* l_delta.c — the sift.Delta userdata and sift.load_delta(path).
 *
 *   d = sift.load_delta(path)      validated load (core/delta.c)
 *   d:apply(model)                 checks, then writes the delta in (keeps the originals); returns d
 *   d:unapply(model)               restores the originals bit-exactly; returns d
 *   d:check(model)                 true, or raises one error listing every offending tensor
 *   d:save(path)                   atomic write; returns d
 *   d:entries()                    { {name=, k=, shape={...}, dense=bool, sha256=hex (sparse)}, ... }
 *   d:metadata()                   { policy=, rate=, step=, seed=, [extra keys] = "value" }
 *   d1 + d2                        union (values summed on common indices); the result's d.collisions is
 *                                  the number of common indices (nil on deltas not made by +)
 *   0.5 * d, d * 0.5               scaled increments (dense entries unchanged)
 *   d.applied                      boolean
 *   tostring(d)                    "delta: 8 sparse tensors (1234 values), 0 dense, policy topk, rate 0.01, step 120"
 *
 * Userdata are created empty before anything is allocated; __gc / __close free the delta once (an applied
 * delta that is collected leaves the model as it is: its originals are gone). Thin: core/delta.c does the
 * work. This file does not build deltas from sparse sets (the sparse-set binding calls lsift_push_delta).
 */
#include <inttypes.h>
#include <string.h>

#include "../core/dist.h"
#include "l_delta.h"

sf_model *lsift_check_model(lua_State *L, int idx); /* lua/l_model.c */

typedef struct {
    sf_delta *d;
    lua_Integer collisions;
    int has_collisions; /* made by + */
} l_delta;

static l_delta *new_delta_ud(lua_State *L) {
    l_delta *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->d = NULL;
    u->collisions = 0;
    u->has_collisions = 0;
    luaL_setmetatable(L, LSIFT_DELTA);
    return u;
}

int lsift_push_delta(lua_State *L, sf_delta *d) {
    if (!d) return lsift_error(L, "delta");
    l_delta *u = new_delta_ud(L);
    u->d = d;
    return 1;
}

sf_delta *lsift_check_delta(lua_State *L, int idx) {
    l_delta *u = luaL_checkudata(L, idx, LSIFT_DELTA);
    if (!u->d) luaL_argerror(L, idx, "delta has been closed");
    return u->d;
}

static int d_gc(lua_State *L) {
    l_delta *u = luaL_checkudata(L, 1, LSIFT_DELTA);
    sf_delta_free(u->d);
    u->d = NULL;
    return 0;
}

static int l_load_delta(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    l_delta *u = new_delta_ud(L);
    u->d = sf_delta_load(path);
    if (!u->d) return lsift_error(L, "sift.load_delta");
    return 1;
}

static int d_apply(lua_State *L) {
    sf_delta *d = lsift_check_delta(L, 1);
    sf_model *m = lsift_check_model(L, 2);
    if (sf_delta_apply(d, m) != SF_OK) return lsift_error(L, "delta:apply");
    lua_settop(L, 1);
    return 1;
}

static int d_unapply(lua_State *L) {
    sf_delta *d = lsift_check_delta(L, 1);
    sf_model *m = lsift_check_model(L, 2);
    if (sf_delta_unapply(d, m) != SF_OK) return lsift_error(L, "delta:unapply");
    lua_settop(L, 1);
    return 1;
}

static int d_check(lua_State *L) {
    sf_delta *d = lsift_check_delta(L, 1);
    sf_model *m = lsift_check_model(L, 2);
    if (sf_delta_check(d, m) != SF_OK) return lsift_error(L, "delta:check");
    lua_pushboolean(L, 1);
    return 1;
}

static int d_save(lua_State *L) {
    sf_delta *d = lsift_check_delta(L, 1);
    const char *path = luaL_checkstring(L, 2);
    sf_status st = sf_dist_rank() == 0 ? sf_delta_save(d, path) : SF_OK; /* rank 0 writes */
    if (lsift_rank0_wrote(st, path) != SF_OK) return lsift_error(L, "delta:save");
    lua_settop(L, 1);
    return 1;
}

static void push_shape(lua_State *L, int ndim, const int64_t *shape) {
    lua_createtable(L, ndim, 0);
    for (int a = 0; a < ndim; a++) {
        lua_pushinteger(L, (lua_Integer)shape[a]);
        lua_rawseti(L, -2, a + 1);
    }
}

static int d_entries(lua_State *L) {
    sf_delta *d = lsift_check_delta(L, 1);
    lua_createtable(L, d->n, 0);
    for (int i = 0; i < d->n; i++) {
        const sf_delta_entry *e = &d->e[i];
        lua_createtable(L, 0, 5);
        lua_pushstring(L, e->name);
        lua_setfield(L, -2, "name");
        lua_pushinteger(L, (lua_Integer)e->k);
        lua_setfield(L, -2, "k");
        push_shape(L, e->ndim, e->shape);
        lua_setfield(L, -2, "shape");
        lua_pushboolean(L, e->dense);
        lua_setfield(L, -2, "dense");
        if (!e->dense) {
            lua_pushstring(L, e->base_sha256);
            lua_setfield(L, -2, "sha256");
        }
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int d_metadata(lua_State *L) {
    sf_delta *d = lsift_check_delta(L, 1);
    lua_createtable(L, 0, 4 + d->n_extra);
    for (int i = 0; i < d->n_extra; i++) {
        lua_pushstring(L, d->extra_values[i]);
        lua_setfield(L, -2, d->extra_keys[i]);
    }
    lua_pushstring(L, d->policy);
    lua_setfield(L, -2, "policy");
    lua_pushnumber(L, (lua_Number)d->rate);
    lua_setfield(L, -2, "rate");
    lua_pushinteger(L, (lua_Integer)d->step);
    lua_setfield(L, -2, "step");
    if (d->seed <= (uint64_t)LUA_MAXINTEGER) {
        lua_pushinteger(L, (lua_Integer)d->seed);
    } else { /* above 2^63 - 1: as a decimal string, exactly */
        char buf[32];
        snprintf(buf, sizeof buf, "%" PRIu64, d->seed);
        lua_pushstring(L, buf);
    }
    lua_setfield(L, -2, "seed");
    return 1;
}

static int d_add(lua_State *L) {
    sf_delta *a = lsift_check_delta(L, 1);
    sf_delta *b = lsift_check_delta(L, 2);
    l_delta *u = new_delta_ud(L);
    int64_t coll = 0;
    u->d = sf_delta_add(a, b, &coll);
    if (!u->d) return lsift_error(L, "delta + delta");
    u->collisions = (lua_Integer)coll;
    u->has_collisions = 1;
    return 1;
}

static int d_mul(lua_State *L) {
    int di = lua_isnumber(L, 1) ? 2 : 1; /* number * delta or delta * number */
    sf_delta *d = lsift_check_delta(L, di);
    lua_Number f = luaL_checknumber(L, 3 - di);
    l_delta *u = new_delta_ud(L);
    u->d = sf_delta_scale(d, (double)f);
    if (!u->d) return lsift_error(L, "number * delta");
    return 1;
}

static int d_index(lua_State *L) {
    l_delta *u = luaL_checkudata(L, 1, LSIFT_DELTA);
    const char *k = lua_tostring(L, 2);
    if (k && !strcmp(k, "collisions")) {
        if (u->has_collisions) lua_pushinteger(L, u->collisions);
        else lua_pushnil(L);
        return 1;
    }
    if (k && !strcmp(k, "applied")) {
        lua_pushboolean(L, u->d && u->d->applied);
        return 1;
    }
    luaL_getmetatable(L, LSIFT_DELTA);
    lua_getfield(L, -1, "methods");
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
}

static int d_tostring(lua_State *L) {
    l_delta *u = luaL_checkudata(L, 1, LSIFT_DELTA);
    const sf_delta *d = u->d;
    if (!d) {
        lua_pushliteral(L, "delta (closed)");
        return 1;
    }
    char rate[32];
    snprintf(rate, sizeof rate, "%g", d->rate);
    lua_pushfstring(L, "delta: %d sparse tensors (%I values), %d dense, policy %s, rate %s, step %I%s",
                    sf_delta_n_sparse(d), (lua_Integer)sf_delta_n_values(d), sf_delta_n_dense(d),
                    d->policy[0] ? d->policy : "?", rate, (lua_Integer)d->step, d->applied ? ", applied" : "");
    return 1;
}

void lsift_open_delta(lua_State *L) {
    static const luaL_Reg methods[] = {{"apply", d_apply},     {"unapply", d_unapply}, {"check", d_check},
                                       {"save", d_save},       {"entries", d_entries}, {"metadata", d_metadata},
                                       {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", d_gc},   {"__close", d_gc}, {"__index", d_index}, {"__tostring", d_tostring},
                                    {"__add", d_add}, {"__mul", d_mul},  {NULL, NULL}};
    luaL_newmetatable(L, LSIFT_DELTA);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "methods");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_load_delta);
    lua_setfield(L, -2, "load_delta");
    luaL_getmetatable(L, LSIFT_DELTA);
    lua_getfield(L, -1, "methods");
    lua_setfield(L, -3, "Delta");
    lua_pop(L, 1);
}
