/*
 * test_dockerignore.c - .dockerignore reading and matching: the cases of
 * moby/patternmatcher's own tests (single patterns, pattern lists, the
 * filepath.Match syntax errors, the ignore-file reader) and the walk
 * decisions the builder relies on (excluded directories, re-included
 * children, when a walk must still enter an excluded directory).
 */
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "steps/dockerignore.h"
#include "tests/harness/t.h"

struct mcase {
        const char *pattern;
        const char *path;
        bool excluded;
};

static void check_one(const char *pattern, const char *path, bool want, int line)
{
        struct sw_err err = SW_ERR_INIT;
        struct step_dockerignore *m = NULL;
        const char *pats[1] = {pattern};

        if (step_dockerignore_new(&m, pats, 1, &err) != 0) {
                t_fail(__FILE__, line, "pattern \"%s\": %s", pattern, err.msg);
                return;
        }
        bool got = step_dockerignore_match(m, path, false) & STEP_DOCKERIGNORE_EXCLUDED;
        if (got != want)
                t_fail(__FILE__, line, "pattern \"%s\" path \"%s\": excluded=%d, want %d", pattern,
                       path, got, want);
        step_dockerignore_free(m);
}

/* patternmatcher's TestMatches (MatchesOrParentMatches) and TestMatch tables. */
static void test_single_patterns(void)
{
        static const struct mcase cases[] = {
                {"**", "file", true},
                {"**", "file/", true},
                {"**/", "file", true},
                {"**/", "file/", true},
                {"**", "dir/file", true},
                {"**/", "dir/file", true},
                {"**", "dir/file/", true},
                {"**/", "dir/file/", true},
                {"**/**", "dir/file", true},
                {"**/**", "dir/file/", true},
                {"dir/**", "dir/file", true},
                {"dir/**", "dir/file/", true},
                {"dir/**", "dir/dir2/file", true},
                {"dir/**", "dir/dir2/file/", true},
                {"**/dir", "dir", true},
                {"**/dir", "dir/file", true},
                {"**/dir2/*", "dir/dir2/file", true},
                {"**/dir2/*", "dir/dir2/file/", true},
                {"**/dir2/**", "dir/dir2/dir3/file", true},
                {"**/dir2/**", "dir/dir2/dir3/file/", true},
                {"**file", "file", true},
                {"**file", "dir/file", true},
                {"**/file", "dir/file", true},
                {"**file", "dir/dir/file", true},
                {"**/file", "dir/dir/file", true},
                {"**/file*", "dir/dir/file", true},
                {"**/file*", "dir/dir/file.txt", true},
                {"**/file*txt", "dir/dir/file.txt", true},
                {"**/file*.txt", "dir/dir/file.txt", true},
                {"**/file*.txt*", "dir/dir/file.txt", true},
                {"**/**/*.txt", "dir/dir/file.txt", true},
                {"**/**/*.txt2", "dir/dir/file.txt", false},
                {"**/*.txt", "file.txt", true},
                {"**/**/*.txt", "file.txt", true},
                {"a**/*.txt", "a/file.txt", true},
                {"a**/*.txt", "a/dir/file.txt", true},
                {"a**/*.txt", "a/dir/dir/file.txt", true},
                {"a/*.txt", "a/dir/file.txt", false},
                {"a/*.txt", "a/file.txt", true},
                {"a/*.txt**", "a/file.txt", true},
                {"a[b-d]e", "ae", false},
                {"a[b-d]e", "ace", true},
                {"a[b-d]e", "aae", false},
                {"a[^b-d]e", "aze", true},
                {".*", ".foo", true},
                {".*", "foo", false},
                {"abc.def", "abcdef", false},
                {"abc.def", "abc.def", true},
                {"abc.def", "abcZdef", false},
                {"abc?def", "abcZdef", true},
                {"abc?def", "abcdef", false},
                {"a\\\\", "a\\", true},
                {"**/foo/bar", "foo/bar", true},
                {"**/foo/bar", "dir/foo/bar", true},
                {"**/foo/bar", "dir/dir2/foo/bar", true},
                {"abc/**", "abc", false},
                {"abc/**", "abc/def", true},
                {"abc/**", "abc/def/ghi", true},
                {"**/.foo", ".foo", true},
                {"**/.foo", "bar.foo", false},
                {"a(b)c/def", "a(b)c/def", true},
                {"a(b)c/def", "a(b)c/xyz", false},
                {"a.|)$(}+{bc", "a.|)$(}+{bc", true},
                {"dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                 "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true},
                {"dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true},
                {"a\\*b", "a*b", true},
                /* TestMatch */
                {"abc", "abc", true},
                {"*", "abc", true},
                {"*c", "abc", true},
                {"a*", "a", true},
                {"a*", "abc", true},
                {"a*", "ab/c", true},
                {"a*/b", "abc/b", true},
                {"a*/b", "a/c/b", false},
                {"a*b*c*d*e*/f", "axbxcxdxe/f", true},
                {"a*b*c*d*e*/f", "axbxcxdxexxx/f", true},
                {"a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false},
                {"a*b*c*d*e*/f", "axbxcxdxexxx/fff", false},
                {"a*b?c*x", "abxbbxdbxebxczzx", true},
                {"a*b?c*x", "abxbbxdbxebxczzy", false},
                {"ab[c]", "abc", true},
                {"ab[b-d]", "abc", true},
                {"ab[e-g]", "abc", false},
                {"ab[^c]", "abc", false},
                {"ab[^b-d]", "abc", false},
                {"ab[^e-g]", "abc", true},
                {"a\\*b", "ab", false},
                {"a?b",
                 "a\xE2\x98\xBA"
                 "b",
                 true},
                {"a[^a]b",
                 "a\xE2\x98\xBA"
                 "b",
                 true},
                {"a???b",
                 "a\xE2\x98\xBA"
                 "b",
                 false},
                {"a[^a][^a][^a]b",
                 "a\xE2\x98\xBA"
                 "b",
                 false},
                {"[a-\xCE\xB6]*", "\xCE\xB1", true},
                {"*[a-\xCE\xB6]", "A", false},
                {"a?b", "a/b", false},
                {"a*b", "a/b", false},
                {"[\\]a]", "]", true},
                {"[\\-]", "-", true},
                {"[x\\-]", "x", true},
                {"[x\\-]", "-", true},
                {"[x\\-]", "z", false},
                {"[\\-x]", "x", true},
                {"[\\-x]", "-", true},
                {"[\\-x]", "a", false},
                {"*x", "xxx", true},
                /* Go regexp escapes pass through: \d is a digit, \. a dot. */
                {"v\\d.txt", "v1.txt", true},
                {"v\\d.txt", "vd.txt", false},
                /* '^' is not quoted by Docker: it anchors, so only a leading one can match. */
                {"^a*", "abc", true},
                {"a^*", "a^b", false},
                /* Exact patterns compare the cleaned text. */
                {"./a/../b//c/", "b/c", true},
                {"/abs/path", "abs/path", false},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                check_one(cases[i].pattern, cases[i].path, cases[i].excluded, __LINE__);
}

static void test_bad_patterns(void)
{
        static const char *const bad[] = {
                "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]",
                "[",    "[^",  "[^bc", "a[",   "!",  "a\\y",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct sw_err err = SW_ERR_INIT;
                struct step_dockerignore *m = NULL;
                if (step_dockerignore_new(&m, &bad[i], 1, &err) != SW_EINVAL) {
                        t_fail(__FILE__, __LINE__, "pattern \"%s\" was accepted", bad[i]);
                        step_dockerignore_free(m);
                }
        }
        /* The reader names the line. */
        struct sw_err err = SW_ERR_INIT;
        struct step_dockerignore *m = NULL;
        static const char text[] = "ok\n# c\n[a-\n";
        CHECK_INT(step_dockerignore_parse(&m, text, sizeof(text) - 1, &err), SW_EINVAL);
        CHECK(strstr(err.msg, "line 3") != NULL);
        CHECK(m == NULL);
}

struct lcase {
        const char *patterns[6];
        const char *path;
        bool is_dir;
        unsigned want;
};

#define EXCL STEP_DOCKERIGNORE_EXCLUDED
#define DESC STEP_DOCKERIGNORE_DESCEND

static void test_pattern_lists(void)
{
        static const struct lcase cases[] = {
                {{"**", "!util/docker/web"}, "util/docker/web/foo", false, 0},
                {{"**", "!util/docker/web", "util/docker/web/foo"},
                 "util/docker/web/foo",
                 false,
                 EXCL},
                {{"**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"},
                 "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                 false,
                 0},
                {{"**", "!dist/*.whl"},
                 "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                 false,
                 0},
                {{"!fileutils.go", "*.go"}, "fileutils.go", false, EXCL},
                {{"*.go", "!fileutils.go"}, "fileutils.go", false, 0},
                {{"docs", "!docs/README.md"}, "docs/README.md", false, 0},
                {{"docs/", "!docs/README.md"}, "docs/README.md", false, 0},
                {{"docs/*", "!docs/README.md"}, "docs/README.md", false, 0},
                {{"docs", "!docs/README.md"}, "docs/other.md", false, EXCL},
                /* The excluded directory is left out, but the walk goes in for README.md. */
                {{"docs", "!docs/README.md"}, "docs", true, EXCL | DESC},
                {{"docs", "!docs/README.md"}, "docs/sub", true, EXCL},
                {{"docs", "!**/keep"}, "docs/sub", true, EXCL | DESC},
                {{"docs", "!*.md"}, "docs", true, EXCL},
                {{"docs", "!docs/*/keep.txt"}, "docs/a", true, EXCL | DESC},
                {{"docs", "!docs/*/keep.txt"}, "docs/a/b", true, EXCL},
                {{"docs", "!docs/*/keep.txt"}, "docs/a/keep.txt", false, 0},
                {{"docs"}, "docs", true, EXCL},
                {{"docs"}, "src", true, DESC},
                {{"*"}, ".", true, DESC},
                {{"*", "!src"}, "src/a/b.c", false, 0},
                {{"*", "!src"}, "lib/b.c", false, EXCL},
                {{"**/*.log", "!important.log"}, "a/b/c.log", false, EXCL},
                {{"**/*.log", "!important.log"}, "important.log", false, 0},
                {{"node_modules", ".git"}, ".git/objects/ab", false, EXCL},
                {{"node_modules", ".git"}, "src/node_modules", false, 0},
                {{"**/node_modules"}, "src/node_modules/x/y.js", false, EXCL},
                {{"tmp*"}, "tmp.txt", false, EXCL},
                {{"tmp*"}, "src/tmp.txt", false, 0},
                {{"*/tmp*"}, "src/tmp.txt", false, EXCL},
                {{"*/*/tmp*"}, "src/tmp.txt", false, 0},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const struct lcase *c = &cases[i];
                struct sw_err err = SW_ERR_INIT;
                struct step_dockerignore *m = NULL;
                size_t n = 0;
                while (n < 6 && c->patterns[n])
                        n++;
                if (step_dockerignore_new(&m, c->patterns, n, &err) != 0) {
                        t_fail(__FILE__, __LINE__, "case %zu: %s", i, err.msg);
                        continue;
                }
                unsigned got = step_dockerignore_match(m, c->path, c->is_dir);
                if (got != c->want)
                        t_fail(__FILE__, __LINE__, "case %zu (%s, %s): got %u, want %u", i,
                               c->patterns[0], c->path, got, c->want);
                step_dockerignore_free(m);
        }
}

/* ignorefile's TestReadAll, then a realistic file end to end. */
static void test_read_file(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct step_dockerignore *m = NULL;
        static const char content[] = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a "
                                      "comment\n! /inverted/abs/path\n";
        static const char *const want[] = {"test1", "test2", "a/file/here", "lastfile",
                                           "!inverted/abs/path"};

        CHECK_OK(step_dockerignore_parse(&m, NULL, 0, &err), &err);
        CHECK_INT(step_dockerignore_count(m), 0);
        CHECK_INT(step_dockerignore_match(m, "anything", false), 0);
        step_dockerignore_free(m);
        m = NULL;

        CHECK_OK(step_dockerignore_parse(&m, content, sizeof(content) - 1, &err), &err);
        CHECK_INT(step_dockerignore_count(m), 5);
        for (size_t i = 0; i < 5 && i < step_dockerignore_count(m); i++)
                CHECK_STR(step_dockerignore_pattern(m, i), want[i]);
        step_dockerignore_free(m);
        m = NULL;

        /* "!" alone is an error (patternmatcher refuses it). */
        static const char bang[] = "a\n!\n";
        CHECK_INT(step_dockerignore_parse(&m, bang, sizeof(bang) - 1, &err), SW_EINVAL);
        CHECK(strstr(err.msg, "line 2") != NULL);

        /* BOM, CRLF, trailing blanks, comments only at column 0. */
        static const char real[] = "\xEF\xBB\xBF# build output\r\n"
                                   "  build/   \r\n"
                                   "*.o\n"
                                   " # not a comment\n"
                                   "**/.DS_Store\n"
                                   "!build/keep.txt\n";
        m = NULL;
        sw_err_clear(&err);
        CHECK_OK(step_dockerignore_parse(&m, real, sizeof(real) - 1, &err), &err);
        if (m) {
                CHECK_INT(step_dockerignore_count(m), 5);
                CHECK_STR(step_dockerignore_pattern(m, 0), "build");
                CHECK_STR(step_dockerignore_pattern(m, 2), "# not a comment");
                CHECK_INT(step_dockerignore_match(m, "build", true), EXCL | DESC);
                CHECK_INT(step_dockerignore_match(m, "build/out.bin", false), EXCL);
                CHECK_INT(step_dockerignore_match(m, "build/keep.txt", false), 0);
                CHECK_INT(step_dockerignore_match(m, "main.o", false), EXCL);
                CHECK_INT(step_dockerignore_match(m, "src/main.o", false), 0);
                CHECK_INT(step_dockerignore_match(m, "src/a/.DS_Store", false), EXCL);
                CHECK_INT(step_dockerignore_match(m, "src/main.c", false), 0);
                CHECK_INT(step_dockerignore_match(m, "./src/../main.o", false), EXCL);
                CHECK_INT(step_dockerignore_match(m, "/main.o", false), EXCL);
        }
        step_dockerignore_free(m);
}

static void test_limits(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct step_dockerignore *m = NULL;
        size_t n = STEP_DOCKERIGNORE_MAX_BYTES + 1;
        char *big = sw_xmalloc(n);

        memset(big, 'a', n);
        CHECK_INT(step_dockerignore_parse(&m, big, n, &err), SW_ETOOBIG);
        /* Too many patterns. */
        size_t k = 0;
        for (int i = 0; i < STEP_DOCKERIGNORE_MAX_PATTERNS + 1; i++)
                k += (size_t)snprintf(big + k, n - k, "p%d\n", i);
        sw_err_clear(&err);
        CHECK_INT(step_dockerignore_parse(&m, big, k, &err), SW_ETOOBIG);
        /* A long path against many stars stays linear (no backtracking blow-up). */
        const char *pats[] = {"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b"};
        CHECK_OK(step_dockerignore_new(&m, pats, 1, &err), &err);
        memset(big, 'a', 4000);
        big[4000] = '\0';
        CHECK_INT(step_dockerignore_match(m, big, false), 0);
        step_dockerignore_free(m);
        free(big);
}

int main(void)
{
        T_RUN(test_single_patterns);
        T_RUN(test_bad_patterns);
        T_RUN(test_pattern_lists);
        T_RUN(test_read_file);
        T_RUN(test_limits);
        return t_done();
}
