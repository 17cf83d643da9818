/*
 * dockerfile.c - the Dockerfile parser: text to buildkit's tree of nodes.
 *
 * The work is done line by line, as buildkit's parser.Parse does it:
 *  1. Physical lines: the first may start with a byte-order mark; trailing
 *     \r and \n are dropped; leading white space is dropped from the first
 *     line of an instruction (not from its continuation lines).
 *  2. Parser directives (`# escape=`, `# syntax=`, `# check=`) are only seen
 *     while every line so far was a directive; the first other line (even an
 *     empty one) ends them; a repeated directive is an error.
 *  3. Comment lines are skipped (inside continuations too); the escape token
 *     as the last non-blank character continues the line, unless it is
 *     escaped itself; blank continuation lines are skipped with a warning.
 *  4. The logical line is split into instruction, --flags and arguments, and
 *     the arguments are parsed the way that instruction parses them.
 *  5. RUN, COPY and ADD (also under ONBUILD) in shell form read heredoc
 *     bodies from the following lines.
 * JSON arrays are decoded the way Go's encoding/json decodes them, so that
 * the exec form is recognised exactly when buildkit recognises it.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/arena.h"
#include "common/buf.h"
#include "common/mem.h"
#include "steps/dockerfile.h"
#include "steps/dockerfile_int.h"
#include "common/banned.h"

/* A growable list of strings (malloc'ed; copied into the arena when kept). */
struct strv {
        char **s;
        size_t *len;
        size_t n, cap;
};

static void strv_push(struct strv *v, const char *s, size_t len)
{
        if (v->n == v->cap) {
                v->cap = v->cap ? v->cap * 2 : 8;
                v->s = sw_xrealloc(v->s, v->cap * sizeof(char *));
                v->len = sw_xrealloc(v->len, v->cap * sizeof(size_t));
        }
        v->s[v->n] = sw_xstrndup(s, len);
        v->len[v->n++] = len;
}

static void strv_release(struct strv *v)
{
        for (size_t i = 0; i < v->n; i++)
                free(v->s[i]);
        free(v->s);
        free(v->len);
        memset(v, 0, sizeof(*v));
}

struct parser {
        struct sw_arena *a;
        struct step_dockerfile *df;
        const char *text;
        size_t len;
        size_t pos;
        int line; /* lines consumed so far */
        char escape;
        /* the directive parser */
        int dir_line;
        bool dir_done;
        bool seen_syntax, seen_escape, seen_check;
        struct sw_err *err;
};

/* ---- nodes ---- */

static struct step_dockerfile_node *node_new(struct parser *p, const char *value, size_t len)
{
        struct step_dockerfile_node *n = sw_arena_alloc(p->a, sizeof(*n));

        n->value = sw_arena_strndup(p->a, value ? value : "", value ? len : 0);
        n->value_len = value ? len : 0;
        /* strndup stops at a NUL: JSON "\u0000" needs the bytes copied whole. */
        if (value && memchr(value, '\0', len)) {
                char *v = sw_arena_alloc(p->a, len + 1);
                memcpy(v, value, len);
                n->value = v;
        }
        return n;
}

/* ---- white space, as buildkit's regexp [\t\v\f\r ]+ and unicode.IsSpace ---- */

static bool is_re_ws(char c)
{
        return c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == ' ';
}

/* Go's \s in regexps: [\t\n\f\r ]. */
static bool is_perl_space(char c)
{
        return c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' ';
}

static size_t skip_unicode_space(const char *s, size_t i, size_t len)
{
        size_t w;

        while (i < len) {
                int32_t r = step_df_rune_decode(s + i, len - i, &w);
                if (!step_df_is_space(r))
                        break;
                i += w;
        }
        return i;
}

static bool is_comment(const char *s, size_t len)
{
        size_t i = skip_unicode_space(s, 0, len);
        return i < len && s[i] == '#';
}

static size_t trim_newline(const char *s, size_t len)
{
        while (len > 0 && (s[len - 1] == '\r' || s[len - 1] == '\n'))
                len--;
        return len;
}

/* ---- parser directives ---- */

static int set_escape(struct parser *p, const char *v, size_t vlen)
{
        if (vlen != 1 || (v[0] != '`' && v[0] != '\\'))
                return sw_err_set(p->err, SW_EINVAL,
                                  "invalid escape token '%.*s' does not match ` or \\", (int)vlen,
                                  v);
        p->escape = v[0];
        return 0;
}

/*
 * buildkit's DirectiveParser.ParseLine on one line (newline trimmed). Sets
 * *found when the line was a directive.
 */
static int parse_directive(struct parser *p, const char *s, size_t len, bool *found)
{
        size_t i, ks, ke, vs, ve;
        char key[8];

        *found = false;
        p->dir_line++;
        if (p->dir_done)
                return 0;
        if (len == 0 || s[0] != '#') {
                p->dir_done = true;
                return 0;
        }
        i = skip_unicode_space(s, 1, len);
        /* ^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$ */
        ks = i;
        if (i >= len || !((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z'))) {
                p->dir_done = true;
                return 0;
        }
        while (i < len && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                           (s[i] >= '0' && s[i] <= '9')))
                i++;
        ke = i;
        while (i < len && is_perl_space(s[i]))
                i++;
        if (i >= len || s[i] != '=') {
                p->dir_done = true;
                return 0;
        }
        i++;
        vs = i;
        while (vs < len && is_perl_space(s[vs]))
                vs++;
        if (vs == len) /* (.+?) needs one character: give one blank back */
                vs = len > i ? len - 1 : len;
        if (vs >= len) {
                p->dir_done = true;
                return 0;
        }
        ve = len;
        while (ve > vs + 1 && is_perl_space(s[ve - 1]))
                ve--;
        if (ke - ks > 6) {
                p->dir_done = true;
                return 0;
        }
        for (size_t k = 0; k < ke - ks; k++)
                key[k] = (char)(s[ks + k] | 0x20);
        key[ke - ks] = '\0';
        bool *seen;
        if (strcmp(key, "syntax") == 0)
                seen = &p->seen_syntax;
        else if (strcmp(key, "escape") == 0)
                seen = &p->seen_escape;
        else if (strcmp(key, "check") == 0)
                seen = &p->seen_check;
        else {
                p->dir_done = true;
                return 0;
        }
        if (*seen)
                return sw_err_set(p->err, SW_EINVAL, "only one %s parser directive can be used",
                                  key);
        *seen = true;
        if (strcmp(key, "escape") == 0) {
                int rc = set_escape(p, s + vs, ve - vs);
                if (rc)
                        return rc;
        } else if (strcmp(key, "syntax") == 0) {
                p->df->syntax = sw_arena_strndup(p->a, s + vs, ve - vs);
        } else {
                p->df->check = sw_arena_strndup(p->a, s + vs, ve - vs);
        }
        *found = true;
        return 0;
}

/*
 * processLine: trim the newline (and leading blanks when `strip_left`), let
 * the directive parser see the line, and blank it out when it is a comment.
 */
static int process_line(struct parser *p, const char *s, size_t len, bool strip_left,
                        const char **out, size_t *out_len, bool *directive)
{
        size_t start = 0;
        int rc;

        len = trim_newline(s, len);
        if (strip_left)
                start = skip_unicode_space(s, 0, len);
        rc = parse_directive(p, s + start, len - start, directive);
        if (rc)
                return rc;
        *out = s + start;
        *out_len = is_comment(s + start, len - start) ? 0 : len - start;
        return 0;
}

/* The escape token ending a line (blanks after it allowed) continues it, unless escaped. */
static bool trim_continuation(const struct parser *p, const char *s, size_t *len)
{
        size_t n = *len;

        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
                n--;
        if (n == 0 || s[n - 1] != p->escape)
                return true;
        if (n == 1) {
                *len = 0;
                return false;
        }
        if (s[n - 2] == p->escape)
                return true;
        *len = n - 1;
        return false;
}

/* ---- physical lines ---- */

static int next_line(struct parser *p, const char **s, size_t *len, bool *ok)
{
        const char *nl;
        size_t n;

        *ok = false;
        if (p->pos >= p->len)
                return 0;
        nl = memchr(p->text + p->pos, '\n', p->len - p->pos);
        n = nl ? (size_t)(nl - (p->text + p->pos)) + 1 : p->len - p->pos;
        if (n > STEP_DOCKERFILE_MAX_LINE)
                return sw_err_set(p->err, SW_ETOOBIG,
                                  "dockerfile parse error on line %d: dockerfile line greater "
                                  "than max allowed size of %d",
                                  p->line + 1, STEP_DOCKERFILE_MAX_LINE - 1);
        if (p->line >= STEP_DOCKERFILE_MAX_LINES)
                return sw_err_set(p->err, SW_ETOOBIG, "dockerfile has more than %d lines",
                                  STEP_DOCKERFILE_MAX_LINES);
        *s = p->text + p->pos;
        *len = n;
        p->pos += n;
        *ok = true;
        return 0;
}

/* ---- JSON arrays, decoded as Go's encoding/json does ---- */

#define JSON_MAX_DEPTH 10000

static size_t json_ws(const char *s, size_t i, size_t n)
{
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
                i++;
        return i;
}

/* Scan a string starting at s[i] == '"'; returns the index after it or 0 when invalid. */
static size_t json_scan_string(const char *s, size_t i, size_t n)
{
        i++;
        while (i < n) {
                unsigned char c = (unsigned char)s[i];
                if (c == '"')
                        return i + 1;
                if (c < 0x20)
                        return 0;
                if (c == '\\') {
                        i++;
                        if (i >= n)
                                return 0;
                        switch (s[i]) {
                        case '"':
                        case '\\':
                        case '/':
                        case 'b':
                        case 'f':
                        case 'n':
                        case 'r':
                        case 't':
                                i++;
                                break;
                        case 'u':
                                for (int k = 1; k <= 4; k++)
                                        if (i + (size_t)k >= n || sw_hex_digit(s[i + k]) < 0)
                                                return 0;
                                i += 5;
                                break;
                        default:
                                return 0;
                        }
                        continue;
                }
                i++;
        }
        return 0;
}

/* Scan a number; *overflow when it does not fit a float64 (Go then fails to decode it). */
static size_t json_scan_number(const char *s, size_t i, size_t n, bool *overflow)
{
        size_t start = i;

        if (i < n && s[i] == '-')
                i++;
        if (i >= n)
                return 0;
        if (s[i] == '0') {
                i++;
        } else if (s[i] >= '1' && s[i] <= '9') {
                while (i < n && s[i] >= '0' && s[i] <= '9')
                        i++;
        } else {
                return 0;
        }
        if (i < n && s[i] == '.') {
                i++;
                if (i >= n || s[i] < '0' || s[i] > '9')
                        return 0;
                while (i < n && s[i] >= '0' && s[i] <= '9')
                        i++;
        }
        if (i < n && (s[i] == 'e' || s[i] == 'E')) {
                i++;
                if (i < n && (s[i] == '+' || s[i] == '-'))
                        i++;
                if (i >= n || s[i] < '0' || s[i] > '9')
                        return 0;
                while (i < n && s[i] >= '0' && s[i] <= '9')
                        i++;
        }
        char *copy = sw_xstrndup(s + start, i - start);
        double d = strtod(copy, NULL);
        if (isinf(d))
                *overflow = true;
        free(copy);
        return i;
}

/*
 * Check that s[0..n) is exactly one JSON value (plus blanks). Returns false
 * for a syntax error or a number Go cannot decode into a float64.
 */
static bool json_valid(const char *s, size_t n)
{
        char *stack = sw_xmalloc(JSON_MAX_DEPTH + 1);
        size_t depth = 0, i = 0, j;
        bool overflow = false, ok = false;

        enum { VALUE, AFTER, KEY } st = VALUE;
        for (;;) {
                i = json_ws(s, i, n);
                if (st == KEY) {
                        if (i >= n || s[i] != '"' || !(j = json_scan_string(s, i, n)))
                                goto out;
                        i = json_ws(s, j, n);
                        if (i >= n || s[i] != ':')
                                goto out;
                        i++;
                        st = VALUE;
                        continue;
                }
                if (st == VALUE) {
                        if (i >= n)
                                goto out;
                        char c = s[i];
                        if (c == '[' || c == '{') {
                                if (depth >= JSON_MAX_DEPTH)
                                        goto out;
                                stack[depth++] = c;
                                i = json_ws(s, i + 1, n);
                                if (i < n && s[i] == (c == '[' ? ']' : '}')) {
                                        depth--;
                                        i++;
                                        st = AFTER;
                                } else {
                                        st = c == '[' ? VALUE : KEY;
                                }
                                continue;
                        }
                        if (c == '"') {
                                j = json_scan_string(s, i, n);
                        } else if (c == '-' || (c >= '0' && c <= '9')) {
                                j = json_scan_number(s, i, n, &overflow);
                        } else if (n - i >= 4 && memcmp(s + i, "true", 4) == 0) {
                                j = i + 4;
                        } else if (n - i >= 5 && memcmp(s + i, "false", 5) == 0) {
                                j = i + 5;
                        } else if (n - i >= 4 && memcmp(s + i, "null", 4) == 0) {
                                j = i + 4;
                        } else {
                                goto out;
                        }
                        if (!j)
                                goto out;
                        i = j;
                        st = AFTER;
                        continue;
                }
                /* AFTER a value */
                if (depth == 0) {
                        ok = i == n && !overflow;
                        goto out;
                }
                if (i >= n)
                        goto out;
                if (s[i] == ',') {
                        i++;
                        st = stack[depth - 1] == '[' ? VALUE : KEY;
                } else if (s[i] == (stack[depth - 1] == '[' ? ']' : '}')) {
                        i++;
                        depth--;
                } else {
                        goto out;
                }
        }
out:
        free(stack);
        return ok;
}

/* Decode a valid JSON string at s[i] into `b`, as Go's unquote does. */
static int json_decode_string(struct sw_buf *b, const char *s, size_t i, size_t n, size_t *end,
                              struct sw_err *err)
{
        int rc = 0;
        size_t w;

        i++;
        while (!rc && i < n && s[i] != '"') {
                unsigned char c = (unsigned char)s[i];
                if (c == '\\') {
                        char e = s[i + 1];
                        i += 2;
                        switch (e) {
                        case 'b':
                                rc = sw_buf_putc(b, '\b', err);
                                break;
                        case 'f':
                                rc = sw_buf_putc(b, '\f', err);
                                break;
                        case 'n':
                                rc = sw_buf_putc(b, '\n', err);
                                break;
                        case 'r':
                                rc = sw_buf_putc(b, '\r', err);
                                break;
                        case 't':
                                rc = sw_buf_putc(b, '\t', err);
                                break;
                        case 'u': {
                                int32_t r = 0, r2 = 0;
                                for (int k = 0; k < 4; k++)
                                        r = r * 16 + sw_hex_digit(s[i + k]);
                                i += 4;
                                if (r >= 0xD800 && r < 0xE000) {
                                        bool pair = false;
                                        if (r < 0xDC00 && i + 6 <= n && s[i] == '\\' &&
                                            s[i + 1] == 'u') {
                                                int k;
                                                for (k = 0; k < 4; k++) {
                                                        int h = sw_hex_digit(s[i + 2 + k]);
                                                        if (h < 0)
                                                                break;
                                                        r2 = r2 * 16 + h;
                                                }
                                                pair = k == 4 && r2 >= 0xDC00 && r2 < 0xE000;
                                        }
                                        if (pair) {
                                                r = 0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00);
                                                i += 6;
                                        } else {
                                                r = STEP_DF_RUNE_ERROR;
                                        }
                                }
                                rc = step_df_rune_put(b, r, err);
                                break;
                        }
                        default: /* " \ / */
                                rc = sw_buf_putc(b, e, err);
                        }
                        continue;
                }
                if (c < 0x80) {
                        rc = sw_buf_putc(b, (char)c, err);
                        i++;
                        continue;
                }
                int32_t r = step_df_rune_decode(s + i, n - i, &w);
                rc = step_df_rune_put(b, r, err);
                i += w;
        }
        *end = i + 1;
        return rc;
}

enum { JSON_NOT, JSON_OK, JSON_NOT_STRINGS };

/*
 * buildkit's parseJSON: rest (left-trimmed) must be a JSON array of strings.
 * Returns JSON_OK with the node chain in *out (NULL for []), JSON_NOT when it
 * is not JSON at all, JSON_NOT_STRINGS when it is JSON but not all strings.
 */
static int parse_json(struct parser *p, struct step_dockerfile_node **out, const char *rest,
                      size_t len, int *rc)
{
        struct sw_buf b;
        struct step_dockerfile_node *top = NULL, *prev = NULL;
        size_t i = skip_unicode_space(rest, 0, len), end;
        int res = JSON_OK;

        *rc = 0;
        *out = NULL;
        if (i >= len || rest[i] != '[')
                return JSON_NOT;
        if (!json_valid(rest + i, len - i))
                return JSON_NOT;
        sw_buf_init(&b, STEP_DOCKERFILE_MAX_BYTES);
        i = json_ws(rest, i + 1, len);
        while (i < len && rest[i] != ']') {
                if (rest[i] != '"') {
                        res = JSON_NOT_STRINGS;
                        break;
                }
                sw_buf_reset(&b);
                *rc = json_decode_string(&b, rest, i, len, &end, p->err);
                if (*rc)
                        break;
                struct step_dockerfile_node *n = node_new(p, sw_buf_str(&b), b.len);
                if (prev)
                        prev->next = n;
                else
                        top = n;
                prev = n;
                i = json_ws(rest, end, len);
                if (i < len && rest[i] == ',')
                        i = json_ws(rest, i + 1, len);
        }
        sw_buf_release(&b);
        if (res == JSON_OK)
                *out = top;
        return res;
}

static int not_strings_err(struct parser *p)
{
        return sw_err_set(p->err, SW_EINVAL,
                          "when using JSON array syntax, arrays must be comprised of strings "
                          "only");
}

/* ---- argument parsers (buildkit's line_parsers.go) ---- */

/* Split on [\t\v\f\r ]+ into a chain of nodes. */
static struct step_dockerfile_node *split_ws(struct parser *p, const char *s, size_t len)
{
        struct step_dockerfile_node *top = NULL, *prev = NULL;
        size_t i = 0;

        if (len == 0)
                return NULL;
        for (;;) {
                size_t j = i;
                while (j < len && !is_re_ws(s[j]))
                        j++;
                struct step_dockerfile_node *n = node_new(p, s + i, j - i);
                if (prev)
                        prev->next = n;
                else
                        top = n;
                prev = n;
                if (j >= len)
                        break;
                while (j < len && is_re_ws(s[j]))
                        j++;
                i = j;
                if (i >= len) {
                        /* Go's Split yields a final "" after trailing blanks. */
                        prev->next = node_new(p, "", 0);
                        break;
                }
        }
        return top;
}

/*
 * buildkit's parseWords: split at white space outside quotes, keeping quotes
 * and escapes in the words (they are processed later, by the lexer).
 */
static int parse_words(struct strv *out, const char *rest, size_t len, char esc, struct sw_err *err)
{
        enum { IN_SPACES, IN_WORD, IN_QUOTE } phase = IN_SPACES;
        struct sw_buf b;
        int32_t quote = 0, ch = 0;
        bool blank_ok = false;
        size_t pos, w = 0;
        int rc = 0;

        sw_buf_init(&b, STEP_DOCKERFILE_MAX_BYTES);
        for (pos = 0; !rc && pos <= len; pos += w) {
                if (pos != len)
                        ch = step_df_rune_decode(rest + pos, len - pos, &w);
                if (phase == IN_SPACES) {
                        if (pos == len)
                                break;
                        if (step_df_is_space(ch))
                                continue;
                        phase = IN_WORD;
                }
                if ((phase == IN_WORD || phase == IN_QUOTE) && pos == len) {
                        if (blank_ok || b.len > 0)
                                strv_push(out, sw_buf_str(&b), b.len);
                        break;
                }
                if (phase == IN_WORD) {
                        if (step_df_is_space(ch)) {
                                phase = IN_SPACES;
                                if (blank_ok || b.len > 0)
                                        strv_push(out, sw_buf_str(&b), b.len);
                                sw_buf_reset(&b);
                                blank_ok = false;
                                continue;
                        }
                        if (ch == '\'' || ch == '"') {
                                quote = ch;
                                blank_ok = true;
                                phase = IN_QUOTE;
                        }
                        if (ch == esc) {
                                if (pos + w == len)
                                        continue;
                                rc = step_df_rune_put(&b, ch, err);
                                pos += w;
                                ch = step_df_rune_decode(rest + pos, len - pos, &w);
                        }
                        if (!rc)
                                rc = step_df_rune_put(&b, ch, err);
                        continue;
                }
                /* IN_QUOTE */
                if (ch == quote)
                        phase = IN_WORD;
                if (ch == esc && quote != '\'') {
                        if (pos + w == len) {
                                phase = IN_WORD;
                                continue;
                        }
                        pos += w;
                        rc = step_df_rune_put(&b, ch, err);
                        ch = step_df_rune_decode(rest + pos, len - pos, &w);
                }
                if (!rc)
                        rc = step_df_rune_put(&b, ch, err);
        }
        sw_buf_release(&b);
        return rc;
}

static struct step_dockerfile_node *key_value(struct parser *p, const char *k, size_t kl,
                                              const char *v, size_t vl, const char *sep)
{
        struct step_dockerfile_node *n = node_new(p, k, kl);
        n->next = node_new(p, v, vl);
        n->next->next = node_new(p, sep, strlen(sep));
        return n;
}

/* ENV and LABEL: `KEY name value` (legacy) or `KEY a=b c=d ...`. */
static int parse_name_val(struct parser *p, struct step_dockerfile_node **out, const char *rest,
                          size_t len, const char *key)
{
        struct strv words = {0};
        struct step_dockerfile_node *top = NULL, *last = NULL;
        int rc = parse_words(&words, rest, len, p->escape, p->err);

        *out = NULL;
        if (rc || words.n == 0)
                goto out;
        if (!memchr(words.s[0], '=', words.len[0])) {
                size_t i = 0, j;
                while (i < len && !is_re_ws(rest[i]))
                        i++;
                if (i >= len) {
                        rc = sw_err_set(p->err, SW_EINVAL, "%s must have two arguments", key);
                        goto out;
                }
                j = i;
                while (j < len && is_re_ws(rest[j]))
                        j++;
                *out = key_value(p, rest, i, rest + j, len - j, "");
                goto out;
        }
        for (size_t i = 0; i < words.n; i++) {
                const char *eq = memchr(words.s[i], '=', words.len[i]);
                if (!eq) {
                        struct sw_buf q;
                        sw_buf_init(&q, 0);
                        step_df_quote(&q, words.s[i], words.len[i], NULL);
                        rc = sw_err_set(p->err, SW_EINVAL,
                                        "Syntax error - can't find = in %s. Must be of the "
                                        "form: name=value",
                                        sw_buf_str(&q));
                        sw_buf_release(&q);
                        goto out;
                }
                size_t kl = (size_t)(eq - words.s[i]);
                struct step_dockerfile_node *n =
                        key_value(p, words.s[i], kl, eq + 1, words.len[i] - kl - 1, "=");
                if (last)
                        last->next = n;
                else
                        top = n;
                last = n->next->next;
        }
        *out = top;
out:
        strv_release(&words);
        return rc;
}

static int parse_maybe_json(struct parser *p, struct step_dockerfile_node **out, bool *json,
                            const char *rest, size_t len)
{
        int rc, res;

        *out = NULL;
        if (len == 0)
                return 0;
        res = parse_json(p, out, rest, len, &rc);
        if (rc)
                return rc;
        if (res == JSON_OK) {
                *json = true;
                return 0;
        }
        if (res == JSON_NOT_STRINGS)
                return not_strings_err(p);
        *out = node_new(p, rest, len);
        return 0;
}

static int parse_maybe_json_to_list(struct parser *p, struct step_dockerfile_node **out, bool *json,
                                    const char *rest, size_t len)
{
        int rc, res = parse_json(p, out, rest, len, &rc);

        if (rc)
                return rc;
        if (res == JSON_OK) {
                *json = true;
                return 0;
        }
        if (res == JSON_NOT_STRINGS)
                return not_strings_err(p);
        *out = split_ws(p, rest, len);
        return 0;
}

/* HEALTHCHECK: a type word, then a command in shell or JSON form (bytes as runes, like Go). */
static int parse_health(struct parser *p, struct step_dockerfile_node **out, bool *json,
                        const char *rest, size_t len)
{
        size_t sep = 0, next;
        struct step_dockerfile_node *cmd = NULL;
        int rc;

        *out = NULL;
        while (sep < len && !step_df_is_space((unsigned char)rest[sep]))
                sep++;
        next = sep;
        while (next < len && step_df_is_space((unsigned char)rest[next]))
                next++;
        if (sep == 0)
                return 0;
        rc = parse_maybe_json(p, &cmd, json, rest + next, len - next);
        if (rc)
                return rc;
        *out = node_new(p, rest, sep);
        (*out)->next = cmd;
        return 0;
}

/*
 * buildkit's extractBuilderFlags: leading --words (quotes and escapes
 * processed) are flags; "--" alone ends them. Bytes are taken one at a time
 * and written as runes, exactly as Go's code does.
 */
static int extract_flags(struct parser *p, struct strv *flags, const char *line, size_t len,
                         size_t *args_start)
{
        enum { IN_SPACES, IN_WORD, IN_QUOTE } phase = IN_SPACES;
        struct sw_buf b;
        unsigned char ch = 0, quote = 0;
        bool blank_ok = false;
        size_t pos;
        int rc = 0;

        *args_start = len;
        sw_buf_init(&b, STEP_DOCKERFILE_MAX_BYTES);
        for (pos = 0; !rc && pos <= len; pos++) {
                if (pos != len)
                        ch = (unsigned char)line[pos];
                if (phase == IN_SPACES) {
                        if (pos == len)
                                break;
                        if (step_df_is_space(ch))
                                continue;
                        if (ch != '-' || pos + 1 == len || line[pos + 1] != '-') {
                                *args_start = pos;
                                goto out;
                        }
                        phase = IN_WORD;
                }
                if ((phase == IN_WORD || phase == IN_QUOTE) && pos == len) {
                        bool dashdash = b.len == 2 && memcmp(b.data, "--", 2) == 0;
                        if (!dashdash && (blank_ok || b.len > 0))
                                strv_push(flags, sw_buf_str(&b), b.len);
                        break;
                }
                if (phase == IN_WORD) {
                        if (step_df_is_space(ch)) {
                                phase = IN_SPACES;
                                if (b.len == 2 && memcmp(b.data, "--", 2) == 0) {
                                        *args_start = pos;
                                        goto out;
                                }
                                if (blank_ok || b.len > 0)
                                        strv_push(flags, sw_buf_str(&b), b.len);
                                sw_buf_reset(&b);
                                blank_ok = false;
                                continue;
                        }
                        if (ch == '\'' || ch == '"') {
                                quote = ch;
                                blank_ok = true;
                                phase = IN_QUOTE;
                                continue;
                        }
                        if (ch == (unsigned char)p->escape) {
                                if (pos + 1 == len)
                                        continue;
                                pos++;
                                ch = (unsigned char)line[pos];
                        }
                        rc = step_df_rune_put(&b, ch, p->err);
                        continue;
                }
                /* IN_QUOTE */
                if (ch == quote) {
                        phase = IN_WORD;
                        continue;
                }
                if (ch == (unsigned char)p->escape) {
                        if (pos + 1 == len) {
                                phase = IN_WORD;
                                continue;
                        }
                        pos++;
                        ch = (unsigned char)line[pos];
                }
                rc = step_df_rune_put(&b, ch, p->err);
        }
out:
        sw_buf_release(&b);
        return rc;
}

static bool ieq(const char *s, size_t len, const char *lit)
{
        size_t n = strlen(lit);

        if (len != n)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c >= 'A' && c <= 'Z')
                        c = (char)(c + 32);
                if (c != lit[i])
                        return false;
        }
        return true;
}

/* Split one logical line and dispatch its arguments to the instruction's parser. */
static int node_from_line(struct parser *p, struct step_dockerfile_node **out, const char *line,
                          size_t len, int depth)
{
        struct strv flags = {0};
        size_t s = 0, e = len, ce, as = 0, ae = 0;
        const char *cmd, *args;
        size_t cmd_len, args_len;
        struct step_dockerfile_node *n = NULL, *next = NULL;
        bool json = false;
        int rc = 0;

        if (depth > STEP_DOCKERFILE_MAX_NESTING)
                return sw_err_set(p->err, SW_ETOOBIG, "instructions nested more than %d deep",
                                  STEP_DOCKERFILE_MAX_NESTING);
        step_df_trim_space(line, &s, &e);
        ce = s;
        while (ce < e && !is_re_ws(line[ce]))
                ce++;
        cmd = line + s;
        cmd_len = ce - s;
        if (ce < e) {
                size_t fs = ce;
                while (fs < e && is_re_ws(line[fs]))
                        fs++;
                size_t rel;
                rc = extract_flags(p, &flags, line + fs, e - fs, &rel);
                if (rc)
                        goto out;
                as = fs + rel;
                ae = e;
                step_df_trim_space(line, &as, &ae);
        }
        args = line + as;
        args_len = ae > as ? ae - as : 0;

        if (ieq(cmd, cmd_len, "add") || ieq(cmd, cmd_len, "copy") || ieq(cmd, cmd_len, "volume")) {
                rc = parse_maybe_json_to_list(p, &next, &json, args, args_len);
        } else if (ieq(cmd, cmd_len, "cmd") || ieq(cmd, cmd_len, "entrypoint") ||
                   ieq(cmd, cmd_len, "run") || ieq(cmd, cmd_len, "shell")) {
                rc = parse_maybe_json(p, &next, &json, args, args_len);
        } else if (ieq(cmd, cmd_len, "arg")) {
                struct strv words = {0};
                struct step_dockerfile_node *prev = NULL;
                rc = parse_words(&words, args, args_len, p->escape, p->err);
                for (size_t i = 0; !rc && i < words.n; i++) {
                        struct step_dockerfile_node *w = node_new(p, words.s[i], words.len[i]);
                        if (prev)
                                prev->next = w;
                        else
                                next = w;
                        prev = w;
                }
                strv_release(&words);
        } else if (ieq(cmd, cmd_len, "env")) {
                rc = parse_name_val(p, &next, args, args_len, "ENV");
        } else if (ieq(cmd, cmd_len, "label")) {
                rc = parse_name_val(p, &next, args, args_len, "LABEL");
        } else if (ieq(cmd, cmd_len, "expose") || ieq(cmd, cmd_len, "from")) {
                next = split_ws(p, args, args_len);
        } else if (ieq(cmd, cmd_len, "healthcheck")) {
                rc = parse_health(p, &next, &json, args, args_len);
        } else if (ieq(cmd, cmd_len, "maintainer") || ieq(cmd, cmd_len, "stopsignal") ||
                   ieq(cmd, cmd_len, "user") || ieq(cmd, cmd_len, "workdir")) {
                next = args_len ? node_new(p, args, args_len) : NULL;
        } else if (ieq(cmd, cmd_len, "onbuild")) {
                if (args_len) {
                        struct step_dockerfile_node *child = NULL;
                        rc = node_from_line(p, &child, args, args_len, depth + 1);
                        if (!rc) {
                                next = node_new(p, NULL, 0);
                                next->children =
                                        sw_arena_alloc(p->a, sizeof(struct step_dockerfile_node *));
                                next->children[0] = child;
                                next->n_children = 1;
                        }
                }
        } else {
                /* Unknown instructions parse (buildkit refuses them later, when building). */
                next = node_new(p, NULL, 0);
        }
        if (rc)
                goto out;

        n = node_new(p, cmd, cmd_len);
        n->next = next;
        n->json = json;
        n->original = sw_arena_strndup(p->a, line, len);
        if (flags.n) {
                const char **f = sw_arena_alloc(p->a, flags.n * sizeof(char *));
                for (size_t i = 0; i < flags.n; i++)
                        f[i] = sw_arena_strndup(p->a, flags.s[i], flags.len[i]);
                n->flags = f;
                n->n_flags = flags.n;
        }
        *out = n;
out:
        strv_release(&flags);
        return rc;
}

/* ---- heredocs ---- */

static bool can_contain_heredoc(const struct step_dockerfile_node *n)
{
        if (ieq(n->value, n->value_len, "onbuild") && n->next && n->next->n_children > 0)
                n = n->next->children[0];
        if (!ieq(n->value, n->value_len, "add") && !ieq(n->value, n->value_len, "copy") &&
            !ieq(n->value, n->value_len, "run"))
                return false;
        return !n->json;
}

static size_t count_quotes(const char *s)
{
        size_t n = 0;

        for (; *s; s++)
                n += *s == '\'' || *s == '"';
        return n;
}

/*
 * buildkit's ParseHeredoc on one word: ^(\d*)<<(-?)\s*([^<]*)$ and a
 * delimiter that lexes to exactly one word. Returns 1 with *h filled, 0 when
 * the word is no heredoc, or an error.
 */
static int heredoc_from_word(struct parser *p, struct step_dockerfile_heredoc *h, const char *word)
{
        struct step_shlex_options o = STEP_SHLEX_OPTIONS_INIT;
        char **words = NULL, **raw = NULL;
        size_t nw = 0, nr = 0, i = 0, rest;
        unsigned long long fd = 0;
        bool saturated = false;
        int rc;

        while (word[i] >= '0' && word[i] <= '9') {
                unsigned d = (unsigned)(word[i] - '0');
                if (fd > (ULLONG_MAX - d) / 10)
                        saturated = true;
                else
                        fd = fd * 10 + d;
                i++;
        }
        if (saturated)
                fd = ULLONG_MAX;
        if (word[i] != '<' || word[i + 1] != '<')
                return 0;
        i += 2;
        h->chomp = word[i] == '-';
        if (h->chomp)
                i++;
        while (word[i] && is_perl_space(word[i]))
                i++;
        rest = i;
        if (strchr(word + rest, '<') || word[rest] == '\0')
                return 0;
        o.skip_unset_env = true;
        rc = step_shlex_words(&words, &nw, &o, word + rest, strlen(word + rest), NULL, p->err);
        if (rc)
                goto out;
        if (nw != 1) {
                rc = 0;
                goto out;
        }
        o.raw_quotes = true;
        rc = step_shlex_words(&raw, &nr, &o, word + rest, strlen(word + rest), NULL, p->err);
        if (rc)
                goto out;
        if (nr != nw) {
                rc = sw_err_set(p->err, SW_EINVAL,
                                "internal lexing of heredoc produced inconsistent results: %s",
                                word + rest);
                goto out;
        }
        h->name = sw_arena_strdup(p->a, words[0]);
        h->expand = count_quotes(words[0]) == count_quotes(raw[0]);
        h->fd = fd;
        rc = 1;
out:
        step_shlex_words_free(words);
        step_shlex_words_free(raw);
        return rc;
}

/* Find the heredocs a line opens and read their bodies from the next lines. */
static int read_heredocs(struct parser *p, struct step_dockerfile_node *n, const char *line,
                         size_t len, int start_line)
{
        struct step_shlex_options o = STEP_SHLEX_OPTIONS_INIT;
        struct sw_err ignored = SW_ERR_INIT;
        struct step_dockerfile_heredoc docs[16];
        char **words = NULL;
        size_t nw = 0, nd = 0;
        struct sw_buf body;
        int rc = 0;

        o.raw_quotes = true;
        o.raw_escapes = true;
        o.skip_unset_env = true;
        /* buildkit ignores lexing errors here: such a line simply has no heredoc. */
        if (step_shlex_words(&words, &nw, &o, line, len, NULL, &ignored) != 0)
                return 0;
        struct step_dockerfile_heredoc *all = NULL;
        for (size_t i = 0; i < nw; i++) {
                struct step_dockerfile_heredoc h = {0};
                rc = heredoc_from_word(p, &h, words[i]);
                if (rc < 0)
                        goto out;
                if (rc == 0)
                        continue;
                rc = 0;
                if (nd == sizeof(docs) / sizeof(docs[0])) {
                        rc = sw_err_set(p->err, SW_ETOOBIG, "more than %zu heredocs on one line",
                                        nd);
                        goto out;
                }
                docs[nd++] = h;
        }
        if (nd == 0)
                goto out;
        all = sw_arena_alloc(p->a, nd * sizeof(*all));
        sw_buf_init(&body, STEP_DOCKERFILE_MAX_HEREDOC);
        for (size_t d = 0; d < nd; d++) {
                bool terminated = false, ok;
                const char *s;
                size_t sl, tl = strlen(docs[d].name);

                sw_buf_reset(&body);
                for (;;) {
                        rc = next_line(p, &s, &sl, &ok);
                        if (rc || !ok)
                                break;
                        p->line++;
                        size_t k = 0, e = trim_newline(s, sl);
                        if (docs[d].chomp)
                                while (k < e && s[k] == '\t')
                                        k++;
                        if (e - k == tl && memcmp(s + k, docs[d].name, tl) == 0) {
                                terminated = true;
                                break;
                        }
                        rc = sw_buf_append(&body, s, sl, p->err);
                        if (rc) {
                                sw_err_clear(p->err);
                                rc = sw_err_set(p->err, SW_ETOOBIG,
                                                "dockerfile parse error on line %d: heredoc "
                                                "larger than %zu bytes",
                                                start_line, STEP_DOCKERFILE_MAX_HEREDOC);
                                break;
                        }
                }
                if (rc)
                        break;
                if (!terminated) {
                        rc = sw_err_set(p->err, SW_EINVAL,
                                        "dockerfile parse error on line %d: unterminated heredoc",
                                        start_line);
                        break;
                }
                all[d] = docs[d];
                all[d].content = sw_arena_strndup(p->a, sw_buf_str(&body), body.len);
                all[d].content_len = body.len;
        }
        sw_buf_release(&body);
        if (!rc) {
                n->heredocs = all;
                n->n_heredocs = nd;
        }
out:
        step_shlex_words_free(words);
        return rc;
}

/* ---- the main loop ---- */

static void comment_push(struct strv *c, const char *s, size_t len)
{
        /* strings.TrimSpace(line[1:]): the first byte goes, whatever it is. */
        size_t a = 1, b = len;

        step_df_trim_space(s, &a, &b);
        if (a >= b) {
                strv_release(c);
                return;
        }
        strv_push(c, s + a, b - a);
}

static int parse_all(struct parser *p)
{
        struct strv comments = {0};
        struct step_dockerfile_node **kids = NULL;
        size_t nkids = 0, capkids = 0;
        struct sw_buf buf;
        struct step_dockerfile_node *root = p->df->ast;
        const char *s, *t;
        size_t sl, tl;
        bool ok, directive;
        int rc = 0;

        sw_buf_init(&buf, STEP_DOCKERFILE_MAX_BYTES);
        root->start_line = -1;
        for (;;) {
                rc = next_line(p, &s, &sl, &ok);
                if (rc || !ok)
                        break;
                if (p->line == 0 && sl >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
                        s += 3;
                        sl -= 3;
                }
                if (is_comment(s, sl))
                        comment_push(&comments, s, sl);
                rc = process_line(p, s, sl, true, &t, &tl, &directive);
                if (directive && comments.n > 0) {
                        free(comments.s[comments.n - 1]);
                        comments.n--;
                }
                if (rc) {
                        sw_err_wrap(p->err, "dockerfile parse error on line %d", p->line + 1);
                        break;
                }
                p->line++;
                int start_line = p->line;
                bool end = trim_continuation(p, t, &tl);
                if (end && tl == 0)
                        continue;
                sw_buf_reset(&buf);
                rc = sw_buf_append(&buf, t, tl, p->err);
                bool empty_continuation = false;
                while (!rc && !end) {
                        rc = next_line(p, &s, &sl, &ok);
                        if (rc || !ok)
                                break;
                        rc = process_line(p, s, sl, false, &t, &tl, &directive);
                        if (rc) {
                                sw_err_wrap(p->err, "dockerfile parse error on line %d",
                                            p->line + 1);
                                break;
                        }
                        p->line++;
                        if (is_comment(s, sl))
                                continue;
                        if (skip_unicode_space(t, 0, tl) == tl) {
                                empty_continuation = true;
                                continue;
                        }
                        end = trim_continuation(p, t, &tl);
                        rc = sw_buf_append(&buf, t, tl, p->err);
                }
                if (rc)
                        break;
                if (empty_continuation)
                        p->df->n_warnings++;

                struct step_dockerfile_node *child = NULL;
                rc = node_from_line(p, &child, sw_buf_str(&buf), buf.len, 0);
                if (rc) {
                        sw_err_wrap(p->err, "dockerfile parse error on line %d", start_line);
                        break;
                }
                if (comments.n) {
                        const char **c = sw_arena_alloc(p->a, comments.n * sizeof(char *));
                        for (size_t i = 0; i < comments.n; i++)
                                c[i] = sw_arena_strndup(p->a, comments.s[i], comments.len[i]);
                        child->comments = c;
                        child->n_comments = comments.n;
                }
                if (can_contain_heredoc(child) && strstr(sw_buf_str(&buf), "<<")) {
                        rc = read_heredocs(p, child, sw_buf_str(&buf), buf.len, start_line);
                        if (rc) {
                                if (strncmp(p->err->msg, "dockerfile parse error", 22) != 0)
                                        sw_err_wrap(p->err, "dockerfile parse error on line %d",
                                                    start_line);
                                break;
                        }
                }
                child->start_line = start_line;
                child->end_line = p->line;
                if (root->start_line < 0)
                        root->start_line = start_line;
                root->end_line = p->line;
                if (nkids == capkids) {
                        capkids = capkids ? capkids * 2 : 32;
                        kids = sw_xrealloc(kids, capkids * sizeof(*kids));
                }
                kids[nkids++] = child;
                strv_release(&comments);
        }
        if (!rc && root->start_line < 0)
                rc = sw_err_set(p->err, SW_EINVAL,
                                "dockerfile parse error on line %d: file with no instructions",
                                p->line > 0 ? p->line : 1);
        if (!rc) {
                root->children = sw_arena_alloc(p->a, nkids * sizeof(*kids));
                memcpy(root->children, kids, nkids * sizeof(*kids));
                root->n_children = nkids;
        }
        free(kids);
        strv_release(&comments);
        sw_buf_release(&buf);
        return rc;
}

int step_dockerfile_parse(struct step_dockerfile **out, const char *text, size_t len,
                          struct sw_err *err)
{
        struct parser p = {0};
        struct step_dockerfile *df = NULL;
        struct sw_arena *a = NULL;
        const char *nul;
        int rc;

        if (len > STEP_DOCKERFILE_MAX_BYTES)
                return sw_err_set(err, SW_ETOOBIG, "dockerfile is larger than %zu bytes",
                                  STEP_DOCKERFILE_MAX_BYTES);
        nul = len ? memchr(text, '\0', len) : NULL;
        if (nul) {
                int line = 1;
                for (const char *c = text; c < nul; c++)
                        line += *c == '\n';
                return sw_err_set(err, SW_EINVAL,
                                  "dockerfile parse error on line %d: NUL byte in dockerfile",
                                  line);
        }
        a = sw_arena_new();
        df = sw_arena_alloc(a, sizeof(*df));
        df->arena = a;
        df->escape = '\\';
        df->ast = sw_arena_alloc(a, sizeof(*df->ast));
        df->ast->value = "";
        p.a = a;
        p.df = df;
        p.text = text ? text : "";
        p.len = len;
        p.escape = '\\';
        p.err = err;
        rc = parse_all(&p);
        if (rc) {
                sw_arena_free(a);
                return rc;
        }
        df->escape = p.escape;
        *out = df;
        return 0;
}

void step_dockerfile_free(struct step_dockerfile *df)
{
        if (df)
                sw_arena_free(df->arena);
}

/* ---- Dump ---- */

static int dump_node(struct sw_buf *out, const struct step_dockerfile_node *n, struct sw_err *err)
{
        struct sw_buf b;
        size_t s, e;
        int rc;

        sw_buf_init(&b, STEP_DOCKERFILE_MAX_BYTES * 8);
        rc = step_df_lower(&b, n->value, n->value_len, err);
        if (!rc && n->n_flags) {
                rc = sw_buf_puts(&b, " [", err);
                for (size_t i = 0; !rc && i < n->n_flags; i++) {
                        if (i)
                                rc = sw_buf_putc(&b, ' ', err);
                        if (!rc)
                                rc = step_df_quote(&b, n->flags[i], strlen(n->flags[i]), err);
                }
                if (!rc)
                        rc = sw_buf_putc(&b, ']', err);
        }
        for (size_t i = 0; !rc && i < n->n_children; i++) {
                rc = sw_buf_putc(&b, '(', err);
                if (!rc)
                        rc = dump_node(&b, n->children[i], err);
                if (!rc)
                        rc = sw_buf_puts(&b, ")\n", err);
        }
        for (const struct step_dockerfile_node *x = n->next; !rc && x; x = x->next) {
                rc = sw_buf_putc(&b, ' ', err);
                if (rc)
                        break;
                if (x->n_children)
                        rc = dump_node(&b, x, err);
                else
                        rc = step_df_quote(&b, x->value, x->value_len, err);
        }
        if (!rc) {
                s = 0;
                e = b.len;
                step_df_trim_space(sw_buf_str(&b), &s, &e);
                rc = sw_buf_append(out, sw_buf_str(&b) + s, e - s, err);
        }
        sw_buf_release(&b);
        return rc;
}

int step_dockerfile_dump(struct sw_buf *out, const struct step_dockerfile_node *node,
                         struct sw_err *err)
{
        return dump_node(out, node, err);
}
