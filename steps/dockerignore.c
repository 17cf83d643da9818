/*
 * dockerignore.c - .dockerignore patterns, matched as Docker matches them.
 *
 * Docker (moby/patternmatcher) turns each pattern into a regular expression:
 * a star becomes "[^/]" repeated, '?' "[^/]", a double star "any characters
 * then '/', optionally" (or "anything" at the end), classes and '\' escapes pass through, the regexp metacharacters
 * .+()|{}$ are quoted; a pattern without wildcards is compared as a string,
 * one ending in a double star as a prefix and one starting with it as a
 * suffix. Here the same translation produces a small token
 * program matched by dynamic programming (linear in path length, no
 * backtracking blow-up). A path is excluded when the last pattern matching it
 * or one of its parent directories is not a '!' exception.
 *
 * Known differences, all on patterns nobody writes: '*' and '?' inside
 * [...] are literal characters here (Go's translation garbles such a class),
 * POSIX classes like [[:alpha:]] are not recognised, and the few regexp
 * escapes beyond \d \s \w \D \S \W and \a \f \t \n \r \v (\b, \pL, octal
 * ...) are refused when the file is read instead of when a path meets them.
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/mem.h"
#include "steps/dockerfile_int.h"
#include "steps/dockerignore.h"
#include "common/banned.h"

#define PATTERN_MAX_BYTES 4096

enum tok_kind { T_LIT, T_ANY_NS, T_STAR_NS, T_DSTAR_SLASH, T_DSTAR_END, T_CLASS, T_BOL };

enum { PERL_D = 1, PERL_ND = 2, PERL_S = 4, PERL_NS = 8, PERL_W = 16, PERL_NW = 32 };

struct range {
        int32_t lo, hi;
};

struct tok {
        enum tok_kind kind;
        int32_t r;            /* T_LIT */
        bool neg;             /* T_CLASS */
        unsigned perl;        /* T_CLASS: \d \s \w and their negations inside */
        struct range *ranges; /* T_CLASS */
        size_t nranges;
};

enum match_type { M_EXACT, M_PREFIX, M_SUFFIX, M_REGEXP };

struct program {
        enum match_type type;
        const char *text; /* the cleaned pattern (exact/prefix/suffix compare on it) */
        struct tok *t;
        size_t n;
};

struct component {
        bool any;   /* contains "**": may match any number of components */
        char *text; /* the component, which prog.text points to */
        struct program prog;
};

struct pattern {
        char *shown;   /* as listed, '!' included */
        char *cleaned; /* without '!' */
        bool exclusion;
        struct program prog;
        struct component *comps; /* exceptions only: per path component */
        size_t ncomps;
};

struct step_dockerignore {
        struct pattern *p;
        size_t n, cap;
        bool exclusions;
};

/* ---- paths ---- */

/* Go's path/filepath.Clean for '/'-separated paths; returns a malloc'ed string. */
static char *path_clean(const char *path)
{
        size_t n = strlen(path), r = 0, w = 0, dotdot = 0;
        bool rooted = n > 0 && path[0] == '/';
        char *out;

        if (n == 0)
                return sw_xstrdup(".");
        out = sw_xmalloc(n + 2);
        if (rooted) {
                out[w++] = '/';
                r = 1;
                dotdot = 1;
        }
        while (r < n) {
                if (path[r] == '/') {
                        r++;
                } else if (path[r] == '.' && (r + 1 == n || path[r + 1] == '/')) {
                        r++;
                } else if (path[r] == '.' && path[r + 1] == '.' &&
                           (r + 2 == n || path[r + 2] == '/')) {
                        r += 2;
                        if (w > dotdot) {
                                w--;
                                while (w > dotdot && out[w] != '/')
                                        w--;
                        } else if (!rooted) {
                                if (w > 0)
                                        out[w++] = '/';
                                out[w++] = '.';
                                out[w++] = '.';
                                dotdot = w;
                        }
                } else {
                        if ((rooted && w != 1) || (!rooted && w != 0))
                                out[w++] = '/';
                        while (r < n && path[r] != '/')
                                out[w++] = path[r++];
                }
        }
        if (w == 0)
                out[w++] = '.';
        out[w] = '\0';
        return out;
}

/* ---- syntax check: Go's filepath.Match(pattern, ".") error cases ---- */

static bool glob_get_esc(const char *p, size_t n, size_t *i)
{
        size_t w;

        if (*i >= n || p[*i] == '-' || p[*i] == ']')
                return false;
        if (p[*i] == '\\') {
                (*i)++;
                if (*i >= n)
                        return false;
        }
        int32_t r = step_df_rune_decode(p + *i, n - *i, &w);
        if (r == STEP_DF_RUNE_ERROR && w == 1)
                return false;
        *i += w;
        return *i < n;
}

static bool glob_valid(const char *p)
{
        size_t n = strlen(p), i = 0;

        while (i < n) {
                if (p[i] == '\\') {
                        if (i + 1 >= n)
                                return false;
                        i += 2;
                        continue;
                }
                if (p[i] != '[') {
                        i++;
                        continue;
                }
                i++;
                if (i < n && p[i] == '^')
                        i++;
                for (int nrange = 0;; nrange++) {
                        if (i < n && p[i] == ']' && nrange > 0) {
                                i++;
                                break;
                        }
                        if (!glob_get_esc(p, n, &i))
                                return false;
                        if (p[i] == '-') {
                                i++;
                                if (!glob_get_esc(p, n, &i))
                                        return false;
                        }
                }
        }
        return true;
}

/* ---- compiling a pattern ---- */

static void prog_release(struct program *pr)
{
        for (size_t i = 0; i < pr->n; i++)
                free(pr->t[i].ranges);
        free(pr->t);
        pr->t = NULL;
        pr->n = 0;
}

static struct tok *tok_add(struct program *pr, enum tok_kind kind)
{
        struct tok *t = &pr->t[pr->n++];

        memset(t, 0, sizeof(*t));
        t->kind = kind;
        return t;
}

static bool is_alnum_ascii(int32_t c)
{
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/*
 * A regexp escape "\c" as Go's regexp reads it: punctuation is literal; the
 * Perl classes and control characters are known; anything else is refused.
 * Returns 1 for a literal (*lit), 2 for a Perl class (*perl), 0 when refused.
 */
static int regexp_escape(int32_t c, int32_t *lit, unsigned *perl)
{
        if (c < 0x80 && !is_alnum_ascii(c)) {
                *lit = c;
                return 1;
        }
        switch (c) {
        case 'a':
                *lit = '\a';
                return 1;
        case 'f':
                *lit = '\f';
                return 1;
        case 't':
                *lit = '\t';
                return 1;
        case 'n':
                *lit = '\n';
                return 1;
        case 'r':
                *lit = '\r';
                return 1;
        case 'v':
                *lit = '\v';
                return 1;
        case 'd':
                *perl = PERL_D;
                return 2;
        case 'D':
                *perl = PERL_ND;
                return 2;
        case 's':
                *perl = PERL_S;
                return 2;
        case 'S':
                *perl = PERL_NS;
                return 2;
        case 'w':
                *perl = PERL_W;
                return 2;
        case 'W':
                *perl = PERL_NW;
                return 2;
        default:
                return 0;
        }
}

static int class_add_range(struct tok *t, int32_t lo, int32_t hi)
{
        t->ranges = sw_xrealloc(t->ranges, (t->nranges + 1) * sizeof(*t->ranges));
        t->ranges[t->nranges].lo = lo;
        t->ranges[t->nranges].hi = hi;
        t->nranges++;
        return 0;
}

/* Read one class item at p[*i]: a rune or an escape. */
static int class_item(const char *p, size_t n, size_t *i, int32_t *r, unsigned *perl,
                      struct sw_err *err)
{
        size_t w;

        *perl = 0;
        if (p[*i] == '\\' && *i + 1 < n) {
                (*i)++;
                int32_t c = step_df_rune_decode(p + *i, n - *i, &w);
                *i += w;
                if (regexp_escape(c, r, perl) == 0)
                        return sw_err_set(err, SW_EINVAL, "unsupported escape '\\%.*s'", (int)w,
                                          p + *i - w);
                return 0;
        }
        *r = step_df_rune_decode(p + *i, n - *i, &w);
        *i += w;
        return 0;
}

/* Parse "[...]" starting at p[*i] == '['. Syntax was checked by glob_valid. */
static int compile_class(struct program *pr, const char *p, size_t n, size_t *i, struct sw_err *err)
{
        struct tok *t = tok_add(pr, T_CLASS);
        int rc;

        (*i)++;
        if (*i < n && p[*i] == '^') {
                t->neg = true;
                (*i)++;
        }
        for (size_t k = 0; *i < n; k++) {
                int32_t lo, hi;
                unsigned perl;
                if (p[*i] == ']' && k > 0) {
                        (*i)++;
                        return 0;
                }
                rc = class_item(p, n, i, &lo, &perl, err);
                if (rc)
                        return rc;
                if (perl) {
                        t->perl |= perl;
                        continue;
                }
                hi = lo;
                if (*i + 1 < n && p[*i] == '-' && p[*i + 1] != ']') {
                        (*i)++;
                        rc = class_item(p, n, i, &hi, &perl, err);
                        if (rc)
                                return rc;
                        if (perl || hi < lo)
                                return sw_err_set(err, SW_EINVAL, "invalid character class range");
                }
                class_add_range(t, lo, hi);
        }
        return sw_err_set(err, SW_EINVAL, "missing closing ]");
}

/* Translate a cleaned pattern exactly as patternmatcher's compile() does. */
static int compile(struct program *pr, const char *pat, struct sw_err *err)
{
        size_t n = strlen(pat), i = 0, w;
        int rc = 0;

        pr->type = M_EXACT;
        pr->text = pat;
        pr->t = sw_xcalloc(n + 1, sizeof(*pr->t));
        pr->n = 0;
        if (n >= 3 && memcmp(pat, "\xEF\xBB\xBF", 3) == 0)
                i = 3;
        for (int iter = 0; i < n; iter++) {
                int32_t ch = step_df_rune_decode(pat + i, n - i, &w);
                i += w;
                if (ch == '*') {
                        if (i < n && pat[i] == '*') {
                                i++;
                                if (i < n && pat[i] == '/')
                                        i++;
                                if (i >= n) {
                                        if (pr->type == M_EXACT) {
                                                pr->type = M_PREFIX;
                                        } else {
                                                tok_add(pr, T_DSTAR_END);
                                                pr->type = M_REGEXP;
                                        }
                                } else {
                                        tok_add(pr, T_DSTAR_SLASH);
                                        pr->type = M_REGEXP;
                                }
                                if (iter == 0)
                                        pr->type = M_SUFFIX;
                        } else {
                                tok_add(pr, T_STAR_NS);
                                pr->type = M_REGEXP;
                        }
                } else if (ch == '?') {
                        tok_add(pr, T_ANY_NS);
                        pr->type = M_REGEXP;
                } else if (ch == '\\') {
                        if (i < n) {
                                int32_t c = step_df_rune_decode(pat + i, n - i, &w), lit = 0;
                                unsigned perl = 0;
                                i += w;
                                int k = regexp_escape(c, &lit, &perl);
                                if (k == 0) {
                                        rc = sw_err_set(err, SW_EINVAL,
                                                        "unsupported escape '\\%.*s'", (int)w,
                                                        pat + i - w);
                                        break;
                                }
                                if (k == 1) {
                                        tok_add(pr, T_LIT)->r = lit;
                                } else {
                                        struct tok *t = tok_add(pr, T_CLASS);
                                        t->perl = perl;
                                }
                                pr->type = M_REGEXP;
                        } else {
                                tok_add(pr, T_LIT)->r = '\\';
                        }
                } else if (ch == '[') {
                        i--;
                        rc = compile_class(pr, pat, n, &i, err);
                        if (rc)
                                break;
                        pr->type = M_REGEXP;
                } else if (ch == ']') {
                        tok_add(pr, T_LIT)->r = ']';
                        pr->type = M_REGEXP;
                } else if (ch == '^') {
                        /* Not quoted by Docker: in the regexp it anchors at the start. */
                        tok_add(pr, T_BOL);
                } else {
                        tok_add(pr, T_LIT)->r = ch;
                }
        }
        if (rc)
                prog_release(pr);
        return rc;
}

/* ---- matching ---- */

static bool perl_match(unsigned perl, int32_t r)
{
        bool d = r >= '0' && r <= '9';
        bool s = r == ' ' || r == '\t' || r == '\n' || r == '\f' || r == '\r';
        bool wd = d || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || r == '_';

        return ((perl & PERL_D) && d) || ((perl & PERL_ND) && !d) || ((perl & PERL_S) && s) ||
               ((perl & PERL_NS) && !s) || ((perl & PERL_W) && wd) || ((perl & PERL_NW) && !wd);
}

static bool tok_one(const struct tok *t, int32_t r)
{
        switch (t->kind) {
        case T_LIT:
                return r == t->r;
        case T_ANY_NS:
                return r != '/';
        case T_CLASS: {
                bool in = perl_match(t->perl, r);
                for (size_t i = 0; !in && i < t->nranges; i++)
                        in = r >= t->ranges[i].lo && r <= t->ranges[i].hi;
                return in != t->neg;
        }
        default:
                return false;
        }
}

/* Full match of the token program against runes[0..m): DP over suffixes, two rows. */
static bool prog_match_runes(const struct program *pr, const int32_t *runes, size_t m)
{
        bool *next = sw_xcalloc(m + 2, 1), *cur = sw_xcalloc(m + 2, 1), *tmp, res;

        next[m] = true; /* the empty program matches the end */
        for (size_t i = pr->n; i-- > 0;) {
                const struct tok *t = &pr->t[i];
                bool e = false;
                for (size_t j = m + 1; j-- > 0;) {
                        switch (t->kind) {
                        case T_STAR_NS:
                                cur[j] = next[j] || (j < m && runes[j] != '/' && cur[j + 1]);
                                break;
                        case T_DSTAR_END:
                                cur[j] = next[j] || (j < m && runes[j] != '\n' && cur[j + 1]);
                                break;
                        case T_DSTAR_SLASH:
                                /* e: some run without '\n' ending in '/' starts at j */
                                e = j < m && runes[j] != '\n' &&
                                    ((runes[j] == '/' && next[j + 1]) || e);
                                cur[j] = next[j] || e;
                                break;
                        case T_BOL:
                                cur[j] = j == 0 && next[j];
                                break;
                        default:
                                cur[j] = j < m && tok_one(t, runes[j]) && next[j + 1];
                        }
                }
                tmp = next;
                next = cur;
                cur = tmp;
        }
        res = next[0];
        free(next);
        free(cur);
        return res;
}

static bool prog_match(const struct program *pr, const char *path, size_t len)
{
        size_t plen = strlen(pr->text);

        switch (pr->type) {
        case M_EXACT:
                return len == plen && memcmp(path, pr->text, len) == 0;
        case M_PREFIX:
                return len >= plen - 2 && memcmp(path, pr->text, plen - 2) == 0;
        case M_SUFFIX: {
                const char *suf = pr->text + 2;
                size_t sl = plen - 2;
                if (len >= sl && memcmp(path + len - sl, suf, sl) == 0)
                        return true;
                return sl > 0 && suf[0] == '/' && len == sl - 1 && memcmp(path, suf + 1, len) == 0;
        }
        case M_REGEXP:
        default: {
                int32_t *runes = sw_xcalloc(len + 1, sizeof(int32_t));
                size_t m = 0, i = 0, w;
                bool ok;
                while (i < len) {
                        runes[m++] = step_df_rune_decode(path + i, len - i, &w);
                        i += w;
                }
                ok = prog_match_runes(pr, runes, m);
                free(runes);
                return ok;
        }
        }
}

/* MatchesOrParentMatches: the pattern matches the path or one of its parents. */
static bool pattern_matches(const struct pattern *p, const char *path, size_t len)
{
        if (prog_match(&p->prog, path, len))
                return true;
        for (size_t i = 0; i < len; i++)
                if (path[i] == '/' && prog_match(&p->prog, path, i))
                        return true;
        return false;
}

static bool excluded(const struct step_dockerignore *m, const char *path, size_t len)
{
        bool matched = false;

        for (size_t i = 0; i < m->n; i++) {
                const struct pattern *p = &m->p[i];
                if (p->exclusion != matched)
                        continue;
                if (pattern_matches(p, path, len))
                        matched = !p->exclusion;
        }
        return matched;
}

/* Could exception `p` re-include `dir`, one of its parents or something beneath it? */
static bool exception_reaches(const struct pattern *p, const char *dir, size_t len)
{
        size_t c = 0, s = 0;

        for (size_t i = 0; i <= len && c < p->ncomps; i++) {
                if (i < len && dir[i] != '/')
                        continue;
                const struct component *comp = &p->comps[c];
                if (comp->any)
                        return true;
                if (!prog_match(&comp->prog, dir + s, i - s))
                        return false;
                c++;
                s = i + 1;
        }
        return true;
}

unsigned step_dockerignore_match(const struct step_dockerignore *m, const char *path, bool is_dir)
{
        char *clean = path_clean(path ? path : "");
        const char *p = clean;
        unsigned res = is_dir ? STEP_DOCKERIGNORE_DESCEND : 0;
        size_t len;

        while (*p == '/')
                p++;
        len = strlen(p);
        if (!m || len == 0 || strcmp(p, ".") == 0)
                goto out;
        if (!excluded(m, p, len))
                goto out;
        res = STEP_DOCKERIGNORE_EXCLUDED;
        if (is_dir && m->exclusions) {
                for (size_t i = 0; i < m->n; i++) {
                        if (m->p[i].exclusion && exception_reaches(&m->p[i], p, len)) {
                                res |= STEP_DOCKERIGNORE_DESCEND;
                                break;
                        }
                }
        }
out:
        free(clean);
        return res;
}

/* ---- building ---- */

static void pattern_release(struct pattern *p)
{
        prog_release(&p->prog);
        for (size_t i = 0; i < p->ncomps; i++) {
                prog_release(&p->comps[i].prog);
                free(p->comps[i].text);
        }
        free(p->comps);
        free(p->shown);
        free(p->cleaned);
}

void step_dockerignore_free(struct step_dockerignore *m)
{
        if (!m)
                return;
        for (size_t i = 0; i < m->n; i++)
                pattern_release(&m->p[i]);
        free(m->p);
        free(m);
}

static int split_components(struct pattern *p, struct sw_err *err)
{
        const char *s = p->cleaned;
        size_t n = 1;
        int rc = 0;

        for (const char *c = s; *c; c++)
                n += *c == '/';
        p->comps = sw_xcalloc(n, sizeof(*p->comps));
        for (size_t k = 0; k < n && !rc; k++) {
                const char *e = strchr(s, '/');
                size_t l = e ? (size_t)(e - s) : strlen(s);
                char *part = sw_xstrndup(s, l);
                struct component *c = &p->comps[p->ncomps];
                c->any = strstr(part, "**") != NULL;
                if (!c->any)
                        rc = compile(&c->prog, part, err);
                if (!rc) {
                        c->text = part; /* c->prog.text points into it */
                        p->ncomps++;
                } else {
                        free(part);
                }
                s = e ? e + 1 : s + l;
        }
        return rc;
}

/* Trim Unicode white space (Go's strings.TrimSpace) into a new string. */
static char *trim_dup(const char *s, size_t len)
{
        size_t a = 0, b = len;

        step_df_trim_space(s, &a, &b);
        return sw_xstrndup(s + a, b - a);
}

static int add_pattern(struct step_dockerignore *m, const char *raw, struct sw_err *err)
{
        struct pattern p = {0};
        char *t = trim_dup(raw, strlen(raw)), *c = NULL;
        const char *body;
        int rc = 0;

        if (!*t)
                goto out;
        if (strlen(t) > PATTERN_MAX_BYTES) {
                rc = sw_err_set(err, SW_ETOOBIG, "pattern longer than %d bytes", PATTERN_MAX_BYTES);
                goto out;
        }
        c = path_clean(t);
        body = c;
        if (c[0] == '!') {
                if (c[1] == '\0') {
                        rc = sw_err_set(err, SW_EINVAL, "illegal exclusion pattern: \"!\"");
                        goto out;
                }
                p.exclusion = true;
                body = c + 1;
        }
        if (!glob_valid(body)) {
                rc = sw_err_set(err, SW_EINVAL, "syntax error in pattern \"%s\"", body);
                goto out;
        }
        p.shown = sw_xstrdup(c);
        p.cleaned = sw_xstrdup(body);
        rc = compile(&p.prog, p.cleaned, err);
        if (!rc && p.exclusion)
                rc = split_components(&p, err);
        if (rc) {
                sw_err_wrap(err, "pattern \"%s\"", c);
                pattern_release(&p);
                goto out;
        }
        if (m->n >= STEP_DOCKERIGNORE_MAX_PATTERNS) {
                pattern_release(&p);
                rc = sw_err_set(err, SW_ETOOBIG, "more than %d patterns",
                                STEP_DOCKERIGNORE_MAX_PATTERNS);
                goto out;
        }
        if (m->n == m->cap) {
                m->cap = m->cap ? m->cap * 2 : 16;
                m->p = sw_xrealloc(m->p, m->cap * sizeof(*m->p));
        }
        m->p[m->n++] = p;
        m->exclusions |= p.exclusion;
out:
        free(t);
        free(c);
        return rc;
}

int step_dockerignore_new(struct step_dockerignore **out, const char *const *patterns, size_t n,
                          struct sw_err *err)
{
        struct step_dockerignore *m = sw_xcalloc(1, sizeof(*m));
        int rc = 0;

        for (size_t i = 0; i < n && !rc; i++)
                rc = add_pattern(m, patterns[i], err);
        if (rc) {
                step_dockerignore_free(m);
                return rc;
        }
        *out = m;
        return 0;
}

/* ignorefile.ReadAll for one line: the pattern it yields (malloc'ed) or NULL. */
static char *read_line_pattern(const char *s, size_t len)
{
        char *t, *c, *res;
        const char *body;
        bool invert;

        if (len > 0 && s[0] == '#')
                return NULL;
        t = trim_dup(s, len);
        if (!*t) {
                free(t);
                return NULL;
        }
        invert = t[0] == '!';
        if (invert) {
                char *rest = trim_dup(t + 1, strlen(t + 1));
                free(t);
                t = rest;
        }
        if (*t) {
                c = path_clean(t);
                body = c;
                if (strlen(c) > 1 && c[0] == '/')
                        body = c + 1;
                res = sw_xasprintf("%s%s", invert ? "!" : "", body);
                free(c);
        } else {
                res = sw_xasprintf("%s", invert ? "!" : "");
        }
        free(t);
        return res;
}

int step_dockerignore_parse(struct step_dockerignore **out, const char *text, size_t len,
                            struct sw_err *err)
{
        struct step_dockerignore *m = NULL;
        size_t pos = 0;
        int line = 0, rc = 0;

        if (len > STEP_DOCKERIGNORE_MAX_BYTES)
                return sw_err_set(err, SW_ETOOBIG, ".dockerignore is larger than %zu bytes",
                                  STEP_DOCKERIGNORE_MAX_BYTES);
        m = sw_xcalloc(1, sizeof(*m));
        while (!rc && text && pos < len) {
                const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
                size_t n = nl ? (size_t)(nl - s) : len - pos;
                pos += n + (nl ? 1 : 0);
                line++;
                if (n > 65535) {
                        rc = sw_err_set(err, SW_ETOOBIG, ".dockerignore line %d is too long", line);
                        break;
                }
                if (n > 0 && s[n - 1] == '\r') /* bufio.ScanLines drops one \r */
                        n--;
                if (line == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
                        s += 3;
                        n -= 3;
                }
                if (memchr(s, '\0', n)) {
                        rc = sw_err_set(err, SW_EINVAL, ".dockerignore line %d: NUL byte", line);
                        break;
                }
                char *pat = read_line_pattern(s, n);
                if (!pat)
                        continue;
                rc = add_pattern(m, pat, err);
                free(pat);
                if (rc)
                        sw_err_wrap(err, ".dockerignore line %d", line);
        }
        if (rc) {
                step_dockerignore_free(m);
                return rc;
        }
        *out = m;
        return 0;
}

size_t step_dockerignore_count(const struct step_dockerignore *m)
{
        return m ? m->n : 0;
}

const char *step_dockerignore_pattern(const struct step_dockerignore *m, size_t i)
{
        return m && i < m->n ? m->p[i].shown : NULL;
}
