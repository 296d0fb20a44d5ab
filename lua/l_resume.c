/* l_resume.c — the training state a checkpoint holds (lua/sift/checkpoint.lua, sift.trainer's save /
 * resume), read from and written back into a set and its optimizer:
 *   s:_target_state(t) / s:_restore_target(t, w0, delta, m, v)   a SIFT target's originals, increments, moments
 *   s:_sparse_step(n?)  the sparse optimizer's step;  s:_resumable()  false for the reference quirks
 *   opt:_state() / opt:_restore(state, steps, check_only?)       the dense tensors with their AdamW moments
 *   opt:_check_moments(m, v)   whether a pair of moments could come from this AdamW at all
 * Restores check every value before writing any. What it does not do: files (checkpoint.lua writes them). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "l_sets.h"

static void push_f32_copy(lua_State *L, const float *src, int64_t n) {
    int64_t shape[1] = {n};
    sf_tensor *t = sf_tensor_new_f32(1, shape);
    if (t && n) memcpy(sf_f32(t), src, (size_t)n * sizeof(float));
    lsift_push_tensor(L, t); /* raises the core error when t is NULL */
}

/* A checked f32 tensor of exactly n values at stack index idx. */
static const float *f32_of(lua_State *L, int idx, int64_t n, const char *what) {
    sf_tensor *t = lsift_check_tensor(L, idx);
    if (t->dtype != SF_F32 || sf_tensor_numel(t) != n)
        luaL_error(L, "%s: expected %I f32 values, the checkpoint has %I (%s)", what, (lua_Integer)n,
                   (lua_Integer)sf_tensor_numel(t), sf_dtype_name(t->dtype));
    return sf_f32(t);
}

/* s:_target_state(name | i) -> {w0 =, delta =, m =, v =} (k values each; the indices are s:indices) */
static int set_target_state(lua_State *L) {
    l_set *s = lsift_check_set(L, 1);
    sf_sparse_set *sp = lsift_need_sparse(L, s, "target_state");
    int i = lsift_target_index(L, sp, 2);
    sf_sparse_target *t = &sp->t[i];
    if (!t->selected) return luaL_error(L, "%s: not selected yet", t->name);
    lua_createtable(L, 0, 4);
    const float *parts[4] = {t->w0, t->delta, t->m, t->v};
    const char *names[4] = {"w0", "delta", "m", "v"};
    for (int j = 0; j < 4; j++) {
        push_f32_copy(L, parts[j], t->k);
        lua_setfield(L, -2, names[j]);
    }
    return 1;
}

/* s:_restore_target(name | i, w0, delta, m, v): after s:_set_indices for every target and _finish_selection */
static int set_restore_target(lua_State *L) {
    l_set *s = lsift_check_set(L, 1);
    sf_sparse_set *sp = lsift_need_sparse(L, s, "restore");
    int i = lsift_target_index(L, sp, 2);
    int64_t k = sp->t[i].k;
    const char *nm = sp->t[i].name;
    if (sf_sparse_restore_target(sp, i, f32_of(L, 3, k, nm), f32_of(L, 4, k, nm), f32_of(L, 5, k, nm), f32_of(L, 6, k, nm)))
        return lsift_error(L, "resume");
    return 0;
}

/* s:_resumable() -> true, or false and why: a set reproducing the published code's quirks (written back one
 * step late) cannot continue from a checkpoint */
static int set_resumable(lua_State *L) {
    l_set *s = lsift_check_set(L, 1);
    if (s->sparse && s->sparse->reference_quirks) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "a sparse set with the reference quirks (written back one step late) cannot resume");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* s:_sparse_step(n?) -> the sparse optimizer's step count (sets it first when n is given) */
static int set_sparse_step(lua_State *L) {
    l_set *s = lsift_check_set(L, 1);
    sf_sparse_set *sp = lsift_need_sparse(L, s, "sparse_step");
    if (!lua_isnoneornil(L, 2)) sp->step = luaL_checkinteger(L, 2);
    lua_pushinteger(L, sp->step);
    return 1;
}

/* opt:_state() -> {steps = n, {value =, m =, v =, grad = bool, name =}, ...}: every densely trained tensor
 * (the set's dense list, then LoRA factors) with its moments (nil before its first update) */
static int opt_state(lua_State *L) {
    l_opt *o = lsift_check_opt(L, 1);
    l_set *s = lsift_opt_set(L, 1);
    sf_tensor **tmp;
    int n = lsift_collect_dense(s, &tmp);
    if (n < 0) return luaL_error(L, "out of memory");
    sf_tensor **t = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *t, 0); /* freed by the GC on error */
    if (n) memcpy(t, tmp, (size_t)n * sizeof *t);
    free(tmp);
    lua_createtable(L, n, 1);
    lua_pushinteger(L, sf_adamw_steps(o->dense));
    lua_setfield(L, -2, "steps");
    for (int i = 0; i < n; i++) {
        int64_t numel = sf_tensor_numel(t[i]);
        lua_createtable(L, 0, 5);
        push_f32_copy(L, sf_f32(t[i]), numel);
        lua_setfield(L, -2, "value");
        const float *m = sf_adamw_moment(o->dense, i, 0), *v = sf_adamw_moment(o->dense, i, 1);
        if (m && v) {
            push_f32_copy(L, m, numel);
            lua_setfield(L, -2, "m");
            push_f32_copy(L, v, numel);
            lua_setfield(L, -2, "v");
        }
        lua_pushboolean(L, t[i]->grad != NULL);
        lua_setfield(L, -2, "grad");
        lua_pushstring(L, t[i]->name ? t[i]->name : "");
        lua_setfield(L, -2, "name");
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* opt:_restore(state, steps, check_only?): what opt:_state returned, into an optimizer over the same set
 * layout. Every tensor is checked before any is written, so a mismatch leaves the model and optimizer as
 * they were; check_only stops there. */
static int opt_restore(lua_State *L) {
    l_opt *o = lsift_check_opt(L, 1);
    l_set *s = lsift_opt_set(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer steps = luaL_checkinteger(L, 3);
    const int passes = lua_toboolean(L, 4) ? 1 : 2;
    lua_settop(L, 3);
    sf_tensor **tmp;
    int n = lsift_collect_dense(s, &tmp);
    if (n < 0) return luaL_error(L, "out of memory");
    sf_tensor **t = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *t, 0); /* 4: freed by the GC on error */
    if (n) memcpy(t, tmp, (size_t)n * sizeof *t);
    free(tmp);
    if (luaL_len(L, 2) != n)
        return luaL_error(L, "resume: the checkpoint trains %d dense tensors, this set %d", (int)luaL_len(L, 2), n);
    for (int pass = 0; pass < passes; pass++) /* 0: check every tensor, 1: write */
        for (int i = 0; i < n; i++) {
            lua_geti(L, 2, i + 1);
            int e = lua_gettop(L);
            int64_t numel = sf_tensor_numel(t[i]);
            const char *nm = t[i]->name ? t[i]->name : "a LoRA factor";
            lua_getfield(L, e, "value");
            lua_getfield(L, e, "m");
            lua_getfield(L, e, "v");
            lua_getfield(L, e, "grad");
            lua_getfield(L, e, "name");
            const char *saved = lua_tostring(L, e + 5);
            if (saved && *saved && t[i]->name && strcmp(saved, t[i]->name))
                return luaL_error(L, "resume: dense tensor %d is %s in the checkpoint, %s in this set", i + 1, saved, t[i]->name);
            const float *value = f32_of(L, e + 1, numel, nm);
            const int moments = !lua_isnil(L, e + 2);
            const float *m = moments ? f32_of(L, e + 2, numel, nm) : NULL, *v = moments ? f32_of(L, e + 3, numel, nm) : NULL;
            if (pass == 1) {
                memcpy(sf_f32(t[i]), value, (size_t)numel * sizeof(float));
                if (moments && sf_adamw_restore(o->dense, i, m, v, lua_toboolean(L, e + 4))) return lsift_error(L, "resume");
            }
            lua_settop(L, e - 1);
        }
    if (passes == 1) return 0;
    sf_adamw_set_steps(o->dense, steps);
    o->steps = steps;
    return 0;
}

/* opt:_check_moments(m, v) -> nil, or the first 1-based entry where the pair cannot come from this
 * optimizer's AdamW. With m_t = b1 m + (1 - b1) g and v_t = b2 v + (1 - b2) g^2 from zero, Cauchy-Schwarz
 * bounds |m| <= B sqrt(v), B = (1 - b1) / sqrt((1 - b2)(1 - b1^2 / b2)) (7.3 at 0.9 / 0.999) whenever
 * b1^2 < b2; checked with 1 % and 1e-12 of slack (float rounding, a v that underflowed to 0). A pair past
 * it (a corrupted file) would make an update of any size: lr m / (sqrt(v) + eps). Negative or non-finite v
 * fails too. With b1^2 >= b2 only those are checked. */
static int opt_check_moments(lua_State *L) {
    l_opt *o = lsift_check_opt(L, 1);
    sf_tensor *mt = lsift_check_tensor(L, 2), *vt = lsift_check_tensor(L, 3);
    const int64_t n = sf_tensor_numel(mt);
    if (mt->dtype != SF_F32 || vt->dtype != SF_F32 || sf_tensor_numel(vt) != n)
        return luaL_error(L, "_check_moments: expected two f32 tensors of the same size");
    const double b1 = o->h.beta1, b2 = o->h.beta2;
    const int bounded = b1 * b1 < b2 && b2 < 1;
    const double B = bounded ? (1 - b1) / sqrt((1 - b2) * (1 - b1 * b1 / b2)) : 0;
    const float *m = sf_f32(mt), *v = sf_f32(vt);
    for (int64_t i = 0; i < n; i++) {
        const double mi = m[i], vi = v[i];
        if (!(vi >= 0 && vi < INFINITY) || !(fabs(mi) < INFINITY) ||
            (bounded && fabs(mi) > 1.01 * B * sqrt(vi) + 1e-12)) {
            lua_pushinteger(L, (lua_Integer)(i + 1));
            return 1;
        }
    }
    return 0;
}

const luaL_Reg lsift_resume_set_methods[] = {{"_target_state", set_target_state}, {"_restore_target", set_restore_target},
                                             {"_sparse_step", set_sparse_step},   {"_resumable", set_resumable},
                                             {NULL, NULL}};
const luaL_Reg lsift_resume_opt_methods[] = {
    {"_state", opt_state}, {"_restore", opt_restore}, {"_check_moments", opt_check_moments}, {NULL, NULL}};
