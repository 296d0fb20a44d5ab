/* test_delta.c — SHA-256 and SIFT deltas.
 *
 * SHA-256 against the FIPS 180-4 / NIST vectors ("", "abc", the 448- and 896-bit messages, one million
 * 'a'), streaming in odd pieces equal to one shot. Deltas: a SIFT run (real forward/backward, top-k
 * selection, 3 AdamW steps) on fixtures/gpt2 and models/gpt2-4m is saved, loaded into a FRESH model and
 * applied: every parameter is bit-identical (memcmp) to the fine-tuned model and the logits of a forward
 * are bit-identical; unapply restores every parameter bit for bit. A changed base weight, a missing
 * tensor, a shape mismatch and tampered indices are refused before anything is written (one message
 * listing every offending tensor). Corrupted files (unsorted / duplicate / out-of-range / negative
 * indices, mismatched lengths, missing tensors, bad format tag, shape and hash garbage, unknown tensors,
 * wrong dtypes, NaN values, bad numbers) fail to load with a message naming the file and the tensor.
 * Offsets are int32 in memory below 2^31 elements and int64 above (a 2^32-element entry survives save,
 * load, clone and add). Composition: d + d has collisions == total k and doubled values, 0.5 * d
 * halves, disjoint masks give 0 collisions, conflicts are listed. Dense head entries round-trip on
 * fixtures/roberta-cls.
 * Needs ../shared (SIFT_SHARED) for the model tests; they report themselves skipped without it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/delta.h"
#include "../core/model.h"
#include "../core/optim.h"
#include "../core/safetensors.h"
#include "../core/sha256.h"
#include "../core/sift.h"
#include "test.h"

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static void tmp_path(char *buf, size_t n, const char *tag) {
    const char *d = getenv("TMPDIR");
    snprintf(buf, n, "%s/sift_test_delta_%ld_%s.safetensors", d && *d ? d : "/tmp", (long)getpid(), tag);
}

static const sf_adamw_hparams HP = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};

/* ---- SHA-256 ------------------------------------------------------------------------------------ */
static void hex_of(const void *data, size_t len, char hex[65]) {
    uint8_t d[32];
    sf_sha256(data, len, d);
    sf_sha256_hex(d, hex);
}

TEST(sha256_vectors) {
    char h[65];
    hex_of("", 0, h);
    CHECK(!strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "empty: %s", h);
    hex_of("abc", 3, h);
    CHECK(!strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "abc: %s", h);
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(m448, strlen(m448), h);
    CHECK(!strcmp(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"), "448-bit: %s", h);
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                       "mnopqrstnopqrstu";
    hex_of(m896, strlen(m896), h);
    CHECK(!strcmp(h, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"), "896-bit: %s", h);
    /* one million 'a': one shot and streamed in odd pieces */
    size_t n = 1000000;
    char *a = malloc(n);
    REQUIRE(a, "malloc");
    memset(a, 'a', n);
    hex_of(a, n, h);
    const char *want = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    CHECK(!strcmp(h, want), "1M a: %s", h);
    sf_sha256_ctx c;
    sf_sha256_init(&c);
    size_t off = 0, piece = 1;
    while (off < n) {
        size_t take = piece < n - off ? piece : n - off;
        sf_sha256_update(&c, a + off, take);
        off += take;
        piece = piece * 3 % 197 + 1; /* 1..197 bytes: crosses block boundaries every way */
    }
    uint8_t dg[32];
    sf_sha256_final(&c, dg);
    CHECK(!strcmp(sf_sha256_hex(dg, h), want), "1M a streamed: %s", h);
    free(a);
    /* the padding boundary: 55, 56, 63, 64 bytes streamed == one shot */
    for (size_t len = 50; len <= 130; len++) {
        unsigned char buf[130];
        for (size_t i = 0; i < len; i++) buf[i] = (unsigned char)(i * 7 + 1);
        char h1[65], h2[65];
        hex_of(buf, len, h1);
        sf_sha256_init(&c);
        sf_sha256_update(&c, buf, len / 2);
        sf_sha256_update(&c, buf + len / 2, len - len / 2);
        sf_sha256_final(&c, dg);
        CHECK(!strcmp(h1, sf_sha256_hex(dg, h2)), "length %zu: split differs", len);
    }
    CHECK(sf_sha256_is_hex(want) && !sf_sha256_is_hex("abc") && !sf_sha256_is_hex(NULL), "is_hex");
}

/* ---- model helpers -------------------------------------------------------------------------------- */
typedef struct {
    sf_model *m;
    sf_task task;
    int nb;
    sf_tensor *ids[3], *mask[3], *labels[3];
} runner;

static void close_runner(runner *r) {
    for (int b = 0; b < 3; b++) {
        sf_tensor_release(r->ids[b]);
        sf_tensor_release(r->mask[b]);
        sf_tensor_release(r->labels[b]);
    }
    sf_model_free(r->m);
    memset(r, 0, sizeof *r);
}

/* fixtures/<name> with the reference batches: 1 ok, 0 missing, -1 error. */
static int open_fixture(runner *r, const char *name, sf_task task) {
    char dir[1024], refp[1100];
    memset(r, 0, sizeof *r);
    snprintf(dir, sizeof dir, "%s/fixtures/%s", shared_dir(), name);
    snprintf(refp, sizeof refp, "%s/reference.safetensors", dir);
    if (!exists(refp)) return 0;
    sf_load_options o = {.task = task};
    r->m = sf_model_load(dir, &o);
    sf_st_file *ref = sf_st_open(refp);
    r->task = task;
    r->nb = 3;
    if (!r->m || !ref) {
        sf_st_close(ref);
        return -1;
    }
    for (int b = 0; b < 3; b++) {
        char key[64];
        snprintf(key, sizeof key, "batch%d.input_ids", b);
        r->ids[b] = sf_st_load(ref, key);
        snprintf(key, sizeof key, "batch%d.attention_mask", b);
        if (sf_st_find(ref, key)) r->mask[b] = sf_st_load(ref, key);
        snprintf(key, sizeof key, "batch%d.labels", b);
        if (task == SF_TASK_CLASSIFY) {
            r->labels[b] = sf_st_load(ref, key);
        } else {
            r->labels[b] = r->ids[b];
            sf_tensor_retain(r->ids[b]);
        }
    }
    sf_st_close(ref);
    return 1;
}

/* models/gpt2-4m with fabricated token batches (2 x 32, seeded LCG). */
static int open_gpt2_4m(runner *r) {
    char dir[1024], cfg[1100];
    memset(r, 0, sizeof *r);
    snprintf(dir, sizeof dir, "%s/models/gpt2-4m", shared_dir());
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    if (!exists(cfg)) return 0;
    r->m = sf_model_load(dir, NULL);
    if (!r->m) return -1;
    r->task = SF_TASK_LM;
    r->nb = 3;
    uint64_t s = 12345;
    for (int b = 0; b < 3; b++) {
        int64_t shape[2] = {2, 32};
        r->ids[b] = sf_tensor_new(SF_I64, 2, shape);
        int64_t *p = sf_tensor_data(r->ids[b]);
        for (int i = 0; i < 64; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            p[i] = (int64_t)((s >> 33) % (uint64_t)r->m->cfg.vocab_size);
        }
        r->labels[b] = r->ids[b];
        sf_tensor_retain(r->ids[b]);
    }
    return 1;
}

static sf_model *fresh_model(const char *which) {
    char dir[1024];
    if (!strcmp(which, "gpt2-4m")) {
        snprintf(dir, sizeof dir, "%s/models/gpt2-4m", shared_dir());
        return sf_model_load(dir, NULL);
    }
    snprintf(dir, sizeof dir, "%s/fixtures/%s", shared_dir(), which);
    sf_load_options o = {.task = strstr(which, "cls") ? SF_TASK_CLASSIFY : SF_TASK_LM};
    return sf_model_load(dir, &o);
}

static int have_fixture(const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/fixtures/%s/config.json", shared_dir(), name);
    return exists(p);
}

static int run_batch(runner *r, int b) {
    if (sf_model_forward(r->m, r->ids[b], r->mask[b], r->labels[b], 1) != SF_OK) return -1;
    return sf_model_backward(r->m) == SF_OK ? 0 : -1;
}

static sf_tensor *logits_of(sf_model *m, runner *r) {
    if (sf_model_forward(m, r->ids[0], r->mask[0], NULL, 0) != SF_OK) return NULL;
    return sf_tensor_clone(m->logits);
}

static sf_tensor **snapshot(const sf_model *m) {
    sf_tensor **s = calloc((size_t)m->n_params, sizeof *s);
    for (int i = 0; i < m->n_params; i++) s[i] = sf_tensor_clone(m->params[i].t);
    return s;
}

static void free_snapshot(sf_tensor **s, int n) {
    for (int i = 0; s && i < n; i++) sf_tensor_release(s[i]);
    free(s);
}

static int same_bytes(const sf_tensor *a, const sf_tensor *b) {
    return a && b && sf_tensor_nbytes(a) == sf_tensor_nbytes(b) &&
           memcmp(sf_tensor_data(a), sf_tensor_data(b), sf_tensor_nbytes(a)) == 0;
}

/* Number of parameters of m whose bytes differ from snap (first one named in *first). */
static int diff_snapshot(const sf_model *m, sf_tensor *const *snap, const char **first) {
    int n = 0;
    *first = "";
    for (int i = 0; i < m->n_params; i++)
        if (!same_bytes(m->params[i].t, snap[i])) {
            if (!n) *first = m->params[i].name;
            n++;
        }
    return n;
}

static int diff_models(const sf_model *a, const sf_model *b, const char **first) {
    int n = 0;
    *first = "";
    if (a->n_params != b->n_params) return -1;
    for (int i = 0; i < a->n_params; i++)
        if (strcmp(a->params[i].name, b->params[i].name) || !same_bytes(a->params[i].t, b->params[i].t)) {
            if (!n) *first = a->params[i].name;
            n++;
        }
    return n;
}

/* Targets: 2-D weights inside the blocks; dense: the classification head. */
static int is_target(const sf_param_entry *p) {
    return p->t->ndim == 2 && (strstr(p->name, "transformer.h.") || strstr(p->name, "encoder.layer.")) &&
           strstr(p->name, ".weight");
}

static sf_sparse_set *make_set(sf_model *m, sf_policy pol, double rate, uint64_t seed) {
    sf_tensor *w[256];
    const char *names[256];
    int n = 0;
    for (int i = 0; i < m->n_params && n < 256; i++)
        if (is_target(&m->params[i])) {
            w[n] = m->params[i].t;
            names[n++] = m->params[i].name;
        }
    return sf_sparse_new(w, names, n, rate, pol, seed);
}

static int dense_head(sf_model *m, sf_tensor **t, const char **names) {
    int n = 0;
    for (int i = 0; i < m->n_params && n < 16; i++)
        if (!strncmp(m->params[i].name, "classifier.", 11)) {
            t[n] = m->params[i].t;
            names[n++] = m->params[i].name;
        }
    return n;
}

/* A real SIFT run: top-k selection on batch 0 (its gradient is the first step's), 3 AdamW steps on
 * batches 0, 1, 2; the dense head (if any) trains with dense AdamW. */
static sf_sparse_set *sift_run(runner *r, sf_adamw **dense_opt) {
    sf_model_set_trainable(r->m, 0);
    sf_tensor *dt[16];
    const char *dn[16];
    int nd = dense_head(r->m, dt, dn);
    for (int i = 0; i < nd; i++) sf_param_set_trainable(dt[i], 1);
    *dense_opt = nd ? sf_adamw_new(dt, NULL, nd, &HP) : NULL;
    sf_sparse_set *s = make_set(r->m, SF_POLICY_TOPK, 0.05, 0);
    if (!s) return NULL;
    sf_sparse_begin_selection(s);
    for (int b = 0; b < r->nb; b++) {
        if (run_batch(r, b) != 0) goto fail;
        if (b == 0) {
            s->calib_batches = 1;
            if (sf_sparse_finish_selection(s) != SF_OK) goto fail;
        }
        if (sf_sparse_step(s, &HP) != SF_OK) goto fail;
        if (*dense_opt) {
            sf_adamw_step(*dense_opt);
            sf_adamw_zero_grad(*dense_opt);
        }
    }
    return s;
fail:
    sf_sparse_free(s);
    return NULL;
}

/* Fabricated-gradient steps (no forward): grad_j = sin(0.37 j + i + step). */
static int fake_steps(sf_sparse_set *s, int steps) {
    for (int st = 0; st < steps; st++) {
        for (int i = 0; i < s->n; i++) {
            for (int64_t j = 0; j < s->t[i].k; j++) s->t[i].grad[j] = (float)sin(0.37 * (double)j + i + st);
            s->t[i].got_grad = 1;
        }
        if (sf_sparse_step(s, &HP) != SF_OK) return -1;
    }
    return 0;
}

/* ---- the round trip: fine-tune, save, load into a fresh model, apply, unapply ---------------------- */
static void roundtrip(const char *which) {
    runner r;
    int ok = !strcmp(which, "gpt2-4m") ? open_gpt2_4m(&r) : open_fixture(&r, which, strstr(which, "cls") ? SF_TASK_CLASSIFY : SF_TASK_LM);
    if (ok == 0) SKIP("%s missing (set SIFT_SHARED)", which);
    REQUIRE(ok > 0, "%s", sf_last_error());
    sf_adamw *dense_opt = NULL;
    sf_sparse_set *s = sift_run(&r, &dense_opt);
    REQUIRE(s, "SIFT run: %s", sf_last_error());
    sf_tensor *dt[16];
    const char *dn[16];
    int nd = dense_head(r.m, dt, dn);
    sf_delta *d = sf_delta_from_sparse(s, dt, dn, nd, NULL);
    REQUIRE(d, "from_sparse: %s", sf_last_error());
    CHECK(d->step == 3 && d->rate == 0.05 && !strcmp(d->policy, "topk") && d->seed == 0, "metadata %lld %g %s",
          (long long)d->step, d->rate, d->policy);
    CHECK(sf_delta_n_sparse(d) == s->n && sf_delta_n_dense(d) == nd, "%d sparse, %d dense", sf_delta_n_sparse(d),
          sf_delta_n_dense(d));
    CHECK(sf_delta_n_values(d) == sf_sparse_trainable(s), "values %lld vs trainable %lld", (long long)sf_delta_n_values(d),
          (long long)sf_sparse_trainable(s));
    REQUIRE(sf_delta_set_extra(d, "task", "round trip") == SF_OK, "%s", sf_last_error());
    CHECK(sf_delta_set_extra(d, "sha256.x", "y") != SF_OK && strstr(sf_last_error(), "reserved"), "reserved key accepted");
    char path[512];
    tmp_path(path, sizeof path, which);
    REQUIRE(sf_delta_save(d, path) == SF_OK, "save: %s", sf_last_error());
    sf_tensor *tuned_logits = logits_of(r.m, &r);
    REQUIRE(tuned_logits, "%s", sf_last_error());
    sf_sparse_free(s); /* the weights keep their fine-tuned values */
    sf_adamw_free(dense_opt);

    sf_model *fresh = fresh_model(which);
    REQUIRE(fresh, "%s", sf_last_error());
    sf_tensor **orig = snapshot(fresh);
    const char *first;
    CHECK(diff_models(fresh, r.m, &first) > 0, "fine-tuning changed nothing");

    sf_delta *ld = sf_delta_load(path);
    REQUIRE(ld, "load: %s", sf_last_error());
    REQUIRE(ld->n == d->n, "%d entries vs %d", ld->n, d->n);
    CHECK(ld->step == d->step && ld->rate == d->rate && ld->seed == d->seed && !strcmp(ld->policy, d->policy), "metadata");
    CHECK(sf_delta_get_extra(ld, "task") && !strcmp(sf_delta_get_extra(ld, "task"), "round trip"), "extra lost");
    for (int i = 0; i < d->n; i++) {
        const sf_delta_entry *a = &d->e[i], *b = &ld->e[i];
        CHECK(!strcmp(a->name, b->name) && a->dense == b->dense && a->k == b->k && a->ndim == b->ndim &&
                  !memcmp(a->shape, b->shape, sizeof a->shape),
              "entry %d (%s) differs after the round trip", i, a->name);
        if (a->dense) {
            CHECK(same_bytes(a->tensor, b->tensor), "dense %s differs", a->name);
        } else if (a->k == b->k) {
            CHECK(a->idx.wide == b->idx.wide && !memcmp(a->idx.data, b->idx.data, (size_t)a->k * sf_index_elem_bytes(a->idx.wide)) && !memcmp(a->values, b->values, (size_t)a->k * 4) &&
                      !strcmp(a->base_sha256, b->base_sha256),
                  "sparse %s differs", a->name);
        }
    }
    /* the fine-tuned model is not the base: every sparse entry is listed */
    CHECK(sf_delta_check(ld, r.m) != SF_OK, "check passed on the fine-tuned model");
    int listed = 0;
    for (int i = 0; i < ld->n; i++) listed += !ld->e[i].dense && strstr(sf_last_error(), ld->e[i].name) != NULL;
    CHECK(listed == sf_delta_n_sparse(ld) || strstr(sf_last_error(), "more"), "only %d of %d listed: %s", listed,
          sf_delta_n_sparse(ld), sf_last_error());

    REQUIRE(sf_delta_check(ld, fresh) == SF_OK, "check: %s", sf_last_error());
    REQUIRE(sf_delta_apply(ld, fresh) == SF_OK, "apply: %s", sf_last_error());
    int nd_params = diff_models(fresh, r.m, &first);
    CHECK(nd_params == 0, "%d parameters differ from the fine-tuned model after apply (first %s)", nd_params, first);
    sf_tensor *applied_logits = logits_of(fresh, &r);
    REQUIRE(applied_logits, "%s", sf_last_error());
    CHECK(same_bytes(tuned_logits, applied_logits), "logits differ from the fine-tuned model's");
    CHECK(sf_delta_check(ld, fresh) == SF_OK, "check while applied: %s", sf_last_error());
    CHECK(sf_delta_apply(ld, fresh) != SF_OK && strstr(sf_last_error(), "already applied"), "applied twice: %s",
          sf_last_error());
    CHECK(sf_delta_unapply(ld, r.m) != SF_OK && strstr(sf_last_error(), "another model"), "unapply on another model: %s",
          sf_last_error());
    CHECK(diff_models(fresh, r.m, &first) == 0, "a refused unapply wrote into the model");
    REQUIRE(sf_delta_unapply(ld, fresh) == SF_OK, "unapply: %s", sf_last_error());
    int nd_orig = diff_snapshot(fresh, orig, &first);
    CHECK(nd_orig == 0, "%d parameters differ from the original after unapply (first %s)", nd_orig, first);
    CHECK(sf_delta_unapply(ld, fresh) != SF_OK && strstr(sf_last_error(), "not applied"), "unapply twice");
    /* apply again after unapply works */
    CHECK(sf_delta_apply(ld, fresh) == SF_OK && diff_models(fresh, r.m, &first) == 0, "re-apply: %s", sf_last_error());
    CHECK(sf_delta_unapply(ld, fresh) == SF_OK && diff_snapshot(fresh, orig, &first) == 0, "re-unapply");

    sf_tensor_release(applied_logits);
    sf_tensor_release(tuned_logits);
    sf_delta_free(ld);
    sf_delta_free(d);
    free_snapshot(orig, fresh->n_params);
    sf_model_free(fresh);
    close_runner(&r);
    unlink(path);
}

TEST(roundtrip_gpt2) { roundtrip("gpt2"); }
TEST(roundtrip_gpt2_4m) { roundtrip("gpt2-4m"); }
TEST(roundtrip_roberta_cls_dense_head) { roundtrip("roberta-cls"); }

/* ---- refusals against a model ---------------------------------------------------------------------- */
static sf_delta *fake_delta(sf_model *m, sf_policy pol, uint64_t seed) {
    sf_sparse_set *s = make_set(m, pol, 0.05, seed);
    if (!s) return NULL;
    sf_sparse_begin_selection(s);
    sf_delta *d = NULL;
    if (sf_sparse_finish_selection(s) == SF_OK && fake_steps(s, 2) == 0) d = sf_delta_from_sparse(s, NULL, NULL, 0, NULL);
    sf_sparse_restore(s);
    sf_sparse_free(s);
    return d;
}

TEST(refusals_name_every_tensor_and_write_nothing) {
    if (!have_fixture("gpt2")) SKIP("fixtures/gpt2 missing (set SIFT_SHARED)");
    sf_model *m = fresh_model("gpt2");
    REQUIRE(m, "%s", sf_last_error());
    sf_tensor **orig = snapshot(m);
    sf_delta *d = fake_delta(m, SF_POLICY_RANDOM, 7);
    REQUIRE(d && d->n == 8, "%s", sf_last_error());
    const char *first;
    CHECK(diff_snapshot(m, orig, &first) == 0, "building the delta left the model changed (%s)", first);

    /* one changed base weight in two targets */
    sf_tensor *w2 = sf_model_param(m, d->e[2].name), *w5 = sf_model_param(m, d->e[5].name);
    sf_f32(w2)[3] += 1e-3f;
    sf_f32(w5)[sf_tensor_numel(w5) - 1] = -sf_f32(w5)[sf_tensor_numel(w5) - 1] + 0.5f;
    sf_tensor **changed = snapshot(m);
    CHECK(sf_delta_apply(d, m) != SF_OK, "applied to a different base");
    const char *msg = sf_last_error();
    char want[400];
    snprintf(want, sizeof want, "%s: base SHA-256 differs", d->e[2].name);
    CHECK(strstr(msg, "delta does not fit the model") && strstr(msg, want), "message: %s", msg);
    snprintf(want, sizeof want, "%s: base SHA-256 differs", d->e[5].name);
    CHECK(strstr(msg, want), "second tensor not listed: %s", msg);
    CHECK(!strstr(msg, d->e[0].name), "a fitting tensor is listed: %s", msg);
    fprintf(stderr, "    refused: %s\n", msg);
    CHECK(diff_snapshot(m, changed, &first) == 0 && !d->applied, "a refused apply wrote into the model (%s)", first);
    free_snapshot(changed, m->n_params);
    for (int i = 0; i < m->n_params; i++) memcpy(sf_f32(m->params[i].t), sf_f32(orig[i]), sf_tensor_nbytes(orig[i]));
    CHECK(sf_delta_check(d, m) == SF_OK, "restored model refused: %s", sf_last_error());

    /* missing tensor, shape mismatch, tampered indices: all listed, nothing written */
    free(d->e[0].name);
    d->e[0].name = strdup("lm_head.weight");
    int64_t t = d->e[2].shape[0]; /* mlp.c_fc (C, 4C) */
    d->e[2].shape[0] = d->e[2].shape[1];
    d->e[2].shape[1] = t;
    if (d->e[3].k >= 2) {
        int64_t x = sf_index_get(d->e[3].idx, 0);
        sf_index_set(d->e[3].idx, 0, sf_index_get(d->e[3].idx, 1));
        sf_index_set(d->e[3].idx, 1, x);
    }
    sf_index_set(d->e[4].idx, d->e[4].k - 1, d->e[4].numel); /* out of range */
    CHECK(sf_delta_apply(d, m) != SF_OK, "a broken delta was applied");
    msg = sf_last_error();
    CHECK(strstr(msg, "lm_head.weight: not in the model"), "missing: %s", msg);
    fprintf(stderr, "    refused: %s\n", msg);
    snprintf(want, sizeof want, "%s: shape (", d->e[2].name);
    CHECK(strstr(msg, want) && strstr(msg, "in the delta") && strstr(msg, "in the model"), "shape: %s", msg);
    snprintf(want, sizeof want, "%s: indices not strictly ascending or out of range", d->e[3].name);
    CHECK(strstr(msg, want), "unsorted: %s", msg);
    snprintf(want, sizeof want, "%s: indices not strictly ascending or out of range", d->e[4].name);
    CHECK(strstr(msg, want), "out of range: %s", msg);
    CHECK(diff_snapshot(m, orig, &first) == 0, "a refused apply wrote into the model (%s)", first);
    /* a tampered delta cannot be saved either */
    char path[512];
    tmp_path(path, sizeof path, "tampered");
    CHECK(sf_delta_save(d, path) != SF_OK && strstr(sf_last_error(), d->e[3].name) && !exists(path), "tampered save: %s",
          sf_last_error());
    sf_delta_free(d);
    /* a long listing stays one line within the error buffer and says how many were left out */
    d = sf_delta_new("topk", 0.01, 1, 0);
    char hex[65];
    hex_of("x", 1, hex);
    int64_t shp[1] = {10}, ix[1] = {0};
    float vx[1] = {1};
    for (int i = 0; i < 60; i++) {
        char nm[128];
        snprintf(nm, sizeof nm, "model.layers.%d.self_attn.q_proj.weight.that.is.not.there", i);
        sf_delta_add_sparse(d, nm, 1, shp, 1, ix, vx, hex);
    }
    CHECK(sf_delta_check(d, m) != SF_OK && strstr(sf_last_error(), "layers.0.self_attn") && strstr(sf_last_error(), "more") &&
              strlen(sf_last_error()) < 1000,
          "long listing: %s", sf_last_error());
    sf_delta_free(d);
    free_snapshot(orig, m->n_params);
    sf_model_free(m);
}

/* ---- corrupted files -------------------------------------------------------------------------------- */
static sf_tensor *i32_tensor(const int32_t *v, int64_t n) {
    sf_tensor *t = sf_tensor_new(SF_I32, 1, &n);
    memcpy(sf_tensor_data(t), v, (size_t)n * 4);
    return t;
}

static sf_tensor *f32_tensor(const float *v, int64_t n) {
    sf_tensor *t = sf_tensor_new(SF_F32, 1, &n);
    memcpy(sf_f32(t), v, (size_t)n * 4);
    return t;
}

/* Copies the safetensors file src to dst with tensor `name` replaced by repl (NULL: dropped; added when
 * absent) and metadata `key` set to val (NULL: dropped). Takes over repl. */
static int rewrite(const char *src, const char *dst, const char *name, sf_tensor *repl, const char *key, const char *val) {
    sf_st_file *f = sf_st_open(src);
    if (!f) return -1;
    int n = sf_st_count(f), nm = sf_st_metadata_count(f), o = 0, om = 0, done = 0, mdone = 0;
    const char **names = calloc((size_t)n + 2, sizeof *names), **keys = calloc((size_t)nm + 2, sizeof *keys);
    const char **vals = calloc((size_t)nm + 2, sizeof *vals);
    sf_tensor **ts = calloc((size_t)n + 2, sizeof *ts);
    for (int i = 0; i < n; i++) {
        const char *en = sf_st_entry_at(f, i)->name;
        if (name && !strcmp(en, name)) {
            done = 1;
            if (!repl) continue;
            names[o] = en;
            ts[o++] = repl;
        } else {
            names[o] = en;
            ts[o++] = sf_st_load(f, en);
        }
    }
    if (name && !done && repl) {
        names[o] = name;
        ts[o++] = repl;
    }
    for (int i = 0; i < nm; i++) {
        const char *k = sf_st_metadata_key(f, i);
        if (key && !strcmp(k, key)) {
            mdone = 1;
            if (!val) continue;
            keys[om] = k;
            vals[om++] = val;
        } else {
            keys[om] = k;
            vals[om++] = sf_st_metadata_value(f, i);
        }
    }
    if (key && !mdone && val) {
        keys[om] = key;
        vals[om++] = val;
    }
    sf_status st = sf_st_save(dst, o, names, ts, om, keys, vals);
    for (int i = 0; i < o; i++) sf_tensor_release(ts[i]);
    if (repl && !done && !name) sf_tensor_release(repl);
    free(names);
    free(keys);
    free(vals);
    free(ts);
    sf_st_close(f);
    return st == SF_OK ? 0 : -1;
}

static sf_delta *small_delta(int with_dense) {
    char hex[65];
    hex_of("base", 4, hex);
    sf_delta *d = sf_delta_new("topk", 0.05, 7, 42);
    int64_t sa[2] = {4, 5}, sb[1] = {10}, ia[3] = {1, 3, 7}, ib[2] = {0, 9};
    float va[3] = {0.5f, -0.25f, 0.125f}, vb[2] = {1.0f, -2.0f};
    sf_delta_add_sparse(d, "a", 2, sa, 3, ia, va, hex);
    sf_delta_add_sparse(d, "b", 1, sb, 2, ib, vb, hex);
    if (with_dense) {
        sf_tensor *h = sf_tensor_f32d(2, 2, -1, -1);
        for (int i = 0; i < 4; i++) sf_f32(h)[i] = (float)i - 1.5f;
        sf_delta_add_dense(d, "h", h);
        sf_tensor_release(h);
    }
    sf_delta_set_extra(d, "note", "hello");
    return d;
}

TEST(corrupted_files_are_refused) {
    char good[512], bad[512];
    tmp_path(good, sizeof good, "good");
    tmp_path(bad, sizeof bad, "bad");
    sf_delta *d = small_delta(1);
    REQUIRE(d && d->n == 3, "%s", sf_last_error());
    REQUIRE(sf_delta_save(d, good) == SF_OK, "%s", sf_last_error());
    sf_delta *ok = sf_delta_load(good);
    REQUIRE(ok, "the valid file does not load: %s", sf_last_error());
    CHECK(ok->n == 3 && ok->e[0].k == 3 && ok->e[1].k == 2 && ok->e[2].dense && sf_delta_n_values(ok) == 5, "entries");
    CHECK(sf_index_get(ok->e[0].idx, 2) == 7 && ok->e[0].values[1] == -0.25f && ok->e[1].values[1] == -2.0f, "values");
    CHECK(sf_f32(ok->e[2].tensor)[3] == 1.5f && ok->e[2].shape[0] == 2 && ok->e[2].ndim == 2, "dense");
    CHECK(ok->seed == 42 && ok->step == 7 && ok->rate == 0.05 && !strcmp(sf_delta_get_extra(ok, "note"), "hello"), "meta");
    sf_delta_free(ok);
    /* the file holds I32 indices and the documented metadata */
    sf_st_file *f = sf_st_open(good);
    REQUIRE(f, "%s", sf_last_error());
    CHECK(!strcmp(sf_st_find(f, "a.indices")->dtype_name, "I32") && !strcmp(sf_st_find(f, "a.values")->dtype_name, "F32"), "dtypes");
    CHECK(!strcmp(sf_st_metadata_get(f, "format"), "sift-delta/1") && !strcmp(sf_st_metadata_get(f, "shape.a"), "4,5") &&
              !strcmp(sf_st_metadata_get(f, "dense"), "h") && !strcmp(sf_st_metadata_get(f, "rate"), "0.05") &&
              !strcmp(sf_st_metadata_get(f, "seed"), "42"),
          "metadata layout");
    sf_st_close(f);

    int32_t unsorted[3] = {3, 1, 7}, dup[3] = {1, 3, 3}, oob[3] = {1, 3, 20}, neg[3] = {-1, 3, 7}, i2[3] = {1, 3, 7};
    float two[2] = {1, 2}, nanv[3] = {1, NAN, 2}, three[3] = {1, 2, 3};
    struct {
        const char *tensor;
        sf_tensor *repl; /* NULL with tensor set: drop */
        const char *key, *val;
        const char *want;
    } cases[] = {
        {"a.indices", i32_tensor(unsorted, 3), NULL, NULL, "'a.indices' (shape (4, 5)): indices are not strictly ascending at position 1 (1 after 3)"},
        {"a.indices", i32_tensor(dup, 3), NULL, NULL, "'a.indices' (shape (4, 5)): indices are not strictly ascending at position 2"},
        {"a.indices", i32_tensor(oob, 3), NULL, NULL, "'a.indices' (shape (4, 5)): index 20 at position 2 is outside 0..19"},
        {"a.indices", i32_tensor(neg, 3), NULL, NULL, "'a.indices' (shape (4, 5)): index -1 at position 0 is outside"},
        {"a.values", f32_tensor(two, 2), NULL, NULL, "tensor 'a': 3 indices but 2 values"},
        {"a.values", NULL, NULL, NULL, "sparse tensor 'a' has no 'a.values' tensor"},
        {"b.indices", NULL, NULL, NULL, "sparse tensor 'b' has no 'b.indices' tensor"},
        {"a.values", f32_tensor(nanv, 3), NULL, NULL, "'a.values': value nan at position 1 is not finite"},
        {"a.values", i32_tensor(i2, 3), NULL, NULL, "'a.values' must be a 1-D F32 tensor (it is I32"},
        {"a.indices", f32_tensor(three, 3), NULL, NULL, "'a.indices' must be a 1-D I32 or I64 tensor (it is F32"},
        {"zzz", f32_tensor(three, 3), NULL, NULL, "unknown tensor 'zzz'"},
        {"c.values", f32_tensor(three, 3), NULL, NULL, "unknown tensor 'c.values'"},
        {"h", NULL, NULL, NULL, "dense tensor 'h' (listed in metadata \"dense\") is not in the file"},
        {NULL, NULL, "format", "sift-delta/2", "format \"sift-delta/2\" is not \"sift-delta/1\""},
        {NULL, NULL, "format", NULL, "not a SIFT delta (no \"format\" metadata"},
        {NULL, NULL, "shape.a", "4,x", "tensor 'a': shape metadata \"4,x\" is not"},
        {NULL, NULL, "shape.a", "", "tensor 'a': shape metadata \"\" is not"},
        {NULL, NULL, "shape.a", "4,,5", "tensor 'a': shape metadata"},
        {NULL, NULL, "shape.a", "-4,5", "tensor 'a': shape metadata"},
        {NULL, NULL, "shape.a", "4, 5", "tensor 'a': shape metadata"},
        {NULL, NULL, "shape.a", "1,1,1,4,5", "tensor 'a': shape metadata"},
        {NULL, NULL, "shape.a", "99999999999,99999999999", "tensor 'a': shape metadata"},
        {NULL, NULL, "shape.a", "5", "'a.indices' (shape (5,)): index 7 at position 2 is outside 0..4"},
        {NULL, NULL, "shape.a", "2", "'a.indices' (shape (2,)): 3 indices for a tensor of 2 elements"},
        {NULL, NULL, "shape.a", NULL, "metadata 'sha256.a' has no matching 'shape.a'"},
        {NULL, NULL, "sha256.a", NULL, "tensor 'a' has no base hash"},
        {NULL, NULL, "sha256.a", "xyz", "tensor 'a': metadata 'sha256.a' is not 64 hex digits"},
        {NULL, NULL, "sha256.q", "00", "metadata 'sha256.q' has no matching 'shape.q'"},
        {NULL, NULL, "rate", "abc", "metadata rate \"abc\" is not a number"},
        {NULL, NULL, "rate", "2", "metadata rate \"2\" is not a number in [0, 1]"},
        {NULL, NULL, "step", "1.5", "metadata step \"1.5\""},
        {NULL, NULL, "seed", "-1", "metadata seed \"-1\""},
        {NULL, NULL, "policy", NULL, "metadata \"policy\" is missing"},
        {NULL, NULL, "dense", "h,g", "dense tensor 'g' (listed in metadata \"dense\") is not in the file"},
        {NULL, NULL, "dense", "h,a.values", "dense tensor 'a.values' is also a tensor of the sparse entry 'a'"},
        {NULL, NULL, "dense", "h,", "metadata \"dense\" holds an empty name"},
        {NULL, NULL, "dense", "", "unknown tensor 'h'"},
    };
    int nc = (int)(sizeof cases / sizeof *cases);
    for (int c = 0; c < nc; c++) {
        unlink(bad);
        if (rewrite(good, bad, cases[c].tensor, cases[c].repl, cases[c].key, cases[c].val) != 0) {
            CHECK(0, "case %d: cannot write the corrupted file: %s", c, sf_last_error());
            continue;
        }
        sf_clear_error();
        sf_delta *x = sf_delta_load(bad);
        const char *msg = sf_last_error();
        CHECK(x == NULL, "case %d (%s): a corrupted delta loaded", c, cases[c].want);
        CHECK(strstr(msg, bad) != NULL, "case %d: the message does not name the file: %s", c, msg);
        CHECK(strstr(msg, cases[c].want) != NULL, "case %d: expected \"%s\" in: %s", c, cases[c].want, msg);
        sf_delta_free(x);
    }
    /* a dense tensor in another dtype */
    {
        int64_t shp[2] = {2, 2};
        sf_tensor *h64 = sf_tensor_zeros(SF_F64, 2, shp);
        REQUIRE(rewrite(good, bad, "h", h64, NULL, NULL) == 0, "%s", sf_last_error());
        CHECK(sf_delta_load(bad) == NULL && strstr(sf_last_error(), "dense tensor 'h' is F64, expected F32"), "%s", sf_last_error());
    }
    /* a plain safetensors file, a missing file */
    CHECK(sf_delta_load("/nonexistent/x.safetensors") == NULL && strstr(sf_last_error(), "/nonexistent/x.safetensors"), "missing file");
    char fx[1024];
    snprintf(fx, sizeof fx, "%s/fixtures/gpt2/model.safetensors", shared_dir());
    if (exists(fx)) CHECK(sf_delta_load(fx) == NULL && strstr(sf_last_error(), "format"), "a model loaded as a delta: %s", sf_last_error());
    /* save into a missing directory fails and leaves the good file alone */
    CHECK(sf_delta_save(d, "/nonexistent/dir/d.safetensors") != SF_OK, "saved into a missing directory");
    sf_delta *again = sf_delta_load(good);
    CHECK(again != NULL, "%s", sf_last_error());
    sf_delta_free(again);
    sf_delta_free(d);
    unlink(good);
    unlink(bad);
}

/* A corrupted file made from a real delta never reaches the model. */
TEST(corrupted_real_delta_writes_nothing) {
    if (!have_fixture("gpt2")) SKIP("fixtures/gpt2 missing (set SIFT_SHARED)");
    sf_model *m = fresh_model("gpt2");
    REQUIRE(m, "%s", sf_last_error());
    sf_tensor **orig = snapshot(m);
    sf_delta *d = fake_delta(m, SF_POLICY_RANDOM, 3);
    REQUIRE(d, "%s", sf_last_error());
    char good[512], bad[512];
    tmp_path(good, sizeof good, "real");
    tmp_path(bad, sizeof bad, "realbad");
    REQUIRE(sf_delta_save(d, good) == SF_OK, "%s", sf_last_error());
    const sf_delta_entry *e = &d->e[6];
    int32_t *iv = malloc((size_t)e->k * 4);
    for (int64_t j = 0; j < e->k; j++) iv[j] = (int32_t)sf_index_get(e->idx, j);
    iv[e->k / 2] = (int32_t)e->numel; /* out of range */
    char nm[300];
    snprintf(nm, sizeof nm, "%s.indices", e->name);
    REQUIRE(rewrite(good, bad, nm, i32_tensor(iv, e->k), NULL, NULL) == 0, "%s", sf_last_error());
    sf_delta *x = sf_delta_load(bad);
    CHECK(!x && strstr(sf_last_error(), nm) && strstr(sf_last_error(), "outside"), "%s", sf_last_error());
    if (x) {
        sf_delta_apply(x, m);
        sf_delta_free(x);
    }
    const char *first;
    CHECK(diff_snapshot(m, orig, &first) == 0, "model changed (%s)", first);
    free(iv);
    sf_delta_free(d);
    free_snapshot(orig, m->n_params);
    sf_model_free(m);
    unlink(good);
    unlink(bad);
}

/* ---- composition ------------------------------------------------------------------------------------ */
TEST(indices_are_int32_in_memory_below_2_31_elements_and_int64_above) {
    /* the delta needs no tensor data: a (65536, 65536) entry has 2^32 elements, so offsets past 2^31 need
     * int64, in memory and in the file; a small one keeps int32; both survive save, load, clone and add */
    const char *hash = "0000000000000000000000000000000000000000000000000000000000000000";
    const int64_t big[2] = {65536, 65536}, small[2] = {4, 5};
    const int64_t ib[3] = {5, 3000000000LL, 4294967295LL}, is[3] = {0, 7, 19};
    const float vb[3] = {1.0f, -2.0f, 3.0f}, vs[3] = {0.5f, 0.25f, -1.0f};
    sf_delta *d = sf_delta_new("topk", 0.01, 3, 1);
    REQUIRE(d && sf_delta_add_sparse(d, "big", 2, big, 3, ib, vb, hash) == SF_OK &&
                sf_delta_add_sparse(d, "small", 2, small, 3, is, vs, hash) == SF_OK,
            "building: %s", sf_last_error());
    CHECK(d->e[0].idx.wide && !d->e[1].idx.wide, "widths: big %d small %d", d->e[0].idx.wide, d->e[1].idx.wide);
    char path[256];
    tmp_path(path, sizeof path, "wide");
    REQUIRE(sf_delta_save(d, path) == SF_OK, "save: %s", sf_last_error());
    sf_delta *l = sf_delta_load(path);
    REQUIRE(l, "load: %s", sf_last_error());
    sf_delta *c = sf_delta_clone(l), *s2 = c ? sf_delta_add(l, c, NULL) : NULL;
    REQUIRE(s2, "clone / add: %s", sf_last_error());
    const sf_delta *all[3] = {l, c, s2};
    for (int w = 0; w < 3; w++)
        for (int j = 0; j < 3; j++) {
            CHECK(all[w]->e[0].idx.wide && sf_index_get(all[w]->e[0].idx, j) == ib[j], "delta %d big[%d]", w, j);
            CHECK(!all[w]->e[1].idx.wide && sf_index_get(all[w]->e[1].idx, j) == is[j], "delta %d small[%d]", w, j);
            CHECK(all[w]->e[0].values[j] == (w == 2 ? 2 : 1) * vb[j], "delta %d big value %d", w, j);
        }
    const int64_t too_far[1] = {3000000000LL};
    CHECK(sf_delta_add_sparse(d, "small2", 2, small, 1, too_far, vs, hash) != SF_OK &&
              strstr(sf_last_error(), "outside 0..19"),
          "an offset past int32 for a small tensor: %s", sf_last_error());
    remove(path);
    sf_delta_free(d), sf_delta_free(l), sf_delta_free(c), sf_delta_free(s2);
}

TEST(composition_units) {
    sf_delta *d = small_delta(0), *dd = small_delta(1);
    int64_t coll = -1;
    sf_delta *s = sf_delta_add(d, d, &coll);
    REQUIRE(s, "%s", sf_last_error());
    CHECK(coll == 5, "collisions %lld, want 5", (long long)coll);
    CHECK(s->n == 2 && s->e[0].k == 3 && s->e[1].k == 2, "shape of the sum");
    for (int i = 0; i < 2; i++)
        for (int64_t j = 0; j < s->e[i].k; j++)
            CHECK(s->e[i].values[j] == 2 * d->e[i].values[j] && sf_index_get(s->e[i].idx, j) == sf_index_get(d->e[i].idx, j), "d + d at %d/%lld", i, (long long)j);
    CHECK(!strcmp(s->policy, "topk+topk") && s->step == 7 && s->seed == 42, "metadata of the sum");
    CHECK(fabs(s->rate - 5.0 / 30.0) < 1e-12, "effective rate %g", s->rate);
    sf_delta_free(s);
    /* dense in both: refused, naming it */
    CHECK(sf_delta_add(dd, dd, &coll) == NULL && strstr(sf_last_error(), "h: dense in both deltas"), "%s", sf_last_error());
    /* dense in one: kept */
    s = sf_delta_add(d, dd, &coll);
    CHECK(s && sf_delta_n_dense(s) == 1 && coll == 5, "sparse + dense");
    sf_delta_free(s);
    /* scaling */
    sf_delta *h = sf_delta_scale(dd, 0.5);
    REQUIRE(h, "%s", sf_last_error());
    for (int64_t j = 0; j < 3; j++) CHECK(h->e[0].values[j] == 0.5f * dd->e[0].values[j], "0.5 * d at %lld", (long long)j);
    CHECK(same_bytes(h->e[2].tensor, dd->e[2].tensor), "dense entry changed by scaling");
    CHECK(!strcmp(sf_delta_get_extra(h, "scale"), "0.5"), "scale extra %s", sf_delta_get_extra(h, "scale"));
    sf_delta *q = sf_delta_scale(h, 0.5);
    CHECK(q && !strcmp(sf_delta_get_extra(q, "scale"), "0.25") && q->e[0].values[0] == 0.125f, "0.5 * 0.5 * d");
    sf_delta_free(q);
    sf_delta_free(h);
    CHECK(sf_delta_scale(d, 1e39) == NULL && strstr(sf_last_error(), "overflows"), "overflow: %s", sf_last_error());
    /* partial overlap: {0..9} + {5..14} -> 5 collisions, 15 indices */
    char hex[65], hex2[65];
    hex_of("w", 1, hex);
    hex_of("other", 5, hex2);
    int64_t shape[1] = {100}, i1[10], i2[10];
    float v1[10], v2[10];
    for (int j = 0; j < 10; j++) {
        i1[j] = j;
        i2[j] = j + 5;
        v1[j] = (float)j;
        v2[j] = 100.0f + (float)j;
    }
    sf_delta *p1 = sf_delta_new("random", 0.1, 1, 1), *p2 = sf_delta_new("random", 0.1, 2, 2);
    sf_delta_add_sparse(p1, "w", 1, shape, 10, i1, v1, hex);
    sf_delta_add_sparse(p2, "w", 1, shape, 10, i2, v2, hex);
    sf_delta_add_sparse(p2, "only_b", 1, shape, 10, i2, v2, hex);
    s = sf_delta_add(p1, p2, &coll);
    REQUIRE(s, "%s", sf_last_error());
    CHECK(coll == 5 && s->n == 2 && s->e[0].k == 15 && s->e[1].k == 10, "overlap: coll %lld k %lld", (long long)coll, (long long)s->e[0].k);
    for (int64_t j = 0; j < 15; j++) {
        float want = j < 5 ? (float)j : j < 10 ? (float)j + 100.0f + (float)(j - 5) : 100.0f + (float)(j - 5);
        CHECK(sf_index_get(s->e[0].idx, j) == j && s->e[0].values[j] == want, "overlap at %lld: %g vs %g", (long long)j, s->e[0].values[j], want);
    }
    CHECK(s->step == 2 && !strcmp(s->policy, "random+random"), "metadata");
    sf_delta_free(s);
    /* conflicts: different base hash and shape, both listed */
    sf_delta *c1 = sf_delta_new("x", 0, 0, 0), *c2 = sf_delta_new("y", 0, 0, 0);
    int64_t shape2[1] = {50};
    sf_delta_add_sparse(c1, "u", 1, shape, 10, i1, v1, hex);
    sf_delta_add_sparse(c2, "u", 1, shape, 10, i1, v1, hex2);
    sf_delta_add_sparse(c1, "v", 1, shape, 10, i1, v1, hex);
    sf_delta_add_sparse(c2, "v", 1, shape2, 10, i1, v1, hex);
    CHECK(sf_delta_add(c1, c2, &coll) == NULL && strstr(sf_last_error(), "u: base SHA-256 differs") &&
              strstr(sf_last_error(), "v: shape (100,) vs (50,)"),
          "%s", sf_last_error());
    /* hand-built entries are validated */
    int64_t badi[3] = {4, 2, 9};
    CHECK(sf_delta_add_sparse(c1, "z", 1, shape, 3, badi, v1, hex) != SF_OK && strstr(sf_last_error(), "not strictly ascending"),
          "unsorted accepted");
    CHECK(sf_delta_add_sparse(c1, "u", 1, shape, 3, i1, v1, hex) != SF_OK && strstr(sf_last_error(), "twice"), "duplicate name");
    CHECK(sf_delta_add_sparse(c1, "z", 1, shape, 3, i1, v1, "nothex") != SF_OK, "bad hash accepted");
    sf_delta_free(c1);
    sf_delta_free(c2);
    sf_delta_free(p1);
    sf_delta_free(p2);
    sf_delta_free(d);
    sf_delta_free(dd);
}

/* d + d, 0.5 * d and disjoint random masks on a real model. */
TEST(composition_on_a_model) {
    if (!have_fixture("gpt2")) SKIP("fixtures/gpt2 missing (set SIFT_SHARED)");
    sf_model *m = fresh_model("gpt2");
    REQUIRE(m, "%s", sf_last_error());
    sf_tensor **orig = snapshot(m);
    sf_delta *d = fake_delta(m, SF_POLICY_RANDOM, 11);
    REQUIRE(d, "%s", sf_last_error());
    int64_t coll = -1;
    sf_delta *dd = sf_delta_add(d, d, &coll), *half = sf_delta_scale(d, 0.5);
    REQUIRE(dd && half, "%s", sf_last_error());
    CHECK(coll == sf_delta_n_values(d), "d + d: %lld collisions, %lld values", (long long)coll, (long long)sf_delta_n_values(d));
    sf_delta *ops[2] = {dd, half};
    float mult[2] = {2.0f, 0.5f};
    for (int o = 0; o < 2; o++) {
        REQUIRE(sf_delta_apply(ops[o], m) == SF_OK, "%s", sf_last_error());
        int bad = 0;
        for (int i = 0; i < d->n; i++) {
            const float *w = sf_f32(sf_model_param(m, d->e[i].name));
            const float *w0 = NULL;
            for (int p = 0; p < m->n_params; p++)
                if (!strcmp(m->params[p].name, d->e[i].name)) w0 = sf_f32(orig[p]);
            for (int64_t j = 0; j < d->e[i].k; j++) bad += w[sf_index_get(d->e[i].idx, j)] != w0[sf_index_get(d->e[i].idx, j)] + mult[o] * d->e[i].values[j];
        }
        CHECK(bad == 0, "%s: %d weights are not base + %g * values", o ? "0.5 * d" : "d + d", bad, mult[o]);
        REQUIRE(sf_delta_unapply(ops[o], m) == SF_OK, "%s", sf_last_error());
    }
    /* disjoint masks: d2 takes its indices from the complement of d's */
    sf_sparse_set *s2 = make_set(m, SF_POLICY_CUSTOM, 0.05, 0);
    REQUIRE(s2, "%s", sf_last_error());
    sf_sparse_begin_selection(s2);
    for (int i = 0; i < s2->n; i++) {
        const sf_delta_entry *e = sf_delta_find(d, s2->t[i].name);
        int64_t k = e->k, n = 0, *idx = malloc((size_t)k * sizeof *idx);
        for (int64_t x = 0, j = 0; x < e->numel && n < k; x++) {
            while (j < e->k && sf_index_get(e->idx, j) < x) j++;
            if (j < e->k && sf_index_get(e->idx, j) == x) continue;
            idx[n++] = x;
        }
        REQUIRE(sf_sparse_set_indices(s2, i, idx, n) == SF_OK, "%s", sf_last_error());
        free(idx);
    }
    REQUIRE(sf_sparse_finish_selection(s2) == SF_OK && fake_steps(s2, 2) == 0, "%s", sf_last_error());
    sf_delta *d2 = sf_delta_from_sparse(s2, NULL, NULL, 0, "mine");
    sf_sparse_restore(s2);
    sf_sparse_free(s2);
    REQUIRE(d2, "%s", sf_last_error());
    CHECK(!strcmp(d2->policy, "mine"), "policy name %s", d2->policy);
    sf_delta *sum = sf_delta_add(d, d2, &coll);
    REQUIRE(sum, "%s", sf_last_error());
    CHECK(coll == 0 && sf_delta_n_values(sum) == sf_delta_n_values(d) + sf_delta_n_values(d2), "disjoint: %lld collisions",
          (long long)coll);
    REQUIRE(sf_delta_apply(sum, m) == SF_OK, "%s", sf_last_error());
    /* each part applied alone to a fresh copy gives the same weights at its indices */
    int bad = 0;
    for (int i = 0; i < d->n; i++) {
        const float *w = sf_f32(sf_model_param(m, d->e[i].name));
        const sf_delta_entry *e2 = sf_delta_find(d2, d->e[i].name);
        const float *w0 = NULL;
        for (int p = 0; p < m->n_params; p++)
            if (!strcmp(m->params[p].name, d->e[i].name)) w0 = sf_f32(orig[p]);
        for (int64_t j = 0; j < d->e[i].k; j++) bad += w[sf_index_get(d->e[i].idx, j)] != w0[sf_index_get(d->e[i].idx, j)] + d->e[i].values[j];
        for (int64_t j = 0; j < e2->k; j++) bad += w[sf_index_get(e2->idx, j)] != w0[sf_index_get(e2->idx, j)] + e2->values[j];
    }
    CHECK(bad == 0, "%d weights wrong after applying d1 + d2", bad);
    REQUIRE(sf_delta_unapply(sum, m) == SF_OK, "%s", sf_last_error());
    const char *first;
    CHECK(diff_snapshot(m, orig, &first) == 0, "unapply of the sum left %s changed", first);
    /* two deltas cannot be stacked: the second no longer sees its base */
    REQUIRE(sf_delta_apply(d, m) == SF_OK, "%s", sf_last_error());
    CHECK(sf_delta_apply(d2, m) != SF_OK && strstr(sf_last_error(), "base SHA-256 differs"), "stacked: %s", sf_last_error());
    sf_delta_unapply(d, m);
    CHECK(diff_snapshot(m, orig, &first) == 0, "stacking attempt left %s changed", first);
    sf_delta_free(sum);
    sf_delta_free(d2);
    sf_delta_free(dd);
    sf_delta_free(half);
    sf_delta_free(d);
    free_snapshot(orig, m->n_params);
    sf_model_free(m);
}

/* Freeing an applied delta keeps the model's (modified) weights and leaks nothing. */
TEST(free_applied_delta) {
    if (!have_fixture("gpt2")) SKIP("fixtures/gpt2 missing (set SIFT_SHARED)");
    sf_model *m = fresh_model("gpt2");
    REQUIRE(m, "%s", sf_last_error());
    sf_delta *d = fake_delta(m, SF_POLICY_MAGNITUDE, 0);
    REQUIRE(d && sf_delta_apply(d, m) == SF_OK, "%s", sf_last_error());
    sf_delta_free(d);
    sf_model_free(m);
    CHECK(sf_delta_from_sparse(NULL, NULL, NULL, 0, NULL) == NULL && strstr(sf_last_error(), "no sparse set"), "NULL set");
}

TEST_MAIN()
