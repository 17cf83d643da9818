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
        /* Detached containers (step_rt_start) and pods; all optional. */
        const char *netns_path;     /* join this network namespace instead of a new one */
        int64_t memory_limit_bytes; /* linux.resources.memory.limit; 0: none */
        int64_t cpu_quota_us;       /* CFS quota per 100 ms period; 0: none */
        bool no_new_privs;
        const char *cgroups_path; /* linux.cgroupsPath ("/slipway/<id>"); NULL: runc's default */
        bool keep; /* step_rt_start: keep the stopped container (and its cgroup) until deleted */
        bool host_network; /* share the caller's network namespace (hostNetwork pods) */
        /* step_rt_start: each output line starts with its UTC time, RFC 3339 with nanoseconds,
         * and a space ("2026-11-27T02:55:27.123456789Z "), as the kubelet's log files keep it. */
        bool log_timestamps;
};

/*
 * Run the process to its end. *exit_code gets its exit status (128+signal
 * when killed). Returns 0 whatever the exit status; SW_ECANCELED when
 * stopped, SW_ETIMEDOUT past the timeout, another code when the runtime
 * itself failed (its message in err).
 */
int step_rt_run(int *exit_code, const struct step_rt_process *p, struct sw_err *err);

/*
 * Start the process as a long-running container that outlives the caller:
 * a small supervisor process (in its own session) runs `runtime run` in
 * the foreground with stdout and stderr appended to `log_path`, and when
 * the container ends writes its exit status (decimal, 128+signal when
 * killed) to `exit_path` (atomically, through a temporary name). The
 * caller finds the container with step_rt_state() and stops it with
 * step_rt_kill(); the runtime deletes it when its process ends. Neither
 * `stop`, `timeout_ms` nor `output` apply. Returns once the supervisor is
 * started; an early failure of the runtime shows as an exit status of 255
 * or 127 and its message in `bundle_dir`/runc.log.
 */
int step_rt_start(const struct step_rt_process *p, const char *log_path, const char *exit_path,
                  struct sw_err *err);

struct step_rt_state {
        char status[16]; /* "creating", "created", "running", "paused", "stopped" */
        int pid;
        int64_t created_ms; /* epoch ms, 0 when unknown */
};

/* `runtime state id`. SW_ENOTFOUND when no such container exists. */
int step_rt_state(struct step_rt_state *out, const char *runtime, const char *state_dir,
                  const char *id, struct sw_err *err);
/* Send `sig` to the container's processes (`all`: every process of it). */
int step_rt_kill(const char *runtime, const char *state_dir, const char *id, int sig, bool all,
                 struct sw_err *err);
/* `runtime delete --force id`; an absent container is no error. */
void step_rt_delete(const char *runtime, const char *state_dir, const char *id);

/*
 * Run `args` (NULL-terminated) inside the running container `id` and wait
 * up to timeout_ms (0: 1 s); *exit_code gets its status. SW_ETIMEDOUT
 * when it took longer (the runtime process is killed).
 */
int step_rt_exec(int *exit_code, const char *runtime, const char *state_dir, const char *id,
                 const char *const *args, int64_t timeout_ms, struct sw_err *err);

/* The last error the runtime logged in `bundle_dir`/runc.log, or NULL (caller frees). */
char *step_rt_log_error(const char *bundle_dir);

#endif /* SW_STEPS_RUNTIME_H */
