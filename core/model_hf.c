/* model_hf.c — loads a Hugging Face checkpoint folder: config.json, then model.safetensors or the
 * shards listed by model.safetensors.index.json; F32/F16/BF16 weights are converted to f32. Maps
 * checkpoint names onto the model's parameter table (accepting GPT-2 keys without the "transformer."
 * prefix, Llama keys without "model.", encoder keys without "roberta."/"bert."), ignores known buffers
 * (attn.bias, attn.masked_bias, rotary inv_freq, position_ids, a tied lm_head), reports unknown tensors
 * by name, and fails on missing ones unless they belong to a newly created task head.
 * Also dispatches sf_model_load between this and the llama2.c loader. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model.h"
#include "safetensors.h"

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}
static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}
static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }
static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Buffers that checkpoints may carry but that are not parameters. */
static int ignorable(const sf_model *m, const char *name) {
    if (ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias") || ends_with(name, "rotary_emb.inv_freq") ||
        ends_with(name, "embeddings.position_ids"))
        return 1;
    if (!strcmp(name, "lm_head.weight") && m->cfg.tied_head) return 1;
    return 0;
}

/* Finds the parameter for a checkpoint name, trying the architecture's prefix. */
static int find_param(const sf_model *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, name)) return i;
    const char *prefix = m->cfg.arch == SF_ARCH_GPT2    ? "transformer."
                         : m->cfg.arch == SF_ARCH_LLAMA ? "model."
                         : m->cfg.arch == SF_ARCH_BERT  ? "bert."
                                                        : "roberta.";
    if (!starts_with(name, prefix)) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s%s", prefix, name);
        for (int i = 0; i < m->n_params; i++)
            if (!strcmp(m->params[i].name, buf)) return i;
    }
    return -1;
}

static sf_status add_unused(sf_model *m, const char *name) {
    char **u = realloc(m->unused, (size_t)(m->n_unused + 1) * sizeof *u);
    if (!u) return sf_fail(SF_ERR_NOMEM, "out of memory");
    m->unused = u;
    if (!(m->unused[m->n_unused] = strdup(name))) return sf_fail(SF_ERR_NOMEM, "out of memory");
    m->n_unused++;
    return SF_OK;
}

static sf_status load_file(sf_model *m, const char *path, char *loaded) {
    sf_st_file *f = sf_st_open(path);
    if (!f) return sf_last_status();
    sf_status st = SF_OK;
    for (int i = 0; i < sf_st_count(f) && st == SF_OK; i++) {
        const sf_st_entry *e = sf_st_entry_at(f, i);
        int k = find_param(m, e->name);
        if (k < 0) {
            if (!ignorable(m, e->name)) st = add_unused(m, e->name);
            continue;
        }
        sf_tensor *p = m->params[k].t;
        int same = e->ndim == p->ndim;
        for (int d = 0; same && d < e->ndim; d++) same = e->shape[d] == p->shape[d];
        if (!same) {
            char want[96];
            char got[96] = "(";
            for (int d = 0; d < e->ndim; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), d ? ", %lld" : "%lld", (long long)e->shape[d]);
            strncat(got, ")", sizeof got - strlen(got) - 1);
            st = sf_fail(SF_ERR_FORMAT, "%s: tensor '%s' has shape %s, the config expects %s", path, e->name, got,
                         sf_shape_str(p, want, sizeof want));
            break;
        }
        if (e->dtype != SF_F32 && e->dtype != SF_F16 && e->dtype != SF_BF16 && e->dtype != SF_F64) {
            st = sf_fail(SF_ERR_FORMAT, "%s: tensor '%s' has dtype %s; weights must be F32, F16, BF16 or F64", path,
                         e->name, e->dtype_name);
            break;
        }
        sf_tensor *v = sf_st_view(f, e->name);
        if (!v) {
            st = sf_last_status();
            break;
        }
        st = sf_tensor_copy_(p, v);
        sf_tensor_release(v);
        if (loaded[k]) {
            st = sf_fail(SF_ERR_FORMAT, "%s: tensor '%s' appears twice in the checkpoint", path, e->name);
            break;
        }
        loaded[k] = 1;
    }
    sf_st_close(f);
    return st;
}

/* Shard file names from model.safetensors.index.json, deduplicated, in first-seen order. */
static sf_status read_index(const char *dir, const char *index_path, char ***files, int *n_files) {
    FILE *fp = fopen(index_path, "rb");
    if (!fp) return sf_fail(SF_ERR_IO, "%s: cannot open", index_path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    if (n < 0 || n > (64L << 20)) {
        fclose(fp);
        return sf_fail(SF_ERR_FORMAT, "%s: unreasonable size", index_path);
    }
    char *text = malloc((size_t)n + 1);
    size_t got = text ? fread(text, 1, (size_t)n, fp) : 0;
    fclose(fp);
    if (!text || got != (size_t)n) {
        free(text);
        return sf_fail(SF_ERR_IO, "%s: read failed", index_path);
    }
    cJSON *j = cJSON_ParseWithLength(text, (size_t)n);
    free(text);
    const cJSON *wm = j ? cJSON_GetObjectItemCaseSensitive(j, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(j);
        return sf_fail(SF_ERR_FORMAT, "%s: bad JSON or no \"weight_map\" object", index_path);
    }
    *files = NULL;
    *n_files = 0;
    const cJSON *it;
    sf_status st = SF_OK;
    cJSON_ArrayForEach(it, wm) {
        if (!cJSON_IsString(it) || strchr(it->valuestring, '/') || !strcmp(it->valuestring, "..")) {
            st = sf_fail(SF_ERR_FORMAT, "%s: weight_map entry '%s' is not a plain file name", index_path,
                         it->string ? it->string : "?");
            break;
        }
        int seen = 0;
        for (int i = 0; i < *n_files && !seen; i++) {
            const char *b = strrchr((*files)[i], '/');
            seen = !strcmp(b + 1, it->valuestring);
        }
        if (seen) continue;
        char **nf = realloc(*files, (size_t)(*n_files + 1) * sizeof *nf);
        size_t len = strlen(dir) + strlen(it->valuestring) + 2;
        char *path = malloc(len);
        if (!nf || !path) {
            free(path);
            if (nf) *files = nf;
            st = sf_fail(SF_ERR_NOMEM, "out of memory");
            break;
        }
        *files = nf;
        snprintf(path, len, "%s/%s", dir, it->valuestring);
        (*files)[(*n_files)++] = path;
    }
    cJSON_Delete(j);
    return st;
}

sf_model *sf_model_load_hf(const char *dir, const sf_load_options *opts) {
    sf_load_options o = {.task = SF_TASK_LM, .num_labels = 0, .seed = 0};
    if (opts) o = *opts;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    sf_model_config cfg;
    if (sf_config_from_hf_json(path, &cfg)) return NULL;
    int64_t labels = o.num_labels > 0 ? o.num_labels : cfg.num_labels;
    sf_model *m = sf_model_build(&cfg, o.task, labels);
    if (!m) return NULL;
    m->source = strdup(dir);

    char **files = NULL;
    int n_files = 0;
    sf_status st = SF_OK;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (is_file(path)) {
        files = malloc(sizeof *files);
        if (files && (files[0] = strdup(path))) n_files = 1;
        else st = sf_fail(SF_ERR_NOMEM, "out of memory");
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        if (is_file(path))
            st = read_index(dir, path, &files, &n_files);
        else
            st = sf_fail(SF_ERR_IO, "%s: no model.safetensors nor model.safetensors.index.json", dir);
    }
    char *loaded = calloc((size_t)m->n_params + 1, 1);
    if (!loaded && st == SF_OK) st = sf_fail(SF_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n_files && st == SF_OK; i++) st = load_file(m, files[i], loaded);
    for (int i = 0; i < n_files; i++) free(files[i]);
    free(files);
    if (st == SF_OK) {
        /* missing tensors: an error unless they belong to a head created for the task */
        char msg[1024] = "";
        int missing = 0;
        for (int i = 0; i < m->n_params; i++) {
            if (loaded[i]) continue;
            if (m->params[i].is_head) {
                m->params[i].is_new = 1;
                continue;
            }
            if (missing++ < 6) {
                strncat(msg, missing > 1 ? ", " : "", sizeof msg - strlen(msg) - 1);
                strncat(msg, m->params[i].name, sizeof msg - strlen(msg) - 1);
            }
        }
        if (missing)
            st = sf_fail(SF_ERR_FORMAT, "%s: %d tensor%s missing from the checkpoint: %s%s", dir, missing,
                         missing > 1 ? "s" : "", msg, missing > 6 ? ", ..." : "");
        else
            sf_model_init_new_heads(m, o.seed);
    }
    free(loaded);
    if (st != SF_OK) {
        sf_model_free(m);
        return NULL;
    }
    return m;
}

sf_model *sf_model_load(const char *path, const sf_load_options *opts) {
    if (!path || !*path) return sf_fail_null(SF_ERR_ARG, "load: empty path");
    if (is_dir(path)) return sf_model_load_hf(path, opts);
    if (is_file(path)) {
        if (ends_with(path, ".bin")) return sf_model_load_llama2c(path, opts);
        if (ends_with(path, "config.json")) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s", path);
            char *s = strrchr(dir, '/');
            if (s) *s = 0;
            else snprintf(dir, sizeof dir, ".");
            return sf_model_load_hf(dir, opts);
        }
        return sf_fail_null(SF_ERR_FORMAT, "%s: not a Hugging Face folder nor a llama2.c .bin file", path);
    }
    return sf_fail_null(SF_ERR_IO, "%s: no such file or folder", path);
}
