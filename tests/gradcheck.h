/* gradcheck.h — finite-difference gradient checking for tape ops (tests only).
 *
 * build(g, inputs, ctx) records ops on g and returns an output tensor y. The check forms the scalar
 * L = sum(y * r) with a fixed random r (accumulated in double), back-propagates r through the tape, and
 * compares each trainable input's analytic gradient with the central difference
 * (L(x + eps) - L(x - eps)) / (2 eps) at up to `max_points` elements per input (all when numel is
 * smaller). The error measure is max |analytic - numeric| / max(max |analytic|, 1e-3) over the tensor;
 * the check passes when it is <= tol. Returns the worst error, or +inf if building failed.
 */
#ifndef SF_GRADCHECK_H
#define SF_GRADCHECK_H

#include "../core/graph.h"

typedef sf_tensor *(*gc_build_fn)(sf_graph *g, sf_tensor **inputs, void *ctx);

double gradcheck(const char *label, gc_build_fn build, void *ctx, sf_tensor **inputs, int n_inputs,
                 double eps, int max_points);

/* max |a - b| / max(|b|, 1e-3) over n elements: the tests' relative difference. */
double gc_max_rel_diff(const float *a, const float *b, int64_t n);

/* Uniform/normal fillers with an explicit seed (tests only). */
void gc_fill_randn(sf_tensor *t, unsigned long long seed, float scale);
void gc_fill_uniform(sf_tensor *t, unsigned long long seed, float lo, float hi);

#endif
