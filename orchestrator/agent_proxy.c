/*
 * agent_proxy.c - the service proxy of a node (kube-proxy's job) and the
 * service discovery files of its pods.
 *
 * For every Service with a ClusterIP (allocated from SLIPWAY_SERVICE_CIDR,
 * inside 127.0.0.0/8), the proxy listens on clusterIP:port in the host's
 * network namespace and inside the namespace of every pod of this node,
 * and hands each accepted connection to one of the Service's ready
 * endpoints (the `addresses` of its Endpoints, round robin per listener;
 * an endpoint that refuses is skipped for the next one). NodePort and
 * LoadBalancer Services also listen on the node's address (127.0.0.1) at
 * their nodePort in the host namespace. Host listeners use SO_REUSEPORT so
 * that two agents on one machine can both serve a ClusterIP.
 *
 * An endpoint that is a pod of this node is reached directly inside its
 * namespace (the relay thread enters it), not through the pod's forwarder,
 * which saves a hop; other endpoints are reached at podIP:port.
 *
 * State comes from a list of Services and Endpoints, redone whenever a
 * watch on either reports an event and every few seconds (level-driven);
 * the pods come from the agent (agent_proxy_pod_add/remove). Each pod's
 * /etc/hosts (bind-mounted from its directory) is rewritten in place when
 * the Services change, so names added later resolve too.
 *
 * Threads: a sync thread (lists, reconciles listeners, rewrites hosts
 * files), two watch threads that only wake it, an accept thread, and one
 * detached relay thread per connection. `mu` guards the cached lists, the
 * pod table and the listener table; `sync_mu` serialises reconciles, the
 * only writers of the listener table (so a reconcile reads the table
 * without `mu`). Only the accept thread closes listening sockets.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "orchestrator/agent_int.h"
#include "orchestrator/client/kube.h"
#include "common/banned.h"

#define PX_RESYNC_MS 5000
#define PX_CONNECT_MS 3000
#define PX_MAX_TRIES 8
#define PX_NODE_IP 0x7f000001u /* 127.0.0.1, the node's InternalIP */

struct px_backend {
        uint32_t ip;
        int port;
};

struct px_pod {
        char *uid, *ns, *name, *netns, *hosts;
        char ip[16];
        char *hosts_sent; /* the text last written to its hosts file */
};

struct px_lsn {
        char *netns; /* NULL: the host's namespace */
        uint32_t ip;
        int port;
        int fd;
        struct px_backend *be; /* ready endpoints */
        size_t nbe;
        size_t rr;
        bool wanted; /* seen in the current reconcile */
};

struct agent_proxy {
        struct orch_agent *a;
        struct orch_kube *kube, *wsvc, *wep;
        pthread_t threads[4]; /* accept, sync, watch services, watch endpoints */
        size_t nthreads;
        atomic_bool stop;
        pthread_mutex_t mu, sync_mu;
        pthread_cond_t cond;
        bool dirty;
        int wake[2];       /* wakes the accept thread */
        json_t *services;  /* items of the last Service list */
        json_t *endpoints; /* "ns/name" -> Endpoints */
        struct px_pod *pods;
        size_t npods;
        struct px_lsn *lsn;
        size_t nlsn;
        int *graveyard; /* listening sockets for the accept thread to close */
        size_t ngrave;
};

struct px_relay {
        int client;
        size_t n;
        struct px_backend be[PX_MAX_TRIES];
        char *netns[PX_MAX_TRIES]; /* a pod of this node: reach it inside; else NULL */
};

/* ---- helpers on the cached objects ---- */

/* The Service's ClusterIP when it is one we serve (inside 127.0.0.0/8). */
static bool svc_cluster_ip(uint32_t *ip, const json_t *svc)
{
        const char *s = sw_json_str(json_object_get(svc, "spec"), "clusterIP", "");

        return agent_ip_parse(ip, s) == 0 && (*ip >> 24) == 127;
}

/* The ready endpoints of a Service port, from its Endpoints (`ep` may be NULL). */
static void endpoint_backends(struct px_backend **out, size_t *n, const json_t *ep,
                              const json_t *sport)
{
        const char *pname = sw_json_str(sport, "name", "");
        const json_t *sub, *addr, *port;
        size_t i, j, k;

        *out = NULL;
        *n = 0;
        json_array_foreach(json_object_get(ep, "subsets"), i, sub)
        {
                const json_t *ports = json_object_get(sub, "ports");
                int num = 0;

                json_array_foreach(ports, j, port)
                {
                        if (!strcmp(sw_json_str(port, "name", ""), pname) ||
                            (!*pname && json_array_size(ports) == 1))
                                num = (int)sw_json_int(port, "port", 0);
                }
                if (num <= 0 || num > 65535)
                        continue;
                json_array_foreach(json_object_get(sub, "addresses"), k, addr)
                {
                        uint32_t ip;
                        if (agent_ip_parse(&ip, sw_json_str(addr, "ip", NULL)) != 0)
                                continue;
                        *out = sw_xrealloc(*out, (*n + 1) * sizeof(**out));
                        (*out)[*n].ip = ip;
                        (*out)[*n].port = num;
                        (*n)++;
                }
        }
}

/* The environment name of a Service: upper case, '-' as '_'. */
static void env_name(char *out, size_t size, const char *name)
{
        size_t i = 0;

        for (; name[i] && i + 1 < size; i++) {
                char c = name[i];
                out[i] = c == '-' ? '_' : (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
        }
        out[i] = '\0';
}

static void env_add(json_t *env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void env_add(json_t *env, const char *fmt, ...)
{
        char line[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        json_array_append_new(env, json_string(line));
}

json_t *agent_proxy_env(struct agent_proxy *px, const char *ns)
{
        json_t *env = json_array();
        const json_t *svc, *sp;
        size_t i, j;

        if (!px)
                return env;
        pthread_mutex_lock(&px->mu);
        json_array_foreach(px->services, i, svc)
        {
                const json_t *meta = json_object_get(svc, "metadata");
                const json_t *ports = json_object_get(json_object_get(svc, "spec"), "ports");
                char name[256], ip[16];
                uint32_t cip;
                bool first = true;

                if (strcmp(sw_json_str(meta, "namespace", ""), ns) != 0 ||
                    !svc_cluster_ip(&cip, svc))
                        continue;
                env_name(name, sizeof(name), sw_json_str(meta, "name", ""));
                agent_ip_fmt(ip, cip);
                json_array_foreach(ports, j, sp)
                {
                        long long port = (long long)sw_json_int(sp, "port", 0);
                        char pname[128];

                        if (strcmp(sw_json_str(sp, "protocol", "TCP"), "TCP") != 0)
                                continue;
                        env_name(pname, sizeof(pname), sw_json_str(sp, "name", ""));
                        if (first) {
                                env_add(env, "%s_SERVICE_HOST=%s", name, ip);
                                env_add(env, "%s_SERVICE_PORT=%lld", name, port);
                                env_add(env, "%s_PORT=tcp://%s:%lld", name, ip, port);
                                first = false;
                        }
                        if (*pname)
                                env_add(env, "%s_SERVICE_PORT_%s=%lld", name, pname, port);
                        env_add(env, "%s_PORT_%lld_TCP=tcp://%s:%lld", name, port, ip, port);
                        env_add(env, "%s_PORT_%lld_TCP_PROTO=tcp", name, port);
                        env_add(env, "%s_PORT_%lld_TCP_PORT=%lld", name, port, port);
                        env_add(env, "%s_PORT_%lld_TCP_ADDR=%s", name, port, ip);
                }
        }
        pthread_mutex_unlock(&px->mu);
        return env;
}

/* The hosts file of a pod; px->mu held. */
static char *hosts_render(const struct agent_proxy *px, const char *ns, const char *pod_name,
                          const char *pod_ip)
{
        struct sw_buf b;
        const json_t *svc;
        size_t i;

        sw_buf_init(&b, 1 << 22);
        sw_buf_printf(&b, NULL,
                      "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                      "%s\t%s\n",
                      pod_ip, pod_name);
        json_array_foreach(px->services, i, svc)
        {
                const json_t *meta = json_object_get(svc, "metadata");
                const char *sns = sw_json_str(meta, "namespace", ""),
                           *name = sw_json_str(meta, "name", "");
                char ip[16];
                uint32_t cip;

                if (!svc_cluster_ip(&cip, svc))
                        continue;
                agent_ip_fmt(ip, cip);
                sw_buf_printf(&b, NULL, "%s\t%s%s%s.%s %s.%s.svc %s.%s.svc.cluster.local\n", ip,
                              strcmp(sns, ns) ? "" : name, strcmp(sns, ns) ? "" : " ", name, sns,
                              name, sns, name, sns);
        }
        return sw_buf_detach(&b, NULL);
}

/*
 * Write in place (not by rename): the file is bind-mounted into running
 * containers, which keep seeing the same inode.
 */
static int hosts_write(const char *path, const char *text, struct sw_err *err)
{
        size_t len = strlen(text), off = 0;
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        if (fd < 0)
                return sw_err_errno(err, SW_EIO, errno, "write '%s'", path);
        while (off < len) {
                ssize_t w = write(fd, text + off, len - off);
                if (w <= 0) {
                        int e = errno;
                        close(fd);
                        return sw_err_errno(err, SW_EIO, e, "write '%s'", path);
                }
                off += (size_t)w;
        }
        close(fd);
        return 0;
}

/* Bring every pod's hosts file up to date; called without px->mu. */
static void hosts_update(struct agent_proxy *px)
{
        pthread_mutex_lock(&px->mu);
        for (size_t i = 0; i < px->npods; i++) {
                struct px_pod *p = &px->pods[i];
                char *text = hosts_render(px, p->ns, p->name, p->ip);
                struct sw_err err = SW_ERR_INIT;

                if (p->hosts_sent && !strcmp(p->hosts_sent, text)) {
                        free(text);
                        continue;
                }
                if (hosts_write(p->hosts, text, &err) == 0) {
                        free(p->hosts_sent);
                        p->hosts_sent = text;
                } else {
                        free(text);
                        agent_log_err(px->a, "update /etc/hosts", NULL, &err);
                }
        }
        pthread_mutex_unlock(&px->mu);
}

/* ---- listeners ---- */

struct px_want {
        char *netns;
        uint32_t ip;
        int port;
        struct px_backend *be;
        size_t nbe;
};

static void want_add(struct px_want **w, size_t *n, const char *netns, uint32_t ip, int port,
                     const struct px_backend *be, size_t nbe)
{
        struct px_want *x;

        *w = sw_xrealloc(*w, (*n + 1) * sizeof(**w));
        x = &(*w)[(*n)++];
        x->netns = netns ? sw_xstrdup(netns) : NULL;
        x->ip = ip;
        x->port = port;
        x->nbe = nbe;
        x->be = NULL;
        if (nbe) {
                x->be = sw_xmalloc(nbe * sizeof(*be));
                memcpy(x->be, be, nbe * sizeof(*be));
        }
}

/* What should be listened on, from the cache; px->mu held. */
static void wants_compute(struct px_want **out, size_t *nout, const struct agent_proxy *px)
{
        const json_t *svc, *sp;
        size_t i, j;

        *out = NULL;
        *nout = 0;
        json_array_foreach(px->services, i, svc)
        {
                const json_t *meta = json_object_get(svc, "metadata");
                const json_t *spec = json_object_get(svc, "spec");
                const char *type = sw_json_str(spec, "type", "ClusterIP");
                char key[512];
                const json_t *ep;
                uint32_t cip;

                if (!svc_cluster_ip(&cip, svc))
                        continue;
                snprintf(key, sizeof(key), "%s/%s", sw_json_str(meta, "namespace", ""),
                         sw_json_str(meta, "name", ""));
                ep = json_object_get(px->endpoints, key);
                json_array_foreach(json_object_get(spec, "ports"), j, sp)
                {
                        int port = (int)sw_json_int(sp, "port", 0);
                        int node_port = (int)sw_json_int(sp, "nodePort", 0);
                        struct px_backend *be;
                        size_t nbe;

                        if (port <= 0 || port > 65535 ||
                            strcmp(sw_json_str(sp, "protocol", "TCP"), "TCP"))
                                continue;
                        endpoint_backends(&be, &nbe, ep, sp);
                        want_add(out, nout, NULL, cip, port, be, nbe);
                        for (size_t k = 0; k < px->npods; k++)
                                if (px->pods[k].netns)
                                        want_add(out, nout, px->pods[k].netns, cip, port, be, nbe);
                        if (node_port > 0 && node_port <= 65535 &&
                            (!strcmp(type, "NodePort") || !strcmp(type, "LoadBalancer")))
                                want_add(out, nout, NULL, PX_NODE_IP, node_port, be, nbe);
                        free(be);
                }
        }
}

static bool same_place(const struct px_lsn *l, const struct px_want *w)
{
        return l->ip == w->ip && l->port == w->port &&
               ((!l->netns && !w->netns) || (l->netns && w->netns && !strcmp(l->netns, w->netns)));
}

/* Make the listener table match the cache. */
static void reconcile(struct agent_proxy *px)
{
        struct px_want *w = NULL;
        size_t nw = 0;

        pthread_mutex_lock(&px->sync_mu);
        pthread_mutex_lock(&px->mu);
        wants_compute(&w, &nw, px);
        for (size_t i = 0; i < px->nlsn; i++)
                px->lsn[i].wanted = false;
        pthread_mutex_unlock(&px->mu);

        for (size_t i = 0; i < nw; i++) {
                struct px_lsn *l = NULL;
                size_t k;
                int fd;

                for (k = 0; k < px->nlsn && !l; k++)
                        if (same_place(&px->lsn[k], &w[i]))
                                l = &px->lsn[k];
                if (l) {
                        pthread_mutex_lock(&px->mu);
                        l->wanted = true;
                        free(l->be);
                        l->be = w[i].be;
                        l->nbe = w[i].nbe;
                        w[i].be = NULL;
                        pthread_mutex_unlock(&px->mu);
                        continue;
                }
                fd = agent_netns_listen(w[i].netns, w[i].ip, w[i].port, !w[i].netns);
                if (fd < 0) {
                        char ip[16];
                        agent_ip_fmt(ip, w[i].ip);
                        sw_log(SW_LOG_WARN, "orch_proxy", "cannot listen", "{s:s,s:i,s:s,s:s}",
                               "ip", ip, "port", w[i].port, "netns",
                               w[i].netns ? w[i].netns : "host", "error", strerror(errno));
                        continue;
                }
                fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                pthread_mutex_lock(&px->mu);
                px->lsn = sw_xrealloc(px->lsn, (px->nlsn + 1) * sizeof(*px->lsn));
                px->lsn[px->nlsn++] = (struct px_lsn){.netns = w[i].netns,
                                                      .ip = w[i].ip,
                                                      .port = w[i].port,
                                                      .fd = fd,
                                                      .be = w[i].be,
                                                      .nbe = w[i].nbe,
                                                      .wanted = true};
                w[i].netns = NULL;
                w[i].be = NULL;
                pthread_mutex_unlock(&px->mu);
        }
        pthread_mutex_lock(&px->mu);
        for (size_t i = 0; i < px->nlsn;) {
                struct px_lsn *l = &px->lsn[i];
                if (l->wanted) {
                        i++;
                        continue;
                }
                px->graveyard = sw_xrealloc(px->graveyard, (px->ngrave + 1) * sizeof(int));
                px->graveyard[px->ngrave++] = l->fd;
                free(l->netns);
                free(l->be);
                px->lsn[i] = px->lsn[--px->nlsn];
        }
        pthread_mutex_unlock(&px->mu);
        pthread_mutex_unlock(&px->sync_mu);
        if (write(px->wake[1], "x", 1) != 1) {
                /* A full pipe already wakes the accept thread. */
        }
        for (size_t i = 0; i < nw; i++) {
                free(w[i].netns);
                free(w[i].be);
        }
        free(w);
}

/* ---- connections ---- */

static void *relay_main(void *arg)
{
        struct px_relay *r = arg;
        bool moved = false; /* this thread left the host's namespace */
        int up = -1;

        for (size_t i = 0; i < r->n && up < 0; i++) {
                const char *ns = r->netns[i];
                if (!ns && moved)
                        ns = "/proc/self/ns/net"; /* the main thread never leaves the host's */
                moved |= r->netns[i] != NULL;
                up = agent_netns_connect_here(ns, r->be[i].ip, r->be[i].port, PX_CONNECT_MS);
        }
        if (up >= 0) {
                int one = 1;
                setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                setsockopt(r->client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                agent_relay(r->client, up);
                close(up);
        }
        close(r->client);
        for (size_t i = 0; i < r->n; i++)
                free(r->netns[i]);
        free(r);
        return NULL;
}

/* The namespace of a pod of this node with address `ip`; px->mu held. */
static const char *local_netns(const struct agent_proxy *px, uint32_t ip)
{
        for (size_t i = 0; i < px->npods; i++) {
                uint32_t pip;
                if (px->pods[i].netns && agent_ip_parse(&pip, px->pods[i].ip) == 0 && pip == ip)
                        return px->pods[i].netns;
        }
        return NULL;
}

static void accept_one(struct agent_proxy *px, int fd)
{
        struct px_relay *r = sw_xcalloc(1, sizeof(*r));
        pthread_attr_t attr;
        pthread_t t;
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

        if (c < 0) {
                free(r);
                return;
        }
        pthread_mutex_lock(&px->mu);
        for (size_t i = 0; i < px->nlsn; i++) {
                struct px_lsn *l = &px->lsn[i];
                if (l->fd != fd || !l->nbe)
                        continue;
                for (size_t k = 0; k < l->nbe && k < PX_MAX_TRIES; k++) {
                        const struct px_backend *b = &l->be[(l->rr + k) % l->nbe];
                        const char *ns = local_netns(px, b->ip);
                        r->be[r->n] = *b;
                        r->netns[r->n++] = ns ? sw_xstrdup(ns) : NULL;
                }
                l->rr = (l->rr + 1) % l->nbe;
        }
        pthread_mutex_unlock(&px->mu);
        if (!r->n) {
                /* No ready endpoint: refuse, as kube-proxy's REJECT does. */
                close(c);
                free(r);
                return;
        }
        r->client = c;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, relay_main, r) != 0) {
                close(c);
                for (size_t i = 0; i < r->n; i++)
                        free(r->netns[i]);
                free(r);
        }
        pthread_attr_destroy(&attr);
}

static void *accept_main(void *arg)
{
        struct agent_proxy *px = arg;
        struct pollfd *pfd = NULL;
        size_t cap = 0;

        while (!atomic_load(&px->stop)) {
                size_t n = 1;
                char drain[64];

                pthread_mutex_lock(&px->mu);
                for (size_t i = 0; i < px->ngrave; i++)
                        close(px->graveyard[i]);
                px->ngrave = 0;
                if (cap < px->nlsn + 1) {
                        cap = px->nlsn + 1;
                        pfd = sw_xrealloc(pfd, cap * sizeof(*pfd));
                }
                pfd[0] = (struct pollfd){px->wake[0], POLLIN, 0};
                for (size_t i = 0; i < px->nlsn; i++)
                        pfd[n++] = (struct pollfd){px->lsn[i].fd, POLLIN, 0};
                pthread_mutex_unlock(&px->mu);
                if (poll(pfd, n, -1) < 0)
                        continue;
                if (pfd[0].revents && read(px->wake[0], drain, sizeof(drain)) < 0) {
                        /* Nothing to do: the loop rebuilds its set either way. */
                }
                for (size_t i = 1; i < n; i++)
                        if (pfd[i].revents & POLLIN)
                                accept_one(px, pfd[i].fd);
        }
        free(pfd);
        return NULL;
}

/* ---- state from the API server ---- */

static int sync_lists(struct agent_proxy *px, struct sw_err *err)
{
        json_t *svcs = NULL, *eps = NULL, *map, *item;
        size_t i;
        int rc = orch_kube_get(&svcs, px->kube, "/api/v1/services", err);

        if (rc == 0)
                rc = orch_kube_get(&eps, px->kube, "/api/v1/endpoints", err);
        if (rc) {
                json_decref(svcs);
                return rc;
        }
        map = json_object();
        json_array_foreach(json_object_get(eps, "items"), i, item)
        {
                const json_t *meta = json_object_get(item, "metadata");
                char key[512];
                snprintf(key, sizeof(key), "%s/%s", sw_json_str(meta, "namespace", ""),
                         sw_json_str(meta, "name", ""));
                json_object_set(map, key, item);
        }
        pthread_mutex_lock(&px->mu);
        json_decref(px->services);
        px->services = json_incref(json_object_get(svcs, "items"));
        if (!px->services)
                px->services = json_array();
        json_decref(px->endpoints);
        px->endpoints = map;
        pthread_mutex_unlock(&px->mu);
        json_decref(svcs);
        json_decref(eps);
        return 0;
}

static void px_wake(struct agent_proxy *px)
{
        pthread_mutex_lock(&px->mu);
        px->dirty = true;
        pthread_cond_signal(&px->cond);
        pthread_mutex_unlock(&px->mu);
}

static void *sync_main(void *arg)
{
        struct agent_proxy *px = arg;

        while (!atomic_load(&px->stop)) {
                struct sw_err err = SW_ERR_INIT;
                struct timespec ts;

                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += PX_RESYNC_MS / 1000;
                pthread_mutex_lock(&px->mu);
                while (!px->dirty && !atomic_load(&px->stop))
                        if (pthread_cond_timedwait(&px->cond, &px->mu, &ts) != 0)
                                break;
                px->dirty = false;
                pthread_mutex_unlock(&px->mu);
                if (atomic_load(&px->stop))
                        break;
                if (sync_lists(px, &err) != 0) {
                        agent_log_err(px->a, "service proxy: list", NULL, &err);
                        sw_sleep_ms(500);
                        continue;
                }
                reconcile(px);
                hosts_update(px);
        }
        return NULL;
}

static int on_event(void *arg, const char *type, const json_t *obj)
{
        struct agent_proxy *px = arg;

        (void)obj;
        if (strcmp(type, "BOOKMARK") != 0)
                px_wake(px);
        return atomic_load(&px->stop) ? 1 : 0;
}

static void watch_loop(struct agent_proxy *px, struct orch_kube *kube, const char *path)
{
        char *rv = NULL;

        while (!atomic_load(&px->stop)) {
                struct sw_err err = SW_ERR_INIT;
                char *next = NULL;
                int rc = orch_kube_watch(&next, kube, path, NULL, rv, 2000, on_event, px, &err);
                if (next && *next) {
                        free(rv);
                        rv = next;
                } else
                        free(next);
                if (rc == SW_ECONFLICT) {
                        free(rv);
                        rv = NULL;
                        px_wake(px);
                } else if (rc && rc != SW_ETIMEDOUT && !atomic_load(&px->stop))
                        sw_sleep_ms(500);
        }
        free(rv);
}

static void *wsvc_main(void *arg)
{
        struct agent_proxy *px = arg;

        watch_loop(px, px->wsvc, "/api/v1/services");
        return NULL;
}

static void *wep_main(void *arg)
{
        struct agent_proxy *px = arg;

        watch_loop(px, px->wep, "/api/v1/endpoints");
        return NULL;
}

/* ---- the agent's side ---- */

int agent_proxy_pod_add(struct agent_proxy *px, const char *uid, const char *ns, const char *name,
                        const char *netns_path, const char *hosts_path, const char *ip,
                        struct sw_err *err)
{
        struct px_pod *p = NULL;
        char *text;
        int rc;

        pthread_mutex_lock(&px->mu);
        for (size_t i = 0; i < px->npods && !p; i++)
                if (!strcmp(px->pods[i].uid, uid))
                        p = &px->pods[i];
        if (!p) {
                px->pods = sw_xrealloc(px->pods, (px->npods + 1) * sizeof(*px->pods));
                p = &px->pods[px->npods++];
                memset(p, 0, sizeof(*p));
                p->uid = sw_xstrdup(uid);
                p->ns = sw_xstrdup(ns);
                p->name = sw_xstrdup(name);
                p->netns = netns_path ? sw_xstrdup(netns_path) : NULL;
                p->hosts = sw_xstrdup(hosts_path);
                snprintf(p->ip, sizeof(p->ip), "%s", ip);
        }
        text = hosts_render(px, ns, name, ip);
        rc = hosts_write(hosts_path, text, err);
        free(p->hosts_sent);
        p->hosts_sent = rc == 0 ? text : NULL;
        if (rc)
                free(text);
        pthread_mutex_unlock(&px->mu);
        if (rc == 0 && netns_path)
                reconcile(px);
        return rc;
}

void agent_proxy_pod_remove(struct agent_proxy *px, const char *uid)
{
        bool found = false;

        pthread_mutex_lock(&px->mu);
        for (size_t i = 0; i < px->npods; i++) {
                struct px_pod *p = &px->pods[i];
                if (strcmp(p->uid, uid) != 0)
                        continue;
                free(p->uid);
                free(p->ns);
                free(p->name);
                free(p->netns);
                free(p->hosts);
                free(p->hosts_sent);
                px->pods[i] = px->pods[--px->npods];
                found = true;
                break;
        }
        pthread_mutex_unlock(&px->mu);
        if (found)
                reconcile(px);
}

void agent_proxy_stop(struct agent_proxy *px)
{
        if (!px)
                return;
        atomic_store(&px->stop, true);
        px_wake(px);
        if (px->nthreads && write(px->wake[1], "x", 1) != 1) {
                /* A full pipe already wakes the accept thread. */
        }
        for (size_t i = 0; i < px->nthreads; i++)
                pthread_join(px->threads[i], NULL);
        for (size_t i = 0; i < px->ngrave; i++)
                close(px->graveyard[i]);
        free(px->graveyard);
        for (size_t i = 0; i < px->nlsn; i++) {
                close(px->lsn[i].fd);
                free(px->lsn[i].netns);
                free(px->lsn[i].be);
        }
        free(px->lsn);
        for (size_t i = 0; i < px->npods; i++) {
                free(px->pods[i].uid);
                free(px->pods[i].ns);
                free(px->pods[i].name);
                free(px->pods[i].netns);
                free(px->pods[i].hosts);
                free(px->pods[i].hosts_sent);
        }
        free(px->pods);
        json_decref(px->services);
        json_decref(px->endpoints);
        orch_kube_free(px->kube);
        orch_kube_free(px->wsvc);
        orch_kube_free(px->wep);
        if (px->wake[0] >= 0) {
                close(px->wake[0]);
                close(px->wake[1]);
        }
        pthread_mutex_destroy(&px->mu);
        pthread_mutex_destroy(&px->sync_mu);
        pthread_cond_destroy(&px->cond);
        free(px);
}

int agent_proxy_start(struct agent_proxy **out, struct orch_agent *a, struct sw_err *err)
{
        struct agent_proxy *px = sw_xcalloc(1, sizeof(*px));
        struct sw_err lerr = SW_ERR_INIT;
        int rc;

        px->a = a;
        px->wake[0] = px->wake[1] = -1;
        px->services = json_array();
        px->endpoints = json_object();
        pthread_mutex_init(&px->mu, NULL);
        pthread_mutex_init(&px->sync_mu, NULL);
        pthread_cond_init(&px->cond, NULL);
        if (pipe2(px->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
                rc = sw_err_errno(err, SW_EIO, errno, "pipe");
                goto fail;
        }
        rc = orch_kube_from_kubeconfig(&px->kube, a->kubeconfig, NULL, err);
        if (rc == 0)
                rc = orch_kube_from_kubeconfig(&px->wsvc, a->kubeconfig, NULL, err);
        if (rc == 0)
                rc = orch_kube_from_kubeconfig(&px->wep, a->kubeconfig, NULL, err);
        if (rc)
                goto fail;
        /* The first lists before any pod starts, so its environment sees the Services. */
        if (sync_lists(px, &lerr) != 0)
                agent_log_err(a, "service proxy: list", NULL, &lerr);
        reconcile(px);
        {
                void *(*mains[4])(void *) = {accept_main, sync_main, wsvc_main, wep_main};
                for (size_t i = 0; i < 4; i++) {
                        if (pthread_create(&px->threads[i], NULL, mains[i], px) != 0) {
                                rc = sw_err_set(err, SW_EIO,
                                                "cannot start the service proxy's threads");
                                goto fail;
                        }
                        px->nthreads++;
                }
        }
        *out = px;
        return 0;
fail:
        agent_proxy_stop(px);
        return rc;
}
