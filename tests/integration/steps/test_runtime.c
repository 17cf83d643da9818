/*
 * test_runtime.c - a process under the real runc: output, exit status,
 * environment, working directory and user, a network namespace with only
 * loopback, read-only bind mounts, cancel, and runc's own errors.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/mem.h"
#include "steps/runtime.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

static char *rootfs;

static void make_rootfs(void)
{
        struct sw_err err = SW_ERR_INIT;
        char *bin;
        char *argv[] = {"/bin/cp", "/bin/busybox", NULL, NULL};
        char *out = NULL;

        rootfs = sw_xasprintf("%s/rootfs", t_tmpdir());
        bin = sw_xasprintf("%s/bin", rootfs);
        CHECK_OK(sw_mkdir_p(bin, 0755, &err), &err);
        argv[2] = bin;
        CHECK_INT(t_run_capture(&out, argv, NULL, 10000), 0);
        free(out);
        /* busybox applets by name, the way an image has them */
        static const char *const applets[] = {"sh",  "echo", "id",  "ip",    "sleep",
                                              "cat", "pwd",  "env", "touch", "ls"};
        for (size_t i = 0; i < sizeof(applets) / sizeof(applets[0]); i++) {
                char *link = sw_xasprintf("%s/%s", bin, applets[i]);
                if (symlink("busybox", link) != 0)
                        t_fail(__FILE__, __LINE__, "symlink %s", link);
                free(link);
        }
        free(bin);
}

static void collect(void *arg, const char *data, size_t len)
{
        struct sw_err ignored = SW_ERR_INIT;

        sw_buf_append(arg, data, len, &ignored);
}

static int run(int *code, struct sw_buf *out, const char *script, const char *const *env,
               uint32_t uid, const char *cwd, const struct step_rt_mount *mounts, size_t nmounts,
               atomic_int *stop, struct sw_err *err)
{
        static int seq;
        const char *args[] = {"sh", "-c", script, NULL};
        const char *def_env[] = {"PATH=/bin", NULL};
        char *bundle = sw_xasprintf("%s/bundle%d", t_tmpdir(), ++seq);
        char *id = sw_xasprintf("slipway-test-%d-%d", (int)getpid(), seq);
        char *state = sw_xasprintf("%s/runc-state", t_tmpdir());
        struct step_rt_process p = {0};
        int rc;

        sw_mkdir_p(bundle, 0700, err);
        p.state_dir = state;
        p.bundle_dir = bundle;
        p.rootfs = rootfs;
        p.id = id;
        p.args = args;
        p.env = env ? env : def_env;
        p.cwd = cwd;
        p.uid = uid;
        p.gid = uid;
        p.mounts = mounts;
        p.nmounts = nmounts;
        p.stop = stop;
        p.output = collect;
        p.output_arg = out;
        rc = step_rt_run(code, &p, err);
        free(bundle);
        free(id);
        free(state);
        return rc;
}

static void test_output_and_exit_code(void)
{
        struct sw_buf out = SW_BUF_INIT;
        struct sw_err err = SW_ERR_INIT;
        int code = -1;

        CHECK_OK(run(&code, &out, "echo hello; echo oops >&2; exit 3", NULL, 0, NULL, NULL, 0, NULL,
                     &err),
                 &err);
        CHECK_INT(code, 3);
        CHECK(strstr(sw_buf_str(&out), "hello\n") && strstr(sw_buf_str(&out), "oops\n"));
        sw_buf_release(&out);
}

static void test_env_cwd_user(void)
{
        const char *env[] = {"PATH=/bin", "GREETING=hi there", NULL};
        struct sw_buf out = SW_BUF_INIT;
        struct sw_err err = SW_ERR_INIT;
        int code = -1;

        CHECK_OK(run(&code, &out, "echo \"$GREETING\"; pwd; id -u", env, 1000, "/bin", NULL, 0,
                     NULL, &err),
                 &err);
        CHECK_INT(code, 0);
        CHECK_STR(sw_buf_str(&out), "hi there\n/bin\n1000\n");
        sw_buf_release(&out);
}

static void test_network_is_loopback_only(void)
{
        struct sw_buf out = SW_BUF_INIT;
        struct sw_err err = SW_ERR_INIT;
        int code = -1;

        CHECK_OK(run(&code, &out, "ip -o link | while read n name rest; do echo $name; done", NULL,
                     0, NULL, NULL, 0, NULL, &err),
                 &err);
        CHECK_INT(code, 0);
        CHECK_STR(sw_buf_str(&out), "lo:\n");
        sw_buf_release(&out);
}

static void test_readonly_bind_mount(void)
{
        struct sw_buf out = SW_BUF_INIT;
        struct sw_err err = SW_ERR_INIT;
        char *dir = sw_xasprintf("%s/secret", t_tmpdir());
        char *file = sw_xasprintf("%s/token", dir);
        struct step_rt_mount m = {dir, "/run/secrets", true};
        int code = -1;

        CHECK_OK(sw_mkdir_p(dir, 0700, &err), &err);
        CHECK_OK(sw_write_file_atomic(file, "s3cret", 6, 0600, &err), &err);
        CHECK_OK(run(&code, &out,
                     "cat /run/secrets/token; echo; touch /run/secrets/x && echo writable", NULL, 0,
                     NULL, &m, 1, NULL, &err),
                 &err);
        CHECK(strstr(sw_buf_str(&out), "s3cret\n") != NULL);
        CHECK(strstr(sw_buf_str(&out), "writable") == NULL);
        if (!strstr(sw_buf_str(&out), "s3cret\n")) /* seen once in CI: say what came out */
                fprintf(stderr, "  exit %d, output: '%s'\n", code, sw_buf_str(&out));
        /* the secret never landed in the rootfs */
        char *leak = sw_xasprintf("%s/run/secrets/token", rootfs);
        struct stat st;
        CHECK(stat(leak, &st) != 0 || st.st_size == 0);
        free(leak);
        sw_buf_release(&out);
        free(dir);
        free(file);
}

static void test_cancel(void)
{
        struct sw_buf out = SW_BUF_INIT;
        struct sw_err err = SW_ERR_INIT;
        atomic_int stop = 1; /* already asked to stop: killed at the first check */
        int code = -1;
        int64_t t0 = sw_mono_ms();

        CHECK_INT(run(&code, &out, "sleep 30", NULL, 0, NULL, NULL, 0, &stop, &err), SW_ECANCELED);
        CHECK(sw_mono_ms() - t0 < 5000);
        sw_buf_release(&out);
}

static void test_runtime_error(void)
{
        struct sw_buf out = SW_BUF_INIT;
        struct sw_err err = SW_ERR_INIT;
        int code = -1;

        /* a working directory that is a file: runc itself fails, and says why */
        CHECK_INT(run(&code, &out, "true", NULL, 0, "/bin/busybox", NULL, 0, NULL, &err),
                  SW_EFAILED);
        CHECK(strstr(err.msg, "runc") != NULL);
        sw_buf_release(&out);
}

int main(void)
{
        if (geteuid() != 0) {
                printf("runc needs root here; skipped\n");
                return 0;
        }
        make_rootfs();
        T_RUN(test_output_and_exit_code);
        T_RUN(test_env_cwd_user);
        T_RUN(test_network_is_loopback_only);
        T_RUN(test_readonly_bind_mount);
        T_RUN(test_cancel);
        T_RUN(test_runtime_error);
        free(rootfs);
        return t_done();
}
