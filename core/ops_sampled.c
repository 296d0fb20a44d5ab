/* ops_sampled.c — selected entries of a linear layer's weight gradient, computed directly as dot
 * products of the layer input and the output gradient (a sampled dense-dense product): for SIFT
 * targets whose mask is fixed, k entries cost k*N multiply-adds instead of the N*C*OC of a full dW.
 * The optimised kernel decodes each flat index into (output, input) coordinates once, then streams the
 * rows of dout and inp in blocks, every thread owning a contiguous range of the k entries (so no two
 * threads write the same value and no transposed copy is needed). A plain reference loop sits beside it. */
#include "ops.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define SAMPLED_ROWS 32 /* rows of dout/inp per block: keeps the block in L1/L2 across the k entries */

void sf_linear_weight_grad_sampled(float *vals, const int64_t *idx, int64_t k, const float *dout, const float *inp,
                                   int32_t *coord, int64_t N, int64_t C, int64_t OC, sf_wlayout layout) {
    // coord (2k): scratch for the decoded (o, i) of each entry
    int32_t *co = coord, *ci = coord + k;
    for (int64_t j = 0; j < k; j++) {
        int64_t e = idx[j];
        co[j] = (int32_t)(layout == SF_W_OUT_IN ? e / C : e % OC);
        ci[j] = (int32_t)(layout == SF_W_OUT_IN ? e % C : e / OC);
    }
#pragma omp parallel if (k * N > (1 << 16))
    {
        int nt = 1, t = 0;
#ifdef _OPENMP
        nt = omp_get_num_threads();
        t = omp_get_thread_num();
#endif
        int64_t j0 = k * t / nt, j1 = k * (t + 1) / nt;
        for (int64_t n0 = 0; n0 < N; n0 += SAMPLED_ROWS) {
            int64_t n1 = n0 + SAMPLED_ROWS < N ? n0 + SAMPLED_ROWS : N;
            for (int64_t j = j0; j < j1; j++) {
                const float *d = dout + co[j], *x = inp + ci[j];
                float s = 0;
                for (int64_t n = n0; n < n1; n++) s += d[n * OC] * x[n * C];
                vals[j] += s;
            }
        }
    }
}

void sf_linear_weight_grad_sampled_ref(float *vals, const int64_t *idx, int64_t k, const float *dout, const float *inp,
                                       int64_t N, int64_t C, int64_t OC, sf_wlayout layout) {
    for (int64_t j = 0; j < k; j++) {
        int64_t e = idx[j];
        int64_t o = layout == SF_W_OUT_IN ? e / C : e % OC, i = layout == SF_W_OUT_IN ? e % C : e / OC;
        double s = 0;
        for (int64_t n = 0; n < N; n++) s += (double)dout[n * OC + o] * inp[n * C + i];
        vals[j] += (float)s;
    }
}
