/*
 * agent.c - benchmark of the node agent on real parts (the API server, a
 * docker-registry with the busybox image, `slipway node` with runc; the
 * environment of tests/harness/agent_env.h). Needs root.
 *
 *   pod_start_p50/p99   creation of a pod bound to the node (cached image,
 *                       no probes) to Running and Ready, one pod at a time,
 *                       over N pods (they stay running meanwhile);
 *   pods_all_ready      N pods created at once to all of them Ready.
 *
 * Usage: bench_agent [pods]   (default 100)
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/libs.h"
#include "common/mem.h"
#include "tests/harness/agent_env.h"
#include "tests/harness/t.h"

static char *pod_json(const char *name)
{
        return sw_xasprintf("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\","
                            "\"labels\":{\"bench\":\"agent\"}},\"spec\":{"
                            "\"terminationGracePeriodSeconds\":0,\"containers\":[{\"name\":\"c\","
                            "\"image\":\"%s\",\"command\":[\"sleep\",\"3600\"]}]}}",
                            name, t_agent.image);
}

static int cmp_i64(const void *x, const void *y)
{
        int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
        return a < b ? -1 : a > b;
}

/* Poll until the pod is Running and Ready; its time in ms, or -1. */
static int64_t wait_ready(const char *name, int64_t t0, int64_t timeout_ms)
{
        while (sw_mono_ms() - t0 < timeout_ms) {
                json_t *pod = t_agent_get_pod(name);
                bool ok = pod && t_agent_running_ready(pod);
                json_decref(pod);
                if (ok)
                        return sw_mono_ms() - t0;
                sw_sleep_ms(10);
        }
        return -1;
}

static int count_ready(void)
{
        json_t *list = t_agent_get("/api/v1/namespaces/default/pods?labelSelector=bench%3Dagent");
        const json_t *p;
        size_t i;
        int n = 0;

        json_array_foreach(json_object_get(list, "items"), i, p) n += t_agent_running_ready(p);
        json_decref(list);
        return n;
}

static void delete_all(int n, const char *prefix)
{
        for (int i = 0; i < n; i++) {
                char name[64];
                snprintf(name, sizeof(name), "%s-%d", prefix, i);
                t_agent_delete_pod(name);
        }
        for (int i = 0; i < n; i++) {
                char name[64];
                snprintf(name, sizeof(name), "%s-%d", prefix, i);
                t_agent_wait_gone(name, 60000);
        }
}

int main(int argc, char **argv)
{
        int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 100;
        int64_t *lat = NULL, t0, all = -1;
        int got = 0, rc = 1;

        if (geteuid() != 0) {
                fprintf(stderr, "bench_agent: the node agent needs root; skipped\n");
                return 0;
        }
        if (n < 1 || n > 1000) {
                fprintf(stderr, "usage: bench_agent [pods 1..1000]\n");
                return 2;
        }
        /* `make bench` runs it as it is: the agent is the slipway built beside it. */
        setenv("SW_TEST_SLIPWAY", SW_TEST_BINARY_DIR "/slipway", 0);
        sw_libs_init();
        if (!t_agent_env_up("bench-agent"))
                goto out;
        t_agent.agent_pid = t_agent_start_agent();
        t0 = sw_mono_ms();
        while (!t_agent_node_ready() && sw_mono_ms() - t0 < 20000)
                sw_sleep_ms(100);
        {
                /* Warm up: the image pulled and unpacked once. */
                char *spec = pod_json("warm");
                t_agent_create_pod(spec);
                free(spec);
                if (wait_ready("warm", sw_mono_ms(), 60000) < 0) {
                        fprintf(stderr, "bench_agent: the warm-up pod did not start\n");
                        goto out;
                }
                t_agent_delete_pod("warm");
                t_agent_wait_gone("warm", 30000);
        }
        lat = sw_xcalloc((size_t)n, sizeof(*lat));
        for (int i = 0; i < n; i++) {
                char name[64], *spec;
                snprintf(name, sizeof(name), "lat-%d", i);
                spec = pod_json(name);
                t0 = sw_mono_ms();
                if (t_agent_create_pod(spec)) {
                        int64_t ms = wait_ready(name, t0, 30000);
                        if (ms >= 0)
                                lat[got++] = ms;
                }
                free(spec);
        }
        delete_all(n, "lat");
        if (got) {
                qsort(lat, (size_t)got, sizeof(*lat), cmp_i64);
                printf("pod_start_p50: %lld ms\n", (long long)lat[got / 2]);
                printf("pod_start_p99: %lld ms\n", (long long)lat[(got * 99) / 100 - (got >= 100)]);
                printf("pod_start_samples: %d pods\n", got);
        }

        t0 = sw_mono_ms();
        for (int i = 0; i < n; i++) {
                char name[64], *spec;
                snprintf(name, sizeof(name), "all-%d", i);
                spec = pod_json(name);
                t_agent_create_pod(spec);
                free(spec);
        }
        while (sw_mono_ms() - t0 < 120000) {
                if (count_ready() >= n) {
                        all = sw_mono_ms() - t0;
                        break;
                }
                sw_sleep_ms(100);
        }
        if (all >= 0)
                printf("pods_all_ready: %lld ms (%d pods)\n", (long long)all, n);
        else
                printf("pods_all_ready: timeout (%d of %d ready after 120 s)\n", count_ready(), n);
        delete_all(n, "all");
        rc = got == n && all >= 0 ? 0 : 1;
out:
        free(lat);
        if (t_agent.agent_pid > 0)
                t_agent_stop_checked();
        t_agent_env_down();
        if (rc == 0) {
                /* Like t_done(): a run that went well leaves nothing in /tmp. */
                struct sw_err ignored = SW_ERR_INIT;
                sw_rm_rf(t_tmpdir(), &ignored);
        }
        return rc;
}
