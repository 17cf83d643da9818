/*
 * bench/edge.c - how long a new route takes to serve, through the whole edge.
 *
 * Route latency: from the moment an Ingress is applied to the API server
 * (server-side apply returns) to the first 200 for its host through nginx:
 * the ingress controller's watch, its debounce, the route table rebuild and
 * render, `nginx -t` in the staging directory, the atomic swap, SIGHUP, and
 * the new workers taking requests. Measured with 1, 100 and 1,000 hosts
 * routed, ROUNDS times each, against the orchestrator's API server (in this
 * process), the real nginx and the controller of ingress/controller.c. The
 * other hosts' Ingresses share a Service and a ready pod whose port nobody
 * asks (a host costs nginx a map entry and a server name either way); the new
 * host's Service has this process's HTTP server as its clusterIP:port and as
 * its pod's published port, so it answers whichever of the two the
 * controller routes to.
 * Figures are `name: value unit` lines (median and max over the rounds), the
 * size of the live nginx configuration, and the load average at the start:
 * on a shared, loaded machine the wall-clock figures grow with the load. The
 * CPU time spent on the way is printed too, which the load does not change:
 * `nginx -t` (reaped children), the nginx master's reload (from /proc, at
 * 10 ms granularity), and this process (API server, controller, probes).
 * Target: <= 300 ms at 1,000 hosts.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/libs.h"
#include "common/mem.h"
#include "ingress/controller.h"
#include "ingress/ingress.h"
#include "orchestrator/client/kube.h"
#include "orchestrator/orchestrator.h"
#include "tests/harness/edge.h"
#include "tests/harness/proc.h"

#define ROUNDS 7
#define TOKEN "bench-edge-token"

static void die_on(int rc, const struct sw_err *err)
{
        if (rc) {
                fprintf(stderr, "bench: %s\n", err->msg);
                exit(1);
        }
}

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

        return (x > y) - (x < y);
}

/* CPU time of `pid` so far (utime + stime from /proc), in microseconds. */
static int64_t proc_cpu_us(pid_t pid)
{
        struct sw_err err = SW_ERR_INIT;
        char path[64], *text = NULL, *p;
        unsigned long long ut = 0, st = 0;
        int64_t us = 0;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        if (sw_read_file(&text, NULL, path, 4096, &err) != 0)
                return 0;
        p = strrchr(text, ')');
        /* After "comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
                us = (int64_t)(ut + st) * 1000000 / sysconf(_SC_CLK_TCK);
        free(text);
        return us;
}

/* CPU time of this process (API server, controller, probes) or of its reaped children. */
static int64_t rusage_us(int who)
{
        struct rusage ru;

        getrusage(who, &ru);
        return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
               ru.ru_stime.tv_usec;
}

static void apply(struct orch_kube *kube, json_t *obj)
{
        struct sw_err err = SW_ERR_INIT;

        die_on(orch_kube_apply(NULL, kube, obj, "bench", true, &err), &err);
        json_decref(obj);
}

static json_t *service(const char *name, const char *selector, const char *cluster_ip, int port)
{
        json_t *s = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:{s:s},s:[{s:i,s:i}]}}", "apiVersion", "v1",
                              "kind", "Service", "metadata", "name", name, "namespace", "default",
                              "spec", "selector", "app", selector, "ports", "port", port,
                              "targetPort", 8080);

        if (cluster_ip)
                json_object_set_new(json_object_get(s, "spec"), "clusterIP",
                                    json_string(cluster_ip));
        return s;
}

static json_t *ingress(const char *name, const char *host, const char *svc, int port)
{
        return json_pack(
                "{s:s,s:s,s:{s:s,s:s},s:{s:s,s:[{s:s,s:{s:[{s:s,s:s,s:{s:{s:s,s:{s:i}}}}]}}]}}",
                "apiVersion", "networking.k8s.io/v1", "kind", "Ingress", "metadata", "name", name,
                "namespace", "default", "spec", "ingressClassName", "slipway", "rules", "host",
                host, "http", "paths", "path", "/", "pathType", "Prefix", "backend", "service",
                "name", svc, "port", "number", port);
}

/* A pod selected by app=`app`, ready, publishing container port 8080 as host port `port`. */
static void ready_pod(struct orch_kube *kube, const char *name, const char *app, int port)
{
        struct sw_err err = SW_ERR_INIT;
        char ports[64], *path;
        json_t *st;

        snprintf(ports, sizeof(ports), "{\"8080\": %d}", port);
        apply(kube, json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s},s:{s:s}},s:{s:[{s:s,s:s,s:[{s:i}]}]}}",
                              "apiVersion", "v1", "kind", "Pod", "metadata", "name", name,
                              "namespace", "default", "labels", "app", app, "annotations",
                              "slipway.dev/ports", ports, "spec", "containers", "name", "app",
                              "image", "bench.invalid/app:1", "ports", "containerPort", 8080));
        st = json_pack("{s:{s:s,s:s,s:[{s:s,s:s}]}}", "status", "phase", "Running", "podIP",
                       "127.0.0.1", "conditions", "type", "Ready", "status", "True");
        path = sw_xasprintf("/api/v1/namespaces/default/pods/%s/status", name);
        die_on(orch_kube_request(NULL, NULL, kube, "PATCH", path, "application/merge-patch+json",
                                 st, &err),
               &err);
        json_decref(st);
        free(path);
}

/* Wait until `host` is answered by a route (not nginx's default 404). */
static void wait_routed(const char *listen, const char *host)
{
        int64_t end = sw_mono_ms() + 120000;

        for (;;) {
                long st = th_get(listen, host, "/", NULL);
                if (st != 0 && st != 404)
                        return;
                if (sw_mono_ms() > end) {
                        fprintf(stderr, "bench: %s was not routed in 120 s\n", host);
                        exit(1);
                }
                sw_sleep_ms(20);
        }
}

/* Wait until `host` is no longer routed (its removal reloaded nginx). */
static void wait_unrouted(const char *listen, const char *host)
{
        int64_t end = sw_mono_ms() + 120000;

        while (th_get(listen, host, "/", NULL) != 404) {
                if (sw_mono_ms() > end) {
                        fprintf(stderr, "bench: %s was still routed after 120 s\n", host);
                        exit(1);
                }
                sw_sleep_ms(20);
        }
}

int main(void)
{
        struct orch_api_options ao = ORCH_API_OPTIONS_INIT;
        struct ingress_nginx_options no = INGRESS_NGINX_OPTIONS_INIT;
        struct ingress_ctrl_options co = {0};
        struct sw_err err = SW_ERR_INIT;
        struct orch_api *api = NULL;
        struct orch_kube *kube = NULL;
        struct ingress_nginx *nginx = NULL;
        struct ingress_table *empty = NULL;
        struct ingress_ctrl *ctrl = NULL;
        struct th_httpd *app;
        static const int sizes[] = {1, 100, 1000};
        char listen[64], *dir = NULL, *db, *kc, *kc_text, *prefix, *conf_path, *conf = NULL;
        size_t len = 0;
        int fillers = 0, round_no = 0;

        sw_libs_init();
        signal(SIGPIPE, SIG_IGN);
        {
                double load[1] = {0};
                if (getloadavg(load, 1) == 1)
                        printf("edge_bench_load_average: %.2f\n", load[0]);
        }
        die_on(sw_mkdtemp(&dir, "/tmp", "slipway-bench-edge-", &err), &err);
        db = sw_xasprintf("%s/api.db", dir);
        ao.listen = "127.0.0.1:0";
        ao.db_path = db;
        ao.token = TOKEN;
        die_on(orch_api_start(&api, &ao, &err), &err);
        kc = sw_xasprintf("%s/kubeconfig", dir);
        kc_text = sw_xasprintf("apiVersion: v1\nkind: Config\nclusters:\n- name: b\n  cluster:\n"
                               "    server: http://127.0.0.1:%u\nusers:\n- name: b\n  user:\n"
                               "    token: %s\ncontexts:\n- name: b\n  context:\n    cluster: b\n"
                               "    user: b\ncurrent-context: b\n",
                               orch_api_port(api), TOKEN);
        die_on(sw_write_file_atomic(kc, kc_text, strlen(kc_text), 0600, &err), &err);
        die_on(orch_kube_from_kubeconfig(&kube, kc, NULL, &err), &err);

        /* nginx with no routes, then the controller in charge of it */
        prefix = sw_xasprintf("%s/nginx", dir);
        conf_path = sw_xasprintf("%s/nginx.conf", prefix);
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", t_free_port());
        no.prefix = prefix;
        no.output = sw_xasprintf("%s/nginx.log", dir);
        co.render.listen = listen;
        co.render.access_log = "/dev/null";
        ingress_table_new(&empty);
        die_on(ingress_render(&conf, &len, empty, &co.render, &err), &err);
        die_on(ingress_nginx_new(&nginx, &no, &err), &err);
        die_on(ingress_nginx_start(nginx, conf, len, listen, &err), &err);
        free(conf);
        co.kubeconfig = kc;
        co.nginx = nginx;
        co.edge_ip = "127.0.0.1";
        die_on(ingress_ctrl_start(&ctrl, &co, &err), &err);

        /* the measured app: the same port as clusterIP 127.0.0.1:PORT and as its pod's */
        app = th_httpd_start("app");
        apply(kube, service("app", "app", "127.0.0.1", th_httpd_port(app)));
        ready_pod(kube, "app-1", "app", th_httpd_port(app));
        /* the others: an Ingress each, one Service and one ready pod behind them all */
        apply(kube, service("filler", "filler", NULL, 80));
        ready_pod(kube, "filler-1", "filler", t_free_port());

        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
                int hosts = sizes[s];
                int64_t total[ROUNDS], test_cpu[ROUNDS], reload_cpu[ROUNDS], self_cpu[ROUNDS];
                char last_filler[64] = "";
                struct stat stt;

                int64_t setup = sw_mono_ms();

                for (; fillers < hosts - 1; fillers++) {
                        char name[32], host[64];
                        snprintf(name, sizeof(name), "filler-%d", fillers);
                        snprintf(host, sizeof(host), "filler-%d.bench.test", fillers);
                        apply(kube, ingress(name, host, "filler", 80));
                        snprintf(last_filler, sizeof(last_filler), "%s", host);
                }
                if (last_filler[0])
                        wait_routed(listen, last_filler);
                printf("route_setup_%d_hosts: %.1f s\n", hosts,
                       (double)(sw_mono_ms() - setup) / 1000.0);
                fflush(stdout);
                for (int r = 0; r < ROUNDS; r++, round_no++) {
                        char name[32], host[128];
                        struct ingress_probe p = {0};
                        int64_t t0, c0, s0, m0;

                        /* the table keeps `hosts` hosts: the previous round's goes first */
                        if (round_no > 0) {
                                snprintf(name, sizeof(name), "new-%d", round_no - 1);
                                snprintf(host, sizeof(host),
                                         "/apis/networking.k8s.io/v1/namespaces/default/"
                                         "ingresses/%s",
                                         name);
                                die_on(orch_kube_delete(kube, host, NULL, &err), &err);
                                snprintf(host, sizeof(host), "new-%d.bench.test", round_no - 1);
                                wait_unrouted(listen, host);
                        }
                        sw_sleep_ms(1000); /* that reload done, its old workers gone */
                        snprintf(name, sizeof(name), "new-%d", round_no);
                        snprintf(host, sizeof(host), "new-%d.bench.test", round_no);
                        c0 = rusage_us(RUSAGE_CHILDREN);
                        s0 = rusage_us(RUSAGE_SELF);
                        m0 = proc_cpu_us(ingress_nginx_pid(nginx));
                        t0 = sw_mono_us();
                        apply(kube, ingress(name, host, "app", th_httpd_port(app)));
                        p.addr = listen;
                        p.host = host;
                        p.expect_status = 200;
                        p.interval_ms = 5;
                        p.timeout_ms = 30000;
                        die_on(ingress_wait_host(NULL, &p, &err), &err);
                        total[r] = sw_mono_us() - t0;
                        test_cpu[r] = rusage_us(RUSAGE_CHILDREN) - c0;
                        self_cpu[r] = rusage_us(RUSAGE_SELF) - s0;
                        reload_cpu[r] = proc_cpu_us(ingress_nginx_pid(nginx)) - m0;
                }
                qsort(total, ROUNDS, sizeof(int64_t), cmp_i64);
                qsort(test_cpu, ROUNDS, sizeof(int64_t), cmp_i64);
                qsort(self_cpu, ROUNDS, sizeof(int64_t), cmp_i64);
                qsort(reload_cpu, ROUNDS, sizeof(int64_t), cmp_i64);
                printf("route_latency_%d_hosts_median: %.1f ms\n", hosts,
                       (double)total[ROUNDS / 2] / 1000.0);
                printf("route_latency_%d_hosts_max: %.1f ms\n", hosts,
                       (double)total[ROUNDS - 1] / 1000.0);
                printf("route_nginx_test_cpu_%d_hosts_median: %.1f ms\n", hosts,
                       (double)test_cpu[ROUNDS / 2] / 1000.0);
                printf("route_nginx_reload_cpu_%d_hosts_median: %.1f ms\n", hosts,
                       (double)reload_cpu[ROUNDS / 2] / 1000.0);
                printf("route_controller_api_cpu_%d_hosts_median: %.1f ms\n", hosts,
                       (double)self_cpu[ROUNDS / 2] / 1000.0);
                if (stat(conf_path, &stt) == 0)
                        printf("route_config_%d_hosts_size: %lld bytes\n", hosts,
                               (long long)stt.st_size);
                fflush(stdout);
        }
        printf("route_reloads: %lld\n", (long long)ingress_nginx_reloads(nginx));

        ingress_ctrl_stop(ctrl);
        ingress_nginx_free(nginx);
        ingress_table_free(empty);
        orch_kube_free(kube);
        orch_api_stop(api);
        th_httpd_stop(app);
        sw_rm_rf(dir, &err);
        free((char *)no.output);
        free(dir);
        free(db);
        free(kc);
        free(kc_text);
        free(prefix);
        free(conf_path);
        sw_libs_shutdown();
        return 0;
}
