/* l_optim.c — sift.AdamW(set, opts): the optimizer of a set's dense tensors and LoRA factors (the sparse
 * increments' AdamW runs in the sparse set, core/sift.c, from the same hyper-parameters), with step,
 * zero_grad, learning rate, and global-norm clipping over every trainable gradient. Refuses NaN/Inf
 * gradients before touching any weight. Its checkpoint methods (_state, _restore) are l_resume.c's. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "l_sets.h"

l_opt *lsift_check_opt(lua_State *L, int idx) { return luaL_checkudata(L, idx, LSIFT_OPT); }

static int opt_gc(lua_State *L) {
    l_opt *o = luaL_checkudata(L, 1, LSIFT_OPT);
    sf_adamw_free(o->dense);
    o->dense = NULL;
    return 0;
}

int lsift_collect_dense(l_set *s, sf_tensor ***out) {
    int n = s->n_dense + (s->lora ? 2 * s->lora->n : 0);
    sf_tensor **t = calloc((size_t)n + 1, sizeof *t);
    if (!t) return -1;
    int k = 0;
    for (int i = 0; i < s->n_dense; i++) t[k++] = s->dense[i];
    if (s->lora)
        for (int i = 0; i < s->lora->n; i++) {
            t[k++] = s->lora->a[i].A;
            t[k++] = s->lora->a[i].B;
        }
    *out = t;
    return n;
}

/* A hyper-parameter as a float: v when it is finite, at least lo (above lo when lo_open) and below 1 when
 * below_one (betas), and within a float's range; else an error naming who, the key and the value (a float
 * cast of 1e300 is Inf, which the first step would write into every weight). */
static float hparam(lua_State *L, const char *who, const char *key, double v, double lo, int lo_open, int below_one) {
    if (!(isfinite(v) && (lo_open ? v > lo : v >= lo) && (!below_one || v < 1) && v <= FLT_MAX)) {
        const char *rule = below_one ? "in [0, 1)" : lo_open ? "a finite number > 0" : "a finite number >= 0";
        luaL_error(L, "%s: %s must be %s, got %f", who, key, rule, (lua_Number)v);
    }
    return (float)v;
}

/* sift.AdamW(set, {lr, betas, eps, weight_decay, decay = "all" | "matrices", sparse_weight_decay}) */
static int l_adamw(lua_State *L) {
    static const char *const options[] = {"lr", "betas", "eps", "weight_decay", "decay", "sparse_weight_decay", NULL};
    l_set *s = lsift_check_set(L, 1);
    lsift_check_options(L, 2, "sift.AdamW", options);
    int o_idx = lua_istable(L, 2) ? 2 : 0;
    sf_adamw_hparams h = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
    const char *decay = "all", *who = "sift.AdamW";
    float swd;
    if (o_idx) {
        h.lr = hparam(L, who, "lr", lsift_opt_number(L, o_idx, "lr", h.lr), 0, 0, 0);
        h.eps = hparam(L, who, "eps", lsift_opt_number(L, o_idx, "eps", h.eps), 0, 1, 0);
        h.weight_decay =
            hparam(L, who, "weight_decay", lsift_opt_number(L, o_idx, "weight_decay", h.weight_decay), 0, 0, 0);
        lua_getfield(L, o_idx, "betas");
        if (lua_istable(L, -1)) {
            lua_geti(L, -1, 1);
            lua_geti(L, -2, 2);
            h.beta1 = hparam(L, who, "betas[1]", luaL_checknumber(L, -2), 0, 0, 1);
            h.beta2 = hparam(L, who, "betas[2]", luaL_checknumber(L, -1), 0, 0, 1);
            lua_pop(L, 2);
        }
        lua_pop(L, 1);
        lua_getfield(L, o_idx, "decay");
        decay = luaL_optstring(L, -1, "all");
        lua_pop(L, 1);
    }
    swd = o_idx ? hparam(L, who, "sparse_weight_decay", lsift_opt_number(L, o_idx, "sparse_weight_decay", h.weight_decay),
                         0, 0, 0)
                : h.weight_decay;
    if (strcmp(decay, "all") && strcmp(decay, "matrices"))
        return luaL_error(L, "sift.AdamW: decay must be \"all\" or \"matrices\", got \"%s\"", decay);
    sf_tensor **t;
    int n = lsift_collect_dense(s, &t);
    if (n < 0) return luaL_error(L, "out of memory");
    float *wd = calloc((size_t)n + 1, sizeof *wd);
    for (int i = 0; i < n; i++) wd[i] = (!strcmp(decay, "matrices") && t[i]->ndim < 2) ? 0.0f : 1.0f;
    l_opt *o = lua_newuserdatauv(L, sizeof *o, 1);
    memset(o, 0, sizeof *o);
    luaL_setmetatable(L, LSIFT_OPT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    o->h = h;
    o->sparse_wd = swd;
    o->dense = sf_adamw_new(t, wd, n, &h);
    free(t);
    free(wd);
    if (!o->dense) return lsift_error(L, "sift.AdamW");
    return 1;
}

l_set *lsift_opt_set(lua_State *L, int idx) {
    lua_getiuservalue(L, idx, 1);
    l_set *s = lsift_check_set(L, -1);
    lua_pop(L, 1);
    return s;
}

static int opt_step(lua_State *L) {
    l_opt *o = lsift_check_opt(L, 1);
    l_set *s = lsift_opt_set(L, 1);
    if (s->sparse && s->sparse->calibrating)
        return luaL_error(L, "step: the sparse set is still selecting (finish s:select first)");
    if (s->sparse && !lsift_all_selected(s->sparse))
        return luaL_error(L, "step: the sparse set has not selected its masks yet (run s:select(batch))");
    /* refuse NaN/Inf before touching any weight */
    sf_tensor **t;
    int n = lsift_collect_dense(s, &t);
    for (int i = 0; i < n; i++) { /* those whose last writer checked what it wrote need no sweep */
        if (!t[i]->grad || sf_graph_grad_known_finite(t[i])) continue;
        if (sf_count_nonfinite(sf_f32(t[i]->grad), sf_tensor_numel(t[i]->grad))) {
            const char *nm = t[i]->name ? t[i]->name : "?";
            free(t);
            return luaL_error(L, "step: non-finite gradient in %s; weights left unchanged", nm);
        }
    }
    free(t);
    if (s->sparse) {
        sf_adamw_hparams hs = o->h;
        hs.weight_decay = o->sparse_wd;
        if (sf_sparse_step(s->sparse, &hs)) return lsift_error(L, "step"); /* checks for NaN/Inf first */
    }
    if (sf_adamw_step(o->dense)) return lsift_error(L, "step");
    sf_adamw_zero_grad(o->dense);
    s->opt_bytes = sf_adamw_state_bytes(o->dense);
    o->steps++;
    return 0;
}

static int opt_zero_grad(lua_State *L) {
    l_opt *o = lsift_check_opt(L, 1);
    l_set *s = lsift_opt_set(L, 1);
    sf_adamw_zero_grad(o->dense);
    if (s->sparse && !s->sparse->calibrating) sf_sparse_zero_grad(s->sparse);
    return 0;
}

static int opt_set_lr(lua_State *L) {
    l_opt *o = lsift_check_opt(L, 1);
    const float lr = hparam(L, "set_lr", "the learning rate", luaL_checknumber(L, 2), 0, 0, 0);
    o->h.lr = lr;
    sf_adamw_set_lr(o->dense, lr);
    return 0;
}

static int opt_lr(lua_State *L) {
    lua_pushnumber(L, lsift_check_opt(L, 1)->h.lr);
    return 1;
}

static int opt_steps(lua_State *L) {
    lua_pushinteger(L, lsift_check_opt(L, 1)->steps);
    return 1;
}

/* Global L2 norm of every trainable gradient (sparse increments included); scales them to max_norm
 * when above it. Returns the norm before clipping. */
static int opt_clip(lua_State *L) {
    lsift_check_opt(L, 1);
    l_set *s = lsift_opt_set(L, 1);
    double max_norm = luaL_optnumber(L, 2, INFINITY);
    sf_tensor **t;
    int n = lsift_collect_dense(s, &t);
    double sq = 0;
    for (int i = 0; i < n; i++)
        if (t[i]->grad) sq += sf_grad_norm_sq(sf_f32(t[i]->grad), sf_tensor_numel(t[i]->grad));
    if (s->sparse) sq += sf_sparse_grad_norm_sq(s->sparse);
    double norm = sqrt(sq);
    if (norm > max_norm && norm > 0) {
        float f = (float)(max_norm / (norm + 1e-6));
        for (int i = 0; i < n; i++)
            if (t[i]->grad) sf_scale_inplace(sf_f32(t[i]->grad), sf_tensor_numel(t[i]->grad), f);
        if (s->sparse) sf_sparse_scale_grad(s->sparse, f);
    }
    free(t);
    lua_pushnumber(L, norm);
    return 1;
}

static int opt_tostring(lua_State *L) {
    l_opt *o = lsift_check_opt(L, 1);
    lua_pushfstring(L, "AdamW(lr %f, betas %f/%f, eps %f, weight_decay %f, sparse weight_decay %f), %d steps",
                    (double)o->h.lr, (double)o->h.beta1, (double)o->h.beta2, (double)o->h.eps, (double)o->h.weight_decay,
                    (double)o->sparse_wd, (int)o->steps);
    return 1;
}

void lsift_open_optim(lua_State *L) {
    static const luaL_Reg opt_methods[] = {{"step", opt_step}, {"zero_grad", opt_zero_grad}, {"set_lr", opt_set_lr},
                                           {"lr", opt_lr},     {"steps", opt_steps},         {"clip", opt_clip},
                                           {NULL, NULL}};
    static const luaL_Reg opt_meta[] = {{"__gc", opt_gc}, {"__close", opt_gc}, {"__tostring", opt_tostring}, {NULL, NULL}};
    luaL_newmetatable(L, LSIFT_OPT);
    luaL_setfuncs(L, opt_meta, 0);
    luaL_newlib(L, opt_methods);
    luaL_setfuncs(L, lsift_resume_opt_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_adamw);
    lua_setfield(L, -2, "AdamW");
}
