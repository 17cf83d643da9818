/*
 * test_render.c - templates filled through libyaml: values keep their types,
 * unset optional values drop their keys, values cannot change the structure,
 * repository overrides apply, and bad templates or values are refused with a
 * message naming the file, line or field.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/config.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/yaml.h"
#include "engine/request.h"
#include "steps/render.h"
#include "tests/harness/engine_fixture.h"
#include "tests/harness/t.h"

#define IMAGE                                                                                      \
        "127.0.0.1:5000/shop/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static json_t *request(const char *json)
{
        json_t *in = NULL, *out = NULL;
        struct sw_err err = SW_ERR_INIT;

        CHECK_OK(sw_json_parse(&in, json, strlen(json), 0, &err), &err);
        CHECK_OK(eng_request_normalize(&out, in, ENG_REQUEST_FIELDS, &err), &err);
        json_decref(in);
        return out;
}

static const json_t *find(const json_t *docs, const char *kind)
{
        const json_t *d;
        size_t i;

        json_array_foreach(docs, i, d)
        {
                if (!strcmp(sw_json_str(d, "kind", ""), kind))
                        return d;
        }
        return NULL;
}

static int render(json_t **docs, const char *req_json, const char *repo_dir, const char *const *env,
                  struct sw_err *err)
{
        struct sw_config cfg;
        struct step_render_input in = {0};
        json_t *req = request(req_json);
        int rc;

        tf_config(&cfg, env);
        in.request = req;
        in.image = IMAGE;
        in.commit = "3f2a9c1d";
        in.job_id = 42;
        in.repo_dir = repo_dir;
        in.exposed_port = 9000;
        rc = step_render_documents(docs, &in, &cfg, err);
        json_decref(req);
        sw_config_release(&cfg);
        return rc;
}

static void test_defaults(void)
{
        json_t *docs = NULL;
        struct sw_err err = SW_ERR_INIT;
        const json_t *dep, *c, *svc, *ing;

        CHECK_OK(render(&docs,
                        "{\"repo\":\"https://git.example/shop.git\",\"name\":\"web\","
                        "\"namespace\":\"shop\",\"replicas\":3,\"cpu\":\"250m\"}",
                        NULL, NULL, &err),
                 &err);
        CHECK_INT(json_array_size(docs), 6);
        CHECK_STR(sw_json_str(json_array_get(docs, 0), "kind", ""), "Namespace");
        dep = find(docs, "Deployment");
        CHECK(dep != NULL);
        CHECK_INT(json_integer_value(json_object_get(json_object_get(dep, "spec"), "replicas")), 3);
        c = json_array_get(
                json_object_get(
                        json_object_get(json_object_get(json_object_get(dep, "spec"), "template"),
                                        "spec"),
                        "containers"),
                0);
        CHECK_STR(sw_json_str(c, "image", ""), IMAGE);
        /* the port comes from the image's EXPOSE; containerPort is a number, PORT a string */
        CHECK(json_is_integer(
                json_object_get(json_array_get(json_object_get(c, "ports"), 0), "containerPort")));
        CHECK_INT(sw_json_int(json_array_get(json_object_get(c, "ports"), 0), "containerPort", 0),
                  9000);
        CHECK_STR(sw_json_str(json_array_get(json_object_get(c, "env"), 0), "value", ""), "9000");
        CHECK_STR(sw_json_str(json_object_get(json_object_get(c, "resources"), "requests"), "cpu",
                              ""),
                  "250m");
        /* no limits were asked for: the keys are gone, the mapping is empty */
        CHECK_INT(json_object_size(json_object_get(json_object_get(c, "resources"), "limits")), 0);
        CHECK_STR(sw_json_str(json_object_get(json_object_get(dep, "metadata"), "annotations"),
                              "slipway.dev/commit", ""),
                  "3f2a9c1d");
        CHECK_STR(sw_json_str(json_object_get(json_object_get(dep, "metadata"), "annotations"),
                              "slipway.dev/job", ""),
                  "42");
        svc = find(docs, "Service");
        CHECK_STR(sw_json_str(json_object_get(svc, "spec"), "type", ""), "ClusterIP");
        ing = find(docs, "Ingress");
        CHECK_STR(sw_json_str(
                          json_array_get(json_object_get(json_object_get(ing, "spec"), "rules"), 0),
                          "host", ""),
                  "web.shop.slipway.local");
        CHECK_STR(sw_json_str(json_object_get(ing, "spec"), "ingressClassName", ""), "slipway");
        /* quotas from the configuration, as strings */
        CHECK_STR(sw_json_str(json_object_get(json_object_get(find(docs, "ResourceQuota"), "spec"),
                                              "hard"),
                              "requests.cpu", ""),
                  "8");
        json_decref(docs);
}

static void test_values_cannot_change_structure(void)
{
        json_t *docs = NULL;
        struct sw_err err = SW_ERR_INIT;
        /* Quotes, braces, colons and '#' are legal in a URL; they must stay one string. */
        const char *repo = "https://git.example/a\\\"b:{c}#d]&x,y";
        char *req = sw_xasprintf("{\"repo\":\"%s\",\"name\":\"web\",\"port\":8080,"
                                 "\"branch\":\"true\"}",
                                 repo);

        CHECK_OK(render(&docs, req, NULL, NULL, &err), &err);
        const json_t *ann = json_object_get(json_object_get(find(docs, "Deployment"), "metadata"),
                                            "annotations");
        CHECK_STR(sw_json_str(ann, "slipway.dev/repository", ""),
                  "https://git.example/a\"b:{c}#d]&x,y");
        /* a branch called "true" stays a string */
        CHECK(json_is_string(json_object_get(ann, "slipway.dev/branch")));
        CHECK_INT(json_array_size(docs), 6);
        json_decref(docs);
        free(req);
}

static void write_file(const char *dir, const char *name, const char *text)
{
        struct sw_err err = SW_ERR_INIT;
        char *path = sw_xasprintf("%s/%s", dir, name);

        CHECK_OK(sw_mkdir_p(dir, 0755, &err), &err);
        CHECK_OK(sw_write_file_atomic(path, text, strlen(text), 0644, &err), &err);
        free(path);
}

static void test_repo_overrides(void)
{
        char *repo = sw_xasprintf("%s/repo", t_tmpdir());
        char *deploy = sw_xasprintf("%s/deploy", repo);
        json_t *docs = NULL;
        struct sw_err err = SW_ERR_INIT;

        /* the repository's own service template and an extra ConfigMap */
        write_file(deploy, "50-service.yaml",
                   "apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\n"
                   "  namespace: ${namespace}\nspec:\n  type: NodePort\n  ports:\n"
                   "    - port: 8080\n      targetPort: ${port}\n");
        write_file(deploy, "70-config.yaml",
                   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}-config\n"
                   "  namespace: ${namespace}\ndata:\n  greeting: \"hello ${name}\"\n"
                   "  price: \"$$5\"\n");
        CHECK_OK(render(&docs, "{\"repo\":\"/srv/git/shop\",\"name\":\"web\"}", repo, NULL, &err),
                 &err);
        CHECK_INT(json_array_size(docs), 7);
        CHECK_STR(sw_json_str(json_object_get(find(docs, "Service"), "spec"), "type", ""),
                  "NodePort");
        CHECK_STR(sw_json_str(json_object_get(find(docs, "ConfigMap"), "data"), "greeting", ""),
                  "hello web");
        CHECK_STR(sw_json_str(json_object_get(find(docs, "ConfigMap"), "data"), "price", ""), "$5");
        json_decref(docs);
        free(repo);
        free(deploy);
}

static void expect_refused(const char *file, const char *text, const char *needle)
{
        static int seq;
        char *repo = sw_xasprintf("%s/bad%d", t_tmpdir(), ++seq);
        char *deploy = sw_xasprintf("%s/deploy", repo);
        json_t *docs = NULL;
        struct sw_err err = SW_ERR_INIT;

        write_file(deploy, file, text);
        if (render(&docs, "{\"repo\":\"/srv/git/shop\",\"name\":\"web\"}", repo, NULL, &err) == 0) {
                t_fail(__FILE__, __LINE__, "%s accepted", file);
                json_decref(docs);
        } else if (!strstr(err.msg, needle)) {
                t_fail(__FILE__, __LINE__, "%s: '%s' lacks '%s'", file, err.msg, needle);
        }
        free(repo);
        free(deploy);
}

static void test_bad_templates(void)
{
        expect_refused("80-broken.yaml", "kind: [unclosed\n", "80-broken.yaml: line");
        expect_refused("80-unknown.yaml",
                       "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${nmae}\n",
                       "unknown variable ${nmae}");
        expect_refused("80-pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n",
                       "kind 'Pod' is not one slipway deploys");
        expect_refused("80-name.yaml",
                       "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n"
                       "  namespace: default\n",
                       "ConfigMap 'Bad_Name': metadata.name");
        expect_refused("80-alias.yaml",
                       "apiVersion: v1\nkind: ConfigMap\nmetadata: &m\n  name: x\nother: *m\n",
                       "aliases");
        expect_refused("80-key.yaml", "apiVersion: v1\n${name}: 1\n", "not allowed in keys");
        expect_refused("40-deployment.yaml",
                       "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ${name}\n"
                       "  namespace: ${namespace}\nspec:\n  template:\n    spec:\n"
                       "      containers:\n        - name: ${name}\n          image: ${image}\n"
                       "          resources:\n            requests:\n              cpu: lots\n",
                       "resources.requests.cpu");
        expect_refused("80-partial.yaml",
                       "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x-${cpu_limit}\n",
                       "${cpu_limit} is not set");
}

static void test_bad_config_quantity(void)
{
        static const char *const env[] = {"SLIPWAY_QUOTA_CPU=lots", NULL};
        json_t *docs = NULL;
        struct sw_err err = SW_ERR_INIT;

        CHECK(render(&docs, "{\"repo\":\"/srv/git/shop\",\"name\":\"web\"}", NULL, env, &err) != 0);
        CHECK(strstr(err.msg, "requests.cpu") != NULL);
}

static void test_yaml_round_trip(void)
{
        const char *text = "a: 1\nb: \"1\"\nc: true\nd: 'true'\ne: ~\nf: 1.5\ng: !!str 7\n"
                           "h: [x, 2]\ni: {j: k}\n---\n---\nk: 0x1f\n";
        json_t *docs = NULL, *again = NULL;
        struct sw_err err = SW_ERR_INIT;
        char *out = NULL;

        CHECK_OK(sw_yaml_load(&docs, text, strlen(text), "t", &err), &err);
        CHECK_INT(json_array_size(docs), 2);
        const json_t *d = json_array_get(docs, 0);
        CHECK(json_is_integer(json_object_get(d, "a")));
        CHECK(json_is_string(json_object_get(d, "b")));
        CHECK(json_is_true(json_object_get(d, "c")));
        CHECK(json_is_string(json_object_get(d, "d")));
        CHECK(json_is_null(json_object_get(d, "e")));
        CHECK(json_is_real(json_object_get(d, "f")));
        CHECK(json_is_string(json_object_get(d, "g")));
        CHECK_INT(sw_json_int(json_array_get(docs, 1), "k", 0), 31);
        CHECK_OK(sw_yaml_dump(&out, docs, &err), &err);
        CHECK_OK(sw_yaml_load(&again, out, strlen(out), "t", &err), &err);
        CHECK(json_equal(docs, again));
        json_decref(docs);
        json_decref(again);
        free(out);

        /* depth bombs and duplicate keys are refused */
        struct sw_buf deep = SW_BUF_INIT;
        for (int i = 0; i < 100; i++)
                sw_buf_puts(&deep, "[", &err);
        CHECK_INT(sw_yaml_load(&docs, sw_buf_str(&deep), deep.len, "deep", &err), SW_ETOOBIG);
        sw_buf_release(&deep);
        sw_err_clear(&err);
        CHECK_INT(sw_yaml_load(&docs, "a: 1\na: 2\n", 10, "dup", &err), SW_EINVAL);
        CHECK(strstr(err.msg, "duplicate key 'a'") != NULL);
}

int main(void)
{
        T_RUN(test_defaults);
        T_RUN(test_values_cannot_change_structure);
        T_RUN(test_repo_overrides);
        T_RUN(test_bad_templates);
        T_RUN(test_bad_config_quantity);
        T_RUN(test_yaml_round_trip);
        return t_done();
}
