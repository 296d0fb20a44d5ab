/* tokenizer.h — text <-> token ids the way a checkpoint expects.
 *
 * Kinds: byte-level BPE (GPT-2 family) from a Hugging Face tokenizer.json (model type BPE with merges,
 * ByteLevel pre-tokenizer with the GPT-2 split regex, added/special tokens matched before splitting) or
 * from OpenAI's encoder.json + vocab.bpe; and the llama2.c / SentencePiece-style score-based BPE with
 * byte fallback (<0xXX> tokens) from a llama2.c tok*.bin. Encode then decode returns the original bytes
 * for any input, including invalid UTF-8. Errors name the file and what was wrong.
 * This file does not know about models.
 */
#ifndef SF_TOKENIZER_H
#define SF_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct sf_tokenizer sf_tokenizer;

typedef enum { SF_TOK_BYTE_BPE = 0, SF_TOK_LLAMA2C = 1 } sf_tokenizer_kind;

/* path: a folder (tokenizer.json, or encoder.json + vocab.bpe, or tok*.bin inside), a tokenizer.json,
 * an encoder.json (vocab.bpe next to it), or a llama2.c tok*.bin. */
sf_tokenizer *sf_tokenizer_load(const char *path);
void sf_tokenizer_free(sf_tokenizer *t);
sf_tokenizer_kind sf_tokenizer_get_kind(const sf_tokenizer *t);
int32_t sf_tokenizer_vocab_size(const sf_tokenizer *t);
int32_t sf_tokenizer_bos(const sf_tokenizer *t); /* -1 if none */
int32_t sf_tokenizer_eos(const sf_tokenizer *t); /* -1 if none */
/* Encodes `len` bytes; with add_bos the BOS id is prepended (when the tokenizer has one).
 * *ids is malloc'd (caller frees). */
sf_status sf_tokenizer_encode(const sf_tokenizer *t, const char *text, size_t len, int add_bos, int32_t **ids,
                              size_t *n_ids);
/* Decodes ids (out-of-range ids are an error) into a malloc'd NUL-terminated byte string of length *len. */
sf_status sf_tokenizer_decode(const sf_tokenizer *t, const int32_t *ids, size_t n_ids, char **out, size_t *len);
/* The raw byte string of one token (for printing / debugging); NULL if out of range. */
const char *sf_tokenizer_piece(const sf_tokenizer *t, int32_t id, size_t *len);
/* Token id of an exact piece / special token string, or -1. */
int32_t sf_tokenizer_lookup(const sf_tokenizer *t, const char *piece);

#endif
