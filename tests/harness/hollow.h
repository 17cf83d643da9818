/*
 * hollow.h - hollow nodes for control-plane tests and benchmarks: Node
 * objects created through the API whose heartbeats a thread renews, and a
 * hollow kubelet in another thread that marks the pods bound to them
 * Running and Ready with a 127.x address (unless the pod carries the
 * annotation "hollow.slipway.dev/never-ready") and confirms graceful
 * deletions. A running pod annotated "hollow.slipway.dev/exit-code: N"
 * finishes on the next pass: Succeeded for 0, Failed otherwise (its
 * container terminated with that code), which is how Job tests complete
 * or fail pods. Heartbeats renew each node's Lease in kube-node-lease
 * every half second and the Ready condition every ten seconds, as a kubelet
 * does once it has a lease. Everything goes through the real API server
 * over HTTP.
 *
 * Ownership: struct t_hollow is the caller's; t_hollow_stop() joins the
 * thread and frees it. Threads: the `observe` callback runs on the
 * hollow thread after each pass with the list of pods it saw.
 */
#ifndef SW_TEST_HOLLOW_H
#define SW_TEST_HOLLOW_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define T_HOLLOW_MAX 8

struct t_hollow {
        char *kubeconfig;
        char names[T_HOLLOW_MAX][32];
        atomic_bool dead[T_HOLLOW_MAX]; /* a dead node neither heartbeats nor runs pods */
        int n;
        atomic_bool stop;
        pthread_t th, hb_th; /* the hollow kubelet, the heartbeats */
        bool running, hb_running;
        unsigned ipseq;
        void (*observe)(void *arg, const json_t *pods);
        void *observe_arg;
};

/* Create `n` nodes "<prefix>1".."<prefix>n" (cpu, memory, 110 pods) and start the thread. */
bool t_hollow_start(struct t_hollow *h, const char *kubeconfig, const char *prefix, int n,
                    const char *cpu, const char *memory);
struct t_orch;
struct orch_ctrl;
struct orch_ctrl_options;
/*
 * The controller tests' cluster: an API server (t_orch_start with `name`),
 * `n` hollow nodes `prefix`-0.. of `cpu`/`memory` each, and the controllers
 * in this process with `co`, whose kubeconfig is filled in. False (with the
 * reason on stderr) when a part did not start.
 */
bool t_cluster_start(struct t_orch *srv, const char *name, struct t_hollow *h, const char *prefix,
                     int n, const char *cpu, const char *memory, struct orch_ctrl_options *co,
                     struct orch_ctrl **ctrl);
/* Stop what t_cluster_start() started: the controllers (*ctrl NULL after), the nodes, the server. */
void t_cluster_stop(struct t_orch *srv, struct t_hollow *h, struct orch_ctrl **ctrl);
/* Stop heartbeating node `i` (0-based) and running its pods. */
void t_hollow_kill(struct t_hollow *h, int i);
void t_hollow_stop(struct t_hollow *h);

/* "2026-11-27T00:00:00Z" for now. */
void t_hollow_now(char *out, size_t n);

#endif /* SW_TEST_HOLLOW_H */
