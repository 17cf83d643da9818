/*
 * worker.c - `slipway worker`: a pool of workers until a stop signal (see
 * worker.h and pool.h).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/config.h"
#include "common/log.h"
#include "common/mem.h"
#include "engine/cli.h"
#include "engine/engine_int.h"
#include "engine/pool.h"
#include "engine/queue.h"
#include "engine/worker.h"
#include "common/banned.h"

char *eng_worker_sibling(const char *name)
{
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        char *slash;

        if (n <= 0)
                return NULL;
        self[n] = '\0';
        slash = strrchr(self, '/');
        if (!slash)
                return NULL;
        *slash = '\0';
        return sw_xasprintf("%s/%s", self, name);
}

int eng_worker_main(int argc, char **argv, const struct sw_config *cfg,
                    const struct eng_worker_setup *ws)
{
        static const struct option opts[] = {
                {"workers", required_argument, NULL, 'w'},
                {"drain", no_argument, NULL, 'd'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct eng_pool_options po = ENG_POOL_OPTIONS_INIT;
        struct eng_pool *pool = NULL;
        struct eng_queue *q = NULL;
        struct sw_err err = SW_ERR_INIT;
        bool drain = false;
        int64_t workers = 0;
        sigset_t set;
        int c, sig = 0;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'h':
                        printf("usage: slipway worker [--workers N] [--drain]\n\n"
                               "Run queue workers: claim jobs and run their pipelines until\n"
                               "SIGTERM or SIGINT. On a signal, running steps get\n"
                               "SLIPWAY_SHUTDOWN_GRACE_MS to finish; the jobs still running then\n"
                               "are released for another worker to resume.\n\n"
                               "Each job runs in a process of its own (`slipway job-exec`), so\n"
                               "a crash fails one attempt of one job, and the idle worker stays\n"
                               "small; SLIPWAY_WORKERS jobs run at once.\n\n"
                               "  --workers N  worker threads (default: SLIPWAY_WORKERS)\n"
                               "  --drain      exit once no job is queued or running\n");
                        return 0;
                case 'w':
                        if (sw_cli_parse_i64(&workers, optarg, 1, 256) != 0)
                                return sw_cli_usage_error("worker", "--workers: '%s' is not 1-256",
                                                          optarg);
                        break;
                case 'd':
                        drain = true;
                        break;
                default:
                        return sw_cli_usage_error("worker", "unknown option");
                }
        }
        /* Block the stop signals in every thread; this one waits for them. */
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);

        po.cfg = cfg;
        po.workers = (int)workers;
        po.pipelines = ws->pipelines;
        po.npipelines = ws->npipelines;
        po.before_job = ws->before_job;
        po.exec_path = ws->exec_path;
        if (eng_pool_start(&pool, &po, &err) != 0)
                return sw_cli_fail("worker", "%s", err.msg);
        sw_log(SW_LOG_INFO, "worker", "started", "{s:i,s:s,s:s}", "workers",
               (int)(workers ? workers : cfg->workers), "data", cfg->data, "jobs",
               ws->exec_path ? "process per job" : "threads");
        if (drain && eng__open_queue(&q, cfg, true, &err) != 0) {
                eng_pool_stop(pool, 0);
                return sw_cli_fail("worker", "%s", err.msg);
        }
        for (;;) {
                struct timespec tick = {0, 200 * 1000000};
                int64_t counts[5];

                sig = sigtimedwait(&set, NULL, &tick);
                if (sig > 0)
                        break;
                if (drain && eng_queue_counts(counts, q, &err) == 0 &&
                    counts[ENG_JOB_QUEUED] == 0 && counts[ENG_JOB_RUNNING] == 0)
                        break;
        }
        sw_log(SW_LOG_INFO, "worker", "stopping", "{s:s,s:I}", "reason",
               sig > 0 ? (sig == SIGTERM ? "SIGTERM" : "SIGINT") : "drained", "grace_ms",
               (json_int_t)cfg->shutdown_grace_ms);
        eng_pool_stop(pool, cfg->shutdown_grace_ms);
        eng_queue_close(q);
        sw_log(SW_LOG_INFO, "worker", "stopped", NULL);
        return 0;
}
