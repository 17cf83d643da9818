/*
 * controller.c - Ingress objects -> route table -> nginx (see controller.h).
 *
 * Event driven: a thread per watched collection (Ingresses, Services, Pods,
 * Endpoints, and Secrets when TLS is on) lists it once, then follows its
 * watch and keeps a cache of the objects. A change that matters for routing
 * (not a status heartbeat) wakes the loop thread, which waits until the
 * changes have been quiet for DEBOUNCE_MS (at most DEBOUNCE_MAX_MS after the
 * first), so a burst becomes one rebuild, then rebuilds the route table from
 * the caches, renders it, and lets ingress_nginx_apply() test and reload
 * nginx when the text changed. A full rebuild every RESYNC_MS covers
 * anything a watch may have missed.
 *
 * A configuration nginx rejects is not installed (the old one keeps
 * serving). The Ingresses that changed since the last accepted configuration
 * are blamed: each gets a Warning Event (reason RejectedConfig, with nginx's
 * message) and is left out until it changes again, so the other routes
 * still go live. Every routed Ingress gets status.loadBalancer.ingress[].ip
 * = the edge IP, through the status subresource, when it differs.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/base64.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "ingress/controller.h"
#include "orchestrator/client/kube.h"
#include "common/banned.h"

#define DEBOUNCE_MS 3
#define DEBOUNCE_MAX_MS 50
#define RESYNC_MS 30000
#define NGINX_POLL_MS 250
#define WATCH_MS 1000
#define TLS_FILE_MAX ((size_t)1 << 20)

enum {
        K_INGRESS,
        K_SERVICE,
        K_POD,
        K_ENDPOINTS,
        K_SECRET,
        K_COUNT,
};

static const char *const kind_paths[K_COUNT] = {
        "/apis/networking.k8s.io/v1/ingresses",
        "/api/v1/services",
        "/api/v1/pods",
        "/api/v1/endpoints",
        "/api/v1/secrets",
};

/* One watched collection; `objs` ("ns/name" -> object) is guarded by the controller's mutex. */
struct cache {
        struct ingress_ctrl *c;
        int kind;
        struct orch_kube *kube; /* this thread's own client */
        json_t *objs;
        bool synced;
        bool running;
        pthread_t thread;
};

struct ingress_ctrl {
        struct orch_kube *kube; /* the loop thread's: status and events */
        char *ingress_class;
        struct ingress_nginx *nginx;
        struct ingress_render_options render;
        char *listen, *tls_listen, *access_log, *edge_ip, *tls_dir;
        pthread_t thread;
        atomic_bool quit;
        atomic_llong resyncs;
        char last_error[SW_ERR_MSG_MAX];

        struct cache caches[K_COUNT];
        pthread_mutex_t mu; /* guards the caches' objs, the two times and the condition */
        pthread_cond_t cv;
        int64_t first_change_ms, last_change_ms; /* 0: nothing pending */

        /* The loop thread's own: */
        json_t *applied;  /* "ns/name" -> generation of each Ingress in the live configuration */
        json_t *rejected; /* "ns/name" -> generation nginx rejected (left out until it changes) */
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

/* ---- caches ------------------------------------------------------------------------------ */

static char *obj_key(const json_t *obj)
{
        const json_t *m = json_object_get(obj, "metadata");

        return sw_xasprintf("%s/%s", sw_json_str(m, "namespace", ""), sw_json_str(m, "name", ""));
}

/* What of an object routing depends on; status heartbeats and resourceVersions are not. */
static json_t *relevant(int kind, const json_t *obj)
{
        const json_t *m = json_object_get(obj, "metadata");
        const json_t *st = json_object_get(obj, "status");

        switch (kind) {
        case K_INGRESS:
                return json_pack("{s:O*,s:O*,s:O*}", "spec", json_object_get(obj, "spec"), "ann",
                                 json_object_get(m, "annotations"), "ts",
                                 json_object_get(m, "creationTimestamp"));
        case K_SERVICE:
                return json_pack("{s:O*}", "spec", json_object_get(obj, "spec"));
        case K_POD:
                return json_pack(
                        "{s:O*,s:O*,s:O*,s:O*,s:b,s:O*}", "labels", json_object_get(m, "labels"),
                        "ann", json_object_get(m, "annotations"), "del",
                        json_object_get(m, "deletionTimestamp"), "ip", json_object_get(st, "podIP"),
                        "ready", pod_ready(obj), "spec", json_object_get(obj, "spec"));
        case K_ENDPOINTS:
                return json_pack("{s:O*}", "subsets", json_object_get(obj, "subsets"));
        default:
                return json_pack("{s:O*,s:O*}", "type", json_object_get(obj, "type"), "data",
                                 json_object_get(obj, "data"));
        }
}

/* Caller holds c->mu. */
static void note_change(struct ingress_ctrl *c)
{
        int64_t now = sw_mono_ms();

        if (!c->first_change_ms)
                c->first_change_ms = now;
        c->last_change_ms = now;
        pthread_cond_signal(&c->cv);
}

/* Put (or, with obj NULL, drop) one object; wakes the loop when routing may change. */
static void cache_put(struct cache *k, const char *key, const json_t *obj)
{
        struct ingress_ctrl *c = k->c;
        json_t *old, *a = NULL, *b = NULL;
        bool changed;

        pthread_mutex_lock(&c->mu);
        old = json_object_get(k->objs, key);
        if (old && obj) {
                a = relevant(k->kind, old);
                b = relevant(k->kind, obj);
                changed = !json_equal(a, b);
        } else {
                changed = old || obj;
        }
        if (obj)
                json_object_set_new(k->objs, key, json_deep_copy(obj));
        else
                json_object_del(k->objs, key);
        if (changed && k->synced)
                note_change(c);
        pthread_mutex_unlock(&c->mu);
        json_decref(a);
        json_decref(b);
}

struct watch_state {
        struct cache *k;
        bool relist;
};

static int on_watch_event(void *arg, const char *type, const json_t *obj)
{
        struct watch_state *w = arg;
        char *key;

        if (!strcmp(type, "ERROR")) {
                w->relist = true;
                return 1;
        }
        if (strcmp(type, "BOOKMARK") != 0) {
                key = obj_key(obj);
                cache_put(w->k, key, strcmp(type, "DELETED") ? obj : NULL);
                free(key);
        }
        return atomic_load(&w->k->c->quit) ? 1 : 0;
}

/* List the collection into the cache (replacing it); *rv_out gets the list's resourceVersion. */
static int cache_list(struct cache *k, char **rv_out, struct sw_err *err)
{
        struct ingress_ctrl *c = k->c;
        json_t *list = NULL, *fresh = json_object();
        const json_t *it;
        size_t i;
        int rc;

        rc = orch_kube_get(&list, k->kube, kind_paths[k->kind], err);
        if (rc) {
                json_decref(fresh);
                return rc;
        }
        json_array_foreach(json_object_get(list, "items"), i, it)
        {
                char *key = obj_key(it);
                json_object_set(fresh, key, (json_t *)it);
                free(key);
        }
        pthread_mutex_lock(&c->mu);
        json_decref(k->objs);
        k->objs = fresh;
        k->synced = true;
        note_change(c);
        pthread_mutex_unlock(&c->mu);
        *rv_out =
                sw_xstrdup(sw_json_str(json_object_get(list, "metadata"), "resourceVersion", "0"));
        json_decref(list);
        return 0;
}

static void *watch_main(void *arg)
{
        struct cache *k = arg;
        struct ingress_ctrl *c = k->c;
        char *rv = NULL;
        char last[SW_ERR_MSG_MAX] = "";

        while (!atomic_load(&c->quit)) {
                struct sw_err err = SW_ERR_INIT;
                struct watch_state w = {k, false};
                char *next = NULL;
                int rc;

                if (!rv && cache_list(k, &rv, &err) != 0) {
                        if (strcmp(err.msg, last) != 0)
                                sw_log(SW_LOG_WARN, "ingress", "list failed", "{s:s,s:s}", "path",
                                       kind_paths[k->kind], "error", err.msg);
                        snprintf(last, sizeof(last), "%s", err.msg);
                        sw_sleep_ms(250);
                        continue;
                }
                last[0] = '\0';
                rc = orch_kube_watch(&next, k->kube, kind_paths[k->kind], NULL, rv, WATCH_MS,
                                     on_watch_event, &w, &err);
                if (rc || w.relist) {
                        /* expired, or the server went away: list again */
                        free(rv);
                        rv = NULL;
                        if (rc && rc != SW_ECONFLICT)
                                sw_sleep_ms(100);
                } else if (next) {
                        free(rv);
                        rv = next;
                        next = NULL;
                }
                free(next);
        }
        free(rv);
        return NULL;
}

/* Copies of the cached objects of one kind (a JSON array; the objects are shared, read-only). */
static json_t *cache_items(struct cache *k)
{
        json_t *items = json_array();
        const char *key;
        json_t *v;

        json_object_foreach(k->objs, key, v) json_array_append(items, v);
        return items;
}

/* ---- TLS from Secrets ----------------------------------------------------------------------- */

struct resolve_ctx {
        struct snapshot snap; /* first: resolve_service() takes the context as a snapshot */
        struct ingress_ctrl *c;
        json_t *secrets;
};

/* Write `data` to `path` (0600) unless it already holds exactly that. */
static int write_if_changed(const char *path, const unsigned char *data, size_t len,
                            struct sw_err *err)
{
        struct sw_err ignored = SW_ERR_INIT;
        char *have = NULL;
        size_t have_len = 0;
        bool same = sw_read_file(&have, &have_len, path, TLS_FILE_MAX, &ignored) == 0 &&
                    have_len == len && memcmp(have, data, len) == 0;

        free(have);
        return same ? 0 : sw_write_file_atomic(path, data, len, 0600, err);
}

static int resolve_tls(char **cert_out, char **key_out, void *ctx, const char *ns,
                       const char *secret, struct sw_err *err)
{
        struct resolve_ctx *r = ctx;
        const json_t *s = NULL, *it, *data;
        const char *crt64, *key64;
        unsigned char *crt = NULL, *key = NULL;
        size_t crt_len = 0, key_len = 0, i;
        char *crt_path = NULL, *key_path = NULL;
        int rc;

        if (!r->c->tls_dir)
                return sw_err_set(err, SW_EINVAL, "TLS is not served by this controller");
        json_array_foreach(r->secrets, i, it)
        {
                const json_t *m = json_object_get(it, "metadata");
                if (!strcmp(sw_json_str(m, "namespace", ""), ns) &&
                    !strcmp(sw_json_str(m, "name", ""), secret))
                        s = it;
        }
        if (!s)
                return sw_err_set(err, SW_ENOTFOUND, "secret %s/%s not found", ns, secret);
        data = json_object_get(s, "data");
        crt64 = sw_json_str(data, "tls.crt", NULL);
        key64 = sw_json_str(data, "tls.key", NULL);
        if (strcmp(sw_json_str(s, "type", ""), "kubernetes.io/tls") != 0 || !crt64 || !key64)
                return sw_err_set(err, SW_EINVAL,
                                  "secret %s/%s is not of type kubernetes.io/tls with tls.crt "
                                  "and tls.key",
                                  ns, secret);
        if ((rc = sw_base64_decode(&crt, &crt_len, crt64, err)) != 0 ||
            (rc = sw_base64_decode(&key, &key_len, key64, err)) != 0) {
                sw_err_wrap(err, "secret %s/%s", ns, secret);
                goto out;
        }
        /* Namespace and Secret names are RFC 1123 (checked by translate.c): safe in a file name. */
        crt_path = sw_xasprintf("%s/%s_%s.crt", r->c->tls_dir, ns, secret);
        key_path = sw_xasprintf("%s/%s_%s.key", r->c->tls_dir, ns, secret);
        if ((rc = sw_mkdir_p(r->c->tls_dir, 0700, err)) != 0 ||
            (rc = write_if_changed(crt_path, crt, crt_len, err)) != 0 ||
            (rc = write_if_changed(key_path, key, key_len, err)) != 0)
                goto out;
        *cert_out = crt_path;
        *key_out = key_path;
        crt_path = key_path = NULL;
out:
        if (key)
                sw_wipe(key, key_len);
        free(crt);
        free(key);
        free(crt_path);
        free(key_path);
        return rc;
}

/* ---- status and events ------------------------------------------------------------------- */

/* The Ingress's generation (what changes with its spec), else its resourceVersion. */
static json_t *ingress_version(const json_t *ing)
{
        const json_t *m = json_object_get(ing, "metadata");
        const json_t *g = json_object_get(m, "generation");

        if (json_is_integer(g))
                return json_integer(json_integer_value(g));
        return json_string(sw_json_str(m, "resourceVersion", ""));
}

/* status.loadBalancer.ingress = [{"ip": edge}] through the status subresource, when it differs. */
static void publish_status(struct ingress_ctrl *c, const json_t *ing)
{
        const json_t *m = json_object_get(ing, "metadata");
        const json_t *lb = json_object_get(json_object_get(ing, "status"), "loadBalancer");
        struct sw_err err = SW_ERR_INIT;
        json_t *want = json_pack("[{s:s}]", "ip", c->edge_ip), *patch;
        char *path;

        if (json_equal(json_object_get(lb, "ingress"), want)) {
                json_decref(want);
                return;
        }
        patch = json_pack("{s:{s:{s:o}}}", "status", "loadBalancer", "ingress", want);
        path = sw_xasprintf("/apis/networking.k8s.io/v1/namespaces/%s/ingresses/%s/status",
                            sw_json_str(m, "namespace", ""), sw_json_str(m, "name", ""));
        if (orch_kube_request(NULL, NULL, c->kube, "PATCH", path, "application/merge-patch+json",
                              patch, &err) != 0)
                sw_log(SW_LOG_WARN, "ingress", "status not written", "{s:s,s:s}", "ingress", path,
                       "error", err.msg);
        json_decref(patch);
        free(path);
}

/* A Warning Event on the Ingress, as `kubectl describe ingress` shows them. */
static void post_event(struct ingress_ctrl *c, const json_t *ing, const char *reason,
                       const char *message)
{
        const json_t *m = json_object_get(ing, "metadata");
        const char *ns = sw_json_str(m, "namespace", "default");
        struct sw_err err = SW_ERR_INIT;
        char ts[40], *name, *path;
        json_t *ev;

        sw_time_iso(ts, sizeof(ts), sw_now_ms());
        name = sw_xasprintf("%s.%llx", sw_json_str(m, "name", "ingress"),
                            (unsigned long long)sw_mono_us());
        ev = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:s,s:s,s:s,s:s,s:s},s:s,s:s,s:s,"
                       "s:{s:s},s:s,s:s,s:i}",
                       "apiVersion", "v1", "kind", "Event", "metadata", "name", name, "namespace",
                       ns, "involvedObject", "kind", "Ingress", "apiVersion",
                       "networking.k8s.io/v1", "name", sw_json_str(m, "name", ""), "namespace", ns,
                       "uid", sw_json_str(m, "uid", ""), "resourceVersion",
                       sw_json_str(m, "resourceVersion", ""), "type", "Warning", "reason", reason,
                       "message", message, "source", "component", "slipway-ingress",
                       "firstTimestamp", ts, "lastTimestamp", ts, "count", 1);
        path = sw_xasprintf("/api/v1/namespaces/%s/events", ns);
        if (ev && orch_kube_request(NULL, NULL, c->kube, "POST", path, NULL, ev, &err) != 0)
                sw_log(SW_LOG_WARN, "ingress", "event not recorded", "{s:s,s:s}", "reason", reason,
                       "error", err.msg);
        json_decref(ev);
        free(path);
        free(name);
}

/* ---- the loop ------------------------------------------------------------------------------ */

struct built {
        struct ingress_table *t;
        json_t *routed; /* "ns/name" -> the Ingress, for each one in the table */
};

static void build_table(struct built *out, struct ingress_ctrl *c, json_t *ingresses,
                        struct resolve_ctx *rc)
{
        struct ingress_resolver res = {resolve_service, resolve_tls, rc};
        const json_t *ing;
        size_t i;

        ingress_table_new(&out->t);
        out->routed = json_object();
        json_array_foreach(ingresses, i, ing)
        {
                struct sw_err ierr = SW_ERR_INIT;
                char *key = obj_key(ing);
                json_t *ver = ingress_version(ing);
                bool accepted = false;

                /* rejected by nginx at this version: out until it changes */
                if (json_equal(json_object_get(c->rejected, key), ver)) {
                        json_decref(ver);
                        free(key);
                        continue;
                }
                json_object_del(c->rejected, key);
                json_decref(ver);
                /* an Ingress that cannot be routed yet is left out, the others go on */
                if (ingress_table_set_ingress(out->t, &accepted, ing, &res, c->ingress_class,
                                              &ierr) != 0)
                        sw_log(SW_LOG_DEBUG, "ingress", "not routed", "{s:s}", "error", ierr.msg);
                else if (accepted)
                        json_object_set(out->routed, key, (json_t *)ing);
                free(key);
        }
}

/*
 * nginx rejected the configuration: blame the Ingresses that are new or
 * changed since the last accepted one (all routed ones when none is), tell
 * each with an Event, and leave them out from now on.
 */
static void blame(struct ingress_ctrl *c, const json_t *routed, const char *msg)
{
        const char *key;
        json_t *ing, *suspects = json_object();

        json_object_foreach((json_t *)routed, key, ing)
        {
                json_t *ver = ingress_version(ing);
                if (!json_equal(json_object_get(c->applied, key), ver))
                        json_object_set(suspects, key, ing);
                json_decref(ver);
        }
        if (json_object_size(suspects) == 0)
                json_object_update(suspects, (json_t *)routed);
        json_object_foreach(suspects, key, ing)
        {
                json_object_set_new(c->rejected, key, ingress_version(ing));
                sw_log(SW_LOG_WARN, "ingress", "configuration rejected", "{s:s,s:s}", "ingress",
                       key, "error", msg);
                post_event(c, ing, "RejectedConfig", msg);
        }
        json_decref(suspects);
}

static int resync(struct ingress_ctrl *c, json_t *items[K_COUNT], struct sw_err *err)
{
        struct resolve_ctx rctx = {{items[K_SERVICE], items[K_POD]}, c, items[K_SECRET]};
        struct built b = {0};
        char *conf = NULL;
        size_t len;
        bool changed = false;
        int rc;

        build_table(&b, c, items[K_INGRESS], &rctx);
        rc = ingress_render(&conf, &len, b.t, &c->render, err);
        if (rc == 0)
                rc = ingress_nginx_apply(c->nginx, &changed, conf, len, err);
        if (rc == SW_EINVAL && json_object_size(b.routed) &&
            strstr(err->msg, "nginx rejected") != NULL) {
                /* nginx said no: the old configuration keeps serving; try again without them */
                blame(c, b.routed, err->msg);
                pthread_mutex_lock(&c->mu);
                note_change(c);
                pthread_mutex_unlock(&c->mu);
        } else if (rc == 0) {
                const char *key;
                json_t *ing;

                json_object_clear(c->applied);
                json_object_foreach(b.routed, key, ing)
                        json_object_set_new(c->applied, key, ingress_version(ing));
                if (changed)
                        sw_log(SW_LOG_INFO, "ingress", "routes reloaded", "{s:i}", "sources",
                               (int)ingress_table_count(b.t));
                /* after the reload: the status is not on the route's path */
                if (c->edge_ip)
                        json_object_foreach(b.routed, key, ing) publish_status(c, ing);
        }
        ingress_table_free(b.t);
        json_decref(b.routed);
        free(conf);
        return rc;
}

static void *ctrl_loop(void *arg)
{
        struct ingress_ctrl *c = arg;
        int64_t next_poll = 0, next_resync = 0;

        while (!atomic_load(&c->quit)) {
                json_t *items[K_COUNT] = {0};
                struct sw_err err = SW_ERR_INIT;
                bool restarted = false, synced = true, due;
                int64_t now = sw_mono_ms();

                /* this thread owns the nginx handle: it also restarts nginx when it died */
                if (now >= next_poll) {
                        if (ingress_nginx_poll(c->nginx, &restarted, &err) == 0 && restarted)
                                sw_log(SW_LOG_WARN, "ingress", "nginx restarted", NULL);
                        sw_err_clear(&err);
                        next_poll = now + NGINX_POLL_MS;
                }

                pthread_mutex_lock(&c->mu);
                for (int k = 0; k < K_COUNT; k++)
                        synced = synced && (!c->caches[k].running || c->caches[k].synced);
                /* quiet for DEBOUNCE_MS since the last change, or DEBOUNCE_MAX_MS since the first */
                due = synced &&
                      (now >= next_resync ||
                       (c->last_change_ms && (now - c->last_change_ms >= DEBOUNCE_MS ||
                                              now - c->first_change_ms >= DEBOUNCE_MAX_MS)));
                if (!due) {
                        int64_t until = next_poll < next_resync ? next_poll : next_resync;
                        struct timespec ts;
                        if (c->last_change_ms && c->last_change_ms + DEBOUNCE_MS < until)
                                until = c->last_change_ms + DEBOUNCE_MS;
                        if (until <= now)
                                until = now + 1;
                        clock_gettime(CLOCK_MONOTONIC, &ts);
                        ts.tv_sec += (until - now) / 1000;
                        ts.tv_nsec += ((until - now) % 1000) * 1000000L;
                        if (ts.tv_nsec >= 1000000000L) {
                                ts.tv_sec++;
                                ts.tv_nsec -= 1000000000L;
                        }
                        if (!atomic_load(&c->quit))
                                pthread_cond_timedwait(&c->cv, &c->mu, &ts);
                        pthread_mutex_unlock(&c->mu);
                        continue;
                }
                c->first_change_ms = c->last_change_ms = 0;
                for (int k = 0; k < K_COUNT; k++)
                        items[k] = cache_items(&c->caches[k]);
                pthread_mutex_unlock(&c->mu);

                next_resync = now + RESYNC_MS;
                if (resync(c, items, &err) != 0 && strcmp(err.msg, c->last_error) != 0) {
                        /* say it once, not at every change */
                        sw_log(SW_LOG_WARN, "ingress", "resync failed", "{s:s}", "error", err.msg);
                        snprintf(c->last_error, sizeof(c->last_error), "%s", err.msg);
                } else if (err.code == 0) {
                        c->last_error[0] = '\0';
                }
                atomic_fetch_add(&c->resyncs, 1);
                for (int k = 0; k < K_COUNT; k++)
                        json_decref(items[k]);
        }
        return NULL;
}

static char *dup_or_null(const char *s)
{
        return s ? sw_xstrdup(s) : NULL;
}

static void ctrl_free(struct ingress_ctrl *c)
{
        for (int k = 0; k < K_COUNT; k++) {
                if (c->caches[k].running)
                        pthread_join(c->caches[k].thread, NULL);
                orch_kube_free(c->caches[k].kube);
                json_decref(c->caches[k].objs);
        }
        orch_kube_free(c->kube);
        json_decref(c->applied);
        json_decref(c->rejected);
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        free(c->ingress_class);
        free(c->listen);
        free(c->tls_listen);
        free(c->access_log);
        free(c->edge_ip);
        free(c->tls_dir);
        free(c);
}

int ingress_ctrl_start(struct ingress_ctrl **out, const struct ingress_ctrl_options *opts,
                       struct sw_err *err)
{
        struct ingress_ctrl *c = sw_xcalloc(1, sizeof(*c));
        pthread_condattr_t ca;
        int rc, k;

        pthread_mutex_init(&c->mu, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&c->cv, &ca);
        pthread_condattr_destroy(&ca);
        c->applied = json_object();
        c->rejected = json_object();
        c->ingress_class = sw_xstrdup(opts->ingress_class ? opts->ingress_class : "slipway");
        c->nginx = opts->nginx;
        c->render = opts->render;
        c->listen = dup_or_null(opts->render.listen);
        c->tls_listen = dup_or_null(opts->render.tls_listen);
        c->access_log = dup_or_null(opts->render.access_log);
        c->edge_ip = dup_or_null(opts->edge_ip);
        c->tls_dir = dup_or_null(opts->tls_dir);
        c->render.listen = c->listen;
        c->render.tls_listen = c->tls_listen;
        c->render.access_log = c->access_log;

        rc = orch_kube_from_kubeconfig(&c->kube, opts->kubeconfig, NULL, err);
        for (k = 0; rc == 0 && k < K_COUNT; k++) {
                struct cache *ck = &c->caches[k];
                ck->c = c;
                ck->kind = k;
                ck->objs = json_object();
                if (k == K_SECRET && !c->tls_dir)
                        continue; /* no TLS: Secrets are none of our business */
                rc = orch_kube_from_kubeconfig(&ck->kube, opts->kubeconfig, NULL, err);
                if (rc == 0 && pthread_create(&ck->thread, NULL, watch_main, ck) != 0)
                        rc = sw_err_set(err, SW_EINTERNAL, "cannot start a watch thread");
                ck->running = rc == 0;
        }
        if (rc == 0 && pthread_create(&c->thread, NULL, ctrl_loop, c) != 0)
                rc = sw_err_set(err, SW_EINTERNAL, "cannot start the ingress controller");
        if (rc) {
                atomic_store(&c->quit, true);
                ctrl_free(c);
                return rc;
        }
        *out = c;
        return 0;
}

void ingress_ctrl_stop(struct ingress_ctrl *c)
{
        if (!c)
                return;
        atomic_store(&c->quit, true);
        pthread_mutex_lock(&c->mu);
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
        ctrl_free(c);
}

int64_t ingress_ctrl_resyncs(const struct ingress_ctrl *c)
{
        return atomic_load(&((struct ingress_ctrl *)c)->resyncs);
}
