/*
 * ingress.h - the edge router: Ingress objects -> route table -> one nginx
 * configuration, checked with `nginx -t`, swapped in atomically, reloaded.
 *
 * Three layers, usable alone:
 *
 *   1. The route table (struct ingress_table): routes (host + path + path
 *      type -> backend address:port) and TLS certificates per host, grouped
 *      by the source they came from (normally one Ingress, "ns/name").
 *      ingress_table_set_ingress() translates a networking.k8s.io/v1 Ingress
 *      (jansson) with a resolver that maps Services and Secrets to addresses
 *      and files; ingress_table_set() takes routes directly.
 *   2. ingress_render(): the whole nginx configuration as text, deterministic
 *      (sorted), so "did anything change?" is a byte comparison.
 *   3. struct ingress_nginx: a supervised nginx master under a prefix
 *      directory; ingress_nginx_apply() stages, tests, swaps and reloads.
 *
 * Every host, path, address and file name is validated before it can reach
 * the configuration; annotations are never copied into it.
 *
 * Ownership: objects from *_new() are freed with their *_free() (accepts
 * NULL). Strings passed in are copied. Rendered text is malloc'ed and owned
 * by the caller.
 * Errors: 0 or a negative SW_E* code with `err` filled; SW_EINVAL for bad
 * input (the message names the field and value).
 * Threads: one thread at a time per object; no shared state between objects.
 */
#ifndef SW_INGRESS_H
#define SW_INGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "common/err.h"

struct sw_config;

/* ---- routes ---------------------------------------------------------------------------- */

enum ingress_path_type {
        INGRESS_PATH_PREFIX = 0, /* element-wise prefix: /foo matches /foo, /foo/x, not /foox */
        INGRESS_PATH_EXACT,      /* the path only */
        INGRESS_PATH_IMPL,       /* ImplementationSpecific: treated as Prefix */
};

struct ingress_route {
        const char *host; /* "app.example.com", "*.example.com", or "" for any host */
        const char *path; /* begins with '/' */
        enum ingress_path_type path_type;
        const char *backend; /* "127.0.0.1:8080", "[::1]:80" or "name.svc:80" */
        bool fallback;       /* from a defaultBackend: loses to any explicit route */
};

struct ingress_tls {
        const char *host;      /* as in routes; "" is not allowed */
        const char *cert_file; /* absolute path of a PEM certificate chain */
        const char *key_file;  /* absolute path of its PEM private key */
};

/*
 * Maps what an Ingress names to what nginx needs. `service` gets the
 * namespace, Service name and port (number > 0, or a name when `port_name`
 * is not NULL) and writes a malloc'ed "address:port" into *out. `tls_secret`
 * (may be NULL: TLS is then refused) writes malloc'ed certificate and key
 * file paths. Both return 0, or a negative SW_E* code with `err` filled
 * (SW_ENOTFOUND when the object does not exist).
 */
struct ingress_resolver {
        int (*service)(char **out, void *ctx, const char *ns, const char *name, int port,
                       const char *port_name, struct sw_err *err);
        int (*tls_secret)(char **cert_out, char **key_out, void *ctx, const char *ns,
                          const char *secret, struct sw_err *err);
        void *ctx;
};

struct ingress_table;

/* An empty table; never fails. */
void ingress_table_new(struct ingress_table **out);
void ingress_table_free(struct ingress_table *t);

/*
 * Replace everything `source` contributed with `routes` and `tls`. Sources
 * are ordered by `order_key` (an Ingress's creationTimestamp; may be NULL),
 * then by name: when two sources claim the same host and path, or the same
 * host's certificate, the first one wins (as ingress-nginx does). Everything
 * is validated first; on error the table is unchanged. Idempotent.
 */
int ingress_table_set(struct ingress_table *t, const char *source, const char *order_key,
                      const struct ingress_route *routes, size_t n_routes,
                      const struct ingress_tls *tls, size_t n_tls, struct sw_err *err);
/* Drop a source's routes; SW_ENOTFOUND when it had none. */
int ingress_table_remove(struct ingress_table *t, const char *source, struct sw_err *err);
/* Number of sources in the table. */
size_t ingress_table_count(const struct ingress_table *t);

/*
 * Translate one networking.k8s.io/v1 Ingress and put its routes under the
 * source "namespace/name". An Ingress of another class (spec.ingressClassName,
 * or the kubernetes.io/ingress.class annotation when that is absent) is not
 * ours: *accepted_out is set false, anything the source had is removed, and
 * 0 is returned. `ingress_class` NULL means "slipway".
 * Errors: SW_EINVAL naming the field for a malformed or unsafe Ingress; the
 * resolver's error for a missing Service or Secret. On error the table is
 * unchanged.
 */
int ingress_table_set_ingress(struct ingress_table *t, bool *accepted_out, const json_t *ingress,
                              const struct ingress_resolver *res, const char *ingress_class,
                              struct sw_err *err);

/* ---- validation (also used by the table; exported for callers and tests) ------------- */

/* A route host: RFC 1123 subdomain, or "*." followed by one; lower case only. */
int ingress_valid_host(const char *host, const char *what, struct sw_err *err);
/* A route path: '/' then [A-Za-z0-9-._~/!*+,:@&=], no "//", "." or ".." segments, <= 1024. */
int ingress_valid_path(const char *path, const char *what, struct sw_err *err);
/* "ipv4:port", "[ipv6]:port" or "dns-name:port", port 1..65535. */
int ingress_valid_backend(const char *addr, const char *what, struct sw_err *err);
/* An absolute path of safe characters ([A-Za-z0-9-._/+@=,]) with no ".." segment. */
int ingress_valid_file(const char *path, const char *what, struct sw_err *err);

/* ---- rendering ------------------------------------------------------------------------- */

struct ingress_render_options {
        const char *listen;     /* "127.0.0.1:8088" (required) */
        const char *tls_listen; /* "127.0.0.1:8443"; NULL: TLS entries are left out */
        const char *access_log; /* file for the JSON access log; NULL means /dev/stdout */
        int worker_processes;   /* 0 means 1 */
        int keepalive;          /* idle upstream connections per worker; 0 means 32 */
};

#define INGRESS_RENDER_OPTIONS_INIT                                                                \
        {                                                                                          \
                NULL, NULL, NULL, 0, 0                                                             \
        }

/*
 * The complete nginx configuration (main context included, `daemon off;`)
 * for the table: a server per host, a location per path, an upstream per
 * backend address, a default server answering 404. Relative paths in it
 * (pid file, temp dirs) are relative to nginx's prefix (-p). The same table
 * and options always give the same bytes. *out is NUL-terminated, caller frees.
 */
int ingress_render(char **out, size_t *len_out, const struct ingress_table *t,
                   const struct ingress_render_options *opts, struct sw_err *err);

/* ---- the nginx process ----------------------------------------------------------------- */

struct ingress_nginx_options {
        const char *nginx;        /* binary; NULL means /usr/sbin/nginx */
        const char *prefix;       /* directory for nginx.conf, pid, temp dirs (created) */
        const char *output;       /* file for nginx's stdout+stderr; NULL: inherit ours */
        int64_t start_timeout_ms; /* wait for the listen socket; 0 means 10000 */
};

#define INGRESS_NGINX_OPTIONS_INIT                                                                 \
        {                                                                                          \
                NULL, NULL, NULL, 0                                                                \
        }

struct ingress_nginx;

/* A handle on nginx under opts->prefix; starts nothing. */
int ingress_nginx_new(struct ingress_nginx **out, const struct ingress_nginx_options *opts,
                      struct sw_err *err);
/* Stops nginx if this handle started it (ingress_nginx_stop), then frees. */
void ingress_nginx_free(struct ingress_nginx *n);

/*
 * Install `conf` (a rendered configuration) when nginx is not running yet
 * and start the master in the foreground (its own process group), then wait
 * until `listen` ("127.0.0.1:8088") accepts connections. The configuration
 * is checked with `nginx -t` first; SW_EINVAL with nginx's message when it
 * fails, SW_EBUSY when something already listens on `listen`, SW_EUNAVAIL
 * when nginx exits or does not listen in time.
 */
int ingress_nginx_start(struct ingress_nginx *n, const char *conf, size_t len, const char *listen,
                        struct sw_err *err);
/* SIGTERM the master, wait up to `grace_ms`, then SIGKILL its process group. Idempotent. */
void ingress_nginx_stop(struct ingress_nginx *n, int64_t grace_ms);
/* The master's pid, or -1 when not running. */
pid_t ingress_nginx_pid(const struct ingress_nginx *n);
/* How many reload signals this handle has sent. */
int64_t ingress_nginx_reloads(const struct ingress_nginx *n);

/*
 * Apply a rendered configuration: when it equals the live one byte for byte,
 * do nothing (*changed_out false). Otherwise write it into PREFIX/staging/,
 * run `nginx -t` on it, and only when that passes rename it over
 * PREFIX/nginx.conf and send SIGHUP to the master (ours, or the one in the
 * pid file). A rejected configuration is removed and the live one keeps
 * serving; SW_EINVAL carries nginx's message. Idempotent.
 */
int ingress_nginx_apply(struct ingress_nginx *n, bool *changed_out, const char *conf, size_t len,
                        struct sw_err *err);

/*
 * Supervision: reap the master if it died, kill what is left of its process
 * group, and start it again on the live configuration (at most once per
 * backoff interval, doubling from 100 ms to 10 s while it keeps dying young).
 * Call it periodically. *restarted_out tells whether it started nginx now.
 */
int ingress_nginx_poll(struct ingress_nginx *n, bool *restarted_out, struct sw_err *err);

/* ---- probing --------------------------------------------------------------------------- */

struct ingress_probe {
        const char *addr;    /* nginx's listen address, "127.0.0.1:8088" */
        const char *host;    /* sent as the Host header */
        const char *path;    /* NULL means "/" */
        long expect_status;  /* 0: any status below 500 */
        int64_t timeout_ms;  /* overall deadline; 0 means 30000 */
        int64_t interval_ms; /* between attempts; 0 means 20 */
};

/*
 * GET http://addr/path with the Host header until the answer has the
 * expected status or the deadline passes. Returns 0 (and the status in
 * *status_out, which may be NULL), or SW_ETIMEDOUT naming the last status
 * or connection error. Needs libcurl's global init (sw_libs_init).
 */
int ingress_wait_host(long *status_out, const struct ingress_probe *p, struct sw_err *err);

/* ---- command line ---------------------------------------------------------------------- */

/* `slipway ingress render FILE.json...`: print the nginx configuration. */
int ingress_cmd(int argc, char **argv, const struct sw_config *cfg);

#endif /* SW_INGRESS_H */
