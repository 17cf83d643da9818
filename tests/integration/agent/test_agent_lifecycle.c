/*
 * test_agent_lifecycle.c - the node agent on real parts (see test_agent.c):
 * the memory limit and OOMKilled, liveness exec probes, imagePullSecrets
 * against a registry with Basic auth, hostNetwork pods, postStart and
 * preStop hooks.
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

static void test_memory_limit_oom_killed(void)
{
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"oom\"},"
                "\"spec\":{\"restartPolicy\":\"Never\",\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"command\":[\"dd\",\"if=/dev/zero\",\"of=/dev/null\","
                "\"bs=256M\",\"count=1\"],\"resources\":{\"limits\":{\"memory\":\"32Mi\"}}}]}}",
                t_agent.image);
        json_t *pod;
        const json_t *term;

        CHECK(t_agent_create_pod(spec));
        free(spec);
        pod = t_agent_wait_pod("oom", t_agent_ended, 30000);
        CHECK(pod != NULL);
        term = json_object_get(json_object_get(t_agent_ctr_status(pod), "state"), "terminated");
        CHECK_STR(t_agent_phase(pod), "Failed");
        CHECK_INT(sw_json_int(term, "exitCode", -1), 137);
        CHECK_STR(sw_json_str(term, "reason", ""), "OOMKilled");
        json_decref(pod);
        t_agent_delete_pod("oom");
        CHECK(t_agent_wait_gone("oom", 20000));
}

static bool restarted_by_liveness(const json_t *pod)
{
        const json_t *cs = t_agent_ctr_status(pod);
        return sw_json_int(cs, "restartCount", 0) >= 1 &&
               sw_json_int(json_object_get(json_object_get(cs, "lastState"), "terminated"),
                           "exitCode", 0) == 137;
}

static void test_liveness_exec_probe_restarts(void)
{
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"live\"},"
                "\"spec\":{\"terminationGracePeriodSeconds\":1,\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"command\":[\"sh\",\"-c\",\"echo x > /tmp/alive; sleep 2; "
                "rm /tmp/alive; sleep 3600\"],\"livenessProbe\":{\"exec\":{\"command\":[\"cat\","
                "\"/tmp/alive\"]},\"periodSeconds\":1,\"failureThreshold\":2}}]}}",
                t_agent.image);
        json_t *pod;

        CHECK(t_agent_create_pod(spec));
        free(spec);
        pod = t_agent_wait_pod("live", restarted_by_liveness, 30000);
        CHECK(pod != NULL);
        json_decref(pod);
        t_agent_delete_pod("live");
        CHECK(t_agent_wait_gone("live", 20000));
}

static void test_image_pull_secret(void)
{
        struct t_registry *priv = t_registry_start(T_REG_BASIC);
        struct step_registry_options ro = STEP_REGISTRY_OPTIONS_INIT;
        struct step_registry *r = NULL;
        struct step_oci_layout *l = NULL;
        struct sw_err err = SW_ERR_INIT;
        char *layout = sw_xasprintf("%s/layout", t_tmpdir());
        char *auth = NULL, *cfg = NULL, *cfg64 = NULL, *secret = NULL, *spec = NULL;
        json_t *pod;

        CHECK(priv != NULL);
        if (!priv)
                goto out;
        ro.host = priv->host;
        ro.user = T_REG_USER;
        ro.password = T_REG_PASSWORD;
        ro.insecure = "127.0.0.1:*";
        CHECK_OK(step_oci_layout_open(&l, layout, false, &err), &err);
        CHECK_OK(step_registry_new(&r, &ro, &err), &err);
        CHECK_OK(step_registry_push(NULL, r, l, "latest", "test/private", "1", NULL, &err), &err);
        auth = sw_base64_encode(T_REG_USER ":" T_REG_PASSWORD,
                                strlen(T_REG_USER ":" T_REG_PASSWORD));
        cfg = sw_xasprintf("{\"auths\":{\"%s\":{\"auth\":\"%s\"}}}", priv->host, auth);
        cfg64 = sw_base64_encode(cfg, strlen(cfg));
        secret = sw_xasprintf("{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{"
                              "\"name\":\"pull\"},\"type\":\"kubernetes.io/dockerconfigjson\","
                              "\"data\":{\".dockerconfigjson\":\"%s\"}}",
                              cfg64);
        CHECK(t_agent_create_obj("/api/v1/namespaces/default/secrets", secret));
        spec = sw_xasprintf("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":"
                            "\"private\"},\"spec\":{\"restartPolicy\":\"Never\","
                            "\"imagePullSecrets\":[{\"name\":\"pull\"}],\"containers\":[{"
                            "\"name\":\"c\",\"image\":\"%s/test/private:1\",\"command\":["
                            "\"true\"]}]}}",
                            priv->host);
        CHECK(t_agent_create_pod(spec));
        pod = t_agent_wait_pod("private", t_agent_succeeded, 30000);
        CHECK(pod != NULL);
        json_decref(pod);
        t_agent_delete_pod("private");
        CHECK(t_agent_wait_gone("private", 20000));
out:
        step_registry_free(r);
        step_oci_layout_free(l);
        t_registry_stop(priv);
        free(layout);
        free(auth);
        free(cfg);
        free(cfg64);
        free(secret);
        free(spec);
}

static void test_host_network_pod(void)
{
        int port = t_free_port();
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"hostnet\"},"
                "\"spec\":{\"hostNetwork\":true,\"terminationGracePeriodSeconds\":1,"
                "\"containers\":[{\"name\":\"c\",\"image\":\"%s\",\"command\":[\"sh\",\"-c\","
                "\"mkdir -p /www && echo on-the-host > /www/index.html && exec httpd -f -p "
                "127.0.0.1:%d -h /www\"],\"ports\":[{\"containerPort\":%d}],"
                "\"readinessProbe\":{\"tcpSocket\":{\"port\":%d},\"periodSeconds\":1}}]}}",
                t_agent.image, port, port, port);
        char key[16], *page;
        json_t *pod;

        CHECK(t_agent_create_pod(spec));
        free(spec);
        pod = t_agent_wait_pod("hostnet", t_agent_running_ready, 30000);
        CHECK(pod != NULL);
        snprintf(key, sizeof(key), "%d", port);
        CHECK_INT(pod ? t_agent_host_port(pod, key) : 0, port);
        page = t_agent_http_get(port);
        CHECK(page && strstr(page, "on-the-host"));
        free(page);
        json_decref(pod);
        t_agent_delete_pod("hostnet");
        CHECK(t_agent_wait_gone("hostnet", 20000));
}

static void test_lifecycle_hooks(void)
{
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"hooks\"},"
                "\"spec\":{\"terminationGracePeriodSeconds\":2,\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"command\":[\"sh\",\"-c\",\"echo main; while true; do sleep "
                "1; done\"],\"lifecycle\":{\"postStart\":{\"exec\":{\"command\":[\"sh\",\"-c\","
                "\"echo poststart > /proc/1/fd/1\"]}},\"preStop\":{\"exec\":{\"command\":[\"sh\","
                "\"-c\",\"echo prestop > /proc/1/fd/1\"]}}}}]}}",
                t_agent.image);
        json_t *pod;

        CHECK(t_agent_create_pod(spec));
        free(spec);
        pod = t_agent_wait_pod("hooks", t_agent_running_ready, 30000);
        CHECK(pod != NULL);
        json_decref(pod);
        CHECK(t_agent_log_shows("hooks", "poststart", 10000));
        /* kubectl logs -f follows until the container ends. */
        {
                const char *args[] = {"logs", "-f", "hooks", NULL};
                char *path = sw_xasprintf("%s/follow.out", t_tmpdir());
                pid_t k = t_kubectl_bg(&t_agent.orch, path, args);
                char *text = NULL;
                struct sw_err err = SW_ERR_INIT;

                sw_sleep_ms(500);
                t_agent_delete_pod("hooks");
                CHECK_INT(t_wait_pid(k, 20000), 0);
                CHECK_OK(sw_read_file(&text, NULL, path, 1 << 20, &err), &err);
                CHECK(text && strstr(text, "main") && strstr(text, "prestop"));
                if (text && !strstr(text, "prestop"))
                        fprintf(stderr, "followed: %s\n", text);
                free(text);
                free(path);
        }
        CHECK(t_agent_wait_gone("hooks", 20000));
}

int main(void)
{
        if (geteuid() != 0) {
                printf("the node agent needs root (runc, overlayfs, network namespaces); skipped\n");
                return 0;
        }
        sw_libs_init();
        if (t_agent_env_up("agentlc")) {
                T_RUN(t_agent_test_node_registers);
                T_RUN(test_memory_limit_oom_killed);
                T_RUN(test_liveness_exec_probe_restarts);
                T_RUN(test_image_pull_secret);
                T_RUN(test_host_network_pod);
                T_RUN(test_lifecycle_hooks);
        } else {
                CHECK(!"setup failed");
        }
        T_RUN(t_agent_stop_checked);
        t_agent_env_down();
        return t_done();
}
