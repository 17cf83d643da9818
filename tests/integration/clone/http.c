/*
 * http.c - the clone step over smart HTTP with Basic auth: `git http-backend`
 * run by fcgiwrap behind nginx on loopback. Credentials come from a
 * SLIPWAY_GIT_CREDENTIALS file; a wrong password fails clearly and never
 * reaches the job's log. A slowed-down server keeps a transfer in flight for
 * the cancellation and timeout tests.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

#define USER "alice"
#define PASSWORD "correct-horse-battery"
#define WRONG_PASSWORD "wrong-staple-9931"

static char *repos;
static int port, slow_port;
static int test_seq;

static char *new_data_dir(void)
{
        return sw_xasprintf("%s/data%d", t_tmpdir(), ++test_seq);
}

/* A credentials file with one line for the server (and one for elsewhere). */
static char *creds_file(const char *password)
{
        struct sw_err err = SW_ERR_INIT;
        char *path = sw_xasprintf("%s/creds%d", t_tmpdir(), ++test_seq);
        char *text = sw_xasprintf("https://bob:other-host-secret@git.example.invalid\n"
                                  "http://%s:%s@127.0.0.1:%d\n"
                                  "http://%s:%s@127.0.0.1:%d\n",
                                  USER, password, port, USER, password, slow_port);

        if (sw_write_file_atomic(path, text, strlen(text), 0600, &err) != 0)
                t_fail(__FILE__, __LINE__, "%s", err.msg);
        free(text);
        return path;
}

static int run_job(struct t_clone_job *j, const char *data, const char *creds,
                   const char *timeout_ms, const char *payload, atomic_int *stop)
{
        char *c = creds ? sw_xasprintf("SLIPWAY_GIT_CREDENTIALS=%s", creds) : NULL;
        char *t = timeout_ms ? sw_xasprintf("SLIPWAY_CLONE_TIMEOUT_MS=%s", timeout_ms) : NULL;
        const char *extra[3] = {NULL, NULL, NULL};
        int n = 0, rc;

        if (c)
                extra[n++] = c;
        if (t)
                extra[n++] = t;
        rc = t_clone_run(j, data, extra, payload, stop);
        free(c);
        free(t);
        return rc;
}

static bool exists(const char *path)
{
        struct stat st;
        return stat(path, &st) == 0;
}

static void test_auth_branch_tag_commit(void)
{
        struct t_clone_job j;
        char sha[41], tagged[41];
        char *work = sw_xasprintf("%s/web.work", repos);
        char *url = sw_xasprintf("http://127.0.0.1:%d/web.git", port);
        char *data = new_data_dir(), *creds = creds_file(PASSWORD), *payload, *text;

        CHECK_INT(t_git_commit_push(tagged, work, "main", "index.html", "<p>v1</p>"), 0);
        CHECK_INT(t_git_tag_push(work, "v1", false), 0);
        CHECK_INT(t_git_commit_push(sha, work, "release", "index.html", "<p>v2</p>"), 0);

        payload = t_clone_payload(url, "release", NULL);
        CHECK_INT(run_job(&j, data, creds, NULL, payload, NULL), 0);
        CHECK_OK(j.rc, &j.err);
        CHECK_STR(sw_json_str(j.output, "commit", ""), sha);
        CHECK_STR(sw_json_str(j.output, "url", ""), url);
        text = t_clone_file_text(sw_json_str(j.output, "path", "/"), "index.html");
        CHECK_STR(text, "<p>v2</p>");
        free(text);
        CHECK(strstr(j.log, PASSWORD) == NULL);
        t_clone_job_release(&j);
        free(payload);

        /* A lightweight tag, through the mirror made by the first job. */
        payload = t_clone_payload(url, "v1", NULL);
        CHECK_INT(run_job(&j, data, creds, NULL, payload, NULL), 0);
        CHECK_OK(j.rc, &j.err);
        CHECK_STR(sw_json_str(j.output, "commit", ""), tagged);
        CHECK_STR(sw_json_str(j.output, "ref", ""), "refs/tags/v1");
        CHECK(strstr(j.log, "into its mirror") != NULL);
        t_clone_job_release(&j);
        free(payload);

        /* A commit by its abbreviated sha. */
        {
                char abbrev[13];
                memcpy(abbrev, tagged, 12);
                abbrev[12] = '\0';
                payload = t_clone_payload(url, NULL, abbrev);
        }
        CHECK_INT(run_job(&j, data, creds, NULL, payload, NULL), 0);
        CHECK_OK(j.rc, &j.err);
        CHECK_STR(sw_json_str(j.output, "commit", ""), tagged);
        t_clone_job_release(&j);
        free(payload);
        free(work);
        free(url);
        free(data);
        free(creds);
}

static void test_wrong_password(void)
{
        struct t_clone_job j;
        char *url = sw_xasprintf("http://127.0.0.1:%d/web.git", port);
        char *data = new_data_dir(), *creds = creds_file(WRONG_PASSWORD);
        char *payload = t_clone_payload(url, "main", NULL),
             *mirror = t_clone_mirror_path(data, url);

        CHECK_INT(run_job(&j, data, creds, NULL, payload, NULL), 0);
        CHECK_INT(j.rc, SW_EAUTH);
        CHECK(!sw_err_transient(j.rc));
        CHECK_STR(j.state, "failed");
        CHECK(j.error && strstr(j.error, "authentication failed"));
        CHECK(j.error && strstr(j.error, "'" USER "'"));
        CHECK(j.error && strstr(j.error, url));
        /* The password appears nowhere: not in the log, not in the stored error. */
        CHECK(strstr(j.log, WRONG_PASSWORD) == NULL);
        CHECK(j.error && strstr(j.error, WRONG_PASSWORD) == NULL);
        CHECK(strstr(j.err.msg, WRONG_PASSWORD) == NULL);
        CHECK(!exists(mirror));
        t_clone_job_release(&j);
        free(payload);
        free(url);
        free(data);
        free(creds);
        free(mirror);
}

static void test_no_credentials(void)
{
        struct t_clone_job j;
        char *url = sw_xasprintf("http://127.0.0.1:%d/web.git", port);
        char *data = new_data_dir(), *payload = t_clone_payload(url, "main", NULL);

        CHECK_INT(run_job(&j, data, NULL, NULL, payload, NULL), 0);
        CHECK_INT(j.rc, SW_EAUTH);
        CHECK(j.error && strstr(j.error, "asks for credentials and none are configured"));
        t_clone_job_release(&j);
        free(payload);
        free(url);
        free(data);
}

static void test_password_in_url_refused(void)
{
        struct t_clone_job j;
        char *url = sw_xasprintf("http://%s:%s@127.0.0.1:%d/web.git", USER, PASSWORD, port);
        char *data = new_data_dir(), *payload = t_clone_payload(url, "main", NULL);

        CHECK_INT(run_job(&j, data, NULL, NULL, payload, NULL), 0);
        CHECK_INT(j.rc, SW_EINVAL);
        CHECK(j.error && strstr(j.error, "must not contain a password"));
        CHECK(strstr(j.log, PASSWORD) == NULL);
        CHECK(j.error && strstr(j.error, PASSWORD) == NULL);
        t_clone_job_release(&j);
        free(payload);
        free(url);
        free(data);
}

struct canceller {
        atomic_int *stop;
        const char *watch; /* cancel once this path exists, and a little later */
        int64_t cancelled_at;
};

static void *cancel_when_started(void *arg)
{
        struct canceller *c = arg;
        struct stat st;
        int64_t deadline = sw_mono_ms() + 20000;

        while (stat(c->watch, &st) != 0 && sw_mono_ms() < deadline)
                sw_sleep_ms(5);
        sw_sleep_ms(300);
        c->cancelled_at = sw_mono_ms();
        atomic_store(c->stop, ENG_STOP_CANCEL);
        return NULL;
}

static void test_cancel_mid_clone(void)
{
        struct t_clone_job j;
        atomic_int stop = ENG_STOP_NONE;
        char *url = sw_xasprintf("http://127.0.0.1:%d/heavy.git", slow_port);
        char *data = new_data_dir(), *creds = creds_file(PASSWORD);
        char *payload = t_clone_payload(url, "main", NULL),
             *mirror = t_clone_mirror_path(data, url);
        char *tmp = sw_xasprintf("%s.tmp", mirror);
        struct canceller c = {&stop, tmp, 0};
        pthread_t th;
        int64_t t0 = sw_mono_ms(), took;

        CHECK_INT(pthread_create(&th, NULL, cancel_when_started, &c), 0);
        CHECK_INT(run_job(&j, data, creds, NULL, payload, &stop), 0);
        pthread_join(th, NULL);
        took = sw_mono_ms() - t0;
        CHECK_INT(j.rc, SW_ECANCELED);
        CHECK_STR(j.state, "cancelled");
        /* The transfer (about 8 s at this rate) stopped soon after the cancel. */
        CHECK(c.cancelled_at > 0 && sw_mono_ms() - c.cancelled_at < 3000);
        CHECK(took < 6000);
        CHECK(strstr(j.log, "cancelled") != NULL || strstr(j.log, "stopped") != NULL);
        CHECK(!exists(mirror));
        CHECK(!exists(tmp));
        t_clone_job_release(&j);
        free(payload);
        free(url);
        free(data);
        free(creds);
        free(mirror);
        free(tmp);
}

static void test_timeout(void)
{
        struct t_clone_job j;
        char *url = sw_xasprintf("http://127.0.0.1:%d/heavy.git", slow_port);
        char *data = new_data_dir(), *creds = creds_file(PASSWORD);
        char *payload = t_clone_payload(url, "main", NULL);
        int64_t t0 = sw_mono_ms();

        CHECK_INT(run_job(&j, data, creds, "1000", payload, NULL), 0);
        CHECK_INT(j.rc, SW_ETIMEDOUT);
        CHECK(j.error && strstr(j.error, "SLIPWAY_CLONE_TIMEOUT_MS"));
        CHECK(sw_mono_ms() - t0 < 4000);
        t_clone_job_release(&j);
        free(payload);
        free(url);
        free(data);
        free(creds);
}

/* Progress lines while a transfer runs: objects and bytes, about once a second. */
static void test_progress_lines(void)
{
        struct t_clone_job j;
        char *url = sw_xasprintf("http://127.0.0.1:%d/heavy.git", port);
        char *data = new_data_dir(), *creds = creds_file(PASSWORD);
        char *payload = t_clone_payload(url, "main", NULL);

        CHECK_INT(run_job(&j, data, creds, NULL, payload, NULL), 0);
        CHECK_OK(j.rc, &j.err);
        CHECK(strstr(j.log, "fetched ") != NULL);
        CHECK(strstr(j.log, " objects, ") != NULL);
        CHECK(strstr(j.log, " MiB") != NULL);
        t_clone_job_release(&j);
        free(payload);
        free(url);
        free(data);
        free(creds);
}

int main(void)
{
        struct sw_err gerr = SW_ERR_INIT;
        struct t_git_http h, slow;
        char *dir, *slow_dir, *work;
        int rc;

        git_libgit2_init();
        if (step_clone_global_init(&gerr) != 0) {
                fprintf(stderr, "%s\n", gerr.msg);
                return 1;
        }
        repos = sw_xasprintf("%s/repos", t_tmpdir());
        dir = sw_xasprintf("%s/nginx", t_tmpdir());
        slow_dir = sw_xasprintf("%s/nginx-slow", t_tmpdir());
        work = sw_xasprintf("%s/heavy.work", repos);
        if (t_git_sh("mkdir -p '%s' '%s' '%s'", repos, dir, slow_dir) != 0 ||
            t_git_repo_create(repos, "web") != 0 || t_git_repo_create(repos, "heavy") != 0 ||
            t_git_sh("set -e; cd '%s'; head -c 4194304 /dev/urandom > blob.bin; "
                     "git add blob.bin; git commit -q -m blob; git push -q origin main",
                     work) != 0 ||
            t_git_http_start(&h, repos, dir, USER, PASSWORD, 0) != 0 ||
            t_git_http_start(&slow, repos, slow_dir, USER, PASSWORD, 512) != 0) {
                fprintf(stderr, "cannot set up the repositories and the HTTP server\n");
                return 1;
        }
        port = h.port;
        slow_port = slow.port;
        T_RUN(test_auth_branch_tag_commit);
        T_RUN(test_wrong_password);
        T_RUN(test_no_credentials);
        T_RUN(test_password_in_url_refused);
        T_RUN(test_progress_lines);
        T_RUN(test_cancel_mid_clone);
        T_RUN(test_timeout);
        t_git_http_stop(&h);
        t_git_http_stop(&slow);
        free(repos);
        free(dir);
        free(slow_dir);
        free(work);
        git_libgit2_shutdown();
        rc = t_done();
        return rc;
}
