/*
 * agent.h - the node agent: kubelet, container runtime shim and port
 * publisher of the included orchestrator, on runc.
 *
 * An agent registers its Node with the API server of a kubeconfig,
 * heartbeats (Ready condition every 10 s and a Lease in kube-node-lease),
 * watches the pods bound to it (fieldSelector spec.nodeName) and reconciles
 * each one to its spec: images pulled through the registry client into a
 * content store under `data_dir` (an OCI layout, layers unpacked once per
 * digest), one overlay rootfs and OCI bundle per container, started
 * detached under the OCI runtime; containers of a pod share one network
 * namespace with only `lo`. Networking stays on loopback: the node takes
 * a /24 of SLIPWAY_POD_CIDR (127.1.0.0/16) as its podCIDR and each pod an
 * IP from it (kept in the pod's directory across agent restarts); a
 * userspace forwarder (splice) publishes podIP:<containerPort> on the host
 * into the pod's namespace, so status.podIP and Endpoints hold
 * podIP:port as in Kubernetes. Each container port is also published on a
 * 127.0.0.1 host port, recorded in the annotation slipway.dev/ports
 * ({"<containerPort>": hostPort}). The agent's service proxy (kube-proxy's
 * job) listens on every Service's clusterIP:port on the host and inside
 * every pod's namespace (and on 127.0.0.1:<nodePort> for NodePort
 * Services) and balances connections over the ready endpoints; pods get
 * <SVC>_SERVICE_HOST/_PORT variables and /etc/hosts names svc, svc.ns and
 * svc.ns.svc.cluster.local.
 *
 * Container logs (stdout and stderr, one file per container) are served
 * on 127.0.0.1 at GET /containerLogs/<ns>/<pod>/<container> with
 * follow, tailLines, previous and limitBytes, the port being the Node's
 * status.daemonEndpoints.kubeletEndpoint.Port (the API server's pods/log
 * proxies there).
 *
 * Log files are rotated at SLIPWAY_POD_LOG_MAX, SLIPWAY_POD_LOG_FILES kept
 * (agent_logs.c). Images are pulled by worker threads, so a slow registry
 * holds up only the pods that wait for it (agent_pull.c), and unused ones
 * are garbage-collected when the store's disk passes SLIPWAY_IMAGE_GC_HIGH
 * percent (agent_gc.c). Volumes: emptyDir, configMap, secret, downwardAPI,
 * projected and hostPath (agent_volume.c).
 *
 * Containers outlive the agent: a restarted agent finds them again through
 * `runc state` and adopts them instead of restarting them.
 *
 * Ownership: orch_agent_start() returns an agent owned by the caller;
 * orch_agent_stop() (accepts NULL) stops its threads and frees it, leaving
 * the containers running. Option strings are copied.
 * Threads: start and stop from one thread; the agent runs its own threads.
 */
#ifndef SW_ORCH_AGENT_H
#define SW_ORCH_AGENT_H

#include <stdint.h>

#include "common/err.h"

struct sw_config;
struct orch_agent;

struct orch_agent_options {
        const char *kubeconfig;      /* path of the kubeconfig of the API server */
        const char *node_name;       /* RFC 1123 subdomain */
        const char *data_dir;        /* content store and pods: <data_dir>/node/<name> */
        const struct sw_config *cfg; /* runtime, registry settings; must outlive the agent */
        const char *cpu;             /* capacity; NULL: the machine's cores */
        const char *memory;          /* capacity; NULL: the machine's memory */
        int64_t max_pods;            /* 0 means 110 */
        int64_t backoff_base_ms;     /* first restart / image pull back-off; 0 means 10000 */
        int64_t backoff_max_ms;      /* 0 means 300000 */
        int64_t heartbeat_ms;        /* 0 means 10000 */
        int64_t log_port;            /* container log endpoint on 127.0.0.1; 0: any free port */
};
#define ORCH_AGENT_OPTIONS_INIT                                                                    \
        {                                                                                          \
                NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0                                  \
        }

/*
 * Register the Node and start reconciling. Returns 0, SW_EINVAL for bad
 * options, or the client's error when the API server cannot be reached.
 */
int orch_agent_start(struct orch_agent **out, const struct orch_agent_options *opts,
                     struct sw_err *err);
/* Stop the agent's threads and free it; pods and their containers keep running. */
void orch_agent_stop(struct orch_agent *a);

/* `slipway node --kubeconfig FILE --name N`: run an agent until SIGTERM/SIGINT. */
int orch_agent_cmd(int argc, char **argv, const struct sw_config *cfg);

#endif /* SW_ORCH_AGENT_H */
