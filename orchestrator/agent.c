/*
 * agent.c - the node agent's frame: the Node object and its heartbeat
 * (Ready condition and a Lease), the watch that wakes the reconcile loop,
 * the loop itself, and the `slipway node` command.
 *
 * The reconcile loop is level-driven. The watch hands over the latest
 * object of each pod that changed, and only those pods are reconciled
 * (a pod's reconcile starts its containers detached, so it never waits
 * for the runtime); a full pass every PASS_MS reconciles them all, which
 * times restart back-offs, probes and grace periods, and every RESYNC_MS
 * it first lists the pods bound to this node (fieldSelector
 * spec.nodeName), stopping and cleaning up pods that left the list.
 * While containers are starting or a pod is terminating, the loop looks
 * at them every POLL_MS (runc's state file, the exit files), so a pod is
 * reported Running and Ready as soon as its process runs. Sandboxes are
 * taken down by cleanup workers (agent_cleanup.c). On start, pod
 * directories left by an earlier run are read back, so their containers
 * are adopted (runc state) rather than restarted.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/validate.h"
#include "engine/cli.h"
#include "orchestrator/agent_int.h"
#include "orchestrator/client/kube.h"
#include "common/banned.h"

#define LEASE_NS "kube-node-lease"
#define PASS_MS 500
#define RESYNC_MS 10000 /* a list of the node's pods, besides the watch */
#define POLL_MS 5       /* while a container is starting or a pod terminating */

void agent_time_fmt(char *out, size_t size, int64_t epoch_ms)
{
        time_t secs = (time_t)(epoch_ms / 1000);
        struct tm tm;

        if (!gmtime_r(&secs, &tm)) {
                snprintf(out, size, "1970-01-01T00:00:00Z");
                return;
        }
        snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void agent_log_err(struct orch_agent *a, const char *what, const struct agent_pod *p,
                   const struct sw_err *err)
{
        if (p)
                sw_log(SW_LOG_WARN, "orch_agent", what, "{s:s,s:s,s:s,s:s}", "node", a->node_name,
                       "namespace", p->ns, "pod", p->name, "error", err->msg);
        else
                sw_log(SW_LOG_WARN, "orch_agent", what, "{s:s,s:s}", "node", a->node_name, "error",
                       err->msg);
}

/* ---- the Node ---- */

static json_t *node_status(struct orch_agent *a, const char *now)
{
        char mem[32], cpu[32], pods[32];
        struct utsname un;
        long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);

        if (a->cpu)
                snprintf(cpu, sizeof(cpu), "%s", a->cpu);
        else
                snprintf(cpu, sizeof(cpu), "%ld", sysconf(_SC_NPROCESSORS_ONLN));
        if (a->memory)
                snprintf(mem, sizeof(mem), "%s", a->memory);
        else
                snprintf(mem, sizeof(mem), "%lldKi", (long long)pages * psize / 1024);
        snprintf(pods, sizeof(pods), "%lld", (long long)a->o.max_pods);
        if (uname(&un) != 0)
                memset(&un, 0, sizeof(un));
        return json_pack("{s:{s:s,s:s,s:s},s:{s:s,s:s,s:s},s:[{s:s,s:s},{s:s,s:s}],"
                         "s:[{s:s,s:s,s:s,s:s,s:s,s:s}],s:{s:s,s:s,s:s,s:s,s:s,s:s,s:s}}",
                         "capacity", "cpu", cpu, "memory", mem, "pods", pods, "allocatable", "cpu",
                         cpu, "memory", mem, "pods", pods, "addresses", "type", "InternalIP",
                         "address", "127.0.0.1", "type", "Hostname", "address", a->node_name,
                         "conditions", "type", "Ready", "status", "True", "reason", "KubeletReady",
                         "message", "slipway node agent is posting ready status",
                         "lastHeartbeatTime", now, "lastTransitionTime", now, "nodeInfo",
                         "kubeletVersion", "v1.32.0-slipway", "kubeProxyVersion", "v1.32.0-slipway",
                         "containerRuntimeVersion", "runc", "operatingSystem", "linux",
                         "architecture", "amd64", "kernelVersion", un.release, "osImage",
                         "slipway");
}

static json_t *node_status_full(struct orch_agent *a, const char *now)
{
        json_t *st = node_status(a, now);

        json_object_set_new(st, "daemonEndpoints",
                            json_pack("{s:{s:i}}", "kubeletEndpoint", "Port", a->log_port));
        return st;
}

static int patch_node_status(struct orch_agent *a, struct sw_err *err)
{
        char now[32], *path = sw_xasprintf("/api/v1/nodes/%s/status", a->node_name);
        json_t *old = NULL, *st, *patch;
        int rc;

        agent_time_fmt(now, sizeof(now), sw_now_ms());
        st = node_status_full(a, now);
        /* Keep the transition time of a Ready condition that stays True. */
        if (orch_kube_get(&old, a->kube, path, err) == 0) {
                const json_t *c;
                size_t i;
                json_array_foreach(json_object_get(json_object_get(old, "status"), "conditions"), i,
                                   c)
                {
                        if (!strcmp(sw_json_str(c, "type", ""), "Ready") &&
                            !strcmp(sw_json_str(c, "status", ""), "True") &&
                            json_object_get(c, "lastTransitionTime"))
                                json_object_set(
                                        json_array_get(json_object_get(st, "conditions"), 0),
                                        "lastTransitionTime",
                                        json_object_get(c, "lastTransitionTime"));
                }
        }
        sw_err_clear(err);
        patch = json_pack("{s:o}", "status", st);
        rc = orch_kube_request(NULL, NULL, a->kube, "PATCH", path, "application/merge-patch+json",
                               patch, err);
        json_decref(patch);
        json_decref(old);
        free(path);
        return rc;
}

/* The podCIDRs of the other Nodes, as an object's keys; empty when they cannot be listed. */
static json_t *other_nodes_cidrs(struct orch_agent *a)
{
        json_t *list = NULL, *taken = json_object();
        const json_t *node;
        struct sw_err ignored = SW_ERR_INIT;
        size_t i;

        if (orch_kube_get(&list, a->kube, "/api/v1/nodes", &ignored) != 0)
                return taken;
        json_array_foreach(json_object_get(list, "items"), i, node)
        {
                const char *name = sw_json_str(json_object_get(node, "metadata"), "name", "");
                const char *c = sw_json_str(json_object_get(node, "spec"), "podCIDR", "");
                if (*c && strcmp(name, a->node_name) != 0)
                        json_object_set_new(taken, c, json_true());
        }
        json_decref(list);
        return taken;
}

/*
 * This node's /24 of SLIPWAY_POD_CIDR, picked by a hash of its name, or
 * the next one when another Node holds that (two names may hash alike);
 * a Node that exists already keeps the podCIDR it has (see
 * register_node). Two nodes registering at the same moment may still
 * pick the same /24.
 */
static int node_cidr(struct orch_agent *a, char *cidr, size_t size, struct sw_err *err)
{
        const char *range = a->o.cfg->pod_cidr ? a->o.cfg->pod_cidr : "127.1.0.0/16";
        unsigned h = 5381;
        uint32_t net;
        int prefix, rc = agent_cidr_parse(&net, &prefix, range, err);

        if (rc)
                return sw_err_wrap(err, "SLIPWAY_POD_CIDR");
        if ((net >> 24) != 127 || prefix > 24)
                return sw_err_set(err, SW_EINVAL,
                                  "SLIPWAY_POD_CIDR '%s' must lie inside 127.0.0.0/8 and hold a "
                                  "/24 per node",
                                  range);
        for (const char *s = a->node_name; *s; s++)
                h = h * 33 + (unsigned char)*s;
        {
                /* The hash's /24, or the next one no other Node holds. */
                uint32_t n = 1u << (24 - prefix), pick = h % n;
                json_t *taken = other_nodes_cidrs(a);
                for (uint32_t k = 0; k < n; k++) {
                        char cand[32];
                        agent_ip_fmt(cand, net + (((h + k) % n) << 8));
                        snprintf(cand + strlen(cand), sizeof(cand) - strlen(cand), "/24");
                        if (!json_object_get(taken, cand)) {
                                pick = (h + k) % n;
                                break;
                        }
                }
                json_decref(taken);
                a->pod_net = net + (pick << 8);
        }
        agent_ip_fmt(cidr, a->pod_net);
        snprintf(cidr + strlen(cidr), size - strlen(cidr), "/24");
        return 0;
}

/* Adopt the podCIDR of the Node as registered before, when it is a /24 on loopback. */
static void adopt_cidr(struct orch_agent *a)
{
        char *path = sw_xasprintf("/api/v1/nodes/%s", a->node_name);
        struct sw_err ignored = SW_ERR_INIT;
        json_t *node = NULL;
        uint32_t net;
        int prefix;

        if (orch_kube_get(&node, a->kube, path, &ignored) == 0 &&
            agent_cidr_parse(&net, &prefix,
                             sw_json_str(json_object_get(node, "spec"), "podCIDR", ""),
                             &ignored) == 0 &&
            prefix == 24 && (net >> 24) == 127)
                a->pod_net = net;
        json_decref(node);
        free(path);
}

static int register_node(struct orch_agent *a, struct sw_err *err)
{
        char cidr[32];
        json_t *node;
        int rc;

        rc = node_cidr(a, cidr, sizeof(cidr), err);
        if (rc)
                return rc;
        node = json_pack("{s:s,s:s,s:{s:s,s:{s:s,s:s,s:s}},s:{s:s,s:[s]}}", "apiVersion", "v1",
                         "kind", "Node", "metadata", "name", a->node_name, "labels",
                         "kubernetes.io/hostname", a->node_name, "kubernetes.io/os", "linux",
                         "kubernetes.io/arch", "amd64", "spec", "podCIDR", cidr, "podCIDRs", cidr);
        rc = orch_kube_request(NULL, NULL, a->kube, "POST", "/api/v1/nodes", NULL, node, err);
        json_decref(node);
        if (rc == SW_ECONFLICT || rc == SW_EEXIST) {
                sw_err_clear(err);
                adopt_cidr(a);
                rc = 0;
        }
        if (rc == 0)
                rc = patch_node_status(a, err);
        if (rc)
                sw_err_wrap(err, "register node \"%s\"", a->node_name);
        return rc;
}

/* The Lease in kube-node-lease, when the API server serves leases. */
static void renew_lease(struct orch_agent *a)
{
        char path[512], ts[64];
        struct timespec now;
        struct tm tm;
        json_t *lease;
        struct sw_err err = SW_ERR_INIT;
        int rc;

        clock_gettime(CLOCK_REALTIME, &now);
        gmtime_r(&now.tv_sec, &tm);
        snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000);
        lease = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:i,s:s}}", "apiVersion",
                          "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name",
                          a->node_name, "namespace", LEASE_NS, "spec", "holderIdentity",
                          a->node_name, "leaseDurationSeconds", 40, "renewTime", ts);
        snprintf(path, sizeof(path), "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s",
                 LEASE_NS, a->node_name);
        rc = orch_kube_request(NULL, NULL, a->kube, "PATCH", path, "application/merge-patch+json",
                               lease, &err);
        if (rc == SW_ENOTFOUND) {
                json_t *ns = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "Namespace",
                                       "metadata", "name", LEASE_NS);
                sw_err_clear(&err);
                orch_kube_request(NULL, NULL, a->kube, "POST", "/api/v1/namespaces", NULL, ns,
                                  &err);
                json_decref(ns);
                sw_err_clear(&err);
                snprintf(path, sizeof(path), "/apis/coordination.k8s.io/v1/namespaces/%s/leases",
                         LEASE_NS);
                rc = orch_kube_request(NULL, NULL, a->kube, "POST", path, NULL, lease, &err);
        }
        a->lease_ok = rc == 0;
        if (rc)
                agent_log_err(a, "renew lease", NULL, &err);
        json_decref(lease);
}

static void heartbeat(struct orch_agent *a)
{
        struct sw_err err = SW_ERR_INIT;

        if (a->last_heartbeat_mono && sw_mono_ms() - a->last_heartbeat_mono < a->o.heartbeat_ms)
                return;
        a->last_heartbeat_mono = sw_mono_ms();
        /* A Node deleted meanwhile is registered again. */
        if (patch_node_status(a, &err) == SW_ENOTFOUND) {
                sw_err_clear(&err);
                register_node(a, &err);
        }
        if (err.code)
                agent_log_err(a, "heartbeat", NULL, &err);
        renew_lease(a);
}

/* ---- the loop ---- */

static struct agent_pod *find_pod(struct orch_agent *a, const char *uid)
{
        for (struct agent_pod *p = a->pods; p; p = p->next)
                if (!strcmp(p->uid, uid))
                        return p;
        return NULL;
}

/* A new pod record at the end of the list: pods are served in the order they came. */
static struct agent_pod *add_pod(struct orch_agent *a, const char *uid, const char *ns,
                                 const char *name)
{
        struct agent_pod *p = agent_pod_new(a, uid, ns, name), **pp = &a->pods;

        while (*pp)
                pp = &(*pp)->next;
        *pp = p;
        return p;
}

static void remove_pod(struct orch_agent *a, struct agent_pod *p)
{
        for (struct agent_pod **pp = &a->pods; *pp; pp = &(*pp)->next)
                if (*pp == p) {
                        *pp = p->next;
                        agent_pod_free(p);
                        return;
                }
}

/* metadata.resourceVersion as a number; -1 when it is not one. */
static int64_t obj_rv(const json_t *obj)
{
        const char *s = sw_json_str(json_object_get(obj, "metadata"), "resourceVersion", "");
        char *end;
        long long v = strtoll(s, &end, 10);

        return *s && !*end && v >= 0 ? v : -1;
}

/*
 * Keep `obj` (a reference is taken) as the pod's latest object, unless the
 * one held is newer: a list and the watch events may arrive in either
 * order. True when it was taken.
 */
static bool pod_set_obj(struct agent_pod *p, json_t *obj)
{
        int64_t rv = obj_rv(obj);

        if (p->obj && rv >= 0 && p->rv >= 0 && rv < p->rv)
                return false;
        json_incref(obj);
        json_decref(p->obj);
        p->obj = obj;
        p->rv = rv;
        return true;
}

/* Pod directories of an earlier run: their containers may still be running. */
static void load_pods(struct orch_agent *a)
{
        char *dir = sw_xasprintf("%s/pods", a->root);
        DIR *d = opendir(dir);
        struct dirent *e;

        while (d && (e = readdir(d))) {
                char *path, *text = NULL;
                json_t *rec = NULL;
                struct sw_err ignored = SW_ERR_INIT;

                if (e->d_name[0] == '.')
                        continue;
                path = sw_xasprintf("%s/%s/pod.json", dir, e->d_name);
                if (sw_read_file(&text, NULL, path, 65536, &ignored) == 0 &&
                    sw_json_parse(&rec, text, strlen(text), 0, &ignored) == 0 &&
                    !find_pod(a, sw_json_str(rec, "uid", "")))
                        add_pod(a, sw_json_str(rec, "uid", ""), sw_json_str(rec, "namespace", ""),
                                sw_json_str(rec, "name", ""));
                json_decref(rec);
                free(text);
                free(path);
        }
        if (d)
                closedir(d);
        free(dir);
}

/*
 * List the pods bound to this node: every one gets its record (with the
 * newer object) and is marked seen. 0, or the client's error (logged).
 */
static int list_pods(struct orch_agent *a)
{
        char *path = NULL, *sel = NULL;
        json_t *list = NULL, *item;
        struct sw_err err = SW_ERR_INIT;
        size_t i;
        int rc;

        sel = sw_xasprintf("spec.nodeName%%3D%s", a->node_name);
        path = sw_xasprintf("/api/v1/pods?fieldSelector=%s", sel);
        rc = orch_kube_get(&list, a->kube, path, &err);
        if (rc) {
                agent_log_err(a, "list pods", NULL, &err);
                goto out;
        }
        for (struct agent_pod *p = a->pods; p; p = p->next)
                p->seen = false;
        json_array_foreach(json_object_get(list, "items"), i, item)
        {
                const json_t *meta = json_object_get(item, "metadata");
                const char *uid = sw_json_str(meta, "uid", "");
                struct agent_pod *p = find_pod(a, uid);

                if (!*uid)
                        continue;
                if (!p)
                        p = add_pod(a, uid, sw_json_str(meta, "namespace", ""),
                                    sw_json_str(meta, "name", ""));
                p->seen = true;
                pod_set_obj(p, item);
        }
out:
        json_decref(list);
        free(path);
        free(sel);
        return rc;
}

/*
 * The full pass, every PASS_MS: reconcile every pod from its latest
 * object (restart back-offs, probes and grace periods are timed from
 * here). With `list` (every RESYNC_MS, at start and whenever the watch
 * lost its place) the objects come from a fresh list first, and pods that
 * left it are stopped and cleaned up; between lists the watch keeps the
 * objects current, so a pass does not wait for the API server.
 */
static void full_pass(struct orch_agent *a, bool list)
{
        heartbeat(a);
        if (list && list_pods(a) != 0)
                list = false;
        for (struct agent_pod *p = a->pods; p; p = p->next) {
                if (p->gone)
                        continue;
                if (list && !p->seen) {
                        agent_pod_destroy(a, p);
                        continue;
                }
                if (!p->obj)
                        continue;
                p->dirty = false;
                agent_pod_reconcile(a, p, p->obj);
        }
        for (struct agent_pod **pp = &a->pods; list && *pp;) {
                struct agent_pod *p = *pp;
                if (p->gone && !p->seen) {
                        *pp = p->next;
                        agent_pod_free(p);
                } else
                        pp = &p->next;
        }
        agent_gc_run(a);
}

/*
 * The watch events that came since the last turn (the latest of each
 * pod): their objects are kept and the pods marked for a reconcile; a
 * deleted pod is stopped and cleaned up at once.
 */
static void apply_events(struct orch_agent *a, json_t *events)
{
        const char *uid;
        json_t *ev;

        json_object_foreach(events, uid, ev)
        {
                const char *type = sw_json_str(ev, "type", "");
                json_t *obj = json_object_get(ev, "object");
                const json_t *meta = json_object_get(obj, "metadata");
                struct agent_pod *p = find_pod(a, uid);

                if (!strcmp(type, "DELETED")) {
                        if (p && !p->gone)
                                agent_pod_destroy(a, p);
                        if (p)
                                remove_pod(a, p);
                        continue;
                }
                if (!p)
                        p = add_pod(a, uid, sw_json_str(meta, "namespace", ""),
                                    sw_json_str(meta, "name", ""));
                if (pod_set_obj(p, obj))
                        p->dirty = true;
        }
}

/*
 * Between full passes: look at starting containers and terminating pods,
 * then reconcile only the pods that changed (a watch event, a container
 * seen running or ended, a finished pull, a free start slot). True when
 * something is still awaited, so the loop should look again soon.
 */
static bool quick_turn(struct orch_agent *a, bool pulled)
{
        bool watch = false;

        a->starting = 0;
        for (struct agent_pod *p = a->pods; p; p = p->next) {
                if (p->gone || !p->obj)
                        continue;
                if (agent_pod_poll(a, p, &watch) || (pulled && agent_pod_pulling(p)))
                        p->dirty = true;
        }
        for (struct agent_pod *p = a->pods; p; p = p->next) {
                if (p->gone || !p->obj)
                        continue;
                if (p->dirty || (p->start_blocked && a->starting < AGENT_MAX_STARTING)) {
                        p->dirty = false;
                        agent_pod_reconcile(a, p, p->obj);
                }
                watch |= p->start_blocked;
        }
        return watch || a->starting > 0;
}

static void *loop_main(void *arg)
{
        struct orch_agent *a = arg;
        int64_t next_full = 0, next_list = 0;

        load_pods(a);
        while (!atomic_load(&a->stop)) {
                struct timespec ts;
                json_t *events;
                bool resync, pulled, soon;
                int64_t wait_ms;

                pthread_mutex_lock(&a->mu);
                events = a->events;
                a->events = json_object();
                resync = a->resync;
                pulled = a->pulled;
                a->resync = a->pulled = a->dirty = false;
                pthread_mutex_unlock(&a->mu);

                apply_events(a, events);
                json_decref(events);
                if (resync || sw_mono_ms() >= next_list) {
                        full_pass(a, true);
                        next_full = sw_mono_ms() + PASS_MS;
                        next_list = sw_mono_ms() + RESYNC_MS;
                } else if (sw_mono_ms() >= next_full) {
                        full_pass(a, false);
                        next_full = sw_mono_ms() + PASS_MS;
                }
                soon = quick_turn(a, pulled);
                agent_cleanup_hold(a->cleanup, a->starting > 0);

                wait_ms = next_full - sw_mono_ms();
                if (soon && wait_ms > POLL_MS)
                        wait_ms = POLL_MS;
                if (wait_ms <= 0)
                        continue;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += (long)wait_ms * 1000000L;
                ts.tv_sec += ts.tv_nsec / 1000000000L;
                ts.tv_nsec %= 1000000000L;
                pthread_mutex_lock(&a->mu);
                while (!a->dirty && !atomic_load(&a->stop))
                        if (pthread_cond_timedwait(&a->cond, &a->mu, &ts) != 0)
                                break;
                pthread_mutex_unlock(&a->mu);
        }
        return NULL;
}

static void wake(struct orch_agent *a, bool resync)
{
        pthread_mutex_lock(&a->mu);
        a->dirty = true;
        a->resync |= resync;
        pthread_cond_signal(&a->cond);
        pthread_mutex_unlock(&a->mu);
}

/* A watch event: kept (the latest per pod) for the loop, which is woken. */
static int on_event(void *arg, const char *type, const json_t *obj)
{
        struct orch_agent *a = arg;
        const char *uid = sw_json_str(json_object_get(obj, "metadata"), "uid", "");

        if (*uid &&
            (!strcmp(type, "ADDED") || !strcmp(type, "MODIFIED") || !strcmp(type, "DELETED"))) {
                json_t *ev = json_pack("{s:s,s:o}", "type", type, "object", sw_json_copy(obj));
                pthread_mutex_lock(&a->mu);
                json_object_set_new(a->events, uid, ev);
                a->dirty = true;
                pthread_cond_signal(&a->cond);
                pthread_mutex_unlock(&a->mu);
        }
        return atomic_load(&a->stop) ? 1 : 0;
}

static void *watch_main(void *arg)
{
        struct orch_agent *a = arg;
        char *rv = NULL, *query = sw_xasprintf("fieldSelector=spec.nodeName%%3D%s", a->node_name);

        while (!atomic_load(&a->stop)) {
                struct sw_err err = SW_ERR_INIT;
                char *next = NULL;
                int rc = orch_kube_watch(&next, a->wkube, "/api/v1/pods", query, rv, 2000, on_event,
                                         a, &err);
                if (next && *next) {
                        free(rv);
                        rv = next;
                } else
                        free(next);
                if (rc == SW_ECONFLICT) {
                        free(rv);
                        rv = NULL;
                        wake(a, true);
                } else if (rc && rc != SW_ETIMEDOUT && !atomic_load(&a->stop)) {
                        /* Events may have been missed meanwhile: list again. */
                        wake(a, true);
                        sw_sleep_ms(500);
                }
        }
        free(rv);
        free(query);
        return NULL;
}

/* ---- start, stop ---- */

static void agent_free(struct orch_agent *a)
{
        if (!a)
                return;
        atomic_store(&a->stop, true); /* ends log followers */
        agent_pulls_free(a->pulls);   /* before a->mu goes: workers wake the loop through it */
        agent_cleanup_free(a->cleanup);
        agent_logs_stop(a);
        agent_proxy_stop(a->proxy);
        while (a->pods) {
                struct agent_pod *p = a->pods;
                a->pods = p->next;
                agent_pod_free(p);
        }
        orch_kube_free(a->kube);
        orch_kube_free(a->wkube);
        json_decref(a->images);
        json_decref(a->image_used);
        json_decref(a->events);
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->cond);
        free(a->kubeconfig);
        free(a->node_name);
        free(a->data_dir);
        free(a->cpu);
        free(a->memory);
        free(a->root);
        free(a->runc_root);
        free(a);
}

int orch_agent_start(struct orch_agent **out, const struct orch_agent_options *opts,
                     struct sw_err *err)
{
        struct orch_agent *a;
        int rc;

        if (!opts->kubeconfig || !opts->node_name || !opts->data_dir || !opts->cfg)
                return sw_err_set(err, SW_EINVAL,
                                  "a node agent needs a kubeconfig, a node name and a data dir");
        rc = sw_valid_dns1123_subdomain(opts->node_name, "node name", err);
        if (rc)
                return rc;
        a = sw_xcalloc(1, sizeof(*a));
        a->o = *opts;
        a->kubeconfig = sw_xstrdup(opts->kubeconfig);
        a->node_name = sw_xstrdup(opts->node_name);
        a->data_dir = sw_xstrdup(opts->data_dir);
        a->cpu = opts->cpu ? sw_xstrdup(opts->cpu) : NULL;
        a->memory = opts->memory ? sw_xstrdup(opts->memory) : NULL;
        a->o.kubeconfig = a->kubeconfig;
        a->o.node_name = a->node_name;
        a->o.data_dir = a->data_dir;
        a->o.cpu = a->cpu;
        a->o.memory = a->memory;
        if (a->o.max_pods <= 0)
                a->o.max_pods = 110;
        if (a->o.backoff_base_ms <= 0)
                a->o.backoff_base_ms = 10000;
        if (a->o.backoff_max_ms <= 0)
                a->o.backoff_max_ms = 300000;
        if (a->o.heartbeat_ms <= 0)
                a->o.heartbeat_ms = 10000;
        a->runtime = opts->cfg->runtime ? opts->cfg->runtime : "runc";
        a->root = sw_xasprintf("%s/node/%s", a->data_dir, a->node_name);
        a->runc_root = sw_xasprintf("%s/runc", a->root);
        a->images = json_object();
        a->image_used = json_object();
        a->events = json_object();
        pthread_mutex_init(&a->mu, NULL);
        pthread_cond_init(&a->cond, NULL);
        rc = sw_mkdir_p(a->root, 0700, err);
        if (rc == 0)
                rc = agent_cleanup_new(&a->cleanup, a->runtime, a->runc_root, err);
        if (rc == 0)
                rc = agent_logs_start(a, err);
        if (rc == 0)
                rc = orch_kube_from_kubeconfig(&a->kube, a->kubeconfig, NULL, err);
        if (rc == 0)
                rc = orch_kube_from_kubeconfig(&a->wkube, a->kubeconfig, NULL, err);
        if (rc == 0)
                rc = register_node(a, err);
        if (rc)
                goto fail;
        a->last_heartbeat_mono = sw_mono_ms();
        renew_lease(a);
        rc = agent_proxy_start(&a->proxy, a, err);
        if (rc)
                goto fail;
        if (pthread_create(&a->loop_thread, NULL, loop_main, a) != 0) {
                rc = sw_err_set(err, SW_EIO, "cannot start the agent's thread");
                goto fail;
        }
        if (pthread_create(&a->watch_thread, NULL, watch_main, a) != 0) {
                atomic_store(&a->stop, true);
                wake(a, false);
                pthread_join(a->loop_thread, NULL);
                rc = sw_err_set(err, SW_EIO, "cannot start the agent's thread");
                goto fail;
        }
        a->threads_started = true;
        sw_log(SW_LOG_INFO, "orch_agent", "node registered", "{s:s,s:s}", "node", a->node_name,
               "server", orch_kube_server(a->kube));
        *out = a;
        return 0;
fail:
        agent_free(a);
        return rc;
}

void orch_agent_stop(struct orch_agent *a)
{
        if (!a)
                return;
        atomic_store(&a->stop, true);
        wake(a, false);
        if (a->threads_started) {
                pthread_join(a->loop_thread, NULL);
                pthread_join(a->watch_thread, NULL);
        }
        agent_free(a);
}

/* ---- slipway node ---- */

static int parse_ms(int64_t *out, const char *s)
{
        char *end;
        long long v = strtoll(s, &end, 10);

        if (!*s || *end || v < 1 || v > 86400000)
                return -1;
        *out = v;
        return 0;
}

int orch_agent_cmd(int argc, char **argv, const struct sw_config *cfg)
{
        static const struct option opts[] = {
                {"kubeconfig", required_argument, NULL, 'k'},
                {"name", required_argument, NULL, 'n'},
                {"cpu", required_argument, NULL, 'c'},
                {"memory", required_argument, NULL, 'm'},
                {"max-pods", required_argument, NULL, 'p'},
                {"backoff-ms", required_argument, NULL, 'b'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct orch_agent_options ao = ORCH_AGENT_OPTIONS_INIT;
        struct orch_agent *agent = NULL;
        struct sw_err err = SW_ERR_INIT;
        char host[256], *kc = NULL;
        sigset_t set;
        int c, sig;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'h':
                        printf("usage: slipway node [--kubeconfig FILE] [--name NAME] [--cpu N]\n"
                               "                    [--memory QTY] [--max-pods N] "
                               "[--backoff-ms MS]\n\n"
                               "Run a node agent in the foreground until SIGTERM or SIGINT: it\n"
                               "registers the Node, heartbeats, and runs the pods bound to it\n"
                               "under the OCI runtime (SLIPWAY_RUNTIME), with images pulled from\n"
                               "their registries into $SLIPWAY_DATA/node/NAME. Each pod gets an\n"
                               "IP from the node's /24 of SLIPWAY_POD_CIDR; container ports are\n"
                               "forwarded at podIP:port and published on 127.0.0.1 host ports\n"
                               "(each pod's slipway.dev/ports annotation). Service ClusterIPs are\n"
                               "served on the host and in every pod by the agent's service proxy.\n"
                               "Stopping the agent leaves its pods running; a new agent of the\n"
                               "same name adopts them.\n\n"
                               "  --kubeconfig FILE  the API server (default: SLIPWAY_KUBECONFIG,\n"
                               "                     else $SLIPWAY_DATA/kubeconfig)\n"
                               "  --name NAME        node name (default: the host name)\n"
                               "  --cpu N            cpu capacity (default: the machine's cores)\n"
                               "  --memory QTY       memory capacity (default: the machine's)\n"
                               "  --max-pods N       pod capacity (default 110)\n"
                               "  --backoff-ms MS    first restart back-off (default 10000)\n");
                        return 0;
                case 'k':
                        ao.kubeconfig = optarg;
                        break;
                case 'n':
                        ao.node_name = optarg;
                        break;
                case 'c':
                        ao.cpu = optarg;
                        break;
                case 'm':
                        ao.memory = optarg;
                        break;
                case 'p':
                        if (parse_ms(&ao.max_pods, optarg) != 0)
                                return sw_cli_usage_error("node",
                                                          "--max-pods '%s' is not a "
                                                          "positive number",
                                                          optarg);
                        break;
                case 'b':
                        if (parse_ms(&ao.backoff_base_ms, optarg) != 0)
                                return sw_cli_usage_error("node",
                                                          "--backoff-ms '%s' is not a "
                                                          "positive number",
                                                          optarg);
                        break;
                default:
                        return sw_cli_usage_error("node", "unknown option");
                }
        }
        if (optind != argc)
                return sw_cli_usage_error("node", "unexpected argument '%s'", argv[optind]);
        if (!ao.kubeconfig)
                ao.kubeconfig = cfg->kubeconfig ? cfg->kubeconfig
                                                : (kc = sw_xasprintf("%s/kubeconfig", cfg->data));
        if (!ao.node_name) {
                if (gethostname(host, sizeof(host)) != 0)
                        snprintf(host, sizeof(host), "node");
                host[sizeof(host) - 1] = '\0';
                for (char *s = host; *s; s++)
                        if (*s >= 'A' && *s <= 'Z')
                                *s = (char)(*s - 'A' + 'a');
                ao.node_name = host;
        }
        ao.data_dir = cfg->data;
        ao.cfg = cfg;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);
        if (orch_agent_start(&agent, &ao, &err) != 0) {
                free(kc);
                return sw_cli_fail("node", "%s", err.msg);
        }
        sig = 0;
        while (sigwait(&set, &sig) != 0)
                ;
        sw_log(SW_LOG_INFO, "orch_agent", "stopping", "{s:s,s:s}", "node", ao.node_name, "reason",
               sig == SIGTERM ? "SIGTERM" : "SIGINT");
        orch_agent_stop(agent);
        free(kc);
        return 0;
}
