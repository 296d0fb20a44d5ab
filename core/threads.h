/* threads.h — the one place that sets how many threads the engine uses.
 * sf_set_threads(n) sets OpenBLAS's and OpenMP's thread counts together (n <= 0: the number of cores).
 * It does not create threads itself. */
#ifndef SF_THREADS_H
#define SF_THREADS_H
void sf_set_threads(int n);
int sf_get_threads(void);
int sf_num_cores(void);
/* OpenBLAS and OpenMP read their settings when they load, before main(). Programs call this first
 * thing in main(): when OPENBLAS_CORETYPE or OMP_WAIT_POLICY is unset it sets them (Haswell kernels,
 * which OpenBLAS 0.3.21 does not pick by itself on this Xeon; passive waiting, so OpenMP workers
 * do not spin on the cores OpenBLAS needs) and re-executes the program once. Returns normally
 * when nothing had to change or the re-exec failed. */
void sf_runtime_env_reexec(int argc, char **argv);
#endif
