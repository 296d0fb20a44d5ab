/* bench_kernels.c — times the linear kernels of core/ops_linear.c against bare cblas_sgemm at
 * transformer shapes, and fails (exit 1) if linear forward+backward costs more than 1.2x the three
 * bare sgemms of the same sizes (forward, dX, dW: the same FLOPs).
 *
 * For each shape and weight layout it reports, as GFLOP/s (2*N*C*OC per product):
 *   sgemm       one bare forward-size sgemm (NN, beta 0)
 *   linear fwd  sf_linear_forward with bias
 *   3 sgemms    bare fwd (N,OC,C) NN + dX (N,C,OC) NN + dW (C,OC,N) TN, all beta 0
 *   fwd+bwd     sf_linear_forward + sf_linear_backward(dinp, dweight, dbias) and its ratio to 3 sgemms
 *   tape        (information only) the same through sf_linear + sf_graph_backward, including the
 *               tape's own gradient-buffer zeroing and seed copy, as a ratio to 3 sgemms
 * It also prints OpenBLAS's build config and warns when OpenBLAS picked kernels far below the CPU.
 * Times are medians of REPS runs after WARMUP runs (clock_gettime MONOTONIC); the baseline and the
 * linear runs are interleaved rep by rep so background load hits both alike.
 * It does not check numerics (tests/test_linear.c does).
 *
 * Build: gcc -std=gnu11 -O2 -march=native -fopenmp -I/usr/include/x86_64-linux-gnu/openblas-pthread \
 *          core/status.c core/tensor.c core/graph.c core/ops_common.c core/threads.c core/ops_linear.c \
 *          scripts/bench_kernels.c -lopenblas -lm -o bench_kernels
 * Usage: bench_kernels [reps]   (default 15, at least 10)
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B->N, (int)B->OC, (int)B->C, 1.0f, B->x, (int)B->C,
                B->bw, (int)B->OC, 0.0f, B->y, (int)B->OC);
}
static void bare_3(bufs *B) {
    bare_fwd(B);
    // bdx (N, C) = dy (N, OC) . w as (OC, C)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B->N, (int)B->C, (int)B->OC, 1.0f, B->dy, (int)B->OC,
                B->w, (int)B->C, 0.0f, B->bdx, (int)B->C);
    // bdw (C, OC) = x^T (C, N) . dy (N, OC)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)B->C, (int)B->OC, (int)B->N, 1.0f, B->x, (int)B->C,
                B->dy, (int)B->OC, 0.0f, B->bdw, (int)B->OC);
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

int main(int argc, char **argv) {
    sf_runtime_env_reexec(argc, argv);
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

    const shape shapes[] = {
        {"gpt2-small qkv", 256, 768, 2304}, {"gpt2-small attn.proj", 256, 768, 768},
        {"gpt2-small mlp.fc", 256, 768, 3072}, {"gpt2-small mlp.proj", 256, 3072, 768},
        {"gpt2-4m qkv", 1024, 256, 768},     {"gpt2-4m attn.proj", 1024, 256, 256},
        {"gpt2-4m mlp.fc", 1024, 256, 1024}, {"gpt2-4m mlp.proj", 1024, 1024, 256},
    };
    const int n_shapes = (int)(sizeof shapes / sizeof shapes[0]);
    double *t_sg = malloc(sizeof(double) * (size_t)reps), *t_fw = malloc(sizeof(double) * (size_t)reps);
    double *t_3 = malloc(sizeof(double) * (size_t)reps), *t_fb = malloc(sizeof(double) * (size_t)reps);
    double *t_tp = malloc(sizeof(double) * (size_t)reps);
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
                t_sg[r] = t1 - t0, t_fw[r] = t2 - t1, t_3[r] = t3 - t2, t_fb[r] = t4 - t3, t_tp[r] = t5 - t4;
            }
            double sg = median(t_sg, reps), fw = median(t_fw, reps), b3 = median(t_3, reps);
            double fb = median(t_fb, reps), tp = median(t_tp, reps);
            double gf = 2e-9 * (double)N * (double)C * (double)OC; // GFLOP per product
            double ratio = fb / b3;
            printf("shape N=%lld C=%lld OC=%lld %-6s (%s) | sgemm %6.1f GFLOP/s | linear fwd %6.1f GFLOP/s | "
                   "3 sgemms %6.1f GFLOP/s | fwd+bwd %6.1f GFLOP/s = %.2fx of 3 sgemms | tape %.2fx\n",
                   (long long)N, (long long)C, (long long)OC, lay == SF_W_OUT_IN ? "out_in" : "in_out", sh->model,
                   gf / sg, gf / fw, 3 * gf / b3, 3 * gf / fb, ratio, tp / b3);
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
    free(t_sg), free(t_fw), free(t_3), free(t_fb), free(t_tp);
    printf("worst fwd+bwd ratio %.2fx (limit %.2fx): %s\n", worst, MAX_RATIO, n_bad ? "FAIL" : "ok");
    return n_bad ? 1 : 0;
}
