/*
 * dockerfile_int.h - helpers shared by the Dockerfile parser, the shell lexer
 * and .dockerignore: UTF-8 decoding with Go's rules (buildkit is written in Go,
 * and matching it byte for byte means decoding, classifying and quoting text
 * the way Go's standard library does).
 */
#ifndef SW_STEPS_DOCKERFILE_INT_H
#define SW_STEPS_DOCKERFILE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct sw_buf;

#define STEP_DF_RUNE_ERROR 0xFFFD

/*
 * Decode one rune at s[0..len) like Go's utf8.DecodeRune: an invalid or
 * truncated sequence (overlong, surrogate, > U+10FFFF) is U+FFFD of width 1.
 * `len` must be > 0.
 */
int32_t step_df_rune_decode(const char *s, size_t len, size_t *width);
/* Append the UTF-8 encoding of `r` (U+FFFD when invalid) like strings.Builder.WriteRune. */
int step_df_rune_put(struct sw_buf *b, int32_t r, struct sw_err *err);

/* Go's unicode.IsSpace. */
bool step_df_is_space(int32_t r);
/* Go's unicode.IsLetter (approximate beyond ASCII, see .c) and IsDigit (Nd). */
bool step_df_is_letter(int32_t r);
bool step_df_is_digit(int32_t r);

/* Go's strconv.Quote of s[0..len), appended to `b`. */
int step_df_quote(struct sw_buf *b, const char *s, size_t len, struct sw_err *err);
/* Go's strings.ToLower (ASCII, Latin-1, Greek and Cyrillic), appended to `b`. */
int step_df_lower(struct sw_buf *b, const char *s, size_t len, struct sw_err *err);
/* Go's strings.TrimSpace: narrow [*start, *end) to drop Unicode white space. */
void step_df_trim_space(const char *s, size_t *start, size_t *end);

#endif /* SW_STEPS_DOCKERFILE_INT_H */
