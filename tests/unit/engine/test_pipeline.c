/*
 * test_pipeline.c - the pipeline runner and the worker pool: outputs handed
 * between steps, resume after a failed step, log capping and redaction,
 * cancel reaching a running step within a second, graceful shutdown.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/mem.h"
#include "engine/pipeline.h"
#include "engine/pool.h"
#include "engine/queue.h"
#include "tests/harness/engine_fixture.h"
#include "tests/harness/t.h"

/* Test steps communicate through these counters; each test resets them. */
static atomic_int runs_a, runs_b, runs_c;
static atomic_int fail_b_times;
static char scratch_seen[512];

static int step_a(struct eng_step_ctx *ctx, json_t **output, struct sw_err *err)
{
        (void)err;
        atomic_fetch_add(&runs_a, 1);
        snprintf(scratch_seen, sizeof(scratch_seen), "%s", eng_step_scratch(ctx));
        eng_step_log(ctx, "a ran with payload n=%lld",
                     (long long)sw_json_int(eng_step_payload(ctx), "n", -1));
        *output = json_pack("{s:s}", "commit", "abc123");
        return 0;
}

static int step_b(struct eng_step_ctx *ctx, json_t **output, struct sw_err *err)
{
        const json_t *a = eng_step_output(ctx, "a");

        atomic_fetch_add(&runs_b, 1);
        if (!a || strcmp(sw_json_str(a, "commit", ""), "abc123") != 0)
                return sw_err_set(err, SW_EINVAL, "b did not get a's output");
        if (atomic_load(&fail_b_times) > 0) {
                atomic_fetch_sub(&fail_b_times, 1);
                return sw_err_set(err, SW_EUNAVAIL, "registry unreachable");
        }
        *output = json_pack("{s:s}", "digest", "sha256:00");
        return 0;
}

static int step_c(struct eng_step_ctx *ctx, json_t **output, struct sw_err *err)
{
        (void)output;
        (void)err;
        atomic_fetch_add(&runs_c, 1);
        eng_step_add_secret(ctx, "hunter2-secret");
        eng_step_log(ctx, "login with password hunter2-secret ok");
        eng_step_log_write(ctx, "line one\nline two\npartial", 25);
        eng_step_log_write(ctx, " end\n", 5);
        return 0;
}

static const struct eng_step_def def_a = {"a", "first", step_a};
static const struct eng_step_def def_b = {"b", "second", step_b};
static const struct eng_step_def def_c = {"c", "third", step_c};
static const struct eng_step_def *const abc[] = {&def_a, &def_b, &def_c};
static const struct eng_pipeline_def pipe_abc = {"abc", abc, 3};

static void collect(void *arg, int64_t seq, int64_t ts, const char *step, const char *line)
{
        struct sw_err err = SW_ERR_INIT;
        (void)seq;
        (void)ts;
        (void)step;
        sw_buf_printf(arg, &err, "%s\n", line);
}

static struct eng_job *claim_one(struct eng_queue *q)
{
        struct eng_job *j = NULL;
        struct sw_err err = SW_ERR_INIT;

        CHECK_OK(eng_queue_claim(&j, q, "w", 60000, &err), &err);
        return j;
}

static void test_resume_after_failed_step(void)
{
        struct sw_config cfg;
        struct eng_queue *q;
        struct eng_job_spec s = {0};
        struct eng_job *j;
        struct eng_run_env env = {0};
        struct eng_step_record *steps = NULL;
        struct sw_err err = SW_ERR_INIT;
        struct sw_buf log = SW_BUF_INIT;
        atomic_int stop = 0;
        bool requeued = false;
        size_t n = 0;
        int64_t id, seq;
        int rc;

        tf_config(&cfg, NULL);
        q = tf_queue(&cfg);
        env.cfg = &cfg;
        env.scratch_root = t_tmpdir();
        env.log_max_bytes = 1 << 20;
        env.stop = &stop;
        atomic_store(&runs_a, 0);
        atomic_store(&runs_b, 0);
        atomic_store(&runs_c, 0);
        atomic_store(&fail_b_times, 1);
        s.kind = "abc";
        s.payload = "{\"n\":7}";
        CHECK_OK(eng_queue_enqueue(&id, NULL, q, &s, &err), &err);

        /* attempt 1: a succeeds, b fails transiently */
        j = claim_one(q);
        rc = eng_pipeline_run(q, j, &pipe_abc, &env, &err);
        CHECK_INT(rc, SW_EUNAVAIL);
        CHECK(strstr(err.msg, "step b") && strstr(err.msg, "registry unreachable"));
        CHECK_OK(eng_queue_fail(&requeued, q, id, "w", true, err.msg, 1, &err), &err);
        CHECK(requeued);
        eng_job_free(j);
        /* the scratch directory is gone after the step */
        struct stat st;
        CHECK(scratch_seen[0] && stat(scratch_seen, &st) != 0);

        /* attempt 2 resumes after a: a is not run again, b gets its stored output */
        sw_sleep_ms(5);
        sw_err_clear(&err);
        j = claim_one(q);
        CHECK_INT(j->attempt, 2);
        CHECK_OK(eng_pipeline_run(q, j, &pipe_abc, &env, &err), &err);
        CHECK_INT(atomic_load(&runs_a), 1);
        CHECK_INT(atomic_load(&runs_b), 2);
        CHECK_INT(atomic_load(&runs_c), 1);
        CHECK_OK(eng_queue_complete(q, id, "w", &err), &err);
        eng_job_free(j);

        CHECK_OK(eng_steps_list(&steps, &n, q, id, &err), &err);
        CHECK_INT(n, 3);
        if (n == 3) {
                CHECK_STR(steps[0].state, "succeeded");
                CHECK_INT(steps[0].attempt, 1);
                CHECK_STR(steps[1].state, "succeeded");
                CHECK_INT(steps[1].attempt, 2);
                CHECK_STR(steps[1].output, "{\"digest\":\"sha256:00\"}");
                CHECK(steps[2].finished_at >= steps[2].started_at);
        }
        eng_steps_free(steps, n);

        CHECK_OK(eng_logs_read(&seq, q, id, 0, 1000, collect, &log, &err), &err);
        CHECK(strstr(sw_buf_str(&log), "a ran with payload n=7"));
        CHECK(strstr(sw_buf_str(&log), "==> b\n"));
        CHECK(strstr(sw_buf_str(&log), "b failed after"));
        CHECK(strstr(sw_buf_str(&log), "a: done in an earlier attempt, skipped"));
        /* secrets are redacted, partial lines joined */
        CHECK(strstr(sw_buf_str(&log), "hunter2-secret") == NULL);
        CHECK(strstr(sw_buf_str(&log), "login with password *** ok"));
        CHECK(strstr(sw_buf_str(&log), "line one\nline two\npartial end\n"));
        sw_buf_release(&log);
        eng_queue_close(q);
        sw_config_release(&cfg);
}

static int step_chatty(struct eng_step_ctx *ctx, json_t **output, struct sw_err *err)
{
        (void)output;
        (void)err;
        for (int i = 0; i < 5000; i++)
                eng_step_log(ctx, "line %d of a very chatty build step .......................", i);
        return 0;
}

static void test_log_cap(void)
{
        static const struct eng_step_def chatty = {"chatty", "", step_chatty};
        static const struct eng_step_def *const steps[] = {&chatty};
        static const struct eng_pipeline_def pipe = {"chatty", steps, 1};
        struct sw_config cfg;
        struct eng_queue *q;
        struct eng_job_spec s = {0};
        struct eng_job *j;
        struct eng_run_env env = {0};
        struct sw_err err = SW_ERR_INIT;
        struct sw_buf log = SW_BUF_INIT;
        atomic_int stop = 0;
        int64_t id, seq = 0;

        tf_config(&cfg, NULL);
        q = tf_queue(&cfg);
        env.cfg = &cfg;
        env.scratch_root = t_tmpdir();
        env.log_max_bytes = 16384;
        env.stop = &stop;
        s.kind = "chatty";
        s.payload = "{}";
        CHECK_OK(eng_queue_enqueue(&id, NULL, q, &s, &err), &err);
        j = claim_one(q);
        CHECK_OK(eng_pipeline_run(q, j, &pipe, &env, &err), &err);
        eng_job_free(j);
        sw_buf_init(&log, 1 << 20);
        CHECK_OK(eng_logs_read(&seq, q, id, 0, 100000, collect, &log, &err), &err);
        CHECK(log.len <= 16384 + 200);
        CHECK(strstr(sw_buf_str(&log), "[log truncated"));
        sw_buf_release(&log);
        eng_queue_close(q);
        sw_config_release(&cfg);
}

/* A step that runs until it is told to stop. */
static atomic_int slow_started;

static int step_slow(struct eng_step_ctx *ctx, json_t **output, struct sw_err *err)
{
        (void)output;
        atomic_store(&slow_started, 1);
        for (int i = 0; i < 3000; i++) {
                if (eng_step_cancelled(ctx))
                        return sw_err_set(err, SW_ECANCELED, "stopped");
                sw_sleep_ms(10);
        }
        return 0;
}

static const struct eng_step_def def_slow = {"slow", "", step_slow};
static const struct eng_step_def *const slow_steps[] = {&def_slow};
static const struct eng_pipeline_def pipe_slow = {"slow", slow_steps, 1};

static struct eng_job *wait_state(struct eng_queue *q, int64_t id, enum eng_job_state want,
                                  int64_t timeout_ms)
{
        int64_t deadline = sw_mono_ms() + timeout_ms;
        struct sw_err err = SW_ERR_INIT;

        for (;;) {
                struct eng_job *j = NULL;
                if (eng_queue_get(&j, q, id, &err) == 0 &&
                    (j->state == want || sw_mono_ms() > deadline))
                        return j;
                eng_job_free(j);
                sw_sleep_ms(10);
        }
}

static void test_cancel_running_within_a_second(void)
{
        static const char *const env[] = {"SLIPWAY_POLL_MS=10", NULL};
        struct sw_config cfg;
        struct eng_queue *q;
        struct eng_pool *pool = NULL;
        struct eng_pool_options po = ENG_POOL_OPTIONS_INIT;
        struct eng_job_spec s = {0};
        struct eng_job *j;
        struct sw_err err = SW_ERR_INIT;
        enum eng_job_state st;
        int64_t id, t0;

        tf_config(&cfg, env);
        q = tf_queue(&cfg);
        s.kind = "slow";
        s.payload = "{}";
        CHECK_OK(eng_queue_enqueue(&id, NULL, q, &s, &err), &err);
        po.cfg = &cfg;
        po.workers = 1;
        po.pipelines = &pipe_slow;
        po.npipelines = 1;
        atomic_store(&slow_started, 0);
        CHECK_OK(eng_pool_start(&pool, &po, &err), &err);
        while (!atomic_load(&slow_started))
                sw_sleep_ms(5);
        t0 = sw_mono_ms();
        CHECK_OK(eng_queue_cancel(&st, q, id, &err), &err);
        CHECK_INT(st, ENG_JOB_RUNNING);
        j = wait_state(q, id, ENG_JOB_CANCELLED, 5000);
        CHECK_INT(j->state, ENG_JOB_CANCELLED);
        CHECK(sw_mono_ms() - t0 < 1000);
        eng_job_free(j);
        eng_pool_stop(pool, 0);
        eng_queue_close(q);
        sw_config_release(&cfg);
}

static void test_shutdown_releases_job(void)
{
        static const char *const env[] = {"SLIPWAY_POLL_MS=10", NULL};
        struct sw_config cfg;
        struct eng_queue *q;
        struct eng_pool *pool = NULL;
        struct eng_pool_options po = ENG_POOL_OPTIONS_INIT;
        struct eng_job_spec s = {0};
        struct eng_job *j = NULL;
        struct sw_err err = SW_ERR_INIT;
        int64_t id;

        tf_config(&cfg, env);
        q = tf_queue(&cfg);
        s.kind = "slow";
        s.payload = "{}";
        CHECK_OK(eng_queue_enqueue(&id, NULL, q, &s, &err), &err);
        po.cfg = &cfg;
        po.workers = 1;
        po.pipelines = &pipe_slow;
        po.npipelines = 1;
        atomic_store(&slow_started, 0);
        CHECK_OK(eng_pool_start(&pool, &po, &err), &err);
        while (!atomic_load(&slow_started))
                sw_sleep_ms(5);
        /* A grace period shorter than the step: the job is released, not failed. */
        eng_pool_stop(pool, 100);
        CHECK_OK(eng_queue_get(&j, q, id, &err), &err);
        CHECK_INT(j->state, ENG_JOB_QUEUED);
        CHECK_INT(j->attempt, 0);
        CHECK(j->lease_owner == NULL);
        eng_job_free(j);
        eng_queue_close(q);
        sw_config_release(&cfg);
}

static void test_unknown_kind_fails(void)
{
        static const char *const env[] = {"SLIPWAY_POLL_MS=10", NULL};
        struct sw_config cfg;
        struct eng_queue *q;
        struct eng_pool *pool = NULL;
        struct eng_pool_options po = ENG_POOL_OPTIONS_INIT;
        struct eng_job_spec s = {0};
        struct eng_job *j;
        struct sw_err err = SW_ERR_INIT;
        int64_t id;

        tf_config(&cfg, env);
        q = tf_queue(&cfg);
        s.kind = "mystery";
        s.payload = "{}";
        CHECK_OK(eng_queue_enqueue(&id, NULL, q, &s, &err), &err);
        po.cfg = &cfg;
        po.workers = 1;
        po.pipelines = &pipe_slow;
        po.npipelines = 1;
        CHECK_OK(eng_pool_start(&pool, &po, &err), &err);
        j = wait_state(q, id, ENG_JOB_FAILED, 5000);
        CHECK_INT(j->state, ENG_JOB_FAILED);
        CHECK(j->error && strstr(j->error, "no pipeline for job kind 'mystery'"));
        eng_job_free(j);
        eng_pool_stop(pool, 0);
        eng_queue_close(q);
        sw_config_release(&cfg);
}

int main(void)
{
        T_RUN(test_resume_after_failed_step);
        T_RUN(test_log_cap);
        T_RUN(test_cancel_running_within_a_second);
        T_RUN(test_shutdown_releases_job);
        T_RUN(test_unknown_kind_fails);
        return t_done();
}
