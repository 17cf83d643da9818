/*
 * agent_env.h - the node agent's test environment: the real API server,
 * an open docker-registry holding a busybox image made from Debian's
 * busybox-static (FROM scratch: /bin/busybox and applet links), and
 * `slipway node` as a child process, plus helpers to create pods bound to
 * the node and watch their status, reach published ports and read
 * container logs. Used by the tests under tests/integration/agent/.
 *
 * Ownership: one environment per test process (t_agent);
 * t_agent_env_down() stops the agent, removes leftover runc containers and
 * mounts under the test's directory, and stops the servers by PID.
 */
#ifndef SW_TEST_AGENT_ENV_H
#define SW_TEST_AGENT_ENV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "tests/harness/orch.h"

#define T_AGENT_NODE "node-a"

struct orch_kube;
struct t_registry;

struct t_agent_env {
        struct t_orch orch;
        struct t_registry *reg;
        struct orch_kube *kube;
        pid_t agent_pid;
        char *data_dir, *agent_log;
        char image[256];         /* "127.0.0.1:PORT/test/busybox:1" */
        char missing_image[256]; /* a reference the registry does not have */
        char service_cidr[32];   /* the API server's SLIPWAY_SERVICE_CIDR, per test process */
        /* More "SLIPWAY_X=v" settings for the agent (NULL-terminated), set before it starts. */
        const char *extra_env[8];
};

extern struct t_agent_env t_agent;

/* Start the servers and push the image; false (message printed) on failure. */
bool t_agent_env_up(const char *name);
void t_agent_env_down(void);

/* Build the busybox image and push it to the registry (part of t_agent_env_up). */
bool t_agent_make_image(void);
/* Start `slipway node` (backoff 500 ms) with its log in t_agent.agent_log; its PID. */
pid_t t_agent_start_agent(void);
/* The same for another node `name`, its log in `log_path`. */
pid_t t_agent_start_node(const char *name, const char *log_path);
/* GETs through the API client: a new reference or NULL. */
json_t *t_agent_get(const char *path);
json_t *t_agent_get_pod(const char *name);
const json_t *t_agent_ctr_status(const json_t *pod);
bool t_agent_pod_ready(const json_t *pod);
const char *t_agent_phase(const json_t *pod);
const char *t_agent_waiting_reason(const json_t *pod);
/* Poll the pod until `pred` holds (returns it) or timeout (NULL; status printed). */
json_t *t_agent_wait_pod(const char *name, bool (*pred)(const json_t *), int64_t timeout_ms);
/* Create a pod in "default" from JSON, bound to the node (spec.nodeName). */
bool t_agent_create_pod(const char *yaml_json);
void t_agent_delete_pod(const char *name);
bool t_agent_wait_gone(const char *name, int64_t timeout_ms);
/* The host port of `cport` from the pod's slipway.dev/ports annotation; 0 when absent. */
int t_agent_host_port(const json_t *pod, const char *cport);
/* GET over plain HTTP/1.0 on 127.0.0.1:port; the whole answer (caller frees) or NULL. */
char *t_agent_http_get_path(int port, const char *path);
char *t_agent_http_get(int port);
/* The same on ip:port (a pod IP or a ClusterIP, in the host's namespace). */
char *t_agent_http_get_at(const char *ip, int port, const char *path);
/* Container "c"'s log from the agent's endpoint (the Node's kubelet port), HTTP answer. */
char *t_agent_logs(const char *pod, const char *query);
char *t_agent_runc_root(void);
/* The pid of the pod's first container, from runc state; -1 when none. */
int t_agent_ctr_pid(const json_t *pod);
bool t_agent_node_ready(void);

/*
 * The first test of each agent test file: start the agent and check the
 * Node it registers (capacity, address, podCIDR) and its Lease.
 */
void t_agent_test_node_registers(void);
bool t_agent_running_ready(const json_t *pod);
bool t_agent_succeeded(const json_t *pod);
bool t_agent_create_obj(const char *path, const char *text);
bool t_agent_ended(const json_t *pod);
bool t_agent_log_shows(const char *pod, const char *what, int64_t timeout_ms);
/* SIGTERM the agent: it must exit 0 with no sanitizer report in its log (CHECKs). */
void t_agent_stop_checked(void);
/* Remove leftover runc containers of the node and mounts under the test directory. */
void t_agent_cleanup(void);

#endif /* SW_TEST_AGENT_ENV_H */
