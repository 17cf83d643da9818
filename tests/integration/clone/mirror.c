/*
 * mirror.c - the clone step against a real `git daemon` on loopback: the
 * mirror cache (the second job fetches, and sees what was pushed since),
 * submodules checked out recursively, and the size limit; each through the
 * pipeline runner on a real queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <git2.h>

#include "common/digest.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
#include "tests/harness/clone_job.h"
#include "tests/harness/git.h"
#include "tests/harness/t.h"

static char *repos;  /* the daemon's base path */
static int port;     /* the daemon's port */
static int test_seq; /* a fresh data directory per job set */

/* A new, empty SLIPWAY_DATA. */
static char *new_data_dir(void)
{
        return sw_xasprintf("%s/data%d", t_tmpdir(), ++test_seq);
}

static char *url_of(const char *name)
{
        return sw_xasprintf("git://127.0.0.1:%d/%s.git", port, name);
}

static char *work_of(const char *name)
{
        return sw_xasprintf("%s/%s.work", repos, name);
}

/* Run one clone job with SLIPWAY_DATA=data and an optional size limit. */
static int run_job(struct t_clone_job *j, const char *data, const char *max_bytes,
                   const char *payload)
{
        char *limit = max_bytes ? sw_xasprintf("SLIPWAY_CLONE_MAX_BYTES=%s", max_bytes) : NULL;
        const char *extra[] = {limit, NULL};
        int rc = t_clone_run(j, data, extra, payload, NULL);

        free(limit);
        return rc;
}

static bool exists(const char *path)
{
        struct stat st;
        return stat(path, &st) == 0;
}

static void test_mirror_reused(void)
{
        struct t_clone_job j;
        char first[41], second[41], later[41];
        char *url, *work, *data = new_data_dir(), *payload, *mirror, *text;
        struct stat st1, st2;

        CHECK_INT(t_git_repo_create(repos, "mirrored"), 0);
        url = url_of("mirrored");
        work = work_of("mirrored");
        mirror = t_clone_mirror_path(data, url);
        CHECK_INT(t_git_commit_push(first, work, "main", "a.txt", "one"), 0);
        payload = t_clone_payload(url, "main", NULL);
        CHECK_INT(run_job(&j, data, NULL, payload), 0);
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
        CHECK_INT(run_job(&j, data, NULL, payload), 0);
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
        CHECK_INT(run_job(&j, data, NULL, payload), 0);
        CHECK_OK(j.rc, &j.err);
        CHECK_STR(sw_json_str(j.output, "commit", ""), later);
        t_clone_job_release(&j);
        free(payload);

        /* A branch deleted upstream is pruned from the mirror. */
        CHECK_INT(t_git_sh("git -C '%s' push -q origin --delete later", work), 0);
        CHECK_INT(run_job(&j, data, NULL, payload = t_clone_payload(url, "later", NULL)), 0);
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
        char *data = new_data_dir(), *payload, *url, *text, *path;
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
        CHECK_INT(run_job(&j, data, NULL, payload), 0);
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
        char *data = new_data_dir(), *payload, *url, *mirror, *tmp, *dest;
        char *work = work_of("big");

        CHECK_INT(t_git_repo_create(repos, "big"), 0);
        CHECK_INT(t_git_sh("set -e; cd '%s'; head -c 3145728 /dev/urandom > blob.bin; "
                           "git add blob.bin; git commit -q -m blob; git push -q origin main",
                           work),
                  0);
        url = url_of("big");
        mirror = t_clone_mirror_path(data, url);
        tmp = sw_xasprintf("%s.tmp", mirror);
        payload = t_clone_payload(url, "main", NULL);
        CHECK_INT(run_job(&j, data, "1048576", payload), 0);
        CHECK_INT(j.rc, SW_ETOOBIG);
        CHECK(j.error && strstr(j.error, "SLIPWAY_CLONE_MAX_BYTES"));
        CHECK(j.error && strstr(j.error, url));
        CHECK(!exists(mirror));
        CHECK(!exists(tmp));
        dest = sw_xasprintf("%s/work/%lld/src", data, (long long)j.id);
        CHECK(!exists(dest));
        free(dest);
        t_clone_job_release(&j);

        /* With room enough, the same repository clones. */
        CHECK_INT(run_job(&j, data, "8388608", payload), 0);
        CHECK_OK(j.rc, &j.err);
        t_clone_job_release(&j);
        free(payload);
        free(url);
        free(mirror);
        free(tmp);
        free(work);
        free(data);
}

int main(void)
{
        struct t_git_daemon d;

        git_libgit2_init();
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
        t_git_daemon_stop(&d);
        free(repos);
        git_libgit2_shutdown();
        return t_done();
}
