/* model_config.c — Hugging Face config.json -> sf_model_config, with every field validated and each
 * error naming the file and the field. Supports model_type gpt2, llama (also mistral-style fields),
 * bert and roberta. Does not load weights. */
#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static char *read_text_file(const char *path, size_t max, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return sf_fail_null(SF_ERR_IO, "%s: cannot open", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0 || (size_t)n > max) {
        fclose(f);
        return sf_fail_null(SF_ERR_FORMAT, "%s: size %ld outside 0..%zu bytes", path, n, max);
    }
    char *buf = malloc((size_t)n + 1);
    if (!buf) {
        fclose(f);
        return sf_fail_null(SF_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    if (got != (size_t)n) {
        free(buf);
        return sf_fail_null(SF_ERR_IO, "%s: short read", path);
    }
    buf[n] = 0;
    if (len) *len = (size_t)n;
    return buf;
}

/* Integer field: absent or null -> def (def < -1 means required). */
static int get_int(const cJSON *j, const char *key, int64_t def, int64_t lo, int64_t hi, const char *path,
                   int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) {
        if (def < -1) return sf_fail(SF_ERR_FORMAT, "%s: missing field \"%s\"", path, key);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return sf_fail(SF_ERR_FORMAT, "%s: field \"%s\" must be an integer", path, key);
    const double d = v->valuedouble; /* compared as a double: 1e308 must not be cast to an integer first */
    if (!(d >= (double)lo && d <= (double)hi))
        return sf_fail(SF_ERR_FORMAT, "%s: field \"%s\" = %.17g outside %lld..%lld", path, key, d, (long long)lo,
                       (long long)hi);
    *out = (int64_t)d;
    return 0;
}

static int get_float(const cJSON *j, const char *key, double def, const char *path, float *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) {
        *out = (float)def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !(v->valuedouble <= FLT_MAX))
        return sf_fail(SF_ERR_FORMAT, "%s: field \"%s\" must be a positive number a float holds", path, key);
    *out = (float)v->valuedouble;
    return 0;
}

static int get_bool(const cJSON *j, const char *key, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return def;
}

static const char *get_str(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A token id field: an integer or a list (its first entry); absent, null, an empty list or negative:
 * -1 (none). Anything else that is not an integer below 2^31 (a fraction, 1e308, a string) is an error
 * naming the field, not a value cast into range. */
static int get_token_id(const cJSON *j, const char *key, const char *path, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);
    *out = -1;
    if (!v || cJSON_IsNull(v)) return 0;
    const double d = cJSON_IsNumber(v) ? v->valuedouble : 0.5;
    if (!(d == floor(d) && d < 2147483648.0))
        return sf_fail(SF_ERR_FORMAT, "%s: field \"%s\" must be a token id (an integer below 2^31)", path, key);
    if (d >= 0) *out = (int64_t)d;
    return 0;
}

static int gelu_from_name(const char *act, const char *path, sf_gelu_kind *out) {
    if (!act || !strcmp(act, "gelu") || !strcmp(act, "gelu_python")) *out = SF_GELU_ERF;
    else if (!strcmp(act, "gelu_new") || !strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu_fast"))
        *out = SF_GELU_TANH;
    else
        return sf_fail(SF_ERR_FORMAT, "%s: unsupported activation \"%s\" (gelu, gelu_new, gelu_pytorch_tanh)", path, act);
    return 0;
}

#define BIG (1LL << 24)

static sf_status parse(const cJSON *j, const char *path, sf_model_config *c) {
    const char *mt = get_str(j, "model_type");
    if (!mt) return sf_fail(SF_ERR_FORMAT, "%s: missing field \"model_type\"", path);
    memset(c, 0, sizeof *c);
    snprintf(c->model_type, sizeof c->model_type, "%s", mt);
    if (get_token_id(j, "pad_token_id", path, &c->pad_token_id) || get_token_id(j, "bos_token_id", path, &c->bos_token_id) ||
        get_token_id(j, "eos_token_id", path, &c->eos_token_id))
        return SF_ERR_FORMAT;
    int64_t nl = 0;
    const cJSON *id2label = cJSON_GetObjectItemCaseSensitive(j, "id2label");
    if (cJSON_IsObject(id2label)) nl = cJSON_GetArraySize(id2label);
    if (get_int(j, "num_labels", nl ? nl : 2, 1, BIG, path, &c->num_labels)) return SF_ERR_FORMAT;
    if (!strcmp(mt, "gpt2")) {
        c->arch = SF_ARCH_GPT2;
        if (get_int(j, "vocab_size", -2, 1, BIG * 4, path, &c->vocab_size) ||
            get_int(j, "n_embd", -2, 1, BIG, path, &c->d_model) || get_int(j, "n_layer", -2, 1, 4096, path, &c->n_layer) ||
            get_int(j, "n_head", -2, 1, 4096, path, &c->n_head) ||
            get_int(j, "n_positions", 1024, 1, BIG, path, &c->max_pos) ||
            get_int(j, "n_inner", 4 * c->d_model, 1, BIG, path, &c->d_ff) ||
            get_float(j, "layer_norm_epsilon", 1e-5, path, &c->norm_eps) ||
            gelu_from_name(get_str(j, "activation_function") ? get_str(j, "activation_function") : "gelu_new", path,
                           &c->gelu))
            return SF_ERR_FORMAT;
        c->n_kv_head = c->n_head;
        c->tied_head = get_bool(j, "tie_word_embeddings", 1);
        c->attn_bias = c->mlp_bias = 1;
    } else if (!strcmp(mt, "llama") || !strcmp(mt, "mistral") || !strcmp(mt, "qwen2")) {
        c->arch = SF_ARCH_LLAMA;
        if (get_int(j, "vocab_size", -2, 1, BIG * 4, path, &c->vocab_size) ||
            get_int(j, "hidden_size", -2, 1, BIG, path, &c->d_model) ||
            get_int(j, "num_hidden_layers", -2, 1, 4096, path, &c->n_layer) ||
            get_int(j, "num_attention_heads", -2, 1, 4096, path, &c->n_head) ||
            get_int(j, "num_key_value_heads", c->n_head, 1, 4096, path, &c->n_kv_head) ||
            get_int(j, "intermediate_size", -2, 1, BIG, path, &c->d_ff) ||
            get_int(j, "max_position_embeddings", 2048, 1, BIG, path, &c->max_pos) ||
            get_float(j, "rms_norm_eps", 1e-6, path, &c->norm_eps))
            return SF_ERR_FORMAT;
        if (get_int(j, "head_dim", c->d_model / c->n_head, 1, BIG, path, &c->head_dim)) return SF_ERR_FORMAT;
        float theta = 10000.0f;
        const cJSON *rp = cJSON_GetObjectItemCaseSensitive(j, "rope_parameters");
        if (cJSON_IsObject(rp)) {
            if (get_float(rp, "rope_theta", 10000.0, path, &theta)) return SF_ERR_FORMAT;
            const char *rt = get_str(rp, "rope_type");
            if (rt && strcmp(rt, "default"))
                return sf_fail(SF_ERR_FORMAT, "%s: rope_type \"%s\" is not supported (only \"default\")", path, rt);
        } else if (get_float(j, "rope_theta", 10000.0, path, &theta)) {
            return SF_ERR_FORMAT;
        }
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
        if (cJSON_IsObject(rs)) return sf_fail(SF_ERR_FORMAT, "%s: rope_scaling is not supported", path);
        c->rope_theta = theta;
        c->rope_kind = SF_ROPE_HALF;
        c->tied_head = get_bool(j, "tie_word_embeddings", 0);
        c->attn_bias = get_bool(j, "attention_bias", !strcmp(mt, "qwen2"));
        c->mlp_bias = get_bool(j, "mlp_bias", 0);
        const char *act = get_str(j, "hidden_act");
        if (act && strcmp(act, "silu"))
            return sf_fail(SF_ERR_FORMAT, "%s: hidden_act \"%s\" is not supported for llama (silu)", path, act);
    } else if (!strcmp(mt, "bert") || !strcmp(mt, "roberta")) {
        c->arch = !strcmp(mt, "bert") ? SF_ARCH_BERT : SF_ARCH_ROBERTA;
        if (get_int(j, "vocab_size", -2, 1, BIG * 4, path, &c->vocab_size) ||
            get_int(j, "hidden_size", -2, 1, BIG, path, &c->d_model) ||
            get_int(j, "num_hidden_layers", -2, 1, 4096, path, &c->n_layer) ||
            get_int(j, "num_attention_heads", -2, 1, 4096, path, &c->n_head) ||
            get_int(j, "intermediate_size", -2, 1, BIG, path, &c->d_ff) ||
            get_int(j, "max_position_embeddings", 512, 1, BIG, path, &c->max_pos) ||
            get_int(j, "type_vocab_size", 2, 0, 1024, path, &c->type_vocab) ||
            get_float(j, "layer_norm_eps", 1e-12, path, &c->norm_eps) ||
            gelu_from_name(get_str(j, "hidden_act"), path, &c->gelu))
            return SF_ERR_FORMAT;
        c->n_kv_head = c->n_head;
        c->attn_bias = c->mlp_bias = 1;
        if (c->arch == SF_ARCH_ROBERTA) {
            if (c->pad_token_id < 0) c->pad_token_id = 1;
            c->position_offset = c->pad_token_id + 1; /* positions count from pad_token_id + 1 */
            if (c->position_offset >= c->max_pos)
                return sf_fail(SF_ERR_FORMAT,
                               "%s: pad_token_id %lld leaves no position: RoBERTa's positions start at pad_token_id + 1 "
                               "but max_position_embeddings is %lld",
                               path, (long long)c->pad_token_id, (long long)c->max_pos);
        }
    } else {
        return sf_fail(SF_ERR_FORMAT, "%s: model_type \"%s\" is not supported (gpt2, llama, bert, roberta)", path, mt);
    }
    if (!c->head_dim) {
        if (c->d_model % c->n_head)
            return sf_fail(SF_ERR_FORMAT, "%s: hidden size %lld is not divisible by %lld heads", path,
                           (long long)c->d_model, (long long)c->n_head);
        c->head_dim = c->d_model / c->n_head;
    }
    if (c->n_head % c->n_kv_head)
        return sf_fail(SF_ERR_FORMAT, "%s: %lld attention heads are not a multiple of %lld key/value heads", path,
                       (long long)c->n_head, (long long)c->n_kv_head);
    if (c->arch == SF_ARCH_LLAMA && c->head_dim % 2)
        return sf_fail(SF_ERR_FORMAT, "%s: head_dim %lld must be even for RoPE", path, (long long)c->head_dim);
    return SF_OK;
}

sf_status sf_config_from_hf_json(const char *path, sf_model_config *cfg) {
    size_t len = 0;
    char *text = read_text_file(path, 16u << 20, &len);
    if (!text) return sf_last_status();
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return sf_fail(SF_ERR_FORMAT, "%s: not a JSON object (bad JSON)", path);
    }
    sf_status st = parse(j, path, cfg);
    cJSON_Delete(j);
    return st;
}
