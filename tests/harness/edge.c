/*
 * edge.c - HTTP backends in the test process and nginx fixtures for the
 * ingress tests and the edge benchmark.
 */
#include <dirent.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <microhttpd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/mem.h"
#include "tests/harness/edge.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

struct th_httpd {
        struct MHD_Daemon *d;
        char *name;
        int port;
        char addr[32];
        atomic_long requests;
};

static const char *hdr(struct MHD_Connection *c, const char *name)
{
        const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);

        return v ? v : "-";
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
        struct th_httpd *h = cls;
        struct MHD_Response *resp;
        enum MHD_Result r;
        char *body;

        (void)method;
        (void)version;
        (void)upload;
        (void)upload_size;
        (void)state;
        atomic_fetch_add(&h->requests, 1);
        if (strncmp(url, "/slow", 5) == 0)
                sw_sleep_ms(300);
        body = sw_xasprintf("%s %s rid=%s xff=%s proto=%s host=%s\n", h->name, url,
                            hdr(conn, "X-Request-ID"), hdr(conn, "X-Forwarded-For"),
                            hdr(conn, "X-Forwarded-Proto"), hdr(conn, "Host"));
        resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
        r = MHD_queue_response(conn, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        return r;
}

struct th_httpd *th_httpd_start(const char *name)
{
        struct th_httpd *h = sw_xcalloc(1, sizeof(*h));
        struct sockaddr_in a;

        for (int attempt = 0; attempt < 20 && !h->d; attempt++) {
                h->port = t_free_port();
                memset(&a, 0, sizeof(a));
                a.sin_family = AF_INET;
                a.sin_port = htons((uint16_t)h->port);
                a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
                                                MHD_USE_THREAD_PER_CONNECTION,
                                        0, NULL, NULL, handle, h, MHD_OPTION_SOCK_ADDR, &a,
                                        MHD_OPTION_CONNECTION_TIMEOUT, 30U, MHD_OPTION_END);
        }
        if (!h->d) {
                fprintf(stderr, "cannot start the test HTTP server\n");
                exit(1);
        }
        h->name = sw_xstrdup(name);
        snprintf(h->addr, sizeof(h->addr), "127.0.0.1:%d", h->port);
        return h;
}

int th_httpd_port(const struct th_httpd *h)
{
        return h->port;
}

const char *th_httpd_addr(const struct th_httpd *h)
{
        return h->addr;
}

long th_httpd_requests(const struct th_httpd *h)
{
        return atomic_load(&((struct th_httpd *)h)->requests);
}

void th_httpd_stop(struct th_httpd *h)
{
        if (!h)
                return;
        MHD_stop_daemon(h->d);
        free(h->name);
        free(h);
}

void th_edge_start(struct th_edge *e, const struct ingress_table *t)
{
        static int seq;
        struct ingress_nginx_options no = INGRESS_NGINX_OPTIONS_INIT;
        struct sw_err err = SW_ERR_INIT;
        char *conf = NULL, *output;
        size_t len = 0;

        memset(e, 0, sizeof(*e));
        e->prefix = sw_xasprintf("%s/nginx-%d", t_tmpdir(), ++seq);
        e->access_log = sw_xasprintf("%s/access.log", e->prefix);
        output = sw_xasprintf("%s/output.log", e->prefix);
        snprintf(e->listen, sizeof(e->listen), "127.0.0.1:%d", t_free_port());
        snprintf(e->tls_listen, sizeof(e->tls_listen), "127.0.0.1:%d", t_free_port());
        e->ro.listen = e->listen;
        e->ro.tls_listen = e->tls_listen;
        e->ro.access_log = e->access_log;
        no.prefix = e->prefix;
        no.output = output;
        if (sw_mkdir_p(e->prefix, 0755, &err) != 0 ||
            ingress_nginx_new(&e->nginx, &no, &err) != 0 ||
            ingress_render(&conf, &len, t, &e->ro, &err) != 0 ||
            ingress_nginx_start(e->nginx, conf, len, e->listen, &err) != 0) {
                fprintf(stderr, "cannot start nginx: %s\n", err.msg);
                exit(1);
        }
        free(conf);
        free(output);
}

int th_edge_apply(struct th_edge *e, const struct ingress_table *t, bool *changed,
                  struct sw_err *err)
{
        char *conf = NULL;
        size_t len = 0;
        int rc;

        rc = ingress_render(&conf, &len, t, &e->ro, err);
        if (rc == 0)
                rc = ingress_nginx_apply(e->nginx, changed, conf, len, err);
        free(conf);
        return rc;
}

void th_edge_stop(struct th_edge *e)
{
        ingress_nginx_free(e->nginx);
        e->nginx = NULL;
        free(e->prefix);
        free(e->access_log);
        e->prefix = e->access_log = NULL;
}

static size_t collect(char *p, size_t size, size_t n, void *ctx)
{
        struct sw_buf *b = ctx;

        if (sw_buf_append(b, p, size * n, NULL) != 0)
                return 0;
        return size * n;
}

long th_get(const char *addr, const char *host, const char *path, char **body)
{
        struct sw_buf b;
        struct curl_slist *headers = NULL;
        char *url = sw_xasprintf("http://%s%s", addr, path);
        char *hh = sw_xasprintf("Host: %s", host);
        CURL *c = curl_easy_init();
        long status = 0;

        sw_buf_init(&b, 1 << 20);
        headers = curl_slist_append(NULL, hh);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_PROXY, "");
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
        if (curl_easy_perform(c) == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (body)
                *body = sw_xstrdup(sw_buf_str(&b));
        sw_buf_release(&b);
        curl_slist_free_all(headers);
        curl_easy_cleanup(c);
        free(url);
        free(hh);
        return status;
}

static int pid_cmp(const void *a, const void *b)
{
        pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

        return (x > y) - (x < y);
}

int th_children(pid_t parent, pid_t *out, int max)
{
        DIR *d = opendir("/proc");
        struct dirent *de;
        int n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d)) != NULL && n < max) {
                char path[300], *text = NULL, *close;
                struct sw_err err = SW_ERR_INIT;
                int ppid = 0;
                char state = 0;

                if (de->d_name[0] < '0' || de->d_name[0] > '9')
                        continue;
                snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
                if (sw_read_file(&text, NULL, path, 4096, &err) != 0)
                        continue;
                /* "pid (comm) state ppid ...": comm may hold spaces, so go from the last ')'. */
                close = strrchr(text, ')');
                if (close && sscanf(close + 1, " %c %d", &state, &ppid) == 2 && ppid == parent &&
                    state != 'Z')
                        out[n++] = (pid_t)strtol(de->d_name, NULL, 10);
                free(text);
        }
        closedir(d);
        qsort(out, (size_t)n, sizeof(*out), pid_cmp);
        return n;
}
