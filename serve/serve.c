/*
 * serve.c - the one-machine setup (see serve.h).
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "dns/dns.h"
#include "engine/cli.h"
#include "engine/pool.h"
#include "engine/queue.h"
#include "engine/supervise.h"
#include "ingress/controller.h"
#include "ingress/ingress.h"
#include "orchestrator/agent.h"
#include "orchestrator/client/kube.h"
#include "orchestrator/ctrl.h"
#include "orchestrator/orchestrator.h"
#include "serve/serve.h"
#include "steps/runtime.h"
#include "steps/steps.h"
#include "common/banned.h"

#define STATUS_EVERY_MS 2000
#define PARTS_MAX 16

struct serve {
        const struct sw_config *cfg;
        struct sw_config pool_cfg; /* cfg with the local pdns filled in; borrows cfg's strings */
        struct eng_super *sup;
        struct ingress_nginx *nginx;
        struct ingress_ctrl *ingress;
        struct orch_api *api;
        struct orch_ctrl *ctrl;
        struct orch_agent *agent;
        struct eng_pool *pool;
        char *pdns_url, *pdns_key;
        char *status_path;
        int64_t started_at;
};

/* A random secret of 32 hex digits kept in `path` (0600), made on first use. */
static int secret_file(char **out, const char *path, struct sw_err *err)
{
        unsigned char raw[16];
        char hex[33];
        int rc;

        if (sw_read_file(out, NULL, path, 4096, err) == 0) {
                (*out)[strcspn(*out, "\r\n")] = '\0';
                return 0;
        }
        sw_err_clear(err);
        if (RAND_bytes(raw, sizeof(raw)) != 1)
                return sw_err_set(err, SW_EINTERNAL, "no random bytes for '%s'", path);
        for (int i = 0; i < 16; i++)
                snprintf(hex + 2 * i, 3, "%02x", raw[i]);
        rc = sw_write_file_atomic(path, hex, 32, 0600, err);
        if (rc == 0)
                *out = sw_xstrdup(hex);
        sw_wipe(raw, sizeof(raw));
        sw_wipe(hex, sizeof(hex));
        return rc;
}

static int start_registry(struct serve *s, struct sw_err *err)
{
        const struct sw_config *cfg = s->cfg;
        char *dir = sw_xasprintf("%s/registry", cfg->data);
        char *conf = sw_xasprintf("%s/config.yml", dir);
        char *log = sw_xasprintf("%s/registry.log", dir);
        char *text = NULL;
        int rc = 0;

        if (strcmp(cfg->registry, cfg->registry_listen) != 0) {
                sw_log(SW_LOG_INFO, "serve", "using an external registry", "{s:s}", "registry",
                       cfg->registry);
                goto out;
        }
        if (eng_tcp_alive(cfg->registry_listen, 200)) {
                sw_log(SW_LOG_INFO, "serve", "a registry already answers; using it", "{s:s}",
                       "addr", cfg->registry_listen);
                goto out;
        }
        /* distribution's own configuration; storage survives restarts */
        text = sw_xasprintf("version: 0.1\n"
                            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
                            "storage:\n  filesystem:\n    rootdirectory: %s/storage\n"
                            "  delete:\n    enabled: true\n"
                            "http:\n  addr: %s\n",
                            dir, cfg->registry_listen);
        if ((rc = sw_mkdir_p(dir, 0700, err)) != 0 ||
            (rc = sw_write_file_atomic(conf, text, strlen(text), 0600, err)) != 0)
                goto out;
        {
                const char *argv[] = {"/usr/bin/docker-registry", "serve", conf, NULL};
                struct eng_part_spec spec = {0};
                spec.name = "registry";
                spec.argv = argv;
                spec.log_path = log;
                spec.health_addr = cfg->registry_listen;
                rc = eng_super_add(s->sup, &spec, err);
        }
out:
        free(text);
        free(dir);
        free(conf);
        free(log);
        return rc;
}

static int start_pdns(struct serve *s, struct sw_err *err)
{
        const struct sw_config *cfg = s->cfg;
        struct dns_pdns_setup setup;
        struct dns_pdns_options o = {0};
        char *dir = sw_xasprintf("%s/pdns", cfg->data);
        char *keyfile = sw_xasprintf("%s/pdns-api-key", cfg->data);
        char *log = sw_xasprintf("%s/pdns.log", dir);
        int rc;

        if (cfg->pdns_url) {
                sw_log(SW_LOG_INFO, "serve", "using an external PowerDNS", "{s:s}", "url",
                       cfg->pdns_url);
                rc = 0;
                goto out;
        }
        memset(&setup, 0, sizeof(setup));
        rc = secret_file(&s->pdns_key, keyfile, err);
        if (rc)
                goto out;
        o.dir = dir;
        o.dns_listen = cfg->dns_listen;
        o.api_listen = cfg->pdns_api_listen;
        o.api_key = s->pdns_key;
        rc = dns_pdns_setup(&setup, &o, err);
        if (rc)
                goto out;
        {
                struct eng_part_spec spec = {0};
                spec.name = "pdns";
                spec.argv = setup.argv;
                spec.log_path = log;
                spec.health_addr = cfg->pdns_api_listen;
                rc = eng_super_add(s->sup, &spec, err);
        }
        if (rc == 0)
                s->pdns_url = sw_xstrdup(setup.api_url);
        dns_pdns_setup_release(&setup);
out:
        free(dir);
        free(keyfile);
        free(log);
        return rc;
}

static int start_nginx(struct serve *s, struct sw_err *err)
{
        const struct sw_config *cfg = s->cfg;
        struct ingress_nginx_options no = INGRESS_NGINX_OPTIONS_INIT;
        struct ingress_render_options ro = INGRESS_RENDER_OPTIONS_INIT;
        struct ingress_table *t = NULL;
        char *prefix = sw_xasprintf("%s/nginx", cfg->data);
        char *out = sw_xasprintf("%s/nginx.log", prefix);
        char *access = sw_xasprintf("%s/access.log", prefix);
        char *conf = NULL;
        size_t len;
        int rc;

        no.nginx = cfg->nginx;
        no.prefix = prefix;
        no.output = out;
        ro.listen = cfg->ingress_listen;
        ro.access_log = access;
        ingress_table_new(&t);
        if ((rc = sw_mkdir_p(prefix, 0700, err)) == 0 &&
            (rc = ingress_render(&conf, &len, t, &ro, err)) == 0 &&
            (rc = ingress_nginx_new(&s->nginx, &no, err)) == 0)
                rc = ingress_nginx_start(s->nginx, conf, len, cfg->ingress_listen, err);
        ingress_table_free(t);
        free(conf);
        free(prefix);
        free(out);
        free(access);
        return rc;
}

/* The orchestrator's API server, in this process, and $SLIPWAY_DATA/kubeconfig for it. */
static int start_api(struct serve *s, struct sw_err *err)
{
        const struct sw_config *cfg = s->cfg;
        struct orch_api_options ao = ORCH_API_OPTIONS_INIT;
        char *token = NULL, *cert = NULL, *key = NULL;
        char *db = sw_xasprintf("%s/orchestrator.db", cfg->data);
        int rc;

        if ((rc = orch_token_load(&token, cfg, err)) != 0 ||
            (rc = orch_tls_paths(&cert, &key, cfg, err)) != 0)
                goto out;
        ao.listen = cfg->kube_listen;
        ao.db_path = db;
        ao.token = token;
        ao.service_cidr = cfg->service_cidr;
        ao.default_toleration_s = cfg->default_toleration_seconds;
        ao.tls_cert_path = cert;
        ao.tls_key_path = key;
        if ((rc = orch_api_start(&s->api, &ao, err)) != 0)
                goto out;
        rc = orch_kubeconfig_write(cfg, cert, orch_api_port(s->api), token, err);
out:
        sw_free_secret(token);
        free(cert);
        free(key);
        free(db);
        return rc;
}

/* The controllers and the scheduler, and one node agent: this machine runs the pods. */
static int start_cluster(struct serve *s, struct sw_err *err)
{
        struct orch_ctrl_options co = ORCH_CTRL_OPTIONS_INIT;
        struct orch_agent_options ao = ORCH_AGENT_OPTIONS_INIT;
        struct orch_kube_local local;
        char *kubeconfig = sw_xasprintf("%s/kubeconfig", s->cfg->data);
        int rc;

        /* The controllers call the API server in this process directly. */
        orch_api_local(&local, s->api);
        co.local = &local;
        co.kubeconfig = kubeconfig;
        ao.kubeconfig = kubeconfig;
        ao.node_name = "slipway-node";
        ao.data_dir = s->cfg->data;
        ao.cfg = &s->pool_cfg;
        rc = orch_ctrl_start(&s->ctrl, &co, err);
        if (rc == 0)
                rc = orch_agent_start(&s->agent, &ao, err);
        free(kubeconfig);
        return rc;
}

/*
 * Stop the apps' containers on the way out, the Kubernetes way: with the
 * controllers stopped, delete every pod through the API and let the node
 * agent stop its containers (SIGTERM, grace, SIGKILL, unmount) and confirm.
 * The Deployments stay: the next `slipway serve` starts their pods again.
 */
static void drain_pods(struct serve *s, int64_t timeout_ms)
{
        char *kubeconfig = sw_xasprintf("%s/kubeconfig", s->cfg->data);
        struct orch_kube *kube = NULL;
        struct sw_err err = SW_ERR_INIT;
        int64_t deadline = sw_mono_ms() + timeout_ms;

        if (orch_kube_from_kubeconfig(&kube, kubeconfig, NULL, &err) != 0)
                goto out;
        for (;;) {
                json_t *list = NULL;
                const json_t *pod;
                size_t i, n;
                if (orch_kube_get(&list, kube, "/api/v1/pods", &err) != 0)
                        break;
                n = json_array_size(json_object_get(list, "items"));
                json_array_foreach(json_object_get(list, "items"), i, pod)
                {
                        const json_t *m = json_object_get(pod, "metadata");
                        char *path;
                        if (json_object_get(m, "deletionTimestamp"))
                                continue;
                        path = sw_xasprintf("/api/v1/namespaces/%s/pods/%s",
                                            sw_json_str(m, "namespace", ""),
                                            sw_json_str(m, "name", ""));
                        /* a short grace: many apps run as pid 1 and never see SIGTERM */
                        json_t *opts = json_pack("{s:s,s:s,s:i}", "kind", "DeleteOptions",
                                                 "apiVersion", "v1", "gracePeriodSeconds", 3);
                        orch_kube_request(NULL, NULL, kube, "DELETE", path, NULL, opts, &err);
                        json_decref(opts);
                        sw_err_clear(&err);
                        free(path);
                }
                json_decref(list);
                if (n == 0 || sw_mono_ms() > deadline)
                        break;
                sw_sleep_ms(200);
        }
out:
        if (err.code)
                sw_log(SW_LOG_WARN, "serve", "pods not drained", "{s:s}", "error", err.msg);
        orch_kube_free(kube);
        free(kubeconfig);
}

/*
 * What the drain could not stop (an agent that did not get to it in time):
 * kill and delete every container left in the node's runtime state, then
 * unmount what is mounted under the node's directory (rootfs overlays, pod
 * network namespaces). Nothing of the apps outlives `slipway serve`.
 */
static void reap_leftovers(struct serve *s)
{
        char *root = sw_xasprintf("%s/node/slipway-node", s->cfg->data);
        char *state = sw_xasprintf("%s/runc", root);
        const char *runtime = s->cfg->runtime ? s->cfg->runtime : "runc";
        DIR *d = opendir(state);
        struct dirent *de;
        char *mounts = NULL;
        struct sw_err ignored = SW_ERR_INIT;

        while (d && (de = readdir(d)) != NULL) {
                if (de->d_name[0] == '.')
                        continue;
                sw_log(SW_LOG_WARN, "serve", "container left running; killing it", "{s:s}", "id",
                       de->d_name);
                step_rt_kill(runtime, state, de->d_name, SIGKILL, true, &ignored);
                sw_sleep_ms(100);
                step_rt_delete(runtime, state, de->d_name);
        }
        if (d)
                closedir(d);
        /* deepest mount points first */
        if (sw_read_file(&mounts, NULL, "/proc/self/mounts", 4 << 20, &ignored) == 0) {
                char *points[1024];
                size_t n = 0, len = strlen(root);
                char *save = NULL;
                for (char *l = strtok_r(mounts, "\n", &save); l && n < 1024;
                     l = strtok_r(NULL, "\n", &save)) {
                        char *sp = strchr(l, ' '), *mp, *end;
                        if (!sp)
                                continue;
                        mp = sp + 1;
                        end = strchr(mp, ' ');
                        if (!end)
                                continue;
                        *end = '\0';
                        if (strncmp(mp, root, len) == 0 && (mp[len] == '/' || !mp[len]))
                                points[n++] = mp;
                }
                for (size_t i = n; i > 0; i--)
                        umount2(points[i - 1], MNT_DETACH);
        }
        free(mounts);
        free(state);
        free(root);
}

/* Routes for the Ingress objects of the API server, through our nginx. */
static int start_ingress_controller(struct serve *s, struct sw_err *err)
{
        struct ingress_ctrl_options o = {0};
        char *kubeconfig = sw_xasprintf("%s/kubeconfig", s->cfg->data);
        char *access = sw_xasprintf("%s/nginx/access.log", s->cfg->data);
        char *tls_dir = sw_xasprintf("%s/nginx/tls", s->cfg->data);
        int rc;

        o.kubeconfig = kubeconfig;
        o.ingress_class = s->cfg->ingress_class;
        o.nginx = s->nginx;
        o.render.listen = s->cfg->ingress_listen;
        o.render.access_log = access;
        o.edge_ip = s->cfg->edge_ip;
        o.tls_dir = tls_dir;
        rc = ingress_ctrl_start(&s->ingress, &o, err);
        free(kubeconfig);
        free(access);
        free(tls_dir);
        return rc;
}

static void write_status(struct serve *s)
{
        struct eng_part_status st[PARTS_MAX];
        int n = eng_super_status(s->sup, st, PARTS_MAX);
        json_t *parts = json_array(), *doc;
        struct sw_err err = SW_ERR_INIT;
        char *text;

        for (int i = 0; i < n; i++)
                json_array_append_new(parts,
                                      json_pack("{s:s,s:i,s:s,s:b,s:i,s:s}", "name", st[i].name,
                                                "pid", (int)st[i].pid, "addr", st[i].addr,
                                                "healthy", st[i].healthy, "restarts",
                                                st[i].restarts, "last_exit", st[i].last_exit));
        if (s->nginx)
                json_array_append_new(parts, json_pack("{s:s,s:i,s:s,s:b,s:i,s:s}", "name", "nginx",
                                                       "pid", (int)ingress_nginx_pid(s->nginx),
                                                       "addr", s->cfg->ingress_listen, "healthy",
                                                       eng_tcp_alive(s->cfg->ingress_listen, 100),
                                                       "restarts", 0, "last_exit", ""));
        if (s->api) {
                char addr[64];
                snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)orch_api_port(s->api));
                json_array_append_new(parts,
                                      json_pack("{s:s,s:i,s:s,s:b,s:i,s:s}", "name", "kube-api",
                                                "pid", (int)getpid(), "addr", addr, "healthy", true,
                                                "restarts", 0, "last_exit", ""));
        }
        doc = json_pack("{s:i,s:I,s:o,s:s,s:s?}", "pid", (int)getpid(), "started_at",
                        (json_int_t)s->started_at, "parts", parts, "registry", s->cfg->registry,
                        "pdns_url", s->pdns_url ? s->pdns_url : s->cfg->pdns_url);
        text = sw_json_dump(doc);
        sw_write_file_atomic(s->status_path, text, strlen(text), 0644, &err);
        free(text);
        json_decref(doc);
}

static void serve_usage(void)
{
        printf("usage: slipway serve [--ready-file PATH]\n\n"
               "Run everything on this machine: the queue workers with the deploy pipeline,\n"
               "and on loopback a docker-registry (SLIPWAY_REGISTRY_LISTEN), PowerDNS\n"
               "(SLIPWAY_DNS_LISTEN, API on SLIPWAY_PDNS_API_LISTEN) and nginx for the\n"
               "routes (SLIPWAY_INGRESS_LISTEN), each restarted if it dies. External\n"
               "ones are used instead when configured (SLIPWAY_REGISTRY, SLIPWAY_PDNS_URL).\n"
               "Stops on SIGTERM or SIGINT. `slipway status` shows every part.\n\n"
               "  --ready-file PATH  write PATH once every part answers\n"
               "  --keep-pods        leave the apps' containers running when stopping\n"
               "                     (by default their pods are deleted; the Deployments stay,\n"
               "                     and the next serve starts them again)\n");
}

int serve_cmd(int argc, char **argv, const struct sw_config *cfg)
{
        static const struct option opts[] = {
                {"ready-file", required_argument, NULL, 'r'},
                {"keep-pods", no_argument, NULL, 'k'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct serve s;
        struct eng_pool_options po = ENG_POOL_OPTIONS_INIT;
        struct sw_err err = SW_ERR_INIT;
        const char *ready = NULL;
        bool keep_pods = false;
        unsigned long npipelines = 0;
        sigset_t set;
        int c, rc = 1;
        int64_t next_status = 0;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                if (c == 'h') {
                        serve_usage();
                        return 0;
                }
                if (c == 'k') {
                        keep_pods = true;
                        continue;
                }
                if (c != 'r')
                        return sw_cli_usage_error("serve", "unknown option");
                ready = optarg;
        }
        if (optind != argc)
                return sw_cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);

        memset(&s, 0, sizeof(s));
        s.cfg = cfg;
        s.started_at = sw_now_ms();
        s.status_path = sw_xasprintf("%s/serve.json", cfg->data);
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);

        if (sw_mkdir_p(cfg->data, 0700, &err) != 0 || eng_super_new(&s.sup, &err) != 0 ||
            start_registry(&s, &err) != 0 || start_pdns(&s, &err) != 0 ||
            start_nginx(&s, &err) != 0 || start_api(&s, &err) != 0) {
                sw_cli_fail("serve", "%s", err.msg);
                goto out;
        }
        if (eng_super_wait_healthy(s.sup, 30000, &err) != 0) {
                sw_cli_fail("serve", "%s (logs under %s)", err.msg, cfg->data);
                goto out;
        }
        /* the workers and the node agent see the local PowerDNS as if it had been configured */
        s.pool_cfg = *cfg;
        if (s.pdns_url) {
                s.pool_cfg.pdns_url = s.pdns_url;
                s.pool_cfg.pdns_api_key = s.pdns_key;
        }
        /* libcurl for the controllers' API clients, before their threads start */
        step_libs_init();
        if (start_cluster(&s, &err) != 0 || start_ingress_controller(&s, &err) != 0) {
                sw_cli_fail("serve", "%s", err.msg);
                goto out;
        }
        po.cfg = &s.pool_cfg;
        po.pipelines = sw_pipelines(&npipelines);
        po.npipelines = npipelines;
        po.before_job = step_libs_init;
        if (eng_pool_start(&s.pool, &po, &err) != 0) {
                sw_cli_fail("serve", "%s", err.msg);
                goto out;
        }
        write_status(&s);
        sw_log(SW_LOG_INFO, "serve", "ready", "{s:s,s:s,s:s,s:s}", "registry", cfg->registry,
               "ingress", cfg->ingress_listen, "dns", cfg->dns_listen, "data", cfg->data);
        if (ready) {
                struct sw_err ignored = SW_ERR_INIT;
                sw_write_file_atomic(ready, "ready\n", 6, 0644, &ignored);
        }
        for (;;) {
                struct timespec tick = {0, 250 * 1000000};
                bool restarted = false;
                int sig = sigtimedwait(&set, NULL, &tick);

                if (sig > 0) {
                        sw_log(SW_LOG_INFO, "serve", "stopping", "{s:s}", "signal",
                               sig == SIGTERM ? "SIGTERM" : "SIGINT");
                        break;
                }
                /* nginx belongs to the ingress controller's thread once that runs */
                sw_err_clear(&err);
                if (!s.ingress && s.nginx && ingress_nginx_poll(s.nginx, &restarted, &err) == 0 &&
                    restarted)
                        sw_log(SW_LOG_WARN, "serve", "nginx restarted", NULL);
                if (sw_mono_ms() >= next_status) {
                        write_status(&s);
                        next_status = sw_mono_ms() + STATUS_EVERY_MS;
                }
        }
        rc = 0;
out:
        eng_pool_stop(s.pool, cfg->shutdown_grace_ms);
        ingress_ctrl_stop(s.ingress);
        orch_ctrl_stop(s.ctrl);
        if (s.agent && !keep_pods)
                drain_pods(&s, 15000);
        orch_agent_stop(s.agent);
        if (s.agent && !keep_pods)
                reap_leftovers(&s);
        orch_api_stop(s.api);
        ingress_nginx_free(s.nginx);
        eng_super_free(s.sup);
        unlink(s.status_path);
        free(s.status_path);
        free(s.pdns_url);
        sw_free_secret(s.pdns_key);
        return rc;
}

int serve_status_cmd(int argc, char **argv, const struct sw_config *cfg)
{
        char *path, *text = NULL;
        json_t *doc = NULL;
        const json_t *p;
        struct sw_err err = SW_ERR_INIT;
        size_t i;
        int rc = 1;

        (void)argv;
        if (sw_cli_wants_help(argc, argv)) {
                printf("usage: slipway status\n\n"
                       "Show whether `slipway serve` runs, and each part it runs with its\n"
                       "process, address and health (checked now), and the jobs by state.\n");
                return 0;
        }
        path = sw_xasprintf("%s/serve.json", cfg->data);
        if (sw_read_file(&text, NULL, path, 1 << 20, &err) != 0 ||
            sw_json_parse(&doc, text, strlen(text), 0, &err) != 0 ||
            kill((pid_t)sw_json_int(doc, "pid", 0), 0) != 0) {
                printf("slipway serve is not running (SLIPWAY_DATA=%s)\n", cfg->data);
                goto out;
        }
        printf("slipway serve: running, pid %lld\n\n%-10s %-8s %-22s %-9s %s\n",
               (long long)sw_json_int(doc, "pid", 0), "PART", "PID", "ADDRESS", "HEALTH",
               "RESTARTS");
        rc = 0;
        json_array_foreach(json_object_get(doc, "parts"), i, p)
        {
                const char *addr = sw_json_str(p, "addr", "");
                bool alive = *addr && eng_tcp_alive(addr, 300);
                if (!alive)
                        rc = 1;
                printf("%-10s %-8lld %-22s %-9s %lld%s%s\n", sw_json_str(p, "name", ""),
                       (long long)sw_json_int(p, "pid", 0), addr, alive ? "ok" : "DOWN",
                       (long long)sw_json_int(p, "restarts", 0),
                       *sw_json_str(p, "last_exit", "") ? ", last exit: " : "",
                       sw_json_str(p, "last_exit", ""));
        }
        {
                struct eng_queue_options qo = ENG_QUEUE_OPTIONS_INIT;
                struct eng_queue *q = NULL;
                int64_t counts[5];
                char *db = sw_xasprintf("%s/slipway.db", cfg->data);
                qo.path = db;
                qo.create = false;
                if (eng_queue_open(&q, &qo, &err) == 0 && eng_queue_counts(counts, q, &err) == 0)
                        printf("\njobs: %lld queued, %lld running, %lld succeeded, %lld failed, "
                               "%lld cancelled\n",
                               (long long)counts[0], (long long)counts[1], (long long)counts[2],
                               (long long)counts[3], (long long)counts[4]);
                eng_queue_close(q);
                free(db);
        }
out:
        json_decref(doc);
        free(text);
        free(path);
        return rc;
}
