/* rng.c — xoshiro256** with splitmix64 seeding, Box-Muller normals, a stateless hash. See rng.h. */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sf_rng_seed(sf_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t sf_rng_u64(sf_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sf_rng_uniform(sf_rng *r) { return (double)(sf_rng_u64(r) >> 11) * 0x1.0p-53; }

uint64_t sf_rng_below(sf_rng *r, uint64_t n) {
    uint64_t lim = UINT64_MAX - UINT64_MAX % n, v;
    do v = sf_rng_u64(r);
    while (v >= lim);
    return v % n;
}

double sf_rng_normal(sf_rng *r) {
    double u1 = sf_rng_uniform(r), u2 = sf_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void sf_rng_fill_normal(sf_rng *r, float *out, int64_t n, float mean, float std) {
    for (int64_t i = 0; i < n; i++) out[i] = mean + std * (float)sf_rng_normal(r);
}

uint64_t sf_hash64(uint64_t seed, uint64_t index) {
    uint64_t x = seed ^ (index * 0xd1b54a32d192ed03ULL);
    return splitmix64(&x);
}
