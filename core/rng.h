/* rng.h — deterministic random numbers from an explicit seed (init, shuffling, random masks, sampling).
 * xoshiro256** seeded through splitmix64; normal deviates by Box-Muller. No global state. */
#ifndef SF_RNG_H
#define SF_RNG_H
#include <stdint.h>

typedef struct { uint64_t s[4]; } sf_rng;

void sf_rng_seed(sf_rng *r, uint64_t seed);
uint64_t sf_rng_u64(sf_rng *r);
double sf_rng_uniform(sf_rng *r);            /* [0, 1) */
uint64_t sf_rng_below(sf_rng *r, uint64_t n); /* [0, n), unbiased; n > 0 */
double sf_rng_normal(sf_rng *r);             /* N(0, 1) */
void sf_rng_fill_normal(sf_rng *r, float *out, int64_t n, float mean, float std);
/* Stateless hash of (seed, index) -> 64 bits (splitmix64 of a mix); used for dropout masks. */
uint64_t sf_hash64(uint64_t seed, uint64_t index);
#endif
