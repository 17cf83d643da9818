/*
 * test_queue.c - the job queue's guarantees: exclusive claims across
 * connections, lease expiry, backoff, idempotency and concurrency keys,
 * cancel, retry and fencing.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/clock.h"
#include "common/mem.h"
#include "engine/queue.h"
#include "tests/harness/engine_fixture.h"
#include "tests/harness/t.h"

static int64_t enqueue(struct eng_queue *q, const char *kind, const char *idem, const char *ckey)
{
        struct eng_job_spec s = {0};
        struct sw_err err = SW_ERR_INIT;
        int64_t id = 0;

        s.kind = kind;
        s.payload = "{}";
        s.idempotency_key = idem;
        s.concurrency_key = ckey;
        CHECK_OK(eng_queue_enqueue(&id, NULL, q, &s, &err), &err);
        return id;
}

static void set_sql(struct eng_queue *q, const char *sql)
{
        CHECK_INT(sqlite3_exec(eng_queue_db(q), sql, NULL, NULL, NULL), SQLITE_OK);
}

/* ---- claim exclusivity: 4 threads, 4 connections, every job claimed once ---- */

#define EXCL_JOBS 400
#define EXCL_THREADS 4

struct excl {
        const char *db;
        atomic_int claims[EXCL_JOBS + 1];
        atomic_int total;
        atomic_int errors;
};

static void *excl_thread(void *arg)
{
        struct excl *x = arg;
        struct eng_queue_options qo = ENG_QUEUE_OPTIONS_INIT;
        struct eng_queue *q = NULL;
        struct sw_err err = SW_ERR_INIT;
        char owner[32];

        snprintf(owner, sizeof(owner), "t%p", (void *)&owner);
        qo.path = x->db;
        if (eng_queue_open(&q, &qo, &err) != 0) {
                atomic_fetch_add(&x->errors, 1);
                return NULL;
        }
        for (;;) {
                struct eng_job *jobs[4];
                size_t n = 0;
                sw_err_clear(&err);
                if (eng_queue_claim_batch(jobs, 4, &n, q, owner, 60000, &err) != 0) {
                        fprintf(stderr, "claim: %s\n", err.msg);
                        atomic_fetch_add(&x->errors, 1);
                        continue;
                }
                if (n == 0)
                        break;
                for (size_t i = 0; i < n; i++) {
                        if (jobs[i]->id >= 1 && jobs[i]->id <= EXCL_JOBS)
                                atomic_fetch_add(&x->claims[jobs[i]->id], 1);
                        atomic_fetch_add(&x->total, 1);
                        sw_err_clear(&err);
                        if (eng_queue_complete(q, jobs[i]->id, owner, &err) != 0) {
                                fprintf(stderr, "complete: %s\n", err.msg);
                                atomic_fetch_add(&x->errors, 1);
                        }
                        eng_job_free(jobs[i]);
                }
        }
        eng_queue_close(q);
        return NULL;
}

static void test_claim_exclusive(void)
{
        struct sw_config cfg;
        struct eng_queue *q;
        struct excl *x = sw_xcalloc(1, sizeof(*x));
        pthread_t th[EXCL_THREADS];
        struct eng_job_spec specs[EXCL_JOBS];
        struct sw_err err = SW_ERR_INIT;
        int64_t counts[5];
        char *db;

        tf_config(&cfg, NULL);
        q = tf_queue(&cfg);
        db = tf_db_path(&cfg);
        memset(specs, 0, sizeof(specs));
        for (int i = 0; i < EXCL_JOBS; i++) {
                specs[i].kind = "k";
                specs[i].payload = "{}";
        }
        CHECK_OK(eng_queue_enqueue_batch(q, specs, EXCL_JOBS, &err), &err);
        x->db = db;
        for (int i = 0; i < EXCL_THREADS; i++)
                pthread_create(&th[i], NULL, excl_thread, x);
        for (int i = 0; i < EXCL_THREADS; i++)
                pthread_join(th[i], NULL);
        CHECK_INT(atomic_load(&x->errors), 0);
        CHECK_INT(atomic_load(&x->total), EXCL_JOBS);
        for (int i = 1; i <= EXCL_JOBS; i++)
                if (atomic_load(&x->claims[i]) != 1)
                        t_fail(__FILE__, __LINE__, "job %d claimed %d times", i,
                               atomic_load(&x->claims[i]));
        CHECK_OK(eng_queue_counts(counts, q, &err), &err);
        CHECK_INT(counts[ENG_JOB_SUCCEEDED], EXCL_JOBS);
        free(db);
        free(x);
        eng_queue_close(q);
        sw_config_release(&cfg);
}

/* ---- lease expiry ---- */

static void test_lease_expiry(void)
{
        struct sw_config cfg;
        struct eng_queue *q;
        struct eng_job *a = NULL, *b = NULL;
        struct sw_err err = SW_ERR_INIT;
        bool cancel;
        int64_t id;

        tf_config(&cfg, NULL);
        q = tf_queue(&cfg);
        id = enqueue(q, "k", NULL, NULL);
        CHECK_OK(eng_queue_claim(&a, q, "w1", 100, &err), &err);
        CHECK(a && a->id == id && a->attempt == 1);
        /* Leased: nobody else gets it. */
        CHECK_INT(eng_queue_claim(&b, q, "w2", 100, &err), SW_ENOTFOUND);
        /* A heartbeat extends the lease... */
        sw_err_clear(&err);
        CHECK_OK(eng_queue_heartbeat(&cancel, q, id, "w1", 100, &err), &err);
        sw_sleep_ms(150);
        /* ...but without more heartbeats it expires and another worker takes over. */
        sw_err_clear(&err);
        CHECK_OK(eng_queue_claim(&b, q, "w2", 60000, &err), &err);
        CHECK(b && b->id == id && b->attempt == 2);
        CHECK_STR(b ? b->lease_owner : NULL, "w2");
        /* The old owner is fenced off. */
        sw_err_clear(&err);
        CHECK_INT(eng_queue_heartbeat(&cancel, q, id, "w1", 100, &err), SW_ELEASE);
        sw_err_clear(&err);
        CHECK_INT(eng_queue_complete(q, id, "w1", &err), SW_ELEASE);
        sw_err_clear(&err);
        CHECK_OK(eng_queue_complete(q, id, "w2", &err), &err);
        eng_job_free(a);
        eng_job_free(b);
        eng_queue_close(q);
        sw_config_release(&cfg);
}

/* A job whose worker keeps dying fails once its attempts are used up. */
static void test_lease_expiry_exhausts_attempts(void)
{
        struct sw_config cfg;
        struct eng_queue *q;
        struct eng_job *j = NULL;
        struct sw_err err = SW_ERR_INIT;
        struct eng_job_spec s = {0};
        int64_t id;

        tf_config(&cfg, NULL);
        q = tf_queue(&cfg);
        s.kind = "k";
        s.payload = "{}";
        s.max_attempts = 2;
        CHECK_OK(eng_queue_enqueue(&id, NULL, q, &s, &err), &err);
        for (int i = 0; i < 2; i++) {
                CHECK_OK(eng_queue_claim(&j, q, "w", 1, &err), &err);
                eng_job_free(j);
                j = NULL;
                sw_sleep_ms(5);
        }
        /* The reaper runs at most once a second per connection. */
        sw_sleep_ms(1100);
        CHECK_INT(eng_queue_claim(&j, q, "w", 1, &err), SW_ENOTFOUND);
        sw_err_clear(&err);
        CHECK_OK(eng_queue_get(&j, q, id, &err), &err);
        CHECK_INT(j->state, ENG_JOB_FAILED);
        CHECK(j->error && strstr(j->error, "lease expired"));
        eng_job_free(j);
        eng_queue_close(q);
        sw_config_release(&cfg);
}

/* ---- backoff ---- */

static void test_backoff(void)
{
        struct sw_config cfg;
        struct eng_queue *q;
        struct eng_job *j = NULL;
        struct sw_err err = SW_ERR_INIT;
        bool requeued = false;
        int64_t id, t0;

        tf_config(&cfg, NULL);
        q = tf_queue(&cfg);
        id = enqueue(q, "k", NULL, NULL);

        CHECK_OK(eng_queue_claim(&j, q, "w", 60000, &err), &err);
        eng_job_free(j);
        t0 = sw_now_ms();
        CHECK_OK(eng_queue_fail(&requeued, q, id, "w", true, "flaky", 1000, &err), &err);
        CHECK(requeued);
        CHECK_OK(eng_queue_get(&j, q, id, &err), &err);
        CHECK_INT(j->state, ENG_JOB_QUEUED);
        /* attempt 1: between half and all of the base */
        CHECK(j->run_after >= t0 + 500 && j->run_after <= sw_now_ms() + 1000);
        CHECK_STR(j->error, "flaky");
        eng_job_free(j);
        /* Not runnable before run_after. */
        CHECK_INT(eng_queue_claim(&j, q, "w", 60000, &err), SW_ENOTFOUND);

        /* attempt 2 doubles the backoff */
        set_sql(q, "UPDATE jobs SET run_after = 0");
        sw_err_clear(&err);
        CHECK_OK(eng_queue_claim(&j, q, "w", 60000, &err), &err);
        CHECK_INT(j->attempt, 2);
        eng_job_free(j);
        t0 = sw_now_ms();
        CHECK_OK(eng_queue_fail(&requeued, q, id, "w", true, "flaky", 1000, &err), &err);
        CHECK_OK(eng_queue_get(&j, q, id, &err), &err);
        CHECK(j->run_after >= t0 + 1000 && j->run_after <= sw_now_ms() + 2000);
        eng_job_free(j);

        /* attempt 3 of 3: no attempts left, the failure is final */
        set_sql(q, "UPDATE jobs SET run_after = 0");
        CHECK_OK(eng_queue_claim(&j, q, "w", 60000, &err), &err);
        eng_job_free(j);
        CHECK_OK(eng_queue_fail(&requeued, q, id, "w", true, "flaky", 1000, &err), &err);
        CHECK(!requeued);
        CHECK_OK(eng_queue_get(&j, q, id, &err), &err);
        CHECK_INT(j->state, ENG_JOB_FAILED);
        eng_job_free(j);

        /* a permanent failure is final at once */
        id = enqueue(q, "k", NULL, NULL);
        CHECK_OK(eng_queue_claim(&j, q, "w", 60000, &err), &err);
        eng_job_free(j);
        CHECK_OK(eng_queue_fail(&requeued, q, id, "w", false, "bad dockerfile", 1000, &err), &err);
        CHECK(!requeued);
        eng_queue_close(q);
        sw_config_release(&cfg);
}

/* ---- idempotency and concurrency keys ---- */

static void test_idempotency_key(void)
{
        struct sw_config cfg;
        struct eng_queue *q;
        struct eng_job_spec s = {0};
        struct sw_err err = SW_ERR_INIT;
        int64_t a, b, c;
        bool existed = true;

        tf_config(&cfg, NULL);
        q = tf_queue(&cfg);
        s.kind = "k";
        s.payload = "{\"n\":1}";
        s.idempotency_key = "push-abc";
        CHECK_OK(eng_queue_enqueue(&a, &existed, q, &s, &err), &err);
        CHECK(!existed);
        s.payload = "{\"n\":2}";
        CHECK_OK(eng_queue_enqueue(&b, &existed, q, &s, &err), &err);
        CHECK(existed);
        CHECK_INT(a, b);
        s.idempotency_key = "push-def";
        CHECK_OK(eng_queue_enqueue(&c, &existed, q, &s, &err), &err);
        CHECK(!existed && c != a);
        eng_queue_close(q);
        sw_config_release(&cfg);
}

static void test_concurrency_key(void)
{
        struct sw_config cfg;
        struct eng_queue *q;
        struct eng_job *j1 = NULL, *j2 = NULL, *jx = NULL;
        struct sw_err err = SW_ERR_INIT;
        int64_t a, b, other;

        tf_config(&cfg, NULL);
        q = tf_queue(&cfg);
        a = enqueue(q, "deploy", NULL, "app/x");
        b = enqueue(q, "deploy", NULL, "app/x");
        other = enqueue(q, "deploy", NULL, "app/y");
        CHECK_OK(eng_queue_claim(&j1, q, "w1", 60000, &err), &err);
        CHECK_INT(j1->id, a);
        /* b shares a's key: the next claim skips it and takes the other app. */
        CHECK_OK(eng_queue_claim(&jx, q, "w2", 60000, &err), &err);
        CHECK_INT(jx->id, other);
        CHECK_INT(eng_queue_claim(&j2, q, "w3", 60000, &err), SW_ENOTFOUND);
        sw_err_clear(&err);
        CHECK_OK(eng_queue_complete(q, a, "w1", &err), &err);
        CHECK_OK(eng_queue_claim(&j2, q, "w3", 60000, &err), &err);
        CHECK_INT(j2->id, b);
        eng_job_free(j1);
        eng_job_free(j2);
        eng_job_free(jx);
        eng_queue_close(q);
        sw_config_release(&cfg);
}

static void test_batch_claim_respects_key(void)
{
        struct sw_config cfg;
        struct eng_queue *q;
        struct eng_job *jobs[8];
        struct sw_err err = SW_ERR_INIT;
        size_t n = 0;

        tf_config(&cfg, NULL);
        q = tf_queue(&cfg);
        for (int i = 0; i < 4; i++)
                enqueue(q, "deploy", NULL, "app/x");
        enqueue(q, "deploy", NULL, NULL);
        CHECK_OK(eng_queue_claim_batch(jobs, 8, &n, q, "w", 60000, &err), &err);
        /* one of key app/x, plus the keyless job */
        CHECK_INT(n, 2);
        for (size_t i = 0; i < n; i++)
                eng_job_free(jobs[i]);
        eng_queue_close(q);
        sw_config_release(&cfg);
}

static void test_supersede(void)
{
        struct sw_config cfg;
        struct eng_queue *q;
        struct eng_job *j = NULL;
        struct eng_job_spec s = {0};
        struct sw_err err = SW_ERR_INIT;
        int64_t running, old, newer;

        tf_config(&cfg, NULL);
        q = tf_queue(&cfg);
        running = enqueue(q, "deploy", NULL, "app/x");
        CHECK_OK(eng_queue_claim(&j, q, "w", 60000, &err), &err);
        eng_job_free(j);
        old = enqueue(q, "deploy", NULL, "app/x");
        s.kind = "deploy";
        s.payload = "{}";
        s.concurrency_key = "app/x";
        s.supersede = true;
        CHECK_OK(eng_queue_enqueue(&newer, NULL, q, &s, &err), &err);
        CHECK_OK(eng_queue_get(&j, q, old, &err), &err);
        CHECK_INT(j->state, ENG_JOB_CANCELLED);
        CHECK(j->error && strstr(j->error, "superseded"));
        eng_job_free(j);
        /* The running one is not touched. */
        CHECK_OK(eng_queue_get(&j, q, running, &err), &err);
        CHECK_INT(j->state, ENG_JOB_RUNNING);
        eng_job_free(j);
        eng_queue_close(q);
        sw_config_release(&cfg);
}

/* ---- priority ---- */

static void test_priority(void)
{
        struct sw_config cfg;
        struct eng_queue *q;
        struct eng_job *j = NULL;
        struct eng_job_spec s = {0};
        struct sw_err err = SW_ERR_INIT;
        int64_t low, high;

        tf_config(&cfg, NULL);
        q = tf_queue(&cfg);
        low = enqueue(q, "k", NULL, NULL);
        s.kind = "k";
        s.payload = "{}";
        s.priority = 10;
        CHECK_OK(eng_queue_enqueue(&high, NULL, q, &s, &err), &err);
        CHECK_OK(eng_queue_claim(&j, q, "w", 60000, &err), &err);
        CHECK_INT(j->id, high);
        eng_job_free(j);
        CHECK_OK(eng_queue_claim(&j, q, "w", 60000, &err), &err);
        CHECK_INT(j->id, low);
        eng_job_free(j);
        eng_queue_close(q);
        sw_config_release(&cfg);
}

/* ---- cancel and retry ---- */

static void test_cancel_and_retry(void)
{
        struct sw_config cfg;
        struct eng_queue *q;
        struct eng_job *j = NULL;
        struct sw_err err = SW_ERR_INIT;
        enum eng_job_state st;
        bool cancel = false;
        int64_t queued, running;

        tf_config(&cfg, NULL);
        q = tf_queue(&cfg);
        running = enqueue(q, "k", NULL, NULL);
        queued = enqueue(q, "k", NULL, NULL);
        CHECK_OK(eng_queue_claim(&j, q, "w", 60000, &err), &err);
        CHECK_INT(j->id, running);
        eng_job_free(j);

        CHECK_OK(eng_queue_cancel(&st, q, queued, &err), &err);
        CHECK_INT(st, ENG_JOB_CANCELLED);
        CHECK_OK(eng_queue_cancel(&st, q, running, &err), &err);
        CHECK_INT(st, ENG_JOB_RUNNING);
        /* The worker learns it from its heartbeat or the cancel poll. */
        CHECK_OK(eng_queue_cancel_requested(&cancel, q, running, &err), &err);
        CHECK(cancel);
        cancel = false;
        CHECK_OK(eng_queue_heartbeat(&cancel, q, running, "w", 60000, &err), &err);
        CHECK(cancel);
        CHECK_OK(eng_queue_finish_cancelled(q, running, "w", &err), &err);
        /* Cancelling a finished job is a conflict. */
        CHECK_INT(eng_queue_cancel(&st, q, running, &err), SW_ECONFLICT);
        sw_err_clear(&err);
        CHECK_INT(eng_queue_cancel(&st, q, 9999, &err), SW_ENOTFOUND);
        sw_err_clear(&err);

        /* Retry brings it back with fresh attempts. */
        CHECK_OK(eng_queue_retry(q, running, &err), &err);
        CHECK_OK(eng_queue_get(&j, q, running, &err), &err);
        CHECK_INT(j->state, ENG_JOB_QUEUED);
        CHECK_INT(j->attempt, 0);
        CHECK(!j->cancel_requested);
        eng_job_free(j);
        /* Only failed or cancelled jobs can be retried. */
        CHECK_INT(eng_queue_retry(q, running, &err), SW_ECONFLICT);
        eng_queue_close(q);
        sw_config_release(&cfg);
}

static void test_release(void)
{
        struct sw_config cfg;
        struct eng_queue *q;
        struct eng_job *j = NULL;
        struct sw_err err = SW_ERR_INIT;
        int64_t id;

        tf_config(&cfg, NULL);
        q = tf_queue(&cfg);
        id = enqueue(q, "k", NULL, NULL);
        CHECK_OK(eng_queue_claim(&j, q, "w", 60000, &err), &err);
        eng_job_free(j);
        CHECK_OK(eng_queue_release(q, id, "w", &err), &err);
        /* A released job is claimable at once and the attempt was not counted. */
        CHECK_OK(eng_queue_claim(&j, q, "w2", 60000, &err), &err);
        CHECK_INT(j->id, id);
        CHECK_INT(j->attempt, 1);
        eng_job_free(j);
        eng_queue_close(q);
        sw_config_release(&cfg);
}

/* ---- bad databases ---- */

static void test_bad_databases(void)
{
        struct eng_queue_options qo = ENG_QUEUE_OPTIONS_INIT;
        struct eng_queue *q = NULL;
        struct sw_err err = SW_ERR_INIT;
        char *path = sw_xasprintf("%s/garbage.db", t_tmpdir());
        FILE *f = fopen(path, "w");

        /* corrupt: not an SQLite file */
        fputs("this is not a database, just some text that is long enough to look like a header"
              " of something else entirely ........................................",
              f);
        fclose(f);
        qo.path = path;
        CHECK_INT(eng_queue_open(&q, &qo, &err), SW_ECORRUPT);
        CHECK(strstr(err.msg, "corrupt") != NULL);
        CHECK(strstr(err.msg, path) != NULL);
        free(path);

        /* missing, without create */
        sw_err_clear(&err);
        path = sw_xasprintf("%s/absent/slipway.db", t_tmpdir());
        qo.path = path;
        qo.create = false;
        CHECK_INT(eng_queue_open(&q, &qo, &err), SW_ENOTFOUND);
        CHECK(strstr(err.msg, "no database") != NULL);
        free(path);
}

static void test_locked_database(void)
{
        struct sw_config cfg;
        struct eng_queue *a, *b;
        struct eng_job_spec s = {0};
        struct eng_queue_options qo = ENG_QUEUE_OPTIONS_INIT;
        struct sw_err err = SW_ERR_INIT;
        char *path;
        int64_t id;

        tf_config(&cfg, NULL);
        a = tf_queue(&cfg);
        path = tf_db_path(&cfg);
        qo.path = path;
        qo.busy_timeout_ms = 100;
        CHECK_OK(eng_queue_open(&b, &qo, &err), &err);
        set_sql(a, "BEGIN IMMEDIATE");
        s.kind = "k";
        s.payload = "{}";
        CHECK_INT(eng_queue_enqueue(&id, NULL, b, &s, &err), SW_EBUSY);
        CHECK(strstr(err.msg, "locked") != NULL);
        set_sql(a, "ROLLBACK");
        eng_queue_close(a);
        eng_queue_close(b);
        free(path);
        sw_config_release(&cfg);
}

int main(void)
{
        T_RUN(test_claim_exclusive);
        T_RUN(test_lease_expiry);
        T_RUN(test_lease_expiry_exhausts_attempts);
        T_RUN(test_backoff);
        T_RUN(test_idempotency_key);
        T_RUN(test_concurrency_key);
        T_RUN(test_batch_claim_respects_key);
        T_RUN(test_supersede);
        T_RUN(test_priority);
        T_RUN(test_cancel_and_retry);
        T_RUN(test_release);
        T_RUN(test_bad_databases);
        T_RUN(test_locked_database);
        return t_done();
}
