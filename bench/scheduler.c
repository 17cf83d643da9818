/*
 * scheduler.c - benchmark of the orchestrator's scheduler through the real
 * API server (in this process, plain HTTP on loopback): N hollow nodes and
 * M pending pods with mixed cpu/memory requests are created first; then the
 * scheduler starts and the time until every pod is bound gives pods bound
 * per second. A second figure runs the ReplicaSet controller too: a
 * ReplicaSet of M replicas from nothing to every pod created and bound.
 *
 * Usage: bench_scheduler [nodes [pods]]   (default 100 1000)
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int count_bound(struct orch_kube *kc, const char *selector, int *total)
{
        struct sw_err err = SW_ERR_INIT;
        json_t *list = NULL, *p;
        char *path = sw_xasprintf("/api/v1/namespaces/default/pods?labelSelector=%s", selector);
        size_t i;
        int n = 0;

        *total = 0;
        if (orch_kube_get(&list, kc, path, &err) == 0) {
                json_array_foreach(json_object_get(list, "items"), i, p)
                {
                        (*total)++;
                        if (*sw_json_str(json_object_get(p, "spec"), "nodeName", ""))
                                n++;
                }
        }
        json_decref(list);
        free(path);
        return n;
}

static int wait_bound(struct orch_kube *kc, const char *selector, int want, int64_t timeout_ms)
{
        int64_t end = sw_mono_ms() + timeout_ms;
        int total = 0, bound = 0;

        while (sw_mono_ms() < end) {
                bound = count_bound(kc, selector, &total);
                if (bound >= want)
                        return bound;
                sw_sleep_ms(250);
        }
        return bound;
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

static int create_pods(struct orch_kube *kc, int n)
{
        struct sw_err err = SW_ERR_INIT;
        static const char *const cpus[] = {"100m", "250m", "500m", "1"};
        static const char *const mems[] = {"64Mi", "128Mi", "256Mi", "512Mi"};

        for (int i = 0; i < n; i++) {
                char name[32];
                json_t *pod;
                int rc;
                snprintf(name, sizeof(name), "p-%d", i);
                pod = json_pack("{s:s,s:s,s:{s:s,s:{s:s}},s:{s:[{s:s,s:s,s:{s:{s:s,s:s}}}]}}",
                                "apiVersion", "v1", "kind", "Pod", "metadata", "name", name,
                                "labels", "bench", "pods", "spec", "containers", "name", "c",
                                "image", "busybox:1.36", "resources", "requests", "cpu",
                                cpus[i % 4], "memory", mems[(i / 4) % 4]);
                rc = orch_kube_request(NULL, NULL, kc, "POST", "/api/v1/namespaces/default/pods",
                                       NULL, pod, &err);
                json_decref(pod);
                if (rc) {
                        fprintf(stderr, "create pod: %s\n", err.msg);
                        return rc;
                }
        }
        return 0;
}

int main(int argc, char **argv)
{
        struct orch_api_options o = ORCH_API_OPTIONS_INIT;
        struct orch_ctrl_options co = ORCH_CTRL_OPTIONS_INIT;
        struct sw_err err = SW_ERR_INIT;
        struct orch_api *api = NULL;
        struct orch_ctrl *ctrl = NULL;
        struct orch_kube *kc = NULL;
        int nodes = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 100;
        int pods = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 1000;
        const char *dir = t_tmpdir();
        char *db = sw_xasprintf("%s/bench.db", dir), *kcfg = sw_xasprintf("%s/kubeconfig", dir);
        char *text;
        int64_t t0, t1;
        int bound, rc = 1;
        json_t *rs;

        sw_libs_init();
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
        if (rc || orch_kube_from_kubeconfig(&kc, kcfg, NULL, &err) != 0 ||
            create_nodes(kc, nodes) != 0 || create_pods(kc, pods) != 0) {
                fprintf(stderr, "setup: %s\n", err.msg);
                rc = 1;
                goto out;
        }
        co.kubeconfig = kcfg;
        co.controllers = ORCH_CTRL_SCHEDULER;
        t0 = sw_mono_ms();
        if (orch_ctrl_start(&ctrl, &co, &err) != 0) {
                fprintf(stderr, "scheduler: %s\n", err.msg);
                rc = 1;
                goto out;
        }
        bound = wait_bound(kc, "bench%3Dpods", pods, 300000);
        t1 = sw_mono_ms();
        printf("scheduler_nodes: %d nodes\n", nodes);
        printf("scheduler_pods_bound: %d pods\n", bound);
        printf("scheduler_bind_all_time: %lld ms\n", (long long)(t1 - t0));
        printf("scheduler_throughput: %.0f pods/s\n",
               (double)bound * 1000.0 / (double)(t1 - t0 > 0 ? t1 - t0 : 1));
        orch_ctrl_stop(ctrl);
        ctrl = NULL;

        /* A ReplicaSet from 0 to `pods` replicas, created and bound. */
        co.controllers = ORCH_CTRL_SCHEDULER | ORCH_CTRL_REPLICASET;
        if (orch_ctrl_start(&ctrl, &co, &err) != 0) {
                fprintf(stderr, "controllers: %s\n", err.msg);
                rc = 1;
                goto out;
        }
        rs = json_pack("{s:s,s:s,s:{s:s},s:{s:i,s:{s:{s:s}},s:{s:{s:{s:s}},s:{s:[{s:s,s:s,s:{s:"
                       "{s:s}}}]}}}}",
                       "apiVersion", "apps/v1", "kind", "ReplicaSet", "metadata", "name", "big",
                       "spec", "replicas", pods, "selector", "matchLabels", "bench", "rs",
                       "template", "metadata", "labels", "bench", "rs", "spec", "containers",
                       "name", "c", "image", "busybox:1.36", "resources", "requests", "cpu", "10m");
        t0 = sw_mono_ms();
        rc = orch_kube_request(NULL, NULL, kc, "POST",
                               "/apis/apps/v1/namespaces/default/replicasets", NULL, rs, &err);
        json_decref(rs);
        if (rc) {
                fprintf(stderr, "replicaset: %s\n", err.msg);
                goto out;
        }
        bound = wait_bound(kc, "bench%3Drs", pods, 300000);
        t1 = sw_mono_ms();
        printf("replicaset_pods_bound: %d pods\n", bound);
        printf("replicaset_create_and_bind_time: %lld ms\n", (long long)(t1 - t0));
        printf("replicaset_throughput: %.0f pods/s\n",
               (double)bound * 1000.0 / (double)(t1 - t0 > 0 ? t1 - t0 : 1));
        rc = 0;
out:
        orch_ctrl_stop(ctrl);
        orch_kube_free(kc);
        orch_api_stop(api);
        sw_rm_rf(dir, &err);
        free(db);
        free(kcfg);
        sw_libs_shutdown();
        return rc;
}
