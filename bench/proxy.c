/*
 * bench/proxy.c - what the service proxy costs, against a direct connection
 * to the pod.
 *
 * Real parts, as in tests/integration/agent/test_proxy.c: the API server,
 * the controller manager (Endpoints), a docker-registry with the busybox
 * image, and `slipway node`. One pod (a busybox `sleep`) declares port
 * 9000 and sits behind a Service on port 90; the echo server on that port
 * is this program's, listening inside the pod's network namespace (a
 * process forking `cat` per connection, as `nc -e` does, would measure
 * itself instead of the network path). The same measurements run over
 * three paths:
 *   netns   - a socket made inside the pod's namespace (setns): no relay;
 *   pod     - podIP:9000 on the host, the agent's forwarder (what
 *             "direct to the pod" means in a cluster);
 *   service - clusterIP:90 on the host, the service proxy.
 * Figures: connect + first echo (p50/p99 over CONNS new connections),
 * the round trip of 64 bytes on an open connection (p50/p99 over RTTS),
 * and the throughput of a BULK_MB stream echoed back (writer and reader
 * threads, best of 3). "added" lines are service minus pod (latency) and
 * service / pod (throughput). Targets: the proxy adds <= 100 us p50 and
 * keeps >= 80 % of the direct throughput.
 * Usage: bench_proxy (as root: runc and setns).
 * Note: the machine is shared; the netns line is the floor to compare with.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/json.h"
#include "common/mem.h"
#include "tests/harness/agent_env.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

#define CONNS 300
#define RTTS 3000
#define BULK_MB 128

struct path {
        const char *name;
        const char *netns; /* set: connect inside it to 127.0.0.1:port */
        char ip[32];
        int port;
};

static int64_t now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct conn_job {
        const struct path *p;
        int fd;
};

static void *conn_thread(void *arg)
{
        struct conn_job *j = arg;
        struct sockaddr_in sa;
        int one = 1;

        if (j->p->netns) {
                int ns = open(j->p->netns, O_RDONLY | O_CLOEXEC);
                if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) {
                        if (ns >= 0)
                                close(ns);
                        return NULL;
                }
                close(ns);
        }
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)j->p->port);
        inet_pton(AF_INET, j->p->netns ? "127.0.0.1" : j->p->ip, &sa.sin_addr);
        j->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (j->fd >= 0 && connect(j->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
                close(j->fd);
                j->fd = -1;
        }
        if (j->fd >= 0)
                setsockopt(j->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        return NULL;
}

/* A connection over the path; a thread of its own when it enters a namespace. */
static int path_connect(const struct path *p)
{
        struct conn_job j = {p, -1};
        pthread_t t;

        if (!p->netns) {
                conn_thread(&j);
                return j.fd;
        }
        if (pthread_create(&t, NULL, conn_thread, &j) != 0)
                return -1;
        pthread_join(t, NULL);
        return j.fd;
}

static void *echo_conn(void *arg)
{
        int fd = (int)(intptr_t)arg, one = 1;
        char *buf = sw_xmalloc(1 << 16);

        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        for (;;) {
                ssize_t n = read(fd, buf, 1 << 16), off = 0;
                if (n <= 0)
                        break;
                while (off < n) {
                        ssize_t w = write(fd, buf + off, (size_t)(n - off));
                        if (w <= 0)
                                goto out;
                        off += w;
                }
        }
out:
        close(fd);
        free(buf);
        return NULL;
}

struct server {
        const char *netns;
        int fd;
};

/* The echo server: created inside the pod's namespace, then accepting for ever. */
static void *server_main(void *arg)
{
        struct server *s = arg;
        struct sockaddr_in sa;
        int one = 1, ns = open(s->netns, O_RDONLY | O_CLOEXEC);

        if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) {
                if (ns >= 0)
                        close(ns);
                s->fd = -2;
                return NULL;
        }
        close(ns);
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons(9000);
        s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(s->fd, 512) != 0) {
                close(s->fd);
                s->fd = -2;
                return NULL;
        }
        for (;;) {
                pthread_t t;
                int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        break;
                }
                if (pthread_create(&t, NULL, echo_conn, (void *)(intptr_t)c) == 0)
                        pthread_detach(t);
                else
                        close(c);
        }
        return NULL;
}

static bool echo_once(int fd, size_t n)
{
        char buf[256] = {0};
        size_t got = 0;

        if (write(fd, buf, n) != (ssize_t)n)
                return false;
        while (got < n) {
                ssize_t r = read(fd, buf, n - got);
                if (r <= 0)
                        return false;
                got += (size_t)r;
        }
        return true;
}

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

        return x < y ? -1 : x > y;
}

static int64_t pct(int64_t *v, size_t n, int p)
{
        qsort(v, n, sizeof(*v), cmp_i64);
        return v[(n - 1) * (size_t)p / 100];
}

/* p50 and p99 (us) of connect + first 1-byte echo. */
static bool bench_connect(const struct path *p, int64_t *p50, int64_t *p99)
{
        int64_t *v = sw_xcalloc(CONNS, sizeof(*v));
        size_t n = 0;

        for (int i = 0; i < CONNS; i++) {
                int64_t t0 = now_us();
                int fd = path_connect(p);
                bool ok = fd >= 0 && echo_once(fd, 1);
                if (ok)
                        v[n++] = now_us() - t0;
                if (fd >= 0)
                        close(fd);
        }
        if (n < CONNS / 2) {
                free(v);
                return false;
        }
        *p50 = pct(v, n, 50);
        *p99 = pct(v, n, 99);
        free(v);
        return true;
}

/* p50 and p99 (us) of a 64-byte round trip on one open connection. */
static bool bench_rtt(const struct path *p, int64_t *p50, int64_t *p99)
{
        int64_t *v = sw_xcalloc(RTTS, sizeof(*v));
        int fd = path_connect(p);
        bool ok = fd >= 0;

        for (int i = 0; ok && i < RTTS; i++) {
                int64_t t0 = now_us();
                ok = echo_once(fd, 64);
                v[i] = now_us() - t0;
        }
        if (ok) {
                *p50 = pct(v, RTTS, 50);
                *p99 = pct(v, RTTS, 99);
        }
        if (fd >= 0)
                close(fd);
        free(v);
        return ok;
}

struct writer {
        int fd;
        size_t bytes;
};

static void *writer_main(void *arg)
{
        struct writer *w = arg;
        char *buf = sw_xcalloc(1, 1 << 16);

        for (size_t sent = 0; sent < w->bytes;) {
                size_t n = w->bytes - sent < (1 << 16) ? w->bytes - sent : (1 << 16);
                ssize_t r = write(w->fd, buf, n);
                if (r <= 0)
                        break;
                sent += (size_t)r;
        }
        free(buf);
        return NULL;
}

/* MB/s of BULK_MB echoed back, best of 3. */
static double bench_bulk(const struct path *p)
{
        double best = 0;

        for (int round = 0; round < 3; round++) {
                struct writer w = {path_connect(p), (size_t)BULK_MB << 20};
                char *buf = sw_xmalloc(1 << 16);
                size_t got = 0;
                pthread_t t;
                int64_t t0 = now_us(), dt;

                if (w.fd < 0 || pthread_create(&t, NULL, writer_main, &w) != 0) {
                        free(buf);
                        if (w.fd >= 0)
                                close(w.fd);
                        return 0;
                }
                while (got < w.bytes) {
                        ssize_t r = read(w.fd, buf, 1 << 16);
                        if (r <= 0)
                                break;
                        got += (size_t)r;
                }
                dt = now_us() - t0;
                pthread_join(t, NULL);
                close(w.fd);
                free(buf);
                if (got == w.bytes && dt > 0 && (double)got / (double)dt > best)
                        best = (double)got / (double)dt; /* bytes per us = MB/s */
        }
        return best;
}

static bool running(const json_t *pod)
{
        return !strcmp(t_agent_phase(pod), "Running");
}

static bool ready_with_ep(void)
{
        json_t *ep = t_agent_get("/api/v1/namespaces/default/endpoints/echo");
        bool ok = json_array_size(json_object_get(json_array_get(json_object_get(ep, "subsets"), 0),
                                                  "addresses")) > 0;

        json_decref(ep);
        return ok;
}

int main(void)
{
        struct path paths[3] = {
                {"netns", NULL, "", 9000}, {"pod", NULL, "", 9000}, {"service", NULL, "", 90}};
        int64_t c50[3] = {0}, c99[3] = {0}, r50[3] = {0}, r99[3] = {0};
        double mbps[3] = {0};
        char *netns = NULL, *log = NULL, *spec;
        json_t *pod = NULL, *svc = NULL;
        struct server server = {NULL, -1};
        pthread_t server_thread;
        pid_t ctrl = -1;
        int rc = 1;

        /* `make bench` runs this outside ctest: the slipway binary of this build tree. */
        setenv("SW_TEST_SLIPWAY", SW_TEST_BINARY_DIR "/slipway", 0);
        if (!t_agent_env_up("bench-proxy")) {
                fprintf(stderr, "bench: setup failed\n");
                goto out;
        }
        {
                char *argv[] = {(char *)t_slipway(),
                                "controller-manager",
                                "--kubeconfig",
                                t_agent.orch.kubeconfig,
                                "--node-grace-ms",
                                "600000",
                                NULL};
                const char *env[] = {NULL};
                log = sw_xasprintf("%s/ctrl.log", t_tmpdir());
                ctrl = t_spawn_extra(argv, env, log);
        }
        t_agent.agent_pid = t_agent_start_agent();
        spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"echo\","
                "\"labels\":{\"app\":\"echo\"}},\"spec\":{\"terminationGracePeriodSeconds\":1,"
                "\"containers\":[{\"name\":\"c\",\"image\":\"%s\",\"command\":[\"sleep\","
                "\"100000\"],\"ports\":[{\"containerPort\":9000}],"
                "\"readinessProbe\":{\"tcpSocket\":{\"port\":9000},\"periodSeconds\":1}}]}}",
                t_agent.image);
        if (!t_agent_create_obj("/api/v1/namespaces/default/services",
                                "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":"
                                "{\"name\":\"echo\"},\"spec\":{\"selector\":{\"app\":\"echo\"},"
                                "\"ports\":[{\"port\":90,\"targetPort\":9000}]}}") ||
            !t_agent_create_pod(spec)) {
                free(spec);
                goto out;
        }
        free(spec);
        pod = t_agent_wait_pod("echo", running, 60000);
        if (!pod)
                goto out;
        netns = sw_xasprintf("%s/node/%s/pods/%s/netns", t_agent.data_dir, T_AGENT_NODE,
                             sw_json_str(json_object_get(pod, "metadata"), "uid", ""));
        server.netns = netns;
        if (pthread_create(&server_thread, NULL, server_main, &server) != 0)
                goto out;
        pthread_detach(server_thread);
        json_decref(pod);
        pod = t_agent_wait_pod("echo", t_agent_running_ready, 60000);
        svc = t_agent_get("/api/v1/namespaces/default/services/echo");
        for (int i = 0; i < 100 && !ready_with_ep(); i++)
                sw_sleep_ms(200);
        if (!pod || !svc || !ready_with_ep()) {
                fprintf(stderr, "bench: the echo pod or its endpoints did not come up\n");
                goto out;
        }
        sw_sleep_ms(1000); /* the proxy follows the Endpoints watch */
        paths[0].netns = netns;
        snprintf(paths[1].ip, sizeof(paths[1].ip), "%s",
                 sw_json_str(json_object_get(pod, "status"), "podIP", ""));
        snprintf(paths[2].ip, sizeof(paths[2].ip), "%s",
                 sw_json_str(json_object_get(svc, "spec"), "clusterIP", ""));
        for (int i = 0; i < 3; i++) {
                if (!bench_connect(&paths[i], &c50[i], &c99[i]) ||
                    !bench_rtt(&paths[i], &r50[i], &r99[i]) ||
                    (mbps[i] = bench_bulk(&paths[i])) <= 0) {
                        fprintf(stderr, "bench: path %s (%s:%d) failed\n", paths[i].name,
                                paths[i].ip, paths[i].port);
                        goto out;
                }
        }
        for (int i = 0; i < 3; i++) {
                printf("proxy_%s_connect_p50: %lld us\n", paths[i].name, (long long)c50[i]);
                printf("proxy_%s_connect_p99: %lld us\n", paths[i].name, (long long)c99[i]);
                printf("proxy_%s_rtt_p50: %lld us\n", paths[i].name, (long long)r50[i]);
                printf("proxy_%s_rtt_p99: %lld us\n", paths[i].name, (long long)r99[i]);
                printf("proxy_%s_throughput: %.0f MB/s\n", paths[i].name, mbps[i]);
        }
        printf("proxy_added_connect_p50: %lld us\n", (long long)(c50[2] - c50[1]));
        printf("proxy_added_rtt_p50: %lld us\n", (long long)(r50[2] - r50[1]));
        printf("proxy_throughput_vs_direct: %.0f %%\n", 100.0 * mbps[2] / mbps[1]);
        rc = 0;
out:
        json_decref(pod);
        json_decref(svc);
        free(netns);
        if (t_agent.agent_pid > 0) {
                t_agent_delete_pod("echo");
                t_agent_wait_gone("echo", 20000);
        }
        t_stop(ctrl);
        t_agent_env_down();
        free(log);
        t_done();
        return rc;
}
