/*
 * edge.h - test fixtures for the edge: tiny HTTP backends (libmicrohttpd in
 * the test process, on free loopback ports) and a real nginx run through
 * ingress/ under a temporary prefix, plus an HTTP GET helper.
 */
#ifndef SW_TEST_EDGE_H
#define SW_TEST_EDGE_H

#include <stdbool.h>
#include <sys/types.h>

#include "ingress/ingress.h"

/*
 * A backend answering every request with 200 and the body
 * "NAME PATH rid=X-Request-ID xff=X-Forwarded-For proto=X-Forwarded-Proto host=Host\n".
 * A path starting with "/slow" waits 300 ms before answering.
 */
struct th_httpd;
struct th_httpd *th_httpd_start(const char *name);
int th_httpd_port(const struct th_httpd *h);
/* "127.0.0.1:PORT" (static storage in the struct). */
const char *th_httpd_addr(const struct th_httpd *h);
long th_httpd_requests(const struct th_httpd *h);
void th_httpd_stop(struct th_httpd *h);

/* nginx on a free loopback port, prefix under t_tmpdir(). */
struct th_edge {
        struct ingress_nginx *nginx;
        struct ingress_render_options ro;
        char listen[64];
        char tls_listen[64];
        char *prefix;
        char *access_log;
};

/* Start nginx on the rendering of `t`; aborts the test binary when nginx cannot start. */
void th_edge_start(struct th_edge *e, const struct ingress_table *t);
/* Render `t` and apply it. */
int th_edge_apply(struct th_edge *e, const struct ingress_table *t, bool *changed,
                  struct sw_err *err);
void th_edge_stop(struct th_edge *e);

/*
 * GET http://addr/path with Host: host on a fresh connection; returns the
 * status (0 on a transport error) and the body in *body (malloc'ed; may be NULL).
 */
long th_get(const char *addr, const char *host, const char *path, char **body);

/* The pids of `parent`'s children (nginx workers), sorted; returns how many. */
int th_children(pid_t parent, pid_t *out, int max);

#endif
