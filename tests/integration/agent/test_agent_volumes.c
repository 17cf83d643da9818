/*
 * test_agent_volumes.c - the node agent on real parts (see test_agent.c):
 * hostPath volumes and their type checks, projected volumes (configMap,
 * secret, downwardAPI, a skipped serviceAccountToken), startup probes,
 * log rotation seen through kubectl logs, and image pulls that hang
 * without holding up other pods.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/libs.h"
#include "common/mem.h"
#include "tests/harness/agent_env.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

static bool waiting_config_error(const json_t *pod)
{
        return !strcmp(t_agent_waiting_reason(pod), "CreateContainerConfigError");
}

static void test_host_path_volumes(void)
{
        char *host_dir = sw_xasprintf("%s/hostdir/sub", t_tmpdir());
        char *host_file = sw_xasprintf("%s/hostfile", t_tmpdir());
        char *missing = sw_xasprintf("%s/nothing-here", t_tmpdir());
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"hp\"},"
                "\"spec\":{\"restartPolicy\":\"Never\",\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"command\":[\"sh\",\"-c\",\"echo from-pod > /h/out; "
                "echo \\\"F=$(cat /f)\\\"\"],\"volumeMounts\":[{\"name\":\"d\",\"mountPath\":"
                "\"/h\"},{\"name\":\"f\",\"mountPath\":\"/f\",\"readOnly\":true}]}],"
                "\"volumes\":[{\"name\":\"d\",\"hostPath\":{\"path\":\"%s\",\"type\":"
                "\"DirectoryOrCreate\"}},{\"name\":\"f\",\"hostPath\":{\"path\":\"%s\","
                "\"type\":\"FileOrCreate\"}}]}}",
                t_agent.image, host_dir, host_file);
        char *bad = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"hpbad\"},"
                "\"spec\":{\"restartPolicy\":\"Never\",\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"command\":[\"true\"],\"volumeMounts\":[{\"name\":\"d\","
                "\"mountPath\":\"/h\"}]}],\"volumes\":[{\"name\":\"d\",\"hostPath\":{\"path\":"
                "\"%s\",\"type\":\"Directory\"}}]}}",
                t_agent.image, missing);
        char *notdir = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"hpfile\"},"
                "\"spec\":{\"restartPolicy\":\"Never\",\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"command\":[\"true\"],\"volumeMounts\":[{\"name\":\"d\","
                "\"mountPath\":\"/h\"}]}],\"volumes\":[{\"name\":\"d\",\"hostPath\":{\"path\":"
                "\"%s\",\"type\":\"Directory\"}}]}}",
                t_agent.image, host_file);
        char *out_path = sw_xasprintf("%s/out", host_dir), *text = NULL;
        struct sw_err err = SW_ERR_INIT;
        struct stat st;
        json_t *pod;
        const char *msg;

        CHECK(t_agent_create_pod(spec));
        pod = t_agent_wait_pod("hp", t_agent_succeeded, 30000);
        CHECK(pod != NULL);
        json_decref(pod);
        /* DirectoryOrCreate made the directory (and its parent), FileOrCreate the file. */
        CHECK(stat(host_file, &st) == 0 && S_ISREG(st.st_mode));
        CHECK_OK(sw_read_file(&text, NULL, out_path, 4096, &err), &err);
        CHECK_STR(text ? text : "", "from-pod\n");
        CHECK(t_agent_log_shows("hp", "F=", 5000));

        CHECK(t_agent_create_pod(bad));
        pod = t_agent_wait_pod("hpbad", waiting_config_error, 20000);
        CHECK(pod != NULL);
        msg = sw_json_str(
                json_object_get(json_object_get(t_agent_ctr_status(pod), "state"), "waiting"),
                "message", "");
        CHECK(strstr(msg, "does not exist") && strstr(msg, "nothing-here"));
        CHECK(stat(missing, &st) != 0); /* Directory does not create */
        json_decref(pod);

        CHECK(t_agent_create_pod(notdir));
        pod = t_agent_wait_pod("hpfile", waiting_config_error, 20000);
        CHECK(pod != NULL);
        CHECK(strstr(sw_json_str(json_object_get(json_object_get(t_agent_ctr_status(pod), "state"),
                                                 "waiting"),
                                 "message", ""),
                     "is not a directory"));
        json_decref(pod);

        t_agent_delete_pod("hp");
        t_agent_delete_pod("hpbad");
        t_agent_delete_pod("hpfile");
        CHECK(t_agent_wait_gone("hp", 20000));
        CHECK(t_agent_wait_gone("hpbad", 20000));
        CHECK(t_agent_wait_gone("hpfile", 20000));
        free(text);
        free(out_path);
        free(host_dir);
        free(host_file);
        free(missing);
        free(spec);
        free(bad);
        free(notdir);
}

static void test_projected_volume(void)
{
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"proj\","
                "\"labels\":{\"app\":\"web\",\"tier\":\"front\"}},"
                "\"spec\":{\"restartPolicy\":\"Never\",\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"command\":[\"sh\",\"-c\",\"echo \\\"A=$(cat /p/conf/a) "
                "K=$(cat /p/key) N=$(cat /p/name) L=$(cat /p/labels)\\\"; "
                "ls -l /p/key /p/conf/a; ls /p\"],"
                "\"volumeMounts\":[{\"name\":\"p\",\"mountPath\":\"/p\"}]}],"
                "\"volumes\":[{\"name\":\"p\",\"projected\":{\"defaultMode\":420,\"sources\":["
                "{\"configMap\":{\"name\":\"pcfg\",\"items\":[{\"key\":\"a\",\"path\":"
                "\"conf/a\"}]}},"
                "{\"secret\":{\"name\":\"psec\",\"items\":[{\"key\":\"k\",\"path\":\"key\","
                "\"mode\":256}]}},"
                "{\"downwardAPI\":{\"items\":[{\"path\":\"name\",\"fieldRef\":{\"fieldPath\":"
                "\"metadata.name\"}},{\"path\":\"labels\",\"fieldRef\":{\"fieldPath\":"
                "\"metadata.labels\"}}]}},"
                "{\"serviceAccountToken\":{\"path\":\"token\"}}]}}]}}",
                t_agent.image);
        json_t *pod, *events;
        char *log;
        bool skipped = false;
        const json_t *ev;
        size_t i;

        CHECK(t_agent_create_obj("/api/v1/namespaces/default/configmaps",
                                 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{"
                                 "\"name\":\"pcfg\"},\"data\":{\"a\":\"alpha\",\"b\":\"beta\"}}"));
        CHECK(t_agent_create_obj("/api/v1/namespaces/default/secrets",
                                 "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{"
                                 "\"name\":\"psec\"},\"data\":{\"k\":\"a2V5LXZhbHVl\"}}"));
        CHECK(t_agent_create_pod(spec));
        free(spec);
        pod = t_agent_wait_pod("proj", t_agent_ended, 30000);
        CHECK(pod != NULL);
        CHECK_STR(t_agent_phase(pod), "Succeeded");
        json_decref(pod);
        log = t_agent_logs("proj", "");
        CHECK(log && strstr(log, "A=alpha K=key-value N=proj L=app=\"web\"\ntier=\"front\""));
        /* items[].mode 0400 on the secret's file, defaultMode 0644 on the others. */
        CHECK(log && strstr(log, "-r--------") && strstr(log, "-rw-r--r--"));
        /* Only the items asked for, and no token file. */
        CHECK(log && !strstr(log, "token") && !strstr(log, "beta"));
        if (log && !strstr(log, "A=alpha"))
                fprintf(stderr, "log: %s\n", log);
        free(log);
        events = t_agent_get("/api/v1/namespaces/default/events");
        json_array_foreach(json_object_get(events, "items"), i, ev)
        {
                if (!strcmp(sw_json_str(ev, "reason", ""), "ServiceAccountTokenSkipped") &&
                    !strcmp(sw_json_str(json_object_get(ev, "involvedObject"), "name", ""), "proj"))
                        skipped = true;
        }
        CHECK(skipped);
        json_decref(events);
        t_agent_delete_pod("proj");
        CHECK(t_agent_wait_gone("proj", 20000));
}

static bool started_field(const json_t *pod)
{
        return sw_json_bool(t_agent_ctr_status(pod), "started", 0);
}

static bool ctr_running(const json_t *pod)
{
        return json_object_get(json_object_get(t_agent_ctr_status(pod), "state"), "running");
}

static bool startup_restarted(const json_t *pod)
{
        const json_t *cs = t_agent_ctr_status(pod);
        return sw_json_int(cs, "restartCount", 0) >= 1 &&
               sw_json_int(json_object_get(json_object_get(cs, "lastState"), "terminated"),
                           "exitCode", 0) == 137;
}

static void test_startup_probe(void)
{
        /*
         * The liveness probe fails until the file exists: run before the
         * startup probe succeeds, it would kill the container.
         */
        char *slow = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"slowstart\"},"
                "\"spec\":{\"terminationGracePeriodSeconds\":1,\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"command\":[\"sh\",\"-c\",\"sleep 3; echo x > /up; "
                "sleep 3600\"],\"startupProbe\":{\"exec\":{\"command\":[\"cat\",\"/up\"]},"
                "\"periodSeconds\":1,\"failureThreshold\":30},\"livenessProbe\":{\"exec\":{"
                "\"command\":[\"cat\",\"/up\"]},\"periodSeconds\":1,\"failureThreshold\":1},"
                "\"readinessProbe\":{\"exec\":{\"command\":[\"true\"]},\"periodSeconds\":1}}]}}",
                t_agent.image);
        char *never = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"neverstart\"},"
                "\"spec\":{\"terminationGracePeriodSeconds\":1,\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"command\":[\"sleep\",\"3600\"],\"startupProbe\":{\"exec\":{"
                "\"command\":[\"cat\",\"/nope\"]},\"periodSeconds\":1,\"failureThreshold\":2}}]}}",
                t_agent.image);
        json_t *pod;
        const json_t *cs;

        CHECK(t_agent_create_pod(slow));
        CHECK(t_agent_create_pod(never));
        /* Running, but neither started nor ready while the startup probe fails. */
        pod = t_agent_wait_pod("slowstart", ctr_running, 20000);
        json_decref(pod);
        sw_sleep_ms(1000);
        pod = t_agent_get_pod("slowstart");
        cs = t_agent_ctr_status(pod);
        CHECK(json_object_get(json_object_get(cs, "state"), "running") != NULL);
        CHECK(!sw_json_bool(cs, "started", 1));
        CHECK(!t_agent_pod_ready(pod));
        json_decref(pod);
        pod = t_agent_wait_pod("slowstart", started_field, 20000);
        CHECK(pod != NULL);
        json_decref(pod);
        pod = t_agent_wait_pod("slowstart", t_agent_pod_ready, 10000);
        CHECK(pod != NULL);
        CHECK_INT(sw_json_int(t_agent_ctr_status(pod), "restartCount", -1), 0);
        json_decref(pod);

        /* failureThreshold failures in a row: killed and restarted (restartPolicy Always). */
        pod = t_agent_wait_pod("neverstart", startup_restarted, 30000);
        CHECK(pod != NULL);
        CHECK(!t_agent_pod_ready(pod));
        json_decref(pod);

        t_agent_delete_pod("slowstart");
        t_agent_delete_pod("neverstart");
        CHECK(t_agent_wait_gone("slowstart", 20000));
        CHECK(t_agent_wait_gone("neverstart", 20000));
        free(slow);
        free(never);
}

int main(void)
{
        if (geteuid() != 0) {
                printf("the node agent needs root (runc, overlayfs, network namespaces); skipped\n");
                return 0;
        }
        sw_libs_init();
        if (t_agent_env_up("agentvol")) {
                T_RUN(t_agent_test_node_registers);
                T_RUN(test_host_path_volumes);
                T_RUN(test_projected_volume);
                T_RUN(test_startup_probe);
        } else {
                CHECK(!"setup failed");
        }
        T_RUN(t_agent_stop_checked);
        t_agent_env_down();
        return t_done();
}
