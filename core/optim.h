/* optim.h — AdamW, the one update rule of the project, used for dense tensors (full fine-tuning, task
 * heads, LoRA factors) and for SIFT's sparse increments (see sift.h).
 *
 * The update follows torch.optim.AdamW exactly (decoupled weight decay applied first, then
 * p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)), with the bias corrections computed
 * once per call, outside the element loop. No allocation in sf_adamw_update.
 */
#ifndef SF_OPTIM_H
#define SF_OPTIM_H

#include "tensor.h"

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} sf_adamw_hparams;

/* p, g, m, v: (n). t: the 1-based step number of this update. wd_scale multiplies weight_decay (0 to
 * exempt a tensor). */
void sf_adamw_update(float *p, const float *g, float *m, float *v, int64_t n, const sf_adamw_hparams *h, int64_t t,
                     float wd_scale);
void sf_adamw_update_ref(float *p, const float *g, float *m, float *v, int64_t n, const sf_adamw_hparams *h,
                         int64_t t, float wd_scale);

/* Dense AdamW over a list of leaf tensors, reading each tensor's ->grad (skipped when NULL). */
typedef struct sf_adamw sf_adamw;
sf_adamw *sf_adamw_new(sf_tensor *const *params, const float *wd_scale, int n, const sf_adamw_hparams *h);
void sf_adamw_free(sf_adamw *o);
sf_status sf_adamw_step(sf_adamw *o);  /* one update of every parameter that has a gradient, which it zeroes */
void sf_adamw_zero_grad(sf_adamw *o);  /* zeroes the parameters' gradients (free when already zero) */
void sf_adamw_set_lr(sf_adamw *o, float lr);
sf_adamw_hparams *sf_adamw_hparams_of(sf_adamw *o);
int64_t sf_adamw_steps(const sf_adamw *o);
size_t sf_adamw_state_bytes(const sf_adamw *o); /* moments */
/* Direct access for checkpointing: moments of parameter i (NULL before the first step). */
float *sf_adamw_moment(sf_adamw *o, int i, int which);
void sf_adamw_set_steps(sf_adamw *o, int64_t t);
/* Restores parameter i's moments (numel values each; copied, allocated when missing). with_grad: give the
 * parameter a zero gradient when it has none, as after a step that updated it — the next step then
 * updates it even if backward does not reach it, as the uninterrupted run would. */
sf_status sf_adamw_restore(sf_adamw *o, int i, const float *m, const float *v, int with_grad);

/* Global L2 norm over a set of gradient buffers and in-place scaling (gradient clipping). */
double sf_grad_norm_sq(const float *g, int64_t n);
/* Number of NaN/Inf entries (parallel; used to refuse a step before any weight changes). */
int64_t sf_count_nonfinite(const float *g, int64_t n);
void sf_scale_inplace(float *g, int64_t n, float s);
#endif
