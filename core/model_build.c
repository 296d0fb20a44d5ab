/* model_build.c — the parameter table of each architecture: Hugging Face names in named_parameters()
 * order, shapes from the config, per-layer pointers, the task head, and Hugging Face's default
 * initialisation. Does not read files (model_hf.c and model_llama2c.c fill the tensors). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "rng.h"

static sf_tensor *add_param(sf_model *m, int is_head, int ndim, int64_t d0, int64_t d1, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (m->n_params == m->cap_params) {
        int nc = m->cap_params ? 2 * m->cap_params : 64;
        sf_param_entry *p = realloc(m->params, (size_t)nc * sizeof *p);
        if (!p) return sf_fail_null(SF_ERR_NOMEM, "out of memory (parameter table)");
        m->params = p;
        m->cap_params = nc;
    }
    int64_t shape[2] = {d0, d1};
    sf_tensor *t = sf_tensor_zeros_f32(ndim, shape);
    if (!t) return NULL;
    if (sf_tensor_set_name(t, name)) {
        sf_tensor_release(t);
        return NULL;
    }
    char *nm = strdup(name);
    if (!nm) {
        sf_tensor_release(t);
        return sf_fail_null(SF_ERR_NOMEM, "out of memory (parameter name)");
    }
    m->params[m->n_params++] = (sf_param_entry){.name = nm, .t = t, .is_head = is_head};
    return t;
}

#define P1(dst, d0, ...) \
    if (!((dst) = add_param(m, 0, 1, d0, 0, __VA_ARGS__))) goto fail
#define P2(dst, d0, d1, ...) \
    if (!((dst) = add_param(m, 0, 2, d0, d1, __VA_ARGS__))) goto fail
#define H1(dst, d0, ...) \
    if (!((dst) = add_param(m, 1, 1, d0, 0, __VA_ARGS__))) goto fail
#define H2(dst, d0, d1, ...) \
    if (!((dst) = add_param(m, 1, 2, d0, d1, __VA_ARGS__))) goto fail

static int build_gpt2(sf_model *m) {
    const sf_model_config *c = &m->cfg;
    int64_t C = c->d_model, F = c->d_ff;
    P2(m->wte, c->vocab_size, C, "transformer.wte.weight");
    P2(m->wpe, c->max_pos, C, "transformer.wpe.weight");
    for (int64_t l = 0; l < c->n_layer; l++) {
        sf_layer *L = &m->layers[l];
        P1(L->ln1_w, C, "transformer.h.%lld.ln_1.weight", (long long)l);
        P1(L->ln1_b, C, "transformer.h.%lld.ln_1.bias", (long long)l);
        P2(L->wqkv, C, 3 * C, "transformer.h.%lld.attn.c_attn.weight", (long long)l);
        P1(L->bqkv, 3 * C, "transformer.h.%lld.attn.c_attn.bias", (long long)l);
        P2(L->wo, C, C, "transformer.h.%lld.attn.c_proj.weight", (long long)l);
        P1(L->bo, C, "transformer.h.%lld.attn.c_proj.bias", (long long)l);
        P1(L->ln2_w, C, "transformer.h.%lld.ln_2.weight", (long long)l);
        P1(L->ln2_b, C, "transformer.h.%lld.ln_2.bias", (long long)l);
        P2(L->w_up, C, F, "transformer.h.%lld.mlp.c_fc.weight", (long long)l);
        P1(L->b_up, F, "transformer.h.%lld.mlp.c_fc.bias", (long long)l);
        P2(L->w_down, F, C, "transformer.h.%lld.mlp.c_proj.weight", (long long)l);
        P1(L->b_down, C, "transformer.h.%lld.mlp.c_proj.bias", (long long)l);
    }
    P1(m->lnf_w, C, "transformer.ln_f.weight");
    P1(m->lnf_b, C, "transformer.ln_f.bias");
    if (!c->tied_head && m->task == SF_TASK_LM) P2(m->lm_head, c->vocab_size, C, "lm_head.weight");
    if (m->task == SF_TASK_CLASSIFY) H2(m->score_w, c->num_labels, C, "score.weight");
    return 0;
fail:
    return -1;
}

static int build_llama(sf_model *m) {
    const sf_model_config *c = &m->cfg;
    int64_t C = c->d_model, F = c->d_ff, Q = c->n_head * c->head_dim, KV = c->n_kv_head * c->head_dim;
    P2(m->wte, c->vocab_size, C, "model.embed_tokens.weight");
    for (int64_t l = 0; l < c->n_layer; l++) {
        sf_layer *L = &m->layers[l];
        long long ll = (long long)l;
        P2(L->wq, Q, C, "model.layers.%lld.self_attn.q_proj.weight", ll);
        if (c->attn_bias) P1(L->bq, Q, "model.layers.%lld.self_attn.q_proj.bias", ll);
        P2(L->wk, KV, C, "model.layers.%lld.self_attn.k_proj.weight", ll);
        if (c->attn_bias) P1(L->bk, KV, "model.layers.%lld.self_attn.k_proj.bias", ll);
        P2(L->wv, KV, C, "model.layers.%lld.self_attn.v_proj.weight", ll);
        if (c->attn_bias) P1(L->bv, KV, "model.layers.%lld.self_attn.v_proj.bias", ll);
        P2(L->wo, C, Q, "model.layers.%lld.self_attn.o_proj.weight", ll);
        if (c->attn_bias && strcmp(c->model_type, "qwen2")) P1(L->bo, C, "model.layers.%lld.self_attn.o_proj.bias", ll);
        P2(L->w_gate, F, C, "model.layers.%lld.mlp.gate_proj.weight", ll);
        P2(L->w_up, F, C, "model.layers.%lld.mlp.up_proj.weight", ll);
        P2(L->w_down, C, F, "model.layers.%lld.mlp.down_proj.weight", ll);
        P1(L->ln1_w, C, "model.layers.%lld.input_layernorm.weight", ll);
        P1(L->ln2_w, C, "model.layers.%lld.post_attention_layernorm.weight", ll);
    }
    P1(m->lnf_w, C, "model.norm.weight");
    if (!c->tied_head && m->task == SF_TASK_LM) P2(m->lm_head, c->vocab_size, C, "lm_head.weight");
    if (m->task == SF_TASK_CLASSIFY) H2(m->score_w, c->num_labels, C, "score.weight");
    return 0;
fail:
    return -1;
}

static int build_encoder(sf_model *m) {
    const sf_model_config *c = &m->cfg;
    int64_t C = c->d_model, F = c->d_ff;
    const char *p = c->arch == SF_ARCH_ROBERTA ? "roberta" : "bert";
    P2(m->wte, c->vocab_size, C, "%s.embeddings.word_embeddings.weight", p);
    if (c->arch == SF_ARCH_BERT) P2(m->wpe, c->max_pos, C, "%s.embeddings.position_embeddings.weight", p);
    if (c->type_vocab > 0) P2(m->wtt, c->type_vocab, C, "%s.embeddings.token_type_embeddings.weight", p);
    P1(m->ln_emb_w, C, "%s.embeddings.LayerNorm.weight", p);
    P1(m->ln_emb_b, C, "%s.embeddings.LayerNorm.bias", p);
    if (c->arch == SF_ARCH_ROBERTA) P2(m->wpe, c->max_pos, C, "%s.embeddings.position_embeddings.weight", p);
    for (int64_t l = 0; l < c->n_layer; l++) {
        sf_layer *L = &m->layers[l];
        long long ll = (long long)l;
        P2(L->wq, C, C, "%s.encoder.layer.%lld.attention.self.query.weight", p, ll);
        P1(L->bq, C, "%s.encoder.layer.%lld.attention.self.query.bias", p, ll);
        P2(L->wk, C, C, "%s.encoder.layer.%lld.attention.self.key.weight", p, ll);
        P1(L->bk, C, "%s.encoder.layer.%lld.attention.self.key.bias", p, ll);
        P2(L->wv, C, C, "%s.encoder.layer.%lld.attention.self.value.weight", p, ll);
        P1(L->bv, C, "%s.encoder.layer.%lld.attention.self.value.bias", p, ll);
        P2(L->wo, C, C, "%s.encoder.layer.%lld.attention.output.dense.weight", p, ll);
        P1(L->bo, C, "%s.encoder.layer.%lld.attention.output.dense.bias", p, ll);
        P1(L->ln1_w, C, "%s.encoder.layer.%lld.attention.output.LayerNorm.weight", p, ll);
        P1(L->ln1_b, C, "%s.encoder.layer.%lld.attention.output.LayerNorm.bias", p, ll);
        P2(L->w_up, F, C, "%s.encoder.layer.%lld.intermediate.dense.weight", p, ll);
        P1(L->b_up, F, "%s.encoder.layer.%lld.intermediate.dense.bias", p, ll);
        P2(L->w_down, C, F, "%s.encoder.layer.%lld.output.dense.weight", p, ll);
        P1(L->b_down, C, "%s.encoder.layer.%lld.output.dense.bias", p, ll);
        P1(L->ln2_w, C, "%s.encoder.layer.%lld.output.LayerNorm.weight", p, ll);
        P1(L->ln2_b, C, "%s.encoder.layer.%lld.output.LayerNorm.bias", p, ll);
    }
    if (m->task == SF_TASK_CLASSIFY) {
        if (c->arch == SF_ARCH_ROBERTA) {
            H2(m->cls_dense_w, C, C, "classifier.dense.weight");
            H1(m->cls_dense_b, C, "classifier.dense.bias");
            H2(m->cls_out_w, c->num_labels, C, "classifier.out_proj.weight");
            H1(m->cls_out_b, c->num_labels, "classifier.out_proj.bias");
        } else {
            H2(m->cls_dense_w, C, C, "bert.pooler.dense.weight");
            H1(m->cls_dense_b, C, "bert.pooler.dense.bias");
            H2(m->cls_out_w, c->num_labels, C, "classifier.weight");
            H1(m->cls_out_b, c->num_labels, "classifier.bias");
        }
    }
    return 0;
fail:
    return -1;
}

sf_model *sf_model_build(const sf_model_config *cfg, sf_task task, int64_t num_labels) {
    if (task == SF_TASK_CLASSIFY && num_labels < 1)
        return sf_fail_null(SF_ERR_ARG, "classification needs num_labels >= 1, got %lld", (long long)num_labels);
    if (task == SF_TASK_LM && (cfg->arch == SF_ARCH_BERT || cfg->arch == SF_ARCH_ROBERTA))
        return sf_fail_null(SF_ERR_ARG, "%s is an encoder: use task \"classify\" (masked-LM heads are not supported)",
                            cfg->model_type);
    sf_model *m = calloc(1, sizeof *m);
    if (!m) return sf_fail_null(SF_ERR_NOMEM, "out of memory (model)");
    m->cfg = *cfg;
    m->task = task;
    if (task == SF_TASK_CLASSIFY) m->cfg.num_labels = num_labels;
    m->layers = calloc((size_t)cfg->n_layer, sizeof *m->layers);
    m->graph = sf_graph_new();
    if (!m->layers || !m->graph) {
        sf_model_free(m);
        return sf_fail_null(SF_ERR_NOMEM, "out of memory (model layers)");
    }
    int rc = cfg->arch == SF_ARCH_GPT2 ? build_gpt2(m) : cfg->arch == SF_ARCH_LLAMA ? build_llama(m) : build_encoder(m);
    if (rc) {
        sf_model_free(m);
        return NULL;
    }
    return m;
}

void sf_model_free(sf_model *m) {
    if (!m) return;
    sf_graph_free(m->graph);
    for (int i = 0; i < m->n_params; i++) {
        free(m->params[i].name);
        sf_tensor_release(m->params[i].t);
    }
    free(m->params);
    free(m->layers);
    for (int i = 0; i < m->n_unused; i++) free(m->unused[i]);
    free(m->unused);
    free(m->source);
    free(m);
}

const sf_param_entry *sf_model_param_entry(const sf_model *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, name)) return &m->params[i];
    return NULL;
}

sf_tensor *sf_model_param(const sf_model *m, const char *name) {
    const sf_param_entry *e = sf_model_param_entry(m, name);
    return e ? e->t : NULL;
}

int64_t sf_model_num_params(const sf_model *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n_params; i++) n += sf_tensor_numel(m->params[i].t);
    return n;
}

void sf_model_set_trainable(sf_model *m, int trainable) {
    for (int i = 0; i < m->n_params; i++) sf_param_set_trainable(m->params[i].t, trainable);
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Hugging Face's _init_weights: normal(0, 0.02) for Linear/Embedding weights, zero biases, norms 1/0. */
static void init_param(const sf_model *m, sf_param_entry *p, sf_rng *r) {
    sf_tensor *t = p->t;
    float *d = sf_f32(t);
    int64_t n = sf_tensor_numel(t);
    int is_norm = strstr(p->name, "ln_") || strstr(p->name, "layernorm") || strstr(p->name, "LayerNorm") ||
                  strstr(p->name, "norm.weight");
    if (is_norm) {
        float v = ends_with(p->name, ".bias") ? 0.0f : 1.0f;
        for (int64_t i = 0; i < n; i++) d[i] = v;
    } else if (t->ndim == 1) {
        memset(d, 0, (size_t)n * sizeof *d);
    } else {
        float std = 0.02f;
        if (m->cfg.arch == SF_ARCH_GPT2 && ends_with(p->name, "c_proj.weight"))
            std = 0.02f / sqrtf(2.0f * (float)m->cfg.n_layer);
        sf_rng_fill_normal(r, d, n, 0.0f, std);
        if (m->cfg.arch == SF_ARCH_BERT || m->cfg.arch == SF_ARCH_ROBERTA) {
            /* nn.Embedding with padding_idx: the padding row is zero */
            if (strstr(p->name, "word_embeddings") && m->cfg.pad_token_id >= 0 && m->cfg.pad_token_id < t->shape[0])
                memset(d + m->cfg.pad_token_id * t->shape[1], 0, (size_t)t->shape[1] * sizeof *d);
        }
    }
}

void sf_model_init_random(sf_model *m, uint64_t seed) {
    sf_rng r;
    sf_rng_seed(&r, seed);
    for (int i = 0; i < m->n_params; i++) init_param(m, &m->params[i], &r);
}

void sf_model_init_new_heads(sf_model *m, uint64_t seed) {
    sf_rng r;
    sf_rng_seed(&r, seed);
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].is_new) init_param(m, &m->params[i], &r);
}

sf_wlayout sf_model_weight_layout(const sf_model *m, const sf_tensor *w) {
    if (m->cfg.arch != SF_ARCH_GPT2) return SF_W_OUT_IN;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const sf_layer *L = &m->layers[l];
        if (w == L->wqkv || w == L->wo || w == L->w_up || w == L->w_down) return SF_W_IN_OUT;
    }
    return SF_W_OUT_IN;
}
