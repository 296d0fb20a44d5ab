/* threads.h — the one place that sets how many threads the engine uses.
 * sf_set_threads(n) sets OpenBLAS's and OpenMP's thread counts together (n <= 0: the number of cores).
 * It does not create threads itself. */
#ifndef SF_THREADS_H
#define SF_THREADS_H
void sf_set_threads(int n);
int sf_get_threads(void);
int sf_num_cores(void);
/* OpenBLAS and OpenMP read their settings when they load, before main(). Programs call this first
 * thing in main(): when OPENBLAS_CORETYPE, OMP_WAIT_POLICY or GOMP_SPINCOUNT is unset it sets them
 * (Haswell kernels, which OpenBLAS 0.3.21 does not pick by itself on this Xeon; passive waiting, so
 * OpenMP workers do not spin on the cores OpenBLAS needs; before sleeping, a short bounded spin of
 * SF_GOMP_SPINCOUNT polls, see below) and re-executes the program once. Returns normally when nothing
 * had to change or the re-exec failed. */
void sf_runtime_env_reexec(int argc, char **argv);

/* The polls an idle OpenMP worker makes (libgomp: each a load and a pause, ~0.1-0.2 ms in all here)
 * before it sleeps on a futex. A training step opens hundreds of parallel regions a few microseconds
 * to a few milliseconds apart; with no spin at all (passive's default) every one wakes the worker
 * through the kernel. Measured on the Zen 4 kind, 2 cores, alternating processes: the gpt2-4m 32x32
 * SIFT step's median ~2-4 % lower than with 0 in 6 of 6 pairs, GPT-2 124M 4x64's in 5 of 6; 20000
 * and more measured no better and sometimes 5-10 % worse. When its threads outnumber the cores, libgomp
 * uses a separate "throttled" count, which under OMP_WAIT_POLICY=passive stays 0: no spin then.
 * GOMP_SPINCOUNT=0 restores plain passive waiting. */
#define SF_GOMP_SPINCOUNT "10000"
#endif
