/*
 * test_nginx.c - routes through the real nginx (Debian's /usr/sbin/nginx)
 * on free loopback ports, with backends served from this process.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/libs.h"
#include "common/mem.h"
#include "ingress/ingress.h"
#include "tests/harness/edge.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

static struct th_httpd *app_a, *app_b;

static void set_one(struct ingress_table *t, const char *source, const char *host, const char *path,
                    enum ingress_path_type type, const char *backend)
{
        struct sw_err err = SW_ERR_INIT;
        struct ingress_route r = {host, path, type, backend, false};

        CHECK_OK(ingress_table_set(t, source, NULL, &r, 1, NULL, 0, &err), &err);
}

/* GET until the body starts with `prefix` (a reload is asynchronous); returns the last status. */
static long get_until(const char *addr, const char *host, const char *path, const char *prefix,
                      int64_t timeout_ms)
{
        int64_t deadline = sw_mono_ms() + timeout_ms;
        long status;

        for (;;) {
                char *body = NULL;
                status = th_get(addr, host, path, &body);
                bool ok = body && strncmp(body, prefix, strlen(prefix)) == 0;
                free(body);
                if (ok || sw_mono_ms() > deadline)
                        return ok ? status : -status;
                sw_sleep_ms(10);
        }
}

static bool body_is(const char *addr, const char *host, const char *path, long want_status,
                    const char *want_prefix)
{
        char *body = NULL;
        long status = th_get(addr, host, path, &body);
        bool ok = status == want_status &&
                  (!want_prefix || strncmp(body, want_prefix, strlen(want_prefix)) == 0);

        if (!ok)
                t_fail(__FILE__, __LINE__, "GET %s%s: %ld '%.60s', want %ld '%s'", host, path,
                       status, body ? body : "", want_status, want_prefix ? want_prefix : "");
        free(body);
        return ok;
}

static void test_host_routing(void)
{
        struct ingress_table *t = NULL;
        struct th_edge e;
        char *body = NULL, *log = NULL;
        struct sw_err err = SW_ERR_INIT;

        ingress_table_new(&t);
        set_one(t, "default/a", "a.test", "/", INGRESS_PATH_PREFIX, th_httpd_addr(app_a));
        set_one(t, "default/b", "b.test", "/", INGRESS_PATH_PREFIX, th_httpd_addr(app_b));
        th_edge_start(&e, t);

        body_is(e.listen, "a.test", "/", 200, "a / ");
        body_is(e.listen, "b.test", "/hello", 200, "b /hello ");
        /* Unknown host: the default server's 404, not some app. */
        body_is(e.listen, "c.test", "/", 404, NULL);

        /* Proxy headers as the app sees them. */
        CHECK_INT(th_get(e.listen, "a.test", "/hdr", &body), 200);
        CHECK(strstr(body, " xff=127.0.0.1 ") != NULL);
        CHECK(strstr(body, " proto=http ") != NULL);
        CHECK(strstr(body, " host=a.test") != NULL);
        CHECK(strstr(body, " rid=-") == NULL);
        {
                /* The request id the app saw is the one in the JSON access log. */
                const char *rid = strstr(body, " rid=") + 5;
                char id[64];
                int64_t deadline = sw_mono_ms() + 3000;
                bool found = false;

                snprintf(id, sizeof(id), "%.*s", (int)strcspn(rid, " "), rid);
                CHECK_INT(strlen(id), 32);
                while (!found && sw_mono_ms() < deadline) {
                        free(log);
                        log = NULL;
                        if (sw_read_file(&log, NULL, e.access_log, 1 << 20, &err) == 0)
                                found = strstr(log, id) != NULL;
                        if (!found)
                                sw_sleep_ms(20);
                }
                CHECK(found);
                if (found) {
                        char *line = strstr(log, id), *nl;
                        json_t *ev = NULL;
                        while (line > log && line[-1] != '\n')
                                line--;
                        nl = strchr(line, '\n');
                        CHECK_OK(sw_json_parse(&ev, line, nl ? (size_t)(nl - line) : strlen(line),
                                               65536, &err),
                                 &err);
                        CHECK_STR(sw_json_str(ev, "host", ""), "a.test");
                        CHECK_STR(sw_json_str(ev, "mod", ""), "ingress");
                        CHECK_STR(sw_json_str(ev, "uri", ""), "/hdr");
                        CHECK_INT(sw_json_int(ev, "status", 0), 200);
                        CHECK_STR(sw_json_str(ev, "upstream", ""), th_httpd_addr(app_a));
                        json_decref(ev);
                }
        }
        free(body);
        free(log);
        th_edge_stop(&e);
        ingress_table_free(t);
}

static void test_path_semantics(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct ingress_table *t = NULL;
        struct th_edge e;
        const char *a = th_httpd_addr(app_a), *b = th_httpd_addr(app_b);
        struct ingress_route p[] = {
                {"p.test", "/foo", INGRESS_PATH_PREFIX, a, 0},
                {"p.test", "/bar", INGRESS_PATH_EXACT, b, 0},
                {"q.test", "/", INGRESS_PATH_PREFIX, a, 0},
                {"q.test", "/foo/bar/", INGRESS_PATH_PREFIX, b, 0},
                {"q.test", "/foo/bar", INGRESS_PATH_EXACT, a, 0},
        };

        ingress_table_new(&t);
        CHECK_OK(ingress_table_set(t, "default/p", NULL, p, 5, NULL, 0, &err), &err);
        th_edge_start(&e, t);
        /* Prefix /foo: /foo and below, element-wise. */
        body_is(e.listen, "p.test", "/foo", 200, "a /foo ");
        body_is(e.listen, "p.test", "/foo/", 200, "a /foo/ ");
        body_is(e.listen, "p.test", "/foo/x/y", 200, "a /foo/x/y ");
        body_is(e.listen, "p.test", "/foobar", 404, NULL);
        body_is(e.listen, "p.test", "/fo", 404, NULL);
        /* Exact /bar: that path only. */
        body_is(e.listen, "p.test", "/bar", 200, "b /bar ");
        body_is(e.listen, "p.test", "/bar/", 404, NULL);
        body_is(e.listen, "p.test", "/barx", 404, NULL);
        body_is(e.listen, "p.test", "/", 404, NULL);
        /* Longest prefix wins; Exact beats Prefix on the same path. */
        body_is(e.listen, "q.test", "/foo/bar/baz", 200, "b /foo/bar/baz ");
        body_is(e.listen, "q.test", "/foo/bar/", 200, "b /foo/bar/ ");
        body_is(e.listen, "q.test", "/foo/bar", 200, "a /foo/bar ");
        body_is(e.listen, "q.test", "/foo/barx", 200, "a /foo/barx ");
        body_is(e.listen, "q.test", "/", 200, "a / ");
        /* Query strings pass through. */
        body_is(e.listen, "q.test", "/foo/bar/x?y=1", 200, "b /foo/bar/x ");
        th_edge_stop(&e);
        ingress_table_free(t);
}

static void test_update_reload_and_no_change(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct ingress_table *t = NULL;
        struct th_edge e;
        pid_t before[16], after[16], master;
        int nb, na;
        bool changed = true;

        ingress_table_new(&t);
        set_one(t, "default/u", "u.test", "/", INGRESS_PATH_PREFIX, th_httpd_addr(app_a));
        th_edge_start(&e, t);
        master = ingress_nginx_pid(e.nginx);
        body_is(e.listen, "u.test", "/", 200, "a /");

        /* Nothing changed: no test, no signal, the same workers. */
        nb = th_children(master, before, 16);
        CHECK(nb >= 1);
        CHECK_OK(th_edge_apply(&e, t, &changed, &err), &err);
        CHECK(!changed);
        CHECK_INT(ingress_nginx_reloads(e.nginx), 0);
        sw_sleep_ms(300);
        na = th_children(master, after, 16);
        CHECK_INT(na, nb);
        CHECK(na == nb && memcmp(before, after, sizeof(pid_t) * (size_t)na) == 0);

        /* A change: reload, same master, new workers, new route. */
        set_one(t, "default/u", "u.test", "/", INGRESS_PATH_PREFIX, th_httpd_addr(app_b));
        set_one(t, "default/v", "v.test", "/", INGRESS_PATH_PREFIX, th_httpd_addr(app_a));
        CHECK_OK(th_edge_apply(&e, t, &changed, &err), &err);
        CHECK(changed);
        CHECK_INT(ingress_nginx_reloads(e.nginx), 1);
        CHECK_INT(get_until(e.listen, "u.test", "/", "b /", 5000), 200);
        CHECK_INT(get_until(e.listen, "v.test", "/", "a /", 5000), 200);
        CHECK_INT(ingress_nginx_pid(e.nginx), master);
        {
                int64_t deadline = sw_mono_ms() + 5000;
                bool renewed = false;
                while (!renewed && sw_mono_ms() < deadline) {
                        na = th_children(master, after, 16);
                        renewed = na >= 1;
                        for (int i = 0; i < na && renewed; i++)
                                for (int j = 0; j < nb; j++)
                                        if (after[i] == before[j])
                                                renewed = false;
                        if (!renewed)
                                sw_sleep_ms(20);
                }
                CHECK(renewed);
        }
        /* And applying the same table again is again a no-op. */
        CHECK_OK(th_edge_apply(&e, t, &changed, &err), &err);
        CHECK(!changed);
        CHECK_INT(ingress_nginx_reloads(e.nginx), 1);

        /* Removing a source removes its host. */
        CHECK_OK(ingress_table_remove(t, "default/v", &err), &err);
        CHECK_OK(th_edge_apply(&e, t, &changed, &err), &err);
        CHECK(changed);
        {
                /*
                 * Until old workers have seen the master's signal they may still
                 * accept a connection or two, so wait for a steady 404.
                 */
                int64_t deadline = sw_mono_ms() + 5000;
                int steady = 0;
                while (steady < 10 && sw_mono_ms() < deadline) {
                        steady = th_get(e.listen, "v.test", "/", NULL) == 404 ? steady + 1 : 0;
                        sw_sleep_ms(10);
                }
                CHECK_INT(steady, 10);
        }
        th_edge_stop(&e);
        ingress_table_free(t);
}

static void test_rejected_config_keeps_old(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct ingress_table *t = NULL;
        struct th_edge e;
        struct ingress_route r = {"k.test", "/", INGRESS_PATH_PREFIX, NULL, false};
        struct ingress_tls tls = {"k.test", "/nonexistent/slipway/k.crt",
                                  "/nonexistent/slipway/k.key"};
        char *live_before = NULL, *live_after = NULL, *staged;
        bool changed = false;

        r.backend = th_httpd_addr(app_a);
        ingress_table_new(&t);
        CHECK_OK(ingress_table_set(t, "default/k", NULL, &r, 1, NULL, 0, &err), &err);
        th_edge_start(&e, t);
        body_is(e.listen, "k.test", "/", 200, "a /");
        {
                char *path = sw_xasprintf("%s/nginx.conf", e.prefix);
                CHECK_OK(sw_read_file(&live_before, NULL, path, 1 << 20, &err), &err);
                free(path);
        }

        /* A certificate file that does not exist: nginx -t refuses, nothing changes. */
        r.backend = th_httpd_addr(app_b);
        CHECK_OK(ingress_table_set(t, "default/k", NULL, &r, 1, &tls, 1, &err), &err);
        CHECK_INT(th_edge_apply(&e, t, &changed, &err), SW_EINVAL);
        CHECK(strstr(err.msg, "nginx rejected the configuration: [emerg]") != NULL);
        CHECK(strstr(err.msg, "cannot load certificate") != NULL);
        CHECK(strstr(err.msg, "/nonexistent/slipway/k.crt") != NULL);
        CHECK(strchr(err.msg, '\n') == NULL);
        CHECK_INT(ingress_nginx_reloads(e.nginx), 0);

        /* A backend name that does not resolve: refused too, with nginx's words. */
        sw_err_clear(&err);
        r.backend = "nosuch.invalid:80";
        CHECK_OK(ingress_table_set(t, "default/k", NULL, &r, 1, NULL, 0, &err), &err);
        CHECK_INT(th_edge_apply(&e, t, &changed, &err), SW_EINVAL);
        CHECK(strstr(err.msg, "host not found in upstream") != NULL);
        CHECK_INT(ingress_nginx_reloads(e.nginx), 0);

        {
                char *path = sw_xasprintf("%s/nginx.conf", e.prefix);
                CHECK_OK(sw_read_file(&live_after, NULL, path, 1 << 20, &err), &err);
                free(path);
        }
        CHECK_STR(live_after, live_before);
        staged = sw_xasprintf("%s/staging/nginx.conf", e.prefix);
        CHECK(access(staged, F_OK) != 0);
        free(staged);
        /* The old routes keep serving. */
        sw_sleep_ms(200);
        body_is(e.listen, "k.test", "/", 200, "a /");

        /* A good configuration afterwards goes through. */
        sw_err_clear(&err);
        r.backend = th_httpd_addr(app_b);
        CHECK_OK(ingress_table_set(t, "default/k", NULL, &r, 1, NULL, 0, &err), &err);
        CHECK_OK(th_edge_apply(&e, t, &changed, &err), &err);
        CHECK(changed);
        CHECK_INT(get_until(e.listen, "k.test", "/", "b /", 5000), 200);
        free(live_before);
        free(live_after);
        th_edge_stop(&e);
        ingress_table_free(t);
}

/* Clients hammering nginx while it reloads. */
struct hammer {
        const char *addr;
        atomic_bool stop;
        atomic_long ok, failed;
        atomic_int next_id;
        char first_failure[512];
        pthread_mutex_t mu;
};

static size_t sink(char *p, size_t size, size_t n, void *ctx)
{
        (void)p;
        (void)ctx;
        return size * n;
}

static void *hammer_run(void *arg)
{
        struct hammer *h = arg;
        CURL *c = curl_easy_init();
        struct curl_slist *hdr = curl_slist_append(NULL, "Host: zd.test");
        char *fast = sw_xasprintf("http://%s/fast", h->addr);
        char *slow = sw_xasprintf("http://%s/slow", h->addr);
        char msg[CURL_ERROR_SIZE];

        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_PROXY, "");
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, msg);
        /* Half the clients keep their connection alive across reloads, half connect anew. */
        if (atomic_fetch_add(&h->next_id, 1) % 2)
                curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
        for (long i = 0; !atomic_load(&h->stop); i++) {
                long status = 0;
                CURLcode cc;

                /* Every fourth request is in flight for 300 ms: it spans reloads. */
                curl_easy_setopt(c, CURLOPT_URL, i % 4 == 3 ? slow : fast);
                msg[0] = '\0';
                cc = curl_easy_perform(c);
                if (cc == CURLE_OK)
                        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
                if (status == 200) {
                        atomic_fetch_add(&h->ok, 1);
                        continue;
                }
                atomic_fetch_add(&h->failed, 1);
                pthread_mutex_lock(&h->mu);
                if (!h->first_failure[0])
                        snprintf(h->first_failure, sizeof(h->first_failure), "status %ld: %s",
                                 status, msg[0] ? msg : curl_easy_strerror(cc));
                pthread_mutex_unlock(&h->mu);
        }
        curl_slist_free_all(hdr);
        curl_easy_cleanup(c);
        free(fast);
        free(slow);
        return NULL;
}

static void test_zero_downtime_reloads(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct ingress_table *t = NULL;
        struct th_edge e;
        struct hammer h;
        pthread_t th[4];
        int64_t start;

        memset(&h, 0, sizeof(h));
        pthread_mutex_init(&h.mu, NULL);
        ingress_table_new(&t);
        set_one(t, "default/zd", "zd.test", "/", INGRESS_PATH_PREFIX, th_httpd_addr(app_a));
        th_edge_start(&e, t);
        h.addr = e.listen;
        for (int i = 0; i < 4; i++)
                pthread_create(&th[i], NULL, hammer_run, &h);
        sw_sleep_ms(200);
        start = sw_mono_ms();
        for (int i = 0; i < 5; i++) {
                bool changed = false;
                struct th_httpd *to = i % 2 == 0 ? app_b : app_a;
                char extra[32];

                set_one(t, "default/zd", "zd.test", "/", INGRESS_PATH_PREFIX, th_httpd_addr(to));
                snprintf(extra, sizeof(extra), "x%d.test", i);
                set_one(t, "default/extra", extra, "/", INGRESS_PATH_PREFIX, th_httpd_addr(to));
                CHECK_OK(th_edge_apply(&e, t, &changed, &err), &err);
                CHECK(changed);
                CHECK_INT(get_until(e.listen, "zd.test", "/", to == app_b ? "b /" : "a /", 5000),
                          200);
                sw_sleep_ms(150);
        }
        sw_sleep_ms(400);
        atomic_store(&h.stop, true);
        for (int i = 0; i < 4; i++)
                pthread_join(th[i], NULL);
        fprintf(stderr, "  %ld requests during 5 reloads in %lld ms, %ld failed%s%s\n",
                atomic_load(&h.ok), (long long)(sw_mono_ms() - start), atomic_load(&h.failed),
                h.first_failure[0] ? ": " : "", h.first_failure);
        CHECK_INT(atomic_load(&h.failed), 0);
        CHECK(atomic_load(&h.ok) > 50);
        CHECK_INT(ingress_nginx_reloads(e.nginx), 5);
        pthread_mutex_destroy(&h.mu);
        th_edge_stop(&e);
        ingress_table_free(t);
}

/* Running (not gone, not a zombie waiting for a reaper). */
static bool alive(pid_t pid)
{
        struct sw_err err = SW_ERR_INIT;
        char path[64], *text = NULL, *close;
        bool up = false;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        if (sw_read_file(&text, NULL, path, 4096, &err) != 0)
                return false;
        close = strrchr(text, ')');
        up = close && close[1] == ' ' && close[2] != 'Z';
        free(text);
        return up;
}

static void test_restart_after_kill(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct ingress_table *t = NULL;
        struct th_edge e;
        pid_t master, workers[16];
        bool restarted = false;
        int64_t deadline;

        ingress_table_new(&t);
        set_one(t, "default/r", "r.test", "/", INGRESS_PATH_PREFIX, th_httpd_addr(app_a));
        th_edge_start(&e, t);
        master = ingress_nginx_pid(e.nginx);
        /* The master listens before it forks its workers. */
        deadline = sw_mono_ms() + 5000;
        while (th_children(master, workers, 16) < 1 && sw_mono_ms() < deadline)
                sw_sleep_ms(10);
        CHECK(th_children(master, workers, 16) >= 1);
        CHECK_OK(ingress_nginx_poll(e.nginx, &restarted, &err), &err);
        CHECK(!restarted);

        /* SIGKILL leaves the workers holding the port; poll cleans up and restarts. */
        kill(master, SIGKILL);
        deadline = sw_mono_ms() + 10000;
        while (!restarted && sw_mono_ms() < deadline) {
                sw_err_clear(&err);
                if (ingress_nginx_poll(e.nginx, &restarted, &err) != 0)
                        fprintf(stderr, "  poll: %s\n", err.msg);
                if (!restarted)
                        sw_sleep_ms(20);
        }
        CHECK(restarted);
        CHECK(ingress_nginx_pid(e.nginx) > 0 && ingress_nginx_pid(e.nginx) != master);
        CHECK(!alive(workers[0])); /* the orphaned worker is gone */
        body_is(e.listen, "r.test", "/", 200, "a /");

        /* A second nginx on the same address is refused before it starts. */
        {
                struct ingress_nginx_options no = INGRESS_NGINX_OPTIONS_INIT;
                struct ingress_nginx *other = NULL;
                char *prefix = sw_xasprintf("%s/other", e.prefix);
                no.prefix = prefix;
                CHECK_OK(ingress_nginx_new(&other, &no, &err), &err);
                CHECK_INT(ingress_nginx_start(other, "events {}\n", 10, e.listen, &err), SW_EBUSY);
                CHECK(strstr(err.msg, "already listens") != NULL);
                sw_err_clear(&err);
                ingress_nginx_free(other);
                free(prefix);
        }
        /* After a deliberate stop, nothing restarts it. */
        ingress_nginx_stop(e.nginx, 5000);
        CHECK_INT(ingress_nginx_pid(e.nginx), -1);
        CHECK_OK(ingress_nginx_poll(e.nginx, &restarted, &err), &err);
        CHECK(!restarted);
        CHECK_INT(th_get(e.listen, "r.test", "/", NULL), 0);
        th_edge_stop(&e);
        ingress_table_free(t);
}

static void test_wait_host(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct ingress_table *t = NULL;
        struct ingress_probe p = {0};
        struct th_edge e;
        long status = 0;
        bool changed;

        ingress_table_new(&t);
        th_edge_start(&e, t);
        p.addr = e.listen;
        p.host = "w.test";
        p.expect_status = 200;
        /* Long enough for a freshly started nginx to answer (404) at least once. */
        p.timeout_ms = 2000;
        CHECK_INT(ingress_wait_host(&status, &p, &err), SW_ETIMEDOUT);
        CHECK(strstr(err.msg, "'w.test'") != NULL && strstr(err.msg, "status 404") != NULL);
        sw_err_clear(&err);

        set_one(t, "default/w", "w.test", "/", INGRESS_PATH_PREFIX, th_httpd_addr(app_a));
        CHECK_OK(th_edge_apply(&e, t, &changed, &err), &err);
        p.timeout_ms = 5000;
        CHECK_OK(ingress_wait_host(&status, &p, &err), &err);
        CHECK_INT(status, 200);
        /* Any non-5xx answer, e.g. a 404 for a path that is not routed. */
        p.expect_status = 0;
        p.host = "nothing.test";
        CHECK_OK(ingress_wait_host(&status, &p, &err), &err);
        CHECK_INT(status, 404);
        th_edge_stop(&e);

        /* Nobody listening: a timeout naming the connection error. */
        p.timeout_ms = 200;
        CHECK_INT(ingress_wait_host(&status, &p, &err), SW_ETIMEDOUT);
        CHECK(strstr(err.msg, "last:") != NULL);
        sw_err_clear(&err);
        p.host = "bad host";
        CHECK_INT(ingress_wait_host(&status, &p, &err), SW_EINVAL);
        ingress_table_free(t);
}

/* GET https://host:port/ through nginx's TLS listener; returns the status, 0 on a TLS/transport error. */
static long tls_get(const char *tls_listen, const char *host, const char *ca, char **body)
{
        const char *port = strrchr(tls_listen, ':') + 1;
        char *url = sw_xasprintf("https://%s:%s/", host, port);
        char *resolve = sw_xasprintf("%s:%s:127.0.0.1", host, port);
        struct curl_slist *res = curl_slist_append(NULL, resolve);
        CURL *c = curl_easy_init();
        FILE *f = NULL;
        char *text = NULL;
        size_t len = 0;
        long status = 0;

        f = open_memstream(&text, &len);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_RESOLVE, res);
        curl_easy_setopt(c, CURLOPT_CAINFO, ca);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_PROXY, "");
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
        if (curl_easy_perform(c) == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        fclose(f);
        if (body)
                *body = text;
        else
                free(text);
        curl_easy_cleanup(c);
        curl_slist_free_all(res);
        free(url);
        free(resolve);
        return status;
}

static void test_tls_host(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct ingress_table *t = NULL;
        struct th_edge e;
        char *cert = sw_xasprintf("%s/secure.crt", t_tmpdir());
        char *key = sw_xasprintf("%s/secure.key", t_tmpdir());
        char *out = NULL, *body = NULL;
        struct ingress_route r = {"secure.test", "/", INGRESS_PATH_PREFIX, NULL, false};
        struct ingress_route plain = {"plain.test", "/", INGRESS_PATH_PREFIX, NULL, false};
        struct ingress_tls tls = {"secure.test", cert, key};
        int rc;

        {
                char *argv[] = {"/usr/bin/openssl",
                                "req",
                                "-x509",
                                "-newkey",
                                "ec",
                                "-pkeyopt",
                                "ec_paramgen_curve:prime256v1",
                                "-nodes",
                                "-days",
                                "2",
                                "-subj",
                                "/CN=secure.test",
                                "-addext",
                                "subjectAltName=DNS:secure.test",
                                "-keyout",
                                key,
                                "-out",
                                cert,
                                NULL};
                rc = t_run_capture(&out, argv, NULL, 30000);
        }
        CHECK_INT(rc, 0);
        if (rc)
                fprintf(stderr, "%s\n", out);
        free(out);
        r.backend = th_httpd_addr(app_a);
        plain.backend = th_httpd_addr(app_b);
        ingress_table_new(&t);
        CHECK_OK(ingress_table_set(t, "default/secure", NULL, &r, 1, &tls, 1, &err), &err);
        CHECK_OK(ingress_table_set(t, "default/plain", NULL, &plain, 1, NULL, 0, &err), &err);
        th_edge_start(&e, t);

        /* HTTPS with the Secret's certificate, verified against it; the app sees https. */
        CHECK_INT(tls_get(e.tls_listen, "secure.test", cert, &body), 200);
        CHECK(body && strncmp(body, "a / ", 4) == 0);
        CHECK(body && strstr(body, " proto=https ") != NULL);
        free(body);
        /* The same host over plain HTTP. */
        body_is(e.listen, "secure.test", "/", 200, "a /");
        /* A host without a certificate gets no TLS handshake at all. */
        CHECK_INT(tls_get(e.tls_listen, "plain.test", cert, NULL), 0);
        body_is(e.listen, "plain.test", "/", 200, "b /");
        th_edge_stop(&e);
        ingress_table_free(t);
        free(cert);
        free(key);
}

static void test_cli_render(void)
{
        char *out = NULL, *conf_path, *prefix;
        char *fixture = SW_TEST_SOURCE_DIR "/tests/fixtures/ingress/list.json";
        struct sw_err err = SW_ERR_INIT;
        int rc;

        {
                char *argv[] = {(char *)t_slipway(),
                                "ingress",
                                "render",
                                "--backend",
                                "default/blog:8080=127.0.0.1:9005",
                                fixture,
                                NULL};
                rc = t_run_capture(&out, argv, NULL, 30000);
        }
        CHECK_INT(rc, 0);
        CHECK(strstr(out, "server_name blog.example.com;") != NULL);
        CHECK(strstr(out, "skipped default/other: its class is not 'slipway'") != NULL);
        /* What the CLI prints is a configuration nginx accepts. */
        prefix = sw_xasprintf("%s/cli", t_tmpdir());
        conf_path = sw_xasprintf("%s/nginx.conf", prefix);
        CHECK_OK(sw_mkdir_p(prefix, 0755, &err), &err);
        {
                char *start = strstr(out, "# Generated by slipway");
                CHECK(start != NULL);
                if (start)
                        CHECK_OK(sw_write_file_atomic(conf_path, start, strlen(start), 0644, &err),
                                 &err);
        }
        free(out);
        {
                char *argv[] = {"/usr/sbin/nginx", "-t", "-q", "-p", prefix, "-c", conf_path, NULL};
                rc = t_run_capture(&out, argv, NULL, 30000);
        }
        CHECK_INT(rc, 0);
        if (rc)
                fprintf(stderr, "%s\n", out);
        free(out);
        free(conf_path);
        free(prefix);

        {
                char *argv[] = {(char *)t_slipway(), "ingress", "render", fixture, NULL};
                rc = t_run_capture(&out, argv, NULL, 30000);
        }
        CHECK_INT(rc, 1);
        CHECK(strstr(out, "no --backend default/blog:8080=ADDR:PORT given") != NULL);
        free(out);
        {
                char *argv[] = {(char *)t_slipway(), "ingress", "render", "--help", NULL};
                rc = t_run_capture(&out, argv, NULL, 30000);
        }
        CHECK_INT(rc, 0);
        CHECK(strstr(out, "--backend NS/SVC:PORT=ADDR:PORT") != NULL);
        free(out);
        {
                char *argv[] = {(char *)t_slipway(), "ingress", "render", "--backend",
                                "nonsense",          fixture,   NULL};
                rc = t_run_capture(&out, argv, NULL, 30000);
        }
        CHECK_INT(rc, 2);
        free(out);
}

int main(void)
{
        sw_libs_init();
        signal(SIGPIPE, SIG_IGN);
        app_a = th_httpd_start("a");
        app_b = th_httpd_start("b");
        T_RUN(test_host_routing);
        T_RUN(test_path_semantics);
        T_RUN(test_update_reload_and_no_change);
        T_RUN(test_rejected_config_keeps_old);
        T_RUN(test_zero_downtime_reloads);
        T_RUN(test_restart_after_kill);
        T_RUN(test_wait_host);
        T_RUN(test_tls_host);
        T_RUN(test_cli_render);
        th_httpd_stop(app_a);
        th_httpd_stop(app_b);
        sw_libs_shutdown();
        return t_done();
}
