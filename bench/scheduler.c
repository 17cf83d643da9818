/*
 * scheduler.c - benchmark of the orchestrator's scheduler and controllers
 * through the real API server, in this process as in `slipway serve`: the
 * controllers, the scheduler, the pod watch and the hollow kubelet call it
 * through its in-process transport (orch_api_local); the Nodes are created
 * over plain HTTP on loopback.
 *
 * N Node objects (Ready, 32 cpu, 128Gi, 110 pods; their status is written
 * once, so no heartbeats compete with the scheduler) are created first.
 * Then, with the scheduler, ReplicaSet and Deployment controllers running,
 * Deployments totalling M replicas with mixed cpu/memory requests are
 * created: a third with a DoNotSchedule topology spread constraint on
 * kubernetes.io/hostname (maxSkew 1), a third ScheduleAnyway, a third with
 * the default spreading. A watch on pods notes when each pod first
 * appears and when it is first seen bound; from that come pods bound per
 * second (first pod seen to last bound), the rate pods were created at
 * over the same span, and the p50/p99 time from creation to binding. Last, a Deployment is scaled from 0 to R replicas
 * and timed until it reports R available replicas; a hollow kubelet in
 * this process marks each bound pod Running and Ready, as `slipway node
 * --hollow` would.
 *
 * Usage: bench_scheduler [nodes [pods [replicas]]]   (default 5000 30000 10000)
 */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/libs.h"
#include "common/mem.h"
#include "orchestrator/client/kube.h"
#include "orchestrator/ctrl.h"
#include "orchestrator/orchestrator.h"
#include "tests/harness/hollow.h"
#include "tests/harness/t.h"

#define TOKEN "bench-token-0123456789abcdef"
#define KUBELETS 2

/* What the pod watch saw; shared by the watch thread, the kubelets and main. */
struct seen {
        pthread_mutex_t mu;
        pthread_cond_t cv;
        json_t *pods;     /* "ns/name" -> [created_ms, bound_ms or 0] */
        json_t *to_ready; /* keys of bound pods the kubelets should mark Ready */
        atomic_int bound;
        atomic_bool stop;
        const struct orch_kube_local *local; /* the API server in this process */
};

static int on_pod(void *arg, const char *type, const json_t *obj)
{
        struct seen *s = arg;
        const json_t *md = json_object_get(obj, "metadata");
        const char *node = sw_json_str(json_object_get(obj, "spec"), "nodeName", "");
        char *key;
        json_t *rec;

        if (strcmp(type, "ADDED") != 0 && strcmp(type, "MODIFIED") != 0)
                return atomic_load(&s->stop) ? 1 : 0;
        key = sw_xasprintf("%s/%s", sw_json_str(md, "namespace", ""), sw_json_str(md, "name", ""));
        pthread_mutex_lock(&s->mu);
        rec = json_object_get(s->pods, key);
        if (!rec) {
                rec = json_pack("[I,I]", (json_int_t)sw_mono_ms(), (json_int_t)0);
                json_object_set_new(s->pods, key, rec);
        }
        if (*node && json_integer_value(json_array_get(rec, 1)) == 0) {
                json_array_set_new(rec, 1, json_integer((json_int_t)sw_mono_ms()));
                atomic_fetch_add(&s->bound, 1);
                if (strcmp(sw_json_str(json_object_get(md, "labels"), "bench", ""), "big") == 0) {
                        json_array_append_new(s->to_ready, json_string(key));
                        pthread_cond_signal(&s->cv);
                }
        }
        pthread_mutex_unlock(&s->mu);
        free(key);
        return atomic_load(&s->stop) ? 1 : 0;
}

static void *watch_main(void *arg)
{
        struct seen *s = arg;
        struct orch_kube *kc = NULL;
        struct sw_err err = SW_ERR_INIT;
        char *rv = sw_xstrdup("0");

        orch_kube_new_local(&kc, s->local);
        while (!atomic_load(&s->stop)) {
                char *next = NULL;
                sw_err_clear(&err);
                orch_kube_watch(&next, kc, "/api/v1/pods", NULL, rv, 2000, on_pod, s, &err);
                if (next) {
                        free(rv);
                        rv = next;
                }
        }
        free(rv);
        orch_kube_free(kc);
        return NULL;
}

/* The hollow kubelet: bound pods of the big Deployment become Running and Ready. */
static void *kubelet_main(void *arg)
{
        struct seen *s = arg;
        struct orch_kube *kc = NULL;
        struct sw_err err = SW_ERR_INIT;
        unsigned seq = 0;

        orch_kube_new_local(&kc, s->local);
        for (;;) {
                char *key = NULL, *path, ts[32], ip[32];
                json_t *st;
                const char *slash;
                pthread_mutex_lock(&s->mu);
                while (!atomic_load(&s->stop) && json_array_size(s->to_ready) == 0)
                        pthread_cond_wait(&s->cv, &s->mu);
                if (json_array_size(s->to_ready) > 0) {
                        key = sw_xstrdup(json_string_value(json_array_get(s->to_ready, 0)));
                        json_array_remove(s->to_ready, 0);
                }
                pthread_mutex_unlock(&s->mu);
                if (!key)
                        break;
                slash = strchr(key, '/');
                path = sw_xasprintf("/api/v1/namespaces/%.*s/pods/%s/status", (int)(slash - key),
                                    key, slash + 1);
                t_hollow_now(ts, sizeof(ts));
                seq++;
                snprintf(ip, sizeof(ip), "127.1.%u.%u", (seq / 250) % 250, 1 + seq % 250);
                st = json_pack("{s:{s:s,s:s,s:[{s:s,s:s,s:s},{s:s,s:s,s:s}]}}", "status", "phase",
                               "Running", "podIP", ip, "conditions", "type", "ContainersReady",
                               "status", "True", "lastTransitionTime", ts, "type", "Ready",
                               "status", "True", "lastTransitionTime", ts);
                orch_kube_request(NULL, NULL, kc, "PATCH", path, "application/merge-patch+json", st,
                                  &err);
                sw_err_clear(&err);
                json_decref(st);
                free(path);
                free(key);
        }
        orch_kube_free(kc);
        return NULL;
}

static int create_nodes(struct orch_kube *kc, int n)
{
        struct sw_err err = SW_ERR_INIT;
        char ts[32];

        t_hollow_now(ts, sizeof(ts));
        for (int i = 0; i < n; i++) {
                char name[32], *path;
                json_t *node, *st;
                int rc;
                snprintf(name, sizeof(name), "bench-%d", i);
                node = json_pack("{s:s,s:s,s:{s:s,s:{s:s}}}", "apiVersion", "v1", "kind", "Node",
                                 "metadata", "name", name, "labels", "kubernetes.io/hostname",
                                 name);
                rc = orch_kube_request(NULL, NULL, kc, "POST", "/api/v1/nodes", NULL, node, &err);
                json_decref(node);
                if (rc)
                        return rc;
                path = sw_xasprintf("/api/v1/nodes/%s/status", name);
                st = json_pack("{s:{s:{s:s,s:s,s:s},s:[{s:s,s:s,s:s,s:s}]}}", "status",
                               "allocatable", "cpu", "32", "memory", "128Gi", "pods", "110",
                               "conditions", "type", "Ready", "status", "True", "lastHeartbeatTime",
                               ts, "lastTransitionTime", ts);
                rc = orch_kube_request(NULL, NULL, kc, "PATCH", path,
                                       "application/merge-patch+json", st, &err);
                json_decref(st);
                free(path);
                if (rc)
                        return rc;
        }
        return 0;
}

/* Deployment `name` of `replicas`; `spread` 0 default, 1 DoNotSchedule, 2 ScheduleAnyway. */
static int create_deployment(struct orch_kube *kc, const char *name, int replicas, const char *cpu,
                             const char *mem, int spread, struct sw_err *err)
{
        json_t *d = json_pack("{s:s,s:s,s:{s:s},s:{s:i,s:{s:{s:s}},s:{s:{s:{s:s}},s:{s:[{s:s,s:"
                              "s,s:{s:{s:s,s:s}}}]}}}}",
                              "apiVersion", "apps/v1", "kind", "Deployment", "metadata", "name",
                              name, "spec", "replicas", replicas, "selector", "matchLabels",
                              "bench", name, "template", "metadata", "labels", "bench", name,
                              "spec", "containers", "name", "c", "image", "busybox:1.36",
                              "resources", "requests", "cpu", cpu, "memory", mem);
        int rc;

        if (spread)
                json_object_set_new(
                        json_object_get(json_object_get(json_object_get(d, "spec"), "template"),
                                        "spec"),
                        "topologySpreadConstraints",
                        json_pack("[{s:i,s:s,s:s,s:{s:{s:s}}}]", "maxSkew", 1, "topologyKey",
                                  "kubernetes.io/hostname", "whenUnsatisfiable",
                                  spread == 1 ? "DoNotSchedule" : "ScheduleAnyway", "labelSelector",
                                  "matchLabels", "bench", name));
        rc = orch_kube_request(NULL, NULL, kc, "POST",
                               "/apis/apps/v1/namespaces/default/deployments", NULL, d, err);
        json_decref(d);
        return rc;
}

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

        return x < y ? -1 : x > y;
}

/* Wait until `want` pods are bound; false after `timeout_ms`. */
static bool wait_bound(struct seen *s, int want, int64_t timeout_ms)
{
        int64_t end = sw_mono_ms() + timeout_ms;

        while (atomic_load(&s->bound) < want && sw_mono_ms() < end)
                sw_sleep_ms(20);
        return atomic_load(&s->bound) >= want;
}

static void report_binding(struct seen *s)
{
        int64_t first = 0, last = 0, last_created = 0, *lat;
        size_t n = 0, i = 0;
        const char *k;
        json_t *v;

        pthread_mutex_lock(&s->mu);
        lat = sw_xcalloc(json_object_size(s->pods) + 1, sizeof(*lat));
        json_object_foreach(s->pods, k, v)
        {
                int64_t c = json_integer_value(json_array_get(v, 0));
                int64_t b = json_integer_value(json_array_get(v, 1));
                if (!b)
                        continue;
                if (!first || c < first)
                        first = c;
                if (b > last)
                        last = b;
                if (c > last_created)
                        last_created = c;
                lat[n++] = b - c;
        }
        pthread_mutex_unlock(&s->mu);
        qsort(lat, n, sizeof(*lat), cmp_i64);
        printf("scheduler_pods_bound: %zu pods\n", n);
        printf("scheduler_pods_created_rate: %.0f pods/s\n",
               (double)n * 1000.0 / (double)(last_created - first > 0 ? last_created - first : 1));
        printf("scheduler_throughput: %.0f pods/s\n",
               (double)n * 1000.0 / (double)(last - first > 0 ? last - first : 1));
        if (n) {
                i = n * 99 / 100;
                printf("scheduler_create_to_bind_p50: %lld ms\n", (long long)lat[n / 2]);
                printf("scheduler_create_to_bind_p99: %lld ms\n",
                       (long long)lat[i < n ? i : n - 1]);
        }
        free(lat);
}

/* CPU time (user and system) this process has used, in ms. */
static int64_t cpu_ms(void)
{
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
               (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

/* Wait until Deployment `name` reports `want` available replicas. */
static bool wait_available(struct orch_kube *kc, const char *name, int want, int64_t timeout_ms)
{
        int64_t end = sw_mono_ms() + timeout_ms;
        char *path = sw_xasprintf("/apis/apps/v1/namespaces/default/deployments/%s", name);
        bool ok = false;

        while (!ok && sw_mono_ms() < end) {
                struct sw_err err = SW_ERR_INIT;
                json_t *d = NULL;
                if (orch_kube_get(&d, kc, path, &err) == 0)
                        ok = sw_json_int(json_object_get(d, "status"), "availableReplicas", 0) >=
                             want;
                json_decref(d);
                if (!ok)
                        sw_sleep_ms(50);
        }
        free(path);
        return ok;
}

int main(int argc, char **argv)
{
        static const char *const cpus[] = {"100m", "250m", "500m", "1"};
        static const char *const mems[] = {"64Mi", "128Mi", "256Mi", "512Mi"};
        struct orch_api_options o = ORCH_API_OPTIONS_INIT;
        struct orch_ctrl_options co = ORCH_CTRL_OPTIONS_INIT;
        struct sw_err err = SW_ERR_INIT;
        struct orch_api *api = NULL;
        struct orch_ctrl *ctrl = NULL;
        struct orch_kube *kc = NULL;
        struct orch_kube_local local;
        struct seen s;
        pthread_t watcher, kubelets[KUBELETS];
        int nodes = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 5000;
        int pods = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 30000;
        int replicas = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 10000;
        int ndeploy = pods >= 1000 ? pods / 1000 : 1, nthreads = 0;
        const char *dir = t_tmpdir();
        char *db = sw_xasprintf("%s/bench.db", dir), *kcfg = sw_xasprintf("%s/kubeconfig", dir);
        char *text;
        int64_t t0, t1, c0, c1;
        int rc = 1;
        bool watching = false;
        json_t *patch;

        setvbuf(stdout, NULL, _IOLBF, 0);
        sw_libs_init();
        memset(&s, 0, sizeof(s));
        pthread_mutex_init(&s.mu, NULL);
        pthread_cond_init(&s.cv, NULL);
        s.pods = json_object();
        s.to_ready = json_array();
        s.local = &local;
        o.listen = "127.0.0.1:0";
        o.db_path = db;
        o.token = TOKEN;
        if (orch_api_start(&api, &o, &err) != 0) {
                fprintf(stderr, "api: %s\n", err.msg);
                goto out;
        }
        text = sw_xasprintf("apiVersion: v1\nkind: Config\n"
                            "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:%u'}}]\n"
                            "users: [{name: u, user: {token: %s}}]\n"
                            "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
                            "current-context: x\n",
                            (unsigned)orch_api_port(api), TOKEN);
        rc = sw_write_file_atomic(kcfg, text, strlen(text), 0600, &err);
        free(text);
        t0 = sw_mono_ms();
        if (rc || orch_kube_from_kubeconfig(&kc, kcfg, NULL, &err) != 0 ||
            create_nodes(kc, nodes) != 0) {
                fprintf(stderr, "setup: %s\n", err.msg);
                rc = 1;
                goto out;
        }
        printf("scheduler_nodes: %d nodes\n", nodes);
        printf("scheduler_node_setup_time: %lld ms\n", (long long)(sw_mono_ms() - t0));
        /* As in `slipway serve`, clients in this process call the API server directly. */
        orch_api_local(&local, api);
        if (pthread_create(&watcher, NULL, watch_main, &s) != 0)
                goto out;
        watching = true;
        for (; nthreads < KUBELETS; nthreads++)
                if (pthread_create(&kubelets[nthreads], NULL, kubelet_main, &s) != 0)
                        goto out;
        co.local = &local;
        co.kubeconfig = kcfg;
        co.controllers = ORCH_CTRL_SCHEDULER | ORCH_CTRL_REPLICASET | ORCH_CTRL_DEPLOYMENT;
        if (orch_ctrl_start(&ctrl, &co, &err) != 0) {
                fprintf(stderr, "controllers: %s\n", err.msg);
                rc = 1;
                goto out;
        }

        /* Deployments totalling `pods` replicas, mixed requests and spreading. */
        t0 = sw_mono_ms();
        c0 = cpu_ms();
        for (int d = 0; d < ndeploy; d++) {
                char name[32];
                int n = pods / ndeploy + (d < pods % ndeploy ? 1 : 0);
                snprintf(name, sizeof(name), "d%d", d);
                if (create_deployment(kc, name, n, cpus[d % 4], mems[(d / 4) % 4], d % 3, &err)) {
                        fprintf(stderr, "deployment: %s\n", err.msg);
                        rc = 1;
                        goto out;
                }
        }
        if (!wait_bound(&s, pods, 600000))
                fprintf(stderr, "only %d of %d pods bound\n", atomic_load(&s.bound), pods);
        t1 = sw_mono_ms();
        c1 = cpu_ms();
        printf("scheduler_deployments: %d deployments\n", ndeploy);
        printf("scheduler_all_bound_time: %lld ms\n", (long long)(t1 - t0));
        report_binding(&s);
        /* The whole process's CPU while the pods were created and bound; busy in % of one core. */
        printf("scheduler_cpu_per_pod: %.0f us\n", (double)(c1 - c0) * 1000.0 / (pods ? pods : 1));
        printf("scheduler_cpu_busy: %.0f %%\n",
               (double)(c1 - c0) * 100.0 / (double)(t1 > t0 ? t1 - t0 : 1));

        /* One Deployment from 0 to `replicas`, until every replica is available. */
        if (replicas > 0) {
                rc = create_deployment(kc, "big", 0, "10m", "16Mi", 0, &err);
                patch = json_pack("{s:{s:i}}", "spec", "replicas", replicas);
                t0 = sw_mono_ms();
                if (rc == 0)
                        rc = orch_kube_request(NULL, NULL, kc, "PATCH",
                                               "/apis/apps/v1/namespaces/default/deployments/big",
                                               "application/merge-patch+json", patch, &err);
                json_decref(patch);
                if (rc) {
                        fprintf(stderr, "scale: %s\n", err.msg);
                        goto out;
                }
                if (!wait_available(kc, "big", replicas, 600000))
                        fprintf(stderr, "deployment big did not become available\n");
                t1 = sw_mono_ms();
                printf("deployment_scale_replicas: %d pods\n", replicas);
                printf("deployment_scale_to_available_time: %lld ms\n", (long long)(t1 - t0));
        }
        rc = 0;
out:
        orch_ctrl_stop(ctrl);
        atomic_store(&s.stop, true);
        pthread_mutex_lock(&s.mu);
        pthread_cond_broadcast(&s.cv);
        pthread_mutex_unlock(&s.mu);
        for (int i = 0; i < nthreads; i++)
                pthread_join(kubelets[i], NULL);
        if (watching)
                pthread_join(watcher, NULL);
        orch_kube_free(kc);
        orch_api_stop(api);
        sw_rm_rf(dir, &err);
        json_decref(s.pods);
        json_decref(s.to_ready);
        pthread_cond_destroy(&s.cv);
        pthread_mutex_destroy(&s.mu);
        free(db);
        free(kcfg);
        sw_libs_shutdown();
        return rc;
}
