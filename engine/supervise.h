/*
 * supervise.h - run helper servers as children: start, health, restart, stop.
 *
 * `slipway serve` keeps the real parts of the one-machine setup running
 * (docker-registry, nginx, pdns_server): each is a child process with its
 * output in a log file under the data directory, a TCP address that tells
 * whether it is healthy, and a restart with exponential backoff (1 s up to
 * 30 s) whenever it dies. Stopping sends SIGTERM, then SIGKILL after a grace
 * period, and reaps every child: nothing is left behind.
 *
 * Ownership: eng_super_new() returns a supervisor owned by the caller;
 * eng_super_free() stops every part and frees it. Strings are copied.
 * Threads: add parts and start from one thread; the supervisor runs one
 * thread of its own; eng_super_status() may be called from any thread.
 */
#ifndef SW_ENGINE_SUPERVISE_H
#define SW_ENGINE_SUPERVISE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

struct eng_super;

struct eng_part_spec {
        const char *name;        /* "registry" */
        const char *const *argv; /* argv[0] is a path; NULL-terminated */
        const char *const *env;  /* extra "NAME=value" entries, or NULL */
        const char *log_path;    /* stdout and stderr, appended */
        const char *health_addr; /* "127.0.0.1:5000": healthy when it accepts a connection */
        int64_t stop_grace_ms;   /* SIGTERM to SIGKILL; 0 means 5000 */
        int stop_signal;         /* 0 means SIGTERM (nginx wants SIGQUIT for a graceful stop) */
};

struct eng_part_status {
        char name[32];
        pid_t pid; /* 0 while not running */
        bool healthy;
        int restarts;
        char addr[64];
        char last_exit[64]; /* "exit 1", "signal 9", "" */
};

int eng_super_new(struct eng_super **out, struct sw_err *err);
/* Start a part now; fails when its program cannot be started at all. */
int eng_super_add(struct eng_super *s, const struct eng_part_spec *spec, struct sw_err *err);
/* Wait until every part is healthy or timeout_ms passes (SW_ETIMEDOUT naming the parts). */
int eng_super_wait_healthy(struct eng_super *s, int64_t timeout_ms, struct sw_err *err);
/* A snapshot of up to `max` parts; returns how many. */
int eng_super_status(struct eng_super *s, struct eng_part_status *out, int max);
/* The pid of a part by name, 0 when not running. */
pid_t eng_super_pid(struct eng_super *s, const char *name);
/* Stop every part (reverse order of adding) and free the supervisor; accepts NULL. */
void eng_super_free(struct eng_super *s);

/* True when something accepts TCP connections at "host:port" within timeout_ms. */
bool eng_tcp_alive(const char *addr, int64_t timeout_ms);

#endif /* SW_ENGINE_SUPERVISE_H */
