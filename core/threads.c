/* threads.c — thread-count control for OpenBLAS and OpenMP. See threads.h. */
#include "threads.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

static int g_threads;

int sf_num_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void sf_set_threads(int n) {
    if (n <= 0) n = sf_num_cores();
    g_threads = n;
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
}

int sf_get_threads(void) { return g_threads ? g_threads : omp_get_max_threads(); }

void sf_runtime_env_reexec(int argc, char **argv) {
    (void)argc;
    if (getenv("SIFT_NO_REEXEC")) return;
    int changed = 0;
    if (!getenv("OPENBLAS_CORETYPE")) changed |= setenv("OPENBLAS_CORETYPE", "Haswell", 1) == 0;
    if (!getenv("OMP_WAIT_POLICY")) changed |= setenv("OMP_WAIT_POLICY", "passive", 1) == 0;
    if (!getenv("GOMP_SPINCOUNT")) changed |= setenv("GOMP_SPINCOUNT", SF_GOMP_SPINCOUNT, 1) == 0;
    if (!changed) return;
    setenv("SIFT_NO_REEXEC", "1", 1); /* never loop */
    execv("/proc/self/exe", argv);
}
