/*
 * pipeline.c - run a job's steps in order, recording each (see pipeline.h).
 *
 * Log lines are buffered and written in small transactions (every 64 lines
 * or 200 ms, and when a step ends), so that a chatty build does not cost a
 * commit per line. The stored log of a job is capped: past the cap one
 * marker line is written and the rest dropped.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
#include "engine/engine_int.h"
#include "engine/pipeline.h"
#include "engine/queue.h"
#include "common/banned.h"

#define LOG_FLUSH_LINES 64
#define LOG_FLUSH_MS 200
#define LOG_LINE_MAX 16384
#define LOG_PENDING_MAX 4096
#define SECRETS_MAX 32

struct log_line {
        int64_t ts;
        char *step;
        char *text;
};

struct eng_step_ctx {
        struct eng_queue *q;
        const struct eng_job *job;
        const struct eng_run_env *env;
        json_t *payload;
        json_t *outputs; /* step name -> output */
        const char *step;
        char *scratch;
        char *secrets[SECRETS_MAX];
        size_t nsecrets;
        struct log_line pending[LOG_PENDING_MAX];
        size_t npending;
        int64_t next_seq;
        int64_t log_bytes;
        bool truncated;
        int64_t last_flush_ms;
        struct sw_buf partial; /* an unfinished line from eng_step_log_write() */
};

int64_t eng_step_job_id(const struct eng_step_ctx *ctx)
{
        return ctx->job->id;
}

int eng_step_attempt(const struct eng_step_ctx *ctx)
{
        return ctx->job->attempt;
}

const struct sw_config *eng_step_config(const struct eng_step_ctx *ctx)
{
        return ctx->env->cfg;
}

const json_t *eng_step_payload(const struct eng_step_ctx *ctx)
{
        return ctx->payload;
}

const json_t *eng_step_output(const struct eng_step_ctx *ctx, const char *step)
{
        return json_object_get(ctx->outputs, step);
}

const char *eng_step_scratch(const struct eng_step_ctx *ctx)
{
        return ctx->scratch;
}

bool eng_step_cancelled(const struct eng_step_ctx *ctx)
{
        return ctx->env->stop && atomic_load(ctx->env->stop) != ENG_STOP_NONE;
}

atomic_int *eng_step_stop_flag(const struct eng_step_ctx *ctx)
{
        return ctx->env->stop;
}

void eng_step_add_secret(struct eng_step_ctx *ctx, const char *secret)
{
        /* Short strings would redact ordinary words; they are not worth hiding anyway. */
        if (!secret || strlen(secret) < 4 || ctx->nsecrets == SECRETS_MAX)
                return;
        ctx->secrets[ctx->nsecrets++] = sw_xstrdup(secret);
}

/* Replace every registered secret in `line` by "***"; returns a new string. */
static char *redact(const struct eng_step_ctx *ctx, const char *line)
{
        char *out = sw_xstrdup(line);

        for (size_t i = 0; i < ctx->nsecrets; i++) {
                const char *s = ctx->secrets[i];
                size_t slen = strlen(s);
                char *hit;

                while ((hit = strstr(out, s)) != NULL) {
                        size_t pre = (size_t)(hit - out);
                        char *next = sw_xasprintf("%.*s***%s", (int)pre, out, hit + slen);
                        free(out);
                        out = next;
                }
        }
        return out;
}

static int log_flush(struct eng_step_ctx *ctx, struct sw_err *err)
{
        sqlite3 *db = eng_queue_db(ctx->q);
        sqlite3_stmt *ins = NULL, *upd = NULL;
        int rc;

        if (ctx->npending == 0)
                return 0;
        rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc != SQLITE_OK)
                return eng__sqlite_err(db, rc, err, "write job log");
        rc = sqlite3_prepare_v2(db,
                                "INSERT INTO job_logs (job_id, seq, ts, step, line) "
                                "VALUES (?1, ?2, ?3, ?4, ?5)",
                                -1, &ins, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_prepare_v2(db, "UPDATE jobs SET log_bytes = ?2 WHERE id = ?1", -1,
                                        &upd, NULL);
        for (size_t i = 0; rc == SQLITE_OK && i < ctx->npending; i++) {
                sqlite3_bind_int64(ins, 1, ctx->job->id);
                sqlite3_bind_int64(ins, 2, ctx->next_seq + (int64_t)i);
                sqlite3_bind_int64(ins, 3, ctx->pending[i].ts);
                sqlite3_bind_text(ins, 4, ctx->pending[i].step, -1, SQLITE_STATIC);
                sqlite3_bind_text(ins, 5, ctx->pending[i].text, -1, SQLITE_STATIC);
                rc = sqlite3_step(ins);
                rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
                sqlite3_reset(ins);
        }
        if (rc == SQLITE_OK) {
                sqlite3_bind_int64(upd, 1, ctx->job->id);
                sqlite3_bind_int64(upd, 2, ctx->log_bytes);
                rc = sqlite3_step(upd);
                rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        }
        if (rc == SQLITE_OK)
                rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
                rc = eng__sqlite_err(db, rc, err, "write job log");
                sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        } else {
                ctx->next_seq += (int64_t)ctx->npending;
                for (size_t i = 0; i < ctx->npending; i++) {
                        free(ctx->pending[i].step);
                        free(ctx->pending[i].text);
                }
                ctx->npending = 0;
        }
        sqlite3_finalize(ins);
        sqlite3_finalize(upd);
        ctx->last_flush_ms = sw_mono_ms();
        return rc;
}

static void log_line_add(struct eng_step_ctx *ctx, const char *text, size_t len)
{
        int64_t max = ctx->env->log_max_bytes > 0 ? ctx->env->log_max_bytes : 8 << 20;
        char *line;

        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
                len--;
        if (len > LOG_LINE_MAX)
                len = LOG_LINE_MAX;
        if (ctx->truncated)
                return;
        if (ctx->npending == LOG_PENDING_MAX) {
                struct sw_err ignored = SW_ERR_INIT;
                /* The database is busy for long; drop rather than grow without bound. */
                if (log_flush(ctx, &ignored) != 0)
                        return;
        }
        if (ctx->log_bytes + (int64_t)len + 1 > max) {
                ctx->truncated = true;
                line = sw_xasprintf("[log truncated: the limit of %lld bytes was reached "
                                    "(SLIPWAY_JOB_LOG_MAX_BYTES)]",
                                    (long long)max);
        } else {
                char *raw = sw_xstrndup(text, len);
                line = redact(ctx, raw);
                free(raw);
                ctx->log_bytes += (int64_t)strlen(line) + 1;
        }
        ctx->pending[ctx->npending].ts = sw_now_ms();
        ctx->pending[ctx->npending].step = ctx->step ? sw_xstrdup(ctx->step) : NULL;
        ctx->pending[ctx->npending].text = line;
        ctx->npending++;
        if (ctx->npending >= LOG_FLUSH_LINES || sw_mono_ms() - ctx->last_flush_ms >= LOG_FLUSH_MS) {
                struct sw_err ignored = SW_ERR_INIT;
                log_flush(ctx, &ignored);
        }
}

void eng_step_log(struct eng_step_ctx *ctx, const char *fmt, ...)
{
        char line[LOG_LINE_MAX];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        log_line_add(ctx, line, strlen(line));
}

void eng_step_log_write(struct eng_step_ctx *ctx, const char *data, size_t len)
{
        struct sw_err ignored = SW_ERR_INIT;

        while (len > 0) {
                const char *nl = memchr(data, '\n', len);
                size_t n = nl ? (size_t)(nl - data) : len;

                if (sw_buf_append(&ctx->partial, data, n, &ignored) != 0 || nl ||
                    ctx->partial.len >= LOG_LINE_MAX) {
                        log_line_add(ctx, sw_buf_str(&ctx->partial), ctx->partial.len);
                        sw_buf_reset(&ctx->partial);
                }
                if (!nl)
                        break;
                data = nl + 1;
                len -= n + 1;
        }
}

static void log_partial_flush(struct eng_step_ctx *ctx)
{
        if (ctx->partial.len > 0) {
                log_line_add(ctx, sw_buf_str(&ctx->partial), ctx->partial.len);
                sw_buf_reset(&ctx->partial);
        }
}

static int step_begin(struct eng_step_ctx *ctx, int idx, struct sw_err *err)
{
        sqlite3 *db = eng_queue_db(ctx->q);
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(
                db,
                "INSERT OR REPLACE INTO job_steps (job_id, idx, name, state, attempt, started_at) "
                "VALUES (?1, ?2, ?3, 'running', ?4, ?5)",
                -1, &st, NULL);

        if (rc == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, ctx->job->id);
                sqlite3_bind_int(st, 2, idx);
                sqlite3_bind_text(st, 3, ctx->step, -1, SQLITE_STATIC);
                sqlite3_bind_int(st, 4, ctx->job->attempt);
                sqlite3_bind_int64(st, 5, sw_now_ms());
                rc = sqlite3_step(st);
        }
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : eng__sqlite_err(db, rc, err, "record step start");
}

static int step_end(struct eng_step_ctx *ctx, int idx, const char *state, const char *output,
                    const char *error, struct sw_err *err)
{
        sqlite3 *db = eng_queue_db(ctx->q);
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db,
                                    "UPDATE job_steps SET state = ?3, finished_at = ?4, "
                                    "output = ?5, error = ?6 WHERE job_id = ?1 AND idx = ?2",
                                    -1, &st, NULL);

        if (rc == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, ctx->job->id);
                sqlite3_bind_int(st, 2, idx);
                sqlite3_bind_text(st, 3, state, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 4, sw_now_ms());
                if (output)
                        sqlite3_bind_text(st, 5, output, -1, SQLITE_STATIC);
                if (error)
                        sqlite3_bind_text(st, 6, error, -1, SQLITE_STATIC);
                rc = sqlite3_step(st);
        }
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : eng__sqlite_err(db, rc, err, "record step end");
}

/* Outputs of steps that already succeeded in an earlier attempt, by index. */
static int load_done_steps(struct eng_step_ctx *ctx, const struct eng_pipeline_def *def, bool *done,
                           struct sw_err *err)
{
        struct eng_step_record *recs = NULL;
        size_t n = 0;
        int rc = eng_steps_list(&recs, &n, ctx->q, ctx->job->id, err);

        if (rc)
                return rc;
        for (size_t i = 0; i < n; i++) {
                int idx = recs[i].idx;
                json_t *out = NULL;
                struct sw_err perr = SW_ERR_INIT;

                if (idx < 0 || (size_t)idx >= def->nsteps ||
                    strcmp(recs[i].name, def->steps[idx]->name) != 0 ||
                    strcmp(recs[i].state, "succeeded") != 0)
                        continue;
                if (recs[i].output &&
                    sw_json_parse(&out, recs[i].output, strlen(recs[i].output), 0, &perr) != 0)
                        continue; /* unreadable output: run the step again */
                done[idx] = true;
                json_object_set_new(ctx->outputs, recs[i].name, out ? out : json_null());
        }
        eng_steps_free(recs, n);
        /* Resume only after a prefix of succeeded steps: a later step may depend on an earlier one's side effects. */
        for (size_t i = 0, gap = 0; i < def->nsteps; i++) {
                if (!done[i])
                        gap = 1;
                else if (gap)
                        done[i] = false;
        }
        return 0;
}

static int next_log_seq(struct eng_step_ctx *ctx, struct sw_err *err)
{
        sqlite3 *db = eng_queue_db(ctx->q);
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(
                db,
                "SELECT coalesce(max(seq), 0), (SELECT log_bytes FROM jobs WHERE id = ?1) "
                "FROM job_logs WHERE job_id = ?1",
                -1, &st, NULL);

        if (rc == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, ctx->job->id);
                rc = sqlite3_step(st);
        }
        if (rc == SQLITE_ROW) {
                ctx->next_seq = sqlite3_column_int64(st, 0) + 1;
                ctx->log_bytes = sqlite3_column_int64(st, 1);
                rc = 0;
        } else {
                rc = eng__sqlite_err(db, rc, err, "read job log position");
        }
        sqlite3_finalize(st);
        return rc;
}

const struct eng_pipeline_def *eng_pipeline_find(const struct eng_pipeline_def *defs, size_t n,
                                                 const char *kind)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(defs[i].kind, kind) == 0)
                        return &defs[i];
        return NULL;
}

int eng_pipeline_run(struct eng_queue *q, const struct eng_job *job,
                     const struct eng_pipeline_def *def, const struct eng_run_env *env,
                     struct sw_err *err)
{
        struct eng_step_ctx *ctx = sw_xcalloc(1, sizeof(*ctx));
        bool *done = sw_xcalloc(def->nsteps ? def->nsteps : 1, sizeof(bool));
        struct sw_err ignored = SW_ERR_INIT;
        int rc;

        ctx->q = q;
        ctx->job = job;
        ctx->env = env;
        ctx->outputs = json_object();
        ctx->last_flush_ms = sw_mono_ms();
        sw_buf_init(&ctx->partial, LOG_LINE_MAX * 2);

        rc = sw_json_parse(&ctx->payload, job->payload, strlen(job->payload), 0, err);
        if (rc) {
                sw_err_wrap(err, "job %lld payload", (long long)job->id);
                goto out;
        }
        rc = next_log_seq(ctx, err);
        if (rc)
                goto out;
        rc = load_done_steps(ctx, def, done, err);
        if (rc)
                goto out;

        if (job->attempt > 1)
                eng_step_log(ctx, "--- attempt %d of %d", job->attempt, job->max_attempts);
        for (size_t i = 0; i < def->nsteps; i++) {
                const struct eng_step_def *sd = def->steps[i];
                json_t *output = NULL;
                struct sw_err serr = SW_ERR_INIT;
                char *out_text = NULL;
                char took[16];
                int64_t t0;

                ctx->step = sd->name;
                if (done[i]) {
                        eng_step_log(ctx, "==> %s: done in an earlier attempt, skipped", sd->name);
                        continue;
                }
                if (eng_step_cancelled(ctx)) {
                        rc = sw_err_set(err, SW_ECANCELED, "stopped before step %s", sd->name);
                        goto out;
                }
                rc = step_begin(ctx, (int)i, err);
                if (rc)
                        goto out;
                rc = sw_mkdtemp(&ctx->scratch, env->scratch_root, "step-", err);
                if (rc)
                        goto out;
                eng_step_log(ctx, "==> %s", sd->name);
                t0 = sw_mono_ms();
                rc = sd->run(ctx, &output, &serr);
                log_partial_flush(ctx);
                sw_rm_rf(ctx->scratch, &ignored);
                free(ctx->scratch);
                ctx->scratch = NULL;
                sw_duration_fmt(took, sizeof(took), sw_mono_ms() - t0);

                if (rc == 0) {
                        out_text = output ? sw_json_dump(output) : NULL;
                        eng_step_log(ctx, "<== %s succeeded in %s", sd->name, took);
                        json_object_set(ctx->outputs, sd->name, output ? output : json_null());
                        rc = step_end(ctx, (int)i, "succeeded", out_text, NULL, err);
                } else {
                        if (serr.code == 0)
                                sw_err_set(&serr, rc, "%s", sw_err_name(rc));
                        bool stopped = rc == SW_ECANCELED && eng_step_cancelled(ctx);
                        eng_step_log(ctx, "<== %s %s after %s: %s", sd->name,
                                     stopped ? "stopped" : "failed", took, serr.msg);
                        step_end(ctx, (int)i, stopped ? "cancelled" : "failed", NULL, serr.msg,
                                 &ignored);
                        rc = sw_err_set(err, rc, "step %s: %s", sd->name, serr.msg);
                }
                free(out_text);
                json_decref(output);
                if (rc)
                        goto out;
        }
        ctx->step = NULL;
        rc = 0;
out:
        log_partial_flush(ctx);
        /* Log rows are best effort once the outcome is known; retry the flush once. */
        if (log_flush(ctx, &ignored) != 0)
                log_flush(ctx, &ignored);
        for (size_t i = 0; i < ctx->npending; i++) {
                free(ctx->pending[i].step);
                free(ctx->pending[i].text);
        }
        for (size_t i = 0; i < ctx->nsecrets; i++)
                sw_free_secret(ctx->secrets[i]);
        sw_buf_release(&ctx->partial);
        json_decref(ctx->payload);
        json_decref(ctx->outputs);
        free(ctx->scratch);
        free(ctx);
        free(done);
        return rc;
}

int eng_steps_list(struct eng_step_record **out, size_t *n_out, struct eng_queue *q, int64_t job_id,
                   struct sw_err *err)
{
        sqlite3 *db = eng_queue_db(q);
        sqlite3_stmt *st = NULL;
        struct eng_step_record *recs = NULL;
        size_t n = 0, cap = 0;
        int rc = sqlite3_prepare_v2(db,
                                    "SELECT idx, name, state, attempt, started_at, "
                                    "coalesce(finished_at, 0), output, error FROM job_steps "
                                    "WHERE job_id = ?1 ORDER BY idx",
                                    -1, &st, NULL);

        if (rc != SQLITE_OK)
                return eng__sqlite_err(db, rc, err, "list steps");
        sqlite3_bind_int64(st, 1, job_id);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct eng_step_record *r;
                if (n == cap) {
                        cap = cap ? cap * 2 : 8;
                        recs = sw_xrealloc(recs, cap * sizeof(*recs));
                }
                r = &recs[n++];
                r->idx = sqlite3_column_int(st, 0);
                r->name = sw_xstrdup((const char *)sqlite3_column_text(st, 1));
                r->state = sw_xstrdup((const char *)sqlite3_column_text(st, 2));
                r->attempt = sqlite3_column_int(st, 3);
                r->started_at = sqlite3_column_int64(st, 4);
                r->finished_at = sqlite3_column_int64(st, 5);
                r->output = sqlite3_column_type(st, 6) == SQLITE_NULL
                                    ? NULL
                                    : sw_xstrdup((const char *)sqlite3_column_text(st, 6));
                r->error = sqlite3_column_type(st, 7) == SQLITE_NULL
                                   ? NULL
                                   : sw_xstrdup((const char *)sqlite3_column_text(st, 7));
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
                eng_steps_free(recs, n);
                return eng__sqlite_err(db, rc, err, "list steps");
        }
        *out = recs;
        *n_out = n;
        return 0;
}

void eng_steps_free(struct eng_step_record *steps, size_t n)
{
        if (!steps)
                return;
        for (size_t i = 0; i < n; i++) {
                free(steps[i].name);
                free(steps[i].state);
                free(steps[i].output);
                free(steps[i].error);
        }
        free(steps);
}

int eng_logs_read(int64_t *last_seq_out, struct eng_queue *q, int64_t job_id, int64_t after_seq,
                  size_t max,
                  void (*fn)(void *arg, int64_t seq, int64_t ts, const char *step,
                             const char *line),
                  void *arg, struct sw_err *err)
{
        sqlite3 *db = eng_queue_db(q);
        sqlite3_stmt *st = NULL;
        int64_t last = after_seq;
        int rc = sqlite3_prepare_v2(db,
                                    "SELECT seq, ts, step, line FROM job_logs "
                                    "WHERE job_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                                    -1, &st, NULL);

        if (rc != SQLITE_OK)
                return eng__sqlite_err(db, rc, err, "read job log");
        sqlite3_bind_int64(st, 1, job_id);
        sqlite3_bind_int64(st, 2, after_seq);
        sqlite3_bind_int64(st, 3, (int64_t)max);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                last = sqlite3_column_int64(st, 0);
                fn(arg, last, sqlite3_column_int64(st, 1), (const char *)sqlite3_column_text(st, 2),
                   (const char *)sqlite3_column_text(st, 3));
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return eng__sqlite_err(db, rc, err, "read job log");
        *last_seq_out = last;
        return 0;
}
