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
        snprintf(line, sizeof(line), "start %lld %d\n", (long long)id, (int)getpid());
        append_line("events", line);
        for (int i = 0; i < STEP_MS / 10; i++) {
                if (eng_step_cancelled(ctx)) {
                        close(fd);
                        return sw_err_set(err, SW_ECANCELED, "stopped");
                }
                sw_sleep_ms(10);
        }
        snprintf(line, sizeof(line), "done %lld %d\n", (long long)id, (int)getpid());
        append_line("events", line);
        close(fd);
        return 0;
}

static const struct eng_step_def def_work = {"work", "sleep and record", step_work};
static const struct eng_step_def *const work_steps[] = {&def_work};
static const struct eng_pipeline_def pipe_work = {"work", work_steps, 1};

/* Worker mode: the engine's pool until SIGTERM, like `slipway worker`. */
static int worker_main(void)
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
        po.pipelines = &pipe_work;
        po.npipelines = 1;
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
                        int pid;
                        if (sscanf(l, "%15s %lld %d", what, &id, &pid) != 3 || id < 1 || id > JOBS)
                                continue;
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

static void test_kill_9_mid_step(void)
{
        const char *dir = t_tmpdir();
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
                char *argv[] = {exe, "--worker", dir_arg, NULL};
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
        sw_sleep_ms(50);
        kill(victim, SIGKILL);
        t_wait(victim, 5000);

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

int main(int argc, char **argv)
{
        if (argc == 3 && strcmp(argv[1], "--worker") == 0) {
                work_dir = argv[2];
                return worker_main();
        }
        T_RUN(test_kill_9_mid_step);
        return t_done();
}
