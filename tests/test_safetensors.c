/* test_safetensors.c — the safetensors reader and writer (core/safetensors.c).
 *
 * Checks: bit-exact round trips of f32/bf16/f16/i64/i32/u8/f64 tensors including a 0-dim scalar and an
 * empty (0, 4) tensor, names and metadata needing JSON escapes, the on-disk layout (8-byte aligned header,
 * metadata first, tensors in the given order); views that outlive the file handle; misaligned tensors;
 * dtypes the engine cannot hold (open fine, sf_st_load names the dtype, sf_st_load_f32 converts with
 * known values); the real GPT-2 fixtures in $SIFT_SHARED (names, shapes, metadata, values cross-checked
 * with Python's struct module); 38 corrupt files built in memory, each rejected with a message naming the
 * file and the problem; and the writer's failure paths (missing directory, a temp path that cannot be
 * created, a file-size limit hit mid-write, a failing callback, duplicate names) leaving an existing
 * target untouched and no temp file behind.
 * It does not test model loading.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/safetensors.h"
#include "test.h"

/* ---------------------------------------------- helpers ---------------------------------------------- */
static char *tmp_path(char *buf, size_t n, const char *tag) {
    snprintf(buf, n, "/tmp/sift_st_test_%ld_%s.safetensors", (long)getpid(), tag);
    return buf;
}

/* A safetensors file: u64 LE header length (hlen, or strlen(header) when hlen < 0), the header, ndata
 * zero bytes. */
static int write_st(const char *path, const char *header, long long hlen, size_t ndata) {
    size_t hl = strlen(header), n = 8 + hl + ndata;
    unsigned char *b = calloc(1, n);
    uint64_t L = hlen < 0 ? (uint64_t)hl : (uint64_t)hlen;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(L >> (8 * i));
    memcpy(b + 8, header, hl);
    int r = sf_test_write_file(path, b, n);
    free(b);
    return r;
}

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

static const char *temp_of(char *buf, size_t n, const char *path) {
    snprintf(buf, n, "%s.tmp.%ld", path, (long)getpid());
    return buf;
}

/* ---------------------------------------------- round trip ---------------------------------------------- */
TEST(round_trip_all_dtypes) {
    char path[256], tmpb[300];
    tmp_path(path, sizeof path, "roundtrip");
    enum { N = 9 };
    int64_t s23[2] = {2, 3}, s4[1] = {4}, s22[2] = {2, 2}, s3[1] = {3}, s2[1] = {2}, s04[2] = {0, 4};
    sf_tensor *t[N] = {
        sf_tensor_new(SF_F32, 2, s23), sf_tensor_new(SF_BF16, 1, s4), sf_tensor_new(SF_F16, 2, s22),
        sf_tensor_new(SF_I64, 1, s3),  sf_tensor_new(SF_I32, 1, s2),  sf_tensor_new(SF_U8, 1, s3),
        sf_tensor_new(SF_F64, 1, s2),  sf_tensor_new(SF_F32, 0, NULL), sf_tensor_new(SF_F32, 2, s04),
    };
    const char *names[N] = {"w.f32", "w.bf16", "w.f16", "ids.i64", "ids.i32", "mask.u8", "x.f64", "scalar",
                            "weird \"name\" \\ \xc3\xbc\ttab"};
    for (int i = 0; i < N; i++) REQUIRE(t[i], "alloc %d: %s", i, sf_last_error());
    for (int i = 0; i < 6; i++) sf_f32(t[0])[i] = 0.5f * (float)i - 1.1f;
    float bfv[4] = {1.0f, -2.5f, 3.14159f, 1e-20f};
    for (int i = 0; i < 4; i++) ((uint16_t *)sf_tensor_data(t[1]))[i] = sf_f32_to_bf16(bfv[i]);
    float hv[4] = {0.5f, -65504.0f, 1e-7f, 2.0f};
    for (int i = 0; i < 4; i++) ((uint16_t *)sf_tensor_data(t[2]))[i] = sf_f32_to_f16(hv[i]);
    int64_t iv[3] = {(int64_t)1 << 40, -5, 7};
    memcpy(sf_tensor_data(t[3]), iv, sizeof iv);
    int32_t i32v[2] = {-3, 123456};
    memcpy(sf_tensor_data(t[4]), i32v, sizeof i32v);
    uint8_t u8v[3] = {0, 1, 255};
    memcpy(sf_tensor_data(t[5]), u8v, sizeof u8v);
    double dv[2] = {1.0 / 3.0, -1e300};
    memcpy(sf_tensor_data(t[6]), dv, sizeof dv);
    sf_f32(t[7])[0] = 3.25f;
    const char *mk[2] = {"format", "note"}, *mv[2] = {"pt", "line\nbreak \"quoted\" \\"};

    sf_status st = sf_st_save(path, N, names, t, 2, mk, mv);
    REQUIRE(st == SF_OK, "save: %s", sf_last_error());
    CHECK(!file_exists(temp_of(tmpb, sizeof tmpb, path)), "temp file %s left behind", tmpb);

    /* layout on disk */
    size_t fsz;
    unsigned char *raw = (unsigned char *)sf_test_read_file(path, &fsz);
    REQUIRE(raw, "cannot read back %s", path);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)raw[i] << (8 * i);
    CHECK(hlen % 8 == 0, "header length %llu is not a multiple of 8", (unsigned long long)hlen);
    CHECK(memcmp(raw + 8, "{\"__metadata__\":", 16) == 0, "metadata is not first: %.40s", (const char *)raw + 8);
    size_t total = 0;
    for (int i = 0; i < N; i++) total += sf_tensor_nbytes(t[i]);
    CHECK(fsz == 8 + hlen + total, "file size %zu, expected %zu", fsz, (size_t)(8 + hlen + total));
    CHECK(raw[8 + hlen - 1] == ' ' || raw[8 + hlen - 1] == '}', "header ends with 0x%02x", raw[8 + hlen - 1]);
    free(raw);

    sf_st_file *f = sf_st_open(path);
    REQUIRE(f, "open: %s", sf_last_error());
    CHECK(sf_st_count(f) == N, "count %d", sf_st_count(f));
    const char *want_dt[N] = {"F32", "BF16", "F16", "I64", "I32", "U8", "F64", "F32", "F32"};
    for (int i = 0; i < N && i < sf_st_count(f); i++) {
        const sf_st_entry *e = sf_st_entry_at(f, i);
        CHECK(strcmp(e->name, names[i]) == 0, "entry %d is '%s', expected '%s'", i, e->name, names[i]);
        CHECK(strcmp(e->dtype_name, want_dt[i]) == 0, "entry %d dtype %s", i, e->dtype_name);
        CHECK(e->dtype == t[i]->dtype, "entry %d engine dtype %d", i, (int)e->dtype);
        CHECK(e->ndim == t[i]->ndim, "entry %d ndim %d", i, e->ndim);
        for (int d = 0; d < e->ndim; d++) CHECK(e->shape[d] == t[i]->shape[d], "entry %d dim %d", i, d);
        CHECK(sf_st_find(f, names[i]) == e, "find '%s'", names[i]);

        sf_tensor *c = sf_st_load(f, names[i]);
        REQUIRE(c, "load %s: %s", names[i], sf_last_error());
        CHECK(c->dtype == t[i]->dtype && sf_tensor_same_shape(c, t[i]), "load %s: dtype/shape", names[i]);
        CHECK(memcmp(sf_tensor_data(c), sf_tensor_data(t[i]), sf_tensor_nbytes(t[i])) == 0, "load %s: bytes differ",
              names[i]);
        sf_tensor *v = sf_st_view(f, names[i]);
        REQUIRE(v, "view %s: %s", names[i], sf_last_error());
        CHECK(memcmp(sf_tensor_data(v), sf_tensor_data(t[i]), sf_tensor_nbytes(t[i])) == 0, "view %s: bytes differ",
              names[i]);
        sf_tensor *g = sf_st_load_f32(f, names[i]);
        REQUIRE(g, "load_f32 %s: %s", names[i], sf_last_error());
        for (int64_t k = 0; k < sf_tensor_numel(g); k++)
            CHECK(sf_f32(g)[k] == (float)sf_tensor_get_flat(t[i], k), "load_f32 %s[%lld] = %g", names[i],
                  (long long)k, sf_f32(g)[k]);
        sf_tensor_release(c);
        sf_tensor_release(v);
        sf_tensor_release(g);
    }
    CHECK(sf_st_find(f, "nope") == NULL, "found a missing name");
    CHECK(sf_st_load(f, "nope") == NULL && strstr(sf_last_error(), "nope"), "missing name message: %s",
          sf_last_error());
    CHECK(sf_st_metadata_count(f) == 2, "metadata count %d", sf_st_metadata_count(f));
    CHECK(sf_st_metadata_get(f, "format") && strcmp(sf_st_metadata_get(f, "format"), "pt") == 0, "format");
    CHECK(sf_st_metadata_get(f, "note") && strcmp(sf_st_metadata_get(f, "note"), mv[1]) == 0, "note: %s",
          sf_st_metadata_get(f, "note") ? sf_st_metadata_get(f, "note") : "(null)");
    CHECK(strcmp(sf_st_metadata_key(f, 0), "format") == 0 && strcmp(sf_st_metadata_value(f, 1), mv[1]) == 0,
          "metadata order");
    CHECK(sf_st_metadata_get(f, "absent") == NULL, "absent key");
    CHECK(strcmp(sf_st_path(f), path) == 0, "path");
    /* known values through f32 conversion */
    sf_tensor *b = sf_st_load_f32(f, "w.bf16");
    CHECK_CLOSE(sf_f32(b)[2], 3.140625, 0); /* 3.14159 rounded to bf16 */
    sf_tensor_release(b);
    sf_tensor *sc = sf_st_view(f, "scalar");
    CHECK(sc && sc->ndim == 0 && sf_tensor_numel(sc) == 1 && sf_f32(sc)[0] == 3.25f, "0-dim scalar");
    sf_tensor_release(sc);
    sf_tensor *em = sf_st_load(f, names[8]);
    CHECK(em && em->ndim == 2 && em->shape[0] == 0 && em->shape[1] == 4, "empty tensor shape");
    sf_tensor_release(em);
    sf_st_close(f);
    for (int i = 0; i < N; i++) sf_tensor_release(t[i]);
    unlink(path);
}

TEST(empty_file_list_and_no_metadata) {
    char path[256];
    tmp_path(path, sizeof path, "nothing");
    REQUIRE(sf_st_save(path, 0, NULL, NULL, 0, NULL, NULL) == SF_OK, "save: %s", sf_last_error());
    size_t n;
    unsigned char *raw = (unsigned char *)sf_test_read_file(path, &n);
    REQUIRE(raw, "read");
    CHECK(n == 16 && memcmp(raw + 8, "{}      ", 8) == 0, "file of %zu bytes: %.8s", n, (const char *)raw + 8);
    free(raw);
    sf_st_file *f = sf_st_open(path);
    REQUIRE(f, "open: %s", sf_last_error());
    CHECK(sf_st_count(f) == 0 && sf_st_metadata_count(f) == 0, "counts %d %d", sf_st_count(f),
          sf_st_metadata_count(f));
    CHECK(sf_st_find(f, "x") == NULL && sf_st_entry_at(f, 0) == NULL, "lookups on an empty file");
    sf_st_close(f);
    sf_st_close(NULL);
    unlink(path);
}

TEST(views_outlive_file_and_misaligned_tensor) {
    char path[256];
    tmp_path(path, sizeof path, "views");
    int64_t s3[1] = {3}, s2[1] = {2};
    sf_tensor *a = sf_tensor_new(SF_U8, 1, s3), *w = sf_tensor_new(SF_F32, 1, s2);
    memcpy(sf_tensor_data(a), "\x01\x02\x03", 3);
    sf_f32(w)[0] = 1.5f;
    sf_f32(w)[1] = -7.25f;
    const char *names[2] = {"bytes", "w"};
    sf_tensor *ts[2] = {a, w};
    REQUIRE(sf_st_save(path, 2, names, ts, 0, NULL, NULL) == SF_OK, "save: %s", sf_last_error());
    sf_st_file *f = sf_st_open(path);
    REQUIRE(f, "open: %s", sf_last_error());
    CHECK(sf_st_find(f, "w")->begin == 3, "w begins at %llu", (unsigned long long)sf_st_find(f, "w")->begin);
    sf_tensor *vb = sf_st_view(f, "bytes"), *vw = sf_st_view(f, "w"); /* w is at a misaligned offset: a copy */
    REQUIRE(vb && vw, "views: %s", sf_last_error());
    CHECK(vb->storage->release != NULL, "the u8 view does not share the mapping");
    sf_st_close(f); /* views stay valid */
    CHECK(memcmp(sf_tensor_data(vb), "\x01\x02\x03", 3) == 0, "u8 view after close");
    CHECK(sf_f32(vw)[0] == 1.5f && sf_f32(vw)[1] == -7.25f, "f32 view after close: %g %g", sf_f32(vw)[0],
          sf_f32(vw)[1]);
    sf_tensor_release(vb); /* the last reference: unmaps */
    sf_tensor_release(vw);
    sf_tensor_release(a);
    sf_tensor_release(w);
    unlink(path);
}

TEST(dtypes_the_engine_cannot_hold) {
    char path[256];
    tmp_path(path, sizeof path, "f8");
    const char *hdr = "{\"e4\":{\"dtype\":\"F8_E4M3\",\"shape\":[6],\"data_offsets\":[0,6]},"
                      "\"i8\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[6,8]},"
                      "\"b\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[8,10]},"
                      "\"u16\":{\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[10,12]},"
                      "\"e5\":{\"dtype\":\"F8_E5M2\",\"shape\":[1],\"data_offsets\":[12,13]}}";
    size_t hl = strlen(hdr), n = 8 + hl + 13;
    unsigned char *buf = calloc(1, n);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    const unsigned char data[13] = {0x38, 0xB8, 0x40, 0x7E, 0x01, 0x7F, 0xFF, 0x05, 0, 1, 0xFF, 0xFF, 0x3C};
    memcpy(buf + 8 + hl, data, 13);
    REQUIRE(sf_test_write_file(path, buf, n) == 0, "write");
    free(buf);
    sf_st_file *f = sf_st_open(path);
    REQUIRE(f, "open: %s", sf_last_error());
    const sf_st_entry *e4 = sf_st_find(f, "e4");
    REQUIRE(e4, "e4 missing");
    CHECK(e4->dtype == SF_DTYPE_COUNT && strcmp(e4->dtype_name, "F8_E4M3") == 0, "e4 dtype %d %s", (int)e4->dtype,
          e4->dtype_name);
    CHECK(sf_st_find(f, "b")->dtype == SF_U8, "BOOL maps to u8");
    CHECK(sf_st_load(f, "e4") == NULL && strstr(sf_last_error(), "F8_E4M3") && strstr(sf_last_error(), path),
          "load F8: %s", sf_last_error());
    CHECK(sf_st_view(f, "i8") == NULL && strstr(sf_last_error(), "I8"), "view I8: %s", sf_last_error());
    sf_tensor *g = sf_st_load_f32(f, "e4");
    REQUIRE(g, "load_f32 e4: %s", sf_last_error());
    /* E4M3FN: 0x38 = 1, 0xB8 = -1, 0x40 = 2, 0x7E = 448 (max), 0x01 = 2^-9 (smallest subnormal), 0x7F = NaN */
    CHECK(sf_f32(g)[0] == 1.0f && sf_f32(g)[1] == -1.0f && sf_f32(g)[2] == 2.0f && sf_f32(g)[3] == 448.0f,
          "e4m3 values %g %g %g %g", sf_f32(g)[0], sf_f32(g)[1], sf_f32(g)[2], sf_f32(g)[3]);
    CHECK(sf_f32(g)[4] == ldexpf(1.0f, -9) && isnan(sf_f32(g)[5]), "e4m3 subnormal %g, NaN %g", sf_f32(g)[4],
          sf_f32(g)[5]);
    sf_tensor_release(g);
    g = sf_st_load_f32(f, "i8");
    CHECK(g && sf_f32(g)[0] == -1.0f && sf_f32(g)[1] == 5.0f, "i8 values");
    sf_tensor_release(g);
    g = sf_st_load_f32(f, "u16");
    CHECK(g && sf_f32(g)[0] == 65535.0f, "u16 value");
    sf_tensor_release(g);
    g = sf_st_load_f32(f, "e5");
    CHECK(g && sf_f32(g)[0] == 1.0f, "e5m2 0x3C = 1");
    sf_tensor_release(g);
    sf_tensor *bl = sf_st_load(f, "b");
    CHECK(bl && bl->dtype == SF_U8 && ((uint8_t *)sf_tensor_data(bl))[1] == 1, "BOOL load");
    sf_tensor_release(bl);
    sf_st_close(f);
    unlink(path);
}

/* ---------------------------------------------- fixtures ---------------------------------------------- */
TEST(gpt2_fixture_model) {
    char path[1024];
    snprintf(path, sizeof path, "%s/fixtures/gpt2/model.safetensors", shared_dir());
    if (!file_exists(path)) SKIP("%s missing", path);
    sf_st_file *f = sf_st_open(path);
    REQUIRE(f, "open: %s", sf_last_error());
    CHECK(sf_st_count(f) == 28, "count %d", sf_st_count(f));
    CHECK(sf_st_metadata_get(f, "format") && strcmp(sf_st_metadata_get(f, "format"), "pt") == 0, "format");
    const sf_st_entry *e = sf_st_find(f, "transformer.wte.weight");
    REQUIRE(e, "wte missing");
    CHECK(e->ndim == 2 && e->shape[0] == 96 && e->shape[1] == 32 && e->dtype == SF_F32, "wte shape");
    CHECK(e->begin == 105984 && e->end == 118272, "wte offsets");
    e = sf_st_find(f, "transformer.h.0.attn.c_attn.weight");
    CHECK(e && e->ndim == 2 && e->shape[0] == 32 && e->shape[1] == 96, "c_attn shape");
    for (int i = 1; i < sf_st_count(f); i++)
        CHECK(sf_st_entry_at(f, i)->begin == sf_st_entry_at(f, i - 1)->end, "offset order at %d", i);
    sf_tensor *w = sf_st_view(f, "transformer.wte.weight");
    REQUIRE(w, "view: %s", sf_last_error());
    /* values read with Python's struct module */
    CHECK_CLOSE(sf_f32(w)[0], 0.00768532557412982, 0);
    CHECK_CLOSE(sf_f32(w)[2], -0.04251109063625336, 0);
    sf_tensor *ln = sf_st_load_f32(f, "transformer.h.0.ln_1.weight");
    CHECK(ln && sf_f32(ln)[0] == 1.0f && sf_f32(ln)[31] == 1.0f, "ln_1.weight ones");
    sf_tensor_release(ln);
    sf_st_close(f);
    CHECK_CLOSE(sf_f32(w)[1], -0.001595688285306096, 0); /* still mapped after close */
    sf_tensor_release(w);
}

TEST(gpt2_fixture_reference) {
    char path[1024];
    snprintf(path, sizeof path, "%s/fixtures/gpt2/reference.safetensors", shared_dir());
    if (!file_exists(path)) SKIP("%s missing", path);
    sf_st_file *f = sf_st_open(path);
    REQUIRE(f, "open: %s", sf_last_error());
    CHECK(sf_st_count(f) == 99, "count %d", sf_st_count(f));
    CHECK(sf_st_metadata_get(f, "sift_rate") && strcmp(sf_st_metadata_get(f, "sift_rate"), "0.05") == 0, "sift_rate");
    CHECK(sf_st_metadata_get(f, "lr") && strcmp(sf_st_metadata_get(f, "lr"), "0.01") == 0, "lr");
    sf_tensor *ids = sf_st_load(f, "batch0.input_ids");
    REQUIRE(ids, "ids: %s", sf_last_error());
    CHECK(ids->dtype == SF_I64 && ids->ndim == 2 && ids->shape[0] == 2 && ids->shape[1] == 12, "ids shape");
    int64_t *p = sf_tensor_data(ids);
    CHECK(p[0] == 13 && p[1] == 59 && p[2] == 42, "ids %lld %lld %lld", (long long)p[0], (long long)p[1],
          (long long)p[2]);
    sf_tensor_release(ids);
    sf_tensor *loss = sf_st_load_f32(f, "loss");
    REQUIRE(loss, "loss: %s", sf_last_error());
    CHECK_CLOSE(sf_f32(loss)[0], 4.5577712059021, 1e-6);
    sf_tensor_release(loss);
    sf_tensor *lg = sf_st_view(f, "logits");
    REQUIRE(lg, "logits: %s", sf_last_error());
    CHECK(lg->ndim == 3 && lg->shape[2] == 96, "logits shape");
    CHECK_CLOSE(sf_f32(lg)[0], 0.10697323828935623, 0);
    sf_tensor_release(lg);
    sf_st_close(f);
}

/* ---------------------------------------------- corruptions ---------------------------------------------- */
#define T1(name, dt, shape, offs) "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

typedef struct {
    const char *label;
    const char *header;
    long long hlen;  /* -1: strlen(header) */
    size_t ndata;    /* zero bytes after the header */
    long truncate;   /* >= 0: keep only this many bytes of the file */
    const char *word; /* must appear in the message */
} corruption;

static const corruption corruptions[] = {
    {"hlen_past_eof", "{}", 1000, 0, -1, "past the end of the file"},
    {"hlen_zero", "{}", 0, 0, -1, "header length is 0"},
    {"hlen_huge", "{}", 200000000, 0, -1, "100 MB"},
    {"not_brace", "[{\"a\":1}]", -1, 0, -1, "does not start with '{'"},
    {"bad_json", "{\"a\": }", -1, 0, -1, "invalid JSON"},
    {"truncated_json", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]", -1, 0, -1, "truncated"},
    {"metadata_not_object", "{\"__metadata__\":\"x\"}", -1, 0, -1, "not an object"},
    {"overlap", "{" T1("a", "F32", "[2]", "[0,8]") "," T1("b", "F32", "[2]", "[4,12]") "}", -1, 12, -1, "overlap"},
    {"hole", "{" T1("a", "F32", "[2]", "[0,8]") "," T1("b", "F32", "[2]", "[12,20]") "}", -1, 20, -1, "hole"},
    {"not_from_zero", "{" T1("a", "F32", "[1]", "[4,8]") "}", -1, 8, -1, "must start at 0"},
    {"end_before_begin", "{" T1("a", "F32", "[1]", "[8,4]") "}", -1, 8, -1, "end is before begin"},
    {"offsets_past_eof", "{" T1("a", "F32", "[4]", "[0,16]") "}", -1, 8, -1, "past the end of the file"},
    {"trailing_garbage", "{" T1("a", "F32", "[1]", "[0,4]") "}", -1, 8, -1, "trailing data"},
    {"shape_overflow", "{" T1("a", "F32", "[1099511627776,1099511627776]", "[0,4]") "}", -1, 4, -1, "overflows"},
    {"negative_dim", "{" T1("a", "F32", "[-2,3]", "[0,4]") "}", -1, 4, -1, "negative dimension"},
    {"fraction_dim", "{" T1("a", "F32", "[2.5]", "[0,4]") "}", -1, 4, -1, "not an integer"},
    {"five_dims", "{" T1("a", "F32", "[1,1,1,1,1]", "[0,4]") "}", -1, 4, -1, "5 dims"},
    {"unknown_dtype", "{" T1("a", "F33", "[1]", "[0,4]") "}", -1, 4, -1, "unknown dtype \"F33\""},
    {"wrong_dtype_size", "{" T1("a", "F32", "[1]", "[0,6]") "}", -1, 6, -1, "x F32 needs 4 bytes"},
    {"missing_dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 4, -1, "missing \"dtype\""},
    {"missing_shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", -1, 4, -1, "missing \"shape\""},
    {"missing_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", -1, 4, -1, "missing \"data_offsets\""},
    {"three_offsets", "{" T1("a", "F32", "[1]", "[0,4,8]") "}", -1, 8, -1, "array of 2 integers"},
    {"duplicate_names", "{" T1("a", "F32", "[1]", "[0,4]") "," T1("a", "F32", "[1]", "[4,8]") "}", -1, 8, -1,
     "duplicate tensor name 'a'"},
    {"metadata_non_string", "{\"__metadata__\":{\"k\":1}}", -1, 0, -1, "value of key 'k' is not a string"},
    {"entry_not_object", "{\"a\":[1,2]}", -1, 0, -1, "not an object"},
    {"short_file", "{}", -1, 0, 5, "shorter than"},
    {"empty_file", "{}", -1, 0, 0, "empty file"},
    /* beyond the list in the brief */
    {"bytes_after_json", "{}  x   ", -1, 0, -1, "after the JSON header"},
    {"nul_after_json", "{}\0\0", 4, 0, -1, "after the JSON header"},
    {"dtype_not_string", "{\"a\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 4, -1, "not a string"},
    {"shape_not_array", "{" T1("a", "F32", "3", "[0,4]") "}", -1, 4, -1, "not an array"},
    {"dim_is_string", "{" T1("a", "F32", "[\"1\"]", "[0,4]") "}", -1, 4, -1, "not a number"},
    {"offset_fraction", "{" T1("a", "F32", "[1]", "[0,3.5]") "}", -1, 4, -1, "not an integer"},
    {"offset_huge", "{" T1("a", "F32", "[1]", "[0,1e300]") "}", -1, 4, -1, "too large"},
    {"duplicate_field", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 4,
     -1, "duplicate field"},
    {"two_metadata", "{\"__metadata__\":{},\"__metadata__\":{}}", -1, 0, -1, "duplicate"},
    {"duplicate_metadata_key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", -1, 0, -1, "twice"},
};

TEST(corrupt_files_rejected) {
    int n = (int)(sizeof corruptions / sizeof corruptions[0]);
    CHECK(n >= 25, "only %d corruptions", n);
    for (int i = 0; i < n; i++) {
        const corruption *c = &corruptions[i];
        char path[256];
        tmp_path(path, sizeof path, c->label);
        if (c->hlen == 4 && memcmp(c->header, "{}\0\0", 4) == 0) { /* a header with NUL bytes: write it raw */
            unsigned char b[12] = {4, 0, 0, 0, 0, 0, 0, 0, '{', '}', 0, 0};
            REQUIRE(sf_test_write_file(path, b, sizeof b) == 0, "write %s", path);
        } else {
            REQUIRE(write_st(path, c->header, c->hlen, c->ndata) == 0, "write %s", path);
        }
        if (c->truncate >= 0) REQUIRE(truncate(path, c->truncate) == 0, "truncate %s", path);
        sf_clear_error();
        sf_st_file *f = sf_st_open(path);
        CHECK(f == NULL, "%s: opened a corrupt file", c->label);
        const char *msg = sf_last_error();
        CHECK(strstr(msg, path) != NULL, "%s: message does not name the file: %s", c->label, msg);
        CHECK(strstr(msg, c->word) != NULL, "%s: message lacks \"%s\": %s", c->label, c->word, msg);
        CHECK(sf_last_status() == SF_ERR_FORMAT, "%s: status %d", c->label, (int)sf_last_status());
        if (getenv("SIFT_VERBOSE")) printf("    %-22s %s\n", c->label, msg);
        sf_st_close(f);
        unlink(path);
    }
}

TEST(tensor_named_in_messages) {
    char path[256];
    tmp_path(path, sizeof path, "named");
    REQUIRE(write_st(path, "{" T1("h.0.attn.c_attn.weight", "F32", "[5,6]", "[0,100]") "}", -1, 100) == 0, "write");
    REQUIRE(sf_st_open(path) == NULL, "opened");
    char want[512];
    snprintf(want, sizeof want, "%s: tensor 'h.0.attn.c_attn.weight': data_offsets [0, 100) but shape (5, 6) x F32 "
                                "needs 120 bytes", path);
    CHECK(strcmp(sf_last_error(), want) == 0, "message: %s", sf_last_error());
    unlink(path);
}

TEST(open_io_errors) {
    CHECK(sf_st_open("/tmp/sift_st_definitely_missing.safetensors") == NULL &&
              strstr(sf_last_error(), "/tmp/sift_st_definitely_missing.safetensors") &&
              strstr(sf_last_error(), strerror(ENOENT)) && sf_last_status() == SF_ERR_IO,
          "missing file: %s", sf_last_error());
    CHECK(sf_st_open("/tmp") == NULL && strstr(sf_last_error(), "not a regular file"), "directory: %s",
          sf_last_error());
    char fifo[256];
    tmp_path(fifo, sizeof fifo, "fifo");
    if (mkfifo(fifo, 0600) == 0) { /* must not block waiting for a writer */
        CHECK(sf_st_open(fifo) == NULL && strstr(sf_last_error(), "not a regular file"), "fifo: %s", sf_last_error());
        unlink(fifo);
    }
}

/* ---------------------------------------------- writer failures ---------------------------------------------- */
static sf_tensor *filled(int64_t n, float v) {
    sf_tensor *t = sf_tensor_new_f32(1, &n);
    for (int64_t i = 0; i < n; i++) sf_f32(t)[i] = v;
    return t;
}

/* The first f32 of tensor "w" in path, or NAN. */
static float first_w(const char *path) {
    sf_st_file *f = sf_st_open(path);
    if (!f) return NAN;
    sf_tensor *t = sf_st_load_f32(f, "w");
    float v = t && sf_tensor_numel(t) ? sf_f32(t)[0] : NAN;
    sf_tensor_release(t);
    sf_st_close(f);
    return v;
}

TEST(save_into_missing_directory) {
    char path[256], tmpb[300];
    snprintf(path, sizeof path, "/tmp/sift_st_no_such_dir_%ld/x.safetensors", (long)getpid());
    sf_tensor *w = filled(4, 1.0f);
    const char *nm[1] = {"w"};
    sf_status st = sf_st_save(path, 1, nm, &w, 0, NULL, NULL);
    CHECK(st == SF_ERR_IO, "status %d", (int)st);
    CHECK(strstr(sf_last_error(), path) && strstr(sf_last_error(), strerror(ENOENT)), "message: %s",
          sf_last_error());
    CHECK(!file_exists(path) && !file_exists(temp_of(tmpb, sizeof tmpb, path)), "something was written");
    st = sf_st_save("/proc/sift_st_test.safetensors", 1, nm, &w, 0, NULL, NULL);
    CHECK(st == SF_ERR_IO && strstr(sf_last_error(), "/proc/sift_st_test.safetensors"), "/proc: %s",
          sf_last_error());
    sf_tensor_release(w);
}

TEST(save_replaces_atomically) {
    char path[256], tmpb[300];
    tmp_path(path, sizeof path, "atomic");
    temp_of(tmpb, sizeof tmpb, path);
    const char *nm[1] = {"w"};
    sf_tensor *a = filled(16, 1.0f), *b = filled(1000, 2.0f);
    REQUIRE(sf_st_save(path, 1, nm, &a, 0, NULL, NULL) == SF_OK, "save a: %s", sf_last_error());
    CHECK(first_w(path) == 1.0f, "a not written");

    /* 1. the temp path cannot be created (a directory is in the way) */
    REQUIRE(mkdir(tmpb, 0700) == 0, "mkdir %s: %s", tmpb, strerror(errno));
    sf_status st = sf_st_save(path, 1, nm, &b, 0, NULL, NULL);
    CHECK(st == SF_ERR_IO && strstr(sf_last_error(), path) && strstr(sf_last_error(), strerror(EISDIR)),
          "blocked temp: %d %s", (int)st, sf_last_error());
    CHECK(first_w(path) == 1.0f, "old content lost after a failed save");
    rmdir(tmpb);

    /* 2. the disk "fills up" mid-write: a file-size limit makes write() fail with EFBIG */
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {200, old.rlim_max};
    fflush(stdout);
    fflush(stderr);
    REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
    st = sf_st_save(path, 1, nm, &b, 0, NULL, NULL);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    CHECK(st == SF_ERR_IO && strstr(sf_last_error(), path) && strstr(sf_last_error(), strerror(EFBIG)),
          "file size limit: %d %s", (int)st, sf_last_error());
    CHECK(first_w(path) == 1.0f, "old content lost after a failed write");
    CHECK(!file_exists(tmpb), "temp file left after a failed write");

    /* 3. success replaces the content and leaves no temp file */
    REQUIRE(sf_st_save(path, 1, nm, &b, 0, NULL, NULL) == SF_OK, "save b: %s", sf_last_error());
    CHECK(first_w(path) == 2.0f, "b not written");
    CHECK(!file_exists(tmpb), "temp file left after success");
    sf_tensor_release(a);
    sf_tensor_release(b);
    unlink(path);
}

static sf_status failing_writer(void *ctx, int (*emit)(void *fh, const void *buf, size_t n), void *fh) {
    (void)ctx;
    if (emit(fh, "0123456789", 10)) return SF_ERR_IO;
    return sf_fail(SF_ERR_STATE, "writer gave up on purpose");
}

static sf_status text_writer(void *ctx, int (*emit)(void *fh, const void *buf, size_t n), void *fh) {
    const char *s = ctx;
    return emit(fh, s, strlen(s)) ? SF_ERR_IO : SF_OK;
}

TEST(atomic_write_callback_failure) {
    char path[256], tmpb[300];
    tmp_path(path, sizeof path, "cbfail");
    temp_of(tmpb, sizeof tmpb, path);
    REQUIRE(sf_atomic_write(path, text_writer, "old content") == SF_OK, "write: %s", sf_last_error());
    sf_status st = sf_atomic_write(path, failing_writer, NULL);
    CHECK(st == SF_ERR_STATE && strstr(sf_last_error(), "on purpose"), "status %d: %s", (int)st, sf_last_error());
    size_t n;
    unsigned char *raw = (unsigned char *)sf_test_read_file(path, &n);
    CHECK(raw && n == 11 && memcmp(raw, "old content", 11) == 0, "old content changed");
    free(raw);
    CHECK(!file_exists(tmpb), "temp file left behind");
    CHECK(sf_atomic_write("", text_writer, "x") == SF_ERR_ARG, "empty path");
    unlink(path);
}

TEST(save_argument_errors_write_nothing) {
    char path[256], tmpb[300];
    tmp_path(path, sizeof path, "args");
    temp_of(tmpb, sizeof tmpb, path);
    sf_tensor *a = filled(2, 1.0f), *b = filled(3, 2.0f);
    sf_tensor *ts[2] = {a, b};
    const char *dup[2] = {"w", "w"}, *empty[2] = {"w", ""}, *meta[2] = {"__metadata__", "w"}, *ok[2] = {"w", "v"};
    sf_status st = sf_st_save(path, 2, dup, ts, 0, NULL, NULL);
    CHECK(st == SF_ERR_ARG && strstr(sf_last_error(), "duplicate tensor name 'w'") && strstr(sf_last_error(), path),
          "duplicate: %s", sf_last_error());
    CHECK(!file_exists(path) && !file_exists(tmpb), "duplicate names wrote something");
    CHECK(sf_st_save(path, 2, empty, ts, 0, NULL, NULL) == SF_ERR_ARG && strstr(sf_last_error(), "empty name"),
          "empty name: %s", sf_last_error());
    CHECK(sf_st_save(path, 2, meta, ts, 0, NULL, NULL) == SF_ERR_ARG && strstr(sf_last_error(), "__metadata__"),
          "reserved name: %s", sf_last_error());
    sf_tensor *nul[2] = {a, NULL};
    CHECK(sf_st_save(path, 2, ok, nul, 0, NULL, NULL) == SF_ERR_ARG && strstr(sf_last_error(), "'v' is NULL"),
          "NULL tensor: %s", sf_last_error());
    const char *mk[2] = {"k", "k"}, *mv[2] = {"1", "2"};
    CHECK(sf_st_save(path, 2, ok, ts, 2, mk, mv) == SF_ERR_ARG && strstr(sf_last_error(), "duplicate metadata key"),
          "duplicate metadata: %s", sf_last_error());
    CHECK(!file_exists(path) && !file_exists(tmpb), "argument errors wrote something");
    sf_tensor_release(a);
    sf_tensor_release(b);
}

TEST_MAIN()
