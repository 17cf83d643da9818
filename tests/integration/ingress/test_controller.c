/*
 * test_controller.c - the ingress controller against the real `slipway
 * kube-apiserver`, the real nginx and the real kubectl: an Ingress applied
 * with kubectl is routed through nginx and gets the edge IP in
 * status.loadBalancer; an Ingress whose TLS Secret nginx cannot load is not
 * swapped in (the old routes keep serving), gets a Warning Event with
 * nginx's message, and does not hold back an Ingress applied after it.
 *
 * The backend is a tiny HTTP server of the test process, behind a Service
 * and a pod the test marks ready. "Routed" means answered by a route rather
 * than by nginx's default server (404).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/json.h"
#include "common/libs.h"
#include "common/mem.h"
#include "common/yaml.h"
#include "ingress/controller.h"
#include "orchestrator/client/kube.h"
#include "tests/harness/edge.h"
#include "tests/harness/orch.h"
#include "tests/harness/t.h"

#define EDGE_IP "127.0.0.7"

static struct t_orch srv;
static int app_port; /* the test's HTTP server: the Service's clusterIP port and its pod's */

#define KUBECTL(outp, input, ...)                                                                  \
        t_kubectl(&srv, (outp), (input), (const char *const[]){__VA_ARGS__, NULL})

static void kubectl_ok(const char *input, const char *const *args)
{
        char *out = NULL;

        if (t_kubectl(&srv, &out, input, args) != 0)
                t_fail(__FILE__, __LINE__, "kubectl %s %s: %s", args[0], args[1] ? args[1] : "",
                       out ? out : "");
        free(out);
}
#define KUBECTL_OK(input, ...) kubectl_ok((input), (const char *const[]){__VA_ARGS__, NULL})

/* Server-side apply of every document of `yaml` through the API client (quicker than kubectl). */
static void apply_yaml(const char *yaml)
{
        struct sw_err err = SW_ERR_INIT;
        struct orch_kube *kube = NULL;
        json_t *docs = NULL, *d;
        size_t i;

        CHECK_OK(orch_kube_from_kubeconfig(&kube, srv.kubeconfig, NULL, &err), &err);
        CHECK_OK(sw_yaml_load(&docs, yaml, strlen(yaml), "test", &err), &err);
        json_array_foreach(docs, i, d)
                CHECK_OK(orch_kube_apply(NULL, kube, d, "test", true, &err), &err);
        json_decref(docs);
        orch_kube_free(kube);
}

/* Wait until GET / for `host` through nginx is (or, with `routed` false, is not) routed. */
static bool wait_routed(const struct th_edge *e, const char *host, bool routed, long *status_out)
{
        int64_t end = sw_mono_ms() + 20000;
        long st;

        do {
                st = th_get(e->listen, host, "/", NULL);
                if ((st != 0 && st != 404) == routed)
                        break;
                sw_sleep_ms(20);
        } while (sw_mono_ms() < end);
        if (status_out)
                *status_out = st;
        return (st != 0 && st != 404) == routed;
}

#define EVENTUALLY(want, ...)                                                                      \
        t_kubectl_until(&srv, (want), 20000, (const char *const[]){__VA_ARGS__, NULL})

static char *ingress_yaml(const char *name, const char *host, const char *tls_secret)
{
        char *tls = tls_secret ? sw_xasprintf("  tls:\n"
                                              "  - hosts: [%s]\n"
                                              "    secretName: %s\n",
                                              host, tls_secret)
                               : sw_xstrdup("");
        char *y = sw_xasprintf("apiVersion: networking.k8s.io/v1\n"
                               "kind: Ingress\n"
                               "metadata:\n"
                               "  name: %s\n"
                               "  namespace: default\n"
                               "spec:\n"
                               "  ingressClassName: slipway\n"
                               "%s"
                               "  rules:\n"
                               "  - host: %s\n"
                               "    http:\n"
                               "      paths:\n"
                               "      - path: /\n"
                               "        pathType: Prefix\n"
                               "        backend:\n"
                               "          service:\n"
                               "            name: web\n"
                               "            port:\n"
                               "              number: %d\n",
                               name, tls, host, app_port);
        free(tls);
        return y;
}

/*
 * Service web and its one pod, ready: `app` is reachable both as the
 * Service's clusterIP:port and as the pod's published port, so it answers
 * whichever the controller routes to.
 */
static void make_backend(const struct th_httpd *app)
{
        char *yaml = sw_xasprintf("apiVersion: v1\n"
                                  "kind: Service\n"
                                  "metadata:\n"
                                  "  name: web\n"
                                  "  namespace: default\n"
                                  "spec:\n"
                                  "  clusterIP: 127.0.0.1\n"
                                  "  selector: {app: web}\n"
                                  "  ports:\n"
                                  "  - port: %d\n"
                                  "    targetPort: 8080\n"
                                  "---\n"
                                  "apiVersion: v1\n"
                                  "kind: Pod\n"
                                  "metadata:\n"
                                  "  name: web-1\n"
                                  "  namespace: default\n"
                                  "  labels: {app: web}\n"
                                  "  annotations:\n"
                                  "    slipway.dev/ports: '{\"8080\": %d}'\n"
                                  "spec:\n"
                                  "  containers:\n"
                                  "  - name: web\n"
                                  "    image: example.invalid/web:1\n"
                                  "    ports:\n"
                                  "    - containerPort: 8080\n",
                                  th_httpd_port(app), th_httpd_port(app));

        apply_yaml(yaml);
        KUBECTL_OK(NULL, "patch", "pod", "web-1", "--subresource=status", "--type=merge", "-p",
                   "{\"status\":{\"phase\":\"Running\",\"podIP\":\"127.0.0.1\",\"conditions\":[{"
                   "\"type\":\"Ready\",\"status\":\"True\"}]}}");
        free(yaml);
}

static void test_status_and_rejected_config(void)
{
        struct ingress_table *empty = NULL;
        struct ingress_ctrl_options o = {0};
        struct ingress_ctrl *ctrl = NULL;
        struct sw_err err = SW_ERR_INIT;
        struct th_edge e;
        struct th_httpd *app = th_httpd_start("app");
        char *tls_dir = sw_xasprintf("%s/tls", t_tmpdir()), *y, *out = NULL;
        long st = 0;

        ingress_table_new(&empty);
        th_edge_start(&e, empty);
        o.kubeconfig = srv.kubeconfig;
        o.nginx = e.nginx;
        o.render = e.ro;
        o.edge_ip = EDGE_IP;
        o.tls_dir = tls_dir;
        CHECK_OK(ingress_ctrl_start(&ctrl, &o, &err), &err);
        app_port = th_httpd_port(app);
        make_backend(app);

        /* applied with kubectl -> routed through nginx, and the edge IP in its status */
        y = ingress_yaml("web", "web.test", NULL);
        apply_yaml(y);
        free(y);
        CHECK(wait_routed(&e, "web.test", true, &st));
        CHECK_INT(st, 200);
        CHECK(EVENTUALLY(EDGE_IP, "get", "ingress", "web", "-o",
                         "jsonpath={.status.loadBalancer.ingress[*].ip}"));

        /* a TLS Secret nginx cannot load: rejected, the old routes keep serving */
        apply_yaml("apiVersion: v1\n"
                   "kind: Secret\n"
                   "metadata: {name: bad-tls, namespace: default}\n"
                   "type: kubernetes.io/tls\n"
                   "data:\n"
                   "  tls.crt: bm90IGEgY2VydGlmaWNhdGU=\n" /* "not a certificate" */
                   "  tls.key: bm90IGEga2V5\n");           /* "not a key" */
        y = ingress_yaml("bad", "bad.test", "bad-tls");
        apply_yaml(y);
        free(y);
        CHECK(EVENTUALLY("RejectedConfig", "get", "events", "-o",
                         "custom-columns=OBJ:.involvedObject.name,TYPE:.type,REASON:.reason"));
        CHECK_INT(KUBECTL(&out, NULL, "get", "events", "-o", "json"), 0);
        {
                json_t *list = NULL;
                const json_t *ev;
                size_t i;
                bool found = false;
                CHECK_OK(sw_json_parse(&list, out, strlen(out), 0, &err), &err);
                json_array_foreach(json_object_get(list, "items"), i, ev)
                {
                        const json_t *io = json_object_get(ev, "involvedObject");
                        if (strcmp(sw_json_str(ev, "reason", ""), "RejectedConfig") != 0)
                                continue;
                        found = true;
                        CHECK_STR(sw_json_str(io, "kind", ""), "Ingress");
                        CHECK_STR(sw_json_str(io, "name", ""), "bad");
                        CHECK_STR(sw_json_str(ev, "type", ""), "Warning");
                        /* nginx's own words: it could not load the certificate */
                        if (!strstr(sw_json_str(ev, "message", ""), "nginx rejected") ||
                            !strstr(sw_json_str(ev, "message", ""), "certificate"))
                                t_fail(__FILE__, __LINE__, "event message: %s",
                                       sw_json_str(ev, "message", ""));
                }
                CHECK(found);
                json_decref(list);
        }
        free(out);
        out = NULL;
        CHECK(wait_routed(&e, "web.test", true, NULL));
        CHECK(wait_routed(&e, "bad.test", false, NULL));
        /* no edge IP for an Ingress that is not routed */
        CHECK_INT(KUBECTL(&out, NULL, "get", "ingress", "bad", "-o",
                          "jsonpath={.status.loadBalancer.ingress[*].ip}"),
                  0);
        CHECK(out && strstr(out, EDGE_IP) == NULL);
        free(out);
        out = NULL;

        /* the rejected one does not hold back the next */
        y = ingress_yaml("later", "later.test", NULL);
        apply_yaml(y);
        free(y);
        CHECK(wait_routed(&e, "later.test", true, NULL));
        CHECK(EVENTUALLY(EDGE_IP, "get", "ingress", "later", "-o",
                         "jsonpath={.status.loadBalancer.ingress[*].ip}"));

        /* fixed (a new generation): tried again; deleted: its route goes */
        y = ingress_yaml("bad", "bad.test", NULL);
        apply_yaml(y);
        free(y);
        CHECK(wait_routed(&e, "bad.test", true, NULL));
        KUBECTL_OK(NULL, "delete", "ingress", "later");
        CHECK(wait_routed(&e, "later.test", false, NULL));
        CHECK(wait_routed(&e, "web.test", true, NULL));
        CHECK(ingress_ctrl_resyncs(ctrl) > 0);

        ingress_ctrl_stop(ctrl);
        th_edge_stop(&e);
        ingress_table_free(empty);
        th_httpd_stop(app);
        free(tls_dir);
}

int main(void)
{
        sw_libs_init();
        if (!t_orch_start(&srv, "ingress-ctrl")) {
                printf("the API server did not start\n");
                return 1;
        }
        T_RUN(test_status_and_rejected_config);
        t_orch_stop(&srv);
        return t_done();
}
