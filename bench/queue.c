/*
 * bench/queue.c - throughput and latency of the SQLite job queue, and the
 * footprint of `slipway worker`.
 *
 * Figures (each a `name: value unit` line):
 *  - enqueue alone, one transaction per job, at synchronous=NORMAL and FULL,
 *    and in batches of 1000 per transaction;
 *  - the full cycle enqueue -> claim -> complete with a commit per
 *    transition, at NORMAL and FULL;
 *  - the full cycle batched: enqueue 1000 per transaction, claim 64 per
 *    statement, complete 64 per transaction (group commit);
 *  - p50/p99 latency of one claim with 100,000 finished jobs in the table;
 *  - `slipway worker`: time from exec to its first claim, and idle RSS;
 *  - the cost of one bare SQLite commit (a one-row UPDATE) in WAL mode at
 *    NORMAL and FULL on this disk: a commit per transition cannot go faster
 *    than three of those per job, so the bound is printed beside the cycle.
 */
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/mem.h"
#include "engine/queue.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

static struct eng_queue *open_db(const char *dir, const char *name, bool full)
{
        struct eng_queue_options qo = ENG_QUEUE_OPTIONS_INIT;
        struct eng_queue *q = NULL;
        struct sw_err err = SW_ERR_INIT;
        char *path = sw_xasprintf("%s/%s.db", dir, name);

        qo.path = path;
        qo.synchronous_full = full;
        if (eng_queue_open(&q, &qo, &err) != 0) {
                fprintf(stderr, "open: %s\n", err.msg);
                exit(1);
        }
        free(path);
        return q;
}

static void die_on(int rc, const struct sw_err *err)
{
        if (rc) {
                fprintf(stderr, "bench: %s\n", err->msg);
                exit(1);
        }
}

static const struct eng_job_spec SPEC = {
        .kind = "deploy",
        .payload =
                "{\"repo\":\"https://git.example/app.git\",\"name\":\"app\",\"branch\":\"main\"}",
};

static double enqueue_single(const char *dir, const char *name, bool full, int n)
{
        struct eng_queue *q = open_db(dir, name, full);
        struct sw_err err = SW_ERR_INIT;
        int64_t t0 = sw_mono_us(), id;

        for (int i = 0; i < n; i++)
                die_on(eng_queue_enqueue(&id, NULL, q, &SPEC, &err), &err);
        double s = (double)(sw_mono_us() - t0) / 1e6;
        eng_queue_close(q);
        return n / s;
}

static double enqueue_batched(const char *dir, const char *name, bool full, int n)
{
        struct eng_queue *q = open_db(dir, name, full);
        struct sw_err err = SW_ERR_INIT;
        struct eng_job_spec *specs = sw_xcalloc(1000, sizeof(*specs));
        int64_t t0;

        for (int i = 0; i < 1000; i++)
                specs[i] = SPEC;
        t0 = sw_mono_us();
        for (int i = 0; i < n; i += 1000)
                die_on(eng_queue_enqueue_batch(q, specs, 1000, &err), &err);
        double s = (double)(sw_mono_us() - t0) / 1e6;
        free(specs);
        eng_queue_close(q);
        return n / s;
}

/* enqueue, claim, complete: a commit per transition. */
static double cycle_single(const char *dir, const char *name, bool full, int n)
{
        struct eng_queue *q = open_db(dir, name, full);
        struct sw_err err = SW_ERR_INIT;
        int64_t t0 = sw_mono_us(), id;

        for (int i = 0; i < n; i++) {
                struct eng_job *j = NULL;
                die_on(eng_queue_enqueue(&id, NULL, q, &SPEC, &err), &err);
                die_on(eng_queue_claim(&j, q, "bench", 60000, &err), &err);
                die_on(eng_queue_complete(q, j->id, "bench", &err), &err);
                eng_job_free(j);
        }
        double s = (double)(sw_mono_us() - t0) / 1e6;
        eng_queue_close(q);
        return n / s;
}

/* enqueue 1000 per transaction, claim 64 per statement, complete 64 per transaction. */
static double cycle_batched(const char *dir, const char *name, bool full, int n)
{
        struct eng_queue *q = open_db(dir, name, full);
        struct sw_err err = SW_ERR_INIT;
        struct eng_job_spec *specs = sw_xcalloc(1000, sizeof(*specs));
        struct eng_job *jobs[64];
        int64_t ids[64], t0;
        int done = 0;

        for (int i = 0; i < 1000; i++)
                specs[i] = SPEC;
        t0 = sw_mono_us();
        for (int i = 0; i < n; i += 1000) {
                die_on(eng_queue_enqueue_batch(q, specs, 1000, &err), &err);
                for (;;) {
                        size_t got = 0;
                        die_on(eng_queue_claim_batch(jobs, 64, &got, q, "bench", 60000, &err),
                               &err);
                        if (got == 0)
                                break;
                        for (size_t k = 0; k < got; k++) {
                                ids[k] = jobs[k]->id;
                                eng_job_free(jobs[k]);
                        }
                        die_on(eng_queue_complete_batch(q, ids, got, "bench", &err), &err);
                        done += (int)got;
                }
        }
        double s = (double)(sw_mono_us() - t0) / 1e6;
        if (done != n) {
                fprintf(stderr, "bench: completed %d of %d\n", done, n);
                exit(1);
        }
        free(specs);
        eng_queue_close(q);
        return n / s;
}

/* Microseconds per autocommit one-row UPDATE, WAL mode, the given synchronous. */
static double bare_commit_us(const char *dir, const char *name, bool full, int n)
{
        char *path = sw_xasprintf("%s/%s.db", dir, name);
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        int64_t t0;

        if (sqlite3_open(path, &db) != SQLITE_OK ||
            sqlite3_exec(db,
                         full ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                              : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                         NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(db, "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (0);", NULL, NULL,
                         NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db, "UPDATE t SET x = x + 1", -1, &st, NULL) != SQLITE_OK) {
                fprintf(stderr, "bench: %s\n", sqlite3_errmsg(db));
                exit(1);
        }
        t0 = sw_mono_us();
        for (int i = 0; i < n; i++) {
                if (sqlite3_step(st) != SQLITE_DONE) {
                        fprintf(stderr, "bench: %s\n", sqlite3_errmsg(db));
                        exit(1);
                }
                sqlite3_reset(st);
        }
        double us = (double)(sw_mono_us() - t0) / n;
        sqlite3_finalize(st);
        sqlite3_close(db);
        free(path);
        return us;
}

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

/* Claim latency with a large history of finished jobs in the table. */
static void claim_latency(const char *dir, int history, int samples)
{
        struct eng_queue *q = open_db(dir, "latency", false);
        struct sw_err err = SW_ERR_INIT;
        struct eng_job_spec *specs = sw_xcalloc(1000, sizeof(*specs));
        struct eng_job *jobs[64];
        int64_t ids[64], *lat = sw_xcalloc((size_t)samples, sizeof(int64_t));

        for (int i = 0; i < 1000; i++)
                specs[i] = SPEC;
        for (int i = 0; i < history; i += 1000) {
                die_on(eng_queue_enqueue_batch(q, specs, 1000, &err), &err);
                for (;;) {
                        size_t got = 0;
                        die_on(eng_queue_claim_batch(jobs, 64, &got, q, "b", 60000, &err), &err);
                        if (!got)
                                break;
                        for (size_t k = 0; k < got; k++) {
                                ids[k] = jobs[k]->id;
                                eng_job_free(jobs[k]);
                        }
                        die_on(eng_queue_complete_batch(q, ids, got, "b", &err), &err);
                }
        }
        for (int i = 0; i < samples; i += 1000)
                die_on(eng_queue_enqueue_batch(q, specs, 1000, &err), &err);
        for (int i = 0; i < samples; i++) {
                struct eng_job *j = NULL;
                int64_t t0 = sw_mono_us();
                die_on(eng_queue_claim(&j, q, "b", 60000, &err), &err);
                lat[i] = sw_mono_us() - t0;
                eng_job_free(j);
        }
        qsort(lat, (size_t)samples, sizeof(int64_t), cmp_i64);
        printf("claim_latency_p50_with_%dk_finished: %lld us\n", history / 1000,
               (long long)lat[samples / 2]);
        printf("claim_latency_p99_with_%dk_finished: %lld us\n", history / 1000,
               (long long)lat[samples * 99 / 100]);
        free(lat);
        free(specs);
        eng_queue_close(q);
}

/* A "Key:  123 kB" value from a /proc file of `pid`. */
static long proc_kb(pid_t pid, const char *file, const char *key)
{
        char path[64], *text = NULL;
        struct sw_err err = SW_ERR_INIT;
        long kb = -1;

        snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
        if (sw_read_file(&text, NULL, path, 1 << 20, &err) == 0) {
                const char *p = strstr(text, key);
                if (p)
                        kb = strtol(p + strlen(key), NULL, 10);
        }
        free(text);
        return kb;
}

/* `slipway worker`: exec to first claim, then idle RSS. */
static void worker_footprint(const char *dir)
{
        char *data = sw_xasprintf("%s/worker", dir);
        char *data_env = sw_xasprintf("SLIPWAY_DATA=%s", data);
        const char *env[] = {data_env, "SLIPWAY_LOG_LEVEL=warn", NULL};
        char *sub[] = {
                (char *)t_slipway(), "submit", "--repo", "/srv/git/app", "--name", "app", NULL};
        char *wrk[] = {(char *)t_slipway(), "worker", NULL};
        struct sw_config cfg;
        struct eng_queue *q;
        struct eng_job *j = NULL;
        struct sw_err err = SW_ERR_INIT;
        char *out = NULL;
        int64_t t_exec, started = 0;
        pid_t pid;

        if (t_run_capture(&out, sub, env, 10000) != 0) {
                fprintf(stderr, "submit failed: %s\n", out);
                exit(1);
        }
        free(out);
        {
                char *cenv[] = {data_env, NULL};
                die_on(sw_config_load(&cfg, cenv, &err), &err);
        }
        q = open_db(data, "slipway", false);
        t_exec = sw_now_ms();
        pid = t_spawn_extra(wrk, env, NULL);
        for (int i = 0; i < 2000 && !started; i++) {
                if (eng_queue_get(&j, q, 1, &err) == 0 && j->started_at)
                        started = j->started_at;
                eng_job_free(j);
                j = NULL;
                if (!started)
                        sw_sleep_ms(1);
        }
        printf("worker_start_to_first_claim: %lld ms\n", (long long)(started - t_exec));
        sw_sleep_ms(1000);
        printf("worker_idle_rss: %.1f MB\n", proc_kb(pid, "status", "VmRSS:") / 1024.0);
        /* PSS shares the pages of libc, libcrypto... with the other processes mapping them. */
        printf("worker_idle_pss: %.1f MB\n", proc_kb(pid, "smaps_rollup", "Pss:") / 1024.0);
        kill(pid, SIGTERM);
        t_wait(pid, 10000);
        eng_queue_close(q);
        sw_config_release(&cfg);
        free(data);
        free(data_env);
}

int main(void)
{
        const char *dir = t_tmpdir();

        printf("enqueue_single_normal: %.0f jobs/s\n", enqueue_single(dir, "e1", false, 20000));
        printf("enqueue_single_full: %.0f jobs/s\n", enqueue_single(dir, "e2", true, 5000));
        printf("enqueue_batched_normal: %.0f jobs/s\n", enqueue_batched(dir, "e3", false, 100000));
        printf("enqueue_batched_full: %.0f jobs/s\n", enqueue_batched(dir, "e4", true, 100000));
        printf("cycle_commit_per_transition_normal: %.0f jobs/s\n",
               cycle_single(dir, "c1", false, 10000));
        printf("cycle_commit_per_transition_full: %.0f jobs/s\n",
               cycle_single(dir, "c2", true, 3000));
        {
                double normal = bare_commit_us(dir, "b1", false, 20000);
                double full = bare_commit_us(dir, "b2", true, 3000);
                printf("bare_commit_normal: %.1f us\n", normal);
                printf("bare_commit_full: %.1f us\n", full);
                /* enqueue, claim, complete: three commits a job at best */
                printf("cycle_commit_per_transition_full_bound: %.0f jobs/s\n", 1e6 / (3 * full));
        }
        printf("cycle_batched_normal: %.0f jobs/s\n", cycle_batched(dir, "c3", false, 100000));
        printf("cycle_batched_full: %.0f jobs/s\n", cycle_batched(dir, "c4", true, 100000));
        claim_latency(dir, 100000, 5000);
        worker_footprint(dir);
        return t_done() == 0 ? 0 : 1;
}
