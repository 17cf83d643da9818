/*
 * test_cli.c - the job commands of the real `slipway` binary: a request is
 * validated before it is queued (errors name the flag), jobs are listed and
 * shown, cancelled and retried, and several `slipway worker` processes on one
 * database run each job once.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/mem.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

static char *data_env;

/* Run slipway with the arguments up to a NULL; capture its output. */
static int sw_run(char **out, ...)
{
        char *argv[24];
        const char *env[] = {data_env, "SLIPWAY_POLL_MS=20", NULL};
        va_list ap;
        int n = 0;

        argv[n++] = (char *)tp_slipway();
        va_start(ap, out);
        while (n < 23 && (argv[n] = va_arg(ap, char *)) != NULL)
                n++;
        va_end(ap);
        argv[n] = NULL;
        return tp_run(out, argv, env, 30000);
}

#define SW(out, ...) sw_run(out, __VA_ARGS__, (char *)NULL)

static void expect_refused(const char *flag, const char *value, const char *needle)
{
        char *out = NULL;
        int rc;
        char *argv[] = {(char *)tp_slipway(),
                        "submit",
                        "--repo",
                        "https://git.example/app.git",
                        "--name",
                        "web",
                        (char *)flag,
                        (char *)value,
                        NULL};
        const char *env[] = {data_env, NULL};
        rc = tp_run(&out, argv, env, 10000);
        CHECK_INT(rc, 2);
        if (!strstr(out, needle))
                t_fail(__FILE__, __LINE__, "%s %s: output lacks '%s': %s", flag, value, needle,
                       out);
        free(out);
}

static void test_submit_validation(void)
{
        char *out = NULL;

        expect_refused("--name", "Web_App", "--name");
        expect_refused("--namespace", "-bad", "--namespace");
        expect_refused("--cpu", "lots", "--cpu");
        expect_refused("--memory", "12XB", "--memory");
        expect_refused("--type", "Ingress", "--type");
        expect_refused("--replicas", "-1", "--replicas");
        expect_refused("--port", "70000", "--port");
        expect_refused("--host", "a.b;rm -rf /", "--host");
        expect_refused("--branch", "a..b", "--branch");
        expect_refused("--commit", "zzzz", "--commit");
        expect_refused("--memory-limit", "1Mi", "--memory-limit");
        /* nothing was queued by the refused requests */
        CHECK_INT(SW(&out, "jobs", "--json"), 1);
        CHECK(strstr(out, "no database") != NULL);
        free(out);
        CHECK_INT(SW(&out, "submit", "--name", "web"), 2);
        CHECK(strstr(out, "--repo") != NULL);
        free(out);
}

static void test_submit_list_cancel_retry(void)
{
        char *out = NULL;

        CHECK_INT(SW(&out, "submit", "--repo", "https://git.example/app.git", "--name", "web",
                     "--idempotency-key", "delivery-1"),
                  0);
        CHECK(strstr(out, "job 1 queued") != NULL);
        free(out);
        CHECK_INT(SW(&out, "submit", "--repo", "https://git.example/app.git", "--name", "web",
                     "--idempotency-key", "delivery-1"),
                  0);
        CHECK(strstr(out, "job 1 already exists") != NULL);
        free(out);
        CHECK_INT(SW(&out, "submit", "--repo", "https://git.example/other.git", "--name", "api"),
                  0);
        free(out);
        CHECK_INT(SW(&out, "jobs"), 0);
        CHECK(strstr(out, "default/web") && strstr(out, "default/api"));
        free(out);
        CHECK_INT(SW(&out, "cancel", "2"), 0);
        CHECK(strstr(out, "job 2 cancelled") != NULL);
        free(out);
        CHECK_INT(SW(&out, "cancel", "2"), 1);
        CHECK(strstr(out, "already cancelled") != NULL);
        free(out);
        CHECK_INT(SW(&out, "retry", "2"), 0);
        free(out);
        CHECK_INT(SW(&out, "job", "77"), 1);
        CHECK(strstr(out, "job 77 not found") != NULL);
        free(out);
        CHECK_INT(SW(&out, "worker", "--drain"), 0);
        free(out);
        CHECK_INT(SW(&out, "job", "1"), 0);
        CHECK(strstr(out, "succeeded") && strstr(out, "validate"));
        free(out);
        CHECK_INT(SW(&out, "logs", "2"), 0);
        CHECK(strstr(out, "deploy default/api from https://git.example/other.git") != NULL);
        free(out);
        CHECK_INT(SW(&out, "jobs", "--state", "succeeded"), 0);
        CHECK(strstr(out, "default/web") && strstr(out, "default/api"));
        free(out);
}

static void test_many_workers_run_each_job_once(void)
{
        const char *env[] = {data_env, "SLIPWAY_POLL_MS=10", NULL};
        char *out = NULL;
        pid_t pids[3];
        int64_t deadline;

        for (int i = 0; i < 20; i++) {
                char name[16];
                snprintf(name, sizeof(name), "app-%d", i);
                CHECK_INT(SW(&out, "submit", "--repo", "/srv/git/app", "--name", name), 0);
                free(out);
        }
        for (int i = 0; i < 3; i++) {
                char *argv[] = {(char *)tp_slipway(), "worker", NULL};
                pids[i] = tp_spawn(argv, env, NULL);
        }
        deadline = sw_mono_ms() + 30000;
        do {
                sw_sleep_ms(100);
                SW(&out, "jobs", "--state", "queued");
                bool empty = strchr(out, '\n') == strrchr(out, '\n');
                free(out);
                if (empty)
                        break;
        } while (sw_mono_ms() < deadline);
        for (int i = 0; i < 3; i++) {
                kill(pids[i], SIGTERM);
                CHECK_INT(tp_wait(pids[i], 10000), 0);
        }
        CHECK_INT(SW(&out, "jobs", "--state", "succeeded", "--limit", "100"), 0);
        for (int i = 0; i < 20; i++) {
                char app[32];
                snprintf(app, sizeof(app), "default/app-%d ", i);
                if (!strstr(out, app))
                        t_fail(__FILE__, __LINE__, "%s did not succeed", app);
        }
        free(out);
        /* each ran its one step in exactly one attempt */
        CHECK_INT(SW(&out, "jobs", "--json", "--limit", "100"), 0);
        CHECK(strstr(out, "\"attempt\":2") == NULL);
        free(out);
}

static void test_help_everywhere(void)
{
        static const char *const cmds[] = {"submit", "jobs",  "job",    "logs",
                                           "cancel", "retry", "worker", "config"};
        char *out = NULL;

        for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
                CHECK_INT(SW(&out, cmds[i], "--help"), 0);
                if (!strstr(out, "usage: slipway"))
                        t_fail(__FILE__, __LINE__, "%s --help: %s", cmds[i], out);
                free(out);
        }
        CHECK_INT(SW(&out, "--help"), 0);
        free(out);
        CHECK_INT(SW(&out, "frobnicate"), 2);
        CHECK(strstr(out, "unknown command") != NULL);
        free(out);
}

static void test_config_listing_and_readme(void)
{
        char *out = NULL, *readme = NULL;
        struct sw_err err = SW_ERR_INIT;

        CHECK_INT(SW(&out, "config"), 0);
        CHECK(strstr(out, "SLIPWAY_WORKERS=2") != NULL);
        free(out);
        /*
         * The README's table of variables is exactly what `slipway config
         * --markdown` prints: every variable, its default and meaning
         * (scripts/readme-config.sh rewrites it).
         */
        CHECK_INT(SW(&out, "config", "--markdown"), 0);
        CHECK_OK(sw_read_file(&readme, NULL, SW_TEST_SOURCE_DIR "/README.md", 1 << 20, &err), &err);
        const char *begin = readme ? strstr(readme, "<!-- config:begin") : NULL;
        const char *end = readme ? strstr(readme, "<!-- config:end") : NULL;
        CHECK(begin && end);
        if (begin && end) {
                begin = strchr(begin, '\n') + 1;
                if ((size_t)(end - begin) != strlen(out) || strncmp(begin, out, strlen(out)) != 0)
                        t_fail(__FILE__, __LINE__,
                               "README.md's configuration table differs from `slipway config "
                               "--markdown`: run scripts/readme-config.sh");
        }
        free(readme);
        free(out);
}

int main(void)
{
        data_env = sw_xasprintf("SLIPWAY_DATA=%s/data", t_tmpdir());
        T_RUN(test_help_everywhere);
        T_RUN(test_submit_validation);
        T_RUN(test_submit_list_cancel_retry);
        T_RUN(test_many_workers_run_each_job_once);
        T_RUN(test_config_listing_and_readme);
        free(data_env);
        return t_done();
}
