/*
 * base64.h - standard base64 (RFC 4648, with padding) on OpenSSL, and the
 * hex digits and percent-escapes of URLs.
 */
#ifndef SW_BASE64_H
#define SW_BASE64_H

#include <stddef.h>

#include "common/err.h"

/* Encode; the caller frees the NUL-terminated result. */
char *sw_base64_encode(const void *data, size_t len);
/*
 * Decode (white space is ignored); *out is NUL-terminated for convenience,
 * *len_out the decoded size. The caller frees. SW_EINVAL on bad input.
 */
int sw_base64_decode(unsigned char **out, size_t *len_out, const char *text, struct sw_err *err);

/* The value of hex digit `c`, or -1. */
int sw_hex_digit(char c);
/* Percent-decode `n` bytes of `s` into a new string; a bad escape is kept as it is. */
char *sw_pct_decode(const char *s, size_t n);

#endif /* SW_BASE64_H */
