/*
 * agent_env.c - the node agent's test environment (see agent_env.h).
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
#include "tests/harness/agent_env.h"
#include "tests/harness/orch.h"
#include "tests/harness/proc.h"
#include "tests/harness/registry_server.h"
#include "tests/harness/t.h"

#define BUSYBOX "/bin/busybox"

static const char *const applets[] = {"sh", "echo", "mkdir", "httpd", "sleep", "cat", "env",
                                      "ls", "true", "false", "id",    "pwd",   "dd"};

bool t_agent_make_image(void)
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
        ro.host = t_agent.reg->host;
        ro.insecure = "127.0.0.1:*";
        if (step_registry_new(&r, &ro, &err) ||
            step_registry_push(NULL, r, l, "latest", "test/busybox", "1", NULL, &err))
                goto out;
        snprintf(t_agent.image, sizeof(t_agent.image), "%s/test/busybox:1", t_agent.reg->host);
        snprintf(t_agent.missing_image, sizeof(t_agent.missing_image), "%s/test/nothing:1",
                 t_agent.reg->host);
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

pid_t t_agent_start_agent(void)
{
        return t_agent_start_node(T_AGENT_NODE, t_agent.agent_log);
}

pid_t t_agent_start_node(const char *name, const char *log_path)
{
        char *env_data = sw_xasprintf("SLIPWAY_DATA=%s", t_agent.data_dir);
        char *env_reg = sw_xasprintf("SLIPWAY_REGISTRY=%s", t_agent.reg->host);
        /* Pod IPs of its own too, for the same reason (see t_agent_env_up). */
        char *env_pods = sw_xasprintf("SLIPWAY_POD_CIDR=127.%d.0.0/16", 180 + (int)(getpid() % 70));
        const char *env[13] = {env_data, env_reg, env_pods, "SLIPWAY_LOG_LEVEL=info", NULL};
        char *argv[] = {(char *)t_slipway(),     "node",   "--kubeconfig",
                        t_agent.orch.kubeconfig, "--name", (char *)name,
                        "--backoff-ms",          "500",    NULL};
        pid_t pid;

        for (size_t i = 0, n = 4; i < 8 && t_agent.extra_env[i]; i++)
                env[n++] = t_agent.extra_env[i];
        pid = t_spawn_extra(argv, env, log_path);

        free(env_pods);
        free(env_data);
        free(env_reg);
        return pid;
}

json_t *t_agent_get(const char *path)
{
        json_t *o = NULL;
        struct sw_err err = SW_ERR_INIT;

        if (orch_kube_get(&o, t_agent.kube, path, &err) != 0)
                return NULL;
        return o;
}

json_t *t_agent_get_pod(const char *name)
{
        char *path = sw_xasprintf("/api/v1/namespaces/default/pods/%s", name);
        json_t *o = t_agent_get(path);

        free(path);
        return o;
}

const json_t *t_agent_ctr_status(const json_t *pod)
{
        return json_array_get(json_object_get(json_object_get(pod, "status"), "containerStatuses"),
                              0);
}

bool t_agent_pod_ready(const json_t *pod)
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

const char *t_agent_phase(const json_t *pod)
{
        return sw_json_str(json_object_get(pod, "status"), "phase", "");
}

const char *t_agent_waiting_reason(const json_t *pod)
{
        return sw_json_str(
                json_object_get(json_object_get(t_agent_ctr_status(pod), "state"), "waiting"),
                "reason", "");
}

/* Poll the pod until `pred` holds (returns it) or timeout (NULL; last state printed). */
json_t *t_agent_wait_pod(const char *name, bool (*pred)(const json_t *), int64_t timeout_ms)
{
        int64_t until = sw_mono_ms() + timeout_ms;
        json_t *pod = NULL;

        for (;;) {
                json_decref(pod);
                pod = t_agent_get_pod(name);
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

bool t_agent_create_pod(const char *yaml_json)
{
        json_t *obj = NULL, *res = NULL;
        struct sw_err err = SW_ERR_INIT;
        int rc;

        obj = json_loads(yaml_json, 0, NULL);
        if (!obj) {
                fprintf(stderr, "bad pod json\n");
                return false;
        }
        json_object_set_new(json_object_get(obj, "spec"), "nodeName", json_string(T_AGENT_NODE));
        rc = orch_kube_request(&res, NULL, t_agent.kube, "POST", "/api/v1/namespaces/default/pods",
                               NULL, obj, &err);
        if (rc)
                fprintf(stderr, "create pod: %s\n", err.msg);
        json_decref(obj);
        json_decref(res);
        return rc == 0;
}

void t_agent_delete_pod(const char *name)
{
        char *path = sw_xasprintf("/api/v1/namespaces/default/pods/%s", name);
        struct sw_err err = SW_ERR_INIT;

        orch_kube_delete(t_agent.kube, path, NULL, &err);
        free(path);
}

bool t_agent_wait_gone(const char *name, int64_t timeout_ms)
{
        int64_t until = sw_mono_ms() + timeout_ms;

        while (sw_mono_ms() < until) {
                json_t *pod = t_agent_get_pod(name);
                if (!pod)
                        return true;
                json_decref(pod);
                sw_sleep_ms(200);
        }
        return false;
}

int t_agent_host_port(const json_t *pod, const char *cport)
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
char *t_agent_http_get_path(int port, const char *path)
{
        return t_agent_http_get_at("127.0.0.1", port, path);
}

char *t_agent_http_get_at(const char *ip, int port, const char *path)
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
        if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
                close(fd);
                free(buf);
                free(req);
                return NULL;
        }
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

char *t_agent_http_get(int port)
{
        return t_agent_http_get_path(port, "/");
}

/* The agent's container log endpoint, from the Node's daemonEndpoints. */
char *t_agent_logs(const char *pod, const char *query)
{
        json_t *node = t_agent_get("/api/v1/nodes/" T_AGENT_NODE);
        int port = (int)sw_json_int(
                json_object_get(json_object_get(json_object_get(node, "status"), "daemonEndpoints"),
                                "kubeletEndpoint"),
                "Port", 0);
        char *path = sw_xasprintf("/containerLogs/default/%s/c%s", pod, query);
        char *out = port > 0 ? t_agent_http_get_path(port, path) : NULL;

        json_decref(node);
        free(path);
        return out;
}

char *t_agent_runc_root(void)
{
        return sw_xasprintf("%s/node/%s/runc", t_agent.data_dir, T_AGENT_NODE);
}

int t_agent_ctr_pid(const json_t *pod)
{
        const char *cid = sw_json_str(t_agent_ctr_status(pod), "containerID", "runc://");
        char *root = t_agent_runc_root();
        struct step_rt_state st = {0};
        struct sw_err err = SW_ERR_INIT;
        int pid = step_rt_state(&st, "runc", root, cid + 7, &err) == 0 ? st.pid : -1;

        free(root);
        return pid;
}

bool t_agent_node_ready(void)
{
        json_t *node = t_agent_get("/api/v1/nodes/" T_AGENT_NODE);
        const json_t *c =
                json_array_get(json_object_get(json_object_get(node, "status"), "conditions"), 0);
        bool ok = node && !strcmp(sw_json_str(c, "type", ""), "Ready") &&
                  !strcmp(sw_json_str(c, "status", ""), "True") &&
                  json_object_get(c, "lastHeartbeatTime");

        json_decref(node);
        return ok;
}

bool t_agent_running_ready(const json_t *pod)
{
        return !strcmp(t_agent_phase(pod), "Running") && t_agent_pod_ready(pod);
}

bool t_agent_succeeded(const json_t *pod)
{
        return !strcmp(t_agent_phase(pod), "Succeeded");
}

bool t_agent_create_obj(const char *path, const char *text)
{
        json_t *obj = json_loads(text, 0, NULL);
        struct sw_err err = SW_ERR_INIT;
        int rc = obj ? orch_kube_request(NULL, NULL, t_agent.kube, "POST", path, NULL, obj, &err)
                     : -1;

        if (rc)
                fprintf(stderr, "create %s: %s\n", path, err.msg);
        json_decref(obj);
        return rc == 0;
}

bool t_agent_ended(const json_t *pod)
{
        return !strcmp(t_agent_phase(pod), "Succeeded") || !strcmp(t_agent_phase(pod), "Failed");
}

/* Poll the pod's log until it holds `what` (true) or timeout. */
bool t_agent_log_shows(const char *pod, const char *what, int64_t timeout_ms)
{
        int64_t until = sw_mono_ms() + timeout_ms;

        while (sw_mono_ms() < until) {
                char *out = t_agent_logs(pod, "");
                bool ok = out && strstr(out, what);
                free(out);
                if (ok)
                        return true;
                sw_sleep_ms(100);
        }
        return false;
}

/* SIGTERM ends the agent; under ASan its log must hold no sanitizer report (leaks included). */
void t_agent_stop_checked(void)
{
        char *log = NULL;
        struct sw_err err = SW_ERR_INIT;

        if (t_agent.agent_pid <= 0)
                return;
        CHECK_INT(kill(t_agent.agent_pid, SIGTERM), 0);
        CHECK_INT(t_wait(t_agent.agent_pid, 20000), 0);
        t_agent.agent_pid = -1;
        CHECK_OK(sw_read_file(&log, NULL, t_agent.agent_log, 64 << 20, &err), &err);
        CHECK(log && !strstr(log, "Sanitizer") && !strstr(log, "runtime error"));
        free(log);
}

/* Whatever a failed test left: runc containers and mounts under our directory. */
void t_agent_cleanup(void)
{
        char *root = t_agent_runc_root(), *mi = NULL, *save = NULL;
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

struct t_agent_env t_agent = {.agent_pid = -1};

bool t_agent_env_up(const char *name)
{
        t_agent.data_dir = sw_xasprintf("%s/agent-data", t_tmpdir());
        t_agent.agent_log = sw_xasprintf("%s/agent.log", t_tmpdir());
        /*
         * ClusterIPs and pod IPs of its own (see t_agent_start_agent): the
         * node agents of tests running at once all serve on this machine's
         * loopback.
         */
        snprintf(t_agent.service_cidr, sizeof(t_agent.service_cidr), "127.%d.0.0/16",
                 78 + (int)(getpid() % 100));
        t_agent.orch.service_cidr = t_agent.service_cidr;
        if (!t_orch_start(&t_agent.orch, name))
                return false;
        t_agent.reg = t_registry_start(T_REG_OPEN);
        return t_agent.reg && t_agent_make_image() &&
               orch_kube_from_kubeconfig(&t_agent.kube, t_agent.orch.kubeconfig, NULL,
                                         &(struct sw_err)SW_ERR_INIT) == 0;
}

void t_agent_env_down(void)
{
        char *log = NULL;
        size_t len = 0;
        struct sw_err err = SW_ERR_INIT;

        t_stop(t_agent.agent_pid);
        t_agent.agent_pid = -1;
        if (t_agent.data_dir)
                t_agent_cleanup();
        orch_kube_free(t_agent.kube);
        t_registry_stop(t_agent.reg);
        if (t_agent.orch.dir)
                t_orch_stop(&t_agent.orch);
        if (t_agent.agent_log && sw_read_file(&log, &len, t_agent.agent_log, 64 << 20, &err) == 0)
                fprintf(stderr, "---- agent log (tail) ----\n%s\n",
                        len > 6000 ? log + len - 6000 : log);
        free(log);
        free(t_agent.data_dir);
        free(t_agent.agent_log);
}

void t_agent_test_node_registers(void)
{
        int64_t until = sw_mono_ms() + 15000;
        json_t *node, *lease;

        t_agent.agent_pid = t_agent_start_agent();
        CHECK(t_agent.agent_pid > 0);
        while (!t_agent_node_ready() && sw_mono_ms() < until)
                sw_sleep_ms(200);
        CHECK(t_agent_node_ready());
        node = t_agent_get("/api/v1/nodes/" T_AGENT_NODE);
        CHECK(*sw_json_str(json_object_get(json_object_get(node, "status"), "capacity"), "cpu",
                           ""));
        CHECK_STR(sw_json_str(
                          json_array_get(
                                  json_object_get(json_object_get(node, "status"), "addresses"), 0),
                          "address", ""),
                  "127.0.0.1");
        CHECK(*sw_json_str(json_object_get(node, "spec"), "podCIDR", ""));
        /* The Lease follows the Node's first status: give it a moment on a loaded machine. */
        until = sw_mono_ms() + 10000;
        while (!(lease = t_agent_get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/"
                                     "leases/" T_AGENT_NODE)) &&
               sw_mono_ms() < until)
                sw_sleep_ms(200);
        CHECK_STR(sw_json_str(json_object_get(lease, "spec"), "holderIdentity", ""), T_AGENT_NODE);
        json_decref(node);
        json_decref(lease);
}
