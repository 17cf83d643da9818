/*
 * client.c - the PowerDNS Authoritative HTTP API over libcurl: zones and rrsets.
 *
 * Every request goes through client_do(), which sends the API key header,
 * caps the response body, and translates libcurl's errors (client_curl_err)
 * and HTTP error statuses (client_http_err) into SW_E* codes exactly once.
 * PowerDNS 4.7 answers some errors with {"error": "..."} and others with a
 * plain-text reason ("Not Found", "Conflict", "Unauthorized"): both become
 * the message. The API key never appears in a message: only the API URL
 * (without any user info) and PowerDNS's own words do.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/json.h"
#include "common/mem.h"
#include "dns/dns.h"
#include "dns/dns_int.h"
#include "common/banned.h"

#define DEFAULT_TIMEOUT_MS 5000u
#define SERVER_ID_MAX 64

struct dns_client {
        CURL *curl;
        char *base;                 /* "<api_url>/servers/<server_id>" */
        char *shown_url;            /* api_url without user info, for messages */
        struct curl_slist *headers; /* the first one holds the API key */
        uint32_t timeout_ms;
        bool create_zones;
        struct dns_zone *zone; /* the last zone looked up */
        char errbuf[CURL_ERROR_SIZE];
};

/* --- errors at the boundaries --- */

static int client_curl_err(struct dns_client *c, CURLcode cc, const struct sw_buf *body,
                           const char *what, struct sw_err *err)
{
        const char *why = c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc);

        switch (cc) {
        case CURLE_WRITE_ERROR:
                /* Only on_body() refuses data, and only past the cap (allocation aborts). */
                return sw_err_set(err, SW_ETOOBIG,
                                  "%s: powerdns api at %s sent more than %zu bytes (%zu kept)",
                                  what, c->shown_url, DNS_RESPONSE_MAX_BYTES, body->len);
        case CURLE_OPERATION_TIMEDOUT:
                return sw_err_set(err, SW_ETIMEDOUT,
                                  "%s: powerdns api at %s did not answer within %u ms", what,
                                  c->shown_url, c->timeout_ms);
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_GOT_NOTHING:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_PARTIAL_FILE:
                return sw_err_set(err, SW_EUNAVAIL, "%s: powerdns api at %s is unreachable: %s",
                                  what, c->shown_url, why);
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CACERT_BADFILE:
                return sw_err_set(err, SW_EPROTO, "%s: powerdns api at %s: %s", what, c->shown_url,
                                  why);
        default:
                return sw_err_set(err, SW_EIO, "%s: powerdns api at %s: %s", what, c->shown_url,
                                  why);
        }
}

/* PowerDNS's reason: the "error" member of a JSON body, else the text's first line. */
static void body_reason(char *out, size_t size, const struct sw_buf *body)
{
        json_t *v = NULL;
        const char *text = sw_buf_str(body);
        char line[400];
        size_t n;

        if (body->len > 0 && text[0] == '{' &&
            sw_json_parse(&v, text, body->len, body->len, NULL) == 0) {
                const char *e = sw_json_str(v, "error", NULL);
                if (e) {
                        dns__quote(out, size, e);
                        json_decref(v);
                        return;
                }
        }
        json_decref(v);
        n = strcspn(text, "\r\n");
        if (n >= sizeof(line))
                n = sizeof(line) - 1;
        memcpy(line, text, n);
        line[n] = '\0';
        dns__quote(out, size, line);
}

static int client_http_err(struct dns_client *c, long status, const struct sw_buf *body,
                           const char *what, struct sw_err *err)
{
        char reason[320];

        body_reason(reason, sizeof(reason), body);
        if (!reason[0])
                snprintf(reason, sizeof(reason), "no reason given");
        if (status == 401 || status == 403)
                return sw_err_set(err, SW_EAUTH,
                                  "%s: powerdns api at %s rejected the API key (%ld %s); check "
                                  "SLIPWAY_PDNS_API_KEY",
                                  what, c->shown_url, status, reason);
        if (status == 404)
                return sw_err_set(err, SW_ENOTFOUND, "%s: not found (404 %s)", what, reason);
        if (status == 409)
                return sw_err_set(err, SW_EEXIST, "%s: already exists (409 %s)", what, reason);
        if (status == 400 || status == 422)
                return sw_err_set(err, SW_EINVAL, "%s: powerdns refused it (%ld): %s", what, status,
                                  reason);
        if (status >= 500)
                return sw_err_set(err, SW_EUNAVAIL, "%s: powerdns api at %s failed (%ld): %s", what,
                                  c->shown_url, status, reason);
        return sw_err_set(err, SW_EPROTO, "%s: unexpected answer from powerdns (%ld): %s", what,
                          status, reason);
}

/* --- requests --- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
        struct sw_err ignored = SW_ERR_INIT;

        if (sw_buf_append(arg, p, size * n, &ignored) != 0)
                return 0; /* makes libcurl stop with CURLE_WRITE_ERROR */
        return size * n;
}

/*
 * Send `method` to `url` with an optional JSON body. Returns 0 for a 2xx
 * answer with the body in `body` (initialised here, released by the caller),
 * else the translated error.
 */
static int client_do(struct sw_buf *body, struct dns_client *c, const char *method, const char *url,
                     const char *json, const char *what, struct sw_err *err)
{
        CURLcode cc;
        long status = 0;

        sw_buf_init(body, DNS_RESPONSE_MAX_BYTES);
        curl_easy_reset(c->curl);
        c->errbuf[0] = '\0';
        curl_easy_setopt(c->curl, CURLOPT_URL, url);
        curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
        curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, body);
        curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
        curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
        curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
        curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
        if (strcmp(method, "GET") != 0)
                curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
        if (json) {
                curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, json);
                curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
        }
        cc = curl_easy_perform(c->curl);
        if (cc != CURLE_OK)
                return client_curl_err(c, cc, body, what, err);
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status > 299)
                return client_http_err(c, status, body, what, err);
        return 0;
}

/* Like client_do(), and parse the answer as JSON into *out. */
static int client_do_json(json_t **out, struct dns_client *c, const char *method, const char *url,
                          const char *json, const char *what, struct sw_err *err)
{
        struct sw_buf body = SW_BUF_INIT;
        int rc = client_do(&body, c, method, url, json, what, err);

        if (rc == 0 &&
            sw_json_parse(out, sw_buf_str(&body), body.len, DNS_RESPONSE_MAX_BYTES, err) != 0)
                rc = sw_err_wrap(err, "%s: powerdns answer", what);
        sw_buf_release(&body);
        return rc;
}

/* The URL of zone `id`: the id goes in as one path segment, escaped but not rebuilt. */
static char *zone_url(const struct dns_client *c, const char *id)
{
        struct sw_buf b = SW_BUF_INIT;
        struct sw_err ignored = SW_ERR_INIT;

        sw_buf_printf(&b, &ignored, "%s/zones/", c->base);
        for (const char *p = id; *p; p++) {
                unsigned char ch = (unsigned char)*p;
                if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || strchr("._~=-", ch))
                        sw_buf_putc(&b, (char)ch, &ignored);
                else
                        sw_buf_printf(&b, &ignored, "%%%02X", ch);
        }
        return sw_buf_detach(&b, NULL);
}

/* --- the client --- */

static int options_check(const struct dns_options *opts, struct sw_err *err)
{
        const char *sid = opts->server_id ? opts->server_id : "localhost";

        if (!opts->api_url || !*opts->api_url)
                return sw_err_set(err, SW_EINVAL, "powerdns api url is not set");
        if (strncmp(opts->api_url, "http://", 7) != 0 && strncmp(opts->api_url, "https://", 8) != 0)
                return sw_err_set(err, SW_EINVAL,
                                  "powerdns api url must start with http:// or https://");
        for (const char *p = opts->api_url; *p; p++)
                if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
                        return sw_err_set(err, SW_EINVAL,
                                          "powerdns api url must not contain spaces or control "
                                          "characters");
        if (!opts->api_key || !*opts->api_key)
                return sw_err_set(err, SW_EINVAL, "powerdns api key is not set");
        for (const char *p = opts->api_key; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        return sw_err_set(err, SW_EINVAL,
                                          "powerdns api key must not contain control characters");
        if (!*sid || strlen(sid) > SERVER_ID_MAX ||
            strspn(sid, "abcdefghijklmnopqrstuvwxyz"
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789._-") != strlen(sid))
                return sw_err_set(err, SW_EINVAL,
                                  "powerdns server id must be 1-%d letters, digits, '.', '_' or "
                                  "'-'",
                                  SERVER_ID_MAX);
        return 0;
}

/* "http://user:pw@host:1/x" -> "http://host:1/x": user info never reaches a message. */
static char *url_without_userinfo(const char *url)
{
        const char *auth = strstr(url, "://") + 3;
        size_t alen = strcspn(auth, "/?#");
        const char *at = memchr(auth, '@', alen);

        if (!at)
                return sw_xstrdup(url);
        return sw_xasprintf("%.*s%s", (int)(auth - url), url, at + 1);
}

int dns_client_new(struct dns_client **out, const struct dns_options *opts, struct sw_err *err)
{
        struct dns_client *c = NULL;
        size_t ulen;
        char *key_header;
        int rc = options_check(opts, err);

        if (rc)
                return rc;
        c = sw_xcalloc(1, sizeof(*c));
        c->curl = curl_easy_init();
        if (!c->curl) {
                rc = sw_err_set(err, SW_EINTERNAL, "cannot create a libcurl handle");
                goto out;
        }
        ulen = strlen(opts->api_url);
        while (ulen > 0 && opts->api_url[ulen - 1] == '/')
                ulen--;
        c->base = sw_xasprintf("%.*s/servers/%s", (int)ulen, opts->api_url,
                               opts->server_id ? opts->server_id : "localhost");
        c->shown_url = url_without_userinfo(opts->api_url);
        c->timeout_ms = opts->timeout_ms ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
        c->create_zones = opts->create_zones;

        key_header = sw_xasprintf("X-API-Key: %s", opts->api_key);
        c->headers = curl_slist_append(NULL, key_header);
        sw_free_secret(key_header);
        if (c->headers)
                c->headers = curl_slist_append(c->headers, "Accept: application/json");
        if (c->headers)
                c->headers = curl_slist_append(c->headers, "Content-Type: application/json");
        if (!c->headers) {
                rc = sw_err_set(err, SW_EINTERNAL, "out of memory for request headers");
                goto out;
        }
        *out = c;
        c = NULL; /* ownership moved to caller */
        rc = 0;
out:
        dns_client_free(c);
        return rc;
}

void dns_client_free(struct dns_client *c)
{
        if (!c)
                return;
        /* curl copied the key header into the list: wipe that copy, not just free it. */
        for (struct curl_slist *h = c->headers; h; h = h->next)
                sw_wipe(h->data, strlen(h->data));
        curl_slist_free_all(c->headers);
        if (c->curl)
                curl_easy_cleanup(c->curl);
        dns_zone_free(c->zone);
        free(c->base);
        free(c->shown_url);
        free(c);
}

int dns_client_from_config(struct dns_client **out, const struct sw_config *cfg, struct sw_err *err)
{
        struct dns_options o = DNS_OPTIONS_INIT;

        if (!cfg->pdns_url)
                return sw_err_set(err, SW_EINVAL,
                                  "no PowerDNS configured: set SLIPWAY_PDNS_URL (its HTTP API, "
                                  "e.g. http://127.0.0.1:8081/api/v1)");
        if (!cfg->pdns_api_key)
                return sw_err_set(err, SW_EINVAL,
                                  "SLIPWAY_PDNS_API_KEY is not set (PowerDNS's api-key)");
        o.api_url = cfg->pdns_url;
        o.api_key = cfg->pdns_api_key;
        o.create_zones = cfg->dns_create_zone;
        if (dns_client_new(out, &o, err) != 0)
                return sw_err_wrap(err, "SLIPWAY_PDNS_URL");
        return 0;
}

/* --- zones --- */

static int zone_from_json(struct dns_zone **out, const json_t *v, const char *what,
                          struct sw_err *err)
{
        const char *id = sw_json_str(v, "id", NULL), *name = sw_json_str(v, "name", NULL);
        struct dns_zone *z;

        if (!id || !*id || !name)
                return sw_err_set(err, SW_EPROTO, "%s: powerdns answer has no zone id or name",
                                  what);
        z = sw_xcalloc(1, sizeof(*z));
        z->id = sw_xstrdup(id);
        z->name = sw_xstrdup(name);
        z->kind = sw_xstrdup(sw_json_str(v, "kind", ""));
        *out = z;
        return 0;
}

void dns_zone_free(struct dns_zone *z)
{
        if (!z)
                return;
        free(z->id);
        free(z->name);
        free(z->kind);
        free(z);
}

int dns_zone_find(struct dns_zone **out, struct dns_client *c, const char *zone, struct sw_err *err)
{
        char *name = NULL, *url = NULL, what[320];
        json_t *list = NULL, *v;
        size_t i;
        int rc = dns_name_canonical(&name, zone, "zone", err);

        if (rc)
                return rc;
        snprintf(what, sizeof(what), "find zone '%s'", name);
        url = sw_xasprintf("%s/zones?zone=%s", c->base, name);
        rc = client_do_json(&list, c, "GET", url, NULL, what, err);
        if (rc)
                goto out;
        if (!json_is_array(list)) {
                rc = sw_err_set(err, SW_EPROTO, "%s: powerdns answer is not a list", what);
                goto out;
        }
        /* Older servers ignore ?zone= and list every zone: look for the name. */
        json_array_foreach(list, i, v)
        {
                if (strcmp(sw_json_str(v, "name", ""), name) == 0) {
                        rc = zone_from_json(out, v, what, err);
                        goto out;
                }
        }
        rc = sw_err_set(err, SW_ENOTFOUND, "zone '%s' does not exist on the powerdns server", name);
out:
        json_decref(list);
        free(url);
        free(name);
        return rc;
}

int dns_zone_create(struct dns_zone **out, struct dns_client *c, const char *zone,
                    struct sw_err *err)
{
        char *name = NULL, *url = NULL, *body = NULL, what[320];
        json_t *req = NULL, *resp = NULL;
        int rc = dns_name_canonical(&name, zone, "zone", err);

        if (rc)
                return rc;
        snprintf(what, sizeof(what), "create zone '%s'", name);
        req = json_pack("{s:s,s:s,s:[]}", "name", name, "kind", "Native", "nameservers");
        body = sw_json_dump(req);
        url = sw_xasprintf("%s/zones", c->base);
        rc = client_do_json(&resp, c, "POST", url, body, what, err);
        if (rc == 0)
                rc = zone_from_json(out, resp, what, err);
        json_decref(req);
        json_decref(resp);
        free(body);
        free(url);
        free(name);
        return rc;
}

int dns_zone_ensure(struct dns_zone **out, struct dns_client *c, const char *zone, bool create,
                    struct sw_err *err)
{
        int rc = dns_zone_find(out, c, zone, err);

        if (rc != SW_ENOTFOUND || !create)
                return rc;
        sw_err_clear(err);
        rc = dns_zone_create(out, c, zone, err);
        if (rc == SW_EEXIST) {
                /* Created by someone else between our two requests. */
                sw_err_clear(err);
                rc = dns_zone_find(out, c, zone, err);
        }
        return rc;
}

int dns_zone_delete(struct dns_client *c, const struct dns_zone *z, struct sw_err *err)
{
        struct sw_buf body = SW_BUF_INIT;
        char *url = zone_url(c, z->id), what[320];
        int rc;

        snprintf(what, sizeof(what), "delete zone '%s'", z->name);
        rc = client_do(&body, c, "DELETE", url, NULL, what, err);
        if (c->zone && strcmp(c->zone->id, z->id) == 0)
                dns__zone_forget(c);
        sw_buf_release(&body);
        free(url);
        return rc;
}

int dns__zone_get(const struct dns_zone **out, struct dns_client *c, const char *zone, bool create,
                  struct sw_err *err)
{
        struct dns_zone *z = NULL;
        int rc;

        if (c->zone && strcmp(c->zone->name, zone) == 0) {
                *out = c->zone;
                return 0;
        }
        rc = dns_zone_ensure(&z, c, zone, create && c->create_zones, err);
        if (rc)
                return rc;
        dns_zone_free(c->zone);
        c->zone = z;
        *out = z;
        return 0;
}

void dns__zone_forget(struct dns_client *c)
{
        dns_zone_free(c->zone);
        c->zone = NULL;
}

/* --- rrsets --- */

static int type_check(const char *type, struct sw_err *err)
{
        size_t n = strlen(type);

        if (n == 0 || n > 10 || strspn(type, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != n)
                return sw_err_set(err, SW_EINVAL, "record type: '%.16s' is not a type name", type);
        return 0;
}

static int rrset_from_json(struct dns_rrset *r, const json_t *v)
{
        const json_t *recs = json_object_get(v, "records"), *rec;
        size_t i;

        r->name = sw_xstrdup(sw_json_str(v, "name", ""));
        r->type = sw_xstrdup(sw_json_str(v, "type", ""));
        r->ttl = (uint32_t)sw_json_int(v, "ttl", 0);
        r->records = sw_xcalloc(json_array_size(recs) + 1, sizeof(char *));
        json_array_foreach(recs, i, rec)
        {
                const char *content = sw_json_str(rec, "content", NULL);
                if (content)
                        r->records[r->nrecords++] = sw_xstrdup(content);
        }
        return 0;
}

int dns_rrsets_get(struct dns_rrset **out, size_t *n_out, struct dns_client *c,
                   const struct dns_zone *z, const char *name, const char *type, struct sw_err *err)
{
        char *url = NULL, *zurl = zone_url(c, z->id), what[400];
        json_t *zone = NULL, *v;
        const json_t *rrsets;
        struct dns_rrset *res = NULL;
        size_t i, n = 0;
        int rc = 0;

        if (type && (rc = type_check(type, err)) != 0)
                goto out;
        snprintf(what, sizeof(what), "read %s records of '%s'", type ? type : "the",
                 name ? name : z->name);
        /* Names reaching here are canonical RFC 1123 names: nothing to escape. */
        if (!name)
                url = sw_xstrdup(zurl);
        else if (type)
                url = sw_xasprintf("%s?rrset_name=%s&rrset_type=%s", zurl, name, type);
        else
                url = sw_xasprintf("%s?rrset_name=%s", zurl, name);
        rc = client_do_json(&zone, c, "GET", url, NULL, what, err);
        if (rc == SW_ENOTFOUND) {
                sw_err_clear(err);
                rc = sw_err_set(err, SW_ENOTFOUND, "%s: zone '%s' does not exist any more", what,
                                z->name);
                dns__zone_forget(c); /* may free `z`: not used below */
        }
        if (rc)
                goto out;
        rrsets = json_object_get(zone, "rrsets");
        res = sw_xcalloc(json_array_size(rrsets) + 1, sizeof(*res));
        /* A server that ignores the filters sends the whole zone: filter here too. */
        json_array_foreach(rrsets, i, v)
        {
                if (name && strcmp(sw_json_str(v, "name", ""), name) != 0)
                        continue;
                if (type && strcmp(sw_json_str(v, "type", ""), type) != 0)
                        continue;
                rrset_from_json(&res[n++], v);
        }
        *out = res;
        *n_out = n;
        res = NULL; /* ownership moved to caller */
out:
        dns_rrsets_free(res, n);
        json_decref(zone);
        free(url);
        free(zurl);
        return rc;
}

void dns_rrsets_free(struct dns_rrset *rrsets, size_t n)
{
        if (!rrsets)
                return;
        for (size_t i = 0; i < n; i++) {
                for (size_t j = 0; j < rrsets[i].nrecords; j++)
                        free(rrsets[i].records[j]);
                free(rrsets[i].records);
                free(rrsets[i].name);
                free(rrsets[i].type);
        }
        free(rrsets);
}

int dns_rrsets_patch(struct dns_client *c, const struct dns_zone *z,
                     const struct dns_change *changes, size_t n, struct sw_err *err)
{
        struct sw_buf body = SW_BUF_INIT;
        json_t *req = json_object(), *list = json_array();
        char *url = NULL, *text = NULL, what[400];
        int rc = 0;

        for (size_t i = 0; i < n; i++) {
                const struct dns_change *ch = &changes[i];
                json_t *rs, *recs;

                if ((rc = type_check(ch->type, err)) != 0)
                        goto out;
                if (ch->delete_rrset) {
                        rs = json_pack("{s:s,s:s,s:s}", "name", ch->name, "type", ch->type,
                                       "changetype", "DELETE");
                } else {
                        recs = json_array();
                        for (size_t j = 0; j < ch->nrecords; j++)
                                json_array_append_new(recs,
                                                      json_pack("{s:s,s:b}", "content",
                                                                ch->records[j], "disabled", 0));
                        rs = json_pack("{s:s,s:s,s:I,s:s,s:o,s:[]}", "name", ch->name, "type",
                                       ch->type, "ttl", (json_int_t)ch->ttl, "changetype",
                                       "REPLACE", "records", recs, "comments");
                }
                json_array_append_new(list, rs);
        }
        json_object_set_new(req, "rrsets", list);
        list = NULL;
        text = sw_json_dump(req);
        url = zone_url(c, z->id);
        if (n == 1)
                snprintf(what, sizeof(what), "%s %s records of '%s'",
                         changes[0].delete_rrset ? "delete" : "replace", changes[0].type,
                         changes[0].name);
        else
                snprintf(what, sizeof(what), "change %zu rrsets in zone '%s'", n, z->name);
        rc = client_do(&body, c, "PATCH", url, text, what, err);
        if (rc == SW_ENOTFOUND)
                dns__zone_forget(c);
out:
        sw_buf_release(&body);
        json_decref(list);
        json_decref(req);
        free(text);
        free(url);
        return rc;
}
