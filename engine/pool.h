/*
 * pool.h - worker threads that claim jobs and run their pipelines.
 *
 * Each worker thread owns its own SQLite connection. One heartbeat thread
 * (with its own connection) renews the leases of the jobs this process runs
 * and notices cancel requests within a quarter of a second.
 *
 * Stopping (SIGTERM/SIGINT in `slipway worker`): the pool stops claiming,
 * lets running steps finish within the grace period, then asks the rest to
 * stop and releases their jobs so another worker resumes them.
 *
 * Ownership: eng_pool_start() returns a running pool owned by the caller;
 * eng_pool_stop() stops it and frees it. Threads: start and stop from one thread.
 */
#ifndef SW_ENGINE_POOL_H
#define SW_ENGINE_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct eng_pool;
struct eng_pipeline_def;
struct sw_config;

struct eng_pool_options {
        const struct sw_config *cfg; /* workers, lease, backoff, poll, data dir */
        const char *db_path;         /* NULL: $SLIPWAY_DATA/slipway.db */
        int workers;                 /* 0: cfg->workers */
        const struct eng_pipeline_def *pipelines;
        size_t npipelines;
        const char *name; /* lease owner prefix; NULL: "<host>:<pid>" */
        /* Called before each job's pipeline runs (may be NULL); idempotent and thread-safe. */
        void (*before_job)(void);
        /*
         * NULL: run pipelines on the worker threads. Otherwise the path of
         * the `slipway` binary: each claimed job runs in a child process,
         * `slipway job-exec`, and the thread only supervises it (see
         * eng_pool_exec_child). A crash in a step then fails one attempt of
         * one job instead of the whole worker, and an idle worker process
         * never maps the libraries that only the steps need.
         */
        const char *exec_path;
};

#define ENG_POOL_OPTIONS_INIT                                                                      \
        {                                                                                          \
                NULL, NULL, 0, NULL, 0, NULL, NULL, NULL                                           \
        }

int eng_pool_start(struct eng_pool **out, const struct eng_pool_options *opts, struct sw_err *err);
/* Stop claiming, wait up to grace_ms for running jobs, release the rest, join, free. */
void eng_pool_stop(struct eng_pool *p, int64_t grace_ms);
/* Jobs this pool finished (any final state) since it started. */
int64_t eng_pool_finished(const struct eng_pool *p);

/*
 * The child side of exec mode (`slipway job-exec`): run the pipeline of job
 * `id`, which `owner` holds the lease of, and write the outcome to
 * `result_fd` as "<rc>\n<message>". SIGTERM, SIGUSR1 and SIGUSR2 from the
 * supervising thread mean shutdown, cancel and lease lost. Returns 0 once
 * the outcome is written, or a negative SW_E* when the job cannot be run.
 */
int eng_pool_exec_child(const struct sw_config *cfg, const struct eng_pipeline_def *pipelines,
                        size_t npipelines, int64_t id, const char *owner, int result_fd,
                        struct sw_err *err);

#endif /* SW_ENGINE_POOL_H */
