/*
 * request.c - validation and defaults of the deploy request.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/mem.h"
#include "common/validate.h"
#include "engine/request.h"
#include "common/banned.h"

#define REPLICAS_MAX 1000

struct field {
        const char *name; /* in JSON */
        const char *flag; /* on the command line, without "--" */
        json_type type;   /* JSON_STRING or JSON_INTEGER */
};

static const struct field fields[] = {
        {"repo", "repo", JSON_STRING},
        {"branch", "branch", JSON_STRING},
        {"commit", "commit", JSON_STRING},
        {"name", "name", JSON_STRING},
        {"namespace", "namespace", JSON_STRING},
        {"type", "type", JSON_STRING},
        {"replicas", "replicas", JSON_INTEGER},
        {"cpu", "cpu", JSON_STRING},
        {"memory", "memory", JSON_STRING},
        {"cpu_limit", "cpu-limit", JSON_STRING},
        {"memory_limit", "memory-limit", JSON_STRING},
        {"port", "port", JSON_INTEGER},
        {"host", "host", JSON_STRING},
};

/* How a field is named in messages: "--cpu-limit" or "field 'cpu_limit'". */
static void field_label(char *out, size_t size, const char *name, enum eng_request_style style)
{
        if (style == ENG_REQUEST_FLAGS) {
                size_t i = 0;
                snprintf(out, size, "--%s", name);
                for (i = 2; out[i]; i++)
                        if (out[i] == '_')
                                out[i] = '-';
        } else {
                snprintf(out, size, "field '%s'", name);
        }
}

static int check_quantity(const json_t *req, const char *key, enum eng_request_style style,
                          int64_t *milli, struct sw_err *err)
{
        const char *v = sw_json_str(req, key, NULL);
        char label[48];

        *milli = 0;
        if (!v)
                return 0;
        field_label(label, sizeof(label), key, style);
        if (sw_quantity_milli(milli, v, label, err))
                return SW_EINVAL;
        if (*milli == 0)
                return sw_err_set(err, SW_EINVAL, "%s: must be greater than zero", label);
        return 0;
}

int eng_request_normalize(json_t **out, const json_t *in, enum eng_request_style style,
                          struct sw_err *err)
{
        json_t *req = NULL;
        const char *key;
        json_t *val;
        char label[48];
        int64_t cpu, mem, cpu_lim, mem_lim;
        int rc = SW_EINVAL;

        if (!json_is_object(in))
                return sw_err_set(err, SW_EINVAL, "a deploy request must be a JSON object");
        json_object_foreach((json_t *)in, key, val)
        {
                size_t i;
                for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
                        if (strcmp(fields[i].name, key) == 0)
                                break;
                field_label(label, sizeof(label), key, style);
                if (i == sizeof(fields) / sizeof(fields[0]))
                        return sw_err_set(err, SW_EINVAL, "unknown field '%s'", key);
                if (json_is_null(val))
                        continue;
                if (json_typeof(val) != fields[i].type)
                        return sw_err_set(err, SW_EINVAL, "%s: must be %s", label,
                                          fields[i].type == JSON_STRING ? "a string"
                                                                        : "a whole number");
        }
        req = json_deep_copy(in);
        /* null means "use the default" */
        void *tmp;
        json_object_foreach_safe(req, tmp, key, val)
        {
                if (json_is_null(val))
                        json_object_del(req, key);
        }

#define LABEL(k) (field_label(label, sizeof(label), k, style), label)
        if (!sw_json_str(req, "repo", NULL)) {
                sw_err_set(err, SW_EINVAL, "%s: the git repository URL is required", LABEL("repo"));
                goto out;
        }
        if (sw_valid_repo_url(sw_json_str(req, "repo", ""), LABEL("repo"), err))
                goto out;
        if (!sw_json_str(req, "name", NULL)) {
                sw_err_set(err, SW_EINVAL, "%s: the service name is required", LABEL("name"));
                goto out;
        }
        if (sw_valid_dns1035_label(sw_json_str(req, "name", ""), LABEL("name"), err))
                goto out;
        if (sw_json_str(req, "commit", NULL) &&
            sw_valid_git_commit(sw_json_str(req, "commit", ""), LABEL("commit"), err))
                goto out;
        if (!sw_json_str(req, "branch", NULL) && !sw_json_str(req, "commit", NULL))
                json_object_set_new(req, "branch", json_string("main"));
        if (sw_json_str(req, "branch", NULL) &&
            sw_valid_git_ref(sw_json_str(req, "branch", ""), LABEL("branch"), err))
                goto out;
        if (!sw_json_str(req, "namespace", NULL))
                json_object_set_new(req, "namespace", json_string("default"));
        if (sw_valid_dns1123_label(sw_json_str(req, "namespace", ""), LABEL("namespace"), err))
                goto out;
        if (!sw_json_str(req, "type", NULL))
                json_object_set_new(req, "type", json_string("ClusterIP"));
        {
                const char *t = sw_json_str(req, "type", "");
                if (strcmp(t, "ClusterIP") && strcmp(t, "NodePort") && strcmp(t, "LoadBalancer")) {
                        sw_err_set(err, SW_EINVAL,
                                   "%s: '%s' is not one of ClusterIP, NodePort, LoadBalancer",
                                   LABEL("type"), t);
                        goto out;
                }
        }
        if (!json_object_get(req, "replicas"))
                json_object_set_new(req, "replicas", json_integer(1));
        if (sw_json_int(req, "replicas", 0) < 0 || sw_json_int(req, "replicas", 0) > REPLICAS_MAX) {
                sw_err_set(err, SW_EINVAL, "%s: must be between 0 and %d", LABEL("replicas"),
                           REPLICAS_MAX);
                goto out;
        }
        if (!sw_json_str(req, "cpu", NULL))
                json_object_set_new(req, "cpu", json_string("100m"));
        if (!sw_json_str(req, "memory", NULL))
                json_object_set_new(req, "memory", json_string("128Mi"));
        if (check_quantity(req, "cpu", style, &cpu, err) ||
            check_quantity(req, "memory", style, &mem, err) ||
            check_quantity(req, "cpu_limit", style, &cpu_lim, err) ||
            check_quantity(req, "memory_limit", style, &mem_lim, err))
                goto out;
        if (cpu_lim && cpu_lim < cpu) {
                sw_err_set(err, SW_EINVAL, "%s: must not be less than the cpu request",
                           LABEL("cpu_limit"));
                goto out;
        }
        if (mem_lim && mem_lim < mem) {
                sw_err_set(err, SW_EINVAL, "%s: must not be less than the memory request",
                           LABEL("memory_limit"));
                goto out;
        }
        if (!json_object_get(req, "port"))
                json_object_set_new(req, "port", json_integer(0));
        if (sw_json_int(req, "port", 0) < 0 || sw_json_int(req, "port", 0) > 65535) {
                sw_err_set(err, SW_EINVAL, "%s: must be between 1 and 65535 (0: from EXPOSE)",
                           LABEL("port"));
                goto out;
        }
        if (sw_json_str(req, "host", NULL) &&
            sw_valid_dns1123_subdomain(sw_json_str(req, "host", ""), LABEL("host"), err))
                goto out;
#undef LABEL
        *out = req;
        req = NULL;
        rc = 0;
out:
        json_decref(req);
        return rc;
}

char *eng_request_concurrency_key(const json_t *req)
{
        return sw_xasprintf("deploy/%s/%s", sw_json_str(req, "namespace", "default"),
                            sw_json_str(req, "name", ""));
}

#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

struct option *eng_request_options(const struct option *extra)
{
        size_t n_extra = 0, k = 0;
        struct option *opts;

        while (extra && extra[n_extra].name)
                n_extra++;
        opts = sw_xcalloc(NFIELDS + n_extra + 1, sizeof(*opts));
        for (size_t i = 0; i < NFIELDS; i++) {
                opts[k].name = fields[i].flag;
                opts[k].has_arg = required_argument;
                opts[k].flag = NULL;
                opts[k].val = ENG_REQUEST_OPT_BASE + (int)i;
                k++;
        }
        for (size_t i = 0; i < n_extra; i++)
                opts[k++] = extra[i];
        return opts;
}

int eng_request_flag(json_t *in, int c, const char *arg, struct sw_err *err)
{
        size_t i = (size_t)(c - ENG_REQUEST_OPT_BASE);
        char label[48];

        if (c < ENG_REQUEST_OPT_BASE || i >= NFIELDS)
                return 0;
        if (fields[i].type == JSON_INTEGER) {
                char *end = NULL;
                long long v;
                errno = 0;
                v = strtoll(arg, &end, 10);
                if (errno || end == arg || *end) {
                        field_label(label, sizeof(label), fields[i].name, ENG_REQUEST_FLAGS);
                        return sw_err_set(err, SW_EINVAL, "%s: '%s' is not a whole number", label,
                                          arg);
                }
                json_object_set_new(in, fields[i].name, json_integer(v));
        } else {
                json_object_set_new(in, fields[i].name, json_string(arg));
        }
        return 1;
}

const char *eng_request_flags_help(void)
{
        return "  --repo URL             git repository (https://, http://, git://, ssh://, file://, /path)\n"
               "  --branch BRANCH        branch or tag to build (default: main)\n"
               "  --commit SHA           exact commit to build (instead of, or within, --branch)\n"
               "  --name NAME            service name (RFC 1035 label: a-z, 0-9, '-', starts with a letter)\n"
               "  --namespace NS         Kubernetes namespace (default: default)\n"
               "  --type TYPE            ClusterIP, NodePort or LoadBalancer (default: ClusterIP)\n"
               "  --replicas N           pod replicas, 0 to 1000 (default: 1)\n"
               "  --cpu Q                cpu request per pod, e.g. 250m (default: 100m)\n"
               "  --memory Q             memory request per pod, e.g. 256Mi (default: 128Mi)\n"
               "  --cpu-limit Q          cpu limit per pod (default: none)\n"
               "  --memory-limit Q       memory limit per pod (default: none)\n"
               "  --port N               container port (default: the image's EXPOSE)\n"
               "  --host HOST            public host name (default: NAME.NS.<SLIPWAY_DOMAIN>)\n";
}
