/*
 * queue.h - the durable job queue on SQLite.
 *
 * A job moves queued -> running -> succeeded | failed | cancelled. A worker
 * claims a job with one atomic statement that leases it for `lease_ms`; the
 * lease is renewed by heartbeats, and a lease that expires (the worker was
 * killed) makes the job claimable again, so no job is lost and no job runs
 * twice at once. Failed attempts are retried after an exponential backoff
 * with jitter until max_attempts. An idempotency key makes a second submit
 * return the first job; a concurrency key allows one running job per key,
 * and a new job may supersede the queued ones of its key.
 *
 * Every transition that a worker makes names the lease owner and is refused
 * with SW_ELEASE when the lease has passed to someone else (fencing).
 *
 * Ownership: eng_queue_open() returns a connection owned by the caller,
 * closed with eng_queue_close() (accepts NULL). Jobs returned are owned by
 * the caller (eng_job_free).
 * Threads: one thread at a time per eng_queue; open one per thread. Any
 * number of processes may share the database file.
 */
#ifndef SW_ENGINE_QUEUE_H
#define SW_ENGINE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct eng_queue;
struct sqlite3;

enum eng_job_state {
        ENG_JOB_QUEUED,
        ENG_JOB_RUNNING,
        ENG_JOB_SUCCEEDED,
        ENG_JOB_FAILED,
        ENG_JOB_CANCELLED,
};

struct eng_queue_options {
        const char *path;        /* the database file */
        bool create;             /* create the file (and its directory) when missing */
        bool synchronous_full;   /* PRAGMA synchronous=FULL instead of NORMAL */
        int64_t busy_timeout_ms; /* 0 means 5000 */
};

#define ENG_QUEUE_OPTIONS_INIT                                                                     \
        {                                                                                          \
                NULL, true, false, 0                                                               \
        }

struct eng_job_spec {
        const char *kind;            /* "deploy" */
        const char *payload;         /* JSON text */
        int priority;                /* higher runs first */
        int max_attempts;            /* 0 means 3 */
        const char *idempotency_key; /* NULL: none */
        const char *concurrency_key; /* NULL: none */
        bool supersede;              /* cancel older queued jobs of the same concurrency key */
        int64_t run_after_ms;        /* 0: now */
};

struct eng_job {
        int64_t id;
        char *kind;
        char *payload;
        enum eng_job_state state;
        int priority;
        int attempt;
        int max_attempts;
        int64_t run_after;
        char *lease_owner;
        int64_t lease_expires;
        char *idempotency_key;
        char *concurrency_key;
        bool cancel_requested;
        char *error;
        int64_t log_bytes;
        int64_t created_at, updated_at, started_at, finished_at;
};

int eng_queue_open(struct eng_queue **out, const struct eng_queue_options *opts,
                   struct sw_err *err);
void eng_queue_close(struct eng_queue *q);
/* The underlying connection, for the pipeline runner inside the engine. */
struct sqlite3 *eng_queue_db(struct eng_queue *q);

const char *eng_job_state_name(enum eng_job_state s);
int eng_job_state_parse(enum eng_job_state *out, const char *s);
void eng_job_free(struct eng_job *job);

/*
 * Queue a job. *id_out gets its id; *existed_out (may be NULL) is set when
 * the idempotency key matched an existing job, whose id is returned.
 */
int eng_queue_enqueue(int64_t *id_out, bool *existed_out, struct eng_queue *q,
                      const struct eng_job_spec *spec, struct sw_err *err);
/* Queue `n` jobs in one transaction (no idempotency keys); ids are not returned. */
int eng_queue_enqueue_batch(struct eng_queue *q, const struct eng_job_spec *specs, size_t n,
                            struct sw_err *err);

/*
 * Claim the most urgent runnable job (highest priority, then oldest) for
 * `owner`, leased until now + lease_ms. A job whose lease expired is runnable
 * again. Returns 0 and a job owned by the caller, SW_ENOTFOUND when nothing is
 * runnable, SW_EBUSY when the database stayed locked (transient).
 */
int eng_queue_claim(struct eng_job **out, struct eng_queue *q, const char *owner, int64_t lease_ms,
                    struct sw_err *err);
/* Claim up to `max` jobs in one statement; *n_out may be 0. */
int eng_queue_claim_batch(struct eng_job **out, size_t max, size_t *n_out, struct eng_queue *q,
                          const char *owner, int64_t lease_ms, struct sw_err *err);

/* Extend the lease. *cancel_out tells whether a cancel was requested. SW_ELEASE: lost. */
int eng_queue_heartbeat(bool *cancel_out, struct eng_queue *q, int64_t id, const char *owner,
                        int64_t lease_ms, struct sw_err *err);
/* Whether a cancel was requested for a job (read only). */
int eng_queue_cancel_requested(bool *out, struct eng_queue *q, int64_t id, struct sw_err *err);

/* running -> succeeded. */
int eng_queue_complete(struct eng_queue *q, int64_t id, const char *owner, struct sw_err *err);
/* Complete `n` jobs of `owner` in one transaction (group commit). */
int eng_queue_complete_batch(struct eng_queue *q, const int64_t *ids, size_t n, const char *owner,
                             struct sw_err *err);
/*
 * running -> queued after a backoff when `transient` and attempts remain,
 * else -> failed. `message` is stored as the job's error. *requeued_out (may
 * be NULL) tells which.
 */
int eng_queue_fail(bool *requeued_out, struct eng_queue *q, int64_t id, const char *owner,
                   bool transient, const char *message, int64_t backoff_base_ms,
                   struct sw_err *err);
/* running -> cancelled, after the worker honoured a cancel request. */
int eng_queue_finish_cancelled(struct eng_queue *q, int64_t id, const char *owner,
                               struct sw_err *err);
/* running -> queued now, not counting the attempt (graceful shutdown). */
int eng_queue_release(struct eng_queue *q, int64_t id, const char *owner, struct sw_err *err);

/*
 * Cancel: a queued job is cancelled at once; a running one is asked to stop
 * and its worker notices within a second. *state_out gets the state after the
 * call. Finished jobs: SW_ECONFLICT.
 */
int eng_queue_cancel(enum eng_job_state *state_out, struct eng_queue *q, int64_t id,
                     struct sw_err *err);
/* failed | cancelled -> queued with a fresh set of attempts; steps that succeeded are kept. */
int eng_queue_retry(struct eng_queue *q, int64_t id, struct sw_err *err);

int eng_queue_get(struct eng_job **out, struct eng_queue *q, int64_t id, struct sw_err *err);
/*
 * Newest first, at most `limit`, optionally only one state (NULL: all).
 * *jobs_out is an array of *n_out jobs; free with eng_job_list_free().
 */
int eng_queue_list(struct eng_job ***jobs_out, size_t *n_out, struct eng_queue *q,
                   const enum eng_job_state *state, size_t limit, struct sw_err *err);
void eng_job_list_free(struct eng_job **jobs, size_t n);

/* Counts per state, indexed by enum eng_job_state. */
int eng_queue_counts(int64_t counts[5], struct eng_queue *q, struct sw_err *err);

#endif /* SW_ENGINE_QUEUE_H */
