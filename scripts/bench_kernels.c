/* bench_kernels.c — times the linear kernels of core/ops_linear.c against bare sgemms (sf_sgemm: the
 * kernel the engine routes to, see core/gemm.h) at transformer shapes, and fails (exit 1) if linear
 * forward+backward costs more than 1.2x the three bare sgemms of the same sizes (forward, dX, dW: the
 * same FLOPs). Beside it, one bare forward-size OpenBLAS cblas_sgemm, for the own kernel's gain.
 *
 * For each shape and weight layout it reports, as GFLOP/s (2*N*C*OC per product):
 *   sgemm       one bare forward-size sgemm (NN, beta 0)
 *   openblas    the same product through cblas_sgemm (OpenBLAS, whatever sf_sgemm routes to)
 *   linear fwd  sf_linear_forward with bias
 *   3 sgemms    bare fwd (N,OC,C) NN + dX (N,C,OC) NN + dW (C,OC,N) TN, all beta 0
 *   fwd+bwd     sf_linear_forward + sf_linear_backward(dinp, dweight, dbias) and its ratio to 3 sgemms
 *   tape        (information only) the same through sf_linear + sf_graph_backward, including the
 *               tape's own gradient-buffer zeroing and seed copy, as a ratio to 3 sgemms
 * It also prints OpenBLAS's build config and warns when OpenBLAS picked kernels far below the CPU.
 *
 * A second section (information only, no pass/fail) times the fused ops against the unfused
 * compositions they replace, on the tape (pool, gradient zeroing and nodes included), in ms:
 *   add+LN     sf_add + sf_layernorm  vs  sf_add_layernorm, forward and forward+backward, with the sum
 *              also used later (the GPT-2 residual stream: root = h + sum, the same extra add in both)
 *   bias+GELU  sf_linear(x, W, b) + sf_gelu  vs  sf_linear(x, W) + sf_bias_gelu(b), x, W, b trainable
 * at gpt2-4m (N = 1024, C = 256, 4C = 1024) and GPT-2 124M (N = 256, C = 768, 3072) shapes.
 * Times are medians of REPS runs after WARMUP runs (clock_gettime MONOTONIC); the compared runs are
 * interleaved rep by rep so background load hits both alike.
 * It does not check numerics (tests/test_linear.c and tests/test_fused.c do).
 *
 * Build: `make` (build/bench_kernels, linked with libsift.a); run with `make bench-kernels`.
 * Usage: bench_kernels [reps] [linear|fused]   (default 15 reps, at least 10; both sections)
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/gemm.h"
#include "../core/ops.h"
#include "../core/threads.h"

#define WARMUP 3
#define MAX_RATIO 1.2

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static float *alloc_rand(int64_t n, unsigned *seed, float scale) {
    float *p = sf_alloc((size_t)n * sizeof(float));
    if (!p) {
        fprintf(stderr, "bench: out of memory (%lld floats)\n", (long long)n);
        exit(2);
    }
    for (int64_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i] = scale * ((float)(*seed >> 8) / 16777216.0f - 0.5f);
    }
    return p;
}

typedef struct {
    const char *model;
    int64_t N, C, OC;
} shape;

typedef struct {
    int64_t N, C, OC;
    sf_wlayout layout;
    float *x, *w, *b, *y, *dy, *dx, *dw, *db; // (N,C) (OC,C)|(C,OC) (OC) (N,OC) (N,OC) (N,C) like w (OC)
    float *bw, *bdx, *bdw;                     // bare sgemm operands/outputs: (C,OC), (N,C), (C,OC)
} bufs;

static void bare_fwd(bufs *B) { // y (N, OC) = x (N, C) . bw (C, OC)
    sf_sgemm(0, 0, B->N, B->OC, B->C, 1.0f, B->x, B->C, B->bw, B->OC, 0.0f, B->y, B->OC);
}
static void bare_fwd_openblas(bufs *B) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B->N, (int)B->OC, (int)B->C, 1.0f, B->x, (int)B->C,
                B->bw, (int)B->OC, 0.0f, B->y, (int)B->OC);
}
static void bare_3(bufs *B) {
    bare_fwd(B);
    // bdx (N, C) = dy (N, OC) . w as (OC, C)
    sf_sgemm(0, 0, B->N, B->C, B->OC, 1.0f, B->dy, B->OC, B->w, B->C, 0.0f, B->bdx, B->C);
    // bdw (C, OC) = x^T (C, N) . dy (N, OC)
    sf_sgemm(1, 0, B->C, B->OC, B->N, 1.0f, B->x, B->C, B->dy, B->OC, 0.0f, B->bdw, B->OC);
}
static void lin_fwd(bufs *B) { sf_linear_forward(B->y, B->x, B->w, B->b, B->N, B->C, B->OC, B->layout); }
static void lin_fwd_bwd(bufs *B) {
    lin_fwd(B);
    sf_linear_backward(B->dx, B->dw, B->db, B->dy, B->x, B->w, B->N, B->C, B->OC, B->layout);
}

typedef struct {
    sf_graph *g;
    sf_tensor *x, *w, *b, *seed;
} tape;

static int tape_fwd_bwd(tape *T, sf_wlayout layout) {
    sf_graph_reset(T->g);
    sf_tensor *y = sf_linear(T->g, T->x, T->w, T->b, layout);
    if (!y || sf_graph_backward(T->g, y, T->seed) != SF_OK) {
        fprintf(stderr, "bench: tape linear failed: %s\n", sf_last_error());
        return -1;
    }
    return 0;
}

static sf_tensor *wrap(float *p, int ndim, int64_t d0, int64_t d1) {
    int64_t shape[2] = {d0, d1};
    sf_tensor *t = sf_tensor_new_f32(ndim, shape);
    memcpy(sf_f32(t), p, sf_tensor_nbytes(t));
    return t;
}

/* ---------------------------------------------------------------- fused ops vs their compositions */

typedef struct {
    sf_graph *g;
    sf_tensor *x, *d, *lw, *lb, *seed_c; // add+LN: x, d, seed (N, C); lw, lb (C)
    sf_tensor *w, *b, *seed_f;           // bias+GELU: W (C, F), b (F), seed (N, F)
} fused_in;

/* One add+LN forward (and backward when bwd): root = LN(x + d) + (x + d). */
static double run_add_ln(fused_in *F, int fused, int bwd) {
    double t0 = now_s();
    sf_graph_reset(F->g);
    sf_tensor *r = NULL, *h;
    if (fused) {
        h = sf_add_layernorm(F->g, F->x, F->d, F->lw, F->lb, 1e-5f, &r);
    } else {
        r = sf_add(F->g, F->x, F->d);
        h = r ? sf_layernorm(F->g, r, F->lw, F->lb, 1e-5f) : NULL;
    }
    sf_tensor *y = h ? sf_add(F->g, h, r) : NULL;
    if (!y || (bwd && sf_graph_backward(F->g, y, F->seed_c) != SF_OK)) {
        fprintf(stderr, "bench: add+LN failed: %s\n", sf_last_error());
        exit(2);
    }
    return now_s() - t0;
}

/* One up-projection + GELU forward (and backward when bwd). */
static double run_bias_gelu(fused_in *F, int fused, int bwd) {
    double t0 = now_s();
    sf_graph_reset(F->g);
    sf_tensor *y;
    if (fused) {
        y = sf_linear(F->g, F->x, F->w, NULL, SF_W_IN_OUT);
        y = y ? sf_bias_gelu(F->g, y, F->b, SF_GELU_TANH) : NULL;
    } else {
        y = sf_linear(F->g, F->x, F->w, F->b, SF_W_IN_OUT);
        y = y ? sf_gelu(F->g, y, SF_GELU_TANH) : NULL;
    }
    if (!y || (bwd && sf_graph_backward(F->g, y, F->seed_f) != SF_OK)) {
        fprintf(stderr, "bench: bias+GELU failed: %s\n", sf_last_error());
        exit(2);
    }
    return now_s() - t0;
}

static sf_tensor *rand_tensor(int64_t d0, int64_t d1, unsigned *seed, float scale, int trainable) {
    int64_t n = d1 > 0 ? d0 * d1 : d0;
    float *p = alloc_rand(n, seed, scale);
    sf_tensor *t = wrap(p, d1 > 0 ? 2 : 1, d0, d1);
    sf_free(p, (size_t)n * sizeof(float));
    sf_param_set_trainable(t, trainable);
    return t;
}

/* Median ms of unfused (t[0]) and fused (t[1]) runs of fn, interleaved. */
static void time_pair(double (*fn)(fused_in *, int, int), fused_in *F, int bwd, int reps, double *ms) {
    double *t[2] = {malloc(sizeof(double) * (size_t)reps), malloc(sizeof(double) * (size_t)reps)};
    for (int i = 0; i < WARMUP; i++) fn(F, 0, bwd), fn(F, 1, bwd);
    for (int r = 0; r < reps; r++) {
        t[0][r] = fn(F, 0, bwd);
        t[1][r] = fn(F, 1, bwd);
    }
    for (int k = 0; k < 2; k++) {
        ms[k] = 1e3 * median(t[k], reps);
        free(t[k]);
    }
}

static void bench_fused(int reps) {
    const shape shapes[] = {{"gpt2-4m", 1024, 256, 1024}, {"gpt2-small", 256, 768, 3072}};
    printf("fused ops vs unfused compositions on the tape (median ms, unfused -> fused):\n");
    for (int s = 0; s < 2; s++) {
        int64_t N = shapes[s].N, C = shapes[s].C, FF = shapes[s].OC;
        unsigned seed = 77u + (unsigned)s;
        fused_in F = {sf_graph_new(),
                      rand_tensor(N, C, &seed, 2.0f, 1),  rand_tensor(N, C, &seed, 2.0f, 1),
                      rand_tensor(C, 0, &seed, 0.2f, 1),  rand_tensor(C, 0, &seed, 0.2f, 1),
                      rand_tensor(N, C, &seed, 0.01f, 0), rand_tensor(C, FF, &seed, 0.04f, 1),
                      rand_tensor(FF, 0, &seed, 0.04f, 1), rand_tensor(N, FF, &seed, 0.01f, 0)};
        double a_f[2], a_fb[2], b_f[2], b_fb[2];
        time_pair(run_add_ln, &F, 0, reps, a_f);
        time_pair(run_add_ln, &F, 1, reps, a_fb);
        time_pair(run_bias_gelu, &F, 0, reps, b_f);
        time_pair(run_bias_gelu, &F, 1, reps, b_fb);
        printf("%-10s N=%lld C=%lld F=%lld | add+LN fwd %.3f -> %.3f (%.2fx) fwd+bwd %.3f -> %.3f (%.2fx) | "
               "bias+GELU (with the linear) fwd %.3f -> %.3f (%.2fx) fwd+bwd %.3f -> %.3f (%.2fx)\n",
               shapes[s].model, (long long)N, (long long)C, (long long)FF, a_f[0], a_f[1], a_f[0] / a_f[1], a_fb[0],
               a_fb[1], a_fb[0] / a_fb[1], b_f[0], b_f[1], b_f[0] / b_f[1], b_fb[0], b_fb[1], b_fb[0] / b_fb[1]);
        fflush(stdout);
        sf_graph_free(F.g);
        sf_tensor *all[] = {F.x, F.d, F.lw, F.lb, F.seed_c, F.w, F.b, F.seed_f};
        for (int i = 0; i < 8; i++) sf_tensor_release(all[i]);
    }
}

int main(int argc, char **argv) {
    sf_runtime_env_reexec(argc, argv);
    sf_heap_keep_freed();
    int reps = argc > 1 ? atoi(argv[1]) : 15;
    if (reps < 10) reps = 10;
    sf_set_threads(0);
    printf("bench_kernels: threads %d (cores %d), median of %d runs after %d warm-up\n", sf_get_threads(),
           sf_num_cores(), reps, WARMUP);
    /* OpenBLAS 0.3.21 does not recognise recent Xeons and falls back to its SSE3 "Prescott" kernels
     * (5-10x slower); OPENBLAS_CORETYPE=SkylakeX (AVX-512) or Haswell (AVX2) in the environment fixes it. */
    const char *core = openblas_get_corename();
    printf("openblas: %s\n", openblas_get_config());
    if ((!strcmp(core, "Prescott") || !strcmp(core, "Core2") || !strcmp(core, "Katmai") || !strcmp(core, "generic")) &&
        __builtin_cpu_supports("avx2"))
        printf("WARNING: OpenBLAS uses its %s kernels on an AVX2%s CPU; set OPENBLAS_CORETYPE=%s for full speed\n",
               core, __builtin_cpu_supports("avx512f") ? "/AVX-512" : "",
               __builtin_cpu_supports("avx512f") ? "SkylakeX" : "Haswell");

    const char *only = argc > 2 ? argv[2] : "";
    if (!strcmp(only, "fused")) {
        bench_fused(reps);
        return 0;
    }
    const shape shapes[] = {
        {"gpt2-small qkv", 256, 768, 2304}, {"gpt2-small attn.proj", 256, 768, 768},
        {"gpt2-small mlp.fc", 256, 768, 3072}, {"gpt2-small mlp.proj", 256, 3072, 768},
        {"gpt2-4m qkv", 1024, 256, 768},     {"gpt2-4m attn.proj", 1024, 256, 256},
        {"gpt2-4m mlp.fc", 1024, 256, 1024}, {"gpt2-4m mlp.proj", 1024, 1024, 256},
    };
    const int n_shapes = (int)(sizeof shapes / sizeof shapes[0]);
    double *t_sg = malloc(sizeof(double) * (size_t)reps), *t_fw = malloc(sizeof(double) * (size_t)reps);
    double *t_3 = malloc(sizeof(double) * (size_t)reps), *t_fb = malloc(sizeof(double) * (size_t)reps);
    double *t_tp = malloc(sizeof(double) * (size_t)reps), *t_ob = malloc(sizeof(double) * (size_t)reps);
    int n_bad = 0;
    double worst = 0;

    for (int s = 0; s < n_shapes; s++) {
        for (int lay = 0; lay < 2; lay++) {
            const shape *sh = &shapes[s];
            int64_t N = sh->N, C = sh->C, OC = sh->OC;
            unsigned seed = 1234u + (unsigned)s;
            bufs B = {.N = N, .C = C, .OC = OC, .layout = (sf_wlayout)lay};
            B.x = alloc_rand(N * C, &seed, 2.0f);
            B.w = alloc_rand(C * OC, &seed, 0.04f);
            B.b = alloc_rand(OC, &seed, 0.04f);
            B.y = alloc_rand(N * OC, &seed, 1.0f);
            B.dy = alloc_rand(N * OC, &seed, 0.01f);
            B.dx = alloc_rand(N * C, &seed, 0.0f);
            B.dw = alloc_rand(C * OC, &seed, 0.0f);
            B.db = alloc_rand(OC, &seed, 0.0f);
            B.bw = alloc_rand(C * OC, &seed, 0.04f);
            B.bdx = alloc_rand(N * C, &seed, 0.0f);
            B.bdw = alloc_rand(C * OC, &seed, 0.0f);

            tape T = {sf_graph_new(), wrap(B.x, 2, N, C),
                      lay == SF_W_OUT_IN ? wrap(B.w, 2, OC, C) : wrap(B.w, 2, C, OC), wrap(B.b, 1, OC, 0),
                      wrap(B.dy, 2, N, OC)};
            sf_param_set_trainable(T.x, 1);
            sf_param_set_trainable(T.w, 1);
            sf_param_set_trainable(T.b, 1);

            for (int i = 0; i < WARMUP; i++) {
                bare_3(&B);
                lin_fwd_bwd(&B);
                if (tape_fwd_bwd(&T, (sf_wlayout)lay)) return 2;
            }
            for (int r = 0; r < reps; r++) {
                double t0 = now_s();
                bare_fwd(&B);
                double t1 = now_s();
                lin_fwd(&B);
                double t2 = now_s();
                bare_3(&B);
                double t3 = now_s();
                lin_fwd_bwd(&B);
                double t4 = now_s();
                if (tape_fwd_bwd(&T, (sf_wlayout)lay)) return 2;
                double t5 = now_s();
                bare_fwd_openblas(&B);
                double t6 = now_s();
                t_sg[r] = t1 - t0, t_fw[r] = t2 - t1, t_3[r] = t3 - t2, t_fb[r] = t4 - t3, t_tp[r] = t5 - t4;
                t_ob[r] = t6 - t5;
            }
            double sg = median(t_sg, reps), fw = median(t_fw, reps), b3 = median(t_3, reps);
            double fb = median(t_fb, reps), tp = median(t_tp, reps), ob = median(t_ob, reps);
            double gf = 2e-9 * (double)N * (double)C * (double)OC; // GFLOP per product
            double ratio = fb / b3;
            printf("shape N=%lld C=%lld OC=%lld %-6s (%s) | sgemm %6.1f GFLOP/s (openblas %6.1f) | linear fwd %6.1f GFLOP/s | "
                   "3 sgemms %6.1f GFLOP/s | fwd+bwd %6.1f GFLOP/s = %.2fx of 3 sgemms | tape %.2fx\n",
                   (long long)N, (long long)C, (long long)OC, lay == SF_W_OUT_IN ? "out_in" : "in_out", sh->model,
                   gf / sg, gf / ob, gf / fw, 3 * gf / b3, 3 * gf / fb, ratio, tp / b3);
            fflush(stdout);
            if (ratio > worst) worst = ratio;
            if (ratio > MAX_RATIO) {
                n_bad++;
                printf("  SLOW: %s N=%lld C=%lld OC=%lld %s: linear fwd+bwd is %.2fx of 3 sgemms (limit %.2fx)\n",
                       sh->model, (long long)N, (long long)C, (long long)OC, lay == SF_W_OUT_IN ? "out_in" : "in_out",
                       ratio, MAX_RATIO);
            }

            sf_graph_free(T.g);
            sf_tensor_release(T.x), sf_tensor_release(T.w), sf_tensor_release(T.b), sf_tensor_release(T.seed);
            float *all[] = {B.x, B.w, B.b, B.y, B.dy, B.dx, B.dw, B.db, B.bw, B.bdx, B.bdw};
            int64_t sz[] = {N * C, C * OC, OC, N * OC, N * OC, N * C, C * OC, OC, C * OC, N * C, C * OC};
            for (int i = 0; i < 11; i++) sf_free(all[i], (size_t)sz[i] * sizeof(float));
        }
    }
    free(t_sg), free(t_fw), free(t_3), free(t_fb), free(t_tp), free(t_ob);
    printf("worst fwd+bwd ratio %.2fx (limit %.2fx): %s\n", worst, MAX_RATIO, n_bad ? "FAIL" : "ok");
    if (strcmp(only, "linear")) bench_fused(reps);
    return n_bad ? 1 : 0;
}
