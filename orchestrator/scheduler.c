/*
 * scheduler.c - the scheduler: binds pods that have no spec.nodeName to a
 * node, through the pods/<name>/binding subresource.
 *
 * Pending pods come from the pod informer into the loop's key queue; each
 * pass takes every due key at once, builds the per-node accounting (what
 * bound and just-bound pods request, their host ports, how many replicas
 * of each workload a node runs) in one scan, then places the pods in
 * priority-then-age order, so one pod costs O(nodes). Filters, in
 * kube-scheduler's order, stop at a node's first failure: cordon,
 * readiness, taints vs tolerations, nodeSelector and required node
 * affinity, host ports, cpu/memory/pod count against allocatable. Scores:
 * least allocated, balanced allocation, spread of a workload's replicas,
 * preferred node affinity.
 * A pod that fits nowhere gets PodScheduled=False/Unschedulable with
 * kubectl's wording and a FailedScheduling Event, and is retried with
 * backoff, or at once when nodes or pods change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/validate.h"
#include "orchestrator/client/kube.h"
#include "orchestrator/ctrl_int.h"
#include "orchestrator/orch_int.h"
#include "common/banned.h"

struct sched_state {
        pthread_mutex_t mu;
        json_t *assumed; /* pod key -> node name: bound, not yet seen bound in the cache */
        json_t *waiting; /* pod key -> {attempts, msg}: did not fit */
};

struct node_info {
        const json_t *node;
        const char *name;
        int64_t cpu, mem, pods;    /* allocatable; mem in bytes*1000 */
        int64_t ucpu, umem, upods; /* requested by pods on it */
        json_t *ports;             /* "proto/port" -> true */
        json_t *owners;            /* owner uid -> replicas on this node */
        bool ready;
};

static void sched_state_free(void *p)
{
        struct sched_state *s = p;

        if (!s)
                return;
        json_decref(s->assumed);
        json_decref(s->waiting);
        pthread_mutex_destroy(&s->mu);
        free(s);
}

static bool pod_pending(const json_t *pod)
{
        return !*sw_json_str(json_object_get(pod, "spec"), "nodeName", "") &&
               orch_ctrl_pod_active(pod);
}

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
        char *key = orch_ctrl_key(obj);

        if (strcmp(type, "DELETED") != 0 && pod_pending(obj))
                orch_ctrl_queue_add(&l->q, key);
        else if (strcmp(type, "DELETED") == 0 || (old && !orch_ctrl_pod_active(obj)))
                requeue_waiting(l);
        free(key);
}

static void sched_on_node(void *arg, const char *type, const json_t *obj, const json_t *old)
{
        struct orch_ctrl_loop *l = arg;
        const json_t *a = json_object_get(obj, "spec"),
                     *b = old ? json_object_get(old, "spec") : NULL;

        (void)type;
        /* Heartbeats alone change nothing the filters read, except readiness. */
        if (old && json_equal(a, b) &&
            orch_ctrl_pod_ready(obj, 0, 0, NULL) == orch_ctrl_pod_ready(old, 0, 0, NULL) &&
            json_equal(json_object_get(json_object_get(obj, "status"), "allocatable"),
                       json_object_get(json_object_get(old, "status"), "allocatable")) &&
            json_equal(json_object_get(json_object_get(obj, "metadata"), "labels"),
                       json_object_get(json_object_get(old, "metadata"), "labels")))
                return;
        requeue_waiting(l);
}

static int64_t quantity(const json_t *obj, const char *key, int64_t def)
{
        const json_t *v = json_object_get(obj, key);
        struct sw_err err = SW_ERR_INIT;
        int64_t out;

        if (json_is_integer(v))
                return json_integer_value(v) * 1000;
        if (!json_is_string(v) || sw_quantity_milli(&out, json_string_value(v), key, &err) != 0)
                return def;
        return out;
}

static void pod_requests(const json_t *pod, int64_t *cpu, int64_t *mem)
{
        const json_t *c, *ctrs = json_object_get(json_object_get(pod, "spec"), "containers");
        size_t i;

        *cpu = *mem = 0;
        json_array_foreach(ctrs, i, c)
        {
                const json_t *req = json_object_get(json_object_get(c, "resources"), "requests");
                *cpu += quantity(req, "cpu", 0);
                *mem += quantity(req, "memory", 0);
        }
}

static void node_account(struct node_info *ni, const json_t *pod)
{
        int64_t cpu, mem;
        const json_t *c, *p, *ref = orch_ctrl_owner(pod, "ReplicaSet");
        size_t i, j;

        pod_requests(pod, &cpu, &mem);
        ni->ucpu += cpu;
        ni->umem += mem;
        ni->upods++;
        json_array_foreach(json_object_get(json_object_get(pod, "spec"), "containers"), i, c)
        {
                json_array_foreach(json_object_get(c, "ports"), j, p)
                {
                        if (sw_json_int(p, "hostPort", 0) > 0) {
                                char k[48];
                                snprintf(k, sizeof(k), "%s/%lld", sw_json_str(p, "protocol", "TCP"),
                                         (long long)sw_json_int(p, "hostPort", 0));
                                json_object_set_new(ni->ports, k, json_true());
                        }
                }
        }
        if (ref) {
                const char *uid = sw_json_str(ref, "uid", "");
                json_object_set_new(ni->owners, uid,
                                    json_integer(sw_json_int(ni->owners, uid, 0) + 1));
        }
}

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

/*
 * Whether `pod` fits `ni`; when not, `reason` gets the first failing
 * filter's reason(s), as kube-scheduler words them.
 */
static bool node_fits(const struct node_info *ni, const json_t *pod, int64_t cpu, int64_t mem,
                      char reasons[2][128])
{
        const json_t *spec = json_object_get(pod, "spec"), *t, *c, *p;
        const json_t *tols = json_object_get(spec, "tolerations");
        size_t i, j;
        int nr = 0;

        reasons[0][0] = reasons[1][0] = '\0';
        if (json_is_true(json_object_get(json_object_get(ni->node, "spec"), "unschedulable"))) {
                snprintf(reasons[0], 128, "node(s) were unschedulable");
                return false;
        }
        json_array_foreach(json_object_get(json_object_get(ni->node, "spec"), "taints"), i, t)
        {
                const char *eff = sw_json_str(t, "effect", "");
                if (strcmp(eff, "NoSchedule") != 0 && strcmp(eff, "NoExecute") != 0)
                        continue;
                if (!tolerated(t, tols)) {
                        snprintf(reasons[0], 128, "node(s) had untolerated taint {%s: %s}",
                                 sw_json_str(t, "key", ""), sw_json_str(t, "value", ""));
                        return false;
                }
        }
        if (!ni->ready) {
                snprintf(reasons[0], 128, "node(s) were not ready");
                return false;
        }
        if (!affinity_match(pod,
                            json_object_get(json_object_get(ni->node, "metadata"), "labels"))) {
                snprintf(reasons[0], 128, "node(s) didn't match Pod's node affinity/selector");
                return false;
        }
        json_array_foreach(json_object_get(spec, "containers"), i, c)
        {
                json_array_foreach(json_object_get(c, "ports"), j, p)
                {
                        char k[48];
                        if (sw_json_int(p, "hostPort", 0) <= 0)
                                continue;
                        snprintf(k, sizeof(k), "%s/%lld", sw_json_str(p, "protocol", "TCP"),
                                 (long long)sw_json_int(p, "hostPort", 0));
                        if (json_object_get(ni->ports, k)) {
                                snprintf(reasons[0], 128,
                                         "node(s) didn't have free ports for the requested pod "
                                         "ports");
                                return false;
                        }
                }
        }
        if (ni->upods + 1 > ni->pods)
                snprintf(reasons[nr++], 128, "Too many pods");
        if (cpu > 0 && ni->ucpu + cpu > ni->cpu)
                snprintf(reasons[nr++], 128, "Insufficient cpu");
        if (nr < 2 && mem > 0 && ni->umem + mem > ni->mem)
                snprintf(reasons[nr++], 128, "Insufficient memory");
        return nr == 0;
}

/* Preferred node affinity: the weights (1-100) of the terms `labels` match, at most 100. */
static int64_t preferred_affinity(const json_t *pod, const json_t *labels)
{
        const json_t *prefs = json_object_get(
                json_object_get(json_object_get(json_object_get(pod, "spec"), "affinity"),
                                "nodeAffinity"),
                "preferredDuringSchedulingIgnoredDuringExecution");
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

static double node_score(const struct node_info *ni, int64_t cpu, int64_t mem, int64_t same,
                         int64_t max_same)
{
        double fc = ni->cpu > 0 ? (double)(ni->ucpu + cpu) / (double)ni->cpu : 1.0;
        double fm = ni->mem > 0 ? (double)(ni->umem + mem) / (double)ni->mem : 1.0;
        double least = ((1.0 - fc) + (1.0 - fm)) * 50.0;
        double balanced = 100.0 - (fc > fm ? fc - fm : fm - fc) * 100.0;
        double spread = max_same > 0 ? 100.0 * (double)(max_same - same) / (double)max_same : 100.0;

        return least + balanced + 2.0 * spread;
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

static void sched_batch(struct orch_ctrl_loop *l, json_t *keys)
{
        struct sched_state *s = l->state;
        json_t *nodes = orch_informer_list(&l->mgr->nodes, NULL);
        json_t *pods = orch_informer_list(&l->mgr->pods, NULL), *byname = json_object();
        json_t *p, *k, **todo = NULL;
        struct node_info *ni = sw_xcalloc(json_array_size(nodes) + 1, sizeof(*ni));
        size_t nn = json_array_size(nodes), i, ntodo = 0;
        const char *ak;
        json_t *av;
        void *tmp;

        for (i = 0; i < nn; i++) {
                const json_t *n = json_array_get(nodes, i);
                const json_t *st = json_object_get(n, "status");
                const json_t *al = json_object_get(st, "allocatable");
                if (!al)
                        al = json_object_get(st, "capacity");
                ni[i].node = n;
                ni[i].name = sw_json_str(json_object_get(n, "metadata"), "name", "");
                ni[i].cpu = quantity(al, "cpu", 0);
                ni[i].mem = quantity(al, "memory", 0);
                ni[i].pods = quantity(al, "pods", 110000) / 1000;
                ni[i].ports = json_object();
                ni[i].owners = json_object();
                ni[i].ready = orch_ctrl_pod_ready(n, 0, 0, NULL);
                json_object_set_new(byname, ni[i].name, json_integer((json_int_t)i));
        }
        /* Forget assumptions the cache now confirms (or that went away). */
        {
                json_t *bykey = json_object();
                json_array_foreach(pods, i, p)
                {
                        char *pk = orch_ctrl_key(p);
                        json_object_set(bykey, pk, p);
                        free(pk);
                }
                pthread_mutex_lock(&s->mu);
                json_object_foreach_safe(s->assumed, tmp, ak, av)
                {
                        json_t *cp = json_object_get(bykey, ak);
                        if (!cp || !pod_pending(cp))
                                json_object_del(s->assumed, ak);
                }
                json_object_foreach_safe(s->waiting, tmp, ak, av)
                {
                        json_t *cp = json_object_get(bykey, ak);
                        if (!cp || !pod_pending(cp))
                                json_object_del(s->waiting, ak);
                }
                pthread_mutex_unlock(&s->mu);
                todo = sw_xcalloc(json_array_size(keys) + 1, sizeof(*todo));
                json_array_foreach(keys, i, k)
                {
                        json_t *cp = json_object_get(bykey, json_string_value(k));
                        if (cp && pod_pending(cp) &&
                            !json_object_get(s->assumed, json_string_value(k)))
                                todo[ntodo++] = cp;
                }
                json_decref(bykey);
        }
        json_array_foreach(pods, i, p)
        {
                const char *node = sw_json_str(json_object_get(p, "spec"), "nodeName", "");
                json_t *idx;
                char *pk = NULL;
                if (!orch_ctrl_pod_active(p) &&
                    !json_object_get(json_object_get(p, "metadata"), "deletionTimestamp"))
                        continue;
                if (!*node) {
                        pk = orch_ctrl_key(p);
                        node = sw_json_str(s->assumed, pk, "");
                        free(pk);
                }
                idx = json_object_get(byname, node);
                if (*node && idx)
                        node_account(&ni[json_integer_value(idx)], p);
        }
        qsort(todo, ntodo, sizeof(*todo), cmp_pods);
        for (size_t t = 0; t < ntodo && !atomic_load(&l->mgr->stop); t++) {
                const json_t *pod = todo[t], *md = json_object_get(pod, "metadata");
                const json_t *ref = orch_ctrl_owner(pod, "ReplicaSet");
                const char *owner = ref ? sw_json_str(ref, "uid", "") : NULL;
                struct reason_count rs[16];
                int nrs = 0;
                int64_t cpu, mem, max_same = 0;
                double best_score = -1e18;
                long best = -1;
                char *key = orch_ctrl_key(pod);
                char reasons[2][128];

                pod_requests(pod, &cpu, &mem);
                if (owner)
                        for (i = 0; i < nn; i++)
                                if (sw_json_int(ni[i].owners, owner, 0) > max_same)
                                        max_same = sw_json_int(ni[i].owners, owner, 0);
                for (i = 0; i < nn; i++) {
                        double sc;
                        if (!node_fits(&ni[i], pod, cpu, mem, reasons)) {
                                add_reason(rs, &nrs, reasons[0]);
                                if (reasons[1][0])
                                        add_reason(rs, &nrs, reasons[1]);
                                continue;
                        }
                        sc = node_score(&ni[i], cpu, mem,
                                        owner ? sw_json_int(ni[i].owners, owner, 0) : 0, max_same);
                        /* as kube-scheduler weighs NodeAffinity: twice its 0-100 score */
                        sc += 2.0 *
                              (double)preferred_affinity(
                                      pod, json_object_get(json_object_get(ni[i].node, "metadata"),
                                                           "labels"));
                        if (sc > best_score) {
                                best_score = sc;
                                best = (long)i;
                        }
                }
                if (best < 0) {
                        struct sw_buf msg;
                        struct sw_err berr = SW_ERR_INIT;
                        char head[64];
                        sw_buf_init(&msg, 4096);
                        snprintf(head, sizeof(head), "0/%zu nodes are available", nn);
                        sw_buf_puts(&msg, head, &berr);
                        qsort(rs, (size_t)nrs, sizeof(rs[0]), cmp_reason);
                        for (int r = 0; r < nrs; r++) {
                                sw_buf_printf(&msg, &berr, "%s %d %s", r ? "," : ":", rs[r].n,
                                              rs[r].text);
                        }
                        sw_buf_puts(&msg, ".", &berr);
                        unschedulable(l, pod, key, sw_buf_str(&msg));
                        sw_buf_release(&msg);
                } else {
                        struct sw_err err = SW_ERR_INIT;
                        json_t *b = json_pack(
                                "{s:s,s:s,s:{s:s,s:s},s:{s:s,s:s,s:s}}", "apiVersion", "v1", "kind",
                                "Binding", "metadata", "name", sw_json_str(md, "name", ""),
                                "namespace", sw_json_str(md, "namespace", ""), "target",
                                "apiVersion", "v1", "kind", "Node", "name", ni[best].name);
                        char *path = sw_xasprintf("/api/v1/namespaces/%s/pods/%s/binding",
                                                  sw_json_str(md, "namespace", ""),
                                                  sw_json_str(md, "name", ""));
                        int rc = orch_kube_request(NULL, NULL, l->kc, "POST", path, NULL, b, &err);
                        if (rc == 0) {
                                json_t *cp = json_deep_copy(pod);
                                json_object_set_new(json_object_get(cp, "spec"), "nodeName",
                                                    json_string(ni[best].name));
                                node_account(&ni[best], cp);
                                json_decref(cp);
                                pthread_mutex_lock(&s->mu);
                                json_object_set_new(s->assumed, key, json_string(ni[best].name));
                                json_object_del(s->waiting, key);
                                pthread_mutex_unlock(&s->mu);
                                orch_ctrl_event(l, pod, "Normal", "Scheduled",
                                                "Successfully assigned %s/%s to %s",
                                                sw_json_str(md, "namespace", ""),
                                                sw_json_str(md, "name", ""), ni[best].name);
                        } else if (rc != SW_ENOTFOUND && rc != SW_ECONFLICT) {
                                orch_ctrl_queue_add_after(&l->q, key, 200);
                        }
                        json_decref(b);
                        free(path);
                }
                free(key);
        }
        for (i = 0; i < nn; i++) {
                json_decref(ni[i].ports);
                json_decref(ni[i].owners);
        }
        free(ni);
        free(todo);
        json_decref(byname);
        json_decref(nodes);
        json_decref(pods);
}

void orch_sched_init(struct orch_ctrl_loop *l, struct orch_ctrl *m)
{
        struct sched_state *s = sw_xcalloc(1, sizeof(*s));

        pthread_mutex_init(&s->mu, NULL);
        s->assumed = json_object();
        s->waiting = json_object();
        l->name = "default-scheduler";
        l->batch = sched_batch;
        l->state = s;
        l->state_free = sched_state_free;
        orch_informer_add_handler(&m->pods, sched_on_pod, l);
        orch_informer_add_handler(&m->nodes, sched_on_node, l);
}
