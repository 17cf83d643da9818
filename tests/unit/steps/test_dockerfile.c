/*
 * test_dockerfile.c - the Dockerfile parser against buildkit's own parser
 * corpus (every testfiles/<case>/Dockerfile must dump exactly as its
 * `result`, every testfiles-negative case must fail naming its line), plus
 * the behaviours buildkit's parser tests check: line numbers, heredocs,
 * directives, empty-continuation warnings, and our size limits.
 *
 * The corpus lives in the team's shared folder, beside the repository:
 * SW_TEST_SOURCE_DIR/../shared/fixtures/buildkit-parser (CI copies shared/
 * there); a worktree one level deeper finds it at ../../shared. A missing
 * corpus is a test failure, never a skip.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/mem.h"
#include "steps/dockerfile.h"
#include "tests/harness/t.h"

static char *corpus_dir(void)
{
        static const char *const candidates[] = {
                SW_TEST_SOURCE_DIR "/../shared/fixtures/buildkit-parser",
                SW_TEST_SOURCE_DIR "/../../shared/fixtures/buildkit-parser",
        };
        struct stat st;

        for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++)
                if (stat(candidates[i], &st) == 0 && S_ISDIR(st.st_mode))
                        return sw_xstrdup(candidates[i]);
        fprintf(stderr, "buildkit parser corpus not found at %s\n", candidates[0]);
        return NULL;
}

/* Parse `text` and return its dump (malloc'ed), or NULL with `err` filled. */
static char *dump_of(const char *text, size_t len, struct sw_err *err)
{
        struct step_dockerfile *df = NULL;
        struct sw_buf b;

        if (step_dockerfile_parse(&df, text, len, err) != 0)
                return NULL;
        sw_buf_init(&b, 0);
        if (step_dockerfile_dump(&b, df->ast, err) != 0) {
                step_dockerfile_free(df);
                sw_buf_release(&b);
                return NULL;
        }
        step_dockerfile_free(df);
        return sw_buf_detach(&b, NULL);
}

static struct step_dockerfile *parse_ok(const char *text)
{
        struct sw_err err = SW_ERR_INIT;
        struct step_dockerfile *df = NULL;

        if (step_dockerfile_parse(&df, text, strlen(text), &err) != 0) {
                t_fail(__FILE__, __LINE__, "parse failed: %s", err.msg);
                return NULL;
        }
        return df;
}

static void check_dump(const char *text, const char *expect, int line)
{
        struct sw_err err = SW_ERR_INIT;
        char *got = dump_of(text, strlen(text), &err);

        if (!got)
                t_fail(__FILE__, line, "parse of %s failed: %s", text, err.msg);
        else if (strcmp(got, expect) != 0)
                t_fail(__FILE__, line, "dump of \"%s\":\n  got  %s\n  want %s", text, got, expect);
        free(got);
}
#define CHECK_DUMP(text, expect) check_dump(text, expect, __LINE__)

static void check_fails(const char *text, int code, const char *msg_part, int line)
{
        struct sw_err err = SW_ERR_INIT;
        char *got = dump_of(text, strlen(text), &err);

        if (got) {
                t_fail(__FILE__, line, "\"%s\" parsed, expected an error: %s", text, got);
                free(got);
                return;
        }
        if (err.code != code)
                t_fail(__FILE__, line, "\"%s\": code %d, want %d (%s)", text, err.code, code,
                       err.msg);
        if (msg_part && !strstr(err.msg, msg_part))
                t_fail(__FILE__, line, "\"%s\": message \"%s\" lacks \"%s\"", text, err.msg,
                       msg_part);
}
#define CHECK_FAILS(text, code, part) check_fails(text, code, part, __LINE__)

static void test_corpus_positive(void)
{
        char *root = corpus_dir(), *dir = NULL;
        DIR *d = NULL;
        struct dirent *de;
        int total = 0, passed = 0;

        CHECK(root != NULL);
        if (!root)
                return;
        dir = sw_xasprintf("%s/frontend/dockerfile/parser/testfiles", root);
        d = opendir(dir);
        CHECK(d != NULL);
        while (d && (de = readdir(d)) != NULL) {
                struct sw_err err = SW_ERR_INIT;
                char *df_path, *res_path, *text = NULL, *want = NULL, *got = NULL;
                size_t len = 0, wlen = 0;

                if (de->d_name[0] == '.')
                        continue;
                total++;
                df_path = sw_xasprintf("%s/%s/Dockerfile", dir, de->d_name);
                res_path = sw_xasprintf("%s/%s/result", dir, de->d_name);
                if (sw_read_file(&text, &len, df_path, 0, &err) != 0 ||
                    sw_read_file(&want, &wlen, res_path, 0, &err) != 0) {
                        t_fail(__FILE__, __LINE__, "%s: %s", de->d_name, err.msg);
                } else if (!(got = dump_of(text, len, &err))) {
                        t_fail(__FILE__, __LINE__, "%s: parse failed: %s", de->d_name, err.msg);
                } else {
                        /* result == Dump() + "\n" */
                        size_t gl = strlen(got);
                        if (wlen == gl + 1 && memcmp(want, got, gl) == 0 && want[gl] == '\n')
                                passed++;
                        else
                                t_fail(__FILE__, __LINE__, "%s: dump differs:\n%s\n--- want\n%s",
                                       de->d_name, got, want);
                }
                free(got);
                free(text);
                free(want);
                free(df_path);
                free(res_path);
        }
        if (d)
                closedir(d);
        fprintf(stderr, "  buildkit testfiles: %d of %d dump exactly\n", passed, total);
        CHECK(total >= 33);
        CHECK_INT(passed, total);
        free(dir);
        free(root);
}

static void test_corpus_negative(void)
{
        char *root = corpus_dir(), *dir = NULL;
        DIR *d = NULL;
        struct dirent *de;
        int total = 0, failed_ok = 0;

        CHECK(root != NULL);
        if (!root)
                return;
        dir = sw_xasprintf("%s/frontend/dockerfile/parser/testfiles-negative", root);
        d = opendir(dir);
        CHECK(d != NULL);
        while (d && (de = readdir(d)) != NULL) {
                struct sw_err err = SW_ERR_INIT;
                char *path, *text = NULL, *got = NULL;
                size_t len = 0;

                if (de->d_name[0] == '.')
                        continue;
                total++;
                path = sw_xasprintf("%s/%s/Dockerfile", dir, de->d_name);
                if (sw_read_file(&text, &len, path, 0, &err) != 0) {
                        t_fail(__FILE__, __LINE__, "%s: %s", de->d_name, err.msg);
                } else if ((got = dump_of(text, len, &err)) != NULL) {
                        t_fail(__FILE__, __LINE__, "%s parsed: %s", de->d_name, got);
                } else if (!strstr(err.msg, "on line ")) {
                        t_fail(__FILE__, __LINE__, "%s: error names no line: %s", de->d_name,
                               err.msg);
                } else {
                        fprintf(stderr, "  %s: %s\n", de->d_name, err.msg);
                        failed_ok++;
                }
                free(got);
                free(text);
                free(path);
        }
        if (d)
                closedir(d);
        CHECK(total >= 4);
        CHECK_INT(failed_ok, total);
        free(dir);
        free(root);
}

/* Run `slipway dockerfile parse PATH`; returns its exit status and stdout+stderr in *out. */
static int run_cli(const char *path, char **out)
{
        const char *bin = getenv("SW_TEST_SLIPWAY");
        struct sw_buf b;
        char chunk[4096], *cmd;
        size_t n;
        FILE *f;
        int st;

        *out = NULL;
        if (!bin || strchr(bin, '\'') || strchr(path, '\''))
                return -1;
        cmd = sw_xasprintf("'%s' dockerfile parse '%s' 2>&1", bin, path);
        f = popen(cmd, "r");
        free(cmd);
        if (!f)
                return -1;
        sw_buf_init(&b, 0);
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
                sw_buf_append(&b, chunk, n, NULL);
        st = pclose(f);
        *out = sw_buf_detach(&b, NULL);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * The command prints exactly `result` (a sample of the cases: the parser
 * itself is checked on all of them above), and fails naming the line.
 */
static void test_cli(void)
{
        char *root = corpus_dir(), *dir, *out = NULL;
        DIR *d;
        struct dirent *de;
        int n = 0;

        CHECK(getenv("SW_TEST_SLIPWAY") != NULL);
        if (!root || !getenv("SW_TEST_SLIPWAY")) {
                free(root);
                return;
        }
        dir = sw_xasprintf("%s/frontend/dockerfile/parser/testfiles", root);
        d = opendir(dir);
        while (d && n < 6 && (de = readdir(d)) != NULL) {
                struct sw_err err = SW_ERR_INIT;
                char *df_path, *res_path, *want = NULL;
                size_t wlen;

                if (de->d_name[0] == '.')
                        continue;
                df_path = sw_xasprintf("%s/%s/Dockerfile", dir, de->d_name);
                res_path = sw_xasprintf("%s/%s/result", dir, de->d_name);
                CHECK_OK(sw_read_file(&want, &wlen, res_path, 0, &err), &err);
                CHECK_INT(run_cli(df_path, &out), 0);
                if (want && out && strcmp(out, want) != 0)
                        t_fail(__FILE__, __LINE__, "%s: cli printed:\n%s", de->d_name, out);
                else
                        n++;
                free(out);
                free(want);
                free(df_path);
                free(res_path);
        }
        if (d)
                closedir(d);
        CHECK_INT(n, 6);
        free(dir);
        dir = sw_xasprintf(
                "%s/frontend/dockerfile/parser/testfiles-negative/env_no_value/Dockerfile", root);
        CHECK_INT(run_cli(dir, &out), 1);
        CHECK(out && strstr(out, "line 3: ENV must have two arguments") != NULL);
        free(out);
        free(dir);
        free(root);
}

static void test_negative_messages(void)
{
        CHECK_FAILS("", SW_EINVAL, "file with no instructions");
        CHECK_FAILS("# Hello\n# only comments\n\n", SW_EINVAL, "line 3: file with no");
        CHECK_FAILS("FROM busybox\n\nENV PATH\n", SW_EINVAL, "line 3: ENV must have two arguments");
        CHECK_FAILS("CMD [ \"echo\", [ \"nested json\" ] ]\n", SW_EINVAL,
                    "line 1: when using JSON array syntax, arrays must be comprised of strings");
        CHECK_FAILS("FROM a\nLABEL a=b c\n", SW_EINVAL,
                    "line 2: Syntax error - can't find = in \"c\"");
        CHECK_FAILS("FROM a\nRUN [1, \"a\"]\n", SW_EINVAL, "line 2");
        CHECK_FAILS("FROM a\nCOPY [\"a\", null]\n", SW_EINVAL, "arrays must be comprised");
        /* Trailing text makes it no JSON: the shell form, split at blanks. */
        CHECK_DUMP("COPY [\"a\", null] /b", "(copy \"[\\\"a\\\",\" \"null]\" \"/b\")");
        CHECK_FAILS("FROM a\nRUN <<EOF\necho\n", SW_EINVAL, "line 2: unterminated heredoc");
        CHECK_FAILS("# escape=x\nFROM a\n", SW_EINVAL, "invalid escape token 'x'");
        CHECK_FAILS("# escape=`\n# escape=\\\nFROM a\n", SW_EINVAL,
                    "line 2: only one escape parser directive can be used");
        CHECK_FAILS("# syntax=a\n# SYNTAX=b\nFROM a\n", SW_EINVAL, "only one syntax parser");
        /* A line the lexer cannot read has no heredoc (buildkit ignores the error). */
        CHECK_DUMP("FROM a\nRUN <<'EOF\nx\n", "(from \"a\")\n(run \"<<'EOF\")\n(x \"\")");

        struct sw_err err = SW_ERR_INIT;
        static const char nul[] = "FROM a\nRUN x\0y\n";
        CHECK(dump_of(nul, sizeof(nul) - 1, &err) == NULL);
        CHECK(strstr(err.msg, "line 2: NUL byte") != NULL);
}

static void test_line_numbers(void)
{
        char *root = corpus_dir(), *path, *text = NULL;
        struct sw_err err = SW_ERR_INIT;
        struct step_dockerfile *df = NULL;
        static const int want[3][2] = {{5, 5}, {11, 12}, {17, 31}};
        size_t len;

        CHECK(root != NULL);
        if (!root)
                return;
        path = sw_xasprintf("%s/frontend/dockerfile/parser/testfile-line/Dockerfile", root);
        CHECK_OK(sw_read_file(&text, &len, path, 0, &err), &err);
        CHECK_OK(step_dockerfile_parse(&df, text, len, &err), &err);
        if (df) {
                CHECK_INT(df->ast->start_line, 5);
                CHECK_INT(df->ast->end_line, 31);
                CHECK_INT(df->ast->n_children, 3);
                for (size_t i = 0; i < 3 && i < df->ast->n_children; i++) {
                        CHECK_INT(df->ast->children[i]->start_line, want[i][0]);
                        CHECK_INT(df->ast->children[i]->end_line, want[i][1]);
                }
                CHECK_STR(df->ast->children[1]->original, "ENV GOPATH /go");
        }
        step_dockerfile_free(df);
        free(text);
        free(path);
        free(root);
}

struct want_doc {
        const char *name;
        const char *content;
        bool expand;
        bool chomp;
        unsigned fd;
};

/* buildkit's TestParseExtractsHeredoc, case for case. */
static void test_heredocs(void)
{
        static const char text[] =
                "\nFROM alpine:3.6\n\nENV NAME=me\n\nRUN ls\n\nUSER <<INVALID\nINVALID\n\n"
                "RUN <<EMPTY\nEMPTY\n\nRUN 3<<EMPTY2\nEMPTY2\n\nRUN \"<<NOHEREDOC\"\n\n"
                "RUN <<INDENT\n\tfoo\n\tbar\nINDENT\n\n"
                "RUN <<-UNINDENT\n\tbaz\n\tquux\nUNINDENT\n\n"
                "RUN <<-UNINDENT2\n\tbaz\n\tquux\n\tUNINDENT2\n\n"
                "RUN <<-EXPAND\n\texpand $NAME\nEXPAND\n\n"
                "RUN <<-'NOEXPAND'\n\tdon't expand $NAME\nNOEXPAND\n\n"
                "RUN <<COPY\necho hello world\necho foo bar\nCOPY\n\n"
                "RUN <<COMMENT\n# internal comment\necho hello world\n"
                "echo foo bar # trailing comment\nCOMMENT\n\n"
                "RUN --mount=type=cache,target=/foo <<MOUNT\necho hello\nMOUNT\n\n"
                "COPY <<FILE1 <<FILE2 /dest\ncontent 1\nFILE1\ncontent 2\nFILE2\n\n"
                "COPY <<EOF /quotes\n\"foo\"\n'bar'\nEOF\n\n"
                "COPY <<X <<Y /dest\nY\nX\nX\nY\n\n"
                "RUN <<COMPLEX python3\nprint('hello world')\nCOMPLEX\n\n"
                "COPY <<file.txt /dest\nhello world\nfile.txt\n\n"
                "RUN <<eo'f'\necho foo\neof\n\n"
                "RUN <<eo\\'f\necho foo\neo'f\n\n"
                "RUN <<'e'o\\'f\necho foo\neo'f\n\n"
                "RUN <<'one two'\necho bar\none two\n\n"
                "RUN <<$EOF\n$EOF\n\n"
                "RUN <<  EOF\nEOF\n\n"
                "RUN <<  EOF  > foo\nEOF\n\t";
        /* per child after FROM: up to two docs; name NULL = none */
        static const struct want_doc want[][2] = {
                {{NULL}},
                {{NULL}},
                {{NULL}},
                {{NULL}},
                {{"EMPTY", "", true, false, 0}},
                {{"EMPTY2", "", true, false, 3}},
                {{NULL}},
                {{"INDENT", "\tfoo\n\tbar\n", true, false, 0}},
                {{"UNINDENT", "\tbaz\n\tquux\n", true, true, 0}},
                {{"UNINDENT2", "\tbaz\n\tquux\n", true, true, 0}},
                {{"EXPAND", "\texpand $NAME\n", true, true, 0}},
                {{"NOEXPAND", "\tdon't expand $NAME\n", false, true, 0}},
                {{"COPY", "echo hello world\necho foo bar\n", true, false, 0}},
                {{"COMMENT",
                  "# internal comment\necho hello world\necho foo bar # trailing comment\n", true,
                  false, 0}},
                {{"MOUNT", "echo hello\n", true, false, 0}},
                {{"FILE1", "content 1\n", true, false, 0},
                 {"FILE2", "content 2\n", true, false, 0}},
                {{"EOF", "\"foo\"\n'bar'\n", true, false, 0}},
                {{"X", "Y\n", true, false, 0}, {"Y", "X\n", true, false, 0}},
                {{"COMPLEX", "print('hello world')\n", true, false, 0}},
                {{"file.txt", "hello world\n", true, false, 0}},
                {{"eof", "echo foo\n", false, false, 0}},
                {{"eo'f", "echo foo\n", true, false, 0}},
                {{"eo'f", "echo foo\n", false, false, 0}},
                {{"one two", "echo bar\n", false, false, 0}},
                {{"$EOF", "", true, false, 0}},
                {{"EOF", "", true, false, 0}},
                {{"EOF", "", true, false, 0}},
        };
        struct step_dockerfile *df = parse_ok(text);
        size_t n = sizeof(want) / sizeof(want[0]);

        if (!df)
                return;
        CHECK_INT(df->ast->n_children, n + 1);
        for (size_t i = 0; i < n && i + 1 < df->ast->n_children; i++) {
                const struct step_dockerfile_node *c = df->ast->children[i + 1];
                size_t nd = want[i][0].name ? (want[i][1].name ? 2 : 1) : 0;
                if (c->n_heredocs != nd) {
                        t_fail(__FILE__, __LINE__, "child %zu (%s): %zu heredocs, want %zu", i,
                               c->original, c->n_heredocs, nd);
                        continue;
                }
                for (size_t k = 0; k < nd; k++) {
                        const struct step_dockerfile_heredoc *h = &c->heredocs[k];
                        CHECK_STR(h->name, want[i][k].name);
                        CHECK_STR(h->content, want[i][k].content);
                        CHECK_INT(h->content_len, strlen(want[i][k].content));
                        CHECK_INT(h->expand, want[i][k].expand);
                        CHECK_INT(h->chomp, want[i][k].chomp);
                        CHECK_INT(h->fd, want[i][k].fd);
                }
        }
        /* Heredoc bodies count in the instruction's lines. */
        CHECK_INT(df->ast->children[8]->start_line, 19);
        CHECK_INT(df->ast->children[8]->end_line, 22);
        step_dockerfile_free(df);

        /* JSON form never reads heredocs. */
        df = parse_ok("\nFROM alpine:3.6\n\nRUN [\"whoami\"]\nRUN [\"<<EOF\"]\nRUN "
                      "[\"<<'EOF'\"]\n\t");
        if (df) {
                CHECK_INT(df->ast->n_children, 4);
                for (size_t i = 1; i < df->ast->n_children; i++)
                        CHECK_INT(df->ast->children[i]->n_heredocs, 0);
        }
        step_dockerfile_free(df);

        /* ONBUILD RUN <<EOF reads one; the nested RUN counts. */
        df = parse_ok("FROM a\nONBUILD RUN <<EOF\nhi\nEOF\nRUN '<<EOF'\n");
        if (df) {
                CHECK_INT(df->ast->n_children, 3);
                CHECK_INT(df->ast->children[1]->n_heredocs, 1);
                CHECK_INT(df->ast->children[2]->n_heredocs, 0);
        }
        step_dockerfile_free(df);

        /* Heredoc detection words: "<< -EOF" names "-EOF"; 4<<EOF is fd 4. */
        df = parse_ok("FROM a\nRUN << -EOF\n-EOF\nRUN 4<<EOF <<EOF2\nEOF\nEOF2\n");
        if (df) {
                CHECK_STR(df->ast->children[1]->heredocs[0].name, "-EOF");
                CHECK_INT(df->ast->children[2]->n_heredocs, 2);
                CHECK_INT(df->ast->children[2]->heredocs[0].fd, 4);
                CHECK_STR(df->ast->children[2]->heredocs[1].name, "EOF2");
        }
        step_dockerfile_free(df);
        CHECK_DUMP("FROM a\nRUN <<EOF\nRUN inside\nEOF\n", "(from \"a\")\n(run \"<<EOF\")");
        CHECK_DUMP("FROM a\nCOPY <<EOF /x\nhello\nEOF\n", "(from \"a\")\n(copy \"<<EOF\" \"/x\")");
}

static void test_directives(void)
{
        struct step_dockerfile *df;

        df = parse_ok("# syntax = docker/dockerfile:1.7 // opts\n# check=skip=all\n"
                      "#escape=`\nFROM a\n");
        if (df) {
                CHECK_STR(df->syntax, "docker/dockerfile:1.7 // opts");
                CHECK_STR(df->check, "skip=all");
                CHECK_INT(df->escape, '`');
        }
        step_dockerfile_free(df);
        /* Keys are case-insensitive; a BOM before the first line is skipped. */
        df = parse_ok("\xEF\xBB\xBF# EScape=`\nFROM a\nRUN x `\n  y\n");
        if (df) {
                CHECK_INT(df->escape, '`');
                CHECK_STR(df->ast->children[1]->original, "RUN x   y");
        }
        step_dockerfile_free(df);
        /* A blank line, a comment or an unknown key ends the directives. */
        CHECK_DUMP("\n# escape=`\nFROM a\nRUN x \\\n y\n", "(from \"a\")\n(run \"x  y\")");
        CHECK_DUMP("# key = FOO\n# escape=`\nFROM a\nRUN x \\\n y\n",
                   "(from \"a\")\n(run \"x  y\")");
        CHECK_DUMP("# hello\n# escape=`\nFROM a\n", "(from \"a\")");
        df = parse_ok("FROM a\n# syntax=x\n");
        if (df)
                CHECK(df->syntax == NULL);
        step_dockerfile_free(df);
        /* Directives and comments before an instruction are kept apart. */
        df = parse_ok("# syntax=x\n# about a\nFROM a\n#\n# about b\n  # indented\nRUN b\n");
        if (df) {
                CHECK_INT(df->ast->children[0]->n_comments, 1);
                CHECK_STR(df->ast->children[0]->comments[0], "about a");
                CHECK_INT(df->ast->children[1]->n_comments, 2);
                CHECK_STR(df->ast->children[1]->comments[0], "about b");
                /* buildkit drops the first byte of the line, not the '#'. */
                CHECK_STR(df->ast->children[1]->comments[1], "# indented");
        }
        step_dockerfile_free(df);
}

static void test_instructions(void)
{
        /* parseWords, through ARG. */
        CHECK_DUMP("ARG foo", "(arg \"foo\")");
        CHECK_DUMP("ARG foo bar", "(arg \"foo\" \"bar\")");
        CHECK_DUMP("ARG foo\\ bar", "(arg \"foo\\\\ bar\")");
        CHECK_DUMP("ARG foo bar 'abc xyz'", "(arg \"foo\" \"bar\" \"'abc xyz'\")");
        CHECK_DUMP("ARG f\xC3\xB6o b\xC3\xA0r \"\xC3\xA2"
                   "bc x\xC3\xBFz\"",
                   "(arg \"f\xC3\xB6o\" \"b\xC3\xA0r\" \"\\\"\xC3\xA2"
                   "bc x\xC3\xBFz\\\"\")");
        CHECK_DUMP("ARG", "(arg)");
        /* Instruction words keep their case in the tree, dumps lower-case them. */
        CHECK_DUMP("from A AS b\nRuN x", "(from \"A\" \"AS\" \"b\")\n(run \"x\")");
        /* Unknown instructions parse with an empty argument. */
        CHECK_DUMP("FROM a\nFOO bar baz", "(from \"a\")\n(foo \"\")");
        /* ONBUILD nests; its flags belong to the nested instruction. */
        CHECK_DUMP("ONBUILD COPY --from=x a b", "(onbuild (copy [\"--from=x\"] \"a\" \"b\"))");
        CHECK_DUMP("ONBUILD", "(onbuild)");
        CHECK_DUMP("onbuild onbuild run x", "(onbuild (onbuild (run \"x\")))");
        /* Flags: quotes and escapes processed, "--" ends them. */
        CHECK_DUMP("COPY --chown=\"a b\" --chmod=7\\55 x y",
                   "(copy [\"--chown=a b\" \"--chmod=755\"] \"x\" \"y\")");
        CHECK_DUMP("RUN --mount=type=cache,target=/root/.cache -- --not-a-flag",
                   "(run [\"--mount=type=cache,target=/root/.cache\"] \"--not-a-flag\")");
        CHECK_DUMP("RUN --network=none", "(run [\"--network=none\"])");
        /* MAINTAINER, STOPSIGNAL, USER, WORKDIR keep the whole rest. */
        CHECK_DUMP("MAINTAINER  Jane  Doe <j@d>", "(maintainer \"Jane  Doe <j@d>\")");
        CHECK_DUMP("WORKDIR /a b", "(workdir \"/a b\")");
        CHECK_DUMP("STOPSIGNAL SIGKILL", "(stopsignal \"SIGKILL\")");
        /* SHELL and ENTRYPOINT are JSON-or-string. */
        CHECK_DUMP("SHELL [\"/bin/sh\", \"-c\"]", "(shell \"/bin/sh\" \"-c\")");
        CHECK_DUMP("ENTRYPOINT [\"a\"] x", "(entrypoint \"[\\\"a\\\"] x\")");
        /* JSON: escapes, surrogates, invalid pairs, overflowing numbers. */
        CHECK_DUMP("CMD [\"\\ud83d\\ude00\", \"\\ud83d\", \"\\u00e9\"]",
                   "(cmd \"\xF0\x9F\x98\x80\" \"\xEF\xBF\xBD\" \"\xC3\xA9\")");
        CHECK_DUMP("CMD [\"a\", 1e999]", "(cmd \"[\\\"a\\\", 1e999]\")");
        CHECK_DUMP("CMD [\"a\" ,\n", "(cmd \"[\\\"a\\\" ,\")");
        CHECK_DUMP("CMD [\"\x01\"]", "(cmd \"[\\\"\\x01\\\"]\")");
        CHECK_DUMP("CMD [\"\xff\"]", "(cmd \"\xEF\xBF\xBD\")");
        CHECK_DUMP("VOLUME [\"/a\",\"/b\"]\nVOLUME /c /d",
                   "(volume \"/a\" \"/b\")\n(volume \"/c\" \"/d\")");
        CHECK_FAILS("CMD [{\"a\": [1, 2.5e3, true, false, null]}]", SW_EINVAL, "arrays must be");
        /* HEALTHCHECK types. */
        CHECK_DUMP("HEALTHCHECK NONE", "(healthcheck \"NONE\")");
        CHECK_DUMP("HEALTHCHECK CMD [\"a\", \"b\"]", "(healthcheck \"CMD\" \"a\" \"b\")");
        /* ENV: legacy form keeps the raw rest; new form pairs. */
        CHECK_DUMP("ENV a b  c", "(env \"a\" \"b  c\" \"\")");
        CHECK_DUMP("ENV a=1 b=\"2 3\" c=",
                   "(env \"a\" \"1\" \"=\" \"b\" \"\\\"2 3\\\"\" \"=\" \"c\" \"\" \"=\")");
        CHECK_DUMP("LABEL \"a b\"=c", "(label \"\\\"a b\\\"\" \"c\" \"=\")");
        /* Quoting of control and non-ASCII characters, as Go's strconv.Quote. */
        CHECK_DUMP("RUN a\tb\x7f\xC2\xA0\xE2\x99\xA5", "(run \"a\\tb\\x7f\\u00a0\xE2\x99\xA5\")");
        /* Windows line ends. */
        CHECK_DUMP("FROM a\r\nRUN b \\\r\n  c\r\n", "(from \"a\")\n(run \"b   c\")");
}

static void test_continuations(void)
{
        struct step_dockerfile *df;

        df = parse_ok("\nFROM alpine:3.6\n\nRUN valid \\\n    continuation\n\n"
                      "RUN something \\\n\n    following \\\n\n    more\n\n"
                      "RUN another \\\n\n    thing\n\n"
                      "RUN non-indented \\\n# this is a comment\n   after-comment\n\n"
                      "RUN indented \\\n    # this is an indented comment\n    comment\n\t");
        if (df) {
                CHECK_INT(df->n_warnings, 2);
                CHECK_STR(df->ast->children[2]->original, "RUN something     following     more");
                CHECK_STR(df->ast->children[4]->original, "RUN non-indented    after-comment");
                CHECK_STR(df->ast->children[5]->original, "RUN indented     comment");
        }
        step_dockerfile_free(df);
        /* An escaped escape is no continuation; a lone escape line is. */
        CHECK_DUMP("RUN a\\\\\nRUN b", "(run \"a\\\\\\\\\")\n(run \"b\")");
        CHECK_DUMP("RUN a \\\n\\\n b", "(run \"a  b\")");
        CHECK_DUMP("RUN a \\", "(run \"a\")");
}

static void test_limits(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct step_dockerfile *df = NULL;
        size_t big = STEP_DOCKERFILE_MAX_BYTES + 1, n;
        char *text = sw_xmalloc(big + 1);

        /* Too big as a whole. */
        memset(text, '#', big);
        CHECK_INT(step_dockerfile_parse(&df, text, big, &err), SW_ETOOBIG);
        /* One physical line over 64 KiB: buildkit's scanner limit. */
        sw_err_clear(&err);
        n = (size_t)snprintf(text, 64, "FROM image\nLABEL test=");
        memset(text + n, 'a', 65536);
        text[n + 65536] = '\n';
        CHECK_INT(step_dockerfile_parse(&df, text, n + 65537, &err), SW_ETOOBIG);
        CHECK(strstr(err.msg, "line 2") != NULL);
        CHECK(strstr(err.msg, "65535") != NULL);
        /* Exactly 65535 bytes and a newline is fine. */
        sw_err_clear(&err);
        memset(text + n, 'a', 65535 - n);
        text[65535] = '\n';
        CHECK_OK(step_dockerfile_parse(&df, text, 65536, &err), &err);
        step_dockerfile_free(df);
        df = NULL;
        /* A heredoc over its limit. */
        sw_err_clear(&err);
        n = (size_t)snprintf(text, 64, "FROM a\nRUN <<EOF\n");
        for (size_t i = 0; i < 40000; i++) {
                memcpy(text + n, "0123456789012345678901234567890123456789\n", 41);
                n += 41;
        }
        memcpy(text + n, "EOF\n", 4);
        n += 4;
        CHECK_INT(step_dockerfile_parse(&df, text, n, &err), SW_ETOOBIG);
        CHECK(strstr(err.msg, "heredoc") != NULL);
        /* Too many lines. */
        sw_err_clear(&err);
        memset(text, '\n', STEP_DOCKERFILE_MAX_LINES + 10);
        CHECK_INT(step_dockerfile_parse(&df, text, STEP_DOCKERFILE_MAX_LINES + 10, &err),
                  SW_ETOOBIG);
        /* ONBUILD nesting. */
        sw_err_clear(&err);
        n = 0;
        for (int i = 0; i < 20; i++) {
                memcpy(text + n, "ONBUILD ", 8);
                n += 8;
        }
        memcpy(text + n, "RUN x\n", 6);
        CHECK_INT(step_dockerfile_parse(&df, text, n + 6, &err), SW_ETOOBIG);
        CHECK(df == NULL);
        free(text);
}

int main(void)
{
        T_RUN(test_corpus_positive);
        T_RUN(test_corpus_negative);
        T_RUN(test_negative_messages);
        T_RUN(test_line_numbers);
        T_RUN(test_heredocs);
        T_RUN(test_directives);
        T_RUN(test_instructions);
        T_RUN(test_continuations);
        T_RUN(test_limits);
        T_RUN(test_cli);
        return t_done();
}
