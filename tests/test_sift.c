/* test_sift.c — SIFT against the Hugging Face references in ../shared/fixtures (gpt2, llama, roberta-cls):
 * the engine's top-k selection on batch 0 equals sift.idx.* (or overlaps >= 99 % where float32 ties
 * decide); with those indices the 3-step SIFT trajectory (sift.<param>, sift.losses) and the 3-step full
 * AdamW trajectory (adamw.<param>, adamw.losses) match within 3e-4 absolute; the sampled-product
 * gradient equals the gather path within 1e-5 relative; no dense gradient of a target survives backward.
 * Plus unit tests of budgets, top-k ties, policies and index validation. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/model.h"
#include "../core/ops.h"
#include "../core/optim.h"
#include "../core/safetensors.h"
#include "../core/sift.h"
#include "../core/threads.h"
#include "test.h"

static int fixture_path(char *buf, size_t n, const char *fx, const char *file) {
    snprintf(buf, n, "%s/fixtures/%s%s%s", shared_dir(), fx, file ? "/" : "", file ? file : "");
    struct stat st;
    return stat(buf, &st) == 0;
}

static const sf_adamw_hparams HP = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};

/* Splits a comma-separated metadata list into names (static storage, freed by the caller). */
static int split_names(const char *csv, char ***out) {
    int n = 0;
    char **names = NULL;
    if (!csv || !*csv) {
        *out = NULL;
        return 0;
    }
    char *copy = strdup(csv), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        names = realloc(names, (size_t)(n + 1) * sizeof *names);
        names[n++] = strdup(tok);
    }
    free(copy);
    *out = names;
    return n;
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

typedef struct {
    sf_model *m;
    sf_st_file *ref;
    sf_task task;
    sf_tensor *ids[3], *mask[3], *labels[3];
} fixture;

static int open_fixture(fixture *f, const char *name, sf_task task) {
    char dir[1024], refp[1100];
    memset(f, 0, sizeof *f);
    if (!fixture_path(dir, sizeof dir, name, NULL)) return 0;
    fixture_path(refp, sizeof refp, name, "reference.safetensors");
    sf_load_options o = {.task = task};
    f->m = sf_model_load(dir, &o);
    f->ref = sf_st_open(refp);
    f->task = task;
    if (!f->m || !f->ref) return -1;
    for (int b = 0; b < 3; b++) {
        char key[64];
        snprintf(key, sizeof key, "batch%d.input_ids", b);
        f->ids[b] = sf_st_load(f->ref, key);
        snprintf(key, sizeof key, "batch%d.attention_mask", b);
        if (sf_st_find(f->ref, key)) f->mask[b] = sf_st_load(f->ref, key);
        snprintf(key, sizeof key, "batch%d.labels", b);
        if (task == SF_TASK_CLASSIFY) f->labels[b] = sf_st_load(f->ref, key);
        else {
            f->labels[b] = f->ids[b];
            sf_tensor_retain(f->ids[b]);
        }
    }
    return 1;
}

static void close_fixture(fixture *f) {
    for (int b = 0; b < 3; b++) {
        sf_tensor_release(f->ids[b]);
        sf_tensor_release(f->mask[b]);
        sf_tensor_release(f->labels[b]);
    }
    sf_st_close(f->ref);
    sf_model_free(f->m);
}

static double run_batch(fixture *f, int b) {
    if (sf_model_forward(f->m, f->ids[b], f->mask[b], f->labels[b], 1) != SF_OK) return NAN;
    double loss = sf_f32(f->m->loss)[0];
    if (sf_model_backward(f->m) != SF_OK) return NAN;
    return loss;
}

static double max_diff_tensor(const sf_tensor *a, const sf_tensor *b) {
    double m = 0;
    for (int64_t i = 0; i < sf_tensor_numel(a); i++) {
        double d = fabs(sf_tensor_get_flat(a, i) - sf_tensor_get_flat(b, i));
        if (!(d <= m)) m = d;
    }
    return m;
}

/* Compares every parameter with <prefix><name> in the reference. */
static void compare_params(fixture *f, const char *prefix, double tol, const char *what) {
    double worst = 0;
    const char *wn = "";
    for (int i = 0; i < f->m->n_params; i++) {
        char key[300];
        snprintf(key, sizeof key, "%s%s", prefix, f->m->params[i].name);
        sf_tensor *r = sf_st_load_f32(f->ref, key);
        CHECK(r != NULL, "%s: reference lacks %s", what, key);
        if (!r) continue;
        double d = max_diff_tensor(f->m->params[i].t, r);
        if (!(d <= worst)) {
            worst = d;
            wn = f->m->params[i].name;
        }
        CHECK(d <= tol, "%s: %s differs by %.3g (tol %.1g)", what, f->m->params[i].name, d, tol);
        sf_tensor_release(r);
    }
    fprintf(stderr, "    %s: worst parameter difference %.2e (%s)\n", what, worst, wn);
}

static void compare_losses(fixture *f, const char *key, const double *losses, double tol) {
    sf_tensor *r = sf_st_load_f32(f->ref, key);
    REQUIRE(r && sf_tensor_numel(r) == 3, "%s missing", key);
    for (int i = 0; i < 3; i++) CHECK(fabs(losses[i] - sf_f32(r)[i]) <= tol, "%s[%d] %.7f vs %.7f", key, i, losses[i], sf_f32(r)[i]);
    sf_tensor_release(r);
}

/* ---- full AdamW trajectory ---- */
static void adamw_trajectory(const char *name, sf_task task) {
    fixture f;
    int ok = open_fixture(&f, name, task);
    if (ok == 0) SKIP("fixtures/%s missing (set SIFT_SHARED)", name);
    REQUIRE(ok > 0, "%s", sf_last_error());
    sf_model_set_trainable(f.m, 1);
    sf_tensor **params = malloc((size_t)f.m->n_params * sizeof *params);
    for (int i = 0; i < f.m->n_params; i++) params[i] = f.m->params[i].t;
    sf_adamw *opt = sf_adamw_new(params, NULL, f.m->n_params, &HP);
    REQUIRE(opt, "%s", sf_last_error());
    double losses[3];
    for (int b = 0; b < 3; b++) {
        losses[b] = run_batch(&f, b);
        REQUIRE(!isnan(losses[b]), "%s", sf_last_error());
        sf_adamw_step(opt);
        sf_adamw_zero_grad(opt);
    }
    compare_losses(&f, "adamw.losses", losses, 3e-4);
    compare_params(&f, "adamw.", 3e-4, name);
    sf_adamw_free(opt);
    free(params);
    close_fixture(&f);
}

TEST(adamw_trajectory_gpt2) { adamw_trajectory("gpt2", SF_TASK_LM); }
TEST(adamw_trajectory_llama) { adamw_trajectory("llama", SF_TASK_LM); }
TEST(adamw_trajectory_roberta_cls) { adamw_trajectory("roberta-cls", SF_TASK_CLASSIFY); }

/* ---- SIFT ---- */
typedef struct {
    char **targets, **dense;
    int n_targets, n_dense;
} sift_spec;

static void read_spec(fixture *f, sift_spec *s) {
    s->n_targets = split_names(sf_st_metadata_get(f->ref, "sift_targets"), &s->targets);
    s->n_dense = split_names(sf_st_metadata_get(f->ref, "sift_dense"), &s->dense);
}

/* Freezes everything, then makes the dense head trainable; returns a dense optimizer over it (or NULL). */
static sf_adamw *setup_dense(fixture *f, const sift_spec *spec) {
    sf_model_set_trainable(f->m, 0);
    if (!spec->n_dense) return NULL;
    sf_tensor **p = malloc((size_t)spec->n_dense * sizeof *p);
    for (int i = 0; i < spec->n_dense; i++) {
        p[i] = sf_model_param(f->m, spec->dense[i]);
        sf_param_set_trainable(p[i], 1);
    }
    sf_adamw *o = sf_adamw_new(p, NULL, spec->n_dense, &HP);
    free(p);
    return o;
}

static sf_sparse_set *make_set(fixture *f, const sift_spec *spec, sf_policy pol) {
    sf_tensor **w = malloc((size_t)spec->n_targets * sizeof *w);
    for (int i = 0; i < spec->n_targets; i++) w[i] = sf_model_param(f->m, spec->targets[i]);
    sf_sparse_set *s = sf_sparse_new(w, (const char *const *)spec->targets, spec->n_targets, 0.05, pol, 0);
    free(w);
    return s;
}

static void sift_selection(const char *name, sf_task task) {
    fixture f;
    int ok = open_fixture(&f, name, task);
    if (ok == 0) SKIP("fixtures/%s missing", name);
    REQUIRE(ok > 0, "%s", sf_last_error());
    sift_spec spec;
    read_spec(&f, &spec);
    REQUIRE(spec.n_targets > 0, "no sift_targets metadata");
    sf_adamw *dense = setup_dense(&f, &spec);
    sf_sparse_set *s = make_set(&f, &spec, SF_POLICY_TOPK);
    REQUIRE(s, "%s", sf_last_error());
    sf_sparse_begin_selection(s);
    REQUIRE(!isnan(run_batch(&f, 0)), "%s", sf_last_error());
    s->calib_batches = 1;
    REQUIRE(sf_sparse_finish_selection(s) == SF_OK, "%s", sf_last_error());
    for (int i = 0; i < s->n; i++) {
        char key[300];
        snprintf(key, sizeof key, "sift.idx.%s", spec.targets[i]);
        sf_tensor *r = sf_st_load(f.ref, key);
        REQUIRE(r, "missing %s", key);
        int64_t k = sf_tensor_numel(r), same = 0;
        CHECK(k == s->t[i].k, "%s: k %lld vs reference %lld", spec.targets[i], (long long)s->t[i].k, (long long)k);
        const int64_t *ri = sf_tensor_data(r);
        for (int64_t a = 0, b = 0; a < k && b < s->t[i].k;) { /* both ascending */
            int64_t e = sf_index_get(s->t[i].idx, b);
            if (ri[a] == e) same++, a++, b++;
            else if (ri[a] < e) a++;
            else b++;
        }
        CHECK(same >= (int64_t)ceil(0.99 * (double)k), "%s: %lld of %lld indices agree", spec.targets[i], (long long)same, (long long)k);
        if (same != k) fprintf(stderr, "    %s: %lld/%lld indices agree (float32 ties)\n", spec.targets[i], (long long)same, (long long)k);
        CHECK(s->t[i].w->grad == NULL, "dense gradient of target %s survived backward", spec.targets[i]);
        sf_tensor_release(r);
    }
    sf_sparse_free(s);
    sf_adamw_free(dense);
    free_names(spec.targets, spec.n_targets);
    free_names(spec.dense, spec.n_dense);
    close_fixture(&f);
}

TEST(sift_selection_gpt2) { sift_selection("gpt2", SF_TASK_LM); }
TEST(sift_selection_llama) { sift_selection("llama", SF_TASK_LM); }
TEST(sift_selection_roberta_cls) { sift_selection("roberta-cls", SF_TASK_CLASSIFY); }

static void sift_trajectory(const char *name, sf_task task, sf_sparse_mode mode) {
    fixture f;
    int ok = open_fixture(&f, name, task);
    if (ok == 0) SKIP("fixtures/%s missing", name);
    REQUIRE(ok > 0, "%s", sf_last_error());
    sift_spec spec;
    read_spec(&f, &spec);
    sf_adamw *dense = setup_dense(&f, &spec);
    sf_sparse_set *s = make_set(&f, &spec, SF_POLICY_CUSTOM);
    REQUIRE(s, "%s", sf_last_error());
    sf_sparse_set_mode(s, mode);
    /* calibration on batch 0 with the reference's indices (custom policy) */
    sf_sparse_begin_selection(s);
    double losses[3];
    losses[0] = run_batch(&f, 0);
    REQUIRE(!isnan(losses[0]), "%s", sf_last_error());
    for (int i = 0; i < s->n; i++) {
        char key[300];
        snprintf(key, sizeof key, "sift.idx.%s", spec.targets[i]);
        sf_tensor *r = sf_st_load(f.ref, key);
        REQUIRE(r && sf_sparse_set_indices(s, i, sf_tensor_data(r), sf_tensor_numel(r)) == SF_OK, "%s", sf_last_error());
        sf_tensor_release(r);
    }
    s->calib_batches = 1;
    REQUIRE(sf_sparse_finish_selection(s) == SF_OK, "%s", sf_last_error());
    for (int b = 0; b < 3; b++) {
        if (b > 0) {
            losses[b] = run_batch(&f, b);
            REQUIRE(!isnan(losses[b]), "%s", sf_last_error());
            for (int i = 0; i < s->n; i++)
                CHECK(s->t[i].w->grad == NULL && s->t[i].w->ag_grad == NULL, "dense gradient of %s resident", s->t[i].name);
        }
        REQUIRE(sf_sparse_step(s, &HP) == SF_OK, "%s", sf_last_error());
        if (dense) {
            sf_adamw_step(dense);
            sf_adamw_zero_grad(dense);
        }
    }
    compare_losses(&f, "sift.losses", losses, 3e-4);
    compare_params(&f, "sift.", 3e-4, mode == SF_SPARSE_SAMPLED ? "sift (sampled)" : "sift (gather)");
    sf_sparse_free(s);
    sf_adamw_free(dense);
    free_names(spec.targets, spec.n_targets);
    free_names(spec.dense, spec.n_dense);
    close_fixture(&f);
}

TEST(sift_trajectory_gpt2) { sift_trajectory("gpt2", SF_TASK_LM, SF_SPARSE_SAMPLED); }
TEST(sift_trajectory_gpt2_gather) { sift_trajectory("gpt2", SF_TASK_LM, SF_SPARSE_GATHER); }
TEST(sift_trajectory_llama) { sift_trajectory("llama", SF_TASK_LM, SF_SPARSE_SAMPLED); }
TEST(sift_trajectory_roberta_cls) { sift_trajectory("roberta-cls", SF_TASK_CLASSIFY, SF_SPARSE_SAMPLED); }

/* The sampled dense-dense product and the gather path give the same increment gradient. */
TEST(sampled_gradient_equals_gather) {
    const char *fx[3] = {"gpt2", "llama", "roberta-cls"};
    sf_task tasks[3] = {SF_TASK_LM, SF_TASK_LM, SF_TASK_CLASSIFY};
    for (int q = 0; q < 3; q++) {
        fixture f;
        int ok = open_fixture(&f, fx[q], tasks[q]);
        if (ok == 0) SKIP("fixtures missing");
        REQUIRE(ok > 0, "%s", sf_last_error());
        sift_spec spec;
        read_spec(&f, &spec);
        sf_adamw *dense = setup_dense(&f, &spec);
        sf_sparse_set *s = make_set(&f, &spec, SF_POLICY_TOPK);
        sf_sparse_begin_selection(s);
        run_batch(&f, 0);
        sf_sparse_finish_selection(s);
        float **gs = calloc((size_t)s->n, sizeof *gs);
        for (int mode = 0; mode < 2; mode++) {
            sf_sparse_set_mode(s, mode ? SF_SPARSE_GATHER : SF_SPARSE_SAMPLED);
            sf_sparse_zero_grad(s);
            run_batch(&f, 1);
            for (int i = 0; i < s->n; i++) {
                if (!mode) {
                    gs[i] = malloc((size_t)s->t[i].k * sizeof(float));
                    memcpy(gs[i], s->t[i].grad, (size_t)s->t[i].k * sizeof(float));
                } else {
                    double mx = 0, d = 0;
                    for (int64_t j = 0; j < s->t[i].k; j++) {
                        mx = fmax(mx, fabs(s->t[i].grad[j]));
                        d = fmax(d, fabs(s->t[i].grad[j] - gs[i][j]));
                    }
                    CHECK(d <= 1e-5 * mx, "%s %s: sampled vs gather %.3g (max %.3g)", fx[q], s->t[i].name, d, mx);
                    free(gs[i]);
                }
            }
        }
        free(gs);
        sf_sparse_free(s);
        sf_adamw_free(dense);
        free_names(spec.targets, spec.n_targets);
        free_names(spec.dense, spec.n_dense);
        close_fixture(&f);
    }
}

/* ---- units ---- */
/* The sampled kernel against its reference loop: both layouts, partial row chunks, one and many entries,
 * int32 and int64 offsets, one and two threads (the same result bit for bit). */
TEST(sampled_kernel_matches_reference) {
    int64_t sizes[4][3] = {{5, 3, 4}, {37, 16, 24}, {300, 64, 96}, {1024, 32, 200}}; /* N, C, OC */
    unsigned long long seed = 1;
    for (int q = 0; q < 4; q++)
        for (int lay = 0; lay < 2; lay++) {
            int64_t N = sizes[q][0], C = sizes[q][1], OC = sizes[q][2], numel = C * OC;
            float *dout = malloc((size_t)(N * OC) * 4), *inp = malloc((size_t)(N * C) * 4);
            for (int64_t i = 0; i < N * OC; i++) dout[i] = (float)((seed = seed * 6364136223846793005ULL + 1) >> 40) / 16777216.0f - 0.5f;
            for (int64_t i = 0; i < N * C; i++) inp[i] = (float)((seed = seed * 6364136223846793005ULL + 1) >> 40) / 16777216.0f - 0.5f;
            int64_t k = numel / 7 + 1;
            sf_index_array idx = sf_index_alloc(k, numel), wide = sf_index_alloc(k, (int64_t)1 << 31);
            CHECK(!idx.wide && wide.wide, "index width: numel %lld -> %d, 2^31 -> %d", (long long)numel, idx.wide, wide.wide);
            for (int64_t j = 0; j < k; j++) {
                sf_index_set(idx, j, j * 7 < numel ? j * 7 : numel - 1);
                sf_index_set(wide, j, j * 7 < numel ? j * 7 : numel - 1);
            }
            float *a = calloc((size_t)k, 4), *b = calloc((size_t)k, 4), *c = calloc((size_t)k, 4);
            int64_t ns = sf_linear_weight_grad_sampled_scratch(k, N, C, OC);
            float *scr = malloc((size_t)ns * 4);
            sf_linear_weight_grad_sampled(a, idx, k, dout, inp, scr, ns, N, C, OC, (sf_wlayout)lay);
            sf_linear_weight_grad_sampled(a, idx, k, dout, inp, scr, ns, N, C, OC, (sf_wlayout)lay); /* accumulates */
            sf_linear_weight_grad_sampled_ref(b, idx, k, dout, inp, N, C, OC, (sf_wlayout)lay);
            sf_linear_weight_grad_sampled(c, wide, k, dout, inp, scr, ns, N, C, OC, (sf_wlayout)lay);
            sf_linear_weight_grad_sampled(c, wide, k, dout, inp, scr, ns, N, C, OC, (sf_wlayout)lay);
            CHECK(!memcmp(a, c, (size_t)k * 4), "int32 and int64 offsets disagree");
            const int threads = sf_get_threads();
            sf_set_threads(1);
            memset(c, 0, (size_t)k * 4);
            sf_linear_weight_grad_sampled(c, idx, k, dout, inp, scr, ns, N, C, OC, (sf_wlayout)lay);
            sf_linear_weight_grad_sampled(c, idx, k, dout, inp, scr, ns, N, C, OC, (sf_wlayout)lay);
            sf_set_threads(threads);
            CHECK(!memcmp(a, c, (size_t)k * 4), "one and %d threads disagree", threads);
            double worst = 0, mx = 0;
            for (int64_t j = 0; j < k; j++) {
                worst = fmax(worst, fabs(a[j] - 2 * b[j]));
                mx = fmax(mx, fabs(b[j]));
            }
            CHECK(worst <= 1e-5 * fmax(mx, 1e-3) * 2, "N %lld C %lld OC %lld layout %d: diff %.3g (max %.3g)", (long long)N,
                  (long long)C, (long long)OC, lay, worst, mx);
            free(dout);
            free(inp);
            sf_index_free(&idx);
            sf_index_free(&wide);
            free(a);
            free(b);
            free(c);
            free(scr);
        }
}

/* The AdamW kernel against its reference over 3 steps (parallel path), and the dense optimizer's fused
 * zeroing: after sf_adamw_step the gradient is zero and known to be; the tape's next accumulation
 * clears that mark so zero_grad zeroes again. */
TEST(count_nonfinite_finds_every_inf_and_nan) {
    /* the fast all-finite sweep must never hide one: Inf, -Inf, NaN at the ends, in the middle and past the
     * parallel threshold; the largest finite values do not count */
    const int64_t n = 300001;
    float *g = malloc((size_t)n * sizeof *g);
    for (int64_t i = 0; i < n; i++) g[i] = (float)(i % 13) - 6.0f;
    CHECK(sf_count_nonfinite(g, n) == 0, "finite values counted");
    g[0] = FLT_MAX, g[1] = -FLT_MAX, g[2] = FLT_MIN;
    CHECK(sf_count_nonfinite(g, n) == 0, "extreme finite values counted");
    const int64_t at[5] = {0, 17, n / 2, n - 2, n - 1};
    const float bad[3] = {INFINITY, -INFINITY, NAN};
    for (int k = 0; k < 5; k++)
        for (int b = 0; b < 3; b++) {
            const float keep = g[at[k]];
            g[at[k]] = bad[b];
            CHECK(sf_count_nonfinite(g, n) == 1, "%g at %lld not counted once", (double)bad[b], (long long)at[k]);
            CHECK(sf_count_nonfinite(g, 5) == (at[k] < 5), "short array, %g at %lld", (double)bad[b], (long long)at[k]);
            g[at[k]] = keep;
        }
    g[5] = INFINITY, g[6] = -INFINITY, g[7] = NAN;
    CHECK(sf_count_nonfinite(g, n) == 3, "three non-finite values");
    free(g);
}

TEST(adamw_kernel_and_fused_zeroing) {
    const int64_t n = 100003;
    float *p1 = malloc(n * 4), *p2 = malloc(n * 4), *g = malloc(n * 4), *m1 = calloc(n, 4), *m2 = calloc(n, 4),
          *v1 = calloc(n, 4), *v2 = calloc(n, 4);
    for (int64_t i = 0; i < n; i++) p1[i] = p2[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    sf_adamw_hparams h = {1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f};
    for (int t = 1; t <= 3; t++) {
        for (int64_t i = 0; i < n; i++) g[i] = (float)((i * 13 + t * 7) % 97) / 40.0f - 1.2f;
        sf_adamw_update(p1, g, m1, v1, n, &h, t, 1.0f);
        sf_adamw_update_ref(p2, g, m2, v2, n, &h, t, 1.0f);
    }
    double worst = 0;
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(p1[i] - p2[i]));
    CHECK(worst <= 1e-6, "AdamW kernel vs reference: %g", worst);
    free(p1); free(p2); free(g); free(m1); free(m2); free(v1); free(v2);

    int64_t shape[1] = {n};
    sf_tensor *x = sf_tensor_zeros_f32(1, shape);
    sf_param_set_trainable(x, 1);
    sf_adamw *opt = sf_adamw_new(&x, NULL, 1, &h);
    for (int step = 0; step < 2; step++) {
        sf_graph *gr = sf_graph_new();
        sf_tensor *y = sf_sum(gr, x);
        REQUIRE(y && sf_graph_backward(gr, y, NULL) == SF_OK, "%s", sf_last_error());
        sf_graph_free(gr);
        CHECK(!x->grad_zero && sf_f32(x->grad)[n - 1] == 1.0f, "step %d: gradient of sum is not 1", step);
        REQUIRE(sf_adamw_step(opt) == SF_OK, "%s", sf_last_error());
        int64_t nonzero = 0;
        for (int64_t i = 0; i < n; i++) nonzero += sf_f32(x->grad)[i] != 0.0f;
        CHECK(x->grad_zero && nonzero == 0, "step %d: %lld gradient entries left after the step", step, (long long)nonzero);
        CHECK(fabsf(sf_f32(x)[0] + 1e-2f * (float)(step + 1)) < 1e-4f, "step %d: weight %g", step, sf_f32(x)[0]);
        sf_adamw_zero_grad(opt); /* free: already zero */
    }
    sf_adamw_free(opt);
    sf_tensor_release(x);
}

TEST(budget_formula) {
    CHECK(sf_sparse_budget(0.05, 3072) == 154, "0.05 * 3072");
    CHECK(sf_sparse_budget(0.01, 100) == 2, "0.01*100 -> floor(1)+1 = 2");
    CHECK(sf_sparse_budget(1.0, 10) == 10, "capped at numel");
    CHECK(sf_sparse_budget(0.0, 10) == 1, "rate 0 -> 1");
    CHECK(sf_sparse_budget(0.99, 10) == 10, "0.99*10 -> 10");
}

TEST(topk_ties_and_nan) {
    float sc[8] = {1, 3, 3, 2, NAN, 3, 0, 5};
    int64_t out[3];
    REQUIRE(sf_topk_indices(sc, 8, 3, out) == SF_OK, "%s", sf_last_error());
    CHECK(out[0] == 1 && out[1] == 2 && out[2] == 7, "got %lld %lld %lld", (long long)out[0], (long long)out[1], (long long)out[2]);
    int64_t big = 100000, k = 1000;
    float *s = malloc((size_t)big * sizeof *s);
    for (int64_t i = 0; i < big; i++) s[i] = (float)((i * 7919) % big);
    int64_t *o = malloc((size_t)k * sizeof *o);
    REQUIRE(sf_topk_indices(s, big, k, o) == SF_OK, "topk");
    int good = 1;
    for (int64_t j = 0; j < k; j++) good &= s[o[j]] >= (float)(big - k) && (j == 0 || o[j] > o[j - 1]);
    CHECK(good, "large top-k wrong or not ascending");
    free(s);
    free(o);
}

TEST(policies_and_index_validation) {
    int64_t shape[2] = {20, 10};
    sf_tensor *w = sf_tensor_zeros_f32(2, shape);
    for (int i = 0; i < 200; i++) sf_f32(w)[i] = (float)((i * 37) % 200) - 100.0f;
    const char *name = "w";
    for (int pol = SF_POLICY_RANDOM; pol <= SF_POLICY_MAGNITUDE; pol++) {
        sf_sparse_set *s = sf_sparse_new(&w, &name, 1, 0.1, (sf_policy)pol, 42);
        REQUIRE(s, "%s", sf_last_error());
        sf_sparse_begin_selection(s);
        REQUIRE(sf_sparse_finish_selection(s) == SF_OK, "%s", sf_last_error());
        CHECK(s->t[0].k == 21, "k = %lld", (long long)s->t[0].k);
        CHECK(!s->t[0].idx.wide && sf_sparse_memory_of(s).indices == 21 * sizeof(int32_t), "indices are not int32 in memory");
        for (int64_t j = 1; j < s->t[0].k; j++)
            CHECK(sf_index_get(s->t[0].idx, j) > sf_index_get(s->t[0].idx, j - 1), "not ascending");
        if (pol == SF_POLICY_MAGNITUDE)
            for (int64_t j = 0; j < s->t[0].k; j++)
                CHECK(fabsf(sf_f32(w)[sf_index_get(s->t[0].idx, j)]) >= 90.0f, "magnitude picked a small entry");
        int64_t bad[2] = {5, 5};
        CHECK(sf_sparse_set_indices(s, 0, bad, 2) != SF_OK && strstr(sf_last_error(), "twice"), "duplicate accepted");
        int64_t oob[1] = {200};
        CHECK(sf_sparse_set_indices(s, 0, oob, 1) != SF_OK && strstr(sf_last_error(), "outside"), "out of range accepted");
        sf_sparse_free(s);
    }
    /* random masks are seeded */
    sf_sparse_set *a = sf_sparse_new(&w, &name, 1, 0.1, SF_POLICY_RANDOM, 1);
    sf_sparse_begin_selection(a);
    sf_sparse_finish_selection(a);
    int64_t ia[21], ib[21];
    sf_index_to_i64(a->t[0].idx, 21, ia);
    sf_sparse_free(a);
    a = sf_sparse_new(&w, &name, 1, 0.1, SF_POLICY_RANDOM, 1);
    sf_sparse_begin_selection(a);
    sf_sparse_finish_selection(a);
    sf_index_to_i64(a->t[0].idx, 21, ib);
    CHECK(!memcmp(ia, ib, sizeof ia), "same seed, different mask");
    sf_sparse_free(a);
    CHECK(w->hook == NULL && w->sparse == NULL, "free left a hook behind");
    CHECK(sf_sparse_new(&w, &name, 1, 1.5, SF_POLICY_TOPK, 0) == NULL, "rate 1.5 accepted");
    sf_tensor_release(w);
}

TEST_MAIN()
