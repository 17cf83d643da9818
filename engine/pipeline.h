/*
 * pipeline.h - named steps run in order for a job, each recorded.
 *
 * A pipeline is an ordered list of step definitions for one job kind. The
 * runner records each step's state, start and end time, output (JSON) and
 * log lines in the database. A retried job resumes after its last succeeded
 * step: those steps are not run again, their stored outputs are handed on.
 *
 * A step gets a context: the job's payload, the outputs of earlier steps, a
 * log writer, a cancellation flag and a scratch directory that is removed
 * when the step returns. A step returns 0 and may set *output (a new
 * reference, stored as the step's output), or a negative SW_E* code with
 * `err` filled: transient codes make the job retry with backoff, permanent
 * ones fail it. Steps must be idempotent: a step may run again after a
 * crash in the middle of it.
 *
 * Threads: a context belongs to the worker thread running the step; only
 * eng_step_cancelled() may be read while another thread requests the cancel.
 */
#ifndef SW_ENGINE_PIPELINE_H
#define SW_ENGINE_PIPELINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"

struct eng_queue;
struct eng_job;
struct eng_step_ctx;
struct sw_config;

struct eng_step_def {
        const char *name;    /* "clone": unique within a pipeline, stored with the step */
        const char *summary; /* one line for `slipway job` and --help */
        int (*run)(struct eng_step_ctx *ctx, json_t **output, struct sw_err *err);
};

struct eng_pipeline_def {
        const char *kind; /* the job kind it runs: "deploy" */
        const struct eng_step_def *const *steps;
        size_t nsteps;
};

/* Why a running pipeline is asked to stop. */
enum eng_stop_reason {
        ENG_STOP_NONE = 0,
        ENG_STOP_CANCEL = 1,   /* the user cancelled the job */
        ENG_STOP_SHUTDOWN = 2, /* the worker is shutting down: release the job */
        ENG_STOP_LEASE = 3,    /* the lease passed to another worker */
};

struct eng_run_env {
        const struct sw_config *cfg;
        const char *scratch_root; /* directory under which step scratch dirs are made */
        int64_t log_max_bytes;    /* cap on a job's stored log */
        atomic_int *stop;         /* an enum eng_stop_reason set by another thread */
};

/*
 * Run (or resume) `job` through `def` on the worker's connection `q`.
 * Returns 0 when every step succeeded; SW_ECANCELED when stopped (see
 * env->stop for why); otherwise the failing step's code, with `err` naming
 * the step.
 */
int eng_pipeline_run(struct eng_queue *q, const struct eng_job *job,
                     const struct eng_pipeline_def *def, const struct eng_run_env *env,
                     struct sw_err *err);

/* The pipeline for `kind` in `defs`, or NULL. */
const struct eng_pipeline_def *eng_pipeline_find(const struct eng_pipeline_def *defs, size_t n,
                                                 const char *kind);

/* --- for step implementations --- */

int64_t eng_step_job_id(const struct eng_step_ctx *ctx);
int eng_step_attempt(const struct eng_step_ctx *ctx);
const struct sw_config *eng_step_config(const struct eng_step_ctx *ctx);
/* The job's payload (the deploy request). Borrowed. */
const json_t *eng_step_payload(const struct eng_step_ctx *ctx);
/* The stored output of an earlier step of this job, or NULL. Borrowed. */
const json_t *eng_step_output(const struct eng_step_ctx *ctx, const char *step);
/* A directory for this step only, removed after it returns. */
const char *eng_step_scratch(const struct eng_step_ctx *ctx);
/* True once the job should stop (cancel, shutdown, lost lease): return SW_ECANCELED soon. */
bool eng_step_cancelled(const struct eng_step_ctx *ctx);
/* The stop flag itself, for loops that wait on children (read-only use). */
atomic_int *eng_step_stop_flag(const struct eng_step_ctx *ctx);

/* Register a string (a password, a token) that is replaced by "***" in the job's log. */
void eng_step_add_secret(struct eng_step_ctx *ctx, const char *secret);
/* Append one line to the job's log (a trailing newline is dropped). */
void eng_step_log(struct eng_step_ctx *ctx, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* Append raw output (a child's stdout); it is split into lines. */
void eng_step_log_write(struct eng_step_ctx *ctx, const char *data, size_t len);

/* --- reading what the runner stored, for the CLI and the API --- */

struct eng_step_record {
        int idx;
        char *name;
        char *state; /* running | succeeded | failed | cancelled */
        int attempt;
        int64_t started_at, finished_at; /* finished_at is 0 while running */
        char *output;                    /* JSON text or NULL */
        char *error;                     /* or NULL */
};

int eng_steps_list(struct eng_step_record **out, size_t *n_out, struct eng_queue *q, int64_t job_id,
                   struct sw_err *err);
void eng_steps_free(struct eng_step_record *steps, size_t n);

/*
 * Log lines of a job with seq > after_seq, at most `max`; for each line
 * `fn` is called. *last_seq_out gets the last seq seen (after_seq if none).
 */
int eng_logs_read(int64_t *last_seq_out, struct eng_queue *q, int64_t job_id, int64_t after_seq,
                  size_t max,
                  void (*fn)(void *arg, int64_t seq, int64_t ts, const char *step,
                             const char *line),
                  void *arg, struct sw_err *err);

#endif /* SW_ENGINE_PIPELINE_H */
