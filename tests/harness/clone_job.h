/*
 * clone_job.h - run one job through a one-step pipeline made of the clone
 * step, on a real queue database, as a worker would.
 *
 * The database is `data_dir`/slipway.db (created on first use); the job is
 * queued, claimed, run by eng_pipeline_run() and then completed or failed,
 * so that the next call claims its own job. What the runner stored (the
 * step's state, output and error, the job's log) is read back for the test.
 *
 * Threads: the main thread runs the job; `stop` may be set by another.
 */
#ifndef SW_TEST_CLONE_JOB_H
#define SW_TEST_CLONE_JOB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"
#include "common/config.h"

struct t_clone_job {
        int64_t id;
        int rc;            /* what eng_pipeline_run() returned */
        struct sw_err err; /* its message */
        char *state;       /* the step's recorded state: succeeded | failed | cancelled */
        char *error;       /* the step's recorded error, or NULL */
        json_t *output;    /* the step's output, or NULL */
        char *log;         /* every log line of the job, each followed by '\n' */
};

/*
 * Load a configuration from `env` (a NULL-terminated "SLIPWAY_X=v" array)
 * through the real parser. Returns 0 or -1 (printed).
 */
int t_clone_config(struct sw_config *cfg, char *const *env);

/* Queue `payload` (JSON text) and run it; 0 when the job ran (whatever its outcome), -1 on setup trouble. */
int t_clone_job_run(struct t_clone_job *out, const struct sw_config *cfg, const char *payload,
                    atomic_int *stop);
void t_clone_job_release(struct t_clone_job *j);

/*
 * Load the configuration SLIPWAY_DATA=`data` plus `extra` ("SLIPWAY_X=v"
 * strings, NULL-terminated; may be NULL) and run `payload` as one job.
 */
int t_clone_run(struct t_clone_job *j, const char *data, const char *const *extra,
                const char *payload, atomic_int *stop);
/* t_clone_run with SLIPWAY_CLONE_MAX_BYTES=`max_bytes` when it is not NULL. */
int t_clone_run_limited(struct t_clone_job *j, const char *data, const char *max_bytes,
                        const char *payload);
/* A new SLIPWAY_DATA path under the test's directory, different on each call; the caller frees. */
char *t_clone_data_dir(void);
/* Whether `path` exists. */
bool t_clone_exists(const char *path);
/* {"repo": url, "branch": branch, "commit": commit} without the NULL members; the caller frees. */
char *t_clone_payload(const char *url, const char *branch, const char *commit);
/* The text of dir/name (at most 1 MiB), or NULL; the caller frees. */
char *t_clone_file_text(const char *dir, const char *name);
/* Where the mirror of `url` lives under SLIPWAY_DATA=`data`; the caller frees. */
char *t_clone_mirror_path(const char *data, const char *url);

#endif /* SW_TEST_CLONE_JOB_H */
