/* test_attention_packed.c — attention over packed sequences (sf_attention_packed, sf_attention_qkv_packed,
 * sf_attention_layout in ops_attention.c): a padded batch's real rows laid one after the other must give
 * the padded batch's outputs and gradients on those rows (its key mask hiding the pads), for causal and
 * bidirectional attention, MHA and GQA, sequences of 1 token, of the register-blocked path's lengths and
 * of the blocked GEMM path's (longer than 64, not whole vectors), both paths in one batch with the
 * blocked one's sequence the longest, a head size no vector path takes; finite
 * differences of the packed op; the layout table; malformed layouts refused with a message. */
#include <math.h>
#include <string.h>

#include "../core/ops.h"
#include "gradcheck.h"
#include "test.h"

#define TOL 2e-5 /* packed vs padded: the same sums, in another order where the paths differ */

static sf_tensor *randn(int ndim, const int64_t *shape, unsigned long long seed, int trainable) {
    sf_tensor *t = sf_tensor_new_f32(ndim, shape);
    gc_fill_randn(t, seed, 1.0f);
    sf_param_set_trainable(t, trainable);
    return t;
}

/* rows (B, T, W) of a padded tensor -> (1, N, W) holding row b's first lens[b] rows, in order */
static sf_tensor *pack_rows(const sf_tensor *x, const int64_t *lens, int trainable) {
    const int64_t B = x->shape[0], T = x->shape[1], W = x->shape[2];
    int64_t N = 0;
    for (int64_t b = 0; b < B; b++) N += lens[b];
    int64_t s[3] = {1, N, W};
    sf_tensor *p = sf_tensor_new_f32(3, s);
    int64_t r = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < lens[b]; t++, r++) memcpy(sf_f32(p) + r * W, sf_f32(x) + (b * T + t) * W, (size_t)W * 4);
    sf_param_set_trainable(p, trainable);
    return p;
}

/* max relative difference between padded (B, T, W)'s real rows and packed (1, N, W) */
static double real_rows_diff(const sf_tensor *padded, const sf_tensor *packed, const int64_t *lens) {
    const int64_t B = padded->shape[0], T = padded->shape[1], W = padded->shape[2];
    double worst = 0;
    int64_t r = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < lens[b]; t++, r++) {
            double d = gc_max_rel_diff(sf_f32(packed) + r * W, sf_f32(padded) + (b * T + t) * W, W);
            worst = d > worst ? d : worst;
        }
    return worst;
}

/* Padded q, k, v (or one fused qkv) with a right-padding mask vs the packed real rows: outputs and the
 * gradients of every input under a random upstream gradient that is zero on the pad rows. */
static void packed_vs_padded(const char *label, int64_t B, const int64_t *lens, int64_t NH, int64_t NKV, int64_t HD,
                             int causal, int fused, unsigned long long seed) {
    int64_t T = 0;
    for (int64_t b = 0; b < B; b++) T = lens[b] > T ? lens[b] : T;
    const int64_t Wq = NH * HD, Wk = NKV * HD, Wf = (NH + 2 * NKV) * HD;
    const int n_in = fused ? 1 : 3;
    int64_t sq[3] = {B, T, fused ? Wf : Wq}, sk[3] = {B, T, Wk};
    sf_tensor *pad[3], *pk[3];
    for (int i = 0; i < n_in; i++) {
        pad[i] = randn(3, i == 0 ? sq : sk, seed + (unsigned long long)i, 1);
        pk[i] = pack_rows(pad[i], lens, 1);
    }
    int64_t ms[2] = {B, T};
    sf_tensor *mask = sf_tensor_zeros(SF_I64, 2, ms);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < lens[b]; t++) sf_tensor_set_flat(mask, b * T + t, 1);

    sf_graph *g1 = sf_graph_new(), *g2 = sf_graph_new();
    sf_tensor *seqs = sf_attention_layout(g2, lens, B, NH);
    REQUIRE(seqs, "%s: layout: %s", label, sf_last_error());
    sf_tensor *y1 = fused ? sf_attention_qkv(g1, pad[0], mask, NH, NKV, HD, causal)
                          : sf_attention(g1, pad[0], pad[1], pad[2], mask, NH, NKV, causal);
    sf_tensor *y2 = fused ? sf_attention_qkv_packed(g2, pk[0], seqs, NH, NKV, HD, causal)
                          : sf_attention_packed(g2, pk[0], pk[1], pk[2], seqs, NH, NKV, causal);
    REQUIRE(y1 && y2, "%s: %s", label, sf_last_error());
    double d = real_rows_diff(y1, y2, lens);
    CHECK(d <= TOL, "%s: outputs differ by %g", label, d);

    sf_tensor *seed1 = sf_tensor_zeros(SF_F32, 3, y1->shape);
    sf_tensor *seed2 = randn(3, y2->shape, seed + 7, 0);
    int64_t r = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < lens[b]; t++, r++)
            memcpy(sf_f32(seed1) + (b * T + t) * Wq, sf_f32(seed2) + r * Wq, (size_t)Wq * 4);
    REQUIRE(sf_graph_backward(g1, y1, seed1) == SF_OK && sf_graph_backward(g2, y2, seed2) == SF_OK, "%s: %s", label,
            sf_last_error());
    for (int i = 0; i < n_in; i++) {
        REQUIRE(pad[i]->grad && pk[i]->grad, "%s: input %d got no gradient", label, i);
        d = real_rows_diff(pad[i]->grad, pk[i]->grad, lens);
        CHECK(d <= TOL, "%s: gradient of input %d differs by %g", label, i, d);
    }
    sf_graph_free(g1), sf_graph_free(g2);
    for (int i = 0; i < n_in; i++) sf_tensor_release(pad[i]), sf_tensor_release(pk[i]);
    sf_tensor_release(mask), sf_tensor_release(seed1), sf_tensor_release(seed2);
}

TEST(packed_causal_gqa_short_lengths) {
    const int64_t lens[] = {5, 1, 64, 17, 33};
    packed_vs_padded("causal GQA 4/2 HD16", 5, lens, 4, 2, 16, 1, 0, 11);
    packed_vs_padded("causal GQA 4/2 HD16 fused", 5, lens, 4, 2, 16, 1, 1, 21);
}

TEST(packed_bidirectional_mha_long_lengths) {
    /* 70 and 129 take the blocked GEMM path (longer than 64, not whole vectors), 3 the short one */
    const int64_t lens[] = {70, 3, 129};
    packed_vs_padded("bidirectional MHA HD16", 3, lens, 2, 2, 16, 0, 0, 31);
    packed_vs_padded("causal MHA HD16 fused", 3, lens, 2, 2, 16, 1, 1, 41);
}

TEST(packed_mixed_paths_work_space) {
    /* the longest sequence (257) takes the blocked path, whose per-thread work space is smaller than the
     * short path's for 256 tokens in whole vectors: the space must fit the most demanding sequence */
    const int64_t lens[] = {257, 256, 80};
    packed_vs_padded("causal MHA HD16 257/256/80", 3, lens, 2, 2, 16, 1, 0, 81);
    packed_vs_padded("bidirectional GQA 2/1 HD16 257/256/80 fused", 3, lens, 2, 1, 16, 0, 1, 91);
}

TEST(packed_odd_head_size_gqa_4_1) {
    /* HD 5: no vector path; GQA with one kv head reduces four heads' partials per sequence */
    const int64_t lens[] = {9, 2, 13, 1};
    packed_vs_padded("causal GQA 4/1 HD5", 4, lens, 4, 1, 5, 1, 0, 51);
    packed_vs_padded("bidirectional GQA 4/1 HD5 fused", 4, lens, 4, 1, 5, 0, 1, 61);
}

typedef struct {
    int64_t NH, NKV;
    int causal;
    const int64_t *lens;
    int64_t S;
} packed_ctx;

static sf_tensor *build_packed(sf_graph *g, sf_tensor **in, void *ctx) {
    packed_ctx *c = ctx;
    sf_tensor *seqs = sf_attention_layout(g, c->lens, c->S, c->NH);
    return seqs ? sf_attention_packed(g, in[0], in[1], in[2], seqs, c->NH, c->NKV, c->causal) : NULL;
}

TEST(packed_gradcheck) {
    const int64_t lens[] = {4, 1, 6}, N = 11, NH = 4, NKV = 2, HD = 3;
    int64_t sq[3] = {1, N, NH * HD}, sk[3] = {1, N, NKV * HD};
    for (int causal = 0; causal <= 1; causal++) {
        sf_tensor *in[3] = {randn(3, sq, 71, 1), randn(3, sk, 72, 1), randn(3, sk, 73, 1)};
        packed_ctx c = {NH, NKV, causal, lens, 3};
        double e = gradcheck(causal ? "packed causal GQA" : "packed bidirectional GQA", build_packed, &c, in, 3, 1e-2,
                             1000);
        CHECK(e <= 1e-3, "gradcheck error %g (causal %d)", e, causal);
        for (int i = 0; i < 3; i++) sf_tensor_release(in[i]);
    }
}

TEST(packed_layout_table) {
    sf_graph *g = sf_graph_new();
    const int64_t lens[] = {3, 1, 2}, NH = 2;
    sf_tensor *t = sf_attention_layout(g, lens, 3, NH);
    REQUIRE(t && t->dtype == SF_I64 && t->ndim == 2 && t->shape[0] == 3 && t->shape[1] == 3, "layout shape");
    const int64_t want[9] = {0, 3, 0, 3, 1, 18, 4, 2, 20};
    for (int i = 0; i < 9; i++)
        CHECK(((int64_t *)sf_tensor_data(t))[i] == want[i], "entry %d: %lld, want %lld", i,
              (long long)((int64_t *)sf_tensor_data(t))[i], (long long)want[i]);
    const int64_t zero[] = {2, 0};
    sf_clear_error();
    CHECK(!sf_attention_layout(g, zero, 2, NH) && strstr(sf_last_error(), "sequence 1 has length 0"), "zero length: %s",
          sf_last_error());
    sf_graph_free(g);
}

TEST(packed_errors) {
    sf_graph *g = sf_graph_new();
    const int64_t lens[] = {3, 2}, NH = 2, NKV = 1, HD = 4;
    int64_t sq[3] = {1, 5, NH * HD}, sk[3] = {1, 5, NKV * HD}, sq6[3] = {1, 6, NH * HD}, s2[2] = {2, 2};
    sf_tensor *q = randn(3, sq, 1, 0), *k = randn(3, sk, 2, 0), *v = randn(3, sk, 3, 0), *q6 = randn(3, sq6, 4, 0);
    sf_tensor *seqs = sf_attention_layout(g, lens, 2, NH);
    sf_tensor *narrow = sf_tensor_zeros(SF_I64, 2, s2);
    sf_tensor *shuffled = sf_tensor_clone(seqs);
    ((int64_t *)sf_tensor_data(shuffled))[3] = 1; /* the second sequence no longer starts where the first ends */
    REQUIRE(seqs && narrow && shuffled, "setup");
    sf_clear_error();
    CHECK(!sf_attention_packed(g, q, k, v, NULL, NH, NKV, 1) && strstr(sf_last_error(), "layout is required"), "%s",
          sf_last_error());
    CHECK(!sf_attention_packed(g, q, k, v, narrow, NH, NKV, 1) && strstr(sf_last_error(), "(S, 3)"), "%s",
          sf_last_error());
    CHECK(!sf_attention_packed(g, q, k, v, shuffled, NH, NKV, 1) && strstr(sf_last_error(), "row 1"), "%s",
          sf_last_error());
    sf_tensor *k6 = randn(3, (int64_t[3]){1, 6, NKV * HD}, 5, 0), *v6 = randn(3, (int64_t[3]){1, 6, NKV * HD}, 6, 0);
    CHECK(!sf_attention_packed(g, q6, k6, v6, seqs, NH, NKV, 1) && strstr(sf_last_error(), "hold 5 rows, the input 6"),
          "%s", sf_last_error());
    sf_graph_free(g);
    sf_tensor_release(q), sf_tensor_release(k), sf_tensor_release(v), sf_tensor_release(q6);
    sf_tensor_release(k6), sf_tensor_release(v6), sf_tensor_release(narrow), sf_tensor_release(shuffled);
}

TEST_MAIN()
