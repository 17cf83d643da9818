/*
 * dockerfile.h - the Dockerfile parser and the shell-word lexer of ARG/ENV.
 *
 * The parser follows buildkit's frontend/dockerfile/parser exactly: the same
 * lines become the same tree (checked against buildkit's own test corpus),
 * so that a Dockerfile means here what it means to `docker build`. It keeps,
 * per instruction, the instruction word, its --flags, its arguments (already
 * split the way buildkit splits them: ENV/LABEL key/value/separator triples,
 * JSON arrays, HEALTHCHECK type + command, ONBUILD's nested instruction),
 * the original line, its first and last line numbers and its heredocs.
 *
 * The lexer (step_shlex_*) performs buildkit's shell-word processing: quotes,
 * escapes and $VAR / ${VAR...} expansion, either into one word (ENV, LABEL,
 * WORKDIR...) or into a list of words (split on unquoted white space).
 *
 * Ownership: step_dockerfile_parse() returns a tree owned by the caller, freed
 * in one call with step_dockerfile_free() (accepts NULL). Lexer results are
 * malloc'ed and owned by the caller.
 * Limits: a Dockerfile is at most STEP_DOCKERFILE_MAX_BYTES, its physical
 * lines at most 65536 bytes (buildkit's own limit), STEP_DOCKERFILE_MAX_LINES
 * lines, heredocs STEP_DOCKERFILE_MAX_HEREDOC bytes each; beyond that the
 * parse fails with SW_ETOOBIG. Parse errors name the line.
 * Threads: no shared state; any number of parses may run in parallel.
 */
#ifndef SW_STEPS_DOCKERFILE_H
#define SW_STEPS_DOCKERFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

struct sw_buf;
struct sw_config;
struct sw_arena;

#define STEP_DOCKERFILE_MAX_BYTES ((size_t)4 << 20)
#define STEP_DOCKERFILE_MAX_LINES 200000
#define STEP_DOCKERFILE_MAX_LINE 65536
#define STEP_DOCKERFILE_MAX_HEREDOC ((size_t)1 << 20)
/* ONBUILD ONBUILD ... is refused past this depth (buildkit has no limit). */
#define STEP_DOCKERFILE_MAX_NESTING 8

/* One here-document attached to a RUN, COPY or ADD (`<<EOF` ... `EOF`). */
struct step_dockerfile_heredoc {
        const char *name;      /* the delimiter word, quotes removed */
        const char *content;   /* every line up to the delimiter, newlines kept */
        size_t content_len;    /* the content has no NUL, but may be long */
        unsigned long long fd; /* the digits before <<, 0 when absent */
        bool expand;           /* false when the delimiter was quoted */
        bool chomp;            /* <<- : leading tabs are stripped */
};

/*
 * A node of buildkit's tree. The root has one child per instruction; an
 * instruction node holds the instruction word in `value` (as written, e.g.
 * "RUN") and its arguments as the `next` chain; ONBUILD's argument is one node
 * whose single child is the nested instruction.
 */
struct step_dockerfile_node {
        const char *value; /* NUL-terminated; JSON "\u0000" can put a NUL inside */
        size_t value_len;
        struct step_dockerfile_node *next;
        struct step_dockerfile_node **children;
        size_t n_children;
        const char *const *flags; /* "--from=x" ..., instruction nodes only */
        size_t n_flags;
        struct step_dockerfile_heredoc *heredocs;
        size_t n_heredocs;
        const char *original;        /* the whole logical line, continuations joined */
        const char *const *comments; /* the comment lines just above */
        size_t n_comments;
        int start_line; /* 1-based; 0 for nested (ONBUILD) nodes */
        int end_line;   /* last line, heredoc bodies included */
        bool json;      /* the arguments were a JSON array (exec form) */
};

struct step_dockerfile {
        struct step_dockerfile_node *ast; /* the root */
        char escape;                      /* '\\' or '`' */
        const char *syntax;               /* the `# syntax=` directive, or NULL */
        const char *check;                /* the `# check=` directive, or NULL */
        size_t n_warnings;                /* empty continuation lines seen */
        struct sw_arena *arena;           /* owns everything above */
};

/*
 * Parse `len` bytes of Dockerfile text. Returns 0 and a tree owned by the
 * caller (step_dockerfile_free), SW_EINVAL with "dockerfile parse error on
 * line N: ..." for bad input, SW_ETOOBIG past the limits. Idempotent.
 */
int step_dockerfile_parse(struct step_dockerfile **out, const char *text, size_t len,
                          struct sw_err *err);
void step_dockerfile_free(struct step_dockerfile *df);

/*
 * Append buildkit's Node.Dump() of `node` to `out` (no trailing newline):
 * one "(instruction ["--flags"] "arg" ...)" line per child for the root.
 */
int step_dockerfile_dump(struct sw_buf *out, const struct step_dockerfile_node *node,
                         struct sw_err *err);

/* `slipway dockerfile parse FILE`: print the tree; exit 1 with the error. */
int step_dockerfile_cmd(int argc, char **argv, const struct sw_config *cfg);

/* ---- shell words ---- */

struct step_shlex_options {
        char escape;              /* '\\' or '`' (the Dockerfile's escape token) */
        bool raw_quotes;          /* keep the quote characters in the result */
        bool raw_escapes;         /* keep the escape characters in the result */
        bool skip_process_quotes; /* quotes are ordinary characters */
        bool skip_unset_env;      /* leave $X / ${X...} as written when X is unset */
};

#define STEP_SHLEX_OPTIONS_INIT                                                                    \
        {                                                                                          \
                '\\', false, false, false, false                                                   \
        }

/*
 * The variables visible to an expansion: "KEY=VALUE" strings (an entry
 * without '=' is set to ""); when a key repeats, the last entry wins.
 */
struct step_shlex_env {
        const char *const *vars;
        size_t n_vars;
};

/* Expansions beyond this many bytes of output fail with SW_ETOOBIG. */
#define STEP_SHLEX_MAX_OUTPUT ((size_t)4 << 20)

/*
 * Process `word` as one word (quotes removed, variables expanded, white space
 * kept). Returns 0 and a malloc'ed string (*len_out bytes) owned by the
 * caller; SW_EINVAL for a syntax error or a ${X?message} whose X is unset.
 */
int step_shlex_word(char **out, size_t *len_out, const struct step_shlex_options *opts,
                    const char *word, size_t len, const struct step_shlex_env *env,
                    struct sw_err *err);

/*
 * Process `word` and split the result into words at unquoted white space.
 * Returns 0 and a malloc'ed, NULL-terminated array of malloc'ed strings
 * (free with step_shlex_words_free); errors as step_shlex_word().
 */
int step_shlex_words(char ***out, size_t *n_out, const struct step_shlex_options *opts,
                     const char *word, size_t len, const struct step_shlex_env *env,
                     struct sw_err *err);
void step_shlex_words_free(char **words);

#endif /* SW_STEPS_DOCKERFILE_H */
