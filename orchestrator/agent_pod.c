/*
 * agent_pod.c - one pod on this node: its sandbox (directory, network
 * namespace, generated /etc files, published ports), its containers
 * (overlay rootfs, OCI bundle, detached runc container, restarts with
 * back-off, probes) and its status.
 *
 * Reconciling is level-driven and idempotent: each call looks at the pod's
 * spec and at what exists (runc state, the exit file the supervisor writes
 * when a container ends) and does the next step; nothing waits for long.
 * A deleted pod (deletionTimestamp) gets its stop signal, SIGKILL after its
 * grace period, then its sandbox is removed and the deletion confirmed
 * with gracePeriodSeconds=0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/validate.h"
#include "orchestrator/agent_int.h"
#include "orchestrator/client/kube.h"
#include "steps/runtime.h"
#include "common/banned.h"

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define MAX_ARGS 4096
#define HOOK_TIMEOUT_S 10
/*
 * How long a new pod's status waits while its containers are only being
 * started or wait for a start slot: the first status written is then the
 * Running and Ready one rather than a ContainerCreating one followed by
 * it (each write is a PATCH and a watch event for every watcher).
 */
#define STATUS_HOLD_MS 10000

struct agent_pod *agent_pod_new(struct orch_agent *a, const char *uid, const char *ns,
                                const char *name)
{
        struct agent_pod *p = sw_xcalloc(1, sizeof(*p));

        p->uid = sw_xstrdup(uid);
        p->ns = sw_xstrdup(ns);
        p->name = sw_xstrdup(name);
        p->dir = sw_xasprintf("%s/pods/%s", a->root, uid);
        p->netns_path = sw_xasprintf("%s/netns", p->dir);
        p->ports = json_object();
        p->rv = -1;
        p->created_mono = sw_mono_ms();
        /* The IP of a pod that runs since an earlier agent. */
        {
                char *path = sw_xasprintf("%s/ip", p->dir), *text = NULL;
                struct sw_err ignored = SW_ERR_INIT;
                if (sw_read_file(&text, NULL, path, 64, &ignored) == 0) {
                        text[strcspn(text, "\n")] = '\0';
                        if (agent_ip_parse(&p->ip, text) != 0)
                                p->ip = 0;
                }
                free(text);
                free(path);
        }
        return p;
}

static void ctr_release(struct agent_ctr *c)
{
        free(c->name);
        free(c->image);
        free(c->dir);
        free(c->waiting_msg);
        json_decref(c->last_term);
        json_decref(c->term);
}

void agent_pod_free(struct agent_pod *p)
{
        if (!p)
                return;
        for (size_t i = 0; i < p->nfwds; i++)
                agent_fwd_stop(p->fwds[i]);
        free(p->fwds);
        for (size_t i = 0; i < p->nctrs; i++)
                ctr_release(&p->ctrs[i]);
        free(p->ctrs);
        json_decref(p->ports);
        free(p->uid);
        free(p->ns);
        free(p->name);
        free(p->dir);
        free(p->netns_path);
        free(p->status_sent);
        json_decref(p->obj);
        free(p);
}

static int64_t backoff_ms(const struct orch_agent *a, int n)
{
        int64_t d = a->o.backoff_base_ms;

        for (int i = 0; i < n && d < a->o.backoff_max_ms; i++)
                d *= 2;
        return d < a->o.backoff_max_ms ? d : a->o.backoff_max_ms;
}

static void set_waiting(struct agent_ctr *c, const char *reason, const char *msg)
{
        char *copy = msg ? sw_xstrdup(msg) : NULL; /* msg may be c->waiting_msg itself */

        snprintf(c->waiting_reason, sizeof(c->waiting_reason), "%s", reason);
        free(c->waiting_msg);
        c->waiting_msg = copy;
}

static char *ctr_path(const struct agent_ctr *c, const char *leaf)
{
        return sw_xasprintf("%s/%s", c->dir, leaf);
}

/* The log file of a container (and of its previous instance). */
static char *log_path(const struct agent_pod *p, const struct agent_ctr *c, bool previous)
{
        return sw_xasprintf("%s/logs/%s%s.log", p->dir, c->name, previous ? ".previous" : "");
}

static const json_t *spec_containers(const json_t *obj)
{
        return json_object_get(json_object_get(obj, "spec"), "containers");
}

static const json_t *spec_inits(const json_t *obj)
{
        return json_object_get(json_object_get(obj, "spec"), "initContainers");
}

static const json_t *ctr_spec(const json_t *obj, const struct agent_ctr *c)
{
        return json_array_get(c->init ? spec_inits(obj) : spec_containers(obj), c->spec_idx);
}

static const json_t *status_of(const json_t *obj, const char *name, bool init)
{
        const json_t *cs = json_object_get(json_object_get(obj, "status"),
                                           init ? "initContainerStatuses" : "containerStatuses"),
                     *s;
        size_t i;

        json_array_foreach(cs, i, s)
        {
                if (!strcmp(sw_json_str(s, "name", ""), name))
                        return s;
        }
        return NULL;
}

/*
 * Does the restart policy restart a container that ended with `code`? Init
 * containers run to success: they are retried on failure unless Never.
 */
static bool restarts(const json_t *obj, bool init, int code)
{
        const char *pol = sw_json_str(json_object_get(obj, "spec"), "restartPolicy", "Always");

        if (init)
                return code != 0 && strcmp(pol, "Never") != 0;
        return !strcmp(pol, "Always") || (!strcmp(pol, "OnFailure") && code != 0);
}

static int read_exit(const char *path)
{
        char *text = NULL;
        struct sw_err ignored = SW_ERR_INIT;
        long v;

        if (sw_read_file(&text, NULL, path, 64, &ignored) != 0)
                return -1;
        v = strtol(text, NULL, 10);
        free(text);
        return (int)v;
}

/*
 * Fill the container records from the spec, once. Containers already known
 * to the runtime (an agent restart) are adopted as they are.
 */
static void init_ctrs(struct orch_agent *a, struct agent_pod *p, const json_t *obj)
{
        const json_t *lists[2] = {spec_inits(obj), spec_containers(obj)}, *c;
        size_t i, n = json_array_size(lists[0]) + json_array_size(lists[1]);

        p->ctrs = sw_xcalloc(n + 1, sizeof(*p->ctrs));
        for (int l = 0; l < 2; l++)
                json_array_foreach(lists[l], i, c)
                {
                        struct agent_ctr *k = &p->ctrs[p->nctrs];
                        const json_t *st = status_of(obj, sw_json_str(c, "name", ""), l == 0);
                        struct step_rt_state rs;
                        struct sw_err ignored = SW_ERR_INIT;
                        char *exit_path;

                        k->init = l == 0;
                        k->spec_idx = i;
                        k->name = sw_xstrdup(sw_json_str(c, "name", ""));
                        k->image = sw_xstrdup(sw_json_str(c, "image", ""));
                        /* One numbering for both lists: the log endpoint reads it from pod.json. */
                        snprintf(k->id, sizeof(k->id), "%s-%zu", p->uid, p->nctrs);
                        k->dir = sw_xasprintf("%s/c%zu", p->dir, p->nctrs);
                        p->nctrs++;
                        k->restart_count = (int)sw_json_int(st, "restartCount", 0);
                        if (json_object_get(json_object_get(st, "lastState"), "terminated"))
                                k->last_term = sw_json_copy(json_object_get(
                                        json_object_get(st, "lastState"), "terminated"));
                        exit_path = ctr_path(k, "exit");
                        if (agent_rt_may_have(a->runtime, a->runc_root, k->id) &&
                            step_rt_state(&rs, a->runtime, a->runc_root, k->id, &ignored) == 0 &&
                            strcmp(rs.status, "stopped") != 0) {
                                k->running = k->ever_ran = k->mounted = true;
                                k->post_start_done = true; /* ran when it started */
                                k->pid = rs.pid;
                                agent_time_fmt(k->started_at, sizeof(k->started_at), rs.created_ms);
                                /* The time reported before is kept, so the status does not move. */
                                snprintf(k->started_at, sizeof(k->started_at), "%s",
                                         sw_json_str(json_object_get(json_object_get(st, "state"),
                                                                     "running"),
                                                     "startedAt", k->started_at));
                                k->start_mono = sw_mono_ms();
                                /* Adopted: a startup probe that passed is not run again. */
                                k->started = sw_json_bool(st, "started", 0);
                        } else if (access(exit_path, F_OK) == 0) {
                                /* It ended while no agent watched: the exit file tells how. */
                                k->running = k->ever_ran = k->mounted = true;
                                k->start_mono = sw_mono_ms();
                        } else if (json_object_get(json_object_get(st, "state"), "terminated")) {
                                const json_t *t =
                                        json_object_get(json_object_get(st, "state"), "terminated");
                                k->ever_ran = true;
                                if (!restarts(obj, k->init, (int)sw_json_int(t, "exitCode", 0)))
                                        k->term = sw_json_copy(t);
                        }
                        free(exit_path);
                }
}

/* ---- sandbox ---- */

static int write_text(const char *dir, const char *leaf, const char *text, struct sw_err *err)
{
        char *path = sw_xasprintf("%s/%s", dir, leaf);
        int rc = sw_write_file_replace(path, text, strlen(text), 0644, err);

        free(path);
        return rc;
}

static const json_t *annotation_ports(const json_t *obj)
{
        const char *s =
                sw_json_str(json_object_get(json_object_get(obj, "metadata"), "annotations"),
                            AGENT_PORTS_ANNOTATION, NULL);
        return s ? json_loads(s, 0, NULL) : NULL;
}

/*
 * A free IP of the node's /24 (.2 to .254; .1 would be the gateway in a
 * real cluster), searched from after the last one given so that a pod IP
 * is not reused at once; kept in the pod's directory across agent restarts.
 */
static int allocate_ip(struct orch_agent *a, struct agent_pod *p, struct sw_err *err)
{
        char ip[16], line[20];

        if (p->ip)
                return 0;
        for (unsigned k = 0; k < 253; k++) {
                unsigned host = 2 + (a->ip_next + k) % 253;
                uint32_t cand = a->pod_net | host;
                bool used = false;
                for (const struct agent_pod *q = a->pods; q && !used; q = q->next)
                        used = q != p && q->ip == cand;
                if (used)
                        continue;
                agent_ip_fmt(ip, cand);
                snprintf(line, sizeof(line), "%s\n", ip);
                if (write_text(p->dir, "ip", line, err) != 0)
                        return err->code;
                p->ip = cand;
                a->ip_next = host - 1;
                return 0;
        }
        return sw_err_set(err, SW_EUNAVAIL, "no free pod IP left in the node's pod CIDR");
}

static int publish_ports(struct agent_pod *p, const json_t *obj, struct sw_err *err)
{
        json_t *old = (json_t *)annotation_ports(obj);
        const json_t *c, *port;
        size_t i, j;
        int rc = 0;

        json_array_foreach(spec_containers(obj), i, c)
        {
                json_array_foreach(json_object_get(c, "ports"), j, port)
                {
                        int cport = (int)sw_json_int(port, "containerPort", 0);
                        int hport = (int)sw_json_int(port, "hostPort", 0);
                        char key[16];
                        struct agent_fwd *f = NULL;

                        if (cport <= 0 || strcmp(sw_json_str(port, "protocol", "TCP"), "TCP"))
                                continue;
                        snprintf(key, sizeof(key), "%d", cport);
                        if (json_object_get(p->ports, key))
                                continue;
                        if (p->host_network) {
                                /* The container listens on the host itself. */
                                json_object_set_new(p->ports, key, json_integer(cport));
                                continue;
                        }
                        if (!hport && old)
                                hport = (int)json_integer_value(json_object_get(old, key));
                        /* podIP:containerPort, as Endpoints have it. */
                        rc = agent_fwd_start(&f, p->netns_path, p->ip, cport, cport, err);
                        if (rc)
                                goto out;
                        p->fwds = sw_xrealloc(p->fwds, (p->nfwds + 1) * sizeof(*p->fwds));
                        p->fwds[p->nfwds++] = f;
                        rc = agent_fwd_start(&f, p->netns_path, INADDR_LOOPBACK, hport, cport, err);
                        if (rc && !sw_json_int(port, "hostPort", 0) && hport) {
                                /* The port recorded before is taken now: any port will do. */
                                sw_err_clear(err);
                                rc = agent_fwd_start(&f, p->netns_path, INADDR_LOOPBACK, 0, cport,
                                                     err);
                        }
                        if (rc)
                                goto out;
                        p->fwds = sw_xrealloc(p->fwds, (p->nfwds + 1) * sizeof(*p->fwds));
                        p->fwds[p->nfwds++] = f;
                        json_object_set_new(p->ports, key, json_integer(agent_fwd_host_port(f)));
                }
        }
out:
        json_decref(old);
        return rc;
}

static int ensure_sandbox(struct orch_agent *a, struct agent_pod *p, const json_t *obj,
                          struct sw_err *err)
{
        char *logs = sw_xasprintf("%s/logs", p->dir);
        char *text = NULL;
        json_t *rec = NULL;
        int rc;

        if (p->sandbox) {
                free(logs);
                return 0;
        }
        rc = sw_mkdir_p(logs, 0700, err);
        if (rc)
                goto out;
        rec = json_pack("{s:s,s:s,s:s,s:[]}", "uid", p->uid, "namespace", p->ns, "name", p->name,
                        "containers");
        for (size_t i = 0; i < p->nctrs; i++)
                json_array_append_new(json_object_get(rec, "containers"),
                                      json_string(p->ctrs[i].name));
        for (size_t i = 0; i < p->nctrs; i++)
                if (p->ctrs[i].init)
                        json_object_set_new(rec, "initCount", json_integer((json_int_t)i + 1));
        text = json_dumps(rec, JSON_COMPACT);
        rc = write_text(p->dir, "pod.json", text, err);
        free(text);
        text = sw_xasprintf("search %s.svc.cluster.local svc.cluster.local cluster.local\n"
                            "nameserver 127.0.0.1\noptions ndots:5\n",
                            p->ns);
        if (rc == 0)
                rc = write_text(p->dir, "resolv.conf", text, err);
        free(text);
        text = sw_xasprintf("%s\n", p->name);
        if (rc == 0)
                rc = write_text(p->dir, "hostname", text, err);
        p->host_network = sw_json_bool(json_object_get(obj, "spec"), "hostNetwork", 0);
        if (rc == 0 && !p->host_network)
                rc = allocate_ip(a, p, err);
        if (rc == 0 && !p->host_network)
                rc = agent_netns_create(p->netns_path, err);
        if (rc == 0)
                rc = publish_ports(p, obj, err);
        if (rc == 0) {
                char ip[16], *hosts = sw_xasprintf("%s/hosts", p->dir);
                agent_ip_fmt(ip, p->host_network ? INADDR_LOOPBACK : p->ip);
                rc = agent_proxy_pod_add(a->proxy, p->uid, p->ns, p->name,
                                         p->host_network ? NULL : p->netns_path, hosts, ip, err);
                free(hosts);
        }
        if (rc)
                goto out;
        {
                const char *st = sw_json_str(json_object_get(obj, "status"), "startTime", NULL);
                if (st)
                        snprintf(p->start_time, sizeof(p->start_time), "%s", st);
                else
                        agent_time_fmt(p->start_time, sizeof(p->start_time), sw_now_ms());
        }
        p->sandbox = true;
out:
        free(text);
        free(logs);
        json_decref(rec);
        return rc;
}

/* Record the published ports on the pod (metadata, not status). */
static void annotate_ports(struct orch_agent *a, struct agent_pod *p, const json_t *obj)
{
        json_t *old = (json_t *)annotation_ports(obj), *patch = NULL;
        char *path = NULL, *val = NULL;
        struct sw_err err = SW_ERR_INIT;

        if (old && json_equal(old, p->ports)) {
                p->ports_annotated = true;
                goto out;
        }
        if (!json_object_size(p->ports) && !old) {
                p->ports_annotated = true;
                goto out;
        }
        val = json_dumps(p->ports, JSON_COMPACT | JSON_SORT_KEYS);
        patch = json_pack("{s:{s:{s:s}}}", "metadata", "annotations", AGENT_PORTS_ANNOTATION, val);
        path = sw_xasprintf("/api/v1/namespaces/%s/pods/%s", p->ns, p->name);
        if (orch_kube_request(NULL, NULL, a->kube, "PATCH", path, "application/merge-patch+json",
                              patch, &err) == 0)
                p->ports_annotated = true;
        else
                agent_log_err(a, "annotate ports", p, &err);
out:
        free(val);
        free(path);
        json_decref(old);
        json_decref(patch);
}

/*
 * Take the sandbox down: the forwarders and the proxy's listeners now, the
 * rest (runc delete, unmounts, the pod directory) on the cleanup workers,
 * which first kill the containers still running when `kill`.
 */
static void cleanup_sandbox(struct orch_agent *a, struct agent_pod *p, bool kill)
{
        for (size_t i = 0; i < p->nfwds; i++)
                agent_fwd_stop(p->fwds[i]);
        p->nfwds = 0;
        agent_proxy_pod_remove(a->proxy, p->uid);
        agent_cleanup_add(a->cleanup, p, kill);
        for (size_t i = 0; i < p->nctrs; i++)
                p->ctrs[i].mounted = false;
        p->sandbox = false;
}

/* ---- container start ---- */

/*
 * The data of a ConfigMap or Secret (`kind` "configmaps" or "secrets") as
 * an object of strings, Secret values decoded. An absent object that is
 * `optional` gives an empty object.
 */
static int fetch_data(json_t **out, struct orch_agent *a, const char *ns, const char *kind,
                      const char *name, bool optional, struct sw_err *err)
{
        char *path = sw_xasprintf("/api/v1/namespaces/%s/%s/%s", ns, kind, name);
        json_t *o = NULL, *data = json_object(), *v;
        const char *key;
        bool secret = !strcmp(kind, "secrets");
        int rc = orch_kube_get(&o, a->kube, path, err);

        free(path);
        if (rc == SW_ENOTFOUND && optional) {
                sw_err_clear(err);
                *out = data;
                return 0;
        }
        if (rc) {
                json_decref(data);
                return rc;
        }
        json_object_foreach(json_object_get(o, "data"), key, v)
        {
                unsigned char *bin = NULL;
                size_t n = 0;

                if (!json_is_string(v))
                        continue;
                if (!secret) {
                        json_object_set(data, key, v);
                        continue;
                }
                rc = sw_base64_decode(&bin, &n, json_string_value(v), err);
                if (rc) {
                        sw_err_wrap(err, "secret \"%s\" key \"%s\"", name, key);
                        break;
                }
                json_object_set_new(data, key, json_stringn((const char *)bin, n));
                sw_wipe(bin, n);
                free(bin);
        }
        json_decref(o);
        if (rc) {
                json_decref(data);
                return rc;
        }
        *out = data;
        return 0;
}

int agent_pod_fetch_data(json_t **out, struct orch_agent *a, const char *ns, const char *kind,
                         const char *name, bool optional, struct sw_err *err)
{
        return fetch_data(out, a, ns, kind, name, optional, err);
}

/* Expand $(NAME) from `env` ("NAME=value" strings); $$ escapes a '$'. */
static char *expand_vars(const char *s, const json_t *env)
{
        struct sw_buf b;
        struct sw_err ignored = SW_ERR_INIT;

        sw_buf_init(&b, 1 << 20);
        while (*s) {
                const char *end;
                if (s[0] == '$' && s[1] == '$') {
                        sw_buf_append(&b, "$", 1, &ignored);
                        s += 2;
                        continue;
                }
                if (s[0] == '$' && s[1] == '(' && (end = strchr(s + 2, ')'))) {
                        size_t n = (size_t)(end - s - 2);
                        const json_t *e;
                        const char *val = NULL;
                        size_t i;
                        json_array_foreach(env, i, e)
                        {
                                const char *kv = json_string_value(e);
                                if (kv && !strncmp(kv, s + 2, n) && kv[n] == '=')
                                        val = kv + n + 1;
                        }
                        if (val) {
                                sw_buf_append(&b, val, strlen(val), &ignored);
                                s = end + 1;
                                continue;
                        }
                }
                sw_buf_append(&b, s, 1, &ignored);
                s++;
        }
        {
                char *out = sw_xstrdup(sw_buf_str(&b));
                sw_buf_release(&b);
                return out;
        }
}

/* Value of one env entry's valueFrom; *out malloc'ed. */
static int env_value_from(char **out, struct orch_agent *a, const struct agent_pod *p,
                          const json_t *obj, const json_t *vf, struct sw_err *err)
{
        const json_t *ref;
        int rc = 0;

        if ((ref = json_object_get(vf, "fieldRef"))) {
                const char *f = sw_json_str(ref, "fieldPath", "");
                const json_t *meta = json_object_get(obj, "metadata");
                if (!strcmp(f, "metadata.name"))
                        *out = sw_xstrdup(p->name);
                else if (!strcmp(f, "metadata.namespace"))
                        *out = sw_xstrdup(p->ns);
                else if (!strcmp(f, "metadata.uid"))
                        *out = sw_xstrdup(p->uid);
                else if (!strcmp(f, "status.podIP") && p->ip && !p->host_network) {
                        char ip[16];
                        agent_ip_fmt(ip, p->ip);
                        *out = sw_xstrdup(ip);
                } else if (!strcmp(f, "status.podIP") || !strcmp(f, "status.hostIP"))
                        *out = sw_xstrdup("127.0.0.1");
                else if (!strcmp(f, "spec.nodeName"))
                        *out = sw_xstrdup(a->node_name);
                else if (!strcmp(f, "spec.serviceAccountName"))
                        *out = sw_xstrdup(sw_json_str(json_object_get(obj, "spec"),
                                                      "serviceAccountName", "default"));
                else if (!strncmp(f, "metadata.labels['", 17) && strlen(f) > 19) {
                        char *k = sw_xstrndup(f + 17, strlen(f) - 19);
                        *out = sw_xstrdup(sw_json_str(json_object_get(meta, "labels"), k, ""));
                        free(k);
                } else
                        return sw_err_set(err, SW_EINVAL, "fieldRef '%s' is not supported", f);
                return 0;
        }
        {
                bool secret = (ref = json_object_get(vf, "secretKeyRef")) != NULL;
                const char *kind = secret ? "secrets" : "configmaps";
                const char *key, *val;
                char *path;
                json_t *o = NULL;

                if (!secret && !(ref = json_object_get(vf, "configMapKeyRef")))
                        return sw_err_set(err, SW_EINVAL, "valueFrom is not supported");
                key = sw_json_str(ref, "key", "");
                path = sw_xasprintf("/api/v1/namespaces/%s/%s/%s", p->ns, kind,
                                    sw_json_str(ref, "name", ""));
                rc = orch_kube_get(&o, a->kube, path, err);
                free(path);
                if (rc == SW_ENOTFOUND && sw_json_bool(ref, "optional", 0)) {
                        sw_err_clear(err);
                        *out = NULL;
                        return 0;
                }
                if (rc)
                        return rc;
                val = sw_json_str(json_object_get(o, "data"), key, NULL);
                if (!val && !secret)
                        val = NULL;
                if (!val) {
                        rc = sw_json_bool(ref, "optional", 0)
                                     ? 0
                                     : sw_err_set(err, SW_ENOTFOUND,
                                                  "couldn't find key %s in %s %s/%s", key,
                                                  secret ? "Secret" : "ConfigMap", p->ns,
                                                  sw_json_str(ref, "name", ""));
                        *out = NULL;
                } else if (secret) {
                        unsigned char *bin = NULL;
                        size_t n = 0;
                        rc = sw_base64_decode(&bin, &n, val, err);
                        if (rc == 0) {
                                *out = sw_xstrndup((const char *)bin, n);
                                sw_wipe(bin, n);
                                free(bin);
                        }
                } else
                        *out = sw_xstrdup(val);
                json_decref(o);
                return rc;
        }
}

/* Append or replace NAME=value in the env list. */
static void env_put(json_t *env, const char *name, const char *value)
{
        size_t n = strlen(name), i;
        json_t *e;
        char *kv = sw_xasprintf("%s=%s", name, value);

        json_array_foreach(env, i, e)
        {
                const char *s = json_string_value(e);
                if (s && !strncmp(s, name, n) && s[n] == '=') {
                        json_array_set_new(env, i, json_string(kv));
                        free(kv);
                        return;
                }
        }
        json_array_append_new(env, json_string(kv));
        free(kv);
}

static int build_env(json_t **out, struct orch_agent *a, const struct agent_pod *p,
                     const json_t *obj, const json_t *spec, const json_t *icfg, struct sw_err *err)
{
        json_t *env = json_array(), *e;
        bool has_path = false;
        size_t i;
        int rc = 0;

        json_array_foreach(json_object_get(icfg, "Env"), i, e)
        {
                if (json_is_string(e)) {
                        json_array_append(env, e);
                        has_path |= !strncmp(json_string_value(e), "PATH=", 5);
                }
        }
        if (!has_path)
                json_array_append_new(env, json_string(DEFAULT_PATH));
        env_put(env, "HOSTNAME", p->name);
        {
                /* The Services of the namespace, as they are now; the pod's own env wins. */
                json_t *svc_env = agent_proxy_env(a->proxy, p->ns);
                json_array_foreach(svc_env, i, e)
                {
                        const char *kv = json_string_value(e), *eq = strchr(kv, '=');
                        char *name = sw_xstrndup(kv, (size_t)(eq - kv));
                        env_put(env, name, eq + 1);
                        free(name);
                }
                json_decref(svc_env);
        }
        json_array_foreach(json_object_get(spec, "envFrom"), i, e)
        {
                const json_t *cm = json_object_get(e, "configMapRef");
                const json_t *sec = json_object_get(e, "secretRef");
                const json_t *ref = cm ? cm : sec;
                json_t *data = NULL, *v;
                const char *key;

                if (!ref)
                        continue;
                rc = fetch_data(&data, a, p->ns, cm ? "configmaps" : "secrets",
                                sw_json_str(ref, "name", ""), sw_json_bool(ref, "optional", 0),
                                err);
                if (rc) {
                        sw_err_wrap(err, "envFrom");
                        break;
                }
                json_object_foreach(data, key, v)
                {
                        char *name = sw_xasprintf("%s%s", sw_json_str(e, "prefix", ""), key);
                        env_put(env, name, json_string_value(v));
                        free(name);
                }
                json_decref(data);
        }
        json_array_foreach(json_object_get(spec, "env"), i, e)
        {
                if (rc)
                        break;
                const char *name = sw_json_str(e, "name", "");
                const json_t *vf = json_object_get(e, "valueFrom");
                char *v = NULL;

                if (!*name)
                        continue;
                if (vf) {
                        rc = env_value_from(&v, a, p, obj, vf, err);
                        if (rc) {
                                sw_err_wrap(err, "env %s", name);
                                break;
                        }
                        if (v)
                                env_put(env, name, v);
                        free(v);
                } else {
                        char *x = expand_vars(sw_json_str(e, "value", ""), env);
                        env_put(env, name, x);
                        free(x);
                }
        }
        if (rc) {
                json_decref(env);
                return rc;
        }
        *out = env;
        return 0;
}

/* args: the pod's command/args over the image's Entrypoint/Cmd. */
static json_t *build_args(const json_t *spec, const json_t *icfg)
{
        const json_t *cmd = json_object_get(spec, "command"), *args = json_object_get(spec, "args");
        json_t *out = json_array();

        if (json_array_size(cmd)) {
                json_array_extend(out, (json_t *)cmd);
                if (args)
                        json_array_extend(out, (json_t *)args);
        } else {
                const json_t *ep = json_object_get(icfg, "Entrypoint");
                if (json_is_array(ep))
                        json_array_extend(out, (json_t *)ep);
                if (json_array_size(args))
                        json_array_extend(out, (json_t *)args);
                else if (json_is_array(json_object_get(icfg, "Cmd")))
                        json_array_extend(out, json_object_get(icfg, "Cmd"));
        }
        return out;
}

/* Look a user or group name up in the rootfs (/etc/passwd or /etc/group). */
static bool lookup_id(uint32_t *id, uint32_t *gid, const char *rootfs, const char *file,
                      const char *name)
{
        char *path = sw_xasprintf("%s%s", rootfs, file), *text = NULL, *save = NULL;
        struct sw_err ignored = SW_ERR_INIT;
        bool found = false;

        if (sw_read_file(&text, NULL, path, 1 << 20, &ignored) == 0) {
                for (char *l = strtok_r(text, "\n", &save); l && !found;
                     l = strtok_r(NULL, "\n", &save)) {
                        char *f[4] = {0};
                        int n = 0;
                        for (char *s = l; n < 4; n++) {
                                f[n] = s;
                                s = strchr(s, ':');
                                if (!s)
                                        break;
                                *s++ = '\0';
                        }
                        if (f[0] && f[2] && !strcmp(f[0], name)) {
                                *id = (uint32_t)strtoul(f[2], NULL, 10);
                                if (gid && f[3])
                                        *gid = (uint32_t)strtoul(f[3], NULL, 10);
                                found = true;
                        }
                }
        }
        free(text);
        free(path);
        return found;
}

static int resolve_user(uint32_t *uid, uint32_t *gid, const json_t *obj, const json_t *spec,
                        const json_t *icfg, const char *rootfs, struct sw_err *err)
{
        const json_t *psc = json_object_get(json_object_get(obj, "spec"), "securityContext");
        const json_t *csc = json_object_get(spec, "securityContext");
        const char *user = sw_json_str(icfg, "User", "");
        char *u = sw_xstrdup(user), *g = strchr(u, ':');
        int rc = 0;

        *uid = *gid = 0;
        if (g)
                *g++ = '\0';
        if (*u) {
                char *end;
                unsigned long v = strtoul(u, &end, 10);
                if (!*end)
                        *uid = (uint32_t)v;
                else if (!lookup_id(uid, gid, rootfs, "/etc/passwd", u))
                        rc = sw_err_set(
                                err, SW_EINVAL,
                                "unable to find user %s: no matching entries in passwd file", u);
        }
        if (rc == 0 && g && *g) {
                char *end;
                unsigned long v = strtoul(g, &end, 10);
                if (!*end)
                        *gid = (uint32_t)v;
                else if (!lookup_id(gid, NULL, rootfs, "/etc/group", g))
                        rc = sw_err_set(err, SW_EINVAL, "unable to find group %s", g);
        }
        free(u);
        if (json_is_integer(json_object_get(psc, "runAsUser")))
                *uid = (uint32_t)sw_json_int(psc, "runAsUser", 0);
        if (json_is_integer(json_object_get(psc, "runAsGroup")))
                *gid = (uint32_t)sw_json_int(psc, "runAsGroup", 0);
        if (json_is_integer(json_object_get(csc, "runAsUser")))
                *uid = (uint32_t)sw_json_int(csc, "runAsUser", 0);
        if (json_is_integer(json_object_get(csc, "runAsGroup")))
                *gid = (uint32_t)sw_json_int(csc, "runAsGroup", 0);
        return rc;
}

static int mount_rootfs(struct agent_ctr *c, const struct agent_image *img, struct sw_err *err)
{
        char *rootfs = ctr_path(c, "rootfs"), *upper = ctr_path(c, "upper"),
             *work = ctr_path(c, "work");
        struct sw_buf opts;
        struct sw_err ignored = SW_ERR_INIT;
        int rc = 0;

        if (c->mounted)
                goto out;
        if ((rc = sw_mkdir_p(rootfs, 0755, err)) || (rc = sw_mkdir_p(upper, 0755, err)) ||
            (rc = sw_mkdir_p(work, 0700, err)))
                goto out;
        sw_buf_init(&opts, 4096);
        sw_buf_puts(&opts, "lowerdir=", &ignored);
        for (size_t i = 0; i < img->nlowers; i++)
                sw_buf_printf(&opts, &ignored, "%s%s", i ? ":" : "", img->lowers[i]);
        sw_buf_printf(&opts, &ignored, ",upperdir=%s,workdir=%s", upper, work);
        if (ignored.code)
                rc = sw_err_set(err, SW_ETOOBIG, "too many layers for one overlay mount");
        else if (mount("overlay", rootfs, "overlay", 0, sw_buf_str(&opts)) != 0)
                rc = sw_err_errno(err, SW_EIO, errno, "mount the rootfs overlay");
        else
                c->mounted = true;
        sw_buf_release(&opts);
out:
        free(rootfs);
        free(upper);
        free(work);
        return rc;
}

static const char **strv_from_json(const json_t *a)
{
        const char **v = sw_xcalloc(json_array_size(a) + 1, sizeof(*v));
        const json_t *e;
        size_t i;

        json_array_foreach(a, i, e) v[i] = json_string_value(e) ? json_string_value(e) : "";
        return v;
}

/* The container's volumeMounts, each prepared by agent_volume_prepare(). */
static int volume_mounts(struct step_rt_mount *m, size_t *n, size_t cap, char **paths,
                         struct orch_agent *a, const struct agent_pod *p, const json_t *obj,
                         const json_t *spec, struct sw_err *err)
{
        const json_t *vm, *vol;
        size_t i, j;

        json_array_foreach(json_object_get(spec, "volumeMounts"), i, vm)
        {
                const char *vname = sw_json_str(vm, "name", "");
                const json_t *found = NULL;
                bool ro = false;
                int rc;

                json_array_foreach(json_object_get(json_object_get(obj, "spec"), "volumes"), j, vol)
                {
                        if (!strcmp(sw_json_str(vol, "name", ""), vname))
                                found = vol;
                }
                if (!found)
                        return sw_err_set(err, SW_EINVAL, "volume \"%s\" is not defined", vname);
                if (*n >= cap)
                        return sw_err_set(err, SW_ETOOBIG, "too many volume mounts");
                rc = agent_volume_prepare(&paths[*n], &ro, a, p, obj, found, err);
                if (rc)
                        return rc;
                m[*n].source = paths[*n];
                m[*n].destination = sw_json_str(vm, "mountPath", "/");
                m[*n].readonly = ro || sw_json_bool(vm, "readOnly", 0);
                (*n)++;
        }
        return 0;
}

/* An image's STOPSIGNAL ("SIGQUIT", "QUIT", "3"); 0 when absent or unknown. */
static int parse_signal(const char *s)
{
        static const struct {
                const char *name;
                int sig;
        } sigs[] = {{"TERM", SIGTERM}, {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
                    {"HUP", SIGHUP},   {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"WINCH", SIGWINCH}};
        char *end;
        long v;

        if (!strncmp(s, "SIG", 3))
                s += 3;
        for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
                if (!strcmp(s, sigs[i].name))
                        return sigs[i].sig;
        v = strtol(s, &end, 10);
        return *s && !*end && v > 0 && v < 65 ? (int)v : 0;
}

static int start_ctr(struct orch_agent *a, struct agent_pod *p, struct agent_ctr *c,
                     const json_t *obj, const json_t *spec, const struct agent_image *img,
                     struct sw_err *err)
{
        struct step_rt_process rp = {0};
        struct step_rt_mount mounts[64];
        char *mpaths[64] = {0};
        size_t nm = 0;
        char *rootfs = ctr_path(c, "rootfs"), *exit_path = ctr_path(c, "exit");
        char *hosts = sw_xasprintf("%s/hosts", p->dir),
             *resolv = sw_xasprintf("%s/resolv.conf", p->dir);
        char *hostname = sw_xasprintf("%s/hostname", p->dir);
        char *log = log_path(p, c, false), *prev = log_path(p, c, true);
        json_t *env = NULL, *args = build_args(spec, img->config);
        const char **argv = NULL, **envv = NULL;
        const json_t *limits = json_object_get(json_object_get(spec, "resources"), "limits");
        char hn[64], cgpath[128];
        int rc;

        if (json_array_size(args) == 0) {
                rc = sw_err_set(err, SW_EINVAL, "no command specified");
                goto out;
        }
        rc = build_env(&env, a, p, obj, spec, img->config, err);
        if (rc)
                goto out;
        rc = mount_rootfs(c, img, err);
        if (rc)
                goto out;
        rc = resolve_user(&rp.uid, &rp.gid, obj, spec, img->config, rootfs, err);
        if (rc)
                goto out;
        mounts[nm++] = (struct step_rt_mount){hosts, "/etc/hosts", false};
        mounts[nm++] = (struct step_rt_mount){resolv, "/etc/resolv.conf", false};
        mounts[nm++] = (struct step_rt_mount){hostname, "/etc/hostname", false};
        rc = volume_mounts(mounts, &nm, 64, mpaths, a, p, obj, spec, err);
        if (rc)
                goto out;
        if (c->ever_ran)
                agent_logs_retire(a, log, prev);
        for (size_t i = 0; i < json_array_size(args); i++) {
                char *x = expand_vars(json_string_value(json_array_get(args, i))
                                              ? json_string_value(json_array_get(args, i))
                                              : "",
                                      env);
                json_array_set_new(args, i, json_string(x));
                free(x);
        }
        argv = strv_from_json(args);
        envv = strv_from_json(env);
        snprintf(hn, sizeof(hn), "%s", p->name);
        rp.runtime = a->runtime;
        rp.state_dir = a->runc_root;
        rp.bundle_dir = c->dir;
        rp.rootfs = rootfs;
        rp.id = c->id;
        rp.args = argv;
        rp.env = envv;
        rp.cwd = *sw_json_str(spec, "workingDir", "") ? sw_json_str(spec, "workingDir", "/")
                                                      : sw_json_str(img->config, "WorkingDir", "/");
        if (!*rp.cwd)
                rp.cwd = "/";
        rp.hostname = hn;
        rp.mounts = mounts;
        rp.nmounts = nm;
        rp.netns_path = p->host_network ? NULL : p->netns_path;
        rp.host_network = p->host_network;
        rp.memory_limit_bytes = sw_json_quantity(json_object_get(limits, "memory"), 0) / 1000;
        rp.cpu_quota_us = sw_json_quantity(json_object_get(limits, "cpu"), 0) * 100;
        rp.no_new_privs = true;
        /* Kept after it ends, so its cgroup can still tell whether the OOM killer ended it. */
        snprintf(cgpath, sizeof(cgpath), "/slipway/%s", c->id);
        rp.cgroups_path = cgpath;
        rp.keep = true;
        rp.log_timestamps = true;
        if (agent_rt_may_have(a->runtime, a->runc_root, c->id))
                step_rt_delete(a->runtime, a->runc_root, c->id);
        {
                char *ended = ctr_path(c, "ended");
                unlink(ended);
                free(ended);
        }
        rc = step_rt_start(&rp, log, exit_path, err);
        if (rc)
                goto out;
        if (c->ever_ran)
                c->restart_count++;
        c->ever_ran = c->running = true;
        c->pid = 0;
        agent_time_fmt(c->started_at, sizeof(c->started_at), sw_now_ms());
        c->start_mono = sw_mono_ms();
        c->ready = false;
        c->probe_failures = c->live_failures = 0;
        c->post_start_done = false;
        c->next_probe_mono = c->next_live_mono = 0;
        c->started = false;
        c->startup_failures = 0;
        c->next_startup_mono = 0;
        snprintf(c->image_id, sizeof(c->image_id), "%s", img->digest);
        c->stop_sig = parse_signal(sw_json_str(img->config, "StopSignal", ""));
        set_waiting(c, "", NULL);
out:
        for (size_t i = 0; i < 64; i++)
                free(mpaths[i]);
        free(argv);
        free(envv);
        json_decref(env);
        json_decref(args);
        free(rootfs);
        free(exit_path);
        free(hosts);
        free(resolv);
        free(hostname);
        free(log);
        free(prev);
        return rc;
}

static const char *pull_policy(const json_t *spec, const char *image)
{
        const char *pol = sw_json_str(spec, "imagePullPolicy", NULL);
        const char *slash = strrchr(image, '/'), *colon;

        if (pol)
                return pol;
        if (strchr(image, '@'))
                return "IfNotPresent";
        colon = strrchr(slash ? slash : image, ':');
        return !colon || !strcmp(colon, ":latest") ? "Always" : "IfNotPresent";
}

/*
 * The pod's imagePullSecrets (kubernetes.io/dockerconfigjson or
 * dockercfg) merged into one Docker config.json, written to a private file
 * for the registry client; *path_out NULL when the pod names none. The
 * caller removes the file at once.
 */
static int pull_secrets_file(char **path_out, struct orch_agent *a, const struct agent_pod *p,
                             const json_t *obj, struct sw_err *err)
{
        const json_t *refs = json_object_get(json_object_get(obj, "spec"), "imagePullSecrets"), *r;
        json_t *auths = json_object();
        char *path = NULL, *text = NULL;
        size_t i;
        int rc = 0;

        *path_out = NULL;
        json_array_foreach(refs, i, r)
        {
                json_t *data = NULL, *doc = NULL, *v;
                const char *raw;
                struct sw_err ignored = SW_ERR_INIT;

                /* A missing secret is skipped, as the kubelet does (the pull may still work). */
                if (fetch_data(&data, a, p->ns, "secrets", sw_json_str(r, "name", ""), false,
                               &ignored) != 0)
                        continue;
                raw = sw_json_str(data, ".dockerconfigjson", NULL);
                if (!raw)
                        raw = sw_json_str(data, ".dockercfg", NULL);
                if (raw && sw_json_parse(&doc, raw, strlen(raw), 0, &ignored) == 0) {
                        const char *host;
                        v = json_object_get(doc, "auths") ? json_object_get(doc, "auths") : doc;
                        json_t *e;
                        json_object_foreach(v, host, e)
                        {
                                if (!json_object_get(auths, host))
                                        json_object_set(auths, host, e);
                        }
                }
                json_decref(doc);
                json_decref(data);
        }
        if (json_object_size(auths)) {
                json_t *cfg = json_pack("{s:O}", "auths", auths);
                path = sw_xasprintf("%s/pods/%s/pull-auth.json", a->root, p->uid);
                text = json_dumps(cfg, JSON_COMPACT);
                rc = sw_write_file_atomic(path, text, strlen(text), 0600, err);
                sw_wipe(text, strlen(text));
                free(text);
                json_decref(cfg);
                if (rc) {
                        free(path);
                        path = NULL;
                }
        }
        json_decref(auths);
        *path_out = path;
        return rc;
}

/*
 * Try to start `c` now: image, then the container. Failures become waiting
 * reasons. An image that must be pulled is asked of the pull workers; the
 * container keeps waiting until a later pass finds the pull done.
 */
static void try_start(struct orch_agent *a, struct agent_pod *p, struct agent_ctr *c,
                      const json_t *obj, const json_t *spec)
{
        struct agent_image img = {0};
        struct sw_err err = SW_ERR_INIT;
        const char *policy = pull_policy(spec, c->image);
        char digest[SW_DIGEST_STR_LEN];
        char *auth = NULL;
        /* Always pulls once per agent run; after that the stored copy is used between restarts. */
        bool pull = !strcmp(policy, "Always") && !json_object_get(a->images, c->image);
        int rc = 0;

        if (!pull) {
                rc = agent_image_ensure(&img, a, c->image, &err);
                if (rc == SW_ENOTFOUND && !strcmp(policy, "Never")) {
                        sw_err_clear(&err);
                        rc = sw_err_set(&err, SW_ENOTFOUND,
                                        "container image \"%s\" is not present with pull policy "
                                        "of Never",
                                        c->image);
                } else if (rc == SW_ENOTFOUND) {
                        sw_err_clear(&err);
                        rc = 0;
                        pull = true;
                }
        }
        if (pull && !a->pulls)
                rc = agent_pulls_new(&a->pulls, a, &err);
        if (pull && rc == 0) {
                if (!c->pull_pending)
                        rc = pull_secrets_file(&auth, a, p, obj, &err);
                if (auth) {
                        /* One file per container: the pull worker owns it from here. */
                        char *own = sw_xasprintf("%s.%s", auth, c->id);
                        if (rename(auth, own) == 0) {
                                free(auth);
                                auth = own;
                        } else
                                free(own);
                }
                if (rc == 0)
                        rc = agent_pulls_poll(digest, a->pulls, c->image, &auth, &err);
                if (auth) {
                        struct sw_err ignored = SW_ERR_INIT;
                        sw_rm_rf(auth, &ignored);
                        free(auth);
                }
                c->pull_pending = rc == 1;
                if (rc == 1)
                        return;
                if (rc == 0) {
                        json_object_set_new(a->images, c->image, json_string(digest));
                        rc = agent_image_ensure(&img, a, c->image, &err);
                }
        }
        if (rc) {
                c->pull_failures++;
                c->next_start_mono = sw_mono_ms() + backoff_ms(a, c->pull_failures - 1);
                set_waiting(c, !strcmp(policy, "Never") ? "ErrImageNeverPull" : "ErrImagePull",
                            err.msg);
                agent_log_err(a, "pull image", p, &err);
                return;
        }
        c->pull_failures = 0;
        agent_gc_touch(a, c->image);
        rc = start_ctr(a, p, c, obj, spec, &img, &err);
        if (rc) {
                c->next_start_mono = sw_mono_ms() + backoff_ms(a, c->restart_count);
                set_waiting(c, "CreateContainerConfigError", err.msg);
                agent_log_err(a, "start container", p, &err);
        }
        agent_image_release(&img);
}

/* ---- exits, probes ---- */

/*
 * Did the kernel's OOM killer act in the container's memory cgroup? Read
 * while the stopped container is kept (cgroup v1 memory.oom_control, or
 * v2 memory.events).
 */
static bool oom_killed(const struct agent_ctr *c)
{
        const char *files[] = {"/sys/fs/cgroup/memory/slipway/", "/sys/fs/cgroup/slipway/"};
        const char *leaf[] = {"memory.oom_control", "memory.events"};
        bool oom = false;

        for (size_t i = 0; i < 2 && !oom; i++) {
                char path[256], *text = NULL, *k;
                struct sw_err ignored = SW_ERR_INIT;
                snprintf(path, sizeof(path), "%s%s/%s", files[i], c->id, leaf[i]);
                if (sw_read_file(&text, NULL, path, 65536, &ignored) != 0)
                        continue;
                k = strstr(text, "oom_kill ");
                oom = k && strtol(k + 9, NULL, 10) > 0;
                free(text);
        }
        return oom;
}

/* The container's process ended: record how, and decide about a restart. */
static void ctr_exited(struct orch_agent *a, struct agent_pod *p, struct agent_ctr *c,
                       const json_t *obj, int code)
{
        char finished[32], cid[128];
        char *rerr = step_rt_log_error(c->dir);
        const char *reason = code == 0 ? "Completed" : "Error";
        json_t *t;

        if (code != 0 && oom_killed(c))
                reason = "OOMKilled";
        else if (rerr && code != 0)
                reason = "StartError";
        step_rt_delete(a->runtime, a->runc_root, c->id);
        agent_time_fmt(finished, sizeof(finished), sw_now_ms());
        snprintf(cid, sizeof(cid), "runc://%s", c->id);
        t = json_pack("{s:i,s:s,s:s,s:s,s:s}", "exitCode", code, "reason", reason, "startedAt",
                      c->started_at, "finishedAt", finished, "containerID", cid);
        if (rerr && code != 0)
                json_object_set_new(t, "message", json_string(rerr));
        free(rerr);
        c->running = false;
        c->ready = false;
        c->pid = 0;
        if (restarts(obj, c->init, code)) {
                char msg[256];
                int64_t d = backoff_ms(a, c->restart_count);
                json_decref(c->last_term);
                c->last_term = t;
                c->next_start_mono = sw_mono_ms() + d;
                snprintf(msg, sizeof(msg), "back-off %llds restarting failed container=%s pod=%s",
                         (long long)((d + 999) / 1000), c->name, p->name);
                set_waiting(c, "CrashLoopBackOff", msg);
        } else {
                json_decref(c->term);
                c->term = t;
        }
}

static int probe_port(const json_t *spec, const json_t *port)
{
        const json_t *cp;
        size_t i;

        if (json_is_integer(port))
                return (int)json_integer_value(port);
        json_array_foreach(json_object_get(spec, "ports"), i, cp)
        {
                if (json_is_string(port) &&
                    !strcmp(sw_json_str(cp, "name", ""), json_string_value(port)))
                        return (int)sw_json_int(cp, "containerPort", 0);
        }
        return json_is_string(port) ? (int)strtol(json_string_value(port), NULL, 10) : 0;
}

/* Run one probe (httpGet, tcpSocket or exec); true on success. */
static bool probe_once(struct orch_agent *a, const struct agent_pod *p, const struct agent_ctr *c,
                       const json_t *spec, const json_t *pr)
{
        int timeout_ms = (int)sw_json_int(pr, "timeoutSeconds", 1) * 1000;
        const json_t *h = json_object_get(pr, "httpGet"), *t = json_object_get(pr, "tcpSocket");
        const json_t *x = json_object_get(pr, "exec");
        int fd, port;
        bool ok = false;

        if (x) {
                const char **argv = strv_from_json(json_object_get(x, "command"));
                struct sw_err ignored = SW_ERR_INIT;
                int code = -1;
                ok = argv[0] &&
                     step_rt_exec(&code, a->runtime, a->runc_root, c->id, argv, timeout_ms,
                                  &ignored) == 0 &&
                     code == 0;
                free(argv);
                return ok;
        }
        if (t) {
                port = probe_port(spec, json_object_get(t, "port"));
                fd = agent_netns_connect(p->host_network ? NULL : p->netns_path, port, timeout_ms);
                if (fd >= 0)
                        close(fd);
                return fd >= 0;
        }
        if (!h)
                return false;
        port = probe_port(spec, json_object_get(h, "port"));
        fd = agent_netns_connect(p->host_network ? NULL : p->netns_path, port, timeout_ms);
        if (fd >= 0) {
                struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
                char *req = sw_xasprintf("GET %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n"
                                         "User-Agent: slipway-probe\r\n\r\n",
                                         sw_json_str(h, "path", "/"), port);
                char buf[64];
                size_t got = 0;
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                if (write(fd, req, strlen(req)) == (ssize_t)strlen(req)) {
                        while (got < sizeof(buf) - 1) {
                                ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
                                if (n <= 0)
                                        break;
                                got += (size_t)n;
                        }
                        buf[got] = '\0';
                        if (!strncmp(buf, "HTTP/", 5) && strchr(buf, ' ')) {
                                int code = (int)strtol(strchr(buf, ' ') + 1, NULL, 10);
                                ok = code >= 200 && code < 400;
                        }
                }
                free(req);
                close(fd);
        }
        return ok;
}

/* Is probe `pr` due now? `next` is its own schedule (0: never run yet). */
static bool probe_due(int64_t *next, const struct agent_ctr *c, const json_t *pr, int64_t now)
{
        if (now < *next)
                return false;
        if (*next == 0 && now - c->start_mono < sw_json_int(pr, "initialDelaySeconds", 0) * 1000)
                return false;
        *next = now + sw_json_int(pr, "periodSeconds", 10) * 1000;
        return true;
}

/*
 * Startup, readiness and liveness probes, each on its own period. A
 * startupProbe runs first and alone: readiness and liveness wait for its
 * first success, and failureThreshold failures in a row kill the container.
 * Readiness starts false and follows success (successThreshold 1) and
 * failureThreshold; liveness kills the container after failureThreshold failures in a row
 * (the restart policy then applies).
 */
static void run_probes(struct orch_agent *a, struct agent_pod *p, struct agent_ctr *c,
                       const json_t *spec)
{
        const json_t *rp = json_object_get(spec, "readinessProbe");
        const json_t *lp = json_object_get(spec, "livenessProbe");
        const json_t *sp = json_object_get(spec, "startupProbe");
        int64_t now = sw_mono_ms();
        struct sw_err ignored = SW_ERR_INIT;

        if (!c->started) {
                /* Until the startup probe succeeds, no other probe runs and it is not ready. */
                if (!sp) {
                        c->started = true;
                } else if (probe_due(&c->next_startup_mono, c, sp, now)) {
                        if (probe_once(a, p, c, spec, sp)) {
                                c->started = true;
                                c->startup_failures = 0;
                        } else if (++c->startup_failures >=
                                   sw_json_int(sp, "failureThreshold", 3)) {
                                /* As the kubelet: killed, then restarted per the policy. */
                                step_rt_kill(a->runtime, a->runc_root, c->id, SIGKILL, true,
                                             &ignored);
                                c->startup_failures = 0;
                        }
                }
                if (!c->started)
                        return;
        }
        if (!rp)
                c->ready = true;
        if (rp && probe_due(&c->next_probe_mono, c, rp, now)) {
                if (probe_once(a, p, c, spec, rp)) {
                        c->probe_failures = 0;
                        c->ready = true;
                } else if (++c->probe_failures >= sw_json_int(rp, "failureThreshold", 3)) {
                        c->ready = false;
                }
        }
        if (lp && probe_due(&c->next_live_mono, c, lp, now)) {
                if (probe_once(a, p, c, spec, lp))
                        c->live_failures = 0;
                else if (++c->live_failures >= sw_json_int(lp, "failureThreshold", 3)) {
                        /* Restarted per the pod's restart policy once the exit file appears. */
                        step_rt_kill(a->runtime, a->runc_root, c->id, SIGKILL, true, &ignored);
                        c->live_failures = 0;
                }
        }
}

/* ---- status ---- */

static json_t *ctr_status(const struct agent_pod *p, const struct agent_ctr *c, bool initializing)
{
        char cid[128];
        json_t *st, *state;

        snprintf(cid, sizeof(cid), "runc://%s", c->id);
        if (c->running) {
                state = json_pack("{s:{s:s}}", "running", "startedAt", c->started_at);
        } else if (c->term) {
                state = json_pack("{s:O}", "terminated", c->term);
        } else {
                state = json_pack("{s:{s:s}}", "waiting", "reason",
                                  c->waiting_reason[0] ? c->waiting_reason
                                  : initializing       ? "PodInitializing"
                                                       : "ContainerCreating");
                if (c->waiting_msg)
                        json_object_set_new(json_object_get(state, "waiting"), "message",
                                            json_string(c->waiting_msg));
        }
        st = json_pack(
                "{s:s,s:s,s:s,s:b,s:b,s:i,s:o,s:o}", "name", c->name, "image", c->image, "imageID",
                c->image_id, "ready", c->running && c->ready, "started", c->running && c->started,
                "restartCount", c->restart_count, "state", state, "lastState",
                c->last_term ? json_pack("{s:O}", "terminated", c->last_term) : json_object());
        if (c->ever_ran)
                json_object_set_new(st, "containerID", json_string(cid));
        (void)p;
        return st;
}

static void write_status(struct orch_agent *a, struct agent_pod *p, const json_t *obj)
{
        json_t *cs = json_array(), *ics = json_array(), *conds, *status, *patch;
        const json_t *old_conds = json_object_get(json_object_get(obj, "status"), "conditions");
        bool all_ready = true, pending = false, all_term = true, all_ok = true;
        bool initialized = true, init_failed = false;
        const char *phase;
        char now[32], *dump, *path;
        struct sw_err err = SW_ERR_INIT;

        for (size_t i = 0; i < p->nctrs; i++) {
                const struct agent_ctr *c = &p->ctrs[i];
                if (c->init) {
                        json_array_append_new(ics, ctr_status(p, c, false));
                        if (!(c->term && sw_json_int(c->term, "exitCode", -1) == 0))
                                initialized = false;
                        if (c->term && sw_json_int(c->term, "exitCode", -1) != 0)
                                init_failed = true;
                        continue;
                }
                json_array_append_new(cs, ctr_status(p, c, !initialized));
                if (!(c->running && c->ready))
                        all_ready = false;
                if (!c->ever_ran && !c->running)
                        pending = true;
                if (!c->term)
                        all_term = false;
                else if (sw_json_int(c->term, "exitCode", 0) != 0)
                        all_ok = false;
        }
        if (!json_array_size(cs))
                all_ready = all_term = false;
        phase = init_failed    ? "Failed"
                : !initialized ? "Pending"
                : pending      ? "Pending"
                : all_term     ? (all_ok ? "Succeeded" : "Failed")
                               : "Running";
        agent_time_fmt(now, sizeof(now), sw_now_ms());
        conds = json_array();
        {
                const char *types[] = {"PodScheduled", "Initialized", "ContainersReady", "Ready"};
                bool vals[] = {true, initialized, all_ready, all_ready};
                for (int i = 0; i < 4; i++) {
                        const char *v = vals[i] ? "True" : "False", *since = now;
                        const json_t *oc;
                        size_t j;
                        /* Keep lastTransitionTime unless the status really changed. */
                        json_array_foreach(old_conds, j, oc)
                        {
                                if (!strcmp(sw_json_str(oc, "type", ""), types[i]) &&
                                    !strcmp(sw_json_str(oc, "status", ""), v))
                                        since = sw_json_str(oc, "lastTransitionTime", now);
                        }
                        json_array_append_new(conds,
                                              json_pack("{s:s,s:s,s:s}", "type", types[i], "status",
                                                        v, "lastTransitionTime", since));
                        if (!vals[i])
                                json_object_set_new(json_array_get(conds, (size_t)i), "reason",
                                                    json_string(i == 1 ? "ContainersNotInitialized"
                                                                       : "ContainersNotReady"));
                }
        }
        {
                char ip[16];
                agent_ip_fmt(ip, p->host_network || !p->ip ? INADDR_LOOPBACK : p->ip);
                status = json_pack("{s:s,s:o,s:o,s:s,s:[{s:s}],s:s,s:[{s:s}],s:s}", "phase", phase,
                                   "conditions", conds, "containerStatuses", cs, "podIP", ip,
                                   "podIPs", "ip", ip, "hostIP", "127.0.0.1", "hostIPs", "ip",
                                   "127.0.0.1", "startTime", p->start_time);
        }
        if (json_array_size(ics))
                json_object_set(status, "initContainerStatuses", ics);
        json_decref(ics);
        dump = json_dumps(status, JSON_COMPACT | JSON_SORT_KEYS);
        if (p->status_sent && !strcmp(p->status_sent, dump)) {
                free(dump);
                json_decref(status);
                return;
        }
        patch = json_pack("{s:o}", "status", status);
        path = sw_xasprintf("/api/v1/namespaces/%s/pods/%s/status", p->ns, p->name);
        if (orch_kube_request(NULL, NULL, a->kube, "PATCH", path, "application/merge-patch+json",
                              patch, &err) == 0) {
                free(p->status_sent);
                p->status_sent = dump;
                dump = NULL;
        } else
                agent_log_err(a, "write pod status", p, &err);
        free(dump);
        free(path);
        json_decref(patch);
}

/* ---- termination ---- */

/*
 * Run a lifecycle hook ("postStart" or "preStop": exec, httpGet or
 * tcpSocket, like a probe) and wait for it, at most HOOK_TIMEOUT_S: the
 * reconcile thread waits meanwhile, so hooks are kept short. True when
 * there is none or it succeeded.
 */
static bool run_hook(struct orch_agent *a, const struct agent_pod *p, const struct agent_ctr *c,
                     const json_t *obj, const char *which)
{
        const json_t *spec = ctr_spec(obj, c);
        const json_t *h = json_object_get(json_object_get(spec, "lifecycle"), which);
        json_t *copy;
        bool ok;

        if (!h)
                return true;
        copy = sw_json_copy(h);
        json_object_set_new(copy, "timeoutSeconds", json_integer(HOOK_TIMEOUT_S));
        ok = probe_once(a, p, c, spec, copy);
        json_decref(copy);
        if (!ok)
                sw_log(SW_LOG_WARN, "orch_agent", "lifecycle hook failed", "{s:s,s:s,s:s,s:s}",
                       "namespace", p->ns, "pod", p->name, "container", c->name, "hook", which);
        return ok;
}

static void confirm_deleted(struct orch_agent *a, struct agent_pod *p)
{
        json_t *body = json_pack("{s:s,s:s,s:i,s:{s:s}}", "kind", "DeleteOptions", "apiVersion",
                                 "v1", "gracePeriodSeconds", 0, "preconditions", "uid", p->uid);
        char *path = sw_xasprintf("/api/v1/namespaces/%s/pods/%s", p->ns, p->name);
        struct sw_err err = SW_ERR_INIT;
        int rc = orch_kube_request(NULL, NULL, a->kube, "DELETE", path, NULL, body, &err);

        if (rc == 0 || rc == SW_ENOTFOUND || rc == SW_ECONFLICT)
                p->gone = true;
        else
                agent_log_err(a, "confirm pod deletion", p, &err);
        free(path);
        json_decref(body);
}

/* Any container still running? Reads exit files; returns the number still running. */
static size_t poll_exits(struct agent_pod *p)
{
        size_t n = 0;

        for (size_t i = 0; i < p->nctrs; i++) {
                struct agent_ctr *c = &p->ctrs[i];
                char *ep = ctr_path(c, "exit");
                if (c->running && access(ep, F_OK) == 0)
                        c->running = false;
                n += c->running;
                free(ep);
        }
        return n;
}

static void terminate(struct orch_agent *a, struct agent_pod *p, const json_t *obj)
{
        const json_t *meta = json_object_get(obj, "metadata");
        struct sw_err ignored = SW_ERR_INIT;

        if (!p->terminating) {
                int64_t grace = sw_json_int(meta, "deletionGracePeriodSeconds",
                                            sw_json_int(json_object_get(obj, "spec"),
                                                        "terminationGracePeriodSeconds", 30));
                p->terminating = true;
                p->kill_deadline_mono = sw_mono_ms() + grace * 1000;
                for (size_t i = 0; i < p->nctrs; i++) {
                        if (!p->ctrs[i].running)
                                continue;
                        run_hook(a, p, &p->ctrs[i], obj, "preStop");
                        step_rt_kill(a->runtime, a->runc_root, p->ctrs[i].id,
                                     p->ctrs[i].stop_sig ? p->ctrs[i].stop_sig : SIGTERM, false,
                                     &ignored);
                }
        }
        if (poll_exits(p) && sw_mono_ms() >= p->kill_deadline_mono && !p->killed) {
                for (size_t i = 0; i < p->nctrs; i++)
                        if (p->ctrs[i].running)
                                step_rt_kill(a->runtime, a->runc_root, p->ctrs[i].id, SIGKILL, true,
                                             &ignored);
                p->killed = true;
        }
        if (poll_exits(p))
                return;
        cleanup_sandbox(a, p, false);
        confirm_deleted(a, p);
}

/*
 * A pod found on disk at start-up and gone from the API server has no
 * container records (they come from the spec): make them from its
 * pod.json (container names, numbered in order), so that its containers
 * are killed and deleted and their rootfs unmounted before the directory
 * goes.
 */
static void ctrs_from_disk(struct orch_agent *a, struct agent_pod *p)
{
        char *path = sw_xasprintf("%s/pod.json", p->dir), *text = NULL;
        struct sw_err ignored = SW_ERR_INIT;
        json_t *rec = NULL;
        const json_t *name;
        size_t i;

        if (sw_read_file(&text, NULL, path, 65536, &ignored) == 0 &&
            sw_json_parse(&rec, text, strlen(text), 0, &ignored) == 0) {
                const json_t *names = json_object_get(rec, "containers");
                p->ctrs = sw_xcalloc(json_array_size(names) + 1, sizeof(*p->ctrs));
                json_array_foreach(names, i, name)
                {
                        struct agent_ctr *k = &p->ctrs[p->nctrs];
                        k->name = sw_xstrdup(json_is_string(name) ? json_string_value(name) : "");
                        k->image = sw_xstrdup("");
                        snprintf(k->id, sizeof(k->id), "%s-%zu", p->uid, p->nctrs);
                        k->dir = sw_xasprintf("%s/c%zu", p->dir, p->nctrs);
                        k->running = agent_rt_may_have(a->runtime, a->runc_root, k->id);
                        p->nctrs++;
                }
        }
        json_decref(rec);
        free(text);
        free(path);
}

void agent_pod_destroy(struct orch_agent *a, struct agent_pod *p)
{
        if (!p->ctrs)
                ctrs_from_disk(a, p);
        cleanup_sandbox(a, p, true);
        p->gone = true;
}

/* ---- the pod ---- */

/*
 * The pid of a started container, 0 while it is not started yet. With
 * runc this reads the runtime's own state (<root>/<id>/state.json, whose
 * exec.fifo exists until the container is started) instead of running
 * `runc state` for every starting container on every pass; other
 * runtimes are asked.
 */
static int started_pid(struct orch_agent *a, const struct agent_ctr *c)
{
        struct sw_err ignored = SW_ERR_INIT;
        char *path, *text = NULL, *fifo;
        json_t *st = NULL;
        int pid = 0;

        if (!agent_rt_is_runc(a->runtime)) {
                struct step_rt_state rs;
                if (step_rt_state(&rs, a->runtime, a->runc_root, c->id, &ignored) == 0 &&
                    !strcmp(rs.status, "running"))
                        pid = rs.pid;
                return pid;
        }
        path = sw_xasprintf("%s/%s/state.json", a->runc_root, c->id);
        fifo = sw_xasprintf("%s/%s/exec.fifo", a->runc_root, c->id);
        /* Looked at every POLL_MS while starting: the file (tens of KiB) is read once it ran. */
        if (access(path, F_OK) == 0 && access(fifo, F_OK) != 0 &&
            sw_read_file(&text, NULL, path, 1 << 20, &ignored) == 0 &&
            sw_json_parse(&st, text, strlen(text), 0, &ignored) == 0) {
                pid = (int)sw_json_int(st, "init_process_pid", 0);
                if (pid > 0 && kill(pid, 0) != 0)
                        pid = 0;
        }
        json_decref(st);
        free(text);
        free(path);
        free(fifo);
        return pid > 0 ? pid : 0;
}

/* Launched and not seen running yet (nor ended). */
static bool ctr_starting(const struct agent_ctr *c)
{
        return c->running && !c->pid;
}

bool agent_pod_poll(struct orch_agent *a, struct agent_pod *p, bool *watch_out)
{
        bool changed = false, waiting = false;

        for (size_t i = 0; i < p->nctrs; i++) {
                struct agent_ctr *c = &p->ctrs[i];
                char *ep;

                if (!(ctr_starting(c) || (p->terminating && c->running)))
                        continue;
                ep = ctr_path(c, "exit");
                if (access(ep, F_OK) == 0)
                        changed = true;
                else if (p->terminating)
                        waiting = true;
                else if ((c->pid = started_pid(a, c)) > 0)
                        changed = true;
                else {
                        a->starting++;
                        waiting = true;
                }
                free(ep);
        }
        *watch_out |= waiting;
        return changed;
}

bool agent_pod_pulling(const struct agent_pod *p)
{
        for (size_t i = 0; i < p->nctrs; i++)
                if (p->ctrs[i].pull_pending)
                        return true;
        return false;
}

void agent_pod_reconcile(struct orch_agent *a, struct agent_pod *p, const json_t *obj)
{
        const json_t *meta = json_object_get(obj, "metadata");
        struct sw_err err = SW_ERR_INIT;
        bool inits_done = true, hold = false;

        if (!p->ctrs)
                init_ctrs(a, p, obj);
        p->start_blocked = false;
        if (json_object_get(meta, "deletionTimestamp")) {
                terminate(a, p, obj);
                return;
        }
        if (ensure_sandbox(a, p, obj, &err) != 0) {
                for (size_t i = 0; i < p->nctrs; i++)
                        if (!p->ctrs[i].running)
                                set_waiting(&p->ctrs[i], "CreatePodSandboxError", err.msg);
                agent_log_err(a, "pod sandbox", p, &err);
                write_status(a, p, obj);
                return;
        }
        if (!p->ports_annotated)
                annotate_ports(a, p, obj);
        for (size_t i = 0; i < p->nctrs; i++) {
                struct agent_ctr *c = &p->ctrs[i];
                const json_t *spec = ctr_spec(obj, c);

                /* Init containers one at a time, in order; the others once all succeeded. */
                if (!inits_done)
                        continue;
                if (c->running) {
                        char *ep = ctr_path(c, "exit");
                        int code = access(ep, F_OK) == 0 ? read_exit(ep) : -1;
                        if (code >= 0) {
                                /* Kept as "ended" for log followers of this instance. */
                                {
                                        char *ended = ctr_path(c, "ended");
                                        if (rename(ep, ended) != 0)
                                                unlink(ep);
                                        free(ended);
                                }
                                ctr_exited(a, p, c, obj, code);
                        }
                        free(ep);
                }
                if (!c->running && !c->term && sw_mono_ms() >= c->next_start_mono) {
                        if (a->starting >= AGENT_MAX_STARTING && !c->pull_pending &&
                            !c->waiting_reason[0]) {
                                /* Its turn comes when a start slot frees (agent.c). */
                                p->start_blocked = hold = true;
                                continue;
                        }
                        try_start(a, p, c, obj, spec);
                        if (ctr_starting(c))
                                a->starting++;
                } else if (!c->running && !strcmp(c->waiting_reason, "ErrImagePull"))
                        set_waiting(c, "ImagePullBackOff", c->waiting_msg);
                if (c->running) {
                        if (!c->pid)
                                c->pid = started_pid(a, c);
                        if (!c->pid)
                                hold = true; /* agent_pod_poll looks for its start */
                        if (c->pid && !c->post_start_done) {
                                c->post_start_done = true;
                                if (!run_hook(a, p, c, obj, "postStart")) {
                                        /* As the kubelet does: a failed hook kills the container. */
                                        struct sw_err ignored = SW_ERR_INIT;
                                        step_rt_kill(a->runtime, a->runc_root, c->id, SIGKILL, true,
                                                     &ignored);
                                }
                        }
                        if (c->pid && !c->init)
                                run_probes(a, p, c, spec);
                        {
                                char *log = log_path(p, c, false);
                                agent_logs_rotate(a, log);
                                free(log);
                        }
                }
                if (c->init && !(c->term && sw_json_int(c->term, "exitCode", -1) == 0))
                        inits_done = false;
        }
        /* Only containers on their way up: their first status is the one once they run. */
        if (hold && !p->status_sent && sw_mono_ms() - p->created_mono < STATUS_HOLD_MS)
                return;
        write_status(a, p, obj);
}
