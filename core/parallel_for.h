/* parallel_for.h — a row loop that runs as an OpenMP `parallel for` only when it is large enough to pay for
 * the second thread, and otherwise on the calling thread without entering OpenMP at all.
 *
 * Why not `#pragma omp parallel for if (cond)`: with a false condition libgomp still opens and closes a
 * one-thread region, and closing it wakes the region's barrier with a futex system call (about 5 us on
 * these VMs, measured with strace/perf). A KV-cache decode step runs every op on one row, ~10 ops per layer,
 * so those calls were ~20 % of stories260K's generation time. This header does not choose thresholds (each
 * op keeps its own) and is for loops whose iterations are independent (no reductions across rows). */
#ifndef SF_PARALLEL_FOR_H
#define SF_PARALLEL_FOR_H

/* `loop` (the for statement, passed as the variadic arguments so commas in it are fine) as
 * `omp parallel for schedule(static)` when `cond`, else as a plain loop. Both copies are the same source,
 * and which copy runs depends on the size only, never on the thread count, so results do not depend on
 * the number of threads. Pragmas inside `loop` must be written as _Pragma("..."). */
#define SF_PARALLEL_FOR_IF(cond, ...)                                                                           \
    do {                                                                                                       \
        if (cond) {                                                                                            \
            _Pragma("omp parallel for schedule(static)") __VA_ARGS__                                           \
        } else {                                                                                               \
            __VA_ARGS__                                                                                        \
        }                                                                                                      \
    } while (0)

/* The same for a single loop over elements that is also to be vectorised (`omp parallel for simd`, else
 * `omp simd`). */
#define SF_PARALLEL_FOR_SIMD_IF(cond, ...)                                                                      \
    do {                                                                                                       \
        if (cond) {                                                                                            \
            _Pragma("omp parallel for simd schedule(static)") __VA_ARGS__                                      \
        } else {                                                                                               \
            _Pragma("omp simd") __VA_ARGS__                                                                    \
        }                                                                                                      \
    } while (0)

#endif
