/*
 * ctrl_deploy.c - the controllers and the scheduler (in-process, through
 * HTTP) against the real `slipway kube-apiserver`, driven and checked with
 * the real kubectl. Three hollow nodes (tests/harness/hollow.h) are Node
 * objects whose heartbeats a thread renews, and whose bound pods it marks
 * Running and Ready with a 127.x address, all through the API.
 *
 * Covered: a Deployment and a Service roll out (ReplicaSet, pods spread
 * over the nodes, Endpoints, `kubectl rollout status`); an image change
 * rolls with maxSurge=1/maxUnavailable=0 and never fewer ready pods than
 * desired; history and undo; scale; a pod that fits nowhere gets
 * kubectl's FailedScheduling message; taints and nodeSelector; a node
 * that stops heartbeating is tainted and its pods replaced elsewhere;
 * deleting the Deployment removes its ReplicaSets and pods.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/json.h"
#include "common/libs.h"
#include "common/mem.h"
#include "orchestrator/client/kube.h"
#include "orchestrator/ctrl.h"
#include "tests/harness/hollow.h"
#include "tests/harness/orch.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

static struct t_orch srv;
static bool up;
static struct orch_ctrl *ctrl;
static struct t_hollow hollow;
static atomic_bool watching; /* count ready web pods */
static atomic_int min_ready; /* lowest ready count of web pods while watching */
static atomic_int max_total; /* highest count of web pods while watching */

#define KUBECTL(outp, input, ...)                                                                  \
        t_kubectl(&srv, (outp), (input), (const char *const[]){__VA_ARGS__, NULL})

static const char *const APP = "apiVersion: apps/v1\n"
                               "kind: Deployment\n"
                               "metadata: {name: web, namespace: default}\n"
                               "spec:\n"
                               "  replicas: 3\n"
                               "  selector: {matchLabels: {app: web}}\n"
                               "  strategy:\n"
                               "    type: RollingUpdate\n"
                               "    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n"
                               "  template:\n"
                               "    metadata: {labels: {app: web}}\n"
                               "    spec:\n"
                               "      tolerations: [{key: node.kubernetes.io/unreachable, "
                               "operator: Exists, effect: NoExecute, tolerationSeconds: 2}]\n"
                               "      containers:\n"
                               "      - name: c\n"
                               "        image: busybox:1.36\n"
                               "        ports: [{name: http, containerPort: 8080}]\n"
                               "        resources: {requests: {cpu: 100m, memory: 64Mi}}\n"
                               "---\n"
                               "apiVersion: v1\n"
                               "kind: Service\n"
                               "metadata: {name: web, namespace: default}\n"
                               "spec:\n"
                               "  selector: {app: web}\n"
                               "  ports: [{name: http, port: 80, targetPort: http}]\n";

/* Count the web pods the hollow kubelet sees while an update rolls. */
static void observe(void *arg, const json_t *pods)
{
        const json_t *p;
        size_t i;
        int ready = 0, total = 0;

        (void)arg;
        if (!atomic_load(&watching))
                return;
        json_array_foreach(pods, i, p)
        {
                const json_t *md = json_object_get(p, "metadata");
                if (strcmp(sw_json_str(json_object_get(md, "labels"), "app", ""), "web") != 0 ||
                    json_object_get(md, "deletionTimestamp"))
                        continue;
                total++;
                if (strcmp(sw_json_str(json_object_get(p, "status"), "phase", ""), "Running") == 0)
                        ready++;
        }
        if (ready < atomic_load(&min_ready))
                atomic_store(&min_ready, ready);
        if (total > atomic_load(&max_total))
                atomic_store(&max_total, total);
}

#define EVENTUALLY(want, ms, ...)                                                                  \
        t_kubectl_until(&srv, (want), (ms), (const char *const[]){__VA_ARGS__, NULL})

static void test_start(void)
{
        struct orch_ctrl_options co = ORCH_CTRL_OPTIONS_INIT;

        co.node_grace_ms = 6000;
        co.sched_backoff_max_ms = 1000;
        hollow.observe = observe;
        up = t_cluster_start(&srv, "ctrl", &hollow, "n", 3, "4", "8Gi", &co, &ctrl);
        CHECK(up);
}

static void test_rollout(void)
{
        char *out = NULL;

        CHECK_INT(KUBECTL(&out, APP, "apply", "-f", "-"), 0);
        CHECK(out && strstr(out, "deployment.apps/web created"));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "rollout", "status", "deploy/web", "--timeout=60s"), 0);
        CHECK(out && strstr(out, "successfully rolled out"));
        free(out);
        /* one ReplicaSet, named after the template hash, revision 1 */
        CHECK_INT(KUBECTL(&out, NULL, "get", "rs", "-l", "app=web", "-o",
                          "jsonpath={range .items[*]}{.metadata.annotations."
                          "deployment\\.kubernetes\\.io/revision} {.spec.replicas} "
                          "{.status.readyReplicas}{\"\\n\"}{end}"),
                  0);
        CHECK_STR(out, "1 3 3\n");
        free(out);
        /* spread: one pod per node */
        CHECK_INT(KUBECTL(&out, NULL, "get", "pods", "-l", "app=web", "-o",
                          "jsonpath={range .items[*]}{.spec.nodeName}{\"\\n\"}{end}"),
                  0);
        CHECK(out && strstr(out, "n1\n") && strstr(out, "n2\n") && strstr(out, "n3\n"));
        free(out);
        /* the Deployment's status */
        CHECK_INT(KUBECTL(&out, NULL, "get", "deploy", "web", "-o",
                          "jsonpath={.status.replicas} {.status.updatedReplicas} "
                          "{.status.readyReplicas} {.status.availableReplicas} "
                          "{.status.conditions[?(@.type==\"Available\")].status} "
                          "{.status.conditions[?(@.type==\"Progressing\")].reason}"),
                  0);
        CHECK_STR(out, "3 3 3 3 True NewReplicaSetAvailable");
        free(out);
        /* Endpoints of the Service: the three pod IPs on the named port's number */
        CHECK(EVENTUALLY("8080", 10000, "get", "endpoints", "web", "-o",
                         "jsonpath={range .subsets[*].addresses[*]}{.ip}{\"\\n\"}{end}"
                         "{.subsets[0].ports[0].port}"));
        CHECK_INT(KUBECTL(&out, NULL, "get", "endpoints", "web", "-o",
                          "jsonpath={range .subsets[*].addresses[*]}{.ip}{\" \"}{end}"),
                  0);
        {
                int n = 0;
                for (const char *p = out; p && (p = strstr(p, "127.0.")) != NULL; p++)
                        n++;
                CHECK_INT(n, 3);
        }
        free(out);
        /* Events from the controllers and the scheduler */
        CHECK_INT(KUBECTL(&out, NULL, "get", "events"), 0);
        CHECK(out && strstr(out, "ScalingReplicaSet") && strstr(out, "SuccessfulCreate") &&
              strstr(out, "Scheduled"));
        free(out);
}

static void test_rolling_update(void)
{
        char *out = NULL;

        atomic_store(&min_ready, 1000);
        atomic_store(&max_total, 0);
        atomic_store(&watching, true);
        CHECK_INT(KUBECTL(&out, NULL, "set", "image", "deploy/web", "c=busybox:1.37"), 0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "rollout", "status", "deploy/web", "--timeout=60s"), 0);
        CHECK(out && strstr(out, "successfully rolled out"));
        free(out);
        sw_sleep_ms(300);
        atomic_store(&watching, false);
        /* maxUnavailable=0: never fewer than 3 ready; maxSurge=1: never more than 4 pods */
        CHECK(atomic_load(&min_ready) >= 3);
        CHECK(atomic_load(&max_total) <= 4);
        if (atomic_load(&min_ready) < 3 || atomic_load(&max_total) > 4)
                fprintf(stderr, "min ready %d, max pods %d\n", atomic_load(&min_ready),
                        atomic_load(&max_total));
        CHECK_INT(KUBECTL(&out, NULL, "get", "rs", "-l", "app=web", "--sort-by",
                          ".metadata.annotations.deployment\\.kubernetes\\.io/revision", "-o",
                          "jsonpath={range .items[*]}{.metadata.annotations."
                          "deployment\\.kubernetes\\.io/revision} {.spec.replicas} "
                          "{.spec.template.spec.containers[0].image}{\"\\n\"}{end}"),
                  0);
        CHECK_STR(out, "1 0 busybox:1.36\n2 3 busybox:1.37\n");
        free(out);
        CHECK(EVENTUALLY("3", 10000, "get", "pods", "-l", "app=web", "-o",
                         "jsonpath={.items[*].spec.containers[0].image}"));
        CHECK_INT(KUBECTL(&out, NULL, "get", "pods", "-l", "app=web", "-o",
                          "jsonpath={.items[*].spec.containers[0].image}"),
                  0);
        CHECK_STR(out, "busybox:1.37 busybox:1.37 busybox:1.37");
        free(out);
}

static void test_history_undo_scale(void)
{
        char *out = NULL;

        CHECK_INT(KUBECTL(&out, NULL, "rollout", "history", "deploy/web"), 0);
        CHECK(out && strstr(out, "REVISION") && strstr(out, "1 ") && strstr(out, "2 "));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "rollout", "undo", "deploy/web"), 0);
        CHECK(out && strstr(out, "rolled back"));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "rollout", "status", "deploy/web", "--timeout=60s"), 0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "get", "deploy", "web", "-o",
                          "jsonpath={.spec.template.spec.containers[0].image} "
                          "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"),
                  0);
        CHECK_STR(out, "busybox:1.36 3");
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "scale", "deploy/web", "--replicas=5"), 0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "rollout", "status", "deploy/web", "--timeout=60s"), 0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "get", "deploy", "web", "-o",
                          "jsonpath={.status.availableReplicas}"),
                  0);
        CHECK_STR(out, "5");
        free(out);
}

static const char *const BIG = "apiVersion: v1\n"
                               "kind: Pod\n"
                               "metadata: {name: big, namespace: default}\n"
                               "spec:\n"
                               "  containers:\n"
                               "  - name: c\n"
                               "    image: busybox:1.36\n"
                               "    resources: {requests: {cpu: '100'}}\n";

static const char *const PINNED = "apiVersion: v1\n"
                                  "kind: Pod\n"
                                  "metadata: {name: pinned, namespace: default}\n"
                                  "spec:\n"
                                  "  nodeSelector: {kubernetes.io/hostname: n3}\n"
                                  "  containers: [{name: c, image: busybox:1.36}]\n";

static const char *const TOLERANT = "apiVersion: v1\n"
                                    "kind: Pod\n"
                                    "metadata: {name: tolerant, namespace: default}\n"
                                    "spec:\n"
                                    "  nodeSelector: {kubernetes.io/hostname: n3}\n"
                                    "  tolerations: [{key: k, operator: Equal, value: v, "
                                    "effect: NoSchedule}]\n"
                                    "  containers: [{name: c, image: busybox:1.36}]\n";

static void test_unschedulable(void)
{
        char *out = NULL;

        CHECK_INT(KUBECTL(&out, NULL, "taint", "nodes", "n3", "k=v:NoSchedule"), 0);
        free(out);
        CHECK_INT(KUBECTL(&out, BIG, "apply", "-f", "-"), 0);
        free(out);
        /* kube-scheduler sorts the "count reason" strings */
        CHECK(EVENTUALLY("0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 "
                         "Insufficient cpu.",
                         10000, "get", "pod", "big", "-o",
                         "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].message}"));
        CHECK_INT(KUBECTL(&out, NULL, "get", "pod", "big", "-o",
                          "jsonpath={.spec.nodeName}|{.status.conditions[0].reason}"),
                  0);
        CHECK_STR(out, "|Unschedulable");
        free(out);
        CHECK(EVENTUALLY("FailedScheduling", 10000, "get", "events"));
        CHECK_INT(KUBECTL(&out, PINNED, "apply", "-f", "-"), 0);
        free(out);
        CHECK_INT(KUBECTL(&out, TOLERANT, "apply", "-f", "-"), 0);
        free(out);
        CHECK(EVENTUALLY("n3", 10000, "get", "pod", "tolerant", "-o", "jsonpath={.spec.nodeName}"));
        CHECK(EVENTUALLY("0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 "
                         "node(s) didn't match Pod's node affinity/selector.",
                         10000, "get", "pod", "pinned", "-o",
                         "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].message}"));
        /* untainting the node lets the pinned pod in */
        CHECK_INT(KUBECTL(&out, NULL, "taint", "nodes", "n3", "k=v:NoSchedule-"), 0);
        free(out);
        CHECK(EVENTUALLY("n3", 15000, "get", "pod", "pinned", "-o", "jsonpath={.spec.nodeName}"));
        CHECK_INT(KUBECTL(&out, NULL, "delete", "pod", "big", "pinned", "tolerant"), 0);
        free(out);
}

static void test_node_dies(void)
{
        char *out = NULL;

        t_hollow_kill(&hollow, 0);
        CHECK(EVENTUALLY("node.kubernetes.io/unreachable", 20000, "get", "node", "n1", "-o",
                         "jsonpath={.spec.taints[*].key}"));
        CHECK_INT(KUBECTL(&out, NULL, "get", "node", "n1", "-o",
                          "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"),
                  0);
        CHECK_STR(out, "Unknown");
        free(out);
        /* its pods are evicted and replaced on n2 and n3 */
        {
                int64_t end = sw_mono_ms() + 20000;
                bool ok = false;
                while (!ok && sw_mono_ms() < end) {
                        KUBECTL(&out, NULL, "get", "pods", "-l", "app=web", "-o",
                                "jsonpath={range .items[*]}{.spec.nodeName}{\"\\n\"}{end}");
                        ok = out && !strstr(out, "n1\n");
                        free(out);
                        out = NULL;
                        if (!ok)
                                sw_sleep_ms(200);
                }
                CHECK(ok);
        }
        CHECK_INT(KUBECTL(&out, NULL, "rollout", "status", "deploy/web", "--timeout=60s"), 0);
        free(out);
        CHECK(EVENTUALLY("5 5", 20000, "get", "deploy", "web", "-o",
                         "jsonpath={.status.availableReplicas} {.status.readyReplicas}"));
        CHECK(EVENTUALLY("TaintManagerEviction", 10000, "get", "events"));
}

static void test_delete_cascades(void)
{
        char *out = NULL;

        CHECK_INT(KUBECTL(&out, NULL, "delete", "deploy", "web"), 0);
        free(out);
        CHECK(EVENTUALLY("No resources found", 20000, "get", "rs,pods", "-l", "app=web"));
        CHECK_INT(KUBECTL(&out, NULL, "delete", "service", "web"), 0);
        free(out);
        CHECK(EVENTUALLY("NotFound", 10000, "get", "endpoints", "web"));
}

/*
 * Events are spam-filtered as client-go's recorder does: a burst of 25 per
 * source, object and reason, so creating 40 pods leaves 25 SuccessfulCreate
 * Events on the ReplicaSet, not 40.
 */
static void test_event_burst(void)
{
        char *out = NULL;
        int n = 0;

        CHECK_INT(KUBECTL(&out, NULL, "create", "deployment", "burst", "--image=busybox",
                          "--replicas=40"),
                  0);
        free(out);
        CHECK(EVENTUALLY("40", 30000, "get", "rs", "-l", "app=burst", "-o",
                         "jsonpath={.items[0].status.replicas}"));
        sw_sleep_ms(500); /* the recorder sends from its own thread */
        CHECK_INT(KUBECTL(&out, NULL, "get", "events", "-o",
                          "jsonpath={range .items[?(@.reason==\"SuccessfulCreate\")]}"
                          "{.involvedObject.name}{\"\\n\"}{end}"),
                  0);
        for (const char *p = out; p && (p = strstr(p, "burst-")) != NULL; p++)
                n++;
        CHECK_INT(n, 25);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "delete", "deploy", "burst"), 0);
        free(out);
}

static void test_stop(void)
{
        t_cluster_stop(&srv, &hollow, &ctrl);
}

int main(void)
{
        sw_libs_init();
        T_RUN(test_start);
        if (up) {
                T_RUN(test_rollout);
                T_RUN(test_rolling_update);
                T_RUN(test_history_undo_scale);
                T_RUN(test_unschedulable);
                T_RUN(test_node_dies);
                T_RUN(test_delete_cascades);
                T_RUN(test_event_burst);
        }
        T_RUN(test_stop);
        sw_libs_shutdown();
        return t_done();
}
