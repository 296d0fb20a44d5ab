/* test_tokenizer.c — core/tokenizer.c, tokenizer_bpe.c, tokenizer_llama2c.c.
 *
 * Checks: known encodings (gpt2-4m tokenizer.json "Once upon a time" -> [875, 731, 259, 540]; OpenAI
 * GPT-2 "Hello world! It's 2026." -> [15496, 995, 0, 632, 338, 1160, 2075, 13] and more strings whose
 * ids come from a Python port of OpenAI's encoder.py with the `regex` module — contractions, Cyrillic,
 * Greek, CJK, Arabic digits, Unicode spaces, combining marks); the llama2.c encoder against a plain
 * quadratic port of run.c `encode` written here (reference vs heap version); decode(encode(x)) == x for
 * every corpus in $SIFT_SHARED/data/corpora (default ../shared) with all three real tokenizers, with
 * the encode time of each (limit 5 s per file, 60 s under ASan), for random bytes (invalid UTF-8), the
 * empty string and special tokens inside the text; the prefix-space decode rule; a hand-written
 * tokenizer.json (add_prefix_space, both merge spellings, an added token) with hand-computed ids; and
 * the error paths (missing file, truncated or foreign tok*.bin, bad JSON, non-BPE model, bad merge,
 * unsupported normalizer, missing vocab.bpe, empty folder, bytes without a token, out-of-range ids).
 * Tests that need ../shared report themselves skipped when it is absent.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/tokenizer.h"
#include "test.h"

#ifdef __SANITIZE_ADDRESS__
#define ENCODE_SECONDS_LIMIT 60.0
#else
#define ENCODE_SECONDS_LIMIT 5.0
#endif

/* ---------------------------------------------- helpers ---------------------------------------------- */
/* Path under the shared folder in a static buffer (one at a time), NULL when it does not exist. */
static const char *shared(const char *rel) {
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, sizeof buf[0], "%s/%s", shared_dir(), rel);
    struct stat sb;
    return stat(p, &sb) == 0 ? p : NULL;
}

static char tmp_root[64];

static void remove_tmp_root(void) { rmdir(tmp_root); } /* tests remove their files; this removes the folder */

static const char *tmp_dir(void) {
    if (!tmp_root[0]) {
        snprintf(tmp_root, sizeof tmp_root, "/tmp/sift_test_tok_XXXXXX");
        if (mkdtemp(tmp_root)) atexit(remove_tmp_root);
        else snprintf(tmp_root, sizeof tmp_root, "/tmp");
    }
    return tmp_root;
}

/* Writes a file under the temp folder (sub-folders must exist); returns its path (static buffer). */
static const char *write_tmp(const char *name, const void *data, size_t len) {
    static char path[4][256];
    static int k;
    char *p = path[k++ & 3];
    snprintf(p, sizeof path[0], "%s/%s", tmp_dir(), name);
    FILE *f = fopen(p, "wb");
    if (!f) return p;
    fwrite(data, 1, len, f);
    fclose(f);
    return p;
}

static void rm_tmp(const char *name) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", tmp_dir(), name);
    remove(p);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Encodes and checks the ids; returns 1 when equal. */
static int encodes_to(const sf_tokenizer *t, const char *text, int add_bos, const int32_t *want, size_t n_want) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (sf_tokenizer_encode(t, text, strlen(text), add_bos, &ids, &n) != SF_OK) {
        fprintf(stderr, "    encode failed: %s\n", sf_last_error());
        return 0;
    }
    int ok = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    if (!ok) {
        fprintf(stderr, "    \"%s\" ->", text);
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, " (want %zu ids)\n", n_want);
    }
    free(ids);
    return ok;
}

/* decode(encode(text)) == text; returns the number of ids (or -1 on failure). */
static long roundtrip(const sf_tokenizer *t, const char *text, size_t len) {
    int32_t *ids = NULL;
    size_t n = 0;
    char *out = NULL;
    size_t out_len = 0;
    if (sf_tokenizer_encode(t, text, len, 0, &ids, &n) != SF_OK) {
        fprintf(stderr, "    encode failed: %s\n", sf_last_error());
        return -1;
    }
    long r = (long)n;
    if (sf_tokenizer_decode(t, ids, n, &out, &out_len) != SF_OK) {
        fprintf(stderr, "    decode failed: %s\n", sf_last_error());
        r = -1;
    } else if (out_len != len || memcmp(out, text, len) != 0 || out[out_len] != '\0') {
        size_t i = 0;
        while (i < len && i < out_len && out[i] == text[i]) i++;
        fprintf(stderr, "    round trip differs at byte %zu of %zu (decoded %zu bytes)\n", i, len, out_len);
        r = -1;
    }
    free(ids);
    free(out);
    return r;
}

static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(void) { /* xorshift64 */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* --------------------------------------------- known ids --------------------------------------------- */
TEST(gpt2_4m_known_encoding) {
    const char *p = shared("models/gpt2-4m/tokenizer.json");
    if (!p) SKIP("%s/models/gpt2-4m/tokenizer.json not found", shared_dir());
    sf_tokenizer *t = sf_tokenizer_load(p);
    REQUIRE(t, "load: %s", sf_last_error());
    CHECK(sf_tokenizer_get_kind(t) == SF_TOK_BYTE_BPE, "kind");
    CHECK(sf_tokenizer_vocab_size(t) == 4096, "vocab %d", sf_tokenizer_vocab_size(t));
    CHECK(sf_tokenizer_bos(t) == 0 && sf_tokenizer_eos(t) == 0, "bos %d eos %d", sf_tokenizer_bos(t), sf_tokenizer_eos(t));
    const int32_t want[] = {875, 731, 259, 540};
    CHECK(encodes_to(t, "Once upon a time", 0, want, 4), "Once upon a time");
    const int32_t want_bos[] = {0, 875, 731, 259, 540};
    CHECK(encodes_to(t, "Once upon a time", 1, want_bos, 5), "with bos");
    /* from a Python port of encoder.py on this tokenizer.json */
    const int32_t w2[] = {1407, 128, 108, 311, 1729, 70, 128, 103, 329, 137, 224, 221, 0, 831};
    CHECK(encodes_to(t, "na\xC3\xAFve caf\xC3\xA9 e\xCC\x81 <|endoftext|> end", 0, w2, N_OF(w2)), "naive cafe");
    size_t n;
    const char *pc = sf_tokenizer_piece(t, 875, &n);
    CHECK(pc && n == 4 && !memcmp(pc, "Once", 4), "piece 875");
    pc = sf_tokenizer_piece(t, 731, &n);
    CHECK(pc && n == 5 && !memcmp(pc, " upon", 5), "piece 731 is the raw bytes \" upon\"");
    CHECK(sf_tokenizer_lookup(t, "\xC4\xA0upon") == 731, "lookup by vocab spelling");
    CHECK(sf_tokenizer_lookup(t, " upon") == 731, "lookup by raw bytes");
    CHECK(sf_tokenizer_lookup(t, "<|endoftext|>") == 0, "lookup special");
    CHECK(sf_tokenizer_lookup(t, "no such piece!") == -1, "lookup missing");
    CHECK(sf_tokenizer_piece(t, 4096, &n) == NULL && n == 0, "piece out of range");
    CHECK(sf_tokenizer_piece(t, -1, NULL) == NULL, "piece -1");
    sf_tokenizer_free(t);
}

TEST(gpt2_openai_known_encoding) {
    const char *p = shared("models/gpt2-bpe");
    if (!p) SKIP("%s/models/gpt2-bpe not found", shared_dir());
    sf_tokenizer *t = sf_tokenizer_load(p);
    REQUIRE(t, "load: %s", sf_last_error());
    CHECK(sf_tokenizer_vocab_size(t) == 50257, "vocab %d", sf_tokenizer_vocab_size(t));
    CHECK(sf_tokenizer_bos(t) == 50256 && sf_tokenizer_eos(t) == 50256, "bos/eos");
    const int32_t w0[] = {15496, 995, 0, 632, 338, 1160, 2075, 13};
    CHECK(encodes_to(t, "Hello world! It's 2026.", 0, w0, N_OF(w0)), "README example");
    /* the rest from a Python port of OpenAI's encoder.py (regex module) */
    const int32_t w1[] = {40, 1183, 910, 340, 338, 1757, 338, 960, 9930, 1053, 705, 2200, 1760, 13};
    CHECK(encodes_to(t, "I'll say it's John's\xE2\x80\x94they've 'RE done.", 0, w1, N_OF(w1)), "contractions");
    const int32_t w2[] = {140,   253, 21169, 18849, 38857, 16843, 20375, 11,    12466, 120,   18849, 21169,
                          0,     7377, 248,  17394, 39377, 138,   115,   34703, 138,   255,   33643, 17394,
                          7377,  118,  139,  234,   38392, 34703, 30950, 220,   19526, 254,   25001, 121,
                          10310, 244,  45911, 234,  18923, 94,    149,   95,    149,   96,    25208};
    CHECK(encodes_to(t,
                     "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82, \xD0\xBC\xD0\xB8\xD1\x80! "
                     "\xCE\x9A\xCE\xB1\xCE\xBB\xCE\xB7\xCE\xBC\xCE\xAD\xCF\x81\xCE\xB1 "
                     "\xCE\xBA\xCF\x8C\xCF\x83\xCE\xBC\xCE\xB5 \xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C "
                     "\xD9\xA1\xD9\xA2\xD9\xA3 \xC2\xBD",
                     0, w2, N_OF(w2)),
          "Cyrillic, Greek, CJK, Arabic digits, vulgar fraction");
    const int32_t w3[] = {220, 734, 220, 9029, 197, 197, 8658, 82, 628, 198, 3605, 3951, 220, 220, 220};
    CHECK(encodes_to(t, "  two  spaces\t\ttabs\n\n\nnew lines   ", 0, w3, N_OF(w3)), "whitespace runs");
    const int32_t w4[] = {87, 1849, 88, 5099, 222, 89, 17031, 2231, 513, 13, 1415, 720, 3064};
    CHECK(encodes_to(t, "x\xC2\xA0y\xE3\x80\x80z 12345 3.14 $100", 0, w4, N_OF(w4)), "NBSP, ideographic space, digits");
    const int32_t w5[] = {2616, 38776, 40304, 304, 136, 223, 220, 50256, 886};
    CHECK(encodes_to(t, "na\xC3\xAFve caf\xC3\xA9 e\xCC\x81 <|endoftext|> end", 0, w5, N_OF(w5)), "combining mark, special");
    sf_tokenizer_free(t);
}

TEST(gpt2_openai_load_paths) {
    const char *enc = shared("models/gpt2-bpe/encoder.json"), *bpe = shared("models/gpt2-bpe/vocab.bpe");
    if (!enc || !bpe) SKIP("%s/models/gpt2-bpe not found", shared_dir());
    sf_tokenizer *a = sf_tokenizer_load(enc), *b = sf_tokenizer_load(bpe);
    REQUIRE(a && b, "load: %s", sf_last_error());
    const int32_t w0[] = {15496, 995, 0, 632, 338, 1160, 2075, 13};
    CHECK(encodes_to(a, "Hello world! It's 2026.", 0, w0, N_OF(w0)), "via encoder.json");
    CHECK(encodes_to(b, "Hello world! It's 2026.", 0, w0, N_OF(w0)), "via vocab.bpe");
    sf_tokenizer_free(a);
    sf_tokenizer_free(b);
}

/* ------------------------------------------ llama2.c (run.c) ------------------------------------------ */
TEST(llama2c_known_encoding) {
    const char *p = shared("models/stories260K/tok512.bin");
    if (!p) SKIP("%s/models/stories260K/tok512.bin not found", shared_dir());
    sf_tokenizer *t = sf_tokenizer_load(p);
    REQUIRE(t, "load: %s", sf_last_error());
    CHECK(sf_tokenizer_get_kind(t) == SF_TOK_LLAMA2C, "kind");
    CHECK(sf_tokenizer_vocab_size(t) == 512, "vocab %d", sf_tokenizer_vocab_size(t));
    CHECK(sf_tokenizer_bos(t) == 1 && sf_tokenizer_eos(t) == 2, "bos/eos");
    /* ids from llama2.c run.c's algorithm (the Python port below agrees); pieces " Once", " upon", " a", " time" */
    const int32_t want[] = {1, 403, 407, 261, 378};
    CHECK(encodes_to(t, "Once upon a time", 1, want, 5), "Once upon a time");
    const char *words[] = {" Once", " upon", " a", " time"};
    for (int i = 0; i < 4; i++) {
        size_t n;
        const char *pc = sf_tokenizer_piece(t, want[i + 1], &n);
        CHECK(pc && n == strlen(words[i]) && !memcmp(pc, words[i], n), "piece %d", want[i + 1]);
    }
    char *out;
    size_t len;
    REQUIRE(sf_tokenizer_decode(t, want, 5, &out, &len) == SF_OK, "decode: %s", sf_last_error());
    CHECK(len == 16 && !strcmp(out, "Once upon a time"), "decoded \"%s\"", out);
    free(out);
    size_t n;
    const char *nl = sf_tokenizer_piece(t, 13, &n);
    CHECK(nl && n == 1 && nl[0] == '\n', "byte token <0x0A> is the byte");
    CHECK(sf_tokenizer_lookup(t, "<0x0A>") == 13 && sf_tokenizer_lookup(t, "\n") == 13, "lookup byte token");
    CHECK(sf_tokenizer_lookup(t, "<s>") == 1 && sf_tokenizer_lookup(t, "</s>") == 2, "lookup <s> </s>");
    CHECK(sf_tokenizer_lookup(t, " Once") == 403, "lookup piece");
    sf_tokenizer_free(t);
}

/* The plain llama2.c run.c encode: vocab from the file, str_lookup by linear scan over ids >= 259 (lowest
 * id first), quadratic merge loop. The reference for the heap-based encoder. */
typedef struct {
    int n;
    char **piece;
    int *len;
    float *score;
} ref_vocab;

static int ref_load(ref_vocab *v, const char *path) {
    size_t len;
    char *d = sf_test_read_file(path, &len);
    if (!d) return 0;
    size_t p = 4;
    v->n = 0;
    v->piece = NULL;
    v->len = NULL;
    v->score = NULL;
    while (p + 8 <= len) {
        float s;
        int32_t l;
        memcpy(&s, d + p, 4);
        memcpy(&l, d + p + 4, 4);
        v->piece = realloc(v->piece, (v->n + 1) * sizeof *v->piece);
        v->len = realloc(v->len, (v->n + 1) * sizeof *v->len);
        v->score = realloc(v->score, (v->n + 1) * sizeof *v->score);
        v->piece[v->n] = malloc((size_t)l + 1);
        memcpy(v->piece[v->n], d + p + 8, (size_t)l);
        v->len[v->n] = l;
        v->score[v->n] = s;
        v->n++;
        p += 8 + (size_t)l;
    }
    free(d);
    return 1;
}

static void ref_free(ref_vocab *v) {
    for (int i = 0; i < v->n; i++) free(v->piece[i]);
    free(v->piece);
    free(v->len);
    free(v->score);
}

static int ref_lookup(const ref_vocab *v, const char *s, int n) {
    for (int i = 259; i < v->n; i++)
        if (v->len[i] == n && !memcmp(v->piece[i], s, (size_t)n)) return i;
    return -1;
}

static size_t ref_encode(const ref_vocab *v, const unsigned char *s, size_t len, int32_t *tok) {
    size_t n = 0;
    if (!len) return 0;
    tok[n++] = ref_lookup(v, " ", 1);
    for (size_t i = 0; i < len;) {
        size_t j = i + 1;
        while (j < len && (s[j] & 0xC0) == 0x80 && j - i < 4) j++;
        int id = ref_lookup(v, (const char *)s + i, (int)(j - i));
        if (id >= 0) tok[n++] = id;
        else
            for (size_t k = i; k < j; k++) tok[n++] = s[k] + 3;
        i = j;
    }
    char buf[512];
    for (;;) {
        float best = -1e10f;
        long bi = -1;
        int bid = -1;
        for (size_t i = 0; i + 1 < n; i++) {
            int la = v->len[tok[i]], lb = v->len[tok[i + 1]];
            if (la + lb > (int)sizeof buf) continue;
            memcpy(buf, v->piece[tok[i]], (size_t)la);
            memcpy(buf + la, v->piece[tok[i + 1]], (size_t)lb);
            int id = ref_lookup(v, buf, la + lb);
            if (id != -1 && v->score[id] > best) best = v->score[id], bi = (long)i, bid = id;
        }
        if (bi < 0) break;
        tok[bi] = bid;
        memmove(tok + bi + 1, tok + bi + 2, (n - (size_t)bi - 2) * sizeof *tok);
        n--;
    }
    return n;
}

TEST(llama2c_matches_runc_reference) {
    const char *p = shared("models/stories260K/tok512.bin");
    if (!p) SKIP("%s/models/stories260K/tok512.bin not found", shared_dir());
    sf_tokenizer *t = sf_tokenizer_load(p);
    ref_vocab v;
    REQUIRE(t && ref_load(&v, p), "load: %s", sf_last_error());
    static const char *alphabet[] = {"a", "b", " ", "e", "t", "h", "the", " the", "Once", ".", "\n", "\xC3\xA9",
                                     "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "\x80", "\xFF", "\xC3", "\t", "ing", "  "};
    int mismatches = 0, cases = 0;
    unsigned char text[256];
    int32_t ref[300];
    for (int c = 0; c < 3000; c++) {
        size_t len = 0;
        int parts = (int)(rnd() % 24);
        for (int k = 0; k < parts; k++) {
            const char *a = alphabet[rnd() % N_OF(alphabet)];
            size_t m = strlen(a);
            char byte = (char)(rnd() & 0xFF);
            if (rnd() % 8 == 0) a = &byte, m = 1;
            memcpy(text + len, a, m);
            len += m;
        }
        size_t nr = ref_encode(&v, text, len, ref);
        int32_t *ids;
        size_t n;
        REQUIRE(sf_tokenizer_encode(t, (const char *)text, len, 0, &ids, &n) == SF_OK, "%s", sf_last_error());
        if (n != nr || (n && memcmp(ids, ref, n * sizeof *ids))) mismatches++;
        free(ids);
        cases++;
    }
    CHECK(mismatches == 0, "%d of %d random strings differ from the run.c reference", mismatches, cases);
    /* and the first lines of TinyStories */
    size_t len;
    char *d = shared("data/corpora/tinystories_val_prefix.txt") ? sf_test_read_file(shared("data/corpora/tinystories_val_prefix.txt"), &len) : NULL;
    if (d) {
        int lines = 0;
        mismatches = 0;
        for (char *s = d; s < d + len && lines < 200; lines++) {
            char *nl = memchr(s, '\n', (size_t)(d + len - s));
            size_t m = nl ? (size_t)(nl - s) : (size_t)(d + len - s);
            if (m > 250) m = 250;
            int32_t *ids;
            size_t n;
            size_t nr = ref_encode(&v, (const unsigned char *)s, m, ref);
            if (sf_tokenizer_encode(t, s, m, 0, &ids, &n) == SF_OK) {
                if (n != nr || (n && memcmp(ids, ref, n * sizeof *ids))) mismatches++;
                free(ids);
            }
            s = nl ? nl + 1 : d + len;
        }
        CHECK(mismatches == 0, "%d of %d TinyStories lines differ from the run.c reference", mismatches, lines);
        free(d);
    }
    ref_free(&v);
    sf_tokenizer_free(t);
}

TEST(llama2c_prefix_space_rule) {
    const char *p = shared("models/stories260K/tok512.bin");
    if (!p) SKIP("%s/models/stories260K/tok512.bin not found", shared_dir());
    sf_tokenizer *t = sf_tokenizer_load(p);
    REQUIRE(t, "load: %s", sf_last_error());
    const char *cases[] = {" ", "  ", " x", "x ", "\n", "\x80", "<0x41>", "\n<s>\n", "a\0b"};
    for (size_t i = 0; i < N_OF(cases); i++) {
        size_t len = i == N_OF(cases) - 1 ? 3 : strlen(cases[i]);
        CHECK(roundtrip(t, cases[i], len) > 0, "case %zu", i);
    }
    /* text that spells control / byte tokens never becomes them */
    int32_t *ids;
    size_t n;
    REQUIRE(sf_tokenizer_encode(t, "<0x41>\n<s>\n</s><unk>", 20, 0, &ids, &n) == SF_OK, "%s", sf_last_error());
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad += ids[i] == 0 || ids[i] == 1 || ids[i] == 2 || ids[i] == 'A' + 3;
    CHECK(bad == 0, "control or byte token from spelled text");
    free(ids);
    /* BOS in the middle: each segment loses its dummy space; EOS emits nothing */
    int32_t *a, *b;
    size_t na, nb;
    REQUIRE(!sf_tokenizer_encode(t, "One", 3, 1, &a, &na) && !sf_tokenizer_encode(t, " two", 4, 1, &b, &nb), "encode");
    int32_t seq[64];
    size_t k = 0;
    for (size_t i = 0; i < na; i++) seq[k++] = a[i];
    seq[k++] = 2;
    for (size_t i = 0; i < nb; i++) seq[k++] = b[i];
    char *out;
    size_t len;
    REQUIRE(sf_tokenizer_decode(t, seq, k, &out, &len) == SF_OK, "%s", sf_last_error());
    CHECK(!strcmp(out, "One two"), "decoded \"%s\"", out);
    free(out);
    /* without BOS the first token's space is dropped too (SentencePiece), but not later ones */
    REQUIRE(sf_tokenizer_decode(t, a + 1, na - 1, &out, &len) == SF_OK, "%s", sf_last_error());
    CHECK(!strcmp(out, "One"), "decoded \"%s\"", out);
    free(out);
    free(a);
    free(b);
    sf_tokenizer_free(t);
}

/* -------------------------------------------- round trips -------------------------------------------- */
static const char *tokenizer_paths[] = {"models/gpt2-4m/tokenizer.json", "models/gpt2-bpe", "models/stories260K/tok512.bin"};
static const char *corpora[] = {"fortunes.txt", "tinyshakespeare_input.txt", "tinystories_val_prefix.txt",
                                "wikitext2_test.txt", "wikitext2_valid.txt"};

TEST(roundtrip_corpora) {
    if (!shared("data/corpora")) SKIP("%s/data/corpora not found", shared_dir());
    for (size_t k = 0; k < N_OF(tokenizer_paths); k++) {
        const char *p = shared(tokenizer_paths[k]);
        if (!p) SKIP("%s/%s not found", shared_dir(), tokenizer_paths[k]);
        sf_tokenizer *t = sf_tokenizer_load(p);
        REQUIRE(t, "load: %s", sf_last_error());
        for (size_t c = 0; c < N_OF(corpora); c++) {
            char rel[128];
            snprintf(rel, sizeof rel, "data/corpora/%s", corpora[c]);
            size_t len;
            char *text = shared(rel) ? sf_test_read_file(shared(rel), &len) : NULL;
            if (!text) {
                CHECK(0, "cannot read %s/%s", shared_dir(), rel);
                continue;
            }
            double t0 = now_s();
            long n = roundtrip(t, text, len);
            double dt = now_s() - t0;
            CHECK(n > 0, "%s with %s", corpora[c], tokenizer_paths[k]);
            CHECK(dt < ENCODE_SECONDS_LIMIT, "%s with %s took %.2f s", corpora[c], tokenizer_paths[k], dt);
            fprintf(stderr, "    %-28s %-32s %8zu bytes -> %7ld ids, %.2f bytes/id, encode+decode %.3f s\n", corpora[c],
                    tokenizer_paths[k], len, n, n > 0 ? (double)len / (double)n : 0.0, dt);
            free(text);
        }
        sf_tokenizer_free(t);
    }
}

TEST(roundtrip_random_bytes) {
    int found = 0;
    for (size_t k = 0; k < N_OF(tokenizer_paths); k++) {
        const char *p = shared(tokenizer_paths[k]);
        if (!p) continue;
        found++;
        sf_tokenizer *t = sf_tokenizer_load(p);
        REQUIRE(t, "load: %s", sf_last_error());
        size_t big = 300000;
        char *buf = malloc(big);
        for (size_t i = 0; i < big; i++) buf[i] = (char)(rnd() & 0xFF);
        CHECK(roundtrip(t, buf, big) > 0, "300 kB of random bytes with %s", tokenizer_paths[k]);
        /* short strings biased towards the tricky bytes: spaces, apostrophes, UTF-8 lead/continuation */
        static const unsigned char pick[] = {' ', ' ', '\'', 's', 'a', '1', '\n', '\t', 0x80, 0xBF, 0xC3, 0xA9,
                                             0xE4, 0xF0, 0x9F, 0xFF, 0x00, '<', '|', '>', 0xC2, 0xA0, 0xED, 0xA0};
        int bad = 0;
        for (int c = 0; c < 3000; c++) {
            size_t len = rnd() % 24;
            for (size_t i = 0; i < len; i++) buf[i] = (char)(rnd() % 3 ? pick[rnd() % sizeof pick] : rnd() & 0xFF);
            bad += roundtrip(t, buf, len) < 0;
        }
        CHECK(bad == 0, "%d of 3000 short random strings fail with %s", bad, tokenizer_paths[k]);
        free(buf);
        sf_tokenizer_free(t);
    }
    if (!found) SKIP("no tokenizer under %s/models", shared_dir());
}

TEST(empty_text) {
    int found = 0;
    for (size_t k = 0; k < N_OF(tokenizer_paths); k++) {
        const char *p = shared(tokenizer_paths[k]);
        if (!p) continue;
        found++;
        sf_tokenizer *t = sf_tokenizer_load(p);
        REQUIRE(t, "load: %s", sf_last_error());
        int32_t *ids = NULL;
        size_t n = 99;
        CHECK(sf_tokenizer_encode(t, "", 0, 0, &ids, &n) == SF_OK && n == 0 && ids, "empty -> no ids");
        free(ids);
        CHECK(sf_tokenizer_encode(t, NULL, 0, 1, &ids, &n) == SF_OK && n == 1 && ids[0] == sf_tokenizer_bos(t),
              "NULL, 0 with bos -> [bos]");
        char *out = NULL;
        size_t len = 99;
        CHECK(sf_tokenizer_decode(t, NULL, 0, &out, &len) == SF_OK && len == 0 && out && out[0] == '\0', "decode []");
        free(out);
        if (sf_tokenizer_get_kind(t) == SF_TOK_LLAMA2C) {
            CHECK(sf_tokenizer_decode(t, ids, n, &out, &len) == SF_OK && len == 0, "decode [bos] is empty");
            free(out);
        }
        free(ids);
        sf_tokenizer_free(t);
    }
    if (!found) SKIP("no tokenizer under %s/models", shared_dir());
}

TEST(special_token_in_text) {
    const char *paths[] = {"models/gpt2-4m/tokenizer.json", "models/gpt2-bpe"};
    int found = 0;
    for (size_t k = 0; k < N_OF(paths); k++) {
        const char *p = shared(paths[k]);
        if (!p) continue;
        found++;
        sf_tokenizer *t = sf_tokenizer_load(p);
        REQUIRE(t, "load: %s", sf_last_error());
        int32_t eot = sf_tokenizer_lookup(t, "<|endoftext|>");
        CHECK(eot == sf_tokenizer_eos(t) && eot >= 0, "eot %d", eot);
        int32_t *a, *b, *ab;
        size_t na, nb, nab;
        const char *text = "The end.<|endoftext|>Next story <|endoftext|><|endoftext|>";
        REQUIRE(!sf_tokenizer_encode(t, "The end.", 8, 0, &a, &na) && !sf_tokenizer_encode(t, "Next story ", 11, 0, &b, &nb) &&
                    !sf_tokenizer_encode(t, text, strlen(text), 0, &ab, &nab),
                "encode: %s", sf_last_error());
        int ok = nab == na + nb + 3 && !memcmp(ab, a, na * sizeof *a) && ab[na] == eot &&
                 !memcmp(ab + na + 1, b, nb * sizeof *b) && ab[na + 1 + nb] == eot && ab[na + 2 + nb] == eot;
        CHECK(ok, "special token splits the text (%s)", paths[k]);
        CHECK(roundtrip(t, text, strlen(text)) > 0, "round trip with special tokens");
        /* a partial special token is ordinary text */
        int32_t *c;
        size_t nc;
        REQUIRE(!sf_tokenizer_encode(t, "<|endoftext|", 12, 0, &c, &nc), "%s", sf_last_error());
        int has = 0;
        for (size_t i = 0; i < nc; i++) has |= c[i] == eot;
        CHECK(!has && nc > 1, "partial special token");
        free(a);
        free(b);
        free(ab);
        free(c);
        sf_tokenizer_free(t);
    }
    if (!found) SKIP("no GPT-2 tokenizer under %s/models", shared_dir());
}

/* ------------------------------------ a hand-written tokenizer.json ------------------------------------ */
/* vocab: a b Ġ ab Ġab </s>; merges "a b" (string form, rank 0) and ["Ġ", "ab"] (pair form, rank 1);
 * ByteLevel add_prefix_space: every non-empty text gets one leading space, decode drops it. */
static const char tiny_json[] =
    "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":5,\"content\":\"</s>\",\"special\":true}],"
    "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":true},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"\\u0120\":2,\"ab\":3,\"\\u0120ab\":4,\"</s>\":5},"
    "\"merges\":[\"a b\",[\"\\u0120\",\"ab\"]]}}";

TEST(synthetic_tokenizer_json) {
    const char *p = write_tmp("tokenizer.json", tiny_json, sizeof tiny_json - 1);
    sf_tokenizer *t = sf_tokenizer_load(p);
    REQUIRE(t, "load: %s", sf_last_error());
    CHECK(sf_tokenizer_vocab_size(t) == 6, "vocab");
    CHECK(sf_tokenizer_bos(t) == -1 && sf_tokenizer_eos(t) == 5, "bos %d eos %d", sf_tokenizer_bos(t), sf_tokenizer_eos(t));
    const int32_t w1[] = {4};             /* " ab" */
    const int32_t w2[] = {4, 4};          /* " ab ab" */
    const int32_t w3[] = {4, 3};          /* " abab": Ġ a b a b -> Ġ ab ab -> Ġab ab */
    const int32_t w4[] = {2, 4};          /* "  ab": the whitespace run keeps its last space for "ab" */
    const int32_t w5[] = {4, 5, 3};       /* " ab</s>ab" */
    const int32_t w6[] = {2, 0, 3, 1};    /* " aabb": Ġ a a b b -> Ġ a ab b, nothing else merges */
    CHECK(encodes_to(t, "ab", 0, w1, 1), "ab");
    CHECK(encodes_to(t, "ab", 1, w1, 1), "no BOS in this vocab, add_bos is a no-op");
    CHECK(encodes_to(t, "ab ab", 0, w2, 2), "ab ab");
    CHECK(encodes_to(t, "abab", 0, w3, 2), "abab");
    CHECK(encodes_to(t, " ab", 0, w4, 2), " ab");
    CHECK(encodes_to(t, "ab</s>ab", 0, w5, 3), "ab</s>ab");
    CHECK(encodes_to(t, "aabb", 0, w6, 4), "aabb");
    const char *texts[] = {"ab", " ab", "  ab ", "abab</s>", "</s>", " "};
    for (size_t i = 0; i < N_OF(texts); i++) CHECK(roundtrip(t, texts[i], strlen(texts[i])) > 0, "\"%s\"", texts[i]);
    /* a byte with no one-byte token cannot be encoded: error naming the byte */
    int32_t *ids = (int32_t *)1;
    size_t n = 7;
    CHECK(sf_tokenizer_encode(t, "abc", 3, 0, &ids, &n) == SF_ERR_FORMAT && ids == NULL && n == 0, "byte without token");
    CHECK(strstr(sf_last_error(), "0x63") != NULL, "message: %s", sf_last_error());
    /* the folder form finds tokenizer.json */
    sf_tokenizer *t2 = sf_tokenizer_load(tmp_dir());
    CHECK(t2 && sf_tokenizer_vocab_size(t2) == 6, "load folder: %s", sf_last_error());
    sf_tokenizer_free(t2);
    rm_tmp("tokenizer.json");
    sf_tokenizer_free(t);
}

/* ---------------------------------------------- errors ---------------------------------------------- */
static void expect_load_error(const char *path, sf_status code, const char *needle) {
    sf_clear_error();
    sf_tokenizer *t = sf_tokenizer_load(path);
    CHECK(t == NULL, "loading %s should fail", path);
    sf_tokenizer_free(t);
    CHECK(sf_last_status() == code, "status %d, want %d (%s)", (int)sf_last_status(), (int)code, sf_last_error());
    CHECK(strstr(sf_last_error(), needle) != NULL, "message \"%s\" lacks \"%s\"", sf_last_error(), needle);
}

TEST(error_missing_file) {
    expect_load_error("/nonexistent/tok512.bin", SF_ERR_IO, "/nonexistent/tok512.bin");
    expect_load_error("", SF_ERR_ARG, "empty path");
    CHECK(sf_tokenizer_load(NULL) == NULL, "NULL path");
    char empty[128];
    snprintf(empty, sizeof empty, "%s/empty", tmp_dir());
    mkdir(empty, 0700);
    expect_load_error(empty, SF_ERR_IO, "holds no tokenizer.json");
    rmdir(empty);
    /* encoder.json without vocab.bpe beside it */
    char sub[128];
    snprintf(sub, sizeof sub, "%s/oa", tmp_dir());
    mkdir(sub, 0700);
    const char *enc = write_tmp("oa/encoder.json", "{\"a\": 0}", 8);
    expect_load_error(enc, SF_ERR_IO, "vocab.bpe");
    rm_tmp("oa/encoder.json");
    rmdir(sub);
}

TEST(error_truncated_tok_bin) {
    /* synthetic: too short, a length beyond max_token_length, too few tokens */
    expect_load_error(write_tmp("short.bin", "\x07\x00", 2), SF_ERR_FORMAT, "too short");
    const char bad_len[] = "\x07\x00\x00\x00" "\x00\x00\x00\x00" "\xE8\x03\x00\x00" "abc";
    expect_load_error(write_tmp("badlen.bin", bad_len, sizeof bad_len - 1), SF_ERR_FORMAT, "length 1000");
    const char three[] = "\x05\x00\x00\x00" "\x00\x00\x00\x00\x01\x00\x00\x00" "a"
                         "\x00\x00\x00\x00\x01\x00\x00\x00" "b" "\x00\x00\x00\x00\x01\x00\x00\x00" "c";
    expect_load_error(write_tmp("three.bin", three, sizeof three - 1), SF_ERR_FORMAT, "has 3 tokens");
    rm_tmp("short.bin");
    rm_tmp("badlen.bin");
    rm_tmp("three.bin");
    const char *p = shared("models/stories260K/tok512.bin");
    if (!p) SKIP("%s/models/stories260K/tok512.bin not found", shared_dir());
    size_t len;
    char *d = sf_test_read_file(p, &len);
    REQUIRE(d && len > 100, "read %s", p);
    /* cut inside the record of a token */
    expect_load_error(write_tmp("cut.bin", d, len - 3), SF_ERR_FORMAT, "truncated in token");
    expect_load_error(write_tmp("cut.bin", d, len - 8 - 3 - 2), SF_ERR_FORMAT, "truncated");
    /* cut exactly at a token boundary: only the name tok512.bin tells */
    size_t pos = 4, n = 0;
    while (n < 300) {
        int32_t l;
        memcpy(&l, d + pos + 4, 4);
        pos += 8 + (size_t)l;
        n++;
    }
    expect_load_error(write_tmp("tok512.bin", d, pos), SF_ERR_FORMAT, "name says 512");
    rm_tmp("tok512.bin");
    rm_tmp("cut.bin");
    free(d);
    /* a model checkpoint is not a tokenizer */
    const char *m = shared("models/stories260K/stories260K.bin");
    if (m) {
        sf_tokenizer *t = sf_tokenizer_load(m);
        CHECK(t == NULL && strstr(sf_last_error(), "stories260K.bin"), "checkpoint as tokenizer: %s", sf_last_error());
        sf_tokenizer_free(t);
    }
}

TEST(error_byte_token_order) {
    /* 259 tokens where token 3 is "<0x41>" instead of "<0x00>" */
    size_t cap = 259 * 16 + 4, len = 0;
    char *d = malloc(cap);
    int32_t max_len = 6;
    memcpy(d, &max_len, 4);
    len = 4;
    for (int id = 0; id < 259; id++) {
        char piece[8];
        int l = id < 3 ? snprintf(piece, sizeof piece, "c%d", id) : snprintf(piece, sizeof piece, "<0x%02X>", id == 3 ? 0x41 : id - 3);
        float s = 0;
        int32_t l32 = l;
        memcpy(d + len, &s, 4);
        memcpy(d + len + 4, &l32, 4);
        memcpy(d + len + 8, piece, (size_t)l);
        len += 8 + (size_t)l;
    }
    expect_load_error(write_tmp("order.bin", d, len), SF_ERR_FORMAT, "expected the byte token <0x00>");
    d[4 + 3 * 10 + 8 + 3] = '0'; /* tokens 0..2 are 2-byte pieces: token 3's piece starts at 4 + 3*10 + 8 */
    d[4 + 3 * 10 + 8 + 4] = '0';
    sf_tokenizer *t = sf_tokenizer_load(write_tmp("order.bin", d, len));
    CHECK(t != NULL, "fixed file loads: %s", sf_last_error());
    if (t) CHECK(roundtrip(t, "any \xFF bytes", 11) > 0, "byte-only vocab round trip");
    sf_tokenizer_free(t);
    rm_tmp("order.bin");
    free(d);
}

TEST(error_bad_json) {
    expect_load_error(write_tmp("bad.json", "{\"model\": {\"type\": \"BPE\", ", 26), SF_ERR_FORMAT, "not valid JSON");
    expect_load_error(write_tmp("bad.json", "[1, 2]", 6), SF_ERR_FORMAT, "no \"model\" object");
    expect_load_error(write_tmp("bad.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", 45), SF_ERR_FORMAT,
                      "\"merges\" array");
    const char bad_merge[] =
        "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}";
    expect_load_error(write_tmp("bad.json", bad_merge, sizeof bad_merge - 1), SF_ERR_FORMAT, "\"ab\" is not in the vocab");
    const char bad_part[] = "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,"
                            "\"ab\":1},\"merges\":[[\"a\",\"c\"]]}}";
    expect_load_error(write_tmp("bad.json", bad_part, sizeof bad_part - 1), SF_ERR_FORMAT, "\"c\" is not in the vocab");
    const char bad_str[] = "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},"
                           "\"merges\":[\"a\"]}}";
    expect_load_error(write_tmp("bad.json", bad_str, sizeof bad_str - 1), SF_ERR_FORMAT, "merge 0 \"a\" is not two tokens");
    const char bad_id[] = "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-3},\"merges\":[]}}";
    expect_load_error(write_tmp("bad.json", bad_id, sizeof bad_id - 1), SF_ERR_FORMAT, "vocab entry \"a\"");
    const char norm[] = "{\"normalizer\":{\"type\":\"NFKC\"},\"pre_tokenizer\":{\"type\":\"ByteLevel\"},"
                        "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}";
    expect_load_error(write_tmp("bad.json", norm, sizeof norm - 1), SF_ERR_FORMAT, "normalizer NFKC");
    const char pre[] = "{\"pre_tokenizer\":{\"type\":\"Metaspace\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}";
    expect_load_error(write_tmp("bad.json", pre, sizeof pre - 1), SF_ERR_FORMAT, "pre_tokenizer Metaspace");
    rm_tmp("bad.json");
}

TEST(error_non_bpe_model) {
    const char wp[] = "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"[UNK]\": 0}}}";
    expect_load_error(write_tmp("wp.json", wp, sizeof wp - 1), SF_ERR_FORMAT, "model type \"WordPiece\"");
    rm_tmp("wp.json");
}

TEST(error_decode_out_of_range) {
    const char *p = write_tmp("tokenizer.json", tiny_json, sizeof tiny_json - 1);
    sf_tokenizer *t = sf_tokenizer_load(p);
    REQUIRE(t, "load: %s", sf_last_error());
    const int32_t bad[][3] = {{0, 6, 1}, {0, -1, 1}, {INT32_MAX, 0, 0}};
    for (int i = 0; i < 3; i++) {
        char *out = (char *)1;
        size_t len = 5;
        CHECK(sf_tokenizer_decode(t, bad[i], 3, &out, &len) == SF_ERR_ARG && out == NULL && len == 0, "case %d", i);
        CHECK(strstr(sf_last_error(), "out of range 0..5") != NULL, "message: %s", sf_last_error());
    }
    CHECK(sf_tokenizer_decode(t, NULL, 2, (char *[]){NULL}, NULL) == SF_ERR_ARG, "NULL ids with n > 0");
    CHECK(sf_tokenizer_encode(t, NULL, 4, 0, (int32_t *[]){NULL}, (size_t[]){0}) == SF_ERR_ARG, "NULL text with len > 0");
    CHECK(sf_tokenizer_encode(NULL, "a", 1, 0, (int32_t *[]){NULL}, (size_t[]){0}) == SF_ERR_ARG, "NULL tokenizer");
    sf_tokenizer_free(t);
    sf_tokenizer_free(NULL);
    rm_tmp("tokenizer.json");
    /* a hole in the id space (no token defines id 1) is an error too */
    const char holes[] =
        "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":2},\"merges\":[]}}";
    t = sf_tokenizer_load(write_tmp("holes.json", holes, sizeof holes - 1));
    REQUIRE(t, "load: %s", sf_last_error());
    char *out;
    size_t len;
    CHECK(sf_tokenizer_decode(t, (const int32_t[]){0, 1}, 2, &out, &len) == SF_ERR_ARG, "hole id");
    CHECK(strstr(sf_last_error(), "id 1 at position 1 is not a token") != NULL, "message: %s", sf_last_error());
    sf_tokenizer_free(t);
    rm_tmp("holes.json");
}

TEST_MAIN()
