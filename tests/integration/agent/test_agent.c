/*
 * test_agent.c - the node agent on real parts: the real API server
 * (`slipway kube-apiserver`), a real docker-registry holding a busybox
 * image made from Debian's busybox-static, real runc and overlayfs, and
 * `slipway node` as a child process (tests/harness/agent_env.h). Pods are
 * bound to the node directly (spec.nodeName), so no scheduler is involved.
 * This file: registration, serving through a published port, env and
 * ConfigMap/Secret injection with an init container, crash loops, pull
 * failures, readiness, adoption after an agent restart, graceful deletion.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/base64.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/libs.h"
#include "common/mem.h"
#include "orchestrator/client/kube.h"
#include "steps/oci.h"
#include "steps/registry.h"
#include "tests/harness/agent_env.h"
#include "tests/harness/proc.h"
#include "tests/harness/registry_server.h"
#include "tests/harness/t.h"

static void test_http_pod_runs_and_serves(void)
{
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web\"},"
                "\"spec\":{\"terminationGracePeriodSeconds\":2,\"containers\":[{\"name\":\"web\","
                "\"image\":\"%s\",\"command\":[\"sh\",\"-c\"],\"args\":[\"mkdir -p /www && echo "
                "\\\"$GREETING from $POD_NAME in $POD_NS, $IMAGE_VAR, uid $(id -u), cwd "
                "$(pwd)\\\" > /www/index.html && exec httpd -f -p 8080 -h /www\"],"
                "\"workingDir\":\"/bin\",\"env\":[{\"name\":\"GREETING\",\"value\":\"hello\"},"
                "{\"name\":\"POD_NAME\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":"
                "\"metadata.name\"}}},{\"name\":\"POD_NS\",\"valueFrom\":{\"fieldRef\":{"
                "\"fieldPath\":\"metadata.namespace\"}}}],"
                "\"ports\":[{\"containerPort\":8080}],\"readinessProbe\":{\"httpGet\":{\"path\":"
                "\"/\",\"port\":8080},\"periodSeconds\":1},"
                "\"resources\":{\"limits\":{\"memory\":\"64Mi\",\"cpu\":\"500m\"}}}]}}",
                t_agent.image);
        json_t *pod;
        char *page;
        int port;

        CHECK(t_agent_create_pod(spec));
        free(spec);
        pod = t_agent_wait_pod("web", t_agent_running_ready, 30000);
        CHECK(pod != NULL);
        if (!pod)
                return;
        /* A pod IP from the node's /24 of SLIPWAY_POD_CIDR (the harness's, in 127/8). */
        CHECK(!strncmp(sw_json_str(json_object_get(pod, "status"), "podIP", ""), "127.", 4));
        CHECK(strcmp(sw_json_str(json_object_get(pod, "status"), "podIP", ""), "127.0.0.1") != 0);
        CHECK_INT(sw_json_int(t_agent_ctr_status(pod), "restartCount", -1), 0);
        port = t_agent_host_port(pod, "8080");
        CHECK(port > 0);
        page = t_agent_http_get(port);
        CHECK(page && strstr(page, "200 OK"));
        CHECK(page && strstr(page, "hello from web in default, from-image, uid 0, cwd /bin"));
        if (page && !strstr(page, "hello from web"))
                fprintf(stderr, "page: %s\n", page);
        free(page);
        json_decref(pod);
}

static void test_env_config_and_secret(void)
{
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"envpod\"},"
                "\"spec\":{\"restartPolicy\":\"Never\",\"initContainers\":[{\"name\":\"i\","
                "\"image\":\"%s\",\"command\":[\"sh\",\"-c\",\"echo from-init > /work/f\"],"
                "\"volumeMounts\":[{\"name\":\"w\",\"mountPath\":\"/work\"}]}],"
                "\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"command\":[\"sh\",\"-c\",\"echo \\\"CM=$CFG_a "
                "SEC=$SEC F=$(cat /etc/cfg/a) G=$(cat /etc/sec/key) X=$1 I=$(cat /work/f)\\\"\","
                "\"sh\","
                "\"$(GREETING)-$$(x)\"],\"env\":[{\"name\":\"GREETING\",\"value\":\"hi\"},"
                "{\"name\":\"SEC\",\"valueFrom\":{\"secretKeyRef\":{\"name\":\"sec\","
                "\"key\":\"x\"}}}],\"envFrom\":[{\"prefix\":\"CFG_\",\"configMapRef\":{"
                "\"name\":\"cfg\"}}],\"volumeMounts\":[{\"name\":\"c\",\"mountPath\":"
                "\"/etc/cfg\"},{\"name\":\"s\",\"mountPath\":\"/etc/sec\"},{\"name\":\"w\","
                "\"mountPath\":\"/work\"}]}],\"volumes\":[{\"name\":\"w\",\"emptyDir\":{}},{"
                "\"name\":\"c\",\"configMap\":{\"name\":\"cfg\"}},{\"name\":\"s\","
                "\"secret\":{\"secretName\":\"sec\",\"items\":[{\"key\":\"x\",\"path\":"
                "\"key\"}]}}]}}",
                t_agent.image, t_agent.image);
        json_t *pod;
        char *out = NULL;

        CHECK(t_agent_create_obj(
                "/api/v1/namespaces/default/configmaps",
                "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
                "\"cfg\"},\"data\":{\"a\":\"from-configmap\"}}"));
        CHECK(t_agent_create_obj(
                "/api/v1/namespaces/default/secrets",
                "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":"
                "\"sec\"},\"data\":{\"x\":\"czNjcjN0\"}}"));
        CHECK(t_agent_create_pod(spec));
        free(spec);
        pod = t_agent_wait_pod("envpod", t_agent_succeeded, 30000);
        CHECK(pod != NULL);
        CHECK_INT(sw_json_int(json_object_get(json_object_get(t_agent_ctr_status(pod), "state"),
                                              "terminated"),
                              "exitCode", -1),
                  0);
        {
                /* kubectl logs: the API server's pods/log proxied to the agent. */
                const char *args[] = {"logs", "envpod", "-c", "c", NULL};
                const char *tail[] = {"logs", "envpod", "--tail=1", NULL};
                char *kout = NULL;
                CHECK_INT(t_kubectl(&t_agent.orch, &kout, NULL, args), 0);
                CHECK(kout && strstr(kout, "CM=from-configmap SEC=s3cr3t"));
                if (kout && !strstr(kout, "CM=from"))
                        fprintf(stderr, "kubectl logs: %s\n", kout);
                free(kout);
                kout = NULL;
                CHECK_INT(t_kubectl(&t_agent.orch, &kout, NULL, tail), 0);
                CHECK(kout && strstr(kout, "I=from-init"));
                free(kout);
        }
        out = t_agent_logs("envpod", "");
        CHECK(out && strstr(out, "CM=from-configmap SEC=s3cr3t F=from-configmap G=s3cr3t "
                                 "X=hi-$(x) I=from-init"));
        CHECK_STR(sw_json_str(json_object_get(
                                      json_object_get(
                                              json_array_get(json_object_get(
                                                                     json_object_get(pod, "status"),
                                                                     "initContainerStatuses"),
                                                             0),
                                              "state"),
                                      "terminated"),
                              "reason", ""),
                  "Completed");
        if (out && !strstr(out, "CM=from"))
                fprintf(stderr, "log: %s\n", out);
        free(out);
        json_decref(pod);
        t_agent_delete_pod("envpod");
        CHECK(t_agent_wait_gone("envpod", 20000));
}

static bool crash_looping(const json_t *pod)
{
        const json_t *cs = t_agent_ctr_status(pod);
        return sw_json_int(cs, "restartCount", 0) >= 2 &&
               sw_json_int(json_object_get(json_object_get(cs, "lastState"), "terminated"),
                           "exitCode", 0) == 3;
}

static bool in_backoff(const json_t *pod)
{
        return !strcmp(t_agent_waiting_reason(pod), "CrashLoopBackOff");
}

static void test_failing_container_crash_loops(void)
{
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"crash\"},"
                "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"%s\",\"command\":[\"sh\","
                "\"-c\",\"echo bye; exit 3\"]}]}}",
                t_agent.image);
        json_t *pod;

        CHECK(t_agent_create_pod(spec));
        free(spec);
        pod = t_agent_wait_pod("crash", in_backoff, 30000);
        CHECK(pod != NULL);
        json_decref(pod);
        pod = t_agent_wait_pod("crash", crash_looping, 30000);
        CHECK(pod != NULL);
        CHECK_STR(sw_json_str(json_object_get(json_object_get(t_agent_ctr_status(pod), "lastState"),
                                              "terminated"),
                              "reason", ""),
                  "Error");
        json_decref(pod);
        {
                char *cur = NULL, *prev = t_agent_logs("crash", "?previous=true");
                /* The current instance may have just started: give it a moment to print. */
                for (int i = 0; i < 30 && !(cur && strstr(cur, "bye")); i++) {
                        free(cur);
                        sw_sleep_ms(100);
                        cur = t_agent_logs("crash", "");
                }
                char *tail = t_agent_logs("crash", "?tailLines=0");
                CHECK(cur && strstr(cur, "200 OK") && strstr(cur, "\r\n\r\nbye\n"));
                CHECK(prev && strstr(prev, "200 OK") && strstr(prev, "\r\n\r\nbye\n"));
                CHECK(tail && strstr(tail, "200 OK") && !strstr(tail, "bye"));
                free(cur);
                free(prev);
                free(tail);
        }
        t_agent_delete_pod("crash");
        CHECK(t_agent_wait_gone("crash", 20000));
}

static bool pull_backoff(const json_t *pod)
{
        return !strcmp(t_agent_waiting_reason(pod), "ImagePullBackOff");
}

static void test_missing_image_pull_backoff(void)
{
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"noimg\"},"
                "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"%s\"}]}}",
                t_agent.missing_image);
        json_t *pod;
        const char *msg;

        CHECK(t_agent_create_pod(spec));
        free(spec);
        pod = t_agent_wait_pod("noimg", pull_backoff, 30000);
        CHECK(pod != NULL);
        msg = sw_json_str(
                json_object_get(json_object_get(t_agent_ctr_status(pod), "state"), "waiting"),
                "message", "");
        /* The registry's own words: distribution answers "manifest unknown" / NAME_UNKNOWN. */
        CHECK(strstr(msg, "unknown") != NULL);
        if (!strstr(msg, "unknown"))
                fprintf(stderr, "message: %s\n", msg);
        CHECK_STR(t_agent_phase(pod), "Pending");
        json_decref(pod);
        t_agent_delete_pod("noimg");
        CHECK(t_agent_wait_gone("noimg", 20000));
}

static bool running_not_ready(const json_t *pod)
{
        return !strcmp(t_agent_phase(pod), "Running") && !t_agent_pod_ready(pod) &&
               json_object_get(json_object_get(t_agent_ctr_status(pod), "state"), "running");
}

static void test_failing_readiness_probe(void)
{
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"unready\"},"
                "\"spec\":{\"terminationGracePeriodSeconds\":1,\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"readinessProbe\":{\"tcpSocket\":{\"port\":9999},"
                "\"periodSeconds\":1,\"failureThreshold\":1}}]}}",
                t_agent.image);
        json_t *pod;

        CHECK(t_agent_create_pod(spec));
        free(spec);
        pod = t_agent_wait_pod("unready", running_not_ready, 30000);
        CHECK(pod != NULL);
        json_decref(pod);
        sw_sleep_ms(1500);
        pod = t_agent_get_pod("unready");
        CHECK(pod && running_not_ready(pod));
        json_decref(pod);
        t_agent_delete_pod("unready");
        CHECK(t_agent_wait_gone("unready", 20000));
}

static void test_agent_restart_adopts(void)
{
        json_t *before = t_agent_get_pod("web"), *after;
        int pid_before = before ? t_agent_ctr_pid(before) : -1;
        char *page;

        CHECK(pid_before > 0);
        t_kill(t_agent.agent_pid);
        t_agent.agent_pid = t_agent_start_agent();
        sw_sleep_ms(2000);
        after = t_agent_wait_pod("web", t_agent_running_ready, 20000);
        CHECK(after != NULL);
        if (before && after) {
                CHECK_INT(t_agent_ctr_pid(after), pid_before);
                CHECK_INT(sw_json_int(t_agent_ctr_status(after), "restartCount", -1), 0);
                CHECK_STR(sw_json_str(json_object_get(
                                              json_object_get(t_agent_ctr_status(after), "state"),
                                              "running"),
                                      "startedAt", "a"),
                          sw_json_str(json_object_get(
                                              json_object_get(t_agent_ctr_status(before), "state"),
                                              "running"),
                                      "startedAt", "b"));
                page = t_agent_http_get(t_agent_host_port(after, "8080"));
                CHECK(page && strstr(page, "hello from web"));
                free(page);
        }
        json_decref(before);
        json_decref(after);
}

/* Is `pid` a live process (not gone, not a zombie)? */
static bool pid_alive(int pid)
{
        char path[64], *text = NULL, *paren;
        struct sw_err ignored = SW_ERR_INIT;
        bool alive = false;

        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        if (sw_read_file(&text, NULL, path, 4096, &ignored) == 0 && (paren = strrchr(text, ')')))
                alive = paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
        free(text);
        return alive;
}

/*
 * A pod deleted while its agent was down: the next agent finds its
 * directory, sees it gone from the API server, kills its container and
 * removes the directory (its container records come from pod.json).
 */
static void test_deleted_while_agent_down(void)
{
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"orphan\"},"
                "\"spec\":{\"terminationGracePeriodSeconds\":0,\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"command\":[\"sleep\",\"3600\"]}]}}",
                t_agent.image);
        json_t *pod;
        char *dir = NULL;
        int pid = -1;
        int64_t until;

        CHECK(t_agent_create_pod(spec));
        free(spec);
        pod = t_agent_wait_pod("orphan", t_agent_running_ready, 30000);
        CHECK(pod != NULL);
        if (pod) {
                pid = t_agent_ctr_pid(pod);
                dir = sw_xasprintf("%s/node/%s/pods/%s", t_agent.data_dir, T_AGENT_NODE,
                                   sw_json_str(json_object_get(pod, "metadata"), "uid", "none"));
        }
        CHECK(pid > 0 && pid_alive(pid));
        t_kill(t_agent.agent_pid);
        t_agent_delete_pod("orphan");
        CHECK(t_agent_wait_gone("orphan", 10000));
        t_agent.agent_pid = t_agent_start_agent();
        until = sw_mono_ms() + 20000;
        while (pid > 0 && (pid_alive(pid) || (dir && access(dir, F_OK) == 0)) &&
               sw_mono_ms() < until)
                sw_sleep_ms(100);
        CHECK(pid > 0 && !pid_alive(pid));
        CHECK(dir && access(dir, F_OK) != 0);
        json_decref(pod);
        free(dir);
}

static void test_delete_stops_with_sigterm(void)
{
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"term\"},"
                "\"spec\":{\"terminationGracePeriodSeconds\":60,\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"command\":[\"sh\",\"-c\",\"trap 'echo got-term; exit 0' "
                "TERM; echo started; while true; do sleep 1; done\"]}]}}",
                t_agent.image);
        json_t *pod;
        int64_t t0;

        CHECK(t_agent_create_pod(spec));
        free(spec);
        pod = t_agent_wait_pod("term", t_agent_running_ready, 30000);
        CHECK(pod != NULL);
        json_decref(pod);
        t0 = sw_mono_ms();
        t_agent_delete_pod("term");
        /* Well inside the 60 s grace: the process ended on SIGTERM, not on SIGKILL. */
        CHECK(t_agent_wait_gone("term", 20000));
        CHECK(sw_mono_ms() - t0 < 20000);
        t_agent_delete_pod("web");
        CHECK(t_agent_wait_gone("web", 20000));
}

/*
 * Node names hash to a /24 of SLIPWAY_POD_CIDR; one that another Node
 * holds is passed over. With every /24 of the /16 but one held by node-a
 * and decoy Nodes, a new node must take that one.
 */
static void test_pod_cidr_collision(void)
{
        json_t *node = t_agent_get("/api/v1/nodes/" T_AGENT_NODE);
        const char *mine = sw_json_str(json_object_get(node, "spec"), "podCIDR", "");
        char *log = sw_xasprintf("%s/node-b.log", t_tmpdir()), want[32];
        unsigned b1 = 0, b2 = 0, free3;
        int64_t until;
        pid_t pid;

        CHECK(sscanf(mine, "127.%u.%u.0/24", &b1, &b2) == 2);
        free3 = (b2 + 128) % 256;
        for (unsigned k = 0; k < 256; k++) {
                char *body;
                if (k == b2 || k == free3)
                        continue;
                body = sw_xasprintf(
                        "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{"
                        "\"name\":\"decoy-%u\"},\"spec\":{\"podCIDR\":\"127.%u.%u.0/24\"}}",
                        k, b1, k);
                CHECK(t_agent_create_obj("/api/v1/nodes", body));
                free(body);
        }
        snprintf(want, sizeof(want), "127.%u.%u.0/24", b1, free3);
        pid = t_agent_start_node("node-b", log);
        CHECK(pid > 0);
        until = sw_mono_ms() + 20000;
        for (;;) {
                json_t *b = t_agent_get("/api/v1/nodes/node-b");
                const char *got = sw_json_str(json_object_get(b, "spec"), "podCIDR", "");
                if (*got || sw_mono_ms() > until) {
                        CHECK_STR(got, want);
                        json_decref(b);
                        break;
                }
                json_decref(b);
                sw_sleep_ms(200);
        }
        t_stop(pid);
        json_decref(node);
        free(log);
}

int main(void)
{
        if (geteuid() != 0) {
                printf("the node agent needs root (runc, overlayfs, network namespaces); skipped\n");
                return 0;
        }
        sw_libs_init();
        if (t_agent_env_up("agent")) {
                T_RUN(t_agent_test_node_registers);
                T_RUN(test_http_pod_runs_and_serves);
                T_RUN(test_env_config_and_secret);
                T_RUN(test_failing_container_crash_loops);
                T_RUN(test_missing_image_pull_backoff);
                T_RUN(test_failing_readiness_probe);
                T_RUN(test_agent_restart_adopts);
                T_RUN(test_deleted_while_agent_down);
                T_RUN(test_delete_stops_with_sigterm);
                T_RUN(test_pod_cidr_collision);
        } else {
                CHECK(!"setup failed");
        }
        T_RUN(t_agent_stop_checked);
        t_agent_env_down();
        return t_done();
}
