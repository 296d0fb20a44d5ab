/* ops.h — every differentiable operation of the engine, at two levels.
 *
 * 1. Raw kernels (llm.c style): plain float pointers, outputs first, sizes last, no allocation, no
 *    tape. `*_forward` writes its output; `*_backward` ACCUMULATES (+=) into every gradient pointer that
 *    is non-NULL (NULL = that input is frozen: skip the work). Each optimised kernel has a plain
 *    reference loop `*_ref` beside it, used by the tests.
 * 2. Tape ops (sf_*): take and return sf_tensor, check shapes/dtypes (returning NULL with a message on
 *    bad input), compute the forward with the raw kernel, and record a node whose backward calls the raw
 *    backward. Returned tensors are owned by the graph (see graph.h). Tensors are viewed as matrices
 *    (rows, last dim) where it makes sense: (B, T, C) and (B*T, C) are interchangeable.
 *
 * This header declares; the implementations live in ops_linear.c, ops_elementwise.c, ops_norm.c,
 * ops_embed.c, ops_attention.c and ops_loss.c (one family each).
 */
#ifndef SF_OPS_H
#define SF_OPS_H

#include "graph.h"

/* ================================ linear / matmul (ops_linear.c) ================================ */
typedef enum {
    SF_W_OUT_IN = 0, /* weight (OC, C): y = x W^T + b   (nn.Linear, Llama, BERT)  */
    SF_W_IN_OUT = 1, /* weight (C, OC): y = x W + b     (GPT-2 Conv1D)            */
} sf_wlayout;

/* out (N, OC) = inp (N, C) . W + bias (OC) (bias may be NULL). */
void sf_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int64_t N,
                       int64_t C, int64_t OC, sf_wlayout layout);
/* dinp (N, C) += dout . W^T ; dweight += (layout) ; dbias (OC) += column sums of dout. */
void sf_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, int64_t N, int64_t C, int64_t OC, sf_wlayout layout);
/* Checks a linear's operands (graph, f32 x and weight, layout, x's last dim against the weight, bias (OC));
 * sets N (rows: the product of x's leading dims), C, OC and the output shape (..., OC). Errors name `op`. */
sf_status sf_linear_shapes(const char *op, sf_graph *g, sf_tensor *x, sf_tensor *w, sf_tensor *b, sf_wlayout layout,
                           int64_t *N_out, int64_t *C_out, int64_t *OC_out, int64_t *out_shape);
/* sf_linear_backward with a choice per output: dinp and dweight (either may be NULL) are overwritten when
 * their `fresh` flag is set (beta 0: not zeroed first, not read) and accumulated into otherwise; dbias
 * always accumulates. Returns 1 when dweight was written whole by a product that checked its stores and
 * found every value finite (sf_sgemm_finite), 0 otherwise. */
int sf_linear_backward_into(float *dinp, int dinp_fresh, float *dweight, int dweight_fresh, float *dbias,
                             const float *dout, const float *inp, const float *weight, int64_t N, int64_t C,
                             int64_t OC, sf_wlayout layout);
void sf_linear_forward_ref(float *out, const float *inp, const float *weight, const float *bias, int64_t N,
                           int64_t C, int64_t OC, sf_wlayout layout);
void sf_linear_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, int64_t N, int64_t C, int64_t OC, sf_wlayout layout);

/* Sampled weight gradient (ops_sampled.c): vals[j] += dW[idx[j]] for j < k, computed as dot products
 * of the output gradient dout (N, OC) and the input inp (N, C) without forming dW. scratch: at least
 * sf_linear_weight_grad_sampled_scratch(k, N, C, OC) floats (nothing is done with less). */
int64_t sf_linear_weight_grad_sampled_scratch(int64_t k, int64_t N, int64_t C, int64_t OC);
void sf_linear_weight_grad_sampled(float *vals, sf_index_array idx, int64_t k, const float *dout, const float *inp,
                                   float *scratch, int64_t n_scratch, int64_t N, int64_t C, int64_t OC,
                                   sf_wlayout layout);
void sf_linear_weight_grad_sampled_ref(float *vals, sf_index_array idx, int64_t k, const float *dout, const float *inp,
                                       int64_t N, int64_t C, int64_t OC, sf_wlayout layout);

/* x (..., C), w (OC, C) or (C, OC), b (OC) or NULL -> (..., OC). A weight that is a sampled sparse leaf
 * (see graph.h) gets only its selected gradient entries, through sf_linear_weight_grad_sampled. */
sf_tensor *sf_linear(sf_graph *g, sf_tensor *x, sf_tensor *w, sf_tensor *b, sf_wlayout layout);
/* a (M, K) . b (K, N) -> (M, N). */
sf_tensor *sf_matmul(sf_graph *g, sf_tensor *a, sf_tensor *b);

/* ============================== elementwise (ops_elementwise.c) ================================= */
sf_tensor *sf_add(sf_graph *g, sf_tensor *a, sf_tensor *b);   /* same shape */
sf_tensor *sf_sub(sf_graph *g, sf_tensor *a, sf_tensor *b);   /* same shape */
sf_tensor *sf_mul(sf_graph *g, sf_tensor *a, sf_tensor *b);   /* same shape */
sf_tensor *sf_scale(sf_graph *g, sf_tensor *a, float s);
sf_tensor *sf_tanh(sf_graph *g, sf_tensor *x);
typedef enum { SF_GELU_TANH = 0, SF_GELU_ERF = 1 } sf_gelu_kind;
sf_tensor *sf_gelu(sf_graph *g, sf_tensor *x, sf_gelu_kind kind);
/* linear(gelu(u), w, b) keeping only u for backward (gelu(u) is recomputed there): the same result
 * as sf_gelu then sf_linear, with (..., C) floats less resident; the weight may be a sampled sparse leaf. */
sf_tensor *sf_gelu_linear(sf_graph *g, sf_tensor *u, sf_gelu_kind kind, sf_tensor *w, sf_tensor *b, sf_wlayout layout);
sf_tensor *sf_silu(sf_graph *g, sf_tensor *x);
/* silu(gate) * up, same shapes (Llama MLP). */
sf_tensor *sf_swiglu(sf_graph *g, sf_tensor *gate, sf_tensor *up);
/* Inverted dropout with probability p; the keep mask is a pure function of (seed, flat index), so no
 * mask is stored and the same seed gives the same mask. p == 0 returns x unchanged. */
sf_tensor *sf_dropout(sf_graph *g, sf_tensor *x, float p, uint64_t seed);
/* Sum of all elements -> one-element tensor (handy for tests and custom losses). */
sf_tensor *sf_sum(sf_graph *g, sf_tensor *x); /* shape (1,) */

/* gelu(x + bias): x (..., C), bias (C) added to every row. The bias of an MLP up-projection fused into
 * its activation (run the linear without bias): no bias fill before the gemm, and dbias summed in the
 * same pass as dx instead of a second read. Measured within +-3% of sf_linear (with bias) + sf_gelu at
 * gpt2-4m and GPT-2 124M shapes (the GELU math dominates; scripts/bench_kernels.c), so the models do
 * not use it: their up projections keep the bias in sf_linear. */
sf_tensor *sf_bias_gelu(sf_graph *g, sf_tensor *x, sf_tensor *bias, sf_gelu_kind kind);

void sf_gelu_forward(float *out, const float *inp, int64_t n, sf_gelu_kind kind);
void sf_gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n, sf_gelu_kind kind);
/* out = gelu(inp) and grad = gelu'(inp) in one pass (one tanh or erf per element), all (n,). */
void sf_gelu_forward_grad(float *out, float *grad, const float *inp, int64_t n, sf_gelu_kind kind);
void sf_gelu_forward_ref(float *out, const float *inp, int64_t n, sf_gelu_kind kind);
void sf_gelu_backward_ref(float *dinp, const float *inp, const float *dout, int64_t n, sf_gelu_kind kind);
/* out (N, C) = gelu(inp (N, C) + bias (C)). */
void sf_bias_gelu_forward(float *out, const float *inp, const float *bias, int64_t N, int64_t C, sf_gelu_kind kind);
/* dz = dout * gelu'(inp + bias); dinp (N, C) += dz; dbias (C) += column sums of dz (either may be NULL).
 * scratch: sf_bias_gelu_backward_scratch(N, C) floats for per-block column sums, needed when dbias is set. */
int64_t sf_bias_gelu_backward_scratch(int64_t N, int64_t C);
void sf_bias_gelu_backward(float *dinp, float *dbias, float *scratch, const float *dout, const float *inp,
                           const float *bias, int64_t N, int64_t C, sf_gelu_kind kind);
void sf_bias_gelu_forward_ref(float *out, const float *inp, const float *bias, int64_t N, int64_t C,
                              sf_gelu_kind kind);
void sf_bias_gelu_backward_ref(float *dinp, float *dbias, const float *dout, const float *inp, const float *bias,
                               int64_t N, int64_t C, sf_gelu_kind kind);

/* ================================== norms (ops_norm.c) ========================================== */
/* LayerNorm over the last dim: x (N, C), weight/bias (C) (bias may be NULL). */
sf_tensor *sf_layernorm(sf_graph *g, sf_tensor *x, sf_tensor *weight, sf_tensor *bias, float eps);
/* Residual add + LayerNorm fused: sum = x + d and out = layernorm(sum) in one pass over the rows. Both
 * results are differentiable: *sum_out (if not NULL) receives the sum (graph-owned, like out) for use as
 * the next residual stream; its gradient from later consumers and the one through the norm reach x and d
 * in one backward pass. x, d (N, C) same shape; weight/bias (C) (bias may be NULL). -> out (N, C).
 * (On the tape: a node producing the sum, then the norm's node, whose backward does the work of both and
 * hands the sum node nothing; when the norm's output gets no gradient the sum node back-propagates alone.) */
sf_tensor *sf_add_layernorm(sf_graph *g, sf_tensor *x, sf_tensor *d, sf_tensor *weight, sf_tensor *bias, float eps,
                            sf_tensor **sum_out);
/* RMSNorm over the last dim: x (N, C), weight (C). */
sf_tensor *sf_rmsnorm(sf_graph *g, sf_tensor *x, sf_tensor *weight, float eps);

void sf_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                          const float *bias, int64_t N, int64_t C, float eps);
void sf_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                           const float *weight, const float *mean, const float *rstd, int64_t N, int64_t C);
/* sum (N, C) = a + b; out = layernorm(sum) as sf_layernorm_forward (mean/rstd of sum). */
void sf_add_layernorm_forward(float *sum, float *out, float *mean, float *rstd, const float *a, const float *b,
                              const float *weight, const float *bias, int64_t N, int64_t C, float eps);
/* g = dsum + (layernorm dinp of dout); da += g and db += g (da == db allowed: gets 2 g); dweight, dbias
 * as layernorm. dsum (N, C): the sum's gradient from its other consumers, or NULL (none). */
void sf_add_layernorm_backward(float *da, float *db, float *dweight, float *dbias, const float *dsum,
                               const float *dout, const float *sum, const float *weight, const float *mean,
                               const float *rstd, int64_t N, int64_t C);
void sf_add_layernorm_forward_ref(float *sum, float *out, float *mean, float *rstd, const float *a, const float *b,
                                  const float *weight, const float *bias, int64_t N, int64_t C, float eps);
void sf_add_layernorm_backward_ref(float *da, float *db, float *dweight, float *dbias, const float *dsum,
                                   const float *dout, const float *sum, const float *weight, const float *mean,
                                   const float *rstd, int64_t N, int64_t C);
void sf_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int64_t N, int64_t C,
                        float eps);
void sf_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                         const float *rstd, int64_t N, int64_t C);
void sf_layernorm_forward_ref(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                              const float *bias, int64_t N, int64_t C, float eps);
void sf_layernorm_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                               const float *weight, const float *mean, const float *rstd, int64_t N, int64_t C);
void sf_rmsnorm_forward_ref(float *out, float *rstd, const float *inp, const float *weight, int64_t N, int64_t C,
                            float eps);
void sf_rmsnorm_backward_ref(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                             const float *rstd, int64_t N, int64_t C);

/* ================================ embeddings, positions (ops_embed.c) =========================== */
/* ids: i32 or i64 tensor of any shape (S...), values in [0, V); table (V, C) -> (S..., C).
 * Out-of-range ids are an error naming the offending id and position. */
sf_tensor *sf_embedding(sf_graph *g, sf_tensor *ids, sf_tensor *table);
/* Gathers rows of x (N, C) at i32/i64 indices (M) -> (M, C) (e.g. last non-pad token per sequence). */
sf_tensor *sf_gather_rows(sf_graph *g, sf_tensor *x, sf_tensor *idx);

typedef enum {
    SF_ROPE_INTERLEAVED = 0, /* pairs (2i, 2i+1) of each head, llama2.c / Meta */
    SF_ROPE_HALF = 1,        /* pairs (i, i + D/2), Hugging Face rotate_half */
} sf_rope_kind;
/* Rotary position encoding applied in place of a copy: x (B, T, W) where each row holds heads of size
 * head_dim; only the first n_heads*head_dim columns of each row are rotated (so a fused q|k|v row can
 * rotate q and k and leave v). pos: i32/i64 (B, T) position ids, or NULL for 0..T-1. Angle for pair i:
 * pos * theta^(-2i/rot_dim), rot_dim = head_dim. */
sf_tensor *sf_rope(sf_graph *g, sf_tensor *x, sf_tensor *pos, int64_t n_heads, int64_t head_dim, float theta,
                   sf_rope_kind kind);

/* raw kernels */
/* out (N, C) = table[ids[n], :]; ids (N) must be in [0, V) (the tape op checks). */
void sf_embedding_forward(float *out, const int64_t *ids, const float *table, int64_t N, int64_t C);
/* dtable (V, C) [ids[n], :] += dout (N, C) [n, :]; dtable NULL = frozen: no work. */
void sf_embedding_backward(float *dtable, const float *dout, const int64_t *ids, int64_t N, int64_t C);
void sf_embedding_forward_ref(float *out, const int64_t *ids, const float *table, int64_t N, int64_t C);
void sf_embedding_backward_ref(float *dtable, const float *dout, const int64_t *ids, int64_t N, int64_t C);

/* cos, sin (n_tab, head_dim/2) for positions pos (n_tab), or pos NULL = positions 0..n_tab-1. */
void sf_rope_table(float *cos_tab, float *sin_tab, const int64_t *pos, int64_t n_tab, int64_t head_dim, float theta);
/* out (N, W) = rope(inp (N, W)): row r uses table row r % n_tab of cos/sin (n_tab, head_dim/2)
 * (n_tab = T with shared positions 0..T-1, or n_tab = N with one position per row). The first
 * n_heads*head_dim columns are rotated per head, the rest copied. */
void sf_rope_forward(float *out, const float *inp, const float *cos_tab, const float *sin_tab, int64_t N, int64_t W,
                     int64_t n_tab, int64_t n_heads, int64_t head_dim, sf_rope_kind kind);
/* dinp (N, W) += inverse rotation of dout (N, W); dinp NULL = no work. */
void sf_rope_backward(float *dinp, const float *dout, const float *cos_tab, const float *sin_tab, int64_t N,
                      int64_t W, int64_t n_tab, int64_t n_heads, int64_t head_dim, sf_rope_kind kind);
void sf_rope_forward_ref(float *out, const float *inp, const float *cos_tab, const float *sin_tab, int64_t N,
                         int64_t W, int64_t n_tab, int64_t n_heads, int64_t head_dim, sf_rope_kind kind);
void sf_rope_backward_ref(float *dinp, const float *dout, const float *cos_tab, const float *sin_tab, int64_t N,
                          int64_t W, int64_t n_tab, int64_t n_heads, int64_t head_dim, sf_rope_kind kind);

/* ================================== attention (ops_attention.c) ================================= */
/* Multi-head scaled dot-product attention with grouped-query heads.
 * q (B, T, NH*HD), k and v (B, T, NKV*HD), NH % NKV == 0 (query head h reads kv head h / (NH/NKV)).
 * key_mask: optional (B, T) i32/i64/f32 tensor, nonzero = real token; masked keys get no weight.
 * causal: 1 = query t sees keys <= t (decoders), 0 = bidirectional (encoders).
 * A query row that sees no key outputs zeros. Scale 1/sqrt(HD). Saves the probabilities
 * (B, NH, T, T): O(T^2) memory per head; backward is O(T^2 * HD) per head.
 * -> (B, T, NH*HD). */
sf_tensor *sf_attention(sf_graph *g, sf_tensor *q, sf_tensor *k, sf_tensor *v, sf_tensor *key_mask,
                        int64_t NH, int64_t NKV, int causal);

/* The same on a fused projection: qkv (B, T, (NH + 2 NKV) HD) holds q | k | v in each row (GPT-2's
 * c_attn output), read in place with row strides (no slicing copies). -> (B, T, NH*HD). */
sf_tensor *sf_attention_qkv(sf_graph *g, sf_tensor *qkv, sf_tensor *key_mask, int64_t NH, int64_t NKV, int64_t HD,
                            int causal);

/* Packed sequences: instead of a padded (B, T) batch, x's B * T rows hold S sequences one after the
 * other (a padded batch's real tokens, no pad rows), each attending only within itself. seqs is their
 * layout, made by sf_attention_layout from the lengths: an i64 (S, 3) table {first row, length, offset of
 * its probabilities}; the probabilities are NH (len, len) per sequence. Same results as the padded batch
 * with its key mask on the real rows, for the work and memory of the real tokens only. */
sf_tensor *sf_attention_layout(sf_graph *g, const int64_t *lens, int64_t S, int64_t NH);
sf_tensor *sf_attention_packed(sf_graph *g, sf_tensor *q, sf_tensor *k, sf_tensor *v, sf_tensor *seqs, int64_t NH,
                               int64_t NKV, int causal);
sf_tensor *sf_attention_qkv_packed(sf_graph *g, sf_tensor *qkv, sf_tensor *seqs, int64_t NH, int64_t NKV, int64_t HD,
                                   int causal);

/* ==================================== loss (ops_loss.c) ========================================= */
/* Mean softmax cross-entropy: logits (N, V), targets i32/i64 (N); rows whose target == ignore_index
 * are skipped; the mean is over the remaining rows (0 if none). Targets outside [0, V) other than
 * ignore_index are an error. -> one-element tensor. */
sf_tensor *sf_cross_entropy(sf_graph *g, sf_tensor *logits, sf_tensor *targets, int64_t ignore_index);
/* Mean squared error (regression heads, Hugging Face's num_labels = 1): pred (N) or (N, 1), target
 * f32 (N): mean over rows of (pred - target)^2, summed in double; gradient for pred only.
 * -> one-element tensor. */
sf_tensor *sf_mse_loss(sf_graph *g, sf_tensor *pred, sf_tensor *target);

/* LM head + cross-entropy fused (ops_lmhead.c), for when only the loss is needed: mean over
 * non-ignored rows of CE(h W^T, targets), h (..., C), W (V, C), targets (N = rows of h). The logits are
 * formed block by block of vocabulary columns. A frozen head (only dh wanted) gets dh formed in the
 * forward (O(N * C) memory); a trainable one keeps the blocks' exponentials for backward when
 * N * V <= keep_floats, else backward recomputes them (O(1 M) floats). -> one-element tensor. */
#define SF_LMHEAD_KEEP_FLOATS ((int64_t)16 << 20) /* 64 MB: a trainable head keeps GPT-2 124M 4x64 (51 MB) */
sf_tensor *sf_lm_head_loss(sf_graph *g, sf_tensor *h, sf_tensor *W, sf_tensor *targets, int64_t ignore_index,
                           int64_t keep_floats);

/* ================================== shapes (ops_shape.c) ======================================= */
/* A view of x with another shape (same numel, no copy); its gradient flows back into x. */
sf_tensor *sf_reshape(sf_graph *g, sf_tensor *x, int ndim, const int64_t *shape);
/* Columns [start, start+len) of every row of x (..., C) -> (..., len) (a copy). */
sf_tensor *sf_slice_cols(sf_graph *g, sf_tensor *x, int64_t start, int64_t len);

/* ================================== helpers for op implementations ============================= */
/* Reads element i of an i32/i64 index tensor. */
static inline int64_t sf_index_at(const sf_tensor *t, int64_t i) {
    return t->dtype == SF_I64 ? ((const int64_t *)sf_tensor_data(t))[i]
                              : (int64_t)((const int32_t *)sf_tensor_data(t))[i];
}
/* Error unless t is f32 (names the argument). */
sf_status sf_check_f32(const sf_tensor *t, const char *op, const char *arg);
/* Error unless t is i32 or i64. */
sf_status sf_check_index(const sf_tensor *t, const char *op, const char *arg);
/* Inside an OpenMP parallel region: the columns [*j0, *j1) of C the calling thread owns in a
 * column-parallel pass (whole slices of 16; each thread walks every row over its slice, so column sums
 * need no atomics and do not depend on the thread count). */
void sf_omp_columns(int64_t C, int64_t *j0, int64_t *j1);

#endif
