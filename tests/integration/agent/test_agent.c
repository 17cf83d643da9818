/*
 * test_agent.c - the node agent on real parts: the real API server
 * (`slipway kube-apiserver`), a real docker-registry holding a busybox
 * image made here from Debian's busybox-static, real runc and overlayfs,
 * and `slipway node` as a child process. Pods are bound to the node
 * directly (spec.nodeName), so no scheduler is involved.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "common/base64.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/libs.h"
#include "common/mem.h"
#include "orchestrator/client/kube.h"
#include "steps/layer.h"
#include "steps/oci.h"
#include "steps/registry.h"
#include "steps/runtime.h"
#include "tests/harness/orch.h"
#include "tests/harness/proc.h"
#include "tests/harness/registry_server.h"
#include "tests/harness/t.h"

#define NODE "node-a"
#define BUSYBOX "/bin/busybox"

static struct t_orch orch;
static struct t_registry *reg;
static struct orch_kube *kube;
static bool up;
static pid_t agent_pid = -1;
static char *data_dir, *agent_log, image[256], missing_image[256];

static const char *const applets[] = {"sh", "echo", "mkdir", "httpd", "sleep", "cat", "env",
                                      "ls", "true", "false", "id",    "pwd",   "dd"};

/* ---- the image ---- */

static bool make_image(void)
{
        struct step_layer_pack_options po = STEP_LAYER_PACK_OPTIONS_INIT;
        struct step_registry_options ro = STEP_REGISTRY_OPTIONS_INIT;
        struct step_layer_info info;
        struct step_oci_layout *l = NULL;
        struct step_registry *r = NULL;
        struct step_oci_desc cdesc = {0}, mdesc = {0};
        struct sw_err err = SW_ERR_INIT;
        char *root = sw_xasprintf("%s/img-root", t_tmpdir());
        char *bin = sw_xasprintf("%s/bin", root);
        char *layer = sw_xasprintf("%s/layer.tar.gz", t_tmpdir());
        char *layout = sw_xasprintf("%s/layout", t_tmpdir());
        char *text = NULL, *dst = sw_xasprintf("%s/busybox", bin);
        size_t len = 0;
        json_t *config = NULL, *manifest = NULL;
        bool ok = false;

        if (sw_mkdir_p(bin, 0755, &err) || sw_read_file(&text, &len, BUSYBOX, 64 << 20, &err) ||
            sw_write_file_atomic(dst, text, len, 0755, &err))
                goto out;
        for (size_t i = 0; i < sizeof(applets) / sizeof(applets[0]); i++) {
                char *link = sw_xasprintf("%s/%s", bin, applets[i]);
                if (symlink("busybox", link) != 0)
                        fprintf(stderr, "symlink %s: %s\n", link, strerror(errno));
                free(link);
        }
        po.uid = po.gid = 0;
        if (step_layer_pack(&info, root, layer, &po, &err) ||
            step_oci_layout_open(&l, layout, true, &err))
                goto out;
        {
                char digest[SW_DIGEST_STR_LEN];
                int64_t size;
                if (step_oci_blob_add_file(digest, &size, l, layer, &err))
                        goto out;
        }
        config = json_pack("{s:s,s:s,s:{s:[s,s],s:[s,s,s],s:s},s:{s:s,s:[s]}}", "architecture",
                           "amd64", "os", "linux", "config", "Env", "PATH=/bin",
                           "IMAGE_VAR=from-image", "Cmd", "sleep", "3600", "x", "WorkingDir", "/",
                           "rootfs", "type", "layers", "diff_ids", info.diff_id);
        json_array_remove(json_object_get(json_object_get(config, "config"), "Cmd"), 2);
        snprintf(cdesc.media_type, sizeof(cdesc.media_type), "%s", STEP_OCI_MT_CONFIG);
        if (step_oci_json_put(cdesc.digest, &cdesc.size, l, config, &err))
                goto out;
        manifest = json_pack("{s:i,s:s,s:o,s:[{s:s,s:s,s:I}]}", "schemaVersion", 2, "mediaType",
                             STEP_OCI_MT_MANIFEST, "config", step_oci_desc_json(&cdesc), "layers",
                             "mediaType", info.media_type, "digest", info.digest, "size",
                             (json_int_t)info.size);
        snprintf(mdesc.media_type, sizeof(mdesc.media_type), "%s", STEP_OCI_MT_MANIFEST);
        if (step_oci_json_put(mdesc.digest, &mdesc.size, l, manifest, &err) ||
            step_oci_ref_set(l, "latest", &mdesc, &err))
                goto out;
        ro.host = reg->host;
        ro.insecure = "127.0.0.1:*";
        if (step_registry_new(&r, &ro, &err) ||
            step_registry_push(NULL, r, l, "latest", "test/busybox", "1", NULL, &err))
                goto out;
        snprintf(image, sizeof(image), "%s/test/busybox:1", reg->host);
        snprintf(missing_image, sizeof(missing_image), "%s/test/nothing:1", reg->host);
        ok = true;
out:
        if (!ok)
                fprintf(stderr, "make image: %s\n", err.msg);
        step_registry_free(r);
        step_oci_layout_free(l);
        json_decref(config);
        json_decref(manifest);
        free(text);
        free(root);
        free(bin);
        free(dst);
        free(layer);
        free(layout);
        return ok;
}

/* ---- helpers ---- */

static pid_t start_agent(void)
{
        char *env_data = sw_xasprintf("SLIPWAY_DATA=%s", data_dir);
        char *env_reg = sw_xasprintf("SLIPWAY_REGISTRY=%s", reg->host);
        const char *env[] = {env_data, env_reg, "SLIPWAY_LOG_LEVEL=info", NULL};
        char *argv[] = {(char *)t_slipway(), "node",   "--kubeconfig",
                        orch.kubeconfig,     "--name", NODE,
                        "--backoff-ms",      "500",    NULL};
        pid_t pid = t_spawn_extra(argv, env, agent_log);

        free(env_data);
        free(env_reg);
        return pid;
}

static json_t *get(const char *path)
{
        json_t *o = NULL;
        struct sw_err err = SW_ERR_INIT;

        if (orch_kube_get(&o, kube, path, &err) != 0)
                return NULL;
        return o;
}

static json_t *get_pod(const char *name)
{
        char *path = sw_xasprintf("/api/v1/namespaces/default/pods/%s", name);
        json_t *o = get(path);

        free(path);
        return o;
}

static const json_t *ctr_status(const json_t *pod)
{
        return json_array_get(json_object_get(json_object_get(pod, "status"), "containerStatuses"),
                              0);
}

static bool pod_ready(const json_t *pod)
{
        const json_t *c;
        size_t i;

        json_array_foreach(json_object_get(json_object_get(pod, "status"), "conditions"), i, c)
        {
                if (!strcmp(sw_json_str(c, "type", ""), "Ready"))
                        return !strcmp(sw_json_str(c, "status", ""), "True");
        }
        return false;
}

static const char *phase(const json_t *pod)
{
        return sw_json_str(json_object_get(pod, "status"), "phase", "");
}

static const char *waiting_reason(const json_t *pod)
{
        return sw_json_str(json_object_get(json_object_get(ctr_status(pod), "state"), "waiting"),
                           "reason", "");
}

/* Poll the pod until `pred` holds (returns it) or timeout (NULL; last state printed). */
static json_t *wait_pod(const char *name, bool (*pred)(const json_t *), int64_t timeout_ms)
{
        int64_t until = sw_mono_ms() + timeout_ms;
        json_t *pod = NULL;

        for (;;) {
                json_decref(pod);
                pod = get_pod(name);
                if (pod && pred(pod))
                        return pod;
                if (sw_mono_ms() > until)
                        break;
                sw_sleep_ms(200);
        }
        {
                char *dump =
                        pod ? json_dumps(json_object_get(pod, "status"), JSON_INDENT(1)) : NULL;
                fprintf(stderr, "pod %s: condition not reached; status: %s\n", name,
                        dump ? dump : "(absent)");
                free(dump);
        }
        json_decref(pod);
        return NULL;
}

static bool create_pod(const char *yaml_json)
{
        json_t *obj = NULL, *res = NULL;
        struct sw_err err = SW_ERR_INIT;
        int rc;

        obj = json_loads(yaml_json, 0, NULL);
        if (!obj) {
                fprintf(stderr, "bad pod json\n");
                return false;
        }
        json_object_set_new(json_object_get(obj, "spec"), "nodeName", json_string(NODE));
        rc = orch_kube_request(&res, NULL, kube, "POST", "/api/v1/namespaces/default/pods", NULL,
                               obj, &err);
        if (rc)
                fprintf(stderr, "create pod: %s\n", err.msg);
        json_decref(obj);
        json_decref(res);
        return rc == 0;
}

static void delete_pod(const char *name)
{
        char *path = sw_xasprintf("/api/v1/namespaces/default/pods/%s", name);
        struct sw_err err = SW_ERR_INIT;

        orch_kube_delete(kube, path, NULL, &err);
        free(path);
}

static bool wait_gone(const char *name, int64_t timeout_ms)
{
        int64_t until = sw_mono_ms() + timeout_ms;

        while (sw_mono_ms() < until) {
                json_t *pod = get_pod(name);
                if (!pod)
                        return true;
                json_decref(pod);
                sw_sleep_ms(200);
        }
        return false;
}

static int host_port(const json_t *pod, const char *cport)
{
        const char *s =
                sw_json_str(json_object_get(json_object_get(pod, "metadata"), "annotations"),
                            "slipway.dev/ports", NULL);
        json_t *ports = s ? json_loads(s, 0, NULL) : NULL;
        int port = (int)json_integer_value(json_object_get(ports, cport));

        json_decref(ports);
        return port;
}

/* GET `path` on 127.0.0.1:port; the whole answer (caller frees) or NULL. */
static char *http_get_path(int port, const char *path)
{
        struct sockaddr_in sa;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct timeval tv = {5, 0};
        char *req = sw_xasprintf("GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
        char *buf = sw_xcalloc(1, 65536);
        size_t got = 0;

        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
            write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
                close(fd);
                free(buf);
                free(req);
                return NULL;
        }
        free(req);
        for (;;) {
                ssize_t n = read(fd, buf + got, 65535 - got);
                if (n <= 0)
                        break;
                got += (size_t)n;
        }
        close(fd);
        return buf;
}

static char *http_get(int port)
{
        return http_get_path(port, "/");
}

/* The agent's container log endpoint, from the Node's daemonEndpoints. */
static char *logs(const char *pod, const char *query)
{
        json_t *node = get("/api/v1/nodes/" NODE);
        int port = (int)sw_json_int(
                json_object_get(json_object_get(json_object_get(node, "status"), "daemonEndpoints"),
                                "kubeletEndpoint"),
                "Port", 0);
        char *path = sw_xasprintf("/containerLogs/default/%s/c%s", pod, query);
        char *out = port > 0 ? http_get_path(port, path) : NULL;

        json_decref(node);
        free(path);
        return out;
}

static char *runc_root(void)
{
        return sw_xasprintf("%s/node/%s/runc", data_dir, NODE);
}

static int ctr_pid(const json_t *pod)
{
        const char *cid = sw_json_str(ctr_status(pod), "containerID", "runc://");
        char *root = runc_root();
        struct step_rt_state st = {0};
        struct sw_err err = SW_ERR_INIT;
        int pid = step_rt_state(&st, "runc", root, cid + 7, &err) == 0 ? st.pid : -1;

        free(root);
        return pid;
}

/* ---- tests ---- */

static bool node_ready(void)
{
        json_t *node = get("/api/v1/nodes/" NODE);
        const json_t *c =
                json_array_get(json_object_get(json_object_get(node, "status"), "conditions"), 0);
        bool ok = node && !strcmp(sw_json_str(c, "type", ""), "Ready") &&
                  !strcmp(sw_json_str(c, "status", ""), "True") &&
                  json_object_get(c, "lastHeartbeatTime");

        json_decref(node);
        return ok;
}

static void test_node_registers(void)
{
        int64_t until = sw_mono_ms() + 15000;
        json_t *node, *lease;

        agent_pid = start_agent();
        CHECK(agent_pid > 0);
        while (!node_ready() && sw_mono_ms() < until)
                sw_sleep_ms(200);
        CHECK(node_ready());
        node = get("/api/v1/nodes/" NODE);
        CHECK(*sw_json_str(json_object_get(json_object_get(node, "status"), "capacity"), "cpu",
                           ""));
        CHECK_STR(sw_json_str(
                          json_array_get(
                                  json_object_get(json_object_get(node, "status"), "addresses"), 0),
                          "address", ""),
                  "127.0.0.1");
        CHECK(*sw_json_str(json_object_get(node, "spec"), "podCIDR", ""));
        lease = get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/" NODE);
        CHECK_STR(sw_json_str(json_object_get(lease, "spec"), "holderIdentity", ""), NODE);
        json_decref(node);
        json_decref(lease);
}

static bool running_ready(const json_t *pod)
{
        return !strcmp(phase(pod), "Running") && pod_ready(pod);
}

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
                image);
        json_t *pod;
        char *page;
        int port;

        CHECK(create_pod(spec));
        free(spec);
        pod = wait_pod("web", running_ready, 30000);
        CHECK(pod != NULL);
        if (!pod)
                return;
        CHECK_STR(sw_json_str(json_object_get(pod, "status"), "podIP", ""), "127.0.0.1");
        CHECK_INT(sw_json_int(ctr_status(pod), "restartCount", -1), 0);
        port = host_port(pod, "8080");
        CHECK(port > 0);
        page = http_get(port);
        CHECK(page && strstr(page, "200 OK"));
        CHECK(page && strstr(page, "hello from web in default, from-image, uid 0, cwd /bin"));
        if (page && !strstr(page, "hello from web"))
                fprintf(stderr, "page: %s\n", page);
        free(page);
        json_decref(pod);
}

static bool succeeded(const json_t *pod)
{
        return !strcmp(phase(pod), "Succeeded");
}

static bool create_obj(const char *path, const char *text)
{
        json_t *obj = json_loads(text, 0, NULL);
        struct sw_err err = SW_ERR_INIT;
        int rc = obj ? orch_kube_request(NULL, NULL, kube, "POST", path, NULL, obj, &err) : -1;

        if (rc)
                fprintf(stderr, "create %s: %s\n", path, err.msg);
        json_decref(obj);
        return rc == 0;
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
                image, image);
        json_t *pod;
        char *out = NULL;

        CHECK(create_obj("/api/v1/namespaces/default/configmaps",
                         "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
                         "\"cfg\"},\"data\":{\"a\":\"from-configmap\"}}"));
        CHECK(create_obj("/api/v1/namespaces/default/secrets",
                         "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":"
                         "\"sec\"},\"data\":{\"x\":\"czNjcjN0\"}}"));
        CHECK(create_pod(spec));
        free(spec);
        pod = wait_pod("envpod", succeeded, 30000);
        CHECK(pod != NULL);
        CHECK_INT(sw_json_int(
                          json_object_get(json_object_get(ctr_status(pod), "state"), "terminated"),
                          "exitCode", -1),
                  0);
        out = logs("envpod", "");
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
        delete_pod("envpod");
        CHECK(wait_gone("envpod", 20000));
}

static bool ended(const json_t *pod)
{
        return !strcmp(phase(pod), "Succeeded") || !strcmp(phase(pod), "Failed");
}

static void test_memory_limit_oom_killed(void)
{
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"oom\"},"
                "\"spec\":{\"restartPolicy\":\"Never\",\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"command\":[\"dd\",\"if=/dev/zero\",\"of=/dev/null\","
                "\"bs=256M\",\"count=1\"],\"resources\":{\"limits\":{\"memory\":\"32Mi\"}}}]}}",
                image);
        json_t *pod;
        const json_t *term;

        CHECK(create_pod(spec));
        free(spec);
        pod = wait_pod("oom", ended, 30000);
        CHECK(pod != NULL);
        term = json_object_get(json_object_get(ctr_status(pod), "state"), "terminated");
        CHECK_STR(phase(pod), "Failed");
        CHECK_INT(sw_json_int(term, "exitCode", -1), 137);
        CHECK_STR(sw_json_str(term, "reason", ""), "OOMKilled");
        json_decref(pod);
        delete_pod("oom");
        CHECK(wait_gone("oom", 20000));
}

static bool restarted_by_liveness(const json_t *pod)
{
        const json_t *cs = ctr_status(pod);
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
                image);
        json_t *pod;

        CHECK(create_pod(spec));
        free(spec);
        pod = wait_pod("live", restarted_by_liveness, 30000);
        CHECK(pod != NULL);
        json_decref(pod);
        delete_pod("live");
        CHECK(wait_gone("live", 20000));
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
        CHECK(create_obj("/api/v1/namespaces/default/secrets", secret));
        spec = sw_xasprintf("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":"
                            "\"private\"},\"spec\":{\"restartPolicy\":\"Never\","
                            "\"imagePullSecrets\":[{\"name\":\"pull\"}],\"containers\":[{"
                            "\"name\":\"c\",\"image\":\"%s/test/private:1\",\"command\":["
                            "\"true\"]}]}}",
                            priv->host);
        CHECK(create_pod(spec));
        pod = wait_pod("private", succeeded, 30000);
        CHECK(pod != NULL);
        json_decref(pod);
        delete_pod("private");
        CHECK(wait_gone("private", 20000));
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
                image, port, port, port);
        char key[16], *page;
        json_t *pod;

        CHECK(create_pod(spec));
        free(spec);
        pod = wait_pod("hostnet", running_ready, 30000);
        CHECK(pod != NULL);
        snprintf(key, sizeof(key), "%d", port);
        CHECK_INT(pod ? host_port(pod, key) : 0, port);
        page = http_get(port);
        CHECK(page && strstr(page, "on-the-host"));
        free(page);
        json_decref(pod);
        delete_pod("hostnet");
        CHECK(wait_gone("hostnet", 20000));
}

/* Poll the pod's log until it holds `what` (true) or timeout. */
static bool log_shows(const char *pod, const char *what, int64_t timeout_ms)
{
        int64_t until = sw_mono_ms() + timeout_ms;

        while (sw_mono_ms() < until) {
                char *out = logs(pod, "");
                bool ok = out && strstr(out, what);
                free(out);
                if (ok)
                        return true;
                sw_sleep_ms(100);
        }
        return false;
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
                image);
        json_t *pod;

        CHECK(create_pod(spec));
        free(spec);
        pod = wait_pod("hooks", running_ready, 30000);
        CHECK(pod != NULL);
        json_decref(pod);
        CHECK(log_shows("hooks", "poststart", 10000));
        delete_pod("hooks");
        /* sh as pid 1 ignores SIGTERM: the pod lives out its grace period, log included. */
        CHECK(log_shows("hooks", "prestop", 1500));
        CHECK(wait_gone("hooks", 20000));
}

static bool crash_looping(const json_t *pod)
{
        const json_t *cs = ctr_status(pod);
        return sw_json_int(cs, "restartCount", 0) >= 2 &&
               sw_json_int(json_object_get(json_object_get(cs, "lastState"), "terminated"),
                           "exitCode", 0) == 3;
}

static bool in_backoff(const json_t *pod)
{
        return !strcmp(waiting_reason(pod), "CrashLoopBackOff");
}

static void test_failing_container_crash_loops(void)
{
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"crash\"},"
                "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"%s\",\"command\":[\"sh\","
                "\"-c\",\"echo bye; exit 3\"]}]}}",
                image);
        json_t *pod;

        CHECK(create_pod(spec));
        free(spec);
        pod = wait_pod("crash", in_backoff, 30000);
        CHECK(pod != NULL);
        json_decref(pod);
        pod = wait_pod("crash", crash_looping, 30000);
        CHECK(pod != NULL);
        CHECK_STR(sw_json_str(json_object_get(json_object_get(ctr_status(pod), "lastState"),
                                              "terminated"),
                              "reason", ""),
                  "Error");
        json_decref(pod);
        {
                char *cur = NULL, *prev = logs("crash", "?previous=true");
                /* The current instance may have just started: give it a moment to print. */
                for (int i = 0; i < 30 && !(cur && strstr(cur, "bye")); i++) {
                        free(cur);
                        sw_sleep_ms(100);
                        cur = logs("crash", "");
                }
                char *tail = logs("crash", "?tailLines=0");
                CHECK(cur && strstr(cur, "200 OK") && strstr(cur, "\r\n\r\nbye\n"));
                CHECK(prev && strstr(prev, "200 OK") && strstr(prev, "\r\n\r\nbye\n"));
                CHECK(tail && strstr(tail, "200 OK") && !strstr(tail, "bye"));
                free(cur);
                free(prev);
                free(tail);
        }
        delete_pod("crash");
        CHECK(wait_gone("crash", 20000));
}

static bool pull_backoff(const json_t *pod)
{
        return !strcmp(waiting_reason(pod), "ImagePullBackOff");
}

static void test_missing_image_pull_backoff(void)
{
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"noimg\"},"
                "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"%s\"}]}}",
                missing_image);
        json_t *pod;
        const char *msg;

        CHECK(create_pod(spec));
        free(spec);
        pod = wait_pod("noimg", pull_backoff, 30000);
        CHECK(pod != NULL);
        msg = sw_json_str(json_object_get(json_object_get(ctr_status(pod), "state"), "waiting"),
                          "message", "");
        /* The registry's own words: distribution answers "manifest unknown" / NAME_UNKNOWN. */
        CHECK(strstr(msg, "unknown") != NULL);
        if (!strstr(msg, "unknown"))
                fprintf(stderr, "message: %s\n", msg);
        CHECK_STR(phase(pod), "Pending");
        json_decref(pod);
        delete_pod("noimg");
        CHECK(wait_gone("noimg", 20000));
}

static bool running_not_ready(const json_t *pod)
{
        return !strcmp(phase(pod), "Running") && !pod_ready(pod) &&
               json_object_get(json_object_get(ctr_status(pod), "state"), "running");
}

static void test_failing_readiness_probe(void)
{
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"unready\"},"
                "\"spec\":{\"terminationGracePeriodSeconds\":1,\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"readinessProbe\":{\"tcpSocket\":{\"port\":9999},"
                "\"periodSeconds\":1,\"failureThreshold\":1}}]}}",
                image);
        json_t *pod;

        CHECK(create_pod(spec));
        free(spec);
        pod = wait_pod("unready", running_not_ready, 30000);
        CHECK(pod != NULL);
        json_decref(pod);
        sw_sleep_ms(1500);
        pod = get_pod("unready");
        CHECK(pod && running_not_ready(pod));
        json_decref(pod);
        delete_pod("unready");
        CHECK(wait_gone("unready", 20000));
}

static void test_agent_restart_adopts(void)
{
        json_t *before = get_pod("web"), *after;
        int pid_before = before ? ctr_pid(before) : -1;
        char *page;

        CHECK(pid_before > 0);
        t_kill(agent_pid);
        agent_pid = start_agent();
        sw_sleep_ms(2000);
        after = wait_pod("web", running_ready, 20000);
        CHECK(after != NULL);
        if (before && after) {
                CHECK_INT(ctr_pid(after), pid_before);
                CHECK_INT(sw_json_int(ctr_status(after), "restartCount", -1), 0);
                CHECK_STR(sw_json_str(json_object_get(json_object_get(ctr_status(after), "state"),
                                                      "running"),
                                      "startedAt", "a"),
                          sw_json_str(json_object_get(json_object_get(ctr_status(before), "state"),
                                                      "running"),
                                      "startedAt", "b"));
                page = http_get(host_port(after, "8080"));
                CHECK(page && strstr(page, "hello from web"));
                free(page);
        }
        json_decref(before);
        json_decref(after);
}

static void test_delete_stops_with_sigterm(void)
{
        char *spec = sw_xasprintf(
                "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"term\"},"
                "\"spec\":{\"terminationGracePeriodSeconds\":60,\"containers\":[{\"name\":\"c\","
                "\"image\":\"%s\",\"command\":[\"sh\",\"-c\",\"trap 'echo got-term; exit 0' "
                "TERM; echo started; while true; do sleep 1; done\"]}]}}",
                image);
        json_t *pod;
        int64_t t0;

        CHECK(create_pod(spec));
        free(spec);
        pod = wait_pod("term", running_ready, 30000);
        CHECK(pod != NULL);
        json_decref(pod);
        t0 = sw_mono_ms();
        delete_pod("term");
        /* Well inside the 60 s grace: the process ended on SIGTERM, not on SIGKILL. */
        CHECK(wait_gone("term", 20000));
        CHECK(sw_mono_ms() - t0 < 20000);
        delete_pod("web");
        CHECK(wait_gone("web", 20000));
}

/* SIGTERM ends the agent; under ASan its log must hold no sanitizer report (leaks included). */
static void test_agent_stops_cleanly(void)
{
        char *log = NULL;
        struct sw_err err = SW_ERR_INIT;

        if (agent_pid <= 0)
                return;
        CHECK_INT(kill(agent_pid, SIGTERM), 0);
        CHECK_INT(t_wait(agent_pid, 20000), 0);
        agent_pid = -1;
        CHECK_OK(sw_read_file(&log, NULL, agent_log, 64 << 20, &err), &err);
        CHECK(log && !strstr(log, "Sanitizer") && !strstr(log, "runtime error"));
        free(log);
}

/* Whatever a failed test left: runc containers and mounts under our directory. */
static void cleanup(void)
{
        char *root = runc_root(), *mi = NULL, *save = NULL;
        struct sw_err err = SW_ERR_INIT;
        const char *tmp = t_tmpdir();

        char *argv[] = {"/usr/sbin/runc", "--root", root, "list", "-q", NULL};
        char *ids = NULL, *save2 = NULL;

        if (t_capture(&ids, argv) == 0 && ids)
                for (char *id = strtok_r(ids, "\n", &save2); id; id = strtok_r(NULL, "\n", &save2))
                        step_rt_delete("runc", root, id);
        free(ids);
        if (sw_read_file(&mi, NULL, "/proc/self/mountinfo", 1 << 22, &err) == 0) {
                for (char *l = strtok_r(mi, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                        char mp[4096];
                        if (sscanf(l, "%*s %*s %*s %*s %4095s", mp) == 1 &&
                            !strncmp(mp, tmp, strlen(tmp)))
                                umount2(mp, MNT_DETACH);
                }
        }
        free(mi);
        free(root);
}

int main(void)
{
        if (geteuid() != 0) {
                printf("the node agent needs root (runc, overlayfs, network namespaces); skipped\n");
                return 0;
        }
        sw_libs_init();
        data_dir = sw_xasprintf("%s/agent-data", t_tmpdir());
        agent_log = sw_xasprintf("%s/agent.log", t_tmpdir());
        up = t_orch_start(&orch, "agent");
        reg = up ? t_registry_start(T_REG_OPEN) : NULL;
        if (up && reg && make_image() &&
            orch_kube_from_kubeconfig(&kube, orch.kubeconfig, NULL, &(struct sw_err)SW_ERR_INIT) ==
                    0) {
                T_RUN(test_node_registers);
                T_RUN(test_http_pod_runs_and_serves);
                T_RUN(test_failing_container_crash_loops);
                T_RUN(test_env_config_and_secret);
                T_RUN(test_memory_limit_oom_killed);
                T_RUN(test_liveness_exec_probe_restarts);
                T_RUN(test_image_pull_secret);
                T_RUN(test_host_network_pod);
                T_RUN(test_lifecycle_hooks);
                T_RUN(test_missing_image_pull_backoff);
                T_RUN(test_failing_readiness_probe);
                T_RUN(test_agent_restart_adopts);
                T_RUN(test_delete_stops_with_sigterm);
        } else {
                CHECK(!"setup failed");
        }
        T_RUN(test_agent_stops_cleanly);
        cleanup();
        orch_kube_free(kube);
        t_registry_stop(reg);
        t_orch_stop(&orch);
        {
                char *log = NULL;
                size_t len = 0;
                struct sw_err err = SW_ERR_INIT;
                if (sw_read_file(&log, &len, agent_log, 64 << 20, &err) == 0)
                        fprintf(stderr, "---- agent log (tail) ----\n%s\n",
                                len > 6000 ? log + len - 6000 : log);
                free(log);
        }
        free(data_dir);
        free(agent_log);
        return t_done();
}
