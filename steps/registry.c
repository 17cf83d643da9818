/*
 * registry.c - the OCI distribution client: HTTP transfers on one curl multi
 * handle, auth (Basic, Bearer tokens), and the push and pull flows.
 *
 * Every request is a `struct reg_xfer`: an easy handle, its headers, a body
 * from memory or from a range of a file, and the captured response (status,
 * the few headers the protocol needs, a capped body or a blob writer). Single
 * requests (ping, token, manifests) run alone on the multi handle; blobs run
 * as tasks, small state machines (HEAD -> POST -> PUT, or PATCH chunks with
 * a status query to resume), several at a time. Sharing the multi handle
 * keeps connections alive across all of them.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/json.h"
#include "common/mem.h"
#include "steps/oci.h"
#include "steps/registry.h"
#include "steps/registry_int.h"
#include "common/banned.h"

#define REG_ERROR_BODY_MAX ((size_t)64 << 10)
#define REG_TOKEN_BODY_MAX ((size_t)1 << 20)
#define REG_MAX_TOKENS 8
#define REG_BACKOFF_CAP_MS 5000
/* Blobs up to this size are uploaded with a single PUT. */
#define REG_MONO_MAX ((int64_t)4 << 20)
/* HEAD checks are cheap: this many times max_parallel may run at once. */
#define REG_HEAD_FACTOR 4
#define REG_ACCEPT_MANIFESTS                                                                       \
        "Accept: " STEP_OCI_MT_MANIFEST ", " STEP_OCI_MT_INDEX ", " STEP_OCI_MT_DOCKER_MANIFEST    \
        ", " STEP_OCI_MT_DOCKER_LIST

enum reg_auth { REG_AUTH_UNKNOWN, REG_AUTH_NONE, REG_AUTH_BASIC, REG_AUTH_BEARER };

struct reg_token {
        char *scope;        /* the scopes it was issued for, space-separated */
        char *header;       /* "Authorization: Bearer ..." (secret) */
        int64_t expires_ms; /* monotonic */
};

struct step_registry {
        char *host;
        char *base; /* "http://127.0.0.1:5000" */
        char *user;
        char *password; /* secret */
        int max_parallel;
        int64_t chunk_bytes;
        int max_attempts;
        int64_t backoff_ms;
        int64_t connect_timeout_ms;
        step_registry_progress_fn progress;
        step_registry_chunk_fn chunk_done;
        void *progress_arg;
        CURLM *multi;

        enum reg_auth auth;
        char *realm;
        char *service;
        char *scope;    /* the current operation's scopes, space-separated */
        char *auth_hdr; /* for the current scope (secret); NULL when anonymous */
        struct reg_token tokens[REG_MAX_TOKENS];
};

struct reg_xfer {
        struct step_registry *r;
        CURL *h;
        struct curl_slist *extra; /* request headers other than Authorization */
        struct curl_slist *hdrs;  /* extra + Authorization, rebuilt per attempt */
        char *what;               /* "PUT manifest app:v1", for messages */
        char *url;
        bool head;      /* HEAD: Content-Length describes a body that is not sent */
        bool no_auth;   /* never send the registry's Authorization (token server) */
        char *auth_own; /* a header of its own (Basic for the token server); secret */
        /* request body: memory, or a range of a file */
        const char *mem;
        size_t mem_len, mem_pos;
        int fd;
        int64_t f_off, f_len, f_pos;
        /* response */
        long status;
        CURLcode cc;
        char errbuf[CURL_ERROR_SIZE];
        struct sw_buf body;
        size_t body_max;
        bool too_big;
        struct step_oci_blob_writer *sink; /* 2xx bodies go here when set */
        struct sw_err sink_err;
        bool sink_failed;
        char *location, *www_auth, *content_type, *docker_digest, *range;
        int64_t chunk_min;
        int64_t content_length;
        bool done;
        void *owner;
};

/* ---- small helpers ---- */

static char *xvasprintf(const char *fmt, va_list ap)
{
        va_list ap2;
        int n;
        char *out;

        va_copy(ap2, ap);
        n = vsnprintf(NULL, 0, fmt, ap2);
        va_end(ap2);
        if (n < 0)
                abort();
        out = sw_xmalloc((size_t)n + 1);
        vsnprintf(out, (size_t)n + 1, fmt, ap);
        return out;
}

static void free_secret_str(char **s)
{
        sw_free_secret(*s);
        *s = NULL;
}

static void set_str(char **slot, const char *v)
{
        free(*slot);
        *slot = v ? sw_xstrdup(v) : NULL;
}

static int64_t backoff_delay(const struct step_registry *r, int attempt)
{
        int64_t d = r->backoff_ms;

        for (int i = 1; i < attempt && d < REG_BACKOFF_CAP_MS; i++)
                d *= 2;
        if (d > REG_BACKOFF_CAP_MS)
                d = REG_BACKOFF_CAP_MS;
        return d;
}

static char *url_resolve(const struct step_registry *r, const char *loc)
{
        if (strncmp(loc, "http://", 7) == 0 || strncmp(loc, "https://", 8) == 0)
                return sw_xstrdup(loc);
        if (loc[0] == '/')
                return sw_xasprintf("%s%s", r->base, loc);
        return sw_xasprintf("%s/%s", r->base, loc);
}

static char *url_add_query(const char *url, const char *key, const char *value)
{
        char *esc = curl_easy_escape(NULL, value, 0);
        char *out = sw_xasprintf("%s%c%s=%s", url, strchr(url, '?') ? '&' : '?', key, esc);

        curl_free(esc);
        return out;
}

/* "0-1234" -> 1235 (the next offset), or -1. */
static int64_t range_next(const char *range)
{
        const char *dash;
        char *end = NULL;
        long long v;

        if (!range)
                return -1;
        if (strncmp(range, "bytes=", 6) == 0)
                range += 6;
        dash = strchr(range, '-');
        if (!dash)
                return -1;
        errno = 0;
        v = strtoll(dash + 1, &end, 10);
        if (errno || end == dash + 1)
                return -1;
        return (int64_t)v + 1;
}

/* ---- transfers ---- */

static size_t xfer_header_cb(char *data, size_t size, size_t n, void *arg)
{
        struct reg_xfer *x = arg;
        size_t len = size * n, klen;
        const char *colon;
        char *v;
        size_t vlen;

        if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
                /* A new response (after a redirect or a 100): forget the old headers. */
                free(x->location);
                free(x->www_auth);
                free(x->content_type);
                free(x->docker_digest);
                free(x->range);
                x->location = x->www_auth = x->content_type = x->docker_digest = x->range = NULL;
                x->chunk_min = 0;
                x->content_length = -1;
                return len;
        }
        colon = memchr(data, ':', len);
        if (!colon)
                return len;
        klen = (size_t)(colon - data);
        colon++;
        while (colon < data + len && (*colon == ' ' || *colon == '\t'))
                colon++;
        vlen = (size_t)(data + len - colon);
        while (vlen &&
               (colon[vlen - 1] == '\r' || colon[vlen - 1] == '\n' || colon[vlen - 1] == ' '))
                vlen--;
        if (vlen > 8192)
                return len;
#define HDR_IS(name) (klen == sizeof(name) - 1 && strncasecmp(data, name, klen) == 0)
        if (HDR_IS("Location")) {
                free(x->location);
                x->location = sw_xstrndup(colon, vlen);
        } else if (HDR_IS("WWW-Authenticate")) {
                /* Several challenges: prefer Bearer, the one with a realm to follow. */
                if (!x->www_auth || strncasecmp(colon, "Bearer", 6) == 0) {
                        free(x->www_auth);
                        x->www_auth = sw_xstrndup(colon, vlen);
                }
        } else if (HDR_IS("Content-Type")) {
                free(x->content_type);
                x->content_type = sw_xstrndup(colon, vlen);
                v = strchr(x->content_type, ';');
                if (v)
                        *v = '\0';
                for (v = x->content_type + strlen(x->content_type);
                     v > x->content_type && v[-1] == ' '; v--)
                        v[-1] = '\0';
        } else if (HDR_IS("Docker-Content-Digest")) {
                free(x->docker_digest);
                x->docker_digest = sw_xstrndup(colon, vlen);
        } else if (HDR_IS("Range")) {
                free(x->range);
                x->range = sw_xstrndup(colon, vlen);
        } else if (HDR_IS("OCI-Chunk-Min-Length")) {
                char tmp[32];
                snprintf(tmp, sizeof(tmp), "%.*s", (int)(vlen < 31 ? vlen : 31), colon);
                x->chunk_min = strtoll(tmp, NULL, 10);
                if (x->chunk_min < 0)
                        x->chunk_min = 0;
        } else if (HDR_IS("Content-Length")) {
                char tmp[32];
                snprintf(tmp, sizeof(tmp), "%.*s", (int)(vlen < 31 ? vlen : 31), colon);
                x->content_length = strtoll(tmp, NULL, 10);
                /* Refuse an oversized body before reading it (manifests, errors). */
                if (!x->sink && !x->head && x->body_max &&
                    x->content_length > (int64_t)x->body_max) {
                        x->too_big = true;
                        return 0;
                }
        }
#undef HDR_IS
        return len;
}

static size_t xfer_write_cb(char *data, size_t size, size_t n, void *arg)
{
        struct reg_xfer *x = arg;
        size_t len = size * n;
        long status = 0;

        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
        if (x->sink && status >= 200 && status < 300) {
                if (step_oci_blob_write(x->sink, data, len, &x->sink_err) != 0) {
                        x->sink_failed = true;
                        return 0;
                }
                return len;
        }
        if (x->body.len + len > x->body_max) {
                x->too_big = true;
                return 0;
        }
        if (sw_buf_append(&x->body, data, len, NULL) != 0) {
                x->too_big = true;
                return 0;
        }
        return len;
}

static size_t xfer_read_cb(char *buf, size_t size, size_t n, void *arg)
{
        struct reg_xfer *x = arg;
        size_t want = size * n;

        if (x->fd >= 0) {
                int64_t left = x->f_len - x->f_pos;
                ssize_t got;

                if ((int64_t)want > left)
                        want = (size_t)left;
                if (want == 0)
                        return 0;
                do
                        got = pread(x->fd, buf, want, (off_t)(x->f_off + x->f_pos));
                while (got < 0 && errno == EINTR);
                if (got <= 0)
                        return CURL_READFUNC_ABORT;
                x->f_pos += got;
                return (size_t)got;
        }
        if (want > x->mem_len - x->mem_pos)
                want = x->mem_len - x->mem_pos;
        memcpy(buf, x->mem + x->mem_pos, want);
        x->mem_pos += want;
        return want;
}

/* curl rewinds a body when it resends a request on a fresh connection. */
static int xfer_seek_cb(void *arg, curl_off_t offset, int origin)
{
        struct reg_xfer *x = arg;

        if (origin != SEEK_SET || offset < 0)
                return CURL_SEEKFUNC_CANTSEEK;
        if (x->fd >= 0) {
                if (offset > x->f_len)
                        return CURL_SEEKFUNC_FAIL;
                x->f_pos = offset;
        } else {
                if ((size_t)offset > x->mem_len)
                        return CURL_SEEKFUNC_FAIL;
                x->mem_pos = (size_t)offset;
        }
        return CURL_SEEKFUNC_OK;
}

static void slist_free_wiping(struct curl_slist *l)
{
        for (struct curl_slist *p = l; p; p = p->next)
                if (strncasecmp(p->data, "Authorization:", 14) == 0)
                        sw_wipe(p->data, strlen(p->data));
        curl_slist_free_all(l);
}

static void xfer_reset_response(struct reg_xfer *x)
{
        x->status = 0;
        x->cc = CURLE_OK;
        x->errbuf[0] = '\0';
        sw_buf_reset(&x->body);
        x->too_big = false;
        free(x->location);
        free(x->www_auth);
        free(x->content_type);
        free(x->docker_digest);
        free(x->range);
        x->location = x->www_auth = x->content_type = x->docker_digest = x->range = NULL;
        x->chunk_min = 0;
        x->content_length = -1;
        x->done = false;
}

static struct reg_xfer *xfer_new(struct step_registry *r, const char *method, const char *url,
                                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static struct reg_xfer *xfer_new(struct step_registry *r, const char *method, const char *url,
                                 const char *fmt, ...)
{
        struct reg_xfer *x = sw_xcalloc(1, sizeof(*x));
        va_list ap;
        char *what;

        va_start(ap, fmt);
        what = xvasprintf(fmt, ap);
        va_end(ap);
        x->r = r;
        x->what = what;
        x->url = sw_xstrdup(url);
        x->fd = -1;
        x->body_max = REG_ERROR_BODY_MAX;
        x->content_length = -1;
        sw_buf_init(&x->body, 0);
        x->h = curl_easy_init();
        if (!x->h)
                abort();
        curl_easy_setopt(x->h, CURLOPT_URL, x->url);
        curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
        curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, x->errbuf);
        curl_easy_setopt(x->h, CURLOPT_HEADERFUNCTION, xfer_header_cb);
        curl_easy_setopt(x->h, CURLOPT_HEADERDATA, x);
        curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, xfer_write_cb);
        curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
        curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT_MS, (long)r->connect_timeout_ms);
        /* A stalled connection (no byte for 30 s) fails and is retried. */
        curl_easy_setopt(x->h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(x->h, CURLOPT_LOW_SPEED_TIME, 30L);
        curl_easy_setopt(x->h, CURLOPT_USERAGENT, "slipway/0.1");
        curl_easy_setopt(x->h, CURLOPT_BUFFERSIZE, 512L * 1024);
        curl_easy_setopt(x->h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(x->h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        if (strcmp(method, "HEAD") == 0) {
                x->head = true;
                curl_easy_setopt(x->h, CURLOPT_NOBODY, 1L);
        } else if (strcmp(method, "GET") == 0) {
                curl_easy_setopt(x->h, CURLOPT_HTTPGET, 1L);
        } else if (strcmp(method, "POST") == 0) {
                curl_easy_setopt(x->h, CURLOPT_POST, 1L);
                curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, "");
                curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        } else if (strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0) {
                curl_easy_setopt(x->h, CURLOPT_UPLOAD, 1L);
                curl_easy_setopt(x->h, CURLOPT_READFUNCTION, xfer_read_cb);
                curl_easy_setopt(x->h, CURLOPT_READDATA, x);
                curl_easy_setopt(x->h, CURLOPT_SEEKFUNCTION, xfer_seek_cb);
                curl_easy_setopt(x->h, CURLOPT_SEEKDATA, x);
                curl_easy_setopt(x->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)0);
                curl_easy_setopt(x->h, CURLOPT_UPLOAD_BUFFERSIZE, 2L * 1024 * 1024);
                if (strcmp(method, "PATCH") == 0)
                        curl_easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, "PATCH");
        } else {
                curl_easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, method);
        }
        /* Go's server answers 100-continue, but waiting for it costs a round trip. */
        x->extra = curl_slist_append(x->extra, "Expect:");
        return x;
}

static void xfer_header(struct reg_xfer *x, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void xfer_header(struct reg_xfer *x, const char *fmt, ...)
{
        va_list ap;
        char *h;

        va_start(ap, fmt);
        h = xvasprintf(fmt, ap);
        va_end(ap);
        x->extra = curl_slist_append(x->extra, h);
        free(h);
}

static void xfer_body_mem(struct reg_xfer *x, const char *data, size_t len)
{
        x->mem = data;
        x->mem_len = len;
        curl_easy_setopt(x->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
}

static void xfer_body_file(struct reg_xfer *x, int fd, int64_t off, int64_t len)
{
        x->fd = fd;
        x->f_off = off;
        x->f_len = len;
        curl_easy_setopt(x->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
}

static void xfer_free(struct reg_xfer *x)
{
        if (!x)
                return;
        if (x->h) {
                curl_multi_remove_handle(x->r->multi, x->h);
                curl_easy_cleanup(x->h);
        }
        slist_free_wiping(x->hdrs);
        slist_free_wiping(x->extra);
        free_secret_str(&x->auth_own);
        free(x->what);
        free(x->url);
        xfer_reset_response(x);
        sw_buf_release(&x->body);
        step_oci_blob_abort(x->sink);
        free(x);
}

/* Arm and add to the multi handle; the Authorization of the moment is attached. */
static void xfer_start(struct reg_xfer *x)
{
        const char *auth = x->auth_own ? x->auth_own : x->no_auth ? NULL : x->r->auth_hdr;

        xfer_reset_response(x);
        x->mem_pos = 0;
        x->f_pos = 0;
        slist_free_wiping(x->hdrs);
        x->hdrs = NULL;
        for (struct curl_slist *p = x->extra; p; p = p->next)
                x->hdrs = curl_slist_append(x->hdrs, p->data);
        if (auth)
                x->hdrs = curl_slist_append(x->hdrs, auth);
        curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
        curl_multi_add_handle(x->r->multi, x->h);
}

/* Collect finished transfers; returns how many completed. */
static int multi_collect(struct step_registry *r)
{
        CURLMsg *msg;
        int left, n = 0;

        while ((msg = curl_multi_info_read(r->multi, &left)) != NULL) {
                struct reg_xfer *x = NULL;
                if (msg->msg != CURLMSG_DONE)
                        continue;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
                x->cc = msg->data.result;
                curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
                curl_multi_remove_handle(r->multi, x->h);
                x->done = true;
                n++;
        }
        return n;
}

static void multi_wait(struct step_registry *r, int timeout_ms)
{
        int running = 0;

        curl_multi_perform(r->multi, &running);
        if (running)
                curl_multi_poll(r->multi, NULL, 0, timeout_ms, NULL);
        curl_multi_perform(r->multi, &running);
}

/* Run one transfer to completion (no retry). */
static void xfer_exec(struct reg_xfer *x)
{
        xfer_start(x);
        while (!x->done) {
                multi_wait(x->r, 200);
                multi_collect(x->r);
        }
}

static bool xfer_transient(const struct reg_xfer *x)
{
        if (x->sink_failed || x->too_big)
                return false;
        switch (x->cc) {
        case CURLE_OK:
                return x->status == 502 || x->status == 503 || x->status == 504 || x->status == 429;
        case CURLE_COULDNT_CONNECT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_SEND_FAIL_REWIND:
                return true;
        default:
                return false;
        }
}

/* The registry's own words from an error body: "CODE: message; CODE2: ...". */
static void registry_message(char *out, size_t size, const struct reg_xfer *x)
{
        json_t *doc = NULL, *errs;
        size_t used = 0;

        out[0] = '\0';
        if (x->body.len && sw_json_parse(&doc, x->body.data, x->body.len, 0, NULL) == 0) {
                errs = json_object_get(doc, "errors");
                for (size_t i = 0; i < json_array_size(errs) && used + 1 < size; i++) {
                        const json_t *e = json_array_get(errs, i);
                        int k = snprintf(out + used, size - used, "%s%s: %s", i ? "; " : "",
                                         sw_json_str(e, "code", "ERROR"),
                                         sw_json_str(e, "message", ""));
                        if (k < 0)
                                break;
                        used += (size_t)k;
                }
                json_decref(doc);
        }
        if (!out[0] && x->body.len && x->body.len < 300 && !x->sink) {
                size_t j = 0;
                for (size_t i = 0; i < x->body.len && j + 1 < size; i++) {
                        char c = x->body.data[i];
                        out[j++] = (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
                }
                while (j && out[j - 1] == ' ')
                        j--;
                out[j] = '\0';
        }
}

/* The one translation point of curl and HTTP failures into SW_E* (STYLE.md 10). */
static int step__curl_err(const struct reg_xfer *x, struct sw_err *err)
{
        char msg[512];

        if (x->sink_failed)
                return sw_err_set(err, x->sink_err.code ? x->sink_err.code : SW_EIO, "%s: %s",
                                  x->what, x->sink_err.msg);
        if (x->too_big)
                return sw_err_set(err, SW_ETOOBIG, "%s: response larger than %zu bytes", x->what,
                                  x->body_max);
        if (x->cc != CURLE_OK)
                return sw_err_set(err, xfer_transient(x) ? SW_EUNAVAIL : SW_EIO,
                                  "%s: registry %s: %s", x->what, x->r->host,
                                  x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->cc));
        registry_message(msg, sizeof(msg), x);
        return sw_err_set(err,
                          x->status == 404                       ? SW_ENOTFOUND
                          : x->status == 401 || x->status == 403 ? SW_EAUTH
                          : x->status == 413                     ? SW_ETOOBIG
                          : xfer_transient(x)                    ? SW_EUNAVAIL
                          : x->status >= 500                     ? SW_EFAILED
                                                                 : SW_EPROTO,
                          "%s: registry %s answered %ld%s%s", x->what, x->r->host, x->status,
                          msg[0] ? ": " : "", msg);
}

static int unreachable_err(const struct reg_xfer *x, int attempts, struct sw_err *err)
{
        char msg[512];

        if (x->cc != CURLE_OK)
                snprintf(msg, sizeof(msg), "%s",
                         x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->cc));
        else
                snprintf(msg, sizeof(msg), "HTTP %ld", x->status);
        return sw_err_set(err, SW_EUNAVAIL, "%s: registry %s still failing after %d attempts: %s",
                          x->what, x->r->host, attempts, msg);
}

/* ---- auth ---- */

static int creds_error(const struct step_registry *r, struct sw_err *err)
{
        if (!r->user)
                return sw_err_set(err, SW_EAUTH,
                                  "registry %s requires authentication: set "
                                  "SLIPWAY_REGISTRY_USER and SLIPWAY_REGISTRY_PASSWORD (for the "
                                  "registry in SLIPWAY_REGISTRY), or SLIPWAY_DOCKER_CONFIG to a "
                                  "config.json with an auths entry for %s",
                                  r->host, r->host);
        return sw_err_set(err, SW_EAUTH,
                          "registry %s rejected the credentials of user '%s': check "
                          "SLIPWAY_REGISTRY_USER and SLIPWAY_REGISTRY_PASSWORD (or the auths "
                          "entry for %s in SLIPWAY_DOCKER_CONFIG)",
                          r->host, r->user, r->host);
}

static char *basic_header(const char *user, const char *password)
{
        char *plain = sw_xasprintf("%s:%s", user, password ? password : "");
        char *b64 = sw_base64_encode(plain, strlen(plain));
        char *h = sw_xasprintf("Authorization: Basic %s", b64);

        sw_free_secret(plain);
        sw_free_secret(b64);
        return h;
}

/* Fetch a Bearer token for `scope` (space-separated, may be "") from the realm. */
static int token_fetch(struct step_registry *r, const char *scope, struct sw_err *err)
{
        struct reg_xfer *x = NULL;
        json_t *doc = NULL;
        struct reg_token *slot = NULL;
        char *url = NULL, *tmp;
        const char *tok;
        int64_t expires_in;
        int attempt, rc = 0;

        url = sw_xstrdup(r->realm);
        if (r->service) {
                tmp = url_add_query(url, "service", r->service);
                free(url);
                url = tmp;
        }
        for (const char *p = scope; *p;) {
                size_t n = strcspn(p, " ");
                char *one = sw_xstrndup(p, n);
                tmp = url_add_query(url, "scope", one);
                free(one);
                free(url);
                url = tmp;
                p += n;
                while (*p == ' ')
                        p++;
        }
        x = xfer_new(r, "GET", url, "get token from %s", r->realm);
        x->no_auth = true;
        x->body_max = REG_TOKEN_BODY_MAX;
        if (r->user)
                x->auth_own = basic_header(r->user, r->password);
        for (attempt = 1;; attempt++) {
                xfer_exec(x);
                if (!xfer_transient(x))
                        break;
                if (attempt >= r->max_attempts) {
                        rc = unreachable_err(x, attempt, err);
                        goto out;
                }
                sw_sleep_ms(backoff_delay(r, attempt));
        }
        if (x->cc == CURLE_OK && (x->status == 401 || x->status == 403)) {
                rc = creds_error(r, err);
                goto out;
        }
        if (x->cc != CURLE_OK || x->status != 200) {
                rc = step__curl_err(x, err);
                goto out;
        }
        rc = sw_json_parse(&doc, x->body.data ? x->body.data : "", x->body.len, REG_TOKEN_BODY_MAX,
                           err);
        if (rc) {
                sw_err_wrap(err, "token from %s", r->realm);
                goto out;
        }
        tok = sw_json_str(doc, "token", NULL);
        if (!tok || !*tok)
                tok = sw_json_str(doc, "access_token", NULL);
        if (!tok || !*tok || strlen(tok) > 65536 || strpbrk(tok, "\r\n")) {
                rc = sw_err_set(err, SW_EPROTO, "token server %s returned no usable token",
                                r->realm);
                goto out;
        }
        expires_in = sw_json_int(doc, "expires_in", 60);
        if (expires_in <= 0)
                expires_in = 60;
        /* Reuse the slot for this scope, else the one expiring first. */
        for (int i = 0; i < REG_MAX_TOKENS; i++) {
                struct reg_token *t = &r->tokens[i];
                if (t->scope && strcmp(t->scope, scope) == 0) {
                        slot = t;
                        break;
                }
                if (!slot || !t->scope || (slot->scope && t->expires_ms < slot->expires_ms))
                        slot = t;
        }
        set_str(&slot->scope, scope);
        free_secret_str(&slot->header);
        slot->header = sw_xasprintf("Authorization: Bearer %s", tok);
        /* Renew a little early so that a token never expires in flight. */
        slot->expires_ms = sw_mono_ms() + expires_in * 1000 - (expires_in > 20 ? 10000 : 0);
        free_secret_str(&r->auth_hdr);
        r->auth_hdr = sw_xstrdup(slot->header);
out:
        if (doc) {
                /* The token text lives in doc: wipe it before jansson frees it. */
                json_t *v = json_object_get(doc, "token");
                if (json_is_string(v))
                        sw_wipe((char *)json_string_value(v), json_string_length(v));
                v = json_object_get(doc, "access_token");
                if (json_is_string(v))
                        sw_wipe((char *)json_string_value(v), json_string_length(v));
                json_decref(doc);
        }
        if (x && x->body.data)
                sw_wipe(x->body.data, x->body.len);
        xfer_free(x);
        free(url);
        return rc;
}

/* Set the Authorization for the current scope, from the cache or the token server. */
static int auth_apply(struct step_registry *r, bool force_new, struct sw_err *err)
{
        const char *scope = r->scope ? r->scope : "";

        switch (r->auth) {
        case REG_AUTH_UNKNOWN:
        case REG_AUTH_NONE:
                free_secret_str(&r->auth_hdr);
                return 0;
        case REG_AUTH_BASIC:
                if (!r->user)
                        return creds_error(r, err);
                if (!r->auth_hdr)
                        r->auth_hdr = basic_header(r->user, r->password);
                return 0;
        case REG_AUTH_BEARER:
                break;
        }
        if (!force_new) {
                for (int i = 0; i < REG_MAX_TOKENS; i++) {
                        struct reg_token *t = &r->tokens[i];
                        if (t->scope && strcmp(t->scope, scope) == 0 &&
                            t->expires_ms > sw_mono_ms()) {
                                free_secret_str(&r->auth_hdr);
                                r->auth_hdr = sw_xstrdup(t->header);
                                return 0;
                        }
                }
        }
        return token_fetch(r, scope, err);
}

/* Learn the scheme from a challenge header. */
static int auth_from_challenge(struct step_registry *r, const char *www_auth, struct sw_err *err)
{
        struct step_registry_challenge c;
        int rc;

        if (!www_auth)
                return sw_err_set(err, SW_EPROTO,
                                  "registry %s answered 401 without a WWW-Authenticate challenge",
                                  r->host);
        rc = step_registry_challenge_parse(&c, www_auth, err);
        if (rc)
                return sw_err_wrap(err, "registry %s", r->host);
        if (strcasecmp(c.scheme, "Basic") == 0) {
                r->auth = REG_AUTH_BASIC;
        } else if (strcasecmp(c.scheme, "Bearer") == 0) {
                if (!c.realm ||
                    (strncmp(c.realm, "http://", 7) != 0 && strncmp(c.realm, "https://", 8) != 0)) {
                        rc = sw_err_set(err, SW_EPROTO,
                                        "registry %s: Bearer challenge without an http(s) realm",
                                        r->host);
                        goto out;
                }
                r->auth = REG_AUTH_BEARER;
                set_str(&r->realm, c.realm);
                set_str(&r->service, c.service);
        } else {
                rc = sw_err_set(err, SW_EPROTO, "registry %s: unsupported auth scheme '%s'",
                                r->host, c.scheme);
        }
out:
        step_registry_challenge_release(&c);
        return rc;
}

/* Switch to the scopes of an operation on `repo` (actions "pull" or "pull,push"). */
static int auth_scope(struct step_registry *r, const char *repo, const char *actions,
                      const char *mount_from, struct sw_err *err)
{
        free(r->scope);
        if (mount_from)
                r->scope = sw_xasprintf("repository:%s:%s repository:%s:pull", repo, actions,
                                        mount_from);
        else
                r->scope = sw_xasprintf("repository:%s:%s", repo, actions);
        return auth_apply(r, false, err);
}

/*
 * React to a 401 in the middle of an operation: a token may have expired, or
 * the scheme changed. Fails with a credentials message when a fresh
 * Authorization was already refused.
 */
/*
 * A 401 that a fresh Authorization did not cure. With a token from accepted
 * credentials, the user lacks the rights for this scope; otherwise the
 * credentials are wrong or missing.
 */
static int denied_error(const struct step_registry *r, const struct reg_xfer *x, struct sw_err *err)
{
        char msg[512];

        if (r->auth != REG_AUTH_BEARER || !r->user)
                return creds_error(r, err);
        registry_message(msg, sizeof(msg), x);
        return sw_err_set(err, SW_EPERM, "%s: registry %s denied user '%s' the access '%s'%s%s",
                          x->what, r->host, r->user, r->scope ? r->scope : "", msg[0] ? ": " : "",
                          msg);
}

static int auth_retry(struct step_registry *r, const struct reg_xfer *x, struct sw_err *err)
{
        enum reg_auth before = r->auth;
        int rc = auth_from_challenge(r, x->www_auth, err);

        if (rc)
                return rc;
        if (r->auth == REG_AUTH_BASIC && before == REG_AUTH_BASIC && r->auth_hdr)
                return creds_error(r, err);
        return auth_apply(r, true, err);
}

/*
 * Run a single request with auth and retries: a 401 re-authenticates once,
 * 502/503/504 and connection errors back off and retry. The caller looks at
 * x->status (and x->cc, always CURLE_OK on return 0).
 */
static int request(struct step_registry *r, struct reg_xfer *x, struct sw_err *err)
{
        bool auth_tried = false;
        int rc;

        for (int attempt = 1;; attempt++) {
                xfer_exec(x);
                if (x->cc == CURLE_OK && x->status == 401 && !auth_tried) {
                        auth_tried = true;
                        rc = auth_retry(r, x, err);
                        if (rc)
                                return rc;
                        attempt--;
                        continue;
                }
                if (!xfer_transient(x))
                        break;
                if (attempt >= r->max_attempts)
                        return unreachable_err(x, attempt, err);
                sw_sleep_ms(backoff_delay(r, attempt));
        }
        if (x->cc != CURLE_OK || x->too_big || x->sink_failed)
                return step__curl_err(x, err);
        if (x->status == 401)
                return denied_error(r, x, err);
        return 0;
}

int step_registry_ping(struct step_registry *r, struct sw_err *err)
{
        char *url = sw_xasprintf("%s/v2/", r->base);
        struct reg_xfer *x = xfer_new(r, "GET", url, "ping");
        int rc;

        free(url);
        x->no_auth = true;
        for (int attempt = 1;; attempt++) {
                xfer_exec(x);
                if (!xfer_transient(x))
                        break;
                if (attempt >= r->max_attempts) {
                        rc = unreachable_err(x, attempt, err);
                        goto out;
                }
                sw_sleep_ms(backoff_delay(r, attempt));
        }
        if (x->cc != CURLE_OK) {
                rc = step__curl_err(x, err);
                goto out;
        }
        if (x->status == 200) {
                r->auth = REG_AUTH_NONE;
                rc = 0;
                goto out;
        }
        if (x->status != 401) {
                rc = step__curl_err(x, err);
                goto out;
        }
        rc = auth_from_challenge(r, x->www_auth, err);
        if (rc)
                goto out;
        if (!r->user) {
                /* Anonymous pulls may still be allowed by a token server. */
                if (r->auth == REG_AUTH_BASIC)
                        rc = creds_error(r, err);
                goto out;
        }
        if (r->auth == REG_AUTH_BASIC) {
                /* Check the credentials now, so that a typo fails with a clear message. */
                free_secret_str(&r->auth_hdr);
                r->auth_hdr = basic_header(r->user, r->password);
                x->no_auth = false;
                xfer_exec(x);
                if (x->cc == CURLE_OK && x->status == 401)
                        rc = creds_error(r, err);
                else if (x->cc != CURLE_OK || x->status != 200)
                        rc = step__curl_err(x, err);
        } else {
                /* A token without scope is a login check on the token server. */
                free(r->scope);
                r->scope = sw_xstrdup("");
                rc = auth_apply(r, false, err);
        }
out:
        xfer_free(x);
        return rc;
}

/* ---- the client object ---- */

void step_registry_options_from_config(struct step_registry_options *o, const struct sw_config *cfg,
                                       const char *host)
{
        o->host = host;
        /*
         * SLIPWAY_REGISTRY_USER/PASSWORD belong to SLIPWAY_REGISTRY: another
         * registry that asks for credentials must not be handed them.
         */
        if (cfg->registry && strcmp(host, cfg->registry) == 0) {
                o->user = cfg->registry_user;
                o->password = cfg->registry_password;
        }
        o->docker_config = cfg->docker_config;
        o->insecure = cfg->insecure_registries;
}

int step_registry_new(struct step_registry **out, const struct step_registry_options *o,
                      struct sw_err *err)
{
        struct step_registry *r;
        int rc;

        if (!o->host || !*o->host || strlen(o->host) >= STEP_REGISTRY_HOST_MAX ||
            strpbrk(o->host, "/?#@ \t\r\n"))
                return sw_err_set(err, SW_EINVAL, "bad registry host '%.100s'",
                                  o->host ? o->host : "");
        r = sw_xcalloc(1, sizeof(*r));
        r->host = sw_xstrdup(o->host);
        r->base = sw_xasprintf("%s://%s",
                               step_registry_host_insecure(o->insecure, o->host) ? "http" : "https",
                               o->host);
        r->max_parallel = o->max_parallel > 0 ? o->max_parallel : 6;
        r->chunk_bytes = o->chunk_bytes > 0 ? o->chunk_bytes : INT64_MAX;
        r->max_attempts = o->max_attempts > 0 ? o->max_attempts : 8;
        r->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 200;
        r->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000;
        r->progress = o->progress;
        r->chunk_done = o->chunk_done;
        r->progress_arg = o->progress_arg;
        if (o->user && *o->user) {
                r->user = sw_xstrdup(o->user);
                r->password = sw_xstrdup(o->password ? o->password : "");
        } else if (o->docker_config && *o->docker_config) {
                rc = step_registry_docker_auth(&r->user, &r->password, o->docker_config, o->host,
                                               err);
                if (rc == SW_ENOTFOUND) {
                        sw_err_clear(err);
                } else if (rc) {
                        step_registry_free(r);
                        return rc;
                }
        }
        r->multi = curl_multi_init();
        if (!r->multi)
                abort();
        curl_multi_setopt(r->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                          (long)r->max_parallel * REG_HEAD_FACTOR + 1);
        *out = r;
        return 0;
}

void step_registry_free(struct step_registry *r)
{
        if (!r)
                return;
        if (r->multi)
                curl_multi_cleanup(r->multi);
        for (int i = 0; i < REG_MAX_TOKENS; i++) {
                free(r->tokens[i].scope);
                free_secret_str(&r->tokens[i].header);
        }
        free_secret_str(&r->auth_hdr);
        free_secret_str(&r->password);
        free(r->user);
        free(r->realm);
        free(r->service);
        free(r->scope);
        free(r->host);
        free(r->base);
        free(r);
}

/* ---- blob tasks ---- */

enum blob_state {
        BS_HEAD,
        BS_MOUNT,
        BS_POST,
        BS_PUT_MONO,
        BS_PATCH,
        BS_STATUS,
        BS_PUT_FINAL,
        BS_GET,
};

struct blob_task {
        struct step_registry *r;
        struct step_oci_layout *l;
        struct step_oci_staged **staged; /* pull: verified blobs wait here */
        const char *repo;
        const char *mount_from;
        const char *what;
        struct step_oci_desc desc;
        int fd;
        enum blob_state st;
        char *upload_url;
        int64_t offset;
        int64_t chunk_min;
        int attempts;
        int64_t not_before_ms;
        bool auth_tried;
        struct reg_xfer *x;
        bool running;
        bool done;
        int rc;
        enum step_registry_blob_result result;
        int64_t t0_ms;
};

static char *blob_url(const struct blob_task *t)
{
        return sw_xasprintf("%s/v2/%s/blobs/%s", t->r->base, t->repo, t->desc.digest);
}

/* Build the transfer for the task's current state. */
static void blob_make_xfer(struct blob_task *t)
{
        struct step_registry *r = t->r;
        char *url = NULL, *tmp;
        const char *d = t->desc.digest;
        int64_t len;

        xfer_free(t->x);
        t->x = NULL;
        switch (t->st) {
        case BS_HEAD:
                url = blob_url(t);
                t->x = xfer_new(r, "HEAD", url, "check blob %s", d);
                break;
        case BS_MOUNT:
                url = sw_xasprintf("%s/v2/%s/blobs/uploads/", r->base, t->repo);
                tmp = url_add_query(url, "mount", d);
                free(url);
                url = url_add_query(tmp, "from", t->mount_from);
                free(tmp);
                t->x = xfer_new(r, "POST", url, "mount blob %s from %s", d, t->mount_from);
                break;
        case BS_POST:
                url = sw_xasprintf("%s/v2/%s/blobs/uploads/", r->base, t->repo);
                t->x = xfer_new(r, "POST", url, "start upload of blob %s", d);
                break;
        case BS_PUT_MONO:
                url = url_add_query(t->upload_url, "digest", d);
                t->x = xfer_new(r, "PUT", url, "upload blob %s", d);
                xfer_header(t->x, "Content-Type: application/octet-stream");
                xfer_body_file(t->x, t->fd, 0, t->desc.size);
                break;
        case BS_PATCH:
                len = r->chunk_bytes > t->chunk_min ? r->chunk_bytes : t->chunk_min;
                if (len > t->desc.size - t->offset)
                        len = t->desc.size - t->offset;
                t->x = xfer_new(r, "PATCH", t->upload_url, "upload chunk of blob %s at %lld", d,
                                (long long)t->offset);
                xfer_header(t->x, "Content-Type: application/octet-stream");
                xfer_header(t->x, "Content-Range: %lld-%lld", (long long)t->offset,
                            (long long)(t->offset + len - 1));
                xfer_body_file(t->x, t->fd, t->offset, len);
                break;
        case BS_STATUS:
                t->x = xfer_new(r, "GET", t->upload_url, "query upload of blob %s", d);
                break;
        case BS_PUT_FINAL:
                url = url_add_query(t->upload_url, "digest", d);
                t->x = xfer_new(r, "PUT", url, "finish upload of blob %s", d);
                xfer_header(t->x, "Content-Type: application/octet-stream");
                xfer_body_mem(t->x, "", 0);
                break;
        case BS_GET:
                url = blob_url(t);
                t->x = xfer_new(r, "GET", url, "download blob %s", d);
                /* Registries send blobs from storage through redirects. */
                curl_easy_setopt(t->x->h, CURLOPT_FOLLOWLOCATION, 1L);
                curl_easy_setopt(t->x->h, CURLOPT_MAXREDIRS, 5L);
                break;
        }
        t->x->owner = t;
        free(url);
}

static void blob_finish(struct blob_task *t, int rc, enum step_registry_blob_result result,
                        struct sw_err *err)
{
        t->done = true;
        t->rc = rc;
        t->result = result;
        if (rc == 0 && t->r->progress) {
                struct step_registry_progress p = {t->desc.digest, t->what, t->desc.size,
                                                   sw_mono_ms() - t->t0_ms, result};
                t->r->progress(t->r->progress_arg, &p);
        }
        (void)err;
}

/*
 * Small blobs go in one PUT. Larger ones stream in PATCH requests (one for
 * the whole blob unless chunk_bytes says otherwise) and a final empty PUT:
 * a PATCH that breaks can be resumed from the Range the registry reports,
 * a single PUT cannot.
 */
static void blob_upload_next(struct blob_task *t)
{
        int64_t mono_max = t->r->chunk_bytes < REG_MONO_MAX ? t->r->chunk_bytes : REG_MONO_MAX;

        t->offset = 0;
        t->st = t->desc.size > mono_max ? BS_PATCH : BS_PUT_MONO;
}

/* A transfer of the task ended: move the state machine. Errors go to `err`. */
static void blob_step(struct blob_task *t, struct sw_err *err)
{
        struct reg_xfer *x = t->x;
        struct step_registry *r = t->r;
        int64_t next;
        int rc;

        if (x->sink_failed || x->too_big) {
                blob_finish(t, step__curl_err(x, err), 0, err);
                return;
        }
        if (x->cc == CURLE_OK && x->status == 401) {
                if (t->auth_tried) {
                        blob_finish(t, denied_error(r, x, err), 0, err);
                        return;
                }
                t->auth_tried = true;
                rc = auth_retry(r, x, err);
                if (rc)
                        blob_finish(t, rc, 0, err);
                return; /* same state again, with the new Authorization */
        }
        if (xfer_transient(x)) {
                if (++t->attempts >= r->max_attempts) {
                        blob_finish(t, unreachable_err(x, t->attempts, err), 0, err);
                        return;
                }
                t->not_before_ms = sw_mono_ms() + backoff_delay(r, t->attempts);
                /*
                 * An interrupted chunk is resumed from what the registry holds;
                 * an interrupted single PUT starts over (the blob may be there).
                 */
                if (t->st == BS_PATCH || t->st == BS_PUT_FINAL)
                        t->st = BS_STATUS;
                else if (t->st == BS_PUT_MONO)
                        t->st = BS_HEAD;
                return;
        }
        if (x->cc != CURLE_OK) {
                blob_finish(t, step__curl_err(x, err), 0, err);
                return;
        }
        t->auth_tried = false;
        if (x->status < 500)
                t->attempts = 0;
        switch (t->st) {
        case BS_HEAD:
                if (x->status == 200) {
                        blob_finish(t, 0, STEP_REGISTRY_EXISTED, err);
                        return;
                }
                if (x->status == 404) {
                        t->st = t->mount_from ? BS_MOUNT : BS_POST;
                        return;
                }
                break;
        case BS_MOUNT:
                if (x->status == 201) {
                        blob_finish(t, 0, STEP_REGISTRY_MOUNTED, err);
                        return;
                }
                /* A 202 is an ordinary upload session, as after a POST. */
                __attribute__((fallthrough));
        case BS_POST:
                if (x->status == 202 && x->location) {
                        free(t->upload_url);
                        t->upload_url = url_resolve(r, x->location);
                        t->chunk_min = x->chunk_min;
                        blob_upload_next(t);
                        return;
                }
                break;
        case BS_PUT_MONO:
        case BS_PUT_FINAL:
                if (x->status == 201 || x->status == 204) {
                        if (x->docker_digest && strcmp(x->docker_digest, t->desc.digest) != 0) {
                                blob_finish(t,
                                            sw_err_set(err, SW_ECORRUPT,
                                                       "registry %s stored blob %s as %s", r->host,
                                                       t->desc.digest, x->docker_digest),
                                            0, err);
                                return;
                        }
                        blob_finish(t, 0, STEP_REGISTRY_UPLOADED, err);
                        return;
                }
                if (x->status == 404) { /* the upload session is gone: start again */
                        t->st = BS_POST;
                        return;
                }
                break;
        case BS_PATCH:
                if (x->status == 202 || x->status == 200 || x->status == 204) {
                        if (x->location) {
                                free(t->upload_url);
                                t->upload_url = url_resolve(r, x->location);
                        }
                        next = range_next(x->range);
                        t->offset = next >= 0 ? next : t->offset + x->f_len;
                        t->st = t->offset >= t->desc.size ? BS_PUT_FINAL : BS_PATCH;
                        if (r->chunk_done)
                                r->chunk_done(r->progress_arg, t->desc.digest, t->offset,
                                              t->desc.size);
                        return;
                }
                if (x->status == 416) {
                        t->st = BS_STATUS;
                        return;
                }
                if (x->status == 404) {
                        t->st = BS_POST;
                        return;
                }
                break;
        case BS_STATUS:
                if (x->status == 204 || x->status == 202) {
                        if (x->location) {
                                free(t->upload_url);
                                t->upload_url = url_resolve(r, x->location);
                        }
                        next = range_next(x->range);
                        t->offset = next >= 0 ? next : 0;
                        if (t->offset > t->desc.size)
                                t->offset = t->desc.size;
                        t->st = t->offset >= t->desc.size ? BS_PUT_FINAL : BS_PATCH;
                        return;
                }
                if (x->status == 404) {
                        t->st = BS_POST;
                        return;
                }
                break;
        case BS_GET:
                if (x->status == 200) {
                        struct step_oci_blob_writer *w = x->sink;
                        x->sink = NULL;
                        rc = step_oci_blob_stage(t->staged, w, err);
                        if (rc)
                                sw_err_wrap(err, "download %s from %s/%s", t->desc.digest, r->host,
                                            t->repo);
                        blob_finish(t, rc, STEP_REGISTRY_DOWNLOADED, err);
                        return;
                }
                break;
        }
        blob_finish(t, step__curl_err(x, err), 0, err);
}

static int blob_start(struct blob_task *t, struct sw_err *err)
{
        int rc;

        /* A blob's time runs from its first request, not from when it was queued. */
        if (!t->t0_ms)
                t->t0_ms = sw_mono_ms();
        blob_make_xfer(t);
        if (t->st == BS_GET) {
                rc = step_oci_blob_begin(&t->x->sink, t->l, t->desc.digest, t->desc.size, err);
                if (rc)
                        return rc;
        }
        xfer_start(t->x);
        t->running = true;
        return 0;
}

/*
 * Run blob tasks, at most max_parallel transfers at a time, until all are
 * done or one fails; on failure the others are stopped (their partial
 * downloads removed) and the first error is returned.
 */
static int run_tasks(struct step_registry *r, struct blob_task *tasks, size_t n, struct sw_err *err)
{
        size_t done = 0;
        int rc = 0;

        while (done < n && rc == 0) {
                int active = 0, heavy = 0;
                int64_t now = sw_mono_ms(), wait_ms = 100;

                for (size_t i = 0; i < n; i++) {
                        active += tasks[i].running;
                        heavy += tasks[i].running && tasks[i].st != BS_HEAD;
                }
                for (size_t i = 0; i < n && active < r->max_parallel * REG_HEAD_FACTOR && rc == 0;
                     i++) {
                        struct blob_task *t = &tasks[i];
                        if (t->done || t->running)
                                continue;
                        if (t->st != BS_HEAD && heavy >= r->max_parallel)
                                continue;
                        if (t->not_before_ms > now) {
                                if (t->not_before_ms - now < wait_ms)
                                        wait_ms = t->not_before_ms - now;
                                continue;
                        }
                        rc = blob_start(t, err);
                        active++;
                        heavy += t->st != BS_HEAD;
                }
                if (rc || active == 0) {
                        if (!rc)
                                sw_sleep_ms(wait_ms > 0 ? wait_ms : 1);
                        continue;
                }
                multi_wait(r, (int)wait_ms);
                if (multi_collect(r) == 0)
                        continue;
                for (size_t i = 0; i < n && rc == 0; i++) {
                        struct blob_task *t = &tasks[i];
                        if (!t->running || !t->x->done)
                                continue;
                        t->running = false;
                        blob_step(t, err);
                        if (t->done) {
                                done++;
                                rc = t->rc;
                        }
                }
        }
        for (size_t i = 0; i < n; i++) {
                xfer_free(tasks[i].x); /* removes running handles, drops partial blobs */
                tasks[i].x = NULL;
                tasks[i].running = false;
        }
        return rc;
}

/* Release the first `n` (initialised) tasks and the array. */
static void tasks_release(struct blob_task *tasks, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                xfer_free(tasks[i].x);
                free(tasks[i].upload_url);
                if (tasks[i].fd >= 0)
                        close(tasks[i].fd);
        }
        free(tasks);
}

static void report(struct step_registry *r, const char *what, const struct step_oci_desc *d,
                   int64_t t0, enum step_registry_blob_result res)
{
        if (r->progress) {
                struct step_registry_progress p = {d->digest, what, d->size, sw_mono_ms() - t0,
                                                   res};
                r->progress(r->progress_arg, &p);
        }
}

/* ---- push ---- */

int step_registry_push(char *digest_out, struct step_registry *r, struct step_oci_layout *l,
                       const char *layout_ref, const char *repo, const char *tag,
                       const char *mount_from, struct sw_err *err)
{
        struct step_oci_desc mdesc;
        struct step_oci_manifest m = {0};
        struct blob_task *tasks = NULL;
        struct reg_xfer *x = NULL;
        char *mtext = NULL, *url = NULL;
        size_t mlen = 0, n = 0;
        int64_t t0 = sw_mono_ms();
        int rc;

        if (!step__registry_repo_valid(repo) || !step__registry_tag_valid(tag) ||
            (mount_from && !step__registry_repo_valid(mount_from))) {
                rc = sw_err_set(err, SW_EINVAL, "push: bad repository or tag '%.256s:%.130s'", repo,
                                tag);
                goto out;
        }
        rc = step_oci_ref_resolve(&mdesc, l, layout_ref, err);
        if (rc)
                goto out;
        if (step_oci_mt_is_index(mdesc.media_type)) {
                rc = sw_err_set(err, SW_EINVAL,
                                "pushing an image index is not supported; push one manifest");
                goto out;
        }
        rc = step_oci_blob_read(&mtext, &mlen, l, mdesc.digest, STEP_OCI_MANIFEST_MAX_BYTES, err);
        if (rc)
                goto out;
        rc = step_oci_manifest_parse(&m, mdesc.media_type, mtext, mlen, err);
        if (rc)
                goto out;
        if (r->auth == REG_AUTH_UNKNOWN) {
                rc = step_registry_ping(r, err);
                if (rc)
                        goto out;
        }
        rc = auth_scope(r, repo, "pull,push", mount_from, err);
        if (rc)
                goto out;

        /* A tag already naming this very manifest means every blob is there too. */
        url = sw_xasprintf("%s/v2/%s/manifests/%s", r->base, repo, tag);
        x = xfer_new(r, "HEAD", url, "check manifest %s:%s", repo, tag);
        xfer_header(x, REG_ACCEPT_MANIFESTS);
        rc = request(r, x, err);
        if (rc)
                goto out;
        if (x->status == 200 && x->docker_digest && strcmp(x->docker_digest, mdesc.digest) == 0) {
                report(r, "manifest", &mdesc, t0, STEP_REGISTRY_EXISTED);
                goto done;
        }
        xfer_free(x);
        x = NULL;

        tasks = sw_xcalloc(m.n_layers + 1, sizeof(*tasks));
        for (size_t i = 0; i <= m.n_layers; i++) {
                const struct step_oci_desc *d = i == 0 ? &m.config : &m.layers[i - 1];
                struct blob_task *t;
                int64_t have = -1;
                bool dup = false;

                for (size_t j = 0; j < n; j++)
                        dup = dup || strcmp(tasks[j].desc.digest, d->digest) == 0;
                if (dup)
                        continue;
                if (!step_oci_blob_exists(l, d->digest, &have) || have != d->size) {
                        rc = sw_err_set(err, SW_ENOTFOUND,
                                        "layout '%s' lacks blob %s (%lld bytes) of manifest %s",
                                        step_oci_layout_dir(l), d->digest, (long long)d->size,
                                        mdesc.digest);
                        goto out;
                }
                t = &tasks[n++];
                t->fd = -1;
                t->r = r;
                t->l = l;
                t->repo = repo;
                t->mount_from = mount_from;
                t->what = i == 0 ? "config" : "layer";
                t->desc = *d;
                t->st = BS_HEAD;
                {
                        char *p = step_oci_blob_path(l, d->digest);
                        t->fd = open(p, O_RDONLY | O_CLOEXEC);
                        if (t->fd < 0)
                                rc = sw_err_errno(err, SW_EIO, errno, "open '%s'", p);
                        free(p);
                }
                if (rc)
                        goto out;
        }
        /*
         * Layers first, in parallel; the config last among the blobs, since a
         * registry that sees the config may start to consider the image.
         */
        rc = run_tasks(r, tasks + 1, n - 1, err);
        if (rc == 0)
                rc = run_tasks(r, tasks, 1, err);
        if (rc) {
                sw_err_wrap(err, "push %s/%s:%s", r->host, repo, tag);
                goto out;
        }

        x = xfer_new(r, "PUT", url, "put manifest %s:%s", repo, tag);
        xfer_header(x, "Content-Type: %s", m.media_type);
        xfer_body_mem(x, mtext, mlen);
        rc = request(r, x, err);
        if (rc)
                goto out;
        if (x->status != 201 && x->status != 200) {
                rc = step__curl_err(x, err);
                goto out;
        }
        if (x->docker_digest && strcmp(x->docker_digest, mdesc.digest) != 0) {
                rc = sw_err_set(err, SW_ECORRUPT, "registry %s stored manifest %s as %s", r->host,
                                mdesc.digest, x->docker_digest);
                goto out;
        }
        report(r, "manifest", &mdesc, t0, STEP_REGISTRY_UPLOADED);
done:
        if (digest_out)
                memcpy(digest_out, mdesc.digest, SW_DIGEST_STR_LEN);
        rc = 0;
out:
        if (tasks)
                tasks_release(tasks, n);
        xfer_free(x);
        free(url);
        free(mtext);
        step_oci_manifest_release(&m);
        return rc;
}

/* ---- pull ---- */

/* GET a manifest into memory; checks size, digest and media type. */
static int manifest_get(char **out, size_t *len_out, struct step_oci_desc *desc,
                        struct step_registry *r, const char *repo, const char *reference,
                        struct sw_err *err)
{
        char *url = sw_xasprintf("%s/v2/%s/manifests/%s", r->base, repo, reference);
        struct reg_xfer *x = xfer_new(r, "GET", url, "get manifest %s:%s", repo, reference);
        struct step_oci_desc d;
        int rc;

        memset(&d, 0, sizeof(d));
        x->body_max = STEP_OCI_MANIFEST_MAX_BYTES;
        xfer_header(x, REG_ACCEPT_MANIFESTS);
        rc = request(r, x, err);
        if (rc) {
                if (rc == SW_ETOOBIG) {
                        sw_err_clear(err);
                        rc = sw_err_set(err, SW_ETOOBIG,
                                        "manifest %s:%s from %s is larger than %zu bytes", repo,
                                        reference, r->host, STEP_OCI_MANIFEST_MAX_BYTES);
                }
                goto out;
        }
        if (x->status != 200) {
                rc = step__curl_err(x, err);
                goto out;
        }
        sw_sha256_digest(d.digest, x->body.data ? x->body.data : "", x->body.len);
        d.size = (int64_t)x->body.len;
        if ((sw_digest_valid(reference) && strcmp(reference, d.digest) != 0) ||
            (x->docker_digest && sw_digest_valid(x->docker_digest) &&
             strcmp(x->docker_digest, d.digest) != 0)) {
                rc = sw_err_set(err, SW_ECORRUPT,
                                "manifest %s:%s from %s does not match its digest (content is %s)",
                                repo, reference, r->host, d.digest);
                goto out;
        }
        {
                /* The document's own mediaType wins over the Content-Type header. */
                json_t *doc = NULL;
                const char *mt = NULL;
                if (sw_json_parse(&doc, x->body.data ? x->body.data : "", x->body.len, 0, NULL) ==
                    0)
                        mt = sw_json_str(doc, "mediaType", NULL);
                if (!mt || !*mt)
                        mt = x->content_type ? x->content_type : "";
                snprintf(d.media_type, sizeof(d.media_type), "%s", mt);
                json_decref(doc);
        }
        if (!step_oci_mt_is_index(d.media_type) && !step_oci_mt_is_manifest(d.media_type)) {
                rc = sw_err_set(err, SW_EPROTO,
                                "manifest %s:%s from %s has unsupported media type '%.100s' "
                                "(slipway reads %s, %s, %s and %s)",
                                repo, reference, r->host, d.media_type, STEP_OCI_MT_MANIFEST,
                                STEP_OCI_MT_INDEX, STEP_OCI_MT_DOCKER_MANIFEST,
                                STEP_OCI_MT_DOCKER_LIST);
                goto out;
        }
        *desc = d;
        *len_out = x->body.len;
        *out = sw_buf_detach(&x->body, NULL);
out:
        xfer_free(x);
        free(url);
        return rc;
}

/* From an index, the linux/amd64 image manifest's digest. */
static int index_pick(char *digest_out, const char *text, size_t len, const char *what,
                      struct sw_err *err)
{
        json_t *doc = NULL, *list;
        int rc = SW_ENOTFOUND;

        if (sw_json_parse(&doc, text, len, STEP_OCI_MANIFEST_MAX_BYTES, err) != 0)
                return sw_err_wrap(err, "index %s", what);
        list = json_object_get(doc, "manifests");
        for (size_t i = 0; i < json_array_size(list); i++) {
                const json_t *e = json_array_get(list, i);
                const json_t *p = json_object_get(e, "platform");
                const char *d = sw_json_str(e, "digest", "");
                if (strcmp(sw_json_str(p, "os", ""), "linux") == 0 &&
                    strcmp(sw_json_str(p, "architecture", ""), "amd64") == 0 &&
                    sw_digest_valid(d)) {
                        snprintf(digest_out, SW_DIGEST_STR_LEN, "%s", d);
                        rc = 0;
                        break;
                }
        }
        if (rc)
                sw_err_set(err, SW_ENOTFOUND, "index %s has no linux/amd64 image", what);
        json_decref(doc);
        return rc;
}

int step_registry_pull(struct step_oci_desc *out, struct step_registry *r, const char *repo,
                       const char *reference, struct step_oci_layout *l, const char *layout_ref,
                       struct sw_err *err)
{
        struct step_oci_desc mdesc;
        struct step_oci_manifest m = {0};
        struct step_oci_staged *staged = NULL;
        struct blob_task *tasks = NULL;
        char *mtext = NULL;
        char stored[SW_DIGEST_STR_LEN];
        size_t mlen = 0, n = 0;
        int64_t t0 = sw_mono_ms();
        int rc;

        if (!step__registry_repo_valid(repo) ||
            !(sw_digest_valid(reference) || step__registry_tag_valid(reference))) {
                rc = sw_err_set(err, SW_EINVAL, "pull: bad repository or reference '%.256s:%.130s'",
                                repo, reference);
                goto out;
        }
        if (r->auth == REG_AUTH_UNKNOWN) {
                rc = step_registry_ping(r, err);
                if (rc)
                        goto out;
        }
        rc = auth_scope(r, repo, "pull", NULL, err);
        if (rc)
                goto out;
        rc = manifest_get(&mtext, &mlen, &mdesc, r, repo, reference, err);
        if (rc)
                goto out;
        if (step_oci_mt_is_index(mdesc.media_type)) {
                char pick[SW_DIGEST_STR_LEN];
                char what[STEP_REGISTRY_REPO_MAX + STEP_REGISTRY_TAG_MAX + 80];

                snprintf(what, sizeof(what), "%s:%s", repo, reference);
                rc = index_pick(pick, mtext, mlen, what, err);
                if (rc)
                        goto out;
                free(mtext);
                mtext = NULL;
                rc = manifest_get(&mtext, &mlen, &mdesc, r, repo, pick, err);
                if (rc)
                        goto out;
                if (!step_oci_mt_is_manifest(mdesc.media_type)) {
                        rc = sw_err_set(err, SW_EPROTO,
                                        "index %s points at %s, which is not an image manifest",
                                        what, pick);
                        goto out;
                }
        }
        rc = step_oci_manifest_parse(&m, mdesc.media_type, mtext, mlen, err);
        if (rc) {
                sw_err_wrap(err, "manifest %s:%s from %s", repo, reference, r->host);
                goto out;
        }
        tasks = sw_xcalloc(m.n_layers + 1, sizeof(*tasks));
        for (size_t i = 0; i <= m.n_layers; i++) {
                const struct step_oci_desc *d = i == 0 ? &m.config : &m.layers[i - 1];
                const char *what = i == 0 ? "config" : "layer";
                int64_t have = -1;
                bool dup = false;

                for (size_t j = 0; j < n; j++)
                        dup = dup || strcmp(tasks[j].desc.digest, d->digest) == 0;
                if (dup)
                        continue;
                if (step_oci_blob_exists(l, d->digest, &have) && have == d->size) {
                        report(r, what, d, t0, STEP_REGISTRY_PRESENT);
                        continue;
                }
                tasks[n] = (struct blob_task){.r = r,
                                              .l = l,
                                              .staged = &staged,
                                              .repo = repo,
                                              .what = what,
                                              .desc = *d,
                                              .fd = -1,
                                              .st = BS_GET};
                n++;
        }
        rc = run_tasks(r, tasks, n, err);
        if (rc) {
                sw_err_wrap(err, "pull %s/%s:%s", r->host, repo, reference);
                goto out;
        }
        /* All verified: flushed together, then named. */
        rc = step_oci_staged_publish(staged, err);
        staged = NULL;
        if (rc)
                goto out;
        /* The manifest goes in last: index.json never names an incomplete image. */
        rc = step_oci_blob_add_mem(stored, l, mtext, mlen, err);
        if (rc)
                goto out;
        rc = step_oci_ref_set(l, layout_ref, &mdesc, err);
        if (rc)
                goto out;
        report(r, "manifest", &mdesc, t0, STEP_REGISTRY_DOWNLOADED);
        if (out)
                *out = mdesc;
out:
        if (tasks)
                tasks_release(tasks, n);
        step_oci_staged_free(staged);
        free(mtext);
        step_oci_manifest_release(&m);
        return rc;
}
