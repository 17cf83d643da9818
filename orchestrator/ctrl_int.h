/*
 * ctrl_int.h - the controller framework shared by the controllers and the
 * scheduler: a de-duplicating key queue with per-key backoff, informers
 * (list + watch caches of one kind), the controller loop, Events.
 *
 * Threads: a queue and an informer own their mutex and may be used from
 * any thread. Objects handed out by an informer are the cached objects
 * themselves, shared between threads (jansson's reference counts are
 * atomic): they are immutable, a caller that wants to change one works
 * on a sw_json_copy(). A loop's API client (`kc`) belongs to the
 * loop's thread.
 */
#ifndef SW_ORCH_CTRL_INT_H
#define SW_ORCH_CTRL_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "orchestrator/ctrl.h"

struct orch_kube;

/* ---- queue -------------------------------------------------------------- */

struct orch_ctrl_qitem {
        char *key;
        int64_t due_ms; /* monotonic; when it may be handed out */
        int fails;      /* consecutive failures, for the backoff */
        bool queued;
};

struct orch_ctrl_queue {
        pthread_mutex_t mu;
        pthread_cond_t cv;
        struct orch_ctrl_qitem *items;
        size_t n, cap;
        json_t *idx; /* key -> index in items */
        bool closed;
};

void orch_ctrl_queue_init(struct orch_ctrl_queue *q);
void orch_ctrl_queue_release(struct orch_ctrl_queue *q);
/* Queue `key` at once (a key already queued is not added twice). */
void orch_ctrl_queue_add(struct orch_ctrl_queue *q, const char *key);
/* Queue `key` in `delay_ms` unless it is queued sooner. */
void orch_ctrl_queue_add_after(struct orch_ctrl_queue *q, const char *key, int64_t delay_ms);
/*
 * The next due key (malloc'ed) or NULL after `timeout_ms` or when closed.
 * The key leaves the queue; adding it again while it is processed queues
 * it again.
 */
char *orch_ctrl_queue_get(struct orch_ctrl_queue *q, int64_t timeout_ms);
/*
 * Every due key (at most `max`) appended to `out` as strings, waiting up
 * to timeout_ms for the first; returns how many. One pass over the queue,
 * where draining it with orch_ctrl_queue_get() costs one pass per key.
 */
size_t orch_ctrl_queue_take(struct orch_ctrl_queue *q, json_t *out, size_t max, int64_t timeout_ms);
/* After processing: `failed` requeues with exponential backoff (5 ms .. max_ms). */
void orch_ctrl_queue_done(struct orch_ctrl_queue *q, const char *key, bool failed, int64_t max_ms);
void orch_ctrl_queue_close(struct orch_ctrl_queue *q);
size_t orch_ctrl_queue_len(struct orch_ctrl_queue *q);

/* ---- informer ------------------------------------------------------------ */

/* Called from the informer's thread for each change; `old` may be NULL. */
typedef void (*orch_ctrl_handler_fn)(void *arg, const char *type, const json_t *obj,
                                     const json_t *old);

#define ORCH_INFORMER_HANDLERS 8

struct orch_informer {
        char *path; /* collection path, "/api/v1/pods" */
        pthread_mutex_t mu;
        json_t *cache;    /* "ns/name" -> object */
        json_t *by_owner; /* controller owner uid -> {"ns/name" -> object} */
        char *rv;
        bool synced;
        struct {
                orch_ctrl_handler_fn fn;
                void *arg;
        } handlers[ORCH_INFORMER_HANDLERS];
        int nhandlers;
        struct orch_kube *kc;
        atomic_bool *stop;
        pthread_t th;
        bool running;
};

/* The cache key of an object: "ns/name", or "name" when cluster-scoped. */
char *orch_ctrl_key(const json_t *obj);
/* Split a key; *ns is "" for cluster-scoped ones. Both malloc'ed. */
void orch_ctrl_key_split(const char *key, char **ns, char **name);

/* A new reference to the cached (immutable) object, or NULL. */
json_t *orch_informer_get(struct orch_informer *inf, const char *key);
/* The cached (immutable) objects of namespace `ns` (NULL: all), in a new array. */
json_t *orch_informer_list(struct orch_informer *inf, const char *ns);
/* The cached objects whose controller owner has `uid`, in a new array (an index: no scan). */
json_t *orch_informer_owned(struct orch_informer *inf, const char *uid);
void orch_informer_add_handler(struct orch_informer *inf, orch_ctrl_handler_fn fn, void *arg);

/* ---- controller loops ---------------------------------------------------- */

struct orch_ctrl_loop;

struct orch_ctrl_loop {
        const char *name;
        struct orch_ctrl *mgr;
        struct orch_ctrl_queue q;
        struct orch_kube *kc;
        /* Either reconcile one key, or (scheduler) take every due key at once. */
        int (*reconcile)(struct orch_ctrl_loop *l, const char *key, struct sw_err *err);
        void (*batch)(struct orch_ctrl_loop *l, json_t *keys);
        /* Called about every `tick_ms` when set. */
        void (*tick)(struct orch_ctrl_loop *l);
        int64_t tick_ms;
        void *state;
        void (*state_free)(void *state);
        /* Names this loop created or deleted and waits to see in the cache. */
        json_t *expect;
        pthread_t th;
        bool running;
};

/* The shared pieces every loop reaches through l->mgr. */
struct orch_ctrl {
        struct orch_ctrl_options opts;
        char *kubeconfig;
        struct orch_kube_local *local; /* copy of opts.local, or NULL */
        atomic_bool stop;
        struct orch_informer pods, rsets, deploys, services, nodes;
        struct orch_informer jobs, cronjobs, leases; /* leases: kube-node-lease only */
        struct orch_ctrl_loop *loops[12];
        int nloops;
        struct orch_recorder *recorder; /* Events go out through it (ctrl_base.c) */
};

/*
 * Record an Event about `obj` (type "Normal" or "Warning"). As client-go's
 * recorder: queued and sent by one thread, so no loop waits for it; a burst
 * of 25 per source, object, type and reason, then one per 5 minutes (the
 * rest are dropped); dropped too when 1000 wait. Best effort: failures are
 * logged at debug level only.
 */
void orch_ctrl_event(struct orch_ctrl_loop *l, const json_t *obj, const char *type,
                     const char *reason, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

/* The controller owner reference of `obj`, if it is of `kind`; NULL otherwise. */
const json_t *orch_ctrl_owner(const json_t *obj, const char *kind);
/* Queue the key of the `kind` controlling `obj` and, if it had one, `old`'s. */
void orch_ctrl_enqueue_owners(struct orch_ctrl_loop *l, const json_t *obj, const json_t *old,
                              const char *kind);
/* An informer handler (arg: the loop) that queues the changed object's own key. */
void orch_ctrl_on_self(void *arg, const char *type, const json_t *obj, const json_t *old);
/* Pod helpers. */
bool orch_ctrl_pod_ready(const json_t *pod, int64_t min_ready_ms, int64_t now_ms,
                         int64_t *ready_since_ms);
bool orch_ctrl_pod_active(const json_t *pod);
/* Whether `labels` match the LabelSelector `sel` (an empty selector matches nothing). */
bool orch_ctrl_selects(const json_t *sel, const json_t *labels);
/* A merge-patch of `sub` ("status" or NULL) of the object at `path`. */
int orch_ctrl_patch(json_t **out, struct orch_ctrl_loop *l, const char *path, const json_t *patch,
                    struct sw_err *err);
/*
 * Merge-patch `status` into the status subresource of namespaced object
 * `ns`/`name` of `resource` under `group_version` ("/apis/apps/v1"); an
 * object gone meanwhile is no error.
 */
int orch_ctrl_patch_status(struct orch_ctrl_loop *l, const char *group_version,
                           const char *resource, const char *ns, const char *name,
                           const json_t *status, struct sw_err *err);

/* Expectations: `key`'s writes that the cache has not shown yet. */
void orch_ctrl_expect(struct orch_ctrl_loop *l, const char *key, const char *name, bool add);
/* True when every expected write of `key` shows in `inf` (or has waited 30 s). */
bool orch_ctrl_expect_met(struct orch_ctrl_loop *l, const char *key, struct orch_informer *inf,
                          const char *ns);

/* A new API client for one thread: in-process when the server is, else from the kubeconfig. */
int orch_ctrl_client(struct orch_kube **out, struct orch_ctrl *m, struct sw_err *err);

/* Controllers, in their own files; each fills a loop and subscribes to informers. */
void orch_ctrl_rs_init(struct orch_ctrl_loop *l, struct orch_ctrl *m);
void orch_ctrl_deploy_init(struct orch_ctrl_loop *l, struct orch_ctrl *m);
void orch_ctrl_endpoints_init(struct orch_ctrl_loop *l, struct orch_ctrl *m);
void orch_ctrl_nodes_init(struct orch_ctrl_loop *l, struct orch_ctrl *m);
void orch_ctrl_gc_init(struct orch_ctrl_loop *l, struct orch_ctrl *m);
void orch_sched_init(struct orch_ctrl_loop *l, struct orch_ctrl *m);
void orch_ctrl_job_init(struct orch_ctrl_loop *l, struct orch_ctrl *m);
void orch_ctrl_cronjob_init(struct orch_ctrl_loop *l, struct orch_ctrl *m);

#endif /* SW_ORCH_CTRL_INT_H */
