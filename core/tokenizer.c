/* tokenizer.c — the public tokenizer API (tokenizer.h): finding the files behind a path, dispatching
 * to the byte-level BPE (tokenizer_bpe.c) or llama2.c (tokenizer_llama2c.c) loader and encoder, and
 * the parts both kinds share: decode, piece/lookup, the hash maps and the heap-based merge loop.
 *
 * Decode rule (what makes encode/decode a lossless pair): the output is the concatenation of each id's
 * raw bytes, except that (1) "silent" ids (llama2.c BOS and EOS) emit nothing, and (2) for tokenizers
 * that add a prefix space while encoding (llama2.c's dummy prefix, ByteLevel add_prefix_space), the
 * first byte emitted at the start of the ids and after each BOS is dropped when it is a space — the
 * encoder always adds exactly that one space to non-empty text, so decode(encode(s)) == s for every
 * byte string s (with add_bos = 0; with add_bos the byte-level BOS <|endoftext|> decodes to its text).
 * This file does not know the file formats in detail, and does not normalise or pre-tokenise text.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer_internal.h"

/* ---- byte arena ---- */
sf_status tk_buf_append(tk_buf *b, const void *p, size_t n, uint32_t *off) {
    if (b->len + n + 1 > UINT32_MAX) return sf_fail(SF_ERR_NOMEM, "tokenizer: string arena exceeds 4 GiB");
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return sf_fail(SF_ERR_NOMEM, "tokenizer: out of memory growing a string arena to %zu bytes", cap);
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    if (off) *off = (uint32_t)b->len;
    b->len += n;
    b->data[b->len] = '\0'; /* keeps the last string NUL-terminated for printing */
    return SF_OK;
}

void tk_buf_free(tk_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* ---- string map (FNV-1a, linear probing, load <= 1/2) ---- */
static uint32_t fnv_step(uint32_t h, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}
#define FNV_INIT 2166136261u

static uint32_t pow2_at_least(size_t n) {
    uint32_t c = 16;
    while (c < n && c < (1u << 30)) c <<= 1;
    return c;
}

sf_status tk_strmap_init(tk_strmap *m, const tk_buf *keys, size_t expected) {
    m->cap = pow2_at_least(expected * 2 + 1);
    m->n = 0;
    m->keys = keys;
    m->slots = malloc((size_t)m->cap * sizeof *m->slots);
    if (!m->slots) return sf_fail(SF_ERR_NOMEM, "tokenizer: out of memory for a map of %zu strings", expected);
    for (uint32_t i = 0; i < m->cap; i++) m->slots[i].val = -1;
    return SF_OK;
}

static int slot_is(const tk_strmap *m, const tk_slot *s, uint32_t h, const char *a, size_t na, const char *b,
                   size_t nb) {
    if (s->hash != h || s->len != na + nb) return 0;
    const char *k = m->keys->data + s->off;
    return memcmp(k, a, na) == 0 && (nb == 0 || memcmp(k + na, b, nb) == 0);
}

sf_status tk_strmap_put(tk_strmap *m, uint32_t off, uint32_t len, int32_t val) {
    if ((size_t)(m->n + 1) * 2 > m->cap) return sf_fail(SF_ERR_NOMEM, "tokenizer: string map is full (%u keys)", m->n);
    const char *key = m->keys->data + off;
    uint32_t h = fnv_step(FNV_INIT, key, len);
    for (uint32_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        tk_slot *s = &m->slots[i];
        if (s->val < 0) {
            *s = (tk_slot){h, off, len, val};
            m->n++;
            return SF_OK;
        }
        if (slot_is(m, s, h, key, len, NULL, 0)) return SF_OK; /* first wins */
    }
}

int32_t tk_strmap_get2(const tk_strmap *m, const char *a, size_t na, const char *b, size_t nb) {
    if (!m->slots) return -1;
    uint32_t h = fnv_step(fnv_step(FNV_INIT, a, na), b, nb);
    for (uint32_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const tk_slot *s = &m->slots[i];
        if (s->val < 0) return -1;
        if (slot_is(m, s, h, a, na, b, nb)) return s->val;
    }
}

int32_t tk_strmap_get(const tk_strmap *m, const char *s, size_t n) { return tk_strmap_get2(m, s, n, NULL, 0); }

void tk_strmap_free(tk_strmap *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- pair map ---- */
static uint32_t pair_hash(uint64_t k) { return (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> 32); }

sf_status tk_pairmap_init(tk_pairmap *m, size_t expected) {
    m->cap = pow2_at_least(expected * 2 + 1);
    m->n = 0;
    m->keys = malloc((size_t)m->cap * sizeof *m->keys);
    m->rank = malloc((size_t)m->cap * sizeof *m->rank);
    m->merged = malloc((size_t)m->cap * sizeof *m->merged);
    if (!m->keys || !m->rank || !m->merged) {
        tk_pairmap_free(m);
        return sf_fail(SF_ERR_NOMEM, "tokenizer: out of memory for %zu merges", expected);
    }
    memset(m->keys, 0xFF, (size_t)m->cap * sizeof *m->keys);
    return SF_OK;
}

sf_status tk_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged) {
    if ((size_t)(m->n + 1) * 2 > m->cap) return sf_fail(SF_ERR_NOMEM, "tokenizer: merge map is full (%u pairs)", m->n);
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (uint32_t i = pair_hash(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == UINT64_MAX) {
            m->keys[i] = k;
            m->rank[i] = rank;
            m->merged[i] = merged;
            m->n++;
            return SF_OK;
        }
        if (m->keys[i] == k) return SF_OK; /* a repeated merge keeps its first (best) rank */
    }
}

int tk_pairmap_get(const tk_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged) {
    if (!m->keys) return 0;
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (uint32_t i = pair_hash(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == UINT64_MAX) return 0;
        if (m->keys[i] == k) {
            *rank = m->rank[i];
            *merged = m->merged[i];
            return 1;
        }
    }
}

void tk_pairmap_free(tk_pairmap *m) {
    free(m->keys);
    free(m->rank);
    free(m->merged);
    memset(m, 0, sizeof *m);
}

/* ---- token table ---- */
sf_tokenizer *tk_new(const char *path) {
    sf_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return sf_fail_null(SF_ERR_NOMEM, "tokenizer: out of memory");
    t->path = strdup(path);
    if (!t->path) {
        free(t);
        return sf_fail_null(SF_ERR_NOMEM, "tokenizer: out of memory");
    }
    t->bos = t->eos = t->space_id = -1;
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    return t;
}

sf_status tk_alloc_ids(sf_tokenizer *t, int32_t n) {
    t->n_vocab = n;
    size_t un = n > 0 ? (size_t)n : 1;
    t->form_off = calloc(un, sizeof *t->form_off);
    t->form_len = calloc(un, sizeof *t->form_len);
    t->raw_off = calloc(un, sizeof *t->raw_off);
    t->raw_len = malloc(un * sizeof *t->raw_len);
    t->silent = calloc(un, 1);
    t->no_merge = calloc(un, 1);
    if (!t->form_off || !t->form_len || !t->raw_off || !t->raw_len || !t->silent || !t->no_merge)
        return sf_fail(SF_ERR_NOMEM, "tokenizer: out of memory for %d tokens", (int)n);
    for (size_t i = 0; i < un; i++) t->raw_len[i] = TK_HOLE;
    return SF_OK;
}

sf_status tk_set_token(sf_tokenizer *t, int32_t id, const char *form, size_t form_len, const char *raw,
                       size_t raw_len) {
    uint32_t fo, ro;
    sf_status st = tk_buf_append(&t->form, form, form_len, &fo);
    if (!st) st = tk_buf_append(&t->raw, raw, raw_len, &ro);
    if (st) return st;
    t->form_off[id] = fo;
    t->form_len[id] = (uint32_t)form_len;
    t->raw_off[id] = ro;
    t->raw_len[id] = (uint32_t)raw_len;
    return SF_OK;
}

sf_status tk_build_maps(sf_tokenizer *t) {
    sf_status st = tk_strmap_init(&t->form_map, &t->form, (size_t)t->n_vocab);
    if (!st) st = tk_strmap_init(&t->raw_map, &t->raw, (size_t)t->n_vocab);
    for (int32_t id = 0; !st && id < t->n_vocab; id++) {
        if (t->raw_len[id] == TK_HOLE) continue;
        st = tk_strmap_put(&t->form_map, t->form_off[id], t->form_len[id], id);
        if (!st) st = tk_strmap_put(&t->raw_map, t->raw_off[id], t->raw_len[id], id);
    }
    return st;
}

sf_status tk_read_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return sf_fail(SF_ERR_IO, "tokenizer: cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *b2 = realloc(buf, cap * 2);
            if (!b2) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b2;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf) return sf_fail(SF_ERR_NOMEM, "tokenizer: out of memory reading '%s'", path);
    if (err) {
        free(buf);
        return sf_fail(SF_ERR_IO, "tokenizer: read error in '%s'", path);
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return SF_OK;
}

/* ---- merge loop ---- */
static int heap_less(const tk_heap_entry *a, const tk_heap_entry *b) {
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

static sf_status heap_push(tk_scratch *s, size_t *hn, tk_heap_entry e) {
    if (*hn == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 64;
        tk_heap_entry *h = realloc(s->heap, cap * sizeof *h);
        if (!h) return sf_fail(SF_ERR_NOMEM, "tokenizer: out of memory for the merge heap");
        s->heap = h;
        s->heap_cap = cap;
    }
    size_t i = (*hn)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = e;
    return SF_OK;
}

static tk_heap_entry heap_pop(tk_scratch *s, size_t *hn) {
    tk_heap_entry top = s->heap[0], last = s->heap[--*hn];
    size_t n = *hn, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_less(&s->heap[c + 1], &s->heap[c])) c++;
        if (!heap_less(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

static sf_status push_pair(const sf_tokenizer *t, tk_pair_fn pair, tk_scratch *s, size_t *hn, const int32_t *ids,
                           int32_t l, int32_t r) {
    tk_heap_entry e = {.left = l, .right = r, .id_left = ids[l], .id_right = ids[r]};
    if (!pair(t, ids[l], ids[r], &e.key, &e.merged)) return SF_OK;
    return heap_push(s, hn, e);
}

sf_status tk_merge(const sf_tokenizer *t, tk_pair_fn pair, tk_scratch *s, int32_t *ids, size_t *n_io) {
    size_t n = *n_io;
    if (n < 2) return SF_OK;
    if (n > INT32_MAX) return sf_fail(SF_ERR_ARG, "tokenizer: text of %zu symbols is too long", n);
    if (n > s->cap) {
        int32_t *p = realloc(s->prev, n * sizeof *p), *q = p ? realloc(s->next, n * sizeof *q) : NULL;
        if (p) s->prev = p;
        if (q) s->next = q;
        if (!p || !q) return sf_fail(SF_ERR_NOMEM, "tokenizer: out of memory for %zu symbols", n);
        s->cap = n;
    }
    int32_t *prev = s->prev; // (n)
    int32_t *next = s->next; // (n)
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    sf_status st = SF_OK;
    for (size_t i = 0; !st && i + 1 < n; i++) st = push_pair(t, pair, s, &hn, ids, (int32_t)i, (int32_t)i + 1);
    while (!st && hn) {
        tk_heap_entry e = heap_pop(s, &hn);
        if (ids[e.left] != e.id_left || ids[e.right] != e.id_right || next[e.left] != e.right) continue; /* stale */
        ids[e.left] = e.merged;
        ids[e.right] = -1;
        int32_t nx = next[e.right];
        next[e.left] = nx;
        if (nx >= 0) prev[nx] = e.left;
        if (prev[e.left] >= 0) st = push_pair(t, pair, s, &hn, ids, prev[e.left], e.left);
        if (!st && nx >= 0) st = push_pair(t, pair, s, &hn, ids, e.left, nx);
    }
    if (st) return st;
    size_t k = 0;
    for (int32_t i = 0; i >= 0; i = next[i]) ids[k++] = ids[i]; /* position 0 is never merged away */
    *n_io = k;
    return SF_OK;
}

void tk_scratch_free(tk_scratch *s) {
    free(s->prev);
    free(s->next);
    free(s->heap);
    memset(s, 0, sizeof *s);
}

/* ---- finding the files ---- */
static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static char *join(const char *dir, size_t dir_len, const char *name) {
    size_t n = dir_len + 1 + strlen(name) + 1;
    char *p = malloc(n);
    if (!p) return sf_fail_null(SF_ERR_NOMEM, "tokenizer: out of memory");
    snprintf(p, n, "%.*s/%s", (int)dir_len, dir, name);
    return p;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static size_t dir_len_of(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? (size_t)(s - p) : 1; /* "." */
}

static const char *dir_of(const char *p) { return strrchr(p, '/') ? p : "."; }

/* OpenAI GPT-2 pair: `known` is encoder.json or vocab.bpe, the other is looked for beside it. */
static sf_status load_openai_pair(sf_tokenizer *t, const char *path, int known_is_encoder) {
    char *other = join(dir_of(path), dir_len_of(path), known_is_encoder ? "vocab.bpe" : "encoder.json");
    if (!other) return sf_last_status();
    sf_status st;
    if (!is_file(other))
        st = sf_fail(SF_ERR_IO, "tokenizer: '%s' needs '%s' beside it (OpenAI GPT-2 BPE is encoder.json + vocab.bpe)",
                     path, other);
    else
        st = known_is_encoder ? tk_bpe_load_openai(t, path, other) : tk_bpe_load_openai(t, other, path);
    free(other);
    return st;
}

static sf_status load_dir(sf_tokenizer *t, const char *dir) {
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    char *p = join(dir, dl, "tokenizer.json");
    if (!p) return sf_last_status();
    if (is_file(p)) {
        sf_status st = tk_bpe_load_hf(t, p);
        free(p);
        return st;
    }
    free(p);
    char *enc = join(dir, dl, "encoder.json"), *bpe = join(dir, dl, "vocab.bpe");
    if (enc && bpe && is_file(enc) && is_file(bpe)) {
        sf_status st = tk_bpe_load_openai(t, enc, bpe);
        free(enc);
        free(bpe);
        return st;
    }
    int oom = !enc || !bpe;
    free(enc);
    free(bpe);
    if (oom) return SF_ERR_NOMEM;
    DIR *d = opendir(dir);
    if (!d) return sf_fail(SF_ERR_IO, "tokenizer: cannot list folder '%s': %s", dir, strerror(errno));
    char found[2][256] = {{0}};
    int n_found = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, "tok", 3) != 0 || !ends_with(e->d_name, ".bin") || strlen(e->d_name) >= 256) continue;
        if (n_found < 2) snprintf(found[n_found], sizeof found[0], "%s", e->d_name);
        n_found++;
    }
    closedir(d);
    if (n_found == 0)
        return sf_fail(SF_ERR_IO,
                       "tokenizer: folder '%s' holds no tokenizer.json, encoder.json + vocab.bpe, or llama2.c tok*.bin",
                       dir);
    if (n_found > 1)
        return sf_fail(SF_ERR_ARG, "tokenizer: folder '%s' holds several llama2.c tokenizers (%s, %s%s); pass the file",
                       dir, found[0], found[1], n_found > 2 ? ", ..." : "");
    p = join(dir, dl, found[0]);
    if (!p) return sf_last_status();
    sf_status st = tk_l2c_load(t, p);
    free(p);
    return st;
}

sf_tokenizer *sf_tokenizer_load(const char *path) {
    if (!path || !*path) return sf_fail_null(SF_ERR_ARG, "tokenizer: empty path");
    struct stat sb;
    if (stat(path, &sb) != 0) return sf_fail_null(SF_ERR_IO, "tokenizer: cannot open '%s': %s", path, strerror(errno));
    sf_tokenizer *t = tk_new(path);
    if (!t) return NULL;
    sf_status st;
    const char *base = base_name(path);
    if (S_ISDIR(sb.st_mode))
        st = load_dir(t, path);
    else if (ends_with(base, "encoder.json"))
        st = load_openai_pair(t, path, 1);
    else if (ends_with(base, ".bpe"))
        st = load_openai_pair(t, path, 0);
    else if (ends_with(base, ".json"))
        st = tk_bpe_load_hf(t, path);
    else
        st = tk_l2c_load(t, path);
    if (st) {
        sf_tokenizer_free(t);
        return NULL;
    }
    return t;
}

void sf_tokenizer_free(sf_tokenizer *t) {
    if (!t) return;
    free(t->path);
    tk_buf_free(&t->form);
    tk_buf_free(&t->raw);
    free(t->form_off);
    free(t->form_len);
    free(t->raw_off);
    free(t->raw_len);
    free(t->silent);
    free(t->no_merge);
    tk_strmap_free(&t->form_map);
    tk_strmap_free(&t->raw_map);
    tk_pairmap_free(&t->merges);
    free(t->special);
    free(t->scores);
    free(t);
}

sf_tokenizer_kind sf_tokenizer_get_kind(const sf_tokenizer *t) { return t->kind; }
int32_t sf_tokenizer_vocab_size(const sf_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t sf_tokenizer_bos(const sf_tokenizer *t) { return t ? t->bos : -1; }
int32_t sf_tokenizer_eos(const sf_tokenizer *t) { return t ? t->eos : -1; }

/* ---- encode / decode ---- */
sf_status sf_tokenizer_encode(const sf_tokenizer *t, const char *text, size_t len, int add_bos, int32_t **ids,
                              size_t *n_ids) {
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (!t || !ids || !n_ids) return sf_fail(SF_ERR_ARG, "tokenizer encode: NULL tokenizer or output");
    if (!text && len) return sf_fail(SF_ERR_ARG, "tokenizer encode: NULL text with length %zu", len);
    if (len > (size_t)INT32_MAX - 8)
        return sf_fail(SF_ERR_ARG, "tokenizer encode: text of %zu bytes is too long (limit 2 GiB)", len);
    /* every token covers at least one byte, plus BOS and one prefix space */
    int32_t *out = malloc((len + 3) * sizeof *out); // (len + 3)
    if (!out) return sf_fail(SF_ERR_NOMEM, "tokenizer encode: out of memory for %zu bytes of text", len);
    size_t n = 0;
    if (add_bos && t->bos >= 0) out[n++] = t->bos;
    size_t m = 0;
    sf_status st = t->kind == SF_TOK_LLAMA2C ? tk_l2c_encode(t, text ? text : "", len, out + n, &m)
                                             : tk_bpe_encode(t, text ? text : "", len, out + n, &m);
    if (st) {
        free(out);
        return st;
    }
    n += m;
    int32_t *shrunk = realloc(out, (n ? n : 1) * sizeof *out);
    *ids = shrunk ? shrunk : out;
    *n_ids = n;
    return SF_OK;
}

sf_status sf_tokenizer_decode(const sf_tokenizer *t, const int32_t *ids, size_t n_ids, char **out, size_t *len) {
    if (out) *out = NULL;
    if (len) *len = 0;
    if (!t || !out || (!ids && n_ids)) return sf_fail(SF_ERR_ARG, "tokenizer decode: NULL tokenizer, ids or output");
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_vocab)
            return sf_fail(SF_ERR_ARG, "tokenizer decode: id %d at position %zu is out of range 0..%d", (int)id, i,
                           (int)t->n_vocab - 1);
        if (t->raw_len[id] == TK_HOLE)
            return sf_fail(SF_ERR_ARG, "tokenizer decode: id %d at position %zu is not a token of '%s'", (int)id, i,
                           t->path);
        if (!t->silent[id]) total += t->raw_len[id];
    }
    char *s = malloc(total + 1);
    if (!s) return sf_fail(SF_ERR_NOMEM, "tokenizer decode: out of memory for %zu bytes", total);
    size_t k = 0;
    int at_start = 1;
    for (size_t i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        const char *p = tk_raw(t, id);
        size_t m = t->raw_len[id];
        if (!t->silent[id] && m) {
            if (at_start && t->strip_space && id != t->bos && p[0] == ' ') p++, m--;
            memcpy(s + k, p, m);
            k += m;
            at_start = 0;
        }
        if (id == t->bos) at_start = 1;
    }
    s[k] = '\0';
    *out = s;
    if (len) *len = k;
    return SF_OK;
}

const char *sf_tokenizer_piece(const sf_tokenizer *t, int32_t id, size_t *len) {
    if (len) *len = 0;
    if (!t || id < 0 || id >= t->n_vocab || t->raw_len[id] == TK_HOLE) return NULL;
    if (len) *len = t->raw_len[id];
    return tk_raw(t, id);
}

int32_t sf_tokenizer_lookup(const sf_tokenizer *t, const char *piece) {
    if (!t || !piece) return -1;
    size_t n = strlen(piece);
    int32_t id = tk_strmap_get(&t->form_map, piece, n);
    if (id < 0) id = tk_strmap_get(&t->raw_map, piece, n);
    if (id < 0 && t->kind == SF_TOK_LLAMA2C) { /* llama2.c spells them "\n<s>\n", "\n</s>\n" */
        if (!strcmp(piece, "<s>")) id = t->bos;
        else if (!strcmp(piece, "</s>")) id = t->eos;
    }
    return id;
}
