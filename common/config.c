/*
 * config.c - the only reader of the environment.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/mem.h"
#define SW_CONFIG_READS_ENV
#include "common/banned.h"

static const struct sw_config_var config_vars[] = {
#define SW__CFG_VAR(field, env, type, def, min, max, choices, secret, help)                        \
        {env, offsetof(struct sw_config, field), type, def, min, max, choices, secret, help},
        SW_CONFIG_VARS(SW__CFG_VAR)
#undef SW__CFG_VAR
};
#define CONFIG_NVARS ((int)(sizeof(config_vars) / sizeof(config_vars[0])))

static const char *env_lookup(char *const *envp, const char *name)
{
        size_t n = strlen(name);

        for (char *const *e = envp; e && *e; e++)
                if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
                        return *e + n + 1;
        return NULL;
}

static int parse_int(int64_t *out, const struct sw_config_var *v, const char *s, struct sw_err *err)
{
        char *end = NULL;
        long long n;

        errno = 0;
        n = strtoll(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0' || s[0] == ' ' || s[0] == '+')
                return sw_err_set(err, SW_EINVAL, "%s: '%s' is not a whole number", v->env, s);
        if (n < v->min || n > v->max)
                return sw_err_set(err, SW_EINVAL, "%s: %lld is outside %lld..%lld", v->env, n,
                                  (long long)v->min, (long long)v->max);
        *out = n;
        return 0;
}

static int parse_bool(bool *out, const struct sw_config_var *v, const char *s, struct sw_err *err)
{
        static const char *const yes[] = {"1", "true", "yes", "on"};
        static const char *const no[] = {"0", "false", "no", "off"};

        for (int i = 0; i < 4; i++) {
                if (strcmp(s, yes[i]) == 0) {
                        *out = true;
                        return 0;
                }
                if (strcmp(s, no[i]) == 0) {
                        *out = false;
                        return 0;
                }
        }
        return sw_err_set(err, SW_EINVAL, "%s: '%s' is not a boolean (true or false)", v->env, s);
}

static int check_choice(const struct sw_config_var *v, const char *s, struct sw_err *err)
{
        size_t n = strlen(s);

        for (const char *p = v->choices; *p;) {
                const char *bar = strchr(p, '|');
                size_t len = bar ? (size_t)(bar - p) : strlen(p);
                if (len == n && strncmp(p, s, n) == 0)
                        return 0;
                if (!bar)
                        break;
                p = bar + 1;
        }
        return sw_err_set(err, SW_EINVAL, "%s: '%s' is not one of %s", v->env, s, v->choices);
}

/* Refuse SLIPWAY_* names that are not in the table: a typo must not pass silently. */
static int check_unknown(char *const *envp, struct sw_err *err)
{
        for (char *const *e = envp; e && *e; e++) {
                const char *eq = strchr(*e, '=');
                size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
                bool known = false;

                if (strncmp(*e, "SLIPWAY_", 8) != 0)
                        continue;
                for (int i = 0; i < CONFIG_NVARS && !known; i++)
                        known = strlen(config_vars[i].env) == n &&
                                strncmp(config_vars[i].env, *e, n) == 0;
                if (!known)
                        return sw_err_set(err, SW_EINVAL,
                                          "unknown variable %.*s (`slipway config` lists them)",
                                          (int)(n > 100 ? 100 : n), *e);
        }
        return 0;
}

int sw_config_load(struct sw_config *cfg, char *const *envp, struct sw_err *err)
{
        struct sw_config c;
        int rc;

        memset(&c, 0, sizeof(c));
        rc = check_unknown(envp, err);
        if (rc)
                return rc;
        for (int i = 0; i < CONFIG_NVARS; i++) {
                const struct sw_config_var *v = &config_vars[i];
                void *field = (char *)&c + v->offset;
                const char *val = env_lookup(envp, v->env);

                if (!val || !*val)
                        val = v->def;
                if (!val)
                        continue;
                switch (v->type) {
                case SW_CFG_STR:
                        if (v->choices && (rc = check_choice(v, val, err)) != 0)
                                goto fail;
                        *(char **)field = sw_xstrdup(val);
                        break;
                case SW_CFG_INT:
                        if ((rc = parse_int(field, v, val, err)) != 0)
                                goto fail;
                        break;
                case SW_CFG_BOOL:
                        if ((rc = parse_bool(field, v, val, err)) != 0)
                                goto fail;
                        break;
                }
        }
        if (!c.data) {
                const char *home = env_lookup(envp, "HOME");
                if (geteuid() == 0 || !home || home[0] != '/')
                        c.data = sw_xstrdup("/var/lib/slipway");
                else
                        c.data = sw_xasprintf("%s/.local/share/slipway", home);
        }
        if (c.data[0] != '/') {
                rc = sw_err_set(err, SW_EINVAL, "SLIPWAY_DATA: '%s' must be an absolute path",
                                c.data);
                goto fail;
        }
        *cfg = c;
        return 0;
fail:
        sw_config_release(&c);
        return rc;
}

void sw_config_release(struct sw_config *cfg)
{
        if (!cfg)
                return;
        for (int i = 0; i < CONFIG_NVARS; i++) {
                const struct sw_config_var *v = &config_vars[i];
                char **s = (char **)((char *)cfg + v->offset);

                if (v->type != SW_CFG_STR)
                        continue;
                if (v->secret)
                        sw_free_secret(*s);
                else
                        free(*s);
                *s = NULL;
        }
}

const struct sw_config_var *sw_config_vars(int *count_out)
{
        *count_out = CONFIG_NVARS;
        return config_vars;
}

void sw_config_value_fmt(const struct sw_config *cfg, int idx, char *out, int size)
{
        const struct sw_config_var *v = &config_vars[idx];
        const void *field = (const char *)cfg + v->offset;

        switch (v->type) {
        case SW_CFG_STR: {
                const char *s = *(char *const *)field;
                snprintf(out, (size_t)size, "%s", !s ? "" : v->secret ? "<redacted>" : s);
                break;
        }
        case SW_CFG_INT:
                snprintf(out, (size_t)size, "%lld", (long long)*(const int64_t *)field);
                break;
        case SW_CFG_BOOL:
                snprintf(out, (size_t)size, "%s", *(const bool *)field ? "true" : "false");
                break;
        }
}
