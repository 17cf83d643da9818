/*
 * api_http.c - the API server's HTTP semantics, driven in-process over
 * loopback with libcurl: authentication, discovery and OpenAPI, optimistic
 * concurrency, paging, watch replay and 410 Expired after compaction,
 * JSON patch, the status and binding subresources, deletecollection,
 * validation errors, Service IP allocation and owner-reference cascades.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/mem.h"
#include "orchestrator/orchestrator.h"
#include "tests/harness/t.h"

#define TOKEN "test-token-0123456789abcdef"

static struct orch_api *api;
static char base[64];

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
        sw_buf_append(arg, p, size * n, NULL);
        return size * n;
}

/* One request; returns the HTTP code, *out the body (caller frees; may be NULL). */
static long req(char **out, const char *method, const char *path, const char *ctype,
                const char *body, bool auth, long timeout_ms)
{
        CURL *c = curl_easy_init();
        struct curl_slist *h = NULL;
        struct sw_buf b = SW_BUF_INIT;
        char *url = sw_xasprintf("%s%s", base, path), *ct = NULL;
        long code = 0;

        if (auth)
                h = curl_slist_append(h, "Authorization: Bearer " TOKEN);
        if (ctype) {
                ct = sw_xasprintf("Content-Type: %s", ctype);
                h = curl_slist_append(h, ct);
        }
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        if (body)
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        if (timeout_ms)
                curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_cleanup(c);
        curl_slist_free_all(h);
        free(url);
        free(ct);
        if (out)
                *out = sw_buf_detach(&b, NULL);
        else
                sw_buf_release(&b);
        return code;
}

static json_t *reqj(long *code, const char *method, const char *path, const char *ctype,
                    const char *body)
{
        char *out = NULL;
        json_t *v;

        *code = req(&out, method, path, ctype, body, true, 10000);
        v = json_loads(out, 0, NULL);
        free(out);
        return v;
}

static const char *S(const json_t *v, const char *a, const char *b)
{
        const json_t *x = json_object_get(v, a);

        if (b)
                x = json_object_get(x, b);
        return json_is_string(x) ? json_string_value(x) : "";
}

static void test_auth_and_discovery(void)
{
        char *out = NULL;
        long code;
        json_t *v;

        CHECK_INT(req(&out, "GET", "/api/v1/namespaces", NULL, NULL, false, 5000), 401);
        free(out);
        CHECK_INT(req(&out, "GET", "/version", NULL, NULL, false, 5000), 200);
        CHECK(strstr(out, "\"minor\":\"32\""));
        free(out);
        v = reqj(&code, "GET", "/apis/apps/v1", NULL, NULL);
        CHECK_INT(code, 200);
        out = json_dumps(v, 0);
        CHECK(strstr(out, "\"name\": \"deployments/scale\""));
        CHECK(strstr(out, "\"group\": \"autoscaling\""));
        CHECK(strstr(out, "\"shortNames\": [\"deploy\"]"));
        free(out);
        json_decref(v);
        v = reqj(&code, "GET", "/openapi/v3", NULL, NULL);
        CHECK_INT(code, 200);
        CHECK(strstr(S(json_object_get(v, "paths"), "apis/apps/v1", "serverRelativeURL"),
                     "/openapi/v3/apis/apps/v1?hash="));
        json_decref(v);
        CHECK_INT(req(&out, "GET", "/openapi/v3/apis/apps/v1", NULL, NULL, true, 5000), 200);
        CHECK(strstr(out, "\"x-kubernetes-group-version-kind\""));
        CHECK(strstr(out, "\"fieldValidation\""));
        free(out);
        CHECK_INT(req(&out, "GET", "/apis/nope/v1/things", NULL, NULL, true, 5000), 404);
        free(out);
}

static void test_conflict_on_stale_version(void)
{
        long code;
        json_t *a = reqj(&code, "POST", "/api/v1/namespaces/default/configmaps", "application/json",
                         "{\"metadata\":{\"name\":\"occ\"},\"data\":{\"k\":\"1\"}}");
        json_t *b, *c;
        char *body;

        CHECK_INT(code, 201);
        json_object_set_new(json_object_get(a, "data"), "k", json_string("2"));
        body = json_dumps(a, 0);
        b = reqj(&code, "PUT", "/api/v1/namespaces/default/configmaps/occ", "application/json",
                 body);
        CHECK_INT(code, 200);
        /* The same body again names a resourceVersion that is no longer current. */
        c = reqj(&code, "PUT", "/api/v1/namespaces/default/configmaps/occ", "application/json",
                 body);
        CHECK_INT(code, 409);
        CHECK_STR(S(c, "reason", NULL), "Conflict");
        CHECK_STR(S(c, "kind", NULL), "Status");
        free(body);
        json_decref(a);
        json_decref(b);
        json_decref(c);
        c = reqj(&code, "POST", "/api/v1/namespaces/default/configmaps", "application/json",
                 "{\"metadata\":{\"name\":\"occ\"}}");
        CHECK_INT(code, 409);
        CHECK_STR(S(c, "reason", NULL), "AlreadyExists");
        json_decref(c);
        c = reqj(&code, "GET", "/api/v1/namespaces/default/configmaps/none", NULL, NULL);
        CHECK_INT(code, 404);
        CHECK_STR(S(c, "message", NULL), "configmaps \"none\" not found");
        json_decref(c);
}

static void test_paging(void)
{
        long code;
        char path[256], *cont = NULL;
        int total = 0, pages = 0;

        for (int i = 0; i < 5; i++) {
                char body[128];
                json_t *v;
                snprintf(body, sizeof(body),
                         "{\"metadata\":{\"name\":\"pg%d\",\"labels\":{"
                         "\"pg\":\"yes\"}}}",
                         i);
                v = reqj(&code, "POST", "/api/v1/namespaces/default/configmaps", "application/json",
                         body);
                CHECK_INT(code, 201);
                json_decref(v);
        }
        do {
                json_t *v;
                snprintf(
                        path, sizeof(path),
                        "/api/v1/namespaces/default/configmaps?limit=2&labelSelector=pg%%3Dyes%s%s",
                        cont ? "&continue=" : "", cont ? cont : "");
                v = reqj(&code, "GET", path, NULL, NULL);
                CHECK_INT(code, 200);
                total += (int)json_array_size(json_object_get(v, "items"));
                free(cont);
                cont = *S(v, "metadata", "continue") ? sw_xstrdup(S(v, "metadata", "continue"))
                                                     : NULL;
                json_decref(v);
                pages++;
        } while (cont && pages < 10);
        CHECK_INT(total, 5);
        CHECK_INT(pages, 3);
        free(cont);
}

static void test_watch_replay_and_expiry(void)
{
        long code;
        json_t *v = reqj(&code, "GET", "/api/v1/namespaces/default/configmaps", NULL, NULL);
        char *rv = sw_xstrdup(S(v, "metadata", "resourceVersion")), path[256], *out = NULL;
        json_t *x;

        json_decref(v);
        x = reqj(&code, "POST", "/api/v1/namespaces/default/configmaps", "application/json",
                 "{\"metadata\":{\"name\":\"w1\",\"labels\":{\"w\":\"1\"}}}");
        json_decref(x);
        x = reqj(&code, "PATCH", "/api/v1/namespaces/default/configmaps/w1",
                 "application/merge-patch+json", "{\"data\":{\"a\":\"b\"}}");
        CHECK_INT(code, 200);
        json_decref(x);
        x = reqj(&code, "POST", "/api/v1/namespaces/default/configmaps", "application/json",
                 "{\"metadata\":{\"name\":\"w2\"}}");
        json_decref(x);
        x = reqj(&code, "DELETE", "/api/v1/namespaces/default/configmaps/w1", NULL, NULL);
        CHECK_INT(code, 200);
        json_decref(x);
        /* Replay from the list's version, filtered by label, ending after timeoutSeconds. */
        snprintf(path, sizeof(path),
                 "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=%s"
                 "&labelSelector=w%%3D1&timeoutSeconds=1",
                 rv);
        CHECK_INT(req(&out, "GET", path, NULL, NULL, true, 5000), 200);
        CHECK(strstr(out, "{\"type\":\"ADDED\",\"object\":{"));
        CHECK(strstr(out, "{\"type\":\"MODIFIED\",\"object\":{"));
        CHECK(strstr(out, "{\"type\":\"DELETED\",\"object\":{"));
        CHECK(!strstr(out, "\"w2\""));
        free(out);
        /* A label change moves an object into or out of a selector's view. */
        v = reqj(&code, "GET", "/api/v1/namespaces/default/configmaps?limit=1", NULL, NULL);
        snprintf(path, sizeof(path),
                 "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=%s"
                 "&labelSelector=sel%%3Din&timeoutSeconds=1",
                 S(v, "metadata", "resourceVersion"));
        json_decref(v);
        x = reqj(&code, "PATCH", "/api/v1/namespaces/default/configmaps/w2",
                 "application/merge-patch+json", "{\"metadata\":{\"labels\":{\"sel\":\"in\"}}}");
        json_decref(x);
        x = reqj(&code, "PATCH", "/api/v1/namespaces/default/configmaps/w2",
                 "application/merge-patch+json", "{\"metadata\":{\"labels\":{\"sel\":\"out\"}}}");
        json_decref(x);
        CHECK_INT(req(&out, "GET", path, NULL, NULL, true, 5000), 200);
        CHECK(strstr(out, "{\"type\":\"ADDED\",\"object\":{"));
        CHECK(strstr(out, "{\"type\":\"DELETED\",\"object\":{"));
        CHECK(!strstr(out, "MODIFIED"));
        free(out);
        /* Push the log past its window of 64 revisions: the old version is gone. */
        x = reqj(&code, "POST", "/api/v1/namespaces/default/configmaps", "application/json",
                 "{\"metadata\":{\"name\":\"churn\"}}");
        json_decref(x);
        for (int i = 0; i < 140; i++) {
                char body[64];
                snprintf(body, sizeof(body), "{\"data\":{\"n\":\"%d\"}}", i);
                x = reqj(&code, "PATCH", "/api/v1/namespaces/default/configmaps/churn",
                         "application/merge-patch+json", body);
                json_decref(x);
        }
        CHECK_INT(req(&out, "GET", path, NULL, NULL, true, 5000), 200);
        CHECK(strstr(out, "\"type\":\"ERROR\""));
        CHECK(strstr(out, "\"reason\":\"Expired\""));
        CHECK(strstr(out, "\"code\":410"));
        free(out);
        /*
         * Bookmarks carry the current version: a watch that saw nothing ends
         * with one, so that its client resumes from there, not from a
         * version compaction may have removed meanwhile.
         */
        v = reqj(&code, "GET", "/api/v1/namespaces/default/configmaps?limit=1", NULL, NULL);
        snprintf(path, sizeof(path),
                 "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=%s"
                 "&allowWatchBookmarks=true&timeoutSeconds=1",
                 S(v, "metadata", "resourceVersion"));
        {
                char want[160];
                snprintf(want, sizeof(want),
                         "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ConfigMap\","
                         "\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"%s\"}}}\n",
                         S(v, "metadata", "resourceVersion"));
                CHECK_INT(req(&out, "GET", path, NULL, NULL, true, 5000), 200);
                CHECK_STR(out, want);
        }
        json_decref(v);
        free(out);
        free(rv);
}

static void test_json_patch_and_status(void)
{
        long code;
        json_t *v;

        v = reqj(&code, "POST", "/apis/apps/v1/namespaces/default/deployments", "application/json",
                 "{\"metadata\":{\"name\":\"jp\"},\"spec\":{\"selector\":{\"matchLabels\":{\"a\":"
                 "\"b\"}},\"template\":{\"metadata\":{\"labels\":{\"a\":\"b\"}},\"spec\":{"
                 "\"containers\":[{\"name\":\"c\",\"image\":\"busybox\"}]}}},\"status\":{"
                 "\"replicas\":9}}");
        CHECK_INT(code, 201);
        /* Status is not taken from a create of the main resource. */
        CHECK(json_object_get(v, "status") == NULL);
        json_decref(v);
        v = reqj(&code, "PATCH", "/apis/apps/v1/namespaces/default/deployments/jp",
                 "application/json-patch+json",
                 "[{\"op\":\"replace\",\"path\":\"/spec/replicas\",\"value\":3},"
                 "{\"op\":\"add\",\"path\":\"/metadata/labels\",\"value\":{\"x\":\"y\"}}]");
        CHECK_INT(code, 200);
        CHECK_INT(json_integer_value(json_object_get(json_object_get(v, "spec"), "replicas")), 3);
        CHECK_STR(S(json_object_get(v, "metadata"), "labels", "x"), "y");
        json_decref(v);
        v = reqj(&code, "PATCH", "/apis/apps/v1/namespaces/default/deployments/jp/status",
                 "application/merge-patch+json",
                 "{\"spec\":{\"replicas\":7},\"status\":{\"replicas\":3,\"readyReplicas\":2}}");
        CHECK_INT(code, 200);
        CHECK_INT(
                json_integer_value(json_object_get(json_object_get(v, "status"), "readyReplicas")),
                2);
        /* The status subresource does not change spec. */
        CHECK_INT(json_integer_value(json_object_get(json_object_get(v, "spec"), "replicas")), 3);
        json_decref(v);
        v = reqj(&code, "GET", "/apis/apps/v1/namespaces/default/deployments/jp/scale", NULL, NULL);
        CHECK_INT(code, 200);
        CHECK_STR(S(v, "kind", NULL), "Scale");
        CHECK_STR(S(v, "apiVersion", NULL), "autoscaling/v1");
        CHECK_STR(S(v, "status", "selector"), "a=b");
        json_decref(v);
        v = reqj(&code, "PATCH", "/apis/apps/v1/namespaces/default/deployments/jp",
                 "application/json-patch+json",
                 "[{\"op\":\"test\",\"path\":\"/spec/replicas\",\"value\":99}]");
        CHECK_INT(code, 422);
        json_decref(v);
        v = reqj(&code, "PATCH", "/apis/apps/v1/namespaces/default/deployments/jp", "text/plain",
                 "x");
        CHECK_INT(code, 415);
        json_decref(v);
}

static void test_validation_errors(void)
{
        long code;
        json_t *v = reqj(
                &code, "POST", "/apis/apps/v1/namespaces/default/deployments", "application/json",
                "{\"metadata\":{\"name\":\"bad\"},\"spec\":{\"selector\":{\"matchLabels\":{"
                "\"a\":\"b\"}},\"template\":{\"metadata\":{\"labels\":{\"a\":\"c\"}},"
                "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"x\"}]}}}}");

        CHECK_INT(code, 422);
        CHECK_STR(S(v, "reason", NULL), "Invalid");
        CHECK(strstr(S(v, "message", NULL), "Deployment.apps \"bad\" is invalid"));
        CHECK_STR(S(json_array_get(json_object_get(json_object_get(v, "details"), "causes"), 0),
                    "field", NULL),
                  "spec.template.metadata.labels");
        json_decref(v);
        v = reqj(&code, "POST", "/api/v1/namespaces/default/configmaps", "application/json",
                 "{\"metadata\":{\"name\":\"Bad_Name\"}}");
        CHECK_INT(code, 422);
        json_decref(v);
        v = reqj(&code, "POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
                 "application/json", "{\"metadata\":{\"name\":\"dup\"},\"data\":{},\"data\":{}}");
        CHECK_INT(code, 400);
        CHECK(strstr(S(v, "message", NULL), "strict decoding error"));
        json_decref(v);
        v = reqj(&code, "POST", "/api/v1/namespaces/default/pods", "application/json",
                 "{\"metadata\":{\"name\":\"nopod\"},\"spec\":{\"containers\":[]}}");
        CHECK_INT(code, 422);
        CHECK_STR(S(json_array_get(json_object_get(json_object_get(v, "details"), "causes"), 0),
                    "field", NULL),
                  "spec.containers");
        json_decref(v);
}

static void test_binding(void)
{
        long code;
        json_t *v =
                reqj(&code, "POST", "/api/v1/namespaces/default/pods", "application/json",
                     "{\"metadata\":{\"name\":\"bp\"},\"spec\":{\"containers\":[{\"name\":\"c\","
                     "\"image\":\"busybox\"}]}}");

        CHECK_INT(code, 201);
        CHECK_STR(S(v, "status", "phase"), "Pending");
        json_decref(v);
        v = reqj(&code, "POST", "/api/v1/namespaces/default/pods/bp/binding", "application/json",
                 "{\"apiVersion\":\"v1\",\"kind\":\"Binding\",\"metadata\":{\"name\":\"bp\"},"
                 "\"target\":{\"kind\":\"Node\",\"name\":\"n1\"}}");
        CHECK_INT(code, 201);
        json_decref(v);
        v = reqj(&code, "GET", "/api/v1/namespaces/default/pods/bp", NULL, NULL);
        CHECK_STR(S(v, "spec", "nodeName"), "n1");
        json_decref(v);
        v = reqj(&code, "POST", "/api/v1/namespaces/default/pods/bp/binding", "application/json",
                 "{\"target\":{\"kind\":\"Node\",\"name\":\"n2\"}}");
        CHECK_INT(code, 409);
        json_decref(v);
        v = reqj(&code, "GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1", NULL, NULL);
        CHECK_INT(json_array_size(json_object_get(v, "items")), 1);
        json_decref(v);
        /* A pod on a node is deleted gracefully: it stays until its node confirms. */
        v = reqj(&code, "DELETE", "/api/v1/namespaces/default/pods/bp", NULL, NULL);
        CHECK_INT(code, 202);
        CHECK(*S(v, "metadata", "deletionTimestamp"));
        CHECK_INT(json_integer_value(json_object_get(json_object_get(v, "metadata"),
                                                     "deletionGracePeriodSeconds")),
                  30);
        json_decref(v);
        v = reqj(&code, "PATCH", "/api/v1/namespaces/default/pods/bp/status",
                 "application/merge-patch+json", "{\"status\":{\"phase\":\"Running\"}}");
        CHECK_INT(code, 200);
        json_decref(v);
        v = reqj(&code, "GET", "/api/v1/namespaces/default/pods/bp", NULL, NULL);
        CHECK_INT(code, 200);
        json_decref(v);
        v = reqj(&code, "DELETE", "/api/v1/namespaces/default/pods/bp", "application/json",
                 "{\"gracePeriodSeconds\":0}");
        CHECK_INT(code, 200);
        json_decref(v);
        v = reqj(&code, "GET", "/api/v1/namespaces/default/pods/bp", NULL, NULL);
        CHECK_INT(code, 404);
        json_decref(v);
}

static void test_services(void)
{
        long code;
        json_t *a = reqj(&code, "POST", "/api/v1/namespaces/default/services", "application/json",
                         "{\"metadata\":{\"name\":\"s1\"},\"spec\":{\"ports\":[{\"port\":80}]}}");
        json_t *b = reqj(&code, "POST", "/api/v1/namespaces/default/services", "application/json",
                         "{\"metadata\":{\"name\":\"s2\"},\"spec\":{\"type\":\"NodePort\","
                         "\"ports\":[{\"port\":80}]}}");
        json_t *c;
        json_int_t np;

        CHECK_INT(code, 201);
        CHECK(strncmp(S(a, "spec", "clusterIP"), "127.77.", 7) == 0);
        CHECK(strcmp(S(a, "spec", "clusterIP"), S(b, "spec", "clusterIP")) != 0);
        np = json_integer_value(json_object_get(
                json_array_get(json_object_get(json_object_get(b, "spec"), "ports"), 0),
                "nodePort"));
        CHECK(np >= 30000 && np <= 32767);
        CHECK_INT(json_integer_value(json_object_get(
                          json_array_get(json_object_get(json_object_get(a, "spec"), "ports"), 0),
                          "targetPort")),
                  80);
        /* clusterIP is immutable. */
        c = reqj(&code, "PATCH", "/api/v1/namespaces/default/services/s1",
                 "application/merge-patch+json", "{\"spec\":{\"clusterIP\":\"127.77.9.9\"}}");
        CHECK_INT(code, 422);
        json_decref(a);
        json_decref(b);
        json_decref(c);
}

static void test_cascade_and_deletecollection(void)
{
        long code;
        json_t *d = reqj(&code, "POST", "/api/v1/namespaces/default/configmaps", "application/json",
                         "{\"metadata\":{\"name\":\"owner\"}}");
        char body[512];
        json_t *v;

        snprintf(body, sizeof(body),
                 "{\"metadata\":{\"name\":\"child\",\"labels\":{\"del\":\"me\"},"
                 "\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":"
                 "\"owner\",\"uid\":\"%s\"}]}}",
                 S(d, "metadata", "uid"));
        v = reqj(&code, "POST", "/api/v1/namespaces/default/configmaps", "application/json", body);
        CHECK_INT(code, 201);
        json_decref(v);
        v = reqj(&code, "DELETE", "/api/v1/namespaces/default/configmaps/owner", "application/json",
                 "{\"propagationPolicy\":\"Background\"}");
        CHECK_INT(code, 200);
        json_decref(v);
        v = reqj(&code, "GET", "/api/v1/namespaces/default/configmaps/child", NULL, NULL);
        CHECK_INT(code, 404);
        json_decref(v);
        json_decref(d);
        v = reqj(&code, "DELETE", "/api/v1/namespaces/default/configmaps?labelSelector=pg%3Dyes",
                 NULL, NULL);
        CHECK_INT(code, 200);
        CHECK_INT(json_array_size(json_object_get(v, "items")), 5);
        json_decref(v);
        v = reqj(&code, "GET", "/api/v1/namespaces/default/configmaps?labelSelector=pg%3Dyes", NULL,
                 NULL);
        CHECK_INT(json_array_size(json_object_get(v, "items")), 0);
        json_decref(v);
}

static void test_terminating_namespace(void)
{
        long code;
        json_t *v =
                reqj(&code, "POST", "/api/v1/namespaces", "application/json",
                     "{\"metadata\":{\"name\":\"held\",\"finalizers\":[\"example.com/hold\"]}}");

        CHECK_INT(code, 201);
        json_decref(v);
        v = reqj(&code, "POST", "/api/v1/namespaces/held/configmaps", "application/json",
                 "{\"metadata\":{\"name\":\"inside\"}}");
        CHECK_INT(code, 201);
        json_decref(v);
        v = reqj(&code, "DELETE", "/api/v1/namespaces/held", NULL, NULL);
        CHECK_INT(code, 202);
        CHECK_STR(S(v, "status", "phase"), "Terminating");
        json_decref(v);
        /* Its contents are gone and nothing new may be created in it. */
        v = reqj(&code, "GET", "/api/v1/namespaces/held/configmaps/inside", NULL, NULL);
        CHECK_INT(code, 404);
        json_decref(v);
        v = reqj(&code, "POST", "/api/v1/namespaces/held/pods", "application/json",
                 "{\"metadata\":{\"name\":\"late\"},\"spec\":{\"containers\":[{\"name\":"
                 "\"c\",\"image\":\"busybox\"}]}}");
        CHECK_INT(code, 403);
        CHECK_STR(S(v, "reason", NULL), "Forbidden");
        CHECK(strstr(S(v, "message", NULL), "because it is being terminated"));
        json_decref(v);
        /* Removing the finalizer completes the deletion. */
        v = reqj(&code, "PATCH", "/api/v1/namespaces/held", "application/merge-patch+json",
                 "{\"metadata\":{\"finalizers\":null}}");
        CHECK_INT(code, 200);
        json_decref(v);
        v = reqj(&code, "GET", "/api/v1/namespaces/held", NULL, NULL);
        CHECK_INT(code, 404);
        json_decref(v);
}

static void test_server_side_apply_create(void)
{
        long code;
        json_t *v = reqj(&code, "PATCH",
                         "/api/v1/namespaces/default/configmaps/ssa?fieldManager=tester",
                         "application/apply-patch+yaml",
                         "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
                         "\"ssa\"},\"data\":{\"a\":\"1\",\"b\":\"2\"}}");

        CHECK_INT(code, 201);
        json_decref(v);
        /* Dropping a field from the applied configuration removes it. */
        v = reqj(&code, "PATCH", "/api/v1/namespaces/default/configmaps/ssa?fieldManager=tester",
                 "application/apply-patch+yaml",
                 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"ssa\"},"
                 "\"data\":{\"a\":\"1\"}}");
        CHECK_INT(code, 200);
        CHECK(json_object_get(json_object_get(v, "data"), "b") == NULL);
        json_decref(v);
        /* Another manager setting a different value conflicts. */
        v = reqj(&code, "PATCH", "/api/v1/namespaces/default/configmaps/ssa?fieldManager=other",
                 "application/apply-patch+yaml",
                 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"ssa\"},"
                 "\"data\":{\"a\":\"9\"}}");
        CHECK_INT(code, 409);
        CHECK(strstr(S(v, "message", NULL), "conflict with \"tester\""));
        json_decref(v);
        v = reqj(&code, "PATCH",
                 "/api/v1/namespaces/default/configmaps/ssa?fieldManager=other&force=true",
                 "application/apply-patch+yaml",
                 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"ssa\"},"
                 "\"data\":{\"a\":\"9\"}}");
        CHECK_INT(code, 200);
        CHECK_STR(S(v, "data", "a"), "9");
        json_decref(v);
        v = reqj(&code, "PATCH", "/api/v1/namespaces/default/configmaps/ssa",
                 "application/apply-patch+yaml", "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\"}");
        CHECK_INT(code, 400);
        json_decref(v);
        /* Apply configurations may be YAML. */
        v = reqj(&code, "PATCH", "/api/v1/namespaces/default/configmaps/yml?fieldManager=tester",
                 "application/apply-patch+yaml",
                 "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yml\ndata:\n  n: \"1\"\n"
                 "  s: text\n");
        CHECK_INT(code, 201);
        CHECK_STR(S(v, "data", "n"), "1");
        CHECK_STR(S(v, "data", "s"), "text");
        json_decref(v);
        v = reqj(&code, "POST", "/api/v1/namespaces/default/configmaps", "application/yaml",
                 "metadata: {name: yml2}\ndata: {a: b}\n");
        CHECK_INT(code, 201);
        json_decref(v);
        v = reqj(&code, "POST", "/api/v1/namespaces/default/configmaps", "application/yaml",
                 "metadata: [unclosed\n");
        CHECK_INT(code, 400);
        json_decref(v);
}

int main(void)
{
        struct orch_api_options o = ORCH_API_OPTIONS_INIT;
        struct sw_err err = SW_ERR_INIT;
        char *db = sw_xasprintf("%s/api.db", t_tmpdir());

        curl_global_init(CURL_GLOBAL_DEFAULT);
        o.listen = "127.0.0.1:0";
        o.db_path = db;
        o.token = TOKEN;
        o.event_window = 64;
        if (orch_api_start(&api, &o, &err) != 0) {
                t_fail(__FILE__, __LINE__, "start: %s", err.msg);
        } else {
                snprintf(base, sizeof(base), "http://127.0.0.1:%u", orch_api_port(api));
                T_RUN(test_auth_and_discovery);
                T_RUN(test_conflict_on_stale_version);
                T_RUN(test_paging);
                T_RUN(test_watch_replay_and_expiry);
                T_RUN(test_json_patch_and_status);
                T_RUN(test_validation_errors);
                T_RUN(test_binding);
                T_RUN(test_services);
                T_RUN(test_cascade_and_deletecollection);
                T_RUN(test_terminating_namespace);
                T_RUN(test_server_side_apply_create);
        }
        orch_api_stop(api);
        free(db);
        curl_global_cleanup();
        return t_done();
}
