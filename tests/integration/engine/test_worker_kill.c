/*
 * test_worker_kill.c - jobs survive `kill -9` of a worker process.
 *
 * Three worker processes share one database. Each is this test binary
 * re-executed with --worker: it runs the engine's own pool (the code behind
 * `slipway worker`) with a pipeline whose one step takes a while, records
 * its start and end, and holds an exclusive flock on a per-job file for the
 * duration, so that two executions of one job at once would be seen. One
 * worker is killed with SIGKILL in the middle of a step; after its lease
 * expires another worker resumes the job. At the end every job has
 * succeeded, none ran twice at once, and only the killed worker's jobs ran
 * more than once.
 *
 * The same runs again with the pool in exec mode (what `slipway worker`
 * does): each job runs in a child process, this binary re-executed as
 * `job-exec`; killing the worker must take its job processes down with it.
 * A job whose process crashes fails that attempt and the worker carries on.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/mem.h"
#include "engine/pipeline.h"
#include "engine/pool.h"
#include "engine/queue.h"
#include "tests/harness/engine_fixture.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

#define JOBS 30
#define WORKERS 3
#define STEP_MS 300

extern char **environ;

static const char *work_dir; /* set in worker mode from argv */

static void append_line(const char *name, const char *line)
{
        char *path = sw_xasprintf("%s/%s", work_dir, name);
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);

        if (fd >= 0) {
                ssize_t n = write(fd, line, strlen(line));
                (void)n;
                close(fd);
        }
        free(path);
}

static int step_work(struct eng_step_ctx *ctx, json_t **output, struct sw_err *err)
{
        int64_t id = eng_step_job_id(ctx);
        char *lock = sw_xasprintf("%s/lock-%lld", work_dir, (long long)id);
        char line[128];
        int fd = open(lock, O_RDWR | O_CREAT, 0644);

        free(lock);
        (void)output;
        if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
                snprintf(line, sizeof(line), "overlap %lld %d\n", (long long)id, (int)getpid());
                append_line("events", line);
                if (fd >= 0)
                        close(fd);
                return sw_err_set(err, SW_EINTERNAL, "job ran twice at once");
        }
        snprintf(line, sizeof(line), "start %lld %d %d\n", (long long)id, (int)getpid(),
                 (int)getppid());
        append_line("events", line);
        for (int i = 0; i < STEP_MS / 10; i++) {
                if (eng_step_cancelled(ctx)) {
                        close(fd);
                        return sw_err_set(err, SW_ECANCELED, "stopped");
                }
                sw_sleep_ms(10);
        }
        snprintf(line, sizeof(line), "done %lld %d %d\n", (long long)id, (int)getpid(),
                 (int)getppid());
        append_line("events", line);
        close(fd);
        return 0;
}

/* Crashes its process on the first attempt, succeeds on the next. */
static int step_crash(struct eng_step_ctx *ctx, json_t **output, struct sw_err *err)
{
        char *mark = sw_xasprintf("%s/crashed-%lld", work_dir, (long long)eng_step_job_id(ctx));
        bool again = access(mark, F_OK) == 0;
        struct sw_err ignore = SW_ERR_INIT;

        (void)output;
        (void)err;
        if (!again && sw_write_file_atomic(mark, "x", 1, 0644, &ignore) == 0)
                raise(SIGSEGV);
        free(mark);
        return 0;
}

static const struct eng_step_def def_work = {"work", "sleep and record", step_work};
static const struct eng_step_def *const work_steps[] = {&def_work};
static const struct eng_step_def def_crash = {"crash", "crash once", step_crash};
static const struct eng_step_def *const crash_steps[] = {&def_crash};
static const struct eng_pipeline_def pipes[] = {{"work", work_steps, 1}, {"crash", crash_steps, 1}};

/* Job-process mode: what `slipway job-exec` does, with this file's pipelines. */
static int job_exec_main(int argc, char **argv)
{
        struct sw_config cfg;
        struct sw_err err = SW_ERR_INIT;
        char *dir;
        int rc;

        /* argv: job-exec --job ID --owner OWNER --result-fd FD */
        if (argc != 8 || sw_config_load(&cfg, environ, &err) != 0)
                return 2;
        sw_log_init(1, SW_LOG_WARN);
        dir = sw_xstrdup(cfg.data);
        *strrchr(dir, '/') = '\0'; /* SLIPWAY_DATA is <test dir>/data */
        work_dir = dir;
        rc = eng_pool_exec_child(&cfg, pipes, 2, strtoll(argv[3], NULL, 10), argv[5],
                                 (int)strtol(argv[7], NULL, 10), &err);
        if (rc)
                fprintf(stderr, "job-exec: %s\n", err.msg);
        free(dir);
        sw_config_release(&cfg);
        return rc ? 1 : 0;
}

/* Worker mode: the engine's pool until SIGTERM, like `slipway worker`. */
static int worker_main(const char *exec_path)
{
        struct sw_config cfg;
        struct sw_err err = SW_ERR_INIT;
        struct eng_pool_options po = ENG_POOL_OPTIONS_INIT;
        struct eng_pool *pool = NULL;
        sigset_t set;
        int sig;

        sw_log_init(1, SW_LOG_WARN);
        if (sw_config_load(&cfg, environ, &err) != 0) {
                fprintf(stderr, "config: %s\n", err.msg);
                return 1;
        }
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        po.cfg = &cfg;
        po.pipelines = pipes;
        po.npipelines = 2;
        po.exec_path = exec_path;
        if (eng_pool_start(&pool, &po, &err) != 0) {
                fprintf(stderr, "pool: %s\n", err.msg);
                return 1;
        }
        sigwait(&set, &sig);
        eng_pool_stop(pool, 5000);
        sw_config_release(&cfg);
        return 0;
}

struct counts {
        int start[JOBS + 1], done[JOBS + 1], overlap;
        int done_by_victim[JOBS + 1], start_by_victim[JOBS + 1];
};

static void read_events(struct counts *c, const char *dir, pid_t victim)
{
        char *path = sw_xasprintf("%s/events", dir), *text = NULL, *save = NULL;
        struct sw_err err = SW_ERR_INIT;

        memset(c, 0, sizeof(*c));
        if (sw_read_file(&text, NULL, path, 1 << 20, &err) == 0) {
                for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                        char what[16];
                        long long id;
                        int pid, ppid;
                        if (sscanf(l, "%15s %lld %d %d", what, &id, &pid, &ppid) != 4 || id < 1 ||
                            id > JOBS)
                                continue;
                        /* In exec mode the step runs in a child of the worker. */
                        if (ppid == victim)
                                pid = victim;
                        if (strcmp(what, "start") == 0) {
                                c->start[id]++;
                                c->start_by_victim[id] += pid == victim;
                        } else if (strcmp(what, "done") == 0) {
                                c->done[id]++;
                                c->done_by_victim[id] += pid == victim;
                        } else {
                                c->overlap++;
                        }
                }
        }
        free(text);
        free(path);
}

/* A fresh directory under the test's own for one scenario. */
static const char *scenario_dir(const char *name)
{
        static char path[4096];
        struct sw_err err = SW_ERR_INIT;

        snprintf(path, sizeof(path), "%s/%s", t_tmpdir(), name);
        if (sw_mkdir_p(path, 0700, &err) != 0)
                t_fail(__FILE__, __LINE__, "%s", err.msg);
        return path;
}

static void kill_9_mid_step(bool exec_mode)
{
        const char *dir = scenario_dir(exec_mode ? "exec" : "threads");
        char *data_env = sw_xasprintf("SLIPWAY_DATA=%s/data", dir);
        const char *env[] = {data_env,
                             "SLIPWAY_LEASE_MS=1000",
                             "SLIPWAY_POLL_MS=20",
                             "SLIPWAY_WORKERS=2",
                             "SLIPWAY_BACKOFF_MS=10",
                             NULL};
        char *self = sw_xstrdup("/proc/self/exe"), *dir_arg = sw_xstrdup(dir);
        char exe[4096];
        ssize_t n = readlink(self, exe, sizeof(exe) - 1);
        struct sw_config cfg;
        struct eng_queue *q;
        struct eng_job_spec specs[JOBS];
        struct sw_err err = SW_ERR_INIT;
        struct counts c;
        pid_t pids[WORKERS], victim = -1;
        int64_t counts[5] = {0}, deadline;

        exe[n > 0 ? n : 0] = '\0';
        /* The test process itself writes the queue through the same fixture. */
        {
                char *cfg_env[] = {data_env, NULL};
                CHECK_OK(sw_config_load(&cfg, cfg_env, &err), &err);
        }
        q = tf_queue(&cfg);
        memset(specs, 0, sizeof(specs));
        for (int i = 0; i < JOBS; i++) {
                specs[i].kind = "work";
                specs[i].payload = "{}";
                specs[i].max_attempts = 3;
        }
        CHECK_OK(eng_queue_enqueue_batch(q, specs, JOBS, &err), &err);

        for (int i = 0; i < WORKERS; i++) {
                char *argv[] = {exe, exec_mode ? "--exec-worker" : "--worker", dir_arg, NULL};
                char *log = sw_xasprintf("%s/worker-%d.log", dir, i);
                pids[i] = t_spawn_extra(argv, env, log);
                free(log);
                CHECK(pids[i] > 0);
        }
        /* Wait until worker 0 is in the middle of a step, then kill it. */
        deadline = sw_mono_ms() + 20000;
        while (victim < 0 && sw_mono_ms() < deadline) {
                read_events(&c, dir, pids[0]);
                for (int id = 1; id <= JOBS; id++)
                        if (c.start_by_victim[id] > c.done_by_victim[id])
                                victim = pids[0];
                sw_sleep_ms(20);
        }
        CHECK(victim > 0);
        if (victim <= 0) {
                for (int i = 0; i < WORKERS; i++)
                        t_stop(pids[i]);
                return;
        }
        sw_sleep_ms(50);
        t_kill(victim);
        /*
         * In exec mode its job process must die with it (PR_SET_PDEATHSIG):
         * one that lived on would finish the step a second time, as an
         * orphan, and show below as an overlap or a second "done".
         */

        deadline = sw_mono_ms() + 60000;
        while (sw_mono_ms() < deadline) {
                CHECK_OK(eng_queue_counts(counts, q, &err), &err);
                if (counts[ENG_JOB_SUCCEEDED] + counts[ENG_JOB_FAILED] == JOBS)
                        break;
                sw_sleep_ms(50);
        }
        for (int i = 1; i < WORKERS; i++) {
                kill(pids[i], SIGTERM);
                CHECK_INT(t_wait(pids[i], 10000), 0);
        }
        CHECK_INT(counts[ENG_JOB_SUCCEEDED], JOBS);
        CHECK_INT(counts[ENG_JOB_FAILED], 0);

        read_events(&c, dir, victim);
        CHECK_INT(c.overlap, 0);
        int resumed = 0;
        for (int id = 1; id <= JOBS; id++) {
                int others_done = c.done[id] - c.done_by_victim[id];
                /* Every job finished; only a job the victim was running may have run twice. */
                if (c.done[id] < 1)
                        t_fail(__FILE__, __LINE__, "job %d never finished its step", id);
                if (c.start_by_victim[id] == 0 && c.start[id] != 1)
                        t_fail(__FILE__, __LINE__, "job %d started %d times", id, c.start[id]);
                if (c.start_by_victim[id] > c.done_by_victim[id]) {
                        resumed++;
                        if (others_done != 1)
                                t_fail(__FILE__, __LINE__,
                                       "interrupted job %d finished %d times elsewhere", id,
                                       others_done);
                }
        }
        CHECK(resumed >= 1);
        /* The interrupted jobs show a second attempt. */
        {
                struct eng_job **jobs = NULL;
                size_t nj = 0;
                int second = 0;
                CHECK_OK(eng_queue_list(&jobs, &nj, q, NULL, 1000, &err), &err);
                for (size_t i = 0; i < nj; i++)
                        second += jobs[i]->attempt == 2;
                /* a job the victim finished but could not mark done also runs again */
                CHECK(second >= resumed);
                eng_job_list_free(jobs, nj);
        }
        eng_queue_close(q);
        sw_config_release(&cfg);
        free(data_env);
        free(self);
        free(dir_arg);
}

static void test_kill_9_mid_step(void)
{
        kill_9_mid_step(false);
}

static void test_job_process_crash(void)
{
        const char *dir = scenario_dir("crash");
        char *data_env = sw_xasprintf("SLIPWAY_DATA=%s/data", dir);
        const char *env[] = {data_env, "SLIPWAY_POLL_MS=20", "SLIPWAY_BACKOFF_MS=10", NULL};
        char *argv[] = {"/proc/self/exe", "--exec-worker", (char *)dir, NULL};
        char *log = sw_xasprintf("%s/worker.log", dir), *text = NULL;
        struct eng_job_spec specs[2] = {{.kind = "crash", .payload = "{}", .max_attempts = 3},
                                        {.kind = "work", .payload = "{}", .max_attempts = 1}};
        struct sw_config cfg;
        struct eng_queue *q;
        struct eng_job *j = NULL;
        struct sw_err err = SW_ERR_INIT;
        int64_t counts[5] = {0}, deadline = sw_mono_ms() + 30000;
        pid_t pid;

        {
                char *cfg_env[] = {data_env, NULL};
                CHECK_OK(sw_config_load(&cfg, cfg_env, &err), &err);
        }
        q = tf_queue(&cfg);
        CHECK_OK(eng_queue_enqueue_batch(q, specs, 2, &err), &err);
        pid = t_spawn_extra(argv, env, log);
        CHECK(pid > 0);
        while (sw_mono_ms() < deadline) {
                CHECK_OK(eng_queue_counts(counts, q, &err), &err);
                if (counts[ENG_JOB_SUCCEEDED] + counts[ENG_JOB_FAILED] == 2)
                        break;
                sw_sleep_ms(50);
        }
        /* The crash cost one attempt of its own job; the worker lived on and ran both. */
        CHECK(pid > 0 && kill(pid, 0) == 0);
        CHECK_INT(counts[ENG_JOB_SUCCEEDED], 2);
        CHECK_OK(eng_queue_get(&j, q, 1, &err), &err); /* the crash job */
        CHECK_INT(j->attempt, 2);
        eng_job_free(j);
        t_stop(pid);
        CHECK_OK(sw_read_file(&text, NULL, log, 1 << 20, &err), &err);
        CHECK(text && strstr(text, "the job process died of signal 11"));
        free(text);
        free(log);
        eng_queue_close(q);
        sw_config_release(&cfg);
        free(data_env);
}

static void test_kill_9_mid_step_exec(void)
{
        kill_9_mid_step(true);
}

int main(int argc, char **argv)
{
        if (argc == 3 && strcmp(argv[1], "--worker") == 0) {
                work_dir = argv[2];
                return worker_main(NULL);
        }
        if (argc == 3 && strcmp(argv[1], "--exec-worker") == 0) {
                work_dir = argv[2];
                return worker_main("/proc/self/exe");
        }
        if (argc > 1 && strcmp(argv[1], "job-exec") == 0)
                return job_exec_main(argc, argv);
        T_RUN(test_kill_9_mid_step);
        T_RUN(test_kill_9_mid_step_exec);
        T_RUN(test_job_process_crash);
        return t_done();
}
