/*
 * ctrl_nodes.c - node lifecycle: a node whose last heartbeat is older than
 * the grace period gets Ready=Unknown
 * (NodeStatusUnknown), its pods Ready=False, and the taint
 * node.kubernetes.io/unreachable:NoExecute;
 * the pods bound to it are evicted (deleted at once, the node cannot
 * confirm) when their toleration of that taint runs out (tolerationSeconds,
 * or the configured eviction delay for pods without one), so that their
 * controllers replace them elsewhere. A node that heartbeats again loses
 * the taint.
 *
 * A heartbeat is the newer of the Ready condition's lastHeartbeatTime and
 * the renewTime of the node's Lease in kube-node-lease: kubelets renew the
 * lease often and post the whole status rarely.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/json.h"
#include "common/mem.h"
#include "orchestrator/client/kube.h"
#include "orchestrator/ctrl_int.h"
#include "orchestrator/orch_int.h"
#include "common/banned.h"

#define UNREACHABLE "node.kubernetes.io/unreachable"

static const json_t *ready_cond(const json_t *node)
{
        const json_t *c;
        size_t i;

        json_array_foreach(json_object_get(json_object_get(node, "status"), "conditions"), i, c)
        {
                if (strcmp(sw_json_str(c, "type", ""), "Ready") == 0)
                        return c;
        }
        return NULL;
}

static const json_t *unreachable_taint(const json_t *node)
{
        const json_t *t;
        size_t i;

        json_array_foreach(json_object_get(json_object_get(node, "spec"), "taints"), i, t)
        {
                if (strcmp(sw_json_str(t, "key", ""), UNREACHABLE) == 0 &&
                    strcmp(sw_json_str(t, "effect", ""), "NoExecute") == 0)
                        return t;
        }
        return NULL;
}

/* Taints without the unreachable one, plus it when `add`. */
static json_t *taints_with(const json_t *node, bool add, int64_t now)
{
        json_t *out = json_array();
        const json_t *t;
        size_t i;
        char ts[32];

        json_array_foreach(json_object_get(json_object_get(node, "spec"), "taints"), i, t)
        {
                if (strcmp(sw_json_str(t, "key", ""), UNREACHABLE) != 0)
                        json_array_append(out, (json_t *)t);
        }
        if (add) {
                orch_time_fmt(ts, sizeof(ts), now);
                json_array_append_new(out, json_pack("{s:s,s:s,s:s}", "key", UNREACHABLE, "effect",
                                                     "NoExecute", "timeAdded", ts));
        }
        return out;
}

/* How long `pod` tolerates the unreachable taint: -1 forever, else ms. */
static int64_t toleration_ms(const json_t *pod, int64_t def_ms)
{
        const json_t *t;
        size_t i;

        json_array_foreach(json_object_get(json_object_get(pod, "spec"), "tolerations"), i, t)
        {
                const char *key = sw_json_str(t, "key", "");
                const char *eff = sw_json_str(t, "effect", "");
                if (*key && strcmp(key, UNREACHABLE) != 0)
                        continue;
                if (*eff && strcmp(eff, "NoExecute") != 0)
                        continue;
                if (!*key && strcmp(sw_json_str(t, "operator", ""), "Exists") != 0)
                        continue;
                if (!json_is_integer(json_object_get(t, "tolerationSeconds")))
                        return -1;
                return sw_json_int(t, "tolerationSeconds", 0) * 1000;
        }
        return def_ms;
}

static void evict_pods(struct orch_ctrl_loop *l, const json_t *node, int64_t since, int64_t now)
{
        const char *name = sw_json_str(json_object_get(node, "metadata"), "name", "");
        json_t *pods = orch_informer_list(&l->mgr->pods, NULL), *p;
        json_t *body = json_pack("{s:s,s:s,s:i}", "apiVersion", "v1", "kind", "DeleteOptions",
                                 "gracePeriodSeconds", 0);
        size_t i;

        json_array_foreach(pods, i, p)
        {
                const json_t *md = json_object_get(p, "metadata");
                struct sw_err err = SW_ERR_INIT;
                int64_t tol;
                char *path;
                if (strcmp(sw_json_str(json_object_get(p, "spec"), "nodeName", ""), name) != 0)
                        continue;
                tol = toleration_ms(p, l->mgr->opts.eviction_ms);
                if (tol < 0 || since + tol > now)
                        continue;
                path = sw_xasprintf("/api/v1/namespaces/%s/pods/%s",
                                    sw_json_str(md, "namespace", ""), sw_json_str(md, "name", ""));
                if (orch_kube_request(NULL, NULL, l->kc, "DELETE", path, NULL, body, &err) == 0)
                        orch_ctrl_event(l, p, "Normal", "TaintManagerEviction",
                                        "Marking for deletion Pod %s/%s",
                                        sw_json_str(md, "namespace", ""),
                                        sw_json_str(md, "name", ""));
                free(path);
        }
        json_decref(body);
        json_decref(pods);
}

/* The pods of an unreachable node stop being Ready, so Endpoints drop them at once. */
static void mark_pods_not_ready(struct orch_ctrl_loop *l, const char *node, int64_t now)
{
        json_t *pods = orch_informer_list(&l->mgr->pods, NULL), *p;
        char ts[32];
        size_t i;

        orch_time_fmt(ts, sizeof(ts), now);
        json_array_foreach(pods, i, p)
        {
                const json_t *md = json_object_get(p, "metadata");
                struct sw_err err = SW_ERR_INIT;
                json_t *conds, *c, *patch;
                size_t j;
                char *path;
                if (strcmp(sw_json_str(json_object_get(p, "spec"), "nodeName", ""), node) != 0 ||
                    !orch_ctrl_pod_ready(p, 0, 0, NULL))
                        continue;
                conds = sw_json_copy(json_object_get(json_object_get(p, "status"), "conditions"));
                json_array_foreach(conds, j, c)
                {
                        if (strcmp(sw_json_str(c, "type", ""), "Ready") != 0)
                                continue;
                        json_object_set_new(c, "status", json_string("False"));
                        json_object_set_new(c, "reason", json_string("NodeNotReady"));
                        json_object_set_new(c, "lastTransitionTime", json_string(ts));
                }
                patch = json_pack("{s:{s:o}}", "status", "conditions", conds);
                path = sw_xasprintf("/api/v1/namespaces/%s/pods/%s/status",
                                    sw_json_str(md, "namespace", ""), sw_json_str(md, "name", ""));
                if (orch_ctrl_patch(NULL, l, path, patch, &err) == 0)
                        orch_ctrl_event(l, p, "Warning", "NodeNotReady", "Node is not ready");
                sw_err_clear(&err);
                json_decref(patch);
                free(path);
        }
        json_decref(pods);
}

/* The node's last heartbeat (epoch ms) from its status and its Lease; -1 when none. */
static int64_t last_heartbeat(struct orch_ctrl_loop *l, const json_t *node, const json_t *ready)
{
        const char *name = sw_json_str(json_object_get(node, "metadata"), "name", "");
        int64_t hb = ready ? orch_time_parse(sw_json_str(ready, "lastHeartbeatTime", "")) : -1;
        char *key = sw_xasprintf("kube-node-lease/%s", name);
        json_t *lease = orch_informer_get(&l->mgr->leases, key);
        int64_t renew =
                orch_time_parse(sw_json_str(json_object_get(lease, "spec"), "renewTime", ""));

        json_decref(lease);
        free(key);
        return renew > hb ? renew : hb;
}

static void nodes_tick(struct orch_ctrl_loop *l)
{
        json_t *nodes = orch_informer_list(&l->mgr->nodes, NULL), *n;
        int64_t now = sw_now_ms();
        size_t i;

        json_array_foreach(nodes, i, n)
        {
                const json_t *rc = ready_cond(n), *taint = unreachable_taint(n);
                const char *name = sw_json_str(json_object_get(n, "metadata"), "name", "");
                int64_t hb = last_heartbeat(l, n, rc);
                bool stale = hb >= 0 && now - hb > l->mgr->opts.node_grace_ms;
                struct sw_err err = SW_ERR_INIT;
                char *path;

                if (!rc || hb < 0)
                        continue; /* never heartbeated: nothing to judge */
                if (stale && strcmp(sw_json_str(rc, "status", ""), "Unknown") != 0) {
                        json_t *conds = sw_json_copy(
                                json_object_get(json_object_get(n, "status"), "conditions"));
                        json_t *c, *patch;
                        char ts[32];
                        size_t j;
                        orch_time_fmt(ts, sizeof(ts), now);
                        json_array_foreach(conds, j, c)
                        {
                                if (strcmp(sw_json_str(c, "type", ""), "Ready") != 0)
                                        continue;
                                json_object_set_new(c, "status", json_string("Unknown"));
                                json_object_set_new(c, "reason", json_string("NodeStatusUnknown"));
                                json_object_set_new(c, "message",
                                                    json_string("Kubelet stopped posting node "
                                                                "status."));
                                json_object_set_new(c, "lastTransitionTime", json_string(ts));
                        }
                        patch = json_pack("{s:{s:o}}", "status", "conditions", conds);
                        path = sw_xasprintf("/api/v1/nodes/%s/status", name);
                        if (orch_ctrl_patch(NULL, l, path, patch, &err) == 0) {
                                orch_ctrl_event(l, n, "Normal", "NodeNotReady",
                                                "Node %s status is now: NodeNotReady", name);
                                mark_pods_not_ready(l, name, now);
                        }
                        sw_err_clear(&err);
                        json_decref(patch);
                        free(path);
                }
                if (stale && !taint) {
                        json_t *patch =
                                json_pack("{s:{s:o}}", "spec", "taints", taints_with(n, true, now));
                        path = sw_xasprintf("/api/v1/nodes/%s", name);
                        if (orch_ctrl_patch(NULL, l, path, patch, &err) != 0)
                                sw_err_clear(&err);
                        json_decref(patch);
                        free(path);
                } else if (!stale && taint && strcmp(sw_json_str(rc, "status", ""), "True") == 0) {
                        json_t *patch = json_pack("{s:{s:o}}", "spec", "taints",
                                                  taints_with(n, false, now));
                        path = sw_xasprintf("/api/v1/nodes/%s", name);
                        if (orch_ctrl_patch(NULL, l, path, patch, &err) != 0)
                                sw_err_clear(&err);
                        json_decref(patch);
                        free(path);
                } else if (stale && taint) {
                        int64_t since = orch_time_parse(sw_json_str(taint, "timeAdded", ""));
                        evict_pods(l, n, since < 0 ? now : since, now);
                }
        }
        json_decref(nodes);
}

static int nodes_reconcile(struct orch_ctrl_loop *l, const char *key, struct sw_err *err)
{
        (void)l;
        (void)key;
        (void)err;
        return 0;
}

void orch_ctrl_nodes_init(struct orch_ctrl_loop *l, struct orch_ctrl *m)
{
        (void)m;
        l->name = "node-lifecycle-controller";
        l->reconcile = nodes_reconcile;
        l->tick = nodes_tick;
        l->tick_ms = 500;
}
