/*
 * kube.h - a Kubernetes API client on libcurl and jansson.
 *
 * How every part of slipway outside the API server talks to an
 * orchestrator: the deploy step, the ingress controller, the node agent,
 * the controllers. It speaks plain Kubernetes REST, so it works the same
 * against the included core and a real cluster (a kubeconfig with server,
 * CA, and a token or a client certificate).
 *
 * Errors: 0 or a negative SW_E* code. A Kubernetes Status body becomes the
 * message ("deployments.apps \"web\" not found"); 404 is SW_ENOTFOUND, 409
 * SW_ECONFLICT, 401 SW_EAUTH, 403 SW_EPERM, 400/422 SW_EINVAL, 410
 * SW_ECONFLICT with "expired" in the message, 429/5xx and connection
 * failures SW_EUNAVAIL (transient).
 *
 * Ownership: orch_kube_new() and orch_kube_from_kubeconfig() return a client
 * owned by the caller, freed with orch_kube_free() (accepts NULL); the token
 * and key material are wiped then. JSON results are new references.
 * Threads: one thread at a time per client (it owns one CURL handle).
 */
#ifndef SW_ORCH_CLIENT_KUBE_H
#define SW_ORCH_CLIENT_KUBE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"

struct orch_kube;

struct orch_kube_options {
        const char *server;   /* "https://127.0.0.1:6443" */
        const char *token;    /* bearer token, or NULL */
        const char *ca_pem;   /* CA certificate(s) in PEM, or NULL for the system's */
        const char *cert_pem; /* client certificate in PEM, or NULL */
        const char *key_pem;  /* client key in PEM, or NULL */
        bool insecure;        /* skip TLS verification (insecure-skip-tls-verify) */
        int64_t timeout_ms;   /* per request, except watches; 0 means 30000 */
};

int orch_kube_new(struct orch_kube **out, const struct orch_kube_options *opts, struct sw_err *err);

/*
 * An API server in this process (`slipway serve`, the benchmarks): its
 * handlers called directly, with no socket, no HTTP and no JSON text in
 * between. `request` runs one request (path with its query) and returns 0
 * with the HTTP status in *status and the reply in *out (a new reference,
 * or NULL), or a negative SW_E* when it could not run at all. `watch`
 * streams the events of a watch request (path with its query) to `fn`
 * until `fn` returns non-zero or the watch ends; a refused watch or an
 * ERROR event gives its status in *status and the Status object in *out.
 * The objects passed to `fn` are the callee's, valid during the call, and
 * may be kept with json_incref() but never modified.
 */
struct orch_kube_local {
        /* `give`: the body is handed over (the callee keeps or frees it) */
        int (*request)(void *ctx, long *status, json_t **out, const char *method, const char *path,
                       const char *content_type, json_t *body, bool give, struct sw_err *err);
        int (*watch)(void *ctx, long *status, json_t **out, const char *path,
                     int (*fn)(void *arg, const char *type, const json_t *obj), void *arg,
                     struct sw_err *err);
        /* orch_kube_hold() and orch_kube_release(); either may be NULL */
        void (*hold)(void *ctx);
        int (*release)(void *ctx, struct sw_err *err);
        void *ctx;
};

/* A client on an in-process API server; `local` is copied. Never fails. */
void orch_kube_new_local(struct orch_kube **out, const struct orch_kube_local *local);
/* From a kubeconfig file; `context` NULL means its current-context. */
int orch_kube_from_kubeconfig(struct orch_kube **out, const char *path, const char *context,
                              struct sw_err *err);
void orch_kube_free(struct orch_kube *c);
const char *orch_kube_server(const struct orch_kube *c);

/*
 * The REST path of an object or a collection: `name` NULL gives the
 * collection, `ns` NULL a cluster-wide one. Kinds not known to slipway are
 * SW_EINVAL. *out is malloc'ed.
 */
int orch_kube_path(char **out, const char *api_version, const char *kind, const char *ns,
                   const char *name, struct sw_err *err);

/*
 * One request. `body` may be NULL; `content_type` defaults to
 * application/json. *out (may be NULL) gets the decoded JSON reply of a
 * 2xx answer (JSON null for an empty one); *status_out (may be NULL) the
 * HTTP status.
 */
/*
 * The same, handing `body` over: an API server in this process keeps the
 * object itself instead of copying it (a create's body becomes the stored
 * object). The caller's reference is taken in every case.
 */
int orch_kube_request_give(json_t **out, long *status_out, struct orch_kube *c, const char *method,
                           const char *path, const char *content_type, json_t *body,
                           struct sw_err *err);
int orch_kube_request(json_t **out, long *status_out, struct orch_kube *c, const char *method,
                      const char *path, const char *content_type, const json_t *body,
                      struct sw_err *err);
/*
 * Group the writes this thread makes next: an API server in this process
 * commits them together (and with other threads' writes) instead of one
 * commit per write; a write's reply then comes once it is staged, and the
 * writes are durable and visible to watches only when orch_kube_release()
 * returns 0. Nothing is held for a server over HTTP, and release returns 0.
 * Between the two, the thread must not wait for another thread's write.
 */
void orch_kube_hold(struct orch_kube *c);
int orch_kube_release(struct orch_kube *c, struct sw_err *err);
/* A plain-text GET (pods/log). *out is malloc'ed. */
int orch_kube_get_text(char **out, struct orch_kube *c, const char *path, struct sw_err *err);

int orch_kube_get(json_t **out, struct orch_kube *c, const char *path, struct sw_err *err);
/*
 * Server-side apply of one object (PATCH application/apply-patch+yaml,
 * fieldManager, force): creates it when absent, idempotent. *out (may be
 * NULL) gets the object as stored.
 */
int orch_kube_apply(json_t **out, struct orch_kube *c, const json_t *obj, const char *field_manager,
                    bool force, struct sw_err *err);
/* DELETE with a propagationPolicy (NULL: the server's default); an absent object is SW_ENOTFOUND. */
int orch_kube_delete(struct orch_kube *c, const char *path, const char *propagation,
                     struct sw_err *err);

/*
 * Watch a collection: GET path?watch=true&resourceVersion=RV&allowWatchBookmarks=true
 * (plus `query`, e.g. "labelSelector=..."), calling `fn` for each event
 * (type "ADDED", "MODIFIED", "DELETED", "BOOKMARK" or "ERROR", and the
 * object) until `fn` returns non-zero, the server closes the stream, or
 * timeout_ms passes. *rv_out (may be NULL) gets the last resourceVersion
 * seen, to resume from. A compacted resourceVersion is SW_ECONFLICT
 * ("expired"): list again.
 */
int orch_kube_watch(char **rv_out, struct orch_kube *c, const char *path, const char *query,
                    const char *resource_version, int64_t timeout_ms,
                    int (*fn)(void *arg, const char *type, const json_t *obj), void *arg,
                    struct sw_err *err);

#endif /* SW_ORCH_CLIENT_KUBE_H */
