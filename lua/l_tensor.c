/* l_tensor.c — the sift.Tensor userdata: constructors (sift.tensor, sift.zeros, sift.randn), inspection
 * (shape, numel, dtype, get, totable), conversion (float), comparisons (max_abs_diff, norm, range) and simple
 * arithmetic (+ - * and matmul, computed eagerly without a tape). Printing lives in l_print.c.
 * Indices in Lua are 1-based. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/gemm.h"
#include "../core/rng.h"
#include "lsift.h"

/* ---- userdata plumbing ---- */
/* Lua's collector sees only the small userdata, not the tensor memory behind it, so big tensors that
 * became garbage (the logits of the last step, say) would wait for a cycle paced by Lua's own small
 * heap while new ones pile up. Every push adds the tensor's bytes to a debt kept in the state's extra
 * space; past 8 MB the collector takes a step as if that much had been allocated. */
static void note_external_bytes(lua_State *L, size_t bytes) {
    size_t *debt = lua_getextraspace(L);
    *debt += bytes;
    if (*debt >= ((size_t)8 << 20)) {
        size_t kb = *debt >> 10;
        *debt = 0;
        lua_gc(L, LUA_GCSTEP, kb > INT32_MAX ? INT32_MAX : (int)kb);
    }
}

void lsift_push_tensor(lua_State *L, sf_tensor *t) {
    if (!t) lsift_error(L, "tensor");
    l_tensor *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->t = NULL; /* safe empty state before anything can fail */
    luaL_setmetatable(L, LSIFT_TENSOR);
    u->t = t;
    note_external_bytes(L, (size_t)sf_tensor_numel(t) * sf_dtype_size(t->dtype));
}

sf_tensor *lsift_test_tensor(lua_State *L, int idx) {
    l_tensor *u = luaL_testudata(L, idx, LSIFT_TENSOR);
    return u ? u->t : NULL;
}

sf_tensor *lsift_check_tensor(lua_State *L, int idx) {
    l_tensor *u = luaL_checkudata(L, idx, LSIFT_TENSOR);
    if (!u->t) luaL_argerror(L, idx, "tensor has been closed");
    return u->t;
}

static int t_gc(lua_State *L) {
    l_tensor *u = luaL_checkudata(L, 1, LSIFT_TENSOR);
    sf_tensor_release(u->t); /* idempotent: cleared below */
    u->t = NULL;
    return 0;
}

/* ---- construction from nested tables ---- */
static void table_shape(lua_State *L, int idx, int depth, int *ndim, int64_t *shape) {
    lua_Integer n = luaL_len(L, idx);
    if (depth >= SF_MAX_DIMS) luaL_error(L, "sift.tensor: more than %d nested levels", SF_MAX_DIMS);
    shape[depth] = n;
    *ndim = depth + 1;
    if (n == 0) return;
    lua_geti(L, idx, 1);
    if (lua_istable(L, -1)) table_shape(L, lua_gettop(L), depth + 1, ndim, shape);
    lua_pop(L, 1);
}

/* Writes the number at stack index idx into t's flat position i. An integer dtype takes only an integer
 * within its range (i64: any Lua integer, exactly; i32; u8: 0..255), else an error names the value and
 * its position: no conversion out of range (undefined behaviour in C), no NaN cast to an integer. */
static void store_number(lua_State *L, sf_tensor *t, int64_t i, int idx, const char *who) {
    if (t->dtype != SF_I64 && t->dtype != SF_I32 && t->dtype != SF_U8) {
        sf_tensor_set_flat(t, i, lua_tonumber(L, idx));
        return;
    }
    lua_Integer iv = 0;
    int ok = 1;
    if (lua_isinteger(L, idx))
        iv = lua_tointeger(L, idx);
    else {
        const lua_Number v = lua_tonumber(L, idx);
        ok = lua_numbertointeger(v, &iv) && (lua_Number)iv == v; /* false for NaN, +-Inf, fractions, 2^63 */
    }
    if (ok && t->dtype == SF_I32) ok = iv >= INT32_MIN && iv <= INT32_MAX;
    if (ok && t->dtype == SF_U8) ok = iv >= 0 && iv <= 255;
    if (!ok)
        luaL_error(L, "%s: position %I of a %s tensor takes an integer in its range, got %s", who, (lua_Integer)i + 1,
                   sf_dtype_name(t->dtype), luaL_tolstring(L, idx, NULL));
    void *d = sf_tensor_data(t);
    if (t->dtype == SF_I64) ((int64_t *)d)[i] = (int64_t)iv;
    else if (t->dtype == SF_I32) ((int32_t *)d)[i] = (int32_t)iv;
    else ((uint8_t *)d)[i] = (uint8_t)iv;
}

static void table_fill(lua_State *L, int idx, int depth, int ndim, const int64_t *shape, sf_tensor *t,
                       int64_t *pos) {
    if (luaL_len(L, idx) != shape[depth])
        luaL_error(L, "sift.tensor: ragged table: level %d has %d entries, expected %d", depth + 1,
                   (int)luaL_len(L, idx), (int)shape[depth]);
    for (int64_t i = 1; i <= shape[depth]; i++) {
        lua_geti(L, idx, i);
        if (depth + 1 < ndim) {
            if (!lua_istable(L, -1)) luaL_error(L, "sift.tensor: expected a table at level %d", depth + 2);
            table_fill(L, lua_gettop(L), depth + 1, ndim, shape, t, pos);
        } else {
            if (!lua_isnumber(L, -1)) luaL_error(L, "sift.tensor: expected a number, got %s", luaL_typename(L, -1));
            store_number(L, t, (*pos)++, -1, "sift.tensor");
        }
        lua_pop(L, 1);
    }
}

static sf_dtype opt_dtype(lua_State *L, int idx, sf_dtype def) {
    if (!lua_istable(L, idx)) return def;
    lua_getfield(L, idx, "dtype");
    sf_dtype dt = def;
    if (!lua_isnil(L, -1) && sf_dtype_from_name(luaL_checkstring(L, -1), &dt))
        luaL_error(L, "unknown dtype '%s' (f32, f16, bf16, i64, i32, u8, f64)", lua_tostring(L, -1));
    lua_pop(L, 1);
    return dt;
}

static int l_tensor_new(lua_State *L) {
    if (lsift_test_tensor(L, 1)) {
        lsift_push_tensor(L, sf_tensor_clone(lsift_check_tensor(L, 1)));
        return 1;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    static const char *const options[] = {"dtype", NULL};
    lsift_check_options(L, 2, "sift.tensor", options);
    sf_dtype dt = opt_dtype(L, 2, SF_F32);
    int ndim = 0;
    int64_t shape[SF_MAX_DIMS] = {0};
    table_shape(L, 1, 0, &ndim, shape);
    sf_tensor *t = sf_tensor_zeros(dt, ndim, shape);
    if (!t) return lsift_error(L, "sift.tensor");
    lsift_push_tensor(L, t); /* owned by Lua before filling can raise */
    int64_t pos = 0;
    table_fill(L, 1, 0, ndim, shape, t, &pos);
    return 1;
}

/* Reads dims from args [first, top] (numbers), stopping at a table (options). */
static int read_dims(lua_State *L, int first, int64_t *shape) {
    int n = 0;
    for (int i = first; i <= lua_gettop(L) && lua_type(L, i) == LUA_TNUMBER; i++) {
        if (n >= SF_MAX_DIMS) luaL_error(L, "at most %d dimensions", SF_MAX_DIMS);
        lua_Integer d = luaL_checkinteger(L, i);
        if (d < 0) luaL_argerror(L, i, "dimension must be >= 0");
        shape[n++] = d;
    }
    if (n == 0 && lua_istable(L, first) && !lua_getfield(L, first, "dtype")) { /* shape given as a table */
        lua_pop(L, 1);
        lua_Integer len = luaL_len(L, first);
        if (len > SF_MAX_DIMS) luaL_error(L, "at most %d dimensions", SF_MAX_DIMS);
        for (lua_Integer i = 1; i <= len; i++) {
            lua_geti(L, first, i);
            shape[n++] = luaL_checkinteger(L, -1);
            lua_pop(L, 1);
        }
    } else if (n == 0 && lua_istable(L, first)) {
        lua_pop(L, 1);
    }
    return n;
}

/* The options table of sift.zeros / sift.randn: the last argument when it is a table other than a shape
 * given as a table ({2, 3}); 0 when there is none. Its keys are checked against `known`. */
static int opts_index(lua_State *L, const char *who, const char *const known[]) {
    int top = lua_gettop(L);
    if (top == 0 || !lua_istable(L, top) || (top == 1 && lua_rawlen(L, 1) > 0)) return 0;
    lsift_check_options(L, top, who, known);
    return top;
}

static int l_zeros(lua_State *L) {
    int64_t shape[SF_MAX_DIMS];
    int n = read_dims(L, 1, shape);
    static const char *const options[] = {"dtype", NULL};
    int o = opts_index(L, "sift.zeros", options);
    lsift_push_tensor(L, sf_tensor_zeros(o ? opt_dtype(L, o, SF_F32) : SF_F32, n, shape));
    return 1;
}

static int l_randn(lua_State *L) {
    int64_t shape[SF_MAX_DIMS];
    int n = read_dims(L, 1, shape);
    static const char *const options[] = {"seed", "std", NULL};
    int o = opts_index(L, "sift.randn", options);
    lua_Integer seed = 0;
    double std = 1.0;
    if (o) {
        lua_getfield(L, o, "seed");
        seed = luaL_optinteger(L, -1, 0);
        lua_getfield(L, o, "std");
        std = luaL_optnumber(L, -1, 1.0);
        lua_pop(L, 2);
    }
    sf_tensor *t = sf_tensor_new_f32(n, shape);
    if (!t) return lsift_error(L, "sift.randn");
    sf_rng r;
    sf_rng_seed(&r, (uint64_t)seed);
    sf_rng_fill_normal(&r, sf_f32(t), sf_tensor_numel(t), 0.0f, (float)std);
    lsift_push_tensor(L, t);
    return 1;
}

/* ---- inspection ---- */
static int t_shape(lua_State *L) {
    sf_tensor *t = lsift_check_tensor(L, 1);
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->shape[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int t_numel(lua_State *L) {
    lua_pushinteger(L, sf_tensor_numel(lsift_check_tensor(L, 1)));
    return 1;
}

static int t_dtype(lua_State *L) {
    lua_pushstring(L, sf_dtype_name(lsift_check_tensor(L, 1)->dtype));
    return 1;
}

static void push_element(lua_State *L, const sf_tensor *t, int64_t i) {
    if (t->dtype == SF_I64 || t->dtype == SF_I32 || t->dtype == SF_U8)
        lua_pushinteger(L, (lua_Integer)sf_tensor_get_flat_int(t, i)); /* exact: no trip through a double */
    else
        lua_pushnumber(L, sf_tensor_get_flat(t, i));
}

/* The flat offset of the nargs 1-based indices at stack positions first.. (one per dimension). */
static int64_t flat_index(lua_State *L, const sf_tensor *t, int first, int nargs, const char *who) {
    if (nargs != t->ndim) luaL_error(L, "%s: tensor has %d dimensions, got %d indices", who, t->ndim, nargs);
    int64_t flat = 0;
    for (int d = 0; d < t->ndim; d++) {
        lua_Integer i = luaL_checkinteger(L, first + d);
        if (i < 1 || i > t->shape[d])
            luaL_error(L, "%s: index %I out of range 1..%I at dimension %d", who, i, (lua_Integer)t->shape[d], d + 1);
        flat = flat * t->shape[d] + (i - 1);
    }
    return flat;
}

static int t_get(lua_State *L) {
    sf_tensor *t = lsift_check_tensor(L, 1);
    push_element(L, t, flat_index(L, t, 2, lua_gettop(L) - 1, "get"));
    return 1;
}

/* t:set(i, j, ..., value) */
static int t_set(lua_State *L) {
    sf_tensor *t = lsift_check_tensor(L, 1);
    const int top = lua_gettop(L);
    luaL_checknumber(L, top);
    store_number(L, t, flat_index(L, t, 2, top - 2, "set"), top, "set");
    return 0;
}

static void push_table_rec(lua_State *L, const sf_tensor *t, int d, int64_t *pos) {
    if (t->ndim == 0) {
        push_element(L, t, 0);
        return;
    }
    lua_createtable(L, (int)t->shape[d], 0);
    for (int64_t i = 0; i < t->shape[d]; i++) {
        if (d + 1 < t->ndim)
            push_table_rec(L, t, d + 1, pos);
        else
            push_element(L, t, (*pos)++);
        lua_rawseti(L, -2, i + 1);
    }
}

static int t_totable(lua_State *L) {
    sf_tensor *t = lsift_check_tensor(L, 1);
    int64_t pos = 0;
    push_table_rec(L, t, 0, &pos);
    return 1;
}

static int t_float(lua_State *L) {
    lsift_push_tensor(L, sf_tensor_to_f32(lsift_check_tensor(L, 1)));
    return 1;
}

static int t_clone(lua_State *L) {
    lsift_push_tensor(L, sf_tensor_clone(lsift_check_tensor(L, 1)));
    return 1;
}

static int t_max_abs_diff(lua_State *L) {
    sf_tensor *a = lsift_check_tensor(L, 1), *b = lsift_check_tensor(L, 2);
    int64_t n = sf_tensor_numel(a);
    if (n != sf_tensor_numel(b)) luaL_error(L, "max_abs_diff: %d vs %d elements", (int)n, (int)sf_tensor_numel(b));
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(sf_tensor_get_flat(a, i) - sf_tensor_get_flat(b, i));
        if (isnan(d)) { /* a NaN on either side: the answer is NaN, whatever follows */
            m = d;
            break;
        }
        if (d > m) m = d;
    }
    lua_pushnumber(L, m);
    return 1;
}

/* t:range() -> min, max over every value; NaN, NaN when some value is NaN; nothing (nil) when empty */
static int t_range(lua_State *L) {
    sf_tensor *a = lsift_check_tensor(L, 1);
    const int64_t n = sf_tensor_numel(a);
    if (n == 0) return 0;
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        const double v = sf_tensor_get_flat(a, i);
        if (isnan(v)) {
            lo = hi = v;
            break;
        }
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    lua_pushnumber(L, lo);
    lua_pushnumber(L, hi);
    return 2;
}

static int t_norm(lua_State *L) {
    sf_tensor *a = lsift_check_tensor(L, 1);
    double s = 0;
    const int64_t n = sf_tensor_numel(a);
    for (int64_t i = 0; i < n; i++) {
        double v = sf_tensor_get_flat(a, i);
        s += v * v;
    }
    lua_pushnumber(L, sqrt(s));
    return 1;
}

static int t_sum(lua_State *L) {
    sf_tensor *a = lsift_check_tensor(L, 1);
    double s = 0;
    const int64_t n = sf_tensor_numel(a);
    for (int64_t i = 0; i < n; i++) s += sf_tensor_get_flat(a, i);
    lua_pushnumber(L, s);
    return 1;
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* t:top_share(fractions) -> two tables: for each fraction x, the share of ||t||_2 and of ||t||_2^2 held by
 * the k = max(1, floor(x * numel)) largest |entries| (gradient concentration). */
static int t_top_share(lua_State *L) {
    sf_tensor *t = lsift_check_tensor(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer nf = luaL_len(L, 2);
    for (lua_Integer f = 1; f <= nf; f++) { /* every fraction checked before the buffer exists (no leak on a raise) */
        lua_geti(L, 2, f);
        if (!lua_isnumber(L, -1)) return luaL_error(L, "top_share: fraction %d is a %s, not a number", (int)f, luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    int64_t n = sf_tensor_numel(t);
    float *a = malloc((size_t)(n ? n : 1) * sizeof *a);
    if (!a) return luaL_error(L, "top_share: out of memory");
    double total = 0;
    for (int64_t i = 0; i < n; i++) {
        a[i] = (float)fabs(sf_tensor_get_flat(t, i));
        total += (double)a[i] * a[i];
    }
    qsort(a, (size_t)n, sizeof *a, cmp_desc);
    lua_createtable(L, (int)nf, 0);
    lua_createtable(L, (int)nf, 0);
    for (lua_Integer f = 1; f <= nf; f++) {
        lua_geti(L, 2, f);
        double x = lua_tonumber(L, -1); /* checked above */
        lua_pop(L, 1);
        int64_t k = (int64_t)floor(x * (double)n);
        if (k < 1) k = 1;
        if (k > n) k = n;
        double part = 0;
        for (int64_t i = 0; i < k; i++) part += (double)a[i] * a[i];
        lua_pushnumber(L, total > 0 ? sqrt(part / total) : 0);
        lua_rawseti(L, -3, f);
        lua_pushnumber(L, total > 0 ? part / total : 0);
        lua_rawseti(L, -2, f);
    }
    free(a);
    return 2;
}

/* t:copy_(src) copies src's values into t in place (same number of elements; dtype converted). */
static int t_copy_(lua_State *L) {
    sf_tensor *t = lsift_check_tensor(L, 1), *src = lsift_check_tensor(L, 2);
    if (sf_tensor_copy_(t, src)) return lsift_error(L, "copy_");
    lua_settop(L, 1);
    return 1;
}

static int t_reshape(lua_State *L) {
    sf_tensor *t = lsift_check_tensor(L, 1);
    int64_t shape[SF_MAX_DIMS];
    int n = read_dims(L, 2, shape);
    lsift_push_tensor(L, sf_tensor_view(t, n, shape));
    return 1;
}

/* ---- arithmetic (eager, f32) ---- */
typedef enum { OP_ADD, OP_SUB, OP_MUL } binop;

static int arith(lua_State *L, binop op, const char *name) {
    sf_tensor *a = lsift_test_tensor(L, 1), *b = lsift_test_tensor(L, 2);
    if (a && b) {
        if (!sf_tensor_same_shape(a, b)) {
            char sa[64], sb[64];
            return luaL_error(L, "%s: shapes %s and %s differ", name, sf_shape_str(a, sa, 64), sf_shape_str(b, sb, 64));
        }
    } else if (!(a && lua_isnumber(L, 2)) && !(b && lua_isnumber(L, 1))) {
        return luaL_error(L, "%s: expected tensors or a tensor and a number", name);
    }
    const sf_tensor *shape_of = a ? a : b;
    sf_tensor *o = sf_tensor_new_f32(shape_of->ndim, shape_of->shape);
    if (!o) return lsift_error(L, name);
    lsift_push_tensor(L, o);
    double sa = a ? 0 : lua_tonumber(L, 1), sb = b ? 0 : lua_tonumber(L, 2);
    float *od = sf_f32(o);
    const int64_t n = sf_tensor_numel(o);
    for (int64_t i = 0; i < n; i++) {
        double x = a ? sf_tensor_get_flat(a, i) : sa, y = b ? sf_tensor_get_flat(b, i) : sb;
        od[i] = (float)(op == OP_ADD ? x + y : op == OP_SUB ? x - y : x * y);
    }
    return 1;
}

static int t_add(lua_State *L) { return arith(L, OP_ADD, "tensor +"); }
static int t_sub(lua_State *L) { return arith(L, OP_SUB, "tensor -"); }
static int t_mul(lua_State *L) { return arith(L, OP_MUL, "tensor *"); }

static int t_unm(lua_State *L) {
    sf_tensor *a = lsift_check_tensor(L, 1);
    sf_tensor *o = sf_tensor_to_f32(a);
    if (!o) return lsift_error(L, "tensor -");
    const int64_t n = sf_tensor_numel(o);
    float *od = sf_f32(o);
    for (int64_t i = 0; i < n; i++) od[i] = -od[i];
    lsift_push_tensor(L, o);
    return 1;
}

static int t_matmul(lua_State *L) {
    sf_tensor *a = lsift_check_tensor(L, 1), *b = lsift_check_tensor(L, 2);
    if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != b->shape[0] || a->dtype != SF_F32 || b->dtype != SF_F32) {
        char sa[64], sb[64];
        return luaL_error(L, "matmul: expected f32 (M, K) and (K, N), got %s and %s", sf_shape_str(a, sa, 64),
                          sf_shape_str(b, sb, 64));
    }
    int64_t M = a->shape[0], K = a->shape[1], N = b->shape[1];
    sf_tensor *o = sf_tensor_f32d(M, N, -1, -1);
    if (!o) return lsift_error(L, "matmul");
    if (M && N && K)
        sf_sgemm(0, 0, M, N, K, 1.0f, sf_f32(a), K, sf_f32(b), N, 0.0f, sf_f32(o), N);
    lsift_push_tensor(L, o);
    return 1;
}

static int t_len(lua_State *L) {
    sf_tensor *t = lsift_check_tensor(L, 1);
    lua_pushinteger(L, t->ndim ? t->shape[0] : 1);
    return 1;
}

static int t_tostring(lua_State *L) {
    lsift_push_tensor_string(L, lsift_check_tensor(L, 1));
    return 1;
}

sf_tensor *lsift_to_ids(lua_State *L, int idx, const char *what) { return lsift_to_dtype(L, idx, SF_I64, what); }

sf_tensor *lsift_to_dtype(lua_State *L, int idx, sf_dtype dt, const char *what) {
    sf_tensor *t = lsift_test_tensor(L, idx);
    if (t) {
        if (t->dtype == dt) {
            sf_tensor_retain(t);
            return t;
        }
        const int to_int = dt == SF_I64 || dt == SF_I32 || dt == SF_U8;
        const int from_float = t->dtype == SF_F32 || t->dtype == SF_F16 || t->dtype == SF_BF16 || t->dtype == SF_F64;
        if (to_int && from_float) /* ids or labels in a float tensor: whole values only, never truncated */
            for (int64_t i = 0, n = sf_tensor_numel(t); i < n; i++) {
                const double v = sf_tensor_get_flat(t, i);
                if (!(v == floor(v) && fabs(v) < 9.2e18))
                    luaL_error(L, "%s: a %s tensor holds %f at flat position %I, not a whole number (ids and labels "
                                  "are integers)", what, sf_dtype_name(t->dtype), v, (lua_Integer)i);
            }
        sf_tensor *c = sf_tensor_new(dt, t->ndim, t->shape);
        if (!c || sf_tensor_copy_(c, t)) {
            sf_tensor_release(c);
            lsift_error(L, what);
        }
        return c;
    }
    if (!lua_istable(L, idx)) luaL_error(L, "%s: expected a table of numbers or a tensor, got %s", what, luaL_typename(L, idx));
    int ndim = 0;
    int64_t shape[SF_MAX_DIMS] = {0};
    table_shape(L, idx, 0, &ndim, shape);
    sf_tensor *c = sf_tensor_zeros(dt, ndim, shape);
    if (!c) lsift_error(L, what);
    lsift_push_tensor(L, c); /* keeps it collectable if filling raises */
    int64_t pos = 0;
    table_fill(L, idx < 0 ? idx - 1 : idx, 0, ndim, shape, c, &pos);
    sf_tensor_retain(c);
    lua_pop(L, 1);
    return c;
}

void lsift_open_tensor(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"shape", t_shape},     {"numel", t_numel},   {"dtype", t_dtype},
        {"get", t_get},         {"set", t_set},       {"totable", t_totable},
        {"float", t_float},     {"clone", t_clone},   {"max_abs_diff", t_max_abs_diff},
        {"norm", t_norm}, {"range", t_range},       {"sum", t_sum},       {"matmul", t_matmul},
        {"reshape", t_reshape}, {"top_share", t_top_share}, {"copy_", t_copy_}, {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", t_gc},   {"__close", t_gc},   {"__tostring", t_tostring},
                                    {"__add", t_add}, {"__sub", t_sub},    {"__mul", t_mul},
                                    {"__unm", t_unm}, {"__len", t_len},    {NULL, NULL}};
    luaL_newmetatable(L, LSIFT_TENSOR);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"tensor", l_tensor_new}, {"zeros", l_zeros}, {"randn", l_randn}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
    /* sift.Tensor = the method table, for completion and help */
    luaL_getmetatable(L, LSIFT_TENSOR);
    lua_getfield(L, -1, "__index");
    lua_setfield(L, -3, "Tensor");
    lua_pop(L, 1);
}
