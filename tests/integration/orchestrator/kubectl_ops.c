/*
 * kubectl_ops.c - the real kubectl against `slipway kube-apiserver`:
 * imperative commands (create namespace/configmap/secret, label, scale,
 * patch of the status subresource, delete), `get -w` streaming events as
 * objects change, and namespace deletion removing its contents.
 */
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/mem.h"
#include "tests/harness/orch.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

static struct t_orch srv;
static bool up;

#define KUBECTL(outp, input, ...)                                                                  \
        t_kubectl(&srv, (outp), (input), (const char *const[]){__VA_ARGS__, NULL})

static const char *const POD = "apiVersion: v1\n"
                               "kind: Pod\n"
                               "metadata:\n"
                               "  name: p1\n"
                               "  namespace: ops\n"
                               "  labels: {app: p}\n"
                               "spec:\n"
                               "  containers:\n"
                               "  - name: c\n"
                               "    image: busybox:1.36\n";

static const char *const DEPLOY = "apiVersion: apps/v1\n"
                                  "kind: Deployment\n"
                                  "metadata: {name: d1, namespace: ops}\n"
                                  "spec:\n"
                                  "  selector: {matchLabels: {app: d1}}\n"
                                  "  template:\n"
                                  "    metadata: {labels: {app: d1}}\n"
                                  "    spec:\n"
                                  "      containers: [{name: c, image: busybox:1.36}]\n";

static void test_create_imperative(void)
{
        char *out = NULL;

        CHECK_INT(KUBECTL(&out, NULL, "create", "namespace", "ops"), 0);
        CHECK(strstr(out, "namespace/ops created"));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "create", "configmap", "cfg",
                          "--from-literal=color=blue", "--from-literal=size=xl"),
                  0);
        CHECK(strstr(out, "configmap/cfg created"));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "create", "secret", "generic", "pw",
                          "--from-literal=password=hunter2"),
                  0);
        CHECK(strstr(out, "secret/pw created"));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "get", "secret", "pw", "-o",
                          "jsonpath={.type} {.data.password}"),
                  0);
        CHECK_STR(out, "Opaque aHVudGVyMg==");
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "get", "cm", "cfg"), 0);
        CHECK(strstr(out, "cfg    2      "));
        free(out);
        /* Creating it again is a 409 AlreadyExists that kubectl reports. */
        CHECK(KUBECTL(&out, NULL, "-n", "ops", "create", "configmap", "cfg") != 0);
        CHECK(strstr(out, "configmaps \"cfg\" already exists"));
        free(out);
        CHECK(KUBECTL(&out, NULL, "-n", "nowhere", "create", "configmap", "x") != 0);
        CHECK(strstr(out, "namespaces \"nowhere\" not found"));
        free(out);
}

/*
 * kubectl's typed creates of a Deployment and a Job post protobuf bodies
 * (application/vnd.kubernetes.protobuf); the server decodes them with the
 * pod template, keeps an explicit zero, and defaults what Go left empty.
 */
static void test_create_typed_workloads(void)
{
        char *out = NULL;

        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "create", "deployment", "web",
                          "--image=nginx:1.27", "--replicas=3", "--port=8080"),
                  0);
        CHECK(strstr(out, "deployment.apps/web created"));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "get", "deployment", "web", "-o",
                          "jsonpath={.spec.replicas} {.spec.selector.matchLabels.app} "
                          "{.spec.template.metadata.labels.app} "
                          "{.spec.template.spec.containers[0].name} "
                          "{.spec.template.spec.containers[0].image} "
                          "{.spec.template.spec.containers[0].ports[0].containerPort} "
                          "{.spec.strategy.type} "
                          "{.spec.template.spec.containers[0].imagePullPolicy} "
                          "{.metadata.generation}"),
                  0);
        CHECK_STR(out, "3 web web nginx nginx:1.27 8080 RollingUpdate IfNotPresent 1");
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "create", "deployment", "idle",
                          "--image=busybox:1.36", "--replicas=0"),
                  0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "get", "deployment", "idle", "-o",
                          "jsonpath={.spec.replicas}"),
                  0);
        CHECK_STR(out, "0");
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "create", "job", "hello", "--image=busybox:1.36",
                          "--", "echo", "hi there"),
                  0);
        CHECK(strstr(out, "job.batch/hello created"));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "get", "job", "hello", "-o",
                          "jsonpath={.spec.template.spec.containers[0].name} "
                          "{.spec.template.spec.containers[0].image} "
                          "{.spec.template.spec.containers[0].command} "
                          "{.spec.template.spec.restartPolicy}"),
                  0);
        CHECK_STR(out, "hello busybox:1.36 [\"echo\",\"hi there\"] Never");
        free(out);
        /* A bad name is still refused by validation, protobuf or not. */
        CHECK(KUBECTL(&out, NULL, "-n", "ops", "create", "deployment", "Bad_Name",
                      "--image=nginx") != 0);
        CHECK(strstr(out, "Deployment.apps \"Bad_Name\" is invalid: metadata.name"));
        free(out);
}

static void test_label_and_select(void)
{
        char *out = NULL;

        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "label", "cm", "cfg", "tier=front"), 0);
        CHECK(strstr(out, "configmap/cfg labeled"));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "get", "cm", "-l", "tier=front", "-o", "name"),
                  0);
        CHECK_STR(out, "configmap/cfg\n");
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "get", "cm", "--field-selector",
                          "metadata.name=cfg", "-o", "name"),
                  0);
        CHECK_STR(out, "configmap/cfg\n");
        free(out);
        CHECK(KUBECTL(&out, NULL, "-n", "ops", "label", "cm", "cfg", "bad key=x") != 0);
        free(out);
}

static void test_watch_streams_events(void)
{
        char *path = sw_xasprintf("%s/watch.out", srv.dir), *text = NULL, *out = NULL;
        size_t len;
        struct sw_err err = SW_ERR_INIT;
        pid_t w;

        w = t_kubectl_bg(&srv, path,
                         (const char *const[]){"-n", "ops", "get", "pods", "-w",
                                               "--output-watch-events", NULL});
        /* The watch is open once kubectl has listed; creating the pod after that is seen live. */
        usleep(1500 * 1000);
        CHECK_INT(KUBECTL(&out, POD, "apply", "-f", "-"), 0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "patch", "pod", "p1", "--subresource=status",
                          "--type=merge", "-p",
                          "{\"status\":{\"phase\":\"Running\",\"podIP\":\"127.0.0.9\"}}"),
                  0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "delete", "pod", "p1"), 0);
        CHECK(strstr(out, "pod \"p1\" deleted"));
        free(out);
        usleep(1000 * 1000);
        kill(w, SIGTERM);
        t_wait_pid(w, 5000);
        sw_read_file(&text, &len, path, 1 << 20, &err);
        CHECK(text && strstr(text, "EVENT"));
        CHECK(text && strstr(text, "ADDED      p1"));
        CHECK(text && strstr(text, "MODIFIED   p1"));
        CHECK(text && strstr(text, "Running"));
        CHECK(text && strstr(text, "DELETED    p1"));
        if (t_failures_in_test)
                fprintf(stderr, "watch output:\n%s\n", text ? text : "(none)");
        free(text);
        free(path);
}

static void test_pod_table_columns(void)
{
        char *out = NULL;

        CHECK_INT(KUBECTL(&out, POD, "apply", "-f", "-"), 0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "get", "pods", "-o", "wide"), 0);
        CHECK(strstr(out, "NAME   READY   STATUS    RESTARTS   AGE   IP       NODE     "
                          "NOMINATED NODE   READINESS GATES"));
        CHECK(strstr(out, "p1     0/1     Pending   0"));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "get", "pods", "--field-selector",
                          "status.phase=Pending", "-o", "name"),
                  0);
        CHECK_STR(out, "pod/p1\n");
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "get", "pods", "--field-selector",
                          "spec.nodeName=n1", "-o", "name"),
                  0);
        CHECK_STR(out, "");
        free(out);
}

static void test_scale(void)
{
        char *out = NULL;

        CHECK_INT(KUBECTL(&out, DEPLOY, "apply", "-f", "-"), 0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "scale", "deployment", "d1", "--replicas=5"), 0);
        CHECK(strstr(out, "deployment.apps/d1 scaled"));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "get", "deploy", "d1", "-o",
                          "jsonpath={.spec.replicas} {.metadata.generation}"),
                  0);
        CHECK_STR(out, "5 2");
        free(out);
        /* --current-replicas is a precondition kubectl checks against the Scale. */
        CHECK(KUBECTL(&out, NULL, "-n", "ops", "scale", "deployment", "d1", "--current-replicas=2",
                      "--replicas=1") != 0);
        free(out);
}

static const char *const LIMITS = "apiVersion: v1\n"
                                  "kind: ResourceQuota\n"
                                  "metadata: {name: compute, namespace: ops}\n"
                                  "spec:\n"
                                  "  hard: {pods: \"2\", requests.cpu: \"1\"}\n"
                                  "---\n"
                                  "apiVersion: v1\n"
                                  "kind: LimitRange\n"
                                  "metadata: {name: defaults, namespace: ops}\n"
                                  "spec:\n"
                                  "  limits:\n"
                                  "  - type: Container\n"
                                  "    default: {cpu: 500m}\n"
                                  "    defaultRequest: {cpu: 400m}\n"
                                  "    max: {cpu: \"2\"}\n";

static char *pod_named(const char *name, const char *cpu_limit)
{
        return sw_xasprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: ops}\n"
                            "spec:\n  containers:\n  - name: c\n    image: busybox\n%s%s%s",
                            name, cpu_limit ? "    resources: {limits: {cpu: \"" : "",
                            cpu_limit ? cpu_limit : "", cpu_limit ? "\"}}\n" : "");
}

static void test_quota_and_limit_range(void)
{
        char *out = NULL, *pod;

        /* p1 from the earlier test exists without requests; start clean. */
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "delete", "pods", "--all"), 0);
        free(out);
        CHECK_INT(KUBECTL(&out, LIMITS, "apply", "-f", "-"), 0);
        free(out);
        pod = pod_named("q1", NULL);
        CHECK_INT(KUBECTL(&out, pod, "apply", "-f", "-"), 0);
        free(out);
        free(pod);
        /* The LimitRange filled in the container's resources. */
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "get", "pod", "q1", "-o",
                          "jsonpath={.spec.containers[0].resources.requests.cpu} "
                          "{.spec.containers[0].resources.limits.cpu} {.status.qosClass}"),
                  0);
        /* Its defaults count for the QoS class: a cpu limit without a memory one is Burstable. */
        CHECK_STR(out, "400m 500m Burstable");
        free(out);
        pod = pod_named("q2", NULL);
        CHECK_INT(KUBECTL(&out, pod, "apply", "-f", "-"), 0);
        free(out);
        free(pod);
        /* 3 x 400m would pass requests.cpu=1: kubectl shows the Forbidden message. */
        pod = pod_named("q3", NULL);
        CHECK(KUBECTL(&out, pod, "apply", "-f", "-") != 0);
        CHECK(strstr(out, "Error from server (Forbidden)"));
        CHECK(strstr(out, "pods \"q3\" is forbidden: exceeded quota: compute, requested: "
                          "pods=1,requests.cpu=400m, used: pods=2,requests.cpu=800m, limited: "
                          "pods=2,requests.cpu=1"));
        free(out);
        free(pod);
        pod = pod_named("big", "3");
        CHECK(KUBECTL(&out, pod, "apply", "-f", "-") != 0);
        CHECK(strstr(out, "maximum cpu usage per Container is 2, but limit is 3"));
        free(out);
        free(pod);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "get", "quota", "compute", "-o",
                          "jsonpath={.status.used.pods} {.status.used.requests\\.cpu}"),
                  0);
        CHECK_STR(out, "2 800m");
        free(out);
}

static void test_tables_of_every_kind(void)
{
        static const struct {
                const char *what, *header, *row;
        } cases[] = {
                {"nodes", "NAME   STATUS   ROLES    AGE   VERSION", "n1     Ready    worker"},
                {"endpoints", "NAME   ENDPOINTS                       AGE",
                 "web    127.0.0.5:8080,127.0.0.6:8080"},
                {"events", "LAST SEEN   TYPE     REASON      OBJECT   MESSAGE",
                 "Normal   Scheduled   pod/p1   Successfully assigned kinds/p1 to n1"},
                {"serviceaccounts", "NAME   SECRETS   AGE", "bot    0"},
                {"leases", "NAME   HOLDER   AGE", "n1     n1"},
                {"replicasets", "NAME   DESIRED   CURRENT   READY   AGE", "rs1    3         0"},
                {"jobs", "NAME   STATUS    COMPLETIONS   DURATION   AGE", "j1     Running   0/1"},
                {"cronjobs", "NAME   SCHEDULE      TIMEZONE   SUSPEND   ACTIVE   LAST SCHEDULE",
                 "cj1    */5 * * * *   <none>     false     0        <none>"},
                {"ingressclasses", "NAME    CONTROLLER             PARAMETERS   AGE",
                 "nginx   k8s.io/ingress-nginx   <none>"},
                {"secrets", "NAME   TYPE     DATA   AGE", "pw     Opaque   1"},
        };
        char *out = NULL;

        CHECK_INT(KUBECTL(&out, NULL, "create", "namespace", "kinds"), 0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "apply", "-f",
                          SW_TEST_SOURCE_DIR "/tests/fixtures/orchestrator/kinds.yaml"),
                  0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "kinds", "create", "secret", "generic", "pw",
                          "--from-literal=k=v"),
                  0);
        free(out);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int rc = KUBECTL(&out, NULL, "-n", "kinds", "get", cases[i].what);
                CHECK_INT(rc, 0);
                if (!strstr(out, cases[i].header) || !strstr(out, cases[i].row))
                        t_fail(__FILE__, __LINE__, "get %s:\n%s", cases[i].what, out);
                free(out);
        }
        CHECK_INT(KUBECTL(&out, NULL, "get", "nodes", "-o", "wide"), 0);
        CHECK(strstr(out, "INTERNAL-IP   EXTERNAL-IP   OS-IMAGE              KERNEL-VERSION   "
                          "CONTAINER-RUNTIME"));
        CHECK(strstr(out, "127.0.0.1     <none>        Debian GNU/Linux 12   6.1              "
                          "runc://1.1.15"));
        if (t_failures_in_test)
                fprintf(stderr, "%s\n", out);
        free(out);
}

static void test_delete(void)
{
        char *out = NULL;

        CHECK_INT(KUBECTL(&out, NULL, "-n", "ops", "delete", "deployment", "d1"), 0);
        CHECK(strstr(out, "deployment.apps \"d1\" deleted"));
        free(out);
        CHECK(KUBECTL(&out, NULL, "-n", "ops", "get", "deployment", "d1") != 0);
        CHECK(strstr(out, "NotFound"));
        CHECK(strstr(out, "deployments.apps \"d1\" not found"));
        free(out);
        CHECK(KUBECTL(&out, NULL, "-n", "ops", "delete", "deployment", "d1") != 0);
        free(out);
        /* Deleting the namespace removes what is in it. */
        CHECK_INT(KUBECTL(&out, NULL, "delete", "namespace", "ops"), 0);
        CHECK(strstr(out, "namespace \"ops\" deleted"));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "get", "cm", "-A", "-o", "name"), 0);
        CHECK(!strstr(out, "configmap/cfg"));
        free(out);
        CHECK(KUBECTL(&out, NULL, "delete", "namespace", "default") != 0);
        CHECK(strstr(out, "Forbidden"));
        free(out);
}

static void test_server_starts(void)
{
        char *path;
        struct stat st;

        up = t_orch_start(&srv, "ops");
        CHECK(up);
        /* The server leaves a kubeconfig for the rest of slipway, readable by its owner only. */
        path = sw_xasprintf("%s/kubeconfig", srv.dir);
        CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
        free(path);
}

/* Stops it by SIGTERM; under ASan this also checks its log for errors and leaks. */
static void test_server_stops_cleanly(void)
{
        t_orch_stop(&srv);
}

int main(void)
{
        T_RUN(test_server_starts);
        if (up) {
                T_RUN(test_create_imperative);
                T_RUN(test_create_typed_workloads);
                T_RUN(test_label_and_select);
                T_RUN(test_watch_streams_events);
                T_RUN(test_pod_table_columns);
                T_RUN(test_scale);
                T_RUN(test_quota_and_limit_range);
                T_RUN(test_tables_of_every_kind);
                T_RUN(test_delete);
        }
        T_RUN(test_server_stops_cleanly);
        return t_done();
}
