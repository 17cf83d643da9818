/*
 * config.h - every SLIPWAY_* environment variable, parsed once and strictly.
 *
 * SW_CONFIG_VARS is the one table of settings: the struct, the parser, the
 * `slipway config` listing and the README table all come from it. Only
 * config.c reads the environment. A value that does not parse, a number out
 * of range, or an unknown SLIPWAY_* name (a typo would otherwise be silently
 * ignored) fails with the variable's name in the message.
 *
 * Ownership: sw_config_load() fills a caller-owned struct; sw_config_release()
 * frees its strings and wipes the secret ones. Threads: load once in main()
 * before threads start, then treat as read-only.
 */
#ifndef SW_CONFIG_H
#define SW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

enum sw_config_type {
        SW_CFG_STR,  /* string; `choices` ("A|B") restricts it when non-NULL */
        SW_CFG_INT,  /* decimal integer in [min, max] */
        SW_CFG_BOOL, /* 1/0, true/false, yes/no, on/off */
};

/*
 * X(field, env, type, default, min, max, choices, secret, help)
 * A default of NULL means "unset"; SLIPWAY_DATA's default is computed.
 */
#define SW_CONFIG_VARS(X)                                                                          \
        X(data, "SLIPWAY_DATA", SW_CFG_STR, NULL, 0, 0, NULL, false,                               \
          "data directory: the database, caches and scratch space (default /var/lib/slipway "      \
          "for root, else ~/.local/share/slipway)")                                                \
        X(workers, "SLIPWAY_WORKERS", SW_CFG_INT, "2", 1, 256, NULL, false,                        \
          "jobs one worker process (or `slipway serve`) runs at once")                             \
        X(lease_ms, "SLIPWAY_LEASE_MS", SW_CFG_INT, "30000", 500, 3600000, NULL, false,            \
          "how long a claimed job stays leased without a heartbeat before another worker "         \
          "may take it over")                                                                      \
        X(max_attempts, "SLIPWAY_MAX_ATTEMPTS", SW_CFG_INT, "3", 1, 100, NULL, false,              \
          "attempts per job before a transient failure becomes final")                             \
        X(backoff_ms, "SLIPWAY_BACKOFF_MS", SW_CFG_INT, "2000", 1, 3600000, NULL, false,           \
          "base of the exponential retry backoff (with jitter), doubled per attempt")              \
        X(poll_ms, "SLIPWAY_POLL_MS", SW_CFG_INT, "200", 1, 60000, NULL, false,                    \
          "how often an idle worker looks for new jobs")                                           \
        X(shutdown_grace_ms, "SLIPWAY_SHUTDOWN_GRACE_MS", SW_CFG_INT, "30000", 0, 3600000, NULL,   \
          false,                                                                                   \
          "on SIGTERM/SIGINT, how long running steps may finish before their jobs are "            \
          "released to other workers")                                                             \
        X(synchronous, "SLIPWAY_SYNCHRONOUS", SW_CFG_STR, "NORMAL", 0, 0, "NORMAL|FULL", false,    \
          "SQLite synchronous mode; NORMAL survives a crashed process, FULL also a power "         \
          "loss")                                                                                  \
        X(job_log_max_bytes, "SLIPWAY_JOB_LOG_MAX_BYTES", SW_CFG_INT, "8388608", 4096, 1073741824, \
          NULL, false, "cap on the stored log of one job; later lines are dropped with a marker")  \
        X(clone_max_bytes, "SLIPWAY_CLONE_MAX_BYTES", SW_CFG_INT, "2147483648", 65536,             \
          1099511627776, NULL, false,                                                              \
          "cap on the bytes one clone or fetch may receive (submodules included)")                 \
        X(build_context_max_bytes, "SLIPWAY_BUILD_CONTEXT_MAX_BYTES", SW_CFG_INT, "2147483648",    \
          1024, 1099511627776, NULL, false,                                                        \
          "cap on the bytes of a build context (after .dockerignore); a bigger one fails the "     \
          "build")                                                                                 \
        X(clone_timeout_ms, "SLIPWAY_CLONE_TIMEOUT_MS", SW_CFG_INT, "600000", 1000, 86400000,      \
          NULL, false, "how long the clone step may take before it fails")                         \
        X(git_credentials, "SLIPWAY_GIT_CREDENTIALS", SW_CFG_STR, NULL, 0, 0, NULL, false,         \
          "file of https://USER:PASSWORD@HOST[:PORT] lines (git-credential-store format) "         \
          "used for http(s) clones of that host; passwords are never logged")                      \
        X(git_ssh_key, "SLIPWAY_GIT_SSH_KEY", SW_CFG_STR, NULL, 0, 0, NULL, false,                 \
          "private key file (no passphrase) offered to the host of an ssh:// repository")          \
        X(git_ssh_known_hosts, "SLIPWAY_GIT_SSH_KNOWN_HOSTS", SW_CFG_STR, NULL, 0, 0, NULL, false, \
          "known_hosts file that must list the host key of every ssh:// server cloned from")       \
        X(log_level, "SLIPWAY_LOG_LEVEL", SW_CFG_STR, "info", 0, 0, "debug|info|warn|error",       \
          false, "least severe event written to the JSON log on stdout")                           \
        X(registry, "SLIPWAY_REGISTRY", SW_CFG_STR, "127.0.0.1:5000", 0, 0, NULL, false,           \
          "registry that built images are pushed to")                                              \
        X(registry_user, "SLIPWAY_REGISTRY_USER", SW_CFG_STR, NULL, 0, 0, NULL, false,             \
          "registry user name (Basic auth, or for the Bearer token service)")                      \
        X(registry_password, "SLIPWAY_REGISTRY_PASSWORD", SW_CFG_STR, NULL, 0, 0, NULL, true,      \
          "registry password or robot token; never logged")                                        \
        X(docker_config, "SLIPWAY_DOCKER_CONFIG", SW_CFG_STR, NULL, 0, 0, NULL, false,             \
          "path of a Docker config.json whose `auths` give registry credentials")                  \
        X(insecure_registries, "SLIPWAY_INSECURE_REGISTRIES", SW_CFG_STR,                          \
          "127.0.0.1:*,localhost:*", 0, 0, NULL, false,                                            \
          "comma-separated registries (host:port, '*' for any port) reached over plain HTTP")      \
        X(domain, "SLIPWAY_DOMAIN", SW_CFG_STR, "slipway.local", 0, 0, NULL, false,                \
          "apps without --host get <name>.<namespace>.<domain>")                                   \
        X(templates, "SLIPWAY_TEMPLATES", SW_CFG_STR, NULL, 0, 0, NULL, false,                     \
          "directory of Kubernetes templates that replace the built-in ones by file name")         \
        X(ingress_class, "SLIPWAY_INGRESS_CLASS", SW_CFG_STR, "slipway", 0, 0, NULL, false,        \
          "the IngressClass of the Ingress objects slipway renders and routes")                    \
        X(quota_cpu, "SLIPWAY_QUOTA_CPU", SW_CFG_STR, "8", 0, 0, NULL, false,                      \
          "ResourceQuota of an app namespace: cpu requests and limits in all")                     \
        X(quota_memory, "SLIPWAY_QUOTA_MEMORY", SW_CFG_STR, "16Gi", 0, 0, NULL, false,             \
          "ResourceQuota of an app namespace: memory requests and limits in all")                  \
        X(quota_pods, "SLIPWAY_QUOTA_PODS", SW_CFG_STR, "100", 0, 0, NULL, false,                  \
          "ResourceQuota of an app namespace: pods")                                               \
        X(default_cpu, "SLIPWAY_DEFAULT_CPU", SW_CFG_STR, "100m", 0, 0, NULL, false,               \
          "LimitRange: cpu request of a container that states none")                               \
        X(default_memory, "SLIPWAY_DEFAULT_MEMORY", SW_CFG_STR, "128Mi", 0, 0, NULL, false,        \
          "LimitRange: memory request of a container that states none")                            \
        X(default_cpu_limit, "SLIPWAY_DEFAULT_CPU_LIMIT", SW_CFG_STR, "1", 0, 0, NULL, false,      \
          "LimitRange: cpu limit of a container that states none")                                 \
        X(default_memory_limit, "SLIPWAY_DEFAULT_MEMORY_LIMIT", SW_CFG_STR, "512Mi", 0, 0, NULL,   \
          false, "LimitRange: memory limit of a container that states none")                       \
        X(kubeconfig, "SLIPWAY_KUBECONFIG", SW_CFG_STR, NULL, 0, 0, NULL, false,                   \
          "kubeconfig of the cluster apps are deployed to (default: the included "                 \
          "orchestrator's, $SLIPWAY_DATA/kubeconfig)")                                             \
        X(rollout_timeout_ms, "SLIPWAY_ROLLOUT_TIMEOUT_MS", SW_CFG_INT, "300000", 1000, 86400000,  \
          NULL, false, "how long the deploy step waits for a rollout before it fails")             \
        X(auto_rollback, "SLIPWAY_AUTO_ROLLBACK", SW_CFG_BOOL, "false", 0, 0, NULL, false,         \
          "when a rollout fails, apply the app's last good release again (Deployment, Service, "   \
          "Ingress, DNS record) and fail the job naming it")                                       \
        X(runtime, "SLIPWAY_RUNTIME", SW_CFG_STR, "runc", 0, 0, NULL, false,                       \
          "the OCI runtime that runs RUN steps and containers")                                    \
        X(pod_log_max, "SLIPWAY_POD_LOG_MAX", SW_CFG_INT, "10485760", 1024, 1073741824, NULL,      \
          false, "node agent: size in bytes at which a container's log file is rotated")           \
        X(pod_log_files, "SLIPWAY_POD_LOG_FILES", SW_CFG_INT, "5", 2, 100, NULL, false,            \
          "node agent: log files kept per container, the one being written included")              \
        X(image_gc_high, "SLIPWAY_IMAGE_GC_HIGH", SW_CFG_INT, "85", 0, 100, NULL, false,           \
          "node agent: image store disk usage (percent) above which unused images are removed")    \
        X(image_gc_low, "SLIPWAY_IMAGE_GC_LOW", SW_CFG_INT, "80", 0, 100, NULL, false,             \
          "node agent: usage (percent) image garbage collection brings the disk down to")          \
        X(ingress_listen, "SLIPWAY_INGRESS_LISTEN", SW_CFG_STR, "127.0.0.1:8088", 0, 0, NULL,      \
          false, "address:port where the supervised nginx serves the routed apps over HTTP")       \
        X(ingress_tls_listen, "SLIPWAY_INGRESS_TLS_LISTEN", SW_CFG_STR, "127.0.0.1:8443", 0, 0,    \
          NULL, false, "address:port where nginx serves the hosts that have a TLS certificate")    \
        X(nginx, "SLIPWAY_NGINX", SW_CFG_STR, "/usr/sbin/nginx", 0, 0, NULL, false,                \
          "the nginx binary slipway runs and tests configurations with")                           \
        X(pdns_url, "SLIPWAY_PDNS_URL", SW_CFG_STR, NULL, 0, 0, NULL, false,                       \
          "PowerDNS HTTP API (`http://127.0.0.1:8081/api/v1`); unset means the supervised local "  \
          "one")                                                                                   \
        X(pdns_api_key, "SLIPWAY_PDNS_API_KEY", SW_CFG_STR, NULL, 0, 0, NULL, true,                \
          "PowerDNS api-key, sent as X-API-Key; never logged")                                     \
        X(dns_zone, "SLIPWAY_DNS_ZONE", SW_CFG_STR, "slipway.local.", 0, 0, NULL, false,           \
          "PowerDNS zone that app hosts are published in; a host outside it is refused")           \
        X(dns_create_zone, "SLIPWAY_DNS_CREATE_ZONE", SW_CFG_BOOL, "true", 0, 0, NULL, false,      \
          "create SLIPWAY_DNS_ZONE in PowerDNS when it is missing")                                \
        X(dns_owner, "SLIPWAY_DNS_OWNER", SW_CFG_STR, "slipway", 0, 0, NULL, false,                \
          "owner id written in the external-dns style ownership TXT record next to each A "        \
          "record; records of other owners are never changed")                                     \
        X(dns_ttl, "SLIPWAY_DNS_TTL", SW_CFG_INT, "60", 1, 86400, NULL, false,                     \
          "TTL in seconds of the app records")                                                     \
        X(dns_listen, "SLIPWAY_DNS_LISTEN", SW_CFG_STR, "127.0.0.1:5353", 0, 0, NULL, false,       \
          "PowerDNS's DNS address (UDP ip:port), where the dns step checks the answer after an "   \
          "upsert")                                                                                \
        X(edge_ip, "SLIPWAY_EDGE_IP", SW_CFG_STR, "127.0.0.1", 0, 0, NULL, false,                  \
          "IPv4 address of the edge (nginx) that app hosts resolve to")                            \
        X(registry_listen, "SLIPWAY_REGISTRY_LISTEN", SW_CFG_STR, "127.0.0.1:5000", 0, 0, NULL,    \
          false,                                                                                   \
          "where `slipway serve` runs its own docker-registry, when SLIPWAY_REGISTRY is "          \
          "that address")                                                                          \
        X(pdns_api_listen, "SLIPWAY_PDNS_API_LISTEN", SW_CFG_STR, "127.0.0.1:8081", 0, 0, NULL,    \
          false, "where `slipway serve` runs PowerDNS's HTTP API, when SLIPWAY_PDNS_URL is unset") \
        X(kube_listen, "SLIPWAY_KUBE_LISTEN", SW_CFG_STR, "127.0.0.1:6443", 0, 0, NULL, false,     \
          "address of the orchestrator's Kubernetes API server")                                   \
        X(kube_token, "SLIPWAY_KUBE_TOKEN", SW_CFG_STR, NULL, 0, 0, NULL, true,                    \
          "bearer token of the Kubernetes API (default: generated into $SLIPWAY_DATA/kube-token)") \
        X(kube_tls_cert, "SLIPWAY_KUBE_TLS_CERT", SW_CFG_STR, NULL, 0, 0, NULL, false,             \
          "PEM certificate of the Kubernetes API (default: self-signed, generated into "           \
          "$SLIPWAY_DATA/kube-tls.crt)")                                                           \
        X(kube_tls_key, "SLIPWAY_KUBE_TLS_KEY", SW_CFG_STR, NULL, 0, 0, NULL, false,               \
          "PEM private key file of SLIPWAY_KUBE_TLS_CERT")                                         \
        X(service_cidr, "SLIPWAY_SERVICE_CIDR", SW_CFG_STR, "127.77.0.0/16", 0, 0, NULL, false,    \
          "range Service ClusterIPs are allocated from")                                           \
        X(default_toleration_seconds, "SLIPWAY_DEFAULT_TOLERATION_SECONDS", SW_CFG_INT, "300", 0,  \
          31536000, NULL, false,                                                                   \
          "tolerationSeconds of the node.kubernetes.io/not-ready and /unreachable NoExecute "      \
          "tolerations the API server adds to pods that have none; their pods are evicted "        \
          "that long after their node stops heartbeating")                                         \
        X(pod_cidr, "SLIPWAY_POD_CIDR", SW_CFG_STR, "127.1.0.0/16", 0, 0, NULL, false,             \
          "range of pod IPs, inside 127.0.0.0/8; each node agent takes a /24 of it")

#define SW__CFG_CTYPE_SW_CFG_STR char *
#define SW__CFG_CTYPE_SW_CFG_INT int64_t
#define SW__CFG_CTYPE_SW_CFG_BOOL bool

struct sw_config {
#define SW__CFG_FIELD(field, env, type, def, min, max, choices, secret, help)                      \
        SW__CFG_CTYPE_##type field;
        SW_CONFIG_VARS(SW__CFG_FIELD)
#undef SW__CFG_FIELD
};

/* Describes one variable, for listings. */
struct sw_config_var {
        const char *env; /* "SLIPWAY_WORKERS" */
        size_t offset;   /* of the field in struct sw_config */
        enum sw_config_type type;
        const char *def; /* NULL: unset by default */
        int64_t min, max;
        const char *choices;
        bool secret;
        const char *help;
};

/* Parse `envp` (a NULL-terminated "NAME=value" array, normally `environ`). */
int sw_config_load(struct sw_config *cfg, char *const *envp, struct sw_err *err);
void sw_config_release(struct sw_config *cfg);

/* The table, for `slipway config` and documentation; *count_out gets its length. */
const struct sw_config_var *sw_config_vars(int *count_out);
/* The value of variable `i` of the table as text ("" when unset, "<redacted>" for secrets). */
void sw_config_value_fmt(const struct sw_config *cfg, int i, char *out, int size);

#endif /* SW_CONFIG_H */
