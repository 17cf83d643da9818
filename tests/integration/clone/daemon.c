/*
 * daemon.c - the clone step against a real `git daemon` on loopback: branch,
 * tag and commit checkouts, the errors a user sees (unknown branch, missing
 * repository, unreachable server) and the `slipway clone` command, each
 * through the pipeline runner on a real queue. mirror.c covers the cache,
 * submodules and the size limit.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <git2.h>

#include "common/clock.h"
#include "common/digest.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
#include "engine/pipeline.h"
#include "steps/clone.h"
#include "tests/harness/clone_job.h"
#include "tests/harness/git.h"
#include "tests/harness/t.h"

static char *repos; /* the daemon's base path */
static int port;    /* the daemon's port */

static char *url_of(const char *name)
{
        return sw_xasprintf("git://127.0.0.1:%d/%s.git", port, name);
}

static char *work_of(const char *name)
{
        return sw_xasprintf("%s/%s.work", repos, name);
}

static void test_branch(void)
{
        struct t_clone_job j;
        char sha[41], *url = url_of("app"), *work = work_of("app"), *data = t_clone_data_dir();
        char *payload, *text, *head;

        CHECK_INT(t_git_commit_push(sha, work, "feature", "src/hello.txt", "hello from feature"),
                  0);
        payload = t_clone_payload(url, "feature", NULL);
        CHECK_INT(t_clone_run_limited(&j, data, NULL, payload), 0);
        CHECK_OK(j.rc, &j.err);
        CHECK_STR(j.state, "succeeded");
        CHECK_STR(sw_json_str(j.output, "commit", ""), sha);
        CHECK_STR(sw_json_str(j.output, "ref", ""), "refs/heads/feature");
        CHECK_STR(sw_json_str(j.output, "url", ""), url);
        {
                char *want = sw_xasprintf("%s/work/%lld/src", data, (long long)j.id);
                CHECK_STR(sw_json_str(j.output, "path", ""), want);
                free(want);
        }
        text = t_clone_file_text(sw_json_str(j.output, "path", "/"), "src/hello.txt");
        CHECK_STR(text, "hello from feature");
        head = t_git_sh_out("git -C '%s' rev-parse HEAD", sw_json_str(j.output, "path", "/"));
        CHECK_STR(head, sha);
        free(head);
        head = t_git_sh_out("git -C '%s' rev-parse --abbrev-ref HEAD",
                            sw_json_str(j.output, "path", "/"));
        CHECK_STR(head, "feature");
        free(head);
        /* The working tree is clean and its origin is the real URL. */
        head = t_git_sh_out("git -C '%s' status --porcelain", sw_json_str(j.output, "path", "/"));
        CHECK_STR(head, "");
        free(head);
        head = t_git_sh_out("git -C '%s' remote get-url origin",
                            sw_json_str(j.output, "path", "/"));
        CHECK_STR(head, url);
        free(head);
        CHECK(strstr(j.log, "cloning git://") != NULL);
        free(text);
        t_clone_job_release(&j);
        free(payload);
        free(url);
        free(work);
        free(data);
}

static void test_tag(void)
{
        struct t_clone_job j;
        char sha[41], later[41], *url = url_of("app"), *work = work_of("app"),
                                 *data = t_clone_data_dir();
        char *payload, *text;

        CHECK_INT(t_git_commit_push(sha, work, "main", "version.txt", "1.0"), 0);
        CHECK_INT(t_git_tag_push(work, "v1.0", true), 0);
        CHECK_INT(t_git_commit_push(later, work, "main", "version.txt", "2.0-dev"), 0);
        payload = t_clone_payload(url, "v1.0", NULL);
        CHECK_INT(t_clone_run_limited(&j, data, NULL, payload), 0);
        CHECK_OK(j.rc, &j.err);
        /* An annotated tag resolves to its commit. */
        CHECK_STR(sw_json_str(j.output, "commit", ""), sha);
        CHECK_STR(sw_json_str(j.output, "ref", ""), "refs/tags/v1.0");
        text = t_clone_file_text(sw_json_str(j.output, "path", "/"), "version.txt");
        CHECK_STR(text, "1.0");
        free(text);
        t_clone_job_release(&j);
        free(payload);
        free(url);
        free(work);
        free(data);
}

static void test_commit(void)
{
        struct t_clone_job j;
        char old[41], tip[41], feat[41], abbrev[9];
        char *url = url_of("app"), *work = work_of("app"), *data = t_clone_data_dir();
        char *payload, *text;

        CHECK_INT(t_git_commit_push(old, work, "main", "state.txt", "old"), 0);
        CHECK_INT(t_git_commit_push(tip, work, "main", "state.txt", "new"), 0);

        /* A full sha alone. */
        payload = t_clone_payload(url, NULL, old);
        CHECK_INT(t_clone_run_limited(&j, data, NULL, payload), 0);
        CHECK_OK(j.rc, &j.err);
        CHECK_STR(sw_json_str(j.output, "commit", ""), old);
        CHECK(json_is_null(json_object_get(j.output, "ref")));
        text = t_clone_file_text(sw_json_str(j.output, "path", "/"), "state.txt");
        CHECK_STR(text, "old");
        free(text);
        t_clone_job_release(&j);
        free(payload);

        /* An abbreviated sha with the branch it is on. */
        memcpy(abbrev, old, 8);
        abbrev[8] = '\0';
        payload = t_clone_payload(url, "main", abbrev);
        CHECK_INT(t_clone_run_limited(&j, data, NULL, payload), 0);
        CHECK_OK(j.rc, &j.err);
        CHECK_STR(sw_json_str(j.output, "commit", ""), old);
        CHECK_STR(sw_json_str(j.output, "ref", ""), "refs/heads/main");
        t_clone_job_release(&j);
        free(payload);

        /* A commit that is not on the branch given with it. */
        CHECK_INT(t_git_commit_push(feat, work, "side", "side.txt", "side"), 0);
        CHECK_INT(t_git_sh("git -C '%s' checkout -q main", work), 0);
        payload = t_clone_payload(url, "main", feat);
        CHECK_INT(t_clone_run_limited(&j, data, NULL, payload), 0);
        CHECK_INT(j.rc, SW_ENOTFOUND);
        CHECK_STR(j.state, "failed");
        CHECK(j.error && strstr(j.error, "is not on branch or tag 'main'"));
        CHECK(j.error && strstr(j.error, feat));
        t_clone_job_release(&j);
        free(payload);

        /* A commit that does not exist at all. */
        payload = t_clone_payload(url, NULL, "0123456789abcdef0123456789abcdef01234567");
        CHECK_INT(t_clone_run_limited(&j, data, NULL, payload), 0);
        CHECK_INT(j.rc, SW_ENOTFOUND);
        CHECK(j.error && strstr(j.error, "commit '0123456789abcdef0123456789abcdef01234567' "
                                         "not found"));
        t_clone_job_release(&j);
        free(payload);
        free(url);
        free(work);
        free(data);
}

static void test_unknown_branch(void)
{
        struct t_clone_job j;
        char *url = url_of("app"), *data = t_clone_data_dir();
        char *payload = t_clone_payload(url, "no-such-branch", NULL);
        char *work;

        CHECK_INT(t_clone_run_limited(&j, data, NULL, payload), 0);
        CHECK_INT(j.rc, SW_ENOTFOUND);
        CHECK(!sw_err_transient(j.rc));
        CHECK_STR(j.state, "failed");
        CHECK(j.error && strstr(j.error, "'no-such-branch'"));
        CHECK(j.error && strstr(j.error, url));
        /* Nothing half-made is left behind. */
        work = sw_xasprintf("%s/work/%lld/src", data, (long long)j.id);
        CHECK(!t_clone_exists(work));
        free(work);
        t_clone_job_release(&j);
        free(payload);
        free(url);
        free(data);
}

static void test_missing_repository(void)
{
        struct t_clone_job j;
        char *url = url_of("nothere"), *data = t_clone_data_dir();
        char *payload = t_clone_payload(url, "main", NULL),
             *mirror = t_clone_mirror_path(data, url);
        char *tmp = sw_xasprintf("%s.tmp", mirror);

        CHECK_INT(t_clone_run_limited(&j, data, NULL, payload), 0);
        CHECK_INT(j.rc, SW_ENOTFOUND);
        CHECK(j.error && strstr(j.error, url));
        CHECK(!t_clone_exists(mirror));
        CHECK(!t_clone_exists(tmp));
        t_clone_job_release(&j);
        free(payload);
        free(url);
        free(mirror);
        free(tmp);
        free(data);
}

static void test_unreachable_server(void)
{
        struct t_clone_job j;
        int dead = t_git_free_port();
        char *url = sw_xasprintf("git://127.0.0.1:%d/app.git", dead), *data = t_clone_data_dir();
        char *payload = t_clone_payload(url, "main", NULL);

        CHECK_INT(t_clone_run_limited(&j, data, NULL, payload), 0);
        CHECK_INT(j.rc, SW_EUNAVAIL);
        CHECK(sw_err_transient(j.rc));
        CHECK(j.error && strstr(j.error, url));
        t_clone_job_release(&j);
        free(payload);
        free(url);
        free(data);
}

static void test_cli(void)
{
        const char *slipway = getenv("SW_TEST_SLIPWAY");
        char sha[41], *url = url_of("app"), *work = work_of("app"), *data = t_clone_data_dir();
        char *out, *dir = sw_xasprintf("%s/cli-checkout", t_tmpdir());

        if (!slipway) {
                t_fail(__FILE__, __LINE__, "SW_TEST_SLIPWAY is not set");
                goto out;
        }
        CHECK_INT(t_git_commit_push(sha, work, "cli", "cli.txt", "from the cli"), 0);
        out = t_git_sh_out("SLIPWAY_DATA='%s' '%s' clone '%s' --branch cli '%s' 2>/dev/null", data,
                           slipway, url, dir);
        CHECK(out && strstr(out, sha));
        CHECK(out && strstr(out, "\"ref\":\"refs/heads/cli\""));
        free(out);
        out = t_clone_file_text(dir, "cli.txt");
        CHECK_STR(out, "from the cli");
        free(out);
        CHECK_INT(t_git_sh("'%s' clone --help | grep -q 'usage: slipway clone'", slipway), 0);
        /* A directory with files in it is refused and left alone. */
        CHECK_INT(t_git_sh("SLIPWAY_DATA='%s' '%s' clone '%s' --branch cli '%s' 2>/dev/null", data,
                           slipway, url, dir),
                  2);
        out = t_clone_file_text(dir, "cli.txt");
        CHECK_STR(out, "from the cli");
        free(out);
        CHECK_INT(t_git_sh("SLIPWAY_DATA='%s' '%s' clone '%s' --branch nope '%s/x' 2>/dev/null",
                           data, slipway, url, dir),
                  1);
out:
        free(dir);
        free(url);
        free(work);
        free(data);
}

/*
 * The real binary: `slipway submit` queues a deploy, `slipway worker --drain`
 * runs the deploy pipeline, whose clone step checks out the commit. Only the
 * clone step is looked at: later steps of the pipeline are not this test's.
 */
static void test_deploy_pipeline(void)
{
        const char *slipway = getenv("SW_TEST_SLIPWAY");
        char sha[41], *url = url_of("app"), *work = work_of("app"), *data = t_clone_data_dir();
        struct sw_err err = SW_ERR_INIT;
        json_t *job = NULL, *step;
        char *out;
        size_t i;

        if (!slipway) {
                t_fail(__FILE__, __LINE__, "SW_TEST_SLIPWAY is not set");
                goto out;
        }
        CHECK_INT(t_git_commit_push(sha, work, "deploy", "deploy.txt", "deploy me"), 0);
        out = t_git_sh_out("export SLIPWAY_DATA='%s' SLIPWAY_MAX_ATTEMPTS=1; "
                           "'%s' submit --repo '%s' --name web --branch deploy >/dev/null && "
                           "'%s' worker --drain >/dev/null 2>&1; '%s' job 1 --json",
                           data, slipway, url, slipway, slipway);
        CHECK(out != NULL);
        if (!out)
                goto out;
        CHECK_OK(sw_json_parse(&job, out, strlen(out), 0, &err), &err);
        free(out);
        json_array_foreach(json_object_get(job, "steps"), i, step)
        {
                if (strcmp(sw_json_str(step, "name", ""), "clone") != 0)
                        continue;
                CHECK_STR(sw_json_str(step, "state", ""), "succeeded");
                CHECK_STR(sw_json_str(json_object_get(step, "output"), "commit", ""), sha);
                CHECK_STR(sw_json_str(json_object_get(step, "output"), "ref", ""),
                          "refs/heads/deploy");
                out = t_clone_file_text(sw_json_str(json_object_get(step, "output"), "path", "/"),
                                        "deploy.txt");
                CHECK_STR(out, "deploy me");
                free(out);
                break;
        }
        CHECK(i < json_array_size(json_object_get(job, "steps")));
out:
        json_decref(job);
        free(url);
        free(work);
        free(data);
}

struct stopper {
        atomic_int *stop;
        int after_ms;
};

static void *stop_later(void *arg)
{
        struct stopper *s = arg;

        sw_sleep_ms(s->after_ms);
        atomic_store(s->stop, ENG_STOP_CANCEL);
        return NULL;
}

/*
 * A server that accepts connections (the kernel completes them from the
 * backlog) and never answers: something no real git server does on purpose,
 * hence a bare socket. The timeout and a cancel still end the clone.
 */
static void test_stalled_server(void)
{
        struct sockaddr_in a;
        socklen_t alen = sizeof(a);
        struct t_clone_job j;
        atomic_int stop = ENG_STOP_NONE;
        struct stopper s = {&stop, 500};
        const char *extra[] = {"SLIPWAY_CLONE_TIMEOUT_MS=1000", NULL};
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        char *url_git = NULL, *url_http = NULL, *data = t_clone_data_dir(), *payload;
        pthread_t th;
        int64_t t0;

        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        CHECK(fd >= 0);
        CHECK_INT(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        CHECK_INT(listen(fd, 16), 0);
        CHECK_INT(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
        url_git = sw_xasprintf("git://127.0.0.1:%d/app.git", ntohs(a.sin_port));
        url_http = sw_xasprintf("http://127.0.0.1:%d/app.git", ntohs(a.sin_port));

        t0 = sw_mono_ms();
        payload = t_clone_payload(url_git, "main", NULL);
        CHECK_INT(t_clone_run(&j, data, extra, payload, NULL), 0);
        CHECK_INT(j.rc, SW_ETIMEDOUT);
        CHECK(j.error && strstr(j.error, "SLIPWAY_CLONE_TIMEOUT_MS"));
        CHECK(sw_mono_ms() - t0 < 3000);
        t_clone_job_release(&j);
        free(payload);

        t0 = sw_mono_ms();
        payload = t_clone_payload(url_http, "main", NULL);
        CHECK_INT(pthread_create(&th, NULL, stop_later, &s), 0);
        CHECK_INT(t_clone_run(&j, data, NULL, payload, &stop), 0);
        pthread_join(th, NULL);
        CHECK_INT(j.rc, SW_ECANCELED);
        CHECK_STR(j.state, "cancelled");
        CHECK(sw_mono_ms() - t0 < 2500);
        t_clone_job_release(&j);
        free(payload);
        close(fd);
        free(url_git);
        free(url_http);
        free(data);
}

int main(void)
{
        struct sw_err gerr = SW_ERR_INIT;
        struct t_git_daemon d;
        int rc;

        git_libgit2_init();
        if (step_clone_global_init(&gerr) != 0) {
                fprintf(stderr, "%s\n", gerr.msg);
                return 1;
        }
        repos = sw_xasprintf("%s/repos", t_tmpdir());
        if (t_git_sh("mkdir -p '%s'", repos) != 0 || t_git_repo_create(repos, "app") != 0 ||
            t_git_daemon_start(&d, repos, t_tmpdir()) != 0) {
                fprintf(stderr, "cannot set up the git repositories and daemon\n");
                return 1;
        }
        port = d.port;
        T_RUN(test_branch);
        T_RUN(test_tag);
        T_RUN(test_commit);
        T_RUN(test_unknown_branch);
        T_RUN(test_missing_repository);
        T_RUN(test_unreachable_server);
        T_RUN(test_stalled_server);
        T_RUN(test_cli);
        T_RUN(test_deploy_pipeline);
        t_git_daemon_stop(&d);
        free(repos);
        git_libgit2_shutdown();
        rc = t_done();
        return rc;
}
