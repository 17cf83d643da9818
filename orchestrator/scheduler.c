/*
 * scheduler.c - the scheduler: binds pods that have no spec.nodeName to a
 * node, through the pods/<name>/binding subresource.
 *
 * The scheduler keeps its own accounting, updated incrementally from the
 * pod and node informers' handlers: per node what bound (and just-bound,
 * "assumed") pods request, their host ports, and, per spread selector,
 * how many matching pods each node runs. A spread selector ("counter") is
 * either a topologySpreadConstraint's labelSelector in a namespace or a
 * workload's owner uid (the default spreading of its replicas); a new one
 * is filled with one scan of the accounted pods, then kept up to date on
 * every pod change. So placing one pod costs O(nodes), never a scan of
 * all pods.
 *
 * Pending pods come from the pod informer into the loop's key queue; each
 * pass takes every due key at once and places the pods in
 * priority-then-age order. Filters, in kube-scheduler's order, stop at a
 * node's first failure: cordon, taints vs tolerations, readiness,
 * nodeSelector and required node affinity, host ports, cpu/memory/pod
 * count against allocatable, topology spread (DoNotSchedule). Scores:
 * least allocated, balanced allocation, topology spread (ScheduleAnyway
 * constraints, or the default spreading of the pod's workload over
 * hostnames), preferred node affinity. Like kube-scheduler, in large
 * clusters only a share of the nodes (50% - nodes/125, at least 5% and 100
 * nodes) is searched for feasible ones, starting where the previous pod's
 * search stopped.
 * The chosen node is assumed at once (the accounting counts the pod
 * there) and the binding, with its Scheduled Event, is POSTed by one of
 * BINDERS threads, as kube-scheduler's binding cycle runs apart from its
 * scheduling cycle; a failed binding undoes the assumption.
 * A pod that fits nowhere gets PodScheduled=False/Unschedulable with
 * kubectl's wording and a FailedScheduling Event, and is retried with
 * backoff, or at once when nodes or pods change.
 *
 * Lock order: the state's mutex is taken by the informer handlers and by
 * the loop while it chooses a node; nothing else is locked under it, and
 * no request to the API server is made while it is held.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/validate.h"
#include "orchestrator/client/kube.h"
#include "orchestrator/ctrl_int.h"
#include "orchestrator/orch_int.h"
#include "common/banned.h"

#define HOSTNAME_KEY "kubernetes.io/hostname"
#define MAX_CONSTRAINTS 8
#define COUNTER_IDLE_MS (10 * 60 * 1000)
#define BINDERS 4
#define BIND_QUEUE 1024
#define BIND_HOLD 32 /* bindings a binder commits together */

/* A pod assumed on a node, waiting for its binding. */
struct bind_job {
        json_t *pod; /* the informer's (immutable) object */
        char *key, *node;
};

/* One node slot; slots are never reused for another name. */
struct sched_node {
        char *name;
        json_t *node;              /* a copy of the Node; NULL while it does not exist */
        const json_t *labels;      /* inside `node` */
        const json_t *taints;      /* inside `node` */
        int64_t cpu, mem, pods;    /* allocatable; mem in bytes*1000 */
        int64_t ucpu, umem, upods; /* requested by pods on it */
        json_t *ports;             /* "proto/port" -> number of pods using it */
        bool ready, unschedulable;
        bool host; /* exists and has the kubernetes.io/hostname label */
};

/* Pods per node matching one spread selector. */
struct sched_counter {
        char *ns;                     /* namespace of a labelSelector counter */
        json_t *sel;                  /* labelSelector, or NULL for an owner counter */
        struct orch_selector *parsed; /* `sel` parsed; NULL when it selects nothing */
        char *owner;                  /* controller owner uid of an owner counter */
        int *per_node;                /* by node slot, s->node_cap long */
        /* hist[v]: host nodes (sched_node.host) with v matching pods, hist_len long */
        int *hist;
        size_t hist_len;
        int64_t used_ms;
};

/* What one pod takes from its node. */
struct sched_pod {
        long slot; /* node slot */
        int64_t cpu, mem;
        char *ns;
        char *owner; /* controller owner uid or NULL */
        json_t *labels;
        json_t *ports; /* array of "proto/port" */
        bool assumed;  /* chosen by us, not yet seen bound */
        long next_free;
};

struct sched_state {
        pthread_mutex_t mu;
        json_t *waiting; /* pod key -> {attempts, msg}: did not fit */
        struct sched_node *nodes;
        size_t nnodes, node_cap;
        size_t nhost;     /* nodes with `host` set */
        size_t npresent;  /* slots with a node */
        json_t *node_idx; /* name -> slot */
        struct sched_pod *pods;
        size_t npods, pod_cap;
        long pod_free;
        json_t *pod_idx; /* pod key -> index in pods */
        struct sched_counter **counters;
        size_t ncounters;
        json_t *counter_idx; /* counter key -> index in counters */
        size_t next_start;   /* where the next search for feasible nodes begins */
        /* The binding cycle, as kube-scheduler's, runs apart from the choice. */
        pthread_mutex_t bmu; /* guards the fields below; never taken with `mu` held */
        pthread_cond_t bcv;
        struct bind_job *jobs; /* ring of BIND_QUEUE */
        size_t jhead, njobs;
        bool closing;
        pthread_t binders[BINDERS];
        int nbinders;
        struct orch_ctrl_loop *loop;
};

static void sched_state_free(void *p)
{
        struct sched_state *s = p;

        if (!s)
                return;
        pthread_mutex_lock(&s->bmu);
        s->closing = true;
        pthread_cond_broadcast(&s->bcv);
        pthread_mutex_unlock(&s->bmu);
        for (int i = 0; i < s->nbinders; i++)
                pthread_join(s->binders[i], NULL);
        for (size_t i = 0; i < s->njobs; i++) {
                struct bind_job *j = &s->jobs[(s->jhead + i) % BIND_QUEUE];
                json_decref(j->pod);
                free(j->key);
                free(j->node);
        }
        free(s->jobs);
        pthread_cond_destroy(&s->bcv);
        pthread_mutex_destroy(&s->bmu);
        for (size_t i = 0; i < s->nnodes; i++) {
                free(s->nodes[i].name);
                json_decref(s->nodes[i].node);
                json_decref(s->nodes[i].ports);
        }
        for (size_t i = 0; i < s->npods; i++) {
                free(s->pods[i].ns);
                free(s->pods[i].owner);
                json_decref(s->pods[i].labels);
                json_decref(s->pods[i].ports);
        }
        for (size_t i = 0; i < s->ncounters; i++) {
                if (!s->counters[i])
                        continue;
                free(s->counters[i]->ns);
                free(s->counters[i]->owner);
                json_decref(s->counters[i]->sel);
                orch_selector_free(s->counters[i]->parsed);
                free(s->counters[i]->per_node);
                free(s->counters[i]->hist);
                free(s->counters[i]);
        }
        free(s->nodes);
        free(s->pods);
        free(s->counters);
        json_decref(s->node_idx);
        json_decref(s->pod_idx);
        json_decref(s->counter_idx);
        json_decref(s->waiting);
        pthread_mutex_destroy(&s->mu);
        free(s);
}

static bool pod_pending(const json_t *pod)
{
        return !*sw_json_str(json_object_get(pod, "spec"), "nodeName", "") &&
               orch_ctrl_pod_active(pod);
}

static void pod_requests(const json_t *pod, int64_t *cpu, int64_t *mem)
{
        const json_t *c, *ctrs = json_object_get(json_object_get(pod, "spec"), "containers");
        size_t i;

        *cpu = *mem = 0;
        json_array_foreach(ctrs, i, c)
        {
                const json_t *req = json_object_get(json_object_get(c, "resources"), "requests");
                *cpu += sw_json_quantity(json_object_get(req, "cpu"), 0);
                *mem += sw_json_quantity(json_object_get(req, "memory"), 0);
        }
}

/* The "proto/port" strings of the pod's host ports, in a new array. */
static json_t *pod_host_ports(const json_t *pod)
{
        const json_t *c, *p;
        json_t *out = json_array();
        size_t i, j;

        json_array_foreach(json_object_get(json_object_get(pod, "spec"), "containers"), i, c)
        {
                json_array_foreach(json_object_get(c, "ports"), j, p)
                {
                        char k[48];
                        if (sw_json_int(p, "hostPort", 0) <= 0)
                                continue;
                        snprintf(k, sizeof(k), "%s/%lld", sw_json_str(p, "protocol", "TCP"),
                                 (long long)sw_json_int(p, "hostPort", 0));
                        json_array_append_new(out, json_string(k));
                }
        }
        return out;
}

/* The uid of the pod's controlling owner (any kind), or NULL. */
static const char *pod_owner_uid(const json_t *pod)
{
        const json_t *refs = json_object_get(json_object_get(pod, "metadata"), "ownerReferences");
        const json_t *r;
        size_t i;

        json_array_foreach(refs, i, r)
        {
                if (json_is_true(json_object_get(r, "controller")))
                        return sw_json_str(r, "uid", NULL);
        }
        return NULL;
}

/* ---- the accounting ------------------------------------------------------ */

/* The slot of node `name`, created (empty, absent) when new. */
static long node_slot(struct sched_state *s, const char *name)
{
        const json_t *v = json_object_get(s->node_idx, name);
        struct sched_node *n;

        if (v)
                return (long)json_integer_value(v);
        if (s->nnodes == s->node_cap) {
                size_t cap = s->node_cap ? s->node_cap * 2 : 64;
                s->nodes = sw_xrealloc(s->nodes, cap * sizeof(*s->nodes));
                for (size_t i = 0; i < s->ncounters; i++) {
                        struct sched_counter *c = s->counters[i];
                        if (!c)
                                continue;
                        c->per_node = sw_xrealloc(c->per_node, cap * sizeof(int));
                        memset(c->per_node + s->node_cap, 0, (cap - s->node_cap) * sizeof(int));
                }
                s->node_cap = cap;
        }
        n = &s->nodes[s->nnodes];
        memset(n, 0, sizeof(*n));
        n->name = sw_xstrdup(name);
        n->ports = json_object();
        json_object_set_new(s->node_idx, name, json_integer((json_int_t)s->nnodes));
        return (long)s->nnodes++;
}

/* One host node more (d 1) or fewer (-1) with `value` matching pods in `c`'s histogram. */
static void hist_add(struct sched_counter *c, int value, int d)
{
        if (value < 0)
                value = 0;
        if ((size_t)value >= c->hist_len) {
                size_t len = (size_t)value * 2 + 8;
                c->hist = sw_xrealloc(c->hist, len * sizeof(*c->hist));
                memset(c->hist + c->hist_len, 0, (len - c->hist_len) * sizeof(*c->hist));
                c->hist_len = len;
        }
        c->hist[value] += d;
}

/* The fewest matching pods on a host node, or -1 without host nodes. */
static int64_t hist_min(const struct sched_counter *c)
{
        for (size_t v = 0; v < c->hist_len; v++)
                if (c->hist[v] > 0)
                        return (int64_t)v;
        return -1;
}

static bool counter_matches(const struct sched_counter *c, const struct sched_pod *p)
{
        if (c->owner)
                return p->owner && strcmp(c->owner, p->owner) == 0;
        return c->parsed && strcmp(c->ns, p->ns) == 0 && orch_labelsel_match(c->parsed, p->labels);
}

/* Add (`sign` 1) or take away (-1) pod `p`'s share of its node. */
static void pod_charge(struct sched_state *s, const struct sched_pod *p, int sign)
{
        struct sched_node *n = &s->nodes[p->slot];
        const json_t *port;
        size_t i;

        n->ucpu += sign * p->cpu;
        n->umem += sign * p->mem;
        n->upods += sign;
        json_array_foreach(p->ports, i, port)
        {
                const char *k = json_string_value(port);
                int64_t have = sw_json_int(n->ports, k, 0) + sign;
                if (have > 0)
                        json_object_set_new(n->ports, k, json_integer(have));
                else
                        json_object_del(n->ports, k);
        }
        for (i = 0; i < s->ncounters; i++) {
                struct sched_counter *c = s->counters[i];
                if (!c || !counter_matches(c, p))
                        continue;
                if (n->host) {
                        hist_add(c, c->per_node[p->slot], -1);
                        hist_add(c, c->per_node[p->slot] + sign, 1);
                }
                c->per_node[p->slot] += sign;
        }
}

/* Forget pod `key`'s accounting, if any. */
static void pod_forget(struct sched_state *s, const char *key)
{
        const json_t *v = json_object_get(s->pod_idx, key);
        struct sched_pod *p;

        if (!v)
                return;
        p = &s->pods[json_integer_value(v)];
        pod_charge(s, p, -1);
        free(p->ns);
        free(p->owner);
        json_decref(p->labels);
        json_decref(p->ports);
        memset(p, 0, sizeof(*p));
        p->next_free = s->pod_free;
        s->pod_free = (long)json_integer_value(v);
        json_object_del(s->pod_idx, key);
}

/* Account `pod` (key `key`) on node slot `slot`, replacing what was there. */
static void pod_remember(struct sched_state *s, const char *key, const json_t *pod, long slot,
                         bool assumed)
{
        const json_t *md = json_object_get(pod, "metadata");
        const char *owner = pod_owner_uid(pod);
        struct sched_pod *p;
        long idx;

        pod_forget(s, key);
        if (s->pod_free >= 0) {
                idx = s->pod_free;
                s->pod_free = s->pods[idx].next_free;
        } else {
                if (s->npods == s->pod_cap) {
                        s->pod_cap = s->pod_cap ? s->pod_cap * 2 : 256;
                        s->pods = sw_xrealloc(s->pods, s->pod_cap * sizeof(*s->pods));
                }
                idx = (long)s->npods++;
        }
        p = &s->pods[idx];
        memset(p, 0, sizeof(*p));
        p->slot = slot;
        pod_requests(pod, &p->cpu, &p->mem);
        p->ns = sw_xstrdup(sw_json_str(md, "namespace", ""));
        p->owner = owner ? sw_xstrdup(owner) : NULL;
        p->labels = json_object_get(md, "labels") ? sw_json_copy(json_object_get(md, "labels"))
                                                  : json_object();
        p->ports = pod_host_ports(pod);
        p->assumed = assumed;
        p->next_free = -1;
        json_object_set_new(s->pod_idx, key, json_integer(idx));
        pod_charge(s, p, 1);
}

static struct sched_pod *pod_find(struct sched_state *s, const char *key)
{
        const json_t *v = json_object_get(s->pod_idx, key);

        return v ? &s->pods[json_integer_value(v)] : NULL;
}

/*
 * The counter of pods owned by `owner`, or (owner NULL) of pods in `ns`
 * that `sel` selects: found, or made and filled with one scan of the
 * accounted pods.
 */
static struct sched_counter *counter_get(struct sched_state *s, const char *ns, const json_t *sel,
                                         const char *owner)
{
        struct sched_counter *c;
        const json_t *v;
        char *key, *dump = NULL;
        size_t idx;

        if (owner) {
                key = sw_xasprintf("o/%s", owner);
        } else {
                dump = json_dumps(sel, JSON_COMPACT | JSON_SORT_KEYS);
                key = sw_xasprintf("s/%s/%s", ns, dump ? dump : "null");
        }
        free(dump);
        v = json_object_get(s->counter_idx, key);
        if (v) {
                c = s->counters[json_integer_value(v)];
                c->used_ms = sw_mono_ms();
                free(key);
                return c;
        }
        c = sw_xcalloc(1, sizeof(*c));
        c->owner = owner ? sw_xstrdup(owner) : NULL;
        c->ns = owner ? NULL : sw_xstrdup(ns);
        c->sel = owner ? NULL : sw_json_copy(sel);
        /* As orch_ctrl_selects: an absent or empty selector selects nothing. */
        if (!owner && json_is_object(sel) && json_object_size(sel) > 0) {
                struct sw_err err = SW_ERR_INIT;
                if (orch_labelsel_from_json(&c->parsed, sel, &err) != 0)
                        c->parsed = NULL;
        }
        c->per_node = sw_xcalloc(s->node_cap ? s->node_cap : 1, sizeof(int));
        c->used_ms = sw_mono_ms();
        for (size_t i = 0; i < s->npods; i++) {
                const struct sched_pod *p = &s->pods[i];
                if (p->ns && counter_matches(c, p))
                        c->per_node[p->slot]++;
        }
        for (size_t i = 0; i < s->nnodes; i++)
                if (s->nodes[i].host)
                        hist_add(c, c->per_node[i], 1);
        for (idx = 0; idx < s->ncounters && s->counters[idx]; idx++)
                ;
        if (idx == s->ncounters) {
                s->counters = sw_xrealloc(s->counters, (s->ncounters + 1) * sizeof(*s->counters));
                s->ncounters++;
        }
        s->counters[idx] = c;
        json_object_set_new(s->counter_idx, key, json_integer((json_int_t)idx));
        free(key);
        return c;
}

/* Drop the counters no pod has asked for in a while. */
static void counters_expire(struct sched_state *s)
{
        int64_t now = sw_mono_ms();
        const char *k;
        json_t *v;
        void *tmp;

        json_object_foreach_safe(s->counter_idx, tmp, k, v)
        {
                size_t i = (size_t)json_integer_value(v);
                struct sched_counter *c = s->counters[i];
                if (now - c->used_ms < COUNTER_IDLE_MS)
                        continue;
                free(c->ns);
                free(c->owner);
                json_decref(c->sel);
                orch_selector_free(c->parsed);
                free(c->per_node);
                free(c->hist);
                free(c);
                s->counters[i] = NULL;
                json_object_del(s->counter_idx, k);
        }
}

/* ---- informer handlers ---------------------------------------------------- */

/* Retry every pod that did not fit: the cluster changed. */
static void requeue_waiting(struct orch_ctrl_loop *l)
{
        struct sched_state *s = l->state;
        const char *k;
        json_t *v;

        pthread_mutex_lock(&s->mu);
        json_object_foreach(s->waiting, k, v)
        {
                orch_ctrl_queue_add(&l->q, k);
        }
        pthread_mutex_unlock(&s->mu);
}

static void sched_on_pod(void *arg, const char *type, const json_t *obj, const json_t *old)
{
        struct orch_ctrl_loop *l = arg;
        struct sched_state *s = l->state;
        char *key = orch_ctrl_key(obj);
        const char *node = sw_json_str(json_object_get(obj, "spec"), "nodeName", "");
        bool deleted = strcmp(type, "DELETED") == 0, freed = false, pending = false;
        struct sched_pod *p;

        (void)old;
        pthread_mutex_lock(&s->mu);
        p = pod_find(s, key);
        if (deleted) {
                freed = p != NULL;
                pod_forget(s, key);
        } else if (*node &&
                   (orch_ctrl_pod_active(obj) ||
                    json_object_get(json_object_get(obj, "metadata"), "deletionTimestamp"))) {
                /* Bound: a terminating pod still holds its node until it is gone. */
                long slot = node_slot(s, node);
                /* Status updates change nothing accounted: requests and ports are fixed. */
                const json_t *labels = json_object_get(json_object_get(obj, "metadata"), "labels");
                if (!p || p->assumed || p->slot != slot ||
                    (labels ? !json_equal(p->labels, labels) : json_object_size(p->labels) > 0))
                        pod_remember(s, key, obj, slot, false);
        } else if (!*node && orch_ctrl_pod_active(obj)) {
                /* Pending: keep an assumption, the binding is on its way. */
                pending = !(p && p->assumed);
                if (p && !p->assumed)
                        pod_forget(s, key);
        } else {
                freed = p != NULL;
                pod_forget(s, key);
        }
        if (!pending)
                json_object_del(s->waiting, key);
        pthread_mutex_unlock(&s->mu);
        if (pending)
                orch_ctrl_queue_add(&l->q, key);
        if (freed)
                requeue_waiting(l);
        free(key);
}

/* Refresh slot fields from `obj` (NULL: the node is gone). */
/* Node slot `slot` is now `obj` (NULL: gone); the counters' histograms follow. */
static void node_update(struct sched_state *s, long slot, const json_t *obj)
{
        struct sched_node *n = &s->nodes[slot];
        const json_t *st, *al;
        bool was = n->host;

        if (!n->node != !obj)
                s->npresent = obj ? s->npresent + 1 : s->npresent - 1;
        json_decref(n->node);
        n->node = obj ? sw_json_copy(obj) : NULL;
        n->host =
                n->node && json_is_string(json_object_get(
                                   json_object_get(json_object_get(n->node, "metadata"), "labels"),
                                   HOSTNAME_KEY));
        if (n->host != was) {
                s->nhost = n->host ? s->nhost + 1 : s->nhost - 1;
                for (size_t i = 0; i < s->ncounters; i++)
                        if (s->counters[i])
                                hist_add(s->counters[i], s->counters[i]->per_node[slot],
                                         n->host ? 1 : -1);
        }
        if (!n->node) {
                n->labels = n->taints = NULL;
                n->ready = n->unschedulable = false;
                return;
        }
        st = json_object_get(n->node, "status");
        al = json_object_get(st, "allocatable");
        if (!al)
                al = json_object_get(st, "capacity");
        n->labels = json_object_get(json_object_get(n->node, "metadata"), "labels");
        n->taints = json_object_get(json_object_get(n->node, "spec"), "taints");
        n->unschedulable =
                json_is_true(json_object_get(json_object_get(n->node, "spec"), "unschedulable"));
        n->cpu = sw_json_quantity(json_object_get(al, "cpu"), 0);
        n->mem = sw_json_quantity(json_object_get(al, "memory"), 0);
        n->pods = sw_json_quantity(json_object_get(al, "pods"), 110000) / 1000;
        n->ready = orch_ctrl_pod_ready(n->node, 0, 0, NULL);
}

static void sched_on_node(void *arg, const char *type, const json_t *obj, const json_t *old)
{
        struct orch_ctrl_loop *l = arg;
        struct sched_state *s = l->state;
        const json_t *a = json_object_get(obj, "spec"),
                     *b = old ? json_object_get(old, "spec") : NULL;
        bool deleted = strcmp(type, "DELETED") == 0;
        long slot;

        /* Heartbeats alone change nothing the filters read, except readiness. */
        if (!deleted && old && json_equal(a, b) &&
            orch_ctrl_pod_ready(obj, 0, 0, NULL) == orch_ctrl_pod_ready(old, 0, 0, NULL) &&
            json_equal(json_object_get(json_object_get(obj, "status"), "allocatable"),
                       json_object_get(json_object_get(old, "status"), "allocatable")) &&
            json_equal(json_object_get(json_object_get(obj, "metadata"), "labels"),
                       json_object_get(json_object_get(old, "metadata"), "labels")))
                return;
        pthread_mutex_lock(&s->mu);
        slot = node_slot(s, sw_json_str(json_object_get(obj, "metadata"), "name", ""));
        node_update(s, slot, deleted ? NULL : obj);
        pthread_mutex_unlock(&s->mu);
        requeue_waiting(l);
}

/* ---- filters and scores --------------------------------------------------- */

static bool tolerated(const json_t *taint, const json_t *tols)
{
        const json_t *t;
        size_t i;

        json_array_foreach(tols, i, t)
        {
                const char *key = sw_json_str(t, "key", ""),
                           *op = sw_json_str(t, "operator", "Equal");
                const char *eff = sw_json_str(t, "effect", "");
                if (*key && strcmp(key, sw_json_str(taint, "key", "")) != 0)
                        continue;
                if (!*key && strcmp(op, "Exists") != 0)
                        continue;
                if (*eff && strcmp(eff, sw_json_str(taint, "effect", "")) != 0)
                        continue;
                if (strcmp(op, "Exists") == 0 ||
                    strcmp(sw_json_str(t, "value", ""), sw_json_str(taint, "value", "")) == 0)
                        return true;
        }
        return false;
}

static bool expr_match(const json_t *e, const json_t *labels)
{
        const char *op = sw_json_str(e, "operator", "");
        const json_t *v = json_object_get(labels, sw_json_str(e, "key", ""));
        const json_t *x;
        size_t i;
        bool in = false;

        if (strcmp(op, "Exists") == 0)
                return v != NULL;
        if (strcmp(op, "DoesNotExist") == 0)
                return v == NULL;
        json_array_foreach(json_object_get(e, "values"), i, x)
        {
                if (v && json_is_string(x) &&
                    strcmp(json_string_value(x), json_string_value(v)) == 0)
                        in = true;
        }
        if (strcmp(op, "In") == 0)
                return in;
        if (strcmp(op, "NotIn") == 0)
                return !in;
        if ((strcmp(op, "Gt") == 0 || strcmp(op, "Lt") == 0) && v &&
            json_array_size(json_object_get(e, "values")) == 1) {
                const json_t *bv = json_array_get(json_object_get(e, "values"), 0);
                long long a = strtoll(json_string_value(v), NULL, 10);
                long long b = json_is_string(bv) ? strtoll(json_string_value(bv), NULL, 10) : 0;
                return strcmp(op, "Gt") == 0 ? a > b : a < b;
        }
        return false;
}

static bool affinity_match(const json_t *pod, const json_t *labels)
{
        const json_t *spec = json_object_get(pod, "spec");
        const json_t *ns = json_object_get(spec, "nodeSelector"), *v, *terms, *t, *e;
        const char *k;
        size_t i, j;

        json_object_foreach((json_t *)ns, k, v)
        {
                const json_t *have = json_object_get(labels, k);
                if (!have || !json_equal(have, v))
                        return false;
        }
        terms = json_object_get(
                json_object_get(json_object_get(json_object_get(spec, "affinity"), "nodeAffinity"),
                                "requiredDuringSchedulingIgnoredDuringExecution"),
                "nodeSelectorTerms");
        if (json_array_size(terms) == 0)
                return true;
        json_array_foreach(terms, i, t)
        {
                bool ok = true;
                json_array_foreach(json_object_get(t, "matchExpressions"), j, e)
                {
                        if (!expr_match(e, labels))
                                ok = false;
                }
                if (ok)
                        return true;
        }
        return false;
}

/* One topology spread constraint, prepared for one pod. */
struct spread {
        struct sched_counter *c;
        const char *key; /* topologyKey */
        bool hostname, hard;
        int64_t max_skew, min_domains;
        int self;        /* 1 when the pod matches its own selector */
        int64_t min;     /* matching pods in the emptiest eligible domain */
        json_t *domains; /* label value -> matching pods, for keys other than hostname */
        size_t ndomains;
        double weight;
};

/* What the filters and scores need of the pod being placed. */
struct placing {
        const json_t *pod, *tols;
        const json_t *prefs; /* preferred node affinity terms, or NULL */
        int64_t cpu, mem;
        json_t *ports;
        bool selective; /* nodeSelector or required node affinity */
        struct spread sp[MAX_CONSTRAINTS];
        int nsp;
        bool soft; /* some constraint is ScheduleAnyway */
};

static bool selective(const json_t *pod)
{
        const json_t *spec = json_object_get(pod, "spec");

        return json_object_size(json_object_get(spec, "nodeSelector")) > 0 ||
               json_object_get(json_object_get(json_object_get(spec, "affinity"), "nodeAffinity"),
                               "requiredDuringSchedulingIgnoredDuringExecution");
}

/* Matching pods in node `n`'s domain of `sp`; false when the node lacks the key. */
static bool spread_count(const struct spread *sp, const struct sched_node *n, size_t slot,
                         int64_t *out)
{
        const json_t *v;

        if (sp->hostname) {
                *out = sp->c->per_node[slot];
                return n->host;
        }
        v = json_object_get(n->labels, sp->key);
        if (!json_is_string(v))
                return false;
        *out = sw_json_int(sp->domains, json_string_value(v), 0);
        return true;
}

/*
 * Read the pod's topologySpreadConstraints (or, without any, the default
 * spreading of its workload's replicas over hostnames, as kube-scheduler's
 * default constraint: maxSkew 3, ScheduleAnyway) and count the matching
 * pods per domain over the nodes the pod's node selection admits.
 */
static void spread_prepare(struct sched_state *s, struct placing *pl)
{
        const json_t *spec = json_object_get(pl->pod, "spec");
        const json_t *md = json_object_get(pl->pod, "metadata");
        const json_t *labels = json_object_get(md, "labels"), *t;
        const char *ns = sw_json_str(md, "namespace", ""), *owner = pod_owner_uid(pl->pod);
        size_t i;

        json_array_foreach(json_object_get(spec, "topologySpreadConstraints"), i, t)
        {
                struct spread *sp;
                if (pl->nsp >= MAX_CONSTRAINTS)
                        break;
                sp = &pl->sp[pl->nsp++];
                sp->key = sw_json_str(t, "topologyKey", HOSTNAME_KEY);
                sp->c = counter_get(s, ns, json_object_get(t, "labelSelector"), NULL);
                sp->self = orch_ctrl_selects(json_object_get(t, "labelSelector"), labels) ? 1 : 0;
                sp->hard = strcmp(sw_json_str(t, "whenUnsatisfiable", "DoNotSchedule"),
                                  "ScheduleAnyway") != 0;
                sp->max_skew = sw_json_int(t, "maxSkew", 1);
                sp->min_domains = sw_json_int(t, "minDomains", 1);
        }
        if (pl->nsp == 0 && owner) {
                struct spread *sp = &pl->sp[pl->nsp++];
                sp->key = HOSTNAME_KEY;
                sp->c = counter_get(s, NULL, NULL, owner);
                sp->self = 1;
                sp->max_skew = 3;
                sp->min_domains = 1;
        }
        for (int c = 0; c < pl->nsp; c++) {
                struct spread *sp = &pl->sp[c];
                sp->hostname = strcmp(sp->key, HOSTNAME_KEY) == 0;
                sp->domains = sp->hostname ? NULL : json_object();
                sp->min = -1;
                if (!sp->hard)
                        pl->soft = true;
        }
        if (pl->nsp == 0)
                return;
        {
                /*
                 * Spreading over hostnames only, on every node: the fewest
                 * matching pods on a node come from the counters' histograms,
                 * without a pass over the nodes.
                 */
                bool all_host = !pl->selective;
                for (int c = 0; all_host && c < pl->nsp; c++)
                        all_host = pl->sp[c].hostname;
                if (all_host) {
                        for (int c = 0; c < pl->nsp; c++) {
                                struct spread *sp = &pl->sp[c];
                                sp->min = hist_min(sp->c);
                                sp->ndomains = s->nhost;
                                if (sp->min < 0 ||
                                    (sp->hard && (int64_t)sp->ndomains < sp->min_domains))
                                        sp->min = 0;
                                sp->weight = log((double)sp->ndomains + 2.0);
                        }
                        return;
                }
        }
        for (i = 0; i < s->nnodes; i++) {
                const struct sched_node *n = &s->nodes[i];
                bool ok = n->node != NULL;
                for (int c = 0; ok && c < pl->nsp; c++)
                        ok = json_is_string(json_object_get(n->labels, pl->sp[c].key));
                if (!ok || (pl->selective && !affinity_match(pl->pod, n->labels)))
                        continue;
                for (int c = 0; c < pl->nsp; c++) {
                        struct spread *sp = &pl->sp[c];
                        const char *v;
                        int64_t cnt = sp->c->per_node[i];
                        if (sp->hostname) {
                                if (sp->min < 0 || cnt < sp->min)
                                        sp->min = cnt;
                                sp->ndomains++;
                                continue;
                        }
                        v = json_string_value(json_object_get(n->labels, sp->key));
                        json_object_set_new(sp->domains, v,
                                            json_integer(sw_json_int(sp->domains, v, 0) + cnt));
                }
        }
        for (int c = 0; c < pl->nsp; c++) {
                struct spread *sp = &pl->sp[c];
                const char *k;
                json_t *v;
                if (!sp->hostname) {
                        sp->ndomains = json_object_size(sp->domains);
                        json_object_foreach(sp->domains, k, v)
                        {
                                if (sp->min < 0 || json_integer_value(v) < sp->min)
                                        sp->min = json_integer_value(v);
                        }
                }
                if (sp->min < 0 || (sp->hard && (int64_t)sp->ndomains < sp->min_domains))
                        sp->min = 0;
                sp->weight = log((double)sp->ndomains + 2.0);
        }
}

static void placing_release(struct placing *pl)
{
        json_decref(pl->ports);
        for (int c = 0; c < pl->nsp; c++)
                json_decref(pl->sp[c].domains);
}

/*
 * Whether the pod fits node slot `i`; when not, `reasons` gets the first
 * failing filter's reason(s), as kube-scheduler words them.
 */
static bool node_fits(const struct sched_node *n, size_t i, const struct placing *pl,
                      char reasons[2][128])
{
        const json_t *t, *p;
        size_t j;
        int nr = 0;

        reasons[0][0] = reasons[1][0] = '\0';
        if (n->unschedulable) {
                snprintf(reasons[0], 128, "node(s) were unschedulable");
                return false;
        }
        json_array_foreach(n->taints, j, t)
        {
                const char *eff = sw_json_str(t, "effect", "");
                if (strcmp(eff, "NoSchedule") != 0 && strcmp(eff, "NoExecute") != 0)
                        continue;
                if (!tolerated(t, pl->tols)) {
                        snprintf(reasons[0], 128, "node(s) had untolerated taint {%s: %s}",
                                 sw_json_str(t, "key", ""), sw_json_str(t, "value", ""));
                        return false;
                }
        }
        if (!n->ready) {
                snprintf(reasons[0], 128, "node(s) were not ready");
                return false;
        }
        if (pl->selective && !affinity_match(pl->pod, n->labels)) {
                snprintf(reasons[0], 128, "node(s) didn't match Pod's node affinity/selector");
                return false;
        }
        json_array_foreach(pl->ports, j, p)
        {
                if (json_object_get(n->ports, json_string_value(p))) {
                        snprintf(reasons[0], 128,
                                 "node(s) didn't have free ports for the requested pod ports");
                        return false;
                }
        }
        if (n->upods + 1 > n->pods)
                snprintf(reasons[nr++], 128, "Too many pods");
        if (pl->cpu > 0 && n->ucpu + pl->cpu > n->cpu)
                snprintf(reasons[nr++], 128, "Insufficient cpu");
        if (nr < 2 && pl->mem > 0 && n->umem + pl->mem > n->mem)
                snprintf(reasons[nr++], 128, "Insufficient memory");
        if (nr)
                return false;
        for (int c = 0; c < pl->nsp; c++) {
                const struct spread *sp = &pl->sp[c];
                int64_t cnt;
                if (!sp->hard)
                        continue;
                if (!spread_count(sp, n, i, &cnt)) {
                        snprintf(reasons[0], 128,
                                 "node(s) didn't match pod topology spread constraints (missing "
                                 "required label)");
                        return false;
                }
                if (cnt + sp->self - sp->min > sp->max_skew) {
                        snprintf(reasons[0], 128,
                                 "node(s) didn't match pod topology spread constraints");
                        return false;
                }
        }
        return true;
}

/*
 * The ScheduleAnyway constraints' raw score of a node (lower is better),
 * as kube-scheduler's PodTopologySpread sums it; -1 when the node lacks a
 * topology key.
 */
static double spread_raw(const struct placing *pl, const struct sched_node *n, size_t i)
{
        double sum = 0;

        for (int c = 0; c < pl->nsp; c++) {
                const struct spread *sp = &pl->sp[c];
                int64_t cnt;
                if (sp->hard)
                        continue;
                if (!spread_count(sp, n, i, &cnt))
                        return -1;
                sum += (double)cnt * sp->weight + (double)(sp->max_skew - 1);
        }
        return sum;
}

/* Preferred node affinity: the weights (1-100) of the terms `labels` match, at most 100. */
static int64_t preferred_affinity(const json_t *prefs, const json_t *labels)
{
        const json_t *t, *e;
        int64_t sum = 0;
        size_t i, j;

        json_array_foreach(prefs, i, t)
        {
                const json_t *exprs =
                        json_object_get(json_object_get(t, "preference"), "matchExpressions");
                bool ok = json_array_size(exprs) > 0;
                json_array_foreach(exprs, j, e)
                {
                        if (!expr_match(e, labels))
                                ok = false;
                }
                if (ok)
                        sum += sw_json_int(t, "weight", 1);
        }
        return sum > 100 ? 100 : sum;
}

static int cmp_pods(const void *a, const void *b)
{
        const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
        int64_t px = sw_json_int(json_object_get(x, "spec"), "priority", 0);
        int64_t py = sw_json_int(json_object_get(y, "spec"), "priority", 0);

        if (px != py)
                return px > py ? -1 : 1;
        return strcmp(sw_json_str(json_object_get(x, "metadata"), "creationTimestamp", ""),
                      sw_json_str(json_object_get(y, "metadata"), "creationTimestamp", ""));
}

struct reason_count {
        char text[128];
        int n;
};

/* kube-scheduler sorts the "<count> <reason>" strings themselves. */
static int cmp_reason(const void *a, const void *b)
{
        const struct reason_count *x = a, *y = b;
        char sx[160], sy[160];

        snprintf(sx, sizeof(sx), "%d %s", x->n, x->text);
        snprintf(sy, sizeof(sy), "%d %s", y->n, y->text);
        return strcmp(sx, sy);
}

static void add_reason(struct reason_count *rs, int *nrs, const char *text)
{
        for (int i = 0; i < *nrs; i++)
                if (strcmp(rs[i].text, text) == 0) {
                        rs[i].n++;
                        return;
                }
        if (*nrs >= 16)
                return;
        snprintf(rs[*nrs].text, sizeof(rs[*nrs].text), "%s", text);
        rs[(*nrs)++].n = 1;
}

static void unschedulable(struct orch_ctrl_loop *l, const json_t *pod, const char *key,
                          const char *msg)
{
        struct sched_state *s = l->state;
        const json_t *md = json_object_get(pod, "metadata");
        json_t *w, *patch;
        char ts[32], *path;
        int64_t attempts;
        struct sw_err err = SW_ERR_INIT;
        bool same;

        pthread_mutex_lock(&s->mu);
        w = json_object_get(s->waiting, key);
        attempts = w ? sw_json_int(w, "attempts", 0) + 1 : 1;
        same = w && strcmp(sw_json_str(w, "msg", ""), msg) == 0;
        json_object_set_new(s->waiting, key,
                            json_pack("{s:I,s:s}", "attempts", (json_int_t)attempts, "msg", msg));
        pthread_mutex_unlock(&s->mu);
        {
                int64_t delay = 100LL << (attempts < 10 ? attempts : 10);
                if (delay > l->mgr->opts.sched_backoff_max_ms)
                        delay = l->mgr->opts.sched_backoff_max_ms;
                orch_ctrl_queue_add_after(&l->q, key, delay);
        }
        if (same)
                return;
        orch_time_fmt(ts, sizeof(ts), sw_now_ms());
        patch = json_pack("{s:{s:[{s:s,s:s,s:s,s:s,s:s}]}}", "status", "conditions", "type",
                          "PodScheduled", "status", "False", "reason", "Unschedulable", "message",
                          msg, "lastTransitionTime", ts);
        path = sw_xasprintf("/api/v1/namespaces/%s/pods/%s/status",
                            sw_json_str(md, "namespace", ""), sw_json_str(md, "name", ""));
        if (orch_ctrl_patch(NULL, l, path, patch, &err) != 0)
                sw_err_clear(&err);
        orch_ctrl_event(l, pod, "Warning", "FailedScheduling", "%s", msg);
        json_decref(patch);
        free(path);
}

/*
 * How many feasible nodes to look for among `n`, as kube-scheduler's
 * default percentageOfNodesToScore: all of them below 100, else
 * 50% - n/125 (at least 5%), and at least 100.
 */
static size_t feasible_wanted(size_t n)
{
        size_t pct, want;

        if (n < 100)
                return n;
        pct = n / 125 < 45 ? 50 - n / 125 : 5;
        want = n * pct / 100;
        return want < 100 ? 100 : want;
}

/* Per-batch scratch space, sized to the node slots. */
struct scratch {
        size_t *slots;
        double *raw;
        size_t cap;
};

/*
 * Choose a node for `pl->pod` (under the state's lock) and assume it
 * there. Returns the slot, or -1 with kubectl's message in `msg`.
 */
static long sched_choose(struct sched_state *s, struct placing *pl, const char *key,
                         struct scratch *sc, struct sw_buf *msg)
{
        struct reason_count rs[16];
        char reasons[2][128];
        size_t present, found = 0, want, i, seen = 0;
        double best_score = -1e18, rmin = 0, rmax = 0;
        long best = -1;
        int nrs = 0;

        if (sc->cap < s->nnodes) {
                sc->cap = s->node_cap;
                sc->slots = sw_xrealloc(sc->slots, sc->cap * sizeof(*sc->slots));
                sc->raw = sw_xrealloc(sc->raw, sc->cap * sizeof(*sc->raw));
        }
        spread_prepare(s, pl);
        present = s->npresent;
        want = feasible_wanted(present);
        for (; seen < s->nnodes && found < want; seen++) {
                size_t slot = (s->next_start + seen) % s->nnodes;
                const struct sched_node *n = &s->nodes[slot];
                if (!n->node)
                        continue;
                if (!node_fits(n, slot, pl, reasons)) {
                        add_reason(rs, &nrs, reasons[0]);
                        if (reasons[1][0])
                                add_reason(rs, &nrs, reasons[1]);
                        continue;
                }
                sc->slots[found] = slot;
                sc->raw[found] = pl->soft ? spread_raw(pl, n, slot) : 0;
                if (sc->raw[found] >= 0) {
                        if (found == 0 || sc->raw[found] < rmin)
                                rmin = sc->raw[found];
                        if (sc->raw[found] > rmax)
                                rmax = sc->raw[found];
                }
                found++;
        }
        if (s->nnodes)
                s->next_start = (s->next_start + seen) % s->nnodes;
        if (found == 0) {
                struct sw_err err = SW_ERR_INIT;
                sw_buf_printf(msg, &err, "0/%zu nodes are available", present);
                qsort(rs, (size_t)nrs, sizeof(rs[0]), cmp_reason);
                for (int r = 0; r < nrs; r++)
                        sw_buf_printf(msg, &err, "%s %d %s", r ? "," : ":", rs[r].n, rs[r].text);
                sw_buf_puts(msg, ".", &err);
                return -1;
        }
        for (i = 0; i < found; i++) {
                const struct sched_node *n = &s->nodes[sc->slots[i]];
                double fc = n->cpu > 0 ? (double)(n->ucpu + pl->cpu) / (double)n->cpu : 1.0;
                double fm = n->mem > 0 ? (double)(n->umem + pl->mem) / (double)n->mem : 1.0;
                double least = ((1.0 - fc) + (1.0 - fm)) * 50.0;
                double balanced = 100.0 - (fc > fm ? fc - fm : fm - fc) * 100.0;
                double spread = 100.0, score;
                if (sc->raw[i] < 0)
                        spread = 0;
                else if (rmax > 0)
                        spread = 100.0 * (rmax + rmin - sc->raw[i]) / rmax;
                /* kube-scheduler's weights: spread and node affinity count twice */
                score = least + balanced + 2.0 * spread +
                        (pl->prefs ? 2.0 * (double)preferred_affinity(pl->prefs, n->labels) : 0);
                if (score > best_score) {
                        best_score = score;
                        best = (long)sc->slots[i];
                }
        }
        pod_remember(s, key, pl->pod, best, true);
        json_object_del(s->waiting, key);
        return best;
}

/* Bind `pod` to `node` through the binding subresource. */
static int sched_bind(struct orch_kube *kc, const json_t *pod, const char *node, struct sw_err *err)
{
        const json_t *md = json_object_get(pod, "metadata");
        json_t *b = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:s,s:s}}", "apiVersion", "v1", "kind",
                              "Binding", "metadata", "name", sw_json_str(md, "name", ""),
                              "namespace", sw_json_str(md, "namespace", ""), "target", "apiVersion",
                              "v1", "kind", "Node", "name", node);
        char *path = sw_xasprintf("/api/v1/namespaces/%s/pods/%s/binding",
                                  sw_json_str(md, "namespace", ""), sw_json_str(md, "name", ""));
        int rc = orch_kube_request(NULL, NULL, kc, "POST", path, NULL, b, err);

        json_decref(b);
        free(path);
        return rc;
}

/* A binding that failed: undo the assumption, and try the pod again unless that is moot. */
static void bind_failed(struct sched_state *s, struct bind_job *j, int rc)
{
        struct orch_ctrl_loop *l = s->loop;
        struct sched_pod *p;

        pthread_mutex_lock(&s->mu);
        p = pod_find(s, j->key);
        if (p && p->assumed)
                pod_forget(s, j->key);
        pthread_mutex_unlock(&s->mu);
        if (rc != SW_ENOTFOUND && rc != SW_ECONFLICT && !atomic_load(&l->mgr->stop))
                orch_ctrl_queue_add_after(&l->q, j->key, 200);
}

/*
 * A binder thread: POST the bindings the loop queued, up to BIND_HOLD at
 * a time committed together, then their Scheduled Events; a binding that
 * fails undoes the assumption, and the pod is tried again unless it is
 * gone or someone else bound it.
 */
static void *binder_main(void *arg)
{
        struct sched_state *s = arg;
        struct orch_ctrl_loop *l = s->loop, self;
        struct sw_err err = SW_ERR_INIT;
        struct orch_kube *kc = NULL;
        struct bind_job js[BIND_HOLD];
        int rcs[BIND_HOLD];

        if (orch_ctrl_client(&kc, l->mgr, &err) != 0) {
                sw_log(SW_LOG_ERROR, "sched", "binder without a client", "{s:s}", "error", err.msg);
                kc = NULL;
        }
        /* Events go out through this thread's own client, as the scheduler. */
        memset(&self, 0, sizeof(self));
        self.name = l->name;
        self.mgr = l->mgr;
        self.kc = kc;
        for (;;) {
                size_t n = 0;
                pthread_mutex_lock(&s->bmu);
                while (!s->closing && s->njobs == 0)
                        pthread_cond_wait(&s->bcv, &s->bmu);
                if (s->njobs == 0) {
                        pthread_mutex_unlock(&s->bmu);
                        break;
                }
                /* A fair share of what is queued, so that every binder has work. */
                while (s->njobs > 0 && n < BIND_HOLD && (n == 0 || s->njobs >= BINDERS)) {
                        js[n++] = s->jobs[s->jhead];
                        s->jhead = (s->jhead + 1) % BIND_QUEUE;
                        s->njobs--;
                }
                pthread_cond_broadcast(&s->bcv);
                pthread_mutex_unlock(&s->bmu);
                if (kc)
                        orch_kube_hold(kc);
                for (size_t i = 0; i < n; i++) {
                        sw_err_clear(&err);
                        rcs[i] = kc && !atomic_load(&l->mgr->stop)
                                         ? sched_bind(kc, js[i].pod, js[i].node, &err)
                                         : SW_EUNAVAIL;
                }
                sw_err_clear(&err);
                if (kc && orch_kube_release(kc, &err) != 0)
                        for (size_t i = 0; i < n; i++)
                                rcs[i] = rcs[i] ? rcs[i] : err.code;
                for (size_t i = 0; i < n; i++) {
                        struct bind_job *j = &js[i];
                        if (rcs[i] == 0) {
                                const json_t *md = json_object_get(j->pod, "metadata");
                                orch_ctrl_event(&self, j->pod, "Normal", "Scheduled",
                                                "Successfully assigned %s/%s to %s",
                                                sw_json_str(md, "namespace", ""),
                                                sw_json_str(md, "name", ""), j->node);
                        } else {
                                bind_failed(s, j, rcs[i]);
                        }
                        json_decref(j->pod);
                        free(j->key);
                        free(j->node);
                }
        }
        orch_kube_free(kc);
        return NULL;
}

/* Hand a binding to the binders, waiting while BIND_QUEUE are in flight. */
static void bind_enqueue(struct sched_state *s, const json_t *pod, const char *key,
                         const char *node)
{
        struct bind_job *j;

        pthread_mutex_lock(&s->bmu);
        if (!s->jobs)
                s->jobs = sw_xcalloc(BIND_QUEUE, sizeof(*s->jobs));
        while (s->nbinders < BINDERS &&
               pthread_create(&s->binders[s->nbinders], NULL, binder_main, s) == 0)
                s->nbinders++;
        while (!s->closing && s->njobs == BIND_QUEUE)
                pthread_cond_wait(&s->bcv, &s->bmu);
        j = &s->jobs[(s->jhead + s->njobs) % BIND_QUEUE];
        j->pod = json_incref((json_t *)pod);
        j->key = sw_xstrdup(key);
        j->node = sw_xstrdup(node);
        s->njobs++;
        pthread_cond_signal(&s->bcv);
        pthread_mutex_unlock(&s->bmu);
}

static void sched_batch(struct orch_ctrl_loop *l, json_t *keys)
{
        struct sched_state *s = l->state;
        json_t **pending = sw_xcalloc(json_array_size(keys) + 1, sizeof(*pending)), *k;
        struct scratch sc = {NULL, NULL, 0};
        size_t i, npending = 0;

        pthread_mutex_lock(&s->mu);
        counters_expire(s);
        json_array_foreach(keys, i, k)
        {
                json_t *pod = orch_informer_get(&l->mgr->pods, json_string_value(k));
                struct sched_pod *p = pod_find(s, json_string_value(k));
                if (pod && pod_pending(pod) && !(p && p->assumed))
                        pending[npending++] = pod;
                else
                        json_decref(pod);
        }
        pthread_mutex_unlock(&s->mu);
        qsort(pending, npending, sizeof(*pending), cmp_pods);
        for (size_t t = 0; t < npending && !atomic_load(&l->mgr->stop); t++) {
                const json_t *pod = pending[t];
                const json_t *spec = json_object_get(pod, "spec");
                struct placing pl;
                struct sw_buf msg;
                char *key = orch_ctrl_key(pod), *node = NULL;
                long slot;

                memset(&pl, 0, sizeof(pl));
                pl.pod = pod;
                pl.tols = json_object_get(spec, "tolerations");
                pl.prefs = json_object_get(
                        json_object_get(json_object_get(spec, "affinity"), "nodeAffinity"),
                        "preferredDuringSchedulingIgnoredDuringExecution");
                if (json_array_size(pl.prefs) == 0)
                        pl.prefs = NULL;
                pod_requests(pod, &pl.cpu, &pl.mem);
                pl.ports = pod_host_ports(pod);
                pl.selective = selective(pod);
                sw_buf_init(&msg, 4096);
                pthread_mutex_lock(&s->mu);
                slot = sched_choose(s, &pl, key, &sc, &msg);
                if (slot >= 0)
                        node = sw_xstrdup(s->nodes[slot].name);
                pthread_mutex_unlock(&s->mu);
                placing_release(&pl);
                if (slot < 0)
                        unschedulable(l, pod, key, sw_buf_str(&msg));
                else
                        bind_enqueue(s, pod, key, node);
                sw_buf_release(&msg);
                free(node);
                free(key);
        }
        for (i = 0; i < npending; i++)
                json_decref(pending[i]);
        free(pending);
        free(sc.slots);
        free(sc.raw);
}

void orch_sched_init(struct orch_ctrl_loop *l, struct orch_ctrl *m)
{
        struct sched_state *s = sw_xcalloc(1, sizeof(*s));

        pthread_mutex_init(&s->mu, NULL);
        pthread_mutex_init(&s->bmu, NULL);
        pthread_cond_init(&s->bcv, NULL);
        s->loop = l;
        s->waiting = json_object();
        s->node_idx = json_object();
        s->pod_idx = json_object();
        s->counter_idx = json_object();
        s->pod_free = -1;
        l->name = "default-scheduler";
        l->batch = sched_batch;
        l->state = s;
        l->state_free = sched_state_free;
        orch_informer_add_handler(&m->pods, sched_on_pod, l);
        orch_informer_add_handler(&m->nodes, sched_on_node, l);
}
