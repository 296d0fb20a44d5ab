/* test_direction.c — core/direction.c: random directions scaled per filter (rows of an OUT_IN weight,
 * columns of an IN_OUT one), per layer or not at all, from a bf16 weight as from an f32 one; seeds and
 * streams; p = base + a d1 + b d2 (aliasing p and base); refusals of wrong sizes and dtypes. */
#include "../core/direction.h"
#include "test.h"

static double line_sq(const float *x, int64_t rows, int64_t cols, int by_rows, int64_t f) {
    double s = 0;
    for (int64_t i = 0; i < (by_rows ? cols : rows); i++) {
        float v = by_rows ? x[f * cols + i] : x[i * cols + f];
        s += (double)v * v;
    }
    return s;
}

static sf_tensor *filled(int64_t r, int64_t c, float scale) {
    sf_tensor *t = sf_tensor_f32d(r, c, -1, -1);
    for (int64_t i = 0; i < r * c; i++) sf_f32(t)[i] = scale * (float)((i * 7919 % 23) - 11);
    return t;
}

TEST(direction_filter_rows_and_columns) {
    const int64_t R = 9, C = 6;
    sf_tensor *w = filled(R, C, 0.01f), *d = sf_tensor_f32d(R, C, -1, -1);
    for (int64_t j = 0; j < C; j++) sf_f32(w)[4 * C + j] = 0; /* row 4: a zero filter */
    for (int layout = 0; layout < 2; layout++) {
        CHECK(sf_direction_random(d, w, 3, 1, SF_DIR_FILTER, layout ? SF_W_IN_OUT : SF_W_OUT_IN) == SF_OK, "direction");
        const int by_rows = !layout;
        for (int64_t f = 0; f < (by_rows ? R : C); f++) {
            double want = sqrt(line_sq(sf_f32(w), R, C, by_rows, f)), got = sqrt(line_sq(sf_f32(d), R, C, by_rows, f));
            CHECK(fabs(got - want) <= 1e-6 * (1 + want), "layout %d filter %lld: %g vs %g", layout, (long long)f, got, want);
        }
    }
    CHECK(sf_direction_random(d, w, 3, 1, SF_DIR_FILTER, SF_W_OUT_IN) == SF_OK, "rows again");
    CHECK(line_sq(sf_f32(d), R, C, 1, 4) == 0, "a zero filter gives a zero filter");
    sf_tensor_release(w), sf_tensor_release(d);
}

TEST(direction_layer_none_seeds_and_bf16) {
    const int64_t R = 5, C = 7;
    sf_tensor *w = filled(R, C, 0.02f), *d = sf_tensor_f32d(R, C, -1, -1), *e = sf_tensor_f32d(R, C, -1, -1);
    CHECK(sf_direction_random(d, w, 11, 0, SF_DIR_LAYER, SF_W_OUT_IN) == SF_OK, "layer");
    double wn = sqrt(line_sq(sf_f32(w), 1, R * C, 1, 0)), dn = sqrt(line_sq(sf_f32(d), 1, R * C, 1, 0));
    CHECK(fabs(wn - dn) <= 1e-6 * wn, "layer norm %g vs %g", dn, wn);
    /* none: the draw itself, which layer scaling multiplies by one factor */
    CHECK(sf_direction_random(e, w, 11, 0, SF_DIR_NONE, SF_W_OUT_IN) == SF_OK, "none");
    double en = sqrt(line_sq(sf_f32(e), 1, R * C, 1, 0)), worst = 0;
    for (int64_t i = 0; i < R * C; i++) worst = fmax(worst, fabs(sf_f32(d)[i] - sf_f32(e)[i] * (wn / en)));
    CHECK(worst <= 1e-7, "layer = none scaled (%g)", worst);
    /* same seed and stream: same bits; another stream: another direction */
    CHECK(sf_direction_random(d, w, 11, 0, SF_DIR_NONE, SF_W_OUT_IN) == SF_OK && !memcmp(sf_f32(d), sf_f32(e), R * C * 4),
          "repeatable");
    CHECK(sf_direction_random(d, w, 11, 1, SF_DIR_NONE, SF_W_OUT_IN) == SF_OK && memcmp(sf_f32(d), sf_f32(e), R * C * 4),
          "another stream");
    /* a bf16 weight: its f32 values' filter norms */
    int64_t shape[2] = {R, C};
    sf_tensor *wb = sf_tensor_new(SF_BF16, 2, shape);
    CHECK(sf_tensor_copy_(wb, w) == SF_OK, "to bf16");
    sf_tensor *wbf = sf_tensor_to_f32(wb);
    CHECK(sf_direction_random(d, wb, 2, 0, SF_DIR_FILTER, SF_W_OUT_IN) == SF_OK, "bf16 weight");
    for (int64_t f = 0; f < R; f++) {
        double want = sqrt(line_sq(sf_f32(wbf), R, C, 1, f)), got = sqrt(line_sq(sf_f32(d), R, C, 1, f));
        CHECK(fabs(got - want) <= 1e-6 * (1 + want), "bf16 row %lld", (long long)f);
    }
    sf_tensor_release(w), sf_tensor_release(d), sf_tensor_release(e), sf_tensor_release(wb), sf_tensor_release(wbf);
}

TEST(direction_combine_and_refusals) {
    sf_tensor *base = filled(3, 4, 0.5f), *d1 = filled(3, 4, -0.25f), *d2 = filled(3, 4, 0.125f);
    for (int64_t i = 0; i < 12; i++) sf_f32(d2)[i] += 1.0f;
    sf_tensor *p = sf_tensor_f32d(3, 4, -1, -1);
    CHECK(sf_tensor_combine(p, base, 0.5f, d1, -2.0f, d2) == SF_OK, "combine");
    for (int64_t i = 0; i < 12; i++) {
        float want = sf_f32(base)[i] + (0.5f * sf_f32(d1)[i] + -2.0f * sf_f32(d2)[i]);
        CHECK(sf_f32(p)[i] == want, "entry %lld", (long long)i);
    }
    sf_tensor *q = sf_tensor_clone(base);
    CHECK(sf_tensor_combine(q, q, 1.0f, d1, 0, NULL) == SF_OK, "p aliasing base");
    for (int64_t i = 0; i < 12; i++) CHECK(sf_f32(q)[i] == sf_f32(base)[i] + sf_f32(d1)[i], "aliased entry");
    sf_tensor *small = sf_tensor_f32d(5, -1, -1, -1);
    int64_t shape[2] = {3, 4};
    sf_tensor *ids = sf_tensor_zeros(SF_I64, 2, shape);
    CHECK(sf_tensor_combine(p, base, 1, small, 0, NULL) == SF_ERR_ARG && strstr(sf_last_error(), "first direction"),
          "wrong size: %s", sf_last_error());
    CHECK(sf_tensor_combine(p, base, 1, d1, 1, ids) == SF_ERR_ARG && strstr(sf_last_error(), "f32"), "i64 direction: %s",
          sf_last_error());
    CHECK(sf_direction_random(small, base, 0, 0, SF_DIR_FILTER, SF_W_OUT_IN) == SF_ERR_ARG, "direction of another size");
    CHECK(sf_direction_random(p, base, 0, 0, (sf_dir_norm)7, SF_W_OUT_IN) == SF_ERR_ARG, "unknown normalisation");
    sf_tensor_release(base), sf_tensor_release(d1), sf_tensor_release(d2), sf_tensor_release(p), sf_tensor_release(q);
    sf_tensor_release(small), sf_tensor_release(ids);
}

TEST_MAIN()
