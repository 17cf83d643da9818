/*
 * test_proxy.c - pod networking on real parts: the real API server and
 * controller manager (its endpoints controller), a real docker-registry
 * with the busybox image, real runc, and `slipway node` (its service
 * proxy). Two replicas of an httpd listening on the same port serve
 * through the Service's ClusterIP with connections spread over both; a
 * pod reaches the Service by name (/etc/hosts) and sees its
 * <SVC>_SERVICE_HOST variables; a pod whose readiness probe fails leaves
 * the Service's balancing.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/json.h"
#include "common/mem.h"
#include "tests/harness/agent_env.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

static pid_t ctrl_pid = -1;
static char cluster_ip[32];

/* A pod of the "echo" Service: httpd on 8080 answering its own name. */
static bool create_echo(const char *name, const char *extra)
{
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\","
                "\"labels\":{\"app\":\"echo\"}},\"spec\":{\"terminationGracePeriodSeconds\":1,"
                "\"containers\":[{\"name\":\"c\",\"image\":\"%s\",\"command\":[\"sh\",\"-c\"],"
                "\"args\":[\"mkdir -p /www && echo \\\"served by $HOSTNAME\\\" > /www/index.html "
                "&& touch /www/ready; %s exec httpd -f -p 8080 -h /www\"],"
                "\"ports\":[{\"containerPort\":8080,\"name\":\"http\"}],"
                "\"readinessProbe\":{\"httpGet\":{\"path\":\"/ready\",\"port\":8080},"
                "\"periodSeconds\":1,\"failureThreshold\":1}}]}}",
                name, t_agent.image, extra);
        bool ok = t_agent_create_pod(spec);

        free(spec);
        return ok;
}

/* The ready addresses of the Endpoints of "echo". */
static size_t ready_endpoints(void)
{
        json_t *ep = t_agent_get("/api/v1/namespaces/default/endpoints/echo");
        const json_t *sub;
        size_t i, n = 0;

        json_array_foreach(json_object_get(ep, "subsets"), i, sub) n +=
                json_array_size(json_object_get(sub, "addresses"));
        json_decref(ep);
        return n;
}

static bool wait_endpoints(size_t want, int64_t timeout_ms)
{
        int64_t until = sw_mono_ms() + timeout_ms;

        while (ready_endpoints() != want && sw_mono_ms() < until)
                sw_sleep_ms(200);
        return ready_endpoints() == want;
}

/* GETs through the ClusterIP, counting who answered. */
static void spread(int n, int *a, int *b, int *c, int *failed)
{
        *a = *b = *c = *failed = 0;
        for (int i = 0; i < n; i++) {
                char *page = t_agent_http_get_at(cluster_ip, 80, "/");
                if (page && strstr(page, "served by echo-a"))
                        (*a)++;
                else if (page && strstr(page, "served by echo-b"))
                        (*b)++;
                else if (page && strstr(page, "served by echo-c"))
                        (*c)++;
                else
                        (*failed)++;
                free(page);
        }
}

static void test_two_replicas_through_cluster_ip(void)
{
        json_t *svc, *pa, *pb;
        int a, b, c, failed;
        char *page;

        CHECK(t_agent_create_obj("/api/v1/namespaces/default/services",
                                 "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":"
                                 "{\"name\":\"echo\"},\"spec\":{\"selector\":{\"app\":\"echo\"},"
                                 "\"ports\":[{\"name\":\"web\",\"port\":80,"
                                 "\"targetPort\":\"http\"}]}}"));
        svc = t_agent_get("/api/v1/namespaces/default/services/echo");
        snprintf(cluster_ip, sizeof(cluster_ip), "%s",
                 sw_json_str(json_object_get(svc, "spec"), "clusterIP", ""));
        json_decref(svc);
        CHECK(!strncmp(cluster_ip, "127.", 4)); /* the harness's SLIPWAY_SERVICE_CIDR */
        CHECK(create_echo("echo-a", ""));
        CHECK(create_echo("echo-b", ""));
        pa = t_agent_wait_pod("echo-a", t_agent_running_ready, 30000);
        pb = t_agent_wait_pod("echo-b", t_agent_running_ready, 30000);
        CHECK(pa && pb);
        if (pa && pb) {
                const char *ipa = sw_json_str(json_object_get(pa, "status"), "podIP", "");
                const char *ipb = sw_json_str(json_object_get(pb, "status"), "podIP", "");
                CHECK(!strncmp(ipa, "127.", 4) && strcmp(ipa, "127.0.0.1") != 0);
                CHECK(strcmp(ipa, ipb) != 0);
                /* podIP:containerPort reaches the pod, as in Kubernetes. */
                page = t_agent_http_get_at(ipa, 8080, "/");
                CHECK(page && strstr(page, "served by echo-a"));
                free(page);
        }
        json_decref(pa);
        json_decref(pb);
        CHECK(wait_endpoints(2, 20000));
        sw_sleep_ms(500); /* the proxy follows the Endpoints watch */
        spread(20, &a, &b, &c, &failed);
        CHECK_INT(failed, 0);
        CHECK(a >= 5 && b >= 5);
        if (a < 5 || b < 5)
                fprintf(stderr, "spread: a=%d b=%d failed=%d\n", a, b, failed);
}

static void test_pod_reaches_service_by_name(void)
{
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"client\"},"
                "\"spec\":{\"restartPolicy\":\"Never\",\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"command\":[\"sh\",\"-c\",\"echo "
                "env=$ECHO_SERVICE_HOST:$ECHO_SERVICE_PORT:$ECHO_SERVICE_PORT_WEB; "
                "for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://echo.default:80/ && "
                "break; sleep 1; done; wget -q -O - http://echo/; "
                "wget -q -O - http://echo.default.svc.cluster.local/; sleep 2\"]}]}}",
                t_agent.image);
        char *want = sw_xasprintf("env=%s:80:80", cluster_ip);
        char *log;

        CHECK(t_agent_create_pod(spec));
        free(spec);
        CHECK(t_agent_log_shows("client", want, 30000));
        CHECK(t_agent_log_shows("client", "served by echo-", 30000));
        json_decref(t_agent_wait_pod("client", t_agent_ended, 30000));
        log = t_agent_logs("client", "");
        /* Three answers: svc.ns, svc and the full name. */
        {
                int n = 0;
                for (const char *s = log; s && (s = strstr(s, "served by echo-")); s++)
                        n++;
                CHECK(n >= 3);
                if (n < 3)
                        fprintf(stderr, "client log: %s\n", log ? log : "(none)");
        }
        free(log);
        free(want);
        t_agent_delete_pod("client");
        CHECK(t_agent_wait_gone("client", 20000));
}

static void test_unready_pod_leaves_balancing(void)
{
        int a, b, c, failed;

        /* Ready for a few seconds, then its readiness file goes away for good. */
        CHECK(create_echo("echo-c", "(sleep 12; rm /www/ready) &"));
        CHECK(wait_endpoints(3, 20000));
        CHECK(wait_endpoints(2, 30000));
        sw_sleep_ms(500);
        spread(12, &a, &b, &c, &failed);
        CHECK_INT(c, 0);
        CHECK_INT(failed, 0);
        CHECK(a > 0 && b > 0);
        t_agent_delete_pod("echo-a");
        t_agent_delete_pod("echo-b");
        t_agent_delete_pod("echo-c");
        CHECK(t_agent_wait_gone("echo-a", 20000));
        CHECK(t_agent_wait_gone("echo-b", 20000));
        CHECK(t_agent_wait_gone("echo-c", 20000));
}

int main(void)
{
        if (t_agent_env_up("proxy")) {
                char *argv[] = {(char *)t_slipway(),
                                "controller-manager",
                                "--kubeconfig",
                                t_agent.orch.kubeconfig,
                                "--node-grace-ms",
                                "600000",
                                NULL};
                char *log = sw_xasprintf("%s/ctrl.log", t_tmpdir());
                const char *env[] = {NULL};
                ctrl_pid = t_spawn_extra(argv, env, log);
                free(log);
                T_RUN(t_agent_test_node_registers);
                T_RUN(test_two_replicas_through_cluster_ip);
                T_RUN(test_pod_reaches_service_by_name);
                T_RUN(test_unready_pod_leaves_balancing);
        } else {
                CHECK(!"setup failed");
        }
        T_RUN(t_agent_stop_checked);
        t_stop(ctrl_pid);
        t_agent_env_down();
        return t_done();
}
