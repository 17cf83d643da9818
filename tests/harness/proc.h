/*
 * proc.h - test helpers for real servers: free loopback ports, child
 * processes started with their output in a log file and stopped by PID,
 * and waiting until an HTTP endpoint answers.
 */
#ifndef SW_TEST_PROC_H
#define SW_TEST_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* A TCP port on 127.0.0.1 that was free a moment ago; -1 on failure. */
int t_free_port(void);

/* Start argv[0] (a path) with stdout and stderr appended to `log_path`; returns the pid or -1. */
pid_t t_spawn(char *const argv[], const char *log_path);
/* t_spawn with the environment `envp` (NULL: inherit). */
pid_t t_spawn_env(char *const argv[], char *const envp[], const char *log_path);

/* SIGTERM, wait up to 5 s, then SIGKILL; reaps the child. Accepts pid <= 0. */
void t_stop(pid_t pid);
/* SIGKILL and reap at once (a crash, for fault tests). */
void t_kill(pid_t pid);

/* Poll `url` until it answers any HTTP status (true) or `timeout_ms` passes (false). */
bool t_wait_http(const char *url, int64_t timeout_ms);

/* Run a command (argv[0] a path) to completion; returns its exit status or -1. Output to log. */
int t_run_cmd(char *const argv[], const char *log_path);

/*
 * Run a command (argv[0] a path) with stdout and stderr captured into *out
 * (malloc'ed, NUL-terminated, may be NULL); returns its exit status or -1.
 */
int t_capture(char **out, char *const argv[]);
/* t_capture with the environment `envp` instead of the test's own. */
int t_capture_env(char **out, char *const argv[], char *const envp[]);

/*
 * Start argv[0] (a path) with the test's environment plus `extra_env`
 * ("NAME=value", NULL-terminated, may be NULL), in its own process group;
 * stdout and stderr appended to `log_path` (NULL: /dev/null). Returns the pid or -1.
 */
pid_t t_spawn_extra(char *const argv[], const char *const *extra_env, const char *log_path);
/* Wait for `pid` up to timeout_ms: its exit status (128+signal when killed), -1 on timeout. */
int t_wait(pid_t pid, int timeout_ms);
/*
 * Run argv (plus `extra_env`) to completion within timeout_ms, capturing
 * stdout and stderr into *out (malloc'ed). Returns the exit status; -1 on
 * timeout (the child is killed).
 */
int t_run_capture(char **out, char *const argv[], const char *const *extra_env, int timeout_ms);
/* The slipway binary under test ($SW_TEST_SLIPWAY, else the build's). */
const char *t_slipway(void);

#endif /* SW_TEST_PROC_H */
