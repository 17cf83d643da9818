/*
 * test_render.c - Ingress translation, validation and nginx rendering,
 * without running nginx (tests/integration/ingress/ does that).
 */
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
#include "ingress/ingress.h"
#include "tests/harness/t.h"

/* Services "ns/name:port" -> address, for the resolver. */
static const char *const services[][2] = {
        {"store/shop-web:80", "127.0.0.1:9001"},      {"store/shop-api:http", "127.0.0.1:9002"},
        {"store/shop-health:8081", "127.0.0.1:9003"}, {"store/shop-admin:9000", "127.0.0.1:9004"},
        {"default/blog:8080", "127.0.0.1:9005"},      {"default/web:80", "127.0.0.1:9006"},
        {"default/api:80", "127.0.0.1:9007"},         {"default/bad:80", "127.0.0.1:80;evil"},
};

static int resolve(char **out, void *ctx, const char *ns, const char *name, int port,
                   const char *port_name, struct sw_err *err)
{
        char key[256];

        (void)ctx;
        if (port_name)
                snprintf(key, sizeof(key), "%s/%s:%s", ns, name, port_name);
        else
                snprintf(key, sizeof(key), "%s/%s:%d", ns, name, port);
        for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++)
                if (strcmp(services[i][0], key) == 0) {
                        *out = sw_xstrdup(services[i][1]);
                        return 0;
                }
        return sw_err_set(err, SW_ENOTFOUND, "service '%s' not found", key);
}

static int resolve_tls(char **cert, char **key, void *ctx, const char *ns, const char *secret,
                       struct sw_err *err)
{
        (void)ctx;
        if (strcmp(secret, "missing") == 0)
                return sw_err_set(err, SW_ENOTFOUND, "secret '%s/%s' not found", ns, secret);
        *cert = sw_xasprintf("/var/lib/slipway/tls/%s/%s.crt", ns, secret);
        *key = sw_xasprintf("/var/lib/slipway/tls/%s/%s.key", ns, secret);
        return 0;
}

static const struct ingress_resolver res = {resolve, resolve_tls, NULL};

static json_t *load_json(const char *text)
{
        struct sw_err err = SW_ERR_INIT;
        json_t *v = NULL;

        if (sw_json_parse(&v, text, strlen(text), 1 << 20, &err) != 0) {
                fprintf(stderr, "bad JSON in test: %s\n", err.msg);
                exit(1);
        }
        return v;
}

static json_t *load_fixture(const char *name)
{
        struct sw_err err = SW_ERR_INIT;
        char *path = sw_xasprintf("%s/tests/fixtures/ingress/%s", SW_TEST_SOURCE_DIR, name);
        char *text = NULL;
        json_t *v;

        if (sw_read_file(&text, NULL, path, 1 << 20, &err) != 0) {
                fprintf(stderr, "%s\n", err.msg);
                exit(1);
        }
        v = load_json(text);
        free(text);
        free(path);
        return v;
}

static char *render(const struct ingress_table *t)
{
        struct ingress_render_options ro = INGRESS_RENDER_OPTIONS_INIT;
        struct sw_err err = SW_ERR_INIT;
        char *out = NULL;
        size_t len = 0;

        ro.listen = "127.0.0.1:8088";
        ro.tls_listen = "127.0.0.1:8443";
        CHECK_OK(ingress_render(&out, &len, t, &ro, &err), &err);
        if (out)
                CHECK_INT(strlen(out), len);
        return out ? out : sw_xstrdup("");
}

/* The server block for `host` (from "server_name HOST;" to its closing brace). */
static char *server_of(const char *conf, const char *host)
{
        char *needle = sw_xasprintf("server_name %s;", host);
        const char *p = strstr(conf, needle), *start, *end;

        free(needle);
        if (!p)
                return sw_xstrdup("");
        start = p;
        while (start > conf && strncmp(start, "server {", 8) != 0)
                start--;
        end = strstr(p, "\n        }\n");
        return sw_xstrndup(start, end ? (size_t)(end - start) : strlen(start));
}

static void test_valid_host(void)
{
        struct sw_err err = SW_ERR_INIT;
        static const char *const good[] = {"a.com",         "shop.example.com", "x",
                                           "*.example.com", "1-2.b3",           "*.com"};
        static const char *const bad[] = {"a.com; include /etc/passwd",
                                          "A.com",
                                          "a.com\n",
                                          "a b.com",
                                          "$host",
                                          "a.com{",
                                          "a.com}",
                                          "\"a.com\"",
                                          "a..com",
                                          "-a.com",
                                          "*.",
                                          "a.*.com",
                                          "*a.com",
                                          "",
                                          "a.com#",
                                          "a_b.com"};

        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                sw_err_clear(&err);
                CHECK_OK(ingress_valid_host(good[i], "host", &err), &err);
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                sw_err_clear(&err);
                if (ingress_valid_host(bad[i], "host", &err) != SW_EINVAL)
                        t_fail(__FILE__, __LINE__, "host '%s' was accepted", bad[i]);
                CHECK(strchr(err.msg, '\n') == NULL); /* one line, even for a newline */
                CHECK(strncmp(err.msg, "host:", 5) == 0);
        }
        sw_err_clear(&err);
        ingress_valid_host("a.com\nb", "spec.rules[0].host", &err);
        CHECK(strstr(err.msg, "'a.com\\nb'") != NULL);
}

static void test_valid_path(void)
{
        struct sw_err err = SW_ERR_INIT;
        static const char *const good[] = {"/",
                                           "/api",
                                           "/api/",
                                           "/a-b_c.d~/x",
                                           "/v1/users:list",
                                           "/a/b/c",
                                           "/.well-known/acme"};
        static const char *const bad[] = {"/x { return 200; }",
                                          "/x;",
                                          "/$uri",
                                          "/x\nreturn 200;",
                                          "x",
                                          "",
                                          "/a b",
                                          "/a'b",
                                          "/a\"b",
                                          "/a#b",
                                          "/a%20b",
                                          "/a//b",
                                          "/a/../b",
                                          "/a/..",
                                          "/a/./b",
                                          "/a\\b",
                                          "/a{b",
                                          "/~^(.*)$"};

        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                sw_err_clear(&err);
                CHECK_OK(ingress_valid_path(good[i], "path", &err), &err);
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                sw_err_clear(&err);
                if (ingress_valid_path(bad[i], "path", &err) != SW_EINVAL)
                        t_fail(__FILE__, __LINE__, "path '%s' was accepted", bad[i]);
                CHECK(strchr(err.msg, '\n') == NULL);
        }
        {
                char *longp = sw_xcalloc(1, 1100);
                memset(longp, 'a', 1099);
                longp[0] = '/';
                sw_err_clear(&err);
                CHECK_INT(ingress_valid_path(longp, "path", &err), SW_EINVAL);
                free(longp);
        }
}

static void test_valid_backend_and_file(void)
{
        struct sw_err err = SW_ERR_INIT;
        static const char *const good[] = {"127.0.0.1:80", "[::1]:8080", "web.apps.svc:443",
                                           "127.77.0.5:65535"};
        static const char *const bad[] = {"127.0.0.1",     "127.0.0.1:0",   "127.0.0.1:65536",
                                          "127.0.0.1:80;", "a b:80",        ":80",
                                          "[::1]80",       "[zz]:80",       "127.0.0.1:+80",
                                          "h:80\n",        "unix:/tmp/sock"};

        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                sw_err_clear(&err);
                CHECK_OK(ingress_valid_backend(good[i], "backend", &err), &err);
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                sw_err_clear(&err);
                if (ingress_valid_backend(bad[i], "backend", &err) != SW_EINVAL)
                        t_fail(__FILE__, __LINE__, "backend '%s' was accepted", bad[i]);
        }
        sw_err_clear(&err);
        CHECK_OK(ingress_valid_file("/var/lib/slipway/tls/a.crt", "cert", &err), &err);
        CHECK_INT(ingress_valid_file("relative.crt", "cert", NULL), SW_EINVAL);
        CHECK_INT(ingress_valid_file("/a b.crt", "cert", NULL), SW_EINVAL);
        CHECK_INT(ingress_valid_file("/a.crt;", "cert", NULL), SW_EINVAL);
        CHECK_INT(ingress_valid_file("/x/../etc/shadow", "cert", NULL), SW_EINVAL);
        CHECK_INT(ingress_valid_file("/x/$y", "cert", NULL), SW_EINVAL);
}

static void test_translate_fixture(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct ingress_table *t = NULL;
        json_t *ing = load_fixture("shop.json");
        bool accepted = false;
        char *conf, *shop, *admin;

        ingress_table_new(&t);
        CHECK_OK(ingress_table_set_ingress(t, &accepted, ing, &res, "slipway", &err), &err);
        CHECK(accepted);
        CHECK_INT(ingress_table_count(t), 1);
        conf = render(t);
        shop = server_of(conf, "shop.example.com");
        admin = server_of(conf, "admin.shop.example.com");

        /* Prefix / -> location /; Prefix /api -> = /api and /api/; Exact -> = only. */
        CHECK(strstr(shop, "location / {\n                        proxy_pass "
                           "http://sw_127_0_0_1_9001;") != NULL);
        CHECK(strstr(shop, "location = /api {\n                        proxy_pass "
                           "http://sw_127_0_0_1_9002;") != NULL);
        CHECK(strstr(shop, "location /api/ {\n                        proxy_pass "
                           "http://sw_127_0_0_1_9002;") != NULL);
        CHECK(strstr(shop, "location = /healthz {\n                        proxy_pass "
                           "http://sw_127_0_0_1_9003;") != NULL);
        CHECK(strstr(shop, "location /healthz/") == NULL);
        /* TLS from the Secret, on the TLS listener; admin has no certificate. */
        CHECK(strstr(shop, "listen 127.0.0.1:8443 ssl;") != NULL);
        CHECK(strstr(shop, "ssl_certificate /var/lib/slipway/tls/store/shop-tls.crt;") != NULL);
        CHECK(strstr(shop, "ssl_certificate_key /var/lib/slipway/tls/store/shop-tls.key;") != NULL);
        CHECK(strstr(admin, "ssl") == NULL);
        /* admin has "/" only: it shares the mapped server, its backend comes from the map. */
        CHECK(strstr(admin, "location / {\n                        proxy_pass "
                            "http://$sw_route;") != NULL);
        CHECK(strstr(conf, "map $host $sw_route {\n                default \"\";\n"
                           "                admin.shop.example.com 127.0.0.1:9004;\n") != NULL);
        CHECK(strstr(conf, "upstream sw_127_0_0_1_9004") == NULL);
        /* One upstream per backend, with keepalive. */
        CHECK(strstr(conf, "upstream sw_127_0_0_1_9002 {\n                server 127.0.0.1:9002;\n"
                           "                keepalive 32;\n") != NULL);
        /* The default server answers 404 and rejects TLS handshakes for unknown names. */
        CHECK(strstr(conf,
                     "listen 127.0.0.1:8088 default_server;\n                listen "
                     "127.0.0.1:8443 ssl default_server;\n                "
                     "ssl_reject_handshake on;\n                server_name _;\n"
                     "                location / {\n                        return 404;") != NULL);
        /* Annotations never reach the configuration. */
        CHECK(strstr(conf, "pwned") == NULL);
        CHECK(strstr(conf, "X-Pwned") == NULL);
        CHECK(strstr(conf, "/admin") == NULL);
        /* Headers, request id, JSON access log, foreground master. */
        CHECK(strstr(conf, "daemon off;") != NULL);
        CHECK(strstr(conf, "proxy_set_header X-Request-ID $sw_request_id;") != NULL);
        CHECK(strstr(conf, "\"\" $request_id;") != NULL);
        CHECK(strstr(conf, "proxy_set_header X-Forwarded-For $remote_addr;") != NULL);
        CHECK(strstr(conf, "proxy_set_header X-Forwarded-Proto $scheme;") != NULL);
        CHECK(strstr(conf, "proxy_set_header Host $host;") != NULL);
        CHECK(strstr(conf, "log_format sw_json escape=json") != NULL);
        CHECK(strstr(conf, "access_log /dev/stdout sw_json;") != NULL);

        /* The whole text, byte for byte (also what `slipway ingress render` prints for it). */
        {
                char *golden = NULL;
                CHECK_OK(sw_read_file(&golden, NULL,
                                      SW_TEST_SOURCE_DIR "/tests/fixtures/ingress/shop.nginx.conf",
                                      1 << 20, &err),
                         &err);
                CHECK(golden && strcmp(golden, conf) == 0);
                free(golden);
        }
        /* Re-applying the same Ingress changes nothing. */
        {
                char *again;
                CHECK_OK(ingress_table_set_ingress(t, &accepted, ing, &res, NULL, &err), &err);
                again = render(t);
                CHECK_STR(again, conf);
                free(again);
        }
        free(shop);
        free(admin);
        free(conf);
        json_decref(ing);
        ingress_table_free(t);
}

static void test_default_backend_and_class(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct ingress_table *t = NULL;
        json_t *list = load_fixture("list.json");
        bool accepted = false;
        char *conf, *blog;

        ingress_table_new(&t);
        CHECK_OK(ingress_table_set_ingress(t, &accepted,
                                           json_array_get(json_object_get(list, "items"), 0), &res,
                                           "slipway", &err),
                 &err);
        CHECK(accepted);
        /* Another class: not ours, no resolver call (it would fail: other/80 is unknown). */
        CHECK_OK(ingress_table_set_ingress(t, &accepted,
                                           json_array_get(json_object_get(list, "items"), 1), &res,
                                           "slipway", &err),
                 &err);
        CHECK(!accepted);
        CHECK_INT(ingress_table_count(t), 1);
        conf = render(t);
        blog = server_of(conf, "blog.example.com");
        /* A rule without paths goes to the defaultBackend, and so does the catch-all. */
        CHECK(strstr(blog, "location / {\n                        proxy_pass "
                           "http://$sw_route;") != NULL);
        CHECK(strstr(conf, "                blog.example.com 127.0.0.1:9005;\n") != NULL);
        CHECK(strstr(conf, "server_name _;\n                location / {\n                  "
                           "      proxy_pass http://sw_127_0_0_1_9005;") != NULL);
        CHECK(strstr(conf, "other.example.com") == NULL);
        free(conf);
        free(blog);

        /* The class from the legacy annotation; and a class change removes the routes. */
        {
                json_t *ing = load_json(
                        "{\"kind\":\"Ingress\",\"metadata\":{\"name\":\"web\",\"annotations\":"
                        "{\"kubernetes.io/ingress.class\":\"edge\"}},\"spec\":{\"rules\":[{"
                        "\"host\":\"web.test\",\"http\":{\"paths\":[{\"path\":\"/\",\"pathType\":"
                        "\"Prefix\",\"backend\":{\"service\":{\"name\":\"web\",\"port\":{"
                        "\"number\":80}}}}]}}]}}");
                CHECK_OK(ingress_table_set_ingress(t, &accepted, ing, &res, "edge", &err), &err);
                CHECK(accepted);
                CHECK_INT(ingress_table_count(t), 2);
                CHECK_OK(ingress_table_set_ingress(t, &accepted, ing, &res, "slipway", &err), &err);
                CHECK(!accepted);
                CHECK_INT(ingress_table_count(t), 1);
                json_decref(ing);
        }
        json_decref(list);
        ingress_table_free(t);
}

/* An Ingress with one path; fields substituted by the caller. */
static json_t *one_path(const char *host, const char *path, const char *type, const char *svc)
{
        json_t *v = json_pack(
                "{s:s,s:{s:s,s:s},s:{s:s,s:[{s:s,s:{s:[{s:s,s:s,s:{s:{s:s,s:{s:i}}}}]}}]}}", "kind",
                "Ingress", "metadata", "name", "t", "namespace", "default", "spec",
                "ingressClassName", "slipway", "rules", "host", host, "http", "paths", "path", path,
                "pathType", type, "backend", "service", "name", svc, "port", "number", 80);
        if (!v)
                abort();
        return v;
}

static void expect_reject(json_t *ing, const char *fragment)
{
        struct sw_err err = SW_ERR_INIT;
        struct ingress_table *t = NULL;
        bool accepted = false;
        int rc;

        ingress_table_new(&t);
        rc = ingress_table_set_ingress(t, &accepted, ing, &res, "slipway", &err);
        if (rc == 0)
                t_fail(__FILE__, __LINE__, "accepted, expected an error with '%s'", fragment);
        else if (!strstr(err.msg, fragment))
                t_fail(__FILE__, __LINE__, "error '%s' does not mention '%s'", err.msg, fragment);
        CHECK(strchr(err.msg, '\n') == NULL);
        CHECK_INT(ingress_table_count(t), 0);
        ingress_table_free(t);
        json_decref(ing);
}

static void test_translate_rejects(void)
{
        expect_reject(one_path("a.com; include /etc/passwd", "/", "Prefix", "web"),
                      "spec.rules[0].host");
        expect_reject(one_path("a.com\nserver_name b.com", "/", "Prefix", "web"),
                      "spec.rules[0].host");
        expect_reject(one_path("a.com", "/x { return 200; }", "Prefix", "web"),
                      "spec.rules[0].http.paths[0].path");
        expect_reject(one_path("a.com", "/x\nreturn 200;", "Exact", "web"),
                      "spec.rules[0].http.paths[0].path");
        expect_reject(one_path("a.com", "/$request_uri", "Prefix", "web"),
                      "spec.rules[0].http.paths[0].path");
        expect_reject(one_path("a.com", "/x;return", "Prefix", "web"), "paths[0].path");
        expect_reject(one_path("a.com", "/", "Regex", "web"), "pathType");
        expect_reject(one_path("a.com", "/", "Prefix", "nosuch"),
                      "service 'default/nosuch:80' not found");
        expect_reject(one_path("a.com", "/", "Prefix", "Web"), "service.name");
        /* A resolver that answers something unsafe is refused too. */
        expect_reject(one_path("a.com", "/", "Prefix", "bad"), "backend");
        expect_reject(load_json("{\"kind\":\"Ingress\",\"metadata\":{\"name\":\"x\"},\"spec\":{"
                                "\"ingressClassName\":\"slipway\",\"rules\":[{\"host\":\"a.com\","
                                "\"http\":{\"paths\":[{\"path\":\"/\",\"pathType\":\"Prefix\","
                                "\"backend\":{\"resource\":{\"kind\":\"Bucket\",\"name\":\"b\"}}}"
                                "]}}]}}"),
                      "resource backends are not supported");
        expect_reject(load_json("{\"kind\":\"Ingress\",\"metadata\":{\"name\":\"x\"},\"spec\":{"
                                "\"ingressClassName\":\"slipway\",\"rules\":[{\"host\":\"a.com\","
                                "\"http\":{\"paths\":[{\"path\":\"/\",\"backend\":{\"service\":{"
                                "\"name\":\"web\",\"port\":{\"number\":80}}}}]}}]}}"),
                      "pathType: missing");
        expect_reject(load_json("{\"kind\":\"Ingress\",\"metadata\":{\"name\":\"x\"},\"spec\":{"
                                "\"ingressClassName\":\"slipway\",\"rules\":[{\"host\":\"a.com\","
                                "\"http\":{\"paths\":[{\"path\":\"/\",\"pathType\":\"Prefix\","
                                "\"backend\":{\"service\":{\"name\":\"web\",\"port\":{\"number\":"
                                "70000}}}}]}}]}}"),
                      "port.number");
        expect_reject(load_json("{\"kind\":\"Ingress\",\"metadata\":{\"name\":\"x\"},\"spec\":{"
                                "\"ingressClassName\":\"slipway\",\"tls\":[{\"hosts\":[\"a.com\"],"
                                "\"secretName\":\"missing\"}]}}"),
                      "secret 'default/missing' not found");
        expect_reject(load_json("{\"kind\":\"Ingress\",\"metadata\":{\"name\":\"x\"},\"spec\":{"
                                "\"ingressClassName\":\"slipway\",\"tls\":[{\"hosts\":[\"a.com;\"],"
                                "\"secretName\":\"s\"}]}}"),
                      "spec.tls[0].hosts[0]");
        expect_reject(load_json("{\"kind\":\"Service\",\"metadata\":{\"name\":\"x\"}}"),
                      "not 'Ingress'");
        expect_reject(load_json("{\"kind\":\"Ingress\",\"metadata\":{\"name\":\"x\","
                                "\"namespace\":\"a;b\"},\"spec\":{}}"),
                      "metadata.namespace");

        /* An error leaves what the source had before untouched. */
        {
                struct sw_err err = SW_ERR_INIT;
                struct ingress_table *t = NULL;
                bool accepted = false;
                json_t *good = one_path("a.com", "/", "Prefix", "web");
                json_t *bad = one_path("a.com", "/x y", "Prefix", "web");
                char *before, *after;

                ingress_table_new(&t);
                CHECK_OK(ingress_table_set_ingress(t, &accepted, good, &res, NULL, &err), &err);
                before = render(t);
                CHECK_INT(ingress_table_set_ingress(t, &accepted, bad, &res, NULL, &err),
                          SW_EINVAL);
                after = render(t);
                CHECK_STR(after, before);
                free(before);
                free(after);
                json_decref(good);
                json_decref(bad);
                ingress_table_free(t);
        }
}

static void test_table_direct(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct ingress_table *t = NULL;
        struct ingress_route bad[] = {
                {"a.com", "/", INGRESS_PATH_PREFIX, "127.0.0.1:1", false},
                {"b.com", "/x { return 200; }", INGRESS_PATH_PREFIX, "127.0.0.1:1", false},
        };
        struct ingress_tls badtls = {"a.com", "/etc/x.crt; include /etc/passwd", "/etc/x.key"};
        char *conf;

        ingress_table_new(&t);
        CHECK_INT(ingress_table_set(t, "src", NULL, bad, 2, NULL, 0, &err), SW_EINVAL);
        CHECK(strstr(err.msg, "src: route 1 path") != NULL);
        sw_err_clear(&err);
        CHECK_INT(ingress_table_set(t, "src", NULL, bad, 1, &badtls, 1, &err), SW_EINVAL);
        CHECK(strstr(err.msg, "tls 0 certificate") != NULL);
        CHECK_INT(ingress_table_count(t), 0);
        sw_err_clear(&err);
        CHECK_OK(ingress_table_set(t, "src", NULL, bad, 1, NULL, 0, &err), &err);
        CHECK_INT(ingress_table_remove(t, "src", &err), 0);
        CHECK_INT(ingress_table_remove(t, "src", &err), SW_ENOTFOUND);
        conf = render(t);
        /* An empty table still gives a working configuration: the 404 server. */
        CHECK(strstr(conf, "server_name _;") != NULL);
        CHECK(strstr(conf, "return 404;") != NULL);
        CHECK(strstr(conf, "upstream sw_") == NULL);
        free(conf);
        ingress_table_free(t);
}

static void test_conflicts_and_order(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct ingress_table *t1 = NULL, *t2 = NULL;
        struct ingress_route old_r[] = {{"a.com", "/api", INGRESS_PATH_PREFIX, "127.0.0.1:1", 0}};
        struct ingress_route new_r[] = {{"a.com", "/api", INGRESS_PATH_PREFIX, "127.0.0.1:2", 0},
                                        {"a.com", "/api", INGRESS_PATH_EXACT, "127.0.0.1:3", 0},
                                        {"a.com", "/", INGRESS_PATH_PREFIX, "127.0.0.1:5", 1}};
        struct ingress_route root[] = {{"a.com", "/", INGRESS_PATH_PREFIX, "127.0.0.1:4", 0}};
        char *c1, *c2, *srv;

        ingress_table_new(&t1);
        ingress_table_new(&t2);
        /* Same content, inserted in different orders: same bytes. */
        CHECK_OK(ingress_table_set(t1, "ns/old", "2026-01-01T00:00:00Z", old_r, 1, NULL, 0, &err),
                 &err);
        CHECK_OK(ingress_table_set(t1, "ns/new", "2026-02-01T00:00:00Z", new_r, 3, NULL, 0, &err),
                 &err);
        CHECK_OK(ingress_table_set(t1, "zz/root", "2026-03-01T00:00:00Z", root, 1, NULL, 0, &err),
                 &err);
        CHECK_OK(ingress_table_set(t2, "zz/root", "2026-03-01T00:00:00Z", root, 1, NULL, 0, &err),
                 &err);
        CHECK_OK(ingress_table_set(t2, "ns/new", "2026-02-01T00:00:00Z", new_r, 3, NULL, 0, &err),
                 &err);
        CHECK_OK(ingress_table_set(t2, "ns/old", "2026-01-01T00:00:00Z", old_r, 1, NULL, 0, &err),
                 &err);
        c1 = render(t1);
        c2 = render(t2);
        CHECK_STR(c1, c2);
        srv = server_of(c1, "a.com");
        /* The older source wins /api/; Exact wins "= /api" over a Prefix's. */
        CHECK(strstr(srv, "location /api/ {\n                        proxy_pass "
                          "http://sw_127_0_0_1_1;") != NULL);
        CHECK(strstr(srv, "location = /api {\n                        proxy_pass "
                          "http://sw_127_0_0_1_3;") != NULL);
        /* An explicit "/" beats a defaultBackend fallback, even from a younger source. */
        CHECK(strstr(srv, "location / {\n                        proxy_pass "
                          "http://sw_127_0_0_1_4;") != NULL);
        /* Each location once. */
        CHECK(strstr(strstr(srv, "location /api/") + 1, "location /api/") == NULL);
        free(srv);
        free(c1);
        free(c2);
        ingress_table_free(t1);
        ingress_table_free(t2);
}

static void test_render_paths_and_hosts(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct ingress_table *t = NULL;
        struct ingress_route r[] = {
                {"w.com", "/foo/", INGRESS_PATH_PREFIX, "127.0.0.1:1", 0},
                {"w.com", "/bar/", INGRESS_PATH_EXACT, "127.0.0.1:1", 0},
                {"w.com", "/baz", INGRESS_PATH_IMPL, "127.0.0.1:1", 0},
                {"*.apps.w.com", "/", INGRESS_PATH_PREFIX, "127.0.0.1:2", 0},
                {"", "/status", INGRESS_PATH_EXACT, "[::1]:3", 0},
        };
        struct ingress_tls tls[] = {{"w.com", "/tls/w.crt", "/tls/w.key"}};
        struct ingress_render_options ro = INGRESS_RENDER_OPTIONS_INIT;
        char *conf = NULL, *srv;
        size_t len;

        ingress_table_new(&t);
        CHECK_OK(ingress_table_set(t, "s", NULL, r, 5, tls, 1, &err), &err);
        conf = render(t);
        srv = server_of(conf, "w.com");
        /* Prefix with a trailing slash still matches the bare path. */
        CHECK(strstr(srv, "location = /foo {") != NULL);
        CHECK(strstr(srv, "location /foo/ {") != NULL);
        /* Exact keeps the slash. */
        CHECK(strstr(srv, "location = /bar/ {") != NULL);
        CHECK(strstr(srv, "location = /bar {") == NULL);
        /* ImplementationSpecific is Prefix. */
        CHECK(strstr(srv, "location = /baz {") != NULL && strstr(srv, "location /baz/ {") != NULL);
        /* No "/" route: 404 rather than nginx's static files. */
        CHECK(strstr(srv, "location / {\n                        return 404;") != NULL);
        /* One label for a Kubernetes wildcard. */
        CHECK(strstr(conf, "server_name \"~^[^.]+\\.apps\\.w\\.com$\";") != NULL);
        /* Host-less routes live in the default server; IPv6 upstream name is a bare word. */
        CHECK(strstr(conf, "server_name _;\n                location = /status {\n"
                           "                        proxy_pass http://sw____1__3;") != NULL);
        CHECK(strstr(conf, "server [::1]:3;") != NULL);
        free(srv);
        free(conf);

        /* No TLS listener: certificates are left out. */
        ro.listen = "127.0.0.1:8088";
        CHECK_OK(ingress_render(&conf, &len, t, &ro, &err), &err);
        CHECK(strstr(conf, "ssl") == NULL);
        free(conf);
        conf = NULL;
        /* Options are validated too. */
        ro.access_log = "/tmp/x.log; include /etc/passwd";
        CHECK_INT(ingress_render(&conf, &len, t, &ro, &err), SW_EINVAL);
        CHECK(strstr(err.msg, "access log") != NULL);
        sw_err_clear(&err);
        ro.access_log = NULL;
        ro.listen = "127.0.0.1:8088 default_server; include x";
        CHECK_INT(ingress_render(&conf, &len, t, &ro, &err), SW_EINVAL);
        sw_err_clear(&err);
        ro.listen = "127.0.0.1:8088";
        ro.tls_listen = "127.0.0.1:8088";
        CHECK_INT(ingress_render(&conf, &len, t, &ro, &err), SW_EINVAL);
        CHECK(conf == NULL);
        ingress_table_free(t);
}

int main(void)
{
        T_RUN(test_valid_host);
        T_RUN(test_valid_path);
        T_RUN(test_valid_backend_and_file);
        T_RUN(test_translate_fixture);
        T_RUN(test_default_backend_and_class);
        T_RUN(test_translate_rejects);
        T_RUN(test_table_direct);
        T_RUN(test_conflicts_and_order);
        T_RUN(test_render_paths_and_hosts);
        return t_done();
}
