/*
 * bench/edge.c - how long a new route takes to serve, through the real nginx.
 *
 * Route latency: from the moment the route table changes (a new host is
 * added) to the first 200 for that host through nginx - render, `nginx -t`
 * in the staging directory, atomic swap, SIGHUP, and the new workers taking
 * requests. Measured with 1, 100 and 1,000 hosts routed (each host with its
 * own upstream), ROUNDS times each; the new host points at a backend in
 * this process, the others at addresses that are never asked.
 * Figures are `name: value unit` lines (median and max over the rounds),
 * with the render and the `nginx -t` + swap + signal shares separately.
 * The CPU time nginx spends (the `nginx -t` child, and the master's reload
 * as seen in /proc at 10 ms granularity) is printed too: on a shared,
 * loaded machine the wall-clock figures grow with the load, the CPU ones
 * do not. The load average at the start is printed for the same reason.
 * Target: <= 300 ms at 1,000 hosts.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/libs.h"
#include "common/mem.h"
#include "ingress/ingress.h"
#include "tests/harness/edge.h"
#include "tests/harness/proc.h"

#define ROUNDS 7

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

static double ms(int64_t us)
{
        return (double)us / 1000.0;
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

/* CPU time of reaped children (the `nginx -t` runs), in microseconds. */
static int64_t children_cpu_us(void)
{
        struct rusage ru;

        getrusage(RUSAGE_CHILDREN, &ru);
        return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
               ru.ru_stime.tv_usec;
}

static void run(const char *dir, int hosts, const char *backend)
{
        struct ingress_nginx_options no = INGRESS_NGINX_OPTIONS_INIT;
        struct ingress_render_options ro = INGRESS_RENDER_OPTIONS_INIT;
        struct sw_err err = SW_ERR_INIT;
        struct ingress_table *t = NULL;
        struct ingress_nginx *n = NULL;
        int64_t total[ROUNDS], render_us[ROUNDS], apply_us[ROUNDS], test_cpu[ROUNDS],
                reload_cpu[ROUNDS];
        char listen[64], *prefix, *output, *conf = NULL;
        size_t len = 0;

        prefix = sw_xasprintf("%s/nginx-%d", dir, hosts);
        output = sw_xasprintf("%s/output.log", dir);
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", t_free_port());
        ro.listen = listen;
        ro.access_log = "/dev/null";
        no.prefix = prefix;
        no.output = output;

        ingress_table_new(&t);
        for (int i = 0; i < hosts - 1; i++) {
                char host[64], addr[64], src[64];
                struct ingress_route r = {host, "/", INGRESS_PATH_PREFIX, addr, false};
                snprintf(host, sizeof(host), "app-%d.bench.test", i);
                snprintf(addr, sizeof(addr), "127.77.%d.%d:8080", i / 250, i % 250 + 1);
                snprintf(src, sizeof(src), "bench/app-%d", i);
                die_on(ingress_table_set(t, src, NULL, &r, 1, NULL, 0, &err), &err);
        }
        die_on(ingress_render(&conf, &len, t, &ro, &err), &err);
        die_on(ingress_nginx_new(&n, &no, &err), &err);
        die_on(ingress_nginx_start(n, conf, len, listen, &err), &err);
        free(conf);
        conf = NULL;

        for (int round = 0; round < ROUNDS; round++) {
                char host[64];
                struct ingress_route r = {host, "/", INGRESS_PATH_PREFIX, backend, false};
                struct ingress_probe p = {0};
                int64_t t0, t1, t2, c0, m0;
                bool changed = false;

                /* One source for the new host: the table keeps `hosts` hosts each round. */
                snprintf(host, sizeof(host), "new-%d.bench.test", round);
                sw_sleep_ms(1000); /* let the previous reload's old workers go */
                c0 = children_cpu_us();
                m0 = proc_cpu_us(ingress_nginx_pid(n));
                t0 = sw_mono_us();
                die_on(ingress_table_set(t, "bench/new", NULL, &r, 1, NULL, 0, &err), &err);
                die_on(ingress_render(&conf, &len, t, &ro, &err), &err);
                t1 = sw_mono_us();
                die_on(ingress_nginx_apply(n, &changed, conf, len, &err), &err);
                t2 = sw_mono_us();
                p.addr = listen;
                p.host = host;
                p.expect_status = 200;
                p.interval_ms = 1;
                p.timeout_ms = 30000;
                die_on(ingress_wait_host(NULL, &p, &err), &err);
                total[round] = sw_mono_us() - t0;
                test_cpu[round] = children_cpu_us() - c0;
                reload_cpu[round] = proc_cpu_us(ingress_nginx_pid(n)) - m0;
                render_us[round] = t1 - t0;
                apply_us[round] = t2 - t1;
                free(conf);
                conf = NULL;
        }
        qsort(total, ROUNDS, sizeof(int64_t), cmp_i64);
        qsort(render_us, ROUNDS, sizeof(int64_t), cmp_i64);
        qsort(apply_us, ROUNDS, sizeof(int64_t), cmp_i64);
        qsort(test_cpu, ROUNDS, sizeof(int64_t), cmp_i64);
        qsort(reload_cpu, ROUNDS, sizeof(int64_t), cmp_i64);
        printf("route_latency_%d_hosts_median: %.1f ms\n", hosts, ms(total[ROUNDS / 2]));
        printf("route_latency_%d_hosts_max: %.1f ms\n", hosts, ms(total[ROUNDS - 1]));
        printf("route_render_%d_hosts_median: %.1f ms\n", hosts, ms(render_us[ROUNDS / 2]));
        printf("route_test_swap_signal_%d_hosts_median: %.1f ms\n", hosts,
               ms(apply_us[ROUNDS / 2]));
        printf("route_nginx_test_cpu_%d_hosts_median: %.1f ms\n", hosts, ms(test_cpu[ROUNDS / 2]));
        printf("route_nginx_reload_cpu_%d_hosts_median: %.1f ms\n", hosts,
               ms(reload_cpu[ROUNDS / 2]));
        printf("route_config_%d_hosts_size: %zu bytes\n", hosts, len);
        fflush(stdout);

        ingress_nginx_free(n);
        ingress_table_free(t);
        free(prefix);
        free(output);
}

int main(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct th_httpd *app;
        char *dir = NULL;
        static const int sizes[] = {1, 100, 1000};

        sw_libs_init();
        signal(SIGPIPE, SIG_IGN);
        {
                double load[1] = {0};
                if (getloadavg(load, 1) == 1)
                        printf("edge_bench_load_average: %.2f\n", load[0]);
        }
        die_on(sw_mkdtemp(&dir, "/tmp", "slipway-bench-edge-", &err), &err);
        app = th_httpd_start("app");
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
                run(dir, sizes[i], th_httpd_addr(app));
        th_httpd_stop(app);
        sw_rm_rf(dir, &err);
        free(dir);
        sw_libs_shutdown();
        return 0;
}
