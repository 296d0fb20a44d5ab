/* ops_sampled.c — selected entries of a linear layer's weight gradient, computed directly as dot
 * products of the layer input and the output gradient (a sampled dense-dense product): for SIFT
 * targets whose mask is fixed, k entries cost k*N multiply-adds instead of the N*C*OC of a full dW.
 *
 * The optimised kernel walks the N rows in chunks of nb rows sized so that the chunk's transposed
 * copies of dout (OC, nb) and inp (C, nb) stay in a core's L2 (~512 KB): each chunk is transposed in
 * 8 x 8 AVX register blocks (each tile's rows prefetched two tiles ahead: 32 row streams are more than
 * the hardware prefetchers follow), then every entry is a contiguous, vectorised dot product of length nb over
 * those copies. Chunks are dealt round-robin to the threads, each chunk's k partial sums go to its own
 * row of partials, and the partials are added in chunk order, so the result does not depend on the
 * thread count. (Whole-N transposed copies left the dot products reading L3 and ran 3x slower; row-wise
 * gathers measured no faster than that.) A plain reference loop sits beside it.
 *
 * What it does not do: form dW, touch entries outside idx, or run inside an outer parallel region
 * with more than one thread. */
#include "ops.h"

#include <omp.h>
#include <stdint.h>

#include "simd_transpose.h"
#include "simd_vec.h"
#include "threads.h"

/* Rows per chunk: the two transposed chunks, (C + OC) x nb floats, fill about 512 KB; a multiple of 16
 * (whole AVX-512 vectors) between 64 (shorter dot products cost more in their reductions than L2 misses
 * save) and 256. */
static int64_t chunk_rows(int64_t C, int64_t OC) {
    int64_t nb = ((int64_t)128 * 1024) / (C + OC > 0 ? C + OC : 1) / 16 * 16;
    return nb < 64 ? 64 : nb > 256 ? 256 : nb;
}

static int sampled_threads(void) {
    int nt = omp_in_parallel() ? 1 : sf_get_threads();
    return nt < 1 ? 1 : nt;
}

/* scratch layout: [nt][(C + OC) * nb] transposed chunks | [n_chunks][k] partials | [2][k] int32 (o, i) */
static int64_t scratch_floats(int nt, int64_t k, int64_t N, int64_t C, int64_t OC) {
    const int64_t nb = chunk_rows(C, OC), n_chunks = (N + nb - 1) / nb;
    return (int64_t)nt * (C + OC) * nb + n_chunks * k + 2 * k;
}

int64_t sf_linear_weight_grad_sampled_scratch(int64_t k, int64_t N, int64_t C, int64_t OC) {
    return scratch_floats(sampled_threads(), k, N, C, OC);
}

/* dst (Cc, R) with row stride ld = src (R, Cc; row stride ss)^T, serially, in 32 x 32 tiles (8 x 8
 * register blocks where AVX is available, scalar at the edges). */
static void transpose(float *dst, int64_t ld, const float *src, int64_t ss, int64_t R, int64_t Cc) {
    const int64_t TB = 32;
    for (int64_t r0 = 0; r0 < R; r0 += TB)
        for (int64_t c0 = 0; c0 < Cc; c0 += TB) {
            const int64_t r1 = r0 + TB < R ? r0 + TB : R, c1 = c0 + TB < Cc ? c0 + TB : Cc;
            if (c0 + 3 * TB <= Cc)
                for (int64_t r = r0; r < r1; r++) {
                    __builtin_prefetch(src + r * ss + c0 + 2 * TB);
                    __builtin_prefetch(src + r * ss + c0 + 2 * TB + 16);
                }
            int64_t rv = r0, cv = c0; /* the part covered by whole 8 x 8 blocks: [r0, rv) x [c0, cv) */
#ifdef __AVX__
            rv = r0 + (r1 - r0) / 8 * 8;
            cv = c0 + (c1 - c0) / 8 * 8;
            for (int64_t r = r0; r < rv; r += 8)
                for (int64_t c = c0; c < cv; c += 8) sf_transpose8x8(dst + c * ld + r, ld, src + r * ss + c, ss);
#endif
            for (int64_t c = c0; c < c1; c++)
                for (int64_t r = (c < cv ? rv : r0); r < r1; r++) dst[c * ld + r] = src[r * ss + c];
        }
}

/* sum of a[n] * x[n] for n < m. Four vector accumulators (independent FMA chains) summed as a tree: gcc
 * lowers `omp simd reduction` here to a stack array summed one lane at a time, which took most of this
 * function's time at a chunk's 64-256 products. The tail is one partial vector (simd_vec.h). */
static inline float dot(const float *restrict a, const float *restrict x, int64_t m) {
    vf s0 = splat(0.0f), s1 = s0, s2 = s0, s3 = s0;
    int64_t n = 0;
    for (; n + 4 * VW <= m; n += 4 * VW) {
        s0 += *(const vf *)(a + n) * *(const vf *)(x + n);
        s1 += *(const vf *)(a + n + VW) * *(const vf *)(x + n + VW);
        s2 += *(const vf *)(a + n + 2 * VW) * *(const vf *)(x + n + 2 * VW);
        s3 += *(const vf *)(a + n + 3 * VW) * *(const vf *)(x + n + 3 * VW);
    }
    for (; n < m; n += VW) s0 += load_prefix(a + n, m - n) * load_prefix(x + n, m - n);
    return hsum((s0 + s1) + (s2 + s3));
}

void sf_linear_weight_grad_sampled(float *vals, sf_index_array idx, int64_t k, const float *dout, const float *inp,
                                   float *scratch, int64_t n_scratch, int64_t N, int64_t C, int64_t OC,
                                   sf_wlayout layout) {
    if (k == 0 || N == 0) return;
    int nt = sampled_threads();
    while (nt > 1 && n_scratch < scratch_floats(nt, k, N, C, OC)) nt--; /* sized for fewer threads */
    if (n_scratch < scratch_floats(nt, k, N, C, OC)) return;
    const int64_t nb = chunk_rows(C, OC), n_chunks = (N + nb - 1) / nb;
    float *partials = scratch + (int64_t)nt * (C + OC) * nb; /* (n_chunks, k) */
    int32_t *oi = (int32_t *)(partials + n_chunks * k);     /* (2, k): output and input index of entry j */
    for (int64_t j = 0; j < k; j++) {
        const int64_t e = sf_index_get(idx, j);
        oi[j] = (int32_t)(layout == SF_W_OUT_IN ? e / C : e % OC);
        oi[k + j] = (int32_t)(layout == SF_W_OUT_IN ? e % C : e / OC);
    }
    if (nt > n_chunks) nt = (int)n_chunks;
#pragma omp parallel num_threads(nt) if (nt > 1 && k * N > (1 << 16))
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        float *dT = scratch + (int64_t)t * (C + OC) * nb, *xT = dT + OC * nb; /* (OC, nb), (C, nb) */
        for (int64_t c = t; c < n_chunks; c += T) {
            const int64_t n0 = c * nb, m = N - n0 < nb ? N - n0 : nb;
            transpose(dT, nb, dout + n0 * OC, OC, m, OC);
            transpose(xT, nb, inp + n0 * C, C, m, C);
            float *part = partials + c * k;
            for (int64_t j = 0; j < k; j++) part[j] = dot(dT + (int64_t)oi[j] * nb, xT + (int64_t)oi[k + j] * nb, m);
        }
    }
    for (int64_t c = 0; c < n_chunks; c++) /* in chunk order, whatever the thread count */
        for (int64_t j = 0; j < k; j++) vals[j] += partials[c * k + j];
}

void sf_linear_weight_grad_sampled_ref(float *vals, sf_index_array idx, int64_t k, const float *dout, const float *inp,
                                       int64_t N, int64_t C, int64_t OC, sf_wlayout layout) {
    for (int64_t j = 0; j < k; j++) {
        int64_t e = sf_index_get(idx, j);
        int64_t o = layout == SF_W_OUT_IN ? e / C : e % OC, i = layout == SF_W_OUT_IN ? e % C : e / OC;
        double s = 0;
        for (int64_t n = 0; n < N; n++) s += (double)dout[n * OC + o] * inp[n * C + i];
        vals[j] += (float)s;
    }
}
