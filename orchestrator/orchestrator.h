/*
 * orchestrator.h - the Kubernetes-compatible API server of the included
 * orchestrator core, and its commands.
 *
 * orch_api_start() opens the object store and serves the Kubernetes REST
 * API (discovery, CRUD, list, watch, patch, server-side apply, Tables,
 * status/scale/binding subresources) over HTTP, or HTTPS when a certificate
 * is given, on a loopback address by default. Every request but /version
 * and the health checks needs `Authorization: Bearer <token>`.
 *
 * Ownership: the caller owns the server and stops it with orch_api_stop()
 * (accepts NULL), which ends open watches and waits for their threads.
 * Strings in the options are copied; the token is wiped when the server is
 * stopped. Threads: start and stop from one thread; the server runs its
 * own threads (one per connection).
 */
#ifndef SW_ORCHESTRATOR_H
#define SW_ORCHESTRATOR_H

#include <stdint.h>

#include "common/err.h"

struct sw_config;
struct orch_api;
struct orch_kube_local;

struct orch_api_options {
        const char *listen;        /* "127.0.0.1:6443"; port 0 picks a free one */
        const char *db_path;       /* the store's SQLite file */
        const char *token;         /* bearer token clients must present */
        const char *service_cidr;  /* ClusterIP range, "127.77.0.0/16" when NULL */
        const char *tls_cert_path; /* PEM certificate; NULL serves plain HTTP */
        const char *tls_key_path;  /* PEM private key, with tls_cert_path */
        int64_t event_window;      /* watch events kept in memory; 0 means 4096 */
        /* tolerationSeconds of the default not-ready/unreachable tolerations of new pods */
        int64_t default_toleration_s;
};
#define ORCH_API_OPTIONS_INIT                                                                      \
        {                                                                                          \
                NULL, NULL, NULL, NULL, NULL, NULL, 0, 300                                         \
        }

/* Start serving. Returns 0, SW_EINVAL for bad options, SW_EIO when the port is taken. */
int orch_api_start(struct orch_api **out, const struct orch_api_options *opts, struct sw_err *err);
/* The TCP port actually bound. */
uint16_t orch_api_port(const struct orch_api *api);
/*
 * A transport to `api` for clients in this process (orch_kube_new_local):
 * its handlers are called directly, trusted like a loopback client (no
 * token). Valid until orch_api_stop(); watches end when it stops.
 */
void orch_api_local(struct orch_kube_local *out, struct orch_api *api);
void orch_api_stop(struct orch_api *api);

/*
 * The API token: SLIPWAY_KUBE_TOKEN when set, else the contents of
 * $SLIPWAY_DATA/kube-token, created (random, mode 0600) when absent.
 * *out is owned by the caller (sw_free_secret).
 */
int orch_token_load(char **out, const struct sw_config *cfg, struct sw_err *err);

/*
 * The TLS certificate and key: SLIPWAY_KUBE_TLS_CERT/KEY when set, else
 * a self-signed pair for 127.0.0.1 kept in $SLIPWAY_DATA (kube-tls.crt,
 * kube-tls.key), generated when absent (kubectl sends tokens only over
 * TLS). The paths are owned by the caller.
 */
int orch_tls_paths(char **cert_path, char **key_path, const struct sw_config *cfg,
                   struct sw_err *err);
/* The generated pair under `data_dir`; see orch_tls_paths(). */
int orch_tls_ensure(char **cert_path, char **key_path, const char *data_dir, struct sw_err *err);

/*
 * Write $SLIPWAY_DATA/kubeconfig (mode 0600: it holds the token) for the API
 * server on `port` with the CA `cert_path`: how the rest of slipway (the
 * deploy step, the controllers, the node agent) reaches it by default.
 */
int orch_kubeconfig_write(const struct sw_config *cfg, const char *cert_path, uint16_t port,
                          const char *token, struct sw_err *err);

/* `slipway kube-apiserver`: serve the API in the foreground until SIGTERM/SIGINT. */
int orch_cmd_apiserver(int argc, char **argv, const struct sw_config *cfg);
/* `slipway kubeconfig`: print a kubeconfig for this API server. */
int orch_cmd_kubeconfig(int argc, char **argv, const struct sw_config *cfg);

#endif /* SW_ORCHESTRATOR_H */
