/*
 * registry_auth.c - the parsing half of the registry client: image
 * references, WWW-Authenticate challenges, Docker config.json credentials and
 * the insecure-registry list. No network here, so all of it is unit-tested.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/json.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/mem.h"
#include "steps/registry.h"
#include "steps/registry_int.h"
#include "common/banned.h"

#define DOCKER_CONFIG_MAX_BYTES ((size_t)1 << 20)

static bool lower_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/*
 * The distribution grammar: components of [a-z0-9]+ joined by one
 * separator ("." "_" "__" or a run of "-"), components joined by "/".
 */
bool step__registry_repo_valid(const char *s)
{
        const char *p = s;

        for (;;) {
                if (!lower_alnum(*p))
                        return false; /* a component or a separator's tail must start alnum */
                while (lower_alnum(*p))
                        p++;
                if (*p == '\0')
                        return true;
                if (*p == '/') {
                        p++;
                } else if (*p == '.') {
                        p++;
                } else if (*p == '_') {
                        p += p[1] == '_' ? 2 : 1;
                } else if (*p == '-') {
                        while (*p == '-')
                                p++;
                } else {
                        return false;
                }
        }
}

bool step__registry_tag_valid(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > 128 || !(isalnum((unsigned char)s[0]) || s[0] == '_'))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!(isalnum((unsigned char)s[i]) || strchr("_.-", s[i])))
                        return false;
        return true;
}

int step_registry_ref_parse(struct step_registry_ref *out, const char *ref,
                            const char *default_host, struct sw_err *err)
{
        struct step_registry_ref r;
        char *s = NULL, *at, *slash, *rest, *colon;
        int rc = 0;

        memset(&r, 0, sizeof(r));
        if (strlen(ref) > 512)
                return sw_err_set(err, SW_EINVAL, "image reference is longer than 512 bytes");
        s = sw_xstrdup(ref);
        at = strchr(s, '@');
        if (at) {
                *at = '\0';
                if (!sw_digest_valid(at + 1)) {
                        rc = sw_err_set(err, SW_EINVAL,
                                        "image reference '%s': '%s' is not a sha256 digest", ref,
                                        at + 1);
                        goto out;
                }
                snprintf(r.digest, sizeof(r.digest), "%s", at + 1);
        }
        rest = s;
        slash = strchr(s, '/');
        if (slash && (memchr(s, '.', (size_t)(slash - s)) || memchr(s, ':', (size_t)(slash - s)) ||
                      strncmp(s, "localhost/", 10) == 0)) {
                *slash = '\0';
                if (strlen(s) >= sizeof(r.host) || !*s) {
                        rc = sw_err_set(err, SW_EINVAL, "image reference '%s': bad registry host",
                                        ref);
                        goto out;
                }
                snprintf(r.host, sizeof(r.host), "%s", s);
                rest = slash + 1;
        } else {
                if (!default_host || !*default_host) {
                        rc = sw_err_set(err, SW_EINVAL,
                                        "image reference '%s' names no registry host", ref);
                        goto out;
                }
                snprintf(r.host, sizeof(r.host), "%s", default_host);
        }
        colon = strrchr(rest, ':');
        if (colon && !strchr(colon, '/')) {
                *colon = '\0';
                if (!step__registry_tag_valid(colon + 1)) {
                        rc = sw_err_set(err, SW_EINVAL, "image reference '%s': bad tag '%s'", ref,
                                        colon + 1);
                        goto out;
                }
                snprintf(r.tag, sizeof(r.tag), "%s", colon + 1);
        }
        if (strlen(rest) >= sizeof(r.repo) || !step__registry_repo_valid(rest)) {
                rc = sw_err_set(err, SW_EINVAL,
                                "image reference '%s': bad repository name '%s' (lowercase "
                                "letters, digits and . _ - / separators)",
                                ref, rest);
                goto out;
        }
        snprintf(r.repo, sizeof(r.repo), "%s", rest);
        if (!r.tag[0] && !r.digest[0])
                snprintf(r.tag, sizeof(r.tag), "latest");
        *out = r;
out:
        free(s);
        return rc;
}

/* ---- WWW-Authenticate ---- */

static const char *skip_ws(const char *p)
{
        while (*p == ' ' || *p == '\t')
                p++;
        return p;
}

int step_registry_challenge_parse(struct step_registry_challenge *out, const char *header,
                                  struct sw_err *err)
{
        struct step_registry_challenge c;
        const char *p = skip_ws(header);
        size_t n = 0;
        int rc = 0;

        memset(&c, 0, sizeof(c));
        while (p[n] && p[n] != ' ' && p[n] != '\t')
                n++;
        if (n == 0 || n >= sizeof(c.scheme))
                return sw_err_set(err, SW_EPROTO, "malformed WWW-Authenticate header");
        memcpy(c.scheme, p, n);
        p = skip_ws(p + n);
        while (*p) {
                const char *key = p;
                size_t klen = 0;
                struct sw_buf val = SW_BUF_INIT;
                char **slot = NULL;

                while (key[klen] &&
                       (isalnum((unsigned char)key[klen]) || key[klen] == '_' || key[klen] == '-'))
                        klen++;
                p = skip_ws(key + klen);
                if (klen == 0 || *p != '=') {
                        rc = sw_err_set(err, SW_EPROTO,
                                        "malformed WWW-Authenticate header near '%.20s'", key);
                        goto out;
                }
                p = skip_ws(p + 1);
                sw_buf_init(&val, 8192);
                if (*p == '"') {
                        for (p++; *p && *p != '"'; p++) {
                                if (*p == '\\' && p[1])
                                        p++;
                                if (sw_buf_putc(&val, *p, err) != 0)
                                        break;
                        }
                        if (*p != '"') {
                                sw_buf_release(&val);
                                rc = sw_err_set(err, SW_EPROTO,
                                                "WWW-Authenticate header: unterminated quoted "
                                                "value");
                                goto out;
                        }
                        p++;
                } else {
                        while (*p && *p != ',' && *p != ' ' && *p != '\t')
                                sw_buf_putc(&val, *p++, err);
                }
                if (klen == 5 && strncasecmp(key, "realm", 5) == 0)
                        slot = &c.realm;
                else if (klen == 7 && strncasecmp(key, "service", 7) == 0)
                        slot = &c.service;
                else if (klen == 5 && strncasecmp(key, "scope", 5) == 0)
                        slot = &c.scope;
                else if (klen == 5 && strncasecmp(key, "error", 5) == 0)
                        slot = &c.error;
                if (slot) {
                        free(*slot);
                        *slot = sw_buf_detach(&val, NULL);
                }
                sw_buf_release(&val);
                p = skip_ws(p);
                if (*p == ',')
                        p = skip_ws(p + 1);
                else if (*p) {
                        rc = sw_err_set(err, SW_EPROTO,
                                        "malformed WWW-Authenticate header near '%.20s'", p);
                        goto out;
                }
        }
        *out = c;
        memset(&c, 0, sizeof(c));
out:
        step_registry_challenge_release(&c);
        return rc;
}

void step_registry_challenge_release(struct step_registry_challenge *c)
{
        if (!c)
                return;
        free(c->realm);
        free(c->service);
        free(c->scope);
        free(c->error);
        c->realm = c->service = c->scope = c->error = NULL;
}

/* ---- Docker config.json ---- */

/* "https://host:port/v1/" -> "host:port" */
static void auth_key_host(char *out, size_t size, const char *key)
{
        const char *p = key;
        size_t n;

        if (strncmp(p, "https://", 8) == 0)
                p += 8;
        else if (strncmp(p, "http://", 7) == 0)
                p += 7;
        n = strcspn(p, "/");
        snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), p);
}

int step_registry_docker_auth(char **user_out, char **password_out, const char *config_path,
                              const char *host, struct sw_err *err)
{
        char *text = NULL, *user = NULL, *pass = NULL;
        unsigned char *raw = NULL;
        json_t *doc = NULL, *auths;
        const char *key, *b64 = NULL;
        json_t *val;
        size_t len = 0, blen;
        int n, rc;

        rc = sw_read_file(&text, &len, config_path, DOCKER_CONFIG_MAX_BYTES, err);
        if (rc)
                goto out;
        rc = sw_json_parse(&doc, text, len, DOCKER_CONFIG_MAX_BYTES, err);
        if (rc) {
                sw_err_wrap(err, "docker config '%s'", config_path);
                goto out;
        }
        auths = json_object_get(doc, "auths");
        json_object_foreach(auths, key, val)
        {
                char h[STEP_REGISTRY_HOST_MAX];

                auth_key_host(h, sizeof(h), key);
                if (strcmp(h, host) == 0) {
                        b64 = sw_json_str(val, "auth", NULL);
                        if (b64)
                                break;
                }
        }
        if (!b64) {
                rc = sw_err_set(err, SW_ENOTFOUND, "docker config '%s' has no auths entry for %s",
                                config_path, host);
                goto out;
        }
        blen = strlen(b64);
        if (blen == 0 || blen % 4 != 0 || blen > 8192) {
                rc = sw_err_set(err, SW_EINVAL,
                                "docker config '%s': the auth of %s is not valid base64",
                                config_path, host);
                goto out;
        }
        raw = sw_xmalloc(blen);
        n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)blen);
        if (n < 0) {
                rc = sw_err_set(err, SW_EINVAL,
                                "docker config '%s': the auth of %s is not valid base64",
                                config_path, host);
                goto out;
        }
        /* EVP_DecodeBlock counts the padding as zero bytes. */
        if (b64[blen - 1] == '=')
                n--;
        if (b64[blen - 2] == '=')
                n--;
        {
                unsigned char *colon = memchr(raw, ':', (size_t)n);
                if (!colon) {
                        rc = sw_err_set(err, SW_EINVAL,
                                        "docker config '%s': the auth of %s is not user:password",
                                        config_path, host);
                        goto out;
                }
                user = sw_xstrndup((const char *)raw, (size_t)(colon - raw));
                pass = sw_xstrndup((const char *)colon + 1, (size_t)(n - (colon + 1 - raw)));
        }
        *user_out = user;
        *password_out = pass;
        user = pass = NULL;
out:
        if (raw) {
                sw_wipe(raw, blen);
                free(raw);
        }
        free(user);
        sw_free_secret(pass);
        json_decref(doc);
        if (text) {
                sw_wipe(text, len);
                free(text);
        }
        return rc;
}

bool step_registry_host_insecure(const char *list, const char *host)
{
        const char *p = list;

        if (!list || !host)
                return false;
        while (*p) {
                size_t n = strcspn(p, ",");
                const char *e = p;
                size_t en = n;

                while (en && (*e == ' ' || *e == '\t')) {
                        e++;
                        en--;
                }
                while (en && (e[en - 1] == ' ' || e[en - 1] == '\t'))
                        en--;
                if (en >= 2 && e[en - 1] == '*' && e[en - 2] == ':') {
                        /* "host:*": the host with any port, or none */
                        size_t hn = en - 2;
                        if (strncmp(host, e, hn) == 0 && (host[hn] == ':' || host[hn] == '\0'))
                                return true;
                } else if (en && strlen(host) == en && strncmp(host, e, en) == 0) {
                        return true;
                }
                p += n;
                if (*p == ',')
                        p++;
        }
        return false;
}
