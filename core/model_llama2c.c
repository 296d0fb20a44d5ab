/* model_llama2c.c — loads llama2.c checkpoints (.bin) into the Llama architecture with Hugging Face
 * parameter names (w1 -> gate_proj, w3 -> up_proj, w2 -> down_proj) and llama2.c conventions
 * (interleaved RoPE pairs, theta 10000, RMSNorm eps 1e-5).
 * Layouts: legacy v0 = 7 int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size
 * (negative = separate classifier), seq_len), then tok_emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3,
 * rms_final, freq_cis_real, freq_cis_imag [, wcls]; v1 = "ak42" magic, int32 version 1, the 7 int32
 * params, u8 shared_classifier, zero padding to 256 bytes, then the norms (attention, ffn, final),
 * tok_emb, wq, wk, wv, wo, w1, w2, w3 stacked over layers [, output]. The file size must match the
 * header exactly; every mismatch is an error naming the file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model.h"

typedef struct {
    FILE *f;
    const char *path;
} reader;

/* Reads rows of `count` floats into the layer tensors selected by `pick` for each layer. */
static sf_status read_floats(reader *r, float *dst, int64_t count, const char *what) {
    if (fread(dst, sizeof(float), (size_t)count, r->f) != (size_t)count)
        return sf_fail(SF_ERR_FORMAT, "%s: file ends inside %s", r->path, what);
    return SF_OK;
}

#define PER_LAYER(field, what)                                                                          \
    for (int64_t l = 0; l < c.n_layer && st == SF_OK; l++)                                             \
        st = read_floats(&r, sf_f32(m->layers[l].field), sf_tensor_numel(m->layers[l].field), what);

sf_model *sf_model_load_llama2c(const char *path, const sf_load_options *opts) {
    sf_load_options o = {.task = SF_TASK_LM};
    if (opts) o = *opts;
    FILE *f = fopen(path, "rb");
    if (!f) return sf_fail_null(SF_ERR_IO, "%s: cannot open", path);
    struct stat stt;
    if (fstat(fileno(f), &stt) != 0) {
        fclose(f);
        return sf_fail_null(SF_ERR_IO, "%s: cannot stat", path);
    }
    uint64_t fsize = (uint64_t)stt.st_size;
    int32_t first[2];
    int version = 0;
    int32_t hdr[7];
    int shared = 1;
    uint64_t header_bytes;
    if (fread(first, 4, 2, f) != 2) {
        fclose(f);
        return sf_fail_null(SF_ERR_FORMAT, "%s: too short for a llama2.c header", path);
    }
    if ((uint32_t)first[0] == 0x616b3432u) {
        version = first[1];
        if (version != 1) {
            fclose(f);
            return sf_fail_null(SF_ERR_FORMAT, "%s: llama2.c format version %d is not supported (0 or 1)", path, version);
        }
        uint8_t flag;
        if (fread(hdr, 4, 7, f) != 7 || fread(&flag, 1, 1, f) != 1) {
            fclose(f);
            return sf_fail_null(SF_ERR_FORMAT, "%s: truncated v1 header", path);
        }
        shared = flag != 0;
        header_bytes = 256;
    } else {
        hdr[0] = first[0];
        hdr[1] = first[1];
        if (fread(hdr + 2, 4, 5, f) != 5) {
            fclose(f);
            return sf_fail_null(SF_ERR_FORMAT, "%s: truncated header", path);
        }
        shared = hdr[5] > 0;
        if (hdr[5] < 0 && hdr[5] != INT32_MIN) hdr[5] = -hdr[5]; /* INT32_MIN stays negative: refused below */
        header_bytes = 28;
    }
    for (int i = 0; i < 7; i++)
        if (hdr[i] <= 0 || hdr[i] > (1 << 24)) {
            fclose(f);
            return sf_fail_null(SF_ERR_FORMAT, "%s: header field %d = %d is not a sane positive size", path, i, hdr[i]);
        }
    sf_model_config c = {0};
    c.arch = SF_ARCH_LLAMA;
    snprintf(c.model_type, sizeof c.model_type, "llama");
    c.d_model = hdr[0];
    c.d_ff = hdr[1];
    c.n_layer = hdr[2];
    c.n_head = hdr[3];
    c.n_kv_head = hdr[4];
    c.vocab_size = hdr[5];
    c.max_pos = hdr[6];
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.rope_kind = SF_ROPE_INTERLEAVED;
    c.tied_head = shared;
    c.pad_token_id = -1;
    c.bos_token_id = 1;
    c.eos_token_id = 2;
    c.num_labels = 2;
    if (c.d_model % c.n_head || c.n_head % c.n_kv_head || (c.d_model / c.n_head) % 2) {
        fclose(f);
        return sf_fail_null(SF_ERR_FORMAT, "%s: dim %lld, %lld heads, %lld kv heads are inconsistent", path,
                            (long long)c.d_model, (long long)c.n_head, (long long)c.n_kv_head);
    }
    c.head_dim = c.d_model / c.n_head;
    /* expected size */
    uint64_t C = (uint64_t)c.d_model, H = (uint64_t)c.d_ff, L = (uint64_t)c.n_layer, V = (uint64_t)c.vocab_size;
    uint64_t KV = (uint64_t)(c.n_kv_head * c.head_dim);
    uint64_t floats = V * C + L * (2 * C + C * C * 2 + 2 * KV * C + 3 * H * C) + C;
    if (version == 0) floats += (uint64_t)c.max_pos * (uint64_t)c.head_dim; /* freq_cis real + imag */
    if (!shared) floats += V * C;
    uint64_t expect = header_bytes + 4 * floats;
    if (fsize != expect) {
        fclose(f);
        return sf_fail_null(SF_ERR_FORMAT, "%s: file has %llu bytes, the header implies %llu (%s classifier)", path,
                            (unsigned long long)fsize, (unsigned long long)expect, shared ? "shared" : "separate");
    }
    int64_t labels = o.num_labels > 0 ? o.num_labels : 2;
    if (!shared && o.task == SF_TASK_LM) c.tied_head = 0;
    sf_model *m = sf_model_build(&c, o.task, labels);
    if (!m) {
        fclose(f);
        return NULL;
    }
    m->source = strdup(path);
    reader r = {f, path};
    sf_status st = SF_OK;
    if (fseek(f, (long)header_bytes, SEEK_SET)) st = sf_fail(SF_ERR_IO, "%s: seek failed", path);
    if (version == 0) {
        if (st == SF_OK) st = read_floats(&r, sf_f32(m->wte), sf_tensor_numel(m->wte), "tok_embeddings");
        PER_LAYER(ln1_w, "rms_att_weight");
        PER_LAYER(wq, "wq");
        PER_LAYER(wk, "wk");
        PER_LAYER(wv, "wv");
        PER_LAYER(wo, "wo");
        PER_LAYER(ln2_w, "rms_ffn_weight");
        PER_LAYER(w_gate, "w1");
        PER_LAYER(w_down, "w2");
        PER_LAYER(w_up, "w3");
        if (st == SF_OK) st = read_floats(&r, sf_f32(m->lnf_w), C, "rms_final_weight");
        if (st == SF_OK && fseek(f, (long)(4 * (uint64_t)c.max_pos * (uint64_t)c.head_dim), SEEK_CUR))
            st = sf_fail(SF_ERR_IO, "%s: seek failed", path);
    } else {
        PER_LAYER(ln1_w, "attention_norm");
        PER_LAYER(ln2_w, "ffn_norm");
        if (st == SF_OK) st = read_floats(&r, sf_f32(m->lnf_w), C, "norm");
        if (st == SF_OK) st = read_floats(&r, sf_f32(m->wte), sf_tensor_numel(m->wte), "tok_embeddings");
        PER_LAYER(wq, "wq");
        PER_LAYER(wk, "wk");
        PER_LAYER(wv, "wv");
        PER_LAYER(wo, "wo");
        PER_LAYER(w_gate, "w1");
        PER_LAYER(w_down, "w2");
        PER_LAYER(w_up, "w3");
    }
    if (st == SF_OK && !shared) {
        if (m->lm_head) {
            st = read_floats(&r, sf_f32(m->lm_head), sf_tensor_numel(m->lm_head), "wcls");
        }
    }
    fclose(f);
    if (st != SF_OK) {
        sf_model_free(m);
        return NULL;
    }
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].is_head) m->params[i].is_new = 1;
    sf_model_init_new_heads(m, o.seed);
    return m;
}
