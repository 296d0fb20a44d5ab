/* l_probe.c — tensor methods and functions the analyses are built from (lua/sift/analysis.lua and
 * landscape.lua): t:top_indices(k), idx:count_common(other), sift.direction(w, opts),
 * p:combine_(base, a, d1, b, d2) and sift.budget(rate, numel) (the sparse sets' k). Thin: arguments are
 * checked here, the work is core's (sift.h's top-k and budget, direction.h). What it does not do: walk
 * grids or compare sets (the Lua files do). */
#include <stdlib.h>
#include <string.h>

#include "../core/direction.h"
#include "../core/sift.h"
#include "lsift.h"

/* t:top_indices(k) -> i64 tensor (k): flat 0-based offsets of t's k entries of largest magnitude (ties to the
 * lower offset; NaN counts as 0), ascending — the mask the topk policy would pick from a gradient t. */
static int t_top_indices(lua_State *L) {
    sf_tensor *t = lsift_check_tensor(L, 1);
    lua_Integer k = luaL_checkinteger(L, 2);
    int64_t n = sf_tensor_numel(t);
    if (k < 0 || k > n) return luaL_error(L, "top_indices: k = %I outside 0..%I", (lua_Integer)k, (lua_Integer)n);
    sf_tensor *tf = sf_tensor_to_f32(t);
    if (!tf) return lsift_error(L, "top_indices");
    int64_t shape[1] = {k};
    sf_tensor *out = sf_tensor_new(SF_I64, 1, shape);
    float *score = malloc((size_t)(n ? n : 1) * sizeof *score);
    sf_status st = out && score ? SF_OK : sf_fail(SF_ERR_NOMEM, "out of memory for %lld scores", (long long)n);
    if (!st) {
        const float *v = sf_f32(tf);
        for (int64_t i = 0; i < n; i++) score[i] = v[i] < 0 ? -v[i] : v[i];
        st = sf_topk_indices(score, n, k, (int64_t *)sf_tensor_data(out));
    }
    free(score);
    sf_tensor_release(tf);
    if (st) {
        sf_tensor_release(out);
        return lsift_error(L, "top_indices");
    }
    lsift_push_tensor(L, out);
    return 1;
}

/* reads an index tensor (i64 or i32, 1-D) and checks it ascends strictly */
static const void *ascending_indices(lua_State *L, int idx, int64_t *n, int *wide) {
    sf_tensor *t = lsift_check_tensor(L, idx);
    if ((t->dtype != SF_I64 && t->dtype != SF_I32) || t->ndim != 1)
        luaL_error(L, "count_common: argument %d must be a 1-D i64 tensor of offsets (as s:indices gives), got %s with %d dims",
                   idx, sf_dtype_name(t->dtype), t->ndim);
    *n = sf_tensor_numel(t);
    *wide = t->dtype == SF_I64;
    const void *d = sf_tensor_data(t);
    for (int64_t i = 1; i < *n; i++) {
        int64_t a = *wide ? ((const int64_t *)d)[i - 1] : ((const int32_t *)d)[i - 1];
        int64_t b = *wide ? ((const int64_t *)d)[i] : ((const int32_t *)d)[i];
        if (b <= a) luaL_error(L, "count_common: argument %d is not strictly ascending at entry %I", idx, (lua_Integer)(i + 1));
    }
    return d;
}

/* idx:count_common(other) -> number of offsets the two strictly ascending index tensors share */
static int t_count_common(lua_State *L) {
    int64_t na, nb;
    int wa, wb;
    const void *a = ascending_indices(L, 1, &na, &wa), *b = ascending_indices(L, 2, &nb, &wb);
    int64_t i = 0, j = 0, common = 0;
    while (i < na && j < nb) {
        int64_t x = wa ? ((const int64_t *)a)[i] : ((const int32_t *)a)[i];
        int64_t y = wb ? ((const int64_t *)b)[j] : ((const int32_t *)b)[j];
        common += x == y;
        i += x <= y;
        j += y <= x;
    }
    lua_pushinteger(L, common);
    return 1;
}

static sf_dir_norm check_norm(lua_State *L, const char *s) {
    if (!strcmp(s, "filter")) return SF_DIR_FILTER;
    if (!strcmp(s, "layer")) return SF_DIR_LAYER;
    if (!strcmp(s, "none")) return SF_DIR_NONE;
    luaL_error(L, "sift.direction: normalize must be \"filter\", \"layer\" or \"none\", got \"%s\"", s);
    return SF_DIR_NONE;
}

/* options of sift.direction (table at index 2): an integer (0 when absent) / a string (def when absent) */
static lua_Integer int_field(lua_State *L, const char *key) {
    lua_getfield(L, 2, key);
    int ok = 1;
    lua_Integer v = lua_isnil(L, -1) ? 0 : lua_tointegerx(L, -1, &ok);
    if (!ok) luaL_error(L, "sift.direction: %s must be an integer, got %s", key, luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

static const char *string_field(lua_State *L, const char *key, const char *def) {
    lua_getfield(L, 2, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return def;
    }
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "sift.direction: %s must be a string, got %s", key, luaL_typename(L, -1));
    const char *v = lua_tostring(L, -1); /* stays alive: the options table holds it */
    lua_pop(L, 1);
    return v;
}

/* sift.direction(w, {seed = 0, stream = 0, normalize = "filter", filters = "rows" | "cols"}) -> f32 tensor of
 * w's shape: N(0, 1) entries scaled so each filter (row, or column with filters = "cols") has the norm of w's
 * same filter ("layer": the whole tensor has w's norm; "none": as drawn). */
static int l_direction(lua_State *L) {
    sf_tensor *w = lsift_check_tensor(L, 1);
    lua_Integer seed = 0, stream = 0;
    const char *norm = "filter", *filters = "rows";
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        static const char *const options[] = {"seed", "stream", "normalize", "filters", NULL};
        lsift_check_options(L, 2, "sift.direction", options);
        seed = int_field(L, "seed");
        stream = int_field(L, "stream");
        norm = string_field(L, "normalize", norm);
        filters = string_field(L, "filters", filters);
    }
    sf_dir_norm nm = check_norm(L, norm);
    if (strcmp(filters, "rows") && strcmp(filters, "cols"))
        return luaL_error(L, "sift.direction: filters must be \"rows\" or \"cols\", got \"%s\"", filters);
    sf_wlayout layout = !strcmp(filters, "cols") ? SF_W_IN_OUT : SF_W_OUT_IN;
    sf_tensor *d = sf_tensor_new_f32(w->ndim, w->shape);
    if (!d) return lsift_error(L, "sift.direction");
    if (sf_direction_random(d, w, (uint64_t)seed, (uint64_t)stream, nm, layout)) {
        sf_tensor_release(d);
        return lsift_error(L, "sift.direction");
    }
    lsift_push_tensor(L, d);
    return 1;
}

/* p:combine_(base, a, d1 [, b, d2]) sets p = base + a * d1 + b * d2 in place and returns p */
static int t_combine_(lua_State *L) {
    sf_tensor *p = lsift_check_tensor(L, 1), *base = lsift_check_tensor(L, 2);
    float a = (float)luaL_checknumber(L, 3);
    sf_tensor *d1 = lsift_check_tensor(L, 4), *d2 = NULL;
    float b = 0;
    if (!lua_isnoneornil(L, 5)) {
        b = (float)luaL_checknumber(L, 5);
        d2 = lsift_check_tensor(L, 6);
    }
    if (sf_tensor_combine(p, base, a, d1, b, d2)) return lsift_error(L, "combine_");
    lua_settop(L, 1);
    return 1;
}

/* sift.budget(rate, numel) -> k: how many entries a sparse set of this rate trains in a tensor of numel
 * (the reference's rule, floor(rate * numel) + 1, at most numel; 0 for an empty tensor) */
static int l_budget(lua_State *L) {
    lua_Number rate = luaL_checknumber(L, 1);
    lua_Integer numel = luaL_checkinteger(L, 2);
    if (!(rate >= 0 && rate <= 1)) return luaL_error(L, "sift.budget: rate %f outside [0, 1]", (double)rate);
    if (numel < 0) return luaL_error(L, "sift.budget: numel %I is negative", numel);
    lua_pushinteger(L, sf_sparse_budget(rate, numel));
    return 1;
}

void lsift_open_probe(lua_State *L) {
    static const luaL_Reg methods[] = {{"top_indices", t_top_indices},
                                       {"count_common", t_count_common},
                                       {"combine_", t_combine_},
                                       {NULL, NULL}};
    luaL_getmetatable(L, LSIFT_TENSOR);
    lua_getfield(L, -1, "__index");
    luaL_setfuncs(L, methods, 0);
    lua_pop(L, 2);
    lua_pushcfunction(L, l_direction);
    lua_setfield(L, -2, "direction");
    lua_pushcfunction(L, l_budget);
    lua_setfield(L, -2, "budget");
}
