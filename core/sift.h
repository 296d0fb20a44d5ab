/* sift.h — Sparse Increment Fine-Tuning: sparse parameter sets, selection policies, sparse AdamW.
 *
 * A sparse set owns, for each target weight W (numel N, k = min(floor(rate*N) + 1, N)):
 *   idx   (k) ascending flat row-major offsets (int32 when N < 2^31, int64 above; index_array.h),
 *   w0    (k) the original values W[idx],
 *   delta (k) the increment, starting at 0, trained by AdamW with its own moments m, v (k each),
 *   grad  (k) the gradient of the increment, fed by the tape (see graph.h "sparse leaves").
 * After every optimizer step the weight is written back: W[idx] = w0 + delta.
 *
 * Gradients: once selected, a target is a sparse leaf of the tape: the linear op computes only its
 * k entries as dot products of the saved input and the output gradient (SF_SPARSE_SAMPLED), or the
 * tape forms the dense gradient transiently and gathers g[idx] (SF_SPARSE_GATHER, the reference path);
 * either way no dense gradient of a target stays resident.
 *
 * Selection ("calibration"): a forward/backward with the set in calibration mode. Per-tensor policies
 * (topk, random, magnitude) select inside the leaf hook as soon as a target's gradient is complete and
 * keep only g[idx] (memory O(k)); global and fisher (and custom, done by the caller) need every dense
 * gradient, so the hook keeps a copy until sf_sparse_finish_selection (memory O(N) during calibration
 * only). A batch run in parts (micro-batches), or split over several processes, defers every policy to
 * sf_sparse_note_batch, which sees the whole batch's gradient. The calibration gradient is kept as the
 * first step's gradient (fisher: the mean over its batches). This file does not know about models or Lua; deltas on disk live in delta.h.
 */
#ifndef SF_SIFT_H
#define SF_SIFT_H

#include "graph.h"
#include "optim.h"

typedef enum {
    SF_POLICY_TOPK = 0,  /* top-k |g| per tensor (the paper's) */
    SF_POLICY_GLOBAL,    /* top-K |g| over all targets together, K = sum of the per-tensor k */
    SF_POLICY_RANDOM,    /* k uniform indices per tensor from the seed */
    SF_POLICY_MAGNITUDE, /* top-k |W| per tensor (no gradient needed) */
    SF_POLICY_FISHER,    /* top-k sum of g^2 over the calibration batches, per tensor */
    SF_POLICY_CUSTOM,    /* indices given by the caller (e.g. a Lua function) from the dense gradient */
} sf_policy;

typedef enum { SF_SPARSE_SAMPLED = 0, SF_SPARSE_GATHER = 1 } sf_sparse_mode;

typedef struct {
    char *name;
    sf_tensor *w;       /* the model's weight (retained) */
    int64_t numel, k;
    sf_index_array idx; /* (k) ascending flat offsets, int32 when numel < 2^31 */
    float *w0;          /* (k) */
    float *delta;       /* (k) */
    float *grad;        /* (k) accumulated gradient of delta */
    float *m, *v;       /* (k) AdamW moments */
    float *calib;       /* (numel) dense calibration gradient or score, only while selecting (global/fisher/custom) */
    int selected;
    int got_grad;       /* a gradient arrived since the last step */
} sf_sparse_target;

typedef struct sf_sparse_set {
    sf_sparse_target *t;
    int n;
    double rate;
    sf_policy policy;
    uint64_t seed;
    sf_sparse_mode mode;
    int calibrating;      /* hooks are in selection mode */
    int defer_selection;  /* set before begin_selection when a calibration batch runs as several backward
                           * passes (micro-batches): the hooks keep each target's dense gradient until
                           * sf_sparse_note_batch, which hands the batch's whole gradient to the policy
                           * (memory O(N) while selecting, as for global / fisher) */
    int calib_batches;    /* number of calibration backward passes seen */
    int64_t step;         /* optimizer steps taken */
    int reference_quirks; /* reproduce the published code's three quirks (see DESIGN.md) */
    int skip_next_step;   /* reference quirk: the first batch is discarded */
    int untrained_target; /* reference quirk: index of the last target reached in backward (-1 none) */
    int64_t last_reached; /* order counter for the quirk above */
    int64_t reach_counter;
} sf_sparse_set;

/* k for a tensor of numel elements at `rate`: min(floor(rate*numel) + 1, numel). */
int64_t sf_sparse_budget(double rate, int64_t numel);

/* A set over the given target weights (names are copied). Installs the leaf hooks; the targets stay
 * trainable (requires_grad) so the tape reaches them. */
sf_sparse_set *sf_sparse_new(sf_tensor *const *weights, const char *const *names, int n, double rate,
                             sf_policy policy, uint64_t seed);
/* Removes the hooks and sparse descriptors (weights keep their current values) and frees the set. */
void sf_sparse_free(sf_sparse_set *s);
void sf_sparse_set_mode(sf_sparse_set *s, sf_sparse_mode mode);

/* Calibration: call begin, run forward + backward (one or more batches for fisher), then finish.
 * magnitude and random can also finish without any backward. */
sf_status sf_sparse_begin_selection(sf_sparse_set *s);
sf_status sf_sparse_finish_selection(sf_sparse_set *s);
/* After each calibration batch's backward pass(es): counts the batch (fisher's mean). A deferred
 * selection (defer_selection, or several processes: dist.h) hands the policy the dense gradients the
 * hooks kept over the batch's passes; with several processes every rank first sums each target's over
 * all ranks, in target order, so every rank selects the same masks as one process running the whole
 * batch (memory O(N) for the batch, during calibration only). */
sf_status sf_sparse_note_batch(sf_sparse_set *s);
/* For SF_POLICY_CUSTOM between begin and finish: the dense calibration gradient of target i (numel). */
const float *sf_sparse_calib_grad(const sf_sparse_set *s, int i);
/* Sets the indices of target i directly (custom policies, loaded deltas): k_new may differ from the
 * budget; indices are validated (in range, strictly ascending after sorting, no duplicates). The
 * current calibration gradient (if any) is gathered at the new indices. */
sf_status sf_sparse_set_indices(sf_sparse_set *s, int i, const int64_t *idx, int64_t k);

/* Checkpoints: once target i's indices are set (sf_sparse_set_indices) and selection finished, restores
 * its training state: refuses (naming the target) unless the model's weights at idx equal w0 (the same
 * base model), then copies delta, m and v (k each) and writes W[idx] = w0 + delta. s->step is the
 * caller's to restore. */
sf_status sf_sparse_restore_target(sf_sparse_set *s, int i, const float *w0, const float *delta, const float *m,
                                   const float *v);

/* One AdamW step on every selected target's increment (then W[idx] = w0 + delta) and clears grads.
 * hp->weight_decay applies to the increments (pulling them toward the pre-trained values). */
sf_status sf_sparse_step(sf_sparse_set *s, const sf_adamw_hparams *hp);
void sf_sparse_zero_grad(sf_sparse_set *s);
/* Sum of squares of the increments' gradients (for global-norm clipping) and in-place scaling. */
double sf_sparse_grad_norm_sq(const sf_sparse_set *s);
void sf_sparse_scale_grad(sf_sparse_set *s, float factor);
/* Writes W[idx] = w0 + delta for every target (also done after each step). */
void sf_sparse_write_back(sf_sparse_set *s);
/* Restores W[idx] = w0 (bit-exact) for every target. */
void sf_sparse_restore(sf_sparse_set *s);
int64_t sf_sparse_trainable(const sf_sparse_set *s); /* sum of k over selected targets */

typedef struct {
    size_t increments, moments, indices, originals, grads, calibration;
} sf_sparse_memory;
sf_sparse_memory sf_sparse_memory_of(const sf_sparse_set *s);

/* Top-k helper shared by the policies: the k largest scores (ties broken by lower index), returned
 * as ascending indices into out (k). Parallel selection; O(n) average. */
sf_status sf_topk_indices(const float *score, int64_t n, int64_t k, int64_t *out);

#endif
