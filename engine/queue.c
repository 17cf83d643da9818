/*
 * queue.c - the durable job queue on SQLite (see queue.h for the contract).
 *
 * The claim is one UPDATE ... RETURNING: SQLite takes the write lock when the
 * statement starts, so the job it picks cannot be picked by another
 * connection at the same time, in this process or another. The candidates
 * come from two small ordered scans that the partial indexes in
 * schema/migrations/001_jobs.sql serve: queued jobs that are due, and running
 * jobs whose lease has expired. A job with a concurrency key is a candidate
 * only when no job of its key is running and it is the oldest queued one of
 * its key, which also keeps a batch claim from taking two of one key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/mem.h"
#include "engine/engine_int.h"
#include "engine/queue.h"
#include "common/banned.h"

#define JOB_COLS                                                                                   \
        "id, kind, payload, state, priority, attempt, max_attempts, run_after, lease_owner, "      \
        "lease_expires, idempotency_key, concurrency_key, cancel_requested, error, log_bytes, "    \
        "created_at, updated_at, started_at, finished_at"

/* The columns a claim sets: ?1 owner, ?2 now, ?3 lease_ms. */
#define CLAIM_SET                                                                                  \
        "state = 'running', attempt = attempt + 1, lease_owner = ?1, lease_expires = ?2 + ?3, "    \
        "started_at = coalesce(started_at, ?2), updated_at = ?2"

/*
 * Up to ?4 runnable jobs, most urgent first: due queued jobs (a keyed one
 * only when none of its key runs and it is the oldest queued of its key),
 * then running jobs whose lease expired with attempts left.
 */
#define CLAIM_CANDIDATES                                                                           \
        "SELECT id FROM ("                                                                         \
        "  SELECT id FROM jobs AS q WHERE state = 'queued' AND run_after <= ?2"                    \
        "   AND (concurrency_key IS NULL OR ("                                                     \
        "     NOT EXISTS (SELECT 1 FROM jobs AS r WHERE r.state = 'running'"                       \
        "                 AND r.concurrency_key = q.concurrency_key)"                              \
        "     AND q.id = (SELECT min(k.id) FROM jobs AS k WHERE k.state = 'queued'"                \
        "                 AND k.concurrency_key = q.concurrency_key)))"                            \
        "   ORDER BY priority DESC, run_after, id LIMIT ?4)"                                       \
        " UNION ALL SELECT id FROM ("                                                              \
        "  SELECT id FROM jobs WHERE state = 'running' AND lease_expires <= ?2"                    \
        "   AND attempt < max_attempts ORDER BY lease_expires LIMIT ?4)"                           \
        " LIMIT ?4"

enum {
        ST_INSERT,
        ST_FIND_IDEM,
        ST_SUPERSEDE,
        ST_CLAIM,
        ST_CLAIM_ONE,
        ST_REAP,
        ST_HEARTBEAT,
        ST_COMPLETE,
        ST_FAIL,
        ST_CANCELLED,
        ST_RELEASE,
        ST_CANCEL_REQ,
        ST__COUNT
};

static const char *const queue_sql[ST__COUNT] = {
        [ST_INSERT] = "INSERT INTO jobs (kind, payload, priority, max_attempts, run_after, "
                      "idempotency_key, concurrency_key, created_at, updated_at) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) "
                      "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        [ST_FIND_IDEM] = "SELECT id FROM jobs WHERE idempotency_key = ?1",
        [ST_SUPERSEDE] = "UPDATE jobs SET state = 'cancelled', finished_at = ?3, updated_at = ?3, "
                         "error = 'superseded by job ' || ?2 "
                         "WHERE state = 'queued' AND concurrency_key = ?1 AND id < ?2",
        [ST_CLAIM] = "UPDATE jobs SET " CLAIM_SET " WHERE id IN (" CLAIM_CANDIDATES
                     ") RETURNING " JOB_COLS,
        /*
         * One job: `id = (scalar)` instead of `id IN (list)`, because SQLite
         * builds the IN list in an ephemeral table, whose page cache costs a
         * large allocation (and page faults) on every claim.
         */
        [ST_CLAIM_ONE] = "UPDATE jobs SET " CLAIM_SET " WHERE id = (" CLAIM_CANDIDATES
                         ") RETURNING " JOB_COLS,
        [ST_REAP] = "UPDATE jobs SET state = 'failed', finished_at = ?1, updated_at = ?1, "
                    "lease_owner = NULL, lease_expires = NULL, "
                    "error = 'worker lost ' || attempt || ' times (lease expired); giving up' "
                    "WHERE state = 'running' AND lease_expires <= ?1 AND attempt >= max_attempts",
        [ST_HEARTBEAT] = "UPDATE jobs SET lease_expires = ?3, updated_at = ?4 "
                         "WHERE id = ?1 AND state = 'running' AND lease_owner = ?2 "
                         "RETURNING cancel_requested",
        [ST_COMPLETE] = "UPDATE jobs SET state = 'succeeded', finished_at = ?3, updated_at = ?3, "
                        "lease_owner = NULL, lease_expires = NULL, error = NULL "
                        "WHERE id = ?1 AND state = 'running' AND lease_owner = ?2",
        [ST_FAIL] = "UPDATE jobs SET "
                    "state = CASE WHEN ?3 AND attempt < max_attempts AND NOT cancel_requested "
                    "  THEN 'queued' ELSE 'failed' END, "
                    "run_after = ?5 + CAST(min(?6 * (1 << min(attempt - 1, 20)), 3600000) * ?7 "
                    "  AS INTEGER), "
                    "finished_at = CASE WHEN ?3 AND attempt < max_attempts "
                    "  AND NOT cancel_requested THEN NULL ELSE ?5 END, "
                    "error = ?4, updated_at = ?5, lease_owner = NULL, lease_expires = NULL "
                    "WHERE id = ?1 AND state = 'running' AND lease_owner = ?2 RETURNING state",
        [ST_CANCELLED] = "UPDATE jobs SET state = 'cancelled', finished_at = ?3, updated_at = ?3, "
                         "lease_owner = NULL, lease_expires = NULL, "
                         "error = coalesce(error, 'cancelled by user') "
                         "WHERE id = ?1 AND state = 'running' AND lease_owner = ?2",
        [ST_RELEASE] = "UPDATE jobs SET state = 'queued', attempt = max(attempt - 1, 0), "
                       "run_after = ?3, updated_at = ?3, lease_owner = NULL, lease_expires = NULL "
                       "WHERE id = ?1 AND state = 'running' AND lease_owner = ?2",
        [ST_CANCEL_REQ] = "SELECT cancel_requested FROM jobs WHERE id = ?1",
};

struct eng_queue {
        sqlite3 *db;
        char *path;
        sqlite3_stmt *st[ST__COUNT];
        int64_t next_reap_ms; /* monotonic; expired leases past max_attempts are failed then */
};

static const char *const state_names[] = {"queued", "running", "succeeded", "failed", "cancelled"};

const char *eng_job_state_name(enum eng_job_state s)
{
        return (unsigned)s < 5 ? state_names[s] : "?";
}

int eng_job_state_parse(enum eng_job_state *out, const char *s)
{
        for (int i = 0; i < 5; i++) {
                if (strcmp(s, state_names[i]) == 0) {
                        *out = (enum eng_job_state)i;
                        return 0;
                }
        }
        return SW_EINVAL;
}

struct sqlite3 *eng_queue_db(struct eng_queue *q)
{
        return q->db;
}

static int queue_exec(struct eng_queue *q, const char *sql, struct sw_err *err)
{
        int rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);

        return rc == SQLITE_OK ? 0 : eng__sqlite_err(q->db, rc, err, sql);
}

int eng_queue_open(struct eng_queue **out, const struct eng_queue_options *opts, struct sw_err *err)
{
        struct eng_queue *q = sw_xcalloc(1, sizeof(*q));
        char pragmas[160];
        int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
        int rc;

        q->path = sw_xstrdup(opts->path);
        if (opts->create) {
                char *dir = sw_xstrdup(opts->path);
                char *slash = strrchr(dir, '/');
                if (slash && slash != dir) {
                        *slash = '\0';
                        rc = sw_mkdir_p(dir, 0700, err);
                } else {
                        rc = 0;
                }
                free(dir);
                if (rc)
                        goto fail;
                flags |= SQLITE_OPEN_CREATE;
        } else if (access(opts->path, F_OK) != 0) {
                rc = sw_err_set(err, SW_ENOTFOUND,
                                "no database at '%s': nothing has been submitted yet, or "
                                "SLIPWAY_DATA points elsewhere",
                                opts->path);
                goto fail;
        }
        rc = sqlite3_open_v2(opts->path, &q->db, flags, NULL);
        if (rc != SQLITE_OK) {
                rc = eng__sqlite_err(q->db, rc, err, "open database");
                sw_err_wrap(err, "'%s'", opts->path);
                goto fail;
        }
        sqlite3_extended_result_codes(q->db, 1);
        sqlite3_busy_timeout(q->db, (int)(opts->busy_timeout_ms ? opts->busy_timeout_ms : 5000));
        snprintf(pragmas, sizeof(pragmas),
                 "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s; PRAGMA foreign_keys = ON;",
                 opts->synchronous_full ? "FULL" : "NORMAL");
        rc = queue_exec(q, pragmas, err);
        if (rc) {
                sw_err_wrap(err, "database '%s'", opts->path);
                goto fail;
        }
        rc = eng__migrate(q->db, opts->path, err);
        if (rc)
                goto fail;
        *out = q;
        return 0;
fail:
        eng_queue_close(q);
        return rc;
}

void eng_queue_close(struct eng_queue *q)
{
        if (!q)
                return;
        for (int i = 0; i < ST__COUNT; i++)
                sqlite3_finalize(q->st[i]);
        sqlite3_close(q->db);
        free(q->path);
        free(q);
}

/* The cached statement `which`, reset and ready to bind. */
static int queue_stmt(sqlite3_stmt **out, struct eng_queue *q, int which, struct sw_err *err)
{
        if (!q->st[which]) {
                int rc = sqlite3_prepare_v3(q->db, queue_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
                                            &q->st[which], NULL);
                if (rc != SQLITE_OK)
                        return eng__sqlite_err(q->db, rc, err, "prepare queue statement");
        } else {
                sqlite3_reset(q->st[which]);
                sqlite3_clear_bindings(q->st[which]);
        }
        *out = q->st[which];
        return 0;
}

static char *col_strdup(sqlite3_stmt *st, int i)
{
        const unsigned char *s = sqlite3_column_text(st, i);

        return s ? sw_xstrdup((const char *)s) : NULL;
}

static struct eng_job *job_from_row(sqlite3_stmt *st)
{
        struct eng_job *j = sw_xcalloc(1, sizeof(*j));
        const char *state = (const char *)sqlite3_column_text(st, 3);

        j->id = sqlite3_column_int64(st, 0);
        j->kind = col_strdup(st, 1);
        j->payload = col_strdup(st, 2);
        if (!state || eng_job_state_parse(&j->state, state) != 0)
                j->state = ENG_JOB_FAILED;
        j->priority = sqlite3_column_int(st, 4);
        j->attempt = sqlite3_column_int(st, 5);
        j->max_attempts = sqlite3_column_int(st, 6);
        j->run_after = sqlite3_column_int64(st, 7);
        j->lease_owner = col_strdup(st, 8);
        j->lease_expires = sqlite3_column_int64(st, 9);
        j->idempotency_key = col_strdup(st, 10);
        j->concurrency_key = col_strdup(st, 11);
        j->cancel_requested = sqlite3_column_int(st, 12) != 0;
        j->error = col_strdup(st, 13);
        j->log_bytes = sqlite3_column_int64(st, 14);
        j->created_at = sqlite3_column_int64(st, 15);
        j->updated_at = sqlite3_column_int64(st, 16);
        j->started_at = sqlite3_column_int64(st, 17);
        j->finished_at = sqlite3_column_int64(st, 18);
        if (!j->kind)
                j->kind = sw_xstrdup("");
        if (!j->payload)
                j->payload = sw_xstrdup("{}");
        return j;
}

void eng_job_free(struct eng_job *job)
{
        if (!job)
                return;
        free(job->kind);
        free(job->payload);
        free(job->lease_owner);
        free(job->idempotency_key);
        free(job->concurrency_key);
        free(job->error);
        free(job);
}

void eng_job_list_free(struct eng_job **jobs, size_t n)
{
        if (!jobs)
                return;
        for (size_t i = 0; i < n; i++)
                eng_job_free(jobs[i]);
        free(jobs);
}

static void bind_opt_text(sqlite3_stmt *st, int i, const char *s)
{
        if (s && *s)
                sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
        else
                sqlite3_bind_null(st, i);
}

static int insert_one(int64_t *id_out, bool *existed, struct eng_queue *q,
                      const struct eng_job_spec *s, int64_t now, struct sw_err *err)
{
        sqlite3_stmt *st;
        int rc;

        if (!s->kind || !*s->kind || !s->payload)
                return sw_err_set(err, SW_EINVAL, "a job needs a kind and a payload");
        rc = queue_stmt(&st, q, ST_INSERT, err);
        if (rc)
                return rc;
        sqlite3_bind_text(st, 1, s->kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, s->payload, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, s->priority);
        sqlite3_bind_int(st, 4, s->max_attempts > 0 ? s->max_attempts : 3);
        sqlite3_bind_int64(st, 5, s->run_after_ms > 0 ? s->run_after_ms : now);
        bind_opt_text(st, 6, s->idempotency_key);
        bind_opt_text(st, 7, s->concurrency_key);
        sqlite3_bind_int64(st, 8, now);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                *id_out = sqlite3_column_int64(st, 0);
                *existed = false;
                sqlite3_reset(st);
                return 0;
        }
        if (rc != SQLITE_DONE)
                return eng__sqlite_err(q->db, rc, err, "insert job");
        /* The idempotency key matched: return the job that has it. */
        rc = queue_stmt(&st, q, ST_FIND_IDEM, err);
        if (rc)
                return rc;
        sqlite3_bind_text(st, 1, s->idempotency_key, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return eng__sqlite_err(q->db, rc, err, "find job by idempotency key");
        *id_out = sqlite3_column_int64(st, 0);
        *existed = true;
        sqlite3_reset(st);
        return 0;
}

int eng_queue_enqueue(int64_t *id_out, bool *existed_out, struct eng_queue *q,
                      const struct eng_job_spec *spec, struct sw_err *err)
{
        int64_t now = sw_now_ms(), id = 0;
        bool existed = false;
        sqlite3_stmt *st;
        int rc;

        rc = queue_exec(q, "BEGIN IMMEDIATE", err);
        if (rc)
                return rc;
        rc = insert_one(&id, &existed, q, spec, now, err);
        if (rc)
                goto rollback;
        if (!existed && spec->supersede && spec->concurrency_key) {
                rc = queue_stmt(&st, q, ST_SUPERSEDE, err);
                if (rc)
                        goto rollback;
                sqlite3_bind_text(st, 1, spec->concurrency_key, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 2, id);
                sqlite3_bind_int64(st, 3, now);
                rc = sqlite3_step(st);
                sqlite3_reset(st);
                if (rc != SQLITE_DONE) {
                        rc = eng__sqlite_err(q->db, rc, err, "supersede queued jobs");
                        goto rollback;
                }
        }
        rc = queue_exec(q, "COMMIT", err);
        if (rc)
                goto rollback;
        *id_out = id;
        if (existed_out)
                *existed_out = existed;
        return 0;
rollback:
        sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
}

int eng_queue_enqueue_batch(struct eng_queue *q, const struct eng_job_spec *specs, size_t n,
                            struct sw_err *err)
{
        int64_t now = sw_now_ms();
        int rc;

        rc = queue_exec(q, "BEGIN IMMEDIATE", err);
        if (rc)
                return rc;
        for (size_t i = 0; i < n; i++) {
                int64_t id;
                bool existed;
                rc = insert_one(&id, &existed, q, &specs[i], now, err);
                if (rc)
                        goto rollback;
        }
        rc = queue_exec(q, "COMMIT", err);
        if (rc)
                goto rollback;
        return 0;
rollback:
        sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
}

/* Fail running jobs whose lease expired with no attempts left; at most once a second. */
static int queue_reap(struct eng_queue *q, int64_t now, struct sw_err *err)
{
        sqlite3_stmt *st;
        int rc;

        if (sw_mono_ms() < q->next_reap_ms)
                return 0;
        q->next_reap_ms = sw_mono_ms() + 1000;
        rc = queue_stmt(&st, q, ST_REAP, err);
        if (rc)
                return rc;
        sqlite3_bind_int64(st, 1, now);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? 0 : eng__sqlite_err(q->db, rc, err, "fail expired jobs");
}

int eng_queue_claim_batch(struct eng_job **out, size_t max, size_t *n_out, struct eng_queue *q,
                          const char *owner, int64_t lease_ms, struct sw_err *err)
{
        int64_t now = sw_now_ms();
        sqlite3_stmt *st;
        size_t n = 0;
        int rc;

        *n_out = 0;
        rc = queue_reap(q, now, err);
        if (rc)
                return rc;
        rc = queue_stmt(&st, q, max == 1 ? ST_CLAIM_ONE : ST_CLAIM, err);
        if (rc)
                return rc;
        sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        sqlite3_bind_int64(st, 3, lease_ms);
        sqlite3_bind_int64(st, 4, (int64_t)max);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < max)
                out[n++] = job_from_row(st);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
                /* The UPDATE rolled back: nothing was claimed. */
                for (size_t i = 0; i < n; i++)
                        eng_job_free(out[i]);
                sqlite3_reset(st);
                return eng__sqlite_err(q->db, rc, err, "claim job");
        }
        sqlite3_reset(st);
        *n_out = n;
        return 0;
}

int eng_queue_claim(struct eng_job **out, struct eng_queue *q, const char *owner, int64_t lease_ms,
                    struct sw_err *err)
{
        size_t n = 0;
        int rc = eng_queue_claim_batch(out, 1, &n, q, owner, lease_ms, err);

        if (rc)
                return rc;
        return n ? 0 : SW_ENOTFOUND;
}

int eng_queue_heartbeat(bool *cancel_out, struct eng_queue *q, int64_t id, const char *owner,
                        int64_t lease_ms, struct sw_err *err)
{
        int64_t now = sw_now_ms();
        sqlite3_stmt *st;
        int rc;

        rc = queue_stmt(&st, q, ST_HEARTBEAT, err);
        if (rc)
                return rc;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, now + lease_ms);
        sqlite3_bind_int64(st, 4, now);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                if (cancel_out)
                        *cancel_out = sqlite3_column_int(st, 0) != 0;
                sqlite3_reset(st);
                return 0;
        }
        sqlite3_reset(st);
        if (rc == SQLITE_DONE)
                return sw_err_set(err, SW_ELEASE, "job %lld: lease lost by '%s'", (long long)id,
                                  owner);
        return eng__sqlite_err(q->db, rc, err, "renew lease");
}

int eng_queue_cancel_requested(bool *out, struct eng_queue *q, int64_t id, struct sw_err *err)
{
        sqlite3_stmt *st;
        int rc;

        rc = queue_stmt(&st, q, ST_CANCEL_REQ, err);
        if (rc)
                return rc;
        sqlite3_bind_int64(st, 1, id);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                *out = sqlite3_column_int(st, 0) != 0;
        sqlite3_reset(st);
        if (rc == SQLITE_ROW)
                return 0;
        if (rc == SQLITE_DONE)
                return sw_err_set(err, SW_ENOTFOUND, "job %lld not found", (long long)id);
        return eng__sqlite_err(q->db, rc, err, "read cancel flag");
}

/* Run a fenced transition (id, owner, now) that must change exactly one row. */
static int queue_transition(struct eng_queue *q, int which, int64_t id, const char *owner,
                            const char *what, struct sw_err *err)
{
        sqlite3_stmt *st;
        int rc;

        rc = queue_stmt(&st, q, which, err);
        if (rc)
                return rc;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, sw_now_ms());
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
                return eng__sqlite_err(q->db, rc, err, what);
        if (sqlite3_changes(q->db) != 1)
                return sw_err_set(err, SW_ELEASE, "%s: job %lld is no longer leased by '%s'", what,
                                  (long long)id, owner);
        return 0;
}

int eng_queue_complete(struct eng_queue *q, int64_t id, const char *owner, struct sw_err *err)
{
        return queue_transition(q, ST_COMPLETE, id, owner, "complete job", err);
}

int eng_queue_complete_batch(struct eng_queue *q, const int64_t *ids, size_t n, const char *owner,
                             struct sw_err *err)
{
        int rc = queue_exec(q, "BEGIN IMMEDIATE", err);

        if (rc)
                return rc;
        for (size_t i = 0; i < n; i++) {
                rc = queue_transition(q, ST_COMPLETE, ids[i], owner, "complete job", err);
                if (rc)
                        goto rollback;
        }
        rc = queue_exec(q, "COMMIT", err);
        if (rc)
                goto rollback;
        return 0;
rollback:
        sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
}

int eng_queue_fail(bool *requeued_out, struct eng_queue *q, int64_t id, const char *owner,
                   bool transient, const char *message, int64_t backoff_base_ms, struct sw_err *err)
{
        unsigned int r;
        sqlite3_stmt *st;
        int rc;

        /* Full jitter between half and all of the backoff spreads retries of many jobs. */
        sqlite3_randomness(sizeof(r), &r);
        rc = queue_stmt(&st, q, ST_FAIL, err);
        if (rc)
                return rc;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, transient ? 1 : 0);
        bind_opt_text(st, 4, message);
        sqlite3_bind_int64(st, 5, sw_now_ms());
        sqlite3_bind_int64(st, 6, backoff_base_ms);
        sqlite3_bind_double(st, 7, 0.5 + 0.5 * ((double)r / 4294967295.0));
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                if (requeued_out)
                        *requeued_out =
                                strcmp((const char *)sqlite3_column_text(st, 0), "queued") == 0;
                sqlite3_reset(st);
                return 0;
        }
        sqlite3_reset(st);
        if (rc == SQLITE_DONE)
                return sw_err_set(err, SW_ELEASE, "fail job: job %lld is no longer leased by '%s'",
                                  (long long)id, owner);
        return eng__sqlite_err(q->db, rc, err, "fail job");
}

int eng_queue_finish_cancelled(struct eng_queue *q, int64_t id, const char *owner,
                               struct sw_err *err)
{
        return queue_transition(q, ST_CANCELLED, id, owner, "cancel job", err);
}

int eng_queue_release(struct eng_queue *q, int64_t id, const char *owner, struct sw_err *err)
{
        return queue_transition(q, ST_RELEASE, id, owner, "release job", err);
}

/* One-off statements (CLI paths) need no cache. */
static int queue_prepare(sqlite3_stmt **out, struct eng_queue *q, const char *sql,
                         struct sw_err *err)
{
        int rc = sqlite3_prepare_v2(q->db, sql, -1, out, NULL);

        return rc == SQLITE_OK ? 0 : eng__sqlite_err(q->db, rc, err, "prepare");
}

int eng_queue_get(struct eng_job **out, struct eng_queue *q, int64_t id, struct sw_err *err)
{
        sqlite3_stmt *st = NULL;
        int rc = queue_prepare(&st, q, "SELECT " JOB_COLS " FROM jobs WHERE id = ?1", err);

        if (rc)
                return rc;
        sqlite3_bind_int64(st, 1, id);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                *out = job_from_row(st);
                rc = 0;
        } else if (rc == SQLITE_DONE) {
                rc = sw_err_set(err, SW_ENOTFOUND, "job %lld not found", (long long)id);
        } else {
                rc = eng__sqlite_err(q->db, rc, err, "read job");
        }
        sqlite3_finalize(st);
        return rc;
}

int eng_queue_cancel(enum eng_job_state *state_out, struct eng_queue *q, int64_t id,
                     struct sw_err *err)
{
        static const char sql[] =
                "UPDATE jobs SET "
                "state = CASE state WHEN 'queued' THEN 'cancelled' ELSE state END, "
                "finished_at = CASE state WHEN 'queued' THEN ?2 ELSE finished_at END, "
                "error = 'cancelled by user', cancel_requested = 1, updated_at = ?2 "
                "WHERE id = ?1 AND state IN ('queued', 'running') RETURNING state";
        sqlite3_stmt *st = NULL;
        struct eng_job *job = NULL;
        int rc = queue_prepare(&st, q, sql, err);

        if (rc)
                return rc;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, sw_now_ms());
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                eng_job_state_parse(state_out, (const char *)sqlite3_column_text(st, 0));
                rc = 0;
                goto out;
        }
        if (rc != SQLITE_DONE) {
                rc = eng__sqlite_err(q->db, rc, err, "cancel job");
                goto out;
        }
        rc = eng_queue_get(&job, q, id, err);
        if (rc == 0) {
                *state_out = job->state;
                rc = sw_err_set(err, SW_ECONFLICT, "job %lld has already %s", (long long)id,
                                eng_job_state_name(job->state));
        }
out:
        eng_job_free(job);
        sqlite3_finalize(st);
        return rc;
}

int eng_queue_retry(struct eng_queue *q, int64_t id, struct sw_err *err)
{
        static const char sql[] =
                "UPDATE jobs SET state = 'queued', attempt = 0, run_after = ?2, error = NULL, "
                "cancel_requested = 0, lease_owner = NULL, lease_expires = NULL, "
                "finished_at = NULL, updated_at = ?2 "
                "WHERE id = ?1 AND state IN ('failed', 'cancelled')";
        sqlite3_stmt *st = NULL;
        struct eng_job *job = NULL;
        int rc = queue_prepare(&st, q, sql, err);

        if (rc)
                return rc;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, sw_now_ms());
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
                rc = eng__sqlite_err(q->db, rc, err, "retry job");
                goto out;
        }
        if (sqlite3_changes(q->db) == 1) {
                rc = 0;
                goto out;
        }
        rc = eng_queue_get(&job, q, id, err);
        if (rc == 0)
                rc = sw_err_set(err, SW_ECONFLICT,
                                "job %lld is %s; only failed or cancelled jobs can be retried",
                                (long long)id, eng_job_state_name(job->state));
out:
        eng_job_free(job);
        sqlite3_finalize(st);
        return rc;
}

int eng_queue_list(struct eng_job ***jobs_out, size_t *n_out, struct eng_queue *q,
                   const enum eng_job_state *state, size_t limit, struct sw_err *err)
{
        sqlite3_stmt *st = NULL;
        struct eng_job **jobs = NULL;
        size_t n = 0, cap = 0;
        int rc;

        rc = queue_prepare(&st, q,
                           state ? "SELECT " JOB_COLS " FROM jobs WHERE state = ?1 "
                                   "ORDER BY id DESC LIMIT ?2"
                                 : "SELECT " JOB_COLS " FROM jobs ORDER BY id DESC LIMIT ?2",
                           err);
        if (rc)
                return rc;
        if (state)
                sqlite3_bind_text(st, 1, eng_job_state_name(*state), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)limit);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (n == cap) {
                        cap = cap ? cap * 2 : 16;
                        jobs = sw_xrealloc(jobs, cap * sizeof(*jobs));
                }
                jobs[n++] = job_from_row(st);
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
                eng_job_list_free(jobs, n);
                return eng__sqlite_err(q->db, rc, err, "list jobs");
        }
        *jobs_out = jobs;
        *n_out = n;
        return 0;
}

int eng_queue_counts(int64_t counts[5], struct eng_queue *q, struct sw_err *err)
{
        sqlite3_stmt *st = NULL;
        int rc = queue_prepare(&st, q, "SELECT state, count(*) FROM jobs GROUP BY state", err);

        if (rc)
                return rc;
        for (int i = 0; i < 5; i++)
                counts[i] = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                enum eng_job_state s;
                if (eng_job_state_parse(&s, (const char *)sqlite3_column_text(st, 0)) == 0)
                        counts[s] = sqlite3_column_int64(st, 1);
        }
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : eng__sqlite_err(q->db, rc, err, "count jobs");
}
