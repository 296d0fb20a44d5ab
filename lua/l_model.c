/* l_model.c — the sift.Model userdata: sift.load(path, opts), model.config, model:names(), model:param(),
 * model:forward(batch, opts), model:backward(), model:grad(), model:zero_grad(), model:generate(),
 * and a printed summary. Batches are Lua tables {input_ids=, attention_mask=, labels=} whose values are
 * tables of rows or tensors. Thin: everything is done by core/model*.c. */
#include <stdio.h>
#include <string.h>

#include "../core/model.h"
#include "lsift.h"

#define LSIFT_MODEL "sift.Model"

typedef struct {
    sf_model *m;
} l_model;

sf_model *lsift_check_model(lua_State *L, int idx) {
    l_model *u = luaL_checkudata(L, idx, LSIFT_MODEL);
    if (!u->m) luaL_argerror(L, idx, "model has been closed");
    return u->m;
}

static int m_gc(lua_State *L) {
    l_model *u = luaL_checkudata(L, 1, LSIFT_MODEL);
    sf_model_free(u->m);
    u->m = NULL;
    return 0;
}

static const char *arch_name(sf_arch a) {
    switch (a) {
    case SF_ARCH_GPT2: return "gpt2";
    case SF_ARCH_LLAMA: return "llama";
    case SF_ARCH_BERT: return "bert";
    default: return "roberta";
    }
}

static void push_config(lua_State *L, const sf_model *m) {
    const sf_model_config *c = &m->cfg;
    lua_createtable(L, 0, 24);
#define SETI(k, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, k))
#define SETN(k, v) (lua_pushnumber(L, (lua_Number)(v)), lua_setfield(L, -2, k))
#define SETS(k, v) (lua_pushstring(L, v), lua_setfield(L, -2, k))
    SETS("arch", arch_name(c->arch));
    SETS("model_type", c->model_type);
    SETS("task", m->task == SF_TASK_LM ? "lm" : "classify");
    SETI("vocab_size", c->vocab_size);
    SETI("n_layer", c->n_layer);
    SETI("n_head", c->n_head);
    SETI("n_kv_head", c->n_kv_head);
    SETI("d_model", c->d_model);
    SETI("d_ff", c->d_ff);
    SETI("head_dim", c->head_dim);
    SETI("max_pos", c->max_pos);
    SETN("norm_eps", c->norm_eps);
    if (c->arch == SF_ARCH_LLAMA) {
        SETN("rope_theta", c->rope_theta);
        SETS("rope", c->rope_kind == SF_ROPE_HALF ? "half" : "interleaved");
    }
    lua_pushboolean(L, c->tied_head);
    lua_setfield(L, -2, "tied_head");
    if (c->pad_token_id >= 0) SETI("pad_token_id", c->pad_token_id);
    if (c->bos_token_id >= 0) SETI("bos_token_id", c->bos_token_id);
    if (c->eos_token_id >= 0) SETI("eos_token_id", c->eos_token_id);
    if (m->task == SF_TASK_CLASSIFY) SETI("num_labels", c->num_labels);
    SETI("n_params", sf_model_num_params(m));
    if (m->source) SETS("source", m->source);
    lua_createtable(L, m->n_unused, 0);
    for (int i = 0; i < m->n_unused; i++) {
        lua_pushstring(L, m->unused[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "unused");
#undef SETI
#undef SETN
#undef SETS
}

/* The options sift.load and sift.build take (their second argument). */
static const char *const MODEL_OPTIONS[] = {"task", "num_labels", "seed", NULL};

static int l_load(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    sf_load_options o = {.task = SF_TASK_LM, .num_labels = 0, .seed = 0};
    lsift_check_options(L, 2, "sift.load", MODEL_OPTIONS);
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "task");
        const char *task = luaL_optstring(L, -1, "lm");
        if (!strcmp(task, "classify")) o.task = SF_TASK_CLASSIFY;
        else if (strcmp(task, "lm")) return luaL_error(L, "sift.load: task must be \"lm\" or \"classify\", got \"%s\"", task);
        lua_getfield(L, 2, "num_labels");
        o.num_labels = luaL_optinteger(L, -1, 0);
        lua_getfield(L, 2, "seed");
        o.seed = (uint64_t)luaL_optinteger(L, -1, 0);
        lua_pop(L, 3);
        if (o.num_labels < 0) return luaL_error(L, "sift.load: num_labels must be positive");
    }
    l_model *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->m = NULL;
    luaL_setmetatable(L, LSIFT_MODEL);
    u->m = sf_model_load(path, &o);
    if (!u->m) return lsift_error(L, "sift.load");
    sf_model_set_trainable(u->m, 1);
    if (u->m->n_unused > 0) { /* reported by name, never silently */
        fprintf(stderr, "sift.load: %s: %d checkpoint tensor%s not used by the model:", path, u->m->n_unused,
                u->m->n_unused > 1 ? "s" : "");
        for (int i = 0; i < u->m->n_unused && i < 8; i++) fprintf(stderr, "%s %s", i ? "," : "", u->m->unused[i]);
        fprintf(stderr, "%s (see model.config.unused)\n", u->m->n_unused > 8 ? ", ..." : "");
    }
    push_config(L, u->m);
    lua_setiuservalue(L, -2, 1);
    return 1;
}

static lua_Integer cfg_int(lua_State *L, int idx, const char *key, lua_Integer def) {
    lua_getfield(L, idx, key);
    lua_Integer v = luaL_optinteger(L, -1, def);
    lua_pop(L, 1);
    if (v < 0 || v > (1 << 24)) luaL_error(L, "sift.build: %s = %d is out of range", key, (int)v);
    return v;
}

/* The keys of sift.build's config: the shape it reads, task and num_labels (when the options do not give
 * them), and the rest of what model.config holds (so a loaded model's config builds a fresh model of its
 * shape and kind; those describe the loaded model and are not read). */
static const char *const BUILD_CONFIG[] = {"arch", "vocab_size", "n_layer", "n_head", "n_kv_head", "d_model", "d_ff",
                                           "head_dim", "max_pos", "type_vocab", "model_type", "task", "norm_eps",
                                           "rope_theta", "rope", "tied_head", "pad_token_id", "bos_token_id",
                                           "eos_token_id", "num_labels", "n_params", "source", "unused", NULL};

/* sift.build(config, opts) -> a model with the given shape and Hugging Face's random initialisation. */
static int l_build(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lsift_check_fields(L, 1, "sift.build: config", BUILD_CONFIG);
    lsift_check_options(L, 2, "sift.build", MODEL_OPTIONS);
    sf_model_config c = {0};
    lua_getfield(L, 1, "arch");
    const char *arch = luaL_optstring(L, -1, "gpt2");
    lua_pop(L, 1);
    snprintf(c.model_type, sizeof c.model_type, "%s", arch);
    if (!strcmp(arch, "gpt2")) c.arch = SF_ARCH_GPT2;
    else if (!strcmp(arch, "llama")) c.arch = SF_ARCH_LLAMA;
    else if (!strcmp(arch, "bert")) c.arch = SF_ARCH_BERT;
    else if (!strcmp(arch, "roberta")) c.arch = SF_ARCH_ROBERTA;
    else return luaL_error(L, "sift.build: arch must be gpt2, llama, bert or roberta, got \"%s\"", arch);
    c.vocab_size = cfg_int(L, 1, "vocab_size", 256);
    c.n_layer = cfg_int(L, 1, "n_layer", 2);
    c.n_head = cfg_int(L, 1, "n_head", 4);
    c.n_kv_head = cfg_int(L, 1, "n_kv_head", c.n_head);
    c.d_model = cfg_int(L, 1, "d_model", 64);
    c.d_ff = cfg_int(L, 1, "d_ff", 4 * c.d_model);
    c.head_dim = cfg_int(L, 1, "head_dim", c.n_head ? c.d_model / c.n_head : 0);
    c.max_pos = cfg_int(L, 1, "max_pos", 256);
    c.type_vocab = c.arch == SF_ARCH_BERT || c.arch == SF_ARCH_ROBERTA ? cfg_int(L, 1, "type_vocab", 1) : 0;
    c.norm_eps = c.arch == SF_ARCH_LLAMA ? 1e-5f : (c.arch == SF_ARCH_GPT2 ? 1e-5f : 1e-12f);
    c.rope_theta = 10000.0f;
    c.rope_kind = SF_ROPE_HALF;
    c.gelu = c.arch == SF_ARCH_GPT2 ? SF_GELU_TANH : SF_GELU_ERF;
    c.tied_head = c.arch == SF_ARCH_GPT2;
    c.pad_token_id = c.arch == SF_ARCH_ROBERTA ? 1 : -1;
    c.position_offset = c.arch == SF_ARCH_ROBERTA ? 2 : 0;
    c.bos_token_id = c.eos_token_id = -1;
    c.attn_bias = c.mlp_bias = c.arch != SF_ARCH_LLAMA;
    if (!c.n_head || !c.n_kv_head || c.n_head % c.n_kv_head || c.head_dim * c.n_head != c.d_model || c.head_dim % 2)
        return luaL_error(L, "sift.build: inconsistent heads (d_model %d, n_head %d, n_kv_head %d)", (int)c.d_model,
                          (int)c.n_head, (int)c.n_kv_head);
    /* task and num_labels: the options', else the config's (a classifier's model.config builds a classifier
     * with its labels), else a language model / 2 labels */
    sf_task task = SF_TASK_LM;
    lua_Integer labels = 2, seed = 0;
    const int opts = lua_istable(L, 2) ? 2 : 0;
    if (!opts || lua_getfield(L, opts, "task") == LUA_TNIL) {
        if (opts) lua_pop(L, 1);
        lua_getfield(L, 1, "task");
    }
    const char *task_name = luaL_optstring(L, -1, "lm");
    if (!strcmp(task_name, "classify")) task = SF_TASK_CLASSIFY;
    else if (strcmp(task_name, "lm"))
        return luaL_error(L, "sift.build: task must be \"lm\" or \"classify\", got \"%s\"", task_name);
    if (!opts || lua_getfield(L, opts, "num_labels") == LUA_TNIL) {
        if (opts) lua_pop(L, 1);
        lua_getfield(L, 1, "num_labels");
    }
    labels = luaL_optinteger(L, -1, 2);
    lua_pop(L, 2);
    if (opts) {
        lua_getfield(L, opts, "seed");
        seed = luaL_optinteger(L, -1, 0);
        lua_pop(L, 1);
    }
    c.num_labels = labels;
    l_model *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->m = NULL;
    luaL_setmetatable(L, LSIFT_MODEL);
    u->m = sf_model_build(&c, task, labels);
    if (!u->m) return lsift_error(L, "sift.build");
    sf_model_init_random(u->m, (uint64_t)seed);
    sf_model_set_trainable(u->m, 1);
    push_config(L, u->m);
    lua_setiuservalue(L, -2, 1);
    return 1;
}

static int m_index(lua_State *L) {
    lsift_check_model(L, 1);
    const char *k = lua_tostring(L, 2);
    if (k && !strcmp(k, "config")) {
        lua_getiuservalue(L, 1, 1);
        return 1;
    }
    luaL_getmetatable(L, LSIFT_MODEL);
    lua_getfield(L, -1, "methods");
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
}

static int m_names(lua_State *L) {
    sf_model *m = lsift_check_model(L, 1);
    lua_createtable(L, m->n_params, 0);
    for (int i = 0; i < m->n_params; i++) {
        lua_pushstring(L, m->params[i].name);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int m_head_names(lua_State *L) {
    sf_model *m = lsift_check_model(L, 1);
    lua_newtable(L);
    int k = 0;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].is_head) {
            lua_pushstring(L, m->params[i].name);
            lua_rawseti(L, -2, ++k);
        }
    return 1;
}

/* model:shape(name) -> table of dims, without creating a tensor */
static int m_param_shape(lua_State *L) {
    sf_model *m = lsift_check_model(L, 1);
    const char *name = luaL_checkstring(L, 2);
    sf_tensor *t = sf_model_param(m, name);
    if (!t) return luaL_error(L, "no parameter named '%s' (see model:names())", name);
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->shape[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* model:param_layout(name) -> "in_out" for GPT-2's Conv1D weights (C, OC: y = x W), "out_in" for every other
 * parameter (nn.Linear's (OC, C), embeddings' rows, 1-D vectors): which axis holds a weight's output units */
static int m_param_layout(lua_State *L) {
    sf_model *m = lsift_check_model(L, 1);
    const char *name = luaL_checkstring(L, 2);
    sf_tensor *t = sf_model_param(m, name);
    if (!t) return luaL_error(L, "no parameter named '%s' (see model:names())", name);
    lua_pushstring(L, sf_model_weight_layout(m, t) == SF_W_IN_OUT ? "in_out" : "out_in");
    return 1;
}

static sf_tensor *param_or_error(lua_State *L, sf_model *m, const char *name) {
    sf_tensor *t = sf_model_param(m, name);
    if (!t) luaL_error(L, "no parameter named '%s' (see model:names())", name);
    return t;
}

static int m_param(lua_State *L) {
    sf_model *m = lsift_check_model(L, 1);
    sf_tensor *t = param_or_error(L, m, luaL_checkstring(L, 2));
    sf_tensor_retain(t);
    lsift_push_tensor(L, t);
    return 1;
}

static int m_grad(lua_State *L) {
    sf_model *m = lsift_check_model(L, 1);
    const char *name = luaL_checkstring(L, 2);
    sf_tensor *t = param_or_error(L, m, name);
    if (!t->grad) {
        if (t->hook) return luaL_error(L, "'%s' is hooked by a sparse set: its dense gradient is not kept", name);
        return luaL_error(L, "'%s' has no gradient yet: run forward with labels, then backward", name);
    }
    t->grad_zero = t->grad_finite = 0; /* the caller may write into it */
    sf_tensor_retain(t->grad);
    lsift_push_tensor(L, t->grad);
    return 1;
}

static int m_zero_grad(lua_State *L) {
    sf_model *m = lsift_check_model(L, 1);
    for (int i = 0; i < m->n_params; i++) sf_param_zero_grad(m->params[i].t);
    return 0;
}

/* Reads batch field `key` as an i64 tensor (new reference) or NULL when absent. */
static sf_tensor *batch_field(lua_State *L, int batch, const char *key, sf_dtype dt) {
    lua_getfield(L, batch, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    char what[64];
    snprintf(what, sizeof what, "forward: batch.%s", key);
    sf_tensor *t = lsift_to_dtype(L, -1, dt, what);
    lua_pop(L, 1);
    return t;
}

/* (T) -> a (1, T) view of the same storage; takes over t's reference (NULL on failure). */
static sf_tensor *as_single_row(sf_tensor *t) {
    if (t->ndim != 1) return t;
    int64_t shape[2] = {1, t->shape[0]};
    sf_tensor *v = sf_tensor_view(t, 2, shape);
    sf_tensor_release(t);
    return v;
}

/* A true / false option (def when absent); anything else is refused by name ({grad = "no"} was ignored). */
static int opt_boolean(lua_State *L, int idx, const char *key, int def, const char *who) {
    const int type = lua_getfield(L, idx, key);
    const int v = type == LUA_TNIL ? def : lua_toboolean(L, -1);
    if (type != LUA_TNIL && type != LUA_TBOOLEAN)
        luaL_error(L, "%s: %s must be true or false, got %s", who, key, luaL_tolstring(L, -1, NULL));
    lua_pop(L, 1);
    return v;
}

static int m_forward(lua_State *L) {
    static const char *const batch_fields[] = {"input_ids", "attention_mask", "labels", NULL};
    static const char *const options[] = {"grad", "logits", "pack", NULL};
    sf_model *m = lsift_check_model(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lsift_check_fields(L, 2, "forward: batch", batch_fields);
    lsift_check_options(L, 3, "forward", options);
    int train = 1, want_logits = 1, pack = 1;
    if (lua_istable(L, 3)) {
        train = opt_boolean(L, 3, "grad", 1, "forward");
        want_logits = opt_boolean(L, 3, "logits", 1, "forward");
        pack = opt_boolean(L, 3, "pack", 1, "forward");
    }
    /* a single sequence (1-D ids) is read as a batch of one through (1, T) views: the caller's tensors
     * keep their shapes */
    sf_tensor *ids = batch_field(L, 2, "input_ids", SF_I64);
    if (!ids) return luaL_error(L, "forward: batch.input_ids is required");
    int single = ids->ndim == 1;
    ids = single ? as_single_row(ids) : ids;
    lsift_push_tensor(L, ids); /* anchored for collection if anything below raises */
    sf_tensor *mask = batch_field(L, 2, "attention_mask", SF_I64);
    if (mask && single) mask = as_single_row(mask);
    if (mask) lsift_push_tensor(L, mask);
    /* class ids, next-token ids, or a regression head's real-valued targets */
    sf_tensor *labels = batch_field(L, 2, "labels", sf_model_is_regression(m) ? SF_F32 : SF_I64);
    if (labels && single && m->task == SF_TASK_LM) labels = as_single_row(labels);
    if (labels) lsift_push_tensor(L, labels);
    m->loss_only = !want_logits && labels != NULL;
    m->keep_padding = !pack;
    sf_status st = sf_model_forward(m, ids, mask, labels, train);
    m->loss_only = m->keep_padding = 0;
    if (st) return lsift_error(L, "forward");
    lua_createtable(L, 0, 2);
    if (m->logits) {
        sf_tensor_retain(m->logits);
        lsift_push_tensor(L, m->logits);
        lua_setfield(L, -2, "logits");
    }
    if (m->loss) {
        lua_pushnumber(L, sf_f32(m->loss)[0]);
        lua_setfield(L, -2, "loss");
    }
    return 1;
}

/* model:backward(scale = 1): the gradient of scale * loss, added to what the parameters hold. */
static int m_backward(lua_State *L) {
    sf_model *m = lsift_check_model(L, 1);
    const lua_Number scale = luaL_optnumber(L, 2, 1.0);
    if (sf_model_backward_scaled(m, (float)scale)) return lsift_error(L, "backward");
    return 0;
}

static int m_generate(lua_State *L) {
    sf_model *m = lsift_check_model(L, 1);
    sf_tensor *ids = lsift_to_ids(L, 2, "generate: ids");
    lsift_push_tensor(L, ids);
    lua_Integer max_new = 32, seed = 0;
    lua_Number temperature = 0;
    int stop = 0;
    static const char *const options[] = {"max_new", "temperature", "seed", "stop_at_eos", NULL};
    lsift_check_options(L, 3, "generate", options);
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "max_new");
        max_new = luaL_optinteger(L, -1, 32);
        lua_getfield(L, 3, "temperature");
        temperature = luaL_optnumber(L, -1, 0);
        lua_getfield(L, 3, "seed");
        seed = luaL_optinteger(L, -1, 0);
        lua_pop(L, 3);
        stop = opt_boolean(L, 3, "stop_at_eos", 0, "generate");
    }
    if (max_new < 0 || max_new > (1 << 24)) return luaL_error(L, "generate: max_new must be in 0..16777216");
    int64_t n_prompt = sf_tensor_numel(ids);
    int64_t *out = lua_newuserdatauv(L, (size_t)(n_prompt + max_new) * sizeof(int64_t) + 8, 0);
    int64_t n = 0;
    if (sf_model_generate(m, sf_tensor_data(ids), n_prompt, max_new, (float)temperature, (uint64_t)seed, stop, out, &n))
        return lsift_error(L, "generate");
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushinteger(L, out[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* model:profile(true|false) turns per-op timing on/off (and clears it); model:profile() returns
 * {op = {forward = s, backward = s, calls = n}, ...} accumulated since it was turned on. */
static int m_profile(lua_State *L) {
    sf_model *m = lsift_check_model(L, 1);
    if (lua_isboolean(L, 2)) {
        sf_graph_profile_clear(m->graph);
        sf_graph_set_profiling(m->graph, lua_toboolean(L, 2));
        return 0;
    }
    const sf_op_time *p;
    int n = sf_graph_profile(m->graph, &p);
    lua_createtable(L, 0, n);
    for (int i = 0; i < n; i++) {
        lua_createtable(L, 0, 3);
        lua_pushnumber(L, p[i].forward_s);
        lua_setfield(L, -2, "forward");
        lua_pushnumber(L, p[i].backward_s);
        lua_setfield(L, -2, "backward");
        lua_pushinteger(L, p[i].calls);
        lua_setfield(L, -2, "calls");
        lua_setfield(L, -2, p[i].op);
    }
    return 1;
}

static int m_tostring(lua_State *L) {
    sf_model *m = lsift_check_model(L, 1);
    int64_t total = 0, trainable = 0, head = 0;
    for (int i = 0; i < m->n_params; i++) {
        int64_t n = sf_tensor_numel(m->params[i].t);
        total += n;
        if (m->params[i].t->requires_grad) trainable += n;
        if (m->params[i].is_head) head += n;
    }
    const sf_model_config *c = &m->cfg;
    lua_pushfstring(L,
                    "%s model (%s): %d layers, d_model %d, %d heads (%d kv), d_ff %d, vocab %d\n"
                    "  task %s%s, %d parameter tensors, %I parameters (%I trainable, %I in the head)",
                    arch_name(c->arch), m->source ? m->source : "built", (int)c->n_layer, (int)c->d_model,
                    (int)c->n_head, (int)c->n_kv_head, (int)c->d_ff, (int)c->vocab_size,
                    m->task == SF_TASK_LM ? "lm" : "classify", m->task == SF_TASK_LM ? "" : " (new or loaded head)",
                    m->n_params, (lua_Integer)total, (lua_Integer)trainable, (lua_Integer)head);
    return 1;
}

void lsift_open_model(lua_State *L) {
    static const luaL_Reg methods[] = {{"names", m_names},       {"param", m_param},       {"grad", m_grad},
                                       {"zero_grad", m_zero_grad}, {"forward", m_forward}, {"backward", m_backward},
                                       {"generate", m_generate}, {"head_names", m_head_names},
                                       {"param_shape", m_param_shape}, {"param_layout", m_param_layout},
                                       {"profile", m_profile}, {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", m_gc},
                                    {"__close", m_gc},
                                    {"__index", m_index},
                                    {"__tostring", m_tostring},
                                    {NULL, NULL}};
    luaL_newmetatable(L, LSIFT_MODEL);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "methods");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_load);
    lua_setfield(L, -2, "load");
    lua_pushcfunction(L, l_build);
    lua_setfield(L, -2, "build");
    luaL_getmetatable(L, LSIFT_MODEL);
    lua_getfield(L, -1, "methods");
    lua_setfield(L, -3, "Model");
    lua_pop(L, 1);
}
