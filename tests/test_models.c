/* test_models.c — real checkpoints against Hugging Face references (../shared/fixtures): logits, loss
 * and every parameter gradient of batch 0 for gpt2, gpt2-sharded, gpt2-bf16, llama and roberta-cls;
 * golden greedy generations of the real models stories260K (llama2.c) and gpt2-4m (HF + tokenizer.json);
 * KV-cache generation equals full recomputation; malformed configs and checkpoints give clear errors.
 * Tolerances (from ../shared/README.md): logits/loss 1e-4 relative; gradients max|diff| <= 1e-3 *
 * max(max|g| of the tensor, 1e-4 * max|g| over all tensors); BF16 weights: 2e-2 relative logits and
 * 5e-2 for gradients (the weights themselves are rounded to 8 bits of mantissa). Skipped without SIFT_SHARED. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <limits.h>
#include <unistd.h>

#include "../core/model.h"
#include "../core/safetensors.h"
#include "../core/tokenizer.h"
#include "../core/threads.h"
#include "test.h"

static int shared_path(char *buf, size_t n, const char *rel) {
    snprintf(buf, n, "%s/%s", shared_dir(), rel);
    struct stat st;
    return stat(buf, &st) == 0;
}

static double max_abs(const sf_tensor *t) {
    double m = 0;
    for (int64_t i = 0; i < sf_tensor_numel(t); i++) m = fmax(m, fabs(sf_tensor_get_flat(t, i)));
    return m;
}

static double max_diff(const sf_tensor *a, const sf_tensor *b) {
    double m = 0;
    for (int64_t i = 0; i < sf_tensor_numel(a); i++) {
        double d = fabs(sf_tensor_get_flat(a, i) - sf_tensor_get_flat(b, i));
        if (!(d <= m)) m = d;
    }
    return m;
}

/* Loads the fixture, runs batch 0 forward/backward and compares with the reference file. */
static void check_fixture_mode(const char *fixture, const char *ref_fixture, sf_task task, double logit_tol,
                               double grad_tol, int loss_only);
static void check_fixture(const char *fixture, const char *ref_fixture, sf_task task, double logit_tol,
                          double grad_tol) {
    check_fixture_mode(fixture, ref_fixture, task, logit_tol, grad_tol, 0);
}

static void check_fixture_mode(const char *fixture, const char *ref_fixture, sf_task task, double logit_tol,
                               double grad_tol, int loss_only) {
    char dir[1024], refp[1024], rel[256];
    snprintf(rel, sizeof rel, "fixtures/%s", fixture);
    if (!shared_path(dir, sizeof dir, rel)) SKIP("%s not found (set SIFT_SHARED)", dir);
    snprintf(rel, sizeof rel, "fixtures/%s/reference.safetensors", ref_fixture);
    REQUIRE(shared_path(refp, sizeof refp, rel), "missing %s", refp);
    sf_load_options o = {.task = task, .num_labels = 0, .seed = 0};
    sf_model *m = sf_model_load(dir, &o);
    REQUIRE(m, "load %s: %s", dir, sf_last_error());
    CHECK(m->n_unused == 0, "%s: %d unused tensors (first %s)", fixture, m->n_unused, m->n_unused ? m->unused[0] : "");
    sf_model_set_trainable(m, 1);
    sf_st_file *ref = sf_st_open(refp);
    REQUIRE(ref, "%s", sf_last_error());
    sf_tensor *ids = sf_st_load(ref, "batch0.input_ids");
    sf_tensor *mask = sf_st_find(ref, "batch0.attention_mask") ? sf_st_load(ref, "batch0.attention_mask") : NULL;
    sf_tensor *labels = task == SF_TASK_LM ? (sf_tensor_retain(ids), ids) : sf_st_load(ref, "batch0.labels");
    REQUIRE(ids && labels, "%s", sf_last_error());
    m->loss_only = loss_only;
    sf_status st = sf_model_forward(m, ids, mask, labels, 1);
    REQUIRE(st == SF_OK, "forward: %s", sf_last_error());
    sf_tensor *rl = sf_st_load_f32(ref, "logits"), *rloss = sf_st_load_f32(ref, "loss");
    REQUIRE(rl && rloss, "%s", sf_last_error());
    double lrel = 0;
    if (loss_only) {
        CHECK(m->logits == NULL, "loss-only forward kept logits");
    } else {
        CHECK(sf_tensor_numel(rl) == sf_tensor_numel(m->logits), "logits numel %lld vs %lld",
              (long long)sf_tensor_numel(m->logits), (long long)sf_tensor_numel(rl));
        lrel = max_diff(m->logits, rl) / max_abs(rl);
    }
    CHECK(lrel <= logit_tol, "%s logits rel diff %.3g > %.3g", fixture, lrel, logit_tol);
    double loss = sf_f32(m->loss)[0], rlv = sf_f32(rloss)[0];
    CHECK(fabs(loss - rlv) <= logit_tol * fabs(rlv), "%s loss %.8f vs reference %.8f", fixture, loss, rlv);
    st = sf_model_backward(m);
    REQUIRE(st == SF_OK, "backward: %s", sf_last_error());
    /* global max of reference grads */
    double gmax = 0;
    for (int i = 0; i < m->n_params; i++) {
        char key[300];
        snprintf(key, sizeof key, "grad.%s", m->params[i].name);
        sf_tensor *g = sf_st_load_f32(ref, key);
        if (g) gmax = fmax(gmax, max_abs(g));
        sf_tensor_release(g);
    }
    int compared = 0;
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < m->n_params; i++) {
        char key[300];
        snprintf(key, sizeof key, "grad.%s", m->params[i].name);
        sf_tensor *g = sf_st_load_f32(ref, key);
        CHECK(g != NULL, "%s: reference has no %s", fixture, key);
        if (!g) continue;
        sf_tensor *mine = m->params[i].t->grad;
        CHECK(mine != NULL, "%s: no gradient for %s", fixture, m->params[i].name);
        if (mine) {
            double tol = grad_tol * fmax(max_abs(g), 1e-4 * gmax);
            double d = max_diff(mine, g);
            if (d / (tol / grad_tol) > worst) {
                worst = d / (tol / grad_tol);
                worst_name = m->params[i].name;
            }
            CHECK(d <= tol, "%s: grad %s max diff %.3g > tol %.3g (max|g| %.3g)", fixture, m->params[i].name, d, tol,
                  max_abs(g));
            compared++;
        }
        sf_tensor_release(g);
    }
    CHECK(compared == m->n_params, "compared %d of %d gradients", compared, m->n_params);
    fprintf(stderr, "    %s: logits rel %.2e, loss %.6f (ref %.6f), worst grad rel %.2e (%s)\n", fixture, lrel, loss, rlv,
            worst, worst_name);
    sf_tensor_release(rl);
    sf_tensor_release(rloss);
    sf_tensor_release(ids);
    sf_tensor_release(mask);
    sf_tensor_release(labels);
    sf_st_close(ref);
    sf_model_free(m);
}

TEST(fixture_gpt2) { check_fixture("gpt2", "gpt2", SF_TASK_LM, 1e-4, 1e-3); }
TEST(fixture_gpt2_sharded) { check_fixture("gpt2-sharded", "gpt2", SF_TASK_LM, 1e-4, 1e-3); }
TEST(fixture_gpt2_bf16) { check_fixture("gpt2-bf16", "gpt2", SF_TASK_LM, 2e-2, 5e-2); }
TEST(fixture_llama) { check_fixture("llama", "llama", SF_TASK_LM, 1e-4, 1e-3); }
/* the fused LM head + loss (no logits kept) gives the same loss and gradients */
TEST(fixture_gpt2_loss_only) { check_fixture_mode("gpt2", "gpt2", SF_TASK_LM, 1e-4, 1e-3, 1); }
TEST(fixture_llama_loss_only) { check_fixture_mode("llama", "llama", SF_TASK_LM, 1e-4, 1e-3, 1); }
TEST(fixture_roberta_cls) { check_fixture("roberta-cls", "roberta-cls", SF_TASK_CLASSIFY, 1e-4, 1e-3); }

/* Greedy generation with the KV cache from the first np tokens of prompt equals argmax of a full forward at
 * every new step. */
static void check_generation_against_forward(const char *fixture, const int64_t *prompt, int64_t np) {
    char dir[1024];
    shared_path(dir, sizeof dir, fixture);
    sf_model *m = sf_model_load(dir, NULL);
    REQUIRE(m, "%s", sf_last_error());
    int64_t out[160], n = 0;
    REQUIRE(np + 12 <= 160, "prompt too long for the test's buffer");
    REQUIRE(sf_model_generate(m, prompt, np, 12, 0.0f, 0, 0, out, &n) == SF_OK, "%s", sf_last_error());
    CHECK(n == np + 12, "generated %lld tokens", (long long)(n - np));
    CHECK(memcmp(out, prompt, (size_t)np * sizeof *out) == 0, "the prompt is not the output's start");
    int64_t shape[2] = {1, n - 1};
    sf_tensor *ids = sf_tensor_new(SF_I64, 2, shape);
    memcpy(sf_tensor_data(ids), out, (size_t)(n - 1) * sizeof(int64_t));
    REQUIRE(sf_model_forward(m, ids, NULL, NULL, 0) == SF_OK, "%s", sf_last_error());
    int64_t V = m->cfg.vocab_size;
    for (int64_t t = np - 1; t < n - 1; t++) {
        const float *row = sf_f32(m->logits) + t * V;
        int64_t best = 0;
        for (int64_t v = 1; v < V; v++)
            if (row[v] > row[best]) best = v;
        CHECK(best == out[t + 1], "%s prompt %lld step %lld: cache picked %lld, full forward %lld", fixture,
              (long long)np, (long long)t, (long long)out[t + 1], (long long)best);
    }
    sf_tensor_release(ids);
    sf_model_free(m);
}

/* A uniform draw in [-0.5, 0.5) from a 64-bit LCG state. */
static float uniform_pm_half(unsigned long long *state) {
    *state = *state * 6364136223846793005ULL + 1;
    return (float)(*state >> 40) / 16777216.0f - 0.5f;
}

/* Causal attention of rows at positions pos0.. over a cache, in double: the reference for sf_cached_attention. */
static void cached_attention_ref(double *att, const float *q, const float *kc, const float *vc, int64_t n, int64_t pos0,
                                 int64_t NH, int64_t NKV, int64_t HD) {
    const int64_t Q = NH * HD, KVW = NKV * HD;
    double *p = malloc((size_t)(pos0 + n) * sizeof *p);
    for (int64_t r = 0; r < n; r++)
        for (int64_t h = 0; h < NH; h++) {
            const int64_t kh = h / (NH / NKV), last = pos0 + r;
            double mx = -INFINITY, sum = 0;
            for (int64_t t = 0; t <= last; t++) {
                double d = 0;
                for (int64_t i = 0; i < HD; i++) d += (double)q[r * Q + h * HD + i] * kc[t * KVW + kh * HD + i];
                p[t] = d / sqrt((double)HD);
                mx = fmax(mx, p[t]);
            }
            for (int64_t t = 0; t <= last; t++) sum += (p[t] = exp(p[t] - mx));
            for (int64_t i = 0; i < HD; i++) {
                double o = 0;
                for (int64_t t = 0; t <= last; t++) o += p[t] / sum * vc[t * KVW + kh * HD + i];
                att[r * Q + h * HD + i] = o;
            }
        }
    free(p);
}

/* The generation's attention against the double reference: decoding rows (the row kernel), prompts of
 * one and several blocks of 32 query rows with a partial last block (the gemm path), after cached
 * positions (pos0 > 0), grouped keys/values; the same bits on one thread and on two. */
TEST(cached_attention_matches_reference) {
    const int64_t cases[][5] = {{1, 0, 2, 2, 8},   {1, 40, 4, 2, 16}, {5, 3, 4, 4, 8},    {8, 0, 4, 2, 16},
                                {33, 0, 4, 1, 64}, {70, 0, 12, 12, 64}, {45, 20, 4, 2, 8}}; /* n, pos0, NH, NKV, HD */
    unsigned long long seed = 7;
    const int threads = sf_get_threads();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int64_t n = cases[c][0], pos0 = cases[c][1], NH = cases[c][2], NKV = cases[c][3], HD = cases[c][4];
        const int64_t Q = NH * HD, KVW = NKV * HD, T = pos0 + n;
        float *q = malloc((size_t)(n * Q) * 4);                                          // (n, Q)
        float *kc = malloc((size_t)(T * KVW) * 4), *vc = malloc((size_t)(T * KVW) * 4); // (T, KVW) each
        float *a1 = malloc((size_t)(n * Q) * 4), *a2 = malloc((size_t)(n * Q) * 4);
        double *ref = malloc((size_t)(n * Q) * sizeof *ref);
        for (int64_t i = 0; i < n * Q; i++) q[i] = 3.0f * uniform_pm_half(&seed);
        for (int64_t i = 0; i < T * KVW; i++) kc[i] = 3.0f * uniform_pm_half(&seed);
        for (int64_t i = 0; i < T * KVW; i++) vc[i] = uniform_pm_half(&seed);
        cached_attention_ref(ref, q, kc, vc, n, pos0, NH, NKV, HD);
        sf_set_threads(2);
        float *scr = malloc((size_t)sf_cached_attention_scratch(n, T) * 4);
        sf_cached_attention(a2, q, kc, vc, scr, n, pos0, NH, NKV, HD);
        sf_set_threads(1);
        sf_cached_attention(a1, q, kc, vc, scr, n, pos0, NH, NKV, HD);
        sf_set_threads(threads);
        double worst = 0;
        for (int64_t i = 0; i < n * Q; i++) worst = fmax(worst, fabs(a2[i] - ref[i]));
        CHECK(worst < 2e-6, "n %lld pos0 %lld NH %lld NKV %lld HD %lld: worst difference %.3g", (long long)n,
              (long long)pos0, (long long)NH, (long long)NKV, (long long)HD, worst);
        CHECK(!memcmp(a1, a2, (size_t)(n * Q) * 4), "n %lld: one and two threads disagree", (long long)n);
        free(q);
        free(kc);
        free(vc);
        free(a1);
        free(a2);
        free(ref);
        free(scr);
    }
}

/* An interrupt request (what Ctrl-C sets in sift-repl) stops generation with SF_ERR_INTERRUPTED and a
 * message saying how far it got: inside a prompt's one-pass forward (several rows) before its next
 * layer, after a one-token prompt before the next new token; once cleared, generation runs again. */
TEST(generation_stops_on_an_interrupt_request) {
    char dir[1024];
    if (!shared_path(dir, sizeof dir, "fixtures/gpt2")) SKIP("fixtures missing");
    sf_model *m = sf_model_load(dir, NULL);
    REQUIRE(m, "%s", sf_last_error());
    const int64_t prompt[2] = {5, 17};
    int64_t out[32], n = -1;
    char want[128];
    snprintf(want, sizeof want, "interrupted while reading the 2-token prompt, before layer 1 of %lld",
             (long long)m->cfg.n_layer);
    sf_interrupt_request();
    CHECK(sf_model_generate(m, prompt, 2, 10, 0.0f, 0, 0, out, &n) == SF_ERR_INTERRUPTED, "prompt: not interrupted");
    CHECK(n == 0 && strstr(sf_last_error(), want), "n %lld, message: %s", (long long)n, sf_last_error());
    n = -1;
    CHECK(sf_model_generate(m, prompt, 1, 10, 0.0f, 0, 0, out, &n) == SF_ERR_INTERRUPTED, "one token: not interrupted");
    CHECK(n == 0 && strstr(sf_last_error(), "interrupted after 1 of 10 new tokens"), "n %lld, message: %s",
          (long long)n, sf_last_error());
    sf_interrupt_clear();
    CHECK(sf_model_generate(m, prompt, 2, 10, 0.0f, 0, 0, out, &n) == SF_OK && n == 12, "after clearing: %s",
          sf_last_error());
    sf_model_free(m);
}

/* ... after prompts of 1, 3, 17, 45 and 140 tokens: the prompt runs as one multi-row forward (gemms, a
 * causal attention over its own rows in blocks of 32 query rows per head), each new token as one row. */
TEST(kv_cache_generation_matches_full_forward) {
    char dir[1024];
    if (!shared_path(dir, sizeof dir, "fixtures/llama")) SKIP("fixtures missing");
    int64_t prompt[140];
    for (int i = 0; i < 140; i++) prompt[i] = (i * 37 + 5) % 90;
    const int64_t n_prompts[3] = {1, 3, 17};
    for (int pl = 0; pl < 3; pl++) {
        check_generation_against_forward("fixtures/gpt2", prompt, n_prompts[pl]);
        check_generation_against_forward("fixtures/llama", prompt, n_prompts[pl]);
    }
    /* prompts of several blocks of query rows (32 each), the last one partial: the llama fixture (grouped
     * keys/values, 64 positions) and the real stories260K model */
    check_generation_against_forward("fixtures/llama", prompt, 45);
    if (shared_path(dir, sizeof dir, "models/stories260K/stories260K.bin"))
        check_generation_against_forward("models/stories260K/stories260K.bin", prompt, 140);
}

static char *decode_ids(const sf_tokenizer *tok, const int64_t *ids, int64_t n) {
    int32_t *i32 = malloc((size_t)n * sizeof *i32);
    for (int64_t i = 0; i < n; i++) i32[i] = (int32_t)ids[i];
    char *text = NULL;
    size_t len = 0;
    if (sf_tokenizer_decode(tok, i32, (size_t)n, &text, &len) != SF_OK) text = NULL;
    free(i32);
    return text;
}

TEST(golden_stories260K) {
    char bin[1024], tokp[1024];
    if (!shared_path(bin, sizeof bin, "models/stories260K/stories260K.bin")) SKIP("stories260K missing");
    shared_path(tokp, sizeof tokp, "models/stories260K/tok512.bin");
    sf_model *m = sf_model_load(bin, NULL);
    REQUIRE(m, "%s", sf_last_error());
    CHECK(m->cfg.d_model == 64 && m->cfg.n_layer == 5 && m->cfg.n_kv_head == 4 && m->cfg.vocab_size == 512,
          "config read wrong");
    sf_tokenizer *tok = sf_tokenizer_load(tokp);
    REQUIRE(tok, "%s", sf_last_error());
    int64_t prompt[1] = {1}, out[64], n = 0;
    REQUIRE(sf_model_generate(m, prompt, 1, 60, 0.0f, 0, 0, out, &n) == SF_OK, "%s", sf_last_error());
    char *text = decode_ids(tok, out, n);
    REQUIRE(text, "%s", sf_last_error());
    const char *golden = "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
                         "park. One day, she saw a big, red ball";
    const char *s = text;
    while (*s == ' ') s++;
    CHECK(strncmp(s, golden, strlen(golden)) == 0, "got \"%s\"", text);
    free(text);
    sf_tokenizer_free(tok);
    sf_model_free(m);
}

/* Writes the model's weights as a llama2.c file: v1 ("ak42") or legacy v0, with a shared or separate classifier. */
static void write_floats(FILE *f, const sf_tensor *t) { fwrite(sf_f32(t), 4, (size_t)sf_tensor_numel(t), f); }
static void write_llama2c(const sf_model *m, const char *path, int v1, int separate) {
    FILE *f = fopen(path, "wb");
    const sf_model_config *c = &m->cfg;
    int32_t hdr[7] = {(int32_t)c->d_model, (int32_t)c->d_ff, (int32_t)c->n_layer, (int32_t)c->n_head,
                      (int32_t)c->n_kv_head, (int32_t)c->vocab_size, (int32_t)c->max_pos};
    int L = (int)c->n_layer;
#define EACH(field) for (int l = 0; l < L; l++) write_floats(f, m->layers[l].field)
    if (v1) {
        uint32_t magic = 0x616b3432u;
        int32_t version = 1;
        uint8_t shared = !separate;
        fwrite(&magic, 4, 1, f);
        fwrite(&version, 4, 1, f);
        fwrite(hdr, 4, 7, f);
        fwrite(&shared, 1, 1, f);
        char pad[256] = {0};
        fwrite(pad, 1, 256 - 4 - 4 - 28 - 1, f);
        EACH(ln1_w);
        EACH(ln2_w);
        write_floats(f, m->lnf_w);
        write_floats(f, m->wte);
        EACH(wq); EACH(wk); EACH(wv); EACH(wo); EACH(w_gate); EACH(w_down); EACH(w_up);
    } else {
        if (separate) hdr[5] = -hdr[5];
        fwrite(hdr, 4, 7, f);
        write_floats(f, m->wte);
        EACH(ln1_w); EACH(wq); EACH(wk); EACH(wv); EACH(wo); EACH(ln2_w); EACH(w_gate); EACH(w_down); EACH(w_up);
        write_floats(f, m->lnf_w);
        int64_t n = c->max_pos * c->head_dim; /* freq_cis real + imag, unused */
        float z = 0;
        for (int64_t i = 0; i < n; i++) fwrite(&z, 4, 1, f);
    }
    if (separate) { /* a classifier that differs from the embedding: the embedding scaled by 2 */
        for (int64_t i = 0; i < sf_tensor_numel(m->wte); i++) {
            float v = 2.0f * sf_f32(m->wte)[i];
            fwrite(&v, 4, 1, f);
        }
    }
#undef EACH
    fclose(f);
}

static sf_tensor *logits_of(sf_model *m, const int64_t *ids, int64_t T) {
    int64_t shape[2] = {1, T};
    sf_tensor *x = sf_tensor_new(SF_I64, 2, shape);
    memcpy(sf_tensor_data(x), ids, (size_t)T * 8);
    sf_model_forward(m, x, NULL, NULL, 0);
    sf_tensor *l = sf_tensor_clone(m->logits);
    sf_tensor_release(x);
    return l;
}

TEST(llama2c_v1_and_separate_classifier) {
    char bin[1024];
    if (!shared_path(bin, sizeof bin, "models/stories260K/stories260K.bin")) SKIP("stories260K missing");
    sf_model *m = sf_model_load(bin, NULL);
    REQUIRE(m, "%s", sf_last_error());
    CHECK(m->cfg.tied_head && !m->lm_head, "stories260K has a shared classifier");
    int64_t ids[6] = {1, 403, 407, 261, 378, 9};
    sf_tensor *ref = logits_of(m, ids, 6);
    const char *paths[3] = {"/tmp/sift_test_v1.bin", "/tmp/sift_test_v0_sep.bin", "/tmp/sift_test_v1_sep.bin"};
    int v1[3] = {1, 0, 1}, sep[3] = {0, 1, 1};
    for (int k = 0; k < 3; k++) {
        write_llama2c(m, paths[k], v1[k], sep[k]);
        sf_model *w = sf_model_load(paths[k], NULL);
        REQUIRE(w, "%s: %s", paths[k], sf_last_error());
        CHECK(!sep[k] == !w->lm_head, "%s: classifier kind", paths[k]);
        sf_tensor *l = logits_of(w, ids, 6);
        if (!sep[k]) {
            CHECK(max_diff(l, ref) == 0, "%s: logits differ from the legacy file by %g", paths[k], max_diff(l, ref));
        } else { /* separate head = 2 x embedding: logits double exactly (scaling by 2 is exact in float) */
            double worst = 0;
            for (int64_t i = 0; i < sf_tensor_numel(l); i++)
                worst = fmax(worst, fabs(sf_f32(l)[i] - 2.0f * sf_f32(ref)[i]));
            CHECK(worst <= 1e-5, "%s: separate classifier not used (diff %g)", paths[k], worst);
        }
        sf_tensor_release(l);
        sf_model_free(w);
        /* a truncated copy is refused with the sizes named */
        FILE *f = fopen(paths[k], "rb+");
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fclose(f);
        CHECK(truncate(paths[k], n - 4) == 0, "truncate");
        w = sf_model_load(paths[k], NULL);
        CHECK(!w && strstr(sf_last_error(), "bytes"), "%s truncated: %s", paths[k], sf_last_error());
        unlink(paths[k]);
    }
    sf_tensor_release(ref);
    sf_model_free(m);
}

TEST(golden_gpt2_4m) {
    char dir[1024];
    if (!shared_path(dir, sizeof dir, "models/gpt2-4m")) SKIP("gpt2-4m missing");
    sf_model *m = sf_model_load(dir, NULL);
    REQUIRE(m, "%s", sf_last_error());
    CHECK(sf_model_num_params(m) == 4273664, "parameter count %lld", (long long)sf_model_num_params(m));
    sf_tokenizer *tok = sf_tokenizer_load(dir);
    REQUIRE(tok, "%s", sf_last_error());
    int32_t *ids = NULL;
    size_t n_ids = 0;
    REQUIRE(sf_tokenizer_encode(tok, "Once upon a time", 16, 0, &ids, &n_ids) == SF_OK, "%s", sf_last_error());
    int32_t want[4] = {875, 731, 259, 540};
    CHECK(n_ids == 4 && !memcmp(ids, want, sizeof want), "encoding differs");
    int64_t prompt[4], out[64], n = 0;
    for (int i = 0; i < 4; i++) prompt[i] = ids[i];
    free(ids);
    REQUIRE(sf_model_generate(m, prompt, 4, 40, 0.0f, 0, 0, out, &n) == SF_OK, "%s", sf_last_error());
    char *text = decode_ids(tok, out, n);
    REQUIRE(text, "%s", sf_last_error());
    const char *golden = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park "
                         "with her friends. One day, Lily's mom asked her to play with her friends. They went to the park";
    CHECK(strcmp(text, golden) == 0, "got \"%s\"", text);
    free(text);
    sf_tokenizer_free(tok);
    sf_model_free(m);
}

/* Sampling is reproducible by seed and differs across seeds. */
TEST(sampling_is_seeded) {
    char dir[1024];
    if (!shared_path(dir, sizeof dir, "models/gpt2-4m")) SKIP("gpt2-4m missing");
    sf_model *m = sf_model_load(dir, NULL);
    REQUIRE(m, "%s", sf_last_error());
    int64_t prompt[1] = {875}, a[40], b[40], c[40], na, nb, nc;
    sf_model_generate(m, prompt, 1, 30, 1.0f, 7, 0, a, &na);
    sf_model_generate(m, prompt, 1, 30, 1.0f, 7, 0, b, &nb);
    sf_model_generate(m, prompt, 1, 30, 1.0f, 8, 0, c, &nc);
    CHECK(na == nb && !memcmp(a, b, (size_t)na * 8), "same seed, different samples");
    CHECK(memcmp(a, c, (size_t)na * 8) != 0, "different seeds, same samples");
    CHECK(sf_model_generate(m, prompt, 1, 1000, 0.0f, 0, 0, a, &na) != SF_OK, "past max positions accepted");
    int64_t bad[1] = {99999};
    CHECK(sf_model_generate(m, bad, 1, 3, 0.0f, 0, 0, a, &na) != SF_OK, "out-of-range prompt accepted");
    sf_model_free(m);
}

static void write_file(const char *path, const char *text) { (void)sf_test_write_file(path, text, strlen(text)); }

TEST(bad_configs_and_checkpoints_fail_cleanly) {
    char tmp[] = "/tmp/sift_model_XXXXXX";
    REQUIRE(mkdtemp(tmp), "mkdtemp");
    char cfg[600];
    snprintf(cfg, sizeof cfg, "%s/config.json", tmp);
    struct {
        const char *json, *expect;
    } cases[] = {
        {"{not json", "JSON"},
        {"[1,2]", "JSON"},
        {"{\"model_type\": \"t5\"}", "t5"},
        {"{\"model_type\": \"gpt2\", \"n_embd\": 32, \"n_layer\": 2, \"n_head\": 2}", "vocab_size"},
        {"{\"model_type\": \"gpt2\", \"vocab_size\": 96, \"n_embd\": 33, \"n_layer\": 2, \"n_head\": 2}", "divisible"},
        {"{\"model_type\": \"gpt2\", \"vocab_size\": -4, \"n_embd\": 32, \"n_layer\": 2, \"n_head\": 2}", "vocab_size"},
        {"{\"model_type\": \"gpt2\", \"vocab_size\": 96.5, \"n_embd\": 32, \"n_layer\": 2, \"n_head\": 2}", "integer"},
        {"{\"model_type\": \"llama\", \"vocab_size\": 96, \"hidden_size\": 32, \"num_hidden_layers\": 1, "
         "\"num_attention_heads\": 4, \"num_key_value_heads\": 3, \"intermediate_size\": 8}",
         "multiple"},
        {"{\"model_type\": \"gpt2\", \"vocab_size\": 96, \"n_embd\": 32, \"n_layer\": 2, \"n_head\": 2}", "model.safetensors"},
        /* token ids: an integer below 2^31 (or a list, null, negative = none); not cast into range */
        {"{\"model_type\": \"gpt2\", \"eos_token_id\": 1e308, \"vocab_size\": 96, \"n_embd\": 32, \"n_layer\": 2, "
         "\"n_head\": 2}",
         "\"eos_token_id\" must be a token id"},
        {"{\"model_type\": \"gpt2\", \"bos_token_id\": [2.5], \"vocab_size\": 96, \"n_embd\": 32, \"n_layer\": 2, "
         "\"n_head\": 2}",
         "\"bos_token_id\" must be a token id"},
        {"{\"model_type\": \"gpt2\", \"pad_token_id\": \"0\", \"vocab_size\": 96, \"n_embd\": 32, \"n_layer\": 2, "
         "\"n_head\": 2}",
         "\"pad_token_id\" must be a token id"},
        {"{\"model_type\": \"roberta\", \"pad_token_id\": 40, \"vocab_size\": 96, \"hidden_size\": 32, "
         "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"intermediate_size\": 8, \"max_position_embeddings\": 40}",
         "leaves no position"},
        /* accepted forms reach the next check (the missing weights) */
        {"{\"model_type\": \"gpt2\", \"eos_token_id\": [50256, 1], \"bos_token_id\": null, \"pad_token_id\": -1, "
         "\"vocab_size\": 96, \"n_embd\": 32, \"n_layer\": 2, \"n_head\": 2}",
         "model.safetensors"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(cfg, cases[i].json);
        sf_model *m = sf_model_load(tmp, NULL);
        CHECK(m == NULL, "case %zu loaded", i);
        CHECK(strstr(sf_last_error(), cases[i].expect) != NULL, "case %zu: message \"%s\" lacks \"%s\"", i,
              sf_last_error(), cases[i].expect);
        sf_model_free(m);
    }
    /* a config whose shapes disagree with the real weights */
    char dir[1024], src[PATH_MAX + 32], dst[700];
    if (shared_path(dir, sizeof dir, "fixtures/gpt2")) {
        char abs_dir[PATH_MAX];
        snprintf(src, sizeof src, "%s/model.safetensors", realpath(dir, abs_dir) ? abs_dir : dir); /* the link lives in /tmp */
        snprintf(dst, sizeof dst, "%s/model.safetensors", tmp);
        symlink(src, dst);
        write_file(cfg, "{\"model_type\": \"gpt2\", \"vocab_size\": 96, \"n_embd\": 32, \"n_layer\": 3, \"n_head\": 2, \"n_positions\": 32}");
        sf_model *m = sf_model_load(tmp, NULL);
        CHECK(!m && strstr(sf_last_error(), "missing") && strstr(sf_last_error(), "transformer.h.2"),
              "3-layer config on 2-layer weights: %s", sf_last_error());
        write_file(cfg, "{\"model_type\": \"gpt2\", \"vocab_size\": 97, \"n_embd\": 32, \"n_layer\": 2, \"n_head\": 2, \"n_positions\": 32}");
        m = sf_model_load(tmp, NULL);
        CHECK(!m && strstr(sf_last_error(), "transformer.wte.weight") && strstr(sf_last_error(), "shape"),
              "wrong vocab: %s", sf_last_error());
        write_file(cfg, "{\"model_type\": \"gpt2\", \"vocab_size\": 96, \"n_embd\": 32, \"n_layer\": 1, \"n_head\": 2, \"n_positions\": 32}");
        m = sf_model_load(tmp, NULL);
        CHECK(m && m->n_unused == 12, "1-layer config: %d unused tensors reported", m ? m->n_unused : -1);
        sf_model_free(m);
        unlink(dst);
    }
    unlink(cfg);
    /* llama2.c: truncated file and insane header */
    char bin[700];
    snprintf(bin, sizeof bin, "%s/m.bin", tmp);
    int32_t hdr[7] = {64, 172, 5, 8, 4, 512, 512};
    FILE *f = fopen(bin, "wb");
    fwrite(hdr, 4, 7, f);
    fwrite(hdr, 4, 7, f);
    fclose(f);
    sf_model *m = sf_model_load(bin, NULL);
    CHECK(!m && strstr(sf_last_error(), "bytes"), "truncated llama2.c: %s", sf_last_error());
    hdr[0] = -5;
    f = fopen(bin, "wb");
    fwrite(hdr, 4, 7, f);
    fclose(f);
    m = sf_model_load(bin, NULL);
    CHECK(!m && strstr(sf_last_error(), "header"), "bad header: %s", sf_last_error());
    unlink(bin);
    rmdir(tmp);
    CHECK(sf_model_load("/nonexistent/x", NULL) == NULL && strstr(sf_last_error(), "no such"), "%s", sf_last_error());
}

TEST_MAIN()
