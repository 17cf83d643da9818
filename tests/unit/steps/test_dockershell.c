/*
 * test_dockershell.c - the shell-word lexer against buildkit's corpus:
 * shell/envVarTest (one word; "PLATFORM|input|expected", A and U lines run
 * here, W lines are Windows-only) and shell/wordsTest (word splitting, "ENV
 * k=v" lines extend the environment), plus the substitution cases of
 * buildkit's lex tests (${v#p}, ${v%p}, ${v/p/r}, ${v?msg} ...).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fs.h"
#include "common/mem.h"
#include "steps/dockerfile.h"
#include "tests/harness/t.h"

/* A string literal and its length. */
#define W(s) s, strlen(s)

static char *corpus_file(const char *name)
{
        static const char *const roots[] = {
                SW_TEST_SOURCE_DIR "/../shared/fixtures/buildkit-parser",
                SW_TEST_SOURCE_DIR "/../../shared/fixtures/buildkit-parser",
        };
        struct stat st;

        for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
                char *p = sw_xasprintf("%s/frontend/dockerfile/shell/%s", roots[i], name);
                if (stat(p, &st) == 0)
                        return p;
                free(p);
        }
        fprintf(stderr, "buildkit shell corpus not found under %s\n", roots[0]);
        return NULL;
}

/* Trim ASCII and the blanks Go's TrimSpace knows about in this corpus. */
static char *trim(char *s)
{
        char *e;

        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
                e--;
        *e = '\0';
        return s;
}

static void test_env_var_corpus(void)
{
        static const char *const vars[] = {"PWD=/home", "SHELL=bash",
                                           "KOREAN=\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4", "NULL="};
        struct step_shlex_env env = {vars, 4};
        struct sw_err err = SW_ERR_INIT;
        char *path = corpus_file("envVarTest"), *text = NULL, *line, *save = NULL;
        size_t len;
        int run = 0, ok = 0, lineno = 0;

        CHECK(path != NULL);
        if (!path)
                return;
        CHECK_OK(sw_read_file(&text, &len, path, 0, &err), &err);
        for (line = text; line && *line; line = save) {
                char *nl = strchr(line, '\n'), *f[3], *got = NULL;
                int nf = 0;
                size_t glen;

                save = nl ? nl + 1 : NULL;
                if (nl)
                        *nl = '\0';
                lineno++;
                if (line[0] == '#')
                        continue;
                line = trim(line);
                if (!*line)
                        continue;
                for (char *p = line; nf < 3; nf++) {
                        f[nf] = p;
                        char *bar = strchr(p, '|');
                        if (!bar) {
                                nf++;
                                break;
                        }
                        *bar = '\0';
                        p = bar + 1;
                }
                if (nf != 3) {
                        t_fail(__FILE__, __LINE__, "envVarTest:%d: malformed", lineno);
                        continue;
                }
                const char *plat = trim(f[0]), *src = trim(f[1]), *want = trim(f[2]);
                if (strcmp(plat, "W") == 0)
                        continue;
                run++;
                sw_err_clear(&err);
                int rc = step_shlex_word(&got, &glen, NULL, src, strlen(src), &env, &err);
                if (strcmp(want, "error") == 0) {
                        if (rc == 0)
                                t_fail(__FILE__, __LINE__,
                                       "envVarTest:%d: \"%s\" gave \"%s\", want an error", lineno,
                                       src, got);
                        else
                                ok++;
                } else if (rc != 0) {
                        t_fail(__FILE__, __LINE__, "envVarTest:%d: \"%s\": %s", lineno, src,
                               err.msg);
                } else if (strcmp(got, want) != 0) {
                        t_fail(__FILE__, __LINE__, "envVarTest:%d: \"%s\" gave \"%s\", want \"%s\"",
                               lineno, src, got, want);
                } else {
                        ok++;
                }
                free(got);
        }
        fprintf(stderr, "  envVarTest: %d of %d unix cases pass\n", ok, run);
        CHECK(run > 200);
        CHECK_INT(ok, run);
        free(text);
        free(path);
}

static void test_words_corpus(void)
{
        struct sw_err err = SW_ERR_INIT;
        char *path = corpus_file("wordsTest"), *text = NULL, *line, *save = NULL;
        const char *vars[64];
        struct step_shlex_env env = {vars, 0};
        size_t len;
        int run = 0, ok = 0, lineno = 0;

        CHECK(path != NULL);
        if (!path)
                return;
        CHECK_OK(sw_read_file(&text, &len, path, 0, &err), &err);
        for (line = text; line && *line; line = save) {
                char *nl = strchr(line, '\n'), **words = NULL;
                size_t nw = 0;

                save = nl ? nl + 1 : NULL;
                if (nl)
                        *nl = '\0';
                lineno++;
                if (line[0] == '#')
                        continue;
                if (strncmp(line, "ENV ", 4) == 0) {
                        char *v = line + 3;
                        while (*v == ' ')
                                v++;
                        if (env.n_vars < 64)
                                vars[env.n_vars++] = v;
                        continue;
                }
                char *bar = strchr(line, '|');
                if (!bar || strchr(bar + 1, '|')) {
                        t_fail(__FILE__, __LINE__, "wordsTest:%d: malformed", lineno);
                        continue;
                }
                *bar = '\0';
                char *src = trim(line), *want = bar + 1;
                while (*want == ' ')
                        want++;
                run++;
                sw_err_clear(&err);
                /* Join the result with ',' as the expectation is written. */
                char joined[512] = "";
                size_t jl = 0;
                if (step_shlex_words(&words, &nw, NULL, src, strlen(src), &env, &err) != 0) {
                        snprintf(joined, sizeof(joined), "error");
                } else {
                        for (size_t i = 0; i < nw; i++)
                                jl += (size_t)snprintf(joined + jl, sizeof(joined) - jl, "%s%s",
                                                       i ? "," : "", words[i]);
                }
                step_shlex_words_free(words);
                if (strcmp(joined, want) != 0)
                        t_fail(__FILE__, __LINE__, "wordsTest:%d: \"%s\" gave [%s], want [%s]",
                               lineno, src, joined, want);
                else
                        ok++;
        }
        fprintf(stderr, "  wordsTest: %d of %d cases pass\n", ok, run);
        CHECK(run >= 24);
        CHECK_INT(ok, run);
        free(text);
        free(path);
}

struct sub_case {
        const char *input;
        const char *vars[4];
        const char *expect; /* NULL: must fail */
};

/* buildkit's TestProcessWithMatches and TestShellParserMandatoryEnvVars cases. */
static void test_substitutions(void)
{
        static const struct sub_case cases[] = {
                {"x", {"DUMMY=dummy"}, "x"},
                {"x ${UNUSED}", {"DUMMY=dummy"}, "x "},
                {"x ${FOO}", {"FOO=y"}, "x y"},
                {"${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO=xxx", "BAR="}, "xxx  ccc"},
                {"${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", {"FOO=xxx", "BAR="}, "xxx bbb ccc"},
                {"${FOO:-}", {"FOO=xxx", "BAR="}, "xxx"},
                {"${FOO:-}", {NULL}, ""},
                {"${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", {"FOO=xxx", "BAR="}, "aaa bbb "},
                {"${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO=xxx", "BAR="}, "aaa  "},
                {"${FOO?aaa}", {"FOO=xxx", "BAR="}, "xxx"},
                {"${BAR?bbb}", {"FOO=xxx", "BAR="}, ""},
                {"${BAZ?ccc}", {"FOO=xxx", "BAR="}, NULL},
                {"${FOO:?aaa}", {"FOO=xxx", "BAR="}, "xxx"},
                {"${BAR:?bbb}", {"FOO=xxx", "BAR="}, NULL},
                {"${BAZ:?ccc}", {"FOO=xxx", "BAR="}, NULL},
                {"${BAZ:?}", {"FOO=xxx", "BAR="}, NULL},
                {"${FOO=aaa}", {"FOO=xxx", "BAR="}, NULL},
                {"${FOO=:aaa}", {"FOO=xxx", "BAR="}, NULL},
                {"${FOO=}", {NULL}, NULL},
                {"${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO=()[]{}^$.*?|\\x"}, "x"},
                {"${FOO%%\\**}", {"FOO=xx**"}, "xx"},
                {"${FOO#*x*y}", {"FOO=xxyy"}, "y"},
                {"${FOO#*}", {"FOO=xxyy"}, "xxyy"},
                {"${FOO#$BAR}", {"FOO=xxyy", "BAR=x"}, "xyy"},
                {"${FOO#$BAR}", {"FOO=xxyy", "BAR="}, "xxyy"},
                {"${FOO#}", {"FOO=xxyy"}, "xxyy"},
                {"${FOO##*x}", {"FOO=xxyy"}, "yy"},
                {"${FOO##}", {"FOO=xxyy"}, "xxyy"},
                {"${FOO#?\\?}", {"FOO=???y"}, "?y"},
                {"${ABC:-.}${FOO%x}${ABC:-.}", {"FOO=xxyy"}, ".xxyy."},
                {"${FOO%%\\**\\*}", {"FOO=a***yy*"}, "a"},
                {"${FOO%}", {"FOO=xxyy"}, "xxyy"},
                {"${FOO%%$BAR}", {"FOO=xxyy", "BAR="}, "xxyy"},
                {"${FOO%y*}", {"FOO=xxyy"}, "xxy"},
                {"${FOO%%y*}", {"FOO=xxyy"}, "xx"},
                {"${FOO:#}", {NULL}, NULL},
                {"${FOO:##}", {NULL}, NULL},
                {"${FOO:%}", {NULL}, NULL},
                {"${FOO:%%}", {NULL}, NULL},
                {"${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
                 {"FOO=/foo*/*/*.txt", "NEEDLE=\\*/"},
                 "/foo.*/*.txt - /foo..*.txt"},
                {"${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
                 {"FOO=/tmp/tmp/bar.txt", "NEEDLE=/tmp"},
                 "/tmp/bar.txt - /bar.txt"},
                {"${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
                 {"FOO=/a/foo/b/c.txt", "NEEDLE=/?/", "REPLACEMENT=/"},
                 "/foo/b/c.txt - /foo/c.txt"},
                {"${FOO/$NEEDLE/$REPLACEMENT}",
                 {"FOO=http://google.de", "NEEDLE=http://", "REPLACEMENT=https://"},
                 "https://google.de"},
                {"${FOO//\\//\\/}", {"FOO=/tmp/foo.txt"}, "\\/tmp\\/foo.txt"},
                {"${FOO/$BAR/ww}", {"FOO=xxyy", "BAR="}, "wwxxyy"},
                {"${FOO//ww}", {"FOO=xxyy"}, NULL},
                {"${FOO//}", {"FOO=xxyy"}, NULL},
                {"${FOO///}", {"FOO=xxyy"}, "xxyy"},
                {"${FOO///}", {NULL}, ""},
                /*
                 * Go's ReplaceAll expands $0 (the match) in the replacement; only an
                 * escaped $ gets there, and the escape is kept.
                 */
                {"${FOO//x/<\\$0>}", {"FOO=axbx"}, "a<\\x>b<\\x>"},
                {"${FOO//x/\\$\\$}", {"FOO=axb"}, "a\\$\\$b"},
                {"${VAR:?message here$ARG}", {"VAR=plain", "ARG=x"}, "plain"},
                {"${VAR:?message here$ARG}", {"VAR=", "ARG=x"}, NULL},
                {"${VAR:?message here$ARG}", {"ARG=x"}, NULL},
                {"${VAR?message here$ARG}", {"VAR=plain", "ARG=x"}, "plain"},
                {"${VAR?message here$ARG}", {"VAR=", "ARG=x"}, ""},
                {"${VAR?message here$ARG}", {"ARG=x"}, NULL},
                /*
                 * Names follow Go's unicode tables: a non-ASCII decimal digit
                 * starts a positional parameter, a combining mark ends a name.
                 */
                {"$\xD9\xA3x", {"A=1"}, "x"},
                {"$e\xCC\x81x", {"e=1"}, "1\xCC\x81x"},
                {"${e\xCC\x81}", {NULL}, NULL},
                {"$\xC3\xA9t\xC3\xA9.", {"\xC3\xA9t\xC3\xA9=summer"}, "summer."},
                /* The last assignment of a key wins; a key alone is set and empty. */
                {"$car", {"car=hat", "car=bike"}, "bike"},
                {"${foo-unset}", {"foo"}, ""},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const struct sub_case *c = &cases[i];
                struct step_shlex_env env = {c->vars, 0};
                struct sw_err err = SW_ERR_INIT;
                char *got = NULL;
                size_t glen;

                while (env.n_vars < 4 && c->vars[env.n_vars])
                        env.n_vars++;
                int rc = step_shlex_word(&got, &glen, NULL, c->input, strlen(c->input), &env, &err);
                if (!c->expect) {
                        if (rc == 0)
                                t_fail(__FILE__, __LINE__, "\"%s\" gave \"%s\", want an error",
                                       c->input, got);
                } else if (rc != 0) {
                        t_fail(__FILE__, __LINE__, "\"%s\": %s", c->input, err.msg);
                } else if (strcmp(got, c->expect) != 0) {
                        t_fail(__FILE__, __LINE__, "\"%s\" gave \"%s\", want \"%s\"", c->input, got,
                               c->expect);
                }
                free(got);
        }
}

static void test_messages_and_modes(void)
{
        static const char *const vars[] = {"ARG=x", "VAR="};
        struct step_shlex_env env = {vars, 2};
        struct step_shlex_options o = STEP_SHLEX_OPTIONS_INIT;
        struct sw_err err = SW_ERR_INIT;
        char *got = NULL, **words = NULL;
        size_t len, n;

        /* ${X?msg} reports the expanded message and the variable. */
        CHECK(step_shlex_word(&got, &len, NULL, W("${VAR:?message here$ARG}"), &env, &err) ==
              SW_EINVAL);
        CHECK(strstr(err.msg, "VAR: message herex") != NULL);
        sw_err_clear(&err);
        CHECK(step_shlex_word(&got, &len, NULL, W("${NOPE?}"), &env, &err) == SW_EINVAL);
        CHECK(strstr(err.msg, "NOPE: is not allowed to be unset") != NULL);

        /* skip_unset_env leaves unknown variables as written (heredoc names use it). */
        o.skip_unset_env = true;
        CHECK_OK(step_shlex_word(&got, &len, &o, W("$A ${B} ${C:-d} ${ARG:-z} ${E/x/y}"), &env,
                                 &err),
                 &err);
        CHECK_STR(got, "$A ${B} ${C:-d} x ${E/x/y}");
        free(got);
        /* raw quotes and raw escapes keep what they would remove. */
        o = (struct step_shlex_options)STEP_SHLEX_OPTIONS_INIT;
        o.raw_quotes = true;
        CHECK_OK(step_shlex_word(&got, &len, &o, W("'a b' \"c\""), NULL, &err), &err);
        CHECK_STR(got, "'a b' \"c\"");
        free(got);
        o.raw_escapes = true;
        CHECK_OK(step_shlex_words(&words, &n, &o, W("RUN a\\ b <<EOF \"x\\\"y\""), NULL, &err),
                 &err);
        CHECK_INT(n, 4);
        if (n == 4) {
                CHECK_STR(words[1], "a\\ b");
                CHECK_STR(words[2], "<<EOF");
                CHECK_STR(words[3], "\"x\\\"y\"");
        }
        step_shlex_words_free(words);
        /* The backtick escape token. */
        o = (struct step_shlex_options)STEP_SHLEX_OPTIONS_INIT;
        o.escape = '`';
        CHECK_OK(step_shlex_word(&got, &len, &o, W("a`$b\\c"), NULL, &err), &err);
        CHECK_STR(got, "a$b\\c");
        free(got);
        /* Empty quoted words vanish from the word list, as in buildkit. */
        CHECK_OK(step_shlex_words(&words, &n, NULL, W("a '' b"), NULL, &err), &err);
        CHECK_INT(n, 2);
        step_shlex_words_free(words);
        /* Substitutions nested deeper than the limit are refused, not recursed into. */
        char deep[2048];
        size_t k = 0;
        for (int i = 0; i < 200; i++)
                k += (size_t)snprintf(deep + k, sizeof(deep) - k, "${a:-");
        for (int i = 0; i < 200; i++)
                deep[k++] = '}';
        sw_err_clear(&err);
        CHECK(step_shlex_word(&got, &len, NULL, deep, k, NULL, &err) == SW_ETOOBIG);
        /* A pathological pattern runs out of its step budget instead of hanging. */
        static const char *const big[] = {
                "V=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"};
        struct step_shlex_env benv = {big, 1};
        const char *pat = "${V#*a*a*a*a*a*a*a*a*a*a*a*a*c}";
        sw_err_clear(&err);
        int rc = step_shlex_word(&got, &len, NULL, pat, strlen(pat), &benv, &err);
        CHECK(rc == SW_ETOOBIG || rc == 0);
        if (rc == 0)
                free(got);
}

int main(void)
{
        T_RUN(test_env_var_corpus);
        T_RUN(test_words_corpus);
        T_RUN(test_substitutions);
        T_RUN(test_messages_and_modes);
        return t_done();
}
