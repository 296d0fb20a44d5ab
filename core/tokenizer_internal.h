/* tokenizer_internal.h — what core/tokenizer.c, tokenizer_bpe.c and tokenizer_llama2c.c share: the
 * sf_tokenizer struct, a byte arena, an open-addressing string -> id map, a (id, id) -> (rank, id) pair
 * map and the heap-based merge loop used by both BPE kinds. Not a public header: nothing outside these
 * three files includes it.
 *
 * Token storage: every id in [0, n_vocab) has a "form" (the string as the file spells it: "Ġthe" in a
 * byte-level vocab, "<0x0A>" in a llama2.c vocab) and "raw" bytes (what decode emits for it: " the",
 * "\n"). Ids that no file defines are holes (raw_len == TK_HOLE); decoding one is an error.
 */
#ifndef SF_TOKENIZER_INTERNAL_H
#define SF_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

#define TK_HOLE UINT32_MAX

/* Growable byte buffer; strings in it are addressed by offset (the buffer may move). */
typedef struct {
    char *data;
    size_t len, cap;
} tk_buf;

sf_status tk_buf_append(tk_buf *b, const void *p, size_t n, uint32_t *off);
void tk_buf_free(tk_buf *b);

/* String -> int32 map, keys are (offset, length) into `keys`; open addressing, linear probing. */
typedef struct {
    uint32_t hash, off, len;
    int32_t val; /* -1 = empty slot */
} tk_slot;

typedef struct {
    tk_slot *slots; /* (cap) */
    uint32_t cap, n;
    const tk_buf *keys;
} tk_strmap;

sf_status tk_strmap_init(tk_strmap *m, const tk_buf *keys, size_t expected);
/* Inserts unless the key is present (the first value put for a key wins); never fails once
 * initialised with `expected` >= the number of distinct keys put. */
sf_status tk_strmap_put(tk_strmap *m, uint32_t off, uint32_t len, int32_t val);
int32_t tk_strmap_get(const tk_strmap *m, const char *s, size_t n); /* -1 if absent */
/* Lookup of the concatenation a ++ b without building it. */
int32_t tk_strmap_get2(const tk_strmap *m, const char *a, size_t na, const char *b, size_t nb);
void tk_strmap_free(tk_strmap *m);

/* (left id, right id) -> (merge rank, merged id). */
typedef struct {
    uint64_t *keys;  /* (cap), UINT64_MAX = empty */
    int32_t *rank;   /* (cap) */
    int32_t *merged; /* (cap) */
    uint32_t cap, n;
} tk_pairmap;

sf_status tk_pairmap_init(tk_pairmap *m, size_t expected);
sf_status tk_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged); /* first wins */
int tk_pairmap_get(const tk_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged);
void tk_pairmap_free(tk_pairmap *m);

struct sf_tokenizer {
    sf_tokenizer_kind kind;
    char *path; /* for messages */
    int32_t n_vocab, bos, eos;
    tk_buf form, raw;      /* arenas: stored strings / decoded bytes */
    uint32_t *form_off;    /* (n_vocab) */
    uint32_t *form_len;    /* (n_vocab) */
    uint32_t *raw_off;     /* (n_vocab) */
    uint32_t *raw_len;     /* (n_vocab), TK_HOLE for ids no file defines */
    uint8_t *silent;       /* (n_vocab) 1 = decode emits nothing (llama2.c BOS/EOS) */
    uint8_t *no_merge;     /* (n_vocab) 1 = never the result of a string lookup while encoding */
    tk_strmap form_map;    /* form -> id (lowest id wins) */
    tk_strmap raw_map;     /* raw bytes -> id (lowest id wins) */
    int strip_space;       /* decode drops one leading space at the start and after each BOS */
    /* byte-level BPE */
    int32_t byte_id[256];  /* id of the one-byte token of each byte, -1 if the vocab lacks it */
    tk_pairmap merges;
    int32_t *special;      /* (n_special) ids matched literally in the text, longest raw first */
    int n_special;
    uint8_t special_first[256]; /* 1 if some special token starts with that byte */
    int add_prefix_space;
    /* llama2.c */
    float *scores;         /* (n_vocab) */
    int32_t space_id;      /* token of the dummy prefix " " */
};

sf_tokenizer *tk_new(const char *path);
/* Allocates the per-id arrays for n ids, all holes. */
sf_status tk_alloc_ids(sf_tokenizer *t, int32_t n);
/* Defines (or redefines) token id. */
sf_status tk_set_token(sf_tokenizer *t, int32_t id, const char *form, size_t form_len, const char *raw,
                       size_t raw_len);
/* Builds form_map and raw_map from the defined tokens. */
sf_status tk_build_maps(sf_tokenizer *t);
static inline const char *tk_form(const sf_tokenizer *t, int32_t id) { return t->form.data + t->form_off[id]; }
static inline const char *tk_raw(const sf_tokenizer *t, int32_t id) { return t->raw.data + t->raw_off[id]; }

/* Reads a whole file into a malloc'd, NUL-terminated buffer. */
sf_status tk_read_file(const char *path, char **data, size_t *len);

/* The merge loop. `ids` holds n symbols; pair(t, a, b, &key, &merged) says whether the adjacent symbols
 * a, b merge, with priority `key` (lower merges first; ties go to the leftmost pair) — exactly "repeat:
 * merge the best adjacent pair" (llama2.c run.c, GPT-2 bpe()), in O(n log n) with a heap. On return the
 * first *n entries of ids are the result. */
typedef int (*tk_pair_fn)(const sf_tokenizer *t, int32_t a, int32_t b, double *key, int32_t *merged);

typedef struct {
    double key;
    int32_t left, right;       /* symbol positions */
    int32_t id_left, id_right; /* ids when pushed (stale entries are skipped) */
    int32_t merged;
} tk_heap_entry;

typedef struct {
    int32_t *prev, *next; /* (cap) */
    size_t cap;
    tk_heap_entry *heap;  /* (heap_cap) */
    size_t heap_cap;
} tk_scratch;

sf_status tk_merge(const sf_tokenizer *t, tk_pair_fn pair, tk_scratch *s, int32_t *ids, size_t *n);
void tk_scratch_free(tk_scratch *s);

/* Kind-specific parts. */
sf_status tk_bpe_load_hf(sf_tokenizer *t, const char *json_path);
sf_status tk_bpe_load_openai(sf_tokenizer *t, const char *encoder_path, const char *merges_path);
sf_status tk_bpe_encode(const sf_tokenizer *t, const char *text, size_t len, int32_t *out, size_t *n_out);
sf_status tk_l2c_load(sf_tokenizer *t, const char *path);
sf_status tk_l2c_encode(const sf_tokenizer *t, const char *text, size_t len, int32_t *out, size_t *n_out);

#endif
