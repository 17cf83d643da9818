/*
 * owner.c - the names slipway publishes and the ownership TXT records that
 * say who published them.
 *
 * Everything here is pure: it decides, before any request is sent, whether a
 * name may be written at all, and it reads and writes external-dns's TXT
 * registry format, so that the reconcile code in record.c can compare owners.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/mem.h"
#include "common/validate.h"
#include "dns/dns.h"
#include "dns/dns_int.h"
#include "common/banned.h"

#define HERITAGE "external-dns"
#define KEY_OWNER "external-dns/owner"
#define KEY_RESOURCE "external-dns/resource"
/* The "new format" prefix of external-dns's TXT registry for A records. */
#define TXT_PREFIX "a-"
#define TXT_CONTENT_MAX 4096

void dns__quote(char *out, size_t size, const char *s)
{
        size_t o = 0;

        /* Each step keeps room for "..." and the NUL after what it writes. */
        assert(size >= 8);
        for (size_t i = 0; s[i]; i++) {
                unsigned char ch = (unsigned char)s[i];
                char esc[8];
                size_t n;

                if (ch == '\n') {
                        memcpy(esc, "\\n", 2);
                        n = 2;
                } else if (ch < 0x20 || ch >= 0x7f) {
                        snprintf(esc, sizeof(esc), "\\x%02x", ch);
                        n = 4;
                } else {
                        esc[0] = (char)ch;
                        n = 1;
                }
                if (o + n + 4 > size) {
                        memcpy(out + o, "...", 3);
                        o += 3;
                        break;
                }
                memcpy(out + o, esc, n);
                o += n;
        }
        out[o] = '\0';
}

int dns_name_canonical(char **out, const char *name, const char *what, struct sw_err *err)
{
        char shown[96];
        size_t len;
        char *bare = NULL;
        int rc;

        if (!name || !*name)
                return sw_err_set(err, SW_EINVAL, "%s: must not be empty", what);
        dns__quote(shown, sizeof(shown), name);
        for (const char *p = name; *p; p++) {
                unsigned char ch = (unsigned char)*p;
                if (ch <= 0x20 || ch >= 0x7f)
                        return sw_err_set(
                                err, SW_EINVAL,
                                "%s '%s': must not contain spaces, control characters or non-ASCII bytes",
                                what, shown);
                if (ch >= 'A' && ch <= 'Z')
                        return sw_err_set(err, SW_EINVAL, "%s '%s': must be lower-case", what,
                                          shown);
        }
        len = strlen(name);
        if (name[len - 1] == '.')
                len--;
        if (len > 253)
                return sw_err_set(err, SW_EINVAL,
                                  "%s '%s': is %zu characters long, longer than 253", what, shown,
                                  len);
        bare = sw_xstrndup(name, len);
        rc = sw_valid_dns1123_subdomain(bare, what, err);
        if (rc == 0)
                *out = sw_xasprintf("%s.", bare);
        free(bare);
        return rc;
}

int dns_name_in_zone(const char *fqdn, const char *zone, struct sw_err *err)
{
        size_t fl = strlen(fqdn), zl = strlen(zone);
        const char *dot = strchr(fqdn, '.');

        if (fl <= zl || strcmp(fqdn + fl - zl, zone) != 0 || fqdn[fl - zl - 1] != '.')
                return sw_err_set(err, SW_EINVAL, "host '%s' is not inside the zone '%s'", fqdn,
                                  zone);
        if (dot && (size_t)(dot - fqdn) + strlen(TXT_PREFIX) > 63)
                return sw_err_set(err, SW_EINVAL,
                                  "host '%s': its first label is longer than %zu characters, "
                                  "which leaves no room for the ownership record '%s<label>'",
                                  fqdn, 63 - strlen(TXT_PREFIX), TXT_PREFIX);
        if (fl - 1 + strlen(TXT_PREFIX) > 253)
                return sw_err_set(err, SW_EINVAL,
                                  "host '%s': longer than %zu characters, which leaves no room "
                                  "for its ownership record",
                                  fqdn, 253 - strlen(TXT_PREFIX));
        return 0;
}

char *dns_owner_txt_name(const char *fqdn)
{
        return sw_xasprintf("%s%s", TXT_PREFIX, fqdn);
}

char *dns__txt_owner_of(const char *txt_name)
{
        size_t pl = strlen(TXT_PREFIX);

        if (strncmp(txt_name, TXT_PREFIX, pl) != 0 || !txt_name[pl] || txt_name[pl] == '.')
                return NULL;
        return sw_xstrdup(txt_name + pl);
}

static int charset_check(const char *s, size_t max, const char *extra, const char *what,
                         struct sw_err *err)
{
        char shown[96];
        size_t len = s ? strlen(s) : 0;

        if (len == 0)
                return sw_err_set(err, SW_EINVAL, "%s: must not be empty", what);
        dns__quote(shown, sizeof(shown), s);
        if (len > max)
                return sw_err_set(err, SW_EINVAL, "%s '%s': longer than %zu characters", what,
                                  shown, max);
        for (size_t i = 0; i < len; i++) {
                char ch = s[i];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || strchr(extra, ch)))
                        return sw_err_set(err, SW_EINVAL,
                                          "%s '%s': may contain only letters, digits and '%s'",
                                          what, shown, extra);
        }
        return 0;
}

int dns_owner_id_check(const char *owner, struct sw_err *err)
{
        return charset_check(owner, DNS_OWNER_MAX, "._-", "owner id", err);
}

int dns_owner_resource_check(const char *resource, struct sw_err *err)
{
        return charset_check(resource, DNS_RESOURCE_MAX, "._/-", "resource", err);
}

int dns_owner_txt_format(char **out, const char *owner, const char *resource, struct sw_err *err)
{
        int rc = dns_owner_id_check(owner, err);

        if (rc)
                return rc;
        if (resource && (rc = dns_owner_resource_check(resource, err)) != 0)
                return rc;
        /* The checks above leave nothing that needs escaping inside the quotes. */
        if (resource)
                *out = sw_xasprintf("\"heritage=%s,%s=%s,%s=%s\"", HERITAGE, KEY_OWNER, owner,
                                    KEY_RESOURCE, resource);
        else
                *out = sw_xasprintf("\"heritage=%s,%s=%s\"", HERITAGE, KEY_OWNER, owner);
        return 0;
}

/*
 * Join the character-strings of TXT presentation format into `b`:
 * "abc" "def" -> abcdef. Unquoted words are accepted too, as zone files
 * allow them.
 */
static int txt_unquote(struct sw_buf *b, const char *s, struct sw_err *err)
{
        const char *p = s;
        int rc;

        for (;;) {
                bool quoted;

                while (*p == ' ' || *p == '\t')
                        p++;
                if (!*p)
                        return 0;
                quoted = *p == '"';
                if (quoted)
                        p++;
                while (*p && (quoted ? *p != '"' : (*p != ' ' && *p != '\t'))) {
                        char ch = *p++;
                        if (ch == '\\') {
                                if (p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9' &&
                                    p[2] >= '0' && p[2] <= '9') {
                                        int v = (p[0] - '0') * 100 + (p[1] - '0') * 10 +
                                                (p[2] - '0');
                                        if (v > 255)
                                                return sw_err_set(err, SW_EINVAL,
                                                                  "txt: escape \\%.3s is not a "
                                                                  "byte",
                                                                  p);
                                        ch = (char)v;
                                        p += 3;
                                } else if (*p) {
                                        ch = *p++;
                                } else {
                                        return sw_err_set(err, SW_EINVAL,
                                                          "txt: ends in a lone backslash");
                                }
                        }
                        if ((rc = sw_buf_putc(b, ch, err)) != 0)
                                return rc;
                }
                if (quoted) {
                        if (*p != '"')
                                return sw_err_set(err, SW_EINVAL, "txt: unterminated quote");
                        p++;
                }
        }
}

int dns_owner_txt_parse(struct dns_owner *out, const char *content, struct sw_err *err)
{
        struct sw_buf b = SW_BUF_INIT;
        struct dns_owner own;
        bool heritage = false, have_owner = false;
        const char *p;
        int rc;

        memset(&own, 0, sizeof(own));
        sw_buf_init(&b, TXT_CONTENT_MAX);
        rc = txt_unquote(&b, content, err);
        if (rc)
                goto out;
        for (p = sw_buf_str(&b); *p;) {
                const char *comma = strchr(p, ',');
                size_t n = comma ? (size_t)(comma - p) : strlen(p);
                const char *eq = memchr(p, '=', n);

                if (eq) {
                        size_t kl = (size_t)(eq - p), vl = n - kl - 1;
                        const char *v = eq + 1;

                        if (kl == strlen("heritage") && strncmp(p, "heritage", kl) == 0)
                                heritage = vl == strlen(HERITAGE) && strncmp(v, HERITAGE, vl) == 0;
                        else if (kl == strlen(KEY_OWNER) && strncmp(p, KEY_OWNER, kl) == 0 &&
                                 vl <= DNS_OWNER_MAX) {
                                memcpy(own.owner, v, vl);
                                own.owner[vl] = '\0';
                                have_owner = true;
                        } else if (kl == strlen(KEY_RESOURCE) &&
                                   strncmp(p, KEY_RESOURCE, kl) == 0 && vl <= DNS_RESOURCE_MAX) {
                                memcpy(own.resource, v, vl);
                                own.resource[vl] = '\0';
                        }
                }
                p += n;
                if (*p == ',')
                        p++;
        }
        if (!heritage || !have_owner || !own.owner[0]) {
                rc = sw_err_set(err, SW_ENOTFOUND, "txt: not an external-dns ownership record");
                goto out;
        }
        *out = own;
        rc = 0;
out:
        sw_buf_release(&b);
        return rc;
}
