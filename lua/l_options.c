/* l_options.c — refuses option tables holding keys the function does not know. Without it a misspelt
 * option (n_layers for n_layer, rat for rate, lables in a batch) would be ignored and the call would run
 * on its defaults, silently: a different model, a different rate, no loss. One check for the C binding
 * (lsift_check_options) and the same for the Lua library (sift._check_options).
 *
 * What it does not do: check the values (each function does), or look into nested tables. */
#include <string.h>

#include "lsift.h"

/* Edit distance between a and b, capped: anything above 3 counts as 3 (only near misses are suggested). */
static int near_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    if (na > 40 || nb > 40 || (na > nb ? na - nb : nb - na) > 2) return 3;
    int row[41];
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            const int up = row[j], best_del = (up < row[j - 1] ? up : row[j - 1]) + 1;
            const int sub = diag + (a[i - 1] != b[j - 1]);
            diag = up;
            row[j] = sub < best_del ? sub : best_del;
        }
    }
    return row[nb] < 3 ? row[nb] : 3;
}

/* Raises "<where>who: unknown <noun> 'key' (did you mean 'k'?); known: a, b, c". */
static int unknown_key(lua_State *L, int level, const char *who, const char *noun, const char *key,
                       const char *const known[]) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_where(L, level);
    luaL_addvalue(&b);
    luaL_addstring(&b, who);
    luaL_addstring(&b, ": unknown ");
    luaL_addstring(&b, noun);
    luaL_addstring(&b, " '");
    luaL_addstring(&b, key);
    luaL_addstring(&b, "'");
    const char *best = NULL;
    int best_d = 3;
    for (int i = 0; known[i]; i++) {
        const int d = near_distance(key, known[i]);
        if (d < best_d) best_d = d, best = known[i];
    }
    if (best) {
        luaL_addstring(&b, " (did you mean '");
        luaL_addstring(&b, best);
        luaL_addstring(&b, "'?)");
    }
    luaL_addstring(&b, "; known: ");
    for (int i = 0; known[i]; i++) {
        if (i) luaL_addstring(&b, ", ");
        luaL_addstring(&b, known[i]);
    }
    luaL_pushresult(&b);
    return lua_error(L);
}

/* The check itself; level is luaL_where's for the message's position. */
static void check_at(lua_State *L, int idx, const char *who, const char *noun, const char *const known[], int level) {
    if (!lua_istable(L, idx)) return;
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1); /* the value */
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pushfstring(L, "a %s key", luaL_typename(L, -1));
            unknown_key(L, level, who, noun, lua_tostring(L, -1), known);
        }
        const char *key = lua_tostring(L, -1);
        int found = 0;
        for (int i = 0; known[i] && !found; i++) found = strcmp(key, known[i]) == 0;
        if (!found) unknown_key(L, level, who, noun, key, known);
    }
}

void lsift_check_options(lua_State *L, int idx, const char *who, const char *const known[]) {
    check_at(L, idx, who, "option", known, 1);
}

void lsift_check_fields(lua_State *L, int idx, const char *who, const char *const known[]) {
    check_at(L, idx, who, "field", known, 1);
}

/* sift._check_options(opts, who, {known...} [, level]) -> opts. For the Lua library's functions: level 2
 * (the default) names the line that called the function that calls this. nil opts pass. */
static int l_check_options(lua_State *L) {
    const char *who = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    const int level = (int)luaL_optinteger(L, 4, 2);
    if (lua_isnoneornil(L, 1)) return 0;
    if (!lua_istable(L, 1)) {
        luaL_where(L, level);
        lua_pushfstring(L, "%s: options must be a table, got %s", who, luaL_typename(L, 1));
        lua_concat(L, 2);
        return lua_error(L);
    }
    const lua_Integer n = luaL_len(L, 3);
    if (n > 256) return luaL_error(L, "sift._check_options: at most 256 known keys");
    const char *known[257];
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 3, i);
        known[i - 1] = lua_tostring(L, -1); /* kept alive by the table at 3 */
        lua_pop(L, 1);
        if (!known[i - 1]) return luaL_error(L, "sift._check_options: known keys must be strings");
    }
    known[n] = NULL;
    check_at(L, 1, who, "option", known, level);
    lua_settop(L, 1);
    return 1;
}

void lsift_open_options(lua_State *L) {
    lua_pushcfunction(L, l_check_options);
    lua_setfield(L, -2, "_check_options");
}
