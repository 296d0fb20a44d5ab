/* ops_sampled.c — selected entries of a linear layer's weight gradient, computed directly as dot
 * products of the layer input and the output gradient (a sampled dense-dense product): for SIFT
 * targets whose mask is fixed, k entries cost k*N multiply-adds instead of the N*C*OC of a full dW.
 * The optimised kernel transposes dout and inp once so every dot product reads two contiguous rows,
 * and runs the k dot products in parallel. A plain reference loop sits beside it. */
#include "ops.h"

/* (R, Ccols) -> (Ccols, R) */
static void transpose(float *dst, const float *src, int64_t R, int64_t Cc) {
    const int64_t B = 32;
#pragma omp parallel for collapse(2) if (R * Cc > (1 << 16))
    for (int64_t r0 = 0; r0 < R; r0 += B)
        for (int64_t c0 = 0; c0 < Cc; c0 += B)
            for (int64_t r = r0; r < r0 + B && r < R; r++)
                for (int64_t c = c0; c < c0 + B && c < Cc; c++) dst[c * R + r] = src[r * Cc + c];
}

void sf_linear_weight_grad_sampled(float *vals, const int64_t *idx, int64_t k, const float *dout, const float *inp,
                                   float *doutT, float *inpT, int64_t N, int64_t C, int64_t OC, sf_wlayout layout) {
    transpose(doutT, dout, N, OC); // (OC, N)
    transpose(inpT, inp, N, C);    // (C, N)
#pragma omp parallel for schedule(static) if (k * N > (1 << 15))
    for (int64_t j = 0; j < k; j++) {
        int64_t e = idx[j], o, i;
        if (layout == SF_W_OUT_IN) {
            o = e / C;
            i = e % C;
        } else {
            i = e / OC;
            o = e % OC;
        }
        const float *a = doutT + o * N, *b = inpT + i * N;
        float s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t n = 0; n < N; n++) s += a[n] * b[n];
        vals[j] += s;
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
