/* generate.c — text generation for decoder models (GPT-2, Llama) with a key/value cache: the prompt runs as
 * one multi-row forward through the raw kernels (its products are gemms), then each new token as a
 * one-row forward attending over the cached keys/values, so N tokens cost N steps, not N^2 recomputation.
 * Greedy (temperature 0) or sampling from softmax(logits / temperature) with an explicit seed. No tape, no
 * gradients.
 * Threads: the prompt's products and ops are the multi-row kernels' (both cores); its attention
 * (sf_cached_attention) runs in blocks of 32 query rows per head, each block two gemms, spread over the
 * threads. A one-row step's ops run on the calling thread without entering OpenMP
 * (core/parallel_for.h); only matrix-vector products of 4 MB and more (a large LM head, GPT-2 124M's
 * blocks) use the second core (core/gemm.c) — measured faster than one thread for gpt2-4m's 4 MB head.
 * Memory: one arena per call (caches and scratch), from sf_alloc so that it is counted, and on huge pages
 * when large (a page fault per 4 KB of fresh scratch had cost more than the prompt's products). */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "model.h"
#include "rng.h"
#include "simd_act.h"
#include "simd_math.h"
#include "threads.h"

/* Query rows per block of a prompt's attention (attend_block): the block's (rows x keys) scores per thread
 * stay small (PREFILL_ROWS * max_T floats) while its products are large enough for the gemm kernel. */
enum { PREFILL_ROWS = 32 };

typedef struct {
    /* row scratch for up to R positions at once (the prompt's; 1 while decoding): */
    float *x, *h, *o;     /* (R, C) */
    float *qkv;           /* (R, max(3C, Q + 2KV)) */
    float *q, *att;       /* (R, Q) */
    float *up, *gate;     /* (R, F) */
    float *cos_t, *sin_t; /* (R, HD/2) rotary tables of the rows' positions */
    float *logits;        /* (V) the last row's */
    float *scores;        /* sf_cached_attention's scratch: a block of score rows per thread */
    float *kc, *vc;       /* (n_layer, max_T, KV) each */
    int64_t *pos;         /* (R) */
    void *arena;          /* everything above, one sf_alloc (large: huge pages, few page faults) */
    size_t arena_bytes;
    int64_t max_T, KV, R;
} gen_state;

/* Hands out n floats (n int64 for the positions) of the arena at *off, 64-byte aligned; with base NULL
 * only counts. */
static void *carve(char *base, size_t *off, int64_t n, size_t elem) {
    void *p = base ? base + *off : NULL;
    *off += ((size_t)(n > 0 ? n : 1) * elem + 63) / 64 * 64;
    return p;
}

/* Lays the buffers out in base (NULL: only sizes them); returns the bytes needed. */
static size_t layout_state(gen_state *s, char *base, const sf_model_config *c) {
    const int64_t C = c->d_model, Q = c->n_head * c->head_dim, R = s->R, KV = s->KV;
    const int64_t wide = Q + 2 * KV > 3 * C ? Q + 2 * KV : 3 * C;
    size_t off = 0;
    const size_t f = sizeof(float);
    s->x = carve(base, &off, R * C, f);
    s->h = carve(base, &off, R * C, f);
    s->o = carve(base, &off, R * C, f);
    s->qkv = carve(base, &off, R * wide, f);
    s->q = carve(base, &off, R * Q, f);
    s->att = carve(base, &off, R * Q, f);
    s->up = carve(base, &off, R * c->d_ff, f);
    s->gate = carve(base, &off, R * c->d_ff, f);
    s->cos_t = carve(base, &off, R * c->head_dim, f);
    s->sin_t = carve(base, &off, R * c->head_dim, f);
    s->logits = carve(base, &off, c->vocab_size, f);
    s->scores = carve(base, &off, sf_cached_attention_scratch(R, s->max_T), f);
    s->kc = carve(base, &off, c->n_layer * s->max_T * KV, f);
    s->vc = carve(base, &off, c->n_layer * s->max_T * KV, f);
    s->pos = carve(base, &off, R, sizeof(int64_t));
    return off;
}

static void free_state(gen_state *s) { sf_free(s->arena, s->arena_bytes); }

static sf_status alloc_state(gen_state *s, const sf_model_config *c, int64_t max_T, int64_t R) {
    memset(s, 0, sizeof *s);
    s->KV = c->n_kv_head * c->head_dim;
    s->max_T = max_T;
    s->R = R;
    s->arena_bytes = layout_state(s, NULL, c);
    s->arena = sf_alloc(s->arena_bytes);
    if (!s->arena)
        return sf_fail(SF_ERR_NOMEM, "generate: out of memory for a %lld-token cache and %lld prompt rows (%zu bytes)",
                       (long long)max_T, (long long)R, s->arena_bytes);
    layout_state(s, s->arena, c);
    return SF_OK;
}

/* The sum of a 8-lane accumulator, in a fixed tree. */
static inline float sum8(const float acc[8]) {
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* scores[t] = scale * (q . K[t]) for t < n, K's rows KVW floats apart, q HD floats. Each key's sum runs in 8
 * lanes (one 256-bit register when HD is a multiple of 8, as head sizes are) and then a fixed tree, four
 * keys at a time so that four independent chains of FMAs overlap (one key's is latency-bound). A key's
 * bits do not depend on which group of four it falls in. Not `omp simd reduction`: gcc sums its 16 lane
 * partials one by one through the stack, which cost more than the products at head sizes 8-64. */
static void key_scores(float *restrict scores, const float *restrict q, const float *restrict K, int64_t KVW,
                       int64_t n, int64_t HD, float scale) {
    const int64_t hd8 = HD - HD % 8;
    int64_t t = 0;
    for (; t + 4 <= n; t += 4) {
        const float *k0 = K + t * KVW, *k1 = k0 + KVW, *k2 = k1 + KVW, *k3 = k2 + KVW; // (HD,) each
        float a0[8] = {0}, a1[8] = {0}, a2[8] = {0}, a3[8] = {0};
        for (int64_t d = 0; d < hd8; d += 8)
            for (int l = 0; l < 8; l++) {
                const float x = q[d + l];
                a0[l] += x * k0[d + l];
                a1[l] += x * k1[d + l];
                a2[l] += x * k2[d + l];
                a3[l] += x * k3[d + l];
            }
        float s0 = sum8(a0), s1 = sum8(a1), s2 = sum8(a2), s3 = sum8(a3);
        for (int64_t d = hd8; d < HD; d++) {
            s0 += q[d] * k0[d];
            s1 += q[d] * k1[d];
            s2 += q[d] * k2[d];
            s3 += q[d] * k3[d];
        }
        scores[t] = s0 * scale;
        scores[t + 1] = s1 * scale;
        scores[t + 2] = s2 * scale;
        scores[t + 3] = s3 * scale;
    }
    for (; t < n; t++) {
        const float *kt = K + t * KVW; // (HD,)
        float a[8] = {0};
        for (int64_t d = 0; d < hd8; d += 8)
            for (int l = 0; l < 8; l++) a[l] += q[d + l] * kt[d + l];
        float s = sum8(a);
        for (int64_t d = hd8; d < HD; d++) s += q[d] * kt[d];
        scores[t] = s * scale;
    }
}

/* o (HD) = sum over t < n of p[t] V[t], V's rows KVW floats apart. The sums live in local tiles the
 * compiler keeps in registers across the keys (accumulating in o made a chain through memory): 64 columns
 * at a time (8 independent vector chains), then 8 columns at a time with the keys dealt round-robin to 4
 * tiles (one 8-column chain alone is latency-bound: head size 8), then single columns. */
static void weighted_values(float *restrict o, const float *restrict p, const float *restrict V, int64_t KVW,
                            int64_t n, int64_t HD) {
    int64_t d0 = 0;
    for (; d0 + 64 <= HD; d0 += 64) {
        float acc[64] = {0};
        for (int64_t t = 0; t < n; t++) {
            const float pt = p[t], *vt = V + t * KVW + d0; // (64,)
#pragma omp simd
            for (int l = 0; l < 64; l++) acc[l] += pt * vt[l];
        }
        memcpy(o + d0, acc, sizeof acc);
    }
    for (; d0 + 8 <= HD; d0 += 8) {
        float a[4][8] = {{0}};
        int64_t t = 0;
        for (; t + 4 <= n; t += 4)
            for (int j = 0; j < 4; j++) {
                const float pt = p[t + j], *vt = V + (t + j) * KVW + d0; // (8,)
                for (int l = 0; l < 8; l++) a[j][l] += pt * vt[l];
            }
        for (; t < n; t++) {
            const float pt = p[t], *vt = V + t * KVW + d0; // (8,)
            for (int l = 0; l < 8; l++) a[0][l] += pt * vt[l];
        }
        for (int l = 0; l < 8; l++) o[d0 + l] = (a[0][l] + a[1][l]) + (a[2][l] + a[3][l]);
    }
    for (; d0 < HD; d0++) {
        float acc = 0.0f;
        for (int64_t t = 0; t < n; t++) acc += p[t] * V[t * KVW + d0];
        o[d0] = acc;
    }
}

/* row[0, n) = softmax(row[0, n)) in place, with the shifted exp, max and sum of the training attention
 * (core/simd_math.h). */
static void softmax_prefix(float *row, int64_t n) {
    sf_exp_shifted(row, row, sf_max_f32(row, n), n);
    const float inv = 1.0f / sf_sum_f32(row, n);
#pragma omp simd
    for (int64_t t = 0; t < n; t++) row[t] *= inv;
}

/* att (NH*HD) = softmax(q . K[0..pos] / sqrt(HD)) V[0..pos] per head, K/V rows of width KVW; scores (pos+1)
 * scratch. */
static void attend(float *att, const float *q, const float *K, const float *V, float *scores, int64_t pos,
                   int64_t NH, int64_t NKV, int64_t HD, int64_t KVW) {
    const float scale = 1.0f / sqrtf((float)HD);
    const int64_t n = pos + 1;
    for (int64_t h = 0; h < NH; h++) {
        const int64_t kh = h / (NH / NKV);
        key_scores(scores, q + h * HD, K + kh * HD, KVW, n, HD, scale);
        softmax_prefix(scores, n);
        weighted_values(att + h * HD, scores, V + kh * HD, KVW, n, HD);
    }
}

/* One head h (key/value head kh) of `rows` consecutive query rows, the first at position pos_first, as two
 * products: the block's scores S (rows, nk) = scale q K[0..nk)^T over the keys up to its last row's
 * position (nk = pos_first + rows), each row's softmax over its own causal prefix (later keys get 0), then
 * att = S V[0..nk). q and att rows have stride Q, K/V rows KVW. The same softmax as attend(); the sums
 * run in the products' order, so a row's values may differ from attend()'s in the last bits. */
static void attend_block(float *att, const float *q, const float *K, const float *V, float *S, int64_t rows,
                         int64_t pos_first, int64_t Q, int64_t HD, int64_t KVW) {
    const float scale = 1.0f / sqrtf((float)HD);
    const int64_t nk = pos_first + rows;
    sf_sgemm_serial(0, 1, rows, nk, HD, scale, q, Q, K, KVW, 0.0f, S, nk);
    for (int64_t r = 0; r < rows; r++) {
        float *row = S + r * nk; // (nk): keys 0..pos_first+r count, the rest are masked
        const int64_t n = pos_first + r + 1;
        softmax_prefix(row, n);
        memset(row + n, 0, (size_t)(nk - n) * sizeof(float));
    }
    sf_sgemm_serial(0, 0, rows, HD, nk, 1.0f, S, nk, V, KVW, 0.0f, att, Q);
}

int64_t sf_cached_attention_scratch(int64_t n, int64_t max_T) {
    return (n > 1 ? (int64_t)sf_get_threads() * PREFILL_ROWS : 1) * (max_T > 0 ? max_T : 1);
}

/* A decoding row (or a few) goes through attend() on the calling thread; a prompt's rows are cut into
 * blocks of PREFILL_ROWS per head, attend_block's products, spread over the threads (each its own block of
 * score rows; blocks cost their position, hence the dynamic schedule, costliest first). A row's result
 * does not depend on which thread computes it. */
void sf_cached_attention(float *att, const float *q, const float *kc, const float *vc, float *scratch, int64_t n,
                         int64_t pos0, int64_t NH, int64_t NKV, int64_t HD) {
    const int64_t Q = NH * HD, KVW = NKV * HD, max_T = pos0 + n;
    if (n < 8) {
        for (int64_t r = 0; r < n; r++) attend(att + r * Q, q + r * Q, kc, vc, scratch, pos0 + r, NH, NKV, HD, KVW);
        return;
    }
    const int64_t blocks = (n + PREFILL_ROWS - 1) / PREFILL_ROWS, tasks = blocks * NH;
    const int nt = sf_get_threads();
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        float *S = scratch + (int64_t)omp_get_thread_num() * PREFILL_ROWS * max_T; // (PREFILL_ROWS, max_T)
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < tasks; t++) {
            const int64_t b = blocks - 1 - t / NH, h = t % NH, kh = h / (NH / NKV);
            const int64_t r0 = b * PREFILL_ROWS, rows = n - r0 < PREFILL_ROWS ? n - r0 : PREFILL_ROWS;
            attend_block(att + r0 * Q + h * HD, q + r0 * Q + h * HD, kc + kh * HD, vc + kh * HD, S, rows, pos0 + r0,
                         Q, HD, KVW);
        }
    }
}

/* Positions pos0 .. pos0+n-1 (tokens tok[0..n), n <= R) through the whole model at once: the rows'
 * products are one gemm each (one gemv while decoding), each row attends over the cache up to its own
 * position; fills the caches at those positions and s->logits with the last row's logits. Several rows
 * (a prompt) poll the interrupt request before each layer: returns the 1-based layer it stopped before
 * (logits and caches then unfinished), 0 when it ran to the end. */
static int64_t forward_rows(const sf_model *m, gen_state *s, const int64_t *tok, int64_t n, int64_t pos0) {
    const sf_model_config *c = &m->cfg;
    const int64_t C = c->d_model, F = c->d_ff, HD = c->head_dim, Q = c->n_head * HD, KV = s->KV;
    const int gpt2 = c->arch == SF_ARCH_GPT2;
    sf_embedding_forward(s->x, tok, sf_f32(m->wte), n, C);
    for (int64_t r = 0; r < n; r++) {
        s->pos[r] = pos0 + r;
        if (gpt2) {
            const float *pe = sf_f32(m->wpe) + (pos0 + r) * C;
            for (int64_t i = 0; i < C; i++) s->x[r * C + i] += pe[i];
        }
    }
    if (!gpt2) sf_rope_table(s->cos_t, s->sin_t, s->pos, n, HD, c->rope_theta);
    const sf_wlayout lay = gpt2 ? SF_W_IN_OUT : SF_W_OUT_IN;
    for (int64_t l = 0; l < c->n_layer; l++) {
        if (n > 1 && sf_interrupt_pending()) return l + 1;
        const sf_layer *L = &m->layers[l];
        float *kc = s->kc + l * s->max_T * KV, *vc = s->vc + l * s->max_T * KV; // (max_T, KV)
        if (gpt2) {
            sf_layernorm_forward(s->h, NULL, NULL, s->x, sf_f32(L->ln1_w), sf_f32(L->ln1_b), n, C, c->norm_eps);
            sf_linear_forward(s->qkv, s->h, sf_f32(L->wqkv), sf_f32(L->bqkv), n, C, 3 * C, lay); // (n, 3C)
            for (int64_t r = 0; r < n; r++) {
                const float *row = s->qkv + r * 3 * C;
                memcpy(s->q + r * Q, row, (size_t)C * sizeof(float));
                memcpy(kc + (pos0 + r) * KV, row + C, (size_t)C * sizeof(float));
                memcpy(vc + (pos0 + r) * KV, row + 2 * C, (size_t)C * sizeof(float));
            }
        } else {
            sf_rmsnorm_forward(s->h, NULL, s->x, sf_f32(L->ln1_w), n, C, c->norm_eps);
            sf_linear_forward(s->qkv, s->h, sf_f32(L->wq), L->bq ? sf_f32(L->bq) : NULL, n, C, Q, lay); // (n, Q)
            sf_rope_forward(s->q, s->qkv, s->cos_t, s->sin_t, n, Q, n, c->n_head, HD, c->rope_kind);
            sf_linear_forward(s->qkv, s->h, sf_f32(L->wk), L->bk ? sf_f32(L->bk) : NULL, n, C, KV, lay); // (n, KV)
            sf_rope_forward(kc + pos0 * KV, s->qkv, s->cos_t, s->sin_t, n, KV, n, c->n_kv_head, HD, c->rope_kind);
            sf_linear_forward(vc + pos0 * KV, s->h, sf_f32(L->wv), L->bv ? sf_f32(L->bv) : NULL, n, C, KV, lay);
        }
        sf_cached_attention(s->att, s->q, kc, vc, s->scores, n, pos0, c->n_head, c->n_kv_head, HD);
        sf_linear_forward(s->o, s->att, sf_f32(L->wo), L->bo ? sf_f32(L->bo) : NULL, n, Q, C, lay);
        for (int64_t i = 0; i < n * C; i++) s->x[i] += s->o[i];
        if (gpt2) {
            sf_layernorm_forward(s->h, NULL, NULL, s->x, sf_f32(L->ln2_w), sf_f32(L->ln2_b), n, C, c->norm_eps);
            sf_linear_forward(s->up, s->h, sf_f32(L->w_up), sf_f32(L->b_up), n, C, F, lay);
            sf_gelu_forward(s->gate, s->up, n * F, c->gelu);
            sf_linear_forward(s->o, s->gate, sf_f32(L->w_down), sf_f32(L->b_down), n, F, C, lay);
        } else {
            sf_rmsnorm_forward(s->h, NULL, s->x, sf_f32(L->ln2_w), n, C, c->norm_eps);
            sf_linear_forward(s->gate, s->h, sf_f32(L->w_gate), NULL, n, C, F, lay);
            sf_linear_forward(s->up, s->h, sf_f32(L->w_up), NULL, n, C, F, lay);
            float *gate = s->gate;   // (n, F): silu(gate) * up, the same vector code as sf_swiglu
            const float *up = s->up; // (n, F)
            SF_VLOOP(0, n * F, {
                const vf x = VLD(gate);
                VST(gate, x * vsigmoid(x) * VLD(up));
            })
            sf_linear_forward(s->o, s->gate, sf_f32(L->w_down), NULL, n, F, C, lay);
        }
        for (int64_t i = 0; i < n * C; i++) s->x[i] += s->o[i];
    }
    const float *last = s->x + (n - 1) * C; // (C,): only the last row's next token is needed
    if (gpt2)
        sf_layernorm_forward(s->h, NULL, NULL, last, sf_f32(m->lnf_w), sf_f32(m->lnf_b), 1, C, c->norm_eps);
    else
        sf_rmsnorm_forward(s->h, NULL, last, sf_f32(m->lnf_w), 1, C, c->norm_eps);
    const sf_tensor *head = m->lm_head ? m->lm_head : m->wte;
    sf_linear_forward(s->logits, s->h, sf_f32(head), NULL, 1, C, c->vocab_size, SF_W_OUT_IN);
    return 0;
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
    if (!(temperature >= 0 && temperature <= FLT_MAX)) /* NaN and Inf fail too */
        return sf_fail(SF_ERR_ARG, "generate: temperature must be a finite number >= 0, got %g", (double)temperature);
    int64_t total = n_prompt + max_new;
    if (total > c->max_pos)
        return sf_fail(SF_ERR_ARG, "generate: %lld prompt + %lld new tokens exceed the model's %lld positions",
                       (long long)n_prompt, (long long)max_new, (long long)c->max_pos);
    for (int64_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= c->vocab_size)
            return sf_fail(SF_ERR_ARG, "generate: prompt token %lld at position %lld outside 0..%lld",
                           (long long)prompt[i], (long long)i, (long long)c->vocab_size - 1);
    memcpy(out, prompt, (size_t)n_prompt * sizeof *out);
    if (max_new == 0) {
        *n_out = n_prompt;
        return SF_OK;
    }
    gen_state s;
    sf_status st = alloc_state(&s, c, total, n_prompt);
    if (st) return st;
    sf_rng r;
    sf_rng_seed(&r, seed);
    const int64_t stopped_at = forward_rows(m, &s, out, n_prompt, 0); /* the whole prompt at once */
    if (stopped_at) {
        free_state(&s);
        return sf_fail(SF_ERR_INTERRUPTED,
                       "generate: interrupted while reading the %lld-token prompt, before layer %lld of %lld",
                       (long long)n_prompt, (long long)stopped_at, (long long)c->n_layer);
    }
    int64_t n = n_prompt;
    for (;;) {
        const int64_t next = pick(s.logits, c->vocab_size, temperature, &r);
        out[n++] = next;
        if (n == total || (stop_at_eos && next == c->eos_token_id)) break;
        if (sf_interrupt_pending()) { /* Ctrl-C: out holds the tokens so far, *n_out stays 0 */
            free_state(&s);
            return sf_fail(SF_ERR_INTERRUPTED, "generate: interrupted after %lld of %lld new tokens",
                           (long long)(n - n_prompt), (long long)max_new);
        }
        forward_rows(m, &s, out + n - 1, 1, n - 1);
    }
    *n_out = n;
    free_state(&s);
    return SF_OK;
}
