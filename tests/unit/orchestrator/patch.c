/*
 * patch.c - strategic merge patch (cases after the Kubernetes documentation
 * "Update API Objects in Place Using kubectl patch" and the strategic merge
 * patch design notes), JSON merge patch (RFC 7386) and JSON patch
 * (RFC 6902).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "orchestrator/orch_int.h"
#include "tests/harness/t.h"

static json_t *J(const char *text)
{
        json_error_t e;
        json_t *v = json_loads(text, 0, &e);

        if (!v)
                fprintf(stderr, "bad test json: %s: %s\n", text, e.text);
        return v;
}

/* Patch `orig` with `patch` for `t` and compare with `want` (all JSON text). */
static void smp_case(const char *orig, const char *patch, const struct orch_smp_type *t,
                     const char *want, int line)
{
        json_t *o = J(orig), *p = J(patch), *w = J(want), *out = NULL;
        struct sw_err err = SW_ERR_INIT;
        int rc = orch_smp_apply(&out, o, p, t, &err);

        if (rc != 0) {
                t_fail(__FILE__, line, "smp failed: %s", err.msg);
        } else if (!json_equal(out, w)) {
                char *got = json_dumps(out, JSON_SORT_KEYS | JSON_COMPACT);
                t_fail(__FILE__, line, "smp result %s", got);
                free(got);
        }
        json_decref(o);
        json_decref(p);
        json_decref(w);
        json_decref(out);
}
#define SMP(o, p, t, w) smp_case((o), (p), (t), (w), __LINE__)

static void test_smp_containers_merge_by_name(void)
{
        /* The documentation's patch-file-containers: a second container is added. */
        SMP("{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"patch-demo-ctr\","
            "\"image\":\"nginx\"}]}}}}",
            "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"patch-demo-ctr-2\","
            "\"image\":\"redis\"}]}}}}",
            &orch_smp_deployment,
            "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"patch-demo-ctr\","
            "\"image\":\"nginx\"},{\"name\":\"patch-demo-ctr-2\",\"image\":\"redis\"}]}}}}");
        /* Same name: merged field by field, ports kept. */
        SMP("{\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"nginx:1.25\","
            "\"ports\":[{\"containerPort\":80}]}]}}",
            "{\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"nginx:1.26\"}]}}",
            &orch_smp_pod,
            "{\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"nginx:1.26\","
            "\"ports\":[{\"containerPort\":80}]}]}}");
}

static void test_smp_tolerations_replaced(void)
{
        /* tolerations have no patch strategy: the list is replaced, as in the docs. */
        SMP("{\"spec\":{\"tolerations\":[{\"effect\":\"NoSchedule\",\"key\":\"dedicated\","
            "\"value\":\"test-team\"}]}}",
            "{\"spec\":{\"tolerations\":[{\"effect\":\"NoSchedule\",\"key\":\"disktype\","
            "\"value\":\"ssd\"}]}}",
            &orch_smp_pod,
            "{\"spec\":{\"tolerations\":[{\"effect\":\"NoSchedule\",\"key\":\"disktype\","
            "\"value\":\"ssd\"}]}}");
}

static void test_smp_ports_and_env(void)
{
        SMP("{\"spec\":{\"containers\":[{\"name\":\"c\",\"ports\":[{\"containerPort\":80,"
            "\"protocol\":\"TCP\"}],\"env\":[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"B\","
            "\"value\":\"2\"}]}]}}",
            "{\"spec\":{\"containers\":[{\"name\":\"c\",\"ports\":[{\"containerPort\":443}],"
            "\"env\":[{\"name\":\"B\",\"value\":\"3\"}]}]}}",
            &orch_smp_pod,
            "{\"spec\":{\"containers\":[{\"name\":\"c\",\"ports\":[{\"containerPort\":80,"
            "\"protocol\":\"TCP\"},{\"containerPort\":443}],\"env\":[{\"name\":\"A\",\"value\":"
            "\"1\"},{\"name\":\"B\",\"value\":\"3\"}]}]}}");
}

static void test_smp_patch_delete_and_replace(void)
{
        /* $patch: delete removes the element with that merge key. */
        SMP("{\"spec\":{\"containers\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}",
            "{\"spec\":{\"containers\":[{\"name\":\"a\",\"$patch\":\"delete\"}]}}", &orch_smp_pod,
            "{\"spec\":{\"containers\":[{\"name\":\"b\"}]}}");
        /* $patch: replace in a list replaces the whole list. */
        SMP("{\"spec\":{\"containers\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}",
            "{\"spec\":{\"containers\":[{\"name\":\"c\"},{\"$patch\":\"replace\"}]}}",
            &orch_smp_pod, "{\"spec\":{\"containers\":[{\"name\":\"c\"}]}}");
        /* $patch: replace in a map replaces the map. */
        SMP("{\"metadata\":{\"labels\":{\"a\":\"1\",\"b\":\"2\"}}}",
            "{\"metadata\":{\"labels\":{\"c\":\"3\",\"$patch\":\"replace\"}}}", &orch_smp_pod,
            "{\"metadata\":{\"labels\":{\"c\":\"3\"}}}");
        /* $patch: delete on a map deletes it. */
        SMP("{\"metadata\":{\"labels\":{\"a\":\"1\"},\"name\":\"x\"}}",
            "{\"metadata\":{\"labels\":{\"$patch\":\"delete\"}}}", &orch_smp_pod,
            "{\"metadata\":{\"name\":\"x\"}}");
        /* null deletes a key. */
        SMP("{\"metadata\":{\"labels\":{\"a\":\"1\",\"b\":\"2\"}}}",
            "{\"metadata\":{\"labels\":{\"a\":null}}}", &orch_smp_pod,
            "{\"metadata\":{\"labels\":{\"b\":\"2\"}}}");
}

static void test_smp_retain_keys(void)
{
        /* The docs' change from RollingUpdate to Recreate: rollingUpdate must go. */
        SMP("{\"spec\":{\"strategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":{"
            "\"maxSurge\":\"25%\",\"maxUnavailable\":\"25%\"}}}}",
            "{\"spec\":{\"strategy\":{\"$retainKeys\":[\"type\"],\"type\":\"Recreate\"}}}",
            &orch_smp_deployment, "{\"spec\":{\"strategy\":{\"type\":\"Recreate\"}}}");
}

static void test_smp_primitive_lists(void)
{
        /* finalizers merge as a set; $deleteFromPrimitiveList removes values. */
        SMP("{\"metadata\":{\"finalizers\":[\"a\",\"b\"]}}",
            "{\"metadata\":{\"finalizers\":[\"b\",\"c\"]}}", &orch_smp_pod,
            "{\"metadata\":{\"finalizers\":[\"a\",\"b\",\"c\"]}}");
        SMP("{\"metadata\":{\"finalizers\":[\"a\",\"b\",\"c\"]}}",
            "{\"metadata\":{\"$deleteFromPrimitiveList/finalizers\":[\"b\"]}}", &orch_smp_pod,
            "{\"metadata\":{\"finalizers\":[\"a\",\"c\"]}}");
        /* args have no strategy: replaced. */
        SMP("{\"spec\":{\"containers\":[{\"name\":\"c\",\"args\":[\"x\",\"y\"]}]}}",
            "{\"spec\":{\"containers\":[{\"name\":\"c\",\"args\":[\"z\"]}]}}", &orch_smp_pod,
            "{\"spec\":{\"containers\":[{\"name\":\"c\",\"args\":[\"z\"]}]}}");
}

static void test_smp_set_element_order(void)
{
        /* What kubectl apply sends: the order of the manifest, with the changed element. */
        SMP("{\"spec\":{\"containers\":[{\"name\":\"a\",\"image\":\"1\"},{\"name\":\"b\","
            "\"image\":\"1\"}]}}",
            "{\"spec\":{\"$setElementOrder/containers\":[{\"name\":\"b\"},{\"name\":\"a\"}],"
            "\"containers\":[{\"name\":\"a\",\"image\":\"2\"}]}}",
            &orch_smp_pod,
            "{\"spec\":{\"containers\":[{\"name\":\"b\",\"image\":\"1\"},{\"name\":\"a\","
            "\"image\":\"2\"}]}}");
}

static void test_smp_errors(void)
{
        json_t *o = J("{\"spec\":{\"containers\":[{\"name\":\"a\"}]}}");
        json_t *p = J("{\"spec\":{\"containers\":[{\"image\":\"x\"}]}}"), *out = NULL;
        json_t *p2 = J("{\"spec\":{\"$bogus\":1}}");
        struct sw_err err = SW_ERR_INIT;

        CHECK_INT(orch_smp_apply(&out, o, p, &orch_smp_pod, &err), SW_EINVAL);
        CHECK(strstr(err.msg, "merge key"));
        sw_err_clear(&err);
        CHECK_INT(orch_smp_apply(&out, o, p2, &orch_smp_pod, &err), SW_EINVAL);
        json_decref(o);
        json_decref(p);
        json_decref(p2);
}

static void merge_case(const char *target, const char *patch, const char *want, int line)
{
        json_t *t = J(target), *p = J(patch), *w = J(want), *out = NULL;
        struct sw_err err = SW_ERR_INIT;

        if (orch_merge_patch(&out, t, p, &err) != 0 || !json_equal(out, w))
                t_fail(__FILE__, line, "merge patch of %s by %s", target, patch);
        json_decref(t);
        json_decref(p);
        json_decref(w);
        json_decref(out);
}

static void test_merge_patch_rfc7386(void)
{
        /* Examples from RFC 7386 appendix A. */
        merge_case("{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}", __LINE__);
        merge_case("{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}", __LINE__);
        merge_case("{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}", __LINE__);
        merge_case("{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}", __LINE__);
        merge_case("{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}",
                   "{\"a\":{\"b\":\"d\"}}", __LINE__);
        merge_case("{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}", __LINE__);
        merge_case("{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}", __LINE__);
}

static void json_patch_case(const char *doc, const char *ops, const char *want, int line)
{
        json_t *d = J(doc), *o = J(ops), *w = want ? J(want) : NULL, *out = NULL;
        struct sw_err err = SW_ERR_INIT;
        int rc = orch_json_patch(&out, d, o, &err);

        if (want && (rc != 0 || !json_equal(out, w)))
                t_fail(__FILE__, line, "json patch %s: rc %d %s", ops, rc, err.msg);
        if (!want && rc == 0)
                t_fail(__FILE__, line, "json patch %s should fail", ops);
        json_decref(d);
        json_decref(o);
        json_decref(w);
        json_decref(out);
}

static void test_json_patch_rfc6902(void)
{
        json_patch_case("{\"foo\":\"bar\"}",
                        "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\"}]",
                        "{\"baz\":\"qux\",\"foo\":\"bar\"}", __LINE__);
        json_patch_case("{\"foo\":[\"bar\",\"baz\"]}",
                        "[{\"op\":\"add\",\"path\":\"/foo/1\",\"value\":\"qux\"}]",
                        "{\"foo\":[\"bar\",\"qux\",\"baz\"]}", __LINE__);
        json_patch_case("{\"foo\":[\"bar\"]}", "[{\"op\":\"add\",\"path\":\"/foo/-\",\"value\":1}]",
                        "{\"foo\":[\"bar\",1]}", __LINE__);
        json_patch_case("{\"baz\":\"qux\",\"foo\":\"bar\"}",
                        "[{\"op\":\"remove\",\"path\":\"/baz\"}]", "{\"foo\":\"bar\"}", __LINE__);
        json_patch_case("{\"baz\":\"qux\"}",
                        "[{\"op\":\"replace\",\"path\":\"/baz\",\"value\":\"boo\"}]",
                        "{\"baz\":\"boo\"}", __LINE__);
        json_patch_case("{\"foo\":{\"bar\":\"baz\"},\"q\":{}}",
                        "[{\"op\":\"move\",\"from\":\"/foo/bar\",\"path\":\"/q/x\"}]",
                        "{\"foo\":{},\"q\":{\"x\":\"baz\"}}", __LINE__);
        json_patch_case("{\"a\":1}", "[{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/b\"}]",
                        "{\"a\":1,\"b\":1}", __LINE__);
        /* ~1 escapes "/" (annotation keys like example.com/x). */
        json_patch_case("{\"m\":{\"a/b\":1}}",
                        "[{\"op\":\"replace\",\"path\":\"/m/a~1b\",\"value\":2}]",
                        "{\"m\":{\"a/b\":2}}", __LINE__);
        json_patch_case("{\"baz\":\"qux\"}",
                        "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"qux\"}]",
                        "{\"baz\":\"qux\"}", __LINE__);
        json_patch_case("{\"baz\":\"qux\"}",
                        "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"x\"}]", NULL, __LINE__);
        json_patch_case("{\"foo\":\"bar\"}", "[{\"op\":\"remove\",\"path\":\"/nope\"}]", NULL,
                        __LINE__);
        json_patch_case("{\"foo\":[1]}", "[{\"op\":\"add\",\"path\":\"/foo/5\",\"value\":1}]", NULL,
                        __LINE__);
        json_patch_case("{\"baz\":\"qux\"}",
                        "[{\"op\":\"replace\",\"path\":\"/nope\",\"value\":\"boo\"}]", NULL,
                        __LINE__);
}

int main(void)
{
        T_RUN(test_smp_containers_merge_by_name);
        T_RUN(test_smp_tolerations_replaced);
        T_RUN(test_smp_ports_and_env);
        T_RUN(test_smp_patch_delete_and_replace);
        T_RUN(test_smp_retain_keys);
        T_RUN(test_smp_primitive_lists);
        T_RUN(test_smp_set_element_order);
        T_RUN(test_smp_errors);
        T_RUN(test_merge_patch_rfc7386);
        T_RUN(test_json_patch_rfc6902);
        return t_done();
}
