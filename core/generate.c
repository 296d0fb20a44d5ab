/* generate.c — text generation for decoder models (GPT-2, Llama) with a key/value cache: each token
 * (prompt or generated) runs one single-position forward through the raw kernels, attending over the
 * cached keys/values, so N tokens cost N steps, not N^2 recomputation. Greedy (temperature 0) or
 * sampling from softmax(logits / temperature) with an explicit seed. No tape, no gradients.
 * Threads: a one-row step's ops run on the calling thread without entering OpenMP (core/parallel_for.h);
 * only matrix-vector products of 4 MB and more (a large LM head, GPT-2 124M's blocks) use the second core
 * (core/gemm.c) — measured faster than one thread for gpt2-4m's 4 MB head. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "rng.h"
#include "simd_math.h"

typedef struct {
    float *x, *h, *qkv, *q, *att, *o, *up, *gate, *logits, *scores; /* scratch */
    float *kc, *vc;     /* (n_layer, max_T, KV) each */
    float *cos_t, *sin_t;
    int64_t max_T, KV;
} gen_state;

static void free_state(gen_state *s) {
    free(s->x); free(s->h); free(s->qkv); free(s->q); free(s->att); free(s->o); free(s->up); free(s->gate);
    free(s->logits); free(s->scores); free(s->kc); free(s->vc); free(s->cos_t); free(s->sin_t);
}

static sf_status alloc_state(gen_state *s, const sf_model_config *c, int64_t max_T) {
    memset(s, 0, sizeof *s);
    int64_t C = c->d_model, Q = c->n_head * c->head_dim;
    s->KV = c->n_kv_head * c->head_dim;
    s->max_T = max_T;
    int64_t wide = Q + 2 * s->KV > 3 * C ? Q + 2 * s->KV : 3 * C;
    s->x = malloc((size_t)C * 4);
    s->h = malloc((size_t)C * 4);
    s->qkv = malloc((size_t)wide * 4);
    s->q = malloc((size_t)Q * 4);
    s->att = malloc((size_t)Q * 4);
    s->o = malloc((size_t)C * 4);
    s->up = malloc((size_t)c->d_ff * 4);
    s->gate = malloc((size_t)c->d_ff * 4);
    s->logits = malloc((size_t)c->vocab_size * 4);
    s->scores = malloc((size_t)max_T * 4);
    s->kc = malloc((size_t)(c->n_layer * max_T * s->KV) * 4);
    s->vc = malloc((size_t)(c->n_layer * max_T * s->KV) * 4);
    s->cos_t = malloc((size_t)c->head_dim * 4);
    s->sin_t = malloc((size_t)c->head_dim * 4);
    if (!s->x || !s->h || !s->qkv || !s->q || !s->att || !s->o || !s->up || !s->gate || !s->logits || !s->scores ||
        !s->kc || !s->vc || !s->cos_t || !s->sin_t) {
        free_state(s);
        return sf_fail(SF_ERR_NOMEM, "generate: out of memory for a %lld-token cache", (long long)max_T);
    }
    return SF_OK;
}

/* a . b over n floats: 8 partial sums (one 256-bit register for any n that is a multiple of 8, as head
 * sizes are), then a fixed tree. Not `omp simd reduction`: gcc sums its 16 lane partials one by one
 * through the stack, which cost more than the products at head sizes 8-64. */
static inline float dot8(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    const int64_t n8 = n - n % 8;
    for (int64_t d = 0; d < n8; d += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[d + l] * b[d + l];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (int64_t d = n8; d < n; d++) s += a[d] * b[d];
    return s;
}

/* att (NH*HD) = softmax(q . K[0..pos] / sqrt(HD)) V[0..pos] per head, K/V rows of width KVW; scores (pos+1)
 * scratch. The softmax uses the shifted exp, max and sum of the training attention (core/simd_math.h). */
static void attend(float *att, const float *q, const float *K, const float *V, float *scores, int64_t pos,
                   int64_t NH, int64_t NKV, int64_t HD, int64_t KVW) {
    const float scale = 1.0f / sqrtf((float)HD);
    const int64_t n = pos + 1;
    for (int64_t h = 0; h < NH; h++) {
        const int64_t kh = h / (NH / NKV);
        const float *qh = q + h * HD;
        for (int64_t t = 0; t < n; t++) {
            const float *kt = K + t * KVW + kh * HD; // (HD,)
            scores[t] = dot8(qh, kt, HD) * scale;
        }
        sf_exp_shifted(scores, scores, sf_max_f32(scores, n), n);
        const float inv = 1.0f / sf_sum_f32(scores, n);
        float *oh = att + h * HD; // (HD,)
        memset(oh, 0, (size_t)HD * sizeof *oh);
        for (int64_t t = 0; t < n; t++) {
            const float p = scores[t] * inv;
            const float *vt = V + t * KVW + kh * HD; // (HD,)
#pragma omp simd
            for (int64_t d = 0; d < HD; d++) oh[d] += p * vt[d];
        }
    }
}

/* One position through the whole model: updates the caches and fills s->logits. */
static void step(const sf_model *m, gen_state *s, int64_t token, int64_t pos) {
    const sf_model_config *c = &m->cfg;
    int64_t C = c->d_model, F = c->d_ff, HD = c->head_dim, Q = c->n_head * HD, KV = s->KV;
    memcpy(s->x, sf_f32(m->wte) + token * C, (size_t)C * 4);
    if (c->arch == SF_ARCH_GPT2) {
        const float *pe = sf_f32(m->wpe) + pos * C;
        for (int64_t i = 0; i < C; i++) s->x[i] += pe[i];
    } else {
        int64_t p = pos;
        sf_rope_table(s->cos_t, s->sin_t, &p, 1, HD, c->rope_theta);
    }
    for (int64_t l = 0; l < c->n_layer; l++) {
        const sf_layer *L = &m->layers[l];
        float *kc = s->kc + l * s->max_T * KV, *vc = s->vc + l * s->max_T * KV;
        if (c->arch == SF_ARCH_GPT2) {
            sf_layernorm_forward(s->h, NULL, NULL, s->x, sf_f32(L->ln1_w), sf_f32(L->ln1_b), 1, C, c->norm_eps);
            sf_linear_forward(s->qkv, s->h, sf_f32(L->wqkv), sf_f32(L->bqkv), 1, C, 3 * C, SF_W_IN_OUT);
            memcpy(s->q, s->qkv, (size_t)C * 4);
            memcpy(kc + pos * KV, s->qkv + C, (size_t)C * 4);
            memcpy(vc + pos * KV, s->qkv + 2 * C, (size_t)C * 4);
        } else {
            sf_rmsnorm_forward(s->h, NULL, s->x, sf_f32(L->ln1_w), 1, C, c->norm_eps);
            sf_linear_forward(s->qkv, s->h, sf_f32(L->wq), L->bq ? sf_f32(L->bq) : NULL, 1, C, Q, SF_W_OUT_IN);
            sf_rope_forward(s->q, s->qkv, s->cos_t, s->sin_t, 1, Q, 1, c->n_head, HD, c->rope_kind);
            sf_linear_forward(s->qkv, s->h, sf_f32(L->wk), L->bk ? sf_f32(L->bk) : NULL, 1, C, KV, SF_W_OUT_IN);
            sf_rope_forward(kc + pos * KV, s->qkv, s->cos_t, s->sin_t, 1, KV, 1, c->n_kv_head, HD, c->rope_kind);
            sf_linear_forward(vc + pos * KV, s->h, sf_f32(L->wv), L->bv ? sf_f32(L->bv) : NULL, 1, C, KV, SF_W_OUT_IN);
        }
        attend(s->att, s->q, kc, vc, s->scores, pos, c->n_head, c->n_kv_head, HD, KV);
        sf_wlayout lay = c->arch == SF_ARCH_GPT2 ? SF_W_IN_OUT : SF_W_OUT_IN;
        sf_linear_forward(s->o, s->att, sf_f32(L->wo), L->bo ? sf_f32(L->bo) : NULL, 1, Q, C, lay);
        for (int64_t i = 0; i < C; i++) s->x[i] += s->o[i];
        if (c->arch == SF_ARCH_GPT2) {
            sf_layernorm_forward(s->h, NULL, NULL, s->x, sf_f32(L->ln2_w), sf_f32(L->ln2_b), 1, C, c->norm_eps);
            sf_linear_forward(s->up, s->h, sf_f32(L->w_up), sf_f32(L->b_up), 1, C, F, SF_W_IN_OUT);
            sf_gelu_forward(s->gate, s->up, F, c->gelu);
            sf_linear_forward(s->o, s->gate, sf_f32(L->w_down), sf_f32(L->b_down), 1, F, C, SF_W_IN_OUT);
        } else {
            sf_rmsnorm_forward(s->h, NULL, s->x, sf_f32(L->ln2_w), 1, C, c->norm_eps);
            sf_linear_forward(s->gate, s->h, sf_f32(L->w_gate), NULL, 1, C, F, SF_W_OUT_IN);
            sf_linear_forward(s->up, s->h, sf_f32(L->w_up), NULL, 1, C, F, SF_W_OUT_IN);
            for (int64_t i = 0; i < F; i++) {
                float g = s->gate[i];
                s->gate[i] = g / (1.0f + expf(-g)) * s->up[i];
            }
            sf_linear_forward(s->o, s->gate, sf_f32(L->w_down), NULL, 1, F, C, SF_W_OUT_IN);
        }
        for (int64_t i = 0; i < C; i++) s->x[i] += s->o[i];
    }
    if (c->arch == SF_ARCH_GPT2)
        sf_layernorm_forward(s->h, NULL, NULL, s->x, sf_f32(m->lnf_w), sf_f32(m->lnf_b), 1, C, c->norm_eps);
    else
        sf_rmsnorm_forward(s->h, NULL, s->x, sf_f32(m->lnf_w), 1, C, c->norm_eps);
    const sf_tensor *head = m->lm_head ? m->lm_head : m->wte;
    sf_linear_forward(s->logits, s->h, sf_f32(head), NULL, 1, C, c->vocab_size, SF_W_OUT_IN);
}

static int64_t pick(const float *logits, int64_t V, float temperature, sf_rng *r) {
    int64_t best = 0;
    for (int64_t i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 0) return best;
    double sum = 0;
    for (int64_t i = 0; i < V; i++) sum += exp((logits[i] - logits[best]) / temperature);
    double u = sf_rng_uniform(r) * sum, acc = 0;
    for (int64_t i = 0; i < V; i++) {
        acc += exp((logits[i] - logits[best]) / temperature);
        if (acc >= u) return i;
    }
    return V - 1;
}

sf_status sf_model_generate(sf_model *m, const int64_t *prompt, int64_t n_prompt, int64_t max_new,
                            float temperature, uint64_t seed, int stop_at_eos, int64_t *out, int64_t *n_out) {
    const sf_model_config *c = &m->cfg;
    *n_out = 0;
    if (c->arch != SF_ARCH_GPT2 && c->arch != SF_ARCH_LLAMA)
        return sf_fail(SF_ERR_ARG, "generate: %s is not a decoder", c->model_type);
    if (m->task != SF_TASK_LM) return sf_fail(SF_ERR_ARG, "generate: the model was loaded for classification, not \"lm\"");
    if (n_prompt < 1) return sf_fail(SF_ERR_ARG, "generate: the prompt needs at least one token");
    if (max_new < 0) return sf_fail(SF_ERR_ARG, "generate: max_new must be >= 0");
    if (!(temperature >= 0)) return sf_fail(SF_ERR_ARG, "generate: temperature must be >= 0");
    int64_t total = n_prompt + max_new;
    if (total > c->max_pos)
        return sf_fail(SF_ERR_ARG, "generate: %lld prompt + %lld new tokens exceed the model's %lld positions",
                       (long long)n_prompt, (long long)max_new, (long long)c->max_pos);
    for (int64_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= c->vocab_size)
            return sf_fail(SF_ERR_ARG, "generate: prompt token %lld at position %lld outside 0..%lld",
                           (long long)prompt[i], (long long)i, (long long)c->vocab_size - 1);
    gen_state s;
    sf_status st = alloc_state(&s, c, total);
    if (st) return st;
    sf_rng r;
    sf_rng_seed(&r, seed);
    memcpy(out, prompt, (size_t)n_prompt * sizeof *out);
    int64_t n = n_prompt;
    for (int64_t pos = 0; n < total; pos++) {
        step(m, &s, out[pos], pos);
        if (pos + 1 < n) continue; /* still reading the prompt */
        int64_t next = pick(s.logits, c->vocab_size, temperature, &r);
        out[n++] = next;
        if (stop_at_eos && next == c->eos_token_id) break;
    }
    *n_out = n;
    free_state(&s);
    return SF_OK;
}
