/* l_io.c — sift.load_tensors / sift.save_tensors: safetensors files to and from Lua tables of tensors;
 * sift.write_file(path, text): any text, written atomically.
 *
 *   sift.load_tensors(path)                 -> { name = tensor, ..., [".metadata"] = { key = "value" } }
 *   sift.save_tensors(path, tbl, metadata?) -> number of tensors written
 *
 * load_tensors copies every tensor in its stored dtype (so the tensors are writable and do not keep the
 * file mapped); ".metadata" is always present (maybe empty). A dtype the engine cannot hold (F8_*, I8,
 * U16, ...) makes the whole load fail with a message naming it. save_tensors writes every tensor-valued
 * entry of tbl sorted by name (stable files), ignoring the ".metadata" key and values that are not tensors;
 * without a metadata argument, tbl[".metadata"] (if a table) is written as the metadata;
 * metadata keys and values go through tostring and are written sorted by key. The write is atomic (see
 * core/safetensors.h). Errors are Lua errors carrying core's message, which names the file.
 * This file does not validate or parse anything itself: core/safetensors.c does.
 */
#include <stdlib.h>
#include <string.h>

#include "../core/safetensors.h"
#include "../core/dist.h"
#include "lsift.h"

#define LSIFT_STFILE "sift.SafetensorsFile" /* internal: closes the file if a load is interrupted by an error */

typedef struct {
    sf_st_file *f;
} l_stfile;

static int stfile_gc(lua_State *L) {
    l_stfile *u = luaL_checkudata(L, 1, LSIFT_STFILE);
    sf_st_close(u->f); /* idempotent: cleared below */
    u->f = NULL;
    return 0;
}

static int l_load_tensors(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    l_stfile *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->f = NULL; /* safe empty state before anything can fail */
    luaL_setmetatable(L, LSIFT_STFILE);
    u->f = sf_st_open(path);
    if (!u->f) return lsift_error(L, "sift.load_tensors");
    int n = sf_st_count(u->f);
    lua_createtable(L, 0, n + 1);
    for (int i = 0; i < n; i++) {
        const sf_st_entry *e = sf_st_entry_at(u->f, i);
        if (strcmp(e->name, ".metadata") == 0)
            return luaL_error(L, "sift.load_tensors: %s: a tensor named '.metadata' clashes with the metadata key",
                              path);
        sf_tensor *t = sf_st_load(u->f, e->name);
        if (!t) return lsift_error(L, "sift.load_tensors");
        lsift_push_tensor(L, t);
        lua_setfield(L, -2, e->name);
    }
    int nm = sf_st_metadata_count(u->f);
    lua_createtable(L, 0, nm);
    for (int i = 0; i < nm; i++) {
        lua_pushstring(L, sf_st_metadata_value(u->f, i));
        lua_setfield(L, -2, sf_st_metadata_key(u->f, i));
    }
    lua_setfield(L, -2, ".metadata");
    sf_st_close(u->f);
    u->f = NULL;
    return 1;
}

typedef struct {
    const char *k, *v;
} kv;

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }
static int cmp_kv(const void *a, const void *b) { return strcmp(((const kv *)a)->k, ((const kv *)b)->k); }

static int l_save_tensors(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    if (lua_isnil(L, 3)) { /* no metadata argument: keep tbl[".metadata"] (a loaded file saves back whole) */
        lua_getfield(L, 2, ".metadata");
        if (lua_istable(L, -1)) lua_replace(L, 3);
        else lua_pop(L, 1);
    }

    /* 4: the names of the tensor-valued entries (the strings stay anchored in this table) */
    lua_newtable(L);
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        l_tensor *u = luaL_testudata(L, -1, LSIFT_TENSOR);
        if (u) {
            if (lua_type(L, -2) != LUA_TSTRING)
                return luaL_error(L, "sift.save_tensors: %s: tensor under the non-string key %s (names must be "
                                  "strings)", path, luaL_tolstring(L, -2, NULL));
            const char *name = lua_tostring(L, -2);
            if (!u->t) return luaL_error(L, "sift.save_tensors: %s: tensor '%s' has been closed", path, name);
            if (strcmp(name, ".metadata") != 0) {
                lua_pushvalue(L, -2);
                lua_rawseti(L, 4, ++n);
            }
        }
        lua_pop(L, 1);
    }
    /* 5, 6: C arrays as userdata, freed by the GC even if an error is raised below */
    const char **names = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *names, 0);
    sf_tensor **tensors = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *tensors, 0);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 4, i + 1);
        names[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        lua_getfield(L, 2, names[i]);
        tensors[i] = lsift_check_tensor(L, -1); /* still referenced by tbl */
        lua_pop(L, 1);
    }

    /* 7: metadata strings after tostring, anchored as an array; 8: the key/value pairs as C pointers */
    lua_newtable(L);
    int nm = 0;
    if (!lua_isnil(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            luaL_tolstring(L, -2, NULL); /* pushes a new string: the key itself is left intact for lua_next */
            lua_rawseti(L, 7, 2 * nm + 1);
            luaL_tolstring(L, -1, NULL);
            lua_rawseti(L, 7, 2 * nm + 2);
            nm++;
            lua_pop(L, 1);
        }
    }
    kv *meta = lua_newuserdatauv(L, (size_t)(nm ? nm : 1) * sizeof *meta, 0);
    const char **mk = lua_newuserdatauv(L, (size_t)(nm ? nm : 1) * sizeof *mk, 0);
    const char **mv = lua_newuserdatauv(L, (size_t)(nm ? nm : 1) * sizeof *mv, 0);
    for (int i = 0; i < nm; i++) {
        lua_rawgeti(L, 7, 2 * i + 1);
        meta[i].k = lua_tostring(L, -1);
        lua_rawgeti(L, 7, 2 * i + 2);
        meta[i].v = lua_tostring(L, -1);
        lua_pop(L, 2);
    }
    qsort(meta, (size_t)nm, sizeof *meta, cmp_kv);
    for (int i = 0; i < nm; i++) {
        mk[i] = meta[i].k;
        mv[i] = meta[i].v;
    }
    sf_status st = sf_dist_rank() == 0 ? sf_st_save(path, n, names, tensors, nm, mk, mv) : SF_OK; /* rank 0 writes */
    if (lsift_rank0_wrote(st, path) != SF_OK) return lsift_error(L, "sift.save_tensors");
    lua_pushinteger(L, n);
    return 1;
}

typedef struct {
    const char *data;
    size_t len;
} text_ctx;

static sf_status emit_text(void *ctx, int (*emit)(void *fh, const void *buf, size_t n), void *fh) {
    text_ctx *c = ctx;
    return emit(fh, c->data, c->len) ? SF_ERR_IO : SF_OK; /* sf_atomic_write reports the errno */
}

/* sift.write_file(path, text) -> path: writes a string to a file atomically (temp file + fsync + rename), so
 * a failure leaves any earlier file whole; with several processes rank 0 writes and every rank learns how
 * it went. Plots, experiment results (JSON) and reports go through it. */
static int l_write_file(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    text_ctx c;
    c.data = luaL_checklstring(L, 2, &c.len);
    sf_status st = sf_dist_rank() == 0 ? sf_atomic_write(path, emit_text, &c) : SF_OK;
    if (lsift_rank0_wrote(st, path) != SF_OK) return lsift_error(L, "sift.write_file");
    lua_settop(L, 1);
    return 1;
}

void lsift_open_io(lua_State *L) {
    if (luaL_newmetatable(L, LSIFT_STFILE)) {
        lua_pushcfunction(L, stfile_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"load_tensors", l_load_tensors}, {"save_tensors", l_save_tensors},
                                   {"write_file", l_write_file}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
