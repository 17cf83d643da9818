/*
 * ctrl_endpoints.c - the Endpoints controller: for every Service with a
 * selector, an Endpoints object of the same name listing the selected
 * pods' status.podIP, ready ones in `addresses` and the others in
 * `notReadyAddresses`, with the Service's target ports (a named
 * targetPort is resolved from each pod's container ports, so pods that
 * name it differently land in different subsets). The Endpoints of a
 * Service that is gone are deleted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/mem.h"
#include "orchestrator/client/kube.h"
#include "orchestrator/ctrl_int.h"
#include "common/banned.h"

static void ep_on_service(void *arg, const char *type, const json_t *obj, const json_t *old)
{
        struct orch_ctrl_loop *l = arg;
        char *key = orch_ctrl_key(obj);

        (void)type;
        (void)old;
        orch_ctrl_queue_add(&l->q, key);
        free(key);
}

/* A pod change touches the Services of its namespace that select it (before or after). */
static void ep_on_pod(void *arg, const char *type, const json_t *obj, const json_t *old)
{
        struct orch_ctrl_loop *l = arg;
        const char *ns = sw_json_str(json_object_get(obj, "metadata"), "namespace", "");
        json_t *svcs = orch_informer_list(&l->mgr->services, ns), *s;
        size_t i;

        (void)type;
        json_array_foreach(svcs, i, s)
        {
                const json_t *sel = json_object_get(json_object_get(s, "spec"), "selector");
                json_t *ls = json_pack("{s:O}", "matchLabels", sel ? sel : json_null());
                bool hit = orch_ctrl_selects(
                        ls, json_object_get(json_object_get(obj, "metadata"), "labels"));
                if (!hit && old)
                        hit = orch_ctrl_selects(
                                ls, json_object_get(json_object_get(old, "metadata"), "labels"));
                if (hit) {
                        char *key = orch_ctrl_key(s);
                        orch_ctrl_queue_add(&l->q, key);
                        free(key);
                }
                json_decref(ls);
        }
        json_decref(svcs);
}

/* The endpoint ports of `pod` for the Service ports, or NULL when a named port is missing. */
static json_t *pod_ports(const json_t *svc_ports, const json_t *pod)
{
        json_t *out = json_array();
        const json_t *sp, *ctrs = json_object_get(json_object_get(pod, "spec"), "containers");
        size_t i, j, k;

        json_array_foreach(svc_ports, i, sp)
        {
                const json_t *tp = json_object_get(sp, "targetPort");
                int64_t port = -1;
                json_t *ep;
                if (json_is_integer(tp))
                        port = json_integer_value(tp);
                else if (!tp)
                        port = sw_json_int(sp, "port", 0);
                else if (json_is_string(tp)) {
                        const json_t *c, *cp;
                        json_array_foreach(ctrs, j, c)
                        {
                                json_array_foreach(json_object_get(c, "ports"), k, cp)
                                {
                                        if (strcmp(sw_json_str(cp, "name", ""),
                                                   json_string_value(tp)) == 0)
                                                port = sw_json_int(cp, "containerPort", -1);
                                }
                        }
                }
                if (port <= 0)
                        continue;
                ep = json_pack("{s:I,s:s}", "port", (json_int_t)port, "protocol",
                               sw_json_str(sp, "protocol", "TCP"));
                if (json_object_get(sp, "name"))
                        json_object_set(ep, "name", json_object_get(sp, "name"));
                json_array_append_new(out, ep);
        }
        return out;
}

static int cmp_ip(const void *a, const void *b)
{
        const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
        int c = strcmp(sw_json_str(x, "ip", ""), sw_json_str(y, "ip", ""));
        if (c)
                return c;
        return strcmp(sw_json_str(json_object_get(x, "targetRef"), "name", ""),
                      sw_json_str(json_object_get(y, "targetRef"), "name", ""));
}

/* A stable order, so that an unchanged set of pods writes nothing. */
static void sort_by_ip(json_t *arr)
{
        size_t n = json_array_size(arr);
        json_t **v = sw_xcalloc(n + 1, sizeof(*v));

        for (size_t i = 0; i < n; i++)
                v[i] = json_incref(json_array_get(arr, i));
        qsort(v, n, sizeof(*v), cmp_ip);
        json_array_clear(arr);
        for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, v[i]);
        free(v);
}

static int ep_reconcile(struct orch_ctrl_loop *l, const char *key, struct sw_err *err)
{
        char *ns = NULL, *name = NULL, *path = NULL;
        json_t *svc = NULL, *pods = NULL, *p, *groups = NULL, *subsets = NULL, *cur = NULL;
        json_t *ep = NULL, *sel = NULL, *g;
        const json_t *selector;
        const char *gk;
        size_t i;
        int rc = 0;

        orch_ctrl_key_split(key, &ns, &name);
        path = sw_xasprintf("/api/v1/namespaces/%s/endpoints/%s", ns, name);
        svc = orch_informer_get(&l->mgr->services, key);
        if (!svc) {
                rc = orch_kube_delete(l->kc, path, NULL, err);
                if (rc == SW_ENOTFOUND) {
                        sw_err_clear(err);
                        rc = 0;
                }
                goto out;
        }
        selector = json_object_get(json_object_get(svc, "spec"), "selector");
        if (!json_is_object(selector) || json_object_size(selector) == 0)
                goto out; /* a Service without selector has hand-made Endpoints */
        sel = json_pack("{s:O}", "matchLabels", selector);
        pods = orch_informer_list(&l->mgr->pods, ns);
        groups = json_object();
        json_array_foreach(pods, i, p)
        {
                const json_t *md = json_object_get(p, "metadata");
                const char *ip = sw_json_str(json_object_get(p, "status"), "podIP", "");
                json_t *ports, *addr, *grp;
                char *sig;
                if (!*ip || json_object_get(md, "deletionTimestamp") ||
                    !orch_ctrl_selects(sel, json_object_get(md, "labels")))
                        continue;
                ports = pod_ports(json_object_get(json_object_get(svc, "spec"), "ports"), p);
                sig = json_dumps(ports, JSON_COMPACT | JSON_SORT_KEYS);
                grp = json_object_get(groups, sig);
                if (!grp) {
                        grp = json_pack("{s:[],s:[],s:O}", "addresses", "notReadyAddresses",
                                        "ports", ports);
                        json_object_set_new(groups, sig, grp);
                }
                addr = json_pack("{s:s,s:{s:s,s:s,s:s,s:s}}", "ip", ip, "targetRef", "kind", "Pod",
                                 "namespace", ns, "name", sw_json_str(md, "name", ""), "uid",
                                 sw_json_str(md, "uid", ""));
                if (*sw_json_str(json_object_get(p, "spec"), "nodeName", ""))
                        json_object_set_new(addr, "nodeName",
                                            json_string(sw_json_str(json_object_get(p, "spec"),
                                                                    "nodeName", "")));
                json_array_append_new(json_object_get(grp, orch_ctrl_pod_ready(p, 0, 0, NULL)
                                                                   ? "addresses"
                                                                   : "notReadyAddresses"),
                                      addr);
                json_decref(ports);
                free(sig);
        }
        subsets = json_array();
        json_object_foreach(groups, gk, g)
        {
                sort_by_ip(json_object_get(g, "addresses"));
                sort_by_ip(json_object_get(g, "notReadyAddresses"));
                if (json_array_size(json_object_get(g, "addresses")) == 0)
                        json_object_del(g, "addresses");
                if (json_array_size(json_object_get(g, "notReadyAddresses")) == 0)
                        json_object_del(g, "notReadyAddresses");
                json_array_append(subsets, g);
        }
        rc = orch_kube_get(&cur, l->kc, path, err);
        if (rc == SW_ENOTFOUND) {
                char *coll = sw_xasprintf("/api/v1/namespaces/%s/endpoints", ns);
                sw_err_clear(err);
                const json_t *lab = json_object_get(json_object_get(svc, "metadata"), "labels");
                ep = json_pack("{s:s,s:s,s:{s:s,s:s,s:o},s:O}", "apiVersion", "v1", "kind",
                               "Endpoints", "metadata", "name", name, "namespace", ns, "labels",
                               lab ? sw_json_copy(lab) : json_object(), "subsets", subsets);
                rc = orch_kube_request(NULL, NULL, l->kc, "POST", coll, NULL, ep, err);
                free(coll);
                goto out;
        }
        if (rc)
                goto out;
        {
                const json_t *old = json_object_get(cur, "subsets");
                if ((old ? json_equal(old, subsets) : json_array_size(subsets) == 0))
                        goto out;
        }
        ep = sw_json_copy(cur);
        json_object_set(ep, "subsets", subsets);
        rc = orch_kube_request(NULL, NULL, l->kc, "PUT", path, NULL, ep, err);
out:
        /* A conflict is a stale read that the retry resolves; anything else is news. */
        if (rc && rc != SW_ECONFLICT && svc)
                orch_ctrl_event(l, svc, "Warning", "FailedToUpdateEndpoint",
                                "Failed to update endpoint %s/%s: %s", ns, name, err->msg);
        json_decref(svc);
        json_decref(pods);
        json_decref(groups);
        json_decref(subsets);
        json_decref(cur);
        json_decref(ep);
        json_decref(sel);
        free(path);
        free(ns);
        free(name);
        return rc;
}

void orch_ctrl_endpoints_init(struct orch_ctrl_loop *l, struct orch_ctrl *m)
{
        l->name = "endpoint-controller";
        l->reconcile = ep_reconcile;
        orch_informer_add_handler(&m->services, ep_on_service, l);
        orch_informer_add_handler(&m->pods, ep_on_pod, l);
}
