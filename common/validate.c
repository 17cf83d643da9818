/*
 * validate.c - RFC 1123/1035 names, git refs, repository URLs, quantities.
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "common/validate.h"
#include "common/banned.h"

static bool is_lower_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int label_check(const char *s, size_t len, bool letter_first, const char *what,
                       struct sw_err *err)
{
        if (len == 0)
                return sw_err_set(err, SW_EINVAL, "%s: must not be empty", what);
        if (len > 63)
                return sw_err_set(err, SW_EINVAL, "%s: '%.*s' is longer than 63 characters", what,
                                  (int)len, s);
        for (size_t i = 0; i < len; i++) {
                if (!is_lower_alnum(s[i]) && s[i] != '-')
                        return sw_err_set(err, SW_EINVAL,
                                          "%s: '%.*s' may contain only lowercase letters, digits "
                                          "and '-' (RFC 1123)",
                                          what, (int)len, s);
        }
        if (!is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1]))
                return sw_err_set(err, SW_EINVAL,
                                  "%s: '%.*s' must start and end with a letter or digit", what,
                                  (int)len, s);
        if (letter_first && !(s[0] >= 'a' && s[0] <= 'z'))
                return sw_err_set(err, SW_EINVAL, "%s: '%.*s' must start with a letter (RFC 1035)",
                                  what, (int)len, s);
        return 0;
}

int sw_valid_dns1123_label(const char *s, const char *what, struct sw_err *err)
{
        return label_check(s, strlen(s), false, what, err);
}

int sw_valid_dns1035_label(const char *s, const char *what, struct sw_err *err)
{
        return label_check(s, strlen(s), true, what, err);
}

int sw_valid_dns1123_subdomain(const char *s, const char *what, struct sw_err *err)
{
        size_t len = strlen(s);
        const char *p = s;

        if (len > 253)
                return sw_err_set(err, SW_EINVAL, "%s: longer than 253 characters", what);
        for (;;) {
                const char *dot = strchr(p, '.');
                size_t n = dot ? (size_t)(dot - p) : strlen(p);
                int rc = label_check(p, n, false, what, err);
                if (rc)
                        return rc;
                if (!dot)
                        return 0;
                p = dot + 1;
        }
}

int sw_valid_git_ref(const char *s, const char *what, struct sw_err *err)
{
        size_t len = strlen(s);

        if (len == 0)
                return sw_err_set(err, SW_EINVAL, "%s: must not be empty", what);
        if (len > 255)
                return sw_err_set(err, SW_EINVAL, "%s: longer than 255 characters", what);
        if (s[0] == '/' || s[len - 1] == '/' || s[0] == '-' || s[len - 1] == '.' ||
            strstr(s, "..") || strstr(s, "//") || strstr(s, "@{") || strstr(s, "/.") ||
            s[0] == '.' || (len >= 5 && strcmp(s + len - 5, ".lock") == 0) || strcmp(s, "@") == 0)
                return sw_err_set(err, SW_EINVAL, "%s: '%s' is not a valid git ref name", what, s);
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c < 0x20 || c == 0x7f || strchr(" ~^:?*[\\", c))
                        return sw_err_set(err, SW_EINVAL,
                                          "%s: '%s' contains a character git does not allow in "
                                          "ref names",
                                          what, s);
        }
        return 0;
}

int sw_valid_git_commit(const char *s, const char *what, struct sw_err *err)
{
        size_t len = strlen(s);

        if (len < 4 || len > 40)
                return sw_err_set(err, SW_EINVAL, "%s: '%s' must be 4 to 40 hex digits", what, s);
        for (size_t i = 0; i < len; i++)
                if (!strchr("0123456789abcdef", s[i]))
                        return sw_err_set(err, SW_EINVAL, "%s: '%s' must be lowercase hexadecimal",
                                          what, s);
        return 0;
}

int sw_valid_repo_url(const char *s, const char *what, struct sw_err *err)
{
        static const char *const schemes[] = {"https://", "http://", "git://", "ssh://", "file://"};
        size_t len = strlen(s);

        if (len == 0)
                return sw_err_set(err, SW_EINVAL, "%s: must not be empty", what);
        if (len > 2048)
                return sw_err_set(err, SW_EINVAL, "%s: longer than 2048 characters", what);
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
                        return sw_err_set(err, SW_EINVAL,
                                          "%s: must not contain spaces or control characters",
                                          what);
        if (s[0] == '/')
                return 0;
        for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
                size_t n = strlen(schemes[i]);
                if (strncmp(s, schemes[i], n) == 0 && s[n] != '\0') {
                        /* A password in the URL would be stored with the job and logged. */
                        size_t auth = strcspn(s + n, "/?#");
                        const char *at = memchr(s + n, '@', auth);
                        if (at && memchr(s + n, ':', (size_t)(at - (s + n))))
                                return sw_err_set(
                                        err, SW_EINVAL,
                                        "%s: must not contain a password (user:password@); "
                                        "configure credentials with SLIPWAY_GIT_CREDENTIALS",
                                        what);
                        return 0;
                }
        }
        return sw_err_set(err, SW_EINVAL,
                          "%s: '%s' is not a repository URL (https://, http://, git://, ssh://, "
                          "file:// or an absolute path)",
                          what, s);
}

int sw_quantity_milli(int64_t *out, const char *s, const char *what, struct sw_err *err)
{
        const char *p = s;
        long double mant = 0, scale = 1;
        bool digits = false;

        if (*p == '+')
                p++;
        if (*p == '-')
                return sw_err_set(err, SW_EINVAL, "%s: '%s' must not be negative", what, s);
        for (; *p >= '0' && *p <= '9'; p++, digits = true)
                mant = mant * 10 + (*p - '0');
        if (*p == '.') {
                long double f = 0.1L;
                for (p++; *p >= '0' && *p <= '9'; p++, digits = true, f /= 10)
                        mant += (*p - '0') * f;
        }
        if (!digits)
                goto bad;

        static const struct {
                const char *suffix;
                long double factor;
        } suffixes[] = {
                {"Ki", 1024.0L},
                {"Mi", 1048576.0L},
                {"Gi", 1073741824.0L},
                {"Ti", 1099511627776.0L},
                {"Pi", 1125899906842624.0L},
                {"Ei", 1152921504606846976.0L},
                {"m", 1e-3L},
                {"k", 1e3L},
                {"M", 1e6L},
                {"G", 1e9L},
                {"T", 1e12L},
                {"P", 1e15L},
                {"E", 1e18L},
                {"", 1.0L},
        };
        if ((*p == 'e' || *p == 'E') && p[1] != '\0' && p[1] != 'i') {
                const char *q = p + 1;
                int sign = 1, ex = 0;
                if (*q == '+' || *q == '-')
                        sign = *q++ == '-' ? -1 : 1;
                if (!(*q >= '0' && *q <= '9'))
                        goto bad;
                for (; *q >= '0' && *q <= '9'; q++) {
                        ex = ex * 10 + (*q - '0');
                        if (ex > 30)
                                goto bad;
                }
                if (*q != '\0')
                        goto bad;
                scale = powl(10.0L, (long double)(sign * ex));
        } else {
                size_t i;
                for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
                        if (strcmp(p, suffixes[i].suffix) == 0)
                                break;
                if (i == sizeof(suffixes) / sizeof(suffixes[0]))
                        goto bad;
                scale = suffixes[i].factor;
        }
        long double v = ceill(mant * scale * 1000.0L - 1e-9L);
        if (v > 4611686018427387904.0L)
                return sw_err_set(err, SW_EINVAL, "%s: '%s' is too large", what, s);
        *out = (int64_t)v;
        return 0;
bad:
        return sw_err_set(err, SW_EINVAL,
                          "%s: '%s' is not a Kubernetes quantity (e.g. 500m, 2, 128Mi, 1G)", what,
                          s);
}

int64_t sw_json_quantity(const json_t *v, int64_t def)
{
        int64_t m = 0;

        if (json_is_integer(v))
                return (int64_t)json_integer_value(v) * 1000;
        if (!json_is_string(v) ||
            sw_quantity_milli(&m, json_string_value(v), "quantity", NULL) != 0)
                return def;
        return m;
}
