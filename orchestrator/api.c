/*
 * api.c - the Kubernetes REST API over libmicrohttpd.
 *
 * Each connection gets its own thread (MHD_USE_THREAD_PER_CONNECTION), so
 * that a watch can block in its content callback waiting for the store's
 * next revision. A request runs in phases: collect the body (capped at
 * 3 MiB, like the real server), authenticate the bearer token, route the
 * URL (/api/v1/..., /apis/<group>/<version>/..., discovery, OpenAPI) to a
 * handler, and answer JSON: the object, a list, a Table, or a Status for
 * errors with the reason and code kubectl expects.
 *
 * Writes are read-modify-write cycles guarded by resourceVersion: a patch
 * that loses a race with another writer is recomputed (up to 5 times); an
 * update that names a stale resourceVersion gets 409 Conflict.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/socket.h>

#include "common/base64.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "orchestrator/orch_int.h"
#include "orchestrator/client/kube.h"
#include "orchestrator/orchestrator.h"
#include "common/banned.h"

#define API_BODY_MAX ((size_t)3 << 20)
#define API_PATCH_ATTEMPTS 5
#define API_WATCH_DEFAULT_S 1800
#define API_BOOKMARK_MS 10000
#define API_NODEPORT_MIN 30000
#define API_NODEPORT_MAX 32767

struct orch_api {
        struct MHD_Daemon *daemon;
        struct orch_store *store;
        char *token;
        uint16_t port;
        atomic_bool stopping;
        pthread_mutex_t alloc_mu; /* serialises ClusterIP and NodePort allocation */
        uint32_t svc_base, svc_size;
        char *tls_cert, *tls_key;
        int64_t default_toleration_s;
        /*
         * Whether any ResourceQuota or LimitRange exists (ORCH_HAVE_* bits),
         * so that writes skip those checks when none does: quota_gen counts
         * writes that may change the answer; quota_cache holds
         * (generation << 2) | answer.
         */
        atomic_uint_fast64_t quota_gen, quota_cache;
        /* Namespaces seen active: name -> the quota_gen it was seen at (ns_mu). */
        pthread_mutex_t ns_mu;
        json_t *ns_active;
};

/* What one request is about, after routing. */
struct req {
        struct orch_api *api;
        struct MHD_Connection *conn;
        const char *method;
        const struct orch_kind *kind;
        const char *ns;   /* NULL: no namespace in the URL */
        const char *name; /* NULL: collection */
        const char *sub;  /* NULL, "status", "scale", "binding" */
        const char *body;
        size_t body_len;
        char *warning;            /* Warning header to add, or NULL */
        struct local_call *local; /* a call from this process, or NULL */
};

/*
 * A request from this process (orch_api_local): the query is decoded into
 * `args`, the body is a JSON value, and the reply is kept as one.
 */
struct local_call {
        json_t *args; /* query argument -> value */
        const char *content_type;
        const json_t *body; /* NULL: none */
        bool body_given;    /* the caller handed `body` over: the handler may keep it */
        long status;
        json_t *out;
        /* A watch streams its events to `fn` instead. */
        int (*fn)(void *arg, const char *type, const json_t *obj);
        void *fn_arg;
};

/* Per-connection state while the body arrives. */
struct conn_ctx {
        struct sw_buf body;
        bool too_big;
};

/* ---- responses ------------------------------------------------------------ */

/* The reply of a call from this process: `v` (stolen) as it is. */
static enum MHD_Result send_local(struct req *q, unsigned code, json_t *v)
{
        json_decref(q->local->out);
        q->local->out = v;
        q->local->status = (long)code;
        return MHD_YES;
}

/* Send `text` (stolen). */
static enum MHD_Result send_text(struct req *q, unsigned code, const char *ctype, char *text)
{
        struct MHD_Response *r;
        enum MHD_Result ret;

        if (q->local) {
                json_t *v = json_string(text);
                free(text);
                return send_local(q, code, v);
        }
        r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(r, "Content-Type", ctype);
        MHD_add_response_header(r, "Cache-Control", "no-cache, private");
        if (q->warning)
                MHD_add_response_header(r, "Warning", q->warning);
        ret = MHD_queue_response(q->conn, code, r);
        MHD_destroy_response(r);
        return ret;
}

/* Send `v` (stolen) as JSON. */
static enum MHD_Result send_json(struct req *q, unsigned code, json_t *v)
{
        char *text;

        if (q->local)
                return send_local(q, code, v);
        text = sw_json_dump(v);
        json_decref(v);
        return send_text(q, code, "application/json", text);
}

static const char *reason_for(unsigned code)
{
        switch (code) {
        case 400:
                return "BadRequest";
        case 401:
                return "Unauthorized";
        case 403:
                return "Forbidden";
        case 404:
                return "NotFound";
        case 405:
                return "MethodNotAllowed";
        case 406:
                return "NotAcceptable";
        case 409:
                return "Conflict";
        case 410:
                return "Expired";
        case 413:
                return "RequestEntityTooLarge";
        case 415:
                return "UnsupportedMediaType";
        case 422:
                return "Invalid";
        default:
                return "InternalError";
        }
}

static json_t *status_obj(unsigned code, const char *reason, const char *message, json_t *details)
{
        json_t *st =
                json_pack("{s:s,s:s,s:{},s:s,s:s,s:s,s:i}", "kind", "Status", "apiVersion", "v1",
                          "metadata", "status", code < 300 ? "Success" : "Failure", "message",
                          message, "reason", reason ? reason : reason_for(code), "code", (int)code);
        if (details)
                json_object_set_new(st, "details", details);
        return st;
}

static json_t *details_of(struct req *q, const char *name)
{
        json_t *d = json_object();

        if (name)
                json_object_set_new(d, "name", json_string(name));
        if (q->kind) {
                if (*q->kind->group)
                        json_object_set_new(d, "group", json_string(q->kind->group));
                json_object_set_new(d, "kind", json_string(q->kind->resource));
        }
        return d;
}

static enum MHD_Result send_status(struct req *q, unsigned code, const char *reason,
                                   const char *message)
{
        return send_json(q, code, status_obj(code, reason, message, details_of(q, q->name)));
}

/* "deployments.apps" or "pods": the resource as errors name it. */
static const char *qualified(const struct orch_kind *k)
{
        return k->store;
}

/* Map a store error to the Status kubectl expects. */
static enum MHD_Result send_error(struct req *q, int rc, const struct sw_err *err)
{
        switch (rc) {
        case SW_ENOTFOUND:
                return send_status(q, 404, "NotFound", err->msg);
        case SW_EEXIST:
                return send_status(q, 409, "AlreadyExists", err->msg);
        case SW_ECONFLICT:
                return send_status(q, 409, "Conflict", err->msg);
        case SW_EINVAL:
                return send_status(q, 400, "BadRequest", err->msg);
        case SW_ETOOBIG:
                return send_status(q, 413, "RequestEntityTooLarge", err->msg);
        case SW_EPERM:
                return send_status(q, 403, "Forbidden", err->msg);
        default:
                sw_log(SW_LOG_ERROR, "orch_api", "request failed", "{s:s,s:s}", "method", q->method,
                       "error", err->msg);
                return send_status(q, 500, "InternalError", err->msg);
        }
}

/* 422 Invalid with the field cause parsed from "field: reason". */
static enum MHD_Result send_invalid(struct req *q, const char *name, const struct sw_err *err)
{
        const char *colon = strstr(err->msg, ": ");
        char msg[SW_ERR_MSG_MAX + 256], field[256];
        json_t *d = details_of(q, name), *cause;

        snprintf(msg, sizeof(msg), "%s%s%s \"%s\" is invalid: %s", q->kind->kind,
                 *q->kind->group ? "." : "", q->kind->group, name ? name : "", err->msg);
        snprintf(field, sizeof(field), "%.*s", colon ? (int)(colon - err->msg) : 0, err->msg);
        json_object_set_new(d, "kind", json_string(q->kind->kind));
        cause = json_pack("{s:s,s:s,s:s}", "reason",
                          strstr(err->msg, "Required value")      ? "FieldValueRequired"
                          : strstr(err->msg, "Unsupported value") ? "FieldValueNotSupported"
                                                                  : "FieldValueInvalid",
                          "message", colon ? colon + 2 : err->msg, "field", field);
        json_object_set_new(d, "causes", json_pack("[o]", cause));
        return send_json(q, 422, status_obj(422, "Invalid", msg, d));
}

static const char *arg(struct req *q, const char *key)
{
        if (q->local)
                return sw_json_str(q->local->args, key, NULL);
        return MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, key);
}

static const char *header(struct req *q, const char *key)
{
        if (q->local) {
                if (strcasecmp(key, "Content-Type") == 0)
                        return q->local->content_type;
                if (strcasecmp(key, "User-Agent") == 0)
                        return "slipway/0.1";
                if (strcasecmp(key, "Accept") == 0)
                        return "application/json";
                return NULL;
        }
        return MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, key);
}

/* Whether the request has a body. */
static bool has_body(const struct req *q)
{
        return q->local ? q->local->body != NULL : q->body_len > 0;
}

static bool arg_true(struct req *q, const char *key)
{
        const char *v = arg(q, key);

        return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static bool dry_run(struct req *q)
{
        const char *v = arg(q, "dryRun");

        return v && strcmp(v, "All") == 0;
}

/* The field manager of a write: ?fieldManager, else the client's name from User-Agent. */
static void field_manager(struct req *q, char *out, size_t size)
{
        const char *fm = arg(q, "fieldManager"), *ua = header(q, "User-Agent");

        if (fm && *fm) {
                snprintf(out, size, "%.128s", fm);
                return;
        }
        if (ua && *ua) {
                size_t n = strcspn(ua, "/ ");
                snprintf(out, size, "%.*s", (int)(n > 128 ? 128 : n), ua);
                return;
        }
        snprintf(out, size, "unknown");
}

static const char *ns_key(struct req *q)
{
        return q->kind->namespaced ? q->ns : "";
}

/* ---- helpers on objects ------------------------------------------------- */

static json_t *meta_of(json_t *obj)
{
        json_t *m = json_object_get(obj, "metadata");

        if (!json_is_object(m)) {
                m = json_object();
                json_object_set_new(obj, "metadata", m);
        }
        return m;
}

static unsigned store_flags(const struct orch_kind *k)
{
        return k->generation ? ORCH_STORE_GENERATION : 0;
}

/* Parse the request body as JSON; duplicate keys are refused under Strict validation. */
static int parse_body(json_t **out, struct req *q, struct sw_err *err)
{
        const char *fv = arg(q, "fieldValidation");
        json_error_t jerr;
        json_t *v;

        if (!has_body(q))
                return sw_err_set(err, SW_EINVAL, "the request body is empty");
        if (q->local) {
                /* The handlers change what they parsed: their own copy, unless handed over. */
                *out = q->local->body_given ? json_incref((json_t *)q->local->body)
                                            : sw_json_copy(q->local->body);
                return 0;
        }
        if (header(q, "Content-Type") && strstr(header(q, "Content-Type"), "protobuf"))
                return orch_proto_decode(out, q->body, q->body_len, q->kind->kind, err);
        if (header(q, "Content-Type") && strstr(header(q, "Content-Type"), "yaml")) {
                size_t i = strspn(q->body, " \t\r\n");
                if (q->body[i] != '{' && q->body[i] != '[')
                        return orch_yaml_to_json(out, q->body, q->body_len, err);
        }
        v = json_loadb(q->body, q->body_len,
                       fv && strcmp(fv, "Strict") == 0 ? JSON_REJECT_DUPLICATES : 0, &jerr);
        if (!v) {
                if (strstr(jerr.text, "duplicate"))
                        return sw_err_set(err, SW_EINVAL, "strict decoding error: %s", jerr.text);
                return sw_err_set(err, SW_EINVAL,
                                  "the body of the request was in an unknown format: %s "
                                  "(line %d, column %d)",
                                  jerr.text, jerr.line, jerr.column);
        }
        *out = v;
        return 0;
}

/*
 * fieldValidation: Strict refuses unknown fields (400); Warn drops them and
 * names the first in a Warning header; Ignore (the default) drops them.
 */
static int check_fields(struct req *q, json_t *obj, struct sw_err *err)
{
        const char *fv = arg(q, "fieldValidation");
        struct sw_err ferr = SW_ERR_INIT;
        bool strict = fv && strcmp(fv, "Strict") == 0;
        char av[128];

        if (orch_object_strict(obj, q->kind, !strict, &ferr) == 0) {
                if (ferr.code && fv && strcmp(fv, "Warn") == 0) {
                        /* A Warning header's text is a quoted-string: escape its quotes. */
                        struct sw_buf b = SW_BUF_INIT;
                        sw_buf_puts(&b, "299 - \"", NULL);
                        for (const char *p = ferr.msg; *p; p++) {
                                if (*p == '"' || *p == '\\')
                                        sw_buf_putc(&b, '\\', NULL);
                                sw_buf_putc(&b, *p, NULL);
                        }
                        sw_buf_putc(&b, '"', NULL);
                        free(q->warning);
                        q->warning = sw_buf_detach(&b, NULL);
                }
                return 0;
        }
        orch_kind_api_version(q->kind, av, sizeof(av));
        return sw_err_set(err, SW_EINVAL,
                          "%s in version \"%s\" cannot be handled as a %s: strict decoding "
                          "error: %s",
                          q->kind->kind, q->kind->version, q->kind->kind, ferr.msg);
}

static int ns_check(struct req *q, struct sw_err *err)
{
        uint_fast64_t gen = atomic_load(&q->api->quota_gen);
        json_t *ns = NULL;
        bool known;
        int rc;

        if (!q->kind->namespaced)
                return 0;
        /* Seen active since the last write of a namespace: still active. */
        pthread_mutex_lock(&q->api->ns_mu);
        known = (uint_fast64_t)json_integer_value(json_object_get(q->api->ns_active, q->ns)) == gen;
        pthread_mutex_unlock(&q->api->ns_mu);
        if (known)
                return 0;
        rc = orch_store_get(&ns, q->api->store, "namespaces", "", q->ns, err);
        if (rc == SW_ENOTFOUND) {
                sw_err_clear(err);
                return sw_err_set(err, SW_ENOTFOUND, "namespaces \"%s\" not found", q->ns);
        }
        if (rc)
                return rc;
        if (json_object_get(json_object_get(ns, "metadata"), "deletionTimestamp") ||
            strcmp(sw_json_str(json_object_get(ns, "status"), "phase", ""), "Terminating") == 0)
                rc = sw_err_set(err, SW_EPERM,
                                "unable to create new content in namespace %s because it is "
                                "being terminated",
                                q->ns);
        if (rc == 0) {
                pthread_mutex_lock(&q->api->ns_mu);
                if (json_object_size(q->api->ns_active) > 4096)
                        json_object_clear(q->api->ns_active);
                json_object_set_new(q->api->ns_active, q->ns, json_integer((json_int_t)gen));
                pthread_mutex_unlock(&q->api->ns_mu);
        }
        json_decref(ns);
        return rc;
}

/* ---- Service ClusterIP and NodePort allocation --------------------------- */

static int parse_cidr(uint32_t *base, uint32_t *size, const char *cidr, struct sw_err *err)
{
        char ip[32];
        const char *slash = strchr(cidr, '/');
        struct in_addr a;
        char *end = NULL;
        long bits;

        if (!slash || (size_t)(slash - cidr) >= sizeof(ip))
                return sw_err_set(err, SW_EINVAL, "service CIDR '%s': expected a.b.c.d/n", cidr);
        memcpy(ip, cidr, (size_t)(slash - cidr));
        ip[slash - cidr] = '\0';
        bits = strtol(slash + 1, &end, 10);
        if (inet_pton(AF_INET, ip, &a) != 1 || *end || bits < 8 || bits > 30)
                return sw_err_set(err, SW_EINVAL,
                                  "service CIDR '%s': expected a.b.c.d/n with n in 8..30", cidr);
        *size = 1u << (32 - bits);
        *base = ntohl(a.s_addr) & ~(*size - 1);
        return 0;
}

static bool service_list_has(const json_t *items, const char *field, const json_t *val)
{
        json_t *s, *p;
        size_t i, j;

        json_array_foreach(items, i, s)
        {
                const json_t *spec = json_object_get(s, "spec");
                if (strcmp(field, "clusterIP") == 0) {
                        if (json_equal(json_object_get(spec, "clusterIP"), val))
                                return true;
                        continue;
                }
                json_array_foreach(json_object_get(spec, "ports"), j, p)
                {
                        if (json_equal(json_object_get(p, "nodePort"), val))
                                return true;
                }
        }
        return false;
}

/*
 * Give a Service its ClusterIP (from the service CIDR) and NodePorts (for
 * NodePort/LoadBalancer types), keeping the ones it already has. Called with
 * alloc_mu held; `self` is the service's own key so that an update does not
 * collide with itself.
 */
static int service_allocate(struct req *q, json_t *svc, struct sw_err *err)
{
        json_t *spec = json_object_get(svc, "spec"), *items = NULL, *p, *others;
        const char *type = sw_json_str(spec, "type", "ClusterIP");
        const char *self_ns = sw_json_str(json_object_get(svc, "metadata"), "namespace", "");
        const char *self = sw_json_str(json_object_get(svc, "metadata"), "name", "");
        struct orch_list_query lq = {0};
        int64_t rev;
        bool more;
        size_t i;
        int rc;

        if (strcmp(type, "ExternalName") == 0)
                return 0;
        rc = orch_store_list(&items, &rev, &more, q->api->store, "services", &lq, err);
        if (rc)
                return rc;
        others = json_array();
        json_array_foreach(items, i, p)
        {
                const json_t *m = json_object_get(p, "metadata");
                if (strcmp(sw_json_str(m, "namespace", ""), self_ns) != 0 ||
                    strcmp(sw_json_str(m, "name", ""), self) != 0)
                        json_array_append(others, p);
        }
        json_decref(items);
        if (!*sw_json_str(spec, "clusterIP", "")) {
                bool found = false;
                for (uint32_t off = 1; off + 1 < q->api->svc_size && !found; off++) {
                        struct in_addr a = {htonl(q->api->svc_base + off)};
                        char ip[INET_ADDRSTRLEN];
                        json_t *v;
                        inet_ntop(AF_INET, &a, ip, sizeof(ip));
                        v = json_string(ip);
                        if (!service_list_has(others, "clusterIP", v)) {
                                json_object_set(spec, "clusterIP", v);
                                json_object_set_new(spec, "clusterIPs", json_pack("[s]", ip));
                                found = true;
                        }
                        json_decref(v);
                }
                if (!found) {
                        json_decref(others);
                        return sw_err_set(err, SW_EINVAL,
                                          "spec.clusterIP: Internal error: failed to allocate a "
                                          "serviceIP: range is full");
                }
        } else if (strcmp(sw_json_str(spec, "clusterIP", ""), "None") != 0 &&
                   service_list_has(others, "clusterIP", json_object_get(spec, "clusterIP"))) {
                rc = sw_err_set(err, SW_EINVAL,
                                "spec.clusterIP: Invalid value: \"%s\": provided IP is already "
                                "allocated",
                                sw_json_str(spec, "clusterIP", ""));
                json_decref(others);
                return rc;
        } else if (!json_object_get(spec, "clusterIPs") &&
                   strcmp(sw_json_str(spec, "clusterIP", ""), "None") != 0) {
                json_object_set_new(spec, "clusterIPs",
                                    json_pack("[s]", sw_json_str(spec, "clusterIP", "")));
        }
        if (strcmp(type, "NodePort") == 0 || strcmp(type, "LoadBalancer") == 0) {
                json_array_foreach(json_object_get(spec, "ports"), i, p)
                {
                        json_t *np = json_object_get(p, "nodePort");
                        if (np) {
                                json_int_t n = json_integer_value(np);
                                if (n < API_NODEPORT_MIN || n > API_NODEPORT_MAX ||
                                    service_list_has(others, "nodePort", np)) {
                                        json_decref(others);
                                        return sw_err_set(err, SW_EINVAL,
                                                          "spec.ports[%zu].nodePort: Invalid "
                                                          "value: %lld: provided port is not in "
                                                          "the valid range or already allocated",
                                                          i, (long long)n);
                                }
                                continue;
                        }
                        for (json_int_t n = API_NODEPORT_MIN; n <= API_NODEPORT_MAX; n++) {
                                json_t *v = json_integer(n);
                                bool used = service_list_has(others, "nodePort", v);
                                json_t *x;
                                size_t j;
                                json_array_foreach(json_object_get(spec, "ports"), j, x) used |=
                                        json_equal(json_object_get(x, "nodePort"), v);
                                if (!used) {
                                        json_object_set_new(p, "nodePort", v);
                                        break;
                                }
                                json_decref(v);
                        }
                }
                json_object_set_new(spec, "externalTrafficPolicy", json_string("Cluster"));
        }
        json_decref(others);
        return 0;
}

static unsigned policies_exist(struct orch_api *api);

/*
 * Admission for a write: defaults and validation, then the allocations of
 * Services. Returns 0, or a code with `err` set; *invalid tells a 422.
 */
static int admit(struct req *q, json_t *obj, const json_t *old, bool *invalid, struct sw_err *err)
{
        int rc;

        *invalid = false;
        rc = orch_object_admit(obj, old, q->kind, err);
        if (rc) {
                *invalid = true;
                return rc;
        }
        if (q->kind->namespaced && (rc = orch_admission_check(q->api->store, q->kind->store, obj,
                                                              old, q->api->default_toleration_s,
                                                              policies_exist(q->api), err)) != 0)
                return rc;
        if (strcmp(q->kind->kind, "Service") == 0) {
                /* Keep allocated node ports the new spec does not name. */
                json_t *p, *op;
                size_t i, j;
                json_array_foreach(json_object_get(json_object_get(obj, "spec"), "ports"), i, p)
                {
                        if (json_object_get(p, "nodePort"))
                                continue;
                        json_array_foreach(json_object_get(json_object_get(old, "spec"), "ports"),
                                           j, op)
                        {
                                if (json_equal(json_object_get(op, "port"),
                                               json_object_get(p, "port")) &&
                                    json_object_get(op, "nodePort"))
                                        json_object_set(p, "nodePort",
                                                        json_object_get(op, "nodePort"));
                        }
                }
                rc = service_allocate(q, obj, err);
                if (rc)
                        *invalid = rc == SW_EINVAL;
        }
        return rc;
}

/*
 * After a write in a namespace, its quotas' status.used follows. A failure
 * here does not undo the write; it is logged and the next write retries.
 */
static void after_write(struct req *q, const char *ns)
{
        struct sw_err err = SW_ERR_INIT;

        if (!q->kind->namespaced || !ns || strcmp(q->kind->resource, "events") == 0 ||
            (strcmp(q->kind->resource, "resourcequotas") != 0 &&
             !(policies_exist(q->api) & ORCH_HAVE_QUOTAS)))
                return;
        if (orch_quota_refresh(q->api->store, ns, &err) != 0)
                sw_log(SW_LOG_WARN, "orch_api", "quota status not refreshed", "{s:s,s:s}", "ns", ns,
                       "error", err.msg);
}

/* Whether some object of `resource` exists anywhere (true when that cannot be read). */
static bool any_object(struct orch_api *api, const char *resource)
{
        struct orch_list_query lq = {0};
        struct sw_err err = SW_ERR_INIT;
        json_t *items = NULL;
        int64_t rev;
        bool more, any;

        lq.limit = 1;
        if (orch_store_list(&items, &rev, &more, api->store, resource, &lq, &err) != 0)
                return true;
        any = json_array_size(items) > 0;
        json_decref(items);
        return any;
}

/* Which of ResourceQuota and LimitRange the cluster has at all (ORCH_HAVE_* bits). */
static unsigned policies_exist(struct orch_api *api)
{
        uint_fast64_t gen = atomic_load(&api->quota_gen), cache = atomic_load(&api->quota_cache);
        unsigned have;

        if (cache >> 2 == gen)
                return (unsigned)(cache & 3);
        have = (any_object(api, "resourcequotas") ? ORCH_HAVE_QUOTAS : 0) |
               (any_object(api, "limitranges") ? ORCH_HAVE_LIMITS : 0);
        /* Kept only if no quota, limit range or namespace was written meanwhile. */
        if (atomic_load(&api->quota_gen) == gen)
                atomic_compare_exchange_strong(&api->quota_cache, &cache, gen << 2 | have);
        return have;
}

/* After a request: a write of a quota, a limit range or a namespace may change policies_exist(). */
static void note_write(struct req *q)
{
        if (q->kind && strcmp(q->method, "GET") != 0 &&
            (strcmp(q->kind->resource, "resourcequotas") == 0 ||
             strcmp(q->kind->resource, "limitranges") == 0 ||
             strcmp(q->kind->resource, "namespaces") == 0))
                atomic_fetch_add(&q->api->quota_gen, 1);
}

/*
 * Admission that reads other objects before a write -- ClusterIP and
 * NodePort allocation, ResourceQuota usage -- must also see the writes
 * just before it: such writes hold alloc_mu through admission and the
 * store write. All others (every pod in a namespace without a quota) run
 * in parallel. Returns whether the lock was taken.
 */
static bool write_lock(struct req *q)
{
        if (strcmp(q->kind->resource, "services") != 0 &&
            !(q->kind->namespaced && (policies_exist(q->api) & ORCH_HAVE_QUOTAS) &&
              orch_quota_any(q->api->store, q->ns)))
                return false;
        pthread_mutex_lock(&q->api->alloc_mu);
        return true;
}

static void write_unlock(struct req *q, bool locked)
{
        if (locked)
                pthread_mutex_unlock(&q->api->alloc_mu);
}

/* ---- garbage collection of dependents ------------------------------------ */

static const struct orch_kind *kind_by_store(const char *store)
{
        size_t n;
        const struct orch_kind *ks = orch_kinds(&n);

        for (size_t i = 0; i < n; i++)
                if (strcmp(ks[i].store, store) == 0)
                        return &ks[i];
        return NULL;
}

static int delete_cascade(struct orch_api *api, const char *resource, const json_t *obj,
                          const char *policy, int depth, struct sw_err *err);

/*
 * After `uid` is deleted: Orphan removes the owner reference from its
 * dependents; Background and Foreground delete them (synchronously here;
 * there is no garbage-collector controller yet).
 */
static int gc_dependents(struct orch_api *api, const char *uid, const char *policy, int depth,
                         struct sw_err *err)
{
        json_t *deps = NULL, *d;
        size_t i;
        int rc;

        if (depth > 8)
                return 0;
        rc = orch_store_dependents(&deps, api->store, uid, err);
        if (rc)
                return rc;
        json_array_foreach(deps, i, d)
        {
                const char *res = sw_json_str(d, "resource", "");
                json_t *obj = json_object_get(d, "object");

                if (strcmp(policy, "Orphan") == 0) {
                        json_t *copy = sw_json_copy(obj), *refs, *keep = json_array(), *r,
                               *out = NULL;
                        size_t j;
                        const struct orch_kind *k = kind_by_store(res);
                        refs = json_object_get(meta_of(copy), "ownerReferences");
                        json_array_foreach(refs, j, r)
                        {
                                if (strcmp(sw_json_str(r, "uid", ""), uid) != 0)
                                        json_array_append(keep, r);
                        }
                        if (json_array_size(keep))
                                json_object_set_new(meta_of(copy), "ownerReferences", keep);
                        else {
                                json_decref(keep);
                                json_object_del(meta_of(copy), "ownerReferences");
                        }
                        rc = orch_store_update(&out, NULL, api->store, res, copy,
                                               k ? store_flags(k) : 0, err);
                        json_decref(copy);
                        json_decref(out);
                } else {
                        rc = delete_cascade(api, res, obj, policy, depth + 1, err);
                }
                if (rc == SW_ENOTFOUND || rc == SW_ECONFLICT) {
                        sw_err_clear(err);
                        rc = 0;
                }
                if (rc)
                        break;
        }
        json_decref(deps);
        return rc;
}

static int delete_namespace_contents(struct orch_api *api, const char *ns, struct sw_err *err);

static int delete_cascade(struct orch_api *api, const char *resource, const json_t *obj,
                          const char *policy, int depth, struct sw_err *err)
{
        const json_t *meta = json_object_get(obj, "metadata");
        char *uid = sw_xstrdup(sw_json_str(meta, "uid", ""));
        json_t *out = NULL;
        bool gone = false;
        int rc;

        if (strcmp(resource, "namespaces") == 0) {
                rc = delete_namespace_contents(api, sw_json_str(meta, "name", ""), err);
                if (rc)
                        goto out;
        }
        rc = orch_store_delete(&out, &gone, api->store, resource,
                               sw_json_str(meta, "namespace", ""), sw_json_str(meta, "name", ""),
                               NULL, NULL, err);
        if (rc == 0 && gone)
                rc = gc_dependents(api, uid, policy, depth, err);
out:
        json_decref(out);
        free(uid);
        return rc;
}

/* Deleting a namespace deletes everything in it first (the namespace controller's job). */
static int delete_namespace_contents(struct orch_api *api, const char *ns, struct sw_err *err)
{
        size_t n;
        const struct orch_kind *ks = orch_kinds(&n);
        int rc = 0;

        for (size_t i = 0; i < n && rc == 0; i++) {
                struct orch_list_query lq = {0};
                json_t *items = NULL, *o;
                int64_t rev;
                bool more;
                size_t j;

                if (!ks[i].namespaced)
                        continue;
                lq.ns = ns;
                rc = orch_store_list(&items, &rev, &more, api->store, ks[i].store, &lq, err);
                if (rc)
                        break;
                json_array_foreach(items, j, o)
                {
                        rc = delete_cascade(api, ks[i].store, o, "Background", 1, err);
                        if (rc == SW_ENOTFOUND) {
                                sw_err_clear(err);
                                rc = 0;
                        }
                        if (rc)
                                break;
                }
                json_decref(items);
        }
        return rc;
}

/* ---- list and get ------------------------------------------------------- */

struct filter {
        struct orch_selector *labels;
        struct orch_selector *fields;
        const char *ns;
};

static bool filter_match(const json_t *obj, void *arg)
{
        const struct filter *f = arg;
        const json_t *meta = json_object_get(obj, "metadata");

        if (f->ns && strcmp(sw_json_str(meta, "namespace", ""), f->ns) != 0)
                return false;
        return orch_labelsel_match(f->labels, json_object_get(meta, "labels")) &&
               orch_fieldsel_match(f->fields, obj);
}

static int filter_init(struct filter *f, struct req *q, struct sw_err *err)
{
        static const char *const common_fields[] = {"metadata.name", "metadata.namespace", NULL};
        static const char *const pod_fields[] = {
                "metadata.name",      "metadata.namespace",       "spec.nodeName",
                "spec.schedulerName", "spec.serviceAccountName",  "status.phase",
                "status.podIP",       "status.nominatedNodeName", NULL};
        static const char *const event_fields[] = {"metadata.name",
                                                   "metadata.namespace",
                                                   "involvedObject.kind",
                                                   "involvedObject.name",
                                                   "involvedObject.namespace",
                                                   "involvedObject.uid",
                                                   "involvedObject.apiVersion",
                                                   "involvedObject.fieldPath",
                                                   "reason",
                                                   "reportingComponent",
                                                   "source",
                                                   "type",
                                                   NULL};
        static const char *const secret_fields[] = {"metadata.name", "metadata.namespace", "type",
                                                    NULL};
        static const char *const node_fields[] = {"metadata.name", "spec.unschedulable", NULL};
        const char *const *allowed = common_fields;
        int rc;

        memset(f, 0, sizeof(*f));
        f->ns = q->kind->namespaced ? q->ns : NULL;
        if (strcmp(q->kind->kind, "Pod") == 0)
                allowed = pod_fields;
        else if (strcmp(q->kind->kind, "Event") == 0)
                allowed = event_fields;
        else if (strcmp(q->kind->kind, "Secret") == 0)
                allowed = secret_fields;
        else if (strcmp(q->kind->kind, "Node") == 0)
                allowed = node_fields;
        rc = orch_labelsel_parse(&f->labels, arg(q, "labelSelector"), err);
        if (rc == 0)
                rc = orch_fieldsel_parse(&f->fields, arg(q, "fieldSelector"), allowed, err);
        return rc;
}

static void filter_release(struct filter *f)
{
        orch_selector_free(f->labels);
        orch_selector_free(f->fields);
}

/* kubectl asks for a Table with Accept "application/json;as=Table;v=v1;g=meta.k8s.io,...". */
static bool wants_table(struct req *q)
{
        const char *acc = header(q, "Accept");

        return acc && strstr(acc, "as=Table") && strstr(acc, "g=meta.k8s.io");
}

static json_t *table_new(struct req *q, json_t *items, const char *rv, const char *cont,
                         bool with_columns)
{
        const char *inc = arg(q, "includeObject");
        json_t *rows = json_array(), *o;
        int64_t now = sw_now_ms();
        size_t i;
        bool full = inc && strcmp(inc, "Object") == 0;

        json_array_foreach(items, i, o)
        {
                json_t *row = orch_table_row(q->kind, o, now, full);
                if (inc && strcmp(inc, "None") == 0)
                        json_object_del(row, "object");
                json_array_append_new(rows, row);
        }
        return json_pack("{s:s,s:s,s:{s:s,s:s},s:o,s:o}", "kind", "Table", "apiVersion",
                         "meta.k8s.io/v1", "metadata", "resourceVersion", rv, "continue",
                         cont ? cont : "", "columnDefinitions",
                         with_columns ? orch_table_columns(q->kind) : json_array(), "rows", rows);
}

static char *hex_encode(const char *s)
{
        size_t n = strlen(s);
        char *out = sw_xmalloc(n * 2 + 1);

        for (size_t i = 0; i < n; i++)
                snprintf(out + i * 2, 3, "%02x", (unsigned char)s[i]);
        out[n * 2] = '\0';
        return out;
}

static char *hex_decode(const char *s)
{
        size_t n = strlen(s);
        char *out;

        if (n % 2 || n > 2048)
                return NULL;
        out = sw_xmalloc(n / 2 + 1);
        for (size_t i = 0; i < n / 2; i++) {
                unsigned v;
                if (sscanf(s + i * 2, "%2x", &v) != 1) {
                        free(out);
                        return NULL;
                }
                out[i] = (char)v;
        }
        out[n / 2] = '\0';
        return out;
}

static enum MHD_Result handle_watch(struct req *q, struct filter *f);

static enum MHD_Result handle_list(struct req *q)
{
        struct sw_err err = SW_ERR_INIT;
        struct orch_list_query lq = {0};
        struct filter f;
        json_t *items = NULL, *list;
        const char *limit_s = arg(q, "limit"), *cont = arg(q, "continue");
        char *after = NULL, *next = NULL, rv[32], kind[160];
        int64_t rev = 0;
        bool more = false;
        enum MHD_Result ret;
        int rc;

        if ((rc = filter_init(&f, q, &err)) != 0) {
                filter_release(&f);
                return send_status(q, 400, "BadRequest", err.msg);
        }
        if (arg_true(q, "watch")) {
                ret = handle_watch(q, &f);
                filter_release(&f);
                return ret;
        }
        lq.ns = q->kind->namespaced ? q->ns : NULL;
        lq.match = filter_match;
        lq.arg = &f;
        if (limit_s) {
                char *end = NULL;
                lq.limit = strtoll(limit_s, &end, 10);
                if (*end || lq.limit < 0) {
                        filter_release(&f);
                        return send_status(q, 400, "BadRequest", "limit must be a number");
                }
        }
        if (cont && *cont) {
                char *sep;
                after = hex_decode(cont);
                sep = after ? strchr(after, '\x1f') : NULL;
                if (!sep) {
                        free(after);
                        filter_release(&f);
                        return send_status(q, 400, "BadRequest", "continue key is not valid");
                }
                *sep = '\0';
                lq.after_ns = after;
                lq.after_name = sep + 1;
        }
        rc = orch_store_list(&items, &rev, &more, q->api->store, q->kind->store, &lq, &err);
        filter_release(&f);
        free(after);
        if (rc)
                return send_error(q, rc, &err);
        if (more && json_array_size(items)) {
                const json_t *m = json_object_get(json_array_get(items, json_array_size(items) - 1),
                                                  "metadata");
                char *key = sw_xasprintf("%s\x1f%s", sw_json_str(m, "namespace", ""),
                                         sw_json_str(m, "name", ""));
                next = hex_encode(key);
                free(key);
        }
        snprintf(rv, sizeof(rv), "%lld", (long long)rev);
        if (wants_table(q)) {
                list = table_new(q, items, rv, next, true);
                json_decref(items);
        } else {
                char av[128];
                orch_kind_api_version(q->kind, av, sizeof(av));
                snprintf(kind, sizeof(kind), "%sList", q->kind->kind);
                list = json_pack("{s:s,s:s,s:{s:s},s:o}", "kind", kind, "apiVersion", av,
                                 "metadata", "resourceVersion", rv, "items", items);
                if (next)
                        json_object_set_new(json_object_get(list, "metadata"), "continue",
                                            json_string(next));
        }
        free(next);
        return send_json(q, 200, list);
}

static int get_object(json_t **out, struct req *q, struct sw_err *err)
{
        int rc = orch_store_get(out, q->api->store, q->kind->store, ns_key(q), q->name, err);

        if (rc == SW_ENOTFOUND) {
                sw_err_clear(err);
                rc = sw_err_set(err, SW_ENOTFOUND, "%s \"%s\" not found", qualified(q->kind),
                                q->name);
        }
        return rc;
}

static json_t *scale_of(struct req *q, const json_t *obj)
{
        const json_t *meta = json_object_get(obj, "metadata"), *spec = json_object_get(obj, "spec");
        char *sel = orch_labelsel_string(json_object_get(spec, "selector"));
        json_t *scale = json_pack(
                "{s:s,s:s,s:{s:s,s:s,s:s,s:s,s:s},s:{s:I},s:{s:I,s:s}}", "kind", "Scale",
                "apiVersion", "autoscaling/v1", "metadata", "name", sw_json_str(meta, "name", ""),
                "namespace", sw_json_str(meta, "namespace", ""), "uid",
                sw_json_str(meta, "uid", ""), "resourceVersion",
                sw_json_str(meta, "resourceVersion", ""), "creationTimestamp",
                sw_json_str(meta, "creationTimestamp", ""), "spec", "replicas",
                (json_int_t)sw_json_int(spec, "replicas", 0), "status", "replicas",
                (json_int_t)sw_json_int(json_object_get(obj, "status"), "replicas", 0), "selector",
                sel);

        (void)q;
        free(sel);
        return scale;
}

static enum MHD_Result send_object(struct req *q, unsigned code, json_t *obj)
{
        if (q->sub && strcmp(q->sub, "scale") == 0) {
                json_t *s = scale_of(q, obj);
                json_decref(obj);
                obj = s;
        } else if (wants_table(q)) {
                json_t *items = json_pack("[o]", obj);
                obj = table_new(q, items, "", NULL, true);
                json_decref(items);
        }
        return send_json(q, code, obj);
}

static enum MHD_Result handle_get(struct req *q)
{
        struct sw_err err = SW_ERR_INIT;
        json_t *obj = NULL;
        int rc = get_object(&obj, q, &err);

        if (rc)
                return send_error(q, rc, &err);
        return send_object(q, 200, obj);
}

/* ---- create, update, patch ---------------------------------------------- */

static bool clears_status_on_create(const struct orch_kind *k)
{
        return (k->subresources & ORCH_SUB_STATUS) && strcmp(k->kind, "Node") != 0;
}

static enum MHD_Result handle_create(struct req *q)
{
        struct sw_err err = SW_ERR_INIT;
        json_t *obj = NULL, *meta, *out = NULL;
        const char *body_ns;
        char mgr[160], av[128];
        bool invalid, locked;
        int rc;

        if ((rc = parse_body(&obj, q, &err)) != 0)
                return rc == SW_EPROTO ? send_status(q, 415, "UnsupportedMediaType", err.msg)
                                       : send_status(q, 400, "BadRequest", err.msg);
        if (!json_is_object(obj)) {
                json_decref(obj);
                return send_status(q, 400, "BadRequest", "the request body must be an object");
        }
        orch_kind_api_version(q->kind, av, sizeof(av));
        if ((json_object_get(obj, "kind") &&
             strcmp(sw_json_str(obj, "kind", ""), q->kind->kind) != 0) ||
            (json_object_get(obj, "apiVersion") &&
             strcmp(sw_json_str(obj, "apiVersion", ""), av) != 0)) {
                char msg[400];
                snprintf(msg, sizeof(msg), "the object provided is unrecognized (%s %s) for %s",
                         sw_json_str(obj, "apiVersion", ""), sw_json_str(obj, "kind", ""),
                         qualified(q->kind));
                json_decref(obj);
                return send_status(q, 400, "BadRequest", msg);
        }
        meta = meta_of(obj);
        body_ns = sw_json_str(meta, "namespace", NULL);
        if (q->kind->namespaced) {
                if (body_ns && *body_ns && strcmp(body_ns, q->ns) != 0) {
                        json_decref(obj);
                        return send_status(q, 400, "BadRequest",
                                           "the namespace of the provided object does not match "
                                           "the namespace sent on the request");
                }
                json_object_set_new(meta, "namespace", json_string(q->ns));
        } else {
                json_object_del(meta, "namespace");
        }
        if ((rc = check_fields(q, obj, &err)) != 0) {
                json_decref(obj);
                return send_status(q, 400, "BadRequest", err.msg);
        }
        if ((rc = ns_check(q, &err)) != 0) {
                if (rc == SW_EPERM) {
                        char msg[SW_ERR_MSG_MAX];
                        snprintf(msg, sizeof(msg),
                                 "%s \"%s\" is forbidden: unable to create new content in "
                                 "namespace %s because it is being terminated",
                                 qualified(q->kind), sw_json_str(meta, "name", ""), q->ns);
                        json_decref(obj);
                        return send_status(q, 403, "Forbidden", msg);
                }
                json_decref(obj);
                return send_error(q, rc, &err);
        }
        if (clears_status_on_create(q->kind))
                json_object_del(obj, "status");
        json_object_del(meta, "managedFields");
        locked = write_lock(q);
        rc = admit(q, obj, NULL, &invalid, &err);
        if (rc) {
                write_unlock(q, locked);
                if (invalid) {
                        enum MHD_Result ret = send_invalid(q, sw_json_str(meta, "name", ""), &err);
                        json_decref(obj);
                        return ret;
                }
                json_decref(obj);
                return send_error(q, rc, &err);
        }
        field_manager(q, mgr, sizeof(mgr));
        orch_ssa_record_update(obj, NULL, mgr, NULL, q->kind->smp, av);
        if (dry_run(q)) {
                write_unlock(q, locked);
                return send_json(q, 201, obj);
        }
        /* The parsed body is the handler's own: the store keeps it, not a copy. */
        rc = orch_store_create(&out, q->api->store, q->kind->store, obj,
                               store_flags(q->kind) | ORCH_STORE_IN_PLACE, &err);
        write_unlock(q, locked);
        if (rc == SW_EEXIST) {
                char msg[SW_ERR_MSG_MAX];
                snprintf(msg, sizeof(msg), "%s \"%s\" already exists", qualified(q->kind),
                         sw_json_str(meta, "name", ""));
                q->name = NULL;
                json_decref(obj);
                return send_status(q, 409, "AlreadyExists", msg);
        }
        json_decref(obj);
        if (rc)
                return send_error(q, rc, &err);
        after_write(q, q->ns);
        return send_json(q, 201, out);
}

/*
 * Finish a write of `obj` (the desired object, derived from `old`): keep
 * what the subresource may not change, admit, record the manager, and
 * store it guarded by old's resourceVersion (unless the body named one).
 * Returns the stored object in *out.
 */
static int write_object(json_t **out, bool *invalid, struct req *q, json_t *obj, const json_t *old,
                        const char *manager, bool ssa, struct sw_err *err)
{
        const json_t *old_meta = json_object_get(old, "metadata");
        json_t *meta = meta_of(obj);
        char av[128];
        bool locked = false;
        int rc;

        *invalid = false;
        orch_kind_api_version(q->kind, av, sizeof(av));
        if (q->sub && strcmp(q->sub, "status") == 0) {
                /* The status subresource changes status only. */
                json_t *st = json_incref(json_object_get(obj, "status"));
                json_t *copy = sw_json_copy(old);
                if (st)
                        json_object_set_new(copy, "status", st);
                else
                        json_object_del(copy, "status");
                json_object_set(meta_of(copy), "resourceVersion",
                                json_object_get(meta, "resourceVersion"));
                json_object_set(meta_of(copy), "managedFields",
                                json_object_get(meta, "managedFields"));
                json_object_clear(obj);
                json_object_update(obj, copy);
                json_decref(copy);
                meta = meta_of(obj);
        } else if (q->kind->subresources & ORCH_SUB_STATUS) {
                /* The main resource does not change status. */
                json_t *st = json_object_get(old, "status");
                if (st)
                        json_object_set(obj, "status", st);
                else
                        json_object_del(obj, "status");
        }
        if (strcmp(sw_json_str(meta, "name", ""), q->name) != 0)
                return sw_err_set(err, SW_EINVAL,
                                  "the name of the object (%s) does not match the name on the URL "
                                  "(%s)",
                                  sw_json_str(meta, "name", ""), q->name);
        if (q->kind->namespaced)
                json_object_set_new(meta, "namespace", json_string(q->ns));
        if (!sw_json_str(meta, "resourceVersion", NULL) ||
            !*sw_json_str(meta, "resourceVersion", ""))
                json_object_set(meta, "resourceVersion",
                                json_object_get(old_meta, "resourceVersion"));
        locked = write_lock(q);
        rc = admit(q, obj, old, invalid, err);
        if (rc)
                goto out;
        if (!ssa)
                orch_ssa_record_update(obj, old, manager, q->sub, q->kind->smp, av);
        if (dry_run(q)) {
                *out = json_incref(obj);
                goto out;
        }
        rc = orch_store_update(out, NULL, q->api->store, q->kind->store, obj, store_flags(q->kind),
                               err);
out:
        write_unlock(q, locked);
        if (rc == 0 && !dry_run(q))
                after_write(q, q->ns);
        return rc;
}

static enum MHD_Result write_failed(struct req *q, int rc, bool invalid, struct sw_err *err)
{
        if (invalid)
                return send_invalid(q, q->name, err);
        if (rc == SW_ENOTFOUND) {
                char msg[SW_ERR_MSG_MAX];
                snprintf(msg, sizeof(msg), "%s \"%s\" not found", qualified(q->kind), q->name);
                return send_status(q, 404, "NotFound", msg);
        }
        return send_error(q, rc, err);
}

static enum MHD_Result handle_update(struct req *q)
{
        struct sw_err err = SW_ERR_INIT;
        json_t *obj = NULL, *old = NULL, *out = NULL;
        char mgr[160];
        bool invalid = false;
        int rc;

        if ((rc = parse_body(&obj, q, &err)) != 0)
                return send_status(q, 400, "BadRequest", err.msg);
        if (!json_is_object(obj)) {
                json_decref(obj);
                return send_status(q, 400, "BadRequest", "the request body must be an object");
        }
        if ((rc = get_object(&old, q, &err)) != 0)
                goto fail;
        if (q->sub && strcmp(q->sub, "scale") == 0) {
                /* A Scale: only spec.replicas reaches the object. */
                json_t *scaled = sw_json_copy(old),
                       *want = json_object_get(json_object_get(obj, "spec"), "replicas");
                const char *rv =
                        sw_json_str(json_object_get(obj, "metadata"), "resourceVersion", "");
                json_object_set(json_object_get(scaled, "spec"), "replicas",
                                want ? want : json_integer(0));
                json_object_set_new(meta_of(scaled), "resourceVersion", json_string(rv));
                json_decref(obj);
                obj = scaled;
        } else if ((rc = check_fields(q, obj, &err)) != 0) {
                json_decref(obj);
                json_decref(old);
                return send_status(q, 400, "BadRequest", err.msg);
        }
        field_manager(q, mgr, sizeof(mgr));
        rc = write_object(&out, &invalid, q, obj, old, mgr, false, &err);
fail:
        json_decref(obj);
        json_decref(old);
        if (rc)
                return write_failed(q, rc, invalid, &err);
        return send_object(q, 200, out);
}

static enum MHD_Result handle_patch(struct req *q)
{
        struct sw_err err = SW_ERR_INIT;
        const char *ctype = header(q, "Content-Type");
        json_t *patch = NULL, *old = NULL, *obj = NULL, *out = NULL;
        char mgr[160], av[128];
        bool invalid = false, apply = false, created = false;
        int rc = 0;

        if (!ctype)
                ctype = "";
        apply = strncmp(ctype, "application/apply-patch", 23) == 0;
        if (!apply && strncmp(ctype, "application/json-patch+json", 27) != 0 &&
            strncmp(ctype, "application/merge-patch+json", 28) != 0 &&
            strncmp(ctype, "application/strategic-merge-patch+json", 38) != 0) {
                char msg[300];
                snprintf(msg, sizeof(msg),
                         "the body of the request was in an unknown format - "
                         "accepted media types include: "
                         "application/json-patch+json, "
                         "application/merge-patch+json, "
                         "application/apply-patch+yaml");
                return send_status(q, 415, "UnsupportedMediaType", msg);
        }
        if ((rc = parse_body(&patch, q, &err)) != 0)
                return send_status(q, 400, "BadRequest", err.msg);
        field_manager(q, mgr, sizeof(mgr));
        if (apply && !arg(q, "fieldManager")) {
                json_decref(patch);
                return send_status(q, 400, "BadRequest",
                                   "PATCH, application/apply-patch+yaml requires fieldManager to "
                                   "be set");
        }
        orch_kind_api_version(q->kind, av, sizeof(av));
        for (int attempt = 0; attempt < API_PATCH_ATTEMPTS; attempt++) {
                json_t *base;

                json_decref(old);
                json_decref(obj);
                json_decref(out);
                old = obj = out = NULL;
                sw_err_clear(&err);
                rc = get_object(&old, q, &err);
                if (rc == SW_ENOTFOUND && apply && !q->sub) {
                        /* Server-side apply creates what is absent. */
                        sw_err_clear(&err);
                        rc = orch_ssa_apply(&obj, NULL, patch, mgr, arg_true(q, "force"),
                                            q->kind->smp, av, &err);
                        if (rc)
                                break;
                        json_object_set_new(meta_of(obj), "name", json_string(q->name));
                        if (q->kind->namespaced)
                                json_object_set_new(meta_of(obj), "namespace", json_string(q->ns));
                        if ((rc = check_fields(q, obj, &err)) != 0)
                                break;
                        if ((rc = ns_check(q, &err)) != 0)
                                break;
                        if (clears_status_on_create(q->kind))
                                json_object_del(obj, "status");
                        bool locked = write_lock(q);
                        rc = admit(q, obj, NULL, &invalid, &err);
                        if (rc == 0 && dry_run(q))
                                out = json_incref(obj);
                        else if (rc == 0)
                                rc = orch_store_create(&out, q->api->store, q->kind->store, obj,
                                                       store_flags(q->kind), &err);
                        write_unlock(q, locked);
                        if (rc == SW_EEXIST)
                                continue; /* raced with a create: apply to it */
                        created = rc == 0;
                        if (created && !dry_run(q))
                                after_write(q, q->ns);
                        break;
                }
                if (rc)
                        break;
                base = q->sub && strcmp(q->sub, "scale") == 0 ? scale_of(q, old) : json_incref(old);
                if (apply)
                        rc = orch_ssa_apply(&obj, base, patch, mgr, arg_true(q, "force"),
                                            q->sub ? NULL : q->kind->smp, av, &err);
                else if (strncmp(ctype, "application/json-patch+json", 27) == 0)
                        rc = orch_json_patch(&obj, base, patch, &err);
                else if (strncmp(ctype, "application/merge-patch+json", 28) == 0)
                        rc = orch_merge_patch(&obj, base, patch, &err);
                else
                        rc = orch_smp_apply(
                                &obj, base, patch,
                                q->sub && strcmp(q->sub, "scale") == 0 ? NULL : q->kind->smp, &err);
                json_decref(base);
                if (rc)
                        break;
                if (q->sub && strcmp(q->sub, "scale") == 0) {
                        json_t *scaled = sw_json_copy(old);
                        json_t *want = json_object_get(json_object_get(obj, "spec"), "replicas");
                        if (!json_is_integer(want) || json_integer_value(want) < 0) {
                                json_decref(scaled);
                                invalid = true;
                                rc = sw_err_set(&err, SW_EINVAL,
                                                "spec.replicas: Invalid value: must be greater "
                                                "than or equal to 0");
                                break;
                        }
                        json_object_set(json_object_get(scaled, "spec"), "replicas", want);
                        json_decref(obj);
                        obj = scaled;
                } else if ((rc = check_fields(q, obj, &err)) != 0) {
                        break;
                }
                /* Patches are computed against `old`; guard the write with its version. */
                json_object_set(
                        meta_of(obj), "resourceVersion",
                        json_object_get(json_object_get(old, "metadata"), "resourceVersion"));
                rc = write_object(&out, &invalid, q, obj, old, mgr, apply, &err);
                if (rc != SW_ECONFLICT)
                        break;
                if (apply && strstr(err.msg, "conflict"))
                        break;
        }
        json_decref(patch);
        json_decref(old);
        json_decref(obj);
        if (rc) {
                json_decref(out);
                if (rc == SW_ECONFLICT && apply && strstr(err.msg, "Apply failed"))
                        return send_status(q, 409, "Conflict", err.msg);
                if (rc == SW_EINVAL && !invalid &&
                    (strstr(err.msg, "strict decoding") || strstr(err.msg, "patch") ||
                     strstr(err.msg, "pointer") || strstr(err.msg, "directive")))
                        return send_status(q, strstr(err.msg, "strict") ? 400 : 422,
                                           strstr(err.msg, "strict") ? "BadRequest" : "Invalid",
                                           err.msg);
                if (rc == SW_ECONFLICT && strstr(err.msg, "test"))
                        return send_status(q, 422, "Invalid", err.msg);
                return write_failed(q, rc, invalid, &err);
        }
        return send_object(q, created ? 201 : 200, out);
}

/* POST pods/<name>/binding: assign the pod to a node, once. */
/* Set spec.nodeName of a pod not yet bound (orch_store_mutate's change). */
static int bind_pod(json_t *pod, void *arg, struct sw_err *err)
{
        const char *node = arg;
        json_t *spec = json_object_get(pod, "spec");
        const json_t *md = json_object_get(pod, "metadata");

        if (*sw_json_str(spec, "nodeName", ""))
                return sw_err_set(err, SW_ECONFLICT, "pod %s is already assigned to node \"%s\"",
                                  sw_json_str(md, "name", ""), sw_json_str(spec, "nodeName", ""));
        if (json_object_get(md, "deletionTimestamp"))
                return sw_err_set(err, SW_ECONFLICT,
                                  "pod %s is being deleted, cannot be assigned to a host",
                                  sw_json_str(md, "name", ""));
        if (!json_is_object(spec))
                return sw_err_set(err, SW_EINVAL, "pod %s has no spec",
                                  sw_json_str(md, "name", ""));
        json_object_set_new(spec, "nodeName", json_string(node));
        {
                /*
                 * As Kubernetes' binding: PodScheduled=True. The status is
                 * this object's own but its members may be shared: a new
                 * list of conditions.
                 */
                json_t *status = json_object_get(pod, "status"), *conds = json_array(), *c;
                char ts[32];
                size_t i;
                if (!json_is_object(status)) {
                        status = json_object();
                        json_object_set_new(pod, "status", status);
                }
                json_array_foreach(json_object_get(status, "conditions"), i, c)
                {
                        if (strcmp(sw_json_str(c, "type", ""), "PodScheduled") != 0)
                                json_array_append(conds, c);
                }
                orch_time_fmt(ts, sizeof(ts), sw_now_ms());
                json_array_append_new(conds, json_pack("{s:s,s:s,s:n,s:s}", "type", "PodScheduled",
                                                       "status", "True", "lastProbeTime",
                                                       "lastTransitionTime", ts));
                json_object_set_new(status, "conditions", conds);
        }
        return 0;
}

/*
 * POST pods/<name>/binding: the pod's nodeName set in one store
 * transaction, as Kubernetes' binding storage does, with no field manager
 * recorded on the pod.
 */
static enum MHD_Result handle_binding(struct req *q)
{
        struct sw_err err = SW_ERR_INIT;
        json_t *b = NULL;
        char *node;
        int rc;

        if ((rc = parse_body(&b, q, &err)) != 0)
                return send_status(q, 400, "BadRequest", err.msg);
        node = sw_xstrdup(sw_json_str(json_object_get(b, "target"), "name", ""));
        json_decref(b);
        if (!*node) {
                free(node);
                q->sub = NULL;
                return send_status(q, 422, "Invalid", "target.name: Required value");
        }
        q->sub = NULL;
        rc = orch_store_mutate(NULL, q->api->store, q->kind->store, q->ns ? q->ns : "", q->name,
                               bind_pod, node, &err);
        free(node);
        if (rc)
                return write_failed(q, rc, false, &err);
        return send_json(q, 201, status_obj(201, "", "", NULL));
}

/* ---- delete ------------------------------------------------------------- */

static const char *propagation(struct req *q, const json_t *opts)
{
        const char *p = sw_json_str(opts, "propagationPolicy", arg(q, "propagationPolicy"));

        if (!p) {
                if (json_is_true(json_object_get(opts, "orphanDependents")) ||
                    arg_true(q, "orphanDependents"))
                        return "Orphan";
                return "Background";
        }
        return p;
}

/*
 * A pod bound to a node that is still running is deleted gracefully: its
 * node agent stops it and confirms with gracePeriodSeconds=0. The grace is
 * the request's gracePeriodSeconds, else the pod's
 * terminationGracePeriodSeconds. Everything else goes at once.
 */
static int64_t grace_period(struct req *q, const json_t *opts, const char *name)
{
        struct sw_err err = SW_ERR_INIT;
        json_t *pod = NULL;
        const json_t *spec;
        const char *phase, *qs = arg(q, "gracePeriodSeconds");
        int64_t grace;

        if (strcmp(q->kind->kind, "Pod") != 0 ||
            orch_store_get(&pod, q->api->store, "pods", ns_key(q), name, &err) != 0)
                return 0;
        spec = json_object_get(pod, "spec");
        phase = sw_json_str(json_object_get(pod, "status"), "phase", "");
        grace = sw_json_int(spec, "terminationGracePeriodSeconds", 30);
        if (json_is_integer(json_object_get(opts, "gracePeriodSeconds")))
                grace = sw_json_int(opts, "gracePeriodSeconds", 0);
        else if (qs)
                grace = strtoll(qs, NULL, 10);
        if (!*sw_json_str(spec, "nodeName", "") || strcmp(phase, "Succeeded") == 0 ||
            strcmp(phase, "Failed") == 0)
                grace = 0;
        json_decref(pod);
        return grace < 0 ? 0 : grace;
}

static int delete_one(json_t **out, bool *gone, struct req *q, const char *name, const json_t *opts,
                      const char *policy, struct sw_err *err)
{
        const json_t *pre = json_object_get(opts, "preconditions");
        json_t *obj = NULL;
        char *uid = NULL;
        int rc;

        if (strcmp(q->kind->resource, "namespaces") == 0) {
                if (strcmp(name, "default") == 0 || strcmp(name, "kube-system") == 0 ||
                    strcmp(name, "kube-public") == 0)
                        return sw_err_set(err, SW_EPERM,
                                          "namespaces \"%s\" is forbidden: this namespace may not "
                                          "be deleted",
                                          name);
                if ((rc = delete_namespace_contents(q->api, name, err)) != 0)
                        return rc;
        }
        if (strcmp(policy, "Foreground") == 0) {
                json_t *cur = NULL;
                rc = orch_store_get(&cur, q->api->store, q->kind->store, ns_key(q), name, err);
                if (rc)
                        return rc;
                rc = gc_dependents(q->api, sw_json_str(json_object_get(cur, "metadata"), "uid", ""),
                                   policy, 0, err);
                json_decref(cur);
                if (rc)
                        return rc;
        }
        rc = orch_store_delete_graceful(&obj, gone, q->api->store, q->kind->store, ns_key(q), name,
                                        sw_json_str(pre, "uid", NULL),
                                        sw_json_str(pre, "resourceVersion", NULL),
                                        grace_period(q, opts, name), err);
        if (rc)
                return rc;
        if (!*gone && strcmp(q->kind->resource, "namespaces") == 0 &&
            strcmp(sw_json_str(json_object_get(obj, "status"), "phase", ""), "Terminating") != 0) {
                /* A namespace held by finalizers shows as Terminating until they are gone. */
                json_t *term = sw_json_copy(obj), *st = NULL;
                json_object_set_new(term, "status", json_pack("{s:s}", "phase", "Terminating"));
                if (orch_store_update(&st, NULL, q->api->store, "namespaces", term, 0, err) == 0) {
                        json_decref(obj);
                        obj = st;
                } else {
                        sw_err_clear(err);
                }
                json_decref(term);
        }
        uid = sw_xstrdup(sw_json_str(json_object_get(obj, "metadata"), "uid", ""));
        if (*gone && strcmp(policy, "Foreground") != 0)
                rc = gc_dependents(q->api, uid, policy, 0, err);
        free(uid);
        if (rc == 0)
                after_write(q, ns_key(q));
        if (rc) {
                json_decref(obj);
                return rc;
        }
        *out = obj;
        return 0;
}

static enum MHD_Result handle_delete(struct req *q)
{
        struct sw_err err = SW_ERR_INIT;
        json_t *opts = NULL, *obj = NULL;
        bool gone = false;
        int rc;

        if (has_body(q) && (rc = parse_body(&opts, q, &err)) != 0)
                return send_status(q, 400, "BadRequest", err.msg);
        if (dry_run(q)) {
                json_decref(opts);
                if ((rc = get_object(&obj, q, &err)) != 0)
                        return send_error(q, rc, &err);
                return send_json(q, 200, obj);
        }
        rc = delete_one(&obj, &gone, q, q->name, opts, propagation(q, opts), &err);
        json_decref(opts);
        if (rc == SW_ENOTFOUND) {
                char msg[SW_ERR_MSG_MAX];
                snprintf(msg, sizeof(msg), "%s \"%s\" not found", qualified(q->kind), q->name);
                return send_status(q, 404, "NotFound", msg);
        }
        if (rc)
                return send_error(q, rc, &err);
        if (!gone)
                return send_json(q, 202, obj);
        {
                json_t *d = details_of(q, q->name);
                json_object_set_new(
                        d, "uid",
                        json_string(sw_json_str(json_object_get(obj, "metadata"), "uid", "")));
                json_decref(obj);
                return send_json(q, 200, status_obj(200, "", "", d));
        }
}

static enum MHD_Result handle_deletecollection(struct req *q)
{
        struct sw_err err = SW_ERR_INIT;
        struct orch_list_query lq = {0};
        struct filter f;
        json_t *opts = NULL, *items = NULL, *o, *deleted = json_array();
        int64_t rev;
        bool more;
        size_t i;
        int rc;
        char av[128], kind[160];

        if (has_body(q) && (rc = parse_body(&opts, q, &err)) != 0) {
                json_decref(deleted);
                return send_status(q, 400, "BadRequest", err.msg);
        }
        if ((rc = filter_init(&f, q, &err)) != 0) {
                filter_release(&f);
                json_decref(opts);
                json_decref(deleted);
                return send_status(q, 400, "BadRequest", err.msg);
        }
        lq.ns = q->kind->namespaced ? q->ns : NULL;
        lq.match = filter_match;
        lq.arg = &f;
        rc = orch_store_list(&items, &rev, &more, q->api->store, q->kind->store, &lq, &err);
        filter_release(&f);
        json_array_foreach(items, i, o)
        {
                json_t *out = NULL;
                bool gone;
                const char *name = sw_json_str(json_object_get(o, "metadata"), "name", "");
                const char *saved_ns = q->ns;

                if (rc)
                        break;
                if (q->kind->namespaced)
                        q->ns = sw_json_str(json_object_get(o, "metadata"), "namespace", "");
                if (dry_run(q))
                        out = json_incref(o);
                else
                        rc = delete_one(&out, &gone, q, name, opts, propagation(q, opts), &err);
                q->ns = saved_ns;
                if (rc == SW_ENOTFOUND) {
                        sw_err_clear(&err);
                        rc = 0;
                        continue;
                }
                if (out)
                        json_array_append_new(deleted, out);
        }
        json_decref(items);
        json_decref(opts);
        if (rc) {
                json_decref(deleted);
                return send_error(q, rc, &err);
        }
        orch_kind_api_version(q->kind, av, sizeof(av));
        snprintf(kind, sizeof(kind), "%sList", q->kind->kind);
        return send_json(q, 200,
                         json_pack("{s:s,s:s,s:{},s:o}", "kind", kind, "apiVersion", av, "metadata",
                                   "items", deleted));
}

/* ---- watch -------------------------------------------------------------- */

struct watch {
        struct orch_api *api;
        const struct orch_kind *kind;
        struct req q; /* kept for the Table conversion (kind and includeObject) */
        struct filter f;
        char *label_text, *field_text, *ns;
        int64_t rev;
        int64_t deadline_ms;
        int64_t last_sent_ms;
        bool table, columns_sent, bookmarks, done, final_bookmark;
        bool selective; /* label or field selector given */
        struct sw_buf pending;
        json_t *initial;          /* synthetic ADDED events still to send */
        struct local_call *local; /* events go to local->fn instead of `pending` */
};

static void watch_free(void *cls)
{
        struct watch *w = cls;

        filter_release(&w->f);
        free(w->label_text);
        free(w->field_text);
        free(w->ns);
        json_decref(w->initial);
        sw_buf_release(&w->pending);
        free(w);
}

static void watch_emit(struct watch *w, const char *type, json_t *obj)
{
        json_t *ev;
        char *line;

        if (w->local) {
                if (w->local->fn(w->local->fn_arg, type, obj) != 0)
                        w->done = true;
                w->last_sent_ms = sw_mono_ms();
                return;
        }
        if (w->table && strcmp(type, "BOOKMARK") != 0 && strcmp(type, "ERROR") != 0) {
                json_t *items = json_pack("[O]", obj);
                char rv[32];
                snprintf(rv, sizeof(rv), "%s",
                         sw_json_str(json_object_get(obj, "metadata"), "resourceVersion", ""));
                obj = table_new(&w->q, items, rv, NULL, !w->columns_sent);
                w->columns_sent = true;
                json_decref(items);
        } else {
                json_incref(obj);
        }
        ev = json_pack("{s:s,s:o}", "type", type, "object", obj);
        line = sw_json_dump(ev);
        json_decref(ev);
        sw_buf_puts(&w->pending, line, NULL);
        sw_buf_putc(&w->pending, '\n', NULL);
        free(line);
        w->last_sent_ms = sw_mono_ms();
}

static void watch_bookmark(struct watch *w)
{
        char rv[32], av[128];
        json_t *obj;

        snprintf(rv, sizeof(rv), "%lld", (long long)w->rev);
        orch_kind_api_version(w->kind, av, sizeof(av));
        obj = json_pack("{s:s,s:s,s:{s:s}}", "kind", w->kind->kind, "apiVersion", av, "metadata",
                        "resourceVersion", rv);
        watch_emit(w, "BOOKMARK", obj);
        json_decref(obj);
}

/* Turn store events past w->rev into lines in w->pending. */
static void watch_poll(struct watch *w)
{
        struct sw_err err = SW_ERR_INIT;
        struct orch_store *store = w->api->store;
        struct orch_event **evs = NULL;
        bool plain = !w->table && !w->selective;
        size_t n = 0;
        int64_t scanned = w->rev;
        int rc;

        rc = orch_store_events_raw(&evs, &n, &scanned, store, w->kind->store, w->rev, 256, &err);
        if (rc) {
                json_t *st = status_obj(410, "Expired", err.msg, NULL);
                watch_emit(w, "ERROR", st);
                json_decref(st);
                w->done = true;
                return;
        }
        for (size_t i = 0; i < n; i++) {
                struct orch_event *ev = evs[i];
                w->rev = ev->rev;
                if (w->f.ns && strcmp(ev->ns, w->f.ns) != 0)
                        continue;
                if (plain && w->local) {
                        /* Parsed once for every watcher in this process. */
                        json_t *obj = orch_event_json(store, ev, false);
                        if (obj)
                                watch_emit(w, ev->type, obj);
                        json_decref(obj);
                        if (w->done)
                                break;
                } else if (plain) {
                        /* No selector and no Table: the stored text goes out as it is. */
                        sw_buf_printf(&w->pending, NULL, "{\"type\":\"%s\",\"object\":", ev->type);
                        sw_buf_puts(&w->pending, ev->body, NULL);
                        sw_buf_puts(&w->pending, "}\n", NULL);
                        w->last_sent_ms = sw_mono_ms();
                } else {
                        /*
                         * With a selector, an object that starts or stops matching is
                         * ADDED or DELETED for this watch, as with the real server.
                         */
                        json_t *obj = orch_event_json(store, ev, false);
                        json_t *prev = orch_event_json(store, ev, true);
                        bool now = obj && filter_match(obj, &w->f);
                        bool before = prev ? filter_match(prev, &w->f) : now;
                        const char *type = ev->type;

                        if (strcmp(type, "MODIFIED") == 0 && now != before)
                                type = now ? "ADDED" : "DELETED";
                        if (now || before)
                                watch_emit(w, type, obj);
                        json_decref(obj);
                        json_decref(prev);
                        if (w->done)
                                break;
                }
        }
        orch_events_free(evs, n);
        /*
         * Events of other kinds up to `scanned` were looked at under the store
         * lock and skipped: resume past them, or the wait below returns at once
         * and the next poll scans them again.
         */
        if (scanned > w->rev)
                w->rev = scanned;
}

static ssize_t watch_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        struct watch *w = cls;

        (void)pos;
        for (;;) {
                if (w->pending.len) {
                        size_t n = w->pending.len < max ? w->pending.len : max;
                        memcpy(buf, w->pending.data, n);
                        memmove(w->pending.data, w->pending.data + n, w->pending.len - n);
                        w->pending.len -= n;
                        w->pending.data[w->pending.len] = '\0';
                        return (ssize_t)n;
                }
                if (w->done || atomic_load(&w->api->stopping))
                        return MHD_CONTENT_READER_END_OF_STREAM;
                if (json_array_size(w->initial)) {
                        json_t *o;
                        size_t i;
                        json_array_foreach(w->initial, i, o) watch_emit(w, "ADDED", o);
                        json_array_clear(w->initial);
                        continue;
                }
                watch_poll(w);
                if (w->pending.len)
                        continue;
                if (sw_mono_ms() >= w->deadline_ms) {
                        /* Last, where to resume, however quiet the kind was. */
                        if (w->bookmarks && !w->final_bookmark) {
                                w->final_bookmark = true;
                                watch_bookmark(w);
                                continue;
                        }
                        return MHD_CONTENT_READER_END_OF_STREAM;
                }
                if (w->bookmarks && sw_mono_ms() - w->last_sent_ms >= API_BOOKMARK_MS) {
                        watch_bookmark(w);
                        continue;
                }
                {
                        int64_t left = w->deadline_ms - sw_mono_ms();
                        orch_store_wait_kind(w->api->store, w->kind->store, w->rev,
                                             left < 500 ? left : 500);
                }
        }
}

/* A watch from this process: its events go to the caller's function, on its thread. */
static enum MHD_Result local_watch_run(struct watch *w)
{
        orch_store_local_watch(w->api->store, w->kind->store, 1);
        while (!w->done && !atomic_load(&w->api->stopping)) {
                int64_t left;
                if (json_array_size(w->initial)) {
                        json_t *o;
                        size_t i;
                        json_array_foreach(w->initial, i, o)
                        {
                                watch_emit(w, "ADDED", o);
                                if (w->done)
                                        break;
                        }
                        json_array_clear(w->initial);
                        continue;
                }
                watch_poll(w);
                left = w->deadline_ms - sw_mono_ms();
                if (!w->done && left <= 0 && w->bookmarks)
                        watch_bookmark(w); /* where to resume, however quiet the kind */
                if (w->done || left <= 0)
                        break;
                if (w->bookmarks && sw_mono_ms() - w->last_sent_ms >= API_BOOKMARK_MS) {
                        watch_bookmark(w);
                        continue;
                }
                orch_store_wait_kind(w->api->store, w->kind->store, w->rev,
                                     left < 500 ? left : 500);
        }
        orch_store_local_watch(w->api->store, w->kind->store, -1);
        w->local->status = 200;
        watch_free(w);
        return MHD_YES;
}

static enum MHD_Result handle_watch(struct req *q, struct filter *f)
{
        struct watch *w = sw_xcalloc(1, sizeof(*w));
        struct sw_err err = SW_ERR_INIT;
        const char *rv = arg(q, "resourceVersion"), *to = arg(q, "timeoutSeconds");
        struct MHD_Response *r;
        enum MHD_Result ret;
        int64_t timeout_s = API_WATCH_DEFAULT_S;

        w->api = q->api;
        w->kind = q->kind;
        w->q = *q;
        w->q.body = NULL;
        w->q.warning = NULL;
        w->f = *f;
        memset(f, 0, sizeof(*f)); /* the watch owns the selectors now */
        if (q->ns && q->kind->namespaced) {
                w->ns = sw_xstrdup(q->ns);
                w->f.ns = w->ns;
                w->q.ns = w->ns;
        } else {
                w->f.ns = NULL;
                w->q.ns = NULL;
        }
        w->q.name = NULL;
        w->table = wants_table(q);
        w->bookmarks = arg_true(q, "allowWatchBookmarks");
        w->selective = (arg(q, "labelSelector") && *arg(q, "labelSelector")) ||
                       (arg(q, "fieldSelector") && *arg(q, "fieldSelector"));
        sw_buf_init(&w->pending, 0);
        if (to) {
                char *end = NULL;
                long long t = strtoll(to, &end, 10);
                if (!*end && t > 0)
                        timeout_s = t;
        }
        w->deadline_ms = sw_mono_ms() + timeout_s * 1000;
        w->last_sent_ms = sw_mono_ms();
        if (!rv || !*rv || strcmp(rv, "0") == 0) {
                /* No version: start with the current state as ADDED events. */
                struct orch_list_query lq = {0};
                bool more;
                int rc;
                lq.ns = w->f.ns;
                lq.match = filter_match;
                lq.arg = &w->f;
                rc = orch_store_list(&w->initial, &w->rev, &more, q->api->store, q->kind->store,
                                     &lq, &err);
                if (rc) {
                        watch_free(w);
                        return send_error(q, rc, &err);
                }
        } else {
                char *end = NULL;
                w->rev = strtoll(rv, &end, 10);
                if (*end || w->rev < 0) {
                        watch_free(w);
                        return send_status(q, 400, "BadRequest", "invalid resourceVersion");
                }
        }
        if (q->local) {
                w->local = q->local;
                return local_watch_run(w);
        }
        /* Watch requests carry the connection's Accept; the stream is chunked JSON lines. */
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, watch_read, w,
                                              watch_free);
        MHD_add_response_header(r, "Content-Type", "application/json");
        MHD_add_response_header(r, "Cache-Control", "no-cache, private");
        ret = MHD_queue_response(q->conn, 200, r);
        MHD_destroy_response(r);
        return ret;
}

/* ---- routing ------------------------------------------------------------- */

#define MAX_SEGS 12

static int split_path(char *path, char **segs)
{
        int n = 0;
        char *p = path;

        while (*p == '/')
                p++;
        while (*p && n < MAX_SEGS) {
                char *slash = strchr(p, '/');
                segs[n++] = p;
                if (!slash)
                        break;
                *slash = '\0';
                p = slash + 1;
                while (*p == '/')
                        p++;
        }
        return *p && n == MAX_SEGS ? -1 : n;
}

static enum MHD_Result not_found(struct req *q)
{
        return send_json(q, 404,
                         status_obj(404, "NotFound",
                                    "the server could not find the requested resource",
                                    json_object()));
}

static enum MHD_Result method_not_allowed(struct req *q)
{
        char msg[128];

        snprintf(msg, sizeof(msg),
                 "the server does not allow this method on the requested "
                 "resource");
        return send_status(q, 405, "MethodNotAllowed", msg);
}

/* ---- pods/log: proxied to the node agent ------------------------------------ */

/* Query values passed on to the agent: numbers and booleans only. */
static bool log_arg_ok(const char *v)
{
        if (!v || !*v || strlen(v) > 20)
                return false;
        for (const char *s = v; *s; s++)
                if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z')))
                        return false;
        return true;
}

static ssize_t log_proxy_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        int fd = (int)(intptr_t)cls;
        ssize_t n;

        (void)pos;
        do
                n = recv(fd, buf, max, 0);
        while (n < 0 && errno == EINTR);
        return n > 0 ? n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void log_proxy_free(void *cls)
{
        close((int)(intptr_t)cls);
}

/*
 * GET pods/<name>/log: the node agent that runs the pod serves its
 * containers' logs on 127.0.0.1 at the Node's
 * status.daemonEndpoints.kubeletEndpoint.Port
 * (/containerLogs/<ns>/<pod>/<container>); the answer is streamed through,
 * so `kubectl logs -f` follows. container, follow, previous, tailLines,
 * limitBytes and timestamps are passed on.
 */
static enum MHD_Result handle_pod_log(struct req *q)
{
        static const char *const pass[] = {"follow", "previous", "tailLines", "limitBytes",
                                           "timestamps"};
        json_t *pod = NULL, *node = NULL;
        struct sw_err err = SW_ERR_INIT;
        struct sw_buf path = SW_BUF_INIT;
        const char *ctr = arg(q, "container"), *node_name;
        char head[8192], msg[512];
        size_t got = 0;
        long port;
        int fd = -1, code = 0;
        enum MHD_Result ret;
        struct sockaddr_in sa;

        if (strcmp(q->method, "GET") != 0)
                return method_not_allowed(q);
        if (q->local)
                return send_status(q, 400, "BadRequest", "pods/log is served over HTTP only");
        if (orch_store_get(&pod, q->api->store, "pods", ns_key(q), q->name, &err) != 0) {
                ret = send_error(q, err.code, &err);
                goto out;
        }
        node_name = sw_json_str(json_object_get(pod, "spec"), "nodeName", "");
        if (!ctr || !*ctr)
                ctr = sw_json_str(
                        json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"),
                                       0),
                        "name", "");
        if (!*node_name) {
                snprintf(msg, sizeof(msg), "pod %s does not have a host assigned", q->name);
                ret = send_status(q, 400, "BadRequest", msg);
                goto out;
        }
        if (orch_store_get(&node, q->api->store, "nodes", "", node_name, &err) != 0) {
                ret = send_error(q, err.code, &err);
                goto out;
        }
        port = (long)sw_json_int(
                json_object_get(json_object_get(json_object_get(node, "status"), "daemonEndpoints"),
                                "kubeletEndpoint"),
                "Port", 0);
        if (port <= 0 || port > 65535 || strchr(ctr, '/') || strchr(ctr, '?') || strchr(ctr, ' ')) {
                snprintf(msg, sizeof(msg), "node %s serves no container logs", node_name);
                ret = send_status(q, 503, "ServiceUnavailable", msg);
                goto out;
        }
        sw_buf_printf(&path, &err, "GET /containerLogs/%s/%s/%s?x=1", q->ns, q->name, ctr);
        for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++)
                if (log_arg_ok(arg(q, pass[i])))
                        sw_buf_printf(&path, &err, "&%s=%s", pass[i], arg(q, pass[i]));
        sw_buf_puts(&path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", &err);
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
            send(fd, sw_buf_str(&path), strlen(sw_buf_str(&path)), MSG_NOSIGNAL) < 0) {
                snprintf(msg, sizeof(msg), "cannot reach the log endpoint of node %s", node_name);
                ret = send_status(q, 503, "ServiceUnavailable", msg);
                goto out;
        }
        /* The agent's status line and headers, read up to the blank line. */
        while (got < sizeof(head) - 1 && !(got >= 4 && !memcmp(head + got - 4, "\r\n\r\n", 4))) {
                ssize_t n = recv(fd, head + got, 1, 0);
                if (n <= 0)
                        break;
                got += (size_t)n;
        }
        head[got] = '\0';
        if (!strncmp(head, "HTTP/", 5) && strchr(head, ' '))
                code = (int)strtol(strchr(head, ' ') + 1, NULL, 10);
        if (code != 200) {
                ssize_t n = recv(fd, msg, sizeof(msg) - 1, 0);
                msg[n > 0 ? n : 0] = '\0';
                msg[strcspn(msg, "\n")] = '\0';
                ret = send_status(q, code == 404 || code == 400 ? (unsigned)code : 502,
                                  code == 404 ? "NotFound" : "BadRequest",
                                  *msg ? msg : "the node agent did not answer");
                goto out;
        }
        {
                struct MHD_Response *r =
                        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, log_proxy_read,
                                                          (void *)(intptr_t)fd, log_proxy_free);
                fd = -1; /* the response closes it */
                MHD_add_response_header(r, "Content-Type", "text/plain");
                ret = MHD_queue_response(q->conn, 200, r);
                MHD_destroy_response(r);
        }
out:
        if (fd >= 0)
                close(fd);
        sw_buf_release(&path);
        json_decref(pod);
        json_decref(node);
        return ret;
}

static enum MHD_Result route_resource(struct req *q, const char *group, const char *version,
                                      char **r, int n)
{
        const char *res, *m = q->method;

        if (n >= 3 && strcmp(r[0], "namespaces") == 0 && strcmp(r[2], "status") != 0 &&
            strcmp(r[2], "finalize") != 0) {
                q->ns = r[1];
                res = r[2];
                q->name = n > 3 ? r[3] : NULL;
                q->sub = n > 4 ? r[4] : NULL;
                if (n > 5)
                        return not_found(q);
        } else {
                res = r[0];
                q->name = n > 1 ? r[1] : NULL;
                q->sub = n > 2 ? r[2] : NULL;
                if (n > 3)
                        return not_found(q);
        }
        q->kind = orch_kind_find(group, version, res);
        if (!q->kind)
                return not_found(q);
        if (q->ns && !q->kind->namespaced)
                return not_found(q);
        if (q->sub && q->name && q->ns && !strcmp(q->sub, "log") &&
            !strcmp(q->kind->resource, "pods"))
                return handle_pod_log(q);
        if (q->sub) {
                unsigned need = strcmp(q->sub, "status") == 0    ? ORCH_SUB_STATUS
                                : strcmp(q->sub, "scale") == 0   ? ORCH_SUB_SCALE
                                : strcmp(q->sub, "binding") == 0 ? ORCH_SUB_BINDING
                                                                 : 0;
                if (!(q->kind->subresources & need))
                        return not_found(q);
        }
        if (q->kind->namespaced && !q->ns && q->name)
                return not_found(q);
        if (!q->name) {
                if (q->kind->namespaced && !q->ns && strcmp(m, "GET") != 0)
                        return not_found(q); /* writes need a namespace */
                if (strcmp(m, "GET") == 0)
                        return handle_list(q);
                if (strcmp(m, "POST") == 0)
                        return handle_create(q);
                if (strcmp(m, "DELETE") == 0)
                        return handle_deletecollection(q);
                return method_not_allowed(q);
        }
        if (q->sub && strcmp(q->sub, "binding") == 0)
                return strcmp(m, "POST") == 0 ? handle_binding(q) : method_not_allowed(q);
        if (strcmp(m, "GET") == 0)
                return handle_get(q);
        if (strcmp(m, "PUT") == 0)
                return handle_update(q);
        if (strcmp(m, "PATCH") == 0)
                return handle_patch(q);
        if (strcmp(m, "DELETE") == 0 && !q->sub)
                return handle_delete(q);
        return method_not_allowed(q);
}

static enum MHD_Result route(struct req *q, const char *url)
{
        char *path = sw_xstrdup(url), *segs[MAX_SEGS];
        int n = split_path(path, segs);
        enum MHD_Result ret;
        json_t *doc = NULL;

        if (n < 0) {
                ret = not_found(q);
                goto out;
        }
        if (n == 1 && strcmp(segs[0], "version") == 0) {
                ret = send_json(q, 200,
                                json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "major", "1",
                                          "minor", "32", "gitVersion", "v1.32.0-slipway",
                                          "gitCommit", "", "gitTreeState", "clean", "buildDate",
                                          "2026-01-01T00:00:00Z", "goVersion", "none", "compiler",
                                          "c11", "platform", "linux/amd64"));
                goto out;
        }
        if (n == 1 && (strcmp(segs[0], "healthz") == 0 || strcmp(segs[0], "livez") == 0 ||
                       strcmp(segs[0], "readyz") == 0)) {
                ret = send_text(q, 200, "text/plain", sw_xstrdup("ok"));
                goto out;
        }
        if (n >= 1 && strcmp(segs[0], "api") == 0) {
                if (n == 1)
                        doc = orch_discovery_versions();
                else if (n == 2)
                        doc = orch_discovery_resources("", segs[1]);
                if (n <= 2) {
                        ret = doc ? send_json(q, 200, doc) : not_found(q);
                        goto out;
                }
                if (strcmp(segs[1], "v1") != 0) {
                        ret = not_found(q);
                        goto out;
                }
                ret = route_resource(q, "", "v1", segs + 2, n - 2);
                note_write(q);
                goto out;
        }
        if (n >= 1 && strcmp(segs[0], "apis") == 0) {
                if (n == 1) {
                        ret = send_json(q, 200, orch_discovery_groups());
                        goto out;
                }
                if (n == 2) {
                        json_t *groups = orch_discovery_groups(), *g;
                        size_t i;
                        json_array_foreach(json_object_get(groups, "groups"), i, g)
                        {
                                if (strcmp(sw_json_str(g, "name", ""), segs[1]) == 0) {
                                        doc = sw_json_copy(g);
                                        json_object_set_new(doc, "kind", json_string("APIGroup"));
                                        json_object_set_new(doc, "apiVersion", json_string("v1"));
                                }
                        }
                        json_decref(groups);
                        ret = doc ? send_json(q, 200, doc) : not_found(q);
                        goto out;
                }
                if (n == 3) {
                        doc = orch_discovery_resources(segs[1], segs[2]);
                        ret = doc ? send_json(q, 200, doc) : not_found(q);
                        goto out;
                }
                ret = route_resource(q, segs[1], segs[2], segs + 3, n - 3);
                note_write(q);
                goto out;
        }
        if (n >= 2 && strcmp(segs[0], "openapi") == 0 && strcmp(segs[1], "v3") == 0) {
                if (n == 2)
                        doc = orch_openapi_root();
                else if (n == 4 && strcmp(segs[2], "api") == 0)
                        doc = orch_openapi_group_version("", segs[3]);
                else if (n == 5 && strcmp(segs[2], "apis") == 0)
                        doc = orch_openapi_group_version(segs[3], segs[4]);
                ret = doc ? send_json(q, 200, doc) : not_found(q);
                goto out;
        }
        ret = not_found(q);
out:
        free(path);
        return ret;
}

/* Constant-time comparison of the presented bearer token. */
static bool authorized(struct req *q, const char *url)
{
        const char *auth = header(q, "Authorization");
        const char *want = q->api->token;
        size_t n, m;
        unsigned char diff = 0;

        if (strcmp(url, "/version") == 0 || strcmp(url, "/healthz") == 0 ||
            strcmp(url, "/livez") == 0 || strcmp(url, "/readyz") == 0)
                return true;
        if (!auth || strncmp(auth, "Bearer ", 7) != 0)
                return false;
        auth += 7;
        n = strlen(auth);
        m = strlen(want);
        diff = (unsigned char)(n != m);
        for (size_t i = 0; i < m; i++)
                diff |= (unsigned char)(want[i] ^ (i < n ? auth[i] : 0));
        return diff == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
        struct orch_api *api = cls;
        struct conn_ctx *ctx = *con_cls;
        struct req q;
        enum MHD_Result ret;

        (void)version;
        if (!ctx) {
                ctx = sw_xcalloc(1, sizeof(*ctx));
                sw_buf_init(&ctx->body, API_BODY_MAX);
                *con_cls = ctx;
                return MHD_YES;
        }
        if (*upload_size) {
                if (!ctx->too_big && sw_buf_append(&ctx->body, upload, *upload_size, NULL) != 0)
                        ctx->too_big = true;
                *upload_size = 0;
                return MHD_YES;
        }
        memset(&q, 0, sizeof(q));
        q.api = api;
        q.conn = conn;
        q.method = method;
        q.body = sw_buf_str(&ctx->body);
        q.body_len = ctx->body.len;
        if (!authorized(&q, url)) {
                ret = send_json(&q, 401, status_obj(401, "Unauthorized", "Unauthorized", NULL));
        } else if (ctx->too_big) {
                ret = send_json(&q, 413,
                                status_obj(413, "RequestEntityTooLarge",
                                           "the request body is larger than 3 MiB", NULL));
        } else {
                ret = route(&q, url);
        }
        free(q.warning);
        sw_log(SW_LOG_DEBUG, "orch_api", "request", "{s:s,s:s}", "method", method, "url", url);
        return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        struct conn_ctx *ctx = *con_cls;

        (void)cls;
        (void)conn;
        (void)toe;
        if (!ctx)
                return;
        sw_buf_release(&ctx->body);
        free(ctx);
        *con_cls = NULL;
}

/* ---- calls from this process ---------------------------------------------- */

/* "a=1&b=x%3Dy" -> {"a":"1","b":"x=y"}, as libmicrohttpd decodes a query. */
static json_t *query_args(const char *query)
{
        json_t *args = json_object();
        const char *p = query ? query : "";

        while (*p) {
                size_t len = strcspn(p, "&"), klen = strcspn(p, "=");
                if (klen > len)
                        klen = len;
                if (klen > 0) {
                        char *key = sw_xstrndup(p, klen);
                        char *val = klen < len ? sw_pct_decode(p + klen + 1, len - klen - 1)
                                               : sw_xstrdup("");
                        json_object_set_new(args, key, json_string(val));
                        free(key);
                        free(val);
                }
                p += len;
                if (*p == '&')
                        p++;
        }
        return args;
}

/* Route one call from this process; the caller has filled `call`. */
static int local_call(struct orch_api *api, struct local_call *call, long *status, json_t **out,
                      const char *method, const char *path, struct sw_err *err)
{
        const char *qm = strchr(path, '?');
        char *url = qm ? sw_xstrndup(path, (size_t)(qm - path)) : sw_xstrdup(path);
        struct req q;

        memset(&q, 0, sizeof(q));
        q.api = api;
        q.method = method;
        q.local = call;
        call->args = query_args(qm ? qm + 1 : NULL);
        route(&q, url);
        free(q.warning);
        json_decref(call->args);
        free(url);
        *status = call->status;
        *out = call->out;
        if (call->status == 0) {
                json_decref(call->out);
                *out = NULL;
                return sw_err_set(err, SW_EINTERNAL, "%s %s: no reply", method, path);
        }
        return 0;
}

static int local_request(void *ctx, long *status, json_t **out, const char *method,
                         const char *path, const char *content_type, json_t *body, bool give,
                         struct sw_err *err)
{
        struct local_call call;
        int rc;

        memset(&call, 0, sizeof(call));
        call.content_type = content_type ? content_type : "application/json";
        call.body = body;
        call.body_given = give;
        rc = local_call(ctx, &call, status, out, method, path, err);
        if (give)
                json_decref(body);
        return rc;
}

static int local_watch(void *ctx, long *status, json_t **out, const char *path,
                       int (*fn)(void *arg, const char *type, const json_t *obj), void *arg,
                       struct sw_err *err)
{
        struct local_call call;

        memset(&call, 0, sizeof(call));
        call.content_type = "application/json";
        call.fn = fn;
        call.fn_arg = arg;
        return local_call(ctx, &call, status, out, "GET", path, err);
}

static void local_hold(void *ctx)
{
        orch_store_hold(((struct orch_api *)ctx)->store);
}

static int local_release(void *ctx, struct sw_err *err)
{
        return orch_store_release(((struct orch_api *)ctx)->store, err);
}

void orch_api_local(struct orch_kube_local *out, struct orch_api *api)
{
        out->request = local_request;
        out->watch = local_watch;
        out->hold = local_hold;
        out->release = local_release;
        out->ctx = api;
}

/* The namespaces every cluster has. */
static int bootstrap(struct orch_api *api, struct sw_err *err)
{
        static const char *const names[] = {"default", "kube-system", "kube-public",
                                            "kube-node-lease"};

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                json_t *ns = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "Namespace",
                                       "metadata", "name", names[i]);
                json_t *out = NULL;
                const struct orch_kind *k = orch_kind_find("", "v1", "namespaces");
                int rc = orch_object_admit(ns, NULL, k, err);

                if (rc == 0) {
                        orch_ssa_record_update(ns, NULL, "kube-apiserver", NULL, k->smp, "v1");
                        rc = orch_store_create(&out, api->store, "namespaces", ns, 0, err);
                }
                json_decref(ns);
                json_decref(out);
                if (rc == SW_EEXIST) {
                        sw_err_clear(err);
                        rc = 0;
                }
                if (rc)
                        return rc;
        }
        return 0;
}

static int parse_listen(struct sockaddr_in *sa, const char *listen, struct sw_err *err)
{
        const char *colon = strrchr(listen, ':');
        char host[64];
        char *end = NULL;
        long port;

        memset(sa, 0, sizeof(*sa));
        if (!colon || (size_t)(colon - listen) >= sizeof(host))
                return sw_err_set(err, SW_EINVAL, "listen address '%s': expected host:port",
                                  listen);
        memcpy(host, listen, (size_t)(colon - listen));
        host[colon - listen] = '\0';
        port = strtol(colon + 1, &end, 10);
        if (*end || port < 0 || port > 65535 || colon[1] == '\0')
                return sw_err_set(err, SW_EINVAL, "listen address '%s': bad port", listen);
        sa->sin_family = AF_INET;
        sa->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, *host ? host : "127.0.0.1", &sa->sin_addr) != 1)
                return sw_err_set(err, SW_EINVAL,
                                  "listen address '%s': '%s' is not an IPv4 address", listen, host);
        return 0;
}

int orch_api_start(struct orch_api **out, const struct orch_api_options *opts, struct sw_err *err)
{
        struct orch_api *api = sw_xcalloc(1, sizeof(*api));
        struct orch_store_options so = ORCH_STORE_OPTIONS_INIT;
        struct sockaddr_in sa;
        unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD;
        const union MHD_DaemonInfo *info;
        int rc;

        pthread_mutex_init(&api->alloc_mu, NULL);
        pthread_mutex_init(&api->ns_mu, NULL);
        api->ns_active = json_object();
        atomic_init(&api->stopping, false);
        atomic_init(&api->quota_gen, 1); /* quota_cache 0: generation 0, never current */
        atomic_init(&api->quota_cache, 0);
        if (!opts->token || !*opts->token) {
                rc = sw_err_set(err, SW_EINVAL, "the API server needs a bearer token");
                goto fail;
        }
        api->token = sw_xstrdup(opts->token);
        api->default_toleration_s = opts->default_toleration_s;
        if ((rc = parse_cidr(&api->svc_base, &api->svc_size,
                             opts->service_cidr ? opts->service_cidr : "127.77.0.0/16", err)) != 0)
                goto fail;
        if ((rc = parse_listen(&sa, opts->listen ? opts->listen : "127.0.0.1:6443", err)) != 0)
                goto fail;
        so.path = opts->db_path;
        so.event_window = opts->event_window;
        if ((rc = orch_store_open(&api->store, &so, err)) != 0)
                goto fail;
        if ((rc = bootstrap(api, err)) != 0)
                goto fail;
        if (opts->tls_cert_path) {
                size_t len;
                if ((rc = sw_read_file(&api->tls_cert, &len, opts->tls_cert_path, 1 << 20, err)) !=
                            0 ||
                    (rc = sw_read_file(&api->tls_key, &len,
                                       opts->tls_key_path ? opts->tls_key_path : "", 1 << 20,
                                       err)) != 0) {
                        sw_err_wrap(err, "TLS");
                        goto fail;
                }
                flags |= MHD_USE_TLS;
        }
        api->daemon = MHD_start_daemon(
                flags, 0, NULL, NULL, on_request, api, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                MHD_OPTION_NOTIFY_COMPLETED, on_completed, api, MHD_OPTION_CONNECTION_LIMIT,
                (unsigned)1000, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)0,
                api->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, api->tls_cert,
                MHD_OPTION_HTTPS_MEM_KEY, api->tls_key, MHD_OPTION_END);
        if (!api->daemon) {
                rc = sw_err_set(err, SW_EIO,
                                "cannot listen on %s (address in use, or TLS files invalid)",
                                opts->listen ? opts->listen : "127.0.0.1:6443");
                goto fail;
        }
        info = MHD_get_daemon_info(api->daemon, MHD_DAEMON_INFO_BIND_PORT);
        api->port = info ? info->port : ntohs(sa.sin_port);
        *out = api;
        return 0;
fail:
        orch_api_stop(api);
        return rc;
}

uint16_t orch_api_port(const struct orch_api *api)
{
        return api->port;
}

void orch_api_stop(struct orch_api *api)
{
        if (!api)
                return;
        atomic_store(&api->stopping, true);
        if (api->store)
                orch_store_wake(api->store);
        if (api->daemon)
                MHD_stop_daemon(api->daemon);
        orch_store_free(api->store);
        sw_free_secret(api->token);
        free(api->tls_cert);
        sw_free_secret(api->tls_key);
        pthread_mutex_destroy(&api->alloc_mu);
        pthread_mutex_destroy(&api->ns_mu);
        json_decref(api->ns_active);
        free(api);
}
