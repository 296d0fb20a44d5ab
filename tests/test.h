/* test.h — a tiny test harness for the C test programs.
 *
 * TEST(name) { ... } defines and registers a test; CHECK(cond, fmt, ...) records a failure with a
 * message and continues; CHECK_CLOSE(a, b, tol) compares numbers; SKIP(fmt, ...) marks the test skipped
 * (e.g. ../shared missing) and returns. TEST_MAIN() runs every registered test (or those whose name
 * contains argv[1]), prints one line per test and closes with "N passed, N failed" (skips are counted
 * separately as "N skipped" on the line before); the exit status is non-zero on any failure.
 * sf_test_read_file / sf_test_write_file read and write whole files for tests that build their inputs;
 * shared_dir() is the folder of real models and fixtures (SIFT_SHARED, default ../shared), absolute.
 */
#ifndef SF_TEST_H
#define SF_TEST_H

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sf_test_fn)(void);
typedef struct { const char *name; sf_test_fn fn; } sf_test_case;

extern sf_test_case sf_tests[];
extern int sf_n_tests;
extern int sf_cur_failures;
extern int sf_cur_skipped;

/* The shared folder of real models and fixtures: SIFT_SHARED, or ../shared, as an absolute path when it
 * exists (a test that links or copies its files into a scratch folder needs one that resolves from there). */
static inline const char *shared_dir(void) {
    static char dir[256]; /* short, so callers' fixed path buffers hold it and a file name */
    if (!dir[0]) {
        const char *s = getenv("SIFT_SHARED");
        char full[PATH_MAX];
        if (!s || !*s) s = "../shared";
        const char *src = realpath(s, full) && strlen(full) < sizeof dir ? full : s;
        const size_t n = strlen(src) < sizeof dir ? strlen(src) : sizeof dir - 1;
        memcpy(dir, src, n);
        dir[n] = '\0';
    }
    return dir;
}

/* The whole file at path in a malloc'd buffer, NUL after its *len bytes (NULL when it cannot be read). */
static inline char *sf_test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[n] = '\0';
    *len = n >= 0 ? (size_t)n : 0;
    return b;
}

/* Writes n bytes to path (created or truncated); 0 on success, -1 when it could not. */
static inline int sf_test_write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

#define SF_MAX_TESTS 512
#define TEST(name)                                                                            \
    static void test_##name(void);                                                            \
    __attribute__((constructor)) static void register_##name(void) {                          \
        if (sf_n_tests < SF_MAX_TESTS) sf_tests[sf_n_tests++] = (sf_test_case){#name, test_##name}; \
    }                                                                                         \
    static void test_##name(void)

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            sf_cur_failures++;                                                \
            fprintf(stderr, "    FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
        }                                                                     \
    } while (0)

#define CHECK_CLOSE(a, b, tol)                                                                   \
    do {                                                                                         \
        double _a = (double)(a), _b = (double)(b), _t = (double)(tol);                           \
        CHECK(fabs(_a - _b) <= _t, "%s = %.9g, %s = %.9g, |diff| %.3g > tol %.3g", #a, _a, #b, _b, \
              fabs(_a - _b), _t);                                                                \
    } while (0)

#define REQUIRE(cond, ...)         \
    do {                           \
        if (!(cond)) {             \
            CHECK(cond, __VA_ARGS__); \
            return;                \
        }                          \
    } while (0)

#define SKIP(...)                                  \
    do {                                           \
        sf_cur_skipped = 1;                        \
        fprintf(stderr, "    skipped: ");          \
        fprintf(stderr, __VA_ARGS__);              \
        fprintf(stderr, "\n");                     \
        return;                                    \
    } while (0)

#define TEST_MAIN()                                                                              \
    sf_test_case sf_tests[SF_MAX_TESTS];                                                         \
    int sf_n_tests, sf_cur_failures, sf_cur_skipped;                                             \
    int main(int argc, char **argv) {                                                            \
        int passed = 0, failed = 0, skipped = 0;                                                 \
        for (int i = 0; i < sf_n_tests; i++) {                                                   \
            if (argc > 1 && !strstr(sf_tests[i].name, argv[1])) continue;                        \
            sf_cur_failures = 0;                                                                 \
            sf_cur_skipped = 0;                                                                  \
            sf_tests[i].fn();                                                                    \
            if (sf_cur_failures) {                                                               \
                failed++;                                                                        \
                printf("FAIL %s\n", sf_tests[i].name);                                           \
            } else if (sf_cur_skipped) {                                                         \
                skipped++;                                                                       \
                printf("skip %s\n", sf_tests[i].name);                                           \
            } else {                                                                             \
                passed++;                                                                        \
                printf("ok   %s\n", sf_tests[i].name);                                           \
            }                                                                                    \
            fflush(stdout);                                                                      \
        }                                                                                        \
        printf("%d skipped\n%d passed, %d failed\n", skipped, passed, failed);                   \
        return failed ? 1 : 0;                                                                   \
    }

#endif
