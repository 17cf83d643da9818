/*
 * kube.c - the Kubernetes API client (see kube.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/base64.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/yaml.h"
#include "orchestrator/client/kube.h"
#include "common/banned.h"

#define KUBE_REPLY_MAX ((size_t)64 << 20)
#define KUBECONFIG_MAX ((size_t)1 << 20)

struct orch_kube {
        CURL *curl;
        char *server; /* without a trailing slash */
        char *auth_header;
        char *ca_pem, *cert_pem, *key_pem;
        bool insecure;
        int64_t timeout_ms;
        bool is_local; /* `local` below instead of libcurl */
        struct orch_kube_local local;
};

/* ---- paths ---- */

struct kind_path {
        const char *api_version;
        const char *kind;
        const char *resource;
        bool namespaced;
};

static const struct kind_path kind_paths[] = {
        {"v1", "Namespace", "namespaces", false},
        {"v1", "Node", "nodes", false},
        {"v1", "Pod", "pods", true},
        {"v1", "Service", "services", true},
        {"v1", "Endpoints", "endpoints", true},
        {"v1", "ConfigMap", "configmaps", true},
        {"v1", "Secret", "secrets", true},
        {"v1", "ServiceAccount", "serviceaccounts", true},
        {"v1", "ResourceQuota", "resourcequotas", true},
        {"v1", "LimitRange", "limitranges", true},
        {"v1", "Event", "events", true},
        {"apps/v1", "Deployment", "deployments", true},
        {"apps/v1", "ReplicaSet", "replicasets", true},
        {"networking.k8s.io/v1", "Ingress", "ingresses", true},
        {"networking.k8s.io/v1", "IngressClass", "ingressclasses", false},
        {"coordination.k8s.io/v1", "Lease", "leases", true},
        {"batch/v1", "Job", "jobs", true},
        {"batch/v1", "CronJob", "cronjobs", true},
};

int orch_kube_path(char **out, const char *api_version, const char *kind, const char *ns,
                   const char *name, struct sw_err *err)
{
        const struct kind_path *k = NULL;
        struct sw_buf b;

        for (size_t i = 0; i < sizeof(kind_paths) / sizeof(kind_paths[0]); i++)
                if (!strcmp(kind_paths[i].api_version, api_version) &&
                    !strcmp(kind_paths[i].kind, kind))
                        k = &kind_paths[i];
        if (!k)
                return sw_err_set(err, SW_EINVAL, "unknown kind '%s' in '%s'", kind, api_version);
        sw_buf_init(&b, 4096);
        sw_buf_puts(&b, strchr(api_version, '/') ? "/apis/" : "/api/", err);
        sw_buf_puts(&b, api_version, err);
        if (k->namespaced && ns && *ns)
                sw_buf_printf(&b, err, "/namespaces/%s", ns);
        sw_buf_printf(&b, err, "/%s", k->resource);
        if (name)
                sw_buf_printf(&b, err, "/%s", name);
        if (err && err->code) {
                sw_buf_release(&b);
                return err->code;
        }
        *out = sw_buf_detach(&b, NULL);
        return 0;
}

/* ---- construction ---- */

int orch_kube_new(struct orch_kube **out, const struct orch_kube_options *opts, struct sw_err *err)
{
        struct orch_kube *c;
        size_t n;

        if (!opts->server || strncmp(opts->server, "http", 4) != 0)
                return sw_err_set(err, SW_EINVAL, "kubernetes server '%s' is not an http(s) URL",
                                  opts->server ? opts->server : "");
        c = sw_xcalloc(1, sizeof(*c));
        c->curl = curl_easy_init();
        if (!c->curl) {
                free(c);
                return sw_err_set(err, SW_EINTERNAL, "curl_easy_init failed");
        }
        c->server = sw_xstrdup(opts->server);
        n = strlen(c->server);
        while (n > 0 && c->server[n - 1] == '/')
                c->server[--n] = '\0';
        if (opts->token && *opts->token)
                c->auth_header = sw_xasprintf("Authorization: Bearer %s", opts->token);
        c->ca_pem = opts->ca_pem ? sw_xstrdup(opts->ca_pem) : NULL;
        c->cert_pem = opts->cert_pem ? sw_xstrdup(opts->cert_pem) : NULL;
        c->key_pem = opts->key_pem ? sw_xstrdup(opts->key_pem) : NULL;
        c->insecure = opts->insecure;
        c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
        *out = c;
        return 0;
}

void orch_kube_new_local(struct orch_kube **out, const struct orch_kube_local *local)
{
        struct orch_kube *c = sw_xcalloc(1, sizeof(*c));

        c->server = sw_xstrdup("in-process");
        c->is_local = true;
        c->local = *local;
        c->timeout_ms = 30000;
        *out = c;
}

void orch_kube_free(struct orch_kube *c)
{
        if (!c)
                return;
        if (c->curl)
                curl_easy_cleanup(c->curl);
        free(c->server);
        sw_free_secret(c->auth_header);
        free(c->ca_pem);
        free(c->cert_pem);
        sw_free_secret(c->key_pem);
        free(c);
}

const char *orch_kube_server(const struct orch_kube *c)
{
        return c->server;
}

/* ---- kubeconfig ---- */

/* The entry of `list` (clusters, users, contexts) called `name`: its inner object. */
static const json_t *named(const json_t *list, const char *name, const char *inner)
{
        const json_t *e;
        size_t i;

        json_array_foreach(list, i, e)
        {
                if (!strcmp(sw_json_str(e, "name", ""), name))
                        return json_object_get(e, inner);
        }
        return NULL;
}

/* PEM from "<field>-data" (base64) or "<field>" (a path, relative to the kubeconfig's directory). */
static int pem_field(char **out, const json_t *obj, const char *field, const char *dir,
                     struct sw_err *err)
{
        char key[64];
        const char *v;

        *out = NULL;
        snprintf(key, sizeof(key), "%s-data", field);
        if ((v = sw_json_str(obj, key, NULL)) != NULL) {
                unsigned char *pem = NULL;
                size_t len;
                if (sw_base64_decode(&pem, &len, v, err) != 0)
                        return sw_err_wrap(err, "kubeconfig %s", key);
                *out = (char *)pem;
                return 0;
        }
        if ((v = sw_json_str(obj, field, NULL)) != NULL) {
                char *path = v[0] == '/' ? sw_xstrdup(v) : sw_xasprintf("%s/%s", dir, v);
                int rc = sw_read_file(out, NULL, path, KUBECONFIG_MAX, err);
                free(path);
                return rc ? sw_err_wrap(err, "kubeconfig %s", field) : 0;
        }
        return 0;
}

int orch_kube_from_kubeconfig(struct orch_kube **out, const char *path, const char *context,
                              struct sw_err *err)
{
        struct orch_kube_options o = {0};
        char *text = NULL, *dir = NULL, *token = NULL, *slash;
        char *ca = NULL, *cert = NULL, *key = NULL;
        json_t *docs = NULL;
        const json_t *kc, *ctx, *cluster, *user;
        size_t len;
        int rc;

        rc = sw_read_file(&text, &len, path, KUBECONFIG_MAX, err);
        if (rc)
                return sw_err_wrap(err, "kubeconfig");
        rc = sw_yaml_load(&docs, text, len, path, err);
        if (rc)
                goto out;
        kc = json_array_get(docs, 0);
        if (!context)
                context = sw_json_str(kc, "current-context", NULL);
        if (!context) {
                rc = sw_err_set(err, SW_EINVAL, "kubeconfig '%s' has no current-context", path);
                goto out;
        }
        ctx = named(json_object_get(kc, "contexts"), context, "context");
        if (!ctx) {
                rc = sw_err_set(err, SW_EINVAL, "kubeconfig '%s' has no context '%s'", path,
                                context);
                goto out;
        }
        cluster =
                named(json_object_get(kc, "clusters"), sw_json_str(ctx, "cluster", ""), "cluster");
        user = named(json_object_get(kc, "users"), sw_json_str(ctx, "user", ""), "user");
        if (!cluster || !sw_json_str(cluster, "server", NULL)) {
                rc = sw_err_set(err, SW_EINVAL,
                                "kubeconfig '%s': context '%s' names no cluster "
                                "with a server",
                                path, context);
                goto out;
        }
        dir = sw_xstrdup(path);
        slash = strrchr(dir, '/');
        if (slash)
                *slash = '\0';
        else
                snprintf(dir, strlen(dir) + 1, ".");
        if ((rc = pem_field(&ca, cluster, "certificate-authority", dir, err)) != 0 ||
            (rc = pem_field(&cert, user, "client-certificate", dir, err)) != 0 ||
            (rc = pem_field(&key, user, "client-key", dir, err)) != 0)
                goto out;
        if (sw_json_str(user, "token", NULL)) {
                token = sw_xstrdup(sw_json_str(user, "token", ""));
        } else if (sw_json_str(user, "tokenFile", NULL)) {
                rc = sw_read_file(&token, NULL, sw_json_str(user, "tokenFile", ""), 64 * 1024, err);
                if (rc)
                        goto out;
                token[strcspn(token, "\r\n")] = '\0';
        }
        o.server = sw_json_str(cluster, "server", NULL);
        o.insecure = sw_json_bool(cluster, "insecure-skip-tls-verify", 0);
        o.ca_pem = ca;
        o.cert_pem = cert;
        o.key_pem = key;
        o.token = token;
        rc = orch_kube_new(out, &o, err);
out:
        if (text)
                sw_wipe(text, len);
        free(text);
        free(dir);
        free(ca);
        free(cert);
        sw_free_secret(key);
        sw_free_secret(token);
        json_decref(docs);
        return rc;
}

/* ---- requests ---- */

struct upload {
        const char *data;
        size_t len, off;
};

static size_t on_read(char *buf, size_t size, size_t n, void *arg)
{
        struct upload *u = arg;
        size_t want = size * n, left = u->len - u->off;

        if (want > left)
                want = left;
        memcpy(buf, u->data + u->off, want);
        u->off += want;
        return want;
}

static size_t on_write(char *data, size_t size, size_t n, void *arg)
{
        struct sw_err ignored = SW_ERR_INIT;

        return sw_buf_append(arg, data, size * n, &ignored) == 0 ? size * n : 0;
}

static int status_code_err(long status, const char *msg, const char *method, const char *path,
                           struct sw_err *err)
{
        int code;

        switch (status) {
        case 400:
        case 422:
                code = SW_EINVAL;
                break;
        case 401:
                code = SW_EAUTH;
                break;
        case 403:
                code = SW_EPERM;
                break;
        case 404:
                code = SW_ENOTFOUND;
                break;
        case 409:
        case 410:
                code = SW_ECONFLICT;
                break;
        case 413:
                code = SW_ETOOBIG;
                break;
        case 429:
                code = SW_EUNAVAIL;
                break;
        default:
                code = status >= 500 ? SW_EUNAVAIL : SW_EPROTO;
                break;
        }
        return sw_err_set(err, code, "%s %s: %ld %s", method, path, status, msg);
}

static void apply_common(struct orch_kube *c, struct curl_slist **headers)
{
        CURL *h = c->curl;

        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "slipway/0.1");
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        if (c->auth_header)
                *headers = curl_slist_append(*headers, c->auth_header);
        if (c->ca_pem) {
                struct curl_blob blob = {c->ca_pem, strlen(c->ca_pem), CURL_BLOB_COPY};
                curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
        }
        if (c->cert_pem && c->key_pem) {
                struct curl_blob cert = {c->cert_pem, strlen(c->cert_pem), CURL_BLOB_COPY};
                struct curl_blob key = {c->key_pem, strlen(c->key_pem), CURL_BLOB_COPY};
                curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cert);
                curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
                curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &key);
                curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
        }
        if (c->insecure) {
                curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
                curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        }
}

/* Perform; *reply holds the body. Status errors are left to the caller. */
static int perform(long *status_out, struct sw_buf *reply, struct orch_kube *c, const char *method,
                   const char *path, const char *content_type, const char *body, const char *accept,
                   struct sw_err *err)
{
        struct curl_slist *headers = NULL;
        struct upload up = {body, body ? strlen(body) : 0, 0};
        char *url = sw_xasprintf("%s%s", c->server, path);
        char line[160];
        CURLcode cc;
        int rc = 0;

        apply_common(c, &headers);
        snprintf(line, sizeof(line), "Accept: %s", accept);
        headers = curl_slist_append(headers, line);
        curl_easy_setopt(c->curl, CURLOPT_URL, url);
        curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
        curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, reply);
        if (body) {
                snprintf(line, sizeof(line), "Content-Type: %s",
                         content_type ? content_type : "application/json");
                headers = curl_slist_append(headers, line);
                curl_easy_setopt(c->curl, CURLOPT_UPLOAD, 1L);
                curl_easy_setopt(c->curl, CURLOPT_READFUNCTION, on_read);
                curl_easy_setopt(c->curl, CURLOPT_READDATA, &up);
                curl_easy_setopt(c->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)up.len);
                /* UPLOAD means PUT to curl; CUSTOMREQUEST above sets the real method. */
        }
        curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
        cc = curl_easy_perform(c->curl);
        if (cc != CURLE_OK) {
                int code = cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CERTPROBLEM ||
                                           cc == CURLE_SSL_CACERT_BADFILE
                                   ? SW_EAUTH
                                   : SW_EUNAVAIL;
                rc = sw_err_set(err, code, "%s %s%s: %s", method, c->server, path,
                                curl_easy_strerror(cc));
        } else {
                curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status_out);
        }
        curl_slist_free_all(headers);
        free(url);
        return rc;
}

/* The message of a Status reply, or the body's first line. */
static char *reply_message(const struct sw_buf *reply)
{
        json_t *st = NULL;
        struct sw_err ignored = SW_ERR_INIT;
        char *msg;

        if (sw_json_parse(&st, sw_buf_str(reply), reply->len, 0, &ignored) == 0 &&
            sw_json_str(st, "message", NULL)) {
                msg = sw_xstrdup(sw_json_str(st, "message", ""));
        } else {
                const char *s = sw_buf_str(reply);
                msg = sw_xstrndup(s, strcspn(s, "\r\n"));
                if (strlen(msg) > 300)
                        msg[300] = '\0';
        }
        json_decref(st);
        return msg;
}

/* A request to the API server in this process: no text, the same errors. */
static int local_request(json_t **out, long *status_out, struct orch_kube *c, const char *method,
                         const char *path, const char *content_type, json_t *body, bool give,
                         struct sw_err *err)
{
        json_t *reply = NULL;
        long status = 0;
        int rc;

        rc = c->local.request(c->local.ctx, &status, &reply, method, path, content_type, body, give,
                              err);
        if (status_out)
                *status_out = status;
        if (rc == 0 && (status < 200 || status > 299))
                rc = status_code_err(status, sw_json_str(reply, "message", "error"), method, path,
                                     err);
        if (rc == 0 && out) {
                /* A write's reply is the server's shared copy: the caller gets its own. */
                if (reply && strcmp(method, "GET") != 0)
                        *out = sw_json_copy(reply);
                else
                        *out = reply ? json_incref(reply) : json_null();
        }
        json_decref(reply);
        return rc;
}

void orch_kube_hold(struct orch_kube *c)
{
        if (c->is_local && c->local.hold)
                c->local.hold(c->local.ctx);
}

int orch_kube_release(struct orch_kube *c, struct sw_err *err)
{
        if (c->is_local && c->local.release)
                return c->local.release(c->local.ctx, err);
        return 0;
}

int orch_kube_request_give(json_t **out, long *status_out, struct orch_kube *c, const char *method,
                           const char *path, const char *content_type, json_t *body,
                           struct sw_err *err)
{
        int rc;

        if (c->is_local)
                return local_request(out, status_out, c, method, path, content_type, body, true,
                                     err);
        rc = orch_kube_request(out, status_out, c, method, path, content_type, body, err);
        json_decref(body);
        return rc;
}

int orch_kube_request(json_t **out, long *status_out, struct orch_kube *c, const char *method,
                      const char *path, const char *content_type, const json_t *body,
                      struct sw_err *err)
{
        struct sw_buf reply;
        char *text;
        long status = 0;
        int rc;

        if (c->is_local)
                return local_request(out, status_out, c, method, path, content_type, (json_t *)body,
                                     false, err);
        text = body ? sw_json_dump(body) : NULL;
        sw_buf_init(&reply, KUBE_REPLY_MAX);
        rc = perform(&status, &reply, c, method, path, content_type, text, "application/json", err);
        free(text);
        if (status_out)
                *status_out = status;
        if (rc)
                goto out;
        if (status < 200 || status > 299) {
                char *msg = reply_message(&reply);
                rc = status_code_err(status, msg, method, path, err);
                free(msg);
                goto out;
        }
        if (out) {
                if (reply.len == 0)
                        *out = json_null();
                else if ((rc = sw_json_parse(out, sw_buf_str(&reply), reply.len, 0, err)) != 0)
                        sw_err_wrap(err, "%s %s: reply", method, path);
        }
out:
        sw_buf_release(&reply);
        return rc;
}

int orch_kube_get_text(char **out, struct orch_kube *c, const char *path, struct sw_err *err)
{
        struct sw_buf reply;
        long status = 0;
        int rc;

        if (c->is_local) {
                json_t *v = NULL;
                rc = local_request(&v, NULL, c, "GET", path, NULL, NULL, false, err);
                if (rc == 0 && !json_is_string(v))
                        rc = sw_err_set(err, SW_EINVAL, "GET %s: not a text reply", path);
                if (rc == 0)
                        *out = sw_xstrdup(json_string_value(v));
                json_decref(v);
                return rc;
        }
        sw_buf_init(&reply, KUBE_REPLY_MAX);
        rc = perform(&status, &reply, c, "GET", path, NULL, NULL, "text/plain, */*", err);
        if (rc == 0 && (status < 200 || status > 299)) {
                char *msg = reply_message(&reply);
                rc = status_code_err(status, msg, "GET", path, err);
                free(msg);
        }
        if (rc == 0)
                *out = sw_buf_detach(&reply, NULL);
        sw_buf_release(&reply);
        return rc;
}

int orch_kube_get(json_t **out, struct orch_kube *c, const char *path, struct sw_err *err)
{
        return orch_kube_request(out, NULL, c, "GET", path, NULL, NULL, err);
}

int orch_kube_apply(json_t **out, struct orch_kube *c, const json_t *obj, const char *field_manager,
                    bool force, struct sw_err *err)
{
        const json_t *meta = json_object_get(obj, "metadata");
        char *path = NULL, *full = NULL;
        int rc;

        rc = orch_kube_path(&path, sw_json_str(obj, "apiVersion", ""), sw_json_str(obj, "kind", ""),
                            sw_json_str(meta, "namespace", NULL), sw_json_str(meta, "name", ""),
                            err);
        if (rc)
                return rc;
        full = sw_xasprintf("%s?fieldManager=%s&force=%s", path, field_manager,
                            force ? "true" : "false");
        /* JSON is YAML, and it is what kubectl sends as apply-patch+yaml too. */
        rc = orch_kube_request(out, NULL, c, "PATCH", full, "application/apply-patch+yaml", obj,
                               err);
        free(path);
        free(full);
        return rc;
}

int orch_kube_delete(struct orch_kube *c, const char *path, const char *propagation,
                     struct sw_err *err)
{
        json_t *body = propagation ? json_pack("{s:s,s:s,s:s}", "kind", "DeleteOptions",
                                               "apiVersion", "v1", "propagationPolicy", propagation)
                                   : NULL;
        int rc = orch_kube_request(NULL, NULL, c, "DELETE", path, NULL, body, err);

        json_decref(body);
        return rc;
}

/* ---- watch ---- */

struct watch_state {
        struct sw_buf line;
        int (*fn)(void *arg, const char *type, const json_t *obj);
        void *arg;
        char *rv;
        int stopped;
        int failed; /* an ERROR event: its Status in `error` */
        char error[512];
        long error_code;
};

/* One event of a watch, from either transport; non-zero stops the watch. */
static int watch_event(void *arg, const char *type, const json_t *obj)
{
        struct watch_state *w = arg;
        const char *rv;

        if (!strcmp(type, "ERROR")) {
                w->failed = 1;
                w->error_code = (long)sw_json_int(obj, "code", 500);
                snprintf(w->error, sizeof(w->error), "%s", sw_json_str(obj, "message", "error"));
                return 1;
        }
        rv = sw_json_str(json_object_get(obj, "metadata"), "resourceVersion", NULL);
        if (rv) {
                free(w->rv);
                w->rv = sw_xstrdup(rv);
        }
        if (w->fn(w->arg, type, obj) != 0)
                w->stopped = 1;
        return w->stopped;
}

static int watch_line(struct watch_state *w, const char *text, size_t len)
{
        json_t *ev = NULL;
        struct sw_err perr = SW_ERR_INIT;
        int rc;

        if (len == 0)
                return 0;
        if (sw_json_parse(&ev, text, len, 0, &perr) != 0)
                return 0; /* not an event; ignore rather than abort the stream */
        rc = watch_event(w, sw_json_str(ev, "type", ""), json_object_get(ev, "object"));
        json_decref(ev);
        return rc;
}

static size_t on_watch_data(char *data, size_t size, size_t n, void *arg)
{
        struct watch_state *w = arg;
        struct sw_err ignored = SW_ERR_INIT;
        size_t total = size * n;

        for (size_t i = 0; i < total; i++) {
                if (data[i] != '\n') {
                        if (sw_buf_putc(&w->line, data[i], &ignored) != 0)
                                return 0; /* an event over the limit: abort */
                        continue;
                }
                if (watch_line(w, sw_buf_str(&w->line), w->line.len)) {
                        sw_buf_reset(&w->line);
                        return 0; /* stop: curl reports a write error, which we expect */
                }
                sw_buf_reset(&w->line);
        }
        return total;
}

int orch_kube_watch(char **rv_out, struct orch_kube *c, const char *path, const char *query,
                    const char *resource_version, int64_t timeout_ms,
                    int (*fn)(void *arg, const char *type, const json_t *obj), void *arg,
                    struct sw_err *err)
{
        struct watch_state w = {0};
        struct curl_slist *headers = NULL;
        char *url;
        long status = 0;
        CURLcode cc;
        int rc = 0;

        url = sw_xasprintf("%s%s?watch=true&allowWatchBookmarks=true&timeoutSeconds=%lld%s%s%s%s",
                           c->is_local ? "" : c->server, path, (long long)(timeout_ms / 1000 + 1),
                           resource_version ? "&resourceVersion=" : "",
                           resource_version ? resource_version : "", query ? "&" : "",
                           query ? query : "");
        sw_buf_init(&w.line, KUBE_REPLY_MAX);
        w.fn = fn;
        w.arg = arg;
        w.rv = resource_version ? sw_xstrdup(resource_version) : NULL;
        if (c->is_local) {
                json_t *st = NULL;
                rc = c->local.watch(c->local.ctx, &status, &st, url, watch_event, &w, err);
                if (rc == 0 && !w.failed && (status < 200 || status > 299))
                        rc = status_code_err(status, sw_json_str(st, "message", "error"), "WATCH",
                                             path, err);
                json_decref(st);
                goto done;
        }
        apply_common(c, &headers);
        headers = curl_slist_append(headers, "Accept: application/json");
        curl_easy_setopt(c->curl, CURLOPT_URL, url);
        curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
        curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_watch_data);
        curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &w);
        cc = curl_easy_perform(c->curl);
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
        if (w.failed) {
                rc = status_code_err(w.error_code, w.error, "WATCH", path, err);
        } else if (status >= 300) {
                rc = status_code_err(status, sw_buf_str(&w.line), "WATCH", path, err);
        } else if (cc != CURLE_OK && !w.stopped && cc != CURLE_OPERATION_TIMEDOUT) {
                rc = sw_err_set(err, SW_EUNAVAIL, "watch %s%s: %s", c->server, path,
                                curl_easy_strerror(cc));
        }
done:
        if (rc == 0 && w.failed)
                rc = status_code_err(w.error_code, w.error, "WATCH", path, err);
        if (rc == 0 && rv_out) {
                *rv_out = w.rv;
                w.rv = NULL;
        }
        free(w.rv);
        sw_buf_release(&w.line);
        curl_slist_free_all(headers);
        free(url);
        return rc;
}
