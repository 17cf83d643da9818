/*
 * cmd.c - `slipway kube-apiserver` (the API server in the foreground) and
 * `slipway kubeconfig` (a kubeconfig that points kubectl at it).
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "common/base64.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/mem.h"
#include "engine/cli.h"
#include "orchestrator/orchestrator.h"
#include "common/banned.h"

#define TOKEN_FILE "kube-token"

int orch_token_load(char **out, const struct sw_config *cfg, struct sw_err *err)
{
        char *path = NULL, *tok = NULL;
        size_t len = 0;
        int rc;

        if (cfg->kube_token && *cfg->kube_token) {
                *out = sw_xstrdup(cfg->kube_token);
                return 0;
        }
        path = sw_xasprintf("%s/%s", cfg->data, TOKEN_FILE);
        rc = sw_read_file(&tok, &len, path, 4096, err);
        if (rc == SW_ENOTFOUND) {
                unsigned char raw[32];
                sw_err_clear(err);
                if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
                        rc = sw_err_set(err, SW_EIO, "cannot read random bytes for the API token");
                        goto out;
                }
                tok = sw_xmalloc(sizeof(raw) * 2 + 1);
                for (size_t i = 0; i < sizeof(raw); i++)
                        snprintf(tok + i * 2, 3, "%02x", raw[i]);
                sw_wipe(raw, sizeof(raw));
                if ((rc = sw_mkdir_p(cfg->data, 0700, err)) != 0 ||
                    (rc = sw_write_file_atomic(path, tok, strlen(tok), 0600, err)) != 0)
                        goto out;
        } else if (rc) {
                goto out;
        }
        len = strcspn(tok, "\r\n");
        tok[len] = '\0';
        if (len < 16) {
                rc = sw_err_set(err, SW_EINVAL, "API token in '%s' is shorter than 16 characters",
                                path);
                goto out;
        }
        *out = tok;
        tok = NULL;
        rc = 0;
out:
        sw_free_secret(tok);
        free(path);
        return rc;
}

int orch_tls_paths(char **cert_path, char **key_path, const struct sw_config *cfg,
                   struct sw_err *err)
{
        if (cfg->kube_tls_cert || cfg->kube_tls_key) {
                if (!cfg->kube_tls_cert || !cfg->kube_tls_key)
                        return sw_err_set(err, SW_EINVAL,
                                          "SLIPWAY_KUBE_TLS_CERT and SLIPWAY_KUBE_TLS_KEY go "
                                          "together: set both or neither");
                *cert_path = sw_xstrdup(cfg->kube_tls_cert);
                *key_path = sw_xstrdup(cfg->kube_tls_key);
                return 0;
        }
        return orch_tls_ensure(cert_path, key_path, cfg->data, err);
}

static char *default_db(const struct sw_config *cfg)
{
        return sw_xasprintf("%s/orchestrator.db", cfg->data);
}

/* A kubeconfig for `server` (with the CA in base64 and the token); the caller frees (secret). */
static char *kubeconfig_text(const char *server, const char *ca64, const char *token)
{
        return sw_xasprintf("apiVersion: v1\nkind: Config\nclusters:\n- name: slipway\n  cluster:\n"
                            "    server: %s\n    certificate-authority-data: %s\n"
                            "users:\n- name: slipway\n  user:\n    token: %s\n"
                            "contexts:\n- name: slipway\n  context:\n    cluster: slipway\n"
                            "    user: slipway\n    namespace: default\ncurrent-context: slipway\n",
                            server, ca64, token);
}

/*
 * $SLIPWAY_DATA/kubeconfig, for the parts of slipway that reach this API
 * server by default (the deploy step without SLIPWAY_KUBECONFIG). Mode 0600:
 * it holds the token.
 */
int orch_kubeconfig_write(const struct sw_config *cfg, const char *cert_path, uint16_t port,
                          const char *token, struct sw_err *err)
{
        char *ca = NULL, *ca64 = NULL, *server = NULL, *text = NULL, *path = NULL;
        const char *listen = cfg->kube_listen, *colon = strrchr(listen, ':');
        size_t len = 0;
        int rc;

        if ((rc = sw_read_file(&ca, &len, cert_path, 1 << 20, err)) != 0)
                return rc;
        ca64 = sw_base64_encode(ca, len);
        if (!colon || colon == listen || strncmp(listen, "0.0.0.0:", 8) == 0)
                server = sw_xasprintf("https://127.0.0.1:%u", (unsigned)port);
        else
                server = sw_xasprintf("https://%.*s:%u", (int)(colon - listen), listen,
                                      (unsigned)port);
        text = kubeconfig_text(server, ca64, token);
        path = sw_xasprintf("%s/kubeconfig", cfg->data);
        rc = sw_write_file_atomic(path, text, strlen(text), 0600, err);
        free(ca);
        free(ca64);
        free(server);
        sw_free_secret(text);
        free(path);
        return rc;
}

int orch_cmd_apiserver(int argc, char **argv, const struct sw_config *cfg)
{
        static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                             {"listen", required_argument, NULL, 'l'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
        struct orch_api_options ao = ORCH_API_OPTIONS_INIT;
        struct sw_err err = SW_ERR_INIT;
        struct orch_api *api = NULL;
        char *db = NULL, *token = NULL, *cert = NULL, *key = NULL;
        const char *listen = NULL;
        sigset_t set;
        int c, sig;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'h':
                        printf("usage: slipway kube-apiserver [--listen HOST:PORT] [--db FILE]\n\n"
                               "Serve the Kubernetes-compatible API of the orchestrator core in\n"
                               "the foreground until SIGTERM or SIGINT. Objects live in an SQLite\n"
                               "file; clients authenticate with a bearer token (SLIPWAY_KUBE_TOKEN,\n"
                               "or the one kept in $SLIPWAY_DATA/kube-token), over HTTPS with\n"
                               "SLIPWAY_KUBE_TLS_CERT/KEY or a self-signed certificate generated\n"
                               "into $SLIPWAY_DATA (kubectl sends tokens only over TLS).\n"
                               "It writes $SLIPWAY_DATA/kubeconfig (mode 0600) for the rest of\n"
                               "slipway; 'slipway kubeconfig' prints one for kubectl.\n\n"
                               "  --listen HOST:PORT  address (default: SLIPWAY_KUBE_LISTEN)\n"
                               "  --db FILE           object store (default: "
                               "$SLIPWAY_DATA/orchestrator.db)\n");
                        return 0;
                case 'd':
                        free(db);
                        db = sw_xstrdup(optarg);
                        break;
                case 'l':
                        listen = optarg;
                        break;
                default:
                        free(db);
                        return sw_cli_usage_error("kube-apiserver", "unknown option");
                }
        }
        if (optind != argc) {
                free(db);
                return sw_cli_usage_error("kube-apiserver", "unexpected argument '%s'",
                                          argv[optind]);
        }
        if (!db)
                db = default_db(cfg);
        if (sw_mkdir_p(cfg->data, 0700, &err) != 0 || orch_token_load(&token, cfg, &err) != 0 ||
            orch_tls_paths(&cert, &key, cfg, &err) != 0) {
                sw_free_secret(token);
                free(db);
                return sw_cli_fail("kube-apiserver", "%s", err.msg);
        }
        /* Block the stop signals in every thread; this one waits for them. */
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);

        ao.listen = listen ? listen : cfg->kube_listen;
        ao.db_path = db;
        ao.token = token;
        ao.service_cidr = cfg->service_cidr;
        ao.default_toleration_s = cfg->default_toleration_seconds;
        ao.tls_cert_path = cert;
        ao.tls_key_path = key;
        if (orch_api_start(&api, &ao, &err) != 0) {
                sw_free_secret(token);
                free(db);
                free(cert);
                free(key);
                return sw_cli_fail("kube-apiserver", "%s", err.msg);
        }
        if (orch_kubeconfig_write(cfg, cert, orch_api_port(api), token, &err) != 0)
                sw_log(SW_LOG_WARN, "orch_api", "kubeconfig not written", "{s:s}", "error",
                       err.msg);
        sw_log(SW_LOG_INFO, "orch_api", "listening", "{s:s,s:i,s:s,s:b}", "listen", ao.listen,
               "port", (int)orch_api_port(api), "db", db, "tls", true);
        sig = 0;
        while (sigwait(&set, &sig) != 0)
                ;
        sw_log(SW_LOG_INFO, "orch_api", "stopping", "{s:s}", "reason",
               sig == SIGTERM ? "SIGTERM" : "SIGINT");
        orch_api_stop(api);
        sw_free_secret(token);
        free(db);
        free(cert);
        free(key);
        sw_log(SW_LOG_INFO, "orch_api", "stopped", NULL);
        return 0;
}

int orch_cmd_kubeconfig(int argc, char **argv, const struct sw_config *cfg)
{
        static const struct option opts[] = {{"server", required_argument, NULL, 's'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
        struct sw_err err = SW_ERR_INIT;
        char *token = NULL, *server = NULL, *ca = NULL, *ca64 = NULL, *cert = NULL, *key = NULL;
        const char *listen, *colon;
        size_t len = 0;
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'h':
                        printf("usage: slipway kubeconfig [--server URL]\n\n"
                               "Print a kubeconfig for the orchestrator's API server (address\n"
                               "from SLIPWAY_KUBE_LISTEN, token from SLIPWAY_KUBE_TOKEN or\n"
                               "$SLIPWAY_DATA/kube-token), for example:\n\n"
                               "  slipway kubeconfig > ~/.kube/slipway && "
                               "kubectl --kubeconfig ~/.kube/slipway get pods\n\n"
                               "  --server URL  the server address clients use (default: derived "
                               "from SLIPWAY_KUBE_LISTEN)\n");
                        free(server);
                        return 0;
                case 's':
                        free(server);
                        server = sw_xstrdup(optarg);
                        break;
                default:
                        free(server);
                        return sw_cli_usage_error("kubeconfig", "unknown option");
                }
        }
        if (orch_token_load(&token, cfg, &err) != 0) {
                free(server);
                return sw_cli_fail("kubeconfig", "%s", err.msg);
        }
        if (orch_tls_paths(&cert, &key, cfg, &err) != 0 ||
            sw_read_file(&ca, &len, cert, 1 << 20, &err) != 0) {
                free(server);
                free(cert);
                free(key);
                sw_free_secret(token);
                return sw_cli_fail("kubeconfig", "%s", err.msg);
        }
        ca64 = sw_base64_encode(ca, len);
        if (!server) {
                listen = cfg->kube_listen;
                colon = strrchr(listen, ':');
                if (!colon || strncmp(listen, "0.0.0.0:", 8) == 0 || colon == listen)
                        server = sw_xasprintf("https://127.0.0.1%s", colon ? colon : ":6443");
                else
                        server = sw_xasprintf("https://%s", listen);
        }
        {
                char *text = kubeconfig_text(server, ca64, token);
                fputs(text, stdout);
                sw_free_secret(text);
        }
        sw_free_secret(token);
        free(server);
        free(ca);
        free(ca64);
        free(cert);
        free(key);
        return 0;
}
