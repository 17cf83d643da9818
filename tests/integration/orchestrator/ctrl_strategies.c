/*
 * ctrl_strategies.c - `slipway controller-manager` as a child process
 * against the real `slipway kube-apiserver`, with two hollow nodes, and
 * the real kubectl: the Recreate strategy never runs old and new pods
 * together; minReadySeconds holds availability back; a rollout that cannot
 * progress ends with ProgressDeadlineExceeded and `kubectl rollout status`
 * fails; `kubectl rollout restart` makes a new ReplicaSet and
 * revisionHistoryLimit prunes old ones; Endpoints list not-ready pods as
 * notReadyAddresses; required and preferred node affinity; host ports; the command
 * stops cleanly on SIGTERM.
 */
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/json.h"
#include "common/mem.h"
#include "tests/harness/hollow.h"
#include "tests/harness/orch.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

static struct t_orch srv;
static struct t_hollow hollow;
static bool up;
static pid_t cm = -1;
static atomic_bool watching;
static atomic_bool mixed; /* Recreate: old and new images seen together */

#define KUBECTL(outp, input, ...)                                                                  \
        t_kubectl(&srv, (outp), (input), (const char *const[]){__VA_ARGS__, NULL})

#define EVENTUALLY(want, ms, ...)                                                                  \
        t_kubectl_until(&srv, (want), (ms), (const char *const[]){__VA_ARGS__, NULL})

static void observe(void *arg, const json_t *pods)
{
        const json_t *p;
        size_t i;
        bool a = false, b = false;

        (void)arg;
        if (!atomic_load(&watching))
                return;
        json_array_foreach(pods, i, p)
        {
                const json_t *md = json_object_get(p, "metadata");
                const char *img;
                if (strcmp(sw_json_str(json_object_get(md, "labels"), "app", ""), "rec") != 0 ||
                    json_object_get(md, "deletionTimestamp"))
                        continue;
                img = sw_json_str(
                        json_array_get(json_object_get(json_object_get(p, "spec"), "containers"),
                                       0),
                        "image", "");
                if (strcmp(img, "busybox:1.36") == 0)
                        a = true;
                else
                        b = true;
        }
        if (a && b)
                atomic_store(&mixed, true);
}

static void test_help(void)
{
        char *out = NULL;
        char *argv[] = {(char *)t_slipway(), "controller-manager", "--help", NULL};
        char *bad[] = {(char *)t_slipway(), "controller-manager", NULL};

        CHECK_INT(t_run_capture(&out, argv, NULL, 10000), 0);
        CHECK(out && strstr(out, "--kubeconfig FILE"));
        free(out);
        CHECK(t_run_capture(&out, bad, (const char *const[]){"SLIPWAY_LOG_LEVEL=warn", NULL},
                            10000) != 0);
        CHECK(out && strstr(out, "--kubeconfig FILE is required"));
        free(out);
}

static void test_start(void)
{
        char *log, *data, *env[5];
        char *argv[] = {(char *)t_slipway(),
                        "controller-manager",
                        "--kubeconfig",
                        NULL,
                        "--node-grace-ms",
                        "20000",
                        NULL};

        up = t_orch_start(&srv, "strategies");
        CHECK(up);
        if (!up)
                return;
        hollow.observe = observe;
        up = t_hollow_start(&hollow, srv.kubeconfig, "h", 2, "8", "16Gi");
        CHECK(up);
        log = sw_xasprintf("%s/controller-manager.log", srv.dir);
        data = sw_xasprintf("%s/cm", srv.dir);
        env[0] = "PATH=/usr/local/bin:/usr/bin:/bin";
        env[1] = sw_xasprintf("HOME=%s", srv.dir);
        env[2] = sw_xasprintf("SLIPWAY_DATA=%s", data);
        env[3] = "SLIPWAY_LOG_LEVEL=warn";
        env[4] = NULL;
        argv[3] = srv.kubeconfig;
        cm = t_spawn_env(argv, env, log);
        CHECK(cm > 0);
        up = up && cm > 0;
        free(env[1]);
        free(env[2]);
        free(data);
        free(log);
}

static const char *const REC = "apiVersion: apps/v1\n"
                               "kind: Deployment\n"
                               "metadata: {name: rec}\n"
                               "spec:\n"
                               "  replicas: 2\n"
                               "  strategy: {type: Recreate}\n"
                               "  selector: {matchLabels: {app: rec}}\n"
                               "  template:\n"
                               "    metadata: {labels: {app: rec}}\n"
                               "    spec:\n"
                               "      containers: [{name: c, image: busybox:1.36}]\n";

static void test_recreate(void)
{
        char *out = NULL;

        CHECK_INT(KUBECTL(&out, REC, "apply", "-f", "-"), 0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "rollout", "status", "deploy/rec", "--timeout=60s"), 0);
        free(out);
        atomic_store(&watching, true);
        CHECK_INT(KUBECTL(&out, NULL, "set", "image", "deploy/rec", "c=busybox:1.37"), 0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "rollout", "status", "deploy/rec", "--timeout=60s"), 0);
        CHECK(out && strstr(out, "successfully rolled out"));
        free(out);
        atomic_store(&watching, false);
        CHECK(!atomic_load(&mixed));
        CHECK(EVENTUALLY("busybox:1.37 busybox:1.37", 10000, "get", "pods", "-l", "app=rec", "-o",
                         "jsonpath={.items[*].spec.containers[0].image}"));
}

static const char *const SLOW = "apiVersion: apps/v1\n"
                                "kind: Deployment\n"
                                "metadata: {name: slow}\n"
                                "spec:\n"
                                "  replicas: 2\n"
                                "  minReadySeconds: 3\n"
                                "  selector: {matchLabels: {app: slow}}\n"
                                "  template:\n"
                                "    metadata: {labels: {app: slow}}\n"
                                "    spec:\n"
                                "      containers: [{name: c, image: busybox:1.36}]\n";

static void test_min_ready_seconds(void)
{
        char *out = NULL;
        int64_t t0 = sw_mono_ms();

        CHECK_INT(KUBECTL(&out, SLOW, "apply", "-f", "-"), 0);
        free(out);
        /* ready first, available only after minReadySeconds */
        CHECK(EVENTUALLY("2 0", 10000, "get", "rs", "-l", "app=slow", "-o",
                         "jsonpath={.items[0].status.readyReplicas} "
                         "{.items[0].status.availableReplicas}"));
        CHECK_INT(KUBECTL(&out, NULL, "rollout", "status", "deploy/slow", "--timeout=60s"), 0);
        free(out);
        /*
         * Ready times have whole seconds (as in Kubernetes), so "available"
         * may come up to a second before 3 s after the pods were ready.
         */
        CHECK(sw_mono_ms() - t0 >= 2000);
        CHECK_INT(KUBECTL(&out, NULL, "get", "deploy", "slow", "-o",
                          "jsonpath={.status.availableReplicas}"),
                  0);
        CHECK_STR(out, "2");
        free(out);
}

static const char *const STUCK = "apiVersion: apps/v1\n"
                                 "kind: Deployment\n"
                                 "metadata: {name: stuck}\n"
                                 "spec:\n"
                                 "  replicas: 2\n"
                                 "  progressDeadlineSeconds: 2\n"
                                 "  selector: {matchLabels: {app: stuck}}\n"
                                 "  template:\n"
                                 "    metadata:\n"
                                 "      labels: {app: stuck}\n"
                                 "      annotations: {hollow.slipway.dev/never-ready: 'yes'}\n"
                                 "    spec:\n"
                                 "      containers:\n"
                                 "      - name: c\n"
                                 "        image: busybox:1.36\n"
                                 "        ports: [{name: web, containerPort: 9000}]\n"
                                 "---\n"
                                 "apiVersion: v1\n"
                                 "kind: Service\n"
                                 "metadata: {name: stuck}\n"
                                 "spec:\n"
                                 "  selector: {app: stuck}\n"
                                 "  ports: [{port: 80, targetPort: web}]\n";

static void test_progress_deadline(void)
{
        char *out = NULL;

        CHECK_INT(KUBECTL(&out, STUCK, "apply", "-f", "-"), 0);
        free(out);
        CHECK(KUBECTL(&out, NULL, "rollout", "status", "deploy/stuck", "--timeout=30s") != 0);
        CHECK(out && strstr(out, "exceeded its progress deadline"));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "get", "deploy", "stuck", "-o",
                          "jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason} "
                          "{.status.conditions[?(@.type==\"Available\")].status}"),
                  0);
        CHECK_STR(out, "ProgressDeadlineExceeded False");
        free(out);
        /* the pods run but are not ready: notReadyAddresses, on the named port */
        CHECK(EVENTUALLY("9000", 10000, "get", "endpoints", "stuck", "-o",
                         "jsonpath={.subsets[0].ports[0].port}"));
        CHECK_INT(KUBECTL(&out, NULL, "get", "endpoints", "stuck", "-o",
                          "jsonpath={.subsets[0].addresses}|{.subsets[0].notReadyAddresses[*].ip}"),
                  0);
        CHECK(out && strncmp(out, "|127.0.", 7) == 0 && strchr(out, ' '));
        free(out);
}

static const char *const RH = "apiVersion: apps/v1\n"
                              "kind: Deployment\n"
                              "metadata: {name: rh}\n"
                              "spec:\n"
                              "  replicas: 1\n"
                              "  revisionHistoryLimit: 1\n"
                              "  selector: {matchLabels: {app: rh}}\n"
                              "  template:\n"
                              "    metadata: {labels: {app: rh}}\n"
                              "    spec:\n"
                              "      containers: [{name: c, image: busybox:1.36}]\n";

static void test_restart_and_history_limit(void)
{
        char *out = NULL;

        CHECK_INT(KUBECTL(&out, RH, "apply", "-f", "-"), 0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "rollout", "status", "deploy/rh", "--timeout=60s"), 0);
        free(out);
        for (int i = 0; i < 2; i++) {
                /*
                 * kubectl stamps restartedAt to the second and may meet a conflict
                 * with the controller's own writes under load: try again then.
                 */
                int rc = 1;
                for (int t = 0; t < 3 && rc != 0; t++) {
                        if (t) {
                                free(out);
                                sw_sleep_ms(1100);
                        }
                        rc = KUBECTL(&out, NULL, "rollout", "restart", "deploy/rh");
                }
                CHECK_INT(rc, 0);
                CHECK(out && strstr(out, "restarted"));
                free(out);
                CHECK_INT(KUBECTL(&out, NULL, "rollout", "status", "deploy/rh", "--timeout=60s"),
                          0);
                free(out);
        }
        /* revisions 2 and 3 remain: the current one and one in history */
        CHECK(EVENTUALLY("2 3 \n", 10000, "get", "rs", "-l", "app=rh", "--sort-by",
                         ".metadata.annotations.deployment\\.kubernetes\\.io/revision", "-o",
                         "jsonpath={range .items[*]}{.metadata.annotations."
                         "deployment\\.kubernetes\\.io/revision} {end}{\"\\n\"}"));
}

static const char *const AFFINE =
        "apiVersion: v1\n"
        "kind: Pod\n"
        "metadata: {name: must}\n"
        "spec:\n"
        "  affinity:\n"
        "    nodeAffinity:\n"
        "      requiredDuringSchedulingIgnoredDuringExecution:\n"
        "        nodeSelectorTerms:\n"
        "        - matchExpressions: [{key: kubernetes.io/hostname, operator: NotIn, values: "
        "[h1]}]\n"
        "  containers: [{name: c, image: busybox:1.36}]\n"
        "---\n"
        "apiVersion: v1\n"
        "kind: Pod\n"
        "metadata: {name: rather}\n"
        "spec:\n"
        "  affinity:\n"
        "    nodeAffinity:\n"
        "      preferredDuringSchedulingIgnoredDuringExecution:\n"
        "      - weight: 100\n"
        "        preference:\n"
        "          matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [h1]}]\n"
        "  containers: [{name: c, image: busybox:1.36}]\n"
        "---\n"
        "apiVersion: v1\n"
        "kind: Pod\n"
        "metadata: {name: nowhere}\n"
        "spec:\n"
        "  affinity:\n"
        "    nodeAffinity:\n"
        "      requiredDuringSchedulingIgnoredDuringExecution:\n"
        "        nodeSelectorTerms:\n"
        "        - matchExpressions: [{key: disk, operator: Exists}]\n"
        "  containers:\n"
        "  - name: c\n"
        "    image: busybox:1.36\n"
        "    ports: [{containerPort: 80, hostPort: 8080}]\n";

static void test_node_affinity(void)
{
        char *out = NULL;

        CHECK_INT(KUBECTL(&out, AFFINE, "apply", "-f", "-"), 0);
        free(out);
        CHECK(EVENTUALLY("h2", 10000, "get", "pod", "must", "-o", "jsonpath={.spec.nodeName}"));
        CHECK(EVENTUALLY("h1", 10000, "get", "pod", "rather", "-o", "jsonpath={.spec.nodeName}"));
        CHECK(EVENTUALLY("0/2 nodes are available: 2 node(s) didn't match Pod's node "
                         "affinity/selector.",
                         10000, "get", "pod", "nowhere", "-o",
                         "jsonpath={.status.conditions[0].message}"));
        /* once a node has the label, the pod goes there */
        CHECK_INT(KUBECTL(&out, NULL, "label", "node", "h2", "disk=ssd"), 0);
        free(out);
        CHECK(EVENTUALLY("h2", 15000, "get", "pod", "nowhere", "-o", "jsonpath={.spec.nodeName}"));
        CHECK_INT(KUBECTL(&out, NULL, "delete", "pod", "must", "rather", "nowhere"), 0);
        free(out);
}

static const char *const PORTS = "apiVersion: v1\n"
                                 "kind: Pod\n"
                                 "metadata: {name: port-a}\n"
                                 "spec:\n"
                                 "  nodeSelector: {kubernetes.io/hostname: h1}\n"
                                 "  containers:\n"
                                 "  - {name: c, image: busybox:1.36, ports: [{containerPort: 80, "
                                 "hostPort: 7070}]}\n"
                                 "---\n"
                                 "apiVersion: v1\n"
                                 "kind: Pod\n"
                                 "metadata: {name: port-b}\n"
                                 "spec:\n"
                                 "  nodeSelector: {kubernetes.io/hostname: h1}\n"
                                 "  containers:\n"
                                 "  - {name: c, image: busybox:1.36, ports: [{containerPort: 81, "
                                 "hostPort: 7070}]}\n";

static void test_host_ports(void)
{
        char *out = NULL;

        CHECK_INT(KUBECTL(&out, PORTS, "apply", "-f", "-"), 0);
        free(out);
        CHECK(EVENTUALLY("0/2 nodes are available: 1 node(s) didn't have free ports for the "
                         "requested pod ports, 1 node(s) didn't match Pod's node "
                         "affinity/selector.",
                         10000, "get", "pods", "port-a", "port-b", "-o",
                         "jsonpath={.items[*].status.conditions[0].message}"));
        CHECK_INT(KUBECTL(&out, NULL, "get", "pods", "port-a", "port-b", "-o",
                          "jsonpath={.items[*].spec.nodeName}"),
                  0);
        CHECK_STR(out, "h1");
        free(out);
        /* the port is free again once the first pod is gone */
        CHECK_INT(KUBECTL(&out, NULL, "delete", "pod", "port-a"), 0);
        free(out);
        CHECK(EVENTUALLY("h1", 15000, "get", "pod", "port-b", "-o", "jsonpath={.spec.nodeName}"));
        CHECK_INT(KUBECTL(&out, NULL, "delete", "pod", "port-b"), 0);
        free(out);
}

static void test_stop(void)
{
        if (cm > 0) {
                kill(cm, SIGTERM);
                CHECK_INT(t_wait(cm, 15000), 0);
                t_kill(cm);
        }
        t_hollow_stop(&hollow);
        t_orch_stop(&srv);
}

int main(void)
{
        T_RUN(test_help);
        T_RUN(test_start);
        if (up) {
                T_RUN(test_recreate);
                T_RUN(test_min_ready_seconds);
                T_RUN(test_progress_deadline);
                T_RUN(test_restart_and_history_limit);
                T_RUN(test_node_affinity);
                T_RUN(test_host_ports);
        }
        T_RUN(test_stop);
        return t_done();
}
