/*
 * kubectl_apply.c - the real kubectl against `slipway kube-apiserver`:
 * client-side apply with default validation (created, unchanged,
 * configured by a strategic merge patch that keeps the other fields),
 * server-side apply with field ownership and conflicts, and `get` through
 * server-side Tables, JSON, YAML and label selectors.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "common/mem.h"
#include "tests/harness/orch.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

#define MANIFEST SW_TEST_SOURCE_DIR "/tests/fixtures/orchestrator/web.yaml"

static struct t_orch srv;
static bool up;

#define KUBECTL(outp, input, ...)                                                                  \
        t_kubectl(&srv, (outp), (input), (const char *const[]){__VA_ARGS__, NULL})

/* `text` (consumed) with every `from` replaced by `to`. */
static char *subst(char *text, const char *from, const char *to)
{
        char *p;
        size_t at = 0;

        while ((p = strstr(text + at, from)) != NULL) {
                char *next = sw_xasprintf("%.*s%s%s", (int)(p - text), text, to, p + strlen(from));
                at = (size_t)(p - text) + strlen(to);
                free(text);
                text = next;
        }
        return text;
}

static char *manifest(const char *from, const char *to)
{
        char *text = NULL;
        size_t len;
        struct sw_err err = SW_ERR_INIT;

        if (sw_read_file(&text, &len, MANIFEST, 1 << 20, &err) != 0)
                return sw_xstrdup("");
        return from ? subst(text, from, to) : text;
}

/* The value at a dotted path, where numeric parts index arrays ("spec.ports.0.port"). */
static json_t *jpath(json_t *v, const char *path)
{
        char part[128];

        while (v && *path) {
                size_t n = strcspn(path, ".");
                snprintf(part, sizeof(part), "%.*s", (int)n, path);
                if (json_is_array(v))
                        v = json_array_get(v, strtoul(part, NULL, 10));
                else
                        v = json_object_get(v, part);
                path += n + (path[n] == '.');
        }
        return v;
}

static json_t *get_json(const char *ns, const char *what)
{
        char *out = NULL;
        json_t *v = NULL;

        if (KUBECTL(&out, NULL, "-n", ns, "get", what, "-o", "json", "--show-managed-fields") == 0)
                v = json_loads(out, 0, NULL);
        free(out);
        return v;
}

static void test_apply_creates(void)
{
        char *out = NULL;
        int rc = KUBECTL(&out, NULL, "apply", "-f", MANIFEST);

        CHECK_INT(rc, 0);
        CHECK(strstr(out, "namespace/shop created"));
        CHECK(strstr(out, "configmap/web-config created"));
        CHECK(strstr(out, "deployment.apps/web created"));
        CHECK(strstr(out, "service/web created"));
        CHECK(strstr(out, "ingress.networking.k8s.io/web created"));
        if (rc)
                fprintf(stderr, "%s\n", out);
        free(out);
}

static void test_apply_again_unchanged(void)
{
        char *out = NULL;
        int rc = KUBECTL(&out, NULL, "apply", "-f", MANIFEST);

        CHECK_INT(rc, 0);
        CHECK(strstr(out, "deployment.apps/web unchanged"));
        CHECK(strstr(out, "service/web unchanged"));
        CHECK(strstr(out, "configmap/web-config unchanged"));
        CHECK(strstr(out, "ingress.networking.k8s.io/web unchanged"));
        CHECK(!strstr(out, "configured"));
        free(out);
}

static void test_apply_changed_image_keeps_fields(void)
{
        char *m = manifest("nginx:1.25", "nginx:1.26"), *out = NULL;
        json_t *d, *c;
        int rc = KUBECTL(&out, m, "apply", "-f", "-");

        CHECK_INT(rc, 0);
        CHECK(strstr(out, "deployment.apps/web configured"));
        CHECK(strstr(out, "service/web unchanged"));
        free(out);
        free(m);
        d = get_json("shop", "deployment/web");
        CHECK(d != NULL);
        c = jpath(d, "spec.template.spec.containers.0");
        CHECK_STR(json_string_value(jpath(c, "image")), "nginx:1.26");
        /* The strategic merge kept the container's ports and env. */
        CHECK_INT(json_integer_value(jpath(c, "ports.0.containerPort")), 80);
        CHECK_STR(json_string_value(jpath(c, "env.0.name")), "GREETING");
        CHECK_INT(json_integer_value(jpath(d, "metadata.generation")), 2);
        json_decref(d);
        /* Applying the changed manifest again changes nothing. */
        m = manifest("nginx:1.25", "nginx:1.26");
        rc = KUBECTL(&out, m, "apply", "-f", "-");
        CHECK(strstr(out, "deployment.apps/web unchanged"));
        free(out);
        free(m);
}

static void test_get_tables(void)
{
        char *out = NULL;

        CHECK_INT(KUBECTL(&out, NULL, "-n", "shop", "get", "deployments"), 0);
        CHECK(strstr(out, "NAME   READY   UP-TO-DATE   AVAILABLE   AGE"));
        CHECK(strstr(out, "web    0/2     0            0"));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "shop", "get", "deploy", "-o", "wide"), 0);
        CHECK(strstr(out, "CONTAINERS   IMAGES       SELECTOR"));
        CHECK(strstr(out, "nginx:1.26   app=web"));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "shop", "get", "svc"), 0);
        CHECK(strstr(out, "NAME   TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)   AGE"));
        CHECK(strstr(out, "ClusterIP   127.77."));
        CHECK(strstr(out, "80/TCP"));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "shop", "get", "ing"), 0);
        CHECK(strstr(out, "CLASS    HOSTS              ADDRESS   PORTS   AGE"));
        CHECK(strstr(out, "web.example.test"));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "shop", "get", "cm"), 0);
        CHECK(strstr(out, "NAME         DATA   AGE"));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "get", "ns", "shop"), 0);
        CHECK(strstr(out, "STATUS   AGE"));
        CHECK(strstr(out, "shop   Active"));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "shop", "get", "all"), 0);
        CHECK(strstr(out, "service/web"));
        CHECK(strstr(out, "deployment.apps/web"));
        free(out);
}

static void test_get_json_yaml(void)
{
        json_t *d = get_json("shop", "deployment/web");
        char *out = NULL;

        CHECK(d != NULL);
        CHECK_STR(json_string_value(json_object_get(d, "kind")), "Deployment");
        CHECK_STR(json_string_value(json_object_get(d, "apiVersion")), "apps/v1");
        CHECK(json_object_get(json_object_get(json_object_get(d, "metadata"), "annotations"),
                              "kubectl.kubernetes.io/last-applied-configuration"));
        CHECK_INT(json_integer_value(json_object_get(json_object_get(d, "spec"), "replicas")), 2);
        json_decref(d);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "shop", "get", "svc", "web", "-o", "yaml"), 0);
        CHECK(strstr(out, "kind: Service"));
        CHECK(strstr(out, "clusterIP: 127.77."));
        free(out);
}

static void test_label_selectors(void)
{
        char *out = NULL;

        CHECK_INT(KUBECTL(&out, NULL, "-n", "shop", "get", "deploy", "-l", "app=web", "-o", "name"),
                  0);
        CHECK_STR(out, "deployment.apps/web\n");
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "shop", "get", "deploy", "-l", "app in (web,api)", "-o",
                          "name"),
                  0);
        CHECK_STR(out, "deployment.apps/web\n");
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "shop", "get", "deploy", "-l", "app notin (web)"), 0);
        CHECK(strstr(out, "No resources found in shop namespace."));
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "shop", "get", "deploy", "-l", "!app"), 0);
        CHECK(strstr(out, "No resources found"));
        free(out);
        CHECK(KUBECTL(&out, NULL, "-n", "shop", "get", "deploy", "-l", "app=(") != 0);
        free(out);
}

static void test_server_side_apply(void)
{
        char *m = manifest("shop", "ssa"), *out = NULL, *m4;
        json_t *d, *mf;
        int rc = KUBECTL(&out, m, "apply", "--server-side", "-f", "-");

        CHECK_INT(rc, 0);
        CHECK(strstr(out, "deployment.apps/web serverside-applied"));
        CHECK(strstr(out, "service/web serverside-applied"));
        free(out);
        d = get_json("ssa", "deployment/web");
        mf = json_array_get(json_object_get(json_object_get(d, "metadata"), "managedFields"), 0);
        CHECK_STR(json_string_value(json_object_get(mf, "manager")), "kubectl");
        CHECK_STR(json_string_value(json_object_get(mf, "operation")), "Apply");
        CHECK(json_object_get(json_object_get(json_object_get(mf, "fieldsV1"), "f:spec"),
                              "f:replicas"));
        json_decref(d);

        /* Another manager takes spec.replicas; applying a different value conflicts. */
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ssa", "scale", "deploy/web", "--replicas=3"), 0);
        free(out);
        free(m);
        m4 = subst(manifest("shop", "ssa"), "replicas: 2", "replicas: 4");
        rc = KUBECTL(&out, m4, "apply", "--server-side", "-f", "-");
        CHECK(rc != 0);
        CHECK(strstr(out, "conflict"));
        CHECK(strstr(out, ".spec.replicas"));
        free(out);
        rc = KUBECTL(&out, m4, "apply", "--server-side", "--force-conflicts", "-f", "-");
        CHECK_INT(rc, 0);
        free(out);
        CHECK_INT(KUBECTL(&out, NULL, "-n", "ssa", "get", "deploy", "web", "-o",
                          "jsonpath={.spec.replicas}"),
                  0);
        CHECK_STR(out, "4");
        free(out);
        free(m4);
}

static void test_client_side_to_server_side(void)
{
        /* The objects in "shop" were applied client-side; kubectl migrates their managers. */
        char *m = manifest("nginx:1.25", "nginx:1.26"), *out = NULL;
        json_t *d;
        int rc = KUBECTL(&out, m, "apply", "--server-side", "-f", "-");

        CHECK_INT(rc, 0);
        CHECK(strstr(out, "deployment.apps/web serverside-applied"));
        CHECK(strstr(out, "service/web serverside-applied"));
        if (rc)
                fprintf(stderr, "%s\n", out);
        free(out);
        d = get_json("shop", "deployment/web");
        out = json_dumps(jpath(d, "metadata.managedFields"), JSON_COMPACT);
        CHECK(strstr(out, "\"manager\":\"kubectl\",\"operation\":\"Apply\""));
        CHECK(!strstr(out, "kubectl-client-side-apply"));
        free(out);
        json_decref(d);
        free(m);
}

static void test_strict_validation(void)
{
        const char *bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\n  "
                          "namespace: shop\ndata:\n  a: b\ndatta:\n  c: d\n";
        char *out = NULL;
        int rc = KUBECTL(&out, bad, "apply", "-f", "-");

        CHECK(rc != 0);
        CHECK(strstr(out, "strict decoding error: unknown field \"datta\""));
        free(out);
        rc = KUBECTL(&out, bad, "apply", "--validate=false", "-f", "-");
        CHECK_INT(rc, 0);
        CHECK(strstr(out, "configmap/bad created"));
        free(out);
        /* Without strict validation the unknown field is dropped, as the real server does. */
        {
                json_t *cm = get_json("shop", "cm/bad");
                CHECK_STR(json_string_value(jpath(cm, "data.a")), "b");
                CHECK(cm && !json_object_get(cm, "datta"));
                json_decref(cm);
        }
        {
                char *bad2 = subst(sw_xstrdup(bad), "name: bad", "name: bad2");
                rc = KUBECTL(&out, bad2, "apply", "--validate=warn", "-f", "-");
                CHECK_INT(rc, 0);
                CHECK(strstr(out, "unknown field \"datta\""));
                CHECK(strstr(out, "configmap/bad2 created"));
                free(out);
                free(bad2);
        }
}

/*
 * Strict validation walks every level of the served types: a typo deep in
 * a pod template, in a Deployment's strategy or in a Job's probe is
 * refused with the real server's message, all unknown fields listed;
 * --validate=warn creates the object and kubectl prints the Warning.
 */
static void test_strict_validation_nested(void)
{
        const char *deploy = "apiVersion: apps/v1\nkind: Deployment\n"
                             "metadata: {name: typo, namespace: shop}\n"
                             "spec:\n"
                             "  selector: {matchLabels: {app: typo}}\n"
                             "  strategy: {rollingUpdate: {maxSurg: 1}}\n"
                             "  template:\n"
                             "    metadata: {labels: {app: typo}}\n"
                             "    spec:\n"
                             "      containers:\n"
                             "      - name: c\n"
                             "        image: busybox:1.36\n"
                             "        imagePullPolcy: Always\n"
                             "        resources: {limitz: {cpu: 100m}}\n";
        const char *job = "apiVersion: batch/v1\nkind: Job\n"
                          "metadata: {name: typo, namespace: shop}\n"
                          "spec:\n"
                          "  template:\n"
                          "    spec:\n"
                          "      restartPolicy: Never\n"
                          "      containers:\n"
                          "      - name: c\n"
                          "        image: busybox:1.36\n"
                          "        livenessProbe: {httpGet: {paht: /healthz, port: 80}}\n";
        char *out = NULL;

        CHECK(KUBECTL(&out, deploy, "apply", "-f", "-") != 0);
        CHECK(strstr(out, "Deployment in version \"v1\" cannot be handled as a Deployment: "
                          "strict decoding error: "));
        CHECK(strstr(out, "unknown field \"spec.strategy.rollingUpdate.maxSurg\""));
        CHECK(strstr(out, "unknown field \"spec.template.spec.containers[0].imagePullPolcy\""));
        CHECK(strstr(out, "unknown field \"spec.template.spec.containers[0].resources.limitz\""));
        free(out);
        CHECK(KUBECTL(&out, job, "apply", "-f", "-") != 0);
        CHECK(strstr(out, "strict decoding error: unknown field "
                          "\"spec.template.spec.containers[0].livenessProbe.httpGet.paht\""));
        free(out);
        CHECK_INT(KUBECTL(&out, job, "apply", "--validate=warn", "-f", "-"), 0);
        CHECK(strstr(out, "Warning: unknown field "
                          "\"spec.template.spec.containers[0].livenessProbe.httpGet.paht\""));
        CHECK(strstr(out, "job.batch/typo created"));
        free(out);
        /* The unknown field was dropped, the known ones kept. */
        {
                json_t *j = get_json("shop", "job/typo");
                json_t *get = jpath(j, "spec.template.spec.containers");
                json_t *hg = json_object_get(
                        json_object_get(json_array_get(get, 0), "livenessProbe"), "httpGet");
                CHECK(hg && !json_object_get(hg, "paht"));
                CHECK_INT(json_integer_value(json_object_get(hg, "port")), 80);
                json_decref(j);
        }
}

static void test_server_starts(void)
{
        up = t_orch_start(&srv, "apply");
        CHECK(up);
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
                T_RUN(test_apply_creates);
                T_RUN(test_apply_again_unchanged);
                T_RUN(test_apply_changed_image_keeps_fields);
                T_RUN(test_get_tables);
                T_RUN(test_get_json_yaml);
                T_RUN(test_label_selectors);
                T_RUN(test_server_side_apply);
                T_RUN(test_client_side_to_server_side);
                T_RUN(test_strict_validation);
                T_RUN(test_strict_validation_nested);
        }
        T_RUN(test_server_stops_cleanly);
        return t_done();
}
