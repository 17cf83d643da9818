/*
 * validate.c - the only values allowed into the nginx configuration.
 *
 * nginx's configuration language gives meaning to spaces, quotes, braces,
 * semicolons, '#', '$' and newlines; a host or path carrying one could add
 * directives (the ingress-nginx CVEs). So every value is checked against a
 * small allow-list of characters before the table accepts it, and the
 * renderer never quotes or escapes: what passes here is safe as a bare word.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "common/validate.h"
#include "ingress/ingress_int.h"
#include "common/banned.h"

#define PATH_MAX_LEN 1024

void ingress__quote(char *out, size_t size, const char *s)
{
        size_t o = 0, i;

        for (i = 0; s[i] && i < 64 && o + 8 < size; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c == '\n')
                        o += (size_t)snprintf(out + o, size - o, "\\n");
                else if (c == '\t')
                        o += (size_t)snprintf(out + o, size - o, "\\t");
                else if (c < 0x20 || c >= 0x7f)
                        o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
                else
                        out[o++] = (char)c;
        }
        if (s[i] && o + 4 < size)
                o += (size_t)snprintf(out + o, size - o, "...");
        out[o < size ? o : size - 1] = '\0';
}

int ingress_valid_host(const char *host, const char *what, struct sw_err *err)
{
        char q[INGRESS__QUOTE_MAX];
        const char *name = host;

        ingress__quote(q, sizeof(q), host);
        if (!*host)
                return sw_err_set(err, SW_EINVAL, "%s: must not be empty", what);
        for (const char *p = host; *p; p++) {
                char c = *p;
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                      c == '*'))
                        return sw_err_set(err, SW_EINVAL,
                                          "%s: '%s' may contain only lowercase letters, digits, "
                                          "'-' and '.' (RFC 1123), and a leading '*.'",
                                          what, q);
        }
        if (host[0] == '*') {
                if (host[1] != '.')
                        return sw_err_set(err, SW_EINVAL,
                                          "%s: '%s': a wildcard must be a whole first label "
                                          "('*.example.com')",
                                          what, q);
                name = host + 2;
        }
        if (strchr(name, '*'))
                return sw_err_set(err, SW_EINVAL,
                                  "%s: '%s': '*' is only allowed as the whole first label", what,
                                  q);
        return sw_valid_dns1123_subdomain(name, what, err);
}

static bool path_char_ok(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               strchr("-._~/!*+,:@&=", c) != NULL;
}

int ingress_valid_path(const char *path, const char *what, struct sw_err *err)
{
        char q[INGRESS__QUOTE_MAX];
        size_t len = strlen(path);

        ingress__quote(q, sizeof(q), path);
        if (path[0] != '/')
                return sw_err_set(err, SW_EINVAL, "%s: '%s' must begin with '/'", what, q);
        if (len > PATH_MAX_LEN)
                return sw_err_set(err, SW_EINVAL, "%s: longer than %d characters", what,
                                  PATH_MAX_LEN);
        for (size_t i = 0; i < len; i++)
                if (!path_char_ok(path[i]))
                        return sw_err_set(err, SW_EINVAL,
                                          "%s: '%s' may contain only letters, digits and "
                                          "\"-._~/!*+,:@&=\"",
                                          what, q);
        /*
         * nginx matches locations against the normalised URI (slashes merged,
         * dot segments resolved), so a path with those could never match.
         */
        if (strstr(path, "//"))
                return sw_err_set(err, SW_EINVAL, "%s: '%s' contains an empty segment ('//')", what,
                                  q);
        for (const char *seg = path; seg; seg = strchr(seg + 1, '/')) {
                const char *s = seg + 1;
                size_t n = strcspn(s, "/");
                if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
                        return sw_err_set(err, SW_EINVAL, "%s: '%s' contains a '.' or '..' segment",
                                          what, q);
        }
        return 0;
}

static int parse_port(const char *s, const char *what, const char *q, struct sw_err *err)
{
        char *end = NULL;
        long v;

        if (!*s || *s == '+' || *s == '-' || *s == ' ')
                return sw_err_set(err, SW_EINVAL, "%s: '%s' needs a port after ':'", what, q);
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || *end || v < 1 || v > 65535)
                return sw_err_set(err, SW_EINVAL, "%s: '%s': port must be 1-65535", what, q);
        return 0;
}

int ingress_valid_backend(const char *addr, const char *what, struct sw_err *err)
{
        char q[INGRESS__QUOTE_MAX];
        const char *colon;
        char *hostpart = NULL;
        int rc;

        ingress__quote(q, sizeof(q), addr);
        if (addr[0] == '[') {
                const char *close = strchr(addr, ']');
                if (!close || close[1] != ':' || close == addr + 1)
                        return sw_err_set(err, SW_EINVAL, "%s: '%s' is not '[ipv6]:port'", what, q);
                for (const char *p = addr + 1; p < close; p++)
                        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || *p == ':' ||
                              *p == '.'))
                                return sw_err_set(err, SW_EINVAL, "%s: '%s' is not an IPv6 address",
                                                  what, q);
                return parse_port(close + 2, what, q, err);
        }
        colon = strrchr(addr, ':');
        if (!colon || colon == addr)
                return sw_err_set(err, SW_EINVAL, "%s: '%s' is not 'address:port'", what, q);
        rc = parse_port(colon + 1, what, q, err);
        if (rc)
                return rc;
        /* An IPv4 address passes the RFC 1123 check too (labels of digits). */
        hostpart = sw_xstrndup(addr, (size_t)(colon - addr));
        rc = sw_valid_dns1123_subdomain(hostpart, what, err);
        free(hostpart);
        return rc;
}

int ingress_valid_file(const char *path, const char *what, struct sw_err *err)
{
        char q[INGRESS__QUOTE_MAX];

        ingress__quote(q, sizeof(q), path);
        if (path[0] != '/')
                return sw_err_set(err, SW_EINVAL, "%s: '%s' must be an absolute path", what, q);
        if (strlen(path) > 4096)
                return sw_err_set(err, SW_EINVAL, "%s: longer than 4096 characters", what);
        for (const char *p = path; *p; p++) {
                char c = *p;
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      strchr("-._/+@=,", c)))
                        return sw_err_set(err, SW_EINVAL,
                                          "%s: '%s' may contain only letters, digits and "
                                          "\"-._/+@=,\"",
                                          what, q);
        }
        if (strstr(path, "/../") ||
            (strlen(path) >= 3 && strcmp(path + strlen(path) - 3, "/..") == 0))
                return sw_err_set(err, SW_EINVAL, "%s: '%s' contains a '..' segment", what, q);
        return 0;
}
