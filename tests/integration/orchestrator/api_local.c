/*
 * api_local.c - the API server's in-process transport (orch_api_local)
 * against its HTTP one, on the same server: the same replies and the same
 * errors for creates, gets, lists with selectors (the query decoded as
 * libmicrohttpd does), patches and the binding subresource; a watch that
 * replays, follows writes made over HTTP and stops when told; Events the
 * controllers' recorder would send; and what only HTTP serves (pods/log)
 * refused with a clear error.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/json.h"
#include "common/mem.h"
#include "orchestrator/client/kube.h"
#include "orchestrator/orchestrator.h"
#include "tests/harness/t.h"

#define TOKEN "test-token-0123456789abcdef"

static struct orch_kube *local_kc, *http_kc;

static json_t *cm(const char *name, const char *tier)
{
        return json_pack("{s:s,s:s,s:{s:s,s:{s:s}},s:{s:s}}", "apiVersion", "v1", "kind",
                         "ConfigMap", "metadata", "name", name, "labels", "tier", tier, "data", "k",
                         "v");
}

static void test_requests_match_http(void)
{
        struct sw_err err = SW_ERR_INIT;
        json_t *a = NULL, *b = NULL, *obj = cm("one", "web");
        long status = 0;

        CHECK_OK(orch_kube_request(&a, &status, local_kc, "POST",
                                   "/api/v1/namespaces/default/configmaps", NULL, obj, &err),
                 &err);
        CHECK_INT(status, 201);
        CHECK_STR(sw_json_str(json_object_get(a, "metadata"), "name", ""), "one");
        CHECK(*sw_json_str(json_object_get(a, "metadata"), "uid", "") != '\0');
        CHECK_OK(orch_kube_get(&b, http_kc, "/api/v1/namespaces/default/configmaps/one", &err),
                 &err);
        CHECK(json_equal(a, b));
        json_decref(a);
        json_decref(b);
        a = b = NULL;

        /* The same object again: the same 409, in the same words. */
        CHECK_INT(orch_kube_request(NULL, &status, local_kc, "POST",
                                    "/api/v1/namespaces/default/configmaps", NULL, obj, &err),
                  SW_ECONFLICT);
        CHECK_INT(status, 409);
        CHECK(strstr(err.msg, "configmaps \"one\" already exists") != NULL);
        sw_err_clear(&err);
        CHECK_INT(orch_kube_get(&a, local_kc, "/api/v1/namespaces/default/configmaps/nope", &err),
                  SW_ENOTFOUND);
        CHECK(strstr(err.msg, "configmaps \"nope\" not found") != NULL);
        sw_err_clear(&err);
        json_decref(obj);

        /* A selector in the query, escaped as clients send it. */
        obj = cm("two", "db");
        CHECK_OK(orch_kube_request(NULL, NULL, http_kc, "POST",
                                   "/api/v1/namespaces/default/configmaps", NULL, obj, &err),
                 &err);
        json_decref(obj);
        CHECK_OK(orch_kube_get(&a, local_kc,
                               "/api/v1/namespaces/default/configmaps?labelSelector=tier%3Ddb",
                               &err),
                 &err);
        CHECK_INT(json_array_size(json_object_get(a, "items")), 1);
        CHECK_STR(sw_json_str(json_object_get(json_array_get(json_object_get(a, "items"), 0),
                                              "metadata"),
                              "name", ""),
                  "two");
        json_decref(a);

        /* A merge patch, with its content type. */
        obj = json_pack("{s:{s:s}}", "data", "k", "patched");
        CHECK_OK(orch_kube_request(&a, NULL, local_kc, "PATCH",
                                   "/api/v1/namespaces/default/configmaps/two",
                                   "application/merge-patch+json", obj, &err),
                 &err);
        CHECK_STR(sw_json_str(json_object_get(a, "data"), "k", ""), "patched");
        json_decref(a);
        json_decref(obj);

        /* A malformed object is refused as over HTTP: 422 with the field named. */
        obj = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata",
                        "name", "Bad_Name");
        CHECK_INT(orch_kube_request(NULL, &status, local_kc, "POST",
                                    "/api/v1/namespaces/default/configmaps", NULL, obj, &err),
                  SW_EINVAL);
        CHECK_INT(status, 422);
        CHECK(strstr(err.msg, "Bad_Name") != NULL);
        sw_err_clear(&err);
        json_decref(obj);
}

static void test_binding(void)
{
        struct sw_err err = SW_ERR_INIT;
        json_t *pod = json_pack("{s:s,s:s,s:{s:s},s:{s:[{s:s,s:s}]}}", "apiVersion", "v1", "kind",
                                "Pod", "metadata", "name", "p", "spec", "containers", "name", "c",
                                "image", "busybox");
        json_t *b =
                json_pack("{s:s,s:s,s:{s:s},s:{s:s,s:s}}", "apiVersion", "v1", "kind", "Binding",
                          "metadata", "name", "p", "target", "kind", "Node", "name", "n1");
        json_t *got = NULL;

        CHECK_OK(orch_kube_request(NULL, NULL, local_kc, "POST", "/api/v1/namespaces/default/pods",
                                   NULL, pod, &err),
                 &err);
        CHECK_OK(orch_kube_request(NULL, NULL, local_kc, "POST",
                                   "/api/v1/namespaces/default/pods/p/binding", NULL, b, &err),
                 &err);
        CHECK_OK(orch_kube_get(&got, http_kc, "/api/v1/namespaces/default/pods/p", &err), &err);
        CHECK_STR(sw_json_str(json_object_get(got, "spec"), "nodeName", ""), "n1");
        {
                /* As the real binding: PodScheduled=True. */
                const json_t *conds = json_object_get(json_object_get(got, "status"), "conditions");
                CHECK_INT(json_array_size(conds), 1);
                CHECK_STR(sw_json_str(json_array_get(conds, 0), "type", ""), "PodScheduled");
                CHECK_STR(sw_json_str(json_array_get(conds, 0), "status", ""), "True");
        }
        json_decref(got);
        /* Bound already: 409, as the real server says it. */
        CHECK_INT(orch_kube_request(NULL, NULL, local_kc, "POST",
                                    "/api/v1/namespaces/default/pods/p/binding", NULL, b, &err),
                  SW_ECONFLICT);
        CHECK(strstr(err.msg, "already assigned to node \"n1\"") != NULL);
        sw_err_clear(&err);
        /* Logs are streamed over HTTP only. */
        {
                char *text = NULL;
                CHECK_INT(orch_kube_get_text(&text, local_kc,
                                             "/api/v1/namespaces/default/pods/p/log", &err),
                          SW_EINVAL);
                CHECK(strstr(err.msg, "over HTTP only") != NULL);
                sw_err_clear(&err);
                free(text);
        }
        json_decref(pod);
        json_decref(b);
}

/* The QoS class of a pod whose one container has `resources`; requests default to limits. */
static void check_qos(const char *name, const char *resources, const char *want,
                      const char *want_cpu_request)
{
        struct sw_err err = SW_ERR_INIT;
        json_t *pod =
                json_pack("{s:s,s:s,s:{s:s},s:{s:[{s:s,s:s,s:o}]}}", "apiVersion", "v1", "kind",
                          "Pod", "metadata", "name", name, "spec", "containers", "name", "c",
                          "image", "busybox", "resources", json_loads(resources, 0, NULL));
        json_t *got = NULL;
        const json_t *c, *requests;
        char *path = sw_xasprintf("/api/v1/namespaces/default/pods/%s", name);

        CHECK_OK(orch_kube_request(NULL, NULL, local_kc, "POST", "/api/v1/namespaces/default/pods",
                                   NULL, pod, &err),
                 &err);
        CHECK_OK(orch_kube_get(&got, http_kc, path, &err), &err);
        CHECK_STR(sw_json_str(json_object_get(got, "status"), "qosClass", ""), want);
        c = json_array_get(json_object_get(json_object_get(got, "spec"), "containers"), 0);
        requests = json_object_get(json_object_get(c, "resources"), "requests");
        CHECK_STR(sw_json_str(requests, "cpu", ""), want_cpu_request);
        json_decref(got);
        json_decref(pod);
        free(path);
}

static void test_qos_class(void)
{
        check_qos("qos-none", "{}", "BestEffort", "");
        check_qos("qos-requests", "{\"requests\":{\"cpu\":\"100m\"}}", "Burstable", "100m");
        check_qos("qos-limits", "{\"limits\":{\"cpu\":\"1\",\"memory\":\"64Mi\"}}", "Guaranteed",
                  "1");
        check_qos("qos-equal",
                  "{\"limits\":{\"cpu\":\"1\",\"memory\":\"64Mi\"},"
                  "\"requests\":{\"cpu\":\"1000m\",\"memory\":\"64Mi\"}}",
                  "Guaranteed", "1000m");
        check_qos("qos-lower",
                  "{\"limits\":{\"cpu\":\"1\",\"memory\":\"64Mi\"},"
                  "\"requests\":{\"cpu\":\"500m\"}}",
                  "Burstable", "500m");
        check_qos("qos-cpu-only", "{\"limits\":{\"cpu\":\"1\"}}", "Burstable", "1");
}

struct seen {
        json_t *events; /* ["TYPE name", ...] */
        int stop_after;
};

static int on_event(void *arg, const char *type, const json_t *obj)
{
        struct seen *s = arg;

        if (strcmp(type, "BOOKMARK") == 0)
                return 0;
        json_array_append_new(
                s->events, json_sprintf("%s %s", type,
                                        sw_json_str(json_object_get(obj, "metadata"), "name", "")));
        return (int)json_array_size(s->events) >= s->stop_after;
}

struct writer {
        int64_t delay_ms;
};

static void *write_later(void *arg)
{
        struct writer *w = arg;
        struct sw_err err = SW_ERR_INIT;
        json_t *obj = cm("three", "web");

        sw_sleep_ms(w->delay_ms);
        orch_kube_request(NULL, NULL, http_kc, "POST", "/api/v1/namespaces/default/configmaps",
                          NULL, obj, &err);
        json_decref(obj);
        return NULL;
}

static void test_watch(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct seen s = {json_array(), 2};
        struct writer w = {200};
        pthread_t th;
        char *rv = NULL;
        int64_t t0 = sw_mono_ms();

        /* From "0": the web-tier object as ADDED, then one created over HTTP meanwhile. */
        CHECK(pthread_create(&th, NULL, write_later, &w) == 0);
        CHECK_OK(orch_kube_watch(&rv, local_kc, "/api/v1/namespaces/default/configmaps",
                                 "labelSelector=tier%3Dweb", "0", 10000, on_event, &s, &err),
                 &err);
        pthread_join(th, NULL);
        CHECK(sw_mono_ms() - t0 < 5000); /* stopped by on_event, not by the timeout */
        CHECK_INT(json_array_size(s.events), 2);
        CHECK_STR(json_string_value(json_array_get(s.events, 0)), "ADDED one");
        CHECK_STR(json_string_value(json_array_get(s.events, 1)), "ADDED three");
        CHECK(rv && atoll(rv) > 0);
        json_decref(s.events);

        /* Resuming from that version: nothing new, so the watch ends at its timeout. */
        s.events = json_array();
        t0 = sw_mono_ms();
        CHECK_OK(orch_kube_watch(NULL, local_kc, "/api/v1/namespaces/default/configmaps", NULL, rv,
                                 1000, on_event, &s, &err),
                 &err);
        CHECK_INT(json_array_size(s.events), 0);
        CHECK(sw_mono_ms() - t0 >= 900);
        json_decref(s.events);
        free(rv);

        /* A version that is no number: 400 as over HTTP. */
        s.events = json_array();
        CHECK_INT(orch_kube_watch(NULL, local_kc, "/api/v1/namespaces/default/configmaps", NULL,
                                  "x1", 1000, on_event, &s, &err),
                  SW_EINVAL);
        sw_err_clear(&err);
        json_decref(s.events);
}

int main(void)
{
        struct orch_api_options o = ORCH_API_OPTIONS_INIT;
        struct orch_kube_options ko = {0};
        struct orch_kube_local local;
        struct sw_err err = SW_ERR_INIT;
        struct orch_api *api = NULL;
        char *db = sw_xasprintf("%s/api.db", t_tmpdir()), base[64];

        o.listen = "127.0.0.1:0";
        o.db_path = db;
        o.token = TOKEN;
        if (orch_api_start(&api, &o, &err) != 0) {
                t_fail(__FILE__, __LINE__, "start: %s", err.msg);
        } else {
                snprintf(base, sizeof(base), "http://127.0.0.1:%u", orch_api_port(api));
                ko.server = base;
                ko.token = TOKEN;
                orch_api_local(&local, api);
                orch_kube_new_local(&local_kc, &local);
                if (orch_kube_new(&http_kc, &ko, &err) != 0)
                        t_fail(__FILE__, __LINE__, "client: %s", err.msg);
                T_RUN(test_requests_match_http);
                T_RUN(test_binding);
                T_RUN(test_qos_class);
                T_RUN(test_watch);
        }
        orch_kube_free(local_kc);
        orch_kube_free(http_kc);
        orch_api_stop(api);
        free(db);
        return t_done();
}
