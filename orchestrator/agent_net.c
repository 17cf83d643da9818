/*
 * agent_net.c - pod network namespaces and the loopback port forwarders.
 *
 * A pod's network namespace is made by a short-lived thread that unshares
 * its own network namespace, brings `lo` up and bind-mounts
 * /proc/thread-self/ns/net on a file in the pod's directory (what
 * `ip netns add` does), so the namespace lives as long as that mount,
 * across agent restarts, and runc joins it by path.
 *
 * Publishing: DESIGN.md keeps all traffic on loopback. Each container port
 * gets listening sockets in the host namespace, on podIP:<containerPort>
 * (all of 127.0.0.0/8 is local on Linux, so a pod IP needs no address
 * added) and on 127.0.0.1:<hostPort>; every accepted connection is served
 * by a thread that enters the pod's namespace (setns only changes the
 * calling thread), connects to 127.0.0.1:<containerPort> there and relays
 * bytes both ways with splice(2) until both sides have closed. The host
 * port is recorded by the caller in the pod's slipway.dev/ports annotation.
 * The service proxy (agent_proxy.c) uses the same pieces: sockets made
 * inside a namespace, connects from inside one, and the relay.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "common/mem.h"
#include "orchestrator/agent_int.h"
#include "common/banned.h"

#define NSFS_MAGIC_NUMBER 0x6e736673

struct netns_job {
        const char *path;
        int err;
        const char *what;
};

static void *netns_thread(void *arg)
{
        struct netns_job *j = arg;
        struct ifreq ifr;
        int fd;

        if (unshare(CLONE_NEWNET) != 0) {
                j->err = errno;
                j->what = "unshare";
                return NULL;
        }
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        memset(&ifr, 0, sizeof(ifr));
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
        if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) {
                j->err = errno;
                j->what = "lo flags";
        } else {
                ifr.ifr_flags |= IFF_UP;
                if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) {
                        j->err = errno;
                        j->what = "lo up";
                }
        }
        if (fd >= 0)
                close(fd);
        if (!j->err && mount("/proc/thread-self/ns/net", j->path, NULL, MS_BIND, NULL) != 0) {
                j->err = errno;
                j->what = "bind-mount the namespace";
        }
        return NULL;
}

/* True when `path` is already a network namespace (a bind mount of nsfs). */
static bool is_netns(const char *path)
{
        struct statfs st;

        return statfs(path, &st) == 0 && st.f_type == NSFS_MAGIC_NUMBER;
}

int agent_netns_create(const char *path, struct sw_err *err)
{
        struct netns_job j = {path, 0, NULL};
        pthread_t t;
        int fd;

        if (is_netns(path))
                return 0;
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
                return sw_err_errno(err, SW_EIO, errno, "create '%s'", path);
        close(fd);
        if (pthread_create(&t, NULL, netns_thread, &j) != 0)
                return sw_err_set(err, SW_EIO, "cannot start a thread");
        pthread_join(t, NULL);
        if (j.err)
                return sw_err_errno(err, j.err == EPERM ? SW_EPERM : SW_EIO, j.err,
                                    "pod network namespace: %s", j.what);
        return 0;
}

void agent_netns_remove(const char *path)
{
        if (umount2(path, MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
                return;
        unlink(path);
}

struct connect_job {
        const char *netns_path;
        uint32_t ip;
        int port, timeout_ms;
        int fd, err;
};

static int connect_timeout(int fd, const struct sockaddr_in *sa, int timeout_ms)
{
        int fl = fcntl(fd, F_GETFL), soerr = 0;
        socklen_t len = sizeof(soerr);
        struct pollfd pfd = {fd, POLLOUT, 0};

        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0) {
                if (errno != EINPROGRESS)
                        return -1;
                if (poll(&pfd, 1, timeout_ms) <= 0) {
                        errno = ETIMEDOUT;
                        return -1;
                }
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr) {
                        errno = soerr ? soerr : EIO;
                        return -1;
                }
        }
        fcntl(fd, F_SETFL, fl);
        return 0;
}

/* Enter the namespace at `netns_path` with the calling thread (NULL: stay); 0 or errno. */
static int enter_netns(const char *netns_path)
{
        int nsfd, e = 0;

        if (!netns_path)
                return 0;
        nsfd = open(netns_path, O_RDONLY | O_CLOEXEC);
        if (nsfd < 0)
                return errno;
        if (setns(nsfd, CLONE_NEWNET) != 0)
                e = errno;
        close(nsfd);
        return e;
}

int agent_netns_connect_here(const char *netns_path, uint32_t ip, int port, int timeout_ms)
{
        struct sockaddr_in sa;
        int fd, e = enter_netns(netns_path);

        if (e) {
                errno = e;
                return -1;
        }
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        sa.sin_addr.s_addr = htonl(ip);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect_timeout(fd, &sa, timeout_ms) != 0) {
                e = errno;
                close(fd);
                errno = e;
                return -1;
        }
        return fd;
}

static void *connect_thread(void *arg)
{
        struct connect_job *j = arg;

        j->fd = agent_netns_connect_here(j->netns_path, j->ip, j->port, j->timeout_ms);
        if (j->fd < 0)
                j->err = errno;
        return NULL;
}

int agent_netns_connect(const char *netns_path, int port, int timeout_ms)
{
        struct connect_job j = {netns_path, INADDR_LOOPBACK, port, timeout_ms, -1, 0};
        pthread_t t;

        /* A thread of its own: it stays in the pod's namespace and then ends. */
        if (pthread_create(&t, NULL, connect_thread, &j) != 0) {
                errno = EAGAIN;
                return -1;
        }
        pthread_join(t, NULL);
        if (j.fd < 0)
                errno = j.err ? j.err : EIO;
        return j.fd;
}

struct listen_job {
        const char *netns_path;
        uint32_t ip;
        int port;
        bool reuseport;
        int fd, err;
};

static int listen_here(uint32_t ip, int port, bool reuseport)
{
        struct sockaddr_in sa;
        int one = 1, e, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -1;
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        sa.sin_addr.s_addr = htonl(ip);
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (reuseport)
                setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 512) != 0) {
                e = errno;
                close(fd);
                errno = e;
                return -1;
        }
        return fd;
}

static void *listen_thread(void *arg)
{
        struct listen_job *j = arg;

        j->err = enter_netns(j->netns_path);
        if (j->err)
                return NULL;
        j->fd = listen_here(j->ip, j->port, j->reuseport);
        if (j->fd < 0)
                j->err = errno;
        return NULL;
}

int agent_netns_listen(const char *netns_path, uint32_t ip, int port, bool reuseport)
{
        struct listen_job j = {netns_path, ip, port, reuseport, -1, 0};
        pthread_t t;

        if (!netns_path)
                return listen_here(ip, port, reuseport);
        if (pthread_create(&t, NULL, listen_thread, &j) != 0) {
                errno = EAGAIN;
                return -1;
        }
        pthread_join(t, NULL);
        if (j.fd < 0)
                errno = j.err ? j.err : EIO;
        return j.fd;
}

int agent_cidr_parse(uint32_t *net, int *prefix, const char *cidr, struct sw_err *err)
{
        char addr[32];
        const char *slash = strchr(cidr, '/');
        struct in_addr in;
        char *end;
        long bits;

        if (!slash || (size_t)(slash - cidr) >= sizeof(addr))
                return sw_err_set(err, SW_EINVAL, "'%s' is not an IPv4 CIDR", cidr);
        memcpy(addr, cidr, (size_t)(slash - cidr));
        addr[slash - cidr] = '\0';
        bits = strtol(slash + 1, &end, 10);
        if (inet_pton(AF_INET, addr, &in) != 1 || !slash[1] || *end || bits < 8 || bits > 32)
                return sw_err_set(err, SW_EINVAL, "'%s' is not an IPv4 CIDR", cidr);
        *net = ntohl(in.s_addr) & (bits == 32 ? 0xffffffffu : ~(0xffffffffu >> bits));
        *prefix = (int)bits;
        return 0;
}

void agent_ip_fmt(char out[16], uint32_t ip)
{
        snprintf(out, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
}

int agent_ip_parse(uint32_t *out, const char *s)
{
        struct in_addr in;

        if (!s || inet_pton(AF_INET, s, &in) != 1)
                return -1;
        *out = ntohl(in.s_addr);
        return 0;
}

/* One direction of a relay: from -> pipe -> to. */
struct relay_dir {
        int from, to;
        int pipe[2];
        size_t pending; /* bytes in the pipe */
        bool eof;       /* `from` ended (or failed) */
        bool done;      /* eof passed on with shutdown(SHUT_WR) */
};

/* Move what can be moved now; false on a write error (the peer is gone). */
static bool relay_step(struct relay_dir *d)
{
        for (;;) {
                if (!d->pending && !d->eof) {
                        ssize_t n = splice(d->from, NULL, d->pipe[1], NULL, 1 << 20,
                                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                        if (n > 0)
                                d->pending = (size_t)n;
                        else if (n == 0 || (errno != EAGAIN && errno != EINTR))
                                d->eof = true;
                }
                if (d->pending) {
                        ssize_t w = splice(d->pipe[0], NULL, d->to, NULL, d->pending,
                                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                        if (w < 0 && errno != EAGAIN && errno != EINTR)
                                return false;
                        if (w > 0) {
                                d->pending -= (size_t)w;
                                continue;
                        }
                        return true; /* `to` is full: wait for POLLOUT */
                }
                if (d->eof) {
                        if (!d->done)
                                shutdown(d->to, SHUT_WR); /* half-close: pass the end on */
                        d->done = true;
                }
                return true; /* `from` has nothing now (or ended) */
        }
}

void agent_relay(int a, int b)
{
        struct relay_dir d[2] = {{a, b, {-1, -1}, 0, false, false},
                                 {b, a, {-1, -1}, 0, false, false}};

        fcntl(a, F_SETFL, fcntl(a, F_GETFL) | O_NONBLOCK);
        fcntl(b, F_SETFL, fcntl(b, F_GETFL) | O_NONBLOCK);
        for (int i = 0; i < 2; i++) {
                if (pipe2(d[i].pipe, O_CLOEXEC | O_NONBLOCK) != 0)
                        goto out;
                fcntl(d[i].pipe[1], F_SETPIPE_SZ, 1 << 20); /* a larger pipe when allowed */
        }
        while (!d[0].done || !d[1].done) {
                struct pollfd p[2] = {{a, 0, 0}, {b, 0, 0}};
                for (int i = 0; i < 2; i++) {
                        if (!relay_step(&d[i]))
                                goto out;
                }
                for (int i = 0; i < 2; i++) {
                        /* d[0] reads a and writes b; d[1] the other way round. */
                        if (!d[i].pending && !d[i].eof)
                                p[i].events |= POLLIN;
                        if (d[i].pending)
                                p[1 - i].events |= POLLOUT;
                }
                if ((d[0].done && d[1].done) || (!p[0].events && !p[1].events))
                        break;
                if (poll(p, 2, -1) < 0 && errno != EINTR)
                        break;
        }
out:
        for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++)
                        if (d[i].pipe[j] >= 0)
                                close(d[i].pipe[j]);
}

/* ---- forwarders ---- */

struct agent_fwd {
        int listen_fd;
        int wake[2]; /* a pipe: written to stop the accept loop */
        int host_port, ctr_port;
        char *netns_path;
        pthread_t thread;
};

struct relay {
        int client;
        int ctr_port;
        char *netns_path;
};

static void *relay_thread(void *arg)
{
        struct relay *r = arg;
        /* This thread is the connection's own: it may stay in the pod's namespace. */
        int up = agent_netns_connect_here(r->netns_path, INADDR_LOOPBACK, r->ctr_port, 5000);

        if (up >= 0) {
                agent_relay(r->client, up);
                close(up);
        }
        close(r->client);
        free(r->netns_path);
        free(r);
        return NULL;
}

static void *accept_thread(void *arg)
{
        struct agent_fwd *f = arg;

        for (;;) {
                struct pollfd p[2] = {{f->listen_fd, POLLIN, 0}, {f->wake[0], POLLIN, 0}};
                pthread_attr_t attr;
                pthread_t t;
                struct relay *r;
                int c;

                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[1].revents)
                        break;
                c = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                        continue;
                r = sw_xcalloc(1, sizeof(*r));
                r->client = c;
                r->ctr_port = f->ctr_port;
                r->netns_path = sw_xstrdup(f->netns_path);
                pthread_attr_init(&attr);
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                if (pthread_create(&t, &attr, relay_thread, r) != 0) {
                        close(c);
                        free(r->netns_path);
                        free(r);
                }
                pthread_attr_destroy(&attr);
        }
        return NULL;
}

int agent_fwd_start(struct agent_fwd **out, const char *netns_path, uint32_t bind_ip, int host_port,
                    int ctr_port, struct sw_err *err)
{
        struct agent_fwd *f = sw_xcalloc(1, sizeof(*f));
        struct sockaddr_in sa;
        socklen_t len = sizeof(sa);
        char ip[16];
        int rc = 0;

        f->listen_fd = f->wake[0] = f->wake[1] = -1;
        f->ctr_port = ctr_port;
        f->netns_path = sw_xstrdup(netns_path);
        agent_ip_fmt(ip, bind_ip);
        f->listen_fd = agent_netns_listen(NULL, bind_ip, host_port, false);
        if (f->listen_fd < 0) {
                rc = sw_err_errno(err, errno == EADDRINUSE ? SW_ECONFLICT : SW_EIO, errno,
                                  "publish %s:%d", ip, host_port);
                goto fail;
        }
        if (pipe2(f->wake, O_CLOEXEC) != 0) {
                rc = sw_err_errno(err, SW_EIO, errno, "pipe");
                goto fail;
        }
        getsockname(f->listen_fd, (struct sockaddr *)&sa, &len);
        f->host_port = ntohs(sa.sin_port);
        if (pthread_create(&f->thread, NULL, accept_thread, f) != 0) {
                rc = sw_err_set(err, SW_EIO, "cannot start a forwarder thread");
                goto fail;
        }
        *out = f;
        return 0;
fail:
        if (f->listen_fd >= 0)
                close(f->listen_fd);
        if (f->wake[0] >= 0) {
                close(f->wake[0]);
                close(f->wake[1]);
        }
        free(f->netns_path);
        free(f);
        return rc;
}

int agent_fwd_host_port(const struct agent_fwd *f)
{
        return f->host_port;
}

int agent_fwd_ctr_port(const struct agent_fwd *f)
{
        return f->ctr_port;
}

void agent_fwd_stop(struct agent_fwd *f)
{
        if (!f)
                return;
        if (write(f->wake[1], "x", 1) != 1) {
                /* The pipe cannot be full: the thread reads nothing but this byte. */
        }
        pthread_join(f->thread, NULL);
        close(f->listen_fd);
        close(f->wake[0]);
        close(f->wake[1]);
        free(f->netns_path);
        free(f);
}
