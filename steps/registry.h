/*
 * registry.h - OCI distribution registry client (libcurl): push and pull
 * images between an OCI image layout (steps/oci.h) and a registry.
 *
 * Protocol: GET /v2/ to learn the auth scheme; Basic, or Bearer tokens from
 * the challenge's realm/service with pull, push and cross-repository mount
 * scopes (cached until they expire, 60 s when the token server does not say).
 * Push does nothing when the tag already names the manifest (HEAD), skips
 * blobs the registry has (HEAD), mounts from another repository when asked
 * (201; a 202 falls back to an upload), uploads small blobs in one PUT and
 * large ones in PATCH requests (the whole blob, or chunks) that resume from
 * the registry's Range after a failure, config last, then PUTs the manifest
 * by tag. Pull fetches a manifest by tag or digest (choosing linux/amd64 from
 * an index) and streams blobs into the layout, verifying digests.
 * Independent blobs move in parallel on one curl multi handle. 502/503/504/
 * 429 and connection failures are retried with exponential backoff; other
 * 4xx answers fail at once with the registry's own message.
 *
 * Ownership: step_registry_new() returns a client owned by the caller, freed
 * with step_registry_free() (accepts NULL); the password and tokens are wiped
 * then. Option strings are copied. Secrets never reach error messages.
 * Threads: one thread at a time per client; curl_global_init() must have run.
 */
#ifndef SW_STEPS_REGISTRY_H
#define SW_STEPS_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "common/digest.h"
#include "common/err.h"

struct sw_config;
struct step_oci_layout;
struct step_oci_desc;
struct step_registry;

#define STEP_REGISTRY_HOST_MAX 256
#define STEP_REGISTRY_REPO_MAX 256
#define STEP_REGISTRY_TAG_MAX 129

/* "host[:port]/repo/path[:tag][@sha256:...]", split. */
struct step_registry_ref {
        char host[STEP_REGISTRY_HOST_MAX];
        char repo[STEP_REGISTRY_REPO_MAX];
        char tag[STEP_REGISTRY_TAG_MAX]; /* "" when only a digest was given */
        char digest[SW_DIGEST_STR_LEN];  /* "" unless "@sha256:..." was given */
};

/*
 * Parse an image reference. A first component without '.' or ':' (and not
 * "localhost") is a repository path on `default_host`. A missing tag and
 * digest means tag "latest". SW_EINVAL names what is wrong.
 */
int step_registry_ref_parse(struct step_registry_ref *out, const char *ref,
                            const char *default_host, struct sw_err *err);

/* What happened to one blob, reported to the progress callback. */
enum step_registry_blob_result {
        STEP_REGISTRY_UPLOADED,   /* sent to the registry */
        STEP_REGISTRY_EXISTED,    /* the registry had it (HEAD) */
        STEP_REGISTRY_MOUNTED,    /* mounted from another repository */
        STEP_REGISTRY_DOWNLOADED, /* fetched into the layout */
        STEP_REGISTRY_PRESENT,    /* the layout had it already */
};

struct step_registry_progress {
        const char *digest;
        const char *what; /* "config", "layer", "manifest" */
        int64_t size;
        int64_t elapsed_ms;
        enum step_registry_blob_result result;
};

typedef void (*step_registry_progress_fn)(void *arg, const struct step_registry_progress *p);
/* Called after each chunk of a chunked upload the registry accepted: `done` of `total` bytes. */
typedef void (*step_registry_chunk_fn)(void *arg, const char *digest, int64_t done, int64_t total);

struct step_registry_options {
        const char *host;           /* "127.0.0.1:5000" or "harbor.example.com" */
        const char *user;           /* NULL: from docker_config, or anonymous */
        const char *password;       /* secret */
        const char *docker_config;  /* a Docker config.json with `auths` (may be NULL) */
        const char *insecure;       /* "127.0.0.1:*,localhost:*": hosts reached over plain HTTP */
        int max_parallel;           /* concurrent blob transfers; 0 means 6 */
        int64_t chunk_bytes;        /* blobs larger than this go in PATCH chunks; 0: 32 MiB */
        int max_attempts;           /* per request on transient failures; 0 means 8 */
        int64_t backoff_ms;         /* first retry delay, doubled each time; 0 means 200 */
        int64_t connect_timeout_ms; /* 0 means 5000 */
        step_registry_progress_fn progress; /* per finished blob; may be NULL */
        step_registry_chunk_fn chunk_done;  /* per accepted chunk; may be NULL */
        void *progress_arg;                 /* passed to both */
};

#define STEP_REGISTRY_OPTIONS_INIT                                                                 \
        {                                                                                          \
                0                                                                                  \
        }

/*
 * Fill options from the configuration: the docker config and insecure list,
 * and SLIPWAY_REGISTRY_USER/PASSWORD only when `host` is SLIPWAY_REGISTRY.
 * The strings stay owned by `cfg`.
 */
void step_registry_options_from_config(struct step_registry_options *o, const struct sw_config *cfg,
                                       const char *host);

int step_registry_new(struct step_registry **out, const struct step_registry_options *opts,
                      struct sw_err *err);
void step_registry_free(struct step_registry *r);

/*
 * GET /v2/ and, when the registry asks for it, check the credentials.
 * SW_EAUTH names the registry and the variables to set; SW_EUNAVAIL after
 * the retries when it cannot be reached.
 */
int step_registry_ping(struct step_registry *r, struct sw_err *err);

/*
 * Push the image named `layout_ref` in layout `l` (NULL: the layout's only
 * image) to `repo` with tag `tag`. `mount_from` (may be NULL) is a repository
 * of the same registry to mount missing blobs from. The manifest is sent as
 * stored, with its own media type (OCI or Docker v2), so its digest is kept;
 * digest_out (may be NULL) gets it. Idempotent.
 */
int step_registry_push(char *digest_out, struct step_registry *r, struct step_oci_layout *l,
                       const char *layout_ref, const char *repo, const char *tag,
                       const char *mount_from, struct sw_err *err);

/*
 * Pull `repo` at `reference` (a tag or "sha256:...") into layout `l` and name
 * it `layout_ref` in its index.json (NULL: an unnamed entry). From an index,
 * the linux/amd64 manifest is taken. Blobs are verified while streamed and
 * published together once all are verified; on any failure no blob of this
 * pull is added and index.json is unchanged. *out (may be NULL) gets the
 * manifest descriptor.
 * SW_ETOOBIG for manifests over 4 MiB, SW_EPROTO for unknown media types,
 * SW_ECORRUPT for digest mismatches.
 */
int step_registry_pull(struct step_oci_desc *out, struct step_registry *r, const char *repo,
                       const char *reference, struct step_oci_layout *l, const char *layout_ref,
                       struct sw_err *err);

/* ---- pieces exported for tests ---- */

/* A parsed WWW-Authenticate challenge. */
struct step_registry_challenge {
        char scheme[16]; /* "Basic" or "Bearer" */
        char *realm;     /* NULL when absent; all malloc'ed */
        char *service;
        char *scope;
        char *error;
};

/*
 * Parse one WWW-Authenticate header value: a scheme followed by
 * comma-separated auth-params whose values are tokens or quoted strings
 * (with backslash escapes). SW_EPROTO when malformed. Release with
 * step_registry_challenge_release().
 */
int step_registry_challenge_parse(struct step_registry_challenge *out, const char *header,
                                  struct sw_err *err);
void step_registry_challenge_release(struct step_registry_challenge *c);

/*
 * Look `host` up in the `auths` of a Docker config.json (keys "host",
 * "https://host", "http://host", optionally with a path). *user_out and
 * *password_out are malloc'ed (wipe the password). SW_ENOTFOUND when the file
 * has no entry for the host; SW_EINVAL for a bad `auth` value.
 */
int step_registry_docker_auth(char **user_out, char **password_out, const char *config_path,
                              const char *host, struct sw_err *err);

/* True when `host` matches an entry of the comma-separated `list` ('*' matches any port). */
bool step_registry_host_insecure(const char *list, const char *host);

/* The `slipway push` and `slipway pull` commands (engine/main.c). */
int step_registry_cmd_push(int argc, char **argv, const struct sw_config *cfg);
int step_registry_cmd_pull(int argc, char **argv, const struct sw_config *cfg);

#endif /* SW_STEPS_REGISTRY_H */
