/* test_graph.c — the autograd tape and its leaf-gradient hooks: firing order, firing once, consumption,
 * KEEP accumulation, the peak memory of 100 hooked parameters, and tensor basics (views, dtype
 * conversion, checked shapes, allocation counter, large mapped blocks, freed heap blocks reused), and the
 * buffer pool across steps of fixed and of varying sizes. Uses a test-local op so it depends on no
 * kernel file. */
#include <stdint.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>

#include "../core/graph.h"
#include "test.h"
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

/* y = x * w elementwise (test-local op). */
static sf_status wmul_backward(sf_graph *g, sf_node *n) {
    sf_tensor *dy = sf_graph_grad(g, n->out), *dx = sf_graph_grad(g, n->in[0]), *dw = sf_graph_grad(g, n->in[1]);
    const float *x = sf_f32(n->in[0]), *w = sf_f32(n->in[1]), *d = sf_f32(dy);
    for (int64_t i = 0; i < sf_tensor_numel(n->out); i++) {
        if (dx) sf_f32(dx)[i] += d[i] * w[i];
        if (dw) sf_f32(dw)[i] += d[i] * x[i];
    }
    return SF_OK;
}

static sf_tensor *wmul(sf_graph *g, sf_tensor *x, sf_tensor *w) {
    sf_tensor *y = sf_graph_tensor_like(g, x);
    for (int64_t i = 0; i < sf_tensor_numel(x); i++) sf_f32(y)[i] = sf_f32(x)[i] * sf_f32(w)[i];
    sf_tensor *in[2] = {x, w};
    sf_graph_record(g, "wmul", wmul_backward, y, in, 2);
    return y;
}

static sf_tensor *fill(sf_tensor *t, float v) {
    for (int64_t i = 0; i < sf_tensor_numel(t); i++) sf_f32(t)[i] = v;
    return t;
}

typedef struct {
    int order[256];
    int n_fired;
    int fired_count[256];
    int consume;
    float seen_first[256];
} hook_log;

typedef struct {
    hook_log *log;
    int id;
} hook_ctx;

static sf_hook_result log_hook(sf_tensor *leaf, sf_tensor *grad, void *user) {
    hook_ctx *c = user;
    (void)leaf;
    c->log->order[c->log->n_fired++] = c->id;
    c->log->fired_count[c->id]++;
    c->log->seen_first[c->id] = sf_f32(grad)[0];
    return c->log->consume ? SF_HOOK_CONSUMED : SF_HOOK_KEEP;
}

#define NP 100
#define PSIZE 65536

/* Builds x -> w_0 -> ... -> w_{NP-1}, sums to a scalar via a final wmul with ones and returns the
 * peak allocation increase during backward. */
static size_t run_chain(sf_tensor **w, hook_log *log, hook_ctx *ctx, int hooked) {
    sf_tensor *x = fill(sf_tensor_f32d(PSIZE, -1, -1, -1), 1.0f);
    sf_graph *g = sf_graph_new();
    for (int i = 0; i < NP; i++) {
        sf_param_drop_grad(w[i]);
        ctx[i] = (hook_ctx){log, i};
        sf_param_set_hook(w[i], hooked ? log_hook : NULL, &ctx[i]);
    }
    sf_tensor *h = x;
    for (int i = 0; i < NP; i++) h = wmul(g, h, w[i]);
    sf_tensor *seed = fill(sf_tensor_f32d(PSIZE, -1, -1, -1), 1.0f);
    sf_graph_trim(g);
    size_t before = sf_mem_allocated();
    sf_mem_reset_peak();
    sf_status st = sf_graph_backward(g, h, seed);
    CHECK(st == SF_OK, "backward: %s", sf_last_error());
    size_t peak = sf_mem_peak() - before;
    sf_graph_free(g);
    sf_tensor_release(seed);
    sf_tensor_release(x);
    return peak;
}

TEST(hooks_fire_once_in_reverse_order_and_consume) {
    sf_tensor *w[NP];
    hook_ctx ctx[NP];
    for (int i = 0; i < NP; i++) {
        w[i] = fill(sf_tensor_f32d(PSIZE, -1, -1, -1), 1.0f + (float)i / 1000.0f);
        sf_param_set_trainable(w[i], 1);
    }
    hook_log log = {.consume = 1};
    size_t peak_hooked = run_chain(w, &log, ctx, 1);
    CHECK(log.n_fired == NP, "fired %d times for %d params", log.n_fired, NP);
    for (int i = 0; i < NP; i++) {
        CHECK(log.fired_count[i] == 1, "param %d fired %d times", i, log.fired_count[i]);
        CHECK(log.order[i] == NP - 1 - i, "firing %d was param %d, expected %d", i, log.order[i], NP - 1 - i);
        CHECK(w[i]->grad == NULL, "consumed param %d still has a dense grad", i);
    }
    /* d/dw_i of prod(w) = prod_{j != i} w_j */
    double prod = 1;
    for (int i = 0; i < NP; i++) prod *= 1.0 + i / 1000.0;
    CHECK_CLOSE(log.seen_first[37], prod / (1.0 + 37 / 1000.0), 1e-4 * prod);

    size_t peak_plain = run_chain(w, &log, ctx, 0);
    for (int i = 0; i < NP; i++) CHECK(w[i]->grad != NULL, "unhooked param %d has no grad", i);
    size_t one = PSIZE * sizeof(float);
    /* consumed: only a few transient buffers live at once; plain: all NP grads are resident */
    CHECK(peak_hooked <= 4 * one, "peak with consuming hooks %zu bytes > 4 buffers of %zu", peak_hooked, one);
    CHECK(peak_plain >= (size_t)NP * one, "peak without hooks %zu bytes < %d buffers", peak_plain, NP);
    fprintf(stderr, "    peak during backward: hooked %.2f MB, plain %.2f MB (one grad = %.2f MB)\n", peak_hooked / 1e6,
            peak_plain / 1e6, one / 1e6);
    for (int i = 0; i < NP; i++) sf_tensor_release(w[i]);
}

TEST(hook_fires_after_all_consumers_and_keep_accumulates) {
    /* w used twice: y = (x*w)*w; the hook must fire once, with the full gradient 2*x*w */
    sf_tensor *w = fill(sf_tensor_f32d(3, -1, -1, -1), 2.0f), *x = fill(sf_tensor_f32d(3, -1, -1, -1), 3.0f);
    sf_param_set_trainable(w, 1);
    hook_log log = {.consume = 0};
    hook_ctx c = {&log, 0};
    sf_param_set_hook(w, log_hook, &c);
    for (int pass = 0; pass < 2; pass++) {
        sf_graph *g = sf_graph_new();
        sf_tensor *y = wmul(g, wmul(g, x, w), w);
        sf_tensor *seed = fill(sf_tensor_f32d(3, -1, -1, -1), 1.0f);
        CHECK(sf_graph_backward(g, y, seed) == SF_OK, "%s", sf_last_error());
        CHECK(sf_graph_backward(g, y, seed) != SF_OK, "second backward on one forward must fail");
        sf_tensor_release(seed);
        sf_graph_free(g);
    }
    CHECK(log.fired_count[0] == 2, "fired %d times over 2 passes", log.fired_count[0]);
    CHECK_CLOSE(log.seen_first[0], 12.0, 1e-6);
    REQUIRE(w->grad != NULL, "KEEP must leave a gradient");
    CHECK_CLOSE(sf_f32(w->grad)[1], 24.0, 1e-5); /* accumulated over two backward passes */
    sf_param_zero_grad(w);
    CHECK_CLOSE(sf_f32(w->grad)[1], 0.0, 0);
    sf_tensor_release(w);
    sf_tensor_release(x);
}

TEST(frozen_inputs_record_nothing_and_no_record_mode) {
    sf_tensor *w = fill(sf_tensor_f32d(4, -1, -1, -1), 2.0f), *x = fill(sf_tensor_f32d(4, -1, -1, -1), 3.0f);
    sf_graph *g = sf_graph_new();
    sf_tensor *y = wmul(g, x, w);
    CHECK(sf_graph_num_nodes(g) == 0 && !y->requires_grad, "frozen op recorded");
    CHECK(sf_graph_backward(g, y, NULL) != SF_OK, "backward through nothing must fail");
    CHECK(strstr(sf_last_error(), "backward") != NULL, "message: %s", sf_last_error());
    sf_param_set_trainable(w, 1);
    sf_graph_set_recording(g, 0);
    y = wmul(g, x, w);
    CHECK(sf_graph_num_nodes(g) == 0, "recorded while recording is off");
    sf_graph_set_recording(g, 1);
    y = wmul(g, x, w);
    CHECK(sf_graph_num_nodes(g) == 1, "not recorded");
    sf_graph_free(g);
    sf_tensor_release(w);
    sf_tensor_release(x);
}

TEST(graph_pool_reuses_buffers_across_steps) {
    sf_tensor *w = fill(sf_tensor_f32d(1000, -1, -1, -1), 1.5f), *x = fill(sf_tensor_f32d(1000, -1, -1, -1), 1.0f);
    sf_param_set_trainable(w, 1);
    sf_graph *g = sf_graph_new();
    sf_tensor *seed = fill(sf_tensor_f32d(1000, -1, -1, -1), 1.0f);
    size_t after_first = 0;
    for (int step = 0; step < 5; step++) {
        sf_tensor *y = wmul(g, wmul(g, x, w), w);
        CHECK(sf_graph_backward(g, y, seed) == SF_OK, "%s", sf_last_error());
        sf_graph_reset(g);
        if (step == 0) after_first = sf_mem_allocated();
        else CHECK(sf_mem_allocated() == after_first, "step %d: %zu bytes allocated vs %zu after step 0", step,
                   sf_mem_allocated(), after_first);
    }
    sf_graph_free(g);
    sf_tensor_release(seed);
    sf_tensor_release(w);
    sf_tensor_release(x);
}

/* Steps over batches of varying lengths: a step takes the idle buffer of its exact size, else the
 * smallest of at most twice its size, so after the longest step nothing more is allocated; a request
 * under half of every idle buffer gets a new one, and buffers idle through a whole step go back. */
TEST(graph_pool_serves_shorter_steps_from_longer_buffers) {
    sf_graph *g = sf_graph_new();
    const size_t base = sf_mem_allocated();
    /* a "step": three buffers, sizes n, 2n and 3n floats (activations of a batch of n tokens) */
    float *seen[3];
    size_t after_longest = 0;
    const int64_t lengths[] = {1000, 900, 1000, 700, 501, 999};
    for (int s = 0; s < 6; s++) {
        const int64_t n = lengths[s];
        sf_tensor *t[3];
        for (int k = 0; k < 3; k++) {
            int64_t shape[1] = {n * (k + 1)};
            t[k] = sf_graph_tensor(g, 1, shape);
            REQUIRE(t[k] != NULL, "%s", sf_last_error());
            CHECK(t[k]->shape[0] == n * (k + 1) && sf_tensor_numel(t[k]) == n * (k + 1), "shape");
            for (int64_t i = 0; i < n * (k + 1); i++) sf_f32(t[k])[i] = (float)i; /* all of it is writable */
#if defined(__SANITIZE_ADDRESS__)
            /* what lies beyond the 64-byte-rounded size stays out of bounds under AddressSanitizer */
            const size_t used = ((size_t)(n * (k + 1)) * 4 + 63) / 64 * 64;
            if (t[k]->storage->nbytes > used)
                CHECK(__asan_address_is_poisoned((char *)t[k]->storage->data + used), "tail not poisoned");
#endif
            if (s == 0) seen[k] = sf_f32(t[k]);
            /* each takes the smallest fitting buffer: n's the n-sized one, 2n's the 2n-sized one */
            else CHECK(sf_f32(t[k]) == seen[k], "step %d (n=%lld): buffer %d not reused", s, (long long)n, k);
        }
        sf_graph_reset(g);
        if (s == 0) after_longest = sf_mem_allocated();
        else CHECK(sf_mem_allocated() == after_longest, "step %d (n=%lld): %zu bytes vs %zu", s, (long long)n,
                   sf_mem_allocated(), after_longest);
    }
    /* exact size wins over a larger fitting one: the pool now holds 1000, 2000, 3000 floats */
    int64_t s2000[1] = {2000}, s400[1] = {400};
    sf_tensor *two = sf_graph_tensor(g, 1, s2000);
    CHECK(two && sf_f32(two) == seen[1], "exact size not preferred");
    /* under half of every idle buffer (1000, 3000 floats): a new buffer, not 1000's */
    sf_tensor *small = sf_graph_tensor(g, 1, s400);
    CHECK(small && sf_f32(small) != seen[0] && sf_f32(small) != seen[2], "a buffer over twice the size was taken");
    CHECK(sf_mem_allocated() > after_longest, "no new buffer for the small request");
    sf_graph_reset(g); /* 1000 and 3000 sat idle through this step: released at the next reset */
    sf_graph_reset(g);
    CHECK(sf_mem_allocated() < after_longest, "idle buffers kept: %zu bytes", sf_mem_allocated() - base);
    sf_graph_free(g);
    CHECK(sf_mem_allocated() == base, "leaked %zu bytes", sf_mem_allocated() - base);
}

TEST(tensor_views_conversion_and_checked_shapes) {
    size_t base = sf_mem_allocated();
    int64_t shape[2] = {4, 6};
    sf_tensor *t = sf_tensor_zeros_f32(2, shape);
    REQUIRE(t != NULL, "%s", sf_last_error());
    CHECK(((uintptr_t)sf_tensor_data(t) % 64) == 0, "not 64-byte aligned");
    CHECK(sf_mem_allocated() >= base + 96, "allocator counter did not grow");
    for (int i = 0; i < 24; i++) sf_f32(t)[i] = (float)i;
    sf_tensor *rows = sf_tensor_narrow0(t, 1, 2);
    CHECK(rows && sf_f32(rows)[0] == 6.0f && rows->shape[0] == 2, "narrow0 wrong");
    int64_t s3[3] = {2, 3, 4};
    sf_tensor *v = sf_tensor_view(t, 3, s3);
    CHECK(v && sf_f32(v)[23] == 23.0f && v->storage == t->storage, "view must share storage");
    int64_t bad[2] = {5, 5};
    CHECK(sf_tensor_view(t, 2, bad) == NULL, "view with other numel must fail");
    int64_t huge[4] = {1LL << 40, 1LL << 40, 1, 1};
    CHECK(sf_tensor_new_f32(4, huge) == NULL && sf_last_status() == SF_ERR_NOMEM, "overflowing shape accepted");
    int64_t neg[1] = {-3};
    CHECK(sf_tensor_new_f32(1, neg) == NULL, "negative dim accepted");
    CHECK(sf_tensor_narrow0(t, 3, 2) == NULL, "narrow past the end accepted");
    /* bf16 / f16 conversion */
    CHECK(sf_bf16_to_f32(sf_f32_to_bf16(1.5f)) == 1.5f, "bf16 round trip");
    CHECK(sf_bf16_to_f32(0x3f80) == 1.0f, "bf16 1.0");
    CHECK(sf_f16_to_f32(0x3c00) == 1.0f && sf_f16_to_f32(0xc000) == -2.0f, "f16 decode");
    CHECK(sf_f16_to_f32(0x0001) == 5.9604644775390625e-08f, "f16 subnormal");
    CHECK(sf_f16_to_f32(sf_f32_to_f16(0.333251953125f)) == 0.333251953125f, "f16 round trip");
    CHECK(sf_f32_to_f16(65520.0f) == 0x7c00, "f16 overflow to inf");
    int64_t s1[1] = {3};
    sf_tensor *b = sf_tensor_new(SF_BF16, 1, s1);
    uint16_t *bd = sf_tensor_data(b);
    bd[0] = 0x3f80;
    bd[1] = 0xc040;
    bd[2] = 0x0000;
    sf_tensor *f = sf_tensor_to_f32(b);
    CHECK(sf_f32(f)[0] == 1.0f && sf_f32(f)[1] == -3.0f && sf_f32(f)[2] == 0.0f, "bf16 -> f32 tensor");
    sf_tensor_release(f);
    sf_tensor_release(b);
    sf_tensor_release(rows);
    sf_tensor_release(v);
    sf_tensor_release(t);
    CHECK(sf_mem_allocated() == base, "leaked %zu bytes", sf_mem_allocated() - base);
}

TEST(large_allocations_are_aligned_zeroed_counted_and_returned) {
    /* blocks of 4 MB and more are mapped (2 MB aligned, huge pages advised) instead of taken from the heap */
    const size_t sizes[] = {(size_t)4 << 20, ((size_t)5 << 20) + 12345, ((size_t)64 << 20) - 4, 100};
    for (int r = 0; r < 3; r++) /* again and again: freed mappings must go back cleanly */
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            const size_t n = sizes[i], base = sf_mem_allocated();
            unsigned char *p = sf_alloc_zero(n);
            CHECK(p != NULL, "sf_alloc_zero(%zu) failed", n);
            if (!p) return;
            CHECK(((uintptr_t)p & 63) == 0, "block of %zu bytes not 64-byte aligned", n);
            size_t nonzero = 0;
            for (size_t k = 0; k < n; k += 4093) nonzero += p[k] != 0;
            CHECK(nonzero == 0 && p[n - 1] == 0, "block of %zu bytes not zeroed", n);
            memset(p, 0xA5, n); /* every byte writable, to the last */
            CHECK(sf_mem_allocated() >= base + n, "counter did not grow by %zu", n);
            sf_free(p, n);
            CHECK(sf_mem_allocated() == base, "counter off by %zu after freeing %zu", sf_mem_allocated() - base, n);
        }
}

/* After sf_heap_keep_freed a block of a few MB comes from the heap rather than a mapping of its own, and
 * freeing it leaves the heap in place for the next one: no fresh mapping and page faults per call (with
 * glibc's defaults the first such block is mapped, and whether a freed heap block is trimmed depends on
 * the heap's layout). */
TEST(heap_keeps_freed_blocks_for_reuse) {
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
    sf_heap_keep_freed();
    const size_t n = (size_t)3 << 20;
    for (int r = 0; r < 3; r++) {
        const struct mallinfo2 before = mallinfo2();
        char *p = malloc(n);
        CHECK(p != NULL, "malloc(%zu)", n);
        if (!p) return;
        memset(p, r, n);
        const struct mallinfo2 held = mallinfo2();
        CHECK(held.hblks == before.hblks, "round %d: %zu bytes got a mapping of their own", r, n);
        free(p);
        const struct mallinfo2 after = mallinfo2();
        CHECK(after.arena >= n, "round %d: the heap shrank to %zu bytes after the free", r, after.arena);
    }
#else
    SKIP("glibc's heap settings: not this C library, or AddressSanitizer's allocator");
#endif
}

TEST_MAIN()
