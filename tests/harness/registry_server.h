/*
 * registry_server.h - Debian's docker-registry (CNCF distribution) for
 * tests: started on a free 127.0.0.1 port with temporary storage, in one of
 * three auth modes, stopped by PID.
 *
 * T_REG_OPEN: no auth. T_REG_BASIC: htpasswd (bcrypt) with one user.
 * T_REG_TOKEN: `auth: token`, with a token server of the harness (libmicrohttpd
 * on another port) that checks the same user and signs RS256 JWTs with a key
 * whose self-signed certificate is the registry's rootcertbundle. It grants
 * what is asked, except push on repositories under "readonly/".
 *
 * Ownership: t_registry_start() returns a server the caller stops and frees
 * with t_registry_stop() (accepts NULL), which also removes its directory.
 */
#ifndef SW_TEST_REGISTRY_SERVER_H
#define SW_TEST_REGISTRY_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

enum t_reg_mode { T_REG_OPEN, T_REG_BASIC, T_REG_TOKEN };

#define T_REG_USER "slipway"
#define T_REG_PASSWORD "s3cret-passw0rd"

struct t_token_server;

struct t_registry {
        enum t_reg_mode mode;
        pid_t pid;
        int port;
        char host[64]; /* "127.0.0.1:PORT" */
        char *dir;     /* config, storage, logs */
        char *config;  /* path of config.yml */
        struct t_token_server *token;
};

/* Start a registry; returns NULL (and prints why) on failure. */
struct t_registry *t_registry_start(enum t_reg_mode mode);
/* Kill the process (SIGKILL, as a crash) but keep storage and port. */
void t_registry_crash(struct t_registry *reg);
/* Start it again on the same port with the same storage; false on failure. */
bool t_registry_restart(struct t_registry *reg);
void t_registry_stop(struct t_registry *reg);

/* How many tokens the token server has issued (T_REG_TOKEN only). */
int t_token_server_issued(const struct t_token_server *ts);

/* Write a Docker config.json at `path` with an auths entry for `host`. */
bool t_docker_config_write(const char *path, const char *host, const char *user,
                           const char *password);

/* The credentials skopeo needs for `reg` ("user:password"), or NULL for an open registry. */
const char *t_registry_creds(const struct t_registry *reg);

/*
 * The manifest digest of docker://HOST/NAME (NAME "repo:tag") as skopeo sees
 * it, into `digest` (SW_DIGEST_STR_LEN bytes); 0 or -1 (skopeo's output printed).
 */
int t_skopeo_digest(char *digest, const struct t_registry *reg, const char *name);

/*
 * `skopeo copy --preserve-digests SRC DST`, with the registry's credentials
 * for whichever side is docker://; 0 or -1 (skopeo's output printed).
 */
int t_skopeo_copy(const struct t_registry *reg, const char *src, const char *dst);

#endif /* SW_TEST_REGISTRY_SERVER_H */
