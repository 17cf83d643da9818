/*
 * proc.h - child processes for tests: spawn with extra environment, wait
 * with a timeout, capture output, kill by PID.
 */
#ifndef SW_TEST_PROC_H
#define SW_TEST_PROC_H

#include <sys/types.h>

/*
 * Start argv[0] (a path) with the current environment plus `extra_env`
 * ("NAME=value", NULL-terminated, may be NULL). stdout/stderr go to
 * `out_path` when not NULL (appended), else to /dev/null. Returns the pid or -1.
 */
pid_t tp_spawn(char *const argv[], const char *const *extra_env, const char *out_path);
/* Wait for `pid` up to timeout_ms; returns the exit status (or 128+signal), -1 on timeout. */
int tp_wait(pid_t pid, int timeout_ms);
/* SIGKILL and reap. */
void tp_kill(pid_t pid);
/*
 * Run to completion (up to timeout_ms) and capture stdout+stderr into
 * *out (malloc'ed, NUL-terminated). Returns the exit status, -1 on timeout.
 */
int tp_run(char **out, char *const argv[], const char *const *extra_env, int timeout_ms);
/* The slipway binary under test (SW_TEST_SLIPWAY). */
const char *tp_slipway(void);
/* A free TCP port on 127.0.0.1. */
int tp_free_port(void);

#endif
