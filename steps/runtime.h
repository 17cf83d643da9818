/*
 * runtime.h - run one process in a root filesystem under runc.
 *
 * Untrusted work (a Dockerfile's RUN, later a pod's container) never runs
 * in slipway's own process: it runs under the OCI runtime (SLIPWAY_RUNTIME,
 * default runc) in its own pid, mount, ipc, uts and network namespaces. The
 * network namespace has only a loopback interface. /proc, /dev (with pts,
 * shm and mqueue) and a read-only /sys are mounted; extra bind mounts carry
 * build caches and secret files, which therefore never land in the rootfs.
 * Output is streamed to a callback as it comes.
 *
 * Threads: any thread; each call is independent. `id` must be unique among
 * running containers of the same state directory.
 */
#ifndef SW_STEPS_RUNTIME_H
#define SW_STEPS_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct step_rt_mount {
        const char *source;      /* a host path */
        const char *destination; /* inside the container */
        bool readonly;
};

struct step_rt_process {
        const char *runtime;     /* path or name of runc; NULL: "runc" */
        const char *state_dir;   /* runc --root; NULL: a default under /run */
        const char *bundle_dir;  /* where config.json is written (an empty directory) */
        const char *rootfs;      /* absolute path */
        const char *id;          /* container id: [A-Za-z0-9_.-], at most 64 */
        const char *const *args; /* argv; args[0] is looked up by the process in PATH */
        const char *const *env;  /* "NAME=value" entries */
        const char *cwd;         /* absolute; NULL: "/" */
        uint32_t uid, gid;
        const uint32_t *groups; /* additional gids */
        size_t ngroups;
        const char *hostname; /* NULL: "slipway" */
        const struct step_rt_mount *mounts;
        size_t nmounts;
        bool readonly_rootfs;
        int64_t timeout_ms; /* 0: none */
        atomic_int *stop;   /* non-zero: kill the process (cancel) */
        /* Called with output as it comes (stdout and stderr together); may be NULL. */
        void (*output)(void *arg, const char *data, size_t len);
        void *output_arg;
};

/*
 * Run the process to its end. *exit_code gets its exit status (128+signal
 * when killed). Returns 0 whatever the exit status; SW_ECANCELED when
 * stopped, SW_ETIMEDOUT past the timeout, another code when the runtime
 * itself failed (its message in err).
 */
int step_rt_run(int *exit_code, const struct step_rt_process *p, struct sw_err *err);

#endif /* SW_STEPS_RUNTIME_H */
