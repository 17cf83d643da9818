/*
 * render.c - the route table as one nginx configuration.
 *
 * Kubernetes path semantics on nginx's location matching:
 *   Exact /p          -> location = /p
 *   Prefix /          -> location /
 *   Prefix /p or /p/  -> location = /p  and  location /p/
 * Prefix matching in Kubernetes is element-wise (/foo matches /foo and
 * /foo/bar, not /foobar); the two locations give exactly that, and nginx's
 * longest-prefix rule gives Kubernetes's longest-match rule. When an Exact
 * and a Prefix route produce the same `location = /p`, Exact wins; when two
 * sources produce the same location, the first source wins (creation order,
 * then name); any explicit route beats a defaultBackend fallback.
 *
 * A host whose only route is Prefix / to an IP address (what slipway
 * renders for every app) gets no server of its own: it is listed in one
 * shared server whose `map $host` picks the backend (see put_mapped()).
 *
 * Everything is sorted (servers by host, locations by path, upstreams by
 * address) so that the same table always gives the same bytes. Values were
 * validated by the table (validate.c) and go in as bare words.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/mem.h"
#include "ingress/ingress_int.h"
#include "common/banned.h"

#define RENDER_MAX_BYTES ((size_t)256 << 20)

/* One `location` of one server, before conflicts are settled. */
struct loc {
        const char *host;
        char *path;   /* owned: the location's URI */
        bool exact;   /* "location =" */
        int fallback; /* 1 for a defaultBackend route: loses to any explicit one */
        int derived;  /* 1 for the "= /p" of a Prefix route: loses to an Exact one */
        size_t src;   /* source rank (sorted order) */
        size_t idx;   /* route index inside the source */
        const char *backend;
};

static int loc_cmp(const void *a, const void *b)
{
        const struct loc *x = a, *y = b;
        int c = strcmp(x->host, y->host);

        if (c)
                return c;
        if ((c = strcmp(x->path, y->path)) != 0)
                return c;
        if (x->exact != y->exact)
                return x->exact ? -1 : 1;
        if (x->fallback != y->fallback)
                return x->fallback - y->fallback;
        if (x->derived != y->derived)
                return x->derived - y->derived;
        if (x->src != y->src)
                return x->src < y->src ? -1 : 1;
        return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

/* The TLS certificate chosen for a host. */
struct cert {
        const char *host;
        const struct ingress_tls *tls;
        size_t src, idx;
};

static int cert_cmp(const void *a, const void *b)
{
        const struct cert *x = a, *y = b;
        int c = strcmp(x->host, y->host);

        if (c)
                return c;
        if (x->src != y->src)
                return x->src < y->src ? -1 : 1;
        return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

static int str_cmp(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct upstream {
        const char *backend;
        char *name;
        bool used; /* by a location of its own server (not by a mapped host) */
};

static int upstream_find(const struct upstream *ups, size_t n, const char *backend)
{
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                int c = strcmp(ups[mid].backend, backend);
                if (c == 0)
                        return (int)mid;
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return -1;
}

static char *upstream_name(const char *backend)
{
        char *name = sw_xasprintf("sw_%s", backend);

        for (char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
                        *p = '_';
        return name;
}

static const struct cert *cert_find(const struct cert *certs, size_t n, const char *host)
{
        size_t lo = 0, hi = n;

        /* certs is sorted and deduplicated by host. */
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                int c = strcmp(certs[mid].host, host);
                if (c == 0)
                        return &certs[mid];
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

static void put_server_name(struct sw_buf *b, const char *host, struct sw_err *err)
{
        if (host[0] != '*') {
                sw_buf_printf(b, err, "                server_name %s;\n", host);
                return;
        }
        /* Kubernetes's "*.example.com" matches exactly one label; nginx's would match several. */
        sw_buf_puts(b, "                server_name \"~^[^.]+", err);
        for (const char *p = host + 1; *p; p++) {
                if (*p == '.')
                        sw_buf_puts(b, "\\.", err);
                else
                        sw_buf_putc(b, *p, err);
        }
        sw_buf_puts(b, "$\";\n", err);
}

static size_t pow2_at_least(size_t v, size_t min)
{
        size_t p = min;

        while (p < v)
                p *= 2;
        return p;
}

static void put_main(struct sw_buf *b, const struct ingress_render_options *o, size_t n_hosts,
                     size_t max_host_len, struct sw_err *err)
{
        sw_buf_printf(b, err,
                      "# Generated by slipway (ingress/render.c); changes here are overwritten.\n"
                      "daemon off;\n"
                      "worker_processes %d;\n"
                      "pid nginx.pid;\n"
                      "error_log stderr warn;\n"
                      "worker_shutdown_timeout 30s;\n"
                      "\n"
                      "events {\n"
                      "        worker_connections 1024;\n"
                      "}\n"
                      "\n"
                      "http {\n"
                      "        server_tokens off;\n"
                      "        default_type application/octet-stream;\n"
                      "        server_names_hash_max_size %zu;\n"
                      "        server_names_hash_bucket_size %zu;\n"
                      "        map_hash_max_size %zu;\n"
                      "        map_hash_bucket_size %zu;\n"
                      "        client_body_temp_path client_body_temp;\n"
                      "        proxy_temp_path proxy_temp;\n"
                      "        fastcgi_temp_path fastcgi_temp;\n"
                      "        uwsgi_temp_path uwsgi_temp;\n"
                      "        scgi_temp_path scgi_temp;\n"
                      "\n",
                      o->worker_processes > 0 ? o->worker_processes : 1,
                      pow2_at_least(n_hosts * 4, 512), pow2_at_least(max_host_len + 32, 64),
                      pow2_at_least(n_hosts * 4, 512), pow2_at_least(max_host_len + 32, 64));
        /* A request id from the client is kept (it may come from a proxy in front). */
        sw_buf_puts(
                b,
                "        map $http_x_request_id $sw_request_id {\n"
                "                default $http_x_request_id;\n"
                "                \"\" $request_id;\n"
                "        }\n"
                "\n"
                "        log_format sw_json escape=json '{\"ts\":\"$time_iso8601\",'\n"
                "                '\"level\":\"info\",\"mod\":\"ingress\",\"msg\":\"request\",'\n"
                "                '\"request_id\":\"$sw_request_id\",\"remote\":\"$remote_addr\",'\n"
                "                '\"host\":\"$host\",\"method\":\"$request_method\",'\n"
                "                '\"uri\":\"$request_uri\",\"status\":$status,'\n"
                "                '\"bytes\":$body_bytes_sent,\"seconds\":$request_time,'\n"
                "                '\"upstream\":\"$upstream_addr\",'\n"
                "                '\"upstream_status\":\"$upstream_status\"}';\n",
                err);
        sw_buf_printf(b, err, "        access_log %s sw_json;\n\n",
                      o->access_log ? o->access_log : "/dev/stdout");
        /*
         * The edge is the first hop: the client's own X-Forwarded-For is
         * replaced, not extended, so it cannot be spoofed through us.
         */
        sw_buf_puts(b,
                    "        proxy_http_version 1.1;\n"
                    "        proxy_set_header Connection \"\";\n"
                    "        proxy_set_header Host $host;\n"
                    "        proxy_set_header X-Request-ID $sw_request_id;\n"
                    "        proxy_set_header X-Real-IP $remote_addr;\n"
                    "        proxy_set_header X-Forwarded-For $remote_addr;\n"
                    "        proxy_set_header X-Forwarded-Proto $scheme;\n"
                    "        proxy_set_header X-Forwarded-Host $host;\n"
                    "        proxy_connect_timeout 5s;\n"
                    "        add_header X-Request-ID $sw_request_id always;\n"
                    "\n",
                    err);
}

static void put_locations(struct sw_buf *b, const struct loc *locs, size_t from, size_t to,
                          const struct upstream *ups, size_t n_ups, struct sw_err *err)
{
        bool has_root = false;

        for (size_t i = from; i < to; i++) {
                int u = upstream_find(ups, n_ups, locs[i].backend);
                if (!locs[i].exact && strcmp(locs[i].path, "/") == 0)
                        has_root = true;
                sw_buf_printf(b, err,
                              "                location %s%s {\n"
                              "                        proxy_pass http://%s;\n"
                              "                }\n",
                              locs[i].exact ? "= " : "", locs[i].path, ups[u].name);
        }
        /* Without this nginx would serve files from PREFIX/html. */
        if (!has_root)
                sw_buf_puts(b,
                            "                location / {\n"
                            "                        return 404;\n"
                            "                }\n",
                            err);
}

/* The end of the run of locations of locs[i]'s host. */
static size_t host_end(const struct loc *locs, size_t i, size_t n)
{
        size_t end = i;

        while (end < n && strcmp(locs[end].host, locs[i].host) == 0)
                end++;
        return end;
}

/*
 * A host whose one route is "Prefix /" without TLS (what slipway renders for
 * an app) needs no server of its own: it goes into the shared server below.
 */
static bool mappable(const struct loc *locs, size_t from, size_t to, const struct cert *c)
{
        const char *b = locs[from].backend;

        /* A name would need a resolver once it comes from a variable; IP literals do not. */
        if (b[0] != '[' && strspn(b, "0123456789.") != (size_t)(strrchr(b, ':') - b))
                return false;
        return to == from + 1 && !c && locs[from].host[0] != '*' && !locs[from].exact &&
               strcmp(locs[from].path, "/") == 0;
}

/*
 * The mappable hosts share one server: its server_name lists them and a map
 * from $host gives the backend address that proxy_pass goes to. A reload of
 * nginx builds every server's location tree and merges every module's
 * configuration into each location, and sets up every upstream block (with
 * keepalive, its connection cache): one server and a map for a thousand apps
 * instead of a thousand servers and upstreams is what keeps a reload cheap
 * (bench/edge: `nginx -t` of 1,000 hosts takes about 40 ms of CPU this way,
 * about 190 ms with a server and an upstream per host). The price: these
 * hosts get no upstream keepalive (a new loopback connection per request).
 */
static void put_mapped(struct sw_buf *b, const struct loc *locs, size_t from, size_t n_locs,
                       const struct cert *certs, size_t n_certs,
                       const struct ingress_render_options *o, struct sw_err *err)
{
        size_t i, end, n = 0;

        for (i = from; i < n_locs; i = end) {
                end = host_end(locs, i, n_locs);
                if (mappable(locs, i, end, cert_find(certs, n_certs, locs[i].host)))
                        n++;
        }
        if (n == 0)
                return;
        sw_buf_printf(b, err,
                      "\n        map $host $sw_route {\n"
                      "                default \"\";\n");
        for (i = from; i < n_locs; i = end) {
                end = host_end(locs, i, n_locs);
                if (mappable(locs, i, end, cert_find(certs, n_certs, locs[i].host)))
                        sw_buf_printf(b, err, "                %s %s;\n", locs[i].host,
                                      locs[i].backend);
        }
        sw_buf_printf(b, err,
                      "        }\n"
                      "\n        server {\n"
                      "                listen %s;\n",
                      o->listen);
        for (i = from; i < n_locs; i = end) {
                end = host_end(locs, i, n_locs);
                if (mappable(locs, i, end, cert_find(certs, n_certs, locs[i].host)))
                        sw_buf_printf(b, err, "                server_name %s;\n", locs[i].host);
        }
        sw_buf_puts(b,
                    "                location / {\n"
                    "                        proxy_pass http://$sw_route;\n"
                    "                }\n"
                    "        }\n",
                    err);
}

int ingress_render(char **out, size_t *len_out, const struct ingress_table *t,
                   const struct ingress_render_options *o, struct sw_err *err_out)
{
        /* Appends fail only past RENDER_MAX_BYTES; they are checked once, at the end. */
        struct sw_err local = SW_ERR_INIT, *err = &local;
        struct sw_buf b;
        const struct ingress__source **srcs = NULL;
        struct loc *locs = NULL;
        struct cert *certs = NULL;
        struct upstream *ups = NULL;
        const char **backs = NULL;
        size_t n_locs = 0, cap_locs = 0, n_certs = 0, n_ups = 0, n_backs = 0, n_hosts = 0;
        size_t total_routes = 0, total_tls = 0, max_host_len = 0, i, j;
        bool any_tls = false;
        int rc;

        sw_buf_init(&b, RENDER_MAX_BYTES);
        if (!o || !o->listen)
                return sw_err_set(err_out, SW_EINVAL, "render: no listen address");
        if ((rc = ingress_valid_backend(o->listen, "listen address", err_out)) != 0)
                return rc;
        if (o->tls_listen) {
                if ((rc = ingress_valid_backend(o->tls_listen, "TLS listen address", err_out)) != 0)
                        return rc;
                if (strcmp(o->tls_listen, o->listen) == 0)
                        return sw_err_set(err_out, SW_EINVAL,
                                          "TLS listen address: same as the plain one ('%s')",
                                          o->listen);
        }
        if (o->access_log && (rc = ingress_valid_file(o->access_log, "access log", err_out)) != 0)
                return rc;

        /* Sources in priority order. */
        srcs = sw_xcalloc(t->n ? t->n : 1, sizeof(*srcs));
        for (i = 0; i < t->n; i++) {
                srcs[i] = &t->src[i];
                total_routes += t->src[i].n_routes;
                total_tls += t->src[i].n_tls;
        }
        qsort(srcs, t->n, sizeof(*srcs), ingress__source_cmp);

        /* Locations. */
        cap_locs = 2 * total_routes + 1;
        locs = sw_xcalloc(cap_locs, sizeof(*locs));
        backs = sw_xcalloc(total_routes + 1, sizeof(*backs));
        for (i = 0; i < t->n; i++) {
                for (j = 0; j < srcs[i]->n_routes; j++) {
                        const struct ingress_route *r = &srcs[i]->routes[j];
                        struct loc l = {.host = r->host,
                                        .fallback = r->fallback,
                                        .src = i,
                                        .idx = j,
                                        .backend = r->backend};
                        size_t plen = strlen(r->path);

                        backs[n_backs++] = r->backend;
                        if (r->path_type == INGRESS_PATH_EXACT) {
                                l.path = sw_xstrdup(r->path);
                                l.exact = true;
                                locs[n_locs++] = l;
                                continue;
                        }
                        while (plen > 1 && r->path[plen - 1] == '/')
                                plen--;
                        if (plen == 1) {
                                l.path = sw_xstrdup("/");
                                locs[n_locs++] = l;
                                continue;
                        }
                        l.path = sw_xstrndup(r->path, plen);
                        l.exact = true;
                        l.derived = 1;
                        locs[n_locs++] = l;
                        l.path = sw_xasprintf("%.*s/", (int)plen, r->path);
                        l.exact = false;
                        l.derived = 0;
                        locs[n_locs++] = l;
                }
        }
        qsort(locs, n_locs, sizeof(*locs), loc_cmp);
        /* Keep the winner of each (host, exact, path): the first after sorting. */
        for (i = 0, j = 0; i < n_locs; i++) {
                if (j > 0 && strcmp(locs[j - 1].host, locs[i].host) == 0 &&
                    locs[j - 1].exact == locs[i].exact &&
                    strcmp(locs[j - 1].path, locs[i].path) == 0) {
                        free(locs[i].path);
                        continue;
                }
                locs[j++] = locs[i];
        }
        n_locs = j;

        /* Upstreams: one per distinct backend address, named after it. */
        qsort(backs, n_backs, sizeof(*backs), str_cmp);
        ups = sw_xcalloc(n_backs + 1, sizeof(*ups));
        for (i = 0; i < n_backs; i++) {
                if (n_ups > 0 && strcmp(ups[n_ups - 1].backend, backs[i]) == 0)
                        continue;
                ups[n_ups].backend = backs[i];
                ups[n_ups].name = upstream_name(backs[i]);
                /* "a-b.c:1" and "a.b-c:1" map to one name; keep names unique. */
                for (j = 0; j < n_ups; j++)
                        if (strcmp(ups[j].name, ups[n_ups].name) == 0) {
                                char *n2 = sw_xasprintf("%s_%zu", ups[n_ups].name, n_ups);
                                free(ups[n_ups].name);
                                ups[n_ups].name = n2;
                                break;
                        }
                n_ups++;
        }

        /* Certificates: the first source's per host. */
        if (o->tls_listen) {
                certs = sw_xcalloc(total_tls + 1, sizeof(*certs));
                for (i = 0; i < t->n; i++)
                        for (j = 0; j < srcs[i]->n_tls; j++)
                                certs[n_certs++] = (struct cert){.host = srcs[i]->tls[j].host,
                                                                 .tls = &srcs[i]->tls[j],
                                                                 .src = i,
                                                                 .idx = j};
                qsort(certs, n_certs, sizeof(*certs), cert_cmp);
                for (i = 0, j = 0; i < n_certs; i++)
                        if (j == 0 || strcmp(certs[j - 1].host, certs[i].host) != 0)
                                certs[j++] = certs[i];
                n_certs = j;
        }

        for (i = 0; i < n_locs; i++) {
                size_t hl = strlen(locs[i].host);
                if (i == 0 || strcmp(locs[i - 1].host, locs[i].host) != 0) {
                        n_hosts++;
                        if (*locs[i].host && cert_find(certs, n_certs, locs[i].host))
                                any_tls = true;
                }
                if (hl > max_host_len)
                        max_host_len = hl;
        }

        /* The default server: routes without a host, else 404. Sorting put host "" first. */
        for (j = 0; j < n_locs && locs[j].host[0] == '\0'; j++)
                ;
        for (i = 0; i < n_locs;) {
                size_t end = host_end(locs, i, n_locs);
                if (i < j || !mappable(locs, i, end, cert_find(certs, n_certs, locs[i].host)))
                        for (; i < end; i++)
                                ups[upstream_find(ups, n_ups, locs[i].backend)].used = true;
                i = end;
        }
        put_main(&b, o, n_hosts, max_host_len, err);
        for (i = 0; i < n_ups; i++)
                if (ups[i].used)
                        sw_buf_printf(&b, err,
                                      "        upstream %s {\n"
                                      "                server %s;\n"
                                      "                keepalive %d;\n"
                                      "        }\n\n",
                                      ups[i].name, ups[i].backend,
                                      o->keepalive > 0 ? o->keepalive : 32);
        sw_buf_printf(&b, err,
                      "        server {\n"
                      "                listen %s default_server;\n",
                      o->listen);
        if (any_tls)
                sw_buf_printf(&b, err,
                              "                listen %s ssl default_server;\n"
                              "                ssl_reject_handshake on;\n",
                              o->tls_listen);
        sw_buf_puts(&b, "                server_name _;\n", err);
        put_locations(&b, locs, 0, j, ups, n_ups, err);
        sw_buf_puts(&b, "        }\n", err);

        put_mapped(&b, locs, j, n_locs, certs, n_certs, o, err);
        for (i = j; i < n_locs;) {
                const char *host = locs[i].host;
                const struct cert *c = cert_find(certs, n_certs, host);
                size_t end = host_end(locs, i, n_locs);

                if (mappable(locs, i, end, c)) {
                        i = end;
                        continue;
                }
                sw_buf_printf(&b, err, "\n        server {\n                listen %s;\n",
                              o->listen);
                if (c)
                        sw_buf_printf(&b, err,
                                      "                listen %s ssl;\n"
                                      "                ssl_certificate %s;\n"
                                      "                ssl_certificate_key %s;\n",
                                      o->tls_listen, c->tls->cert_file, c->tls->key_file);
                put_server_name(&b, host, err);
                put_locations(&b, locs, i, end, ups, n_ups, err);
                sw_buf_puts(&b, "        }\n", err);
                i = end;
        }
        sw_buf_puts(&b, "}\n", err);

        if (local.code) {
                rc = sw_err_set(err_out, local.code, "render: %s", local.msg);
                goto out;
        }
        *out = sw_buf_detach(&b, len_out);
        rc = 0;
out:
        for (i = 0; i < n_locs; i++)
                free(locs[i].path);
        for (i = 0; i < n_ups; i++)
                free(ups[i].name);
        free(locs);
        free(ups);
        free(backs);
        free(certs);
        free(srcs);
        sw_buf_release(&b);
        return rc;
}
