/*
 * worker.h - the `slipway worker` command, shared by the two executables
 * that can run it: `slipway-worker` (small: it supervises one child process
 * per job) and `slipway` itself (jobs on threads, the fallback).
 */
#ifndef SW_ENGINE_WORKER_H
#define SW_ENGINE_WORKER_H

#include <stddef.h>

struct eng_pipeline_def;
struct sw_config;

struct eng_worker_setup {
        /* In-process mode: the pipelines and the per-job library setup. */
        const struct eng_pipeline_def *pipelines;
        size_t npipelines;
        void (*before_job)(void);
        /* Exec mode: the `slipway` binary that runs each job (`job-exec`). */
        const char *exec_path;
};

/* Parse `worker`'s options, run the pool until SIGTERM/SIGINT (or drained), stop it. */
int eng_worker_main(int argc, char **argv, const struct sw_config *cfg,
                    const struct eng_worker_setup *ws);

/* `name` in the directory of the running executable (malloc'd), or NULL. */
char *eng_worker_sibling(const char *name);

#endif /* SW_ENGINE_WORKER_H */
