/* attention_short.h — one (batch, head) of attention for sequences of at most SF_ATT_SHORT_T tokens,
 * computed by register-blocked panels that read q, k, v in place (attention_short.c). Internal to the
 * core: ops_attention.c calls it for each head when sf_attention_short_fits(T, HD), else it runs its
 * blocked GEMM path. Layouts are those of ops_attention.c's raw kernels, for one head:
 *   qh, kh, vh (T, HD) with row strides q_rs, k_rs, v_rs; oh, doh (T, HD) row stride ldo;
 *   ah (T, T) the probabilities, written by forward, read by backward; mask (T) key padding or NULL;
 *   dqh, dkh, dvh (T, HD) row strides ldq, ldk, ldv, accumulated into (+=), each may be NULL. */
#ifndef SF_ATTENTION_SHORT_H
#define SF_ATTENTION_SHORT_H

#include <stdint.h>

#define SF_ATT_SHORT_T 256 /* longest sequence the short path takes */

/* 1 when a (T, HD) head can take the short path on this build's vector width: T up to 64, or up to
 * SF_ATT_SHORT_T in whole vectors; HD whole vectors, at most 8 of them. */
int sf_attention_short_fits(int64_t T, int64_t HD);
/* Floats of per-thread work space sf_attention_short_backward_head needs. */
int64_t sf_attention_short_work(int64_t T, int64_t HD);
void sf_attention_short_forward_head(float *oh, int64_t ldo, float *ah, const float *qh, int64_t q_rs, const float *kh,
                                     int64_t k_rs, const float *vh, int64_t v_rs, const float *mask, int64_t T,
                                     int64_t HD, float scale, int causal);
void sf_attention_short_backward_head(float *dqh, int64_t ldq, float *dkh, int64_t ldk, float *dvh, int64_t ldv,
                                      const float *doh, int64_t ldo, const float *qh, int64_t q_rs, const float *kh,
                                      int64_t k_rs, const float *vh, int64_t v_rs, const float *ah, const float *mask,
                                      int64_t T, int64_t HD, float scale, int causal, float *work);

#endif
