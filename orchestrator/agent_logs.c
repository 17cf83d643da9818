/*
 * agent_logs.c - the agent's container log endpoint (the part of the
 * kubelet API that `kubectl logs` ends up at).
 *
 * Containers write stdout and stderr to <root>/pods/<uid>/logs/<name>.log
 * (the previous instance's file is <name>.previous.log). This serves
 *   GET /containerLogs/<namespace>/<pod>/<container>?follow=&tailLines=&previous=&limitBytes=
 * over plain HTTP on 127.0.0.1 only, with the node's port published as
 * status.daemonEndpoints.kubeletEndpoint.Port, so the API server's
 * pods/log subresource can proxy to it. Pods are found through the
 * pod.json files in the pod directories, not through the reconcile
 * thread's table, so the server threads share nothing with it.
 * Following ends when the container's log is rotated or removed (restart,
 * deletion), when the container has exited, or when the agent stops.
 *
 * Threads: libmicrohttpd runs one thread per connection.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
#include "orchestrator/agent_int.h"
#include "common/banned.h"

#define TAIL_MAX_BYTES ((size_t)64 << 20)

struct follow {
        struct orch_agent *a;
        int fd;
        char *path;      /* the log file, to notice rotation */
        char *exit_path; /* appears when the container ends */
        ino_t ino;
        int64_t limit; /* bytes left to send; -1: no limit */
        bool follow;
};

/* The pod dir and container index of ns/pod/container, from the pod.json files. */
static int find_ctr(char **dir_out, int *idx_out, const struct orch_agent *a, const char *ns,
                    const char *pod, const char *ctr)
{
        char *pods = sw_xasprintf("%s/pods", a->root);
        DIR *d = opendir(pods);
        struct dirent *e;
        int rc = -1;

        while (d && rc != 0 && (e = readdir(d))) {
                char *path, *text = NULL;
                json_t *rec = NULL, *c;
                struct sw_err ignored = SW_ERR_INIT;
                size_t i;

                if (e->d_name[0] == '.')
                        continue;
                path = sw_xasprintf("%s/%s/pod.json", pods, e->d_name);
                if (sw_read_file(&text, NULL, path, 65536, &ignored) == 0 &&
                    sw_json_parse(&rec, text, strlen(text), 0, &ignored) == 0 &&
                    !strcmp(sw_json_str(rec, "namespace", ""), ns) &&
                    !strcmp(sw_json_str(rec, "name", ""), pod)) {
                        json_array_foreach(json_object_get(rec, "containers"), i, c)
                        {
                                /* No container named: the first app container. */
                                if (rc != 0 &&
                                    (*ctr ? !strcmp(json_string_value(c), ctr)
                                          : (json_int_t)i == sw_json_int(rec, "initCount", 0))) {
                                        *dir_out = sw_xasprintf("%s/%s", pods, e->d_name);
                                        *idx_out = (int)i;
                                        rc = 0;
                                }
                        }
                }
                json_decref(rec);
                free(text);
                free(path);
        }
        if (d)
                closedir(d);
        free(pods);
        return rc;
}

/* Offset where the last `n` lines of the file start. */
static off_t tail_offset(int fd, int64_t n)
{
        struct stat st;
        char buf[8192];
        off_t pos, end;
        int64_t lines = 0;

        if (fstat(fd, &st) != 0 || n < 0)
                return 0;
        if (n == 0)
                return st.st_size;
        end = pos = st.st_size;
        while (pos > 0) {
                size_t chunk = pos > (off_t)sizeof(buf) ? sizeof(buf) : (size_t)pos;
                ssize_t got;
                pos -= (off_t)chunk;
                got = pread(fd, buf, chunk, pos);
                if (got <= 0)
                        return 0;
                for (ssize_t i = got - 1; i >= 0; i--) {
                        /* A final newline ends the last line; it does not start one. */
                        if (buf[i] == '\n' && pos + i != end - 1 && ++lines == n)
                                return pos + i + 1;
                }
                if ((size_t)(end - pos) > TAIL_MAX_BYTES)
                        return pos;
        }
        return 0;
}

static ssize_t read_log(void *cls, uint64_t pos, char *buf, size_t max)
{
        struct follow *f = cls;

        (void)pos;
        if (f->limit == 0)
                return MHD_CONTENT_READER_END_OF_STREAM;
        if (f->limit > 0 && (int64_t)max > f->limit)
                max = (size_t)f->limit;
        for (;;) {
                ssize_t n = read(f->fd, buf, max);
                struct stat st;
                if (n > 0) {
                        if (f->limit > 0)
                                f->limit -= n;
                        return n;
                }
                if (n < 0 || !f->follow || atomic_load(&f->a->stop))
                        return MHD_CONTENT_READER_END_OF_STREAM;
                /* At the end: wait for more unless the container is gone. */
                if (stat(f->path, &st) != 0 || st.st_ino != f->ino ||
                    access(f->exit_path, F_OK) == 0)
                        return MHD_CONTENT_READER_END_OF_STREAM;
                sw_sleep_ms(200);
        }
}

static void free_follow(void *cls)
{
        struct follow *f = cls;

        close(f->fd);
        free(f->path);
        free(f->exit_path);
        free(f);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *msg)
{
        struct MHD_Response *r =
                MHD_create_response_from_buffer(strlen(msg), (void *)msg, MHD_RESPMEM_MUST_COPY);
        enum MHD_Result ret;

        MHD_add_response_header(r, "Content-Type", "text/plain");
        ret = MHD_queue_response(conn, code, r);
        MHD_destroy_response(r);
        return ret;
}

static bool flag(struct MHD_Connection *conn, const char *name)
{
        const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
        return v && (!strcmp(v, "true") || !strcmp(v, "1") || !*v);
}

static int64_t num(struct MHD_Connection *conn, const char *name)
{
        const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
        char *end;
        long long n;

        if (!v || !*v)
                return -1;
        n = strtoll(v, &end, 10);
        return *end || n < 0 ? -2 : n;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **state)
{
        struct orch_agent *a = cls;
        char *path = NULL, *seg[3] = {NULL, NULL, NULL}, *save = NULL, *dir = NULL, *name = NULL;
        struct MHD_Response *r;
        struct follow *f;
        enum MHD_Result ret;
        int idx = 0, n = 0, fd;
        int64_t tail = num(conn, "tailLines"), limit = num(conn, "limitBytes");
        bool previous = flag(conn, "previous");
        struct stat st;

        (void)version;
        (void)data;
        (void)data_size;
        if (!*state) {
                *state = (void *)1;
                return MHD_YES;
        }
        if (strcmp(method, "GET") != 0)
                return reply(conn, 405, "only GET is served\n");
        if (strncmp(url, "/containerLogs/", 15) != 0)
                return reply(conn, 404, "not found\n");
        if (tail == -2 || limit == -2)
                return reply(conn, 400, "tailLines and limitBytes must be non-negative numbers\n");
        path = sw_xstrdup(url + 15);
        for (char *s = strtok_r(path, "/", &save); s && n < 3; s = strtok_r(NULL, "/", &save))
                seg[n++] = s;
        if (n < 2 || find_ctr(&dir, &idx, a, seg[0], seg[1], n == 3 ? seg[2] : "") != 0) {
                free(path);
                return reply(conn, 404, "no such pod or container on this node\n");
        }
        {
                char *rec = sw_xasprintf("%s/pod.json", dir), *text = NULL;
                json_t *o = NULL;
                struct sw_err ignored = SW_ERR_INIT;
                if (sw_read_file(&text, NULL, rec, 65536, &ignored) == 0 &&
                    sw_json_parse(&o, text, strlen(text), 0, &ignored) == 0)
                        name = sw_xstrdup(json_string_value(
                                json_array_get(json_object_get(o, "containers"), (size_t)idx)));
                json_decref(o);
                free(text);
                free(rec);
        }
        free(path);
        path = sw_xasprintf("%s/logs/%s%s.log", dir, name ? name : "", previous ? ".previous" : "");
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) != 0) {
                if (fd >= 0)
                        close(fd);
                ret = reply(conn, previous ? 400 : 404,
                            previous ? "previous terminated container not found\n"
                                     : "container has no log yet\n");
                goto out;
        }
        if (tail >= 0)
                lseek(fd, tail_offset(fd, tail), SEEK_SET);
        f = sw_xcalloc(1, sizeof(*f));
        f->a = a;
        f->fd = fd;
        f->path = sw_xstrdup(path);
        f->exit_path = sw_xasprintf("%s/c%d/exit", dir, idx);
        f->ino = st.st_ino;
        f->limit = limit;
        f->follow = flag(conn, "follow") && !previous;
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, read_log, f, free_follow);
        MHD_add_response_header(r, "Content-Type", "text/plain");
        ret = MHD_queue_response(conn, 200, r);
        MHD_destroy_response(r);
out:
        free(name);
        free(dir);
        free(path);
        return ret;
}

int agent_logs_start(struct orch_agent *a, struct sw_err *err)
{
        struct sockaddr_in sa;
        const union MHD_DaemonInfo *info;

        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)a->o.log_port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->logd = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD,
                                   0, NULL, NULL, on_request, a, MHD_OPTION_SOCK_ADDR,
                                   (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT,
                                   (unsigned)0, MHD_OPTION_END);
        if (!a->logd)
                return sw_err_set(err, SW_EIO, "cannot serve container logs on 127.0.0.1:%d",
                                  (int)a->o.log_port);
        info = MHD_get_daemon_info(a->logd, MHD_DAEMON_INFO_BIND_PORT);
        a->log_port = info ? info->port : 0;
        return 0;
}

void agent_logs_stop(struct orch_agent *a)
{
        if (a->logd)
                MHD_stop_daemon(a->logd);
        a->logd = NULL;
}
