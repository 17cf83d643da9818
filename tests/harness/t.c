/*
 * t.c - the test framework behind t.h.
 */
#include <stdarg.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/fs.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

int t_failures_in_test;
static int t_passed, t_failed;
static char *t_dir;

void t_fail(const char *file, int line, const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "  FAIL %s:%d: ", file, line);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        t_failures_in_test++;
}

void t_run(const char *name, void (*fn)(void))
{
        t_failures_in_test = 0;
        fn();
        if (t_failures_in_test) {
                t_failed++;
                fprintf(stderr, "not ok %s\n", name);
        } else {
                t_passed++;
                fprintf(stderr, "ok %s\n", name);
        }
}

const char *t_tmpdir(void)
{
        if (!t_dir) {
                struct sw_err err = SW_ERR_INIT;
                if (sw_mkdtemp(&t_dir, "/tmp", "slipway-test-", &err) != 0) {
                        fprintf(stderr, "cannot create temporary directory: %s\n", err.msg);
                        exit(1);
                }
        }
        return t_dir;
}

int t_done(void)
{
        if (t_dir) {
                struct sw_err err = SW_ERR_INIT;
                if (!t_failed)
                        sw_rm_rf(t_dir, &err);
                else
                        fprintf(stderr, "kept %s for inspection\n", t_dir);
                free(t_dir);
        }
        printf("%d passed, %d failed\n", t_passed, t_failed);
        return t_failed ? 1 : 0;
}

const char *t_slipway(void)
{
        const char *p = getenv("SW_TEST_SLIPWAY");

        return p ? p : SW_TEST_BINARY_DIR "/slipway";
}
