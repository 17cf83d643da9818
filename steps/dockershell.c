/*
 * dockershell.c - buildkit's shell-word lexer: quotes, escapes and variable
 * expansion for ARG, ENV and the instructions that expand them.
 *
 * This follows frontend/dockerfile/shell/lex.go rule for rule, quirks
 * included, because a Dockerfile must mean here what it means to buildkit:
 *  - '...' keeps everything literally; "..." expands $ and lets the escape
 *    token escape only ", $ and itself; outside quotes the escape token takes
 *    the next character literally (and vanishes at the end of the word);
 *  - $NAME, ${NAME}, ${NAME:-w} ${NAME-w} ${NAME:+w} ${NAME+w} ${NAME:?w}
 *    ${NAME?w}, ${NAME#p} ${NAME##p} ${NAME%p} ${NAME%%p}, ${NAME/p/r} and
 *    ${NAME//p/r}; $1, $@, $# ... are never set;
 *  - in word-splitting mode, expanded values are split at white space but
 *    quoted text is not, and empty quoted words vanish;
 *  - the buffer that collects the current word is shared with nested
 *    ${...} expansions, as in buildkit (which makes text before a nested
 *    modifier vanish from the word list; ProcessWords callers never rely on
 *    that, but heredoc detection does see it).
 * Input is decoded as UTF-8 the way Go's text/scanner does (invalid bytes
 * become U+FFFD, a leading byte-order mark is skipped).
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/mem.h"
#include "steps/dockerfile.h"
#include "steps/dockerfile_int.h"
#include "common/banned.h"

#define LEX_EOF (-1)
#define LEX_MAX_DEPTH 64
#define LEX_MAX_STEPS 4000000L

struct lex {
        const struct step_shlex_options *o;
        const struct step_shlex_env *env;
        const char *src;
        size_t len;
        size_t pos;
        bool raw_escapes;
        int depth;
        struct sw_buf words_buf; /* shared by every nesting level, as in buildkit */
        struct sw_err *err;
};

struct words {
        char **v;
        size_t n, cap;
        bool in_word;
};

static int32_t lex_peek(struct lex *l)
{
        size_t w;

        if (l->pos >= l->len)
                return LEX_EOF;
        return step_df_rune_decode(l->src + l->pos, l->len - l->pos, &w);
}

static int32_t lex_next(struct lex *l)
{
        size_t w;
        int32_t r;

        if (l->pos >= l->len)
                return LEX_EOF;
        r = step_df_rune_decode(l->src + l->pos, l->len - l->pos, &w);
        l->pos += w;
        return r;
}

static void words_release(struct words *w)
{
        for (size_t i = 0; i < w->n; i++)
                free(w->v[i]);
        free(w->v);
        w->v = NULL;
        w->n = w->cap = 0;
}

static void words_push(struct words *w, struct sw_buf *b)
{
        if (w->n + 2 > w->cap) {
                w->cap = w->cap ? w->cap * 2 : 8;
                w->v = sw_xrealloc(w->v, w->cap * sizeof(char *));
        }
        w->v[w->n++] = sw_xstrndup(sw_buf_str(b), b->len);
        w->v[w->n] = NULL;
        sw_buf_reset(b);
}

static int words_add_raw_char(struct lex *l, struct words *w, int32_t r)
{
        w->in_word = true;
        return step_df_rune_put(&l->words_buf, r, l->err);
}

static int words_add_char(struct lex *l, struct words *w, int32_t r)
{
        if (step_df_is_space(r)) {
                if (w->in_word && l->words_buf.len != 0) {
                        words_push(w, &l->words_buf);
                        w->in_word = false;
                }
                return 0;
        }
        return words_add_raw_char(l, w, r);
}

static int words_add_string(struct lex *l, struct words *w, const char *s, size_t len)
{
        size_t i = 0, n;
        int rc = 0;

        while (!rc && i < len) {
                int32_t r = step_df_rune_decode(s + i, len - i, &n);
                rc = words_add_char(l, w, r);
                i += n;
        }
        return rc;
}

static int words_add_raw_string(struct lex *l, struct words *w, const char *s, size_t len)
{
        w->in_word = true;
        return sw_buf_append(&l->words_buf, s, len, l->err);
}

static void words_finish(struct lex *l, struct words *w)
{
        if (l->words_buf.len > 0) {
                words_push(w, &l->words_buf);
                w->in_word = false;
        }
}

static int process_stop_on(struct lex *l, struct sw_buf *result, struct words *words, int32_t stop,
                           bool raw_escapes);

static int put_rune(struct lex *l, struct sw_buf *b, int32_t r)
{
        return step_df_rune_put(b, r, l->err);
}

static int process_single_quote(struct lex *l, struct sw_buf *out)
{
        int32_t ch = lex_next(l);
        int rc = 0;

        if (l->o->raw_quotes)
                rc = put_rune(l, out, ch);
        while (!rc) {
                ch = lex_next(l);
                if (ch == LEX_EOF)
                        return sw_err_set(l->err, SW_EINVAL,
                                          "unexpected end of statement while looking for "
                                          "matching single-quote");
                if (ch == '\'') {
                        if (l->o->raw_quotes)
                                rc = put_rune(l, out, ch);
                        return rc;
                }
                rc = put_rune(l, out, ch);
        }
        return rc;
}

static int process_dollar(struct lex *l, struct sw_buf *out);

static int process_double_quote(struct lex *l, struct sw_buf *out)
{
        int32_t ch = lex_next(l), pk;
        int rc = 0;

        if (l->o->raw_quotes)
                rc = put_rune(l, out, ch);
        while (!rc) {
                pk = lex_peek(l);
                if (pk == LEX_EOF)
                        return sw_err_set(l->err, SW_EINVAL,
                                          "unexpected end of statement while looking for "
                                          "matching double-quote");
                if (pk == '"') {
                        ch = lex_next(l);
                        if (l->o->raw_quotes)
                                rc = put_rune(l, out, ch);
                        return rc;
                }
                if (pk == '$') {
                        rc = process_dollar(l, out);
                        continue;
                }
                ch = lex_next(l);
                if (ch == (unsigned char)l->o->escape) {
                        if (l->raw_escapes)
                                rc = put_rune(l, out, ch);
                        pk = lex_peek(l);
                        if (pk == LEX_EOF)
                                continue;
                        if (pk == '"' || pk == '$' || pk == (unsigned char)l->o->escape)
                                ch = lex_next(l);
                }
                if (!rc)
                        rc = put_rune(l, out, ch);
        }
        return rc;
}

/* Special parameters of POSIX sh: never set in a Dockerfile. */
static bool is_special_param(int32_t r)
{
        return r == '@' || r == '*' || r == '#' || r == '?' || r == '-' || r == '$' || r == '!' ||
               r == '0';
}

static int process_name(struct lex *l, struct sw_buf *name)
{
        int rc = 0;

        while (!rc && lex_peek(l) != LEX_EOF) {
                int32_t ch = lex_peek(l);
                if (name->len == 0 && step_df_is_digit(ch)) {
                        while (!rc && lex_peek(l) != LEX_EOF && step_df_is_digit(lex_peek(l)))
                                rc = put_rune(l, name, lex_next(l));
                        return rc;
                }
                if (name->len == 0 && is_special_param(ch))
                        return put_rune(l, name, lex_next(l));
                if (!step_df_is_letter(ch) && !step_df_is_digit(ch) && ch != '_')
                        break;
                rc = put_rune(l, name, lex_next(l));
        }
        return rc;
}

/* Look a variable up: the last "NAME=..." entry wins; "NAME" alone is "". */
static bool env_get(const struct lex *l, const char *name, size_t name_len, const char **val,
                    size_t *val_len)
{
        if (!l->env)
                return false;
        for (size_t i = l->env->n_vars; i-- > 0;) {
                const char *kv = l->env->vars[i];
                const char *eq = strchr(kv, '=');
                size_t klen = eq ? (size_t)(eq - kv) : strlen(kv);
                if (klen == name_len && memcmp(kv, name, klen) == 0) {
                        *val = eq ? eq + 1 : "";
                        *val_len = strlen(*val);
                        return true;
                }
        }
        return false;
}

/* ---- ${NAME#pattern} and friends: shell patterns, matched like Go's regexp ---- */

enum { PAT_LIT, PAT_ANY, PAT_STAR };

struct pat_tok {
        int kind;
        int32_t r;
};

struct pattern {
        struct pat_tok *t;
        size_t n;
        bool greedy;
        long steps;
};

/* Compile like buildkit's convertShellPatternToRegex: '*', '?', and '\' escaping *, ? or \. */
static int pattern_compile(struct pattern *p, const char *s, size_t len, bool greedy,
                           struct sw_err *err)
{
        size_t i = 0, w;

        p->t = sw_xcalloc(len + 1, sizeof(*p->t));
        p->n = 0;
        p->greedy = greedy;
        p->steps = 0;
        if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
                i = 3;
        while (i < len) {
                int32_t r = step_df_rune_decode(s + i, len - i, &w);
                i += w;
                if (r == '*') {
                        p->t[p->n++].kind = PAT_STAR;
                        continue;
                }
                if (r == '?') {
                        p->t[p->n++].kind = PAT_ANY;
                        continue;
                }
                if (r == '\\') {
                        if (i < len && (s[i] == '}' || s[i] == '/'))
                                continue;
                        int32_t e = i < len ? step_df_rune_decode(s + i, len - i, &w) : LEX_EOF;
                        if (e != '*' && e != '?' && e != '\\') {
                                free(p->t);
                                p->t = NULL;
                                return sw_err_set(err, SW_EINVAL,
                                                  "invalid pattern (%.*s) in substitution: "
                                                  "invalid escape",
                                                  (int)len, s);
                        }
                        i += w;
                        r = e;
                }
                p->t[p->n].kind = PAT_LIT;
                p->t[p->n++].r = r;
        }
        return 0;
}

/*
 * Backtracking match of tokens[ti..] at runes[si..], in the order a Perl-style
 * regexp tries alternatives (greedy stars longest first, lazy stars shortest
 * first), so that the first match found is the one Go's regexp reports.
 * '?' and '*' do not match a newline, like '.' in Go. Returns the end index,
 * -1 for no match, -2 when the step budget ran out.
 */
static long pattern_match_at(struct pattern *p, size_t ti, const int32_t *runes, size_t nr,
                             size_t si)
{
        while (ti < p->n) {
                if (++p->steps > LEX_MAX_STEPS)
                        return -2;
                const struct pat_tok *t = &p->t[ti];
                if (t->kind == PAT_STAR) {
                        size_t max = si;
                        while (max < nr && runes[max] != '\n')
                                max++;
                        if (p->greedy) {
                                for (size_t k = max + 1; k-- > si;) {
                                        long e = pattern_match_at(p, ti + 1, runes, nr, k);
                                        if (e != -1)
                                                return e;
                                }
                        } else {
                                for (size_t k = si; k <= max; k++) {
                                        long e = pattern_match_at(p, ti + 1, runes, nr, k);
                                        if (e != -1)
                                                return e;
                                }
                        }
                        return -1;
                }
                if (si >= nr)
                        return -1;
                if (t->kind == PAT_ANY ? runes[si] == '\n' : runes[si] != t->r)
                        return -1;
                si++;
                ti++;
        }
        return (long)si;
}

/* Decode `s` into runes; offs[i] is the byte offset of rune i, offs[n] == len. */
static size_t decode_runes(int32_t **runes, size_t **offs, const char *s, size_t len)
{
        size_t n = 0, i = 0, w;

        *runes = sw_xcalloc(len + 1, sizeof(int32_t));
        *offs = sw_xcalloc(len + 1, sizeof(size_t));
        while (i < len) {
                (*offs)[n] = i;
                (*runes)[n++] = step_df_rune_decode(s + i, len - i, &w);
                i += w;
        }
        (*offs)[n] = len;
        return n;
}

static int pattern_budget_err(struct sw_err *err)
{
        return sw_err_set(err, SW_ETOOBIG, "pattern in substitution is too complex");
}

/* ${NAME#p} / ${NAME##p}: drop the shortest / longest matching prefix. */
static int trim_prefix(struct sw_buf *out, const char *pat, size_t pat_len, const char *val,
                       size_t val_len, bool greedy, struct sw_err *err)
{
        struct pattern p;
        int32_t *runes = NULL;
        size_t *offs = NULL, n;
        long e;
        int rc = pattern_compile(&p, pat, pat_len, greedy, err);

        if (rc)
                return rc;
        n = decode_runes(&runes, &offs, val, val_len);
        e = pattern_match_at(&p, 0, runes, n, 0);
        if (e == -2)
                rc = pattern_budget_err(err);
        else if (e >= 0)
                rc = sw_buf_append(out, val + offs[e], val_len - offs[e], err);
        else
                rc = sw_buf_append(out, val, val_len, err);
        free(p.t);
        free(runes);
        free(offs);
        return rc;
}

/*
 * ${NAME%p} / ${NAME%%p}: buildkit reverses the value and the pattern and
 * trims a prefix; the value goes through Go runes, so invalid bytes come out
 * as U+FFFD.
 */
static int trim_suffix(struct sw_buf *out, const char *pat, size_t pat_len, const char *val,
                       size_t val_len, bool greedy, struct sw_err *err)
{
        struct pattern p;
        int32_t *runes = NULL;
        size_t *offs = NULL, n, keep;
        long e;
        int rc = pattern_compile(&p, pat, pat_len, greedy, err);

        if (rc)
                return rc;
        for (size_t i = 0, j = p.n; i < j / 2; i++) {
                struct pat_tok t = p.t[i];
                p.t[i] = p.t[j - 1 - i];
                p.t[j - 1 - i] = t;
        }
        n = decode_runes(&runes, &offs, val, val_len);
        for (size_t i = 0; i < n / 2; i++) {
                int32_t t = runes[i];
                runes[i] = runes[n - 1 - i];
                runes[n - 1 - i] = t;
        }
        e = pattern_match_at(&p, 0, runes, n, 0);
        if (e == -2) {
                rc = pattern_budget_err(err);
        } else {
                keep = e >= 0 ? (size_t)e : 0;
                for (size_t i = n; !rc && i-- > keep;)
                        rc = step_df_rune_put(out, runes[i], err);
        }
        free(p.t);
        free(runes);
        free(offs);
        return rc;
}

/* Leftmost match at or after rune index `from`: rune indexes in *start and *end. */
static int pattern_find(struct pattern *p, const int32_t *runes, size_t n, size_t from,
                        size_t *start, size_t *end, struct sw_err *err)
{
        for (size_t s = from; s <= n; s++) {
                long e = pattern_match_at(p, 0, runes, n, s);
                if (e == -2)
                        return pattern_budget_err(err);
                if (e >= 0) {
                        *start = s;
                        *end = (size_t)e;
                        return 1;
                }
        }
        return 0;
}

static bool name_char(int32_t r)
{
        return step_df_is_letter(r) || step_df_is_digit(r) || r == '_';
}

/*
 * Go's Regexp.Expand of a ReplaceAllString template: $$ is '$', $0 / ${0}
 * is the whole match, any other $name / ${name} is empty (the pattern has no
 * groups), a malformed $ stays literal.
 */
static int expand_template(struct sw_buf *out, const char *t, size_t tl, const char *m, size_t ml,
                           struct sw_err *err)
{
        size_t i = 0, w;
        int rc = 0;

        while (!rc && i < tl) {
                if (t[i] != '$') {
                        rc = sw_buf_putc(out, t[i++], err);
                        continue;
                }
                i++;
                if (i < tl && t[i] == '$') {
                        rc = sw_buf_putc(out, '$', err);
                        i++;
                        continue;
                }
                size_t ns, ne, after;
                if (i < tl && t[i] == '{') {
                        ns = i + 1;
                        ne = ns;
                        while (ne < tl && t[ne] != '}' &&
                               name_char(step_df_rune_decode(t + ne, tl - ne, &w)))
                                ne += w;
                        if (ne == ns || ne >= tl || t[ne] != '}') {
                                rc = sw_buf_putc(out, '$', err);
                                continue;
                        }
                        after = ne + 1;
                } else {
                        ns = ne = i;
                        while (ne < tl && name_char(step_df_rune_decode(t + ne, tl - ne, &w)))
                                ne += w;
                        if (ne == ns) {
                                rc = sw_buf_putc(out, '$', err);
                                continue;
                        }
                        after = ne;
                }
                if (ne - ns == 1 && t[ns] == '0')
                        rc = sw_buf_append(out, m, ml, err);
                i = after;
        }
        return rc;
}

/* ${NAME/p/r}: first match, literal replacement; ${NAME//p/r}: all, as Go's ReplaceAll. */
static int replace(struct sw_buf *out, const char *pat, size_t pat_len, const char *repl,
                   size_t repl_len, const char *val, size_t val_len, bool all, struct sw_err *err)
{
        struct pattern p;
        int32_t *runes = NULL;
        size_t *offs = NULL, n, s = 0, e = 0, last = 0, search = 0;
        int rc = pattern_compile(&p, pat, pat_len, true, err), found;

        if (rc)
                return rc;
        n = decode_runes(&runes, &offs, val, val_len);
        if (!all) {
                found = pattern_find(&p, runes, n, 0, &s, &e, err);
                if (found < 0) {
                        rc = found;
                } else if (found) {
                        rc = sw_buf_append(out, val, offs[s], err);
                        if (!rc)
                                rc = sw_buf_append(out, repl, repl_len, err);
                        if (!rc)
                                rc = sw_buf_append(out, val + offs[e], val_len - offs[e], err);
                } else {
                        rc = sw_buf_append(out, val, val_len, err);
                }
                goto out;
        }
        while (!rc && search <= n) {
                found = pattern_find(&p, runes, n, search, &s, &e, err);
                if (found < 0) {
                        rc = found;
                        break;
                }
                if (!found)
                        break;
                rc = sw_buf_append(out, val + offs[last], offs[s] - offs[last], err);
                if (!rc && (e > last || s == 0))
                        rc = expand_template(out, repl, repl_len, val + offs[s], offs[e] - offs[s],
                                             err);
                last = e;
                if (search + 1 > e)
                        search++;
                else
                        search = e;
        }
        if (!rc)
                rc = sw_buf_append(out, val + offs[last], val_len - offs[last], err);
out:
        free(p.t);
        free(runes);
        free(offs);
        return rc;
}

/* Produce "${" name chs word "}" for an unset variable with skip_unset_env. */
static int put_unexpanded(struct sw_buf *out, const struct sw_buf *name, const char *chs,
                          const char *word, size_t wl, const char *tail, struct sw_err *err)
{
        int rc = sw_buf_puts(out, "${", err);

        if (!rc)
                rc = sw_buf_append(out, sw_buf_str(name), name->len, err);
        if (!rc)
                rc = sw_buf_puts(out, chs, err);
        if (!rc)
                rc = sw_buf_append(out, word, wl, err);
        if (!rc)
                rc = sw_buf_puts(out, tail, err);
        return rc;
}

static int nested(struct lex *l, struct sw_buf *word, int32_t stop, bool raw_escapes)
{
        struct words ignored = {0};
        int rc;

        if (l->depth >= LEX_MAX_DEPTH)
                return sw_err_set(l->err, SW_ETOOBIG, "substitutions nested too deeply");
        l->depth++;
        rc = process_stop_on(l, word, &ignored, stop, raw_escapes);
        l->depth--;
        words_release(&ignored);
        return rc;
}

static int process_dollar_brace(struct lex *l, struct sw_buf *out, struct sw_buf *name)
{
        struct sw_buf word, word2;
        const char *val = "";
        size_t val_len = 0;
        bool set, null_is_unset = false;
        int32_t ch, pk;
        struct sw_buf chs;
        int rc;

        sw_buf_init(&chs, 64);
        sw_buf_init(&word, STEP_SHLEX_MAX_OUTPUT);
        sw_buf_init(&word2, STEP_SHLEX_MAX_OUTPUT);
        lex_next(l); /* '{' */
        pk = lex_peek(l);
        if (pk == LEX_EOF) {
                rc = sw_err_set(l->err, SW_EINVAL, "syntax error: missing '}'");
                goto out;
        }
        if (pk == '{' || pk == '}' || pk == ':') {
                rc = sw_err_set(l->err, SW_EINVAL, "syntax error: bad substitution");
                goto out;
        }
        rc = process_name(l, name);
        if (rc)
                goto out;
        ch = lex_next(l);
        if (ch == '}') {
                set = env_get(l, sw_buf_str(name), name->len, &val, &val_len);
                if (!set && l->o->skip_unset_env)
                        rc = put_unexpanded(out, name, "", "", 0, "}", l->err);
                else
                        rc = sw_buf_append(out, val, val_len, l->err);
                goto out;
        }
        if (ch == ':') {
                null_is_unset = true;
                ch = lex_next(l);
                rc = sw_buf_putc(&chs, ':', l->err);
                if (rc)
                        goto out;
        }
        if (ch == '/' && !null_is_unset) {
                bool all = lex_peek(l) == '/';
                if (all)
                        lex_next(l);
                rc = nested(l, &word, '/', true);
                if (rc) {
                        if (lex_peek(l) == LEX_EOF && rc == SW_EINVAL) {
                                sw_err_clear(l->err);
                                rc = sw_err_set(l->err, SW_EINVAL,
                                                "syntax error: missing '/' in ${}");
                        }
                        goto out;
                }
                rc = nested(l, &word2, '}', true);
                if (rc) {
                        if (lex_peek(l) == LEX_EOF && rc == SW_EINVAL) {
                                sw_err_clear(l->err);
                                rc = sw_err_set(l->err, SW_EINVAL, "syntax error: missing '}'");
                        }
                        goto out;
                }
                set = env_get(l, sw_buf_str(name), name->len, &val, &val_len);
                if (l->o->skip_unset_env && !set) {
                        rc = sw_buf_puts(out, "${", l->err);
                        if (!rc)
                                rc = sw_buf_append(out, sw_buf_str(name), name->len, l->err);
                        if (!rc)
                                rc = sw_buf_putc(out, '/', l->err);
                        if (!rc)
                                rc = sw_buf_append(out, sw_buf_str(&word), word.len, l->err);
                        if (!rc)
                                rc = sw_buf_putc(out, '/', l->err);
                        if (!rc)
                                rc = sw_buf_append(out, sw_buf_str(&word2), word2.len, l->err);
                        if (!rc)
                                rc = sw_buf_putc(out, '}', l->err);
                        goto out;
                }
                rc = replace(out, sw_buf_str(&word), word.len, sw_buf_str(&word2), word2.len, val,
                             val_len, all, l->err);
                goto out;
        }
        if (!null_is_unset && ch != '+' && ch != '-' && ch != '?' && ch != '#' && ch != '%') {
                /* ${X=Y}, ${X.}, ${X (end): refused at once. */
                if (ch == LEX_EOF) {
                        rc = sw_err_set(l->err, SW_EINVAL, "syntax error: missing '}'");
                        goto out;
                }
                rc = step_df_rune_put(&chs, ch, l->err);
                if (!rc)
                        rc = sw_err_set(l->err, SW_EINVAL,
                                        "unsupported modifier (%s) in substitution",
                                        sw_buf_str(&chs));
                goto out;
        }
        rc = step_df_rune_put(&chs, ch, l->err);
        if (rc)
                goto out;
        if (null_is_unset && (ch == '#' || ch == '%')) {
                rc = sw_err_set(l->err, SW_EINVAL, "unsupported modifier (%s) in substitution",
                                sw_buf_str(&chs));
                goto out;
        }
        /* After ':' anything is read up to '}' first, and refused below if unknown. */
        rc = nested(l, &word, '}', ch == '#' || ch == '%');
        if (rc) {
                if (lex_peek(l) == LEX_EOF && rc == SW_EINVAL) {
                        sw_err_clear(l->err);
                        rc = sw_err_set(l->err, SW_EINVAL, "syntax error: missing '}'");
                }
                goto out;
        }
        set = env_get(l, sw_buf_str(name), name->len, &val, &val_len);
        if (l->o->skip_unset_env && !set) {
                rc = put_unexpanded(out, name, sw_buf_str(&chs), sw_buf_str(&word), word.len, "}",
                                    l->err);
                goto out;
        }
        switch (ch) {
        case '-':
                if (!set || (null_is_unset && val_len == 0))
                        rc = sw_buf_append(out, sw_buf_str(&word), word.len, l->err);
                else
                        rc = sw_buf_append(out, val, val_len, l->err);
                break;
        case '+':
                if (set && !(null_is_unset && val_len == 0))
                        rc = sw_buf_append(out, sw_buf_str(&word), word.len, l->err);
                break;
        case '?':
                if (!set || (null_is_unset && val_len == 0)) {
                        const char *msg = word.len ? sw_buf_str(&word)
                                          : !set   ? "is not allowed to be unset"
                                                   : "is not allowed to be empty";
                        rc = sw_err_set(l->err, SW_EINVAL, "%s: %s", sw_buf_str(name), msg);
                } else {
                        rc = sw_buf_append(out, val, val_len, l->err);
                }
                break;
        case '#':
        case '%': {
                const char *p = sw_buf_str(&word);
                size_t pl = word.len;
                bool greedy = pl > 0 && p[0] == (char)ch;
                if (greedy) {
                        p++;
                        pl--;
                }
                if (ch == '%')
                        rc = trim_suffix(out, p, pl, val, val_len, greedy, l->err);
                else
                        rc = trim_prefix(out, p, pl, val, val_len, greedy, l->err);
                break;
        }
        default:
                rc = sw_err_set(l->err, SW_EINVAL, "unsupported modifier (%s) in substitution",
                                sw_buf_str(&chs));
        }
out:
        sw_buf_release(&chs);
        sw_buf_release(&word);
        sw_buf_release(&word2);
        return rc;
}

static int process_dollar(struct lex *l, struct sw_buf *out)
{
        struct sw_buf name;
        const char *val;
        size_t val_len;
        int rc;

        sw_buf_init(&name, STEP_SHLEX_MAX_OUTPUT);
        lex_next(l); /* '$' */
        if (lex_peek(l) == '{') {
                rc = process_dollar_brace(l, out, &name);
                goto out;
        }
        rc = process_name(l, &name);
        if (rc)
                goto out;
        if (name.len == 0) {
                rc = sw_buf_putc(out, '$', l->err);
                goto out;
        }
        if (env_get(l, sw_buf_str(&name), name.len, &val, &val_len)) {
                rc = sw_buf_append(out, val, val_len, l->err);
        } else if (l->o->skip_unset_env) {
                rc = sw_buf_putc(out, '$', l->err);
                if (!rc)
                        rc = sw_buf_append(out, sw_buf_str(&name), name.len, l->err);
        }
out:
        sw_buf_release(&name);
        return rc;
}

/* '<' or '<<' plus the blanks after it: kept together so heredoc words stay whole. */
static int process_possible_heredoc(struct lex *l, struct sw_buf *out)
{
        int rc;

        lex_next(l);
        if (lex_peek(l) != '<')
                return sw_buf_putc(out, '<', l->err);
        lex_next(l);
        rc = sw_buf_puts(out, "<<", l->err);
        while (!rc && (lex_peek(l) == '\t' || lex_peek(l) == '\r' || lex_peek(l) == ' '))
                rc = put_rune(l, out, lex_next(l));
        return rc;
}

static int process_stop_on(struct lex *l, struct sw_buf *result, struct words *words, int32_t stop,
                           bool raw_escapes)
{
        bool saved = l->raw_escapes;
        struct sw_buf tmp;
        int rc = 0;

        sw_buf_init(&tmp, STEP_SHLEX_MAX_OUTPUT);
        sw_buf_reset(&l->words_buf);
        l->raw_escapes = raw_escapes;
        while (!rc && lex_peek(l) != LEX_EOF) {
                int32_t ch = lex_peek(l);
                bool quotes = !l->o->skip_process_quotes;

                if (stop != LEX_EOF && ch == stop) {
                        lex_next(l);
                        words_finish(l, words);
                        goto out;
                }
                if (ch == '$' || ch == '<' || (quotes && (ch == '\'' || ch == '"'))) {
                        sw_buf_reset(&tmp);
                        if (ch == '$')
                                rc = process_dollar(l, &tmp);
                        else if (ch == '<')
                                rc = process_possible_heredoc(l, &tmp);
                        else if (ch == '\'')
                                rc = process_single_quote(l, &tmp);
                        else
                                rc = process_double_quote(l, &tmp);
                        if (!rc)
                                rc = sw_buf_append(result, sw_buf_str(&tmp), tmp.len, l->err);
                        if (!rc && ch == '$')
                                rc = words_add_string(l, words, sw_buf_str(&tmp), tmp.len);
                        else if (!rc)
                                rc = words_add_raw_string(l, words, sw_buf_str(&tmp), tmp.len);
                        continue;
                }
                ch = lex_next(l);
                if (ch == (unsigned char)l->o->escape) {
                        if (l->raw_escapes) {
                                rc = words_add_raw_char(l, words, ch);
                                if (!rc)
                                        rc = put_rune(l, result, ch);
                        }
                        ch = lex_next(l);
                        if (ch == LEX_EOF)
                                break;
                        if (!rc)
                                rc = words_add_raw_char(l, words, ch);
                } else {
                        rc = words_add_char(l, words, ch);
                }
                if (!rc)
                        rc = put_rune(l, result, ch);
        }
        if (!rc && stop != LEX_EOF)
                rc = sw_err_set(l->err, SW_EINVAL,
                                "unexpected end of statement while looking for matching %c",
                                (char)stop);
        if (!rc)
                words_finish(l, words);
out:
        l->raw_escapes = saved;
        sw_buf_release(&tmp);
        return rc;
}

static int lex_run(struct sw_buf *result, struct words *words,
                   const struct step_shlex_options *opts, const char *word, size_t len,
                   const struct step_shlex_env *env, struct sw_err *err)
{
        static const struct step_shlex_options defaults = STEP_SHLEX_OPTIONS_INIT;
        struct lex l = {0};
        int rc;

        l.o = opts ? opts : &defaults;
        l.env = env;
        l.src = word;
        l.len = len;
        l.raw_escapes = l.o->raw_escapes;
        l.err = err;
        sw_buf_init(&l.words_buf, STEP_SHLEX_MAX_OUTPUT);
        /* Go's text/scanner skips a byte-order mark at the very start. */
        if (len >= 3 && memcmp(word, "\xEF\xBB\xBF", 3) == 0)
                l.pos = 3;
        rc = process_stop_on(&l, result, words, LEX_EOF, l.raw_escapes);
        sw_buf_release(&l.words_buf);
        if (rc)
                sw_err_wrap(err, "failed to process \"%.*s\"", (int)(len > 200 ? 200 : len), word);
        return rc;
}

int step_shlex_word(char **out, size_t *len_out, const struct step_shlex_options *opts,
                    const char *word, size_t len, const struct step_shlex_env *env,
                    struct sw_err *err)
{
        struct sw_buf result;
        struct words words = {0};
        int rc;

        sw_buf_init(&result, STEP_SHLEX_MAX_OUTPUT);
        rc = lex_run(&result, &words, opts, word, len, env, err);
        words_release(&words);
        if (rc) {
                sw_buf_release(&result);
                return rc;
        }
        *out = sw_buf_detach(&result, len_out);
        return 0;
}

int step_shlex_words(char ***out, size_t *n_out, const struct step_shlex_options *opts,
                     const char *word, size_t len, const struct step_shlex_env *env,
                     struct sw_err *err)
{
        struct sw_buf result;
        struct words words = {0};
        int rc;

        sw_buf_init(&result, STEP_SHLEX_MAX_OUTPUT);
        rc = lex_run(&result, &words, opts, word, len, env, err);
        sw_buf_release(&result);
        if (rc) {
                words_release(&words);
                return rc;
        }
        if (!words.v)
                words.v = sw_xcalloc(1, sizeof(char *));
        *out = words.v;
        if (n_out)
                *n_out = words.n;
        return 0;
}

void step_shlex_words_free(char **words)
{
        if (!words)
                return;
        for (char **w = words; *w; w++)
                free(*w);
        free(words);
}
