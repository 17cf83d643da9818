/*
 * test_agent_volumes.c - the node agent on real parts (see test_agent.c):
 * hostPath volumes and their type checks, projected volumes (configMap,
 * secret, downwardAPI, a skipped serviceAccountToken), startup probes,
 * log rotation seen through kubectl logs, image pulls that hang without
 * holding up other pods, and image garbage collection.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
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
#include "steps/oci.h"
#include "steps/registry.h"
#include "tests/harness/agent_env.h"
#include "tests/harness/proc.h"
#include "tests/harness/registry_server.h"
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
                "\"periodSeconds\":1,\"timeoutSeconds\":10,\"failureThreshold\":30},\"livenessProbe\":{\"exec\":{"
                "\"command\":[\"cat\",\"/up\"]},\"periodSeconds\":1,\"timeoutSeconds\":10,\"failureThreshold\":1},"
                "\"readinessProbe\":{\"exec\":{\"command\":[\"true\"]},\"periodSeconds\":1,\"timeoutSeconds\":10}}]}}",
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

static bool quick_ready(const json_t *pod)
{
        return t_agent_running_ready(pod);
}

/*
 * A registry that accepts connections and never answers (a fault a real
 * registry cannot be made to show): the pull of that pod hangs in a worker
 * while another pod, whose image is stored, starts at once.
 */
static void test_hanging_pull_does_not_block(void)
{
        struct sockaddr_in sa = {.sin_family = AF_INET};
        socklen_t sl = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        char *hang = NULL, *quick = NULL;
        json_t *pod;
        int64_t t0;

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 64) == 0 &&
              getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
        hang = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"hang\"},"
                "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"127.0.0.1:%d/t/hang:1\"}]}}",
                ntohs(sa.sin_port));
        quick = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"quick\"},"
                "\"spec\":{\"terminationGracePeriodSeconds\":1,\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"command\":[\"sleep\",\"3600\"]}]}}",
                t_agent.image);
        CHECK(t_agent_create_pod(hang));
        sw_sleep_ms(1000); /* the agent is pulling by now */
        t0 = sw_mono_ms();
        CHECK(t_agent_create_pod(quick));
        pod = t_agent_wait_pod("quick", quick_ready, 8000);
        CHECK(pod != NULL);
        if (pod)
                printf("quick pod ready %lld ms after creation\n", (long long)(sw_mono_ms() - t0));
        json_decref(pod);
        pod = t_agent_get_pod("hang");
        CHECK_STR(t_agent_waiting_reason(pod), "ContainerCreating");
        json_decref(pod);
        t_agent_delete_pod("quick");
        t_agent_delete_pod("hang");
        CHECK(t_agent_wait_gone("quick", 20000));
        CHECK(t_agent_wait_gone("hang", 20000));
        if (fd >= 0)
                close(fd);
        free(hang);
        free(quick);
}

/* Restart the agent with more settings (pods keep running meanwhile). */
static void restart_agent(const char *e1, const char *e2)
{
        int64_t until = sw_mono_ms() + 15000;

        t_kill(t_agent.agent_pid);
        t_agent.extra_env[0] = e1;
        t_agent.extra_env[1] = e2;
        t_agent.extra_env[2] = NULL;
        t_agent.agent_pid = t_agent_start_agent();
        CHECK(t_agent.agent_pid > 0);
        sw_sleep_ms(500);
        while (!t_agent_node_ready() && sw_mono_ms() < until)
                sw_sleep_ms(200);
}

/*
 * The lines "line-<first>" .. "line-<last>" in order, each once, and
 * nothing else but the padding; returns how many were found.
 */
static int check_lines(const char *body, int first, int last)
{
        int want = first, n = 0;
        const char *s = body;

        while ((s = strstr(s, "line-"))) {
                int got = (int)strtol(s + 5, NULL, 10);
                if (got != want) {
                        fprintf(stderr, "expected line-%d, found line-%d\n", want, got);
                        return -1;
                }
                want++;
                n++;
                s += 5;
        }
        return want == last + 1 ? n : -1;
}

static bool ended(const json_t *pod)
{
        return t_agent_ended(pod);
}

static bool ctr_running_pred(const json_t *pod)
{
        return json_object_get(json_object_get(t_agent_ctr_status(pod), "state"), "running");
}

static void test_log_rotation(void)
{
        /* About 110 bytes a line, 100 lines a second: a 4 KiB file rotates every pass. */
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"chatty\"},"
                "\"spec\":{\"restartPolicy\":\"Never\",\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"command\":[\"sh\",\"-c\",\"sleep 1; i=0; while [ $i -lt 400 ]; "
                "do echo line-$i %0100d; i=$((i+1)); [ $((i %% 10)) = 0 ] && sleep 0.1; done; "
                "sleep 1\"]}]}}",
                t_agent.image, 0);
        char *logs = sw_xasprintf("%s/node/%s/pods", t_agent.data_dir, T_AGENT_NODE);
        char *follow = NULL, *all = NULL, *tail = NULL, *body;
        json_t *pod;
        const char *uid;

        restart_agent("SLIPWAY_POD_LOG_MAX=4096", "SLIPWAY_POD_LOG_FILES=3");
        CHECK(t_agent_create_pod(spec));
        pod = t_agent_wait_pod("chatty", ctr_running_pred, 20000);
        CHECK(pod != NULL);
        json_decref(pod);
        /* Followed from the start to the end, across every rotation. */
        follow = t_agent_logs("chatty", "?follow=true");
        body = follow ? strstr(follow, "\r\n\r\n") : NULL;
        CHECK(body != NULL);
        CHECK_INT(body ? check_lines(body, 0, 399) : -1, 400);
        pod = t_agent_wait_pod("chatty", ended, 20000);
        CHECK(pod != NULL);
        uid = sw_json_str(json_object_get(pod, "metadata"), "uid", "");
        {
                /* On disk: the file being written and at most two rotated copies, all small. */
                char *cur = sw_xasprintf("%s/%s/logs/c.log", logs, uid);
                char *r1 = sw_xasprintf("%s.1", cur), *r2 = sw_xasprintf("%s.2", cur);
                char *r3 = sw_xasprintf("%s.3", cur);
                struct stat st;
                CHECK(stat(r1, &st) == 0 && st.st_size < 16384);
                CHECK(stat(r2, &st) == 0 && st.st_size < 16384);
                CHECK(stat(r3, &st) != 0);
                CHECK(stat(cur, &st) == 0 && st.st_size < 16384);
                free(cur);
                free(r1);
                free(r2);
                free(r3);
        }
        json_decref(pod);
        /* The whole log: what was kept, in order, up to the last line. */
        all = t_agent_logs("chatty", "");
        body = all ? strstr(all, "\r\n\r\n") : NULL;
        {
                const char *first = body ? strstr(body, "line-") : NULL;
                int from = first ? (int)strtol(first + 5, NULL, 10) : -1;
                /* The oldest lines were rotated away; more than the tail below is kept. */
                CHECK(from > 0 && from < 340);
                CHECK(from > 0 && check_lines(body, from, 399) == 400 - from);
        }
        {
                /* kubectl logs --tail counts across the rotated files. */
                const char *args[] = {"logs", "chatty", "--tail=60", NULL};
                CHECK_INT(t_kubectl(&t_agent.orch, &tail, NULL, args), 0);
                CHECK_INT(tail ? check_lines(tail, 340, 399) : -1, 60);
                CHECK(tail && !strncmp(tail, "line-340 ", 9));
        }
        {
                /* --timestamps: each line with the time it was written, RFC 3339 UTC. */
                const char *args[] = {"logs", "chatty", "--tail=2", "--timestamps", NULL};
                char *ts = NULL;
                CHECK_INT(t_kubectl(&t_agent.orch, &ts, NULL, args), 0);
                CHECK(ts && strlen(ts) > 40 && !strncmp(ts, "20", 2) && ts[10] == 'T' &&
                      !strncmp(ts + 29, "Z line-398 ", 11));
                CHECK(ts && strstr(ts, "Z line-399 "));
                if (ts && strncmp(ts + 29, "Z line-398", 10))
                        fprintf(stderr, "kubectl logs --timestamps: %.200s\n", ts);
                free(ts);
        }
        t_agent_delete_pod("chatty");
        CHECK(t_agent_wait_gone("chatty", 20000));
        free(spec);
        free(logs);
        free(follow);
        free(all);
        free(tail);
}

/*
 * Push a second image: the busybox one (the harness's layout, "latest")
 * with one more variable in its config, so it shares the layer but not the
 * manifest or config. Its manifest digest goes to `digest`.
 */
static bool push_other_image(char *ref, size_t size, char digest[SW_DIGEST_STR_LEN])
{
        struct step_registry_options ro = STEP_REGISTRY_OPTIONS_INIT;
        struct step_registry *r = NULL;
        struct step_oci_layout *l = NULL;
        struct step_oci_desc mdesc = {0}, cdesc = {0};
        struct step_oci_manifest m = {0};
        struct sw_err err = SW_ERR_INIT;
        char *layout = sw_xasprintf("%s/layout", t_tmpdir()), *text = NULL;
        size_t len = 0;
        json_t *cfg = NULL, *man = NULL;
        bool ok = false;

        if (step_oci_layout_open(&l, layout, false, &err) ||
            step_oci_ref_resolve(&mdesc, l, "latest", &err) ||
            step_oci_blob_read(&text, &len, l, mdesc.digest, 1 << 20, &err) ||
            step_oci_manifest_parse(&m, mdesc.media_type, text, len, &err) ||
            step_oci_json_get(&cfg, l, m.config.digest, 1 << 20, &err))
                goto out;
        json_array_append_new(json_object_get(json_object_get(cfg, "config"), "Env"),
                              json_string("OTHER=1"));
        cdesc = m.config;
        if (step_oci_json_put(cdesc.digest, &cdesc.size, l, cfg, &err) ||
            sw_json_parse(&man, text, len, 0, &err))
                goto out;
        json_object_set_new(man, "config", step_oci_desc_json(&cdesc));
        if (step_oci_json_put(mdesc.digest, &mdesc.size, l, man, &err) ||
            step_oci_ref_set(l, "other", &mdesc, &err))
                goto out;
        ro.host = t_agent.reg->host;
        ro.insecure = "127.0.0.1:*";
        if (step_registry_new(&r, &ro, &err) ||
            step_registry_push(NULL, r, l, "other", "test/other", "1", NULL, &err))
                goto out;
        snprintf(ref, size, "%s/test/other:1", t_agent.reg->host);
        snprintf(digest, SW_DIGEST_STR_LEN, "%s", mdesc.digest);
        ok = true;
out:
        if (!ok)
                fprintf(stderr, "push other image: %s\n", err.msg);
        step_registry_free(r);
        step_oci_layout_free(l);
        step_oci_manifest_release(&m);
        json_decref(cfg);
        json_decref(man);
        free(text);
        free(layout);
        return ok;
}

static bool store_has(const char *ref)
{
        char *index = sw_xasprintf("%s/node/%s/images/index.json", t_agent.data_dir, T_AGENT_NODE);
        char *text = NULL;
        struct sw_err err = SW_ERR_INIT;
        bool has = sw_read_file(&text, NULL, index, 1 << 20, &err) == 0 && strstr(text, ref);

        free(text);
        free(index);
        return has;
}

static bool blob_exists(const char *digest)
{
        char *path = sw_xasprintf("%s/node/%s/images/blobs/sha256/%s", t_agent.data_dir,
                                  T_AGENT_NODE, digest + 7);
        bool has = access(path, F_OK) == 0;

        free(path);
        return has;
}

/*
 * Image GC with thresholds of 0 %: any usage is pressure. The image of a
 * running pod stays; the image nobody uses any more goes, with its own
 * blobs but not the layer it shares.
 */
static void test_image_gc(void)
{
        char other[256], other_digest[SW_DIGEST_STR_LEN], *used = NULL, *unused = NULL;
        char *layers = sw_xasprintf("%s/node/%s/layers", t_agent.data_dir, T_AGENT_NODE);
        json_t *pod;
        int64_t until;
        size_t nlayers = 0;

        CHECK(push_other_image(other, sizeof(other), other_digest));
        used = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"gcused\"},"
                "\"spec\":{\"terminationGracePeriodSeconds\":1,\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"command\":[\"sleep\",\"3600\"]}]}}",
                t_agent.image);
        unused = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"gcother\"},"
                "\"spec\":{\"restartPolicy\":\"Never\",\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"command\":[\"true\"]}]}}",
                other);
        CHECK(t_agent_create_pod(used));
        pod = t_agent_wait_pod("gcused", t_agent_running_ready, 20000);
        CHECK(pod != NULL);
        json_decref(pod);
        CHECK(t_agent_create_pod(unused));
        pod = t_agent_wait_pod("gcother", t_agent_succeeded, 30000);
        CHECK(pod != NULL);
        json_decref(pod);
        CHECK(store_has(other) && blob_exists(other_digest));

        restart_agent("SLIPWAY_IMAGE_GC_HIGH=0", "SLIPWAY_IMAGE_GC_LOW=0");
        /* Still used by gcother: nothing goes. */
        sw_sleep_ms(1500);
        CHECK(store_has(other));
        t_agent_delete_pod("gcother");
        CHECK(t_agent_wait_gone("gcother", 20000));
        until = sw_mono_ms() + 15000;
        while (store_has(other) && sw_mono_ms() < until)
                sw_sleep_ms(200);
        CHECK(!store_has(other));
        CHECK(!blob_exists(other_digest));
        /* The image of the running pod, and the layer both shared, stay. */
        CHECK(store_has(t_agent.image));
        {
                DIR *d = opendir(layers);
                struct dirent *e;
                while (d && (e = readdir(d)))
                        nlayers += strlen(e->d_name) == 64;
                if (d)
                        closedir(d);
        }
        CHECK_INT((long long)nlayers, 1);
        pod = t_agent_get_pod("gcused");
        CHECK(t_agent_running_ready(pod));
        json_decref(pod);
        t_agent_delete_pod("gcused");
        CHECK(t_agent_wait_gone("gcused", 20000));
        free(used);
        free(unused);
        free(layers);
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
                T_RUN(test_hanging_pull_does_not_block);
                T_RUN(test_log_rotation);
                T_RUN(test_image_gc);
        } else {
                CHECK(!"setup failed");
        }
        T_RUN(t_agent_stop_checked);
        t_agent_env_down();
        return t_done();
}
