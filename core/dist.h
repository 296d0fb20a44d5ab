/* dist.h — data-parallel training over MPI: which process this is, sums over all processes, and the
 * gradient sync that the tape's leaf completions drive.
 *
 * Built two ways: with MPI (`make MPI=1` defines SIFT_MPI and links MPI) or without, where every call
 * reports one process (rank 0 of 1), sums return their input and syncs send nothing — callers need no
 * #ifdef. Only the main thread calls MPI (MPI_THREAD_FUNNELED); kernels keep their OpenMP threads.
 *
 * Gradient sync (sf_dist_sync): a list of trainable leaves in an order every rank builds the same way.
 * Armed on a tape before the step's last backward, it starts a non-blocking sum of each leaf's gradient
 * as soon as the tape finishes that leaf (graph.h's leaf observer), so communication overlaps the rest
 * of backward. Collectives must be issued in the same order on every rank, whatever order a rank's tape
 * finishes its leaves in, so a leaf finished early waits until those listed before it have started.
 * sf_dist_sync_finish starts what is left (leaves the tape never reached this pass send what they hold,
 * zeros included) and waits for all. A dense leaf sends its numel gradient (leaf->grad), a sparse leaf
 * (leaf->sparse, a selected SIFT target) only its k values.
 *
 * Not here: splitting batches across ranks and weighting each rank's share of the loss
 * (lua/sift/train.lua), the dense calibration sums of a sparse selection (sift.c).
 */
#ifndef SF_DIST_H
#define SF_DIST_H

#include <stdint.h>

#include "graph.h"
#include "status.h"

/* Initialises MPI once (a no-op without MPI or when already initialised) and gives each process
 * cores / (processes on this node) threads. argc/argv may be NULL. */
sf_status sf_dist_init(int *argc, char ***argv);
void sf_dist_finalize(void);
/* Ends every process of the job (a rank that fails alone must not leave the others waiting in a sum).
 * Prints "sift: rank R ends the job: WHY" first when why is not NULL, flushes stdout and stderr and gives
 * the launcher a moment to forward them (MPI_Abort kills the ranks at once; output still in a pipe to
 * mpiexec was lost about one run in 40). */
void sf_dist_abort(int code, const char *why);
int sf_dist_built_with_mpi(void);
int sf_dist_rank(void);
int sf_dist_size(void);

/* Blocking in-place sums over every rank of n values. */
sf_status sf_dist_sum_f32(float *buf, int64_t n);
sf_status sf_dist_sum_f64(double *buf, int64_t n);
/* Bytes this process has put into sums since start-up (4 per float, 8 per double; 0 with one process). */
uint64_t sf_dist_bytes_sent(void);

typedef struct sf_dist_sync sf_dist_sync;
/* leaves (n) in the order every rank uses (retained). */
sf_dist_sync *sf_dist_sync_new(sf_tensor *const *leaves, int n);
void sf_dist_sync_free(sf_dist_sync *y);
/* Observe g's leaf completions from now until sf_dist_sync_finish. */
sf_status sf_dist_sync_arm(sf_dist_sync *y, sf_graph *g);
/* Starts the sums not started yet, waits for all, disarms. Gradients then hold the sum over ranks.
 * got (n, or NULL): whether leaf i holds a gradient this step — in, for sparse leaves, this rank's
 * answer (the sparse set's own flag; a dense leaf's is whether it had a gradient before the sync); out,
 * whether any rank's does (one more sum, of n ints), so every rank's optimizer skips or updates the
 * same leaves as one process would. A dense leaf no rank had a gradient for gets none. */
sf_status sf_dist_sync_finish(sf_dist_sync *y, int *got);

#endif
