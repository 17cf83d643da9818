/*
 * hollow.c - hollow nodes and a hollow kubelet over the real API; see hollow.h.
 */
#include "tests/harness/hollow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/json.h"
#include "common/mem.h"
#include "orchestrator/client/kube.h"
#include "orchestrator/ctrl.h"
#include "tests/harness/orch.h"

#define NEVER_READY "hollow.slipway.dev/never-ready"
#define EXIT_CODE "hollow.slipway.dev/exit-code"

void t_hollow_now(char *out, size_t n)
{
        time_t t = time(NULL);
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *ready_conds(const char *ts)
{
        return json_pack("[{s:s,s:s,s:s,s:s,s:s,s:s}]", "type", "Ready", "status", "True", "reason",
                         "KubeletReady", "message", "hollow kubelet is posting ready",
                         "lastHeartbeatTime", ts, "lastTransitionTime", ts);
}

static int create_node(struct orch_kube *kc, const char *name, const char *cpu, const char *mem)
{
        struct sw_err err = SW_ERR_INIT;
        char ts[32];
        json_t *node, *out = NULL;
        int rc;

        t_hollow_now(ts, sizeof(ts));
        node = json_pack("{s:s,s:s,s:{s:s,s:{s:s}},s:{}}", "apiVersion", "v1", "kind", "Node",
                         "metadata", "name", name, "labels", "kubernetes.io/hostname", name,
                         "spec");
        rc = orch_kube_request(&out, NULL, kc, "POST", "/api/v1/nodes", NULL, node, &err);
        json_decref(out);
        out = NULL;
        if (rc == 0) {
                char *path = sw_xasprintf("/api/v1/nodes/%s/status", name);
                json_t *st =
                        json_pack("{s:{s:{s:s,s:s,s:s},s:{s:s,s:s,s:s},s:o}}", "status", "capacity",
                                  "cpu", cpu, "memory", mem, "pods", "110", "allocatable", "cpu",
                                  cpu, "memory", mem, "pods", "110", "conditions", ready_conds(ts));
                rc = orch_kube_request(&out, NULL, kc, "PATCH", path,
                                       "application/merge-patch+json", st, &err);
                json_decref(st);
                free(path);
        }
        if (rc)
                fprintf(stderr, "hollow node %s: %s\n", name, err.msg);
        json_decref(out);
        json_decref(node);
        return rc;
}

/* Renew the node's Lease in kube-node-lease, creating it the first time. */
static void renew_lease(struct orch_kube *kc, const char *name, const char *ts)
{
        struct sw_err err = SW_ERR_INIT;
        char *path = sw_xasprintf("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/"
                                  "leases/%s",
                                  name);
        json_t *lease = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:i,s:s}}", "apiVersion",
                                  "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name",
                                  name, "namespace", "kube-node-lease", "spec", "holderIdentity",
                                  name, "leaseDurationSeconds", 40, "renewTime", ts);

        if (orch_kube_request(NULL, NULL, kc, "PATCH", path, "application/merge-patch+json", lease,
                              &err) == SW_ENOTFOUND) {
                sw_err_clear(&err);
                orch_kube_request(NULL, NULL, kc, "POST",
                                  "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                                  NULL, lease, &err);
        }
        json_decref(lease);
        free(path);
}

/*
 * A heartbeat: the Lease every time, the Ready condition's heartbeat only
 * when `status` (every 20th beat), as a kubelet posts status less often
 * once it has a lease.
 */
static void heartbeat(struct orch_kube *kc, const char *name, bool status)
{
        struct sw_err err = SW_ERR_INIT;
        char ts[32], *path = sw_xasprintf("/api/v1/nodes/%s/status", name);
        json_t *st;

        {
                /* the lease's renewTime is a MicroTime */
                struct timespec now;
                struct tm tm;
                char micro[48];
                clock_gettime(CLOCK_REALTIME, &now);
                gmtime_r(&now.tv_sec, &tm);
                strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
                snprintf(micro, sizeof(micro), "%.19s.%06ldZ", ts, now.tv_nsec / 1000);
                renew_lease(kc, name, micro);
        }
        if (status) {
                st = json_pack("{s:{s:o}}", "status", "conditions", ready_conds(ts));
                orch_kube_request(NULL, NULL, kc, "PATCH", path, "application/merge-patch+json", st,
                                  &err);
                json_decref(st);
        }
        free(path);
}

/* A pod annotated with an exit code finishes: Succeeded for 0, else Failed. */
static void finish_pod(struct orch_kube *kc, const json_t *pod, const char *path)
{
        const json_t *md = json_object_get(pod, "metadata");
        const char *code = sw_json_str(json_object_get(md, "annotations"), EXIT_CODE, "0");
        const json_t *c0 =
                json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0);
        int exit_code = (int)strtol(code, NULL, 10);
        struct sw_err err = SW_ERR_INIT;
        char ts[32], *spath = sw_xasprintf("%s/status", path);
        json_t *st;

        t_hollow_now(ts, sizeof(ts));
        st = json_pack("{s:{s:s,s:[{s:s,s:s,s:s,s:s},{s:s,s:s,s:s,s:s}],"
                       "s:[{s:s,s:b,s:i,s:{s:{s:i,s:s,s:s,s:s}}}]}}",
                       "status", "phase", exit_code == 0 ? "Succeeded" : "Failed", "conditions",
                       "type", "Ready", "status", "False", "reason", "PodCompleted",
                       "lastTransitionTime", ts, "type", "ContainersReady", "status", "False",
                       "reason", "PodCompleted", "lastTransitionTime", ts, "containerStatuses",
                       "name", sw_json_str(c0, "name", "c"), "ready", 0, "restartCount", 0, "state",
                       "terminated", "exitCode", exit_code, "reason",
                       exit_code == 0 ? "Completed" : "Error", "startedAt", ts, "finishedAt", ts);
        orch_kube_request(NULL, NULL, kc, "PATCH", spath, "application/merge-patch+json", st, &err);
        json_decref(st);
        free(spath);
}

static bool node_dead(struct t_hollow *h, const char *node)
{
        for (int i = 0; i < h->n; i++)
                if (strcmp(h->names[i], node) == 0)
                        return atomic_load(&h->dead[i]);
        return true; /* not ours */
}

static bool pod_ready(const json_t *pod)
{
        const json_t *c;
        size_t i;

        json_array_foreach(json_object_get(json_object_get(pod, "status"), "conditions"), i, c)
        {
                if (strcmp(sw_json_str(c, "type", ""), "Ready") == 0)
                        return strcmp(sw_json_str(c, "status", ""), "True") == 0;
        }
        return false;
}

/*
 * A running pod that someone else marked not ready (the node lifecycle
 * controller, while the node seemed gone) is reported ready again, as a
 * kubelet reports its pods' real state.
 */
static void ready_again(struct orch_kube *kc, const json_t *pod, const char *path)
{
        struct sw_err err = SW_ERR_INIT;
        json_t *conds =
                json_deep_copy(json_object_get(json_object_get(pod, "status"), "conditions"));
        char ts[32], *spath = sw_xasprintf("%s/status", path);
        json_t *c, *st;
        size_t i;

        t_hollow_now(ts, sizeof(ts));
        json_array_foreach(conds, i, c)
        {
                const char *type = sw_json_str(c, "type", "");
                if (strcmp(type, "Ready") != 0 && strcmp(type, "ContainersReady") != 0)
                        continue;
                json_object_set_new(c, "status", json_string("True"));
                json_object_del(c, "reason");
                json_object_set_new(c, "lastTransitionTime", json_string(ts));
        }
        st = json_pack("{s:{s:o}}", "status", "conditions", conds);
        orch_kube_request(NULL, NULL, kc, "PATCH", spath, "application/merge-patch+json", st, &err);
        json_decref(st);
        free(spath);
}

static void pass(struct t_hollow *h, struct orch_kube *kc)
{
        struct sw_err err = SW_ERR_INIT;
        json_t *list = NULL, *p;
        size_t i;

        if (orch_kube_get(&list, kc, "/api/v1/pods", &err) != 0)
                return;
        json_array_foreach(json_object_get(list, "items"), i, p)
        {
                const json_t *md = json_object_get(p, "metadata");
                const char *node = sw_json_str(json_object_get(p, "spec"), "nodeName", "");
                const char *phase = sw_json_str(json_object_get(p, "status"), "phase", "");
                bool deleting = json_object_get(md, "deletionTimestamp") != NULL;
                char *path;
                if (!*node || node_dead(h, node))
                        continue;
                path = sw_xasprintf("/api/v1/namespaces/%s/pods/%s",
                                    sw_json_str(md, "namespace", ""), sw_json_str(md, "name", ""));
                if (deleting) {
                        json_t *body = json_pack("{s:i}", "gracePeriodSeconds", 0);
                        orch_kube_request(NULL, NULL, kc, "DELETE", path, NULL, body, &err);
                        sw_err_clear(&err);
                        json_decref(body);
                } else if (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0) {
                        /* finished for good */
                } else if (strcmp(phase, "Running") == 0) {
                        if (json_object_get(json_object_get(md, "annotations"), EXIT_CODE))
                                finish_pod(kc, p, path);
                        else if (!json_object_get(json_object_get(md, "annotations"),
                                                  NEVER_READY) &&
                                 !pod_ready(p))
                                ready_again(kc, p, path);
                } else {
                        bool never = json_object_get(json_object_get(md, "annotations"),
                                                     NEVER_READY) != NULL;
                        char ts[32], ip[32], *spath = sw_xasprintf("%s/status", path);
                        const char *rd = never ? "False" : "True";
                        json_t *st;
                        t_hollow_now(ts, sizeof(ts));
                        h->ipseq++;
                        snprintf(ip, sizeof(ip), "127.0.%u.%u", 10 + (h->ipseq / 250) % 200,
                                 1 + h->ipseq % 250);
                        st = json_pack("{s:{s:s,s:s,s:s,s:[{s:s,s:s,s:s},{s:s,s:s,s:s},"
                                       "{s:s,s:s,s:s}]}}",
                                       "status", "phase", "Running", "podIP", ip, "hostIP",
                                       "127.0.0.1", "conditions", "type", "PodScheduled", "status",
                                       "True", "lastTransitionTime", ts, "type", "ContainersReady",
                                       "status", rd, "lastTransitionTime", ts, "type", "Ready",
                                       "status", rd, "lastTransitionTime", ts);
                        orch_kube_request(NULL, NULL, kc, "PATCH", spath,
                                          "application/merge-patch+json", st, &err);
                        sw_err_clear(&err);
                        json_decref(st);
                        free(spath);
                }
                free(path);
        }
        if (h->observe)
                h->observe(h->observe_arg, json_object_get(list, "items"));
        json_decref(list);
}

/* Heartbeats in their own thread, so that a slow pass over many pods never delays them. */
static void *heartbeat_main(void *arg)
{
        struct t_hollow *h = arg;
        struct orch_kube *kc = NULL;
        struct sw_err err = SW_ERR_INIT;
        unsigned beats = 0;

        if (orch_kube_from_kubeconfig(&kc, h->kubeconfig, NULL, &err) != 0)
                return NULL;
        while (!atomic_load(&h->stop)) {
                int64_t next = sw_mono_ms() + 500;
                for (int i = 0; i < h->n; i++)
                        if (!atomic_load(&h->dead[i]))
                                heartbeat(kc, h->names[i], beats % 20 == 0);
                beats++;
                while (!atomic_load(&h->stop) && sw_mono_ms() < next)
                        sw_sleep_ms(50);
        }
        orch_kube_free(kc);
        return NULL;
}

static void *hollow_main(void *arg)
{
        struct t_hollow *h = arg;
        struct orch_kube *kc = NULL;
        struct sw_err err = SW_ERR_INIT;

        if (orch_kube_from_kubeconfig(&kc, h->kubeconfig, NULL, &err) != 0)
                return NULL;
        while (!atomic_load(&h->stop)) {
                pass(h, kc);
                sw_sleep_ms(100);
        }
        orch_kube_free(kc);
        return NULL;
}

bool t_hollow_start(struct t_hollow *h, const char *kubeconfig, const char *prefix, int n,
                    const char *cpu, const char *memory)
{
        struct orch_kube *kc = NULL;
        struct sw_err err = SW_ERR_INIT;
        bool ok = true;

        h->kubeconfig = sw_xstrdup(kubeconfig);
        h->n = n < T_HOLLOW_MAX ? n : T_HOLLOW_MAX;
        atomic_init(&h->stop, false);
        if (orch_kube_from_kubeconfig(&kc, kubeconfig, NULL, &err) != 0) {
                fprintf(stderr, "hollow: %s\n", err.msg);
                return false;
        }
        for (int i = 0; i < h->n && ok; i++) {
                atomic_init(&h->dead[i], false);
                snprintf(h->names[i], sizeof(h->names[i]), "%s%d", prefix, i + 1);
                ok = create_node(kc, h->names[i], cpu, memory) == 0;
        }
        orch_kube_free(kc);
        if (ok && pthread_create(&h->th, NULL, hollow_main, h) == 0)
                h->running = true;
        if (ok && pthread_create(&h->hb_th, NULL, heartbeat_main, h) == 0)
                h->hb_running = true;
        return ok && h->running && h->hb_running;
}

void t_hollow_kill(struct t_hollow *h, int i)
{
        atomic_store(&h->dead[i], true);
}

void t_hollow_stop(struct t_hollow *h)
{
        atomic_store(&h->stop, true);
        if (h->running)
                pthread_join(h->th, NULL);
        if (h->hb_running)
                pthread_join(h->hb_th, NULL);
        h->running = false;
        h->hb_running = false;
        free(h->kubeconfig);
        h->kubeconfig = NULL;
}

bool t_cluster_start(struct t_orch *srv, const char *name, struct t_hollow *h, const char *prefix,
                     int n, const char *cpu, const char *memory, struct orch_ctrl_options *co,
                     struct orch_ctrl **ctrl)
{
        struct sw_err err = SW_ERR_INIT;

        if (!t_orch_start(srv, name) || !t_hollow_start(h, srv->kubeconfig, prefix, n, cpu, memory))
                return false;
        co->kubeconfig = srv->kubeconfig;
        if (orch_ctrl_start(ctrl, co, &err) != 0) {
                fprintf(stderr, "controllers: %s\n", err.msg);
                return false;
        }
        return true;
}

void t_cluster_stop(struct t_orch *srv, struct t_hollow *h, struct orch_ctrl **ctrl)
{
        orch_ctrl_stop(*ctrl);
        *ctrl = NULL;
        t_hollow_stop(h);
        t_orch_stop(srv);
}
