/*
 * agent_int.h - internals of the node agent shared by its files:
 * agent.c (node, heartbeat, the reconcile loop), agent_pod.c (one pod's
 * containers and status), agent_image.c (content store), agent_pull.c
 * (pull workers), agent_gc.c (image garbage collection), agent_logs.c
 * (log endpoint and rotation), agent_net.c (pod network namespaces, port
 * forwarders, the splice relay), agent_volume.c (volumes and Events),
 * agent_cleanup.c (sandbox removal workers) and agent_proxy.c (the
 * service proxy and the pods' /etc/hosts).
 *
 * Threads: the pod table and every struct agent_pod belong to the
 * reconcile thread alone; the watch thread hands events over in
 * orch_agent.events under orch_agent.mu; forwarders run threads of their
 * own that touch only their struct agent_fwd; pull workers share only
 * struct agent_pulls (its own mutex) and wake the loop through
 * orch_agent.mu; cleanup workers get self-contained jobs (their own
 * mutex); the service proxy runs its own threads and locks (see
 * agent_proxy.c), called from the reconcile thread.
 */
#ifndef SW_ORCH_AGENT_INT_H
#define SW_ORCH_AGENT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/digest.h"
#include "common/err.h"
#include "orchestrator/agent.h"

struct orch_kube;
struct MHD_Daemon;

#define AGENT_PORTS_ANNOTATION "slipway.dev/ports"

/* One container of a pod, as the agent sees it. */
struct agent_ctr {
        char *name;
        char *image;
        bool init;       /* an init container (spec.initContainers[spec_idx]) */
        size_t spec_idx; /* index in its spec list */
        char id[96];     /* runc container id: "<pod uid>-<index>" */
        char *dir;       /* bundle dir: config.json, rootfs, upper, work, log, exit */
        bool mounted;    /* the overlay rootfs is mounted */
        bool running;    /* the runtime reports it running (or it is starting) */
        bool ever_ran;   /* started at least once */
        int pid;
        char started_at[32]; /* RFC 3339 time of the current/last start */
        int64_t start_mono;  /* when we launched it (monotonic), for the start timeout */
        int restart_count;
        int64_t next_start_mono; /* back-off: no start before this (monotonic ms) */
        json_t *last_term;       /* lastState.terminated, or NULL */
        json_t *term;            /* state.terminated when it will not be restarted, or NULL */
        char waiting_reason[32]; /* "" when running or terminated */
        char *waiting_msg;
        int pull_failures;
        bool pull_pending; /* a pull of its image was asked of the workers */
        char image_id[SW_DIGEST_STR_LEN];
        bool ready;
        bool post_start_done; /* the postStart hook ran for this instance */
        int stop_sig;         /* the image's STOPSIGNAL; 0: SIGTERM */
        int probe_failures;   /* consecutive readiness failures */
        int64_t next_probe_mono;
        int live_failures;         /* consecutive liveness failures */
        int64_t next_live_mono;    /* next liveness probe */
        bool started;              /* the startupProbe succeeded (or there is none) */
        int startup_failures;      /* consecutive startupProbe failures */
        int64_t next_startup_mono; /* next startup probe */
};

struct agent_fwd;

struct agent_pod {
        char *uid, *ns, *name;
        char *dir;         /* <root>/pods/<uid> */
        char *netns_path;  /* <dir>/netns, a bind mount of the pod's network namespace */
        bool sandbox;      /* netns and files exist */
        bool host_network; /* spec.hostNetwork: no namespace of its own, nothing forwarded */
        uint32_t ip;       /* pod IP (host byte order) from the node's CIDR; 0: none yet */
        struct agent_ctr *ctrs;
        size_t nctrs;
        struct agent_fwd **fwds;
        size_t nfwds;
        json_t *ports;        /* {"<containerPort>": hostPort} as published */
        bool ports_annotated; /* the annotation on the API object matches */
        bool terminating;
        int64_t kill_deadline_mono;
        bool killed;
        bool gone;         /* cleaned up; drop the record */
        char *status_sent; /* the last status written, to skip unchanged ones */
        char start_time[32];
        bool seen;            /* in the latest list */
        json_t *obj;          /* the latest API object known (list or watch), or NULL */
        int64_t rv;           /* its resourceVersion; -1 when not a number */
        bool dirty;           /* reconcile it at the next turn of the loop */
        bool start_blocked;   /* a container waits for a start slot (AGENT_MAX_STARTING) */
        int64_t created_mono; /* when this agent first knew the pod */
        struct agent_pod *next;
};

/*
 * Containers launched and not seen running yet, at most: runc is started
 * detached (step_rt_start), so this many runtimes overlap their start-up
 * (three starts of a Go program, namespaces, mounts, cgroups: partly
 * waiting on the kernel, not only on the CPU) while the reconcile thread
 * goes on. 100 pods at once on 2 busy cores: 8 took 12-13 s, 16 9.5-13 s.
 */
#define AGENT_MAX_STARTING 16

struct orch_agent {
        struct orch_agent_options o;
        char *kubeconfig, *node_name, *data_dir, *cpu, *memory;
        char *root;      /* <data_dir>/node/<name> */
        char *runc_root; /* runc --root */
        const char *runtime;
        struct orch_kube *kube;  /* the reconcile thread's client */
        struct orch_kube *wkube; /* the watch thread's client */
        pthread_t loop_thread, watch_thread;
        bool threads_started;
        atomic_bool stop;
        pthread_mutex_t mu; /* guards dirty, pulled, resync and events */
        pthread_cond_t cond;
        bool dirty;             /* something for the loop: wake up */
        bool pulled;            /* a pull finished: pods waiting for one are reconciled */
        bool resync;            /* the watch lost its place: list everything again */
        json_t *events;         /* uid -> {"type", "object"}: the latest watch event of each pod */
        struct agent_pod *pods; /* in the order they came (reconcile thread) */
        int starting;           /* containers launched and not seen running yet */
        int64_t last_heartbeat_mono;
        bool lease_ok;
        json_t *images;                /* image reference -> manifest digest pulled by this agent */
        struct agent_pulls *pulls;     /* image pull workers (agent_pull.c), made on first use */
        struct agent_cleanup *cleanup; /* sandbox removal workers (agent_cleanup.c) */
        json_t *image_used;      /* image reference -> epoch ms a container last started from it */
        int64_t next_gc_mono;    /* next image garbage collection check */
        struct MHD_Daemon *logd; /* the container log endpoint */
        struct agent_proxy *proxy;
        uint32_t pod_net; /* this node's pod CIDR, a /24 (host byte order) */
        unsigned ip_next; /* where the search for a free pod IP starts (last octet) */
        int log_port;
};

/* ---- agent.c ---- */
void agent_log_err(struct orch_agent *a, const char *what, const struct agent_pod *p,
                   const struct sw_err *err);
/* "2026-11-27T00:50:01Z" */
void agent_time_fmt(char *out, size_t size, int64_t epoch_ms);

/* ---- agent_pod.c ---- */
/* Reconcile one pod bound to this node (`obj` the API object). */
void agent_pod_reconcile(struct orch_agent *a, struct agent_pod *p, const json_t *obj);
/*
 * Look at what the pod waits for, without reconciling it: a container
 * launched and not seen running yet (counted in a->starting), or the exit
 * of a terminating pod's containers. True when one of them happened, so
 * the pod needs a reconcile now; *watch_out set when it still waits.
 */
bool agent_pod_poll(struct orch_agent *a, struct agent_pod *p, bool *watch_out);
/* Does a container of the pod wait for an image pull? */
bool agent_pod_pulling(const struct agent_pod *p);
/* The pod is gone from the API server: stop everything at once and clean up. */
void agent_pod_destroy(struct orch_agent *a, struct agent_pod *p);
/* A record for `obj`, or for a pod dir found on disk (`obj` NULL, then uid/ns/name given). */
struct agent_pod *agent_pod_new(struct orch_agent *a, const char *uid, const char *ns,
                                const char *name);
void agent_pod_free(struct agent_pod *p);

/*
 * The data of a ConfigMap or Secret (`kind` "configmaps" or "secrets") as an
 * object of strings, Secret values decoded; an absent `optional` one gives {}.
 */
int agent_pod_fetch_data(json_t **out, struct orch_agent *a, const char *ns, const char *kind,
                         const char *name, bool optional, struct sw_err *err);

/* ---- agent_volume.c ---- */
/*
 * Make volume `vol` (an entry of spec.volumes) of the pod ready to mount:
 * *path_out (caller frees) the host path to bind, *ro_out true when the
 * volume is read-only whatever the mount says (configMap, secret,
 * downwardAPI, projected). Idempotent; SW_EINVAL for unsupported or bad
 * volumes, SW_ENOTFOUND for a missing object, key or hostPath.
 */
int agent_volume_prepare(char **path_out, bool *ro_out, struct orch_agent *a,
                         const struct agent_pod *p, const json_t *obj, const json_t *vol,
                         struct sw_err *err);
/* Post an Event (type "Normal"/"Warning") about the pod; failures are only logged. */
void agent_event(struct orch_agent *a, const struct agent_pod *p, const char *type,
                 const char *reason, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- agent_cleanup.c ---- */
struct agent_cleanup;
/* Start the cleanup workers of a node whose runtime keeps its state under `runc_root`. */
int agent_cleanup_new(struct agent_cleanup **out, const char *runtime, const char *runc_root,
                      struct sw_err *err);
/* Stop the workers (a running job ends first; queued ones are dropped). Accepts NULL. */
void agent_cleanup_free(struct agent_cleanup *cl);
/*
 * Queue the removal of the pod's sandbox (a copy of what it needs): with
 * `kill`, its containers still running are killed and waited for first;
 * then runc delete, unmounts, the network namespace and the directory.
 */
void agent_cleanup_add(struct agent_cleanup *cl, const struct agent_pod *p, bool kill);
/*
 * While `hold` (containers are starting), queued jobs wait, up to 15 s
 * each, before their runc delete and unmounts: containers to kill are
 * killed when queued (through a pidfd), the rest can wait for the CPU.
 */
void agent_cleanup_hold(struct agent_cleanup *cl, bool hold);
/* Is `runtime` runc (by its file name)? */
bool agent_rt_is_runc(const char *runtime);
/*
 * May the runtime hold container `id` (created and not deleted)? runc
 * keeps a directory per container under its --root, whose absence spares
 * a `runc state` or `runc delete` (each a Go program's start); other
 * runtimes are always asked.
 */
bool agent_rt_may_have(const char *runtime, const char *runc_root, const char *id);

/* ---- agent_image.c ---- */
struct agent_image {
        char digest[SW_DIGEST_STR_LEN]; /* manifest digest */
        json_t *config;                 /* the image config's "config" object (may be empty) */
        char **lowers;                  /* unpacked layer dirs, top layer first */
        size_t nlowers;
        size_t cap; /* entries allocated in lowers */
};
/*
 * The stored image `image` with its layers unpacked (once per digest).
 * SW_ENOTFOUND when the store does not hold it (pull it first through
 * agent_pulls_poll). Reconcile thread only.
 */
int agent_image_ensure(struct agent_image *out, struct orch_agent *a, const char *image,
                       struct sw_err *err);
void agent_image_release(struct agent_image *img);

/* ---- agent_pull.c ---- */
struct agent_pulls;
/* Start the pull workers of agent `a` (the caller keeps one reference). */
int agent_pulls_new(struct agent_pulls **out, struct orch_agent *a, struct sw_err *err);
/* Let go: queued pulls are dropped; a running one ends on its worker. Accepts NULL. */
void agent_pulls_free(struct agent_pulls *q);
/*
 * Ask for `image` to be pulled into the store, or collect the result of
 * the pull asked for before. Returns 1 while the pull is queued or running
 * (the first call queues it and takes *auth, a private Docker config file
 * of the pod's pull secrets, or NULL, setting *auth NULL), 0 once pulled
 * (digest_out gets the manifest digest), or the pull's error with the
 * registry's message. A finished pull wakes the reconcile loop.
 */
int agent_pulls_poll(char digest_out[SW_DIGEST_STR_LEN], struct agent_pulls *q, const char *image,
                     char **auth, struct sw_err *err);
/* Hold (true) or release the store lock that pulls take to publish into <root>/images. */
void agent_pulls_lock(struct agent_pulls *q, bool lock);

/* ---- agent_gc.c ---- */
/* A container starts from `image`: it is the most recently used one. */
void agent_gc_touch(struct orch_agent *a, const char *image);
/* Remove unused images when the store's disk is above the high threshold (reconcile thread). */
void agent_gc_run(struct orch_agent *a);

/* ---- agent_logs.c ---- */
/* Serve GET /containerLogs/NS/POD/CTR on 127.0.0.1 (a->log_port gets the port). */
int agent_logs_start(struct orch_agent *a, struct sw_err *err);
void agent_logs_stop(struct orch_agent *a);
/* Rotate the log file `path` when it reached SLIPWAY_POD_LOG_MAX (reconcile thread). */
void agent_logs_rotate(const struct orch_agent *a, const char *path);
/* A container restarts: its log files become those of the previous instance. */
void agent_logs_retire(const struct orch_agent *a, const char *path, const char *prev);

/* ---- agent_net.c ---- */
/* Create a network namespace with `lo` up, bind-mounted at `path` (idempotent). */
int agent_netns_create(const char *path, struct sw_err *err);
/* Unmount and remove it; absent is fine. */
void agent_netns_remove(const char *path);
/* A TCP connection to 127.0.0.1:port inside the namespace (NULL: the host's); fd or -1. */
int agent_netns_connect(const char *netns_path, int port, int timeout_ms);
/*
 * Connect to ip:port (host byte order) from inside the namespace, entering
 * it with the CALLING thread, which stays there (NULL: the current one):
 * only for threads that end with the connection. fd, or -1 with errno.
 */
int agent_netns_connect_here(const char *netns_path, uint32_t ip, int port, int timeout_ms);
/* A TCP socket listening on ip:port inside the namespace (NULL: the host's); fd or -1/errno. */
int agent_netns_listen(const char *netns_path, uint32_t ip, int port, bool reuseport);
/* Relay bytes both ways with splice(2) until both directions have ended; closes nothing. */
void agent_relay(int a, int b);
/* "10.1.0.0/16" -> network (host byte order) and prefix length 8..32; SW_EINVAL otherwise. */
int agent_cidr_parse(uint32_t *net, int *prefix, const char *cidr, struct sw_err *err);
/* Dotted quad of a host-byte-order address. */
void agent_ip_fmt(char out[16], uint32_t ip);
/* Parse a dotted quad into host byte order; 0 or -1. */
int agent_ip_parse(uint32_t *out, const char *s);
/*
 * Publish bind_ip:host_port (host byte order; port 0: any free port) on
 * the host, forwarding every connection to 127.0.0.1:ctr_port inside the
 * namespace.
 */
int agent_fwd_start(struct agent_fwd **out, const char *netns_path, uint32_t bind_ip, int host_port,
                    int ctr_port, struct sw_err *err);
int agent_fwd_host_port(const struct agent_fwd *f);
int agent_fwd_ctr_port(const struct agent_fwd *f);
void agent_fwd_stop(struct agent_fwd *f);

/* ---- agent_proxy.c ---- */
struct agent_proxy;
/*
 * Start the service proxy of agent `a` (its kubeconfig): lists Services
 * and Endpoints once (a failure is logged, not fatal), then keeps its
 * listeners up to date from watches. Free with agent_proxy_stop().
 */
int agent_proxy_start(struct agent_proxy **out, struct orch_agent *a, struct sw_err *err);
/* Stop the threads and close every listener; accepts NULL. Connections in flight finish. */
void agent_proxy_stop(struct agent_proxy *px);
/*
 * A pod of this node (idempotent per uid): writes its hosts file (in
 * place) with the Services' names and keeps it current; with a namespace
 * (`netns_path` not NULL) the ClusterIPs get listeners inside it before
 * this returns. `ip` is its pod IP (dotted quad).
 */
int agent_proxy_pod_add(struct agent_proxy *px, const char *uid, const char *ns, const char *name,
                        const char *netns_path, const char *hosts_path, const char *ip,
                        struct sw_err *err);
/* The pod is gone: close its listeners. Unknown uids are ignored. */
void agent_proxy_pod_remove(struct agent_proxy *px, const char *uid);
/*
 * "NAME=value" strings (a new JSON array) of the Services of namespace
 * `ns` known now: <SVC>_SERVICE_HOST, <SVC>_SERVICE_PORT[_<PORT>] and the
 * docker-link <SVC>_PORT... forms. `px` NULL gives an empty array.
 */
json_t *agent_proxy_env(struct agent_proxy *px, const char *ns);

#endif /* SW_ORCH_AGENT_INT_H */
