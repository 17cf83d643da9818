/*
 * orch.h - test helpers for the orchestrator's API server: start the real
 * `slipway kube-apiserver` on a free loopback port with a temporary data
 * directory, and run the real kubectl against it.
 *
 * Ownership: struct t_orch is the caller's; t_orch_stop() stops the server
 * by its PID and frees what t_orch_start() allocated.
 */
#ifndef SW_TEST_ORCH_H
#define SW_TEST_ORCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct t_orch {
        char *dir;        /* data directory (also HOME of the children) */
        char *kubeconfig; /* written by `slipway kubeconfig` */
        char *cache;      /* kubectl --cache-dir */
        int port;
        pid_t pid;
        /* Set before t_orch_start: SLIPWAY_SERVICE_CIDR of the server (NULL: its default). */
        const char *service_cidr;
};

/* A free TCP port on 127.0.0.1 (bound and released). */
int t_orch_free_port(void);

/* Start the server; false (with a message on stderr) when it did not come up. */
bool t_orch_start(struct t_orch *o, const char *name);
void t_orch_stop(struct t_orch *o);

/*
 * Run kubectl with the server's kubeconfig and `args` (NULL-terminated),
 * feeding `input` (may be NULL) on stdin. *out gets stdout and stderr
 * (stderr after stdout), owned by the caller. Returns the exit status.
 */
int t_kubectl(const struct t_orch *o, char **out, const char *input, const char *const *args);

/* Start kubectl in the background with its output going to `out_path`; returns its PID. */
pid_t t_kubectl_bg(const struct t_orch *o, const char *out_path, const char *const *args);

/* Wait up to `timeout_ms` for `pid` to exit (then SIGKILL); returns its exit status. */
int t_wait_pid(pid_t pid, int timeout_ms);

/*
 * Run kubectl `args` (NULL-terminated) every 200 ms until its output
 * contains `want` (true) or `timeout_ms` passes (false, with the last
 * output on stderr).
 */
bool t_kubectl_until(const struct t_orch *o, const char *want, int64_t timeout_ms,
                     const char *const *args);

#endif /* SW_TEST_ORCH_H */
