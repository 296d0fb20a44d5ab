/* model_forward.c — the forward pass of every architecture on the tape (so backward is the tape's
 * reverse pass), the task heads and the losses. One function per block kind; the shapes of every
 * intermediate are noted. Every residual add that a LayerNorm reads goes through sf_add_layernorm (for
 * GPT-2 the add closing one block is fused with the next block's ln_1, or with ln_f after the last):
 * 1.3-1.5x faster than sf_add + sf_layernorm at gpt2-4m and GPT-2 124M shapes. The GELU MLPs run the
 * up projection as sf_linear (with bias; sf_bias_gelu measured no faster) and the down projection as
 * sf_gelu_linear, which recomputes gelu(u) in backward instead of keeping it.
 * Packing: a right-padded batch (attention_mask of 1s then 0s in every row) whose outputs are per row (a
 * classification head, or the LM loss alone with the pads' next-token targets ignored) runs on its real
 * tokens only: they are laid one after another as a (1, N, C) sequence and attention keeps to each row
 * (sf_attention_packed), so no product, norm or attention spends work on pad rows. The loss, the
 * logits and every gradient are the padded batch's (up to the order of float sums). Batches that keep
 * per-position outputs, masks with holes or left padding, and m->keep_padding run padded.
 * Does not implement kernels (ops_*.c) nor generation (generate.c). */
#include <math.h>
#include <string.h>

#include "lora.h"
#include "model.h"

#define TRY(x)                                   \
    do {                                         \
        if (!(x)) return sf_last_status() ? sf_last_status() : SF_ERR_STATE; \
    } while (0)

/* i64 (B, T) tensor on the graph */
static sf_tensor *ids_tensor(sf_graph *g, int64_t B, int64_t T) {
    int64_t shape[2] = {B, T};
    return sf_graph_tensor_dtype(g, SF_I64, 2, shape);
}

/* Which rows attention sees: a padded batch's key mask (or none), or packed sequences' layout and each
 * token's position in its row (RoPE; NULL when padded: positions 0..T-1). */
typedef struct {
    sf_tensor *mask, *seqs, *pos;
} att_in;

static sf_tensor *attend_qkv(sf_graph *g, const sf_model_config *c, sf_tensor *qkv, const att_in *a) {
    return a->seqs ? sf_attention_qkv_packed(g, qkv, a->seqs, c->n_head, c->n_kv_head, c->head_dim, 1)
                   : sf_attention_qkv(g, qkv, a->mask, c->n_head, c->n_kv_head, c->head_dim, 1);
}

static sf_tensor *attend(sf_graph *g, const sf_model_config *c, sf_tensor *q, sf_tensor *k, sf_tensor *v,
                         const att_in *a, int causal) {
    return a->seqs ? sf_attention_packed(g, q, k, v, a->seqs, c->n_head, c->n_kv_head, causal)
                   : sf_attention(g, q, k, v, a->mask, c->n_head, c->n_kv_head, causal);
}

/* Block linears go through the LoRA hook (a plain linear when the weight has no adapter). */
#define LIN(g, x, w, b, lay) sf_lora_linear(g, m->lora, x, w, b, lay)

/* The MLP's down projection of gelu(u): fused so that gelu(u), (B, T, F), is recomputed in backward
 * instead of kept (sf_gelu_linear); unfused when a LoRA adapter sits on the weight. */
static sf_tensor *gelu_down(sf_graph *g, const sf_model *m, sf_tensor *u, sf_tensor *w, sf_tensor *b, sf_wlayout lay) {
    const sf_lora_adapter *ad = m->lora ? sf_lora_find(m->lora, w) : NULL;
    if (!ad) return sf_gelu_linear(g, u, m->cfg.gelu, w, b, lay);
    sf_tensor *a = sf_gelu(g, u, m->cfg.gelu);
    return a ? LIN(g, a, w, b, lay) : NULL;
}

/* x + d then LayerNorm, fused; d is a block's output projection, which no backward reads (the linear
 * that made it reads its input, the fused op reads the sum), so its memory goes back to the pool now. */
static sf_tensor *residual_norm(sf_graph *g, sf_tensor *x, sf_tensor *d, sf_tensor *w, sf_tensor *b, float eps,
                                sf_tensor **sum_out) {
    sf_tensor *h = sf_add_layernorm(g, x, d, w, b, eps, sum_out);
    if (h) sf_graph_drop_value(g, d);
    return h;
}

/* The LayerNorm GPT-2 applies to the residual stream before block l: ln_1 of block l, ln_f after the last. */
static void gpt2_norm_before(const sf_model *m, int64_t l, sf_tensor **w, sf_tensor **b) {
    *w = l < m->cfg.n_layer ? m->layers[l].ln1_w : m->lnf_w;
    *b = l < m->cfg.n_layer ? m->layers[l].ln1_b : m->lnf_b;
}

/* Block l on the residual stream x with *h = ln_1(x) computed by the caller; returns the new residual
 * stream and sets *h to the norm of it that comes next (block l+1's ln_1, or ln_f). */
static sf_tensor *gpt2_block(sf_graph *g, const sf_model *m, int64_t l, sf_tensor *x, sf_tensor **h,
                             const att_in *att) {
    const sf_model_config *c = &m->cfg;
    const sf_layer *L = &m->layers[l];
    sf_tensor *qkv = LIN(g, *h, L->wqkv, L->bqkv, SF_W_IN_OUT);               // (B, T, 3C)
    if (!qkv) return NULL;
    sf_tensor *a = attend_qkv(g, c, qkv, att);                                 // (B, T, C)
    sf_tensor *o = a ? LIN(g, a, L->wo, L->bo, SF_W_IN_OUT) : NULL;            // (B, T, C)
    sf_tensor *h2 = o ? residual_norm(g, x, o, L->ln2_w, L->ln2_b, c->norm_eps, &x) : NULL; // x += o, (B, T, C)
    sf_tensor *u = h2 ? LIN(g, h2, L->w_up, L->b_up, SF_W_IN_OUT) : NULL;       // (B, T, F)
    sf_tensor *d = u ? gelu_down(g, m, u, L->w_down, L->b_down, SF_W_IN_OUT) : NULL; // (B, T, C)
    if (!d) return NULL;
    sf_tensor *nw, *nb;
    gpt2_norm_before(m, l + 1, &nw, &nb);
    *h = residual_norm(g, x, d, nw, nb, c->norm_eps, &x);                      // x += d, (B, T, C)
    return *h ? x : NULL;
}

static sf_tensor *llama_block(sf_graph *g, const sf_model *m, const sf_layer *L, sf_tensor *x, const att_in *att) {
    const sf_model_config *c = &m->cfg;
    sf_tensor *h = sf_rmsnorm(g, x, L->ln1_w, c->norm_eps);                          // (B, T, C)
    if (!h) return NULL;
    sf_tensor *q = LIN(g, h, L->wq, L->bq, SF_W_OUT_IN);                       // (B, T, NH*HD)
    sf_tensor *k = LIN(g, h, L->wk, L->bk, SF_W_OUT_IN);                       // (B, T, NKV*HD)
    sf_tensor *v = LIN(g, h, L->wv, L->bv, SF_W_OUT_IN);                       // (B, T, NKV*HD)
    if (!q || !k || !v) return NULL;
    q = sf_rope(g, q, att->pos, c->n_head, c->head_dim, c->rope_theta, c->rope_kind);
    k = q ? sf_rope(g, k, att->pos, c->n_kv_head, c->head_dim, c->rope_theta, c->rope_kind) : NULL;
    sf_tensor *a = k ? attend(g, c, q, k, v, att, 1) : NULL;                   // (B, T, NH*HD)
    sf_tensor *o = a ? LIN(g, a, L->wo, L->bo, SF_W_OUT_IN) : NULL;            // (B, T, C)
    x = o ? sf_add(g, x, o) : NULL;
    h = x ? sf_rmsnorm(g, x, L->ln2_w, c->norm_eps) : NULL;
    if (!h) return NULL;
    sf_tensor *gate = LIN(g, h, L->w_gate, NULL, SF_W_OUT_IN);                 // (B, T, F)
    sf_tensor *up = gate ? LIN(g, h, L->w_up, NULL, SF_W_OUT_IN) : NULL;       // (B, T, F)
    sf_tensor *s = up ? sf_swiglu(g, gate, up) : NULL;
    sf_tensor *d = s ? LIN(g, s, L->w_down, NULL, SF_W_OUT_IN) : NULL;         // (B, T, C)
    return d ? sf_add(g, x, d) : NULL;
}

static sf_tensor *encoder_block(sf_graph *g, const sf_model *m, const sf_layer *L, sf_tensor *x, const att_in *att) {
    const sf_model_config *c = &m->cfg;
    sf_tensor *q = LIN(g, x, L->wq, L->bq, SF_W_OUT_IN);                       // (B, T, C)
    sf_tensor *k = q ? LIN(g, x, L->wk, L->bk, SF_W_OUT_IN) : NULL;
    sf_tensor *v = k ? LIN(g, x, L->wv, L->bv, SF_W_OUT_IN) : NULL;
    sf_tensor *a = v ? attend(g, c, q, k, v, att, 0) : NULL;
    sf_tensor *o = a ? LIN(g, a, L->wo, L->bo, SF_W_OUT_IN) : NULL;
    x = o ? residual_norm(g, x, o, L->ln1_w, L->ln1_b, c->norm_eps, NULL) : NULL; // post-LN of x + o
    sf_tensor *u = x ? LIN(g, x, L->w_up, L->b_up, SF_W_OUT_IN) : NULL;        // (B, T, F)
    sf_tensor *d = u ? gelu_down(g, m, u, L->w_down, L->b_down, SF_W_OUT_IN) : NULL; // (B, T, C)
    return d ? residual_norm(g, x, d, L->ln2_w, L->ln2_b, c->norm_eps, NULL) : NULL;
}

/* Position ids (B, T) of a padded batch's tokens: t, or RoBERTa's count of non-pad ids from pad + 1
 * (create_position_ids_from_input_ids). */
static sf_tensor *positions(sf_graph *g, const sf_model *m, sf_tensor *ids) {
    const sf_model_config *c = &m->cfg;
    int64_t B = ids->shape[0], T = ids->shape[1];
    sf_tensor *pos = ids_tensor(g, B, T);
    if (!pos) return NULL;
    int64_t *p = sf_tensor_data(pos);
    const int64_t *id = sf_tensor_data(ids);
    for (int64_t b = 0; b < B; b++) {
        int64_t run = 0;
        for (int64_t t = 0; t < T; t++) {
            if (c->arch == SF_ARCH_ROBERTA) {
                int real = id[b * T + t] != c->pad_token_id;
                run += real;
                p[b * T + t] = real ? run + c->pad_token_id : c->pad_token_id;
            } else {
                p[b * T + t] = t;
            }
        }
    }
    return pos;
}

/* Token + position (+ type) embeddings of ids (B, T) at positions pos (B, T; unused by Llama) -> (B, T, C).
 * The last add is fused with the norm that reads the sum: encoders return LN_emb(sum); GPT-2 returns the
 * sum and sets *h to block 0's ln_1 of it. */
static sf_tensor *embed(sf_graph *g, const sf_model *m, sf_tensor *ids, sf_tensor *pos, sf_tensor **h) {
    const sf_model_config *c = &m->cfg;
    int64_t B = ids->shape[0], T = ids->shape[1];
    sf_tensor *x = sf_embedding(g, ids, m->wte);
    if (!x || c->arch == SF_ARCH_LLAMA) return x;
    sf_tensor *pe = sf_embedding(g, pos, m->wpe); // (B, T, C)
    if (!pe) return NULL;
    if (c->arch == SF_ARCH_GPT2) {
        sf_tensor *w, *b, *sum;
        gpt2_norm_before(m, 0, &w, &b);
        *h = sf_add_layernorm(g, x, pe, w, b, c->norm_eps, &sum);
        return *h ? sum : NULL;
    }
    sf_tensor *last = pe; /* the addend summed inside the norm */
    if (m->wtt) {         /* (x + pe) + te */
        sf_tensor *tt = ids_tensor(g, B, T);
        if (!tt) return NULL;
        memset(sf_tensor_data(tt), 0, (size_t)(B * T) * sizeof(int64_t));
        x = sf_add(g, x, pe);
        last = x ? sf_embedding(g, tt, m->wtt) : NULL; // (B, T, C)
        if (!last) return NULL;
    }
    return sf_add_layernorm(g, x, last, m->ln_emb_w, m->ln_emb_b, c->norm_eps, NULL);
}

/* A right-padded batch's real tokens, packed: row b's first len[b] tokens start at row off[b] of N. */
typedef struct {
    int64_t N;
    int64_t *len, *off;   /* (B) each, on the graph */
    sf_tensor *seqs;      /* (S = B, 3) attention layout */
} packing;

/* The length of row b of a right-padded mask (B, T): its 1s, which must all come first; -1 when the row
 * has a hole, starts with padding or is all padding. */
static int64_t prefix_length(sf_tensor *mask, int64_t b, int64_t T) {
    int64_t len = 0;
    while (len < T && sf_index_at(mask, b * T + len) != 0) len++;
    for (int64_t t = len; t < T; t++)
        if (sf_index_at(mask, b * T + t) != 0) return -1;
    return len > 0 ? len : -1;
}

/* Whether this forward may run packed (see the header), and its packing when it does: 1 packed, 0 padded,
 * -1 out of memory. */
static int plan_packing(sf_graph *g, const sf_model *m, sf_tensor *ids, sf_tensor *mask, sf_tensor *labels,
                        packing *pk) {
    if (!mask || m->keep_padding) return 0;
    const int64_t B = ids->shape[0], T = ids->shape[1];
    if (m->task == SF_TASK_LM && !(labels && m->loss_only)) return 0; /* the logits of every position are kept */
    int64_t shape[1] = {2 * B};
    sf_tensor *lo = sf_graph_tensor_dtype(g, SF_I64, 1, shape);
    if (!lo) return -1;
    pk->len = sf_tensor_data(lo);
    pk->off = pk->len + B;
    pk->N = 0;
    for (int64_t b = 0; b < B; b++) {
        const int64_t len = prefix_length(mask, b, T);
        if (len < 0) return 0;
        if (m->task == SF_TASK_LM) /* a pad position whose next-token target counts keeps the batch padded */
            for (int64_t t = len + 1; t < T; t++)
                if (sf_index_at(labels, b * T + t) != -100) return 0;
        pk->len[b] = len;
        pk->off[b] = pk->N;
        pk->N += len;
    }
    if (pk->N == B * T) return 0; /* no padding: nothing to gain */
    pk->seqs = sf_attention_layout(g, pk->len, B, m->cfg.n_head);
    return pk->seqs ? 1 : -1;
}

/* The packed rows of x (B, T) i64 -> (1, N). */
static sf_tensor *pack_ids(sf_graph *g, sf_tensor *x, const packing *pk) {
    const int64_t B = x->shape[0], T = x->shape[1];
    sf_tensor *p = ids_tensor(g, 1, pk->N);
    if (!p) return NULL;
    int64_t *d = sf_tensor_data(p);
    const int64_t *s = sf_tensor_data(x);
    for (int64_t b = 0; b < B; b++) memcpy(d + pk->off[b], s + b * T, (size_t)pk->len[b] * sizeof(int64_t));
    return p;
}

/* The classification features: decoders take the last real token, encoders the first. -> (B, C) */
static sf_tensor *pool(sf_graph *g, const sf_model *m, sf_tensor *x, sf_tensor *ids, sf_tensor *mask,
                       const packing *pk) {
    int64_t B = ids->shape[0], T = ids->shape[1];
    const int decoder = m->cfg.arch == SF_ARCH_GPT2 || m->cfg.arch == SF_ARCH_LLAMA;
    int64_t shape[1] = {B};
    sf_tensor *idx = sf_graph_tensor_dtype(g, SF_I64, 1, shape);
    if (!idx) return NULL;
    int64_t *ix = sf_tensor_data(idx);
    for (int64_t b = 0; b < B; b++) {
        if (pk) { /* x holds the packed rows: row b's first token, or its last */
            ix[b] = pk->off[b] + (decoder ? pk->len[b] - 1 : 0);
            continue;
        }
        int64_t t_sel = 0;
        if (decoder) {
            /* the last real token: from the mask, else (as HF) the last token that is not the pad id */
            t_sel = T - 1;
            if (mask || m->cfg.pad_token_id >= 0) {
                const int64_t *id = sf_tensor_data(ids);
                t_sel = 0;
                for (int64_t t = 0; t < T; t++)
                    if (mask ? sf_index_at(mask, b * T + t) != 0 : id[b * T + t] != m->cfg.pad_token_id) t_sel = t;
            }
        }
        ix[b] = b * T + t_sel;
    }
    return sf_gather_rows(g, x, idx);
}

static sf_status check_batch(const sf_model *m, sf_tensor *ids, sf_tensor *mask, sf_tensor *labels) {
    if (!ids || ids->dtype != SF_I64 || ids->ndim != 2)
        return sf_fail(SF_ERR_ARG, "forward: input_ids must be an i64 (B, T) tensor");
    int64_t B = ids->shape[0], T = ids->shape[1];
    if (B < 1 || T < 1) return sf_fail(SF_ERR_ARG, "forward: empty batch (%lld x %lld)", (long long)B, (long long)T);
    int64_t limit = m->cfg.arch == SF_ARCH_ROBERTA ? m->cfg.max_pos - m->cfg.position_offset : m->cfg.max_pos;
    if (m->cfg.arch != SF_ARCH_LLAMA && T > limit)
        return sf_fail(SF_ERR_ARG, "forward: sequence length %lld exceeds the model's %lld positions", (long long)T,
                       (long long)limit);
    if (mask && (mask->ndim != 2 || mask->shape[0] != B || mask->shape[1] != T || sf_check_index(mask, "forward", "attention_mask")))
        return sf_fail(SF_ERR_ARG, "forward: attention_mask must be an integer (B, T) = (%lld, %lld) tensor",
                       (long long)B, (long long)T);
    if (labels) {
        if (sf_model_is_regression(m)) {
            if (labels->dtype != SF_F32 || sf_tensor_numel(labels) != B)
                return sf_fail(SF_ERR_ARG,
                               "forward: a regression head (num_labels = 1) needs one f32 target per row (%lld)",
                               (long long)B);
            return SF_OK;
        }
        if (labels->dtype != SF_I64) return sf_fail(SF_ERR_ARG, "forward: labels must be i64");
        if (m->task == SF_TASK_LM && (labels->ndim != 2 || labels->shape[0] != B || labels->shape[1] != T))
            return sf_fail(SF_ERR_ARG, "forward: LM labels must have the shape of input_ids (%lld, %lld)", (long long)B,
                           (long long)T);
        if (m->task == SF_TASK_CLASSIFY && sf_tensor_numel(labels) != B)
            return sf_fail(SF_ERR_ARG, "forward: classification labels must hold one class per row (%lld)", (long long)B);
    }
    return SF_OK;
}

sf_status sf_model_forward(sf_model *m, sf_tensor *ids, sf_tensor *mask, sf_tensor *labels, int train) {
    sf_graph *g = m->graph;
    sf_graph_reset(g);
    m->logits = m->loss = NULL;
    sf_status st = check_batch(m, ids, mask, labels);
    if (st) return st;
    sf_graph_set_recording(g, train);
    const sf_model_config *c = &m->cfg;
    int64_t B = ids->shape[0], T = ids->shape[1];
    packing pk;
    const int packed = plan_packing(g, m, ids, mask, labels, &pk);
    if (packed < 0) return sf_last_status() ? sf_last_status() : SF_ERR_NOMEM;
    att_in att = {packed ? NULL : mask, packed ? pk.seqs : NULL, NULL};
    const int need_pos = c->arch != SF_ARCH_LLAMA || packed; /* padded Llama: RoPE at 0..T-1 */
    sf_tensor *pos = need_pos ? positions(g, m, ids) : NULL;   // (B, T)
    if (need_pos) TRY(pos);
    sf_tensor *xids = ids;
    if (packed) { /* the real tokens and their positions, (1, N) */
        xids = pack_ids(g, ids, &pk);
        TRY(xids);
        pos = pack_ids(g, pos, &pk);
        TRY(pos);
        if (c->arch == SF_ARCH_LLAMA) att.pos = pos;
    }
    sf_tensor *h = NULL;              // GPT-2: the normalised residual stream the next block reads
    sf_tensor *x = embed(g, m, xids, pos, &h); // (B, T, C), packed (1, N, C)
    TRY(x);
    for (int64_t l = 0; l < c->n_layer; l++) {
        const sf_layer *L = &m->layers[l];
        x = c->arch == SF_ARCH_GPT2 ? gpt2_block(g, m, l, x, &h, &att)
            : c->arch == SF_ARCH_LLAMA ? llama_block(g, m, L, x, &att)
                                       : encoder_block(g, m, L, x, &att);
        TRY(x);
    }
    if (c->arch == SF_ARCH_GPT2) x = h; /* ln_f, fused with the last block's residual add */
    else if (c->arch == SF_ARCH_LLAMA) x = sf_rmsnorm(g, x, m->lnf_w, c->norm_eps);
    TRY(x);

    if (m->task == SF_TASK_LM) {
        sf_tensor *head = m->lm_head ? m->lm_head : m->wte;
        sf_tensor *tflat = NULL;
        if (labels) {
            /* labels shifted left by one within each row; a row's last position ignored */
            sf_tensor *tgt = packed ? ids_tensor(g, 1, pk.N) : ids_tensor(g, B, T);
            TRY(tgt);
            int64_t *td = sf_tensor_data(tgt);
            const int64_t *ld = sf_tensor_data(labels);
            for (int64_t b = 0; b < B; b++) {
                const int64_t n = packed ? pk.len[b] : T, at = packed ? pk.off[b] : b * T;
                for (int64_t t = 0; t < n; t++) td[at + t] = t + 1 < T ? ld[b * T + t + 1] : -100;
            }
            int64_t s1[1] = {packed ? pk.N : B * T};
            tflat = sf_graph_adopt(g, sf_tensor_view(tgt, 1, s1));
            TRY(tflat);
        }
        if (tflat && m->loss_only) { /* the (B*T, V) logits are never materialised */
            m->loss = sf_lm_head_loss(g, x, head, tflat, -100, SF_LMHEAD_KEEP_FLOATS);
            TRY(m->loss);
        } else {
            sf_tensor *logits = sf_linear(g, x, head, NULL, SF_W_OUT_IN); // (B, T, V)
            TRY(logits);
            m->logits = logits;
            if (tflat) {
                m->loss = sf_cross_entropy(g, logits, tflat, -100); /* logits (B, T, V) read as (B*T, V) */
                TRY(m->loss);
            }
        }
    } else {
        sf_tensor *feat = pool(g, m, x, ids, mask, packed ? &pk : NULL); // (B, C)
        TRY(feat);
        sf_tensor *logits;
        if (c->arch == SF_ARCH_GPT2 || c->arch == SF_ARCH_LLAMA) {
            logits = sf_linear(g, feat, m->score_w, NULL, SF_W_OUT_IN); // (B, L)
        } else {
            sf_tensor *h = sf_linear(g, feat, m->cls_dense_w, m->cls_dense_b, SF_W_OUT_IN);
            h = h ? sf_tanh(g, h) : NULL;
            logits = h ? sf_linear(g, h, m->cls_out_w, m->cls_out_b, SF_W_OUT_IN) : NULL;
        }
        TRY(logits);
        m->logits = logits;
        if (labels) {
            int64_t s1[1] = {B};
            sf_tensor *lv = sf_graph_adopt(g, sf_tensor_view(labels, 1, s1));
            TRY(lv);
            /* one label: regression, as Hugging Face's problem_type "regression" (MSE on the squeezed logit) */
            m->loss = sf_model_is_regression(m) ? sf_mse_loss(g, logits, lv) : sf_cross_entropy(g, logits, lv, -100);
            TRY(m->loss);
        }
    }
    return SF_OK;
}

sf_status sf_model_backward_scaled(sf_model *m, float scale) {
    if (!m->loss) return sf_fail(SF_ERR_STATE, "backward: the last forward computed no loss (give labels)");
    if (!m->loss->requires_grad)
        return sf_fail(SF_ERR_STATE, "backward: nothing to differentiate (no trainable parameter, or forward ran without grad)");
    if (!isfinite(scale)) return sf_fail(SF_ERR_ARG, "backward: the loss scale must be finite");
    if (scale == 1.0f) return sf_graph_backward(m->graph, m->loss, NULL);
    sf_tensor *seed = sf_tensor_new_f32(m->loss->ndim, m->loss->shape);
    if (!seed) return sf_last_status();
    sf_f32(seed)[0] = scale;
    sf_status st = sf_graph_backward(m->graph, m->loss, seed);
    sf_tensor_release(seed);
    return st;
}

sf_status sf_model_backward(sf_model *m) { return sf_model_backward_scaled(m, 1.0f); }
