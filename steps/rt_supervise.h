/*
 * rt_supervise.h - the supervisor of a detached container (step_rt_start):
 * a process in its own session that runs the OCI runtime in the
 * foreground, appends the container's output to its log (each line
 * stamped with its time when asked) and, when the runtime ends, writes
 * its exit status to the exit file.
 *
 * It uses libc alone, so that the launcher (`slipway`, engine/launcher.c)
 * links it too: step_rt_start spawns `slipway __rt-supervise ...` without
 * copying the address space of a large, many-threaded caller (a node
 * agent), which costs tens of milliseconds per container on a
 * paravirtualised machine. Where there is no launcher beside the running
 * executable (test programs), the caller forks and calls
 * step_rt_supervise() instead.
 *
 * Threads: step_rt_supervise() runs in a freshly forked child and calls
 * only async-signal-safe functions.
 */
#ifndef SW_STEPS_RT_SUPERVISE_H
#define SW_STEPS_RT_SUPERVISE_H

#include <stdbool.h>

#define STEP_RT_SUPERVISE_CMD "__rt-supervise"

/*
 * Become the supervisor: run `args` (the runtime's argv, NULL-terminated)
 * with stdin on `nullfd` and its output on `logfd` (through a pipe and
 * stamped when `stamp`), then write its exit status (decimal, 128+signal
 * when killed) to `exit_tmp` and rename it to `exit_path`. Never returns.
 */
__attribute__((noreturn)) void step_rt_supervise(char *const *args, int logfd, int nullfd,
                                                 bool stamp, const char *exit_tmp,
                                                 const char *exit_path);

/*
 * The launcher's entry: argv is {prog, STEP_RT_SUPERVISE_CMD, "stamp" or
 * "plain", exit_tmp, exit_path, runtime argv...}, stdin /dev/null, stdout
 * the log. Forks the supervisor (in its own session) and returns 0 at
 * once, so the caller reaps this process and the supervisor is nobody's
 * child; 2 for bad arguments, 1 when the fork failed.
 */
int step_rt_supervise_main(int argc, char **argv);

#endif /* SW_STEPS_RT_SUPERVISE_H */
