/*
 * test_deploy_step.c - the deploy step's Kubernetes client against the real
 * API server (`slipway kube-apiserver`, over TLS with a token, through the
 * kubeconfig it writes): server-side apply of rendered documents, idempotent
 * re-apply, watch, and the rollout wait with its verdicts. Rollouts are
 * driven here through the status subresource, as a controller and a node
 * agent would (they are tested on their own).
 */
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/json.h"
#include "common/libs.h"
#include "common/mem.h"
#include "engine/request.h"
#include "orchestrator/client/kube.h"
#include "steps/deploy.h"
#include "steps/render.h"
#include "tests/harness/engine_fixture.h"
#include "tests/harness/orch.h"
#include "tests/harness/t.h"

#define IMAGE                                                                                      \
        "127.0.0.1:5000/shop/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static struct t_orch orch;
static struct orch_kube *kube;

static json_t *render(const char *name)
{
        struct sw_config cfg;
        struct step_render_input in = {0};
        struct sw_err err = SW_ERR_INIT;
        json_t *raw = json_pack("{s:s,s:s,s:s,s:i}", "repo", "/srv/git/shop", "name", name,
                                "namespace", "shop", "replicas", 2);
        json_t *req = NULL, *docs = NULL;

        tf_config(&cfg, NULL);
        CHECK_OK(eng_request_normalize(&req, raw, ENG_REQUEST_FIELDS, &err), &err);
        in.request = req;
        in.image = IMAGE;
        CHECK_OK(step_render_documents(&docs, &in, &cfg, &err), &err);
        json_decref(raw);
        json_decref(req);
        sw_config_release(&cfg);
        return docs;
}

static void test_apply_idempotent(void)
{
        json_t *docs = render("web"), *d1 = NULL, *d2 = NULL;
        struct sw_err err = SW_ERR_INIT;
        int n = 0;

        CHECK_OK(step_deploy_apply(kube, docs, &n, &err), &err);
        CHECK_INT(n, 6);
        CHECK_OK(orch_kube_get(&d1, kube, "/apis/apps/v1/namespaces/shop/deployments/web", &err),
                 &err);
        CHECK_STR(sw_json_str(json_array_get(
                                      json_object_get(
                                              json_object_get(
                                                      json_object_get(json_object_get(d1, "spec"),
                                                                      "template"),
                                                      "spec"),
                                              "containers"),
                                      0),
                              "image", ""),
                  IMAGE);
        /* applying the same documents again changes nothing */
        CHECK_OK(step_deploy_apply(kube, docs, &n, &err), &err);
        CHECK_OK(orch_kube_get(&d2, kube, "/apis/apps/v1/namespaces/shop/deployments/web", &err),
                 &err);
        CHECK_INT(sw_json_int(json_object_get(d1, "metadata"), "generation", -1),
                  sw_json_int(json_object_get(d2, "metadata"), "generation", -2));
        /* the API's own errors come back with their Status message */
        CHECK_INT(orch_kube_get(&d2, kube, "/apis/apps/v1/namespaces/shop/deployments/nope", &err),
                  SW_ENOTFOUND);
        CHECK(strstr(err.msg, "\"nope\" not found") != NULL);
        json_decref(d1);
        json_decref(d2);
        json_decref(docs);
}

static int count_events(void *arg, const char *type, const json_t *obj)
{
        int *n = arg;

        (void)obj;
        if (!strcmp(type, "ADDED"))
                (*n)++;
        return *n >= 2; /* stop once both ConfigMaps were seen */
}

static void test_watch(void)
{
        struct sw_err err = SW_ERR_INIT;
        json_t *cm =
                json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap",
                          "metadata", "name", "a", "namespace", "shop", "data", "k", "v");
        int seen = 0;

        CHECK_OK(orch_kube_apply(NULL, kube, cm, "test", true, &err), &err);
        json_object_set_new(json_object_get(cm, "metadata"), "name", json_string("b"));
        CHECK_OK(orch_kube_apply(NULL, kube, cm, "test", true, &err), &err);
        /* from the start: both creations replayed */
        CHECK_OK(orch_kube_watch(NULL, kube, "/api/v1/namespaces/shop/configmaps", NULL, "0", 5000,
                                 count_events, &seen, &err),
                 &err);
        CHECK_INT(seen, 2);
        json_decref(cm);
}

static void set_status(const char *path, json_t *status)
{
        struct sw_err err = SW_ERR_INIT;
        json_t *patch = json_pack("{s:o}", "status", status);
        char *p = sw_xasprintf("%s/status", path);

        CHECK_OK(orch_kube_request(NULL, NULL, kube, "PATCH", p, "application/merge-patch+json",
                                   patch, &err),
                 &err);
        free(p);
        json_decref(patch);
}

static void test_rollout_wait(void)
{
        const char *path = "/apis/apps/v1/namespaces/shop/deployments/web";
        struct sw_err err = SW_ERR_INIT;
        json_t *d = NULL;
        int64_t gen;

        /* nothing observed it: the wait times out and says what it waited for */
        CHECK_INT(step_deploy_wait(kube, "shop", "web", 1500, NULL, NULL, NULL, &err),
                  SW_ETIMEDOUT);
        CHECK(strstr(err.msg, "waiting for the deployment controller") != NULL);
        sw_err_clear(&err);

        CHECK_OK(orch_kube_get(&d, kube, path, &err), &err);
        gen = sw_json_int(json_object_get(d, "metadata"), "generation", 1);
        json_decref(d);
        set_status(path, json_pack("{s:I,s:i,s:i,s:i,s:i}", "observedGeneration", (json_int_t)gen,
                                   "replicas", 2, "updatedReplicas", 2, "readyReplicas", 2,
                                   "availableReplicas", 2));
        CHECK_OK(step_deploy_wait(kube, "shop", "web", 5000, NULL, NULL, NULL, &err), &err);
}

static void test_rollout_failure_reasons(void)
{
        json_t *docs = render("broken");
        struct sw_err err = SW_ERR_INIT;
        json_t *pod;
        int n;

        CHECK_OK(step_deploy_apply(kube, docs, &n, &err), &err);
        json_decref(docs);
        /* a pod of the app that cannot pull its image, as a node agent reports it */
        pod = json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s,s:s}},s:{s:[{s:s,s:s}]}}", "apiVersion", "v1",
                        "kind", "Pod", "metadata", "name", "broken-1", "namespace", "shop",
                        "labels", "app.kubernetes.io/name", "broken", "app.kubernetes.io/instance",
                        "broken", "spec", "containers", "name", "broken", "image", IMAGE);
        CHECK_OK(orch_kube_apply(NULL, kube, pod, "test", true, &err), &err);
        set_status("/api/v1/namespaces/shop/pods/broken-1",
                   json_pack("{s:s,s:[{s:s,s:{s:{s:s,s:s}}}]}", "phase", "Pending",
                             "containerStatuses", "name", "broken", "state", "waiting", "reason",
                             "InvalidImageName", "message",
                             "manifest unknown: the registry has no such image"));
        CHECK_INT(step_deploy_wait(kube, "shop", "broken", 10000, NULL, NULL, NULL, &err),
                  SW_EFAILED);
        CHECK(strstr(err.msg, "InvalidImageName") &&
              strstr(err.msg, "the registry has no such image"));
        json_decref(pod);
}

int main(void)
{
        struct sw_err err = SW_ERR_INIT;

        sw_libs_init();
        if (!t_orch_start(&orch, "deploy-step"))
                return 1;
        if (orch_kube_from_kubeconfig(&kube, orch.kubeconfig, NULL, &err) != 0) {
                fprintf(stderr, "kubeconfig: %s\n", err.msg);
                t_orch_stop(&orch);
                return 1;
        }
        T_RUN(test_apply_idempotent);
        T_RUN(test_watch);
        T_RUN(test_rollout_wait);
        T_RUN(test_rollout_failure_reasons);
        orch_kube_free(kube);
        t_orch_stop(&orch);
        return t_done();
}
