/*
 * mirror.c - the clone step against a real `git daemon` on loopback: the
 * mirror cache (the second job fetches, and sees what was pushed since),
 * submodules checked out recursively, and the size limit; each through the
 * pipeline runner on a real queue.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <git2.h>

#include "common/clock.h"
#include "common/digest.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
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

static void test_mirror_reused(void)
{
        struct t_clone_job j;
        char first[41], second[41], later[41];
        char *url, *work, *data = t_clone_data_dir(), *payload, *mirror, *text;
        struct stat st1, st2;

        CHECK_INT(t_git_repo_create(repos, "mirrored"), 0);
        url = url_of("mirrored");
        work = work_of("mirrored");
        mirror = t_clone_mirror_path(data, url);
        CHECK_INT(t_git_commit_push(first, work, "main", "a.txt", "one"), 0);
        payload = t_clone_payload(url, "main", NULL);
        CHECK_INT(t_clone_run_limited(&j, data, NULL, payload), 0);
        CHECK_OK(j.rc, &j.err);
        CHECK_STR(sw_json_str(j.output, "commit", ""), first);
        CHECK(strstr(j.log, "cloning ") != NULL);
        t_clone_job_release(&j);
        CHECK_INT(stat(mirror, &st1), 0);
        text = t_git_sh_out("git -C '%s' rev-parse --is-bare-repository", mirror);
        CHECK_STR(text, "true");
        free(text);

        /* New commits and a new branch pushed between the jobs. */
        CHECK_INT(t_git_commit_push(second, work, "main", "a.txt", "two"), 0);
        CHECK_INT(t_git_commit_push(later, work, "later", "b.txt", "later"), 0);
        CHECK_INT(t_clone_run_limited(&j, data, NULL, payload), 0);
        CHECK_OK(j.rc, &j.err);
        CHECK_STR(sw_json_str(j.output, "commit", ""), second);
        CHECK(strstr(j.log, "into its mirror") != NULL);
        CHECK(strstr(j.log, "cloning ") == NULL);
        text = t_clone_file_text(sw_json_str(j.output, "path", "/"), "a.txt");
        CHECK_STR(text, "two");
        free(text);
        t_clone_job_release(&j);
        CHECK_INT(stat(mirror, &st2), 0);
        CHECK_INT(st1.st_ino, st2.st_ino);
        free(payload);

        payload = t_clone_payload(url, "later", NULL);
        CHECK_INT(t_clone_run_limited(&j, data, NULL, payload), 0);
        CHECK_OK(j.rc, &j.err);
        CHECK_STR(sw_json_str(j.output, "commit", ""), later);
        t_clone_job_release(&j);
        free(payload);

        /* A branch deleted upstream is pruned from the mirror. */
        CHECK_INT(t_git_sh("git -C '%s' push -q origin --delete later", work), 0);
        CHECK_INT(
                t_clone_run_limited(&j, data, NULL, payload = t_clone_payload(url, "later", NULL)),
                0);
        CHECK_INT(j.rc, SW_ENOTFOUND);
        t_clone_job_release(&j);
        free(payload);
        free(url);
        free(work);
        free(mirror);
        free(data);
}

static void test_submodules(void)
{
        struct t_clone_job j;
        char sha[41], top[41];
        char *data = t_clone_data_dir(), *payload, *url, *text, *path;
        char *deep_url = url_of("deep"), *lib_url = url_of("lib");
        char *deep_work = work_of("deep"), *lib_work = work_of("lib"), *top_work = work_of("top");

        CHECK_INT(t_git_repo_create(repos, "deep"), 0);
        CHECK_INT(t_git_repo_create(repos, "lib"), 0);
        CHECK_INT(t_git_repo_create(repos, "top"), 0);
        CHECK_INT(t_git_commit_push(sha, deep_work, "main", "deep.txt", "deep down"), 0);
        CHECK_INT(t_git_commit_push(sha, lib_work, "main", "lib.txt", "the library"), 0);
        CHECK_INT(t_git_submodule_add_push(sha, lib_work, deep_url, "third_party/deep"), 0);
        /* A relative URL, resolved against the superproject's own URL. */
        CHECK_INT(t_git_submodule_add_push(top, top_work, "../lib.git", "vendor/lib"), 0);

        url = url_of("top");
        payload = t_clone_payload(url, "main", NULL);
        CHECK_INT(t_clone_run_limited(&j, data, NULL, payload), 0);
        CHECK_OK(j.rc, &j.err);
        CHECK_STR(sw_json_str(j.output, "commit", ""), top);
        path = sw_xstrdup(sw_json_str(j.output, "path", "/"));
        text = t_clone_file_text(path, "vendor/lib/lib.txt");
        CHECK_STR(text, "the library");
        free(text);
        text = t_clone_file_text(path, "vendor/lib/third_party/deep/deep.txt");
        CHECK_STR(text, "deep down");
        free(text);
        /* Both submodules initialised and at their recorded commits (a leading space). */
        text = t_git_sh_out("git -C '%s' submodule status --recursive | cut -c1 | tr -d '\\n'",
                            path);
        CHECK_STR(text, "  ");
        free(text);
        CHECK(strstr(j.log, "submodule vendor/lib from git://") != NULL);
        text = t_git_sh_out("git -C '%s' config submodule.vendor/lib.url", path);
        CHECK_STR(text, lib_url);
        free(text);
        t_clone_job_release(&j);
        free(path);
        free(payload);
        free(url);
        free(deep_url);
        free(lib_url);
        free(deep_work);
        free(lib_work);
        free(top_work);
        free(data);
}

static void test_size_limit(void)
{
        struct t_clone_job j;
        char *data = t_clone_data_dir(), *payload, *url, *mirror, *tmp, *dest;
        char *work = work_of("big");

        CHECK_INT(t_git_repo_create(repos, "big"), 0);
        CHECK_INT(t_git_sh("set -e; cd '%s'; head -c 1048576 /dev/urandom > blob.bin; "
                           "git add blob.bin; git commit -q -m blob; git push -q origin main",
                           work),
                  0);
        url = url_of("big");
        mirror = t_clone_mirror_path(data, url);
        tmp = sw_xasprintf("%s.tmp", mirror);
        payload = t_clone_payload(url, "main", NULL);
        CHECK_INT(t_clone_run_limited(&j, data, "262144", payload), 0);
        CHECK_INT(j.rc, SW_ETOOBIG);
        CHECK(j.error && strstr(j.error, "SLIPWAY_CLONE_MAX_BYTES"));
        CHECK(j.error && strstr(j.error, url));
        CHECK(!t_clone_exists(mirror));
        CHECK(!t_clone_exists(tmp));
        dest = sw_xasprintf("%s/work/%lld/src", data, (long long)j.id);
        CHECK(!t_clone_exists(dest));
        free(dest);
        t_clone_job_release(&j);

        /* With room enough, the same repository clones. */
        CHECK_INT(t_clone_run_limited(&j, data, "4194304", payload), 0);
        CHECK_OK(j.rc, &j.err);
        t_clone_job_release(&j);
        free(payload);
        free(url);
        free(mirror);
        free(tmp);
        free(work);
        free(data);
}

/* A clone run directly through the library API, in a thread. */
struct direct {
        struct step_clone_options o;
        struct step_clone_result r;
        struct sw_err err;
        int rc;
        pthread_mutex_t mu;
        char log[8192];
        atomic_int cancel;
};

static void direct_log(void *arg, const char *line)
{
        struct direct *d = arg;

        pthread_mutex_lock(&d->mu);
        if (strlen(d->log) + strlen(line) + 2 < sizeof(d->log)) {
                memcpy(d->log + strlen(d->log), line, strlen(line) + 1);
                memcpy(d->log + strlen(d->log), "\n", 2);
        }
        pthread_mutex_unlock(&d->mu);
}

static bool direct_cancelled(void *arg)
{
        struct direct *d = arg;
        return atomic_load(&d->cancel) != 0;
}

static void *direct_run(void *arg)
{
        struct direct *d = arg;

        d->rc = step_clone_run(&d->r, &d->o, &d->err);
        return NULL;
}

static void direct_init(struct direct *d, const char *url, const char *cache, const char *dest)
{
        memset(d, 0, sizeof(*d));
        pthread_mutex_init(&d->mu, NULL);
        d->o.url = url;
        d->o.branch = "main";
        d->o.cache_dir = cache;
        d->o.dest = dest;
        d->o.log = direct_log;
        d->o.cancelled = direct_cancelled;
        d->o.arg = d;
}

static bool log_has(struct direct *d, const char *s)
{
        bool has;

        pthread_mutex_lock(&d->mu);
        has = strstr(d->log, s) != NULL;
        pthread_mutex_unlock(&d->mu);
        return has;
}

/* One mirror is updated by one clone at a time; the others wait, and may be cancelled. */
static void test_mirror_lock(void)
{
        struct direct a, b;
        pthread_t ta, tb;
        char sha[41], *url, *work, *cache, *dest_a, *dest_b, *lock;
        int64_t deadline;
        int fd;

        CHECK_INT(t_git_repo_create(repos, "locked"), 0);
        url = url_of("locked");
        work = work_of("locked");
        cache = sw_xasprintf("%s/lock-cache", t_tmpdir());
        dest_a = sw_xasprintf("%s/lock-a", t_tmpdir());
        dest_b = sw_xasprintf("%s/lock-b", t_tmpdir());
        CHECK_INT(t_git_commit_push(sha, work, "main", "l.txt", "locked"), 0);
        {
                char *m = t_clone_mirror_path(cache, url);
                /* t_clone_mirror_path() adds "/git" for a data dir; the cache is its parent. */
                char *hex = strrchr(m, '/') + 1;
                lock = sw_xasprintf("%s/%s.lock", cache, hex);
                free(m);
        }
        CHECK_INT(t_git_sh("mkdir -p '%s'", cache), 0);

        /* Hold the lock as another process would. */
        fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        CHECK_INT(flock(fd, LOCK_EX), 0);
        direct_init(&a, url, cache, dest_a);
        direct_init(&b, url, cache, dest_b);
        CHECK_INT(pthread_create(&ta, NULL, direct_run, &a), 0);
        CHECK_INT(pthread_create(&tb, NULL, direct_run, &b), 0);
        deadline = sw_mono_ms() + 10000;
        while ((!log_has(&a, "waiting for another clone") ||
                !log_has(&b, "waiting for another clone")) &&
               sw_mono_ms() < deadline)
                sw_sleep_ms(10);
        CHECK(log_has(&a, "waiting for another clone"));
        CHECK(log_has(&b, "waiting for another clone"));
        sw_sleep_ms(200);
        CHECK(!log_has(&a, "cloning"));
        CHECK(!log_has(&b, "cloning"));

        /* b gives up while waiting; a goes on once the lock is free. */
        atomic_store(&b.cancel, 1);
        pthread_join(tb, NULL);
        CHECK_INT(b.rc, SW_ECANCELED);
        flock(fd, LOCK_UN);
        close(fd);
        pthread_join(ta, NULL);
        CHECK_OK(a.rc, &a.err);
        CHECK_STR(a.r.commit, sha);
        CHECK(!a.r.mirror_reused);
        step_clone_result_release(&a.r);

        /* Two clones at once of the same URL both succeed, the mirror updated in turn. */
        pthread_mutex_destroy(&a.mu);
        pthread_mutex_destroy(&b.mu);
        direct_init(&a, url, cache, dest_a);
        direct_init(&b, url, cache, dest_b);
        CHECK_INT(pthread_create(&ta, NULL, direct_run, &a), 0);
        CHECK_INT(pthread_create(&tb, NULL, direct_run, &b), 0);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        CHECK_OK(a.rc, &a.err);
        CHECK_OK(b.rc, &b.err);
        CHECK_STR(a.r.commit, sha);
        CHECK_STR(b.r.commit, sha);
        CHECK(a.r.mirror_reused && b.r.mirror_reused);
        step_clone_result_release(&a.r);
        step_clone_result_release(&b.r);
        pthread_mutex_destroy(&a.mu);
        pthread_mutex_destroy(&b.mu);
        free(url);
        free(work);
        free(cache);
        free(dest_a);
        free(dest_b);
        free(lock);
}

int main(void)
{
        struct sw_err gerr = SW_ERR_INIT;
        struct t_git_daemon d;

        git_libgit2_init();
        if (step_clone_global_init(&gerr) != 0) {
                fprintf(stderr, "%s\n", gerr.msg);
                return 1;
        }
        repos = sw_xasprintf("%s/repos", t_tmpdir());
        if (t_git_sh("mkdir -p '%s'", repos) != 0 ||
            t_git_daemon_start(&d, repos, t_tmpdir()) != 0) {
                fprintf(stderr, "cannot start the git daemon\n");
                return 1;
        }
        port = d.port;
        T_RUN(test_mirror_reused);
        T_RUN(test_submodules);
        T_RUN(test_size_limit);
        T_RUN(test_mirror_lock);
        t_git_daemon_stop(&d);
        free(repos);
        git_libgit2_shutdown();
        return t_done();
}
