/* lora.h — the LoRA baseline: low-rank adapters on linear weights. For a weight W with input size `in`
 * and output size `out` (either layout), the layer computes y = x W (+ b) + scale * (x A^T) B^T with
 * A (r, in) ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's kaiming_uniform(a=sqrt(5))), B (out, r) = 0 and
 * scale = alpha / r. The model's forward consults sf_lora_find for every linear weight. Adapters can be
 * merged into W (W += scale * B A in W's layout) and unmerged. This file does not train: the factors are
 * ordinary trainable leaves for the dense AdamW. */
#ifndef SF_LORA_H
#define SF_LORA_H

#include "ops.h"

typedef struct {
    char *name;       /* the adapted weight's name */
    sf_tensor *w;     /* retained */
    sf_wlayout layout;
    sf_tensor *A, *B; /* (r, in), (out, r); trainable leaves named "<name>.lora_A" / ".lora_B" */
    float scale;
    int merged;
} sf_lora_adapter;

typedef struct sf_lora_set {
    sf_lora_adapter *a;
    int n;
    int r;
    float alpha;
} sf_lora_set;

sf_lora_set *sf_lora_new(sf_tensor *const *weights, const char *const *names, const sf_wlayout *layouts, int n, int r,
                         float alpha, uint64_t seed);
void sf_lora_free(sf_lora_set *s);
const sf_lora_adapter *sf_lora_find(const sf_lora_set *s, const sf_tensor *w);
/* x (..., in) -> x W + b (+ the adapter's low-rank path when present and not merged). */
sf_tensor *sf_lora_linear(sf_graph *g, const sf_lora_set *s, sf_tensor *x, sf_tensor *w, sf_tensor *b, sf_wlayout layout);
sf_status sf_lora_merge(sf_lora_set *s);
sf_status sf_lora_unmerge(sf_lora_set *s);
int64_t sf_lora_trainable(const sf_lora_set *s);
#endif
