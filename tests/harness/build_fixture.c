/*
 * build_fixture.c - helpers for the image builder's tests.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fs.h"
#include "common/mem.h"
#include "tests/harness/build_fixture.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

struct sw_buf tb_log = {NULL, 0, 0, (size_t)64 << 20};

void tb_on_log(void *arg, const char *line)
{
        struct sw_err ignored = SW_ERR_INIT;

        (void)arg;
        sw_buf_printf(&tb_log, &ignored, "%s\n", line);
}

void tb_on_output(void *arg, const char *data, size_t len)
{
        struct sw_err ignored = SW_ERR_INIT;

        (void)arg;
        sw_buf_append(&tb_log, data, len, &ignored);
}

void tb_put(const char *dir, const char *name, const char *text)
{
        struct sw_err err = SW_ERR_INIT;
        char *path = sw_xasprintf("%s/%s", dir, name);
        char *slash = strrchr(path, '/');

        *slash = '\0';
        CHECK_OK(sw_mkdir_p(path, 0755, &err), &err);
        *slash = '/';
        CHECK_OK(sw_write_file_atomic(path, text, strlen(text), 0644, &err), &err);
        free(path);
}

char *tb_slurp(const char *dir, const char *name)
{
        char *path = sw_xasprintf("%s/%s", dir, name), *text = NULL;
        struct sw_err err = SW_ERR_INIT;

        if (sw_read_file(&text, NULL, path, 1 << 20, &err) != 0)
                text = NULL;
        free(path);
        return text;
}

bool tb_exists(const char *dir, const char *name)
{
        char *path = sw_xasprintf("%s/%s", dir, name);
        struct stat st;
        bool yes = lstat(path, &st) == 0;

        free(path);
        return yes;
}

char *tb_context(const char *name, const char *dockerfile)
{
        char *dir = sw_xasprintf("%s/%s", t_tmpdir(), name);
        char *bb = sw_xasprintf("%s/busybox", dir);
        char *argv[] = {"/bin/cp", "/bin/busybox", bb, NULL};
        char *out = NULL;

        tb_put(dir, "Dockerfile", dockerfile);
        CHECK_INT(t_run_capture(&out, argv, NULL, 10000), 0);
        free(out);
        free(bb);
        return dir;
}
