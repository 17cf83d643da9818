/*
 * launcher.c - the `slipway` command users run.
 *
 * slipway is three executables in one directory: this launcher, which
 * links only libc; `slipway-worker`, the queue worker (SQLite and jansson);
 * and `slipway-core`, every other subcommand with all the libraries they
 * use (libgit2, libcurl, libarchive, OpenSSL, libmicrohttpd and the fifty
 * libraries those pull in). Mapping and relocating those costs about 30 ms
 * and 12 MB on this kind of machine, which a worker waiting for jobs should
 * not pay: `slipway worker` goes straight to `slipway-worker`, everything
 * else to `slipway-core`, by exec, with the arguments unchanged.
 * `slipway __rt-supervise ...` is internal: a container's supervisor
 * (steps/rt_supervise.h), spawned by a node agent without copying its
 * address space.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "steps/rt_supervise.h"
#include "common/banned.h"

int main(int argc, char **argv)
{
        char path[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
        const char *target =
                argc > 1 && strcmp(argv[1], "worker") == 0 ? "slipway-worker" : "slipway-core";
        char *slash;

        if (argc > 1 && strcmp(argv[1], STEP_RT_SUPERVISE_CMD) == 0)
                return step_rt_supervise_main(argc, argv);
        if (n <= 0) {
                fprintf(stderr, "slipway: cannot find its own executable: %s\n", strerror(errno));
                return 127;
        }
        path[n] = '\0';
        slash = strrchr(path, '/');
        if (!slash || (size_t)(slash + 1 - path) + strlen(target) + 1 > sizeof(path)) {
                fprintf(stderr, "slipway: unusable executable path '%s'\n", path);
                return 127;
        }
        memcpy(slash + 1, target, strlen(target) + 1);
        if (strcmp(target, "slipway-worker") == 0) {
                /* slipway-worker takes the worker's options directly. */
                argv[1] = argv[0];
                execv(path, argv + 1);
        } else {
                execv(path, argv);
        }
        fprintf(stderr, "slipway: cannot run %s: %s\n", path, strerror(errno));
        return 127;
}
