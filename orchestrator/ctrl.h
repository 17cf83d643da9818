/*
 * ctrl.h - the control plane of the included orchestrator: controllers
 * (ReplicaSet, Deployment, Endpoints, node lifecycle, garbage collector,
 * Job, CronJob)
 * and the scheduler,
 * all talking to an API server through orchestrator/client: over HTTP,
 * or by function calls when the API server runs in the same process.
 *
 * Ownership: orch_ctrl_start() returns a running control plane owned by
 * the caller; orch_ctrl_stop() (accepts NULL) stops its threads and frees
 * it. Strings in the options are copied.
 * Threads: start and stop from one thread. Inside, each informer and each
 * controller runs its own thread with its own API client.
 */
#ifndef SW_ORCH_CTRL_H
#define SW_ORCH_CTRL_H

#include <stdint.h>

#include "common/err.h"

struct sw_config;
struct orch_ctrl;
struct orch_kube_local;

struct orch_ctrl_options {
        const char *kubeconfig; /* path of the kubeconfig to reach the API server */
        int64_t node_grace_ms;  /* heartbeat age that makes a node NotReady; 0: 40000 */
        int64_t eviction_ms;    /* unreachable pods without toleration go after this; 0: at once */
        int64_t sched_backoff_max_ms; /* cap of an unschedulable pod's retry; 0: 10000 */
        unsigned controllers;         /* ORCH_CTRL_* bits; 0 means all */
        int64_t job_backoff_ms;  /* first delay before a failed Job pod is replaced; 0: 10000 */
        int64_t cron_time_scale; /* tests: the CronJob clock runs this many times faster; 0: 1 */
        /* The API server in this process (orch_api_local), used instead of the kubeconfig. */
        const struct orch_kube_local *local;
};
#define ORCH_CTRL_OPTIONS_INIT                                                                     \
        {                                                                                          \
                NULL, 0, 0, 0, 0, 0, 0, NULL                                                       \
        }

#define ORCH_CTRL_REPLICASET 0x01u
#define ORCH_CTRL_DEPLOYMENT 0x02u
#define ORCH_CTRL_ENDPOINTS 0x04u
#define ORCH_CTRL_SCHEDULER 0x08u
#define ORCH_CTRL_NODELIFECYCLE 0x10u
#define ORCH_CTRL_GC 0x20u
#define ORCH_CTRL_JOB 0x40u
#define ORCH_CTRL_CRONJOB 0x80u

/*
 * Load the kubeconfig (unless `local` is given), list every watched kind,
 * then run the controllers.
 * Returns 0, or SW_EINVAL/SW_ENOTFOUND for a bad kubeconfig and
 * SW_EUNAVAIL when the API server does not answer the first lists.
 */
int orch_ctrl_start(struct orch_ctrl **out, const struct orch_ctrl_options *opts,
                    struct sw_err *err);
void orch_ctrl_stop(struct orch_ctrl *c);

/* `slipway controller-manager --kubeconfig FILE`: run until SIGTERM/SIGINT. */
int orch_ctrl_cmd(int argc, char **argv, const struct sw_config *cfg);

#endif /* SW_ORCH_CTRL_H */
