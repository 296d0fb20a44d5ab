/* sha256.h — SHA-256 (FIPS 180-4), used to fingerprint the base tensors a delta was trained on.
 *
 * What it does: a plain, portable implementation with a streaming interface (init / update / final) and
 * a one-shot helper, plus lowercase hex formatting. Byte-oriented, so the result does not depend on the
 * host's endianness for the bytes it is given (callers hashing float tensors hash their in-memory,
 * little-endian bytes).
 * What it does not do: HMAC, other SHA-2 variants, hardware acceleration (SHA-NI), or allocate.
 */
#ifndef SF_SHA256_H
#define SF_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];       /* chaining state */
    uint64_t nbytes;     /* message length so far */
    uint8_t buf[64];     /* pending partial block */
    size_t nbuf;         /* bytes in buf (0..63) */
} sf_sha256_ctx;

void sf_sha256_init(sf_sha256_ctx *c);
void sf_sha256_update(sf_sha256_ctx *c, const void *data, size_t len);
void sf_sha256_final(sf_sha256_ctx *c, uint8_t out[32]); /* c must be re-initialised before reuse */

/* One shot: out = SHA-256(data[0..len)). */
void sf_sha256(const void *data, size_t len, uint8_t out[32]);
/* 64 lowercase hex digits + NUL into hex (65 bytes); returns hex. */
char *sf_sha256_hex(const uint8_t digest[32], char hex[65]);
/* 1 if s is exactly 64 hex digits (either case), 0 otherwise. */
int sf_sha256_is_hex(const char *s);

#endif
