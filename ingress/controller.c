/*
 * controller.c - Ingress objects -> route table -> nginx (see controller.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "ingress/controller.h"
#include "orchestrator/client/kube.h"
#include "common/banned.h"

struct ingress_ctrl {
        struct orch_kube *kube;
        char *ingress_class;
        struct ingress_nginx *nginx;
        struct ingress_render_options render;
        char *listen, *tls_listen, *access_log;
        int64_t resync_ms;
        pthread_t thread;
        atomic_bool quit;
        atomic_llong resyncs;
        char last_error[SW_ERR_MSG_MAX];
};

struct snapshot {
        json_t *services; /* items of the Service list */
        json_t *pods;     /* items of the Pod list */
};

static const json_t *find_service(const struct snapshot *s, const char *ns, const char *name)
{
        const json_t *svc;
        size_t i;

        json_array_foreach(s->services, i, svc)
        {
                const json_t *m = json_object_get(svc, "metadata");
                if (!strcmp(sw_json_str(m, "namespace", ""), ns) &&
                    !strcmp(sw_json_str(m, "name", ""), name))
                        return svc;
        }
        return NULL;
}

static bool pod_ready(const json_t *pod)
{
        const json_t *c;
        size_t i;

        if (json_object_get(json_object_get(pod, "metadata"), "deletionTimestamp"))
                return false;
        json_array_foreach(json_object_get(json_object_get(pod, "status"), "conditions"), i, c)
        {
                if (!strcmp(sw_json_str(c, "type", ""), "Ready"))
                        return !strcmp(sw_json_str(c, "status", ""), "True");
        }
        return false;
}

static bool selects(const json_t *selector, const json_t *pod)
{
        const json_t *labels = json_object_get(json_object_get(pod, "metadata"), "labels");
        const char *k;
        const json_t *v;

        if (!json_is_object(selector) || json_object_size(selector) == 0)
                return false;
        json_object_foreach((json_t *)selector, k, v)
        {
                const char *have = sw_json_str(labels, k, NULL);
                if (!have || !json_is_string(v) || strcmp(have, json_string_value(v)) != 0)
                        return false;
        }
        return true;
}

/* The pod's container port for a Service's targetPort (a number or a port name). */
static int container_port(const json_t *pod, const json_t *target)
{
        const json_t *c, *p;
        size_t i, j;

        if (json_is_integer(target))
                return (int)json_integer_value(target);
        json_array_foreach(json_object_get(json_object_get(pod, "spec"), "containers"), i, c)
        {
                json_array_foreach(json_object_get(c, "ports"), j, p)
                {
                        if (json_is_string(target) &&
                            !strcmp(sw_json_str(p, "name", ""), json_string_value(target)))
                                return (int)sw_json_int(p, "containerPort", 0);
                }
        }
        return 0;
}

static int resolve_service(char **out, void *ctx, const char *ns, const char *name, int port,
                           const char *port_name, struct sw_err *err)
{
        const struct snapshot *s = ctx;
        const json_t *svc = find_service(s, ns, name), *sp, *target = NULL, *pod;
        const json_t *best = NULL;
        int sport = 0;
        size_t i;

        if (!svc)
                return sw_err_set(err, SW_ENOTFOUND, "service %s/%s not found", ns, name);
        json_array_foreach(json_object_get(json_object_get(svc, "spec"), "ports"), i, sp)
        {
                if ((port_name && !strcmp(sw_json_str(sp, "name", ""), port_name)) ||
                    (!port_name && sw_json_int(sp, "port", 0) == port)) {
                        target = json_object_get(sp, "targetPort");
                        if (!target)
                                target = json_object_get(sp, "port");
                        sport = (int)sw_json_int(sp, "port", 0);
                        break;
                }
        }
        if (!target)
                return sw_err_set(err, SW_ENOTFOUND, "service %s/%s has no port %s", ns, name,
                                  port_name ? port_name : "with that number");
        json_array_foreach(s->pods, i, pod)
        {
                const json_t *m = json_object_get(pod, "metadata");
                if (strcmp(sw_json_str(m, "namespace", ""), ns) != 0 || !pod_ready(pod) ||
                    !selects(json_object_get(json_object_get(svc, "spec"), "selector"), pod))
                        continue;
                if (!best || strcmp(sw_json_str(m, "name", ""),
                                    sw_json_str(json_object_get(best, "metadata"), "name", "")) < 0)
                        best = pod;
        }
        if (!best)
                return sw_err_set(err, SW_ENOTFOUND, "service %s/%s has no ready pod", ns, name);
        {
                /* The node agents' service proxy balances over every ready pod. */
                const char *cip = sw_json_str(json_object_get(svc, "spec"), "clusterIP", "");
                if (*cip && strcmp(cip, "None") != 0 && sport > 0) {
                        *out = sw_xasprintf("%s:%d", cip, sport);
                        return 0;
                }
        }
        {
                int cport = container_port(best, target);
                const char *ports = sw_json_str(
                        json_object_get(json_object_get(best, "metadata"), "annotations"),
                        "slipway.dev/ports", NULL);
                const char *ip = sw_json_str(json_object_get(best, "status"), "podIP", NULL);
                char key[16];
                json_t *map = NULL;
                struct sw_err perr = SW_ERR_INIT;

                snprintf(key, sizeof(key), "%d", cport);
                if (ports && sw_json_parse(&map, ports, strlen(ports), 0, &perr) == 0 &&
                    sw_json_int(map, key, 0) > 0) {
                        *out = sw_xasprintf("127.0.0.1:%lld", (long long)sw_json_int(map, key, 0));
                        json_decref(map);
                        return 0;
                }
                json_decref(map);
                if (ip && cport > 0 && strcmp(ip, "127.0.0.1") != 0) {
                        *out = sw_xasprintf("%s:%d", ip, cport);
                        return 0;
                }
        }
        return sw_err_set(err, SW_ENOTFOUND, "service %s/%s: its pod publishes no port %s", ns,
                          name, json_is_string(target) ? json_string_value(target) : "");
}

static json_t *list_items(struct orch_kube *kube, const char *path, struct sw_err *err)
{
        json_t *list = NULL, *items;

        if (orch_kube_get(&list, kube, path, err) != 0)
                return NULL;
        items = json_incref(json_object_get(list, "items"));
        json_decref(list);
        return items ? items : json_array();
}

static int resync(struct ingress_ctrl *c, struct sw_err *err)
{
        struct snapshot snap = {0};
        struct ingress_resolver res = {resolve_service, NULL, &snap};
        struct ingress_table *t = NULL;
        json_t *ingresses = NULL;
        const json_t *ing;
        char *conf = NULL;
        size_t i, len;
        bool changed = false;
        int rc = 0;

        ingresses = list_items(c->kube, "/apis/networking.k8s.io/v1/ingresses", err);
        if (ingresses)
                snap.services = list_items(c->kube, "/api/v1/services", err);
        if (snap.services)
                snap.pods = list_items(c->kube, "/api/v1/pods", err);
        if (!snap.pods) {
                rc = err->code ? err->code : SW_EUNAVAIL;
                goto out;
        }
        ingress_table_new(&t);
        json_array_foreach(ingresses, i, ing)
        {
                struct sw_err ierr = SW_ERR_INIT;
                bool accepted;
                /* an Ingress that cannot be routed yet is left out, the others go on */
                if (ingress_table_set_ingress(t, &accepted, ing, &res, c->ingress_class, &ierr) !=
                    0)
                        sw_log(SW_LOG_DEBUG, "ingress", "not routed", "{s:s}", "error", ierr.msg);
        }
        rc = ingress_render(&conf, &len, t, &c->render, err);
        if (rc == 0)
                rc = ingress_nginx_apply(c->nginx, &changed, conf, len, err);
        if (rc == 0 && changed)
                sw_log(SW_LOG_INFO, "ingress", "routes reloaded", "{s:i}", "sources",
                       (int)ingress_table_count(t));
out:
        ingress_table_free(t);
        json_decref(ingresses);
        json_decref(snap.services);
        json_decref(snap.pods);
        free(conf);
        return rc;
}

static void *ctrl_loop(void *arg)
{
        struct ingress_ctrl *c = arg;

        while (!atomic_load(&c->quit)) {
                struct sw_err err = SW_ERR_INIT;
                bool restarted = false;
                /* this thread owns the nginx handle: it also restarts nginx when it died */
                if (ingress_nginx_poll(c->nginx, &restarted, &err) == 0 && restarted)
                        sw_log(SW_LOG_WARN, "ingress", "nginx restarted", NULL);
                sw_err_clear(&err);
                if (resync(c, &err) != 0 && strcmp(err.msg, c->last_error) != 0) {
                        /* say it once, not every 250 ms */
                        sw_log(SW_LOG_WARN, "ingress", "resync failed", "{s:s}", "error", err.msg);
                        snprintf(c->last_error, sizeof(c->last_error), "%s", err.msg);
                } else if (err.code == 0) {
                        c->last_error[0] = '\0';
                }
                atomic_fetch_add(&c->resyncs, 1);
                for (int64_t slept = 0; slept < c->resync_ms && !atomic_load(&c->quit); slept += 50)
                        sw_sleep_ms(50);
        }
        return NULL;
}

int ingress_ctrl_start(struct ingress_ctrl **out, const struct ingress_ctrl_options *opts,
                       struct sw_err *err)
{
        struct ingress_ctrl *c = sw_xcalloc(1, sizeof(*c));
        int rc;

        rc = orch_kube_from_kubeconfig(&c->kube, opts->kubeconfig, NULL, err);
        if (rc) {
                free(c);
                return rc;
        }
        c->ingress_class = sw_xstrdup(opts->ingress_class ? opts->ingress_class : "slipway");
        c->nginx = opts->nginx;
        c->render = opts->render;
        c->listen = opts->render.listen ? sw_xstrdup(opts->render.listen) : NULL;
        c->tls_listen = opts->render.tls_listen ? sw_xstrdup(opts->render.tls_listen) : NULL;
        c->access_log = opts->render.access_log ? sw_xstrdup(opts->render.access_log) : NULL;
        c->render.listen = c->listen;
        c->render.tls_listen = c->tls_listen;
        c->render.access_log = c->access_log;
        c->resync_ms = opts->resync_ms > 0 ? opts->resync_ms : 250;
        if (pthread_create(&c->thread, NULL, ctrl_loop, c) != 0) {
                orch_kube_free(c->kube);
                free(c->ingress_class);
                free(c->listen);
                free(c->tls_listen);
                free(c->access_log);
                free(c);
                return sw_err_set(err, SW_EINTERNAL, "cannot start the ingress controller");
        }
        *out = c;
        return 0;
}

void ingress_ctrl_stop(struct ingress_ctrl *c)
{
        if (!c)
                return;
        atomic_store(&c->quit, true);
        pthread_join(c->thread, NULL);
        orch_kube_free(c->kube);
        free(c->ingress_class);
        free(c->listen);
        free(c->tls_listen);
        free(c->access_log);
        free(c);
}

int64_t ingress_ctrl_resyncs(const struct ingress_ctrl *c)
{
        return atomic_load(&((struct ingress_ctrl *)c)->resyncs);
}
