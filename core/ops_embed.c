/* ops_embed.c — embeddings, row gathers and rotary position encodings (the "embeddings, positions"
 * section of ops.h).
 *
 * What it does:
 *   - sf_embedding: table lookup out[s, :] = table[ids[s], :] for ids of any shape (token embeddings,
 *     and learned position embeddings such as GPT-2's wpe, which are the same op applied to position ids
 *     the caller builds). Backward scatter-adds rows of dout into dtable.
 *   - sf_gather_rows: the same lookup with a 1-D index into an activation x (N, C) (e.g. the last
 *     non-pad token of each sequence; x (B, T, C) is read as (B*T, C), so index b*T + t); backward
 *     scatter-adds into dx.
 *   - sf_rope: rotary position encoding on a copy of x (B, T, W), in the interleaved (llama2.c / Meta)
 *     or half (Hugging Face rotate_half) pairing; columns past n_heads*head_dim are copied unchanged.
 *   Each has raw llm.c-style kernels (outputs first, sizes last, backward ACCUMULATES, NULL grad = skip)
 *   with a plain serial *_ref loop beside every optimised kernel.
 *
 * What it does not: fixed sinusoidal tables, RoPE scaling variants (linear / NTK / YaRN / llama3),
 * partial rotary (rotary dim < head_dim), or any global cos/sin cache — each sf_rope call builds its
 * own (positions x head_dim/2) table from the graph pool and saves it for backward.
 *
 * RoPE angles (chosen to reproduce Hugging Face and llama2.c bit-for-bit in the frequencies):
 *   inv_freq[i] = 1.0f / powf(theta, (float)(2i) / (float)head_dim)        (float32, as both do)
 *   angle       = (float)pos * inv_freq[i]                                 (float32 product, as both do)
 *   cos, sin    = cos/sin of that float angle evaluated in double, rounded to float (the correctly
 *                 rounded value; torch's float32 cos/sin and llama2.c's cosf agree to ~1 ulp).
 *   Rotation of a pair (x0, x1): out0 = x0*cos - x1*sin, out1 = x0*sin + x1*cos.
 *   Interleaved pairs are (2i, 2i+1) of each head, half pairs are (i, i + head_dim/2).
 *
 * Threading: forward kernels are row-parallel; the embedding/gather backward scatter-add is parallel
 * over blocks of columns (every thread walks all ids but owns disjoint columns), so repeated ids never
 * race and the summation order (id order) equals the serial reference exactly.
 *
 * The raw kernels below are not (yet) declared in ops.h; their prototypes are listed here.
 */
#include <math.h>
#include <string.h>

#include "ops.h"
#include "parallel_for.h"
#include "optim.h"

/* Below this many elements a kernel runs on one thread (thread start-up costs more than the work). */
#define SF_EMBED_PAR_MIN ((int64_t)1 << 15)
/* Columns owned by one thread in the scatter-add backward (a multiple of a cache line of floats). */
#define SF_EMBED_COL_BLOCK 64

/* ================================== embedding / gather kernels ================================== */

void sf_embedding_forward(float *out, const int64_t *ids, const float *table, int64_t N, int64_t C) {
    // out (N, C), ids (N), table (V, C)
    SF_PARALLEL_FOR_IF(N * C >= SF_EMBED_PAR_MIN, for (int64_t n = 0; n < N; n++) {
        memcpy(out + n * C, table + ids[n] * C, (size_t)C * sizeof(float));
    });
}

void sf_embedding_forward_ref(float *out, const int64_t *ids, const float *table, int64_t N, int64_t C) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) out[n * C + c] = table[ids[n] * C + c];
}

void sf_embedding_backward(float *dtable, const float *dout, const int64_t *ids, int64_t N, int64_t C) {
    // dtable (V, C), dout (N, C), ids (N)
    if (!dtable) return;
    const int64_t nblk = (C + SF_EMBED_COL_BLOCK - 1) / SF_EMBED_COL_BLOCK;
    /* each thread owns columns [c0, c1) of every row: repeated ids never race */
#pragma omp parallel for schedule(static) if (N * C >= SF_EMBED_PAR_MIN && nblk > 1)
    for (int64_t b = 0; b < nblk; b++) {
        const int64_t c0 = b * SF_EMBED_COL_BLOCK;
        const int64_t c1 = c0 + SF_EMBED_COL_BLOCK < C ? c0 + SF_EMBED_COL_BLOCK : C;
        for (int64_t n = 0; n < N; n++) {
            float *restrict d = dtable + ids[n] * C;   // (C) row of dtable
            const float *restrict g = dout + n * C;    // (C) row of dout
            for (int64_t c = c0; c < c1; c++) d[c] += g[c];
        }
    }
}

void sf_embedding_backward_ref(float *dtable, const float *dout, const int64_t *ids, int64_t N, int64_t C) {
    if (!dtable) return;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) dtable[ids[n] * C + c] += dout[n * C + c];
}

/* ========================================== rope kernels ========================================= */

void sf_rope_table(float *cos_tab, float *sin_tab, const int64_t *pos, int64_t n_tab, int64_t head_dim, float theta) {
    // cos_tab, sin_tab (n_tab, head_dim/2); pos (n_tab) or NULL
    const int64_t half = head_dim / 2;
    SF_PARALLEL_FOR_IF(n_tab * half >= SF_EMBED_PAR_MIN / 8, for (int64_t r = 0; r < n_tab; r++) {
        const float p = (float)(pos ? pos[r] : r);
        for (int64_t i = 0; i < half; i++) {
            const float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
            const float angle = p * inv_freq;
            cos_tab[r * half + i] = (float)cos((double)angle);
            sin_tab[r * half + i] = (float)sin((double)angle);
        }
    });
}

/* Rotates (or, with sgn = -1, inversely rotates) one row; accumulate = 1 adds into o instead of storing. */
static inline void rope_row(float *restrict o, const float *restrict x, const float *restrict c,
                            const float *restrict s, int64_t W, int64_t n_heads, int64_t head_dim,
                            sf_rope_kind kind, float sgn, int accumulate) {
    // o, x (W); c, s (head_dim/2)
    const int64_t half = head_dim / 2, rot = n_heads * head_dim;
    for (int64_t h = 0; h < n_heads; h++) {
        const float *xh = x + h * head_dim;
        float *oh = o + h * head_dim;
        if (kind == SF_ROPE_HALF) {
            for (int64_t i = 0; i < half; i++) {
                const float x0 = xh[i], x1 = xh[i + half], ci = c[i], si = sgn * s[i];
                const float y0 = x0 * ci - x1 * si, y1 = x0 * si + x1 * ci;
                if (accumulate) {
                    oh[i] += y0;
                    oh[i + half] += y1;
                } else {
                    oh[i] = y0;
                    oh[i + half] = y1;
                }
            }
        } else {
            for (int64_t i = 0; i < half; i++) {
                const float x0 = xh[2 * i], x1 = xh[2 * i + 1], ci = c[i], si = sgn * s[i];
                const float y0 = x0 * ci - x1 * si, y1 = x0 * si + x1 * ci;
                if (accumulate) {
                    oh[2 * i] += y0;
                    oh[2 * i + 1] += y1;
                } else {
                    oh[2 * i] = y0;
                    oh[2 * i + 1] = y1;
                }
            }
        }
    }
    if (accumulate)
        for (int64_t j = rot; j < W; j++) o[j] += x[j];
    else if (rot < W)
        memcpy(o + rot, x + rot, (size_t)(W - rot) * sizeof(float));
}

void sf_rope_forward(float *out, const float *inp, const float *cos_tab, const float *sin_tab, int64_t N, int64_t W,
                     int64_t n_tab, int64_t n_heads, int64_t head_dim, sf_rope_kind kind) {
    // out, inp (N, W); cos_tab, sin_tab (n_tab, head_dim/2)
    const int64_t half = head_dim / 2;
    SF_PARALLEL_FOR_IF(N * W >= SF_EMBED_PAR_MIN, for (int64_t r = 0; r < N; r++) {
        const int64_t t = r % n_tab;
        rope_row(out + r * W, inp + r * W, cos_tab + t * half, sin_tab + t * half, W, n_heads, head_dim, kind,
                 1.0f, 0);
    });
}

void sf_rope_backward(float *dinp, const float *dout, const float *cos_tab, const float *sin_tab, int64_t N,
                      int64_t W, int64_t n_tab, int64_t n_heads, int64_t head_dim, sf_rope_kind kind) {
    // dinp, dout (N, W); cos_tab, sin_tab (n_tab, head_dim/2)
    if (!dinp) return;
    const int64_t half = head_dim / 2;
#pragma omp parallel for schedule(static) if (N * W >= SF_EMBED_PAR_MIN)
    for (int64_t r = 0; r < N; r++) {
        const int64_t t = r % n_tab;
        rope_row(dinp + r * W, dout + r * W, cos_tab + t * half, sin_tab + t * half, W, n_heads, head_dim, kind,
                 -1.0f, 1);
    }
}

/* The column pair (j0, j1) of rotation pair i of head h. */
static void rope_pair_ref(int64_t h, int64_t i, int64_t head_dim, sf_rope_kind kind, int64_t *j0, int64_t *j1) {
    if (kind == SF_ROPE_HALF) {
        *j0 = h * head_dim + i;
        *j1 = h * head_dim + i + head_dim / 2;
    } else {
        *j0 = h * head_dim + 2 * i;
        *j1 = h * head_dim + 2 * i + 1;
    }
}

void sf_rope_forward_ref(float *out, const float *inp, const float *cos_tab, const float *sin_tab, int64_t N,
                         int64_t W, int64_t n_tab, int64_t n_heads, int64_t head_dim, sf_rope_kind kind) {
    const int64_t half = head_dim / 2;
    for (int64_t r = 0; r < N; r++) {
        for (int64_t j = 0; j < W; j++) out[r * W + j] = inp[r * W + j];
        for (int64_t h = 0; h < n_heads; h++)
            for (int64_t i = 0; i < half; i++) {
                int64_t j0, j1;
                rope_pair_ref(h, i, head_dim, kind, &j0, &j1);
                float c = cos_tab[(r % n_tab) * half + i], s = sin_tab[(r % n_tab) * half + i];
                float x0 = inp[r * W + j0], x1 = inp[r * W + j1];
                out[r * W + j0] = x0 * c - x1 * s;
                out[r * W + j1] = x0 * s + x1 * c;
            }
    }
}

void sf_rope_backward_ref(float *dinp, const float *dout, const float *cos_tab, const float *sin_tab, int64_t N,
                          int64_t W, int64_t n_tab, int64_t n_heads, int64_t head_dim, sf_rope_kind kind) {
    if (!dinp) return;
    const int64_t half = head_dim / 2, rot = n_heads * head_dim;
    for (int64_t r = 0; r < N; r++) {
        for (int64_t j = rot; j < W; j++) dinp[r * W + j] += dout[r * W + j];
        for (int64_t h = 0; h < n_heads; h++)
            for (int64_t i = 0; i < half; i++) {
                int64_t j0, j1;
                rope_pair_ref(h, i, head_dim, kind, &j0, &j1);
                float c = cos_tab[(r % n_tab) * half + i], s = sin_tab[(r % n_tab) * half + i];
                float g0 = dout[r * W + j0], g1 = dout[r * W + j1];
                /* transpose of [[c, -s], [s, c]] */
                dinp[r * W + j0] += g0 * c + g1 * s;
                dinp[r * W + j1] += -g0 * s + g1 * c;
            }
    }
}

/* ============================================ tape ops =========================================== */

/* Copies the index tensor `t` into a graph-pooled i64 tensor (n), checking lo <= value < hi (hi < 0: no
 * upper bound) before anything else is written. The copy is also a snapshot for backward. */
static sf_tensor *index_snapshot(sf_graph *g, const sf_tensor *t, int64_t hi, const char *op, const char *what) {
    const int64_t n = sf_tensor_numel(t);
    for (int64_t k = 0; k < n; k++) {
        const int64_t v = sf_index_at(t, k);
        if (v < 0 || (hi >= 0 && v >= hi)) {
            if (hi >= 0)
                return sf_fail_null(SF_ERR_ARG, "%s: %s %lld at flat position %lld is out of range [0, %lld)", op,
                                    what, (long long)v, (long long)k, (long long)hi);
            return sf_fail_null(SF_ERR_ARG, "%s: %s %lld at flat position %lld is negative", op, what,
                                (long long)v, (long long)k);
        }
    }
    const int64_t shape[1] = {n};
    sf_tensor *c = sf_graph_tensor_dtype(g, SF_I64, 1, shape); // (n)
    if (!c) return NULL;
    int64_t *d = (int64_t *)sf_tensor_data(c);
    if (t->dtype == SF_I64)
        memcpy(d, sf_tensor_data(t), (size_t)n * sizeof(int64_t));
    else
        for (int64_t k = 0; k < n; k++) d[k] = sf_index_at(t, k);
    return c;
}

/* Shared by embedding and gather_rows: in[0] = table/x (V, C), saved[0] = ids snapshot (N) i64. */
static sf_status lookup_backward(sf_graph *g, sf_node *n) {
    const int was_finite = sf_graph_grad_known_finite(n->in[0]); /* before the access below forgets it */
    sf_tensor *dout = sf_graph_grad(g, n->out);
    sf_tensor *dtable = sf_graph_grad(g, n->in[0]);
    if (!dout) return sf_fail(SF_ERR_NOMEM, "%s backward: out of memory", n->op);
    if (!dtable) return SF_OK; /* frozen: no work */
    const int64_t *ids = (const int64_t *)sf_tensor_data(n->saved[0]), N = n->i[0], C = n->i[1];
    sf_embedding_backward(sf_f32(dtable), sf_f32(dout), ids, N, C);
    /* a tied table's gradient vouched for by the LM head's product stays so when the rows added here are
     * finite: only those changed (N rows, in cache; the optimizer's sweep would read all V) */
    if (was_finite) {
        int64_t bad = 0;
        for (int64_t r = 0; r < N && !bad; r++) bad = sf_count_nonfinite(sf_f32(dtable) + ids[r] * C, C);
        sf_graph_grad_set_finite(n->in[0], !bad);
    }
    return SF_OK;
}

/* Forward of a row lookup into `out`, recording the node. */
static sf_tensor *lookup_finish(sf_graph *g, const char *op, sf_tensor *table, sf_tensor *ids64, int out_ndim,
                                const int64_t *out_shape) {
    const int64_t N = sf_tensor_numel(ids64), C = table->shape[table->ndim - 1];
    sf_tensor *out = sf_graph_tensor(g, out_ndim, out_shape); // (S..., C)
    if (!out) return NULL;
    sf_embedding_forward(sf_f32(out), (const int64_t *)sf_tensor_data(ids64), sf_f32(table), N, C);
    sf_tensor *in[1] = {table};
    sf_node *n = sf_graph_record(g, op, lookup_backward, out, in, 1);
    if (n) {
        n->i[0] = N;
        n->i[1] = C;
        if (sf_node_save(n, ids64) != SF_OK) return NULL;
    }
    return out;
}

sf_tensor *sf_embedding(sf_graph *g, sf_tensor *ids, sf_tensor *table) {
    if (!g) return sf_fail_null(SF_ERR_ARG, "embedding: graph is missing");
    if (sf_check_index(ids, "embedding", "ids") != SF_OK) return NULL;
    if (sf_check_f32(table, "embedding", "table") != SF_OK) return NULL;
    char buf[64];
    if (table->ndim != 2)
        return sf_fail_null(SF_ERR_ARG, "embedding: table must be 2-D (V, C), got shape %s",
                            sf_shape_str(table, buf, sizeof buf));
    if (ids->ndim + 1 > SF_MAX_DIMS)
        return sf_fail_null(SF_ERR_ARG, "embedding: ids of shape %s have %d dims; the output (ids..., C) may have at most %d",
                            sf_shape_str(ids, buf, sizeof buf), ids->ndim, SF_MAX_DIMS);
    sf_tensor *ids64 = index_snapshot(g, ids, table->shape[0], "embedding", "id"); // (N)
    if (!ids64) return NULL;
    int64_t shape[SF_MAX_DIMS];
    for (int d = 0; d < ids->ndim; d++) shape[d] = ids->shape[d];
    shape[ids->ndim] = table->shape[1];
    return lookup_finish(g, "embedding", table, ids64, ids->ndim + 1, shape);
}

sf_tensor *sf_gather_rows(sf_graph *g, sf_tensor *x, sf_tensor *idx) {
    if (!g) return sf_fail_null(SF_ERR_ARG, "gather_rows: graph is missing");
    if (sf_check_f32(x, "gather_rows", "x") != SF_OK) return NULL;
    if (sf_check_index(idx, "gather_rows", "idx") != SF_OK) return NULL;
    char buf[64];
    if (x->ndim < 2)
        return sf_fail_null(SF_ERR_ARG, "gather_rows: x must be (N, C) (or (B, T, C), read as (B*T, C)), got shape %s",
                            sf_shape_str(x, buf, sizeof buf));
    if (idx->ndim != 1)
        return sf_fail_null(SF_ERR_ARG, "gather_rows: idx must be 1-D (M), got shape %s",
                            sf_shape_str(idx, buf, sizeof buf));
    sf_tensor *idx64 = index_snapshot(g, idx, sf_tensor_rows(x), "gather_rows", "index"); // (M)
    if (!idx64) return NULL;
    const int64_t shape[2] = {idx->shape[0], sf_tensor_cols(x)};
    return lookup_finish(g, "gather_rows", x, idx64, 2, shape);
}

/* in[0] = x (B, T, W); saved[0] = cos|sin table (2, n_tab, head_dim/2). */
static sf_status rope_backward(sf_graph *g, sf_node *n) {
    sf_tensor *dout = sf_graph_grad(g, n->out);
    sf_tensor *dx = sf_graph_grad(g, n->in[0]);
    if (!dout) return sf_fail(SF_ERR_NOMEM, "rope backward: out of memory");
    if (!dx) return SF_OK;
    const int64_t N = n->i[0], W = n->i[1], n_tab = n->i[2], n_heads = n->i[3], head_dim = n->i[4];
    const float *cos_tab = sf_f32(n->saved[0]), *sin_tab = cos_tab + n_tab * (head_dim / 2);
    sf_rope_backward(sf_f32(dx), sf_f32(dout), cos_tab, sin_tab, N, W, n_tab, n_heads, head_dim,
                     (sf_rope_kind)n->i[5]);
    return SF_OK;
}

sf_tensor *sf_rope(sf_graph *g, sf_tensor *x, sf_tensor *pos, int64_t n_heads, int64_t head_dim, float theta,
                   sf_rope_kind kind) {
    if (!g) return sf_fail_null(SF_ERR_ARG, "rope: graph is missing");
    if (sf_check_f32(x, "rope", "x") != SF_OK) return NULL;
    char buf[64], buf2[64];
    if (x->ndim != 3)
        return sf_fail_null(SF_ERR_ARG, "rope: x must be 3-D (B, T, W), got shape %s", sf_shape_str(x, buf, sizeof buf));
    if (kind != SF_ROPE_INTERLEAVED && kind != SF_ROPE_HALF)
        return sf_fail_null(SF_ERR_ARG, "rope: unknown kind %d (expected interleaved or half)", (int)kind);
    if (head_dim <= 0 || head_dim % 2 != 0)
        return sf_fail_null(SF_ERR_ARG, "rope: head_dim must be positive and even, got %lld", (long long)head_dim);
    if (n_heads <= 0) return sf_fail_null(SF_ERR_ARG, "rope: n_heads must be positive, got %lld", (long long)n_heads);
    if (!(theta > 0.0f) || !isfinite(theta))
        return sf_fail_null(SF_ERR_ARG, "rope: theta must be positive and finite, got %g", (double)theta);
    const int64_t B = x->shape[0], T = x->shape[1], W = x->shape[2];
    int64_t rot;
    if (sf_mul_overflow_i64(n_heads, head_dim, &rot) || rot > W)
        return sf_fail_null(SF_ERR_ARG, "rope: n_heads*head_dim = %lld*%lld exceeds the row width W = %lld of x %s",
                            (long long)n_heads, (long long)head_dim, (long long)W, sf_shape_str(x, buf, sizeof buf));
    sf_tensor *pos64 = NULL; // (B*T) i64
    if (pos) {
        if (sf_check_index(pos, "rope", "pos") != SF_OK) return NULL;
        if (pos->ndim != 2 || pos->shape[0] != B || pos->shape[1] != T)
            return sf_fail_null(SF_ERR_ARG, "rope: pos must be (B, T) = (%lld, %lld) to match x %s, got shape %s",
                                (long long)B, (long long)T, sf_shape_str(x, buf, sizeof buf),
                                sf_shape_str(pos, buf2, sizeof buf2));
        pos64 = index_snapshot(g, pos, -1, "rope", "position id");
        if (!pos64) return NULL;
    }
    const int64_t N = B * T, half = head_dim / 2;
    int64_t n_tab = pos ? N : T;
    if (n_tab < 1) n_tab = 1; /* empty x: keep a valid (unused) table */
    const int64_t tab_shape[3] = {2, n_tab, half};
    sf_tensor *tab = sf_graph_tensor(g, 3, tab_shape); // (2, n_tab, head_dim/2): cos then sin
    sf_tensor *out = tab ? sf_graph_tensor_like(g, x) : NULL; // (B, T, W)
    if (!out) return NULL;
    float *cos_tab = sf_f32(tab), *sin_tab = cos_tab + n_tab * half;
    sf_rope_table(cos_tab, sin_tab, pos64 ? (const int64_t *)sf_tensor_data(pos64) : NULL, pos ? N : (T ? T : 1),
                  head_dim, theta);
    sf_rope_forward(sf_f32(out), sf_f32(x), cos_tab, sin_tab, N, W, n_tab, n_heads, head_dim, kind);
    sf_tensor *in[1] = {x};
    sf_node *n = sf_graph_record(g, "rope", rope_backward, out, in, 1);
    if (n) {
        n->i[0] = N;
        n->i[1] = W;
        n->i[2] = n_tab;
        n->i[3] = n_heads;
        n->i[4] = head_dim;
        n->i[5] = kind;
        n->f[0] = theta;
        if (sf_node_save(n, tab) != SF_OK) return NULL;
    }
    return out;
}
