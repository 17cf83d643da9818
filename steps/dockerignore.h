/*
 * dockerignore.h - .dockerignore: which files of the build context the
 * builder leaves out.
 *
 * The rules are Docker's (moby/patternmatcher and its ignorefile reader):
 *  - lines starting with '#' are comments; blank lines are skipped; each
 *    pattern is trimmed, cleaned like a path (a/./b//c/../d -> a/b/d) and
 *    loses a leading '/' (patterns are relative to the context root);
 *  - '*' matches within one path component, '?' one character, [a-z] and
 *    [^a-z] a class, '\' escapes; a double star matches any number of
 *    components (including none): a leading double star, '/', x matches x
 *    at any depth; x, '/', a trailing double star matches all under x;
 *  - a pattern that matches a directory excludes everything under it;
 *  - '!pattern' re-includes what it matches; the last pattern that matches
 *    decides, so "dir" then "!dir/keep" leaves out dir but keeps dir/keep.
 *
 * Ownership: step_dockerignore_parse() returns a matcher owned by the caller,
 * freed with step_dockerignore_free() (accepts NULL). Matching does not
 * modify it: one matcher may serve several threads at once.
 */
#ifndef SW_STEPS_DOCKERIGNORE_H
#define SW_STEPS_DOCKERIGNORE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

struct step_dockerignore;

#define STEP_DOCKERIGNORE_MAX_BYTES ((size_t)1 << 20)
#define STEP_DOCKERIGNORE_MAX_PATTERNS 10000
/* Paths longer than this are never matched (PATH_MAX-sized in practice). */
#define STEP_DOCKERIGNORE_MAX_PATH 8192

/*
 * Read a .dockerignore file's text (`len` bytes; NULL/0 for "no file").
 * Returns 0 and a matcher owned by the caller; SW_EINVAL naming the line for
 * a malformed pattern ("[a-", a lone "!", a trailing '\'); SW_ETOOBIG past
 * the limits (1 MiB, 10000 patterns, 64 KiB lines).
 */
int step_dockerignore_parse(struct step_dockerignore **out, const char *text, size_t len,
                            struct sw_err *err);

/* Build a matcher from patterns as ReadAll returns them (already cleaned). */
int step_dockerignore_new(struct step_dockerignore **out, const char *const *patterns, size_t n,
                          struct sw_err *err);

void step_dockerignore_free(struct step_dockerignore *m);

/* The cleaned patterns, in order, '!' kept: for cache keys and debugging. */
size_t step_dockerignore_count(const struct step_dockerignore *m);
const char *step_dockerignore_pattern(const struct step_dockerignore *m, size_t i);

#define STEP_DOCKERIGNORE_EXCLUDED 1u /* leave this path out of the context */
#define STEP_DOCKERIGNORE_DESCEND 2u  /* a directory the walk must still enter */

/*
 * Match one context path ("dir/file", '/'-separated, relative to the root;
 * it is cleaned first). Returns STEP_DOCKERIGNORE_EXCLUDED when the path is
 * left out, and for a directory (`is_dir`) also STEP_DOCKERIGNORE_DESCEND
 * when the walk must go into it: always when it is included, and when it is
 * excluded but a '!' pattern may re-include something beneath it (then the
 * directory itself is not sent, but the re-included files are, with their
 * parent directories). The root "." is never excluded.
 */
unsigned step_dockerignore_match(const struct step_dockerignore *m, const char *path, bool is_dir);

#endif /* SW_STEPS_DOCKERIGNORE_H */
