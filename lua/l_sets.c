/* l_sets.c — trainable sets, the mechanics under sift.sparse / sift.lora / sift.full
 * (name patterns and defaults are resolved in lua/sift/sets.lua):
 *   sift._sparse(model, targets, dense, opts) / sift._lora(model, targets, dense, opts) / sift._full(model, names)
 *   -> a sift.Set userdata.
 * A set freezes every parameter of the model except its own (sparse targets, LoRA factors, dense
 * tensors). Selection is split into steps (_begin_selection, _note_batch, _calib_grad, _set_indices,
 * _finish_selection) so the Lua side can run the calibration forward/backward and custom policies.
 * The optimizer is l_optim.c's, the checkpoint methods l_resume.c's (shared layouts: l_sets.h). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/delta.h"
#include "l_delta.h"
#include "l_sets.h"

extern sf_model *lsift_check_model(lua_State *L, int idx);

static l_set *check_set(lua_State *L, int idx) {
    l_set *s = luaL_checkudata(L, idx, LSIFT_SET);
    if (!s->m) luaL_argerror(L, idx, "set has been closed");
    return s;
}

l_set *lsift_check_set(lua_State *L, int idx) { return check_set(L, idx); }

static void set_release(l_set *s) {
    sf_dist_sync_free(s->sync);
    s->sync = NULL;
    free(s->sync_target);
    free(s->sync_got);
    s->sync_target = NULL;
    s->sync_got = NULL;
    s->sync_armed = 0;
    if (s->sparse) {
        sf_sparse_free(s->sparse);
        s->sparse = NULL;
    }
    if (s->lora) {
        if (s->m && s->m->lora == s->lora) s->m->lora = NULL;
        sf_lora_free(s->lora);
        s->lora = NULL;
    }
    for (int i = 0; i < s->n_dense; i++) {
        sf_tensor_release(s->dense[i]);
        free(s->dense_names[i]);
    }
    free(s->dense);
    free(s->dense_names);
    s->dense = NULL;
    s->dense_names = NULL;
    s->n_dense = 0;
    s->m = NULL;
}

static int set_gc(lua_State *L) {
    l_set *s = luaL_checkudata(L, 1, LSIFT_SET);
    set_release(s);
    return 0;
}

/* Reads a Lua array of parameter names into checked tensors. */
static int read_names(lua_State *L, int idx, sf_model *m, sf_tensor ***out_t, char ***out_n, const char *what) {
    int n = lua_istable(L, idx) ? (int)luaL_len(L, idx) : 0;
    sf_tensor **t = calloc((size_t)n + 1, sizeof *t);
    char **nm = calloc((size_t)n + 1, sizeof *nm);
    if (!t || !nm) {
        free(t);
        free(nm);
        luaL_error(L, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        lua_geti(L, idx, i + 1);
        const char *name = lua_tostring(L, -1);
        sf_tensor *p = name ? sf_model_param(m, name) : NULL;
        if (!p) {
            lua_pushfstring(L, "%s: no parameter named '%s'", what, name ? name : "?");
            for (int j = 0; j < i; j++) free(nm[j]);
            free(t);
            free(nm);
            return lua_error(L); /* does not return */
        }
        t[i] = p;
        nm[i] = strdup(name);
        lua_pop(L, 1);
    }
    *out_t = t;
    *out_n = nm;
    return n;
}

static l_set *new_set(lua_State *L, int model_idx, set_kind kind) {
    sf_model *m = lsift_check_model(L, model_idx);
    l_set *s = lua_newuserdatauv(L, sizeof *s, 1);
    memset(s, 0, sizeof *s);
    luaL_setmetatable(L, LSIFT_SET);
    lua_pushvalue(L, model_idx);
    lua_setiuservalue(L, -2, 1);
    s->kind = kind;
    s->m = m;
    return s;
}

static void attach_dense(lua_State *L, l_set *s, int idx) {
    sf_tensor **t;
    char **nm;
    int n = read_names(L, idx, s->m, &t, &nm, "dense");
    s->dense = t;
    s->dense_names = nm;
    s->n_dense = n;
    for (int i = 0; i < n; i++) {
        sf_tensor_retain(t[i]);
        sf_param_set_trainable(t[i], 1);
    }
}

static sf_policy policy_from_name(lua_State *L, const char *p) {
    static const char *names[] = {"topk", "global", "random", "magnitude", "fisher", "custom", NULL};
    for (int i = 0; names[i]; i++)
        if (!strcmp(p, names[i])) return (sf_policy)i;
    luaL_error(L, "unknown policy '%s' (topk, global, random, magnitude, fisher, or a function)", p);
    return SF_POLICY_TOPK;
}

double lsift_opt_number(lua_State *L, int idx, const char *key, double def) {
    lua_getfield(L, idx, key);
    double v = luaL_optnumber(L, -1, def);
    lua_pop(L, 1);
    return v;
}

/* An integer field of an options table, def when absent: a whole number in [lo, hi] (an integer, or a float
 * or numeric string with an integer's value), else an error "who: key must be ..." naming the value. */
static lua_Integer opt_integer(lua_State *L, int idx, const char *key, lua_Integer def, lua_Integer lo, lua_Integer hi,
                               const char *who) {
    lua_getfield(L, idx, key);
    int is_int = 0;
    lua_Integer v = lua_isnil(L, -1) ? def : lua_tointegerx(L, -1, &is_int);
    if (!lua_isnil(L, -1) && (!is_int || v < lo || v > hi)) {
        const char *got = luaL_tolstring(L, -1, NULL);
        if (lo == LUA_MININTEGER && hi == LUA_MAXINTEGER)
            return luaL_error(L, "%s: %s must be an integer, got %s", who, key, got);
        return luaL_error(L, "%s: %s must be a whole number from %I to %I, got %s", who, key, lo, hi, got);
    }
    lua_pop(L, 1);
    return v;
}

/* sift._sparse(model, targets, dense, {rate, policy, seed, mode, reference}) */
static int l_sparse(lua_State *L) {
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 4, LUA_TTABLE);
    l_set *s = new_set(L, 1, SET_SPARSE);
    double rate = lsift_opt_number(L, 4, "rate", 0.01);
    lua_getfield(L, 4, "policy");
    sf_policy pol = policy_from_name(L, luaL_optstring(L, -1, "topk"));
    const uint64_t seed = (uint64_t)opt_integer(L, 4, "seed", 0, LUA_MININTEGER, LUA_MAXINTEGER, "sift.sparse");
    lua_getfield(L, 4, "mode");
    const char *mode = luaL_optstring(L, -1, "sampled");
    lua_getfield(L, 4, "reference");
    int reference = lua_toboolean(L, -1);
    lua_pop(L, 3);
    if (!(rate > 0 && rate <= 1)) return luaL_error(L, "sift.sparse: rate must be in (0, 1], got %f", (lua_Number)rate);
    sf_model_set_trainable(s->m, 0);
    sf_tensor **t;
    char **nm;
    int n = read_names(L, 2, s->m, &t, &nm, "sift.sparse targets");
    s->sparse = sf_sparse_new(t, (const char *const *)nm, n, rate, pol, seed);
    for (int i = 0; i < n; i++) free(nm[i]);
    free(nm);
    free(t);
    if (!s->sparse) return lsift_error(L, "sift.sparse");
    s->sparse->reference_quirks = reference;
    sf_sparse_set_mode(s->sparse, !strcmp(mode, "gather") ? SF_SPARSE_GATHER : SF_SPARSE_SAMPLED);
    attach_dense(L, s, 3);
    return 1;
}

/* sift._lora(model, targets, dense, {r, alpha, seed}) */
static int l_lora(lua_State *L) {
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 4, LUA_TTABLE);
    l_set *s = new_set(L, 1, SET_LORA);
    const int r = (int)opt_integer(L, 4, "r", 8, 1, INT_MAX, "sift.lora");
    float alpha = (float)lsift_opt_number(L, 4, "alpha", 2.0 * r);
    const uint64_t seed = (uint64_t)opt_integer(L, 4, "seed", 0, LUA_MININTEGER, LUA_MAXINTEGER, "sift.lora");
    if (s->m->lora) return luaL_error(L, "sift.lora: the model already has LoRA adapters (close that set first)");
    sf_model_set_trainable(s->m, 0);
    sf_tensor **t;
    char **nm;
    int n = read_names(L, 2, s->m, &t, &nm, "sift.lora targets");
    sf_wlayout *lay = calloc((size_t)n + 1, sizeof *lay);
    for (int i = 0; i < n; i++) lay[i] = sf_model_weight_layout(s->m, t[i]);
    s->lora = sf_lora_new(t, (const char *const *)nm, lay, n, r, alpha, seed);
    for (int i = 0; i < n; i++) free(nm[i]);
    free(nm);
    free(t);
    free(lay);
    if (!s->lora) return lsift_error(L, "sift.lora");
    s->m->lora = s->lora;
    attach_dense(L, s, 3);
    return 1;
}

/* sift._full(model, names) */
static int l_full(lua_State *L) {
    luaL_checktype(L, 2, LUA_TTABLE);
    l_set *s = new_set(L, 1, SET_FULL);
    sf_model_set_trainable(s->m, 0);
    attach_dense(L, s, 2);
    return 1;
}

static int set_kind_name(lua_State *L) {
    static const char *k[] = {"sparse", "lora", "full"};
    lua_pushstring(L, k[check_set(L, 1)->kind]);
    return 1;
}

sf_sparse_set *lsift_need_sparse(lua_State *L, l_set *s, const char *what) {
    if (!s->sparse) luaL_error(L, "%s: only sparse sets have this", what);
    return s->sparse;
}

/* s:_begin_selection(deferred): deferred when each calibration batch runs as several backward passes */
static int set_begin(lua_State *L) {
    l_set *s = check_set(L, 1);
    sf_sparse_set *sp = lsift_need_sparse(L, s, "select");
    sp->defer_selection = lua_toboolean(L, 2);
    sf_sparse_begin_selection(sp);
    return 0;
}

static int set_note_batch(lua_State *L) {
    l_set *s = check_set(L, 1);
    if (sf_sparse_note_batch(lsift_need_sparse(L, s, "select"))) return lsift_error(L, "select");
    return 0;
}

static int set_finish(lua_State *L) {
    l_set *s = check_set(L, 1);
    if (sf_sparse_finish_selection(lsift_need_sparse(L, s, "select"))) return lsift_error(L, "select");
    return 0;
}

/* s:_sync_arm(): before the step's last backward with several processes. The leaves this set trains, in
 * an order every rank builds alike — dense tensors, then LoRA factors or selected sparse targets, each
 * list from the end, the order backward finishes them — sum over ranks as the tape finishes them.
 * Sparse targets still selecting are not listed: sf_sparse_note_batch sums their dense gradients. The
 * sync is built once per state of the set (selecting or not) and kept across steps. */
static int set_sync_arm(lua_State *L) {
    l_set *s = check_set(L, 1);
    if (s->sync_armed) return luaL_error(L, "gradient sync: the previous one was not finished (s:_sync_wait())");
    int selecting = s->sparse && s->sparse->calibrating;
    if (!s->sync || s->sync_selecting != selecting) {
        sf_dist_sync_free(s->sync);
        s->sync = NULL;
        int n_lora = s->lora ? 2 * s->lora->n : 0;
        int n_sparse = s->sparse && !selecting ? s->sparse->n : 0;
        size_t most = (size_t)(s->n_dense + n_lora + n_sparse) + 1;
        sf_tensor **leaves = calloc(most, sizeof *leaves);
        free(s->sync_target);
        free(s->sync_got);
        s->sync_target = calloc(most, sizeof *s->sync_target);
        s->sync_got = calloc(most, sizeof *s->sync_got);
        if (!leaves || !s->sync_target || !s->sync_got) {
            free(leaves);
            return luaL_error(L, "gradient sync: out of memory");
        }
        int n = 0;
        for (int i = s->n_dense - 1; i >= 0; i--) s->sync_target[n] = -1, leaves[n++] = s->dense[i];
        for (int i = n_lora / 2 - 1; i >= 0; i--) {
            s->sync_target[n] = -1, leaves[n++] = s->lora->a[i].B;
            s->sync_target[n] = -1, leaves[n++] = s->lora->a[i].A;
        }
        for (int i = n_sparse - 1; i >= 0; i--)
            if (s->sparse->t[i].w->sparse) s->sync_target[n] = i, leaves[n++] = s->sparse->t[i].w;
        s->sync_n = n;
        s->sync_selecting = selecting;
        s->sync = sf_dist_sync_new(leaves, n);
        free(leaves);
        if (!s->sync) return lsift_error(L, "gradient sync");
    }
    if (sf_dist_sync_arm(s->sync, s->m->graph)) return lsift_error(L, "gradient sync");
    s->sync_armed = 1;
    return 0;
}

/* s:_sync_wait(): waits until every listed gradient holds the sum over ranks; a sparse target counts as
 * having a gradient this step when any rank's has one (the optimizer skips it otherwise, as one process
 * would). */
static int set_sync_wait(lua_State *L) {
    l_set *s = check_set(L, 1);
    if (!s->sync_armed) return luaL_error(L, "gradient sync: not armed (s:_sync_arm() first)");
    s->sync_armed = 0;
    for (int j = 0; j < s->sync_n; j++)
        s->sync_got[j] = s->sync_target[j] >= 0 ? s->sparse->t[s->sync_target[j]].got_grad : 0;
    if (sf_dist_sync_finish(s->sync, s->sync_got)) return lsift_error(L, "gradient sync");
    for (int j = 0; j < s->sync_n; j++)
        if (s->sync_target[j] >= 0) s->sparse->t[s->sync_target[j]].got_grad = s->sync_got[j];
    return 0;
}

int lsift_target_index(lua_State *L, sf_sparse_set *sp, int arg) {
    if (lua_type(L, arg) == LUA_TNUMBER) {
        lua_Integer i = luaL_checkinteger(L, arg);
        if (i < 1 || i > sp->n) luaL_error(L, "target %d outside 1..%d", (int)i, sp->n);
        return (int)i - 1;
    }
    const char *name = luaL_checkstring(L, arg);
    for (int i = 0; i < sp->n; i++)
        if (!strcmp(sp->t[i].name, name)) return i;
    luaL_error(L, "'%s' is not a target of this sparse set", name);
    return -1;
}

static int set_calib_grad(lua_State *L) {
    l_set *s = check_set(L, 1);
    sf_sparse_set *sp = lsift_need_sparse(L, s, "calib_grad");
    int i = lsift_target_index(L, sp, 2);
    const float *g = sf_sparse_calib_grad(sp, i);
    if (!g) return luaL_error(L, "%s: no calibration gradient (not reached by backward, or not selecting)", sp->t[i].name);
    sf_tensor *t = sf_tensor_new_f32(sp->t[i].w->ndim, sp->t[i].w->shape);
    if (!t) return lsift_error(L, "calib_grad");
    memcpy(sf_f32(t), g, sf_tensor_nbytes(t));
    lsift_push_tensor(L, t);
    return 1;
}

/* indices: a Lua array of 0-based flat offsets or an integer tensor */
static int set_set_indices(lua_State *L) {
    l_set *s = check_set(L, 1);
    sf_sparse_set *sp = lsift_need_sparse(L, s, "set_indices");
    int i = lsift_target_index(L, sp, 2);
    sf_tensor *ids;
    if (lsift_test_tensor(L, 3)) {
        ids = lsift_to_ids(L, 3, "indices");
    } else {
        luaL_checktype(L, 3, LUA_TTABLE);
        int64_t n = (int64_t)luaL_len(L, 3);
        int64_t shape[1] = {n};
        ids = sf_tensor_new(SF_I64, 1, shape);
        if (!ids) return lsift_error(L, "set_indices");
        for (int64_t j = 0; j < n; j++) {
            lua_geti(L, 3, j + 1);
            int isnum;
            lua_Integer v = lua_tointegerx(L, -1, &isnum);
            lua_pop(L, 1);
            if (!isnum) {
                sf_tensor_release(ids);
                return luaL_error(L, "%s: index %d is not an integer", sp->t[i].name, (int)j + 1);
            }
            ((int64_t *)sf_tensor_data(ids))[j] = v;
        }
    }
    sf_status st = sf_sparse_set_indices(sp, i, sf_tensor_data(ids), sf_tensor_numel(ids));
    sf_tensor_release(ids);
    if (st) return lsift_error(L, "set_indices");
    return 0;
}

static int set_targets(lua_State *L) {
    l_set *s = check_set(L, 1);
    lua_newtable(L);
    if (s->sparse)
        for (int i = 0; i < s->sparse->n; i++) {
            lua_pushstring(L, s->sparse->t[i].name);
            lua_rawseti(L, -2, i + 1);
        }
    if (s->lora)
        for (int i = 0; i < s->lora->n; i++) {
            lua_pushstring(L, s->lora->a[i].name);
            lua_rawseti(L, -2, i + 1);
        }
    return 1;
}

static int set_dense_names(lua_State *L) {
    l_set *s = check_set(L, 1);
    lua_createtable(L, s->n_dense, 0);
    for (int i = 0; i < s->n_dense; i++) {
        lua_pushstring(L, s->dense_names[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int set_budget(lua_State *L) {
    l_set *s = check_set(L, 1);
    sf_sparse_set *sp = lsift_need_sparse(L, s, "budget");
    int i = lsift_target_index(L, sp, 2);
    lua_pushinteger(L, sp->t[i].selected ? sp->t[i].k : sf_sparse_budget(sp->rate, sp->t[i].numel));
    lua_pushinteger(L, sp->t[i].numel);
    return 2;
}

/* Every target of a sparse set has its mask. */
int lsift_all_selected(const sf_sparse_set *sp) {
    int sel = 1;
    for (int i = 0; i < sp->n; i++) sel &= sp->t[i].selected;
    return sel;
}

static int set_selected(lua_State *L) {
    l_set *s = check_set(L, 1);
    lua_pushboolean(L, !s->sparse || (!s->sparse->calibrating && s->sparse->n > 0 && lsift_all_selected(s->sparse)));
    return 1;
}

static int set_indices(lua_State *L) {
    l_set *s = check_set(L, 1);
    sf_sparse_set *sp = lsift_need_sparse(L, s, "indices");
    int i = lsift_target_index(L, sp, 2);
    if (!sp->t[i].selected) return luaL_error(L, "%s: not selected yet (run s:select(batch))", sp->t[i].name);
    int64_t shape[1] = {sp->t[i].k};
    sf_tensor *t = sf_tensor_new(SF_I64, 1, shape);
    if (!t) return lsift_error(L, "indices");
    sf_index_to_i64(sp->t[i].idx, sp->t[i].k, sf_tensor_data(t));
    lsift_push_tensor(L, t);
    return 1;
}

static int set_delta(lua_State *L) {
    l_set *s = check_set(L, 1);
    sf_sparse_set *sp = lsift_need_sparse(L, s, "increment");
    int i = lsift_target_index(L, sp, 2);
    int64_t shape[1] = {sp->t[i].k};
    sf_tensor *t = sf_tensor_new_f32(1, shape);
    if (!t) return lsift_error(L, "increment");
    if (sp->t[i].k) memcpy(sf_f32(t), sp->t[i].delta, (size_t)sp->t[i].k * sizeof(float));
    lsift_push_tensor(L, t);
    return 1;
}

static int64_t dense_count(const l_set *s) {
    int64_t n = 0;
    for (int i = 0; i < s->n_dense; i++) n += sf_tensor_numel(s->dense[i]);
    return n;
}

static int set_trainable(lua_State *L) {
    l_set *s = check_set(L, 1);
    int64_t n = dense_count(s);
    if (s->sparse) {
        if (lsift_all_selected(s->sparse)) n += sf_sparse_trainable(s->sparse);
        else
            for (int i = 0; i < s->sparse->n; i++) n += sf_sparse_budget(s->sparse->rate, s->sparse->t[i].numel);
    }
    if (s->lora) n += sf_lora_trainable(s->lora);
    lua_pushinteger(L, n);
    return 1;
}

static void push_field(lua_State *L, const char *k, size_t v) {
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

static int set_memory(lua_State *L) {
    l_set *s = check_set(L, 1);
    size_t weights = 0, dense_grads = 0;
    for (int i = 0; i < s->m->n_params; i++) {
        sf_tensor *t = s->m->params[i].t;
        weights += sf_tensor_nbytes(t);
        if (t->grad) dense_grads += sf_tensor_nbytes(t->grad);
    }
    size_t dense_w = 0;
    for (int i = 0; i < s->n_dense; i++) dense_w += sf_tensor_nbytes(s->dense[i]);
    lua_createtable(L, 0, 12);
    push_field(L, "weights", weights);
    sf_sparse_memory sm = {0};
    if (s->sparse) sm = sf_sparse_memory_of(s->sparse);
    size_t lora_bytes = 0;
    if (s->lora) {
        for (int i = 0; i < s->lora->n; i++) {
            lora_bytes += sf_tensor_nbytes(s->lora->a[i].A) + sf_tensor_nbytes(s->lora->a[i].B);
            if (s->lora->a[i].A->grad) dense_grads += sf_tensor_nbytes(s->lora->a[i].A->grad);
            if (s->lora->a[i].B->grad) dense_grads += sf_tensor_nbytes(s->lora->a[i].B->grad);
        }
    }
    push_field(L, "increments", sm.increments);
    push_field(L, "moments", sm.moments + s->opt_bytes);
    push_field(L, "indices", sm.indices);
    push_field(L, "originals", sm.originals);
    push_field(L, "sparse_grads", sm.grads);
    push_field(L, "calibration", sm.calibration);
    push_field(L, "dense_grads", dense_grads);
    push_field(L, "dense_trained", dense_w);
    push_field(L, "adapters", lora_bytes);
    push_field(L, "activations", sf_graph_pool_bytes(s->m->graph) + sf_graph_owned_bytes(s->m->graph));
    /* optimizer + gradient state of what trains: the number the paper's memory claim is about */
    push_field(L, "optimizer_and_grads", sm.increments + sm.moments + sm.indices + sm.originals + sm.grads +
                                             s->opt_bytes + dense_grads);
    return 1;
}

static int set_merge(lua_State *L) {
    l_set *s = check_set(L, 1);
    if (!s->lora) return luaL_error(L, "merge: only LoRA sets have adapters to merge");
    if (lua_isboolean(L, 2) && !lua_toboolean(L, 2)) sf_lora_unmerge(s->lora);
    else sf_lora_merge(s->lora);
    return 0;
}

static int set_restore(lua_State *L) {
    l_set *s = check_set(L, 1);
    sf_sparse_restore(lsift_need_sparse(L, s, "restore"));
    return 0;
}

static int set_write_back(lua_State *L) {
    l_set *s = check_set(L, 1);
    sf_sparse_write_back(lsift_need_sparse(L, s, "write_back"));
    return 0;
}

/* s:save_delta(path [, extra metadata table]) -> the delta (also written atomically to path) */
static int set_save_delta(lua_State *L) {
    l_set *s = check_set(L, 1);
    const char *path = luaL_checkstring(L, 2);
    sf_sparse_set *sp = lsift_need_sparse(L, s, "save_delta");
    for (int i = 0; i < sp->n; i++)
        if (!sp->t[i].selected) return luaL_error(L, "save_delta: %s is not selected yet", sp->t[i].name);
    static const char *pol[] = {"topk", "global", "random", "magnitude", "fisher", "custom"};
    sf_delta *d = sf_delta_from_sparse(sp, s->dense, (const char *const *)s->dense_names, s->n_dense, pol[sp->policy]);
    if (!d) return lsift_error(L, "save_delta");
    if (lua_istable(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_type(L, -2) == LUA_TSTRING && (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
                lua_pushvalue(L, -1); /* convert a copy, never the key being iterated */
                sf_delta_set_extra(d, lua_tostring(L, -3), lua_tostring(L, -1));
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
    }
    lsift_push_delta(L, d); /* owned by Lua from here */
    sf_status st = sf_dist_rank() == 0 ? sf_delta_save(d, path) : SF_OK; /* rank 0 writes */
    if (lsift_rank0_wrote(st, path)) return lsift_error(L, "save_delta");
    return 1;
}

static int set_model(lua_State *L) {
    check_set(L, 1);
    lua_getiuservalue(L, 1, 1);
    return 1;
}

static int set_close(lua_State *L) {
    l_set *s = luaL_checkudata(L, 1, LSIFT_SET);
    if (s->m) {
        sf_model_set_trainable(s->m, 1); /* the model is whole again */
        set_release(s);
    }
    return 0;
}

static int set_tostring(lua_State *L) {
    l_set *s = check_set(L, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    char line[512];
    if (s->sparse) {
        sf_sparse_set *sp = s->sparse;
        static const char *pol[] = {"topk", "global", "random", "magnitude", "fisher", "custom"};
        int64_t tot = 0, k = 0;
        for (int i = 0; i < sp->n; i++) {
            tot += sp->t[i].numel;
            k += sp->t[i].selected ? sp->t[i].k : sf_sparse_budget(sp->rate, sp->t[i].numel);
        }
        snprintf(line, sizeof line, "sparse set: %d targets, rate %g, policy %s, %s; %lld of %lld values (%.3f %%)%s\n",
                 sp->n, sp->rate, pol[sp->policy], sp->mode == SF_SPARSE_SAMPLED ? "sampled gradients" : "gathered gradients",
                 (long long)k, (long long)tot, tot ? 100.0 * (double)k / (double)tot : 0.0,
                 sp->reference_quirks ? ", reference quirks ON" : "");
        luaL_addstring(&b, line);
        int show = sp->n <= 24 ? sp->n : 20;
        for (int i = 0; i < show; i++) {
            const sf_sparse_target *t = &sp->t[i];
            int64_t kk = t->selected ? t->k : sf_sparse_budget(sp->rate, t->numel);
            char shp[64];
            snprintf(line, sizeof line, "  %-52s %-14s k = %-8lld %s\n", t->name, sf_shape_str(t->w, shp, sizeof shp),
                     (long long)kk, t->selected ? "selected" : "not selected");
            luaL_addstring(&b, line);
        }
        if (show < sp->n) {
            snprintf(line, sizeof line, "  ... %d more\n", sp->n - show);
            luaL_addstring(&b, line);
        }
    } else if (s->lora) {
        snprintf(line, sizeof line, "LoRA set: %d adapted weights, r %d, alpha %g, %lld adapter values%s\n", s->lora->n,
                 s->lora->r, s->lora->alpha, (long long)sf_lora_trainable(s->lora), s->lora->n && s->lora->a[0].merged ? " (merged)" : "");
        luaL_addstring(&b, line);
    } else {
        snprintf(line, sizeof line, "full set: %d tensors, %lld values\n", s->n_dense, (long long)dense_count(s));
        luaL_addstring(&b, line);
    }
    if (s->kind != SET_FULL) {
        snprintf(line, sizeof line, "  dense: %d tensors (%lld values)", s->n_dense, (long long)dense_count(s));
        luaL_addstring(&b, line);
    }
    luaL_pushresult(&b);
    return 1;
}

/* sift.Set (with l_resume.c's checkpoint methods), sift._sparse / _lora / _full, and sift.AdamW (l_optim.c) */
void lsift_open_sets(lua_State *L) {
    static const luaL_Reg set_methods[] = {
        {"kind", set_kind_name},        {"_begin_selection", set_begin}, {"_note_batch", set_note_batch},
        {"_sync_arm", set_sync_arm},    {"_sync_wait", set_sync_wait},
        {"_finish_selection", set_finish}, {"_calib_grad", set_calib_grad}, {"_set_indices", set_set_indices},
        {"targets", set_targets},       {"dense", set_dense_names},     {"budget", set_budget},
        {"selected", set_selected},     {"indices", set_indices},       {"increment", set_delta},
        {"trainable", set_trainable},   {"memory", set_memory},         {"merge", set_merge},
        {"restore", set_restore},       {"write_back", set_write_back}, {"model", set_model},
        {"close", set_close},           {"save_delta", set_save_delta}, {NULL, NULL}};
    static const luaL_Reg set_meta[] = {{"__gc", set_gc}, {"__close", set_close}, {"__tostring", set_tostring}, {NULL, NULL}};
    luaL_newmetatable(L, LSIFT_SET);
    luaL_setfuncs(L, set_meta, 0);
    luaL_newlib(L, set_methods);
    luaL_setfuncs(L, lsift_resume_set_methods, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__index");
    lua_setfield(L, -3, "Set"); /* sift.Set = method table, extended by lua/sift/sets.lua */
    lua_pop(L, 1);

    static const luaL_Reg fns[] = {{"_sparse", l_sparse}, {"_lora", l_lora}, {"_full", l_full}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
    lsift_open_optim(L);
}
