/*
 * yaml.c - YAML request bodies to JSON: scalar typing, nesting, flow style,
 * and the inputs that are refused.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "orchestrator/orch_int.h"
#include "tests/harness/t.h"

static void yaml_case(const char *yaml, const char *want_json, int line)
{
        json_t *got = NULL, *want = json_loads(want_json, 0, NULL);
        struct sw_err err = SW_ERR_INIT;

        if (orch_yaml_to_json(&got, yaml, strlen(yaml), &err) != 0) {
                t_fail(__FILE__, line, "yaml failed: %s", err.msg);
        } else if (!json_equal(got, want)) {
                char *text = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
                t_fail(__FILE__, line, "got %s", text);
                free(text);
        }
        json_decref(got);
        json_decref(want);
}

static int yaml_fails(const char *yaml)
{
        json_t *got = NULL;
        struct sw_err err = SW_ERR_INIT;
        int rc = orch_yaml_to_json(&got, yaml, strlen(yaml), &err);

        json_decref(got);
        return rc;
}

static void test_manifest(void)
{
        yaml_case("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
                  "  labels: {app: web}\nspec:\n  replicas: 2\n  paused: false\n"
                  "  template:\n    spec:\n      containers:\n      - name: c\n"
                  "        image: \"nginx:1.25\"\n        ports:\n        - containerPort: 80\n",
                  "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":"
                  "\"web\",\"labels\":{\"app\":\"web\"}},\"spec\":{\"replicas\":2,\"paused\":false,"
                  "\"template\":{\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":"
                  "\"nginx:1.25\",\"ports\":[{\"containerPort\":80}]}]}}}}",
                  __LINE__);
}

static void test_scalars(void)
{
        yaml_case("a: '1'\nb: 1\nc: 1.5\nd: ~\ne: true\nf: \"true\"\ng: 0x1F\nh: -3\ni:\n",
                  "{\"a\":\"1\",\"b\":1,\"c\":1.5,\"d\":null,\"e\":true,\"f\":\"true\",\"g\":"
                  "\"0x1F\",\"h\":-3,\"i\":null}",
                  __LINE__);
        yaml_case("--- \nk: |\n  line1\n  line2\n...\n", "{\"k\":\"line1\\nline2\\n\"}", __LINE__);
        yaml_case("[1, two, {x: y}]", "[1,\"two\",{\"x\":\"y\"}]", __LINE__);
}

static void test_refused(void)
{
        CHECK_INT(yaml_fails(""), SW_EINVAL);
        CHECK_INT(yaml_fails("a: [1, 2\n"), SW_EINVAL);
        CHECK_INT(yaml_fails("a: &x 1\nb: *x\n"), SW_EINVAL);
        CHECK_INT(yaml_fails("a: 1\na: 2\n"), SW_EINVAL);
        CHECK_INT(yaml_fails("a: 1\n---\nb: 2\n"), SW_EINVAL);
        {
                char deep[400];
                size_t n = 0;
                for (int i = 0; i < 100; i++)
                        deep[n++] = '[';
                deep[n] = '\0';
                CHECK(yaml_fails(deep) != 0);
        }
}

int main(void)
{
        T_RUN(test_manifest);
        T_RUN(test_scalars);
        T_RUN(test_refused);
        return t_done();
}
