/*
 * digest.h - streaming sha256 (OpenSSL EVP) and "sha256:<hex>" digests.
 *
 * Ownership: sw_sha256_new() returns a context owned by the caller, freed
 * with sw_sha256_free() (accepts NULL). Threads: one thread per context.
 */
#ifndef SW_DIGEST_H
#define SW_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define SW_SHA256_HEX_LEN 64
/* "sha256:" + 64 hex digits + NUL */
#define SW_DIGEST_STR_LEN (7 + SW_SHA256_HEX_LEN + 1)

struct sw_sha256;

struct sw_sha256 *sw_sha256_new(void);
void sw_sha256_update(struct sw_sha256 *h, const void *data, size_t len);
/* Writes "sha256:<hex>" into out (SW_DIGEST_STR_LEN bytes); the context may be reused after. */
void sw_sha256_final(struct sw_sha256 *h, char out[SW_DIGEST_STR_LEN]);
void sw_sha256_free(struct sw_sha256 *h);

/* One-shot digest of a buffer. */
void sw_sha256_digest(char out[SW_DIGEST_STR_LEN], const void *data, size_t len);
/* Digest of a whole file; *size_out (may be NULL) gets its size. */
int sw_sha256_file(char out[SW_DIGEST_STR_LEN], int64_t *size_out, const char *path,
                   struct sw_err *err);
/* True when `s` is "sha256:" followed by exactly 64 lowercase hex digits. */
int sw_digest_valid(const char *s);

#endif /* SW_DIGEST_H */
