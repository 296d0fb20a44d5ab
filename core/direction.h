/* direction.h — directions in weight space for loss-landscape probes (Li et al. 2018, as the SIFT paper
 * uses them): a random Gaussian direction scaled to the weight it perturbs, and the in-place combination
 * p = base + a * d1 + b * d2 that a landscape walk sets at each point.
 * What it does not do: walk a grid, run forwards or keep originals (lua/sift/landscape.lua does). */
#ifndef SF_DIRECTION_H
#define SF_DIRECTION_H

#include <stdint.h>

#include "ops.h"
#include "status.h"
#include "tensor.h"

typedef enum {
    SF_DIR_NONE = 0,   /* N(0, 1) entries as drawn */
    SF_DIR_LAYER = 1,  /* the whole direction has the norm of the whole weight */
    SF_DIR_FILTER = 2, /* each filter (output unit) has the norm of the weight's same filter */
} sf_dir_norm;

/* d (f32, w's numel) := N(0, 1) from the generator seeded with sf_hash64(seed, stream), then scaled by
 * norm. Filters are output units: the rows of an OUT_IN weight (nn.Linear, and an embedding's rows), the
 * columns of an IN_OUT one (GPT-2's Conv1D); a 1-D weight is one filter. A filter of w with zero norm gives
 * a zero filter of d (a zero weight stays where it is). w may be any float dtype. */
sf_status sf_direction_random(sf_tensor *d, const sf_tensor *w, uint64_t seed, uint64_t stream, sf_dir_norm norm,
                              sf_wlayout layout);

/* p := base + a * d1 + b * d2 (d2 may be NULL): all f32 with p's numel; p may be base. */
sf_status sf_tensor_combine(sf_tensor *p, const sf_tensor *base, float a, const sf_tensor *d1, float b,
                            const sf_tensor *d2);

#endif
