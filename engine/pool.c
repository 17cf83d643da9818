/*
 * pool.c - worker threads and the heartbeat thread (see pool.h).
 *
 * Lock order: pool->lock, then a slot's lock. A slot's `job_id` and `stop`
 * change under its lock, so the heartbeat thread never flags a job that the
 * worker has already finished and replaced with another.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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
/* A job process asked to stop gets this long before SIGKILL. */
#define EXEC_KILL_AFTER_MS 15000
/* How often a supervising thread looks at its slot's stop flag. */
#define EXEC_TICK_MS 50

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
        char *exec_path; /* NULL: pipelines run on the worker threads */
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

static int pool_exec_job(struct pool_slot *s, const struct eng_job *job, struct sw_err *err);

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
        } else if (p->exec_path) {
                rc = pool_exec_job(s, job, &err);
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

/* ---- exec mode: one child process per job ---- */

/* The signal that tells a job process why to stop (see eng_pool_exec_child). */
static int stop_signal(int stop)
{
        switch (stop) {
        case ENG_STOP_CANCEL:
                return SIGUSR1;
        case ENG_STOP_LEASE:
                return SIGUSR2;
        default:
                return SIGTERM;
        }
}

/* Parse "<rc>\n<message>" from a job process into rc and err. */
static int exec_result(const char *text, size_t len, struct sw_err *err)
{
        char *end = NULL;
        long rc;

        if (len == 0)
                return 1;
        errno = 0;
        rc = strtol(text, &end, 10);
        if (errno || end == text || *end != '\n' || rc > 0 || rc < -1000)
                return 1;
        if (rc != 0)
                sw_err_set(err, (int)rc, "%.*s", (int)(len - (size_t)(end + 1 - text)), end + 1);
        return (int)rc;
}

/*
 * Start `slipway job-exec` for `job`, pass stop requests on as signals and
 * return its outcome. The child dies with this thread (PR_SET_PDEATHSIG), so
 * a worker killed with -9 leaves no job running behind the lease.
 */
static int pool_exec_job(struct pool_slot *s, const struct eng_job *job, struct sw_err *err)
{
        struct eng_pool *p = s->pool;
        char id[32], result[8192];
        char *argv[] = {p->exec_path, "job-exec",    "--job", id,  "--owner",
                        s->owner,     "--result-fd", "3",     NULL};
        size_t got = 0;
        int fds[2], pidfd, status = 0, sent = ENG_STOP_NONE, rc;
        int64_t kill_at = 0;
        pid_t parent = getpid(), pid;
        sigset_t none;

        snprintf(id, sizeof(id), "%lld", (long long)job->id);
        sigemptyset(&none);
        if (pipe2(fds, O_CLOEXEC) != 0)
                return sw_err_set(err, SW_EIO, "cannot start the job process: pipe: %s",
                                  strerror(errno));
        pid = fork();
        if (pid == 0) {
                /* Only async-signal-safe calls between fork and exec. */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
                if (dup2(fds[1], 3) < 0)
                        _exit(127);
                sigprocmask(SIG_SETMASK, &none, NULL);
                execv(p->exec_path, argv);
                _exit(127);
        }
        close(fds[1]);
        if (pid < 0) {
                close(fds[0]);
                return sw_err_set(err, SW_EIO, "cannot start the job process: fork: %s",
                                  strerror(errno));
        }
        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        for (;;) {
                struct pollfd pfd[2] = {{fds[0], POLLIN, 0}, {pidfd, POLLIN, 0}};
                int stop = atomic_load(&s->stop);

                if (stop != ENG_STOP_NONE && stop != sent) {
                        kill(pid, stop_signal(stop));
                        sent = stop;
                        kill_at = sw_mono_ms() + EXEC_KILL_AFTER_MS;
                }
                if (kill_at && sw_mono_ms() >= kill_at) {
                        sw_log(SW_LOG_WARN, "pool", "job process did not stop; killing it",
                               "{s:I,s:i}", "job", (json_int_t)job->id, "pid", (int)pid);
                        kill(pid, SIGKILL);
                        kill_at = 0;
                }
                if (poll(pfd, pidfd >= 0 ? 2 : 1, EXEC_TICK_MS) > 0 && pfd[0].revents) {
                        ssize_t n = read(fds[0], result + got, sizeof(result) - 1 - got);
                        if (n > 0)
                                got += (size_t)n;
                        else if (n == 0 || (errno != EINTR && errno != EAGAIN))
                                break; /* EOF: the child is exiting */
                }
                if (waitpid(pid, &status, WNOHANG) == pid) {
                        pid = 0;
                        break;
                }
        }
        if (pid > 0) {
                /* The pipe closed first; the exit follows (or the kill above ends it). */
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
                }
        }
        /* What the child wrote just before it exited. */
        for (;;) {
                ssize_t n = read(fds[0], result + got, sizeof(result) - 1 - got);
                if (n <= 0)
                        break;
                got += (size_t)n;
        }
        close(fds[0]);
        if (pidfd >= 0)
                close(pidfd);
        result[got] = '\0';
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                rc = exec_result(result, got, err);
                if (rc <= 0)
                        return rc;
        }
        if (sent != ENG_STOP_NONE)
                return sw_err_set(err, SW_ECANCELED, "job process stopped");
        if (WIFSIGNALED(status))
                return sw_err_set(err, SW_EIO, "the job process died of signal %d (%s)",
                                  WTERMSIG(status), strsignal(WTERMSIG(status)));
        return sw_err_set(err, SW_EINTERNAL, "the job process exited with status %d%s%s",
                          WIFEXITED(status) ? WEXITSTATUS(status) : -1, got ? ": " : "", result);
}

/* The stop reason of the job this process runs: written by a signal handler. */
static atomic_int exec_stop;

static void exec_on_signal(int sig)
{
        atomic_store(&exec_stop, sig == SIGUSR1   ? ENG_STOP_CANCEL
                                 : sig == SIGUSR2 ? ENG_STOP_LEASE
                                                  : ENG_STOP_SHUTDOWN);
}

int eng_pool_exec_child(const struct sw_config *cfg, const struct eng_pipeline_def *pipelines,
                        size_t npipelines, int64_t id, const char *owner, int result_fd,
                        struct sw_err *err)
{
        static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1, SIGUSR2};
        const struct eng_pipeline_def *def;
        struct eng_queue_options qo = ENG_QUEUE_OPTIONS_INIT;
        struct eng_queue *q = NULL;
        struct eng_job *job = NULL;
        struct eng_run_env env;
        struct sigaction sa;
        struct sw_err run_err = SW_ERR_INIT;
        char *db_path = eng__db_path(cfg->data), *scratch = NULL;
        int rc;

        /* The processes the steps start must not hold the result pipe open. */
        if (fcntl(result_fd, F_SETFD, FD_CLOEXEC) != 0) {
                free(db_path);
                return sw_err_set(err, SW_EINVAL, "result fd %d: %s", result_fd, strerror(errno));
        }
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = exec_on_signal;
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
                sigaction(sigs[i], &sa, NULL);

        qo.path = db_path;
        qo.synchronous_full = strcmp(cfg->synchronous, "FULL") == 0;
        rc = eng_queue_open(&q, &qo, err);
        if (rc)
                goto out;
        rc = eng_queue_get(&job, q, id, &run_err);
        if (rc == 0 && (job->state != ENG_JOB_RUNNING || !job->lease_owner ||
                        strcmp(job->lease_owner, owner) != 0))
                rc = sw_err_set(&run_err, SW_ELEASE, "job %lld is no longer held by %s",
                                (long long)id, owner);
        def = rc == 0 ? eng_pipeline_find(pipelines, npipelines, job->kind) : NULL;
        if (rc == 0 && !def)
                rc = sw_err_set(&run_err, SW_EINVAL, "no pipeline for job kind '%s'", job->kind);
        if (rc == 0) {
                scratch = sw_xasprintf("%s/scratch", cfg->data);
                rc = sw_mkdir_p(scratch, 0700, &run_err);
        }
        if (rc == 0) {
                env.cfg = cfg;
                env.scratch_root = scratch;
                env.log_max_bytes = cfg->job_log_max_bytes;
                env.stop = &exec_stop;
                rc = eng_pipeline_run(q, job, def, &env, &run_err);
        }
        if (dprintf(result_fd, "%d\n%s", rc, rc ? run_err.msg : "") < 0)
                rc = sw_err_set(err, SW_EIO, "cannot write the outcome: %s", strerror(errno));
        else
                rc = 0;
out:
        eng_job_free(job);
        eng_queue_close(q);
        free(scratch);
        free(db_path);
        return rc;
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
        p->exec_path = opts->exec_path ? sw_xstrdup(opts->exec_path) : NULL;
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
        free(p->exec_path);
        free(p);
}

int64_t eng_pool_finished(const struct eng_pool *p)
{
        return atomic_load(&((struct eng_pool *)p)->finished);
}
