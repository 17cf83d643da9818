/*
 * registry_auth.c - the registry client's parsers: WWW-Authenticate
 * challenges, image references, Docker config.json credentials and the
 * insecure-registry list.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "common/mem.h"
#include "steps/registry.h"
#include "tests/harness/t.h"

static void test_challenge_bearer(void)
{
        struct step_registry_challenge c;
        struct sw_err err = SW_ERR_INIT;

        CHECK_OK(step_registry_challenge_parse(
                         &c,
                         "Bearer realm=\"https://auth.example/token\",service=\"registry.example\","
                         "scope=\"repository:team/app:pull,push\"",
                         &err),
                 &err);
        CHECK_STR(c.scheme, "Bearer");
        CHECK_STR(c.realm, "https://auth.example/token");
        CHECK_STR(c.service, "registry.example");
        CHECK_STR(c.scope, "repository:team/app:pull,push");
        CHECK(c.error == NULL);
        step_registry_challenge_release(&c);

        /* Harbor's realm, spaces after commas, an error parameter, unknown keys ignored. */
        CHECK_OK(step_registry_challenge_parse(
                         &c,
                         "Bearer realm=\"https://harbor.example/service/token\", "
                         "service=\"harbor-registry\", error=\"insufficient_scope\", foo=bar",
                         &err),
                 &err);
        CHECK_STR(c.realm, "https://harbor.example/service/token");
        CHECK_STR(c.service, "harbor-registry");
        CHECK_STR(c.error, "insufficient_scope");
        CHECK(c.scope == NULL);
        step_registry_challenge_release(&c);
}

static void test_challenge_basic_and_escapes(void)
{
        struct step_registry_challenge c;
        struct sw_err err = SW_ERR_INIT;

        CHECK_OK(step_registry_challenge_parse(&c, "Basic realm=\"Registry \\\"Realm\\\"\"", &err),
                 &err);
        CHECK_STR(c.scheme, "Basic");
        CHECK_STR(c.realm, "Registry \"Realm\"");
        step_registry_challenge_release(&c);

        CHECK_OK(step_registry_challenge_parse(&c, "Bearer realm=http://127.0.0.1:9/t", &err),
                 &err);
        CHECK_STR(c.realm, "http://127.0.0.1:9/t");
        step_registry_challenge_release(&c);

        CHECK_OK(step_registry_challenge_parse(&c, "Basic", &err), &err);
        CHECK_STR(c.scheme, "Basic");
        CHECK(c.realm == NULL);
        step_registry_challenge_release(&c);
}

static void test_challenge_malformed(void)
{
        struct step_registry_challenge c;
        struct sw_err err = SW_ERR_INIT;

        CHECK_INT(step_registry_challenge_parse(&c, "Bearer realm=\"unterminated", &err),
                  SW_EPROTO);
        sw_err_clear(&err);
        CHECK_INT(step_registry_challenge_parse(&c, "Bearer realm", &err), SW_EPROTO);
        sw_err_clear(&err);
        CHECK_INT(step_registry_challenge_parse(&c, "", &err), SW_EPROTO);
        sw_err_clear(&err);
        CHECK_INT(step_registry_challenge_parse(&c, "Bearer realm=\"a\" service=\"b\"", &err),
                  SW_EPROTO);
        sw_err_clear(&err);
        CHECK_INT(step_registry_challenge_parse(&c, "Bearer =x", &err), SW_EPROTO);
}

static void test_ref_parse(void)
{
        struct step_registry_ref r;
        struct sw_err err = SW_ERR_INIT;
        const char *dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        char *with_digest = sw_xasprintf("harbor.example.com/proj/app@%s", dg);

        CHECK_OK(step_registry_ref_parse(&r, "127.0.0.1:5000/team/app:v1", NULL, &err), &err);
        CHECK_STR(r.host, "127.0.0.1:5000");
        CHECK_STR(r.repo, "team/app");
        CHECK_STR(r.tag, "v1");
        CHECK_STR(r.digest, "");
        CHECK_OK(step_registry_ref_parse(&r, "app", "reg.local:5000", &err), &err);
        CHECK_STR(r.host, "reg.local:5000");
        CHECK_STR(r.repo, "app");
        CHECK_STR(r.tag, "latest");
        CHECK_OK(step_registry_ref_parse(&r, "team/app:1.2.3-rc_1", "d:1", &err), &err);
        CHECK_STR(r.host, "d:1");
        CHECK_STR(r.repo, "team/app");
        CHECK_STR(r.tag, "1.2.3-rc_1");
        CHECK_OK(step_registry_ref_parse(&r, "localhost/app", NULL, &err), &err);
        CHECK_STR(r.host, "localhost");
        CHECK_OK(step_registry_ref_parse(&r, with_digest, NULL, &err), &err);
        CHECK_STR(r.host, "harbor.example.com");
        CHECK_STR(r.repo, "proj/app");
        CHECK_STR(r.tag, "");
        CHECK_STR(r.digest, dg);

        CHECK_INT(step_registry_ref_parse(&r, "Team/App", "d:1", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(step_registry_ref_parse(&r, "app:", "d:1", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(step_registry_ref_parse(&r, "a//b", "d:1", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(step_registry_ref_parse(&r, "h:1/app:bad tag", NULL, &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(step_registry_ref_parse(&r, "h:1/app@sha256:short", NULL, &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(step_registry_ref_parse(&r, "app", NULL, &err), SW_EINVAL);
        CHECK(strstr(err.msg, "no registry host") != NULL);
        sw_err_clear(&err);
        CHECK_INT(step_registry_ref_parse(&r, "h:1/app-/x", NULL, &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(step_registry_ref_parse(&r, "h:1/a..b", NULL, &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(step_registry_ref_parse(&r, "h:1/a___b", NULL, &err), SW_EINVAL);
        CHECK_OK(step_registry_ref_parse(&r, "h:1/a__b/c--d/e.f_g", NULL, &err), &err);
        CHECK_STR(r.repo, "a__b/c--d/e.f_g");
        free(with_digest);
}

static void test_push_pull_validate_names(void)
{
        struct step_registry_options o = STEP_REGISTRY_OPTIONS_INIT;
        struct step_registry *r = NULL;
        struct sw_err err = SW_ERR_INIT;

        /* Names go into URLs: they are checked before anything is sent. */
        o.host = "127.0.0.1:1";
        o.insecure = "127.0.0.1:*";
        CHECK_OK(step_registry_new(&r, &o, &err), &err);
        CHECK_INT(step_registry_push(NULL, r, NULL, NULL, "../x", "v1", NULL, &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(step_registry_push(NULL, r, NULL, NULL, "app", "v1/../x", NULL, &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(step_registry_push(NULL, r, NULL, NULL, "app", "v1", "a?b", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(step_registry_pull(NULL, r, "app", "v1?x=1", NULL, NULL, &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(step_registry_new(&r, &(struct step_registry_options){.host = "a/b"}, &err),
                  SW_EINVAL);
        step_registry_free(r);
}

static void test_docker_config(void)
{
        char *path = sw_xasprintf("%s/config.json", t_tmpdir());
        struct sw_err err = SW_ERR_INIT;
        char *user = NULL, *pass = NULL;
        /* "bob:pa:ss" and "eve:x" in base64 */
        const char *doc = "{\"auths\":{\"https://reg.example:5000/v1/\":{\"auth\":"
                          "\"Ym9iOnBhOnNz\"},\"other.example\":{\"auth\":\"ZXZlOng=\"},"
                          "\"broken.example\":{\"auth\":\"***\"},\"nocolon.example\":{\"auth\":"
                          "\"Ym9i\"}}}";

        CHECK_OK(sw_write_file_atomic(path, doc, strlen(doc), 0600, &err), &err);
        CHECK_OK(step_registry_docker_auth(&user, &pass, path, "reg.example:5000", &err), &err);
        CHECK_STR(user, "bob");
        CHECK_STR(pass, "pa:ss");
        free(user);
        sw_free_secret(pass);
        CHECK_OK(step_registry_docker_auth(&user, &pass, path, "other.example", &err), &err);
        CHECK_STR(user, "eve");
        CHECK_STR(pass, "x");
        free(user);
        sw_free_secret(pass);
        CHECK_INT(step_registry_docker_auth(&user, &pass, path, "absent.example", &err),
                  SW_ENOTFOUND);
        sw_err_clear(&err);
        CHECK_INT(step_registry_docker_auth(&user, &pass, path, "broken.example", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(step_registry_docker_auth(&user, &pass, path, "nocolon.example", &err),
                  SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(step_registry_docker_auth(&user, &pass, "/nonexistent/config.json", "x", &err),
                  SW_ENOTFOUND);
        free(path);
}

static void test_insecure_list(void)
{
        const char *def = "127.0.0.1:*,localhost:*";

        CHECK(step_registry_host_insecure(def, "127.0.0.1:5000"));
        CHECK(step_registry_host_insecure(def, "localhost"));
        CHECK(step_registry_host_insecure(def, "localhost:443"));
        CHECK(!step_registry_host_insecure(def, "127.0.0.10:5000"));
        CHECK(!step_registry_host_insecure(def, "harbor.example.com"));
        CHECK(step_registry_host_insecure(" reg.local:5000 , x:*", "reg.local:5000"));
        CHECK(!step_registry_host_insecure("reg.local:5000", "reg.local:5001"));
        CHECK(!step_registry_host_insecure("", "reg.local"));
        CHECK(!step_registry_host_insecure(NULL, "reg.local"));
}

int main(void)
{
        T_RUN(test_challenge_bearer);
        T_RUN(test_challenge_basic_and_escapes);
        T_RUN(test_challenge_malformed);
        T_RUN(test_ref_parse);
        T_RUN(test_push_pull_validate_names);
        T_RUN(test_docker_config);
        T_RUN(test_insecure_list);
        return t_done();
}
