/* l_tokenizer.c — the sift.Tokenizer userdata over core/tokenizer.h.
 *
 *   tok = sift.tokenizer(path)            HF folder or tokenizer.json, GPT-2 encoder.json + vocab.bpe, llama2.c tok*.bin
 *   tok:encode(text, {bos = false, eos = false}) -> table of 0-based token ids (the model's own ids)
 *   tok:decode(ids)                       ids: table of integers or an integer-valued tensor (any shape, flattened)
 *   tok:vocab_size() (also #tok), tok:piece(id) -> bytes of one token, tok:lookup(piece) -> id or nil
 *   tok.bos, tok.eos                      ids, or nil when the tokenizer has none; tok.kind: "bpe" | "llama2c"
 * Ids stay 0-based in Lua, like the checkpoint's embedding rows. C buffers live in small userdata boxes
 * whose __gc frees them, so a Lua error (even out of memory) never leaks them. Does not tokenise
 * datasets (that is the training / data code's job).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/tokenizer.h"
#include "lsift.h"

#define LSIFT_TOKENIZER "sift.Tokenizer"
#define LSIFT_TOKBUF "sift.TokenizerBuffer"

typedef struct {
    sf_tokenizer *t; /* NULL when closed */
} l_tokenizer;

typedef struct {
    void *p; /* malloc'd by core or here; freed by __gc */
} l_box;

static int box_gc(lua_State *L) {
    l_box *b = luaL_checkudata(L, 1, LSIFT_TOKBUF);
    free(b->p);
    b->p = NULL;
    return 0;
}

static l_box *push_box(lua_State *L) {
    l_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->p = NULL;
    luaL_setmetatable(L, LSIFT_TOKBUF);
    return b;
}

/* Raises "<what>: <core message>", dropping core's own "tokenizer...: " prefix. */
static int tok_error(lua_State *L, const char *what) {
    const char *msg = sf_last_error();
    const char *colon = strstr(msg, ": ");
    if (!strncmp(msg, "tokenizer", 9) && colon) msg = colon + 2;
    return luaL_error(L, "%s: %s", what, msg);
}

static sf_tokenizer *check_tok(lua_State *L, int idx) {
    l_tokenizer *u = luaL_checkudata(L, idx, LSIFT_TOKENIZER);
    if (!u->t) luaL_argerror(L, idx, "tokenizer has been closed");
    return u->t;
}

static int tok_gc(lua_State *L) {
    l_tokenizer *u = luaL_checkudata(L, 1, LSIFT_TOKENIZER);
    sf_tokenizer_free(u->t);
    u->t = NULL;
    return 0;
}

static int l_tokenizer_new(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    l_tokenizer *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->t = NULL; /* safe empty state before anything can fail */
    luaL_setmetatable(L, LSIFT_TOKENIZER);
    u->t = sf_tokenizer_load(path);
    if (!u->t) return tok_error(L, "sift.tokenizer");
    return 1;
}

static int opt_flag(lua_State *L, int opts, const char *key) {
    if (lua_isnoneornil(L, opts)) return 0;
    luaL_checktype(L, opts, LUA_TTABLE);
    lua_getfield(L, opts, key);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static int tok_encode(lua_State *L) {
    sf_tokenizer *t = check_tok(L, 1);
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    static const char *const options[] = {"bos", "eos", NULL};
    lsift_check_options(L, 3, "encode", options);
    int bos = opt_flag(L, 3, "bos"), eos = opt_flag(L, 3, "eos");
    l_box *b = push_box(L);
    int32_t *ids = NULL;
    size_t n = 0;
    if (sf_tokenizer_encode(t, text, len, bos, &ids, &n) != SF_OK) return tok_error(L, "encode");
    b->p = ids;
    int32_t e = sf_tokenizer_eos(t);
    lua_createtable(L, (int)(n + 1), 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushinteger(L, ids[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    if (eos && e >= 0) {
        lua_pushinteger(L, e);
        lua_rawseti(L, -2, (lua_Integer)n + 1);
    }
    free(b->p);
    b->p = NULL;
    return 1;
}

/* Reads ids (table or tensor at idx) into a boxed int32 array left on the stack; positions in messages
 * are 1-based like the Lua table. */
static int32_t *read_ids(lua_State *L, int idx, size_t *n_out) {
    double vocab = (double)sf_tokenizer_vocab_size(check_tok(L, 1));
    sf_tensor *ten = lsift_test_tensor(L, idx);
    size_t n;
    if (ten) {
        n = (size_t)sf_tensor_numel(ten);
    } else {
        if (!lua_istable(L, idx))
            luaL_error(L, "decode: expected a table of ids or a tensor, got %s", luaL_typename(L, idx));
        n = (size_t)luaL_len(L, idx);
    }
    l_box *b = push_box(L);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) luaL_error(L, "decode: out of memory for %d ids", (int)n);
    b->p = ids;
    for (size_t i = 0; i < n; i++) {
        double v;
        if (ten) {
            v = sf_tensor_get_flat(ten, (int64_t)i);
        } else {
            lua_geti(L, idx, (lua_Integer)i + 1);
            int isnum;
            v = (double)lua_tonumberx(L, -1, &isnum);
            if (!isnum) luaL_error(L, "decode: ids[%d] is %s, expected an integer", (int)i + 1, luaL_typename(L, -1));
            lua_pop(L, 1);
        }
        if (v != floor(v)) luaL_error(L, "decode: ids[%d] = %f is not an integer", (int)i + 1, (lua_Number)v);
        if (!(v >= 0 && v < vocab)) {
            if (fabs(v) < 1e18)
                luaL_error(L, "decode: ids[%d] = %I is out of range 0..%d", (int)i + 1, (lua_Integer)v, (int)vocab - 1);
            luaL_error(L, "decode: ids[%d] = %f is out of range 0..%d", (int)i + 1, (lua_Number)v, (int)vocab - 1);
        }
        ids[i] = (int32_t)v;
    }
    *n_out = n;
    return ids;
}

static int tok_decode(lua_State *L) {
    sf_tokenizer *t = check_tok(L, 1);
    size_t n;
    int32_t *ids = read_ids(L, 2, &n); /* box on the stack */
    l_box *ob = push_box(L);
    char *out = NULL;
    size_t len = 0;
    if (sf_tokenizer_decode(t, ids, n, &out, &len) != SF_OK) return tok_error(L, "decode");
    ob->p = out;
    lua_pushlstring(L, out, len);
    return 1;
}

static int tok_vocab_size(lua_State *L) {
    lua_pushinteger(L, sf_tokenizer_vocab_size(check_tok(L, 1)));
    return 1;
}

static int tok_piece(lua_State *L) {
    sf_tokenizer *t = check_tok(L, 1);
    lua_Integer id = luaL_checkinteger(L, 2);
    size_t len;
    const char *p = id >= 0 && id <= INT32_MAX ? sf_tokenizer_piece(t, (int32_t)id, &len) : NULL;
    if (!p)
        return luaL_error(L, "piece: id %d is not a token (vocabulary 0..%d)", (int)id,
                          (int)sf_tokenizer_vocab_size(t) - 1);
    lua_pushlstring(L, p, len);
    return 1;
}

static int tok_lookup(lua_State *L) {
    sf_tokenizer *t = check_tok(L, 1);
    int32_t id = sf_tokenizer_lookup(t, luaL_checkstring(L, 2));
    if (id < 0) lua_pushnil(L);
    else lua_pushinteger(L, id);
    return 1;
}

static int tok_close(lua_State *L) { return tok_gc(L); }

static const char *kind_name(const sf_tokenizer *t) {
    return sf_tokenizer_get_kind(t) == SF_TOK_LLAMA2C ? "llama2c" : "bpe";
}

static int tok_tostring(lua_State *L) {
    l_tokenizer *u = luaL_checkudata(L, 1, LSIFT_TOKENIZER);
    if (!u->t) {
        lua_pushliteral(L, "sift.Tokenizer(closed)");
        return 1;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_pushfstring(L, "sift.Tokenizer(%s, %d tokens", sf_tokenizer_get_kind(u->t) == SF_TOK_LLAMA2C ? "llama2.c" : "byte-level BPE",
                    (int)sf_tokenizer_vocab_size(u->t));
    luaL_addvalue(&b);
    if (sf_tokenizer_bos(u->t) >= 0) {
        lua_pushfstring(L, ", bos %d", (int)sf_tokenizer_bos(u->t));
        luaL_addvalue(&b);
    }
    if (sf_tokenizer_eos(u->t) >= 0) {
        lua_pushfstring(L, ", eos %d", (int)sf_tokenizer_eos(u->t));
        luaL_addvalue(&b);
    }
    luaL_addchar(&b, ')');
    luaL_pushresult(&b);
    return 1;
}

/* __index: methods (upvalue 1) first, then the fields bos, eos, kind. */
static int tok_index(lua_State *L) {
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
    const char *k = lua_tostring(L, 2);
    if (!k) return 1; /* nil */
    int32_t v = -2;
    if (!strcmp(k, "bos")) v = sf_tokenizer_bos(check_tok(L, 1));
    else if (!strcmp(k, "eos")) v = sf_tokenizer_eos(check_tok(L, 1));
    else if (!strcmp(k, "kind")) {
        lua_pushstring(L, kind_name(check_tok(L, 1)));
        return 1;
    }
    if (v >= 0) lua_pushinteger(L, v);
    else lua_pushnil(L);
    return 1;
}

void lsift_open_tokenizer(lua_State *L) {
    static const luaL_Reg methods[] = {{"encode", tok_encode},   {"decode", tok_decode}, {"vocab_size", tok_vocab_size},
                                       {"piece", tok_piece},     {"lookup", tok_lookup}, {"close", tok_close},
                                       {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", tok_gc},
                                    {"__close", tok_close},
                                    {"__tostring", tok_tostring},
                                    {"__len", tok_vocab_size},
                                    {NULL, NULL}};
    luaL_newmetatable(L, LSIFT_TOKBUF);
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newmetatable(L, LSIFT_TOKENIZER);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -4, "Tokenizer"); /* sift.Tokenizer = the method table, for completion and help */
    lua_pushcclosure(L, tok_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_tokenizer_new);
    lua_setfield(L, -2, "tokenizer");
}
