/* test_fuzz_loaders.c — every file loader against mutated copies of real files: safetensors (the GPT-2
 * fixture), Hugging Face folders (a mutated config.json of GPT-2, Llama and RoBERTa, model.safetensors or
 * sharded index), llama2.c models (stories260K.bin), tokenizers (tokenizer.json, encoder.json + vocab.bpe,
 * tok512.bin) and deltas (one saved by the test).
 *
 * First, sweeps: every 32-bit field of a binary header (safetensors' length, the llama2.c config, the
 * tokenizer's first fields) set to each of 0, 1, 3, -1, INT32_MIN, INT32_MAX, 2^24 and 2^24 + 1 in turn,
 * and every number of a config.json or an index set to 0, -1, values beyond 32 and 64 bits, 1e308,
 * 1e-320, 0.5, null, a string, an array or true. Then random mutations, deterministic (a seed per file):
 * bit flips, bytes set to JSON punctuation or to 0 / 0xFF, 4- and 8-byte integers overwritten with
 * extremes (0, -1, 2^31, 2^63), ranges deleted, duplicated or filled with random bytes, truncations; three
 * in four land in the file's header (its JSON header, its binary config, its first kilobytes), where a
 * loader decides what to read. SIFT_FUZZ_CASES sets the random cases per file for a longer soak.
 *
 * Each case must either load — then the result is used a little: tensors read, text encoded and decoded
 * — or fail with an error message; never crash, hang or leak (the suite runs under AddressSanitizer and
 * UBSan, float-cast-overflow included, in CI, which turn any out-of-bounds read or overflow into a
 * failure). Each file's unmutated seed must load. A crash in a plain build prints the case it died on
 * (file, case number, mutations) before the signal ends the program; under the sanitizers their
 * report's stack names the loader and the test.
 *
 * What it does not do: coverage-guided fuzzing (no libFuzzer here), or fuzz the Lua data-set readers
 * (tests/lua/test_fuzz_data.lua) or trainer checkpoints' contents (tests/lua/test_fuzz_checkpoints.lua). Skipped without ../shared (SIFT_SHARED), but for
 * the delta files, which it writes itself.
 */
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/delta.h"
#include "../core/model.h"
#include "../core/safetensors.h"
#include "../core/status.h"
#include "../core/tokenizer.h"
#include "test.h"

/* snprintf into a char array, failing the test when the path does not fit */
#define PATHF(buf, ...) REQUIRE(snprintf(buf, sizeof buf, __VA_ARGS__) < (int)sizeof buf, "path too long: %s", buf)

/* ------------------------------------------------ files ------------------------------------------------ */

static char g_dir[256]; /* this run's scratch folder */

static const char *scratch(char *buf, size_t n, const char *name) {
    if (snprintf(buf, n, "%s/%s", g_dir, name) >= (int)n) buf[0] = 0; /* too long: no such file */
    return buf;
}

static int make_scratch(void) {
    if (g_dir[0]) return 1;
    snprintf(g_dir, sizeof g_dir, "/tmp/sift-fuzz-XXXXXX");
    if (!mkdtemp(g_dir)) {
        g_dir[0] = 0;
        return 0;
    }
    return 1;
}

/* ---------------------------------------------- mutations ---------------------------------------------- */

static uint64_t next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static char g_case[512]; /* what is being loaded, for the crash report */

static void on_crash(int sig) {
    static const char head[] = "\n    CRASH while loading ";
    ssize_t w = write(2, head, sizeof head - 1);
    w += write(2, g_case, strlen(g_case));
    w += write(2, "\n", 1);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}

/* A mutated copy of buf (len bytes) in *out_len bytes; positions fall in [0, focus) three times in four.
 * Appends a description of each mutation to desc. */
static unsigned char *mutate(const unsigned char *buf, size_t len, size_t focus, uint64_t *rng, size_t *out_len,
                             char *desc, size_t desc_n) {
    size_t cap = len + 64, n = len;
    unsigned char *b = malloc(cap);
    memcpy(b, buf, len);
    static const unsigned char punct[] = {0,   0xFF, 0x7F, 0x80, '"', '{', '}',  '[', ']',
                                          ',', ':',  '-',  '0',  '9', 'e', '\\', ' '};
    static const uint64_t extremes[] = {
        0, UINT64_MAX, 0x7FFFFFFF, 0x80000000ULL, 0xFFFFFFFFULL, (uint64_t)1 << 63, 1, 0x7FFFFFFFFFFFFFFFULL};
    const int count = 1 + (int)(next(rng) % 3);
    for (int m = 0; m < count && n > 0; m++) {
        const size_t span = (next(rng) % 4 != 0 && focus < n) ? focus : n;
        const size_t pos = span ? next(rng) % span : 0;
        const int kind = (int)(next(rng) % 7);
        char what[64];
        switch (kind) {
        case 0: /* flip a bit */
            b[pos] ^= (unsigned char)(1u << (next(rng) % 8));
            snprintf(what, sizeof what, "flip@%zu", pos);
            break;
        case 1: /* a byte that means something to a parser */
            b[pos] = punct[next(rng) % sizeof punct];
            snprintf(what, sizeof what, "byte@%zu=%u", pos, b[pos]);
            break;
        case 2: { /* an extreme 4- or 8-byte integer */
            const uint64_t v = extremes[next(rng) % (sizeof extremes / sizeof *extremes)];
            const size_t w = next(rng) % 2 ? 8 : 4;
            for (size_t i = 0; i < w && pos + i < n; i++) b[pos + i] = (unsigned char)(v >> (8 * i));
            snprintf(what, sizeof what, "int%zu@%zu=%llx", 8 * w, pos, (unsigned long long)v);
            break;
        }
        case 3: /* truncate */
            n = pos;
            snprintf(what, sizeof what, "truncate@%zu", pos);
            break;
        case 4: { /* delete a range */
            const size_t d = 1 + next(rng) % 16, e = pos + d < n ? pos + d : n;
            memmove(b + pos, b + e, n - e);
            n -= e - pos;
            snprintf(what, sizeof what, "delete@%zu+%zu", pos, e - pos);
            break;
        }
        case 5: { /* duplicate a range (insert a copy of it) */
            const size_t d = 1 + next(rng) % 16, e = pos + d < n ? pos + d : n;
            if (n + (e - pos) > cap) break;
            memmove(b + e + (e - pos), b + e, n - e);
            memcpy(b + e, b + pos, e - pos);
            n += e - pos;
            snprintf(what, sizeof what, "dup@%zu+%zu", pos, e - pos);
            break;
        }
        default: { /* random bytes */
            const size_t d = 1 + next(rng) % 8;
            for (size_t i = 0; i < d && pos + i < n; i++) b[pos + i] = (unsigned char)next(rng);
            snprintf(what, sizeof what, "random@%zu+%zu", pos, d);
            break;
        }
        }
        const size_t used = strlen(desc);
        snprintf(desc + used, desc_n - used, " %s", what);
    }
    *out_len = n;
    return b;
}

/* ---------------------------------------------- the driver ---------------------------------------------- */

typedef struct {
    int loaded, rejected, silent; /* silent: failed without a message */
    int seed_loads;               /* the unmutated file loads (else the mutations test nothing) */
} tally;

/* A loader under test: loads `path`, uses what it got a little and frees it; returns 1 when it loaded,
 * 0 when it reported an error. */
typedef int (*load_fn)(const char *path);

/* Writes buf to target, runs load on load_path and tallies the outcome; 0 when the file could not be
 * written. */
static int try_case(tally *t, const unsigned char *buf, size_t n, const char *target, const char *load_path,
                    load_fn load) {
    if (sf_test_write_file(target, buf, n) != 0) {
        t->silent = -1;
        return 0;
    }
    sf_clear_error();
    if (load(load_path))
        t->loaded++;
    else if (sf_last_error()[0])
        t->rejected++;
    else {
        t->silent++;
        fprintf(stderr, "    no error message: %s\n", g_case);
    }
    return 1;
}

/* Every number of a JSON text (a run of number characters after ':', ',' or '[') replaced in turn by
 * each of a list of values a parser must refuse or bound: zero, negatives, beyond 32 and 64 bits, huge
 * and tiny floats, and values of the wrong type. */
static void sweep_json_numbers(tally *t, const char *label, const unsigned char *orig, size_t len, const char *target,
                               const char *load_path, load_fn load) {
    static const char *const values[] = {
        "0",   "-1",   "-2147483648", "2147483648", "4294967297", "18446744073709551617", "1e308", "-1e308", "1e-320",
        "0.5", "null", "\"7\"",       "[]",         "true"};
    const size_t nv = sizeof values / sizeof *values;
    unsigned char *m = malloc(len + 32);
    for (size_t i = 1; i < len; i++) {
        const unsigned char prev = orig[i - 1];
        if (!((orig[i] >= '0' && orig[i] <= '9') || orig[i] == '-') ||
            !(prev == ':' || prev == ',' || prev == '[' || prev == ' '))
            continue;
        size_t e = i;
        while (e < len && strchr("0123456789-+.eE", orig[e])) e++;
        for (size_t v = 0; v < nv; v++) {
            const size_t vl = strlen(values[v]);
            memcpy(m, orig, i);
            memcpy(m + i, values[v], vl);
            memcpy(m + i + vl, orig + e, len - e);
            snprintf(g_case, sizeof g_case, "%s, the number at byte %zu = %s", label, i, values[v]);
            if (!try_case(t, m, i + vl + len - e, target, load_path, load)) {
                free(m);
                return;
            }
        }
        i = e;
    }
    free(m);
}

/* Writes mutations of the file `seed_path` to `target` and runs `load` on `load_path` after each
 * (load_path is target itself, or the folder holding it): first, every 32-bit field of the first
 * `fields` bytes (a binary header: sizes, counts, flags) set to each extreme in turn, or (json) every
 * number replaced by each hostile value; then `cases` random mutations. */
static tally fuzz_file(const char *label, const char *seed_path, size_t fields, int json, size_t focus,
                       const char *target, const char *load_path, load_fn load, int cases, uint64_t seed) {
    tally t = {0, 0, 0, 0};
    size_t len = 0;
    unsigned char *orig = (unsigned char *)sf_test_read_file(seed_path, &len);
    if (!orig) {
        t.silent = -1;
        return t;
    }
    snprintf(g_case, sizeof g_case, "%s, unmutated", label);
    if (sf_test_write_file(target, orig, len) == 0) {
        sf_clear_error();
        t.seed_loads = load(load_path);
        if (!t.seed_loads) fprintf(stderr, "    %s: %s\n", g_case, sf_last_error());
    }
    static const uint32_t extremes[] = {0, 1, 3, 0xFFFFFFFFu, 0x80000000u, 0x7FFFFFFFu, 1u << 24, (1u << 24) + 1};
    unsigned char *m = malloc(len > 0 ? len : 1);
    for (size_t off = 0; off + 4 <= fields && off + 4 <= len; off += 4)
        for (size_t e = 0; e < sizeof extremes / sizeof *extremes; e++) {
            memcpy(m, orig, len);
            for (int i = 0; i < 4; i++) m[off + i] = (unsigned char)(extremes[e] >> (8 * i));
            snprintf(g_case, sizeof g_case, "%s, field at byte %zu = %u (0x%08x)", label, off, extremes[e],
                     extremes[e]);
            if (!try_case(&t, m, len, target, load_path, load)) break;
        }
    free(m);
    if (json) sweep_json_numbers(&t, label, orig, len, target, load_path, load);
    uint64_t rng = seed;
    for (int c = 0; c < cases && t.silent >= 0; c++) {
        size_t n = 0;
        snprintf(g_case, sizeof g_case, "%s, case %d:", label, c);
        unsigned char *mc = mutate(orig, len, focus, &rng, &n, g_case, sizeof g_case);
        try_case(&t, mc, n, target, load_path, load);
        free(mc);
    }
    g_case[0] = 0;
    free(orig);
    return t;
}

static void report(const char *label, tally t, int cases) {
    CHECK(t.seed_loads, "%s: the unmutated file does not load", label);
    CHECK(t.silent == 0, "%s: %d of %d failures gave no message (-1: a file could not be read or written)", label,
          t.silent, cases);
    CHECK(t.rejected > 0, "%s: none of %d mutations was rejected (loaded %d): the mutations miss what is checked",
          label, cases, t.loaded);
    printf("    %s: %d cases (%d random), %d loaded, %d rejected with a message\n", label,
           t.loaded + t.rejected + t.silent, cases, t.loaded, t.rejected);
}

/* the safetensors header's end: 8 + the little-endian u64 length at the start */
static size_t st_header_end(const char *path) {
    size_t len = 0;
    unsigned char *b = (unsigned char *)sf_test_read_file(path, &len);
    uint64_t h = 0;
    for (int i = 0; b && i < 8 && (size_t)i < len; i++) h |= (uint64_t)b[i] << (8 * i);
    free(b);
    return (size_t)(8 + (h < len ? h : 0));
}

static int link_into(const char *dir, const char *src_dir, const char *name) {
    char from[1024], to[1024];
    if (snprintf(from, sizeof from, "%s/%s", src_dir, name) >= (int)sizeof from ||
        snprintf(to, sizeof to, "%s/%s", dir, name) >= (int)sizeof to)
        return 0;
    unlink(to);
    return symlink(from, to) == 0;
}

/* --------------------------------------------- the loaders --------------------------------------------- */

static int load_safetensors(const char *path) {
    sf_st_file *f = sf_st_open(path);
    if (!f) return 0;
    int ok = 1;
    for (int i = 0; i < sf_st_count(f) && ok; i++) {
        const sf_st_entry *e = sf_st_entry_at(f, i);
        sf_tensor *v = sf_st_view(f, e->name), *c = sf_st_load_f32(f, e->name);
        if (e->dtype < SF_DTYPE_COUNT && (!v || !c)) ok = 0; /* a listed tensor the engine holds must read */
        sf_tensor_release(v);
        sf_tensor_release(c);
    }
    for (int i = 0; i < sf_st_metadata_count(f); i++) (void)sf_st_metadata_get(f, sf_st_metadata_key(f, i));
    sf_st_close(f);
    return ok;
}

static int load_model(const char *path) {
    sf_model *m = sf_model_load(path, NULL);
    if (!m) return 0;
    sf_model_free(m);
    return 1;
}

static int load_classifier(const char *path) { /* encoders load only with a classification head */
    const sf_load_options opts = {.task = SF_TASK_CLASSIFY, .num_labels = 2, .seed = 1};
    sf_model *m = sf_model_load(path, &opts);
    if (!m) return 0;
    sf_model_free(m);
    return 1;
}

static int load_tokenizer(const char *path) {
    sf_tokenizer *t = sf_tokenizer_load(path);
    if (!t) return 0;
    static const char text[] = "Hello world, fuzz! \xc3\xa9t\xc3\xa9 \xe2\x82\xac 123\n\tend";
    int32_t *ids = NULL;
    size_t n = 0;
    if (sf_tokenizer_encode(t, text, sizeof text - 1, 1, &ids, &n) == SF_OK) {
        char *out = NULL;
        size_t len = 0;
        if (sf_tokenizer_decode(t, ids, n, &out, &len) == SF_OK) free(out);
        free(ids);
    }
    for (int32_t id = -1; id < 300; id += 37) (void)sf_tokenizer_piece(t, id, &n);
    sf_tokenizer_free(t);
    sf_clear_error(); /* encode/decode may refuse pieces a mutated vocabulary lacks: that is not a load failure */
    return 1;
}

static int load_delta(const char *path) {
    sf_delta *d = sf_delta_load(path);
    if (!d) return 0;
    sf_delta_free(d);
    return 1;
}

/* ----------------------------------------------- tests ----------------------------------------------- */

static int cases_for(int normal) {
    const char *e = getenv("SIFT_FUZZ_CASES"); /* more for a longer soak */
    return e && atoi(e) > 0 ? atoi(e) : normal;
}

static int prepare(void) {
    static int installed;
    if (!installed) {
        signal(SIGSEGV, on_crash);
        signal(SIGBUS, on_crash);
        signal(SIGFPE, on_crash);
        signal(SIGABRT, on_crash);
        installed = 1;
    }
    return make_scratch();
}

TEST(safetensors_reader) {
    char seed[1024], target[1024];
    PATHF(seed, "%s/fixtures/gpt2/model.safetensors", shared_dir());
    if (access(seed, R_OK) != 0) SKIP("%s missing (set SIFT_SHARED)", seed);
    REQUIRE(prepare(), "no scratch folder");
    const int n = cases_for(400);
    report("model.safetensors",
           fuzz_file("model.safetensors", seed, 8, 0, st_header_end(seed),
                     scratch(target, sizeof target, "x.safetensors"), target, load_safetensors, n, 1),
           n);
}

TEST(hugging_face_folders) {
    char src[1024], sharded[1024], dir[1024], seed[1024], target[1024];
    PATHF(src, "%s/fixtures/gpt2", shared_dir());
    PATHF(sharded, "%s/fixtures/gpt2-sharded", shared_dir());
    PATHF(seed, "%s/config.json", src);
    if (access(seed, R_OK) != 0) SKIP("%s missing (set SIFT_SHARED)", seed);
    REQUIRE(prepare(), "no scratch folder");
    const int n = cases_for(150);
    scratch(dir, sizeof dir, "hf");
    mkdir(dir, 0700);
    PATHF(target, "%s/config.json", dir);
    /* a folder with a mutated config.json beside the real weights, for each architecture's parser */
    static const char *const archs[] = {"gpt2", "llama", "roberta-cls"};
    for (int a = 0; a < 3; a++) {
        char arch_dir[1024], label[64];
        PATHF(arch_dir, "%s/fixtures/%s", shared_dir(), archs[a]);
        PATHF(seed, "%s/config.json", arch_dir);
        snprintf(label, sizeof label, "%s config.json", archs[a]);
        REQUIRE(link_into(dir, arch_dir, "model.safetensors"), "symlink: %s", dir);
        report(label,
               fuzz_file(label, seed, 0, 1, 1 << 20, target, dir, a == 2 ? load_classifier : load_model, n,
                         2 + (uint64_t)a * 100),
               n);
    }
    /* the real GPT-2 config.json beside mutated weights */
    unlink(target);
    REQUIRE(link_into(dir, src, "config.json"), "symlink: %s", dir);
    PATHF(seed, "%s/model.safetensors", src);
    PATHF(target, "%s/model.safetensors", dir);
    unlink(target);
    report("weights of a folder",
           fuzz_file("weights of a folder", seed, 8, 0, st_header_end(seed), target, dir, load_model, n, 3), n);
    /* a sharded folder with a mutated index */
    scratch(dir, sizeof dir, "sharded");
    mkdir(dir, 0700);
    link_into(dir, sharded, "config.json");
    for (int i = 1; i <= 7; i++) {
        char name[64];
        snprintf(name, sizeof name, "model-%05d-of-00007.safetensors", i);
        REQUIRE(link_into(dir, sharded, name), "symlink %s", name);
    }
    PATHF(seed, "%s/model.safetensors.index.json", sharded);
    PATHF(target, "%s/model.safetensors.index.json", dir);
    report("model.safetensors.index.json",
           fuzz_file("model.safetensors.index.json", seed, 0, 1, 1 << 20, target, dir, load_model, n, 4), n);
}

TEST(llama2c_model) {
    char seed[1024], target[1024];
    PATHF(seed, "%s/models/stories260K/stories260K.bin", shared_dir());
    if (access(seed, R_OK) != 0) SKIP("%s missing (set SIFT_SHARED)", seed);
    REQUIRE(prepare(), "no scratch folder");
    const int n = cases_for(150);
    /* the header: 7 int32 (dim, hidden, layers, heads, kv heads, vocab (negative: an untied head), seq len) */
    report("stories260K.bin",
           fuzz_file("stories260K.bin", seed, 28, 0, 28, scratch(target, sizeof target, "m.bin"), target, load_model, n,
                     5),
           n);
}

TEST(tokenizers) {
    char seed[1024], target[1024], dir[1024], src[1024];
    PATHF(seed, "%s/models/stories260K/tok512.bin", shared_dir());
    if (access(seed, R_OK) != 0) SKIP("%s missing (set SIFT_SHARED)", seed);
    REQUIRE(prepare(), "no scratch folder");
    const int n = cases_for(300);
    report("tok512.bin",
           fuzz_file("tok512.bin", seed, 16, 0, 1 << 20, scratch(target, sizeof target, "tok512.bin"), target,
                     load_tokenizer, n, 6),
           n);
    PATHF(seed, "%s/models/gpt2-4m/tokenizer.json", shared_dir());
    const int nj = cases_for(40);
    report("tokenizer.json",
           fuzz_file("tokenizer.json", seed, 0, 0, 4096, scratch(target, sizeof target, "tokenizer.json"), target,
                     load_tokenizer, nj, 7),
           nj);
    /* encoder.json + vocab.bpe: each mutated beside the other's real file */
    PATHF(src, "%s/models/gpt2-bpe", shared_dir());
    scratch(dir, sizeof dir, "bpe");
    mkdir(dir, 0700);
    REQUIRE(link_into(dir, src, "encoder.json"), "symlink: %s", dir);
    PATHF(seed, "%s/vocab.bpe", src);
    PATHF(target, "%s/vocab.bpe", dir);
    report("vocab.bpe", fuzz_file("vocab.bpe", seed, 0, 0, 4096, target, dir, load_tokenizer, nj, 8), nj);
    unlink(target);
    REQUIRE(link_into(dir, src, "vocab.bpe"), "symlink: %s", dir);
    PATHF(seed, "%s/encoder.json", src);
    PATHF(target, "%s/encoder.json", dir);
    unlink(target);
    report("encoder.json", fuzz_file("encoder.json", seed, 0, 0, 4096, target, dir, load_tokenizer, nj, 9), nj);
}

TEST(delta_files) {
    REQUIRE(prepare(), "no scratch folder");
    /* a delta with two sparse entries (int32 indices), a dense one and an extra pair */
    sf_delta *d = sf_delta_new("topk", 0.01, 12, 7);
    REQUIRE(d, "sf_delta_new: %s", sf_last_error());
    const char *hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    int64_t shape_a[2] = {8, 16}, idx_a[5] = {0, 3, 17, 64, 127}, shape_b[1] = {40}, idx_b[3] = {1, 2, 39};
    float val_a[5] = {0.5f, -1, 2, 1e-3f, -7}, val_b[3] = {1, 2, 3};
    REQUIRE(sf_delta_add_sparse(d, "h.0.attn.weight", 2, shape_a, 5, idx_a, val_a, hex) == SF_OK, "%s",
            sf_last_error());
    REQUIRE(sf_delta_add_sparse(d, "h.1.mlp.weight", 1, shape_b, 3, idx_b, val_b, hex) == SF_OK, "%s", sf_last_error());
    int64_t shape_h[2] = {2, 4};
    sf_tensor *head = sf_tensor_zeros_f32(2, shape_h);
    REQUIRE(head && sf_delta_add_dense(d, "score.weight", head) == SF_OK, "%s", sf_last_error());
    sf_tensor_release(head);
    REQUIRE(sf_delta_set_extra(d, "task", "sst2") == SF_OK, "%s", sf_last_error());
    char seed[1024], target[1024];
    REQUIRE(sf_delta_save(d, scratch(seed, sizeof seed, "seed.delta")) == SF_OK, "save: %s", sf_last_error());
    sf_delta_free(d);
    REQUIRE(load_delta(seed), "the unmutated delta does not load: %s", sf_last_error());
    const int n = cases_for(400);
    report("delta",
           fuzz_file("delta", seed, 8, 0, st_header_end(seed), scratch(target, sizeof target, "x.delta"), target,
                     load_delta, n, 10),
           n);
}

/* last: the scratch folder and what is in it go */
TEST(zz_cleanup) {
    if (!g_dir[0]) return;
    static const char *const files[] = {"x.safetensors",       "m.bin",
                                        "tok512.bin",          "tokenizer.json",
                                        "seed.delta",          "x.delta",
                                        "hf/config.json",      "hf/model.safetensors",
                                        "sharded/config.json", "sharded/model.safetensors.index.json",
                                        "bpe/encoder.json",    "bpe/vocab.bpe"};
    char path[1024];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) unlink(scratch(path, sizeof path, files[i]));
    for (int i = 1; i <= 7; i++) {
        char name[128];
        snprintf(name, sizeof name, "sharded/model-%05d-of-00007.safetensors", i);
        unlink(scratch(path, sizeof path, name));
    }
    rmdir(scratch(path, sizeof path, "hf"));
    rmdir(scratch(path, sizeof path, "sharded"));
    rmdir(scratch(path, sizeof path, "bpe"));
    CHECK(rmdir(g_dir) == 0, "scratch folder %s not empty", g_dir);
}

TEST_MAIN()
