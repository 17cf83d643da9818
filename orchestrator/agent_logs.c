/*
 * agent_logs.c - the agent's container log endpoint (the part of the
 * kubelet API that `kubectl logs` ends up at).
 *
 * Containers write stdout and stderr to <root>/pods/<uid>/logs/<name>.log
 * (the previous instance's file is <name>.previous.log). This serves
 *   GET /containerLogs/<namespace>/<pod>/<container>?follow=&tailLines=&previous=&limitBytes=
 *       &timestamps=
 * over plain HTTP on 127.0.0.1 only, with the node's port published as
 * status.daemonEndpoints.kubeletEndpoint.Port, so the API server's
 * pods/log subresource can proxy to it. Pods are found through the
 * pod.json files in the pod directories, not through the reconcile
 * thread's table, so the server threads share nothing with it.
 * Each line of a log file starts with the time it was written (RFC 3339,
 * nanoseconds, stamped by the container's supervisor), sent with
 * timestamps=true and dropped otherwise.
 * A log file is rotated when it passes SLIPWAY_POD_LOG_MAX: copied to
 * <name>.log.1 (older copies shifted up to SLIPWAY_POD_LOG_FILES - 1) and
 * truncated, the container writing on through its O_APPEND descriptor.
 * Requests read the rotated copies, oldest first, then the current file;
 * tailLines counts across them. Each rotation counts up <name>.log.gen; a
 * follower that sees the count grow by k reads the rest of what it was
 * reading from the copy .k (same offset), then the newer copies, then the
 * file being written from its start. A restart retires the files to
 * <name>.previous.log[.N].
 * Following ends when the container's log is replaced or removed (restart,
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
#include "common/config.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
#include "orchestrator/agent_int.h"
#include "common/banned.h"

#define TAIL_MAX_BYTES ((size_t)64 << 20)

/*
 * One log request: the files of a container's log, oldest first (the
 * rotated ones, then the one being written), read in turn.
 */
struct follow {
        struct orch_agent *a;
        char **paths; /* oldest first; the last is the file being written */
        size_t n;
        size_t cur; /* the file being read */
        int fd;
        off_t pos;
        int side_fd;      /* a rotated copy read after a rotation under a follower, or -1 */
        off_t side_pos;   /* where reading it goes on */
        int side_idx;     /* its number (".<idx>"); 0: reading the files in order */
        long gen;         /* rotations of the file being written, as last seen */
        char *exit_path;  /* appears when the container ends */
        char *ended_path; /* what the agent renames it to once it has seen it */
        ino_t ino;        /* of the last file, to notice a restart */
        int64_t limit;    /* bytes left to send; -1: no limit */
        bool follow;
        bool timestamps; /* send the time stamped on each line (else it is dropped) */
        bool bol;        /* stripping: at the start of a line */
        bool skipping;   /* stripping: inside a line's time stamp */
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

/*
 * Where the last `n` lines of the concatenated files start: the file index
 * (f->cur) and offset (f->pos). A final newline ends the last line; it does
 * not start one.
 */
static void tail_start(struct follow *f, int64_t n)
{
        char buf[8192];
        int64_t lines = 0;
        size_t scanned = 0;
        bool at_end = true;

        f->cur = 0;
        f->pos = 0;
        if (n < 0)
                return;
        for (size_t k = f->n; k-- > 0;) {
                int fd = open(f->paths[k], O_RDONLY | O_CLOEXEC);
                struct stat st;
                off_t pos;

                if (fd < 0)
                        continue;
                if (fstat(fd, &st) != 0) {
                        close(fd);
                        continue;
                }
                pos = st.st_size;
                if (n == 0) {
                        f->cur = k;
                        f->pos = pos;
                        close(fd);
                        return;
                }
                while (pos > 0) {
                        size_t chunk = pos > (off_t)sizeof(buf) ? sizeof(buf) : (size_t)pos;
                        ssize_t got;
                        pos -= (off_t)chunk;
                        got = pread(fd, buf, chunk, pos);
                        if (got <= 0)
                                break;
                        for (ssize_t i = got - 1; i >= 0; i--) {
                                bool final = at_end && pos + i == st.st_size - 1;
                                if (buf[i] == '\n' && !final && ++lines == n) {
                                        f->cur = k;
                                        f->pos = pos + i + 1;
                                        close(fd);
                                        return;
                                }
                        }
                        scanned += (size_t)got;
                        if (scanned > TAIL_MAX_BYTES) {
                                f->cur = k;
                                f->pos = pos;
                                close(fd);
                                return;
                        }
                }
                if (st.st_size > 0)
                        at_end = false;
                close(fd);
        }
}

/* Open file f->cur (skipping vanished ones); false when there is none left. */
static bool open_cur(struct follow *f)
{
        while (f->cur < f->n) {
                f->fd = open(f->paths[f->cur], O_RDONLY | O_CLOEXEC);
                if (f->fd >= 0)
                        return true;
                f->cur++;
                f->pos = 0;
        }
        return false;
}

/* The next bytes of the files, as they are; END_OF_STREAM at the end. */
/* The rotation count of log file `path` (its "<path>.gen"), 0 when never rotated. */
static long read_gen(const char *path)
{
        char *gp = sw_xasprintf("%s.gen", path), *text = NULL;
        struct sw_err ignored = SW_ERR_INIT;
        long g = 0;

        if (sw_read_file(&text, NULL, gp, 64, &ignored) == 0)
                g = strtol(text, NULL, 10);
        free(text);
        free(gp);
        return g;
}

/* Open rotated file f->side_idx (".<idx>") of the file being written, at f->side_pos. */
static void open_side(struct follow *f)
{
        char *p = sw_xasprintf("%s.%d", f->paths[f->n - 1], f->side_idx);

        f->side_fd = open(p, O_RDONLY | O_CLOEXEC);
        free(p);
}

static ssize_t read_raw(struct follow *f, char *buf, size_t max)
{
        ssize_t n;

        for (;;) {
                struct stat st;

                if (f->side_idx > 0) {
                        n = f->side_fd >= 0 ? pread(f->side_fd, buf, max, f->side_pos) : 0;
                        if (n > 0) {
                                f->side_pos += n;
                                goto got;
                        }
                        /* On to the next newer copy, and at last the file being written. */
                        if (f->side_fd >= 0)
                                close(f->side_fd);
                        f->side_fd = -1;
                        f->side_pos = 0;
                        if (--f->side_idx > 0)
                                open_side(f);
                        continue;
                }
                if (f->fd < 0 && !open_cur(f))
                        return MHD_CONTENT_READER_END_OF_STREAM;
                if (f->follow && f->cur + 1 == f->n) {
                        long g = read_gen(f->paths[f->cur]);
                        if (g > f->gen) {
                                /*
                                 * Rotated g - gen times since we looked: what we had
                                 * not read is at the same offset in the copy made
                                 * first (now ".<g - gen>"), then come the newer ones.
                                 */
                                f->side_idx = (int)(g - f->gen);
                                f->side_pos = f->pos;
                                f->pos = 0;
                                f->gen = g;
                                open_side(f);
                                continue;
                        }
                }
                n = pread(f->fd, buf, max, f->pos);
                if (n > 0) {
                        f->pos += n;
                        goto got;
                }
                if (n < 0)
                        return MHD_CONTENT_READER_END_OF_STREAM;
                if (f->cur + 1 < f->n) {
                        /* The end of a rotated file: on to the next one. */
                        close(f->fd);
                        f->fd = -1;
                        f->cur++;
                        f->pos = 0;
                        continue;
                }
                if (!f->follow || atomic_load(&f->a->stop))
                        return MHD_CONTENT_READER_END_OF_STREAM;
                /* At the end: wait for more unless the container is gone. */
                if (stat(f->paths[f->cur], &st) != 0 || st.st_ino != f->ino ||
                    access(f->exit_path, F_OK) == 0 || access(f->ended_path, F_OK) == 0)
                        return MHD_CONTENT_READER_END_OF_STREAM;
                /* Truncated and the rotation count not written yet: look again soon. */
                sw_sleep_ms(fstat(f->fd, &st) == 0 && st.st_size < f->pos ? 20 : 200);
        }
got:
        return n;
}

/*
 * Drop the time the agent stamped on each line ("<RFC 3339> "), keeping
 * the state across reads; returns the bytes left in `buf`.
 */
static ssize_t strip_stamps(struct follow *f, char *buf, ssize_t n)
{
        ssize_t o = 0;

        for (ssize_t i = 0; i < n; i++) {
                char c = buf[i];
                if (f->bol) {
                        f->bol = false;
                        f->skipping = c >= '0' && c <= '9';
                }
                if (f->skipping && c != '\n') {
                        f->skipping = c != ' ';
                        continue;
                }
                f->skipping = false;
                buf[o++] = c;
                f->bol = c == '\n';
        }
        return o;
}

static ssize_t read_log(void *cls, uint64_t pos, char *buf, size_t max)
{
        struct follow *f = cls;
        ssize_t n;

        (void)pos;
        if (f->limit == 0)
                return MHD_CONTENT_READER_END_OF_STREAM;
        if (f->limit > 0 && (int64_t)max > f->limit)
                max = (size_t)f->limit;
        do {
                n = read_raw(f, buf, max);
                if (n > 0 && !f->timestamps)
                        n = strip_stamps(f, buf, n);
        } while (n == 0);
        if (n > 0 && f->limit > 0)
                f->limit -= n;
        return n;
}

static void free_follow(void *cls)
{
        struct follow *f = cls;

        if (f->fd >= 0)
                close(f->fd);
        if (f->side_fd >= 0)
                close(f->side_fd);
        for (size_t i = 0; i < f->n; i++)
                free(f->paths[i]);
        free(f->paths);
        free(f->exit_path);
        free(f->ended_path);
        free(f);
}

/* Rotated file `i` of `base` ("<base>.<i>"); 0 is the file being written. */
static char *rotated_path(const char *base, int i)
{
        return i ? sw_xasprintf("%s.%d", base, i) : sw_xstrdup(base);
}

void agent_logs_rotate(const struct orch_agent *a, const char *path)
{
        int files = (int)a->o.cfg->pod_log_files;
        char *tmp = NULL, *first = NULL, buf[65536];
        int in = -1, out = -1;
        struct stat st;
        off_t done = 0;

        if (stat(path, &st) != 0 || st.st_size < a->o.cfg->pod_log_max)
                return;
        for (int i = files - 1; i >= 1; i--) {
                char *from = rotated_path(path, i - 1), *to = rotated_path(path, i);
                if (i == files - 1)
                        unlink(to);
                if (i > 1)
                        rename(from, to);
                free(from);
                free(to);
        }
        /*
         * Copy, then truncate: the container keeps its O_APPEND descriptor,
         * so it writes on at the start of the emptied file. A line written
         * between the last copy and the truncation is lost.
         */
        first = rotated_path(path, 1);
        tmp = sw_xasprintf("%s.tmp", first);
        in = open(path, O_RDONLY | O_CLOEXEC);
        out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (in < 0 || out < 0)
                goto out;
        for (;;) {
                ssize_t n = pread(in, buf, sizeof(buf), done);
                if (n <= 0)
                        break;
                if (write(out, buf, (size_t)n) != n)
                        goto out;
                done += n;
        }
        if (rename(tmp, first) == 0) {
                if (truncate(path, 0) != 0) {
                        unlink(first);
                } else {
                        /* Followers learn from the count how many copies to read first. */
                        char *gp = sw_xasprintf("%s.gen", path), num[32];
                        struct sw_err ignored = SW_ERR_INIT;
                        snprintf(num, sizeof(num), "%ld\n", read_gen(path) + 1);
                        sw_write_file_atomic(gp, num, strlen(num), 0600, &ignored);
                        free(gp);
                }
        }
out:
        if (in >= 0)
                close(in);
        if (out >= 0)
                close(out);
        unlink(tmp);
        free(tmp);
        free(first);
}

void agent_logs_retire(const struct orch_agent *a, const char *path, const char *prev)
{
        char *gp = sw_xasprintf("%s.gen", path);

        unlink(gp);
        free(gp);
        for (int i = 0; i < (int)a->o.cfg->pod_log_files; i++) {
                char *from = rotated_path(path, i), *to = rotated_path(prev, i);
                unlink(to);
                rename(from, to);
                free(from);
                free(to);
        }
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
        int idx = 0, n = 0;
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
        if (stat(path, &st) != 0) {
                ret = reply(conn, previous ? 400 : 404,
                            previous ? "previous terminated container not found\n"
                                     : "container has no log yet\n");
                goto out;
        }
        f = sw_xcalloc(1, sizeof(*f));
        f->a = a;
        f->fd = f->side_fd = -1;
        f->paths = sw_xcalloc((size_t)a->o.cfg->pod_log_files, sizeof(*f->paths));
        for (int i = (int)a->o.cfg->pod_log_files - 1; i >= 0; i--) {
                char *p = rotated_path(path, i);
                if (i == 0 || access(p, F_OK) == 0)
                        f->paths[f->n++] = p;
                else
                        free(p);
        }
        tail_start(f, tail);
        f->gen = read_gen(path);
        f->exit_path = sw_xasprintf("%s/c%d/exit", dir, idx);
        f->ended_path = sw_xasprintf("%s/c%d/ended", dir, idx);
        f->ino = st.st_ino;
        f->limit = limit;
        f->follow = flag(conn, "follow") && !previous;
        f->timestamps = flag(conn, "timestamps");
        f->bol = true;
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
