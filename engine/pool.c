/*
 * pool.c - worker threads and the heartbeat thread (see pool.h).
 *
 * Lock order: pool->lock, then a slot's lock. A slot's `job_id` and `stop`
 * change under its lock, so the heartbeat thread never flags a job that the
 * worker has already finished and replaced with another.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/mem.h"
#include "engine/engine_int.h"
#include "engine/pipeline.h"
#include "engine/pool.h"
#include "engine/queue.h"
#include "common/banned.h"

#define HEARTBEAT_TICK_MS 250

struct pool_slot {
        struct eng_pool *pool;
        pthread_t thread;
        bool started;
        char owner[160];
        pthread_mutex_t lock;
        int64_t job_id; /* 0 while idle */
        int64_t last_renew_ms;
        atomic_int stop; /* enum eng_stop_reason for the running job */
};

struct eng_pool {
        const struct sw_config *cfg;
        char *db_path;
        char *scratch_root;
        const struct eng_pipeline_def *pipelines;
        size_t npipelines;
        void (*before_job)(void);
        int nslots;
        struct pool_slot *slots;
        pthread_t hb_thread;
        bool hb_started;
        pthread_mutex_t lock;
        pthread_cond_t wake;
        atomic_bool stopping; /* no more claims */
        atomic_bool hb_quit;
        atomic_llong finished;
};

static int pool_open_queue(struct eng_queue **out, const struct eng_pool *p, struct sw_err *err)
{
        struct eng_queue_options qo = ENG_QUEUE_OPTIONS_INIT;

        qo.path = p->db_path;
        qo.create = true;
        qo.synchronous_full = strcmp(p->cfg->synchronous, "FULL") == 0;
        return eng_queue_open(out, &qo, err);
}

/* Sleep up to `ms`, or less when the pool starts stopping. */
static void pool_idle(struct eng_pool *p, int64_t ms)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
        }
        pthread_mutex_lock(&p->lock);
        if (!atomic_load(&p->stopping))
                pthread_cond_timedwait(&p->wake, &p->lock, &ts);
        pthread_mutex_unlock(&p->lock);
}

static void slot_set_job(struct pool_slot *s, int64_t id)
{
        pthread_mutex_lock(&s->lock);
        s->job_id = id;
        s->last_renew_ms = sw_mono_ms();
        atomic_store(&s->stop, ENG_STOP_NONE);
        pthread_mutex_unlock(&s->lock);
}

/* Record the outcome of a run in the queue; returns the final word for the log. */
static const char *pool_settle(struct eng_queue *q, struct pool_slot *s, const struct eng_job *job,
                               int rc, const struct sw_err *run_err, struct sw_err *err)
{
        struct eng_pool *p = s->pool;
        int stop = atomic_load(&s->stop);
        bool requeued = false;

        if (rc == 0)
                return eng_queue_complete(q, job->id, s->owner, err) ? "lost" : "succeeded";
        if (rc == SW_ECANCELED && stop == ENG_STOP_LEASE)
                return "lost";
        if (rc == SW_ECANCELED && stop == ENG_STOP_SHUTDOWN)
                return eng_queue_release(q, job->id, s->owner, err) ? "lost" : "released";
        if (rc == SW_ECANCELED && stop == ENG_STOP_CANCEL)
                return eng_queue_finish_cancelled(q, job->id, s->owner, err) ? "lost" : "cancelled";
        if (eng_queue_fail(&requeued, q, job->id, s->owner, sw_err_transient(rc), run_err->msg,
                           p->cfg->backoff_ms, err) != 0)
                return "lost";
        return requeued ? "retrying" : "failed";
}

static void pool_run_job(struct eng_queue *q, struct pool_slot *s, struct eng_job *job)
{
        struct eng_pool *p = s->pool;
        const struct eng_pipeline_def *def;
        struct eng_run_env env;
        struct sw_err err = SW_ERR_INIT, serr = SW_ERR_INIT;
        int64_t t0 = sw_mono_ms();
        const char *outcome;
        int rc;

        slot_set_job(s, job->id);
        sw_log(SW_LOG_INFO, "pool", "job started", "{s:I,s:s,s:i,s:s}", "job", (json_int_t)job->id,
               "kind", job->kind, "attempt", job->attempt, "worker", s->owner);
        def = eng_pipeline_find(p->pipelines, p->npipelines, job->kind);
        if (job->cancel_requested) {
                atomic_store(&s->stop, ENG_STOP_CANCEL);
                rc = sw_err_set(&err, SW_ECANCELED, "cancelled before it started");
        } else if (!def) {
                rc = sw_err_set(&err, SW_EINVAL, "no pipeline for job kind '%s'", job->kind);
        } else {
                if (p->before_job)
                        p->before_job();
                env.cfg = p->cfg;
                env.scratch_root = p->scratch_root;
                env.log_max_bytes = p->cfg->job_log_max_bytes;
                env.stop = &s->stop;
                rc = eng_pipeline_run(q, job, def, &env, &err);
        }
        outcome = pool_settle(q, s, job, rc, &err, &serr);
        slot_set_job(s, 0);
        atomic_fetch_add(&p->finished, 1);
        if (rc == 0 || strcmp(outcome, "released") == 0 || strcmp(outcome, "cancelled") == 0)
                sw_log(SW_LOG_INFO, "pool", "job ended", "{s:I,s:s,s:I}", "job",
                       (json_int_t)job->id, "outcome", outcome, "ms",
                       (json_int_t)(sw_mono_ms() - t0));
        else
                sw_log(strcmp(outcome, "retrying") == 0 ? SW_LOG_WARN : SW_LOG_ERROR, "pool",
                       "job ended", "{s:I,s:s,s:I,s:s,s:s}", "job", (json_int_t)job->id, "outcome",
                       outcome, "ms", (json_int_t)(sw_mono_ms() - t0), "error", err.msg,
                       "settle_error", serr.msg);
}

static void *pool_worker(void *arg)
{
        struct pool_slot *s = arg;
        struct eng_pool *p = s->pool;
        struct eng_queue *q = NULL;
        struct sw_err err = SW_ERR_INIT;

        if (pool_open_queue(&q, p, &err) != 0) {
                sw_log(SW_LOG_ERROR, "pool", "worker cannot open the database", "{s:s,s:s}",
                       "worker", s->owner, "error", err.msg);
                return NULL;
        }
        while (!atomic_load(&p->stopping)) {
                struct eng_job *job = NULL;
                int rc;

                sw_err_clear(&err);
                rc = eng_queue_claim(&job, q, s->owner, p->cfg->lease_ms, &err);
                if (rc == SW_ENOTFOUND) {
                        pool_idle(p, p->cfg->poll_ms);
                        continue;
                }
                if (rc) {
                        sw_log(SW_LOG_WARN, "pool", "claim failed", "{s:s,s:s}", "worker", s->owner,
                               "error", err.msg);
                        pool_idle(p, p->cfg->poll_ms);
                        continue;
                }
                pool_run_job(q, s, job);
                eng_job_free(job);
        }
        eng_queue_close(q);
        return NULL;
}

/* Renew leases every lease/3 and look for cancel requests every tick. */
static void *pool_heartbeat(void *arg)
{
        struct eng_pool *p = arg;
        struct eng_queue *q = NULL;
        struct sw_err err = SW_ERR_INIT;
        int64_t renew_every = p->cfg->lease_ms / 3;

        if (pool_open_queue(&q, p, &err) != 0) {
                sw_log(SW_LOG_ERROR, "pool", "heartbeat cannot open the database", "{s:s}", "error",
                       err.msg);
                return NULL;
        }
        while (!atomic_load(&p->hb_quit)) {
                for (int i = 0; i < p->nslots; i++) {
                        struct pool_slot *s = &p->slots[i];
                        bool cancel = false, renew;
                        int64_t id;
                        int rc;

                        pthread_mutex_lock(&s->lock);
                        id = s->job_id;
                        renew = sw_mono_ms() - s->last_renew_ms >= renew_every;
                        pthread_mutex_unlock(&s->lock);
                        if (id == 0)
                                continue;
                        sw_err_clear(&err);
                        if (renew)
                                rc = eng_queue_heartbeat(&cancel, q, id, s->owner, p->cfg->lease_ms,
                                                         &err);
                        else
                                rc = eng_queue_cancel_requested(&cancel, q, id, &err);
                        pthread_mutex_lock(&s->lock);
                        if (s->job_id == id) {
                                if (rc == 0 && renew)
                                        s->last_renew_ms = sw_mono_ms();
                                if (rc == SW_ELEASE)
                                        atomic_store(&s->stop, ENG_STOP_LEASE);
                                else if (rc == 0 && cancel &&
                                         atomic_load(&s->stop) == ENG_STOP_NONE)
                                        atomic_store(&s->stop, ENG_STOP_CANCEL);
                        }
                        pthread_mutex_unlock(&s->lock);
                        if (rc && rc != SW_ELEASE)
                                sw_log(SW_LOG_WARN, "pool", "heartbeat failed", "{s:I,s:s}", "job",
                                       (json_int_t)id, "error", err.msg);
                        else if (rc == SW_ELEASE)
                                sw_log(SW_LOG_WARN, "pool", "lease lost", "{s:I,s:s}", "job",
                                       (json_int_t)id, "worker", s->owner);
                }
                sw_sleep_ms(HEARTBEAT_TICK_MS);
        }
        eng_queue_close(q);
        return NULL;
}

int eng_pool_start(struct eng_pool **out, const struct eng_pool_options *opts, struct sw_err *err)
{
        struct eng_pool *p = sw_xcalloc(1, sizeof(*p));
        struct eng_queue *probe = NULL;
        char host[64] = "localhost";
        int rc;

        p->cfg = opts->cfg;
        p->db_path = opts->db_path ? sw_xstrdup(opts->db_path) : eng__db_path(opts->cfg->data);
        p->scratch_root = sw_xasprintf("%s/scratch", opts->cfg->data);
        p->pipelines = opts->pipelines;
        p->npipelines = opts->npipelines;
        p->before_job = opts->before_job;
        p->nslots = opts->workers > 0 ? opts->workers : (int)opts->cfg->workers;
        p->slots = sw_xcalloc((size_t)p->nslots, sizeof(*p->slots));
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->wake, NULL);

        rc = sw_mkdir_p(p->scratch_root, 0700, err);
        if (rc)
                goto fail;
        /* Open once here so that a broken database fails the start, not each thread. */
        rc = pool_open_queue(&probe, p, err);
        eng_queue_close(probe);
        if (rc)
                goto fail;

        gethostname(host, sizeof(host) - 1);
        for (int i = 0; i < p->nslots; i++) {
                struct pool_slot *s = &p->slots[i];
                s->pool = p;
                pthread_mutex_init(&s->lock, NULL);
                if (opts->name)
                        snprintf(s->owner, sizeof(s->owner), "%s/w%d", opts->name, i);
                else
                        snprintf(s->owner, sizeof(s->owner), "%s:%ld/w%d", host, (long)getpid(), i);
        }
        for (int i = 0; i < p->nslots; i++) {
                if (pthread_create(&p->slots[i].thread, NULL, pool_worker, &p->slots[i]) != 0) {
                        rc = sw_err_set(err, SW_EINTERNAL, "cannot start worker thread");
                        goto fail;
                }
                p->slots[i].started = true;
        }
        if (pthread_create(&p->hb_thread, NULL, pool_heartbeat, p) != 0) {
                rc = sw_err_set(err, SW_EINTERNAL, "cannot start heartbeat thread");
                goto fail;
        }
        p->hb_started = true;
        *out = p;
        return 0;
fail:
        eng_pool_stop(p, 0);
        return rc;
}

static bool pool_busy(struct eng_pool *p)
{
        for (int i = 0; i < p->nslots; i++) {
                bool busy;
                pthread_mutex_lock(&p->slots[i].lock);
                busy = p->slots[i].job_id != 0;
                pthread_mutex_unlock(&p->slots[i].lock);
                if (busy)
                        return true;
        }
        return false;
}

void eng_pool_stop(struct eng_pool *p, int64_t grace_ms)
{
        int64_t deadline = sw_mono_ms() + grace_ms;

        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        atomic_store(&p->stopping, true);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);

        while (pool_busy(p) && sw_mono_ms() < deadline)
                sw_sleep_ms(50);
        for (int i = 0; i < p->nslots; i++) {
                struct pool_slot *s = &p->slots[i];
                pthread_mutex_lock(&s->lock);
                if (s->job_id != 0)
                        atomic_store(&s->stop, ENG_STOP_SHUTDOWN);
                pthread_mutex_unlock(&s->lock);
        }
        for (int i = 0; i < p->nslots; i++)
                if (p->slots[i].started)
                        pthread_join(p->slots[i].thread, NULL);
        atomic_store(&p->hb_quit, true);
        if (p->hb_started)
                pthread_join(p->hb_thread, NULL);
        for (int i = 0; i < p->nslots; i++)
                pthread_mutex_destroy(&p->slots[i].lock);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->wake);
        free(p->slots);
        free(p->db_path);
        free(p->scratch_root);
        free(p);
}

int64_t eng_pool_finished(const struct eng_pool *p)
{
        return atomic_load(&((struct eng_pool *)p)->finished);
}
