/*
 * selector.c - label selectors (equality and set-based), field selectors,
 * LabelSelector objects, and label syntax.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "orchestrator/orch_int.h"
#include "tests/harness/t.h"

static bool matches(const char *sel, const char *labels)
{
        struct orch_selector *s = NULL;
        struct sw_err err = SW_ERR_INIT;
        json_t *l = json_loads(labels, 0, NULL);
        bool m = false;

        if (orch_labelsel_parse(&s, sel, &err) != 0)
                t_fail(__FILE__, __LINE__, "parse '%s': %s", sel, err.msg);
        else
                m = orch_labelsel_match(s, l);
        orch_selector_free(s);
        json_decref(l);
        return m;
}

static bool parses(const char *sel)
{
        struct orch_selector *s = NULL;
        struct sw_err err = SW_ERR_INIT;
        int rc = orch_labelsel_parse(&s, sel, &err);

        orch_selector_free(s);
        return rc == 0;
}

static void test_equality(void)
{
        const char *l = "{\"app\":\"web\",\"tier\":\"front\"}";

        CHECK(matches("", l));
        CHECK(matches("app=web", l));
        CHECK(matches("app==web", l));
        CHECK(matches("app = web , tier=front", l));
        CHECK(!matches("app=api", l));
        CHECK(matches("app!=api", l));
        CHECK(matches("env!=prod", l));
        CHECK(!matches("app=web,tier=back", l));
}

static void test_set_based(void)
{
        const char *l = "{\"app\":\"web\",\"n\":\"7\"}";

        CHECK(matches("app in (web,api)", l));
        CHECK(matches("app in (api, web)", l));
        CHECK(!matches("app notin (web)", l));
        CHECK(matches("env notin (prod)", l));
        CHECK(matches("app", l));
        CHECK(!matches("!app", l));
        CHECK(matches("!env", l));
        CHECK(matches("n>3", l));
        CHECK(!matches("n<3", l));
        CHECK(matches("app in (web),!env,n>6", l));
        CHECK(!matches("env in (prod)", "{}"));
}

static void test_invalid(void)
{
        CHECK(!parses("app=("));
        CHECK(!parses("app in web"));
        CHECK(!parses("app in (web"));
        CHECK(!parses("=web"));
        CHECK(!parses("app=web,"));
        CHECK(!parses("a b"));
        CHECK(!parses("n>x"));
        CHECK(!parses("app=-bad-"));
        CHECK(parses("example.com/app=web"));
        CHECK(!parses("Example_.com/app=web"));
}

static void test_field_selectors(void)
{
        static const char *const allowed[] = {"metadata.name", "spec.nodeName", "status.phase",
                                              NULL};
        json_t *pod = json_loads("{\"metadata\":{\"name\":\"p\"},\"spec\":{\"nodeName\":\"n1\"},"
                                 "\"status\":{\"phase\":\"Running\"}}",
                                 0, NULL);
        struct orch_selector *s = NULL;
        struct sw_err err = SW_ERR_INIT;

        CHECK_OK(orch_fieldsel_parse(&s, "metadata.name=p,status.phase!=Pending", allowed, &err),
                 &err);
        CHECK(orch_fieldsel_match(s, pod));
        orch_selector_free(s);
        CHECK_OK(orch_fieldsel_parse(&s, "spec.nodeName=", allowed, &err), &err);
        CHECK(!orch_fieldsel_match(s, pod));
        orch_selector_free(s);
        s = NULL;
        CHECK_INT(orch_fieldsel_parse(&s, "spec.bogus=x", allowed, &err), SW_EINVAL);
        CHECK(strstr(err.msg, "field label not supported: spec.bogus"));
        sw_err_clear(&err);
        CHECK_INT(orch_fieldsel_parse(&s, "metadata.name in (a)", allowed, &err), SW_EINVAL);
        json_decref(pod);
}

static void test_label_selector_object(void)
{
        json_t *ls = json_loads("{\"matchLabels\":{\"app\":\"web\"},\"matchExpressions\":[{\"key\":"
                                "\"tier\",\"operator\":\"In\",\"values\":[\"a\",\"b\"]},{\"key\":"
                                "\"x\",\"operator\":\"DoesNotExist\"}]}",
                                0, NULL);
        char *text = orch_labelsel_string(ls);
        struct orch_selector *s = NULL;
        struct sw_err err = SW_ERR_INIT;
        json_t *l1 = json_loads("{\"app\":\"web\",\"tier\":\"b\"}", 0, NULL);
        json_t *l2 = json_loads("{\"app\":\"web\",\"tier\":\"b\",\"x\":\"1\"}", 0, NULL);

        CHECK_STR(text, "app=web,tier in (a,b),!x");
        CHECK_OK(orch_labelsel_from_json(&s, ls, &err), &err);
        CHECK(orch_labelsel_match(s, l1));
        CHECK(!orch_labelsel_match(s, l2));
        orch_selector_free(s);
        free(text);
        json_decref(ls);
        json_decref(l1);
        json_decref(l2);
}

static void test_label_syntax(void)
{
        struct sw_err err = SW_ERR_INIT;
        json_t *good = json_loads("{\"app.kubernetes.io/name\":\"web\",\"v\":\"\",\"a_b\":\"1.2\"}",
                                  0, NULL);
        json_t *bad_val = json_loads("{\"app\":\"-x\"}", 0, NULL);
        json_t *bad_key = json_loads("{\"a b\":\"x\"}", 0, NULL);
        json_t *not_str = json_loads("{\"a\":1}", 0, NULL);

        CHECK_OK(orch_labels_valid(good, "metadata.labels", &err), &err);
        CHECK_INT(orch_labels_valid(bad_val, "metadata.labels", &err), SW_EINVAL);
        CHECK(strstr(err.msg, "metadata.labels"));
        sw_err_clear(&err);
        CHECK_INT(orch_labels_valid(bad_key, "metadata.labels", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(orch_labels_valid(not_str, "metadata.labels", &err), SW_EINVAL);
        json_decref(good);
        json_decref(bad_val);
        json_decref(bad_key);
        json_decref(not_str);
}

int main(void)
{
        T_RUN(test_equality);
        T_RUN(test_set_based);
        T_RUN(test_invalid);
        T_RUN(test_field_selectors);
        T_RUN(test_label_selector_object);
        T_RUN(test_label_syntax);
        return t_done();
}
