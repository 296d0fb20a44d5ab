/* tokenizer_llama2c.c — the llama2.c tokenizer (SentencePiece-style score-based BPE with byte fallback):
 * loading a tok*.bin and encoding the way llama2.c run.c `encode` does.
 *
 * File: int32 max_token_length, then per token: float32 score, int32 length, that many bytes (no count:
 * the tokens run to the end of the file). Ids 0, 1, 2 are <unk>, BOS ("\n<s>\n"), EOS ("\n</s>\n");
 * ids 3..258 must be the byte tokens <0x00>..<0xFF> (byte b is id b + 3). A file named tok<N>.bin must
 * hold N tokens (this is how a truncation at a token boundary is caught).
 * Encoding of non-empty text: the dummy prefix " " (the token " ", or byte token 0x20 if the vocab has
 * none) followed by the text, split into groups of one byte plus up to three UTF-8 continuation bytes
 * (run.c's rule, also for invalid UTF-8); a group whose bytes are a piece becomes that token, otherwise
 * each byte becomes its byte token; then repeatedly the adjacent pair whose concatenated piece has the
 * highest score (leftmost on ties, only scores > -1e10) is merged — with a heap instead of run.c's
 * quadratic rescans, same result. Unlike run.c, the control and byte tokens (ids 0..258) are never
 * the result of a lookup, so text such as "<0x41>" or "\n<s>\n" cannot turn into them; text may
 * contain NUL bytes. Empty text encodes to nothing (plus BOS on request).
 * Decoding (tokenizer.c): BOS/EOS emit nothing, byte tokens their byte, others their piece; the first
 * byte at the start and after each BOS is dropped if it is a space (the dummy prefix; run.c strips it
 * after BOS only; SentencePiece also strips it at the start). So decode(encode(s)) == s for all bytes s.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

#define L2C_N_SPECIAL 259 /* <unk>, <s>, </s>, 256 byte tokens */

static int32_t rd_i32(const char *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static float rd_f32(const char *p) {
    float v;
    memcpy(&v, p, 4);
    return v;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Expected token count from a file name "tok<N>.bin", or -1. */
static long count_from_name(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    char *end;
    if (strncmp(b, "tok", 3) != 0 || b[3] < '0' || b[3] > '9') return -1;
    long n = strtol(b + 3, &end, 10);
    return strcmp(end, ".bin") == 0 ? n : -1;
}

sf_status tk_l2c_load(sf_tokenizer *t, const char *path) {
    char *d;
    size_t len;
    sf_status st = tk_read_file(path, &d, &len);
    if (st) return st;
    if (len < 4) {
        free(d);
        return sf_fail(SF_ERR_FORMAT, "tokenizer: '%s' (%zu bytes) is too short for a llama2.c tokenizer", path, len);
    }
    int32_t max_len = rd_i32(d);
    if (max_len <= 0 || max_len > (1 << 16)) {
        free(d);
        return sf_fail(SF_ERR_FORMAT, "tokenizer: '%s' is not a llama2.c tokenizer (max_token_length %d)", path,
                       (int)max_len);
    }
    /* pass 1: validate and count */
    size_t n = 0;
    for (size_t p = 4; p < len; n++) {
        if (len - p < 8) {
            st = sf_fail(SF_ERR_FORMAT, "tokenizer: '%s' is truncated in the header of token %zu (byte %zu of %zu)", path,
                         n, p, len);
            break;
        }
        float score = rd_f32(d + p);
        int32_t l = rd_i32(d + p + 4);
        if (l < 0 || l > max_len) {
            st = sf_fail(SF_ERR_FORMAT,
                         "tokenizer: '%s' is not a llama2.c tokenizer: token %zu has length %d (max_token_length %d)",
                         path, n, (int)l, (int)max_len);
            break;
        }
        if (!isfinite(score)) {
            st = sf_fail(SF_ERR_FORMAT, "tokenizer: '%s': token %zu has a non-finite score", path, n);
            break;
        }
        if ((size_t)l > len - p - 8) {
            st = sf_fail(SF_ERR_FORMAT, "tokenizer: '%s' is truncated in token %zu (needs %d bytes, %zu left)", path, n,
                         (int)l, len - p - 8);
            break;
        }
        p += 8 + (size_t)l;
        if (n >= (size_t)INT32_MAX - 1) {
            st = sf_fail(SF_ERR_FORMAT, "tokenizer: '%s' has too many tokens", path);
            break;
        }
    }
    long expect = count_from_name(path);
    if (!st && n < L2C_N_SPECIAL)
        st = sf_fail(SF_ERR_FORMAT,
                     "tokenizer: '%s' has %zu tokens; a llama2.c tokenizer starts with <unk>, <s>, </s> and the 256 byte "
                     "tokens <0x00>..<0xFF> (259 or more)",
                     path, n);
    if (!st && expect >= 0 && (size_t)expect != n)
        st = sf_fail(SF_ERR_FORMAT, "tokenizer: '%s' has %zu tokens but its name says %ld (truncated file?)", path, n,
                     expect);
    if (!st) st = tk_alloc_ids(t, (int32_t)n);
    if (!st) {
        t->scores = malloc(n * sizeof *t->scores);
        if (!t->scores) st = sf_fail(SF_ERR_NOMEM, "tokenizer: out of memory for %zu scores", n);
    }
    /* pass 2: define the tokens */
    size_t p = 4;
    for (size_t id = 0; !st && id < n; id++) {
        int32_t l = rd_i32(d + p + 4);
        const char *piece = d + p + 8;
        t->scores[id] = rd_f32(d + p);
        if (id >= 3 && id < L2C_N_SPECIAL) {
            int hi = l == 6 ? hexval(piece[3]) : -1, lo = l == 6 ? hexval(piece[4]) : -1;
            if (l != 6 || memcmp(piece, "<0x", 3) != 0 || piece[5] != '>' || hi < 0 || lo < 0 ||
                hi * 16 + lo != (int)id - 3) {
                st = sf_fail(SF_ERR_FORMAT, "tokenizer: '%s': token %zu is \"%.*s\", expected the byte token <0x%02X>",
                             path, id, (int)l, piece, (unsigned)(id - 3));
                break;
            }
            char byte = (char)(id - 3);
            st = tk_set_token(t, (int32_t)id, piece, 6, &byte, 1);
        } else {
            st = tk_set_token(t, (int32_t)id, piece, (size_t)l, piece, (size_t)l);
        }
        p += 8 + (size_t)l;
    }
    free(d);
    if (st) return st;
    t->kind = SF_TOK_LLAMA2C;
    t->bos = 1;
    t->eos = 2;
    t->silent[1] = t->silent[2] = 1;
    memset(t->no_merge, 1, L2C_N_SPECIAL);
    t->strip_space = 1;
    st = tk_build_maps(t);
    if (st) return st;
    int32_t sp = tk_strmap_get(&t->form_map, " ", 1);
    t->space_id = sp >= 0 && !t->no_merge[sp] ? sp : ' ' + 3;
    return SF_OK;
}

/* id of a piece usable while encoding, or -1 */
static int32_t piece_id(const sf_tokenizer *t, const char *a, size_t na, const char *b, size_t nb) {
    int32_t id = tk_strmap_get2(&t->form_map, a, na, b, nb);
    return id >= 0 && !t->no_merge[id] ? id : -1;
}

static int l2c_pair(const sf_tokenizer *t, int32_t a, int32_t b, double *key, int32_t *merged) {
    int32_t id = piece_id(t, tk_form(t, a), t->form_len[a], tk_form(t, b), t->form_len[b]);
    if (id < 0 || !(t->scores[id] > -1e10f)) return 0;
    *key = -(double)t->scores[id];
    *merged = id;
    return 1;
}

sf_status tk_l2c_encode(const sf_tokenizer *t, const char *text, size_t len, int32_t *out, size_t *n_out) {
    *n_out = 0;
    if (len == 0) return SF_OK;
    const uint8_t *s = (const uint8_t *)text;
    size_t n = 0;
    out[n++] = t->space_id; /* dummy prefix */
    for (size_t i = 0; i < len;) {
        size_t j = i + 1;
        while (j < len && (s[j] & 0xC0) == 0x80 && j - i < 4) j++;
        int32_t id = piece_id(t, text + i, j - i, NULL, 0);
        if (id >= 0) {
            out[n++] = id;
        } else {
            for (size_t k = i; k < j; k++) out[n++] = (int32_t)s[k] + 3; /* byte fallback */
        }
        i = j;
    }
    tk_scratch sc = {0};
    sf_status st = tk_merge(t, l2c_pair, &sc, out, &n);
    tk_scratch_free(&sc);
    *n_out = st ? 0 : n;
    return st;
}
